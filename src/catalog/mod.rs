//! The catalog: text-format files of benchmarks → parsed, inheritance resolved, validated.
//!
//! Knows nothing of Kubernetes. The way in is [`Catalog::load`] (parse every selected file, report
//! every parse error), then [`Catalog::resolve`] (inheritance), then [`validate::validate`].

pub mod diag;
pub mod hardware;
pub mod inherit;
pub mod locate;
pub mod parse;
pub mod select;
pub mod source;
pub mod validate;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use prost_reflect::{DynamicMessage, Value};

pub use diag::{Diagnostic, Diagnostics, Location};
pub use source::{FileKind, SourceFile};

use crate::schema;
use locate::Positions;

/// One benchmark as written in one file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its name (may be empty when the user forgot it; that is reported).
    pub name: String,
    /// The file it is in.
    pub file: Arc<SourceFile>,
    /// Its index in the file's `benchmarks` list.
    pub index: usize,
    /// Where its fields are written.
    pub positions: Arc<Positions>,
    /// The message as written (not resolved).
    pub raw: DynamicMessage,
}

impl Entry {
    /// `benchmarks[i].` + `rel` (or `benchmarks[i]` for an empty `rel`).
    pub fn path(&self, rel: &str) -> String {
        if rel.is_empty() { format!("benchmarks[{}]", self.index) } else { format!("benchmarks[{}].{rel}", self.index) }
    }

    /// Where `rel` is written in this entry, or the nearest written parent.
    pub fn location(&self, rel: &str) -> Option<Location> {
        self.positions.nearest(&self.path(rel)).map(|o| self.file.location(o))
    }

    /// True when this entry itself writes `rel`.
    pub fn writes(&self, rel: &str) -> bool {
        self.positions.get(&self.path(rel)).is_some()
    }

    /// The base this entry names, if any.
    pub fn base(&self) -> Option<String> {
        let b = self.raw.get_field_by_name("base_benchmark_name")?;
        self.raw.has_field_by_name("base_benchmark_name").then(|| b.as_str().unwrap_or_default().to_owned())
    }
}

/// Every benchmark of a set of catalog files.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The files, in load order.
    pub files: Vec<Arc<SourceFile>>,
    /// The benchmarks, in file order.
    pub entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

/// A benchmark with its inheritance resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Its name.
    pub name: String,
    /// Entry indices from the benchmark itself up to its root base.
    pub chain: Vec<usize>,
    /// The merged message.
    pub message: DynamicMessage,
    /// The same, as the generated type.
    pub benchmark: schema::Benchmark,
}

impl Resolved {
    /// True for templates that are never rendered or run.
    pub fn is_abstract(&self) -> bool {
        self.benchmark.r#abstract.unwrap_or(false)
    }
}

impl Catalog {
    /// Reads and parses every file; all parse errors of all files are reported together.
    pub fn load(paths: &[PathBuf]) -> Result<Self, Diagnostics> {
        let mut diags = Diagnostics::default();
        let mut files = vec![];
        for p in paths {
            match SourceFile::read(p) {
                Ok(f) => files.push(f),
                Err(d) => diags.push(d),
            }
        }
        match Self::from_files(files) {
            Ok(c) => diags.into_result(c),
            Err(more) => {
                diags.0.extend(more.0);
                Err(diags)
            }
        }
    }

    /// Parses files already in memory.
    pub fn from_files(files: Vec<Arc<SourceFile>>) -> Result<Self, Diagnostics> {
        let desc = schema::message("Benchmarks");
        let mut diags = Diagnostics::default();
        let mut cat = Self::default();
        for file in files {
            match file.kind() {
                FileKind::Benchmarks => {}
                FileKind::HardwareTable => continue, // the hardware table, read on its own
                FileKind::Other(name) => {
                    diags.push(
                        Diagnostic::new(format!(
                            "the header says this file holds a {name} message; catalogs hold Benchmarks (or, for catalog/hardware.pbtxt, a HardwareTable)"
                        ))
                        .at(Some(file.location(file.text.find("proto-message").unwrap_or(0)))),
                    );
                    continue;
                }
            }
            let msg = match parse::parse(&file, desc.clone()) {
                Ok(m) => m,
                Err(d) => {
                    diags.push(d);
                    continue;
                }
            };
            let positions = Arc::new(Positions::index(&desc, &file.text));
            let list = msg.get_field_by_name("benchmarks").map(|v| v.into_owned());
            for (index, item) in list.iter().flat_map(|v| v.as_list().unwrap_or_default()).enumerate() {
                let Value::Message(raw) = item else { continue };
                let name =
                    raw.get_field_by_name("name").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                let entry = Entry { name, file: file.clone(), index, positions: positions.clone(), raw: raw.clone() };
                if entry.name.is_empty() {
                    diags.push(
                        Diagnostic::new("every benchmark needs a name").at(entry.location("")).path(entry.path("name")),
                    );
                } else if let Some(&other) = cat.by_name.get(&entry.name) {
                    let first = &cat.entries[other];
                    diags.push(
                        Diagnostic::new(format!("duplicate benchmark name \"{}\"", entry.name))
                            .at(entry.location("name"))
                            .path(entry.path("name"))
                            .note(first.location("name"), "first defined here"),
                    );
                } else {
                    cat.by_name.insert(entry.name.clone(), cat.entries.len());
                }
                cat.entries.push(entry);
            }
            cat.files.push(file);
        }
        diags.into_result(cat)
    }

