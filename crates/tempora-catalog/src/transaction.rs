//! Catalog changes of an open transaction block (`BEGIN; CREATE TABLE ...;
//! COMMIT`), kept apart from the shared catalog until COMMIT.
//!
//! A session runs each statement of a block inside [`TxCatalog::scope`].
//! There, [`Catalog::snapshot`](crate::Catalog::snapshot) answers the shared
//! state with the block's ops applied on top, so the block sees its own
//! tables while other sessions do not. While a DDL statement runs under
//! [`TxCatalog::capture`], its definition ops (tables, views, schemas,
//! sequences...) are recorded here instead of committed; while a DELETE or
//! UPDATE runs under [`TxCatalog::capture_data`], its file changes too.
//! Other ops on data (flushes, jobs) always go to the shared catalog. COMMIT
//! publishes the ops as one durable record
//! ([`Catalog::commit_transaction`](crate::Catalog::commit_transaction)),
//! after checking that no other session changed what the block changed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tempora_common::{Result, SqlState, TemporaError};

use crate::model::{CatalogOp, CatalogState};

tokio::task_local! {
    static TX: Arc<TxCatalog>;
}

/// The open transaction block of the current task, if any.
pub(crate) fn current() -> Option<Arc<TxCatalog>> {
    TX.try_with(|tx| tx.clone()).ok()
}

/// Runs `f` outside any transaction block: engine work that a block's
/// statement sets off (flushing memtables) must read and change the shared
/// catalog only.
pub async fn outside<F: std::future::Future>(f: F) -> F::Output {
    if current().is_none() {
        return f.await;
    }
    TX.scope(Arc::new(TxCatalog::default()), f).await
}

/// Whether the current task runs a DELETE or UPDATE inside a transaction
/// block: the files it takes out stay listed until COMMIT, so they must not
/// be retired now.
pub fn capturing_data() -> bool {
    current().is_some_and(|tx| tx.capturing() && tx.capture_data.load(Ordering::SeqCst))
}

/// One session's pending catalog changes.
#[derive(Debug, Default)]
pub struct TxCatalog {
    inner: Mutex<Pending>,
    capture: AtomicBool,
    /// Set while a DELETE or UPDATE runs: its file changes stay in the block too.
    capture_data: AtomicBool,
    /// Set when a recorded op no longer applies to the shared state (another
    /// session changed what the block changes): the block can only fail.
    conflicted: AtomicBool,
}

#[derive(Debug, Default)]
struct Pending {
    ops: Vec<CatalogOp>,
    /// The shared state the first op was made against.
    base: Option<Arc<CatalogState>>,
    /// The last view built: (shared version, ops applied, state).
    view: Option<(u64, usize, Arc<CatalogState>)>,
}

/// Sets [`TxCatalog`] capture for as long as it lives.
pub struct CaptureGuard(Arc<TxCatalog>);

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        self.0.capture.store(false, Ordering::SeqCst);
        self.0.capture_data.store(false, Ordering::SeqCst);
    }
}

impl TxCatalog {
    /// Runs `f` with this block's catalog changes visible to it.
    pub async fn scope<F: std::future::Future>(self: &Arc<Self>, f: F) -> F::Output {
        TX.scope(self.clone(), f).await
    }

    /// [`TxCatalog::scope`] for synchronous code (a function DataFusion
    /// evaluates on one of its own tasks).
    pub fn sync_scope<R>(self: &Arc<Self>, f: impl FnOnce() -> R) -> R {
        TX.sync_scope(self.clone(), f)
    }

    /// Whether the current task runs in this block's scope (its connection's).
    pub fn in_scope(self: &Arc<Self>) -> bool {
        current().is_some_and(|tx| Arc::ptr_eq(&tx, self))
    }

    /// Records the definition ops of catalog commits made until the guard
    /// is dropped (a DDL statement inside the block).
    pub fn capture(self: &Arc<Self>) -> CaptureGuard {
        self.capture.store(true, Ordering::SeqCst);
        CaptureGuard(self.clone())
    }

