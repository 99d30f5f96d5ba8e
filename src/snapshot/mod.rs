//! Immutable snapshots: `output/{run_id}/{benchmark}-{run_id}/{benchmark.pbtxt, manifests/}`.
//!
//! A snapshot is written whole or not at all: files go into a hidden temporary folder next to the
//! target, are synced, made read-only (files 0444, `manifests/` 0555), and the folder is renamed
//! into place in one step. A crash or a failed write leaves at most a `.…tmp…` folder that the next
//! write of the same run removes — never a half snapshot. Durability against power loss costs two
//! filesystem syncs per batch of snapshots (see [`write_all`]), not one per file. `manifests/SHA256SUMS` (the format of
//! `sha256sum`, checkable with `sha256sum -c` from inside `manifests/`) covers the manifests and
//! `../benchmark.pbtxt`; an existing snapshot is verified against it and reused, never rewritten.

pub mod read;
pub mod run_file;

pub use read::{ReadError, Snapshot, Target};

use std::{
    fs,
    io::{self, Write as _},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use crate::schema::hash::sha256_hex;

/// Name of the checksum file inside `manifests/`.
pub const SUMS: &str = "SHA256SUMS";
/// Name of the resolved config file.
pub const BENCHMARK_PBTXT: &str = "benchmark.pbtxt";
/// Name of the base benchmark's resolved config, kept beside [`BENCHMARK_PBTXT`] when the
/// benchmark has a base: what `inferbench report` diffs it against. The base may be abstract (never
/// snapshotted) or left out of the run, and the catalog may change after the run, so the base as
/// it was resolved when the snapshot was taken is kept with it.
pub const BASE_PBTXT: &str = "base.pbtxt";

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// The resolved benchmark, canonical text format.
    pub benchmark_pbtxt: String,
    /// Its base benchmark, resolved, canonical text format (when it has a base).
    pub base_pbtxt: Option<String>,
    /// Manifest files: (file name, text).
    pub manifests: Vec<(String, String)>,
}

/// What writing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new snapshot was written.
    Created,
    /// An existing snapshot verified and was kept; `differs` when the catalog would now render
    /// something else (the snapshot wins: that is what immutability means).
    Reused {
        /// The new render differs from the snapshot.
        differs: bool,
    },
    /// An existing snapshot was replaced (`--overwrite-snapshot`).
    Replaced,
}

/// Snapshot failures; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file's checksum does not match SHA256SUMS.
    #[error(
        "snapshot was modified: {path} does not match its checksum in manifests/SHA256SUMS (expected {expected}, found {actual}); restore it, or re-render with --overwrite-snapshot"
    )]
    Tampered {
        /// The file.
        path: PathBuf,
        /// Recorded checksum.
        expected: String,
        /// Actual checksum.
        actual: String,
    },
    /// A file listed in SHA256SUMS is missing.
    #[error(
        "snapshot is incomplete: {path} is listed in manifests/SHA256SUMS but missing; re-render with --overwrite-snapshot"
    )]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A file not listed in SHA256SUMS was added to `manifests/`.
    #[error(
        "snapshot was modified: {path} is not listed in manifests/SHA256SUMS; remove it, or re-render with --overwrite-snapshot"
    )]
    Unexpected {
        /// The file.
        path: PathBuf,
    },
    /// SHA256SUMS itself is malformed.
    #[error("{path}:{line}: not a sha256sum line: {text:?}")]
    BadSums {
        /// The SHA256SUMS file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The line.
        text: String,
    },
    /// Replacing a snapshot that has results would orphan them.
    #[error(
        "{dir} has results; a snapshot with results is never replaced: use a new run id, or delete {dir}/results first"
    )]
    HasResults {
        /// The benchmark folder.
        dir: PathBuf,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io { path: path.to_path_buf(), source }
}

/// The SHA256SUMS text of a content: manifests in name order, then `../benchmark.pbtxt`, then
/// `../base.pbtxt` when there is one.
fn sums_text(c: &Content) -> String {
    let mut lines: Vec<String> =
        c.manifests.iter().map(|(n, t)| format!("{}  {n}", sha256_hex(t.as_bytes()))).collect();
    lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
    lines.push(format!("{}  ../{BENCHMARK_PBTXT}", sha256_hex(c.benchmark_pbtxt.as_bytes())));
    if let Some(base) = &c.base_pbtxt {
        lines.push(format!("{}  ../{BASE_PBTXT}", sha256_hex(base.as_bytes())));
    }
    lines.join("\n") + "\n"
}

/// Hook called before each file is written: tests use it to fail a write half-way. Called from
/// several threads when many snapshots are written at once.
pub type WriteHook<'a> = &'a (dyn Fn(&Path) -> io::Result<()> + Sync);

/// Writes `content` as the snapshot `dir`, or verifies and reuses the one there.
pub fn write(dir: &Path, content: &Content, overwrite: bool) -> Result<Outcome, SnapshotError> {
    write_with(dir, content, overwrite, &|_| Ok(()))
}

