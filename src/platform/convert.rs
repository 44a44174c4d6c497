//! Runtime request/response ↔ `http` types. Bodies stay runtime streams: a response built here
//! hands the upstream's `ReadableStream` straight back to the runtime.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use wasm_bindgen::JsValue;

use crate::error::{ErrorCode, OciError};
use crate::front::Arrival;
use crate::mirror::Reply;

pub type Body = Option<web_sys::ReadableStream>;

/// Request headers the core may look at. Nothing else (cookies…) is copied; `authorization` is the
/// client's own login, passed through to the upstream it belongs to and never logged.
const INCOMING_HEADERS: &[&str] = &[
    "accept",
    "range",
    "if-none-match",
    "user-agent",
    "authorization",
];

/// The runtime's request as the front door takes it: method, URL, the headers above, the body
/// unread, and who sent it.
pub fn arrival(req: &web_sys::Request, id: String, now_ms: u64) -> Result<Arrival<Body>, OciError> {
    let bad = || OciError::new(ErrorCode::NameInvalid, "malformed request");
    let method = Method::from_bytes(req.method().as_bytes()).map_err(|_| bad())?;
    let url = url::Url::parse(&req.url()).map_err(|_| bad())?;
    let headers_in = req.headers();
    let header = |name: &str| headers_in.get(name).ok().flatten();
    let mut headers = HeaderMap::new();
    for name in INCOMING_HEADERS {
        if let Some(v) = header(name).and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    // Only a body the mirror reads (a form, the admin API's JSON) needs it: not a GET's.
    let declared_length = (method != Method::GET && method != Method::HEAD)
        .then(|| header("content-length").and_then(|v| v.parse().ok()))
        .flatten();
    Ok(Arrival {
        method,
        url,
        headers,
        body: req.body(),
        declared_length,
        ip: header("cf-connecting-ip").unwrap_or_default(),
        id,
        now_ms,
    })
}

pub fn headers_to_runtime(headers: &HeaderMap) -> worker::Result<web_sys::Headers> {
    let out = web_sys::Headers::new()?;
    for (k, v) in headers {
        if let Ok(v) = v.to_str() {
            out.append(k.as_str(), v)?;
        }
    }
    Ok(out)
}

pub fn headers_from_runtime(headers: &web_sys::Headers) -> HeaderMap {
    let mut out = HeaderMap::new();
    let Ok(Some(iter)) = js_sys::try_iter(headers.as_ref()) else {
        return out;
    };
    for entry in iter.flatten() {
        let pair = js_sys::Array::from(&entry);
        let (Some(k), Some(v)) = (pair.get(0).as_string(), pair.get(1).as_string()) else {
            continue;
        };
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            out.append(k, v);
        }
    }
    out
}

pub fn outgoing(resp: http::Response<Reply<Body>>) -> worker::Result<web_sys::Response> {
    let (parts, body) = resp.into_parts();
    let init = web_sys::ResponseInit::new();
    init.set_status(parts.status.as_u16());
    init.set_headers(&JsValue::from(headers_to_runtime(&parts.headers)?));
    let resp = match body {
        Reply::Stream(Some(stream)) => {
            web_sys::Response::new_with_opt_readable_stream_and_init(Some(&stream), &init)
        }
        Reply::Bytes(bytes) => {
            // A JS-owned copy, so the runtime knows the length and sends Content-Length.
            let array = js_sys::Uint8Array::from(bytes.as_slice());
            web_sys::Response::new_with_opt_buffer_source_and_init(Some(&array), &init)
        }
        Reply::Stream(None) | Reply::Empty => {
            web_sys::Response::new_with_opt_str_and_init(None, &init)
        }
    };
    Ok(resp?)
}