    /// Records, until the guard is dropped, the file changes of catalog
    /// commits too (a DELETE or UPDATE inside the block), besides
    /// definition ops.
    pub fn capture_data(self: &Arc<Self>) -> CaptureGuard {
        self.capture_data.store(true, Ordering::SeqCst);
        self.capture()
    }

    pub(crate) fn capturing(&self) -> bool {
        self.capture.load(Ordering::SeqCst)
    }

    /// Whether `op` made now stays in the block rather than being committed.
    pub(crate) fn keeps(&self, op: &CatalogOp, shared: &CatalogState) -> bool {
        if self.capturing() {
            let data = self.capture_data.load(Ordering::SeqCst);
            // A shared sequence advances for everyone at once, as in
            // PostgreSQL (`nextval` in an UPDATE inside the block).
            if data
                && matches!(op, CatalogOp::PutSequence(s) if shared.sequences.contains_key(&s.oid))
            {
                return false;
            }
            if is_definition(op) || (data && is_file_change(op)) {
                return true;
            }
        }
        block_only(op, shared)
    }

    /// Whether another session changed what the block changes (its next
    /// statement and its COMMIT fail with 40001).
    pub fn conflicted(&self) -> bool {
        self.conflicted.load(Ordering::SeqCst)
    }

    /// Whether the block changed the catalog.
    pub fn is_empty(&self) -> bool {
        self.inner.lock().ops.is_empty()
    }

    /// How many ops are recorded: a savepoint's mark.
    pub fn mark(&self) -> usize {
        self.inner.lock().ops.len()
    }

    /// Forgets the ops recorded after `mark` (ROLLBACK TO SAVEPOINT);
    /// returns the paths of the files they added, which nothing lists now.
    pub fn rollback_to(&self, mark: usize) -> Vec<String> {
        let mut p = self.inner.lock();
        let at = mark.min(p.ops.len());
        let dropped = p.ops.split_off(at);
        p.view = None;
        if p.ops.is_empty() {
            p.base = None;
            self.conflicted.store(false, Ordering::SeqCst);
        }
        added_files(&dropped)
    }

    /// Forgets every recorded op (ROLLBACK); returns the paths of the files
    /// they added, which nothing lists now.
    pub fn clear(&self) -> Vec<String> {
        let p = std::mem::take(&mut *self.inner.lock());
        self.conflicted.store(false, Ordering::SeqCst);
        added_files(&p.ops)
    }

    /// The files the block's ops take out of their tables (retired once
    /// COMMIT has published that).
    pub fn removed_files(&self) -> Vec<String> {
        self.inner
            .lock()
            .ops
            .iter()
            .flat_map(|op| match op {
                CatalogOp::RemoveFiles { paths, .. } => paths.clone(),
                _ => vec![],
            })
            .collect()
    }

    /// The tables the block changes the definition of, and those it drops
    /// (their rows must be flushed first, their files retired after).
    pub fn changed_tables(&self) -> (Vec<u32>, Vec<u32>) {
        let p = self.inner.lock();
        let mut changed: Vec<u32> = p.ops.iter().filter_map(table_defined_by).collect();
        changed.sort_unstable();
        changed.dedup();
        let dropped = p
            .ops
            .iter()
            .filter_map(|op| match op {
                CatalogOp::DropTable { oid } => Some(*oid),
                _ => None,
            })
            .collect();
        (changed, dropped)
    }

    /// The ops and the shared state the first was made against, leaving
    /// the block empty.
    pub(crate) fn take(&self) -> (Vec<CatalogOp>, Option<Arc<CatalogState>>) {
        let p = std::mem::take(&mut *self.inner.lock());
        self.conflicted.store(false, Ordering::SeqCst);
        (p.ops, p.base)
    }

