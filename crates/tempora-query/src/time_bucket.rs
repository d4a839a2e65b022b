//! TimescaleDB's `time_bucket` as a DataFusion scalar function.
//!
//! Supported calls (the type of `ts` decides the result type):
//!
//! | call | result |
//! |---|---|
//! | `time_bucket(width interval, ts timestamptz [, offset interval \| origin timestamptz])` | timestamptz |
//! | `time_bucket(width interval, ts timestamptz, timezone text [, origin timestamptz [, offset interval]])` | timestamptz |
//! | `time_bucket(width interval, ts timestamp [, offset interval \| origin timestamp])` | timestamp |
//! | `time_bucket(width interval, ts date [, offset interval \| origin date])` | date |
//! | `time_bucket(width int, ts int [, offset int])` (int2/int4/int8) | type of `ts` |
//!
//! Coercion (see [`TimeBucket::coerce_types`]): timestamps of any unit become
//! microseconds keeping their time zone string; a string or any interval width
//! becomes `Interval(MonthDayNano)`; `Date64` becomes `Date32`; integer widths
//! and offsets take the type of the integer `ts`; a string `ts` is read as a
//! timestamptz (`Timestamp(Microsecond, "UTC")`). A string third argument is a
//! time zone name when `ts` is a timestamptz and an origin otherwise. Calls that
//! match no form fail with SQLSTATE 42883 when the return type is computed.
//!
//! Semantics follow TimescaleDB: sub-month widths bucket plain microseconds
//! (a day is 86400 s) from the origin 2000-01-03 00:00 (UTC for timestamptz);
//! month widths bucket by calendar month counted from January 2000 (or the
//! origin's month; the origin's day and time are ignored) and return the first
//! day of the month at 00:00; an offset is subtracted with calendar arithmetic
//! before bucketing and added back afterwards. Date inputs need whole-day
//! widths. PostgreSQL's infinities (`i64::MIN`/`i64::MAX` microseconds,
//! `i32::MIN`/`i32::MAX` days) come back unchanged. A NULL width, `ts`,
//! offset, origin or time zone gives NULL, except that a NULL origin or offset
//! in the time zone form means "not given", as in TimescaleDB.

use std::sync::{Arc, OnceLock};

use crate::calendar::{civil_from_days, days_from_civil};
use crate::pg_types::pg_type_name;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, PrimitiveArray, PrimitiveBuilder, StringArray,
};
use datafusion::arrow::compute::{can_cast_types, cast};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Int16Type, Int32Type, Int64Type,
    IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
    TimestampMicrosecondType,
};
use datafusion::common::{internal_datafusion_err, Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::scalar_doc_sections::DOC_SECTION_DATETIME;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use tempora_common::{SqlState, TemporaError};
use tempora_copy::zone::PgTimeZone;

/// Microseconds in a day (TimescaleDB treats a day as exactly 24 hours here).
const USECS_PER_DAY: i64 = 86_400_000_000;
/// 2000-01-03 (a Monday) in days since 1970-01-01: the default origin.
const DEFAULT_ORIGIN_DAYS: i64 = 10_959;
const DEFAULT_ORIGIN_USECS: i64 = DEFAULT_ORIGIN_DAYS * USECS_PER_DAY;
/// January 2000 as a month index (`year * 12 + month - 1`): the default origin
/// of month buckets.
const DEFAULT_ORIGIN_MONTH: i64 = 2000 * 12;
/// Time zone given to a timestamptz that was written as a string.
const DEFAULT_TZ: &str = "UTC";
/// SQLSTATE of "month intervals cannot have day or time component".
/// TimescaleDB itself raises 0A000 (feature_not_supported) here.
const MIXED_MONTH_CODE: SqlState = SqlState::FEATURE_NOT_SUPPORTED;

/// The `time_bucket` scalar function (register with `ctx.register_udf`).
pub fn time_bucket_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(TimeBucket::new())
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeBucket {
    signature: Signature,
}

impl Default for TimeBucket {
    fn default() -> Self {
        Self::new()
    }
}

impl TimeBucket {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TimeBucket {
    fn name(&self) -> &str {
        "time_bucket"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Never fails: calls that fit no form keep their types and are rejected
    /// by `return_type` with a PostgreSQL-style 42883 error (an error raised
    /// here would reach the user as a plain DataFusion message).
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        Ok(coerce_args(arg_types))
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        resolve_return_type(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ScalarFunctionArgs {
            args, number_rows, ..
        } = args;
        if args.len() < 2 {
            return Err(internal_datafusion_err!(
                "time_bucket called with {} arguments",
                args.len()
            ));
        }
        let (len, all_scalar) = crate::pg_types::result_rows(&args, number_rows);
        let out: ArrayRef = match args[1].data_type() {
            DataType::Int16 => Arc::new(int_bucket::<Int16Type>(&args, len)?),
            DataType::Int32 => Arc::new(int_bucket::<Int32Type>(&args, len)?),
            DataType::Int64 => Arc::new(int_bucket::<Int64Type>(&args, len)?),
            DataType::Date32 => Arc::new(date_bucket(&args, len)?),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                Arc::new(timestamp_bucket(&args, len)?.with_timezone_opt(tz))
            }
            other => {
                return Err(internal_datafusion_err!(
                    "time_bucket: unexpected argument type {other} after coercion"
                ))
            }
        };
        crate::pg_types::result_value(out, all_scalar)
    }

    /// Non-decreasing in `ts` when every other argument is a constant (and,
    /// for the time zone form, the zone has a fixed offset; an offset with a
    /// month part is not monotonic either).
    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        if monotonic_in_ts(inputs) {
            Ok(inputs[1].sort_properties)
        } else {
            Ok(SortProperties::Unordered)
        }
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        Ok(monotonic_in_ts(inputs))
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: OnceLock<Documentation> = OnceLock::new();
        Some(DOC.get_or_init(|| {
            Documentation::builder(
                DOC_SECTION_DATETIME,
                "Truncates a time value to the start of its bucket of the given width \
                 (TimescaleDB semantics: default origin 2000-01-03, month buckets start on \
                 the first of a month).",
                "time_bucket(bucket_width, ts[, offset | origin | timezone[, origin[, offset]]])",
            )
            .with_sql_example(
                "SELECT time_bucket('15 minutes', time) AS bucket, avg(v) FROM t GROUP BY bucket",
            )
            .with_argument(
                "bucket_width",
                "Interval (or integer for integer time) width of the buckets.",
            )
            .with_argument(
                "ts",
                "timestamptz, timestamp, date or integer value to bucket.",
            )
            .with_argument(
                "offset",
                "Interval (or integer) by which the buckets are shifted.",
            )
            .with_argument("origin", "A bucket boundary replacing the default origin.")
            .with_argument(
                "timezone",
                "Time zone in which timestamptz values are bucketed.",
            )
            .build()
        }))
    }
}

// ---------------------------------------------------------------------------
// Type coercion and resolution
// ---------------------------------------------------------------------------

fn mdn() -> DataType {
    DataType::Interval(IntervalUnit::MonthDayNano)
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_integer(t: &DataType) -> bool {
    t.is_integer()
}

/// Can this argument become an interval width or offset?
fn interval_like(t: &DataType) -> bool {
    matches!(t, DataType::Interval(_) | DataType::Null)
        || is_string(t)
        || (matches!(t, DataType::Duration(_)) && can_cast_types(t, &mdn()))
}

/// Can this argument become an origin of the `ts` type?
fn origin_like(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 | DataType::Null
    ) || is_string(t)
}

/// The type `ts` is evaluated as, or `None` when no form takes it.
fn coerce_ts(ts: &DataType, width: &DataType) -> Option<DataType> {
    Some(match ts {
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        DataType::Date32 | DataType::Date64 => DataType::Date32,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => DataType::Int16,
        DataType::Int32 | DataType::UInt16 => DataType::Int32,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        // An untyped `ts` takes an integer width's type, as PostgreSQL
        // resolves `time_bucket(10, '27')` to the integer overload.
        t if (t == &DataType::Null || is_string(t)) && is_integer(width) => {
            coerce_ts(width, width)?
        }
        DataType::Null => DataType::Timestamp(TimeUnit::Microsecond, Some(DEFAULT_TZ.into())),
        t if is_string(t) => DataType::Timestamp(TimeUnit::Microsecond, Some(DEFAULT_TZ.into())),
        _ => return None,
    })
}

fn coerce_args(types: &[DataType]) -> Vec<DataType> {
    let mut out = types.to_vec();
    if !(2..=5).contains(&types.len()) {
        return out;
    }
    let Some(ts) = coerce_ts(&types[1], &types[0]) else {
        return out;
    };
    out[1] = ts.clone();
    match &ts {
        DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            for i in [0, 2] {
                if let Some(t) = types.get(i) {
                    if is_integer(t) || is_string(t) || t == &DataType::Null {
                        out[i] = ts.clone();
                    }
                }
            }
        }
        _ => {
            if interval_like(&types[0]) {
                out[0] = mdn();
            }
            let zone_form = matches!(ts, DataType::Timestamp(_, Some(_)))
                && types.get(2).is_some_and(is_string);
            if zone_form {
                out[2] = DataType::Utf8;
                if let Some(t) = types.get(3) {
                    if origin_like(t) {
                        out[3] = ts.clone();
                    }
                }
                if let Some(t) = types.get(4) {
                    if interval_like(t) {
                        out[4] = mdn();
                    }
                }
            } else if let Some(t) = types.get(2) {
                if matches!(t, DataType::Interval(_) | DataType::Null)
                    || (matches!(t, DataType::Duration(_)) && interval_like(t))
                {
                    out[2] = mdn();
                } else if origin_like(t) {
                    out[2] = ts.clone();
                }
            }
        }
    }
    out
}

