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

/// A planned INSERT.
#[derive(Debug, Clone)]
pub struct InsertPlan {
    oid: u32,
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
        if insert.on.is_some() {
            return Err(TemporaError::not_supported("INSERT ... ON CONFLICT"));
        }
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
        let returning = match returning_items {
            Some(items) => Some(Returning::plan(session, &schema_name, &name, &items).await?),
            None => None,
        };
        Ok(Self {
            oid: table.oid,
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
            .into_iter()
            .map(|b| {
                let cols = b
                    .columns()
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
                RecordBatch::try_new(schema.clone(), cols)
                    .map_err(|e| TemporaError::from_datafusion(e.into()))
            })
            .collect::<Result<Vec<_>>>()?;
        let rows = session.write_rows(self.oid, batches.clone()).await?;
        match &self.returning {
            None => Ok(Outcome::Command(format!("INSERT 0 {rows}"))),
            Some(r) => r.project(&self.table_name, schema, batches, "INSERT 0").await,
        }
    }
}
