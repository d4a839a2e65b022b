//! Compressing and decompressing chunks (`compress_chunk`, `decompress_chunk`,
//! compression policies).
//!
//! ```text
//! compress_chunk ─► files lock; memtable rows flushed to files first
//!                ─► the chunk's files grouped into time slices (each file
//!                   on its own once it holds 100k rows, smaller ones with
//!                   their neighbours: `time_slices`); each slice's rows
//!                   written again as one columnstore file
//!                   (parquet_io::Layout::Columnstore: sorted by segmentby,
//!                   orderby; fsynced); over 2M rows, a group of segments at
//!                   a time, so memory stays bounded
//!                   (parquet_io::write_columnstore_file)
//!                ─► one catalog commit: old files out, new files in, the
//!                   chunk marked compressed with its before/after bytes
//! ```
//! A crash before the commit leaves the old files listed and the new ones
//! orphans that startup removes; after it, the new files only. Rows written to
//! a compressed chunk later (INSERT, COPY, UPDATE) land in ordinary files
//! beside the compressed one (a partially compressed chunk, as in
//! TimescaleDB); compressing it again merges them in. DELETE and UPDATE
//! rewrite a compressed file in the same layout. Decompressing writes
//! time-sorted files of at most 2M rows each.

use tempora_catalog::{CatalogOp, CatalogState, ChunkCompression, ChunkDef, FileDef, TableDef};
use tempora_common::{Result, SqlState, TemporaError};

use crate::{parquet_io, Engine, Layout};

/// Whether a chunk's rows are all in compressed files.
pub fn fully_compressed(chunk: &ChunkDef) -> bool {
    chunk.compression.is_some() && chunk.files.iter().all(|f| f.compressed)
}

