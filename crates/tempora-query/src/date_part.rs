//! `date_part(text, value)` and `EXTRACT(field FROM value)` as PostgreSQL
//! computes them: a timestamptz's fields are those of its wall time in the
//! session's TimeZone, read when the statement runs.
//!
//! ```text
//!   SET timezone = 'Europe/Berlin'
//!   extract(hour FROM timestamptz '2024-03-31 00:30+00')      1
//!   date_part('dow', timestamptz '2024-03-31 23:30+00')       1   (Monday in Berlin)
//!   extract(timezone FROM timestamptz '2024-07-01 00:00+00')  7200
//!   extract(epoch FROM t)                                     seconds since 1970-01-01 UTC, in any zone
//! ```
//!
//! Every field PostgreSQL has is here (`microseconds` ... `millennium`,
//! `dow`, `isodow`, `doy`, `week`, `isoyear`, `quarter`, `julian`, `epoch`,
//! `timezone`, `timezone_hour`, `timezone_minute`), with its unit spellings
//! and errors (22023 for a unit PostgreSQL does not know, 0A000 for one the
//! type has not: `timezone` of a timestamp without time zone). A timestamp
//! without time zone is its own wall time; infinities give NULL or
//! ±Infinity by field, as in PostgreSQL.
//!
//! `EXTRACT` is planned as the function `extract` (PostgreSQL 14's name for
//! it) by [`ExtractPlanner`], so that it, like PostgreSQL's, refuses the
//! time fields of a `date` (`date_part` reads a date as its midnight).
//! `date_part` returns double precision; `extract` returns numeric with
//! PostgreSQL's scale, exactly: 6 for `second` and `epoch` (`1.500000`), 3
//! for `milliseconds`, 20 for the `julian` of a timestamp, 0 for the rest
//! and for every field of a date. Intervals and times have PostgreSQL's
//! fields too (the `epoch` of an interval counts a year as 365.25 days and
//! a month as 30).
//!
//! Where PostgreSQL's numeric results differ from what a fixed scale can
//! hold, Tempora answers with an error or documents the difference:
//! the `epoch`, `year` and similar growing fields of an infinite timestamp
//! are numeric `Infinity` in PostgreSQL, which Tempora's numeric cannot
//! hold (0A000); the `julian` of a time in the first 100 seconds of a day
//! has more digits in PostgreSQL (its division keeps 16 significant
//! digits); a unit that is not a constant gives scale 6.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Builder, Float64Builder};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, DurationMicrosecondType, Field, FieldRef, IntervalMonthDayNanoType,
    IntervalUnit, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use tempora_common::{SqlState, TemporaError};

use crate::calendar::{
    days_from_civil, days_since_monday, field_unit, iso_year_week, unit_text, Unit, UnitToken,
    WallTime, ZoneOffsets, USECS_PER_DAY,
};
use crate::pg_types::pg_type_name;
use crate::variables::{SessionHandle, SessionVariables};
use crate::zone_casts::timestamp_out_of_range;

/// `date_part(text, value)` (alias `datepart`; replaces DataFusion's).
pub fn date_part_udf(variables: Arc<SessionVariables>) -> ScalarUDF {
    ScalarUDF::new_from_impl(DatePart {
        flavor: Flavor::DatePart,
        aliases: vec!["datepart".into()],
        signature: Signature::user_defined(Volatility::Stable),
        variables: SessionHandle(variables),
    })
}

/// `extract(text, value)`, what `EXTRACT(field FROM value)` becomes.
pub fn extract_udf(variables: Arc<SessionVariables>) -> ScalarUDF {
    ScalarUDF::new_from_impl(DatePart {
        flavor: Flavor::Extract,
        aliases: vec![],
        signature: Signature::user_defined(Volatility::Stable),
        variables: SessionHandle(variables),
    })
}

/// Plans `EXTRACT(field FROM value)` as a call of the `extract` function
/// (put before DataFusion's planners, which would call its own
/// `date_part`).
#[derive(Debug)]
pub struct ExtractPlanner {
    pub extract: Arc<ScalarUDF>,
}

