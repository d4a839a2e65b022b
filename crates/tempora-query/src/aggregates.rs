//! TimescaleDB's aggregates `first(value, time)`, `last(value, time)` and
//! `histogram(value, min, max, nbuckets)` as DataFusion aggregate functions.
//!
//! `first` returns the value of the row with the smallest `time`, `last` the
//! value of the row with the largest. `time` may be of any type with an
//! order, as in TimescaleDB: integers, floats, booleans, dates, times and
//! timestamps of any unit are compared as 64-bit keys; text (byte order, as
//! Tempora's ORDER BY), numeric, intervals (by their length, 30-day months),
//! bytea and arrays as values. A type without an order fails with 42883.
//! Rows whose `time` is NULL are ignored; the value may be NULL and is
//! returned as NULL when its row wins. No row with a time gives NULL.
//!
//! Ties on `time` are broken by the value, so the answer does not depend on
//! how DataFusion splits the rows into partitions: rows are ordered by
//! `(time, value)` with NULL values after every other value (PostgreSQL's
//! `ORDER BY time, value`); `first` takes the first of that order and `last`
//! the last. So among rows with the same time `first` returns the smallest
//! value, `last` the largest, or NULL when one of them is NULL. (TimescaleDB
//! keeps whichever tied row it happened to scan first.)
//!
//! `histogram` counts values in `nbuckets + 2` buckets, as PostgreSQL's
//! `width_bucket(value, min, max, nbuckets)` numbers them: bucket 0 holds
//! values below `min`, buckets 1..=nbuckets split `[min, max)` into equal
//! widths, the last bucket holds values `>= max` (and NaN). A NULL read from
//! a column counts as 0.0, as in TimescaleDB (whose transition function is
//! not strict and reads the NULL's datum, which a column's NULL leaves 0);
//! a NULL computed by an expression is skipped (TimescaleDB counts whatever
//! the expression's last value was). The result is `integer[]`
//! (`List<Int32>`), NULL when no value was counted. Rows whose `min`, `max`
//! or `nbuckets` is NULL are ignored. Errors are TimescaleDB's and
//! width_bucket's: `min > max` (22023), `nbuckets` changing between rows
//! (22023), `nbuckets <= 0`, `min = max`, NaN or infinite bounds (2201G);
//! arguments that are not numbers: 42883 naming the types as written.
//!
//! Both keep a small state per group (`(value, time key)`, `(value, time)` or
//! the bucket counts and `nbuckets`), so DataFusion can aggregate partitions separately and merge
//! the partial states in any order.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{
    make_comparator, new_empty_array, new_null_array, Array, ArrayRef, AsArray, Int32Array,
    Int64Array, ListArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::compute::{can_cast_types, cast};
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Float32Type, Float64Type, Int32Type, Int64Type,
};
use datafusion::common::{internal_datafusion_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{format_state_name, AggregateOrderSensitivity};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use tempora_common::{SqlState, TemporaError};

use crate::pg_types::pg_type_name;

/// `first(value, time)` (register with `ctx.register_udaf`).
pub fn first_udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(Bookend::new(End::First))
}

/// `last(value, time)` (register with `ctx.register_udaf`).
pub fn last_udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(Bookend::new(End::Last))
}

