//! PostgreSQL's rounding when a fractional value becomes an integer.
//!
//! Arrow's casts truncate (`1.6::float8::int` is 1); PostgreSQL rounds:
//! `float4`/`float8` to the nearest integer, ties to even (`rint`), and
//! `numeric` half away from zero. This analyzer rule runs after type
//! coercion and puts [`pg_round`] under every cast from a float or decimal
//! to an integer type, whether the SQL wrote it (`x::int`, `CAST`) or
//! coercion added it (an INSERT of `1.6` into an integer column,
//! `ALTER COLUMN TYPE`). `round(double precision)` rounds ties to even too.
//! A literal such as `2.5` is numeric (operand_types.rs) and rounds as
//! numeric does.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Decimal128Array, Float32Array, Float64Array};
use datafusion::arrow::compute::kernels::arity::unary;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ExprSchema};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule; see the module documentation.
#[derive(Debug, Default)]
pub struct PgIntegerCasts;

/// Arithmetic of `real` with an integer or numeric operand in double
/// precision, as PostgreSQL computes it: it has no `real / integer`
/// operator and picks `float48div`, its preferred float type, where
/// DataFusion's coercion casts the integer to `real` (`3::real / 7` is
/// 0.42857142857142855, not 0.42857143).
///
/// The rule runs twice. Before type coercion ([`Self::BEFORE_COERCION`])
/// the operands have the types the query gave them; after it, coercion has
/// cast the integer operand to `real`, which tells apart an operand whose
/// type is only known then (a parameter) — but not from a cast the query
/// wrote, so `3::real / 7`, two such casts, is widened before coercion.
/// The second run then makes float arithmetic checked
/// ([`crate::checked_arithmetic::rewrite_floats`]).
#[derive(Debug, Default)]
pub struct PgFloat4Arithmetic {
    before_coercion: bool,
}

impl PgFloat4Arithmetic {
    pub const BEFORE_COERCION: PgFloat4Arithmetic = PgFloat4Arithmetic {
        before_coercion: true,
    };
}

impl AnalyzerRule for PgFloat4Arithmetic {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> DfResult<LogicalPlan> {
        let changed = std::cell::Cell::new(false);
        let plan = rewrite_plan_exprs(plan, |e, schema| {
            let t = widen_float4(e, schema, self.before_coercion)?;
            changed.set(changed.get() || t.transformed);
            if self.before_coercion {
                return Ok(t);
            }
            // Float arithmetic in its final types, checked as PostgreSQL's.
            t.transform_data(|e| crate::checked_arithmetic::rewrite_floats(e, schema))
        })?;
        if !changed.get() || self.before_coercion {
            return Ok(plan);
        }
        // Widened expressions change the types their nodes output and the
        // types the expressions around them compare: coerce again.
        datafusion::optimizer::analyzer::type_coercion::TypeCoercion::new().analyze(plan, config)
    }

    fn name(&self) -> &str {
        if self.before_coercion {
            "pg_float4_operands"
        } else {
            "pg_float4_arithmetic"
        }
    }
}

/// The operand of `real` arithmetic that coercion cast from an integer or
/// a numeric to `real`, uncast.
fn cast_to_float4(e: &Expr, schema: &dyn ExprSchema) -> Option<Expr> {
    let Expr::Cast(Cast { expr, field }) = e else {
        return None;
    };
    let from = expr.get_type(schema).ok()?;
    (field.data_type() == &DataType::Float32
        && (from.is_integer() || matches!(from, DataType::Decimal128(..))))
    .then(|| expr.as_ref().clone())
}

/// An integer or numeric operand of `real` arithmetic, as it is before type
/// coercion.
fn integer_or_numeric(e: &Expr, schema: &dyn ExprSchema) -> Option<Expr> {
    e.get_type(schema)
        .is_ok_and(|t| t.is_integer() || matches!(t, DataType::Decimal128(..)))
        .then(|| e.clone())
}

