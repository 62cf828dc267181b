//! What of an upstream answer names the upstream, said back in the client's
//! terms: a tag list's repository, `Location` and `Link` URLs that point at
//! the upstream's own paths.

use crate::host::Body;
use crate::oci::error::RegistryError;
use crate::routing::naming::NameMapping;
use futures::{Stream, StreamExt};
use url::Url;

/// Largest tag list the proxy reads to rename its repository. A list is
/// parsed whole, so this bounds the memory one request can make the proxy
/// spend on it; a longer list is refused, not buffered, and the client can
/// page it with `?n=` (the distribution spec's pagination).
pub(super) const TAG_LIST_LIMIT: usize = 1 << 20;

fn too_large() -> RegistryError {
    RegistryError::bad_gateway(
        "the upstream's tag list is over 1 MiB, more than this proxy reads to give it \
         the client's repository name: list the tags in pages with ?n=<count>",
    )
}

/// A tag list names its repository: the client's name goes back.
/// `content_length` is the upstream's, to refuse a long list unread.
pub(super) async fn rename_tag_list<S>(
    body: Body<S>,
    content_length: Option<&str>,
    mapping: &NameMapping,
) -> Result<Vec<u8>, RegistryError>
where
    S: Stream<Item = Result<Vec<u8>, String>> + Unpin,
{
    let declared = content_length.and_then(|l| l.trim().parse::<u64>().ok());
    if declared.is_some_and(|l| l > TAG_LIST_LIMIT as u64) {
        return Err(too_large());
    }
    let bytes = match body {
        Body::Empty => Vec::new(),
        Body::Bytes(b) if b.len() > TAG_LIST_LIMIT => return Err(too_large()),
        Body::Bytes(b) => b,
        Body::Stream(s) => read_bounded(s).await?,
        Body::Generated(g) => read_bounded(g).await?,
    };
    let mut list: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::bad_gateway(format!("upstream tag list is not JSON: {e}")))?;
    if let Some(client) = list["name"].as_str().and_then(|n| mapping.to_client(n)) {
        list["name"] = serde_json::Value::String(client);
    }
    Ok(list.to_string().into_bytes())
}

/// The body's chunks up to [`TAG_LIST_LIMIT`]; reading stops at the chunk
/// that passes it, so no more than the limit and one chunk is ever held.
async fn read_bounded<S>(mut chunks: S) -> Result<Vec<u8>, RegistryError>
where
    S: Stream<Item = Result<Vec<u8>, String>> + Unpin,
{
    let mut out = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| RegistryError::bad_gateway(format!("tag list: {e}")))?;
        if out.len() + chunk.len() > TAG_LIST_LIMIT {
            return Err(too_large());
        }
        out.extend(chunk);
    }
    Ok(out)
}

/// An upstream URL (absolute or a path) as the client reaches it: a path
/// on the proxy, with the client's name for the repository. URLs of other
/// hosts stay as they are.
pub(super) fn to_client_url(
    target: &str,
    upstream: &Url,
    upstream_name: Option<&str>,
    client_name: Option<&str>,
) -> String {
    let mut target = match Url::parse(target) {
        Ok(u) if u.origin() == upstream.origin() => u[url::Position::BeforePath..].to_string(),
        _ => target.to_string(),
    };
    if let (Some(up), Some(client)) = (upstream_name, client_name)
        && up != client
        && let Some(tail) = target.strip_prefix(&format!("/v2/{up}/"))
    {
        target = format!("/v2/{client}/{tail}");
    }
    target
}

