//! Writing memtable rows as Parquet chunk files through the object store.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::{
    concat_batches, interleave_record_batch, lexsort_to_indices, take_record_batch, SortColumn,
    SortOptions,
};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tempora_catalog::{FileDef, FileSeries, TableDef};
use tempora_common::{Result, TemporaError};

use crate::dict_pages::DictFileWriter;

fn internal(e: impl std::fmt::Display) -> TemporaError {
    TemporaError::internal(e.to_string())
}

/// How a file's rows are laid out and encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Files on the ingest path (memtable flush, COPY, row rewrites): sorted
    /// by time (within each series of the table's cluster key first, when
    /// it has one: see [`row_order`]), min/max on every column but text
    /// ones that no index names. Text min/max costs a
    /// comparison per value (about an eighth of bulk-load CPU) and on
    /// time-ordered data, where every row group holds every device, it
    /// excludes nothing.
    Ingest,
    /// Files written by background merges: sorted as ingest files are,
    /// statistics on every column.
    Merged,
    /// A compressed chunk's files: sorted by the table's segmentby columns,
    /// then its orderby columns, so that each segment's values sit together
    /// and change slowly. Dictionary encoding with delta / byte-stream-split
    /// fallbacks, ZSTD level [`COLUMNSTORE_ZSTD_LEVEL`], page statistics and
    /// bloom filters on the segmentby columns: row groups and pages prune on
    /// the segment, pages on time within it.
    ///
    /// Cutting the chunk into time slices sorted by segment within each (so
    /// that row groups prune on time too) was measured on the TSBS queries
    /// and made most of them slower: it cuts every segment's runs short.
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

/// Rows per row group of a columnstore file. A filter on one segment reads
/// the pages holding it through the page index; every row group read costs
/// its own ZSTD contexts and statistics, so fewer are cheaper (64k-row groups
/// made the TSBS queries 5-15 % slower).
const COLUMNSTORE_ROW_GROUP: usize = 1 << 17;
/// Rows per data page of a columnstore file, the unit of page pruning.
const COLUMNSTORE_PAGE_ROWS: usize = 8 * 1024;
const COLUMNSTORE_ZSTD_LEVEL: i32 = 3;
/// Sorted rows of a columnstore file that [`columns_without_codec`] encodes
/// to see how much ZSTD shrinks each column.
const CODEC_SAMPLE_ROWS: usize = 32 * 1024;
/// A column that ZSTD shrinks by less than this share of its encoded bytes
/// is stored without it (a columnstore file's column, an ingest or merged
/// file's column chunk): the bytes saved are not worth
/// decompressing every page on every read.
pub(crate) const MIN_ZSTD_SAVING: f64 = 0.2;

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

/// Rows per data page of an ingest or merged file of a table with a
/// cluster key: a filter on one series decodes about a page per column.
pub const CLUSTERED_PAGE_ROWS: usize = 8 * 1024;

/// The row order of ingest and merged files of a hypertable: by time, or
/// with a cluster key ([`TableDef::cluster_key`], from an index such as
/// `(hostname, time DESC)`), by the key's columns, then time. Each file
/// still covers the time slice of the rows it was written with, so time
/// ranges prune files as before; within a file each series' rows sit
/// together and row group and page statistics find them. The order is
/// given as (batch, row) positions, which the writer gathers a slice at a
/// time, so that no sorted copy of all the rows is ever held. `None`: no
/// sort needed (no cluster key, rows already in time order).
fn row_order(
    table: &TableDef,
    batches: &[RecordBatch],
    time_index: usize,
    time_sorted: bool,
) -> Result<Option<Vec<(usize, usize)>>> {
    let key = table.cluster_key();
    if key.is_empty() && time_sorted {
        return Ok(None);
    }
    let mut columns: Vec<usize> = key
        .iter()
        .map(|c| {
            table
                .column_index(c)
                .ok_or_else(|| TemporaError::undefined_column(c))
        })
        .collect::<Result<_>>()?;
    columns.push(time_index);
    let schema = batches[0].schema();
    let converter = RowConverter::new(
        columns
            .iter()
            .map(|&i| SortField::new(schema.field(i).data_type().clone()))
            .collect(),
    )
    .map_err(internal)?;
    let mut rows = converter.empty_rows(0, 0);
    for b in batches {
        let keys: Vec<ArrayRef> = columns.iter().map(|&i| b.column(i).clone()).collect();
        converter.append(&mut rows, &keys).map_err(internal)?;
    }
    // Stable: rows of the same series and time keep the order they came in.
    let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
    order.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    drop(rows);
    let positions: Vec<(usize, usize)> = batches
        .iter()
        .enumerate()
        .flat_map(|(b, batch)| (0..batch.num_rows()).map(move |r| (b, r)))
        .collect();
    Ok(Some(
        order.into_iter().map(|i| positions[i as usize]).collect(),
    ))
}

/// Rows per batch the writer gathers from a [`row_order`].
const GATHER_ROWS: usize = 64 * 1024;

