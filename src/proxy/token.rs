//! `/v2/auth`: the realm the proxy advertises. It discovers the upstream's
//! own realm, rewrites scopes to upstream names and relays the token request.

use super::host::{Body, Headers, Host, Request, Response};
use super::upstream::fetch;
use crate::challenge::{UpstreamRealm, realm_key};
use crate::error::{ErrorCode, RegistryError};
use crate::route::Route;
use crate::scope;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use url::Url;
use url::form_urlencoded;

const FORM_LIMIT: usize = 64 * 1024;
const TOKEN_LIMIT: usize = 1024 * 1024;

pub async fn handle<H: Host>(
    host: &H,
    route: &Route,
    req: Request<H::Stream>,
) -> Result<Response<H::Stream>, RegistryError> {
    let realm = discover(host, route).await?;
    let mut realm_url = Url::parse(&realm.realm).map_err(|_| {
        RegistryError::bad_gateway(format!("upstream realm {:?} is not a URL", realm.realm))
    })?;
    let authorization = req.headers.get("authorization").map(str::to_string);
    match req.method.as_str() {
        "GET" => {
            let params = relayed_params(req.query.as_deref().unwrap_or(""), &realm, route);
            realm_url.query_pairs_mut().extend_pairs(&params);
            let resp = fetch(
                host,
                route,
                "GET",
                realm_url,
                Headers::default(),
                authorization.as_deref(),
                Body::Empty,
            )
            .await?;
            Ok(token_response(resp))
        }
        "POST" => {
            let form = host.read_body(req.body, FORM_LIMIT).await.map_err(|e| {
                RegistryError::new(
                    400,
                    ErrorCode::Unsupported,
                    format!("token request body: {e}"),
                )
            })?;
            let form = String::from_utf8_lossy(&form).into_owned();
            let params = relayed_params(&form, &realm, route);
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
                authorization.as_deref(),
                Body::Bytes(encoded.into_bytes()),
            )
            .await?;
            // Realms without OAuth2 POST support answer 404/405; a password
            // grant then becomes the GET token request, as clients do it.
            let basic = password_grant(&params);
            match (resp.status, basic) {
                (404 | 405, Some(basic)) => {
                    let get_params: Vec<(String, String)> = params
                        .into_iter()
                        .filter(|(k, _)| k == "scope" || k == "service")
                        .collect();
                    realm_url.query_pairs_mut().extend_pairs(&get_params);
                    let resp = fetch(
                        host,
                        route,
                        "GET",
                        realm_url,
                        Headers::default(),
                        Some(&basic),
                        Body::Empty,
                    )
                    .await?;
                    as_oauth2_response(host, resp).await
                }
                _ => Ok(token_response(resp)),
            }
        }
        _ => Err(RegistryError::new(
            405,
            ErrorCode::Unsupported,
            "token requests are GET or POST",
        )),
    }
}

/// The upstream's realm and service, from the key-value store or, when
/// absent or stale, from the upstream's `/v2/` challenge.
async fn discover<H: Host>(host: &H, route: &Route) -> Result<UpstreamRealm, RegistryError> {
    let now = super::now();
    let key = realm_key(&route.upstream.origin().ascii_serialization());
    if let Ok(Some(bytes)) = host.kv_get(&key)
        && let Ok(r) = serde_json::from_slice::<UpstreamRealm>(&bytes)
        && r.expires > now
    {
        return Ok(r);
    }
    let url = route
        .upstream
        .join("/v2/")
        .expect("a fixed path joins any http(s) URL");
    let resp = fetch(
        host,
        route,
        "GET",
        url,
        Headers::default(),
        None,
        Body::Empty,
    )
    .await?;
    if resp.status != 401 {
        return Err(RegistryError::new(
            404,
            ErrorCode::Unsupported,
            "the upstream registry issues no tokens",
        ));
    }
    let realm = resp
        .headers
        .get("www-authenticate")
        .and_then(|h| UpstreamRealm::from_header(h, now))
        .ok_or_else(|| {
            RegistryError::new(
                404,
                ErrorCode::Unsupported,
                "the upstream registry has no Bearer token realm",
            )
        })?;
    if let Ok(json) = serde_json::to_vec(&realm)
        && let Err(e) = host.kv_set(&key, &json)
    {
        eprintln!("key-value: cannot store {key}: {e}");
    }
    Ok(realm)
}

/// The client's parameters with scopes rewritten to upstream names (one
/// `scope` each) and the upstream's own `service`.
fn relayed_params(query: &str, realm: &UpstreamRealm, route: &Route) -> Vec<(String, String)> {
    let mut scopes = Vec::new();
    let mut out = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "scope" => scopes.push(v.into_owned()),
            "service" => {}
            _ => out.push((k.into_owned(), v.into_owned())),
        }
    }
    if let Some(s) = &realm.service {
        out.push(("service".into(), s.clone()));
    }
    let rewritten = scope::rewrite_for_upstream(&scopes, route.docker_hub);
    if out.iter().any(|(k, _)| k == "grant_type") {
        // OAuth2 forms carry all scopes in one space-separated value.
        if !rewritten.is_empty() {
            out.push(("scope".into(), rewritten.join(" ")));
        }
    } else {
        out.extend(rewritten.into_iter().map(|s| ("scope".to_string(), s)));
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
    let mut headers = Headers::default();
    headers.push("content-type", "application/json");
    headers.push("cache-control", "no-store");
    Ok(Response {
        status,
        headers,
        body: Body::Bytes(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::RouteConfig;

    #[test]
    fn params_for_get_and_post() {
        let route = RouteConfig::new("https://registry-1.docker.io")
            .resolve()
            .unwrap();
        let realm = UpstreamRealm {
            realm: "https://auth.docker.io/token".into(),
            service: Some("registry.docker.io".into()),
            expires: 0,
        };
        let p = relayed_params(
            "service=proxy&scope=repository%3Aalpine%3Apull&scope=repository%3A..%3Apull&account=me",
            &realm,
            &route,
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
        let p = relayed_params(
            "grant_type=password&username=u&password=p%3A&scope=repository%3Aa%3Apull+repository%3Ab%2Fc%3Apull",
            &realm,
            &route,
        );
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
