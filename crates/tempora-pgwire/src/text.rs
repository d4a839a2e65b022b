//! PostgreSQL's text output for the types where it differs from the generic
//! encoder: timestamps (no trailing zero fractions, `+00` offsets in the
//! session's TimeZone) and floats (shortest round-trip, `1e+20` exponents).

use std::sync::Arc;

use chrono::{DateTime, Offset, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, Float32Array, Float64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::error::ArrowError;

/// PostgreSQL's float8/float4 text (extra_float_digits >= 1): the shortest
/// string that reads back to the same value, in exponent form outside
/// [1e-4, 1e15) (float8) or [1e-4, 1e6) (float4).
pub fn format_float(v: f64, shortest: String, max_exp: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let exp = v.abs().log10().floor() as i32;
    // Guard log10 rounding at exact powers of ten.
    let exp = if 10f64.powi(exp) > v.abs() {
        exp - 1
    } else {
        exp
    };
    if (-4..max_exp).contains(&exp) {
        return shortest;
    }
    // Digits of the shortest representation, without sign, point and zeros.
    let digits: String = shortest
        .trim_start_matches('-')
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect::<String>()
        .trim_start_matches('0')
        .trim_end_matches('0')
        .to_string();
    let digits = if digits.is_empty() {
        "0".to_string()
    } else {
        digits
    };
    let mantissa = if digits.len() > 1 {
        format!("{}.{}", &digits[..1], &digits[1..])
    } else {
        digits
    };
    let sign = if v < 0.0 { "-" } else { "" };
    let esign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{mantissa}e{esign}{:02}", exp.abs())
}

fn format_offset(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let s = secs.abs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    match (m, sec) {
        (0, 0) => format!("{sign}{h:02}"),
        (_, 0) => format!("{sign}{h:02}:{m:02}"),
        _ => format!("{sign}{h:02}:{m:02}:{sec:02}"),
    }
}

fn format_fraction(micros: u32) -> String {
    if micros == 0 {
        return String::new();
    }
    let s = format!(".{micros:06}");
    s.trim_end_matches('0').to_string()
}

/// A timestamp in microseconds as PostgreSQL prints it, in `tz` when given.
pub fn format_timestamp(micros: i64, tz: Option<&chrono_tz::Tz>) -> String {
    let Some(utc) = DateTime::<Utc>::from_timestamp_micros(micros) else {
        return micros.to_string();
    };
    let frac = format_fraction(utc.timestamp_subsec_micros());
    match tz {
        Some(tz) => {
            let local = utc.with_timezone(tz);
            let off = local.offset().fix().local_minus_utc();
            format!(
                "{}{}{}",
                local.format("%Y-%m-%d %H:%M:%S"),
                frac,
                format_offset(off)
            )
        }
        None => format!("{}{}", utc.naive_utc().format("%Y-%m-%d %H:%M:%S"), frac),
    }
}

fn strings(arr: &dyn Array, f: impl Fn(usize) -> String) -> ArrayRef {
    Arc::new(StringArray::from_iter((0..arr.len()).map(|i| {
        if arr.is_null(i) {
            None
        } else {
            Some(f(i))
        }
    })))
}

/// Renders a column as PostgreSQL text when its type needs Tempora's own
/// formatting; returns None for columns the generic encoder prints right.
pub fn render(col: &ArrayRef, session_tz: &str) -> Result<Option<ArrayRef>, ArrowError> {
    Ok(Some(match col.data_type() {
        DataType::Float64 => {
            let a = col
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| ArrowError::CastError("float8".into()))?;
            strings(a, |i| format_float(a.value(i), a.value(i).to_string(), 15))
        }
        DataType::Float32 => {
            let a = col
                .as_any()
                .downcast_ref::<Float32Array>()
                .ok_or_else(|| ArrowError::CastError("float4".into()))?;
            strings(a, |i| {
                format_float(a.value(i) as f64, a.value(i).to_string(), 6)
            })
        }
        DataType::Timestamp(_, tz) => {
            let micros = cast(col, &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))?;
            let a = micros
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .ok_or_else(|| ArrowError::CastError("timestamp".into()))?;
            match tz {
                Some(_) => {
                    let zone: chrono_tz::Tz = session_tz.parse().unwrap_or(chrono_tz::UTC);
                    strings(a, |i| format_timestamp(a.value(i), Some(&zone)))
                }
                None => strings(a, |i| format_timestamp(a.value(i), None)),
            }
        }
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f8(v: f64) -> String {
        format_float(v, v.to_string(), 15)
    }

    #[test]
    fn floats_print_as_postgres() {
        assert_eq!(f8(21.5), "21.5");
        assert_eq!(f8(40.0), "40");
        assert_eq!(f8(1e20), "1e+20");
        assert_eq!(f8(1e15), "1e+15");
        assert_eq!(f8(1e14), "100000000000000");
        assert_eq!(f8(0.0001), "0.0001");
        assert_eq!(f8(0.00001), "1e-05");
        assert_eq!(f8(-1.5e-7), "-1.5e-07");
        assert_eq!(f8(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_float(1e6, 1e6f32.to_string(), 6), "1e+06");
        assert_eq!(format_float(100000.0, 100000f32.to_string(), 6), "100000");
        assert_eq!(f8(f64::NAN), "NaN");
        assert_eq!(f8(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn timestamps_print_as_postgres() {
        let t = 1_704_067_205_000_000; // 2024-01-01 00:00:05 UTC
        assert_eq!(
            format_timestamp(t, Some(&chrono_tz::UTC)),
            "2024-01-01 00:00:05+00"
        );
        assert_eq!(format_timestamp(t + 120, None), "2024-01-01 00:00:05.00012");
        assert_eq!(
            format_timestamp(t, Some(&chrono_tz::Asia::Kolkata)),
            "2024-01-01 05:30:05+05:30"
        );
        assert_eq!(
            format_timestamp(t, Some(&chrono_tz::Europe::Berlin)),
            "2024-01-01 01:00:05+01"
        );
    }
}
