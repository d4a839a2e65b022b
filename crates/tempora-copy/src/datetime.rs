//! PostgreSQL's input rules for `date`, `timestamp` and `timestamptz`: a
//! fast path for ISO 8601 text, and a general parser for the other common
//! forms (`MM/DD/YYYY`, `YYYYMMDD`, month names, AM/PM, zone names and
//! abbreviations, `epoch`, `today`, ...).

use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;
use tempora_common::{SqlState, TemporaError};

use crate::zone::PgTimeZone;

/// Microseconds per day.
pub const USECS_PER_DAY: i64 = 86_400_000_000;
/// Days from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch).
pub const PG_EPOCH_DAYS: i64 = 10_957;
/// Microseconds from the Unix epoch to PostgreSQL's epoch.
pub const PG_EPOCH_USECS: i64 = PG_EPOCH_DAYS * USECS_PER_DAY;

/// Days since 1970-01-01 of a proleptic Gregorian date (`year` astronomical).
#[inline]
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[inline]
fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

#[inline]
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 => {
            if is_leap(year) {
                29
            } else {
                28
            }
        }
        _ => 0,
    }
}

/// Which type is being read (for messages and for what is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtKind {
    Date,
    Timestamp,
    Timestamptz,
}

impl DtKind {
    fn name(self) -> &'static str {
        match self {
            DtKind::Date => "date",
            DtKind::Timestamp => "timestamp",
            DtKind::Timestamptz => "timestamp with time zone",
        }
    }
}

pub fn bad_syntax(kind: DtKind, text: &str) -> TemporaError {
    TemporaError::new(
        SqlState::INVALID_DATETIME_FORMAT,
        format!("invalid input syntax for type {}: \"{text}\"", kind.name()),
    )
}

pub fn field_overflow(text: &str) -> TemporaError {
    TemporaError::new(
        SqlState::DATETIME_FIELD_OVERFLOW,
        format!("date/time field value out of range: \"{text}\""),
    )
}

fn out_of_range(kind: DtKind) -> TemporaError {
    TemporaError::new(
        SqlState::DATETIME_FIELD_OVERFLOW,
        match kind {
            DtKind::Date => "date out of range",
            _ => "timestamp out of range",
        },
    )
}

#[inline]
fn d2(b: &[u8], i: usize) -> Option<u32> {
    let x = b[i].wrapping_sub(b'0');
    let y = b[i + 1].wrapping_sub(b'0');
    if x < 10 && y < 10 {
        Some(x as u32 * 10 + y as u32)
    } else {
        None
    }
}

/// The fast path: `YYYY-MM-DD[( |T)HH:MM:SS[.ffffff][ ][Z|±HH[:MM]|±HHMM]]`.
/// Returns (local wall micros, explicit offset seconds) or None to fall back.
#[inline]
fn parse_iso_fast(b: &[u8]) -> Option<(i64, Option<i32>)> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = d2(b, 0)? * 100 + d2(b, 2)?;
    let month = d2(b, 5)?;
    let day = d2(b, 8)?;
    if month == 0 || month > 12 || day == 0 || day > days_in_month(year as i64, month) {
        return None;
    }
    let days = days_from_civil(year as i64, month, day);
    if b.len() == 10 {
        return Some((days * USECS_PER_DAY, None));
    }
    if b.len() < 19 || !(b[10] == b' ' || b[10] == b'T') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let h = d2(b, 11)?;
    let m = d2(b, 14)?;
    let s = d2(b, 17)?;
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let mut micros = (days * 86_400 + (h * 3600 + m * 60 + s) as i64) * 1_000_000;
    let mut i = 19;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        let mut frac: u32 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start >= 6 {
                // More than microsecond precision: PostgreSQL rounds; let the
                // general parser do it.
                return None;
            }
            frac = frac * 10 + (b[i] - b'0') as u32;
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        frac *= [1, 100_000, 10_000, 1_000, 100, 10, 1][n];
        micros += frac as i64;
    }
    if i == b.len() {
        return Some((micros, None));
    }
    if b[i] == b' ' {
        i += 1;
    }
    match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => Some((micros, Some(0))),
        &c @ (b'+' | b'-') => {
            let sign = if c == b'-' { -1 } else { 1 };
            let r = &b[i + 1..];
            let (hh, mm) = match r.len() {
                2 => (d2(r, 0)?, 0),
                4 => (d2(r, 0)?, d2(r, 2)?),
                5 if r[2] == b':' => (d2(r, 0)?, d2(r, 3)?),
                _ => return None,
            };
            if hh > 15 || mm > 59 {
                return None;
            }
            Some((micros, Some(sign * (hh * 3600 + mm * 60) as i32)))
        }
        _ => None,
    }
}

