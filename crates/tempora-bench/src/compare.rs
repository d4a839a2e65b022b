//! `compare`: a side-by-side table of two (or more) `load` reports; the
//! ratios divide the first by the second.

use std::path::PathBuf;

use serde_json::{json, Value};

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_f64()
}

fn fmt_count(x: f64) -> String {
    let s = format!("{:.0}", x);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn fmt_bytes(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2} GB", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.1} MB", x / 1e6)
    } else {
        format!("{:.0} kB", x / 1e3)
    }
}

/// Bytes of the data directory without its write-ahead log (`wal` for
/// Tempora, `pg_wal` for PostgreSQL).
fn without_wal(disk: &Value) -> Option<f64> {
    let total = disk.get("bytes")?.as_f64()?;
    let by = disk.get("by_top_level")?;
    let wal = ["wal", "pg_wal"]
        .iter()
        .filter_map(|k| by.get(*k).and_then(Value::as_f64))
        .sum::<f64>();
    Some(total - wal)
}

struct Line {
    name: &'static str,
    get: fn(&Value) -> Option<f64>,
    show: fn(f64) -> String,
    /// Whether "first / second" means anything for this line.
    ratio: bool,
}

fn lines() -> Vec<Line> {
    vec![
        Line {
            name: "rows",
            get: |v| num(v, &["rows"]),
            show: fmt_count,
            ratio: false,
        },
        Line {
            name: "workers",
            get: |v| num(v, &["workers"]),
            show: fmt_count,
            ratio: false,
        },
        Line {
            name: "elapsed (s)",
            get: |v| num(v, &["elapsed_s"]),
            show: |x| format!("{x:.2}"),
            ratio: true,
        },
        Line {
            name: "rows/s",
            get: |v| num(v, &["rows_per_s"]),
            show: fmt_count,
            ratio: true,
        },
        Line {
            name: "metrics/s",
            get: |v| num(v, &["metrics_per_s"]),
            show: fmt_count,
            ratio: true,
        },
        Line {
            name: "peak server RSS",
            get: |v| num(v, &["rss", "peak_rss_bytes"]),
            show: fmt_bytes,
            ratio: true,
        },
        Line {
            name: "server CPU (s)",
            get: |v| num(v, &["server_cpu_s"]),
            show: |x| format!("{x:.1}"),
            ratio: true,
        },
        Line {
            name: "client CPU (s)",
            get: |v| num(v, &["client_cpu_s"]),
            show: |x| format!("{x:.1}"),
            ratio: true,
        },
        Line {
            name: "disk after load",
            get: |v| num(v, &["disk_after_load", "bytes"]),
            show: fmt_bytes,
            ratio: true,
        },
        Line {
            name: "disk after stop",
            get: |v| num(v, &["disk_after_stop", "bytes"]),
            show: fmt_bytes,
            ratio: true,
        },
        Line {
            name: "  of which not WAL",
            get: |v| v.get("disk_after_stop").and_then(without_wal),
            show: fmt_bytes,
            ratio: true,
        },
    ]
}

pub fn run(files: &[PathBuf], json_out: Option<PathBuf>) -> Result<(), String> {
    let mut reports = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        let v: Value = serde_json::from_str(text.trim())
            .map_err(|e| format!("{} is not a load report: {e}", f.display()))?;
        reports.push(v);
    }
    if reports.is_empty() {
        return Err("no reports given".into());
    }
    let label = |v: &Value| {
        v.get("label")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    let two = reports.len() >= 2;
    let mut header = format!("{:<20}", "");
    for r in &reports {
        header.push_str(&format!(" {:>18}", label(r)));
    }
    if two {
        header.push_str(&format!(" {:>10}", "ratio"));
    }
    println!("{header}");
    let mut versions = format!("{:<20}", "server version");
    for r in &reports {
        let v = r
            .get("server_version")
            .and_then(Value::as_str)
            .unwrap_or("-");
        versions.push_str(&format!(
            " {:>18}",
            v.split_whitespace().next().unwrap_or(v)
        ));
    }
    println!("{versions}");
    let mut ratios = serde_json::Map::new();
    for line in lines() {
        let values: Vec<Option<f64>> = reports.iter().map(line.get).collect();
        if values.iter().all(Option::is_none) {
            continue;
        }
        let mut row = format!("{:<20}", line.name);
        for v in &values {
            row.push_str(&format!(
                " {:>18}",
                v.map(line.show).unwrap_or_else(|| "-".into())
            ));
        }
        if two && line.ratio {
            if let (Some(a), Some(b)) = (values[0], values[1]) {
                if b != 0.0 {
                    row.push_str(&format!(" {:>9.2}x", a / b));
                    ratios.insert(line.name.trim().to_string(), json!(a / b));
                }
            }
        }
        println!("{row}");
    }
    if let Some(path) = json_out {
        let out = json!({ "results": reports, "ratios_first_over_second": ratios });
        std::fs::write(&path, format!("{out}\n"))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(fmt_count(0.0), "0");
        assert_eq!(fmt_count(999.0), "999");
        assert_eq!(fmt_count(1000.0), "1,000");
        assert_eq!(fmt_count(34_560_000.0), "34,560,000");
        assert_eq!(fmt_count(-1234.0), "-1,234");
    }

    #[test]
    fn wal_excluded() {
        let d = json!({"bytes": 100, "by_top_level": {"wal": 30, "chunks": 70}});
        assert_eq!(without_wal(&d), Some(70.0));
    }
}
