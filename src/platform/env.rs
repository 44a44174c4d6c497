//! Configuration from the Worker's environment, parsed once per isolate and re-parsed only when
//! the variables change. An invalid table is logged once and answered on every request.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsValue;
use worker::Env;

use crate::config::{Config, ConfigError, Vars};

type Parsed = Result<Rc<Config>, ConfigError>;

thread_local! {
    static CACHE: RefCell<Option<(Vec<Option<String>>, Parsed)>> = const { RefCell::new(None) };
}

/// A variable as text: strings as they are, objects (wrangler.toml tables) as JSON.
fn var(env: &Env, name: &str) -> Option<String> {
    let value = js_sys::Reflect::get(env.as_ref(), &JsValue::from_str(name)).ok()?;
    if value.is_undefined() || value.is_null() {
        return None;
    }
    if let Some(s) = value.as_string() {
        return Some(s);
    }
    js_sys::JSON::stringify(&value).ok().and_then(|s| s.as_string())
}

pub fn config(env: &Env) -> Parsed {
    let raw = ["UPSTREAMS", "DEFAULT_UPSTREAM", "UPSTREAM_TIMEOUT_MS", "PREWARM", "PREWARM_BUDGET"].map(|name| var(env, name)).to_vec();
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((seen, parsed)) = cache.as_ref() {
            if *seen == raw {
                return parsed.clone();
            }
        }
        let vars = Vars {
            upstreams: raw[0].as_deref(),
            default_upstream: raw[1].as_deref(),
            upstream_timeout_ms: raw[2].as_deref(),
            prewarm: raw[3].as_deref(),
            prewarm_budget: raw[4].as_deref(),
        };
        let parsed = Config::from_vars(&vars).map(Rc::new);
        if let Err(e) = &parsed {
            worker::console_error!("{}", serde_json::json!({"msg": "invalid configuration", "field": e.field, "problem": e.problem}));
        }
        *cache = Some((raw, parsed.clone()));
        parsed
    })
}
