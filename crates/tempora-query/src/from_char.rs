//! `to_timestamp(text, text)` and `to_date(text, text)`: reading a date or
//! time through one of PostgreSQL's template patterns (`YYYY-MM-DD
//! HH24:MI:SS`, `DD Mon YYYY`, `IYYY IW ID`, `J`, `TZH:TZM`), with
//! PostgreSQL's leniency about spaces and separators, its defaults for the
//! fields a template leaves out (January 1st of 1 BC, midnight), and its
//! errors (22007 for a value that does not fit its pattern, 22008 for a
//! field out of range). Also `to_timestamp(double precision)`, seconds since
//! 1970 rounded to the microsecond.
//!
//! How the input is walked, as PostgreSQL walks it (outside `FX` mode):
//! blanks before any template item are skipped; a space or separator in the
//! template consumes one space or separator of the input if there is one;
//! any other template character skips one input character, unless blanks
//! were just skipped in its place. A number is read as far as it goes
//! when the next template item cannot start with a digit (or with `FM`),
//! else as exactly its pattern's width, so that `YYYYMMDD` works. Reading
//! stops, leaving the remaining fields at their defaults, when the input
//! ends; input left over after the template is ignored.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Builder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use tempora_common::{SqlState, TemporaError};
use tempora_copy::datetime::{days_from_civil, days_in_month, field_overflow, USECS_PER_DAY};
use tempora_copy::zone::PgTimeZone;

use crate::date_part::no_such_function;
use crate::pg_types::{result_rows, result_value};
use crate::to_char::{DAYS, MONTHS};
use crate::variables::{SessionHandle, SessionVariables};
use crate::zone_casts::{in_timestamp_range, MIN_TIMESTAMP_USECS};

/// What a template pattern reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// `YYYY`, `YYY`, `YY`, `Y` (the digits the pattern has).
    Year(u8),
    /// `Y,YYY`.
    YearComma,
    /// `IYYY`, `IYY`, `IY`, `I`.
    IsoYear(u8),
    Month,
    /// `MONTH` (true) or `MON`.
    MonthName(bool),
    RomanMonth,
    Day,
    DayOfYear,
    IsoDayOfYear,
    /// `DAY` (true) or `DY`.
    WeekdayName(bool),
    /// `D`: 1 = Sunday.
    Weekday,
    /// `ID`: 1 = Monday.
    IsoWeekday,
    WeekOfMonth,
    WeekOfYear,
    IsoWeek,
    Quarter,
    Century,
    Julian,
    Hour12,
    Hour24,
    Minute,
    Second,
    Milli,
    Micro,
    /// `FF1` .. `FF6`.
    Fraction(u8),
    /// `SSSS` (4) or `SSSSS` (5).
    SecondsOfDay(u8),
    /// `AM`/`PM` (false) or `A.M.`/`P.M.` (true).
    Meridiem(bool),
    /// `AD`/`BC` (false) or `A.D.`/`B.C.` (true).
    Era(bool),
    TzHour,
    TzMinute,
    /// `TZ`, `tz`, `OF`: output-only patterns.
    OutputOnly,
}

/// Which calendar a pattern belongs to; a template may not mix the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Gregorian,
    IsoWeek,
}

impl Field {
    /// Whether the pattern reads a number (so that a number before it has
    /// to stop at its own width).
    fn is_digit(self) -> bool {
        !matches!(
            self,
            Field::MonthName(_)
                | Field::RomanMonth
                | Field::WeekdayName(_)
                | Field::Meridiem(_)
                | Field::Era(_)
                | Field::OutputOnly
                // It may start with its sign.
                | Field::TzHour
        )
    }

    /// How many characters a number of this pattern takes when it has to
    /// stop at its width.
    fn width(self) -> usize {
        match self {
            Field::Year(n) | Field::IsoYear(n) | Field::Fraction(n) => n as usize,
            Field::SecondsOfDay(n) => n as usize,
            Field::DayOfYear | Field::IsoDayOfYear | Field::Milli => 3,
            Field::Micro => 6,
            Field::Weekday
            | Field::IsoWeekday
            | Field::WeekOfMonth
            | Field::Quarter
            | Field::Julian => 1,
            _ => 2,
        }
    }

    fn mode(self) -> Option<Mode> {
        match self {
            Field::Year(_)
            | Field::YearComma
            | Field::Month
            | Field::MonthName(_)
            | Field::RomanMonth
            | Field::Day
            | Field::DayOfYear
            | Field::Weekday
            | Field::WeekOfMonth
            | Field::WeekOfYear => Some(Mode::Gregorian),
            Field::IsoYear(_) | Field::IsoDayOfYear | Field::IsoWeekday | Field::IsoWeek => {
                Some(Mode::IsoWeek)
            }
            _ => None,
        }
    }
}

