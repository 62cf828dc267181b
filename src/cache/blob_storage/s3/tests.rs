//! The S3 backend against a real Garage server: the conformance suite, and
//! what only a bucket shows (a presigned GET, nothing left behind, stale
//! multipart uploads aborted). The end-to-end tests' helpers start Garage.

#[path = "../../../../tests/support/garage.rs"]
#[allow(dead_code)]
mod garage;
#[path = "../../../../tests/support/http.rs"]
#[allow(dead_code)]
mod http;
#[path = "../../../../tests/support/watched.rs"]
#[allow(dead_code)]
mod watched;

use super::{S3Blobs, S3Config};
use crate::cache::blob_storage::{BlobStorage, StoredBlob, Upload, conformance};
use crate::cache::layout::{self, Scope};
use crate::host::{Body, Chunks, Failure, Headers, Outbound, OutboundRequest, Response, SendError};
use futures::StreamExt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

/// Outbound HTTP over hyper, as the runtime gives the component.
struct Native;

impl Outbound for Native {
    fn send(
        &self,
        request: OutboundRequest<Chunks>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Chunks>, SendError>>>> {
        Box::pin(async move {
            let failed = |why| SendError::failed(&request.url, Failure::Runtime(why));
            let body = match request.body {
                Body::Empty => Vec::new(),
                Body::Bytes(b) => b,
                Body::Stream(mut c) | Body::Generated(mut c) => {
                    let mut all = Vec::new();
                    while let Some(piece) = c.next().await {
                        all.extend(piece.map_err(failed)?);
                    }
                    all
                }
            };
            let headers: Vec<(&str, &str)> = request
                .headers
                .0
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let full = http::full(body);
            let reply = http::send_with(
                &request.method,
                request.url.as_str(),
                &headers,
                full,
                |_| {},
                true,
            )
            .await
            .map_err(failed)?;
            let mut headers = Headers::default();
            for (name, value) in &reply.headers {
                headers.push(name.as_str(), value.to_str().unwrap_or_default());
            }
            let piece: Chunks = Box::pin(futures::stream::iter([Ok(reply.body)]));
            Ok(Response {
                status: reply.status,
                headers,
                body: Body::Generated(piece),
            })
        })
    }
}

fn storage(garage: &garage::Garage, prefix: &str) -> S3Blobs {
    let config = S3Config {
        endpoint: garage.endpoints[0].parse().unwrap(),
        region: garage::REGION.to_string(),
        bucket: garage::BUCKET.to_string(),
        access_key_id: garage.key_id.clone(),
        secret_access_key: garage.secret.clone(),
        path_style: true,
        prefix: prefix.to_string(),
    };
    S3Blobs::new(config, Rc::new(Native)).unwrap()
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn conforms_on_garage_and_leaves_nothing_behind() {
    let dir = watched::work_dir("registry-proxy-s3-unit-");
    let garage = garage::Garage::start(&dir, 1);
    let s3 = storage(&garage, "conformance/");
    block_on(async {
        conformance::run(&s3).await;
        presigned_get_serves_the_blob_without_the_secret(&s3, &garage.secret).await;
        a_stale_completion_is_aborted(&s3).await;
    });
    let left = garage.keys(0, "conformance/");
    assert!(left.is_empty(), "objects left in the bucket: {left:?}");
    for node in &garage.nodes {
        node.stop();
    }
}

async fn presigned_get_serves_the_blob_without_the_secret(s3: &S3Blobs, secret: &str) {
    let bytes = b"a layer's bytes".to_vec();
    let upload = Upload {
        scope: Scope::from_key_part("presigned"),
        digest: "sha256:00".into(),
        id: layout::upload_id(crate::now(), 1),
    };
    s3.put_parts(&upload, 0, vec![Rc::new(bytes.clone())])
        .await
        .unwrap();
    let blob = StoredBlob {
        upload,
        size: bytes.len() as u64,
        part_size: s3.part_size(1),
    };
    s3.complete(&blob).await.unwrap();
    let url = s3.presigned_get(&blob, Duration::from_secs(60)).unwrap();
    assert!(!url.as_str().contains(secret));
    let reply = http::get(url.as_str(), &[]).await;
    assert_eq!((reply.status, reply.body), (200, bytes));
    s3.delete(&blob).await.unwrap();
}

/// A completion left half-way (its instance went away) is aborted by the
/// collection once its upload is old, and a recent one is left alone.
async fn a_stale_completion_is_aborted(s3: &S3Blobs) {
    let old = Upload {
        // Keys of any other shape are not the collection's to remove.
        scope: Scope::from_key_part("https~gc.test"),
        digest: format!("sha256:{}", "01".repeat(32)),
        id: layout::upload_id(crate::now() - layout::UPLOAD_GRACE_SECS - 60, 2),
    };
    let recent = Upload {
        id: layout::upload_id(crate::now(), 3),
        ..old.clone()
    };
    for upload in [&old, &recent] {
        s3.bucket
            .start_multipart(&s3.blob_key(upload))
            .await
            .unwrap();
    }
    let prefix = format!("{}blobs/", s3.prefix);
    assert_eq!(s3.bucket.multipart_uploads(&prefix).await.unwrap().len(), 2);
    let removed = s3
        .collect_abandoned(crate::now(), &|_| false)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let left = s3.bucket.multipart_uploads(&prefix).await.unwrap();
    assert_eq!(left.len(), 1);
    s3.bucket
        .abort_multipart(&left[0].0, &left[0].1)
        .await
        .unwrap();
}
