//! Token scopes (`repository:library/alpine:pull`), from the Docker token
//! spec, rewritten from the names clients use to the names the upstream uses.

use crate::reference::RepositoryName;
use std::fmt;

/// `resourcetype[(class)]:resourcename:action[,action...]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub resource_type: String,
    pub name: String,
    pub actions: String,
}

impl Scope {
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

/// Rewrites each scope in `values` (each value may hold several, space
/// separated, as containerd sends them) for an upstream. Repository scopes get
/// Docker Hub's `library/` where needed; scopes that name no valid repository
/// of this upstream are dropped, so a client cannot use the proxy to ask the
/// upstream realm for anything else.
pub fn rewrite_for_upstream(values: &[String], docker_hub: bool) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(' '))
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let mut scope = Scope::parse(s)?;
            if scope.is_repository() {
                let name = RepositoryName::parse(&scope.name).ok()?;
                let name = if docker_hub {
                    name.with_docker_hub_namespace()
                } else {
                    name
                };
                scope.name = name.to_string();
            } else if scope.resource_type != "registry" {
                return None;
            }
            Some(scope.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn docker_hub_library() {
        assert_eq!(
            rewrite_for_upstream(&v(&["repository:alpine:pull"]), true),
            v(&["repository:library/alpine:pull"])
        );
        assert_eq!(
            rewrite_for_upstream(&v(&["repository:bitnami/redis:pull,push"]), true),
            v(&["repository:bitnami/redis:pull,push"])
        );
        assert_eq!(
            rewrite_for_upstream(&v(&["repository:alpine:pull"]), false),
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
                true
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
        assert!(
            rewrite_for_upstream(
                &v(&[
                    "repository:../etc:pull",
                    "repository:A:pull",
                    "junk",
                    "repository::pull",
                    "x:y:z",
                    "repository:a:"
                ]),
                false
            )
            .is_empty()
        );
        assert_eq!(
            rewrite_for_upstream(&v(&["repository(plugin):a/b:pull"]), false),
            v(&["repository(plugin):a/b:pull"])
        );
    }
}
