//! PostgreSQL's input syntax for `interval`, as `interval_in` reads it with
//! no field restriction:
//!
//! - quantities with units, in any order, any spelling PostgreSQL knows
//!   (`1 year 2 months`, `3 mons`, `2 weeks`, `4 hrs`, `90 min`, `1.5 sec`,
//!   `10 ms`, `7 us`, `1 decade`, `1 century`, `1 millennium`, `1day`,
//!   `1h30m`), a bare number being seconds;
//! - a time of day `[-]hh:mm[:ss[.ffffff]]` (`mm:ss.fff` when it has a
//!   fraction after two fields), a number before it being days;
//! - the SQL year-month form `1-2`;
//! - PostgreSQL's own form `@ 1 day 2 hours ago` (`ago` negates it all);
//! - ISO 8601 with designators (`P1Y2M3DT4H5M6S`, fractions allowed) and its
//!   alternative forms (`P0001-02-03T04:05:06`, `P00010203T040506`).
//!
//! Fractions spill down as PostgreSQL spills them: a fraction of a year into
//! whole months, of a month into days (30 a month) and microseconds, of a
//! week or a day into days and microseconds, and microseconds are rounded.
//! Errors are PostgreSQL's: 22007 for a text it cannot read, 22015 for a
//! field out of range, 22008 for an interval out of range.

use tempora_common::{SqlState, TemporaError};

/// An interval's parts as PostgreSQL stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgInterval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

const USECS_PER_SEC: i64 = 1_000_000;
const USECS_PER_MINUTE: i64 = 60 * USECS_PER_SEC;
const USECS_PER_HOUR: i64 = 60 * USECS_PER_MINUTE;
const USECS_PER_DAY: i64 = 24 * USECS_PER_HOUR;
const DAYS_PER_MONTH: i32 = 30;
const MONTHS_PER_YEAR: i64 = 12;
/// PostgreSQL compares unit words on their first 10 characters.
const TOKEN_MAX_LEN: usize = 10;

/// Why a text is not an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    BadFormat,
    FieldOverflow,
    IntervalOverflow,
}

type Parsed<T> = std::result::Result<T, Fault>;

/// Reads PostgreSQL interval input (see the module documentation).
pub fn parse_interval(text: &str) -> Result<PgInterval, TemporaError> {
    let result = match decode_fields(text) {
        Err(Fault::BadFormat) => decode_iso8601(text),
        other => other,
    };
    result.map_err(|fault| match fault {
        Fault::BadFormat => TemporaError::new(
            SqlState::INVALID_DATETIME_FORMAT,
            format!("invalid input syntax for type interval: \"{text}\""),
        ),
        Fault::FieldOverflow => TemporaError::new(
            SqlState::INTERVAL_FIELD_OVERFLOW,
            format!("interval field value out of range: \"{text}\""),
        ),
        Fault::IntervalOverflow => {
            TemporaError::new(SqlState::DATETIME_FIELD_OVERFLOW, "interval out of range")
        }
    })
}

/// The parts being summed, kept apart until the end as PostgreSQL keeps them
/// (years and months only meet when the interval is made).
#[derive(Debug, Default)]
struct Parts {
    micros: i64,
    days: i32,
    months: i32,
    years: i32,
}

/// Adds `val * scale` to a day, month or year field, failing on overflow
/// as PostgreSQL does ("interval field value out of range").
fn add_scaled(field: &mut i32, val: i64, scale: i32) -> Parsed<()> {
    let v = i32::try_from(val).map_err(|_| Fault::FieldOverflow)?;
    let v = v.checked_mul(scale).ok_or(Fault::FieldOverflow)?;
    *field = field.checked_add(v).ok_or(Fault::FieldOverflow)?;
    Ok(())
}

impl Parts {
    fn add_micros(&mut self, val: i64, frac: f64, scale: i64) -> Parsed<()> {
        let v = val.checked_mul(scale).ok_or(Fault::FieldOverflow)?;
        self.micros = self.micros.checked_add(v).ok_or(Fault::FieldOverflow)?;
        self.add_fraction_micros(frac, scale)
    }

