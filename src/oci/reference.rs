//! Repository names, tags and references, following the grammar of the OCI
//! distribution spec (and distribution's `reference` package).

use crate::oci::digest::Digest;
use std::fmt;

/// distribution refuses longer names; so do we, before any upstream call.
pub const NAME_MAX_LEN: usize = 255;
const TAG_MAX_LEN: usize = 128;

/// A validated repository name, e.g. `library/alpine`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryName(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    /// A path component that is empty (`a//b`), `.`/`..`, or has characters
    /// outside `[a-z0-9]` and the allowed separators.
    BadComponent(String),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("repository name is empty"),
            NameError::TooLong => write!(
                f,
                "repository name is longer than {NAME_MAX_LEN} characters"
            ),
            NameError::BadComponent(c) => write!(
                f,
                "invalid repository name component {c:?}: components are lowercase letters and digits, separated by '.', '_', '__' or '-'"
            ),
        }
    }
}

impl RepositoryName {
    /// A name of `/`-separated components of the spec's grammar, at most
    /// [`NAME_MAX_LEN`] bytes.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > NAME_MAX_LEN {
            return Err(NameError::TooLong);
        }
        for component in name.split('/') {
            if !is_path_component(component) {
                return Err(NameError::BadComponent(component.to_string()));
            }
        }
        Ok(Self(name.to_string()))
    }

    /// The name as written (`library/alpine`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Docker Hub keeps official images under `library/`; clients may omit it.
    pub fn with_docker_hub_namespace(&self) -> Self {
        if self.0.contains('/') {
            self.clone()
        } else {
            Self(format!("library/{}", self.0))
        }
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__' or one or more '-'.
        let start = i;
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= bytes.len() || !alnum(bytes[i]) {
            return false;
        }
    }
    true
}

/// What follows `/manifests/`: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceError {
    Tag(String),
    Digest(String),
}

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReferenceError::Tag(t) => write!(
                f,
                "invalid tag {t:?}: tags match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}"
            ),
            ReferenceError::Digest(e) => f.write_str(e),
        }
    }
}

impl Reference {
    /// A digest when `s` holds a `:`, else a tag of the spec's grammar.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.contains(':') {
            return Digest::parse(s)
                .map(Reference::Digest)
                .map_err(|e| ReferenceError::Digest(e.to_string()));
        }
        if is_tag(s) {
            Ok(Reference::Tag(s.to_string()))
        } else {
            Err(ReferenceError::Tag(s.to_string()))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= TAG_MAX_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_spec_names() {
        for n in [
            "alpine",
            "library/alpine",
            "a/b/c/d",
            "my-org/my__image",
            "foo.bar/baz_qux",
            "x--y",
            "0",
        ] {
            assert!(RepositoryName::parse(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn refuses_bad_names() {
        for n in [
            "", "Alpine", "a//b", "/a", "a/", "..", "a/../b", "./a", "a/.", "a..b", "a___b", "-a",
            "a-", "a_", "a b", "a%2fb", "a:b", "a\\b", "ä",
        ] {
            assert!(RepositoryName::parse(n).is_err(), "{n:?}");
        }
        let long = "a".repeat(NAME_MAX_LEN + 1);
        assert_eq!(RepositoryName::parse(&long), Err(NameError::TooLong));
    }

    #[test]
    fn docker_hub_namespace_only_for_single_component() {
        let n = RepositoryName::parse("alpine").unwrap();
        assert_eq!(n.with_docker_hub_namespace().as_str(), "library/alpine");
        let n = RepositoryName::parse("bitnami/redis").unwrap();
        assert_eq!(n.with_docker_hub_namespace().as_str(), "bitnami/redis");
    }

    #[test]
    fn references() {
        assert_eq!(
            Reference::parse("3.20").unwrap(),
            Reference::Tag("3.20".into())
        );
        assert!(Reference::parse("_x").is_ok());
        assert!(Reference::parse(".x").is_err());
        assert!(Reference::parse("-x").is_err());
        assert!(Reference::parse(&"a".repeat(129)).is_err());
        assert!(Reference::parse(&"a".repeat(128)).is_ok());
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(matches!(Reference::parse(&d), Ok(Reference::Digest(_))));
        assert!(matches!(
            Reference::parse("sha256:abc"),
            Err(ReferenceError::Digest(_))
        ));
    }
}
