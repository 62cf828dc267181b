use super::*;
use crate::host::memory::MemoryKv;

/// What an address is counted as.
fn address(a: &str) -> String {
    counted_as(&Client::Address(a.parse().unwrap())).unwrap()
}

#[test]
fn an_unreadable_address_or_trusted_proxies_list_gets_no_check() {
    assert_eq!(counted_as(&Client::Unreadable).err().unwrap().status, 400);
    let bad = Client::Misconfigured("trusted_proxies: \"x\" is neither".into());
    let e = counted_as(&bad).err().unwrap();
    assert_eq!(e.status, 503);
    assert!(e.message.contains("trusted_proxies"), "{}", e.message);
}

#[test]
fn ten_failures_a_minute_then_429_and_passed_checks_are_refunded() {
    let kv: Rc<dyn Kv> = Rc::new(MemoryKv::default());
    let me = address("192.0.2.1");
    for _ in 0..3 {
        attempt_in(kv.clone(), &me).unwrap().passed();
    }
    for _ in 0..FAILURES_PER_MINUTE {
        drop(attempt_in(kv.clone(), &me).unwrap());
    }
    assert!(matches!(attempt_in(kv.clone(), &me), Err(Uncounted::Over)));
    // Another address is not held back by this one's failures.
    attempt_in(kv, &address("192.0.2.2")).unwrap().passed();
}

#[test]
fn ipv6_clients_count_per_64() {
    let kv: Rc<dyn Kv> = Rc::new(MemoryKv::default());
    for n in 0..FAILURES_PER_MINUTE {
        drop(attempt_in(kv.clone(), &address(&format!("2001:db8::{n:x}"))).unwrap());
    }
    let last = attempt_in(kv, &address("2001:db8::ffff"));
    assert!(matches!(last, Err(Uncounted::Over)));
}

#[test]
fn a_store_that_refuses_the_count_refuses_the_check() {
    let memory = Rc::new(MemoryKv::default());
    memory.refuse_writes(true);
    let refused = attempt_in(memory, &address("192.0.2.1"));
    assert!(matches!(refused, Err(Uncounted::Store(_))));
}

#[test]
fn the_counts_stay_small_and_keep_the_throttled() {
    let kv: Rc<dyn Kv> = Rc::new(MemoryKv::default());
    let target = address("198.51.100.1");
    for _ in 0..FAILURES_PER_MINUTE {
        drop(attempt_in(kv.clone(), &target).unwrap());
    }
    // A crowd of addresses, four times what the shards hold.
    for n in 0..(4 * SHARDS as u32 * CLIENTS_PER_SHARD as u32) {
        let a = std::net::Ipv4Addr::from(0x0a00_0000 + n);
        drop(attempt_in(kv.clone(), &a.to_string()).unwrap());
    }
    let keys = kv.keys().unwrap();
    assert_eq!(keys.len(), SHARDS as usize, "{keys:?}");
    for key in keys {
        // What one check reads and writes: about 1.5 KB, not 100 KB.
        let value = kv.get(&key).unwrap().unwrap();
        assert!(value.len() < 2 << 10, "{key}: {} bytes", value.len());
        assert!(Counts::parse(Some(&value)).clients.len() <= CLIENTS_PER_SHARD);
    }
    assert!(matches!(attempt_in(kv, &target), Err(Uncounted::Over)));
}

#[test]
fn a_contended_count_is_kept_in_the_instances_memory_not_refused() {
    let host = crate::host::memory::MemoryHost::new(|_| unreachable!("no upstream"));
    host.counters.contend(true);
    let me = Client::Address("192.0.2.1".parse().unwrap());
    for _ in 0..FAILURES_PER_MINUTE {
        drop(attempt(&host, &me).unwrap());
    }
    assert_eq!(attempt(&host, &me).err().unwrap().status, 429);
    assert!(
        host.health()
            .get(&shard_key("192.0.2.1"))
            .unwrap()
            .is_some()
    );
}

#[test]
fn old_minutes_go() {
    let c = Count {
        minute: 100,
        now: 4,
        before: 3,
    };
    assert_eq!(c.recent(100), 7);
    assert_eq!(c.recent(101), 4);
    assert_eq!(c.recent(102), 0);
    assert_eq!(c.at(101).recent(101), 4);
    assert_eq!(
        c.at(105),
        Count {
            minute: 105,
            ..Count::default()
        }
    );
}
