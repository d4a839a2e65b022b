//! The calendar PostgreSQL computes date fields in, and the units its
//! `date_part`, `extract` and `date_trunc` take.
//!
//! Dates are proleptic Gregorian, counted as days since 1970-01-01; years
//! are astronomical (0 is 1 BC), as PostgreSQL's `struct pg_tm` holds them.
//! A unit (`'hour'`, `'Microseconds'`, `'timezone_h'`, `'epoch'`) is read as
//! PostgreSQL's `DecodeUnits` and `DecodeSpecial` read one: lower-cased,
//! looked up in the interval units table (a token of ten letters matches any
//! text it starts: `'microsecondsxyz'` is microseconds), then, for
//! `date_part`, in the date tokens table (`'dow'`, `'julian'`, `'epoch'`).

use tempora_copy::zone::PgTimeZone;

/// Microseconds in a day.
pub(crate) const USECS_PER_DAY: i64 = 86_400_000_000;

/// The Julian day number of 1970-01-01 (PostgreSQL's `UNIX_EPOCH_JDATE`).
pub(crate) const UNIX_EPOCH_JDATE: i64 = 2_440_588;

/// Days since 1970-01-01 of a civil date (month 1..=12).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Count years from March so that the leap day is the last day of a year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Civil date `(year, month 1..=12, day)` of a day count since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since the Monday of a date's week (0 on a Monday); 1970-01-01
/// was a Thursday.
pub(crate) fn days_since_monday(days: i64) -> i64 {
    (days + 3).rem_euclid(7)
}

/// The ISO 8601 year and week of a date: a week belongs to the year of its
/// Thursday (PostgreSQL's `date2isoyear` and `date2isoweek`).
pub(crate) fn iso_year_week(days: i64) -> (i64, i64) {
    let thursday = days - days_since_monday(days) + 3;
    let (year, _, _) = civil_from_days(thursday);
    (year, (thursday - days_from_civil(year, 1, 1)) / 7 + 1)
}

/// A wall time (microseconds since 1970-01-01 00:00, read as if UTC) in
/// its calendar fields, as PostgreSQL's `timestamp2tm` splits one: the
/// time of day is never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WallTime {
    /// The date, in days since 1970-01-01.
    pub days: i64,
    /// Astronomical year: 0 is 1 BC.
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    /// Microseconds within the second.
    pub micros: i64,
}

impl WallTime {
    pub(crate) fn of(local: i64) -> WallTime {
        let days = local.div_euclid(USECS_PER_DAY);
        let time = local.rem_euclid(USECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let seconds = time / 1_000_000;
        WallTime {
            days,
            year,
            month,
            day,
            hour: seconds / 3600,
            minute: seconds / 60 % 60,
            second: seconds % 60,
            micros: time % 1_000_000,
        }
    }

    /// Back to microseconds; None past what an `i64` holds.
    pub(crate) fn micros_since_epoch(&self) -> Option<i64> {
        let days = days_from_civil(self.year, self.month, self.day);
        let time = ((self.hour * 60 + self.minute) * 60 + self.second) * 1_000_000 + self.micros;
        days.checked_mul(USECS_PER_DAY)?.checked_add(time)
    }

    /// The Julian day number of the date (PostgreSQL's `date2j`).
    pub(crate) fn julian_day(&self) -> i64 {
        self.days + UNIX_EPOCH_JDATE
    }
}

/// A unit PostgreSQL's date functions know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Unit {
    Microseconds,
    Milliseconds,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
    Decade,
    Century,
    Millennium,
    Julian,
    IsoYear,
    Dow,
    IsoDow,
    Doy,
    Timezone,
    TimezoneHour,
    TimezoneMinute,
    Epoch,
}

/// What a unit's text is to PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UnitToken {
    /// A unit (`UNITS`, or the reserved word `epoch`).
    Unit(Unit),
    /// Another reserved word (`now`, `infinity`): known, never supported.
    Reserved,
    /// Anything else: not recognized.
    Unknown,
}

/// PostgreSQL's token length (`TOKMAXLEN`): tables compare this many bytes.
const TOKMAXLEN: usize = 10;

