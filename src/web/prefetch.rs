//! The admin API's prefetch and pins: the request read field by field
//! (each mistake a `400` naming its field), the image resolved as a pull
//! of it through this proxy would be, and the walk's progress streamed.

use crate::auth::access::admissible;
use crate::cache::pins;
use crate::cache::prefetch::{self, Prefetch};
use crate::host::{Body, Headers, Host, Response};
use crate::oci::endpoint::Endpoint;
use crate::oci::error::{ErrorCode, FieldError, RegistryError};
use crate::oci::platform::Platform;
use crate::oci::reference::{Reference, RepositoryName};
use crate::routing::naming::split_registry_host;
use crate::routing::target::{self, Incoming, Naming, Target};
use futures::StreamExt;
use serde_json::Value;

const FIELDS: [&str; 4] = ["image", "platforms", "referrers", "pin"];

fn invalid(code: ErrorCode, field: &str, message: impl Into<String>) -> RegistryError {
    RegistryError::new(400, code, "invalid prefetch").with_fields(vec![FieldError {
        field: field.to_string(),
        message: message.into(),
    }])
}

/// `POST <admin_path>/cache/prefetch`: JSON lines, one per object, as the
/// walk goes.
pub fn start<H: Host>(
    host: &H,
    incoming: &Incoming,
    body: &[u8],
) -> Result<Response<H::Stream>, RegistryError> {
    let job = read(host, incoming, body)?;
    let mut headers = Headers::default();
    headers.push("content-type", "application/x-ndjson");
    headers.push("cache-control", "no-store");
    Ok(Response {
        status: 200,
        headers,
        body: Body::Generated(prefetch::progress(host.clone(), job)),
    })
}

/// `POST <admin_path>/cache/pins/<image>`: the image prefetched whole
/// (every platform) and pinned; the walk's summary, or why not.
pub async fn pin<H: Host>(
    host: &H,
    incoming: &Incoming,
    image: &str,
) -> Result<Response<H::Stream>, RegistryError> {
    let mut job = image_job(host, incoming, image)?;
    job.pin = true;
    let mut lines = prefetch::progress(host.clone(), job);
    let mut last = Vec::new();
    while let Some(Ok(line)) = lines.next().await {
        last = line;
    }
    let summary: Value = serde_json::from_slice(&last).unwrap_or_default();
    if summary["pin"]["pinned"] == Value::Bool(true) {
        return Ok(Response::json(201, last));
    }
    let why = summary["pin"]["reason"]
        .as_str()
        .unwrap_or("the walk did not finish");
    Err(RegistryError::new(
        409,
        ErrorCode::Denied,
        format!("not pinned: {why}"),
    ))
}

/// `DELETE <admin_path>/cache/pins/<image>`.
pub fn unpin<H: Host>(
    host: &H,
    incoming: &Incoming,
    image: &str,
) -> Result<Response<H::Stream>, RegistryError> {
    let job = image_job(host, incoming, image)?;
    let id = pins::id(&job.target.name, &job.name, &job.reference);
    let kv_error = |e| RegistryError::new(500, ErrorCode::Unknown, format!("key-value store: {e}"));
    match pins::unpin(host.cache().as_ref(), &id).map_err(kv_error)? {
        true => Ok(Response {
            status: 204,
            headers: Headers::default(),
            body: Body::Empty,
        }),
        false => Err(RegistryError::new(
            404,
            ErrorCode::NameUnknown,
            format!("no pin {id}"),
        )),
    }
}

/// The job a prefetch request's JSON body asks for, or its mistakes by
/// field (the status page's form shows them in its own words).
pub fn read<H: Host>(
    host: &H,
    incoming: &Incoming,
    body: &[u8],
) -> Result<Prefetch, RegistryError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(ErrorCode::Unsupported, "body", format!("not JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(invalid(ErrorCode::Unsupported, "body", "not a JSON object"));
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(invalid(ErrorCode::Unsupported, unknown, "unknown field"));
    }
    let image = match fields.get("image") {
        Some(Value::String(s)) => s,
        _ => {
            return Err(invalid(
                ErrorCode::NameInvalid,
                "image",
                "a string is needed",
            ));
        }
    };
    let flag = |name: &str| match fields.get(name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(ErrorCode::Unsupported, name, "true or false")),
    };
    let (referrers, pin) = (flag("referrers")?, flag("pin")?);
    let platforms = platforms(fields.get("platforms"))?;
    let mut job = image_job(host, incoming, image)?;
    job.platforms = platforms;
    job.referrers = referrers;
    job.pin = pin;
    Ok(job)
}

