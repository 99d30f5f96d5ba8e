//! The catalog: text-format files of benchmarks → parsed, inheritance resolved, validated.
//!
//! Knows nothing of Kubernetes. The text format itself (files, parsing, positions, diagnostics)
//! is `inferbench-schema`'s [`text`](crate::schema::text) module. The way in is [`Catalog::load`] (parse every selected file, report
//! every parse error), then [`Catalog::resolve`] (inheritance), then [`validate::validate`].

pub mod inherit;
pub mod select;
pub mod validate;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use prost_reflect::{DynamicMessage, Value};

// The text format and its diagnostics are the contracts crate's (a snapshot's load spec and the
// hardware table are read with them too); the catalog's API speaks them.
pub use crate::schema::text::{Diagnostic, Diagnostics, FileKind, Location, SourceFile};
use crate::schema::{
    self,
    text::{locate::Positions, parse},
};

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
    /// Its entry index ([`Catalog::ancestry`] walks up from it to its root base).
    pub entry: usize,
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

    /// The entry index of the base `entry` names: `Ok(None)` for a root, `Err` when the base is
    /// not defined (with a "did you mean" note for a close name).
    fn base_of(&self, entry: usize) -> Result<Option<usize>, Diagnostic> {
        let entry = &self.entries[entry];
        let Some(base) = entry.base() else {
            return Ok(None);
        };
        if let Some(&next) = self.by_name.get(&base) {
            return Ok(Some(next));
        }
        let mut d = Diagnostic::new(format!("base benchmark \"{base}\" is not defined in the selected catalog files"))
            .at(entry.location("base_benchmark_name"))
            .path(entry.path("base_benchmark_name"))
            .benchmark(&entry.name);
        if let Some(similar) = self.names().min_by_key(|n| strsim::levenshtein(n, &base))
            && strsim::levenshtein(similar, &base) <= base.len().max(4) / 4 + 1
        {
            d = d.note(self.entry(similar).and_then(|e| e.location("name")), format!("did you mean \"{similar}\"?"));
        }
        Err(d)
    }

    /// Entry indices from `entry` up to its root base (the benchmark itself first). Meant for
    /// resolved benchmarks, whose chains are sound; on a broken one it stops at the break.
    pub fn ancestry(&self, entry: usize) -> impl Iterator<Item = usize> + '_ {
        let mut next = Some(entry);
        let mut left = self.entries.len(); // a cycle cannot make it loop
        std::iter::from_fn(move || {
            let cur = next.take()?;
            left = left.checked_sub(1)?;
            next = self.base_of(cur).ok().flatten();
            Some(cur)
        })
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
    ///
    /// Linear in the number of benchmarks, whatever the depth: each is merged once, onto its
    /// resolved base (walking each chain from every member, as this once did, took 108 s and
    /// 657 MB for one chain 10 000 deep). A break (a missing base, a cycle) is reported once, where
    /// it is, and the benchmarks below it are left out.
    pub fn resolve_lenient(&self) -> (Vec<Resolved>, Diagnostics) {
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            Todo,
            /// On the walk being resolved, at this position of it.
            OnWalk(usize),
            Resolved,
            Broken,
        }
        let n = self.entries.len();
        let mut state = vec![State::Todo; n];
        let mut messages: Vec<Option<DynamicMessage>> = vec![None; n];
        let mut diags = Diagnostics::default();
        let mut walk = Vec::new();
        for start in 0..n {
            if !self.is_first_of_its_name(start) || state[start] != State::Todo {
                continue; // reported at load, or resolved on an earlier walk
            }
            // Up from `start` to a root, an already resolved base, or a break.
            walk.clear();
            let mut cur = start;
            let top: Result<Option<usize>, ()> = loop {
                match state[cur] {
                    State::Resolved => break Ok(Some(cur)),
                    State::Broken => break Err(()),
                    State::OnWalk(at) => {
                        diags.push(self.cycle_error(&walk[at..]));
                        break Err(());
                    }
                    State::Todo => {}
                }
                state[cur] = State::OnWalk(walk.len());
                walk.push(cur);
                match self.base_of(cur) {
                    Ok(None) => break Ok(None),
                    Ok(Some(base)) => cur = base,
                    Err(d) => {
                        diags.push(d);
                        break Err(());
                    }
                }
            };
            let Ok(mut base) = top else {
                for &i in &walk {
                    state[i] = State::Broken;
                }
                continue;
            };
            // Down again: each benchmark merged onto its resolved base.
            for &i in walk.iter().rev() {
                let raw = &self.entries[i].raw;
                let message = match base.and_then(|b| messages[b].as_ref()) {
                    Some(b) => inherit::resolve_chain([b, raw]),
                    None => inherit::resolve_chain([raw]),
                };
                messages[i] = message;
                state[i] = State::Resolved;
                base = Some(i);
            }
        }
        let mut out = Vec::with_capacity(n);
        for (entry, message) in messages.into_iter().enumerate() {
            let Some(message) = message else { continue };
            let e = &self.entries[entry];
            match message.transcode_to::<schema::Benchmark>() {
                Ok(benchmark) => out.push(Resolved { name: e.name.clone(), entry, message, benchmark }),
                Err(err) => diags.push(
                    Diagnostic::new(format!("internal error decoding the resolved benchmark: {err}"))
                        .at(e.location("")),
                ),
            }
        }
        (out, diags)
    }

    /// True for an entry that has a name and is the first of that name (the others are reported
    /// as duplicates when the files are read).
    fn is_first_of_its_name(&self, entry: usize) -> bool {
        let name = &self.entries[entry].name;
        !name.is_empty() && self.by_name.get(name) == Some(&entry)
    }

    /// Where `rel` (a path inside a benchmark) comes from in a resolved benchmark's chain: the nearest
    /// benchmark of the chain that writes it, else the benchmark itself at the nearest parent.
    /// Returns the location, the path as written there, and the name of that benchmark. `memo`
    /// keeps the answers along the way, so that asking for every member of one long chain walks
    /// it once (a chain 10 000 deep with an error each took 11.6 s without).
    pub fn origin(&self, entry: usize, rel: &str, memo: &mut Origins) -> (Option<Location>, String, String) {
        let writer = self.writer_of(entry, rel, memo);
        let e = &self.entries[writer.unwrap_or(entry)];
        (e.location(rel), e.path(rel), e.name.clone())
    }

    /// The nearest entry of `entry`'s chain that writes `rel` (itself first), if any.
    fn writer_of(&self, entry: usize, rel: &str, memo: &mut Origins) -> Option<usize> {
        let known = memo.0.entry(rel.to_owned()).or_default();
        let mut walked = vec![];
        let mut answer = None;
        for i in self.ancestry(entry) {
            if let Some(&a) = known.get(&i) {
                answer = a;
                break;
            }
            walked.push(i);
            if self.entries[i].writes(rel) {
                answer = Some(i);
                break;
            }
        }
        for i in walked {
            known.insert(i, answer);
        }
        answer
    }
}

