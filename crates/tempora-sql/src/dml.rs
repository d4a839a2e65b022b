//! DELETE and UPDATE: copy-on-write rewrites of the files that hold matching rows.
//!
//! ```text
//! lock files ─► flush memtables (every row of the table is now in a file)
//!   for each file the WHERE's time bounds can touch:
//!     read ─► evaluate the statement's own plan over the file's rows, with a
//!             "matched" column ─► keep the unmatched rows (new file, same chunk)
//!   UPDATE: the new versions of matched rows ─► files in the chunks they now fall in
//! one catalog commit: old files out, new files in ─► old files deleted once unread
//! ```
//! DataFusion plans the statement (names, types, casts, `$n` parameters,
//! subqueries); this module only swaps the table scan for one file's rows.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, RecordBatch, UInt64Array};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::compute::kernels::boolean::not;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::MemTable;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::ParamValues;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{
    DmlStatement, Expr, Filter, LogicalPlan, LogicalPlanBuilder, Projection, TableScan, WriteOp,
};
use datafusion::sql::sqlparser::ast::{
    Delete, FromTable, SelectItem, Statement, TableFactor, Update,
};
use tempora_common::{Result, SqlState, TemporaError};
use tempora_storage::FileChanges;

use crate::insert::Returning;
use crate::{Outcome, SqlSession};

/// The hidden row number of a file's rows while a statement rewrites it.
const ROW: &str = "\u{1}row";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Delete,
    Update,
}

/// A planned DELETE or UPDATE.
#[derive(Debug, Clone)]
pub struct RewritePlan {
    op: Op,
    oid: u32,
    table_name: String,
    /// DataFusion's plan of the statement (without RETURNING).
    plan: LogicalPlan,
    returning: Option<Returning>,
}

fn target_name(relation: &TableFactor) -> Result<&datafusion::sql::sqlparser::ast::ObjectName> {
    match relation {
        TableFactor::Table { name, .. } => Ok(name),
        _ => Err(TemporaError::syntax("syntax error at or near \"(\"")),
    }
}

impl RewritePlan {
    pub async fn plan(session: &SqlSession, stmt: &Statement) -> Result<Self> {
        let (op, name, stmt, returning_items) = match stmt {
            Statement::Delete(d) => {
                let Delete {
                    from,
                    using,
                    returning,
                    ..
                } = d;
                if using.is_some() {
                    return Err(TemporaError::not_supported("DELETE ... USING"));
                }
                let tables = match from {
                    FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
                };
                let [t] = tables.as_slice() else {
                    return Err(TemporaError::not_supported("DELETE from several tables"));
                };
                if !t.joins.is_empty() {
                    return Err(TemporaError::not_supported("DELETE with a join"));
                }
                if let TableFactor::Table { alias: Some(_), .. } = &t.relation {
                    return Err(TemporaError::not_supported("DELETE with a table alias"));
                }
                let name = target_name(&t.relation)?.clone();
                let mut plain = d.clone();
                plain.returning = None;
                (
                    Op::Delete,
                    name,
                    Statement::Delete(plain),
                    returning.clone(),
                )
            }
            Statement::Update(u) => {
                let Update {
                    table,
                    from,
                    returning,
                    ..
                } = u;
                if from.is_some() {
                    return Err(TemporaError::not_supported("UPDATE ... FROM"));
                }
                if !table.joins.is_empty() {
                    return Err(TemporaError::not_supported("UPDATE with a join"));
                }
                let name = target_name(&table.relation)?.clone();
                let mut plain = u.clone();
                plain.returning = None;
                (
                    Op::Update,
                    name,
                    Statement::Update(plain),
                    returning.clone(),
                )
            }
            _ => return Err(TemporaError::internal("not a DELETE or UPDATE")),
        };
        let (schema_name, table_name) = crate::ddl::object_name(&name)?;
        let state = session.engine().catalog().snapshot();
        let verb = if matches!(stmt, Statement::Update(_)) {
            "update"
        } else {
            "delete from"
        };
        let table = crate::ddl::written_table(&state, &schema_name, &table_name, verb)?;
        if let Statement::Update(u) = &stmt {
            for a in &u.assignments {
                let target = a.target.to_string();
                let col = target
                    .rsplit('.')
                    .next()
                    .unwrap_or(&target)
                    .trim_matches('"');
                if table.column(col).is_none() {
                    return Err(TemporaError::new(
                        SqlState::UNDEFINED_COLUMN,
                        format!("column \"{col}\" of relation \"{table_name}\" does not exist"),
                    ));
                }
                if table
                    .unique_keys
                    .iter()
                    .any(|k| k.columns.iter().any(|c| c == col))
                {
                    return Err(TemporaError::not_supported(
                        "UPDATE of a column of a PRIMARY KEY or UNIQUE constraint",
                    ));
                }
            }
        }
        let plan = session.plan(stmt).await?;
        let returning = match returning_items {
            Some(items) => Some(plan_returning(session, &schema_name, &table_name, &items).await?),
            None => None,
        };
        Ok(Self {
            op,
            oid: table.oid,
            table_name,
            plan,
            returning,
        })
    }

