//! Handing results out of a load pod through the Kubernetes API only (issue 7): the contract
//! between the load pod (`inferbench results pack`) and the platform that downloads them.
//!
//! The load Job writes to an `emptyDir`, gone once its pod ends, and pod logs are rotated (10 MB
//! by default) — so the engine keeps its pod alive until the platform has the files:
//! 1. `inferbench load --hold-results` writes its results, then **seals** them: `SHA256SUMS`,
//!    written last and atomically, lists every file's digest. Its existence is the readiness
//!    probe (`inferbench results check /results`), which the platform watches.
//! 2. The platform execs `inferbench results pack /results`: a tar of the folder on stdout; the
//!    tar's own digest and size go to stderr, so a truncated or altered stream is detected.
//! 3. The platform unpacks into its staging folder and checks every file against `SHA256SUMS`
//!    ([`unpack_verified`]); then execs `inferbench results release /results`, and the engine
//!    exits 0, completing the Job. A hold timeout ends a pod nobody fetches.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use sha2::{Digest as _, Sha256};

/// The seal: `sha256  relative/path` per line, sorted.
pub const SUMS: &str = "SHA256SUMS";
/// The seal while it is written.
const SUMS_TMP: &str = "SHA256SUMS.tmp";
/// Created by `results release`.
pub const RELEASED: &str = ".released";

fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = vec![];
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.map_err(std::io::Error::other)?;
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e.path().strip_prefix(dir).map_err(std::io::Error::other)?.to_path_buf();
        let name = rel.to_string_lossy();
        if name == SUMS || name == RELEASED || name == SUMS_TMP {
            continue;
        }
        out.push(rel);
    }
    Ok(out)
}

fn digest_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// Writes `SHA256SUMS` for every file in `dir` (atomically: temp file, fsync, rename).
pub fn seal(dir: &Path) -> std::io::Result<usize> {
    let mut text = String::new();
    let files = files(dir)?;
    for rel in &files {
        text.push_str(&format!("{}  {}\n", digest_file(&dir.join(rel))?, rel.display()));
    }
    let tmp = dir.join(SUMS_TMP);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(SUMS))?;
    Ok(files.len())
}

/// Whether `dir` is sealed.
pub fn sealed(dir: &Path) -> bool {
    dir.join(SUMS).is_file()
}

/// Writes a tar of the sealed `dir` to `out`; returns (sha256 of the tar, bytes).
pub fn pack(dir: &Path, out: impl Write) -> std::io::Result<(String, u64)> {
    if !sealed(dir) {
        return Err(std::io::Error::other(format!(
            "{}: not sealed (no {SUMS}): the load has not finished",
            dir.display()
        )));
    }
    let mut hashing = HashingWriter { inner: out, hash: Sha256::new(), bytes: 0 };
    {
        let mut tar = tar::Builder::new(&mut hashing);
        tar.mode(tar::HeaderMode::Deterministic);
        for rel in files(dir)?.into_iter().chain([PathBuf::from(SUMS)]) {
            tar.append_path_with_name(dir.join(&rel), &rel)?;
        }
        tar.finish()?;
    }
    hashing.inner.flush()?;
    Ok((hex::encode(hashing.hash.finalize()), hashing.bytes))
}

/// Marks `dir` fetched: the holding engine exits.
pub fn release(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join(RELEASED), b"")
}

