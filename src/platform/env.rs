//! Configuration from the Worker's environment, parsed once per isolate and re-parsed only when
//! the variables change. An invalid table is logged once and answered on every request. When the
//! `CONFIG` KV namespace is bound, stored overrides (the admin API's) are merged in, re-read at most
//! once per `CONFIG_RELOAD_SECS`.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::{JsCast, JsValue};
use worker::Env;

use crate::admin::ConfigStore;

use crate::config::{Config, ConfigError, Vars, VAR_NAMES};

type Parsed = Result<Rc<Config>, ConfigError>;

thread_local! {
    /// The variables' values as the runtime gave them (the same objects on every request of an
    /// isolate, so comparing them costs no conversion), and the configuration parsed from them.
    static CACHE: RefCell<Option<(Vec<JsValue>, Parsed)>> = const { RefCell::new(None) };
    /// The `env` object last seen, with the configuration and the bindings found in it. workerd
    /// hands every request of an isolate the same `env` object: one identity check then stands
    /// for eleven variable lookups and the bindings' (each a string made in JS and a property
    /// read; a KV binding six).
    static SEEN: RefCell<Option<(JsValue, Snapshot)>> = const { RefCell::new(None) };
}

fn raw(env: &Env, name: &str) -> JsValue {
    js_sys::Reflect::get(env.as_ref(), &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// A raw value as text: strings as they are, objects (wrangler.toml tables) as JSON.
fn text(value: &JsValue) -> Option<String> {
    if value.is_undefined() || value.is_null() {
        return None;
    }
    if let Some(s) = value.as_string() {
        return Some(s);
    }
    js_sys::JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
}

/// Names of the Worker's variables, secrets and bindings.
pub fn names(env: &Env) -> Vec<String> {
    let object: &JsValue = env.as_ref();
    js_sys::Object::keys(object.unchecked_ref::<js_sys::Object>())
        .iter()
        .filter_map(|k| k.as_string())
        .collect()
}

/// A variable as text: strings as they are, objects (wrangler.toml tables) as JSON.
pub fn var(env: &Env, name: &str) -> Option<String> {
    text(&raw(env, name))
}

/// Names the isolate keeps the values of (they come from the configuration, never from a
/// request; past this many the list starts again).
const MAX_KEPT_VARS: usize = 32;

/// A name and its value (`None`: not set).
type KeptVar = (String, Option<String>);

thread_local! {
    /// Variables and secrets read for requests, by name, for the `env` object they were read
    /// from: a secret the front door checks on every request (`MIRROR_CREDENTIALS`, set or not)
    /// costs a string made in JS and a property read each time otherwise.
    static KEPT: RefCell<Option<(JsValue, Vec<KeptVar>)>> = const { RefCell::new(None) };
}

/// `var`, kept for the isolate's `env` object (a new secret or deploy makes a new isolate).
pub fn kept_var(env: &Env, name: &str) -> Option<String> {
    let object: &JsValue = env.as_ref();
    KEPT.with(|k| {
        let mut kept = k.borrow_mut();
        if !kept
            .as_ref()
            .is_some_and(|(e, _)| js_sys::Object::is(e, object))
        {
            *kept = Some((object.clone(), Vec::new()));
        }
        let (_, list) = kept.as_mut()?;
        if let Some((_, value)) = list.iter().find(|(n, _)| n == name) {
            return value.clone();
        }
        if list.len() >= MAX_KEPT_VARS {
            list.clear();
        }
        let value = var(env, name);
        list.push((name.to_string(), value.clone()));
        value
    })
}

/// The bindings the mirror uses, when bound.
#[derive(Clone, Default)]
pub struct Bindings {
    pub blobs: Option<worker::Bucket>,
    pub stats: Option<super::stats::Db>,
    pub ratelimit: Option<worker::kv::KvStore>,
    pub config: Option<worker::kv::KvStore>,
    pub coordinator: Option<worker::ObjectNamespace>,
}

/// The static configuration and the bindings, as one `env` object holds them.
#[derive(Clone)]
pub struct Snapshot {
    pub config: Parsed,
    pub bindings: Bindings,
}

/// The configuration and bindings of `env`: looked up again only for another `env` object, and
/// the configuration then parsed again only when a variable's value is another object than last
/// time (a deploy or a new secret makes a new isolate anyway).
pub fn snapshot(env: &Env) -> Snapshot {
    let object: &JsValue = env.as_ref();
    let seen = SEEN.with(|s| {
        s.borrow()
            .as_ref()
            .filter(|(e, _)| js_sys::Object::is(e, object))
            .map(|(_, snap)| snap.clone())
    });
    if let Some(snap) = seen {
        return snap;
    }
    let snap = Snapshot {
        config: config_from_vars(env),
        bindings: Bindings {
            blobs: env.bucket("BLOBS").ok(),
            stats: env.d1("STATS").ok().map(Rc::new),
            ratelimit: env.kv("RATELIMIT").ok(),
            config: env.kv("CONFIG").ok(),
            coordinator: env.durable_object("COORDINATOR").ok(),
        },
    };
    SEEN.with(|s| *s.borrow_mut() = Some((object.clone(), snap.clone())));
    snap
}

/// The configuration from the variables' values, parsed again only when one is another object.
fn config_from_vars(env: &Env) -> Parsed {
    let values: Vec<JsValue> = VAR_NAMES.iter().map(|name| raw(env, name)).collect();
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((seen, parsed)) = cache.as_ref() {
            if seen.len() == values.len()
                && seen.iter().zip(&values).all(|(a, b)| js_sys::Object::is(a, b))
            {
                return parsed.clone();
            }
        }
        let texts: [Option<String>; VAR_NAMES.len()] = std::array::from_fn(|i| text(&values[i]));
        let vars = Vars::from_values(&texts);
        // The signature policy's keys live in secrets: checked here, at start, like the table.
        let secret = |name: &str| var(env, name);
        let parsed = Config::from_vars(&vars)
            .and_then(|c| crate::cosign::keys::check(&c, &secret).map(|()| c))
            .map(Rc::new);
        if let Err(e) = &parsed {
            worker::console_error!("{}", serde_json::json!({"msg": "invalid configuration", "field": e.field, "problem": e.problem}));
        }
        // Once per isolate and change: a typo'd variable is ignored, so say so where it is seen.
        let config = parsed.as_ref().ok().map(|c| c.as_ref());
        for w in crate::health::unknown_name_warnings(&names(env), config) {
            worker::console_warn!("{}", serde_json::json!({"msg": "configuration warning", "warning": w}));
        }
        *cache = Some((values, parsed.clone()));
        parsed
    })
}

