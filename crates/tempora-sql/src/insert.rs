//! INSERT: DataFusion plans the rows (casts to the column types, DEFAULTs,
//! column order); the storage engine writes them (`ON CONFLICT DO UPDATE`:
//! through `Engine::upsert`, see `upsert.rs`); RETURNING is evaluated over
//! exactly the rows written.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::logical_expr::{DmlStatement, LogicalPlan, WriteOp};
use datafusion::sql::sqlparser::ast::{SelectItem, Statement};
use tempora_common::{Result, TemporaError};

use crate::upsert::DoUpdatePlan;
use crate::{Outcome, SqlSession, TxState};
use datafusion::sql::sqlparser::ast::{ConflictTarget, DoUpdate, OnConflictAction, OnInsert};
use tempora_catalog::TableDef;
use tempora_common::SqlState;
use tempora_storage::OnConflict;

/// Columns computed for a table (an INSERT's rows, an UPDATE's new values)
/// or for a result (a query's rows) as a batch of `schema`: its names and
/// exact types.
pub fn conform(
    columns: &[datafusion::arrow::array::ArrayRef],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let cols = columns
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                cast(c, f.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| TemporaError::from_datafusion(e.into()))?;
    RecordBatch::try_new(schema.clone(), cols).map_err(|e| TemporaError::from_datafusion(e.into()))
}

/// What an `ON CONFLICT` clause asks for.
enum ConflictAction<'a> {
    /// Raise 23505 or leave the row out.
    Policy(OnConflict),
    /// `DO UPDATE`, conflicts found on `table.unique_keys[arbiter]`.
    Update {
        arbiter: usize,
        update: &'a DoUpdate,
    },
}

/// The action an `ON CONFLICT` clause asks for, its target checked against
/// the table's constraints as PostgreSQL checks it.
fn on_conflict_action<'a>(
    on: Option<&'a OnInsert>,
    table: &TableDef,
) -> Result<ConflictAction<'a>> {
    let Some(on) = on else {
        return Ok(ConflictAction::Policy(OnConflict::Error));
    };
    let OnInsert::OnConflict(oc) = on else {
        return Err(TemporaError::not_supported("ON DUPLICATE KEY UPDATE"));
    };
    let arbiter = match &oc.conflict_target {
        None => {
            if matches!(oc.action, OnConflictAction::DoUpdate(_)) {
                return Err(TemporaError::syntax(
                    "ON CONFLICT DO UPDATE requires inference specification or constraint name",
                )
                .with_hint("For example, ON CONFLICT (column_name)."));
            }
            None
        }
        Some(ConflictTarget::Columns(cols)) => {
            let mut wanted: Vec<String> = cols.iter().map(crate::ddl::ident_name).collect();
            wanted.sort();
            let found = table.unique_keys.iter().position(|k| {
                let mut have = k.columns.clone();
                have.sort();
                have == wanted
            });
            match found {
                Some(i) => Some(i),
                None => {
                    return Err(TemporaError::new(
                        SqlState::INVALID_COLUMN_REFERENCE,
                        "there is no unique or exclusion constraint matching the ON CONFLICT specification",
                    ))
                }
            }
        }
        Some(ConflictTarget::OnConstraint(name)) => {
            let (_, name) = crate::ddl::object_name(name)?;
            match table.unique_keys.iter().position(|k| k.name == name) {
                Some(i) => Some(i),
                None => {
                    return Err(TemporaError::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!(
                            "constraint \"{name}\" for table \"{}\" does not exist",
                            table.name
                        ),
                    ))
                }
            }
        }
    };
    match (&oc.action, arbiter) {
        (OnConflictAction::DoNothing, _) => Ok(ConflictAction::Policy(OnConflict::Skip)),
        (OnConflictAction::DoUpdate(update), Some(arbiter)) => {
            Ok(ConflictAction::Update { arbiter, update })
        }
        (OnConflictAction::DoUpdate(_), None) => {
            Err(TemporaError::internal("DO UPDATE without a target"))
        }
    }
}

/// A planned INSERT.
#[derive(Debug, Clone)]
pub struct InsertPlan {
    oid: u32,
    on_conflict: OnConflict,
    /// `ON CONFLICT ... DO UPDATE`.
    update: Option<DoUpdatePlan>,
    table_name: String,
    /// Produces the new rows in the table's schema.
    input: LogicalPlan,
    /// The table's layout `input` was planned against (an ALTER TABLE may
    /// come between planning and running a prepared INSERT).
    planned: SchemaRef,
    returning: Option<Returning>,
}

