//! The engine's file lifecycle: flushes add files, compaction merges them,
//! retired files leave the disk once no statement can read them, unique keys
//! are enforced across memtables and files, and a multi-table write is one unit.

#![allow(clippy::result_large_err)]

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, Float64Array, Int32Array, RecordBatch, TimestampMicrosecondArray,
};
use tempora_catalog::{CatalogOp, ColumnDef, HypertableDef, PgType, TableDef, UniqueKey};
use tempora_storage::{Engine, EngineOptions, OnConflict};

const DAY: i64 = 86_400_000_000;

async fn engine_with_table(dir: &std::path::Path, unique: bool) -> (Arc<Engine>, u32) {
    let engine = Engine::open(EngineOptions::new(dir)).await.unwrap();
    let state = engine
        .catalog()
        .commit(|state| {
            let oid = state.next_oid;
            let col = |id, name: &str, ty| ColumnDef {
                not_null: id == 1,
                ..ColumnDef::new(id, name, ty)
            };
            let table = TableDef {
                oid,
                schema: "public".into(),
                name: "m".into(),
                columns: vec![
                    col(1, "time", PgType::Timestamptz),
                    col(2, "id", PgType::Int4),
                    col(3, "v", PgType::Float8),
                ],
                hypertable: None,
                chunks: Default::default(),
                files: vec![],
                unique_keys: if unique {
                    vec![UniqueKey {
                        name: "m_pkey".into(),
                        columns: vec!["time".into(), "id".into()],
                        primary: true,
                        index: false,
                    }]
                } else {
                    vec![]
                },
                compression: None,
                indexes: vec![],
                next_column_id: 0,
                comment: None,
                foreign_keys: vec![],
            };
            Ok(vec![
                CatalogOp::CreateTable(table),
                CatalogOp::MakeHypertable {
                    oid,
                    def: HypertableDef {
                        id: 1,
                        time_column: "time".into(),
                        chunk_interval: DAY,
                        space_dimensions: vec![],
                        dimension_ids: vec![],
                        integer_now_func: None,
                    },
                },
            ])
        })
        .await
        .unwrap();
    let oid = state.table("public", "m").unwrap().oid;
    (engine, oid)
}

