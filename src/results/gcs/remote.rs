//! The GCS side of an upload: the client (real GCS with Google credentials, or an emulator with
//! none), bounded retries, and GCS errors turned into [`UploadError`]s that say what to do.
//!
//! Everything goes through GCS's JSON API over HTTP (`gcloud-storage`), which is also what
//! fake-gcs-server implements, so the code the tests run against the emulator is the code that runs
//! against GCS.

use std::{collections::HashMap, time::Duration};

use backon::{ExponentialBuilder, Retryable as _};
use gcloud_storage::{
    client::{Client, ClientConfig},
    http::{
        Error as GcsError,
        objects::{
            list::ListObjectsRequest,
            upload::{Media, UploadObjectRequest, UploadType},
        },
    },
};

use super::{
    UploadError,
    local::{Hashes, LocalFile, content_type},
};

/// GCS's endpoint when no emulator is named.
pub const GCS_ENDPOINT: &str = "https://storage.googleapis.com";

/// How long a TCP connection may take to open. With [`retry_policy`] it bounds how long an
/// unreachable endpoint takes to be reported (4 attempts × 3 s + backoff ≈ 15 s at worst; a refused
/// connection fails in about 2 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Retries after a transient failure's first attempt.
const RETRIES: usize = 3;

/// Retries for transient failures (connection errors, 408, 429, 5xx): 3 retries, exponential
/// backoff from 200 ms with jitter. Short, because the whole upload is resumable: a run that fails
/// anyway is finished by running the upload again, which skips what is already there.
fn retry_policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(RETRIES)
        .with_jitter()
}

/// An object already in the bucket, as much as the skip decision needs.
#[derive(Debug, Clone)]
pub(super) struct RemoteObject {
    pub size: u64,
    pub md5: Option<String>,
    pub crc32c: Option<String>,
}

/// A bucket on an endpoint, with a client authorised for it.
pub(super) struct Remote {
    client: Client,
    bucket: String,
    endpoint: String,
    emulated: bool,
}

/// `http://host:port` from STORAGE_EMULATOR_HOST's usual forms (`host:port`, `http://host:port/`).
pub(super) fn emulator_endpoint(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.contains("://") { host.to_owned() } else { format!("http://{host}") }
}

/// Longest wait for any read from the endpoint.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

impl Remote {
    /// A client for `bucket`: on the emulator at `emulator` (an endpoint URL or `host:port`) with
    /// anonymous access and no credential lookup at all, else on GCS with Application Default
    /// Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file, or the metadata server).
    /// Makes no request to the bucket yet.
    pub async fn new(emulator: Option<&str>, bucket: &str) -> Result<Self, UploadError> {
        let mut http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_keepalive(Duration::from_secs(30))
            // An endpoint that accepts connections but never answers must not hang a run.
            .read_timeout(READ_TIMEOUT);
        if emulator.is_some() {
            // An emulator is on the local network; an HTTP(S)_PROXY meant for Google would only
            // get in the way.
            http = http.no_proxy();
        }
        let http = http.build().map_err(UploadError::HttpClient)?;
        let config = ClientConfig {
            http: Some(reqwest_middleware::ClientBuilder::new(http).build()),
            ..ClientConfig::default()
        };
        let (config, endpoint) = match emulator {
            Some(host) => {
                let endpoint = emulator_endpoint(host);
                (ClientConfig { storage_endpoint: endpoint.clone(), ..config }.anonymous(), endpoint)
            }
            None => {
                let config = config.with_auth().await.map_err(|e| UploadError::Credentials { source: Box::new(e) })?;
                (config, GCS_ENDPOINT.to_owned())
            }
        };
        Ok(Self { client: Client::new(config), bucket: bucket.to_owned(), endpoint, emulated: emulator.is_some() })
    }

