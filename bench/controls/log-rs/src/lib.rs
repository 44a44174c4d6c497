//! Control W: the smallest Rust worker, answering every request itself with one log line (as
//! control L does in JavaScript): what the Rust → wasm route costs a request in this runtime
//! (the generated glue, the call into wasm, the future it returns), beside edgemirror's `GET /v2/`.

use worker::{event, Context, Env};

#[event(fetch)]
async fn fetch(
    req: web_sys::Request,
    _env: Env,
    _ctx: Context,
) -> worker::Result<web_sys::Response> {
    let url = req.url();
    let path = url.splitn(4, '/').nth(3).unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    worker::console_log!(
        "{{\"method\":\"{}\",\"path\":\"/{}\",\"status\":200}}",
        req.method(),
        path
    );
    let init = web_sys::ResponseInit::new();
    init.set_status(200);
    let headers = web_sys::Headers::new()?;
    headers.append("content-type", "application/json")?;
    headers.append("docker-distribution-api-version", "registry/2.0")?;
    init.set_headers(&headers.into());
    Ok(web_sys::Response::new_with_opt_str_and_init(
        Some("{}"),
        &init,
    )?)
}