fn rows(engine: &Engine, oid: u32, times: &[i64], ids: &[i32]) -> RecordBatch {
    let table = engine
        .catalog()
        .snapshot()
        .table_by_oid(oid)
        .unwrap()
        .clone();
    RecordBatch::try_new(
        Arc::new(table.arrow_schema()),
        vec![
            Arc::new(TimestampMicrosecondArray::from(times.to_vec()).with_timezone("UTC")),
            Arc::new(Int32Array::from(ids.to_vec())),
            Arc::new(Float64Array::from(
                ids.iter().map(|i| *i as f64).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

fn data_files(dir: &std::path::Path) -> usize {
    fn walk(p: &std::path::Path, n: &mut usize) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, n);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(&dir.join("chunks"), &mut n);
    n
}

async fn sum_ids(engine: &Engine, oid: u32) -> (usize, i64) {
    let state = engine.catalog().snapshot();
    let table = state.table_by_oid(oid).unwrap();
    let mut count = 0;
    let mut sum = 0i64;
    for f in table.all_files() {
        for b in engine.read_table_file(table, &f.path).await.unwrap() {
            let ids = b.column(1).as_any().downcast_ref::<Int32Array>().unwrap();
            count += ids.len();
            sum += ids.values().iter().map(|v| *v as i64).sum::<i64>();
        }
    }
    (count, sum)
}

/// Ids 0..50 at their second, written in five flushes of ten: five files.
async fn five_flushed_files(engine: &Engine, oid: u32) {
    for round in 0..5i32 {
        let ids: Vec<i32> = (round * 10..round * 10 + 10).collect();
        let times: Vec<i64> = ids.iter().map(|i| *i as i64 * 1_000_000).collect();
        engine
            .insert(oid, vec![rows(engine, oid, &times, &ids)])
            .await
            .unwrap();
        engine.flush().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_merges_small_files_and_old_files_leave_after_readers() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, oid) = engine_with_table(dir.path(), false).await;
    five_flushed_files(&engine, oid).await;
    assert_eq!(data_files(dir.path()), 5);
    let before = sum_ids(&engine, oid).await;
    assert_eq!(before, (50, (0..50).sum()));

    // A statement that started before the merge keeps the old files on disk.
    let reader = engine.pin();
    assert!(engine.compact_once().await.unwrap());
    assert!(
        !engine.compact_once().await.unwrap(),
        "nothing left to merge"
    );
    let state = engine.catalog().snapshot();
    assert_eq!(state.table_by_oid(oid).unwrap().all_files().count(), 1);
    assert_eq!(sum_ids(&engine, oid).await, before);
    assert_eq!(
        data_files(dir.path()),
        6,
        "old files kept for the pinned reader"
    );
    drop(reader);
    for _ in 0..50 {
        if data_files(dir.path()) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(data_files(dir.path()), 1, "old files removed once unpinned");
    // The merged file is time-sorted and says so.
    let merged = state
        .table_by_oid(oid)
        .unwrap()
        .all_files()
        .next()
        .unwrap()
        .clone();
    assert_eq!(
        (merged.min_time, merged.max_time),
        (Some(0), Some(49_000_000))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn listed_files_have_footers_and_page_indexes_cached_ahead() {
    use tempora_storage::metadata_warm::{object_meta, WarmReport};
    let dir = tempfile::tempdir().unwrap();
    let (engine, oid) = engine_with_table(dir.path(), false).await;
    five_flushed_files(&engine, oid).await;
    let cache = engine.runtime().cache_manager.get_file_metadata_cache();
    assert_eq!(cache.len(), 0);
    let report = engine.warm_metadata().await;
    assert_eq!(
        report,
        WarmReport {
            read: 5,
            ..Default::default()
        }
    );
    let state = engine.catalog().snapshot();
    let files: Vec<_> = state
        .table_by_oid(oid)
        .unwrap()
        .all_files()
        .cloned()
        .collect();
    for f in &files {
        let entry = cache.get(&object_meta(f).location).expect("cached");
        assert!(entry.is_valid_for(&object_meta(f)));
        let parquet = entry
            .file_metadata
            .as_any()
            .downcast_ref::<datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData>()
            .expect("a Parquet footer")
            .parquet_metadata()
            .clone();
        assert_eq!(parquet.file_metadata().num_rows(), 10);
        assert!(
            parquet.offset_index().is_some(),
            "page index read with the footer"
        );
        // The schema a reader would decode from the footer, decoded once.
        let footer = parquet.file_metadata();
        let decoded = datafusion::parquet::arrow::parquet_to_arrow_schema(
            footer.schema_descr(),
            footer.key_value_metadata(),
        )
        .unwrap();
        let kept = engine.file_schema(&f.path).expect("schema kept");
        assert_eq!(kept.as_ref(), &decoded);
    }
    let schemas: Vec<_> = files
        .iter()
        .filter_map(|f| engine.file_schema(&f.path))
        .collect();
    assert!(
        schemas.iter().all(|s| Arc::ptr_eq(s, &schemas[0])),
        "files of one layout share one schema"
    );
    assert_eq!(
        engine.warm_metadata().await,
        WarmReport::default(),
        "nothing left to read"
    );

    // A merge lists one file for the five: their entries leave the cache.
    assert!(engine.compact_once().await.unwrap());
    let report = engine.warm_metadata().await;
    assert_eq!(
        report,
        WarmReport {
            read: 1,
            dropped: 5,
            ..Default::default()
        }
    );
    assert_eq!(cache.len(), 1);
    for f in &files {
        assert!(engine.file_schema(&f.path).is_none(), "merged away");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unique_keys_are_checked_against_memtables_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, oid) = engine_with_table(dir.path(), true).await;
    engine
        .insert(oid, vec![rows(&engine, oid, &[0, 0], &[1, 2])])
        .await
        .unwrap();
    engine.flush().await.unwrap();
    engine
        .insert(oid, vec![rows(&engine, oid, &[DAY], &[3])])
        .await
        .unwrap();

    // Taken in a file, taken in the memtable, and repeated within the batch.
    for (times, ids) in [
        (vec![0i64], vec![1]),
        (vec![DAY], vec![3]),
        (vec![5, 5], vec![9, 9]),
    ] {
        let err = engine
            .insert(oid, vec![rows(&engine, oid, &times, &ids)])
            .await
            .unwrap_err();
        assert_eq!(err.code.code(), "23505", "{times:?} {ids:?}: {err}");
        assert_eq!(
            err.message,
            "duplicate key value violates unique constraint \"m_pkey\""
        );
    }
    // Same id at another time is a different key; Skip leaves out the taken ones.
    let written = engine
        .write_with(
            vec![(
                oid,
                vec![rows(&engine, oid, &[0, 1, DAY, 7, 7], &[1, 1, 3, 4, 4])],
                OnConflict::Skip,
            )],
            tempora_storage::SyncCommit::On,
        )
        .await
        .unwrap();
    assert_eq!(written, 2, "(1µs, 1) and the first (7µs, 4)");
    assert_eq!(engine.unflushed_rows(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_of_several_tables_replays_as_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (engine, oid) = engine_with_table(dir.path(), false).await;
        engine
            .write(vec![
                (oid, vec![rows(&engine, oid, &[0], &[1])]),
                (oid, vec![rows(&engine, oid, &[DAY * 3], &[2])]),
            ])
            .await
            .unwrap();
        // No flush, no close: only the WAL holds the rows.
    }
    let engine = Engine::open(EngineOptions::new(dir.path())).await.unwrap();
    assert_eq!(engine.unflushed_rows(), 2);
    let oid = engine
        .catalog()
        .snapshot()
        .table("public", "m")
        .unwrap()
        .oid;
    let chunks = engine
        .catalog()
        .snapshot()
        .table_by_oid(oid)
        .unwrap()
        .chunks
        .len();
    assert_eq!(chunks, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn write_returning_gives_the_rows_written() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, oid) = engine_with_table(dir.path(), true).await;
    engine
        .insert(oid, vec![rows(&engine, oid, &[0], &[1])])
        .await
        .unwrap();
    let written = engine
        .write_returning(
            oid,
            vec![rows(&engine, oid, &[0, 0, 5, 5], &[1, 2, 3, 3])],
            OnConflict::Skip,
            tempora_storage::SyncCommit::On,
        )
        .await
        .unwrap();
    let ids = written
        .column(1)
        .as_any()
        .downcast_ref::<Int32Array>()
        .unwrap();
    assert_eq!(
        ids.values().to_vec(),
        vec![2, 3],
        "the taken key and the repeat left out"
    );
}

/// `DO UPDATE SET v = existing.v + excluded.v [WHERE excluded.v >= 0]`.
struct AddValues;

impl tempora_storage::UpdateRows for AddValues {
    fn update(
        &self,
        existing: RecordBatch,
        excluded: RecordBatch,
    ) -> tempora_storage::UpdateFuture<'_> {
        Box::pin(async move {
            let old = existing
                .column(2)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap();
            let new = excluded
                .column(2)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap();
            let pairs: Vec<usize> = (0..existing.num_rows())
                .filter(|i| new.value(*i) >= 0.0)
                .collect();
            let indices = datafusion::arrow::array::UInt32Array::from(
                pairs.iter().map(|p| *p as u32).collect::<Vec<_>>(),
            );
            let kept = datafusion::arrow::compute::take_record_batch(&existing, &indices).unwrap();
            let sums: Float64Array = pairs
                .iter()
                .map(|p| Some(old.value(*p) + new.value(*p)))
                .collect();
            let mut cols = kept.columns().to_vec();
            cols[2] = Arc::new(sums);
            Ok(tempora_storage::UpdatedRows {
                pairs,
                rows: RecordBatch::try_new(kept.schema(), cols).unwrap(),
            })
        })
    }
}

fn rows_v(engine: &Engine, oid: u32, rows: &[(i64, i32, f64)]) -> RecordBatch {
    let schema = engine
        .catalog()
        .snapshot()
        .table_by_oid(oid)
        .unwrap()
        .arrow_schema();
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(Int32Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

/// Every row of the table (files and memtables) as (time, id, v), sorted.
async fn all_rows(engine: &Engine, oid: u32) -> Vec<(i64, i32, f64)> {
    let snapshot = engine.read_snapshot();
    let table = snapshot.catalog.table_by_oid(oid).unwrap();
    let mut batches = Vec::new();
    for f in table.all_files() {
        batches.extend(engine.read_table_file(table, &f.path).await.unwrap());
    }
    for (_, b) in snapshot.memtable_rows(oid) {
        batches.extend(b);
    }
    let mut out = Vec::new();
    for b in batches {
        let t = b
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        let id = b.column(1).as_any().downcast_ref::<Int32Array>().unwrap();
        let v = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        for i in 0..b.num_rows() {
            out.push((t.value(i), id.value(i), v.value(i)));
        }
    }
    out.sort_by_key(|a| (a.0, a.1));
    out
}

fn file_paths(engine: &Engine, oid: u32) -> Vec<String> {
    let state = engine.catalog().snapshot();
    let mut paths: Vec<String> = state
        .table_by_oid(oid)
        .unwrap()
        .all_files()
        .map(|f| f.path.clone())
        .collect();
    paths.sort();
    paths
}

#[tokio::test(flavor = "multi_thread")]
async fn upsert_replaces_memtable_rows_through_the_wal_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (engine, oid) = engine_with_table(dir.path(), true).await;
        engine
            .insert(
                oid,
                vec![rows_v(
                    &engine,
                    oid,
                    &[(0, 1, 1.0), (0, 2, 2.0), (DAY, 1, 3.0)],
                )],
            )
            .await
            .unwrap();
        let done = engine
            .upsert(
                oid,
                vec![rows_v(
                    &engine,
                    oid,
                    &[(DAY, 1, 10.0), (5, 3, 5.0), (0, 2, -1.0), (0, 1, 0.5)],
                )],
                0,
                &AddValues,
            )
            .await
            .unwrap();
        assert_eq!((done.inserted, done.updated), (1, 2));
        // In the order proposed: the update of (DAY, 1), the insert, the update of (0, 1).
        let v = done
            .rows
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(v.values().to_vec(), vec![13.0, 5.0, 1.5]);
        assert_eq!(engine.unflushed_rows(), 4, "replaced in the memtable");
        assert_eq!(data_files(dir.path()), 0, "no Parquet file written");
        assert_eq!(
            all_rows(&engine, oid).await,
            vec![(0, 1, 1.5), (0, 2, 2.0), (5, 3, 5.0), (DAY, 1, 13.0)]
        );
        // No flush, no close: only the WAL holds the rows.
    }
    let engine = Engine::open(EngineOptions::new(dir.path())).await.unwrap();
    let oid = engine
        .catalog()
        .snapshot()
        .table("public", "m")
        .unwrap()
        .oid;
    assert_eq!(engine.unflushed_rows(), 4);
    assert_eq!(
        all_rows(&engine, oid).await,
        vec![(0, 1, 1.5), (0, 2, 2.0), (5, 3, 5.0), (DAY, 1, 13.0)]
    );
    // Replayed keys are still taken.
    let err = engine
        .insert(oid, vec![rows_v(&engine, oid, &[(DAY, 1, 0.0)])])
        .await
        .unwrap_err();
    assert_eq!(err.code.code(), "23505");
}

#[tokio::test(flavor = "multi_thread")]
async fn upsert_rewrites_only_the_files_holding_replaced_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, oid) = engine_with_table(dir.path(), true).await;
    for day in 0..3 {
        engine
            .insert(
                oid,
                vec![rows_v(
                    &engine,
                    oid,
                    &[(day * DAY, 1, 1.0), (day * DAY, 2, 2.0)],
                )],
            )
            .await
            .unwrap();
        engine.flush().await.unwrap();
    }
    let before = file_paths(&engine, oid);
    assert_eq!(before.len(), 3);
    let done = engine
        .upsert(
            oid,
            vec![rows_v(&engine, oid, &[(DAY, 2, 5.0), (DAY, 3, 3.0)])],
            0,
            &AddValues,
        )
        .await
        .unwrap();
    assert_eq!((done.inserted, done.updated), (1, 1));
    assert_eq!(
        engine.unflushed_rows(),
        0,
        "written as files, not to the WAL"
    );
    let after = file_paths(&engine, oid);
    assert!(
        after.contains(&before[0]) && after.contains(&before[2]),
        "the files of days 0 and 2 are untouched: {before:?} -> {after:?}"
    );
    assert!(!after.contains(&before[1]), "the file of day 1 is replaced");
    let expected = vec![
        (0, 1, 1.0),
        (0, 2, 2.0),
        (DAY, 1, 1.0),
        (DAY, 2, 7.0),
        (DAY, 3, 3.0),
        (2 * DAY, 1, 1.0),
        (2 * DAY, 2, 2.0),
    ];
    assert_eq!(all_rows(&engine, oid).await, expected);
    drop(engine);
    let engine = Engine::open(EngineOptions::new(dir.path())).await.unwrap();
    assert_eq!(all_rows(&engine, oid).await, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn upsert_of_rows_in_files_and_memtable_is_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, oid) = engine_with_table(dir.path(), true).await;
    engine
        .insert(oid, vec![rows_v(&engine, oid, &[(0, 1, 1.0)])])
        .await
        .unwrap();
    engine.flush().await.unwrap();
    engine
        .insert(oid, vec![rows_v(&engine, oid, &[(0, 2, 2.0)])])
        .await
        .unwrap();
    let done = engine
        .upsert(
            oid,
            vec![rows_v(
                &engine,
                oid,
                &[(0, 2, 20.0), (0, 1, 10.0), (1, 1, 0.0)],
            )],
            0,
            &AddValues,
        )
        .await
        .unwrap();
    assert_eq!((done.inserted, done.updated), (1, 2));
    assert_eq!(engine.unflushed_rows(), 0);
    let expected = vec![(0, 1, 11.0), (0, 2, 22.0), (1, 1, 0.0)];
    assert_eq!(all_rows(&engine, oid).await, expected);
    drop(engine);
    let engine = Engine::open(EngineOptions::new(dir.path())).await.unwrap();
    assert_eq!(all_rows(&engine, oid).await, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn upsert_errors_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, oid) = engine_with_table(dir.path(), true).await;
    engine
        .insert(oid, vec![rows_v(&engine, oid, &[(0, 1, 1.0), (0, 2, 2.0)])])
        .await
        .unwrap();
    engine.flush().await.unwrap();
    engine
        .insert(oid, vec![rows_v(&engine, oid, &[(0, 3, 3.0)])])
        .await
        .unwrap();
    let before = all_rows(&engine, oid).await;
    // A key met twice: a row this statement wrote holds it.
    for proposed in [
        vec![(0, 1, 1.0), (0, 1, 1.0)],
        vec![(0, 9, 1.0), (0, 3, 1.0), (0, 9, 1.0)],
    ] {
        let err = engine
            .upsert(oid, vec![rows_v(&engine, oid, &proposed)], 0, &AddValues)
            .await
            .unwrap_err();
        assert_eq!(err.code.code(), "21000", "{proposed:?}: {err}");
        assert_eq!(
            err.message,
            "ON CONFLICT DO UPDATE command cannot affect row a second time"
        );
    }
    // Skipped the first time (WHERE false), the row can be met again.
    let done = engine
        .upsert(
            oid,
            vec![rows_v(&engine, oid, &[(0, 1, -1.0), (0, 1, 4.0)])],
            0,
            &AddValues,
        )
        .await
        .unwrap();
    assert_eq!((done.inserted, done.updated), (0, 1));
    let mut expected = before.clone();
    expected[0].2 = 5.0;
    assert_eq!(all_rows(&engine, oid).await, expected);
    assert_eq!(
        engine.unflushed_rows(),
        1,
        "the memtable row stays; the file row was replaced by a rewrite"
    );
}