/// Reads a `timestamptz` (UTC micros), `timestamp` (wall micros) or `date`
/// (days since 1970-01-01, returned as micros of its midnight).
#[inline]
pub fn parse_datetime(text: &str, kind: DtKind, tz: &PgTimeZone) -> Result<i64, TemporaError> {
    if let Some((local, off)) = parse_iso_fast(text.as_bytes()) {
        return match kind {
            DtKind::Date => Ok(local.div_euclid(USECS_PER_DAY) * USECS_PER_DAY),
            DtKind::Timestamp => Ok(local),
            DtKind::Timestamptz => match off {
                Some(o) => Ok(local - o as i64 * 1_000_000),
                None => tz.local_to_utc(local).ok_or_else(|| out_of_range(kind)),
            },
        };
    }
    parse_general(text, kind, tz)
}

/// Days since 1970-01-01 of a `date` input.
pub fn parse_date(text: &str, tz: &PgTimeZone) -> Result<i32, TemporaError> {
    let micros = parse_datetime(text, DtKind::Date, tz)?;
    date_of_micros(micros).ok_or_else(|| out_of_range(DtKind::Date))
}

/// The date (days since 1970-01-01) of a timestamp's microseconds, None when
/// out of range. The infinities stay infinities: a date's are `i32::MAX` and
/// `i32::MIN`, as PostgreSQL stores them.
pub fn date_of_micros(micros: i64) -> Option<i32> {
    match micros {
        i64::MAX => Some(i32::MAX),
        i64::MIN => Some(i32::MIN),
        _ => i32::try_from(micros.div_euclid(USECS_PER_DAY))
            .ok()
            .filter(|d| *d != i32::MAX && *d != i32::MIN),
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn month_from_name(w: &str) -> Option<u32> {
    if w.len() < 3 {
        return None;
    }
    let full = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    for (i, m) in MONTHS.iter().enumerate() {
        if w == *m || w == full[i] || (i == 8 && w == "sept") {
            return Some(i as u32 + 1);
        }
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Zone {
    Fixed(i32),
    Named(Tz),
}

#[derive(Debug, PartialEq)]
enum Tok {
    Num(String),
    Word(String),
    Sym(char),
    Space,
}

fn tokenize(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            let st = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Tok::Num(b[st..i].iter().collect()));
        } else if c.is_alphabetic() {
            let st = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '/' || b[i] == '_') {
                if i == st + 1 && (b[st] == 't' || b[st] == 'T') && b[i].is_ascii_digit() {
                    // The ISO 8601 date/time separator.
                    break;
                }
                // A zone name like America/New_York or Etc/GMT+5 stays one word.
                i += 1;
                if i < b.len()
                    && (b[i] == '+' || b[i] == '-')
                    && b[st..i]
                        .iter()
                        .collect::<String>()
                        .to_ascii_lowercase()
                        .contains('/')
                {
                    i += 1;
                }
            }
            out.push(Tok::Word(
                b[st..i].iter().collect::<String>().to_lowercase(),
            ));
        } else if c.is_whitespace() {
            while i < b.len() && b[i].is_whitespace() {
                i += 1;
            }
            out.push(Tok::Space);
        } else {
            out.push(Tok::Sym(c));
            i += 1;
        }
    }
    out
}

struct Cursor {
    toks: Vec<Tok>,
    i: usize,
}

