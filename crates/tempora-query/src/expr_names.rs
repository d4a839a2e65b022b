//! `tempora_named(value, n)`: `value` itself, under a name of its own.
//!
//! DataFusion names an expression after its text with casts left out, so
//! `avg(x)` and `avg(x::float8)` are both `avg(x)`, and a plan that computes
//! both (an aggregate, a window) refuses the second. PostgreSQL lets them
//! stand side by side; the SQL layer (tempora-sql's naming.rs) wraps the
//! casting argument of the later one in this function, whose name carries
//! `n`. It stays in the plan (the optimizer would otherwise find the two
//! expressions equal again and merge them under one name): evaluating it
//! hands its argument's array on, without a copy.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

/// The function's name, as the SQL layer writes it.
pub const TEMPORA_NAMED: &str = "tempora_named";

#[derive(Debug, PartialEq, Eq, Hash)]
struct TemporaNamed {
    signature: Signature,
}

impl ScalarUDFImpl for TemporaNamed {
    fn name(&self) -> &str {
        TEMPORA_NAMED
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args.first() {
            Some(t) => Ok(t.clone()),
            None => plan_err!("{TEMPORA_NAMED} takes a value"),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        match args.arg_fields.first() {
            // A json type goes with the value (not a table column's id).
            Some(f) => Ok(Arc::new(
                Field::new(self.name(), f.data_type().clone(), f.is_nullable()).with_metadata(
                    f.metadata()
                        .iter()
                        .filter(|(k, _)| k.as_str() == tempora_catalog::PG_TYPE_KEY)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
            )),
            None => plan_err!("{TEMPORA_NAMED} takes a value"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.into_iter().next() {
            Some(v) => Ok(v),
            None => plan_err!("{TEMPORA_NAMED} takes a value"),
        }
    }
}

/// The `tempora_named` function (register with `ctx.register_udf`).
pub fn tempora_named_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(TemporaNamed {
        signature: Signature::any(2, Volatility::Immutable),
    })
}