/// A scalar subquery's rows as one value: `{value, rows}`, the first row's
/// value and how many rows there were. What a correlated scalar subquery
/// aggregates so that the planner can turn it into a join (see tempora-sql's
/// `subqueries.rs`); [`subquery_check_udf`] then takes the value out where an
/// outer row uses it, so that several rows are an error (21000) only there,
/// as in PostgreSQL.
pub fn subquery_value_udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(SubqueryValue {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

/// The name [`subquery_value_udaf`] is called by.
pub const SUBQUERY_VALUE: &str = "tempora_subquery_value";

/// The name [`subquery_check_udf`] is called by.
pub const SUBQUERY_CHECK: &str = "tempora_subquery_check";

/// `tempora_subquery_check({value, rows})`: the value, NULL for no row, and
/// PostgreSQL's 21000 for more than one.
pub fn subquery_check_udf() -> datafusion::logical_expr::ScalarUDF {
    datafusion::logical_expr::ScalarUDF::new_from_impl(SubqueryCheck {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

fn subquery_fields(value: &DataType) -> datafusion::arrow::datatypes::Fields {
    vec![
        Field::new("value", value.clone(), true),
        Field::new("rows", DataType::Int64, true),
    ]
    .into()
}

/// `histogram(value, min, max, nbuckets)` (register with `ctx.register_udaf`).
pub fn histogram_udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(Histogram::new())
}

// ---------------------------------------------------------------------------
// first / last
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum End {
    First,
    Last,
}

impl End {
    /// Whether a row ordered `ord` against the current best replaces it.
    fn wins(self, ord: Ordering) -> bool {
        match self {
            End::First => ord == Ordering::Less,
            End::Last => ord == Ordering::Greater,
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Bookend {
    end: End,
    signature: Signature,
}

impl Bookend {
    fn new(end: End) -> Self {
        Self {
            end,
            // Arguments are taken as they come; `return_type` answers a
            // wrong count with PostgreSQL's 42883.
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Whether a time argument of this type can be ordered as a value (the
/// types `time_keys` cannot map to 64-bit keys: text, numeric, intervals,
/// bytea, arrays, ...).
fn time_type_ordered(t: &DataType) -> bool {
    let empty = new_empty_array(t);
    make_comparator(empty.as_ref(), empty.as_ref(), SortOptions::default()).is_ok()
        && !matches!(t, DataType::Map(..) | DataType::Union(..))
}

/// The array a time argument is compared as: intervals by their length as
/// PostgreSQL orders them (a month is 30 days, a day 24 hours), everything
/// else as it is.
fn time_order(arr: &ArrayRef) -> Result<ArrayRef> {
    use datafusion::arrow::array::{Decimal128Array, IntervalMonthDayNanoArray};
    use datafusion::arrow::datatypes::IntervalUnit;
    const NANOS_PER_DAY: i128 = 86_400_000_000_000;
    let spans = |f: &dyn Fn(usize) -> i128| -> Result<ArrayRef> {
        let v: Decimal128Array = (0..arr.len())
            .map(|i| (!arr.is_null(i)).then(|| f(i)))
            .collect();
        Ok(Arc::new(v.with_precision_and_scale(38, 0)?))
    };
    match arr.data_type() {
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let a: &IntervalMonthDayNanoArray = arr.as_primitive();
            spans(&|i| {
                let v = a.value(i);
                (v.months as i128 * 30 + v.days as i128) * NANOS_PER_DAY + v.nanoseconds as i128
            })
        }
        DataType::Interval(IntervalUnit::DayTime) => {
            let a = arr.as_primitive::<datafusion::arrow::datatypes::IntervalDayTimeType>();
            spans(&|i| {
                let v = a.value(i);
                v.days as i128 * NANOS_PER_DAY + v.milliseconds as i128 * 1_000_000
            })
        }
        DataType::Interval(IntervalUnit::YearMonth) => {
            let a = arr.as_primitive::<datafusion::arrow::datatypes::IntervalYearMonthType>();
            spans(&|i| a.value(i) as i128 * 30 * NANOS_PER_DAY)
        }
        _ => Ok(arr.clone()),
    }
}

/// Whether `time_keys` can order a time argument of this type.
fn time_type_supported(t: &DataType) -> bool {
    use DataType::*;
    matches!(
        t,
        Null | Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | Float32
            | Float64
            | Date32
            | Date64
            | Time32(_)
            | Time64(_)
            | Timestamp(_, _)
            | Duration(_)
    )
}

/// Maps a time column to i64 keys that order as the times do (NULL stays NULL).
fn time_keys(arr: &ArrayRef) -> Result<Int64Array> {
    let keys: ArrayRef = match arr.data_type() {
        DataType::Null => new_null_array(&DataType::Int64, arr.len()),
        DataType::Float64 => Arc::new(
            arr.as_primitive::<Float64Type>()
                .unary::<_, Int64Type>(float_key),
        ),
        DataType::Float32 => Arc::new(
            arr.as_primitive::<Float32Type>()
                .unary::<_, Int64Type>(|v| float_key(v as f64)),
        ),
        DataType::Date32 | DataType::Time32(_) => {
            cast(&cast(arr, &DataType::Int32)?, &DataType::Int64)?
        }
        t if time_type_supported(t) => cast(arr, &DataType::Int64)?,
        t => {
            return Err(internal_datafusion_err!(
                "first/last: unexpected time type {t}"
            ))
        }
    };
    Ok(keys.as_primitive::<Int64Type>().clone())
}

/// An i64 ordered as PostgreSQL orders float8: -0 equals 0, NaN equals NaN
/// and is greater than every other value.
fn float_key(v: f64) -> i64 {
    let v = if v.is_nan() {
        f64::NAN
    } else if v == 0.0 {
        0.0
    } else {
        v
    };
    let bits = v.to_bits() as i64;
    if bits < 0 {
        bits ^ i64::MAX
    } else {
        bits
    }
}

/// Orders two values with NULL after every other value.
fn cmp_values(a: &ScalarValue, b: &ScalarValue) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

impl AggregateUDFImpl for Bookend {
    fn name(&self) -> &str {
        match self.end {
            End::First => "first",
            End::Last => "last",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let [value, time] = arg_types else {
            return Err(no_such_function(self.name(), arg_types));
        };
        if !time_type_supported(time) && !time_type_ordered(time) {
            return Err(TemporaError::new(
                SqlState::UNDEFINED_FUNCTION,
                format!(
                    "could not identify an ordering operator for type {}",
                    pg_type_name(time)
                ),
            )
            .into_datafusion());
        }
        Ok(value.clone())
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let value = acc_args.return_field.data_type();
        match acc_args.expr_fields.get(1).map(|f| f.data_type()) {
            Some(t) if !time_type_supported(t) => Ok(Box::new(OrderedBookendAccumulator::new(
                self.end, value, t,
            )?)),
            _ => Ok(Box::new(BookendAccumulator::new(self.end, value)?)),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let time = match args.input_fields.get(1).map(|f| f.data_type()) {
            Some(t) if !time_type_supported(t) => t.clone(),
            _ => DataType::Int64,
        };
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "value"),
                args.return_field.data_type().clone(),
                true,
            )),
            Arc::new(Field::new(format_state_name(args.name, "time"), time, true)),
        ])
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }
}

/// The best `(time key, value)` seen so far; `None` until a row with a time.
#[derive(Debug)]
struct BookendAccumulator {
    end: End,
    null: ScalarValue,
    best: Option<(i64, ScalarValue)>,
}

impl BookendAccumulator {
    fn new(end: End, value_type: &DataType) -> Result<Self> {
        Ok(Self {
            end,
            null: ScalarValue::try_from(value_type)?,
            best: None,
        })
    }

    /// Folds rows `(values[i], keys[i])` into the best row.
    fn absorb(&mut self, values: &ArrayRef, keys: &Int64Array) -> Result<()> {
        let mut batch_best: Option<(i64, usize)> = None;
        for i in 0..keys.len() {
            if keys.is_null(i) {
                continue;
            }
            let k = keys.value(i);
            let better = match batch_best {
                None => true,
                Some((bk, bi)) => {
                    let ord = k.cmp(&bk).then_with(|| {
                        let a = ScalarValue::try_from_array(values, i);
                        let b = ScalarValue::try_from_array(values, bi);
                        match (a, b) {
                            (Ok(a), Ok(b)) => cmp_values(&a, &b),
                            _ => Ordering::Equal,
                        }
                    });
                    self.end.wins(ord)
                }
            };
            if better {
                batch_best = Some((k, i));
            }
        }
        let Some((k, i)) = batch_best else {
            return Ok(());
        };
        let v = ScalarValue::try_from_array(values, i)?;
        let better = match &self.best {
            None => true,
            Some((bk, bv)) => self.end.wins(k.cmp(bk).then_with(|| cmp_values(&v, bv))),
        };
        if better {
            self.best = Some((k, v));
        }
        Ok(())
    }
}

/// The value and time arguments of `first`/`last`.
fn bookend_args(values: &[ArrayRef]) -> Result<(&ArrayRef, &ArrayRef)> {
    match values {
        [value, time] => Ok((value, time)),
        _ => Err(internal_datafusion_err!(
            "first/last: expected 2 arguments, got {}",
            values.len()
        )),
    }
}

impl Accumulator for BookendAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (value, time) = bookend_args(values)?;
        let keys = time_keys(time)?;
        self.absorb(value, &keys)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(match &self.best {
            Some((_, v)) => v.clone(),
            None => self.null.clone(),
        })
    }

    fn size(&self) -> usize {
        let value = self.best.as_ref().map_or(0, |(_, v)| v.size());
        std::mem::size_of_val(self) + self.null.size() + value
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(match &self.best {
            Some((k, v)) => vec![v.clone(), ScalarValue::Int64(Some(*k))],
            None => vec![self.null.clone(), ScalarValue::Int64(None)],
        })
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [value, key] = states else {
            return Err(internal_datafusion_err!(
                "first/last: expected 2 state columns, got {}",
                states.len()
            ));
        };
        let keys = key
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| internal_datafusion_err!("first/last: time state is not Int64"))?;
        self.absorb(value, keys)
    }
}

/// `first` / `last` ordered by a time argument of a type `time_keys` does
/// not map (text, numeric, intervals, ...): the best row's value and its
/// time as a one-row array of the argument's own type.
#[derive(Debug)]
struct OrderedBookendAccumulator {
    end: End,
    null: ScalarValue,
    null_time: ScalarValue,
    best: Option<(ArrayRef, ScalarValue)>,
}

impl OrderedBookendAccumulator {
    fn new(end: End, value_type: &DataType, time_type: &DataType) -> Result<Self> {
        Ok(Self {
            end,
            null: ScalarValue::try_from(value_type)?,
            null_time: ScalarValue::try_from(time_type)?,
            best: None,
        })
    }

    /// Folds rows `(values[i], times[i])` into the best row.
    fn absorb(&mut self, values: &ArrayRef, times: &ArrayRef) -> Result<()> {
        let order = time_order(times)?;
        let cmp = make_comparator(order.as_ref(), order.as_ref(), SortOptions::default())?;
        let value_cmp = |i: usize, j: usize| match (
            ScalarValue::try_from_array(values, i),
            ScalarValue::try_from_array(values, j),
        ) {
            (Ok(a), Ok(b)) => cmp_values(&a, &b),
            _ => Ordering::Equal,
        };
        let mut batch_best: Option<usize> = None;
        for i in 0..order.len() {
            if order.is_null(i) {
                continue;
            }
            batch_best = match batch_best {
                Some(b) if !self.end.wins(cmp(i, b).then_with(|| value_cmp(i, b))) => Some(b),
                _ => Some(i),
            };
        }
        let Some(i) = batch_best else {
            return Ok(());
        };
        let v = ScalarValue::try_from_array(values, i)?;
        let better = match &self.best {
            None => true,
            Some((best_time, best_value)) => {
                let theirs = time_order(best_time)?;
                let cmp = make_comparator(order.as_ref(), theirs.as_ref(), SortOptions::default())?;
                self.end
                    .wins(cmp(i, 0).then_with(|| cmp_values(&v, best_value)))
            }
        };
        if better {
            self.best = Some((times.slice(i, 1), v));
        }
        Ok(())
    }
}

impl Accumulator for OrderedBookendAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (value, time) = bookend_args(values)?;
        self.absorb(value, time)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(match &self.best {
            Some((_, v)) => v.clone(),
            None => self.null.clone(),
        })
    }

    fn size(&self) -> usize {
        let best = self
            .best
            .as_ref()
            .map_or(0, |(t, v)| t.get_array_memory_size() + v.size());
        std::mem::size_of_val(self) + self.null.size() + self.null_time.size() + best
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(match &self.best {
            Some((t, v)) => vec![v.clone(), ScalarValue::try_from_array(t, 0)?],
            None => vec![self.null.clone(), self.null_time.clone()],
        })
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [value, time] = states else {
            return Err(internal_datafusion_err!(
                "first/last: expected 2 state columns, got {}",
                states.len()
            ));
        };
        self.absorb(value, time)
    }
}

/// PostgreSQL's 42883 for a call no overload of `name` takes, naming the
/// argument types as the call gave them.
fn no_such_function(name: &str, arg_types: &[DataType]) -> datafusion::error::DataFusionError {
    TemporaError::new(
        SqlState::UNDEFINED_FUNCTION,
        format!(
            "function {name}({}) does not exist",
            arg_types
                .iter()
                .map(pg_type_name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .with_hint(
        "No function matches the given name and argument types. \
         You might need to add explicit type casts.",
    )
    .into_datafusion()
}

// ---------------------------------------------------------------------------
// a scalar subquery's value
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SubqueryValue {
    signature: Signature,
}

impl AggregateUDFImpl for SubqueryValue {
    fn name(&self) -> &str {
        SUBQUERY_VALUE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let value = arg_types
            .first()
            .ok_or_else(|| internal_datafusion_err!("{SUBQUERY_VALUE}: no argument"))?;
        Ok(DataType::Struct(subquery_fields(value)))
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let DataType::Struct(fields) = acc_args.return_field.data_type() else {
            return Err(internal_datafusion_err!("{SUBQUERY_VALUE}: not a struct"));
        };
        Ok(Box::new(SubqueryValueAccumulator {
            value: ScalarValue::try_from(fields[0].data_type())?,
            fields: fields.clone(),
            rows: 0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let DataType::Struct(fields) = args.return_field.data_type() else {
            return Err(internal_datafusion_err!("{SUBQUERY_VALUE}: not a struct"));
        };
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "value"),
                fields[0].data_type().clone(),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "rows"),
                DataType::Int64,
                true,
            )),
        ])
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }
}

/// The first row's value and how many rows came.
#[derive(Debug)]
struct SubqueryValueAccumulator {
    fields: datafusion::arrow::datatypes::Fields,
    value: ScalarValue,
    rows: i64,
}

impl SubqueryValueAccumulator {
    fn add(&mut self, values: &ArrayRef, at: usize, rows: i64) -> Result<()> {
        if self.rows == 0 && rows > 0 {
            self.value = ScalarValue::try_from_array(values, at)?;
        }
        self.rows = self.rows.saturating_add(rows);
        Ok(())
    }
}

impl Accumulator for SubqueryValueAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [value] = values else {
            return Err(internal_datafusion_err!(
                "{SUBQUERY_VALUE}: expected 1 argument"
            ));
        };
        if !value.is_empty() {
            self.add(value, 0, value.len() as i64)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        datafusion::common::scalar::ScalarStructBuilder::new()
            .with_scalar(self.fields[0].clone(), self.value.clone())
            .with_scalar(self.fields[1].clone(), ScalarValue::Int64(Some(self.rows)))
            .build()
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.value.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            self.value.clone(),
            ScalarValue::Int64(Some(self.rows)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [value, rows] = states else {
            return Err(internal_datafusion_err!(
                "{SUBQUERY_VALUE}: expected 2 state columns"
            ));
        };
        let rows = rows
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| internal_datafusion_err!("{SUBQUERY_VALUE}: rows state is not Int64"))?;
        for i in 0..rows.len() {
            let n = if rows.is_null(i) { 0 } else { rows.value(i) };
            if n > 0 {
                self.add(value, i, n)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SubqueryCheck {
    signature: Signature,
}

impl datafusion::logical_expr::ScalarUDFImpl for SubqueryCheck {
    fn name(&self) -> &str {
        SUBQUERY_CHECK
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(DataType::Struct(fields)) if fields.len() == 2 => {
                Ok(fields[0].data_type().clone())
            }
            _ => Err(internal_datafusion_err!(
                "{SUBQUERY_CHECK}: not a subquery's value"
            )),
        }
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> Result<datafusion::logical_expr::ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return Err(internal_datafusion_err!(
                "{SUBQUERY_CHECK}: expected 1 argument"
            ));
        };
        let array = arg.to_array(args.number_rows)?;
        let parts = array
            .as_struct_opt()
            .ok_or_else(|| internal_datafusion_err!("{SUBQUERY_CHECK}: not a struct"))?;
        let rows = parts
            .column(1)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| internal_datafusion_err!("{SUBQUERY_CHECK}: rows are not Int64"))?;
        let several =
            (0..rows.len()).any(|i| !parts.is_null(i) && !rows.is_null(i) && rows.value(i) > 1);
        if several {
            return Err(TemporaError::new(
                SqlState::CARDINALITY_VIOLATION,
                "more than one row returned by a subquery used as an expression",
            )
            .into_datafusion());
        }
        // A missing struct (no row joined) is a NULL value.
        let value = parts.column(0).clone();
        let value = match parts.nulls() {
            Some(nulls) if nulls.null_count() > 0 => {
                let mask = datafusion::arrow::array::BooleanArray::new(nulls.inner().clone(), None);
                datafusion::arrow::compute::nullif(
                    &value,
                    &datafusion::arrow::compute::not(&mask)?,
                )?
            }
            _ => value,
        };
        Ok(datafusion::logical_expr::ColumnarValue::Array(value))
    }
}

// ---------------------------------------------------------------------------
// histogram
// ---------------------------------------------------------------------------

/// Most buckets a histogram may have (TimescaleDB fails earlier, when its
/// allocation of 8 bytes per bucket passes 1 GB).
const MAX_BUCKETS: i32 = 100_000_000;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Histogram {
    signature: Signature,
}

impl Histogram {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

const HISTOGRAM_ARGS: [DataType; 4] = [
    DataType::Float64,
    DataType::Float64,
    DataType::Float64,
    DataType::Int32,
];

fn histogram_type() -> DataType {
    DataType::new_list(DataType::Int32, true)
}

impl AggregateUDFImpl for Histogram {
    fn name(&self) -> &str {
        "histogram"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Casts numbers to (float8, float8, float8, int4); a call with another
    /// argument is left as it is for `return_type` to reject with
    /// PostgreSQL's 42883, which names the types as written.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let coercible = arg_types.len() == HISTOGRAM_ARGS.len()
            && arg_types
                .iter()
                .zip(HISTOGRAM_ARGS.iter())
                .all(|(from, to)| {
                    (from.is_numeric() || from.is_null()) && can_cast_types(from, to)
                });
        if !coercible {
            return Ok(arg_types.to_vec());
        }
        Ok(arg_types
            .iter()
            .zip(HISTOGRAM_ARGS.iter())
            .map(|(from, to)| {
                let numeric = from.is_numeric() || from.is_null();
                if numeric && can_cast_types(from, to) {
                    to.clone()
                } else {
                    from.clone()
                }
            })
            .collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types != HISTOGRAM_ARGS {
            return Err(no_such_function(self.name(), arg_types));
        }
        Ok(histogram_type())
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        // TimescaleDB reads a NULL value's datum, which is 0 for a column's
        // NULL (see the module comment).
        let from_column = acc_args.exprs.first().is_some_and(|e| {
            e.downcast_ref::<datafusion::physical_expr::expressions::Column>()
                .is_some()
        });
        Ok(Box::new(HistogramAccumulator {
            null_as_zero: from_column,
            ..HistogramAccumulator::default()
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "counts"),
                histogram_type(),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "nbuckets"),
                DataType::Int32,
                true,
            )),
        ])
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }
}

fn width_bucket_error(message: &str) -> datafusion::error::DataFusionError {
    TemporaError::new(
        SqlState::INVALID_ARGUMENT_FOR_WIDTH_BUCKET_FUNCTION,
        message,
    )
    .into_datafusion()
}

fn nbuckets_changed() -> datafusion::error::DataFusionError {
    TemporaError::new(
        SqlState::INVALID_PARAMETER_VALUE,
        "number of buckets must not change between calls",
    )
    .into_datafusion()
}

/// Checks one row's bounds and bucket count, in TimescaleDB's order (its own
/// checks first, then width_bucket's).
fn check_bounds(min: f64, max: f64, nbuckets: i32, known: Option<i32>) -> Result<()> {
    if min > max {
        return Err(TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            "lower bound cannot exceed upper bound",
        )
        .into_datafusion());
    }
    if known.is_some_and(|n| n != nbuckets) {
        return Err(nbuckets_changed());
    }
    if nbuckets <= 0 {
        return Err(width_bucket_error("count must be greater than zero"));
    }
    if min.is_nan() || max.is_nan() {
        return Err(width_bucket_error("lower and upper bounds cannot be NaN"));
    }
    if min.is_infinite() || max.is_infinite() {
        return Err(width_bucket_error("lower and upper bounds must be finite"));
    }
    if min == max {
        return Err(width_bucket_error("lower bound cannot equal upper bound"));
    }
    if nbuckets > MAX_BUCKETS {
        return Err(TemporaError::new(
            SqlState::PROGRAM_LIMIT_EXCEEDED,
            format!("histogram cannot have more than {MAX_BUCKETS} buckets"),
        )
        .into_datafusion());
    }
    Ok(())
}

