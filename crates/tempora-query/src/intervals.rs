//! `interval * number`, `number * interval` and `interval / number`, as
//! PostgreSQL computes them: months, days and microseconds scaled apart,
//! the fraction of a month carried into days (30 per month) and the
//! fraction of a day into time (`INTERVAL '1 month' * 1.5` is
//! `1 mon 15 days`). DataFusion has no such operators: the SQL layer turns
//! them into calls of `interval_mul` / `interval_div` where one operand is
//! an interval literal or cast.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, IntervalMonthDayNanoArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Float64Type, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit,
};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use tempora_common::{SqlState, TemporaError};

const USECS_PER_DAY: f64 = 86_400_000_000.0;
const DAYS_PER_MONTH: f64 = 30.0;

/// `interval * factor` with PostgreSQL's cascade of fractions.
fn scale(i: IntervalMonthDayNano, factor: f64) -> Result<IntervalMonthDayNano, TemporaError> {
    let out_of_range =
        || TemporaError::new(SqlState::DATETIME_FIELD_OVERFLOW, "interval out of range");
    let months = i.months as f64 * factor;
    let whole_months = months.trunc();
    let days = i.days as f64 * factor + (months - whole_months) * DAYS_PER_MONTH;
    let whole_days = days.trunc();
    let micros = (i.nanoseconds / 1000) as f64 * factor + (days - whole_days) * USECS_PER_DAY;
    let fits = |v: f64, max: f64| v.is_finite() && v.abs() <= max;
    if !fits(whole_months, i32::MAX as f64)
        || !fits(whole_days, i32::MAX as f64)
        || !fits(micros.round(), (i64::MAX / 1000) as f64)
    {
        return Err(out_of_range());
    }
    Ok(IntervalMonthDayNano::new(
        whole_months as i32,
        whole_days as i32,
        micros.round() as i64 * 1000,
    ))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalScale {
    divide: bool,
    signature: Signature,
}

impl ScalarUDFImpl for IntervalScale {
    fn name(&self) -> &str {
        if self.divide {
            "interval_div"
        } else {
            "interval_mul"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (rows, scalar) = crate::pg_types::result_rows(&args.args, args.number_rows);
        let intervals = cast(
            &args.args[0].to_array(rows)?,
            &DataType::Interval(IntervalUnit::MonthDayNano),
        )?;
        let intervals = intervals.as_primitive::<IntervalMonthDayNanoType>();
        let factors = cast(&args.args[1].to_array(rows)?, &DataType::Float64)?;
        let factors = factors.as_primitive::<Float64Type>();
        let mut out = Vec::with_capacity(rows);
        for r in 0..rows {
            if intervals.is_null(r) || factors.is_null(r) {
                out.push(None);
                continue;
            }
            let f = factors.value(r);
            let f = if self.divide {
                if f == 0.0 {
                    return Err(
                        TemporaError::new(SqlState::DIVISION_BY_ZERO, "division by zero")
                            .into_datafusion(),
                    );
                }
                1.0 / f
            } else {
                f
            };
            out.push(Some(
                scale(intervals.value(r), f).map_err(TemporaError::into_datafusion)?,
            ));
        }
        let array: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(out));
        crate::pg_types::result_value(array, scalar)
    }
}

/// `interval_mul(interval, number)` and `interval_div(interval, number)`.
pub fn scale_udfs() -> Vec<ScalarUDF> {
    [false, true]
        .into_iter()
        .map(|divide| {
            ScalarUDF::new_from_impl(IntervalScale {
                divide,
                signature: Signature::any(2, Volatility::Immutable),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(months: i32, days: i32, micros: i64) -> IntervalMonthDayNano {
        IntervalMonthDayNano::new(months, days, micros * 1000)
    }

    #[test]
    fn fractions_cascade_as_in_postgres() {
        let hour = 3_600_000_000;
        assert_eq!(scale(iv(0, 0, hour), 3.0).unwrap(), iv(0, 0, 3 * hour));
        assert_eq!(scale(iv(0, 1, 0), 1.5).unwrap(), iv(0, 1, 12 * hour));
        assert_eq!(scale(iv(1, 0, 0), 1.5).unwrap(), iv(1, 15, 0));
        assert_eq!(scale(iv(1, 1, hour), -2.0).unwrap(), iv(-2, -2, -2 * hour));
        assert_eq!(scale(iv(0, 1, 0), 0.5).unwrap(), iv(0, 0, 12 * hour));
        assert!(scale(iv(i32::MAX, 0, 0), 2.0).is_err());
    }
}
