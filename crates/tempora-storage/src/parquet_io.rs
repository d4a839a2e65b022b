//! Writing memtable rows as Parquet chunk files through the object store.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{
    concat_batches, lexsort_to_indices, take_record_batch, SortColumn, SortOptions,
};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tempora_catalog::{FileDef, TableDef};
use tempora_common::{Result, TemporaError};

fn internal(e: impl std::fmt::Display) -> TemporaError {
    TemporaError::internal(e.to_string())
}

/// How a file's rows are laid out and encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Files on the ingest path (memtable flush, COPY, row rewrites): sorted
    /// by time, min/max on every column but text ones. Text min/max costs a
    /// comparison per value (about an eighth of bulk-load CPU) and on
    /// time-ordered data, where every row group holds every device, it
    /// excludes nothing.
    Ingest,
    /// Files written by background merges: sorted by time, statistics on
    /// every column.
    Merged,
    /// A compressed chunk's files: sorted by the table's segmentby columns,
    /// then its orderby columns, so that each segment's values sit together
    /// and change slowly. Dictionary encoding with delta / byte-stream-split
    /// fallbacks, ZSTD level [`COLUMNSTORE_ZSTD_LEVEL`], page statistics and
    /// bloom filters on the segmentby columns, so that a filter on a segment
    /// reads only its pages.
    Columnstore,
}

impl Layout {
    /// The layout of a file rewritten without some of its rows (DELETE,
    /// UPDATE, upsert): a compressed file stays compressed.
    pub fn rewriting(table: &TableDef, path: &str) -> Layout {
        if table.all_files().any(|f| f.path == path && f.compressed) {
            Layout::Columnstore
        } else {
            Layout::Ingest
        }
    }
}

/// Rows per row group of a columnstore file: a filter on one segment reads
/// the row groups (and, through the page index, the pages) holding it.
const COLUMNSTORE_ROW_GROUP: usize = 1 << 16;
/// Rows per data page of a columnstore file, the unit of page pruning.
const COLUMNSTORE_PAGE_ROWS: usize = 8 * 1024;
const COLUMNSTORE_ZSTD_LEVEL: i32 = 3;

/// The sort keys of a columnstore file: segmentby ascending (nulls last, as
/// PostgreSQL orders them), then orderby, then time descending if orderby
/// does not name it.
fn columnstore_sort(table: &TableDef, batch: &RecordBatch) -> Result<Vec<SortColumn>> {
    let settings = table.compression.clone().unwrap_or_default();
    let mut keys: Vec<(String, SortOptions)> = settings
        .segmentby
        .iter()
        .map(|c| {
            (
                c.clone(),
                SortOptions {
                    descending: false,
                    nulls_first: false,
                },
            )
        })
        .collect();
    for o in &settings.orderby {
        keys.push((
            o.column.clone(),
            SortOptions {
                descending: !o.asc,
                nulls_first: o.nulls_first,
            },
        ));
    }
    if let Some(h) = &table.hypertable {
        if !keys.iter().any(|(c, _)| *c == h.time_column) {
            keys.push((
                h.time_column.clone(),
                SortOptions {
                    descending: true,
                    nulls_first: true,
                },
            ));
        }
    }
    keys.into_iter()
        .map(|(name, options)| {
            let idx = table
                .column_index(&name)
                .ok_or_else(|| TemporaError::undefined_column(&name))?;
            Ok(SortColumn {
                values: batch.column(idx).clone(),
                options: Some(options),
            })
        })
        .collect()
}

