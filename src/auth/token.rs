//! `/v2/auth`: the realm the proxy advertises. It discovers the upstream's
//! own realm, rewrites scopes to upstream names and relays the token request.

use crate::auth::challenge::{ANONYMOUS_TOKEN, UpstreamRealm, discover};
use crate::auth::token_request::{TokenParams, token_json};
use crate::auth::{anonymous_tokens, scope};
use crate::host::notes::TokenAnswer;
use crate::host::{Body, Headers, Host, Response};
use crate::oci::error::{ErrorCode, RegistryError};
use crate::routing::route::Route;
use crate::routing::target::Target;
use crate::telemetry::stats::note_token;
use crate::upstream::fetch::{fetch, get};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use url::Url;
use url::form_urlencoded;

const TOKEN_LIMIT: usize = 1024 * 1024;

/// Answers `/v2/auth`: the proxy's own JWT under `login`; else the upstream realm's
/// token, or the anonymous one if the route has credentials or the realm fails.
pub async fn handle<H: Host>(
    host: &H,
    target: &Target,
    req: TokenParams,
    login: bool,
) -> Result<Response<H::Stream>, RegistryError> {
    let route = &target.route;
    if login {
        return crate::auth::login::issue(host, target, &req);
    }
    if route.credentials.is_some() {
        // The proxy authenticates upstream itself: clients need no login.
        return Ok(anonymous_token(host));
    }
    match from_upstream_realm(host, target, &req).await {
        // An upstream that is down leaves what is cached: the anonymous
        // token lets a pull of it go on (and never goes upstream itself).
        Err(e) if e.is_upstream_failure() => {
            eprintln!(
                "upstream token service failed, anonymous token: {}",
                e.message
            );
            Ok(anonymous_token(host))
        }
        Ok(resp) if resp.status >= 500 => {
            eprintln!(
                "upstream token service answered {}, anonymous token",
                resp.status
            );
            Ok(anonymous_token(host))
        }
        answer => answer,
    }
}

/// The client's token request relayed to the upstream's realm.
async fn from_upstream_realm<H: Host>(
    host: &H,
    target: &Target,
    req: &TokenParams,
) -> Result<Response<H::Stream>, RegistryError> {
    let route = &target.route;
    let realm = discover(host, route).await?;
    let Some(realm_str) = &realm.realm else {
        if realm.basic {
            return Err(RegistryError::new(
                404,
                ErrorCode::Unsupported,
                "the upstream uses Basic auth: send credentials with each request",
            ));
        }
        return Ok(anonymous_token(host));
    };
    let mut realm_url = Url::parse(realm_str).map_err(|_| {
        RegistryError::bad_gateway(format!("upstream realm {realm_str:?} is not a URL"))
    })?;
    let params = relayed_params(req, &realm, target);
    let authorization = req.authorization.as_deref();
    note_token(host, TokenAnswer::Relayed);
    if req.method == "GET" {
        realm_url.query_pairs_mut().extend_pairs(&params);
        if authorization.is_none() {
            return anonymous(host, route, realm_url).await;
        }
        let resp = get(host, route, realm_url, authorization).await?;
        return Ok(token_response(resp));
    }
    post(host, target, req, realm_url, params).await
}

/// The token request as an OAuth2 POST, as the client sent it.
async fn post<H: Host>(
    host: &H,
    target: &Target,
    req: &TokenParams,
    mut realm_url: Url,
    params: Vec<(String, String)>,
) -> Result<Response<H::Stream>, RegistryError> {
    let (route, authorization) = (&target.route, req.authorization.as_deref());
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    let mut headers = Headers::default();
    headers.push("content-type", "application/x-www-form-urlencoded");
    let resp = fetch(
        host,
        route,
        "POST",
        realm_url.clone(),
        headers,
        authorization,
        Body::Bytes(encoded.into_bytes()),
    )
    .await?;
    // Realms without OAuth2 POST support answer 404/405; a password grant
    // then becomes the GET token request, as clients do it.
    match (resp.status, password_grant(&params)) {
        (404 | 405, Some(basic)) => {
            let get_params: Vec<(String, String)> = params
                .into_iter()
                .filter(|(k, _)| k == "service")
                .chain(
                    scope_values(req, target)
                        .into_iter()
                        .map(|s| ("scope".to_string(), s)),
                )
                .collect();
            realm_url.query_pairs_mut().extend_pairs(&get_params);
            let resp = get(host, route, realm_url, Some(&basic)).await?;
            as_oauth2_response(host, resp).await
        }
        _ => Ok(token_response(resp)),
    }
}

