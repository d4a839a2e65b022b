//! Parquet files whose text and `float8` columns Tempora dictionary-encodes
//! itself, for ingest files and merges (`Layout::Ingest`, `Layout::Merged`).
//!
//! The Parquet writer dictionary-encodes a column by interning every value
//! through a general hash table (hash the bytes, probe, compare with a
//! `memcmp` call), then packs the indices one at a time. On a bulk COPY of
//! the TSBS data that was a third of the server's CPU: every row has ten
//! short tag strings and ten floats. [`DictFileWriter`] does the same work
//! with a table made for short keys (the hash and the comparison read a
//! string as one or two machine words, a float as its bits) and packs the
//! indices eight at a time, then writes the dictionary page, the data pages
//! (`RLE_DICTIONARY`, data page v1, ZSTD as the properties say), the
//! statistics and the page index itself, and splices the column chunk into
//! the row group. Every other column (time, integers, a column with a bloom
//! filter or another codec, a text column whose dictionary outgrows the
//! properties' limit) goes through the Parquet writer's own column writers;
//! the file is one ordinary Parquet file either way.
//!
//! A float column chunk holding a NaN, from either path, is written without
//! bounds: Parquet's min and max leave NaN out, while SQL orders NaN above
//! every number, so bounds would let `v > 100` prune the rows it matches.

use std::hash::BuildHasher;
use std::io::Write;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, SchemaRef};
use datafusion::parquet::arrow::arrow_writer::{compute_leaves, ArrowRowGroupWriterFactory};
use datafusion::parquet::arrow::{add_encoded_arrow_schema_to_metadata, ArrowSchemaConverter};
use datafusion::parquet::basic::{Compression, Encoding, PageType};
use datafusion::parquet::column::page::{CompressedPage, Page, PageWriteSpec, PageWriter};
use datafusion::parquet::column::writer::ColumnCloseResult;
use datafusion::parquet::data_type::ByteArray;
use datafusion::parquet::errors::{ParquetError, Result};
use datafusion::parquet::file::metadata::{
    ColumnChunkMetaData, ColumnIndexBuilder, OffsetIndexBuilder, PageEncodingStats,
};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::file::statistics::{Statistics, ValueStatistics};
use datafusion::parquet::file::writer::{SerializedFileWriter, SerializedPageWriter, TrackedWrite};
use datafusion::parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};

use crate::parquet_io::MIN_ZSTD_SAVING;

/// Which of its own encodings the writer uses for a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Float,
}

/// A top-level field of the schema and how it is written.
struct FieldPlan {
    /// Its leaf columns in the Parquet schema.
    leaves: Range<usize>,
    /// `Some` while this writer encodes it; `None` once it goes through the
    /// Parquet writer (from the start, or since its dictionary outgrew the
    /// limit: the rest of the file then does without).
    own: Option<Kind>,
}

/// Writes record batches as one Parquet file (see the module's comment).
pub(crate) struct DictFileWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    columns: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    parquet: SchemaDescriptor,
    props: Arc<WriterProperties>,
    fields: Vec<FieldPlan>,
    row_group_rows: usize,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    row_groups: usize,
    scratch: Scratch,
}

impl<W: Write + Send> DictFileWriter<W> {
    pub fn try_new(writer: W, schema: SchemaRef, props: WriterProperties) -> Result<Self> {
        let parquet = ArrowSchemaConverter::new()
            .with_coerce_types(props.coerce_types())
            .convert(&schema)?;
        let mut props = props;
        add_encoded_arrow_schema_to_metadata(&schema, &mut props);
        let props = Arc::new(props);
        let file = SerializedFileWriter::new(writer, parquet.root_schema_ptr(), props.clone())?;
        let columns = ArrowRowGroupWriterFactory::new(&file, schema.clone());
        let mut fields = Vec::with_capacity(schema.fields().len());
        let mut leaf = 0;
        for (i, field) in schema.fields().iter().enumerate() {
            let start = leaf;
            while leaf < parquet.num_columns() && parquet.get_column_root_idx(leaf) == i {
                leaf += 1;
            }
            let own = if leaf - start == 1 {
                let path = parquet.column(start).path().clone();
                let codec = matches!(
                    props.compression(&path),
                    Compression::UNCOMPRESSED | Compression::ZSTD(_)
                );
                let ours = codec
                    && props.dictionary_enabled(&path)
                    && props.bloom_filter_properties(&path).is_none();
                match field.data_type() {
                    _ if !ours => None,
                    DataType::Utf8 => Some(Kind::Text),
                    DataType::Float64 => Some(Kind::Float),
                    _ => None,
                }
            } else {
                None
            };
            fields.push(FieldPlan {
                leaves: start..leaf,
                own,
            });
        }
        let row_group_rows = props.max_row_group_row_count().unwrap_or(1 << 20).max(1);
        Ok(DictFileWriter {
            file,
            columns,
            schema,
            parquet,
            props,
            fields,
            row_group_rows,
            pending: Vec::new(),
            pending_rows: 0,
            row_groups: 0,
            scratch: Scratch::new(),
        })
    }

