//! PRIMARY KEY and UNIQUE constraints: finding rows whose key is taken; the
//! keys foreign keys are checked against.
//!
//! On a hypertable every unique key includes the time column (TimescaleDB's
//! rule, checked by `create_hypertable`), so the rows a new batch can collide
//! with lie in the chunks, files and row groups its time range overlaps; only
//! the key columns of those row groups are read. Keys holding a NULL never
//! collide, as in PostgreSQL.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::statistics::Statistics;
use tempora_catalog::{quote_identifier, FileDef, TableDef, UniqueKey};
use tempora_common::{Result, SqlState, TemporaError};

fn internal(e: impl std::fmt::Display) -> TemporaError {
    TemporaError::internal(e.to_string())
}

/// What to do with a row whose key is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// PostgreSQL's 23505 unique_violation.
    Error,
    /// Leave the row out (`ON CONFLICT DO NOTHING`).
    Skip,
}

/// The key columns' positions in the table.
pub fn key_columns(table: &TableDef, key: &UniqueKey) -> Result<Vec<usize>> {
    key.columns
        .iter()
        .map(|c| {
            table
                .column_index(c)
                .ok_or_else(|| TemporaError::undefined_column(c))
        })
        .collect()
}

/// Encodes key columns as comparable rows.
pub struct KeyEncoder {
    converter: RowConverter,
    columns: Vec<usize>,
}

impl KeyEncoder {
    pub fn new(table: &TableDef, columns: Vec<usize>) -> Result<Self> {
        let schema = table.arrow_schema();
        let fields = columns
            .iter()
            .map(|i| SortField::new(schema.field(*i).data_type().clone()))
            .collect();
        Ok(Self {
            converter: RowConverter::new(fields).map_err(internal)?,
            columns,
        })
    }

    /// An encoder of key columns of the given types (for [`Self::keys_of`]).
    pub fn for_types(types: &[DataType]) -> Result<Self> {
        Ok(Self {
            converter: RowConverter::new(types.iter().map(|t| SortField::new(t.clone())).collect())
                .map_err(internal)?,
            columns: vec![],
        })
    }

    /// Keys of the rows of `batch` (in the table's layout); None where a key
    /// column is NULL.
    pub fn keys(&self, batch: &RecordBatch) -> Result<Vec<Option<OwnedRow>>> {
        let cols: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|i| batch.column(*i).clone())
            .collect();
        self.keys_of(&cols)
    }

    /// Keys of rows given as just the key columns, in key order.
    pub fn keys_of(&self, cols: &[ArrayRef]) -> Result<Vec<Option<OwnedRow>>> {
        let rows = self.converter.convert_columns(cols).map_err(internal)?;
        let n = cols.first().map_or(0, |c| c.len());
        Ok((0..n)
            .map(|i| {
                if cols.iter().any(|c| c.is_null(i)) {
                    None
                } else {
                    Some(rows.row(i).owned())
                }
            })
            .collect())
    }
}

/// PostgreSQL's error for a taken key.
pub fn violation(
    key: &UniqueKey,
    table: &TableDef,
    batch: &RecordBatch,
    row: usize,
) -> TemporaError {
    TemporaError::new(
        SqlState::UNIQUE_VIOLATION,
        format!(
            "duplicate key value violates unique constraint \"{}\"",
            key.name
        ),
    )
    .with_detail(format!(
        "{} already exists.",
        key_text(key, table, batch, row)
    ))
}

/// The detail of a key that rows of `batch` (in the table's layout) hold
/// more than once, as `CREATE UNIQUE INDEX` reports it.
pub fn duplicated_detail(
    key: &UniqueKey,
    table: &TableDef,
    batch: &RecordBatch,
    row: usize,
) -> String {
    format!("{} is duplicated.", key_text(key, table, batch, row))
}

/// The values of `columns` in one row of `batch` (in the table's layout),
/// as PostgreSQL's details print them.
fn row_values(
    table: &TableDef,
    columns: &[String],
    batch: &RecordBatch,
    row: usize,
) -> Vec<String> {
    columns
        .iter()
        .map(|c| {
            table
                .column_index(c)
                .map(|i| value_text(batch.column(i), row))
                .unwrap_or_default()
        })
        .collect()
}

/// `Key (a, b)=(1, 2)`: a row's key as PostgreSQL's details print it.
fn key_text(key: &UniqueKey, table: &TableDef, batch: &RecordBatch, row: usize) -> String {
    let values = row_values(table, &key.columns, batch, row);
    let names: Vec<String> = key.columns.iter().map(|c| quote_identifier(c)).collect();
    format!("Key ({})=({})", names.join(", "), values.join(", "))
}