/// The writer's settings for a file of `table` laid out as `layout`;
/// `without_codec` are columnstore columns stored without ZSTD (see
/// [`columns_without_codec`]).
fn writer_properties(
    table: &TableDef,
    schema: &SchemaRef,
    layout: Layout,
    without_codec: &[ColumnPath],
    without_bounds: &[String],
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
            if !table.cluster_key().is_empty() {
                props = props.set_data_page_row_count_limit(CLUSTERED_PAGE_ROWS);
            }
            if layout == Layout::Ingest {
                // Text statistics cost ingest time; an indexed column keeps
                // them, so that filters on it prune files and row groups.
                let indexed = |name: &str| {
                    table
                        .all_indexes()
                        .iter()
                        .any(|i| i.columns.iter().any(|c| !c.expression && c.column == name))
                };
                for f in schema
                    .fields()
                    .iter()
                    .filter(|f| text(f) && !indexed(f.name()))
                {
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
                // columns with too many distinct values. Dictionaries stay on
                // for floats: byte-stream-split alone made the TSBS metrics
                // 25 % smaller but decoding them twice as slow.
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
            for c in without_codec {
                props = props.set_column_compression(c.clone(), Compression::UNCOMPRESSED);
            }
            // Float columns holding a NaN: Parquet's bounds leave NaN out,
            // SQL finds it above every number, so no bounds at all.
            for name in without_bounds {
                props = props.set_column_statistics_enabled(
                    ColumnPath::from(name.as_str()),
                    EnabledStatistics::None,
                );
            }
            props
        }
    };
    Ok(props.build())
}

/// The leaf columns of a columnstore file that ZSTD would shrink by less
/// than [`MIN_ZSTD_SAVING`], judged by encoding the first
/// [`CODEC_SAMPLE_ROWS`] of its sorted rows. Dictionary indices of
/// high-entropy values (the TSBS metrics, random walks: ZSTD saved 10 % of
/// their bytes) gain little from it, while decompressing every page they
/// fill was a fifth of a scan's decoding; stored raw, reading them is a copy.
/// Byte-stream-split floats, deltas of irregular integers and text keep it.
fn columns_without_codec(
    table: &TableDef,
    schema: &SchemaRef,
    sorted: &RecordBatch,
) -> Result<Vec<ColumnPath>> {
    let sample = sorted.slice(0, sorted.num_rows().min(CODEC_SAMPLE_ROWS));
    let props = writer_properties(table, schema, Layout::Columnstore, &[], &[])?;
    let mut writer =
        ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).map_err(internal)?;
    writer.write(&sample).map_err(internal)?;
    let meta = writer.close().map_err(internal)?;
    let Some(first) = meta.row_groups().first() else {
        return Ok(Vec::new());
    };
    Ok((0..first.num_columns())
        .filter(|&i| {
            let (packed, raw) = meta.row_groups().iter().fold((0i64, 0i64), |(c, u), rg| {
                let col = rg.column(i);
                (c + col.compressed_size(), u + col.uncompressed_size())
            });
            raw > 0 && (packed as f64) > (raw as f64) * (1.0 - MIN_ZSTD_SAVING)
        })
        .map(|i| first.column(i).column_path().clone())
        .collect())
}

/// The writer's settings for a file of `table` laid out as `layout` whose
/// rows start with `first` (sorted, for a columnstore file: they decide
/// which columns go without ZSTD) and whose float columns named in `nan`
/// hold a NaN (a columnstore file writes no bounds for them; ingest and
/// merged files decide this chunk by chunk, see `dict_pages`).
fn file_properties(
    table: &TableDef,
    schema: &SchemaRef,
    layout: Layout,
    first: Option<&RecordBatch>,
    nan: &[String],
) -> Result<WriterProperties> {
    let without_codec = match (layout, first) {
        (Layout::Columnstore, Some(sorted)) => columns_without_codec(table, schema, sorted)?,
        _ => Vec::new(),
    };
    writer_properties(table, schema, layout, &without_codec, nan)
}

/// Names of the columns of `batches` holding a NaN.
fn columns_with_nan(schema: &SchemaRef, batches: &[RecordBatch]) -> Vec<String> {
    (0..schema.fields().len())
        .filter(|&i| {
            batches
                .iter()
                .any(|b| crate::dict_pages::has_nan(b.column(i)))
        })
        .map(|i| schema.field(i).name().clone())
        .collect()
}

/// Float columns that may hold a NaN in the Parquet files whose footers
/// are `footers`: a chunk of theirs was written without bounds although not
/// all null (what `dict_pages` and [`file_properties`] do for a NaN). Files
/// written before Tempora did so carry bounds that leave NaN out and are not
/// found here.
fn columns_with_nan_in_files(
    footers: &[Arc<datafusion::parquet::file::metadata::ParquetMetaData>],
) -> Vec<String> {
    use datafusion::parquet::basic::Type as PhysicalType;
    let mut names = std::collections::BTreeSet::new();
    for footer in footers {
        for group in footer.row_groups() {
            for c in group.columns() {
                if !matches!(c.column_type(), PhysicalType::DOUBLE | PhysicalType::FLOAT) {
                    continue;
                }
                let bounded = c.statistics().is_some_and(|s| {
                    s.min_bytes_opt().is_some() || s.null_count_opt() == Some(c.num_values() as u64)
                });
                if !bounded {
                    names.insert(c.column_descr().name().to_string());
                }
            }
        }
    }
    names.into_iter().collect()
}

