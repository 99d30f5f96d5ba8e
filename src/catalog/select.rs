//! Which catalog files a command reads: explicit paths, a file name under the catalog folder
//! (`--benchmarks NAME`, the seed's `benchmarks=NAME`), a regex over file paths (`--regex`, the
//! seed's `regex=`), or by default every `.pbtxt` under the catalog folder.

use std::path::{Path, PathBuf};

use regex::Regex;

use super::{Diagnostic, discover};

/// The file part of a selection.
#[derive(Debug, Clone, Default)]
pub struct FileSelection {
    /// Files or folders named on the command line.
    pub paths: Vec<PathBuf>,
    /// The catalog folder (`catalog/`).
    pub catalog_dir: PathBuf,
    /// A catalog file name under `catalog_dir`, with or without `.pbtxt`.
    pub benchmarks: Option<String>,
    /// Regex that the whole file path (as `catalog/x.pbtxt`) must match, like `find -regex`.
    pub regex: Option<String>,
}

/// Compiles a user regex so that it must match the whole text (as `find -regex` does).
pub fn anchored(re: &str, what: &str) -> Result<Regex, Diagnostic> {
    Regex::new(&format!("^(?:{re})$")).map_err(|e| Diagnostic::new(format!("invalid {what} regex '{re}': {e}")))
}

/// Splits benchmarks by `--benchmark-name-regex` (anchored; none keeps all): (kept, left out).
pub fn split_by_name(
    resolved: Vec<super::Resolved>,
    re: Option<&str>,
) -> Result<(Vec<super::Resolved>, Vec<super::Resolved>), Diagnostic> {
    let Some(re) = re.filter(|r| !r.is_empty()) else { return Ok((resolved, vec![])) };
    let re = anchored(re, "benchmark name")?;
    Ok(resolved.into_iter().partition(|r| re.is_match(&r.name)))
}

impl FileSelection {
    /// The selected files, sorted and without duplicates.
    pub fn files(&self) -> Result<Vec<PathBuf>, Diagnostic> {
        let mut files = vec![];
        for p in &self.paths {
            if p.is_dir() {
                files.extend(discover(p)?);
            } else if p.exists() {
                files.push(p.clone());
            } else {
                return Err(Diagnostic::new(format!("catalog file {} does not exist", p.display())));
            }
        }
        if let Some(name) = &self.benchmarks {
            let file = if Path::new(name).extension().is_some_and(|e| e == "pbtxt") {
                self.catalog_dir.join(name)
            } else {
                self.catalog_dir.join(format!("{name}.pbtxt"))
            };
            if !file.is_file() {
                let known = discover(&self.catalog_dir).unwrap_or_default();
                let known: Vec<_> = known
                    .iter()
                    .filter_map(|p| p.strip_prefix(&self.catalog_dir).ok())
                    .map(|p| p.with_extension("").display().to_string())
                    .collect();
                return Err(Diagnostic::new(format!(
                    "no catalog file {} (benchmarks={name}); files in {}: {}",
                    file.display(),
                    self.catalog_dir.display(),
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                )));
            }
            files.push(file);
        }
        if self.paths.is_empty() && self.benchmarks.is_none() {
            if !self.catalog_dir.is_dir() {
                return Err(Diagnostic::new(format!("catalog folder {} does not exist", self.catalog_dir.display())));
            }
            files = discover(&self.catalog_dir)?;
        }
        if let Some(re) = &self.regex {
            let re = anchored(re, "catalog file")?;
            files.retain(|p| re.is_match(&p.to_string_lossy()));
        }
        files.sort();
        files.dedup();
        if files.is_empty() {
            return Err(Diagnostic::new(format!(
                "no catalog files selected{}",
                self.regex
                    .as_ref()
                    .map(|r| format!(
                        " (regex '{r}' matches no path; it must match the whole path, e.g. 'catalog/.*h100.*')"
                    ))
                    .unwrap_or_default()
            )));
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_by_name_regex_and_default() {
        let dir = tempfile::tempdir().unwrap();
        let cat = dir.path().join("catalog");
        std::fs::create_dir_all(cat.join("sub")).unwrap();
        for f in ["a.pbtxt", "b.pbtxt", "sub/c.pbtxt", "notes.txt"] {
            std::fs::write(cat.join(f), "").unwrap();
        }
        let sel = |benchmarks: Option<&str>, regex: Option<&str>| FileSelection {
            paths: vec![],
            catalog_dir: cat.clone(),
            benchmarks: benchmarks.map(Into::into),
            regex: regex.map(Into::into),
        };
        let names =
            |v: Vec<PathBuf>| v.iter().map(|p| p.strip_prefix(&cat).unwrap().display().to_string()).collect::<Vec<_>>();
        assert_eq!(names(sel(None, None).files().unwrap()), ["a.pbtxt", "b.pbtxt", "sub/c.pbtxt"]);
        assert_eq!(names(sel(Some("b"), None).files().unwrap()), ["b.pbtxt"]);
        assert_eq!(names(sel(Some("b.pbtxt"), None).files().unwrap()), ["b.pbtxt"]);
        assert_eq!(names(sel(None, Some(".*/sub/.*")).files().unwrap()), ["sub/c.pbtxt"]);
        let err = sel(Some("zzz"), None).files().unwrap_err().to_string();
        assert!(err.contains("files in") && err.contains("a, b, sub/c"), "{err}");
        let err = sel(None, Some("a")).files().unwrap_err().to_string();
        assert!(err.contains("must match the whole path"), "{err}");
    }
}
