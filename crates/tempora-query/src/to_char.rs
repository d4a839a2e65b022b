//! `to_char(timestamp | timestamptz | date, text)` with PostgreSQL's template
//! patterns (`YYYY-MM-DD HH24:MI:SS`, `Mon DD`, `FMDay`, `"quoted text"`),
//! timestamptz in the session's TimeZone. Numbers and intervals are refused
//! with 0A000 rather than formatted some other way.

use std::fmt::Write;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use tempora_common::{SqlState, TemporaError};

use crate::variables::{SessionHandle, SessionVariables};

/// `to_char` (register with `ctx.register_udf`; replaces DataFusion's, whose
/// templates are strftime's).
/// timestamptz values print in the session's time zone, read from
/// `variables`.
pub fn to_char_udf(variables: Arc<SessionVariables>) -> ScalarUDF {
    ScalarUDF::new_from_impl(ToChar {
        signature: Signature::any(2, Volatility::Stable),
        aliases: vec!["date_format".into()],
        variables: SessionHandle(variables),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ToChar {
    signature: Signature,
    aliases: Vec<String>,
    variables: SessionHandle,
}

pub(crate) const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
pub(crate) const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Template patterns, longest first so that `HH24` wins over `HH`.
const PATTERNS: [&str; 38] = [
    "HH24", "HH12", "YYYY", "IYYY", "MONTH", "Month", "month", "DAY", "Day", "day", "DDD", "IDDD",
    "MON", "Mon", "mon", "DY", "Dy", "dy", "YYY", "US", "MS", "SS", "MI", "HH", "YY", "MM", "DD",
    "AM", "PM", "am", "pm", "TZ", "tz", "OF", "IW", "ID", "Q", "D",
];

fn case(name: &str, pattern: &str, width: usize, fill: bool) -> String {
    let s = if pattern.chars().all(|c| c.is_ascii_uppercase()) {
        name.to_uppercase()
    } else if pattern.chars().all(|c| c.is_ascii_lowercase()) {
        name.to_lowercase()
    } else {
        name.to_string()
    };
    if fill {
        format!("{s:<width$}")
    } else {
        s
    }
}

/// Quoted literal text of a template, `q` starting after the opening quote:
/// the text (`\"` inside is a quote) and what follows the closing quote.
pub(crate) fn quoted(q: &str) -> (String, &str) {
    let mut text = String::new();
    let mut chars = q.char_indices();
    let mut end = q.len();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, n)) = chars.next() {
                    text.push(n);
                }
            }
            '"' => {
                end = i + 1;
                break;
            }
            c => text.push(c),
        }
    }
    (text, &q[end.min(q.len())..])
}

/// Formats one local date-time; `zone` is the abbreviation and offset for TZ/OF.
fn format(template: &str, t: NaiveDateTime, zone: Option<(&str, i32)>) -> String {
    let mut out = String::with_capacity(template.len() + 8);
    let mut rest = template;
    while !rest.is_empty() {
        if let Some(q) = rest.strip_prefix('"') {
            let (text, after) = quoted(q);
            out.push_str(&text);
            rest = after;
            continue;
        }
        let fm = rest.starts_with("FM");
        let body = if fm { &rest[2..] } else { rest };
        let Some(p) = PATTERNS.iter().find(|p| body.starts_with(**p)) else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        let num = |out: &mut String, v: i64, width: usize| {
            if fm {
                let _ = write!(out, "{v}");
            } else {
                let _ = write!(out, "{v:0width$}");
            }
        };
        let hour12 = match t.hour() % 12 {
            0 => 12,
            h => h,
        };
        match *p {
            "YYYY" => num(&mut out, t.year() as i64, 4),
            "IYYY" => num(&mut out, t.iso_week().year() as i64, 4),
            "YYY" => num(&mut out, (t.year() % 1000) as i64, 3),
            "YY" => num(&mut out, (t.year() % 100) as i64, 2),
            "MM" => num(&mut out, t.month() as i64, 2),
            "DD" => num(&mut out, t.day() as i64, 2),
            "DDD" => num(&mut out, t.ordinal() as i64, 3),
            "IDDD" => num(
                &mut out,
                (t.iso_week().week0() * 7 + t.weekday().number_from_monday()) as i64,
                3,
            ),
            "D" => num(&mut out, t.weekday().number_from_sunday() as i64, 1),
            "ID" => num(&mut out, t.weekday().number_from_monday() as i64, 1),
            "IW" => num(&mut out, t.iso_week().week() as i64, 2),
            "Q" => num(&mut out, t.month0() as i64 / 3 + 1, 1),
            "HH24" => num(&mut out, t.hour() as i64, 2),
            "HH12" | "HH" => num(&mut out, hour12 as i64, 2),
            "MI" => num(&mut out, t.minute() as i64, 2),
            "SS" => num(&mut out, t.second() as i64, 2),
            "MS" => num(&mut out, (t.nanosecond() / 1_000_000) as i64, 3),
            "US" => num(&mut out, (t.nanosecond() / 1000) as i64, 6),
            "AM" | "PM" | "am" | "pm" => {
                let pm = t.hour() >= 12;
                let s = match (pm, p.chars().all(|c| c.is_ascii_uppercase())) {
                    (true, true) => "PM",
                    (false, true) => "AM",
                    (true, false) => "pm",
                    (false, false) => "am",
                };
                out.push_str(s);
            }
            "MONTH" | "Month" | "month" => {
                out.push_str(&case(MONTHS[t.month0() as usize], p, 9, !fm))
            }
            "MON" | "Mon" | "mon" => {
                out.push_str(&case(&MONTHS[t.month0() as usize][..3], p, 3, false))
            }
            "DAY" | "Day" | "day" => out.push_str(&case(
                DAYS[t.weekday().num_days_from_sunday() as usize],
                p,
                9,
                !fm,
            )),
            "DY" | "Dy" | "dy" => out.push_str(&case(
                &DAYS[t.weekday().num_days_from_sunday() as usize][..3],
                p,
                3,
                false,
            )),
            "TZ" | "tz" => {
                if let Some((abbrev, _)) = zone {
                    out.push_str(&if *p == "tz" {
                        abbrev.to_lowercase()
                    } else {
                        abbrev.to_uppercase()
                    });
                }
            }
            "OF" => {
                if let Some((_, secs)) = zone {
                    let sign = if secs < 0 { '-' } else { '+' };
                    let a = secs.abs();
                    let _ = write!(out, "{sign}{:02}", a / 3600);
                    if a % 3600 != 0 {
                        let _ = write!(out, ":{:02}", a % 3600 / 60);
                    }
                }
            }
            _ => {}
        }
        rest = &body[p.len()..];
    }
    out
}

