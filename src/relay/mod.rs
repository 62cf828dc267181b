//! Relaying one API request upstream: the upstream URL and headers for the
//! endpoint, whose credentials go with it, and what of the answer goes back
//! in the client's names ([`links`]).

pub mod links;
pub mod upstream_redirect;

use crate::auth::access::{UpstreamAuth, actions_for};
use crate::auth::challenge::{PROXY_SERVICE, rewrite_for_proxy};
use crate::auth::credentials;
use crate::auth::www_authenticate::Challenge;
use crate::host::{Body, Headers, Host, Request, Response};
use crate::oci::endpoint::Endpoint;
use crate::oci::error::{ErrorCode, RegistryError};
use crate::oci::media_type::Accepted;
use crate::oci::reference::RepositoryName;
use crate::routing::target::Target;
use crate::upstream::fetch;
use links::{rename_tag_list, rewrite_link, to_client_url};

/// Request headers relayed upstream on API calls.
const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "range",
    "if-none-match",
    "if-match",
    "if-modified-since",
    "user-agent",
];

/// A push's body headers, relayed only on a request upstream that has a
/// body: a GET or HEAD that claimed one could be read as two requests by a
/// server or front between the proxy and the registry.
const BODY_HEADERS: &[&str] = &["content-type", "content-length", "content-range"];

/// Response headers relayed to clients, as the upstream sent them.
const FORWARDED_RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "docker-content-digest",
    "docker-distribution-api-version",
    "etag",
    "last-modified",
    "cache-control",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "docker-ratelimit-source",
    "oci-filters-applied",
    "docker-upload-uuid",
    "oci-subject",
    // An upload's progress.
    "range",
];

/// One client request being served for a target.
pub struct Call<'a, H: Host> {
    pub host: &'a H,
    pub target: &'a Target,
    pub origin: &'a str,
    pub endpoint: &'a Endpoint,
    pub req: &'a Request<H::Stream>,
    pub auth: &'a UpstreamAuth,
    /// The upstream's name for the repository, if the endpoint names one.
    pub upstream_name: Option<RepositoryName>,
}

impl<'a, H: Host> Call<'a, H> {
    /// The call for a request to `target`, with the upstream's name for its repository;
    /// `Err` (`NAME_INVALID`) when the route's prefix makes that name too long.
    pub fn new(
        host: &'a H,
        target: &'a Target,
        origin: &'a str,
        endpoint: &'a Endpoint,
        req: &'a Request<H::Stream>,
        auth: &'a UpstreamAuth,
    ) -> Result<Self, RegistryError> {
        let upstream_name = match endpoint.name() {
            Some(n) => Some(target.mapping.to_upstream(n).ok_or_else(|| {
                RegistryError::new(
                    400,
                    ErrorCode::NameInvalid,
                    "repository name too long with the route's prefix",
                )
            })?),
            None => None,
        };
        Ok(Self {
            host,
            target,
            origin,
            endpoint,
            req,
            auth,
            upstream_name,
        })
    }

    /// Whether the client's own upstream credentials are used (what they
    /// fetch may be private to them).
    pub fn with_client_credentials(&self) -> bool {
        matches!(self.auth, UpstreamAuth::Client(_))
    }

    /// The route's upstream account this call uses, if any: what it fetches
    /// stays apart from what anyone may fetch (the cache's partition).
    pub fn account(&self) -> Option<&str> {
        match self.auth {
            UpstreamAuth::Proxy => self.target.route.credentials.as_deref(),
            UpstreamAuth::Client(_) | UpstreamAuth::Anonymous => None,
        }
    }

