//! PostgreSQL's bytea functions: `encode`, `decode`, `octet_length` and
//! `get_byte`, with its formats and errors.
//!
//! DataFusion's `encode(x, 'base64')` leaves out the `=` padding, its
//! errors are XX000 and it has no `escape` format; its `octet_length` takes
//! no bytea. These replace them under the same names:
//! - `encode(bytea, 'hex' | 'base64' | 'escape')`: base64 with padding and
//!   a newline after every 76 characters, as PostgreSQL writes it;
//! - `decode(text, format)`: whitespace between hex digits or base64
//!   groups skipped; 22023 for a bad digit or symbol, an odd number of hex
//!   digits, a misplaced `=` or a truncated base64 text; 22P02 for a bad
//!   escape;
//! - 22023 `unrecognized encoding` for any other format;
//! - `octet_length` of text (its UTF-8 bytes) and of bytea, `length` of
//!   text (characters) and of bytea (bytes: the bytes need not be UTF-8);
//! - `byteaout(bytea)`, the `\x0102` text an explicit cast to text gives;
//! - `get_byte(bytea, n)`, 2202E past the end.
//!
//! An untyped literal given where a bytea is expected (`encode('\x0102',
//! 'hex')`) is read by bytea's input function, as PostgreSQL reads it.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Int32Builder, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use tempora_common::{SqlState, TemporaError};

use crate::pg_types::{argument_arrays, result_value};

/// What each function of this module computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Encode,
    Decode,
    OctetLength,
    Length,
    GetByte,
    /// bytea's output function: `\x` and the bytes in hex.
    Out,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ByteaFunction {
    name: &'static str,
    op: Op,
    signature: Signature,
    aliases: Vec<String>,
}

/// The functions of this module, to register over DataFusion's.
pub fn bytea_udfs() -> Vec<ScalarUDF> {
    let udf = |name, op, arity| {
        ScalarUDF::new_from_impl(ByteaFunction {
            name,
            op,
            signature: Signature::any(arity, Volatility::Immutable),
            aliases: vec![],
        })
    };
    // DataFusion's `length` is an alias of `character_length`: replaced
    // whole, with its aliases, so that no copy of the registry brings the
    // old one back under one of its names.
    let length = ScalarUDF::new_from_impl(ByteaFunction {
        name: "character_length",
        op: Op::Length,
        signature: Signature::any(1, Volatility::Immutable),
        aliases: vec!["length".into(), "char_length".into()],
    });
    vec![
        udf("encode", Op::Encode, 2),
        udf("decode", Op::Decode, 2),
        udf("octet_length", Op::OctetLength, 1),
        length,
        udf("get_byte", Op::GetByte, 2),
        byteaout_udf().as_ref().clone(),
    ]
}

/// `byteaout(bytea)`: the text a bytea prints as (`\x0102`), which an
/// explicit `::text` cast of a bytea gives (operand_types.rs).
pub fn byteaout_udf() -> Arc<ScalarUDF> {
    static UDF: std::sync::LazyLock<Arc<ScalarUDF>> = std::sync::LazyLock::new(|| {
        Arc::new(ScalarUDF::new_from_impl(ByteaFunction {
            name: "byteaout",
            op: Op::Out,
            signature: Signature::any(1, Volatility::Immutable),
            aliases: vec![],
        }))
    });
    UDF.clone()
}

fn df(e: TemporaError) -> datafusion::error::DataFusionError {
    e.into_datafusion()
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// A bytea argument's values: binary as it is, text read by bytea's input
/// function (an untyped literal), NULL kept.
fn bytea_values(a: &ArrayRef) -> Result<Vec<Option<Vec<u8>>>> {
    if is_text(a.data_type()) {
        let text = cast(a, &DataType::Utf8)?;
        return text
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(crate::pg_text::read_bytea).transpose().map_err(df))
            .collect();
    }
    let binary = cast(a, &DataType::Binary)?;
    Ok(binary
        .as_binary::<i32>()
        .iter()
        .map(|v| v.map(<[u8]>::to_vec))
        .collect())
}

