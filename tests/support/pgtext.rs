//! Rendering of binary (extended protocol) result values as PostgreSQL's
//! text output would show them, so that a test file gives the same text
//! whether a query ran through the simple protocol (text results from the
//! server) or through the extended protocol (binary results, as tokio-postgres
//! always requests them).
//!
//! Assumptions, mirroring PostgreSQL 15 defaults: `DateStyle = ISO, MDY`,
//! `IntervalStyle = postgres`, `extra_float_digits = 1` (shortest round-trip
//! floats) and a session `TimeZone` of UTC (timestamptz is always rendered in
//! UTC with a `+00` suffix, so test files print timestamps after
//! `SET timezone = 'UTC'`).

use std::error::Error;
use std::fmt::Write as _;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use tokio_postgres::types::{FromSql, Kind, Type};

type BoxError = Box<dyn Error + Sync + Send>;

/// A column value exactly as it came over the wire: `None` for SQL NULL.
/// Accepts every type, so any column can be read with `row.try_get::<_, Raw>(i)`.
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(Some(raw)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Raw(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A NUMERIC value decoded from its binary form into PostgreSQL's text form
/// (for example `12.50`, `-0.001`, `NaN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgNumeric(pub String);

impl<'a> FromSql<'a> for PgNumeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(PgNumeric(numeric_to_text(raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

/// Renders one binary value of type `ty` the way PostgreSQL's text output
/// shows it. NULL is rendered as `NULL`. Values that cannot be decoded fall
/// back to their bytes as UTF-8 text, or `\x`-hex when they are not UTF-8.
pub fn render(ty: &Type, raw: Option<&[u8]>) -> String {
    match raw {
        None => "NULL".to_string(),
        Some(bytes) => to_text(ty, bytes),
    }
}

/// The text form of a non-NULL binary value of type `ty`.
pub fn to_text(ty: &Type, raw: &[u8]) -> String {
    decode(ty, raw).unwrap_or_else(|_| fallback(raw))
}

fn fallback(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(s) if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => s.to_string(),
        _ => hex(raw),
    }
}

fn hex(raw: &[u8]) -> String {
    let mut s = String::with_capacity(2 + raw.len() * 2);
    s.push_str("\\x");
    for b in raw {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn need(raw: &[u8], n: usize) -> Result<(), BoxError> {
    if raw.len() == n {
        Ok(())
    } else {
        Err(format!("expected {n} bytes, got {}", raw.len()).into())
    }
}

fn be_i16(raw: &[u8]) -> i16 {
    i16::from_be_bytes([raw[0], raw[1]])
}
fn be_u16(raw: &[u8]) -> u16 {
    u16::from_be_bytes([raw[0], raw[1]])
}
fn be_i32(raw: &[u8]) -> i32 {
    i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]])
}
fn be_u32(raw: &[u8]) -> u32 {
    u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]])
}
fn be_i64(raw: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&raw[..8]);
    i64::from_be_bytes(b)
}