/// Parquet bytes of `batches` (rows of `table`) laid out as `layout` says,
/// and their row count and time range. In time order (ingest and merges),
/// batches that already are (the usual case for time-ordered ingest) are
/// written as they come, others are merged and sorted first.
fn encode(table: &TableDef, batches: Vec<RecordBatch>, layout: Layout) -> Result<Encoded> {
    let schema: SchemaRef = Arc::new(table.arrow_schema());
    // Rows read from files older than an ALTER TABLE take the current layout.
    let batches = batches
        .iter()
        .map(|b| crate::columns::conform(table, b))
        .collect::<Result<Vec<_>>>()?;
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
    // The order to write the rows in, when not as they come.
    let mut order = None;
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
        if !batches.is_empty() {
            match layout {
                Layout::Columnstore => {
                    let batch = concat_batches(&schema, &batches).map_err(internal)?;
                    let keys = columnstore_sort(table, &batch)?;
                    let indices = lexsort_to_indices(&keys, None).map_err(internal)?;
                    batches = vec![take_record_batch(&batch, &indices).map_err(internal)?];
                }
                Layout::Ingest | Layout::Merged => order = row_order(table, &batches, idx, sorted)?,
            }
        }
    }
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    let mut series = SeriesValues::new(table);
    let nan = match layout {
        Layout::Columnstore => columns_with_nan(&schema, &batches),
        Layout::Ingest | Layout::Merged => Vec::new(),
    };
    let props = file_properties(table, &schema, layout, batches.first(), &nan)?;
    let mut buf = Vec::new();
    let mut writer = FileWriter::try_new(&mut buf, schema, props, layout)?;
    match order {
        Some(order) => {
            let sources: Vec<&RecordBatch> = batches.iter().collect();
            for slice in order.chunks(GATHER_ROWS) {
                let batch = interleave_record_batch(&sources, slice).map_err(internal)?;
                series.add(&batch);
                writer.write(&batch)?;
            }
        }
        None => {
            for b in &batches {
                series.add(b);
                writer.write(b)?;
            }
        }
    }
    writer.close()?;
    Ok(Encoded {
        bytes: buf,
        rows,
        min_time,
        max_time,
        series: series.finish(),
    })
}

/// The writer of one file: Tempora's own dictionary pages for text and
/// float columns of ingest and merged files (`dict_pages`), the Parquet
/// writer's encoders for columnstore files, whose fallback encodings (deltas,
/// byte-stream-split) are chosen per column. One lives per file written,
/// on the stack of the encoding task: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum FileWriter<W: std::io::Write + Send> {
    Arrow(ArrowWriter<W>),
    Dict(DictFileWriter<W>),
}

impl<W: std::io::Write + Send> FileWriter<W> {
    fn try_new(
        out: W,
        schema: SchemaRef,
        props: WriterProperties,
        layout: Layout,
    ) -> Result<FileWriter<W>> {
        Ok(match layout {
            Layout::Columnstore => {
                FileWriter::Arrow(ArrowWriter::try_new(out, schema, Some(props)).map_err(internal)?)
            }
            Layout::Ingest | Layout::Merged => {
                FileWriter::Dict(DictFileWriter::try_new(out, schema, props).map_err(internal)?)
            }
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            FileWriter::Arrow(w) => w.write(batch),
            FileWriter::Dict(w) => w.write(batch),
        }
        .map_err(internal)
    }

    fn close(self) -> Result<()> {
        match self {
            FileWriter::Arrow(w) => w.close().map(drop),
            FileWriter::Dict(w) => w.close(),
        }
        .map_err(internal)
    }
}

/// A file's bytes and what its catalog entry says about them.
struct Encoded {
    bytes: Vec<u8>,
    rows: u64,
    min_time: Option<i64>,
    max_time: Option<i64>,
    series: Option<FileSeries>,
}

/// Collects the distinct values of a table's series column
/// ([`TableDef::series_column`]) over the batches of one file, in the
/// order the file holds its rows, with the newest time and the row count of
/// each; the counts are kept when each value's rows are one run and the runs
/// come in the values' sorted order ([`FileSeries::counts`]).
struct SeriesValues {
    /// The column's id and index, and the time column's index; None once
    /// there is nothing to record.
    columns: Option<(u32, usize, usize)>,
    /// Each value's newest time and rows; NULL's apart, so that a value is
    /// looked up by `&str` and copied only when first seen (ingest files
    /// come in arrival order, a run per row).
    values: std::collections::HashMap<String, (i64, u64)>,
    null: Option<(i64, u64)>,
    /// The value of the last run noted, while every run so far came after
    /// the one before it (None before the first run).
    last: Option<Option<String>>,
    in_order: bool,
}

impl SeriesValues {
    fn new(table: &TableDef) -> SeriesValues {
        let time = table
            .hypertable
            .as_ref()
            .and_then(|h| table.column_index(&h.time_column));
        let columns = table
            .series_column()
            .and_then(|c| Some((c.id, table.column_index(&c.name)?, time?)));
        SeriesValues {
            columns,
            values: Default::default(),
            null: None,
            last: None,
            in_order: true,
        }
    }

    /// Adds the rows of `batch` (in the table's layout), which follow those
    /// added before it in the file.
    fn add(&mut self, batch: &RecordBatch) {
        use datafusion::arrow::array::AsArray;
        let Some((_, index, time)) = self.columns else {
            return;
        };
        let times = crate::memtable::column_as_i64(batch.column(time));
        let (Some(array), Ok(times)) = (batch.column(index).as_string_opt::<i32>(), times) else {
            self.columns = None;
            return;
        };
        // Files are mostly sorted by this column: look up each run once.
        let mut run: Option<(Option<&str>, i64, u64)> = None;
        for (v, t) in array.iter().zip(times) {
            let Some(t) = t else {
                self.columns = None;
                return;
            };
            match &mut run {
                Some((value, newest, rows)) if *value == v => {
                    *newest = (*newest).max(t);
                    *rows += 1;
                }
                _ => {
                    if let Some((value, newest, rows)) = run.replace((v, t, 1)) {
                        self.note(value, newest, rows);
                    }
                }
            }
        }
        if let Some((value, newest, rows)) = run {
            self.note(value, newest, rows);
        }
    }

