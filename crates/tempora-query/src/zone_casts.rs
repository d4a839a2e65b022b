//! Casts between `timestamptz` and the wall-clock types in the session's
//! TimeZone, as PostgreSQL casts them.
//!
//! Arrow casts a `Timestamp(_, Some(zone))` to `Timestamp(_, None)` by
//! dropping the zone, which leaves UTC's wall time, and reads a wall time
//! in the zone the *type* names (for a column, `UTC`), giving NULL for a
//! time a daylight saving change skips or repeats. PostgreSQL reads and
//! writes wall times in the session's `TimeZone`, whatever the value came
//! from:
//!
//! ```text
//!   SET timezone = 'Europe/Berlin'
//!   '2024-01-01 00:00+00'::timestamptz::timestamp   2024-01-01 01:00:00
//!   '2024-01-01 23:30+00'::timestamptz::date        2024-01-02
//!   '2024-03-31 02:30'::timestamp::timestamptz      2024-03-31 03:30:00+02  (skipped: read with +01)
//!   '2024-10-27 02:30'::timestamp::timestamptz      2024-10-27 02:30:00+01  (repeated: the later one)
//! ```
//!
//! This analyzer rule runs after type coercion, so it sees the casts the SQL
//! wrote and those coercion added (an INSERT of a timestamptz into a
//! `timestamp` column, a comparison of the two types), and replaces each
//! such cast by a function that reads the session's zone when it runs
//! ([`SessionVariables::time_zone`]): a statement prepared before a `SET
//! timezone` converts in the new zone, as PostgreSQL's does.
//!
//! ```text
//!   CAST(tstz AS timestamp)       timestamptz_timestamp(tstz)
//!   CAST(tstz AS date | time)     CAST(timestamptz_timestamp(tstz) AS date | time)
//!   CAST(ts AS timestamptz)       timestamp_timestamptz(ts)
//!   CAST(d AS timestamptz)        timestamp_timestamptz(CAST(d AS timestamp))
//! ```
//!
//! A cast between units as well as zones becomes the conversion in the
//! input's unit, then Arrow's cast between units.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray};
use datafusion::arrow::datatypes::{
    ArrowTimestampType, DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, DataFusionError};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use tempora_common::{SqlState, TemporaError};
use tempora_copy::zone::PgTimeZone;

use crate::variables::{SessionHandle, SessionVariables};

/// The analyzer rule; see the module documentation.
#[derive(Debug, Default)]
pub struct SessionZoneCasts {
    pub variables: Arc<SessionVariables>,
}

/// PostgreSQL's earliest timestamp, 4714-11-24 00:00:00 BC (UTC), in
/// microseconds since 1970 (`MIN_TIMESTAMP`). Its latest lies past what
/// an `i64` of microseconds since 1970 holds: only overflow ends it here.
pub const MIN_TIMESTAMP_USECS: i64 = -211_813_488_000_000_000 + 946_684_800_000_000;

/// PostgreSQL's 22008 for a converted time outside its range.
pub(crate) fn timestamp_out_of_range() -> DataFusionError {
    TemporaError::new(SqlState::DATETIME_FIELD_OVERFLOW, "timestamp out of range").into_datafusion()
}

/// Whether a value (microseconds since 1970) is a time PostgreSQL holds:
/// not before its first, and not one of the values that stand for the
/// infinities.
pub(crate) fn in_timestamp_range(micros: i64) -> bool {
    micros >= MIN_TIMESTAMP_USECS && micros != i64::MAX && micros != i64::MIN
}

/// Which way a conversion goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Direction {
    /// An instant to its wall time in the session's zone.
    ToWallTime,
    /// A wall time in the session's zone to its instant.
    FromWallTime,
}

/// One conversion, typed as the cast it stands for (its unit and zone
/// name), bound to the session whose zone it reads.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SessionZoneCast {
    direction: Direction,
    returns: DataType,
    /// Whether a wall time outside PostgreSQL's timestamp range fails (a
    /// `date` has room for the day after its last timestamp).
    checked: bool,
    variables: SessionHandle,
    signature: Signature,
}

