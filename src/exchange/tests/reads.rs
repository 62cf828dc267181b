//! What the operator's figures cost and keep: read notes only for what the
//! cache answered or kept, at most `MAX_NOTED` of them, dropped by `gc`
//! with their repository.

use super::{Upstream, read, request, x_cache};
use crate::cache::layout::Scope;
use crate::exchange::{finish, handle};
use crate::host::memory::MemoryHost;
use crate::host::{Kv, Response};
use crate::telemetry::reads::{self, MAX_NOTED};
use futures::executor::block_on;

/// The answer and its body, counted as a request is once it is out.
fn ask(
    host: &MemoryHost,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (Response<()>, Vec<u8>) {
    let host = host.next_request();
    block_on(async {
        let (response, exchange) = handle(&host, request(method, path, headers)).await;
        let (body, ()) = futures::future::join(read(response.body), host.settle()).await;
        finish(&host, exchange, None);
        let head = Response {
            status: response.status,
            headers: response.headers,
            body: crate::host::Body::Empty,
        };
        (head, body)
    })
}

fn notes(host: &MemoryHost) -> Vec<String> {
    let keys = host.counters.keys().unwrap();
    keys.into_iter()
        .filter(|k| reads::repository_of(k).is_some())
        .collect()
}

fn scope() -> String {
    let upstream = url::Url::parse("http://upstream.test").unwrap();
    Scope::of(&upstream, None).as_str().to_string()
}

#[test]
fn a_head_that_keeps_nothing_notes_no_read_and_a_get_kept_does() {
    let (host, index, _) = Upstream::new().host();
    let path = format!("/v2/team/app/manifests/{index}");
    let (head, _) = ask(&host, "HEAD", &path, &[("accept", super::DOCKER)]);
    assert_eq!(head.status, 200);
    assert!(
        notes(&host).is_empty(),
        "a relayed HEAD noted a read: {:?}",
        notes(&host)
    );
    let (get, _) = ask(&host, "GET", &path, &[("accept", super::DOCKER)]);
    assert_eq!((get.status, x_cache(&get)), (200, Some("MISS")));
    assert_eq!(notes(&host), [reads::key(&format!("{}/team/app", scope()))]);
}

#[test]
fn read_notes_stay_bounded_however_many_repositories_are_read() {
    let (host, index, _) = Upstream::new().host();
    let accept = [("accept", super::DOCKER)];
    let repositories = MAX_NOTED + 50;
    for n in 0..repositories {
        let path = format!("/v2/team/r{n}/manifests/{index}");
        assert_eq!(ask(&host, "GET", &path, &accept).0.status, 200);
    }
    let noted = notes(&host);
    assert_eq!(noted.len(), MAX_NOTED as usize);
    // The newest stay, the oldest went.
    let last = reads::key(&format!("{}/team/r{}", scope(), repositories - 1));
    assert!(noted.contains(&last) && !noted.contains(&reads::key(&format!("{}/team/r0", scope()))));
}

#[test]
fn gc_drops_the_read_notes_of_repositories_no_longer_cached() {
    let (host, index, _) = Upstream::new().host();
    host.set_variable("admin_token", "t");
    let path = format!("/v2/team/app/manifests/{index}");
    assert_eq!(
        ask(&host, "GET", &path, &[("accept", super::DOCKER)])
            .0
            .status,
        200
    );
    let gone = reads::key(&format!("{}/team/gone", scope()));
    host.counters.set(&gone, b"5").unwrap();
    let (r, body) = ask(
        &host,
        "POST",
        "/_registry-proxy/cache/gc",
        &[("authorization", "Bearer t")],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(notes(&host), [reads::key(&format!("{}/team/app", scope()))]);
}

/// The names `GET <admin>/cache/repositories` lists.
fn listed(host: &MemoryHost) -> Result<Vec<String>, u16> {
    let admin = [("authorization", "Bearer t")];
    let (r, body) = ask(host, "GET", "/_registry-proxy/cache/repositories", &admin);
    if r.status != 200 {
        return Err(r.status);
    }
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let names = value["repositories"].as_array().unwrap().iter();
    Ok(names
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect())
}

#[test]
fn the_repository_list_is_gathered_at_most_once_a_minute() {
    let (host, index, _) = Upstream::new().host();
    host.set_variable("admin_token", "t");
    let pull = |name: &str| {
        let path = format!("/v2/team/{name}/manifests/{index}");
        assert_eq!(
            ask(&host, "GET", &path, &[("accept", super::DOCKER)])
                .0
                .status,
            200
        );
    };
    pull("a");
    assert_eq!(listed(&host), Ok(vec!["team/a".to_string()]));
    // Within the minute the list is answered again without the cache
    // store: no listing of it, no manifest read.
    pull("b");
    host.cache.go_away(true);
    assert_eq!(listed(&host), Ok(vec!["team/a".to_string()]));
    host.cache.go_away(false);
    crate::host::memory::advance_clock(std::time::Duration::from_secs(60));
    let mut now = listed(&host).unwrap();
    now.sort();
    assert_eq!(now, ["team/a", "team/b"]);
    // An admin call that changes the cache shows at once.
    let admin = [("authorization", "Bearer t")];
    let (r, _) = ask(
        &host,
        "DELETE",
        "/_registry-proxy/cache/repositories/team/a",
        &admin,
    );
    assert_eq!(r.status, 200);
    assert_eq!(listed(&host), Ok(vec!["team/b".to_string()]));
}
