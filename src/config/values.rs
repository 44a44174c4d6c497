//! The variables that hold one value each (`UPSTREAM_SECRETS`, `PREWARM`, byte sizes, bounded
//! numbers): each parser names its variable in the error it returns.

use super::{err, secret_name_problem, ConfigError};
use crate::reference::{RepoName, Tag};

/// `UPSTREAM_SECRETS`: `["HUB_CREDS", "ACCESS_ID"]` or `HUB_CREDS, ACCESS_ID`.
pub(super) fn parse_upstream_secrets(text: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(vec![]);
    };
    let names: Vec<String> = serde_json::from_str(text).unwrap_or_else(|_| {
        text.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    });
    for n in &names {
        if let Some(p) = secret_name_problem(n) {
            return Err(err("UPSTREAM_SECRETS", format!("an entry {p}")));
        }
    }
    Ok(names)
}

/// A whole number in `range` from a variable; `default` when unset or empty.
pub(super) fn number(
    text: Option<&str>,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
    field: &str,
    problem: &str,
) -> Result<u32, ConfigError> {
    match text.map(str::trim) {
        None | Some("") => Ok(default),
        Some(t) => t
            .parse::<u32>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| err(field, problem)),
    }
}

/// `STORE_MAX_BYTES`: `""` or absent for no budget, else bytes as a whole number, optionally with
/// a binary unit (`300MiB`, `10 GiB`).
pub(super) fn parse_bytes(text: Option<&str>) -> Result<Option<u64>, ConfigError> {
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    bytes_of(t).filter(|b| *b > 0).map(Some).ok_or_else(|| {
        err(
            "STORE_MAX_BYTES",
            "must be a whole number of bytes of at least 1, optionally with KiB, MiB, GiB or TiB (e.g. 10GiB)",
        )
    })
}

/// `MANIFEST_MEMORY`: `""` or absent for the default, `0` for none, else bytes (`8MiB`) up to
/// `memo::MAX_CAPACITY`.
pub(super) fn parse_memory(text: Option<&str>) -> Result<u64, ConfigError> {
    use crate::mirror::memo::{DEFAULT_CAPACITY, MAX_CAPACITY};
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(DEFAULT_CAPACITY);
    };
    bytes_of(t).filter(|b| *b <= MAX_CAPACITY).ok_or_else(|| {
        err(
            "MANIFEST_MEMORY",
            "must be a whole number of bytes from 0 to 16MiB, optionally with KiB or MiB (e.g. 8MiB)",
        )
    })
}

/// `BLOB_FILL`: `""` or absent for the default (`with-answer`), else `with-answer` or
/// `after-answer`.
pub(super) fn parse_blob_fill(text: Option<&str>) -> Result<crate::ports::BlobFill, ConfigError> {
    use crate::ports::BlobFill;
    match text.map(str::trim) {
        None | Some("") | Some("with-answer") => Ok(BlobFill::WithAnswer),
        Some("after-answer") => Ok(BlobFill::AfterAnswer {
            from: crate::ports::AFTER_ANSWER_FROM,
        }),
        Some(_) => Err(err("BLOB_FILL", "must be with-answer or after-answer")),
    }
}

/// A whole number of bytes, optionally with a binary unit.
fn bytes_of(t: &str) -> Option<u64> {
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..digits].parse().ok()?;
    let unit: u64 = match t[digits..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// `["docker.io/library/alpine:latest", "ghcr.io/owner/img:v1", "alpine:3.19"]`: names as a client
/// pulls them through the mirror, each with a tag.
pub(super) fn parse_prewarm(text: Option<&str>) -> Result<Vec<(RepoName, Tag)>, ConfigError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(vec![]);
    };
    let list: Vec<String> = serde_json::from_str(text).map_err(|e| {
        err(
            "PREWARM",
            format!("must be a list of image references ({e})"),
        )
    })?;
    list.iter()
        .enumerate()
        .map(|(i, image)| {
            let (name, tag) = image.rsplit_once(':').ok_or_else(|| {
                err(
                    format!("PREWARM[{i}]"),
                    format!("{image:?} needs a tag (name:tag)"),
                )
            })?;
            let name =
                RepoName::parse(name).map_err(|e| err(format!("PREWARM[{i}]"), e.to_string()))?;
            let tag = Tag::parse(tag).map_err(|e| err(format!("PREWARM[{i}]"), e.to_string()))?;
            Ok((name, tag))
        })
        .collect()
}

#[cfg(test)]
mod tests;
