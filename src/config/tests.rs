//! Table tests for the configuration: good tables, and bad ones with the field each must name.
use super::*;
use rstest::rstest;

pub(super) fn vars(upstreams: &str) -> Vars<'_> {
    Vars {
        upstreams: Some(upstreams),
        ..Default::default()
    }
}

pub(super) const GOOD: &str = r#"{
    "docker.io": {"registry": "http://127.0.0.1:15100/", "prefixes": ["docker.io"], "ns": ["docker.io"], "library": true},
    "plain": {"registry": "http://127.0.0.1:15000", "hosts": ["Plain.Example.com"], "prefixes": ["plain"]}
}"#;

#[test]
fn built_in_table_has_the_public_registries_and_docker_hub_default() {
    let c = Config::from_vars(&Vars::default()).unwrap();
    let names: Vec<_> = c.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "docker.io",
            "ghcr.io",
            "quay.io",
            "gcr.io",
            "registry.k8s.io",
            "public.ecr.aws",
            "nvcr.io"
        ]
    );
    assert_eq!(c.get(c.default.unwrap()).unwrap().name, "docker.io");
    assert!(c.upstreams[0].library && !c.upstreams[1].library);
    assert_eq!(c.upstream_timeout_ms, DEFAULT_TIMEOUT_MS);
}

#[test]
fn parses_and_normalises_a_table() {
    let c = Config::from_vars(&vars(GOOD)).unwrap();
    let hub = &c.upstreams[0];
    assert_eq!(hub.registry, "http://127.0.0.1:15100");
    assert!(hub.library);
    assert_eq!(c.upstreams[1].hosts, ["plain.example.com"]);
    assert_eq!(c.default, Some(0), "docker.io is the default when present");
}

#[test]
fn a_punycode_registry_host_is_accepted() {
    let c = Config::from_vars(&vars(
        r#"{"x": {"registry": "https://xn--bcher-kva.example"}}"#,
    ))
    .unwrap();
    assert_eq!(c.upstreams[0].registry, "https://xn--bcher-kva.example");
}

#[rstest]
#[case(Some("plain"), Some(1))]
#[case(Some(""), None)]
#[case(None, Some(0))]
fn default_upstream(#[case] value: Option<&str>, #[case] want: Option<usize>) {
    let v = Vars {
        upstreams: Some(GOOD),
        default_upstream: value,
        ..Default::default()
    };
    assert_eq!(Config::from_vars(&v).unwrap().default, want);
}