    /// Every object whose name starts with `prefix`, by name: one listing (all pages) instead of a
    /// lookup per file.
    ///
    /// It is also the bucket check, made before anything is uploaded: a missing bucket is a 404
    /// here. Listing needs only object permissions (`storage.objects.list`), which an account that
    /// uploads results has; reading the bucket itself (`buckets.get`) needs `storage.buckets.get`,
    /// which object-level roles such as roles/storage.objectAdmin do not grant, so checking with it
    /// would reject accounts that can upload perfectly well.
    pub async fn list(&self, prefix: &str) -> Result<HashMap<String, RemoteObject>, UploadError> {
        let mut objects = HashMap::new();
        let mut req = ListObjectsRequest {
            bucket: self.bucket.clone(),
            prefix: Some(prefix.to_owned()),
            max_results: Some(1000),
            ..Default::default()
        };
        loop {
            let page = retrying(|| self.client.list_objects(&req))
                .await
                .map_err(|e| self.error(e, &format!("listing gs://{}/{prefix}", self.bucket)))?;
            for o in page.items.unwrap_or_default() {
                let size = u64::try_from(o.size).unwrap_or(u64::MAX);
                objects.insert(o.name, RemoteObject { size, md5: o.md5_hash, crc32c: o.crc32c });
            }
            match page.next_page_token {
                Some(token) if !token.is_empty() => req.page_token = Some(token),
                _ => return Ok(objects),
            }
        }
    }

    /// Uploads one file as object `name`, streaming it from disk (reopened on each attempt, so a
    /// retry sends the whole file again), then checks that GCS received the bytes that were hashed:
    /// a file that changed in between is an error rather than a silently different object.
    pub async fn upload(&self, file: &LocalFile, name: &str, hashes: &Hashes) -> Result<(), UploadError> {
        let req = UploadObjectRequest { bucket: self.bucket.clone(), ..Default::default() };
        let media = Media {
            name: name.to_owned().into(),
            content_type: content_type(&file.rel).into(),
            content_length: Some(hashes.size),
        };
        let upload_type = UploadType::Simple(media);
        let attempt = || async {
            let f = tokio::fs::File::open(&file.path).await.map_err(Attempt::Read)?;
            self.client.upload_object(&req, reqwest::Body::from(f), &upload_type).await.map_err(Attempt::Gcs)
        };
        let object = attempt
            .retry(retry_policy())
            .when(|e| matches!(e, Attempt::Gcs(e) if is_transient(e)))
            .await
            .map_err(|e| match e {
                Attempt::Read(source) => UploadError::ReadFile { path: file.path.clone(), source },
                // A file that grew or shrank since it was hashed breaks the request (its
                // Content-Length no longer holds): say so rather than blame the connection.
                Attempt::Gcs(e) => match std::fs::metadata(&file.path) {
                    Ok(m) if m.len() != hashes.size && !matches!(e, GcsError::Response(_)) => {
                        UploadError::Changed { path: file.path.clone(), object: format!("gs://{}/{name}", self.bucket) }
                    }
                    _ => self.error(e, &format!("uploading {} to gs://{}/{name}", file.path.display(), self.bucket)),
                },
            })?;
        let size = u64::try_from(object.size).unwrap_or(u64::MAX);
        // The emulator and GCS both return the checksums of what they stored; with neither there is
        // nothing to compare.
        if (object.md5_hash.is_some() || object.crc32c.is_some())
            && !hashes.matches(size, object.md5_hash.as_deref(), object.crc32c.as_deref())
        {
            return Err(UploadError::Changed {
                path: file.path.clone(),
                object: format!("gs://{}/{name}", self.bucket),
            });
        }
        Ok(())
    }

