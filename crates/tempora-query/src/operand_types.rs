//! Operand types as PostgreSQL resolves them, set before DataFusion's type
//! coercion settles them otherwise.
//!
//! **A numeric meets a float: the float's type wins.** A literal with a
//! fraction (`1.005`, `0.1`) is numeric in PostgreSQL, so Tempora parses it
//! as a decimal (`parse_float_as_decimal`): `0.1 + 0.2` is exactly `0.3`,
//! and `1.005` stored into `numeric(6,2)` is `1.01`. DataFusion's coercion,
//! though, settles a float beside a decimal on a decimal type for
//! comparisons, `CASE`, `COALESCE`, `IN` lists, ARRAY, `UNION` and `VALUES`:
//! `usage_user > 90.0` would cast every reading to `Decimal128(30, 15)`
//! (slow, and no longer a predicate Parquet statistics can prune with), and
//! `COALESCE(x, 0.0)` would print `1.250000000000000`. PostgreSQL resolves
//! these to `double precision`: the decimal side is cast to `Float64`.
//!
//! **A date plus or minus an interval is a timestamp** (`date '2024-03-15'
//! + interval '1 hour'` is `2024-03-15 01:00:00`); DataFusion's is a date,
//! which drops the time. The date is cast to `timestamp` first.
//!
//! **An untyped literal beside a date/time value takes its type** in `IN`,
//! `BETWEEN`, `CASE` and `coalesce`-like calls (unknown_literals.rs).
//!
//! **A bytea cast to text is its printed form** (`'\x0102'::bytea::text` is
//! `\x0102`): the cast the statement wrote becomes `byteaout`; casts that
//! coercion adds later keep the bytes.
//!
//! **A sum of bigints is numeric** (`sum(int8)` never overflows in
//! PostgreSQL; DataFusion's wraps): the argument of `sum`, as an aggregate
//! or a window, is cast to `numeric(38,0)` when it is a bigint, and
//! DataFusion's decimal sum adds it. A smallint or integer sum stays a
//! bigint, as in PostgreSQL.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, ExprSchema, Result};
use datafusion::logical_expr::expr::{Case, InList};
use datafusion::logical_expr::{
    cast, Between, BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator, Projection, Union,
    Values,
};
use datafusion::optimizer::AnalyzerRule;

use crate::pg_casts::rewrite_plan_exprs;
use crate::unknown_literals::type_unknowns;

/// The analyzer rule; see the module documentation.
#[derive(Debug, Default)]
pub struct PgOperandTypes;

fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float32 | DataType::Float64)
}

fn is_decimal(t: &DataType) -> bool {
    matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
}

/// Casts the decimal members of `exprs` to `Float64` when another member
/// is a float; says whether it did.
fn floats_win(exprs: &mut [&mut Expr], schema: &dyn ExprSchema) -> bool {
    let types: Vec<Option<DataType>> = exprs.iter().map(|e| e.get_type(schema).ok()).collect();
    if !types.iter().flatten().any(is_float) {
        return false;
    }
    let mut changed = false;
    for (e, t) in exprs.iter_mut().zip(&types) {
        if t.as_ref().is_some_and(is_decimal) {
            **e = cast((**e).clone(), DataType::Float64);
            changed = true;
        }
    }
    changed
}

fn is_interval(t: &DataType) -> bool {
    matches!(t, DataType::Interval(_))
}

/// `date ± interval` (or `interval + date`): the date as a timestamp, so
/// that the sum keeps the interval's time. Only for `+` and `-`, which the
/// caller has checked; says whether it cast.
fn date_with_interval(left: &mut Expr, right: &mut Expr, schema: &dyn ExprSchema) -> bool {
    let (Ok(l), Ok(r)) = (left.get_type(schema), right.get_type(schema)) else {
        return false;
    };
    let timestamp = DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None);
    let date = |e: &mut Expr| *e = cast(e.clone(), timestamp.clone());
    match (&l, &r) {
        (DataType::Date32 | DataType::Date64, r) if is_interval(r) => date(left),
        (l, DataType::Date32 | DataType::Date64) if is_interval(l) => date(right),
        _ => return false,
    }
    true
}

