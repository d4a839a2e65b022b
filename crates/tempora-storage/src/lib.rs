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
//! ```
//! A reader takes a [`ReadSnapshot`]: one catalog state plus the memtable rows
//! not yet in the files that state lists, so it never sees a row twice or misses one.

pub mod memtable;
pub mod parquet_io;
pub mod wal;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use object_store::ObjectStore;
use parking_lot::RwLock;
use tempora_catalog::{chunk_range, Catalog, CatalogOp, CatalogState, ChunkDef, FileDef, TableDef};
use tempora_common::{Result, SqlState, TemporaError};

pub use memtable::{MemRows, Memtables};
use wal::{Wal, WalOptions};

/// Tuning of the storage engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub data_dir: PathBuf,
    /// Flush once the active memtables hold this many rows.
    pub flush_rows: usize,
    /// Flush once the active memtables hold this many bytes.
    pub flush_bytes: usize,
    /// Flush at least this often while there are unflushed rows.
    pub flush_interval: Duration,
    /// fdatasync the WAL before acknowledging (PostgreSQL's synchronous_commit).
    pub sync_commit: bool,
}

impl EngineOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            flush_rows: 1_000_000,
            flush_bytes: 256 << 20,
            flush_interval: Duration::from_secs(300),
            sync_commit: true,
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

/// The storage engine of one data directory.
pub struct Engine {
    options: EngineOptions,
    catalog: Arc<Catalog>,
    wal: Arc<Wal>,
    mem: RwLock<MemState>,
    /// Held (shared) by an insert from its WAL append until its rows are in the
    /// memtable; a flush takes it exclusively to freeze a complete prefix of the WAL.
    write_gate: tokio::sync::RwLock<()>,
    flush_lock: tokio::sync::Mutex<()>,
    flush_nudge: tokio::sync::Notify,
    file_counter: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.options.data_dir)
            .finish()
    }
}

const WAL_INSERT: u8 = 1;

fn encode_insert(oid: u32, batch: &RecordBatch) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_u8(WAL_INSERT);
    buf.put_u32_le(oid);
    let mut w = buf.writer();
    {
        let mut ipc =
            datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut w, &batch.schema())
                .map_err(|e| TemporaError::internal(format!("encoding WAL record: {e}")))?;
        ipc.write(batch)
            .and_then(|_| ipc.finish())
            .map_err(|e| TemporaError::internal(format!("encoding WAL record: {e}")))?;
    }
    Ok(w.into_inner().freeze())
}

