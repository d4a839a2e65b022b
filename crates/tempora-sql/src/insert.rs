//! INSERT: DataFusion plans the rows (casts to the column types, DEFAULTs,
//! column order); the storage engine writes them; RETURNING is evaluated over
//! exactly the rows written.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::logical_expr::{DmlStatement, LogicalPlan, WriteOp};
use datafusion::sql::sqlparser::ast::{SelectItem, Statement};
use tempora_common::{Result, TemporaError};

use crate::{Outcome, SqlSession};
use datafusion::sql::sqlparser::ast::{ConflictTarget, OnConflictAction, OnInsert};
use tempora_catalog::TableDef;
use tempora_common::SqlState;
use tempora_storage::OnConflict;

/// Columns computed for a table (an INSERT's rows, an UPDATE's new values) as
/// a batch of the table's schema: stored names and exact types.
pub(crate) fn conform(
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

/// The policy an `ON CONFLICT` clause asks for, checked against the table's
/// constraints as PostgreSQL checks it.
fn on_conflict_policy(on: Option<&OnInsert>, table: &TableDef) -> Result<OnConflict> {
    let Some(on) = on else {
        return Ok(OnConflict::Error);
    };
    let OnInsert::OnConflict(oc) = on else {
        return Err(TemporaError::not_supported("ON DUPLICATE KEY UPDATE"));
    };
    match &oc.conflict_target {
        None => {
            if matches!(oc.action, OnConflictAction::DoUpdate(_)) {
                return Err(TemporaError::syntax(
                    "ON CONFLICT DO UPDATE requires inference specification or constraint name",
                )
                .with_hint("For example, ON CONFLICT (column_name)."));
            }
        }
        Some(ConflictTarget::Columns(cols)) => {
            let mut wanted: Vec<String> = cols.iter().map(crate::ddl::ident_name).collect();
            wanted.sort();
            let matches = table.unique_keys.iter().any(|k| {
                let mut have = k.columns.clone();
                have.sort();
                have == wanted
            });
            if !matches {
                return Err(TemporaError::new(
                    SqlState::INVALID_COLUMN_REFERENCE,
                    "there is no unique or exclusion constraint matching the ON CONFLICT specification",
                ));
            }
        }
        Some(ConflictTarget::OnConstraint(name)) => {
            let (_, name) = crate::ddl::object_name(name)?;
            if !table.unique_keys.iter().any(|k| k.name == name) {
                return Err(TemporaError::new(
                    SqlState::UNDEFINED_OBJECT,
                    format!(
                        "constraint \"{name}\" for table \"{}\" does not exist",
                        table.name
                    ),
                ));
            }
        }
    }
    match oc.action {
        OnConflictAction::DoNothing => Ok(OnConflict::Skip),
        OnConflictAction::DoUpdate(_) => Err(TemporaError::not_supported(
            "INSERT ... ON CONFLICT DO UPDATE",
        )),
    }
}

/// A planned INSERT.
#[derive(Debug, Clone)]
pub struct InsertPlan {
    oid: u32,
    on_conflict: OnConflict,
    table_name: String,
    /// Produces the new rows in the table's schema.
    input: LogicalPlan,
    returning: Option<Returning>,
}

/// A RETURNING list, evaluated over exactly the rows a statement wrote.
#[derive(Debug, Clone)]
pub(crate) struct Returning {
    items: String,
    pub schema: SchemaRef,
}

impl Returning {
    /// Plans `items` against table `schema_name.name` (for the result columns).
    pub async fn plan(
        session: &SqlSession,
        schema_name: &str,
        name: &str,
        items: &[SelectItem],
    ) -> Result<Self> {
        let items = items
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {items} FROM \"{schema_name}\".\"{name}\" LIMIT 0");
        let stmt = crate::parse(&sql)?.remove(0);
        let plan = session.plan(stmt).await?;
        Ok(Returning {
            items,
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
        let sql = format!("SELECT {} FROM \"{}\"", self.items, name);
        let (_, out) = crate::query_rows(name, schema, batches, &sql).await?;
        Ok(Outcome::Rows {
            schema: self.schema.clone(),
            batches: out,
            tag: tag.into(),
        })
    }
}

impl InsertPlan {
    pub async fn plan(session: &SqlSession, stmt: &Statement) -> Result<Self> {
        let Statement::Insert(insert) = stmt else {
            return Err(TemporaError::internal("not an INSERT"));
        };

        if let datafusion::sql::sqlparser::ast::TableObject::TableName(name) = &insert.table {
            let (schema_name, table_name) = crate::ddl::object_name(name)?;
            let state = session.engine().catalog().snapshot();
            let table = state
                .table(&schema_name, &table_name)
                .ok_or_else(|| TemporaError::undefined_table(&table_name))?;
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
        plain.on = None;
        let returning_items: Option<Vec<SelectItem>> = plain.returning.take();
        let mut stmt = Statement::Insert(plain);
        crate::alias_function_columns(&mut stmt);
        let plan = session.plan(stmt).await?;
        let LogicalPlan::Dml(DmlStatement {
            table_name,
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
        let on_conflict = on_conflict_policy(insert.on.as_ref(), table)?;
        let returning = match returning_items {
            Some(items) => Some(Returning::plan(session, &schema_name, &name, &items).await?),
            None => None,
        };
        Ok(Self {
            oid: table.oid,
            on_conflict,
            table_name: name,
            input: input.as_ref().clone(),
            returning,
        })
    }

    pub fn param_types(&self) -> Result<Vec<Option<DataType>>> {
        crate::param_types(&self.input)
    }

    pub fn returning_schema(&self) -> Option<SchemaRef> {
        self.returning.as_ref().map(|r| r.schema.clone())
    }

    pub async fn execute(
        &self,
        session: &SqlSession,
        params: Option<ParamValues>,
    ) -> Result<Outcome> {
        let input = crate::bind(self.input.clone(), params)?;
        let state = session.engine().catalog().snapshot();
        let table = state
            .table_by_oid(self.oid)
            .ok_or_else(|| TemporaError::undefined_table(&self.table_name))?;
        let schema = Arc::new(table.arrow_schema());
        let batches = session
            .context()
            .execute_logical_plan(input)
            .await
            .map_err(TemporaError::from_datafusion)?
            .collect()
            .await
            .map_err(TemporaError::from_datafusion)?;
        // Align to the stored schema (names and exact types).
        let batches = batches
            .iter()
            .map(|b| conform(b.columns(), &schema))
            .collect::<Result<Vec<_>>>()?;
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
