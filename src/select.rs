//! Which upstream serves a request, and under what name: host name first, then containerd's `?ns=`
//! (the client named the registry), then path prefix, then the default. Only configured upstreams
//! are ever chosen.

use crate::config::{Config, Upstream};
use crate::error::{ErrorCode, OciError};
use crate::reference::{clip, looks_like_registry_host, RepoName};

/// The upstream chosen and the repository name to ask it for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection<'a> {
    pub upstream: &'a Upstream,
    /// The name at the upstream (prefix stripped, `library/` added where configured).
    pub name: RepoName,
    /// How it was chosen, for logs: host, prefix, ns or default.
    pub by: &'static str,
}

fn unknown_registry(what: &str, value: &str) -> OciError {
    OciError::new(
        ErrorCode::NameUnknown,
        format!(
            "{what} {:?} is not an upstream configured on this mirror",
            clip(value)
        ),
    )
}

/// `host` is the request's Host (maybe with a port); `ns` is containerd's `ns` query value.
pub fn select<'a>(
    config: &'a Config,
    host: &str,
    name: &RepoName,
    ns: Option<&str>,
) -> Result<Selection<'a>, OciError> {
    let host = host.to_ascii_lowercase();
    let bare_host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
    if let Some(up) = config
        .upstreams
        .iter()
        .find(|u| u.hosts.iter().any(|h| *h == host || h == bare_host))
    {
        return finish(up, name.clone(), "host");
    }
    if let Some(ns) = ns.filter(|ns| !ns.is_empty()) {
        return match config
            .upstreams
            .iter()
            .find(|u| u.ns.iter().any(|n| n == ns))
        {
            Some(up) => finish(up, name.clone(), "ns"),
            None => Err(unknown_registry("registry (ns)", ns)),
        };
    }
    let first = name.first_component();
    if let Some(up) = config
        .upstreams
        .iter()
        .find(|u| u.prefixes.iter().any(|p| p == first))
    {
        let rest = name
            .as_str()
            .split_once('/')
            .map(|(_, rest)| rest)
            .ok_or_else(|| {
                OciError::new(
                    ErrorCode::NameInvalid,
                    format!(
                        "{:?} names a registry but no repository in it",
                        name.as_str()
                    ),
                )
            })?;
        return finish(up, RepoName::parse(rest)?, "prefix");
    }
    if looks_like_registry_host(first) && name.as_str().contains('/') {
        // `/v2/evil.example.com/x/...`: never guess, never forward to the default.
        return Err(unknown_registry("registry", first));
    }
    match config.default.and_then(|i| config.get(i)) {
        Some(up) => finish(up, name.clone(), "default"),
        None => Err(OciError::new(
            ErrorCode::NameUnknown,
            format!("{:?} matches no upstream host, prefix or ns, and this mirror has no default upstream", name.as_str()),
        )),
    }
}

