//! PostgreSQL's functions that make and reshape intervals.
//!
//! * `make_interval(years, months, weeks, days, hours, mins, secs)`: the SQL
//!   layer puts named arguments in place and 0 where one is not given.
//! * `justify_days` (30 days to a month), `justify_hours` (24 hours to a
//!   day), `justify_interval` (both), with the signs of the fields made to
//!   agree as PostgreSQL makes them.
//! * `age(a, b)`: `a - b` in years, months and days counted on the
//!   calendar, borrowing from the earlier timestamp's month as PostgreSQL
//!   does (`age('2024-03-01', '2023-01-15')` is `1 year 1 mon 15 days`); a
//!   `timestamptz` is read in the session's TimeZone.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, IntervalMonthDayNanoArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Float64Type, Int32Type, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit,
    TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use tempora_common::{SqlState, TemporaError};
use tempora_copy::zone::PgTimeZone;

use crate::calendar::{civil_from_days, days_from_civil};
use crate::date_part::no_such_function;
use crate::pg_types::{argument_arrays, result_value};
use crate::variables::{SessionHandle, SessionVariables};

const NANOS_PER_USEC: i64 = 1_000;
const USECS_PER_DAY: i64 = 86_400_000_000;
const DAYS_PER_MONTH: i32 = 30;
const INTERVAL: DataType = DataType::Interval(IntervalUnit::MonthDayNano);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    MakeInterval,
    JustifyDays,
    JustifyHours,
    JustifyInterval,
    Age,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalFunction {
    op: Op,
    signature: Signature,
    variables: SessionHandle,
}

/// The functions of a session (`age` reads its TimeZone).
pub fn interval_udfs(variables: Arc<SessionVariables>) -> Vec<ScalarUDF> {
    [
        Op::MakeInterval,
        Op::JustifyDays,
        Op::JustifyHours,
        Op::JustifyInterval,
        Op::Age,
    ]
    .into_iter()
    .map(|op| {
        ScalarUDF::new_from_impl(IntervalFunction {
            op,
            signature: Signature::user_defined(match op {
                Op::Age => Volatility::Stable,
                _ => Volatility::Immutable,
            }),
            variables: SessionHandle(variables.clone()),
        })
    })
    .collect()
}

fn out_of_range() -> datafusion::error::DataFusionError {
    TemporaError::new(SqlState::DATETIME_FIELD_OVERFLOW, "interval out of range").into_datafusion()
}

/// `(months, days, microseconds)` of an interval.
fn fields(i: IntervalMonthDayNano) -> (i32, i32, i64) {
    (i.months, i.days, i.nanoseconds / NANOS_PER_USEC)
}

fn interval(months: i32, days: i32, usecs: i64) -> Result<IntervalMonthDayNano> {
    let nanos = usecs.checked_mul(NANOS_PER_USEC).ok_or_else(out_of_range)?;
    Ok(IntervalMonthDayNano::new(months, days, nanos))
}

/// Whole days out of the time, the signs of days and time then made to
/// agree unless `carry_only`.
fn justify_hours(months: i32, days: i32, usecs: i64, carry_only: bool) -> Result<(i32, i32, i64)> {
    let whole = usecs / USECS_PER_DAY;
    let mut usecs = usecs - whole * USECS_PER_DAY;
    let mut days = i32::try_from(i64::from(days) + whole).map_err(|_| out_of_range())?;
    if carry_only {
        return Ok((months, days, usecs));
    }
    if days > 0 && usecs < 0 {
        usecs += USECS_PER_DAY;
        days -= 1;
    } else if days < 0 && usecs > 0 {
        usecs -= USECS_PER_DAY;
        days += 1;
    }
    Ok((months, days, usecs))
}

/// Whole months out of the days, the signs of months and days then made to
/// agree (with the time's sign where the days are 0, for `justify_interval`).
fn justify_days(months: i32, days: i32, usecs: i64, with_time: bool) -> Result<(i32, i32, i64)> {
    let whole = days / DAYS_PER_MONTH;
    let mut days = days - whole * DAYS_PER_MONTH;
    let mut months = months.checked_add(whole).ok_or_else(out_of_range)?;
    let time_sign = if with_time { usecs.signum() } else { 0 };
    if months > 0 && (days < 0 || (days == 0 && time_sign < 0)) {
        days += DAYS_PER_MONTH;
        months -= 1;
    } else if months < 0 && (days > 0 || (days == 0 && time_sign > 0)) {
        days -= DAYS_PER_MONTH;
        months += 1;
    }
    Ok((months, days, usecs))
}