/// [`write`] with a hook before each file write.
pub fn write_with(
    dir: &Path,
    content: &Content,
    overwrite: bool,
    hook: WriteHook<'_>,
) -> Result<Outcome, SnapshotError> {
    write_all([(dir, content)], overwrite, hook).pop().expect("one result per item")
}

/// Writes many snapshots with two filesystem syncs in all, instead of one per file: every
/// snapshot is staged in its temporary folder, the filesystem is synced (the data is durable
/// before any rename), each folder is renamed into place, and the filesystem is synced again
/// (the renames are durable). One result per item, in order; one failure does not stop the others.
pub fn write_all<'a>(
    items: impl IntoIterator<Item = (&'a Path, &'a Content)> + Send,
    overwrite: bool,
    hook: WriteHook<'_>,
) -> Vec<Result<Outcome, SnapshotError>> {
    use rayon::prelude::*;
    // Staging is file creation, slow on some filesystems and independent per snapshot: parallel.
    let items: Vec<_> = items.into_iter().collect();
    let mut parents: Vec<&Path> = items.iter().filter_map(|(dir, _)| dir.parent()).collect();
    parents.sort_unstable();
    parents.dedup();
    for parent in parents {
        remove_stale_temps(parent);
    }
    let prepared: Vec<_> = items.par_iter().map(|(dir, content)| prepare(dir, content, overwrite, hook)).collect();
    let staged = prepared.iter().find_map(|p| match p {
        Ok(Prepared::Staged { tmp, .. }) => Some(tmp.clone()),
        _ => None,
    });
    if let Some(tmp) = &staged {
        sync_fs(tmp);
    }
    let out: Vec<_> = prepared
        .into_iter()
        .map(|p| match p? {
            Prepared::Done(outcome) => Ok(outcome),
            Prepared::Staged { tmp, dir, content } => commit(&tmp, &dir, &content),
        })
        .collect();
    if let Some(tmp) = staged {
        sync_fs(tmp.parent().unwrap_or(Path::new(".")));
    }
    out
}

/// A snapshot verified and reused, or staged in a temporary folder awaiting its rename.
enum Prepared {
    Done(Outcome),
    Staged { tmp: PathBuf, dir: PathBuf, content: Box<Content> },
}

fn prepare(dir: &Path, content: &Content, overwrite: bool, hook: WriteHook<'_>) -> Result<Prepared, SnapshotError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
    if dir.exists() {
        if !overwrite {
            verify(dir)?;
            return Ok(Prepared::Done(Outcome::Reused { differs: differs(dir, content)? }));
        }
        if dir.join("results").exists() {
            return Err(SnapshotError::HasResults { dir: dir.to_path_buf() });
        }
    }
    let tmp = parent.join(format!(".{name}.tmp.{}.{:08x}", std::process::id(), rand::random::<u32>()));
    if let Err(e) = write_tree(&tmp, content, hook) {
        let _ = remove_tree(&tmp);
        return Err(e);
    }
    Ok(Prepared::Staged { tmp, dir: dir.to_path_buf(), content: Box::new(content.clone()) })
}

fn commit(tmp: &Path, dir: &Path, content: &Content) -> Result<Outcome, SnapshotError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
    if dir.exists() {
        // Replace: move the old one aside first, so there is always a complete snapshot in place
        // or none, never a mix.
        let old = parent.join(format!(".{name}.old.{}.{:08x}", std::process::id(), rand::random::<u32>()));
        fs::rename(dir, &old).map_err(io_err(dir))?;
        // Results may have appeared since `prepare` checked (a run working on the same run id):
        // put the snapshot back with them, untouched.
        if old.join("results").exists() {
            fs::rename(&old, dir).map_err(io_err(dir))?;
            let _ = remove_tree(tmp);
            return Err(SnapshotError::HasResults { dir: dir.to_path_buf() });
        }
        fs::rename(tmp, dir).map_err(io_err(dir))?;
        let _ = remove_tree(&old);
        return Ok(Outcome::Replaced);
    }
    match fs::rename(tmp, dir) {
        Ok(()) => Ok(Outcome::Created),
        // Another process (same run id, another catalog) won the race: theirs stands.
        Err(_) if dir.is_dir() => {
            let _ = remove_tree(tmp);
            verify(dir)?;
            Ok(Outcome::Reused { differs: differs(dir, content)? })
        }
        Err(e) => {
            let _ = remove_tree(tmp);
            Err(io_err(dir)(e))
        }
    }
}

