//! `date_trunc(unit, value [, zone])` as PostgreSQL computes it: a
//! timestamptz is truncated in the session's TimeZone (or the zone given),
//! read when the statement runs.
//!
//! ```text
//!   SET timezone = 'Europe/Berlin'
//!   date_trunc('day', timestamptz '2024-03-31 22:30+00')   2024-04-01 00:00:00+02
//!   date_trunc('day', timestamptz '2024-03-31 12:00+00')   2024-03-31 00:00:00+01  (DST starts that day)
//!   date_trunc('day', timestamptz '2024-03-31 12:00+00', 'America/New_York')
//!                                                          2024-03-31 06:00:00+02  (New York's midnight)
//! ```
//!
//! As in PostgreSQL's `timestamptz_trunc_internal`: the wall time in the
//! zone is truncated; a unit of a day or more (`day`, `week`, `month`,
//! `quarter`, `year`, `decade`, `century`, `millennium`) makes a midnight,
//! read back in the zone with PostgreSQL's choice for a time a daylight
//! saving change skips or repeats; smaller units keep the value's own
//! offset. A timestamp without time zone is truncated as it is; a date is
//! a timestamptz here (PostgreSQL's choice of overload). Infinities come
//! back unchanged before the unit or the zone is read. The zone argument is
//! read as `AT TIME ZONE` reads one (abbreviations first). Time values go
//! to DataFusion's `date_trunc`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, PrimitiveBuilder};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use tempora_copy::zone::PgTimeZone;

use crate::at_time_zone::ZoneColumn;
use crate::calendar::{
    civil_from_days, days_since_monday, truncation_unit, Unit, UnitToken, WallTime, ZoneOffsets,
};
use crate::date_part::{no_such_function, text_type, unit_error, UnitColumn};
use crate::variables::{SessionHandle, SessionVariables};
use crate::zone_casts::{in_timestamp_range, timestamp_out_of_range};

