//! `numeric(p, s)` stored as Decimal128: PostgreSQL's text input, its binary
//! send/receive format (base-10000 digits), and its rounding and overflow rules.

use tempora_common::{SqlState, TemporaError};

use crate::values::is_pg_space;

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

fn pow10(n: u32) -> i128 {
    10i128.pow(n)
}

pub fn overflow(precision: u8, scale: i8) -> TemporaError {
    let maxdigits = precision as i32 - scale as i32;
    let bound = if maxdigits != 0 {
        format!("10^{maxdigits}")
    } else {
        "1".to_string()
    };
    TemporaError::new(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, "numeric field overflow").with_detail(
        format!(
            "A field with precision {precision}, scale {scale} must round to an absolute value less than {bound}."
        ),
    )
}

fn infinite(precision: u8, scale: i8) -> TemporaError {
    TemporaError::new(
        SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
        "numeric field overflow",
    )
    .with_detail(format!(
        "A field with precision {precision}, scale {scale} cannot hold an infinite value."
    ))
}

fn nan() -> TemporaError {
    TemporaError::new(
        SqlState::FEATURE_NOT_SUPPORTED,
        "numeric NaN cannot be stored in a column of type numeric(p,s)",
    )
}

/// Rounds `0.d1d2d3... × 10^point` (sign separate, `digits` without leading
/// zeros, each 0..=9) to `scale` fractional digits, half away from zero,
/// and returns it as the unscaled Decimal128 value.
pub fn round_to_i128(
    neg: bool,
    digits: &[u8],
    point: i64,
    precision: u8,
    scale: i8,
) -> Result<i128, TemporaError> {
    if digits.is_empty() {
        return Ok(0);
    }
    let keep = point + scale as i64;
    if keep < 0 {
        return Ok(0);
    }
    // Digits of the unscaled value before rounding; more than precision + 1
    // means overflow whatever the rounding does.
    if keep > precision as i64 + 1 {
        return Err(overflow(precision, scale));
    }
    let keep = keep as usize;
    let mut v: i128 = 0;
    for i in 0..keep {
        v = v * 10 + *digits.get(i).unwrap_or(&0) as i128;
    }
    if keep < digits.len() && digits[keep] >= 5 {
        v += 1;
    }
    if v >= pow10(precision as u32) {
        return Err(overflow(precision, scale));
    }
    Ok(if neg { -v } else { v })
}