/// Waits until `dir` is released, `timeout` passes, or `stop` says so (checked every 200 ms:
/// one stat of a local file, nothing to watch more cleverly for).
pub fn hold(dir: &Path, timeout: Duration, stop: &dyn Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && !stop() {
        if dir.join(RELEASED).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Marks a stage's result in the load pod's log, so the platform following the log shows each
/// stage as it ends (progress only: results travel by [`pack`], never through logs).
pub const STAGE_MARKER: &str = "inferbench-stage: ";

/// One log line carrying a stage's result.
pub fn stage_log_line(s: &crate::StageResult) -> String {
    let one = crate::Results { run: None, stages: vec![s.clone()] };
    format!("{STAGE_MARKER}{}", crate::result_files::summary_json_line(&one))
}

/// The stage result of a log line written by [`stage_log_line`].
pub fn parse_stage_log_line(line: &str) -> Option<crate::StageResult> {
    let json = line.trim_end().strip_prefix(STAGE_MARKER)?;
    crate::result_files::parse_summary(json).ok()?.stages.into_iter().next()
}

/// A writer that hashes and counts what passes through.
pub struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hash: Sha256::new(), bytes: 0 }
    }

    /// (hex sha256, bytes) so far, and the inner writer.
    pub fn finish(self) -> (String, u64, W) {
        (hex::encode(self.hash.finalize()), self.bytes, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Why a download is refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Reading or writing.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A file is missing, extra, or differs from the seal.
    #[error("{0}")]
    Mismatch(String),
}

/// Unpacks a tar into `dest` and checks every file against the `SHA256SUMS` it carries: same set
/// of files, same digests. Returns the number of files.
pub fn unpack_verified(tar_stream: impl Read, dest: &Path) -> Result<usize, VerifyError> {
    let mut archive = tar::Archive::new(tar_stream);
    for entry in archive.entries()? {
        let mut entry = entry?;
        // Files and folders only: a link would bring in what no checksum covers.
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(VerifyError::Mismatch(format!("not a file in the archive: {}", entry.path()?.display())));
        }
        // unpack_in refuses paths escaping `dest` (.., absolute).
        if !entry.unpack_in(dest)? {
            return Err(VerifyError::Mismatch(format!("unsafe path in the archive: {}", entry.path()?.display())));
        }
    }
    let sums = std::fs::read_to_string(dest.join(SUMS))
        .map_err(|e| VerifyError::Mismatch(format!("the download has no {SUMS}: {e}")))?;
    let mut want = BTreeMap::new();
    for (n, line) in sums.lines().enumerate() {
        let (digest, name) = line
            .split_once("  ")
            .ok_or_else(|| VerifyError::Mismatch(format!("{SUMS} line {}: not `digest  path`", n + 1)))?;
        want.insert(PathBuf::from(name), digest.to_owned());
    }
    let have = files(dest)?;
    for rel in &have {
        match want.remove(rel) {
            None => return Err(VerifyError::Mismatch(format!("{}: not in {SUMS}", rel.display()))),
            Some(d) if d != digest_file(&dest.join(rel))? => {
                return Err(VerifyError::Mismatch(format!("{}: its sha256 differs from {SUMS}", rel.display())));
            }
            Some(_) => {}
        }
    }
    if let Some((rel, _)) = want.into_iter().next() {
        return Err(VerifyError::Mismatch(format!("{}: listed in {SUMS} but missing", rel.display())));
    }
    Ok(have.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) {
        std::fs::create_dir_all(dir.join("lpg")).unwrap();
        std::fs::write(dir.join("summary.json"), b"{\"stages\":[]}").unwrap();
        std::fs::write(dir.join("lpg/a.json"), vec![7u8; 300_000]).unwrap();
    }

    #[test]
    fn a_sealed_folder_round_trips_and_its_digest_is_the_streams() {
        let src = tempfile::tempdir().unwrap();
        sample(src.path());
        assert!(pack(src.path(), Vec::new()).is_err(), "unsealed folders are not packed");
        assert_eq!(seal(src.path()).unwrap(), 2);
        let mut buf = Vec::new();
        let (digest, bytes) = pack(src.path(), &mut buf).unwrap();
        assert_eq!(bytes as usize, buf.len());
        assert_eq!(digest, hex::encode(Sha256::digest(&buf)));
        let dst = tempfile::tempdir().unwrap();
        assert_eq!(unpack_verified(&buf[..], dst.path()).unwrap(), 2);
        assert_eq!(std::fs::read(dst.path().join("lpg/a.json")).unwrap(), vec![7u8; 300_000]);
    }

    #[test]
    fn a_changed_byte_is_caught() {
        let src = tempfile::tempdir().unwrap();
        sample(src.path());
        seal(src.path()).unwrap();
        // Altered after sealing: the download must be refused, naming the file.
        std::fs::write(src.path().join("summary.json"), b"{\"stages\":[1]}").unwrap();
        let mut buf = Vec::new();
        pack(src.path(), &mut buf).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let e = unpack_verified(&buf[..], dst.path()).unwrap_err().to_string();
        assert!(e.contains("summary.json") && e.contains("differs"), "{e}");
    }

    #[test]
    fn a_stage_survives_its_log_line() {
        let s = crate::StageResult { name: "rate-4".into(), duration_seconds: 2.5, ..Default::default() };
        let line = stage_log_line(&s);
        assert!(!line.contains('\n'), "one line: {line}");
        assert_eq!(parse_stage_log_line(&line), Some(s));
        assert_eq!(parse_stage_log_line("rate-4  sent 3"), None);
    }

    #[test]
    fn release_ends_a_hold() {
        let d = tempfile::tempdir().unwrap();
        assert!(!hold(d.path(), Duration::ZERO, &|| false));
        release(d.path()).unwrap();
        assert!(hold(d.path(), Duration::from_secs(5), &|| false));
    }
}