fn decode(ty: &Type, raw: &[u8]) -> Result<String, BoxError> {
    match *ty {
        Type::BOOL => {
            need(raw, 1)?;
            Ok(if raw[0] != 0 { "t" } else { "f" }.to_string())
        }
        Type::INT2 => {
            need(raw, 2)?;
            Ok(be_i16(raw).to_string())
        }
        Type::INT4 => {
            need(raw, 4)?;
            Ok(be_i32(raw).to_string())
        }
        Type::INT8 => {
            need(raw, 8)?;
            Ok(be_i64(raw).to_string())
        }
        // OID-valued types. regclass & co are shown by name in text output,
        // which the binary form cannot give: the number is the best we have.
        Type::OID
        | Type::XID
        | Type::CID
        | Type::REGCLASS
        | Type::REGPROC
        | Type::REGPROCEDURE
        | Type::REGTYPE
        | Type::REGOPER
        | Type::REGOPERATOR
        | Type::REGNAMESPACE
        | Type::REGROLE => {
            need(raw, 4)?;
            Ok(be_u32(raw).to_string())
        }
        Type::FLOAT4 => {
            need(raw, 4)?;
            Ok(format_float4(f32::from_bits(be_u32(raw))))
        }
        Type::FLOAT8 => {
            need(raw, 8)?;
            Ok(format_float8(f64::from_bits(be_i64(raw) as u64)))
        }
        Type::NUMERIC => numeric_to_text(raw),
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::UNKNOWN
        | Type::JSON
        | Type::XML => Ok(String::from_utf8(raw.to_vec())?),
        Type::JSONB => {
            if raw.first() != Some(&1) {
                return Err("unsupported jsonb version".into());
            }
            Ok(String::from_utf8(raw[1..].to_vec())?)
        }
        Type::CHAR => {
            need(raw, 1)?;
            Ok(String::from_utf8(raw.to_vec())?)
        }
        Type::BYTEA => Ok(hex(raw)),
        Type::UUID => {
            need(raw, 16)?;
            let h: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            Ok(format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            ))
        }
        Type::TIMESTAMP => {
            need(raw, 8)?;
            Ok(format_timestamp(be_i64(raw)))
        }
        Type::TIMESTAMPTZ => {
            need(raw, 8)?;
            let us = be_i64(raw);
            if us == i64::MAX || us == i64::MIN {
                return Ok(format_timestamp(us));
            }
            // "+00" goes before a possible " BC" suffix.
            let s = format_timestamp(us);
            Ok(match s.strip_suffix(" BC") {
                Some(head) => format!("{head}+00 BC"),
                None => format!("{s}+00"),
            })
        }
        Type::DATE => {
            need(raw, 4)?;
            Ok(format_date(be_i32(raw)))
        }
        Type::TIME => {
            need(raw, 8)?;
            Ok(format_time_of_day(be_i64(raw)))
        }
        Type::TIMETZ => {
            need(raw, 12)?;
            let t = format_time_of_day(be_i64(raw));
            // Stored as seconds *west* of UTC.
            let west = be_i32(&raw[8..]);
            Ok(format!("{t}{}", format_tz_offset(-west)))
        }
        Type::INTERVAL => {
            need(raw, 16)?;
            Ok(format_interval(
                be_i64(raw),
                be_i32(&raw[8..]),
                be_i32(&raw[12..]),
            ))
        }
        _ => match ty.kind() {
            Kind::Array(elem) => decode_array(elem, raw),
            Kind::Domain(base) => decode(base, raw),
            Kind::Enum(_) => Ok(String::from_utf8(raw.to_vec())?),
            _ if *ty == Type::RECORD || matches!(ty.kind(), Kind::Composite(_)) => {
                decode_record(raw)
            }
            _ => Err(format!("no binary decoder for type {}", ty.name()).into()),
        },
    }
}

/// Text of a float8 as PostgreSQL 12+ prints it (`extra_float_digits >= 1`):
/// the shortest digits that read back to the same value, fixed notation
/// when the decimal exponent is in [-4, 15), otherwise `1e+20` style with
/// at least two exponent digits.
pub fn format_float8(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sci = pg_shortest(&format!("{v:.1100e}"), 17, |s| s.parse::<f64>() == Ok(v))
        .unwrap_or_else(|| format!("{v:e}"));
    shortest_to_pg(&sci, 15)
}

/// Like [`format_float8`] for float4 (fixed notation for exponents in [-4, 6)).
pub fn format_float4(v: f32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sci = pg_shortest(&format!("{:.1100e}", v as f64), 9, |s| {
        s.parse::<f32>() == Ok(v)
    })
    .unwrap_or_else(|| format!("{v:e}"));
    shortest_to_pg(&sci, 6)
}

