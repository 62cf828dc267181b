//! What of an upstream answer names the upstream, said back in the client's
//! terms: a tag list's repository, `Location` and `Link` URLs that point at
//! the upstream's own paths.

use crate::host::{Body, Host};
use crate::oci::error::RegistryError;
use crate::routing::naming::NameMapping;
use url::Url;

/// Largest tag list the proxy reads to rename its repository.
const TAG_LIST_LIMIT: usize = 8 << 20;

/// A tag list names its repository: the client's name goes back.
pub(super) async fn rename_tag_list<H: Host>(
    host: &H,
    body: Body<H::Stream>,
    mapping: &NameMapping,
) -> Result<Vec<u8>, RegistryError> {
    let bytes = host
        .read_body(body, TAG_LIST_LIMIT)
        .await
        .map_err(|e| RegistryError::bad_gateway(format!("tag list: {e}")))?;
    let mut list: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::bad_gateway(format!("upstream tag list is not JSON: {e}")))?;
    if let Some(client) = list["name"].as_str().and_then(|n| mapping.to_client(n)) {
        list["name"] = serde_json::Value::String(client);
    }
    Ok(list.to_string().into_bytes())
}

/// Pagination links point back at the proxy: absolute upstream URLs become
/// paths, and the upstream's name for the repository (`library/alpine`)
/// becomes the client's (`alpine`).
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