fn finish<'a>(
    upstream: &'a Upstream,
    name: RepoName,
    by: &'static str,
) -> Result<Selection<'a>, OciError> {
    let name = if upstream.library {
        name.with_library_namespace()?
    } else {
        name
    };
    Ok(Selection { upstream, name, by })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vars;
    use rstest::rstest;

    fn config() -> Config {
        let table = r#"{
            "docker.io": {"registry": "http://127.0.0.1:15100", "prefixes": ["docker.io"], "ns": ["docker.io"], "library": true},
            "ghcr.io": {"registry": "http://127.0.0.1:15000", "hosts": ["ghcr.mirror.test"], "prefixes": ["ghcr.io", "ghcr"], "ns": ["ghcr.io"]}
        }"#;
        Config::from_vars(&Vars {
            upstreams: Some(table),
            ..Default::default()
        })
        .unwrap()
    }

    /// (host, client name, ns, upstream, upstream name, by)
    #[rstest]
    #[case(
        "mirror.test",
        "alpine",
        None,
        "docker.io",
        "library/alpine",
        "default"
    )]
    #[case(
        "mirror.test",
        "library/alpine",
        None,
        "docker.io",
        "library/alpine",
        "default"
    )]
    #[case(
        "mirror.test",
        "bitnami/redis",
        None,
        "docker.io",
        "bitnami/redis",
        "default"
    )]
    #[case(
        "mirror.test",
        "docker.io/alpine",
        None,
        "docker.io",
        "library/alpine",
        "prefix"
    )]
    #[case(
        "mirror.test",
        "ghcr.io/owner/img",
        None,
        "ghcr.io",
        "owner/img",
        "prefix"
    )]
    #[case(
        "mirror.test",
        "ghcr/owner/img",
        None,
        "ghcr.io",
        "owner/img",
        "prefix"
    )]
    #[case("mirror.test", "ghcr.io/img", None, "ghcr.io", "img", "prefix")]
    #[case(
        "mirror.test",
        "owner/img",
        Some("ghcr.io"),
        "ghcr.io",
        "owner/img",
        "ns"
    )]
    #[case(
        "mirror.test",
        "alpine",
        Some("docker.io"),
        "docker.io",
        "library/alpine",
        "ns"
    )]
    #[case("ghcr.mirror.test", "owner/img", None, "ghcr.io", "owner/img", "host")]
    #[case(
        "GHCR.mirror.test:8443",
        "owner/img",
        Some("docker.io"),
        "ghcr.io",
        "owner/img",
        "host"
    )]
    // Host beats prefix: on ghcr's host the whole name is ghcr's.
    #[case(
        "ghcr.mirror.test",
        "docker.io/x",
        None,
        "ghcr.io",
        "docker.io/x",
        "host"
    )]
    // ns beats prefix: containerd named the registry, and the name is that registry's own.
    #[case(
        "mirror.test",
        "ghcr/foo",
        Some("docker.io"),
        "docker.io",
        "ghcr/foo",
        "ns"
    )]
    #[case(
        "mirror.test",
        "google.com/project/img",
        Some("ghcr.io"),
        "ghcr.io",
        "google.com/project/img",
        "ns"
    )]
    fn selects(
        #[case] host: &str,
        #[case] name: &str,
        #[case] ns: Option<&str>,
        #[case] upstream: &str,
        #[case] upstream_name: &str,
        #[case] by: &str,
    ) {
        let c = config();
        let s = select(&c, host, &RepoName::parse(name).unwrap(), ns).unwrap();
        assert_eq!(
            (s.upstream.name.as_str(), s.name.as_str(), s.by),
            (upstream, upstream_name, by)
        );
    }

    /// Requests that must never reach any upstream.
    #[rstest]
    #[case("mirror.test", "quay.io/x/y", None, ErrorCode::NameUnknown)]
    #[case("mirror.test", "evil.example.com/x", None, ErrorCode::NameUnknown)]
    #[case("mirror.test", "localhost/x", None, ErrorCode::NameUnknown)]
    #[case("mirror.test", "alpine", Some("quay.io"), ErrorCode::NameUnknown)]
    #[case(
        "mirror.test",
        "alpine",
        Some("169.254.169.254"),
        ErrorCode::NameUnknown
    )]
    #[case("mirror.test", "ghcr.io", None, ErrorCode::NameInvalid)]
    fn refuses(
        #[case] host: &str,
        #[case] name: &str,
        #[case] ns: Option<&str>,
        #[case] code: ErrorCode,
    ) {
        let c = config();
        let e = select(&c, host, &RepoName::parse(name).unwrap(), ns).unwrap_err();
        assert_eq!(e.code, code, "{e}");
    }

    #[test]
    fn no_default_means_unmatched_names_are_unknown() {
        let mut c = config();
        c.default = None;
        let e = select(&c, "mirror.test", &RepoName::parse("alpine").unwrap(), None).unwrap_err();
        assert_eq!((e.code, e.status), (ErrorCode::NameUnknown, 404));
    }
}
