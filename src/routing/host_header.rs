//! The `Host` header: validated (it ends up in challenges and pages) and
//! turned into the route names to try.

/// Validates a `Host` header (it ends up in challenges and pages) and
/// returns it lowercased with the names to try in order: `host:port`, then
/// `host`.
pub fn host_candidates(host_header: &str) -> Option<Vec<String>> {
    let host = host_header.trim().to_ascii_lowercase();
    if host.is_empty() || host.len() > 255 {
        return None;
    }
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        // IPv6 literal.
        let (addr, after) = rest.split_once(']')?;
        if addr.is_empty()
            || !addr
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        (&host[..addr.len() + 2], ipv6_port(after)?)
    } else {
        match host.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host.as_str(), None),
        }
    };
    let name_ok = !name.is_empty()
        && (name.starts_with('[')
            || name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
    if !name_ok || !port_ok {
        return None;
    }
    let mut out = vec![host.clone()];
    if port.is_some() {
        out.push(name.to_string());
    }
    Some(out)
}

/// What may follow an IPv6 literal's `]`: nothing, or `:` and a port.
/// `Some(None)` is no port; `None` is malformed.
fn ipv6_port(after: &str) -> Option<Option<&str>> {
    if after.is_empty() {
        return Some(None);
    }
    let port = after.strip_prefix(':')?;
    let digits = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    digits.then_some(Some(port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_validation() {
        assert_eq!(
            host_candidates("LocalHost:3000").unwrap(),
            vec!["localhost:3000", "localhost"]
        );
        assert_eq!(
            host_candidates("docker.example.com").unwrap(),
            vec!["docker.example.com"]
        );
        assert_eq!(
            host_candidates("[::1]:3000").unwrap(),
            vec!["[::1]:3000", "[::1]"]
        );
        for bad in [
            "", "a b", "a\"b", "a:b", "a:99999", "x/y", "[zz]", "a,b", "a\r\nb",
        ] {
            assert!(host_candidates(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn ipv6_host_suffix() {
        assert_eq!(host_candidates("[::1]").unwrap(), vec!["[::1]"]);
        assert_eq!(
            host_candidates("[::1]:5000").unwrap(),
            vec!["[::1]:5000", "[::1]"]
        );
        for bad in [
            "[::1]junk",
            "[::1]:",
            "[::1]:x",
            "[::1]:+5",
            "[::1]]",
            "[::1] :5",
        ] {
            assert!(host_candidates(bad).is_none(), "{bad:?}");
        }
    }
}
