//! How a route delivers blobs: streamed through the proxy (and its cache),
//! or by the upstream's own redirect, for platforms that limit what one
//! response body may carry.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobDelivery {
    Stream,
    /// A blob `GET` is answered with the upstream's redirect (a CDN's
    /// signed URL), which the client follows without the proxy.
    Redirect,
}

impl BlobDelivery {
    /// The `blob_delivery` variable's value; anything else streams.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "stream" => Some(Self::Stream),
            "redirect" => Some(Self::Redirect),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_by_name() {
        assert_eq!(
            BlobDelivery::parse(" redirect"),
            Some(BlobDelivery::Redirect)
        );
        assert_eq!(BlobDelivery::parse("stream"), Some(BlobDelivery::Stream));
        assert_eq!(BlobDelivery::parse("cdn"), None);
        let d: BlobDelivery = serde_json::from_str("\"redirect\"").unwrap();
        assert_eq!(d, BlobDelivery::Redirect);
    }
}
