//! XML Schema `dateTimeStamp` (a `dateTime` with a required time zone), the syntax of
//! `validFrom`, `validUntil`, `created` and `expires`.

/// A parsed `dateTimeStamp`, comparable as an instant (offset applied). Only the ordering
/// is needed here, so it is kept as seconds since the Unix epoch (negative before) plus nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTimeStamp {
    seconds: i64,
    nanos: u32,
}

impl DateTimeStamp {
    /// Milliseconds since the Unix epoch (negative before 1970).
    pub fn unix_ms(&self) -> i64 {
        self.seconds * 1000 + (self.nanos / 1_000_000) as i64
    }
}

/// Parses `YYYY-MM-DDThh:mm:ss[.fff...](Z|(+|-)hh:mm)`, with the lexical rules of XML Schema
/// 1.1 (4+ digit year without a leading zero beyond four digits, optional leading `-`,
/// 24:00:00 only as end of day, required time zone).
pub fn parse_date_time_stamp(s: &str) -> Option<DateTimeStamp> {
    // The lexical form is ASCII; the parser slices by byte (found by the `credential` fuzz
    // target: a non-ASCII character inside the seconds panicked on a char boundary).
    if !s.is_ascii() {
        return None;
    }
    let b = s.as_bytes();
    let mut i = 0;
    let negative = b.first() == Some(&b'-');
    if negative {
        i += 1;
    }
    let year_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let year_len = i - year_start;
    if year_len < 4 || (year_len > 4 && b[year_start] == b'0') || year_len > 9 {
        return None;
    }
    let year: i64 = s[year_start..i].parse().ok()?;
    let year = if negative { -year } else { year };
    let rest = &s[i..];
    let rb = rest.as_bytes();
    // "-MM-DDThh:mm:ss" is 15 bytes.
    if rb.len() < 15
        || rb[0] != b'-'
        || rb[3] != b'-'
        || rb[6] != b'T'
        || rb[9] != b':'
        || rb[12] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = &rest[r];
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (month, day) = (num(1..3)?, num(4..6)?);
    let (hour, minute, second) = (num(7..9)?, num(10..12)?, num(13..15)?);
    let mut j = 15;
    let mut nanos = 0u32;
    if rb.get(j) == Some(&b'.') {
        j += 1;
        let start = j;
        while j < rb.len() && rb[j].is_ascii_digit() {
            j += 1;
        }
        if j == start {
            return None;
        }
        let digits = &rest[start..j];
        for (k, c) in digits.bytes().take(9).enumerate() {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - k as u32);
        }
    }
    let offset_minutes: i64 = match &rest[j..] {
        "Z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && &tz[3..4] == ":" => {
            let th = num(j + 1..j + 3)? as i64;
            let tm = num(j + 4..j + 6)? as i64;
            if tm > 59 || th > 14 || (th == 14 && tm != 0) {
                return None;
            }
            let m = th * 60 + tm;
            if tz.starts_with('-') {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let end_of_day = hour == 24 && minute == 0 && second == 0 && nanos == 0;
    if (hour > 23 && !end_of_day) || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
            - offset_minutes * 60;
    Some(DateTimeStamp { seconds, nanos })
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod unix_tests {
    use super::*;

    #[test]
    fn unix_milliseconds() {
        let t = parse_date_time_stamp("2026-11-24T09:20:00.250Z").unwrap();
        assert_eq!(t.unix_ms(), 1_795_512_000_250);
        let t = parse_date_time_stamp("1970-01-01T01:00:00+01:00").unwrap();
        assert_eq!(t.unix_ms(), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_orders() {
        let a = parse_date_time_stamp("2023-01-01T00:00:00Z").unwrap();
        let b = parse_date_time_stamp("2023-01-01T01:00:00+02:00").unwrap();
        assert!(b < a);
        assert!(parse_date_time_stamp("4023-02-26T01:02:58.447Z").is_some());
        assert!(parse_date_time_stamp("2024-02-29T23:59:59-05:00").is_some());
        assert_eq!(
            parse_date_time_stamp("2023-01-01T24:00:00Z"),
            parse_date_time_stamp("2023-01-02T00:00:00Z")
        );
    }

    #[test]
    fn rejects() {
        for s in [
            "2023-01-01T00:00:00",
            "2023-02-29T00:00:00Z",
            "2023-1-01T00:00:00Z",
            "Sat 25 Feb 2023 07:16:31 PM CST",
            "2023-01-01 00:00:00Z",
            "2023-01-01T00:00:00.Z",
            "02023-01-01T00:00:00Z",
            "2023-01-01T00:00:60Z",
            "2023-01-01T00:00:00+15:00",
        ] {
            assert!(parse_date_time_stamp(s).is_none(), "{s}");
        }
    }
}