/// PostgreSQL's float output (Ryu with `acceptBounds = false`) picks the
/// fewest significant digits whose decimal value lies *strictly* inside the
/// interval of numbers that read back as the value, and among those the one
/// closest to the value (ties to an even last digit). Rust's `{:e}` differs
/// now and then (it accepts a decimal on the interval's edge and breaks ties
/// upwards), so this searches PostgreSQL's answer. `exact` is the exact
/// expansion of the value in scientific notation (`{:.1100e}`), `max_digits`
/// 17 (float8) or 9 (float4); `reads_back` tells whether a decimal string
/// parses back to the value. Returns Rust-style scientific text (`1.5e-5`).
fn pg_shortest(
    exact: &str,
    max_digits: usize,
    reads_back: impl Fn(&str) -> bool,
) -> Option<String> {
    let (sign, body) = match exact.strip_prefix('-') {
        Some(b) => ("-", b),
        None => ("", exact),
    };
    let (mantissa, exp) = body.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let x: Vec<u8> = mantissa.bytes().filter(|b| *b != b'.').collect();
    let build = |digits: &[u8], e: i32| -> String {
        let mut d = digits.to_vec();
        while d.len() > 1 && d.last() == Some(&b'0') {
            d.pop();
        }
        let mut out = String::from(sign);
        out.push(d[0] as char);
        if d.len() > 1 {
            out.push('.');
            out.extend(d[1..].iter().map(|b| *b as char));
        }
        format!("{out}e{e}")
    };
    // Strictly inside the interval: reads back, and so do the decimals a
    // hair above and below it.
    let valid = |digits: &[u8], e: i32| -> bool {
        let s = build(digits, e);
        if !reads_back(&s) {
            return false;
        }
        let (m, ex) = s.split_once('e').unwrap();
        let m = if m.contains('.') {
            m.to_string()
        } else {
            format!("{m}.")
        };
        let up = format!("{m}{}1e{ex}", "0".repeat(60));
        let mut dm: Vec<u8> = m.bytes().collect();
        // Decrement the last significant digit and append nines: value - tiny.
        let last = dm.iter().rposition(|b| b.is_ascii_digit()).unwrap();
        if dm[last] == b'0' {
            // Only "0." can end in 0 here; zero is never on an edge.
            return reads_back(&up);
        }
        dm[last] -= 1;
        let down = format!("{}{}e{ex}", String::from_utf8(dm).unwrap(), "9".repeat(60));
        reads_back(&up) && reads_back(&down)
    };
    for p in 1..=max_digits.min(x.len() - 1) {
        let lo = &x[..p];
        let rest = &x[p..];
        if rest.iter().all(|d| *d == b'0') {
            return Some(build(lo, exp));
        }
        // hi = lo + one unit in the last place.
        let mut hi = lo.to_vec();
        let mut hi_exp = exp;
        let mut i = p;
        loop {
            if i == 0 {
                hi.insert(0, b'1');
                hi.pop();
                hi_exp += 1;
                break;
            }
            i -= 1;
            if hi[i] == b'9' {
                hi[i] = b'0';
            } else {
                hi[i] += 1;
                break;
            }
        }
        let pick_hi = match (valid(lo, exp), valid(&hi, hi_exp)) {
            (true, true) => match rest[0].cmp(&b'5') {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal => {
                    if rest[1..].iter().any(|d| *d != b'0') {
                        true
                    } else {
                        // Exactly halfway: the even last digit.
                        (lo[p - 1] - b'0') % 2 == 1
                    }
                }
            },
            (true, false) => false,
            (false, true) => true,
            (false, false) => continue,
        };
        return Some(if pick_hi {
            build(&hi, hi_exp)
        } else {
            build(lo, exp)
        });
    }
    None
}

/// `sci` is Rust's shortest round-trip scientific form, e.g. `-1.5e-5`.
fn shortest_to_pg(sci: &str, max_fixed_exp: i32) -> String {
    let (mantissa, exp) = sci.split_once('e').expect("scientific notation");
    let exp: i32 = exp.parse().expect("exponent");
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let sign = if neg { "-" } else { "" };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if digits.chars().all(|c| c == '0') {
        return format!("{sign}0");
    }
    if (-4..max_fixed_exp).contains(&exp) {
        let mut out = String::from(sign);
        if exp >= 0 {
            let int_len = (exp + 1) as usize;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        }
        out
    } else {
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exp.abs())
    }
}

