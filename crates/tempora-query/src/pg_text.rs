//! Casts to text print values as PostgreSQL does.
//!
//! Arrow's cast to a string prints a timestamp as ISO 8601
//! (`2024-01-01T00:00:00Z`), a large float in full and an interval in its
//! own words; PostgreSQL's `x::text` gives what it would print for `x`
//! (`2024-01-01 00:00:00+00` in the session's TimeZone, `1e+20`,
//! `1 day 02:00:00`). This analyzer rule runs after type coercion and turns
//! every cast to text of such a value into [`pg_text`], which prints it as
//! query results are printed (`tempora_copy::text::render`).
//!
//! The same rule gives PostgreSQL's readings of two more conversions:
//! `concat` and `concat_ws` print their non-text arguments with the output
//! function ([`pg_out`]: `concat('a', true)` is `at`, where a cast to text
//! says `true`), and a text value cast to `bytea` is read as PostgreSQL's
//! bytea input reads it ([`bytea_in`]: `'\x0102'` is the two bytes 1 and 2,
//! other text is its bytes with `\\` and `\ooo` escapes), where Arrow's
//! cast took the text's bytes as they are.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::DFSchema;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use tempora_common::{SqlState, TemporaError};

use crate::variables::{SessionHandle, SessionVariables};

/// `pg_text(x)`: `x` as a cast to text prints it, in the session's
/// TimeZone; `pg_out(x)` (`output`): as the output function prints it (a
/// query's text results: a boolean is `t`, not `true`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgText {
    variables: SessionHandle,
    signature: Signature,
    output: bool,
}

impl ScalarUDFImpl for PgText {
    fn name(&self) -> &str {
        if self.output {
            "pg_out"
        } else {
            "pg_text"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let values = args.args[0].to_array(args.number_rows)?;
        let zone = self
            .variables
            .get("TimeZone")
            .unwrap_or_else(|| "UTC".into());
        let text = if self.output {
            Arc::new(
                tempora_copy::output_text(&values, &zone).map_err(TemporaError::into_datafusion)?,
            )
        } else {
            match tempora_copy::text::render(&values, &zone)? {
                Some(text) => cast(&text, &DataType::Utf8)?,
                None => cast(&values, &DataType::Utf8)?,
            }
        };
        crate::pg_types::result_value(text, scalar)
    }
}

fn print_udf(variables: Arc<SessionVariables>, output: bool) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(PgText {
        variables: SessionHandle(variables),
        signature: Signature::any(1, Volatility::Stable),
        output,
    }))
}

/// The `pg_out` function of a session.
pub fn pg_out_udf(variables: Arc<SessionVariables>) -> Arc<ScalarUDF> {
    print_udf(variables, true)
}

/// `bytea_in(text)`: PostgreSQL's reading of a bytea literal.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ByteaIn {
    signature: Signature,
}

impl ScalarUDFImpl for ByteaIn {
    fn name(&self) -> &str {
        "bytea_in"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Binary)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let values = cast(&args.args[0].to_array(args.number_rows)?, &DataType::Utf8)?;
        let mut out = datafusion::arrow::array::BinaryBuilder::new();
        for v in values.as_string::<i32>() {
            match v {
                Some(v) => out.append_value(read_bytea(v).map_err(TemporaError::into_datafusion)?),
                None => out.append_null(),
            }
        }
        crate::pg_types::result_value(Arc::new(out.finish()), scalar)
    }
}

/// The bytes a bytea literal stands for: hex (`\x0102`, blanks allowed
/// between pairs) or escaped (`a\\b`, `\001`).
pub(crate) fn read_bytea(v: &str) -> Result<Vec<u8>, TemporaError> {
    if let Some(hex) = v.strip_prefix("\\x") {
        let digit = |c: u8| -> Result<u8, TemporaError> {
            (c as char).to_digit(16).map(|d| d as u8).ok_or_else(|| {
                TemporaError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    format!("invalid hexadecimal digit: \"{}\"", c as char),
                )
            })
        };
        let mut out = Vec::with_capacity(hex.len() / 2);
        let mut bytes = hex.bytes().filter(|c| !c.is_ascii_whitespace());
        while let Some(hi) = bytes.next() {
            let hi = digit(hi)?;
            let Some(lo) = bytes.next() else {
                return Err(TemporaError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    "invalid hexadecimal data: odd number of digits",
                ));
            };
            out.push(hi << 4 | digit(lo)?);
        }
        return Ok(out);
    }
    let invalid = || {
        TemporaError::new(
            SqlState::INVALID_TEXT_REPRESENTATION,
            "invalid input syntax for type bytea",
        )
    };
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let octal = b.get(i + 1..i + 4).ok_or_else(invalid)?;
            let ok = matches!(octal[0], b'0'..=b'3')
                && octal[1..].iter().all(|c| matches!(c, b'0'..=b'7'));
            if !ok {
                return Err(invalid());
            }
            out.push((octal[0] - b'0') << 6 | (octal[1] - b'0') << 3 | (octal[2] - b'0'));
            i += 4;
        }
    }
    Ok(out)
}

