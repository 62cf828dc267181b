//! The S3 backend against a scripted bucket (no server needed): what its
//! requests carry, and what a collection leaves alone.

use super::{S3Blobs, S3Config};
use crate::cache::blob_storage::{BlobStorage, StoredBlob, Upload};
use crate::cache::layout::{self, Scope, UPLOAD_GRACE_SECS};
use crate::host::Host;
use crate::host::memory::{Answer, MemoryHost, Sent};
use futures::executor::block_on;
use std::rc::Rc;

const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
/// MD5 of "The quick brown fox jumps over the lazy dog", base64 (RFC 1321's
/// test suite has it in hex: 9e107d9d372bb6826bd81d3542a419d6).
const FOX_MD5: &str = "nhB9nTcrtoJr2B01QqQZ1g==";

/// A bucket whose listing holds `objects` and whose multipart uploads are
/// `multiparts`; every other request succeeds.
fn bucket(objects: &'static [String], multiparts: &'static [String]) -> MemoryHost {
    MemoryHost::new(move |sent: &Sent| {
        let url = url::Url::parse(&sent.url).unwrap();
        let query = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v);
        let prefix = query("prefix").unwrap_or_default().to_string();
        let under = |keys: &'static [String]| keys.iter().filter(move |k| k.starts_with(&prefix));
        let body = match (sent.method.as_str(), query("list-type"), query("uploads")) {
            ("GET", Some(_), _) => {
                let contents: String = under(objects)
                    .map(|k| format!("<Contents><Key>{k}</Key></Contents>"))
                    .collect();
                format!(r#"<ListBucketResult xmlns="{NS}">{contents}</ListBucketResult>"#)
            }
            ("GET", _, Some(_)) => {
                let uploads: String = under(multiparts)
                    .map(|k| format!("<Upload><Key>{k}</Key><UploadId>id</UploadId></Upload>"))
                    .collect();
                format!(
                    r#"<ListMultipartUploadsResult xmlns="{NS}">{uploads}</ListMultipartUploadsResult>"#
                )
            }
            ("POST", _, Some(_)) => format!(
                r#"<InitiateMultipartUploadResult xmlns="{NS}"><UploadId>id</UploadId></InitiateMultipartUploadResult>"#
            ),
            ("POST", _, _) if query("uploadId").is_some() => format!(
                r#"<CompleteMultipartUploadResult xmlns="{NS}"><ETag>"e"</ETag></CompleteMultipartUploadResult>"#
            ),
            ("PUT", _, _) if sent.headers.get("x-amz-copy-source").is_some() => {
                format!(r#"<CopyPartResult xmlns="{NS}"><ETag>"e"</ETag></CopyPartResult>"#)
            }
            ("GET", _, _) => "The quick brown fox jumps over the lazy dog".into(),
            _ => String::new(),
        };
        Answer {
            status: 200,
            headers: vec![("etag", "\"e\"".into())],
            body: body.into_bytes(),
        }
    })
}

fn storage(host: &MemoryHost) -> S3Blobs {
    let config = S3Config {
        endpoint: "http://bucket.test".parse().unwrap(),
        region: "test".into(),
        bucket: "blobs".into(),
        access_key_id: "key".into(),
        secret_access_key: "secret".into(),
        path_style: true,
        prefix: String::new(),
    };
    S3Blobs::new(config, host.outbound()).unwrap()
}

fn upload(started: u64) -> Upload {
    Upload {
        scope: Scope::from_key_part("https~registry.test"),
        digest: format!("sha256:{}", "ab".repeat(32)),
        id: layout::upload_id(started, 7),
    }
}

/// The PUTs of bytes sent (not part copies), each with its Content-MD5
/// signed along: so the bucket refuses other bytes, and nobody on the way
/// changes both.
fn puts_of_bytes(host: &MemoryHost) -> Vec<Sent> {
    let sent = host.upstream.sent.borrow();
    let of_bytes = |s: &&Sent| s.method == "PUT" && s.headers.get("x-amz-copy-source").is_none();
    let puts: Vec<Sent> = sent.iter().filter(of_bytes).cloned().collect();
    for put in &puts {
        let signed = url::Url::parse(&put.url).unwrap();
        let signed = signed
            .query_pairs()
            .find(|(k, _)| k == "X-Amz-SignedHeaders");
        assert_eq!(signed.unwrap().1, "content-md5;host", "{}", put.url);
    }
    puts
}

#[test]
fn a_part_put_carries_its_signed_content_md5() {
    let host = bucket(&[], &[]);
    let s3 = storage(&host);
    let fox = b"The quick brown fox jumps over the lazy dog".to_vec();
    block_on(s3.put_parts(&upload(crate::now()), 0, vec![Rc::new(fox.clone())])).unwrap();
    let puts = puts_of_bytes(&host);
    assert_eq!(puts.len(), 1);
    assert!(
        puts[0].url.contains("partNumber=1&uploadId=id"),
        "{}",
        puts[0].url
    );
    assert_eq!(puts[0].body, fox);
    assert_eq!(puts[0].headers.get("content-md5"), Some(FOX_MD5));
}

/// Each request's method and the key it names (the URL's path, in the
/// bucket `blobs`).
fn requests(host: &MemoryHost) -> Vec<(String, String)> {
    let sent = host.upstream.sent.borrow();
    sent.iter()
        .map(|s| {
            let url = url::Url::parse(&s.url).unwrap();
            let key = url.path().strip_prefix("/blobs/").unwrap_or_default();
            (s.method.clone(), key.to_string())
        })
        .collect()
}

/// A copy is one multipart upload of the blob's own key: started with its
/// first part, each part sent once, completed in one request with the
/// parts' ETags in order. Nothing else is written, nor read back.
#[test]
fn a_copy_writes_each_part_once_into_its_blob_key() {
    let host = bucket(&[], &[]);
    let s3 = storage(&host);
    let blob = StoredBlob {
        upload: upload(crate::now()),
        size: 3 * (5 << 20),
        part_size: 5 << 20,
    };
    let part = || Rc::new(vec![7u8; 5 << 20]);
    block_on(s3.put_parts(&blob.upload, 0, vec![part(), part()])).unwrap();
    block_on(s3.put_parts(&blob.upload, 2, vec![part()])).unwrap();
    assert!(block_on(s3.get_part(&blob.upload, 0)).unwrap().is_none());
    block_on(s3.complete(&blob)).unwrap();
    let key = in_path(&s3.blob_key(&blob.upload));
    let expected: Vec<(String, String)> = ["POST", "PUT", "PUT", "PUT", "POST"]
        .iter()
        .map(|m| (m.to_string(), key.clone()))
        .collect();
    assert_eq!(requests(&host), expected);
    let sent = host.upstream.sent.borrow();
    let completion = String::from_utf8_lossy(&sent[4].body);
    assert_eq!(
        completion.matches("<PartNumber>").count(),
        3,
        "{completion}"
    );
    assert!(sent[4].url.contains("uploadId=id"), "{}", sent[4].url);
}

/// The key as it stands in a request's path: rusty-s3 escapes the
/// digest's colon.
fn in_path(key: &str) -> String {
    key.replace(':', "%3A")
}

/// An abort ends the multipart upload the copy started; one this backend
/// did not see start (its answer lost) is found by listing the key's.
#[test]
fn an_abort_ends_the_blob_keys_multipart_upload() {
    let going_on = upload(crate::now());
    let lost = Upload {
        id: layout::upload_id(crate::now(), 8),
        ..going_on.clone()
    };
    let host = bucket(&[], &[]);
    let listed = vec![storage(&host).blob_key(&lost)].leak();
    let host = bucket(&[], listed);
    let s3 = storage(&host);
    block_on(s3.put_parts(&going_on, 0, vec![Rc::new(vec![1])])).unwrap();
    block_on(s3.abort(&going_on, 1)).unwrap();
    block_on(s3.abort(&lost, 1)).unwrap();
    let methods: Vec<String> = requests(&host).into_iter().map(|(m, _)| m).collect();
    assert_eq!(methods, ["POST", "PUT", "DELETE", "GET", "DELETE"]);
    let sent = host.upstream.sent.borrow();
    let keys = requests(&host);
    assert_eq!(keys[2].1, in_path(&s3.blob_key(&going_on)));
    assert_eq!(keys[4].1, in_path(&s3.blob_key(&lost)));
    assert!(sent[4].url.contains("uploadId=id"), "{}", sent[4].url);
}

#[test]
fn a_blob_of_too_many_parts_is_refused_in_words() {
    assert_eq!(super::part_number(9_999), Ok(10_000));
    use crate::cache::blob_storage::StorageError;
    let refused = super::part_number(10_000).unwrap_err();
    assert!(matches!(refused, StorageError::Refused(_)));
    assert!(
        refused.to_string().contains("over 10000 parts"),
        "{refused}"
    );
}

/// With an empty `s3_prefix`, the cache's folders may hold others' objects:
/// only keys of the cache's own shape are collected.
#[test]
fn a_collection_leaves_objects_of_other_shapes_alone() {
    let old = upload(crate::now() - UPLOAD_GRACE_SECS - 60);
    let (scope, digest, id) = (old.scope.as_str(), &old.digest, &old.id);
    let ours = [
        format!("uploads/{scope}/{digest}/{id}/0"),
        format!("blobs/{scope}/{digest}/{id}"),
    ];
    let foreign = [
        "blobs/foo/bar".to_string(),
        "blobs/a/b/c".to_string(),
        "uploads/x/y/z".to_string(),
        format!("uploads/{scope}/{digest}/{id}/0/more"),
        format!("uploads/{scope}/{digest}/not-an-id/0"),
        format!("blobs/{scope}/sha256:00/{id}"),
        format!("blobs/ftp~registry.test/{digest}/{id}"),
        format!("blobs/https~Registry.test/{digest}/{id}"),
    ];
    let objects: &'static [String] = ours
        .iter()
        .chain(&foreign)
        .cloned()
        .collect::<Vec<_>>()
        .leak();
    let multiparts = vec![
        ours[1].clone(),
        "blobs/foo/bar".to_string(),
        foreign[1].clone(),
    ]
    .leak();
    let host = bucket(objects, multiparts);
    let s3 = storage(&host);
    let removed = block_on(s3.collect_abandoned(crate::now(), &|_| false)).unwrap();
    let sent = host.upstream.sent.borrow();
    let deleted: String = sent
        .iter()
        .filter(|s| s.method == "POST" && s.url.contains("delete"))
        .map(|s| String::from_utf8_lossy(&s.body).into_owned())
        .collect();
    let aborted: Vec<&str> = sent
        .iter()
        .filter(|s| s.method == "DELETE")
        .map(|s| s.url.as_str())
        .collect();
    for key in &ours {
        assert!(
            deleted.contains(&format!("<Key>{key}</Key>")),
            "{key} stays"
        );
    }
    for key in &foreign {
        assert!(
            !deleted.contains(&format!("<Key>{key}</Key>")),
            "{key} deleted"
        );
    }
    assert_eq!(aborted.len(), 1, "{aborted:?}");
    assert!(aborted[0].contains(&format!("/blobs/{scope}/")));
    assert_eq!(removed, 3);
}
