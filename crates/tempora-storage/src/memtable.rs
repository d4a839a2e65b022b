//! In-memory rows not yet flushed to Parquet, per (table, chunk): a chunk
//! is one time range of a hypertable and, with space dimensions, one hash
//! partition of it.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, Int16Array, Int32Array, Int64Array, RecordBatch,
    TimestampMicrosecondArray, UInt32Array,
};
use datafusion::arrow::compute::{concat_batches, take};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use tempora_catalog::TableDef;
use tempora_common::{Result, TemporaError};

/// Rows by (table oid, chunk id); a plain table's chunk is None.
pub type MemRows = BTreeMap<(u32, Option<u32>), Arc<Vec<RecordBatch>>>;

/// Past this many batches in one chunk, small batches are merged into one.
const MERGE_BATCHES: usize = 64;

/// A set of memtables (the active one, or a frozen one being flushed).
#[derive(Debug, Default, Clone)]
pub struct Memtables {
    rows: MemRows,
    num_rows: usize,
    num_bytes: usize,
    max_seq: u64,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A time-like column as i64: microseconds for timestamps and dates, the value for integers.
pub fn column_as_i64(arr: &ArrayRef) -> Result<Vec<Option<i64>>> {
    fn collect<A: Array>(a: &A, f: impl Fn(usize) -> i64) -> Vec<Option<i64>> {
        (0..a.len())
            .map(|i| if a.is_null(i) { None } else { Some(f(i)) })
            .collect()
    }
    let any = arr.as_any();
    Ok(match arr.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let a = any
                .downcast_ref::<TimestampMicrosecondArray>()
                .ok_or_else(bad_type)?;
            collect(a, |i| a.value(i))
        }
        DataType::Date32 => {
            let a = any.downcast_ref::<Date32Array>().ok_or_else(bad_type)?;
            collect(a, |i| a.value(i) as i64 * MICROS_PER_DAY)
        }
        DataType::Int16 => {
            let a = any.downcast_ref::<Int16Array>().ok_or_else(bad_type)?;
            collect(a, |i| a.value(i) as i64)
        }
        DataType::Int32 => {
            let a = any.downcast_ref::<Int32Array>().ok_or_else(bad_type)?;
            collect(a, |i| a.value(i) as i64)
        }
        DataType::Int64 => {
            let a = any.downcast_ref::<Int64Array>().ok_or_else(bad_type)?;
            collect(a, |i| a.value(i))
        }
        other => {
            return Err(TemporaError::internal(format!(
                "unsupported time column type {other}"
            )))
        }
    })
}

fn bad_type() -> TemporaError {
    TemporaError::internal("time column has an unexpected array type")
}

