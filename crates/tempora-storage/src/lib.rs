//! Tempora's storage engine: the write-ahead log, per-chunk memtables and the
//! Parquet chunk files they are flushed to, kept through `object_store`.
//!
//! ```text
//! insert(rows) ─► NOT NULL check ─► chunks created in the catalog (durable)
//!             ─► WAL append (group commit, fdatasync) ─► acknowledged
//!             ─► active memtable, split by chunk
//! flush ─► freeze active memtable + rotate WAL ─► Parquet file per chunk
//!       ─► one catalog commit lists the files and the flushed WAL seq
//!       ─► frozen memtable dropped (atomically with the commit) ─► old WAL segments deleted
//! upsert ─► see `upsert.rs`: memtable rows replaced by one WAL record, or
//!          files holding replaced rows rewritten in one catalog commit
//! ```
//! A reader takes a [`ReadSnapshot`]: one catalog state plus the memtable rows
//! not yet in the files that state lists, so it never sees a row twice or misses one.
// Errors carry PostgreSQL's fields (detail, hint, position, context): a
// large Err is the price of one error type across layers, paid only on failure.
#![allow(clippy::result_large_err)]

pub mod cluster;
pub mod columns;
pub mod compaction;
mod compression;
mod dict_pages;
pub mod gc;
pub mod jobs;
mod materialize;
pub mod memtable;
pub mod metadata_warm;
pub mod parquet_io;
pub mod series_cache;
pub mod unique;
mod upsert;
pub mod wal;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::runtime_env::RuntimeEnv;
use object_store::ObjectStore;
use parking_lot::RwLock;
use tempora_catalog::{Catalog, CatalogOp, CatalogState, ChunkDef, FileDef, TableDef};
use tempora_common::{Result, SqlState, TemporaError};

pub use cluster::{
    database_dir, other_databases_dir, server_dir, Cluster, Connected, DatabaseGuard,
};
pub use compression::{fully_compressed, not_enabled};
pub use gc::{FileGc, ReadPin};
pub use memtable::{split_by_chunk, MemRows, Memtables};
pub use parquet_io::Layout;
pub use unique::OnConflict;
pub use upsert::{UpdateFuture, UpdateRows, UpdatedRows, Upserted};
pub use wal::SyncCommit;
use wal::{Wal, WalOptions};

/// Tuning of the storage engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub data_dir: PathBuf,
    /// The name of the database the engine holds (`current_database()`).
    pub database: String,
    /// Flush once the active memtables hold this many rows.
    pub flush_rows: usize,
    /// Flush once the active memtables hold this many bytes.
    pub flush_bytes: usize,
    /// Flush at least this often while there are unflushed rows.
    pub flush_interval: Duration,
    /// fdatasync the WAL before acknowledging (PostgreSQL's synchronous_commit).
    pub sync_commit: bool,
    pub compaction: compaction::CompactionOptions,
    /// Decoded runs of single series kept between statements, shared by
    /// every engine these options open (see [`series_cache`]).
    pub series_cache: Arc<series_cache::SeriesCache>,
}

/// The default budget of [`EngineOptions::series_cache`].
pub const DEFAULT_SERIES_CACHE_BYTES: usize = 256 << 20;

impl EngineOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database: tempora_catalog::FIRST_DATABASE.into(),
            flush_rows: 1_000_000,
            flush_bytes: 256 << 20,
            flush_interval: Duration::from_secs(300),
            sync_commit: true,
            compaction: compaction::CompactionOptions::default(),
            series_cache: Arc::new(series_cache::SeriesCache::new(DEFAULT_SERIES_CACHE_BYTES)),
        }
    }
}

/// What a query reads: one catalog state and the memtable rows that state's
/// files do not hold yet.
#[derive(Debug, Clone)]
pub struct ReadSnapshot {
    pub catalog: Arc<CatalogState>,
    mem: Vec<Arc<Memtables>>,
    active: MemRows,
}

impl ReadSnapshot {
    /// Unflushed rows of a table, by chunk id (None for a plain table).
    pub fn memtable_rows(&self, oid: u32) -> BTreeMap<Option<u32>, Vec<RecordBatch>> {
        let mut out: BTreeMap<Option<u32>, Vec<RecordBatch>> = BTreeMap::new();
        for m in &self.mem {
            m.collect_table(oid, &mut out);
        }
        for ((t, chunk), batches) in &self.active {
            if *t == oid {
                out.entry(*chunk)
                    .or_default()
                    .extend(batches.iter().cloned());
            }
        }
        out
    }
}

struct MemState {
    active: Memtables,
    /// Being written to Parquet; still read until its files are in the catalog.
    frozen: Option<Arc<Memtables>>,
}

/// The catalog ops replacing files of a table as `changes` says (with the
/// invalidations of continuous aggregates reading it), against `state`.
pub fn file_change_ops(state: &CatalogState, changes: &FileChanges) -> Result<Vec<CatalogOp>> {
    let oid = changes.oid;
    let table = state
        .table_by_oid(oid)
        .ok_or_else(|| TemporaError::internal("table dropped during rewrite"))?;
    let mut ops = Vec::new();
    let mut removes: BTreeMap<Option<u32>, Vec<String>> = BTreeMap::new();
    for (chunk, path) in &changes.remove {
        removes.entry(*chunk).or_default().push(path.clone());
    }
    if !changes.keeps_rows {
        let removed = table
            .all_files()
            .filter(|f| changes.remove.iter().any(|(_, p)| *p == f.path));
        let added = changes.add.iter().map(|(_, f)| f);
        ops.extend(invalidations(state, oid, removed.chain(added)));
    }
    for (chunk, paths) in removes {
        ops.push(CatalogOp::RemoveFiles { oid, chunk, paths });
    }
    ops.extend(add_file_ops(table, &changes.add, "rewrite")?);
    Ok(ops)
}

/// Where a sequence stands: its last value, whether that value was handed
/// out (`is_called`), and how many values after it the catalog has logged.
#[derive(Debug, Clone, Copy)]
struct SequenceCursor {
    last: i64,
    called: bool,
    logged_ahead: u64,
}

impl SequenceCursor {
    /// The position a sequence starts from after a restart: past every
    /// value that may have been handed out.
    fn of(seq: &tempora_catalog::SequenceDef) -> Self {
        match seq.reserved {
            None => Self {
                last: seq.start,
                called: false,
                logged_ahead: 0,
            },
            Some(r) => Self {
                last: r,
                called: !seq.pending,
                logged_ahead: 0,
            },
        }
    }
}

/// The storage engine of one data directory.
pub struct Engine {
    options: EngineOptions,
    catalog: Arc<Catalog>,
    wal: Arc<Wal>,
    mem: RwLock<MemState>,
    /// Held (shared) by an insert from its WAL append until its rows are in the
    /// memtable; a flush takes it exclusively to freeze a complete prefix of the WAL.
    write_gate: tokio::sync::RwLock<()>,
    /// Held by whoever changes which files a table has (flush, DELETE/UPDATE
    /// rewrites, compaction, upserts), so those changes never interleave.
    /// An upsert takes it before `unique_lock`, the only order both are taken in.
    files_lock: Arc<tokio::sync::Mutex<()>>,
    flush_nudge: tokio::sync::Notify,
    /// Signalled after each flush, for writers waiting on the memory budget.
    flushed: tokio::sync::Notify,
    /// Why the last flush failed (cleared by one that succeeds): writers past
    /// the memory budget get it instead of growing memory without bound.
    flush_error: parking_lot::Mutex<Option<TemporaError>>,
    compact_nudge: tokio::sync::Notify,
    /// Held from the check of unique keys to the rows being in the memtable,
    /// so two writers never both take the same key.
    unique_lock: tokio::sync::Mutex<()>,
    /// Jobs run one at a time (scheduler and CALL run_job).
    job_lock: tokio::sync::Mutex<()>,
    refresh_lock: tokio::sync::Mutex<()>,
    job_runner: std::sync::OnceLock<Arc<dyn jobs::JobRunner>>,
    /// Where each sequence used since the start stands (the catalog holds
    /// how far values were logged ahead).
    sequences: tokio::sync::Mutex<HashMap<u32, SequenceCursor>>,
    /// Files open transaction blocks rewrote (DELETE, UPDATE), with how many
    /// blocks hold each: compaction leaves them alone, as merging them would
    /// make those blocks fail at COMMIT.
    held_files: parking_lot::Mutex<HashMap<String, usize>>,
    file_counter: AtomicU64,
    gc: Arc<FileGc>,
    /// The DataFusion runtime of every query against this engine, shared by
    /// all sessions: its file-metadata cache keeps the footers and page
    /// indexes of the data files, which never change once written and whose
    /// paths are never reused, across statements and connections.
    runtime: Arc<RuntimeEnv>,
    /// The Arrow schema of each listed file whose footer is cached
    /// (`metadata_warm`).
    file_schemas: metadata_warm::FileSchemas,
    /// Tells this engine's entries in the shared series cache from those of
    /// other engines (whose files may have the same paths): unique in the
    /// process, never reused.
    instance: u64,
}

/// The next [`Engine::instance`].
static ENGINE_INSTANCES: AtomicU64 = AtomicU64::new(1);

