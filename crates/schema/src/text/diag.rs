//! Diagnostics: what went wrong, where (file:line:col), at which field path, and why.
//!
//! Every error a user can cause in a catalog comes out as a [`Diagnostic`]; validation collects
//! them all into [`Diagnostics`] so one run reports every problem at once.

use std::{fmt, path::PathBuf};

/// A place in a source file, 1-based line and column (columns count characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// The file as the user named it (relative paths stay relative).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// One problem found in a catalog (boxed: it travels in `Result`s and must stay small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic(Box<Detail>);

/// The content of a [`Diagnostic`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    /// Where the offending text is; `None` when the problem is not tied to a file (e.g. a missing
    /// catalog folder).
    pub location: Option<Location>,
    /// Field path in the file, e.g. `benchmarks[3].config.model_server.replicas`.
    pub path: Option<String>,
    /// The benchmark the problem belongs to, when there is one.
    pub benchmark: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
    /// Other places involved (the base of an inherited value, the other half of a duplicate, ...).
    pub notes: Vec<(Option<Location>, String)>,
}

impl std::ops::Deref for Diagnostic {
    type Target = Detail;
    fn deref(&self) -> &Detail {
        &self.0
    }
}

impl Diagnostic {
    /// A problem with a message only.
    pub fn new(message: impl Into<String>) -> Self {
        Self(Box::new(Detail { location: None, path: None, benchmark: None, message: message.into(), notes: vec![] }))
    }

    /// Sets where it is.
    #[must_use]
    pub fn at(mut self, location: Option<Location>) -> Self {
        self.0.location = location;
        self
    }

    /// Sets the field path.
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.0.path = Some(path.into());
        self
    }

    /// Sets the benchmark name.
    #[must_use]
    pub fn benchmark(mut self, name: impl Into<String>) -> Self {
        self.0.benchmark = Some(name.into());
        self
    }

    /// Adds a note pointing at another place.
    #[must_use]
    pub fn note(mut self, location: Option<Location>, text: impl Into<String>) -> Self {
        self.0.notes.push((location, text.into()));
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d: &Detail = self;
        if let Some(loc) = &d.location {
            write!(f, "{loc}: ")?;
        }
        if let Some(path) = &d.path {
            write!(f, "{path}")?;
            if let Some(b) = &d.benchmark {
                write!(f, " (benchmark \"{b}\")")?;
            }
            write!(f, ": ")?;
        } else if let Some(b) = &d.benchmark {
            write!(f, "benchmark \"{b}\": ")?;
        }
        write!(f, "{}", d.message)?;
        for (loc, text) in &d.notes {
            match loc {
                Some(loc) => write!(f, "\n  {loc}: note: {text}")?,
                None => write!(f, "\n  note: {text}")?,
            }
        }
        Ok(())
    }
}

/// Every problem found, in file order; displayed one per line with a count at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when empty, else `Err(self)` sorted by location.
    pub fn into_result<T>(mut self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            self.0.sort_by(|a, b| a.location.cmp(&b.location));
            self.0.dedup();
            Err(self)
        }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Self(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "error: {d}")?;
        }
        let n = self.0.len();
        write!(f, "{n} error{}", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Diagnostics {}
