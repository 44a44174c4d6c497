//! ECDSA P-256 / SHA-256 verification with the runtime's WebCrypto (`crypto.subtle`), for the
//! signature policy (`cosign`): no curve arithmetic in the wasm (see docs/signatures.md for what
//! each choice costs in size).

use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export async function ecdsa_p256_verify(spki, message, signature) {
  // Copies first: the views point into wasm memory, which may grow while this awaits.
  const [k, m, s] = [spki.slice(), message.slice(), signature.slice()];
  const key = await crypto.subtle.importKey('spki', k, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
  return crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, s, m);
}
"#)]
extern "C" {
    #[wasm_bindgen(catch)]
    async fn ecdsa_p256_verify(
        spki: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<JsValue, JsValue>;
}

/// Whether `signature` (`r || s`) signs `message` under the SPKI key; `Err` when the key does not
/// import (not a point on the curve).
pub async fn verify(spki: &[u8], message: &[u8], signature: &[u8; 64]) -> Result<bool, String> {
    match ecdsa_p256_verify(spki, message, signature).await {
        Ok(v) => Ok(v.as_bool() == Some(true)),
        Err(e) => Err(js_sys::Error::from(e)
            .message()
            .as_string()
            .unwrap_or_else(|| "WebCrypto refused the key".into())),
    }
}