    /// The entry of a benchmark name.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    /// Benchmark names in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str()).filter(|n| !n.is_empty())
    }

    /// The chain of entry indices from `name` up to its root, or the diagnostic that breaks it.
    pub fn chain(&self, name: &str) -> Result<Vec<usize>, Diagnostic> {
        let Some(&start) = self.by_name.get(name) else {
            return Err(Diagnostic::new(format!("no benchmark named \"{name}\"")));
        };
        let mut chain = vec![start];
        loop {
            let entry = &self.entries[*chain.last().expect("non-empty")];
            let Some(base) = entry.base() else {
                return Ok(chain);
            };
            let Some(&next) = self.by_name.get(&base) else {
                let mut d =
                    Diagnostic::new(format!("base benchmark \"{base}\" is not defined in the selected catalog files"))
                        .at(entry.location("base_benchmark_name"))
                        .path(entry.path("base_benchmark_name"))
                        .benchmark(&entry.name);
                if let Some(similar) = self.names().min_by_key(|n| strsim::levenshtein(n, &base))
                    && strsim::levenshtein(similar, &base) <= base.len().max(4) / 4 + 1
                {
                    d = d.note(
                        self.entry(similar).and_then(|e| e.location("name")),
                        format!("did you mean \"{similar}\"?"),
                    );
                }
                return Err(d);
            };
            if let Some(pos) = chain.iter().position(|&i| i == next) {
                return Err(self.cycle_error(&chain[pos..]));
            }
            chain.push(next);
        }
    }

    /// The error for a cycle, the same whichever member it was found from (so it is reported
    /// once): it starts at the member defined first and is located at its reference.
    fn cycle_error(&self, cycle: &[usize]) -> Diagnostic {
        let first = (0..cycle.len()).min_by_key(|&k| cycle[k]).expect("non-empty cycle");
        let ordered: Vec<usize> = cycle[first..].iter().chain(&cycle[..first]).copied().collect();
        let names: Vec<&str> =
            ordered.iter().chain(std::iter::once(&ordered[0])).map(|&i| self.entries[i].name.as_str()).collect();
        let head = &self.entries[ordered[0]];
        let mut d = Diagnostic::new(format!("inheritance cycle: {}", names.join(" → ")))
            .at(head.location("base_benchmark_name"))
            .path(head.path("base_benchmark_name"))
            .benchmark(&head.name);
        for &i in &ordered[1..] {
            let e = &self.entries[i];
            d = d.note(
                e.location("base_benchmark_name"),
                format!("\"{}\" extends \"{}\"", e.name, e.base().unwrap_or_default()),
            );
        }
        d
    }

    /// Resolves inheritance for every benchmark; every broken chain is reported (once per cause).
    pub fn resolve(&self) -> Result<Vec<Resolved>, Diagnostics> {
        let (out, diags) = self.resolve_lenient();
        diags.into_result(out)
    }

    /// Resolves what can be: the benchmarks whose chains are sound, and the diagnostics of the
    /// others (so `catalog validate` reports a broken chain and the other benchmarks' errors at once).
    pub fn resolve_lenient(&self) -> (Vec<Resolved>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let mut out = Vec::with_capacity(self.entries.len());
        let mut memo: HashMap<usize, DynamicMessage> = HashMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            if e.name.is_empty() || self.by_name.get(&e.name) != Some(&i) {
                continue; // reported at load
            }
            let chain = match self.chain(&e.name) {
                Ok(c) => c,
                Err(d) => {
                    diags.push(d);
                    continue;
                }
            };
            // Reuse the resolved base when there is one: resolving 1000 benchmarks 5 deep merges
            // each link once.
            let message = match chain.get(1).and_then(|b| memo.get(b)) {
                Some(base) => inherit::resolve_chain([base, &e.raw]).expect("two links"),
                None => {
                    inherit::resolve_chain(chain.iter().rev().map(|&i| &self.entries[i].raw)).expect("non-empty chain")
                }
            };
            memo.insert(i, message.clone());
            match message.transcode_to::<schema::Benchmark>() {
                Ok(benchmark) => out.push(Resolved { name: e.name.clone(), chain, message, benchmark }),
                Err(err) => diags.push(
                    Diagnostic::new(format!("internal error decoding the resolved benchmark: {err}"))
                        .at(e.location("")),
                ),
            }
        }
        (out, diags)
    }

    /// Where `rel` (a path inside a benchmark) comes from in a resolved chain: the nearest
    /// benchmark of the chain that writes it, else the benchmark itself at the nearest parent.
    /// Returns the location, the path as written there, and the name of that benchmark.
    pub fn origin(&self, chain: &[usize], rel: &str) -> (Option<Location>, String, String) {
        for &i in chain {
            let e = &self.entries[i];
            if e.writes(rel) {
                return (e.location(rel), e.path(rel), e.name.clone());
            }
        }
        let e = &self.entries[chain[0]];
        (e.location(rel), e.path(rel), e.name.clone())
    }

    /// The `benchmark.pbtxt` text of a resolved benchmark: canonical, pretty text format.
    pub fn to_text(message: &DynamicMessage) -> String {
        // Declaration order (not field-number order): name first, as people write them.
        let opts =
            prost_reflect::text_format::FormatOptions::new().pretty(true).print_message_fields_in_index_order(true);
        let mut s = message.to_text_format_with_options(&opts);
        if !s.ends_with('\n') {
            s.push('\n');
        }
        s
    }
}

/// Lists every `.pbtxt` file under `dir` (recursively), sorted, as paths starting with `dir`.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d)
            .map_err(|e| Diagnostic::new(format!("cannot read catalog folder {}: {e}", d.display())))?;
        for ent in rd {
            let ent = ent.map_err(|e| Diagnostic::new(format!("cannot read catalog folder {}: {e}", d.display())))?;
            let p = ent.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "pbtxt") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}
