//! The proxy's own users: in login mode the proxy is its own token service.
//! `/v2/auth` checks a user's password and issues a short-lived signed
//! token; API requests must carry one that covers their repository.

use crate::auth::challenge::PROXY_SERVICE;
use crate::auth::jwt::{self, Access, Claims};
use crate::auth::scope::Scope;
use crate::auth::throttle;
use crate::auth::token_request::{TokenParams, token_json};
use crate::auth::users::{self, User, basic_credentials};
use crate::auth::www_authenticate::Challenge;
use crate::host::notes::TokenAnswer;
use crate::host::{Host, Response};
use crate::oci::error::{ErrorCode, RegistryError};
use crate::routing::naming::split_registry_host;
use crate::routing::route::Route;
use crate::routing::target::Target;

/// How long issued tokens last.
const TOKEN_TTL_SECS: u64 = 300;

/// Whether only the proxy's own users may use `route`. A `require_login`
/// variable the runtime cannot read (its provider is away) is a 503 naming
/// it, never "off": login-only content is not served to anyone meanwhile.
pub fn required<H: Host>(host: &H, route: &Route) -> Result<bool, RegistryError> {
    if route.require_login {
        return Ok(true);
    }
    match host.setting("require_login") {
        Ok(v) => Ok(v.is_some_and(|v| v.trim() == "true")),
        Err(e) => {
            eprintln!("require_login cannot be read: {e}");
            Err(RegistryError::new(
                503,
                ErrorCode::Unknown,
                "the require_login variable cannot be read now; nothing is served until it can",
            ))
        }
    }
}

fn signing_key<H: Host>(host: &H) -> Result<Vec<u8>, RegistryError> {
    host.variable("token_signing_key")
        .filter(|k| !k.is_empty())
        .map(String::into_bytes)
        .ok_or_else(|| {
            RegistryError::new(
                500,
                ErrorCode::Unknown,
                "login is required but the token_signing_key variable is not set",
            )
        })
}

/// A 401 that sends the client to the proxy's realm for `scope`.
pub fn challenge(
    target: &Target,
    origin: &str,
    scope: Option<&str>,
    error: Option<&str>,
    message: &str,
) -> RegistryError {
    let mut c = Challenge::new("Bearer");
    c.set_param("realm", &target.realm(origin));
    c.set_param("service", PROXY_SERVICE);
    if let Some(s) = scope {
        c.set_param("scope", s);
    }
    if let Some(e) = error {
        c.set_param("error", e);
    }
    RegistryError::new(401, ErrorCode::Unauthorized, message).with_challenge(c.to_string())
}

/// Checks an API request's token: valid, and covering `actions` on `name`.
pub fn check<H: Host>(
    host: &H,
    target: &Target,
    origin: &str,
    name: Option<&str>,
    actions: &str,
    authorization: Option<&str>,
) -> Result<(), RegistryError> {
    let key = signing_key(host)?;
    let scope = name.map(|n| format!("repository:{n}:{actions}"));
    let refuse = |error: Option<&str>, message: &str| {
        challenge(target, origin, scope.as_deref(), error, message)
    };
    let token = authorization
        .and_then(|a| a.strip_prefix("Bearer "))
        .ok_or_else(|| refuse(None, "log in to this proxy"))?;
    let claims = jwt::verify(token.trim(), &key, PROXY_SERVICE, crate::now())
        .map_err(|e| refuse(Some("invalid_token"), &format!("token refused: {e:?}")))?;
    match name {
        Some(n) if !actions.split(',').all(|a| claims.allows(n, a)) => Err(refuse(
            Some("insufficient_scope"),
            &format!("the token does not allow {actions} on {n}"),
        )),
        _ => Ok(()),
    }
}