    /// Turns a GCS error into the error that says what to do about it.
    fn error(&self, e: GcsError, doing: &str) -> UploadError {
        if let Some(source) = connect_error(&e) {
            let hint = if self.emulated {
                "STORAGE_EMULATOR_HOST points there: is the emulator running (scripts/gcs-emulator PORT DATA_DIR)?"
            } else {
                "check the network and proxy settings; to use an emulator instead, set STORAGE_EMULATOR_HOST=HOST:PORT"
            };
            let attempts = RETRIES + 1;
            let cause = if source.is_timeout() {
                format!("no answer within {} s, {attempts} attempts", CONNECT_TIMEOUT.as_secs())
            } else {
                format!("{}, {attempts} attempts", root_cause(source))
            };
            return UploadError::Unreachable { endpoint: self.endpoint.clone(), cause, hint, source: e };
        }
        if let (GcsError::HttpClient(_), Some(code)) = (&e, status(&e)) {
            // GCS (and the emulator) send every error as a JSON body: a bare status is from
            // something else (a proxy, another web server) on that address.
            let cause = format!(
                "{} answered HTTP {code} without a GCS error body: is it a GCS endpoint? ({})",
                self.endpoint,
                if self.emulated { "check STORAGE_EMULATOR_HOST" } else { "check proxy settings" }
            );
            return UploadError::Gcs { doing: doing.to_owned(), cause, source: e };
        }
        match status(&e) {
            Some(404) => UploadError::BucketNotFound { bucket: self.bucket.clone(), endpoint: self.endpoint.clone() },
            Some(code @ (401 | 403)) => UploadError::AccessDenied {
                bucket: self.bucket.clone(),
                code,
                message: message(&e),
                hint: if self.emulated {
                    "the emulator should not ask for credentials: is STORAGE_EMULATOR_HOST the emulator?"
                } else {
                    "check which account the credentials are (GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth \
                     application-default login`) and that it may list and create objects in the bucket \
                     (storage.objects.list and storage.objects.create, e.g. roles/storage.objectAdmin)"
                },
            },
            _ => UploadError::Gcs { doing: doing.to_owned(), cause: message(&e), source: e },
        }
    }
}

/// Runs a GCS call with [`retry_policy`], retrying only the errors [`is_transient`] accepts.
async fn retrying<T, F, Fut>(call: F) -> Result<T, GcsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, GcsError>>,
{
    call.retry(retry_policy()).when(is_transient).await
}

/// One upload attempt's failure: reading the file is not retried (it would fail the same way).
enum Attempt {
    Read(std::io::Error),
    Gcs(GcsError),
}

/// The HTTP status of a GCS error, whether GCS sent a JSON error body or not.
fn status(e: &GcsError) -> Option<u16> {
    match e {
        GcsError::Response(r) => Some(r.code),
        GcsError::HttpClient(e) | GcsError::RawResponse(e, _) => e.status().map(|s| s.as_u16()),
        _ => None,
    }
}

/// The errors GCS's retry guidance calls retryable: 408, 429, 5xx, and connections that failed or
/// broke before a response came.
fn is_transient(e: &GcsError) -> bool {
    match (status(e), e) {
        (Some(code), _) => matches!(code, 408 | 429 | 500..=599),
        (None, GcsError::HttpClient(e)) => e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
        _ => false,
    }
}

/// The reqwest error of a connection that could not be opened, if that is what `e` is.
fn connect_error(e: &GcsError) -> Option<&reqwest::Error> {
    match e {
        GcsError::HttpClient(e) if e.is_connect() => Some(e),
        _ => None,
    }
}

/// The innermost cause of an error ("Connection refused (os error 111)"), the part worth showing.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut e = e;
    while let Some(inner) = e.source() {
        e = inner;
    }
    e.to_string()
}

/// What GCS said, with the status: "404 Not Found", "403 … does not have storage.objects.create …".
fn message(e: &GcsError) -> String {
    match e {
        GcsError::Response(r) => format!("{} {}", r.code, r.message),
        GcsError::HttpClient(inner) | GcsError::RawResponse(inner, _) => match inner.status() {
            Some(s) => s.to_string(),
            None => format!("{e}: {}", root_cause(inner)),
        },
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_host_forms() {
        assert_eq!(emulator_endpoint("127.0.0.1:4443"), "http://127.0.0.1:4443");
        assert_eq!(emulator_endpoint("http://127.0.0.1:4443/"), "http://127.0.0.1:4443");
        assert_eq!(emulator_endpoint(" https://gcs.local "), "https://gcs.local");
    }
}