impl ExprPlanner for ExtractPlanner {
    fn plan_extract(&self, mut args: Vec<Expr>) -> Result<PlannerResult<Vec<Expr>>> {
        // The SQL parser prints a quoted field with its quotes
        // (`EXTRACT('hour' FROM t)`).
        if let Some(Expr::Literal(ScalarValue::Utf8(Some(field)), _)) = args.first_mut() {
            for q in ['\'', '"'] {
                if let Some(inner) = field
                    .strip_prefix(q)
                    .and_then(|f| f.strip_suffix(q))
                    .filter(|_| field.len() >= 2)
                {
                    *field = inner.to_string();
                    break;
                }
            }
        }
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(self.extract.clone(), args),
        )))
    }
}

/// Which of PostgreSQL's two functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Flavor {
    /// `date_part`: a date is read as a timestamp (its midnight).
    DatePart,
    /// `extract`: a date has date fields only.
    Extract,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DatePart {
    flavor: Flavor,
    aliases: Vec<String>,
    signature: Signature,
    variables: SessionHandle,
}

/// PostgreSQL's 42883 for a call no overload takes.
pub(crate) fn no_such_function(name: &str, args: &[DataType]) -> DataFusionError {
    let names: Vec<&str> = args.iter().map(pg_type_name).collect();
    TemporaError::new(
        SqlState::UNDEFINED_FUNCTION,
        format!("function {name}({}) does not exist", names.join(", ")),
    )
    .with_hint(
        "No function matches the given name and argument types. You might need to add explicit type casts.",
    )
    .into_datafusion()
}

/// The unit argument's type: text.
pub(crate) fn text_type(t: &DataType) -> Option<DataType> {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
    .then_some(DataType::Utf8)
}

/// PostgreSQL's errors for a unit: 22023 when it does not know it, 0A000
/// when the type has no such field.
pub(crate) fn unit_error(lower: &str, known: bool, type_name: &str) -> DataFusionError {
    let (code, what) = if known {
        (SqlState::FEATURE_NOT_SUPPORTED, "supported")
    } else {
        (SqlState::INVALID_PARAMETER_VALUE, "recognized")
    };
    TemporaError::new(
        code,
        format!("unit \"{lower}\" not {what} for type {type_name}"),
    )
    .into_datafusion()
}

/// The unit argument of each row, read once per distinct text.
pub(crate) struct UnitColumn<T> {
    texts: ArrayRef,
    scalar: bool,
    read: fn(&str) -> T,
    last: Option<(usize, Arc<(String, T)>)>,
}

impl<T> UnitColumn<T> {
    pub(crate) fn new(arg: &ColumnarValue, rows: usize, read: fn(&str) -> T) -> Result<Self> {
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let texts = arg.to_array(if scalar { 1 } else { rows })?;
        let texts = datafusion::arrow::compute::cast(&texts, &DataType::Utf8)?;
        Ok(UnitColumn {
            texts,
            scalar,
            read,
            last: None,
        })
    }

    pub(crate) fn is_null(&self, i: usize) -> bool {
        self.texts.is_null(if self.scalar { 0 } else { i })
    }

    /// Row `i`'s unit, lower-cased, and what `read` made of it.
    pub(crate) fn at(&mut self, i: usize) -> Arc<(String, T)> {
        let i = if self.scalar { 0 } else { i };
        let texts = self.texts.as_string::<i32>();
        if let Some((row, unit)) = &self.last {
            if *row == i || texts.value(*row) == texts.value(i) {
                return unit.clone();
            }
        }
        let lower = unit_text(texts.value(i));
        let read = (self.read)(&lower);
        let unit = Arc::new((lower, read));
        self.last = Some((i, unit.clone()));
        unit
    }
}

/// What a value is to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    WithZone,
    WithoutZone,
    Date,
}

