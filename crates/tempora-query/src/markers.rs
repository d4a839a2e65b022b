//! Functions the SQL layer runs itself, registered so that DataFusion can
//! plan them (EXPLAIN, type checking) and so that a use the SQL layer does
//! not take raises a clear error instead of "function does not exist":
//! `time_bucket_gapfill` outside a gapfill query (TimescaleDB's 22023), and
//! the job functions called per row of a query rather than on their own
//! (0A000). `locf` and `interpolate` outside a gapfill query give their
//! argument, as TimescaleDB's do.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use tempora_common::{SqlState, TemporaError};

#[derive(Debug, PartialEq, Eq, Hash)]
struct Marker {
    name: &'static str,
    /// The argument whose type the function returns, or a fixed type.
    returns: Returns,
    signature: Signature,
}

#[derive(Debug, PartialEq, Eq, Hash)]
enum Returns {
    TypeOfArgument(usize),
    Fixed(DataType),
}

impl ScalarUDFImpl for Marker {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match &self.returns {
            Returns::Fixed(t) => Ok(t.clone()),
            Returns::TypeOfArgument(i) => match args.get(*i) {
                Some(t) => Ok(t.clone()),
                None => plan_err!("{} needs at least {} arguments", self.name, i + 1),
            },
        }
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Outside a gapfill query TimescaleDB's locf and interpolate give
        // their value as it is.
        if matches!(self.name, "locf" | "interpolate") && !args.args.is_empty() {
            return Ok(args.args.swap_remove(0));
        }
        let e = match self.returns {
            Returns::TypeOfArgument(_) => TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!(
                    "{} can only be used in an aggregation query with time_bucket_gapfill",
                    self.name
                ),
            ),
            Returns::Fixed(_) => TemporaError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                format!(
                    "{0} can only be called on its own, as SELECT {0}(...) or SELECT ... FROM {0}(...)",
                    self.name
                ),
            ),
        };
        Err(e.into_datafusion())
    }
}

/// The markers, to register with `ctx.register_udf`.
pub fn marker_udfs() -> Vec<ScalarUDF> {
    let gapfill = [("time_bucket_gapfill", 1), ("locf", 0), ("interpolate", 0)]
        .into_iter()
        .map(|(name, i)| (name, Returns::TypeOfArgument(i)));
    let commands = [
        ("add_retention_policy", DataType::Int32),
        ("remove_retention_policy", DataType::Utf8),
        ("add_compression_policy", DataType::Int32),
        ("remove_compression_policy", DataType::Boolean),
        ("alter_job", DataType::Utf8),
        ("delete_job", DataType::Utf8),
        ("drop_chunks", DataType::Utf8),
        ("set_chunk_time_interval", DataType::Utf8),
        ("create_hypertable", DataType::Utf8),
        ("show_chunks", DataType::Utf8),
        ("add_dimension", DataType::Utf8),
        ("set_integer_now_func", DataType::Utf8),
        ("set_number_partitions", DataType::Utf8),
    ]
    .into_iter()
    .map(|(name, t)| (name, Returns::Fixed(t)));
    gapfill
        .chain(commands)
        .map(|(name, returns)| {
            ScalarUDF::new_from_impl(Marker {
                name,
                returns,
                signature: Signature::variadic_any(Volatility::Volatile),
            })
        })
        .collect()
}
