//! The landing page: what this mirror serves and copy-paste client configuration, filled in with the
//! host the page was requested on. Self-contained HTML (no external assets), escaped throughout.

use crate::config::{Config, Upstream};

fn esc(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The registry's host for tools that want a bare host (podman's `location`).
fn bare(registry: &str) -> &str {
    registry
        .split_once("://")
        .map_or(registry, |(_, rest)| rest)
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "—".to_string()
    } else {
        items
            .iter()
            .map(|i| format!("<code>{}</code>", esc(i)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn hosts_toml(origin: &str, u: &Upstream) -> Option<String> {
    let server = &u.registry;
    if let Some(ns) = u.ns.first() {
        // containerd adds ?ns=<registry>, which routes it here.
        return Some(format!(
            "# /etc/containerd/certs.d/{ns}/hosts.toml\nserver = \"{server}\"\n[host.\"{origin}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        ));
    }
    let prefix = u.prefixes.first()?;
    Some(format!(
        "# /etc/containerd/certs.d/{}/hosts.toml\nserver = \"{server}\"\n[host.\"{origin}/v2/{prefix}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n",
        bare(server)
    ))
}

fn registries_conf(host: &str, insecure: bool, config: &Config) -> String {
    let mut out = String::new();
    for (i, u) in config.upstreams.iter().enumerate() {
        let mirror = if Some(i) == config.default {
            host.to_string()
        } else if let Some(p) = u.prefixes.first() {
            format!("{host}/{p}")
        } else if let Some(h) = u.hosts.first() {
            // An upstream reached by its own mirror host name.
            h.clone()
        } else {
            continue;
        };
        let prefix =
            u.ns.first()
                .cloned()
                .unwrap_or_else(|| bare(&u.registry).to_string());
        out.push_str(&format!("[[registry]]\nprefix = \"{prefix}\"\nlocation = \"{}\"\n[[registry.mirror]]\nlocation = \"{mirror}\"\n", bare(&u.registry)));
        if insecure {
            out.push_str("insecure = true\n");
        }
        out.push('\n');
    }
    out
}

/// The page for a mirror reached at `origin` (`https://mirror.example.com`) / `host`.
pub fn page(origin: &str, host: &str, config: &Config) -> String {
    let insecure = origin.starts_with("http://");
    let rows: String = config
        .upstreams
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let default = if Some(i) == config.default { " (default)" } else { "" };
            format!(
                "<tr><td><b>{}</b>{default}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&u.name),
                esc(&u.registry),
                list(&u.hosts),
                list(&u.prefixes),
                list(&u.ns)
            )
        })
        .collect();
    let hosts: String = config
        .upstreams
        .iter()
        .filter_map(|u| hosts_toml(origin, u))
        .collect::<Vec<_>>()
        .join("\n");
    let mut direct = String::new();
    if config.default.is_some() {
        direct.push_str(&format!("docker pull {host}/library/alpine:latest\n"));
    }
    for u in &config.upstreams {
        if let Some(p) = u.prefixes.first() {
            direct.push_str(&format!("docker pull {host}/{p}/OWNER/IMAGE:TAG\n"));
        }
    }
    let daemon = format!(
        "{{\n  \"registry-mirrors\": [\"{origin}\"]{}\n}}",
        if insecure {
            format!(",\n  \"insecure-registries\": [\"{host}\"]")
        } else {
            String::new()
        }
    );
    let k8s = "# /etc/containerd/config.toml on every node (containerd 1.x), then restart containerd\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n# and the hosts.toml files above under /etc/containerd/certs.d/";
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgemirror · {h}</title>
<style>
body{{font:15px/1.5 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}}
main{{max-width:60rem;margin:0 auto;padding:1.5rem}}
h1{{margin:.2rem 0}} h2{{margin-top:2rem;border-bottom:1px solid #dde1e6;padding-bottom:.2rem}}
pre{{background:#0f1720;color:#e6edf3;padding:1rem;border-radius:6px;overflow-x:auto}}
table{{border-collapse:collapse;width:100%;background:#fff}} td,th{{border:1px solid #dde1e6;padding:.35rem .5rem;text-align:left;vertical-align:top}}
code{{font-family:ui-monospace,monospace}} .muted{{color:#5b6675}}
</style></head><body><main>
<h1>edgemirror</h1>
<p>A Docker/OCI registry pull-through mirror at <code id="mirror-host">{h}</code>. Registry API: <code>{o}/v2/</code> · health: <a href="/healthz">/healthz</a></p>
<h2>Upstreams</h2>
<table id="upstreams"><tr><th>name</th><th>registry</th><th>host names</th><th>path prefixes</th><th>containerd ns</th></tr>{rows}</table>
<h2>Docker</h2>
<p class="muted">/etc/docker/daemon.json, then restart dockerd. <code>registry-mirrors</code> applies to Docker Hub images.</p>
<pre id="daemon-json">{daemon}</pre>
<h2>containerd</h2>
<p class="muted">One hosts.toml per registry (<code>ctr images pull --hosts-dir /etc/containerd/certs.d …</code>, nerdctl, and the CRI plugin read them).</p>
<pre id="hosts-toml">{hosts}</pre>
<h2>Kubernetes nodes</h2>
<pre id="k8s">{k8s}</pre>
<h2>podman, CRI-O, buildah, skopeo</h2>
<p class="muted">/etc/containers/registries.conf</p>
<pre id="registries-conf">{podman}</pre>
<h2>Direct pulls</h2>
<pre id="direct">{direct}</pre>
</main></body></html>
"#,
        h = esc(host),
        o = esc(origin),
        rows = rows,
        daemon = esc(&daemon),
        hosts = esc(&hosts),
        k8s = esc(k8s),
        podman = esc(&registries_conf(host, insecure, config)),
        direct = esc(&direct),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vars;

    #[test]
    fn the_page_is_filled_in_with_the_mirror_host_for_every_client() {
        let c = Config::from_vars(&Vars::default()).unwrap();
        let html = page("https://mirror.example.com", "mirror.example.com", &c);
        assert!(html
            .contains(r#"&quot;registry-mirrors&quot;: [&quot;https://mirror.example.com&quot;]"#));
        assert!(html.contains("# /etc/containerd/certs.d/docker.io/hosts.toml"));
        assert!(html.contains(r#"[host.&quot;https://mirror.example.com&quot;]"#));
        assert!(html.contains("location = &quot;mirror.example.com/ghcr.io&quot;"));
        assert!(html.contains("docker pull mirror.example.com/ghcr.io/OWNER/IMAGE:TAG"));
        assert!(html.contains("config_path"));
        assert!(!html.contains("insecure"), "https needs no insecure flags");
        assert!(
            !html.contains("src=\"http") && !html.contains("href=\"http"),
            "no external assets"
        );
    }

    #[test]
    fn prefix_only_upstreams_get_override_path_and_http_gets_insecure() {
        let table = r#"{"docker.io": {"registry": "http://127.0.0.1:15100", "ns": ["docker.io"], "library": true},
                        "quay": {"registry": "https://quay.io", "prefixes": ["quay.io"]}}"#;
        let c = Config::from_vars(&Vars {
            upstreams: Some(table),
            ..Default::default()
        })
        .unwrap();
        let html = page("http://127.0.0.1:8787", "127.0.0.1:8787", &c);
        assert!(html.contains("[host.&quot;http://127.0.0.1:8787/v2/quay.io&quot;]"));
        assert!(html.contains("override_path = true"));
        assert!(html.contains("insecure = true"));
        assert!(html.contains("&quot;insecure-registries&quot;: [&quot;127.0.0.1:8787&quot;]"));
    }

    /// podman's registries.conf for every kind of upstream: the default (the mirror itself), one
    /// with a path prefix (`mirror/prefix`), one reached by its own host name.
    #[test]
    fn registries_conf_covers_default_prefix_and_host_upstreams() {
        let table = r#"{"docker.io": {"registry": "https://registry-1.docker.io", "ns": ["docker.io"], "library": true},
                        "ghcr.io": {"registry": "https://ghcr.io", "prefixes": ["ghcr.io"], "ns": ["ghcr.io"]},
                        "quay": {"registry": "https://quay.io", "hosts": ["quay.mirror.example"]}}"#;
        let c = Config::from_vars(&Vars {
            upstreams: Some(table),
            ..Default::default()
        })
        .unwrap();
        let conf = registries_conf("mirror.example", false, &c);
        for want in [
            "prefix = \"docker.io\"\nlocation = \"registry-1.docker.io\"\n[[registry.mirror]]\nlocation = \"mirror.example\"\n",
            "prefix = \"ghcr.io\"\nlocation = \"ghcr.io\"\n[[registry.mirror]]\nlocation = \"mirror.example/ghcr.io\"\n",
            "prefix = \"quay.io\"\nlocation = \"quay.io\"\n[[registry.mirror]]\nlocation = \"quay.mirror.example\"\n",
        ] {
            assert!(conf.contains(want), "{want} in\n{conf}");
        }
    }

    #[test]
    fn hostile_host_names_are_escaped() {
        let c = Config::from_vars(&Vars::default()).unwrap();
        let html = page("https://x", "<script>alert(1)</script>", &c);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
    }
}