impl ScalarUDFImpl for SessionZoneCast {
    fn name(&self) -> &str {
        match self.direction {
            Direction::ToWallTime => "timestamptz_timestamp",
            Direction::FromWallTime => "timestamp_timestamptz",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let zone = self.variables.time_zone();
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let input = args.args[0].to_array(1)?;
        let DataType::Timestamp(unit, _) = input.data_type() else {
            return Err(DataFusionError::Internal(format!(
                "{} of {}",
                self.name(),
                input.data_type()
            )));
        };
        let zone_name = match &self.returns {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        let convert =
            |v: i64, per_second: i64| convert(self.direction, &zone, v, per_second, self.checked);
        let out: ArrayRef = match unit {
            TimeUnit::Second => Arc::new(
                map::<TimestampSecondType>(&input, |v| convert(v, 1))?.with_timezone_opt(zone_name),
            ),
            TimeUnit::Millisecond => Arc::new(
                map::<TimestampMillisecondType>(&input, |v| convert(v, 1_000))?
                    .with_timezone_opt(zone_name),
            ),
            TimeUnit::Microsecond => Arc::new(
                map::<TimestampMicrosecondType>(&input, |v| convert(v, 1_000_000))?
                    .with_timezone_opt(zone_name),
            ),
            TimeUnit::Nanosecond => Arc::new(
                map::<TimestampNanosecondType>(&input, |v| convert(v, 1_000_000_000))?
                    .with_timezone_opt(zone_name),
            ),
        };
        Ok(if scalar {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

fn map<T: ArrowTimestampType>(
    input: &ArrayRef,
    f: impl Fn(i64) -> DfResult<i64>,
) -> DfResult<PrimitiveArray<T>> {
    input.as_primitive::<T>().try_unary::<_, T, _>(f)
}

/// One value (`per_second` units a second) converted in `zone`. The
/// infinities stay what they are, as in PostgreSQL.
fn convert(
    direction: Direction,
    zone: &PgTimeZone,
    value: i64,
    per_second: i64,
    checked: bool,
) -> DfResult<i64> {
    if value == i64::MAX || value == i64::MIN {
        return Ok(value);
    }
    // The offset is whole seconds: find it at the value's second.
    let seconds = value.div_euclid(per_second);
    let micros = seconds.saturating_mul(1_000_000);
    let offset = match direction {
        Direction::ToWallTime => i64::from(zone.offset_at(micros)),
        Direction::FromWallTime => {
            let utc = zone
                .local_to_utc(micros)
                .ok_or_else(timestamp_out_of_range)?;
            (utc - micros) / 1_000_000
        }
    };
    let out = offset
        .checked_mul(per_second)
        .and_then(|o| value.checked_add(o))
        .ok_or_else(timestamp_out_of_range)?;
    // Past either end, or on a value that stands for an infinity.
    let before_first = out.div_euclid(per_second).saturating_mul(1_000_000) < MIN_TIMESTAMP_USECS;
    if (checked && before_first) || out == i64::MAX || out == i64::MIN {
        return Err(timestamp_out_of_range());
    }
    Ok(out)
}

fn conversion(
    variables: &Arc<SessionVariables>,
    direction: Direction,
    returns: DataType,
    checked: bool,
) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(SessionZoneCast {
        direction,
        returns,
        checked,
        variables: SessionHandle(variables.clone()),
        signature: Signature::any(1, Volatility::Stable),
    }))
}

fn cast(e: Expr, to: DataType) -> Expr {
    Expr::Cast(Cast::new(Box::new(e), to))
}

fn rewrite(
    e: Expr,
    schema: &DFSchema,
    variables: &Arc<SessionVariables>,
) -> DfResult<Transformed<Expr>> {
    let Expr::Cast(Cast { expr, field }) = &e else {
        return Ok(Transformed::no(e));
    };
    let Ok(from) = expr.get_type(schema) else {
        return Ok(Transformed::no(e));
    };
    let to = field.data_type();
    let input = expr.as_ref().clone();
    let converted = match (&from, to) {
        (DataType::Timestamp(unit, Some(_)), DataType::Timestamp(to_unit, None)) => {
            let f = conversion(
                variables,
                Direction::ToWallTime,
                DataType::Timestamp(*unit, None),
                true,
            );
            let wall = f.call(vec![input]);
            if unit == to_unit {
                wall
            } else {
                cast(wall, to.clone())
            }
        }
        (
            DataType::Timestamp(unit, Some(_)),
            DataType::Date32 | DataType::Date64 | DataType::Time32(_) | DataType::Time64(_),
        ) => {
            let f = conversion(
                variables,
                Direction::ToWallTime,
                DataType::Timestamp(*unit, None),
                false,
            );
            cast(f.call(vec![input]), to.clone())
        }
        (DataType::Timestamp(unit, None), DataType::Timestamp(to_unit, Some(zone))) => {
            let f = conversion(
                variables,
                Direction::FromWallTime,
                DataType::Timestamp(*unit, Some(zone.clone())),
                true,
            );
            let instant = f.call(vec![input]);
            if unit == to_unit {
                instant
            } else {
                cast(instant, to.clone())
            }
        }
        (DataType::Date32 | DataType::Date64, DataType::Timestamp(to_unit, Some(_))) => {
            let f = conversion(variables, Direction::FromWallTime, to.clone(), true);
            f.call(vec![cast(input, DataType::Timestamp(*to_unit, None))])
        }
        _ => return Ok(Transformed::no(e)),
    };
    Ok(Transformed::yes(converted))
}

impl AnalyzerRule for SessionZoneCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        crate::pg_casts::rewrite_plan_exprs(plan, |e, schema| rewrite(e, schema, &self.variables))
    }

    fn name(&self) -> &str {
        "session_zone_casts"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_1: i64 = 1_704_067_200_000_000; // 2024-01-01 00:00:00 UTC
    const HOUR: i64 = 3_600_000_000;

    fn berlin() -> PgTimeZone {
        PgTimeZone::of_setting("Europe/Berlin")
    }

    #[test]
    fn wall_times_in_the_zone() {
        let to = |v| convert(Direction::ToWallTime, &berlin(), v, 1_000_000, true).unwrap();
        let from = |v| convert(Direction::FromWallTime, &berlin(), v, 1_000_000, true).unwrap();
        assert_eq!(to(JAN_1), JAN_1 + HOUR);
        assert_eq!(from(JAN_1 + HOUR), JAN_1);
        // 2024-03-31 02:30 is skipped: read with the offset before (+01).
        let gap = 1_711_852_200_000_000;
        assert_eq!(from(gap), gap - HOUR);
        // 2024-10-27 02:30 happens twice: the later instant (+01).
        let twice = 1_729_996_200_000_000;
        assert_eq!(from(twice), twice - HOUR);
        // Sub-second parts and other units.
        assert_eq!(to(JAN_1 + 1), JAN_1 + HOUR + 1);
        let nanos = (JAN_1 + 1) * 1000 + 7;
        assert_eq!(
            convert(Direction::ToWallTime, &berlin(), nanos, 1_000_000_000, true).unwrap(),
            nanos + HOUR * 1000
        );
        assert_eq!(
            convert(Direction::ToWallTime, &berlin(), JAN_1 / 1_000_000, 1, true).unwrap(),
            (JAN_1 + HOUR) / 1_000_000
        );
    }

    #[test]
    fn infinities_stay_and_the_range_holds() {
        for v in [i64::MAX, i64::MIN] {
            assert_eq!(
                convert(Direction::ToWallTime, &berlin(), v, 1_000_000, true).unwrap(),
                v
            );
        }
        let west = PgTimeZone::of_setting("America/New_York");
        let err = convert(
            Direction::ToWallTime,
            &west,
            MIN_TIMESTAMP_USECS,
            1_000_000,
            true,
        )
        .unwrap_err();
        assert!(err.to_string().contains("timestamp out of range"), "{err}");
        // A date has room for it.
        assert!(convert(
            Direction::ToWallTime,
            &west,
            MIN_TIMESTAMP_USECS,
            1_000_000,
            false
        )
        .is_ok());
        // Eight hours east of the last value: past what the type holds.
        let err = convert(
            Direction::ToWallTime,
            &PgTimeZone::of_setting("8"),
            i64::MAX - 1,
            1_000_000,
            true,
        )
        .unwrap_err();
        assert!(err.to_string().contains("timestamp out of range"), "{err}");
    }
}