/// What [`Catalog::origin`] has found out: by field path, the entry each entry inherits it from.
#[derive(Debug, Default)]
pub struct Origins(HashMap<String, HashMap<usize, Option<usize>>>);

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain `depth` deep written children first (so no base is resolved before its child is
    /// reached), each link overriding the replica count, plus one benchmark whose base is missing.
    fn deep_chain(depth: usize) -> Catalog {
        let mut text = String::from("benchmarks { name: \"orphan\" base_benchmark_name: \"b-nowhere\" }\n");
        for i in (1..depth).rev() {
            text += &format!(
                "benchmarks {{ name: \"b{i}\" base_benchmark_name: \"b{}\" config {{ model_server {{ replicas: {i} }} }} }}\n",
                i - 1
            );
        }
        text += "benchmarks { name: \"b0\" description: \"root\" config { model_server { accelerator: \"nvidia-l4\" replicas: 0 } } }\n";
        Catalog::from_files(vec![Arc::new(SourceFile::new("deep.pbtxt".into(), text))]).expect("parses")
    }

    #[test]
    fn a_chain_ten_thousand_deep_resolves_each_link_once_and_a_missing_base_is_reported_once() {
        let depth = 10_000;
        let catalog = deep_chain(depth);
        let (resolved, diags) = catalog.resolve_lenient();
        assert_eq!(resolved.len(), depth, "every link of the chain resolves, the orphan does not");
        assert_eq!(diags.0.len(), 1, "{diags}");
        assert!(diags.0[0].to_string().contains("base benchmark \"b-nowhere\" is not defined"), "{diags}");
        let leaf = resolved.iter().find(|r| r.name == format!("b{}", depth - 1)).expect("the leaf");
        let ms = leaf.benchmark.config.as_ref().and_then(|c| c.model_server.as_ref()).expect("model_server");
        assert_eq!((ms.replicas, ms.accelerator.as_deref()), (Some(depth as i32 - 1), Some("nvidia-l4")));
        assert_eq!(leaf.benchmark.description, None, "a description is the benchmark's own");
        assert_eq!(catalog.ancestry(leaf.entry).count(), depth);
        // Entry order, as written.
        assert!(resolved.windows(2).all(|w| w[0].entry < w[1].entry));
    }

    #[test]
    fn a_cycle_is_reported_once_and_its_descendants_are_left_out() {
        let text = r#"
benchmarks { name: "x" base_benchmark_name: "a" }
benchmarks { name: "a" base_benchmark_name: "b" }
benchmarks { name: "b" base_benchmark_name: "a" }
benchmarks { name: "ok" }
"#;
        let catalog = Catalog::from_files(vec![Arc::new(SourceFile::new("c.pbtxt".into(), text.into()))]).unwrap();
        let (resolved, diags) = catalog.resolve_lenient();
        assert_eq!(resolved.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["ok"]);
        assert_eq!(diags.0.len(), 1, "{diags}");
        assert!(diags.0[0].to_string().contains("inheritance cycle: a → b → a"), "{diags}");
    }
}
