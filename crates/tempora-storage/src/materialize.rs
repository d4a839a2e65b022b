//! Writing a continuous aggregate's buckets: the materialization's rows in
//! some time ranges replaced by freshly computed ones, in one commit.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, RecordBatch};
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use tempora_catalog::{CatalogOp, CatalogState};
use tempora_common::{Result, TemporaError};

use crate::{split_by_chunk, time_values, Engine, FileChanges, Layout};

impl Engine {
    /// Serializes refreshes of continuous aggregates.
    pub fn refresh_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.refresh_lock
    }

    /// Replaces the rows of hypertable `oid` whose time falls in `ranges`
    /// (`[start, end)`, sorted and disjoint) by `rows`, with the ops `more`
    /// builds, in one catalog commit: readers see the old rows or the new,
    /// and a crash leaves the old. The commit logs the change for the
    /// continuous aggregates reading `oid` (an aggregate on an aggregate).
    pub async fn materialize(
        &self,
        oid: u32,
        ranges: &[(i64, i64)],
        rows: Vec<RecordBatch>,
        more: impl FnMut(&CatalogState) -> Result<Vec<CatalogOp>>,
    ) -> Result<Arc<CatalogState>> {
        let inside = |t: i64| ranges.iter().any(|&(s, e)| s <= t && t < e);
        let overlaps = |lo: i64, hi: i64| ranges.iter().any(|&(s, e)| lo < e && s <= hi);
        let guard = self.lock_files().await;
        // Its rows are all in files (only this writes them; a flush is cheap
        // when nothing else waits).
        if self
            .read_snapshot()
            .memtable_rows(oid)
            .values()
            .any(|b| !b.is_empty())
        {
            self.flush_locked(&guard).await?;
        }
        let state = self.catalog().snapshot();
        let table = state
            .table_by_oid(oid)
            .ok_or_else(|| TemporaError::internal(format!("no table with oid {oid}")))?
            .clone();
        let mut changes = FileChanges {
            oid,
            ..Default::default()
        };
        let mut written: Vec<String> = Vec::new();
        let result = async {
            for chunk in table.chunks.values() {
                if !overlaps(chunk.range_start, chunk.range_end.saturating_sub(1)) {
                    continue;
                }
                for f in &chunk.files {
                    let (Some(lo), Some(hi)) = (f.min_time, f.max_time) else {
                        continue;
                    };
                    if !overlaps(lo, hi) {
                        continue;
                    }
                    changes.remove.push((Some(chunk.id), f.path.clone()));
                    let mut kept = Vec::new();
                    for batch in self.read_table_file(&table, &f.path).await? {
                        let keep: BooleanArray = time_values(&table, &batch)?
                            .into_iter()
                            .map(|t| Some(t.is_none_or(|t| !inside(t))))
                            .collect();
                        let part = filter_record_batch(&batch, &keep)
                            .map_err(|e| TemporaError::internal(e.to_string()))?;
                        if part.num_rows() > 0 {
                            kept.push(part);
                        }
                    }
                    if !kept.is_empty() {
                        let layout = Layout::rewriting(&table, &f.path);
                        let file = self
                            .write_table_file(&table, Some(chunk.id), &kept, "rewrite", layout)
                            .await?;
                        written.push(file.path.clone());
                        changes.add.push((Some(chunk.id), file));
                    }
                }
            }
            let rows: Vec<RecordBatch> = rows.into_iter().filter(|b| b.num_rows() > 0).collect();
            if let Some(first) = rows.first() {
                let all = concat_batches(&first.schema(), &rows)
                    .map_err(|e| TemporaError::internal(e.to_string()))?;
                let state = self.ensure_chunks(&table, &all).await?;
                let table = state
                    .table_by_oid(oid)
                    .ok_or_else(|| TemporaError::internal("materialization dropped"))?;
                for (chunk, part) in split_by_chunk(table, all)? {
                    let file = self
                        .write_table_file(table, chunk, &[part], "refresh", Layout::Merged)
                        .await?;
                    written.push(file.path.clone());
                    changes.add.push((chunk, file));
                }
            }
            self.commit_files_with(&guard, changes, more).await
        }
        .await;
        if result.is_err() {
            self.gc().retire(0, written);
        }
        result
    }
}
