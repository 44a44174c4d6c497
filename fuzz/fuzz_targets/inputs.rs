//! The small parsers of request and upstream values: Range headers, token endpoint answers, rate
//! limits, CIDRs and client addresses, Accept lists, mirror credentials.
#![no_main]
use edgemirror::mirror_auth::MirrorCredentials;
use edgemirror::policy::normalise_accept;
use edgemirror::ports::RangeSpec;
use edgemirror::ratelimit::{client_key, parse_cidrs, Cidr, Limit};
use edgemirror::token::Token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Some(r) = RangeSpec::parse(&s) {
        for size in [0u64, 1, 100, u64::MAX] {
            if let Some((a, b)) = r.resolve(size) {
                assert!(a <= b && b < size, "{s:?} on {size} gave {a}-{b}");
            }
        }
    }
    if let Some(t) = Token::from_response(data, 1_700_000_000) {
        assert!(
            t.header_value().starts_with("Bearer ") && !t.header_value().contains(['\r', '\n'])
        );
    }
    if let Some(l) = Limit::parse(&s) {
        let _ = edgemirror::ratelimit::window_left(l, u64::MAX);
        let _ = edgemirror::ratelimit::decide(l, u64::MAX, u64::MAX);
    }
    let _ = Cidr::parse(&s);
    let _ = parse_cidrs(&s);
    if let Some(k) = client_key(&s) {
        assert!(!k.is_empty() && k.len() < 64);
    }
    let _ = normalise_accept(&s.split('\n').collect::<Vec<_>>());
    if let Some(c) = MirrorCredentials::parse(&s) {
        let _ = c.user_of_basic(&s);
        let _ = c.user_of_token(&s, u64::MAX);
        let _ = c.admits(Some(&s), 0);
    }
});
