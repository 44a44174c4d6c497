//! The upstream table as the operator writes it (`UPSTREAMS`, or a stored override): parsed,
//! checked field by field, with errors that name the field and never repeat a value that may be a
//! secret.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{err, is_mirror_own, parse_duration, ConfigError, Upstream, BUILT_IN};
use crate::policy::Ttls;
use crate::reference::is_path_component;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    registry: String,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    ns: Vec<String>,
    #[serde(default)]
    library: bool,
    tag_ttl: Option<serde_json::Value>,
    manifest_ttl: Option<serde_json::Value>,
    blob_ttl: Option<serde_json::Value>,
    stale_if_error: Option<serde_json::Value>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    credentials: Option<String>,
    #[serde(default)]
    realms: Vec<String>,
    client_logins: Option<bool>,
    /// Parsed by `cosign::Policy::parse`, whose errors never repeat a value.
    verify: Option<serde_json::Value>,
}

/// Headers the mirror sets itself, or that would carry someone else's credentials.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "accept",
    "accept-encoding",
    "range",
    "user-agent",
    "content-length",
    "connection",
    "transfer-encoding",
    "cookie",
];

/// What is wrong with a secret's name, without repeating it: it may be the secret itself pasted
/// in by mistake, and configuration errors are shown on `/healthz` and in every 503.
pub(crate) fn secret_name_problem(name: &str) -> Option<&'static str> {
    let shaped = name.len() <= 64
        && name.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !shaped {
        return Some("must be the name of a secret (capital letters, digits and _, like HUB_CREDS), not the value itself");
    }
    is_mirror_own(name)
        .then_some("names one of the mirror's own variables or secrets, which never go upstream")
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn check_headers(headers: BTreeMap<String, String>) -> Result<Vec<(String, String)>, String> {
    headers
        .into_iter()
        .map(|(name, secret)| {
            if !is_header_name(&name) {
                return Err("a header name is not a valid HTTP header name".into());
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(format!("{name:?} is not a header the mirror can send"));
            }
            if let Some(p) = secret_name_problem(&secret) {
                return Err(format!("the value of {name:?} {p}"));
            }
            Ok((name.to_ascii_lowercase(), secret))
        })
        .collect()
}

/// A value as it may be shown in an error: a URL's user information hidden.
fn shown(value: &str) -> String {
    match (value.find("://"), value.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &value[..scheme], &value[at..])
        }
        (None, Some(at)) => format!("***{}", &value[at..]),
        _ => value.to_string(),
    }
}

pub(super) fn parse_table(text: &str) -> Result<Vec<Upstream>, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let raw: BTreeMap<String, RawUpstream> =
        serde_path_to_error::deserialize(de).map_err(table_error)?;
    if raw.is_empty() {
        return Err(err("UPSTREAMS", "names no upstream"));
    }
    let upstreams = raw
        .into_iter()
        .map(|(name, raw)| parse_upstream(name, raw))
        .collect::<Result<Vec<_>, _>>()?;
    check_all_unique(&upstreams)?;
    Ok(upstreams)
}

/// The upstream's cache lifetimes, defaults for those not given.
fn parse_ttls(raw: &RawUpstream, field: &dyn Fn(&str) -> String) -> Result<Ttls, ConfigError> {
    let mut ttls = Ttls::default();
    for (key, value, slot) in [
        ("tag_ttl", &raw.tag_ttl, &mut ttls.tag),
        ("manifest_ttl", &raw.manifest_ttl, &mut ttls.manifest),
        ("blob_ttl", &raw.blob_ttl, &mut ttls.blob),
        (
            "stale_if_error",
            &raw.stale_if_error,
            &mut ttls.stale_if_error,
        ),
    ] {
        if let Some(v) = value {
            *slot = parse_duration(v).map_err(|p| err(field(key), p))?;
        }
    }
    Ok(ttls)
}

/// serde's error for the table, naming the field; serde quotes the value, so not for the fields
/// that name secrets or hold a URL.
fn table_error(e: serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
    let path = e.path().to_string();
    let field = if path == "." {
        "UPSTREAMS".to_string()
    } else {
        format!("UPSTREAMS.{path}")
    };
    let segments: Vec<&str> = path.split('.').collect();
    let problem = match segments.get(1).copied() {
        Some("credentials") => {
            "must be the name of a secret (a string), not the value itself".to_string()
        }
        Some("headers") => {
            "must map header names to names of secrets ({\"X-Header\": \"SECRET_NAME\"})"
                .to_string()
        }
        Some("registry") => "must be an http:// or https:// URL (a string)".to_string(),
        _ => {
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                // Only JSON the operator typed can be malformed (a wrangler.toml table arrives as
                // generated JSON), so its position is theirs.
                return err("UPSTREAMS", format!("is not valid JSON ({inner})"));
            }
            // Anything else is named by its field; a position in the JSON would point into
            // text the operator may never have seen (a wrangler.toml table, stringified).
            let text = inner.to_string();
            match text.rfind(" at line ") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
    };
    let field = match segments.get(1) {
        Some(&"headers") => format!("UPSTREAMS.{}.headers", segments[0]),
        _ => field,
    };
    err(field, problem)
}