/// A text argument's values.
fn text_values(a: &ArrayRef) -> Result<Vec<Option<String>>> {
    let text = cast(a, &DataType::Utf8)?;
    Ok(text
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

#[derive(Clone, Copy)]
enum Format {
    Hex,
    Base64,
    Escape,
}

fn format(name: &str) -> Result<Format> {
    match name.to_ascii_lowercase().as_str() {
        "hex" => Ok(Format::Hex),
        "base64" => Ok(Format::Base64),
        "escape" => Ok(Format::Escape),
        _ => Err(df(TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("unrecognized encoding: \"{name}\""),
        ))),
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// PostgreSQL's base64: `=` padding, a newline once a line holds 76
/// characters (also after the last full group).
fn base64_encode(bytes: &[u8], out: &mut String) {
    let mut line = 0;
    let chunks = bytes.chunks_exact(3);
    let rest = chunks.remainder();
    for c in chunks {
        let buf = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
        for shift in [18, 12, 6, 0] {
            out.push(BASE64[(buf >> shift & 0x3f) as usize] as char);
        }
        line += 4;
        if line >= 76 {
            out.push('\n');
            line = 0;
        }
    }
    if !rest.is_empty() {
        let buf = u32::from(rest[0]) << 16 | rest.get(1).map_or(0, |&b| u32::from(b) << 8);
        out.push(BASE64[(buf >> 18 & 0x3f) as usize] as char);
        out.push(BASE64[(buf >> 12 & 0x3f) as usize] as char);
        out.push(if rest.len() == 2 {
            BASE64[(buf >> 6 & 0x3f) as usize] as char
        } else {
            '='
        });
        out.push('=');
    }
}

fn invalid_parameter(message: String) -> datafusion::error::DataFusionError {
    df(TemporaError::new(
        SqlState::INVALID_PARAMETER_VALUE,
        message,
    ))
}

/// PostgreSQL's base64 decoding: whitespace skipped, `=` only where a
/// group may end, every group complete.
fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buf, mut pos, mut end) = (0u32, 0, 0);
    for c in text.chars() {
        if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        let value = if c == '=' {
            if end == 0 {
                end = match pos {
                    2 => 1,
                    3 => 2,
                    _ => {
                        return Err(invalid_parameter(
                            "unexpected \"=\" while decoding base64 sequence".into(),
                        ))
                    }
                };
            }
            0
        } else {
            BASE64
                .iter()
                .position(|&b| char::from(b) == c)
                .ok_or_else(|| {
                    invalid_parameter(format!(
                        "invalid symbol \"{c}\" found while decoding base64 sequence"
                    ))
                })? as u32
        };
        buf = buf << 6 | value;
        pos += 1;
        if pos == 4 {
            out.push((buf >> 16) as u8);
            if end == 0 || end > 1 {
                out.push((buf >> 8) as u8);
            }
            if end == 0 || end > 2 {
                out.push(buf as u8);
            }
            (buf, pos) = (0, 0);
        }
    }
    if pos != 0 {
        return Err(df(TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            "invalid base64 end sequence",
        )
        .with_hint(
            "Input data is missing padding, is truncated, or is otherwise corrupted.",
        )));
    }
    Ok(out)
}

/// PostgreSQL's hex decoding: whitespace between digit pairs skipped.
fn hex_decode(text: &str) -> Result<Vec<u8>> {
    let digit = |c: char| {
        c.to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| invalid_parameter(format!("invalid hexadecimal digit: \"{c}\"")))
    };
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut chars = text.chars();
    while let Some(hi) = chars.next() {
        if matches!(hi, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        let hi = digit(hi)?;
        let lo = chars.next().ok_or_else(|| {
            invalid_parameter("invalid hexadecimal data: odd number of digits".into())
        })?;
        out.push(hi << 4 | digit(lo)?);
    }
    Ok(out)
}

/// PostgreSQL's escape format: `\\` for a backslash, `\ooo` for a zero
/// byte or one with the high bit set.
fn escape_encode(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b == 0 || b >= 0x80 {
            out.push_str(&format!("\\{b:03o}"));
        } else if b == b'\\' {
            out.push_str("\\\\");
        } else {
            out.push(b as char);
        }
    }
}