/// The `pg_text` function of a session.
pub fn pg_text_udf(variables: Arc<SessionVariables>) -> Arc<ScalarUDF> {
    print_udf(variables, false)
}

/// The `bytea_in` function, made once.
fn bytea_in() -> Arc<ScalarUDF> {
    static UDF: std::sync::LazyLock<Arc<ScalarUDF>> = std::sync::LazyLock::new(|| {
        Arc::new(ScalarUDF::new_from_impl(ByteaIn {
            signature: Signature::any(1, Volatility::Immutable),
        }))
    });
    UDF.clone()
}

/// Whether Arrow's text of a `from` value differs from PostgreSQL's.
fn printed_differently(from: &DataType) -> bool {
    matches!(
        from,
        DataType::Timestamp(..)
            | DataType::Date32
            | DataType::Float32
            | DataType::Float64
            | DataType::Duration(_)
            | DataType::Interval(_)
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
    )
}

/// The analyzer rule; see the module documentation.
#[derive(Debug)]
pub struct PgTextCasts {
    pub text: Arc<ScalarUDF>,
    pub out: Arc<ScalarUDF>,
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::BinaryView | DataType::LargeBinary
    )
}

/// A `concat`/`concat_ws` argument printed by the output function unless
/// it is text (coercion may have cast it to text: the cast is undone).
fn printed_argument(arg: Expr, schema: &DFSchema, out: &Arc<ScalarUDF>) -> (Expr, bool) {
    let inner = match &arg {
        Expr::Cast(Cast { expr, field }) if is_text(field.data_type()) => expr.as_ref().clone(),
        _ => arg.clone(),
    };
    match inner.get_type(schema) {
        Ok(t) if !is_text(&t) && !t.is_null() => (out.call(vec![inner]), true),
        _ => (arg, false),
    }
}

fn rewrite(
    e: Expr,
    schema: &DFSchema,
    text: &Arc<ScalarUDF>,
    out: &Arc<ScalarUDF>,
) -> DfResult<Transformed<Expr>> {
    if let Expr::ScalarFunction(f) = &e {
        if !matches!(f.func.name(), "concat" | "concat_ws") {
            return Ok(Transformed::no(e));
        }
        let mut changed = false;
        let args = f
            .args
            .iter()
            .map(|a| {
                let (a, printed) = printed_argument(a.clone(), schema, out);
                changed |= printed;
                a
            })
            .collect();
        return Ok(match changed {
            true => Transformed::yes(f.func.call(args)),
            false => Transformed::no(e),
        });
    }
    let Expr::Cast(Cast { expr, field }) = &e else {
        return Ok(Transformed::no(e));
    };
    let to = field.data_type();
    if is_binary(to) && expr.get_type(schema).is_ok_and(|t| is_text(&t)) {
        let read = bytea_in().call(vec![expr.as_ref().clone()]);
        return Ok(Transformed::yes(if to == &DataType::Binary {
            read
        } else {
            Expr::Cast(Cast::new_from_field(Box::new(read), field.clone()))
        }));
    }
    if !is_text(to) {
        return Ok(Transformed::no(e));
    }
    match expr.get_type(schema) {
        Ok(from) if printed_differently(&from) => {
            let printed = text.call(vec![expr.as_ref().clone()]);
            Ok(Transformed::yes(if to == &DataType::Utf8 {
                printed
            } else {
                Expr::Cast(Cast::new_from_field(Box::new(printed), field.clone()))
            }))
        }
        _ => Ok(Transformed::no(e)),
    }
}