fn write_tree(tmp: &Path, c: &Content, hook: WriteHook<'_>) -> Result<(), SnapshotError> {
    let manifests = tmp.join("manifests");
    fs::create_dir_all(&manifests).map_err(io_err(&manifests))?;
    let mut files: Vec<(PathBuf, &str)> = vec![(tmp.join(BENCHMARK_PBTXT), c.benchmark_pbtxt.as_str())];
    files.extend(c.base_pbtxt.as_deref().map(|b| (tmp.join(BASE_PBTXT), b)));
    files.extend(c.manifests.iter().map(|(n, t)| (manifests.join(n), t.as_str())));
    let sums = sums_text(c);
    files.push((manifests.join(SUMS), sums.as_str()));
    for (path, text) in &files {
        hook(path).map_err(io_err(path))?;
        let mut f = fs::File::create(path).map_err(io_err(path))?;
        f.write_all(text.as_bytes()).map_err(io_err(path))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o444)).map_err(io_err(path))?;
    }
    fs::set_permissions(&manifests, fs::Permissions::from_mode(0o555)).map_err(io_err(&manifests))?;
    Ok(())
}

/// Makes everything written so far on `path`'s filesystem durable (one call for all files).
/// Failure to sync loses no data of a running system, only power-loss durability: not an error.
fn sync_fs(path: &Path) {
    if let Ok(f) = fs::File::open(path) {
        let _ = rustix::fs::syncfs(&f);
    }
}

/// Removes a tree we created, restoring write permission first (`manifests/` is 0555).
fn remove_tree(p: &Path) -> io::Result<()> {
    let m = p.join("manifests");
    if m.is_dir() {
        fs::set_permissions(&m, fs::Permissions::from_mode(0o755))?;
    }
    fs::remove_dir_all(p)
}

/// Removes leftovers of writes that crashed: `.{name}.tmp.{pid}.*` / `.{name}.old.{pid}.*` folders
/// of processes that no longer run. Called once per run folder per batch (listing the folder once
/// per snapshot would be quadratic in the number of benchmarks).
fn remove_stale_temps(parent: &Path) {
    let Ok(rd) = fs::read_dir(parent) else { return };
    for e in rd.flatten() {
        let f = e.file_name().to_string_lossy().into_owned();
        // Names are DNS labels (no dots): "", name, "tmp"|"old", pid, random.
        let parts: Vec<&str> = f.split('.').collect();
        let ours = parts.len() == 5 && parts[0].is_empty() && matches!(parts[2], "tmp" | "old");
        let Some(pid) = parts.get(3).and_then(|p| p.parse::<u32>().ok()) else { continue };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if ours && !alive {
            let _ = remove_tree(&e.path());
        }
    }
}

/// Whether a verified snapshot holds something else than `content`: its checksums say, without
/// reading the files again. A snapshot taken before bases were kept (no `base.pbtxt`) does not
/// differ for that alone.
fn differs(dir: &Path, content: &Content) -> Result<bool, SnapshotError> {
    let p = dir.join("manifests").join(SUMS);
    let sums = fs::read_to_string(&p).map_err(io_err(&p))?;
    let without_base = Content { base_pbtxt: None, ..content.clone() };
    Ok(sums != sums_text(content) && !(content.base_pbtxt.is_some() && sums == sums_text(&without_base)))
}

/// Reads a snapshot's files back as a [`Content`].
pub fn read_content(dir: &Path) -> Result<Content, SnapshotError> {
    let p = dir.join(BENCHMARK_PBTXT);
    let benchmark_pbtxt = fs::read_to_string(&p).map_err(io_err(&p))?;
    let b = dir.join(BASE_PBTXT);
    let base_pbtxt = match fs::read_to_string(&b) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&b)(e)),
    };
    let m = dir.join("manifests");
    let mut manifests = vec![];
    for e in fs::read_dir(&m).map_err(io_err(&m))? {
        let e = e.map_err(io_err(&m))?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n != SUMS {
            manifests.push((n, fs::read_to_string(e.path()).map_err(io_err(&e.path()))?));
        }
    }
    manifests.sort();
    Ok(Content { benchmark_pbtxt, base_pbtxt, manifests })
}

/// Verifies a snapshot against its SHA256SUMS: every listed file present and matching, no
/// unlisted file in `manifests/`.
pub fn verify(dir: &Path) -> Result<(), SnapshotError> {
    let m = dir.join("manifests");
    let sums_path = m.join(SUMS);
    let sums = match fs::read_to_string(&sums_path) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SnapshotError::Missing { path: sums_path });
        }
        Err(e) => return Err(io_err(&sums_path)(e)),
    };
    let mut listed = std::collections::HashSet::new();
    for (i, line) in sums.lines().enumerate() {
        let bad = || SnapshotError::BadSums { path: sums_path.clone(), line: i + 1, text: line.to_owned() };
        let (hash, file) = line.split_once("  ").ok_or_else(bad)?;
        if hash.len() != 64 || file.is_empty() || file.contains('\0') {
            return Err(bad());
        }
        let path = m.join(file);
        listed.insert(file.to_owned());
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SnapshotError::Missing { path });
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let actual = sha256_hex(&bytes);
        if actual != hash {
            return Err(SnapshotError::Tampered { path, expected: hash.to_owned(), actual });
        }
    }
    for e in fs::read_dir(&m).map_err(io_err(&m))? {
        let e = e.map_err(io_err(&m))?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n != SUMS && !listed.contains(&n) {
            return Err(SnapshotError::Unexpected { path: e.path() });
        }
    }
    Ok(())
}