impl ScalarUDFImpl for ByteaFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.op {
            Op::Encode | Op::Out => DataType::Utf8,
            Op::Decode => DataType::Binary,
            Op::OctetLength | Op::Length | Op::GetByte => DataType::Int32,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = argument_arrays(&args)?;
        let out: ArrayRef = match self.op {
            Op::Encode => {
                let (bytes, formats) = (bytea_values(&arrays[0])?, text_values(&arrays[1])?);
                let mut b = StringBuilder::new();
                let mut text = String::new();
                for (v, f) in bytes.iter().zip(&formats) {
                    let (Some(v), Some(f)) = (v, f) else {
                        b.append_null();
                        continue;
                    };
                    text.clear();
                    match format(f)? {
                        Format::Hex => {
                            // bytea's output form without its `\x`.
                            tempora_copy::text::write_bytea(v, &mut text);
                            text.replace_range(..2, "");
                        }
                        Format::Base64 => base64_encode(v, &mut text),
                        Format::Escape => escape_encode(v, &mut text),
                    }
                    b.append_value(&text);
                }
                Arc::new(b.finish())
            }
            Op::Decode => {
                let (texts, formats) = (text_values(&arrays[0])?, text_values(&arrays[1])?);
                let mut b = BinaryBuilder::new();
                for (v, f) in texts.iter().zip(&formats) {
                    let (Some(v), Some(f)) = (v, f) else {
                        b.append_null();
                        continue;
                    };
                    let bytes = match format(f)? {
                        Format::Hex => hex_decode(v)?,
                        Format::Base64 => base64_decode(v)?,
                        // bytea's escape input (`\\`, `\ooo`), where `\x` is
                        // a bad escape rather than the hex form.
                        Format::Escape if v.starts_with("\\x") => {
                            return Err(df(TemporaError::new(
                                SqlState::INVALID_TEXT_REPRESENTATION,
                                "invalid input syntax for type bytea",
                            )))
                        }
                        Format::Escape => crate::pg_text::read_bytea(v).map_err(df)?,
                    };
                    b.append_value(bytes);
                }
                Arc::new(b.finish())
            }
            // bytea's output function, as query results print it (the
            // time zone plays no part).
            Op::Out => Arc::new(tempora_copy::output_text(&arrays[0], "UTC").map_err(df)?),
            Op::OctetLength | Op::Length => {
                let a = &arrays[0];
                let mut b = Int32Builder::with_capacity(a.len());
                if is_text(a.data_type()) {
                    // length counts characters, octet_length bytes.
                    let chars = self.op == Op::Length;
                    for v in cast(a, &DataType::Utf8)?.as_string::<i32>().iter() {
                        b.append_option(
                            v.map(|s| if chars { s.chars().count() } else { s.len() } as i32),
                        );
                    }
                } else {
                    for v in cast(a, &DataType::Binary)?.as_binary::<i32>().iter() {
                        b.append_option(v.map(|s| s.len() as i32));
                    }
                }
                Arc::new(b.finish())
            }
            Op::GetByte => {
                let bytes = bytea_values(&arrays[0])?;
                let index = cast(&arrays[1], &DataType::Int64)?;
                let index = index.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                let mut b = Int32Builder::with_capacity(bytes.len());
                for (i, v) in bytes.iter().enumerate() {
                    let (Some(v), false) = (v, index.is_null(i)) else {
                        b.append_null();
                        continue;
                    };
                    let n = index.value(i);
                    let byte = usize::try_from(n)
                        .ok()
                        .and_then(|n| v.get(n))
                        .ok_or_else(|| {
                            df(TemporaError::new(
                                SqlState::ARRAY_SUBSCRIPT_ERROR,
                                format!("index {n} out of valid range, 0..{}", v.len() as i64 - 1),
                            ))
                        })?;
                    b.append_value(i32::from(*byte));
                }
                Arc::new(b.finish())
            }
        };
        result_value(out, scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        let mut s = String::new();
        base64_encode(bytes, &mut s);
        s
    }

    #[test]
    fn base64_as_postgres_writes_and_reads_it() {
        assert_eq!(b64(b"\x01\x02"), "AQI=");
        assert_eq!(b64(b"a"), "YQ==");
        assert_eq!(b64(b"abc"), "YWJj");
        // 57 bytes fill a line of 76 characters, which ends with a newline.
        assert_eq!(b64(&[b'a'; 57]).len(), 77);
        assert_eq!(b64(&[b'a'; 56]).len(), 76);
        assert_eq!(b64(&[b'a'; 58]).len(), 81);
        for bytes in [&b""[..], b"a", b"ab", b"abc", &[0xff; 100]] {
            assert_eq!(base64_decode(&b64(bytes)).unwrap(), bytes);
        }
        assert_eq!(base64_decode("QQ=x").unwrap(), b"A");
        assert!(base64_decode("QQ").is_err());
        assert!(base64_decode("Q===").is_err());
        assert!(base64_decode("Q*==").is_err());
    }

    #[test]
    fn hex_and_escape() {
        assert_eq!(hex_decode(" 41 42 ").unwrap(), b"AB");
        assert!(hex_decode("4").is_err());
        assert!(hex_decode("0g").is_err());
        let mut s = String::new();
        escape_encode(b"\x00\xff\\A", &mut s);
        assert_eq!(s, "\\000\\377\\\\A");
    }
}
