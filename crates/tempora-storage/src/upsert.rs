//! `INSERT ... ON CONFLICT (key) DO UPDATE`: rows whose arbiter key is free
//! are inserted, rows whose key a stored row holds update that row, with
//! PostgreSQL's rules.
//!
//! ```text
//! files lock ─► unique lock            (in this order; see below)
//!   locate: keys of every unique key held by stored rows in the proposed
//!           rows' time range (memtable or file, as for a plain INSERT)
//!   the stored rows holding proposed arbiter keys, read whole
//!   caller evaluates SET / WHERE over (existing, EXCLUDED) pairs (DataFusion)
//!   proposed rows in order: insert, update, skip (WHERE not true), or
//!           21000 (a row this statement wrote already holds the key);
//!           every unique key checked for each inserted and updated row (23505)
//!   replaced rows only in the memtable ─► one WAL record: "drop these keys
//!           from the memtable, add these rows"; applied under the write gate
//!   replaced rows in files ─► the files rewritten without them, written rows
//!           as new files, one catalog commit (no WAL record)
//! ```
//!
//! Why two ways to write: a statement is atomic only if all of its changes
//! land in one durable step. Rows in the memtable can be replaced by a WAL
//! record, because replay rebuilds exactly the memtable the record was
//! written against (rows flushed later are not replayed, and the record is
//! not replayed either). Rows in Parquet files can only be replaced by a
//! catalog commit that swaps the files. So a statement whose replaced rows
//! are all in memtables (the usual case for recent data) costs one WAL
//! record and no Parquet write; one that replaces rows in files rewrites
//! only the files holding those rows (found through the time range, file
//! statistics and the key columns, like the plain INSERT's check) and writes
//! its inserted and updated rows as new files in the same catalog commit.
//! A statement replacing rows in both first flushes the memtables, so all of
//! them are in files.
//!
//! Locking: the files lock keeps flushes, compaction and DELETE/UPDATE
//! rewrites out (so the memtable holds no frozen part and no row moves to a
//! file between the check and the write), and the unique lock keeps out
//! other writers of tables with unique keys (plain INSERT, COPY, COMMIT),
//! which take only that one. Everyone who takes both takes the files lock
//! first, so they cannot deadlock.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{
    concat_batches, filter_record_batch, interleave_record_batch, take_record_batch,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::OwnedRow;
use tempora_catalog::{FileDef, TableDef, UniqueKey};
use tempora_common::{Result, SqlState, TemporaError};

use crate::unique::{self, KeyEncoder};
use crate::{
    check_not_null, encode_replace, encode_write, split_by_chunk, time_values, Engine, FileChanges,
    FilesGuard, RowsFrom,
};

fn internal(e: impl std::fmt::Display) -> TemporaError {
    TemporaError::internal(e.to_string())
}

/// A boxed future of an [`UpdateRows`] evaluation.
pub type UpdateFuture<'a> = Pin<Box<dyn Future<Output = Result<UpdatedRows>> + Send + 'a>>;

/// Evaluates `DO UPDATE SET ... WHERE ...` for pairs of rows.
pub trait UpdateRows: Send + Sync {
    /// Row `i` of `existing` is the stored row that holds the arbiter key of
    /// proposed row `i` of `excluded`. Returns the pairs the WHERE holds for
    /// and their new rows.
    fn update(&self, existing: RecordBatch, excluded: RecordBatch) -> UpdateFuture<'_>;
}

/// What [`UpdateRows::update`] decided.
#[derive(Debug)]
pub struct UpdatedRows {
    /// Indices of the pairs to update (the others are left as they are).
    pub pairs: Vec<usize>,
    /// Their new rows, in the table's schema, in the order of `pairs`.
    pub rows: RecordBatch,
}

/// What an upsert wrote.
#[derive(Debug)]
pub struct Upserted {
    /// Inserted and updated rows (new values), in the order of the proposed rows.
    pub rows: RecordBatch,
    pub inserted: u64,
    pub updated: u64,
}

/// Where a stored row lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Loc {
    Mem,
    File(Arc<str>),
}

/// One unique key: its columns and their encoder.
struct Key<'a> {
    def: &'a UniqueKey,
    columns: Vec<usize>,
    encoder: KeyEncoder,
}