    pub fn param_types(&self) -> Result<Vec<Option<datafusion::arrow::datatypes::DataType>>> {
        crate::param_types(&self.plan)
    }

    /// The table the statement rewrites.
    pub fn oid(&self) -> u32 {
        self.oid
    }

    pub fn returning_schema(&self) -> Option<SchemaRef> {
        self.returning.as_ref().map(|r| r.schema.clone())
    }

    pub async fn execute(
        &self,
        session: &SqlSession,
        params: Option<ParamValues>,
    ) -> Result<Outcome> {
        let engine = session.engine();
        let guard = engine.lock_files().await;
        engine.flush_locked(&guard).await?;
        // Foreign keys: no referencing row may be written between the check
        // of this statement's rows and its commit (and rows written before
        // the lock are flushed, for the tables a cascade rewrites).
        let state = engine.catalog().snapshot();
        let referenced = crate::foreign_keys::referencing(&state, self.oid, &[])
            .next()
            .is_some();
        let keyed = referenced
            || state
                .table_by_oid(self.oid)
                .is_some_and(|t| !t.foreign_keys.is_empty());
        // Inside a block, another session could add a row referencing a
        // deleted one before COMMIT publishes the delete.
        if referenced && self.op == Op::Delete && session.in_block() {
            return Err(TemporaError::not_supported(
                "DELETE from a table other tables reference inside a transaction block",
            ));
        }
        let _keys = if keyed {
            let keys = engine.lock_keys().await;
            engine.flush_locked(&guard).await?;
            Some(keys)
        } else {
            None
        };
        // The files as the last flush left them.
        let state = engine.catalog().snapshot();
        let table = state
            .table_by_oid(self.oid)
            .ok_or_else(|| TemporaError::undefined_table(&self.table_name))?
            .clone();
        let schema = Arc::new(table.arrow_schema());
        let mut changes = FileChanges {
            oid: self.oid,
            ..Default::default()
        };
        let mut cascaded: Vec<FileChanges> = Vec::new();
        let result = async {
            let (count, affected) = self
                .collect(session, &guard, &table, params, &mut changes)
                .await?;
            if count > 0 {
                match self.op {
                    Op::Delete => {
                        crate::foreign_keys::on_delete(
                            session,
                            &guard,
                            &table,
                            &affected,
                            &mut cascaded,
                        )
                        .await?
                    }
                    Op::Update if !table.foreign_keys.is_empty() => {
                        for b in &affected {
                            engine.check_references(&table, b, &[]).await?;
                        }
                    }
                    Op::Update => {}
                }
            }
            if !changes.remove.is_empty() {
                let state = engine
                    .commit_files_with(&guard, changes.clone(), |state| {
                        let mut ops = Vec::new();
                        for c in &cascaded {
                            ops.extend(tempora_storage::file_change_ops(state, c)?);
                        }
                        Ok(ops)
                    })
                    .await?;
                for c in &cascaded {
                    engine
                        .gc()
                        .retire(state.version, c.remove.iter().map(|(_, p)| p.clone()));
                }
            }
            Ok((count, affected))
        }
        .await;
        let (count, affected) = match result {
            Ok(r) => r,
            Err(e) => {
                // Files written for a statement that failed are nobody's.
                let written = changes
                    .add
                    .into_iter()
                    .chain(cascaded.into_iter().flat_map(|c| c.add))
                    .map(|(_, f)| f.path);
                engine.gc().retire(0, written);
                return Err(e);
            }
        };
        drop(guard);
        let tag = match self.op {
            Op::Delete => "DELETE",
            Op::Update => "UPDATE",
        };
        match &self.returning {
            None => Ok(Outcome::Command(format!("{tag} {count}"))),
            Some(r) => r.project(&self.table_name, schema, affected, tag).await,
        }
    }

