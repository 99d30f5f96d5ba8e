//! Writing the report folder whole or not at all: every file goes into a hidden staging folder
//! beside it (`.{name}.tmp-{pid}`), is synced, and the folder then takes the report's name in one
//! step — swapped with the previous report atomically (Linux `renameat2(RENAME_EXCHANGE)`), so
//! a reader or a Ctrl-C at any instant sees the old report or the new one, never half of one.
//! A staging folder left by a process that is gone is removed by the next report.
//!
//! Only a folder that is an inferbench report (it holds [`MARKER`]) or is empty is ever replaced:
//! `--out` pointed at a folder of other files is an error, not a deletion.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use super::ReportError;

/// The file that marks a folder as an inferbench report (safe to replace).
pub const MARKER: &str = ".inferbench-report";

fn err(path: &Path, message: impl Into<String>) -> ReportError {
    ReportError { path: path.to_path_buf(), message: message.into() }
}

/// Writes `files` (paths relative to `out`, contents) as the folder `out`, replacing the report
/// there.
pub fn publish(out: &Path, files: &[(PathBuf, Vec<u8>)]) -> Result<(), ReportError> {
    let name = out.file_name().ok_or_else(|| err(out, "not a folder name"))?.to_string_lossy().into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| err(&parent, e.to_string()))?;
    remove_stale(&parent, &name);
    if out.exists() {
        let replaceable =
            out.join(MARKER).is_file() || std::fs::read_dir(out).map_err(|e| err(out, e.to_string()))?.next().is_none();
        if !replaceable {
            return Err(err(
                out,
                format!(
                    "exists and is not an inferbench report (no {MARKER} in it); nothing was replaced: choose another --out"
                ),
            ));
        }
    }
    let staging = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let result = stage(&staging, files).and_then(|()| swap_in(&staging, out));
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn stage(staging: &Path, files: &[(PathBuf, Vec<u8>)]) -> Result<(), ReportError> {
    std::fs::create_dir_all(staging).map_err(|e| err(staging, e.to_string()))?;
    let marker = (
        PathBuf::from(MARKER),
        b"written by inferbench report; this folder is replaced whole by the next one\n".to_vec(),
    );
    for (rel, bytes) in files.iter().chain(std::iter::once(&marker)) {
        let path = staging.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(dir, e.to_string()))?;
        }
        let mut f = std::fs::File::create(&path).map_err(|e| err(&path, e.to_string()))?;
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| err(&path, e.to_string()))?;
    }
    for dir in walkdir::WalkDir::new(staging).into_iter().filter_map(Result::ok).filter(|e| e.file_type().is_dir()) {
        std::fs::File::open(dir.path()).and_then(|d| d.sync_all()).map_err(|e| err(dir.path(), e.to_string()))?;
    }
    Ok(())
}

/// Puts `staging` in place of `out`; the previous report ends up at `staging` (removed after).
fn swap_in(staging: &Path, out: &Path) -> Result<(), ReportError> {
    if out.exists() {
        rustix::fs::renameat_with(rustix::fs::CWD, staging, rustix::fs::CWD, out, rustix::fs::RenameFlags::EXCHANGE)
            .map_err(|e| err(out, format!("replacing the previous report: {e}")))?;
    } else {
        std::fs::rename(staging, out).map_err(|e| err(out, e.to_string()))?;
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(|e| err(parent, e.to_string()))
}

/// Removes `.{name}.tmp-{pid}` folders of processes that are gone.
fn remove_stale(parent: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for e in entries.flatten() {
        let f = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = f.strip_prefix(&prefix).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !crate::schema::clock::pid_alive(pid) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(tag: &str) -> Vec<(PathBuf, Vec<u8>)> {
        vec![("index.html".into(), tag.as_bytes().to_vec()), ("plots/a.svg".into(), b"<svg/>".to_vec())]
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_report_replaces_the_previous_one_whole_and_leaves_nothing_beside_it() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("report");
        publish(&out, &files("one")).unwrap();
        publish(&out, &files("two")).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("index.html")).unwrap(), "two");
        assert_eq!(names(&out), [MARKER, "index.html", "plots"]);
        assert_eq!(names(d.path()), ["report"], "no staging or old folder left");
    }

    #[test]
    fn a_folder_of_other_files_is_never_replaced() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("precious.txt"), "keep").unwrap();
        let e = publish(d.path(), &files("x")).unwrap_err().to_string();
        assert!(e.contains("is not an inferbench report") && e.contains("nothing was replaced"), "{e}");
        assert_eq!(std::fs::read_to_string(d.path().join("precious.txt")).unwrap(), "keep");
    }

    #[test]
    fn staging_left_by_a_dead_process_is_removed() {
        let d = tempfile::tempdir().unwrap();
        // pid 4194304 is above Linux's pid_max: never alive.
        let stale = d.path().join(".report.tmp-4194304");
        std::fs::create_dir_all(stale.join("plots")).unwrap();
        publish(&d.path().join("report"), &files("x")).unwrap();
        assert_eq!(names(d.path()), ["report"]);
    }
}
