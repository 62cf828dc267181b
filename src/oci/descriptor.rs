//! The parts of manifests a prefetch reads (OCI image spec): an index's
//! entries, an image manifest's config and layers, each a descriptor.

use crate::oci::platform::Described;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    /// Where a foreign layer's bytes are: never in the registry itself.
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub platform: Option<Described>,
}

impl Descriptor {
    /// A layer the registry does not hold (Windows base layers).
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty() || self.media_type.contains(".foreign.")
    }
}

/// An image index, Docker manifest list or referrers answer: its entries.
#[derive(Debug, Deserialize)]
pub struct ImageIndex {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// An image manifest (OCI or Docker schema 2): what a pull fetches after it.
#[derive(Debug, Deserialize)]
pub struct ImageManifest {
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

impl ImageManifest {
    /// The config, then the layers.
    pub fn blobs(self) -> Vec<Descriptor> {
        self.config.into_iter().chain(self.layers).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_parts_a_pull_needs() {
        let m: ImageManifest = serde_json::from_str(
            r#"{"schemaVersion":2,"config":{"mediaType":"c","digest":"sha256:1","size":2},
                "layers":[{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"sha256:2","size":3,"urls":["https://x"]}]}"#,
        )
        .unwrap();
        let blobs = m.blobs();
        assert_eq!(blobs.len(), 2);
        assert!(!blobs[0].is_foreign() && blobs[1].is_foreign());
        let i: ImageIndex = serde_json::from_str(
            r#"{"manifests":[{"digest":"sha256:3","platform":{"os":"linux","architecture":"arm64"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            i.manifests[0].platform.as_ref().unwrap().architecture,
            "arm64"
        );
    }
}
