use super::*;

fn request(peer: &str, forwarded: &[(&str, &str)]) -> Headers {
    let mut h = Headers::default();
    for (name, value) in forwarded {
        h.push(name, *value);
    }
    h.push("spin-client-addr", peer);
    h
}

fn address(a: &str) -> Client {
    Client::Address(a.parse().unwrap())
}

fn trusting(list: &str) -> TrustedProxies {
    TrustedProxies::parse(list).unwrap()
}

#[test]
fn the_client_is_the_runtimes_address_without_its_port() {
    let nobody = TrustedProxies::default();
    let of = |peer: &str| client_of(&request(peer, &[]), &nobody);
    assert_eq!(of("10.0.0.7:5123"), address("10.0.0.7"));
    assert_eq!(of("[::ffff:10.0.0.7]:1"), address("10.0.0.7"));
    assert_eq!(of("forged"), Client::Unreadable);
    assert_eq!(client_of(&Headers::default(), &nobody), Client::Unknown);
}

#[test]
fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let xff = [("x-forwarded-for", "198.51.100.9")];
    let fwd = [("forwarded", "for=198.51.100.9")];
    for trusted in ["", "10.0.0.0/8", "192.0.2.2"] {
        let trusted = trusting(trusted);
        for headers in [&xff[..], &fwd[..]] {
            let got = client_of(&request("192.0.2.1:4000", headers), &trusted);
            assert_eq!(got, address("192.0.2.1"));
        }
    }
}

#[test]
fn behind_a_trusted_front_the_client_is_the_right_most_untrusted_hop() {
    let front = trusting("127.0.0.1, 10.0.0.0/8");
    let of = |headers: &[(&str, &str)]| client_of(&request("127.0.0.1:50000", headers), &front);
    // What the client wrote itself (left) is never read.
    let xff = [("x-forwarded-for", "6.6.6.6, 198.51.100.9")];
    assert_eq!(of(&xff), address("198.51.100.9"));
    // Chains of trusted fronts are walked; headers repeated are one list.
    let chain = [
        ("x-forwarded-for", "6.6.6.6, 198.51.100.9"),
        ("x-forwarded-for", "10.1.2.3"),
    ];
    assert_eq!(of(&chain), address("198.51.100.9"));
    assert_eq!(
        of(&[("x-forwarded-for", "[2001:db8::5]:443")]),
        address("2001:db8::5")
    );
    // Without X-Forwarded-For, RFC 7239's for=.
    let rfc = [(
        "forwarded",
        "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https",
    )];
    assert_eq!(of(&rfc), address("2001:db8::7"));
    // No header: the front itself; all trusted: the farthest.
    assert_eq!(of(&[]), address("127.0.0.1"));
    assert_eq!(
        of(&[("x-forwarded-for", "10.0.0.1, 10.0.0.2")]),
        address("10.0.0.1")
    );
    // An entry the front wrote that is no address is no client.
    let unknown = [("forwarded", "for=unknown")];
    assert_eq!(of(&unknown), Client::Unreadable);
}

#[test]
fn a_trusted_proxies_list_that_does_not_parse_names_the_entry() {
    assert_eq!(trusting(" ").0.len(), 0);
    assert_eq!(trusting("192.0.2.1,2001:db8::/32 ,10.0.0.0/8").0.len(), 3);
    let e = TrustedProxies::parse("10.0.0.0/8, proxy.internal").unwrap_err();
    assert!(e.contains("\"proxy.internal\" is neither"), "{e}");
    assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
}
