//! When an upstream answer is worth one more try, and after how long. Every upstream request the
//! mirror makes is a GET or HEAD, so repeating one is safe; what is bounded is the wait. A request
//! that timed out is not repeated (that would double a wait already at its bound); a redirect loop
//! or a refusal is not transient.

use http::StatusCode;

/// Attempts per upstream request (the first and one retry).
pub const ATTEMPTS: usize = 2;
/// Pause before repeating a request that failed fast (a 5xx, a refused or reset connection).
pub const PAUSE_MS: u32 = 250;
/// Longest `Retry-After` the mirror waits out itself; a longer one goes to the client.
pub const MAX_WAIT_MS: u32 = 2_000;

/// Whether to repeat a request answered `status` with `retry_after` (the header's value), and
/// after how many milliseconds.
pub fn after_status(status: StatusCode, retry_after: Option<&str>) -> Option<u32> {
    let asked = retry_after.map(|v| v.trim().parse::<u32>().ok().map(|s| s.saturating_mul(1000)));
    match (status.as_u16(), asked) {
        // The upstream said when: waited out if short, passed on if long or unreadable (a date).
        (429 | 503, Some(Some(ms))) => (ms <= MAX_WAIT_MS).then_some(ms.max(PAUSE_MS)),
        (429 | 503, Some(None)) => None,
        // A rate limit with no hint: trying again at once would only count against it.
        (429, None) => None,
        (500 | 502 | 503 | 504, None) => Some(PAUSE_MS),
        (500 | 502 | 504, Some(_)) => Some(PAUSE_MS),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(500, None, Some(PAUSE_MS))]
    #[case(502, None, Some(PAUSE_MS))]
    #[case(504, Some("5"), Some(PAUSE_MS))]
    #[case(503, None, Some(PAUSE_MS))]
    #[case(503, Some("1"), Some(1000))]
    #[case(503, Some("0"), Some(PAUSE_MS))]
    #[case(503, Some("2"), Some(2000))]
    #[case(503, Some("3"), None)]
    #[case(503, Some("120"), None)]
    #[case(503, Some("Wed, 21 Oct 2015 07:28:00 GMT"), None)]
    #[case(429, None, None)]
    #[case(429, Some("1"), Some(1000))]
    #[case(429, Some("30"), None)]
    #[case(429, Some("4294967295"), None)]
    #[case(200, None, None)]
    #[case(401, None, None)]
    #[case(404, None, None)]
    #[case(501, None, None)]
    fn retries(#[case] status: u16, #[case] retry_after: Option<&str>, #[case] want: Option<u32>) {
        assert_eq!(
            after_status(StatusCode::from_u16(status).unwrap(), retry_after),
            want
        );
    }
}
