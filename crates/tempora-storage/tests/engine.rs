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
                id,
                name: name.into(),
                ty,
                not_null: id == 1,
                default: None,
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
                    }]
                } else {
                    vec![]
                },
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
        for b in engine.read_table_file(&f.path).await.unwrap() {
            let ids = b.column(1).as_any().downcast_ref::<Int32Array>().unwrap();
            count += ids.len();
            sum += ids.values().iter().map(|v| *v as i64).sum::<i64>();
        }
    }
    (count, sum)
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_merges_small_files_and_old_files_leave_after_readers() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, oid) = engine_with_table(dir.path(), false).await;
    for round in 0..5i32 {
        let ids: Vec<i32> = (round * 10..round * 10 + 10).collect();
        let times: Vec<i64> = ids.iter().map(|i| *i as i64 * 1_000_000).collect();
        engine
            .insert(oid, vec![rows(&engine, oid, &times, &ids)])
            .await
            .unwrap();
        engine.flush().await.unwrap();
    }
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
        .write_with(vec![(
            oid,
            vec![rows(&engine, oid, &[0, 1, DAY, 7, 7], &[1, 1, 3, 4, 4])],
            OnConflict::Skip,
        )])
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
