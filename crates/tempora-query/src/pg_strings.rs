//! PostgreSQL's checks on string functions whose results DataFusion
//! computes.
//!
//! * `repeat`, `lpad` and `rpad` refuse results longer than PostgreSQL's
//!   1 GB value limit with 54000 `requested length too large` before
//!   allocating them (DataFusion would try to build the string).
//! * `chr(n)` refuses what PostgreSQL refuses: a negative code (22023), 0
//!   (54000 `null character not permitted`), and codes past Unicode or in
//!   the surrogate range (54000).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::kernels::cast::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::Result;
use datafusion::logical_expr::ScalarUDF;
use tempora_common::{SqlState, TemporaError};

use crate::pg_math::Checked;

/// PostgreSQL's largest value, less its header (`MaxAllocSize - VARHDRSZ`).
const MAX_VALUE_BYTES: i64 = (1 << 30) - 1 - 4;
/// Bytes a character may take in UTF-8, which `lpad`/`rpad` reserve.
const MAX_CHAR_BYTES: i64 = 4;

/// The functions, to register over DataFusion's.
pub fn pg_string_udfs() -> Vec<ScalarUDF> {
    use datafusion::functions::{string, unicode};
    let checks: [(Arc<ScalarUDF>, fn(&[ArrayRef]) -> Result<()>); 4] = [
        (string::repeat(), repeat_length),
        (unicode::lpad(), pad_length),
        (unicode::rpad(), pad_length),
        (string::chr(), chr_code),
    ];
    checks
        .into_iter()
        .map(|(inner, check)| ScalarUDF::new_from_impl(Checked { inner, check }))
        .collect()
}

fn too_large() -> datafusion::error::DataFusionError {
    TemporaError::new(
        SqlState::PROGRAM_LIMIT_EXCEEDED,
        "requested length too large",
    )
    .into_datafusion()
}

/// An integer argument's values as `bigint`.
fn integers(a: &ArrayRef) -> Result<ArrayRef> {
    Ok(cast(a, &DataType::Int64)?)
}

/// The length in bytes of row `i` of a string argument (0 for NULL or a
/// type that is not a string).
fn byte_len(a: &ArrayRef, i: usize) -> i64 {
    if a.is_null(i) {
        return 0;
    }
    let len = match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(i).len(),
        DataType::LargeUtf8 => a.as_string::<i64>().value(i).len(),
        DataType::Utf8View => a.as_string_view().value(i).len(),
        _ => 0,
    };
    len as i64
}

/// `repeat(text, count)`: the result's bytes within the limit.
fn repeat_length(args: &[ArrayRef]) -> Result<()> {
    let counts = integers(&args[1])?;
    let counts = counts.as_primitive::<Int64Type>();
    for i in 0..counts.len() {
        if counts.is_null(i) {
            continue;
        }
        let bytes = byte_len(&args[0], i).checked_mul(counts.value(i).max(0));
        if bytes.is_none_or(|b| b > MAX_VALUE_BYTES) {
            return Err(too_large());
        }
    }
    Ok(())
}

/// `lpad`/`rpad(text, length [, fill])`: `length` characters within the
/// limit at their widest.
fn pad_length(args: &[ArrayRef]) -> Result<()> {
    let lengths = integers(&args[1])?;
    let lengths = lengths.as_primitive::<Int64Type>();
    for i in 0..lengths.len() {
        if lengths.is_valid(i)
            && lengths
                .value(i)
                .checked_mul(MAX_CHAR_BYTES)
                .is_none_or(|b| b > MAX_VALUE_BYTES)
        {
            return Err(too_large());
        }
    }
    Ok(())
}

fn chr_code(args: &[ArrayRef]) -> Result<()> {
    let codes = integers(&args[0])?;
    let codes = codes.as_primitive::<Int64Type>();
    for code in codes.iter().flatten() {
        let (state, message) = match code {
            c if c < 0 => (
                SqlState::INVALID_PARAMETER_VALUE,
                "character number must be positive".to_string(),
            ),
            0 => (
                SqlState::PROGRAM_LIMIT_EXCEEDED,
                "null character not permitted".to_string(),
            ),
            c if c > 0x10FFFF => (
                SqlState::PROGRAM_LIMIT_EXCEEDED,
                format!("requested character too large for encoding: {c}"),
            ),
            c if (0xD800..=0xDFFF).contains(&c) => (
                SqlState::PROGRAM_LIMIT_EXCEEDED,
                format!("requested character not valid for encoding: {c}"),
            ),
            _ => continue,
        };
        return Err(TemporaError::new(state, message).into_datafusion());
    }
    Ok(())
}
