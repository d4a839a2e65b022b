//! PostgreSQL's text output for the types where it differs from a generic
//! encoder: timestamps and dates (no trailing zero fractions, `+00` offsets
//! in the session's TimeZone, ` BC` years), floats (shortest round-trip,
//! `1e+20` exponents), numeric with its scale, intervals
//! (`1 year 2 mons 3 days 04:05:06`), bytea (`\x...`) and arrays (`{1,2}`).

use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, Decimal128Array, Float32Array, Float64Array,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::error::ArrowError;

use crate::datetime::USECS_PER_DAY;
use crate::zone::PgTimeZone;

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
    let exp = decimal_exponent(&shortest);
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

/// The decimal exponent of a nonzero number's shortest plain representation.
fn decimal_exponent(shortest: &str) -> i32 {
    let plain = shortest.trim_start_matches('-');
    let (int_part, frac_part) = plain.split_once('.').unwrap_or((plain, ""));
    let int_part = int_part.trim_start_matches('0');
    if !int_part.is_empty() {
        int_part.len() as i32 - 1
    } else {
        -(frac_part.bytes().take_while(|&b| b == b'0').count() as i32) - 1
    }
}

/// [`format_float`] appended to `out`, without allocating for the common
/// case (a finite nonzero value).
fn push_float<F: ryu::Float + Into<f64>>(v: F, max_exp: i32, out: &mut String) {
    let wide: f64 = v.into();
    if let Some(whole) = plain_integer(wide, max_exp) {
        out.push_str(itoa::Buffer::new().format(whole));
        return;
    }
    if wide.is_finite() && wide != 0.0 {
        push_shortest(ryu::Buffer::new().format_finite(v), max_exp, out);
    } else {
        out.push_str(&format_float(wide, wide.to_string(), max_exp));
    }
}

/// The integer a float prints as when it is a whole number printed in plain
/// notation, its integer's digits (below 10^15 every such float8 is exact,
/// below 10^6 every float4): readings such as 58 or 1024 need no
/// shortest-digits search. `max_exp` is 15 for float8, 6 for float4.
fn plain_integer(v: f64, max_exp: i32) -> Option<i64> {
    let whole = v as i64;
    (v != 0.0 && v.abs() < plain_limit(max_exp) && whole as f64 == v).then_some(whole)
}

/// [`plain_integer`] of a float8: the integer whose digits are its text.
pub fn float8_integer(v: f64) -> Option<i64> {
    plain_integer(v, 15)
}

/// The magnitude from which a float prints in exponent notation.
fn plain_limit(max_exp: i32) -> f64 {
    match max_exp {
        15 => 1e15,
        6 => 1e6,
        e => 10f64.powi(e),
    }
}

/// Digits gathered as bytes, as text.
fn ascii(d: &[u8]) -> &str {
    std::str::from_utf8(d).unwrap_or("")
}