    /// The statement's changes to `table`'s files (written, not committed:
    /// `changes`), under the caller's files lock with the memtables
    /// flushed; returns the number of rows affected and those rows (DELETE:
    /// as they were; UPDATE: their new values).
    pub(crate) async fn collect(
        &self,
        session: &SqlSession,
        _guard: &tempora_storage::FilesGuard,
        table: &tempora_catalog::TableDef,
        params: Option<ParamValues>,
        changes: &mut FileChanges,
    ) -> Result<(u64, Vec<RecordBatch>)> {
        let plan = crate::bind(self.plan.clone(), params)?;
        let LogicalPlan::Dml(DmlStatement { input, op, .. }) = plan else {
            return Err(TemporaError::internal("DELETE/UPDATE did not plan as DML"));
        };
        let (outputs, predicate, inner) = split_input(&input, op)?;
        let schema = Arc::new(table.arrow_schema());
        // Time bounds of the WHERE select the chunks and files to read; when
        // the WHERE is nothing but time comparisons, a DELETE drops files
        // inside the bounds without reading them.
        let (bounds, exact) = match (&table.hypertable, &predicate) {
            (Some(h), Some(p)) => {
                let filters = pushed_filters(session, &inner, p).await;
                let exact = !filters.is_empty()
                    && filters
                        .iter()
                        .all(|f| tempora_query::provider::is_exact_time_filter(f, &h.time_column));
                (
                    tempora_query::provider::time_bounds(&filters, &h.time_column),
                    exact,
                )
            }
            _ => (tempora_query::provider::TimeBounds::ALL, false),
        };
        let drop_whole = exact && self.op == Op::Delete && self.returning.is_none();
        let mut candidates: Vec<(Option<u32>, tempora_catalog::FileDef)> =
            table.files.iter().map(|f| (None, f.clone())).collect();
        for c in table.chunks.values() {
            if bounds.overlaps(c.range_start, c.range_end) {
                candidates.extend(
                    c.files
                        .iter()
                        .filter(|f| bounds.file_overlaps(f))
                        .map(|f| (Some(c.id), f.clone())),
                );
            }
        }
        let (mut count, mut affected) = self
            .rewrite(
                session,
                table,
                &schema,
                candidates,
                (&inner, &outputs, &predicate),
                drop_whole.then_some(&bounds),
                changes,
            )
            .await?;
        // Inside a block, the rows the block inserted (not in files yet).
        let pending = if session.in_block() {
            session.block_rows(self.oid)
        } else {
            vec![]
        };
        if !pending.is_empty() {
            let mut rows = Vec::with_capacity(pending.len());
            let mut changed = false;
            for (batch, policy) in pending {
                let (kept, matched) = self
                    .evaluate(session, &inner, &outputs, &predicate, &schema, vec![batch])
                    .await?;
                let n: usize = matched.iter().map(|b| b.num_rows()).sum();
                rows.extend(kept.into_iter().map(|b| (b, policy)));
                if n == 0 {
                    continue;
                }
                changed = true;
                count += n as u64;
                if self.op == Op::Update {
                    for b in &matched {
                        session.engine().check_updated_rows(table, b)?;
                        // New versions keep their keys checked at COMMIT.
                        rows.push((b.clone(), tempora_storage::OnConflict::Error));
                    }
                }
                affected.extend(matched);
            }
            if changed {
                session.replace_block_rows(self.oid, rows);
            }
        }
        Ok((count, affected))
    }

