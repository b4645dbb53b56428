//! The clock range guest-set-time accepts, as qemu-ga 7.2 checks it (`date.year < 1970 ||
//! date.year >= 2070` is "Invalid time": what an RTC can hold). The front checks it to answer
//! early and the helper again, because it trusts no one; both use this one definition.

/// The first and last UTC year accepted.
pub const FIRST_YEAR: i64 = 1970;
pub const LAST_YEAR: i64 = 2069;

/// Seconds since the epoch of (LAST_YEAR + 1)-01-01T00:00:00Z, the first second refused
/// (the helper's calendar code checks this number against its own arithmetic).
pub const END_SECS: i64 = 3_155_760_000;

/// Whether a guest-set-time `time` (nanoseconds since the epoch) is in range, with the seconds
/// taken as 7.2 takes them (C division, truncating toward zero: -1 ns is second 0, accepted,
/// and then refused by settimeofday itself).
pub fn time_in_range(ns: i64) -> bool {
    (0..END_SECS).contains(&(ns / 1_000_000_000))
}

/// How many whole seconds (rounded up) setting the clock to `ns` moves it from `now_ns`: the
/// step a policy's `max-step` bounds. The front checks it against its clock, the helper again
/// against its own just before it sets the time.
pub fn step_seconds(ns: i64, now_ns: i128) -> u64 {
    let diff = (i128::from(ns) - now_ns).unsigned_abs();
    u64::try_from(diff.div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
}

/// Nanoseconds since the epoch now (0 if the clock is before it).
pub fn now_ns() -> i128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_whole_seconds_rounded_up_either_way() {
        assert_eq!(step_seconds(10_000_000_000, 10_000_000_000), 0);
        assert_eq!(step_seconds(10_000_000_001, 10_000_000_000), 1);
        assert_eq!(step_seconds(0, 10_000_000_000), 10);
        assert_eq!(step_seconds(i64::MIN, i128::from(i64::MAX)), 18_446_744_074);
    }

    #[test]
    fn years_1970_to_2069_are_in_range() {
        assert!(time_in_range(0));
        assert!(time_in_range(-1));
        assert!(time_in_range((END_SECS - 1) * 1_000_000_000));
        assert!(!time_in_range(END_SECS * 1_000_000_000));
        assert!(!time_in_range(-1_000_000_000));
        assert!(!time_in_range(i64::MIN));
        assert!(!time_in_range(i64::MAX));
    }
}