/// An anonymous token request: the kept answer, else the upstream's, kept.
async fn anonymous<H: Host>(
    host: &H,
    route: &Route,
    realm_url: Url,
) -> Result<Response<H::Stream>, RegistryError> {
    if let Some(kept) = anonymous_tokens::cached(host, &realm_url) {
        note_token(host, TokenAnswer::Kept);
        return Ok(kept);
    }
    let resp = get(host, route, realm_url.clone(), None).await?;
    if resp.status != 200 {
        return Ok(token_response(resp));
    }
    let body = host
        .read_body(resp.body, TOKEN_LIMIT)
        .await
        .map_err(|e| RegistryError::bad_gateway(format!("upstream token: {e}")))?;
    anonymous_tokens::keep(host, &realm_url, &body);
    Ok(Response::json(200, body))
}

fn scope_values(req: &TokenParams, target: &Target) -> Vec<String> {
    scope::rewrite_for_upstream(&req.scopes, &target.mapping, &|client, upstream| {
        target.route.serves(client, upstream)
    })
}

/// The client's parameters with scopes rewritten to upstream names (one
/// `scope` each for GET, space separated for an OAuth2 form) and the
/// upstream's own `service`; `ns` was for the proxy.
fn relayed_params(
    req: &TokenParams,
    realm: &UpstreamRealm,
    target: &Target,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = req
        .params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "scope" | "service" | "ns"))
        .cloned()
        .collect();
    if let Some(s) = &realm.service {
        out.push(("service".into(), s.clone()));
    }
    let scopes = scope_values(req, target);
    if req.method == "POST" {
        if !scopes.is_empty() {
            out.push(("scope".into(), scopes.join(" ")));
        }
    } else {
        out.extend(scopes.into_iter().map(|s| ("scope".to_string(), s)));
    }
    out
}

fn password_grant(params: &[(String, String)]) -> Option<String> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("grant_type") != Some("password") {
        return None;
    }
    let creds = format!("{}:{}", get("username")?, get("password").unwrap_or(""));
    Some(format!("Basic {}", STANDARD.encode(creds.as_bytes())))
}

fn anonymous_token<H: Host>(host: &H) -> Response<H::Stream> {
    note_token(host, TokenAnswer::Anonymous);
    token_json(ANONYMOUS_TOKEN, 3600)
}

fn token_response<S>(resp: Response<S>) -> Response<S> {
    let mut headers = Headers::default();
    headers.push(
        "content-type",
        resp.headers
            .get("content-type")
            .unwrap_or("application/json"),
    );
    headers.push("cache-control", "no-store");
    Response {
        status: resp.status,
        headers,
        body: resp.body,
    }
}

/// A GET token response in the OAuth2 shape a POST client expects.
async fn as_oauth2_response<H: Host>(
    host: &H,
    resp: Response<H::Stream>,
) -> Result<Response<H::Stream>, RegistryError> {
    let status = resp.status;
    let bytes = host
        .read_body(resp.body, TOKEN_LIMIT)
        .await
        .map_err(|e| RegistryError::bad_gateway(format!("token response: {e}")))?;
    let mut body = bytes.clone();
    if status == 200
        && let Ok(serde_json::Value::Object(mut m)) = serde_json::from_slice(&bytes)
        && !m.contains_key("access_token")
        && let Some(t) = m.get("token").cloned()
    {
        m.insert("access_token".into(), t);
        body = serde_json::to_vec(&m).unwrap_or(bytes);
    }
    Ok(Response::json(status, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token_request::pairs;

    fn params(method: &str, query: &str) -> TokenParams {
        let params = pairs(query);
        let scopes = params
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.clone())
            .collect();
        TokenParams {
            method: method.into(),
            params,
            authorization: None,
            namespace: None,
            scopes,
            client: crate::auth::client_address::Client::Unknown,
        }
    }

    #[test]
    fn params_for_get_and_post() {
        let route = crate::routing::route::RouteConfig::new("https://registry-1.docker.io")
            .resolve()
            .unwrap();
        let hub = Target {
            name: "docker.io".into(),
            mapping: route.mapping(None),
            route,
            namespace: None,
        };
        let realm = UpstreamRealm {
            realm: Some("https://auth.docker.io/token".into()),
            service: Some("registry.docker.io".into()),
            basic: false,
            expires: 0,
        };
        let p = relayed_params(
            &params(
                "GET",
                "service=proxy&ns=docker.io&scope=repository%3Aalpine%3Apull&scope=repository%3A..%3Apull&account=me",
            ),
            &realm,
            &hub,
        );
        assert_eq!(
            p,
            vec![
                ("account".to_string(), "me".to_string()),
                ("service".to_string(), "registry.docker.io".to_string()),
                (
                    "scope".to_string(),
                    "repository:library/alpine:pull".to_string()
                ),
            ]
        );
        let form = "grant_type=password&username=u&password=p%3A&scope=repository%3Aa%3Apull+repository%3Ab%2Fc%3Apull";
        let p = relayed_params(&params("POST", form), &realm, &hub);
        assert!(p.contains(&(
            "scope".to_string(),
            "repository:library/a:pull repository:b/c:pull".to_string()
        )));
        assert_eq!(
            password_grant(&p).unwrap(),
            format!("Basic {}", STANDARD.encode(b"u:p:"))
        );
    }
}
