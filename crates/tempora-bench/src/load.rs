//! `load`: (re)creates `cpu` and loads a CSV file with parallel
//! `COPY cpu FROM STDIN (FORMAT csv)` streams.
//!
//! The file is cut into `workers` contiguous byte ranges at line boundaries;
//! each range goes through its own connection. A reader thread per worker
//! reads its range in large blocks that end at a line boundary and hands them
//! to the connection as CopyData messages, counting lines as it goes (the
//! expected row count, independent of anything the server says).
//!
//! The clock starts just before the first COPY is sent and stops when every
//! COPY has returned its command tag, i.e. when the server has acknowledged
//! (and, with durable commits, synced) every row.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::SinkExt;
use serde::Serialize;
use tokio_postgres::{Client, NoTls};

use crate::gen;
use crate::procfs::{self, DiskUsage, RssSummary};

#[derive(Debug, Clone)]
pub struct LoadArgs {
    pub url: String,
    pub file: PathBuf,
    pub workers: usize,
    pub hypertable: bool,
    /// Create [`gen::CREATE_INDEX_SQL`] before the load.
    pub index: bool,
    pub server_pid: Option<u32>,
    pub data_dir: Option<PathBuf>,
    pub label: String,
    pub json_out: Option<PathBuf>,
    pub flush_wait_secs: f64,
    pub checkpoint: bool,
    pub block_bytes: usize,
    pub connect_timeout_secs: f64,
}

/// One load, as printed in the JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub label: String,
    pub server_version: Option<String>,
    pub started_at: String,
    pub host_cpus: usize,
    pub file: String,
    pub file_bytes: u64,
    pub workers: usize,
    pub split: &'static str,
    pub block_bytes: usize,
    pub hypertable: bool,
    #[serde(default)]
    pub index: bool,
    pub rows: u64,
    pub elapsed_s: f64,
    pub rows_per_s: f64,
    pub metrics_per_s: f64,
    pub mib_per_s: f64,
    /// Seconds from the start until each worker's COPY returned.
    pub worker_elapsed_s: Vec<f64>,
    pub worker_rows: Vec<u64>,
    pub client_cpu_s: f64,
    pub server_cpu_s: Option<f64>,
    pub server_pid: Option<u32>,
    pub rss: Option<RssSummary>,
    pub data_dir: Option<String>,
    pub disk_after_load: Option<DiskUsage>,
    /// Filled in by `tempora-bench du --update-json` after the server stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_after_stop: Option<DiskUsage>,
}

/// Byte offsets where each worker's range starts (plus the file length at the
/// end): `workers` ranges of about equal size, each starting a line.
pub fn split_points(path: &Path, workers: usize) -> std::io::Result<Vec<u64>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut points = vec![0u64];
    let mut probe = vec![0u8; 64 * 1024];
    for w in 1..workers.max(1) {
        let prev = *points.last().unwrap_or(&0);
        let guess = (len * w as u64 / workers as u64).max(prev);
        // The range starts after the first newline at or after `guess - 1`,
        // so a guess that lands on a line start keeps it.
        let mut at = guess.saturating_sub(1);
        let mut start = len;
        while at < len {
            file.seek(SeekFrom::Start(at))?;
            let n = file.read(&mut probe)?;
            if n == 0 {
                break;
            }
            if let Some(i) = probe[..n].iter().position(|&b| b == b'\n') {
                start = at + i as u64 + 1;
                break;
            }
            at += n as u64;
        }
        points.push(start.max(prev));
    }
    points.push(len);
    Ok(points)
}

/// Reads bytes [from, to) of `path` in blocks of about `block` bytes, each
/// ending at a newline (except possibly the last), and sends them on `tx`.
/// Returns the number of lines sent.
fn read_range(
    path: &Path,
    from: u64,
    to: u64,
    block: usize,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) -> std::io::Result<u64> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let mut remaining = to - from;
    let mut lines = 0u64;
    let mut buf = BytesMut::with_capacity(block * 2);
    let mut ends_with_newline = true;
    while remaining > 0 {
        let want = (block as u64).min(remaining) as usize;
        let old = buf.len();
        buf.resize(old + want, 0);
        let n = file.read(&mut buf[old..])?;
        buf.truncate(old + n);
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shrank while loading",
            ));
        }
        remaining -= n as u64;
        let cut = if remaining == 0 {
            buf.len()
        } else {
            match buf.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => continue, // a line longer than the block: read more
            }
        };
        let chunk = buf.split_to(cut).freeze();
        lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        ends_with_newline = chunk.last() == Some(&b'\n');
        if tx.blocking_send(chunk).is_err() {
            // The COPY side failed; it reports the error.
            return Ok(lines);
        }
        if buf.capacity() < block {
            buf.reserve(block * 2);
        }
    }
    if !ends_with_newline {
        lines += 1;
    }
    Ok(lines)
}

pub(crate) async fn connect(url: &str, timeout: Duration) -> Result<Client, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match tokio_postgres::connect(url, NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        eprintln!("connection error: {e}");
                    }
                });
                return Ok(client);
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("cannot connect to {url}: {e}")),
        }
    }
}