/// The template patterns, in both the capitalizations PostgreSQL knows.
/// Matching takes the longest pattern that fits.
const PATTERNS: &[(&str, Field)] = &[
    ("Y,YYY", Field::YearComma),
    ("y,yyy", Field::YearComma),
    ("YYYY", Field::Year(4)),
    ("yyyy", Field::Year(4)),
    ("YYY", Field::Year(3)),
    ("yyy", Field::Year(3)),
    ("YY", Field::Year(2)),
    ("yy", Field::Year(2)),
    ("Y", Field::Year(1)),
    ("y", Field::Year(1)),
    ("IYYY", Field::IsoYear(4)),
    ("iyyy", Field::IsoYear(4)),
    ("IYY", Field::IsoYear(3)),
    ("iyy", Field::IsoYear(3)),
    ("IY", Field::IsoYear(2)),
    ("iy", Field::IsoYear(2)),
    ("I", Field::IsoYear(1)),
    ("i", Field::IsoYear(1)),
    ("MONTH", Field::MonthName(true)),
    ("Month", Field::MonthName(true)),
    ("month", Field::MonthName(true)),
    ("MON", Field::MonthName(false)),
    ("Mon", Field::MonthName(false)),
    ("mon", Field::MonthName(false)),
    ("MM", Field::Month),
    ("mm", Field::Month),
    ("RM", Field::RomanMonth),
    ("rm", Field::RomanMonth),
    ("DDD", Field::DayOfYear),
    ("ddd", Field::DayOfYear),
    ("DD", Field::Day),
    ("dd", Field::Day),
    ("IDDD", Field::IsoDayOfYear),
    ("iddd", Field::IsoDayOfYear),
    ("ID", Field::IsoWeekday),
    ("id", Field::IsoWeekday),
    ("DAY", Field::WeekdayName(true)),
    ("Day", Field::WeekdayName(true)),
    ("day", Field::WeekdayName(true)),
    ("DY", Field::WeekdayName(false)),
    ("Dy", Field::WeekdayName(false)),
    ("dy", Field::WeekdayName(false)),
    ("D", Field::Weekday),
    ("d", Field::Weekday),
    ("IW", Field::IsoWeek),
    ("iw", Field::IsoWeek),
    ("WW", Field::WeekOfYear),
    ("ww", Field::WeekOfYear),
    ("W", Field::WeekOfMonth),
    ("w", Field::WeekOfMonth),
    ("Q", Field::Quarter),
    ("q", Field::Quarter),
    ("CC", Field::Century),
    ("cc", Field::Century),
    ("J", Field::Julian),
    ("j", Field::Julian),
    ("HH24", Field::Hour24),
    ("hh24", Field::Hour24),
    ("HH12", Field::Hour12),
    ("hh12", Field::Hour12),
    ("HH", Field::Hour12),
    ("hh", Field::Hour12),
    ("MI", Field::Minute),
    ("mi", Field::Minute),
    ("SSSSS", Field::SecondsOfDay(5)),
    ("sssss", Field::SecondsOfDay(5)),
    ("SSSS", Field::SecondsOfDay(4)),
    ("ssss", Field::SecondsOfDay(4)),
    ("SS", Field::Second),
    ("ss", Field::Second),
    ("MS", Field::Milli),
    ("ms", Field::Milli),
    ("US", Field::Micro),
    ("us", Field::Micro),
    ("FF1", Field::Fraction(1)),
    ("FF2", Field::Fraction(2)),
    ("FF3", Field::Fraction(3)),
    ("FF4", Field::Fraction(4)),
    ("FF5", Field::Fraction(5)),
    ("FF6", Field::Fraction(6)),
    ("ff1", Field::Fraction(1)),
    ("ff2", Field::Fraction(2)),
    ("ff3", Field::Fraction(3)),
    ("ff4", Field::Fraction(4)),
    ("ff5", Field::Fraction(5)),
    ("ff6", Field::Fraction(6)),
    ("A.M.", Field::Meridiem(true)),
    ("a.m.", Field::Meridiem(true)),
    ("P.M.", Field::Meridiem(true)),
    ("p.m.", Field::Meridiem(true)),
    ("AM", Field::Meridiem(false)),
    ("am", Field::Meridiem(false)),
    ("PM", Field::Meridiem(false)),
    ("pm", Field::Meridiem(false)),
    ("A.D.", Field::Era(true)),
    ("a.d.", Field::Era(true)),
    ("B.C.", Field::Era(true)),
    ("b.c.", Field::Era(true)),
    ("AD", Field::Era(false)),
    ("ad", Field::Era(false)),
    ("BC", Field::Era(false)),
    ("bc", Field::Era(false)),
    ("TZH", Field::TzHour),
    ("tzh", Field::TzHour),
    ("TZM", Field::TzMinute),
    ("tzm", Field::TzMinute),
    ("TZ", Field::OutputOnly),
    ("tz", Field::OutputOnly),
    ("OF", Field::OutputOnly),
];

const ROMAN: [(&str, i32); 12] = [
    ("XII", 12),
    ("XI", 11),
    ("X", 10),
    ("IX", 9),
    ("VIII", 8),
    ("VII", 7),
    ("VI", 6),
    ("V", 5),
    ("IV", 4),
    ("III", 3),
    ("II", 2),
    ("I", 1),
];

/// One item of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Field {
        field: Field,
        name: &'static str,
        /// `FM`: the number is read as far as it goes.
        fill: bool,
        /// `TH`/`th`: an ordinal suffix follows the number.
        ordinal: bool,
    },
    Space,
    Separator,
    /// Literal text (quoted or not): skips one input character.
    Char(char),
}

/// A template split into its items, and whether it starts with `FX`.
fn compile(template: &str) -> (Vec<Node>, bool) {
    let mut nodes = Vec::new();
    let mut exact = false;
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if let Some(q) = rest.strip_prefix('"') {
            let (text, after) = crate::to_char::quoted(q);
            nodes.extend(text.chars().map(Node::Char));
            rest = after;
            continue;
        }
        // Prefixes: FM (fill mode), FX (exact spacing), TM (translation).
        let mut fill = false;
        let mut body = rest;
        loop {
            match body.get(..2) {
                Some("FM" | "fm") => fill = true,
                Some("FX" | "fx") => exact = true,
                Some("TM" | "tm") => {}
                _ => break,
            }
            body = &body[2..];
        }
        let found = PATTERNS
            .iter()
            .filter(|(p, _)| body.starts_with(p))
            .max_by_key(|(p, _)| p.len());
        if let Some(&(name, field)) = found {
            body = &body[name.len()..];
            let ordinal = matches!(body.get(..2), Some("TH" | "th"));
            if ordinal {
                body = &body[2..];
            }
            nodes.push(Node::Field {
                field,
                name,
                fill,
                ordinal,
            });
            rest = body;
            continue;
        }
        if body.len() != rest.len() {
            // Prefixes without a pattern: nothing to read.
            rest = body;
            continue;
        }
        let c = if c == '\\' {
            rest = &rest[1..];
            match rest.chars().next() {
                Some(n) => n,
                None => break,
            }
        } else {
            c
        };
        nodes.push(if c.is_whitespace() {
            Node::Space
        } else if c.is_ascii() && !c.is_ascii_alphanumeric() {
            Node::Separator
        } else {
            Node::Char(c)
        });
        rest = &rest[c.len_utf8()..];
    }
    (nodes, exact)
}

/// The fields read so far; `None` where the template has not set one.
#[derive(Debug, Default)]
struct Fields {
    mode: Option<Mode>,
    year: Option<i64>,
    /// The year pattern's digits (for `CC` with `YY`).
    year_digits: u8,
    century: Option<i64>,
    month: Option<i64>,
    day: Option<i64>,
    day_of_year: Option<i64>,
    /// 1 = Sunday .. 7 = Saturday.
    weekday: Option<i64>,
    week: Option<i64>,
    week_of_month: Option<i64>,
    julian: Option<i64>,
    hour: Option<i64>,
    minute: Option<i64>,
    second: Option<i64>,
    seconds_of_day: Option<i64>,
    milli: Option<i64>,
    micro: Option<i64>,
    twelve_hour: bool,
    pm: Option<bool>,
    bc: Option<bool>,
    tz_sign: Option<i64>,
    tz_hour: Option<i64>,
    tz_minute: Option<i64>,
}

