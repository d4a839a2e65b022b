//! PostgreSQL's input syntax for timestamp, date and interval literals.
//!
//! Arrow's string-to-timestamp cast rejects forms PostgreSQL users write every
//! day (`'2024-01-01 00:07+00'`, `'2024-01-01 10:00 Europe/Berlin'`, `'now'`)
//! and reads zone-less text as UTC regardless of the session's TimeZone; its
//! interval cast knows neither `04:05:06` nor `@ 1 day ago` nor ISO 8601. This
//! analyzer rule runs after type coercion and replaces every
//! `CAST('<text>' AS timestamp|date|interval)` with the value PostgreSQL would
//! read (intervals by tempora-copy's `parse_interval`), or fails with
//! PostgreSQL's 22007/22008/22015 error. A cast to timestamp, date or
//! interval of text computed as the statement runs (a text column,
//! `$1::text::timestamptz`) becomes [`PgTextCast`], which reads each value
//! with the same rules.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use datafusion::arrow::array::{new_empty_array, Array, AsArray};
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano, IntervalUnit, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use tempora_common::{SqlState, TemporaError};
use tempora_copy::zone::PgTimeZone;

use crate::variables::SessionVariables;

/// The analyzer rule; see the module documentation. Zone-less text is read
/// in the session's time zone, from its `TimeZone` setting.
#[derive(Debug, Default)]
pub struct PgTimestampLiterals {
    pub variables: Arc<SessionVariables>,
}

fn type_name(dt: &DataType) -> &'static str {
    match dt {
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone",
        // The name PostgreSQL's input function reports.
        DataType::Timestamp(_, None) => "timestamp",
        _ => "date",
    }
}

fn bad_input(dt: &DataType, text: &str) -> TemporaError {
    TemporaError::new(
        SqlState::INVALID_DATETIME_FORMAT,
        format!(
            "invalid input syntax for type {}: \"{text}\"",
            type_name(dt)
        ),
    )
}

fn out_of_range(text: &str) -> TemporaError {
    TemporaError::new(
        SqlState::DATETIME_FIELD_OVERFLOW,
        format!("date/time field value out of range: \"{text}\""),
    )
}

/// Splits a trailing zone (`+05`, `-03:30`, `+0530`, `Z`, `UTC`, or a zone name) off the time part.
fn split_zone(rest: &str) -> (&str, Option<&str>) {
    let rest = rest.trim();
    if let Some(i) = rest.rfind(['+', '-']) {
        if i > 0 {
            return (rest[..i].trim(), Some(&rest[i..]));
        }
    }
    if let Some(stripped) = rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z')) {
        return (stripped.trim(), Some("UTC"));
    }
    if let Some((time, zone)) = rest.rsplit_once(' ') {
        if zone.chars().any(|c| c.is_ascii_alphabetic()) {
            return (time.trim(), Some(zone));
        }
    }
    if rest
        .chars()
        .all(|c| c.is_ascii_alphabetic() || c == '/' || c == '_')
        && !rest.is_empty()
    {
        return ("", Some(rest));
    }
    (rest, None)
}

/// Offset in seconds east of UTC for `+05`, `-03:30`, `+0530`.
fn parse_offset(z: &str) -> Option<i32> {
    let sign = match z.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = z[1..].replace(':', "");
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m, s) = match digits.len() {
        1 | 2 => (digits.parse::<i32>().ok()?, 0, 0),
        4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?, 0),
        6 => (
            digits[..2].parse().ok()?,
            digits[2..4].parse().ok()?,
            digits[4..].parse().ok()?,
        ),
        _ => return None,
    };
    if h > 15 || m > 59 || s > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60 + s))
}

fn parse_time(t: &str) -> Option<NaiveTime> {
    if t.is_empty() {
        return NaiveTime::from_hms_opt(0, 0, 0);
    }
    ["%H:%M:%S%.f", "%H:%M:%S", "%H:%M"]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(t, f).ok())
}

