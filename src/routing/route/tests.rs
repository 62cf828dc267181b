//! Route validation: what a stored route may say, and how each mistake is named.

use super::*;

#[test]
fn every_builtin_registry_makes_a_valid_route() {
    for (_, b) in crate::routing::registries::builtin_hosts("example.com") {
        RouteConfig::new(b.upstream).resolve().unwrap();
    }
}

#[test]
fn schema_and_inference() {
    let r = RouteConfig::from_json(br#"{"upstream":"https://registry-1.docker.io"}"#)
        .unwrap()
        .resolve()
        .unwrap();
    assert!(r.docker_hub);
    assert!(
        r.allowed
            .allows(&Url::parse("https://auth.docker.io/token").unwrap())
    );
    let r = RouteConfig::from_json(br#"{"upstream":"http://127.0.0.1:5000","docker_hub":true,"allowed_hosts":["127.0.0.1:6000"]}"#)
        .unwrap()
        .resolve()
        .unwrap();
    assert!(r.docker_hub);
    assert!(
        r.allowed
            .allows(&Url::parse("http://127.0.0.1:5000/v2/").unwrap())
    );
    assert!(
        r.allowed
            .allows(&Url::parse("http://127.0.0.1:6000/token").unwrap())
    );
    assert!(
        !r.allowed
            .allows(&Url::parse("http://127.0.0.2:6001/token").unwrap())
    );
    let r = RouteConfig::new("https://ghcr.io").resolve().unwrap();
    assert!(!r.docker_hub);
}

#[test]
fn malformed_routes_are_errors() {
    for bad in [
        &br#"{"upstream":1}"#[..],
        br#"{"upstream":"https://x","extra":1}"#,
        br#"not json"#,
        br#"{}"#,
    ] {
        assert!(RouteConfig::from_json(bad).is_err());
    }
    for bad in [
        "ftp://x",
        "https://x/path",
        "https://u:p@x",
        "https://x?q",
        "x",
        "",
    ] {
        assert!(RouteConfig::new(bad).resolve().is_err(), "{bad}");
    }
    let mut c = RouteConfig::new("https://x");
    c.allowed_hosts = vec!["a/b".into()];
    assert!(c.resolve().is_err());
}

#[test]
fn prefix_and_browser_fields() {
    let r = RouteConfig::from_json(br#"{"upstream":"https://gcr.io","repository_prefix":"/my-project/","browser_redirects":false}"#)
        .unwrap()
        .resolve()
        .unwrap();
    assert_eq!(r.repository_prefix.unwrap().as_str(), "my-project");
    assert!(!r.browser_redirects);
    let bad =
        RouteConfig::from_json(br#"{"upstream":"https://gcr.io","repository_prefix":"../x"}"#)
            .unwrap();
    assert!(bad.resolve().is_err());
    assert!(
        RouteConfig::new("https://quay.io")
            .resolve()
            .unwrap()
            .browser_redirects
    );
}

#[test]
fn credential_names_are_spin_variable_prefixes() {
    for good in ["upstream1", "my_registry", "hub2_robot"] {
        assert!(spin_variable_prefix(good), "{good}");
    }
    for bad in ["upstream_1", "Bad", "a__b", "_a", "a_", "1a", "a-b", ""] {
        assert!(!spin_variable_prefix(bad), "{bad}");
    }
}

#[test]
fn field_errors_and_lists() {
    let c = RouteConfig::from_json(
        br#"{"upstream":"ftp://x","allowed_hosts":["a/b"],"repository_prefix":"..","credentials":"Bad-Name","allow":["UP"],"deny":["ok/*"]}"#,
    )
    .unwrap();
    let fields: Vec<String> = c
        .resolve()
        .unwrap_err()
        .0
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(
        fields,
        [
            "upstream",
            "allowed_hosts",
            "repository_prefix",
            "credentials",
            "allow"
        ]
    );
    let r = RouteConfig::from_json(br#"{"upstream":"https://x.io","allow":["library/*","myorg/**"],"deny":["myorg/secret/**"]}"#)
        .unwrap()
        .resolve()
        .unwrap();
    let same = |n| r.serves(n, n);
    assert!(same("library/alpine"));
    assert!(same("myorg/a/b"));
    assert!(!same("myorg/secret/x"));
    assert!(!same("other/x"));
    assert!(
        RouteConfig::new("https://x.io")
            .resolve()
            .unwrap()
            .serves("anything", "anything")
    );
    // Docker Hub's two names of one repository: a pattern on either holds.
    let hub = RouteConfig::from_json(
        br#"{"upstream":"https://registry-1.docker.io","deny":["library/small"]}"#,
    )
    .unwrap()
    .resolve()
    .unwrap();
    assert!(!hub.serves("small", "library/small"));
    assert!(hub.serves("other", "library/other"));
    assert!(
        r.serves("alpine", "library/alpine"),
        "an allow on the upstream name admits"
    );
}