fn conflict(name: &str) -> TemporaError {
    TemporaError::new(
        SqlState::INVALID_DATETIME_FORMAT,
        format!("conflicting values for \"{name}\" field in formatting string"),
    )
    .with_detail("This value contradicts a previous setting for the same field type.")
}

/// Sets a field once; a second, different value is an error. Zero counts
/// as unset, as in PostgreSQL.
fn set(slot: &mut Option<i64>, value: i64, name: &str) -> Result<(), TemporaError> {
    match *slot {
        Some(old) if old != 0 && old != value => Err(conflict(name)),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

const FILL_HINT: &str = "If your source string is not fixed-width, try using the \"FM\" modifier.";

/// The reading position in the input.
struct Reader<'a> {
    input: &'a str,
    pos: usize,
    /// Characters skipped beyond what the template asked for.
    extra: i64,
}

impl Reader<'_> {
    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn advance(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
        }
    }

    fn skip_blanks(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
            self.extra += 1;
        }
    }

    /// The input at the reading position as an error quotes it: up to
    /// `chars` characters.
    fn quote(&self, chars: usize) -> String {
        self.rest().chars().take(chars).collect()
    }

    /// A number as C's `strtol` reads one from `text`: blanks, a sign,
    /// digits (at most `max_digits`). Returns the value and the bytes used,
    /// or None when there are no digits.
    fn strtol(text: &str, max_digits: usize) -> Option<(i128, usize)> {
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let neg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        let mut v: i128 = 0;
        while i < b.len() && b[i].is_ascii_digit() && i - start < max_digits {
            v = (v * 10 + i128::from(b[i] - b'0')).min(i128::from(u64::MAX));
            i += 1;
        }
        (i > start).then_some((if neg { -v } else { v }, i))
    }

    /// Reads a number for the pattern `name`: as far as it goes (`greedy`)
    /// or as exactly `width` characters. Returns the value and the count of
    /// characters read (blanks and sign included, as PostgreSQL counts them
    /// to scale fractions and to tell a two-digit year).
    fn number(
        &mut self,
        name: &str,
        width: usize,
        greedy: bool,
    ) -> Result<(i64, usize), TemporaError> {
        // Blanks before a number are never part of it.
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
        }
        let not_integer = || {
            TemporaError::new(
                SqlState::INVALID_DATETIME_FORMAT,
                format!("invalid value \"{}\" for \"{name}\"", self.quote(width)),
            )
            .with_detail("Value must be an integer.")
        };
        let (value, used) = if greedy {
            Self::strtol(self.rest(), usize::MAX).ok_or_else(not_integer)?
        } else {
            let remain = self.rest().chars().count();
            if remain < width {
                return Err(TemporaError::new(
                    SqlState::INVALID_DATETIME_FORMAT,
                    format!("source string too short for \"{name}\" formatting field"),
                )
                .with_detail(format!(
                    "Field requires {width} characters, but only {remain} remain."
                ))
                .with_hint(FILL_HINT));
            }
            let end = self
                .rest()
                .char_indices()
                .nth(width)
                .map_or(self.rest().len(), |(i, _)| i);
            let copy = &self.rest()[..end];
            let (value, used) = Self::strtol(copy, usize::MAX).ok_or_else(not_integer)?;
            if used < copy.len() {
                return Err(TemporaError::new(
                    SqlState::INVALID_DATETIME_FORMAT,
                    format!("invalid value \"{copy}\" for \"{name}\""),
                )
                .with_detail(format!(
                    "Field requires {width} characters, but only {used} could be parsed."
                ))
                .with_hint(FILL_HINT));
            }
            (value, used)
        };
        self.pos += used;
        let value = i32::try_from(value).map_err(|_| {
            TemporaError::new(
                SqlState::DATETIME_FIELD_OVERFLOW,
                format!("value for \"{name}\" in source string is out of range"),
            )
            .with_detail("Value must be in the range -2147483648 to 2147483647.")
        })?;
        Ok((i64::from(value), used))
    }

    /// Reads one of `names` (any case); returns its index.
    fn one_of(&mut self, name: &str, names: &[&str]) -> Result<usize, TemporaError> {
        let rest = self.rest();
        let found = names.iter().enumerate().find(|(_, n)| {
            rest.len() >= n.len()
                && rest.is_char_boundary(n.len())
                && rest[..n.len()].eq_ignore_ascii_case(n)
        });
        match found {
            Some((i, n)) => {
                self.pos += n.len();
                Ok(i)
            }
            None => {
                let word: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .take(32)
                    .collect();
                Err(TemporaError::new(
                    SqlState::INVALID_DATETIME_FORMAT,
                    format!("invalid value \"{word}\" for \"{name}\""),
                )
                .with_detail(
                    "The given value did not match any of the allowed values for this field.",
                ))
            }
        }
    }
}

/// Whether a number read for `nodes[i]` may run past its width: it may
/// when what follows cannot begin with a digit.
fn runs_free(nodes: &[Node], i: usize) -> bool {
    if let Node::Field { fill: true, .. } | Node::Field { ordinal: true, .. } = nodes[i] {
        return true;
    }
    match nodes.get(i + 1) {
        None => true,
        Some(Node::Field { field, .. }) => !field.is_digit(),
        Some(Node::Char(c)) => !c.is_ascii_digit(),
        Some(Node::Space | Node::Separator) => true,
    }
}