    fn add_fraction_micros(&mut self, frac: f64, scale: i64) -> Parsed<()> {
        if frac == 0.0 {
            return Ok(());
        }
        let frac = frac * scale as f64;
        let whole = frac as i64;
        let usec = whole + (frac - whole as f64).round_ties_even() as i64;
        self.micros = self.micros.checked_add(usec).ok_or(Fault::FieldOverflow)?;
        Ok(())
    }

    fn add_days(&mut self, val: i64, scale: i32) -> Parsed<()> {
        add_scaled(&mut self.days, val, scale)
    }

    fn add_fraction_days(&mut self, frac: f64, scale: i32) -> Parsed<()> {
        if frac == 0.0 {
            return Ok(());
        }
        let frac = frac * scale as f64;
        let extra = frac as i32;
        self.days = self.days.checked_add(extra).ok_or(Fault::FieldOverflow)?;
        self.add_fraction_micros(frac - extra as f64, USECS_PER_DAY)
    }

    fn add_months(&mut self, val: i64) -> Parsed<()> {
        add_scaled(&mut self.months, val, 1)
    }

    fn add_years(&mut self, val: i64, scale: i32) -> Parsed<()> {
        add_scaled(&mut self.years, val, scale)
    }

    fn add_fraction_years(&mut self, frac: f64, scale: i32) -> Parsed<()> {
        let extra = (frac * scale as f64 * MONTHS_PER_YEAR as f64).round_ties_even() as i32;
        self.months = self.months.checked_add(extra).ok_or(Fault::FieldOverflow)?;
        Ok(())
    }

    fn negate(&mut self) -> Parsed<()> {
        self.micros = self.micros.checked_neg().ok_or(Fault::FieldOverflow)?;
        self.days = self.days.checked_neg().ok_or(Fault::FieldOverflow)?;
        self.months = self.months.checked_neg().ok_or(Fault::FieldOverflow)?;
        self.years = self.years.checked_neg().ok_or(Fault::FieldOverflow)?;
        Ok(())
    }

    fn finish(self) -> Parsed<PgInterval> {
        let months = self.years as i64 * MONTHS_PER_YEAR + self.months as i64;
        Ok(PgInterval {
            months: i32::try_from(months).map_err(|_| Fault::IntervalOverflow)?,
            days: self.days,
            micros: self.micros,
        })
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL's own format: fields
// ---------------------------------------------------------------------------

/// A field of the input, as PostgreSQL's lexer classifies it.
#[derive(Debug, PartialEq)]
enum Field {
    /// Digits, maybe with one fraction: `12`, `1.5`, `.5`.
    Number(String),
    /// A time of day: `04:05:06.789`.
    Time(String),
    /// Digits with `-`, `/` or more `.`: `1-2` (only that form reads).
    Date(String),
    /// A sign and a number or time: `-1`, `+02:03`, `-1-2`.
    Signed(String),
    /// A word, lower-cased: `days`.
    Word(String),
}

/// Words of PostgreSQL's date table that may stand right before a digit
/// (`1h30m`); any other word there is taken for a date and fails.
const DATE_WORDS: &[&str] = &["d", "h", "m", "mm", "s", "y", "j", "t", "dec", "mon"];

fn lex(text: &str) -> Parsed<Vec<Field>> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut fields = Vec::new();
    let take = |i: &mut usize, ok: &dyn Fn(u8) -> bool| {
        let start = *i;
        while *i < b.len() && ok(b[*i]) {
            *i += 1;
        }
        text[start..*i].to_string()
    };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            let mut s = take(&mut i, &|c| c.is_ascii_digit());
            match b.get(i) {
                Some(b':') => {
                    s += &take(&mut i, &|c| c.is_ascii_digit() || c == b':' || c == b'.');
                    fields.push(Field::Time(s));
                }
                Some(&d @ (b'-' | b'/' | b'.')) => {
                    s.push(d as char);
                    i += 1;
                    if b.get(i).is_some_and(u8::is_ascii_digit) {
                        s += &take(&mut i, &|c| c.is_ascii_digit());
                        if b.get(i) == Some(&d) {
                            s += &take(&mut i, &|c| c.is_ascii_digit() || c == d);
                            fields.push(Field::Date(s));
                        } else if d == b'.' {
                            fields.push(Field::Number(s));
                        } else {
                            fields.push(Field::Date(s));
                        }
                    } else {
                        s += &take(&mut i, &|c| c.is_ascii_alphanumeric() || c == d);
                        fields.push(Field::Date(s));
                    }
                }
                _ => fields.push(Field::Number(s)),
            }
        } else if c == b'.' {
            i += 1;
            let s = format!(".{}", take(&mut i, &|c| c.is_ascii_digit()));
            fields.push(Field::Number(s));
        } else if c.is_ascii_alphabetic() {
            let word = take(&mut i, &|c| c.is_ascii_alphabetic()).to_ascii_lowercase();
            let date = match b.get(i) {
                Some(b'-' | b'/' | b'.') => true,
                Some(&c) if c == b'+' || c.is_ascii_digit() => !DATE_WORDS.contains(&&*word),
                _ => false,
            };
            if date {
                return Err(Fault::BadFormat);
            }
            fields.push(Field::Word(word));
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'+' || c == b'-' {
            i += 1;
            while b.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            if b.get(i).is_some_and(u8::is_ascii_digit) {
                let rest = take(&mut i, &|c| {
                    c.is_ascii_digit() || c == b':' || c == b'.' || c == b'-'
                });
                fields.push(Field::Signed(format!("{}{rest}", c as char)));
            } else {
                // `-infinity` and the like are no interval in PostgreSQL 15.
                return Err(Fault::BadFormat);
            }
        } else if c.is_ascii_punctuation() {
            // `@`, commas and other punctuation only separate fields.
            i += 1;
        } else {
            return Err(Fault::BadFormat);
        }
    }
    Ok(fields)
}

