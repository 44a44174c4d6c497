//! The upstream table: parsed from the `UPSTREAMS` variable (a JSON object, or wrangler.toml's
//! `[vars.UPSTREAMS]` table), validated, with errors that name the bad field. When the variable is
//! absent the built-in table of public registries applies.

use std::collections::BTreeMap;

pub use crate::duration::parse_duration;
use crate::policy::Ttls;
use crate::reference::{RepoName, Tag, DOCKER_HUB};

/// Default bound on waiting for an upstream's response headers.
pub const DEFAULT_TIMEOUT_MS: u32 = 30_000;
const TIMEOUT_RANGE_MS: (u32, u32) = (100, 600_000);

/// One upstream registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The table key, e.g. `docker.io`.
    pub name: String,
    /// Registry origin, e.g. `https://registry-1.docker.io` (no trailing slash).
    pub registry: String,
    /// Mirror host names that route to this upstream (`docker.mirror.example.com`, or `host:port`).
    pub hosts: Vec<String>,
    /// First path components that select this upstream (`ghcr.io` in `/v2/ghcr.io/owner/img/...`).
    pub prefixes: Vec<String>,
    /// Names containerd sends as `?ns=` for this upstream.
    pub ns: Vec<String>,
    /// Single-component names get Docker Hub's `library/`.
    pub library: bool,
    /// Cache lifetimes.
    pub ttls: Ttls,
    /// Extra request headers for this upstream's own origin: (header name, name of the secret that
    /// holds its value), e.g. Cloudflare Access service-token headers for a registry behind a tunnel.
    pub headers: Vec<(String, String)>,
    /// Name of the secret holding the operator's `user:password` (or token) for this upstream.
    pub credentials: Option<String>,
    /// Token realms (origins) besides the registry's own that may receive credentials: the
    /// operator's and clients' logins go nowhere else.
    pub realms: Vec<String>,
    /// Whether clients' own logins are passed on to this upstream; `None`: only for the default
    /// upstream (see `Config::takes_client_logins`).
    pub client_logins: Option<bool>,
    /// Signature policy: repositories whose manifests need a valid cosign signature.
    pub verify: crate::cosign::Policy,
}

/// The validated mirror configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub upstreams: Vec<Upstream>,
    /// Index into `upstreams` of the upstream for requests nothing else matches.
    pub default: Option<usize>,
    pub upstream_timeout_ms: u32,
    /// Images the scheduled handler keeps warm, as pulled through the mirror (`ghcr.io/o/i:tag`).
    pub prewarm: Vec<(RepoName, Tag)>,
    /// Upstream requests one scheduled run may make.
    pub prewarm_budget: u32,
    /// Networks that may use the mirror (empty: everyone).
    pub allow: Vec<crate::ratelimit::Cidr>,
    /// Networks never rate-limited (and always allowed).
    pub trusted: Vec<crate::ratelimit::Cidr>,
    /// Pulls per client per window; `None` when off.
    pub rate_limit: Option<crate::ratelimit::Limit>,
    /// Secrets the admin API's stored upstreams may name (`UPSTREAM_SECRETS`); the static table
    /// may name any secret but the mirror's own.
    pub upstream_secrets: Vec<String>,
    /// What the scheduled run keeps the store within (`STORE_MAX_BYTES`, `STORE_MAX_IDLE_DAYS`).
    pub store_budget: crate::stats::inventory::Budget,
    /// Manifest bytes each isolate keeps in memory (`MANIFEST_MEMORY`; 0: none).
    pub manifest_memory: u64,
    /// How a blob fetched on a miss reaches the store (`BLOB_FILL`).
    pub blob_fill: crate::ports::BlobFill,
}

/// Upstream requests a scheduled run makes at most by default: under the free plan's 50 subrequests.
pub const DEFAULT_PREWARM_BUDGET: u32 = 40;

/// A configuration error that names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub problem: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