/// One upstream of the table, checked field by field.
fn parse_upstream(name: String, raw: RawUpstream) -> Result<Upstream, ConfigError> {
    let field = |f: &str| format!("UPSTREAMS.{name}.{f}");
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(err(
            format!("UPSTREAMS.{name:?}"),
            "an upstream name must be non-empty printable ASCII",
        ));
    }
    let registry = normalise_registry(&raw.registry).map_err(|p| err(field("registry"), p))?;
    let ttls = parse_ttls(&raw, &field)?;
    let hosts = lowercase_all(raw.hosts);
    if let Some(h) = hosts.iter().find(|h| !is_host(h)) {
        return Err(err(
            field("hosts"),
            format!("{h:?} is not a host name (or host:port)"),
        ));
    }
    let prefixes = lowercase_all(raw.prefixes);
    if let Some(p) = prefixes.iter().find(|p| !is_path_component(p)) {
        return Err(err(
            field("prefixes"),
            format!("{p:?} is not a single repository path component (like ghcr.io or ghcr)"),
        ));
    }
    if let Some(n) = raw
        .ns
        .iter()
        .find(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(err(field("ns"), format!("{n:?} is not a registry name")));
    }
    let headers = check_headers(raw.headers).map_err(|p| err(field("headers"), p))?;
    if let Some(p) = raw.credentials.as_deref().and_then(secret_name_problem) {
        return Err(err(field("credentials"), p));
    }
    let mut realms = raw
        .realms
        .iter()
        .map(|r| normalise_registry(r).map_err(|p| err(field("realms"), p)))
        .collect::<Result<Vec<_>, _>>()?;
    // A known registry keeps its known realms (Docker Hub's auth service) unless told otherwise.
    if raw.realms.is_empty() {
        if let Some((.., known)) = BUILT_IN.iter().find(|(_, r, ..)| *r == registry) {
            realms = known.iter().map(|r| r.to_string()).collect();
        }
    }
    if registry.starts_with("https:") && realms.iter().any(|r| r.starts_with("http:")) {
        return Err(err(
            field("realms"),
            "an https:// registry's credentials never go to a plain http:// realm",
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(err(
            format!("UPSTREAMS.{name:?}"),
            "an upstream name is letters, digits, '.', '_' and '-'",
        ));
    }
    let verify = crate::cosign::Policy::parse(&name, raw.verify.as_ref())?;
    Ok(Upstream {
        name,
        registry,
        hosts,
        prefixes,
        ns: raw.ns,
        library: raw.library,
        ttls,
        headers,
        credentials: raw.credentials,
        realms,
        client_logins: raw.client_logins,
        verify,
    })
}

pub(super) fn check_all_unique(upstreams: &[Upstream]) -> Result<(), ConfigError> {
    check_unique(upstreams, "hosts", |u| &u.hosts)?;
    check_unique(upstreams, "prefixes", |u| &u.prefixes)?;
    check_unique(upstreams, "ns", |u| &u.ns)
}

fn lowercase_all(v: Vec<String>) -> Vec<String> {
    v.into_iter().map(|s| s.to_ascii_lowercase()).collect()
}

/// A value may route to one upstream only.
fn check_unique(
    ups: &[Upstream],
    what: &str,
    values: impl Fn(&Upstream) -> &Vec<String>,
) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for u in ups {
        for v in values(u) {
            if let Some(other) = seen.insert(v, &u.name) {
                return Err(err(
                    format!("UPSTREAMS.{}.{what}", u.name),
                    format!("{v:?} is already used by upstream {other:?}"),
                ));
            }
        }
    }
    Ok(())
}

fn is_host(h: &str) -> bool {
    let (name, port) = match h.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (h, None),
    };
    let name_ok = !name.is_empty()
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    name_ok && port_ok
}

/// `https://host[:port][/]` → `https://host[:port]`; anything else is refused with a reason.
fn normalise_registry(value: &str) -> Result<String, String> {
    // `ghcr.io` or `localhost:5000` (which parses with scheme "localhost"): an origin without
    // its scheme.
    let schemeless = !value.contains("://")
        && url::Url::parse(&format!("https://{value}")).is_ok_and(|u| u.path() == "/");
    if schemeless {
        return Err(format!(
            "{:?} needs a scheme: write \"https://{}\"",
            shown(value),
            shown(value)
        ));
    }
    let url =
        url::Url::parse(value).map_err(|e| format!("{:?} is not a URL ({e})", shown(value)))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials (use secrets for upstream credentials)".into());
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{:?} must be an http:// or https:// URL",
            shown(value)
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{:?} must be a bare origin like https://registry.example.com, without path or query",
            shown(value)
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{:?} has no host", shown(value)));
    }
    Ok(url.origin().ascii_serialization())
}