pub(crate) fn db_error(context: &str, e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{context}: {} ({})", db.message(), db.code().code()),
        None => format!("{context}: {e}"),
    }
}

async fn create_schema(client: &Client, hypertable: bool, index: bool) -> Result<(), String> {
    client
        .batch_execute("DROP TABLE IF EXISTS cpu")
        .await
        .map_err(|e| db_error("DROP TABLE cpu", e))?;
    client
        .batch_execute(&gen::create_table_sql())
        .await
        .map_err(|e| db_error("CREATE TABLE cpu", e))?;
    if hypertable {
        client
            .simple_query(gen::CREATE_HYPERTABLE_SQL)
            .await
            .map_err(|e| db_error("create_hypertable", e))?;
    }
    if index {
        client
            .batch_execute(gen::CREATE_INDEX_SQL)
            .await
            .map_err(|e| db_error("CREATE INDEX", e))?;
    }
    Ok(())
}

async fn copy_stream(
    client: &Client,
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> Result<u64, String> {
    let sink = client
        .copy_in::<_, Bytes>("COPY cpu FROM STDIN (FORMAT csv)")
        .await
        .map_err(|e| db_error("COPY cpu FROM STDIN", e))?;
    futures::pin_mut!(sink);
    while let Some(block) = rx.recv().await {
        sink.send(block)
            .await
            .map_err(|e| db_error("sending COPY data", e))?;
    }
    sink.finish()
        .await
        .map_err(|e| db_error("finishing COPY", e))
}

fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.0} kB", b / 1e3)
    }
}

