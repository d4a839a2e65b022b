//! Compressing and decompressing chunks (`compress_chunk`, `decompress_chunk`,
//! compression policies).
//!
//! ```text
//! compress_chunk ─► files lock; memtable rows flushed to files first
//!                ─► every file of the chunk read, its rows written again as
//!                   one columnstore file (parquet_io::Layout::Columnstore:
//!                   sorted by segmentby, orderby; fsynced)
//!                ─► one catalog commit: old files out, new file in, the
//!                   chunk marked compressed with its before/after bytes
//! ```
//! A crash before the commit leaves the old files listed and the new one an
//! orphan that startup removes; after it, the new file only. Rows written to
//! a compressed chunk later (INSERT, COPY, UPDATE) land in ordinary files
//! beside the compressed one (a partially compressed chunk, as in
//! TimescaleDB); compressing it again merges them in. DELETE and UPDATE
//! rewrite a compressed file in the same layout.

use tempora_catalog::{CatalogOp, ChunkCompression, ChunkDef, FileDef, TableDef};
use tempora_common::{Result, SqlState, TemporaError};

use crate::{Engine, Layout};

/// Whether a chunk's rows are all in compressed files.
pub fn fully_compressed(chunk: &ChunkDef) -> bool {
    chunk.compression.is_some() && chunk.files.iter().all(|f| f.compressed)
}

fn chunk_gone(table: &TableDef, chunk: u32) -> TemporaError {
    TemporaError::new(
        SqlState::UNDEFINED_OBJECT,
        format!("chunk {chunk} of \"{}\" not found", table.name),
    )
}

/// The error for compressing a table without compression settings.
pub fn not_enabled(table: &TableDef) -> TemporaError {
    TemporaError::new(
        SqlState::FEATURE_NOT_SUPPORTED,
        format!("columnstore not enabled on \"{}\"", table.name),
    )
}

impl Engine {
    /// Compresses one chunk of a hypertable with compression enabled; false
    /// when it already was (every row in compressed files).
    pub async fn compress_chunk(&self, oid: u32, chunk: u32) -> Result<bool> {
        let guard = self.lock_files().await;
        // Rows still in memtables belong in the compressed file.
        self.flush_locked(&guard).await?;
        let state = self.catalog().snapshot();
        let table = state
            .table_by_oid(oid)
            .ok_or_else(|| TemporaError::internal(format!("no table with oid {oid}")))?;
        if table.compression.is_none() {
            return Err(not_enabled(table));
        }
        let c = table
            .chunks
            .get(&chunk)
            .ok_or_else(|| chunk_gone(table, chunk))?;
        if fully_compressed(c) {
            return Ok(false);
        }
        let started = std::time::Instant::now();
        let rows: u64 = c.files.iter().map(|f| f.rows).sum();
        tracing::info!(table = %table.name, chunk, rows, files = c.files.len(), "compressing chunk");
        let all: Vec<&FileDef> = c.files.iter().collect();
        let written = self
            .rewrite_files(table, chunk, &all, "compressed", Layout::Columnstore)
            .await?;
        let before_bytes = c.compression.as_ref().map_or(0, |s| s.before_bytes)
            + c.files
                .iter()
                .filter(|f| !f.compressed)
                .map(|f| f.bytes)
                .sum::<u64>();
        let stats = ChunkCompression {
            before_bytes,
            after_bytes: written.as_ref().map_or(0, |f| f.bytes),
        };
        let old: Vec<String> = c.files.iter().map(|f| f.path.clone()).collect();
        self.swap_chunk_files(oid, chunk, &old, written, Some(stats.clone()))
            .await?;
        drop(guard);
        tracing::info!(
            table = %table.name,
            chunk,
            rows,
            before_bytes = stats.before_bytes,
            after_bytes = stats.after_bytes,
            ms = started.elapsed().as_millis() as u64,
            "compressed chunk"
        );
        Ok(true)
    }

    /// Decompresses one chunk; false when it was not compressed.
    pub async fn decompress_chunk(&self, oid: u32, chunk: u32) -> Result<bool> {
        let guard = self.lock_files().await;
        let state = self.catalog().snapshot();
        let table = state
            .table_by_oid(oid)
            .ok_or_else(|| TemporaError::internal(format!("no table with oid {oid}")))?;
        let c = table
            .chunks
            .get(&chunk)
            .ok_or_else(|| chunk_gone(table, chunk))?;
        if c.compression.is_none() {
            return Ok(false);
        }
        let started = std::time::Instant::now();
        let compressed: Vec<&FileDef> = c.files.iter().filter(|f| f.compressed).collect();
        let rows: u64 = compressed.iter().map(|f| f.rows).sum();
        let written = self
            .rewrite_files(table, chunk, &compressed, "decompressed", Layout::Merged)
            .await?;
        let old: Vec<String> = compressed.iter().map(|f| f.path.clone()).collect();
        self.swap_chunk_files(oid, chunk, &old, written, None)
            .await?;
        drop(guard);
        tracing::info!(
            table = %table.name,
            chunk,
            rows,
            ms = started.elapsed().as_millis() as u64,
            "decompressed chunk"
        );
        self.nudge_compactor();
        Ok(true)
    }

    /// The rows of `files` written again as one file of the chunk laid out
    /// as `layout` (None when they hold no rows), not yet listed.
    async fn rewrite_files(
        &self,
        table: &TableDef,
        chunk: u32,
        files: &[&FileDef],
        tag: &str,
        layout: Layout,
    ) -> Result<Option<FileDef>> {
        let rows: u64 = files.iter().map(|f| f.rows).sum();
        if rows == 0 {
            return Ok(None);
        }
        let mut batches = Vec::new();
        for f in files {
            batches.extend(self.read_table_file(&f.path).await?);
        }
        let file = self
            .write_table_file(table, Some(chunk), &batches, tag, layout)
            .await?;
        if file.rows != rows {
            self.gc().retire(0, [file.path.clone()]);
            return Err(TemporaError::internal(format!(
                "{tag} file holds {} rows of {rows}",
                file.rows
            )));
        }
        Ok(Some(file))
    }

    /// One catalog commit: `old` files of the chunk out, `new` in, and the
    /// chunk's compression state set; `new` is discarded if the commit
    /// fails. The caller holds the files lock.
    async fn swap_chunk_files(
        &self,
        oid: u32,
        chunk: u32,
        old: &[String],
        new: Option<FileDef>,
        compression: Option<ChunkCompression>,
    ) -> Result<()> {
        let new_path = new.as_ref().map(|f| f.path.clone());
        let committed = self
            .catalog()
            .commit(|state| {
                let table = state
                    .table_by_oid(oid)
                    .ok_or_else(|| TemporaError::internal("table dropped during compression"))?;
                if !table.chunks.contains_key(&chunk) {
                    return Err(chunk_gone(table, chunk));
                }
                let mut ops = vec![CatalogOp::RemoveFiles {
                    oid,
                    chunk: Some(chunk),
                    paths: old.to_vec(),
                }];
                if let Some(f) = &new {
                    ops.push(CatalogOp::AddFiles {
                        oid,
                        chunk: Some(chunk),
                        files: vec![f.clone()],
                    });
                }
                ops.push(CatalogOp::SetChunkCompression {
                    oid,
                    chunk,
                    compression: compression.clone(),
                });
                Ok(ops)
            })
            .await;
        match committed {
            Ok(state) => {
                self.gc().retire(state.version, old.iter().cloned());
                Ok(())
            }
            Err(e) => {
                self.gc().retire(0, new_path);
                Err(e)
            }
        }
    }
}
