//! Server-side measurements from Linux's /proc, and disk usage.
//!
//! A server may be one process (Tempora) or a process tree (PostgreSQL: the
//! postmaster plus one backend per connection and background workers). Memory
//! is measured over the whole tree as
//! `sum(RssAnon + RssFile) + max(RssShmem)`: private and file-backed pages of
//! every process plus the shared memory segment counted once (summing VmRSS
//! would count PostgreSQL's shared buffers once per process). For a single
//! process this is exactly its VmRSS.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

/// `pid` and every process descending from it.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = stat_fields(child).and_then(|f| f.get(1)?.parse().ok()) {
                parent_of.push((child, ppid));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

/// The fields of /proc/PID/stat after the command name: index 0 is the state,
/// 1 the parent pid, 11 utime and 12 stime (in clock ticks).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// CPU seconds (user + system) used so far by the processes in `pids`.
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    let ticks_per_s = clock_ticks_per_second();
    pids.iter()
        .filter_map(|&p| {
            let f = stat_fields(p)?;
            let user: u64 = f.get(11)?.parse().ok()?;
            let system: u64 = f.get(12)?.parse().ok()?;
            Some((user + system) as f64 / ticks_per_s)
        })
        .sum()
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds (user + system) this process has used so far, all threads.
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Memory figures of one process, in bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcMem {
    pub vm_rss: u64,
    pub vm_hwm: u64,
    pub rss_anon: u64,
    pub rss_file: u64,
    pub rss_shmem: u64,
}

pub fn proc_mem(pid: u32) -> Option<ProcMem> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut m = ProcMem::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let kib = || -> u64 {
            value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        match key {
            "VmRSS" => m.vm_rss = kib(),
            "VmHWM" => m.vm_hwm = kib(),
            "RssAnon" => m.rss_anon = kib(),
            "RssFile" => m.rss_file = kib(),
            "RssShmem" => m.rss_shmem = kib(),
            _ => {}
        }
    }
    Some(m)
}

/// Resident memory of a process tree, shared memory counted once.
pub fn tree_rss(pids: &[u32]) -> u64 {
    let mut private = 0u64;
    let mut shared = 0u64;
    for m in pids.iter().filter_map(|&p| proc_mem(p)) {
        private += m.rss_anon + m.rss_file;
        shared = shared.max(m.rss_shmem);
    }
    private + shared
}

/// What the sampler saw.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RssSummary {
    /// Peak of the tree measure over all samples.
    pub peak_rss_bytes: u64,
    /// Peak VmRSS of the top process over all samples.
    pub peak_main_vm_rss_bytes: u64,
    /// VmHWM (the kernel's own high-water mark) of the top process at the end.
    pub main_vm_hwm_bytes: u64,
    /// Tree measure at the last sample.
    pub last_rss_bytes: u64,
    pub samples: u64,
    pub max_processes: usize,
}

/// Samples a server's memory every `period` on its own thread until stopped.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<RssSummary>,
    pid: u32,
}

impl RssSampler {
    pub fn start(pid: u32, period: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut summary = RssSummary::default();
            let mut tree = process_tree(pid);
            let mut n = 0u64;
            loop {
                // New backends appear and old ones leave; re-read the tree
                // every second rather than on every sample.
                if n % 10 == 9 {
                    tree = process_tree(pid);
                }
                let rss = tree_rss(&tree);
                let main = proc_mem(pid).map(|m| m.vm_rss).unwrap_or(0);
                summary.peak_rss_bytes = summary.peak_rss_bytes.max(rss);
                summary.peak_main_vm_rss_bytes = summary.peak_main_vm_rss_bytes.max(main);
                summary.last_rss_bytes = rss;
                summary.max_processes = summary.max_processes.max(tree.len());
                summary.samples += 1;
                n += 1;
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(period);
            }
            summary
        });
        RssSampler { stop, handle, pid }
    }

    pub fn finish(self) -> RssSummary {
        self.stop.store(true, Ordering::Relaxed);
        let mut summary = self.handle.join().unwrap_or_default();
        summary.main_vm_hwm_bytes = proc_mem(self.pid).map(|m| m.vm_hwm).unwrap_or(0);
        summary
    }
}

/// Bytes of a directory tree.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DiskUsage {
    /// Sum of the lengths of all regular files.
    pub bytes: u64,
    /// Sum of the blocks allocated to them (st_blocks x 512).
    pub allocated_bytes: u64,
    pub files: u64,
    /// `bytes` per top-level entry of the directory.
    pub by_top_level: BTreeMap<String, u64>,
}

/// Walks `dir` (not following symlinks). Files that disappear during the
/// walk (a server deleting WAL segments) are skipped.
pub fn disk_usage(dir: &Path) -> std::io::Result<DiskUsage> {
    use std::os::unix::fs::MetadataExt;
    let mut usage = DiskUsage::default();
    let top = std::fs::read_dir(dir)?;
    for entry in top.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut stack = vec![entry.path()];
        let mut sub = 0u64;
        while let Some(path) = stack.pop() {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if let Ok(children) = std::fs::read_dir(&path) {
                    stack.extend(children.flatten().map(|c| c.path()));
                }
            } else if meta.is_file() {
                sub += meta.len();
                usage.allocated_bytes += meta.blocks() * 512;
                usage.files += 1;
            }
        }
        usage.bytes += sub;
        usage.by_top_level.insert(name, sub);
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process() {
        let me = std::process::id();
        let m = proc_mem(me).unwrap();
        // Other test threads allocate between reads: compare loosely.
        let close = |a: u64, b: u64| a.abs_diff(b) < 64 << 20;
        assert!(m.vm_rss > 0 && m.vm_hwm > 0);
        assert!(close(m.vm_rss, m.rss_anon + m.rss_file + m.rss_shmem));
        assert!(close(tree_rss(&[me]), m.vm_rss));
        assert!(process_tree(me).contains(&me));
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(own_cpu_seconds() > 0.0);
        assert!(cpu_seconds(&[me]) >= 0.0);
    }

    #[test]
    fn du() {
        let dir = std::env::temp_dir().join(format!("tempora-bench-du-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/f"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.join("g"), vec![0u8; 24]).unwrap();
        let u = disk_usage(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(u.bytes, 1024);
        assert_eq!(u.files, 2);
        assert_eq!(u.by_top_level["a"], 1000);
        assert_eq!(u.by_top_level["g"], 24);
    }
}
