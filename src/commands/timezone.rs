//! guest-get-timezone: the offset from UTC and abbreviation in effect now, from the local time
//! zone as 7.2's GLib finds it when started by its unit (no TZ in the environment):
//! /etc/localtime, a TZif file bound read-only into the front's empty view; UTC without one
//! or when it cannot be read. The zone is looked up at the current time like GLib does: the
//! type of the last transition at or before now, before the first transition the first
//! standard-time type. (Debian's zone files list transitions up to 2037.)

use super::held_file::HeldFile;
use crate::json::{Dict, Value};
use crate::qmp::AgentError;
use std::time::{SystemTime, UNIX_EPOCH};

const LOCALTIME: &str = "/etc/localtime";

thread_local! {
    static LOCALTIME_FILE: std::cell::RefCell<HeldFile> =
        const { std::cell::RefCell::new(HeldFile::new(LOCALTIME)) };
}

thread_local! {
    static LAST_ANSWER: std::cell::RefCell<Option<Kept>> = const { std::cell::RefCell::new(None) };
}

pub fn get_timezone() -> Result<Value, AgentError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (offset, zone) = LOCALTIME_FILE
        .with_borrow_mut(|file| {
            let data = file.read()?;
            LAST_ANSWER.with_borrow_mut(|kept| answer(kept, data, now))
        })
        .unwrap_or_else(|| (0, b"UTC".to_vec()));
    Ok(Dict::new().with("zone", Value::Str(zone)).with("offset", Value::Int(offset)).into())
}

/// The last answer, with the zone file content it came from and the span of time in which
/// that content gives the same answer (between two transitions).
struct Kept {
    content: Vec<u8>,
    span: Span,
    offset: i64,
    zone: Vec<u8>,
}

/// Seconds `from..until`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Span {
    from: i64,
    until: i64,
}

/// [`lookup`], reusing the kept answer while the file holds the same bytes and `now` is in
/// the span it holds for: a zone with many transitions is not searched again on every request,
/// and any change of the content or a transition passed makes a fresh lookup.
fn answer(kept: &mut Option<Kept>, data: &[u8], now: i64) -> Option<(i64, Vec<u8>)> {
    if let Some(k) = kept {
        if k.content == data && k.span.from <= now && now < k.span.until {
            return Some((k.offset, k.zone.clone()));
        }
    }
    let Some((offset, zone, span)) = lookup_with_span(data, now) else {
        *kept = None;
        return None;
    };
    *kept = Some(Kept { content: data.to_vec(), span, offset, zone: zone.clone() });
    Some((offset, zone))
}

struct Type {
    offset: i32,
    is_dst: bool,
    abbreviation_index: usize,
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// The offset and abbreviation a TZif file gives for `now`; None for a file that is not one.
#[cfg(test)]
fn lookup(data: &[u8], now: i64) -> Option<(i64, Vec<u8>)> {
    lookup_with_span(data, now).map(|(offset, zone, _)| (offset, zone))
}

/// [`lookup`], with the span around `now` in which the file gives the same answer: from the
/// latest of the transitions at or before `now` to the first one after it (the one the search
/// stopped at), so that any time in it stops the search at the same transition.
fn lookup_with_span(data: &[u8], now: i64) -> Option<(i64, Vec<u8>, Span)> {
    if data.get(..4)? != b"TZif" {
        return None;
    }
    let version = *data.get(4)?;
    let counts = |at: usize| -> Option<[usize; 6]> {
        let mut c = [0usize; 6];
        for (i, v) in c.iter_mut().enumerate() {
            *v = be32(data, at + 20 + 4 * i)? as usize;
        }
        Some(c)
    };
    // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
    let [isut, isstd, leap, time, types, chars] = counts(0)?;
    let v1_len = time * 5 + types * 6 + chars + leap * 8 + isstd + isut;
    // Version 2 and later repeat the data with 64-bit times after the 32-bit block.
    let (base, width, [_, _, _, time, types, chars]) = if version >= b'2' {
        let at = 44 + v1_len;
        if data.get(at..at + 4)? != b"TZif" {
            return None;
        }
        (at + 44, 8, counts(at)?)
    } else {
        (44, 4, [isut, isstd, leap, time, types, chars])
    };
    let transition = |i: usize| -> Option<i64> {
        let at = base + i * width;
        Some(if width == 8 {
            i64::from_be_bytes(data.get(at..at + 8)?.try_into().ok()?)
        } else {
            i64::from(be32(data, at)? as i32)
        })
    };
    let indices = base + time * width;
    let types_at = indices + time;
    let abbreviations = types_at + types * 6;
    let type_of = |i: usize| -> Option<Type> {
        let at = types_at + i * 6;
        Some(Type {
            offset: be32(data, at)? as i32,
            is_dst: *data.get(at + 4)? != 0,
            abbreviation_index: usize::from(*data.get(at + 5)?),
        })
    };
    if types == 0 {
        return None;
    }
    let mut last = None;
    let mut span = Span { from: i64::MIN, until: i64::MAX };
    for i in 0..time {
        let at = transition(i)?;
        if at > now {
            span.until = at;
            break;
        }
        span.from = span.from.max(at);
        last = Some(i);
    }
    let index = match last {
        Some(i) => usize::from(*data.get(indices + i)?),
        None => (0..types).find(|&i| type_of(i).is_some_and(|t| !t.is_dst)).unwrap_or(0),
    };
    let t = type_of(index)?;
    let names = data.get(abbreviations..abbreviations + chars)?;
    let name = names.get(t.abbreviation_index..)?.split(|&b| b == 0).next()?.to_vec();
    Some((i64::from(t.offset), name, span))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C library's answer for a zone at the current time, as `date` prints it.
    fn date_says(zone: &str) -> (i64, String) {
        let out = std::process::Command::new("date")
            .env("TZ", format!("/usr/share/zoneinfo/{zone}"))
            .arg("+%z %Z %s")
            .output()
            .expect("date runs");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut parts = text.split_whitespace();
        let z = parts.next().unwrap();
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let hours: i64 = z[1..3].parse().unwrap();
        let minutes: i64 = z[3..5].parse().unwrap();
        (sign * (hours * 3600 + minutes * 60), parts.next().unwrap().to_string())
    }

    #[test]
    fn the_offset_and_abbreviation_now_agree_with_the_c_library() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        for zone in ["Etc/UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Asia/Tokyo"]
        {
            let data = std::fs::read(format!("/usr/share/zoneinfo/{zone}"))
                .unwrap_or_else(|e| panic!("{zone}: {e} (tzdata must be installed for this test)"));
            let (offset, name) = lookup(&data, now).unwrap();
            assert_eq!((offset, String::from_utf8(name).unwrap()), date_says(zone), "{zone}");
        }
    }