/// A RETURNING list, evaluated over exactly the rows a statement wrote.
#[derive(Debug, Clone)]
pub(crate) struct Returning {
    items: String,
    /// The statement's alias of the table (`INSERT INTO t AS a`).
    alias: Option<String>,
    pub schema: SchemaRef,
}

impl Returning {
    /// Plans `items` against table `schema_name.name` (for the result columns),
    /// named `alias` in the statement if it has one.
    pub async fn plan(
        session: &SqlSession,
        schema_name: &str,
        name: &str,
        alias: Option<String>,
        items: &[SelectItem],
    ) -> Result<Self> {
        let items = items
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let as_alias = alias
            .as_ref()
            .map(|a| format!(" AS {a}"))
            .unwrap_or_default();
        let sql = format!("SELECT {items} FROM \"{schema_name}\".\"{name}\"{as_alias} LIMIT 0");
        let stmt = crate::parse(&sql)?.remove(0);
        let plan = session.plan(stmt).await?;
        Ok(Returning {
            items,
            alias,
            schema: Arc::new(plan.schema().as_arrow().clone()),
        })
    }

    /// The RETURNING rows of `batches` (rows of table `name` with `schema`).
    pub async fn project(
        &self,
        name: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        tag: &str,
    ) -> Result<Outcome> {
        let as_alias = self
            .alias
            .as_ref()
            .map(|a| format!(" AS {a}"))
            .unwrap_or_default();
        let sql = format!("SELECT {} FROM \"{}\"{as_alias}", self.items, name);
        let (_, out) = crate::query_rows(name, schema, batches, &sql).await?;
        Ok(Outcome::Rows {
            schema: self.schema.clone(),
            batches: out,
            tag: tag.into(),
        })
    }
}

