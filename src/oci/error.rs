//! Errors in the OCI distribution spec's JSON form, with their HTTP status.

use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

/// One problem with a request body (a route, say), by JSON field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Error codes of the distribution spec (plus distribution's `UNKNOWN` and
/// `TAG_INVALID`, which clients also understand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NameInvalid,
    NameUnknown,
    ManifestUnknown,
    DigestInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    Unknown,
}

impl ErrorCode {
    /// The code as the JSON body has it (`NAME_INVALID`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    pub status: u16,
    pub code: ErrorCode,
    pub message: String,
    /// Sent with "no route for this host", so people can see what is served.
    pub routes: Option<BTreeMap<String, String>>,
    /// `WWW-Authenticate` for a 401.
    pub challenge: Option<String>,
    /// Per-field problems (route validation): one error entry each, with
    /// the field in `detail`.
    pub fields: Vec<FieldError>,
}

impl RegistryError {
    /// An error answered with `status`, `code` and `message`, and nothing else.
    pub fn new(status: u16, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            routes: None,
            challenge: None,
            fields: Vec::new(),
        }
    }

    /// With per-field problems: the body then holds one error per field.
    pub fn with_fields(mut self, fields: Vec<FieldError>) -> Self {
        self.fields = fields;
        self
    }

    /// With the `WWW-Authenticate` value the answer carries.
    pub fn with_challenge(mut self, challenge: String) -> Self {
        self.challenge = Some(challenge);
        self
    }

    /// With the served routes, listed in the body beside the errors.
    pub fn with_routes(mut self, routes: BTreeMap<String, String>) -> Self {
        self.routes = Some(routes);
        self
    }

    /// The upstream could not be reached or answered nonsense.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(502, ErrorCode::Unknown, message)
    }

    /// The upstream was unreachable, timed out or failed; not a refusal
    /// (a host outside the allowed ones is `DENIED`).
    pub fn is_upstream_failure(&self) -> bool {
        self.status >= 500 && self.code == ErrorCode::Unknown
    }

    /// The body, `{"errors": [...]}` as the distribution spec has it, with `routes` if set.
    pub fn to_json(&self) -> serde_json::Value {
        let errors: Vec<serde_json::Value> = if self.fields.is_empty() {
            vec![json!({ "code": self.code.as_str(), "message": self.message })]
        } else {
            self.fields
                .iter()
                .map(|f| json!({ "code": self.code.as_str(), "message": format!("{}: {}", f.field, f.message), "detail": { "field": f.field } }))
                .collect()
        };
        let mut v = json!({ "errors": errors });
        if let Some(routes) = &self.routes {
            v["routes"] = json!(routes);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let e = RegistryError::new(400, ErrorCode::NameInvalid, "bad \"name\"");
        assert_eq!(
            e.to_json().to_string(),
            r#"{"errors":[{"code":"NAME_INVALID","message":"bad \"name\""}]}"#
        );
    }
}