/// Reads `input` through the template into its fields.
fn read_fields(input: &str, template: &str) -> Result<Fields, TemporaError> {
    let (nodes, exact) = compile(template);
    let mut f = Fields::default();
    let mut r = Reader {
        input,
        pos: 0,
        extra: 0,
    };
    for (i, node) in nodes.iter().enumerate() {
        if r.rest().is_empty() {
            break;
        }
        if !exact {
            r.skip_blanks();
        }
        let (field, name, ordinal) = match *node {
            Node::Space | Node::Separator => {
                if exact {
                    r.advance();
                } else {
                    r.extra -= 1;
                    if r.peek().is_some_and(|c| {
                        c.is_whitespace() || (c.is_ascii() && !c.is_ascii_alphanumeric())
                    }) {
                        r.advance();
                        r.extra += 1;
                    }
                }
                continue;
            }
            Node::Char(_) => {
                if !exact && r.extra > 0 {
                    r.extra -= 1;
                } else {
                    r.advance();
                }
                continue;
            }
            Node::Field {
                field,
                name,
                ordinal,
                ..
            } => (field, name, ordinal),
        };
        if let Some(mode) = field.mode() {
            match f.mode {
                Some(m) if m != mode => return Err(TemporaError::new(
                    SqlState::INVALID_DATETIME_FORMAT,
                    "invalid combination of date conventions",
                )
                .with_hint(
                    "Do not mix Gregorian and ISO week date conventions in a formatting template.",
                )),
                _ => f.mode = Some(mode),
            }
        }
        let greedy = runs_free(&nodes, i);
        let num = |r: &mut Reader| r.number(name, field.width(), greedy);
        match field {
            Field::OutputOnly => {
                return Err(TemporaError::new(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    format!("formatting field \"{name}\" is only supported in to_char"),
                ))
            }
            Field::Year(n) | Field::IsoYear(n) => {
                let (v, used) = num(&mut r)?;
                // A repeated year is checked as written, then widened.
                set(&mut f.year, v, name)?;
                if n < 4 && used < 4 {
                    f.year = Some(nearest_2020(v));
                }
                f.year_digits = n;
            }
            Field::YearComma => {
                let bad = || {
                    TemporaError::new(
                        SqlState::INVALID_DATETIME_FORMAT,
                        "invalid input string for \"Y,YYY\"",
                    )
                };
                let (thousands, _) = r.number(name, 1, true).map_err(|_| bad())?;
                if r.peek() != Some(',') {
                    return Err(bad());
                }
                r.advance();
                let (units, _) = Reader::strtol(r.rest(), 3).ok_or_else(bad)?;
                r.pos += r
                    .rest()
                    .bytes()
                    .take(3)
                    .take_while(u8::is_ascii_digit)
                    .count();
                set(&mut f.year, thousands * 1000 + units as i64, name)?;
                f.year_digits = 4;
            }
            Field::Month => set(&mut f.month, num(&mut r)?.0, name)?,
            Field::MonthName(full) => {
                let names: Vec<&str> = MONTHS
                    .iter()
                    .map(|m| if full { *m } else { &m[..3] })
                    .collect();
                let m = r.one_of(name, &names)?;
                set(&mut f.month, m as i64 + 1, name)?;
            }
            Field::RomanMonth => {
                let names: Vec<&str> = ROMAN.iter().map(|(n, _)| *n).collect();
                let m = r.one_of(name, &names)?;
                set(&mut f.month, i64::from(ROMAN[m].1), name)?;
            }
            Field::Day => set(&mut f.day, num(&mut r)?.0, name)?,
            Field::DayOfYear | Field::IsoDayOfYear => {
                set(&mut f.day_of_year, num(&mut r)?.0, name)?
            }
            Field::WeekdayName(full) => {
                let names: Vec<&str> = DAYS
                    .iter()
                    .map(|d| if full { *d } else { &d[..3] })
                    .collect();
                // Checked as PostgreSQL checks it: the day's index (0 =
                // Sunday) against the weekday kept (1 = Sunday), so that a
                // name given twice conflicts with itself.
                let d = r.one_of(name, &names)? as i64;
                set(&mut f.weekday, d, name)?;
                f.weekday = Some(d + 1);
            }
            Field::Weekday => set(&mut f.weekday, num(&mut r)?.0, name)?,
            Field::IsoWeekday => {
                let (d, _) = num(&mut r)?;
                // ISO's 1 = Monday .. 7 = Sunday, checked as written and
                // kept as 1 = Sunday.
                set(&mut f.weekday, d, name)?;
                f.weekday = Some(d % 7 + 1);
            }
            Field::WeekOfMonth => set(&mut f.week_of_month, num(&mut r)?.0, name)?,
            Field::WeekOfYear | Field::IsoWeek => set(&mut f.week, num(&mut r)?.0, name)?,
            Field::Quarter => {
                num(&mut r)?;
            }
            Field::Century => set(&mut f.century, num(&mut r)?.0, name)?,
            Field::Julian => set(&mut f.julian, num(&mut r)?.0, name)?,
            Field::Hour12 | Field::Hour24 => {
                set(&mut f.hour, num(&mut r)?.0, name)?;
                f.twelve_hour |= field == Field::Hour12;
            }
            Field::Minute => set(&mut f.minute, num(&mut r)?.0, name)?,
            Field::Second => set(&mut f.second, num(&mut r)?.0, name)?,
            Field::SecondsOfDay(_) => set(&mut f.seconds_of_day, num(&mut r)?.0, name)?,
            Field::Milli | Field::Micro | Field::Fraction(_) => {
                let (mut v, mut used) = num(&mut r)?;
                if let Field::Fraction(n) = field {
                    // FFn keeps its first n digits.
                    let n = usize::from(n);
                    if used > n {
                        v /= 10i64.pow((used - n) as u32);
                        used = n;
                    }
                }
                // The digits are a fraction of a second: MS's "3" is 300 ms.
                let scale = |places: u32| {
                    let used = used as u32;
                    if used < places {
                        v * 10i64.pow(places - used)
                    } else {
                        v
                    }
                };
                match field {
                    // A repeated fraction is checked as written.
                    Field::Milli => {
                        set(&mut f.milli, v, name)?;
                        f.milli = Some(scale(3));
                    }
                    _ => {
                        set(&mut f.micro, v, name)?;
                        f.micro = Some(scale(6));
                    }
                }
            }
            Field::Meridiem(dotted) => {
                let names: &[&str] = if dotted {
                    &["A.M.", "P.M."]
                } else {
                    &["AM", "PM"]
                };
                let pm = r.one_of(name, names)? == 1;
                f.pm = Some(pm);
                f.twelve_hour = true;
            }
            Field::Era(dotted) => {
                let names: &[&str] = if dotted {
                    &["A.D.", "B.C."]
                } else {
                    &["AD", "BC"]
                };
                f.bc = Some(r.one_of(name, names)? == 1);
            }
            Field::TzHour => {
                let sign = match r.peek() {
                    Some(c @ ('+' | '-' | ' ')) => {
                        r.advance();
                        if c == '-' {
                            -1
                        } else {
                            1
                        }
                    }
                    _ if r.extra > 0 && r.input[..r.pos].ends_with('-') => -1,
                    _ => 1,
                };
                f.tz_sign = Some(sign);
                set(&mut f.tz_hour, num(&mut r)?.0, name)?;
            }
            Field::TzMinute => set(&mut f.tz_minute, num(&mut r)?.0, name)?,
        }
        if ordinal && field.is_digit() {
            // "st", "nd", "rd", "th" after the number.
            r.advance();
            r.advance();
        }
        // Blanks skipped before a field are its own.
        r.extra = 0;
    }
    Ok(f)
}