/// `date_trunc` (alias `datetrunc`; replaces DataFusion's).
pub fn date_trunc_udf(variables: Arc<SessionVariables>) -> ScalarUDF {
    ScalarUDF::new_from_impl(DateTrunc {
        aliases: vec!["datetrunc".into()],
        signature: Signature::user_defined(Volatility::Stable),
        variables: SessionHandle(variables),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DateTrunc {
    aliases: Vec<String>,
    signature: Signature,
    variables: SessionHandle,
}

/// The zone name timestamptz values get when they come from a date.
const UTC: &str = "UTC";

/// Truncates `v` (microseconds) to `unit`; `zone`: the offsets of a
/// timestamptz's zone, None for a timestamp without time zone.
fn truncate(unit: Unit, v: i64, mut zone: Option<&mut ZoneOffsets>) -> Result<i64> {
    let offset = zone.as_mut().map_or(0, |z| i64::from(z.offset_at(v)));
    let local = v
        .checked_add(offset * 1_000_000)
        .ok_or_else(timestamp_out_of_range)?;
    let mut w = WallTime::of(local);
    // Units of a day or more make a midnight, read in the zone again.
    let midnight = match unit {
        Unit::Microseconds => false,
        Unit::Milliseconds => {
            w.micros = w.micros / 1000 * 1000;
            false
        }
        Unit::Second => {
            w.micros = 0;
            false
        }
        Unit::Minute => {
            (w.second, w.micros) = (0, 0);
            false
        }
        Unit::Hour => {
            (w.minute, w.second, w.micros) = (0, 0, 0);
            false
        }
        Unit::Week => {
            (w.year, w.month, w.day) = civil_from_days(w.days - days_since_monday(w.days));
            true
        }
        Unit::Day
        | Unit::Month
        | Unit::Quarter
        | Unit::Year
        | Unit::Decade
        | Unit::Century
        | Unit::Millennium => {
            // PostgreSQL's cases fall through from millennium down to
            // day; its years are astronomical as these are.
            let y = w.year;
            if unit == Unit::Millennium {
                w.year = if y > 0 {
                    (y + 999) / 1000 * 1000 - 999
                } else {
                    -((999 - (y - 1)) / 1000) * 1000 + 1
                };
            }
            let y = w.year;
            if matches!(unit, Unit::Millennium | Unit::Century) {
                w.year = if y > 0 {
                    (y + 99) / 100 * 100 - 99
                } else {
                    -((99 - (y - 1)) / 100) * 100 + 1
                };
            }
            if unit == Unit::Decade {
                w.year = if y > 0 {
                    y / 10 * 10
                } else {
                    -((8 - (y - 1)) / 10) * 10
                };
            }
            if unit != Unit::Day && unit != Unit::Month {
                if unit != Unit::Quarter {
                    w.month = 1;
                }
                w.month = 3 * ((w.month - 1) / 3) + 1;
            }
            if unit != Unit::Day {
                w.day = 1;
            }
            true
        }
        other => {
            return Err(DataFusionError::Internal(format!(
                "date_trunc to {other:?}"
            )))
        }
    };
    if midnight {
        (w.hour, w.minute, w.second, w.micros) = (0, 0, 0, 0);
    }
    let truncated = w.micros_since_epoch().ok_or_else(timestamp_out_of_range)?;
    let out = match zone {
        // A midnight is read in the zone again.
        Some(z) if midnight => z.instant_of(truncated),
        // Smaller units keep the value's offset.
        _ => truncated.checked_sub(offset * 1_000_000),
    };
    match out {
        Some(out) if in_timestamp_range(out) => Ok(out),
        _ => Err(timestamp_out_of_range()),
    }
}

impl DateTrunc {
    fn type_name(with_zone: bool) -> &'static str {
        if with_zone {
            "timestamp with time zone"
        } else {
            "timestamp without time zone"
        }
    }
}

/// A unit `date_trunc` takes, or PostgreSQL's error for it.
fn checked_unit(lower: &str, token: &UnitToken, with_zone: bool) -> Result<Unit> {
    let type_name = DateTrunc::type_name(with_zone);
    match token {
        UnitToken::Unit(
            unit @ (Unit::Microseconds
            | Unit::Milliseconds
            | Unit::Second
            | Unit::Minute
            | Unit::Hour
            | Unit::Day
            | Unit::Week
            | Unit::Month
            | Unit::Quarter
            | Unit::Year
            | Unit::Decade
            | Unit::Century
            | Unit::Millennium),
        ) => Ok(*unit),
        UnitToken::Unit(_) | UnitToken::Reserved => Err(unit_error(lower, true, type_name)),
        UnitToken::Unknown => Err(unit_error(lower, false, type_name)),
    }
}

impl ScalarUDFImpl for DateTrunc {
    fn name(&self) -> &str {
        "date_trunc"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// DataFusion's `date_trunc` is also registered as `datetrunc`.
    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let fail = || no_such_function(self.name(), args);
        let (unit, value, zone) = match args {
            [unit, value] => (unit, value, None),
            [unit, value, zone] => (unit, value, Some(zone)),
            _ => return Err(fail()),
        };
        let unit = text_type(unit).ok_or_else(fail)?;
        let timestamptz = DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()));
        let value = match (value, zone) {
            (DataType::Timestamp(_, Some(tz)), _) => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(tz.clone()))
            }
            // The zone form takes a timestamptz only: a timestamp is read in
            // the session's zone, as its cast reads it.
            (
                DataType::Timestamp(_, None)
                | DataType::Date32
                | DataType::Date64
                | DataType::Null
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View,
                Some(_),
            ) => timestamptz,
            (DataType::Timestamp(_, None), None) => {
                DataType::Timestamp(TimeUnit::Microsecond, None)
            }
            (DataType::Date32 | DataType::Date64 | DataType::Null, None) => timestamptz,
            // Untyped text reads as a timestamp, as DataFusion's did.
            (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, None) => {
                DataType::Timestamp(TimeUnit::Microsecond, None)
            }
            (DataType::Time32(_) | DataType::Time64(_), None) => value.clone(),
            _ => return Err(fail()),
        };
        let mut coerced = vec![unit, value];
        if let Some(zone) = zone {
            coerced.push(text_type(zone).ok_or_else(fail)?);
        }
        Ok(coerced)
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args.get(1) {
            Some(t @ (DataType::Timestamp(..) | DataType::Time32(_) | DataType::Time64(_))) => {
                Ok(t.clone())
            }
            _ => Err(no_such_function(self.name(), args)),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let value_type = args.args[1].data_type();
        let DataType::Timestamp(TimeUnit::Microsecond, tz) = &value_type else {
            return datafusion::functions::datetime::date_trunc().invoke_with_args(args);
        };
        let with_zone = tz.is_some();
        let (rows, scalar) = crate::pg_types::result_rows(&args.args, args.number_rows);
        let mut units = UnitColumn::new(&args.args[0], rows, truncation_unit)?;
        let values = args.args[1].to_array(rows)?;
        let values = values.as_primitive::<TimestampMicrosecondType>();
        let zone_texts = match args.args.get(2) {
            Some(z) => Some(z.to_array(rows)?),
            None => None,
        };
        let mut zones = zone_texts.as_ref().map(ZoneColumn::new).transpose()?;
        let mut offsets = match (&zones, with_zone) {
            (None, true) => Some(ZoneOffsets::new(self.variables.time_zone())),
            _ => None,
        };
        let mut out = PrimitiveBuilder::<TimestampMicrosecondType>::with_capacity(rows);
        for i in 0..rows {
            let zone_null = zone_texts.as_ref().is_some_and(|z| z.is_null(i));
            if values.is_null(i) || units.is_null(i) || zone_null {
                out.append_null();
                continue;
            }
            let v = values.value(i);
            // PostgreSQL returns an infinity before it reads the unit or
            // the zone.
            if v == i64::MAX || v == i64::MIN {
                out.append_value(v);
                continue;
            }
            if let Some(zones) = zones.as_mut() {
                let zone: PgTimeZone = zones.at(i)?.unwrap_or_default();
                if offsets.as_ref().is_none_or(|o| *o.zone() != zone) {
                    offsets = Some(ZoneOffsets::new(zone));
                }
            }
            let unit = units.at(i);
            let unit = checked_unit(&unit.0, &unit.1, with_zone)?;
            out.append_value(truncate(unit, v, offsets.as_mut())?);
        }
        let out: ArrayRef = Arc::new(out.finish().with_timezone_opt(tz.clone()));
        crate::pg_types::result_value(out, scalar)
    }

    /// Non-decreasing in the value when the unit (and zone) are constants
    /// and the zone's offset is fixed: a daylight saving change that turns
    /// clocks back by less than the unit, or across midnight, can make a
    /// later instant truncate to an earlier one.
    fn output_ordering(&self, input: &[ExprProperties]) -> Result<SortProperties> {
        let constant = |p: &ExprProperties| p.sort_properties == SortProperties::Singleton;
        let Some(value) = input.get(1) else {
            return Ok(SortProperties::Unordered);
        };
        let ordered = constant(&input[0])
            && match (value.range.data_type(), input.get(2)) {
                (DataType::Timestamp(_, Some(_)), Some(zone)) => {
                    constant(zone)
                        && match zone.range.lower() {
                            ScalarValue::Utf8(Some(z)) => {
                                PgTimeZone::parse_argument(z).is_ok_and(|z| z.is_fixed())
                            }
                            _ => false,
                        }
                }
                (DataType::Timestamp(_, Some(_)), None) => self.variables.time_zone().is_fixed(),
                _ => true,
            };
        Ok(if ordered {
            value.sort_properties
        } else {
            SortProperties::Unordered
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{days_from_civil, USECS_PER_DAY};

    const HOUR: i64 = 3_600_000_000;

    fn utc(y: i64, mo: i64, d: i64, h: i64, mi: i64) -> i64 {
        days_from_civil(y, mo, d) * USECS_PER_DAY + h * HOUR + mi * 60_000_000
    }

    fn trunc(unit: Unit, v: i64, zone: &str) -> i64 {
        let mut offsets = ZoneOffsets::new(PgTimeZone::of_setting(zone));
        truncate(unit, v, Some(&mut offsets)).unwrap()
    }

    #[test]
    fn days_are_local_midnights() {
        // Berlin springs forward on 2024-03-31 at 01:00 UTC.
        assert_eq!(
            trunc(Unit::Day, utc(2024, 3, 31, 12, 0), "Europe/Berlin"),
            utc(2024, 3, 30, 23, 0)
        );
        assert_eq!(
            trunc(Unit::Day, utc(2024, 3, 31, 22, 30), "Europe/Berlin"),
            utc(2024, 3, 31, 22, 0)
        );
        assert_eq!(
            trunc(Unit::Week, utc(2024, 3, 31, 22, 30), "Europe/Berlin"),
            utc(2024, 3, 31, 22, 0)
        );
        assert_eq!(
            trunc(Unit::Month, utc(2024, 3, 31, 22, 30), "Europe/Berlin"),
            utc(2024, 3, 31, 22, 0)
        );
        assert_eq!(
            trunc(Unit::Year, utc(2024, 3, 31, 22, 30), "UTC+3"),
            utc(2024, 1, 1, 3, 0)
        );
    }

    #[test]
    fn smaller_units_keep_the_offset() {
        // 02:30 happens twice in Berlin on 2024-10-27: each keeps its own.
        assert_eq!(
            trunc(Unit::Hour, utc(2024, 10, 27, 0, 30), "Europe/Berlin"),
            utc(2024, 10, 27, 0, 0)
        );
        assert_eq!(
            trunc(Unit::Hour, utc(2024, 10, 27, 1, 30), "Europe/Berlin"),
            utc(2024, 10, 27, 1, 0)
        );
        // Kolkata's hours start at half past UTC's.
        assert_eq!(
            trunc(Unit::Hour, utc(2024, 3, 31, 18, 45), "Asia/Kolkata"),
            utc(2024, 3, 31, 18, 30)
        );
    }

    #[test]
    fn without_a_zone_and_out_of_range() {
        let v = utc(2024, 3, 31, 23, 45) + 56_789_012;
        assert_eq!(truncate(Unit::Milliseconds, v, None).unwrap(), v - 12);
        assert_eq!(
            truncate(Unit::Decade, v, None).unwrap(),
            utc(2020, 1, 1, 0, 0)
        );
        assert_eq!(
            truncate(Unit::Millennium, v, None).unwrap(),
            utc(2001, 1, 1, 0, 0)
        );
        // 4714-11-24 BC is the first day: its millennium is not.
        let first = crate::zone_casts::MIN_TIMESTAMP_USECS;
        assert!(truncate(Unit::Millennium, first, None).is_err());
        assert_eq!(truncate(Unit::Day, first, None).unwrap(), first);
    }
}