impl AnalyzerRule for PgTextCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        crate::pg_casts::rewrite_plan_exprs(plan, |e, schema| {
            rewrite(e, schema, &self.text, &self.out)?
                .transform_data(|e| crate::pg_strings::similar_to(e, schema))
        })
    }

    fn name(&self) -> &str {
        "pg_text_casts"
    }
}

/// `format(formatstr, args...)`: PostgreSQL's `%s`, `%I` and `%L` with
/// positions (`%2$s`), the `-` flag and widths (`%5s`, `%*s`, `%-*2$s`),
/// arguments printed by the output function in the session's TimeZone.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    variables: SessionHandle,
    signature: Signature,
}

/// The `format` function of a session.
pub fn format_udf(variables: Arc<SessionVariables>) -> ScalarUDF {
    ScalarUDF::new_from_impl(Format {
        variables: SessionHandle(variables),
        signature: Signature::user_defined(Volatility::Stable),
    })
}

fn format_error(message: impl Into<String>) -> TemporaError {
    TemporaError::new(SqlState::INVALID_PARAMETER_VALUE, message)
}

fn specifier_hint(e: TemporaError) -> TemporaError {
    e.with_hint("For a single \"%\" use \"%%\".")
}

/// PostgreSQL's `quote_literal`: single quotes doubled, and an `E` prefix
/// with doubled backslashes where there are backslashes.
fn quote_literal(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 3);
    if v.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Reads a number at `chars[*i..]`, if one starts there.
fn read_number(chars: &[char], i: &mut usize) -> Result<Option<usize>, TemporaError> {
    let start = *i;
    while *i < chars.len() && chars[*i].is_ascii_digit() {
        *i += 1;
    }
    if *i == start {
        return Ok(None);
    }
    let digits: String = chars[start..*i].iter().collect();
    digits
        .parse::<usize>()
        .ok()
        .filter(|n| *n <= i32::MAX as usize)
        .map(Some)
        .ok_or_else(|| format_error("number is out of range"))
}

/// One row of `format`: `args` are the arguments' texts (NULL as `None`).
fn format_row(template: &str, args: &[Option<&str>]) -> Result<String, TemporaError> {
    let chars: Vec<char> = template.chars().collect();
    let mut out = String::with_capacity(template.len());
    let mut next_arg = 0usize;
    let mut i = 0;
    let unterminated = || specifier_hint(format_error("unterminated format() type specifier"));
    let argument = |n: usize| -> Result<Option<&str>, TemporaError> {
        if n >= args.len() {
            return Err(format_error("too few arguments for format()"));
        }
        Ok(args[n])
    };
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        i += 1;
        if i >= chars.len() {
            return Err(unterminated());
        }
        if chars[i] == '%' {
            out.push('%');
            i += 1;
            continue;
        }
        // %[n$][-][width|*|*n$]type
        let mut position = None;
        let save = i;
        if let Some(n) = read_number(&chars, &mut i)? {
            if i < chars.len() && chars[i] == '$' {
                if n == 0 {
                    return Err(format_error(
                        "format specifies argument 0, but arguments are numbered from 1",
                    ));
                }
                position = Some(n - 1);
                i += 1;
            } else {
                i = save;
            }
        }
        let mut left = false;
        while i < chars.len() && chars[i] == '-' {
            left = true;
            i += 1;
        }
        let mut width = 0usize;
        if i < chars.len() && chars[i] == '*' {
            i += 1;
            let from = match read_number(&chars, &mut i)? {
                Some(n) => {
                    if i >= chars.len() || chars[i] != '$' {
                        return Err(unterminated());
                    }
                    i += 1;
                    if n == 0 {
                        return Err(format_error(
                            "format specifies argument 0, but arguments are numbered from 1",
                        ));
                    }
                    n - 1
                }
                None => {
                    let n = next_arg;
                    next_arg += 1;
                    n
                }
            };
            if let Some(w) = argument(from)? {
                let w: i64 = w
                    .trim()
                    .parse()
                    .map_err(|_| format_error("number is out of range"))?;
                if w < 0 {
                    left = true;
                }
                width = w.unsigned_abs() as usize;
            }
        } else if let Some(w) = read_number(&chars, &mut i)? {
            width = w;
        }
        if i >= chars.len() {
            return Err(unterminated());
        }
        let kind = chars[i];
        i += 1;
        if !matches!(kind, 's' | 'I' | 'L') {
            return Err(specifier_hint(format_error(format!(
                "unrecognized format() type specifier \"{kind}\""
            ))));
        }
        let n = match position {
            Some(p) => p,
            None => {
                let n = next_arg;
                next_arg += 1;
                n
            }
        };
        // A positioned specifier moves the implicit position after it.
        if position.is_some() {
            next_arg = n + 1;
        }
        let value = argument(n)?;
        let text = match (kind, value) {
            ('s', v) => v.unwrap_or("").to_string(),
            ('I', Some(v)) => tempora_catalog::quote_identifier(v),
            ('I', None) => {
                return Err(TemporaError::new(
                    SqlState::NULL_VALUE_NOT_ALLOWED,
                    "null values cannot be formatted as an SQL identifier",
                ))
            }
            (_, Some(v)) => quote_literal(v),
            (_, None) => "NULL".to_string(),
        };
        let len = text.chars().count();
        let pad = " ".repeat(width.saturating_sub(len));
        if left {
            out.push_str(&text);
            out.push_str(&pad);
        } else {
            out.push_str(&pad);
            out.push_str(&text);
        }
    }
    Ok(out)
}