fn resolve_return_type(types: &[DataType]) -> Result<DataType> {
    let ok = match types {
        [w, ts, rest @ ..] => match ts {
            DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                w == ts && rest.len() <= 1 && rest.iter().all(|t| t == ts)
            }
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                *w == mdn()
                    && match rest {
                        [] => true,
                        [x] => *x == mdn() || x == ts || (tz.is_some() && *x == DataType::Utf8),
                        [zone, more @ ..] => {
                            tz.is_some()
                                && *zone == DataType::Utf8
                                && more.len() <= 2
                                && more.first().is_none_or(|o| o == ts)
                                && more.get(1).is_none_or(|o| *o == mdn())
                        }
                    }
            }
            DataType::Date32 => {
                *w == mdn()
                    && match rest {
                        [] => true,
                        [x] => *x == mdn() || *x == DataType::Date32,
                        _ => false,
                    }
            }
            _ => false,
        },
        _ => false,
    };
    if ok {
        Ok(types[1].clone())
    } else {
        let names: Vec<&str> = types.iter().map(pg_type_name).collect();
        Err(TemporaError::new(
            SqlState::UNDEFINED_FUNCTION,
            format!("function time_bucket({}) does not exist", names.join(", ")),
        )
        .with_hint(
            "No function matches the given name and argument types. \
             You might need to add explicit type casts.",
        )
        .into_datafusion())
    }
}

// ---------------------------------------------------------------------------
// Ordering
// ---------------------------------------------------------------------------

