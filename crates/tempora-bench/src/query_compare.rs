//! `compare-queries`: two `run-queries` reports side by side, with the
//! ratio first / second of the median latencies, and a check that both
//! servers returned the same rows for every statement both ran.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::query_run::{Execution, QueryReport, TypeReport};

/// What the result check found for one query type.
#[derive(Debug, Clone, PartialEq)]
enum Check {
    /// Every statement both ran returned the same rows (count compared).
    Same(usize),
    /// A statement whose results differ, described.
    Differs(String),
    /// One side failed; nothing to compare.
    Failed,
}

fn read(path: &Path) -> Result<QueryReport, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(text.trim())
        .map_err(|e| format!("{} is not a run-queries report: {e}", path.display()))
}

fn describe_row(row: Option<&Vec<String>>) -> String {
    match row {
        Some(r) => format!("({})", r.join(", ")),
        None => "(no row)".into(),
    }
}

fn check_execution(a: &Execution, b: &Execution, la: &str, lb: &str) -> Option<String> {
    if a.rows == b.rows && a.digest == b.digest {
        return None;
    }
    let mut text = format!(
        "statement {}: {la} returned {} rows (digest {}), {lb} {} rows (digest {})\n      {}",
        a.instance, a.rows, a.digest, b.rows, b.digest, a.sql
    );
    if let (Some(ra), Some(rb)) = (&a.result, &b.result) {
        let n = ra.len().max(rb.len());
        if let Some(i) = (0..n).find(|&i| ra.get(i) != rb.get(i)) {
            text.push_str(&format!(
                "\n      first difference at row {}:\n        {la}: {}\n        {lb}: {}",
                i + 1,
                describe_row(ra.get(i)),
                describe_row(rb.get(i))
            ));
        }
    }
    Some(text)
}

fn check_type(a: &TypeReport, b: &TypeReport, la: &str, lb: &str) -> Check {
    if a.failure.is_some() || b.failure.is_some() {
        return Check::Failed;
    }
    let mut compared = 0;
    for ea in &a.executions {
        let Some(eb) = b.executions.iter().find(|e| e.instance == ea.instance) else {
            continue;
        };
        if ea.sql != eb.sql {
            return Check::Differs(format!(
                "statement {} differs between the reports (not the same workload)",
                ea.instance
            ));
        }
        if let Some(d) = check_execution(ea, eb, la, lb) {
            return Check::Differs(d);
        }
        compared += 1;
    }
    Check::Same(compared)
}

fn fmt_ms(x: Option<f64>) -> String {
    match x {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
        None => "-".into(),
    }
}

fn failure_text(r: &TypeReport) -> Option<String> {
    r.failure.as_ref().map(|f| {
        let state = f.sqlstate.as_deref().unwrap_or(if f.timed_out {
            "timeout"
        } else {
            "no SQLSTATE"
        });
        format!(
            "statement {} failed ({state}): {}\n      {}",
            f.instance, f.message, f.sql
        )
    })
}

