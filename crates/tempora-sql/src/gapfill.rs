//! `time_bucket_gapfill` with `locf()` and `interpolate()`, as TimescaleDB
//! answers them.
//!
//! ```text
//! SELECT time_bucket_gapfill(w, time [, start, finish]) AS b, device,
//!        avg(v), locf(avg(v)), interpolate(avg(v))
//! FROM t WHERE time >= S AND time < F GROUP BY b, device ORDER BY b
//!   ├─ inner: the same query with time_bucket(w, time) and the bare
//!   │         aggregates, without ORDER BY / LIMIT (DataFusion runs it)
//!   ├─ bounds: start / finish from the arguments or the WHERE clause
//!   ├─ fill:  per group (the other GROUP BY columns of the select list), a
//!   │         row for every bucket in [start, finish) that has none: group
//!   │         columns copied, locf() carries the group's previous value,
//!   │         interpolate() draws a line between its neighbours, the rest NULL
//!   └─ ORDER BY / LIMIT of the query over the filled rows
//! ```
//! Only a top-level SELECT may call `time_bucket_gapfill`; `locf()` and
//! `interpolate()` must be whole select-list items.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, UInt32Array,
};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, SchemaRef, TimeUnit};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, LogicalPlan, ScalarFunctionArgs};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, GroupByExpr, Query, SelectItem, SetExpr, Statement, Value,
};
use tempora_common::{Result, SqlState, TemporaError};

use crate::{bind, call_args, function_name, Outcome, SqlSession};

/// Most buckets one gapfill query may produce per group.
const MAX_BUCKETS: usize = 10_000_000;

/// What a select-list item becomes in a filled row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Bucket,
    /// A GROUP BY column: copied from the group.
    Group,
    Locf,
    Interpolate,
    /// Anything else: NULL in a filled row.
    Other,
}

/// A planned gapfill query.
#[derive(Debug, Clone)]
pub struct GapfillPlan {
    inner: LogicalPlan,
    /// `SELECT width, start, finish[, timezone]`.
    bounds: LogicalPlan,
    /// 1 when the inferred start is `time > x` (integer / microsecond step).
    start_step: i64,
    finish_step: i64,
    roles: Vec<Role>,
    /// `ORDER BY ... LIMIT ...` of the query, applied to the filled rows.
    tail: String,
    schema: SchemaRef,
}

fn is_call(e: &SqlExpr, name: &str) -> bool {
    matches!(e, SqlExpr::Function(f) if function_name(&f.name) == name)
}

