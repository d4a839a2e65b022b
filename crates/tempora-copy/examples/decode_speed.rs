//! Decode speed of the bulk-ingest path: 1,000,000 rows of the TSBS
//! cpu-only shape (time, 10 text tags, 10 doubles) as CSV and as text,
//! decoded single-threaded from 64 KiB CopyData payloads.
//!
//! `cargo run --release -p tempora-copy --example decode_speed`

use std::time::Instant;

use tempora_catalog::PgType;
use tempora_copy::{CopyDecoder, CopyOptions};

const ROWS: usize = 1_000_000;

fn columns() -> Vec<(String, PgType)> {
    let mut cols = vec![("time".to_string(), PgType::Timestamptz)];
    for t in [
        "hostname",
        "region",
        "datacenter",
        "rack",
        "os",
        "arch",
        "team",
        "service",
        "service_version",
        "service_environment",
    ] {
        cols.push((t.to_string(), PgType::Text));
    }
    for m in [
        "usage_user",
        "usage_system",
        "usage_idle",
        "usage_nice",
        "usage_iowait",
        "usage_irq",
        "usage_softirq",
        "usage_steal",
        "usage_guest",
        "usage_guest_nice",
    ] {
        cols.push((m.to_string(), PgType::Float8));
    }
    cols
}

fn data(delim: char, iso_t: bool) -> Vec<u8> {
    let regions = ["us-east-1", "us-west-1", "eu-west-1", "ap-south-1"];
    let mut out = String::with_capacity(ROWS * 200);
    let mut seed: u64 = 12345;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as u32
    };
    for i in 0..ROWS {
        let host = i % 4000;
        let secs = i / 4000 * 10;
        let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
        let day = 1 + secs / 86400;
        if iso_t {
            out.push_str(&format!("2016-01-{day:02}T{h:02}:{m:02}:{s:02}Z"));
        } else {
            out.push_str(&format!("2016-01-{day:02} {h:02}:{m:02}:{s:02}+00"));
        }
        let r = regions[host % 4];
        for tag in [
            format!("host_{host}"),
            r.to_string(),
            format!("{r}a"),
            format!("{}", host % 100),
            "Ubuntu16.04LTS".to_string(),
            if host % 2 == 0 { "x64" } else { "x86" }.to_string(),
            format!("SF{}", host % 10),
            format!("{}", host % 20),
            format!("{}", host % 2),
            "production".to_string(),
        ] {
            out.push(delim);
            out.push_str(&tag);
        }
        for _ in 0..10 {
            out.push(delim);
            out.push_str(&(next() % 100).to_string());
        }
        out.push('\n');
    }
    out.into_bytes()
}

fn run(name: &str, opts: CopyOptions, input: &[u8]) {
    let best = (0..3)
        .map(|_| {
            let start = Instant::now();
            let mut d = CopyDecoder::new("cpu", columns(), opts.clone(), "UTC", 65_536).unwrap();
            let mut batches = 0;
            for chunk in input.chunks(64 * 1024) {
                d.push(chunk).unwrap();
                batches += d.take_batches().len();
            }
            batches += d.finish().unwrap().len();
            assert_eq!(d.rows() as usize, ROWS);
            assert!(batches >= ROWS / 65_536);
            start.elapsed()
        })
        .min()
        .unwrap();
    let secs = best.as_secs_f64();
    println!(
        "{name:<28} {:>10.0} rows/s {:>8.1} MB/s  ({:.3} s for {} rows, {:.1} MB)",
        ROWS as f64 / secs,
        input.len() as f64 / secs / 1e6,
        secs,
        ROWS,
        input.len() as f64 / 1e6
    );
}

fn main() {
    let csv = data(',', false);
    run("csv, '... 00:00:10+00'", CopyOptions::csv(), &csv);
    let csv_t = data(',', true);
    run("csv, '...T00:00:10Z'", CopyOptions::csv(), &csv_t);
    let text = data('\t', false);
    run("text, '... 00:00:10+00'", CopyOptions::text(), &text);
}