fn decode_insert(payload: &[u8]) -> Result<(u32, Vec<RecordBatch>)> {
    let corrupt = |m: String| TemporaError::new(SqlState::DATA_CORRUPTED, m);
    if payload.len() < 5 || payload[0] != WAL_INSERT {
        return Err(corrupt("unknown WAL record kind".into()));
    }
    let oid = u32::from_le_bytes([payload[1], payload[2], payload[3], payload[4]]);
    let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(&payload[5..], None)
        .map_err(|e| corrupt(format!("decoding WAL record: {e}")))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| corrupt(format!("decoding WAL record: {e}")))?;
    Ok((oid, batches))
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
        let engine = Arc::new(Engine {
            options,
            catalog,
            wal: Arc::new(wal),
            mem: RwLock::new(MemState {
                active: Memtables::default(),
                frozen: None,
            }),
            write_gate: tokio::sync::RwLock::new(()),
            flush_lock: tokio::sync::Mutex::new(()),
            flush_nudge: tokio::sync::Notify::new(),
            file_counter: AtomicU64::new(0),
        });
        let mut replayed = 0usize;
        for rec in records {
            let (oid, batches) = decode_insert(&rec.payload)?;
            let state = engine.catalog.snapshot();
            let Some(table) = state.table_by_oid(oid) else {
                continue; // dropped after the write
            };
            let table = table.clone();
            for batch in batches {
                replayed += batch.num_rows();
                let state = engine.ensure_chunks(&table, &batch).await?;
                let table = state.table_by_oid(oid).cloned().unwrap_or(table.clone());
                engine.mem.write().active.insert(&table, batch, rec.seq)?;
            }
        }
        if replayed > 0 {
            tracing::info!(rows = replayed, "replayed WAL into memtables");
        }
        Ok(engine)
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        self.catalog.store()
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
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

    /// Creates the chunks the rows of `batch` fall into that do not exist yet.
    async fn ensure_chunks(
        &self,
        table: &TableDef,
        batch: &RecordBatch,
    ) -> Result<Arc<CatalogState>> {
        let Some(h) = &table.hypertable else {
            return Ok(self.catalog.snapshot());
        };
        let times = time_values(table, batch)?;
        let mut needed: Vec<(i64, i64)> = Vec::new();
        for t in times.into_iter().flatten() {
            if table.chunk_for(t).is_some() {
                continue;
            }
            let r = chunk_range(t, h.chunk_interval);
            if !needed.contains(&r) {
                needed.push(r);
            }
        }
        if needed.is_empty() {
            return Ok(self.catalog.snapshot());
        }
        needed.sort_unstable();
        let oid = table.oid;
        self.catalog
            .commit(|state| {
                let Some(current) = state.table_by_oid(oid) else {
                    return Err(TemporaError::undefined_table(&table.name));
                };
                let mut next_id = state.next_chunk_id;
                let mut ops = Vec::new();
                for (start, end) in &needed {
                    if current.chunk_for(*start).is_some() {
                        continue;
                    }
                    ops.push(CatalogOp::CreateChunk {
                        oid,
                        chunk: ChunkDef {
                            id: next_id,
                            range_start: *start,
                            range_end: *end,
                            files: vec![],
                        },
                    });
                    next_id += 1;
                }
                Ok(ops)
            })
            .await
    }

    /// Durably inserts rows (already in the table's Arrow schema) and returns
    /// how many. The rows are acknowledged only once the WAL is synced.
    pub async fn insert(&self, oid: u32, batches: Vec<RecordBatch>) -> Result<u64> {
        let state = self.catalog.snapshot();
        let table = state
            .table_by_oid(oid)
            .ok_or_else(|| TemporaError::internal(format!("no table with oid {oid}")))?
            .clone();
        let schema = Arc::new(table.arrow_schema());
        let batch = concat_batches(&schema, &batches)
            .map_err(|e| TemporaError::internal(format!("insert: {e}")))?;
        if batch.num_rows() == 0 {
            return Ok(0);
        }
        check_not_null(&table, &batch)?;
        let state = self.ensure_chunks(&table, &batch).await?;
        let table = state
            .table_by_oid(oid)
            .ok_or_else(|| TemporaError::undefined_table(&table.name))?
            .clone();
        let payload = encode_insert(oid, &batch)?;
        let rows = batch.num_rows() as u64;
        {
            let _gate = self.write_gate.read().await;
            let seq = self.wal.append(payload).await?;
            self.mem.write().active.insert(&table, batch, seq)?;
        }
        if self.needs_flush() {
            self.flush_nudge.notify_one();
        }
        Ok(rows)
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
        let _flush = self.flush_lock.lock().await;
        let (frozen, boundary) = {
            let _gate = self.write_gate.write().await;
            let Some(frozen) = self.freeze_active() else {
                return Ok(());
            };
            let boundary = self.wal.rotate().await?;
            (frozen, boundary)
        };
        let started = std::time::Instant::now();
        let result = self.write_frozen(&frozen, boundary).await;
        if let Err(e) = &result {
            // Put the rows back so they stay readable and a later flush retries.
            let mut mem = self.mem.write();
            if let Some(f) = mem.frozen.take() {
                let mut restored = (*f).clone();
                restored.absorb(std::mem::take(&mut mem.active));
                mem.active = restored;
            }
            tracing::error!(error = %e, "flush failed; rows stay in memory and the WAL");
            return result;
        }
        self.wal.truncate_through(boundary).await?;
        tracing::info!(
            rows = frozen.num_rows(),
            ms = started.elapsed().as_millis() as u64,
            wal_seq = boundary,
            "flushed memtables to parquet"
        );
        Ok(())
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
            let file = parquet_io::write_file(self.store(), &path, table, batches).await?;
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
        Ok(())
    }

    /// Forgets the unflushed rows of a dropped table.
    pub fn forget_table(&self, oid: u32) {
        self.mem.write().active.remove_table(oid);
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

    /// Flushes and stops the WAL writer (graceful shutdown).
    pub async fn close(&self) -> Result<()> {
        let res = self.flush().await;
        self.wal.close();
        res
    }
}

/// PostgreSQL's 23502 for a NULL in a NOT NULL column.
fn check_not_null(table: &TableDef, batch: &RecordBatch) -> Result<()> {
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
