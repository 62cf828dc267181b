//! Which route serves a request: by the registry the client named (a host
//! before the repository name, or containerd's `ns=`), else by the host the
//! request came to.

use crate::host::Host;
use crate::oci::error::{ErrorCode, RegistryError};
use crate::routing::naming::{NameMapping, split_registry_host};
use crate::routing::registries;
use crate::routing::route::{self, Route, RouteConfig};
use std::collections::BTreeMap;

/// A routed request: the route, and how names map through it.
pub struct Target {
    /// What metrics call the route: its stored or built-in host, the
    /// registry the client named, or `default`.
    pub name: String,
    pub route: Route,
    pub mapping: NameMapping,
    /// The registry the client named, in the path or with `ns=`.
    pub namespace: Option<String>,
}

impl Target {
    /// The proxy's realm for this target: the registry the client named
    /// rides along, so token requests reach the same upstream.
    pub fn realm(&self, origin: &str) -> String {
        match &self.namespace {
            Some(r) => format!("{origin}/v2/auth?ns={r}"),
            None => format!("{origin}/v2/auth"),
        }
    }
}

/// How a client named the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// Before the repository name (`proxy/ghcr.io/owner/image`).
    InName,
    /// Beside it (containerd's `?ns=ghcr.io`): names stay as they are.
    Beside,
}

fn invalid(key: &str, e: &dyn std::fmt::Display) -> RegistryError {
    eprintln!("route {key}: {e}");
    RegistryError::new(
        500,
        ErrorCode::Unknown,
        format!("route {key} in the key-value store is invalid: {e}"),
    )
}

/// A stored route, parsed; a value that is not a valid route is an error
/// naming its key, never a fallthrough.
///
/// While the routes store is away, a name this instance has read a stored
/// route under is refused (its settings, a login or a deny list among
/// them, cannot be read, and a built-in route must not stand in for
/// them); any other name counts as having none, so the built-in routes
/// and the default upstream still answer.
fn stored<H: Host>(host: &H, name: &str) -> Result<Option<Route>, RegistryError> {
    let key = route::key_for(name);
    match host.kv_get(&key) {
        Ok(Some(bytes)) => {
            if !seen_stored(host, name) {
                let _ = host.health().set(&seen_key(name), b"1");
            }
            let config = RouteConfig::from_json(&bytes).map_err(|e| invalid(&key, &e))?;
            config.resolve().map(Some).map_err(|e| invalid(&key, &e))
        }
        Ok(None) => Ok(None),
        Err(e) => match host.kv().reachable() {
            Err(away) if !seen_stored(host, name) => {
                eprintln!("routes store away, {name} takes the built-in routes: {away}");
                Ok(None)
            }
            Err(away) => Err(routes_away(&away)),
            Ok(()) => Err(RegistryError::new(
                500,
                ErrorCode::Unknown,
                format!("key-value store: {e}"),
            )),
        },
    }
}

/// Where the instance's own memory notes that `name` has a stored route.
fn seen_key(name: &str) -> String {
    format!("stored-route/{name}")
}

fn seen_stored<H: Host>(host: &H, name: &str) -> bool {
    matches!(host.health().get(&seen_key(name)), Ok(Some(_)))
}

/// The answer to a request that needs a stored route while the routes
/// store is away: try again later.
fn routes_away(why: &str) -> RegistryError {
    RegistryError::new(
        503,
        ErrorCode::Unknown,
        format!("the routes store (key-value store \"default\") is away: {why}"),
    )
}

/// Nothing routes the request: with the routes store away, a stored route
/// may, so the client is asked to come back.
fn no_route<H: Host>(host: &H, nothing: RegistryError) -> RegistryError {
    match host.kv().reachable() {
        Err(away) => routes_away(&away),
        Ok(()) => nothing,
    }
}

/// Stored route for `host:port`, then `host`; then the built-in table under
/// `custom_domain`; then `default_upstream`. With the route, its name.
pub fn for_host<H: Host>(
    host: &H,
    hosts: &[String],
) -> Result<Option<(String, Route)>, RegistryError> {
    for h in hosts {
        if let Some(r) = stored(host, h)? {
            return Ok(Some((h.clone(), r)));
        }
    }
    let custom_domain = host.settings().custom_domain.clone();
    let builtin = hosts.iter().find_map(|h| {
        registries::builtin_for_host(h, &custom_domain)
            .map(|b| (h.clone(), RouteConfig::new(b.upstream)))
    });
    let default = || default_upstream(host).map(|u| ("default".to_string(), RouteConfig::new(&u)));
    match builtin.or_else(default) {
        Some((name, c)) => c
            .resolve()
            .map(|r| Some((name, r)))
            .map_err(|e| invalid("(variables)", &e)),
        None => Ok(None),
    }
}