/// A timestamp's calendar fields: year, month, day, and the microseconds
/// of the day.
fn timestamp_fields(usecs: i64) -> (i64, i64, i64, i64) {
    let days = usecs.div_euclid(USECS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, usecs.rem_euclid(USECS_PER_DAY))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let next = if month == 12 {
        days_from_civil(year + 1, 1, 1)
    } else {
        days_from_civil(year, month + 1, 1)
    };
    next - days_from_civil(year, month, 1)
}

/// PostgreSQL's `age(a, b)` of two local timestamps (microseconds).
fn age(a: i64, b: i64) -> Result<IntervalMonthDayNano> {
    let (ya, ma, da, ta) = timestamp_fields(a);
    let (yb, mb, db, tb) = timestamp_fields(b);
    let flip = if a < b { -1 } else { 1 };
    let mut usecs = flip * (ta - tb);
    let mut days = flip * (da - db);
    let mut months = flip * (ma - mb);
    let mut years = flip * (ya - yb);
    while usecs < 0 {
        usecs += USECS_PER_DAY;
        days -= 1;
    }
    // Days are borrowed from the earlier timestamp's month.
    let (ey, em) = if a < b { (ya, ma) } else { (yb, mb) };
    while days < 0 {
        days += days_in_month(ey, em);
        months -= 1;
    }
    while months < 0 {
        months += 12;
        years -= 1;
    }
    let months = i32::try_from(flip * (years * 12 + months)).map_err(|_| out_of_range())?;
    interval(months, (flip * days) as i32, flip * usecs)
}

impl IntervalFunction {
    fn local_micros(
        &self,
        t: &DataType,
        arrays: &[datafusion::arrow::array::ArrayRef],
    ) -> Result<Vec<Vec<Option<i64>>>> {
        let with_zone = matches!(t, DataType::Timestamp(_, Some(_)));
        let zone = with_zone.then(|| {
            PgTimeZone::of_setting(
                &self
                    .variables
                    .get("TimeZone")
                    .unwrap_or_else(|| "UTC".into()),
            )
        });
        arrays
            .iter()
            .map(|a| {
                let a = cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
                Ok(a.as_primitive::<TimestampMicrosecondType>()
                    .iter()
                    .map(|v| {
                        v.map(|v| match &zone {
                            Some(z) => v + i64::from(z.offset_at(v)) * 1_000_000,
                            None => v,
                        })
                    })
                    .collect())
            })
            .collect()
    }
}