fn monotonic_in_ts(inputs: &[ExprProperties]) -> bool {
    if inputs.len() < 2 || inputs[0].sort_properties != SortProperties::Singleton {
        return false;
    }
    inputs[2..].iter().all(|p| {
        p.sort_properties == SortProperties::Singleton
            && match p.range.lower() {
                // The time zone of the zone form: only fixed offsets keep the order.
                ScalarValue::Utf8(z) | ScalarValue::LargeUtf8(z) | ScalarValue::Utf8View(z) => z
                    .as_deref()
                    .is_some_and(|z| PgTimeZone::parse_argument(z).is_ok_and(|z| z.is_fixed())),
                // Subtracting and re-adding months clamps days: not monotonic.
                ScalarValue::IntervalMonthDayNano(v) => v.is_some_and(|v| v.months == 0),
                ScalarValue::IntervalYearMonth(v) => v == &Some(0),
                _ => true,
            }
    })
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

fn tempora(code: SqlState, msg: &str) -> DataFusionError {
    TemporaError::new(code, msg).into_datafusion()
}

fn period_error() -> DataFusionError {
    tempora(
        SqlState::INVALID_PARAMETER_VALUE,
        "period must be greater than 0",
    )
}

/// Overflow of the bucketing arithmetic itself (TimescaleDB uses 22003).
fn bucket_range_error() -> DataFusionError {
    tempora(
        SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
        "timestamp out of range",
    )
}

/// Overflow of timestamp +/- interval arithmetic (PostgreSQL uses 22008).
fn timestamp_range_error() -> DataFusionError {
    tempora(SqlState::DATETIME_FIELD_OVERFLOW, "timestamp out of range")
}

fn date_range_error() -> DataFusionError {
    tempora(SqlState::DATETIME_FIELD_OVERFLOW, "date out of range")
}

// ---------------------------------------------------------------------------
// Argument access
// ---------------------------------------------------------------------------

/// A primitive argument, constant or one value per row.
enum Prim<T: ArrowPrimitiveType> {
    Scalar(Option<T::Native>),
    Array(PrimitiveArray<T>),
}

impl<T: ArrowPrimitiveType> Prim<T> {
    fn new(value: &ColumnarValue) -> Result<Self> {
        let wrong_type = |t: &DataType| {
            internal_datafusion_err!("time_bucket: expected {} argument, got {t}", T::DATA_TYPE)
        };
        match value {
            ColumnarValue::Scalar(s) => {
                if s.is_null() {
                    return Ok(Prim::Scalar(None));
                }
                let array = s.to_array_of_size(1)?;
                let p = array
                    .as_primitive_opt::<T>()
                    .ok_or_else(|| wrong_type(array.data_type()))?;
                Ok(Prim::Scalar(Some(p.value(0))))
            }
            ColumnarValue::Array(a) if a.data_type() == &DataType::Null => Ok(Prim::Scalar(None)),
            ColumnarValue::Array(a) => Ok(Prim::Array(
                a.as_primitive_opt::<T>()
                    .ok_or_else(|| wrong_type(a.data_type()))?
                    .clone(),
            )),
        }
    }

    #[inline]
    fn get(&self, i: usize) -> Option<T::Native> {
        match self {
            Prim::Scalar(v) => *v,
            Prim::Array(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// A text argument (the time zone), constant or one value per row.
enum Text {
    Scalar(Option<String>),
    Array(StringArray),
}

impl Text {
    fn new(value: &ColumnarValue) -> Result<Self> {
        match value {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v),
            ) => Ok(Text::Scalar(v.clone())),
            ColumnarValue::Scalar(s) if s.is_null() => Ok(Text::Scalar(None)),
            ColumnarValue::Array(a) => {
                let a = cast(a, &DataType::Utf8)?;
                Ok(Text::Array(a.as_string::<i32>().clone()))
            }
            ColumnarValue::Scalar(s) => Err(internal_datafusion_err!(
                "time_bucket: expected a text time zone, got {}",
                s.data_type()
            )),
        }
    }

    fn get(&self, i: usize) -> Option<&str> {
        match self {
            Text::Scalar(v) => v.as_deref(),
            Text::Array(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

// ---------------------------------------------------------------------------
// Calendar helpers (proleptic Gregorian, days since 1970-01-01)
// ---------------------------------------------------------------------------

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.rem_euclid(4) == 0
            && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0) =>
        {
            29
        }
        2 => 28,
        _ => 31,
    }
}

/// `year * 12 + month - 1` of a day count.
fn month_index_of_days(days: i64) -> i64 {
    let (year, month, _) = civil_from_days(days);
    year * 12 + month - 1
}

fn month_index_of_usecs(ts: i64) -> i64 {
    month_index_of_days(ts.div_euclid(USECS_PER_DAY))
}

/// Day count of the first day of a month index.
fn month_start_days(month_index: i64) -> i64 {
    days_from_civil(
        month_index.div_euclid(12),
        month_index.rem_euclid(12) + 1,
        1,
    )
}

fn days_to_usecs(days: i64) -> Result<i64> {
    days.checked_mul(USECS_PER_DAY)
        .ok_or_else(timestamp_range_error)
}

fn usecs_to_date(ts: i64) -> Result<i32> {
    i32::try_from(ts.div_euclid(USECS_PER_DAY)).map_err(|_| date_range_error())
}

/// `ts + interval` (or `ts - interval`) as PostgreSQL computes it for a
/// timestamp: months first (clamping the day to the month's length), then
/// days, then the time part. Nanoseconds below a microsecond are dropped.
fn add_interval(ts: i64, iv: IntervalMonthDayNano, subtract: bool) -> Result<i64> {
    let sign = if subtract { -1 } else { 1 };
    let months = sign * i64::from(iv.months);
    let days = sign * i64::from(iv.days);
    let usecs = sign * (iv.nanoseconds / 1000);
    let mut t = ts;
    if months != 0 {
        let day = t.div_euclid(USECS_PER_DAY);
        let time_of_day = t.rem_euclid(USECS_PER_DAY);
        let (y, m, d) = civil_from_days(day);
        let index = y * 12 + m - 1 + months;
        let (ny, nm) = (index.div_euclid(12), index.rem_euclid(12) + 1);
        let nd = d.min(days_in_month(ny, nm));
        t = days_to_usecs(days_from_civil(ny, nm, nd))?
            .checked_add(time_of_day)
            .ok_or_else(timestamp_range_error)?;
    }
    days.checked_mul(USECS_PER_DAY)
        .and_then(|d| t.checked_add(d))
        .and_then(|t| t.checked_add(usecs))
        .ok_or_else(timestamp_range_error)
}

// ---------------------------------------------------------------------------
// Bucketing kernels
// ---------------------------------------------------------------------------

/// A validated bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    /// Days and time, in microseconds (> 0).
    Micros(i64),
    /// Whole months (> 0).
    Months(i64),
}

fn parse_width(iv: IntervalMonthDayNano, for_date: bool) -> Result<Width> {
    if iv.months != 0 {
        if iv.days != 0 || iv.nanoseconds != 0 {
            return Err(tempora(
                MIXED_MONTH_CODE,
                "month intervals cannot have day or time component",
            ));
        }
        if iv.months < 0 {
            return Err(period_error());
        }
        return Ok(Width::Months(i64::from(iv.months)));
    }
    let period = i64::from(iv.days)
        .checked_mul(USECS_PER_DAY)
        .and_then(|d| d.checked_add(iv.nanoseconds / 1000))
        .ok_or_else(|| tempora(SqlState::DATETIME_FIELD_OVERFLOW, "interval out of range"))?;
    if period <= 0 {
        return Err(period_error());
    }
    if for_date {
        if period < USECS_PER_DAY {
            return Err(tempora(
                SqlState::FEATURE_NOT_SUPPORTED,
                "interval must not have sub-day precision",
            ));
        }
        if period % USECS_PER_DAY != 0 {
            return Err(tempora(
                SqlState::FEATURE_NOT_SUPPORTED,
                "interval must be a multiple of a day",
            ));
        }
    }
    Ok(Width::Micros(period))
}

/// Start of the bucket of width `w` holding `t`, with boundaries at
/// `shift + k * w` (`0 <= shift < w`).
#[inline]
fn bucket_shifted(t: i64, w: i64, shift: i64) -> Option<i64> {
    t.checked_sub(shift)?
        .div_euclid(w)
        .checked_mul(w)?
        .checked_add(shift)
}

fn is_infinite_ts(t: i64) -> bool {
    t == i64::MIN || t == i64::MAX
}

fn is_infinite_date(d: i32) -> bool {
    d == i32::MIN || d == i32::MAX
}

/// Month bucketing: `ts_month` and `origin_month` are month indexes.
fn bucket_month_index(ts_month: i64, n: i64, origin_month: i64) -> i64 {
    origin_month + (ts_month - origin_month).div_euclid(n) * n
}

/// One timestamp (microseconds; UTC for timestamptz).
fn bucket_timestamp(
    width: Width,
    ts: i64,
    origin: Option<i64>,
    offset: Option<IntervalMonthDayNano>,
) -> Result<i64> {
    if is_infinite_ts(ts) {
        return Ok(ts);
    }
    let t = match offset {
        Some(o) => add_interval(ts, o, true)?,
        None => ts,
    };
    let bucket = match width {
        Width::Micros(w) => {
            let origin = origin.unwrap_or(DEFAULT_ORIGIN_USECS);
            bucket_shifted(t, w, origin.rem_euclid(w)).ok_or_else(bucket_range_error)?
        }
        Width::Months(n) => {
            let origin = origin.map_or(DEFAULT_ORIGIN_MONTH, month_index_of_usecs);
            let index = bucket_month_index(month_index_of_usecs(t), n, origin);
            days_to_usecs(month_start_days(index))?
        }
    };
    match offset {
        Some(o) => add_interval(bucket, o, false),
        None => Ok(bucket),
    }
}

/// One date (days since 1970-01-01); `width` was validated for dates.
fn bucket_date(
    width: Width,
    date: i32,
    origin: Option<i32>,
    offset: Option<IntervalMonthDayNano>,
) -> Result<i32> {
    if is_infinite_date(date) {
        return Ok(date);
    }
    if let Some(off) = offset {
        // date - offset is a timestamp, truncated back to a date; the bucket
        // (default origin) + offset likewise.
        let shifted = usecs_to_date(add_interval(days_to_usecs(date.into())?, off, true)?)?;
        let bucket = bucket_date(width, shifted, None, None)?;
        return usecs_to_date(add_interval(days_to_usecs(bucket.into())?, off, false)?);
    }
    let d = i64::from(date);
    let bucket = match width {
        Width::Micros(w) => {
            let w = w / USECS_PER_DAY;
            let origin = origin.map_or(DEFAULT_ORIGIN_DAYS, i64::from);
            let shift = origin.rem_euclid(w);
            (d - shift).div_euclid(w) * w + shift
        }
        Width::Months(n) => {
            let origin = origin.map_or(DEFAULT_ORIGIN_MONTH, |o| month_index_of_days(o.into()));
            month_start_days(bucket_month_index(month_index_of_days(d), n, origin))
        }
    };
    i32::try_from(bucket).map_err(|_| date_range_error())
}

/// Integer bucketing: `floor((ts - offset) / width) * width + offset`, with the
/// offset reduced modulo the width and the bounds of the integer type checked.
fn bucket_int(width: i64, ts: i64, offset: i64, min: i64, max: i64) -> Result<i64> {
    if width <= 0 {
        return Err(period_error());
    }
    let offset = offset % width;
    if (offset > 0 && ts < min + offset) || (offset < 0 && ts > max + offset) {
        return Err(bucket_range_error());
    }
    let t = ts - offset;
    t.div_euclid(width)
        .checked_mul(width)
        .filter(|bucket| *bucket >= min)
        .and_then(|bucket| bucket.checked_add(offset))
        .filter(|result| (min..=max).contains(result))
        .ok_or_else(bucket_range_error)
}

/// Whether any row would actually be bucketed (strict functions skip NULLs,
/// and infinities are returned before the width is checked).
fn any_finite_ts(a: &PrimitiveArray<TimestampMicrosecondType>) -> bool {
    a.iter().any(|v| v.is_some_and(|t| !is_infinite_ts(t)))
}

fn any_finite_date(a: &PrimitiveArray<Date32Type>) -> bool {
    a.iter().any(|v| v.is_some_and(|d| !is_infinite_date(d)))
}

/// Third argument of the timestamp and date forms.
enum Extra<T: ArrowPrimitiveType> {
    None,
    Offset(Prim<IntervalMonthDayNanoType>),
    Origin(Prim<T>),
}

impl<T: ArrowPrimitiveType> Extra<T> {
    fn new(args: &[ColumnarValue]) -> Result<Self> {
        match args.get(2) {
            None => Ok(Extra::None),
            Some(a) if a.data_type() == mdn() => Ok(Extra::Offset(Prim::new(a)?)),
            Some(a) => Ok(Extra::Origin(Prim::new(a)?)),
        }
    }
}

fn timestamp_bucket(
    args: &[ColumnarValue],
    len: usize,
) -> Result<PrimitiveArray<TimestampMicrosecondType>> {
    let width = Prim::<IntervalMonthDayNanoType>::new(&args[0])?;
    let ts = Prim::<TimestampMicrosecondType>::new(&args[1])?;
    if args.len() >= 3 && is_string(&args[2].data_type()) {
        return zone_bucket(args, len, width, ts);
    }
    let extra = Extra::<TimestampMicrosecondType>::new(args)?;

    // Fast path: constant width, a column of timestamps and at most a constant
    // origin or a constant month-free offset (which is just a moved origin).
    if let (Prim::Scalar(w), Prim::Array(values)) = (&width, &ts) {
        let Some(w) = w else {
            return Ok(PrimitiveArray::new_null(len));
        };
        let width = match parse_width(*w, false) {
            Ok(width) => width,
            Err(e) if any_finite_ts(values) => return Err(e),
            Err(_) => return Ok(values.clone()),
        };
        if let Width::Micros(w) = width {
            let origin = match &extra {
                Extra::None => Some(Some(DEFAULT_ORIGIN_USECS)),
                Extra::Origin(Prim::Scalar(o)) => Some(*o),
                Extra::Offset(Prim::Scalar(None)) => Some(None),
                Extra::Offset(Prim::Scalar(Some(o))) if o.months == 0 => {
                    Some(Some(add_interval(DEFAULT_ORIGIN_USECS, *o, false)?))
                }
                _ => None,
            };
            match origin {
                Some(None) => return Ok(PrimitiveArray::new_null(len)),
                Some(Some(origin)) => {
                    let shift = origin.rem_euclid(w);
                    return values.try_unary(|t| {
                        if is_infinite_ts(t) {
                            Ok(t)
                        } else {
                            bucket_shifted(t, w, shift).ok_or_else(bucket_range_error)
                        }
                    });
                }
                None => {}
            }
        }
    }

    let mut out = PrimitiveBuilder::<TimestampMicrosecondType>::with_capacity(len);
    for i in 0..len {
        let (Some(w), Some(t)) = (width.get(i), ts.get(i)) else {
            out.append_null();
            continue;
        };
        let (origin, offset) = match &extra {
            Extra::None => (None, None),
            Extra::Origin(p) => match p.get(i) {
                Some(o) => (Some(o), None),
                None => {
                    out.append_null();
                    continue;
                }
            },
            Extra::Offset(p) => match p.get(i) {
                Some(o) => (None, Some(o)),
                None => {
                    out.append_null();
                    continue;
                }
            },
        };
        if is_infinite_ts(t) {
            out.append_value(t);
            continue;
        }
        let width = parse_width(w, false)?;
        out.append_value(bucket_timestamp(width, t, origin, offset)?);
    }
    Ok(out.finish())
}

fn date_bucket(args: &[ColumnarValue], len: usize) -> Result<PrimitiveArray<Date32Type>> {
    let width = Prim::<IntervalMonthDayNanoType>::new(&args[0])?;
    let dates = Prim::<Date32Type>::new(&args[1])?;
    let extra = Extra::<Date32Type>::new(args)?;

    if let (Prim::Scalar(w), Prim::Array(values)) = (&width, &dates) {
        let Some(w) = w else {
            return Ok(PrimitiveArray::new_null(len));
        };
        let width = match parse_width(*w, true) {
            Ok(width) => width,
            Err(e) if any_finite_date(values) => return Err(e),
            Err(_) => return Ok(values.clone()),
        };
        if let Width::Micros(w) = width {
            let origin = match &extra {
                Extra::None => Some(Some(DEFAULT_ORIGIN_DAYS)),
                Extra::Origin(Prim::Scalar(o)) => Some(o.map(i64::from)),
                _ => None,
            };
            match origin {
                Some(None) => return Ok(PrimitiveArray::new_null(len)),
                Some(Some(origin)) => {
                    let w = w / USECS_PER_DAY;
                    let shift = origin.rem_euclid(w);
                    return values.try_unary(|d| {
                        if is_infinite_date(d) {
                            return Ok(d);
                        }
                        let b = (i64::from(d) - shift).div_euclid(w) * w + shift;
                        i32::try_from(b).map_err(|_| date_range_error())
                    });
                }
                None => {}
            }
        }
    }

    let mut out = PrimitiveBuilder::<Date32Type>::with_capacity(len);
    for i in 0..len {
        let (Some(w), Some(d)) = (width.get(i), dates.get(i)) else {
            out.append_null();
            continue;
        };
        let (origin, offset) = match &extra {
            Extra::None => (None, None),
            Extra::Origin(p) => match p.get(i) {
                Some(o) => (Some(o), None),
                None => {
                    out.append_null();
                    continue;
                }
            },
            Extra::Offset(p) => match p.get(i) {
                Some(o) => (None, Some(o)),
                None => {
                    out.append_null();
                    continue;
                }
            },
        };
        if is_infinite_date(d) {
            out.append_value(d);
            continue;
        }
        let width = parse_width(w, true)?;
        out.append_value(bucket_date(width, d, origin, offset)?);
    }
    Ok(out.finish())
}

fn int_bucket<T>(args: &[ColumnarValue], len: usize) -> Result<PrimitiveArray<T>>
where
    T: ArrowPrimitiveType,
    T::Native: Into<i64> + TryFrom<i64>,
{
    let (min, max) = match T::DATA_TYPE {
        DataType::Int16 => (i64::from(i16::MIN), i64::from(i16::MAX)),
        DataType::Int32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
        _ => (i64::MIN, i64::MAX),
    };
    let width = Prim::<T>::new(&args[0])?;
    let ts = Prim::<T>::new(&args[1])?;
    let offset = args.get(2).map(Prim::<T>::new).transpose()?;
    let mut out = PrimitiveBuilder::<T>::with_capacity(len);
    for i in 0..len {
        let (Some(w), Some(t)) = (width.get(i), ts.get(i)) else {
            out.append_null();
            continue;
        };
        let off = match &offset {
            None => 0,
            Some(p) => match p.get(i) {
                Some(o) => o.into(),
                None => {
                    out.append_null();
                    continue;
                }
            },
        };
        let bucket = bucket_int(w.into(), t.into(), off, min, max)?;
        out.append_value(T::Native::try_from(bucket).map_err(|_| bucket_range_error())?);
    }
    Ok(out.finish())
}

// ---------------------------------------------------------------------------
// Time zone form
// ---------------------------------------------------------------------------

/// A zone argument as PostgreSQL resolves a name given to `AT TIME ZONE`
/// (abbreviations, zone names, POSIX zones).
fn parse_zone(name: &str) -> Result<PgTimeZone> {
    PgTimeZone::parse_argument(name).map_err(TemporaError::into_datafusion)
}

/// The local (wall clock) timestamp of a UTC instant in `zone`.
fn utc_to_local(zone: &PgTimeZone, ts: i64) -> Result<i64> {
    zone.utc_to_local(ts).ok_or_else(timestamp_range_error)
}

/// The UTC instant of a local timestamp in `zone`, read as PostgreSQL reads
/// one (a skipped time with the offset before the jump, a repeated time as
/// the later instant).
fn local_to_utc(zone: &PgTimeZone, local: i64) -> Result<i64> {
    zone.local_to_utc(local).ok_or_else(timestamp_range_error)
}

/// `time_bucket(width, ts timestamptz, zone text [, origin [, offset]])`:
/// bucket the wall-clock time in `zone` and convert the bucket back.
fn zone_bucket(
    args: &[ColumnarValue],
    len: usize,
    width: Prim<IntervalMonthDayNanoType>,
    ts: Prim<TimestampMicrosecondType>,
) -> Result<PrimitiveArray<TimestampMicrosecondType>> {
    let zones = Text::new(&args[2])?;
    let origin = args
        .get(3)
        .map(Prim::<TimestampMicrosecondType>::new)
        .transpose()?;
    let offset = args
        .get(4)
        .map(Prim::<IntervalMonthDayNanoType>::new)
        .transpose()?;
    let mut last_zone: Option<(String, PgTimeZone)> = None;
    let mut out = PrimitiveBuilder::<TimestampMicrosecondType>::with_capacity(len);
    for i in 0..len {
        let (Some(w), Some(t), Some(name)) = (width.get(i), ts.get(i), zones.get(i)) else {
            out.append_null();
            continue;
        };
        if is_infinite_ts(t) {
            out.append_value(t);
            continue;
        }
        let width = parse_width(w, false)?;
        if last_zone.as_ref().is_none_or(|(n, _)| n != name) {
            last_zone = Some((name.to_string(), parse_zone(name)?));
        }
        let Some((_, zone)) = &last_zone else {
            continue;
        };
        let local = utc_to_local(zone, t)?;
        let origin = origin
            .as_ref()
            .and_then(|o| o.get(i))
            .map(|o| utc_to_local(zone, o))
            .transpose()?;
        let offset = offset.as_ref().and_then(|o| o.get(i));
        let bucket = bucket_timestamp(width, local, origin, offset)?;
        out.append_value(local_to_utc(zone, bucket)?);
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, RecordBatch, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::display::array_value_to_string;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{col, SessionConfig, SessionContext};

    fn ctx() -> SessionContext {
        let config = SessionConfig::new().set_str("datafusion.execution.time_zone", "UTC");
        let ctx = SessionContext::new_with_config(config);
        ctx.register_udf(time_bucket_udf());
        ctx
    }

    async fn run(sql: &str) -> Result<Vec<RecordBatch>> {
        ctx().sql(sql).await?.collect().await
    }

    /// All values of the first column, as Arrow displays them.
    async fn column(sql: &str) -> Vec<String> {
        let batches = run(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let mut out = vec![];
        for b in &batches {
            for i in 0..b.num_rows() {
                out.push(array_value_to_string(b.column(0), i).unwrap());
            }
        }
        out
    }

    async fn one(sql: &str) -> String {
        let values = column(sql).await;
        assert_eq!(values.len(), 1, "{sql}");
        values.into_iter().next().unwrap()
    }

    async fn error(sql: &str) -> TemporaError {
        match run(sql).await {
            Ok(_) => panic!("{sql} should fail"),
            Err(e) => TemporaError::from_datafusion(e),
        }
    }

    #[tokio::test]
    async fn timestamptz_sub_month() {
        let cases = [
            (
                "'15 minutes', '2024-01-01 00:07:05+00'::timestamptz",
                "2024-01-01T00:00:00Z",
            ),
            (
                "'1 week', '2024-01-10 12:00:00+00'::timestamptz",
                "2024-01-08T00:00:00Z",
            ),
            // 2024-01-01 is 8764 (even) days after the origin 2000-01-03.
            (
                "'2 days', '2024-01-01 00:00:00+00'::timestamptz",
                "2024-01-01T00:00:00Z",
            ),
            (
                "'2 days', '2024-01-02 13:00:00+00'::timestamptz",
                "2024-01-01T00:00:00Z",
            ),
            (
                "'1 hour', '2024-01-01 05:59:59.999999+00'::timestamptz",
                "2024-01-01T05:00:00Z",
            ),
            (
                "INTERVAL '90 seconds', '2024-01-01 00:02:00+00'::timestamptz",
                "2024-01-01T00:01:30Z",
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(
                one(&format!("SELECT time_bucket({args})")).await,
                expected,
                "{args}"
            );
        }
    }

    #[tokio::test]
    async fn ten_hours_from_the_2000_01_03_origin() {
        let ts = days_from_civil(2024, 1, 1) * USECS_PER_DAY + 5 * 3_600_000_000;
        let w = 10 * 3_600_000_000;
        let expected = DEFAULT_ORIGIN_USECS + (ts - DEFAULT_ORIGIN_USECS).div_euclid(w) * w;
        let batches = run("SELECT time_bucket('10 hours', '2024-01-01 05:00:00+00'::timestamptz)")
            .await
            .unwrap();
        let a = batches[0]
            .column(0)
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(a.value(0), expected);
        // 210341 hours after the origin: the bucket starts at 04:00.
        assert_eq!(
            array_value_to_string(batches[0].column(0), 0).unwrap(),
            "2024-01-01T04:00:00Z"
        );
        assert_eq!(
            a.data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }

    #[tokio::test]
    async fn months_and_years() {
        let cases = [
            (
                "'1 month', '2024-02-15 10:00:00+00'::timestamptz",
                "2024-02-01T00:00:00Z",
            ),
            ("'3 months', '2024-05-15'::timestamp", "2024-04-01T00:00:00"),
            ("'1 year', '2024-05-15'::timestamp", "2024-01-01T00:00:00"),
            ("'3 months', '2024-05-15'::date", "2024-04-01"),
            ("'1 year', '1999-05-15'::date", "1999-01-01"),
            (
                "'5 months', '1999-12-31 23:59:00'::timestamp",
                "1999-08-01T00:00:00",
            ),
            // Origin: only its year and month matter.
            (
                "'1 month', '2024-02-15'::date, '2000-01-15'::date",
                "2024-02-01",
            ),
            (
                "'2 months', '2024-02-15'::date, '2000-02-20'::date",
                "2024-02-01",
            ),
            (
                "'2 months', '2024-03-15'::date, '2000-02-20'::date",
                "2024-02-01",
            ),
            // Offset: buckets start on the 2nd.
            (
                "'1 month', '2024-03-01 12:00:00'::timestamp, INTERVAL '1 day'",
                "2024-02-02T00:00:00",
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(
                one(&format!("SELECT time_bucket({args})")).await,
                expected,
                "{args}"
            );
        }
    }

    #[tokio::test]
    async fn timestamp_and_date() {
        let cases = [
            (
                "'1 day', '1999-12-31 10:00:00'::timestamp",
                "1999-12-31T00:00:00",
            ),
            (
                "'1 week', '1970-01-01 00:00:00'::timestamp",
                "1969-12-29T00:00:00",
            ),
            ("'1 day', '2024-03-05'::date", "2024-03-05"),
            ("'1 week', '2024-03-06'::date", "2024-03-04"),
            (
                "'1 week', '2024-03-06'::date, '2024-03-06'::date",
                "2024-03-06",
            ),
            (
                "'1 week', '2024-03-05'::date, '2024-03-06'::date",
                "2024-02-28",
            ),
            (
                "'1 day', '2024-03-05'::date, INTERVAL '12 hours'",
                "2024-03-04",
            ),
            (
                "'1 hour', '2024-01-01 10:30:00'::timestamp, '2000-01-01 00:15:00'::timestamp",
                "2024-01-01T10:15:00",
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(
                one(&format!("SELECT time_bucket({args})")).await,
                expected,
                "{args}"
            );
        }
    }

    #[tokio::test]
    async fn offset_and_origin() {
        let cases = [
            (
                "'15 minutes', '2024-01-01 00:03:00'::timestamp, INTERVAL '5 minutes'",
                "2023-12-31T23:50:00",
            ),
            (
                "'15 minutes', '2024-01-01 00:07:00'::timestamp, INTERVAL '5 minutes'",
                "2024-01-01T00:05:00",
            ),
            (
                "'15 minutes', '2024-01-01 00:07:00+00'::timestamptz, INTERVAL '5 minutes'",
                "2024-01-01T00:05:00Z",
            ),
            (
                "'15 minutes', '2024-01-01 00:03:00+00'::timestamptz, INTERVAL '-5 minutes'",
                "2023-12-31T23:55:00Z",
            ),
            (
                "'1 day', '2024-01-01 10:00:00+00'::timestamptz, '2024-01-01 12:00:00+00'::timestamptz",
                "2023-12-31T12:00:00Z",
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(
                one(&format!("SELECT time_bucket({args})")).await,
                expected,
                "{args}"
            );
        }
    }

    #[tokio::test]
    async fn integers() {
        assert_eq!(one("SELECT time_bucket(10, 23)").await, "20");
        assert_eq!(one("SELECT time_bucket(10, -3)").await, "-10");
        assert_eq!(one("SELECT time_bucket(10, -10)").await, "-10");
        assert_eq!(one("SELECT time_bucket(10, 23, 5)").await, "15");
        assert_eq!(one("SELECT time_bucket(10, 3, 5)").await, "-5");
        assert_eq!(one("SELECT time_bucket(10, 3, 25)").await, "-5");
        assert_eq!(
            one("SELECT arrow_typeof(time_bucket(10, CAST(23 AS INT)))").await,
            "Int32"
        );
        assert_eq!(
            one("SELECT time_bucket(5, CAST(-7 AS SMALLINT))").await,
            "-10"
        );
        let e = error("SELECT time_bucket(0, 5)").await;
        assert_eq!(e.code, SqlState::INVALID_PARAMETER_VALUE);
        assert_eq!(e.message, "period must be greater than 0");
        let e = error("SELECT time_bucket(10, CAST(-32765 AS SMALLINT))").await;
        assert_eq!(e.code, SqlState::NUMERIC_VALUE_OUT_OF_RANGE);
    }

    #[tokio::test]
    async fn nulls() {
        for sql in [
            "SELECT time_bucket(NULL, '2024-01-01 00:00:00+00'::timestamptz)",
            "SELECT time_bucket('1 hour', CAST(NULL AS TIMESTAMP))",
            "SELECT time_bucket('1 hour', '2024-01-01 00:00:00'::timestamp, CAST(NULL AS INTERVAL))",
            "SELECT time_bucket('1 hour', NULL)",
            "SELECT time_bucket(10, NULL)",
            "SELECT time_bucket(10, 5, NULL)",
            "SELECT time_bucket('1 day', '2024-01-01'::date, CAST(NULL AS DATE))",
            // Strict: an invalid width does not matter when ts is NULL.
            "SELECT time_bucket('0 hours', CAST(NULL AS TIMESTAMP))",
        ] {
            assert_eq!(one(sql).await, "", "{sql}");
        }
    }

    #[tokio::test]
    async fn errors() {
        for (sql, code, msg) in [
            (
                "SELECT time_bucket('0 minutes', '2024-01-01 00:00:00+00'::timestamptz)",
                SqlState::INVALID_PARAMETER_VALUE,
                "period must be greater than 0",
            ),
            (
                "SELECT time_bucket('-1 hour', '2024-01-01 00:00:00+00'::timestamptz)",
                SqlState::INVALID_PARAMETER_VALUE,
                "period must be greater than 0",
            ),
            (
                "SELECT time_bucket('-1 month', '2024-01-01 00:00:00'::timestamp)",
                SqlState::INVALID_PARAMETER_VALUE,
                "period must be greater than 0",
            ),
            (
                "SELECT time_bucket('1 month 2 days', '2024-01-01 00:00:00+00'::timestamptz)",
                SqlState::FEATURE_NOT_SUPPORTED,
                "month intervals cannot have day or time component",
            ),
            (
                "SELECT time_bucket('1 hour', '2024-01-01'::date)",
                SqlState::FEATURE_NOT_SUPPORTED,
                "interval must not have sub-day precision",
            ),
            (
                "SELECT time_bucket('36 hours', '2024-01-01'::date)",
                SqlState::FEATURE_NOT_SUPPORTED,
                "interval must be a multiple of a day",
            ),
            (
                "SELECT time_bucket('1 hour', '2024-01-01 00:00:00+00'::timestamptz, 'Mars/Base')",
                SqlState::INVALID_PARAMETER_VALUE,
                "time zone \"Mars/Base\" not recognized",
            ),
            (
                "SELECT time_bucket(INTERVAL '1 hour', 5)",
                SqlState::UNDEFINED_FUNCTION,
                "function time_bucket(interval, bigint) does not exist",
            ),
            (
                "SELECT time_bucket(10, '2024-01-01 00:00:00'::timestamp)",
                SqlState::UNDEFINED_FUNCTION,
                "function time_bucket(bigint, timestamp without time zone) does not exist",
            ),
        ] {
            let e = error(sql).await;
            assert_eq!((e.code, e.message.as_str()), (code, msg), "{sql}");
        }
    }

    #[tokio::test]
    async fn arrays() {
        let sql = "SELECT time_bucket('1 hour', t) FROM (VALUES \
                   ('2024-01-01 00:59:59+00'::timestamptz), (NULL), \
                   ('2024-01-01 01:00:00+00'::timestamptz), \
                   ('1999-12-31 23:30:00+00'::timestamptz)) v(t)";
        assert_eq!(
            column(sql).await,
            [
                "2024-01-01T00:00:00Z",
                "",
                "2024-01-01T01:00:00Z",
                "1999-12-31T23:00:00Z"
            ]
        );
        // Per-row widths, offsets and a month width on a column.
        let sql = "SELECT time_bucket(w, t, o) FROM (VALUES \
                   (INTERVAL '15 minutes', '2024-01-01 00:03:00'::timestamp, INTERVAL '5 minutes'), \
                   (INTERVAL '1 month', '2024-03-20 00:03:00'::timestamp, INTERVAL '0 minutes'), \
                   (INTERVAL '1 day', '2024-03-20 00:03:00'::timestamp, NULL)) v(w, t, o)";
        assert_eq!(
            column(sql).await,
            ["2023-12-31T23:50:00", "2024-03-01T00:00:00", ""]
        );
        let sql = "SELECT time_bucket('1 month', d) FROM (VALUES \
                   ('2024-01-31'::date), ('2023-12-01'::date), ('1900-02-28'::date)) v(d)";
        assert_eq!(
            column(sql).await,
            ["2024-01-01", "2023-12-01", "1900-02-01"]
        );
        let sql = "SELECT time_bucket('1 week', d) FROM (VALUES \
                   ('2024-03-06'::date), ('2024-03-03'::date)) v(d)";
        assert_eq!(column(sql).await, ["2024-03-04", "2024-02-26"]);
        let sql = "SELECT time_bucket(10, x) FROM (VALUES (23), (-3), (NULL)) v(x)";
        assert_eq!(column(sql).await, ["20", "-10", ""]);
    }

    #[tokio::test]
    async fn time_zone_form() {
        let cases = [
            // 14:00 CEST on 2024-03-31 is in the local day that began at 00:00 CET.
            ("'1 day', '2024-03-31 12:00:00+00'::timestamptz, 'Europe/Berlin'", "2024-03-30T23:00:00Z"),
            ("'1 day', '2024-03-31 12:00:00+00'::timestamptz, 'europe/berlin'", "2024-03-30T23:00:00Z"),
            // 02:00 does not exist that day; it is read with the earlier offset (+01).
            ("'2 hours', '2024-03-31 01:30:00+00'::timestamptz, 'Europe/Berlin'", "2024-03-31T01:00:00Z"),
            ("'1 month', '2024-03-31 23:30:00+00'::timestamptz, 'Europe/Berlin'", "2024-03-31T22:00:00Z"),
            ("'1 hour', '2024-01-01 10:30:00+00'::timestamptz, 'UTC'", "2024-01-01T10:00:00Z"),
            // POSIX sign: 'UTC+5' is five hours west of Greenwich.
            ("'1 day', '2024-01-01 03:00:00+00'::timestamptz, 'UTC+5'", "2023-12-31T05:00:00Z"),
            (
                "'1 day', '2024-01-01 10:00:00+00'::timestamptz, 'Europe/Berlin', '2024-01-01 11:00:00+00'::timestamptz",
                "2023-12-31T11:00:00Z",
            ),
            (
                "'1 day', '2024-01-01 10:00:00+00'::timestamptz, 'Europe/Berlin', NULL, INTERVAL '6 hours'",
                "2024-01-01T05:00:00Z",
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(
                one(&format!("SELECT time_bucket({args})")).await,
                expected,
                "{args}"
            );
        }
    }

    #[test]
    fn calendar_round_trip() {
        for days in (-800_000..800_000).step_by(37) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2000, 1, 3), DEFAULT_ORIGIN_DAYS);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
    }

    #[test]
    fn interval_arithmetic() {
        let iv = |months, days, nanoseconds| IntervalMonthDayNano {
            months,
            days,
            nanoseconds,
        };
        let jan31 = days_from_civil(2024, 1, 31) * USECS_PER_DAY + 3_600_000_000;
        let feb29 = days_from_civil(2024, 2, 29) * USECS_PER_DAY + 3_600_000_000;
        assert_eq!(add_interval(jan31, iv(1, 0, 0), false).unwrap(), feb29);
        assert_eq!(
            add_interval(feb29, iv(1, 0, 0), true).unwrap(),
            days_from_civil(2024, 1, 29) * USECS_PER_DAY + 3_600_000_000
        );
        assert_eq!(parse_zone("+05").unwrap().offset_at(0), -5 * 3600);
        assert_eq!(parse_zone("UTC-3:30").unwrap().offset_at(0), 12_600);
        assert!(parse_zone("Europe/Nowhere").is_err());
        assert!(bucket_int(10, i64::MIN + 5, 0, i64::MIN, i64::MAX).is_err());
        assert!(bucket_int(10, i64::MIN + 1, -5, i64::MIN, i64::MAX).is_err());
        assert_eq!(
            bucket_int(10, i64::MIN + 3, -5, i64::MIN, i64::MAX).unwrap(),
            i64::MIN + 3
        );
        assert_eq!(
            bucket_int(10, i64::MAX, 0, i64::MIN, i64::MAX).unwrap(),
            9223372036854775800
        );
    }

    #[tokio::test]
    async fn explain_streams_over_sorted_input() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("v", DataType::Int32, false),
        ]));
        let hour = 3_600_000_000i64;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(
                    TimestampMicrosecondArray::from(vec![0, hour / 2, hour, 3 * hour])
                        .with_timezone("UTC"),
                ),
                Arc::new(Int32Array::from(vec![1, 2, 3, 4])),
            ],
        )?;
        let table = MemTable::try_new(schema, vec![vec![batch]])?
            .with_sort_order(vec![vec![col("t").sort(true, false)]]);
        let ctx = ctx();
        ctx.register_table("sorted_memtable", Arc::new(table))?;
        let sql = "SELECT time_bucket('1 hour', t) b, count(*) FROM sorted_memtable GROUP BY b";
        let plan = ctx.sql(&format!("EXPLAIN {sql}")).await?.collect().await?;
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)?.to_string();
        assert!(text.contains("time_bucket"), "{text}");
        assert!(text.contains("ordering_mode=Sorted"), "{text}");
        let rows = ctx
            .sql(&format!("{sql} ORDER BY b"))
            .await?
            .collect()
            .await?;
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&rows)?.to_string();
        assert!(text.contains("1970-01-01T00:00:00Z | 2"), "{text}");
        assert!(text.contains("1970-01-01T03:00:00Z | 1"), "{text}");
        Ok(())
    }
}
