//! The status page's forms that change the cache: "Warm the cache" (a
//! prefetch, its progress streamed back as a page) and "Unpin". Each is
//! refused from another site's page as a sign-in is, and needs a session.

use super::{FORM_LIMIT, back_to_page, html, html_headers, refuse_cross_site, session};
use crate::cache::{pins, prefetch as walk, repositories};
use crate::host::{Body, Host, Request, Response};
use crate::oci::error::RegistryError;
use crate::routing::target::Incoming;
use crate::web::prefetch;
use crate::web::status_page::warm::{self as view, PinRow, Progress};
use crate::web::status_page::{self};
use futures::StreamExt;
use serde_json::{Value, json};

/// The pins, by id, as the page lists them; none when the cache store
/// cannot be read (its line under "Stores" says why).
pub fn pins<H: Host>(host: &H) -> Vec<PinRow> {
    let records = pins::records(host.cache().as_ref()).unwrap_or_else(|e| {
        eprintln!("status page: cannot read the pins: {e}");
        Default::default()
    });
    records
        .into_iter()
        .map(|(id, r)| PinRow {
            id,
            objects: r.objects.len(),
            bytes: r.objects.iter().map(|o| o.size).sum(),
            pinned_at: r.pinned_at,
        })
        .collect()
}

/// `POST <admin_path>/prefetch`: the form's image, platforms and pin; a
/// page streamed as the walk goes, or one naming the form's mistakes.
pub async fn prefetch<H: Host>(
    host: &H,
    req: Request<H::Stream>,
    prefix: &str,
    incoming: &Incoming,
    token: &str,
) -> Response<H::Stream> {
    let form = match admitted(host, req, prefix, &incoming.origin, token, "prefetch").await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let job = match job(host, incoming, &form) {
        Ok(job) => job,
        Err(e) => return html(e.status, view::mistakes(prefix, &mistakes(&e))),
    };
    // The image as the person wrote it: the job's name has lost its host.
    let head = view::head_of_walk(field(&form, "image"));
    let (host, prefix) = (host.clone(), prefix.to_string());
    let mut progress = Progress::default();
    let rows = walk::progress(host.clone(), job).map(move |line| {
        let line: Value = serde_json::from_slice(&line?).map_err(|e| e.to_string())?;
        if line["kind"] == "summary" {
            // What the walk cached shows on the page at once.
            repositories::forget_listed(&host);
        }
        Ok(progress.line(&line, &prefix).into_bytes())
    });
    let body = futures::stream::once(async move { Ok(head.into_bytes()) }).chain(rows);
    Response {
        status: 200,
        headers: html_headers(),
        body: Body::Generated(Box::pin(body)),
    }
}

/// `POST <admin_path>/unpin`: the pin named removed, and back to the page.
pub async fn unpin<H: Host>(
    host: &H,
    req: Request<H::Stream>,
    prefix: &str,
    origin: &str,
    token: &str,
) -> Response<H::Stream> {
    let form = match admitted(host, req, prefix, origin, token, "unpin").await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let id = field(&form, "pin");
    match pins::unpin(host.cache().as_ref(), id) {
        Ok(true) => {
            repositories::forget_listed(host);
            back_to_page(prefix)
        }
        Ok(false) => html(
            404,
            view::mistakes(
                prefix,
                &[format!("There is no pin {id:?} (unpinned already?).")],
            ),
        ),
        Err(e) => html(
            503,
            view::mistakes(
                prefix,
                &[format!("The cache store did not unpin {id:?}: {e}")],
            ),
        ),
    }
}

/// The form's fields, once the post is known to come from this proxy's
/// page, from a signed-in admin, to stores that keep what they are given;
/// else the page saying why not. Nothing is read or started before.
async fn admitted<H: Host>(
    host: &H,
    req: Request<H::Stream>,
    prefix: &str,
    origin: &str,
    token: &str,
    what: &str,
) -> Result<Vec<(String, String)>, Response<H::Stream>> {
    if let Some(refused) = refuse_cross_site(&req.headers, prefix, origin, what) {
        return Err(refused);
    }
    if !session::signed_in(&req.headers, token) {
        let message = format!("Sign in first: a {what} needs the admin token.");
        return Err(html(403, status_page::sign_in(prefix, Some(&message))));
    }
    if !host.store_persists() {
        let message = "This runtime's key-value store keeps nothing between requests: \
                       a prefetch or pin would be lost (docs/deployment.md, \"Run on wasmtime\").";
        return Err(html(501, view::mistakes(prefix, &[message.to_string()])));
    }
    let body = host.read_body(req.body, FORM_LIMIT).await.map_err(|e| {
        html(
            400,
            view::mistakes(prefix, &[format!("The {what} form was not read: {e}")]),
        )
    })?;
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
}

/// The form's value of `name`, trimmed; empty when it is not there.
fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.trim())
}

/// The job the form asks for, read as the admin API reads its JSON body,
/// so both accept and refuse the same images and platforms.
fn job<H: Host>(
    host: &H,
    incoming: &Incoming,
    form: &[(String, String)],
) -> Result<walk::Prefetch, RegistryError> {
    let platforms: Vec<&str> = field(form, "platforms")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    // A checkbox is sent only when checked.
    let pin = form.iter().any(|(k, _)| k == "pin");
    let mut body = json!({"image": field(form, "image"), "pin": pin});
    if !platforms.is_empty() {
        body["platforms"] = json!(platforms);
    }
    prefetch::read(host, incoming, body.to_string().as_bytes())
}

/// Each mistake as a sentence naming the form's field (`platforms`, not
/// the API's `platforms[1]`).
fn mistakes(e: &RegistryError) -> Vec<String> {
    if e.fields.is_empty() {
        return vec![e.message.clone()];
    }
    e.fields
        .iter()
        .map(|f| {
            let name = f.field.split('[').next().unwrap_or(&f.field);
            format!("{name}: {}", f.message)
        })
        .collect()
}