impl DatePart {
    fn type_name(&self, kind: ValueKind) -> &'static str {
        match (kind, self.flavor) {
            (ValueKind::WithZone, _) => "timestamp with time zone",
            (ValueKind::Date, Flavor::Extract) => "date",
            _ => "timestamp without time zone",
        }
    }

    /// The unit of a finite value, or PostgreSQL's error for it.
    fn checked_unit(&self, lower: &str, token: &UnitToken, kind: ValueKind) -> Result<Unit> {
        let unit = match token {
            UnitToken::Unit(u) => *u,
            UnitToken::Reserved => return Err(unit_error(lower, true, self.type_name(kind))),
            UnitToken::Unknown => return Err(unit_error(lower, false, self.type_name(kind))),
        };
        let zone_field = matches!(
            unit,
            Unit::Timezone | Unit::TimezoneHour | Unit::TimezoneMinute
        );
        let time_field = matches!(
            unit,
            Unit::Microseconds | Unit::Milliseconds | Unit::Second | Unit::Minute | Unit::Hour
        );
        let supported = match kind {
            ValueKind::WithZone => true,
            ValueKind::WithoutZone => !zone_field,
            ValueKind::Date => !zone_field && (self.flavor == Flavor::DatePart || !time_field),
        };
        if supported {
            Ok(unit)
        } else {
            Err(unit_error(lower, true, self.type_name(kind)))
        }
    }

    /// The field of an infinite timestamp: NULL for fields that cycle,
    /// ±Infinity for those that grow (PostgreSQL's
    /// `NonFiniteTimestampTzPart`).
    fn infinite_field(
        &self,
        lower: &str,
        token: &UnitToken,
        kind: ValueKind,
        negative: bool,
    ) -> Result<Option<f64>> {
        let unit = match token {
            UnitToken::Unit(u) => *u,
            UnitToken::Reserved => return Err(unit_error(lower, true, self.type_name(kind))),
            UnitToken::Unknown => return Err(unit_error(lower, false, self.type_name(kind))),
        };
        Ok(match unit {
            Unit::Year
            | Unit::Decade
            | Unit::Century
            | Unit::Millennium
            | Unit::Julian
            | Unit::IsoYear
            | Unit::Epoch => Some(if negative {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }),
            _ => None,
        })
    }
}

/// A field of a wall time, as PostgreSQL's `timestamptz_part_common`
/// computes it in double precision. `east`: the zone's offset (seconds
/// east of UTC); `epoch`: the value the epoch counts (the instant of a
/// timestamptz, the wall time of a timestamp), in microseconds.
fn field(unit: Unit, w: &WallTime, east: i32, epoch: i64) -> f64 {
    let year = w.year;
    match unit {
        Unit::Microseconds => w.second as f64 * 1_000_000.0 + w.micros as f64,
        Unit::Milliseconds => w.second as f64 * 1000.0 + w.micros as f64 / 1000.0,
        Unit::Second => w.second as f64 + w.micros as f64 / 1_000_000.0,
        Unit::Minute => w.minute as f64,
        Unit::Hour => w.hour as f64,
        Unit::Day => w.day as f64,
        Unit::Month => w.month as f64,
        Unit::Quarter => ((w.month - 1) / 3 + 1) as f64,
        Unit::Week => iso_year_week(w.days).1 as f64,
        // Years are astronomical (0 is 1 BC); PostgreSQL's have no year 0.
        Unit::Year => (if year > 0 { year } else { year - 1 }) as f64,
        Unit::Decade => {
            (if year >= 0 {
                year / 10
            } else {
                -((8 - (year - 1)) / 10)
            }) as f64
        }
        Unit::Century => {
            (if year > 0 {
                (year + 99) / 100
            } else {
                -((99 - (year - 1)) / 100)
            }) as f64
        }
        Unit::Millennium => {
            (if year > 0 {
                (year + 999) / 1000
            } else {
                -((999 - (year - 1)) / 1000)
            }) as f64
        }
        Unit::Julian => {
            let seconds = (w.hour * 60 + w.minute) * 60 + w.second;
            w.julian_day() as f64 + (seconds as f64 + w.micros as f64 / 1_000_000.0) / 86_400.0
        }
        Unit::IsoYear => {
            let y = iso_year_week(w.days).0;
            (if y <= 0 { y - 1 } else { y }) as f64
        }
        Unit::Dow => ((days_since_monday(w.days) + 1) % 7) as f64,
        Unit::IsoDow => (days_since_monday(w.days) + 1) as f64,
        Unit::Doy => (w.days - days_from_civil(year, 1, 1) + 1) as f64,
        Unit::Timezone => f64::from(east),
        Unit::TimezoneHour => f64::from(east / 3600),
        Unit::TimezoneMinute => f64::from(east / 60 % 60),
        Unit::Epoch => epoch as f64 / 1_000_000.0,
    }
}

