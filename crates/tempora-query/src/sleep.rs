//! `pg_sleep(seconds)`: waits without holding a thread, so a statement
//! timeout or a CancelRequest (which drop the statement) ends it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use tempora_common::{SqlState, TemporaError};

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgSleep {
    signature: Signature,
}

impl ScalarUDFImpl for PgSleep {
    fn name(&self) -> &str {
        "pg_sleep"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// PostgreSQL's `void`, which prints as an empty value.
    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(TemporaError::internal("pg_sleep runs asynchronously").into_datafusion())
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for PgSleep {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let seconds = args.args[0].to_array(rows)?;
        // A quoted literal is read as PostgreSQL reads double precision.
        if let Some(text) = seconds.as_any().downcast_ref::<StringArray>() {
            for v in text.iter().flatten() {
                if v.trim().parse::<f64>().is_err() {
                    return Err(TemporaError::new(
                        SqlState::INVALID_TEXT_REPRESENTATION,
                        format!("invalid input syntax for type double precision: \"{v}\""),
                    )
                    .into_datafusion());
                }
            }
        }
        let seconds = datafusion::arrow::compute::cast(&seconds, &DataType::Float64)?;
        let seconds = seconds
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Float64Array>()
            .ok_or_else(|| TemporaError::internal("pg_sleep argument").into_datafusion())?;
        let mut out: Vec<Option<&str>> = Vec::with_capacity(rows);
        // One wait per row, as PostgreSQL calls it once per row.
        for row in 0..rows {
            if seconds.is_null(row) {
                out.push(None);
                continue;
            }
            let s = seconds.value(row);
            if s.is_finite() && s > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(s.min(1e9))).await;
            }
            out.push(Some(""));
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `pg_sleep(double precision)`.
pub fn pg_sleep_udf() -> ScalarUDF {
    AsyncScalarUDF::new(Arc::new(PgSleep {
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Float64]),
                TypeSignature::Exact(vec![DataType::Utf8]),
            ],
            Volatility::Volatile,
        ),
    }))
    .into_scalar_udf()
}