    pub(crate) fn record(&self, ops: Vec<CatalogOp>, shared: &Arc<CatalogState>) {
        if ops.is_empty() {
            return;
        }
        let mut p = self.inner.lock();
        if p.base.is_none() {
            p.base = Some(shared.clone());
        }
        p.ops.extend(ops);
    }

    /// `shared` with the block's ops applied. When one no longer applies
    /// (another session rewrote or dropped what it changes), the block is
    /// marked conflicted and keeps its last consistent view.
    pub(crate) fn view(&self, shared: Arc<CatalogState>) -> Arc<CatalogState> {
        let mut p = self.inner.lock();
        if p.ops.is_empty() {
            return shared;
        }
        if let Some((version, n, state)) = &p.view {
            if (*version == shared.version || self.conflicted()) && *n == p.ops.len() {
                return state.clone();
            }
        }
        let mut state = (*shared).clone();
        for op in &p.ops {
            if let Err(e) = state.apply_checked(op) {
                tracing::debug!(error = %e, "a transaction's catalog op no longer applies");
                self.conflicted.store(true, Ordering::SeqCst);
                if let Some((_, n, last)) = &p.view {
                    if *n == p.ops.len() {
                        return last.clone();
                    }
                }
                break;
            }
        }
        state.version = shared.version;
        let state = Arc::new(state);
        p.view = Some((shared.version, p.ops.len(), state.clone()));
        state
    }
}

/// Whether `op` changes a definition (recorded in a block) rather than data
/// (files, chunks, jobs: always shared).
pub(crate) fn is_definition(op: &CatalogOp) -> bool {
    match op {
        CatalogOp::CreateTable(_)
        | CatalogOp::DropTable { .. }
        | CatalogOp::MakeHypertable { .. }
        | CatalogOp::AlterTable(_)
        | CatalogOp::SetChunkInterval { .. }
        | CatalogOp::SetCompression { .. }
        | CatalogOp::CreateSchema { .. }
        | CatalogOp::DropSchema { .. }
        | CatalogOp::PutSequence(_)
        | CatalogOp::DropSequence { .. }
        | CatalogOp::PutView(_)
        | CatalogOp::DropView { .. }
        | CatalogOp::PutFunction(_)
        | CatalogOp::DropFunction { .. }
        | CatalogOp::SetIntegerNowFunc { .. }
        | CatalogOp::CreateExtension { .. }
        | CatalogOp::PutRole(_)
        | CatalogOp::DropRole { .. }
        | CatalogOp::PutDatabase(_)
        | CatalogOp::DropDatabase { .. } => true,
        CatalogOp::CreateChunk { .. }
        | CatalogOp::AddFiles { .. }
        | CatalogOp::RemoveFiles { .. }
        | CatalogOp::SetFlushedWalSeq(_)
        | CatalogOp::PutJob(_)
        | CatalogOp::DeleteJob { .. }
        | CatalogOp::AddJobError(_)
        | CatalogOp::DropChunks { .. }
        | CatalogOp::Invalidate { .. }
        | CatalogOp::SetChunkCompression { .. } => false,
    }
}

/// The table whose definition `op` changes or drops, if any.
fn table_defined_by(op: &CatalogOp) -> Option<u32> {
    match op {
        CatalogOp::DropTable { oid }
        | CatalogOp::MakeHypertable { oid, .. }
        | CatalogOp::SetChunkInterval { oid, .. }
        | CatalogOp::SetIntegerNowFunc { oid, .. }
        | CatalogOp::SetCompression { oid, .. } => Some(*oid),
        CatalogOp::AlterTable(t) => Some(t.oid),
        _ => None,
    }
}

/// Whether `op` changes a table's files (what a DELETE or UPDATE commits).
fn is_file_change(op: &CatalogOp) -> bool {
    matches!(
        op,
        CatalogOp::AddFiles { .. }
            | CatalogOp::RemoveFiles { .. }
            | CatalogOp::CreateChunk { .. }
            | CatalogOp::Invalidate { .. }
    )
}