fn writer_properties(
    table: &TableDef,
    schema: &SchemaRef,
    layout: Layout,
) -> Result<WriterProperties> {
    let text = |f: &Field| {
        matches!(
            f.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary
        )
    };
    let path = |f: &Field| ColumnPath::from(f.name().as_str());
    let props = match layout {
        Layout::Ingest | Layout::Merged => {
            let mut props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(internal)?))
                .set_max_row_group_row_count(Some(1 << 17));
            if layout == Layout::Ingest {
                for f in schema.fields().iter().filter(|f| text(f)) {
                    props = props.set_column_statistics_enabled(path(f), EnabledStatistics::None);
                }
            }
            props
        }
        Layout::Columnstore => {
            let mut props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(
                    ZstdLevel::try_new(COLUMNSTORE_ZSTD_LEVEL).map_err(internal)?,
                ))
                .set_max_row_group_row_count(Some(COLUMNSTORE_ROW_GROUP))
                .set_data_page_row_count_limit(COLUMNSTORE_PAGE_ROWS)
                .set_statistics_enabled(EnabledStatistics::Page);
            let time = table.hypertable.as_ref().map(|h| h.time_column.as_str());
            let segmentby = table
                .compression
                .as_ref()
                .map(|c| c.segmentby.clone())
                .unwrap_or_default();
            for f in schema.fields() {
                if Some(f.name().as_str()) == time {
                    // Strictly ordered within a segment: deltas, never a dictionary.
                    props = props
                        .set_column_dictionary_enabled(path(f), false)
                        .set_column_encoding(path(f), Encoding::DELTA_BINARY_PACKED);
                    continue;
                }
                // With a dictionary (the default) these are the fallbacks for
                // columns with too many distinct values.
                match f.data_type() {
                    DataType::Int16
                    | DataType::Int32
                    | DataType::Int64
                    | DataType::Date32
                    | DataType::Timestamp(_, _) => {
                        props = props.set_column_encoding(path(f), Encoding::DELTA_BINARY_PACKED);
                    }
                    DataType::Float32 | DataType::Float64 => {
                        props = props.set_column_encoding(path(f), Encoding::BYTE_STREAM_SPLIT);
                    }
                    _ => {}
                }
                if segmentby.contains(f.name()) {
                    props = props.set_column_bloom_filter_enabled(path(f), true);
                }
            }
            props
        }
    };
    Ok(props.build())
}

/// Parquet bytes of `batches` (rows of `table`) laid out as `layout` says,
/// and their row count and time range. In time order (ingest and merges),
/// batches that already are (the usual case for time-ordered ingest) are
/// written as they come, others are merged and sorted first.
fn encode(table: &TableDef, batches: Vec<RecordBatch>, layout: Layout) -> Result<Encoded> {
    let schema: SchemaRef = Arc::new(table.arrow_schema());
    let time_index = match &table.hypertable {
        Some(h) => Some(
            table
                .column_index(&h.time_column)
                .ok_or_else(|| TemporaError::undefined_column(&h.time_column))?,
        ),
        None => None,
    };
    let mut batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    let mut min_time = None;
    let mut max_time = None;
    if let Some(idx) = time_index {
        let mut sorted = true;
        let mut last: Option<i64> = None;
        for b in &batches {
            for t in crate::memtable::column_as_i64(b.column(idx))?
                .into_iter()
                .flatten()
            {
                if Some(t) < last {
                    sorted = false;
                }
                last = Some(t);
                min_time = Some(min_time.map_or(t, |m: i64| m.min(t)));
                max_time = Some(max_time.map_or(t, |m: i64| m.max(t)));
            }
        }
        let sort = match layout {
            Layout::Columnstore => true,
            Layout::Ingest | Layout::Merged => !sorted,
        };
        if sort && !batches.is_empty() {
            let batch = concat_batches(&schema, &batches).map_err(internal)?;
            let keys = match layout {
                Layout::Columnstore => columnstore_sort(table, &batch)?,
                Layout::Ingest | Layout::Merged => vec![SortColumn {
                    values: batch.column(idx).clone(),
                    options: None,
                }],
            };
            let indices = lexsort_to_indices(&keys, None).map_err(internal)?;
            batches = vec![take_record_batch(&batch, &indices).map_err(internal)?];
        }
    }
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    let props = writer_properties(table, &schema, layout)?;
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

/// Writes the rows as one Parquet file at `path`, laid out as `layout`
/// says, and returns its catalog entry. The file is durable when this returns.
pub async fn write_file(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    table: &TableDef,
    batches: &[RecordBatch],
    layout: Layout,
) -> Result<FileDef> {
    let batches = batches.to_vec();
    let table = table.clone();
    // Sorting and encoding are CPU work: keep them off the async workers.
    let Encoded {
        bytes,
        rows,
        min_time,
        max_time,
    } = tokio::task::spawn_blocking(move || encode(&table, batches, layout))
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
        compressed: layout == Layout::Columnstore,
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