/// PostgreSQL's text of a finite nonzero number whose shortest round-trip
/// digits `repr` gives, in plain or exponent notation (`-0.00012`,
/// `1.5e16`, `3e-7`): plain inside [1e-4, 10^max_exp), else `d.ddde±XX`.
fn push_shortest(repr: &str, max_exp: i32, out: &mut String) {
    let (negative, body) = match repr.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, repr),
    };
    let (mantissa, exp10) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The significant digits, and the power of ten of the first.
    let mut digits = [0u8; 64];
    let mut n = 0;
    let mut before_point = int_part.len() as i32;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        if n == 0 && b == b'0' {
            before_point -= 1;
        } else if n < digits.len() {
            digits[n] = b;
            n += 1;
        }
    }
    while n > 1 && digits[n - 1] == b'0' {
        n -= 1;
    }
    let digits = &digits[..n];
    let exp = before_point - 1 + exp10;
    if negative {
        out.push('-');
    }
    if (-4..max_exp).contains(&exp) {
        if exp >= 0 {
            let whole = (exp + 1) as usize;
            out.push_str(ascii(&digits[..whole.min(n)]));
            for _ in n..whole {
                out.push('0');
            }
            if n > whole {
                out.push('.');
                out.push_str(ascii(&digits[whole..]));
            }
        } else {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(ascii(digits));
        }
    } else {
        out.push_str(ascii(&digits[..1]));
        if n > 1 {
            out.push('.');
            out.push_str(ascii(&digits[1..]));
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

/// float8 text into `out`.
pub fn write_float8(v: f64, out: &mut String) {
    push_float(v, 15, out);
}

/// float4 text into `out`.
pub fn write_float4(v: f32, out: &mut String) {
    push_float(v, 6, out);
}

/// A UTC offset as PostgreSQL prints it: `+00`, `+05:30`, `-03:30`, `+05:21:10`.
pub fn format_offset(secs: i32) -> String {
    let mut s = String::new();
    write_offset(secs, &mut s);
    s
}

fn write_offset(secs: i32, out: &mut String) {
    out.push(if secs < 0 { '-' } else { '+' });
    let s = secs.unsigned_abs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    push_2(out, h);
    if m != 0 || sec != 0 {
        out.push(':');
        push_2(out, m);
    }
    if sec != 0 {
        out.push(':');
        push_2(out, sec);
    }
}

/// `v` in at least two digits (`05`, `12`, `123`).
fn push_2(out: &mut String, v: u32) {
    if v >= 100 {
        out.push_str(itoa::Buffer::new().format(v));
        return;
    }
    out.push(char::from(b'0' + (v / 10) as u8));
    out.push(char::from(b'0' + (v % 10) as u8));
}

/// `.ffffff` without trailing zeros, or nothing.
pub fn format_fraction(micros: u32) -> String {
    let mut s = String::new();
    write_fraction(micros, &mut s);
    s
}

fn write_fraction(micros: u32, out: &mut String) {
    debug_assert!(micros < 1_000_000);
    if micros == 0 {
        return;
    }
    out.push('.');
    let mut v = micros;
    let mut divisor = 100_000;
    while v != 0 {
        out.push(char::from(b'0' + (v / divisor) as u8));
        v %= divisor;
        divisor /= 10;
    }
}

/// Proleptic Gregorian (year, month, day) of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn write_ymd(days: i64, out: &mut String) -> bool {
    let (y, m, d) = civil_from_days(days);
    let bc = y <= 0;
    let year = if bc { 1 - y } else { y };
    if year < 10_000 {
        let year = year as u32;
        push_2(out, year / 100);
        push_2(out, year % 100);
    } else {
        out.push_str(itoa::Buffer::new().format(year));
    }
    out.push('-');
    push_2(out, m);
    out.push('-');
    push_2(out, d);
    bc
}

/// `HH:MM:SS` of seconds into a day.
fn write_hms(secs: u32, out: &mut String) {
    push_2(out, secs / 3600);
    out.push(':');
    push_2(out, secs % 3600 / 60);
    out.push(':');
    push_2(out, secs % 60);
}

/// A date (days since 1970-01-01) as PostgreSQL prints it: `2016-01-01`,
/// `0001-01-01 BC`, `infinity` (`i32::MAX` days) and `-infinity`.
pub fn write_date(days: i64, out: &mut String) {
    match days {
        d if d == i32::MAX as i64 => return out.push_str("infinity"),
        d if d == i32::MIN as i64 => return out.push_str("-infinity"),
        _ => {}
    }
    if write_ymd(days, out) {
        out.push_str(" BC");
    }
}

/// Writes a timestamp (microseconds since the epoch) in `tz` when given
/// (with its offset), as wall time otherwise.
pub fn write_timestamp(micros: i64, tz: Option<&PgTimeZone>, out: &mut String) {
    match micros {
        i64::MAX => return out.push_str("infinity"),
        i64::MIN => return out.push_str("-infinity"),
        _ => {}
    }
    let (local, off) = match tz {
        None => (micros, None),
        Some(zone) => {
            let off = zone.offset_at(micros);
            (micros + off as i64 * 1_000_000, Some(off))
        }
    };
    let days = local.div_euclid(USECS_PER_DAY);
    let rem = local.rem_euclid(USECS_PER_DAY);
    let bc = write_ymd(days, out);
    out.push(' ');
    write_hms((rem / 1_000_000) as u32, out);
    write_fraction((rem % 1_000_000) as u32, out);
    if let Some(off) = off {
        write_offset(off, out);
    }
    if bc {
        out.push_str(" BC");
    }
}

/// A timestamp in microseconds as PostgreSQL prints it, in `tz` when given.
pub fn format_timestamp(micros: i64, tz: Option<&PgTimeZone>) -> String {
    let mut s = String::with_capacity(32);
    write_timestamp(micros, tz, &mut s);
    s
}

/// A time of day in microseconds: `HH:MM:SS[.ffffff]`.
pub fn write_time(micros: i64, out: &mut String) {
    write_hms((micros / 1_000_000) as u32, out);
    write_fraction((micros % 1_000_000) as u32, out);
}

/// Microseconds as whole days (toward zero) and the rest, as PostgreSQL
/// justifies a timestamp difference.
pub fn split_days(micros: i64) -> (i32, i64) {
    let days = micros / USECS_PER_DAY;
    (days as i32, micros - days * USECS_PER_DAY)
}

/// An interval as PostgreSQL prints it with IntervalStyle `postgres`:
/// `1 year 2 mons 3 days 04:05:06.5`, `-1 days +02:00:00`, `00:00:00`.
pub fn write_interval(months: i32, days: i32, micros: i64, out: &mut String) {
    let year = months / 12;
    let mon = months % 12;
    let mut is_zero = true;
    let mut is_before = false;
    for (value, unit) in [
        (year as i64, "year"),
        (mon as i64, "mon"),
        (days as i64, "day"),
    ] {
        if value == 0 {
            continue;
        }
        let _ = write!(
            out,
            "{}{}{} {}{}",
            if is_zero { "" } else { " " },
            if is_before && value > 0 { "+" } else { "" },
            value,
            unit,
            if value != 1 { "s" } else { "" }
        );
        is_before = value < 0;
        is_zero = false;
    }
    let hour = micros / 3_600_000_000;
    let rest = micros % 3_600_000_000;
    let min = rest / 60_000_000;
    let rest = rest % 60_000_000;
    let sec = rest / 1_000_000;
    let fsec = rest % 1_000_000;
    if is_zero || hour != 0 || min != 0 || sec != 0 || fsec != 0 {
        let minus = hour < 0 || min < 0 || sec < 0 || fsec < 0;
        let _ = write!(
            out,
            "{}{}{:02}:{:02}:{:02}",
            if is_zero { "" } else { " " },
            if minus {
                "-"
            } else if is_before {
                "+"
            } else {
                ""
            },
            hour.abs(),
            min.abs(),
            sec.abs()
        );
        write_fraction(fsec.unsigned_abs() as u32, out);
    }
}

/// `\x` followed by lower-case hex digits (bytea_output = hex).
pub fn write_bytea(v: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(2 + v.len() * 2);
    out.push_str("\\x");
    for &b in v {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

/// Quotes an array element as array_out does when it needs it.
pub fn write_array_element(v: &str, out: &mut String) {
    let needs = v.is_empty()
        || v.eq_ignore_ascii_case("null")
        || v.bytes().any(|c| {
            matches!(
                c,
                b'{' | b'}' | b',' | b'"' | b'\\' | b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c
            )
        });
    if !needs {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// A text column: `f` writes value `i` into a buffer reused for every row.
fn strings(arr: &dyn Array, f: impl Fn(usize, &mut String)) -> ArrayRef {
    let mut b = datafusion::arrow::array::StringBuilder::with_capacity(arr.len(), arr.len() * 24);
    let mut buf = String::with_capacity(64);
    for i in 0..arr.len() {
        if arr.is_null(i) {
            b.append_null();
        } else {
            buf.clear();
            f(i, &mut buf);
            b.append_value(&buf);
        }
    }
    Arc::new(b.finish())
}

/// After a cast to microseconds: the infinities (`i64::MAX` / `i64::MIN` in
/// any unit) as microsecond infinities again.
fn keep_infinities(
    original: &ArrayRef,
    micros: ArrayRef,
    unit: TimeUnit,
) -> Result<ArrayRef, ArrowError> {
    if unit == TimeUnit::Microsecond {
        return Ok(micros);
    }
    let raw = cast(original, &DataType::Int64)?;
    let raw = raw
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .ok_or_else(|| ArrowError::CastError("timestamp".into()))?;
    if !raw.iter().any(|v| matches!(v, Some(i64::MAX | i64::MIN))) {
        return Ok(micros);
    }
    let m = micros
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| ArrowError::CastError("timestamp".into()))?;
    let fixed: TimestampMicrosecondArray = raw
        .iter()
        .zip(m.iter())
        .map(|(r, v)| match r {
            Some(i64::MAX) => Some(i64::MAX),
            Some(i64::MIN) => Some(i64::MIN),
            _ => v,
        })
        .collect();
    Ok(Arc::new(
        fixed.with_timezone_opt(m.timezone().map(|t| t.to_string())),
    ))
}

/// A timestamp column in microseconds when it holds an infinity (which the
/// generic encoder cannot send); None when it holds none.
pub(crate) fn timestamps_with_infinities(col: &ArrayRef) -> Result<Option<ArrayRef>, ArrowError> {
    let DataType::Timestamp(unit, tz) = col.data_type() else {
        return Ok(None);
    };
    let raw = cast(col, &DataType::Int64)?;
    let has_infinity = raw
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .is_some_and(|r| r.iter().any(|v| matches!(v, Some(i64::MAX | i64::MIN))));
    if !has_infinity {
        return Ok(None);
    }
    let micros = cast(col, &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))?;
    keep_infinities(col, micros, *unit).map(Some)
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
            strings(a, |i, out| push_float(a.value(i), 15, out))
        }
        DataType::Float32 => {
            let a = col
                .as_any()
                .downcast_ref::<Float32Array>()
                .ok_or_else(|| ArrowError::CastError("float4".into()))?;
            strings(a, |i, out| push_float(a.value(i), 6, out))
        }
        DataType::Timestamp(unit, tz) => {
            let micros = cast(col, &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))?;
            let micros = keep_infinities(col, micros, *unit)?;
            let a = micros
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .ok_or_else(|| ArrowError::CastError("timestamp".into()))?;
            match tz {
                Some(_) => {
                    let zone = PgTimeZone::of_setting(session_tz);
                    strings(a, |i, out| write_timestamp(a.value(i), Some(&zone), out))
                }
                None => strings(a, |i, out| write_timestamp(a.value(i), None, out)),
            }
        }
        DataType::Date32 => {
            // PostgreSQL's form, infinities and BC dates included.
            let a = col
                .as_any()
                .downcast_ref::<Date32Array>()
                .ok_or_else(|| ArrowError::CastError("date".into()))?;
            strings(a, |i, out| write_date(a.value(i) as i64, out))
        }
        DataType::Duration(_) => {
            // A difference of timestamps: whole days, then the time, as
            // PostgreSQL's timestamp subtraction gives (1 day 03:00:00).
            let micros = cast(col, &DataType::Duration(TimeUnit::Microsecond))?;
            let a = micros
                .as_any()
                .downcast_ref::<datafusion::arrow::array::DurationMicrosecondArray>()
                .ok_or_else(|| ArrowError::CastError("interval".into()))?;
            strings(a, |i, out| {
                let (days, rem) = split_days(a.value(i));
                write_interval(0, days, rem, out);
            })
        }
        DataType::Interval(_) => {
            // Every interval unit as month-day-nano, nulls kept.
            let mdn = cast(
                col,
                &DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano),
            )?;
            let a = mdn
                .as_any()
                .downcast_ref::<datafusion::arrow::array::IntervalMonthDayNanoArray>()
                .ok_or_else(|| ArrowError::CastError("interval".into()))?;
            strings(a, |i, out| {
                let v = a.value(i);
                write_interval(v.months, v.days, v.nanoseconds / 1000, out);
            })
        }
        DataType::Decimal128(_, scale) => {
            // numeric: exactly `scale` fractional digits, at any precision
            // (the generic encoder goes through a 28-digit decimal).
            let a = col
                .as_any()
                .downcast_ref::<Decimal128Array>()
                .ok_or_else(|| ArrowError::CastError("numeric".into()))?;
            strings(a, |i, out| {
                crate::numeric::format_decimal(a.value(i), *scale, out)
            })
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            // Elements as their own output function prints them, quoted
            // where PostgreSQL quotes them: `{"1 day",25:00:00}`.
            let text = crate::encode::output_text(col, session_tz)
                .map_err(|e| ArrowError::CastError(e.to_string()))?;
            std::sync::Arc::new(text)
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

    fn w8(v: f64) -> String {
        let mut s = String::new();
        write_float8(v, &mut s);
        s
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
        assert_eq!(f8(1e300), "1e+300");
        assert_eq!(f8(-1.5e-300), "-1.5e-300");
        assert_eq!(f8(f64::MAX), "1.7976931348623157e+308");
        assert_eq!(f8(9.999999999999999e14), "999999999999999.9");
        assert_eq!(format_float(3.4e38, 3.4e38f32.to_string(), 6), "3.4e+38");
        for v in [
            58.0,
            -3.0,
            123456789012345.0,
            1e15,
            1e20,
            0.1,
            -0.0,
            0.0,
            2.5,
        ] {
            assert_eq!(w8(v), f8(v), "{v}");
        }
    }

    /// The column renderer's buffer-reusing path prints what format_float does.
    #[test]
    fn pushed_floats_equal_formatted_ones() {
        let mut out = String::from("keep|");
        for v in [
            21.5,
            40.0,
            1e20,
            1e15,
            1e14,
            0.0001,
            0.00001,
            -1.5e-7,
            0.1 + 0.2,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            f64::MAX,
            9.999999999999999e14,
            -123.25,
        ] {
            out.truncate(5);
            push_float(v, 15, &mut out);
            assert_eq!(&out[5..], f8(v), "{v}");
            assert_eq!(&out[..5], "keep|");
        }
        for v in [1e6f32, 100000.0, 3.4e38, 0.1, -2.5e-5] {
            let mut s = String::new();
            push_float(v, 6, &mut s);
            assert_eq!(s, format_float(v as f64, v.to_string(), 6), "{v}");
        }
    }

    /// Ryu's digits (PostgreSQL prints floats with Ryu too), laid out as
    /// PostgreSQL does, equal the layout of Rust's own shortest digits over
    /// values of every magnitude. Where a value lies halfway between two
    /// shortest candidates the two may pick different last digits; both then
    /// read back to the value.
    #[test]
    fn pushed_floats_match_over_many_values() {
        fn same<T: std::str::FromStr + PartialEq + std::fmt::Debug>(got: &str, want: &str, v: T) {
            if got != want {
                assert_eq!(got.len(), want.len(), "{got} vs {want}");
                assert_eq!(got.parse::<T>().ok(), Some(v), "{got} vs {want}");
            }
        }
        let mut bits: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut s = String::new();
        for _ in 0..200_000 {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            let v = f64::from_bits(bits);
            s.clear();
            push_float(v, 15, &mut s);
            if v.is_finite() {
                same(&s, &f8(v), v);
            } else {
                assert_eq!(s, f8(v));
            }
            let w = f32::from_bits(bits as u32);
            s.clear();
            push_float(w, 6, &mut s);
            if w.is_finite() {
                same(&s, &format_float(w as f64, w.to_string(), 6), w);
            } else {
                assert_eq!(s, format_float(w as f64, w.to_string(), 6));
            }
        }
        // PostgreSQL 15: SELECT 312985.125::float4 gives 312985.12.
        s.clear();
        push_float(312_985.125_f64 as f32, 6, &mut s);
        assert_eq!(s, "312985.12");
        for v in [
            1.0,
            10.0,
            123.0,
            1e14,
            1e-4,
            1.5e-4,
            9.5e14,
            1e15 - 1.0,
            0.5,
        ] {
            s.clear();
            push_float(v, 15, &mut s);
            assert_eq!(s, f8(v), "{v}");
        }
    }

    /// Whole numbers take the integer path; it prints what the digit
    /// search does, up to where exponent notation starts.
    #[test]
    fn whole_floats_print_as_their_digits() {
        let mut s = String::new();
        let mut wide: Vec<f64> = (-3000..3000).map(|i| i as f64 * 7919.0).collect();
        wide.extend([
            1.0,
            -1.0,
            999_999_999_999_999.0,
            -999_999_999_999_999.0,
            1e15,
            -1e15,
        ]);
        wide.extend([4_503_599_627_370_496.0, 1e16, 123_456_789_012_345.0]);
        for v in wide {
            s.clear();
            push_float(v, 15, &mut s);
            assert_eq!(s, f8(v), "{v}");
        }
        let narrow = [
            1.0f32,
            58.0,
            -58.0,
            999_999.0,
            1e6,
            -1e6,
            16_777_216.0,
            123_456.0,
        ];
        for v in narrow {
            s.clear();
            push_float(v, 6, &mut s);
            assert_eq!(s, format_float(v as f64, v.to_string(), 6), "{v}");
        }
    }

    #[test]
    fn timestamps_print_as_postgres() {
        let t = 1_704_067_205_000_000; // 2024-01-01 00:00:05 UTC
        assert_eq!(
            format_timestamp(t, Some(&PgTimeZone::Named(chrono_tz::UTC))),
            "2024-01-01 00:00:05+00"
        );
        assert_eq!(format_timestamp(t + 120, None), "2024-01-01 00:00:05.00012");
        assert_eq!(
            format_timestamp(t, Some(&PgTimeZone::Named(chrono_tz::Asia::Kolkata))),
            "2024-01-01 05:30:05+05:30"
        );
        assert_eq!(
            format_timestamp(t, Some(&PgTimeZone::Named(chrono_tz::Europe::Berlin))),
            "2024-01-01 01:00:05+01"
        );
        // Fixed offsets print as PostgreSQL prints them: hours, minutes
        // only when there are some.
        for (setting, text) in [
            ("+03:00", "2023-12-31 21:00:05-03"),
            ("-08", "2023-12-31 16:00:05-08"),
            ("5.5", "2024-01-01 05:30:05+05:30"),
        ] {
            let zone = PgTimeZone::of_setting(setting);
            assert_eq!(format_timestamp(t, Some(&zone)), text, "{setting}");
        }
        // Local mean time before standard zones.
        let t1900 = -2_208_988_800_000_000; // 1900-01-01 00:00:00 UTC
        assert_eq!(
            format_timestamp(t1900, Some(&PgTimeZone::Named(chrono_tz::Asia::Kolkata))),
            "1900-01-01 05:21:10+05:21:10"
        );
        // 0001-01-01 00:00:00 BC
        let bc = -62_167_219_200_000_000;
        assert_eq!(format_timestamp(bc, None), "0001-01-01 00:00:00 BC");
        let mut d = String::new();
        write_date(-719_528, &mut d);
        assert_eq!(d, "0001-01-01 BC");
        // Years past 9999 take as many digits as they need; fractions keep
        // their leading zeros; offsets west of UTC with minutes.
        let y10k = 253_402_300_800_000_000; // 10000-01-01 00:00:00 UTC
        assert_eq!(format_timestamp(y10k, None), "10000-01-01 00:00:00");
        assert_eq!(
            format_timestamp(y10k + 7, None),
            "10000-01-01 00:00:00.000007"
        );
        assert_eq!(
            format_timestamp(t + 999_999, None),
            "2024-01-01 00:00:05.999999"
        );
        assert_eq!(
            format_timestamp(t, Some(&PgTimeZone::Named(chrono_tz::America::St_Johns))),
            "2023-12-31 20:30:05-03:30"
        );
        let mut time = String::new();
        write_time(86_400_000_000, &mut time);
        assert_eq!(time, "24:00:00");
        time.clear();
        write_time(3_723_040_000, &mut time);
        assert_eq!(time, "01:02:03.04");
    }

    fn iv(m: i32, d: i32, us: i64) -> String {
        let mut s = String::new();
        write_interval(m, d, us, &mut s);
        s
    }

    #[test]
    fn intervals_print_as_postgres() {
        assert_eq!(iv(0, 1, 2 * 3_600_000_000), "1 day 02:00:00");
        assert_eq!(
            iv(-14, 3, -(4 * 3600 + 5 * 60 + 6) * 1_000_000 - 500_000),
            "-1 years -2 mons +3 days -04:05:06.5"
        );
        assert_eq!(iv(0, 0, 0), "00:00:00");
        assert_eq!(iv(1, -1, 0), "1 mon -1 days");
        assert_eq!(iv(0, 0, 25 * 3_600_000_000), "25:00:00");
        assert_eq!(iv(-23, 0, 0), "-1 years -11 mons");
        assert_eq!(iv(12, 0, 0), "1 year");
    }

    #[test]
    fn arrays_quote_elements() {
        let mut s = String::new();
        for (i, e) in ["a b", "", "NULL", "x\"y\\z", "c,d", "plain"]
            .iter()
            .enumerate()
        {
            if i > 0 {
                s.push(',');
            }
            write_array_element(e, &mut s);
        }
        assert_eq!(s, r#""a b","","NULL","x\"y\\z","c,d",plain"#);
    }
}
