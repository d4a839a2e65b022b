//! Shared vocabulary of every Tempora layer: the error type that carries a
//! PostgreSQL SQLSTATE from the layer that knows what went wrong up to the wire.
//!
//! A layer builds a [`TemporaError`] with the code that fits (for example
//! [`SqlState::UNDEFINED_TABLE`]) and a message worded as PostgreSQL words it;
//! the wire layer only maps it to an `ErrorResponse`. When an error must cross
//! DataFusion (inside a table provider or a UDF) it travels as
//! `DataFusionError::External` and is recovered with [`TemporaError::from_datafusion`].
//!
//! It also holds the one SQL parser every layer uses ([`sql_parser`]).
// Errors carry PostgreSQL's fields (detail, hint, position, context): a
// large Err is the price of one error type across layers, paid only on failure.
#![allow(clippy::result_large_err)]

pub mod sql_parser;

use std::fmt;

use datafusion::error::DataFusionError;

/// A PostgreSQL SQLSTATE code (five characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SqlState(pub &'static str);

impl SqlState {
    pub const SUCCESSFUL_COMPLETION: SqlState = SqlState("00000");
    pub const WARNING: SqlState = SqlState("01000");
    pub const FEATURE_NOT_SUPPORTED: SqlState = SqlState("0A000");
    pub const INVALID_PARAMETER_VALUE: SqlState = SqlState("22023");
    pub const ARRAY_SUBSCRIPT_ERROR: SqlState = SqlState("2202E");
    pub const INVALID_TEXT_REPRESENTATION: SqlState = SqlState("22P02");
    pub const INVALID_DATETIME_FORMAT: SqlState = SqlState("22007");
    pub const DATETIME_FIELD_OVERFLOW: SqlState = SqlState("22008");
    pub const INTERVAL_FIELD_OVERFLOW: SqlState = SqlState("22015");
    pub const NUMERIC_VALUE_OUT_OF_RANGE: SqlState = SqlState("22003");
    pub const SEQUENCE_GENERATOR_LIMIT_EXCEEDED: SqlState = SqlState("2200H");
    pub const DIVISION_BY_ZERO: SqlState = SqlState("22012");
    pub const STRING_DATA_RIGHT_TRUNCATION: SqlState = SqlState("22001");
    pub const DATA_EXCEPTION: SqlState = SqlState("22000");
    pub const NULL_VALUE_NOT_ALLOWED: SqlState = SqlState("22004");
    pub const INVALID_ARGUMENT_FOR_WIDTH_BUCKET_FUNCTION: SqlState = SqlState("2201G");
    pub const INVALID_ARGUMENT_FOR_LOGARITHM: SqlState = SqlState("2201E");
    pub const INVALID_ARGUMENT_FOR_POWER_FUNCTION: SqlState = SqlState("2201F");
    pub const INVALID_ARGUMENT_FOR_NTILE_FUNCTION: SqlState = SqlState("22014");
    pub const INVALID_REGULAR_EXPRESSION: SqlState = SqlState("2201B");
    pub const CARDINALITY_VIOLATION: SqlState = SqlState("21000");
    pub const NOT_NULL_VIOLATION: SqlState = SqlState("23502");
    pub const UNIQUE_VIOLATION: SqlState = SqlState("23505");
    pub const FOREIGN_KEY_VIOLATION: SqlState = SqlState("23503");
    pub const INVALID_TRANSACTION_STATE: SqlState = SqlState("25000");
    pub const ACTIVE_SQL_TRANSACTION: SqlState = SqlState("25001");
    pub const NO_ACTIVE_SQL_TRANSACTION: SqlState = SqlState("25P01");
    pub const IN_FAILED_SQL_TRANSACTION: SqlState = SqlState("25P02");
    pub const S_E_INVALID_SPECIFICATION: SqlState = SqlState("3B001");
    pub const T_R_SERIALIZATION_FAILURE: SqlState = SqlState("40001");
    pub const INVALID_SQL_STATEMENT_NAME: SqlState = SqlState("26000");
    pub const DUPLICATE_PREPARED_STATEMENT: SqlState = SqlState("42P05");
    pub const INVALID_CATALOG_NAME: SqlState = SqlState("3D000");
    pub const DUPLICATE_DATABASE: SqlState = SqlState("42P04");
    pub const TOO_MANY_CONNECTIONS: SqlState = SqlState("53300");
    pub const INVALID_SCHEMA_NAME: SqlState = SqlState("3F000");
    pub const SYNTAX_ERROR: SqlState = SqlState("42601");
    pub const UNDEFINED_COLUMN: SqlState = SqlState("42703");
    pub const UNDEFINED_TABLE: SqlState = SqlState("42P01");
    pub const UNDEFINED_FUNCTION: SqlState = SqlState("42883");
    pub const UNDEFINED_PARAMETER: SqlState = SqlState("42P02");
    pub const AMBIGUOUS_FUNCTION: SqlState = SqlState("42725");
    pub const DUPLICATE_FUNCTION: SqlState = SqlState("42723");
    pub const INVALID_FUNCTION_DEFINITION: SqlState = SqlState("42P13");
    pub const UNDEFINED_OBJECT: SqlState = SqlState("42704");
    pub const DUPLICATE_TABLE: SqlState = SqlState("42P07");
    pub const DUPLICATE_SCHEMA: SqlState = SqlState("42P06");
    pub const RESERVED_NAME: SqlState = SqlState("42939");
    pub const DUPLICATE_OBJECT: SqlState = SqlState("42710");
    pub const DUPLICATE_COLUMN: SqlState = SqlState("42701");
    pub const UNDEFINED_FILE: SqlState = SqlState("58P01");
    pub const DATATYPE_MISMATCH: SqlState = SqlState("42804");
    pub const CANNOT_COERCE: SqlState = SqlState("42846");
    pub const AMBIGUOUS_COLUMN: SqlState = SqlState("42702");
    pub const GROUPING_ERROR: SqlState = SqlState("42803");
    pub const WINDOWING_ERROR: SqlState = SqlState("42P20");
    pub const INVALID_COLUMN_DEFINITION: SqlState = SqlState("42611");
    pub const INVALID_TABLE_DEFINITION: SqlState = SqlState("42P16");
    pub const INVALID_FOREIGN_KEY: SqlState = SqlState("42830");
    pub const WRONG_OBJECT_TYPE: SqlState = SqlState("42809");
    pub const DEPENDENT_OBJECTS_STILL_EXIST: SqlState = SqlState("2BP01");
    pub const OBJECT_NOT_IN_PREREQUISITE_STATE: SqlState = SqlState("55000");
    pub const INSUFFICIENT_RESOURCES: SqlState = SqlState("53000");
    pub const DISK_FULL: SqlState = SqlState("53100");
    pub const OUT_OF_MEMORY: SqlState = SqlState("53200");
    pub const PROGRAM_LIMIT_EXCEEDED: SqlState = SqlState("54000");
    pub const STATEMENT_TOO_COMPLEX: SqlState = SqlState("54001");
    pub const QUERY_CANCELED: SqlState = SqlState("57014");
    pub const ADMIN_SHUTDOWN: SqlState = SqlState("57P01");
    pub const IO_ERROR: SqlState = SqlState("58030");
    pub const INTERNAL_ERROR: SqlState = SqlState("XX000");
    pub const DATA_CORRUPTED: SqlState = SqlState("XX001");
    pub const PROTOCOL_VIOLATION: SqlState = SqlState("08P01");
    pub const INSUFFICIENT_PRIVILEGE: SqlState = SqlState("42501");
    pub const OBJECT_IN_USE: SqlState = SqlState("55006");
    pub const INVALID_AUTHORIZATION_SPECIFICATION: SqlState = SqlState("28000");
    pub const INVALID_PASSWORD: SqlState = SqlState("28P01");
    // TimescaleDB's own codes.
    pub const TS_HYPERTABLE_EXISTS: SqlState = SqlState("TS110");
    pub const SQL_JSON_MEMBER_NOT_FOUND: SqlState = SqlState("2203A");
    pub const TS_HYPERTABLE_NOT_EXIST: SqlState = SqlState("TS001");
    pub const TS_DIMENSION_NOT_EXIST: SqlState = SqlState("TS002");
    pub const TS_DIMENSION_EXISTS: SqlState = SqlState("TS160");
    pub const TS_OPERATION_NOT_SUPPORTED: SqlState = SqlState("TS101");
    pub const TS_TABLE_NOT_EMPTY: SqlState = SqlState("TS102");
    pub const TS_BAD_UNIQUE_INDEX: SqlState = SqlState("TS103");
    // COPY's data formats.
    pub const BAD_COPY_FILE_FORMAT: SqlState = SqlState("22P04");
    pub const INVALID_BINARY_REPRESENTATION: SqlState = SqlState("22P03");
    pub const CHARACTER_NOT_IN_REPERTOIRE: SqlState = SqlState("22021");
    pub const UNTRANSLATABLE_CHARACTER: SqlState = SqlState("22P05");
    pub const INVALID_TIME_ZONE_DISPLACEMENT_VALUE: SqlState = SqlState("22009");
    pub const INVALID_COLUMN_REFERENCE: SqlState = SqlState("42P10");
    pub const INVALID_OBJECT_DEFINITION: SqlState = SqlState("42P17");

