//! Repository name patterns for allow/deny lists and user rights: `*`
//! matches within one path component, `**` across components.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryPattern(String);

impl RepositoryPattern {
    /// A pattern of lowercase name characters, `*` and `**` (never `***`), at most
    /// 512 bytes; `Err` says what is allowed.
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

    /// Whether the whole of `name` matches the pattern.
    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

#[derive(Clone, Copy)]
enum Token {
    Byte(u8),
    /// `*`: any run of bytes other than `/`.
    Star,
    /// `**`: any run of bytes.
    DoubleStar,
}

fn tokens(mut p: &[u8]) -> Vec<Token> {
    let mut out = Vec::with_capacity(p.len());
    while let [c, rest @ ..] = p {
        p = rest;
        out.push(match (c, rest) {
            (b'*', [b'*', tail @ ..]) => {
                p = tail;
                Token::DoubleStar
            }
            (b'*', _) => Token::Star,
            _ => Token::Byte(*c),
        });
    }
    out
}

/// Runs the pattern as an NFA over the name, tracking every reachable
/// pattern position at once: O(pattern × name) steps, where backtracking
/// was exponential in the number of `**`.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let tokens = tokens(p);
    let mut active = vec![false; tokens.len() + 1];
    active[0] = true;
    skip_empty_stars(&tokens, &mut active);
    for &c in s {
        let mut next = vec![false; tokens.len() + 1];
        for (j, t) in tokens.iter().enumerate().filter(|&(j, _)| active[j]) {
            match *t {
                Token::Byte(b) if b == c => next[j + 1] = true,
                Token::Star if c != b'/' => next[j] = true,
                Token::DoubleStar => next[j] = true,
                _ => {}
            }
        }
        skip_empty_stars(&tokens, &mut next);
        if !next.contains(&true) {
            return false;
        }
        active = next;
    }
    active[tokens.len()]
}

/// A star may match nothing, so the position after it is reachable too.
/// One forward pass suffices: skips only move forward.
fn skip_empty_stars(tokens: &[Token], active: &mut [bool]) {
    for (j, t) in tokens.iter().enumerate() {
        if active[j] && !matches!(t, Token::Byte(_)) {
            active[j + 1] = true;
        }
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

    /// The former backtracking matcher: the definition of the semantics.
    fn reference(p: &[u8], s: &[u8]) -> bool {
        match p {
            [] => s.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| reference(rest, &s[i..])),
            [b'*', rest @ ..] => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != b'/')
                .any(|i| reference(rest, &s[i..])),
            [c, rest @ ..] => s.first() == Some(c) && reference(rest, &s[1..]),
        }
    }

    /// Every string over `alphabet` of up to `max` bytes.
    fn strings(alphabet: &[&str], max: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = all.clone();
        for _ in 0..max {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |a| format!("{s}{a}")))
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn same_semantics_as_backtracking() {
        let names = strings(&["a", "b", "/"], 5);
        for p in strings(&["a", "/", "*", "**"], 4) {
            let Ok(pattern) = RepositoryPattern::parse(&p) else {
                continue;
            };
            for n in &names {
                assert_eq!(
                    pattern.matches(n),
                    reference(p.as_bytes(), n.as_bytes()),
                    "{p:?} on {n:?}"
                );
            }
        }
    }

    #[test]
    fn many_double_stars_stay_fast() {
        // Backtracking tries ~C(250, 10) splits here before failing.
        let p = "a/**/**/**/**/**/**/**/**/**/**/b";
        let miss = format!("a/{}", "x/".repeat(126));
        assert!(!m(p, &miss));
        let hit = format!("a/{}b", "x/".repeat(126));
        assert!(m(p, &hit));
        assert!(!m("**a**a**a**a**a**a**a**a**a**a**b", &"a".repeat(255)));
    }
}