/// PostgreSQL's reading of a year given in fewer than four digits: the one
/// nearest 2020.
fn nearest_2020(year: i64) -> i64 {
    match year {
        y if y < 70 => y + 2000,
        y if y < 100 => y + 1900,
        y if y < 520 => y + 2000,
        y if y < 1000 => y + 1000,
        y => y,
    }
}

/// Days since 1970 of the Monday of ISO week 1 of `year`.
fn iso_week_one(year: i64) -> i64 {
    let jan4 = days_from_civil(year, 1, 4);
    // 1970-01-01 was a Thursday: (days + 3) mod 7 is 0 on Mondays.
    jan4 - (jan4 + 3).rem_euclid(7)
}

/// A date and time read through a template, as days since 1970 and
/// microseconds into the day, with the explicit UTC offset if the template
/// gave one.
struct Reading {
    days: i64,
    micros: i64,
    offset_secs: Option<i64>,
}

fn interpret(input: &str, f: Fields) -> Result<Reading, TemporaError> {
    let overflow = || field_overflow(input);
    // The time of day.
    // Seconds past midnight first; an hour, minute or second given on its
    // own (and not zero) then takes its place.
    let (mut hour, mut minute, mut second) = match f.seconds_of_day.filter(|&s| s != 0) {
        Some(s) => (s / 3600, s % 3600 / 60, s % 60),
        None => (0, 0, 0),
    };
    for (slot, given) in [
        (&mut hour, f.hour),
        (&mut minute, f.minute),
        (&mut second, f.second),
    ] {
        if let Some(v) = given.filter(|&v| v != 0) {
            *slot = v;
        }
    }
    if f.twelve_hour {
        if !(1..=12).contains(&hour) {
            return Err(TemporaError::new(
                SqlState::INVALID_DATETIME_FORMAT,
                format!("hour \"{hour}\" is invalid for the 12-hour clock"),
            )
            .with_hint("Use the 24-hour clock, or give an hour between 1 and 12."));
        }
        match f.pm {
            Some(true) if hour < 12 => hour += 12,
            Some(false) | None if hour == 12 => hour = 0,
            _ => {}
        }
    } else if f.pm == Some(true) && hour < 12 {
        hour += 12;
    }

    // The year, astronomical (0 is 1 BC). A year of 0 counts as unset. With
    // a century, a one- or two-digit year gives the year's last digits
    // (a year ending in 00 is the century's); a longer year ignores it.
    let century = f
        .century
        .filter(|&c| c != 0)
        .map(|c| if f.bc == Some(true) { -c } else { c });
    let year = match (f.year.filter(|&y| y != 0), century) {
        (Some(y), Some(cc)) if f.year_digits <= 2 => match y % 100 {
            0 => cc * 100 + i64::from(cc < 0),
            low if cc >= 0 => low + (cc - 1) * 100,
            low => (cc + 1) * 100 - low + 1,
        },
        (Some(y), _) => {
            let y = if f.bc == Some(true) { -y } else { y };
            if y < 0 {
                y + 1
            } else {
                y
            }
        }
        (None, Some(cc)) if cc >= 0 => (cc - 1) * 100 + 1,
        (None, Some(cc)) => cc * 100 + 1,
        (None, None) => 0,
    };

    // The date, as PostgreSQL settles it: a Julian day gives all three
    // fields; ISO weeks give the date; then a week of the month stands for
    // its first day, a day and a month given override, and a day of the
    // year fills in what is still unset.
    let no_year = || {
        TemporaError::new(
            SqlState::INVALID_DATETIME_FORMAT,
            "cannot calculate day of year without year information",
        )
    };
    let has_year = f.year.is_some_and(|y| y != 0) || century.is_some();
    let (mut year, mut month, mut day) = (year, 0, 0);
    if let Some(j) = f.julian.filter(|&j| j != 0) {
        // Julian day 2440588 is 1970-01-01.
        let (y, m, d) = tempora_copy::text::civil_from_days(j - 2_440_588);
        (year, month, day) = (y, i64::from(m), i64::from(d));
    }
    let iso = f.mode == Some(Mode::IsoWeek);
    let mut day_of_year = f.day_of_year;
    if let Some(w) = f.week.filter(|&w| w != 0) {
        if iso {
            // Weekday 1 = Sunday: Monday is 0 days into the week.
            let into = f.weekday.map_or(0, |d| (d + 5).rem_euclid(7));
            let (y, m, d) =
                tempora_copy::text::civil_from_days(iso_week_one(year) + (w - 1) * 7 + into);
            (year, month, day) = (y, i64::from(m), i64::from(d));
        } else {
            day_of_year = Some((w - 1) * 7 + 1);
        }
    }
    let mut given_day = f.day;
    if let Some(w) = f.week_of_month.filter(|&w| w != 0) {
        given_day = Some((w - 1) * 7 + 1);
    }
    if let Some(d) = given_day.filter(|&d| d != 0) {
        day = d;
    }
    if let Some(m) = f.month.filter(|&m| m != 0) {
        month = m;
    }
    if let Some(d) = day_of_year.filter(|&d| d != 0 && (month <= 1 || day <= 1)) {
        if !has_year && f.julian.is_none_or(|j| j == 0) {
            return Err(no_year());
        }
        let first = if iso {
            iso_week_one(year)
        } else {
            let jan1 = days_from_civil(year, 1, 1);
            if d < 1 || d > days_from_civil(year + 1, 1, 1) - jan1 {
                return Err(overflow());
            }
            jan1
        };
        let (y, m, md) = tempora_copy::text::civil_from_days(first + d - 1);
        if iso {
            (year, month, day) = (y, i64::from(m), i64::from(md));
        } else {
            if month <= 1 {
                month = i64::from(m);
            }
            if day <= 1 {
                day = i64::from(md);
            }
        }
    }
    let month = if month == 0 { 1 } else { month };
    let day = if day == 0 { 1 } else { day };
    if !(1..=12).contains(&month) || day < 1 || day > i64::from(days_in_month(year, month as u32)) {
        return Err(overflow());
    }
    let days = days_from_civil(year, month as u32, day as u32);

    let fraction = f.micro.unwrap_or(0) + f.milli.unwrap_or(0) * 1000;
    if !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..60).contains(&second)
        || !(0..1_000_000).contains(&fraction)
    {
        return Err(overflow());
    }
    let micros = ((hour * 60 + minute) * 60 + second) * 1_000_000 + fraction;

    let offset_secs = match (f.tz_sign, f.tz_hour, f.tz_minute) {
        (None, None, None) => None,
        (sign, hours, minutes) => {
            let (hours, minutes) = (hours.unwrap_or(0), minutes.unwrap_or(0));
            if !(-15..=15).contains(&hours) || !(0..60).contains(&minutes) {
                return Err(TemporaError::new(
                    SqlState::INVALID_TIME_ZONE_DISPLACEMENT_VALUE,
                    format!("time zone displacement out of range: \"{input}\""),
                ));
            }
            let sign = sign.unwrap_or(1);
            Some(sign * (hours.abs() * 3600 + minutes * 60))
        }
    };
    Ok(Reading {
        days,
        micros,
        offset_secs,
    })
}

