//! Repository name patterns for allow/deny lists and user rights: `*`
//! matches within one path component, `**` across components.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryPattern(String);

impl RepositoryPattern {
    pub fn parse(p: &str) -> Result<Self, String> {
        let ok = !p.is_empty()
            && p.len() <= 512
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/*:".contains(&b))
            && !p.contains("***");
        if ok {
            Ok(Self(p.to_string()))
        } else {
            Err(format!(
                "invalid repository pattern {p:?}: lowercase names with '*' (one component) or '**' (any)"
            ))
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

/// Backtracking glob: patterns are short and there is at most one `**`
/// run per component, so this stays cheap.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        [b'*', rest @ ..] => (0..=s.len())
            .take_while(|&i| i == 0 || s[i - 1] != b'/')
            .any(|i| glob(rest, &s[i..])),
        [c, rest @ ..] => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

impl fmt::Display for RepositoryPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        RepositoryPattern::parse(p).unwrap().matches(s)
    }

    #[test]
    fn globs() {
        assert!(m("library/*", "library/alpine"));
        assert!(!m("library/*", "library/a/b"));
        assert!(!m("library/*", "libraryx/alpine"));
        assert!(m("myorg/**", "myorg/a/b/c"));
        assert!(m("myorg/**", "myorg/a"));
        assert!(!m("myorg/**", "other/a"));
        assert!(m("**", "anything/at/all"));
        assert!(m("*/redis", "bitnami/redis"));
        assert!(m("exact/name", "exact/name"));
        assert!(!m("exact/name", "exact/name2"));
        assert!(m("ghcr.io/org/*", "ghcr.io/org/img"));
    }

    #[test]
    fn bad_patterns() {
        for p in ["", "UPPER", "a b", "***", "a\\b"] {
            assert!(RepositoryPattern::parse(p).is_err(), "{p}");
        }
    }
}