    pub fn code(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// An error a user sees: a SQLSTATE, a PostgreSQL-style message and optional
/// detail, hint and (1-based, in characters) position in the statement text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporaError {
    pub code: SqlState,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub position: Option<usize>,
    /// Where it happened (PostgreSQL's CONTEXT line), e.g.
    /// `COPY conditions, line 3, column temperature: "abc"`.
    pub context: Option<String>,
}

impl TemporaError {
    pub fn new(code: SqlState, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            hint: None,
            position: None,
            context: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    pub fn with_position(mut self, position: usize) -> Self {
        self.position = Some(position);
        self
    }

    /// A bug in Tempora, not the user's fault.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(SqlState::INTERNAL_ERROR, message)
    }

    pub fn not_supported(what: impl fmt::Display) -> Self {
        Self::new(
            SqlState::FEATURE_NOT_SUPPORTED,
            format!("{what} is not supported"),
        )
    }

    pub fn undefined_table(name: impl fmt::Display) -> Self {
        Self::new(
            SqlState::UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        )
    }

    pub fn undefined_column(name: impl fmt::Display) -> Self {
        Self::new(
            SqlState::UNDEFINED_COLUMN,
            format!("column \"{name}\" does not exist"),
        )
    }

    pub fn syntax(message: impl Into<String>) -> Self {
        Self::new(SqlState::SYNTAX_ERROR, message)
    }

