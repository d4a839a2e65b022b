//! Decoded rows of single series, kept in memory between statements.
//!
//! A file sorted by a table's series column (a table with a series index)
//! holds each series' rows as one run and records where each run starts
//! (`FileSeries::counts`). A statement over one series for an hour reads a
//! run or two of a few thousand rows; opening the file, pruning its pages,
//! building column readers and decompressing the pages costs far more than
//! the rows themselves. Dashboards ask for the same series again every few
//! seconds, so the runs a statement read are kept here, decoded, one entry
//! per file, run and column, and the next statement over those runs reads
//! them from memory. Reading runs whole to keep them costs more than a
//! scan's ordinary read (its filters no longer prune pages or decode late),
//! so runs are kept from their second request on ([`SeriesCache::lookup`]).
//!
//! Files never change once written and their paths are never reused, so an
//! entry never goes stale; entries of files that are gone are simply never
//! asked for again and age out. The cache holds at most its budget of bytes
//! and evicts the entries used longest ago. One cache serves every database
//! of a server: keys carry the engine they were read through.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{make_array, Array, ArrayRef, MutableArrayData};
use parking_lot::Mutex;

/// One column of one series' run in one file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunKey {
    /// [`crate::Engine::instance`] of the engine the file belongs to.
    pub engine: u64,
    /// The file's path in that engine's store.
    pub path: String,
    /// The run's position among the file's series values.
    pub run: u32,
    /// The column's `ColumnDef::id`.
    pub column: u32,
}

#[derive(Debug)]
struct Slot {
    array: ArrayRef,
    bytes: usize,
    used: u64,
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<RunKey, Slot>,
    bytes: usize,
    clock: u64,
    /// Hashes of keys asked for and not held ([`SeriesCache::lookup`]).
    asked: HashSet<u64>,
}

/// How many keys asked for [`Inner::asked`] remembers before it starts
/// over (8 bytes each).
const MAX_ASKED: usize = 1 << 18;

fn asked_hash(key: &RunKey) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// What [`SeriesCache::lookup`] found.
#[derive(Debug)]
pub enum Lookup {
    /// Every key's array, in the keys' order.
    Hit(Vec<ArrayRef>),
    /// Not all there, and every missing key was asked for before: read the
    /// runs whole and keep them.
    Fill,
    /// Not all there: read the scan's rows the ordinary way.
    Pass,
}

/// The cache; see the module documentation.
#[derive(Debug)]
pub struct SeriesCache {
    budget: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What a cache holds and how it was used, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesCacheStats {
    pub entries: usize,
    pub bytes: usize,
    /// Lookups that found every entry they asked for.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
}

impl SeriesCache {
    /// A cache holding at most `budget` bytes; 0 turns it off.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::new(Inner::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// The arrays of `keys`, in their order, when the cache holds every one
    /// of them; otherwise whether the scan asking should read them to be
    /// kept ([`Lookup::Fill`]: every key it lacks was asked for before) or
    /// read them its ordinary way ([`Lookup::Pass`]). Reading runs to keep
    /// them costs more than reading a scan's own rows, so runs are kept
    /// from their second request on: a statement over random series pays
    /// nothing, one a dashboard repeats is kept the second time.
    pub fn lookup(&self, keys: &[RunKey]) -> Lookup {
        if !self.enabled() {
            return Lookup::Pass;
        }
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let now = inner.clock;
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            match inner.slots.get_mut(key) {
                Some(slot) => {
                    slot.used = now;
                    found.push(slot.array.clone());
                }
                None => break,
            }
        }
        if found.len() == keys.len() {
            drop(inner);
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Hit(found);
        }
        let missing: Vec<u64> = keys
            .iter()
            .filter(|k| !inner.slots.contains_key(*k))
            .map(asked_hash)
            .collect();
        let seen = missing.iter().all(|h| inner.asked.contains(h));
        if inner.asked.len() + missing.len() > MAX_ASKED {
            inner.asked.clear();
        }
        inner.asked.extend(missing);
        drop(inner);
        self.misses.fetch_add(1, Ordering::Relaxed);
        if seen {
            Lookup::Fill
        } else {
            Lookup::Pass
        }
    }

    /// Keeps `entries`. Each array is copied into buffers of its own first,
    /// so that an entry holds (and counts) only its rows, not the batch it
    /// was sliced from. An entry larger than an eighth of the budget is not
    /// kept.
    pub fn insert(&self, entries: Vec<(RunKey, ArrayRef)>) {
        if !self.enabled() {
            return;
        }
        let compact: Vec<(RunKey, Slot)> = entries
            .into_iter()
            .filter_map(|(key, array)| {
                let array = own_copy(array.as_ref())?;
                let bytes = array.get_array_memory_size() + key.path.len() + 64;
                (bytes <= self.budget / 8).then_some((
                    key,
                    Slot {
                        array,
                        bytes,
                        used: 0,
                    },
                ))
            })
            .collect();
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let now = inner.clock;
        for (key, mut slot) in compact {
            slot.used = now;
            let added = slot.bytes;
            if let Some(old) = inner.slots.insert(key, slot) {
                inner.bytes -= old.bytes;
            }
            inner.bytes += added;
        }
        if inner.bytes > self.budget {
            evict(&mut inner, self.budget / 4 * 3);
        }
    }