/// (UPSTREAMS, DEFAULT_UPSTREAM, UPSTREAM_TIMEOUT_MS, the field the error must name)
#[rstest]
#[case("[]", None, None, "UPSTREAMS")]
#[case("{}", None, None, "UPSTREAMS")]
#[case("not json", None, None, "UPSTREAMS")]
#[case(r#"{"x": {}}"#, None, None, "UPSTREAMS.x")]
#[case(r#"{"x": {"registry": 5}}"#, None, None, "UPSTREAMS.x.registry")]
#[case(
    r#"{"x": {"registry": "ftp://h"}}"#,
    None,
    None,
    "UPSTREAMS.x.registry"
)]
// Host names are ASCII only (the url crate's IDNA back end is the stub: a smaller wasm); a
// Unicode name is refused at start, its punycode form works.
#[case(
    r#"{"x": {"registry": "https://bücher.example"}}"#,
    None,
    None,
    "UPSTREAMS.x.registry"
)]
#[case(
    r#"{"x": {"registry": "https://u:p@h"}}"#,
    None,
    None,
    "UPSTREAMS.x.registry"
)]
#[case(
    r#"{"x": {"registry": "https://h/v2/"}}"#,
    None,
    None,
    "UPSTREAMS.x.registry"
)]
#[case(
    r#"{"x": {"registry": "https://h?q"}}"#,
    None,
    None,
    "UPSTREAMS.x.registry"
)]
#[case(
    r#"{"x": {"registry": "https://h", "hosts": ["a b"]}}"#,
    None,
    None,
    "UPSTREAMS.x.hosts"
)]
#[case(
    r#"{"x": {"registry": "https://h", "hosts": ["h:0"]}}"#,
    None,
    None,
    "UPSTREAMS.x.hosts"
)]
#[case(
    r#"{"x": {"registry": "https://h", "prefixes": ["a/b"]}}"#,
    None,
    None,
    "UPSTREAMS.x.prefixes"
)]
#[case(
    r#"{"x": {"registry": "https://h", "prefixes": ["-a"]}}"#,
    None,
    None,
    "UPSTREAMS.x.prefixes"
)]
#[case(
    r#"{"x": {"registry": "https://h", "ns": [""]}}"#,
    None,
    None,
    "UPSTREAMS.x.ns"
)]
#[case(
    r#"{"x": {"registry": "https://h", "library": "yes"}}"#,
    None,
    None,
    "UPSTREAMS.x.library"
)]
#[case(
    r#"{"x": {"registry": "https://h", "prefix": ["a"]}}"#,
    None,
    None,
    "UPSTREAMS.x"
)]
#[case(r#"{"x": {"registry": "https://h", "prefixes": ["a"]}, "y": {"registry": "https://h", "prefixes": ["a"]}}"#, None, None, "UPSTREAMS.y.prefixes")]
#[case(
    r#"{"x": {"registry": "https://h", "ns": ["a"]}, "y": {"registry": "https://h", "ns": ["a"]}}"#,
    None,
    None,
    "UPSTREAMS.y.ns"
)]
#[case(r#"{"x": {"registry": "https://h", "hosts": ["a"]}, "y": {"registry": "https://h", "hosts": ["A"]}}"#, None, None, "UPSTREAMS.y.hosts")]
#[case(GOOD, Some("nope"), None, "DEFAULT_UPSTREAM")]
#[case(GOOD, None, Some("fast"), "UPSTREAM_TIMEOUT_MS")]
#[case(GOOD, None, Some("5"), "UPSTREAM_TIMEOUT_MS")]
#[case(GOOD, None, Some("9999999"), "UPSTREAM_TIMEOUT_MS")]
fn bad_tables_name_the_field(
    #[case] table: &str,
    #[case] default_upstream: Option<&str>,
    #[case] timeout: Option<&str>,
    #[case] field: &str,
) {
    let v = Vars {
        upstreams: Some(table),
        default_upstream,
        upstream_timeout_ms: timeout,
        ..Default::default()
    };
    let e = Config::from_vars(&v).unwrap_err();
    assert!(e.field.starts_with(field), "{e} should name {field}");
    assert!(!e.problem.is_empty());
}

#[rstest]
#[case(serde_json::json!(600), Ok(600))]
#[case(serde_json::json!(0), Ok(0))]
#[case(serde_json::json!("90s"), Ok(90))]
#[case(serde_json::json!("90"), Ok(90))]
#[case(serde_json::json!("10m"), Ok(600))]
#[case(serde_json::json!("1h"), Ok(3600))]
#[case(serde_json::json!("24h"), Ok(86_400))]
#[case(serde_json::json!("365d"), Ok(365 * 86_400))]
#[case(serde_json::json!("1w"), Err(()))]
#[case(serde_json::json!("h"), Err(()))]
#[case(serde_json::json!(-1), Err(()))]
#[case(serde_json::json!(1.5), Err(()))]
#[case(serde_json::json!("99999999999999999999d"), Err(()))]
#[case(serde_json::json!("4000d"), Err(()))]
#[case(serde_json::json!(true), Err(()))]
fn durations(#[case] v: serde_json::Value, #[case] want: Result<u64, ()>) {
    assert_eq!(parse_duration(&v).map_err(|_| ()), want);
}

#[test]
fn ttls_per_upstream_with_defaults() {
    let table = r#"{"a": {"registry": "https://a", "tag_ttl": "1h", "blob_ttl": "24h"}, "b": {"registry": "https://b"}}"#;
    let c = Config::from_vars(&vars(table)).unwrap();
    assert_eq!(
        c.upstreams[0].ttls,
        Ttls {
            tag: 3600,
            blob: 86_400,
            ..Ttls::default()
        }
    );
    assert_eq!(c.upstreams[1].ttls, Ttls::default());
    let bad = r#"{"a": {"registry": "https://a", "stale_if_error": "soon"}}"#;
    assert_eq!(
        Config::from_vars(&vars(bad)).unwrap_err().field,
        "UPSTREAMS.a.stale_if_error"
    );
}

