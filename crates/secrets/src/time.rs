//! The two timestamp rules sops depends on: YAML timestamps as go-yaml v3 resolves them, and
//! `lastmodified` as Go re-formats it for the MAC's additional data.

use std::time::{SystemTime, UNIX_EPOCH};

/// A parsed timestamp: civil date and time plus the offset in minutes (`None` for `Z`).
struct Stamp {
    date: (i64, u32, u32),
    time: (u32, u32, u32),
    /// Fractional seconds as written, without trailing zeros.
    fraction: String,
    offset_minutes: Option<i32>,
}

impl Stamp {
    fn format(&self, with_fraction: bool) -> String {
        let (year, month, day) = self.date;
        let (hour, minute, second) = self.time;
        let mut out = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
        if with_fraction && !self.fraction.is_empty() {
            out.push('.');
            out.push_str(&self.fraction);
        }
        match self.offset_minutes {
            None | Some(0) => out.push('Z'),
            Some(offset) => {
                let sign = if offset < 0 { '-' } else { '+' };
                let offset = offset.unsigned_abs();
                out.push_str(&format!("{sign}{:02}:{:02}", offset / 60, offset % 60));
            }
        }
        out
    }
}

/// Reads digits (between `min` and `max` of them) from the front of `text`.
fn digits(text: &str, min: usize, max: usize) -> Option<(u32, &str)> {
    let len = text
        .bytes()
        .take(max)
        .take_while(u8::is_ascii_digit)
        .count();
    if len < min {
        return None;
    }
    Some((text[..len].parse().ok()?, &text[len..]))
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses `YYYY-M-D`, optionally followed by `T`/`t`/space and `h:m:s[.frac]`, and (after `T`)
/// a mandatory `Z` or `±hh:mm`: the layouts go-yaml v3 accepts.
fn parse(text: &str) -> Option<Stamp> {
    let (year, rest) = digits(text, 4, 4)?;
    let (month, rest) = digits(rest.strip_prefix('-')?, 1, 2)?;
    let (day, rest) = digits(rest.strip_prefix('-')?, 1, 2)?;
    let year = i64::from(year);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut stamp = Stamp {
        date: (year, month, day),
        time: (0, 0, 0),
        fraction: String::new(),
        offset_minutes: None,
    };
    if rest.is_empty() {
        return Some(stamp);
    }
    let separator = rest.chars().next()?;
    let rest = &rest[1..];
    let (hour, rest) = digits(rest, 1, 2)?;
    let (minute, rest) = digits(rest.strip_prefix(':')?, 1, 2)?;
    let (second, mut rest) = digits(rest.strip_prefix(':')?, 1, 2)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    stamp.time = (hour, minute, second);
    if let Some(after_dot) = rest.strip_prefix('.') {
        let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 || len > 9 {
            return None;
        }
        stamp.fraction = after_dot[..len].trim_end_matches('0').to_owned();
        rest = &after_dot[len..];
    }
    match separator {
        ' ' if rest.is_empty() => Some(stamp),
        'T' | 't' if rest == "Z" => Some(stamp),
        'T' | 't' => {
            let sign = match rest.chars().next()? {
                '+' => 1,
                '-' => -1,
                _ => return None,
            };
            let (hours, tail) = digits(&rest[1..], 2, 2)?;
            let (minutes, tail) = digits(tail.strip_prefix(':')?, 2, 2)?;
            if !tail.is_empty() || hours > 23 || minutes > 59 {
                return None;
            }
            stamp.offset_minutes = Some(sign * (hours * 60 + minutes) as i32);
            Some(stamp)
        }
        _ => None,
    }
}

/// The RFC 3339 text sops stores for a plain YAML scalar that go-yaml resolves to a
/// timestamp (`2024-1-2` becomes `2024-01-02T00:00:00Z`), or `None` if it is not one.
pub(crate) fn yaml_timestamp(text: &str) -> Option<String> {
    parse(text).map(|stamp| stamp.format(true))
}

/// The additional data of the MAC: `lastmodified` as Go's `time.RFC3339` re-formats it
/// (fractional seconds dropped, a zero offset written `Z`).
pub(crate) fn mac_additional_data(lastmodified: &str) -> Option<String> {
    let stamp = parse(lastmodified)?;
    (lastmodified.len() >= 19 && lastmodified.as_bytes()[10].eq_ignore_ascii_case(&b't'))
        .then(|| stamp.format(false))
}

/// The current UTC time in the form sops writes to `lastmodified`.
pub(crate) fn now() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let days = (seconds / 86_400) as i64;
    let second_of_day = seconds % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), so no date crate is needed.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    Stamp {
        date: (year, month, day),
        time: (
            (second_of_day / 3600) as u32,
            (second_of_day % 3600 / 60) as u32,
            (second_of_day % 60) as u32,
        ),
        fraction: String::new(),
        offset_minutes: None,
    }
    .format(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_timestamps_resolve_like_go_yaml() {
        assert_eq!(
            yaml_timestamp("2024-1-2").as_deref(),
            Some("2024-01-02T00:00:00Z")
        );
        assert_eq!(
            yaml_timestamp("2024-01-02T03:04:05.500+02:00").as_deref(),
            Some("2024-01-02T03:04:05.5+02:00")
        );
        assert_eq!(
            yaml_timestamp("2024-01-02 3:4:5").as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(yaml_timestamp("2024-01-02T03:04:05"), None);
        assert_eq!(yaml_timestamp("2023-02-29"), None);
        assert_eq!(yaml_timestamp("20240102"), None);
    }

    #[test]
    fn mac_additional_data_drops_fractions_and_zero_offsets() {
        let aad = |text| mac_additional_data(text).unwrap();
        assert_eq!(aad("2023-12-25T10:31:01Z"), "2023-12-25T10:31:01Z");
        assert_eq!(aad("2023-12-25T10:31:01.123Z"), "2023-12-25T10:31:01Z");
        assert_eq!(aad("2023-12-25T10:31:01+00:00"), "2023-12-25T10:31:01Z");
        assert_eq!(
            aad("2023-12-25T10:31:01-05:30"),
            "2023-12-25T10:31:01-05:30"
        );
        assert_eq!(mac_additional_data("2023-12-25"), None);
    }

    #[test]
    fn now_is_an_rfc3339_utc_second() {
        let now = now();
        assert_eq!(now.len(), 20, "{now}");
        assert_eq!(mac_additional_data(&now).as_deref(), Some(now.as_str()));
    }
}
