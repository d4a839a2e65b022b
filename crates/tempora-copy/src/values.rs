//! Per-type input: PostgreSQL's text input functions (int4in, float8in,
//! boolin, numeric_in, byteain, varchar, date/timestamp input) and its binary
//! receive functions, appending straight into Arrow builders.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use tempora_catalog::PgType;
use tempora_common::{SqlState, TemporaError};

use crate::datetime::{parse_datetime, DtKind, PG_EPOCH_DAYS, PG_EPOCH_USECS};
use crate::json::JsonKind;
use crate::numeric;
use crate::zone::PgTimeZone;

/// C's isspace in the "C" locale, which PostgreSQL's input functions use.
#[inline]
pub fn is_pg_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

#[inline]
fn text_of(v: &[u8]) -> &str {
    // Callers only pass validated UTF-8; stay safe regardless.
    std::str::from_utf8(v).unwrap_or("?")
}

/// Bytes the decoder has already validated as UTF-8.
#[inline]
fn utf8_unchecked(v: &[u8]) -> &str {
    debug_assert!(std::str::from_utf8(v).is_ok());
    // SAFETY: every byte the decoder hands to a column was checked by
    // simdutf8 (input) or verify_utf8 (escape results) first; `Col` is
    // crate-private so no other caller exists.
    unsafe { std::str::from_utf8_unchecked(v) }
}

fn invalid(ty: &str, v: &[u8]) -> TemporaError {
    TemporaError::new(
        SqlState::INVALID_TEXT_REPRESENTATION,
        format!("invalid input syntax for type {ty}: \"{}\"", text_of(v)),
    )
}

fn int_out_of_range(ty: &str, v: &[u8]) -> TemporaError {
    TemporaError::new(
        SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
        format!("value \"{}\" is out of range for type {ty}", text_of(v)),
    )
}

/// pg_strtoint16/32/64: surrounding whitespace, an optional sign, digits.
#[inline]
pub fn parse_int(v: &[u8], min: i64, max: i64, ty: &str) -> Result<i64, TemporaError> {
    // Fast path: [-]digits, short enough not to overflow an i64.
    let (neg, digits) = match v.first() {
        Some(b'-') => (true, &v[1..]),
        _ => (false, v),
    };
    if !digits.is_empty() && digits.len() <= 18 {
        let mut acc: i64 = 0;
        let mut ok = true;
        for &b in digits {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                ok = false;
                break;
            }
            acc = acc * 10 + d as i64;
        }
        if ok {
            let x = if neg { -acc } else { acc };
            if x < min || x > max {
                return Err(int_out_of_range(ty, v));
            }
            return Ok(x);
        }
    }
    parse_int_slow(v, min, max, ty)
}

