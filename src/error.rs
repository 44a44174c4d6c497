//! OCI distribution errors: a table of code, default status and message, and the JSON envelope
//! `{"errors":[{"code":..,"message":..}]}` every error response of the mirror carries.

use serde::Serialize;

/// Error codes from the OCI distribution spec plus distribution's common ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    DigestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    TagInvalid,
    RangeInvalid,
    PaginationNumberInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    Unavailable,
    Unknown,
}

/// (code, wire name, default status, default message) — the one table of OCI errors.
const TABLE: &[(ErrorCode, &str, u16, &str)] = &[
    (
        ErrorCode::BlobUnknown,
        "BLOB_UNKNOWN",
        404,
        "blob unknown to registry",
    ),
    (
        ErrorCode::DigestInvalid,
        "DIGEST_INVALID",
        400,
        "provided digest did not match uploaded content",
    ),
    (
        ErrorCode::ManifestUnknown,
        "MANIFEST_UNKNOWN",
        404,
        "manifest unknown",
    ),
    (
        ErrorCode::NameInvalid,
        "NAME_INVALID",
        400,
        "invalid repository name",
    ),
    (
        ErrorCode::NameUnknown,
        "NAME_UNKNOWN",
        404,
        "repository name not known to registry",
    ),
    (
        ErrorCode::TagInvalid,
        "TAG_INVALID",
        400,
        "manifest tag did not match URI",
    ),
    (
        ErrorCode::RangeInvalid,
        "RANGE_INVALID",
        416,
        "invalid content range",
    ),
    (
        ErrorCode::PaginationNumberInvalid,
        "PAGINATION_NUMBER_INVALID",
        400,
        "invalid number of results requested",
    ),
    (
        ErrorCode::Unauthorized,
        "UNAUTHORIZED",
        401,
        "authentication required",
    ),
    (
        ErrorCode::Denied,
        "DENIED",
        403,
        "requested access to the resource is denied",
    ),
    (
        ErrorCode::Unsupported,
        "UNSUPPORTED",
        405,
        "the operation is unsupported",
    ),
    (
        ErrorCode::TooManyRequests,
        "TOOMANYREQUESTS",
        429,
        "too many requests",
    ),
    (
        ErrorCode::Unavailable,
        "UNAVAILABLE",
        503,
        "service unavailable",
    ),
    (ErrorCode::Unknown, "UNKNOWN", 500, "unknown error"),
];

impl ErrorCode {
    fn row(self) -> &'static (ErrorCode, &'static str, u16, &'static str) {
        // Every variant has a row; the test below keeps it that way.
        TABLE
            .iter()
            .find(|row| row.0 == self)
            .unwrap_or(&TABLE[TABLE.len() - 1])
    }
    pub fn as_str(self) -> &'static str {
        self.row().1
    }
    pub fn default_status(self) -> u16 {
        self.row().2
    }
    pub fn default_message(self) -> &'static str {
        self.row().3
    }
    pub fn from_wire(name: &str) -> Option<ErrorCode> {
        TABLE.iter().find(|row| row.1 == name).map(|row| row.0)
    }
}

/// One OCI error with the HTTP status it is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciError {
    pub code: ErrorCode,
    pub status: u16,
    pub message: String,
}

#[derive(Serialize)]
struct Envelope<'a> {
    errors: [Entry<'a>; 1],
}

#[derive(Serialize)]
struct Entry<'a> {
    code: &'a str,
    message: &'a str,
}

impl OciError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        OciError {
            code,
            status: code.default_status(),
            message: message.into(),
        }
    }
    /// Input the mirror cannot act on that fits no more specific OCI code: `UNSUPPORTED` with 400
    /// (the distribution spec has no generic bad-request code).
    pub fn bad_request(message: impl Into<String>) -> Self {
        OciError::new(ErrorCode::Unsupported, message).with_status(400)
    }
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
    /// The JSON envelope body.
    pub fn body(&self) -> Vec<u8> {
        let env = Envelope {
            errors: [Entry {
                code: self.code.as_str(),
                message: &self.message,
            }],
        };
        serde_json::to_vec(&env).unwrap_or_else(|_| b"{\"errors\":[]}".to_vec())
    }
}

