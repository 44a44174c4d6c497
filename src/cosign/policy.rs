//! The signature policy as the operator writes it in an upstream's `verify` list: which
//! repositories it covers (patterns), whose keys sign them (names of secrets holding PEM public
//! keys) and what happens without a valid signature (`enforce`: refused; `warn`: served, noted).
//! Parsed from the raw JSON value here (not by serde's derive) so that no error ever repeats a
//! value: a PEM key pasted where a secret's name belongs must not end up in `/healthz`.

use serde_json::Value;

use crate::config::{secret_name_problem, ConfigError};

/// Rules an upstream may have; patterns and keys a rule may list (bounds on start-up work).
const MAX_RULES: usize = 32;
const MAX_PATTERNS: usize = 64;
const MAX_KEYS: usize = 8;

/// What a rule does with a manifest that has no valid signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `403 DENIED`; nothing of the manifest is served.
    Enforce,
    /// Served, with a log line and the `edgemirror-signature` header saying why it is unverified.
    Warn,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
        }
    }
}

/// One rule of an upstream's `verify` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// How messages name the rule: its `name`, or `<upstream>.verify[<i>]`.
    pub name: String,
    /// Repository patterns, matched against the name at the upstream (`library/alpine`).
    pub repos: Vec<String>,
    /// Names of the secrets (or variables) holding the PEM public keys; any one may sign.
    pub keys: Vec<String>,
    pub mode: Mode,
}

/// An upstream's rules, in order: the first whose pattern matches a repository applies to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

impl Policy {
    /// The rule covering `repo` (a repository name at the upstream), if any.
    pub fn rule_for(&self, repo: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.repos.iter().any(|p| matches(p, repo)))
    }

    /// Every secret the rules name (for `UPSTREAM_SECRETS` and the start-up key check).
    pub fn key_names(&self) -> impl Iterator<Item = &String> {
        self.rules.iter().flat_map(|r| r.keys.iter())
    }

    /// The `verify` field of upstream `upstream`, checked; absent or `null` is no policy.
    pub fn parse(upstream: &str, value: Option<&Value>) -> Result<Policy, ConfigError> {
        let field = |f: &str| format!("UPSTREAMS.{upstream}.verify{f}");
        let bad = |f: &str, p: &str| ConfigError {
            field: field(f),
            problem: p.to_string(),
        };
        let list = match value {
            None | Some(Value::Null) => return Ok(Policy::default()),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(bad("", "must be a list of rules ({\"repos\": [...], \"keys\": [...], \"mode\": \"enforce\"})")),
        };
        if list.len() > MAX_RULES {
            return Err(bad("", &format!("has more than {MAX_RULES} rules")));
        }
        let mut rules = Vec::new();
        for (i, raw) in list.iter().enumerate() {
            let at = |f: &str| format!("[{i}]{f}");
            let Value::Object(obj) = raw else {
                return Err(bad(&at(""), "must be an object with repos, keys and mode"));
            };
            if let Some(k) = obj
                .keys()
                .find(|k| !["name", "repos", "keys", "mode"].contains(&k.as_str()))
            {
                // The unknown field's name is the operator's text, not a value: safe to repeat.
                return Err(bad(
                    &at(""),
                    &format!(
                        "unknown field {:?} (expected name, repos, keys, mode)",
                        short(k)
                    ),
                ));
            }
            let name = match obj.get("name") {
                None => format!("{upstream}.verify[{i}]"),
                Some(Value::String(n)) if is_rule_name(n) => n.clone(),
                Some(_) => {
                    return Err(bad(
                        &at(".name"),
                        "must be letters, digits, '.', '_' and '-' (at most 64)",
                    ))
                }
            };
            let repos = strings(obj.get("repos"), MAX_PATTERNS).ok_or_else(|| {
                bad(
                    &at(".repos"),
                    &format!("must be a list of 1 to {MAX_PATTERNS} repository patterns"),
                )
            })?;
            if let Some(p) = repos.iter().find(|p| !is_pattern(p)) {
                return Err(bad(&at(".repos"), &format!("{:?} is not a repository pattern (lowercase name components, '*' within a component, '**' across them)", short(p))));
            }
            let keys = strings(obj.get("keys"), MAX_KEYS)
                .ok_or_else(|| bad(&at(".keys"), &format!("must be a list of 1 to {MAX_KEYS} names of secrets holding PEM public keys")))?;
            if let Some(p) = keys.iter().find_map(|k| secret_name_problem(k)) {
                return Err(bad(&at(".keys"), &format!("an entry {p}")));
            }
            let mode = match obj.get("mode") {
                None => Mode::Enforce,
                Some(Value::String(m)) if m == "enforce" => Mode::Enforce,
                Some(Value::String(m)) if m == "warn" => Mode::Warn,
                Some(_) => return Err(bad(&at(".mode"), "must be \"enforce\" or \"warn\"")),
            };
            rules.push(Rule {
                name,
                repos,
                keys,
                mode,
            });
        }
        Ok(Policy { rules })
    }
}