    /// Adds rows; a row group is written each time enough have come.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut batch = batch.clone();
        while batch.num_rows() > 0 {
            let take = (self.row_group_rows - self.pending_rows).min(batch.num_rows());
            self.pending.push(batch.slice(0, take));
            self.pending_rows += take;
            batch = batch.slice(take, batch.num_rows() - take);
            if self.pending_rows == self.row_group_rows {
                self.flush_row_group()?;
            }
        }
        Ok(())
    }

    /// Writes the last row group and the footer.
    pub fn close(mut self) -> Result<()> {
        if self.pending_rows > 0 {
            self.flush_row_group()?;
        }
        self.file.close()?;
        Ok(())
    }

    fn flush_row_group(&mut self) -> Result<()> {
        let batches = std::mem::take(&mut self.pending);
        self.pending_rows = 0;
        let mut writers = self
            .columns
            .create_column_writers(self.row_groups)?
            .into_iter();
        let mut rg = self.file.next_row_group()?;
        for (i, plan) in self.fields.iter_mut().enumerate() {
            let mut arrow_writers: Vec<_> = writers.by_ref().take(plan.leaves.len()).collect();
            if let Some(kind) = plan.own {
                let descr = self.parquet.column(plan.leaves.start);
                match encode_chunk(kind, &descr, &self.props, &batches, i, &mut self.scratch)? {
                    Chunk::Encoded(bytes, close) => {
                        rg.append_column(&bytes, *close)?;
                        continue;
                    }
                    Chunk::TooManyValues => plan.own = None,
                    Chunk::NotThisOne => {}
                }
            }
            let field = self.schema.field(i);
            for b in &batches {
                let leaves = compute_leaves(field, b.column(i))?;
                for (w, leaf) in arrow_writers.iter_mut().zip(&leaves) {
                    w.write(leaf)?;
                }
            }
            let nan = batches.iter().any(|b| has_nan(b.column(i)));
            for w in arrow_writers {
                let mut chunk = w.close()?;
                if nan {
                    // As for our own float chunks: no bounds that leave a
                    // NaN out, so that no filter prunes it.
                    let close = chunk.close_mut();
                    close.column_index = None;
                    close.metadata = close
                        .metadata
                        .clone()
                        .into_builder()
                        .clear_statistics()
                        .build()?;
                }
                chunk.append_to_row_group(&mut rg)?;
            }
        }
        rg.close()?;
        self.row_groups += 1;
        Ok(())
    }
}

/// Whether a float column holds a NaN (other types never do).
pub(crate) fn has_nan(array: &dyn Array) -> bool {
    match array.data_type() {
        DataType::Float64 => array
            .as_primitive::<Float64Type>()
            .values()
            .iter()
            .any(|v| v.is_nan()),
        DataType::Float32 => array
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .any(|v| v.is_nan()),
        _ => false,
    }
}

/// What [`encode_chunk`] made of a column chunk.
enum Chunk {
    /// The chunk's bytes (dictionary page first, offsets relative to them)
    /// and what the row group needs to know of them.
    Encoded(Bytes, Box<ColumnCloseResult>),
    /// The dictionary outgrew the limit: the Parquet writer takes this
    /// column from now on.
    TooManyValues,
    /// The Parquet writer takes this chunk (no value to index, or arrays
    /// that are not of the schema's plain type).
    NotThisOne,
}

/// Buffers reused from chunk to chunk.
struct Scratch {
    text: TextDict,
    float: FloatDict,
    /// Dictionary index of each non-null value, in row order.
    keys: Vec<u32>,
    /// 1 for a value, 0 for a null, per row; empty when no row is null.
    levels: Vec<u32>,
    page: Vec<u8>,
    compressor: Option<(i32, zstd::bulk::Compressor<'static>)>,
}

impl Scratch {
    fn new() -> Scratch {
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x7e3a_u64);
        Scratch {
            text: TextDict::new(seed),
            float: FloatDict::new(seed),
            keys: Vec::new(),
            levels: Vec::new(),
            page: Vec::new(),
            compressor: None,
        }
    }
}

/// The pages of one column chunk as they are written, and their sizes.
struct ChunkPages<'a> {
    writer: SerializedPageWriter<'a, Vec<u8>>,
    codec: Compression,
    compressed: u64,
    uncompressed: u64,
}

impl ChunkPages<'_> {
    /// Compresses `raw` (unless `stored` holds it already compressed),
    /// writes it as the page `page` makes of the stored bytes, and counts
    /// its size.
    fn write(
        &mut self,
        raw: &[u8],
        stored: Option<Vec<u8>>,
        compressor: &mut Option<(i32, zstd::bulk::Compressor<'static>)>,
        page: impl FnOnce(Bytes) -> Page,
    ) -> Result<PageWriteSpec> {
        let buf = match stored {
            Some(buf) => buf,
            None => compress(compressor, self.codec, raw)?,
        };
        let spec = self
            .writer
            .write_page(CompressedPage::new(page(Bytes::from(buf)), raw.len()))?;
        self.compressed += spec.compressed_size as u64;
        self.uncompressed += spec.uncompressed_size as u64;
        Ok(spec)
    }
}

