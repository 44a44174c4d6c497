//! Per-client rate limits and network allow-lists, as pure arithmetic: fixed windows, the client
//! key (an IPv6 client is its /64), the decision, and the headers. Time is passed in.

use std::net::IpAddr;

use crate::duration::parse_duration;

/// `N/duration`, e.g. `100/6h` (Docker Hub's anonymous limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub count: u64,
    pub window: u64,
}

pub const DEFAULT_LIMIT: Limit = Limit {
    count: 100,
    window: 6 * 3600,
};

impl Limit {
    /// `"100/6h"`, `"20/60"`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Limit> {
        let (n, w) = text.trim().split_once('/')?;
        let count = n.trim().parse::<u64>().ok().filter(|n| *n > 0)?;
        let window = parse_duration(&serde_json::Value::String(w.trim().to_string()))
            .ok()
            .filter(|w| *w > 0)?;
        Some(Limit { count, window })
    }
}

/// The key a client is counted under: its address, or for IPv6 its /64 (one host, many addresses).
pub fn client_key(ip: &str) -> Option<String> {
    let ip = ip.trim();
    match ip.parse::<IpAddr>().ok()? {
        // The parser takes only the dotted quad, as it would write it back.
        IpAddr::V4(_) => Some(ip.to_string()),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            Some(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
        }
    }
}

/// The store key of a client's counter for the window `now` falls in.
pub fn counter_key(client: &str, limit: Limit, now: u64) -> String {
    format!("rl:{client}:{}", now - now % limit.window)
}

/// Seconds until the window `now` falls in ends.
pub fn window_left(limit: Limit, now: u64) -> u64 {
    limit.window - now % limit.window
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Counted; `remaining` pulls are left in this window.
    Allow { remaining: u64 },
    /// Over the limit until `retry_after` seconds from now.
    Deny { retry_after: u64 },
}

/// A pull when `count` were already made in this window.
pub fn decide(limit: Limit, count: u64, now: u64) -> Decision {
    if count >= limit.count {
        Decision::Deny {
            retry_after: window_left(limit, now),
        }
    } else {
        Decision::Allow {
            remaining: limit.count - count - 1,
        }
    }
}

/// Counters kept per client and window key inside one isolate: a pull is counted in the same
/// synchronous step that decides it, so a burst of concurrent requests gets exactly `limit.count`
/// passes. The shared store's count is merged in (`max`): what other isolates counted shows up
/// as KV propagates it.
#[derive(Debug, Default)]
pub struct Counters {
    /// key → (count, end of its window)
    counts: std::collections::HashMap<String, (u64, u64)>,
}

/// Counters kept before old windows are dropped.
const MAX_COUNTERS: usize = 10_000;

impl Counters {
    /// Counts a pull under `key` when allowed; `stored` is the shared store's count for that key.
    pub fn take(&mut self, key: &str, stored: u64, limit: Limit, now: u64) -> Decision {
        let count = self.seen(key, stored);
        let decision = decide(limit, count, now);
        if let Decision::Allow { .. } = decision {
            self.set(key, count + 1, now + window_left(limit, now));
        }
        decision
    }

    /// What this isolate knows of `key`'s count, with the store's count merged in.
    pub fn seen(&self, key: &str, stored: u64) -> u64 {
        self.counts
            .get(key)
            .map_or(stored, |(n, _)| (*n).max(stored))
    }

    /// The store's count of `key`, read for a request that takes no pull, merged in and kept, so
    /// the client's next such requests in this isolate show it without reading the store again.
    /// Pulls still read the store before they are taken.
    pub fn remember(&mut self, key: &str, stored: u64, limit: Limit, now: u64) -> u64 {
        let count = self.seen(key, stored);
        self.set(key, count, now + window_left(limit, now));
        count
    }

    /// This isolate's count of `key`, if it has one.
    pub fn local(&self, key: &str) -> Option<u64> {
        self.counts.get(key).map(|(n, _)| *n)
    }

