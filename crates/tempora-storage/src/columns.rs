//! Column identity across schema changes.
//!
//! `ALTER TABLE` never rewrites files: rows written under an earlier
//! definition of a table (Parquet files, WAL records, batches planned before
//! the change) are read in its current one by column id. Every field Tempora
//! writes carries its column's id ([`FIELD_ID`]); files from before ids were
//! written hold the table's first columns in order, ids 1, 2, ...
//!
//! - a column renamed since: found by its id under its old name;
//! - a column added since: its `missing` value (the ADD COLUMN's default) or NULL;
//! - a column dropped since: ignored (its id is never reused);
//! - a column whose type widened since: cast.
//!
//! [`ColumnAdapterFactory`] does this for DataFusion's Parquet scans (their
//! projections and pushed-down predicates, so statistics pruning reads the
//! file's own column); [`conform`] does it for batches in memory.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::physical_expr::expressions::{CastExpr, Column, Literal};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr_adapter::{PhysicalExprAdapter, PhysicalExprAdapterFactory};
use tempora_catalog::{ColumnDef, TableDef, FIELD_ID};
use tempora_common::{Result, SqlState, TemporaError};

fn internal(e: impl std::fmt::Display) -> TemporaError {
    TemporaError::internal(e.to_string())
}

/// The column id of each field of `schema`: from the fields' metadata, or
/// by position (1, 2, ...) for a schema written before ids were.
pub fn field_ids(schema: &Schema) -> Vec<u32> {
    let ids: Vec<Option<u32>> = schema
        .fields()
        .iter()
        .map(|f| f.metadata().get(FIELD_ID).and_then(|v| v.parse().ok()))
        .collect();
    if ids.iter().all(Option::is_none) {
        return (1..=schema.fields().len() as u32).collect();
    }
    ids.into_iter().map(|id| id.unwrap_or(0)).collect()
}

/// Whether `schema` is the table's current layout: the same columns (by
/// id) of the same types in the same order.
pub fn is_current(table: &TableDef, schema: &Schema) -> bool {
    schema.fields().len() == table.columns.len()
        && field_ids(schema)
            .into_iter()
            .zip(schema.fields().iter())
            .zip(&table.columns)
            .all(|((id, f), c)| id == c.id && f.data_type() == &c.ty.arrow_type())
}