/// `to_timestamp(input, template)`: microseconds since 1970 (UTC); the
/// wall time is read in `zone` unless the template gave an offset.
pub fn to_timestamp(input: &str, template: &str, zone: &PgTimeZone) -> Result<i64, TemporaError> {
    let reading = interpret(input, read_fields(input, template)?)?;
    let out_of_range =
        || TemporaError::new(SqlState::DATETIME_FIELD_OVERFLOW, "timestamp out of range");
    let local = reading
        .days
        .checked_mul(USECS_PER_DAY)
        .and_then(|d| d.checked_add(reading.micros))
        .ok_or_else(out_of_range)?;
    let utc = match reading.offset_secs {
        Some(off) => local.checked_sub(off * 1_000_000),
        None => zone.local_to_utc(local),
    }
    .ok_or_else(out_of_range)?;
    if !in_timestamp_range(utc) {
        return Err(out_of_range());
    }
    Ok(utc)
}

/// `to_date(input, template)`: days since 1970.
pub fn to_date(input: &str, template: &str) -> Result<i32, TemporaError> {
    let reading = interpret(input, read_fields(input, template)?)?;
    // PostgreSQL's dates: 4714-11-24 BC to 5874897-12-31.
    let first = MIN_TIMESTAMP_USECS.div_euclid(USECS_PER_DAY);
    let last = days_from_civil(5_874_897, 12, 31);
    i32::try_from(reading.days)
        .ok()
        .filter(|&d| (first..=last).contains(&i64::from(d)))
        .ok_or_else(|| {
            TemporaError::new(
                SqlState::DATETIME_FIELD_OVERFLOW,
                format!("date out of range: \"{input}\""),
            )
        })
}

/// `to_timestamp(double precision)`: seconds since 1970, rounded to the
/// microsecond; the infinities are the infinite timestamps.
pub fn to_timestamp_seconds(seconds: f64) -> Result<i64, TemporaError> {
    if seconds.is_nan() {
        return Err(TemporaError::new(
            SqlState::DATETIME_FIELD_OVERFLOW,
            "timestamp cannot be NaN",
        ));
    }
    if seconds.is_infinite() {
        return Ok(if seconds > 0.0 { i64::MAX } else { i64::MIN });
    }
    let micros = (seconds * 1e6).round_ties_even();
    // Both ends of PostgreSQL's range: 4714-11-24 BC, and past what
    // microseconds since 1970 hold in 64 bits.
    if micros < MIN_TIMESTAMP_USECS as f64 || micros >= i64::MAX as f64 {
        let mut text = String::new();
        tempora_copy::text::write_float8(seconds, &mut text);
        return Err(TemporaError::new(
            SqlState::DATETIME_FIELD_OVERFLOW,
            format!("timestamp out of range: \"{text}\""),
        ));
    }
    Ok(micros as i64)
}

/// `to_timestamp`, replacing DataFusion's (whose templates are chrono's and
/// whose seconds are nanoseconds that stop at 2262).
pub fn to_timestamp_udf(variables: Arc<SessionVariables>) -> ScalarUDF {
    ScalarUDF::new_from_impl(FromChar {
        name: "to_timestamp",
        signature: Signature::one_of(
            vec![TypeSignature::Any(1), TypeSignature::Any(2)],
            Volatility::Stable,
        ),
        variables: SessionHandle(variables),
    })
}

