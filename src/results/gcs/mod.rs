//! Uploading a run folder to Google Cloud Storage: `output/{run_id}/…` → `gs://BUCKET/{run_id}/…`.
//!
//! Why it works the way it does:
//! - **Idempotent and resumable.** The objects already under `{run_id}/` are listed once, and a
//!   file whose object has the same size and MD5 (CRC32C when GCS keeps no MD5) is skipped; a file
//!   that differs is uploaded again. So an interrupted upload is finished by running it again, and
//!   `inferbench run --gcs-bucket` can upload after every benchmark without sending anything twice.
//! - **Only finished state.** Hidden files and folders (`.run.json.lock`, the `.…tmp…` folders a
//!   snapshot or results are staged in) are in-progress state and never uploaded; symlinks are not
//!   followed. A file that changes while it is uploaded is an error, not a silently mixed object.
//! - **Fails early and clearly.** The run folder is checked (it must hold `run.json`) and the bucket
//!   listed before anything is uploaded; errors name the bucket, endpoint or file and what to do.
//!   Transient failures are retried a few times with backoff (`backon`), and an endpoint that
//!   cannot be reached is reported within about 15 s instead of hanging.
//! - **Testable locally.** With `STORAGE_EMULATOR_HOST` set (`host:port` or a URL, as Google's own
//!   clients read it) requests go to that emulator with anonymous access and no credential lookup;
//!   otherwise Application Default Credentials are used. `scripts/gcs-emulator` runs one.

mod local;
mod remote;

use std::{collections::HashMap, io, path::Path, path::PathBuf};

use futures_util::StreamExt as _;

pub use local::{RUN_METADATA, run_id_of};
pub use remote::GCS_ENDPOINT;

use local::LocalFile;
use remote::{Remote, RemoteObject};

/// The environment variable naming a GCS emulator (`127.0.0.1:4443` or `http://127.0.0.1:4443`),
/// the name Google's client libraries and gcloud use for it.
pub const EMULATOR_ENV: &str = "STORAGE_EMULATOR_HOST";

/// Files hashed and uploaded at once: enough to hide per-request latency on many small files
/// without competing for bandwidth on the few large ones.
const PARALLEL_UPLOADS: usize = 4;

/// What an upload did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// Files uploaded (new, or different from the object that was there).
    pub uploaded: usize,
    /// Files whose object was already there with the same contents.
    pub skipped: usize,
    /// Bytes of the uploaded files.
    pub bytes_uploaded: u64,
}

/// Why an upload failed; each message names what is wrong (folder, file, bucket or endpoint) and
/// what to do about it. Nothing is left half-done: objects are written whole or not at all, so
/// running the upload again after fixing the cause finishes it.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The folder given is not a run folder (missing, not a folder, or no `run.json`).
    #[error("{} is not a run folder: {why}", dir.display())]
    NotARunFolder { dir: PathBuf, why: String },
    /// The bucket argument is not a bucket name.
    #[error("{bucket:?} is not a bucket name: give just the name, e.g. --gcs-bucket my-results")]
    InvalidBucket { bucket: String },
    /// A file or folder name is not UTF-8; GCS object names must be.
    #[error("{}: the name is not valid UTF-8, which GCS object names must be; rename it", path.display())]
    NonUtf8Name { path: PathBuf },
    /// A file or folder of the run could not be read.
    #[error("could not read {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// No Google credentials were found (real GCS only: an emulator needs none).
    #[error(
        "could not get Google credentials ({source}): set GOOGLE_APPLICATION_CREDENTIALS to a \
         service-account key file or run `gcloud auth application-default login`; to use an \
         emulator instead, set STORAGE_EMULATOR_HOST=HOST:PORT"
    )]
    Credentials {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The HTTP client could not be built (TLS set-up).
    #[error("could not set up the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The bucket does not exist.
    #[error(
        "bucket {bucket:?} does not exist (at {endpoint}): check the name, or create it \
         (gcloud storage buckets create gs://{bucket}); nothing was uploaded"
    )]
    BucketNotFound { bucket: String, endpoint: String },
    /// The credentials may not use the bucket.
    #[error("access to bucket {bucket:?} was denied ({message}): {hint}")]
    AccessDenied { bucket: String, code: u16, message: String, hint: &'static str },
    /// No connection could be opened to the endpoint (after retries).
    #[error("could not connect to the GCS endpoint {endpoint} ({cause}); {hint}")]
    Unreachable {
        endpoint: String,
        cause: String,
        hint: &'static str,
        #[source]
        source: gcloud_storage::http::Error,
    },
    /// Any other GCS failure, after retries.
    #[error("GCS error while {doing}: {cause}; running the upload again resumes it")]
    Gcs {
        doing: String,
        cause: String,
        #[source]
        source: gcloud_storage::http::Error,
    },
    /// The file changed between being hashed and being uploaded (GCS received other bytes, or
    /// the request broke because its length no longer held).
    #[error(
        "{} changed while it was being uploaded to {object}; upload again once the run has \
         finished writing it",
        path.display()
    )]
    Changed { path: PathBuf, object: String },
}