fn platforms(value: Option<&Value>) -> Result<Option<Vec<Platform>>, RegistryError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let Value::Array(items) = value else {
        return Err(invalid(
            ErrorCode::Unsupported,
            "platforms",
            "a list of os/architecture",
        ));
    };
    let mut parsed = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("platforms[{i}]");
        let text = item
            .as_str()
            .ok_or_else(|| invalid(ErrorCode::Unsupported, &field, "a string is needed"))?;
        parsed.push(Platform::parse(text).map_err(|e| invalid(ErrorCode::Unsupported, &field, e))?);
    }
    Ok(Some(parsed))
}

/// The image as a pull through this proxy names it: a job for all its
/// platforms, no referrers, no pin.
fn image_job<H: Host>(
    host: &H,
    incoming: &Incoming,
    image: &str,
) -> Result<Prefetch, RegistryError> {
    let (target, name, reference) = resolve(host, incoming, image)?;
    let endpoint = Endpoint::Manifest {
        name: name.clone(),
        reference: reference.clone(),
    };
    admissible(&endpoint, &target, "GET")
        .map_err(|e| invalid(ErrorCode::Denied, "image", e.message))?;
    let limit = host.settings().prefetch_time_limit;
    Ok(Prefetch {
        target,
        origin: incoming.origin.clone(),
        name,
        reference,
        platforms: None,
        referrers: false,
        pin: false,
        deadline: Some(crate::now_millis().saturating_add(limit.saturating_mul(1000))),
    })
}

/// `[host/]name[:tag][@digest]`: the host one this proxy answers as (its
/// own, or one with a route), else a registry named in the path, as
/// `docker pull proxy/ghcr.io/owner/image` names one.
fn resolve<H: Host>(
    host: &H,
    incoming: &Incoming,
    image: &str,
) -> Result<(Target, RepositoryName, Reference), RegistryError> {
    let (rest, reference) = split_reference(image)?;
    let mut hosts = incoming.hosts.clone();
    let mut path = rest;
    let mut registry = None;
    if let Some((first, after)) = split_registry_host(rest) {
        path = after;
        if !hosts.contains(&first) {
            match routed_host(host, &first)? {
                true => hosts = vec![first],
                false => registry = Some((first, Naming::InName)),
            }
        }
    }
    if registry.is_none()
        && let Some((named, after)) = split_registry_host(path)
    {
        registry = Some((named, Naming::InName));
        path = after;
    }
    let name = RepositoryName::parse(path)
        .map_err(|e| invalid(ErrorCode::NameInvalid, "image", format!("{path:?}: {e}")))?;
    let target = target::for_request(host, &hosts, registry)
        .map_err(|e| invalid(ErrorCode::NameUnknown, "image", e.message))?;
    Ok((target, name, reference))
}

/// Whether a stored route or a built-in one answers for `name` as a host
/// (the default upstream answers for any, so it does not count).
fn routed_host<H: Host>(host: &H, name: &str) -> Result<bool, RegistryError> {
    let found = target::for_host(host, &[name.to_string()])
        .map_err(|e| invalid(ErrorCode::NameUnknown, "image", e.message))?;
    Ok(found.is_some_and(|(n, _)| n != "default"))
}

/// The name part and the reference: a digest after `@`, else a tag after
/// the last `:` of the last component, else `latest`.
fn split_reference(image: &str) -> Result<(&str, Reference), RegistryError> {
    let bad = |e: String| invalid(ErrorCode::NameInvalid, "image", e);
    if let Some((rest, digest)) = image.split_once('@') {
        let reference = Reference::parse(digest).map_err(|e| bad(e.to_string()))?;
        // `name:tag@digest` pulls by the digest.
        let last = rest.rfind('/').map_or(0, |i| i + 1);
        let rest = rest[last..].rfind(':').map_or(rest, |i| &rest[..last + i]);
        return Ok((rest, reference));
    }
    let last = image.rfind('/').map_or(0, |i| i + 1);
    match image[last..].rfind(':') {
        Some(i) => {
            let tag = &image[last + i + 1..];
            let reference = Reference::parse(tag).map_err(|e| bad(e.to_string()))?;
            Ok((&image[..last + i], reference))
        }
        None => Ok((image, Reference::Tag("latest".into()))),
    }
}
