//! Which small files to merge.
//!
//! Every flush writes one file per chunk it has rows for and every large COPY
//! writes its own, so a chunk that keeps receiving rows collects many small
//! files. The compactor merges small files of the chunk with the most of
//! them into one time-sorted file, bounded in rows so that the merge's
//! memory stays bounded. The files it merges are neighbours in time: a
//! merged file then spans no more time than its inputs did together, so a
//! query over a time range still opens only the files of that range. (Taking
//! the smallest files first merged the last minutes a bulk COPY wrote into a
//! chunk with its first hour, and every query over that chunk opened the
//! file.) Files of compressed chunks are left alone: they
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
            let mergeable =
                |f: &FileDef| f.rows < options.small_file_rows && !f.compressed && !held(&f.path);
            if files.iter().filter(|f| mergeable(f)).count() < options.min_files {
                continue;
            }
            let Some(picked) = time_neighbours(files, mergeable, options.max_merge_rows) else {
                continue;
            };
            if best.as_ref().is_none_or(|(_, _, b)| picked.len() > b.len()) {
                best = Some((table.oid, chunk, picked));
            }
        }
    }
    best
}

/// The most `mergeable` files of a chunk's `files` that lie next to each
/// other in time (ordered by their first time, then size, with no other
/// file of the chunk between them) and whose rows together stay within
/// `max_rows`; the fewest rows among as many. None when no two fit. Files
/// without times (tables that are not hypertables) are ordered by size, so
/// the smallest go first, and only files with times part a group.
fn time_neighbours(
    files: &[FileDef],
    mergeable: impl Fn(&FileDef) -> bool,
    max_rows: u64,
) -> Option<Vec<FileDef>> {
    let mut ordered: Vec<&FileDef> = files.iter().collect();
    ordered.sort_by_key(|f| (f.min_time, f.rows));
    let mut best: Option<(Vec<&FileDef>, u64)> = None;
    for start in 0..ordered.len() {
        let mut rows = 0u64;
        let mut group = Vec::new();
        for f in &ordered[start..] {
            if !mergeable(f) {
                // Without a time a file is nobody's neighbour.
                if f.min_time.is_none() {
                    continue;
                }
                break;
            }
            if rows + f.rows > max_rows {
                break;
            }
            rows += f.rows;
            group.push(*f);
        }
        let better = best.as_ref().is_none_or(|(b, brows)| {
            group.len() > b.len() || (group.len() == b.len() && rows < *brows)
        });
        if group.len() >= 2 && better {
            best = Some((group, rows));
        }
    }
    best.map(|(group, _)| group.into_iter().cloned().collect())
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

    fn timed(path: &str, rows: u64, min: i64, max: i64) -> FileDef {
        FileDef {
            min_time: Some(min),
            max_time: Some(max),
            ..file(path, rows)
        }
    }

    /// A chunk's files are merged with their neighbours in time, never
    /// across a file left alone: the first hour a bulk COPY wrote and its
    /// last minutes stay apart, so that a query over either does not open a
    /// file spanning the whole chunk.
    #[test]
    fn merges_neighbours_in_time_not_the_smallest_files() {
        let options = CompactionOptions {
            min_files: 3,
            small_file_rows: 100,
            max_merge_rows: 200,
        };
        let mut state = CatalogState::default();
        let t = table(vec![
            timed("tail", 5, 1100, 1199),
            timed("head1", 90, 0, 99),
            timed("big", 500, 300, 999),
            timed("head2", 90, 100, 199),
            timed("late1", 60, 1000, 1049),
            timed("late2", 30, 1050, 1099),
            timed("head3", 90, 200, 299),
        ]);
        state.tables.insert(t.oid, t);
        let (_, _, files) = pick(&state, &options, |_| false).expect("a group");
        let names: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        // Three after "big": as many as the two first hours, fewer rows.
        assert_eq!(names, ["late1", "late2", "tail"]);
        // With those merged, the first hours go together; "head3" would
        // take the group past its rows.
        let merged = timed("merged", 95, 1000, 1199);
        let t = table(vec![
            timed("head1", 90, 0, 99),
            timed("big", 500, 300, 999),
            timed("head2", 90, 100, 199),
            merged,
            timed("head3", 90, 200, 299),
        ]);
        state.tables.insert(t.oid, t);
        let (_, _, files) = pick(&state, &options, |_| false).expect("a group");
        let names: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["head1", "head2"]);
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