/// Whether the statement calls any of the functions anywhere.
fn calls_any(stmt: &Statement, names: &[&str]) -> bool {
    let mut found = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(stmt, |e| {
        found |= names.iter().any(|n| is_call(e, n));
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

/// Whether the statement is a query calling `time_bucket_gapfill` anywhere.
pub(crate) fn uses_gapfill(stmt: &Statement) -> bool {
    calls_any(stmt, &["time_bucket_gapfill"])
}

fn unsupported(what: &str) -> TemporaError {
    TemporaError::not_supported(format!("time_bucket_gapfill {what}"))
}

fn item_expr(item: &SelectItem) -> Option<&SqlExpr> {
    match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
        _ => None,
    }
}

fn item_expr_mut(item: &mut SelectItem) -> Option<&mut SqlExpr> {
    match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
        _ => None,
    }
}

fn item_name(item: &SelectItem) -> Option<String> {
    match item {
        SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
        SelectItem::UnnamedExpr(SqlExpr::Identifier(i)) => Some(i.value.clone()),
        SelectItem::UnnamedExpr(SqlExpr::CompoundIdentifier(p)) => {
            p.last().map(|i| i.value.clone())
        }
        _ => None,
    }
}

/// The arguments of the gapfill call: width, time, timezone, start, finish.
struct Call {
    width: SqlExpr,
    time: SqlExpr,
    timezone: Option<SqlExpr>,
    start: Option<SqlExpr>,
    finish: Option<SqlExpr>,
}

fn parse_call(e: &SqlExpr) -> Result<Call> {
    let SqlExpr::Function(f) = e else {
        return Err(TemporaError::internal("not a gapfill call"));
    };
    let args = call_args(&f.args);
    let positional: &[&str] = match args.iter().filter(|(n, _)| n.is_none()).count() {
        5 => &["bucket_width", "ts", "timezone", "start", "finish"],
        _ => &["bucket_width", "ts", "start", "finish"],
    };
    let mut call = Call {
        width: SqlExpr::Value(Value::Null.into()),
        time: SqlExpr::Value(Value::Null.into()),
        timezone: None,
        start: None,
        finish: None,
    };
    let null = |e: &SqlExpr| matches!(e, SqlExpr::Value(v) if v.value == Value::Null);
    for (i, (name, expr)) in args.into_iter().enumerate() {
        let key = match &name {
            Some(n) => n.as_str(),
            None => positional.get(i).copied().ok_or_else(|| {
                TemporaError::new(
                    SqlState::UNDEFINED_FUNCTION,
                    "function time_bucket_gapfill takes at most 5 arguments",
                )
            })?,
        };
        let value = (!null(&expr)).then_some(expr);
        match key {
            "bucket_width" => call.width = value.unwrap_or(call.width),
            "ts" | "time" => call.time = value.unwrap_or(call.time),
            "timezone" => call.timezone = value,
            "start" => call.start = value,
            "finish" => call.finish = value,
            other => {
                return Err(TemporaError::new(
                    SqlState::UNDEFINED_FUNCTION,
                    format!("function time_bucket_gapfill has no parameter named \"{other}\""),
                ))
            }
        }
    }
    Ok(call)
}

/// Start and finish read from the WHERE clause's conjuncts on the time
/// column; the steps say whether the bound was exclusive (`>`) or
/// inclusive (`<=`) and must move by one unit.
#[derive(Default)]
struct Inferred {
    start: Option<(SqlExpr, i64)>,
    finish: Option<(SqlExpr, i64)>,
}

fn infer_bounds(selection: Option<&SqlExpr>, column: &str, out: &mut Inferred) {
    let Some(e) = selection else { return };
    let is_col = |e: &SqlExpr| match e {
        SqlExpr::Identifier(i) => i.value.eq_ignore_ascii_case(column),
        SqlExpr::CompoundIdentifier(p) => p
            .last()
            .is_some_and(|i| i.value.eq_ignore_ascii_case(column)),
        _ => false,
    };
    match e {
        SqlExpr::Nested(inner) => infer_bounds(Some(inner), column, out),
        SqlExpr::BinaryOp { left, op, right } => {
            if *op == BinaryOperator::And {
                infer_bounds(Some(left), column, out);
                infer_bounds(Some(right), column, out);
                return;
            }
            let (op, value) = if is_col(left) {
                (op.clone(), right.as_ref().clone())
            } else if is_col(right) {
                let flipped = match op {
                    BinaryOperator::Gt => BinaryOperator::Lt,
                    BinaryOperator::GtEq => BinaryOperator::LtEq,
                    BinaryOperator::Lt => BinaryOperator::Gt,
                    BinaryOperator::LtEq => BinaryOperator::GtEq,
                    other => other.clone(),
                };
                (flipped, left.as_ref().clone())
            } else {
                return;
            };
            match op {
                BinaryOperator::GtEq => out.start = Some((value, 0)),
                BinaryOperator::Gt => out.start = Some((value, 1)),
                BinaryOperator::Lt => out.finish = Some((value, 0)),
                BinaryOperator::LtEq => out.finish = Some((value, 1)),
                _ => {}
            }
        }
        SqlExpr::Between {
            expr,
            negated: false,
            low,
            high,
        } if is_col(expr) => {
            out.start = Some((low.as_ref().clone(), 0));
            out.finish = Some((high.as_ref().clone(), 1));
        }
        _ => {}
    }
}

/// The SQL type to read start and finish as, from the bucket's type.
fn sql_type(t: &DataType) -> Result<&'static str> {
    Ok(match t {
        DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ",
        DataType::Timestamp(_, None) => "TIMESTAMP",
        DataType::Date32 => "DATE",
        DataType::Int16 => "SMALLINT",
        DataType::Int32 => "INTEGER",
        DataType::Int64 => "BIGINT",
        other => return Err(unsupported(&format!("over {other}"))),
    })
}