fn widen_float4(
    e: Expr,
    schema: &dyn ExprSchema,
    before_coercion: bool,
) -> DfResult<Transformed<Expr>> {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
        return Ok(Transformed::no(e));
    };
    if !matches!(
        op,
        Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Divide | Operator::Modulo
    ) {
        return Ok(Transformed::no(e));
    }
    let float4 = |x: &Expr| x.get_type(schema).is_ok_and(|t| t == DataType::Float32);
    let other = |x: &Expr| match before_coercion {
        true => integer_or_numeric(x, schema),
        false => cast_to_float4(x, schema),
    };
    let (l, r) = match (other(left), other(right)) {
        (None, Some(r)) if float4(left) => (left.as_ref().clone(), r),
        (Some(l), None) if float4(right) => (l, right.as_ref().clone()),
        _ => return Ok(Transformed::no(e)),
    };
    let double = |x: Expr| Expr::Cast(Cast::new(Box::new(x), DataType::Float64));
    Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
        Box::new(double(l)),
        *op,
        Box::new(double(r)),
    ))))
}

/// `pg_round(x)`: a float rounded ties-to-even, a decimal rounded half
/// away from zero to scale 0, as PostgreSQL rounds them into integers.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgRound {
    signature: Signature,
}

pub fn pg_round() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(PgRound {
        signature: Signature::any(1, Volatility::Immutable),
    }))
}

fn rounded_type(dt: &DataType) -> DataType {
    match dt {
        DataType::Decimal128(p, _) => DataType::Decimal128((*p + 1).min(38), 0),
        other => other.clone(),
    }
}

impl ScalarUDFImpl for PgRound {
    fn name(&self) -> &str {
        "pg_round"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        Ok(rounded_type(&args[0]))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let array = args.args[0].to_array(args.number_rows.max(1))?;
        let out: ArrayRef = match array.data_type() {
            DataType::Float64 => {
                let a = array
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .ok_or_else(|| DataFusionError::Internal("pg_round input".into()))?;
                Arc::new(unary::<_, _, datafusion::arrow::datatypes::Float64Type>(
                    a,
                    f64::round_ties_even,
                ))
            }
            DataType::Float32 => {
                let a = array
                    .as_any()
                    .downcast_ref::<Float32Array>()
                    .ok_or_else(|| DataFusionError::Internal("pg_round input".into()))?;
                Arc::new(unary::<_, _, datafusion::arrow::datatypes::Float32Type>(
                    a,
                    f32::round_ties_even,
                ))
            }
            DataType::Decimal128(_, s) => {
                let a = array
                    .as_any()
                    .downcast_ref::<Decimal128Array>()
                    .ok_or_else(|| DataFusionError::Internal("pg_round input".into()))?;
                let unit = 10i128.pow((*s).max(0) as u32);
                let rounded: Decimal128Array = unary(a, |v: i128| {
                    let (q, r) = (v / unit, v % unit);
                    if r.abs() * 2 >= unit {
                        q + v.signum()
                    } else {
                        q
                    }
                });
                let DataType::Decimal128(p, s) = rounded_type(array.data_type()) else {
                    return Err(DataFusionError::Internal("pg_round type".into()));
                };
                Arc::new(rounded.with_precision_and_scale(p, s)?)
            }
            _ => array.clone(),
        };
        Ok(if scalar {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

fn fractional(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Float32 | DataType::Float64 | DataType::Decimal128(_, _)
    )
}

fn rewrite(
    e: Expr,
    schema: &dyn ExprSchema,
    round: &Arc<ScalarUDF>,
) -> DfResult<Transformed<Expr>> {
    // round(double precision) is rint: ties to even.
    if let Expr::ScalarFunction(f) = &e {
        if f.func.name() == "round" && f.args.len() == 1 {
            // A literal (`round(2.5)`) is numeric, which rounds half away
            // from zero as the function already does.
            let float = f.args[0]
                .get_type(schema)
                .is_ok_and(|t| matches!(t, DataType::Float32 | DataType::Float64));
            if float {
                return Ok(Transformed::yes(round.call(f.args.clone())));
            }
        }
        return Ok(Transformed::no(e));
    }
    let Expr::Cast(Cast { expr, field }) = &e else {
        return Ok(Transformed::no(e));
    };
    if !field.data_type().is_integer() {
        return Ok(Transformed::no(e));
    }
    // Already rounded, or of a type that has no fraction.
    if matches!(expr.as_ref(), Expr::ScalarFunction(f) if f.func.name() == "pg_round") {
        return Ok(Transformed::no(e));
    }
    let Ok(from) = expr.get_type(schema) else {
        return Ok(Transformed::no(e));
    };
    if !fractional(&from) {
        return Ok(Transformed::no(e));
    }
    let rounded = round.call(vec![expr.as_ref().clone()]);
    Ok(Transformed::yes(Expr::Cast(Cast::new_from_field(
        Box::new(rounded),
        field.clone(),
    ))))
}

/// Rewrites every expression of `plan` and its subqueries bottom-up with
/// `f`, which sees the schema the expression reads; output names are kept.
pub(crate) fn rewrite_plan_exprs(
    plan: LogicalPlan,
    f: impl Fn(Expr, &DFSchema) -> DfResult<Transformed<Expr>>,
) -> DfResult<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        // Expressions read their node's inputs (a scan's filters, its own).
        let mut schema = DFSchema::empty();
        let inputs = node.inputs();
        if inputs.is_empty() {
            schema = node.schema().as_ref().clone();
        }
        for input in inputs {
            schema.merge(input.schema());
        }
        let names = datafusion::logical_expr::expr_rewriter::NamePreserver::new(&node);
        node.map_expressions(|e| {
            let saved = names.save(&e);
            e.transform_up(|e| f(e, &schema))
                .map(|t| t.update_data(|new| saved.restore(new)))
        })
    })
    .map(|t| t.data)
}

