//! Time zones as PostgreSQL reads them: the session's `TimeZone` setting and
//! the zone names functions take (`time_bucket(..., 'Europe/Berlin')`,
//! `alter_job(timezone => ...)`).
//!
//! A zone is a named zone of the IANA database or a fixed offset. The two
//! readers follow PostgreSQL's (`check_timezone` and `timestamptz_zone`),
//! including their sign conventions, which differ:
//!
//! ```text
//!   SET timezone = '-08'              a number of hours (ISO sign)   UTC-8, shown <-08>+08
//!   SET TIME ZONE INTERVAL '-08:00'   an interval (ISO sign)         UTC-8, shown <-08>+08
//!   SET timezone = '+03:00'           a POSIX zone (sign inverted)   UTC-3, shown +03:00
//!   SET timezone = 'UTC+3'            a POSIX zone (sign inverted)   UTC-3, shown UTC+3
//!   time_bucket(w, t, '+03:00')       a POSIX zone, as above         UTC-3
//!   time_bucket(w, t, 'EST')          an abbreviation first          UTC-5
//! ```
//!
//! Every place that needs the session's zone reads it from the setting's
//! text with [`PgTimeZone::of_setting`], so output, input of literals,
//! `to_char`, COPY and `SHOW` agree.

use std::sync::Arc;

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use tempora_common::{SqlState, TemporaError};

/// PostgreSQL's longest zone name (`TZ_STRLEN_MAX`).
const TZ_STRLEN_MAX: usize = 255;

/// A zone: an IANA zone, or a fixed offset with the abbreviation
/// PostgreSQL gives it (`to_char(..., 'TZ')`).
#[derive(Debug, Clone, PartialEq)]
pub enum PgTimeZone {
    Named(Tz),
    Fixed {
        /// Seconds east of UTC (ISO sign).
        east: i32,
        abbrev: Arc<str>,
    },
}

impl Default for PgTimeZone {
    fn default() -> Self {
        PgTimeZone::Named(chrono_tz::UTC)
    }
}

fn invalid_setting(value: &str) -> TemporaError {
    TemporaError::new(
        SqlState::INVALID_PARAMETER_VALUE,
        format!("invalid value for parameter \"TimeZone\": \"{value}\""),
    )
}

/// An IANA zone by name, case-insensitively as PostgreSQL matches them.
pub fn find_named(name: &str) -> Option<Tz> {
    if let Ok(tz) = name.parse::<Tz>() {
        return Some(tz);
    }
    chrono_tz::TZ_VARIANTS
        .iter()
        .find(|t| t.name().eq_ignore_ascii_case(name))
        .copied()
}

/// The offset (seconds east) of an abbreviation of PostgreSQL's default
/// set, given in lower case; PostgreSQL tries these before zone names in
/// `AT TIME ZONE` and in timestamp input.
pub fn abbreviation_offset(lower: &str) -> Option<i32> {
    Some(match lower {
        "utc" | "gmt" | "z" | "zulu" | "ut" => 0,
        "est" => -5 * 3600,
        "edt" => -4 * 3600,
        "cst" => -6 * 3600,
        "cdt" => -5 * 3600,
        "mst" => -7 * 3600,
        "mdt" => -6 * 3600,
        "pst" => -8 * 3600,
        "pdt" => -7 * 3600,
        "akst" => -9 * 3600,
        "akdt" => -8 * 3600,
        "hst" => -10 * 3600,
        "ast" => -4 * 3600,
        "adt" => -3 * 3600,
        "nst" => -(3 * 3600 + 1800),
        "ndt" => -(2 * 3600 + 1800),
        "wet" => 0,
        "west" => 3600,
        "bst" => 3600,
        "cet" | "met" => 3600,
        "cest" | "mest" => 2 * 3600,
        "eet" => 2 * 3600,
        "eest" => 3 * 3600,
        "msk" => 3 * 3600,
        "ist" => 2 * 3600,
        "jst" => 9 * 3600,
        "kst" => 9 * 3600,
        "hkt" => 8 * 3600,
        "sgt" => 8 * 3600,
        "awst" => 8 * 3600,
        "acst" => 9 * 3600 + 1800,
        "acdt" => 10 * 3600 + 1800,
        "aest" => 10 * 3600,
        "aedt" => 11 * 3600,
        "nzst" => 12 * 3600,
        "nzdt" => 13 * 3600,
        _ => return None,
    })
}

