//! Interval comparisons as PostgreSQL makes them: by the length of time,
//! with a month counted as 30 days and a day as 24 hours.
//!
//! Arrow compares a month-day-nanosecond interval field by field, so
//! `interval '25 hours' > interval '1 day'` was false, `interval '1 day' =
//! interval '24 hours'` false, and `now() - time > interval '1 day'` (a
//! duration coerced to an interval of hours) false for a reading 25 hours
//! old. The analyzer rule [`crate::pg_casts::PgIntegerCasts`] calls
//! [`rewrite`] after type coercion: a comparison of two intervals (or
//! durations) compares their `interval_span`s, microseconds as PostgreSQL's
//! `interval_cmp` counts them, in a `Decimal128`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Builder};
use datafusion::arrow::datatypes::{
    DataType, DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType,
    DurationSecondType, IntervalDayTimeType, IntervalMonthDayNanoType, IntervalUnit,
    IntervalYearMonthType, TimeUnit,
};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{ExprSchema, Result};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{
    Between, BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::pg_types::{result_rows, result_value};

const NANOS_PER_DAY: i128 = 86_400_000_000_000;

/// The length of an interval or duration in nanoseconds, months as 30
/// days.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalSpan {
    signature: Signature,
}

static SPAN: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| {
    Arc::new(ScalarUDF::new_from_impl(IntervalSpan {
        signature: Signature::any(1, Volatility::Immutable),
    }))
});

fn spans(t: &DataType) -> bool {
    matches!(t, DataType::Interval(_) | DataType::Duration(_))
}

impl ScalarUDFImpl for IntervalSpan {
    fn name(&self) -> &str {
        "interval_span"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Decimal128(38, 0))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (rows, scalar) = result_rows(&args.args, args.number_rows);
        let a = args.args[0].to_array(rows)?;
        let mut out = Decimal128Builder::with_capacity(rows);
        let mut push = |v: Option<i128>| match v {
            Some(v) => out.append_value(v),
            None => out.append_null(),
        };
        match a.data_type() {
            DataType::Interval(IntervalUnit::MonthDayNano) => {
                for v in a.as_primitive::<IntervalMonthDayNanoType>().iter() {
                    push(v.map(|i| {
                        (i128::from(i.months) * 30 + i128::from(i.days)) * NANOS_PER_DAY
                            + i128::from(i.nanoseconds)
                    }));
                }
            }
            DataType::Interval(IntervalUnit::DayTime) => {
                for v in a.as_primitive::<IntervalDayTimeType>().iter() {
                    push(v.map(|i| {
                        i128::from(i.days) * NANOS_PER_DAY + i128::from(i.milliseconds) * 1_000_000
                    }));
                }
            }
            DataType::Interval(IntervalUnit::YearMonth) => {
                for v in a.as_primitive::<IntervalYearMonthType>().iter() {
                    push(v.map(|m| i128::from(m) * 30 * NANOS_PER_DAY));
                }
            }
            DataType::Duration(unit) => {
                let (values, per): (Vec<Option<i64>>, i128) = match unit {
                    TimeUnit::Second => (
                        a.as_primitive::<DurationSecondType>().iter().collect(),
                        1_000_000_000,
                    ),
                    TimeUnit::Millisecond => (
                        a.as_primitive::<DurationMillisecondType>().iter().collect(),
                        1_000_000,
                    ),
                    TimeUnit::Microsecond => (
                        a.as_primitive::<DurationMicrosecondType>().iter().collect(),
                        1_000,
                    ),
                    TimeUnit::Nanosecond => (
                        a.as_primitive::<DurationNanosecondType>().iter().collect(),
                        1,
                    ),
                };
                for v in values {
                    push(v.map(|v| i128::from(v) * per));
                }
            }
            _ => (0..a.len()).for_each(|_| push(None)),
        }
        let out: ArrayRef = Arc::new(out.finish().with_precision_and_scale(38, 0)?);
        result_value(out, scalar)
    }
}

/// A comparison of two intervals (or durations), an `IN` list or a
/// `BETWEEN` of them, as one of their spans; anything else as it is.
pub(crate) fn rewrite(e: Expr, schema: &dyn ExprSchema) -> Result<Transformed<Expr>> {
    let all_span = |es: &[&Expr]| {
        es.iter()
            .all(|e| e.get_type(schema).is_ok_and(|t| spans(&t)))
    };
    let span = |e: &Expr| Box::new(SPAN.call(vec![e.clone()]));
    match &e {
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) if all_span(&[expr]) && all_span(&list.iter().collect::<Vec<_>>()) => {
            return Ok(Transformed::yes(Expr::InList(InList::new(
                span(expr),
                list.iter().map(|e| *span(e)).collect(),
                *negated,
            ))));
        }
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) if all_span(&[expr, low, high]) => {
            return Ok(Transformed::yes(Expr::Between(Between::new(
                span(expr),
                *negated,
                span(low),
                span(high),
            ))));
        }
        _ => {}
    }
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
        return Ok(Transformed::no(e));
    };
    use datafusion::logical_expr::Operator::*;
    if !matches!(
        op,
        Eq | NotEq | Lt | LtEq | Gt | GtEq | IsDistinctFrom | IsNotDistinctFrom
    ) {
        return Ok(Transformed::no(e));
    }
    let (Ok(l), Ok(r)) = (left.get_type(schema), right.get_type(schema)) else {
        return Ok(Transformed::no(e));
    };
    if !spans(&l) || !spans(&r) {
        return Ok(Transformed::no(e));
    }
    Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
        Box::new(SPAN.call(vec![left.as_ref().clone()])),
        *op,
        Box::new(SPAN.call(vec![right.as_ref().clone()])),
    ))))
}

/// ORDER BY an interval sorts by span, as PostgreSQL's interval ordering
/// does: `25:00:00` after `1 day`, `1 mon` before `31 days`. Arrow's sort
/// orders an interval by its months, then days, then nanoseconds.
pub(crate) fn sort_by_span(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::Sort(mut sort) = node else {
            return Ok(Transformed::no(node));
        };
        let schema = sort.input.schema().clone();
        let mut changed = false;
        for key in &mut sort.expr {
            if key.expr.get_type(schema.as_ref()).is_ok_and(|t| spans(&t)) {
                key.expr = SPAN.call(vec![key.expr.clone()]);
                changed = true;
            }
        }
        Ok(if changed {
            Transformed::yes(LogicalPlan::Sort(sort))
        } else {
            Transformed::no(LogicalPlan::Sort(sort))
        })
    })
    .map(|t| t.data)
}
