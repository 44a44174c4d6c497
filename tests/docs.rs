//! The documentation against the code: every variable, secret and binding the code reads is in the
//! configuration reference; the performance page holds the last benchmark run's table unchanged;
//! the README stays short; relative links resolve.

use std::fs;
use std::path::{Path, PathBuf};

use edgemirror::config::{MIRROR_OWN_NAMES, VAR_NAMES};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Names the code reads from the Worker's environment, found where it reads them: a variable
/// (`var(env, "X")`), a secret (`secret)("X")`), a binding (`.kv("X")`, `.bucket("X")`,
/// `durable_object("X")`).
fn names_read_in_src() -> Vec<String> {
    const CALLS: &[&str] = &[
        "var(env, \"",
        "var(&env, \"",
        "secret)(\"",
        ".kv(\"",
        ".bucket(\"",
        "durable_object(\"",
    ];
    let mut files = vec![];
    rust_files(&root().join("src"), &mut files);
    let mut names = vec![];
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        for call in CALLS {
            for (at, _) in text.match_indices(call) {
                let rest = &text[at + call.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !name.is_empty() && rest[name.len()..].starts_with('"') {
                    names.push(name);
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn every_name_the_code_reads_is_in_the_configuration_reference() {
    let found = names_read_in_src();
    // The scan itself must see the reads it is meant to see.
    for must in [
        "ADMIN_TOKEN",
        "MIRROR_CREDENTIALS",
        "CONFIG",
        "BLOBS",
        "RATELIMIT",
        "COORDINATOR",
    ] {
        assert!(
            found.iter().any(|n| n == must),
            "scan missed {must}: {found:?}"
        );
    }
    let doc = read("docs/configuration.md");
    let all = VAR_NAMES
        .iter()
        .chain(MIRROR_OWN_NAMES)
        .map(|s| s.to_string())
        .chain(found);
    let missing: Vec<String> = all.filter(|n| !doc.contains(&format!("`{n}`"))).collect();
    assert!(
        missing.is_empty(),
        "read by the code but not in docs/configuration.md: {missing:?}"
    );
}

#[test]
fn the_performance_page_holds_the_last_benchmark_table_unchanged() {
    let table = read("bench/results/latest.md");
    let doc = read("docs/performance.md");
    assert!(
        doc.contains(table.trim_end()),
        "docs/performance.md is not bench/results/latest.md: run node scripts/perf_doc.mjs"
    );
}

#[test]
fn the_readme_is_short() {
    let lines = read("README.md").lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines: move detail to docs/"
    );
}

#[test]
fn relative_links_in_the_docs_resolve() {
    let mut pages = vec![PathBuf::from("README.md")];
    for e in fs::read_dir(root().join("docs")).unwrap().flatten() {
        pages.push(PathBuf::from("docs").join(e.file_name()));
    }
    let mut broken = vec![];
    for page in pages {
        let text = read(page.to_str().unwrap());
        for (at, _) in text.match_indices("](") {
            let target: String = text[at + 2..].chars().take_while(|c| *c != ')').collect();
            let file = target.split('#').next().unwrap_or("");
            if file.is_empty() || file.contains("://") || file.starts_with("mailto:") {
                continue;
            }
            let dir = page.parent().unwrap_or(Path::new(""));
            if !root().join(dir).join(file).exists() {
                broken.push(format!("{}: {target}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nowhere: {broken:?}");
}