/// `value` (one value) in the form [`ColumnDef::missing`] keeps.
pub fn encode_missing(value: &ScalarValue) -> Result<String> {
    let array = value.to_array().map_err(internal)?;
    let schema = Arc::new(Schema::new(vec![datafusion::arrow::datatypes::Field::new(
        "v",
        array.data_type().clone(),
        true,
    )]));
    let batch = RecordBatch::try_new(schema.clone(), vec![array]).map_err(internal)?;
    let mut bytes = Vec::new();
    {
        let mut w = datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &schema)
            .map_err(internal)?;
        w.write(&batch).map_err(internal)?;
        w.finish().map_err(internal)?;
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The value rows stored before `column` was added read as.
pub fn missing_value(column: &ColumnDef) -> Result<ScalarValue> {
    let ty = column.ty.arrow_type();
    let Some(hex) = &column.missing else {
        return ScalarValue::try_from(&ty).map_err(internal);
    };
    let corrupt = || {
        TemporaError::new(
            SqlState::DATA_CORRUPTED,
            format!("bad missing value of column \"{}\"", column.name),
        )
    };
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(corrupt)?;
    let mut reader = datafusion::arrow::ipc::reader::StreamReader::try_new(bytes.as_slice(), None)
        .map_err(|_| corrupt())?;
    let batch = reader.next().ok_or_else(corrupt)?.map_err(|_| corrupt())?;
    let value = ScalarValue::try_from_array(batch.column(0), 0).map_err(|_| corrupt())?;
    value.cast_to(&ty).map_err(internal)
}

fn missing_values(table: &TableDef) -> Result<HashMap<u32, ScalarValue>> {
    table
        .columns
        .iter()
        .map(|c| Ok((c.id, missing_value(c)?)))
        .collect()
}

/// Rows of `batch`, laid out under any earlier (or the current) definition
/// of `table`, in its current layout.
pub fn conform(table: &TableDef, batch: &RecordBatch) -> Result<RecordBatch> {
    let target = Arc::new(table.arrow_schema());
    if is_current(table, batch.schema_ref()) {
        return RecordBatch::try_new(target, batch.columns().to_vec()).map_err(internal);
    }
    let ids = field_ids(batch.schema_ref());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(table.columns.len());
    for c in &table.columns {
        let ty = c.ty.arrow_type();
        let column = match ids.iter().position(|id| *id == c.id) {
            Some(i) if batch.column(i).data_type() == &ty => batch.column(i).clone(),
            Some(i) => cast(batch.column(i), &ty).map_err(internal)?,
            None => match missing_value(c)? {
                v if v.is_null() => new_null_array(&ty, batch.num_rows()),
                v => v.to_array_of_size(batch.num_rows()).map_err(internal)?,
            },
        };
        columns.push(column);
    }
    RecordBatch::try_new_with_options(
        target,
        columns,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(internal)
}

/// Where the table's columns `wanted` (indexes into its columns) are in a
/// file of schema `file`, when all of them are there with their current
/// types (so they can be read as they are).
pub fn file_indices(table: &TableDef, file: &Schema, wanted: &[usize]) -> Option<Vec<usize>> {
    let ids = field_ids(file);
    wanted
        .iter()
        .map(|&w| {
            let c = table.columns.get(w)?;
            let i = ids.iter().position(|id| *id == c.id)?;
            (file.field(i).data_type() == &c.ty.arrow_type()).then_some(i)
        })
        .collect()
}

/// Reads the table's `columns` (indexes into its columns, ascending), in
/// that order, from the file `builder` reads (limited to some row groups as
/// the caller chose): straight from the file when it holds them all as they
/// are now, else every column brought to the current layout first.
pub fn read_columns(
    table: &TableDef,
    builder: datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder<
        bytes::Bytes,
    >,
    columns: &[usize],
) -> Result<Vec<RecordBatch>> {
    use datafusion::parquet::arrow::ProjectionMask;
    let direct = file_indices(table, builder.schema(), columns)
        .filter(|i| i.windows(2).all(|w| w[0] < w[1]));
    let mask = match &direct {
        Some(i) => ProjectionMask::roots(builder.parquet_schema(), i.iter().copied()),
        None => ProjectionMask::all(),
    };
    let batches = builder
        .with_projection(mask)
        .build()
        .map_err(internal)?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(internal)?;
    if direct.is_some() {
        return Ok(batches);
    }
    batches
        .iter()
        .map(|b| conform(table, b)?.project(columns).map_err(internal))
        .collect()
}

/// Reads Parquet files of a table in its current layout (see the module docs).
#[derive(Debug)]
pub struct ColumnAdapterFactory {
    missing: Arc<HashMap<u32, ScalarValue>>,
}

impl ColumnAdapterFactory {
    pub fn new(table: &TableDef) -> Result<Self> {
        Ok(Self {
            missing: Arc::new(missing_values(table)?),
        })
    }
}

impl PhysicalExprAdapterFactory for ColumnAdapterFactory {
    fn create(
        &self,
        logical_file_schema: SchemaRef,
        physical_file_schema: SchemaRef,
    ) -> DfResult<Arc<dyn PhysicalExprAdapter>> {
        Ok(Arc::new(ColumnAdapter {
            physical_ids: field_ids(&physical_file_schema),
            logical: logical_file_schema,
            physical: physical_file_schema,
            missing: self.missing.clone(),
        }))
    }
}

#[derive(Debug)]
struct ColumnAdapter {
    logical: SchemaRef,
    physical: SchemaRef,
    physical_ids: Vec<u32>,
    missing: Arc<HashMap<u32, ScalarValue>>,
}

impl ColumnAdapter {
    fn rewrite_column(&self, column: &Column) -> DfResult<Transformed<Arc<dyn PhysicalExpr>>> {
        let Ok(logical) = self.logical.field_with_name(column.name()) else {
            return Ok(Transformed::no(Arc::new(column.clone())));
        };
        let id = logical
            .metadata()
            .get(FIELD_ID)
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or_else(|| {
                self.logical
                    .index_of(column.name())
                    .map_or(0, |i| i as u32 + 1)
            });
        let ty = logical.data_type();
        match self.physical_ids.iter().position(|p| *p == id) {
            Some(i) => {
                let field = self.physical.field(i);
                let physical: Arc<dyn PhysicalExpr> = Arc::new(Column::new(field.name(), i));
                if field.data_type() == ty {
                    Ok(Transformed::yes(physical))
                } else {
                    Ok(Transformed::yes(Arc::new(CastExpr::new(
                        physical,
                        ty.clone(),
                        None,
                    ))))
                }
            }
            None => {
                let value = match self.missing.get(&id) {
                    Some(v) => v.clone(),
                    None => ScalarValue::try_from(ty)?,
                };
                Ok(Transformed::yes(Arc::new(Literal::new(value))))
            }
        }
    }
}

impl PhysicalExprAdapter for ColumnAdapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> DfResult<Arc<dyn PhysicalExpr>> {
        expr.transform(|e| match e.downcast_ref::<Column>() {
            Some(c) => self.rewrite_column(c),
            None => Ok(Transformed::no(e)),
        })
        .data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int32Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};
    use tempora_catalog::PgType;

    #[test]
    fn batches_follow_renames_drops_adds_and_widenings() {
        // Written as (a int4, b text, c int4) before ids were recorded.
        let old = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("a", DataType::Int32, true),
                Field::new("b", DataType::Utf8, true),
                Field::new("c", DataType::Int32, true),
            ])),
            vec![
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec!["x", "y"])),
                Arc::new(Int32Array::from(vec![5, 6])),
            ],
        )
        .unwrap();
        // Now: b dropped, c renamed to cc and widened to bigint, d added
        // with a default of 7, e added without one.
        let mut d = ColumnDef::new(4, "d", PgType::Int4);
        d.missing = Some(encode_missing(&ScalarValue::Int32(Some(7))).unwrap());
        let table = TableDef {
            columns: vec![
                ColumnDef::new(1, "a", PgType::Int4),
                ColumnDef::new(3, "cc", PgType::Int8),
                d,
                ColumnDef::new(5, "e", PgType::Text),
            ],
            ..TableDef::default()
        };
        let now = conform(&table, &old).unwrap();
        assert!(is_current(&table, now.schema_ref()));
        assert_eq!(now.schema().field(1).name(), "cc");
        let cc = now.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(cc.values(), &[5, 6]);
        let d = now.column(2).as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(d.values(), &[7, 7]);
        assert_eq!(now.column(3).null_count(), 2);
        // A batch already current passes through.
        let again = conform(&table, &now).unwrap();
        assert_eq!(again, now);
        // Where the columns are in the old file: cc's type changed, a is there.
        assert_eq!(file_indices(&table, old.schema_ref(), &[0]), Some(vec![0]));
        assert_eq!(file_indices(&table, old.schema_ref(), &[0, 1]), None);
    }
}