/// A `Link` header (RFC 8288) with each target as the client reaches it
/// ([`to_client_url`]), so pagination comes back to the proxy: absolute
/// upstream URLs become paths, and the upstream's name for the repository
/// (`library/alpine`) becomes the client's (`alpine`).
pub(super) fn rewrite_link(
    link: &str,
    upstream: &Url,
    upstream_name: Option<&str>,
    client_name: Option<&str>,
) -> String {
    link.split(',')
        .map(|part| {
            let part = part.trim();
            let Some((target, rest)) = part.strip_prefix('<').and_then(|p| p.split_once('>'))
            else {
                return part.to_string();
            };
            format!(
                "<{}>{rest}",
                to_client_url(target, upstream, upstream_name, client_name)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn prefixed() -> NameMapping {
        NameMapping {
            registry_host: None,
            repository_prefix: Some("proj".into()),
            docker_hub: false,
        }
    }

    fn rename(body: Body<Chunks>, length: Option<&str>) -> Result<Vec<u8>, RegistryError> {
        futures::executor::block_on(rename_tag_list(body, length, &prefixed()))
    }

    type Chunks = crate::host::Chunks;

    /// Finding 3: a tag list over 1 MiB is refused with a 502 that names
    /// pagination, after reading no more than the bound and one chunk.
    #[test]
    fn tag_lists_over_1_mib_are_refused_unbuffered() {
        assert_eq!(TAG_LIST_LIMIT, 1 << 20);
        let pulled = std::rc::Rc::new(Cell::new(0));
        let counter = pulled.clone();
        let endless: Chunks = Box::pin(futures::stream::repeat_with(move || {
            counter.set(counter.get() + 1);
            Ok(vec![b' '; 64 << 10])
        }));
        let e = rename(Body::Generated(endless), None).unwrap_err();
        assert_eq!(e.status, 502);
        assert!(e.message.contains("over 1 MiB") && e.message.contains("?n="));
        assert_eq!(pulled.get(), 17, "16 chunks fill 1 MiB, the 17th passes it");
        // A declared length over the bound: refused before a byte is read.
        let unread: Chunks = Box::pin(futures::stream::poll_fn(|_| -> std::task::Poll<_> {
            panic!("a tag list of a declared length over the bound is read")
        }));
        let e = rename(Body::Generated(unread), Some("1048577")).unwrap_err();
        assert_eq!(e.status, 502);
        let e = rename(Body::Bytes(vec![b' '; (1 << 20) + 1]), None).unwrap_err();
        assert!(e.message.contains("?n="));
    }

    #[test]
    fn tag_lists_within_the_bound_are_renamed() {
        let list = br#"{"name":"proj/app","tags":["v1"]}"#.to_vec();
        let mut padded = list.clone();
        padded.resize(1 << 20, b' ');
        let chunks: Chunks = Box::pin(futures::stream::iter(
            padded
                .chunks(1000)
                .map(|c| Ok(c.to_vec()))
                .collect::<Vec<_>>(),
        ));
        let renamed = rename(Body::Generated(chunks), Some("1048576")).unwrap();
        assert_eq!(renamed, br#"{"name":"app","tags":["v1"]}"#);
        assert_eq!(rename(Body::Bytes(list), None).unwrap(), renamed);
    }

    #[test]
    fn locations() {
        let up = Url::parse("http://127.0.0.1:5000").unwrap();
        assert_eq!(
            to_client_url(
                "http://127.0.0.1:5000/v2/proj/foo/blobs/uploads/u1?_state=x",
                &up,
                Some("proj/foo"),
                Some("r.io/foo")
            ),
            "/v2/r.io/foo/blobs/uploads/u1?_state=x"
        );
        assert_eq!(
            to_client_url("/v2/foo/blobs/sha256:ab", &up, Some("foo"), Some("foo")),
            "/v2/foo/blobs/sha256:ab"
        );
        assert_eq!(
            to_client_url("https://cdn.example/x", &up, Some("foo"), Some("bar")),
            "https://cdn.example/x"
        );
    }

    #[test]
    fn link_rewriting() {
        let up = Url::parse("https://registry-1.docker.io").unwrap();
        assert_eq!(
            rewrite_link(
                r#"</v2/library/alpine/tags/list?last=3.1&n=2>; rel="next""#,
                &up,
                Some("library/alpine"),
                Some("alpine")
            ),
            r#"</v2/alpine/tags/list?last=3.1&n=2>; rel="next""#
        );
        assert_eq!(
            rewrite_link(
                r#"<https://registry-1.docker.io/v2/x/tags/list?n=1>; rel="next""#,
                &up,
                Some("x"),
                Some("x")
            ),
            r#"</v2/x/tags/list?n=1>; rel="next""#
        );
        assert_eq!(
            rewrite_link(
                r#"<https://other.example/v2/x>; rel="next""#,
                &up,
                Some("x"),
                Some("x")
            ),
            r#"<https://other.example/v2/x>; rel="next""#
        );
    }
}