/// Prints the comparison; returns whether every type ran on both servers and
/// returned the same results.
pub fn run(first: &Path, second: &Path, json_out: Option<PathBuf>) -> Result<bool, String> {
    let (a, b) = (read(first)?, read(second)?);
    if a.workload != b.workload {
        return Err(format!(
            "the reports ran different workloads: {:?} and {:?}",
            a.workload, b.workload
        ));
    }
    let (la, lb) = (a.label.as_str(), b.label.as_str());
    let w = &a.workload;
    println!(
        "{} hosts, {} .. {}, seed {}; {} warm-up + {} timed statements per type; latency in ms",
        w.scale, w.start, w.end, w.seed, w.warmup, w.count
    );
    println!(
        "{la}: {}    {lb}: {}",
        a.server_version.as_deref().unwrap_or("?"),
        b.server_version.as_deref().unwrap_or("?")
    );
    println!(
        "{:<22} {:>10} {:>9}   {:>10} {:>9}   {:>8}   results",
        "query type",
        format!("{la:.10}"),
        "p95",
        format!("{lb:.10}"),
        "p95",
        "ratio"
    );
    let mut ok = true;
    let mut problems = Vec::new();
    let mut rows_json = Vec::new();
    let mut log_sum = 0.0;
    let mut log_n = 0usize;
    for ta in &a.types {
        let Some(tb) = b.types.iter().find(|t| t.name == ta.name) else {
            problems.push(format!("{}: not in {lb}'s report", ta.name));
            ok = false;
            continue;
        };
        let check = check_type(ta, tb, la, lb);
        let (ma, mb) = (
            ta.latency.as_ref().map(|l| l.median_ms),
            tb.latency.as_ref().map(|l| l.median_ms),
        );
        let ratio = match (ma, mb) {
            (Some(x), Some(y)) if y > 0.0 => Some(x / y),
            _ => None,
        };
        let verdict = match &check {
            Check::Same(n) => format!("same ({n})"),
            Check::Differs(_) => "DIFFERENT".to_string(),
            Check::Failed => "FAILED".to_string(),
        };
        if let (Some(r), Check::Same(_)) = (ratio, &check) {
            log_sum += r.ln();
            log_n += 1;
        }
        println!(
            "{:<22} {:>10} {:>9}   {:>10} {:>9}   {:>8}   {}",
            ta.name,
            fmt_ms(ma),
            fmt_ms(ta.latency.as_ref().map(|l| l.p95_ms)),
            fmt_ms(mb),
            fmt_ms(tb.latency.as_ref().map(|l| l.p95_ms)),
            ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            verdict
        );
        match &check {
            Check::Same(_) => {}
            Check::Differs(d) => {
                ok = false;
                problems.push(format!("{}: results differ: {d}", ta.name));
            }
            Check::Failed => {
                ok = false;
                for (label, r) in [(la, ta), (lb, tb)] {
                    if let Some(f) = failure_text(r) {
                        problems.push(format!("{}: {label}: {f}", ta.name));
                    }
                }
            }
        }
        rows_json.push(json!({
            "type": ta.name,
            "first": ta.latency,
            "second": tb.latency,
            "ratio_median": ratio,
            "results": verdict,
        }));
    }
    let geomean = (log_n > 0).then(|| (log_sum / log_n as f64).exp());
    if let Some(g) = geomean {
        println!(
            "geometric mean of the ratios over the {log_n} types that both ran alike: {g:.2}x \
             (below 1: {la} is faster)"
        );
    }
    if !problems.is_empty() {
        println!();
        println!("{} PROBLEM(S):", problems.len());
        for p in &problems {
            println!("  {p}");
        }
    }
    if let Some(path) = json_out {
        let out = json!({
            "first": la,
            "second": lb,
            "workload": w,
            "types": rows_json,
            "geomean_ratio": geomean,
            "problems": problems,
        });
        std::fs::write(&path, format!("{out}\n"))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query_run::Failure;

    fn exec(instance: usize, rows: Vec<Vec<&str>>) -> Execution {
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .map(|r| r.into_iter().map(String::from).collect())
            .collect();
        Execution {
            instance,
            warmup: false,
            sql: format!("SELECT {instance}"),
            elapsed_ms: 1.0,
            rows: rows.len(),
            digest: crate::query_run::digest(&rows),
            result: Some(rows),
        }
    }

    fn report(executions: Vec<Execution>) -> TypeReport {
        TypeReport {
            name: "t".into(),
            ordered: true,
            latency: None,
            failure: None,
            executions,
        }
    }

    #[test]
    fn same_rows_pass_and_differences_name_the_row() {
        let a = report(vec![exec(0, vec![vec!["1", "x"]]), exec(1, vec![])]);
        assert_eq!(check_type(&a, &a.clone(), "a", "b"), Check::Same(2));
        let b = report(vec![
            exec(0, vec![vec!["1", "x"]]),
            exec(1, vec![vec!["2", "y"]]),
        ]);
        match check_type(&a, &b, "a", "b") {
            Check::Differs(d) => {
                assert!(d.contains("statement 1: a returned 0 rows"), "{d}");
                assert!(d.contains("a: (no row)") && d.contains("b: (2, y)"), "{d}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failure_is_not_a_pass() {
        let a = report(vec![exec(0, vec![])]);
        let mut b = a.clone();
        b.failure = Some(Failure {
            instance: 1,
            sql: "SELECT 1".into(),
            sqlstate: Some("0A000".into()),
            message: "not supported".into(),
            timed_out: false,
        });
        assert_eq!(check_type(&a, &b, "a", "b"), Check::Failed);
        assert!(failure_text(&b).unwrap().contains("(0A000): not supported"));
    }
}