fn rewrite_expr(mut e: Expr, schema: &dyn ExprSchema) -> Result<Transformed<Expr>> {
    // `bytea::text` is the bytea's printed form (`\x0102`). Before
    // coercion every cast is one the statement wrote; coercion's own casts
    // of a bytea to text (`bytea LIKE text`) keep the bytes.
    if let Expr::Cast(c) = &e {
        let text =
            |t: &DataType| matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8);
        let binary = |t: &DataType| {
            matches!(
                t,
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView
            )
        };
        if text(c.field.data_type()) && c.expr.get_type(schema).is_ok_and(|t| binary(&t)) {
            let printed = crate::bytea_functions::byteaout_udf().call(vec![(*c.expr).clone()]);
            return Ok(Transformed::yes(cast(printed, c.field.data_type().clone())));
        }
    }
    let changed = match &mut e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op:
                op @ (Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
                | Operator::IsDistinctFrom
                | Operator::IsNotDistinctFrom
                | Operator::Plus
                | Operator::Minus
                | Operator::Multiply
                | Operator::Divide
                | Operator::Modulo),
            right,
        }) => {
            let dated = matches!(op, Operator::Plus | Operator::Minus)
                && date_with_interval(left, right, schema);
            floats_win(&mut [left.as_mut(), right.as_mut()], schema) | dated
        }
        Expr::Between(Between {
            expr, low, high, ..
        }) => {
            let mut all = [expr.as_mut(), low.as_mut(), high.as_mut()];
            type_unknowns(&mut all, schema) | floats_win(&mut all, schema)
        }
        Expr::InList(InList { expr, list, .. }) => {
            let mut all: Vec<&mut Expr> = vec![expr.as_mut()];
            all.extend(list.iter_mut());
            type_unknowns(&mut all, schema) | floats_win(&mut all, schema)
        }
        Expr::Case(Case {
            expr,
            when_then_expr,
            else_expr,
        }) => {
            // The value compared, against the WHEN values; the results,
            // among themselves.
            let mut compared = false;
            if let Some(x) = expr {
                let mut all: Vec<&mut Expr> = vec![x.as_mut()];
                all.extend(when_then_expr.iter_mut().map(|(w, _)| w.as_mut()));
                compared = type_unknowns(&mut all, schema) | floats_win(&mut all, schema);
            }
            let mut results: Vec<&mut Expr> =
                when_then_expr.iter_mut().map(|(_, t)| t.as_mut()).collect();
            if let Some(x) = else_expr {
                results.push(x.as_mut());
            }
            type_unknowns(&mut results, schema) | floats_win(&mut results, schema) | compared
        }
        Expr::ScalarFunction(f)
            if matches!(
                f.func.name(),
                "coalesce" | "nullif" | "greatest" | "least" | "nvl" | "ifnull" | "make_array"
            ) =>
        {
            let mut all: Vec<&mut Expr> = f.args.iter_mut().collect();
            type_unknowns(&mut all, schema) | floats_win(&mut all, schema)
        }
        // `pg_typeof('x')`: a quoted literal has no type yet, as NULL has
        // none (`unknown`); `'x'::text` is still a cast here.
        Expr::ScalarFunction(f)
            if f.func.name() == "pg_typeof"
                && matches!(
                    f.args.as_slice(),
                    [Expr::Literal(
                        datafusion::common::ScalarValue::Utf8(Some(_))
                            | datafusion::common::ScalarValue::Utf8View(Some(_))
                            | datafusion::common::ScalarValue::LargeUtf8(Some(_)),
                        _
                    )]
                ) =>
        {
            f.args = vec![Expr::Literal(datafusion::common::ScalarValue::Null, None)];
            true
        }
        Expr::AggregateFunction(f) if f.func.name() == "sum" => {
            bigint_sum(&mut f.params.args, schema)
        }
        Expr::WindowFunction(w) if w.fun.name() == "sum" => bigint_sum(&mut w.params.args, schema),
        _ => false,
    };
    Ok(if changed {
        Transformed::yes(e)
    } else {
        Transformed::no(e)
    })
}

/// The argument of a `sum` of bigints cast to `numeric(38,0)`; says
/// whether it cast.
fn bigint_sum(args: &mut [Expr], schema: &dyn ExprSchema) -> bool {
    let [arg] = args else {
        return false;
    };
    if !matches!(arg.get_type(schema), Ok(DataType::Int64 | DataType::UInt64)) {
        return false;
    }
    *arg = cast(arg.clone(), DataType::Decimal128(38, 0));
    true
}

/// `schema` with the marked columns in `Float64`.
fn with_float_columns(schema: &DFSchema, float_cols: &[bool]) -> Result<Arc<DFSchema>> {
    let fields = schema
        .iter()
        .zip(float_cols)
        .map(|((q, f), &float)| {
            let f = if float {
                Arc::new(f.as_ref().clone().with_data_type(DataType::Float64))
            } else {
                f.clone()
            };
            (q.cloned(), f)
        })
        .collect();
    Ok(Arc::new(DFSchema::new_with_metadata(
        fields,
        schema.inner().metadata().clone(),
    )?))
}