/// `to_date(text, text)`, replacing DataFusion's.
pub fn to_date_udf(variables: Arc<SessionVariables>) -> ScalarUDF {
    ScalarUDF::new_from_impl(FromChar {
        name: "to_date",
        signature: Signature::one_of(
            vec![TypeSignature::Any(1), TypeSignature::Any(2)],
            Volatility::Stable,
        ),
        variables: SessionHandle(variables),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FromChar {
    name: &'static str,
    signature: Signature,
    variables: SessionHandle,
}

fn is_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null
    )
}

fn is_number(t: &DataType) -> bool {
    t.is_numeric() || matches!(t, DataType::Null)
}

impl ScalarUDFImpl for FromChar {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let ok = match args {
            [a, b] => is_text(a) && is_text(b),
            // to_timestamp(double precision); an untyped string reads as one.
            [a] => self.name == "to_timestamp" && (is_number(a) || is_text(a)),
            _ => false,
        };
        if !ok {
            return Err(no_such_function(self.name, args));
        }
        Ok(if self.name == "to_date" {
            DataType::Date32
        } else {
            DataType::Timestamp(TimeUnit::Microsecond, Some(tempora_catalog::UTC.into()))
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (rows, scalar) = result_rows(&args.args, args.number_rows);
        let first = args.args[0].to_array(rows)?;
        let out: ArrayRef = if args.args.len() == 1 {
            let seconds = if is_text(first.data_type()) {
                let text = cast(&first, &DataType::Utf8)?;
                let text = text.as_string::<i32>();
                let mut v = Vec::with_capacity(rows);
                for i in 0..rows {
                    v.push(if text.is_null(i) {
                        None
                    } else {
                        Some(
                            tempora_copy::values::parse_float(text.value(i).as_bytes(), false)
                                .map_err(TemporaError::into_datafusion)?,
                        )
                    });
                }
                datafusion::arrow::array::Float64Array::from(v)
            } else {
                cast(&first, &DataType::Float64)?.as_primitive().clone()
            };
            let mut out = TimestampMicrosecondBuilder::with_capacity(rows);
            for v in seconds.iter() {
                match v {
                    Some(s) => out.append_value(
                        to_timestamp_seconds(s).map_err(TemporaError::into_datafusion)?,
                    ),
                    None => out.append_null(),
                }
            }
            Arc::new(out.finish().with_timezone(tempora_catalog::UTC))
        } else {
            let inputs = cast(&first, &DataType::Utf8)?;
            let inputs = inputs.as_string::<i32>();
            let templates = cast(&args.args[1].to_array(rows)?, &DataType::Utf8)?;
            let templates = templates.as_string::<i32>();
            let present = |i: usize| !inputs.is_null(i) && !templates.is_null(i);
            if self.name == "to_date" {
                let mut out = Date32Builder::with_capacity(rows);
                for i in 0..rows {
                    if present(i) {
                        out.append_value(
                            to_date(inputs.value(i), templates.value(i))
                                .map_err(TemporaError::into_datafusion)?,
                        );
                    } else {
                        out.append_null();
                    }
                }
                Arc::new(out.finish())
            } else {
                let zone = self.variables.time_zone();
                let mut out = TimestampMicrosecondBuilder::with_capacity(rows);
                for i in 0..rows {
                    if present(i) {
                        out.append_value(
                            to_timestamp(inputs.value(i), templates.value(i), &zone)
                                .map_err(TemporaError::into_datafusion)?,
                        );
                    } else {
                        out.append_null();
                    }
                }
                Arc::new(out.finish().with_timezone(tempora_catalog::UTC))
            }
        };
        result_value(out, scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> PgTimeZone {
        PgTimeZone::parse_setting("UTC").unwrap().0
    }

    /// The result as PostgreSQL prints it with TimeZone UTC.
    fn ts(input: &str, template: &str) -> String {
        match to_timestamp(input, template, &utc()) {
            Ok(v) => {
                let mut s = String::new();
                tempora_copy::text::write_timestamp(v, Some(&utc()), &mut s);
                s
            }
            Err(e) => format!("{}: {}", e.code.code(), e.message),
        }
    }

    #[test]
    fn common_templates() {
        assert_eq!(
            ts("2024-03-05 14:07:09", "YYYY-MM-DD HH24:MI:SS"),
            "2024-03-05 14:07:09+00"
        );
        assert_eq!(
            ts("2024-3-5 4:7:9", "YYYY-MM-DD HH24:MI:SS"),
            "2024-03-05 04:07:09+00"
        );
        assert_eq!(
            ts("20240305140709", "YYYYMMDDHH24MISS"),
            "2024-03-05 14:07:09+00"
        );
        assert_eq!(
            ts("05 march 2024", "DD Month YYYY"),
            "2024-03-05 00:00:00+00"
        );
        assert_eq!(
            ts("Tuesday 05 MARCH 2024", "Day DD MONTH YYYY"),
            "2024-03-05 00:00:00+00"
        );
        assert_eq!(
            ts("2024-01-01T10:11:12.123456", "YYYY-MM-DD\"T\"HH24:MI:SS.US"),
            "2024-01-01 10:11:12.123456+00"
        );
        assert_eq!(
            ts("1st of March 2024", "DDth \"of\" Month YYYY"),
            "2024-03-01 00:00:00+00"
        );
        assert_eq!(ts("10:30 p.m.", "HH:MI P.M."), "0001-01-01 22:30:00+00 BC");
    }

    #[test]
    fn spaces_and_separators() {
        assert_eq!(ts(" 2000    JUN", "YYYY MON"), "2000-06-01 00:00:00+00");
        assert_eq!(ts("2000 - JUN", "YYYY-MON"), "2000-06-01 00:00:00+00");
        assert_eq!(ts("2000JUN", "YYYY///MON"), "2000-06-01 00:00:00+00");
        assert_eq!(ts("2000/JUN", "YYYY MON"), "2000-06-01 00:00:00+00");
        assert!(ts("2000//JUN", "YYYY/MON").contains("invalid value \"/JUN\" for \"MON\""));
        assert_eq!(ts("2000/JUN", "FXYYYY MON"), "2000-06-01 00:00:00+00");
        assert!(ts("2000/JUN", "FXYYYY  MON").contains("invalid value \"UN\""));
        assert!(ts("2024 x05", "YYYY\"x\"MM").contains("invalid value \"x0\" for \"MM\""));
        assert_eq!(ts("2024 05", "YYYY\"x\"MM"), "2024-05-01 00:00:00+00");
        assert_eq!(ts("2024 05", "YYYYMM"), "2024-05-01 00:00:00+00");
    }

    #[test]
    fn defaults_years_and_fractions() {
        assert_eq!(ts("2024", "YYYY-MM-DD"), "2024-01-01 00:00:00+00");
        assert_eq!(
            ts("2024-01-01 garbage", "YYYY-MM-DD"),
            "2024-01-01 00:00:00+00"
        );
        assert_eq!(ts("12.3", "SS.MS"), "0001-01-01 00:00:12.3+00 BC");
        assert_eq!(ts("95-06-01", "YY-MM-DD"), "1995-06-01 00:00:00+00");
        assert_eq!(ts("600", "YYY"), "1600-01-01 00:00:00+00");
        assert_eq!(ts("95", "YYYY"), "0095-01-01 00:00:00+00");
        assert_eq!(ts("-44-03-15", "YYYY-MM-DD"), "0044-03-15 00:00:00+00 BC");
        assert_eq!(ts("20 2024", "CC YY"), "1924-01-01 00:00:00+00");
        assert_eq!(ts("21", "CC"), "2001-01-01 00:00:00+00");
        assert_eq!(ts("1,234", "Y,YYY"), "1234-01-01 00:00:00+00");
        assert_eq!(ts("2024-00-10", "YYYY-MM-DD"), "2024-01-10 00:00:00+00");
        assert_eq!(
            ts("2024-01-01 10:00:00.12", "YYYY-MM-DD HH24:MI:SS.FF1"),
            "2024-01-01 10:00:00.1+00"
        );
    }

    #[test]
    fn calendars() {
        assert_eq!(ts("2024-060", "YYYY-DDD"), "2024-02-29 00:00:00+00");
        assert_eq!(ts("2459000", "J"), "2020-05-30 00:00:00+00");
        assert_eq!(ts("2024 20 1", "IYYY IW ID"), "2024-05-13 00:00:00+00");
        assert_eq!(ts("2024 52 Tue", "IYYY IW Dy"), "2024-12-24 00:00:00+00");
        assert_eq!(ts("2024 100", "IYYY IDDD"), "2024-04-09 00:00:00+00");
        assert_eq!(ts("2024 05 5", "YYYY MM W"), "2024-05-29 00:00:00+00");
        assert_eq!(ts("2024 5", "YYYY WW"), "2024-01-29 00:00:00+00");
        assert_eq!(ts("2024 xii", "YYYY rm"), "2024-12-01 00:00:00+00");
    }

    #[test]
    fn clocks_and_zones() {
        assert_eq!(ts("12:00", "HH:MI"), "0001-01-01 00:00:00+00 BC");
        assert_eq!(ts("12:00 AM", "HH24:MI AM"), "0001-01-01 00:00:00+00 BC");
        assert_eq!(ts("12:00 PM", "HH:MI AM"), "0001-01-01 12:00:00+00 BC");
        assert_eq!(
            ts("2024-01-01 10:00 +05:30", "YYYY-MM-DD HH24:MI TZH:TZM"),
            "2024-01-01 04:30:00+00"
        );
        assert_eq!(
            ts("2024-01-01 10:00 -03", "YYYY-MM-DD HH24:MI TZH"),
            "2024-01-01 13:00:00+00"
        );
        assert_eq!(
            ts("2024-01-01 -00:30", "YYYY-MM-DD TZH:TZM"),
            "2024-01-01 00:30:00+00"
        );
        assert_eq!(
            ts("2024-01-01 - 5", "YYYY-MM-DD TZH"),
            "2023-12-31 19:00:00+00"
        );
        assert_eq!(
            ts("2024-01-01 10:00 +0530", "YYYY-MM-DD HH24:MI TZHTZM"),
            "2024-01-01 04:30:00+00"
        );
        let berlin = PgTimeZone::parse_setting("Europe/Berlin").unwrap().0;
        let v = to_timestamp("2024-07-01 10:00", "YYYY-MM-DD HH24:MI", &berlin).unwrap();
        assert_eq!(
            v,
            to_timestamp("2024-07-01 08:00", "YYYY-MM-DD HH24:MI", &utc()).unwrap()
        );
    }

    #[test]
    fn errors() {
        let code = |i: &str, t: &str| match to_timestamp(i, t, &utc()) {
            Ok(_) => "ok".to_string(),
            Err(e) => e.code.code().to_string(),
        };
        assert_eq!(code("ab-01-01", "YYYY-MM-DD"), "22007");
        assert!(ts("ab-01-01", "YYYY-MM-DD").contains("invalid value \"ab-0\" for \"YYYY\""));
        assert_eq!(code("2024-13-01", "YYYY-MM-DD"), "22008");
        assert!(ts("2024-02-30", "YYYY-MM-DD").contains("out of range: \"2024-02-30\""));
        assert_eq!(code("2024-01-01 13:00", "YYYY-MM-DD HH:MI"), "22007");
        assert_eq!(
            code("2024-01-01 10:00 CET", "YYYY-MM-DD HH24:MI TZ"),
            "0A000"
        );
        assert_eq!(code("2024-01-01", "YYYY-MM-DD OF"), "ok");
        assert_eq!(code("2024 04 Apr", "YYYY MM Mon"), "ok");
        assert!(ts("2024 03 Apr", "YYYY MM Mon").contains("conflicting values for \"Mon\""));
        assert!(ts("2024 10 3", "YYYY IW D").contains("invalid combination of date conventions"));
        assert_eq!(
            ts("99999999-01-01", "YYYY-MM-DD"),
            "22008: timestamp out of range"
        );
        assert_eq!(
            to_date("99999999-01-01", "YYYY-MM-DD").unwrap_err().message,
            "date out of range: \"99999999-01-01\""
        );
        assert_eq!(code("99999999999-01-01", "YYYY-MM-DD"), "22008");
        assert_eq!(code("2024-01-01 +05:70", "YYYY-MM-DD TZH:TZM"), "22009");
        assert_eq!(
            code("2024-01-01 10:00:60", "YYYY-MM-DD HH24:MI:SS"),
            "22008"
        );
        assert_eq!(
            code("2024-01-01 10:00:00.1234567", "YYYY-MM-DD HH24:MI:SS.US"),
            "22008"
        );
        assert_eq!(code("   ", "YYYY"), "22007");
        assert_eq!(code("12", "Y,YYY"), "22007");
        assert_eq!(code("", "YYYY"), "ok");
    }

    #[test]
    fn seconds() {
        assert_eq!(to_timestamp_seconds(1.5).unwrap(), 1_500_000);
        assert_eq!(
            to_timestamp_seconds("1700000000.123456789".parse().unwrap()).unwrap(),
            1_700_000_000_123_457
        );
        assert_eq!(to_timestamp_seconds(1e11).unwrap(), 100_000_000_000_000_000);
        assert_eq!(to_timestamp_seconds(f64::INFINITY).unwrap(), i64::MAX);
        assert_eq!(
            to_timestamp_seconds(f64::NAN).unwrap_err().code.code(),
            "22008"
        );
        assert!(to_timestamp_seconds(1e20)
            .unwrap_err()
            .message
            .contains("\"1e+20\""));
    }

    /// Any input through any template: an answer or an error, never a panic.
    #[test]
    fn damaged_inputs() {
        let templates = [
            "YYYY-MM-DD HH24:MI:SS.US TZH:TZM",
            "FXYYYY MON DDth",
            "Y,YYY J IYYY IW ID",
            "\"x\"HH12 AM SSSS FF3 RM",
        ];
        let inputs = [
            "2024-01-01 10:11:12.5 +05:30",
            "  -1,999 xii 12 p.m. é ",
            "",
            "９",
            "+-",
        ];
        for t in templates {
            for i in inputs {
                for cut in 0..=i.len() {
                    if i.is_char_boundary(cut) {
                        let _ = to_timestamp(&i[..cut], t, &utc());
                        let _ = to_date(&i[..cut], t);
                        let _ = to_timestamp(t, &i[..cut], &utc());
                    }
                }
            }
        }
    }
}
