//! Change-freeze windows (`sluice.dev/freeze`, DESIGN §2 and §6): their text format and the one
//! question the webhook asks of them, "is this instant frozen?".
//!
//! Two forms, both in UTC so that nobody's laptop timezone decides a freeze:
//!
//! ```text
//! absolute   2026-12-24T00:00:00Z/2026-12-27T00:00:00Z     RFC 3339 start/end, start < end
//! weekly     Sat 00:00-Mon 06:00 UTC                        day HH:MM-day HH:MM, may wrap Sunday→Monday
//! ```
//!
//! Both are half-open (`start <= t < end`). A weekly window whose start equals its end is refused:
//! it would mean either "never" or "always", and a freeze should say which on purpose.
//! The `freeze` setting holds a YAML list of such strings (a single string is one window).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MINUTES_PER_DAY: u32 = 24 * 60;
const MINUTES_PER_WEEK: u32 = 7 * MINUTES_PER_DAY;
/// Weekday names, Monday first (minute 0 of the week is Monday 00:00 UTC).
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A period in which template changes of managed Deployments are refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FreezeWindow {
    /// One absolute period, `[start, end)`.
    Absolute { start: SystemTime, end: SystemTime },
    /// A period recurring every week, `[start, end)` in minutes since Monday 00:00 UTC;
    /// `end < start` wraps over the end of the week.
    Weekly { start: u32, end: u32 },
}

/// Why a freeze window's text was not understood; the policy parser puts it after the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FreezeParseError(String);

impl FreezeParseError {
    /// Low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        "invalid_freeze_window"
    }
}

const FORMAT_HINT: &str =
    "use e.g. 2026-12-24T00:00:00Z/2026-12-27T00:00:00Z or \"Sat 00:00-Mon 06:00 UTC\"";

impl FreezeWindow {
    /// Whether `t` falls inside the window.
    pub fn contains(&self, t: SystemTime) -> bool {
        match *self {
            FreezeWindow::Absolute { start, end } => start <= t && t < end,
            FreezeWindow::Weekly { start, end } => {
                let m = minute_of_week(t);
                if start < end {
                    start <= m && m < end
                } else {
                    m >= start || m < end
                }
            }
        }
    }
}

/// Minutes since Monday 00:00 UTC of the week holding `t` (1970-01-01 was a Thursday).
fn minute_of_week(t: SystemTime) -> u32 {
    let secs: i128 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i128,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i128),
    };
    let minutes = secs.div_euclid(60) + 3 * MINUTES_PER_DAY as i128;
    minutes.rem_euclid(MINUTES_PER_WEEK as i128) as u32
}

impl std::str::FromStr for FreezeWindow {
    type Err = FreezeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some((a, b)) = s.split_once('/') {
            let start = parse_instant(a)?;
            let end = parse_instant(b)?;
            if start >= end {
                return Err(FreezeParseError(format!(
                    "ends before it starts; put the earlier instant first, {FORMAT_HINT}"
                )));
            }
            return Ok(FreezeWindow::Absolute { start, end });
        }
        let Some(body) = s.strip_suffix("UTC").map(str::trim_end) else {
            return Err(FreezeParseError(format!(
                "is not a freeze window (weekly windows end in UTC); {FORMAT_HINT}"
            )));
        };
        let (a, b) = body
            .split_once('-')
            .ok_or_else(|| FreezeParseError(format!("is not a freeze window; {FORMAT_HINT}")))?;
        let start = parse_weekly_point(a)?;
        let end = parse_weekly_point(b)?;
        if start == end {
            return Err(FreezeParseError(
                "starts and ends at the same minute; give a window of at least one minute".into(),
            ));
        }
        Ok(FreezeWindow::Weekly { start, end })
    }
}

fn parse_instant(s: &str) -> Result<SystemTime, FreezeParseError> {
    humantime::parse_rfc3339(s.trim()).map_err(|_| {
        FreezeParseError(format!(
            "has {:?}, which is not an RFC 3339 UTC instant; {FORMAT_HINT}",
            s.trim()
        ))
    })
}

/// `Sat 06:30` → minutes since Monday 00:00.
fn parse_weekly_point(s: &str) -> Result<u32, FreezeParseError> {
    let bad = || {
        FreezeParseError(format!(
            "has {:?}, which is not a weekday and time like Sat 00:00; {FORMAT_HINT}",
            s.trim()
        ))
    };
    let (day, time) = s.trim().split_once(' ').ok_or_else(bad)?;
    let day = DAYS
        .iter()
        .position(|d| d.eq_ignore_ascii_case(day.trim()))
        .ok_or_else(bad)? as u32;
    let (h, m) = time.trim().split_once(':').ok_or_else(bad)?;
    let two_digits = |x: &str| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(day * MINUTES_PER_DAY + h * 60 + m)
}

impl std::fmt::Display for FreezeWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            FreezeWindow::Absolute { start, end } => write!(
                f,
                "{}/{}",
                humantime::format_rfc3339_seconds(start),
                humantime::format_rfc3339_seconds(end)
            ),
            FreezeWindow::Weekly { start, end } => {
                let point = |m: u32| {
                    let day = DAYS[(m / MINUTES_PER_DAY) as usize];
                    let rest = m % MINUTES_PER_DAY;
                    format!("{day} {:02}:{:02}", rest / 60, rest % 60)
                };
                write!(f, "{}-{} UTC", point(start), point(end))
            }
        }
    }
}