/// The stored rows a statement can collide with.
struct Located {
    /// Per unique key of the table: the keys stored rows hold, and where.
    taken: Vec<HashMap<OwnedRow, Loc>>,
    /// The files read, by path, with their chunk.
    files: HashMap<Arc<str>, Option<u32>>,
    /// Memtable rows of the chunks looked at.
    mem: Vec<RecordBatch>,
}

/// [lo, hi] of a hypertable's rows (None: a plain table, or no time at all).
fn time_range(table: &TableDef, batch: &RecordBatch) -> Result<Option<(i64, i64)>> {
    if table.hypertable.is_none() || batch.num_rows() == 0 {
        return Ok(None);
    }
    let times: Vec<i64> = time_values(table, batch)?.into_iter().flatten().collect();
    Ok(times.iter().min().copied().zip(times.iter().max().copied()))
}

fn cardinality_violation() -> TemporaError {
    TemporaError::new(
        SqlState::CARDINALITY_VIOLATION,
        "ON CONFLICT DO UPDATE command cannot affect row a second time",
    )
    .with_hint(
        "Ensure that no rows proposed for insertion within the same command have duplicate constrained values.",
    )
}

/// The outcome of going through the proposed rows in order.
struct Decisions {
    /// (0, proposed row) inserted or (1, new row) updated, in order.
    out: Vec<(usize, usize)>,
    /// (where the replaced row lives, its pair), per update.
    replaced: Vec<(Loc, usize)>,
}

