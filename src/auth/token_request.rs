//! A token request as a client sends it to the proxy's realm, and the
//! token answer's JSON: shared by the relayed and the issued token.

use crate::auth::client_address::{self, Client};
use crate::host::{Host, Request, Response};
use crate::oci::error::{ErrorCode, RegistryError};
use url::form_urlencoded;

const FORM_LIMIT: usize = 64 * 1024;

/// A token request as the client sent it: its parameters (query for GET,
/// form for POST) and credentials.
pub struct TokenParams {
    pub method: String,
    pub params: Vec<(String, String)>,
    pub authorization: Option<String>,
    /// The registry the proxy's realm named (`?ns=`), if any.
    pub namespace: Option<String>,
    pub scopes: Vec<String>,
    /// Who sent it, for the login throttle.
    pub client: Client,
}

impl TokenParams {
    /// Reads the parameters (query for GET, form for POST), scopes, `ns` and
    /// credentials; `Err` for another method or a form that cannot be read.
    pub async fn read<H: Host>(host: &H, req: Request<H::Stream>) -> Result<Self, RegistryError> {
        let query: Vec<(String, String)> = pairs(req.query.as_deref().unwrap_or_default());
        let namespace = query
            .iter()
            .find(|(k, _)| k == "ns")
            .map(|(_, v)| v.clone());
        let authorization = req.headers.get("authorization").map(str::to_string);
        let client = client_address::client(host, &req.headers);
        let params = match req.method.as_str() {
            "GET" => query,
            "POST" => {
                let form = host.read_body(req.body, FORM_LIMIT).await.map_err(|e| {
                    RegistryError::new(
                        400,
                        ErrorCode::Unsupported,
                        format!("token request body: {e}"),
                    )
                })?;
                pairs(&String::from_utf8_lossy(&form))
            }
            _ => {
                return Err(RegistryError::new(
                    405,
                    ErrorCode::Unsupported,
                    "token requests are GET or POST",
                ));
            }
        };
        let scopes = params
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.clone())
            .collect();
        Ok(Self {
            method: req.method,
            params,
            authorization,
            namespace,
            scopes,
            client,
        })
    }
}

/// The decoded name-value pairs of a query string or urlencoded form, in order.
pub(crate) fn pairs(s: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(s.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A token answer: both field names clients read, and its lifetime.
pub fn token_json<S>(token: &str, expires_in: u64) -> Response<S> {
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": expires_in});
    Response::json(200, body.to_string().into_bytes())
}
