//! HTTP dates (RFC 9110 §5.6.7): IMF-fixdate formatting for `Date` and `Last-Modified`, and
//! parsing of the three formats a recipient must accept (`If-Modified-Since`, `If-Range`).

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) const DATE_LEN: usize = 29;

/// Formats `secs` since the epoch as an IMF-fixdate.
pub(crate) fn format(secs: u64) -> [u8; DATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86400;
    let rem = secs % 86400;
    let (year, month, day) = civil_from_days(days as i64);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    let two = |out: &mut [u8; DATE_LEN], at: usize, v: u64| {
        out[at] = b'0' + (v / 10) as u8;
        out[at + 1] = b'0' + (v % 10) as u8;
    };
    two(&mut out, 5, day as u64);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two(&mut out, 12, (year / 100) as u64);
    two(&mut out, 14, (year % 100) as u64);
    two(&mut out, 17, rem / 3600);
    two(&mut out, 20, rem / 60 % 60);
    two(&mut out, 23, rem % 60);
    out
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31): Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month 1-12, day 1-31) to days since 1970-01-01: Howard Hinnant's `days_from_civil`.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch of an HTTP date in any of its three formats: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
/// (`Sun Nov  6 08:49:37 1994`). `None` for anything else (the header is then ignored, as
/// RFC 9110 §13.1.3 says).
pub(crate) fn parse(text: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month_of = |m: &str| MONTHS.iter().position(|&x| x == m).map(|i| i as u32 + 1);
    let num = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let time = |s: &str| -> Option<(u32, u32, u32)> {
        let mut it = s.split(':');
        let (h, m, sec) = (num(it.next()?)?, num(it.next()?)?, num(it.next()?)?);
        (it.next().is_none() && h < 24 && m < 60 && sec <= 60).then_some((h, m, sec))
    };
    let text = text.trim();
    let parts: Vec<&str> = text.split(' ').collect();
    let (year, month, day, (h, m, s)) = if let Some((_, rest)) = text.split_once(", ") {
        let fields: Vec<&str> = rest.split(' ').collect();
        match fields.as_slice() {
            // IMF-fixdate: day month year time GMT
            [day, month, year, t, "GMT"] if year.len() == 4 && day.len() == 2 => {
                (i64::from(num(year)?), month_of(month)?, num(day)?, time(t)?)
            }
            // RFC 850: dd-Mon-yy time GMT (two-digit years: within 50 years, §5.6.7)
            [date, t, "GMT"] => {
                let mut d = date.split('-');
                let (day, month, yy) = (num(d.next()?)?, month_of(d.next()?)?, num(d.next()?)?);
                if d.next().is_some() || yy > 99 {
                    return None;
                }
                let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
                (i64::from(year), month, day, time(t)?)
            }
            _ => return None,
        }
    } else {
        // asctime: Sun Nov  6 08:49:37 1994 (a one-digit day is padded with a space)
        let fields: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        match fields.as_slice() {
            [_, month, day, t, year] if year.len() == 4 => {
                (i64::from(num(year)?), month_of(month)?, num(day)?, time(t)?)
            }
            _ => return None,
        }
    };
    if !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days as u64 * 86400 + u64::from(h) * 3600 + u64::from(m) * 60 + u64::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_formats() {
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse(text), Some(784_111_777), "{text}");
        }
        for secs in [0, 951_782_400, 1_764_000_000, 4_102_444_799] {
            let text = format(secs);
            assert_eq!(parse(std::str::from_utf8(&text).unwrap()), Some(secs));
        }
        for bad in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:00:00 GMT",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
