//! `/healthz` and the start-up check: the configuration's state as an operator needs it — where
//! the upstream table came from, the upstreams, and what will fail (a secret an upstream names but
//! nobody set, a variable whose name is one typo away from one the mirror reads, so it is ignored).
//! Plain functions of the configuration, the names the Worker was given and a secret lookup;
//! never a secret's value.

use http::StatusCode;
use serde_json::{json, Value};

use crate::config::{Config, ConfigError, MIRROR_OWN_NAMES, VAR_NAMES};

/// Bindings the mirror knows besides `VAR_NAMES` and `MIRROR_OWN_NAMES`.
const OTHER_KNOWN: &[&str] = &["COORDINATOR"];

/// Whether the mirror reads a variable, secret or binding of this name.
fn is_known(name: &str) -> bool {
    VAR_NAMES.contains(&name) || MIRROR_OWN_NAMES.contains(&name) || OTHER_KNOWN.contains(&name)
}

/// Levenshtein distance, on ASCII-uppercased bytes (names are short).
fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.to_ascii_uppercase(), b.to_ascii_uppercase());
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known name `name` is probably a typo of: within two edits (one for short names), or the
/// same but for case or `-`/`_`.
pub fn close_known_name(name: &str) -> Option<&'static str> {
    if is_known(name) {
        return None;
    }
    let folded = name.to_ascii_uppercase().replace('-', "_");
    let all = VAR_NAMES
        .iter()
        .chain(MIRROR_OWN_NAMES)
        .chain(OTHER_KNOWN)
        .copied();
    all.map(|k| (k, distance(&folded, k)))
        .filter(|(k, d)| *d == 0 || *d <= if k.len() <= 6 { 1 } else { 2 })
        .min_by_key(|(_, d)| *d)
        .map(|(k, _)| k)
}

/// Warnings for the Worker's variable names: those one typo away from a name the mirror reads.
/// `secrets` are the names the table itself refers to (they are not typos).
pub fn unknown_name_warnings(names: &[String], config: Option<&Config>) -> Vec<String> {
    let named: Vec<&str> = config.map_or(vec![], |c| secret_names(c).map(|(_, s)| s).collect());
    names
        .iter()
        .filter(|n| !named.contains(&n.as_str()))
        .filter_map(|n| {
            close_known_name(n).map(|k| {
                format!("{n} is not a variable edgemirror reads (ignored): did you mean {k}?")
            })
        })
        .collect()
}

/// (field, secret name) for every secret the table names.
fn secret_names(c: &Config) -> impl Iterator<Item = (String, &str)> {
    c.upstreams.iter().flat_map(|u| {
        let creds = u
            .credentials
            .iter()
            .map(move |s| (format!("UPSTREAMS.{}.credentials", u.name), s.as_str()));
        let headers = u
            .headers
            .iter()
            .map(move |(h, s)| (format!("UPSTREAMS.{}.headers.{h}", u.name), s.as_str()));
        creds.chain(headers)
    })
}

/// Problems that make requests fail although the table parsed: secrets named but not set.
pub fn missing_secrets(c: &Config, secret: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    secret_names(c)
        .filter(|(_, s)| secret(s).is_none_or(|v| v.trim().is_empty()))
        .map(|(field, s)| {
            format!("{field}: secret {s} is not set (wrangler secret put {s}); its pulls get 503")
        })
        .collect()
}

/// Where the table in force came from.
pub fn sources(base: &Config, in_force: &Config, upstreams_set: bool) -> Vec<&'static str> {
    let mut out = vec![if upstreams_set {
        "UPSTREAMS variable (wrangler.toml [vars] or the dashboard)"
    } else {
        "built-in table (no UPSTREAMS variable)"
    }];
    if base != in_force {
        out.push("admin store (CONFIG overrides)");
    }
    out
}

/// What the platform knows beyond the configuration.
pub struct Environment<'a> {
    /// Names of the Worker's variables, secrets and bindings.
    pub names: &'a [String],
    /// A variable's or secret's value by name.
    pub secret: &'a dyn Fn(&str) -> Option<String>,
}

