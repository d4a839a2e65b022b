//! `ON CONFLICT ... DO UPDATE SET ... [WHERE ...]`: the SET list and the
//! WHERE planned by DataFusion, evaluated for the storage engine's upsert
//! (`tempora_storage::Engine::upsert`) over pairs of an existing row and
//! the proposed row (EXCLUDED) that collided with it.
//!
//! ```text
//! prepare: SELECT <SET values> FROM <target> [AS alias], <target> AS excluded
//!          [WHERE <DO UPDATE WHERE>]          planned by DataFusion (names,
//!          types, casts, $n parameters, subqueries); kept: every column's new
//!          value (SET or the existing one) over the (target, excluded) columns
//! execute: the pairs as one in-memory table whose columns carry the planned
//!          qualifiers ─► WHERE ─► new values, with a hidden pair number
//! ```
//! As in PostgreSQL, the existing row is named by the table (or its alias),
//! the proposed one by EXCLUDED, and a bare column name is ambiguous (42702).

use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch, UInt64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::MemTable;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ParamValues};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{
    Cast, Expr, ExprSchemable, Filter, LogicalPlan, LogicalPlanBuilder, Projection,
};
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, DoUpdate, Expr as SqlExpr, ObjectName, ObjectNamePart,
    TableAliasWithoutColumns,
};
use tempora_catalog::TableDef;
use tempora_common::{Result, SqlState, TemporaError};
use tempora_storage::{UpdateFuture, UpdateRows, UpdatedRows};

use crate::SqlSession;

/// The hidden pair number while SET and WHERE are evaluated.
const PAIR: &str = "\u{1}pair";

/// A planned `DO UPDATE`.
#[derive(Debug, Clone)]
pub(crate) struct DoUpdatePlan {
    /// The unique key (index in `TableDef::unique_keys`) conflicts are found on.
    pub arbiter: usize,
    /// A projection of every column's new value over (a filter of the WHERE
    /// over) the cross join of the target and EXCLUDED.
    plan: LogicalPlan,
}

/// The column a SET target names, as PostgreSQL folds it.
fn target_column(name: &ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(i)) => crate::ddl::ident_name(i),
        Some(other) => other.to_string().to_lowercase(),
        None => String::new(),
    }
}