/// The table with `oid` and its chunk `chunk`, as `state` lists them.
fn table_and_chunk(state: &CatalogState, oid: u32, chunk: u32) -> Result<(&TableDef, &ChunkDef)> {
    let table = state
        .table_by_oid(oid)
        .ok_or_else(|| TemporaError::internal(format!("no table with oid {oid}")))?;
    let c = table
        .chunks
        .get(&chunk)
        .ok_or_else(|| chunk_gone(table, chunk))?;
    Ok((table, c))
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

/// A compressed slice is closed once it holds this many rows: smaller
/// files (a flush's, a small COPY's) are compressed together with their
/// neighbours in time, larger ones on their own.
const SLICE_ROWS: u64 = 100_000;

/// The chunk's files grouped into the time slices `compress_chunk` writes
/// one columnstore file for: in order of their first time, a slice takes
/// files until it holds [`SLICE_ROWS`] rows (and never more than
/// [`parquet_io::COLUMNSTORE_PASS_ROWS`] once it has one). Ingest and
/// merged files each cover the time range they were written in, so the
/// compressed files do too: a time filter prunes them as it pruned the
/// files they replace, which one file sorted by segment across the whole
/// chunk could not (every row group would span the chunk's range).
fn time_slices(files: &[FileDef]) -> Vec<Vec<&FileDef>> {
    let mut ordered: Vec<&FileDef> = files.iter().filter(|f| f.rows > 0).collect();
    ordered.sort_by_key(|f| (f.min_time, f.max_time));
    let mut slices: Vec<Vec<&FileDef>> = Vec::new();
    let mut rows = 0u64;
    for f in ordered {
        let fits = rows < SLICE_ROWS && rows + f.rows <= parquet_io::COLUMNSTORE_PASS_ROWS;
        match slices.last_mut() {
            Some(slice) if fits => slice.push(f),
            _ => {
                slices.push(vec![f]);
                rows = 0;
            }
        }
        rows += f.rows;
    }
    slices
}

impl Engine {
    /// Compresses one chunk of a hypertable with compression enabled; false
    /// when it already was (every row in compressed files).
    pub async fn compress_chunk(&self, oid: u32, chunk: u32) -> Result<bool> {
        let guard = self.lock_files().await;
        // Rows still in memtables belong in the compressed file (a chunk
        // already compressed with none needs no flush).
        let before = self.catalog().snapshot();
        let table = before
            .table_by_oid(oid)
            .ok_or_else(|| TemporaError::internal(format!("no table with oid {oid}")))?;
        if table.compression.is_none() {
            return Err(not_enabled(table));
        }
        let already = table.chunks.get(&chunk).is_some_and(fully_compressed);
        let unflushed = || {
            self.read_snapshot()
                .memtable_rows(oid)
                .contains_key(&Some(chunk))
        };
        if !already || unflushed() {
            self.flush_locked(&guard).await?;
        }
        let state = self.catalog().snapshot();
        let (table, c) = table_and_chunk(&state, oid, chunk)?;
        if fully_compressed(c) {
            return Ok(false);
        }
        let started = std::time::Instant::now();
        let rows: u64 = c.files.iter().map(|f| f.rows).sum();
        tracing::info!(table = %table.name, chunk, rows, files = c.files.len(), "compressing chunk");
        let written = self
            .write_unlisted(async |written| {
                for slice in time_slices(&c.files) {
                    let path = self.new_file_path(oid, Some(chunk), "compressed");
                    let sources: Vec<String> = slice.iter().map(|f| f.path.clone()).collect();
                    let expected: u64 = slice.iter().map(|f| f.rows).sum();
                    let file = parquet_io::write_columnstore_file(
                        self.store(),
                        &path,
                        table,
                        &sources,
                        parquet_io::COLUMNSTORE_PASS_ROWS,
                    )
                    .await?;
                    let rows = file.rows;
                    written.push(file);
                    if rows != expected {
                        return Err(TemporaError::internal(format!(
                            "compressed file holds {rows} rows of {expected}"
                        )));
                    }
                }
                Ok(())
            })
            .await?;
        let before_bytes = c.compression.as_ref().map_or(0, |s| s.before_bytes)
            + c.files
                .iter()
                .filter(|f| !f.compressed)
                .map(|f| f.bytes)
                .sum::<u64>();
        let stats = ChunkCompression {
            before_bytes,
            after_bytes: written.iter().map(|f| f.bytes).sum(),
        };
        let old: Vec<String> = c.files.iter().map(|f| f.path.clone()).collect();
        let written_files = written.len();
        self.swap_chunk_files(oid, chunk, &old, written, Some(stats.clone()))
            .await?;
        drop(guard);
        tracing::info!(
            table = %table.name,
            chunk,
            rows,
            files = written_files,
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
        let (table, c) = table_and_chunk(&state, oid, chunk)?;
        if c.compression.is_none() {
            return Ok(false);
        }
        let started = std::time::Instant::now();
        let compressed: Vec<&FileDef> = c.files.iter().filter(|f| f.compressed).collect();
        let rows: u64 = compressed.iter().map(|f| f.rows).sum();
        let written = self.decompress_files(table, chunk, &compressed).await?;
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

    /// `reorder_chunk`: rewrites each uncompressed file of the chunk sorted
    /// by `index`'s leading columns other than time, then time (as files
    /// of a table whose series index it is are written: see
    /// `TableDef::cluster_key`), one file at a time, and swaps them in one
    /// commit. Each file keeps its own rows, so its time slice stays what
    /// it was; compressed files are already sorted by their segments and
    /// are left as they are.
    pub async fn reorder_chunk(
        &self,
        oid: u32,
        chunk: u32,
        index: &tempora_catalog::IndexDef,
    ) -> Result<()> {
        let guard = self.lock_files().await;
        if self
            .read_snapshot()
            .memtable_rows(oid)
            .contains_key(&Some(chunk))
        {
            self.flush_locked(&guard).await?;
        }
        let state = self.catalog().snapshot();
        let (table, c) = table_and_chunk(&state, oid, chunk)?;
        // The table as if `index` were its only one: the order its files
        // are written in follows it (merged files keep every statistic).
        let ordered = TableDef {
            indexes: vec![index.clone()],
            unique_keys: vec![],
            ..table.clone()
        };
        let started = std::time::Instant::now();
        let sources: Vec<&FileDef> = c.files.iter().filter(|f| !f.compressed).collect();
        let written = self
            .write_unlisted(async |written| {
                for f in &sources {
                    let batches = self.read_table_file(table, &f.path).await?;
                    let file = self
                        .write_table_file(
                            &ordered,
                            Some(chunk),
                            &batches,
                            "reordered",
                            Layout::Merged,
                        )
                        .await?;
                    let rows = file.rows;
                    written.push(file);
                    if rows != f.rows {
                        return Err(TemporaError::internal(format!(
                            "reordering read {rows} rows of {}",
                            f.rows
                        )));
                    }
                }
                Ok(())
            })
            .await?;
        let old: Vec<String> = sources.iter().map(|f| f.path.clone()).collect();
        let rows: u64 = sources.iter().map(|f| f.rows).sum();
        self.swap_chunk_files(oid, chunk, &old, written, c.compression.clone())
            .await?;
        drop(guard);
        tracing::info!(
            table = %table.name,
            chunk,
            index = %index.name,
            files = old.len(),
            rows,
            ms = started.elapsed().as_millis() as u64,
            "reordered chunk"
        );
        Ok(())
    }

    /// The rows of compressed `files` written again as time-sorted files of
    /// the chunk, at most [`parquet_io::COLUMNSTORE_PASS_ROWS`] rows each
    /// (files of a chunk may overlap in time), so that memory stays bounded;
    /// not yet listed.
    async fn decompress_files(
        &self,
        table: &TableDef,
        chunk: u32,
        files: &[&FileDef],
    ) -> Result<Vec<FileDef>> {
        self.write_unlisted(async |written| {
            for f in files {
                let mut reader = Some(parquet_io::open_reader(self.store(), &f.path).await?);
                let mut read = 0u64;
                while let Some(r) = reader.take() {
                    let (r, batches) = tokio::task::spawn_blocking(move || {
                        let mut r = r;
                        let batches =
                            parquet_io::next_rows(&mut r, parquet_io::COLUMNSTORE_PASS_ROWS);
                        (r, batches)
                    })
                    .await
                    .map_err(|e| TemporaError::internal(e.to_string()))?;
                    let batches = batches?;
                    if batches.is_empty() {
                        break;
                    }
                    read += batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                    let file = self
                        .write_table_file(
                            table,
                            Some(chunk),
                            &batches,
                            "decompressed",
                            Layout::Merged,
                        )
                        .await?;
                    written.push(file);
                    reader = Some(r);
                }
                if read != f.rows {
                    return Err(TemporaError::internal(format!(
                        "decompression read {read} rows of {}",
                        f.rows
                    )));
                }
            }
            Ok(())
        })
        .await
    }

    /// Runs a rewrite's `write`, which pushes each new file it writes to
    /// the vector it is given, and returns those files. If it fails, the
    /// files written so far are retired: no catalog state lists them yet.
    async fn write_unlisted(
        &self,
        write: impl AsyncFnOnce(&mut Vec<FileDef>) -> Result<()>,
    ) -> Result<Vec<FileDef>> {
        let mut written = Vec::new();
        match write(&mut written).await {
            Ok(()) => Ok(written),
            Err(e) => {
                self.gc().retire(0, written.into_iter().map(|f| f.path));
                Err(e)
            }
        }
    }

    /// One catalog commit: `old` files of the chunk out, `new` in, and the
    /// chunk's compression state set; `new` is discarded if the commit
    /// fails. The caller holds the files lock.
    async fn swap_chunk_files(
        &self,
        oid: u32,
        chunk: u32,
        old: &[String],
        new: impl IntoIterator<Item = FileDef>,
        compression: Option<ChunkCompression>,
    ) -> Result<()> {
        let new: Vec<FileDef> = new.into_iter().collect();
        let new_paths: Vec<String> = new.iter().map(|f| f.path.clone()).collect();
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
                if !new.is_empty() {
                    ops.push(CatalogOp::AddFiles {
                        oid,
                        chunk: Some(chunk),
                        files: new.clone(),
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
                self.gc().retire(0, new_paths);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, rows: u64, min: i64) -> FileDef {
        FileDef {
            path: path.into(),
            rows,
            bytes: rows,
            min_time: Some(min),
            max_time: Some(min + 10),
            compressed: false,
            series: None,
        }
    }

    fn paths(slices: Vec<Vec<&FileDef>>) -> Vec<Vec<&str>> {
        slices
            .into_iter()
            .map(|s| s.into_iter().map(|f| f.path.as_str()).collect())
            .collect()
    }

    /// Large files are compressed on their own, in time order; small ones
    /// with their neighbours until a slice holds 100k rows; empty ones not
    /// at all.
    #[test]
    fn files_are_compressed_in_time_slices() {
        let files = vec![
            file("late", 500_000, 300),
            file("first", 400_000, 100),
            file("small-a", 30_000, 200),
            file("small-b", 30_000, 210),
            file("small-c", 60_000, 220),
            file("empty", 0, 0),
            file("huge", 3_000_000, 400),
        ];
        assert_eq!(
            paths(time_slices(&files)),
            vec![
                vec!["first"],
                vec!["small-a", "small-b", "small-c"],
                vec!["late"],
                vec!["huge"],
            ]
        );
        // A slice under 100k rows takes a large neighbour while the sum
        // stays within one pass.
        let files = vec![file("small", 10_000, 0), file("big", 1_000_000, 5)];
        assert_eq!(paths(time_slices(&files)), vec![vec!["small", "big"]]);
        let files = vec![file("small", 10_000, 0), file("huge", 2_100_000, 5)];
        assert_eq!(
            paths(time_slices(&files)),
            vec![vec!["small"], vec!["huge"]]
        );
    }
}
