//! A bucket that goes away and comes back, under real Spin: blobs are
//! streamed from the upstream meanwhile, no client is redirected into it,
//! and within seconds of its return it is used again.

use super::common::*;
use super::objects::{s3_variables, start};
use super::outages::{BOUND, timed, used_again};
use std::time::{Duration, Instant};
use support::{env, registry, rt, spin};

#[test]
fn a_bucket_killed_and_back_streams_from_the_upstream_meanwhile() {
    let e = env();
    let dir = e.dir.join("bucket-outage");
    let mut garage = support::garage::Garage::start(&dir.join("garage"), 1);
    let app = spin::derive_app(&dir.join("app"), &spin::Store::Sqlite, true);
    let mut vars = s3_variables(&garage, 0, "");
    vars.push(("default_upstream", format!("http://{}", e.open)));
    let streams = start(&app, "stream", &vars);
    vars.push(("blob_delivery", "redirect".into()));
    let redirects = start(&app, "redirect", &vars);
    let seed = format!("bucket-outage-{}", rand_suffix());
    let image = rt().block_on(registry::push_image(
        e.open,
        "outage/bucket",
        "v1",
        &seed,
        "amd64",
    ));
    let blob = |i: &spin::Instance, n: usize| {
        format!("{}/v2/outage/bucket/blobs/{}", i.url(), image.layers[n])
    };
    assert_eq!(get(&blob(&streams, 0), &[]).header("x-cache"), Some("MISS"));
    settles("the blob is in the bucket", || {
        get(&blob(&streams, 0), &[]).header("x-cache") == Some("HIT")
    });

    garage.kill(0);
    let mut slowest = Duration::ZERO;
    for (instance, n) in [
        (&streams, 0),
        (&streams, 1),
        (&redirects, 0),
        (&redirects, 1),
    ] {
        let (r, took) = timed(&blob(instance, n), &[]);
        assert!(
            took < BOUND,
            "{} took {took:?} with the bucket away",
            blob(instance, n)
        );
        slowest = slowest.max(took);
        // Never a redirect into the bucket that is away.
        if r.status == 307 {
            let location = r.header("location").unwrap_or_default();
            assert!(!location.starts_with(&garage.endpoints[0]), "{location}");
        } else {
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(registry::sha256(&r.body), image.layers[n]);
        }
    }
    eprintln!("outages: the slowest blob with the bucket away took {slowest:?}");

    garage.restart(0);
    let returned = Instant::now();
    let took = used_again(&blob(&streams, 0), &[], "HIT", returned);
    eprintln!("outages: the bucket was used again {took:?} after it returned");
    streams.stop();
    redirects.stop();
}

#[test]
fn a_bucket_that_hangs_costs_a_bounded_wait_and_streams_from_the_upstream_meanwhile() {
    let e = env();
    let dir = e.dir.join("bucket-hang");
    let garage = support::garage::Garage::start(&dir.join("garage"), 1);
    let app = spin::derive_app(&dir.join("app"), &spin::Store::Sqlite, true);
    let mut vars = s3_variables(&garage, 0, "");
    vars.push(("default_upstream", format!("http://{}", e.open)));
    // Each instance learns of the hang on its own: one by a hit, one by
    // a follower of a copy into the bucket.
    let hits = start(&app, "bucket-hang-hit", &vars);
    let copies = start(&app, "bucket-hang-copy", &vars);
    let seed = format!("bucket-hang-{}", rand_suffix());
    let repo = "outage/bucket-hang";
    let image = rt().block_on(registry::push_image(e.open, repo, "v1", &seed, "amd64"));
    let blob =
        |i: &spin::Instance, n: usize| format!("{}/v2/{repo}/blobs/{}", i.url(), image.layers[n]);
    assert_eq!(get(&blob(&hits, 0), &[]).header("x-cache"), Some("MISS"));
    for instance in [&hits, &copies] {
        settles("the blob is in the bucket", || {
            get(&blob(instance, 0), &[]).header("x-cache") == Some("HIT")
        });
    }

    // SIGSTOP while both believe the bucket up. A hit waits for its first
    // byte within the bound, then the upstream serves it.
    garage.pause(0);
    let (r, took) = timed(&blob(&hits, 0), &[]);
    assert_eq!(registry::sha256(&r.body), image.layers[0]);
    assert!(
        took < BOUND,
        "the first hit took {took:?} with the bucket hung"
    );
    assert_eq!(r.header("x-cache"), Some("BYPASS"));
    eprintln!("outages: the first hit with the bucket hung took {took:?}");
    // A miss streams to its client while its copy waits on the bucket; a
    // request that follows that copy asks the bucket, and is relayed.
    for expected in ["MISS", "BYPASS"] {
        let (r, took) = timed(&blob(&copies, 1), &[]);
        assert_eq!(registry::sha256(&r.body), image.layers[1]);
        assert!(
            took < BOUND,
            "{expected} took {took:?} with the bucket hung"
        );
        assert_eq!(r.header("x-cache"), Some(expected));
        eprintln!("outages: a {expected} with the bucket hung took {took:?}");
    }
    let mut slowest = Duration::ZERO;
    for (instance, n) in [(&hits, 0), (&hits, 1), (&copies, 0), (&copies, 1)] {
        let (r, took) = timed(&blob(instance, n), &[]);
        assert!(took < BOUND, "{} took {took:?}", blob(instance, n));
        assert_eq!(registry::sha256(&r.body), image.layers[n]);
        slowest = slowest.max(took);
    }
    eprintln!("outages: the slowest later blob with the bucket hung took {slowest:?}");

    garage.resume(0);
    let resumed = Instant::now();
    let took = used_again(&blob(&hits, 0), &[], "HIT", resumed);
    eprintln!("outages: the bucket was used again {took:?} after it resumed");
    hits.stop();
    copies.stop();
}