    /// The token actions this request needs upstream.
    pub fn actions(&self) -> &'static str {
        actions_for(&self.req.method)
    }

    /// Relays a push (its body streaming upstream) and the answer back.
    pub async fn relay_write(
        &self,
        body: Body<H::Stream>,
    ) -> Result<Response<H::Stream>, RegistryError> {
        let resp = self.upstream_with(&self.req.method, body).await?;
        Ok(self.pass_back(resp))
    }

    /// Sends `method` upstream for this endpoint, with the client's or the
    /// route's credentials (the route's refreshed once on a 401).
    pub async fn upstream(&self, method: &str) -> Result<Response<H::Stream>, RegistryError> {
        self.upstream_with(method, Body::Empty).await
    }

    /// The same with a body (a push), which can be sent only once: no retry.
    pub async fn upstream_with(
        &self,
        method: &str,
        body: Body<H::Stream>,
    ) -> Result<Response<H::Stream>, RegistryError> {
        self.send(method, body, true).await
    }

    /// A request whose redirect comes back as it is, not followed.
    pub async fn upstream_unfollowed(
        &self,
        method: &str,
    ) -> Result<Response<H::Stream>, RegistryError> {
        self.send(method, Body::Empty, false).await
    }

    async fn send(
        &self,
        method: &str,
        body: Body<H::Stream>,
        follow: bool,
    ) -> Result<Response<H::Stream>, RegistryError> {
        let route = &self.target.route;
        let (url, headers) = (self.upstream_url()?, self.forwarded_headers(method));
        let held = |refresh| {
            credentials::authorization(
                self.host,
                route,
                self.upstream_name.as_ref(),
                self.actions(),
                refresh,
            )
        };
        let authorization = match self.auth {
            UpstreamAuth::Client(a) => Some(a.clone()),
            UpstreamAuth::Proxy => held(false).await?,
            UpstreamAuth::Anonymous => None,
        };
        let retryable = matches!(body, Body::Empty);
        let send = |authorization: Option<String>, body| {
            let (url, headers) = (url.clone(), headers.clone());
            async move {
                let authorization = authorization.as_deref();
                if follow {
                    fetch::fetch(self.host, route, method, url, headers, authorization, body).await
                } else {
                    fetch::unfollowed(self.host, route, method, url, headers, authorization).await
                }
            }
        };
        let resp = send(authorization, body).await?;
        if resp.status != 401
            || !retryable
            || !matches!(self.auth, UpstreamAuth::Proxy)
            || route.credentials.is_none()
        {
            return Ok(resp);
        }
        // A cached upstream token may have been revoked: get a fresh one once.
        let resp = send(held(true).await?, Body::Empty).await?;
        if resp.status == 401 {
            return Err(RegistryError::bad_gateway(
                "the upstream refused the route's credentials",
            ));
        }
        Ok(resp)
    }

    /// The endpoint's URL upstream. The query (tag-list `n`/`last`,
    /// referrers `artifactType`, an upload's `digest` and state) goes as is,
    /// less the `ns` meant for the proxy.
    fn upstream_url(&self) -> Result<url::Url, RegistryError> {
        let mut url = self
            .target
            .route
            .upstream
            .join(&self.endpoint.upstream_path(self.upstream_name.as_ref()))
            .map_err(|e| RegistryError::new(400, ErrorCode::NameInvalid, e.to_string()))?;
        let query: Vec<(String, String)> =
            url::form_urlencoded::parse(self.req.query.as_deref().unwrap_or_default().as_bytes())
                .filter(|(k, _)| k != "ns")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(&query);
        }
        Ok(url)
    }

    /// The client's request headers that go upstream with `method`. A
    /// manifest's `Accept` goes as the manifest types it names, the same for
    /// every client that names them (what is cached for one is right for the
    /// others).
    fn forwarded_headers(&self, method: &str) -> Headers {
        let mut headers = Headers::default();
        let manifest = matches!(self.endpoint, Endpoint::Manifest { .. });
        if manifest
            && let Some(accept) = Accepted::parse(self.req.headers.get_all("accept")).header()
        {
            headers.push("accept", accept);
        }
        let body = match method {
            "PUT" | "POST" | "PATCH" => BODY_HEADERS,
            _ => &[],
        };
        for name in FORWARDED_REQUEST_HEADERS.iter().chain(body) {
            if manifest && name.eq_ignore_ascii_case("accept") {
                continue;
            }
            let values: Vec<&str> = self.req.headers.get_all(name).collect();
            if !values.is_empty() {
                headers.push(name, values.join(", "));
            }
        }
        headers
    }

    /// What of an upstream answer's headers goes to the client: the listed
    /// ones, pagination links and challenges pointing back at the proxy.
    pub fn client_headers(&self, status: u16, upstream: &Headers) -> Headers {
        let (route, mapping) = (&self.target.route, &self.target.mapping);
        let mut out = Headers::default();
        for name in FORWARDED_RESPONSE_HEADERS {
            if let Some(v) = upstream.get(name) {
                out.push(name, v);
            }
        }
        let client_name = self.endpoint.name().map(|n| mapping.full_name(n.as_str()));
        let upstream_name = self.upstream_name.as_ref().map(|n| n.as_str());
        if let Some(link) = upstream.get("link") {
            out.push(
                "link",
                rewrite_link(link, &route.upstream, upstream_name, client_name.as_deref()),
            );
        }
        // Upload sessions and pushed content: back to the proxy, by the
        // client's name.
        if let Some(location) = upstream.get("location") {
            out.push(
                "location",
                to_client_url(
                    location,
                    &route.upstream,
                    upstream_name,
                    client_name.as_deref(),
                ),
            );
        }
        if status == 401 {
            let realm = self.target.realm(self.origin);
            out.push(
                "www-authenticate",
                rewrite_for_proxy(upstream.get("www-authenticate"), &realm, mapping),
            );
        }
        out
    }

    /// An upstream answer passed back as it is, but for its headers.
    pub fn pass_back(&self, resp: Response<H::Stream>) -> Response<H::Stream> {
        Response {
            status: resp.status,
            headers: self.client_headers(resp.status, &resp.headers),
            body: resp.body,
        }
    }

    /// Relays the request upstream and the answer back, body unread (except
    /// a tag list whose repository the client spells differently).
    pub async fn relay(&self) -> Result<Response<H::Stream>, RegistryError> {
        if matches!(self.endpoint, Endpoint::Base) {
            return self.base().await;
        }
        let resp = self.upstream(&self.req.method).await?;
        let mut resp = self.pass_back(resp);
        let mapping = &self.target.mapping;
        if matches!(self.endpoint, Endpoint::TagsList { .. })
            && resp.status == 200
            && mapping.renames()
            && self.req.method == "GET"
        {
            let body = std::mem::replace(&mut resp.body, Body::Empty);
            let length = resp.headers.get("content-length");
            let renamed = rename_tag_list(body, length, mapping).await?;
            resp.headers.0.retain(|(n, _)| n != "content-length");
            resp.headers
                .push("content-length", renamed.len().to_string());
            resp.body = Body::Bytes(renamed);
        }
        Ok(resp)
    }

    /// `/v2/`: the upstream's challenge, pointing at the proxy. An upstream
    /// that is open, down or failing gets the proxy's own answer, so a pull
    /// of what is cached gets past every client's first request.
    async fn base(&self) -> Result<Response<H::Stream>, RegistryError> {
        match self.upstream(&self.req.method).await {
            Ok(resp) if resp.status != 200 && resp.status < 500 => {
                let mut resp = self.pass_back(resp);
                if resp
                    .headers
                    .get("docker-distribution-api-version")
                    .is_none()
                {
                    resp.headers
                        .push("docker-distribution-api-version", "registry/2.0");
                }
                return Ok(resp);
            }
            Ok(_) => {}
            Err(e) if e.is_upstream_failure() => {
                eprintln!("upstream /v2/ failed, answered for it: {}", e.message)
            }
            Err(e) => return Err(e),
        }
        let authorized = self.req.headers.get("authorization").is_some();
        base_answer(&self.target.realm(self.origin), authorized)
    }
}

/// The proxy's own `/v2/`: a client with credentials may go on; one without
/// learns where to fetch a token, since a pull through this host may name
/// another registry that needs one.
pub fn base_answer<S>(realm: &str, authorized: bool) -> Result<Response<S>, RegistryError> {
    if authorized {
        return Ok(crate::auth::login::base_ok());
    }
    let mut challenge = Challenge::new("Bearer");
    challenge.set_param("realm", realm);
    challenge.set_param("service", PROXY_SERVICE);
    Err(
        RegistryError::new(401, ErrorCode::Unauthorized, "authentication required")
            .with_challenge(challenge.to_string()),
    )
}
