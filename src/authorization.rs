//! `Authorization` values the mirror builds itself.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// `Basic <base64(user:password)>`.
pub fn basic(credentials: &str) -> String {
    format!("Basic {}", STANDARD.encode(credentials))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_encode_like_rfc_7617() {
        assert_eq!(basic("alice:secret"), "Basic YWxpY2U6c2VjcmV0");
        assert_eq!(
            basic("Aladdin:open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic("a:"), "Basic YTo=");
    }
}