/// Splits rows by the chunk of `table` each falls into (None for a plain
/// table). Every chunk must exist already.
pub fn split_by_chunk(
    table: &TableDef,
    batch: RecordBatch,
) -> Result<Vec<(Option<u32>, RecordBatch)>> {
    if table.hypertable.is_none() {
        return Ok(vec![(None, batch)]);
    }
    let times = crate::time_values(table, &batch)?;
    let hashes = crate::hash_values(table, &batch)?;
    let mut point = Vec::with_capacity(hashes.len());
    let index = table.chunk_index();
    let mut by_chunk: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (i, t) in times.iter().enumerate() {
        let t = t.ok_or_else(|| TemporaError::internal("NULL time value reached a chunk"))?;
        crate::row_hashes(&hashes, i, &mut point);
        let chunk = index.find(t, &point).ok_or_else(|| {
            TemporaError::internal(format!("no chunk for time {t} in {}", table.name))
        })?;
        by_chunk.entry(chunk.id).or_default().push(i as u32);
    }
    if by_chunk.len() == 1 {
        let (chunk, _) = by_chunk.into_iter().next().expect("one chunk");
        return Ok(vec![(Some(chunk), batch)]);
    }
    by_chunk
        .into_iter()
        .map(|(chunk, idx)| {
            let indices = UInt32Array::from(idx);
            let cols = batch
                .columns()
                .iter()
                .map(|c| take(c.as_ref(), &indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| TemporaError::internal(e.to_string()))?;
            let part = RecordBatch::try_new(batch.schema(), cols)
                .map_err(|e| TemporaError::internal(e.to_string()))?;
            Ok((Some(chunk), part))
        })
        .collect()
}

impl Memtables {
    pub fn rows(&self) -> &MemRows {
        &self.rows
    }

    pub fn num_rows(&self) -> usize {
        self.num_rows
    }

    pub fn num_bytes(&self) -> usize {
        self.num_bytes
    }

    pub fn max_seq(&self) -> u64 {
        self.max_seq
    }

    /// Adds rows written at WAL `seq`, split by the chunks of `table` (which must exist).
    pub fn insert(&mut self, table: &TableDef, batch: RecordBatch, seq: u64) -> Result<()> {
        self.max_seq = self.max_seq.max(seq);
        self.num_rows += batch.num_rows();
        self.num_bytes += batch.get_array_memory_size();
        for (chunk, part) in split_by_chunk(table, batch)? {
            self.push(table.oid, chunk, part);
        }
        Ok(())
    }

    fn push(&mut self, oid: u32, chunk: Option<u32>, batch: RecordBatch) {
        let entry = self.rows.entry((oid, chunk)).or_default();
        let batches = Arc::make_mut(entry);
        batches.push(batch);
        if batches.len() >= MERGE_BATCHES {
            let schema = batches[0].schema();
            if let Ok(merged) = concat_batches(&schema, batches.iter()) {
                *batches = vec![merged];
            }
        }
    }

    /// Moves every row of `other` into `self`.
    pub fn absorb(&mut self, other: Memtables) {
        for ((oid, chunk), batches) in other.rows {
            for b in batches.iter() {
                self.push(oid, chunk, b.clone());
            }
        }
        self.num_rows += other.num_rows;
        self.num_bytes += other.num_bytes;
        self.max_seq = self.max_seq.max(other.max_seq);
    }

    pub fn remove_table(&mut self, oid: u32) {
        self.remove_where(|o, _| o == oid);
    }

    /// Forgets the rows of dropped chunks.
    pub fn remove_chunks(&mut self, oid: u32, chunks: &[u32]) {
        self.remove_where(|o, c| o == oid && c.is_some_and(|c| chunks.contains(&c)));
    }

    fn remove_where(&mut self, doomed: impl Fn(u32, Option<u32>) -> bool) {
        let keys: Vec<_> = self
            .rows
            .keys()
            .filter(|(o, c)| doomed(*o, *c))
            .cloned()
            .collect();
        for k in keys {
            if let Some(b) = self.rows.remove(&k) {
                let n: usize = b.iter().map(|b| b.num_rows()).sum();
                let bytes: usize = b.iter().map(|b| b.get_array_memory_size()).sum();
                self.num_rows -= n.min(self.num_rows);
                self.num_bytes -= bytes.min(self.num_bytes);
            }
        }
    }

    /// Removes the rows of `table` whose values in the columns named by the
    /// fields of `keys` equal one of the rows of `keys` (rows an upsert
    /// replaced); returns how many went. The keys are those of a unique key,
    /// so each names at most one row. On a hypertable, whose unique keys hold
    /// the time column, only the chunks of the keys' times are searched.
    pub fn delete_keys(&mut self, table: &TableDef, keys: &RecordBatch) -> Result<usize> {
        if keys.num_rows() == 0 {
            return Ok(0);
        }
        let schema = keys.schema();
        // Key columns by id (a WAL record may predate a rename), else by name.
        let ids = crate::columns::field_ids(&schema);
        let by_id = schema
            .fields()
            .iter()
            .any(|f| f.metadata().contains_key(tempora_catalog::FIELD_ID));
        let columns = schema
            .fields()
            .iter()
            .zip(ids)
            .map(|(f, id)| {
                let found = if by_id {
                    table.columns.iter().position(|c| c.id == id)
                } else {
                    table.column_index(f.name())
                };
                found.ok_or_else(|| TemporaError::undefined_column(f.name()))
            })
            .collect::<Result<Vec<_>>>()?;
        let encoder = crate::unique::KeyEncoder::new(table, columns.clone())?;
        let wanted: std::collections::HashSet<_> = encoder
            .keys_of(keys.columns())?
            .into_iter()
            .flatten()
            .collect();
        // The chunks the keys' times fall into (None: search every chunk;
        // with space dimensions too, whose columns a key need not hold).
        let chunks: Option<Vec<Option<u32>>> = match &table.hypertable {
            None => Some(vec![None]),
            Some(h) if !h.space_dimensions.is_empty() => None,
            Some(h) => match table
                .column_index(&h.time_column)
                .and_then(|t| columns.iter().position(|c| *c == t))
            {
                Some(i) => {
                    let index = table.chunk_index();
                    column_as_i64(keys.column(i))?
                        .into_iter()
                        .map(|t| t.and_then(|t| index.find(t, &[])).map(|c| Some(c.id)))
                        .collect()
                }
                None => None,
            },
        };
        let entries: Vec<(u32, Option<u32>)> = self
            .rows
            .keys()
            .filter(|(oid, chunk)| {
                *oid == table.oid && chunks.as_ref().is_none_or(|c| c.contains(chunk))
            })
            .cloned()
            .collect();
        let internal =
            |e: datafusion::arrow::error::ArrowError| TemporaError::internal(e.to_string());
        let mut removed = 0usize;
        for entry in entries {
            let Some(batches) = self.rows.get_mut(&entry) else {
                continue;
            };
            let mut hits: Vec<(usize, Vec<bool>)> = Vec::new();
            for (i, b) in batches.iter().enumerate() {
                let keep: Vec<bool> = encoder
                    .keys(b)?
                    .into_iter()
                    .map(|k| k.is_none_or(|k| !wanted.contains(&k)))
                    .collect();
                if keep.iter().any(|k| !k) {
                    hits.push((i, keep));
                }
            }
            if hits.is_empty() {
                continue;
            }
            let batches = Arc::make_mut(batches);
            for (i, keep) in hits {
                let old = &batches[i];
                let kept = datafusion::arrow::compute::filter_record_batch(
                    old,
                    &datafusion::arrow::array::BooleanArray::from(keep),
                )
                .map_err(internal)?;
                removed += old.num_rows() - kept.num_rows();
                self.num_bytes = (self.num_bytes + kept.get_array_memory_size())
                    .saturating_sub(old.get_array_memory_size());
                batches[i] = kept;
            }
            batches.retain(|b| b.num_rows() > 0);
            if batches.is_empty() {
                self.rows.remove(&entry);
            }
        }
        self.num_rows -= removed.min(self.num_rows);
        Ok(removed)
    }

    /// Appends this table's rows to `out`, by chunk.
    pub fn collect_table(&self, oid: u32, out: &mut BTreeMap<Option<u32>, Vec<RecordBatch>>) {
        for ((t, chunk), batches) in &self.rows {
            if *t == oid {
                out.entry(*chunk)
                    .or_default()
                    .extend(batches.iter().cloned());
            }
        }
    }
}