impl GapfillPlan {
    pub(crate) async fn plan(session: &SqlSession, stmt: &Statement) -> Result<Self> {
        let Statement::Query(q) = stmt else {
            return Err(unsupported("outside a SELECT"));
        };
        let SetExpr::Select(sel) = q.body.as_ref() else {
            return Err(unsupported("in a set operation"));
        };
        let mut bucket = None;
        let mut roles = Vec::with_capacity(sel.projection.len());
        let group_by: Vec<SqlExpr> = match &sel.group_by {
            GroupByExpr::Expressions(exprs, _) => exprs.clone(),
            GroupByExpr::All(_) => vec![],
        };
        for (i, item) in sel.projection.iter().enumerate() {
            let Some(e) = item_expr(item) else {
                return Err(unsupported("with * in the select list"));
            };
            let role = if is_call(e, "time_bucket_gapfill") {
                if bucket.is_some() {
                    return Err(TemporaError::new(
                        SqlState::FEATURE_NOT_SUPPORTED,
                        "multiple time_bucket_gapfill calls not allowed",
                    ));
                }
                bucket = Some(i);
                Role::Bucket
            } else if is_call(e, "locf") {
                Role::Locf
            } else if is_call(e, "interpolate") {
                Role::Interpolate
            } else {
                let name = item_name(item);
                let grouped = group_by.iter().any(|g| match g {
                    SqlExpr::Value(v) => {
                        matches!(&v.value, Value::Number(n, _) if n.parse::<usize>() == Ok(i + 1))
                    }
                    SqlExpr::Identifier(id) => {
                        name.as_deref() == Some(id.value.as_str()) || g.to_string() == e.to_string()
                    }
                    other => other.to_string() == e.to_string(),
                });
                if grouped {
                    Role::Group
                } else {
                    Role::Other
                }
            };
            roles.push(role);
        }
        let bucket = bucket.ok_or_else(|| unsupported("outside the select list"))?;
        let call = parse_call(
            item_expr(&sel.projection[bucket])
                .ok_or_else(|| TemporaError::internal("bucket item"))?,
        )?;

        // The inner query: time_bucket in place of time_bucket_gapfill (also
        // in GROUP BY), bare aggregates in place of locf / interpolate.
        let mut inner_q: Query = q.as_ref().clone();
        let tail = {
            let mut t = String::new();
            if let Some(o) = inner_q.order_by.take() {
                t.push_str(&format!(" {o}"));
            }
            if let Some(l) = inner_q.limit_clause.take() {
                t.push_str(&format!(" {l}"));
            }
            t
        };
        let SetExpr::Select(inner_sel) = inner_q.body.as_mut() else {
            return Err(TemporaError::internal("select vanished"));
        };
        let bucket_sql = {
            let mut args = vec![call.width.to_string(), call.time.to_string()];
            if let Some(tz) = &call.timezone {
                args.push(tz.to_string());
            }
            crate::parse(&format!("SELECT time_bucket({})", args.join(", ")))?
                .into_iter()
                .next()
                .and_then(|s| match s {
                    Statement::Query(q) => match *q.body {
                        SetExpr::Select(s) => s
                            .projection
                            .into_iter()
                            .next()
                            .and_then(|i| item_expr(&i).cloned()),
                        _ => None,
                    },
                    _ => None,
                })
                .ok_or_else(|| TemporaError::internal("time_bucket call did not parse"))?
        };
        for (item, role) in inner_sel.projection.iter_mut().zip(&roles) {
            let Some(e) = item_expr_mut(item) else {
                continue;
            };
            match role {
                Role::Bucket => *e = bucket_sql.clone(),
                Role::Locf | Role::Interpolate => {
                    let SqlExpr::Function(f) = e else { continue };
                    let args = call_args(&f.args);
                    if args.len() != 1 || args[0].0.is_some() {
                        return Err(unsupported(&format!(
                            "{} with more than its value argument",
                            function_name(&f.name)
                        )));
                    }
                    *e = args[0].1.clone();
                }
                _ => {}
            }
        }
        if let GroupByExpr::Expressions(exprs, _) = &mut inner_sel.group_by {
            for g in exprs.iter_mut() {
                if is_call(g, "time_bucket_gapfill") {
                    *g = bucket_sql.clone();
                }
            }
        }
        let mut inner_stmt = Statement::Query(Box::new(inner_q));
        if calls_any(&inner_stmt, &["time_bucket_gapfill", "locf", "interpolate"]) {
            return Err(TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "locf, interpolate and time_bucket_gapfill must be whole items of the select list",
            ));
        }
        let mut inner = session.plan(inner_stmt.clone()).await?;
        // TimescaleDB's interpolate takes integers and floats: PostgreSQL
        // resolves interpolate(numeric) to interpolate(double precision).
        let numeric: Vec<usize> = roles
            .iter()
            .enumerate()
            .filter(|(i, role)| {
                matches!(role, Role::Interpolate)
                    && matches!(
                        inner.schema().field(*i).data_type(),
                        DataType::Decimal128(..) | DataType::Decimal256(..)
                    )
            })
            .map(|(i, _)| i)
            .collect();
        if !numeric.is_empty() {
            if let Statement::Query(q) = &mut inner_stmt {
                if let SetExpr::Select(sel) = q.body.as_mut() {
                    for &i in &numeric {
                        if let Some(e) = item_expr_mut(&mut sel.projection[i]) {
                            *e = tempora_common::sql_parser::parse_expr(&format!(
                                "CAST(({e}) AS double precision)"
                            ))
                            .map_err(|err| TemporaError::internal(err.to_string()))?;
                        }
                    }
                }
            }
            inner = session.plan(inner_stmt).await?;
        }
        let schema = crate::output_schema(inner.schema().as_arrow());
        let bucket_type = schema.field(bucket).data_type().clone();
        let type_name = sql_type(&bucket_type)?;