/// PostgreSQL's `width_bucket(operand, min, max, count)` for `min < max`
/// (both finite, `count > 0`): 0 below `min`, `count + 1` at or above `max`
/// or for NaN, else `1 + floor(count * (operand - min) / (max - min))` with the
/// quotient computed first and the result kept below `count + 1`.
fn width_bucket(operand: f64, min: f64, max: f64, count: i32) -> usize {
    if operand.is_nan() || operand >= max {
        return count as usize + 1;
    }
    if operand < min {
        return 0;
    }
    let quotient = if (max - min).is_infinite() {
        // The bounds are finite, so halving them cannot lose their difference.
        (operand / 2.0 - min / 2.0) / (max / 2.0 - min / 2.0)
    } else {
        (operand - min) / (max - min)
    };
    let mut bucket = (count as f64 * quotient) as i32;
    if bucket >= count {
        bucket = count - 1;
    }
    bucket as usize + 1
}

/// Bucket counts (`None` until a value is counted) and the bucket count every
/// row must repeat.
#[derive(Debug, Default)]
struct HistogramAccumulator {
    nbuckets: Option<i32>,
    counts: Option<Vec<i32>>,
    /// Whether a NULL value counts as 0.0 (a column's NULL) or is skipped.
    null_as_zero: bool,
}