impl ScalarUDFImpl for IntervalFunction {
    fn name(&self) -> &str {
        match self.op {
            Op::MakeInterval => "make_interval",
            Op::JustifyDays => "justify_days",
            Op::JustifyHours => "justify_hours",
            Op::JustifyInterval => "justify_interval",
            Op::Age => "age",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let numeric = |t: &DataType| t.is_numeric() || t.is_null();
        match self.op {
            Op::MakeInterval if arg_types.len() <= 7 && arg_types.iter().all(numeric) => Ok((0
                ..arg_types.len())
                .map(|i| {
                    if i == 6 {
                        DataType::Float64
                    } else {
                        DataType::Int32
                    }
                })
                .collect()),
            Op::JustifyDays | Op::JustifyHours | Op::JustifyInterval
                if arg_types.len() == 1
                    && matches!(
                        arg_types[0],
                        DataType::Interval(_) | DataType::Duration(_) | DataType::Null
                    ) =>
            {
                Ok(vec![INTERVAL])
            }
            Op::Age if arg_types.len() == 2 => {
                let zoned = arg_types
                    .iter()
                    .any(|t| matches!(t, DataType::Timestamp(_, Some(_))));
                let t = match zoned {
                    true => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    false => DataType::Timestamp(TimeUnit::Microsecond, None),
                };
                let ok = arg_types.iter().all(|t| {
                    matches!(
                        t,
                        DataType::Timestamp(..)
                            | DataType::Date32
                            | DataType::Null
                            | DataType::Utf8
                    )
                });
                if ok {
                    Ok(vec![t.clone(), t])
                } else {
                    Err(no_such_function(self.name(), arg_types))
                }
            }
            _ => Err(no_such_function(self.name(), arg_types)),
        }
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(INTERVAL)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = argument_arrays(&args)?;
        let rows = arrays.first().map_or(1, |a| a.len());
        let mut out: Vec<Option<IntervalMonthDayNano>> = Vec::with_capacity(rows);
        match self.op {
            Op::MakeInterval => {
                for i in 0..rows {
                    if arrays.iter().any(|a| a.is_null(i)) {
                        out.push(None);
                        continue;
                    }
                    let int = |k: usize| -> i64 {
                        arrays
                            .get(k)
                            .map_or(0, |a| i64::from(a.as_primitive::<Int32Type>().value(i)))
                    };
                    let secs = arrays
                        .get(6)
                        .map_or(0.0, |a| a.as_primitive::<Float64Type>().value(i));
                    let months = i32::try_from(int(0) * 12 + int(1)).map_err(|_| out_of_range())?;
                    let days = i32::try_from(int(2) * 7 + int(3)).map_err(|_| out_of_range())?;
                    let frac = (secs * 1e6).round();
                    if !frac.is_finite() || frac.abs() > 9.2e18 {
                        return Err(out_of_range());
                    }
                    let usecs = (int(4) * 3600 + int(5) * 60)
                        .checked_mul(1_000_000)
                        .and_then(|u| u.checked_add(frac as i64))
                        .ok_or_else(out_of_range)?;
                    out.push(Some(interval(months, days, usecs)?));
                }
            }
            Op::JustifyDays | Op::JustifyHours | Op::JustifyInterval => {
                let values = cast(&arrays[0], &INTERVAL)?;
                for v in values.as_primitive::<IntervalMonthDayNanoType>().iter() {
                    let Some(v) = v else {
                        out.push(None);
                        continue;
                    };
                    let (m, d, t) = fields(v);
                    let (m, d, t) = match self.op {
                        Op::JustifyDays => justify_days(m, d, t, false)?,
                        Op::JustifyHours => justify_hours(m, d, t, false)?,
                        _ => {
                            let (m, d, t) = justify_hours(m, d, t, true)?;
                            let (m, d, t) = justify_days(m, d, t, true)?;
                            justify_hours(m, d, t, false)?
                        }
                    };
                    out.push(Some(interval(m, d, t)?));
                }
            }
            Op::Age => {
                let t = arrays[0].data_type().clone();
                let local = self.local_micros(&t, &arrays)?;
                for (a, b) in local[0].iter().zip(&local[1]) {
                    out.push(match (a, b) {
                        (Some(a), Some(b)) => Some(age(*a, *b)?),
                        _ => None,
                    });
                }
            }
        }
        result_value(Arc::new(IntervalMonthDayNanoArray::from(out)), scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(y: i64, m: i64, d: i64, h: i64, min: i64) -> i64 {
        days_from_civil(y, m, d) * USECS_PER_DAY + (h * 60 + min) * 60_000_000
    }

    #[test]
    fn age_borrows_from_the_earlier_month() {
        let a = age(ts(2024, 3, 1, 0, 0), ts(2023, 1, 15, 0, 0)).unwrap();
        assert_eq!((a.months, a.days, a.nanoseconds), (13, 17, 0));
        let b = age(ts(2023, 1, 15, 0, 0), ts(2024, 3, 1, 0, 0)).unwrap();
        assert_eq!((b.months, b.days), (-13, -17));
        let c = age(ts(2024, 3, 31, 10, 0), ts(2024, 2, 29, 12, 30)).unwrap();
        assert_eq!(
            (c.months, c.days, c.nanoseconds / 60_000_000_000),
            (1, 1, -150 + 24 * 60)
        );
    }

    #[test]
    fn justify_makes_signs_agree() {
        assert_eq!(justify_days(0, 35, 0, false).unwrap(), (1, 5, 0));
        assert_eq!(justify_days(0, -35, 0, false).unwrap(), (-1, -5, 0));
        assert_eq!(
            justify_hours(0, 0, 27 * 3_600_000_000, false).unwrap(),
            (0, 1, 3 * 3_600_000_000)
        );
        let (m, d, t) = justify_hours(1, 0, -3_600_000_000, true).unwrap();
        let (m, d, t) = justify_days(m, d, t, true).unwrap();
        assert_eq!(
            justify_hours(m, d, t, false).unwrap(),
            (0, 29, 23 * 3_600_000_000)
        );
    }
}
