//! Blobs made from parts inside the bucket (multipart uploads of part
//! copies), and the multipart uploads an instance left half-done.

use super::requests::{Bucket, SIGN_TTL, XML_LIMIT, putting, read_all, s3_code};
use crate::host::{Body, Headers};
use futures::StreamExt;
use instant_xml::FromXml;
use rusty_s3::S3Action;
use rusty_s3::actions::{CompleteMultipartUpload, CreateMultipartUpload, UploadPart};
use url::Url;

const S3_XML_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

#[derive(FromXml)]
#[xml(rename = "CopyPartResult", ns(S3_XML_NS))]
struct CopyPartResult {
    #[xml(rename = "ETag")]
    etag: String,
}

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
    /// `dest` made of `sources` in order, copied inside the bucket; the
    /// last source is `last_len` bytes long.
    pub async fn compose(
        &self,
        dest: &str,
        sources: &[String],
        last_len: u64,
    ) -> Result<(), String> {
        if let [source] = sources {
            return self.copy(dest, source).await;
        }
        let id = self.start_multipart(dest).await?;
        match self.parts_of(dest, &id, sources, last_len).await {
            Ok(etags) => self.finish(dest, &id, &etags).await,
            Err(e) => {
                if let Err(abort) = self.abort_multipart(dest, &id).await {
                    eprintln!("cache: cannot abort a multipart upload: {abort}");
                }
                Err(e)
            }
        }
    }

    /// A copy of one object inside the bucket.
    async fn copy(&self, dest: &str, source: &str) -> Result<(), String> {
        let action = self.bucket.put_object(Some(&self.credentials), dest);
        let (url, headers) = self.copying(action, source);
        self.ok("PUT", url, headers, Body::Empty).await.map(drop)
    }

    /// `action` signed to copy from `source`, and the header that says so.
    fn copying<'a>(&self, mut action: impl S3Action<'a>, source: &str) -> (Url, Headers) {
        let source = self.copy_source(source);
        action
            .headers_mut()
            .insert("x-amz-copy-source", source.clone());
        let mut headers = Headers::default();
        headers.push("x-amz-copy-source", source);
        (action.sign(SIGN_TTL), headers)
    }

    /// A multipart upload of `key`: its id.
    pub async fn start_multipart(&self, key: &str) -> Result<String, String> {
        let create = CreateMultipartUpload::new(&self.bucket, Some(&self.credentials), key);
        let url = create.sign(SIGN_TTL);
        let answer = self
            .ok("POST", url, Headers::default(), Body::Empty)
            .await?;
        let created = CreateMultipartUpload::parse_response(&String::from_utf8_lossy(&answer))
            .map_err(|e| format!("the bucket's multipart answer is not S3 XML: {e}"))?;
        Ok(created.upload_id().to_string())
    }

    /// The parts' ETags: each source copied in the bucket, but a short last
    /// one sent again by value (stores refuse a part copy of a small object:
    /// Garage keeps those inline).
    async fn parts_of(
        &self,
        dest: &str,
        id: &str,
        sources: &[String],
        last_len: u64,
    ) -> Result<Vec<String>, String> {
        let last = sources.len() - 1;
        let parts = sources.iter().enumerate().map(|(i, source)| async move {
            let number =
                u16::try_from(i + 1).map_err(|_| "a blob of over 65,535 parts".to_string())?;
            match i == last && last_len < super::MIN_PART {
                true => self.send_part(dest, id, number, source).await,
                false => self.copy_part(dest, id, number, source).await,
            }
        });
        let results: Vec<Result<String, String>> = futures::stream::iter(parts)
            .buffered(super::PARALLEL)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn copy_part(
        &self,
        dest: &str,
        id: &str,
        number: u16,
        source: &str,
    ) -> Result<String, String> {
        let action = UploadPart::new(&self.bucket, Some(&self.credentials), dest, number, id);
        let (url, headers) = self.copying(action, source);
        let answer = self.ok("PUT", url, headers, Body::Empty).await?;
        instant_xml::from_str::<CopyPartResult>(&String::from_utf8_lossy(&answer))
            .map(|r| r.etag)
            .map_err(|e| format!("the bucket's part copy answer is not S3 XML: {e}"))
    }

    async fn send_part(
        &self,
        dest: &str,
        id: &str,
        number: u16,
        source: &str,
    ) -> Result<String, String> {
        let bytes = self
            .get(source, super::MIN_PART as usize)
            .await?
            .ok_or_else(|| format!("a copy's last part {source} went missing"))?;
        let action = UploadPart::new(&self.bucket, Some(&self.credentials), dest, number, id);
        let (url, headers) = putting(action, &bytes);
        let response = self.send("PUT", url, headers, Body::Bytes(bytes)).await?;
        let etag = response.headers.get("etag").map(str::to_string);
        let answer = read_all(response.body, XML_LIMIT, None).await?;
        match (response.status, etag) {
            (200, Some(etag)) => Ok(etag),
            (status, _) => Err(format!(
                "the bucket answered a part PUT with {status} {}",
                s3_code(&answer)
            )),
        }
    }

    async fn finish(&self, dest: &str, id: &str, etags: &[String]) -> Result<(), String> {
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
            .map_err(|_| format!("the bucket did not complete the blob: {}", s3_code(&answer)))
    }

    /// `x-amz-copy-source`: the bucket and the key, percent-encoded.
    fn copy_source(&self, key: &str) -> String {
        let url = self.bucket.object_url(key);
        let path = url.path();
        match path.strip_prefix(&format!("/{}/", self.bucket.name())) {
            Some(_) => path.to_string(),
            None => format!("/{}{path}", self.bucket.name()),
        }
    }

    /// Aborts multipart upload `id` of `key` (`AbortMultipartUpload`), so the bucket
    /// drops the parts it holds.
    pub async fn abort_multipart(&self, key: &str, id: &str) -> Result<(), String> {
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
    pub async fn multipart_uploads(&self, prefix: &str) -> Result<Vec<(String, String)>, String> {
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