impl AnalyzerRule for PgIntegerCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        let round = pg_round();
        let plan = rewrite_plan_exprs(plan, |e, schema| {
            rewrite(e, schema, &round)?
                .transform_data(|e| crate::checked_arithmetic::rewrite(e, schema))?
                .transform_data(|e| crate::interval_compare::rewrite(e, schema))
        })?;
        crate::interval_compare::sort_by_span(plan)
    }

    fn name(&self) -> &str {
        "pg_integer_casts"
    }
}

/// `floor(numeric)` and `ceil(numeric)` (and `ceiling`) with PostgreSQL's
/// result scale, 0: `floor(extract(epoch FROM t) / 60) * 60` prints
/// `1704067200`, not `1704067200.0000000000`. Other types go to
/// DataFusion's function (`inner`) unchanged.
#[derive(Debug, PartialEq, Eq, Hash)]
struct WholeNumeric {
    inner: Arc<ScalarUDF>,
}

/// [`WholeNumeric`] over DataFusion's `floor` and `ceil`, to register in
/// their place.
pub fn whole_numeric_udfs() -> Vec<ScalarUDF> {
    [
        datafusion::functions::math::floor(),
        datafusion::functions::math::ceil(),
    ]
    .into_iter()
    .map(|inner| ScalarUDF::new_from_impl(WholeNumeric { inner }))
    .collect()
}

fn whole(dt: DataType) -> DataType {
    match dt {
        DataType::Decimal128(p, s) if s > 0 => DataType::Decimal128(p, 0),
        other => other,
    }
}

impl ScalarUDFImpl for WholeNumeric {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn coerce_types(&self, args: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.inner().coerce_types(args)
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(args).map(whole)
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let to = args.return_field.data_type().clone();
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        // DataFusion's function, called with the type it promises itself.
        args.return_field = Arc::new(
            args.return_field
                .as_ref()
                .clone()
                .with_data_type(self.inner.return_type(&types)?),
        );
        let value = self.inner.inner().invoke_with_args(args)?;
        // The value is whole already: the cast drops zeros only.
        if value.data_type() == to {
            Ok(value)
        } else {
            value.cast_to(&to, None)
        }
    }
}