impl Engine {
    /// Inserts `batches` (rows in the table's schema), updating through
    /// `update` the stored rows whose key of `table.unique_keys[arbiter]` a
    /// proposed row has, as `INSERT ... ON CONFLICT ... DO UPDATE` does.
    /// Atomic and durable when it returns; nothing is written on an error.
    pub async fn upsert(
        &self,
        oid: u32,
        batches: Vec<RecordBatch>,
        arbiter: usize,
        update: &dyn UpdateRows,
    ) -> Result<Upserted> {
        let guard = self.lock_files().await;
        let _unique = self.unique_lock.lock().await;
        let state = self.catalog.snapshot();
        let table = state
            .table_by_oid(oid)
            .ok_or_else(|| TemporaError::internal(format!("no table with oid {oid}")))?
            .clone();
        let schema: SchemaRef = Arc::new(table.arrow_schema());
        let proposed = concat_batches(&schema, &batches).map_err(internal)?;
        if proposed.num_rows() == 0 {
            return Ok(Upserted {
                rows: proposed,
                inserted: 0,
                updated: 0,
            });
        }
        check_not_null(&table, &proposed, RowsFrom::Insert)?;
        if arbiter >= table.unique_keys.len() {
            return Err(TemporaError::internal("no such unique key"));
        }
        let keys = table
            .unique_keys
            .iter()
            .map(|def| {
                let columns = unique::key_columns(&table, def)?;
                let encoder = KeyEncoder::new(&table, columns.clone())?;
                Ok(Key {
                    def,
                    columns,
                    encoder,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let p_keys = keys
            .iter()
            .map(|k| k.encoder.keys(&proposed))
            .collect::<Result<Vec<_>>>()?;
        let p_range = time_range(&table, &proposed)?;
        let mut located = self.locate(&table, &keys, p_range).await?;

        // The stored rows holding the proposed rows' arbiter keys, paired
        // with each proposed row that has one.
        let mut file_rows: HashMap<Arc<str>, RecordBatch> = HashMap::new();
        let (holders, holder_of) = self
            .holder_rows(
                &table,
                &keys[arbiter],
                &located.taken[arbiter],
                &located.mem,
                &p_keys[arbiter],
                &mut file_rows,
            )
            .await?;
        let mut pair_of: Vec<Option<usize>> = vec![None; proposed.num_rows()];
        let (mut pair_holder, mut pair_row) = (Vec::new(), Vec::new());
        for (j, k) in p_keys[arbiter].iter().enumerate() {
            if let Some(h) = k.as_ref().and_then(|k| holder_of.get(k)) {
                pair_of[j] = Some(pair_holder.len());
                pair_holder.push(*h as u32);
                pair_row.push(j as u32);
            }
        }
        let existing =
            take_record_batch(&holders, &UInt32Array::from(pair_holder)).map_err(internal)?;
        let (new_of_pair, new_rows) = if existing.num_rows() == 0 {
            (vec![], RecordBatch::new_empty(schema.clone()))
        } else {
            let excluded =
                take_record_batch(&proposed, &UInt32Array::from(pair_row)).map_err(internal)?;
            let updated = update.update(existing.clone(), excluded).await?;
            if updated.rows.num_rows() != updated.pairs.len()
                || updated.rows.schema().fields().len() != schema.fields().len()
            {
                return Err(TemporaError::internal(
                    "DO UPDATE gave rows of another shape",
                ));
            }
            let rows = RecordBatch::try_new(schema.clone(), updated.rows.columns().to_vec())
                .map_err(internal)?;
            let mut new_of_pair = vec![None; existing.num_rows()];
            for (i, p) in updated.pairs.iter().enumerate() {
                *new_of_pair
                    .get_mut(*p)
                    .ok_or_else(|| TemporaError::internal("DO UPDATE named no such pair"))? =
                    Some(i);
            }
            (new_of_pair, rows)
        };

        // Updated rows moving out of the proposed rows' time range meet the
        // stored rows of their own range.
        if let (Some((lo, hi)), Some((nlo, nhi))) = (p_range, time_range(&table, &new_rows)?) {
            if nlo < lo || nhi > hi {
                located = self
                    .locate(&table, &keys, Some((lo.min(nlo), hi.max(nhi))))
                    .await?;
            }
        }

        let e_keys = keys
            .iter()
            .map(|k| k.encoder.keys(&existing))
            .collect::<Result<Vec<_>>>()?;
        let n_keys = keys
            .iter()
            .map(|k| k.encoder.keys(&new_rows))
            .collect::<Result<Vec<_>>>()?;
        let mut decisions = decide(
            &table,
            &keys,
            arbiter,
            &mut located.taken,
            (&proposed, &p_keys, &pair_of),
            (&e_keys, &new_of_pair),
            (&new_rows, &n_keys),
        )?;
        let rows =
            interleave_record_batch(&[&proposed, &new_rows], &decisions.out).map_err(internal)?;
        let updated = decisions.replaced.len() as u64;
        let result = Upserted {
            inserted: rows.num_rows() as u64 - updated,
            updated,
            rows: rows.clone(),
        };
        if rows.num_rows() == 0 {
            return Ok(result);
        }

        let in_mem = decisions.replaced.iter().any(|(l, _)| *l == Loc::Mem);
        let in_files = decisions
            .replaced
            .iter()
            .any(|(l, _)| matches!(l, Loc::File(_)));
        if in_mem && in_files {
            // One catalog commit must carry the whole statement: move the
            // memtable rows to files first, then find them there.
            self.flush_locked(&guard).await?;
            let range = match (p_range, time_range(&table, &new_rows)?) {
                (Some((lo, hi)), Some((nlo, nhi))) => Some((lo.min(nlo), hi.max(nhi))),
                (r, _) => r,
            };
            located = self.locate(&table, &keys, range).await?;
            for (loc, p) in decisions.replaced.iter_mut() {
                *loc = e_keys[arbiter][*p]
                    .as_ref()
                    .and_then(|k| located.taken[arbiter].get(k))
                    .cloned()
                    .ok_or_else(|| TemporaError::internal("replaced row lost by a flush"))?;
            }
        }

        let state = self.ensure_chunks(&table, &rows).await?;
        let table = state
            .table_by_oid(oid)
            .ok_or_else(|| TemporaError::undefined_table(&table.name))?
            .clone();
        if decisions.replaced.iter().all(|(l, _)| *l == Loc::Mem) {
            let replaced: Vec<u32> = decisions.replaced.iter().map(|(_, p)| *p as u32).collect();
            let gone = take_record_batch(&existing, &UInt32Array::from(replaced))
                .map_err(internal)?
                .project(&keys[arbiter].columns)
                .map_err(internal)?;
            self.write_replace(&table, gone, rows).await?;
        } else {
            let mut gone: HashMap<Arc<str>, HashSet<OwnedRow>> = HashMap::new();
            for (loc, p) in &decisions.replaced {
                let (Loc::File(path), Some(k)) = (loc, &e_keys[arbiter][*p]) else {
                    return Err(TemporaError::internal("replaced row has no file"));
                };
                gone.entry(path.clone()).or_default().insert(k.clone());
            }
            let mut changes = FileChanges {
                oid,
                ..Default::default()
            };
            let written = self
                .rewrite_for_upsert(
                    &guard,
                    &table,
                    &keys[arbiter],
                    &located.files,
                    &mut file_rows,
                    gone,
                    rows,
                    &mut changes,
                )
                .await;
            if let Err(e) = written {
                // Files written for a statement that failed are nobody's.
                self.gc
                    .retire(0, changes.add.into_iter().map(|(_, f)| f.path));
                return Err(e);
            }
            self.compact_nudge.notify_one();
        }
        Ok(result)
    }

    /// The keys of every unique key held by stored rows in `range` (all of
    /// them for None) and where each row lives.
    async fn locate(
        &self,
        table: &TableDef,
        keys: &[Key<'_>],
        range: Option<(i64, i64)>,
    ) -> Result<Located> {
        let snapshot = self.read_snapshot();
        let def = snapshot
            .catalog
            .table_by_oid(table.oid)
            .ok_or_else(|| TemporaError::undefined_table(&table.name))?;
        let time_index = def
            .hypertable
            .as_ref()
            .and_then(|h| def.column_index(&h.time_column));
        let overlaps = |start: i64, end: i64| range.is_none_or(|(lo, hi)| end > lo && start <= hi);
        let mut taken: Vec<HashMap<OwnedRow, Loc>> = vec![HashMap::new(); keys.len()];
        let mut mem = Vec::new();
        for (chunk, batches) in snapshot.memtable_rows(table.oid) {
            if let Some(c) = chunk.and_then(|c| def.chunks.get(&c)) {
                if !overlaps(c.range_start, c.range_end) {
                    continue;
                }
            }
            for b in batches {
                for (u, k) in keys.iter().enumerate() {
                    for key in k.encoder.keys(&b)?.into_iter().flatten() {
                        taken[u].insert(key, Loc::Mem);
                    }
                }
                mem.push(b);
            }
        }
        let mut candidates: Vec<(Option<u32>, &FileDef)> =
            def.files.iter().map(|f| (None, f)).collect();
        for c in def.chunks.values() {
            if overlaps(c.range_start, c.range_end) {
                candidates.extend(
                    c.files
                        .iter()
                        .filter(|f| match (f.min_time, f.max_time) {
                            (Some(min), Some(max)) => overlaps(min, max.saturating_add(1)),
                            _ => true,
                        })
                        .map(|f| (Some(c.id), f)),
                );
            }
        }
        // The union of the key columns, read once per file (in table order).
        let mut columns: Vec<usize> = keys.iter().flat_map(|k| k.columns.clone()).collect();
        columns.sort_unstable();
        columns.dedup();
        let mut files = HashMap::new();
        for (chunk, f) in candidates {
            let path: Arc<str> = Arc::from(f.path.as_str());
            for b in unique::file_keys(self.store(), table, f, &columns, time_index, range).await? {
                for (u, k) in keys.iter().enumerate() {
                    let cols: Vec<ArrayRef> = k
                        .columns
                        .iter()
                        .map(|i| b.column(columns.binary_search(i).unwrap_or(0)).clone())
                        .collect();
                    for key in k.encoder.keys_of(&cols)?.into_iter().flatten() {
                        taken[u].insert(key, Loc::File(path.clone()));
                    }
                }
            }
            files.insert(path, chunk);
        }
        Ok(Located { taken, files, mem })
    }

    /// The whole stored rows holding the `wanted` keys of `key`, and for each
    /// such key its row in the returned batch. Files read whole are kept in
    /// `file_rows` for a rewrite.
    async fn holder_rows(
        &self,
        table: &TableDef,
        key: &Key<'_>,
        taken: &HashMap<OwnedRow, Loc>,
        mem: &[RecordBatch],
        wanted: &[Option<OwnedRow>],
        file_rows: &mut HashMap<Arc<str>, RecordBatch>,
    ) -> Result<(RecordBatch, HashMap<OwnedRow, usize>)> {
        let schema: &SchemaRef = &Arc::new(table.arrow_schema());
        let wanted: HashMap<&OwnedRow, &Loc> = wanted
            .iter()
            .flatten()
            .filter_map(|k| taken.get(k).map(|l| (k, l)))
            .collect();
        let mut sources: Vec<RecordBatch> = Vec::new();
        let mut picks: Vec<(usize, usize)> = Vec::new();
        let mut index: HashMap<OwnedRow, usize> = HashMap::new();
        let mut pick_from = |batch: &RecordBatch, sources: &mut Vec<RecordBatch>| -> Result<()> {
            let src = sources.len();
            let mut used = false;
            for (i, k) in key.encoder.keys(batch)?.into_iter().enumerate() {
                let Some(k) = k else { continue };
                if wanted.contains_key(&k) && !index.contains_key(&k) {
                    index.insert(k, picks.len());
                    picks.push((src, i));
                    used = true;
                }
            }
            if used {
                sources.push(batch.clone());
            }
            Ok(())
        };
        if wanted.values().any(|l| **l == Loc::Mem) {
            for b in mem {
                pick_from(b, &mut sources)?;
            }
        }
        let mut paths: Vec<&Arc<str>> = wanted
            .values()
            .filter_map(|l| match l {
                Loc::File(p) => Some(p),
                Loc::Mem => None,
            })
            .collect();
        paths.sort();
        paths.dedup();
        for path in paths {
            if !file_rows.contains_key(path) {
                let batches = self.read_table_file(table, path).await?;
                let all = concat_batches(schema, &batches).map_err(internal)?;
                file_rows.insert(path.clone(), all);
            }
            pick_from(&file_rows[path], &mut sources)?;
        }
        if index.len() != wanted.len() {
            return Err(TemporaError::internal(
                "a stored row holding a key was not found",
            ));
        }
        let refs: Vec<&RecordBatch> = sources.iter().collect();
        let holders = if picks.is_empty() {
            RecordBatch::new_empty(schema.clone())
        } else {
            interleave_record_batch(&refs, &picks).map_err(internal)?
        };
        Ok((holders, index))
    }

    /// Writes an upsert whose replaced rows are all in the memtable: one WAL
    /// record, then the memtable change, which readers see at once.
    async fn write_replace(
        &self,
        table: &TableDef,
        gone: RecordBatch,
        rows: RecordBatch,
    ) -> Result<()> {
        let payload = if gone.num_rows() == 0 {
            encode_write(&[(table.oid, rows.clone())])?
        } else {
            encode_replace(table.oid, &gone, &rows)?
        };
        {
            let _gate = self.write_gate.read().await;
            let seq = self.wal.append(payload).await?;
            let mut mem = self.mem.write();
            let removed = mem.active.delete_keys(table, &gone)?;
            if removed != gone.num_rows() {
                tracing::error!(
                    removed,
                    expected = gone.num_rows(),
                    table = %table.name,
                    "upsert replaced another number of memtable rows than it found"
                );
            }
            mem.active.insert(table, rows, seq)?;
        }
        if self.needs_flush() {
            self.flush_nudge.notify_one();
        }
        Ok(())
    }

    /// Writes an upsert that replaces rows in files: each file holding one
    /// is written again without them, the statement's rows go to new files,
    /// and one catalog commit swaps them in. `changes` lists the files
    /// written so far (for the caller to remove on failure).
    #[allow(clippy::too_many_arguments)]
    async fn rewrite_for_upsert(
        &self,
        guard: &FilesGuard,
        table: &TableDef,
        key: &Key<'_>,
        files: &HashMap<Arc<str>, Option<u32>>,
        file_rows: &mut HashMap<Arc<str>, RecordBatch>,
        gone: HashMap<Arc<str>, HashSet<OwnedRow>>,
        rows: RecordBatch,
        changes: &mut FileChanges,
    ) -> Result<()> {
        let schema = Arc::new(table.arrow_schema());
        let mut gone: Vec<_> = gone.into_iter().collect();
        gone.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, keys) in gone {
            let chunk = *files
                .get(&path)
                .ok_or_else(|| TemporaError::internal("replaced row in an unknown file"))?;
            let all = match file_rows.remove(&path) {
                Some(b) => b,
                None => {
                    let batches = self.read_table_file(table, &path).await?;
                    concat_batches(&schema, &batches).map_err(internal)?
                }
            };
            let keep: Vec<bool> = key
                .encoder
                .keys(&all)?
                .into_iter()
                .map(|k| k.is_none_or(|k| !keys.contains(&k)))
                .collect();
            let kept = filter_record_batch(&all, &BooleanArray::from(keep)).map_err(internal)?;
            if all.num_rows() - kept.num_rows() != keys.len() {
                return Err(TemporaError::internal(format!(
                    "file {path} holds {} of {} replaced rows",
                    all.num_rows() - kept.num_rows(),
                    keys.len()
                )));
            }
            changes.remove.push((chunk, path.to_string()));
            if kept.num_rows() > 0 {
                let layout = crate::Layout::rewriting(table, &path);
                let f = self
                    .write_table_file(table, chunk, &[kept], "rewrite", layout)
                    .await?;
                changes.add.push((chunk, f));
            }
        }
        for (chunk, part) in split_by_chunk(table, rows)? {
            let f = self
                .write_table_file(table, chunk, &[part], "upsert", crate::Layout::Ingest)
                .await?;
            changes.add.push((chunk, f));
        }
        self.commit_files(guard, changes.clone()).await
    }
}

/// Goes through the proposed rows in order, as PostgreSQL does: a row whose
/// arbiter key no row holds is inserted; one whose key a stored row holds
/// updates it (when DO UPDATE's WHERE held) or is skipped; one whose key a
/// row written by this statement holds is 21000. Every inserted and updated
/// row must have keys no other row holds (23505) and no NULL in a NOT NULL
/// column (23502). `taken` loses the keys of replaced rows.
#[allow(clippy::type_complexity)]
fn decide(
    table: &TableDef,
    keys: &[Key<'_>],
    arbiter: usize,
    taken: &mut [HashMap<OwnedRow, Loc>],
    (proposed, p_keys, pair_of): (&RecordBatch, &[Vec<Option<OwnedRow>>], &[Option<usize>]),
    (e_keys, new_of_pair): (&[Vec<Option<OwnedRow>>], &[Option<usize>]),
    (new_rows, n_keys): (&RecordBatch, &[Vec<Option<OwnedRow>>]),
) -> Result<Decisions> {
    let mut written: Vec<HashSet<OwnedRow>> = vec![HashSet::new(); keys.len()];
    let mut out = Vec::new();
    let mut replaced = Vec::new();
    for j in 0..proposed.num_rows() {
        if let Some(k) = &p_keys[arbiter][j] {
            if written[arbiter].contains(k) {
                return Err(cardinality_violation());
            }
            if let Some(loc) = taken[arbiter].get(k).cloned() {
                let p = pair_of[j]
                    .ok_or_else(|| TemporaError::internal("a taken key without its row"))?;
                let Some(r) = new_of_pair[p] else {
                    continue; // DO UPDATE ... WHERE was not true
                };
                check_not_null(table, &new_rows.slice(r, 1), RowsFrom::Update)?;
                for (u, ek) in e_keys.iter().enumerate() {
                    if let Some(ek) = &ek[p] {
                        taken[u].remove(ek);
                    }
                }
                claim(keys, taken, &mut written, table, new_rows, n_keys, r)?;
                replaced.push((loc, p));
                out.push((1, r));
                continue;
            }
        }
        claim(keys, taken, &mut written, table, proposed, p_keys, j)?;
        out.push((0, j));
    }
    Ok(Decisions { out, replaced })
}

/// Takes every unique key of row `i` of `batch` for this statement, or 23505.
fn claim(
    keys: &[Key<'_>],
    taken: &[HashMap<OwnedRow, Loc>],
    written: &mut [HashSet<OwnedRow>],
    table: &TableDef,
    batch: &RecordBatch,
    batch_keys: &[Vec<Option<OwnedRow>>],
    i: usize,
) -> Result<()> {
    for (u, key) in keys.iter().enumerate() {
        if let Some(k) = &batch_keys[u][i] {
            if taken[u].contains_key(k) || written[u].contains(k) {
                return Err(unique::violation(key.def, table, batch, i));
            }
        }
    }
    for (u, w) in written.iter_mut().enumerate() {
        if let Some(k) = &batch_keys[u][i] {
            w.insert(k.clone());
        }
    }
    Ok(())
}
