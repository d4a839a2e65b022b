//! `AT TIME ZONE` as PostgreSQL's `timezone(zone, value)`, which the SQL
//! layer makes of it (tempora-sql/calls.rs); the function form is the
//! same function.
//!
//! ```text
//!   timestamptz AT TIME ZONE z   → timestamp     the wall time in z
//!   timestamp   AT TIME ZONE z   → timestamptz   the wall time read in z
//! ```
//!
//! A text zone is read as `timestamptz_zone` reads it
//! ([`PgTimeZone::parse_argument`]: an abbreviation first, then an IANA
//! name matched case-insensitively, then a POSIX zone, whose offset counts
//! WEST: `'+03:00'` is UTC-3). An interval zone counts east (ISO sign) and
//! may hold neither months nor days. A date or untyped text is a
//! timestamptz here, as PostgreSQL resolves them (its preferred type).
//! Zones are resolved per row; the infinities pass through unread.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, PrimitiveBuilder};
use datafusion::arrow::datatypes::{
    DataType, IntervalMonthDayNanoType, IntervalUnit, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use tempora_common::{SqlState, TemporaError};
use tempora_copy::zone::PgTimeZone;

use crate::pg_types::pg_type_name;
use crate::zone_casts::{in_timestamp_range, timestamp_out_of_range};

/// `timezone(zone text | interval, value timestamp | timestamptz)`.
pub fn timezone_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(TimeZoneOf {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TimeZoneOf {
    signature: Signature,
}

/// The zone name timestamptz results carry, as table columns do (output
/// prints them in the session's zone whatever the name).
const UTC: &str = "UTC";

fn no_such_function(args: &[DataType]) -> DataFusionError {
    let names: Vec<&str> = args.iter().map(pg_type_name).collect();
    TemporaError::new(
        SqlState::UNDEFINED_FUNCTION,
        format!("function timezone({}) does not exist", names.join(", ")),
    )
    .with_hint(
        "No function matches the given name and argument types. You might need to add explicit type casts.",
    )
    .into_datafusion()
}

impl ScalarUDFImpl for TimeZoneOf {
    fn name(&self) -> &str {
        "timezone"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Types this function takes are made exact here; others are left as
    /// they are for [`Self::return_type`] to refuse, whose errors reach
    /// the client as raised (DataFusion rewords coercion's).
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [zone, value] = args else {
            return Ok(args.to_vec());
        };
        let zone = match zone {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                DataType::Utf8
            }
            DataType::Interval(_) => DataType::Interval(IntervalUnit::MonthDayNano),
            other => other.clone(),
        };
        let value = match value {
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            DataType::Date32
            | DataType::Date64
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Null => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            other => other.clone(),
        };
        Ok(vec![zone, value])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let [zone, value] = args else {
            return Err(no_such_function(args));
        };
        if !matches!(
            zone,
            DataType::Utf8 | DataType::Interval(IntervalUnit::MonthDayNano)
        ) {
            return Err(no_such_function(args));
        }
        match value {
            DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => {
                Ok(DataType::Timestamp(TimeUnit::Microsecond, None))
            }
            DataType::Timestamp(TimeUnit::Microsecond, None) => {
                Ok(DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())))
            }
            DataType::Time32(_) | DataType::Time64(_) => Err(TemporaError::not_supported(
                "AT TIME ZONE of a time of day (time with time zone)",
            )
            .into_datafusion()),
            _ => Err(no_such_function(args)),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (rows, scalar) = crate::pg_types::result_rows(&args.args, args.number_rows);
        let zones = args.args[0].to_array(rows)?;
        let values = args.args[1].to_array(rows)?;
        let to_wall_time = match values.data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, tz) => tz.is_some(),
            other => return Err(DataFusionError::Internal(format!("timezone of {other}"))),
        };
        let values = values.as_primitive::<TimestampMicrosecondType>();
        let mut out = PrimitiveBuilder::<TimestampMicrosecondType>::with_capacity(rows);
        let mut zone = ZoneColumn::new(&zones)?;
        for i in 0..rows {
            if values.is_null(i) {
                out.append_null();
                continue;
            }
            let v = values.value(i);
            // PostgreSQL returns an infinity before it looks at the zone.
            if v == i64::MAX || v == i64::MIN {
                out.append_value(v);
                continue;
            }
            let Some(zone) = zone.at(i)? else {
                out.append_null();
                continue;
            };
            let converted = if to_wall_time {
                zone.utc_to_local(v)
            } else {
                zone.local_to_utc(v)
            };
            match converted {
                Some(c) if in_timestamp_range(c) => out.append_value(c),
                _ => return Err(timestamp_out_of_range()),
            }
        }
        let out = out.finish();
        let out: ArrayRef = if to_wall_time {
            Arc::new(out)
        } else {
            Arc::new(out.with_timezone(UTC))
        };
        crate::pg_types::result_value(out, scalar)
    }
}