    /// Rewrites the candidate files (the change is committed by the
    /// caller); returns the number of rows affected and those rows.
    #[allow(clippy::too_many_arguments)]
    async fn rewrite(
        &self,
        session: &SqlSession,
        table: &tempora_catalog::TableDef,
        schema: &SchemaRef,
        candidates: Vec<(Option<u32>, tempora_catalog::FileDef)>,
        (inner, outputs, predicate): (&LogicalPlan, &[Expr], &Option<Expr>),
        whole_files_within: Option<&tempora_query::provider::TimeBounds>,
        changes: &mut FileChanges,
    ) -> Result<(u64, Vec<RecordBatch>)> {
        let engine = session.engine();
        let mut affected: Vec<RecordBatch> = Vec::new();
        let mut count: u64 = 0;
        for (chunk, file) in candidates {
            if let (Some(bounds), Some(min), Some(max)) =
                (whole_files_within, file.min_time, file.max_time)
            {
                if bounds.covers(min, max.saturating_add(1)) {
                    count += file.rows;
                    changes.remove.push((chunk, file.path.clone()));
                    continue;
                }
            }
            let batches = engine.read_table_file(table, &file.path).await?;
            let (kept, matched) = self
                .evaluate(session, inner, outputs, predicate, schema, batches)
                .await?;
            let n: usize = matched.iter().map(|b| b.num_rows()).sum();
            if n == 0 {
                continue;
            }
            if self.op == Op::Update {
                for b in &matched {
                    engine.check_updated_rows(table, b)?;
                }
            }
            count += n as u64;
            changes.remove.push((chunk, file.path.clone()));
            if kept.iter().any(|b| b.num_rows() > 0) {
                let f = engine
                    .write_table_file(
                        table,
                        chunk,
                        &kept,
                        "rewrite",
                        tempora_storage::Layout::rewriting(table, &file.path),
                    )
                    .await?;
                changes.add.push((chunk, f));
            }
            affected.extend(matched);
        }
        if self.op == Op::Update && count > 0 {
            let rows = datafusion::arrow::compute::concat_batches(schema, &affected)
                .map_err(|e| TemporaError::internal(e.to_string()))?;
            let state = engine.ensure_chunks(table, &rows).await?;
            let table = state
                .table_by_oid(self.oid)
                .ok_or_else(|| TemporaError::undefined_table(&self.table_name))?;
            for (chunk, part) in tempora_storage::split_by_chunk(table, rows)? {
                let f = engine
                    .write_table_file(
                        table,
                        chunk,
                        &[part],
                        "update",
                        tempora_storage::Layout::Ingest,
                    )
                    .await?;
                changes.add.push((chunk, f));
            }
        }
        Ok((count, affected))
    }