/// Decodes the binary NUMERIC format (base-10000 digits) into text.
pub fn numeric_to_text(raw: &[u8]) -> Result<String, BoxError> {
    if raw.len() < 8 {
        return Err("numeric value too short".into());
    }
    let ndigits = be_i16(raw);
    let weight = be_i16(&raw[2..]) as i32;
    let sign = be_u16(&raw[4..]);
    let dscale = be_u16(&raw[6..]) as usize;
    if ndigits < 0 || raw.len() != 8 + 2 * ndigits as usize {
        return Err("bad numeric length".into());
    }
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => return Err(format!("bad numeric sign {sign:#x}").into()),
    }
    let digits: Vec<i16> = (0..ndigits as usize)
        .map(|i| be_i16(&raw[8 + 2 * i..]))
        .collect();
    // The digit of weight `w` (value digit * 10000^w) sits at index weight - w.
    let digit_at = |w: i32| -> i16 {
        let idx = weight - w;
        if idx >= 0 && (idx as usize) < digits.len() {
            digits[idx as usize]
        } else {
            0
        }
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        let _ = write!(out, "{}", digit_at(weight));
        for w in (0..weight).rev() {
            let _ = write!(out, "{:04}", digit_at(w));
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::new();
        let mut w = -1;
        while frac.len() < dscale {
            let _ = write!(frac, "{:04}", digit_at(w));
            w -= 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Ok(out)
}

fn pg_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
}

fn year_text(year: i32) -> (String, bool) {
    if year <= 0 {
        (format!("{:04}", 1 - year), true)
    } else {
        (format!("{year:04}"), false)
    }
}

fn frac_text(us: i64) -> String {
    if us == 0 {
        return String::new();
    }
    let s = format!(".{us:06}");
    s.trim_end_matches('0').to_string()
}

/// `us` microseconds since 2000-01-01 00:00:00, as `YYYY-MM-DD HH:MM:SS[.ffffff][ BC]`.
pub fn format_timestamp(us: i64) -> String {
    match us {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let Some(ts) = pg_epoch().checked_add_signed(Duration::microseconds(us)) else {
        return us.to_string();
    };
    use chrono::{Datelike, Timelike};
    let (year, bc) = year_text(ts.year());
    let micros = (ts.nanosecond() / 1000) as i64;
    format!(
        "{year}-{:02}-{:02} {:02}:{:02}:{:02}{}{}",
        ts.month(),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second(),
        frac_text(micros),
        if bc { " BC" } else { "" }
    )
}

/// `days` since 2000-01-01, as `YYYY-MM-DD[ BC]`.
pub fn format_date(days: i32) -> String {
    match days {
        i32::MAX => return "infinity".into(),
        i32::MIN => return "-infinity".into(),
        _ => {}
    }
    let Some(d) = NaiveDate::from_ymd_opt(2000, 1, 1)
        .unwrap()
        .checked_add_signed(Duration::days(days as i64))
    else {
        return days.to_string();
    };
    use chrono::Datelike;
    let (year, bc) = year_text(d.year());
    format!(
        "{year}-{:02}-{:02}{}",
        d.month(),
        d.day(),
        if bc { " BC" } else { "" }
    )
}

fn format_time_of_day(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    format!(
        "{:02}:{:02}:{:02}{}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        frac_text(frac)
    )
}

/// A UTC offset in seconds east, as PostgreSQL prints it: `+00`, `+05:30`, `-08`.
fn format_tz_offset(east: i32) -> String {
    let sign = if east < 0 { '-' } else { '+' };
    let a = east.abs();
    let (h, m, s) = (a / 3600, (a / 60) % 60, a % 60);
    if s != 0 {
        format!("{sign}{h:02}:{m:02}:{s:02}")
    } else if m != 0 {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}")
    }
}

/// An interval in `IntervalStyle = postgres`, e.g. `1 year 2 mons 3 days 04:05:06.5`.
pub fn format_interval(micros: i64, days: i32, months: i32) -> String {
    let mut out = String::new();
    let mut is_zero = true;
    let mut is_before = false;
    let mut part = |out: &mut String, value: i64, unit: &str| {
        if value == 0 {
            return;
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
    };
    part(&mut out, (months / 12) as i64, "year");
    part(&mut out, (months % 12) as i64, "mon");
    part(&mut out, days as i64, "day");
    if is_zero || micros != 0 {
        let neg = micros < 0;
        let a = micros.unsigned_abs();
        let secs = a / 1_000_000;
        let frac = (a % 1_000_000) as i64;
        let _ = write!(
            out,
            "{}{}{:02}:{:02}:{:02}{}",
            if is_zero { "" } else { " " },
            if neg {
                "-"
            } else if is_before {
                "+"
            } else {
                ""
            },
            secs / 3600,
            (secs / 60) % 60,
            secs % 60,
            frac_text(frac)
        );
    }
    out
}

fn type_of(oid: u32) -> Option<Type> {
    Type::from_oid(oid)
}

fn field_text(oid: u32, raw: &[u8]) -> String {
    match type_of(oid) {
        Some(t) => to_text(&t, raw),
        None => fallback(raw),
    }
}

/// `record_out` rules: `(1,public,t,t)`, NULL fields are empty, fields with
/// special characters are double-quoted.
fn decode_record(raw: &[u8]) -> Result<String, BoxError> {
    if raw.len() < 4 {
        return Err("record too short".into());
    }
    let n = be_i32(raw);
    let mut pos = 4;
    let mut out = String::from("(");
    for i in 0..n {
        if raw.len() < pos + 8 {
            return Err("record truncated".into());
        }
        let oid = be_u32(&raw[pos..]);
        let len = be_i32(&raw[pos + 4..]);
        pos += 8;
        if i > 0 {
            out.push(',');
        }
        if len < 0 {
            continue;
        }
        let len = len as usize;
        if raw.len() < pos + len {
            return Err("record field truncated".into());
        }
        let text = field_text(oid, &raw[pos..pos + len]);
        pos += len;
        let quote = text.is_empty()
            || text
                .chars()
                .any(|c| matches!(c, '"' | '\\' | '(' | ')' | ',') || c.is_ascii_whitespace());
        if quote {
            out.push('"');
            for c in text.chars() {
                if c == '"' || c == '\\' {
                    out.push(c);
                }
                out.push(c);
            }
            out.push('"');
        } else {
            out.push_str(&text);
        }
    }
    out.push(')');
    Ok(out)
}

/// `array_out` rules: `{1,2,NULL}`, `{"a b",c}`, nested braces per dimension.
fn decode_array(elem: &Type, raw: &[u8]) -> Result<String, BoxError> {
    if raw.len() < 12 {
        return Err("array too short".into());
    }
    let ndim = be_i32(raw);
    let elem_oid = be_u32(&raw[8..]);
    if ndim == 0 {
        return Ok("{}".into());
    }
    if !(1..=6).contains(&ndim) {
        return Err("bad array dimensions".into());
    }
    let ndim = ndim as usize;
    let mut pos = 12;
    let mut dims = Vec::with_capacity(ndim);
    let mut lbounds = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        if raw.len() < pos + 8 {
            return Err("array header truncated".into());
        }
        dims.push(be_i32(&raw[pos..]).max(0) as usize);
        lbounds.push(be_i32(&raw[pos + 4..]));
        pos += 8;
    }
    let elem_ty = type_of(elem_oid).unwrap_or_else(|| elem.clone());
    let total: usize = dims.iter().product();
    let mut items = Vec::with_capacity(total);
    for _ in 0..total {
        if raw.len() < pos + 4 {
            return Err("array element truncated".into());
        }
        let len = be_i32(&raw[pos..]);
        pos += 4;
        if len < 0 {
            items.push("NULL".to_string());
            continue;
        }
        let len = len as usize;
        if raw.len() < pos + len {
            return Err("array element truncated".into());
        }
        let text = to_text(&elem_ty, &raw[pos..pos + len]);
        pos += len;
        let quote = text.is_empty()
            || text.eq_ignore_ascii_case("NULL")
            || text
                .chars()
                .any(|c| matches!(c, '"' | '\\' | '{' | '}' | ',') || c.is_ascii_whitespace());
        if quote {
            let mut q = String::from("\"");
            for c in text.chars() {
                if c == '"' || c == '\\' {
                    q.push('\\');
                }
                q.push(c);
            }
            q.push('"');
            items.push(q);
        } else {
            items.push(text);
        }
    }
    let mut out = String::new();
    if lbounds.iter().any(|lb| *lb != 1) {
        for (d, lb) in dims.iter().zip(&lbounds) {
            let _ = write!(out, "[{}:{}]", lb, *lb as i64 + *d as i64 - 1);
        }
        out.push('=');
    }
    let mut it = items.into_iter();
    nest(&dims, &mut it, &mut out);
    Ok(out)
}

fn nest(dims: &[usize], items: &mut impl Iterator<Item = String>, out: &mut String) {
    out.push('{');
    for i in 0..dims[0] {
        if i > 0 {
            out.push(',');
        }
        if dims.len() == 1 {
            out.push_str(&items.next().unwrap_or_default());
        } else {
            nest(&dims[1..], items, out);
        }
    }
    out.push('}');
}

#[cfg(test)]
#[allow(unused_imports, clippy::excessive_precision)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_postgres() {
        assert_eq!(format_float8(21.5), "21.5");
        assert_eq!(format_float8(40.0), "40");
        assert_eq!(format_float8(1e20), "1e+20");
        assert_eq!(format_float8(1e15), "1e+15");
        assert_eq!(format_float8(123456789012345.0), "123456789012345");
        assert_eq!(format_float8(0.0001), "0.0001");
        assert_eq!(format_float8(0.00001), "1e-05");
        assert_eq!(format_float8(-1.5e-7), "-1.5e-07");
        assert_eq!(format_float8(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_float8(-0.0), "-0");
        assert_eq!(format_float8(f64::NAN), "NaN");
        assert_eq!(format_float8(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(format_float4(1e6), "1e+06");
        assert_eq!(format_float4(123456.0), "123456");
        assert_eq!(format_float4(1234567.0), "1.234567e+06");
        assert_eq!(format_float4(51.5), "51.5");
        assert_eq!(format_float4(0.1), "0.1");
        // Exact ties between two shortest candidates go to the even digit.
        assert_eq!(format_float4(2306867.25), "2.3068672e+06");
        assert_eq!(format_float4(4613734.5), "4.6137345e+06");
        // A shortest candidate on the edge of the round-trip interval is
        // not used: PostgreSQL prints one more digit.
        assert_eq!(
            format_float8(4.7815241111614784e16),
            "4.7815241111614784e+16"
        );
        assert_eq!(format_float4(43909791.6163369f64 as f32), "4.3909792e+07");
        assert_eq!(format_float4(133843504.0), "1.33843504e+08");
        assert_eq!(
            format_float8(6.6001965090657904e16),
            "6.6001965090657904e+16"
        );
        // Powers of two: the interval is narrower below the value.
        assert_eq!(format_float8(2f64.powi(-140)), "7.174648137343064e-43");
        assert_eq!(format_float8(5e-324), "5e-324");
        assert_eq!(format_float8(f64::MAX), "1.7976931348623157e+308");
        assert_eq!(format_float8(9.999e-5), "9.999e-05");
        assert_eq!(format_float4(f32::MIN_POSITIVE), "1.1754944e-38");
    }

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&ndigits.to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics() {
        // 12.50
        assert_eq!(
            numeric_to_text(&numeric(2, 0, 0, 2, &[12, 5000])).unwrap(),
            "12.50"
        );
        // -123456.789
        assert_eq!(
            numeric_to_text(&numeric(3, 1, 0x4000, 3, &[12, 3456, 7890])).unwrap(),
            "-123456.789"
        );
        // 0.00012
        assert_eq!(
            numeric_to_text(&numeric(2, -1, 0, 5, &[1, 2000])).unwrap(),
            "0.00012"
        );
        assert_eq!(
            numeric_to_text(&numeric(1, -1, 0, 4, &[12])).unwrap(),
            "0.0012"
        );
        // 0.000001 (weight -2)
        assert_eq!(
            numeric_to_text(&numeric(1, -2, 0, 6, &[100])).unwrap(),
            "0.000001"
        );
        // 10000 (trailing zero groups omitted)
        assert_eq!(
            numeric_to_text(&numeric(1, 1, 0, 0, &[1])).unwrap(),
            "10000"
        );
        assert_eq!(numeric_to_text(&numeric(0, 0, 0, 2, &[])).unwrap(), "0.00");
        assert_eq!(
            numeric_to_text(&numeric(0, 0, 0xC000, 0, &[])).unwrap(),
            "NaN"
        );
    }

    #[test]
    fn datetimes() {
        assert_eq!(format_timestamp(0), "2000-01-01 00:00:00");
        assert_eq!(format_timestamp(1_500_000), "2000-01-01 00:00:01.5");
        assert_eq!(format_date(-1), "1999-12-31");
        assert_eq!(format_interval(0, 0, 0), "00:00:00");
        assert_eq!(format_interval(900_000_000, 0, 0), "00:15:00");
        assert_eq!(format_interval(0, 1, 0), "1 day");
        assert_eq!(format_interval(0, 0, 14), "1 year 2 mons");
        assert_eq!(format_interval(7_200_000_000, -1, 0), "-1 days +02:00:00");
        assert_eq!(format_interval(-3_600_000_000, 0, 0), "-01:00:00");
        assert_eq!(format_tz_offset(19800), "+05:30");
    }
}
