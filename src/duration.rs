//! Durations as the configuration writes them: seconds, or a number with a unit.

/// Longest lifetime accepted (ten years), so arithmetic on `now + ttl` stays far from overflow.
const MAX_DURATION: u64 = 10 * 365 * 24 * 3600;

/// Seconds as a number, or a string with a unit: `"90s"`, `"10m"`, `"1h"`, `"365d"`.
pub fn parse_duration(value: &serde_json::Value) -> Result<u64, String> {
    let bad = || {
        format!("{value} is not a duration (seconds, or a string like \"10m\", \"1h\", \"365d\")")
    };
    let secs = match value {
        serde_json::Value::Number(n) => n.as_u64().ok_or_else(bad)?,
        serde_json::Value::String(s) => {
            let s = s.trim();
            let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (digits, unit) = s.split_at(split);
            let n: u64 = digits.parse().map_err(|_| bad())?;
            let mult = match unit.trim() {
                "" | "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                _ => return Err(bad()),
            };
            n.checked_mul(mult).ok_or_else(bad)?
        }
        _ => return Err(bad()),
    };
    if secs > MAX_DURATION {
        return Err(format!("{value} is longer than ten years"));
    }
    Ok(secs)
}