    /// Notes a run of `rows` rows holding `value`.
    fn note(&mut self, value: Option<&str>, time: i64, rows: u64) {
        if self.columns.is_none() {
            return;
        }
        if self.in_order {
            // A run of the value before continues it (batches cut runs).
            match &self.last {
                Some(last) if last.as_deref() > value => self.in_order = false,
                Some(last) if last.as_deref() == value => {}
                _ => self.last = Some(value.map(str::to_string)),
            }
        }
        let entry = match value {
            None => self.null.get_or_insert((time, 0)),
            Some(v) => match self.values.get_mut(v) {
                Some(entry) => entry,
                None => self.values.entry(v.to_string()).or_insert((time, 0)),
            },
        };
        entry.0 = entry.0.max(time);
        entry.1 += rows;
        if self.values.len() + usize::from(self.null.is_some()) > FileSeries::MAX_VALUES {
            self.columns = None;
            self.values.clear();
        }
    }

    fn finish(self) -> Option<FileSeries> {
        let (column, _, _) = self.columns?;
        let mut sorted: Vec<(String, (i64, u64))> = self.values.into_iter().collect();
        sorted.sort_unstable();
        let entries: Vec<(Option<String>, (i64, u64))> = self
            .null
            .map(|e| (None, e))
            .into_iter()
            .chain(sorted.into_iter().map(|(v, e)| (Some(v), e)))
            .collect();
        let counts = match self.in_order {
            true => entries.iter().map(|(_, (_, rows))| *rows).collect(),
            false => Vec::new(),
        };
        let (values, newest) = entries.into_iter().map(|(v, (t, _))| (v, t)).unzip();
        Some(FileSeries {
            column,
            values: Arc::new(values),
            newest: Arc::new(newest),
            counts: Arc::new(counts),
        })
    }
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
    let encoded = tokio::task::spawn_blocking(move || encode(&table, batches, layout))
        .await
        .map_err(internal)??;
    put_encoded(store, path, encoded, layout == Layout::Columnstore).await
}

/// Stores an encoded file (durable when this returns) and returns its
/// catalog entry.
async fn put_encoded(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    encoded: Encoded,
    compressed: bool,
) -> Result<FileDef> {
    let Encoded {
        bytes,
        rows,
        min_time,
        max_time,
        series,
    } = encoded;
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
        compressed,
        series,
    })
}

/// A file's bytes.
async fn get_bytes(store: &Arc<dyn ObjectStore>, path: &str) -> Result<bytes::Bytes> {
    let read_error = |e: object_store::Error| {
        TemporaError::storage(format!("could not read file \"{path}\""), &e)
    };
    store
        .get(&Path::from(path))
        .await
        .map_err(read_error)?
        .bytes()
        .await
        .map_err(read_error)
}

/// Rows compressed in one pass: a chunk with more is compressed a group of
/// segments at a time, so that memory stays bounded whatever the chunk's size
/// (about 250 bytes of Arrow data per row of the TSBS table, twice that while
/// sorting).
pub const COLUMNSTORE_PASS_ROWS: u64 = 2 << 20;

/// Writes the rows of the Parquet files at `sources` (the files of one
/// chunk) as one columnstore file at `path` and returns its catalog entry;
/// durable when this returns.
///
/// Up to `pass_rows` rows, every row is read, sorted and written at once.
/// Beyond, a first pass counts the rows of each segment (reading only the
/// segmentby columns), and then each run of consecutive segments holding at
/// most `pass_rows` rows (or one larger segment) is read from every source,
/// sorted and appended: the file is sorted as a whole, memory holds one
/// group. A table without segmentby columns is sorted in one pass.
pub async fn write_columnstore_file(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    table: &TableDef,
    sources: &[String],
    pass_rows: u64,
) -> Result<FileDef> {
    let mut inputs = Vec::with_capacity(sources.len());
    for source in sources {
        inputs.push(get_bytes(store, source).await?);
    }
    let table = table.clone();
    let name = path.to_string();
    let encoded =
        tokio::task::spawn_blocking(move || encode_columnstore(&table, &inputs, pass_rows, &name))
            .await
            .map_err(internal)??;
    put_encoded(store, path, encoded, true).await
}

/// Reads Parquet bytes, every column, in the file's own layout.
fn read_batches(
    bytes: &bytes::Bytes,
) -> Result<datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
        .map_err(internal)?
        .with_batch_size(64 * 1024)
        .build()
        .map_err(internal)
}

