//! The write-ahead log: every write is appended here, and made durable, before
//! it is acknowledged; after a crash the records not yet flushed to chunk files
//! are replayed from it.
//!
//! # On-disk format (a promise: files written by one version are read by the next)
//!
//! The WAL is a directory of *segment* files named `{first_seq:020}.wal`, where
//! `first_seq` is the sequence number of the first record the segment holds (or
//! was created to hold), zero-padded to 20 digits so that name order is seq order.
//! Other file names in the directory are ignored.
//!
//! A segment starts with an 8-byte header:
//!
//! ```text
//! offset  size  content
//!      0     5  magic b"TPWAL"
//!      5     1  format version, 1
//!      6     2  zero
//! ```
//!
//! followed by records, back to back, each:
//!
//! ```text
//! offset  size  content
//!      0     4  payload_len, u32 little-endian (at most 1 GiB)
//!      4     4  CRC-32 (IEEE, as computed by crc32fast / zlib) of the 8 seq bytes
//!               followed by the payload, u32 little-endian
//!      8     8  seq, u64 little-endian (>= 1, strictly increasing through the WAL)
//!     16     n  payload (payload_len bytes)
//! ```
//!
//! Sequence numbers increase strictly across records and segments (gaps are
//! allowed, though the writer does not normally leave any).
//!
//! # Recovery rules
//!
//! * In the last segment, the first record that is incomplete, has a bad
//!   checksum or an impossible length ends the log: the file is truncated there
//!   (with a warning) and new records are appended after the last good one.
//! * The same damage in any earlier segment is an error (`XX001`, data corrupted):
//!   acknowledged records would be lost silently otherwise.
//! * A record with a valid checksum but an out-of-order seq is always an error.
//! * A segment shorter than its header (a crash while creating it) holds no
//!   records; if it is the last one its header is rewritten.
//!
//! # Writing
//!
//! One dedicated OS thread owns the files. [`Wal::append`] sends the payload to
//! it through a channel; the thread takes everything already queued (up to
//! 4096 records or 64 MiB), writes it with one `write`, calls `fdatasync` once
//! and then acknowledges every record of the group (group commit). With
//! `sync: false` it acknowledges after the write and syncs at least every
//! 100 ms, on rotation and on close.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tempora_common::{Result, SqlState, TemporaError};
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: &[u8; 5] = b"TPWAL";
/// Current segment format version.
pub const FORMAT_VERSION: u8 = 1;
/// The full 8-byte segment header.
pub const SEGMENT_HEADER: [u8; 8] = [b'T', b'P', b'W', b'A', b'L', FORMAT_VERSION, 0, 0];
/// Size of the segment header in bytes.
pub const SEGMENT_HEADER_LEN: u64 = SEGMENT_HEADER.len() as u64;
/// Size of a record's framing (length, checksum, seq) before its payload.
pub const RECORD_HEADER_LEN: usize = 16;
/// Largest payload a record may carry; a larger length on disk is corruption.
pub const MAX_PAYLOAD_LEN: usize = 1 << 30;
/// File name extension of segment files.
pub const SEGMENT_EXTENSION: &str = "wal";

/// Most records written (and synced) as one group.
const MAX_BATCH_RECORDS: usize = 4096;
/// Most payload bytes written as one group (the first record of a group is always taken).
const MAX_BATCH_BYTES: usize = 64 << 20;
/// With `sync: false`, the longest time written records stay unsynced.
const ASYNC_SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// How the WAL is laid out and how hard it syncs.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Directory of the segment files, e.g. `<data-dir>/wal`; created if missing.
    pub dir: PathBuf,
    /// Start a new segment once the current one has grown past this many bytes.
    pub segment_bytes: u64,
    /// `true`: `fdatasync` before acknowledging. `false`: acknowledge after the
    /// write (a crash of the machine, not of the process, can lose the last
    /// ~100 ms of acknowledged records), like `synchronous_commit = off`.
    pub sync: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("wal"),
            segment_bytes: 64 << 20,
            sync: true,
        }
    }
}

/// One record read back at open.
#[derive(Debug, Clone, PartialEq)]
pub struct WalRecord {
    pub seq: u64,
    pub payload: Bytes,
}

type Reply<T> = oneshot::Sender<Result<T>>;

/// Whether an append waits for `fdatasync` (PostgreSQL's `synchronous_commit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncCommit {
    /// Acknowledged once durable (with the WAL's `sync` on).
    On,
    /// Acknowledged once written; synced within ~100 ms, or earlier by a
    /// durable append of the same group.
    Off,
}

enum Command {
    Append(Bytes, SyncCommit, Reply<u64>),
    Rotate(Reply<u64>),
    Truncate(u64, Reply<()>),
    Close,
}

/// Counters shared by the handle and the writer thread.
struct Shared {
    last_seq: AtomicU64,
    sync_count: AtomicU64,
    /// Test-only fault injection for the next group write (see `Writer::write_and_sync`).
    #[cfg(test)]
    fault: std::sync::atomic::AtomicU8,
}