/// What a number stands for: the unit written after it, or the one the
/// fields to its right imply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Microsecond,
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
    Decade,
    Century,
    Millennium,
}

impl Unit {
    /// PostgreSQL's unit words (its `deltatktbl`), matched on their first
    /// ten characters as PostgreSQL matches them.
    fn from_word(word: &str) -> Option<Unit> {
        let w = &word[..word.len().min(TOKEN_MAX_LEN)];
        Some(match w {
            "us" | "usec" | "usecs" | "usecond" | "useconds" | "microsecon" => Unit::Microsecond,
            "ms" | "msec" | "msecs" | "msecond" | "mseconds" | "millisecon" => Unit::Millisecond,
            "s" | "sec" | "secs" | "second" | "seconds" => Unit::Second,
            "m" | "min" | "mins" | "minute" | "minutes" => Unit::Minute,
            "h" | "hr" | "hrs" | "hour" | "hours" => Unit::Hour,
            "d" | "day" | "days" => Unit::Day,
            "w" | "week" | "weeks" => Unit::Week,
            "mon" | "mons" | "month" | "months" => Unit::Month,
            "y" | "yr" | "yrs" | "year" | "years" => Unit::Year,
            "dec" | "decs" | "decade" | "decades" => Unit::Decade,
            "c" | "cent" | "century" | "centuries" => Unit::Century,
            "mil" | "mils" | "millennia" | "millennium" => Unit::Millennium,
            _ => return None,
        })
    }

    /// The bit a field of this unit claims: no unit may be given twice.
    fn mask(self) -> u32 {
        1 << self as u32
    }
}

/// Every seconds bit: a time of day or fractional seconds claim them all.
const ALL_SECONDS: u32 =
    (1 << Unit::Second as u32) | (1 << Unit::Millisecond as u32) | (1 << Unit::Microsecond as u32);
const TIME_OF_DAY: u32 = ALL_SECONDS | (1 << Unit::Minute as u32) | (1 << Unit::Hour as u32);