fn err(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// The variables the configuration is read from, in the order of `Vars::from_values`.
pub const VAR_NAMES: [&str; 13] = [
    "UPSTREAMS",
    "DEFAULT_UPSTREAM",
    "UPSTREAM_TIMEOUT_MS",
    "PREWARM",
    "PREWARM_BUDGET",
    "ALLOW_CIDRS",
    "TRUSTED_CIDRS",
    "RATE_LIMIT",
    "UPSTREAM_SECRETS",
    "STORE_MAX_BYTES",
    "STORE_MAX_IDLE_DAYS",
    "MANIFEST_MEMORY",
    "BLOB_FILL",
];

impl<'a> Vars<'a> {
    /// The variables from their values, in `VAR_NAMES` order.
    pub fn from_values(v: &'a [Option<String>; 13]) -> Vars<'a> {
        Vars {
            upstreams: v[0].as_deref(),
            default_upstream: v[1].as_deref(),
            upstream_timeout_ms: v[2].as_deref(),
            prewarm: v[3].as_deref(),
            prewarm_budget: v[4].as_deref(),
            allow_cidrs: v[5].as_deref(),
            trusted_cidrs: v[6].as_deref(),
            rate_limit: v[7].as_deref(),
            upstream_secrets: v[8].as_deref(),
            store_max_bytes: v[9].as_deref(),
            store_max_idle_days: v[10].as_deref(),
            manifest_memory: v[11].as_deref(),
            blob_fill: v[12].as_deref(),
        }
    }
}

/// The variables the configuration is read from, as the platform found them.
#[derive(Debug, Default, Clone)]
pub struct Vars<'a> {
    /// `UPSTREAMS` as JSON text.
    pub upstreams: Option<&'a str>,
    pub default_upstream: Option<&'a str>,
    pub upstream_timeout_ms: Option<&'a str>,
    /// `PREWARM` as JSON text: a list of image references.
    pub prewarm: Option<&'a str>,
    pub prewarm_budget: Option<&'a str>,
    pub allow_cidrs: Option<&'a str>,
    pub trusted_cidrs: Option<&'a str>,
    pub rate_limit: Option<&'a str>,
    /// `UPSTREAM_SECRETS`: a JSON list or comma-separated names.
    pub upstream_secrets: Option<&'a str>,
    /// Bytes the inventoried store may hold (a whole number, or with KiB/MiB/GiB/TiB).
    pub store_max_bytes: Option<&'a str>,
    /// Days an object may go unread before the scheduled run evicts it.
    pub store_max_idle_days: Option<&'a str>,
    /// Manifest bytes an isolate keeps in memory (with KiB/MiB; `0`: none).
    pub manifest_memory: Option<&'a str>,
    /// `with-answer` or `after-answer`.
    pub blob_fill: Option<&'a str>,
}

/// Names of the mirror's own secrets, other variables and bindings (besides `VAR_NAMES`): none is
/// ever an upstream's secret (the admin API could otherwise send `ADMIN_TOKEN` to a registry of
/// their choosing).
pub const MIRROR_OWN_NAMES: &[&str] = &[
    "ADMIN_TOKEN",
    "ADMIN_TOKEN_NAME",
    "MIRROR_CREDENTIALS",
    "CONFIG_RELOAD_SECS",
    "CONFIG",
    "RATELIMIT",
    "BLOBS",
    "STATS",
];

/// Whether `name` is one of the mirror's own variables, secrets or bindings.
pub fn is_mirror_own(name: &str) -> bool {
    VAR_NAMES.contains(&name) || MIRROR_OWN_NAMES.contains(&name)
}

/// Public registries the mirror knows out of the box: (name, registry, library/, token realms on
/// another origin). The others' realms are on their own origin.
const BUILT_IN: &[(&str, &str, bool, &[&str])] = &[
    (
        DOCKER_HUB,
        "https://registry-1.docker.io",
        true,
        &["https://auth.docker.io"],
    ),
    ("ghcr.io", "https://ghcr.io", false, &[]),
    ("quay.io", "https://quay.io", false, &[]),
    ("gcr.io", "https://gcr.io", false, &[]),
    ("registry.k8s.io", "https://registry.k8s.io", false, &[]),
    ("public.ecr.aws", "https://public.ecr.aws", false, &[]),
    (
        "nvcr.io",
        "https://nvcr.io",
        false,
        &["https://authn.nvidia.com"],
    ),
];

impl Config {
    /// The built-in table: each registry answers to its own name as path prefix and as `ns=`.
    pub fn built_in() -> Config {
        let upstreams = BUILT_IN
            .iter()
            .map(|(name, registry, library, realms)| Upstream {
                name: name.to_string(),
                registry: registry.to_string(),
                hosts: vec![],
                prefixes: vec![name.to_string()],
                ns: vec![name.to_string()],
                library: *library,
                ttls: Ttls::default(),
                headers: vec![],
                credentials: None,
                realms: realms.iter().map(|r| r.to_string()).collect(),
                client_logins: None,
                verify: Default::default(),
            })
            .collect();
        Config {
            upstreams,
            default: Some(0),
            upstream_timeout_ms: DEFAULT_TIMEOUT_MS,
            prewarm: vec![],
            prewarm_budget: DEFAULT_PREWARM_BUDGET,
            allow: vec![],
            trusted: vec![],
            rate_limit: None,
            upstream_secrets: vec![],
            store_budget: Default::default(),
            manifest_memory: crate::mirror::memo::DEFAULT_CAPACITY,
            blob_fill: Default::default(),
        }
    }

    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let mut config = match vars.upstreams.map(str::trim).filter(|s| !s.is_empty()) {
            None => Config::built_in(),
            Some(text) => Config {
                upstreams: parse_table(text)?,
                default: None,
                upstream_timeout_ms: 0,
                prewarm: vec![],
                prewarm_budget: 0,
                allow: vec![],
                trusted: vec![],
                rate_limit: None,
                upstream_secrets: vec![],
                store_budget: Default::default(),
                manifest_memory: 0,
                blob_fill: Default::default(),
            },
        };
        config.default = match vars.default_upstream.map(str::trim) {
            Some("") => None,
            Some(name) => Some(
                config
                    .upstreams
                    .iter()
                    .position(|u| u.name == name)
                    .ok_or_else(|| {
                        err(
                            "DEFAULT_UPSTREAM",
                            format!("{name:?} is not an upstream in UPSTREAMS"),
                        )
                    })?,
            ),
            None => config.upstreams.iter().position(|u| u.name == DOCKER_HUB),
        };
        let (lo, hi) = TIMEOUT_RANGE_MS;
        config.upstream_timeout_ms = number(
            vars.upstream_timeout_ms,
            DEFAULT_TIMEOUT_MS,
            lo..=hi,
            "UPSTREAM_TIMEOUT_MS",
            &format!("must be a whole number of milliseconds from {lo} to {hi}"),
        )?;
        config.prewarm = parse_prewarm(vars.prewarm)?;
        config.store_budget = crate::stats::inventory::Budget {
            max_bytes: parse_bytes(vars.store_max_bytes)?,
            max_idle_secs: number(
                vars.store_max_idle_days,
                0,
                1..=3650,
                "STORE_MAX_IDLE_DAYS",
                "must be a whole number of days from 1 to 3650",
            )
            .map(|d| (d > 0).then_some(u64::from(d) * 86_400))?,
        };
        config.manifest_memory = parse_memory(vars.manifest_memory)?;
        config.blob_fill = parse_blob_fill(vars.blob_fill)?;
        config.prewarm_budget = number(
            vars.prewarm_budget,
            DEFAULT_PREWARM_BUDGET,
            1..=1000,
            "PREWARM_BUDGET",
            "must be a whole number of upstream requests from 1 to 1000",
        )?;
        let cidrs = |text: Option<&str>, field: &str| match text
            .map(str::trim)
            .filter(|t| !t.is_empty() && *t != "[]")
        {
            None => Ok(vec![]),
            Some(t) => crate::ratelimit::parse_cidrs(t).map_err(|p| err(field, p)),
        };
        config.allow = cidrs(vars.allow_cidrs, "ALLOW_CIDRS")?;
        config.trusted = cidrs(vars.trusted_cidrs, "TRUSTED_CIDRS")?;
        config.rate_limit = match vars.rate_limit.map(str::trim) {
            None | Some("") => Some(crate::ratelimit::DEFAULT_LIMIT),
            Some("off") => None,
            Some(t) => Some(crate::ratelimit::Limit::parse(t).ok_or_else(|| {
                err(
                    "RATE_LIMIT",
                    "must be pulls/window like \"100/6h\", or \"off\"",
                )
            })?),
        };
        config.upstream_secrets = parse_upstream_secrets(vars.upstream_secrets)?;
        config.check_prewarm_routes()?;
        Ok(config)
    }

    /// Every `PREWARM` image must route to an upstream of this table, as a client's pull would:
    /// refused when the configuration is read, not when the cron first runs.
    fn check_prewarm_routes(&self) -> Result<(), ConfigError> {
        for (i, (name, tag)) in self.prewarm.iter().enumerate() {
            if let Err(e) = crate::select::select(self, "prewarm.invalid", name, None) {
                return Err(err(
                    format!("PREWARM[{i}]"),
                    format!(
                        "\"{}:{}\" routes to no upstream ({})",
                        name.as_str(),
                        tag.as_str(),
                        e.message
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether clients' own logins may go to `upstream` (by default, to the default upstream only:
    /// a Docker Hub password must not reach ghcr.io's realm).
    pub fn takes_client_logins(&self, upstream: &Upstream) -> bool {
        upstream.client_logins.unwrap_or_else(|| {
            self.default
                .and_then(|i| self.get(i))
                .is_some_and(|d| d.name == upstream.name)
        })
    }

    /// This table with stored overrides applied: `{"name": {...upstream...} | null}`, where `null`
    /// removes an upstream. Overrides apply in name order; one that is invalid, alone or beside the
    /// others (a prefix already taken), is skipped;
    /// the reasons come back for the log. The mirror never goes down for a bad stored entry.
    pub fn with_overrides(&self, overrides: &str) -> (Config, Vec<ConfigError>) {
        let mut out = self.clone();
        let mut skipped = Vec::new();
        let map: BTreeMap<String, serde_json::Value> = match serde_json::from_str(overrides) {
            Ok(m) => m,
            Err(e) => {
                return (
                    out,
                    vec![err(
                        "CONFIG",
                        format!("stored upstream overrides are not a JSON object ({e})"),
                    )],
                )
            }
        };
        let default_name = self
            .default
            .and_then(|i| self.get(i))
            .map(|u| u.name.clone());
        for (name, value) in map {
            let before = out.upstreams.clone();
            out.upstreams.retain(|u| u.name != name);
            if !value.is_null() {
                let parsed = parse_table(&serde_json::json!({ name.clone(): value }).to_string())
                    .and_then(|one| self.only_designated_secrets(one));
                match parsed {
                    Ok(mut one) => out.upstreams.append(&mut one),
                    Err(e) => {
                        out.upstreams = before;
                        skipped.push(e);
                        continue;
                    }
                }
            }
            if let Err(e) = check_all_unique(&out.upstreams) {
                out.upstreams = before;
                skipped.push(e);
            }
        }
        out.upstreams.sort_by(|a, b| a.name.cmp(&b.name));
        out.default = default_name.and_then(|n| out.upstreams.iter().position(|u| u.name == n));
        (out, skipped)
    }

    pub fn get(&self, index: usize) -> Option<&Upstream> {
        self.upstreams.get(index)
    }

    /// Stored upstreams (the admin API's) may name only the secrets listed in `UPSTREAM_SECRETS`.
    fn only_designated_secrets(
        &self,
        upstreams: Vec<Upstream>,
    ) -> Result<Vec<Upstream>, ConfigError> {
        for u in &upstreams {
            let named = u
                .credentials
                .iter()
                .map(|c| ("credentials", c))
                .chain(u.headers.iter().map(|(_, s)| ("headers", s)))
                .chain(u.verify.key_names().map(|s| ("verify", s)));
            for (field, secret) in named {
                if !self.upstream_secrets.contains(secret) {
                    return Err(err(
                        format!("UPSTREAMS.{}.{field}", u.name),
                        format!("secret {secret} is not listed in UPSTREAM_SECRETS (the secrets the admin API may name)"),
                    ));
                }
            }
        }
        Ok(upstreams)
    }
}

mod table;
mod values;

pub(crate) use table::secret_name_problem;
use table::{check_all_unique, parse_table};
use values::{
    number, parse_blob_fill, parse_bytes, parse_memory, parse_prewarm, parse_upstream_secrets,
};

#[cfg(test)]
mod tests;
