//! The local side of an upload: which files of a run folder are uploaded, under which names, and
//! their hashes (what decides whether an object already there is the same file).

use std::{
    ffi::OsStr,
    io::{self, Read as _},
    path::{Component, Path, PathBuf},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use md5::{Digest as _, Md5};

use super::UploadError;

/// The file every run folder has (`output/{run_id}/run.json`): its presence is what tells a run
/// folder from any other folder, so a mistyped path never uploads a home directory.
pub const RUN_METADATA: &str = "run.json";

/// One file to upload.
#[derive(Debug, Clone)]
pub(super) struct LocalFile {
    /// Where it is on disk.
    pub path: PathBuf,
    /// Its path below the run folder, `/`-separated: the object name after `{run_id}/`.
    pub rel: String,
}

/// The run id of a run folder: its final path component (`output/3fa9c2d1/` → `3fa9c2d1`).
///
/// The id is taken from the path as given (not the resolved one), so a symlink named after the run
/// uploads under that name; `.` and `..` are resolved first because they name no run.
pub fn run_id_of(run_dir: &Path) -> Result<String, UploadError> {
    let named = match run_dir.components().next_back() {
        Some(Component::Normal(name)) => Some(name.to_owned()),
        _ => std::fs::canonicalize(run_dir).ok().and_then(|p| p.file_name().map(OsStr::to_owned)),
    };
    let Some(name) = named else {
        return Err(UploadError::NotARunFolder {
            dir: run_dir.to_owned(),
            why: "its path has no folder name to use as the run id".into(),
        });
    };
    name.into_string().map_err(|_| UploadError::NonUtf8Name { path: run_dir.to_owned() })
}

/// Checks that `run_dir` is a run folder: a folder holding `run.json`.
pub(super) fn check_run_folder(run_dir: &Path) -> Result<(), UploadError> {
    let why = match std::fs::metadata(run_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => "it does not exist".to_owned(),
        Err(e) => return Err(UploadError::ReadFile { path: run_dir.to_owned(), source: e }),
        Ok(m) if !m.is_dir() => "it is not a folder".to_owned(),
        Ok(_) if !run_dir.join(RUN_METADATA).is_file() => format!(
            "it has no {RUN_METADATA} (give an output/RUN_ID/ folder written by `inferbench run` or `generate`)"
        ),
        Ok(_) => return Ok(()),
    };
    Err(UploadError::NotARunFolder { dir: run_dir.to_owned(), why })
}

/// Names starting with `.` are a run's in-progress state (`.run.json.lock`, the `.…tmp…` folders
/// snapshots and results are staged in before being renamed into place): never uploaded, because
/// they are either incomplete or meaningless once the run is over.
pub(super) fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// Every regular file under `run_dir`, recursively, sorted by name; hidden files and everything in
/// hidden folders are left out, and symlinks are neither followed nor uploaded (a link could point
/// out of the run folder, or loop).
pub(super) fn list_files(run_dir: &Path) -> Result<Vec<LocalFile>, UploadError> {
    let walk = walkdir::WalkDir::new(run_dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !is_hidden(e.file_name()));
    let mut files = Vec::new();
    for entry in walk {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(run_dir).to_owned();
            let source = e.into_io_error().unwrap_or_else(|| io::Error::other("walk error"));
            UploadError::ReadFile { path, source }
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.into_path();
        let rel = object_suffix(run_dir, &path)?;
        files.push(LocalFile { path, rel });
    }
    Ok(files)
}

/// `a/b/c` for `run_dir/a/b/c`: object names are UTF-8 and `/`-separated whatever the platform.
fn object_suffix(run_dir: &Path, path: &Path) -> Result<String, UploadError> {
    let rel = path.strip_prefix(run_dir).expect("walkdir yields paths under its root");
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    parts.map(|p| p.join("/")).ok_or_else(|| UploadError::NonUtf8Name { path: path.to_owned() })
}

/// A file's size and the two checksums GCS keeps for an object, computed in one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hashes {
    pub size: u64,
    pub md5: [u8; 16],
    pub crc32c: u32,
}

impl Hashes {
    /// MD5 as GCS reports it (`md5Hash`: base64 of the 16 bytes).
    pub fn md5_base64(&self) -> String {
        BASE64.encode(self.md5)
    }

    /// CRC32C as GCS reports it (`crc32c`: base64 of the 4 bytes, big-endian).
    pub fn crc32c_base64(&self) -> String {
        BASE64.encode(self.crc32c.to_be_bytes())
    }

    /// Whether an object with this size and these checksums holds the same bytes. MD5 is compared
    /// when the object has one; objects without one (composite objects, customer-encrypted ones)
    /// are compared by CRC32C; an object with neither counts as different, so it is uploaded again.
    pub fn matches(&self, size: u64, md5: Option<&str>, crc32c: Option<&str>) -> bool {
        size == self.size
            && match (md5, crc32c) {
                (Some(m), _) => m == self.md5_base64(),
                (None, Some(c)) => c == self.crc32c_base64(),
                (None, None) => false,
            }
    }
}

