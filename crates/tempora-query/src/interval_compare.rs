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
//!
//! The same order holds for `IN` and `BETWEEN`, ORDER BY ([`sort_by_span`]),
//! `min`/`max` (the first value by span, [`rewrite`]), `greatest`/`least`
//! (`interval_greatest`/`interval_least`) and `nullif`: `max` of `1 mon` and
//! `31 days` is `31 days`, where Arrow's order gave `1 mon`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Builder};
use datafusion::arrow::datatypes::{
    DataType, DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType,
    DurationSecondType, IntervalDayTimeType, IntervalMonthDayNanoType, IntervalUnit,
    IntervalYearMonthType, TimeUnit,
};
use datafusion::common::tree_node::Transformed;
use datafusion::common::ScalarValue;
use datafusion::common::{ExprSchema, Result};
use datafusion::logical_expr::expr::{AggregateFunction, InList, ScalarFunction, Sort};
use datafusion::logical_expr::{
    when, Between, BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::pg_types::{result_rows, result_value};

const NANOS_PER_DAY: i128 = 86_400_000_000_000;

/// A month-day-nanosecond interval's length in nanoseconds, months as 30
/// days.
fn mdn_span(i: datafusion::arrow::datatypes::IntervalMonthDayNano) -> i128 {
    (i128::from(i.months) * 30 + i128::from(i.days)) * NANOS_PER_DAY + i128::from(i.nanoseconds)
}

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
                    push(v.map(mdn_span));
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
    let intervals = |es: &[Expr]| {
        !es.is_empty()
            && es.iter().all(|e| {
                e.get_type(schema)
                    .is_ok_and(|t| matches!(t, DataType::Interval(_)))
            })
    };
    match &e {
        // The first value by span: min and max ignore NULLs, as
        // first_value does with NULLs sorted last.
        Expr::AggregateFunction(AggregateFunction { func, params })
            if matches!(func.name(), "min" | "max")
                && params.order_by.is_empty()
                && intervals(&params.args) =>
        {
            let arg = params.args[0].clone();
            let ascending = func.name() == "min";
            return Ok(Transformed::yes(Expr::AggregateFunction(
                AggregateFunction::new_udf(
                    datafusion::functions_aggregate::first_last::first_value_udaf(),
                    vec![arg.clone()],
                    false,
                    params.filter.clone(),
                    vec![Sort::new(*span(&arg), ascending, false)],
                    None,
                ),
            )));
        }
        Expr::ScalarFunction(ScalarFunction { func, args }) if intervals(args) => {
            match func.name() {
                "greatest" => {
                    return Ok(Transformed::yes(GREATEST.call(args.clone())));
                }
                "least" => return Ok(Transformed::yes(LEAST.call(args.clone()))),
                "nullif" if args.len() == 2 => {
                    let null = ScalarValue::try_from(&args[0].get_type(schema)?)?;
                    return Ok(Transformed::yes(
                        when(
                            (*span(&args[0])).eq(*span(&args[1])),
                            Expr::Literal(null, None),
                        )
                        .otherwise(args[0].clone())?,
                    ));
                }
                _ => {}
            }
        }
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

/// `greatest` (or `least`) of intervals by span: the first of the
/// arguments with the longest (shortest) span, NULLs ignored.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalExtreme {
    greatest: bool,
    signature: Signature,
}

static GREATEST: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| extreme_udf(true));
static LEAST: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| extreme_udf(false));

fn extreme_udf(greatest: bool) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(IntervalExtreme {
        greatest,
        signature: Signature::variadic_any(Volatility::Immutable),
    }))
}

impl ScalarUDFImpl for IntervalExtreme {
    fn name(&self) -> &str {
        if self.greatest {
            "interval_greatest"
        } else {
            "interval_least"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args
            .first()
            .cloned()
            .unwrap_or(DataType::Interval(IntervalUnit::MonthDayNano)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = crate::pg_types::argument_arrays(&args)?;
        let mdn = DataType::Interval(IntervalUnit::MonthDayNano);
        let arrays = arrays
            .iter()
            .map(|a| datafusion::arrow::compute::cast(a, &mdn))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let rows = arrays.first().map_or(0, |a| a.len());
        let out: datafusion::arrow::array::IntervalMonthDayNanoArray = (0..rows)
            .map(|row| {
                let mut best = None;
                for a in &arrays {
                    let a = a.as_primitive::<IntervalMonthDayNanoType>();
                    if a.is_null(row) {
                        continue;
                    }
                    let v = a.value(row);
                    let better = match best {
                        None => true,
                        Some(b) if self.greatest => mdn_span(v) > mdn_span(b),
                        Some(b) => mdn_span(v) < mdn_span(b),
                    };
                    if better {
                        best = Some(v);
                    }
                }
                best
            })
            .collect();
        let out = datafusion::arrow::compute::cast(
            &(Arc::new(out) as ArrayRef),
            args.return_field.data_type(),
        )?;
        result_value(out, scalar)
    }
}