/// The zones of a column, read once per distinct run of values.
pub(crate) struct ZoneColumn<'a> {
    zones: &'a ArrayRef,
    last: Option<(usize, PgTimeZone)>,
}

impl<'a> ZoneColumn<'a> {
    pub(crate) fn new(zones: &'a ArrayRef) -> Result<Self> {
        match zones.data_type() {
            DataType::Utf8 | DataType::Interval(IntervalUnit::MonthDayNano) => {
                Ok(Self { zones, last: None })
            }
            other => Err(DataFusionError::Internal(format!(
                "timezone with a zone of {other}"
            ))),
        }
    }

    /// The zone of row `i`; None for NULL.
    pub(crate) fn at(&mut self, i: usize) -> Result<Option<PgTimeZone>> {
        if self.zones.is_null(i) {
            return Ok(None);
        }
        if let Some((row, zone)) = &self.last {
            if self.same_value(*row, i) {
                return Ok(Some(zone.clone()));
            }
        }
        let zone = match self.zones.data_type() {
            DataType::Utf8 => PgTimeZone::parse_argument(self.zones.as_string::<i32>().value(i))
                .map_err(TemporaError::into_datafusion)?,
            _ => {
                let iv = self
                    .zones
                    .as_primitive::<IntervalMonthDayNanoType>()
                    .value(i);
                interval_zone(iv.months, iv.days, iv.nanoseconds)?
            }
        };
        self.last = Some((i, zone.clone()));
        Ok(Some(zone))
    }

    fn same_value(&self, a: usize, b: usize) -> bool {
        match self.zones.data_type() {
            DataType::Utf8 => {
                let s = self.zones.as_string::<i32>();
                s.value(a) == s.value(b)
            }
            _ => {
                let p = self.zones.as_primitive::<IntervalMonthDayNanoType>();
                p.value(a) == p.value(b)
            }
        }
    }
}