fn overflow() -> datafusion::error::DataFusionError {
    TemporaError::new(
        SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
        "overflow in histogram",
    )
    .into_datafusion()
}

impl HistogramAccumulator {
    fn counts_mut(&mut self, nbuckets: i32) -> &mut Vec<i32> {
        self.counts
            .get_or_insert_with(|| vec![0; nbuckets as usize + 2])
    }
}

impl Accumulator for HistogramAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [value, min, max, nbuckets] = values else {
            return Err(internal_datafusion_err!(
                "histogram: expected 4 arguments, got {}",
                values.len()
            ));
        };
        let value = value.as_primitive::<Float64Type>();
        let min = min.as_primitive::<Float64Type>();
        let max = max.as_primitive::<Float64Type>();
        let nbuckets = nbuckets.as_primitive::<Int32Type>();
        for i in 0..value.len() {
            if min.is_null(i) || max.is_null(i) || nbuckets.is_null(i) {
                continue;
            }
            let (lo, hi, n) = (min.value(i), max.value(i), nbuckets.value(i));
            check_bounds(lo, hi, n, self.nbuckets)?;
            self.nbuckets = Some(n);
            let v = if value.is_null(i) {
                if !self.null_as_zero {
                    continue;
                }
                0.0
            } else {
                value.value(i)
            };
            let bucket = width_bucket(v, lo, hi, n);
            let slot = &mut self.counts_mut(n)[bucket];
            *slot = slot.checked_add(1).ok_or_else(overflow)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(match &self.counts {
            Some(c) => ScalarValue::List(Arc::new(list_of(c))),
            None => ScalarValue::try_from(&histogram_type())?,
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .counts
                .as_ref()
                .map_or(0, |c| c.capacity() * std::mem::size_of::<i32>())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?, ScalarValue::Int32(self.nbuckets)])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [counts, nbuckets] = states else {
            return Err(internal_datafusion_err!(
                "histogram: expected 2 state columns, got {}",
                states.len()
            ));
        };
        let counts = counts
            .as_list_opt::<i32>()
            .ok_or_else(|| internal_datafusion_err!("histogram: counts state is not a list"))?;
        let nbuckets = nbuckets
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| internal_datafusion_err!("histogram: nbuckets state is not Int32"))?;
        for i in 0..nbuckets.len() {
            if nbuckets.is_null(i) {
                continue;
            }
            let n = nbuckets.value(i);
            if self.nbuckets.is_some_and(|known| known != n) {
                return Err(nbuckets_changed());
            }
            self.nbuckets = Some(n);
            if counts.is_null(i) {
                continue;
            }
            let part = counts.value(i);
            let part = part.as_primitive::<Int32Type>();
            let mine = self.counts_mut(n);
            if part.len() != mine.len() {
                return Err(nbuckets_changed());
            }
            for (slot, add) in mine.iter_mut().zip(part.values().iter()) {
                *slot = slot.checked_add(*add).ok_or_else(overflow)?;
            }
        }
        Ok(())
    }
}