/// `HH[:MM[:SS]]` of an offset's magnitude, as PostgreSQL names offsets.
fn offset_digits(secs: i32) -> String {
    let s = secs.unsigned_abs();
    let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
    match (m, sec) {
        (0, 0) => format!("{h:02}"),
        (_, 0) => format!("{h:02}:{m:02}"),
        _ => format!("{h:02}:{m:02}:{sec:02}"),
    }
}

/// Why a POSIX zone string is not taken.
enum PosixFault {
    /// Not a POSIX zone: the name is unknown.
    Unknown,
    /// A POSIX zone Tempora does not follow (daylight saving rules, an
    /// offset of a day or more).
    Unsupported,
}

/// A POSIX zone without daylight saving time, `STD offset` (`UTC+3`,
/// `<-08>+08`, `+03:00`; PostgreSQL allows an empty name): its offset east
/// of UTC (POSIX offsets count west) and its abbreviation.
fn parse_posix(upper: &str) -> Result<(i32, String), PosixFault> {
    let (abbrev, rest) = if let Some(quoted) = upper.strip_prefix('<') {
        let end = quoted.find('>').ok_or(PosixFault::Unknown)?;
        (&quoted[..end], &quoted[end + 1..])
    } else {
        let end = upper
            .find(|c: char| c.is_ascii_digit() || matches!(c, ',' | '-' | '+'))
            .unwrap_or(upper.len());
        (&upper[..end], &upper[end..])
    };
    if rest.is_empty() {
        return Err(PosixFault::Unknown);
    }
    let (west_sign, rest) = match rest.as_bytes()[0] {
        b'-' => (-1, &rest[1..]),
        b'+' => (1, &rest[1..]),
        _ => (1, rest),
    };
    // hh[:mm[:ss]], each a run of digits within its limit.
    let mut fields = [0u32; 3];
    let mut rest = rest;
    for (i, max) in [167u32, 59, 60].into_iter().enumerate() {
        if i > 0 {
            match rest.strip_prefix(':') {
                Some(r) => rest = r,
                None => break,
            }
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(PosixFault::Unknown);
        }
        let mut value = 0u32;
        for b in rest[..digits].bytes() {
            value = value * 10 + u32::from(b - b'0');
            if value > max {
                return Err(PosixFault::Unknown);
            }
        }
        fields[i] = value;
        rest = &rest[digits..];
    }
    if !rest.is_empty() {
        // A daylight saving part (`EST5EDT,M3.2.0,M11.1.0`) or none.
        return Err(if looks_like_dst(rest) {
            PosixFault::Unsupported
        } else {
            PosixFault::Unknown
        });
    }
    let west = fields[0] * 3600 + fields[1] * 60 + fields[2];
    if west >= 86_400 {
        return Err(PosixFault::Unsupported);
    }
    Ok((-west_sign * west as i32, abbrev.to_string()))
}

/// Whether the rest of a POSIX zone is a daylight saving part: a name
/// (letters, or `<...>`), an optional offset, optional `,` rules.
fn looks_like_dst(rest: &str) -> bool {
    let after_name = if let Some(quoted) = rest.strip_prefix('<') {
        match quoted.find('>') {
            Some(end) => &quoted[end + 1..],
            None => return false,
        }
    } else {
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        if letters == 0 {
            return false;
        }
        &rest[letters..]
    };
    let offset = after_name
        .trim_start_matches(['+', '-'])
        .trim_start_matches(|c: char| c.is_ascii_digit() || c == ':');
    offset.is_empty() || offset.starts_with(',')
}

impl PgTimeZone {
    /// UTC.
    pub fn utc() -> PgTimeZone {
        PgTimeZone::default()
    }

    /// A fixed offset named as PostgreSQL names one given by a number or an
    /// interval (`<-08>+08`, abbreviation `-08`); returns the zone and the
    /// name `SHOW` prints.
    fn offset_zone(east: i32) -> (PgTimeZone, String) {
        let digits = offset_digits(east);
        let (abbrev, name) = if east < 0 {
            (format!("-{digits}"), format!("<-{digits}>+{digits}"))
        } else {
            (format!("+{digits}"), format!("<+{digits}>-{digits}"))
        };
        (
            PgTimeZone::Fixed {
                east,
                abbrev: abbrev.into(),
            },
            name,
        )
    }