        let mut inferred = Inferred::default();
        if call.start.is_none() || call.finish.is_none() {
            let column =
                match &call.time {
                    SqlExpr::Identifier(i) => i.value.clone(),
                    SqlExpr::CompoundIdentifier(p) => {
                        p.last().map(|i| i.value.clone()).unwrap_or_default()
                    }
                    _ => return Err(TemporaError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        "ts needs to refer to a single column if no start or finish is supplied",
                    )
                    .with_hint("Specify start and finish as arguments or in the WHERE clause.")),
                };
            infer_bounds(sel.selection.as_ref(), &column, &mut inferred);
        }
        let bound = |explicit: &Option<SqlExpr>, inferred: &Option<(SqlExpr, i64)>, what: &str| {
            match (explicit, inferred) {
                (Some(e), _) => Ok((e.clone(), 0)),
                (None, Some((e, step))) => Ok((e.clone(), *step)),
                (None, None) => Err(TemporaError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    format!("missing time_bucket_gapfill argument: could not infer {what} from WHERE clause"),
                )
                .with_hint("Specify start and finish as arguments or in the WHERE clause.")),
            }
        };
        let (start, start_step) = bound(&call.start, &inferred.start, "start")?;
        let (finish, finish_step) = bound(&call.finish, &inferred.finish, "finish")?;
        let width_type = if bucket_type.is_integer() {
            type_name
        } else {
            "INTERVAL"
        };
        let mut bounds_sql = format!(
            "SELECT CAST({} AS {width_type}) AS w, CAST({start} AS {type_name}) AS s, CAST({finish} AS {type_name}) AS f",
            call.width
        );
        if let Some(tz) = &call.timezone {
            bounds_sql.push_str(&format!(", CAST({tz} AS TEXT) AS tz"));
        }
        let bounds = session.plan_sql(&bounds_sql).await?;
        Ok(Self {
            inner,
            bounds,
            start_step,
            finish_step,
            roles,
            tail,
            schema,
        })
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Parameter types of both the query and its bounds.
    pub fn param_types(&self) -> Result<Vec<Option<DataType>>> {
        let mut types = crate::param_types(&self.inner)?;
        for (i, t) in crate::param_types(&self.bounds)?.into_iter().enumerate() {
            if types.len() <= i {
                types.resize(i + 1, None);
            }
            if types[i].is_none() {
                types[i] = t;
            }
        }
        Ok(types)
    }

    pub(crate) async fn execute(
        &self,
        session: &SqlSession,
        params: Option<ParamValues>,
    ) -> Result<Outcome> {
        let ctx = session.context();
        let run = |plan: LogicalPlan| async move {
            ctx.execute_logical_plan(plan)
                .await
                .map_err(TemporaError::from_datafusion)?
                .collect()
                .await
                .map_err(TemporaError::from_datafusion)
        };
        let rows = run(bind(self.inner.clone(), params.clone())?).await?;
        let bounds = run(bind(self.bounds.clone(), params)?).await?;
        let b = bounds
            .iter()
            .find(|b| b.num_rows() == 1)
            .ok_or_else(|| TemporaError::internal("gapfill bounds gave no row"))?;
        let value = |i: usize| {
            ScalarValue::try_from_array(b.column(i), 0).map_err(TemporaError::from_datafusion)
        };
        let (width, start, finish) = (value(0)?, value(1)?, value(2)?);
        let timezone = if b.num_columns() > 3 {
            Some(value(3)?)
        } else {
            None
        };
        let null_bound = |what: &str| {
            TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("invalid time_bucket_gapfill argument: {what} cannot be NULL"),
            )
            .with_hint("Specify start and finish as arguments or in the WHERE clause.")
        };
        let bucket_index = self
            .roles
            .iter()
            .position(|r| *r == Role::Bucket)
            .unwrap_or(0);
        let bucket_type = self.schema.field(bucket_index).data_type().clone();
        let units = |v: &ScalarValue| -> Result<Option<i64>> {
            let a = cast(
                &v.to_array().map_err(TemporaError::from_datafusion)?,
                &unit_type(&bucket_type),
            )
            .and_then(|a| cast(&a, &DataType::Int64))
            .map_err(|e| TemporaError::internal(e.to_string()))?;
            let a = a.as_primitive::<Int64Type>();
            Ok((!a.is_null(0)).then(|| a.value(0)))
        };
        let start = units(&start)?.ok_or_else(|| null_bound("start"))? + self.start_step;
        let finish = units(&finish)?.ok_or_else(|| null_bound("finish"))? + self.finish_step;
        let data = concat_batches(&self.schema_of(&rows), &rows)
            .map_err(|e| TemporaError::internal(e.to_string()))?;
        // Millions of buckets take seconds: the filling runs off the
        // runtime's workers, and stops when the statement is canceled or
        // times out (its future, holding `_abandon`, is dropped).
        let stop = Arc::new(AtomicBool::new(false));
        let _abandon = StopOnDrop(stop.clone());
        let roles = self.roles.clone();
        let filled = tokio::task::spawn_blocking(move || {
            let buckets = bucket_series(
                &width,
                timezone.as_ref(),
                &bucket_type,
                start,
                finish,
                &stop,
            )?;
            fill(&data, &roles, bucket_index, &bucket_type, &buckets, &stop)
        })
        .await
        .map_err(|e| TemporaError::internal(format!("gapfill: {e}")))??;
        let (schema, batches) = if self.tail.is_empty() {
            (filled.schema(), vec![filled])
        } else {
            crate::query_rows(
                "gapfill",
                filled.schema(),
                vec![filled],
                &format!("SELECT * FROM gapfill{}", self.tail),
            )
            .await?
        };
        Ok(Outcome::Rows {
            schema: crate::output_schema(&schema),
            batches,
            tag: "SELECT".into(),
        })
    }

    fn schema_of(&self, rows: &[RecordBatch]) -> SchemaRef {
        rows.first()
            .map(|b| b.schema())
            .unwrap_or_else(|| Arc::new(self.inner.schema().as_arrow().clone()))
    }
}