/// PostgreSQL's `DecodeInterval`: the fields are read right to left, so a
/// unit word names the number before it.
fn decode_fields(text: &str) -> Parsed<PgInterval> {
    let fields = lex(text)?;
    let mut parts = Parts::default();
    let mut seen = 0u32;
    let mut unit: Option<Unit> = None;
    let mut unit_pending = false;
    let mut ago = false;
    let last = fields.len().saturating_sub(1);
    for (i, field) in fields.iter().enumerate().rev() {
        let claimed = match field {
            Field::Time(t) => {
                let claimed = time_of_day(t, &mut parts)?;
                unit = Some(Unit::Day);
                claimed
            }
            Field::Signed(s) if s[1..].contains(':') => {
                // A signed time PostgreSQL cannot read is tried as a
                // number, which fails as bad syntax.
                let mut time = Parts::default();
                let claimed = time_of_day(&s[1..], &mut time).map_err(|_| Fault::BadFormat)?;
                let micros = if s.starts_with('-') {
                    -time.micros
                } else {
                    time.micros
                };
                parts.micros = parts
                    .micros
                    .checked_add(micros)
                    .ok_or(Fault::FieldOverflow)?;
                unit = Some(Unit::Day);
                claimed
            }
            Field::Number(s) | Field::Date(s) | Field::Signed(s) => {
                // A number right before `ago` has no unit.
                if unit.is_none() && ago {
                    return Err(Fault::BadFormat);
                }
                let u = *unit.get_or_insert(Unit::Second);
                let (val, frac, year_month) = number(s)?;
                let u = if year_month { Unit::Month } else { u };
                if year_month {
                    unit = Some(Unit::Month);
                }
                unit_pending = false;
                match u {
                    Unit::Microsecond => {
                        parts.add_micros(val, frac, 1)?;
                        u.mask()
                    }
                    Unit::Millisecond => {
                        parts.add_micros(val, frac, 1000)?;
                        u.mask()
                    }
                    Unit::Second => {
                        parts.add_micros(val, frac, USECS_PER_SEC)?;
                        if frac == 0.0 {
                            u.mask()
                        } else {
                            ALL_SECONDS
                        }
                    }
                    Unit::Minute => {
                        parts.add_micros(val, frac, USECS_PER_MINUTE)?;
                        u.mask()
                    }
                    Unit::Hour => {
                        parts.add_micros(val, frac, USECS_PER_HOUR)?;
                        unit = Some(Unit::Day);
                        u.mask()
                    }
                    Unit::Day => {
                        parts.add_days(val, 1)?;
                        parts.add_fraction_micros(frac, USECS_PER_DAY)?;
                        u.mask()
                    }
                    Unit::Week => {
                        parts.add_days(val, 7)?;
                        parts.add_fraction_days(frac, 7)?;
                        u.mask()
                    }
                    Unit::Month => {
                        parts.add_months(val)?;
                        parts.add_fraction_days(frac, DAYS_PER_MONTH)?;
                        u.mask()
                    }
                    Unit::Year | Unit::Decade | Unit::Century | Unit::Millennium => {
                        let scale = match u {
                            Unit::Year => 1,
                            Unit::Decade => 10,
                            Unit::Century => 100,
                            _ => 1000,
                        };
                        parts.add_years(val, scale)?;
                        parts.add_fraction_years(frac, scale)?;
                        u.mask()
                    }
                }
            }
            Field::Word(w) => {
                if unit_pending {
                    return Err(Fault::BadFormat);
                }
                if w == "ago" {
                    if i != last {
                        return Err(Fault::BadFormat);
                    }
                    ago = true;
                    continue;
                }
                unit = Some(Unit::from_word(w).ok_or(Fault::BadFormat)?);
                unit_pending = true;
                continue;
            }
        };
        if claimed & seen != 0 {
            return Err(Fault::BadFormat);
        }
        seen |= claimed;
    }
    if seen == 0 || unit_pending {
        return Err(Fault::BadFormat);
    }
    if ago {
        parts.negate()?;
    }
    parts.finish()
}

