//! Upstream credentials the proxy holds for a route (Spin variables), and
//! the upstream tokens it gets with them, kept in the key-value store per
//! scope until shortly before they expire so every instance shares them.

use crate::auth::challenge::discover;
use crate::auth::kept_tokens;
use crate::host::{Body, Headers, Host};
use crate::oci::error::{ErrorCode, RegistryError};
use crate::oci::reference::RepositoryName;
use crate::routing::route::Route;
use crate::upstream::fetch::{fetch, get};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const TOKEN_LIMIT: usize = 1024 * 1024;
/// Longest an upstream token is reused, whatever it says of itself.
const MAX_TOKEN_LIFETIME: u64 = 86_400;

/// The `Authorization` the proxy sends upstream for `actions` (`pull`,
/// `pull,push`, `delete`) on `name` (or for `/v2/` itself), or `None` when
/// the route holds no credentials or the upstream needs none. `refresh`
/// skips the cached token (after a 401).
pub async fn authorization<H: Host>(
    host: &H,
    route: &Route,
    name: Option<&RepositoryName>,
    actions: &str,
    refresh: bool,
) -> Result<Option<String>, RegistryError> {
    let Some(slot) = &route.credentials else {
        return Ok(None);
    };
    let account = match Account::of(host, route, slot)? {
        Account::Header(raw) => return Ok(Some(raw)),
        Account::Password(account) => account,
    };
    let realm = discover(host, route).await?;
    let Some(realm_url) = &realm.realm else {
        return Ok(realm.basic.then_some(account.basic()));
    };
    let scope = name.map(|n| format!("repository:{n}:{actions}"));
    // Per account as well: another set's token may reach what this one may not.
    let kind = format!("{}@{slot}", route.upstream.origin().ascii_serialization());
    let request = scope.as_deref().unwrap_or("");
    let now = crate::now();
    if !refresh && let Some(token) = kept_tokens::read(host.cache().as_ref(), &kind, request, now) {
        return Ok(Some(format!("Bearer {token}")));
    }
    let mut params: Vec<(&str, &str)> = Vec::new();
    if let Some(s) = &realm.service {
        params.push(("service", s));
    }
    if let Some(s) = &scope {
        params.push(("scope", s));
    }
    let json = request_token(host, route, realm_url, &params, &account).await?;
    let token = json["token"]
        .as_str()
        .or(json["access_token"].as_str())
        .ok_or_else(|| RegistryError::bad_gateway("the upstream token response has no token"))?
        .to_string();
    let expires = reuse_until(now, json["expires_in"].as_u64());
    kept_tokens::keep(host.cache().as_ref(), &kind, request, &token, expires);
    Ok(Some(format!("Bearer {token}")))
}

/// A route's upstream account, from its Spin variables.
enum Account {
    /// `<slot>_authorization`: a whole `Authorization` value.
    Header(String),
    Password(Password),
}

struct Password {
    username: String,
    password: String,
}

impl Account {
    fn of<H: Host>(host: &H, route: &Route, slot: &str) -> Result<Self, RegistryError> {
        let var = |suffix: &str| {
            host.variable(&format!("{slot}_{suffix}"))
                .filter(|v| !v.is_empty())
        };
        if let Some(raw) = var("authorization") {
            return Ok(Account::Header(raw));
        }
        let Some(username) = var("username") else {
            // Named but empty: a configuration error, never silently
            // anonymous. A 4xx, since clients show a 4xx's message and only
            // a 5xx's status.
            return Err(RegistryError::new(
                403,
                ErrorCode::Denied,
                format!(
                    "the proxy is misconfigured: the route to {} names credentials {slot:?}, but the Spin variables {slot}_username and {slot}_password (or {slot}_authorization) are not set",
                    route.upstream.origin().ascii_serialization()
                ),
            ));
        };
        let password = var("password").unwrap_or_default();
        Ok(Account::Password(Password { username, password }))
    }
}

impl Password {
    fn basic(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!("Basic {}", STANDARD.encode(pair))
    }
}

/// The token request of the Docker token spec (GET with Basic); a realm
/// that only takes OAuth2 gets the password grant instead. The answer's JSON.
async fn request_token<H: Host>(
    host: &H,
    route: &Route,
    realm: &str,
    params: &[(&str, &str)],
    account: &Password,
) -> Result<serde_json::Value, RegistryError> {
    let realm_url = url::Url::parse(realm).map_err(|_| {
        RegistryError::bad_gateway(format!("upstream realm {realm:?} is not a URL"))
    })?;
    let mut url = realm_url.clone();
    url.query_pairs_mut().extend_pairs(params);
    let mut resp = get(host, route, url, Some(&account.basic())).await?;
    if matches!(resp.status, 404 | 405) {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .extend_pairs([
                ("grant_type", "password"),
                ("username", account.username.as_str()),
                ("password", account.password.as_str()),
                ("client_id", "registry-proxy"),
            ])
            .finish();
        let mut headers = Headers::default();
        headers.push("content-type", "application/x-www-form-urlencoded");
        let body = Body::Bytes(form.into_bytes());
        resp = fetch(host, route, "POST", realm_url, headers, None, body).await?;
    }
    let status = resp.status;
    crate::telemetry::stats::note_route_token(host, status);
    let body = host
        .read_body(resp.body, TOKEN_LIMIT)
        .await
        .map_err(|e| RegistryError::bad_gateway(format!("upstream token: {e}")))?;
    if status != 200 {
        return Err(RegistryError::bad_gateway(format!(
            "the upstream token service refused the route's credentials ({status})"
        )));
    }
    serde_json::from_slice(&body)
        .map_err(|_| RegistryError::bad_gateway("the upstream token response is not JSON"))
}

/// Until when an upstream token is reused: 90% of its life, which lasts 60 s
/// when unsaid (Docker token spec). An upstream's `expires_in` is untrusted:
/// at most a day counts, and no value overflows.
fn reuse_until(now: u64, expires_in: Option<u64>) -> u64 {
    let lifetime = expires_in.unwrap_or(60).clamp(60, MAX_TOKEN_LIFETIME);
    now.saturating_add(lifetime / 10 * 9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetimes_are_bounded() {
        assert_eq!(reuse_until(1000, None), 1054);
        assert_eq!(reuse_until(1000, Some(300)), 1270);
        assert_eq!(reuse_until(1000, Some(1)), 1054);
        assert_eq!(reuse_until(1000, Some(u64::MAX)), 1000 + 77_760);
        assert_eq!(reuse_until(u64::MAX - 5, Some(300)), u64::MAX);
    }
}