    /// An I/O failure of the storage layer: disk full maps to 53100, the rest to 58030.
    pub fn io(context: impl fmt::Display, err: &std::io::Error) -> Self {
        let code = if err.raw_os_error() == Some(28) {
            SqlState::DISK_FULL
        } else {
            SqlState::IO_ERROR
        };
        Self::new(code, format!("{context}: {err}"))
    }

    /// A storage failure reported through a library error (object store,
    /// Parquet): classified by the I/O error found in its source chain, as
    /// [`TemporaError::io`] does, and 58030 when there is none.
    pub fn storage(context: impl fmt::Display, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.raw_os_error() == Some(28) {
                    return Self::new(SqlState::DISK_FULL, format!("{context}: {err}"));
                }
            }
            cause = e.source();
        }
        Self::new(SqlState::IO_ERROR, format!("{context}: {err}"))
    }

    /// Wrap into a DataFusion error so it can cross DataFusion's APIs intact.
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }

    /// Recover a Tempora error from a DataFusion error, classifying DataFusion's
    /// own errors by what they say (DataFusion has no SQLSTATEs).
    pub fn from_datafusion(err: DataFusionError) -> Self {
        classify_datafusion(err)
    }
}

impl fmt::Display for TemporaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemporaError {}

impl From<DataFusionError> for TemporaError {
    fn from(err: DataFusionError) -> Self {
        Self::from_datafusion(err)
    }
}

/// Result alias used across the layers.
pub type Result<T, E = TemporaError> = std::result::Result<T, E>;

/// Shortcut for building an error: `tempora_err!(UNDEFINED_TABLE, "relation \"{}\" does not exist", name)`.
#[macro_export]
macro_rules! tempora_err {
    ($code:ident, $($arg:tt)*) => {
        $crate::TemporaError::new($crate::SqlState::$code, format!($($arg)*))
    };
}

