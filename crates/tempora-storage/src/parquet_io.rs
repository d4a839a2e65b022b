//! Writing memtable rows as Parquet chunk files through the object store.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{
    concat_batches, lexsort_to_indices, take_record_batch, SortColumn,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tempora_catalog::{FileDef, TableDef};
use tempora_common::{Result, TemporaError};

fn internal(e: impl std::fmt::Display) -> TemporaError {
    TemporaError::internal(e.to_string())
}

/// Which column statistics a file carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stats {
    /// Files on the ingest path (memtable flush, COPY, row rewrites): min/max
    /// on every column but text ones. Text min/max costs a comparison per
    /// value (about an eighth of bulk-load CPU) and on time-ordered data,
    /// where every row group holds every device, it excludes nothing.
    Ingest,
    /// Files written by background merges: statistics on every column.
    Full,
}

/// Parquet bytes of `batches` (in `schema`) and their row count and time
/// range. Rows are written in time order: batches that already are (the
/// usual case for time-ordered ingest) are written as they come, others are
/// merged and sorted first.
fn encode(
    schema: SchemaRef,
    time_index: Option<usize>,
    batches: Vec<RecordBatch>,
    stats: Stats,
) -> Result<Encoded> {
    let mut batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    let mut min_time = None;
    let mut max_time = None;
    if let Some(idx) = time_index {
        let mut sorted = true;
        let mut last: Option<i64> = None;
        'check: for b in &batches {
            for t in crate::memtable::column_as_i64(b.column(idx))? {
                if t < last {
                    sorted = false;
                    break 'check;
                }
                last = t;
            }
        }
        if !sorted {
            let batch = concat_batches(&schema, &batches).map_err(internal)?;
            let indices = lexsort_to_indices(
                &[SortColumn {
                    values: batch.column(idx).clone(),
                    options: None,
                }],
                None,
            )
            .map_err(internal)?;
            batches = vec![take_record_batch(&batch, &indices).map_err(internal)?];
        }
        let first = |b: &RecordBatch, i: usize| -> Result<Option<i64>> {
            Ok(crate::memtable::column_as_i64(&b.column(idx).slice(i, 1))?[0])
        };
        if let (Some(f), Some(l)) = (batches.first(), batches.last()) {
            min_time = first(f, 0)?;
            max_time = first(l, l.num_rows() - 1)?;
        }
    }
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(internal)?))
        .set_max_row_group_row_count(Some(1 << 17));
    if stats == Stats::Ingest {
        for f in schema.fields() {
            if matches!(
                f.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary
            ) {
                props = props.set_column_statistics_enabled(
                    ColumnPath::from(f.name().as_str()),
                    EnabledStatistics::None,
                );
            }
        }
    }
    let props = props.build();
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, schema, Some(props)).map_err(internal)?;
    for b in &batches {
        writer.write(b).map_err(internal)?;
    }
    writer.close().map_err(internal)?;
    Ok(Encoded {
        bytes: buf,
        rows,
        min_time,
        max_time,
    })
}

/// A file's bytes and what its catalog entry says about them.
struct Encoded {
    bytes: Vec<u8>,
    rows: u64,
    min_time: Option<i64>,
    max_time: Option<i64>,
}

/// Sorts the rows by the time column (hypertables), writes them as one Parquet
/// file at `path` and returns its catalog entry. The file is durable when this returns.
pub async fn write_file(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    table: &TableDef,
    batches: &[RecordBatch],
    stats: Stats,
) -> Result<FileDef> {
    let schema = Arc::new(table.arrow_schema());
    let time_index = match &table.hypertable {
        Some(h) => Some(
            table
                .column_index(&h.time_column)
                .ok_or_else(|| TemporaError::undefined_column(&h.time_column))?,
        ),
        None => None,
    };
    let batches = batches.to_vec();
    // Sorting and encoding are CPU work: keep them off the async workers.
    let Encoded {
        bytes,
        rows,
        min_time,
        max_time,
    } = tokio::task::spawn_blocking(move || encode(schema, time_index, batches, stats))
        .await
        .map_err(internal)??;
    let size = bytes.len() as u64;
    store
        .put(&Path::from(path), PutPayload::from(bytes))
        .await
        .map_err(|e| TemporaError::storage(format!("could not write file \"{path}\""), &e))?;
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
        .map_err(|e| TemporaError::storage(format!("could not read file \"{path}\""), &e))?
        .bytes()
        .await
        .map_err(|e| TemporaError::storage(format!("could not read file \"{path}\""), &e))?;
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