/// Parses PostgreSQL timestamp input. Returns microseconds since the epoch:
/// UTC for `timestamptz` (zone-less input read in `session`), wall time for `timestamp`.
pub fn parse_timestamp(
    text: &str,
    with_tz: bool,
    session: &PgTimeZone,
) -> Result<i64, TemporaError> {
    let dt = if with_tz {
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    } else {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    };
    let s = text.trim();
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "epoch" => return Ok(0),
        "infinity" | "+infinity" => return Ok(i64::MAX),
        "-infinity" => return Ok(i64::MIN),
        "now" => {
            let now = Utc::now().timestamp_micros();
            return Ok(if with_tz {
                now
            } else {
                session.utc_to_local(now).unwrap_or(now)
            });
        }
        _ => {}
    }
    // Date part: YYYY-MM-DD (ISO) at the start.
    let (date_part, rest) = match s.find([' ', 'T', 't']) {
        Some(i) if i >= 8 => (&s[..i], &s[i + 1..]),
        _ => (s, ""),
    };
    // An era word (`BC`, `AD`) may stand anywhere after the date.
    let mut bc = false;
    let rest: String = rest
        .split_whitespace()
        .filter(|w| {
            let era = w.eq_ignore_ascii_case("bc") || w.eq_ignore_ascii_case("ad");
            bc |= w.eq_ignore_ascii_case("bc");
            !era
        })
        .collect::<Vec<_>>()
        .join(" ");
    let rest = rest.as_str();
    let date = NaiveDate::parse_from_str(date_part, "%Y-%m-%d").map_err(|_| {
        // A well-formed but impossible date is out of range, as in PostgreSQL.
        let parts: Vec<&str> = date_part.split('-').collect();
        if parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        {
            out_of_range(text)
        } else {
            bad_input(&dt, text)
        }
    })?;
    // Year 1 BC is year 0 of the proleptic calendar.
    let date = if bc {
        NaiveDate::from_ymd_opt(1 - date.year(), date.month(), date.day())
            .ok_or_else(|| out_of_range(text))?
    } else {
        date
    };
    let (time_text, zone_text) = split_zone(rest);
    let time = parse_time(time_text).ok_or_else(|| {
        let fields: Vec<&str> = time_text.split(':').collect();
        if fields
            .iter()
            .all(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit() || c == '.'))
        {
            out_of_range(text)
        } else {
            bad_input(&dt, text)
        }
    })?;
    let local = NaiveDateTime::new(date, time).and_utc().timestamp_micros();
    // A zone is read (and must exist) also where the type has none, which
    // ignores it. A word no zone has is bad input; a name with a slash is a
    // zone PostgreSQL does not know.
    enum Zone {
        Session,
        Offset(i32),
        Named(PgTimeZone),
    }
    let zone = match zone_text {
        None => Zone::Session,
        Some(z) => match parse_offset(z)
            .or_else(|| tempora_copy::zone::abbreviation_offset(&z.to_ascii_lowercase()))
        {
            Some(secs) => Zone::Offset(secs),
            None => match tempora_copy::zone::find_named(z) {
                Some(tz) => Zone::Named(PgTimeZone::Named(tz)),
                None if z.contains('/') => {
                    return Err(TemporaError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("time zone \"{}\" not recognized", z.to_lowercase()),
                    ))
                }
                None => return Err(bad_input(&dt, text)),
            },
        },
    };
    if !with_tz {
        return Ok(local);
    }
    let utc = match zone {
        Zone::Session => session.local_to_utc(local),
        Zone::Offset(secs) => local.checked_sub(i64::from(secs) * 1_000_000),
        Zone::Named(tz) => tz.local_to_utc(local),
    };
    utc.ok_or_else(|| out_of_range(text))
}

fn rewrite_cast(
    e: Expr,
    session: &PgTimeZone,
    schema: Option<&DFSchema>,
) -> DfResult<Transformed<Expr>> {
    let Expr::Cast(Cast { expr, field }) = &e else {
        return Ok(Transformed::no(e));
    };
    let Expr::Literal(
        ScalarValue::Utf8(Some(text))
        | ScalarValue::Utf8View(Some(text))
        | ScalarValue::LargeUtf8(Some(text)),
        _,
    ) = expr.as_ref()
    else {
        // Text computed as the statement runs (a column, a parameter cast
        // to text) is read row by row with the same rules.
        let target = field.data_type();
        if matches!(
            target,
            DataType::Timestamp(..)
                | DataType::Date32
                | DataType::Interval(IntervalUnit::MonthDayNano)
        ) && !matches!(expr.as_ref(), Expr::Literal(..))
            && schema.is_some_and(|s| expr.get_type(s).is_ok_and(|t| t.is_string()))
        {
            let call = text_cast(target, session).call(vec![expr.as_ref().clone()]);
            return Ok(Transformed::yes(call));
        }
        return Ok(Transformed::no(e));
    };
    match text_literal(text, field.data_type(), session)? {
        Some(value) => Ok(Transformed::yes(Expr::Literal(value, None))),
        None => Ok(Transformed::no(e)),
    }
}