impl ScalarUDFImpl for DatePart {
    fn name(&self) -> &str {
        match self.flavor {
            Flavor::DatePart => "date_part",
            Flavor::Extract => "extract",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// DataFusion's `date_part` is also registered as `datepart`; taking
    /// that name too keeps a rebuilt function map from bringing it back.
    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [unit, value] = args else {
            return Err(no_such_function(self.name(), args));
        };
        let unit = text_type(unit).ok_or_else(|| no_such_function(self.name(), args))?;
        let value = match value {
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            DataType::Date32 | DataType::Date64 => DataType::Date32,
            DataType::Null => DataType::Null,
            // Untyped text reads as a timestamp, as DataFusion's did.
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                DataType::Timestamp(TimeUnit::Microsecond, None)
            }
            DataType::Interval(_) => DataType::Interval(IntervalUnit::MonthDayNano),
            DataType::Duration(_) => DataType::Duration(TimeUnit::Microsecond),
            DataType::Time32(_) | DataType::Time64(_) => DataType::Time64(TimeUnit::Microsecond),
            _ => return Err(no_such_function(self.name(), args)),
        };
        Ok(vec![unit, value])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match (args.get(1), self.flavor) {
            (Some(value), Flavor::Extract) => Ok(DataType::Decimal128(
                NUMERIC_PRECISION,
                extract_scale(None, value),
            )),
            (Some(_), Flavor::DatePart) => Ok(DataType::Float64),
            (None, _) => Err(no_such_function(self.name(), args)),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let value = args.arg_fields.get(1).map(|f| f.data_type().clone());
        if self.flavor == Flavor::Extract {
            let value = value.ok_or_else(|| no_such_function(self.name(), &[]))?;
            let unit = args
                .scalar_arguments
                .first()
                .copied()
                .flatten()
                .and_then(|v| v.try_as_str().flatten())
                .and_then(|text| match field_unit(&unit_text(text)) {
                    UnitToken::Unit(u) => Some(u),
                    _ => None,
                });
            let scale = extract_scale(unit, &value);
            return Ok(Arc::new(Field::new(
                self.name(),
                DataType::Decimal128(NUMERIC_PRECISION, scale),
                true,
            )));
        }
        match value {
            Some(_) => Ok(Arc::new(Field::new(self.name(), DataType::Float64, true))),
            None => Err(no_such_function(self.name(), &[])),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scale = match args.return_field.data_type() {
            DataType::Decimal128(_, scale) if self.flavor == Flavor::Extract => Some(*scale),
            _ => None,
        };
        let kind = match args.args[1].data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => ValueKind::WithZone,
            DataType::Timestamp(TimeUnit::Microsecond, None) => ValueKind::WithoutZone,
            DataType::Date32 => ValueKind::Date,
            DataType::Null => {
                return Ok(ColumnarValue::Scalar(match scale {
                    Some(scale) => ScalarValue::Decimal128(None, NUMERIC_PRECISION, scale),
                    None => ScalarValue::Float64(None),
                }))
            }
            _ => return self.span_fields(&args, scale),
        };
        self.timestamp_fields(&args, kind, scale)
    }
}

/// Where a timestamp's or a date's fields go: double precision
/// (`date_part`) or numeric at a scale (`extract`).
enum FieldsOut {
    Double(Float64Builder),
    Numeric(Decimal128Builder, i8),
}

impl FieldsOut {
    /// Room for `rows` fields: numeric at `scale`, or double precision.
    fn new(scale: Option<i8>, rows: usize) -> Result<Self> {
        Ok(match scale {
            Some(s) => FieldsOut::Numeric(
                Decimal128Builder::with_capacity(rows)
                    .with_precision_and_scale(NUMERIC_PRECISION, s)?,
                s,
            ),
            None => FieldsOut::Double(Float64Builder::with_capacity(rows)),
        })
    }