fn encode_columnstore(
    table: &TableDef,
    inputs: &[bytes::Bytes],
    pass_rows: u64,
    name: &str,
) -> Result<Encoded> {
    use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
    let schema: SchemaRef = Arc::new(table.arrow_schema());
    let segment_columns: Vec<usize> = table
        .compression
        .as_ref()
        .map(|c| {
            c.segmentby
                .iter()
                .filter_map(|s| table.column_index(s))
                .collect()
        })
        .unwrap_or_default();
    let read_all =
        |keep: &dyn Fn(&RecordBatch) -> Result<RecordBatch>| -> Result<Vec<RecordBatch>> {
            let mut out = Vec::new();
            for bytes in inputs {
                for b in read_batches(bytes)? {
                    let b = keep(&crate::columns::conform(table, &b.map_err(internal)?)?)?;
                    if b.num_rows() > 0 {
                        out.push(b);
                    }
                }
            }
            Ok(out)
        };
    let footers = inputs
        .iter()
        .map(|b| {
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                b.clone(),
            )
            .map(|r| r.metadata().clone())
            .map_err(internal)
        })
        .collect::<Result<Vec<_>>>()?;
    let total: u64 = footers
        .iter()
        .map(|m| m.file_metadata().num_rows() as u64)
        .sum();
    if total <= pass_rows || segment_columns.is_empty() {
        let batches = read_all(&|b| Ok(b.clone()))?;
        return encode(table, batches, Layout::Columnstore);
    }
    // Pass 1: rows per segment, in segment order.
    let fields: Vec<SortField> = segment_columns
        .iter()
        .map(|&i| {
            SortField::new_with_options(
                schema.field(i).data_type().clone(),
                SortOptions {
                    descending: false,
                    nulls_first: false,
                },
            )
        })
        .collect();
    let converter = RowConverter::new(fields).map_err(internal)?;
    let mut counts: std::collections::BTreeMap<OwnedRow, u64> = Default::default();
    for bytes in inputs {
        let builder =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes.clone(),
            )
            .map_err(internal)?
            .with_batch_size(64 * 1024);
        for b in crate::columns::read_columns(table, builder, &segment_columns)? {
            let rows = converter.convert_columns(b.columns()).map_err(internal)?;
            for r in rows.iter() {
                *counts.entry(r.owned()).or_default() += 1;
            }
        }
    }
    // Consecutive segments, at most `pass_rows` rows a group (or one segment).
    let mut groups: Vec<(OwnedRow, OwnedRow)> = Vec::new();
    let mut current: Option<(OwnedRow, OwnedRow, u64)> = None;
    for (key, n) in counts {
        current = match current {
            Some((first, _, rows)) if rows + n <= pass_rows => Some((first, key, rows + n)),
            Some((first, last, _)) => {
                groups.push((first, last));
                Some((key.clone(), key, n))
            }
            None => Some((key.clone(), key, n)),
        };
    }
    if let Some((first, last, _)) = current {
        groups.push((first, last));
    }
    tracing::info!(
        file = name,
        rows = total,
        passes = groups.len(),
        "compressing in passes"
    );
    // Pass 2..: each group read, sorted and appended. The first group's
    // rows decide which columns go without ZSTD.
    let mut writer: Option<ArrowWriter<Vec<u8>>> = None;
    let (mut rows, mut min_time, mut max_time) = (0u64, None::<i64>, None::<i64>);
    let mut series = SeriesValues::new(table);
    let time_index = table
        .hypertable
        .as_ref()
        .and_then(|h| table.column_index(&h.time_column));
    for (n, (first, last)) in groups.iter().enumerate() {
        let keep = |b: &RecordBatch| -> Result<RecordBatch> {
            let keys: Vec<ArrayRef> = segment_columns
                .iter()
                .map(|&i| b.column(i).clone())
                .collect();
            let converted = converter.convert_columns(&keys).map_err(internal)?;
            let mask: datafusion::arrow::array::BooleanArray = converted
                .iter()
                .map(|r| Some(r >= first.row() && r <= last.row()))
                .collect();
            datafusion::arrow::compute::filter_record_batch(b, &mask).map_err(internal)
        };
        let batches = read_all(&keep)?;
        if batches.is_empty() {
            continue;
        }
        let batch = concat_batches(&schema, &batches).map_err(internal)?;
        drop(batches);
        let indices =
            lexsort_to_indices(&columnstore_sort(table, &batch)?, None).map_err(internal)?;
        let sorted = take_record_batch(&batch, &indices).map_err(internal)?;
        drop(batch);
        if let Some(i) = time_index {
            for t in crate::memtable::column_as_i64(sorted.column(i))?
                .into_iter()
                .flatten()
            {
                min_time = Some(min_time.map_or(t, |m| m.min(t)));
                max_time = Some(max_time.map_or(t, |m| m.max(t)));
            }
        }
        rows += sorted.num_rows() as u64;
        series.add(&sorted);
        let w = match &mut writer {
            Some(w) => w,
            None => {
                let nan = columns_with_nan_in_files(&footers);
                let props =
                    file_properties(table, &schema, Layout::Columnstore, Some(&sorted), &nan)?;
                writer.insert(
                    ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))
                        .map_err(internal)?,
                )
            }
        };
        w.write(&sorted).map_err(internal)?;
        tracing::info!(
            file = name,
            pass = n + 1,
            of = groups.len(),
            rows,
            "compression progress"
        );
    }
    let writer = match writer {
        Some(w) => w,
        None => {
            let props = file_properties(table, &schema, Layout::Columnstore, None, &[])?;
            ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).map_err(internal)?
        }
    };
    Ok(Encoded {
        bytes: writer.into_inner().map_err(internal)?,
        rows,
        min_time,
        max_time,
        series: series.finish(),
    })
}

/// A reader of a table file's rows, batch by batch.
pub async fn open_reader(
    store: &Arc<dyn ObjectStore>,
    path: &str,
) -> Result<datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
    read_batches(&get_bytes(store, path).await?)
}

/// The next batches of `reader`, about `rows` rows (none at the end).
pub fn next_rows(
    reader: &mut datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    rows: u64,
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    let mut n = 0u64;
    while n < rows {
        match reader.next() {
            Some(b) => {
                let b = b.map_err(internal)?;
                n += b.num_rows() as u64;
                out.push(b);
            }
            None => break,
        }
    }
    Ok(out)
}