/// PostgreSQL's numeric_in followed by apply_typmod.
pub fn parse_numeric(
    text: &[u8],
    precision: u8,
    scale: i8,
    scratch: &mut Vec<u8>,
) -> Result<i128, TemporaError> {
    let bad = || {
        TemporaError::new(
            SqlState::INVALID_TEXT_REPRESENTATION,
            format!(
                "invalid input syntax for type numeric: \"{}\"",
                String::from_utf8_lossy(text)
            ),
        )
    };
    let mut i = 0;
    let n = text.len();
    while i < n && is_pg_space(text[i]) {
        i += 1;
    }
    // Special values.
    let rest = &text[i..];
    let starts =
        |p: &str| rest.len() >= p.len() && rest[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    let special = if starts("nan") {
        Some((3, 0))
    } else if starts("infinity") {
        Some((8, 1))
    } else if starts("+infinity") {
        Some((9, 1))
    } else if starts("-infinity") {
        Some((9, -1))
    } else if starts("inf") {
        Some((3, 1))
    } else if starts("+inf") {
        Some((4, 1))
    } else if starts("-inf") {
        Some((4, -1))
    } else {
        None
    };
    if let Some((len, kind)) = special {
        if !rest[len..].iter().all(|&b| is_pg_space(b)) {
            return Err(bad());
        }
        return Err(if kind == 0 {
            nan()
        } else {
            infinite(precision, scale)
        });
    }
    let mut neg = false;
    if i < n && (text[i] == b'+' || text[i] == b'-') {
        neg = text[i] == b'-';
        i += 1;
    }
    scratch.clear();
    let mut have_dp = false;
    let mut int_digits: i64 = 0;
    let mut any = false;
    let mut seen_nonzero = false;
    if i < n && text[i] == b'.' {
        have_dp = true;
        i += 1;
    }
    if i >= n || !text[i].is_ascii_digit() {
        return Err(bad());
    }
    // point: position of the decimal point relative to the first kept digit.
    let mut leading_frac_zeros: i64 = 0;
    while i < n {
        let c = text[i];
        if c.is_ascii_digit() {
            any = true;
            let d = c - b'0';
            if !seen_nonzero && d == 0 {
                if have_dp {
                    leading_frac_zeros += 1;
                }
            } else {
                seen_nonzero = true;
                scratch.push(d);
                if !have_dp {
                    int_digits += 1;
                }
            }
            i += 1;
        } else if c == b'.' {
            if have_dp {
                return Err(bad());
            }
            have_dp = true;
            i += 1;
        } else {
            break;
        }
    }
    if !any {
        return Err(bad());
    }
    let mut exponent: i64 = 0;
    if i < n && (text[i] == b'e' || text[i] == b'E') {
        i += 1;
        let mut eneg = false;
        if i < n && (text[i] == b'+' || text[i] == b'-') {
            eneg = text[i] == b'-';
            i += 1;
        }
        let st = i;
        let mut e: i64 = 0;
        while i < n && text[i].is_ascii_digit() {
            e = e.saturating_mul(10).saturating_add((text[i] - b'0') as i64);
            i += 1;
        }
        if i == st {
            return Err(bad());
        }
        if e >= (i32::MAX / 2) as i64 {
            return Err(TemporaError::new(
                SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                "value overflows numeric format",
            ));
        }
        exponent = if eneg { -e } else { e };
    }
    while i < n {
        if !is_pg_space(text[i]) {
            return Err(bad());
        }
        i += 1;
    }
    // Trailing zeros carry no value.
    while scratch.last() == Some(&0) {
        scratch.pop();
    }
    let point = if int_digits > 0 {
        int_digits
    } else {
        -leading_frac_zeros
    } + exponent;
    round_to_i128(neg, scratch, point, precision, scale)
}

/// PostgreSQL's numeric_recv followed by apply_typmod.
pub fn decode_binary(
    data: &[u8],
    precision: u8,
    scale: i8,
    scratch: &mut Vec<u8>,
) -> Result<i128, TemporaError> {
    let short = || {
        TemporaError::new(
            SqlState::PROTOCOL_VIOLATION,
            "insufficient data left in message",
        )
    };
    let bad = |what: &str| {
        TemporaError::new(
            SqlState::INVALID_BINARY_REPRESENTATION,
            format!("invalid {what} in external \"numeric\" value"),
        )
    };
    if data.len() < 8 {
        return Err(short());
    }
    let ndigits = u16::from_be_bytes([data[0], data[1]]) as usize;
    let weight = i16::from_be_bytes([data[2], data[3]]) as i64;
    let sign = u16::from_be_bytes([data[4], data[5]]);
    let dscale = u16::from_be_bytes([data[6], data[7]]);
    if !matches!(
        sign,
        NUMERIC_POS | NUMERIC_NEG | NUMERIC_NAN | NUMERIC_PINF | NUMERIC_NINF
    ) {
        return Err(bad("sign"));
    }
    if dscale & 0x3FFF != dscale {
        return Err(bad("scale"));
    }
    if data.len() < 8 + 2 * ndigits {
        return Err(short());
    }
    if data.len() > 8 + 2 * ndigits {
        return Err(TemporaError::new(
            SqlState::INVALID_BINARY_REPRESENTATION,
            "incorrect binary data format",
        ));
    }
    scratch.clear();
    for k in 0..ndigits {
        let d = i16::from_be_bytes([data[8 + 2 * k], data[9 + 2 * k]]);
        if !(0..10000).contains(&d) {
            return Err(bad("digit"));
        }
        let d = d as u16;
        scratch.extend_from_slice(&[
            (d / 1000) as u8,
            (d / 100 % 10) as u8,
            (d / 10 % 10) as u8,
            (d % 10) as u8,
        ]);
    }
    match sign {
        NUMERIC_NAN => return Err(nan()),
        NUMERIC_PINF | NUMERIC_NINF => return Err(infinite(precision, scale)),
        _ => {}
    }
    let mut point = (weight + 1) * 4;
    // Truncate digits hidden by dscale, as numeric_recv does.
    let visible = point + dscale as i64;
    if visible < scratch.len() as i64 {
        scratch.truncate(visible.max(0) as usize);
    }
    let lead = scratch.iter().take_while(|&&d| d == 0).count();
    scratch.drain(..lead);
    point -= lead as i64;
    while scratch.last() == Some(&0) {
        scratch.pop();
    }
    round_to_i128(sign == NUMERIC_NEG, scratch, point, precision, scale)
}

/// PostgreSQL's numeric_send of a Decimal128 value with `scale`.
pub fn encode_binary(value: i128, scale: i8, out: &mut Vec<u8>) {
    let neg = value < 0;
    let mut dec = value.unsigned_abs().to_string().into_bytes();
    // numeric(p, -s) values are integers: append the implied zeros.
    let mut s = scale as i32;
    while s < 0 {
        dec.push(b'0');
        s += 1;
    }
    let s = s as usize;
    let dscale = s as u16;
    if dec.len() <= s {
        let mut padded = vec![b'0'; s + 1 - dec.len()];
        padded.extend_from_slice(&dec);
        dec = padded;
    }
    let (int_part, frac) = dec.split_at(dec.len() - s);
    // Base-10000 groups: the integer part from the point leftwards, the
    // fraction from the point rightwards, padded with zeros.
    let lead = (4 - int_part.len() % 4) % 4;
    let mut int_digits: Vec<u8> = vec![b'0'; lead];
    int_digits.extend_from_slice(int_part);
    let mut frac_digits = frac.to_vec();
    while frac_digits.len() % 4 != 0 {
        frac_digits.push(b'0');
    }
    let group = |c: &[u8]| c.iter().fold(0u16, |a, d| a * 10 + (d - b'0') as u16);
    let mut digits: Vec<u16> = int_digits.chunks(4).map(group).collect();
    let mut weight = digits.len() as i32 - 1;
    digits.extend(frac_digits.chunks(4).map(group));
    // Strip leading and trailing zero groups.
    let lead = digits.iter().take_while(|&&d| d == 0).count();
    digits.drain(..lead);
    weight -= lead as i32;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    out.extend_from_slice(&(digits.len() as u16).to_be_bytes());
    out.extend_from_slice(&(weight as i16).to_be_bytes());
    let sign = if neg && !digits.is_empty() {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    };
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
}

/// PostgreSQL's text for a Decimal128 value: exactly `scale` fractional digits.
pub fn format_decimal(value: i128, scale: i8, out: &mut String) {
    use std::fmt::Write;
    if scale <= 0 {
        if value == 0 {
            out.push('0');
            return;
        }
        let _ = write!(out, "{value}");
        for _ in 0..(-(scale as i32)) {
            out.push('0');
        }
        return;
    }
    let s = scale as u32;
    let mag = value.unsigned_abs();
    let ten = 10u128.pow(s);
    if value < 0 {
        out.push('-');
    }
    let _ = write!(
        out,
        "{}.{:0width$}",
        mag / ten,
        mag % ten,
        width = s as usize
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str, p: u8, sc: i8) -> Result<i128, TemporaError> {
        parse_numeric(s.as_bytes(), p, sc, &mut Vec::new())
    }

    #[test]
    fn text_input_rounds_half_away_from_zero() {
        assert_eq!(num("12.345", 5, 2).unwrap(), 1235);
        assert_eq!(num("-0.005", 5, 2).unwrap(), -1);
        assert_eq!(num("0.005", 5, 2).unwrap(), 1);
        assert_eq!(num("0.004", 5, 2).unwrap(), 0);
        assert_eq!(num("1e2", 5, 2).unwrap(), 10000);
        assert_eq!(num(" 1.5 ", 4, 1).unwrap(), 15);
        assert_eq!(num("5.", 4, 1).unwrap(), 50);
        assert_eq!(num(".5", 4, 1).unwrap(), 5);
        assert_eq!(num("000123.4500", 10, 3).unwrap(), 123450);
        assert_eq!(num("1.5e-3", 10, 4).unwrap(), 15);
        assert_eq!(num("1e-2000", 10, 4).unwrap(), 0);
        assert_eq!(num("123", 3, -1).unwrap(), 12);
        assert_eq!(num("125", 3, -1).unwrap(), 13);
        assert_eq!(num("0", 3, 3).unwrap(), 0);
        assert_eq!(num("0.5", 3, 3).unwrap(), 500);
        assert_eq!(
            num("99999999999999999999999999999999999999", 38, 0).unwrap(),
            99999999999999999999999999999999999999
        );
    }

    #[test]
    fn text_input_errors() {
        let e = num("999.995", 5, 2).unwrap_err();
        assert_eq!(e.code, SqlState::NUMERIC_VALUE_OUT_OF_RANGE);
        assert_eq!(e.message, "numeric field overflow");
        assert_eq!(
            e.detail.as_deref(),
            Some(
                "A field with precision 5, scale 2 must round to an absolute value less than 10^3."
            )
        );
        let e = num("1", 3, 3).unwrap_err();
        assert_eq!(
            e.detail.as_deref(),
            Some("A field with precision 3, scale 3 must round to an absolute value less than 1.")
        );
        let e = num("1e1001", 5, 2).unwrap_err();
        assert_eq!(e.message, "numeric field overflow");
        let e = num("1e1000000000000", 5, 2).unwrap_err();
        assert_eq!(e.message, "value overflows numeric format");
        for bad in ["abc", "", " ", ".", "1.2.3", "1e", "--1", "1 2", "0x10"] {
            let e = num(bad, 5, 2).unwrap_err();
            assert_eq!(e.code, SqlState::INVALID_TEXT_REPRESENTATION, "{bad}");
            assert_eq!(
                e.message,
                format!("invalid input syntax for type numeric: \"{bad}\"")
            );
        }
        let e = num("Infinity", 5, 2).unwrap_err();
        assert_eq!(
            e.detail.as_deref(),
            Some("A field with precision 5, scale 2 cannot hold an infinite value.")
        );
        assert_eq!(
            num(" -inf ", 5, 2).unwrap_err().code,
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE
        );
        assert_eq!(
            num("NaN", 5, 2).unwrap_err().code,
            SqlState::FEATURE_NOT_SUPPORTED
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn binary_matches_postgres_bytes() {
        // Bytes from PostgreSQL 15's COPY ... (FORMAT binary).
        let cases: &[(i128, i8, &str)] = &[
            (12345678, 3, "0003000100000003000109291a7c"),
            (123456780000000, 10, "000300010000000a000109291a7c"),
            (-5000000000, 10, "0001ffff4000000a1388"),
            (0, 10, "000000000000000a"),
            (1000000, 10, "0001ffff0000000a0001"),
            (1000000000000000, 10, "000100010000000a000a"),
            (1, 10, "0001fffd0000000a0064"),
            (1234567891200000000, 10, "000400020000000a000109291a8504b0"),
            (1234500, 10, "0002ffff0000000a00010929"),
        ];
        for (v, s, want) in cases {
            let mut out = Vec::new();
            encode_binary(*v, *s, &mut out);
            assert_eq!(hex(&out), *want, "{v} scale {s}");
            let back = decode_binary(&out, 38, *s, &mut Vec::new()).unwrap();
            assert_eq!(back, *v);
        }
    }

    #[test]
    fn binary_receive_rules() {
        let mk = |nd: u16, w: i16, sign: u16, dscale: u16, digits: &[i16]| {
            let mut v = Vec::new();
            v.extend_from_slice(&nd.to_be_bytes());
            v.extend_from_slice(&w.to_be_bytes());
            v.extend_from_slice(&sign.to_be_bytes());
            v.extend_from_slice(&dscale.to_be_bytes());
            for d in digits {
                v.extend_from_slice(&d.to_be_bytes());
            }
            v
        };
        let s = &mut Vec::new();
        // 12.5678 with dscale 2 is truncated to 12.56, then rounded to 12.6.
        assert_eq!(
            decode_binary(&mk(2, 0, 0, 2, &[12, 5678]), 5, 1, s).unwrap(),
            126
        );
        assert_eq!(
            decode_binary(&mk(2, 0, 0, 2, &[12, 5650]), 5, 1, s).unwrap(),
            126
        );
        let e = decode_binary(&mk(2, 5, 0, 0, &[1, 2]), 5, 1, s).unwrap_err();
        assert_eq!(e.message, "numeric field overflow");
        let e = decode_binary(&mk(1, 0, 0x1234, 0, &[1]), 5, 1, s).unwrap_err();
        assert_eq!(e.code, SqlState::INVALID_BINARY_REPRESENTATION);
        assert_eq!(e.message, "invalid sign in external \"numeric\" value");
        let e = decode_binary(&mk(1, 0, 0, 0, &[10000]), 5, 1, s).unwrap_err();
        assert_eq!(e.message, "invalid digit in external \"numeric\" value");
        let e = decode_binary(&mk(0, 0, 0xD000, 0, &[]), 5, 1, s).unwrap_err();
        assert_eq!(
            e.detail.as_deref(),
            Some("A field with precision 5, scale 1 cannot hold an infinite value.")
        );
        let e = decode_binary(&[0, 1], 5, 1, s).unwrap_err();
        assert_eq!(e.code, SqlState::PROTOCOL_VIOLATION);
    }

    #[test]
    fn decimal_text() {
        let f = |v: i128, s: i8| {
            let mut o = String::new();
            format_decimal(v, s, &mut o);
            o
        };
        assert_eq!(f(12345678, 3), "12345.678");
        assert_eq!(f(-500, 3), "-0.500");
        assert_eq!(f(0, 3), "0.000");
        assert_eq!(f(-5, 1), "-0.5");
        assert_eq!(f(12, -1), "120");
        assert_eq!(f(0, -1), "0");
        assert_eq!(f(42, 0), "42");
    }
}