/// Exclusive right to change a table's files; see [`Engine::lock_files`].
pub struct FilesGuard {
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

/// A replacement of some of a table's files, committed atomically.
#[derive(Debug, Default, Clone)]
pub struct FileChanges {
    pub oid: u32,
    /// (chunk, path) of files to remove.
    pub remove: Vec<(Option<u32>, String)>,
    /// (chunk, file) of files to add.
    pub add: Vec<(Option<u32>, FileDef)>,
    /// The same rows, laid out again (a merge): continuous aggregates
    /// reading the table have nothing to refresh.
    pub keeps_rows: bool,
}

/// [`CatalogOp::Invalidate`]s for files of table `oid` whose rows changed
/// (added or removed), for the continuous aggregates reading it.
fn invalidations<'a>(
    state: &CatalogState,
    oid: u32,
    files: impl IntoIterator<Item = &'a FileDef>,
) -> Vec<CatalogOp> {
    if state.caggs_reading(oid).next().is_none() {
        return Vec::new();
    }
    files
        .into_iter()
        .filter(|f| f.rows > 0)
        .filter_map(|f| state.invalidation(oid, f.min_time?, f.max_time?))
        .collect()
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.options.data_dir)
            .finish()
    }
}

/// Legacy record: one table's rows.
const WAL_INSERT: u8 = 1;
/// The rows of one statement or transaction, possibly for several tables.
const WAL_WRITE: u8 = 2;
/// One upsert: rows of a table to drop from the memtable by unique key, then
/// rows to add (see `upsert.rs`).
const WAL_REPLACE: u8 = 3;

fn ipc_error(e: impl std::fmt::Display) -> TemporaError {
    TemporaError::internal(format!("encoding WAL record: {e}"))
}

/// Appends `[len u32][Arrow IPC stream of batch]`.
fn put_ipc(buf: BytesMut, batch: &RecordBatch) -> Result<BytesMut> {
    let mut buf = buf;
    let len_at = buf.len();
    buf.put_u32_le(0);
    let mut w = buf.writer();
    {
        let mut ipc =
            datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut w, &batch.schema())
                .map_err(ipc_error)?;
        ipc.write(batch)
            .and_then(|_| ipc.finish())
            .map_err(ipc_error)?;
    }
    buf = w.into_inner();
    let len = (buf.len() - len_at - 4) as u32;
    buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(buf)
}

fn encode_write(entries: &[(u32, RecordBatch)]) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_u8(WAL_WRITE);
    buf.put_u32_le(entries.len() as u32);
    for (oid, batch) in entries {
        buf.put_u32_le(*oid);
        buf = put_ipc(buf, batch)?;
    }
    Ok(buf.freeze())
}

/// `[3][oid u32][len u32][keys IPC][len u32][rows IPC]`: the key columns
/// (named as in the table) of the memtable rows an upsert replaces, then
/// the rows it writes.
fn encode_replace(oid: u32, keys: &RecordBatch, rows: &RecordBatch) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_u8(WAL_REPLACE);
    buf.put_u32_le(oid);
    buf = put_ipc(buf, keys)?;
    buf = put_ipc(buf, rows)?;
    Ok(buf.freeze())
}

fn decode_ipc(bytes: &[u8]) -> Result<Vec<RecordBatch>> {
    let corrupt = |m: String| TemporaError::new(SqlState::DATA_CORRUPTED, m);
    let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(bytes, None)
        .map_err(|e| corrupt(format!("decoding WAL record: {e}")))?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| corrupt(format!("decoding WAL record: {e}")))
}

/// What one WAL record does to one table's memtable.
#[derive(Debug, Default)]
struct WalEntry {
    oid: u32,
    /// Rows to remove first, given by the values of a unique key's columns.
    delete_keys: Vec<RecordBatch>,
    /// Rows to add.
    rows: Vec<RecordBatch>,
}

fn decode_write(payload: &[u8]) -> Result<Vec<WalEntry>> {
    let corrupt = |m: &str| TemporaError::new(SqlState::DATA_CORRUPTED, m.to_string());
    let u32_at = |at: usize| -> Result<u32> {
        payload
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| corrupt("truncated WAL record"))
    };
    // The `[len][IPC]` at `at`: its batches and the offset after it.
    let ipc_at = |at: usize| -> Result<(Vec<RecordBatch>, usize)> {
        let len = u32_at(at)? as usize;
        let body = payload
            .get(at + 4..at + 4 + len)
            .ok_or_else(|| corrupt("truncated WAL record"))?;
        Ok((decode_ipc(body)?, at + 4 + len))
    };
    match payload.first() {
        Some(&WAL_INSERT) => Ok(vec![WalEntry {
            oid: u32_at(1)?,
            rows: decode_ipc(&payload[5..])?,
            ..Default::default()
        }]),
        Some(&WAL_WRITE) => {
            let n = u32_at(1)? as usize;
            let mut at = 5;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let oid = u32_at(at)?;
                let (rows, next) = ipc_at(at + 4)?;
                out.push(WalEntry {
                    oid,
                    rows,
                    ..Default::default()
                });
                at = next;
            }
            Ok(out)
        }
        Some(&WAL_REPLACE) => {
            let oid = u32_at(1)?;
            let (delete_keys, next) = ipc_at(5)?;
            let (rows, _) = ipc_at(next)?;
            Ok(vec![WalEntry {
                oid,
                delete_keys,
                rows,
            }])
        }
        _ => Err(corrupt("unknown WAL record kind")),
    }
}

/// Whether a chunk placed at `cube` would hold the point (`t`, `hashes`).
fn cube_holds(cube: &tempora_catalog::ChunkCube, t: i64, hashes: &[i64]) -> bool {
    cube.range_start <= t
        && t < cube.range_end
        && hashes
            .iter()
            .zip(&cube.hash_ranges)
            .all(|(h, (s, e))| s <= h && h < e)
}

/// The time values of a hypertable's rows as i64 (microseconds for temporal types).
pub fn time_values(table: &TableDef, batch: &RecordBatch) -> Result<Vec<Option<i64>>> {
    let Some(h) = &table.hypertable else {
        return Ok(vec![]);
    };
    let idx = table
        .column_index(&h.time_column)
        .ok_or_else(|| TemporaError::undefined_column(&h.time_column))?;
    memtable::column_as_i64(batch.column(idx))
}

/// The partition hashes of a hypertable's rows, one column of them per
/// space dimension (none without space dimensions): the coordinates that,
/// with the time, say which chunk a row belongs to.
pub fn hash_values(table: &TableDef, batch: &RecordBatch) -> Result<Vec<Vec<i64>>> {
    let Some(h) = &table.hypertable else {
        return Ok(vec![]);
    };
    h.space_dimensions
        .iter()
        .map(|(name, _)| {
            let i = table
                .column_index(name)
                .ok_or_else(|| TemporaError::undefined_column(name))?;
            tempora_catalog::partition::partition_hashes(batch.column(i), &table.columns[i].ty)
        })
        .collect()
}

/// Row `row`'s coordinates in the space dimensions, from [`hash_values`].
pub fn row_hashes(hashes: &[Vec<i64>], row: usize, out: &mut Vec<i64>) {
    out.clear();
    out.extend(hashes.iter().map(|h| h[row]));
}

/// `batch` without the rows of chunks dropped after WAL record `seq` was
/// written (recovery must not bring them back).
fn without_dropped_rows(
    state: &CatalogState,
    table: &TableDef,
    seq: u64,
    batch: RecordBatch,
) -> Result<RecordBatch> {
    let ranges: Vec<&tempora_catalog::DroppedRange> = state
        .dropped_ranges
        .iter()
        .filter(|r| r.oid == table.oid && seq <= r.through_wal_seq)
        .collect();
    if ranges.is_empty() {
        return Ok(batch);
    }
    let hashes = hash_values(table, &batch)?;
    let mut point = Vec::with_capacity(hashes.len());
    let keep: datafusion::arrow::array::BooleanArray = time_values(table, &batch)?
        .into_iter()
        .enumerate()
        .map(|(row, t)| {
            row_hashes(&hashes, row, &mut point);
            Some(t.is_none_or(|t| {
                !ranges.iter().any(|r| {
                    r.range_start <= t
                        && t < r.range_end
                        && point
                            .iter()
                            .zip(&r.hash_ranges)
                            .all(|(h, (s, e))| s <= h && h < e)
                })
            }))
        })
        .collect();
    datafusion::arrow::compute::filter_record_batch(&batch, &keep)
        .map_err(|e| TemporaError::internal(format!("replay: {e}")))
}