impl Cursor {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i)
    }
    fn peek_at(&self, k: usize) -> Option<&Tok> {
        self.toks.get(self.i + k)
    }
    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(Tok::Space)) {
            self.i += 1;
        }
    }
    fn num(&mut self) -> Option<String> {
        if let Some(Tok::Num(n)) = self.peek() {
            let n = n.clone();
            self.i += 1;
            Some(n)
        } else {
            None
        }
    }
    fn sym(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Sym(c)) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn done(&self) -> bool {
        self.i >= self.toks.len()
    }
}

struct Parsed {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: i64,
    zone: Option<Zone>,
}

enum PErr {
    Syntax,
    Range { month_overflow: bool },
    Zone(String),
    Displacement,
}

fn frac_micros(digits: &str) -> i64 {
    if digits.len() <= 6 {
        let v: i64 = digits.parse().unwrap_or(0);
        v * 10i64.pow(6 - digits.len() as u32)
    } else {
        // PostgreSQL reads the fraction as a double and rounds (rint).
        let f: f64 = format!("0.{digits}").parse().unwrap_or(0.0);
        (f * 1_000_000.0).round_ties_even() as i64
    }
}

fn parse_offset_tokens(c: &mut Cursor, sign: i32) -> Result<i32, PErr> {
    let first = c.num().ok_or(PErr::Syntax)?;
    let (h, mut m, mut s) = match first.len() {
        1 | 2 => (first.parse::<i32>().unwrap(), 0, 0),
        4 => (first[..2].parse().unwrap(), first[2..].parse().unwrap(), 0),
        6 => (
            first[..2].parse().unwrap(),
            first[2..4].parse().unwrap(),
            first[4..].parse().unwrap(),
        ),
        _ => return Err(PErr::Syntax),
    };
    if first.len() <= 2 && c.sym(':') {
        m = c
            .num()
            .ok_or(PErr::Syntax)?
            .parse()
            .map_err(|_| PErr::Syntax)?;
        if c.sym(':') {
            s = c
                .num()
                .ok_or(PErr::Syntax)?
                .parse()
                .map_err(|_| PErr::Syntax)?;
        }
    }
    if m > 59 || s > 59 {
        return Err(PErr::Range {
            month_overflow: false,
        });
    }
    if h > 15 {
        return Err(PErr::Displacement);
    }
    Ok(sign * (h * 3600 + m * 60 + s))
}