impl std::fmt::Display for OciError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status,
            self.code.as_str(),
            self.message
        )
    }
}

/// Whether `body` is already an OCI error envelope (an upstream's), so it can be passed on as is.
pub fn is_oci_envelope(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Env {
        errors: Vec<serde_json::Value>,
    }
    matches!(serde_json::from_slice::<Env>(body), Ok(env) if !env.errors.is_empty()
        && env.errors.iter().all(|e| e.get("code").and_then(|c| c.as_str()).is_some()))
}

/// Why a name, tag or digest from a client is not acceptable: the parsers' own error, mapped to
/// an OCI error in one place (`From<InputError> for OciError`) and shown as text elsewhere (the
/// configuration names the field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    Name(String),
    Tag(String),
    Digest(String),
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::Name(m) | InputError::Tag(m) | InputError::Digest(m) => f.write_str(m),
        }
    }
}

impl From<InputError> for OciError {
    fn from(e: InputError) -> OciError {
        let code = match &e {
            InputError::Name(_) => ErrorCode::NameInvalid,
            InputError::Tag(_) => ErrorCode::TagInvalid,
            InputError::Digest(_) => ErrorCode::DigestInvalid,
        };
        OciError::new(code, e.to_string())
    }
}

/// Keeps error messages short whatever the input.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(ErrorCode::BlobUnknown, "BLOB_UNKNOWN", 404)]
    #[case(ErrorCode::DigestInvalid, "DIGEST_INVALID", 400)]
    #[case(ErrorCode::ManifestUnknown, "MANIFEST_UNKNOWN", 404)]
    #[case(ErrorCode::NameInvalid, "NAME_INVALID", 400)]
    #[case(ErrorCode::NameUnknown, "NAME_UNKNOWN", 404)]
    #[case(ErrorCode::TagInvalid, "TAG_INVALID", 400)]
    #[case(ErrorCode::RangeInvalid, "RANGE_INVALID", 416)]
    #[case(ErrorCode::PaginationNumberInvalid, "PAGINATION_NUMBER_INVALID", 400)]
    #[case(ErrorCode::Unauthorized, "UNAUTHORIZED", 401)]
    #[case(ErrorCode::Denied, "DENIED", 403)]
    #[case(ErrorCode::Unsupported, "UNSUPPORTED", 405)]
    #[case(ErrorCode::TooManyRequests, "TOOMANYREQUESTS", 429)]
    #[case(ErrorCode::Unavailable, "UNAVAILABLE", 503)]
    #[case(ErrorCode::Unknown, "UNKNOWN", 500)]
    fn table_rows(#[case] code: ErrorCode, #[case] wire: &str, #[case] status: u16) {
        assert_eq!(code.as_str(), wire);
        assert_eq!(code.default_status(), status);
        assert_eq!(ErrorCode::from_wire(wire), Some(code));
    }

    #[test]
    fn envelope_is_json_with_one_error() {
        let e = OciError::new(ErrorCode::NameInvalid, "bad \"name\"");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["errors"][0]["code"], "NAME_INVALID");
        assert_eq!(v["errors"][0]["message"], "bad \"name\"");
        assert_eq!(e.status, 400);
        assert!(is_oci_envelope(&e.body()));
    }

    #[rstest]
    #[case(b"".as_slice())]
    #[case(b"<Error>s3</Error>".as_slice())]
    #[case(b"{\"errors\":[]}".as_slice())]
    #[case(b"{\"errors\":[{\"message\":\"x\"}]}".as_slice())]
    fn not_envelopes(#[case] body: &[u8]) {
        assert!(!is_oci_envelope(body));
    }

    #[test]
    fn status_override() {
        let e = OciError::new(ErrorCode::Unavailable, "upstream unreachable").with_status(502);
        assert_eq!(e.status, 502);
        assert_eq!(e.code.as_str(), "UNAVAILABLE");
    }
}