    pub fn stats(&self) -> SeriesCacheStats {
        let inner = self.inner.lock();
        SeriesCacheStats {
            entries: inner.slots.len(),
            bytes: inner.bytes,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

/// `array`'s rows in buffers of their own (a slice shares its parent's);
/// None if they cannot be copied.
fn own_copy(array: &dyn Array) -> Option<ArrayRef> {
    let data = array.to_data();
    let mut copy = MutableArrayData::new(vec![&data], false, array.len());
    copy.try_extend(0, 0, array.len()).ok()?;
    Some(make_array(copy.freeze()))
}

/// Drops the entries used longest ago until `inner` holds at most `target`
/// bytes. Evicting down to below the budget makes this rare: it sorts every
/// entry.
fn evict(inner: &mut Inner, target: usize) {
    let mut ages: Vec<(u64, usize, RunKey)> = inner
        .slots
        .iter()
        .map(|(k, s)| (s.used, s.bytes, k.clone()))
        .collect();
    ages.sort_unstable_by_key(|(used, _, _)| *used);
    for (_, bytes, key) in ages {
        if inner.bytes <= target {
            break;
        }
        inner.slots.remove(&key);
        inner.bytes -= bytes;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Float64Array;

    use super::*;

    fn key(run: u32, column: u32) -> RunKey {
        RunKey {
            engine: 1,
            path: "chunks/1/a.parquet".into(),
            run,
            column,
        }
    }

    fn hit(cache: &SeriesCache, keys: &[RunKey]) -> Option<Vec<ArrayRef>> {
        match cache.lookup(keys) {
            Lookup::Hit(arrays) => Some(arrays),
            _ => None,
        }
    }

    fn values(n: usize) -> ArrayRef {
        Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64)))
    }

    #[test]
    fn all_or_nothing() {
        let cache = SeriesCache::new(1 << 20);
        cache.insert(vec![(key(0, 1), values(10)), (key(0, 2), values(10))]);
        let got = hit(&cache, &[key(0, 2), key(0, 1)]).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len(), 10);
        assert!(hit(&cache, &[key(0, 1), key(1, 1)]).is_none());
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.hits, stats.misses), (2, 1, 1));
    }

    #[test]
    fn runs_are_read_to_be_kept_from_their_second_request_on() {
        let cache = SeriesCache::new(1 << 20);
        let keys = [key(0, 1), key(1, 1)];
        assert!(matches!(cache.lookup(&keys), Lookup::Pass));
        assert!(matches!(cache.lookup(&keys), Lookup::Fill));
        // Asked for once more, another run is not.
        assert!(matches!(
            cache.lookup(&[key(0, 1), key(2, 1)]),
            Lookup::Pass
        ));
        cache.insert(vec![(key(0, 1), values(3))]);
        // What is held needs no second request.
        assert!(matches!(
            cache.lookup(&[key(0, 1), key(2, 1)]),
            Lookup::Fill
        ));
    }

    #[test]
    fn a_slice_is_kept_as_its_own_rows() {
        let cache = SeriesCache::new(1 << 20);
        let big = values(100_000);
        cache.insert(vec![(key(0, 1), big.slice(10, 5))]);
        let got = hit(&cache, &[key(0, 1)]).unwrap();
        let got = got[0].as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(got.values().to_vec(), vec![10.0, 11.0, 12.0, 13.0, 14.0]);
        assert!(cache.stats().bytes < 1024, "{:?}", cache.stats());
    }

    #[test]
    fn the_budget_evicts_what_was_used_longest_ago() {
        // Each entry is about 8 KB; the budget holds about twelve.
        let cache = SeriesCache::new(100_000);
        for run in 0..10 {
            cache.insert(vec![(key(run, 1), values(1000))]);
        }
        // Run 0 is used again: it is now the newest.
        assert!(hit(&cache, &[key(0, 1)]).is_some());
        for run in 10..20 {
            cache.insert(vec![(key(run, 1), values(1000))]);
        }
        let stats = cache.stats();
        assert!(stats.bytes <= 100_000, "{stats:?}");
        assert!(hit(&cache, &[key(0, 1)]).is_some());
        assert!(hit(&cache, &[key(1, 1)]).is_none());
        assert!(hit(&cache, &[key(19, 1)]).is_some());
    }

    #[test]
    fn off_keeps_nothing() {
        let cache = SeriesCache::new(0);
        cache.insert(vec![(key(0, 1), values(10))]);
        assert!(hit(&cache, &[key(0, 1)]).is_none());
        assert_eq!(cache.stats().entries, 0);
    }
}