fn parse_tokens(text: &str) -> Result<Parsed, PErr> {
    let mut c = Cursor {
        toks: tokenize(text),
        i: 0,
    };
    c.skip_space();
    let mut p = Parsed {
        year: 0,
        month: 0,
        day: 0,
        hour: 0,
        minute: 0,
        second: 0,
        micros: 0,
        zone: None,
    };
    let mut compact_date = false;
    // The date.
    match c.peek() {
        Some(Tok::Num(n)) => {
            let n = n.clone();
            c.i += 1;
            if c.sym('-') {
                // Y-M-D, or Y-Mon-D.
                p.year = n.parse().map_err(|_| PErr::Syntax)?;
                if n.len() < 3 {
                    return Err(PErr::Syntax);
                }
                p.month = match c.peek() {
                    Some(Tok::Word(w)) => {
                        let m = month_from_name(w).ok_or(PErr::Syntax)?;
                        c.i += 1;
                        m
                    }
                    _ => c
                        .num()
                        .ok_or(PErr::Syntax)?
                        .parse()
                        .map_err(|_| PErr::Syntax)?,
                };
                if !c.sym('-') {
                    return Err(PErr::Syntax);
                }
                p.day = c
                    .num()
                    .ok_or(PErr::Syntax)?
                    .parse()
                    .map_err(|_| PErr::Syntax)?;
            } else if c.sym('/') {
                // M/D/Y (DateStyle MDY) or Y/M/D.
                let b = c.num().ok_or(PErr::Syntax)?;
                if !c.sym('/') {
                    return Err(PErr::Syntax);
                }
                let d = c.num().ok_or(PErr::Syntax)?;
                if n.len() >= 3 {
                    p.year = n.parse().map_err(|_| PErr::Syntax)?;
                    p.month = b.parse().map_err(|_| PErr::Syntax)?;
                    p.day = d.parse().map_err(|_| PErr::Syntax)?;
                } else {
                    p.month = n.parse().map_err(|_| PErr::Syntax)?;
                    p.day = b.parse().map_err(|_| PErr::Syntax)?;
                    p.year = d.parse().map_err(|_| PErr::Syntax)?;
                    if d.len() <= 2 {
                        p.year += if p.year < 70 { 2000 } else { 1900 };
                    }
                }
            } else if n.len() == 8 {
                p.year = n[..4].parse().unwrap();
                p.month = n[4..6].parse().unwrap();
                p.day = n[6..].parse().unwrap();
                compact_date = true;
            } else if matches!(c.peek(), Some(Tok::Space))
                && matches!(c.peek_at(1), Some(Tok::Word(w)) if month_from_name(w).is_some())
            {
                // D Mon Y
                c.skip_space();
                let Some(Tok::Word(w)) = c.peek() else {
                    return Err(PErr::Syntax);
                };
                p.month = month_from_name(w).ok_or(PErr::Syntax)?;
                c.i += 1;
                c.skip_space();
                p.day = n.parse().map_err(|_| PErr::Syntax)?;
                p.year = c
                    .num()
                    .ok_or(PErr::Syntax)?
                    .parse()
                    .map_err(|_| PErr::Syntax)?;
            } else {
                return Err(PErr::Syntax);
            }
        }
        Some(Tok::Word(w)) => {
            // Mon D[,] Y
            p.month = month_from_name(w).ok_or(PErr::Syntax)?;
            c.i += 1;
            c.skip_space();
            p.day = c
                .num()
                .ok_or(PErr::Syntax)?
                .parse()
                .map_err(|_| PErr::Syntax)?;
            c.sym(',');
            c.skip_space();
            p.year = c
                .num()
                .ok_or(PErr::Syntax)?
                .parse()
                .map_err(|_| PErr::Syntax)?;
        }
        _ => return Err(PErr::Syntax),
    }
    // The time.
    let had_space = matches!(c.peek(), Some(Tok::Space));
    c.skip_space();
    if matches!(c.peek(), Some(Tok::Word(w)) if w == "t") {
        c.i += 1;
    } else if !had_space && !c.done() && !matches!(c.peek(), Some(Tok::Word(_))) {
        // Glued directly to the date: only a zone may follow.
        if !matches!(c.peek(), Some(Tok::Sym('+') | Tok::Sym('-'))) {
            return Err(PErr::Syntax);
        }
    }
    if let Some(Tok::Num(n)) = c.peek() {
        let n = n.clone();
        c.i += 1;
        if compact_date && n.len() == 6 && !matches!(c.peek(), Some(Tok::Sym(':'))) {
            p.hour = n[..2].parse().unwrap();
            p.minute = n[2..4].parse().unwrap();
            p.second = n[4..].parse().unwrap();
            if c.sym('.') {
                let f = c.num().unwrap_or_default();
                p.micros = frac_micros(&f);
            }
        } else {
            if n.len() > 2 {
                return Err(PErr::Syntax);
            }
            p.hour = n.parse().unwrap();
            if !c.sym(':') {
                return Err(PErr::Syntax);
            }
            let m = c.num().ok_or(PErr::Syntax)?;
            if m.len() > 2 {
                return Err(PErr::Syntax);
            }
            p.minute = m.parse().unwrap();
            if c.sym(':') {
                let s = c.num().ok_or(PErr::Syntax)?;
                if s.len() > 2 {
                    return Err(PErr::Syntax);
                }
                p.second = s.parse().unwrap();
                if c.sym('.') {
                    let f = c.num().unwrap_or_default();
                    p.micros = frac_micros(&f);
                }
            }
        }
        c.skip_space();
        if let Some(Tok::Word(w)) = c.peek() {
            if w == "am" || w == "pm" {
                if p.hour > 12 || p.hour == 0 {
                    return Err(PErr::Range {
                        month_overflow: false,
                    });
                }
                if w == "am" && p.hour == 12 {
                    p.hour = 0;
                } else if w == "pm" && p.hour != 12 {
                    p.hour += 12;
                }
                c.i += 1;
                c.skip_space();
            }
        }
    }
    // The zone and era.
    let mut bc = false;
    while !c.done() {
        c.skip_space();
        match c.peek() {
            None => break,
            Some(Tok::Sym(s @ ('+' | '-'))) => {
                if p.zone.is_some() {
                    return Err(PErr::Syntax);
                }
                let sign = if *s == '-' { -1 } else { 1 };
                c.i += 1;
                p.zone = Some(Zone::Fixed(parse_offset_tokens(&mut c, sign)?));
            }
            Some(Tok::Word(w)) => {
                let w = w.clone();
                c.i += 1;
                if w == "bc" {
                    bc = true;
                } else if w == "ad" {
                } else if p.zone.is_some() {
                    return Err(PErr::Syntax);
                } else if let Some(off) = crate::zone::abbreviation_offset(&w) {
                    p.zone = Some(Zone::Fixed(off));
                } else {
                    match crate::zone::find_named(&w) {
                        Some(tz) => p.zone = Some(Zone::Named(tz)),
                        None => return Err(PErr::Zone(w)),
                    }
                }
            }
            _ => return Err(PErr::Syntax),
        }
    }
    if bc {
        if p.year <= 0 {
            return Err(PErr::Range {
                month_overflow: false,
            });
        }
        p.year = 1 - p.year;
    }
    Ok(p)
}

