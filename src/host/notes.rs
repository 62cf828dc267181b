//! What one request did, noted as it goes: its cache outcomes, its route,
//! repository and endpoint, its upstream calls. Plain data: the host holds
//! it, and telemetry counts it once the answer is out.

use std::cell::RefCell;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Miss,
    Revalidated,
    Stale,
    /// A miss served by following another request's copy.
    Coalesced,
    /// The cache store was away: relayed from the upstream, nothing kept.
    Bypass,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Hit,
        Outcome::Miss,
        Outcome::Revalidated,
        Outcome::Stale,
        Outcome::Coalesced,
        Outcome::Bypass,
    ];

    /// The outcome as counters and the access log name it (`hit`, `miss`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Revalidated => "revalidated",
            Outcome::Stale => "stale",
            Outcome::Coalesced => "coalesced",
            Outcome::Bypass => "bypass",
        }
    }

    /// Whether the body came from the cache.
    pub fn served_cached(self) -> bool {
        !matches!(self, Outcome::Miss | Outcome::Bypass)
    }
}

/// How a token request was answered: a client's at the proxy's realm, or
/// the proxy's own for a route's credentials.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TokenAnswer {
    /// Signed by the proxy for one of its users (or refused).
    Login,
    /// Relayed to the upstream's realm.
    Relayed,
    /// An anonymous upstream token the proxy kept from an earlier request.
    Kept,
    /// The proxy's placeholder: it holds the credentials, the upstream has
    /// no realm, or its realm is down.
    Anonymous,
    /// Fetched from the upstream's realm with the route's own credentials.
    RouteCredentials,
}

impl TokenAnswer {
    /// The answer as the token counter names it (`relayed`, `anonymous`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TokenAnswer::Login => "login",
            TokenAnswer::Relayed => "relayed",
            TokenAnswer::Kept => "kept",
            TokenAnswer::Anonymous => "anonymous",
            TokenAnswer::RouteCredentials => "route_credentials",
        }
    }
}

/// One call to an upstream.
pub struct UpstreamCall {
    /// `host[:port]` of the route's upstream or of its token service.
    pub upstream: String,
    /// The answer's status, or why there was none.
    pub result: Result<u16, String>,
    pub micros: u64,
}

impl UpstreamCall {
    /// Whether the call failed: no answer at all, or a 5xx.
    pub fn failed(&self) -> bool {
        self.result.as_ref().is_ok_and(|s| *s >= 500) || self.result.is_err()
    }
}

/// What one request did, not yet counted.
#[derive(Default)]
pub struct Notes {
    pub outcomes: Vec<Outcome>,
    /// The route that served it (stored host, registry name or `default`).
    pub route: Option<String>,
    pub repository: Option<String>,
    pub endpoint: Option<&'static str>,
    pub upstream: Vec<UpstreamCall>,
    /// How the client's token request was answered, when it was one.
    pub token: Option<TokenAnswer>,
    /// The realm's status for each token fetched with a route's credentials.
    pub route_tokens: Vec<u16>,
    /// The cached repository (`<scope>/<name>`) a manifest was answered
    /// from or for: the status page's "last read".
    pub read: Option<String>,
}

/// The request's notes.
#[derive(Default)]
pub struct Tally(pub RefCell<Notes>);
