//! Which small files to merge.
//!
//! Every flush writes one file per chunk it has rows for and every large COPY
//! writes its own, so a chunk that keeps receiving rows collects many small
//! files. The compactor merges the smallest files of the chunk with the most
//! of them into one time-sorted file, bounded in rows so that the merge's
//! memory stays bounded. Files of compressed chunks are left alone: they
//! are large, and merging them would undo their layout.

use tempora_catalog::{CatalogState, FileDef};

/// Tuning of compaction.
#[derive(Debug, Clone)]
pub struct CompactionOptions {
    /// A chunk is compacted once it holds at least this many small files.
    pub min_files: usize,
    /// Files with at least this many rows are left alone.
    pub small_file_rows: u64,
    /// At most this many rows are merged at once.
    pub max_merge_rows: u64,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        Self {
            min_files: 4,
            small_file_rows: 1 << 20,
            max_merge_rows: 2 << 20,
        }
    }
}

/// The (table, chunk, files) to merge next, if any chunk qualifies. Files
/// `held` says an open transaction block rewrote are left alone.
pub fn pick(
    state: &CatalogState,
    options: &CompactionOptions,
    held: impl Fn(&str) -> bool,
) -> Option<(u32, Option<u32>, Vec<FileDef>)> {
    let mut best: Option<(u32, Option<u32>, Vec<FileDef>)> = None;
    for table in state.tables.values() {
        let groups = std::iter::once((None, &table.files))
            .chain(table.chunks.values().map(|c| (Some(c.id), &c.files)));
        for (chunk, files) in groups {
            let mut small: Vec<&FileDef> = files
                .iter()
                .filter(|f| f.rows < options.small_file_rows && !f.compressed && !held(&f.path))
                .collect();
            if small.len() < options.min_files {
                continue;
            }
            small.sort_by_key(|f| f.rows);
            let mut total = 0u64;
            let picked: Vec<FileDef> = small
                .into_iter()
                .take_while(|f| {
                    total += f.rows;
                    total <= options.max_merge_rows
                })
                .cloned()
                .collect();
            if picked.len() < 2 {
                continue;
            }
            if best.as_ref().is_none_or(|(_, _, b)| picked.len() > b.len()) {
                best = Some((table.oid, chunk, picked));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(files: Vec<FileDef>) -> tempora_catalog::TableDef {
        tempora_catalog::TableDef {
            oid: 16384,
            schema: "public".into(),
            name: "t".into(),
            files,
            ..Default::default()
        }
    }

    fn file(path: &str, rows: u64) -> FileDef {
        FileDef {
            path: path.into(),
            rows,
            bytes: rows * 10,
            min_time: None,
            max_time: None,
            compressed: false,
            series: None,
        }
    }

    #[test]
    fn picks_smallest_files_of_the_fullest_chunk_within_the_row_budget() {
        let options = CompactionOptions {
            min_files: 3,
            small_file_rows: 100,
            max_merge_rows: 150,
        };
        let mut state = CatalogState::default();
        let t = table(vec![
            file("a", 10),
            file("b", 90),
            file("c", 50),
            file("d", 200),
            file("e", 60),
        ]);
        state.tables.insert(t.oid, t);
        let (oid, chunk, files) = pick(&state, &options, |_| false).expect("a group");
        assert_eq!((oid, chunk), (16384, None));
        let names: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        // Smallest first, stopping before the budget is exceeded; the large file is never picked.
        assert_eq!(names, ["a", "c", "e"]);
    }

    #[test]
    fn too_few_small_files_means_nothing_to_do() {
        let options = CompactionOptions::default();
        let mut state = CatalogState::default();
        let t = table(vec![file("a", 10), file("b", 10)]);
        state.tables.insert(t.oid, t);
        assert!(pick(&state, &options, |_| false).is_none());
    }

    #[test]
    fn files_open_blocks_hold_are_left_alone() {
        let options = CompactionOptions {
            min_files: 2,
            small_file_rows: 100,
            max_merge_rows: 1000,
        };
        let mut state = CatalogState::default();
        let t = table(vec![file("a", 10), file("b", 10), file("c", 10)]);
        state.tables.insert(t.oid, t);
        let (_, _, files) = pick(&state, &options, |p| p == "b").expect("a group");
        let names: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        assert!(pick(&state, &options, |p| p != "a").is_none());
    }
}
