//! Reads `Retry-After` in any shape a server may send and bounds every wait a server can ask for.
//! Pure: the clock is passed in.

use std::time::{Duration, Instant};

/// The longest wait a server can impose through `Retry-After`, per vehicle or app-wide.
///
/// Smartcar's per-vehicle window is an hour, so no honest answer asks for more. A longer value
/// (or `u64::MAX`, or a date in 2099) is clamped here so that a hostile or broken server cannot
/// overflow a deadline or park the fleet for years; the wait is still reported, capped.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// `Retry-After` as whole seconds from `now`, capped at [`MAX_RETRY_AFTER`].
///
/// Accepts delta-seconds (any number of digits: too many saturate to the cap), a decimal such as
/// `1.5` (rounded up), and an HTTP-date in IMF-fixdate, RFC 850 or asctime form (a past date is 0).
/// A negative number or anything else is `None`: the caller falls back to its own backoff rather
/// than trusting a value it cannot read.
pub fn parse_retry_after_at(value: &str, now: jiff::Timestamp) -> Option<u64> {
    let value = value.trim();
    let cap = MAX_RETRY_AFTER.as_secs();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits but no u64: too large, which is the cap.
        return Some(value.parse::<u64>().map_or(cap, |s| s.min(cap)));
    }
    if let Ok(f) = value.parse::<f64>() {
        // `inf`, `NaN` and negatives are not a wait.
        return (f.is_finite() && f >= 0.0).then(|| f.ceil().min(cap as f64) as u64);
    }
    let date = parse_http_date(value)?;
    let secs = date.as_second().saturating_sub(now.as_second());
    Some(secs.clamp(0, cap as i64) as u64)
}

/// [`parse_retry_after_at`] counted from the current time.
pub fn parse_retry_after(value: &str) -> Option<u64> {
    parse_retry_after_at(value, jiff::Timestamp::now())
}

/// The three HTTP-date forms of RFC 9110 §5.6.7 (IMF-fixdate, RFC 850, asctime).
fn parse_http_date(value: &str) -> Option<jiff::Timestamp> {
    if let Ok(t) = httpdate::parse_http_date(value) {
        return jiff::Timestamp::try_from(t).ok();
    }
    // httpdate refuses years past 9999 and some RFC 2822 spellings (numeric zones); jiff reads those.
    jiff::fmt::rfc2822::parse(value).ok().map(|z| z.timestamp())
}

/// `wait` capped at [`MAX_RETRY_AFTER`]: for waits computed from a server's value.
pub fn capped_wait(wait: Duration) -> Duration {
    wait.min(MAX_RETRY_AFTER)
}

/// `now + wait`, with the wait capped, so no server value can overflow an `Instant`.
pub fn deadline_after(now: Instant, wait: Duration) -> Instant {
    // With the cap an overflow needs an `Instant` near the end of time; then waiting is moot.
    now.checked_add(capped_wait(wait)).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(value: &str) -> Option<u64> {
        // 2026-01-01T00:00:00Z
        let now = jiff::Timestamp::from_second(1_767_225_600).expect("valid");
        parse_retry_after_at(value, now)
    }

    #[test]
    fn retry_after_of_any_shape_is_read_and_capped_at_one_hour() {
        let cap = Some(MAX_RETRY_AFTER.as_secs());
        for (value, expected) in [
            ("0", Some(0)),
            ("30", Some(30)),
            (" 120 ", Some(120)),
            ("3600", Some(3600)),
            ("3601", cap),
            ("18446744073709551615", cap),
            ("99999999999999999999999", cap),
            ("1e300", cap),
            ("1.5", Some(2)),
            ("-5", None),
            ("-0.5", None),
            ("inf", None),
            ("NaN", None),
            ("", None),
            ("soon", None),
            ("\u{0}\u{7f}", None),
            ("Thu, 01 Jan 2026 00:01:00 GMT", Some(60)),
            ("Thursday, 01-Jan-26 00:02:00 GMT", Some(120)),
            ("Thu Jan  1 00:00:30 2026", Some(30)),
            ("Thu, 01 Jan 2099 00:00:00 GMT", cap),
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(0)),
            ("Thu, 01 Jan 2026 00:00:10 +0000", Some(10)),
        ] {
            assert_eq!(at(value), expected, "Retry-After: {value:?}");
        }
    }

    #[test]
    fn a_deadline_from_the_largest_wait_does_not_overflow() {
        let now = Instant::now();
        assert_eq!(deadline_after(now, Duration::MAX), now + MAX_RETRY_AFTER);
        assert_eq!(
            deadline_after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
    }
}