/// The float a `VALUES` row gave, under the cast to the decimal type
/// DataFusion settled the column on.
fn float_cast(e: &Expr) -> Option<&Expr> {
    match e {
        Expr::Cast(c)
            if c.expr
                .get_type(&DFSchema::empty())
                .is_ok_and(|t| is_float(&t)) =>
        {
            Some(c.expr.as_ref())
        }
        _ => None,
    }
}

/// A `VALUES` list whose column DataFusion settled on a decimal although
/// a row gave a float: the column in `Float64`.
fn float_values(values: Values) -> Result<Transformed<LogicalPlan>> {
    let Values { schema, values } = values;
    let width = schema.fields().len();
    let mut float_cols = vec![false; width];
    for (i, f) in schema.fields().iter().enumerate() {
        if !is_decimal(f.data_type()) {
            continue;
        }
        float_cols[i] = values.iter().any(|row| float_cast(&row[i]).is_some());
    }
    if !float_cols.contains(&true) {
        return Ok(Transformed::no(LogicalPlan::Values(Values {
            schema,
            values,
        })));
    }
    let values = values
        .into_iter()
        .map(|row| {
            row.into_iter()
                .enumerate()
                .map(|(i, e)| match (float_cols[i], float_cast(&e)) {
                    (false, _) => e,
                    (true, Some(float)) => cast(float.clone(), DataType::Float64),
                    (true, None) => cast(e, DataType::Float64),
                })
                .collect()
        })
        .collect();
    let schema = with_float_columns(&schema, &float_cols)?;
    Ok(Transformed::yes(LogicalPlan::Values(Values {
        schema,
        values,
    })))
}

/// A `UNION` whose column is a float in one input and a decimal in another:
/// the decimal inputs cast to `Float64` under a projection.
fn float_union(union: Union) -> Result<Transformed<LogicalPlan>> {
    let Union { inputs, schema } = union;
    let width = schema.fields().len();
    let mut float_cols = vec![false; width];
    for (i, col) in float_cols.iter_mut().enumerate() {
        let types: Vec<&DataType> = inputs
            .iter()
            .filter_map(|p| p.schema().fields().get(i).map(|f| f.data_type()))
            .collect();
        *col = types.iter().any(|t| is_float(t)) && types.iter().any(|t| is_decimal(t));
    }
    if !float_cols.contains(&true) {
        return Ok(Transformed::no(LogicalPlan::Union(Union {
            inputs,
            schema,
        })));
    }
    let inputs = inputs
        .into_iter()
        .map(|input| {
            let needs = input
                .schema()
                .fields()
                .iter()
                .enumerate()
                .any(|(i, f)| float_cols.get(i) == Some(&true) && is_decimal(f.data_type()));
            if !needs {
                return Ok(input);
            }
            let exprs = input
                .schema()
                .iter()
                .enumerate()
                .map(|(i, (q, f))| {
                    let col = Expr::Column(datafusion::common::Column::new(q.cloned(), f.name()));
                    if float_cols.get(i) == Some(&true) && is_decimal(f.data_type()) {
                        cast(col, DataType::Float64).alias_qualified(q.cloned(), f.name())
                    } else {
                        col
                    }
                })
                .collect();
            Ok(Arc::new(LogicalPlan::Projection(Projection::try_new(
                exprs, input,
            )?)))
        })
        .collect::<Result<Vec<_>>>()?;
    let schema = with_float_columns(&schema, &float_cols)?;
    Ok(Transformed::yes(LogicalPlan::Union(Union {
        inputs,
        schema,
    })))
}

impl AnalyzerRule for PgOperandTypes {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let mut retyped = false;
        let plan = plan
            .transform_up_with_subqueries(|node| {
                let t = match node {
                    LogicalPlan::Values(v) => float_values(v)?,
                    LogicalPlan::Union(u) => float_union(u)?,
                    // The nodes above a retyped one read its new types.
                    other if retyped => Transformed::yes(other.recompute_schema()?),
                    other => Transformed::no(other),
                };
                retyped |= t.transformed;
                Ok(t)
            })?
            .data;
        rewrite_plan_exprs(plan, |e, schema| rewrite_expr(e, schema))
    }

    fn name(&self) -> &str {
        "pg_operand_types"
    }
}
