//! Tempora's durable catalog: which tables, hypertables, chunks and files exist.
//!
//! The state is an immutable [`CatalogState`] behind an `Arc`, swapped on each
//! commit, so readers take a consistent snapshot without locks held. It is
//! persisted as numbered, create-only log records plus periodic full snapshots
//! through `object_store`:
//!
//! ```text
//! catalog/log/00000000000000000007.json       {"format_version":1,"version":7,"ops":[...]}
//! catalog/snapshot/00000000000000000064.json  {"format_version":1,"state":{...}}
//! ```
//!
//! A record is written with `PutMode::Create`, so two writers racing for the
//! same version cannot both win. On open, the newest snapshot is loaded and
//! every later record replayed in order.
// Errors carry PostgreSQL's fields (detail, hint, position, context): a
// large Err is the price of one error type across layers, paid only on failure.
#![allow(clippy::result_large_err)]

pub mod model;
pub mod partition;
pub mod store;
pub mod transaction;

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tempora_common::{Result, SqlState, TemporaError};

pub use model::*;
pub use transaction::TxCatalog;

/// Version of the on-disk catalog format; bump with a migration.
pub const FORMAT_VERSION: u32 = 1;
/// A full snapshot is written every this many commits.
const SNAPSHOT_EVERY: u64 = 64;

#[derive(Serialize, Deserialize)]
struct LogRecord {
    format_version: u32,
    version: u64,
    ops: Vec<CatalogOp>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotRecord {
    format_version: u32,
    state: CatalogState,
}

/// The live catalog: current state plus the store it is persisted in.
#[derive(Debug)]
pub struct Catalog {
    store: Arc<dyn ObjectStore>,
    current: RwLock<Arc<CatalogState>>,
    commit_lock: tokio::sync::Mutex<()>,
    /// The version of `current`, for tasks that follow the catalog's changes
    /// ([`Catalog::versions`]).
    versions: tokio::sync::watch::Sender<u64>,
    /// Commits that changed what SQL text refers to ([`Catalog::definitions`]).
    definitions: std::sync::atomic::AtomicU64,
}

fn log_path(version: u64) -> Path {
    Path::from(format!("catalog/log/{version:020}.json"))
}

fn snapshot_path(version: u64) -> Path {
    Path::from(format!("catalog/snapshot/{version:020}.json"))
}

fn store_err(context: &str, e: object_store::Error) -> TemporaError {
    TemporaError::storage(context, &e)
}

fn corrupt(context: &str, e: impl std::fmt::Display) -> TemporaError {
    TemporaError::new(SqlState::DATA_CORRUPTED, format!("{context}: {e}"))
}

/// Versions of the objects under `prefix` named `<version>.json`.
async fn list_versions(store: &dyn ObjectStore, prefix: &str) -> Result<Vec<u64>> {
    let prefix = Path::from(prefix);
    let metas: Vec<_> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| store_err("could not list catalog", e))?;
    let mut versions: Vec<u64> = metas
        .iter()
        .filter_map(|m| m.location.filename()?.strip_suffix(".json")?.parse().ok())
        .collect();
    versions.sort_unstable();
    Ok(versions)
}

async fn read_json<T: for<'de> Deserialize<'de>>(
    store: &dyn ObjectStore,
    path: &Path,
) -> Result<T> {
    let bytes = store
        .get(path)
        .await
        .map_err(|e| store_err("could not read catalog", e))?
        .bytes()
        .await
        .map_err(|e| store_err("could not read catalog", e))?;
    serde_json::from_slice(&bytes).map_err(|e| corrupt(&format!("catalog file {path}"), e))
}

impl Catalog {
    /// Loads the catalog from `store` (an empty store gives an empty catalog).
    pub async fn open(store: Arc<dyn ObjectStore>) -> Result<Arc<Catalog>> {
        let snapshots = list_versions(store.as_ref(), "catalog/snapshot").await?;
        let mut state = match snapshots.last() {
            Some(v) => {
                let snap: SnapshotRecord = read_json(store.as_ref(), &snapshot_path(*v)).await?;
                check_format(snap.format_version)?;
                snap.state
            }
            None => CatalogState::default(),
        };
        for v in list_versions(store.as_ref(), "catalog/log").await? {
            if v <= state.version {
                continue;
            }
            if v != state.version + 1 {
                return Err(corrupt(
                    "catalog log",
                    format!("record {} missing (found {v})", state.version + 1),
                ));
            }
            let rec: LogRecord = read_json(store.as_ref(), &log_path(v)).await?;
            check_format(rec.format_version)?;
            for op in &rec.ops {
                state.apply(op)?;
            }
            state.version = v;
        }
        tracing::info!(
            version = state.version,
            tables = state.tables.len(),
            "catalog loaded"
        );
        Ok(Arc::new(Catalog {
            store,
            versions: tokio::sync::watch::Sender::new(state.version),
            definitions: std::sync::atomic::AtomicU64::new(0),
            current: RwLock::new(Arc::new(state)),
            commit_lock: tokio::sync::Mutex::new(()),
        }))
    }