impl DoUpdatePlan {
    pub async fn plan(
        session: &SqlSession,
        table: &TableDef,
        target: &ObjectName,
        alias: Option<&TableAliasWithoutColumns>,
        update: &DoUpdate,
        arbiter: usize,
    ) -> Result<Self> {
        // (column, value) in SET order; `SET (a, b) = (x, y)` is two of them.
        let mut assigned: Vec<(String, SqlExpr)> = Vec::new();
        for a in &update.assignments {
            match &a.target {
                AssignmentTarget::ColumnName(name) => {
                    assigned.push((target_column(name), a.value.clone()))
                }
                AssignmentTarget::Tuple(names) => {
                    let values =
                        match &a.value {
                            SqlExpr::Tuple(values) => values.clone(),
                            SqlExpr::Nested(v) => vec![v.as_ref().clone()],
                            _ => return Err(TemporaError::not_supported(
                                "SET (...) = with a sub-SELECT or ROW() in ON CONFLICT DO UPDATE",
                            )),
                        };
                    if values.len() != names.len() {
                        return Err(TemporaError::syntax(
                            "number of columns does not match number of values",
                        ));
                    }
                    for (n, v) in names.iter().zip(values) {
                        assigned.push((target_column(n), v));
                    }
                }
            }
        }
        for i in 0..assigned.len() {
            let col = &assigned[i].0;
            let Some(def) = table.column(col) else {
                return Err(TemporaError::new(
                    SqlState::UNDEFINED_COLUMN,
                    format!(
                        "column \"{col}\" of relation \"{}\" does not exist",
                        table.name
                    ),
                ));
            };
            if assigned[..i].iter().any(|(c, _)| c == col) {
                return Err(TemporaError::syntax(format!(
                    "multiple assignments to same column \"{col}\""
                )));
            }
            // `SET v = DEFAULT`: the column's default (NULL without one).
            if matches!(&assigned[i].1, SqlExpr::Identifier(id)
                if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"))
            {
                let text = def.default.as_deref().unwrap_or("NULL");
                assigned[i].1 = default_expr(text)?;
            }
        }

        let items: Vec<String> = assigned
            .iter()
            .enumerate()
            .map(|(i, (_, e))| format!("{e} AS \"__tempora_set_{i}\""))
            .collect();
        let items = if items.is_empty() {
            "1".to_string()
        } else {
            items.join(", ")
        };
        let alias = alias
            .map(|a| format!(" AS {}", a.alias))
            .unwrap_or_default();
        let selection = update
            .selection
            .as_ref()
            .map(|w| format!(" WHERE {w}"))
            .unwrap_or_default();
        let sql = format!("SELECT {items} FROM {target}{alias}, {target} AS excluded{selection}");
        let stmt = crate::parse(&sql)?.remove(0);
        let planned = session.plan(stmt).await?;
        reject_aggregates(&planned)?;
        let LogicalPlan::Projection(projection) = planned else {
            return Err(TemporaError::internal(
                "DO UPDATE did not plan as a projection",
            ));
        };
        let input = projection.input.as_ref().clone();
        let join = match &input {
            LogicalPlan::Filter(f) => f.input.as_ref(),
            other => other,
        };
        let joined = join.schema().clone();
        let schema = table.arrow_schema();
        if joined.fields().len() != 2 * schema.fields().len() {
            return Err(TemporaError::internal(
                "DO UPDATE planned an unexpected join",
            ));
        }
        let mut outputs = Vec::with_capacity(schema.fields().len());
        for (i, field) in schema.fields().iter().enumerate() {
            let expr = match assigned.iter().position(|(c, _)| c == field.name()) {
                Some(pos) => {
                    let mut e = projection.expr[pos].clone().unalias();
                    // `SET v = $1`: the parameter takes the column's type.
                    if let Expr::Placeholder(p) = &mut e {
                        if p.field.is_none() {
                            p.field = Some(field.clone());
                        }
                    }
                    match e.get_type(input.schema().as_ref()) {
                        Ok(t) if &t == field.data_type() => e,
                        _ => Expr::Cast(Cast::new(Box::new(e), field.data_type().clone())),
                    }
                }
                None => {
                    let (qualifier, f) = joined.qualified_field(i);
                    Expr::Column(Column::new(qualifier.cloned(), f.name()))
                }
            };
            outputs.push(expr.alias(field.name()));
        }
        let plan = LogicalPlan::Projection(
            Projection::try_new(outputs, Arc::new(input)).map_err(TemporaError::from_datafusion)?,
        );
        Ok(Self { arbiter, plan })
    }

    pub fn param_types(&self) -> Result<Vec<Option<DataType>>> {
        crate::param_types(&self.plan)
    }

    /// An evaluator for the engine, with the statement's parameters bound.
    pub fn evaluator<'a>(
        &self,
        session: &'a SqlSession,
        table: u32,
        schema: SchemaRef,
        params: Option<ParamValues>,
    ) -> Result<Evaluator<'a>> {
        Ok(Evaluator {
            session,
            plan: crate::bind(self.plan.clone(), params)?,
            table,
            schema,
        })
    }
}

/// A column DEFAULT (SQL text) as an expression.
fn default_expr(text: &str) -> Result<SqlExpr> {
    use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr, Statement};
    let stmt = crate::parse(&format!("SELECT {text}"))?.remove(0);
    if let Statement::Query(q) = stmt {
        if let SetExpr::Select(sel) = *q.body {
            if let Some(SelectItem::UnnamedExpr(e)) = sel.projection.into_iter().next() {
                return Ok(SqlExpr::Nested(Box::new(e)));
            }
        }
    }
    Err(TemporaError::internal(format!(
        "column default {text} is not an expression"
    )))
}