/// The type bucket values are counted in: microseconds for timestamps,
/// days for dates, the integer itself otherwise.
fn unit_type(bucket_type: &DataType) -> DataType {
    match bucket_type {
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        other => other.clone(),
    }
}

/// Sets its flag when dropped: the filling of a statement no longer awaited
/// stops.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// 57014 when the statement filling buckets was abandoned; checked every
/// few thousand buckets.
fn check_stop(stop: &AtomicBool) -> Result<()> {
    if stop.load(Ordering::Relaxed) {
        return Err(TemporaError::new(
            SqlState::QUERY_CANCELED,
            "canceling statement due to user request",
        ));
    }
    Ok(())
}

/// Buckets of `width` (in the bucket's units) from the one holding `start`
/// while before `finish`, computed by time_bucket itself so that month
/// widths and time zones agree with the query's buckets.
fn bucket_series(
    width: &ScalarValue,
    timezone: Option<&ScalarValue>,
    bucket_type: &DataType,
    start: i64,
    finish: i64,
    stop: &AtomicBool,
) -> Result<Vec<i64>> {
    let unit = unit_type(bucket_type);
    let bucket_of = |t: i64| -> Result<i64> {
        let ts = cast(&(Arc::new(Int64Array::from(vec![t])) as ArrayRef), &unit)
            .map_err(|e| TemporaError::internal(e.to_string()))?;
        let mut args = vec![
            ColumnarValue::Scalar(width.clone()),
            ColumnarValue::Array(ts.clone()),
        ];
        if let Some(tz) = timezone {
            args.push(ColumnarValue::Scalar(tz.clone()));
        }
        let arg_fields = args
            .iter()
            .enumerate()
            .map(|(i, a)| Arc::new(Field::new(format!("a{i}"), a.data_type(), true)))
            .collect();
        let out = tempora_query::time_bucket::time_bucket_udf()
            .invoke_with_args(ScalarFunctionArgs {
                args,
                arg_fields,
                number_rows: 1,
                return_field: Arc::new(Field::new("b", unit.clone(), true)),
                config_options: Arc::new(Default::default()),
            })
            .map_err(TemporaError::from_datafusion)?
            .to_array(1)
            .map_err(TemporaError::from_datafusion)?;
        let out =
            cast(&out, &DataType::Int64).map_err(|e| TemporaError::internal(e.to_string()))?;
        Ok(out.as_primitive::<Int64Type>().value(0))
    };
    // A step that never jumps a whole bucket: the width itself, in units.
    let step = match width {
        ScalarValue::IntervalMonthDayNano(Some(i)) => {
            let micros = i.months as i64 * 28 * 86_400_000_000
                + i.days as i64 * 86_400_000_000
                + i.nanoseconds / 1000;
            match bucket_type {
                DataType::Date32 => micros / 86_400_000_000,
                _ => micros,
            }
        }
        ScalarValue::Int16(Some(v)) => *v as i64,
        ScalarValue::Int32(Some(v)) => *v as i64,
        ScalarValue::Int64(Some(v)) => *v,
        other => {
            return Err(unsupported(&format!(
                "with a bucket width of type {}",
                other.data_type()
            )))
        }
    };
    if step <= 0 {
        return Err(TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            "interval must not be negative or zero",
        ));
    }
    let mut out = Vec::new();
    if start >= finish {
        return Ok(out);
    }
    let mut b = bucket_of(start)?;
    let mut t = start;
    while b < finish {
        if out.last() != Some(&b) {
            out.push(b);
            if out.len() % 4096 == 0 {
                check_stop(stop)?;
            }
            if out.len() > MAX_BUCKETS {
                return Err(TemporaError::new(
                    SqlState::PROGRAM_LIMIT_EXCEEDED,
                    format!("time_bucket_gapfill would make more than {MAX_BUCKETS} buckets"),
                ));
            }
        }
        // Move past this bucket: from its start by one step (or more, where
        // a local day is longer than the step).
        t = t.max(b).checked_add(step).ok_or_else(|| {
            TemporaError::new(SqlState::DATETIME_FIELD_OVERFLOW, "timestamp out of range")
        })?;
        let next = bucket_of(t)?;
        if next <= b {
            continue;
        }
        b = next;
    }
    Ok(out)
}