/// Without a column list an INSERT fills the table's first N columns, N
/// being the width of its VALUES rows or select list (the rest take their
/// defaults), as in PostgreSQL; a wider source is 42601.
fn name_leading_columns(
    insert: &mut datafusion::sql::sqlparser::ast::Insert,
    table: &tempora_catalog::TableDef,
) -> Result<()> {
    use datafusion::sql::sqlparser::ast::{Ident, ObjectName, SelectItem, SetExpr};
    if !insert.columns.is_empty() {
        return Ok(());
    }
    let Some(source) = insert.source.as_ref() else {
        return Ok(());
    };
    let width = match source.body.as_ref() {
        SetExpr::Values(values) => values.rows.iter().map(|r| r.len()).max(),
        SetExpr::Select(sel)
            if sel.projection.iter().all(|i| {
                matches!(
                    i,
                    SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
                )
            }) =>
        {
            Some(sel.projection.len())
        }
        _ => None,
    };
    match width {
        Some(n) if n > table.columns.len() => Err(TemporaError::new(
            tempora_common::SqlState::SYNTAX_ERROR,
            "INSERT has more expressions than target columns",
        )),
        Some(n) if n < table.columns.len() => {
            insert.columns = table.columns[..n]
                .iter()
                .map(|c| ObjectName::from(vec![Ident::with_quote('"', c.name.clone())]))
                .collect();
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `DEFAULT` in the rows of `VALUES`, and `DEFAULT VALUES`, which
/// DataFusion does not take: the column's DEFAULT expression (or NULL) in
/// their place, as PostgreSQL evaluates them. Such rows become a `SELECT
/// ... UNION ALL SELECT ...` (a sequence's `nextval` cannot run inside
/// `VALUES`).
fn fill_defaults(
    insert: &mut datafusion::sql::sqlparser::ast::Insert,
    table: &tempora_catalog::TableDef,
) -> Result<()> {
    use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, SetExpr};
    let default_sql = |c: &tempora_catalog::ColumnDef| c.default.clone().unwrap_or("NULL".into());
    let rows: Vec<Vec<String>> = match insert.source.as_ref() {
        // DEFAULT VALUES: every column's default, in table order.
        None => {
            insert.columns.clear();
            vec![table.columns.iter().map(default_sql).collect()]
        }
        Some(source) => {
            let SetExpr::Values(values) = source.body.as_ref() else {
                return Ok(());
            };
            let targets: Vec<Option<&tempora_catalog::ColumnDef>> = if insert.columns.is_empty() {
                table.columns.iter().map(Some).collect()
            } else {
                insert
                    .columns
                    .iter()
                    .map(|c| {
                        crate::ddl::object_name(c)
                            .ok()
                            .and_then(|(_, n)| table.column(&n))
                    })
                    .collect()
            };
            let is_default = |e: &SqlExpr| {
                matches!(e, SqlExpr::Identifier(id)
                    if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"))
            };
            if !values.rows.iter().flat_map(|r| r.iter()).any(is_default) {
                return Ok(());
            }
            values
                .rows
                .iter()
                .map(|row| {
                    row.iter()
                        .enumerate()
                        .map(|(i, e)| match targets.get(i) {
                            Some(Some(c)) if is_default(e) => default_sql(c),
                            _ => e.to_string(),
                        })
                        .collect()
                })
                .collect()
        }
    };
    insert.source = Some(union_of_rows(&rows)?);
    Ok(())
}

/// Rows of SQL expressions as `SELECT ... UNION ALL SELECT ...` (what a
/// `VALUES` list becomes where DataFusion cannot take it as one).
fn union_of_rows(rows: &[Vec<String>]) -> Result<Box<datafusion::sql::sqlparser::ast::Query>> {
    let select = rows
        .iter()
        .map(|r| format!("SELECT {}", r.join(", ")))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    match crate::parse(&select)?.pop() {
        Some(Statement::Query(q)) => Ok(q),
        _ => Err(TemporaError::internal("VALUES rows did not parse")),
    }
}

/// An INSERT's input whose rows are ordered (`INSERT ... SELECT ... ORDER
/// BY`) with the topmost sort replaced by its result, read in order; None
/// when nothing sorts.
async fn ordered_source(session: &SqlSession, input: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{col, Expr, LogicalPlanBuilder};
    let mut sort = None;
    input
        .apply(|p| {
            Ok(match p {
                LogicalPlan::Sort(_) => {
                    sort = Some(p.clone());
                    TreeNodeRecursion::Stop
                }
                _ => TreeNodeRecursion::Continue,
            })
        })
        .map_err(TemporaError::from_datafusion)?;
    let Some(sort) = sort else {
        return Ok(None);
    };
    let batches = session
        .context()
        .execute_logical_plan(sort.clone())
        .await
        .map_err(TemporaError::from_datafusion)?
        .collect()
        .await
        .map_err(TemporaError::from_datafusion)?;
    let schema = sort.schema().clone();
    let table = datafusion::catalog::MemTable::try_new(schema.inner().clone(), vec![batches])
        .map_err(TemporaError::from_datafusion)?;
    // The rows under the sort's own column names and qualifiers.
    let names: Vec<Expr> = schema
        .iter()
        .map(|(qualifier, field)| {
            col(datafusion::common::Column::new(
                Some("\u{1}sorted"),
                field.name(),
            ))
            .alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    let sorted = LogicalPlanBuilder::scan(
        "\u{1}sorted",
        datafusion::datasource::provider_as_source(Arc::new(table)),
        None,
    )
    .and_then(|b| b.project(names))
    .and_then(|b| b.build())
    .map_err(TemporaError::from_datafusion)?;
    let mut replaced = false;
    let plan = input
        .clone()
        .transform_down(|p| {
            if !replaced && matches!(p, LogicalPlan::Sort(_)) {
                replaced = true;
                return Ok(Transformed::new(
                    sorted.clone(),
                    true,
                    TreeNodeRecursion::Jump,
                ));
            }
            Ok(Transformed::no(p))
        })
        .map_err(TemporaError::from_datafusion)?
        .data;
    Ok(Some(plan))
}

/// `VALUES` lists nested in an INSERT's query (`INSERT ... SELECT ... FROM
/// (VALUES ...) AS v(a, b, n) ORDER BY n`, SQLAlchemy's batched inserts)
/// with another width than the `targets` columns inserted, as `SELECT ...
/// UNION ALL SELECT ...`: DataFusion reads nested VALUES with the target
/// columns and rejects them. A top-level `VALUES` stays as it is.
fn nested_values_as_selects(
    insert: &mut datafusion::sql::sqlparser::ast::Insert,
    targets: usize,
) -> Result<()> {
    use datafusion::sql::sqlparser::ast::{Query, SetExpr, VisitMut, VisitorMut};
    struct Rewrite {
        targets: usize,
        error: Option<TemporaError>,
    }
    impl VisitorMut for Rewrite {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> std::ops::ControlFlow<()> {
            let SetExpr::Values(values) = q.body.as_ref() else {
                return std::ops::ControlFlow::Continue(());
            };
            if values.rows.first().is_none_or(|r| r.len() == self.targets) {
                return std::ops::ControlFlow::Continue(());
            }
            let rows: Vec<Vec<String>> = values
                .rows
                .iter()
                .enumerate()
                .map(|(r, row)| {
                    row.iter()
                        .enumerate()
                        .map(|(i, e)| match r {
                            // The first SELECT names the columns as VALUES does.
                            0 => format!("{e} AS column{}", i + 1),
                            _ => e.to_string(),
                        })
                        .collect()
                })
                .collect();
            match union_of_rows(&rows) {
                Ok(parsed) => {
                    q.body = parsed.body;
                    std::ops::ControlFlow::Continue(())
                }
                Err(e) => {
                    self.error = Some(e);
                    std::ops::ControlFlow::Break(())
                }
            }
        }
    }
    let Some(source) = insert.source.as_mut() else {
        return Ok(());
    };
    if matches!(source.body.as_ref(), SetExpr::Values(_)) {
        return Ok(());
    }
    let mut rewrite = Rewrite {
        targets,
        error: None,
    };
    let _ = source.visit(&mut rewrite);
    rewrite.error.map_or(Ok(()), Err)
}

impl InsertPlan {
    pub async fn plan(session: &SqlSession, stmt: &Statement) -> Result<Self> {
        let Statement::Insert(insert) = stmt else {
            return Err(TemporaError::internal("not an INSERT"));
        };

        if let datafusion::sql::sqlparser::ast::TableObject::TableName(name) = &insert.table {
            let (schema_name, table_name) = crate::ddl::object_name(name)?;
            let state = session.engine().catalog().snapshot();
            let table =
                crate::ddl::written_table(&state, &schema_name, &table_name, "insert into")?;
            for c in &insert.columns {
                let col = crate::ddl::object_name(c)?.1;
                if table.column(&col).is_none() {
                    return Err(TemporaError::new(
                        tempora_common::SqlState::UNDEFINED_COLUMN,
                        format!("column \"{col}\" of relation \"{table_name}\" does not exist"),
                    ));
                }
            }
        }
        let mut plain = insert.clone();
        if let datafusion::sql::sqlparser::ast::TableObject::TableName(name) = &insert.table {
            let (schema_name, table_name) = crate::ddl::object_name(name)?;
            let state = session.engine().catalog().snapshot();
            if let Some(table) = state.table(&schema_name, &table_name) {
                name_leading_columns(&mut plain, table)?;
                fill_defaults(&mut plain, table)?;
                let targets = match plain.columns.len() {
                    0 => table.columns.len(),
                    n => n,
                };
                nested_values_as_selects(&mut plain, targets)?;
            }
        }
        plain.on = None;
        plain.table_alias = None;
        let returning_items: Option<Vec<SelectItem>> = plain.returning.take();
        let mut stmt = Statement::Insert(plain);
        crate::alias_function_columns(&mut stmt);
        crate::naming::apply_to_insert_source(&mut stmt);
        let plan = session.plan(stmt).await?;
        let LogicalPlan::Dml(DmlStatement {
            table_name,
            target,
            op: WriteOp::Insert(_),
            input,
            ..
        }) = plan
        else {
            return Err(TemporaError::internal("INSERT did not plan as an insert"));
        };
        let schema_name = table_name
            .schema()
            .unwrap_or(tempora_query::PUBLIC)
            .to_string();
        let name = table_name.table().to_string();
        let state = session.engine().catalog().snapshot();
        let table = state
            .table(&schema_name, &name)
            .ok_or_else(|| TemporaError::undefined_table(&name))?;
        let (on_conflict, update) = match on_conflict_action(insert.on.as_ref(), table)? {
            ConflictAction::Policy(p) => (p, None),
            ConflictAction::Update { arbiter, update } => {
                let datafusion::sql::sqlparser::ast::TableObject::TableName(target) = &insert.table
                else {
                    return Err(TemporaError::not_supported("INSERT into a table function"));
                };
                let plan = DoUpdatePlan::plan(
                    session,
                    table,
                    target,
                    insert.table_alias.as_ref(),
                    update,
                    arbiter,
                )
                .await?;
                (OnConflict::Error, Some(plan))
            }
        };
        let alias = insert.table_alias.as_ref().map(|a| a.alias.to_string());
        let returning = match returning_items {
            Some(items) => {
                Some(Returning::plan(session, &schema_name, &name, alias, &items).await?)
            }
            None => None,
        };
        Ok(Self {
            oid: table.oid,
            on_conflict,
            update,
            table_name: name,
            input: input.as_ref().clone(),
            // The layout the input was planned against: an ALTER TABLE may
            // have committed since.
            planned: target.schema(),
            returning,
        })
    }

    pub fn param_types(&self) -> Result<Vec<Option<DataType>>> {
        let mut types = crate::param_types(&self.input)?;
        if let Some(u) = &self.update {
            // `$n` may appear in the rows, in SET / WHERE, or both.
            let more = u.param_types()?;
            if more.len() > types.len() {
                types.resize(more.len(), None);
            }
            for (t, m) in types.iter_mut().zip(more) {
                if t.is_none() {
                    *t = m;
                }
            }
        }
        Ok(types)
    }

    pub fn returning_schema(&self) -> Option<SchemaRef> {
        self.returning.as_ref().map(|r| r.schema.clone())
    }

    pub async fn execute(
        &self,
        session: &SqlSession,
        params: Option<ParamValues>,
    ) -> Result<Outcome> {
        if self.update.is_some() && session.tx != TxState::Idle {
            // Rows held for COMMIT cannot say which stored rows they replace.
            return Err(TemporaError::not_supported(
                "INSERT ... ON CONFLICT DO UPDATE inside a transaction block",
            ));
        }
        let input = crate::bind(self.input.clone(), params.clone())?;
        let state = session.engine().catalog().snapshot();
        let table = state
            .table_by_oid(self.oid)
            .ok_or_else(|| TemporaError::undefined_table(&self.table_name))?;
        let schema = Arc::new(table.arrow_schema());
        // With an ORDER BY, rows are numbered (serial defaults) in its order,
        // as PostgreSQL does: the sorted rows are read first (DataFusion
        // keeps a sort only at a plan's root), then the rest runs over them
        // in one partition.
        let (input, context) = match ordered_source(session, &input).await? {
            Some(plan) => {
                let state = session.context().state();
                let mut config = state.config().clone();
                config.options_mut().execution.target_partitions = 1;
                let context = datafusion::prelude::SessionContext::new_with_state(
                    datafusion::execution::SessionStateBuilder::new_from_existing(state)
                        .with_config(config)
                        .build(),
                );
                (plan, context)
            }
            None => (input, session.context().clone()),
        };
        let batches = context
            .execute_logical_plan(input)
            .await
            .map_err(TemporaError::from_datafusion)?
            .collect()
            .await
            .map_err(TemporaError::from_datafusion)?;
        // Align to the layout the plan was made for (names and exact
        // types), then to the table's current one, by column id.
        let batches = batches
            .iter()
            .map(|b| {
                let b = tempora_storage::columns::conform(
                    table,
                    &conform(b.columns(), &self.planned)?,
                )?;
                tempora_copy::values::assign(table, b)
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(update) = &self.update {
            let evaluator = update.evaluator(session, self.oid, schema.clone(), params)?;
            let done = session
                .engine()
                .upsert(self.oid, batches, update.arbiter, &evaluator)
                .await?;
            return match &self.returning {
                None => Ok(Outcome::Command(format!(
                    "INSERT 0 {}",
                    done.rows.num_rows()
                ))),
                Some(r) => {
                    r.project(&self.table_name, schema, vec![done.rows], "INSERT 0")
                        .await
                }
            };
        }
        // RETURNING shows the rows written: with DO NOTHING, those whose
        // keys were still free when the engine wrote them.
        let written = session
            .write_rows_returning(self.oid, batches, self.on_conflict)
            .await?;
        let rows: usize = written.iter().map(|b| b.num_rows()).sum();
        match &self.returning {
            None => Ok(Outcome::Command(format!("INSERT 0 {rows}"))),
            Some(r) => {
                r.project(&self.table_name, schema, written, "INSERT 0")
                    .await
            }
        }
    }
}