fn parse_int_slow(v: &[u8], min: i64, max: i64, ty: &str) -> Result<i64, TemporaError> {
    let mut i = 0;
    let n = v.len();
    while i < n && is_pg_space(v[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < n && (v[i] == b'-' || v[i] == b'+') {
        neg = v[i] == b'-';
        i += 1;
    }
    if i >= n || !v[i].is_ascii_digit() {
        return Err(invalid(ty, v));
    }
    // PostgreSQL accumulates towards the minimum and fails as soon as the
    // magnitude passes it, before looking at what follows.
    let limit = (min as i128).unsigned_abs();
    let mut mag: u128 = 0;
    while i < n && v[i].is_ascii_digit() {
        mag = mag * 10 + (v[i] - b'0') as u128;
        if mag > limit {
            return Err(int_out_of_range(ty, v));
        }
        i += 1;
    }
    while i < n && is_pg_space(v[i]) {
        i += 1;
    }
    if i < n {
        return Err(invalid(ty, v));
    }
    if !neg && mag > max as u128 {
        return Err(int_out_of_range(ty, v));
    }
    Ok(if neg {
        -(mag as i128) as i64
    } else {
        mag as i64
    })
}

fn has_nonzero_mantissa(tok: &str) -> bool {
    for c in tok.bytes() {
        match c {
            b'e' | b'E' => return false,
            b'1'..=b'9' => return true,
            _ => {}
        }
    }
    false
}

fn is_inf_literal(tok: &str) -> bool {
    let t = tok.trim_start_matches(['+', '-']);
    t.eq_ignore_ascii_case("inf") || t.eq_ignore_ascii_case("infinity")
}

/// float8in / float4in.
#[inline]
pub fn parse_float(v: &[u8], is32: bool) -> Result<f64, TemporaError> {
    // Fast path, small enough to inline: [-]digits that the type holds
    // exactly (every TSBS metric).
    let (neg, digits) = match v.first() {
        Some(b'-') => (true, &v[1..]),
        _ => (false, v),
    };
    let exact = if is32 { 7 } else { 15 };
    if !digits.is_empty() && digits.len() <= exact {
        let mut acc: i64 = 0;
        let mut ok = true;
        for &b in digits {
            let d = b.wrapping_sub(b'0');
            ok &= d < 10;
            acc = acc * 10 + d as i64;
        }
        if ok {
            let x = acc as f64;
            return Ok(if neg { -x } else { x });
        }
    }
    parse_float_text(v, is32)
}

/// [`parse_float`] for everything but plain digits.
#[inline(never)]
fn parse_float_text(v: &[u8], is32: bool) -> Result<f64, TemporaError> {
    let ty = if is32 { "real" } else { "double precision" };
    let s = text_of(v);
    let tok = s.trim_matches(|c: char| c.is_ascii() && is_pg_space(c as u8));
    if tok.is_empty() {
        return Err(invalid(ty, v));
    }
    let out_of_range = || {
        TemporaError::new(
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            format!("\"{tok}\" is out of range for type {ty}"),
        )
    };
    if is32 {
        let x: f32 = tok.parse().map_err(|_| invalid(ty, v))?;
        if (x.is_infinite() && !is_inf_literal(tok)) || (x == 0.0 && has_nonzero_mantissa(tok)) {
            return Err(out_of_range());
        }
        Ok(x as f64)
    } else {
        let x: f64 = tok.parse().map_err(|_| invalid(ty, v))?;
        if (x.is_infinite() && !is_inf_literal(tok)) || (x == 0.0 && has_nonzero_mantissa(tok)) {
            return Err(out_of_range());
        }
        Ok(x)
    }
}

/// boolin: t/true/y/yes/on/1, f/false/n/no/off/0, unique prefixes, any case.
#[inline]
pub fn parse_bool(v: &[u8]) -> Result<bool, TemporaError> {
    match v {
        b"t" | b"true" => return Ok(true),
        b"f" | b"false" => return Ok(false),
        _ => {}
    }
    let mut s = 0;
    let mut e = v.len();
    while s < e && is_pg_space(v[s]) {
        s += 1;
    }
    while e > s && is_pg_space(v[e - 1]) {
        e -= 1;
    }
    let t = &v[s..e];
    let len = t.len();
    let prefix_of = |word: &str, min: usize| {
        len >= min && len <= word.len() && word.as_bytes()[..len].eq_ignore_ascii_case(t)
    };
    let r = match t.first().map(|c| c.to_ascii_lowercase()) {
        Some(b't') if prefix_of("true", 1) => Some(true),
        Some(b'f') if prefix_of("false", 1) => Some(false),
        Some(b'y') if prefix_of("yes", 1) => Some(true),
        Some(b'n') if prefix_of("no", 1) => Some(false),
        Some(b'o') if prefix_of("on", 2) => Some(true),
        Some(b'o') if prefix_of("off", 2) => Some(false),
        Some(b'1') if len == 1 => Some(true),
        Some(b'0') if len == 1 => Some(false),
        _ => None,
    };
    r.ok_or_else(|| invalid("boolean", v))
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// byteain: `\x` hex (whitespace between digit pairs allowed) or the escape
/// form (`\\`, `\ooo`).
pub fn parse_bytea(v: &[u8], out: &mut Vec<u8>) -> Result<(), TemporaError> {
    out.clear();
    if v.len() >= 2 && v[0] == b'\\' && v[1] == b'x' {
        let mut i = 2;
        while i < v.len() {
            let c = v[i];
            if matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                i += 1;
                continue;
            }
            let bad_digit = |at: usize| {
                let ch = text_of(&v[at..]).chars().next().unwrap_or('?');
                TemporaError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    format!("invalid hexadecimal digit: \"{ch}\""),
                )
            };
            let hi = hex_val(c).ok_or_else(|| bad_digit(i))?;
            i += 1;
            if i >= v.len() {
                return Err(TemporaError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    "invalid hexadecimal data: odd number of digits",
                ));
            }
            let lo = hex_val(v[i]).ok_or_else(|| bad_digit(i))?;
            i += 1;
            out.push(hi << 4 | lo);
        }
        return Ok(());
    }
    let mut i = 0;
    while i < v.len() {
        if v[i] != b'\\' {
            out.push(v[i]);
            i += 1;
        } else if i + 3 < v.len()
            && (b'0'..=b'3').contains(&v[i + 1])
            && (b'0'..=b'7').contains(&v[i + 2])
            && (b'0'..=b'7').contains(&v[i + 3])
        {
            out.push(((v[i + 1] - b'0') << 6) | ((v[i + 2] - b'0') << 3) | (v[i + 3] - b'0'));
            i += 4;
        } else if i + 1 < v.len() && v[i + 1] == b'\\' {
            out.push(b'\\');
            i += 2;
        } else {
            return Err(TemporaError::new(
                SqlState::INVALID_TEXT_REPRESENTATION,
                "invalid input syntax for type bytea",
            ));
        }
    }
    Ok(())
}