/// Aggregates and window functions have no place in SET or WHERE (PostgreSQL's 42803 / 42P20).
fn reject_aggregates(plan: &LogicalPlan) -> Result<()> {
    let mut found = None;
    let _ = plan.apply(|node| {
        match node {
            LogicalPlan::Aggregate(_) => {
                found = Some(TemporaError::new(
                    SqlState::GROUPING_ERROR,
                    "aggregate functions are not allowed in UPDATE",
                ))
            }
            LogicalPlan::Window(_) => {
                found = Some(TemporaError::new(
                    SqlState::WINDOWING_ERROR,
                    "window functions are not allowed in UPDATE",
                ))
            }
            _ => return Ok(TreeNodeRecursion::Continue),
        }
        Ok(TreeNodeRecursion::Stop)
    });
    match found {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Evaluates a statement's `DO UPDATE` for the engine.
pub(crate) struct Evaluator<'a> {
    session: &'a SqlSession,
    plan: LogicalPlan,
    /// The table's oid.
    table: u32,
    /// The table's schema (of the rows in and out).
    schema: SchemaRef,
}

impl Evaluator<'_> {
    async fn run(&self, existing: RecordBatch, excluded: RecordBatch) -> Result<UpdatedRows> {
        let df = TemporaError::from_datafusion;
        let LogicalPlan::Projection(projection) = &self.plan else {
            return Err(TemporaError::internal("DO UPDATE plan is not a projection"));
        };
        let (predicate, join) = match projection.input.as_ref() {
            LogicalPlan::Filter(f) => (Some(f.predicate.clone()), f.input.as_ref()),
            other => (None, other),
        };
        let joined = join.schema().clone();
        // One in-memory table: the existing columns, EXCLUDED's, the pair number.
        let mut fields: Vec<Field> = Vec::new();
        let mut columns = Vec::new();
        for (i, (_, f)) in joined.iter().enumerate() {
            let n = self.schema.fields().len();
            let source = if i < n {
                existing.column(i)
            } else {
                excluded.column(i - n)
            };
            let column = if source.data_type() == f.data_type() {
                source.clone()
            } else {
                cast(source, f.data_type()).map_err(|e| df(e.into()))?
            };
            fields.push(Field::new(format!("c{i}"), f.data_type().clone(), true));
            columns.push(column);
        }
        fields.push(Field::new(PAIR, DataType::UInt64, false));
        columns.push(Arc::new(UInt64Array::from_iter_values(
            0..existing.num_rows() as u64,
        )));
        let scan_schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(scan_schema.clone(), columns).map_err(|e| df(e.into()))?;
        let mem = MemTable::try_new(scan_schema, vec![vec![batch]]).map_err(df)?;
        let scan = LogicalPlanBuilder::scan("\u{1}upsert", provider_as_source(Arc::new(mem)), None)
            .map_err(df)?
            .build()
            .map_err(df)?;
        // Give the columns the names the planned expressions use.
        let mut named: Vec<Expr> = joined
            .iter()
            .enumerate()
            .map(|(i, (q, f))| {
                Expr::Column(Column::new_unqualified(format!("c{i}")))
                    .alias_qualified(q.cloned(), f.name())
            })
            .collect();
        named.push(Expr::Column(Column::new_unqualified(PAIR)).alias(PAIR));
        let mut plan =
            LogicalPlan::Projection(Projection::try_new(named, Arc::new(scan)).map_err(df)?);
        if let Some(p) = predicate {
            plan = LogicalPlan::Filter(Filter::try_new(p, Arc::new(plan)).map_err(df)?);
        }
        let mut exprs = vec![Expr::Column(Column::new_unqualified(PAIR))];
        exprs.extend(projection.expr.iter().cloned());
        let plan = LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(plan)).map_err(df)?);
        let out = self
            .session
            .context()
            .execute_logical_plan(plan)
            .await
            .map_err(df)?
            .collect()
            .await
            .map_err(df)?;
        let mut pairs = Vec::new();
        let mut rows = Vec::with_capacity(out.len());
        for b in out {
            let ids = b
                .column(0)
                .as_any()
                .downcast_ref::<UInt64Array>()
                .ok_or_else(|| TemporaError::internal("pair number column is not UInt64"))?;
            pairs.extend(ids.values().iter().map(|p| *p as usize));
            rows.push(crate::insert::conform(&b.columns()[1..], &self.schema)?);
        }
        let state = self.session.engine().catalog().snapshot();
        let table = state
            .table_by_oid(self.table)
            .ok_or_else(|| TemporaError::internal("upsert target table is gone"))?;
        let rows = rows
            .into_iter()
            .map(|b| tempora_copy::values::assign(table, b))
            .collect::<Result<Vec<_>>>()?;
        let rows = datafusion::arrow::compute::concat_batches(&self.schema, &rows)
            .map_err(|e| df(e.into()))?;
        Ok(UpdatedRows { pairs, rows })
    }
}

impl UpdateRows for Evaluator<'_> {
    fn update(&self, existing: RecordBatch, excluded: RecordBatch) -> UpdateFuture<'_> {
        Box::pin(self.run(existing, excluded))
    }
}