impl Engine {
    /// Opens the data directory: loads the catalog, replays the WAL past the
    /// last flush into memtables.
    pub async fn open(options: EngineOptions) -> Result<Arc<Engine>> {
        let store = tempora_catalog::store::DurableLocalStore::open(&options.data_dir)
            .map_err(|e| TemporaError::io("could not open data directory", &e))?;
        let catalog = Catalog::open(store).await?;
        let flushed = catalog.snapshot().flushed_wal_seq;
        let wal_opts = WalOptions {
            dir: options.data_dir.join("wal"),
            sync: options.sync_commit,
            ..WalOptions::default()
        };
        let (wal, records) = tokio::task::spawn_blocking(move || Wal::open(wal_opts, flushed))
            .await
            .map_err(|e| TemporaError::internal(e.to_string()))??;
        let gc = FileGc::new(catalog.store().clone());
        let engine = Arc::new(Engine {
            options,
            catalog,
            wal: Arc::new(wal),
            mem: RwLock::new(MemState {
                active: Memtables::default(),
                frozen: None,
            }),
            write_gate: tokio::sync::RwLock::new(()),
            files_lock: Arc::new(tokio::sync::Mutex::new(())),
            flush_nudge: tokio::sync::Notify::new(),
            flushed: tokio::sync::Notify::new(),
            flush_error: parking_lot::Mutex::new(None),
            compact_nudge: tokio::sync::Notify::new(),
            unique_lock: tokio::sync::Mutex::new(()),
            job_lock: tokio::sync::Mutex::new(()),
            refresh_lock: tokio::sync::Mutex::new(()),
            job_runner: std::sync::OnceLock::new(),
            sequences: tokio::sync::Mutex::new(HashMap::new()),
            held_files: parking_lot::Mutex::new(HashMap::new()),
            file_counter: AtomicU64::new(0),
            gc,
            runtime: Arc::new(RuntimeEnv::default()),
            file_schemas: Default::default(),
            instance: ENGINE_INSTANCES.fetch_add(1, Ordering::Relaxed),
        });
        let mut replayed = 0usize;
        for rec in records {
            for entry in decode_write(&rec.payload)? {
                let oid = entry.oid;
                let state = engine.catalog.snapshot();
                let Some(table) = state.table_by_oid(oid) else {
                    continue; // dropped after the write
                };
                let table = table.clone();
                for keys in &entry.delete_keys {
                    let gone = engine.mem.write().active.delete_keys(&table, keys)?;
                    replayed = replayed.saturating_sub(gone);
                }
                for batch in entry.rows {
                    let batch = columns::conform(&table, &batch)?;
                    let batch = without_dropped_rows(&state, &table, rec.seq, batch)?;
                    replayed += batch.num_rows();
                    let state = engine.ensure_chunks(&table, &batch).await?;
                    let table = state.table_by_oid(oid).cloned().unwrap_or(table.clone());
                    engine.mem.write().active.insert(&table, batch, rec.seq)?;
                }
            }
        }
        if replayed > 0 {
            tracing::info!(rows = replayed, "replayed WAL into memtables");
        }
        engine.remove_orphan_files().await;
        Ok(engine)
    }

