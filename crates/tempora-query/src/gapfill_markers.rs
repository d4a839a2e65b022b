//! `time_bucket_gapfill`, `locf` and `interpolate` as functions DataFusion
//! can plan (for EXPLAIN and for type checking). The SQL layer runs gapfill
//! queries itself; evaluated anywhere else these raise TimescaleDB's error.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use tempora_common::{SqlState, TemporaError};

#[derive(Debug, PartialEq, Eq, Hash)]
struct Marker {
    name: &'static str,
    /// The argument whose type the function returns.
    typed_like: usize,
    signature: Signature,
}

impl ScalarUDFImpl for Marker {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args.get(self.typed_like) {
            Some(t) => Ok(t.clone()),
            None => plan_err!(
                "{} needs at least {} arguments",
                self.name,
                self.typed_like + 1
            ),
        }
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!(
                "{} can only be used in an aggregation query with time_bucket_gapfill",
                self.name
            ),
        )
        .into_datafusion())
    }
}

/// The three markers, to register with `ctx.register_udf`.
pub fn marker_udfs() -> Vec<ScalarUDF> {
    [("time_bucket_gapfill", 1), ("locf", 0), ("interpolate", 0)]
        .into_iter()
        .map(|(name, typed_like)| {
            ScalarUDF::new_from_impl(Marker {
                name,
                typed_like,
                signature: Signature::variadic_any(Volatility::Volatile),
            })
        })
        .collect()
}
