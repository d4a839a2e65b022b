//! Writing memtable rows as Parquet chunk files through the object store.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{
    concat_batches, lexsort_to_indices, take_record_batch, SortColumn,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tempora_catalog::{FileDef, TableDef};
use tempora_common::{Result, SqlState, TemporaError};

fn internal(e: impl std::fmt::Display) -> TemporaError {
    TemporaError::internal(e.to_string())
}

/// Sorts the rows by the time column (hypertables), writes them as one Parquet
/// file at `path` and returns its catalog entry. The file is durable when this returns.
pub async fn write_file(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    table: &TableDef,
    batches: &[RecordBatch],
) -> Result<FileDef> {
    let schema = Arc::new(table.arrow_schema());
    let mut batch = concat_batches(&schema, batches).map_err(internal)?;
    let mut min_time = None;
    let mut max_time = None;
    if let Some(h) = &table.hypertable {
        let idx = table
            .column_index(&h.time_column)
            .ok_or_else(|| TemporaError::undefined_column(&h.time_column))?;
        let indices = lexsort_to_indices(
            &[SortColumn {
                values: batch.column(idx).clone(),
                options: None,
            }],
            None,
        )
        .map_err(internal)?;
        batch = take_record_batch(&batch, &indices).map_err(internal)?;
        let times = crate::memtable::column_as_i64(batch.column(idx))?;
        min_time = times.first().copied().flatten();
        max_time = times.last().copied().flatten();
    }
    let rows = batch.num_rows() as u64;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(internal)?))
        .set_max_row_group_row_count(Some(1 << 17))
        .build();
    let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        let mut writer =
            ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).map_err(internal)?;
        writer.write(&batch).map_err(internal)?;
        writer.close().map_err(internal)?;
        Ok(buf)
    })
    .await
    .map_err(internal)??;
    let size = bytes.len() as u64;
    store
        .put(&Path::from(path), PutPayload::from(bytes))
        .await
        .map_err(|e| {
            TemporaError::new(
                SqlState::IO_ERROR,
                format!("could not write file \"{path}\": {e}"),
            )
        })?;
    Ok(FileDef {
        path: path.to_string(),
        rows,
        bytes: size,
        min_time,
        max_time,
    })
}

/// Reads a whole Parquet file written by [`write_file`].
pub async fn read_file(store: &Arc<dyn ObjectStore>, path: &str) -> Result<Vec<RecordBatch>> {
    let bytes = store
        .get(&Path::from(path))
        .await
        .map_err(|e| {
            TemporaError::new(
                SqlState::IO_ERROR,
                format!("could not read file \"{path}\": {e}"),
            )
        })?
        .bytes()
        .await
        .map_err(|e| {
            TemporaError::new(
                SqlState::IO_ERROR,
                format!("could not read file \"{path}\": {e}"),
            )
        })?;
    tokio::task::spawn_blocking(move || -> Result<Vec<RecordBatch>> {
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes,
            )
            .map_err(internal)?
            .with_batch_size(64 * 1024)
            .build()
            .map_err(internal)?;
        reader
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(internal)
    })
    .await
    .map_err(internal)?
}
