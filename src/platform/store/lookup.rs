//! Blob lookups: R2 (a whole object, or a range of it) and the Cache API (a range asked of the
//! stored entry), as the `Store` port's `BlobLookup`.

use super::*;

/// An R2 read's answer: its body stream, for an object of `size` bytes and the `span` served.
fn found(object: &worker::Object, size: u64, span: Option<(u64, u64)>) -> BlobLookup<Body> {
    match object.body().map(|b| b.response_body()) {
        Some(Ok(ResponseBody::Stream(s))) => BlobLookup::Found {
            body: Some(Some(s)),
            size,
            span,
        },
        _ => BlobLookup::Missing,
    }
}

pub(super) async fn r2_blob(
    bucket: &Bucket,
    key: &str,
    range: Option<RangeSpec>,
    head: bool,
) -> BlobLookup<Body> {
    let name = object_name(key);
    if range.is_none() && !head {
        // A whole GET, the common hit: one R2 read (its object carries the size), not a head first.
        return match bucket.get(name).execute().await {
            Ok(Some(object)) => found(&object, object.size(), None),
            _ => BlobLookup::Missing,
        };
    }
    let Ok(Some(meta)) = bucket.head(name).await else {
        return BlobLookup::Missing;
    };
    let size = meta.size();
    let Ok(span) = RangeSpec::span(range, size) else {
        return BlobLookup::Unsatisfiable { size };
    };
    if head {
        return BlobLookup::Found {
            body: None,
            size,
            span,
        };
    }
    let mut get = bucket.get(name);
    if let Some((a, b)) = span {
        get = get.range(worker::Range::OffsetWithLength {
            offset: a,
            length: b - a + 1,
        });
    }
    match get.execute().await {
        Ok(Some(object)) => found(&object, size, span),
        _ => BlobLookup::Missing,
    }
}

pub(super) async fn cache_blob(
    key: &str,
    range: Option<RangeSpec>,
    head: bool,
) -> BlobLookup<Body> {
    let Ok(Some(resp)) = Cache::default().get(key, false).await else {
        return BlobLookup::Missing;
    };
    let size = resp
        .headers()
        .get(SIZE_HEADER)
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok());
    let Some(size) = size else {
        return BlobLookup::Missing;
    };
    let Ok(span) = RangeSpec::span(range, size) else {
        return BlobLookup::Unsatisfiable { size };
    };
    let Some((a, b)) = span.filter(|_| !head) else {
        let body = stream_of(&resp);
        if head {
            if let Some(s) = body {
                let _ = s.cancel();
            }
            return BlobLookup::Found {
                body: None,
                size,
                span,
            };
        }
        return BlobLookup::Found {
            body: Some(body),
            size,
            span,
        };
    };
    if let Some(s) = stream_of(&resp) {
        let _ = s.cancel();
    }
    // The Cache API answers a Range request itself (206); ask again with the range.
    let Ok(req) = ranged_request(key, a, b) else {
        return BlobLookup::Missing;
    };
    match Cache::default().get(&req, false).await {
        Ok(Some(part)) if part.status_code() == 206 => BlobLookup::Found {
            body: Some(stream_of(&part)),
            size,
            span,
        },
        _ => BlobLookup::Missing,
    }
}

fn ranged_request(key: &str, a: u64, b: u64) -> worker::Result<worker::Request> {
    let h = Headers::new();
    h.set("range", &format!("bytes={a}-{b}"))?;
    let mut init = worker::RequestInit::new();
    init.with_headers(h);
    worker::Request::new_with_init(key, &init)
}