#[test]
fn header_secrets_are_named_not_held() {
    let ok = r#"{"p": {"registry": "https://p", "headers": {"CF-Access-Client-Id": "ACCESS_ID", "CF-Access-Client-Secret": "ACCESS_SECRET"}}}"#;
    let c = Config::from_vars(&vars(ok)).unwrap();
    assert_eq!(
        c.upstreams[0].headers,
        [
            ("cf-access-client-id".to_string(), "ACCESS_ID".to_string()),
            (
                "cf-access-client-secret".to_string(),
                "ACCESS_SECRET".to_string()
            )
        ]
    );
    for bad in [
        r#"{"p": {"registry": "https://p", "headers": {"Authorization": "X"}}}"#,
        r#"{"p": {"registry": "https://p", "headers": {"Bad Header": "X"}}}"#,
        r#"{"p": {"registry": "https://p", "headers": {"X-Id": "the actual value!"}}}"#,
    ] {
        assert_eq!(
            Config::from_vars(&vars(bad)).unwrap_err().field,
            "UPSTREAMS.p.headers",
            "{bad}"
        );
    }
}

#[test]
fn overrides_extend_replace_and_remove_and_bad_ones_are_skipped() {
    let base = Config::from_vars(&vars(GOOD)).unwrap();
    let (c, skipped) = base.with_overrides(
        r#"{
        "extra": {"registry": "http://127.0.0.1:16000", "prefixes": ["extra"]},
        "plain": {"registry": "http://127.0.0.1:17000", "prefixes": ["plain2"]},
        "broken": {"registry": "ftp://x"},
        "z-clash": {"registry": "https://c", "prefixes": ["extra"]}
    }"#,
    );
    let names: Vec<_> = c.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["docker.io", "extra", "plain"]);
    assert_eq!(
        c.upstreams
            .iter()
            .find(|u| u.name == "plain")
            .unwrap()
            .registry,
        "http://127.0.0.1:17000"
    );
    assert_eq!(
        skipped.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
        ["UPSTREAMS.broken.registry", "UPSTREAMS.z-clash.prefixes"]
    );
    assert_eq!(c.get(c.default.unwrap()).unwrap().name, "docker.io");
    let (c, _) = base.with_overrides(r#"{"docker.io": null}"#);
    assert_eq!(c.default, None, "removing the default leaves none");
    assert_eq!(c.upstreams.len(), 1);
    let (same, skipped) = base.with_overrides("not json");
    assert_eq!((same.upstreams.len(), skipped.len()), (2, 1));
}

/// A credential pasted where a secret's *name* belongs is refused without being echoed: the error
/// reaches `/healthz` (open to everyone), every 503 body and the log.
#[rstest]
#[case(
    r#"{"p": {"registry": "https://p", "credentials": "alice:S3cretPassw0rd"}}"#,
    "S3cretPassw0rd"
)]
#[case(
    r#"{"p": {"registry": "https://p", "credentials": "ghp_S3cretTokenValue0123"}}"#,
    "S3cretTokenValue"
)]
#[case(
    r#"{"p": {"registry": "https://p", "credentials": "dXNlcjpTM2NyZXQ="}}"#,
    "dXNlcjpTM2NyZXQ"
)]
#[case(
    r#"{"p": {"registry": "https://p", "credentials": 12345678}}"#,
    "12345678"
)]
#[case(
    r#"{"p": {"registry": "https://p", "credentials": ["S3cretPassw0rd"]}}"#,
    "S3cretPassw0rd"
)]
#[case(
    r#"{"p": {"registry": "https://p", "headers": {"X-Key": "S3cret-Key-Value"}}}"#,
    "S3cret-Key-Value"
)]
#[case(
    r#"{"p": {"registry": "https://p", "headers": {"X-Key": "sk_live_S3cretKeyValue"}}}"#,
    "S3cretKeyValue"
)]
#[case(
    r#"{"p": {"registry": "https://p", "headers": "Bearer S3cretTokenValue"}}"#,
    "S3cretTokenValue"
)]
#[case(
    r#"{"p": {"registry": "https://p", "headers": {"X-Key": 987654321}}}"#,
    "987654321"
)]
#[case(
    r#"{"p": {"registry": "https://p", "headers": {"Bearer S3cretTokenValue": "KEY"}}}"#,
    "S3cretTokenValue"
)]
#[case(
    r#"{"p": {"registry": "https://alice:S3cretPassw0rd@p/v2"}}"#,
    "S3cretPassw0rd"
)]
#[case(
    r#"{"p": {"registry": "https://alice:S3cretPassw0rd@p"}}"#,
    "S3cretPassw0rd"
)]
#[case(
    r#"{"p": {"registry": "ht tps://alice:S3cretPassw0rd@p"}}"#,
    "S3cretPassw0rd"
)]
fn secrets_pasted_into_the_table_are_never_echoed(#[case] table: &str, #[case] secret: &str) {
    let e = Config::from_vars(&vars(table)).unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(e.field.starts_with("UPSTREAMS.p"), "{e}");
    // The same rules guard the admin API's stored overrides.
    let (_, skipped) = Config::built_in().with_overrides(table);
    let shown = format!("{skipped:?}");
    assert!(!skipped.is_empty() && !shown.contains(secret), "{shown}");
}