pub async fn run(args: LoadArgs) -> Result<LoadReport, String> {
    let workers = args.workers.max(1);
    let file_bytes = std::fs::metadata(&args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?
        .len();
    let points = split_points(&args.file, workers)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    let timeout = Duration::from_secs_f64(args.connect_timeout_secs.max(0.0));

    let admin = connect(&args.url, timeout).await?;
    let server_version = admin
        .simple_query("SHOW server_version")
        .await
        .ok()
        .and_then(|msgs| {
            msgs.into_iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
        });
    create_schema(&admin, args.hypertable, args.index).await?;
    let mut clients = Vec::with_capacity(workers);
    for _ in 0..workers {
        clients.push(connect(&args.url, timeout).await?);
    }

    let server_tree = args.server_pid.map(procfs::process_tree);
    let server_cpu_before = server_tree.as_deref().map(procfs::cpu_seconds);
    let sampler = args
        .server_pid
        .map(|pid| procfs::RssSampler::start(pid, Duration::from_millis(100)));
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let client_cpu_before = procfs::own_cpu_seconds();
    let start = Instant::now();

    let mut tasks = Vec::with_capacity(workers);
    let mut readers = Vec::with_capacity(workers);
    for (w, client) in clients.into_iter().enumerate() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let (from, to, path, block) = (
            points[w],
            points[w + 1],
            args.file.clone(),
            args.block_bytes,
        );
        let reader = std::thread::spawn(move || read_range(&path, from, to, block, tx));
        tasks.push(tokio::spawn(async move {
            let copied = copy_stream(&client, rx).await;
            let at = start.elapsed().as_secs_f64();
            (copied, at, client)
        }));
        readers.push(reader);
    }
    let mut worker_rows = Vec::with_capacity(workers);
    let mut worker_elapsed = Vec::with_capacity(workers);
    let mut errors = Vec::new();
    let mut keep = Vec::new();
    for (w, t) in tasks.into_iter().enumerate() {
        match t.await {
            Ok((Ok(rows), at, client)) => {
                worker_rows.push(rows);
                worker_elapsed.push(at);
                keep.push(client);
            }
            Ok((Err(e), _, _)) => errors.push(format!("worker {w}: {e}")),
            Err(e) => errors.push(format!("worker {w}: {e}")),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let client_cpu = procfs::own_cpu_seconds() - client_cpu_before;
    // Backends still exist while their connections are open.
    let server_cpu = match (&server_tree, server_cpu_before) {
        (Some(_), Some(before)) => {
            let tree = procfs::process_tree(args.server_pid.unwrap_or(0));
            Some(procfs::cpu_seconds(&tree) - before)
        }
        _ => None,
    };
    let rss = sampler.map(|s| s.finish());
    drop(keep);
    let mut file_rows = 0u64;
    for r in readers {
        match r.join() {
            Ok(Ok(lines)) => file_rows += lines,
            Ok(Err(e)) => errors.push(format!("reading {}: {e}", args.file.display())),
            Err(_) => errors.push("a reader thread panicked".to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(format!(
            "[{}] load failed:\n  {}",
            args.label,
            errors.join("\n  ")
        ));
    }

    let acknowledged: u64 = worker_rows.iter().sum();
    let counted: i64 = admin
        .query_one("SELECT count(*) FROM cpu", &[])
        .await
        .map_err(|e| db_error("SELECT count(*) FROM cpu", e))?
        .get(0);
    if acknowledged != file_rows || counted != file_rows as i64 {
        return Err(format!(
            "[{}] row count mismatch: the file has {file_rows} rows, COPY acknowledged \
             {acknowledged}, SELECT count(*) FROM cpu returned {counted}",
            args.label
        ));
    }

    if args.checkpoint {
        if let Err(e) = admin.batch_execute("CHECKPOINT").await {
            eprintln!("[{}] CHECKPOINT failed (ignored): {e}", args.label);
        }
    }
    if args.flush_wait_secs > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(args.flush_wait_secs)).await;
    }
    let disk_after_load = match &args.data_dir {
        Some(d) => {
            Some(procfs::disk_usage(d).map_err(|e| format!("cannot read {}: {e}", d.display()))?)
        }
        None => None,
    };

    let rows = file_rows;
    let report = LoadReport {
        label: args.label.clone(),
        server_version,
        started_at,
        host_cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        file: args.file.display().to_string(),
        file_bytes,
        workers,
        split: "contiguous",
        block_bytes: args.block_bytes,
        hypertable: args.hypertable,
        index: args.index,
        rows,
        elapsed_s: elapsed,
        rows_per_s: rows as f64 / elapsed,
        metrics_per_s: rows as f64 * gen::METRICS.len() as f64 / elapsed,
        mib_per_s: file_bytes as f64 / (1024.0 * 1024.0) / elapsed,
        worker_elapsed_s: worker_elapsed,
        worker_rows,
        client_cpu_s: client_cpu,
        server_cpu_s: server_cpu,
        server_pid: args.server_pid,
        rss,
        data_dir: args.data_dir.as_ref().map(|d| d.display().to_string()),
        disk_after_load,
        disk_after_stop: None,
    };
    print_human(&report);
    let json = serde_json::to_string(&report).map_err(|e| e.to_string())?;
    println!("{json}");
    if let Some(path) = &args.json_out {
        std::fs::write(path, format!("{json}\n"))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(report)
}

fn print_human(r: &LoadReport) {
    let rss = r
        .rss
        .as_ref()
        .map(|s| human_bytes(s.peak_rss_bytes))
        .unwrap_or_else(|| "-".into());
    let disk = r
        .disk_after_load
        .as_ref()
        .map(|d| human_bytes(d.bytes))
        .unwrap_or_else(|| "-".into());
    let server_cpu = r
        .server_cpu_s
        .map(|s| format!("{s:.1} s"))
        .unwrap_or_else(|| "-".into());
    println!(
        "{:<12} {:>12} rows {:>9.2} s {:>12.0} rows/s {:>13.0} metrics/s  peak RSS {:>9}  disk {:>9}  client CPU {:.1} s  server CPU {}  ({} workers{})",
        r.label,
        r.rows,
        r.elapsed_s,
        r.rows_per_s,
        r.metrics_per_s,
        rss,
        disk,
        r.client_cpu_s,
        server_cpu,
        r.workers,
        if r.hypertable { ", hypertable" } else { "" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str, content: &[u8]) -> PathBuf {
        let p = std::env::temp_dir().join(format!("tempora-bench-{name}-{}", std::process::id()));
        std::fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn split_at_line_starts() {
        let text: String = (0..1000)
            .map(|i| format!("line {i} {}\n", "x".repeat(i % 37)))
            .collect();
        let path = scratch("split", text.as_bytes());
        for workers in 1..=7 {
            let points = split_points(&path, workers).unwrap();
            assert_eq!(points.len(), workers + 1);
            assert_eq!(points[0], 0);
            assert_eq!(*points.last().unwrap(), text.len() as u64);
            for w in points.windows(2) {
                assert!(w[0] <= w[1]);
            }
            for &p in &points[1..workers] {
                assert_eq!(text.as_bytes()[p as usize - 1], b'\n');
            }
        }
        // More workers than lines: empty ranges, still covering the file.
        let tiny = scratch("tiny", b"a\nb\n");
        let points = split_points(&tiny, 5).unwrap();
        assert_eq!(points.first(), Some(&0));
        assert_eq!(points.last(), Some(&4));
        std::fs::remove_file(tiny).unwrap();
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn blocks_end_at_newlines_and_lines_are_counted() {
        let text: String = (0..5000)
            .map(|i| format!("{i},{}\n", "y".repeat(i % 101)))
            .collect();
        let mut unterminated = text.clone();
        unterminated.push_str("last,line");
        let path = scratch("read", unterminated.as_bytes());
        let len = unterminated.len() as u64;
        let points = split_points(&path, 3).unwrap();
        let mut total = 0;
        let mut joined = Vec::new();
        for w in 0..3 {
            let (tx, mut rx) = tokio::sync::mpsc::channel(1 << 16);
            total += read_range(&path, points[w], points[w + 1], 4096, tx).unwrap();
            while let Ok(block) = rx.try_recv() {
                if w < 2 || points[w + 1] != len {
                    assert_eq!(block.last(), Some(&b'\n'));
                }
                joined.extend_from_slice(&block);
            }
        }
        std::fs::remove_file(&path).unwrap();
        assert_eq!(total, 5001);
        assert_eq!(joined, unterminated.as_bytes());
    }
}