/// Reads a file through once for its size, MD5 and CRC32C (blocking: call it off the runtime).
pub(super) fn hash_file(path: &Path) -> io::Result<Hashes> {
    let mut file = std::fs::File::open(path)?;
    let mut md5 = Md5::new();
    let mut crc = 0u32;
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        md5.update(&buf[..n]);
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        size += n as u64;
    }
    Ok(Hashes { size, md5: md5.finalize().into(), crc32c: crc })
}

/// The Content-Type an object is stored with, from the file name, so a run's report and JSON
/// open in a browser from the bucket; anything else is stored as bytes.
pub(super) fn content_type(rel: &str) -> &'static str {
    let ext = rel.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "json" => "application/json",
        "html" => "text/html; charset=utf-8",
        "svg" => "image/svg+xml",
        "csv" => "text/csv; charset=utf-8",
        "yaml" | "yml" => "application/yaml",
        "pbtxt" | "txt" | "log" => "text/plain; charset=utf-8",
        "jsonl" => "application/jsonl",
        "zst" => "application/zstd",
        _ if rel.ends_with("SHA256SUMS") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_known_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello world").unwrap();
        let h = hash_file(&p).unwrap();
        assert_eq!(h.size, 11);
        // `gsutil hash` of "hello world": md5 XrY7u+Ae7tCTyyK7j1rNww==, crc32c yZRlqg==.
        assert_eq!(h.md5_base64(), "XrY7u+Ae7tCTyyK7j1rNww==");
        assert_eq!(h.crc32c_base64(), "yZRlqg==");
        assert!(h.matches(11, Some("XrY7u+Ae7tCTyyK7j1rNww=="), None));
        assert!(h.matches(11, None, Some("yZRlqg==")));
        assert!(!h.matches(11, None, None));
        assert!(!h.matches(12, Some("XrY7u+Ae7tCTyyK7j1rNww=="), None));
        assert!(!h.matches(11, Some("1B2M2Y8AsgTpgAmY7PhCfg=="), Some("yZRlqg==")));
    }

    #[test]
    fn empty_file_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty");
        std::fs::write(&p, b"").unwrap();
        let h = hash_file(&p).unwrap();
        assert_eq!(
            (h.size, h.md5_base64().as_str(), h.crc32c_base64().as_str()),
            (0, "1B2M2Y8AsgTpgAmY7PhCfg==", "AAAAAA==")
        );
    }

    #[test]
    fn lists_regular_files_skips_hidden_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("abcd1234");
        std::fs::create_dir_all(run.join("b-abcd1234/manifests")).unwrap();
        std::fs::create_dir_all(run.join(".b-abcd1234.tmp123/results")).unwrap();
        std::fs::write(run.join("run.json"), "{}").unwrap();
        std::fs::write(run.join(".run.json.lock"), "").unwrap();
        std::fs::write(run.join("b-abcd1234/manifests/.hidden"), "").unwrap();
        std::fs::write(run.join("b-abcd1234/manifests/00-namespace.yaml"), "x").unwrap();
        std::fs::write(run.join(".b-abcd1234.tmp123/results/summary.json"), "{}").unwrap();
        std::os::unix::fs::symlink(run.join("run.json"), run.join("link.json")).unwrap();
        std::os::unix::fs::symlink(dir.path(), run.join("linkdir")).unwrap();
        let rels: Vec<String> = list_files(&run).unwrap().into_iter().map(|f| f.rel).collect();
        assert_eq!(rels, ["b-abcd1234/manifests/00-namespace.yaml", "run.json"]);
    }

    #[test]
    fn run_folder_checks() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("abcd1234");
        let err = check_run_folder(&run).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        std::fs::create_dir(&run).unwrap();
        let err = check_run_folder(&run).unwrap_err().to_string();
        assert!(err.contains("no run.json") && err.contains("abcd1234"), "{err}");
        std::fs::write(run.join("run.json"), "{}").unwrap();
        check_run_folder(&run).unwrap();
        assert_eq!(run_id_of(&run).unwrap(), "abcd1234");
        assert_eq!(run_id_of(&dir.path().join("abcd1234/")).unwrap(), "abcd1234");
        std::fs::create_dir(run.join("x")).unwrap();
        assert_eq!(run_id_of(&run.join("x/..")).unwrap(), "abcd1234");
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("run.json"), "application/json");
        assert_eq!(content_type("b/results/requests.jsonl.zst"), "application/zstd");
        assert_eq!(content_type("b/manifests/SHA256SUMS"), "text/plain; charset=utf-8");
        assert_eq!(content_type("b/x.bin"), "application/octet-stream");
    }
}
