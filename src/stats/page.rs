//! The stats page: one HTML document, charts drawn server-side as inline SVG, no script and
//! nothing loaded from elsewhere. Every number on it comes from the same `Report` as the JSON.

use std::fmt::Write;

use super::report::{date, Report};
use super::tally::{quantile, Row, BUCKETS_MS, NBUCKETS};

const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}table{border-collapse:collapse}\
td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:right}th:first-child,td:first-child{text-align:left}\
.k{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 1em}svg{display:block;margin:.5em 0}";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Bytes for people: 1.5 MiB (integer arithmetic: no float formatting in the wasm).
pub fn human(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut u = 0;
    let mut div: u64 = 1;
    while b / div >= 1024 && u < units.len() - 1 {
        div *= 1024;
        u += 1;
    }
    if u == 0 {
        return format!("{b} B");
    }
    let tenths = b.saturating_mul(10) / div;
    format!("{}.{} {}", tenths / 10, tenths % 10, units[u])
}

fn ms(h: &[u64; NBUCKETS], p: u64) -> String {
    match quantile(h, p) {
        None => "–".into(),
        Some(u64::MAX) => format!("&gt;{} ms", BUCKETS_MS[BUCKETS_MS.len() - 1]),
        Some(v) => format!("≤{v} ms"),
    }
}

/// Grouped bars, one group per day: `series` are (name, colour, value per day). Coordinates are
/// whole pixels.
fn bars(labels: &[String], series: &[(&str, &str, Vec<u64>)], unit: fn(u64) -> String) -> String {
    let (w, h, pad): (u64, u64, u64) = (640, 180, 30);
    let max = series
        .iter()
        .flat_map(|s| s.2.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let n = (labels.len() as u64).max(1);
    let group = (w - pad) / n;
    let bar = (group * 8 / 10 / (series.len() as u64).max(1)).clamp(3, 40);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" role=\"img\">",
        h + 40
    );
    let _ = write!(
        s,
        "<text x=\"0\" y=\"12\" font-size=\"11\">{}</text>",
        esc(&unit(max))
    );
    let _ = write!(
        s,
        "<line x1=\"{pad}\" y1=\"{h}\" x2=\"{w}\" y2=\"{h}\" stroke=\"#999\"/>"
    );
    for (i, label) in labels.iter().enumerate() {
        let x0 = pad + group * i as u64 + group / 10;
        for (j, (name, colour, values)) in series.iter().enumerate() {
            let v = values.get(i).copied().unwrap_or(0);
            let bh = v.saturating_mul(h - 20) / max;
            let x = x0 + bar * j as u64;
            let _ = write!(s, "<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{bh}\" fill=\"{colour}\"><title>{} {}: {}</title></rect>",
                h - bh, bar - 2, esc(label), esc(name), esc(&unit(v)));
        }
        let _ = write!(
            s,
            "<text x=\"{x0}\" y=\"{}\" font-size=\"11\">{}</text>",
            h + 15,
            esc(label)
        );
    }
    s.push_str("</svg><div>");
    for (name, colour, _) in series {
        let _ = write!(
            s,
            "<span class=\"k\" style=\"background:{colour}\"></span>{}",
            esc(name)
        );
    }
    s.push_str("</div>");
    s
}

fn count(v: u64) -> String {
    v.to_string()
}
/// Per thousand as a whole percent.
fn percent(permille: u64) -> String {
    format!("{}%", (permille + 5) / 10)
}
fn bytes(v: u64) -> String {
    human(v)
}

/// One figure with an id the browser test reads.
fn figure(out: &mut String, id: &str, name: &str, value: &str) {
    let _ = write!(out, "<tr><td>{name}</td><td id=\"{id}\">{value}</td></tr>");
}

fn totals(out: &mut String, t: &Row) {
    out.push_str("<h2>Totals</h2><table>");
    for (id, name, v) in [
        ("requests", "Requests", t.requests),
        ("hits", "Hits", t.hits),
        ("misses", "Misses", t.misses),
        ("stale", "Stale (upstream failed)", t.stale),
        ("revalidated", "Revalidated", t.revalidated),
        (
            "upstream_requests",
            "Upstream requests",
            t.upstream_requests,
        ),
        (
            "manifest_gets_upstream",
            "Manifest GETs upstream (pulls counted by the upstream)",
            t.manifest_gets_upstream,
        ),
        ("pulls_served", "Pulls served", t.pulls_served),
        (
            "pulls_saved",
            "Pulls saved",
            t.pulls_served.saturating_sub(t.manifest_gets_upstream),
        ),
        ("bytes_store", "Bytes from the store", t.bytes_store),
        ("bytes_upstream", "Bytes from upstreams", t.bytes_upstream),
    ] {
        figure(out, id, name, &v.to_string());
    }
    figure(out, "hit_ratio", "Hit ratio", &percent(t.hit_permille()));
    figure(out, "hit_p50", "Hit time p50", &ms(&t.hit_ms, 50));
    figure(out, "hit_p95", "Hit time p95", &ms(&t.hit_ms, 95));
    figure(out, "miss_p50", "Miss time p50", &ms(&t.miss_ms, 50));
    figure(out, "miss_p95", "Miss time p95", &ms(&t.miss_ms, 95));
    out.push_str("</table>");
}

