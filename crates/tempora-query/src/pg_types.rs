//! PostgreSQL's names for the Arrow types values travel as, and
//! `pg_typeof(value)`, which answers with them.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The PostgreSQL type a value of Arrow type `t` has, as `format_type` prints it.
pub fn pg_type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Null => "unknown",
        DataType::Boolean => "boolean",
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint",
        DataType::Float16 | DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => "numeric",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea",
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone",
        DataType::Timestamp(_, None) => "timestamp without time zone",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Time32(_) | DataType::Time64(_) => "time without time zone",
        DataType::Interval(_) | DataType::Duration(_) => "interval",
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            match f.data_type() {
                DataType::Int16 => "smallint[]",
                DataType::Int32 => "integer[]",
                DataType::Int64 => "bigint[]",
                DataType::Float64 => "double precision[]",
                DataType::Boolean => "boolean[]",
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text[]",
                _ => "anyarray",
            }
        }
        _ => "unknown",
    }
}

/// `pg_typeof(any) → regtype`, printed as the type's name.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgTypeof {
    signature: Signature,
}

impl ScalarUDFImpl for PgTypeof {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // json, jsonb and uuid values are text that names its type.
        let typed = args
            .arg_fields
            .first()
            .and_then(|f| crate::jsonb::text_type(f));
        let name = match typed {
            Some(t) => t,
            None => args
                .args
                .first()
                .map_or("unknown", |a| pg_type_name(&a.data_type())),
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name.into()))))
    }
}

pub fn pg_typeof_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(PgTypeof {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

/// PostgreSQL's oid of the type a value of Arrow type `t` has.
pub fn pg_type_oid(t: &DataType) -> u32 {
    match pg_type_name(t) {
        "boolean" => 16,
        "smallint" => 21,
        "integer" => 23,
        "bigint" => 20,
        "real" => 700,
        "double precision" => 701,
        "numeric" => 1700,
        "text" => 25,
        "bytea" => 17,
        "timestamp with time zone" => 1184,
        "timestamp without time zone" => 1114,
        "date" => 1082,
        "time without time zone" => 1083,
        "interval" => 1186,
        "smallint[]" => 1005,
        "integer[]" => 1007,
        "bigint[]" => 1016,
        "double precision[]" => 1022,
        "boolean[]" => 1000,
        "text[]" => 1009,
        _ => 705,
    }
}

/// Bytes of a value of Arrow type `t` as PostgreSQL stores it
/// (`pg_type.typlen`): -1 for variable-length types.
pub fn pg_type_length(t: &DataType) -> i16 {
    match pg_type_oid(t) {
        16 => 1,
        21 => 2,
        23 | 700 | 1082 => 4,
        20 | 701 | 1184 | 1114 | 1083 => 8,
        1186 => 16,
        _ => -1,
    }
}

/// An array of `values` of type `t` (which an empty list cannot tell).
pub fn array_of(
    values: Vec<ScalarValue>,
    t: &DataType,
) -> Result<datafusion::arrow::array::ArrayRef> {
    if values.is_empty() {
        return Ok(datafusion::arrow::array::new_empty_array(t));
    }
    ScalarValue::iter_to_array(values)
}

/// Evaluates a function row by row over its arguments' values: one value
/// when every argument is a constant, else one per row, each typed
/// `returns` (NULL where `f` gives a NULL of another type).
pub fn map_rows(
    args: &datafusion::logical_expr::ScalarFunctionArgs,
    returns: &DataType,
    mut f: impl FnMut(&[ScalarValue]) -> Result<ScalarValue>,
) -> Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(&args.args)?;
    let (rows, scalar) = result_rows(&args.args, args.number_rows);
    let mut out = Vec::with_capacity(rows);
    for i in 0..rows {
        let values = arrays
            .iter()
            .map(|a| ScalarValue::try_from_array(a, i))
            .collect::<Result<Vec<_>>>()?;
        let v = f(&values)?;
        out.push(if v.is_null() {
            ScalarValue::try_from(returns)?
        } else {
            v
        });
    }
    Ok(if scalar {
        ColumnarValue::Scalar(out.remove(0))
    } else {
        ColumnarValue::Array(array_of(out, returns)?)
    })
}

/// How many rows a scalar function computes, and whether its result is a
/// scalar: one row when every argument is a scalar, else the batch's.
pub(crate) fn result_rows(args: &[ColumnarValue], number_rows: usize) -> (usize, bool) {
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        (1, true)
    } else {
        (number_rows, false)
    }
}

/// A scalar function's arguments as arrays of one length, and whether its
/// result is a scalar ([`result_rows`]).
pub(crate) fn argument_arrays(
    args: &datafusion::logical_expr::ScalarFunctionArgs,
) -> Result<(Vec<datafusion::arrow::array::ArrayRef>, bool)> {
    let (rows, scalar) = result_rows(&args.args, args.number_rows);
    let arrays = args
        .args
        .iter()
        .map(|a| a.to_array(rows))
        .collect::<Result<Vec<_>>>()?;
    Ok((arrays, scalar))
}

/// A scalar function's result computed as `out`: its one value when
/// [`result_rows`] said the result is a scalar, else the array.
pub(crate) fn result_value(
    out: datafusion::arrow::array::ArrayRef,
    scalar: bool,
) -> Result<ColumnarValue> {
    Ok(if scalar {
        ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
    } else {
        ColumnarValue::Array(out)
    })
}