    /// Deletes data files the catalog does not list: written by a flush or a
    /// rewrite that did not reach its catalog commit before a crash.
    async fn remove_orphan_files(&self) {
        use futures::TryStreamExt;
        let state = self.catalog.snapshot();
        let listed: std::collections::HashSet<&str> = state
            .tables
            .values()
            .flat_map(|t| t.all_files().map(|f| f.path.as_str()))
            .collect();
        for prefix in ["chunks", "tables"] {
            let prefix = object_store::path::Path::from(prefix);
            let found: Vec<_> = match self.store().list(Some(&prefix)).try_collect().await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "could not list data files");
                    continue;
                }
            };
            let orphans: Vec<String> = found
                .into_iter()
                .map(|m| m.location.to_string())
                .filter(|p| !listed.contains(p.as_str()))
                .collect();
            if !orphans.is_empty() {
                tracing::info!(files = orphans.len(), "removing data files no table lists");
                self.gc.retire(0, orphans);
            }
        }
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        self.catalog.store()
    }

    /// The DataFusion runtime queries against this engine share.
    pub fn runtime(&self) -> &Arc<RuntimeEnv> {
        &self.runtime
    }

    /// The Arrow schema of the listed file at `path`, as its footer gives
    /// it, once the metadata warmer has decoded it.
    pub fn file_schema(&self, path: &str) -> Option<datafusion::arrow::datatypes::SchemaRef> {
        self.file_schemas.get(path)
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// The decoded series runs queries against this engine share.
    pub fn series_cache(&self) -> &Arc<series_cache::SeriesCache> {
        &self.options.series_cache
    }

    /// This engine's key in the shared series cache.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// A consistent view for a query.
    pub fn read_snapshot(&self) -> ReadSnapshot {
        self.catalog.read_with(|state| {
            let mem = self.mem.read();
            ReadSnapshot {
                catalog: state.clone(),
                mem: mem.frozen.iter().cloned().collect(),
                active: mem.active.rows().clone(),
            }
        })
    }

    /// Keeps every file of the current catalog version on disk until dropped.
    /// A statement holds one from its start to its last row.
    pub fn pin(&self) -> ReadPin {
        self.gc.pin(|| self.catalog.snapshot().version)
    }

    pub fn gc(&self) -> &Arc<FileGc> {
        &self.gc
    }

    /// Creates the chunks the rows of `batch` fall into that do not exist yet.
    pub async fn ensure_chunks(
        &self,
        table: &TableDef,
        batch: &RecordBatch,
    ) -> Result<Arc<CatalogState>> {
        let state = self.catalog.snapshot();
        let Some(h) = &table.hypertable else {
            return Ok(state);
        };
        // The current chunks: `table` may predate a drop_chunks.
        let current = state
            .table_by_oid(table.oid)
            .ok_or_else(|| TemporaError::undefined_table(&table.name))?;
        let times = time_values(table, batch)?;
        let hashes = hash_values(table, batch)?;
        let index = current.chunk_index();
        // One point of each chunk to create.
        let mut needed: Vec<(tempora_catalog::ChunkCube, i64, Vec<i64>)> = Vec::new();
        let mut point = Vec::with_capacity(hashes.len());
        for (row, t) in times.into_iter().enumerate() {
            let Some(t) = t else { continue };
            row_hashes(&hashes, row, &mut point);
            if index.find(t, &point).is_some()
                || needed.iter().any(|(cube, ..)| cube_holds(cube, t, &point))
            {
                continue;
            }
            let cube = tempora_catalog::new_chunk_cube(current.chunks.values(), h, t, &point);
            needed.push((cube, t, point.clone()));
        }
        if needed.is_empty() {
            return Ok(state);
        }
        // Chunks are numbered in the order their first rows come, as
        // TimescaleDB numbers them.
        let oid = table.oid;
        self.catalog
            .commit(|state| {
                let Some(current) = state.table_by_oid(oid) else {
                    return Err(TemporaError::undefined_table(&table.name));
                };
                let Some(h) = &current.hypertable else {
                    return Err(TemporaError::internal("hypertable without its dimensions"));
                };
                // Placed again against the chunks as they are now (another
                // writer may have made some), and the ones made here.
                let mut created: Vec<ChunkDef> = Vec::new();
                let created_at = Some(chrono::Utc::now().timestamp_micros());
                for (_, t, point) in &needed {
                    if current.chunk_for(*t, point).is_some()
                        || created.iter().any(|c| c.contains(*t, point))
                    {
                        continue;
                    }
                    let cube = tempora_catalog::new_chunk_cube(
                        current.chunks.values().chain(created.iter()),
                        h,
                        *t,
                        point,
                    );
                    created
                        .push(cube.chunk(state.next_chunk_id + created.len() as u32, created_at));
                }
                Ok(created
                    .into_iter()
                    .map(|chunk| CatalogOp::CreateChunk { oid, chunk })
                    .collect())
            })
            .await
    }

    /// Durably inserts rows (already in the table's Arrow schema) and returns
    /// how many. The rows are acknowledged only once the WAL is synced.
    pub async fn insert(&self, oid: u32, batches: Vec<RecordBatch>) -> Result<u64> {
        self.write(vec![(oid, batches)]).await
    }

    /// Durably writes the rows of several tables as one atomic unit (one WAL
    /// record): after a crash all of them are there or none.
    pub async fn write(&self, writes: Vec<(u32, Vec<RecordBatch>)>) -> Result<u64> {
        self.write_with(
            writes
                .into_iter()
                .map(|(oid, b)| (oid, b, OnConflict::Error))
                .collect(),
            SyncCommit::On,
        )
        .await
    }

    /// [`Engine::write`] with a policy per table for rows whose unique key is
    /// taken (by stored rows or an earlier row of the same write).
    pub async fn write_with(
        &self,
        writes: Vec<(u32, Vec<RecordBatch>, OnConflict)>,
        sync: SyncCommit,
    ) -> Result<u64> {
        let written = self.write_entries(writes, sync).await?;
        Ok(written.iter().map(|(_, b)| b.num_rows() as u64).sum())
    }

    /// [`Engine::write_with`] for one table, returning the rows written: with
    /// [`OnConflict::Skip`], those whose keys were free when they were written
    /// (for `ON CONFLICT DO NOTHING RETURNING`).
    pub async fn write_returning(
        &self,
        oid: u32,
        batches: Vec<RecordBatch>,
        policy: OnConflict,
        sync: SyncCommit,
    ) -> Result<RecordBatch> {
        let written = self
            .write_entries(vec![(oid, batches, policy)], sync)
            .await?;
        match written.into_iter().next() {
            Some((_, b)) => Ok(b),
            None => {
                let state = self.catalog.snapshot();
                let table = state
                    .table_by_oid(oid)
                    .ok_or_else(|| TemporaError::internal(format!("no table with oid {oid}")))?;
                Ok(RecordBatch::new_empty(Arc::new(table.arrow_schema())))
            }
        }
    }

    /// Writes rows of tables as one WAL record; returns the rows written per table.
    async fn write_entries(
        &self,
        writes: Vec<(u32, Vec<RecordBatch>, OnConflict)>,
        sync: SyncCommit,
    ) -> Result<Vec<(u32, RecordBatch)>> {
        let mut entries: Vec<(TableDef, RecordBatch)> = Vec::with_capacity(writes.len());
        let mut policies: Vec<OnConflict> = Vec::with_capacity(writes.len());
        for (oid, batches, policy) in writes {
            let state = self.catalog.snapshot();
            let table = state
                .table_by_oid(oid)
                .ok_or_else(|| TemporaError::internal(format!("no table with oid {oid}")))?
                .clone();
            let schema = Arc::new(table.arrow_schema());
            // Rows planned before an ALTER TABLE take the table's current layout.
            let batches = batches
                .iter()
                .map(|b| columns::conform(&table, b))
                .collect::<Result<Vec<_>>>()?;
            let batch = concat_batches(&schema, &batches)
                .map_err(|e| TemporaError::internal(format!("insert: {e}")))?;
            if batch.num_rows() == 0 {
                continue;
            }
            check_not_null(&table, &batch, RowsFrom::Insert)?;
            entries.push((table, batch));
            policies.push(policy);
        }
        if entries.is_empty() {
            return Ok(vec![]);
        }
        let _unique = if entries
            .iter()
            .any(|(t, _)| !t.unique_keys.is_empty() || !t.foreign_keys.is_empty())
        {
            Some(self.unique_lock.lock().await)
        } else {
            None
        };
        for ((table, batch), policy) in entries.iter_mut().zip(&policies) {
            if !table.unique_keys.is_empty() {
                *batch = self.resolve_conflicts(table, batch, *policy).await?;
            }
        }
        entries.retain(|(_, b)| b.num_rows() > 0);
        for (table, batch) in &entries {
            if !table.foreign_keys.is_empty() {
                self.check_references(table, batch, &entries).await?;
            }
        }
        if entries.is_empty() {
            return Ok(vec![]);
        }
        self.wait_for_memory().await?;
        let mut record: Vec<(u32, RecordBatch)> =
            entries.iter().map(|(t, b)| (t.oid, b.clone())).collect();
        let mut payload = encode_write(&record)?;
        loop {
            let drops = self.catalog.snapshot().chunk_drops;
            for (table, batch) in entries.iter_mut() {
                let state = self.ensure_chunks(table, batch).await?;
                *table = state
                    .table_by_oid(table.oid)
                    .ok_or_else(|| TemporaError::undefined_table(&table.name))?
                    .clone();
            }
            let _gate = self.write_gate.read().await;
            let now = self.catalog.snapshot();
            if now.chunk_drops != drops {
                // A chunk these rows were mapped to may be gone: map them again.
                continue;
            }
            // ALTER TABLE and migrate_data commit under the gate: while it
            // is held, the layout the rows are in and the chunks they were
            // mapped to stay the table's.
            let mut altered = false;
            for (table, batch) in entries.iter_mut() {
                if let Some(current) = now.table_by_oid(table.oid) {
                    if current.columns != table.columns {
                        *batch = columns::conform(current, batch)?;
                        check_not_null(current, batch, RowsFrom::Insert)?;
                        *table = current.clone();
                        altered = true;
                    } else if current.hypertable != table.hypertable {
                        // Now a hypertable: the rows go to its chunks.
                        *table = current.clone();
                        altered = true;
                    }
                }
            }
            if altered {
                record = entries.iter().map(|(t, b)| (t.oid, b.clone())).collect();
                payload = encode_write(&record)?;
                continue;
            }
            let seq = self.wal.append_with(payload, sync).await?;
            let mut mem = self.mem.write();
            for (table, batch) in entries {
                mem.active.insert(&table, batch, seq)?;
            }
            break;
        }
        if self.needs_flush() {
            self.flush_nudge.notify_one();
        }
        Ok(record)
    }

    /// Checks inserted rows against the table's constraints (NOT NULL)
    /// before they are written.
    pub fn check_rows(&self, table: &TableDef, batch: &RecordBatch) -> Result<()> {
        check_not_null(table, batch, RowsFrom::Insert)
    }

    /// Checks the new versions of updated rows against the table's
    /// constraints (NOT NULL) before they are written.
    pub fn check_updated_rows(&self, table: &TableDef, batch: &RecordBatch) -> Result<()> {
        check_not_null(table, batch, RowsFrom::Update)
    }

    /// The rows of `batch` that may be written under `policy`: with
    /// [`OnConflict::Error`] all of them or a 23505 error, with
    /// [`OnConflict::Skip`] those whose keys are free (the first of repeats).
    pub async fn resolve_conflicts(
        &self,
        table: &TableDef,
        batch: &RecordBatch,
        policy: OnConflict,
    ) -> Result<RecordBatch> {
        let mut keep = vec![true; batch.num_rows()];
        for key in &table.unique_keys {
            let columns = unique::key_columns(table, key)?;
            let encoder = unique::KeyEncoder::new(table, columns.clone())?;
            let mut taken = self.taken_keys(table, &encoder, &columns, batch).await?;
            for (i, k) in encoder.keys(batch)?.into_iter().enumerate() {
                let Some(k) = k else { continue };
                if !keep[i] {
                    continue;
                }
                if !taken.insert(k) {
                    match policy {
                        OnConflict::Error => return Err(unique::violation(key, table, batch, i)),
                        OnConflict::Skip => keep[i] = false,
                    }
                }
            }
        }
        if keep.iter().all(|k| *k) {
            return Ok(batch.clone());
        }
        datafusion::arrow::compute::filter_record_batch(
            batch,
            &datafusion::arrow::array::BooleanArray::from(keep),
        )
        .map_err(|e| TemporaError::internal(e.to_string()))
    }

    /// Keys of one unique constraint used by stored rows a batch could collide
    /// with (same chunks, overlapping files and row groups).
    async fn taken_keys(
        &self,
        table: &TableDef,
        encoder: &unique::KeyEncoder,
        columns: &[usize],
        batch: &RecordBatch,
    ) -> Result<std::collections::HashSet<datafusion::arrow::row::OwnedRow>> {
        let range = match &table.hypertable {
            Some(_) => {
                let times: Vec<i64> = time_values(table, batch)?.into_iter().flatten().collect();
                let lo = times.iter().min().copied().unwrap_or(i64::MIN);
                let hi = times.iter().max().copied().unwrap_or(i64::MAX);
                Some((lo, hi))
            }
            None => None,
        };
        let existing = self.stored_key_columns(table.oid, columns, range).await?;
        unique::key_set(encoder, &existing)
    }

    /// The `columns` of the stored rows of a table (memtables and files; of a
    /// hypertable only those in the time `range`), batch by batch in
    /// `columns` order.
    async fn stored_key_columns(
        &self,
        oid: u32,
        columns: &[usize],
        range: Option<(i64, i64)>,
    ) -> Result<Vec<Vec<ArrayRef>>> {
        let snapshot = self.read_snapshot();
        let Some(def) = snapshot.catalog.table_by_oid(oid) else {
            return Ok(Default::default());
        };
        let time_index = def
            .hypertable
            .as_ref()
            .and_then(|h| def.column_index(&h.time_column));
        let range = range.filter(|_| time_index.is_some());
        let overlaps = |start: i64, end: i64| range.is_none_or(|(lo, hi)| end > lo && start <= hi);
        let mut existing: Vec<Vec<ArrayRef>> = Vec::new();
        for (chunk, batches) in snapshot.memtable_rows(oid) {
            if let Some(c) = chunk.and_then(|c| def.chunks.get(&c)) {
                if !overlaps(c.range_start, c.range_end) {
                    continue;
                }
            }
            for b in batches {
                existing.push(columns.iter().map(|i| b.column(*i).clone()).collect());
            }
        }
        let mut files: Vec<&FileDef> = def.files.iter().collect();
        for c in def.chunks.values() {
            if overlaps(c.range_start, c.range_end) {
                files.extend(c.files.iter().filter(|f| match (f.min_time, f.max_time) {
                    (Some(min), Some(max)) => overlaps(min, max.saturating_add(1)),
                    _ => true,
                }));
            }
        }
        // The projected file columns keep table order; put them in key order.
        let mut sorted = columns.to_vec();
        sorted.sort_unstable();
        for f in files {
            for b in unique::file_keys(self.store(), def, f, columns, time_index, range).await? {
                existing.push(
                    columns
                        .iter()
                        .map(|i| b.column(sorted.binary_search(i).unwrap_or(0)).clone())
                        .collect(),
                );
            }
        }
        Ok(existing)
    }

    /// Rows of `table` whose foreign key names no row of the referenced
    /// table give PostgreSQL's 23503 (MATCH SIMPLE: a key with a NULL is not
    /// checked). `pending` are the rows of the same write, which count as
    /// there. The caller holds the key lock.
    pub async fn check_references(
        &self,
        table: &TableDef,
        batch: &RecordBatch,
        pending: &[(TableDef, RecordBatch)],
    ) -> Result<()> {
        let state = self.catalog.snapshot();
        for fk in &table.foreign_keys {
            let referenced = if fk.ref_oid == table.oid {
                table
            } else {
                match state.table_by_oid(fk.ref_oid) {
                    Some(t) => t,
                    None => continue,
                }
            };
            let index = |t: &TableDef, c: &str| {
                t.column_index(c).ok_or_else(|| {
                    TemporaError::internal(format!("foreign key column \"{c}\" is gone"))
                })
            };
            let local = fk
                .columns
                .iter()
                .map(|c| index(table, c))
                .collect::<Result<Vec<_>>>()?;
            let remote = fk
                .ref_columns
                .iter()
                .map(|c| index(referenced, c))
                .collect::<Result<Vec<_>>>()?;
            let local_schema = table.arrow_schema();
            let remote_schema = referenced.arrow_schema();
            let types: Vec<DataType> = local
                .iter()
                .zip(&remote)
                .map(|(l, r)| {
                    unique::common_key_type(
                        local_schema.field(*l).data_type(),
                        remote_schema.field(*r).data_type(),
                    )
                })
                .collect();
            let encoder = unique::KeyEncoder::for_types(&types)?;
            let mine: Vec<ArrayRef> = local.iter().map(|i| batch.column(*i).clone()).collect();
            let keys = encoder.keys_of(&unique::cast_all(&mine, &types)?)?;
            if keys.iter().all(Option::is_none) {
                continue;
            }
            let mut stored = self
                .stored_key_columns(referenced.oid, &remote, None)
                .await?;
            for (_, b) in pending.iter().filter(|(t, _)| t.oid == referenced.oid) {
                stored.push(remote.iter().map(|i| b.column(*i).clone()).collect());
            }
            let stored = stored
                .iter()
                .map(|cols| unique::cast_all(cols, &types))
                .collect::<Result<Vec<_>>>()?;
            let existing = unique::key_set(&encoder, &stored)?;
            if let Some(row) = keys
                .iter()
                .position(|k| k.as_ref().is_some_and(|k| !existing.contains(k)))
            {
                return Err(unique::missing_reference(fk, table, referenced, batch, row));
            }
        }
        Ok(())
    }

    /// Holds a writer back while the active memtables are over budget and the
    /// previous flush is still writing: memory stays bounded at about two
    /// budgets whatever the ingest rate.
    async fn wait_for_memory(&self) -> Result<()> {
        loop {
            let notified = self.flushed.notified();
            {
                let mem = self.mem.read();
                let bytes = mem.active.num_bytes();
                if bytes >= self.options.flush_bytes.saturating_mul(2) {
                    if let Some(e) = self.flush_error.lock().clone() {
                        return Err(e.with_hint(
                            "Rows are kept in memory while flushes fail; free disk space for the data directory.",
                        ));
                    }
                }
                if mem.frozen.is_none() || bytes < self.options.flush_bytes {
                    return Ok(());
                }
            }
            self.flush_nudge.notify_one();
            notified.await;
        }
    }

    fn needs_flush(&self) -> bool {
        let mem = self.mem.read();
        mem.frozen.is_none()
            && (mem.active.num_rows() >= self.options.flush_rows
                || mem.active.num_bytes() >= self.options.flush_bytes)
    }

    /// Number of rows in memtables (active and frozen).
    pub fn unflushed_rows(&self) -> usize {
        let mem = self.mem.read();
        mem.active.num_rows() + mem.frozen.as_ref().map_or(0, |f| f.num_rows())
    }

    /// Moves the active memtables aside for a flush (None when empty).
    fn freeze_active(&self) -> Option<Arc<Memtables>> {
        let mut mem = self.mem.write();
        if mem.active.num_rows() == 0 {
            return None;
        }
        let frozen = Arc::new(std::mem::take(&mut mem.active));
        mem.frozen = Some(frozen.clone());
        Some(frozen)
    }

    /// Writes every memtable row to Parquet files, commits them to the catalog
    /// and drops the WAL segments they covered.
    pub async fn flush(&self) -> Result<()> {
        let guard = self.lock_files().await;
        self.flush_locked(&guard).await
    }

    /// Takes the exclusive right to change files (flush, rewrite, compaction).
    /// The lock writers hold from checking unique and foreign keys to their
    /// rows being in the memtable. A statement that deletes referenced rows
    /// holds it from its reference check to its commit (after the files
    /// lock, the only order both are taken in).
    pub async fn lock_keys(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.unique_lock.lock().await
    }

    pub async fn lock_files(&self) -> FilesGuard {
        FilesGuard {
            _guard: self.files_lock.clone().lock_owned().await,
        }
    }

    /// [`Engine::flush`] for a caller that already holds the files lock.
    pub async fn flush_locked(&self, _guard: &FilesGuard) -> Result<()> {
        let (frozen, boundary) = {
            let _gate = self.write_gate.write().await;
            if self.mem.read().active.num_rows() == 0 {
                return Ok(());
            }
            // Rotate before freezing: if the WAL cannot start a new segment
            // (disk full), the rows simply stay in the active memtable.
            let boundary = self.wal.rotate().await?;
            let Some(frozen) = self.freeze_active() else {
                return Ok(());
            };
            (frozen, boundary)
        };
        let started = std::time::Instant::now();
        // A flush a transaction block's statement sets off (CHECKPOINT, an
        // ALTER TABLE) moves rows of the shared catalog's tables only.
        let result =
            tempora_catalog::transaction::outside(self.write_frozen(&frozen, boundary)).await;
        if let Err(e) = &result {
            // Put the rows back so they stay readable and a later flush retries.
            let mut mem = self.mem.write();
            if let Some(f) = mem.frozen.take() {
                let mut restored = (*f).clone();
                restored.absorb(std::mem::take(&mut mem.active));
                mem.active = restored;
            }
            drop(mem);
            *self.flush_error.lock() = Some(e.clone());
            self.flushed.notify_waiters();
            tracing::error!(error = %e, "flush failed; rows stay in memory and the WAL");
            return result;
        }
        *self.flush_error.lock() = None;
        self.flushed.notify_waiters();
        self.compact_nudge.notify_one();
        self.wal.truncate_through(boundary).await?;
        tracing::info!(
            rows = frozen.num_rows(),
            ms = started.elapsed().as_millis() as u64,
            wal_seq = boundary,
            "flushed memtables to parquet"
        );
        Ok(())
    }

    /// Writes rows of one table (and chunk) as a new Parquet file, not yet
    /// listed by the catalog: [`Engine::commit_files`] makes it part of the table.
    pub async fn write_table_file(
        &self,
        table: &TableDef,
        chunk: Option<u32>,
        batches: &[RecordBatch],
        tag: &str,
        layout: Layout,
    ) -> Result<FileDef> {
        let path = self.new_file_path(table.oid, chunk, tag);
        parquet_io::write_file(self.store(), &path, table, batches, layout).await
    }

    /// A path no file has had, for a new file of a table (and chunk).
    pub fn new_file_path(&self, oid: u32, chunk: Option<u32>, tag: &str) -> String {
        let n = self.file_counter.fetch_add(1, Ordering::Relaxed);
        let version = self.catalog.snapshot().version;
        match chunk {
            Some(c) => format!("chunks/{oid}/{c}/{tag}-{version:012}-{n}.parquet"),
            None => format!("tables/{oid}/{tag}-{version:012}-{n}.parquet"),
        }
    }

    /// Reads one of a table's files whole, in the table's current layout
    /// (the file may predate an ALTER TABLE: [`columns`]).
    pub async fn read_table_file(&self, table: &TableDef, path: &str) -> Result<Vec<RecordBatch>> {
        parquet_io::read_file(self.store(), path)
            .await?
            .iter()
            .map(|b| columns::conform(table, b))
            .collect()
    }

    /// Atomically replaces files of a table (one catalog commit); the removed
    /// files are deleted once no statement that could read them is running.
    pub async fn commit_files(&self, guard: &FilesGuard, changes: FileChanges) -> Result<()> {
        self.commit_files_with(guard, changes, |_| Ok(vec![]))
            .await
            .map(|_| ())
    }

    /// [`Engine::commit_files`], with more ops (built against the state
    /// committed to) in the same commit.
    pub async fn commit_files_with(
        &self,
        _guard: &FilesGuard,
        changes: FileChanges,
        mut more: impl FnMut(&CatalogState) -> Result<Vec<CatalogOp>>,
    ) -> Result<Arc<CatalogState>> {
        let state = self
            .catalog
            .commit(|state| {
                let mut ops = file_change_ops(state, &changes)?;
                ops.extend(more(state)?);
                Ok(ops)
            })
            .await?;
        // Inside a transaction block the old files stay listed until COMMIT
        // (`Engine::commit_transaction` retires them).
        if !tempora_catalog::transaction::capturing_data() {
            self.gc
                .retire(state.version, changes.remove.into_iter().map(|(_, p)| p));
        }
        Ok(state)
    }

    /// Lists files written for a table outside the WAL (a large COPY) in one
    /// catalog commit: all of their rows become visible at once.
    pub async fn commit_new_files(
        &self,
        oid: u32,
        files: Vec<(Option<u32>, FileDef)>,
    ) -> Result<()> {
        self.catalog
            .commit(|state| {
                let table = state
                    .table_by_oid(oid)
                    .ok_or_else(|| TemporaError::internal("table dropped during COPY"))?;
                let mut ops = invalidations(state, oid, files.iter().map(|(_, f)| f));
                ops.extend(add_file_ops(table, &files, "COPY")?);
                Ok(ops)
            })
            .await?;
        self.compact_nudge.notify_one();
        Ok(())
    }

    /// Drops whole chunks of a hypertable with their rows, in memtables and
    /// in files, in one catalog commit; returns the chunks dropped (those of
    /// `chunks` that still existed). Their files are deleted once no running
    /// statement can read them.
    pub async fn drop_chunks(&self, oid: u32, chunks: &[u32]) -> Result<Vec<ChunkDef>> {
        let _guard = self.lock_files().await;
        // No write is between its WAL append and its memtable insert while
        // the gate is held, and writers that mapped rows to these chunks
        // before the commit map them again after it (`chunk_drops`).
        let _gate = self.write_gate.write().await;
        let through_wal_seq = self.wal.last_seq();
        let mut dropped: Vec<ChunkDef> = Vec::new();
        let state = self
            .catalog
            .commit_and_publish(
                |state| {
                    let table = state.table_by_oid(oid).ok_or_else(|| {
                        TemporaError::internal(format!("no table with oid {oid}"))
                    })?;
                    dropped = chunks
                        .iter()
                        .filter_map(|id| table.chunks.get(id).cloned())
                        .collect();
                    if dropped.is_empty() {
                        return Ok(vec![]);
                    }
                    // The aggregates reading the table forget the dropped
                    // ranges at their next refresh, as TimescaleDB's do.
                    let mut ops: Vec<CatalogOp> = dropped
                        .iter()
                        .filter_map(|c| state.invalidation(oid, c.range_start, c.range_end - 1))
                        .collect();
                    ops.push(CatalogOp::DropChunks {
                        oid,
                        chunks: dropped.iter().map(|c| c.id).collect(),
                        through_wal_seq,
                    });
                    Ok(ops)
                },
                |_| {
                    self.mem.write().active.remove_chunks(oid, chunks);
                },
            )
            .await?;
        self.gc.retire(
            state.version,
            dropped
                .iter()
                .flat_map(|c| c.files.iter().map(|f| f.path.clone())),
        );
        tracing::info!(
            oid,
            chunks = dropped.len(),
            rows = dropped
                .iter()
                .flat_map(|c| c.files.iter())
                .map(|f| f.rows)
                .sum::<u64>(),
            "dropped chunks"
        );
        Ok(dropped)
    }

    /// Whether the table holds any row, in files or memtables.
    pub fn has_rows(&self, table: &TableDef) -> bool {
        table.all_files().any(|f| f.rows > 0)
            || self
                .read_snapshot()
                .memtable_rows(table.oid)
                .values()
                .any(|b| b.iter().any(|b| b.num_rows() > 0))
    }

    /// Commits a change to tables whose stored rows must all be in files
    /// when it is made: ALTER TABLE (rows stored before are read through
    /// their column ids, [`columns`]) and TRUNCATE.
    ///
    /// Every row of the tables is flushed first and the commit is made under
    /// the write gate with none of theirs in the memtables: no WAL record
    /// replayed after the change holds rows of the tables from before it,
    /// and no write is between its WAL append and its memtable insert
    /// (writers bring rows planned before an ALTER TABLE to the new layout
    /// under the gate). Files lock held: no rewrite, merge or compression
    /// runs across it.
    pub async fn commit_flushed(
        &self,
        oids: &[u32],
        build: impl FnOnce(&CatalogState) -> Result<Vec<CatalogOp>>,
    ) -> Result<Arc<CatalogState>> {
        let guard = self.lock_files().await;
        let _gate = self.flushed_and_gated(&guard, oids).await?;
        self.catalog.commit(build).await
    }

    /// COMMIT of a transaction block's catalog changes: the rows of the
    /// tables it alters or drops are flushed first (under the write gate, as
    /// [`Engine::commit_flushed`] does), and the files of dropped tables and
    /// those its DELETEs and UPDATEs rewrote retired once the commit is durable.
    pub async fn commit_transaction(&self, tx: &tempora_catalog::TxCatalog) -> Result<()> {
        if tx.is_empty() {
            return Ok(());
        }
        let (changed, dropped) = tx.changed_tables();
        let rewritten = tx.removed_files();
        let guard = self.lock_files().await;
        let _gate = if changed.is_empty() {
            None
        } else {
            Some(self.flushed_and_gated(&guard, &changed).await?)
        };
        let (before, after) = self.catalog.commit_transaction(tx).await?;
        self.gc.retire(after.version, rewritten);
        let files = dropped
            .into_iter()
            .filter_map(|oid| {
                let t = before.table_by_oid(oid)?;
                Some((oid, t.all_files().map(|f| f.path.clone()).collect()))
            })
            .collect();
        self.drop_tables(files);
        Ok(())
    }

    /// The files lock, with every row of the tables in files and the write
    /// gate held (no write can add one back) until both guards are dropped:
    /// the end of a rewrite that must cover every row of the tables.
    pub async fn lock_flushed(
        &self,
        oids: &[u32],
    ) -> Result<(FilesGuard, tokio::sync::RwLockWriteGuard<'_, ()>)> {
        let guard = self.lock_files().await;
        let gate = self.flushed_and_gated(&guard, oids).await?;
        Ok((guard, gate))
    }

    /// Flushes until none of the tables' rows are in the memtables, and
    /// returns holding the write gate (no write can add one back).
    async fn flushed_and_gated(
        &self,
        guard: &FilesGuard,
        oids: &[u32],
    ) -> Result<tokio::sync::RwLockWriteGuard<'_, ()>> {
        loop {
            self.flush_locked(guard).await?;
            let gate = self.write_gate.write().await;
            let unflushed = self
                .mem
                .read()
                .active
                .rows()
                .keys()
                .any(|(o, _)| oids.contains(o));
            if !unflushed {
                return Ok(gate);
            }
            // Written between the flush and the gate: flush again.
        }
    }

    /// Hands out `n` values of a sequence. Values are logged ahead in the
    /// catalog 32 at a time, so most calls commit nothing; after a restart
    /// numbering goes on past the logged ones, as in PostgreSQL.
    pub async fn next_values(&self, oid: u32, n: u64) -> Result<Vec<i64>> {
        const LOG_AHEAD: u64 = 32;
        let mut cache = self.sequences.lock().await;
        let state = self.catalog.snapshot();
        let seq = state.sequences.get(&oid).ok_or_else(|| {
            TemporaError::new(SqlState::UNDEFINED_TABLE, "sequence does not exist")
        })?;
        // A sequence created by the caller's open transaction block is not
        // cached: its oid is free again if the block rolls back. Its state
        // in the block's catalog is exact (nothing logged ahead).
        let in_block = !self.catalog.shared_snapshot().sequences.contains_key(&oid);
        let mut cursor = match cache.get(&oid) {
            Some(c) if !in_block => *c,
            _ => SequenceCursor::of(seq),
        };
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let value = if cursor.called {
                seq.step(cursor.last).ok_or_else(|| {
                    let (bound, value) = if seq.increment > 0 {
                        ("maximum", seq.max)
                    } else {
                        ("minimum", seq.min)
                    };
                    TemporaError::new(
                        SqlState::SEQUENCE_GENERATOR_LIMIT_EXCEEDED,
                        format!(
                            "nextval: reached {bound} value of sequence \"{}\" ({value})",
                            seq.name
                        ),
                    )
                })?
            } else {
                cursor.last
            };
            cursor.last = value;
            cursor.called = true;
            out.push(value);
        }
        if in_block {
            let mut logged = seq.clone();
            logged.reserved = Some(cursor.last);
            logged.pending = false;
            self.catalog
                .commit(|_| Ok(vec![CatalogOp::PutSequence(logged)]))
                .await?;
            return Ok(out);
        }
        if cursor.logged_ahead >= n {
            cursor.logged_ahead -= n;
        } else if n > 0 {
            let mut logged = seq.clone();
            let mut reserved = cursor.last;
            let mut ahead = 0;
            while ahead < LOG_AHEAD {
                match seq.step(reserved) {
                    Some(next) => reserved = next,
                    None => break,
                }
                ahead += 1;
            }
            logged.reserved = Some(reserved);
            logged.pending = false;
            self.catalog
                .commit(|_| Ok(vec![CatalogOp::PutSequence(logged)]))
                .await?;
            cursor.logged_ahead = ahead;
        }
        cache.insert(oid, cursor);
        Ok(out)
    }

    /// `setval`: the sequence's next value follows `value` (`is_called`) or
    /// is `value`.
    pub async fn set_sequence(&self, oid: u32, value: i64, is_called: bool) -> Result<()> {
        let mut cache = self.sequences.lock().await;
        let state = self.catalog.snapshot();
        let Some(seq) = state.sequences.get(&oid) else {
            return Err(TemporaError::new(
                SqlState::UNDEFINED_TABLE,
                "sequence does not exist",
            ));
        };
        if value > seq.max || value < seq.min {
            return Err(TemporaError::new(
                SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                format!(
                    "setval: value {value} is out of bounds for sequence \"{}\" ({}..{})",
                    seq.name, seq.min, seq.max
                ),
            ));
        }
        let mut logged = seq.clone();
        logged.reserved = Some(value);
        logged.pending = !is_called;
        self.catalog
            .commit(|_| Ok(vec![CatalogOp::PutSequence(logged)]))
            .await?;
        if !self.catalog.shared_snapshot().sequences.contains_key(&oid) {
            // Created by the open block: not cached (see next_values).
            return Ok(());
        }
        cache.insert(
            oid,
            SequenceCursor {
                last: value,
                called: is_called,
                logged_ahead: 0,
            },
        );
        Ok(())
    }

    /// Commits catalog ops that create, change or drop sequences with
    /// `nextval` held off. A changed sequence keeps its position unless the
    /// change starts it again (`pending`, as `ALTER SEQUENCE ... RESTART`).
    pub async fn change_sequences(
        &self,
        mut build: impl FnMut(&CatalogState) -> Result<Vec<CatalogOp>>,
    ) -> Result<()> {
        let mut cache = self.sequences.lock().await;
        let mut touched: Vec<(u32, bool)> = vec![];
        self.catalog
            .commit(|state| {
                let ops = build(state)?;
                touched = ops
                    .iter()
                    .filter_map(|op| match op {
                        CatalogOp::PutSequence(s) => Some((s.oid, s.pending)),
                        CatalogOp::DropSequence { oid } => Some((*oid, true)),
                        _ => None,
                    })
                    .collect();
                Ok(ops)
            })
            .await?;
        for (oid, restart) in touched {
            if restart {
                cache.remove(&oid);
            } else if let Some(c) = cache.get_mut(&oid) {
                c.logged_ahead = 0;
            }
        }
        Ok(())
    }

    /// Where a sequence stands, for reads of the sequence relation and
    /// `pg_sequences`: its last value, whether that value was handed out,
    /// and how many values past it are logged (`log_cnt`).
    pub async fn sequence_position(&self, seq: &tempora_catalog::SequenceDef) -> (i64, bool, u64) {
        let cache = self.sequences.lock().await;
        let c = cache
            .get(&seq.oid)
            .copied()
            .unwrap_or_else(|| SequenceCursor::of(seq));
        (c.last, c.called, c.logged_ahead)
    }

    /// Makes a plain table holding rows a hypertable (`create_hypertable(...,
    /// migrate_data => true)`): `build` gives the ops that make it one, and
    /// its rows are written again as files of the chunks they fall in, all
    /// listed by one catalog commit with those ops. Writers wait meanwhile
    /// (the table is locked, as in TimescaleDB). Returns the rows moved.
    pub async fn migrate_to_hypertable(
        &self,
        oid: u32,
        mut build: impl FnMut(&CatalogState) -> Result<Vec<CatalogOp>>,
    ) -> Result<u64> {
        let guard = self.lock_files().await;
        let gate = self.flushed_and_gated(&guard, &[oid]).await?;
        let state = self.catalog.snapshot();
        let table = state
            .table_by_oid(oid)
            .ok_or_else(|| TemporaError::internal(format!("no table with oid {oid}")))?
            .clone();
        // The table as the commit will leave it, to write its chunks' files.
        let mut after = (*state).clone();
        for op in build(&state)? {
            after.apply(&op)?;
        }
        let hyper = after
            .table_by_oid(oid)
            .ok_or_else(|| TemporaError::internal("table gone while migrating"))?
            .clone();
        let dims = hyper
            .hypertable
            .clone()
            .ok_or_else(|| TemporaError::internal("migrating a table to no hypertable"))?;
        let mut rows_by_chunk: BTreeMap<tempora_catalog::ChunkCube, Vec<RecordBatch>> =
            BTreeMap::new();
        let mut moved = 0u64;
        for f in &table.files {
            for batch in self.read_table_file(&hyper, &f.path).await? {
                let times = time_values(&hyper, &batch)?;
                if times.iter().any(Option::is_none) {
                    let time = hyper.hypertable.as_ref().map_or("", |h| &h.time_column);
                    return Err(TemporaError::new(
                        SqlState::NOT_NULL_VIOLATION,
                        format!(
                            "column \"{time}\" of relation \"{}\" contains null values",
                            table.name
                        ),
                    ));
                }
                let hashes = hash_values(&hyper, &batch)?;
                let mut point = Vec::with_capacity(hashes.len());
                let cubes: Vec<tempora_catalog::ChunkCube> = times
                    .into_iter()
                    .enumerate()
                    .map(|(row, t)| {
                        row_hashes(&hashes, row, &mut point);
                        tempora_catalog::ChunkCube::aligned(&dims, t.unwrap_or(0), &point)
                    })
                    .collect();
                let mut distinct = cubes.clone();
                distinct.sort_unstable();
                distinct.dedup();
                for cube in distinct {
                    let mask: datafusion::arrow::array::BooleanArray =
                        cubes.iter().map(|c| Some(*c == cube)).collect();
                    let part = datafusion::arrow::compute::filter_record_batch(&batch, &mask)
                        .map_err(|e| TemporaError::internal(e.to_string()))?;
                    moved += part.num_rows() as u64;
                    rows_by_chunk.entry(cube).or_default().push(part);
                }
            }
        }
        // Chunk ids are taken at the commit: writers of other tables may
        // create chunks meanwhile (they do before the gate). The ids in the
        // files' paths are only names.
        let mut written: Vec<(&tempora_catalog::ChunkCube, FileDef)> = Vec::new();
        let result = async {
            for ((cube, batches), id) in rows_by_chunk.iter().zip(after.next_chunk_id..) {
                let file = self
                    .write_table_file(&hyper, Some(id), batches, "migrated", Layout::Merged)
                    .await?;
                written.push((cube, file));
            }
            let old: Vec<String> = table.files.iter().map(|f| f.path.clone()).collect();
            let created_at = Some(chrono::Utc::now().timestamp_micros());
            let state = self
                .catalog
                .commit(|current| {
                    let mut ops = build(current)?;
                    for ((cube, file), id) in written.iter().zip(current.next_chunk_id..) {
                        let mut chunk = cube.chunk(id, created_at);
                        chunk.files = vec![file.clone()];
                        ops.push(CatalogOp::CreateChunk { oid, chunk });
                    }
                    if !old.is_empty() {
                        ops.push(CatalogOp::RemoveFiles {
                            oid,
                            chunk: None,
                            paths: old.clone(),
                        });
                    }
                    Ok(ops)
                })
                .await?;
            self.gc.retire(state.version, old);
            Ok(())
        }
        .await;
        if let Err(e) = result {
            self.gc.retire(0, written.into_iter().map(|(_, f)| f.path));
            return Err(e);
        }
        drop(gate);
        drop(guard);
        tracing::info!(table = %table.name, rows = moved, "migrated rows to chunks");
        Ok(moved)
    }

    /// Empties tables (TRUNCATE) in one catalog commit: a hypertable's
    /// chunks are dropped, a plain table's files removed, once no running
    /// statement can read them. The continuous aggregates reading the
    /// tables `rematerialize` make every bucket again at their next refresh.
    pub async fn truncate(&self, oids: &[u32], rematerialize: &[u32]) -> Result<()> {
        let mut retired: Vec<String> = Vec::new();
        let state = self
            .commit_flushed(oids, |state| {
                retired.clear();
                let mut ops: Vec<CatalogOp> = rematerialize
                    .iter()
                    .filter_map(|oid| state.invalidation(*oid, i64::MIN, i64::MAX - 1))
                    .collect();
                for oid in oids {
                    let t = state.table_by_oid(*oid).ok_or_else(|| {
                        TemporaError::internal(format!("no table with oid {oid}"))
                    })?;
                    retired.extend(t.all_files().map(|f| f.path.clone()));
                    // Every bucket an aggregate made of the rows is stale.
                    ops.extend(state.invalidation(*oid, i64::MIN, i64::MAX - 1));
                    if !t.chunks.is_empty() {
                        ops.push(CatalogOp::DropChunks {
                            oid: *oid,
                            chunks: t.chunks.keys().copied().collect(),
                            through_wal_seq: self.wal.last_seq(),
                        });
                    }
                    if !t.files.is_empty() {
                        ops.push(CatalogOp::RemoveFiles {
                            oid: *oid,
                            chunk: None,
                            paths: t.files.iter().map(|f| f.path.clone()).collect(),
                        });
                    }
                }
                Ok(ops)
            })
            .await?;
        self.gc.retire(state.version, retired);
        Ok(())
    }

    /// After a DROP TABLE commit: forgets the tables' unflushed rows and
    /// retires their files.
    pub fn drop_tables(&self, dropped: Vec<(u32, Vec<String>)>) {
        let version = self.catalog.snapshot().version;
        for (oid, files) in dropped {
            self.mem.write().active.remove_table(oid);
            self.gc.retire(version, files);
        }
    }

    async fn write_frozen(&self, frozen: &Arc<Memtables>, boundary: u64) -> Result<()> {
        let state = self.catalog.snapshot();
        let mut added: Vec<(u32, Option<u32>, FileDef)> = Vec::new();
        for ((oid, chunk), batches) in frozen.rows() {
            let Some(table) = state.table_by_oid(*oid) else {
                continue;
            };
            let n = self.file_counter.fetch_add(1, Ordering::Relaxed);
            let path = match chunk {
                Some(c) => format!("chunks/{oid}/{c}/{boundary:020}-{n}.parquet"),
                None => format!("tables/{oid}/{boundary:020}-{n}.parquet"),
            };
            let file =
                parquet_io::write_file(self.store(), &path, table, batches, Layout::Ingest).await?;
            added.push((*oid, *chunk, file));
        }
        self.catalog
            .commit_and_publish(
                |state| {
                    let mut ops = Vec::new();
                    for (oid, chunk, file) in &added {
                        let Some(t) = state.table_by_oid(*oid) else {
                            continue; // dropped meanwhile: its file is garbage
                        };
                        if let Some(c) = chunk {
                            if !t.chunks.contains_key(c) {
                                continue;
                            }
                        }
                        ops.extend(invalidations(state, *oid, [file]));
                        ops.push(CatalogOp::AddFiles {
                            oid: *oid,
                            chunk: *chunk,
                            files: vec![file.clone()],
                        });
                    }
                    ops.push(CatalogOp::SetFlushedWalSeq(boundary));
                    Ok(ops)
                },
                |_| {
                    self.mem.write().frozen = None;
                },
            )
            .await?;
        // Files of tables dropped while they were written are nobody's.
        let state = self.catalog.snapshot();
        let unlisted: Vec<String> = added
            .iter()
            .filter(|(oid, chunk, _)| {
                state
                    .table_by_oid(*oid)
                    .is_none_or(|t| chunk.is_some_and(|c| !t.chunks.contains_key(&c)))
            })
            .map(|(_, _, f)| f.path.clone())
            .collect();
        self.gc.retire(state.version, unlisted);
        Ok(())
    }

    /// Background loop: flushes on size (when nudged) and on age.
    pub async fn run_flusher(self: Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut shutdown = shutdown;
        loop {
            tokio::select! {
                _ = self.flush_nudge.notified() => {}
                _ = tokio::time::sleep(self.options.flush_interval) => {}
                _ = shutdown.changed() => return,
            }
            if self.unflushed_rows() == 0 {
                continue;
            }
            if let Err(e) = self.flush().await {
                tracing::error!(error = %e, "background flush failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// Background loop: merges small files of a chunk into larger ones, after
    /// flushes and COPYs have added files, and every minute.
    pub async fn run_compactor(self: Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut shutdown = shutdown;
        loop {
            tokio::select! {
                _ = self.compact_nudge.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = shutdown.changed() => return,
            }
            loop {
                match self.compact_once().await {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "compaction failed; files left as they were");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        break;
                    }
                }
            }
        }
    }

    /// Asks the compactor to look for small files.
    pub fn nudge_compactor(&self) {
        self.compact_nudge.notify_one();
    }

    /// Marks files an open transaction block rewrote: compaction leaves
    /// them alone until [`Engine::release_files`].
    pub fn hold_files(&self, paths: &[String]) {
        let mut held = self.held_files.lock();
        for p in paths {
            *held.entry(p.clone()).or_insert(0) += 1;
        }
    }

    /// Undoes [`Engine::hold_files`] (the block ended).
    pub fn release_files(&self, paths: &[String]) {
        let mut held = self.held_files.lock();
        for p in paths {
            if let Some(n) = held.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    held.remove(p);
                }
            }
        }
    }

    /// Merges one group of small files (the chunk with the most of them);
    /// returns whether it merged anything.
    pub async fn compact_once(&self) -> Result<bool> {
        let state = self.catalog.snapshot();
        let picked = {
            let held = self.held_files.lock();
            compaction::pick(&state, &self.options.compaction, |path| {
                held.contains_key(path)
            })
        };
        let Some((oid, chunk, files)) = picked else {
            return Ok(false);
        };
        let guard = self.lock_files().await;
        // Still all there? (a DELETE may have rewritten them meanwhile)
        let now = self.catalog.snapshot();
        let Some(table) = now.table_by_oid(oid).cloned() else {
            return Ok(false);
        };
        let listed: Vec<&FileDef> = match chunk {
            Some(c) => table
                .chunks
                .get(&c)
                .map(|c| c.files.iter().collect())
                .unwrap_or_default(),
            None => table.files.iter().collect(),
        };
        if !files
            .iter()
            .all(|f| listed.iter().any(|l| l.path == f.path))
        {
            return Ok(true);
        }
        let started = std::time::Instant::now();
        let mut batches = Vec::new();
        for f in &files {
            batches.extend(self.read_table_file(&table, &f.path).await?);
        }
        let merged = self
            .write_table_file(&table, chunk, &batches, "merged", Layout::Merged)
            .await?;
        drop(batches);
        let rows: u64 = files.iter().map(|f| f.rows).sum();
        if merged.rows != rows {
            self.gc.retire(0, [merged.path.clone()]);
            return Err(TemporaError::internal(format!(
                "compaction read {} rows of {rows}",
                merged.rows
            )));
        }
        let changes = FileChanges {
            oid,
            remove: files.iter().map(|f| (chunk, f.path.clone())).collect(),
            add: vec![(chunk, merged.clone())],
            keeps_rows: true,
        };
        if let Err(e) = self.commit_files(&guard, changes).await {
            self.gc.retire(0, [merged.path]);
            return Err(e);
        }
        tracing::info!(
            table = %table.name,
            chunk = ?chunk,
            files = files.len(),
            rows,
            bytes = merged.bytes,
            ms = started.elapsed().as_millis() as u64,
            "merged small files"
        );
        Ok(true)
    }

    /// Flushes and stops the WAL writer (graceful shutdown).
    pub async fn close(&self) -> Result<()> {
        let res = self.flush().await;
        self.wal.close();
        res
    }

    /// Stops the WAL writer without flushing: the database is being dropped.
    pub fn stop_wal(&self) {
        self.wal.close();
    }
}