/// A text literal read as `data_type` with PostgreSQL's input rules (a
/// timestamp, date or interval; zone-less timestamptz text in `session`), or
/// None for the types this rule leaves to DataFusion's casts.
pub fn text_literal(
    text: &str,
    data_type: &DataType,
    session: &PgTimeZone,
) -> DfResult<Option<ScalarValue>> {
    let value = match data_type {
        DataType::Timestamp(unit, tz) => {
            let micros =
                parse_timestamp(text, tz.is_some(), session).map_err(|e| e.into_datafusion())?;
            let tz = tz.clone();
            match unit {
                TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(Some(micros), tz),
                TimeUnit::Nanosecond => {
                    // Infinities stay infinities; other times past what
                    // nanoseconds hold (year 2262) are out of range.
                    let nanos = match micros {
                        i64::MAX | i64::MIN => micros,
                        _ => micros.checked_mul(1000).ok_or_else(|| {
                            TemporaError::new(
                                SqlState::DATETIME_FIELD_OVERFLOW,
                                format!("timestamp out of range: \"{text}\""),
                            )
                            .into_datafusion()
                        })?,
                    };
                    ScalarValue::TimestampNanosecond(Some(nanos), tz)
                }
                TimeUnit::Millisecond => {
                    ScalarValue::TimestampMillisecond(Some(micros.div_euclid(1000)), tz)
                }
                TimeUnit::Second => {
                    ScalarValue::TimestampSecond(Some(micros.div_euclid(1_000_000)), tz)
                }
            }
        }
        DataType::Date32 => {
            let micros = parse_timestamp(text, false, session).map_err(|err| {
                let msg = err.message.replace("type timestamp:", "type date:");
                TemporaError {
                    message: msg,
                    ..err
                }
                .into_datafusion()
            })?;
            let days = tempora_copy::datetime::date_of_micros(micros).ok_or_else(|| {
                TemporaError::new(
                    SqlState::DATETIME_FIELD_OVERFLOW,
                    format!("date out of range: \"{text}\""),
                )
                .into_datafusion()
            })?;
            ScalarValue::Date32(Some(days))
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v =
                tempora_copy::interval::parse_interval(text).map_err(|e| e.into_datafusion())?;
            let nanos = v.micros.checked_mul(1000).ok_or_else(|| {
                TemporaError::new(SqlState::DATETIME_FIELD_OVERFLOW, "interval out of range")
                    .into_datafusion()
            })?;
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(
                v.months, v.days, nanos,
            )))
        }
        _ => return Ok(None),
    };
    Ok(Some(value))
}

