use super::*;
use crate::host::memory::MemoryKv;

fn headers(values: &[&str]) -> Headers {
    let mut h = Headers::default();
    for v in values {
        h.push("spin-client-addr", *v);
    }
    h
}

fn address(a: &str) -> Client {
    Client::Address(a.parse().unwrap())
}

#[test]
fn the_client_is_the_runtimes_address_without_its_port() {
    assert_eq!(client_of(&headers(&["10.0.0.7:5123"])), address("10.0.0.7"));
    assert_eq!(
        client_of(&headers(&["[::ffff:10.0.0.7]:1"])),
        address("10.0.0.7")
    );
    assert_eq!(client_of(&headers(&[])), Client::Unknown);
    assert_eq!(client_of(&headers(&["forged"])), Client::Unreadable);
}

#[test]
fn an_unreadable_address_gets_no_check() {
    let kv: Rc<dyn Kv> = Rc::new(MemoryKv::default());
    let e = attempt_in(kv, &Client::Unreadable).err().unwrap();
    assert_eq!(e.status, 400);
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
    let e = attempt_in(kv.clone(), &me).err().unwrap();
    assert_eq!(e.status, 429);
    // Another address is not held back by this one's failures.
    attempt_in(kv, &address("192.0.2.2")).unwrap().passed();
}

#[test]
fn ipv6_clients_count_per_64() {
    let kv: Rc<dyn Kv> = Rc::new(MemoryKv::default());
    for n in 0..FAILURES_PER_MINUTE {
        drop(attempt_in(kv.clone(), &address(&format!("2001:db8::{n:x}"))).unwrap());
    }
    let e = attempt_in(kv, &address("2001:db8::ffff")).err().unwrap();
    assert_eq!(e.status, 429);
}

#[test]
fn a_store_that_refuses_the_count_refuses_the_check() {
    let memory = Rc::new(MemoryKv::default());
    memory.refuse_writes(true);
    let e = attempt_in(memory, &address("192.0.2.1")).err().unwrap();
    assert_eq!(e.status, 503);
}

#[test]
fn the_counts_stay_bounded_and_keep_the_throttled() {
    let kv: Rc<dyn Kv> = Rc::new(MemoryKv::default());
    let target = address("198.51.100.1");
    for _ in 0..FAILURES_PER_MINUTE {
        drop(attempt_in(kv.clone(), &target).unwrap());
    }
    for n in 0..(MAX_CLIENTS as u32 + 50) {
        let a = std::net::Ipv4Addr::from(0x0a00_0000 + n);
        drop(attempt_in(kv.clone(), &Client::Address(a.into())).unwrap());
    }
    let counts = Counts::parse(kv.get(KEY).unwrap().as_deref());
    assert!(counts.clients.len() <= MAX_CLIENTS);
    assert!(kv.get(KEY).unwrap().unwrap().len() < 128 << 10);
    assert_eq!(attempt_in(kv, &target).err().unwrap().status, 429);
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
