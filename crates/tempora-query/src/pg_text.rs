//! Casts to text print values as PostgreSQL does.
//!
//! Arrow's cast to a string prints a timestamp as ISO 8601
//! (`2024-01-01T00:00:00Z`), a large float in full and an interval in its
//! own words; PostgreSQL's `x::text` gives what it would print for `x`
//! (`2024-01-01 00:00:00+00` in the session's TimeZone, `1e+20`,
//! `1 day 02:00:00`). This analyzer rule runs after type coercion and turns
//! every cast to text of such a value into [`pg_text`], which prints it as
//! query results are printed (`tempora_copy::text::render`).

use std::sync::Arc;

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

use crate::variables::{SessionHandle, SessionVariables};

/// `pg_text(x)`: `x` as PostgreSQL prints it, in the session's TimeZone.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgText {
    variables: SessionHandle,
    signature: Signature,
}

impl ScalarUDFImpl for PgText {
    fn name(&self) -> &str {
        "pg_text"
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
        let text = match tempora_copy::text::render(&values, &zone)? {
            Some(text) => cast(&text, &DataType::Utf8)?,
            None => cast(&values, &DataType::Utf8)?,
        };
        crate::pg_types::result_value(text, scalar)
    }
}

/// The `pg_text` function of a session.
pub fn pg_text_udf(variables: Arc<SessionVariables>) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(PgText {
        variables: SessionHandle(variables),
        signature: Signature::any(1, Volatility::Stable),
    }))
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
    )
}

/// The analyzer rule; see the module documentation.
#[derive(Debug)]
pub struct PgTextCasts {
    pub text: Arc<ScalarUDF>,
}

fn rewrite(e: Expr, schema: &DFSchema, text: &Arc<ScalarUDF>) -> DfResult<Transformed<Expr>> {
    let Expr::Cast(Cast { expr, field }) = &e else {
        return Ok(Transformed::no(e));
    };
    let to = field.data_type();
    if !matches!(
        to,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
    ) {
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
        crate::pg_casts::rewrite_plan_exprs(plan, |e, schema| rewrite(e, schema, &self.text))
    }

    fn name(&self) -> &str {
        "pg_text_casts"
    }
}