fn parse_general(text: &str, kind: DtKind, tz: &PgTimeZone) -> Result<i64, TemporaError> {
    let s = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let lower = s.to_ascii_lowercase();
    let today = || {
        let now = Utc::now().timestamp_micros();
        let local = now + i64::from(tz.offset_at(now)) * 1_000_000;
        local.div_euclid(USECS_PER_DAY) * USECS_PER_DAY
    };
    let special_local = match lower.as_str() {
        "epoch" => Some(0),
        // A date keeps its infinities (see `date_of_micros`).
        "infinity" | "+infinity" if kind == DtKind::Date => return Ok(i64::MAX),
        "-infinity" if kind == DtKind::Date => return Ok(i64::MIN),
        "infinity" | "+infinity" | "-infinity" => return Err(out_of_range(kind)),
        "now" => {
            let now = Utc::now().timestamp_micros();
            return Ok(match kind {
                DtKind::Timestamptz => now,
                DtKind::Timestamp | DtKind::Date => {
                    let local = now + i64::from(tz.offset_at(now)) * 1_000_000;
                    if kind == DtKind::Date {
                        local.div_euclid(USECS_PER_DAY) * USECS_PER_DAY
                    } else {
                        local
                    }
                }
            });
        }
        "today" => Some(today()),
        "tomorrow" => Some(today() + USECS_PER_DAY),
        "yesterday" => Some(today() - USECS_PER_DAY),
        _ => None,
    };
    if let Some(local) = special_local {
        return match kind {
            DtKind::Timestamptz if lower != "epoch" => {
                tz.local_to_utc(local).ok_or_else(|| out_of_range(kind))
            }
            _ => Ok(local),
        };
    }
    let p = match parse_tokens(s) {
        Ok(p) => p,
        Err(PErr::Syntax) => return Err(bad_syntax(kind, text)),
        Err(PErr::Range { month_overflow }) => {
            let e = field_overflow(text);
            return Err(if month_overflow {
                e.with_hint("Perhaps you need a different \"datestyle\" setting.")
            } else {
                e
            });
        }
        Err(PErr::Zone(z)) => {
            return Err(TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("time zone \"{z}\" not recognized"),
            ))
        }
        Err(PErr::Displacement) => {
            return Err(TemporaError::new(
                SqlState::INVALID_TIME_ZONE_DISPLACEMENT_VALUE,
                format!("time zone displacement out of range: \"{text}\""),
            ))
        }
    };
    if p.month == 0 || p.month > 12 {
        let e = field_overflow(text);
        return Err(if p.month > 12 {
            e.with_hint("Perhaps you need a different \"datestyle\" setting.")
        } else {
            e
        });
    }
    if p.day == 0 || p.day > days_in_month(p.year, p.month) {
        return Err(field_overflow(text));
    }
    // 24:00:00 is allowed (the next midnight); a leap second rolls over.
    let time_ok = (p.hour < 24 && p.minute < 60 && p.second <= 60)
        || (p.hour == 24 && p.minute == 0 && p.second == 0 && p.micros == 0);
    if !time_ok {
        return Err(field_overflow(text));
    }
    if NaiveDate::from_ymd_opt(p.year as i32, p.month, p.day).is_none() {
        return Err(out_of_range(kind));
    }
    let days = days_from_civil(p.year, p.month, p.day);
    let local =
        (days * 86_400 + (p.hour * 3600 + p.minute * 60 + p.second) as i64) * 1_000_000 + p.micros;
    match kind {
        DtKind::Date => Ok(days * USECS_PER_DAY),
        DtKind::Timestamp => Ok(local),
        DtKind::Timestamptz => match p.zone {
            Some(Zone::Fixed(off)) => Ok(local - off as i64 * 1_000_000),
            Some(Zone::Named(z)) => PgTimeZone::Named(z)
                .local_to_utc(local)
                .ok_or_else(|| out_of_range(kind)),
            None => tz.local_to_utc(local).ok_or_else(|| out_of_range(kind)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tstz(s: &str, tz: &str) -> Result<i64, TemporaError> {
        parse_datetime(s, DtKind::Timestamptz, &PgTimeZone::of_setting(tz))
    }

    const BASE: i64 = 1_451_606_400_000_000; // 2016-01-01 00:00:00 UTC

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), PG_EPOCH_DAYS);
        assert_eq!(days_from_civil(2016, 1, 1), 16_801);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(0, 3, 1), -719_468);
    }

    #[test]
    fn iso_fast_path() {
        assert_eq!(
            tstz("2016-01-01 00:00:10+00", "UTC").unwrap(),
            BASE + 10_000_000
        );
        assert_eq!(
            tstz("2016-01-01T00:00:10Z", "UTC").unwrap(),
            BASE + 10_000_000
        );
        assert_eq!(tstz("2016-01-01 05:30:00+05:30", "UTC").unwrap(), BASE);
        assert_eq!(tstz("2016-01-01 05:30:00+0530", "UTC").unwrap(), BASE);
        assert_eq!(tstz("2015-12-31 19:00:00 -05", "UTC").unwrap(), BASE);
        assert_eq!(
            tstz("2016-01-01 00:00:00.5", "UTC").unwrap(),
            BASE + 500_000
        );
        assert_eq!(tstz("2016-01-01", "UTC").unwrap(), BASE);
        assert_eq!(tstz("2016-01-01 01:00:00", "Europe/Berlin").unwrap(), BASE);
    }

    #[test]
    fn general_forms() {
        assert_eq!(
            tstz("  2016-01-01 00:00:01  ", "UTC").unwrap(),
            BASE + 1_000_000
        );
        assert_eq!(tstz("2016-1-1 0:0:1", "UTC").unwrap(), BASE + 1_000_000);
        assert_eq!(tstz("20160101 000001", "UTC").unwrap(), BASE + 1_000_000);
        assert_eq!(tstz("01/01/2016", "UTC").unwrap(), BASE);
        assert_eq!(tstz("January 1, 2016", "UTC").unwrap(), BASE);
        assert_eq!(tstz("1 Jan 2016 12:00 am", "UTC").unwrap(), BASE);
        assert_eq!(
            tstz("2016-01-01 00:00 EST", "UTC").unwrap(),
            BASE + 5 * 3_600_000_000
        );
        assert_eq!(tstz("2016-01-01 01:00 Europe/Berlin", "UTC").unwrap(), BASE);
        assert_eq!(
            tstz("2016-01-01 00:00:00-8", "UTC").unwrap(),
            BASE + 8 * 3_600_000_000
        );
        assert_eq!(
            tstz("2016-01-01 00:00:00 +05:30:15", "UTC").unwrap(),
            BASE - (5 * 3600 + 1800 + 15) * 1_000_000
        );
        assert_eq!(
            tstz("2016-01-01 00:00:00.1234565", "UTC").unwrap(),
            BASE + 123_456
        );
        assert_eq!(
            tstz("2016-01-01 00:00:00.9999995", "UTC").unwrap(),
            BASE + 1_000_000
        );
        assert_eq!(tstz("2015-12-31 24:00:00", "UTC").unwrap(), BASE);
        assert_eq!(tstz("epoch", "Europe/Berlin").unwrap(), 0);
        let ts = parse_datetime(
            "2016-01-01 00:00:00 Europe/Berlin",
            DtKind::Timestamp,
            &PgTimeZone::utc(),
        )
        .unwrap();
        assert_eq!(ts, BASE);
        let d = parse_date("2016-01-01 12:34:56+02", &PgTimeZone::utc()).unwrap();
        assert_eq!(d, 16_801);
    }

    #[test]
    fn dst_rules_match_postgres() {
        // Ambiguous (fall back): the later instant, standard time.
        let t = tstz("2018-11-04 01:30", "America/New_York").unwrap();
        assert_eq!(t, tstz("2018-11-04 01:30-05", "UTC").unwrap());
        // Skipped (spring forward): the offset before the gap.
        let t = tstz("2018-03-11 02:30", "America/New_York").unwrap();
        assert_eq!(t, tstz("2018-03-11 02:30-05", "UTC").unwrap());
    }

    #[test]
    fn errors() {
        let e = tstz("x", "UTC").unwrap_err();
        assert_eq!(e.code, SqlState::INVALID_DATETIME_FORMAT);
        assert_eq!(
            e.message,
            "invalid input syntax for type timestamp with time zone: \"x\""
        );
        let e = parse_datetime("x", DtKind::Timestamp, &PgTimeZone::utc()).unwrap_err();
        assert_eq!(e.message, "invalid input syntax for type timestamp: \"x\"");
        let e = parse_date("x", &PgTimeZone::utc()).unwrap_err();
        assert_eq!(e.message, "invalid input syntax for type date: \"x\"");
        let e = parse_date("2016-13-01", &PgTimeZone::utc()).unwrap_err();
        assert_eq!(e.code, SqlState::DATETIME_FIELD_OVERFLOW);
        assert_eq!(
            e.message,
            "date/time field value out of range: \"2016-13-01\""
        );
        assert!(e.hint.is_some());
        let e = tstz("2016-02-30 00:00", "UTC").unwrap_err();
        assert_eq!(e.code, SqlState::DATETIME_FIELD_OVERFLOW);
        assert!(e.hint.is_none());
        let e = tstz("2016-01-01 25:00", "UTC").unwrap_err();
        assert_eq!(
            e.message,
            "date/time field value out of range: \"2016-01-01 25:00\""
        );
        let e = tstz("2016-01-01 00:00 Foo/Bar", "UTC").unwrap_err();
        assert_eq!(e.code, SqlState::INVALID_PARAMETER_VALUE);
        assert_eq!(e.message, "time zone \"foo/bar\" not recognized");
        let e = tstz("2016-01-01 00:00+16", "UTC").unwrap_err();
        assert_eq!(e.code, SqlState::INVALID_TIME_ZONE_DISPLACEMENT_VALUE);
        assert_eq!(
            e.message,
            "time zone displacement out of range: \"2016-01-01 00:00+16\""
        );
        let e = tstz("infinity", "UTC").unwrap_err();
        assert_eq!(e.code, SqlState::DATETIME_FIELD_OVERFLOW);
    }
}