impl AnalyzerRule for PgTimestampLiterals {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        let tz = self.variables.time_zone();
        plan.transform_up_with_subqueries(|node| {
            // Rewritten expressions keep their names: the nodes above (a
            // projection over an aggregate's groups) refer to them by name.
            let names = datafusion::logical_expr::expr_rewriter::NamePreserver::new(&node);
            // What the node's expressions read, to tell text from other types.
            let schema: Option<Arc<DFSchema>> = match node.inputs().as_slice() {
                [one] => Some(one.schema().clone()),
                [left, right] => left.schema().join(right.schema()).ok().map(Arc::new),
                _ => None,
            };
            node.map_expressions(|e| {
                let saved = names.save(&e);
                e.transform_up(|e| rewrite_cast(e, &tz, schema.as_deref()))
                    .map(|t| t.update_data(|new| saved.restore(new)))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "pg_timestamp_literals"
    }
}

/// `text::timestamp|timestamptz|date|interval` of text computed as the
/// statement runs: each value read as [`text_literal`] reads a literal.
#[derive(Debug)]
struct PgTextCast {
    target: DataType,
    zone: PgTimeZone,
    signature: Signature,
}

impl PartialEq for PgTextCast {
    fn eq(&self, other: &Self) -> bool {
        self.target == other.target && self.zone == other.zone
    }
}

impl Eq for PgTextCast {}

impl std::hash::Hash for PgTextCast {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.target.hash(state);
        self.zone.arrow_name().hash(state);
    }
}

fn text_cast(target: &DataType, zone: &PgTimeZone) -> ScalarUDF {
    ScalarUDF::new_from_impl(PgTextCast {
        target: target.clone(),
        zone: zone.clone(),
        signature: Signature::any(1, Volatility::Immutable),
    })
}

impl ScalarUDFImpl for PgTextCast {
    fn name(&self) -> &str {
        "pg_text_cast"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(self.target.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let read = |text: Option<&str>| -> DfResult<ScalarValue> {
            match text {
                None => ScalarValue::try_from(&self.target),
                Some(t) => text_literal(t, &self.target, &self.zone)?.ok_or_else(|| {
                    TemporaError::internal("text cast to an unexpected type").into_datafusion()
                }),
            }
        };
        match &args.args[0] {
            ColumnarValue::Scalar(v) => read(v.try_as_str().flatten()).map(ColumnarValue::Scalar),
            ColumnarValue::Array(a) => {
                let a = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
                let strings = a.as_string::<i32>();
                if strings.is_empty() {
                    return Ok(ColumnarValue::Array(new_empty_array(&self.target)));
                }
                let values = strings.iter().map(read).collect::<DfResult<Vec<_>>>()?;
                Ok(ColumnarValue::Array(ScalarValue::iter_to_array(values)?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz(s: &str) -> i64 {
        parse_timestamp(s, true, &PgTimeZone::utc()).unwrap()
    }

    #[test]
    fn postgres_forms() {
        let base = 1_704_067_200_000_000; // 2024-01-01 00:00:00 UTC
        assert_eq!(tz("2024-01-01"), base);
        assert_eq!(tz("2024-01-01 00:07+00"), base + 7 * 60_000_000);
        assert_eq!(tz("2024-01-01 00:00:05+00"), base + 5_000_000);
        assert_eq!(tz("2024-01-01T01:00:00+01:00"), base);
        assert_eq!(tz("2024-01-01 05:30:00+0530"), base);
        assert_eq!(tz("2024-01-01 00:00:00Z"), base);
        assert_eq!(tz("2024-01-01 01:00:00 Europe/Berlin"), base);
        assert_eq!(
            parse_timestamp(
                "2024-01-01 01:00",
                true,
                &PgTimeZone::of_setting("Europe/Berlin")
            )
            .unwrap(),
            base
        );
        assert_eq!(
            parse_timestamp("2024-01-01 00:00:00.25", false, &PgTimeZone::utc()).unwrap(),
            base + 250_000
        );
        assert_eq!(tz("2024-01-01 00:00:00.000001+00"), base + 1);
        // A fixed-offset session zone: '+03:00' is POSIX, three hours west.
        assert_eq!(
            parse_timestamp("2024-01-01 00:00", true, &PgTimeZone::of_setting("+03:00")).unwrap(),
            base + 3 * 3_600_000_000
        );
        assert_eq!(
            parse_timestamp("2024-01-01 00:00", true, &PgTimeZone::of_setting("-08")).unwrap(),
            base + 8 * 3_600_000_000
        );
    }

    #[test]
    fn errors_carry_sqlstate() {
        let e = parse_timestamp("not a date", true, &PgTimeZone::utc()).unwrap_err();
        assert_eq!(e.code, SqlState::INVALID_DATETIME_FORMAT);
        assert_eq!(
            e.message,
            "invalid input syntax for type timestamp with time zone: \"not a date\""
        );
        let e = parse_timestamp("2024-13-45", true, &PgTimeZone::utc()).unwrap_err();
        assert_eq!(e.code, SqlState::DATETIME_FIELD_OVERFLOW);
        let e = parse_timestamp("2024-01-01 25:00", true, &PgTimeZone::utc()).unwrap_err();
        assert_eq!(e.code, SqlState::DATETIME_FIELD_OVERFLOW);
    }
}