    /// Reads a `TimeZone` setting as PostgreSQL's `check_timezone` does:
    /// `INTERVAL '...'` and plain numbers are offsets in hours east of UTC;
    /// anything else is a zone name ([`PgTimeZone::parse_name`]). Returns
    /// the zone and the text `SHOW TimeZone` prints (the canonical name).
    pub fn parse_setting(value: &str) -> Result<(PgTimeZone, String), TemporaError> {
        let out_of_range =
            || invalid_setting(value).with_detail("UTC timezone offset is out of range.");
        let (zone, shown) = if value
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("interval"))
        {
            // `SET TIME ZONE INTERVAL '-08:00' HOUR TO MINUTE` arrives as
            // `INTERVAL '-08:00:00'`.
            let text = value[8..]
                .trim()
                .strip_prefix('\'')
                .and_then(|t| t.strip_suffix('\''))
                .ok_or_else(|| invalid_setting(value))?;
            let iv = crate::interval::parse_interval(&text.replace("''", "'"))
                .map_err(|_| invalid_setting(value))?;
            if iv.months != 0 {
                return Err(invalid_setting(value)
                    .with_detail("Cannot specify months in time zone interval."));
            }
            if iv.days != 0 {
                return Err(invalid_setting(value)
                    .with_detail("Cannot specify days in time zone interval."));
            }
            let secs = iv.micros / 1_000_000;
            if secs.abs() >= 86_400 {
                return Err(out_of_range());
            }
            Self::offset_zone(secs as i32)
        } else if let Some(hours) = setting_hours(value) {
            let secs = (hours * 3600.0).trunc();
            if secs.abs() >= 86_400.0 {
                return Err(out_of_range());
            }
            Self::offset_zone(secs as i32)
        } else {
            match Self::parse_name(value) {
                Ok(Some(found)) => found,
                Ok(None) => return Err(invalid_setting(value)),
                Err(e) => return Err(e),
            }
        };
        if let PgTimeZone::Fixed { east, .. } = &zone {
            // DataFusion's zones (Arrow's) are whole minutes.
            if east % 60 != 0 {
                return Err(TemporaError::not_supported(format!(
                    "a TimeZone offset in seconds (\"{value}\")"
                )));
            }
        }
        Ok((zone, shown))
    }

    /// The zone of a `TimeZone` setting already taken by
    /// [`PgTimeZone::parse_setting`]; UTC for one that is not.
    pub fn of_setting(value: &str) -> PgTimeZone {
        Self::parse_setting(value)
            .map(|(z, _)| z)
            .unwrap_or_default()
    }

    /// Reads a zone name as PostgreSQL's `pg_tzset` does: an IANA zone
    /// (case-insensitively; its canonical spelling is returned), else a POSIX
    /// zone `STD offset`, whose offset counts hours WEST of UTC (`UTC+3` is
    /// UTC-3), named in upper case. `Ok(None)`: no such zone.
    pub fn parse_name(name: &str) -> Result<Option<(PgTimeZone, String)>, TemporaError> {
        if name.len() > TZ_STRLEN_MAX {
            return Ok(None);
        }
        if let Some(tz) = find_named(name) {
            return Ok(Some((PgTimeZone::Named(tz), tz.name().to_string())));
        }
        let upper = name.to_ascii_uppercase();
        if upper.starts_with(':') {
            return Ok(None);
        }
        match parse_posix(&upper) {
            Ok((east, abbrev)) => Ok(Some((
                PgTimeZone::Fixed {
                    east,
                    abbrev: abbrev.into(),
                },
                upper,
            ))),
            Err(PosixFault::Unknown) => Ok(None),
            Err(PosixFault::Unsupported) => Err(TemporaError::not_supported(format!(
                "POSIX time zone \"{name}\" with daylight saving rules or an offset of a day or more"
            ))),
        }
    }

    /// Reads the zone argument of a function (`AT TIME ZONE`, `time_bucket`,
    /// a job's `timezone`) as PostgreSQL's `timestamptz_zone` does: an
    /// abbreviation first (`EST`), then a zone name ([`PgTimeZone::parse_name`]).
    pub fn parse_argument(name: &str) -> Result<PgTimeZone, TemporaError> {
        let lower = name.to_ascii_lowercase();
        if let Some(east) = abbreviation_offset(&lower) {
            return Ok(PgTimeZone::Fixed {
                east,
                abbrev: name.to_ascii_uppercase().into(),
            });
        }
        match Self::parse_name(name)? {
            Some((zone, _)) => Ok(zone),
            None => Err(TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("time zone \"{name}\" not recognized"),
            )),
        }
    }

    /// The zone as DataFusion and Arrow name it (`execution.time_zone`, the
    /// zone of `timestamptz` types): the IANA name, or `±HH:MM` (ISO sign).
    pub fn arrow_name(&self) -> String {
        match self {
            PgTimeZone::Named(tz) => tz.name().to_string(),
            PgTimeZone::Fixed { east, .. } => {
                let sign = if *east < 0 { '-' } else { '+' };
                let s = east.unsigned_abs();
                format!("{sign}{:02}:{:02}", s / 3600, s % 3600 / 60)
            }
        }
    }

    /// Whether the offset never changes.
    pub fn is_fixed(&self) -> bool {
        match self {
            PgTimeZone::Fixed { .. } => true,
            PgTimeZone::Named(tz) => *tz == chrono_tz::UTC,
        }
    }

    /// The offset (seconds east of UTC) in force at a UTC instant
    /// (microseconds since the epoch).
    pub fn offset_at(&self, utc_micros: i64) -> i32 {
        match self {
            PgTimeZone::Fixed { east, .. } => *east,
            PgTimeZone::Named(tz) if *tz == chrono_tz::UTC => 0,
            PgTimeZone::Named(tz) => match DateTime::<Utc>::from_timestamp_micros(utc_micros) {
                Some(utc) => tz
                    .offset_from_utc_datetime(&utc.naive_utc())
                    .fix()
                    .local_minus_utc(),
                None => 0,
            },
        }
    }

    /// The abbreviation in force at a UTC instant (`CEST`, `-08`).
    pub fn abbreviation_at(&self, utc_micros: i64) -> String {
        match self {
            PgTimeZone::Fixed { abbrev, .. } => abbrev.to_string(),
            PgTimeZone::Named(tz) => match DateTime::<Utc>::from_timestamp_micros(utc_micros) {
                Some(utc) => utc.with_timezone(tz).format("%Z").to_string(),
                None => String::new(),
            },
        }
    }

    /// The wall time (microseconds, read as if UTC) of a UTC instant.
    pub fn utc_to_local(&self, utc_micros: i64) -> Option<i64> {
        utc_micros.checked_add(i64::from(self.offset_at(utc_micros)) * 1_000_000)
    }

    /// The UTC instant of a wall time (microseconds since the epoch, read as
    /// if UTC), as PostgreSQL reads one: a time skipped by a spring-forward
    /// transition with the offset in force before it; an ambiguous time
    /// (fall-back) as the later instant, in standard time.
    pub fn local_to_utc(&self, local_micros: i64) -> Option<i64> {
        let tz = match self {
            PgTimeZone::Fixed { east, .. } => {
                return local_micros.checked_sub(i64::from(*east) * 1_000_000)
            }
            PgTimeZone::Named(tz) if *tz == chrono_tz::UTC => return Some(local_micros),
            PgTimeZone::Named(tz) => tz,
        };
        let secs = local_micros.div_euclid(1_000_000);
        let sub = local_micros.rem_euclid(1_000_000);
        let local: NaiveDateTime = DateTime::<Utc>::from_timestamp(secs, 0)?.naive_utc();
        let off = match tz.offset_from_local_datetime(&local) {
            LocalResult::Single(o) => o.fix().local_minus_utc(),
            LocalResult::Ambiguous(_, later) => later.fix().local_minus_utc(),
            LocalResult::None => {
                // Look back for the offset in force before the gap.
                let mut found = None;
                for h in 1..=48 {
                    let before = local - chrono::Duration::hours(h);
                    if let Some(o) = tz.offset_from_local_datetime(&before).latest() {
                        found = Some(o.fix().local_minus_utc());
                        break;
                    }
                }
                found?
            }
        };
        (secs - off as i64)
            .checked_mul(1_000_000)
            .and_then(|v| v.checked_add(sub))
    }
}

