//! What the proxy shows people: its home page, and browsers asking for an
//! image sent to the upstream's web page for it.

use crate::host::{Body, Headers, Host, Response};
use crate::oci::error::{ErrorCode, RegistryError};
use crate::oci::reference::RepositoryName;
use crate::routing::naming::split_registry_host;
use crate::routing::route::Route;
use crate::routing::target::{self, Naming};
use crate::web::browser;
use crate::web::home;

/// A browser asking for `/<image>` or an API path of it goes to the
/// upstream's web page for the image, where the route allows and one exists.
pub fn browser_redirect<H: Host>(
    host: &H,
    hosts: &[String],
    path: &str,
) -> Result<Response<H::Stream>, RegistryError> {
    let not_found = || {
        RegistryError::new(
            404,
            ErrorCode::NameUnknown,
            "no web page for this path; see / for usage",
        )
    };
    let name = browser::image_name(path).ok_or_else(not_found)?;
    let (registry, name) = match split_registry_host(&name) {
        Some((r, rest)) => (Some(r), rest.to_string()),
        None => (None, name),
    };
    let target = target::for_request(host, hosts, registry.map(|r| (r, Naming::InName)))?;
    let name = RepositoryName::parse(&name)
        .map_err(|e| RegistryError::new(400, ErrorCode::NameInvalid, e.to_string()))?;
    let upstream_name = target.mapping.to_upstream(&name).ok_or_else(not_found)?;
    let page = browser::web_page(&target.route.upstream, upstream_name.as_str())
        .filter(|_| target.route.browser_redirects)
        .ok_or_else(not_found)?;
    let mut headers = Headers::default();
    headers.push("location", page);
    Ok(Response {
        status: 302,
        headers,
        body: Body::Empty,
    })
}

/// The home page: set-up HTML with the route table for a browser (an `Accept`
/// of `text/html`), plain-text usage for anything else.
pub fn home_page<H: Host>(
    host: &H,
    origin: &str,
    route: Option<&Route>,
    headers: &Headers,
) -> Response<H::Stream> {
    let here = route.map(|r| r.upstream.origin().ascii_serialization());
    let browser = headers.get_all("accept").any(|a| a.contains("text/html"));
    let (content_type, body) = if browser {
        let routes: Vec<(String, String)> = target::table(host).into_iter().collect();
        (
            "text/html; charset=utf-8",
            home::render_html(origin, here.as_deref(), &routes),
        )
    } else {
        (
            "text/plain; charset=utf-8",
            home::render_text(origin, here.as_deref()),
        )
    };
    let mut h = Headers::default();
    h.push("content-type", content_type);
    Response {
        status: 200,
        headers: h,
        body: Body::Bytes(body.into_bytes()),
    }
}