/// The route for a registry a client named: a stored route under that name,
/// else a built-in registry. Anything else is refused: the proxy is no open
/// proxy to arbitrary hosts.
pub fn for_registry<H: Host>(
    host: &H,
    registry: &str,
    naming: Naming,
) -> Result<Target, RegistryError> {
    let valid = split_registry_host(&format!("{registry}/x")).map(|(h, _)| h);
    let Some(registry) = valid else {
        return Err(RegistryError::new(
            400,
            ErrorCode::NameInvalid,
            format!("{registry:?} is not a registry host"),
        ));
    };
    let route = match stored(host, &registry)? {
        Some(r) => r,
        None => match registries::builtin_for_registry(&registry) {
            Some(b) => RouteConfig::new(b.upstream)
                .resolve()
                .map_err(|e| invalid(&registry, &e))?,
            None => by_upstream(host, &registry)?.ok_or_else(|| {
                let unknown = RegistryError::new(
                    404,
                    ErrorCode::NameUnknown,
                    format!("registry {registry} is not configured on this proxy"),
                );
                no_route(host, unknown)
            })?,
        },
    };
    let mapping = route.mapping((naming == Naming::InName).then(|| registry.clone()));
    Ok(Target {
        name: registry.clone(),
        route,
        mapping,
        namespace: Some(registry),
    })
}

/// A stored route whose upstream is `registry` (`host[:port]`), the first
/// by key. Only asked when no route is stored under the registry's own name
/// and no built-in registry has it, since it reads every route.
fn by_upstream<H: Host>(host: &H, registry: &str) -> Result<Option<Route>, RegistryError> {
    let keys = host.kv_keys().map_err(|e| {
        let failed = RegistryError::new(500, ErrorCode::Unknown, format!("key-value store: {e}"));
        no_route(host, failed)
    })?;
    for key in keys.iter().filter(|k| k.starts_with(route::KEY_PREFIX)) {
        let Ok(Some(bytes)) = host.kv_get(key) else {
            continue;
        };
        // Invalid routes answer for their own host, with their error; here they are skipped.
        let Ok(r) = RouteConfig::from_json(&bytes).and_then(|c| c.resolve()) else {
            continue;
        };
        if r.upstream[url::Position::BeforeHost..url::Position::AfterPort]
            .eq_ignore_ascii_case(registry)
        {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

fn default_upstream<H: Host>(host: &H) -> Option<String> {
    host.settings().default_upstream.clone()
}

/// The key of the default upstream in [`table`]: every host name without a
/// route of its own.
pub const ANY_OTHER_HOST: &str = "*";

/// The routes anyone may know of, host → upstream, for the 404 and the home
/// page: the built-in registries and the default upstream. Stored routes are
/// not listed: their upstreams may be internal hosts, and some need a login.
pub fn table<H: Host>(host: &H) -> BTreeMap<String, String> {
    let mut table = BTreeMap::new();
    for (h, b) in registries::builtin_hosts(&host.settings().custom_domain) {
        table.insert(h, b.upstream.to_string());
    }
    if let Some(u) = default_upstream(host) {
        table.insert(ANY_OTHER_HOST.to_string(), u);
    }
    table
}

/// The route for the registry the client named, else for the request's host.
pub fn for_request<H: Host>(
    host: &H,
    hosts: &[String],
    registry: Option<(String, Naming)>,
) -> Result<Target, RegistryError> {
    if let Some((r, naming)) = registry {
        return for_registry(host, &r, naming);
    }
    match for_host(host, hosts)? {
        Some((name, route)) => Ok(Target {
            name,
            mapping: route.mapping(None),
            route,
            namespace: None,
        }),
        None => Err(no_route(
            host,
            RegistryError::new(
                404,
                ErrorCode::NameUnknown,
                format!("no route for host {}", hosts[0]),
            ),
        )
        .with_routes(table(host))),
    }
}

/// Everything a handler needs to know about where the request came in.
pub struct Incoming {
    pub origin: String,
    pub hosts: Vec<String>,
}