/// A list of 1 to `max` strings.
fn strings(value: Option<&Value>, max: usize) -> Option<Vec<String>> {
    let list = value?.as_array()?;
    if list.is_empty() || list.len() > max {
        return None;
    }
    list.iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// The start of a value as an error may show it (a pattern or field name, never a key).
fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

fn is_rule_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Repository name characters (lowercase, as distribution allows), `/` between components and
/// `*` as the wildcard; no empty component.
fn is_pattern(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 255
        && p.split('/').all(|c| !c.is_empty())
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/*".contains(&b))
}

/// Whether `repo` matches `pattern`: `*` stands for any run of characters within one path
/// component, `**` for any run including `/` (`myorg/*` covers `myorg/app` but not
/// `myorg/team/app`; `myorg/**` covers both).
pub fn matches(pattern: &str, repo: &str) -> bool {
    glob(pattern.as_bytes(), repo.as_bytes())
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        [b'*', rest @ ..] => {
            let within = s.iter().position(|&b| b == b'/').unwrap_or(s.len());
            (0..=within).any(|i| glob(rest, &s[i..]))
        }
        [c, rest @ ..] => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[rstest]
    #[case("myorg/*", "myorg/app", true)]
    #[case("myorg/*", "myorg/team/app", false)]
    #[case("myorg/**", "myorg/team/app", true)]
    #[case("myorg/**", "myorg", false)]
    #[case("myorg/*", "myorgx/app", false)]
    #[case("library/alpine", "library/alpine", true)]
    #[case("library/alpine", "library/alpine2", false)]
    #[case("*/app", "team/app", true)]
    #[case("app-*", "app-web", true)]
    #[case("app-*", "app", false)]
    #[case("**", "a/b/c", true)]
    fn patterns_match(#[case] p: &str, #[case] repo: &str, #[case] want: bool) {
        assert_eq!(matches(p, repo), want, "{p} vs {repo}");
    }

    #[test]
    fn rules_parse_with_defaults_and_the_first_match_applies() {
        let v = json!([
            {"repos": ["myorg/*"], "keys": ["COSIGN_KEY_MYORG"], "mode": "enforce"},
            {"name": "vendors", "repos": ["vendor/**", "myorg/*"], "keys": ["K1", "K2"], "mode": "warn"},
            {"repos": ["other"], "keys": ["K1"]}
        ]);
        let p = Policy::parse("docker.io", Some(&v)).unwrap();
        assert_eq!(p.rules.len(), 3);
        assert_eq!(p.rules[0].name, "docker.io.verify[0]");
        assert_eq!(p.rules[1].name, "vendors");
        assert_eq!(p.rules[1].mode, Mode::Warn);
        assert_eq!(p.rules[2].mode, Mode::Enforce);
        assert_eq!(p.rule_for("myorg/app").unwrap().name, "docker.io.verify[0]");
        assert_eq!(p.rule_for("vendor/x/y").unwrap().name, "vendors");
        assert!(p.rule_for("library/alpine").is_none());
        assert_eq!(p.key_names().count(), 4);
        assert_eq!(Policy::parse("x", None).unwrap(), Policy::default());
        assert_eq!(
            Policy::parse("x", Some(&Value::Null)).unwrap(),
            Policy::default()
        );
    }

    const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----";

    /// Bad rules, each with the field the error must name and a piece of its problem.
    #[rstest]
    #[case(json!({"repos": ["a"]}), "verify", "must be a list")]
    #[case(json!(["x"]), "verify[0]", "must be an object")]
    #[case(json!([{"repos": ["a"], "keys": ["K"], "extra": 1}]), "verify[0]", "unknown field")]
    #[case(json!([{"keys": ["K"]}]), "verify[0].repos", "repository patterns")]
    #[case(json!([{"repos": [], "keys": ["K"]}]), "verify[0].repos", "1 to")]
    #[case(json!([{"repos": ["MyOrg/*"], "keys": ["K"]}]), "verify[0].repos", "not a repository pattern")]
    #[case(json!([{"repos": ["a//b"], "keys": ["K"]}]), "verify[0].repos", "not a repository pattern")]
    #[case(json!([{"repos": ["a"]}]), "verify[0].keys", "PEM public keys")]
    #[case(json!([{"repos": ["a"], "keys": "K"}]), "verify[0].keys", "PEM public keys")]
    #[case(json!([{"repos": ["a"], "keys": [PEM]}]), "verify[0].keys", "not the value itself")]
    #[case(json!([{"repos": ["a"], "keys": ["ADMIN_TOKEN"]}]), "verify[0].keys", "mirror's own")]
    #[case(json!([{"repos": ["a"], "keys": ["K"], "mode": "audit"}]), "verify[0].mode", "enforce")]
    #[case(json!([{"repos": ["a"], "keys": ["K"], "name": "a b"}]), "verify[0].name", "letters")]
    fn bad_rules_are_refused_naming_the_field(
        #[case] v: Value,
        #[case] field: &str,
        #[case] problem: &str,
    ) {
        let e = Policy::parse("hub", Some(&v)).unwrap_err();
        assert_eq!(e.field, format!("UPSTREAMS.hub.{field}"));
        assert!(e.problem.contains(problem), "{}", e.problem);
        assert!(
            !e.problem.contains("MFkw"),
            "never repeats a key: {}",
            e.problem
        );
    }
}