/// `/v2/auth` in login mode: the user's Basic credentials (or an OAuth2
/// password grant) for a token holding what they asked and may have.
pub fn issue<H: Host, S>(
    host: &H,
    target: &Target,
    req: &TokenParams,
) -> Result<Response<S>, RegistryError> {
    crate::telemetry::stats::note_token(host, TokenAnswer::Login);
    let key = signing_key(host)?;
    let unauthorized = |m: &str| {
        let mut c = Challenge::new("Basic");
        c.set_param("realm", "registry-proxy");
        RegistryError::new(401, ErrorCode::Unauthorized, m).with_challenge(c.to_string())
    };
    let (username, password) =
        credentials(req)?.ok_or_else(|| unauthorized("this proxy requires a login"))?;
    let attempt = throttle::attempt(host, &req.client)?;
    let user = load_user(host, &username)?;
    // Verified whether or not the user exists: both cost one Argon2 run.
    let verified = users::verify_password(user.as_ref(), &password);
    let user = user.filter(|_| verified).ok_or_else(|| {
        eprintln!("login refused for a user");
        unauthorized("wrong username or password")
    })?;
    attempt.passed();
    let access = req
        .scopes
        .iter()
        .flat_map(|v| v.split(' '))
        .filter_map(Scope::parse)
        .filter(|s| s.resource_type == "repository")
        .map(|s| granted(&user, target, s))
        .collect();
    let now = crate::now();
    let claims = Claims {
        iss: PROXY_SERVICE.into(),
        sub: username,
        aud: PROXY_SERVICE.into(),
        exp: now + TOKEN_TTL_SECS,
        nbf: now,
        iat: now,
        jti: format!("{:016x}", crate::random_u64()),
        access,
    };
    Ok(token_json(&jwt::sign(&claims, &key), TOKEN_TTL_SECS))
}

/// The username and password of a token request: an OAuth2 password grant,
/// else Basic credentials.
fn credentials(req: &TokenParams) -> Result<Option<(String, String)>, RegistryError> {
    let param = |k: &str| {
        req.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    match param("grant_type").as_deref() {
        Some("password") => {
            Ok(param("username").map(|u| (u, param("password").unwrap_or_default())))
        }
        Some(_) => Err(RegistryError::new(
            400,
            ErrorCode::Unsupported,
            "only the password grant is supported",
        )),
        None => Ok(req.authorization.as_deref().and_then(basic_credentials)),
    }
}

/// What `user` may do with the repository a scope names, through this route.
fn granted(user: &User, target: &Target, s: Scope) -> Access {
    // Rights and allow/deny lists see names without the registry host; the
    // token names what the client asked for.
    let bare = match (&target.mapping.registry_host, split_registry_host(&s.name)) {
        (Some(h), Some((host, rest))) if host == *h => rest.to_string(),
        _ => s.name.clone(),
    };
    let requested: Vec<&str> = s.actions.split(',').collect();
    // Docker Hub's `library/` and the route's prefix: the upstream's name for
    // the repository counts as much as the client's.
    let upstream = crate::oci::reference::RepositoryName::parse(&bare)
        .ok()
        .and_then(|n| target.mapping.to_upstream(&n))
        .map_or_else(|| bare.clone(), |n| n.to_string());
    let actions = if target.route.serves(&bare, &upstream) {
        let mut granted = user.granted(&bare, &requested);
        granted.extend(user.granted(&upstream, &requested));
        granted.sort();
        granted.dedup();
        granted
    } else {
        Vec::new()
    };
    Access {
        resource_type: "repository".into(),
        name: s.name,
        actions,
    }
}

fn load_user<H: Host>(host: &H, name: &str) -> Result<Option<User>, RegistryError> {
    if name.is_empty() || name.len() > 128 || name.contains('/') {
        return Ok(None);
    }
    match host.kv_get(&users::key_for(name)) {
        Ok(Some(bytes)) => User::from_json(&bytes).map(Some).map_err(|e| {
            eprintln!("user record {}: {e}", users::key_for(name));
            RegistryError::new(
                500,
                ErrorCode::Unknown,
                format!("user record {} is invalid: {e}", users::key_for(name)),
            )
        }),
        Ok(None) => Ok(None),
        Err(e) => Err(RegistryError::new(
            500,
            ErrorCode::Unknown,
            format!("key-value store: {e}"),
        )),
    }
}

/// The answer to `/v2/` for a logged-in client.
pub fn base_ok<S>() -> Response<S> {
    let mut response = Response::json(200, b"{}".to_vec());
    response
        .headers
        .push("docker-distribution-api-version", "registry/2.0");
    response
}
