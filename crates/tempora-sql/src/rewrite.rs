//! `ALTER COLUMN ... TYPE` where stored values must be converted (a USING
//! expression, or a cast that is not a widening): every file of the table
//! is written again with the column converted.
//!
//! ```text
//! files listed now ─► read, convert, write (writers go on meanwhile)
//! files lock + memtables flushed + write gate
//!   ─► files flushed or rewritten since are converted too
//!   ─► one catalog commit: the new column type, old files out, new files in
//! ```
//! Rows acknowledged before the commit are all in the files it replaces;
//! rows written after it take the new type.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::Column;
use datafusion::logical_expr::{col, Expr};
use tempora_catalog::{CatalogOp, FileDef, TableDef};
use tempora_common::{Result, TemporaError};
use tempora_storage::{FileChanges, Layout};

use crate::SqlSession;

/// Rewrites table `old` as `new` (the same but for `column`'s type), the
/// column's values given by the SQL expression `expr` over the old row.
pub(crate) async fn rewrite_column(
    session: &SqlSession,
    old: &TableDef,
    new: TableDef,
    column: &str,
    expr: &str,
) -> Result<()> {
    let engine = session.engine();
    let convert = Converter {
        session,
        old,
        new: &new,
        column,
        expr,
    };
    // An expression that cannot be planned fails before anything is written.
    convert
        .batch(RecordBatch::new_empty(Arc::new(old.arrow_schema())))
        .await?;
    let mut done: HashMap<String, (Option<u32>, FileDef)> = HashMap::new();
    let result = async {
        let files = listed(&engine.catalog().snapshot(), old.oid);
        for (chunk, file) in files {
            let f = convert.file(chunk, &file).await?;
            done.insert(file.path.clone(), (chunk, f));
        }
        let (guard, _gate) = engine.lock_flushed(&[old.oid]).await?;
        let state = engine.catalog().snapshot();
        let current = state
            .table_by_oid(old.oid)
            .ok_or_else(|| TemporaError::undefined_table(&old.name))?;
        if current.columns != old.columns {
            return Err(TemporaError::new(
                tempora_common::SqlState::T_R_SERIALIZATION_FAILURE,
                format!(
                    "the columns of \"{}\" changed while its column \"{column}\" was converted",
                    old.name
                ),
            ));
        }
        let mut changes = FileChanges {
            oid: old.oid,
            ..Default::default()
        };
        for (chunk, file) in listed(&state, old.oid) {
            let converted = match done.remove(&file.path) {
                Some((_, f)) => f,
                // Flushed, merged or rewritten since the listing.
                None => match convert.file(chunk, &file).await {
                    Ok(f) => f,
                    Err(e) => {
                        // Converted here, listed nowhere.
                        let written = changes.add.iter().map(|(_, f)| f.path.clone());
                        engine.gc().retire(0, written);
                        return Err(e);
                    }
                },
            };
            changes.remove.push((chunk, file.path.clone()));
            changes.add.push((chunk, converted));
        }
        let added: Vec<String> = changes.add.iter().map(|(_, f)| f.path.clone()).collect();
        let def = new.definition_only();
        let committed = engine
            .commit_files_with(&guard, changes, |_| {
                Ok(vec![CatalogOp::AlterTable(Box::new(def.clone()))])
            })
            .await;
        if committed.is_err() {
            engine.gc().retire(0, added);
        }
        committed.map(|_| ())
    }
    .await;
    // Files converted for files that went away meanwhile are nobody's.
    engine
        .gc()
        .retire(0, done.into_values().map(|(_, f)| f.path));
    result
}

/// The files of table `oid` with their chunks.
fn listed(state: &tempora_catalog::CatalogState, oid: u32) -> Vec<(Option<u32>, FileDef)> {
    let Some(t) = state.table_by_oid(oid) else {
        return vec![];
    };
    t.files
        .iter()
        .map(|f| (None, f.clone()))
        .chain(
            t.chunks
                .values()
                .flat_map(|c| c.files.iter().map(move |f| (Some(c.id), f.clone()))),
        )
        .collect()
}

struct Converter<'a> {
    session: &'a SqlSession,
    old: &'a TableDef,
    new: &'a TableDef,
    column: &'a str,
    expr: &'a str,
}

impl Converter<'_> {
    /// One file's rows, converted and written as a new file of the chunk.
    async fn file(&self, chunk: Option<u32>, file: &FileDef) -> Result<FileDef> {
        let engine = self.session.engine();
        let mut out = Vec::new();
        for b in engine.read_table_file(self.old, &file.path).await? {
            out.push(self.batch(b).await?);
        }
        tracing::debug!(path = %file.path, rows = file.rows, "converted file");
        engine
            .write_table_file(
                self.new,
                chunk,
                &out,
                "rewrite",
                Layout::rewriting(self.old, &file.path),
            )
            .await
    }

    /// The rows of `batch` (the old layout) in the new one.
    async fn batch(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let df = self
            .session
            .context()
            .read_batch(batch)
            .map_err(TemporaError::from_datafusion)?;
        let converted = df
            .parse_sql_expr(self.expr)
            .map_err(TemporaError::from_datafusion)?;
        let target = self
            .new
            .column(self.column)
            .ok_or_else(|| TemporaError::undefined_column(self.column))?
            .ty
            .arrow_type();
        let exprs: Vec<Expr> = self
            .old
            .columns
            .iter()
            .map(|c| {
                if c.name == self.column {
                    Expr::Cast(datafusion::logical_expr::Cast::new(
                        Box::new(converted.clone()),
                        target.clone(),
                    ))
                    .alias(c.name.clone())
                } else {
                    col(Column::new_unqualified(c.name.clone()))
                }
            })
            .collect();
        let batches = df
            .select(exprs)
            .map_err(TemporaError::from_datafusion)?
            .collect()
            .await
            .map_err(TemporaError::from_datafusion)?;
        let schema = Arc::new(self.new.arrow_schema());
        let cols: Vec<RecordBatch> = batches
            .iter()
            .map(|b| crate::insert::conform(b.columns(), &schema))
            .collect::<Result<_>>()?;
        datafusion::arrow::compute::concat_batches(&schema, &cols)
            .map_err(|e| TemporaError::internal(e.to_string()))
    }
}