#[test]
fn token_realms_are_origins_and_known_registries_keep_theirs() {
    let c = Config::from_vars(&vars(
        r#"{
        "hub": {"registry": "https://registry-1.docker.io"},
        "own": {"registry": "https://reg.example", "realms": ["https://auth.example/"]},
        "none": {"registry": "https://reg2.example"}
    }"#,
    ))
    .unwrap();
    let realms = |n: &str| {
        c.upstreams
            .iter()
            .find(|u| u.name == n)
            .unwrap()
            .realms
            .clone()
    };
    assert_eq!(realms("hub"), ["https://auth.docker.io"]);
    assert_eq!(realms("own"), ["https://auth.example"]);
    assert!(realms("none").is_empty());
    for bad in [
        r#"{"p": {"registry": "https://p", "realms": ["https://a/token"]}}"#,
        r#"{"p": {"registry": "https://p", "realms": ["http://a"]}}"#,
        r#"{"p": {"registry": "https://p", "realms": "https://a"}}"#,
    ] {
        assert_eq!(
            Config::from_vars(&vars(bad)).unwrap_err().field,
            "UPSTREAMS.p.realms",
            "{bad}"
        );
    }
}

#[test]
fn client_logins_go_to_the_default_upstream_unless_told() {
    let c = Config::from_vars(&vars(
        r#"{
        "docker.io": {"registry": "https://a"},
        "b": {"registry": "https://b", "client_logins": true},
        "c": {"registry": "https://c"}
    }"#,
    ))
    .unwrap();
    let takes = |n: &str| c.takes_client_logins(c.upstreams.iter().find(|u| u.name == n).unwrap());
    assert!(takes("docker.io") && takes("b") && !takes("c"));
}

/// Messages point at what the operator wrote: the field, no position in generated JSON, a
/// scheme suggested, JSON syntax errors with their position in the operator's own text.
#[rstest]
#[case(
    r#"{"x":{"registry":"https://h","host":["a"]}}"#,
    "UPSTREAMS.x.host",
    "unknown field `host`",
    " at line"
)]
#[case(
    r#"{"x":{"registry":"https://h","hosts":"a"}}"#,
    "UPSTREAMS.x.hosts",
    "expected a sequence",
    " at line"
)]
#[case(
    r#"{"x":{"registry":"ghcr.io"}}"#,
    "UPSTREAMS.x.registry",
    "write \"https://ghcr.io\"",
    "not a URL"
)]
#[case(
    r#"{"x":{"registry":"localhost:5000"}}"#,
    "UPSTREAMS.x.registry",
    "write \"https://localhost:5000\"",
    "not a URL"
)]
#[case(
    "{\"x\": {",
    "UPSTREAMS",
    "is not valid JSON (EOF while parsing an object at line 1 column 7)",
    "?"
)]
#[case(
    "not json",
    "UPSTREAMS",
    "is not valid JSON (expected ident at line 1 column 2)",
    "?"
)]
fn messages_point_at_what_was_written(
    #[case] table: &str,
    #[case] field: &str,
    #[case] says: &str,
    #[case] never: &str,
) {
    let e = Config::from_vars(&vars(table)).unwrap_err();
    assert_eq!(e.field, field, "{e}");
    assert!(e.problem.contains(says), "{e}");
    assert!(!e.to_string().contains(never), "{e}");
}