    /// The current state: a consistent snapshot that never changes under the
    /// caller. Inside a transaction block's scope, with the block's own
    /// catalog changes applied.
    pub fn snapshot(&self) -> Arc<CatalogState> {
        seen_by_block(self.current.read().clone())
    }

    /// The state every session shares, without the changes of the current
    /// task's transaction block.
    pub fn shared_snapshot(&self) -> Arc<CatalogState> {
        self.current.read().clone()
    }

    /// Runs `f` on the current state (as [`Catalog::snapshot`] sees it)
    /// while no commit can publish: lets a reader pair the catalog with
    /// other state consistently.
    pub fn read_with<R>(&self, f: impl FnOnce(&Arc<CatalogState>) -> R) -> R {
        let current = self.current.read();
        f(&seen_by_block(current.clone()))
    }

    /// Follows the shared state's version: changes once per commit that
    /// published a new state.
    pub fn versions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.versions.subscribe()
    }

    /// The store the catalog (and chunk files) live in.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Commits the ops `build` derives from the latest state, atomically and
    /// durably. `build` runs under the commit lock, so ids it allocates from
    /// the state are unique. Returns the new state.
    pub async fn commit<F>(&self, build: F) -> Result<Arc<CatalogState>>
    where
        F: FnOnce(&CatalogState) -> Result<Vec<CatalogOp>>,
    {
        self.commit_and_publish(build, |_| ()).await
    }

    /// Like [`Catalog::commit`], and runs `publish` while the new state is
    /// being swapped in, under the same lock readers of [`Catalog::read_with`]
    /// take: state outside the catalog (memtables) can change atomically with it.
    pub async fn commit_and_publish<F, P>(&self, build: F, publish: P) -> Result<Arc<CatalogState>>
    where
        F: FnOnce(&CatalogState) -> Result<Vec<CatalogOp>>,
        P: FnOnce(&Arc<CatalogState>),
    {
        let _guard = self.commit_lock.lock().await;
        if let Some(tx) = transaction::current() {
            if tx.capturing() || !tx.is_empty() {
                return self.commit_in_block(&tx, build, publish).await;
            }
        }
        let base = self.current.read().clone();
        let ops = build(&base)?;
        self.publish_ops(base, ops, publish).await
    }

    /// A commit made inside a transaction block (commit lock held): `build`
    /// sees the block's view; definition ops of a capturing DDL statement,
    /// and changes to objects only the block has, stay in the block; the
    /// rest is committed at once. Returns the block's view after it.
    async fn commit_in_block<F, P>(
        &self,
        tx: &TxCatalog,
        build: F,
        publish: P,
    ) -> Result<Arc<CatalogState>>
    where
        F: FnOnce(&CatalogState) -> Result<Vec<CatalogOp>>,
        P: FnOnce(&Arc<CatalogState>),
    {
        let shared = self.current.read().clone();
        let view = tx.view(shared.clone());
        let ops = build(&view)?;
        let (block, now): (Vec<CatalogOp>, Vec<CatalogOp>) =
            ops.into_iter().partition(|op| tx.keeps(op, &shared));
        // The block's ops must apply to its view, as a commit's would.
        let mut check = (*view).clone();
        for op in &block {
            check.apply(op)?;
        }
        let shared = self.publish_ops(shared.clone(), now, publish).await?;
        tx.record(block, &shared);
        Ok(tx.view(shared))
    }

    /// COMMIT of a transaction block: its recorded ops as one durable
    /// record, unless another session changed what they change (40001).
    /// Returns the shared state before and after.
    pub async fn commit_transaction(
        &self,
        tx: &TxCatalog,
    ) -> Result<(Arc<CatalogState>, Arc<CatalogState>)> {
        let (ops, base) = tx.take();
        let _guard = self.commit_lock.lock().await;
        let shared = self.current.read().clone();
        if let Some(base) = &base {
            transaction::check_conflicts(&ops, base, &shared)?;
        }
        let after = self.publish_ops(shared.clone(), ops, |_| ()).await?;
        Ok((shared, after))
    }

    /// Applies `ops` to `base`, logs them as the next version and makes it
    /// current (the caller holds the commit lock).
    async fn publish_ops<P>(
        &self,
        base: Arc<CatalogState>,
        ops: Vec<CatalogOp>,
        publish: P,
    ) -> Result<Arc<CatalogState>>
    where
        P: FnOnce(&Arc<CatalogState>),
    {
        if ops.is_empty() {
            let _current = self.current.write();
            publish(&base);
            return Ok(base);
        }
        let mut next = (*base).clone();
        for op in &ops {
            next.apply(op)?;
        }
        let redefines = ops.iter().any(CatalogOp::changes_definitions);
        next.version = base.version + 1;
        let record = LogRecord {
            format_version: FORMAT_VERSION,
            version: next.version,
            ops,
        };
        let bytes =
            serde_json::to_vec(&record).map_err(|e| TemporaError::internal(e.to_string()))?;
        self.store
            .put_opts(
                &log_path(next.version),
                PutPayload::from(bytes),
                PutOptions::from(PutMode::Create),
            )
            .await
            .map_err(|e| store_err("could not write catalog record", e))?;
        let next = Arc::new(next);
        {
            let mut current = self.current.write();
            *current = next.clone();
            publish(&next);
        }
        // After the new state is current: a statement planned from the old
        // one reads the old count and is planned again.
        if redefines {
            self.definitions
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.versions.send_replace(next.version);
        if next.version.is_multiple_of(SNAPSHOT_EVERY) {
            if let Err(e) = self.write_snapshot(&next).await {
                // The log alone is still complete; a later snapshot will do.
                tracing::warn!(error = %e, "could not write catalog snapshot");
            }
        }
        Ok(next)
    }

    /// How many commits changed tables, their columns, views, functions or
    /// schemas since the catalog was opened: a prepared statement planned
    /// when it read another count is planned again before it runs.
    pub fn definitions(&self) -> u64 {
        self.definitions.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn write_snapshot(&self, state: &CatalogState) -> Result<()> {
        let rec = SnapshotRecord {
            format_version: FORMAT_VERSION,
            state: state.clone(),
        };
        let bytes = serde_json::to_vec(&rec).map_err(|e| TemporaError::internal(e.to_string()))?;
        self.store
            .put_opts(
                &snapshot_path(state.version),
                PutPayload::from(bytes),
                PutOptions::from(PutMode::Overwrite),
            )
            .await
            .map_err(|e| store_err("could not write catalog snapshot", e))?;
        // Records and snapshots the new snapshot covers are no longer needed.
        for v in list_versions(self.store.as_ref(), "catalog/log").await? {
            if v <= state.version {
                let _ = self.store.delete(&log_path(v)).await;
            }
        }
        for v in list_versions(self.store.as_ref(), "catalog/snapshot").await? {
            if v < state.version {
                let _ = self.store.delete(&snapshot_path(v)).await;
            }
        }
        tracing::debug!(version = state.version, "catalog snapshot written");
        Ok(())
    }
}

/// `shared` as the current task sees it: with its transaction block's
/// catalog changes applied, if it runs in one.
fn seen_by_block(shared: Arc<CatalogState>) -> Arc<CatalogState> {
    match transaction::current() {
        Some(tx) => tx.view(shared),
        None => shared,
    }
}

fn check_format(v: u32) -> Result<()> {
    if v != FORMAT_VERSION {
        return Err(corrupt(
            "catalog",
            format!("unsupported catalog format version {v} (this server reads {FORMAT_VERSION})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(oid: u32, name: &str) -> TableDef {
        TableDef {
            oid,
            schema: "public".into(),
            name: name.into(),
            columns: vec![ColumnDef::new(1, "time", PgType::Timestamptz)],
            ..Default::default()
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn commits_survive_reopen_across_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = store::DurableLocalStore::open(dir.path()).unwrap();
        let cat = Catalog::open(store.clone()).await.unwrap();
        for i in 0..(SNAPSHOT_EVERY + 5) {
            cat.commit(|s| {
                Ok(vec![CatalogOp::CreateTable(table(
                    s.next_oid,
                    &format!("t{i}"),
                ))])
            })
            .await
            .unwrap();
        }
        let before = cat.snapshot();
        drop(cat);
        let reopened = Catalog::open(store).await.unwrap();
        assert_eq!(*reopened.snapshot(), *before);
        assert_eq!(
            reopened.snapshot().tables.len(),
            (SNAPSHOT_EVERY + 5) as usize
        );
        // Log records covered by the snapshot were removed.
        assert!(!dir
            .path()
            .join("catalog/log/00000000000000000001.json")
            .exists());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn record_format_is_pinned() {
        let rec = LogRecord {
            format_version: 1,
            version: 3,
            ops: vec![CatalogOp::SetFlushedWalSeq(9)],
        };
        assert_eq!(
            serde_json::to_string(&rec).unwrap(),
            r#"{"format_version":1,"version":3,"ops":[{"SetFlushedWalSeq":9}]}"#
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_build_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = store::DurableLocalStore::open(dir.path()).unwrap();
        let cat = Catalog::open(store).await.unwrap();
        let err = cat
            .commit(|_| Err(TemporaError::undefined_table("x")))
            .await
            .unwrap_err();
        assert_eq!(err.code, SqlState::UNDEFINED_TABLE);
        assert_eq!(cat.snapshot().version, 0);
    }
}
