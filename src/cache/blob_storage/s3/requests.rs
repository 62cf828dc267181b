//! The S3 API calls the backend makes, each a presigned URL sent through
//! the component's outbound HTTP, and their XML answers.

use super::config::S3Config;
use crate::cache::blob_storage::StorageError;
use crate::host::{Body, Chunks, Headers, Outbound, OutboundRequest, Response};
use base64::Engine;
use futures::StreamExt;
use md5::{Digest as _, Md5};
use rusty_s3::actions::{DeleteObjects, ListObjectsV2, ObjectIdentifier};
use rusty_s3::{Credentials, S3Action, UrlStyle};
use std::rc::Rc;
use std::time::Duration;
use url::Url;

/// How long a request's own signature holds (it is sent at once).
pub(super) const SIGN_TTL: Duration = Duration::from_secs(300);
/// For connecting, for the answer's head and between its bytes.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The largest XML answer read (a listing page of 1,000 keys is ~250 KiB).
pub(super) const XML_LIMIT: usize = 4 << 20;
/// Keys per `DeleteObjects` request: S3's own limit.
const DELETE_BATCH: usize = 1000;
/// Attempts at one part's PUT or GET.
const TRIES: u32 = 3;
/// Bytes of a part handed to the runtime at a time.
const SEND_PIECE: usize = 256 << 10;

pub struct Bucket {
    pub(super) bucket: rusty_s3::Bucket,
    pub(super) credentials: Credentials,
    outbound: Rc<dyn Outbound>,
}

impl Bucket {
    /// The bucket `config` names (path or virtual-host style) and its credentials;
    /// `Err` when rusty-s3 refuses the bucket name or endpoint.
    pub fn new(config: S3Config, outbound: Rc<dyn Outbound>) -> Result<Self, String> {
        let style = match config.path_style {
            true => UrlStyle::Path,
            false => UrlStyle::VirtualHost,
        };
        let bucket = rusty_s3::Bucket::new(config.endpoint, style, config.bucket, config.region)
            .map_err(|e| format!("s3_bucket or s3_endpoint cannot be used: {e}"))?;
        Ok(Self {
            bucket,
            credentials: Credentials::new(config.access_key_id, config.secret_access_key),
            outbound,
        })
    }

    /// Sends one presigned request with the bucket's timeout; `Err` only when the
    /// bucket cannot be reached, never for its status.
    pub(super) async fn send(
        &self,
        method: &str,
        url: Url,
        headers: Headers,
        body: Body<Chunks>,
    ) -> Result<Response<Chunks>, StorageError> {
        let request = OutboundRequest {
            method: method.to_string(),
            url,
            headers,
            body,
            timeout: TIMEOUT,
        };
        self.outbound
            .send(request)
            .await
            .map_err(|e| StorageError::of_send(&e, format!("the bucket cannot be reached: {e}")))
    }

    /// The answer's body when it succeeded; else its status and S3 code.
    pub(super) async fn ok(
        &self,
        method: &str,
        url: Url,
        headers: Headers,
        body: Body<Chunks>,
    ) -> Result<Vec<u8>, StorageError> {
        let response = self.send(method, url, headers, body).await?;
        let status = response.status;
        let bytes = read_all(response.body, XML_LIMIT).await?;
        if !(200..300).contains(&status) {
            return Err(StorageError::of_status(
                status,
                format!(
                    "the bucket answered {method} with {status} {}",
                    s3_code(&bytes)
                ),
            ));
        }
        Ok(bytes)
    }

    /// Whether the bucket answers at all: one GET of `key`, which need not
    /// exist (a 404 is an answer).
    pub async fn answers(&self, key: &str) -> Result<(), StorageError> {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(SIGN_TTL);
        let response = self
            .send("GET", url, Headers::default(), Body::Empty)
            .await?;
        let status = response.status;
        let bytes = read_all(response.body, 64 << 10).await?;
        match status {
            200 | 404 => Ok(()),
            _ => Err(StorageError::of_status(
                status,
                format!("the bucket answered GET with {status} {}", s3_code(&bytes)),
            )),
        }
    }