/// A setting that is all a number (as C's `strtod` reads one): hours east.
fn setting_hours(value: &str) -> Option<f64> {
    let v = value.trim_start();
    if v.is_empty()
        || !v
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    v.parse::<f64>().ok().filter(|h| h.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(v: &str) -> (i32, String) {
        let (zone, shown) = PgTimeZone::parse_setting(v).unwrap();
        (zone.offset_at(0), shown)
    }

    #[test]
    fn settings_and_their_signs() {
        assert_eq!(setting("UTC"), (0, "UTC".into()));
        assert_eq!(setting("utc"), (0, "UTC".into()));
        assert_eq!(setting("europe/berlin"), (3600, "Europe/Berlin".into()));
        // POSIX strings count west.
        assert_eq!(setting("+03:00"), (-3 * 3600, "+03:00".into()));
        assert_eq!(setting("utc+3"), (-3 * 3600, "UTC+3".into()));
        assert_eq!(setting("<-08>+08"), (-8 * 3600, "<-08>+08".into()));
        assert_eq!(setting("<+05:30>-05:30"), (19800, "<+05:30>-05:30".into()));
        // Numbers and intervals count east.
        assert_eq!(setting("-08"), (-8 * 3600, "<-08>+08".into()));
        assert_eq!(setting("3"), (3 * 3600, "<+03>-03".into()));
        assert_eq!(setting("5.5"), (19800, "<+05:30>-05:30".into()));
        assert_eq!(setting("0"), (0, "<+00>-00".into()));
        assert_eq!(
            setting("INTERVAL '-08:00:00'"),
            (-8 * 3600, "<-08>+08".into())
        );
    }

    #[test]
    fn bad_settings() {
        for v in [
            "Not/AZone",
            "",
            ":UTC",
            "+",
            "abc",
            "FOO+",
            "CAST('1 day' AS INTERVAL)",
        ] {
            let e = PgTimeZone::parse_setting(v).unwrap_err();
            assert_eq!(e.code, SqlState::INVALID_PARAMETER_VALUE, "{v}");
            assert_eq!(
                e.message,
                format!("invalid value for parameter \"TimeZone\": \"{v}\"")
            );
        }
        let e = PgTimeZone::parse_setting("INTERVAL '1 day'").unwrap_err();
        assert_eq!(
            e.detail.as_deref(),
            Some("Cannot specify days in time zone interval.")
        );
        let e = PgTimeZone::parse_setting("30").unwrap_err();
        assert_eq!(
            e.detail.as_deref(),
            Some("UTC timezone offset is out of range.")
        );
        assert_eq!(
            PgTimeZone::parse_setting("EST5EDT,M3.2.0,M11.1.0")
                .unwrap_err()
                .code,
            SqlState::FEATURE_NOT_SUPPORTED
        );
    }

    #[test]
    fn arguments_try_abbreviations_first() {
        let est = PgTimeZone::parse_argument("EST").unwrap();
        assert_eq!(est.offset_at(0), -5 * 3600);
        assert!(est.is_fixed());
        assert_eq!(
            PgTimeZone::parse_argument("+03:00").unwrap().offset_at(0),
            -3 * 3600
        );
        let e = PgTimeZone::parse_argument("Mars/Olympus").unwrap_err();
        assert_eq!(e.message, "time zone \"Mars/Olympus\" not recognized");
    }

    #[test]
    fn arrow_names_and_abbreviations() {
        let (z, _) = PgTimeZone::parse_setting("+03:00").unwrap();
        assert_eq!(z.arrow_name(), "-03:00");
        assert_eq!(z.abbreviation_at(0), "");
        let (z, _) = PgTimeZone::parse_setting("INTERVAL '-08:00:00'").unwrap();
        assert_eq!(z.arrow_name(), "-08:00");
        assert_eq!(z.abbreviation_at(0), "-08");
        let (z, _) = PgTimeZone::parse_setting("Europe/Berlin").unwrap();
        assert_eq!(z.arrow_name(), "Europe/Berlin");
        assert_eq!(z.abbreviation_at(0), "CET");
    }

    #[test]
    fn wall_times_across_transitions() {
        let berlin = PgTimeZone::Named(chrono_tz::Europe::Berlin);
        // 2024-03-31 02:30 does not exist in Berlin: read with +01.
        let gap = 1_711_852_200_000_000; // 2024-03-31 02:30 as if UTC
        assert_eq!(berlin.local_to_utc(gap), Some(gap - 3_600_000_000));
        // 2024-10-27 02:30 happens twice: the later one (+01).
        let twice = 1_729_996_200_000_000;
        assert_eq!(berlin.local_to_utc(twice), Some(twice - 3_600_000_000));
        let fixed = PgTimeZone::parse_setting("-08").unwrap().0;
        assert_eq!(fixed.local_to_utc(0), Some(8 * 3_600_000_000));
        assert_eq!(fixed.utc_to_local(8 * 3_600_000_000), Some(0));
    }
}