fn find_tempora(err: &DataFusionError) -> Option<TemporaError> {
    match err {
        DataFusionError::External(e) => e
            .downcast_ref::<TemporaError>()
            .cloned()
            .or_else(|| e.downcast_ref::<DataFusionError>().and_then(find_tempora)),
        DataFusionError::Context(_, inner) => find_tempora(inner),
        DataFusionError::Shared(inner) => find_tempora(inner),
        DataFusionError::Collection(errs) => errs.iter().find_map(find_tempora),
        DataFusionError::Diagnostic(_, inner) => find_tempora(inner),
        DataFusionError::ArrowError(e, _) => match e.as_ref() {
            datafusion::arrow::error::ArrowError::ExternalError(inner) => {
                inner.downcast_ref::<TemporaError>().cloned().or_else(|| {
                    inner
                        .downcast_ref::<DataFusionError>()
                        .and_then(find_tempora)
                })
            }
            _ => None,
        },
        _ => None,
    }
}

fn strip_df_prefixes(mut s: &str) -> &str {
    for p in [
        "Error during planning: ",
        "Execution error: ",
        "This feature is not implemented: ",
        "Schema error: ",
        "SQL error: ",
        "Arrow error: ",
        "Optimizer rule 'simplify_expressions' failed\ncaused by\n",
        "Optimizer rule 'simplify_expressions' failed\n",
        "caused by\n",
        "Cast error: ",
        "Parser error: ",
        "Invalid argument error: ",
        "Compute error: ",
        "Divide by zero error",
    ] {
        while let Some(rest) = s.strip_prefix(p) {
            s = rest;
        }
    }
    s
}

fn classify_datafusion(err: DataFusionError) -> TemporaError {
    if let Some(t) = find_tempora(&err) {
        return t;
    }
    let root = err.find_root();
    let text = root.to_string();
    let msg = strip_df_prefixes(&text).trim().to_string();
    let lower = text.to_lowercase();
    if lower.contains("outerreferencecolumn") {
        // A correlated subquery DataFusion cannot decorrelate (a LATERAL
        // subquery with LIMIT, for one).
        return TemporaError::not_supported("this form of correlated subquery");
    }
    match root {
        DataFusionError::SQL(..) => return TemporaError::syntax(msg),
        DataFusionError::NotImplemented(m) => {
            return TemporaError::new(SqlState::FEATURE_NOT_SUPPORTED, m.clone())
        }
        DataFusionError::SchemaError(e, _) => {
            use datafusion::common::SchemaError;
            return match e.as_ref() {
                SchemaError::FieldNotFound { field, .. } => {
                    TemporaError::undefined_column(field.name())
                }
                SchemaError::AmbiguousReference { field } => TemporaError::new(
                    SqlState::AMBIGUOUS_COLUMN,
                    format!("column reference \"{}\" is ambiguous", field.name()),
                ),
                _ => TemporaError::new(SqlState::SYNTAX_ERROR, msg),
            };
        }
        DataFusionError::ResourcesExhausted(m) => {
            return TemporaError::new(SqlState::OUT_OF_MEMORY, m.clone())
        }
        _ => {}
    }
    if let Some(rest) = msg.strip_prefix("Invalid input syntax for type interval: ") {
        return TemporaError::new(
            SqlState::INVALID_DATETIME_FORMAT,
            format!("invalid input syntax for type interval: {rest}"),
        );
    }
    if let Some(e) = classify_function_error(&text, &lower) {
        return e;
    }
    if lower.contains("divide by zero") || lower.contains("division by zero") {
        return TemporaError::new(SqlState::DIVISION_BY_ZERO, "division by zero");
    }
    if lower.contains("table '") && lower.contains("' not found") {
        // "table 'datafusion.public.foo' not found": named as written, which
        // for a table of the default schema is the table name alone.
        let name = text
            .split('\'')
            .nth(1)
            .map(|n| {
                let parts: Vec<&str> = n.split('.').collect();
                match parts.as_slice() {
                    [_, "public", t] | [t] => t.to_string(),
                    [_, s, t] => format!("{s}.{t}"),
                    _ => parts.last().copied().unwrap_or(n).to_string(),
                }
            })
            .unwrap_or_default();
        return TemporaError::undefined_table(name);
    }
    if lower.contains("invalid function")
        || lower.contains("function '") && lower.contains("not found")
    {
        // "Invalid function 'f'.\nDid you mean 'ln'?": PostgreSQL names the
        // function and gives its hint (the argument types are not known here).
        return match text.split('\'').nth(1) {
            Some(name) if lower.contains("invalid function") => TemporaError::new(
                SqlState::UNDEFINED_FUNCTION,
                format!("function {name} does not exist"),
            )
            .with_hint(
                "No function matches the given name and argument types. \
                 You might need to add explicit type casts.",
            ),
            _ => TemporaError::new(SqlState::UNDEFINED_FUNCTION, msg),
        };
    }
    if lower.contains("cast error")
        || lower.contains("cannot cast")
        || lower.contains("error parsing")
    {
        return classify_cast_error(&msg);
    }
    if lower.contains("overflow") {
        return TemporaError::new(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, msg);
    }
    if matches!(root, DataFusionError::Plan(_)) {
        return TemporaError::new(SqlState::SYNTAX_ERROR, msg);
    }
    TemporaError::new(SqlState::INTERNAL_ERROR, msg)
}