/// Next instant at or after `from` that is not inside any of `windows`, looking at most two weeks
/// ahead; `None` if the freeze lasts longer than that. For messages such as "frozen until …".
pub fn frozen_until(windows: &[FreezeWindow], from: SystemTime) -> Option<SystemTime> {
    let mut t = from;
    let horizon = from + Duration::from_secs(14 * 24 * 3600);
    while windows.iter().any(|w| w.contains(t)) {
        if t >= horizon {
            return None;
        }
        // Jump to the end of whichever window holds t (the earliest exit), then look again.
        let next = windows
            .iter()
            .filter(|w| w.contains(t))
            .map(|w| window_end_after(w, t))
            .min()?;
        t = next;
    }
    Some(t)
}

fn window_end_after(w: &FreezeWindow, t: SystemTime) -> SystemTime {
    match *w {
        FreezeWindow::Absolute { end, .. } => end,
        FreezeWindow::Weekly { end, .. } => {
            let now = minute_of_week(t);
            let ahead = (end + MINUTES_PER_WEEK - now) % MINUTES_PER_WEEK;
            let into_minute = match t.duration_since(UNIX_EPOCH) {
                Ok(d) => Duration::new(d.as_secs() % 60, d.subsec_nanos()),
                Err(_) => Duration::ZERO,
            };
            t + Duration::from_secs(ahead as u64 * 60) - into_minute
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn an_absolute_window_holds_its_start_but_not_its_end() {
        let w: FreezeWindow = "2026-12-24T00:00:00Z/2026-12-27T00:00:00Z".parse().unwrap();
        assert!(!w.contains(at("2026-12-23T23:59:59Z")));
        assert!(w.contains(at("2026-12-24T00:00:00Z")));
        assert!(w.contains(at("2026-12-26T12:00:00Z")));
        assert!(!w.contains(at("2026-12-27T00:00:00Z")));
    }

    #[test]
    fn a_weekly_window_wraps_from_saturday_to_monday() {
        let w: FreezeWindow = "Sat 00:00-Mon 06:00 UTC".parse().unwrap();
        // 2026-11-27 is a Friday.
        assert!(!w.contains(at("2026-11-27T23:59:00Z")));
        assert!(w.contains(at("2026-11-28T00:00:00Z")));
        assert!(w.contains(at("2026-11-29T15:00:00Z")));
        assert!(w.contains(at("2026-11-30T05:59:59Z")));
        assert!(!w.contains(at("2026-11-30T06:00:00Z")));
        assert!(!w.contains(at("2026-12-02T12:00:00Z")));
    }

    #[test]
    fn a_weekly_window_within_one_day_does_not_wrap() {
        let w: FreezeWindow = "fri 18:00-Fri 23:30 UTC".parse().unwrap();
        assert!(w.contains(at("2026-11-27T18:00:00Z")));
        assert!(!w.contains(at("2026-11-27T23:30:00Z")));
        assert!(!w.contains(at("2026-11-26T19:00:00Z")));
    }

    #[test]
    fn weekly_windows_work_before_the_epoch_too() {
        let w: FreezeWindow = "Wed 00:00-Thu 00:00 UTC".parse().unwrap();
        // 1969-12-31 was a Wednesday.
        assert!(w.contains(at("1970-01-01T00:00:00Z") - Duration::from_secs(3600)));
        assert!(!w.contains(at("1970-01-01T00:00:00Z")));
    }

    #[test]
    fn windows_print_in_the_form_they_are_written() {
        for s in [
            "Sat 00:00-Mon 06:00 UTC",
            "2026-12-24T00:00:00Z/2026-12-27T00:00:00Z",
        ] {
            assert_eq!(s.parse::<FreezeWindow>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn malformed_windows_are_refused_with_the_format_to_use() {
        for bad in [
            "",
            "Saturday",
            "Sat 00:00-Mon 06:00",
            "Sat 00:00-Mon 06:00 CET",
            "Sat 24:00-Mon 06:00 UTC",
            "Sat 0:00-Mon 06:00 UTC",
            "Xyz 00:00-Mon 06:00 UTC",
            "Sat 06:00-Sat 06:00 UTC",
            "2026-12-27T00:00:00Z/2026-12-24T00:00:00Z",
            "2026-12-24/2026-12-27",
        ] {
            let err = bad.parse::<FreezeWindow>().unwrap_err().to_string();
            assert!(
                err.contains("Sat 00:00") || err.contains("same minute") || err.contains("earlier"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn frozen_until_finds_the_end_of_overlapping_windows() {
        let ws: Vec<FreezeWindow> = ["Sat 00:00-Mon 06:00 UTC", "Mon 05:00-Mon 08:00 UTC"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let end = frozen_until(&ws, at("2026-11-28T10:20:30.25Z")).unwrap();
        assert_eq!(end, at("2026-11-30T08:00:00Z"));
        assert_eq!(
            frozen_until(&ws, at("2026-11-27T10:00:00Z")),
            Some(at("2026-11-27T10:00:00Z"))
        );
    }
}
