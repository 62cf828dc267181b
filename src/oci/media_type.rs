//! The manifest media types a registry serves (the OCI image spec's and
//! Docker's), and a client's `Accept` list read as the set of them it
//! names. Only that set decides which manifest a tag answers with, so it
//! is all that goes upstream and into a cached tag's key: whatever else a
//! client lists cannot make the proxy ask again or store another copy.

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_V1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// In the order they go upstream: indexes first, as clients list them.
const KNOWN: [&str; 6] = [
    OCI_INDEX,
    DOCKER_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
    DOCKER_V1_SIGNED,
    DOCKER_V1,
];

/// Whether `media_type` lists other manifests (one per platform).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// The known manifest types an `Accept` list names, as bits of [`KNOWN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accepted(u8);

impl Accepted {
    /// From every `Accept` value of a request; a type with `q=0` is refused,
    /// not named, and wildcards name nothing in particular.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut bits = 0u8;
        for item in values.into_iter().flat_map(|v| v.split(',')) {
            let mut parts = item.split(';').map(str::trim);
            let media_type = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if let Some(i) = KNOWN
                .iter()
                .position(|k| k.eq_ignore_ascii_case(media_type))
                && !refused
            {
                bits |= 1 << i;
            }
        }
        Self(bits)
    }

    /// Whether the client named no known manifest type (nothing, or only wildcards).
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether a client naming these takes a manifest of `media_type`.
    pub fn covers(self, media_type: &str) -> bool {
        KNOWN
            .iter()
            .position(|k| *k == media_type)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// Whether an index may be the answer: then a tag that is one gets it.
    pub fn offers_index(self) -> bool {
        KNOWN.iter().any(|k| is_index(k) && self.covers(k))
    }

    /// The `Accept` value that names these, or `None` for none.
    pub fn header(self) -> Option<String> {
        let named: Vec<&str> = KNOWN.iter().copied().filter(|k| self.covers(k)).collect();
        (!named.is_empty()).then(|| named.join(", "))
    }

    /// A short stable name of the set, for keys.
    pub fn key(self) -> String {
        format!("{:02x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_manifest_types_count() {
        let docker = Accepted::parse([
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
        ]);
        let with_junk = Accepted::parse([
            "application/vnd.oci.image.manifest.v1+json;q=0.5,application/vnd.docker.distribution.manifest.v2+json",
            "application/x-junk-123, application/vnd.oci.image.index.v1+json, */*",
            "APPLICATION/VND.DOCKER.DISTRIBUTION.MANIFEST.LIST.V2+JSON",
        ]);
        assert_eq!(docker, with_junk);
        assert_eq!(docker.key(), with_junk.key());
        assert!(docker.offers_index() && docker.covers(OCI_MANIFEST));
        assert_eq!(
            docker.header().unwrap(),
            [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST].join(", ")
        );
    }

    #[test]
    fn refused_and_unknown_types_name_nothing() {
        let a = Accepted::parse(["application/vnd.oci.image.index.v1+json;q=0, text/html, */*"]);
        assert!(a.is_empty() && a.header().is_none() && !a.offers_index());
        let single = Accepted::parse([DOCKER_MANIFEST]);
        assert!(!single.offers_index() && single.covers(DOCKER_MANIFEST));
        assert!(!single.covers(OCI_MANIFEST));
    }
}