/// uuid_in: 32 hex digits, in either case, optionally in braces, with a
/// hyphen allowed after any group of four; stored as the canonical text
/// (lowercase, 8-4-4-4-12).
pub fn uuid_in(v: &str) -> Result<String, TemporaError> {
    uuid_bytes(v).map(|b| uuid_text(&b))
}

/// The 16 bytes of a uuid in any form [`uuid_in`] reads.
pub fn uuid_bytes(v: &str) -> Result<[u8; 16], TemporaError> {
    let bad = || {
        TemporaError::new(
            SqlState::INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type uuid: \"{v}\""),
        )
    };
    let inner = match v.strip_prefix('{') {
        Some(rest) => rest.strip_suffix('}').ok_or_else(bad)?,
        None => v,
    };
    let mut bytes = [0u8; 16];
    let mut digits = 0usize;
    let mut chars = inner.bytes().peekable();
    while let Some(c) = chars.next() {
        let d = match c {
            b'-' if digits > 0 && digits.is_multiple_of(4) && digits < 32 => {
                if !chars.peek().is_some_and(u8::is_ascii_hexdigit) {
                    return Err(bad());
                }
                continue;
            }
            c => (c as char).to_digit(16).ok_or_else(bad)? as u8,
        };
        if digits == 32 {
            return Err(bad());
        }
        bytes[digits / 2] |= if digits.is_multiple_of(2) { d << 4 } else { d };
        digits += 1;
    }
    if digits != 32 {
        return Err(bad());
    }
    Ok(bytes)
}