/// Uploads the run folder `run_dir` (`output/{run_id}/`) to `gs://{bucket}/{run_id}/`, skipping
/// files already there with the same contents; on the emulator named by `STORAGE_EMULATOR_HOST`
/// when that is set (anonymously), else on GCS with Application Default Credentials.
///
/// `progress` is called after each file with (files done, files total, relative path, skipped?).
pub async fn upload_run(
    run_dir: &Path,
    bucket: &str,
    progress: &(dyn Fn(usize, usize, &str, bool) + Send + Sync),
) -> Result<UploadReport, UploadError> {
    let emulator = std::env::var(EMULATOR_ENV).ok().filter(|h| !h.trim().is_empty());
    upload_run_to(emulator.as_deref(), run_dir, bucket, progress).await
}

/// Checks that `bucket` exists and can be listed with the credentials at hand (the same check the
/// upload starts with): `inferbench run --gcs-bucket` calls it before the first benchmark, so a
/// typo or missing credentials do not surface only after hours of benchmarking.
pub async fn check_bucket(bucket: &str) -> Result<(), UploadError> {
    let emulator = std::env::var(EMULATOR_ENV).ok().filter(|h| !h.trim().is_empty());
    let bucket = bucket_name(bucket)?;
    let remote = Remote::new(emulator.as_deref(), bucket).await?;
    remote.list("inferbench-bucket-check/").await.map(drop)
}

/// [`upload_run`] with the emulator given instead of read from the environment: `Some(endpoint)`
/// (`host:port` or a URL) uploads there anonymously, `None` to GCS with Google credentials. For
/// callers that must not depend on process-global state (tests running in parallel).
pub async fn upload_run_to(
    emulator: Option<&str>,
    run_dir: &Path,
    bucket: &str,
    progress: &(dyn Fn(usize, usize, &str, bool) + Send + Sync),
) -> Result<UploadReport, UploadError> {
    local::check_run_folder(run_dir)?;
    let run_id = run_id_of(run_dir)?;
    let bucket = bucket_name(bucket)?;
    let files = local::list_files(run_dir)?;
    let remote = Remote::new(emulator, bucket).await?;
    let prefix = format!("{run_id}/");
    // The first request, and the bucket check: a missing bucket or an unreachable endpoint fails
    // here, before anything is uploaded.
    let existing = remote.list(&prefix).await?;

    let total = files.len();
    let mut report = UploadReport::default();
    // By index: a closure taking `&LocalFile` would make the future not `Send` (a higher-ranked
    // lifetime the compiler cannot prove), and the run command spawns this future.
    let mut outcomes = futures_util::stream::iter(0..total)
        .map(|i| sync_file(&remote, &existing, &prefix, &files[i]))
        .buffer_unordered(PARALLEL_UPLOADS);
    let mut done = 0;
    // The first error ends the upload (dropping the uploads in flight, which leave no object).
    while let Some(outcome) = outcomes.next().await {
        let (file, uploaded) = outcome?;
        done += 1;
        match uploaded {
            Some(bytes) => {
                report.uploaded += 1;
                report.bytes_uploaded += bytes;
            }
            None => report.skipped += 1,
        }
        progress(done, total, &file.rel, uploaded.is_none());
    }
    Ok(report)
}

/// `gs://BUCKET/` → `BUCKET`, since a URL is what people copy; anything else with a `/` is not a
/// bucket.
fn bucket_name(bucket: &str) -> Result<&str, UploadError> {
    let name = bucket.trim();
    let name = name.strip_prefix("gs://").unwrap_or(name).trim_end_matches('/');
    if name.is_empty() || name.contains('/') {
        return Err(UploadError::InvalidBucket { bucket: bucket.to_owned() });
    }
    Ok(name)
}

/// Hashes one file and uploads it unless its object is already there with the same contents.
/// Returns the bytes uploaded, or `None` when skipped.
async fn sync_file<'f>(
    remote: &Remote,
    existing: &HashMap<String, RemoteObject>,
    prefix: &str,
    file: &'f LocalFile,
) -> Result<(&'f LocalFile, Option<u64>), UploadError> {
    let path = file.path.clone();
    // Hashing reads the whole file: off the async threads.
    let hashes = match tokio::task::spawn_blocking(move || local::hash_file(&path)).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(io::Error::other(e)),
    }
    .map_err(|source| UploadError::ReadFile { path: file.path.clone(), source })?;
    let name = format!("{prefix}{}", file.rel);
    if let Some(o) = existing.get(&name)
        && hashes.matches(o.size, o.md5.as_deref(), o.crc32c.as_deref())
    {
        return Ok((file, None));
    }
    remote.upload(file, &name, &hashes).await?;
    Ok((file, Some(hashes.size)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert_eq!(bucket_name("b").unwrap(), "b");
        assert_eq!(bucket_name("gs://b/").unwrap(), "b");
        assert!(matches!(bucket_name("gs://b/run"), Err(UploadError::InvalidBucket { .. })));
        assert!(matches!(bucket_name(" "), Err(UploadError::InvalidBucket { .. })));
    }

    /// The run command spawns the upload on its runtime: the future must be `Send`.
    #[test]
    fn upload_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let f = upload_run(Path::new("x"), "b", &|_, _, _, _| {});
        assert_send(&f);
    }

    #[tokio::test]
    async fn not_a_run_folder_fails_before_any_request() {
        let dir = tempfile::tempdir().unwrap();
        // An endpoint nobody listens on: reaching it would be a different error.
        let err = upload_run_to(Some("127.0.0.1:9"), dir.path(), "b", &|_, _, _, _| {}).await.unwrap_err();
        assert!(matches!(err, UploadError::NotARunFolder { .. }), "{err}");
        assert!(err.to_string().contains("no run.json"), "{err}");
    }
}