/// PostgreSQL's 23502 for a NULL in a NOT NULL column.
/// The catalog ops listing new files of `table`, each in its chunk (which
/// must still exist: `during` names what was writing them).
fn add_file_ops(
    table: &TableDef,
    files: &[(Option<u32>, FileDef)],
    during: &str,
) -> Result<Vec<CatalogOp>> {
    files
        .iter()
        .map(|(chunk, file)| {
            if chunk.is_some_and(|c| !table.chunks.contains_key(&c)) {
                return Err(TemporaError::new(
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    format!("could not serialize access: a chunk was dropped during {during}"),
                ));
            }
            Ok(CatalogOp::AddFiles {
                oid: table.oid,
                chunk: *chunk,
                files: vec![file.clone()],
            })
        })
        .collect()
}

/// How rows reach a table, which decides the wording of a NOT NULL error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowsFrom {
    /// INSERT or COPY: a hypertable routes each row by its time, and
    /// TimescaleDB refuses a NULL time with its own message first.
    Insert,
    /// UPDATE: the rows land in their chunks as PostgreSQL rows.
    Update,
}

/// TimescaleDB's error for a row without a time, raised when the row is
/// routed to a chunk (before PostgreSQL checks the table's constraints).
fn null_partitioning_column(column: &str) -> TemporaError {
    TemporaError::new(
        SqlState::NOT_NULL_VIOLATION,
        format!("NULL value in column \"{column}\" violates not-null constraint"),
    )
    .with_hint("Columns used for time partitioning cannot be NULL.")
}