/// A uuid's canonical text: lowercase hex, hyphens after digits 8, 12, 16
/// and 20.
pub fn uuid_text(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// varchar(n): too long is an error unless the excess is all spaces, which
/// are cut. Returns the accepted prefix.
#[inline]
pub fn check_varchar(v: &str, max: u32) -> Result<&str, TemporaError> {
    let max = max as usize;
    if v.len() <= max {
        return Ok(v);
    }
    match v.char_indices().nth(max) {
        None => Ok(v),
        Some((cut, _)) => {
            if v.as_bytes()[cut..].iter().all(|&b| b == b' ') {
                Ok(&v[..cut])
            } else {
                Err(TemporaError::new(
                    SqlState::STRING_DATA_RIGHT_TRUNCATION,
                    format!("value too long for type character varying({max})"),
                ))
            }
        }
    }
}

/// Values an INSERT or UPDATE computed, as stored in `table`'s columns:
/// PostgreSQL's assignment rules for the types whose values are text in
/// Arrow. A `varchar(n)` value longer than `n` is an error (unless the
/// excess is spaces, which are cut), a `json` value must be JSON, and a
/// `jsonb` value is stored normalized ([`crate::json`]). `batch` is in the
/// table's layout; it comes back unchanged when no column needs this.
pub fn assign(
    table: &tempora_catalog::TableDef,
    batch: datafusion::arrow::array::RecordBatch,
) -> Result<datafusion::arrow::array::RecordBatch, TemporaError> {
    use datafusion::arrow::array::{Array, AsArray, StringArray};
    let mut columns = batch.columns().to_vec();
    let mut changed = false;
    for (i, c) in table.columns.iter().enumerate() {
        let rule: &dyn Fn(&str) -> Result<Option<String>, TemporaError> = match &c.ty {
            PgType::Varchar(Some(max)) => &|v: &str| {
                let kept = check_varchar(v, *max)?;
                Ok((kept.len() != v.len()).then(|| kept.to_string()))
            },
            PgType::Json => &|v: &str| JsonKind::Json.input(v).map(|_| None),
            PgType::Jsonb => &|v: &str| JsonKind::Jsonb.input(v).map(|t| (t != v).then_some(t)),
            PgType::Uuid => &|v: &str| uuid_in(v).map(|t| (t != v).then_some(t)),
            _ => continue,
        };
        let Some(strings) = columns.get(i).and_then(|a| a.as_string_opt::<i32>()) else {
            continue;
        };
        let mut out: Option<Vec<Option<String>>> = None;
        for row in 0..strings.len() {
            if strings.is_null(row) {
                continue;
            }
            if let Some(new) = rule(strings.value(row))? {
                let all = out
                    .get_or_insert_with(|| strings.iter().map(|v| v.map(str::to_string)).collect());
                all[row] = Some(new);
            }
        }
        if let Some(values) = out {
            columns[i] = Arc::new(StringArray::from(values));
            changed = true;
        }
    }
    if !changed {
        return Ok(batch);
    }
    datafusion::arrow::array::RecordBatch::try_new(batch.schema(), columns)
        .map_err(|e| TemporaError::internal(e.to_string()))
}

/// The encoding error PostgreSQL reports for invalid UTF-8, naming the bytes
/// of the offending sequence (as many as its first byte announces).
pub fn invalid_utf8(bytes: &[u8]) -> TemporaError {
    let first = bytes.first().copied().unwrap_or(0);
    let l = if first & 0x80 == 0 {
        1
    } else if first & 0xe0 == 0xc0 {
        2
    } else if first & 0xf0 == 0xe0 {
        3
    } else if first & 0xf8 == 0xf0 {
        4
    } else {
        1
    };
    let shown: Vec<String> = bytes
        .iter()
        .take(l.min(bytes.len()))
        .map(|b| format!("0x{b:02x}"))
        .collect();
    TemporaError::new(
        SqlState::CHARACTER_NOT_IN_REPERTOIRE,
        format!(
            "invalid byte sequence for encoding \"UTF8\": {}",
            shown.join(" ")
        ),
    )
}

/// Checks that bytes are UTF-8 without NUL, as PostgreSQL's pg_verifymbstr.
pub fn verify_utf8(v: &[u8]) -> Result<&str, TemporaError> {
    match simdutf8::compat::from_utf8(v) {
        Ok(s) => match memchr::memchr(0, v) {
            None => Ok(s),
            Some(p) => Err(invalid_utf8(&v[p..])),
        },
        Err(e) => {
            let upto = e.valid_up_to();
            let p = memchr::memchr(0, &v[..upto]).unwrap_or(upto);
            Err(invalid_utf8(&v[p..]))
        }
    }
}

fn short_data() -> TemporaError {
    TemporaError::new(
        SqlState::PROTOCOL_VIOLATION,
        "insufficient data left in message",
    )
}

fn wrong_format() -> TemporaError {
    TemporaError::new(
        SqlState::INVALID_BINARY_REPRESENTATION,
        "incorrect binary data format",
    )
}

#[inline]
fn fixed<const N: usize>(v: &[u8]) -> Result<[u8; N], TemporaError> {
    if v.len() < N {
        return Err(short_data());
    }
    if v.len() > N {
        return Err(wrong_format());
    }
    let mut a = [0u8; N];
    a.copy_from_slice(v);
    Ok(a)
}

/// One target column's Arrow builder and input rules.
pub(crate) enum Col {
    Bool(BooleanBuilder),
    Int2(Int16Builder),
    Int4(Int32Builder),
    Int8(Int64Builder),
    Float4(Float32Builder),
    Float8(Float64Builder),
    Numeric(Decimal128Builder, u8, i8),
    Text(StringBuilder, Option<u32>),
    Timestamp(TimestampMicrosecondBuilder, DtKind),
    Date(Date32Builder),
    Bytea(BinaryBuilder),
    Json(StringBuilder, JsonKind),
    Uuid(StringBuilder),
}

impl Col {
    /// A builder for `capacity` rows and, for text and bytea, `data_bytes`
    /// bytes of values (so that a batch fills without reallocating).
    pub fn new(ty: &PgType, capacity: usize, data_bytes: usize) -> Col {
        match ty {
            PgType::Bool => Col::Bool(BooleanBuilder::with_capacity(capacity)),
            PgType::Int2 => Col::Int2(Int16Builder::with_capacity(capacity)),
            PgType::Int4 => Col::Int4(Int32Builder::with_capacity(capacity)),
            PgType::Int8 => Col::Int8(Int64Builder::with_capacity(capacity)),
            PgType::Float4 => Col::Float4(Float32Builder::with_capacity(capacity)),
            PgType::Float8 => Col::Float8(Float64Builder::with_capacity(capacity)),
            PgType::Numeric { precision, scale } => Col::Numeric(
                Decimal128Builder::with_capacity(capacity).with_data_type(ty.arrow_type()),
                *precision,
                *scale,
            ),
            PgType::Text => Col::Text(StringBuilder::with_capacity(capacity, data_bytes), None),
            PgType::Varchar(n) => Col::Text(StringBuilder::with_capacity(capacity, data_bytes), *n),
            PgType::Timestamptz => Col::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity)
                    .with_data_type(ty.arrow_type()),
                DtKind::Timestamptz,
            ),
            PgType::Timestamp => Col::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity),
                DtKind::Timestamp,
            ),
            PgType::Date => Col::Date(Date32Builder::with_capacity(capacity)),
            PgType::Bytea => Col::Bytea(BinaryBuilder::with_capacity(capacity, data_bytes)),
            PgType::Json => Col::Json(
                StringBuilder::with_capacity(capacity, data_bytes),
                JsonKind::Json,
            ),
            PgType::Jsonb => Col::Json(
                StringBuilder::with_capacity(capacity, data_bytes),
                JsonKind::Jsonb,
            ),
            PgType::Uuid => Col::Uuid(StringBuilder::with_capacity(capacity, capacity * 36)),
        }
    }

    pub fn append_null(&mut self) {
        match self {
            Col::Bool(b) => b.append_null(),
            Col::Int2(b) => b.append_null(),
            Col::Int4(b) => b.append_null(),
            Col::Int8(b) => b.append_null(),
            Col::Float4(b) => b.append_null(),
            Col::Float8(b) => b.append_null(),
            Col::Numeric(b, ..) => b.append_null(),
            Col::Text(b, _) => b.append_null(),
            Col::Timestamp(b, _) => b.append_null(),
            Col::Date(b) => b.append_null(),
            Col::Bytea(b) => b.append_null(),
            Col::Json(b, _) | Col::Uuid(b) => b.append_null(),
        }
    }

    /// Bytes of text or bytea values appended so far.
    pub fn data_len(&self) -> usize {
        match self {
            Col::Text(b, _) | Col::Json(b, _) => b.values_slice().len(),
            Col::Bytea(b) => b.values_slice().len(),
            _ => 0,
        }
    }

    /// Appends a value given in PostgreSQL's text input form. `v` must be
    /// valid UTF-8 (the decoder validates all input before splitting it).
    #[inline]
    pub fn append_text(
        &mut self,
        v: &[u8],
        tz: &PgTimeZone,
        scratch: &mut Vec<u8>,
    ) -> Result<(), TemporaError> {
        match self {
            Col::Text(b, max) => {
                let s = utf8_unchecked(v);
                match max {
                    None => b.append_value(s),
                    Some(m) => b.append_value(check_varchar(s, *m)?),
                }
            }
            Col::Float8(b) => b.append_value(parse_float(v, false)?),
            Col::Float4(b) => b.append_value(parse_float(v, true)? as f32),
            Col::Timestamp(b, kind) => {
                b.append_value(parse_datetime(utf8_unchecked(v), *kind, tz)?)
            }
            Col::Int4(b) => {
                b.append_value(parse_int(v, i32::MIN as i64, i32::MAX as i64, "integer")? as i32)
            }
            Col::Int8(b) => b.append_value(parse_int(v, i64::MIN, i64::MAX, "bigint")?),
            Col::Int2(b) => {
                b.append_value(parse_int(v, i16::MIN as i64, i16::MAX as i64, "smallint")? as i16)
            }
            Col::Bool(b) => b.append_value(parse_bool(v)?),
            Col::Numeric(b, p, s) => b.append_value(numeric::parse_numeric(v, *p, *s, scratch)?),
            Col::Date(b) => b.append_value(crate::datetime::parse_date(utf8_unchecked(v), tz)?),
            Col::Bytea(b) => {
                parse_bytea(v, scratch)?;
                b.append_value(&scratch[..]);
            }
            Col::Json(b, kind) => b.append_value(kind.input(utf8_unchecked(v))?),
            Col::Uuid(b) => b.append_value(uuid_in(utf8_unchecked(v))?),
        }
        Ok(())
    }

    /// Appends one column's values of consecutive rows (None is NULL), as
    /// [`Col::append_text`] would one by one. Runs of the same timestamp
    /// text (every series of one tick, in time-major data) are parsed once.
    /// On error, some of the values may have been appended.
    pub fn append_texts<'a>(
        &mut self,
        values: impl Iterator<Item = Option<&'a [u8]>>,
        tz: &PgTimeZone,
        scratch: &mut Vec<u8>,
    ) -> Result<(), TemporaError> {
        match self {
            Col::Float8(b) => {
                for v in values {
                    match v {
                        Some(v) => b.append_value(parse_float(v, false)?),
                        None => b.append_null(),
                    }
                }
            }
            Col::Text(b, None) => {
                for v in values {
                    match v {
                        Some(v) => b.append_value(utf8_unchecked(v)),
                        None => b.append_null(),
                    }
                }
            }
            Col::Timestamp(b, kind) => {
                let mut last: Option<(&[u8], i64)> = None;
                for v in values {
                    let Some(v) = v else {
                        b.append_null();
                        continue;
                    };
                    let t = match last {
                        Some((text, t)) if text == v => t,
                        _ => parse_datetime(utf8_unchecked(v), *kind, tz)?,
                    };
                    last = Some((v, t));
                    b.append_value(t);
                }
            }
            _ => {
                for v in values {
                    match v {
                        Some(v) => self.append_text(v, tz, scratch)?,
                        None => self.append_null(),
                    }
                }
            }
        }
        Ok(())
    }

    /// Appends a value given in PostgreSQL's binary (send) format.
    pub fn append_binary(&mut self, v: &[u8], scratch: &mut Vec<u8>) -> Result<(), TemporaError> {
        match self {
            Col::Bool(b) => b.append_value(fixed::<1>(v)?[0] != 0),
            Col::Int2(b) => b.append_value(i16::from_be_bytes(fixed(v)?)),
            Col::Int4(b) => b.append_value(i32::from_be_bytes(fixed(v)?)),
            Col::Int8(b) => b.append_value(i64::from_be_bytes(fixed(v)?)),
            Col::Float4(b) => b.append_value(f32::from_be_bytes(fixed(v)?)),
            Col::Float8(b) => b.append_value(f64::from_be_bytes(fixed(v)?)),
            Col::Numeric(b, p, s) => b.append_value(numeric::decode_binary(v, *p, *s, scratch)?),
            Col::Text(b, max) => {
                let s = verify_utf8(v)?;
                match max {
                    None => b.append_value(s),
                    Some(m) => b.append_value(check_varchar(s, *m)?),
                }
            }
            Col::Timestamp(b, _) => {
                let t = i64::from_be_bytes(fixed(v)?);
                let range = || {
                    TemporaError::new(SqlState::DATETIME_FIELD_OVERFLOW, "timestamp out of range")
                };
                if t == i64::MIN || t == i64::MAX {
                    return Err(range());
                }
                b.append_value(t.checked_add(PG_EPOCH_USECS).ok_or_else(range)?);
            }
            Col::Date(b) => {
                let d = i32::from_be_bytes(fixed(v)?);
                let range =
                    || TemporaError::new(SqlState::DATETIME_FIELD_OVERFLOW, "date out of range");
                if d == i32::MIN || d == i32::MAX {
                    return Err(range());
                }
                b.append_value(d.checked_add(PG_EPOCH_DAYS as i32).ok_or_else(range)?);
            }
            Col::Bytea(b) => b.append_value(v),
            Col::Json(b, kind) => {
                // jsonb_send writes a format version (1) before the text.
                let text = match (*kind, v.split_first()) {
                    (JsonKind::Jsonb, Some((1, text))) => text,
                    (JsonKind::Jsonb, _) => {
                        return Err(TemporaError::new(
                            SqlState::INVALID_BINARY_REPRESENTATION,
                            "unsupported jsonb version number",
                        ))
                    }
                    (JsonKind::Json, _) => v,
                };
                b.append_value(kind.input(verify_utf8(text)?)?);
            }
            Col::Uuid(b) => b.append_value(uuid_text(&fixed::<16>(v)?)),
        }
        Ok(())
    }

    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Int2(b) => Arc::new(b.finish()),
            Col::Int4(b) => Arc::new(b.finish()),
            Col::Int8(b) => Arc::new(b.finish()),
            Col::Float4(b) => Arc::new(b.finish()),
            Col::Float8(b) => Arc::new(b.finish()),
            Col::Numeric(b, ..) => Arc::new(b.finish()),
            Col::Text(b, _) => Arc::new(b.finish()),
            Col::Timestamp(b, _) => Arc::new(b.finish()),
            Col::Date(b) => Arc::new(b.finish()),
            Col::Bytea(b) => Arc::new(b.finish()),
            Col::Json(b, _) | Col::Uuid(b) => Arc::new(b.finish()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i4(s: &str) -> Result<i64, TemporaError> {
        parse_int(s.as_bytes(), i32::MIN as i64, i32::MAX as i64, "integer")
    }

    #[test]
    fn uuids_read_in_every_form_postgres_reads() {
        let canonical = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        for form in [
            canonical,
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
            "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
        ] {
            assert_eq!(uuid_in(form).unwrap(), canonical, "{form}");
        }
        for bad in [
            "",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
            "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",
            "-a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
            "a0eeb-c99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1é",
        ] {
            let e = uuid_in(bad).unwrap_err();
            assert_eq!(e.code, SqlState::INVALID_TEXT_REPRESENTATION, "{bad}");
        }
    }

    #[test]
    fn integers() {
        assert_eq!(i4("12").unwrap(), 12);
        assert_eq!(i4(" 12 ").unwrap(), 12);
        assert_eq!(i4("+5").unwrap(), 5);
        assert_eq!(i4("-2147483648").unwrap(), i32::MIN as i64);
        assert_eq!(i4("\t7\n").unwrap(), 7);
        let e = i4("abc").unwrap_err();
        assert_eq!(e.code, SqlState::INVALID_TEXT_REPRESENTATION);
        assert_eq!(e.message, "invalid input syntax for type integer: \"abc\"");
        assert_eq!(
            i4("").unwrap_err().message,
            "invalid input syntax for type integer: \"\""
        );
        assert_eq!(
            i4("12abc").unwrap_err().code,
            SqlState::INVALID_TEXT_REPRESENTATION
        );
        assert_eq!(
            i4("1 2").unwrap_err().code,
            SqlState::INVALID_TEXT_REPRESENTATION
        );
        assert_eq!(
            i4("- 1").unwrap_err().code,
            SqlState::INVALID_TEXT_REPRESENTATION
        );
        let e = i4("99999999999").unwrap_err();
        assert_eq!(e.code, SqlState::NUMERIC_VALUE_OUT_OF_RANGE);
        assert_eq!(
            e.message,
            "value \"99999999999\" is out of range for type integer"
        );
        // Overflow is found while reading digits, before trailing junk.
        assert_eq!(
            i4("99999999999abc").unwrap_err().code,
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE
        );
        assert_eq!(
            i4("2147483648").unwrap_err().code,
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE
        );
        assert_eq!(
            i4("2147483648x").unwrap_err().code,
            SqlState::INVALID_TEXT_REPRESENTATION
        );
        let e = parse_int(b"40000", -32768, 32767, "smallint").unwrap_err();
        assert_eq!(
            e.message,
            "value \"40000\" is out of range for type smallint"
        );
        let e = parse_int(b"99999999999999999999", i64::MIN, i64::MAX, "bigint").unwrap_err();
        assert_eq!(
            e.message,
            "value \"99999999999999999999\" is out of range for type bigint"
        );
        assert_eq!(
            parse_int(b"-9223372036854775808", i64::MIN, i64::MAX, "bigint").unwrap(),
            i64::MIN
        );
    }

    #[test]
    fn floats() {
        let f = |s: &str| parse_float(s.as_bytes(), false);
        assert_eq!(f("58").unwrap(), 58.0);
        assert_eq!(f("-58").unwrap(), -58.0);
        assert_eq!(f(" 1.5e3 ").unwrap(), 1500.0);
        assert!(f("NaN").unwrap().is_nan());
        assert_eq!(f("-inf").unwrap(), f64::NEG_INFINITY);
        assert_eq!(f("INFINITY").unwrap(), f64::INFINITY);
        assert_eq!(f("+Infinity").unwrap(), f64::INFINITY);
        assert_eq!(f(".5").unwrap(), 0.5);
        assert_eq!(f("5.").unwrap(), 5.0);
        assert_eq!(f("+1E+2").unwrap(), 100.0);
        assert!(f("1e-320").unwrap() > 0.0);
        let e = f("1e400").unwrap_err();
        assert_eq!(e.code, SqlState::NUMERIC_VALUE_OUT_OF_RANGE);
        assert_eq!(
            e.message,
            "\"1e400\" is out of range for type double precision"
        );
        assert_eq!(
            f(" 1e400 ").unwrap_err().message,
            "\"1e400\" is out of range for type double precision"
        );
        assert_eq!(
            f("1e-400").unwrap_err().message,
            "\"1e-400\" is out of range for type double precision"
        );
        let e = f("abc").unwrap_err();
        assert_eq!(e.code, SqlState::INVALID_TEXT_REPRESENTATION);
        assert_eq!(
            e.message,
            "invalid input syntax for type double precision: \"abc\""
        );
        assert_eq!(
            f("").unwrap_err().code,
            SqlState::INVALID_TEXT_REPRESENTATION
        );
        let g = |s: &str| parse_float(s.as_bytes(), true);
        assert_eq!(g("1.5").unwrap(), 1.5);
        assert_eq!(
            g("1e39").unwrap_err().message,
            "\"1e39\" is out of range for type real"
        );
        assert_eq!(
            g("1e-50").unwrap_err().message,
            "\"1e-50\" is out of range for type real"
        );
        assert_eq!(
            g("x").unwrap_err().message,
            "invalid input syntax for type real: \"x\""
        );
        assert_eq!(g("123456789").unwrap(), 123456789f32 as f64);
    }

    #[test]
    fn booleans() {
        for t in ["t", "true", "TRUE", "tr", " YES ", "y", "on", "ON", "1"] {
            assert!(parse_bool(t.as_bytes()).unwrap(), "{t}");
        }
        for f in ["f", "false", "fa", "no", "n", "off", "of", "OFF", "0"] {
            assert!(!parse_bool(f.as_bytes()).unwrap(), "{f}");
        }
        for bad in ["o", "truex", "", "2", "yess", "10"] {
            let e = parse_bool(bad.as_bytes()).unwrap_err();
            assert_eq!(e.code, SqlState::INVALID_TEXT_REPRESENTATION);
            assert_eq!(
                e.message,
                format!("invalid input syntax for type boolean: \"{bad}\"")
            );
        }
    }

    #[test]
    fn bytea_input() {
        let mut o = Vec::new();
        parse_bytea(b"\\x0a0B", &mut o).unwrap();
        assert_eq!(o, vec![0x0a, 0x0b]);
        parse_bytea(b"\\x 0a 0b", &mut o).unwrap();
        assert_eq!(o, vec![0x0a, 0x0b]);
        parse_bytea(b"a\\\\b\\001", &mut o).unwrap();
        assert_eq!(o, b"a\\b\x01".to_vec());
        let e = parse_bytea(b"\\x0g", &mut o).unwrap_err();
        assert_eq!(e.code, SqlState::INVALID_PARAMETER_VALUE);
        assert_eq!(e.message, "invalid hexadecimal digit: \"g\"");
        let e = parse_bytea(b"\\x0", &mut o).unwrap_err();
        assert_eq!(e.message, "invalid hexadecimal data: odd number of digits");
        let e = parse_bytea(b"a\\b", &mut o).unwrap_err();
        assert_eq!(e.code, SqlState::INVALID_TEXT_REPRESENTATION);
        assert_eq!(e.message, "invalid input syntax for type bytea");
        assert!(parse_bytea(b"\\400", &mut o).is_err());
    }

    #[test]
    fn varchar_limits() {
        assert_eq!(check_varchar("abc", 5).unwrap(), "abc");
        assert_eq!(check_varchar("abc    ", 5).unwrap(), "abc  ");
        assert_eq!(check_varchar("ééééé", 5).unwrap(), "ééééé");
        let e = check_varchar("abcdefg", 5).unwrap_err();
        assert_eq!(e.code, SqlState::STRING_DATA_RIGHT_TRUNCATION);
        assert_eq!(e.message, "value too long for type character varying(5)");
        assert!(check_varchar("éééééé", 5).is_err());
    }

    #[test]
    fn utf8_errors_name_the_bytes() {
        assert_eq!(
            verify_utf8(b"a\xffb").unwrap_err().message,
            "invalid byte sequence for encoding \"UTF8\": 0xff"
        );
        assert_eq!(
            verify_utf8(b"c\xc3(").unwrap_err().message,
            "invalid byte sequence for encoding \"UTF8\": 0xc3 0x28"
        );
        assert_eq!(
            verify_utf8(b"c\xe2\x82").unwrap_err().message,
            "invalid byte sequence for encoding \"UTF8\": 0xe2 0x82"
        );
        let e = verify_utf8(b"a\0b").unwrap_err();
        assert_eq!(e.code, SqlState::CHARACTER_NOT_IN_REPERTOIRE);
        assert_eq!(
            e.message,
            "invalid byte sequence for encoding \"UTF8\": 0x00"
        );
    }
}