    fn append_null(&mut self) {
        match self {
            FieldsOut::Double(b) => b.append_null(),
            FieldsOut::Numeric(b, _) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            FieldsOut::Double(mut b) => Arc::new(b.finish()),
            FieldsOut::Numeric(mut b, _) => Arc::new(b.finish()),
        }
    }
}

impl DatePart {
    /// The fields of a timestamp or date column: double precision, or
    /// numeric at `scale` (exact).
    fn timestamp_fields(
        &self,
        args: &ScalarFunctionArgs,
        kind: ValueKind,
        scale: Option<i8>,
    ) -> Result<ColumnarValue> {
        let (rows, scalar) = crate::pg_types::result_rows(&args.args, args.number_rows);
        let mut units = UnitColumn::new(&args.args[0], rows, field_unit)?;
        let values = args.args[1].to_array(rows)?;
        let zone = (kind == ValueKind::WithZone).then(|| self.variables.time_zone());
        let mut offsets = zone.map(ZoneOffsets::new);
        let date = kind == ValueKind::Date;
        let mut out = FieldsOut::new(scale, rows)?;
        for i in 0..rows {
            if values.is_null(i) || units.is_null(i) {
                out.append_null();
                continue;
            }
            let unit = units.at(i);
            let (lower, token) = (&unit.0, &unit.1);
            // A date's infinities are i32::MAX and i32::MIN: read as the
            // timestamp infinities.
            let infinity = if date {
                match values.as_primitive::<Date32Type>().value(i) {
                    i32::MAX => Some(i64::MAX),
                    i32::MIN => Some(i64::MIN),
                    _ => None,
                }
            } else {
                None
            };
            let (wall, east, epoch) = if date && infinity.is_none() {
                let days = i64::from(values.as_primitive::<Date32Type>().value(i));
                let local = days * USECS_PER_DAY;
                (WallTime::of(local), 0, local)
            } else {
                let v = infinity
                    .unwrap_or_else(|| values.as_primitive::<TimestampMicrosecondType>().value(i));
                if v == i64::MAX || v == i64::MIN {
                    let infinite = self.infinite_field(lower, token, kind, v == i64::MIN)?;
                    match &mut out {
                        FieldsOut::Double(b) => b.append_option(infinite),
                        FieldsOut::Numeric(_, _) if infinite.is_some() => {
                            return Err(TemporaError::not_supported(format!(
                                "extract({lower} from an infinite timestamp): numeric Infinity"
                            ))
                            .with_hint("date_part() returns it as double precision.")
                            .into_datafusion());
                        }
                        FieldsOut::Numeric(b, _) => b.append_null(),
                    }
                    continue;
                }
                let east = offsets.as_mut().map_or(0, |z| z.offset_at(v));
                let local = v
                    .checked_add(i64::from(east) * 1_000_000)
                    .ok_or_else(timestamp_out_of_range)?;
                (WallTime::of(local), east, v)
            };
            let unit = self.checked_unit(lower, token, kind)?;
            match &mut out {
                FieldsOut::Double(b) => b.append_value(field(unit, &wall, east, epoch)),
                FieldsOut::Numeric(b, scale) => {
                    let value = exact_field(unit, &wall, east, epoch, date);
                    let natural = extract_scale(Some(unit), &args.args[1].data_type());
                    b.append_value(rescale(value, natural, *scale));
                }
            }
        }
        crate::pg_types::result_value(out.finish(), scalar)
    }
}

impl DatePart {
    /// Fields of an interval, a duration (an interval of days and time, as
    /// PostgreSQL's timestamp difference is) or a time of day, as
    /// PostgreSQL's `interval_part_common` and `time_part_common` compute
    /// them: numeric at `scale` for `extract`, double precision for
    /// `date_part`.
    fn span_fields(&self, args: &ScalarFunctionArgs, scale: Option<i8>) -> Result<ColumnarValue> {
        let value_type = args.args[1].data_type();
        let interval = !matches!(value_type, DataType::Time64(_));
        let type_name = if interval {
            "interval"
        } else {
            "time without time zone"
        };
        let (rows, scalar) = crate::pg_types::result_rows(&args.args, args.number_rows);
        let mut units = UnitColumn::new(&args.args[0], rows, field_unit)?;
        let values = args.args[1].to_array(rows)?;
        let mut out = FieldsOut::new(scale, rows)?;
        for i in 0..rows {
            if values.is_null(i) || units.is_null(i) {
                out.append_null();
                continue;
            }
            let span = match &value_type {
                DataType::Interval(IntervalUnit::MonthDayNano) => {
                    let v = values.as_primitive::<IntervalMonthDayNanoType>().value(i);
                    Span {
                        months: i64::from(v.months),
                        days: i64::from(v.days),
                        micros: v.nanoseconds / 1000,
                    }
                }
                DataType::Duration(TimeUnit::Microsecond) => {
                    let v = values.as_primitive::<DurationMicrosecondType>().value(i);
                    Span {
                        months: 0,
                        days: v / USECS_PER_DAY,
                        micros: v % USECS_PER_DAY,
                    }
                }
                DataType::Time64(TimeUnit::Microsecond) => Span {
                    months: 0,
                    days: 0,
                    micros: values.as_primitive::<Time64MicrosecondType>().value(i),
                },
                other => {
                    return Err(no_such_function(
                        self.name(),
                        &[DataType::Utf8, other.clone()],
                    ))
                }
            };
            let unit = units.at(i);
            let (lower, token) = (&unit.0, &unit.1);
            let unit = match token {
                UnitToken::Unit(u) if span_unit(*u, interval) => *u,
                UnitToken::Unknown => return Err(unit_error(lower, false, type_name)),
                _ => return Err(unit_error(lower, true, type_name)),
            };
            let exact = span.field(unit);
            let natural = extract_scale(Some(unit), &value_type);
            match &mut out {
                FieldsOut::Numeric(b, scale) => b.append_value(rescale(exact, natural, *scale)),
                FieldsOut::Double(b) => {
                    b.append_value(exact as f64 / 10f64.powi(i32::from(natural)))
                }
            }
        }
        crate::pg_types::result_value(out.finish(), scalar)
    }
}

/// Whether PostgreSQL has `unit` for an interval (`interval`) or a time.
fn span_unit(unit: Unit, interval: bool) -> bool {
    match unit {
        Unit::Microseconds
        | Unit::Milliseconds
        | Unit::Second
        | Unit::Minute
        | Unit::Hour
        | Unit::Epoch => true,
        Unit::Day
        | Unit::Month
        | Unit::Quarter
        | Unit::Year
        | Unit::Decade
        | Unit::Century
        | Unit::Millennium => interval,
        _ => false,
    }
}

/// An interval as PostgreSQL keeps it: months, days and microseconds.
#[derive(Debug, Clone, Copy)]
struct Span {
    months: i64,
    days: i64,
    micros: i64,
}

impl Span {
    /// `unit` exactly, in units of 10^-[`extract_scale`]. PostgreSQL splits
    /// the time part with truncating division, so every field of a negative
    /// time is negative or zero.
    fn field(&self, unit: Unit) -> i128 {
        const USECS_PER_HOUR: i64 = 3_600_000_000;
        const USECS_PER_MINUTE: i64 = 60_000_000;
        let years = self.months / 12;
        i128::from(match unit {
            Unit::Microseconds | Unit::Milliseconds | Unit::Second => {
                self.micros % USECS_PER_MINUTE
            }
            Unit::Minute => self.micros % USECS_PER_HOUR / USECS_PER_MINUTE,
            Unit::Hour => self.micros / USECS_PER_HOUR,
            Unit::Day => self.days,
            Unit::Month => self.months % 12,
            Unit::Quarter => self.months % 12 / 3 + 1,
            Unit::Year => years,
            Unit::Decade => years / 10,
            Unit::Century => years / 100,
            Unit::Millennium => years / 1000,
            // A year is 365.25 days and a month 30, as in PostgreSQL.
            Unit::Epoch => {
                let seconds =
                    31_557_600 * years + 2_592_000 * (self.months % 12) + 86_400 * self.days;
                return i128::from(seconds) * 1_000_000 + i128::from(self.micros);
            }
            _ => 0,
        })
    }
}

/// Digits of `extract`'s numeric results (Tempora's widest numeric).
const NUMERIC_PRECISION: u8 = 38;

/// The scale of PostgreSQL's `julian` of a timestamp: the day fraction
/// divided out to 20 digits (for a time of day of 100 seconds or more).
const JULIAN_SCALE: i8 = 20;

/// The scale of `extract`'s numeric result for `unit` of a `value`
/// (PostgreSQL's `timestamp_part_common` and `interval_part_common`); 6 for
/// a unit known only when the statement runs.
fn extract_scale(unit: Option<Unit>, value: &DataType) -> i8 {
    let date = matches!(value, DataType::Date32 | DataType::Date64);
    match unit {
        Some(Unit::Milliseconds) => 3,
        Some(Unit::Second) => 6,
        Some(Unit::Epoch) if !date => 6,
        Some(Unit::Julian) if !date => JULIAN_SCALE,
        Some(_) => 0,
        None => 6,
    }
}

/// `unit` of a wall time as `extract` returns it: exact, in units of
/// 10^-[`extract_scale`]. `date`: the value is a date (`epoch` counts
/// whole seconds, `julian` whole days).
fn exact_field(unit: Unit, w: &WallTime, east: i32, epoch: i64, date: bool) -> i128 {
    match unit {
        Unit::Microseconds | Unit::Milliseconds | Unit::Second => {
            i128::from(w.second * 1_000_000 + w.micros)
        }
        Unit::Epoch if date => i128::from(epoch.div_euclid(1_000_000)),
        Unit::Epoch => i128::from(epoch),
        Unit::Julian if date => i128::from(w.julian_day()),
        Unit::Julian => {
            let micros = ((w.hour * 60 + w.minute) * 60 + w.second) * 1_000_000 + w.micros;
            let one = 10i128.pow(JULIAN_SCALE as u32);
            i128::from(w.julian_day()) * one
                + div_round(i128::from(micros) * one, i128::from(USECS_PER_DAY))
        }
        // The other fields are whole numbers, exact in a double.
        _ => field(unit, w, east, epoch) as i128,
    }
}

/// `n / d` rounded half away from zero (numeric's rounding); `d` > 0.
fn div_round(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    if r.abs() * 2 >= d {
        q + n.signum()
    } else {
        q
    }
}

/// `value` at scale `from` brought to scale `to`.
fn rescale(value: i128, from: i8, to: i8) -> i128 {
    match to.cmp(&from) {
        std::cmp::Ordering::Equal => value,
        std::cmp::Ordering::Greater => value * 10i128.pow((to - from) as u32),
        std::cmp::Ordering::Less => div_round(value, 10i128.pow((from - to) as u32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::days_from_civil;

    fn at(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, us: i64) -> WallTime {
        WallTime::of(
            days_from_civil(y, mo, d) * USECS_PER_DAY + ((h * 60 + mi) * 60 + s) * 1_000_000 + us,
        )
    }

    #[test]
    fn fields_of_a_wall_time() {
        let w = at(2024, 3, 31, 23, 45, 56, 789_012);
        let f = |u| field(u, &w, 7200, 0);
        assert_eq!(f(Unit::Second), 56.789012);
        assert_eq!(f(Unit::Milliseconds), 56789.012);
        assert_eq!(f(Unit::Microseconds), 56_789_012.0);
        assert_eq!(f(Unit::Dow), 0.0);
        assert_eq!(f(Unit::IsoDow), 7.0);
        assert_eq!(f(Unit::Doy), 91.0);
        assert_eq!(f(Unit::Week), 13.0);
        assert_eq!(f(Unit::Quarter), 1.0);
        assert_eq!(f(Unit::Century), 21.0);
        assert_eq!(f(Unit::Millennium), 3.0);
        assert_eq!(f(Unit::Decade), 202.0);
        assert_eq!(f(Unit::TimezoneHour), 2.0);
        assert_eq!(f(Unit::Julian), 2460401.9902406135);
    }

    #[test]
    fn extract_is_exact_at_postgres_scales() {
        let w = at(2024, 3, 31, 23, 45, 56, 789_012);
        let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
        let exact = |u| {
            let v = exact_field(u, &w, 0, 1_711_928_756_789_012, false);
            (v, extract_scale(Some(u), &ts))
        };
        assert_eq!(exact(Unit::Second), (56_789_012, 6));
        assert_eq!(exact(Unit::Milliseconds), (56_789_012, 3));
        assert_eq!(exact(Unit::Microseconds), (56_789_012, 0));
        assert_eq!(exact(Unit::Epoch), (1_711_928_756_789_012, 6));
        assert_eq!(exact(Unit::Hour), (23, 0));
        // PostgreSQL 15: 2460401.99024061356481481481
        assert_eq!(
            exact(Unit::Julian),
            (246_040_199_024_061_356_481_481_481, 20)
        );
        // A date: whole seconds and days.
        let d = at(2024, 3, 31, 0, 0, 0, 0);
        let date = DataType::Date32;
        let epoch = days_from_civil(2024, 3, 31) * USECS_PER_DAY;
        assert_eq!(exact_field(Unit::Epoch, &d, 0, epoch, true), 1_711_843_200);
        assert_eq!(extract_scale(Some(Unit::Epoch), &date), 0);
        assert_eq!(exact_field(Unit::Julian, &d, 0, epoch, true), 2_460_401);
        assert_eq!(extract_scale(Some(Unit::Julian), &date), 0);
        // Noon: PostgreSQL's 2460401.50000000000000000000.
        let noon = at(2024, 3, 31, 12, 0, 0, 0);
        assert_eq!(
            exact_field(Unit::Julian, &noon, 0, 0, false),
            246_040_150_000_000_000_000_000_000
        );
        // Before 1970 the epoch is negative, to the microsecond.
        assert_eq!(rescale(-315_619_199_500_000, 6, 6), -315_619_199_500_000);
        assert_eq!(rescale(-2_500_000, 6, 0), -3);
        assert_eq!(rescale(15, 0, 3), 15_000);
    }

    #[test]
    fn years_before_christ() {
        // 1 BC is year 0 of the wall time; PostgreSQL counts it as -1.
        let w = at(0, 6, 1, 0, 0, 0, 0);
        let f = |u| field(u, &w, 0, 0);
        assert_eq!(f(Unit::Year), -1.0);
        assert_eq!(f(Unit::Century), -1.0);
        assert_eq!(f(Unit::Millennium), -1.0);
        assert_eq!(f(Unit::Decade), 0.0);
        let w = at(-10, 6, 1, 0, 0, 0, 0); // 11 BC
        assert_eq!(field(Unit::Decade, &w, 0, 0), -1.0);
    }

    #[test]
    fn zone_fields_truncate_toward_zero() {
        let w = at(2024, 1, 1, 0, 0, 0, 0);
        let east = -(3 * 3600 + 30 * 60);
        assert_eq!(field(Unit::TimezoneHour, &w, east, 0), -3.0);
        assert_eq!(field(Unit::TimezoneMinute, &w, east, 0), -30.0);
    }
}
