//! Single byte ranges (`Range: bytes=...`, RFC 9110 §14) over a blob of
//! known size, for blobs served from the cache.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `start..=end`, within the blob.
    Satisfiable { start: u64, end: u64 },
    /// Answered with 416.
    Unsatisfiable,
}

/// `None` when there is no usable range (absent, several ranges, another
/// unit): the whole blob is served, as RFC 9110 allows.
pub fn parse(header: Option<&str>, size: u64) -> Option<ByteRange> {
    let spec = header?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 || size == 0 {
            return Some(ByteRange::Unsatisfiable);
        }
        ByteRange::Satisfiable {
            start: size.saturating_sub(suffix),
            end: size - 1,
        }
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            u64::MAX
        } else {
            last.parse().ok()?
        };
        if end < start {
            return None;
        }
        if start >= size {
            return Some(ByteRange::Unsatisfiable);
        }
        ByteRange::Satisfiable {
            start,
            end: end.min(size - 1),
        }
    };
    Some(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let s = |start, end| Some(ByteRange::Satisfiable { start, end });
        assert_eq!(parse(Some("bytes=0-9"), 100), s(0, 9));
        assert_eq!(parse(Some("bytes=90-"), 100), s(90, 99));
        assert_eq!(parse(Some("bytes=90-500"), 100), s(90, 99));
        assert_eq!(parse(Some("bytes=-10"), 100), s(90, 99));
        assert_eq!(parse(Some("bytes=-1000"), 100), s(0, 99));
        assert_eq!(
            parse(Some("bytes=100-"), 100),
            Some(ByteRange::Unsatisfiable)
        );
        assert_eq!(parse(Some("bytes=-0"), 100), Some(ByteRange::Unsatisfiable));
        assert_eq!(parse(Some("bytes=5-1"), 100), None);
        assert_eq!(parse(Some("bytes=0-1,5-6"), 100), None);
        assert_eq!(parse(Some("items=0-1"), 100), None);
        assert_eq!(parse(Some("bytes=x-1"), 100), None);
        assert_eq!(parse(None, 100), None);
    }
}
