//! `WWW-Authenticate` challenges (RFC 7235 §4.1): parsing what upstreams send
//! and rendering what the proxy sends.

use std::fmt;

/// One challenge: an auth-scheme and its auth-params, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// A challenge of `scheme` with no parameters yet.
    pub fn new(scheme: &str) -> Self {
        Self {
            scheme: scheme.to_string(),
            params: Vec::new(),
        }
    }

    /// Whether the scheme is Bearer (case-insensitive).
    pub fn is_bearer(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("bearer")
    }

    /// Whether the scheme is Basic (case-insensitive).
    pub fn is_basic(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("basic")
    }

    /// Parameter names are case-insensitive.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Replaces the value of parameter `name` (case-insensitive), or appends it.
    pub fn set_param(&mut self, name: &str, value: &str) {
        match self
            .params
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(p) => p.1 = value.to_string(),
            None => self.params.push((name.to_string(), value.to_string())),
        }
    }
}

impl fmt::Display for Challenge {
    /// Values are always quoted: every client accepts quoted-strings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme)?;
        for (i, (name, value)) in self.params.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { "," })?;
            write!(f, "{name}=\"")?;
            for c in value.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed WWW-Authenticate: {}", self.0)
    }
}

/// Parses a header value holding one or more challenges (RFC 7235, with
/// `http-auth`'s parser). Values may be quoted or bare tokens (gcr.io
/// sends `service=gcr.io`), and quoted values may hold commas, `?` and
/// escaped quotes.
pub fn parse(header: &str) -> Result<Vec<Challenge>, ParseError> {
    let mut challenges = Vec::new();
    for parsed in http_auth::parser::ChallengeParser::new(header) {
        let parsed = parsed.map_err(|e| ParseError(e.to_string()))?;
        let mut challenge = Challenge::new(parsed.scheme);
        for (name, value) in parsed.params {
            challenge
                .params
                .push((name.to_string(), value.to_unescaped()));
        }
        challenges.push(challenge);
    }
    if challenges.is_empty() {
        return Err(ParseError("no challenge".into()));
    }
    Ok(challenges)
}

/// Renders several challenges into one header value.
pub fn render(challenges: &[Challenge]) -> String {
    challenges
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub() {
        let c = parse(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#).unwrap();
        assert_eq!(c.len(), 1);
        assert!(c[0].is_bearer());
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("Service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/alpine:pull"));
    }

    #[test]
    fn unquoted_values_and_spaces() {
        let c = parse(r#"Bearer realm="https://gcr.io/v2/token", service=gcr.io"#).unwrap();
        assert_eq!(c[0].param("service"), Some("gcr.io"));
    }

    #[test]
    fn commas_and_query_inside_quoted_realm() {
        let c = parse(r#"Bearer realm="https://nvcr.io/proxy_auth?scope=repository:a:pull,push",service="ngc\"x""#).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].param("realm"),
            Some("https://nvcr.io/proxy_auth?scope=repository:a:pull,push")
        );
        assert_eq!(c[0].param("service"), Some("ngc\"x"));
    }

    #[test]
    fn several_challenges() {
        let c =
            parse(r#"Basic realm="reg", Bearer realm="https://a/token",service="a", Negotiate"#)
                .unwrap();
        assert_eq!(c.len(), 3);
        assert!(c[0].is_basic());
        assert_eq!(c[0].param("realm"), Some("reg"));
        assert!(c[1].is_bearer());
        assert_eq!(c[1].param("service"), Some("a"));
        assert_eq!(c[2].scheme, "Negotiate");
        assert!(c[2].params.is_empty());
    }

    #[test]
    fn missing_service() {
        let c = parse(r#"Bearer realm="https://quay.io/v2/auth""#).unwrap();
        assert_eq!(c[0].param("service"), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "",
            "   ",
            "Bearer realm=\"unterminated",
            "=x",
            "Bearer realm=\"a\" ; x",
            "\u{7f}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn render_round_trips_with_escapes() {
        let mut c = Challenge::new("Bearer");
        c.set_param("realm", "http://localhost:3000/v2/auth");
        c.set_param("service", "a\"b\\c");
        let s = c.to_string();
        assert_eq!(
            s,
            r#"Bearer realm="http://localhost:3000/v2/auth",service="a\"b\\c""#
        );
        assert_eq!(parse(&s).unwrap(), vec![c]);
    }
}