/// `page` as stored with `codec` (UNCOMPRESSED or ZSTD), with the
/// compressor kept in `compressor` for the next page.
fn compress(
    compressor: &mut Option<(i32, zstd::bulk::Compressor<'static>)>,
    codec: Compression,
    page: &[u8],
) -> Result<Vec<u8>> {
    let Compression::ZSTD(level) = codec else {
        return Ok(page.to_vec());
    };
    let level = level.compression_level();
    let c = match compressor {
        Some((l, c)) if *l == level => c,
        _ => {
            let c =
                zstd::bulk::Compressor::new(level).map_err(|e| ParquetError::External(e.into()))?;
            &mut compressor.insert((level, c)).1
        }
    };
    c.compress(page)
        .map_err(|e| ParquetError::External(e.into()))
}

/// Puts the data page of rows `rows` (whose first value is key `key_at`) in
/// `s.page`: definition levels (nullable columns), then the indices' bit
/// width and the indices. Returns how many values (non-null rows) it holds.
fn put_data_page(
    s: &mut Scratch,
    nullable: bool,
    bit_width: u8,
    rows: std::ops::Range<usize>,
    key_at: usize,
) -> usize {
    let n = rows.len();
    let values = if s.levels.is_empty() {
        n
    } else {
        s.levels[rows.clone()].iter().filter(|&&l| l == 1).count()
    };
    s.page.clear();
    if nullable {
        let mut levels = Vec::new();
        if s.levels.is_empty() {
            put_rle(1, n, 1, &mut levels);
        } else {
            put_hybrid(&s.levels[rows], 1, &mut levels);
        }
        s.page
            .extend_from_slice(&(levels.len() as u32).to_le_bytes());
        s.page.extend_from_slice(&levels);
    }
    s.page.push(bit_width);
    put_hybrid(&s.keys[key_at..key_at + values], bit_width, &mut s.page);
    values
}

/// Encodes column `col` of `batches` as one column chunk.
fn encode_chunk(
    kind: Kind,
    descr: &ColumnDescPtr,
    props: &WriterProperties,
    batches: &[RecordBatch],
    col: usize,
    s: &mut Scratch,
) -> Result<Chunk> {
    let path = descr.path();
    let limit = props.dictionary_page_size_limit();
    let nullable = descr.max_def_level() > 0;
    let has_nulls = batches.iter().any(|b| b.column(col).null_count() > 0);
    if has_nulls && !nullable {
        // The Parquet writer reports this.
        return Ok(Chunk::NotThisOne);
    }
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if let Some(outcome) = intern_values(kind, batches, col, has_nulls, limit, s) {
        return Ok(outcome);
    }
    let entries = match kind {
        Kind::Text => s.text.len(),
        Kind::Float => s.float.len(),
    };
    if entries == 0 {
        return Ok(Chunk::NotThisOne);
    }
    let page_rows = props.data_page_row_count_limit().max(1);
    let bit_width = (32 - (entries.max(2) as u32 - 1).leading_zeros()) as u8;
    // The first data page as built to choose the codec: its values, its
    // bytes, and those compressed when ZSTD stays.
    let mut first = None;
    let codec = match props.compression(path) {
        codec @ Compression::ZSTD(_) => {
            // Dictionary indices of values that vary at random (most metrics)
            // are near-random bits ZSTD cannot shrink, and reading a chunk
            // with a codec costs the reader a codec of its own per chunk.
            // The first data page decides.
            let values = put_data_page(s, nullable, bit_width, 0..page_rows.min(rows), 0);
            let packed = compress(&mut s.compressor, codec, &s.page)?;
            let pays = packed.len() as f64 <= s.page.len() as f64 * (1.0 - MIN_ZSTD_SAVING);
            first = Some((values, std::mem::take(&mut s.page), pays.then_some(packed)));
            if pays {
                codec
            } else {
                Compression::UNCOMPRESSED
            }
        }
        codec => codec,
    };
    let stats_level = props.statistics_enabled(path);
    let ranks = match stats_level {
        EnabledStatistics::None => None,
        _ => Some(match kind {
            Kind::Text => s.text.ranks(),
            Kind::Float => s.float.ranks(),
        }),
    };

    let mut sink = TrackedWrite::new(Vec::new());
    let mut out = ChunkPages {
        writer: SerializedPageWriter::new(&mut sink),
        codec,
        compressed: 0,
        uncompressed: 0,
    };

    // The dictionary page, PLAIN.
    s.page.clear();
    match kind {
        Kind::Text => s.text.plain(&mut s.page),
        Kind::Float => s.float.plain(&mut s.page),
    }
    let spec = out.write(&s.page, None, &mut s.compressor, |buf| {
        Page::DictionaryPage {
            buf,
            num_values: entries as u32,
            encoding: Encoding::PLAIN,
            is_sorted: false,
        }
    })?;
    let data_offset = spec.offset + spec.bytes_written;

    // Data pages of `page_rows` rows.
    let mut offsets = OffsetIndexBuilder::new();
    let mut index = (stats_level == EnabledStatistics::Page)
        .then(|| ColumnIndexBuilder::new(descr.physical_type()));
    // Chunk statistics, as ranks of dictionary entries.
    let mut chunk_min = u32::MAX;
    let mut chunk_max = 0u32;
    let mut chunk_nan = false;
    let mut nulls = 0u64;
    let mut pages = 0i32;
    let mut key_at = 0;
    let mut row = 0;
    while row < rows {
        let end = (row + page_rows).min(rows);
        let n = end - row;
        let (values, stored) = match first.take() {
            Some((values, page, stored)) => {
                s.page = page;
                (values, stored)
            }
            None => (
                put_data_page(s, nullable, bit_width, row..end, key_at),
                None,
            ),
        };
        let keys = &s.keys[key_at..key_at + values];
        let spec = out.write(&s.page, stored, &mut s.compressor, |buf| Page::DataPage {
            buf,
            num_values: n as u32,
            encoding: Encoding::RLE_DICTIONARY,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        })?;
        offsets.append_offset_and_size(spec.offset as i64, spec.compressed_size as i32);
        offsets.append_row_count(n as i64);
        pages += 1;
        let page_nulls = (n - values) as i64;
        nulls += page_nulls as u64;
        if let Some(ranks) = &ranks {
            let (lo, hi, nan) = ranks.range(keys);
            chunk_min = chunk_min.min(lo);
            chunk_max = chunk_max.max(hi);
            chunk_nan |= nan;
            if let Some(index) = index.as_mut() {
                if values == 0 {
                    index.append(true, Vec::new(), Vec::new(), page_nulls);
                } else if nan {
                    // Bounds leave NaN out (Parquet's rule), but SQL finds
                    // NaN above every number and equal to itself: a page
                    // holding one must not be pruned, so the chunk goes
                    // without a page index.
                    index.to_invalid();
                } else {
                    let (min, max) = plain_bounds(kind, s, ranks, lo, hi);
                    index.append(false, min, max, page_nulls);
                }
            }
        }
        key_at += values;
        row = end;
    }
    let (compressed_total, uncompressed_total) = (out.compressed, out.uncompressed);
    out.writer.close()?;
    let bytes = Bytes::from(sink.into_inner()?);

    let mut meta = ColumnChunkMetaData::builder(descr.clone())
        .set_compression(codec)
        .set_encodings(vec![
            Encoding::PLAIN,
            Encoding::RLE,
            Encoding::RLE_DICTIONARY,
        ])
        .set_page_encoding_stats(vec![
            PageEncodingStats {
                page_type: PageType::DICTIONARY_PAGE,
                encoding: Encoding::PLAIN,
                count: 1,
            },
            PageEncodingStats {
                page_type: PageType::DATA_PAGE,
                encoding: Encoding::RLE_DICTIONARY,
                count: pages,
            },
        ])
        .set_total_compressed_size(compressed_total as i64)
        .set_total_uncompressed_size(uncompressed_total as i64)
        .set_num_values(rows as i64)
        .set_dictionary_page_offset(Some(0))
        .set_data_page_offset(data_offset as i64);
    if let Some(ranks) = &ranks {
        let signed = descr.sort_order().is_signed();
        // With a NaN, no bounds either (see the page index above).
        let (lo, hi) = match chunk_nan {
            true => (u32::MAX, 0),
            false => (chunk_min, chunk_max),
        };
        meta = meta.set_statistics(chunk_statistics(kind, s, ranks, lo, hi, nulls, signed));
    }
    let close = ColumnCloseResult {
        bytes_written: bytes.len() as u64,
        rows_written: rows as u64,
        metadata: meta.build()?,
        bloom_filter: None,
        column_index: match index {
            Some(index) if index.valid() => Some(index.build()?),
            _ => None,
        },
        offset_index: (!props.offset_index_disabled()).then(|| offsets.build()),
    };
    Ok(Chunk::Encoded(bytes, Box::new(close)))
}

/// Fills `s.keys` (and `s.levels` when `has_nulls`) with the dictionary
/// index of each value of column `col`, or says why the chunk is not
/// encoded here.
fn intern_values(
    kind: Kind,
    batches: &[RecordBatch],
    col: usize,
    has_nulls: bool,
    limit: usize,
    s: &mut Scratch,
) -> Option<Chunk> {
    s.keys.clear();
    s.levels.clear();
    match kind {
        Kind::Text => s.text.clear(),
        Kind::Float => s.float.clear(),
    }
    for b in batches {
        let array = b.column(col);
        match kind {
            Kind::Text => {
                let Some(a) = array.as_string_opt::<i32>() else {
                    return Some(Chunk::NotThisOne);
                };
                let offsets = a.value_offsets();
                let data = a.values().as_slice();
                if !has_nulls {
                    for w in offsets.windows(2) {
                        let v = &data[w[0] as usize..w[1] as usize];
                        s.keys.push(s.text.intern(v));
                    }
                } else {
                    for i in 0..a.len() {
                        if a.is_valid(i) {
                            let v = &data[offsets[i] as usize..offsets[i + 1] as usize];
                            s.keys.push(s.text.intern(v));
                            s.levels.push(1);
                        } else {
                            s.levels.push(0);
                        }
                    }
                }
                if s.text.page_bytes() > limit {
                    return Some(Chunk::TooManyValues);
                }
            }
            Kind::Float => {
                let Some(a) = array.as_primitive_opt::<Float64Type>() else {
                    return Some(Chunk::NotThisOne);
                };
                if !has_nulls {
                    for v in a.values().iter() {
                        s.keys.push(s.float.intern(v.to_bits()));
                    }
                } else {
                    for i in 0..a.len() {
                        if a.is_valid(i) {
                            s.keys.push(s.float.intern(a.value(i).to_bits()));
                            s.levels.push(1);
                        } else {
                            s.levels.push(0);
                        }
                    }
                }
                if s.float.page_bytes() > limit {
                    return Some(Chunk::TooManyValues);
                }
            }
        }
    }
    None
}

/// PLAIN bytes of the values of ranks `lo` and `hi`, for the page index.
fn plain_bounds(kind: Kind, s: &Scratch, ranks: &Ranks, lo: u32, hi: u32) -> (Vec<u8>, Vec<u8>) {
    match kind {
        Kind::Text => (
            s.text.get(ranks.entry(lo)).to_vec(),
            s.text.get(ranks.entry(hi)).to_vec(),
        ),
        Kind::Float => {
            let (min, max) = float_bounds(&s.float, ranks, lo, hi);
            (min.to_le_bytes().to_vec(), max.to_le_bytes().to_vec())
        }
    }
}

/// The column chunk's statistics: values of ranks `lo..=hi` (none when
/// `lo > hi`: every value null or NaN) and the null count.
fn chunk_statistics(
    kind: Kind,
    s: &Scratch,
    ranks: &Ranks,
    lo: u32,
    hi: u32,
    nulls: u64,
    signed: bool,
) -> Statistics {
    let bounded = lo <= hi;
    match kind {
        Kind::Text => {
            let bound = |r: u32| ByteArray::from(s.text.get(ranks.entry(r)).to_vec());
            ValueStatistics::new(
                bounded.then(|| bound(lo)),
                bounded.then(|| bound(hi)),
                None,
                Some(nulls),
                false,
            )
            .with_backwards_compatible_min_max(signed)
            .into()
        }
        Kind::Float => {
            let (min, max) = match bounded {
                true => {
                    let (min, max) = float_bounds(&s.float, ranks, lo, hi);
                    (Some(min), Some(max))
                }
                false => (None, None),
            };
            ValueStatistics::new(min, max, None, Some(nulls), false)
                .with_backwards_compatible_min_max(signed)
                .into()
        }
    }
}

/// The float bounds of ranks `lo..=hi`, with Parquet's rule for zeros: a
/// minimum of zero is written as -0.0 and a maximum of zero as +0.0, so that
/// a reader pruning with either sign keeps the page.
fn float_bounds(dict: &FloatDict, ranks: &Ranks, lo: u32, hi: u32) -> (f64, f64) {
    let mut min = f64::from_bits(dict.values[ranks.entry(lo) as usize]);
    let mut max = f64::from_bits(dict.values[ranks.entry(hi) as usize]);
    if min == 0.0 {
        min = -0.0;
    }
    if max == 0.0 {
        max = 0.0;
    }
    (min, max)
}

/// The order of a dictionary's entries, for statistics: a page's minimum
/// and maximum are those of its indices' ranks.
struct Ranks {
    /// Rank of each entry; `u32::MAX` for a NaN, which has no place in
    /// bounds.
    rank: Vec<u32>,
    /// Entry of each rank.
    entry: Vec<u32>,
}

impl Ranks {
    fn new(mut order: Vec<u32>, entries: usize) -> Ranks {
        let mut rank = vec![u32::MAX; entries];
        for (r, &e) in order.iter().enumerate() {
            rank[e as usize] = r as u32;
        }
        order.shrink_to_fit();
        Ranks { rank, entry: order }
    }

    fn entry(&self, rank: u32) -> u32 {
        self.entry[rank as usize]
    }

    /// The lowest and highest rank among `keys`, NaNs left out (`lo > hi`
    /// when there is none), and whether there was a NaN.
    fn range(&self, keys: &[u32]) -> (u32, u32, bool) {
        let mut lo = u32::MAX;
        let mut hi = 0u32;
        let mut nan = false;
        for &k in keys {
            let r = self.rank[k as usize];
            if r != u32::MAX {
                lo = lo.min(r);
                hi = hi.max(r);
            } else {
                nan = true;
            }
        }
        // With no rank seen, `lo` stays above `hi`.
        (lo, hi, nan)
    }
}

const MIX: u64 = 0x9e37_79b9_7f4a_7c15;
const MIX2: u64 = 0xd6e8_feb8_6659_fd93;

/// Multiplies and folds the 128-bit product: a fast, well-spread hash step.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

#[inline]
fn load8(v: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(v[at..at + 8].try_into().expect("8 bytes"))
}

#[inline]
fn load4(v: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(v[at..at + 4].try_into().expect("4 bytes")) as u64
}

/// Up to 16 bytes as two words: with the length, they decide the bytes
/// (the words may overlap).
#[inline]
fn short_words(v: &[u8]) -> (u64, u64) {
    let n = v.len();
    if n >= 8 {
        (load8(v, 0), load8(v, n - 8))
    } else if n >= 4 {
        (load4(v, 0), load4(v, n - 4))
    } else if n > 0 {
        (
            v[0] as u64 | (v[n / 2] as u64) << 8 | (v[n - 1] as u64) << 16,
            0,
        )
    } else {
        (0, 0)
    }
}

/// The hash of a value of up to 16 bytes, from its words and length.
#[inline]
fn short_hash(words: (u64, u64), len: usize, seed: u64) -> u64 {
    fold_mul(
        words.0 ^ seed ^ MIX,
        words.1 ^ (len as u64).rotate_right(8) ^ MIX2,
    )
}

/// The hash of a value longer than 16 bytes.
fn long_hash(v: &[u8], seed: u64) -> u64 {
    let n = v.len();
    let mut h = seed ^ (n as u64);
    let mut chunks = v.chunks_exact(16);
    for c in &mut chunks {
        h = fold_mul(load8(c, 0) ^ h ^ MIX, load8(c, 8) ^ MIX2);
    }
    fold_mul(load8(v, n - 16) ^ h ^ MIX, load8(v, n - 8) ^ MIX2)
}

/// A slot of [`TextDict`]'s table. A value of up to 16 bytes is decided by
/// its length and its two words ([`short_words`]), so finding it reads this
/// slot alone; a longer one keeps its hash in `words.0` and is compared
/// with the entry's bytes.
#[derive(Debug, Clone, Copy, Default)]
struct TextSlot {
    words: (u64, u64),
    len: u32,
    /// Entry + 1; 0 when the slot is empty.
    entry: u32,
}

/// The text values of a column chunk, each once, in order of first sight.
struct TextDict {
    slots: Vec<TextSlot>,
    /// Entry `i` is `data[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<usize>,
    data: Vec<u8>,
    seed: u64,
}

const INITIAL_SLOTS: usize = 1024;

impl TextDict {
    fn new(seed: u64) -> TextDict {
        TextDict {
            slots: vec![TextSlot::default(); INITIAL_SLOTS],
            offsets: vec![0],
            data: Vec::new(),
            seed,
        }
    }

    fn clear(&mut self) {
        if self.slots.len() > INITIAL_SLOTS * 64 {
            self.slots = vec![TextSlot::default(); INITIAL_SLOTS];
        } else {
            self.slots.fill(TextSlot::default());
        }
        self.offsets.truncate(1);
        self.data.clear();
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    fn get(&self, entry: u32) -> &[u8] {
        let e = entry as usize;
        &self.data[self.offsets[e]..self.offsets[e + 1]]
    }

    /// Bytes of the PLAIN dictionary page.
    fn page_bytes(&self) -> usize {
        self.data.len() + 4 * self.len()
    }

    /// A slot's key and hash: its words for a short value, else its hash.
    #[inline]
    fn key(&self, v: &[u8]) -> ((u64, u64), u64) {
        if v.len() <= 16 {
            let words = short_words(v);
            (words, short_hash(words, v.len(), self.seed))
        } else {
            let h = long_hash(v, self.seed);
            ((h, u64::MAX), h)
        }
    }

    #[inline]
    fn intern(&mut self, v: &[u8]) -> u32 {
        let (words, h) = self.key(v);
        let len = v.len() as u32;
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let s = self.slots[i];
            if s.entry == 0 {
                return self.insert(i, words, v);
            }
            if s.len == len && s.words == words && (len <= 16 || self.get(s.entry - 1) == v) {
                return s.entry - 1;
            }
            i = (i + 1) & mask;
        }
    }

    #[cold]
    #[inline(never)]
    fn insert(&mut self, slot: usize, words: (u64, u64), v: &[u8]) -> u32 {
        let e = self.len() as u32;
        self.slots[slot] = TextSlot {
            words,
            len: v.len() as u32,
            entry: e + 1,
        };
        self.data.extend_from_slice(v);
        self.offsets.push(self.data.len());
        if self.len() * 2 > self.slots.len() {
            self.grow();
        }
        e
    }

    fn grow(&mut self) {
        let mut slots = vec![TextSlot::default(); self.slots.len() * 2];
        let mask = slots.len() - 1;
        for s in self.slots.iter().filter(|s| s.entry != 0) {
            let h = match s.len {
                0..=16 => short_hash(s.words, s.len as usize, self.seed),
                _ => s.words.0,
            };
            let mut i = h as usize & mask;
            while slots[i].entry != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = *s;
        }
        self.slots = slots;
    }

    /// PLAIN: each value's length (4 bytes, little-endian), then its bytes.
    fn plain(&self, out: &mut Vec<u8>) {
        out.reserve(self.page_bytes());
        for e in 0..self.len() as u32 {
            let v = self.get(e);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
    }

    fn ranks(&self) -> Ranks {
        let mut order: Vec<u32> = (0..self.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.get(a).cmp(self.get(b)));
        Ranks::new(order, self.len())
    }
}

/// The `float8` values of a column chunk (as bits: every NaN payload and
/// both zeros are kept as written), each once, in order of first sight.
struct FloatDict {
    /// Open addressing: a value's bits and its entry + 1 (0 when empty),
    /// so that finding a value reads its slot alone.
    slots: Vec<(u64, u32)>,
    values: Vec<u64>,
    seed: u64,
}

impl FloatDict {
    fn new(seed: u64) -> FloatDict {
        FloatDict {
            slots: vec![(0, 0); INITIAL_SLOTS],
            values: Vec::new(),
            seed,
        }
    }

    fn clear(&mut self) {
        if self.slots.len() > INITIAL_SLOTS * 64 {
            self.slots = vec![(0, 0); INITIAL_SLOTS];
        } else {
            self.slots.fill((0, 0));
        }
        self.values.clear();
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    fn page_bytes(&self) -> usize {
        8 * self.len()
    }

    #[inline]
    fn slot(&self, bits: u64, mask: usize) -> usize {
        fold_mul(bits ^ self.seed ^ MIX, MIX2) as usize & mask
    }

    #[inline]
    fn intern(&mut self, bits: u64) -> u32 {
        let mask = self.slots.len() - 1;
        let mut i = self.slot(bits, mask);
        loop {
            let (v, entry) = self.slots[i];
            if entry == 0 {
                return self.insert(i, bits);
            }
            if v == bits {
                return entry - 1;
            }
            i = (i + 1) & mask;
        }
    }

    #[cold]
    #[inline(never)]
    fn insert(&mut self, slot: usize, bits: u64) -> u32 {
        let e = self.len() as u32;
        self.slots[slot] = (bits, e + 1);
        self.values.push(bits);
        if self.len() * 2 > self.slots.len() {
            let mut slots = vec![(0u64, 0u32); self.slots.len() * 2];
            let mask = slots.len() - 1;
            for (e, &v) in self.values.iter().enumerate() {
                let mut i = self.slot(v, mask);
                while slots[i].1 != 0 {
                    i = (i + 1) & mask;
                }
                slots[i] = (v, e as u32 + 1);
            }
            self.slots = slots;
        }
        e
    }

    fn plain(&self, out: &mut Vec<u8>) {
        out.reserve(self.page_bytes());
        for v in &self.values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn ranks(&self) -> Ranks {
        let mut order: Vec<u32> = (0..self.len() as u32)
            .filter(|&e| !f64::from_bits(self.values[e as usize]).is_nan())
            .collect();
        order.sort_unstable_by(|&a, &b| {
            f64::from_bits(self.values[a as usize])
                .total_cmp(&f64::from_bits(self.values[b as usize]))
        });
        Ranks::new(order, self.len())
    }
}

/// Runs at least this long are written as RLE runs; shorter ones are bit-packed.
const MIN_RUN: usize = 8;

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// An RLE run: `count` times `value`.
fn put_rle(value: u32, count: usize, bit_width: u8, out: &mut Vec<u8>) {
    put_varint((count as u64) << 1, out);
    let bytes = (bit_width as usize).div_ceil(8);
    out.extend_from_slice(&value.to_le_bytes()[..bytes]);
}

/// A bit-packed run of `values`, the last group of eight padded with zeros
/// (allowed at the end of the data, whose length the page header gives).
fn put_packed(values: &[u32], bit_width: u8, out: &mut Vec<u8>) {
    let groups = values.len().div_ceil(8);
    put_varint(((groups as u64) << 1) | 1, out);
    let bw = bit_width as usize;
    out.reserve(groups * bw + 16);
    let mut chunks = values.chunks_exact(8);
    for g in &mut chunks {
        put_group(g.try_into().expect("8 values"), bw, out);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut g = [0u32; 8];
        g[..rest.len()].copy_from_slice(rest);
        put_group(&g, bw, out);
    }
}

/// Eight values of `bw` bits packed into `bw` bytes, least significant
/// bits first.
#[inline]
fn put_group(g: &[u32; 8], bw: usize, out: &mut Vec<u8>) {
    if bw <= 16 {
        // Up to 128 bits: one word, written whole and cut to `bw` bytes.
        let mut acc = 0u128;
        for (k, &v) in g.iter().enumerate() {
            acc |= (v as u128) << (k * bw);
        }
        let at = out.len();
        out.extend_from_slice(&acc.to_le_bytes());
        out.truncate(at + bw);
    } else {
        let mut acc = 0u64;
        let mut bits = 0;
        for &v in g {
            acc |= (v as u64) << bits;
            bits += bw;
            while bits >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                bits -= 8;
            }
        }
    }
}

/// `values` in Parquet's RLE / bit-packing hybrid encoding (without the
/// length prefix), each below `1 << bit_width`.
fn put_hybrid(values: &[u32], bit_width: u8, out: &mut Vec<u8>) {
    let n = values.len();
    // Start of the values not written yet (all to be bit-packed so far).
    let mut literal = 0;
    let mut i = 0;
    while i < n {
        let v = values[i];
        let mut j = i + 1;
        while j < n && values[j] == v {
            j += 1;
        }
        // A bit-packed run holds whole groups of eight: the run gives up
        // its first values to round the pending ones up.
        let pad = (8 - (i - literal) % 8) % 8;
        if j - i >= pad + MIN_RUN {
            let start = i + pad;
            if start > literal {
                put_packed(&values[literal..start], bit_width, out);
            }
            put_rle(v, j - start, bit_width, out);
            literal = j;
        }
        i = j;
    }
    if literal < n {
        put_packed(&values[literal..n], bit_width, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::parquet::arrow::arrow_reader::{
        ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
    };
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
    use datafusion::parquet::file::page_index::column_index::ColumnIndexMetaData;

    fn props(page_rows: usize, group_rows: usize) -> WriterProperties {
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(Default::default()))
            .set_max_row_group_row_count(Some(group_rows))
            .set_data_page_row_count_limit(page_rows)
            .build()
    }

    fn write(batches: &[RecordBatch], props: WriterProperties) -> Bytes {
        let mut buf = Vec::new();
        let mut w = DictFileWriter::try_new(&mut buf, batches[0].schema(), props).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.close().unwrap();
        Bytes::from(buf)
    }

    fn read(bytes: &Bytes) -> Vec<RecordBatch> {
        ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect()
    }

    /// Writes `values` as a file of one non-null column, checks that every
    /// value reads back, and returns the file.
    fn round_trip(values: ArrayRef, props: WriterProperties) -> Bytes {
        let field = Field::new("c", values.data_type().clone(), false);
        let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![values]).unwrap();
        let bytes = write(std::slice::from_ref(&batch), props);
        let back = read(&bytes);
        let got = datafusion::arrow::compute::concat_batches(&batch.schema(), &back).unwrap();
        assert_eq!(got, batch);
        bytes
    }

    /// A file's footer with its page index.
    fn metadata(bytes: Bytes) -> Arc<ParquetMetaData> {
        ParquetRecordBatchReaderBuilder::try_new_with_options(
            bytes,
            ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
        )
        .unwrap()
        .metadata()
        .clone()
    }

    /// A pseudo-random sequence, the same on every run.
    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    /// Rows of four columns; `nan`: whether the float column holds NaNs.
    fn sample(rows: usize, seed: u64, nan: bool) -> RecordBatch {
        let mut s = seed;
        let tags: StringArray = (0..rows)
            .map(|i| match lcg(&mut s) % 50 {
                0 => None,
                1 => Some(String::new()),
                2 => Some(format!(
                    "a long value that needs more than sixteen bytes {}",
                    i % 7
                )),
                k => Some(format!("host_{}", k % 23)),
            })
            .collect();
        let floats: Float64Array = (0..rows)
            .map(|_| match lcg(&mut s) % 40 {
                0 => None,
                1 if nan => Some(f64::NAN),
                2 => Some(-0.0),
                3 => Some(0.0),
                k => Some((k as f64 - 20.0) * 1.5),
            })
            .collect();
        let runs: StringArray = (0..rows).map(|i| Some(format!("r{}", i / 300))).collect();
        let time: Int64Array = (0..rows as i64).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("time", DataType::Int64, false),
            Field::new("tag", DataType::Utf8, true),
            Field::new("v", DataType::Float64, true),
            Field::new("run", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(time) as ArrayRef,
                Arc::new(tags),
                Arc::new(floats),
                Arc::new(runs),
            ],
        )
        .unwrap()
    }

    #[test]
    fn hybrid_runs_and_packs_as_parquet_reads_them() {
        // Every value reads back through the Parquet reader, in files
        // whose pages mix RLE runs, bit-packed groups and nulls.
        let batches: Vec<RecordBatch> = (0..3).map(|i| sample(7_001, i, true)).collect();
        let bytes = write(&batches, props(1_000, 9_000));
        let back = read(&bytes);
        let expect =
            datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let got = datafusion::arrow::compute::concat_batches(&expect.schema(), &back).unwrap();
        assert_eq!(got.num_rows(), expect.num_rows());
        for c in 0..expect.num_columns() {
            // NaN != NaN: compare the bits of floats.
            let (e, g) = (expect.column(c), got.column(c));
            if let (Some(e), Some(g)) = (
                e.as_primitive_opt::<Float64Type>(),
                g.as_primitive_opt::<Float64Type>(),
            ) {
                let bits =
                    |a: &Float64Array| a.iter().map(|v| v.map(f64::to_bits)).collect::<Vec<_>>();
                assert_eq!(bits(e), bits(g), "column {c}");
            } else {
                assert_eq!(e, g, "column {c}");
            }
        }
    }

    #[test]
    fn statistics_match_the_parquet_writer() {
        let batches: Vec<RecordBatch> = (0..2).map(|i| sample(20_000, i + 10, false)).collect();
        let ours = write(&batches, props(4_096, 16_384));
        let mut theirs = Vec::new();
        let mut w =
            ArrowWriter::try_new(&mut theirs, batches[0].schema(), Some(props(4_096, 16_384)))
                .unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        w.close().unwrap();
        let (ours, theirs) = (metadata(ours), metadata(Bytes::from(theirs)));
        assert_eq!(ours.num_row_groups(), theirs.num_row_groups());
        for (rg, (a, b)) in ours
            .row_groups()
            .iter()
            .zip(theirs.row_groups())
            .enumerate()
        {
            assert_eq!(a.num_rows(), b.num_rows());
            for c in 1..4 {
                let (sa, sb) = (a.column(c).statistics(), b.column(c).statistics());
                let (sa, sb) = (sa.unwrap(), sb.unwrap());
                assert_eq!(
                    sa.min_bytes_opt(),
                    sb.min_bytes_opt(),
                    "rg {rg} col {c} min"
                );
                assert_eq!(
                    sa.max_bytes_opt(),
                    sb.max_bytes_opt(),
                    "rg {rg} col {c} max"
                );
                assert_eq!(
                    sa.null_count_opt(),
                    sb.null_count_opt(),
                    "rg {rg} col {c} nulls"
                );
                assert!(a.column(c).dictionary_page_offset().is_some());
            }
        }
        // Each page's bounds hold its values: check the text column's page
        // index against the rows each page covers.
        let index = ours.column_index().unwrap();
        let offsets = ours.offset_index().unwrap();
        let all =
            datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let tags = all.column(1).as_string::<i32>();
        let mut base = 0usize;
        for (rg, meta) in ours.row_groups().iter().enumerate() {
            let ColumnIndexMetaData::BYTE_ARRAY(pages) = &index[rg][1] else {
                panic!("text column index: {:?}", index[rg][1]);
            };
            let locations = &offsets[rg][1].page_locations;
            for (p, loc) in locations.iter().enumerate() {
                let start = base + loc.first_row_index as usize;
                let end = locations
                    .get(p + 1)
                    .map_or(base + meta.num_rows() as usize, |l| {
                        base + l.first_row_index as usize
                    });
                let (min, max) = (pages.min_value(p).unwrap(), pages.max_value(p).unwrap());
                for i in start..end {
                    if tags.is_valid(i) {
                        let v = tags.value(i).as_bytes();
                        assert!(min <= v && v <= max, "page {p} row {i}");
                    }
                }
            }
            base += meta.num_rows() as usize;
        }
    }

    #[test]
    fn float_chunks_holding_nan_have_no_bounds() {
        // SQL finds NaN above every number: bounds that leave it out (as
        // Parquet's rule says) would let `v > 100` prune its page.
        let batches: Vec<RecordBatch> = (0..2).map(|i| sample(20_000, i + 20, true)).collect();
        let bytes = write(&batches, props(4_096, 16_384));
        let meta = metadata(bytes);
        for (rg, group) in meta.row_groups().iter().enumerate() {
            let stats = group.column(2).statistics().unwrap();
            assert_eq!(stats.min_bytes_opt(), None, "row group {rg}");
            assert_eq!(stats.max_bytes_opt(), None, "row group {rg}");
            assert!(stats.null_count_opt().unwrap() > 0);
            let index = &meta.column_index().unwrap()[rg][2];
            assert!(
                matches!(index, ColumnIndexMetaData::NONE),
                "row group {rg}: {index:?}"
            );
            // The text column keeps its bounds.
            assert!(group
                .column(1)
                .statistics()
                .unwrap()
                .min_bytes_opt()
                .is_some());
        }
    }

    #[test]
    fn wide_indices_pack_and_read_back() {
        // 70,000 distinct floats need 17-bit indices (the packer's path for
        // widths over 16); runs of one value in between need RLE runs.
        let rows = 100_000;
        let values: Float64Array = (0..rows)
            .map(|i| Some(if i % 100 < 30 { 0.5 } else { i as f64 }))
            .collect();
        let bytes = round_trip(Arc::new(values), props(30_000, rows));
        let meta = metadata(bytes);
        assert!(meta
            .row_group(0)
            .column(0)
            .dictionary_page_offset()
            .is_some());
    }

    #[test]
    fn zstd_only_for_chunks_it_shrinks() {
        // Random picks among 100 values: 7 bits of noise per index, which
        // ZSTD cannot shrink. A repeating pattern it can.
        let rows = 50_000;
        let mut seed = 7;
        let noise: Float64Array = (0..rows)
            .map(|_| Some((lcg(&mut seed) % 100) as f64))
            .collect();
        let pattern: Float64Array = (0..rows).map(|i| Some((i % 37 * 3 % 100) as f64)).collect();
        for (values, codec) in [
            (noise, Compression::UNCOMPRESSED),
            (pattern, Compression::ZSTD(Default::default())),
        ] {
            let meta = metadata(round_trip(Arc::new(values), props(8192, 20_000)));
            for rg in meta.row_groups() {
                assert_eq!(rg.column(0).compression(), codec);
            }
        }
    }

    #[test]
    fn too_many_distinct_values_go_to_the_parquet_writer() {
        let rows = 40_000;
        let unique: StringArray = (0..rows)
            .map(|i| Some(format!("value number {i:08}")))
            .collect();
        let props = WriterProperties::builder()
            .set_dictionary_page_size_limit(64 * 1024)
            .set_max_row_group_row_count(Some(10_000))
            .build();
        round_trip(Arc::new(unique), props);
    }
}