/// One `List<Int32>` row holding `counts`.
fn list_of(counts: &[i32]) -> ListArray {
    ListArray::new(
        Arc::new(Field::new_list_field(DataType::Int32, true)),
        OffsetBuffer::from_lengths([counts.len()]),
        Arc::new(Int32Array::from(counts.to_vec())),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        Date32Array, Float64Array, StringArray, TimestampMicrosecondArray,
    };

    fn ts(v: &[Option<i64>]) -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v.to_vec()).with_timezone("UTC"))
    }

    fn strs(v: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    fn bookend(end: End, parts: &[(ArrayRef, ArrayRef)]) -> Vec<BookendAccumulator> {
        parts
            .iter()
            .map(|(v, t)| {
                let mut acc = BookendAccumulator::new(end, &DataType::Utf8).unwrap();
                acc.update_batch(&[v.clone(), t.clone()]).unwrap();
                acc
            })
            .collect()
    }

    /// Merges the partial states in the order given into a fresh accumulator.
    fn merge_bookend(end: End, parts: &mut [BookendAccumulator], order: &[usize]) -> ScalarValue {
        let mut fin = BookendAccumulator::new(end, &DataType::Utf8).unwrap();
        for &i in order {
            let state = parts[i].state().unwrap();
            let cols: Vec<ArrayRef> = state.iter().map(|s| s.to_array().unwrap()).collect();
            fin.merge_batch(&cols).unwrap();
        }
        fin.evaluate().unwrap()
    }

    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for pos in 0..=p.len() {
                let mut q = p.clone();
                q.insert(pos, n - 1);
                out.push(q);
            }
        }
        out
    }

    fn text(s: Option<&str>) -> ScalarValue {
        ScalarValue::Utf8(s.map(str::to_string))
    }

    #[test]
    fn bookend_merge_order_does_not_matter() {
        // Ties at time 10 (first) and 50 (last) spread over the partitions,
        // NULL times and an empty partition.
        let parts = || {
            vec![
                (strs(&[Some("c"), Some("x")]), ts(&[Some(10), Some(30)])),
                (strs(&[Some("a"), Some("n")]), ts(&[Some(10), None])),
                (strs(&[Some("b"), None]), ts(&[Some(10), Some(50)])),
                (strs(&[Some("z")]), ts(&[Some(50)])),
                (strs(&[]), ts(&[])),
            ]
        };
        for order in permutations(5) {
            let mut f = bookend(End::First, &parts());
            assert_eq!(merge_bookend(End::First, &mut f, &order), text(Some("a")));
            let mut l = bookend(End::Last, &parts());
            // A NULL value sorts after every value, so it wins the tie at 50.
            assert_eq!(merge_bookend(End::Last, &mut l, &order), text(None));
        }
    }

    #[test]
    fn bookend_partitions_match_one_batch() {
        let values = strs(&[Some("p"), Some("q"), Some("r"), None, Some("s")]);
        let times = ts(&[Some(5), Some(-3), None, Some(-3), Some(9)]);
        for end in [End::First, End::Last] {
            let mut one = BookendAccumulator::new(end, &DataType::Utf8).unwrap();
            one.update_batch(&[values.clone(), times.clone()]).unwrap();
            let whole = one.evaluate().unwrap();
            let mut parts: Vec<_> = (0..5)
                .map(|i| {
                    let mut acc = BookendAccumulator::new(end, &DataType::Utf8).unwrap();
                    acc.update_batch(&[values.slice(i, 1), times.slice(i, 1)])
                        .unwrap();
                    acc
                })
                .collect();
            for order in permutations(5) {
                assert_eq!(merge_bookend(end, &mut parts, &order), whole, "{end:?}");
            }
        }
        let mut f = BookendAccumulator::new(End::First, &DataType::Utf8).unwrap();
        f.update_batch(&[values.clone(), times.clone()]).unwrap();
        assert_eq!(f.evaluate().unwrap(), text(Some("q")));
        let mut l = BookendAccumulator::new(End::Last, &DataType::Utf8).unwrap();
        l.update_batch(&[values, times]).unwrap();
        assert_eq!(l.evaluate().unwrap(), text(Some("s")));
    }

    #[test]
    fn bookend_without_times_is_null() {
        let mut acc = BookendAccumulator::new(End::First, &DataType::Utf8).unwrap();
        acc.update_batch(&[strs(&[Some("a")]), ts(&[None])])
            .unwrap();
        assert_eq!(acc.evaluate().unwrap(), text(None));
        assert_eq!(acc.state().unwrap()[1], ScalarValue::Int64(None));
    }

    fn ordered(end: End, values: &ArrayRef, times: &ArrayRef) -> OrderedBookendAccumulator {
        let mut acc =
            OrderedBookendAccumulator::new(end, values.data_type(), times.data_type()).unwrap();
        acc.update_batch(&[values.clone(), times.clone()]).unwrap();
        acc
    }

    #[test]
    fn bookend_by_text_orders_bytes_and_skips_null_times() {
        // TimescaleDB's first(temp, note) / last(temp, note) over probe 08's
        // rows: 10 and 30.
        let temps: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(10.0),
            Some(11.5),
            None,
            Some(20.0),
            Some(25.0),
            Some(30.0),
        ]));
        let notes = strs(&[
            Some("first-a"),
            None,
            Some("last-a"),
            Some("first-b"),
            Some("last-b"),
            Some("only-c"),
        ]);
        let first = ordered(End::First, &temps, &notes).evaluate().unwrap();
        assert_eq!(first, ScalarValue::Float64(Some(10.0)));
        let last = ordered(End::Last, &temps, &notes).evaluate().unwrap();
        assert_eq!(last, ScalarValue::Float64(Some(30.0)));
        // Split into single rows and merged in every order of a few.
        for end in [End::First, End::Last] {
            let whole = ordered(end, &temps, &notes).evaluate().unwrap();
            let mut parts: Vec<_> = (0..4)
                .map(|i| {
                    let (from, len) = [(0, 2), (2, 1), (3, 3), (6, 0)][i];
                    ordered(end, &temps.slice(from, len), &notes.slice(from, len))
                })
                .collect();
            for order in permutations(4) {
                let mut fin =
                    OrderedBookendAccumulator::new(end, &DataType::Float64, &DataType::Utf8)
                        .unwrap();
                for &i in &order {
                    let cols: Vec<ArrayRef> = parts[i]
                        .state()
                        .unwrap()
                        .iter()
                        .map(|s| s.to_array().unwrap())
                        .collect();
                    fin.merge_batch(&cols).unwrap();
                }
                assert_eq!(fin.evaluate().unwrap(), whole, "{end:?} {order:?}");
            }
        }
        // No time at all: NULL, and a NULL time in the state.
        let mut none = ordered(End::First, &temps.slice(1, 1), &notes.slice(1, 1));
        assert_eq!(none.evaluate().unwrap(), ScalarValue::Float64(None));
        assert_eq!(none.state().unwrap()[1], ScalarValue::Utf8(None));
    }

    #[test]
    fn bookend_by_interval_orders_by_length() {
        use datafusion::arrow::array::IntervalMonthDayNanoArray;
        use datafusion::arrow::datatypes::IntervalMonthDayNano;
        let iv = |m, d, ns| IntervalMonthDayNano::new(m, d, ns);
        // PostgreSQL: '1 mon' = '30 days' < '29 days 25:00:00' < '31 days'
        // < '1 mon 1 day'; ties broken by the value.
        let times: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(vec![
            Some(iv(0, 31, 0)),
            Some(iv(1, 0, 0)),
            Some(iv(0, 29, 25 * 3_600_000_000_000)),
            Some(iv(1, 1, 0)),
            Some(iv(0, 30, 0)),
            None,
        ]));
        let values: ArrayRef = Arc::new(Int32Array::from(vec![1, 2, 3, 4, 5, 6]));
        let first = ordered(End::First, &values, &times).evaluate().unwrap();
        assert_eq!(first, ScalarValue::Int32(Some(2)));
        let last = ordered(End::Last, &values, &times).evaluate().unwrap();
        assert_eq!(last, ScalarValue::Int32(Some(4)));
    }

    #[test]
    fn bookend_time_types() {
        assert!(time_type_ordered(&DataType::Utf8));
        assert!(time_type_ordered(&DataType::Decimal128(38, 10)));
        assert!(time_type_ordered(&DataType::new_list(
            DataType::Int32,
            true
        )));
        let map = DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(
                    vec![
                        Field::new("key", DataType::Utf8, false),
                        Field::new("value", DataType::Utf8, true),
                    ]
                    .into(),
                ),
                false,
            )),
            false,
        );
        assert!(!time_type_ordered(&map));
        let e = first_udaf()
            .return_type(&[DataType::Float64, map])
            .unwrap_err();
        assert_eq!(
            TemporaError::from_datafusion(e).code,
            SqlState::UNDEFINED_FUNCTION
        );
        let e = first_udaf().return_type(&[DataType::Float64]).unwrap_err();
        let e = TemporaError::from_datafusion(e);
        assert_eq!(e.code, SqlState::UNDEFINED_FUNCTION);
        assert_eq!(e.message, "function first(double precision) does not exist");
    }

    #[test]
    fn histogram_counts_a_column_null_as_zero() {
        // Probe 08: temps 10, 11.5, NULL, 20, 25, 30 over [10, 30) in 4.
        let values = [
            Some(10.0),
            Some(11.5),
            None,
            Some(20.0),
            Some(25.0),
            Some(30.0),
        ];
        let mut acc = HistogramAccumulator {
            null_as_zero: true,
            ..HistogramAccumulator::default()
        };
        let len = values.len();
        acc.update_batch(&[
            Arc::new(Float64Array::from(values.to_vec())),
            Arc::new(Float64Array::from(vec![10.0; len])),
            Arc::new(Float64Array::from(vec![30.0; len])),
            Arc::new(Int32Array::from(vec![4; len])),
        ])
        .unwrap();
        let expected = ScalarValue::List(Arc::new(list_of(&[1, 2, 0, 1, 1, 1])));
        assert_eq!(acc.evaluate().unwrap(), expected);
        // Computed NULLs are skipped.
        let skipped = hist(&values, 10.0, 30.0, 4).evaluate().unwrap();
        let expected = ScalarValue::List(Arc::new(list_of(&[0, 2, 0, 1, 1, 1])));
        assert_eq!(skipped, expected);
    }

    #[test]
    fn histogram_rejects_other_types_as_written() {
        let h = histogram_udaf();
        let written = [
            DataType::Utf8,
            DataType::Int32,
            DataType::Int32,
            DataType::Int32,
        ];
        let coerced = h.coerce_types(&written).unwrap();
        assert_eq!(coerced, written);
        let e = TemporaError::from_datafusion(h.return_type(&coerced).unwrap_err());
        assert_eq!(e.code, SqlState::UNDEFINED_FUNCTION);
        assert_eq!(
            e.message,
            "function histogram(text, integer, integer, integer) does not exist"
        );
    }

    #[test]
    fn time_keys_order_like_the_times() {
        let f: ArrayRef = Arc::new(Float64Array::from(vec![
            f64::NEG_INFINITY,
            -2.5,
            -0.0,
            0.0,
            1e-300,
            3.0,
            f64::INFINITY,
            f64::NAN,
        ]));
        let k = time_keys(&f).unwrap();
        let k: Vec<i64> = k.values().to_vec();
        assert!(k[0] < k[1] && k[1] < k[2] && k[2] == k[3] && k[3] < k[4]);
        assert!(k[4] < k[5] && k[5] < k[6] && k[6] < k[7]);
        let d: ArrayRef = Arc::new(Date32Array::from(vec![Some(-5), None, Some(7)]));
        let k = time_keys(&d).unwrap();
        assert_eq!(k.value(0), -5);
        assert!(k.is_null(1));
        assert_eq!(k.value(2), 7);
    }

    fn hist(values: &[Option<f64>], min: f64, max: f64, n: i32) -> HistogramAccumulator {
        let len = values.len();
        let mut acc = HistogramAccumulator::default();
        acc.update_batch(&[
            Arc::new(Float64Array::from(values.to_vec())),
            Arc::new(Float64Array::from(vec![min; len])),
            Arc::new(Float64Array::from(vec![max; len])),
            Arc::new(Int32Array::from(vec![n; len])),
        ])
        .unwrap();
        acc
    }

    #[test]
    fn width_bucket_matches_postgres() {
        let b = |v| width_bucket(v, 0.0, 10.0, 5);
        assert_eq!(b(-0.5), 0);
        assert_eq!(b(0.0), 1);
        assert_eq!(b(1.999), 1);
        assert_eq!(b(2.0), 2);
        assert_eq!(b(6.0), 4);
        assert_eq!(b(8.0), 5);
        assert_eq!(b(9.999), 5);
        assert_eq!(b(10.0), 6);
        assert_eq!(b(f64::INFINITY), 6);
        assert_eq!(b(f64::NEG_INFINITY), 0);
        assert_eq!(b(f64::NAN), 6);
        // The largest value below max lands in the last bucket, whatever the
        // quotient rounds to.
        let below_one = f64::from_bits(1.0f64.to_bits() - 1);
        for min in [0.0, 0.1, 0.3, -7.0, 0.999] {
            assert_eq!(width_bucket(below_one, min, 1.0, 3), 3, "{min}");
        }
        // Bounds whose difference overflows.
        assert_eq!(width_bucket(0.0, -f64::MAX, f64::MAX, 4), 3);
    }

    #[test]
    fn histogram_merge_order_does_not_matter() {
        let data: Vec<Option<f64>> = vec![
            Some(-1.0),
            Some(0.0),
            None,
            Some(3.5),
            Some(10.0),
            Some(12.0),
            Some(9.99),
            Some(2.0),
        ];
        let whole = hist(&data, 0.0, 10.0, 5).evaluate().unwrap();
        let expected = ScalarValue::List(Arc::new(list_of(&[1, 1, 2, 0, 0, 1, 2])));
        assert_eq!(whole, expected);
        // Partials of 3 rows (one NULL), 1 (NULL only), 0 and 5.
        let mut parts = [
            hist(&data[0..2], 0.0, 10.0, 5),
            hist(&data[2..3], 0.0, 10.0, 5),
            hist(&[], 0.0, 10.0, 5),
            hist(&data[3..], 0.0, 10.0, 5),
        ];
        parts[0]
            .update_batch(&[
                Arc::new(Float64Array::from(vec![None::<f64>])),
                Arc::new(Float64Array::from(vec![0.0])),
                Arc::new(Float64Array::from(vec![10.0])),
                Arc::new(Int32Array::from(vec![5])),
            ])
            .unwrap();
        for order in permutations(4) {
            let mut fin = HistogramAccumulator::default();
            for &i in &order {
                let state = parts[i].state().unwrap();
                let cols: Vec<ArrayRef> = state.iter().map(|s| s.to_array().unwrap()).collect();
                fin.merge_batch(&cols).unwrap();
            }
            assert_eq!(fin.evaluate().unwrap(), expected, "{order:?}");
        }
    }

    #[test]
    fn histogram_of_nothing_is_null() {
        let null = ScalarValue::try_from(&histogram_type()).unwrap();
        assert_eq!(hist(&[], 0.0, 1.0, 2).evaluate().unwrap(), null);
        assert_eq!(hist(&[None, None], 0.0, 1.0, 2).evaluate().unwrap(), null);
        // Merging only empty partials stays NULL.
        let mut fin = HistogramAccumulator::default();
        let state = hist(&[None], 0.0, 1.0, 2).state().unwrap();
        let cols: Vec<ArrayRef> = state.iter().map(|s| s.to_array().unwrap()).collect();
        fin.merge_batch(&cols).unwrap();
        assert_eq!(fin.evaluate().unwrap(), null);
    }

    #[test]
    fn histogram_rejects_changing_bucket_counts_across_partials() {
        let mut a = hist(&[Some(1.0)], 0.0, 10.0, 5);
        let mut b = hist(&[Some(1.0)], 0.0, 10.0, 4);
        let mut fin = HistogramAccumulator::default();
        for acc in [&mut a, &mut b] {
            let cols: Vec<ArrayRef> = acc
                .state()
                .unwrap()
                .iter()
                .map(|s| s.to_array().unwrap())
                .collect();
            let r = fin.merge_batch(&cols);
            if acc.nbuckets == Some(4) {
                let e = TemporaError::from_datafusion(r.unwrap_err());
                assert_eq!(e.code, SqlState::INVALID_PARAMETER_VALUE);
            }
        }
    }

    #[test]
    fn histogram_errors_carry_sqlstates() {
        let code = |min: f64, max: f64, n: i32| {
            let e = check_bounds(min, max, n, None).unwrap_err();
            TemporaError::from_datafusion(e).code
        };
        assert_eq!(code(5.0, 1.0, 3), SqlState::INVALID_PARAMETER_VALUE);
        assert_eq!(
            code(1.0, 1.0, 3),
            SqlState::INVALID_ARGUMENT_FOR_WIDTH_BUCKET_FUNCTION
        );
        assert_eq!(
            code(0.0, 1.0, 0),
            SqlState::INVALID_ARGUMENT_FOR_WIDTH_BUCKET_FUNCTION
        );
        assert_eq!(
            code(0.0, f64::INFINITY, 2),
            SqlState::INVALID_ARGUMENT_FOR_WIDTH_BUCKET_FUNCTION
        );
    }
}
