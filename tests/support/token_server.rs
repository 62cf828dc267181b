//! The tests' own token service for distribution's `token` auth: ES256 JWTs
//! signed by a self-signed certificate that the registry trusts (`x5c`).

use super::http::{self, Handler};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "wonderland";
pub const SERVICE: &str = "test-registry";
pub const ISSUER: &str = "test-token-issuer";

/// One request the token server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Which of the server's realms was asked.
    pub path: String,
    pub query: String,
    pub form: String,
    pub authorization: Option<String>,
}

pub struct TokenServer {
    pub addr: SocketAddr,
    pub cert_pem: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl TokenServer {
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }
}

/// Which repositories need alice's credentials.
fn is_private(name: &str) -> bool {
    name.starts_with("private/")
}

pub async fn start() -> TokenServer {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["token.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let x5c = STANDARD.encode(cert.der());
    let encoding = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let handler: Handler = Arc::new(move |req| {
        let (encoding, x5c, seen) = (encoding.clone(), x5c.clone(), seen2.clone());
        Box::pin(async move {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or_default().to_string();
            let authorization = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let form = String::from_utf8_lossy(&http::read(req.into_body()).await).into_owned();
            seen.lock().unwrap().push(Seen {
                method: method.clone(),
                path: path.clone(),
                query: query.clone(),
                form: form.clone(),
                authorization: authorization.clone(),
            });
            if method == "POST" && path == "/token-get-only" {
                return http::response(405, &[], "");
            }
            if method == "GET" && path == "/token-post-only" {
                return http::response(405, &[], "");
            }
            let params: Vec<(String, String)> = url::form_urlencoded::parse(if method == "POST" {
                form.as_bytes()
            } else {
                query.as_bytes()
            })
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let user = match (&method[..], authorization) {
                ("POST", _) if get("grant_type").as_deref() == Some("password") => Some((
                    get("username").unwrap_or_default(),
                    get("password").unwrap_or_default(),
                )),
                (_, Some(a)) if a.starts_with("Basic ") => {
                    let decoded = String::from_utf8(STANDARD.decode(&a[6..]).unwrap_or_default())
                        .unwrap_or_default();
                    decoded
                        .split_once(':')
                        .map(|(u, p)| (u.to_string(), p.to_string()))
                }
                _ => None,
            };
            let authenticated = match &user {
                Some((u, p)) if u == USER && p == PASSWORD => true,
                Some(_) => {
                    return http::response(
                        401,
                        &[("content-type", "application/json")],
                        r#"{"details":"incorrect username or password"}"#,
                    );
                }
                None => false,
            };
            let scopes: Vec<String> = params
                .iter()
                .filter(|(k, _)| k == "scope")
                .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
                .collect();
            let access: Vec<serde_json::Value> = scopes
                .iter()
                .filter_map(|s| {
                    let (typ, rest) = s.split_once(':')?;
                    let (name, actions) = rest.rsplit_once(':')?;
                    let granted: Vec<&str> = actions
                        .split(',')
                        .filter(|a| *a == "pull" && (authenticated || !is_private(name)))
                        .collect();
                    Some(serde_json::json!({"type": typ, "name": name, "actions": granted}))
                })
                .collect();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let claims = serde_json::json!({
                "iss": ISSUER, "sub": user.map(|u| u.0).unwrap_or_default(), "aud": SERVICE,
                "exp": now + 300, "nbf": now - 10, "iat": now - 10, "jti": format!("{now}-{}", scopes.len()),
                "access": access,
            });
            let mut header = Header::new(Algorithm::ES256);
            header.x5c = Some(vec![x5c]);
            let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
            let body = if method == "POST" {
                serde_json::json!({"access_token": token, "expires_in": 300})
            } else {
                serde_json::json!({"token": token, "expires_in": 300})
            };
            http::response(
                200,
                &[("content-type", "application/json")],
                body.to_string(),
            )
        })
    });
    let addr = http::serve("127.0.0.1", handler).await;
    TokenServer {
        addr,
        cert_pem: cert.pem(),
        seen,
    }
}