/// Errors DataFusion's functions and operators raise with their own texts,
/// reworded as PostgreSQL's, with its codes.
fn classify_function_error(text: &str, lower: &str) -> Option<TemporaError> {
    let (code, message) = if lower.contains("regex parse error")
        || lower.contains("regular expression did not compile")
    {
        // The regex crate's reason is on its own line: "error: unclosed group".
        let reason = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or("syntax error");
        (
            SqlState::INVALID_REGULAR_EXPRESSION,
            format!("invalid regular expression: {reason}"),
        )
    } else if lower.contains("scalar subquery returned more than one row") {
        (
            SqlState::CARDINALITY_VIOLATION,
            "more than one row returned by a subquery used as an expression".to_string(),
        )
    } else if lower.contains("step can't be 0") || lower.contains("step cannot be zero") {
        (
            SqlState::INVALID_PARAMETER_VALUE,
            "step size cannot equal zero".to_string(),
        )
    } else if lower.contains("field position must not be zero") {
        (
            SqlState::INVALID_PARAMETER_VALUE,
            "field position must not be zero".to_string(),
        )
    } else if lower.contains("too large to store in a decimal128 of precision") {
        // "12345.68 is too large to store in a Decimal128 of precision 5.
        // Max is 999.99"
        let precision = lower
            .split_once("of precision ")
            .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse::<i32>().ok());
        let scale = lower.split_once("max is ").map(|(_, max)| {
            max.trim()
                .split_once('.')
                .map_or(0, |(_, f)| f.len() as i32)
        });
        return Some(numeric_field_overflow(precision.zip(scale)));
    } else if lower.contains("inconsistent data length across values list") {
        (
            SqlState::SYNTAX_ERROR,
            "VALUES lists must all be the same length".to_string(),
        )
    } else if lower.contains("must be in group by or an aggregate function") {
        // "Column in SELECT must be in GROUP BY or an aggregate function:
        // [While expanding wildcard, column] "t.x" must appear in the GROUP
        // BY clause or must be part of an aggregate function, ..."
        let column = text
            .split_once("aggregate function:")
            .and_then(|(_, rest)| rest.split('"').nth(1))
            .unwrap_or("?");
        (
            SqlState::GROUPING_ERROR,
            format!(
                "column \"{column}\" must appear in the GROUP BY clause or be used in an aggregate function"
            ),
        )
    } else if lower.contains("ntile requires a positive integer") {
        (
            SqlState::INVALID_ARGUMENT_FOR_NTILE_FUNCTION,
            "argument of ntile must be greater than zero".to_string(),
        )
    } else {
        return None;
    };
    Some(TemporaError::new(code, message))
}

