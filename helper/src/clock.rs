//! guest-set-time without hwclock: the helper sets the system clock and the RTC itself.
//!
//! With a time: 7.2's range check (the year, in UTC, must be 1970..2069 — what an RTC can
//! hold), `settimeofday`, then `RTC_SET_TIME` on `/dev/rtc0` with the same second as UTC
//! broken-down time. Without a time: `RTC_RD_TIME` and the system clock set from it. The RTC
//! is taken to run in UTC (hwclock's default when no `/etc/adjtime` says otherwise).
//!
//! The calendar conversions are pure and tested; the syscalls are thin wrappers.

use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::libc;
use nix::sys::stat::Mode;

pub const RTC_DEVICE: &str = "/dev/rtc0";
use qga_protocol::set_time::{time_in_range, FIRST_YEAR};

const NS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// `struct rtc_time` of <linux/rtc.h> (the layout of `struct tm`'s first nine fields).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtcTime {
    pub tm_sec: libc::c_int,
    pub tm_min: libc::c_int,
    pub tm_hour: libc::c_int,
    pub tm_mday: libc::c_int,
    /// 0..=11
    pub tm_mon: libc::c_int,
    /// Years since 1900.
    pub tm_year: libc::c_int,
    pub tm_wday: libc::c_int,
    pub tm_yday: libc::c_int,
    pub tm_isdst: libc::c_int,
}

/// RTC_RD_TIME of <linux/rtc.h>: `_IOR('p', 0x09, struct rtc_time)`. The seccomp filter allows
/// exactly the two RTC request numbers defined here.
pub const RTC_RD_TIME: u64 = nix::request_code_read!(b'p', 0x09, std::mem::size_of::<RtcTime>()) as u64;
/// RTC_SET_TIME of <linux/rtc.h>: `_IOW('p', 0x0a, struct rtc_time)`.
pub const RTC_SET_TIME: u64 = nix::request_code_write!(b'p', 0x0a, std::mem::size_of::<RtcTime>()) as u64;

nix::ioctl_read_bad!(rtc_rd_time, RTC_RD_TIME, RtcTime);
nix::ioctl_write_ptr_bad!(rtc_set_time, RTC_SET_TIME, RtcTime);

#[derive(Debug, PartialEq, Eq)]
pub enum ClockError {
    InvalidTime,
    SetSystem(Errno),
    SetRtc(Errno),
    ReadRtc(Errno),
    RtcInvalid,
}

impl std::fmt::Display for ClockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClockError::InvalidTime => write!(f, "Invalid time"),
            ClockError::SetSystem(e) => write!(f, "Failed to set time to guest: {}", e.desc()),
            ClockError::SetRtc(e) => write!(f, "failed to set hardware clock: {}", e.desc()),
            ClockError::ReadRtc(e) => write!(f, "failed to read hardware clock: {}", e.desc()),
            ClockError::RtcInvalid => write!(f, "hardware clock holds an invalid time"),
        }
    }
}

impl std::error::Error for ClockError {}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1..=12). Counts in 400-year eras
/// of 146097 days, with years starting in March so the leap day is the era's last.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month 1..=12, day 1..=31).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The UTC year of a count of seconds since the epoch.
pub fn year_of(secs: i64) -> i64 {
    civil_from_days(secs.div_euclid(SECS_PER_DAY)).0
}

/// Splits nanoseconds into `timeval` fields the way 7.2 does (C division, truncating toward
/// zero) and applies its range check.
pub fn checked_timeval(time_ns: i64) -> Result<(i64, i64), ClockError> {
    let sec = time_ns / NS_PER_SEC;
    let usec = (time_ns % NS_PER_SEC) / 1000;
    if !time_in_range(time_ns) {
        return Err(ClockError::InvalidTime);
    }
    Ok((sec, usec))
}