fn check_not_null(table: &TableDef, batch: &RecordBatch, from: RowsFrom) -> Result<()> {
    if let (RowsFrom::Insert, Some(h)) = (from, &table.hypertable) {
        if let Some(i) = table.columns.iter().position(|c| c.name == h.time_column) {
            if batch.column(i).null_count() > 0 {
                return Err(null_partitioning_column(&h.time_column));
            }
        }
    }
    for (i, col) in table.columns.iter().enumerate() {
        if !col.not_null {
            continue;
        }
        let arr: &ArrayRef = batch.column(i);
        if arr.null_count() > 0 {
            return Err(TemporaError::new(
                SqlState::NOT_NULL_VIOLATION,
                format!(
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    col.name, table.name
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn batch(names: &[&str], ids: &[i32]) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int32, false),
                Field::new("name", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int32Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn replace_record_round_trips() {
        let keys = batch(&["a"], &[1]).project(&[0]).unwrap();
        let rows = batch(&["b", "c"], &[1, 2]);
        let payload = encode_replace(42, &keys, &rows).unwrap();
        // Kind 3, then the table's oid.
        assert_eq!(&payload[..5], &[3, 42, 0, 0, 0]);
        let entries = decode_write(&payload).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].oid, 42);
        assert_eq!(entries[0].delete_keys, vec![keys]);
        assert_eq!(entries[0].rows, vec![rows]);
        // A cut record is corrupt, not a shorter one.
        let err = decode_write(&payload[..payload.len() - 3]).unwrap_err();
        assert_eq!(err.code, SqlState::DATA_CORRUPTED);
    }

    #[test]
    fn write_record_keeps_its_layout() {
        let rows = batch(&["x"], &[7]);
        let payload = encode_write(&[(5, rows.clone()), (6, rows.clone())]).unwrap();
        assert_eq!(&payload[..9], &[2, 2, 0, 0, 0, 5, 0, 0, 0]);
        let entries = decode_write(&payload).unwrap();
        let got: Vec<(u32, usize, usize)> = entries
            .iter()
            .map(|e| (e.oid, e.delete_keys.len(), e.rows.len()))
            .collect();
        assert_eq!(got, vec![(5, 0, 1), (6, 0, 1)]);
    }
}