/// A number field: its integer part, its fraction (signed alike), and
/// whether it was the year-month form `y-m` (then the value is months).
fn number(s: &str) -> Parsed<(i64, f64, bool)> {
    let negative = s.starts_with('-');
    let digits_end = s
        .char_indices()
        .skip(usize::from(s.starts_with(['-', '+'])))
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(s.len(), |(i, _)| i);
    let int_text = &s[..digits_end];
    let val = match int_text {
        "" | "-" | "+" => 0,
        t => t.parse::<i64>().map_err(|_| Fault::FieldOverflow)?,
    };
    let rest = &s[digits_end..];
    if let Some(months) = rest.strip_prefix('-') {
        // `1-` is a year, as in PostgreSQL.
        if !months.bytes().all(|c| c.is_ascii_digit()) {
            return Err(Fault::BadFormat);
        }
        let m: i64 = match months {
            "" => 0,
            m => m.parse().map_err(|_| Fault::FieldOverflow)?,
        };
        if m >= MONTHS_PER_YEAR {
            return Err(Fault::FieldOverflow);
        }
        let m = if negative { -m } else { m };
        let total = val
            .checked_mul(MONTHS_PER_YEAR)
            .and_then(|v| v.checked_add(m))
            .ok_or(Fault::FieldOverflow)?;
        return Ok((total, 0.0, true));
    }
    // `.5` (and `.`) is a number: zero and a fraction.
    if matches!(int_text, "" | "-" | "+") && !rest.starts_with('.') {
        return Err(Fault::BadFormat);
    }
    let frac = match rest {
        "" => 0.0,
        r if r.starts_with('.') => {
            let f = fraction(r)?;
            if negative {
                -f
            } else {
                f
            }
        }
        _ => return Err(Fault::BadFormat),
    };
    Ok((val, frac, false))
}

/// `.123` as 0.123; a lone `.` is 0.
fn fraction(r: &str) -> Parsed<f64> {
    if r == "." {
        return Ok(0.0);
    }
    if !r[1..].bytes().all(|c| c.is_ascii_digit()) {
        return Err(Fault::BadFormat);
    }
    r.parse::<f64>().map_err(|_| Fault::BadFormat)
}

/// `hh:mm[:ss[.f]]` or `mm:ss.f` added to `parts`; returns the bits it claims.
fn time_of_day(t: &str, parts: &mut Parts) -> Parsed<u32> {
    let int = |s: &str| -> Parsed<i64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(Fault::BadFormat);
        }
        s.parse::<i64>()
            .ok()
            .filter(|v| *v <= i32::MAX as i64)
            .ok_or(Fault::FieldOverflow)
    };
    let fsec = |s: &str| -> Parsed<i64> { Ok((fraction(s)? * 1e6).round_ties_even() as i64) };
    let split_fraction = |s: &str| match s.find('.') {
        Some(i) => (s[..i].to_string(), Some(s[i..].to_string())),
        None => (s.to_string(), None),
    };
    let pieces: Vec<&str> = t.split(':').collect();
    let (hour, min, sec, frac) = match pieces.as_slice() {
        [h, m] => {
            let (m, f) = split_fraction(m);
            match f {
                // A fraction after two fields: minutes and seconds.
                Some(f) => (0, int(h)?, int(&m)?, fsec(&f)?),
                None => (int(h)?, int(&m)?, 0, 0),
            }
        }
        [h, m, s] => {
            let (s, f) = split_fraction(s);
            let f = match f {
                Some(f) => fsec(&f)?,
                None => 0,
            };
            (int(h)?, int(m)?, int(&s)?, f)
        }
        _ => return Err(Fault::BadFormat),
    };
    if min > 59 || sec > 60 || frac > USECS_PER_SEC {
        return Err(Fault::FieldOverflow);
    }
    let micros = hour
        .checked_mul(USECS_PER_HOUR)
        .and_then(|h| h.checked_add(min * USECS_PER_MINUTE + sec * USECS_PER_SEC + frac))
        .ok_or(Fault::FieldOverflow)?;
    parts.micros = parts
        .micros
        .checked_add(micros)
        .ok_or(Fault::FieldOverflow)?;
    Ok(TIME_OF_DAY)
}

// ---------------------------------------------------------------------------
// ISO 8601
// ---------------------------------------------------------------------------

