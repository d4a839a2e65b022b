//! Footers and page indexes of the data files, read into the runtime's
//! metadata cache ahead of the statements that need them.
//!
//! A statement that opens a file the cache does not hold reads and decodes
//! its footer and page index first: at 4,000 hosts that made the first
//! one-host statements after a start, a flush or a merge two to five times
//! slower than the same statements a moment later. The engine's warmer
//! reads them as soon as a file is listed (and for every file when the
//! engine opens), newest files first, so statements find them cached.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::parquet::arrow::parquet_to_arrow_schema;
use datafusion::parquet::file::metadata::PageIndexPolicy;
use object_store::path::Path;
use object_store::ObjectMeta;
use parking_lot::RwLock;
use tempora_catalog::{CatalogState, FileDef};

use crate::Engine;

/// The share of the metadata cache's budget warming may fill: entries that
/// statements read in are never evicted for a file no statement asked for.
const FILL_NUMERATOR: usize = 3;
const FILL_DENOMINATOR: usize = 4;

/// How long the warmer lets a burst of commits (a flush followed by a merge)
/// settle before it reads what they listed.
const SETTLE: Duration = Duration::from_millis(200);

/// How a listed file is known to the object store's readers: the metadata
/// cache checks an entry's size and modification time against it. Files
/// never change once listed and their paths are never reused, so a fixed
/// time is as good as the real one, and saves asking the store.
pub fn object_meta(f: &FileDef) -> ObjectMeta {
    ObjectMeta {
        location: Path::from(f.path.as_str()),
        last_modified: chrono::DateTime::<chrono::Utc>::MIN_UTC,
        size: f.bytes,
        e_tag: None,
        version: None,
    }
}

/// The Arrow schema of each listed file whose footer the warmer has read or
/// found cached. A scan hands it to the Parquet reader with the file
/// (`PartitionedFile::with_arrow_schema`), which otherwise decodes the schema
/// the writer embedded in the footer (base64, then an Arrow IPC message) on
/// every open: a twentieth of a statement that reads a few rows of each of
/// a dozen files. Files never change once listed, so neither do their
/// schemas.
#[derive(Debug, Default)]
pub(crate) struct FileSchemas(RwLock<Schemas>);

#[derive(Debug, Default)]
struct Schemas {
    by_path: HashMap<String, SchemaRef>,
    /// Each distinct schema once: a table's files mostly share one.
    distinct: Vec<SchemaRef>,
}

impl FileSchemas {
    pub(crate) fn get(&self, path: &str) -> Option<SchemaRef> {
        self.0.read().by_path.get(path).cloned()
    }

    fn contains(&self, path: &str) -> bool {
        self.0.read().by_path.contains_key(path)
    }

    fn insert(&self, path: &str, schema: Schema) {
        let mut schemas = self.0.write();
        let shared = match schemas.distinct.iter().find(|s| s.as_ref() == &schema) {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(schema);
                schemas.distinct.push(s.clone());
                s
            }
        };
        schemas.by_path.insert(path.to_string(), shared);
    }

    /// Forgets the files not `listed`, and schemas no file has any more.
    fn retain(&self, listed: &HashSet<&str>) {
        let mut schemas = self.0.write();
        schemas
            .by_path
            .retain(|path, _| listed.contains(path.as_str()));
        let Schemas { by_path, distinct } = &mut *schemas;
        distinct.retain(|s| by_path.values().any(|v| Arc::ptr_eq(v, s)));
    }
}

/// What one pass of the warmer did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WarmReport {
    /// Files whose footer and page index were read into the cache.
    pub read: usize,
    /// Files that could not be read (removed meanwhile, or damaged: a
    /// statement reading them reports the error).
    pub failed: usize,
    /// Entries of files no longer listed, dropped from the cache.
    pub dropped: usize,
}

/// Every listed file, newest rows first: recent chunks are the ones most
/// statements read.
fn listed_files(state: &CatalogState) -> Vec<&FileDef> {
    let mut files: Vec<&FileDef> = state.tables.values().flat_map(|t| t.all_files()).collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.max_time));
    files
}

impl Engine {
    /// Background loop: warms the metadata cache when the engine starts and
    /// after every catalog commit (see the module documentation).
    pub async fn run_metadata_warmer(
        self: Arc<Self>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut shutdown = shutdown;
        let mut versions = self.catalog.versions();
        loop {
            versions.mark_unchanged();
            let report = self.warm_metadata().await;
            if report != WarmReport::default() {
                tracing::debug!(?report, "file metadata warmed");
            }
            tokio::select! {
                changed = versions.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = shutdown.changed() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(SETTLE) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One pass: drops the cache entries of files no longer listed, then
    /// reads the footer and page index of each listed file the cache does
    /// not hold, newest first, while the cache is less than three quarters
    /// full.
    pub async fn warm_metadata(&self) -> WarmReport {
        let cache = self.runtime.cache_manager.get_file_metadata_cache();
        let state = self.catalog.shared_snapshot();
        let files = listed_files(&state);
        let listed: HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
        let mut report = WarmReport::default();
        let mut used = 0;
        for (path, entry) in cache.list_entries() {
            if listed.contains(path.as_ref()) {
                used += entry.size_bytes;
            } else {
                cache.remove(&path);
                report.dropped += 1;
            }
        }
        self.file_schemas.retain(&listed);
        let budget = cache.cache_limit() / FILL_DENOMINATOR * FILL_NUMERATOR;
        let started = Instant::now();
        for f in files {
            let meta = object_meta(f);
            let cached = cache
                .get(&meta.location)
                .is_some_and(|e| e.is_valid_for(&meta));
            if (cached && self.file_schemas.contains(&f.path)) || (!cached && used >= budget) {
                continue;
            }
            // A cached footer comes back from the cache.
            let fetched = DFParquetMetadata::new(self.store().as_ref(), &meta)
                .with_file_metadata_cache(Some(cache.clone()))
                .with_page_index_policy(Some(PageIndexPolicy::Optional))
                .fetch_metadata()
                .await;
            match fetched {
                Ok(m) => {
                    if !cached {
                        used += m.memory_size();
                        report.read += 1;
                    }
                    let footer = m.file_metadata();
                    match parquet_to_arrow_schema(
                        footer.schema_descr(),
                        footer.key_value_metadata(),
                    ) {
                        Ok(schema) => self.file_schemas.insert(&f.path, schema),
                        Err(e) => {
                            tracing::debug!(path = %f.path, error = %e, "file schema not decoded")
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(path = %f.path, error = %e, "file metadata not warmed");
                    report.failed += 1;
                }
            }
        }
        if report.read > 0 {
            tracing::info!(
                files = report.read,
                cached_bytes = used,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "file footers and page indexes read ahead"
            );
        }
        report
    }
}