/// The write-ahead log. Cheap to share as `Arc<Wal>`; all writing happens on
/// one dedicated thread.
pub struct Wal {
    dir: PathBuf,
    tx: Mutex<Option<mpsc::Sender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("last_seq", &self.last_seq())
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens (creating if missing) the WAL directory, reads every segment in
    /// order, validates each record, and returns the Wal plus all records with
    /// seq > `after_seq`, in seq order, for replay.
    ///
    /// A torn or corrupt tail in the last segment is cut off (the file is
    /// truncated to the last good record, with a warning) and writing continues
    /// after it. Corruption in an earlier segment is an error
    /// ([`SqlState::DATA_CORRUPTED`]). Sequence numbers continue from the
    /// highest seq seen, or from `after_seq` if that is larger.
    pub fn open(opts: WalOptions, after_seq: u64) -> Result<(Wal, Vec<WalRecord>)> {
        let dir = opts.dir.clone();
        let existed = dir.is_dir();
        fs::create_dir_all(&dir).map_err(|e| {
            io_err(
                format!("could not create WAL directory \"{}\"", dir.display()),
                &e,
            )
        })?;
        if !existed {
            // Make the new directory's own name durable.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent).map_err(|e| {
                    io_err(
                        format!("could not fsync directory \"{}\"", parent.display()),
                        &e,
                    )
                })?;
            }
        }

        let segments = list_segments(&dir)?;
        let mut records = Vec::new();
        let mut sealed = VecDeque::new();
        let mut highest_seq = 0u64;
        let mut highest_name = 0u64;
        let mut last: Option<(SegmentInfo, u64, LastState)> = None;
        let count = segments.len();
        for (i, (first_seq, path)) in segments.into_iter().enumerate() {
            let is_last = i + 1 == count;
            highest_name = highest_name.max(first_seq);
            let data = fs::read(&path).map_err(|e| {
                io_err(
                    format!("could not read WAL segment \"{}\"", path.display()),
                    &e,
                )
            })?;
            let scan = scan_segment(&path, first_seq, &data, highest_seq, is_last)?;
            let mut max_seq = None;
            for (seq, range) in &scan.records {
                highest_seq = *seq;
                max_seq = Some(*seq);
                if *seq > after_seq {
                    records.push(WalRecord {
                        seq: *seq,
                        payload: Bytes::copy_from_slice(&data[range.clone()]),
                    });
                }
            }
            let info = SegmentInfo {
                first_seq,
                path,
                max_seq,
            };
            if is_last {
                last = Some((info, data.len() as u64, scan.state));
            } else {
                sealed.push_back(info);
            }
        }

        let next_seq = highest_seq
            .max(after_seq)
            .checked_add(1)
            .ok_or_else(|| {
                TemporaError::new(SqlState::DATA_CORRUPTED, "WAL sequence number overflow")
            })?
            .max(highest_name);

        let active = match last {
            Some((info, file_len, state)) => open_last_segment(info, file_len, state)?,
            None => create_active(&dir, next_seq)?,
        };

        info!(
            dir = %dir.display(),
            segments = sealed.len() + 1,
            replay = records.len(),
            next_seq,
            "opened WAL"
        );

        let shared = Arc::new(Shared {
            last_seq: AtomicU64::new(next_seq - 1),
            sync_count: AtomicU64::new(0),
            #[cfg(test)]
            fault: std::sync::atomic::AtomicU8::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            dir: dir.clone(),
            segment_bytes: opts.segment_bytes.max(SEGMENT_HEADER_LEN + 1),
            sync: opts.sync,
            shared: shared.clone(),
            sealed,
            active,
            tail_dirty: false,
            next_seq,
            unsynced: false,
            last_sync: Instant::now(),
            buf: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("tempora-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| io_err("could not start WAL writer thread", &e))?;

        Ok((
            Wal {
                dir,
                tx: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                shared,
            },
            records,
        ))
    }

    /// Appends one record and returns its seq once it is durable
    /// (`fdatasync`ed, when `sync` is on). Concurrent appends share one write
    /// and one `fdatasync` (group commit).
    ///
    /// On error the record was not acknowledged. If the future is dropped
    /// before it completes, the record may or may not end up in the log.
    pub async fn append(&self, payload: Bytes) -> Result<u64> {
        self.append_with(payload, SyncCommit::On).await
    }

    /// [`Wal::append`]; with [`SyncCommit::Off`] the record is acknowledged
    /// once written, before it is synced.
    pub async fn append_with(&self, payload: Bytes, sync: SyncCommit) -> Result<u64> {
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(TemporaError::new(
                SqlState::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "WAL record of {} bytes exceeds the maximum of {} bytes",
                    payload.len(),
                    MAX_PAYLOAD_LEN
                ),
            ));
        }
        let (tx, rx) = oneshot::channel();
        self.send(Command::Append(payload, sync, tx))?;
        rx.await.map_err(|_| writer_gone())?
    }

    /// Closes the current segment and starts a new one. Returns the highest
    /// seq written so far: every record with seq <= that value is in a segment
    /// older than the new one. If the current segment holds no record yet, it
    /// is kept as is.
    pub async fn rotate(&self) -> Result<u64> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Rotate(tx))?;
        rx.await.map_err(|_| writer_gone())?
    }

    /// Deletes every segment file all of whose records have seq <= `seq`
    /// (oldest first, never the active segment), then fsyncs the directory.
    pub async fn truncate_through(&self, seq: u64) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Truncate(seq, tx))?;
        rx.await.map_err(|_| writer_gone())?
    }

    /// Highest seq assigned so far (and written; with `sync` on, also synced).
    pub fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::Acquire)
    }

    /// Number of group commits synced with `fdatasync` since open (for tests and metrics).
    pub fn sync_count(&self) -> u64 {
        self.shared.sync_count.load(Ordering::Relaxed)
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the writer thread after it has written and synced everything
    /// queued, and waits for it (briefly blocks the calling thread). Later
    /// calls fail with `58030`. Calling it again is a no-op.
    pub fn close(&self) {
        let tx = self.tx.lock().take();
        if let Some(tx) = tx {
            let _ = tx.send(Command::Close);
        }
        let thread = self.thread.lock().take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                error!("WAL writer thread panicked");
            }
        }
    }

    fn send(&self, cmd: Command) -> Result<()> {
        let guard = self.tx.lock();
        match guard.as_ref() {
            Some(tx) => tx.send(cmd).map_err(|_| writer_gone()),
            None => Err(TemporaError::new(SqlState::IO_ERROR, "the WAL is closed")),
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

fn writer_gone() -> TemporaError {
    TemporaError::new(SqlState::IO_ERROR, "the WAL writer is not running")
}

fn io_err(context: impl std::fmt::Display, e: &io::Error) -> TemporaError {
    TemporaError::io(context, e)
}

fn corrupted(path: &Path, offset: u64, what: impl std::fmt::Display) -> TemporaError {
    TemporaError::new(
        SqlState::DATA_CORRUPTED,
        format!(
            "WAL segment \"{}\" is corrupted at offset {offset}: {what}",
            path.display()
        ),
    )
}

/// Appends the encoding of one record to `buf` (`payload` at most [`MAX_PAYLOAD_LEN`] bytes).
fn encode_record(buf: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("payload length checked by the caller");
    buf.reserve(RECORD_HEADER_LEN + payload.len());
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&record_crc(seq, payload).to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(payload);
}

fn record_crc(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.{SEGMENT_EXTENSION}")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let ctx = || format!("could not read WAL directory \"{}\"", dir.display());
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(ctx(), &e))? {
        let entry = entry.map_err(|e| io_err(ctx(), &e))?;
        let name = entry.file_name();
        match name.to_str().and_then(parse_segment_name) {
            Some(first_seq) => out.push((first_seq, entry.path())),
            None => debug!(file = ?name, "ignoring non-segment file in WAL directory"),
        }
    }
    out.sort_by_key(|(first_seq, _)| *first_seq);
    Ok(out)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// What reading the last segment found, beyond its records.
#[derive(Debug)]
enum LastState {
    /// Valid up to the end of the file.
    Clean,
    /// Shorter than (or a zeroed) header: holds no records; rewrite the header.
    TornHeader,
    /// Damaged from `good_len` on; cut there.
    TornTail { good_len: u64 },
}

struct Scan {
    /// `(seq, payload byte range)` of each good record.
    records: Vec<(u64, std::ops::Range<usize>)>,
    state: LastState,
}

/// Validates one segment's bytes. `prev_seq` is the highest seq of earlier
/// segments. Torn or corrupt data is an error unless `is_last`.
fn scan_segment(
    path: &Path,
    first_seq: u64,
    data: &[u8],
    mut prev_seq: u64,
    is_last: bool,
) -> Result<Scan> {
    let hlen = SEGMENT_HEADER.len();
    if data.len() < hlen {
        // A crash while the segment was being created: nothing in it was ever acknowledged.
        let prefix_ok = data.iter().zip(SEGMENT_HEADER.iter()).all(|(a, b)| a == b)
            || data.iter().all(|&b| b == 0);
        if !prefix_ok {
            return Err(corrupted(path, 0, "invalid segment header"));
        }
        warn!(
            segment = %path.display(),
            len = data.len(),
            "WAL segment is shorter than its header; treating it as empty"
        );
        return Ok(Scan {
            records: Vec::new(),
            state: LastState::TornHeader,
        });
    }
    let header = &data[..hlen];
    if header != SEGMENT_HEADER {
        if is_last && data.iter().all(|&b| b == 0) {
            warn!(
                segment = %path.display(),
                "last WAL segment is all zeros; treating it as empty"
            );
            return Ok(Scan {
                records: Vec::new(),
                state: LastState::TornHeader,
            });
        }
        if &header[..5] == SEGMENT_MAGIC && header[5] != FORMAT_VERSION {
            return Err(corrupted(
                path,
                5,
                format!("unsupported WAL format version {}", header[5]),
            ));
        }
        return Err(corrupted(path, 0, "invalid segment header"));
    }

    let mut records = Vec::new();
    let mut pos = hlen;
    let mut torn: Option<String> = None;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.len() < RECORD_HEADER_LEN {
            torn = Some(format!(
                "incomplete record header ({} of {RECORD_HEADER_LEN} bytes)",
                rest.len()
            ));
            break;
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
        if len > MAX_PAYLOAD_LEN {
            torn = Some(format!("record length {len} exceeds the maximum"));
            break;
        }
        if rest.len() - RECORD_HEADER_LEN < len {
            torn = Some(format!(
                "incomplete record payload ({} of {len} bytes)",
                rest.len() - RECORD_HEADER_LEN
            ));
            break;
        }
        let start = pos + RECORD_HEADER_LEN;
        let payload = &data[start..start + len];
        if record_crc(seq, payload) != crc {
            torn = Some("record checksum mismatch".to_string());
            break;
        }
        if seq <= prev_seq || seq < first_seq {
            return Err(corrupted(
                path,
                pos as u64,
                format!(
                    "record seq {seq} out of order (previous {prev_seq}, segment starts at {first_seq})"
                ),
            ));
        }
        prev_seq = seq;
        records.push((seq, start..start + len));
        pos = start + len;
    }

    let state = match torn {
        None => LastState::Clean,
        Some(reason) if is_last => {
            warn!(
                segment = %path.display(),
                offset = pos,
                dropped_bytes = data.len() - pos,
                good_records = records.len(),
                "torn or corrupt tail in the last WAL segment ({reason}); truncating it"
            );
            LastState::TornTail {
                good_len: pos as u64,
            }
        }
        Some(reason) => return Err(corrupted(path, pos as u64, reason)),
    };
    Ok(Scan { records, state })
}

struct SegmentInfo {
    first_seq: u64,
    path: PathBuf,
    /// Highest seq written to it, `None` while it holds no record.
    max_seq: Option<u64>,
}

struct ActiveSegment {
    info: SegmentInfo,
    file: File,
    /// End of the last good record: where the next write goes.
    offset: u64,
}

fn open_last_segment(info: SegmentInfo, file_len: u64, state: LastState) -> Result<ActiveSegment> {
    let path = info.path.clone();
    let ctx = || format!("could not open WAL segment \"{}\"", path.display());
    let mut file = OpenOptions::new()
        .write(true)
        .open(&info.path)
        .map_err(|e| io_err(ctx(), &e))?;
    let offset = match state {
        LastState::Clean => file_len,
        LastState::TornTail { good_len } => {
            file.set_len(good_len)
                .and_then(|_| file.sync_all())
                .map_err(|e| io_err(ctx(), &e))?;
            good_len
        }
        LastState::TornHeader => {
            file.set_len(0)
                .and_then(|_| file.seek(SeekFrom::Start(0)))
                .and_then(|_| file.write_all(&SEGMENT_HEADER))
                .and_then(|_| file.sync_all())
                .map_err(|e| io_err(ctx(), &e))?;
            SEGMENT_HEADER_LEN
        }
    };
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| io_err(ctx(), &e))?;
    Ok(ActiveSegment { info, file, offset })
}

