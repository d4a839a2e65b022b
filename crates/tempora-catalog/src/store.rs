//! The object store Tempora writes through.
//!
//! `object_store`'s `LocalFileSystem` never fsyncs: a put writes a staging file
//! and renames it, so after a power cut the file (or its name) may be gone even
//! though the put returned. [`DurableLocalStore`] wraps it and, before a put
//! returns, fsyncs the written file and its parent directory. Catalog records and
//! flushed chunk files depend on that order: a WAL is truncated only after the
//! files and the record naming them are durable.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// A local-directory object store whose puts are durable when they return.
#[derive(Debug)]
pub struct DurableLocalStore {
    inner: LocalFileSystem,
    root: PathBuf,
}

impl DurableLocalStore {
    /// Opens a store rooted at `root`, creating the directory if needed.
    pub fn open(root: impl AsRef<FsPath>) -> std::io::Result<Arc<Self>> {
        let root = root.as_ref();
        std::fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        let inner = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Arc::new(Self { inner, root }))
    }

    /// The directory this store keeps its objects under.
    pub fn root(&self) -> &FsPath {
        &self.root
    }

    /// fsyncs the file at `location` and its directory, off the async workers.
    async fn sync_path(&self, location: &Path) -> object_store::Result<()> {
        let generic = |e: Box<dyn std::error::Error + Send + Sync>| object_store::Error::Generic {
            store: "DurableLocalStore",
            source: e,
        };
        let file = self
            .inner
            .path_to_filesystem(location)
            .map_err(|e| generic(Box::new(e)))?;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| generic(Box::new(e)))?
        .map_err(|e| generic(Box::new(e)))
    }
}

impl fmt::Display for DurableLocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DurableLocalStore({})", self.root.display())
    }
}

#[async_trait]
impl ObjectStore for DurableLocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let res = self.inner.put_opts(location, payload, opts).await?;
        self.sync_path(location).await?;
        Ok(res)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        // Multipart uploads are not used by Tempora's local store; the parts are
        // synced by the caller through a final `put`.
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    /// The local store's own: every range is read exactly, in one blocking
    /// task over one open file. The trait's default instead merges ranges up
    /// to 1 MiB apart (the right trade for a remote store) and reads each
    /// merged range in a task of its own, opening the file each time; a
    /// Parquet scan that wants a few pages of each column (one series of a
    /// file clustered by series) then copied most of every column chunk.
    ///
    /// Ranges the page cache already holds (most reads of a warm server: a
    /// one-host query's few pages of each column) are read on the calling
    /// thread; handing them to the blocking pool and waking the task again
    /// cost more than the read itself (about a sixth of such a query's CPU,
    /// in thread switches). Anything else goes to the blocking pool.
    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        let total: u64 = ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum();
        if total <= INLINE_READ_BYTES {
            if let Ok(file) = self.inner.path_to_filesystem(location) {
                if let Some(read) = read_cached(&file, ranges) {
                    return Ok(read);
                }
            }
        }
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        self.sync_path(to).await
    }
}

/// Reads of at most this many bytes in all may be served on the calling
/// thread (when cached: [`read_cached`]).
const INLINE_READ_BYTES: u64 = 4 << 20;

/// `ranges` of the file at `path`, read without waiting for the disk: None
/// when a byte is not in the page cache (`RWF_NOWAIT`), a range passes the
/// end of the file, or the file cannot be read that way; the caller then
/// reads through the blocking pool, which reports any error.
#[cfg(target_os = "linux")]
fn read_cached(path: &FsPath, ranges: &[std::ops::Range<u64>]) -> Option<Vec<bytes::Bytes>> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).ok()?;
    let mut read = Vec::with_capacity(ranges.len());
    for range in ranges {
        let len = usize::try_from(range.end.checked_sub(range.start)?).ok()?;
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let offset = libc::off_t::try_from(range.start + done as u64).ok()?;
            let iov = libc::iovec {
                iov_base: buf[done..].as_mut_ptr().cast(),
                iov_len: len - done,
            };
            // SAFETY: `iov` points into `buf`, which outlives the call and
            // has `len - done` bytes from `done` on; the descriptor is open.
            let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
            if n <= 0 {
                return None;
            }
            done += n as usize;
        }
        read.push(bytes::Bytes::from(buf));
    }
    Some(read)
}

#[cfg(not(target_os = "linux"))]
fn read_cached(_: &FsPath, _: &[std::ops::Range<u64>]) -> Option<Vec<bytes::Bytes>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn ranges_read_exactly_the_bytes_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let store = DurableLocalStore::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let path = Path::from("chunks/f.parquet");
        store
            .put(&path, PutPayload::from(data.clone()))
            .await
            .unwrap();
        let ranges = [0..10, 5..20, 150_000..150_100, 199_990..200_000, 40..40];
        let got = store.get_ranges(&path, &ranges).await.unwrap();
        assert_eq!(got.len(), ranges.len());
        for (r, bytes) in ranges.iter().zip(&got) {
            assert_eq!(bytes.as_ref(), &data[r.start as usize..r.end as usize]);
        }
        // The file was just written: the page cache holds it.
        #[cfg(target_os = "linux")]
        {
            let file = store.root().join("chunks/f.parquet");
            let direct =
                read_cached(&file, &ranges).expect("a cached file is read on the calling thread");
            assert_eq!(direct, got);
            assert!(read_cached(&file, &[0..10, 199_990..200_010]).is_none());
        }
        // Past the end is an error, as from the local store itself.
        let past_end = vec![199_990..200_010, 0..1];
        assert!(store.get_ranges(&path, &past_end).await.is_err());
    }
}