/// A number of an ISO 8601 interval at the start of `s`: integer part,
/// fraction (signed alike) and the rest of the text.
fn iso_number(s: &str) -> Parsed<(i64, f64, &str)> {
    let (negative, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let int_len = body.bytes().take_while(u8::is_ascii_digit).count();
    let mut val = if int_len > 0 {
        body[..int_len]
            .parse::<i64>()
            .map_err(|_| Fault::FieldOverflow)?
    } else {
        0
    };
    if negative {
        val = -val;
    }
    let mut rest = &body[int_len..];
    let mut frac = 0.0;
    if let Some(after) = rest.strip_prefix('.') {
        let frac_len = after.bytes().take_while(u8::is_ascii_digit).count();
        if frac_len == 0 && int_len == 0 {
            return Err(Fault::BadFormat);
        }
        if frac_len > 0 {
            frac = rest[..frac_len + 1]
                .parse::<f64>()
                .map_err(|_| Fault::BadFormat)?;
            if negative {
                frac = -frac;
            }
        }
        rest = &after[frac_len..];
    } else if int_len == 0 {
        return Err(Fault::BadFormat);
    }
    Ok((val, frac, rest))
}

fn iso_width(s: &str) -> usize {
    s.strip_prefix('-')
        .unwrap_or(s)
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count()
}

/// PostgreSQL's `DecodeISO8601Interval`.
fn decode_iso8601(text: &str) -> Parsed<PgInterval> {
    let mut s = match text.strip_prefix('P') {
        Some(rest) if !rest.is_empty() => rest,
        _ => return Err(Fault::BadFormat),
    };
    let mut parts = Parts::default();
    let mut date_part = true;
    let mut have_field = false;
    while !s.is_empty() {
        if let Some(rest) = s.strip_prefix('T') {
            date_part = false;
            have_field = false;
            s = rest;
            continue;
        }
        let field_start = s;
        let (val, frac, rest) = iso_number(s)?;
        let unit = rest.chars().next().unwrap_or('\0');
        s = rest.get(unit.len_utf8().min(rest.len())..).unwrap_or("");
        if date_part {
            match unit {
                'Y' => {
                    parts.add_years(val, 1)?;
                    parts.add_fraction_years(frac, 1)?;
                }
                'M' => {
                    parts.add_months(val)?;
                    parts.add_fraction_days(frac, DAYS_PER_MONTH)?;
                }
                'W' => {
                    parts.add_days(val, 7)?;
                    parts.add_fraction_days(frac, 7)?;
                }
                'D' => {
                    parts.add_days(val, 1)?;
                    parts.add_fraction_micros(frac, USECS_PER_DAY)?;
                }
                'T' | '\0' if iso_width(field_start) == 8 && !have_field => {
                    // Basic alternative form: yyyymmdd.
                    parts.add_years(val / 10000, 1)?;
                    parts.add_months((val / 100) % 100)?;
                    parts.add_days(val % 100, 1)?;
                    parts.add_fraction_micros(frac, USECS_PER_DAY)?;
                    if unit == '\0' {
                        return parts.finish();
                    }
                    date_part = false;
                    have_field = false;
                    continue;
                }
                'T' | '\0' | '-' => {
                    // Extended alternative form: yyyy-mm-dd.
                    if have_field {
                        return Err(Fault::BadFormat);
                    }
                    parts.add_years(val, 1)?;
                    parts.add_fraction_years(frac, 1)?;
                    if unit == '\0' {
                        return parts.finish();
                    }
                    if unit == 'T' {
                        date_part = false;
                        have_field = false;
                        continue;
                    }
                    let (val, frac, rest) = iso_number(s)?;
                    parts.add_months(val)?;
                    parts.add_fraction_days(frac, DAYS_PER_MONTH)?;
                    s = rest;
                    if s.is_empty() {
                        return parts.finish();
                    }
                    if let Some(rest) = s.strip_prefix('T') {
                        s = rest;
                        date_part = false;
                        have_field = false;
                        continue;
                    }
                    s = s.strip_prefix('-').ok_or(Fault::BadFormat)?;
                    let (val, frac, rest) = iso_number(s)?;
                    parts.add_days(val, 1)?;
                    parts.add_fraction_micros(frac, USECS_PER_DAY)?;
                    s = rest;
                    if s.is_empty() {
                        return parts.finish();
                    }
                    if let Some(rest) = s.strip_prefix('T') {
                        s = rest;
                        date_part = false;
                        have_field = false;
                        continue;
                    }
                    return Err(Fault::BadFormat);
                }
                _ => return Err(Fault::BadFormat),
            }
        } else {
            match unit {
                'H' => parts.add_micros(val, frac, USECS_PER_HOUR)?,
                'M' => parts.add_micros(val, frac, USECS_PER_MINUTE)?,
                'S' => parts.add_micros(val, frac, USECS_PER_SEC)?,
                '\0' if iso_width(field_start) == 6 && !have_field => {
                    // Basic alternative form: hhmmss.
                    parts.add_micros(val / 10000, 0.0, USECS_PER_HOUR)?;
                    parts.add_micros((val / 100) % 100, 0.0, USECS_PER_MINUTE)?;
                    parts.add_micros(val % 100, 0.0, USECS_PER_SEC)?;
                    parts.add_fraction_micros(frac, 1)?;
                    return parts.finish();
                }
                '\0' | ':' => {
                    // Extended alternative form: hh:mm:ss.
                    if have_field {
                        return Err(Fault::BadFormat);
                    }
                    parts.add_micros(val, frac, USECS_PER_HOUR)?;
                    if unit == '\0' {
                        return parts.finish();
                    }
                    let (val, frac, rest) = iso_number(s)?;
                    parts.add_micros(val, frac, USECS_PER_MINUTE)?;
                    s = rest;
                    if s.is_empty() {
                        return parts.finish();
                    }
                    s = s.strip_prefix(':').ok_or(Fault::BadFormat)?;
                    let (val, frac, rest) = iso_number(s)?;
                    parts.add_micros(val, frac, USECS_PER_SEC)?;
                    if rest.is_empty() {
                        return parts.finish();
                    }
                    return Err(Fault::BadFormat);
                }
                _ => return Err(Fault::BadFormat),
            }
        }
        have_field = true;
    }
    parts.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::write_interval;

    /// The text PostgreSQL prints (IntervalStyle postgres) for an input.
    fn shown(input: &str) -> String {
        let v = parse_interval(input).unwrap_or_else(|e| panic!("{input}: {}", e.message));
        let mut out = String::new();
        write_interval(v.months, v.days, v.micros, &mut out);
        out
    }

    fn code(input: &str) -> SqlState {
        parse_interval(input).expect_err(input).code
    }

    #[test]
    fn unit_spellings() {
        // Each left-hand side, read by PostgreSQL 15, prints as the right.
        for (input, pg) in [
            (
                "1 year 2 months 3 days 04:05:06.789",
                "1 year 2 mons 3 days 04:05:06.789",
            ),
            ("1 year", "1 year"),
            ("2 years", "2 years"),
            ("1 yr", "1 year"),
            ("3 yrs", "3 years"),
            ("1 y", "1 year"),
            ("1 month", "1 mon"),
            ("2 months", "2 mons"),
            ("1 mon", "1 mon"),
            ("5 mons", "5 mons"),
            ("1 week", "7 days"),
            ("2 weeks", "14 days"),
            ("1 w", "7 days"),
            ("1 day", "1 day"),
            ("3 days", "3 days"),
            ("1 d", "1 day"),
            ("1 hour", "01:00:00"),
            ("25 hours", "25:00:00"),
            ("2 hr", "02:00:00"),
            ("2 hrs", "02:00:00"),
            ("1 h", "01:00:00"),
            ("1 minute", "00:01:00"),
            ("90 minutes", "01:30:00"),
            ("5 min", "00:05:00"),
            ("5 mins", "00:05:00"),
            ("5 m", "00:05:00"),
            ("1 second", "00:00:01"),
            ("30 seconds", "00:00:30"),
            ("1.5 sec", "00:00:01.5"),
            ("2 secs", "00:00:02"),
            ("2 s", "00:00:02"),
            ("1 millisecond", "00:00:00.001"),
            ("250 milliseconds", "00:00:00.25"),
            ("10 ms", "00:00:00.01"),
            ("3 msec", "00:00:00.003"),
            ("1 microsecond", "00:00:00.000001"),
            ("7 microseconds", "00:00:00.000007"),
            ("7 us", "00:00:00.000007"),
            ("7 usec", "00:00:00.000007"),
            ("1 decade", "10 years"),
            ("1 century", "100 years"),
            ("2 centuries", "200 years"),
            ("1 millennium", "1000 years"),
            ("1 DAY 2 HOURS", "1 day 02:00:00"),
            ("1day", "1 day"),
            ("1h30m", "01:30:00"),
            ("1 week 2 days", "9 days"),
        ] {
            assert_eq!(shown(input), pg, "{input}");
        }
    }

    #[test]
    fn numbers_times_and_signs() {
        for (input, pg) in [
            ("1", "00:00:01"),
            ("1.5", "00:00:01.5"),
            (".5", "00:00:00.5"),
            ("-1 hour", "-01:00:00"),
            ("+3 days", "3 days"),
            ("1 day -1 hour", "1 day -01:00:00"),
            ("-1 days +02:00:00", "-1 days +02:00:00"),
            ("04:05", "04:05:00"),
            ("04:05:06", "04:05:06"),
            ("100:00:00", "100:00:00"),
            ("-04:05:06.5", "-04:05:06.5"),
            ("1 04:05:06", "1 day 04:05:06"),
            ("1 +02:03", "1 day 02:03:00"),
            ("05:06.5", "00:05:06.5"),
            ("0", "00:00:00"),
            ("1.5 days", "1 day 12:00:00"),
            ("1.5 weeks", "10 days 12:00:00"),
            ("1.5 months", "1 mon 15 days"),
            ("1.5 years", "1 year 6 mons"),
            ("0.1 years", "1 mon"),
            ("-1.5 hours", "-01:30:00"),
            (".", "00:00:00"),
            ("1-", "1 year"),
        ] {
            assert_eq!(shown(input), pg, "{input}");
        }
    }

    #[test]
    fn postgres_and_sql_forms() {
        for (input, pg) in [
            ("@ 1 day 2 hours", "1 day 02:00:00"),
            ("@ 1 day 2 hours ago", "-1 days -02:00:00"),
            ("1 year 1 month ago", "-1 years -1 mons"),
            ("1-2", "1 year 2 mons"),
            ("-1-2", "-1 years -2 mons"),
            ("1-2 3 4:05:06", "1 year 2 mons 3 days 04:05:06"),
        ] {
            assert_eq!(shown(input), pg, "{input}");
        }
    }

    #[test]
    fn iso_8601() {
        for (input, pg) in [
            ("P1Y2M3DT4H5M6S", "1 year 2 mons 3 days 04:05:06"),
            ("P1Y", "1 year"),
            ("P2W", "14 days"),
            ("PT1H", "01:00:00"),
            ("PT1.5S", "00:00:01.5"),
            ("PT36H", "36:00:00"),
            ("P1.5Y", "1 year 6 mons"),
            ("P0.5M", "15 days"),
            ("P-1Y-2M", "-1 years -2 mons"),
            ("P0001-02-03T04:05:06", "1 year 2 mons 3 days 04:05:06"),
            ("P00010203T040506", "1 year 2 mons 3 days 04:05:06"),
            ("P1DT2H", "1 day 02:00:00"),
        ] {
            assert_eq!(shown(input), pg, "{input}");
        }
    }

    #[test]
    fn errors_are_postgres() {
        for bad in [
            "one hour",
            "bogus",
            "",
            "1 parsec",
            "1 day 2 days",
            "1 hour 04:05",
            "ago 1 day",
            "1 day ago ago",
            "1 2",
            "hours",
            "1 hour hours",
            "1day2hours",
            "-infinity",
            "P",
            "P1X",
            "1.5.3",
            "1-2-3",
            "1 nanosecond",
            "1 ago",
            "-10:60",
        ] {
            assert_eq!(code(bad), SqlState::INVALID_DATETIME_FORMAT, "{bad:?}");
        }
        let e = parse_interval("one hour").unwrap_err();
        assert_eq!(
            e.message,
            "invalid input syntax for type interval: \"one hour\""
        );
        for overflow in [
            "10:60",
            "1-12",
            "99999999999 days",
            "9223372036854775808 us",
        ] {
            assert_eq!(
                code(overflow),
                SqlState::INTERVAL_FIELD_OVERFLOW,
                "{overflow:?}"
            );
        }
        assert_eq!(
            code("2147483647 years 12 months"),
            SqlState::DATETIME_FIELD_OVERFLOW
        );
    }
}