/// Creates a segment file holding just the header, durable with its name.
fn create_segment(dir: &Path, first_seq: u64) -> io::Result<(PathBuf, File)> {
    fn create(dir: &Path, path: &Path) -> io::Result<File> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.write_all(&SEGMENT_HEADER)?;
        file.sync_all()?;
        sync_dir(dir)?;
        Ok(file)
    }
    let path = dir.join(segment_file_name(first_seq));
    match create(dir, &path) {
        Ok(file) => Ok((path, file)),
        Err(e) => {
            // Leave no half-made segment behind (best effort).
            let _ = fs::remove_file(&path);
            Err(e)
        }
    }
}

fn create_active(dir: &Path, first_seq: u64) -> Result<ActiveSegment> {
    let (path, file) =
        create_segment(dir, first_seq).map_err(|e| io_err("could not create WAL segment", &e))?;
    Ok(ActiveSegment {
        info: SegmentInfo {
            first_seq,
            path,
            max_seq: None,
        },
        file,
        offset: SEGMENT_HEADER_LEN,
    })
}

/// State owned by the writer thread.
struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    sync: bool,
    shared: Arc<Shared>,
    /// Closed segments, oldest first.
    sealed: VecDeque<SegmentInfo>,
    active: ActiveSegment,
    /// A failed write may have left bytes past `active.offset` that could not be cut yet.
    tail_dirty: bool,
    /// Seq of the next record.
    next_seq: u64,
    /// With `sync: false`: records were written since the last sync.
    unsynced: bool,
    last_sync: Instant,
    buf: Vec<u8>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        let mut pending: Option<Command> = None;
        loop {
            let cmd = match pending.take() {
                Some(cmd) => cmd,
                None if self.unsynced => {
                    let deadline = self.last_sync + ASYNC_SYNC_INTERVAL;
                    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                        Ok(cmd) => cmd,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            self.background_sync();
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match rx.recv() {
                    Ok(cmd) => cmd,
                    Err(_) => break,
                },
            };
            match cmd {
                Command::Append(payload, sync, reply) => {
                    let mut bytes = payload.len();
                    let mut batch = vec![(payload, sync, reply)];
                    while batch.len() < MAX_BATCH_RECORDS && bytes < MAX_BATCH_BYTES {
                        match rx.try_recv() {
                            Ok(Command::Append(payload, sync, reply)) => {
                                bytes += payload.len();
                                batch.push((payload, sync, reply));
                            }
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.write_batch(batch, bytes);
                }
                Command::Rotate(reply) => {
                    let result = self.rotate();
                    let _ = reply.send(result);
                }
                Command::Truncate(seq, reply) => {
                    let result = self.truncate_through(seq);
                    let _ = reply.send(result);
                }
                Command::Close => break,
            }
            if self.unsynced && self.last_sync.elapsed() >= ASYNC_SYNC_INTERVAL {
                self.background_sync();
            }
        }
        if self.unsynced {
            self.background_sync();
        }
        debug!(last_seq = self.next_seq - 1, "WAL writer stopped");
    }

    /// Cuts off whatever a failed write may have left past the last good record.
    fn repair_tail(&mut self) -> io::Result<()> {
        if self.tail_dirty {
            self.active.file.set_len(self.active.offset)?;
            self.active.file.seek(SeekFrom::Start(self.active.offset))?;
            self.tail_dirty = false;
        }
        Ok(())
    }

    fn write_batch(&mut self, batch: Vec<(Bytes, SyncCommit, Reply<u64>)>, payload_bytes: usize) {
        let count = batch.len() as u64;
        let first_seq = self.next_seq;
        let result = self.write_records(&batch, payload_bytes);
        match result {
            Ok(()) => {
                let last = first_seq + count - 1;
                self.next_seq = last + 1;
                self.active.info.max_seq = Some(last);
                self.shared.last_seq.store(last, Ordering::Release);
                debug!(
                    records = count,
                    bytes = self.buf.len(),
                    first_seq,
                    last_seq = last,
                    synced = self.sync,
                    "WAL group commit"
                );
                for (i, (_, _, reply)) in batch.into_iter().enumerate() {
                    let _ = reply.send(Ok(first_seq + i as u64));
                }
            }
            Err(e) => {
                error!(error = %e, records = count, "could not write to WAL");
                let err = io_err("could not write to WAL", &e);
                for (_, _, reply) in batch {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
        if self.buf.capacity() > 2 * MAX_BATCH_BYTES {
            self.buf = Vec::new();
        }
        if self.active.offset >= self.segment_bytes && self.active.info.max_seq.is_some() {
            if let Err(e) = self.rotate() {
                error!(error = %e.message, "could not rotate WAL segment; continuing in the current one");
            }
        }
    }

    /// Writes (and, with `sync`, syncs) one group. On failure nothing of it
    /// remains in the file (or `tail_dirty` says it must still be cut).
    fn write_records(
        &mut self,
        batch: &[(Bytes, SyncCommit, Reply<u64>)],
        payload_bytes: usize,
    ) -> io::Result<()> {
        // One durable record makes the whole group (and all before it) synced.
        let sync = self.sync && batch.iter().any(|(_, s, _)| *s == SyncCommit::On);
        self.repair_tail()?;
        self.buf.clear();
        self.buf
            .reserve(payload_bytes + batch.len() * RECORD_HEADER_LEN);
        for (i, (payload, _, _)) in batch.iter().enumerate() {
            encode_record(&mut self.buf, self.next_seq + i as u64, payload);
        }
        match self.write_and_sync(sync) {
            Ok(()) => {
                self.active.offset += self.buf.len() as u64;
                if sync {
                    self.shared.sync_count.fetch_add(1, Ordering::Relaxed);
                    self.last_sync = Instant::now();
                    self.unsynced = false;
                } else {
                    self.unsynced = true;
                }
                Ok(())
            }
            Err(e) => {
                // The group was not acknowledged: cut it off so that later
                // records follow the last good one and replay never sees it.
                self.tail_dirty = true;
                if let Err(e2) = self.repair_tail() {
                    error!(error = %e2, "could not truncate WAL segment after a failed write; will retry");
                }
                Err(e)
            }
        }
    }

    fn write_and_sync(&mut self, sync: bool) -> io::Result<()> {
        #[cfg(test)]
        match self.shared.fault.swap(0, Ordering::Relaxed) {
            // Disk full half-way through the write.
            1 => {
                let half = self.buf.len() / 2;
                self.active.file.write_all(&self.buf[..half])?;
                return Err(io::Error::from_raw_os_error(28));
            }
            // The write succeeds, fdatasync fails (EIO).
            2 => {
                self.active.file.write_all(&self.buf)?;
                return Err(io::Error::from_raw_os_error(5));
            }
            _ => {}
        }
        self.active.file.write_all(&self.buf)?;
        if sync {
            self.active.file.sync_data()?;
        }
        Ok(())
    }

    /// With `sync: false`: makes written records durable.
    fn background_sync(&mut self) {
        match self.active.file.sync_data() {
            Ok(()) => {
                self.unsynced = false;
                self.shared.sync_count.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                error!(error = %e, "could not fsync WAL segment; acknowledged records may not be durable");
            }
        }
        // Retry at the next interval at the earliest, even after a failure.
        self.last_sync = Instant::now();
    }

    fn rotate(&mut self) -> Result<u64> {
        let written = self.next_seq - 1;
        if self.active.info.max_seq.is_none() {
            // The current segment holds no record: it already is "the new one".
            return Ok(written);
        }
        self.repair_tail()
            .map_err(|e| io_err("could not rotate WAL segment", &e))?;
        if self.unsynced {
            self.active
                .file
                .sync_data()
                .map_err(|e| io_err("could not fsync WAL segment", &e))?;
            self.unsynced = false;
            self.last_sync = Instant::now();
            self.shared.sync_count.fetch_add(1, Ordering::Relaxed);
        }
        let new = create_active(&self.dir, self.next_seq)?;
        let old = std::mem::replace(&mut self.active, new);
        info!(
            closed = %old.info.path.display(),
            closed_bytes = old.offset,
            new = %self.active.info.path.display(),
            last_seq = written,
            "rotated WAL segment"
        );
        self.sealed.push_back(old.info);
        Ok(written)
    }

    fn truncate_through(&mut self, seq: u64) -> Result<()> {
        let mut removed = 0usize;
        let mut result = Ok(());
        while let Some(seg) = self.sealed.front() {
            if seg.max_seq.is_some_and(|m| m > seq) {
                break;
            }
            match fs::remove_file(&seg.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    result = Err(io_err(
                        format!("could not remove WAL segment \"{}\"", seg.path.display()),
                        &e,
                    ));
                    break;
                }
            }
            debug!(segment = %seg.path.display(), first_seq = seg.first_seq, "removed WAL segment");
            self.sealed.pop_front();
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&self.dir).map_err(|e| {
                io_err(
                    format!("could not fsync directory \"{}\"", self.dir.display()),
                    &e,
                )
            })?;
            info!(
                removed,
                through_seq = seq,
                remaining = self.sealed.len() + 1,
                "truncated WAL"
            );
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn opts(dir: &TempDir) -> WalOptions {
        WalOptions {
            dir: dir.path().join("wal"),
            ..WalOptions::default()
        }
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wal"))
            .collect();
        v.sort();
        v
    }

    fn payload(i: u64) -> Bytes {
        Bytes::from(format!("record-{i}"))
    }

    fn seqs(records: &[WalRecord]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    /// Byte offset in a segment of the record with index `i` when every
    /// record carries `payload(n)` with single-digit n.
    fn record_offset(i: usize) -> usize {
        SEGMENT_HEADER.len() + i * (RECORD_HEADER_LEN + "record-1".len())
    }

    #[test]
    fn record_format_is_pinned() {
        assert_eq!(&SEGMENT_HEADER, b"TPWAL\x01\x00\x00");
        let mut buf = Vec::new();
        encode_record(&mut buf, 1, b"hi");
        assert_eq!(
            buf,
            [
                0x02, 0x00, 0x00, 0x00, // payload_len
                0x1b, 0x3b, 0x02, 0x95, // crc32(seq ++ payload)
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // seq
                b'h', b'i', // payload
            ]
        );
        let mut buf = Vec::new();
        encode_record(&mut buf, 0x0102_0304_0506_0708, b"");
        assert_eq!(&buf[0..4], &[0, 0, 0, 0]);
        assert_eq!(&buf[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(buf.len(), RECORD_HEADER_LEN);
    }

    #[tokio::test]
    async fn segment_file_layout() {
        let tmp = TempDir::new().unwrap();
        let o = opts(&tmp);
        let (wal, _) = Wal::open(o.clone(), 0).unwrap();
        wal.append(Bytes::from_static(b"hi")).await.unwrap();
        wal.close();
        let files = segment_files(&o.dir);
        assert_eq!(files.len(), 1);
        assert_eq!(
            files[0].file_name().unwrap().to_str().unwrap(),
            "00000000000000000001.wal"
        );
        let data = fs::read(&files[0]).unwrap();
        let mut expected = SEGMENT_HEADER.to_vec();
        encode_record(&mut expected, 1, b"hi");
        assert_eq!(data, expected);
    }

    #[tokio::test]
    async fn append_reopen_round_trip() {
        let tmp = TempDir::new().unwrap();
        let o = opts(&tmp);
        let (wal, replay) = Wal::open(o.clone(), 0).unwrap();
        assert!(replay.is_empty());
        assert_eq!(wal.last_seq(), 0);
        for i in 1..=5 {
            assert_eq!(wal.append(payload(i)).await.unwrap(), i);
        }
        assert_eq!(wal.last_seq(), 5);
        drop(wal);

        let (wal, replay) = Wal::open(o.clone(), 0).unwrap();
        assert_eq!(seqs(&replay), vec![1, 2, 3, 4, 5]);
        for r in &replay {
            assert_eq!(r.payload, payload(r.seq));
        }
        drop(wal);

        let (wal, replay) = Wal::open(o.clone(), 2).unwrap();
        assert_eq!(
            replay,
            (3..=5)
                .map(|i| WalRecord {
                    seq: i,
                    payload: payload(i)
                })
                .collect::<Vec<_>>()
        );
        assert_eq!(wal.last_seq(), 5);
        assert_eq!(wal.append(payload(6)).await.unwrap(), 6);
        wal.close();

        let (_wal, replay) = Wal::open(o, 5).unwrap();
        assert_eq!(seqs(&replay), vec![6]);
    }

    #[tokio::test]
    async fn unsynced_mode_round_trip() {
        let tmp = TempDir::new().unwrap();
        let o = WalOptions {
            sync: false,
            ..opts(&tmp)
        };
        let (wal, _) = Wal::open(o.clone(), 0).unwrap();
        for i in 1..=3 {
            assert_eq!(wal.append(payload(i)).await.unwrap(), i);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(wal.sync_count() >= 1, "background sync within 100 ms");
        wal.close();
        let (_wal, replay) = Wal::open(o, 0).unwrap();
        assert_eq!(seqs(&replay), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn appends_without_sync_commit_skip_the_fsync_until_a_durable_one() {
        let tmp = TempDir::new().unwrap();
        let o = opts(&tmp);
        let (wal, _) = Wal::open(o.clone(), 0).unwrap();
        let before = wal.sync_count();
        for i in 1..=3 {
            assert_eq!(
                wal.append_with(payload(i), SyncCommit::Off).await.unwrap(),
                i
            );
        }
        assert_eq!(wal.sync_count(), before, "acknowledged before any fsync");
        // A durable append syncs its group and everything written before it.
        assert_eq!(wal.append(payload(4)).await.unwrap(), 4);
        assert_eq!(wal.sync_count(), before + 1);
        // An unsynced append alone is synced in the background.
        assert_eq!(
            wal.append_with(payload(5), SyncCommit::Off).await.unwrap(),
            5
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            wal.sync_count(),
            before + 2,
            "background sync within 100 ms"
        );
        wal.close();
        let (_wal, replay) = Wal::open(o, 0).unwrap();
        assert_eq!(seqs(&replay), vec![1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn garbage_after_last_record_is_cut() {
        let tmp = TempDir::new().unwrap();
        let o = opts(&tmp);
        let (wal, _) = Wal::open(o.clone(), 0).unwrap();
        for i in 1..=3 {
            wal.append(payload(i)).await.unwrap();
        }
        wal.close();
        let seg = segment_files(&o.dir).pop().unwrap();
        let good_len = fs::metadata(&seg).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"\x07garbage that is not a record at all")
            .unwrap();
        drop(f);

        let (wal, replay) = Wal::open(o.clone(), 0).unwrap();
        assert_eq!(seqs(&replay), vec![1, 2, 3]);
        assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
        assert_eq!(wal.append(payload(4)).await.unwrap(), 4);
        drop(wal);

        let (_wal, replay) = Wal::open(o, 0).unwrap();
        assert_eq!(seqs(&replay), vec![1, 2, 3, 4]);
        assert_eq!(replay[3].payload, payload(4));
    }

    #[tokio::test]
    async fn half_written_last_record_is_cut() {
        let tmp = TempDir::new().unwrap();
        let o = opts(&tmp);
        let (wal, _) = Wal::open(o.clone(), 0).unwrap();
        for i in 1..=3 {
            wal.append(payload(i)).await.unwrap();
        }
        wal.close();
        let seg = segment_files(&o.dir).pop().unwrap();
        let len = fs::metadata(&seg).unwrap().len();
        let rec_len = (RECORD_HEADER_LEN + "record-3".len()) as u64;
        fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - rec_len / 2)
            .unwrap();

        let (wal, replay) = Wal::open(o.clone(), 0).unwrap();
        assert_eq!(seqs(&replay), vec![1, 2]);
        assert_eq!(fs::metadata(&seg).unwrap().len(), len - rec_len);
        assert_eq!(wal.last_seq(), 2);
        assert_eq!(wal.append(payload(3)).await.unwrap(), 3);
        assert_eq!(wal.append(payload(4)).await.unwrap(), 4);
        drop(wal);

        let (_wal, replay) = Wal::open(o, 0).unwrap();
        assert_eq!(seqs(&replay), vec![1, 2, 3, 4]);
        for r in &replay {
            assert_eq!(r.payload, payload(r.seq));
        }
    }

    #[tokio::test]
    async fn bad_checksum_in_last_segment_cuts_from_there() {
        let tmp = TempDir::new().unwrap();
        let o = opts(&tmp);
        let (wal, _) = Wal::open(o.clone(), 0).unwrap();
        for i in 1..=5 {
            wal.append(payload(i)).await.unwrap();
        }
        wal.close();
        let seg = segment_files(&o.dir).pop().unwrap();
        let mut data = fs::read(&seg).unwrap();
        // Flip one payload byte of the third record.
        data[record_offset(2) + RECORD_HEADER_LEN + 1] ^= 0x40;
        fs::write(&seg, &data).unwrap();

        let (wal, replay) = Wal::open(o.clone(), 0).unwrap();
        assert_eq!(seqs(&replay), vec![1, 2]);
        assert_eq!(fs::metadata(&seg).unwrap().len(), record_offset(2) as u64);
        assert_eq!(wal.append(payload(3)).await.unwrap(), 3);
        drop(wal);
        let (_wal, replay) = Wal::open(o, 0).unwrap();
        assert_eq!(seqs(&replay), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn oversized_length_in_last_segment_is_cut() {
        let tmp = TempDir::new().unwrap();
        let o = opts(&tmp);
        let (wal, _) = Wal::open(o.clone(), 0).unwrap();
        for i in 1..=3 {
            wal.append(payload(i)).await.unwrap();
        }
        wal.close();
        let seg = segment_files(&o.dir).pop().unwrap();
        let mut data = fs::read(&seg).unwrap();
        data[record_offset(1)..record_offset(1) + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        fs::write(&seg, &data).unwrap();
        let (_wal, replay) = Wal::open(o, 0).unwrap();
        assert_eq!(seqs(&replay), vec![1]);
    }

    #[tokio::test]
    async fn corruption_in_earlier_segment_is_an_error() {
        let tmp = TempDir::new().unwrap();
        let o = opts(&tmp);
        let (wal, _) = Wal::open(o.clone(), 0).unwrap();
        for i in 1..=3 {
            wal.append(payload(i)).await.unwrap();
        }
        assert_eq!(wal.rotate().await.unwrap(), 3);
        for i in 4..=5 {
            wal.append(payload(i)).await.unwrap();
        }
        wal.close();
        let files = segment_files(&o.dir);
        assert_eq!(files.len(), 2);
        let mut data = fs::read(&files[0]).unwrap();
        data[record_offset(1) + RECORD_HEADER_LEN] ^= 0x01;
        fs::write(&files[0], &data).unwrap();

        let err = Wal::open(o.clone(), 0).unwrap_err();
        assert_eq!(err.code, SqlState::DATA_CORRUPTED);
        // Nothing was cut: the damaged segment is left for inspection.
        assert_eq!(fs::read(&files[0]).unwrap(), data);

        // A torn (short) tail in an earlier segment is an error too.
        let mut data = fs::read(&files[0]).unwrap();
        data[record_offset(1) + RECORD_HEADER_LEN] ^= 0x01;
        data.truncate(data.len() - 3);
        fs::write(&files[0], &data).unwrap();
        let err = Wal::open(o, 0).unwrap_err();
        assert_eq!(err.code, SqlState::DATA_CORRUPTED);
    }

    #[tokio::test]
    async fn bad_header_is_an_error() {
        let tmp = TempDir::new().unwrap();
        let o = opts(&tmp);
        fs::create_dir_all(&o.dir).unwrap();
        fs::write(o.dir.join(segment_file_name(1)), b"NOTAWALFILE").unwrap();
        let err = Wal::open(o, 0).unwrap_err();
        assert_eq!(err.code, SqlState::DATA_CORRUPTED);
    }

    #[tokio::test]
    async fn segment_torn_at_creation_is_reused() {
        let tmp = TempDir::new().unwrap();
        let o = opts(&tmp);
        let (wal, _) = Wal::open(o.clone(), 0).unwrap();
        for i in 1..=2 {
            wal.append(payload(i)).await.unwrap();
        }
        wal.close();
        // A crash right after creating the next segment, before its header.
        let torn = o.dir.join(segment_file_name(3));
        fs::write(&torn, b"TPW").unwrap();

        let (wal, replay) = Wal::open(o.clone(), 0).unwrap();
        assert_eq!(seqs(&replay), vec![1, 2]);
        assert_eq!(fs::read(&torn).unwrap(), SEGMENT_HEADER);
        assert_eq!(wal.append(payload(3)).await.unwrap(), 3);
        drop(wal);
        let (_wal, replay) = Wal::open(o, 0).unwrap();
        assert_eq!(seqs(&replay), vec![1, 2, 3]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn group_commit_shares_syncs() {
        let tmp = TempDir::new().unwrap();
        let o = opts(&tmp);
        let (wal, _) = Wal::open(o.clone(), 0).unwrap();
        let wal = Arc::new(wal);
        let tasks: Vec<_> = (0..200u64)
            .map(|i| {
                let wal = wal.clone();
                tokio::spawn(async move { wal.append(payload(i)).await })
            })
            .collect();
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap().unwrap());
        }
        got.sort_unstable();
        assert_eq!(got, (1..=200).collect::<Vec<_>>());
        let syncs = wal.sync_count();
        assert!((1..200).contains(&syncs), "{syncs} syncs for 200 appends");
        assert_eq!(wal.last_seq(), 200);
        wal.close();

        let (_wal, replay) = Wal::open(o, 0).unwrap();
        assert_eq!(seqs(&replay), (1..=200).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn rotate_and_truncate_through() {
        let tmp = TempDir::new().unwrap();
        let o = opts(&tmp);
        let (wal, _) = Wal::open(o.clone(), 0).unwrap();
        for i in 1..=3 {
            wal.append(payload(i)).await.unwrap();
        }
        assert_eq!(wal.rotate().await.unwrap(), 3);
        // Rotating an empty segment is a no-op.
        assert_eq!(wal.rotate().await.unwrap(), 3);
        assert_eq!(segment_files(&o.dir).len(), 2);
        for i in 4..=5 {
            wal.append(payload(i)).await.unwrap();
        }
        // Nothing sealed is entirely <= 2.
        wal.truncate_through(2).await.unwrap();
        assert_eq!(segment_files(&o.dir).len(), 2);
        wal.truncate_through(3).await.unwrap();
        let files = segment_files(&o.dir);
        assert_eq!(files.len(), 1);
        assert_eq!(
            files[0].file_name().unwrap().to_str().unwrap(),
            "00000000000000000004.wal"
        );
        // The active segment is never deleted.
        wal.truncate_through(100).await.unwrap();
        assert_eq!(segment_files(&o.dir).len(), 1);
        drop(wal);

        let (wal, replay) = Wal::open(o.clone(), 3).unwrap();
        assert_eq!(seqs(&replay), vec![4, 5]);
        assert_eq!(wal.rotate().await.unwrap(), 5);
        wal.truncate_through(5).await.unwrap();
        let files = segment_files(&o.dir);
        assert_eq!(files.len(), 1);
        assert_eq!(
            files[0].file_name().unwrap().to_str().unwrap(),
            "00000000000000000006.wal"
        );
        drop(wal);

        let (wal, replay) = Wal::open(o.clone(), 5).unwrap();
        assert!(replay.is_empty());
        assert_eq!(wal.last_seq(), 5);
        assert_eq!(wal.append(payload(6)).await.unwrap(), 6);
        drop(wal);

        // All segments gone (e.g. removed after a flush): seqs continue after `after_seq`.
        for f in segment_files(&o.dir) {
            fs::remove_file(f).unwrap();
        }
        let (wal, replay) = Wal::open(o.clone(), 6).unwrap();
        assert!(replay.is_empty());
        assert_eq!(wal.last_seq(), 6);
        assert_eq!(wal.append(payload(7)).await.unwrap(), 7);
        drop(wal);
        let (_wal, replay) = Wal::open(o, 6).unwrap();
        assert_eq!(seqs(&replay), vec![7]);
    }

    #[tokio::test]
    async fn rotates_by_size() {
        let tmp = TempDir::new().unwrap();
        let o = WalOptions {
            segment_bytes: 60,
            ..opts(&tmp)
        };
        let (wal, _) = Wal::open(o.clone(), 0).unwrap();
        for i in 1..=9 {
            wal.append(payload(i)).await.unwrap();
        }
        wal.close();
        // 8-byte header + three 24-byte records pass 60 bytes: 1-3, 4-6, 7-9, then an empty 10.
        let files = segment_files(&o.dir);
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, [1, 4, 7, 10].map(segment_file_name).to_vec(),);
        let (_wal, replay) = Wal::open(o, 0).unwrap();
        assert_eq!(seqs(&replay), (1..=9).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn failed_write_is_not_acknowledged_and_wal_keeps_working() {
        let tmp = TempDir::new().unwrap();
        let o = opts(&tmp);
        let (wal, _) = Wal::open(o.clone(), 0).unwrap();
        assert_eq!(wal.append(payload(1)).await.unwrap(), 1);
        let seg = segment_files(&o.dir).pop().unwrap();
        let good_len = fs::metadata(&seg).unwrap().len();

        // Disk full half-way through the write: 53100, and nothing of it stays in the file.
        wal.shared.fault.store(1, Ordering::Relaxed);
        let err = wal.append(Bytes::from_static(b"lost-1")).await.unwrap_err();
        assert_eq!(err.code, SqlState::DISK_FULL);
        assert!(
            err.message.starts_with("could not write to WAL"),
            "{}",
            err.message
        );
        assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
        assert_eq!(wal.last_seq(), 1);

        // fdatasync fails after a complete write: 58030, and the records are cut again.
        wal.shared.fault.store(2, Ordering::Relaxed);
        let err = wal.append(Bytes::from_static(b"lost-2")).await.unwrap_err();
        assert_eq!(err.code, SqlState::IO_ERROR);
        assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);

        // Later appends work and follow the last good record.
        assert_eq!(wal.append(payload(2)).await.unwrap(), 2);
        assert_eq!(wal.append(payload(3)).await.unwrap(), 3);
        wal.close();
        let (_wal, replay) = Wal::open(o, 0).unwrap();
        assert_eq!(seqs(&replay), vec![1, 2, 3]);
        for r in &replay {
            assert_eq!(r.payload, payload(r.seq));
        }
    }

    #[tokio::test]
    async fn closed_wal_refuses_appends() {
        let tmp = TempDir::new().unwrap();
        let (wal, _) = Wal::open(opts(&tmp), 0).unwrap();
        wal.append(payload(1)).await.unwrap();
        wal.close();
        wal.close();
        let err = wal.append(payload(2)).await.unwrap_err();
        assert_eq!(err.code, SqlState::IO_ERROR);
        let err = wal.rotate().await.unwrap_err();
        assert_eq!(err.code, SqlState::IO_ERROR);
    }

    #[test]
    fn wal_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Wal>();
    }
}