/// Reads a whole Parquet file written by [`write_file`].
pub async fn read_file(store: &Arc<dyn ObjectStore>, path: &str) -> Result<Vec<RecordBatch>> {
    let reader = open_reader(store, path).await?;
    tokio::task::spawn_blocking(move || -> Result<Vec<RecordBatch>> {
        reader
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(internal)
    })
    .await
    .map_err(internal)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int32Array, TimestampMicrosecondArray};
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    use datafusion::parquet::file::serialized_reader::ReadOptionsBuilder;
    use tempora_catalog::{
        ColumnDef, CompressionSettings, HypertableDef, OrderByColumn, PgType, TableDef,
    };

    fn table() -> TableDef {
        TableDef {
            oid: 1,
            schema: "public".into(),
            name: "m".into(),
            columns: vec![
                ColumnDef::new(1, "time", PgType::Timestamptz),
                ColumnDef::new(2, "device", PgType::Int4),
                ColumnDef::new(3, "v", PgType::Float8),
            ],
            hypertable: Some(HypertableDef {
                id: 1,
                time_column: "time".into(),
                chunk_interval: 1_000_000_000,
                space_dimensions: vec![],
                dimension_ids: vec![],
                integer_now_func: None,
            }),
            chunks: Default::default(),
            files: vec![],
            indexes: vec![],
            next_column_id: 0,
            comment: None,
            foreign_keys: vec![],
            unique_keys: vec![],
            compression: Some(CompressionSettings {
                segmentby: vec!["device".into()],
                orderby: vec![OrderByColumn {
                    column: "time".into(),
                    asc: false,
                    nulls_first: true,
                }],
                orderby_default: false,
            }),
        }
    }

    /// Every row of an encoded file, as one batch.
    fn read_back(table: &TableDef, bytes: bytes::Bytes) -> RecordBatch {
        let read: Vec<RecordBatch> =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes,
            )
            .unwrap()
            .build()
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        concat_batches(&Arc::new(table.arrow_schema()), &read).unwrap()
    }

    /// `rows` rows in time order, devices interleaved, as ingest writes them.
    fn batch(table: &TableDef, rows: i64) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(table.arrow_schema()),
            vec![
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values((0..rows).map(|i| i / 10))
                        .with_timezone("UTC"),
                ),
                Arc::new(Int32Array::from_iter_values(
                    (0..rows).map(|i| (i % 10) as i32),
                )),
                Arc::new(Float64Array::from_iter_values((0..rows).map(|i| i as f64))),
            ],
        )
        .unwrap()
    }

    /// Ingest files leave text columns without statistics unless an index
    /// names them.
    #[test]
    fn ingest_files_keep_statistics_of_indexed_text_columns() {
        use datafusion::arrow::array::StringArray;
        let mut t = table();
        t.compression = None;
        t.columns[1].ty = PgType::Text;
        let rows = 100;
        let batch = RecordBatch::try_new(
            Arc::new(t.arrow_schema()),
            vec![
                Arc::new(TimestampMicrosecondArray::from_iter_values(0..rows).with_timezone("UTC")),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("host_{}", i % 7)),
                )),
                Arc::new(Float64Array::from_iter_values((0..rows).map(|i| i as f64))),
            ],
        )
        .unwrap();
        let has_stats = |t: &TableDef| {
            let encoded = encode(t, vec![batch.clone()], Layout::Ingest).unwrap();
            let reader = SerializedFileReader::new(bytes::Bytes::from(encoded.bytes)).unwrap();
            let meta = reader.metadata();
            meta.row_group(0).column(1).statistics().is_some()
        };
        assert!(!has_stats(&t));
        t.indexes.push(tempora_catalog::IndexDef {
            name: "t_device_time_idx".into(),
            columns: vec![tempora_catalog::IndexColumn {
                column: "device".into(),
                expression: false,
                desc: false,
                nulls_first: None,
            }],
            unique: false,
            method: "btree".into(),
            include: vec![],
            predicate: None,
        });
        assert!(has_stats(&t));
    }

    /// A column whose encoded pages ZSTD cannot shrink (dictionary indices of
    /// random values) is stored without it; one it shrinks keeps it.
    #[test]
    fn columnstore_stores_incompressible_columns_without_zstd() {
        let table = table();
        let rows = 100_000;
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let random: Vec<f64> = (0..rows)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 101) as f64
            })
            .collect();
        let periodic: Vec<f64> = (0..rows).map(|i| ((i / 7) % 3) as f64).collect();
        for (values, raw) in [(random, true), (periodic, false)] {
            let batch = with_values(&batch(&table, rows as i64), values.clone());
            let encoded = encode(&table, vec![batch], Layout::Columnstore).unwrap();
            let bytes = bytes::Bytes::from(encoded.bytes);
            let reader = SerializedFileReader::new(bytes.clone()).unwrap();
            for rg in reader.metadata().row_groups() {
                assert_eq!(rg.column(2).compression() == Compression::UNCOMPRESSED, raw);
                // The time column's deltas compress.
                assert_ne!(rg.column(0).compression(), Compression::UNCOMPRESSED);
            }
            let all = read_back(&table, bytes);
            let mut read: Vec<f64> = all
                .column(2)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .values()
                .to_vec();
            let mut values = values;
            read.sort_by(f64::total_cmp);
            values.sort_by(f64::total_cmp);
            assert_eq!(read, values);
        }
    }

    /// Every row comes back, sorted by device, then time descending;
    /// statistics, the page index and bloom filters (on the segmentby column
    /// only) are there.
    #[test]
    fn columnstore_files_are_sorted_by_segment_then_orderby() {
        let table = table();
        let rows = 3 * COLUMNSTORE_ROW_GROUP as i64 - 1000;
        let encoded = encode(&table, vec![batch(&table, rows)], Layout::Columnstore).unwrap();
        assert_eq!(encoded.rows, rows as u64);
        assert_eq!(
            (encoded.min_time, encoded.max_time),
            (Some(0), Some((rows - 1) / 10))
        );

        let bytes = bytes::Bytes::from(encoded.bytes);
        let reader = SerializedFileReader::new_with_options(
            bytes.clone(),
            ReadOptionsBuilder::new().with_page_index().build(),
        )
        .unwrap();
        let meta = reader.metadata();
        assert_eq!(meta.num_row_groups(), 3);
        assert!(meta.column_index().is_some() && meta.offset_index().is_some());
        for rg in meta.row_groups() {
            assert!(rg.column(1).statistics().is_some());
            assert!(
                rg.column(1).bloom_filter_offset().is_some(),
                "no bloom filter on device"
            );
            assert!(rg.column(2).bloom_filter_offset().is_none());
        }

        let all = read_back(&table, bytes);
        assert_eq!(all.num_rows() as i64, rows);
        let times = crate::memtable::column_as_i64(all.column(0)).unwrap();
        let devices = all.column(1).as_any().downcast_ref::<Int32Array>().unwrap();
        let values = all
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        // Same rows: v identifies a row, and (time, device) follow from it.
        let mut seen = vec![false; rows as usize];
        for (i, time) in times.iter().enumerate() {
            let v = values.value(i) as i64;
            assert_eq!(*time, Some(v / 10));
            assert_eq!(devices.value(i) as i64, v % 10);
            assert!(!std::mem::replace(&mut seen[v as usize], true));
        }
        // Device ascending, then time descending.
        for i in 1..all.num_rows() {
            let (d0, d1) = (devices.value(i - 1), devices.value(i));
            assert!(d0 < d1 || (d0 == d1 && times[i - 1] > times[i]), "row {i}");
        }
    }

    /// With an index led by a column other than time, ingest and merged
    /// files are sorted by that column, then time, in pages small enough
    /// for the page index to find one series.
    #[test]
    fn files_are_clustered_by_an_index_on_a_series_column() {
        let mut table = table();
        table.compression = None;
        table.indexes.push(tempora_catalog::IndexDef {
            name: "t_device_time_idx".into(),
            columns: ["device", "time"]
                .into_iter()
                .map(|c| tempora_catalog::IndexColumn {
                    column: c.into(),
                    expression: false,
                    desc: c == "time",
                    nulls_first: None,
                })
                .collect(),
            unique: false,
            method: "btree".into(),
            include: vec![],
            predicate: None,
        });
        assert_eq!(table.cluster_key(), vec!["device".to_string()]);
        let rows = 100_000;
        let all = batch(&table, rows);
        // Two batches, each in time order, as a merge reads two files.
        let first = all.slice(0, 40_000);
        let second = all.slice(40_000, 60_000);
        for layout in [Layout::Ingest, Layout::Merged] {
            let encoded = encode(&table, vec![second.clone(), first.clone()], layout).unwrap();
            assert_eq!(encoded.rows, rows as u64);
            let bytes = bytes::Bytes::from(encoded.bytes);
            let reader = SerializedFileReader::new_with_options(
                bytes.clone(),
                ReadOptionsBuilder::new().with_page_index().build(),
            )
            .unwrap();
            let pages = &reader.metadata().offset_index().unwrap()[0][1];
            assert!(
                pages.page_locations().len() >= rows as usize / CLUSTERED_PAGE_ROWS,
                "{} pages",
                pages.page_locations().len()
            );
            let read = read_back(&table, bytes);
            let times = crate::memtable::column_as_i64(read.column(0)).unwrap();
            let devices = read
                .column(1)
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap();
            let values = read
                .column(2)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap();
            let mut seen = vec![false; rows as usize];
            for i in 0..read.num_rows() {
                let v = values.value(i) as i64;
                assert!(!std::mem::replace(&mut seen[v as usize], true));
                assert_eq!(devices.value(i) as i64, v % 10);
                if i > 0 {
                    let (d0, d1) = (devices.value(i - 1), devices.value(i));
                    assert!(d0 < d1 || (d0 == d1 && times[i - 1] <= times[i]), "row {i}");
                }
            }
        }
    }

    /// Ingest files stay in time order whatever order rows come in.
    #[test]
    fn ingest_files_are_sorted_by_time() {
        let table = table();
        let b = batch(&table, 1000);
        let reversed = take_record_batch(
            &b,
            &datafusion::arrow::array::UInt32Array::from_iter_values((0..1000).rev()),
        )
        .unwrap();
        let encoded = encode(&table, vec![reversed], Layout::Ingest).unwrap();
        let read: Vec<RecordBatch> =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes::Bytes::from(encoded.bytes),
            )
            .unwrap()
            .build()
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        let times: Vec<Option<i64>> = read
            .iter()
            .flat_map(|b| crate::memtable::column_as_i64(b.column(0)).unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    /// A chunk larger than one pass is compressed a group of segments at a
    /// time into the same file a single pass writes.
    #[tokio::test]
    async fn compressing_in_passes_writes_what_one_pass_writes() {
        let table = table();
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let rows = 20_000;
        let sources = write_sources(&store, &table, &batch(&table, rows)).await;
        let one = write_columnstore_file(&store, "one.parquet", &table, &sources, u64::MAX)
            .await
            .unwrap();
        // Ten devices of 2,000 rows: passes of at most 4,500 rows hold two each.
        let many = write_columnstore_file(&store, "many.parquet", &table, &sources, 4_500)
            .await
            .unwrap();
        assert_eq!((one.rows, many.rows), (rows as u64, rows as u64));
        assert_eq!((one.min_time, one.max_time), (many.min_time, many.max_time));
        assert!(many.compressed);
        let read = |path: &'static str| {
            let store = store.clone();
            async move {
                let batches = read_file(&store, path).await.unwrap();
                concat_batches(&Arc::new(table_schema()), &batches).unwrap()
            }
        };
        assert_eq!(read("one.parquet").await, read("many.parquet").await);
    }

    /// A NaN in a source file's float column leaves that column of the
    /// columnstore file without bounds, in one pass or in many, so that
    /// `v > x` never prunes the page holding it.
    #[tokio::test]
    async fn compressed_float_columns_holding_nan_have_no_bounds() {
        let table = table();
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let rows = 20_000;
        let mut v: Vec<f64> = (0..rows).map(|i| i as f64).collect();
        v[7_777] = f64::NAN;
        let all = with_values(&batch(&table, rows), v);
        let sources = write_sources(&store, &table, &all).await;
        for (path, pass_rows) in [("one.parquet", u64::MAX), ("many.parquet", 4_500)] {
            write_columnstore_file(&store, path, &table, &sources, pass_rows)
                .await
                .unwrap();
            let bytes = get_bytes(&store, path).await.unwrap();
            let reader =
                datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                    bytes,
                )
                .unwrap();
            for group in reader.metadata().row_groups() {
                let stats = group.column(2).statistics();
                assert!(
                    stats.is_none_or(|s| s.min_bytes_opt().is_none()),
                    "{path}: {stats:?}"
                );
                // The other columns keep theirs.
                assert!(group
                    .column(0)
                    .statistics()
                    .unwrap()
                    .min_bytes_opt()
                    .is_some());
            }
        }
    }

    /// `base` (rows of [`table`]) with `values` as its float column.
    fn with_values(base: &RecordBatch, values: Vec<f64>) -> RecordBatch {
        RecordBatch::try_new(
            base.schema(),
            vec![
                base.column(0).clone(),
                base.column(1).clone(),
                Arc::new(Float64Array::from(values)),
            ],
        )
        .unwrap()
    }

    /// `all`'s rows written as two overlapping ingest files, as ingest
    /// leaves a chunk; their paths.
    async fn write_sources(
        store: &Arc<dyn ObjectStore>,
        table: &TableDef,
        all: &RecordBatch,
    ) -> Vec<String> {
        let sources = vec!["a.parquet".to_string(), "b.parquet".to_string()];
        let split = all.num_rows() * 3 / 5;
        let halves = [
            all.slice(0, split),
            all.slice(split, all.num_rows() - split),
        ];
        for (path, half) in sources.iter().zip(halves) {
            write_file(store, path, table, &[half], Layout::Ingest)
                .await
                .unwrap();
        }
        sources
    }

    fn table_schema() -> datafusion::arrow::datatypes::Schema {
        table().arrow_schema()
    }

    #[test]
    fn files_record_each_series_newest_time() {
        use datafusion::arrow::array::StringArray;
        let mut t = table();
        t.columns[1] = ColumnDef::new(2, "host", PgType::Text);
        t.compression = Some(CompressionSettings {
            segmentby: vec!["host".into()],
            ..Default::default()
        });
        let batch = |hosts: Vec<Option<&str>>, times: Vec<i64>| {
            let n = hosts.len();
            RecordBatch::try_new(
                Arc::new(t.arrow_schema()),
                vec![
                    Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
                    Arc::new(StringArray::from(hosts)),
                    Arc::new(Float64Array::from(vec![0.0; n])),
                ],
            )
            .unwrap()
        };
        // Arrival order: runs of one row, a NULL series, a value seen again.
        let mut series = SeriesValues::new(&t);
        series.add(&batch(
            vec![Some("b"), Some("a"), None, Some("b")],
            vec![5, 1, 3, 2],
        ));
        series.add(&batch(vec![Some("a"), Some("a"), None], vec![9, 4, 2]));
        let recorded = series.finish().unwrap();
        assert_eq!(recorded.column, 2);
        assert_eq!(*recorded.values, [None, Some("a".into()), Some("b".into())]);
        assert_eq!(*recorded.newest, [3, 9, 5]);
        // Runs out of order: where a value's rows are is not recorded.
        assert!(recorded.counts.is_empty());

        // Sorted rows, a run cut by the batches: each value's row count.
        let mut series = SeriesValues::new(&t);
        series.add(&batch(vec![None, Some("a"), Some("a")], vec![1, 2, 3]));
        series.add(&batch(vec![Some("a"), Some("b")], vec![4, 5]));
        series.add(&batch(vec![Some("c"); 3], vec![6, 7, 8]));
        let recorded = series.finish().unwrap();
        assert_eq!(*recorded.counts, [1, 3, 1, 3]);
        assert_eq!(
            recorded.runs_of(["a", "c"]),
            Some(vec![(1, 1..4), (3, 5..8)])
        );
        // A value seen again after another one: not one run.
        let mut series = SeriesValues::new(&t);
        series.add(&batch(vec![Some("a"), Some("b")], vec![1, 2]));
        series.add(&batch(vec![Some("b"), Some("a")], vec![3, 4]));
        assert!(series.finish().unwrap().counts.is_empty());

        // More distinct values than a file records: none.
        let mut series = SeriesValues::new(&t);
        let many: Vec<String> = (0..=FileSeries::MAX_VALUES)
            .map(|i| format!("h{i}"))
            .collect();
        let times = vec![0; many.len()];
        series.add(&batch(
            many.iter().map(|h| Some(h.as_str())).collect(),
            times,
        ));
        assert!(series.finish().is_none());
    }
}
