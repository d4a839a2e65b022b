//! Deferred removal of files the catalog no longer lists.
//!
//! A statement pins the catalog version it starts at ([`ReadPin`]); a file
//! retired at version `V` (rewritten by DELETE/UPDATE, merged by compaction,
//! or belonging to a dropped table) is deleted only once no pin older than `V`
//! remains, so a query never loses a file it is reading.
//!
//! ```text
//! pin(v) ... scan files of state >= v ... drop pin
//! commit v+1 removes f ─► retire(v+1, f) ─► sweep: delete f when min(pins) >= v+1
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parking_lot::Mutex;

#[derive(Default)]
struct GcInner {
    /// Live pins by catalog version.
    pins: BTreeMap<u64, usize>,
    /// (catalog version that stopped listing the file, path).
    retired: Vec<(u64, String)>,
}

/// Tracks pins and retired files.
pub struct FileGc {
    inner: Mutex<GcInner>,
    store: Arc<dyn ObjectStore>,
}

/// Keeps the files of a catalog version (and later ones) on disk while held.
pub struct ReadPin {
    gc: Arc<FileGc>,
    version: u64,
}

impl std::fmt::Debug for ReadPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadPin")
            .field("version", &self.version)
            .finish()
    }
}

impl Drop for ReadPin {
    fn drop(&mut self) {
        let due = {
            let mut inner = self.gc.inner.lock();
            if let Some(n) = inner.pins.get_mut(&self.version) {
                *n -= 1;
                if *n == 0 {
                    inner.pins.remove(&self.version);
                }
            }
            take_due(&mut inner)
        };
        self.gc.delete_in_background(due);
    }
}

fn take_due(inner: &mut GcInner) -> Vec<String> {
    let oldest_pin = inner.pins.keys().next().copied().unwrap_or(u64::MAX);
    let mut due = Vec::new();
    inner.retired.retain(|(version, path)| {
        if *version <= oldest_pin {
            due.push(path.clone());
            false
        } else {
            true
        }
    });
    due
}

impl FileGc {
    pub fn new(store: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(GcInner::default()),
            store,
        })
    }

    /// Pins the version `current` returns; `current` runs under the GC lock so
    /// a concurrent sweep cannot miss the pin.
    pub fn pin(self: &Arc<Self>, current: impl FnOnce() -> u64) -> ReadPin {
        let mut inner = self.inner.lock();
        let version = current();
        *inner.pins.entry(version).or_default() += 1;
        ReadPin {
            gc: self.clone(),
            version,
        }
    }

    /// Files the catalog stopped listing at `version`; deleted once unpinned.
    pub fn retire(&self, version: u64, paths: impl IntoIterator<Item = String>) {
        let due = {
            let mut inner = self.inner.lock();
            inner
                .retired
                .extend(paths.into_iter().map(|p| (version, p)));
            take_due(&mut inner)
        };
        self.delete_in_background(due);
    }

    /// Number of retired files still waiting for readers.
    pub fn waiting(&self) -> usize {
        self.inner.lock().retired.len()
    }

    fn delete_in_background(&self, due: Vec<String>) {
        if due.is_empty() {
            return;
        }
        let store = self.store.clone();
        let run = async move {
            for path in due {
                match store.delete(&Path::from(path.as_str())).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                        tracing::debug!(%path, "removed retired file")
                    }
                    Err(e) => tracing::warn!(%path, error = %e, "could not remove retired file"),
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(run);
            }
            Err(_) => {
                tracing::debug!("no runtime to remove retired files; they stay until restart");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::PutPayload;

    async fn exists(store: &Arc<dyn ObjectStore>, path: &str) -> bool {
        store.head(&Path::from(path)).await.is_ok()
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn retired_file_outlives_older_pins_only() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        for p in ["a", "b"] {
            store
                .put(&Path::from(p), PutPayload::from_static(b"x"))
                .await
                .unwrap();
        }
        let gc = FileGc::new(store.clone());
        let old_reader = gc.pin(|| 4);
        let new_reader = gc.pin(|| 5);
        // "a" stopped being listed at version 5: the reader of version 4 may read it.
        gc.retire(5, ["a".to_string()]);
        settle().await;
        assert!(exists(&store, "a").await);
        assert_eq!(gc.waiting(), 1);
        drop(old_reader);
        settle().await;
        assert!(!exists(&store, "a").await, "no reader older than 5 remains");
        // A reader at version 5 does not hold files retired at version 5.
        gc.retire(5, ["b".to_string()]);
        settle().await;
        assert!(!exists(&store, "b").await);
        assert_eq!(gc.waiting(), 0);
        drop(new_reader);
    }
}