/// UTC broken-down time for the RTC. Only years an `int` tm_year can hold are representable;
/// the range check keeps callers far inside that.
pub fn rtc_from_unix(secs: i64) -> Result<RtcTime, ClockError> {
    let days = secs.div_euclid(SECS_PER_DAY);
    let rem = secs.rem_euclid(SECS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let int = |v: i64| libc::c_int::try_from(v).map_err(|_| ClockError::InvalidTime);
    Ok(RtcTime {
        tm_sec: int(rem % 60)?,
        tm_min: int(rem / 60 % 60)?,
        tm_hour: int(rem / 3600)?,
        tm_mday: int(d)?,
        tm_mon: int(m - 1)?,
        tm_year: int(y - 1900)?,
        // 1970-01-01 was a Thursday (4).
        tm_wday: int((days + 4).rem_euclid(7))?,
        tm_yday: int(days - days_from_civil(y, 1, 1))?,
        tm_isdst: 0,
    })
}

/// Seconds since the epoch of an RTC reading, refusing any field out of its range and any
/// time before the epoch (the system clock cannot be set there).
pub fn unix_from_rtc(t: &RtcTime) -> Result<i64, ClockError> {
    let y = i64::from(t.tm_year) + 1900;
    let m = i64::from(t.tm_mon) + 1;
    let d = i64::from(t.tm_mday);
    if y < FIRST_YEAR
        || !(1..=12).contains(&m)
        || !(1..=days_in_month(y, m)).contains(&d)
        || !(0..=23).contains(&t.tm_hour)
        || !(0..=59).contains(&t.tm_min)
        || !(0..=59).contains(&t.tm_sec)
    {
        return Err(ClockError::RtcInvalid);
    }
    Ok(days_from_civil(y, m, d) * SECS_PER_DAY
        + i64::from(t.tm_hour) * 3600
        + i64::from(t.tm_min) * 60
        + i64::from(t.tm_sec))
}

fn settimeofday(sec: i64, usec: i64) -> Result<(), Errno> {
    let tv = libc::timeval { tv_sec: sec as libc::time_t, tv_usec: usec as libc::suseconds_t };
    // SAFETY: `tv` is a valid timeval for the duration of the call; a null timezone is allowed.
    let r = unsafe { libc::settimeofday(&tv, std::ptr::null()) };
    Errno::result(r).map(drop)
}

fn open_rtc() -> Result<std::os::fd::OwnedFd, Errno> {
    // RTC ioctls work on a read-only descriptor (as hwclock opens it).
    open(RTC_DEVICE, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
}

fn write_rtc(secs: i64) -> Result<(), ClockError> {
    let tm = rtc_from_unix(secs)?;
    let fd = open_rtc().map_err(ClockError::SetRtc)?;
    // SAFETY: `fd` is open for this scope and `tm` is a valid rtc_time the kernel only reads.
    unsafe { rtc_set_time(fd.as_raw_fd(), &tm) }.map_err(ClockError::SetRtc)?;
    Ok(())
}

fn read_rtc() -> Result<RtcTime, ClockError> {
    let fd = open_rtc().map_err(ClockError::ReadRtc)?;
    let mut tm = RtcTime::default();
    // SAFETY: `fd` is open for this scope and `tm` is a writable rtc_time of the right size.
    unsafe { rtc_rd_time(fd.as_raw_fd(), &mut tm) }.map_err(ClockError::ReadRtc)?;
    Ok(tm)
}

/// guest-set-time.
pub fn set_time(time_ns: Option<i64>) -> Result<(), ClockError> {
    match time_ns {
        Some(ns) => {
            let (sec, usec) = checked_timeval(ns)?;
            settimeofday(sec, usec).map_err(ClockError::SetSystem)?;
            write_rtc(sec)
        }
        None => {
            let sec = unix_from_rtc(&read_rtc()?)?;
            settimeofday(sec, 0).map_err(ClockError::SetSystem)
        }
    }
}

#[cfg(test)]
mod tests {
    use qga_protocol::set_time::{END_SECS, LAST_YEAR};

    #[test]
    fn the_shared_range_ends_where_the_calendar_says() {
        assert_eq!(END_SECS, days_from_civil(LAST_YEAR + 1, 1, 1) * SECS_PER_DAY);
        assert_eq!(year_of(END_SECS - 1), LAST_YEAR);
        assert_eq!(year_of(END_SECS), LAST_YEAR + 1);
    }

    use super::*;

    fn tm(y: i32, mon: i32, d: i32, h: i32, mi: i32, s: i32) -> RtcTime {
        RtcTime {
            tm_sec: s,
            tm_min: mi,
            tm_hour: h,
            tm_mday: d,
            tm_mon: mon - 1,
            tm_year: y - 1900,
            ..Default::default()
        }
    }

    #[test]
    fn request_numbers_are_the_kernel_headers() {
        assert_eq!(RTC_RD_TIME, 0x8024_7009);
        assert_eq!(RTC_SET_TIME, 0x4024_700a);
    }

    #[test]
    fn the_epoch_is_1970_01_01_thursday() {
        let t = rtc_from_unix(0).unwrap();
        assert_eq!(t, RtcTime { tm_mday: 1, tm_year: 70, tm_wday: 4, ..Default::default() });
        assert_eq!(unix_from_rtc(&t), Ok(0));
    }

    #[test]
    fn the_last_second_of_2069_converts_both_ways() {
        // 2069-12-31T23:59:59Z
        let secs = 3_155_759_999;
        let t = rtc_from_unix(secs).unwrap();
        assert_eq!((t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec), (169, 11, 31, 23, 59, 59));
        assert_eq!(t.tm_yday, 364);
        assert_eq!(unix_from_rtc(&t), Ok(secs));
    }

    #[test]
    fn leap_days_are_handled() {
        // 2024-02-29T12:00:00Z and 2000-02-29 (a 400-year leap year).
        let t = rtc_from_unix(1_709_208_000).unwrap();
        assert_eq!((t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour), (124, 1, 29, 12));
        assert_eq!(t.tm_yday, 59);
        assert_eq!(unix_from_rtc(&tm(2000, 2, 29, 0, 0, 0)), Ok(951_782_400));
        assert_eq!(unix_from_rtc(&tm(2023, 2, 29, 0, 0, 0)), Err(ClockError::RtcInvalid));
        assert_eq!(unix_from_rtc(&tm(2100, 2, 29, 0, 0, 0)), Err(ClockError::RtcInvalid));
    }

    #[test]
    fn conversion_round_trips_across_the_range() {
        let mut s = 0i64;
        while s < 3_155_760_000 {
            assert_eq!(unix_from_rtc(&rtc_from_unix(s).unwrap()), Ok(s), "{s}");
            s += 86_399 * 7 + 12_345;
        }
    }

    #[test]
    fn invalid_rtc_fields_are_refused() {
        for bad in [
            tm(1969, 12, 31, 23, 59, 59),
            tm(2020, 13, 1, 0, 0, 0),
            tm(2020, 0, 1, 0, 0, 0),
            tm(2020, 4, 31, 0, 0, 0),
            tm(2020, 1, 0, 0, 0, 0),
            tm(2020, 1, 1, 24, 0, 0),
            tm(2020, 1, 1, 0, 60, 0),
            tm(2020, 1, 1, 0, 0, 60),
            tm(2020, 1, 1, -1, 0, 0),
        ] {
            assert_eq!(unix_from_rtc(&bad), Err(ClockError::RtcInvalid), "{bad:?}");
        }
    }

    #[test]
    fn the_time_range_is_1970_to_2069() {
        assert_eq!(checked_timeval(0), Ok((0, 0)));
        assert_eq!(checked_timeval(1_700_000_000_123_456_789), Ok((1_700_000_000, 123_456)));
        assert_eq!(checked_timeval(3_155_759_999 * NS_PER_SEC), Ok((3_155_759_999, 0)));
        assert_eq!(checked_timeval(3_155_760_000 * NS_PER_SEC), Err(ClockError::InvalidTime));
        assert_eq!(checked_timeval(-NS_PER_SEC), Err(ClockError::InvalidTime));
        assert_eq!(checked_timeval(i64::MAX), Err(ClockError::InvalidTime));
        assert_eq!(checked_timeval(i64::MIN), Err(ClockError::InvalidTime));
        assert_eq!(ClockError::InvalidTime.to_string(), "Invalid time");
    }

    #[test]
    fn small_negative_times_pass_the_check_like_72() {
        // -1 ns truncates to second 0 and is left to settimeofday to judge (7.2: EINVAL).
        assert_eq!(checked_timeval(-1), Ok((0, 0)));
        assert_eq!(checked_timeval(-500_000_000), Ok((0, -500_000)));
    }

    #[test]
    fn civil_conversions_agree_on_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(year_of(-1), 1969);
    }

    #[test]
    fn error_texts() {
        assert_eq!(
            ClockError::SetSystem(Errno::EPERM).to_string(),
            "Failed to set time to guest: Operation not permitted"
        );
        assert_eq!(
            ClockError::SetRtc(Errno::ENOENT).to_string(),
            "failed to set hardware clock: No such file or directory"
        );
    }
}