/// The `UNITS` entries of PostgreSQL's interval units table (`deltatktbl`).
const INTERVAL_UNITS: &[(&str, Unit)] = &[
    ("c", Unit::Century),
    ("cent", Unit::Century),
    ("centuries", Unit::Century),
    ("century", Unit::Century),
    ("d", Unit::Day),
    ("day", Unit::Day),
    ("days", Unit::Day),
    ("dec", Unit::Decade),
    ("decade", Unit::Decade),
    ("decades", Unit::Decade),
    ("decs", Unit::Decade),
    ("h", Unit::Hour),
    ("hour", Unit::Hour),
    ("hours", Unit::Hour),
    ("hr", Unit::Hour),
    ("hrs", Unit::Hour),
    ("m", Unit::Minute),
    ("microsecon", Unit::Microseconds),
    ("mil", Unit::Millennium),
    ("millennia", Unit::Millennium),
    ("millennium", Unit::Millennium),
    ("millisecon", Unit::Milliseconds),
    ("mils", Unit::Millennium),
    ("min", Unit::Minute),
    ("mins", Unit::Minute),
    ("minute", Unit::Minute),
    ("minutes", Unit::Minute),
    ("mon", Unit::Month),
    ("mons", Unit::Month),
    ("month", Unit::Month),
    ("months", Unit::Month),
    ("ms", Unit::Milliseconds),
    ("msec", Unit::Milliseconds),
    ("msecond", Unit::Milliseconds),
    ("mseconds", Unit::Milliseconds),
    ("msecs", Unit::Milliseconds),
    ("qtr", Unit::Quarter),
    ("quarter", Unit::Quarter),
    ("s", Unit::Second),
    ("sec", Unit::Second),
    ("second", Unit::Second),
    ("seconds", Unit::Second),
    ("secs", Unit::Second),
    ("timezone", Unit::Timezone),
    ("timezone_h", Unit::TimezoneHour),
    ("timezone_m", Unit::TimezoneMinute),
    ("us", Unit::Microseconds),
    ("usec", Unit::Microseconds),
    ("usecond", Unit::Microseconds),
    ("useconds", Unit::Microseconds),
    ("usecs", Unit::Microseconds),
    ("w", Unit::Week),
    ("week", Unit::Week),
    ("weeks", Unit::Week),
    ("y", Unit::Year),
    ("year", Unit::Year),
    ("years", Unit::Year),
    ("yr", Unit::Year),
    ("yrs", Unit::Year),
];

/// The `UNITS` entries of PostgreSQL's date tokens table (`datetktbl`) the
/// interval table lacks.
const DATE_UNITS: &[(&str, Unit)] = &[
    ("dow", Unit::Dow),
    ("doy", Unit::Doy),
    ("isodow", Unit::IsoDow),
    ("isoyear", Unit::IsoYear),
    ("j", Unit::Julian),
    ("jd", Unit::Julian),
    ("julian", Unit::Julian),
    ("mm", Unit::Minute),
];

/// The reserved words of the date tokens table other than `epoch`.
const RESERVED: &[&str] = &[
    "-infinity",
    "allballs",
    "infinity",
    "now",
    "today",
    "tomorrow",
    "yesterday",
];

/// Whether `token` is what PostgreSQL's `strncmp(key, token, TOKMAXLEN)`
/// takes for it.
fn token_matches(key: &str, token: &str) -> bool {
    let (key, token) = (key.as_bytes(), token.as_bytes());
    if token.len() < TOKMAXLEN {
        key == token
    } else {
        key.len() >= TOKMAXLEN && key[..TOKMAXLEN] == token[..TOKMAXLEN]
    }
}

fn find(table: &[(&str, Unit)], key: &str) -> Option<Unit> {
    table
        .iter()
        .find(|(token, _)| token_matches(key, token))
        .map(|(_, unit)| *unit)
}

/// A unit's text as PostgreSQL's error messages show it: lower-cased
/// (ASCII only) and cut to 63 bytes (`downcase_truncate_identifier`).
pub(crate) fn unit_text(text: &str) -> String {
    let mut lower = text.to_ascii_lowercase();
    if lower.len() > 63 {
        let mut end = 63;
        while !lower.is_char_boundary(end) {
            end -= 1;
        }
        lower.truncate(end);
    }
    lower
}

/// A unit of `date_trunc`: the interval units table only.
pub(crate) fn truncation_unit(lower: &str) -> UnitToken {
    match find(INTERVAL_UNITS, lower) {
        Some(unit) => UnitToken::Unit(unit),
        None => UnitToken::Unknown,
    }
}

/// A unit of `date_part` / `extract`: the interval units table, then the
/// date tokens table.
pub(crate) fn field_unit(lower: &str) -> UnitToken {
    if let Some(unit) = find(INTERVAL_UNITS, lower).or_else(|| find(DATE_UNITS, lower)) {
        return UnitToken::Unit(unit);
    }
    if token_matches(lower, "epoch") {
        UnitToken::Unit(Unit::Epoch)
    } else if RESERVED.iter().any(|t| token_matches(lower, t)) {
        UnitToken::Reserved
    } else {
        UnitToken::Unknown
    }
}

/// The UTC offsets of one zone at a run of instants. A zone with a fixed
/// offset is never looked up; a named zone is looked up once per second
/// (rows of one instant, a constant), and local wall times are resolved to
/// instants once per distinct wall time (a day's midnight for every row of
/// the day).
pub(crate) struct ZoneOffsets {
    zone: PgTimeZone,
    fixed: Option<i32>,
    last_offset: Option<(i64, i32)>,
    last_instant: Option<(i64, Option<i64>)>,
}