/// An interval as a zone: its time part, in whole seconds (toward zero),
/// east of UTC.
fn interval_zone(months: i32, days: i32, nanos: i64) -> Result<PgTimeZone> {
    let micros = nanos / 1000;
    if months != 0 || days != 0 {
        let mut text = String::new();
        tempora_copy::text::write_interval(months, days, micros, &mut text);
        return Err(TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("interval time zone \"{text}\" must not include months or days"),
        )
        .into_datafusion());
    }
    let east = i32::try_from(micros / 1_000_000).map_err(|_| timestamp_out_of_range())?;
    Ok(PgTimeZone::Fixed {
        east,
        abbrev: "".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::ScalarValue;

    const JAN_1: i64 = 1_704_067_200_000_000; // 2024-01-01 00:00:00 UTC
    const HOUR: i64 = 3_600_000_000;

    fn call(zone: ScalarValue, value: ScalarValue) -> Result<ScalarValue> {
        let f = timezone_udf();
        let arg_fields = [&zone, &value]
            .iter()
            .map(|v| {
                Arc::new(datafusion::arrow::datatypes::Field::new(
                    "a",
                    v.data_type(),
                    true,
                ))
            })
            .collect();
        let returns = f.return_type(&[zone.data_type(), value.data_type()])?;
        let out = f.invoke_with_args(ScalarFunctionArgs {
            args: vec![ColumnarValue::Scalar(zone), ColumnarValue::Scalar(value)],
            arg_fields,
            number_rows: 1,
            return_field: Arc::new(datafusion::arrow::datatypes::Field::new("r", returns, true)),
            config_options: Default::default(),
        })?;
        match out {
            ColumnarValue::Scalar(s) => Ok(s),
            ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0),
        }
    }

    fn tstz(v: i64) -> ScalarValue {
        ScalarValue::TimestampMicrosecond(Some(v), Some(UTC.into()))
    }

    fn ts(v: i64) -> ScalarValue {
        ScalarValue::TimestampMicrosecond(Some(v), None)
    }

    fn text(s: &str) -> ScalarValue {
        ScalarValue::Utf8(Some(s.into()))
    }

    #[test]
    fn both_directions_and_their_types() {
        assert_eq!(
            call(text("America/New_York"), tstz(JAN_1)).unwrap(),
            ts(JAN_1 - 5 * HOUR)
        );
        assert_eq!(
            call(text("america/new_york"), ts(JAN_1)).unwrap(),
            tstz(JAN_1 + 5 * HOUR)
        );
        // POSIX offsets count west; abbreviations come first.
        assert_eq!(
            call(text("+03:00"), tstz(JAN_1)).unwrap(),
            ts(JAN_1 - 3 * HOUR)
        );
        assert_eq!(
            call(text("EST"), tstz(JAN_1)).unwrap(),
            ts(JAN_1 - 5 * HOUR)
        );
        // Intervals count east, whole seconds.
        let iv = |nanos| {
            ScalarValue::IntervalMonthDayNano(Some(
                datafusion::arrow::datatypes::IntervalMonthDayNano::new(0, 0, nanos),
            ))
        };
        assert_eq!(
            call(iv(-8 * HOUR * 1000), tstz(JAN_1)).unwrap(),
            ts(JAN_1 - 8 * HOUR)
        );
        assert_eq!(
            call(iv(1_500_000_000 + 700_000_000), tstz(JAN_1)).unwrap(),
            ts(JAN_1 + 2_000_000)
        );
    }

    #[test]
    fn infinities_nulls_and_errors() {
        assert_eq!(call(text("Foo/Bar"), tstz(i64::MAX)).unwrap(), ts(i64::MAX));
        assert_eq!(
            call(ScalarValue::Utf8(None), tstz(JAN_1)).unwrap(),
            ScalarValue::TimestampMicrosecond(None, None)
        );
        let e = TemporaError::from_datafusion(call(text("Foo/Bar"), tstz(JAN_1)).unwrap_err());
        assert_eq!(e.code, SqlState::INVALID_PARAMETER_VALUE);
        assert_eq!(e.message, "time zone \"Foo/Bar\" not recognized");
        let day = ScalarValue::IntervalMonthDayNano(Some(
            datafusion::arrow::datatypes::IntervalMonthDayNano::new(0, 1, 0),
        ));
        let e = TemporaError::from_datafusion(call(day, tstz(JAN_1)).unwrap_err());
        assert_eq!(e.code, SqlState::INVALID_PARAMETER_VALUE);
        assert_eq!(
            e.message,
            "interval time zone \"1 day\" must not include months or days"
        );
        let e = TemporaError::from_datafusion(
            call(
                text("America/New_York"),
                tstz(crate::zone_casts::MIN_TIMESTAMP_USECS),
            )
            .unwrap_err(),
        );
        assert_eq!(e.code, SqlState::DATETIME_FIELD_OVERFLOW);
    }
}
