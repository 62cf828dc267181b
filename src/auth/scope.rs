//! Token scopes (`repository:library/alpine:pull`), from the Docker token
//! spec, rewritten from the names clients use to the names the upstream uses.

use crate::oci::reference::RepositoryName;
use crate::routing::naming::{NameMapping, split_registry_host};
use std::fmt;

/// `resourcetype[(class)]:resourcename:action[,action...]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub resource_type: String,
    pub name: String,
    pub actions: String,
}

impl Scope {
    /// One scope; `None` when its type, name or actions are missing or hold
    /// characters a scope cannot.
    pub fn parse(s: &str) -> Option<Self> {
        // The name may itself hold ':' (a registry host with a port), so the
        // type is before the first ':' and the actions after the last.
        let (resource_type, rest) = s.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        let type_ok = !resource_type.is_empty()
            && resource_type
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'(' | b')' | b'_' | b'-'));
        let actions_ok = !actions.is_empty()
            && actions
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b',' | b'*' | b'_' | b'-'));
        (type_ok && actions_ok && !name.is_empty()).then(|| Self {
            resource_type: resource_type.to_string(),
            name: name.to_string(),
            actions: actions.to_string(),
        })
    }

    fn is_repository(&self) -> bool {
        self.resource_type == "repository" || self.resource_type.starts_with("repository(")
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.resource_type, self.name, self.actions)
    }
}

fn split(values: &[String]) -> impl Iterator<Item = Scope> + '_ {
    values
        .iter()
        .flat_map(|v| v.split(' '))
        .filter_map(Scope::parse)
}

/// The registry host that repository scopes put before their names
/// (`repository:ghcr.io/owner/image:pull`), when they all name one; an error
/// when they name different registries, or some name one and some none.
pub fn registry_host(values: &[String]) -> Result<Option<String>, String> {
    let mut hosts = split(values)
        .filter(Scope::is_repository)
        .map(|s| split_registry_host(&s.name).map(|(h, _)| h));
    let Some(first) = hosts.next() else {
        return Ok(None);
    };
    if hosts.all(|h| h == first) {
        Ok(first)
    } else {
        Err("the scopes name repositories of different registries; request a token for one at a time".into())
    }
}

/// Rewrites each scope in `values` (each value may hold several, space
/// separated, as containerd sends them) to the upstream's names: the
/// registry host the client named is removed, the route's prefix or Docker
/// Hub's `library/` added. Scopes that name no valid repository of this
/// upstream are dropped, so a client cannot use the proxy to ask the
/// upstream realm for anything else; so are names `serves` refuses.
pub fn rewrite_for_upstream(
    values: &[String],
    mapping: &NameMapping,
    serves: &dyn Fn(&str, &str) -> bool,
) -> Vec<String> {
    split(values)
        .filter_map(|mut scope| {
            if scope.is_repository() {
                let name = match (split_registry_host(&scope.name), &mapping.registry_host) {
                    (Some((host, rest)), Some(expected)) if host == *expected => rest.to_string(),
                    (None, _) => scope.name.clone(),
                    _ => return None,
                };
                let name = RepositoryName::parse(&name).ok()?;
                let upstream = mapping.to_upstream(&name)?;
                if !serves(name.as_str(), upstream.as_str()) {
                    return None;
                }
                scope.name = upstream.to_string();
            } else if scope.resource_type != "registry" {
                return None;
            }
            Some(scope.to_string())
        })
        .collect()
}

/// The client's names in a challenge's `scope` (space separated), so the
/// token request that follows comes back naming what the client knows.
pub fn rewrite_for_client(value: &str, mapping: &NameMapping) -> String {
    split(&[value.to_string()])
        .filter_map(|mut scope| {
            if scope.is_repository() {
                scope.name = mapping.to_client(&scope.name)?;
            }
            Some(scope.to_string())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn hub() -> NameMapping {
        NameMapping {
            docker_hub: true,
            ..Default::default()
        }
    }

    #[test]
    fn docker_hub_library() {
        assert_eq!(
            rewrite_for_upstream(&v(&["repository:alpine:pull"]), &hub(), &|_, _| true),
            v(&["repository:library/alpine:pull"])
        );
        assert_eq!(
            rewrite_for_upstream(
                &v(&["repository:bitnami/redis:pull,push"]),
                &hub(),
                &|_, _| { true }
            ),
            v(&["repository:bitnami/redis:pull,push"])
        );
        assert_eq!(
            rewrite_for_upstream(
                &v(&["repository:alpine:pull"]),
                &NameMapping::default(),
                &|_, _| true
            ),
            v(&["repository:alpine:pull"])
        );
    }

    #[test]
    fn several_scopes_and_space_separated() {
        assert_eq!(
            rewrite_for_upstream(
                &v(&[
                    "repository:a:pull repository:b/c:pull",
                    "registry:catalog:*"
                ]),
                &hub(),
                &|_, _| true
            ),
            v(&[
                "repository:library/a:pull",
                "repository:b/c:pull",
                "registry:catalog:*"
            ])
        );
    }

    #[test]
    fn foreign_or_malformed_scopes_dropped() {
        let none = NameMapping::default();
        let bad = v(&[
            "repository:../etc:pull",
            "repository:A:pull",
            "junk",
            "repository::pull",
            "x:y:z",
            "repository:a:",
            "repository:ghcr.io/a:pull",
        ]);
        assert!(rewrite_for_upstream(&bad, &none, &|_, _| true).is_empty());
        assert_eq!(
            rewrite_for_upstream(&v(&["repository(plugin):a/b:pull"]), &none, &|_, _| true),
            v(&["repository(plugin):a/b:pull"])
        );
    }

    #[test]
    fn registry_host_prefixes() {
        let ghcr = NameMapping {
            registry_host: Some("ghcr.io".into()),
            ..Default::default()
        };
        assert_eq!(
            rewrite_for_upstream(
                &v(&["repository:ghcr.io/o/i:pull repository:o/j:pull repository:quay.io/x:pull"]),
                &ghcr,
                &|_, _| true
            ),
            v(&["repository:o/i:pull", "repository:o/j:pull"])
        );
        assert_eq!(
            registry_host(&v(&[
                "repository:ghcr.io/o/i:pull",
                "repository:ghcr.io/o/j:pull"
            ])),
            Ok(Some("ghcr.io".into()))
        );
        assert_eq!(
            registry_host(&v(&["repository:o/i:pull", "registry:catalog:*"])),
            Ok(None)
        );
        assert!(
            registry_host(&v(&[
                "repository:ghcr.io/o/i:pull repository:quay.io/o/j:pull"
            ]))
            .is_err()
        );
        assert!(
            registry_host(&v(&[
                "repository:ghcr.io/o/i:pull",
                "repository:plain:pull"
            ]))
            .is_err()
        );
    }

    #[test]
    fn repository_prefix_both_ways() {
        let m = NameMapping {
            repository_prefix: Some("proj".into()),
            registry_host: Some("r.example.com".into()),
            docker_hub: false,
        };
        assert_eq!(
            rewrite_for_upstream(&v(&["repository:foo:pull"]), &m, &|_, _| true),
            v(&["repository:proj/foo:pull"])
        );
        assert_eq!(
            rewrite_for_client(
                "repository:proj/foo:pull repository:other/x:pull registry:catalog:*",
                &m
            ),
            "repository:r.example.com/foo:pull registry:catalog:*"
        );
    }
}
