//! Multipart uploads: a blob's parts sent to its own key, completed in
//! one request once checked, and those an instance left half-done.

use super::requests::{
    Bucket, SIGN_TTL, XML_LIMIT, in_pieces, putting, read_all, retried, s3_code,
};
use crate::cache::blob_storage::StorageError;
use crate::host::{Body, Headers};
use instant_xml::FromXml;
use rusty_s3::S3Action;
use rusty_s3::actions::{CompleteMultipartUpload, CreateMultipartUpload, UploadPart};
use std::rc::Rc;
use url::Url;

const S3_XML_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

#[derive(FromXml)]
#[xml(rename = "ListMultipartUploadsResult", ns(S3_XML_NS))]
struct MultipartUploads {
    uploads: Vec<MultipartUpload>,
    #[xml(rename = "IsTruncated")]
    is_truncated: Option<bool>,
    #[xml(rename = "NextKeyMarker")]
    next_key_marker: Option<String>,
    #[xml(rename = "NextUploadIdMarker")]
    next_upload_id_marker: Option<String>,
}

#[derive(FromXml)]
#[xml(rename = "Upload", ns(S3_XML_NS))]
struct MultipartUpload {
    #[xml(rename = "Key")]
    key: String,
    #[xml(rename = "UploadId")]
    upload_id: String,
}

impl Bucket {
    /// A multipart upload of `key`: its id.
    pub async fn start_multipart(&self, key: &str) -> Result<String, StorageError> {
        let create = CreateMultipartUpload::new(&self.bucket, Some(&self.credentials), key);
        let url = create.sign(SIGN_TTL);
        let answer = self
            .ok("POST", url, Headers::default(), Body::Empty)
            .await?;
        let created = CreateMultipartUpload::parse_response(&String::from_utf8_lossy(&answer))
            .map_err(|e| format!("the bucket's multipart answer is not S3 XML: {e}"))?;
        Ok(created.upload_id().to_string())
    }

    /// Part `number` of multipart upload `id` of `key`: its ETag. Tried
    /// again while it fails (the bytes are still here to send again).
    pub async fn upload_part(
        &self,
        key: &str,
        id: &str,
        number: u16,
        bytes: Rc<Vec<u8>>,
    ) -> Result<String, StorageError> {
        let once = || self.upload_part_once(key, id, number, bytes.clone());
        retried("a part PUT", once).await
    }

    async fn upload_part_once(
        &self,
        key: &str,
        id: &str,
        number: u16,
        bytes: Rc<Vec<u8>>,
    ) -> Result<String, StorageError> {
        let action = UploadPart::new(&self.bucket, Some(&self.credentials), key, number, id);
        let (url, headers) = putting(action, &bytes);
        let response = self.send("PUT", url, headers, in_pieces(bytes)).await?;
        let etag = response.headers.get("etag").map(str::to_string);
        let answer = read_all(response.body, XML_LIMIT).await?;
        match (response.status, etag) {
            (200, Some(etag)) => Ok(etag),
            (status, _) => Err(StorageError::of_status(
                status,
                format!(
                    "the bucket answered a part PUT with {status} {}",
                    s3_code(&answer)
                ),
            )),
        }
    }

    /// Makes multipart upload `id` of `dest` the object, of the parts whose
    /// ETags are `etags`, in order.
    pub async fn finish(&self, dest: &str, id: &str, etags: &[String]) -> Result<(), StorageError> {
        let action = CompleteMultipartUpload::new(
            &self.bucket,
            Some(&self.credentials),
            dest,
            id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGN_TTL);
        let body = action.body();
        let mut headers = Headers::default();
        headers.push("content-length", body.len().to_string());
        let answer = self
            .ok("POST", url, headers, Body::Bytes(body.into_bytes()))
            .await?;
        // S3 may answer 200 and still report an error in the body.
        rusty_s3::actions::CompleteMultipartUploadResponse::parse(&String::from_utf8_lossy(&answer))
            .map(drop)
            .map_err(|_| {
                let code = s3_code(&answer);
                StorageError::Unavailable(format!("the bucket did not complete the blob: {code}"))
            })
    }

    /// Aborts multipart upload `id` of `key` (`AbortMultipartUpload`), so the bucket
    /// drops the parts it holds.
    pub async fn abort_multipart(&self, key: &str, id: &str) -> Result<(), StorageError> {
        let action = rusty_s3::actions::AbortMultipartUpload::new(
            &self.bucket,
            Some(&self.credentials),
            key,
            id,
        );
        self.ok(
            "DELETE",
            action.sign(SIGN_TTL),
            Headers::default(),
            Body::Empty,
        )
        .await
        .map(drop)
    }

    /// The multipart uploads under `prefix`, as (key, upload id).
    pub async fn multipart_uploads(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let mut found = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut query = vec![("prefix", prefix.to_string()), ("uploads", String::new())];
            if let Some((key, id)) = &markers {
                query.push(("key-marker", key.clone()));
                query.push(("upload-id-marker", id.clone()));
            }
            query.sort();
            let url = self.sign_bucket_get(&query);
            let answer = self.ok("GET", url, Headers::default(), Body::Empty).await?;
            let page = instant_xml::from_str::<MultipartUploads>(&String::from_utf8_lossy(&answer))
                .map_err(|e| format!("the bucket's upload listing is not S3 XML: {e}"))?;
            found.extend(page.uploads.into_iter().map(|u| (u.key, u.upload_id)));
            match (
                page.is_truncated,
                page.next_key_marker,
                page.next_upload_id_marker,
            ) {
                (Some(true), Some(key), Some(id)) => markers = Some((key, id)),
                _ => return Ok(found),
            }
        }
    }

    /// A GET of the bucket itself with `query` (sorted), which `rusty-s3`
    /// has no action for.
    fn sign_bucket_get(&self, query: &[(&str, String)]) -> Url {
        rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            rusty_s3::Method::Get,
            self.bucket.base_url().clone(),
            self.credentials.key(),
            self.credentials.secret(),
            None,
            self.bucket.region(),
            SIGN_TTL.as_secs(),
            query.iter().map(|(k, v)| (*k, v.as_str())),
            std::iter::empty(),
        )
    }
}