impl ScalarUDFImpl for ToChar {
    fn name(&self) -> &str {
        "to_char"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// DataFusion's strftime `to_char` is also registered as `date_format`;
    /// taking that name too removes it, so no rebuild of the session's
    /// function map can bring it back under `to_char`.
    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args.first() {
            Some(
                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 | DataType::Null,
            ) => Ok(DataType::Utf8),
            Some(other) => Err(TemporaError::not_supported(format!(
                "to_char of {}",
                crate::pg_types::pg_type_name(other)
            ))
            .into_datafusion()),
            None => Err(TemporaError::new(
                SqlState::UNDEFINED_FUNCTION,
                "function to_char() does not exist",
            )
            .into_datafusion()),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (rows, scalar) = crate::pg_types::result_rows(&args.args, args.number_rows);
        let values = args.args[0].to_array(rows)?;
        let templates = cast(&args.args[1].to_array(rows)?, &DataType::Utf8)?;
        let templates = templates.as_string::<i32>();
        let session_tz = self.variables.time_zone();
        let with_zone = matches!(values.data_type(), DataType::Timestamp(_, Some(_)));
        let micros: ArrayRef = match values.data_type() {
            DataType::Timestamp(_, tz) => cast(
                &values,
                &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            )?,
            DataType::Date32 | DataType::Date64 | DataType::Null => cast(
                &cast(&values, &DataType::Date32)?,
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            )?,
            other => {
                return Err(TemporaError::not_supported(format!(
                    "to_char of {}",
                    crate::pg_types::pg_type_name(other)
                ))
                .into_datafusion())
            }
        };
        let micros = micros.as_primitive::<TimestampMicrosecondType>();
        let mut out = StringBuilder::with_capacity(rows, rows * 24);
        for i in 0..rows {
            if micros.is_null(i) || templates.is_null(i) {
                out.append_null();
                continue;
            }
            let t = micros.value(i);
            let Some(utc) = DateTime::<Utc>::from_timestamp_micros(t) else {
                out.append_null();
                continue;
            };
            let text = if with_zone {
                let abbrev = session_tz.abbreviation_at(t);
                let offset = session_tz.offset_at(t);
                let local = utc.naive_utc() + chrono::Duration::seconds(i64::from(offset));
                format(templates.value(i), local, Some((&abbrev, offset)))
            } else {
                format(templates.value(i), utc.naive_utc(), None)
            };
            out.append_value(text);
        }
        let array: ArrayRef = Arc::new(out.finish());
        Ok(if scalar {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&array, 0)?)
        } else {
            ColumnarValue::Array(array)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    #[test]
    fn postgres_templates() {
        let t = at("2024-03-05 14:07:09.123456");
        assert_eq!(
            format("YYYY-MM-DD HH24:MI:SS", t, None),
            "2024-03-05 14:07:09"
        );
        assert_eq!(format("HH12:MI AM", t, None), "02:07 PM");
        assert_eq!(format("Mon DD, YYYY", t, None), "Mar 05, 2024");
        assert_eq!(format("Month|FMMonth|MON", t, None), "March    |March|MAR");
        assert_eq!(
            format("Day FMDay Dy D ID", t, None),
            "Tuesday   Tuesday Tue 3 2"
        );
        assert_eq!(format("FMDD/FMMM \"at\" HH24\"h\"", t, None), "5/3 at 14h");
        assert_eq!(format("SS.MS SS.US", t, None), "09.123 09.123456");
        assert_eq!(format("Q IW DDD YY", t, None), "1 10 065 24");
        assert_eq!(
            format("HH24:MI TZ OF", t, Some(("CET", 3600))),
            "14:07 CET +01"
        );
        assert_eq!(format("OF", t, Some(("", 19800))), "+05:30");
        assert_eq!(format("xyz %", t, None), "xyz %");
    }
}