impl ZoneOffsets {
    pub(crate) fn new(zone: PgTimeZone) -> Self {
        let fixed = zone.is_fixed().then(|| zone.offset_at(0));
        ZoneOffsets {
            zone,
            fixed,
            last_offset: None,
            last_instant: None,
        }
    }

    /// The zone these are the offsets of.
    pub(crate) fn zone(&self) -> &PgTimeZone {
        &self.zone
    }

    /// Seconds east of UTC at an instant (microseconds since the epoch).
    pub(crate) fn offset_at(&mut self, utc: i64) -> i32 {
        if let Some(east) = self.fixed {
            return east;
        }
        let second = utc.div_euclid(1_000_000);
        match self.last_offset {
            Some((s, east)) if s == second => east,
            _ => {
                let east = self.zone.offset_at(second * 1_000_000);
                self.last_offset = Some((second, east));
                east
            }
        }
    }

    /// The instant of a wall time in the zone, as PostgreSQL resolves one
    /// ([`PgTimeZone::local_to_utc`]: a skipped time with the offset before
    /// the change, a repeated time as the later instant).
    pub(crate) fn instant_of(&mut self, local: i64) -> Option<i64> {
        if let Some(east) = self.fixed {
            return local.checked_sub(i64::from(east) * 1_000_000);
        }
        match self.last_instant {
            Some((l, utc)) if l == local => utc,
            _ => {
                let utc = self.zone.local_to_utc(local);
                self.last_instant = Some((local, utc));
                utc
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000, -719_528, -1, 0, 1, 19_723, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        // 1 BC is year 0, a leap year.
        assert_eq!(
            days_from_civil(1, 1, 1) - days_from_civil(0, 1, 1),
            366,
            "year 0 is a leap year"
        );
    }

    #[test]
    fn iso_weeks() {
        let iso = |y, m, d| iso_year_week(days_from_civil(y, m, d));
        assert_eq!(iso(2024, 1, 1), (2024, 1));
        assert_eq!(iso(2024, 12, 30), (2025, 1));
        assert_eq!(iso(2021, 1, 3), (2020, 53));
        assert_eq!(iso(2027, 1, 1), (2026, 53));
    }

    #[test]
    fn wall_time_fields() {
        // 1969-12-31 23:59:59.5: the time of day is never negative.
        let t = WallTime::of(-500_000);
        assert_eq!((t.year, t.month, t.day), (1969, 12, 31));
        assert_eq!(
            (t.hour, t.minute, t.second, t.micros),
            (23, 59, 59, 500_000)
        );
        assert_eq!(t.micros_since_epoch(), Some(-500_000));
        assert_eq!(WallTime::of(0).julian_day(), UNIX_EPOCH_JDATE);
    }

    #[test]
    fn units_as_postgres_reads_them() {
        let part = |s: &str| field_unit(&unit_text(s));
        assert_eq!(part("HOUR"), UnitToken::Unit(Unit::Hour));
        assert_eq!(part("microsecondsxyz"), UnitToken::Unit(Unit::Microseconds));
        assert_eq!(part("timezone_hour"), UnitToken::Unit(Unit::TimezoneHour));
        assert_eq!(part("mm"), UnitToken::Unit(Unit::Minute));
        assert_eq!(part("m"), UnitToken::Unit(Unit::Minute));
        assert_eq!(part("mon"), UnitToken::Unit(Unit::Month));
        assert_eq!(part("epoch"), UnitToken::Unit(Unit::Epoch));
        assert_eq!(part("now"), UnitToken::Reserved);
        assert_eq!(part("hours2"), UnitToken::Unknown);
        assert_eq!(part("millenium"), UnitToken::Unknown);
        assert_eq!(part(""), UnitToken::Unknown);
        // date_trunc reads the interval table only.
        assert_eq!(truncation_unit("dow"), UnitToken::Unknown);
        assert_eq!(truncation_unit("epoch"), UnitToken::Unknown);
        assert_eq!(truncation_unit("week"), UnitToken::Unit(Unit::Week));
        assert_eq!(unit_text(&"X".repeat(70)).len(), 63);
    }

    #[test]
    fn offsets_and_instants() {
        let berlin = PgTimeZone::of_setting("Europe/Berlin");
        let mut z = ZoneOffsets::new(berlin);
        let jan = days_from_civil(2024, 1, 1) * USECS_PER_DAY;
        let jul = days_from_civil(2024, 7, 1) * USECS_PER_DAY;
        assert_eq!(z.offset_at(jan), 3600);
        assert_eq!(z.offset_at(jan + 1), 3600);
        assert_eq!(z.offset_at(jul), 7200);
        assert_eq!(z.instant_of(jan), Some(jan - 3_600_000_000));
        assert_eq!(z.instant_of(jan), Some(jan - 3_600_000_000));
        let fixed = PgTimeZone::of_setting("UTC+3");
        let mut z = ZoneOffsets::new(fixed);
        assert_eq!(z.offset_at(jul), -3 * 3600);
        assert_eq!(z.instant_of(jan), Some(jan + 3 * 3_600_000_000));
    }
}