    /// Bytes `start..end` of an object, as they arrive; cut short with an
    /// error unless all of them came.
    pub fn get_range(&self, key: String, start: u64, end: u64) -> Chunks {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), &key)
            .sign(SIGN_TTL);
        let mut headers = Headers::default();
        headers.push("range", format!("bytes={start}-{}", end.saturating_sub(1)));
        let response = self.outbound.send(OutboundRequest {
            method: "GET".to_string(),
            url,
            headers,
            body: Body::Empty,
            timeout: TIMEOUT,
        });
        let body = async move {
            let response = response
                .await
                .map_err(|e| format!("the bucket cannot be reached: {e}"))?;
            if !matches!(response.status, 200 | 206) {
                let bytes = read_all(response.body, XML_LIMIT).await.unwrap_or_default();
                let code = s3_code(&bytes);
                return Err(format!(
                    "the bucket answered a blob GET with {} {code}",
                    response.status
                ));
            }
            Ok(response.body)
        };
        let want = end - start;
        let pieces: Chunks = Box::pin(futures::stream::once(body).flat_map(|body| match body {
            Ok(Body::Stream(c) | Body::Generated(c)) => c,
            Ok(Body::Bytes(b)) => Box::pin(futures::stream::iter([Ok(b)])),
            Ok(Body::Empty) => Box::pin(futures::stream::empty()),
            Err(e) => Box::pin(futures::stream::iter([Err(e)])) as Chunks,
        }));
        whole(pieces, want)
    }

    /// Deletes `keys` with `DeleteObjects`, a thousand a request; `Err` when the
    /// bucket kept any of them.
    pub async fn delete_all(&self, keys: &[String]) -> Result<(), StorageError> {
        for batch in keys.chunks(DELETE_BATCH) {
            let objects: Vec<ObjectIdentifier> = batch
                .iter()
                .map(|k| ObjectIdentifier::new(k.clone()))
                .collect();
            let mut action =
                DeleteObjects::new(&self.bucket, Some(&self.credentials), objects.iter());
            action.set_quiet(true);
            let url = action.sign(SIGN_TTL);
            let (body, md5) = action.body_with_md5();
            let mut headers = Headers::default();
            headers.push("content-md5", md5);
            headers.push("content-length", body.len().to_string());
            let answer = self
                .ok("POST", url, headers, Body::Bytes(body.into_bytes()))
                .await?;
            if String::from_utf8_lossy(&answer).contains("<Error>") {
                return Err(StorageError::Unavailable(format!(
                    "the bucket kept some of {} objects",
                    batch.len()
                )));
            }
        }
        Ok(())
    }

    /// Every key under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&self.bucket, Some(&self.credentials));
            action.with_prefix(prefix);
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let url = action.sign(SIGN_TTL);
            let answer = self.ok("GET", url, Headers::default(), Body::Empty).await?;
            let page = ListObjectsV2::parse_response(&String::from_utf8_lossy(&answer))
                .map_err(|e| format!("the bucket's listing is not S3 XML: {e}"))?;
            keys.extend(page.contents.into_iter().map(|c| c.key));
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => return Ok(keys),
            }
        }
    }

    /// A GET URL for `key`, signed for `ttl`: it serves the object without the secret.
    pub fn presigned_get(&self, key: &str, ttl: Duration) -> Url {
        self.bucket
            .get_object(Some(&self.credentials), key)
            .sign(ttl)
    }
}

/// `action` signed for a PUT of `bytes`, and its headers. The `Content-MD5`
/// makes the bucket refuse bytes other than those hashed here (as they were
/// checked against the blob's digest); it is signed, so nobody on the way to
/// an `http://` endpoint can change both.
pub(super) fn putting<'a>(mut action: impl S3Action<'a>, bytes: &[u8]) -> (Url, Headers) {
    let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes));
    action.headers_mut().insert("content-md5", md5.clone());
    let mut headers = Headers::default();
    headers.push("content-length", bytes.len().to_string());
    headers.push("content-md5", md5);
    (action.sign(SIGN_TTL), headers)
}

/// A body of `bytes` handed to the runtime in pieces (not copied whole:
/// the copy still holds them for its client).
pub(super) fn in_pieces(bytes: Rc<Vec<u8>>) -> Body<Chunks> {
    let len = bytes.len();
    let pieces = (0..len)
        .step_by(SEND_PIECE)
        .map(move |at| Ok(bytes[at..(at + SEND_PIECE).min(len)].to_vec()));
    Body::Generated(Box::pin(futures::stream::iter(pieces)))
}

/// `attempt` up to [`TRIES`] times while it fails: a store that lost a
/// node, or says `SlowDown`, answers the same request a moment later (AWS's
/// own clients retry so too).
pub(super) async fn retried<T, F>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> Result<T, StorageError>
where
    F: std::future::Future<Output = Result<T, StorageError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if tries < TRIES => {
                eprintln!("cache: the bucket failed {what}, asking again: {e}");
                tries += 1;
            }
            done => return done,
        }
    }
}

/// A body of at most `limit` bytes (an XML answer, or an error's).
pub(super) async fn read_all(body: Body<Chunks>, limit: usize) -> Result<Vec<u8>, StorageError> {
    let mut chunks = match body {
        Body::Empty => return Ok(Vec::new()),
        Body::Bytes(b) => return Ok(b),
        Body::Stream(c) | Body::Generated(c) => c,
    };
    let mut out = Vec::new();
    while let Some(chunk) = chunks.next().await {
        out.extend(chunk?);
        if out.len() > limit {
            return Err(StorageError::Corrupt(format!(
                "the bucket's answer is over {limit} bytes"
            )));
        }
    }
    Ok(out)
}

/// The pieces, then an error if they were fewer than `want` bytes.
fn whole(pieces: Chunks, want: u64) -> Chunks {
    Box::pin(futures::stream::unfold(
        (pieces, 0u64, false),
        move |(mut pieces, got, done)| async move {
            if done {
                return None;
            }
            match pieces.next().await {
                Some(Ok(p)) => {
                    let got = got + p.len() as u64;
                    Some((Ok(p), (pieces, got, false)))
                }
                Some(Err(e)) => Some((Err(e), (pieces, got, true))),
                None if got >= want => None,
                None => {
                    let short = format!("the bucket sent {got} of {want} bytes");
                    Some((Err(short), (pieces, got, true)))
                }
            }
        },
    ))
}

/// S3's error code and message in an XML error body, for logs.
pub(super) fn s3_code(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let element = |name: &str| {
        text.split_once(&format!("<{name}>"))
            .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
            .map(|(value, _)| value.to_string())
            .unwrap_or_default()
    };
    format!("{}: {}", element("Code"), element("Message"))
}
