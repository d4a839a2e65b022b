//! PostgreSQL's checks on string functions whose results DataFusion
//! computes.
//!
//! * `repeat`, `lpad` and `rpad` refuse results longer than PostgreSQL's
//!   1 GB value limit with 54000 `requested length too large` before
//!   allocating them (DataFusion would try to build the string).
//! * `chr(n)` refuses what PostgreSQL refuses: a negative code (22023), 0
//!   (54000 `null character not permitted`), and codes past Unicode or in
//!   the surrogate range (54000).
//! * `SIMILAR TO` matches the whole string with PostgreSQL's translation of
//!   the pattern ([`similar_to_regex`]); DataFusion matched the pattern as
//!   an unanchored regular expression (`'abc' SIMILAR TO 'b'` was true).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::kernels::cast::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::Result;
use datafusion::logical_expr::ScalarUDF;
use tempora_common::{SqlState, TemporaError};

use crate::pg_math::{ArgCheck, Checked};

/// PostgreSQL's largest value, less its header (`MaxAllocSize - VARHDRSZ`).
const MAX_VALUE_BYTES: i64 = (1 << 30) - 1 - 4;
/// Bytes a character may take in UTF-8, which `lpad`/`rpad` reserve.
const MAX_CHAR_BYTES: i64 = 4;

/// The functions, to register over DataFusion's.
pub fn pg_string_udfs() -> Vec<ScalarUDF> {
    use datafusion::functions::{string, unicode};
    let checks: [(Arc<ScalarUDF>, ArgCheck); 4] = [
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

/// PostgreSQL's translation of a SQL regular expression (SIMILAR TO) into
/// a POSIX one: anchored at both ends, `%` as `.*`, `_` as `.`, groups
/// not capturing, `.` `^` `$` literal, `escape` (default `\`) quoting the
/// next character, and a pair of escaped double quotes marking the part
/// `substring` returns.
pub fn similar_to_regex(pattern: &str, escape: Option<char>) -> Result<String> {
    let mut out = String::with_capacity(pattern.len() + 8);
    out.push_str("^(?:");
    let (mut after_escape, mut in_class, mut quotes) = (false, false, 0);
    for c in pattern.chars() {
        if after_escape {
            after_escape = false;
            if c == '"' && !in_class {
                out.push_str(match quotes {
                    0 => "){1,1}?(",
                    1 => "){1,1}(?:",
                    _ => {
                        return Err(TemporaError::new(
                            SqlState::INVALID_REGULAR_EXPRESSION,
                            "SQL regular expression may not contain more than two escape-double-quote separators",
                        )
                        .into_datafusion())
                    }
                });
                quotes += 1;
            } else {
                out.push('\\');
                out.push(c);
            }
        } else if Some(c) == escape {
            after_escape = true;
        } else if in_class {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
            in_class = c != ']';
        } else {
            match c {
                '[' => {
                    out.push('[');
                    in_class = true;
                }
                '%' => out.push_str(".*"),
                '_' => out.push('.'),
                '(' => out.push_str("(?:"),
                '\\' | '.' | '^' | '$' => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
    }
    out.push_str(")$");
    Ok(out)
}

/// `similar_to_escape(pattern [, escape])`, PostgreSQL's function for the
/// translation.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SimilarToEscape {
    signature: datafusion::logical_expr::Signature,
}

impl datafusion::logical_expr::ScalarUDFImpl for SimilarToEscape {
    fn name(&self) -> &str {
        "similar_to_escape"
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        Ok(vec![DataType::Utf8; arg_types.len().clamp(1, 2)])
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> Result<datafusion::logical_expr::ColumnarValue> {
        let returns = DataType::Utf8;
        crate::pg_types::map_rows(&args, &returns, |values| {
            use datafusion::common::ScalarValue;
            let text = |v: &ScalarValue| match v {
                ScalarValue::Utf8(s) => s.clone(),
                _ => None,
            };
            let Some(pattern) = text(&values[0]) else {
                return Ok(ScalarValue::Utf8(None));
            };
            let escape = match values.get(1) {
                None => Some('\\'),
                Some(v) => match text(v) {
                    None => return Ok(ScalarValue::Utf8(None)),
                    Some(e) => {
                        let mut chars = e.chars();
                        match (chars.next(), chars.next()) {
                            (None, _) => None,
                            (Some(c), None) => Some(c),
                            _ => {
                                return Err(TemporaError::new(
                                    SqlState("22025"), // invalid_escape_sequence
                                    "invalid escape string",
                                )
                                .with_hint("Escape string must be empty or one character.")
                                .into_datafusion());
                            }
                        }
                    }
                },
            };
            Ok(ScalarValue::Utf8(Some(similar_to_regex(&pattern, escape)?)))
        })
    }
}

/// The `similar_to_escape` function, made once.
pub fn similar_to_escape_udf() -> Arc<ScalarUDF> {
    static UDF: std::sync::LazyLock<Arc<ScalarUDF>> = std::sync::LazyLock::new(|| {
        Arc::new(ScalarUDF::new_from_impl(SimilarToEscape {
            signature: datafusion::logical_expr::Signature::user_defined(
                datafusion::logical_expr::Volatility::Immutable,
            ),
        }))
    });
    UDF.clone()
}

/// `x [NOT] SIMILAR TO p [ESCAPE e]` as `x ~ ('(?s)' || similar_to_escape(p,
/// e))`: DataFusion matched the pattern as an unanchored regular
/// expression. `(?s)` lets `.*` cross newlines, as PostgreSQL's does.
pub(crate) fn similar_to(
    e: datafusion::logical_expr::Expr,
    schema: &datafusion::common::DFSchema,
) -> Result<datafusion::common::tree_node::Transformed<datafusion::logical_expr::Expr>> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::{binary_expr, lit, Expr, ExprSchemable, Operator};
    let Expr::SimilarTo(like) = e else {
        return Ok(Transformed::no(e));
    };
    let mut args = vec![datafusion::logical_expr::cast(
        like.pattern.as_ref().clone(),
        DataType::Utf8,
    )];
    args.push(match like.escape_char {
        Some(c) => lit(c.to_string()),
        None => lit("\\"),
    });
    let regex = binary_expr(
        lit("(?s)"),
        Operator::StringConcat,
        similar_to_escape_udf().call(args),
    );
    let subject_type = like.expr.get_type(schema)?;
    let regex = match subject_type {
        DataType::Utf8 => regex,
        t => datafusion::logical_expr::cast(regex, t),
    };
    let op = match (like.negated, like.case_insensitive) {
        (false, false) => Operator::RegexMatch,
        (true, false) => Operator::RegexNotMatch,
        (false, true) => Operator::RegexIMatch,
        (true, true) => Operator::RegexNotIMatch,
    };
    Ok(Transformed::yes(binary_expr(*like.expr, op, regex)))
}

#[cfg(test)]
mod tests {
    use super::similar_to_regex;

    #[test]
    fn similar_to_translates_as_postgresql() {
        assert_eq!(similar_to_regex("%b%", Some('\\')).unwrap(), "^(?:.*b.*)$");
        assert_eq!(
            similar_to_regex("a(b|c)+", Some('\\')).unwrap(),
            "^(?:a(?:b|c)+)$"
        );
        assert_eq!(
            similar_to_regex("a.c_", Some('\\')).unwrap(),
            "^(?:a\\.c.)$"
        );
        assert_eq!(similar_to_regex("a\\%", Some('\\')).unwrap(), "^(?:a\\%)$");
        assert_eq!(similar_to_regex("[a\\]x", None).unwrap(), "^(?:[a\\\\]x)$");
    }
}