/// The `/healthz` answer: `200 ok`, `200 degraded` (serving, but some pulls will fail, or a
/// variable looks like a typo), `503 invalid configuration`. `notes` are facts that degrade
/// nothing (the admin API is off).
pub fn report(
    in_force: Result<&Config, &ConfigError>,
    base: Result<&Config, &ConfigError>,
    env: &Environment,
) -> (StatusCode, Value) {
    let warnings = unknown_name_warnings(env.names, base.ok());
    let (c, b) = match (in_force, base) {
        (Ok(c), Ok(b)) => (c, b),
        (Err(e), _) | (_, Err(e)) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "invalid configuration", "field": e.field, "problem": e.problem, "warnings": warnings}),
            )
        }
    };
    let problems = missing_secrets(c, env.secret);
    let mut notes: Vec<&str> = vec![];
    let config_bound = env.names.iter().any(|n| n == "CONFIG");
    if config_bound && (env.secret)("ADMIN_TOKEN").is_none_or(|t| t.is_empty()) {
        notes.push("CONFIG is bound but ADMIN_TOKEN is not set: the admin API is off");
    }
    let ups: Vec<Value> = c
        .upstreams
        .iter()
        .map(|u| json!({"name": u.name, "registry": u.registry, "hosts": u.hosts, "prefixes": u.prefixes, "ns": u.ns}))
        .collect();
    let default = c.default.and_then(|i| c.get(i)).map(|u| u.name.clone());
    let upstreams_set = (env.secret)("UPSTREAMS").is_some_and(|v| !v.trim().is_empty());
    let status = if problems.is_empty() && warnings.is_empty() {
        "ok"
    } else {
        "degraded"
    };
    (
        StatusCode::OK,
        json!({
            "status": status,
            "source": sources(b, c, upstreams_set),
            "upstreams": ups,
            "default": default,
            "problems": problems,
            "warnings": warnings,
            "notes": notes,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vars;
    use rstest::rstest;

    #[rstest]
    #[case("UPSTREAM", Some("UPSTREAMS"))]
    #[case("upstreams", Some("UPSTREAMS"))]
    #[case("DEFAULT-UPSTREAM", Some("DEFAULT_UPSTREAM"))]
    #[case("PREWARMS", Some("PREWARM"))]
    #[case("RATE_LIMITS", Some("RATE_LIMIT"))]
    #[case("RATELIMT", Some("RATELIMIT"))]
    #[case("ADMIN_TOKN", Some("ADMIN_TOKEN"))]
    #[case("UPSTREAMS", None)]
    #[case("BLOBS", None)]
    #[case("HUB_CREDS", None)]
    #[case("ACCESS_CLIENT_ID", None)]
    #[case("CONFIGS", Some("CONFIG"))]
    #[case("COUNTER", None)]
    fn typos_of_known_names(#[case] name: &str, #[case] want: Option<&str>) {
        assert_eq!(close_known_name(name), want);
    }

    fn table(t: &str) -> Config {
        Config::from_vars(&Vars {
            upstreams: Some(t),
            ..Default::default()
        })
        .unwrap()
    }

    const CREDS: &str = r#"{"hub": {"registry": "https://r", "credentials": "HUB_CREDS", "headers": {"X-Id": "ACCESS_ID"}}}"#;

    #[test]
    fn missing_secrets_are_named_never_their_values() {
        let c = table(CREDS);
        let names = vec!["UPSTREAMS".to_string(), "ACCESS_ID".to_string()];
        let secret = |n: &str| match n {
            "ACCESS_ID" => Some("s3cret-value".to_string()),
            "UPSTREAMS" => Some(CREDS.to_string()),
            _ => None,
        };
        let env = Environment {
            names: &names,
            secret: &secret,
        };
        let (status, body) = report(Ok(&c), Ok(&c), &env);
        assert_eq!(status, 200);
        assert_eq!(body["status"], "degraded");
        let problems = body["problems"].to_string();
        assert!(problems.contains("UPSTREAMS.hub.credentials: secret HUB_CREDS is not set"));
        assert!(!problems.contains("ACCESS_ID"), "{problems}");
        assert!(!body.to_string().contains("s3cret"));
        assert_eq!(
            body["source"][0],
            "UPSTREAMS variable (wrangler.toml [vars] or the dashboard)"
        );
    }

    #[test]
    fn a_typo_warns_and_the_built_in_table_is_named_as_the_source() {
        let c = Config::built_in();
        let names = vec!["UPSTREAM".to_string(), "PREWARM".to_string()];
        let secret = |n: &str| (n == "UPSTREAM").then(|| "{}".to_string());
        let env = Environment {
            names: &names,
            secret: &secret,
        };
        let (status, body) = report(Ok(&c), Ok(&c), &env);
        assert_eq!(status, 200);
        assert_eq!(body["status"], "degraded");
        assert_eq!(
            body["warnings"][0],
            "UPSTREAM is not a variable edgemirror reads (ignored): did you mean UPSTREAMS?"
        );
        assert_eq!(body["source"][0], "built-in table (no UPSTREAMS variable)");
    }

    #[test]
    fn all_well_is_ok_and_stored_overrides_are_a_source() {
        let base = table(r#"{"a": {"registry": "https://a"}}"#);
        let (merged, _) = base.with_overrides(r#"{"b": {"registry": "https://b"}}"#);
        let names = vec![
            "UPSTREAMS".to_string(),
            "CONFIG".to_string(),
            "ADMIN_TOKEN".to_string(),
        ];
        let secret = |n: &str| Some(format!("{n}-value"));
        let env = Environment {
            names: &names,
            secret: &secret,
        };
        let (_, body) = report(Ok(&merged), Ok(&base), &env);
        assert_eq!(body["status"], "ok", "{body}");
        assert_eq!(body["source"][1], "admin store (CONFIG overrides)");
        assert_eq!(body["upstreams"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn an_invalid_table_is_503_with_its_field() {
        let e = ConfigError {
            field: "UPSTREAMS.x.registry".into(),
            problem: "bad".into(),
        };
        let names = vec!["UPSTREAMS".to_string(), "PREWARN".to_string()];
        let env = Environment {
            names: &names,
            secret: &|_| None,
        };
        let (status, body) = report(Err(&e), Err(&e), &env);
        assert_eq!(status, 503);
        assert_eq!(body["field"], "UPSTREAMS.x.registry");
        assert!(body["warnings"][0]
            .as_str()
            .unwrap()
            .contains("did you mean PREWARM?"));
    }
}