fn store(out: &mut String, r: &Report) {
    out.push_str("<h2>Store</h2>");
    let _ = write!(out, "<p><span id=\"store_objects\">{}</span> objects, <span id=\"store_bytes\">{}</span> bytes ({})", r.objects, r.bytes, human(r.bytes));
    match r.max_bytes {
        Some(max) => {
            let px = (r.bytes.saturating_mul(640) / max.max(1)).min(640);
            let _ = write!(
                out,
                " of a budget of <span id=\"store_max\">{max}</span> ({}).</p>",
                human(max)
            );
            let _ = write!(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"24\" role=\"img\"><rect width=\"640\" height=\"24\" fill=\"#eee\"/><rect width=\"{px}\" height=\"24\" fill=\"{}\"/></svg>",
                if r.bytes > max { "#c33" } else { "#37a" });
        }
        None => out.push_str("; no byte budget (STORE_MAX_BYTES) is set.</p>"),
    }
}

fn top(out: &mut String, r: &Report) {
    out.push_str("<h2>Top images (hits on stored objects)</h2><table id=\"top\"><tr><th>Image</th><th>Hits</th><th>Objects</th><th>Stored</th></tr>");
    for t in &r.top {
        let _ = write!(
            out,
            "<tr><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.upstream),
            esc(&t.repo),
            t.hits,
            t.objects,
            human(t.bytes)
        );
    }
    out.push_str("</table>");
}

fn page(body: &str) -> String {
    format!("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>edgemirror stats</title><style>{STYLE}</style></head><body><h1>edgemirror stats</h1>{body}</body></html>")
}

/// The page for a report.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let days = r.per_day();
    let labels: Vec<String> = days
        .iter()
        .map(|(d, _)| date(*d)[5..].to_string())
        .collect();
    let col = |f: fn(&Row) -> u64| days.iter().map(|(_, r)| f(r)).collect::<Vec<u64>>();
    totals(&mut out, &r.total());
    out.push_str("<h2>Hit ratio per day</h2>");
    out.push_str(&bars(
        &labels,
        &[("hit ratio", "#3a7", col(|r| r.hit_permille()))],
        percent,
    ));
    out.push_str("<h2>Bytes per day</h2>");
    out.push_str(&bars(
        &labels,
        &[
            ("from the store (saved)", "#3a7", col(|r| r.bytes_store)),
            ("from upstreams", "#c83", col(|r| r.bytes_upstream)),
        ],
        bytes,
    ));
    out.push_str("<h2>Pulls per day</h2>");
    out.push_str(&bars(
        &labels,
        &[
            ("pulls served", "#37a", col(|r| r.pulls_served)),
            (
                "manifest GETs upstream",
                "#c83",
                col(|r| r.manifest_gets_upstream),
            ),
        ],
        count,
    ));
    store(&mut out, r);
    top(&mut out, r);
    let w = r.writes;
    let _ = write!(out, "<p><small>This isolate: {} requests counted, {} D1 statements, {} rows written.</small></p>", w.requests_counted, w.statements, w.rows_written);
    page(&out)
}

/// The page when the `STATS` D1 binding is missing.
pub fn render_off() -> String {
    page(&format!(
        "<p id=\"off\">Stats are off. {}</p>",
        esc(super::HOW_TO_TURN_ON)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::report::{Day, Top};

    #[test]
    fn the_page_shows_the_numbers_and_loads_nothing() {
        let row = Row {
            requests: 7,
            hits: 4,
            misses: 3,
            pulls_served: 5,
            manifest_gets_upstream: 2,
            ..Default::default()
        };
        let r = Report {
            days: vec![Day {
                day: 20_000,
                upstream: "plain".into(),
                row,
            }],
            objects: 3,
            bytes: 1500,
            max_bytes: Some(3000),
            top: vec![Top {
                upstream: "plain".into(),
                repo: "<x>".into(),
                hits: 9,
                bytes: 10,
                objects: 1,
            }],
            ..Default::default()
        };
        let html = render(&r);
        assert!(html.contains("<td id=\"requests\">7</td>"));
        assert!(html.contains("<td id=\"pulls_saved\">3</td>"));
        assert!(html.contains("<td id=\"hit_ratio\">57%</td>"));
        assert!(html.contains("<span id=\"store_max\">3000</span>"));
        assert!(html.contains("plain/&lt;x&gt;"));
        assert_eq!(html.matches("<svg").count(), 4);
        assert!(!html.contains("src=") && !html.contains("href=") && !html.contains("<script"));
        assert!(render_off().contains("STATS"));
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