    /// Runs the statement's plan over one file's rows: the rows to keep, and
    /// the matched rows (DELETE: as they were; UPDATE: their new values).
    ///
    /// The rows get a hidden row number; the statement's own filter (which may
    /// hold subqueries) picks the matched numbers, so the rest are kept as is.
    async fn evaluate(
        &self,
        session: &SqlSession,
        inner: &LogicalPlan,
        outputs: &[Expr],
        predicate: &Option<Expr>,
        schema: &SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>)> {
        let internal =
            |e: datafusion::arrow::error::ArrowError| TemporaError::internal(e.to_string());
        if predicate.is_none() && self.op == Op::Delete {
            // No WHERE: every row goes.
            return Ok((vec![], batches));
        }
        let old = datafusion::arrow::compute::concat_batches(schema, &batches).map_err(internal)?;
        let total = old.num_rows();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(ROW, DataType::UInt64, false));
        let numbered_schema = Arc::new(Schema::new(fields));
        let mut cols = old.columns().to_vec();
        cols.push(Arc::new(UInt64Array::from_iter_values(0..total as u64)));
        let numbered = RecordBatch::try_new(numbered_schema.clone(), cols).map_err(internal)?;
        let mem = MemTable::try_new(numbered_schema, vec![vec![numbered]])
            .map_err(TemporaError::from_datafusion)?;
        let source = provider_as_source(Arc::new(mem));
        let scanned = inner
            .clone()
            .transform_up(|node| match node {
                LogicalPlan::TableScan(TableScan { table_name, .. }) => {
                    LogicalPlanBuilder::scan(table_name, source.clone(), None)?
                        .build()
                        .map(Transformed::yes)
                }
                other => Ok(Transformed::no(other)),
            })
            .map_err(TemporaError::from_datafusion)?
            .data;
        let row_col = scanned
            .schema()
            .columns()
            .into_iter()
            .find(|c| c.name == ROW)
            .ok_or_else(|| TemporaError::internal("row number column lost"))?;
        let filtered = match predicate {
            Some(p) => LogicalPlan::Filter(
                Filter::try_new(p.clone(), Arc::new(scanned))
                    .map_err(TemporaError::from_datafusion)?,
            ),
            None => scanned,
        };
        let mut exprs = vec![Expr::Column(row_col)];
        if self.op == Op::Update {
            exprs.extend(outputs.iter().cloned());
        }
        let plan = LogicalPlan::Projection(
            Projection::try_new(exprs, Arc::new(filtered))
                .map_err(TemporaError::from_datafusion)?,
        );
        let out = session.run_plan(plan).await?;
        let state = session.engine().catalog().snapshot();
        let table = state
            .table_by_oid(self.oid)
            .ok_or_else(|| TemporaError::undefined_table(&self.table_name))?;
        let mut hit = vec![false; total];
        let mut updated = Vec::new();
        for b in out {
            let ids = b
                .column(0)
                .as_any()
                .downcast_ref::<UInt64Array>()
                .ok_or_else(|| TemporaError::internal("row number column is not UInt64"))?;
            for id in ids.values().iter() {
                hit[*id as usize] = true;
            }
            if self.op == Op::Update {
                let new = crate::insert::conform(&b.columns()[1..], schema)?;
                updated.push(tempora_copy::values::assign(table, new)?);
            }
        }
        let mask = BooleanArray::from(hit);
        let unmatched = not(&mask).map_err(internal)?;
        let kept = filter_record_batch(&old, &unmatched).map_err(internal)?;
        let matched = match self.op {
            Op::Update => updated,
            Op::Delete => vec![filter_record_batch(&old, &mask).map_err(internal)?],
        };
        Ok((vec![kept], matched))
    }
}

async fn plan_returning(
    session: &SqlSession,
    schema_name: &str,
    table_name: &str,
    items: &[SelectItem],
) -> Result<Returning> {
    Returning::plan(session, schema_name, table_name, None, items).await
}

/// Splits DataFusion's DML input into (UPDATE's new column values, the WHERE
/// predicate, the plan below both that scans the table).
fn split_input(input: &LogicalPlan, op: WriteOp) -> Result<(Vec<Expr>, Option<Expr>, LogicalPlan)> {
    let (outputs, below) = match (op, input) {
        (WriteOp::Update, LogicalPlan::Projection(p)) => (p.expr.clone(), p.input.as_ref()),
        (WriteOp::Delete, other) => (vec![], other),
        _ => return Err(TemporaError::internal("unexpected DML plan shape")),
    };
    match below {
        LogicalPlan::Filter(Filter {
            predicate, input, ..
        }) => Ok((outputs, Some(predicate.clone()), input.as_ref().clone())),
        other => Ok((outputs, None, other.clone())),
    }
}

/// The filters the optimizer hands the table scan for `predicate` (to find
/// the chunks and files a statement can touch).
async fn pushed_filters(session: &SqlSession, inner: &LogicalPlan, predicate: &Expr) -> Vec<Expr> {
    let plan = match Filter::try_new(predicate.clone(), Arc::new(inner.clone())) {
        Ok(f) => LogicalPlan::Filter(f),
        Err(_) => return vec![],
    };
    let Ok(optimized) = session.context().state().optimize(&plan) else {
        return vec![];
    };
    let mut out = Vec::new();
    let _ = optimized.apply(|node| {
        match node {
            LogicalPlan::TableScan(scan) => out.extend(scan.filters.iter().cloned()),
            LogicalPlan::Filter(f) => out.extend(
                datafusion::logical_expr::utils::split_conjunction(&f.predicate)
                    .into_iter()
                    .cloned(),
            ),
            _ => {}
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    out
}