/// The paths of the files `ops` add.
fn added_files(ops: &[CatalogOp]) -> Vec<String> {
    ops.iter()
        .flat_map(|op| match op {
            CatalogOp::AddFiles { files, .. } => files.iter().map(|f| f.path.clone()).collect(),
            _ => vec![],
        })
        .collect()
}

/// Whether `op`, made outside a DDL statement, must stay in the block: a
/// sequence the block created (`nextval` on a `serial` column of a table
/// created in the block) does not exist in the shared catalog yet.
pub(crate) fn block_only(op: &CatalogOp, shared: &CatalogState) -> bool {
    match op {
        CatalogOp::PutSequence(s) => !shared.sequences.contains_key(&s.oid),
        CatalogOp::DropSequence { oid } => !shared.sequences.contains_key(oid),
        _ => false,
    }
}

/// Checks, at COMMIT, that no other session changed what the block's `ops`
/// change since `base` (the shared state when the block first changed the
/// catalog): a relation the block alters or drops must be as it was, and
/// objects the block creates must not have had their ids or names taken.
pub(crate) fn check_conflicts(
    ops: &[CatalogOp],
    base: &CatalogState,
    shared: &CatalogState,
) -> Result<()> {
    let conflict = |what: String| {
        Err(TemporaError::new(
            SqlState::T_R_SERIALIZATION_FAILURE,
            "could not serialize access due to concurrent update",
        )
        .with_detail(what))
    };
    let table_unchanged = |oid: u32| {
        base.tables.get(&oid).map(|t| t.definition_only())
            == shared.tables.get(&oid).map(|t| t.definition_only())
    };
    let creates = ops.iter().any(|op| match op {
        CatalogOp::CreateTable(t) => !base.tables.contains_key(&t.oid),
        CatalogOp::PutView(v) => !base.views.contains_key(&v.oid),
        CatalogOp::PutFunction(f) => !base.functions.contains_key(&f.oid),
        CatalogOp::PutSequence(s) => !base.sequences.contains_key(&s.oid),
        CatalogOp::PutRole(r) => !base.roles.contains_key(&r.oid),
        CatalogOp::MakeHypertable { .. } => true,
        _ => false,
    });
    if creates
        && (base.next_oid != shared.next_oid
            || base.next_hypertable_id != shared.next_hypertable_id)
    {
        return conflict(
            "Another session created objects while this transaction created its own.".into(),
        );
    }
    let creates_chunks = ops
        .iter()
        .any(|op| matches!(op, CatalogOp::CreateChunk { .. }));
    if creates_chunks && base.next_chunk_id != shared.next_chunk_id {
        return conflict(
            "Another session created chunks while this transaction created its own.".into(),
        );
    }
    // The files the block rewrote must still be there.
    let mut probe = shared.clone();
    for op in ops {
        if probe.apply_checked(op).is_err() {
            return conflict(
                "Another session rewrote or dropped rows this transaction changes.".into(),
            );
        }
    }
    for op in ops {
        if let Some(oid) = table_defined_by(op) {
            if base.tables.contains_key(&oid) && !table_unchanged(oid) {
                return conflict(
                    "Another session changed a relation this transaction changes.".into(),
                );
            }
            continue;
        }
        let changed = match op {
            CatalogOp::PutView(v) => {
                base.views.contains_key(&v.oid)
                    && base.views.get(&v.oid) != shared.views.get(&v.oid)
            }
            CatalogOp::DropView { oid } => {
                base.views.contains_key(oid) && base.views.get(oid) != shared.views.get(oid)
            }
            CatalogOp::CreateSchema { name } => {
                !base.schemas.contains(name) && shared.schemas.contains(name)
            }
            CatalogOp::DropSchema { name } => {
                base.schemas.contains(name) && !shared.schemas.contains(name)
            }
            _ => false,
        };
        if changed {
            return conflict("Another session changed a relation this transaction changes.".into());
        }
    }
    Ok(())
}