/// PostgreSQL's 22003 for a value too wide for a numeric of precision `p`
/// and scale `s`.
fn numeric_field_overflow(field: Option<(i32, i32)>) -> TemporaError {
    let e = TemporaError::new(
        SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
        "numeric field overflow",
    );
    match field {
        Some((p, s)) => e.with_detail(format!(
            "A field with precision {p}, scale {s} must round to an absolute value less than \
             10^{}.",
            p - s
        )),
        None => e,
    }
}

/// Arrow cast errors, reworded as PostgreSQL's input errors.
fn classify_cast_error(msg: &str) -> TemporaError {
    let lower = msg.to_lowercase();
    // Arrow: "Can't cast value 40000 to type Int16", a narrowing integer cast.
    if lower.contains("can't cast value") {
        let target = lower.rsplit("to type ").next().unwrap_or("");
        let ty = match target.trim() {
            "int16" => "smallint",
            "int32" => "integer",
            "int64" => "bigint",
            _ => "value",
        };
        return TemporaError::new(
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            format!("{ty} out of range"),
        );
    }
    let quoted = msg.split('\'').nth(1).unwrap_or("").to_string();
    if lower.contains("timestamp") || lower.contains("date") || lower.contains("time") {
        if lower.contains("out of range") || lower.contains("input is out of range") {
            return TemporaError::new(
                SqlState::DATETIME_FIELD_OVERFLOW,
                format!("date/time field value out of range: \"{quoted}\""),
            );
        }
        let ty = if lower.contains("date32") || lower.contains("as date") {
            "date"
        } else if lower.contains("timezone") || lower.contains("tz") || lower.contains("utc") {
            "timestamp with time zone"
        } else {
            "timestamp"
        };
        return TemporaError::new(
            SqlState::INVALID_DATETIME_FORMAT,
            format!("invalid input syntax for type {ty}: \"{quoted}\""),
        );
    }
    let ty = if lower.contains("int16") {
        "smallint"
    } else if lower.contains("int32") {
        "integer"
    } else if lower.contains("int64") {
        "bigint"
    } else if lower.contains("float32") {
        "real"
    } else if lower.contains("float64") {
        "double precision"
    } else if lower.contains("decimal") {
        "numeric"
    } else if lower.contains("boolean") {
        "boolean"
    } else {
        ""
    };
    if lower.contains("too large") || lower.contains("overflow") || lower.contains("out of range") {
        if ty == "numeric" && quoted.is_empty() {
            // A value too wide for the decimal it is cast to (a numeric
            // without a precision is numeric(38, 10) in Tempora).
            let field = msg.split_once("Decimal128(").and_then(|(_, rest)| {
                let (p, rest) = rest.split_once(',')?;
                let s = rest.split_once(')')?.0;
                Some((p.trim().parse::<i32>().ok()?, s.trim().parse::<i32>().ok()?))
            });
            return numeric_field_overflow(field);
        }
        return TemporaError::new(
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            if ty.is_empty() {
                "value out of range".to_string()
            } else {
                format!("value \"{quoted}\" is out of range for type {ty}")
            },
        );
    }
    if ty.is_empty() {
        TemporaError::new(SqlState::INVALID_TEXT_REPRESENTATION, msg.to_string())
    } else {
        TemporaError::new(
            SqlState::INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type {ty}: \"{quoted}\""),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tempora_error_survives_datafusion() {
        let e = TemporaError::undefined_table("foo").into_datafusion();
        let e = DataFusionError::Context("while planning".into(), Box::new(e));
        let back = TemporaError::from_datafusion(e);
        assert_eq!(back.code, SqlState::UNDEFINED_TABLE);
        assert_eq!(back.message, "relation \"foo\" does not exist");
    }

    #[test]
    fn table_not_found_maps_to_42p01() {
        let e = DataFusionError::Plan("table 'tempora.public.nope' not found".into());
        let t = TemporaError::from_datafusion(e);
        assert_eq!(t.code, SqlState::UNDEFINED_TABLE);
        assert_eq!(t.message, "relation \"nope\" does not exist");
        let e = DataFusionError::Plan("table 'tempora.iot.nope' not found".into());
        let t = TemporaError::from_datafusion(e);
        assert_eq!(t.message, "relation \"iot.nope\" does not exist");
    }
}