/// One output row: a stored row, or a filled bucket of a group.
struct OutRow {
    bucket: i64,
    src: Option<usize>,
    group_row: Option<usize>,
    /// The group's stored rows before and after, for locf / interpolate.
    prev: Option<usize>,
    next: Option<usize>,
}

fn internal(e: impl std::fmt::Display) -> TemporaError {
    TemporaError::internal(e.to_string())
}

fn fill(
    data: &RecordBatch,
    roles: &[Role],
    bucket_index: usize,
    bucket_type: &DataType,
    buckets: &[i64],
    stop: &AtomicBool,
) -> Result<RecordBatch> {
    let n = data.num_rows();
    let bucket_values = cast(
        &cast(data.column(bucket_index), &unit_type(bucket_type)).map_err(internal)?,
        &DataType::Int64,
    )
    .map_err(internal)?;
    let bucket_values = bucket_values.as_primitive::<Int64Type>();
    // Rows by group (the Group columns), each group's rows by bucket.
    let group_cols: Vec<ArrayRef> = roles
        .iter()
        .enumerate()
        .filter(|(_, r)| **r == Role::Group)
        .map(|(i, _)| data.column(i).clone())
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    let keys = if group_cols.is_empty() {
        None
    } else {
        let converter = RowConverter::new(
            group_cols
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect(),
        )
        .map_err(internal)?;
        Some(converter.convert_columns(&group_cols).map_err(internal)?)
    };
    let same_group = |a: usize, b: usize| keys.as_ref().is_none_or(|k| k.row(a) == k.row(b));
    order.sort_by(|&a, &b| {
        let g = match &keys {
            Some(k) => k.row(a).cmp(&k.row(b)),
            None => std::cmp::Ordering::Equal,
        };
        g.then(bucket_values.value(a).cmp(&bucket_values.value(b)))
    });
    let mut groups: Vec<&[usize]> = Vec::new();
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && same_group(order[i], order[j]) {
            j += 1;
        }
        groups.push(&order[i..j]);
        i = j;
    }
    if groups.is_empty() && keys.is_none() {
        // Without group columns the buckets are filled even with no rows.
        groups.push(&[]);
    }
    let bv = |r: usize| bucket_values.value(r);
    // Rows of buckets outside [start, finish) come out as they are, with
    // nothing filled around them (as in TimescaleDB).
    let mut out: Vec<OutRow> = Vec::new();
    for group in groups {
        check_stop(stop)?;
        let group_row = group.first().copied();
        let (mut k, mut prev) = (0usize, None);
        let stored = |r: usize, prev: Option<usize>| OutRow {
            bucket: bv(r),
            src: Some(r),
            group_row,
            prev,
            next: None,
        };
        for &b in buckets {
            while k < group.len() && bv(group[k]) <= b {
                out.push(stored(group[k], prev));
                prev = Some(group[k]);
                k += 1;
            }
            if prev.is_some_and(|p| bv(p) == b) {
                continue;
            }
            out.push(OutRow {
                bucket: b,
                src: None,
                group_row,
                prev,
                next: group.get(k).copied(),
            });
        }
        for &r in &group[k..] {
            out.push(stored(r, prev));
            prev = Some(r);
        }
    }

    let idx = |f: &dyn Fn(&OutRow) -> Option<usize>| {
        UInt32Array::from_iter(out.iter().map(|r| f(r).map(|v| v as u32)))
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(roles.len());
    for (c, role) in roles.iter().enumerate() {
        let col = data.column(c);
        let array: ArrayRef = match role {
            Role::Bucket => {
                let values: ArrayRef =
                    Arc::new(Int64Array::from_iter_values(out.iter().map(|r| r.bucket)));
                match bucket_type {
                    DataType::Date32 | DataType::Int32 | DataType::Int16 => {
                        cast(&values, &DataType::Int32).and_then(|v| cast(&v, bucket_type))
                    }
                    _ => cast(&values, &unit_type(bucket_type)).and_then(|v| cast(&v, bucket_type)),
                }
                .map_err(internal)?
            }
            Role::Group => take(col, &idx(&|r| r.group_row), None).map_err(internal)?,
            Role::Other => take(col, &idx(&|r| r.src), None).map_err(internal)?,
            Role::Locf => take(col, &idx(&|r| r.src.or(r.prev)), None).map_err(internal)?,
            Role::Interpolate => interpolate(col, &out, bucket_values)?,
        };
        columns.push(if array.len() == out.len() {
            array
        } else {
            new_null_array(col.data_type(), out.len())
        });
    }
    // Filled rows hold NULLs where the query's rows could not (count(*)).
    let schema = datafusion::arrow::datatypes::Schema::new(
        data.schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), columns).map_err(internal)
}