    #[test]
    fn summer_and_winter_follow_the_transitions() {
        let data = std::fs::read("/usr/share/zoneinfo/Europe/Paris").expect("tzdata");
        assert_eq!(lookup(&data, 1_719_835_200), Some((7200, b"CEST".to_vec()))); // 2024-07-01
        assert_eq!(lookup(&data, 1_704_110_400), Some((3600, b"CET".to_vec())));
        // 2024-01-01
    }

    #[test]
    fn the_kept_answer_is_used_only_for_the_same_content_within_its_span() {
        let paris = std::fs::read("/usr/share/zoneinfo/Europe/Paris").expect("tzdata");
        let tokyo = std::fs::read("/usr/share/zoneinfo/Asia/Tokyo").expect("tzdata");
        let summer = 1_719_835_200; // 2024-07-01
        let mut kept = None;
        assert_eq!(answer(&mut kept, &paris, summer), Some((7200, b"CEST".to_vec())));
        let span = kept.as_ref().unwrap().span;
        // 2024-03-31 01:00 UTC to 2024-10-27 01:00 UTC.
        assert_eq!(span, Span { from: 1_711_846_800, until: 1_729_990_800 });
        assert_eq!(answer(&mut kept, &paris, span.until - 1), Some((7200, b"CEST".to_vec())));
        // The transition passed: a fresh lookup, and a new span.
        assert_eq!(answer(&mut kept, &paris, span.until), Some((3600, b"CET".to_vec())));
        assert_eq!(kept.as_ref().unwrap().span.from, span.until);
        // Back before the span (the clock set back): looked up again.
        assert_eq!(answer(&mut kept, &paris, summer), Some((7200, b"CEST".to_vec())));
        // Other content at the same time: looked up again.
        assert_eq!(answer(&mut kept, &tokyo, summer), Some((32400, b"JST".to_vec())));
        // The same length, one byte changed (an abbreviation rewritten in place).
        let mut edited = paris.clone();
        // The 64-bit block's abbreviation table, not the POSIX rule at the end ("…CEST,M3…").
        let at = edited.windows(5).rposition(|w| w == b"CEST\0").unwrap();
        edited[at..at + 4].copy_from_slice(b"XEST");
        assert_eq!(answer(&mut kept, &paris, summer), Some((7200, b"CEST".to_vec())));
        assert_eq!(answer(&mut kept, &edited, summer), Some((7200, b"XEST".to_vec())));
        // Content that is no zone file: nothing, and nothing kept.
        assert_eq!(answer(&mut kept, b"not a zone file", summer), None);
        assert!(kept.is_none());
    }

    #[test]
    fn every_answer_in_a_span_is_the_lookups_own() {
        let data = std::fs::read("/usr/share/zoneinfo/America/New_York").expect("tzdata");
        for now in [i64::MIN, -3_000_000_000, 0, 1_700_000_000, 2_200_000_000, i64::MAX] {
            let (offset, zone, span) = lookup_with_span(&data, now).unwrap();
            assert!(span.from <= now && now < span.until || now == i64::MAX, "{now}: {span:?}");
            for t in [span.from, span.until.saturating_sub(1), now] {
                assert_eq!(lookup(&data, t), Some((offset, zone.clone())), "{now} at {t}");
            }
        }
    }

    #[test]
    fn a_file_that_is_not_tzif_gives_nothing() {
        assert_eq!(lookup(b"not a zone file", 0), None);
        assert_eq!(lookup(b"", 0), None);
    }
}