    fn set(&mut self, key: &str, count: u64, window_end: u64) {
        if self.counts.len() >= MAX_COUNTERS && !self.counts.contains_key(key) {
            let now = window_end.saturating_sub(1);
            self.counts.retain(|_, (_, end)| *end > now);
            if self.counts.len() >= MAX_COUNTERS {
                self.counts.clear();
            }
        }
        self.counts.insert(key.to_string(), (count, window_end));
    }
}

/// The standard and Docker Hub's headers for `remaining` pulls left.
pub fn headers(limit: Limit, remaining: u64) -> [(&'static str, String); 4] {
    [
        (
            "ratelimit-limit",
            format!("{};w={}", limit.count, limit.window),
        ),
        (
            "ratelimit-remaining",
            format!("{remaining};w={}", limit.window),
        ),
        ("x-ratelimit-limit", limit.count.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
    ]
}

/// An IPv4 or IPv6 network (`ipnet` does the arithmetic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(ipnet::IpNet);

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a single address.
    pub fn parse(text: &str) -> Option<Cidr> {
        let text = text.trim();
        match text.parse::<ipnet::IpNet>() {
            Ok(net) => Some(Cidr(net)),
            Err(_) => text.parse::<IpAddr>().ok().map(|ip| Cidr(ip.into())),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client may be seen as ::ffff:a.b.c.d.
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.0.contains(&ip) || mapped.is_some_and(|v4| self.0.contains(&v4))
    }
}

/// A list of networks from `["10.0.0.0/8", …]` (JSON) or `10.0.0.0/8, …`; the first bad entry is
/// the error.
pub fn parse_cidrs(text: &str) -> Result<Vec<Cidr>, String> {
    let items: Vec<String> = match serde_json::from_str::<Vec<String>>(text) {
        Ok(v) => v,
        Err(_) => text
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    items
        .iter()
        .map(|i| {
            Cidr::parse(i)
                .ok_or_else(|| format!("{i:?} is not a network (like 10.0.0.0/8 or 2001:db8::/32)"))
        })
        .collect()
}

pub fn any_contains(list: &[Cidr], ip: &str) -> bool {
    ip.trim()
        .parse::<IpAddr>()
        .is_ok_and(|ip| list.iter().any(|c| c.contains(ip)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const L: Limit = Limit {
        count: 3,
        window: 100,
    };

    #[rstest]
    #[case("100/6h", Some(DEFAULT_LIMIT))]
    #[case("20/60", Some(Limit { count: 20, window: 60 }))]
    #[case(" 5 / 10m ", Some(Limit { count: 5, window: 600 }))]
    #[case("0/1h", None)]
    #[case("5/0", None)]
    #[case("5", None)]
    #[case("x/1h", None)]
    #[case("5/1w", None)]
    fn limits_parse(#[case] text: &str, #[case] want: Option<Limit>) {
        assert_eq!(Limit::parse(text), want);
    }

    /// Three pulls per 100 s window starting at 1000.
    #[rstest]
    #[case(0, 1000, Decision::Allow { remaining: 2 })]
    #[case(2, 1050, Decision::Allow { remaining: 0 })]
    #[case(3, 1050, Decision::Deny { retry_after: 50 })]
    #[case(3, 1099, Decision::Deny { retry_after: 1 })]
    #[case(9, 1000, Decision::Deny { retry_after: 100 })]
    fn decisions(#[case] count: u64, #[case] now: u64, #[case] want: Decision) {
        assert_eq!(decide(L, count, now), want);
    }

    /// A burst of 20 concurrent pulls (all read the store before any counts): exactly 3 pass.
    #[test]
    fn a_concurrent_burst_gets_exactly_the_limit() {
        let mut c = Counters::default();
        let key = counter_key("1.2.3.4", L, 1000);
        // Every request of the burst read 0 from the store before the first was counted.
        let passes = (0..20)
            .filter(|_| matches!(c.take(&key, 0, L, 1000), Decision::Allow { .. }))
            .count();
        assert_eq!(passes, 3);
        assert_eq!(c.local(&key), Some(3));
        assert_eq!(c.take(&key, 0, L, 1001), Decision::Deny { retry_after: 99 });
        // Another isolate's count, once the store shows it, is merged in.
        let other = counter_key("5.6.7.8", L, 1000);
        assert_eq!(c.take(&other, 2, L, 1000), Decision::Allow { remaining: 0 });
        assert!(matches!(c.take(&other, 0, L, 1000), Decision::Deny { .. }));
        // A new window, a new count.
        let next = counter_key("1.2.3.4", L, 1100);
        assert_eq!(c.take(&next, 0, L, 1100), Decision::Allow { remaining: 2 });
    }

    #[test]
    fn counters_are_bounded() {
        let mut c = Counters::default();
        for i in 0..(MAX_COUNTERS * 2) {
            c.take(&format!("rl:{i}:1000"), 0, L, 1000 + (i as u64 / 100));
        }
        assert!(c.counts.len() <= MAX_COUNTERS);
    }

    #[test]
    fn windows_are_fixed_and_keyed_by_their_start() {
        assert_eq!(counter_key("1.2.3.4", L, 1000), "rl:1.2.3.4:1000");
        assert_eq!(counter_key("1.2.3.4", L, 1099), "rl:1.2.3.4:1000");
        assert_eq!(
            counter_key("1.2.3.4", L, 1100),
            "rl:1.2.3.4:1100",
            "a new window, a new counter"
        );
    }

    #[rstest]
    #[case("203.0.113.7", Some("203.0.113.7"))]
    #[case(" 203.0.113.7\t", Some("203.0.113.7"))]
    #[case("203.0.113.07", None)]
    #[case("203.0.113", None)]
    #[case("2001:db8:1:2:aaaa::1", Some("2001:db8:1:2::/64"))]
    #[case("2001:db8:1:2:ffff:ffff:ffff:ffff", Some("2001:db8:1:2::/64"))]
    #[case("2001:db8:1:3::1", Some("2001:db8:1:3::/64"))]
    #[case("not an ip", None)]
    #[case("", None)]
    fn client_keys(#[case] ip: &str, #[case] want: Option<&str>) {
        assert_eq!(client_key(ip).as_deref(), want);
    }

    #[rstest]
    #[case("10.0.0.0/8", "10.200.1.1", true)]
    #[case("10.0.0.0/8", "11.0.0.1", false)]
    #[case("192.168.1.5", "192.168.1.5", true)]
    #[case("192.168.1.5", "192.168.1.6", false)]
    #[case("0.0.0.0/0", "8.8.8.8", true)]
    #[case("2001:db8::/32", "2001:db8:ffff::1", true)]
    #[case("2001:db8::/32", "2001:db9::1", false)]
    #[case("::/0", "::1", true)]
    #[case("127.0.0.0/8", "::ffff:127.0.0.1", true)]
    #[case("10.0.0.0/8", "2001:db8::1", false)]
    fn networks(#[case] cidr: &str, #[case] ip: &str, #[case] want: bool) {
        assert_eq!(any_contains(&[Cidr::parse(cidr).unwrap()], ip), want);
    }

    #[test]
    fn cidr_lists() {
        assert_eq!(parse_cidrs(r#"["10.0.0.0/8", "::1"]"#).unwrap().len(), 2);
        assert_eq!(parse_cidrs("10.0.0.0/8, 127.0.0.1").unwrap().len(), 2);
        assert!(parse_cidrs("10.0.0.0/33").is_err());
        assert!(parse_cidrs("10.0.0.0/8, nope").is_err());
        assert!(!any_contains(
            &parse_cidrs("10.0.0.0/8").unwrap(),
            "garbage"
        ));
    }

    #[test]
    fn headers_say_limit_window_and_remaining() {
        let h = headers(DEFAULT_LIMIT, 42);
        assert_eq!(h[0], ("ratelimit-limit", "100;w=21600".to_string()));
        assert_eq!(h[1], ("ratelimit-remaining", "42;w=21600".to_string()));
    }
}
