//! The distribution API's endpoints, parsed from a request path.

use crate::oci::digest::Digest;
use crate::oci::reference::{Reference, RepositoryName};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/`: API version check, where clients meet the auth challenge.
    Base,
    /// `/v2/auth`: the proxy's own token endpoint (a realm, not an upstream path).
    Auth,
    Catalog,
    Manifest {
        name: RepositoryName,
        reference: Reference,
    },
    Blob {
        name: RepositoryName,
        digest: Digest,
    },
    /// Pushes: `/v2/<name>/blobs/uploads/` and an upload session under it.
    BlobUpload {
        name: RepositoryName,
        /// The upload session's id, as the upstream chose it.
        session: Option<String>,
    },
    TagsList {
        name: RepositoryName,
    },
    Referrers {
        name: RepositoryName,
        digest: Digest,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Not under `/v2/` at all.
    NotApi,
    /// Under `/v2/` but no endpoint of the spec.
    UnknownEndpoint,
    Name(String),
    Reference(String),
    Digest(String),
}

impl Endpoint {
    /// The endpoint a request path names: `NotApi` outside `/v2`, `UnknownEndpoint`
    /// for a path of no endpoint, else the part that is invalid.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        let Some(rest) = path.strip_prefix("/v2") else {
            return Err(PathError::NotApi);
        };
        let rest = match rest {
            "" | "/" => return Ok(Endpoint::Base),
            r => r.strip_prefix('/').ok_or(PathError::NotApi)?,
        };
        match rest {
            "auth" => return Ok(Endpoint::Auth),
            "_catalog" => return Ok(Endpoint::Catalog),
            _ => {}
        }
        let name = |n: &str| RepositoryName::parse(n).map_err(|e| PathError::Name(e.to_string()));
        let digest = |d: &str| Digest::parse(d).map_err(|e| PathError::Digest(e.to_string()));
        // Names may contain "manifests" or "blobs" as components, so the
        // endpoint is read from the right.
        if let Some(n) = rest.strip_suffix("/tags/list") {
            return Ok(Endpoint::TagsList { name: name(n)? });
        }
        if let Some((n, after)) = rest.split_once("/blobs/uploads")
            && (after.is_empty() || after.starts_with('/'))
        {
            let session = after.trim_start_matches('/');
            let session_ok = session.len() <= 256
                && session
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='));
            if !session_ok || session.starts_with('.') {
                return Err(PathError::UnknownEndpoint);
            }
            let session = (!session.is_empty()).then(|| session.to_string());
            return Ok(Endpoint::BlobUpload {
                name: name(n)?,
                session,
            });
        }
        let (head, last) = rest.rsplit_once('/').ok_or(PathError::UnknownEndpoint)?;
        let (n, kind) = head.rsplit_once('/').ok_or(PathError::UnknownEndpoint)?;
        match kind {
            "manifests" => Ok(Endpoint::Manifest {
                name: name(n)?,
                reference: Reference::parse(last)
                    .map_err(|e| PathError::Reference(e.to_string()))?,
            }),
            "blobs" => Ok(Endpoint::Blob {
                name: name(n)?,
                digest: digest(last)?,
            }),
            "referrers" => Ok(Endpoint::Referrers {
                name: name(n)?,
                digest: digest(last)?,
            }),
            _ => Err(PathError::UnknownEndpoint),
        }
    }

    /// The endpoint's kind, as metrics and the access log name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Endpoint::Base => "base",
            Endpoint::Auth => "token",
            Endpoint::Catalog => "catalog",
            Endpoint::Manifest { .. } => "manifest",
            Endpoint::Blob { .. } => "blob",
            Endpoint::BlobUpload { .. } => "upload",
            Endpoint::TagsList { .. } => "tags",
            Endpoint::Referrers { .. } => "referrers",
        }
    }

    /// The repository named in the path; `None` for `/v2/`, `/v2/auth` and the catalog.
    pub fn name(&self) -> Option<&RepositoryName> {
        match self {
            Endpoint::Manifest { name, .. }
            | Endpoint::Blob { name, .. }
            | Endpoint::BlobUpload { name, .. }
            | Endpoint::TagsList { name }
            | Endpoint::Referrers { name, .. } => Some(name),
            Endpoint::Base | Endpoint::Auth | Endpoint::Catalog => None,
        }
    }

    /// The path to request upstream, with the upstream's repository name.
    pub fn upstream_path(&self, upstream_name: Option<&RepositoryName>) -> String {
        let n = upstream_name
            .or(self.name())
            .map(|n| n.as_str())
            .unwrap_or_default();
        match self {
            Endpoint::Base | Endpoint::Auth => "/v2/".to_string(),
            Endpoint::Catalog => "/v2/_catalog".to_string(),
            Endpoint::Manifest { reference, .. } => format!("/v2/{n}/manifests/{reference}"),
            Endpoint::Blob { digest, .. } => format!("/v2/{n}/blobs/{digest}"),
            Endpoint::BlobUpload { session, .. } => {
                format!(
                    "/v2/{n}/blobs/uploads/{}",
                    session.as_deref().unwrap_or_default()
                )
            }
            Endpoint::TagsList { .. } => format!("/v2/{n}/tags/list"),
            Endpoint::Referrers { digest, .. } => format!("/v2/{n}/referrers/{digest}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> String {
        format!("sha256:{}", "ab".repeat(32))
    }

    #[test]
    fn endpoints() {
        assert_eq!(Endpoint::parse("/v2/"), Ok(Endpoint::Base));
        assert_eq!(Endpoint::parse("/v2"), Ok(Endpoint::Base));
        assert_eq!(Endpoint::parse("/v2/auth"), Ok(Endpoint::Auth));
        assert_eq!(Endpoint::parse("/v2/_catalog"), Ok(Endpoint::Catalog));
        let m = Endpoint::parse("/v2/library/alpine/manifests/3.20").unwrap();
        assert_eq!(m.name().unwrap().as_str(), "library/alpine");
        assert_eq!(m.upstream_path(None), "/v2/library/alpine/manifests/3.20");
        let b = Endpoint::parse(&format!("/v2/a/manifests/b/blobs/{}", d())).unwrap();
        assert_eq!(b.name().unwrap().as_str(), "a/manifests/b");
        assert!(matches!(b, Endpoint::Blob { .. }));
        assert!(matches!(
            Endpoint::parse("/v2/a/b/tags/list").unwrap(),
            Endpoint::TagsList { .. }
        ));
        assert!(matches!(
            Endpoint::parse(&format!("/v2/a/referrers/{}", d())).unwrap(),
            Endpoint::Referrers { .. }
        ));
        assert!(matches!(
            Endpoint::parse("/v2/a/blobs/uploads/").unwrap(),
            Endpoint::BlobUpload { .. }
        ));
        let upload = Endpoint::parse("/v2/a/blobs/uploads/some-uuid").unwrap();
        assert_eq!(upload.upstream_path(None), "/v2/a/blobs/uploads/some-uuid");
        assert_eq!(
            Endpoint::parse("/v2/a/blobs/uploads/")
                .unwrap()
                .upstream_path(None),
            "/v2/a/blobs/uploads/"
        );
        assert_eq!(
            Endpoint::parse("/v2/a/blobs/uploads/x/y"),
            Err(PathError::UnknownEndpoint)
        );
        assert_eq!(
            Endpoint::parse("/v2/a/blobs/uploads/.."),
            Err(PathError::UnknownEndpoint)
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(Endpoint::parse("/"), Err(PathError::NotApi));
        assert_eq!(Endpoint::parse("/v22/"), Err(PathError::NotApi));
        assert_eq!(
            Endpoint::parse("/v2/alpine"),
            Err(PathError::UnknownEndpoint)
        );
        assert_eq!(
            Endpoint::parse("/v2/a/foo/bar"),
            Err(PathError::UnknownEndpoint)
        );
        assert!(matches!(
            Endpoint::parse("/v2/../etc/manifests/x"),
            Err(PathError::Name(_))
        ));
        assert!(matches!(
            Endpoint::parse("/v2/a/../../b/manifests/x"),
            Err(PathError::Name(_))
        ));
        assert!(matches!(
            Endpoint::parse("/v2/A/manifests/x"),
            Err(PathError::Name(_))
        ));
        assert!(matches!(
            Endpoint::parse("/v2//a/manifests/x"),
            Err(PathError::Name(_))
        ));
        assert!(matches!(
            Endpoint::parse("/v2/a/manifests/..x"),
            Err(PathError::Reference(_))
        ));
        assert!(matches!(
            Endpoint::parse("/v2/a/blobs/latest"),
            Err(PathError::Digest(_))
        ));
        assert!(matches!(
            Endpoint::parse("/v2/a/manifests/sha256:zz"),
            Err(PathError::Reference(_))
        ));
        assert!(matches!(
            Endpoint::parse("/v2/a%2e%2e/manifests/x"),
            Err(PathError::Name(_))
        ));
    }
}