/// A value as PostgreSQL prints it in a key detail (timestamps in UTC).
fn value_text(col: &ArrayRef, row: usize) -> String {
    use datafusion::arrow::array::{Array, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::TimeUnit;
    if let DataType::Timestamp(TimeUnit::Microsecond, tz) = col.data_type() {
        if let Some(a) = col.as_any().downcast_ref::<TimestampMicrosecondArray>() {
            if let Some(t) = chrono::DateTime::from_timestamp_micros(a.value(row)) {
                let mut text = t.format("%Y-%m-%d %H:%M:%S").to_string();
                let micros = a.value(row).rem_euclid(1_000_000);
                if micros != 0 {
                    let frac = format!("{micros:06}");
                    text.push('.');
                    text.push_str(frac.trim_end_matches('0'));
                }
                return if tz.is_some() {
                    format!("{text}+00")
                } else {
                    text
                };
            }
        }
    }
    datafusion::arrow::util::display::array_value_to_string(col, row).unwrap_or_default()
}

/// Reads the key columns of the row groups of `file` whose time range
/// overlaps [lo, hi] (all of them when `range` is None): the table's
/// `columns` (indexes into its columns, ascending), in that order, whatever
/// ALTER TABLE did since the file was written.
pub async fn file_keys(
    store: &Arc<dyn object_store::ObjectStore>,
    table: &TableDef,
    file: &FileDef,
    columns: &[usize],
    time_index: Option<usize>,
    range: Option<(i64, i64)>,
) -> Result<Vec<RecordBatch>> {
    use object_store::ObjectStoreExt;
    let bytes = store
        .get(&object_store::path::Path::from(file.path.as_str()))
        .await
        .map_err(|e| {
            TemporaError::new(
                SqlState::IO_ERROR,
                format!("could not read file \"{}\": {e}", file.path),
            )
        })?
        .bytes()
        .await
        .map_err(internal)?;
    let columns = columns.to_vec();
    let table = table.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<RecordBatch>> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(internal)?;
        let meta = builder.metadata().clone();
        let file_schema = builder.schema().clone();
        let file_time = time_index
            .and_then(|t| crate::columns::file_indices(&table, &file_schema, &[t]))
            .map(|i| i[0]);
        let groups: Vec<usize> = (0..meta.num_row_groups())
            .filter(|g| {
                let (Some(t), Some((lo, hi))) = (file_time, range) else {
                    return true;
                };
                match meta.row_group(*g).column(t).statistics() {
                    Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
                        (Some(min), Some(max)) => *max >= lo && *min <= hi,
                        _ => true,
                    },
                    _ => true,
                }
            })
            .collect();
        if groups.is_empty() {
            return Ok(vec![]);
        }
        crate::columns::read_columns(&table, builder.with_row_groups(groups), &columns)
    })
    .await
    .map_err(internal)?
}

/// The keys of `key` used by rows already stored or buffered (`existing`,
/// batches of key columns in key order).
pub fn key_set(encoder: &KeyEncoder, existing: &[Vec<ArrayRef>]) -> Result<HashSet<OwnedRow>> {
    let mut set = HashSet::new();
    for cols in existing {
        for k in encoder.keys_of(cols)?.into_iter().flatten() {
            set.insert(k);
        }
    }
    Ok(set)
}

/// The type two key columns of a foreign key compare in: their own when
/// they agree, bigint for two integer types, double precision otherwise.
pub fn common_key_type(a: &DataType, b: &DataType) -> DataType {
    if a == b {
        return a.clone();
    }
    if a.is_integer() && b.is_integer() {
        return DataType::Int64;
    }
    if a.is_numeric() && b.is_numeric() {
        return DataType::Float64;
    }
    DataType::Utf8
}

/// Key columns cast to `types`.
pub fn cast_all(columns: &[ArrayRef], types: &[DataType]) -> Result<Vec<ArrayRef>> {
    columns
        .iter()
        .zip(types)
        .map(|(c, t)| {
            if c.data_type() == t {
                Ok(c.clone())
            } else {
                datafusion::arrow::compute::cast(c, t).map_err(internal)
            }
        })
        .collect()
}

/// PostgreSQL's error for a row whose foreign key names no referenced row.
pub fn missing_reference(
    fk: &tempora_catalog::ForeignKey,
    table: &TableDef,
    referenced: &TableDef,
    batch: &RecordBatch,
    row: usize,
) -> TemporaError {
    let values = row_values(table, &fk.columns, batch, row);
    reference_violation(fk, &table.name, &values.join(", "), &referenced.name)
}

/// 23503 for a key (`values`, as details print them) of `table` that
/// `referenced` does not hold.
pub fn reference_violation(
    fk: &tempora_catalog::ForeignKey,
    table: &str,
    values: &str,
    referenced: &str,
) -> TemporaError {
    TemporaError::new(
        SqlState::FOREIGN_KEY_VIOLATION,
        format!(
            "insert or update on table \"{table}\" violates foreign key constraint \"{}\"",
            fk.name
        ),
    )
    .with_detail(format!(
        "Key ({})=({values}) is not present in table \"{referenced}\".",
        fk.columns.join(", "),
    ))
}