/// `quote_ident(text)`: the identifier as PostgreSQL quotes it (`time` and
/// `Foo` are quoted, `host` is not), the rule `format('%I')` and the
/// catalog functions follow.
pub fn quote_ident_udf() -> ScalarUDF {
    use datafusion::common::ScalarValue;
    let quote = |v: Option<&str>| v.map(tempora_catalog::quote_identifier);
    datafusion::logical_expr::create_udf(
        "quote_ident",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| match &args[0] {
            ColumnarValue::Scalar(v) => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(quote(
                v.try_as_str().flatten(),
            )))),
            ColumnarValue::Array(a) => {
                let a = cast(a, &DataType::Utf8)?;
                let out: datafusion::arrow::array::StringArray =
                    a.as_string::<i32>().iter().map(quote).collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
        }),
    )
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if arg_types.is_empty() {
            return Err(TemporaError::new(
                SqlState::UNDEFINED_FUNCTION,
                "function format() does not exist",
            )
            .into_datafusion());
        }
        let mut types = arg_types.to_vec();
        types[0] = DataType::Utf8;
        Ok(types)
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let (rows, scalar) = crate::pg_types::result_rows(&args.args, args.number_rows);
        let zone = self
            .variables
            .get("TimeZone")
            .unwrap_or_else(|| "UTC".into());
        let texts = args
            .args
            .iter()
            .map(|a| {
                let a = a.to_array(rows)?;
                tempora_copy::output_text(&a, &zone).map_err(TemporaError::into_datafusion)
            })
            .collect::<DfResult<Vec<_>>>()?;
        let mut out = datafusion::arrow::array::StringBuilder::new();
        for row in 0..rows {
            if texts[0].is_null(row) {
                out.append_null();
                continue;
            }
            let values: Vec<Option<&str>> = texts[1..]
                .iter()
                .map(|t| t.is_valid(row).then(|| t.value(row)))
                .collect();
            let text =
                format_row(texts[0].value(row), &values).map_err(TemporaError::into_datafusion)?;
            out.append_value(text);
        }
        crate::pg_types::result_value(Arc::new(out.finish()), scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::{format_row, quote_literal};

    #[test]
    fn format_reads_postgresql_specifiers() {
        let f = |t: &str, a: &[Option<&str>]| format_row(t, a).map_err(|e| e.to_string());
        assert_eq!(f("Hello %s", &[Some("World")]).unwrap(), "Hello World");
        assert_eq!(f("%s, %s|", &[Some("1"), None]).unwrap(), "1, |");
        assert_eq!(f("%1$s %1$s", &[Some("x")]).unwrap(), "x x");
        assert_eq!(
            f("%-5s|%5s|", &[Some("ab"), Some("cd")]).unwrap(),
            "ab   |   cd|"
        );
        assert_eq!(f("%*s|", &[Some("4"), Some("a")]).unwrap(), "   a|");
        assert_eq!(f("%L %L", &[Some("O'R"), None]).unwrap(), "'O''R' NULL");
        assert_eq!(f("%I", &[Some("my table")]).unwrap(), "\"my table\"");
        assert_eq!(f("%%", &[]).unwrap(), "%");
        assert!(f("%s %s", &[Some("a")])
            .unwrap_err()
            .contains("too few arguments"));
        assert!(f("%z", &[Some("a")]).unwrap_err().contains("unrecognized"));
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
    }
}