/// The KV key holding the upstream overrides.
pub const OVERRIDES_KEY: &str = "upstreams";
const DEFAULT_RELOAD_SECS: u64 = 60;

struct Merged {
    fetched_at_ms: u64,
    base: Rc<Config>,
    merged: Rc<Config>,
}

thread_local! {
    static MERGED: RefCell<Option<Merged>> = const { RefCell::new(None) };
}

/// How often an isolate re-reads the stored overrides (1 to 3600 s; KV itself takes up to ~60 s to
/// show a write everywhere).
fn reload_ms(env: &Env) -> u64 {
    let secs = var(env, "CONFIG_RELOAD_SECS")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| (1..=3600).contains(s));
    secs.unwrap_or(DEFAULT_RELOAD_SECS) * 1000
}

/// The configuration in force: the static table `base` with the overrides in `store` (the
/// `CONFIG` namespace, when bound) merged in.
pub async fn effective(env: &Env, base: Parsed, store: Option<KvConfig>, now_ms: u64) -> Parsed {
    let base = base?;
    let Some(store) = store else {
        return Ok(base);
    };
    let fresh = MERGED.with(|m| {
        m.borrow()
            .as_ref()
            .filter(|m| {
                Rc::ptr_eq(&m.base, &base)
                    && now_ms.saturating_sub(m.fetched_at_ms) < reload_ms(env)
            })
            .map(|m| m.merged.clone())
    });
    if let Some(merged) = fresh {
        return Ok(merged);
    }
    let merged = match store.overrides().await {
        Ok(None) => base.clone(),
        Ok(Some(raw)) => {
            let (merged, skipped) = base.with_overrides(&raw);
            for e in skipped {
                worker::console_warn!(
                    "{}",
                    serde_json::json!({"msg": "stored upstream skipped", "field": e.field, "problem": e.problem})
                );
            }
            Rc::new(merged)
        }
        Err(e) => {
            // The static table keeps serving while KV is out.
            worker::console_warn!(
                "{}",
                serde_json::json!({"msg": "configuration store unreadable", "error": e})
            );
            base.clone()
        }
    };
    MERGED.with(|m| {
        *m.borrow_mut() = Some(Merged {
            fetched_at_ms: now_ms,
            base,
            merged: merged.clone(),
        })
    });
    Ok(merged)
}

/// The overrides in the `CONFIG` KV namespace.
#[derive(Clone)]
pub struct KvConfig(pub worker::kv::KvStore);

impl ConfigStore for KvConfig {
    async fn overrides(&self) -> Result<Option<String>, String> {
        self.0
            .get(OVERRIDES_KEY)
            .text()
            .await
            .map_err(|e| e.to_string())
    }
    async fn put_overrides(&self, json: &str) -> Result<(), String> {
        self.0
            .put(OVERRIDES_KEY, json)
            .map_err(|e| e.to_string())?
            .execute()
            .await
            .map_err(|e| e.to_string())
    }
}
