//! A static role's `rotation_schedule`: standard five-field cron (minute, hour, day of month,
//! month, day of week) in UTC, as Vault's parser reads it: `*`, lists (`1,15`), ranges
//! (`9-17`), steps (`*/15`, `0-30/10`), month and day names (`JAN`, `MON`), day of week 0-7
//! (0 and 7 are Sunday), and the descriptors `@yearly`/`@annually`, `@monthly`, `@weekly`,
//! `@daily`/`@midnight`, `@hourly`. When both day fields are restricted a day matching either
//! one matches (cron's rule).

use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

/// A parsed schedule: the allowed values of each field as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_star: bool,
    weekdays_star: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The values one field allows, as a bit set (bit n for value n).
fn field(text: &str, what: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            // Month names count from 1, day names from 0.
            return Ok(i as u32 + min.min(1));
        }
        s.parse::<u32>()
            .ok()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| format!("{what}: {s:?} is not a value from {min} to {max}"))
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{what}: bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            // `5/15` means from 5 to the end in steps of 15.
            (v, if part.contains('/') { max } else { v })
        };
        if lo > hi {
            return Err(format!("{what}: empty range {range:?}"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            // A step as large as u32 allows ends the range instead of wrapping around.
            let Some(next) = v.checked_add(step) else {
                break;
            };
            v = next;
        }
    }
    Ok(bits)
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let expanded = match text.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            _ if text.starts_with('@') => {
                return Err(format!("rotation_schedule: unknown descriptor {text:?}"));
            }
            _ => text,
        };
        let f: Vec<&str> = expanded.split_whitespace().collect();
        let [mi, h, dom, mo, dow] = f.as_slice() else {
            return Err(format!(
                "rotation_schedule {text:?}: expected five fields (minute hour day-of-month month day-of-week)"
            ));
        };
        let mut weekdays = field(dow, "day of week", 0, 7, &WEEKDAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        Ok(Schedule {
            minutes: field(mi, "minute", 0, 59, &[])?,
            hours: field(h, "hour", 0, 23, &[])? as u32,
            days: field(dom, "day of month", 1, 31, &[])? as u32,
            months: field(mo, "month", 1, 12, &MONTHS)? as u16,
            weekdays: weekdays as u8,
            days_star: dom.starts_with('*'),
            weekdays_star: dow.starts_with('*'),
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        if self.months & (1 << u8::from(d.month())) == 0 {
            return false;
        }
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().number_days_from_sunday()) != 0;
        if self.days_star || self.weekdays_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first scheduled minute strictly after `unix` (seconds), within eight years.
    pub fn next_after(&self, unix: i64) -> Option<i64> {
        let minute = unix.div_euclid(60).checked_mul(60)?.checked_add(60)?;
        let start = OffsetDateTime::from_unix_timestamp(minute).ok()?;
        let mut day = start.date();
        let mut first = true;
        for _ in 0..(366 * 8) {
            if self.day_matches(day) {
                let (h0, m0) = if first {
                    (start.hour(), start.minute())
                } else {
                    (0, 0)
                };
                for h in h0..24 {
                    if self.hours & (1 << h) == 0 {
                        continue;
                    }
                    let from = if h == h0 { m0 } else { 0 };
                    for m in from..60 {
                        if self.minutes & (1 << m) != 0 {
                            let t = Time::from_hms(h, m, 0).ok()?;
                            return Some(
                                PrimitiveDateTime::new(day, t).assume_utc().unix_timestamp(),
                            );
                        }
                    }
                }
            }
            first = false;
            day = day.next_day()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2030-03-17T17:46:40Z, a Sunday.
    const T: i64 = 1_900_000_000;

    fn at(s: &Schedule, after: i64) -> String {
        let t = s.next_after(after).unwrap();
        OffsetDateTime::from_unix_timestamp(t)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    }

    #[test]
    fn next_times() {
        let p = |s: &str| Schedule::parse(s).unwrap();
        assert_eq!(at(&p("0 18 * * *"), T), "2030-03-17T18:00:00Z");
        assert_eq!(at(&p("*/15 * * * *"), T), "2030-03-17T18:00:00Z");
        assert_eq!(at(&p("50 17 * * *"), T), "2030-03-17T17:50:00Z");
        assert_eq!(at(&p("40 17 * * *"), T), "2030-03-18T17:40:00Z");
        assert_eq!(at(&p("@hourly"), T), "2030-03-17T18:00:00Z");
        assert_eq!(at(&p("@monthly"), T), "2030-04-01T00:00:00Z");
        assert_eq!(at(&p("30 9 * * MON-FRI"), T), "2030-03-18T09:30:00Z");
        assert_eq!(at(&p("0 0 * FEB 7"), T), "2031-02-02T00:00:00Z");
        // Both day fields restricted: either matches (the 1st, or a Friday).
        assert_eq!(at(&p("0 12 1 * 5"), T), "2030-03-22T12:00:00Z");
        assert_eq!(at(&p("0 0 29 2 *"), T), "2032-02-29T00:00:00Z");
        assert_eq!(at(&p("5/20 10 * * *"), T), "2030-03-18T10:05:00Z");
        // Strictly after: the very minute of a rotation is not scheduled again.
        let s = p("0 18 * * *");
        let t = s.next_after(T).unwrap();
        assert_eq!(s.next_after(t).unwrap(), t + 86400);
        assert!(p("0 0 31 2 *").next_after(T).is_none());
        // Huge steps: the first value only, no wrap-around (which would also overflow).
        assert_eq!(p("5/4294967295 * * * *"), p("5 * * * *"));
        assert_eq!(p("*/4294967295 * * * *"), p("0 * * * *"));
        // Far-away and negative times do not panic.
        assert!(p("@hourly").next_after(i64::MAX).is_none());
        assert!(p("@hourly").next_after(i64::MIN).is_none());
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (s, want) in [
            ("* * *", "five fields"),
            ("60 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day of month"),
            ("* * * 13 *", "month"),
            ("* * * * 8", "day of week"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "empty range"),
            ("@often", "descriptor"),
            ("* * * * * *", "five fields"),
            ("", "five fields"),
            ("-1 * * * *", "minute"),
            ("99999999999 * * * *", "minute"),
            ("1-99999999999 * * * *", "minute"),
        ] {
            let e = Schedule::parse(s).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }
}