/// interpolate(): stored values as they are; a filled bucket between two
/// stored values of its group gets the value on the line through them.
fn interpolate(
    col: &ArrayRef,
    out: &[OutRow],
    buckets: &datafusion::arrow::array::PrimitiveArray<Int64Type>,
) -> Result<ArrayRef> {
    let f = cast(col, &DataType::Float64)
        .map_err(|_| unsupported(&format!("interpolate() of {}", col.data_type())))?;
    let f = f.as_primitive::<Float64Type>();
    let value = |r: usize| (!f.is_null(r)).then(|| f.value(r));
    let values = Float64Array::from_iter(out.iter().map(|r| match r.src {
        Some(s) => value(s),
        None => {
            let (p, q) = (r.prev?, r.next?);
            let (vp, vq) = (value(p)?, value(q)?);
            let (bp, bq) = (buckets.value(p) as f64, buckets.value(q) as f64);
            Some(vp + (vq - vp) * (r.bucket as f64 - bp) / (bq - bp))
        }
    }));
    let values: ArrayRef = Arc::new(values);
    let rounded: ArrayRef = if col.data_type().is_integer() {
        Arc::new(Float64Array::from_iter(
            values
                .as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.map(f64::round)),
        ))
    } else {
        values
    };
    cast(&rounded, col.data_type()).map_err(internal)
}
