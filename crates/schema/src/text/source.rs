//! A catalog file in memory, with byte offsets turned into line:column.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use super::diag::{Diagnostic, Location};

/// What message type a `.pbtxt` file holds, from its `# proto-message:` header comment (the text
/// format's own convention); files without one are catalogs of benchmarks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// `Benchmarks`: a catalog of benchmarks.
    Benchmarks,
    /// `HardwareTable`: the model × accelerator table.
    HardwareTable,
    /// Another message type (named): not ours to load as a catalog.
    Other(String),
}

/// One source file.
#[derive(Debug)]
pub struct SourceFile {
    /// Path as the user (or discovery) named it.
    pub path: PathBuf,
    /// Whole content.
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Reads a file; an unreadable or non-UTF-8 file is a diagnostic naming it.
    pub fn read(path: &Path) -> Result<Arc<Self>, Diagnostic> {
        let bytes = std::fs::read(path).map_err(|e| Diagnostic::new(format!("cannot read {}: {e}", path.display())))?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                let lossy = Self::new(path.to_path_buf(), String::from_utf8_lossy(e.as_bytes()).into_owned());
                return Err(Diagnostic::new("file is not valid UTF-8").at(Some(lossy.location(valid))));
            }
        };
        Ok(Arc::new(Self::new(path.to_path_buf(), text)))
    }

    /// A file from text already in memory (tests, generated catalogs).
    pub fn new(path: PathBuf, text: String) -> Self {
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Self { path, text, line_starts }
    }

    /// The line:column of a byte offset (clamped to the text).
    pub fn location(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let col = self.text.get(start..offset).map_or(1, |s| s.chars().count() + 1);
        Location { file: self.path.clone(), line, col }
    }

    /// The message type the header names (`# proto-message: HardwareTable`), else benchmarks.
    pub fn kind(&self) -> FileKind {
        for line in self.text.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some(comment) = line.strip_prefix('#') else {
                break;
            };
            if let Some(name) = comment.trim().strip_prefix("proto-message:") {
                let name = name.trim();
                let short = name.rsplit('.').next().unwrap_or(name);
                return match short {
                    "Benchmarks" => FileKind::Benchmarks,
                    "HardwareTable" => FileKind::HardwareTable,
                    _ => FileKind::Other(name.to_owned()),
                };
            }
        }
        FileKind::Benchmarks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let f = SourceFile::new("a.pbtxt".into(), "ab\ncdé\n\nx".into());
        assert_eq!((f.location(0).line, f.location(0).col), (1, 1));
        assert_eq!((f.location(3).line, f.location(3).col), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!((f.location(7).line, f.location(7).col), (2, 4));
        assert_eq!((f.location(8).line, f.location(8).col), (3, 1));
        assert_eq!((f.location(9).line, f.location(9).col), (4, 1));
        assert_eq!((f.location(10).line, f.location(10).col), (4, 2));
        assert_eq!(f.location(999).line, 4);
    }

    #[test]
    fn header_selects_the_message_type() {
        let f = |t: &str| SourceFile::new("x".into(), t.into()).kind();
        assert_eq!(f("benchmarks {}"), FileKind::Benchmarks);
        assert_eq!(f("# proto-file: proto/hardware.proto\n# proto-message: HardwareTable\n"), FileKind::HardwareTable);
        assert_eq!(f("# proto-message: benchmark.proto.Benchmarks\n"), FileKind::Benchmarks);
        assert_eq!(f("# proto-message: Foo\n"), FileKind::Other("Foo".into()));
        assert_eq!(f("# a comment\n\nbenchmarks {}\n# proto-message: Foo"), FileKind::Benchmarks);
    }
}
