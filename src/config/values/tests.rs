//! The single-value variables read with a table: prewarm lists, access and rate-limit lists,
//! the timeout, the store budget.
use crate::config::tests::{vars, GOOD};
use crate::config::*;
use rstest::rstest;

#[test]
fn prewarm_lists() {
    let v = Vars {
        prewarm: Some(r#"["docker.io/library/alpine:latest", "alpine:3.19"]"#),
        prewarm_budget: Some("25"),
        ..Default::default()
    };
    let c = Config::from_vars(&v).unwrap();
    assert_eq!(
        c.prewarm
            .iter()
            .map(|(n, t)| format!("{}:{}", n, t.as_str()))
            .collect::<Vec<_>>(),
        ["docker.io/library/alpine:latest", "alpine:3.19"]
    );
    assert_eq!(c.prewarm_budget, 25);
    assert_eq!(
        Config::from_vars(&Vars::default()).unwrap().prewarm_budget,
        DEFAULT_PREWARM_BUDGET
    );
    for (list, budget, field) in [
        (r#"["alpine"]"#, None, "PREWARM[0]"),
        (r#"["alpine:latest", "Bad:1"]"#, None, "PREWARM[1]"),
        (r#"["alpine:-x"]"#, None, "PREWARM[0]"),
        (r#"{"a": 1}"#, None, "PREWARM"),
        ("[]", Some("0"), "PREWARM_BUDGET"),
        ("[]", Some("lots"), "PREWARM_BUDGET"),
    ] {
        let v = Vars {
            prewarm: Some(list),
            prewarm_budget: budget,
            ..Default::default()
        };
        assert_eq!(Config::from_vars(&v).unwrap_err().field, field, "{list}");
    }
}

#[test]
fn access_and_rate_limit_keys() {
    let v = Vars {
        allow_cidrs: Some("10.0.0.0/8, 2001:db8::/32"),
        trusted_cidrs: Some(r#"["127.0.0.1"]"#),
        rate_limit: Some("20/1h"),
        ..Default::default()
    };
    let c = Config::from_vars(&v).unwrap();
    assert_eq!((c.allow.len(), c.trusted.len()), (2, 1));
    assert_eq!(c.rate_limit, crate::ratelimit::Limit::parse("20/1h"));
    assert_eq!(
        Config::from_vars(&Vars::default()).unwrap().rate_limit,
        Some(crate::ratelimit::DEFAULT_LIMIT)
    );
    assert_eq!(
        Config::from_vars(&Vars {
            rate_limit: Some("off"),
            ..Default::default()
        })
        .unwrap()
        .rate_limit,
        None
    );
    for (v, field) in [
        (
            Vars {
                allow_cidrs: Some("10.0.0.0/99"),
                ..Default::default()
            },
            "ALLOW_CIDRS",
        ),
        (
            Vars {
                trusted_cidrs: Some("x"),
                ..Default::default()
            },
            "TRUSTED_CIDRS",
        ),
        (
            Vars {
                rate_limit: Some("lots"),
                ..Default::default()
            },
            "RATE_LIMIT",
        ),
    ] {
        assert_eq!(Config::from_vars(&v).unwrap_err().field, field);
    }
}

#[test]
fn timeout_in_range() {
    let v = Vars {
        upstreams: Some(GOOD),
        upstream_timeout_ms: Some("2500"),
        ..Default::default()
    };
    assert_eq!(Config::from_vars(&v).unwrap().upstream_timeout_ms, 2500);
}

/// A `PREWARM` image that routes to no upstream is refused when the configuration is read,
/// naming the entry.
#[rstest]
#[case(r#"["plain/x:1", "nope.example/x:1"]"#, Some(("PREWARM[1]", "nope.example/x:1")))]
#[case(r#"["alpine:3"]"#, Some(("PREWARM[0]", "alpine:3")))]
#[case(r#"["plain/x:1", "plain/y/z:2"]"#, None)]
fn prewarm_entries_must_route_to_an_upstream(
    #[case] prewarm: &str,
    #[case] want: Option<(&str, &str)>,
) {
    let table = r#"{"plain": {"registry": "https://p", "prefixes": ["plain"]}}"#;
    let v = Vars {
        prewarm: Some(prewarm),
        default_upstream: Some(""),
        ..vars(table)
    };
    match (Config::from_vars(&v), want) {
        (Err(e), Some((field, image))) => {
            assert_eq!(e.field, field);
            assert!(e.problem.contains(image), "{e}");
        }
        (Ok(c), None) => assert_eq!(c.prewarm.len(), 2),
        (got, _) => panic!("{got:?}"),
    }
}

#[test]
fn the_store_budget_is_parsed_with_units_and_refused_when_wrong() {
    let parse = |bytes: Option<&str>, days: Option<&str>| {
        Config::from_vars(&Vars {
            store_max_bytes: bytes,
            store_max_idle_days: days,
            ..Default::default()
        })
        .map(|c| c.store_budget)
    };
    let b = parse(None, None).unwrap();
    assert!(b.is_off());
    assert_eq!(
        parse(Some("300MiB"), None).unwrap().max_bytes,
        Some(300 << 20)
    );
    assert_eq!(
        parse(Some(" 10 GiB "), None).unwrap().max_bytes,
        Some(10 << 30)
    );
    assert_eq!(parse(Some("1234"), None).unwrap().max_bytes, Some(1234));
    assert_eq!(
        parse(None, Some("30")).unwrap().max_idle_secs,
        Some(30 * 86_400)
    );
    for bad in ["0", "-1", "1.5GiB", "10GB", "lots", "99999999999TiB"] {
        let e = parse(Some(bad), None).unwrap_err();
        assert_eq!(e.field, "STORE_MAX_BYTES", "{bad}");
    }
    assert_eq!(
        parse(None, Some("0")).unwrap_err().field,
        "STORE_MAX_IDLE_DAYS"
    );
}
