//! `run-queries`: times the TSBS query types against one server.
//!
//! Per type, `warmup` statements run untimed and then `count` timed ones, each
//! a different instance from `queries` (the same instances for the same seed,
//! on every server). One connection, one statement at a time, the simple-query
//! protocol (as psql sends them); the clock runs from sending the statement to
//! receiving its last row. Every result is normalized (floats to 6
//! significant digits, rows sorted when the statement's ORDER BY does not fix
//! their order) and kept as a digest, and as rows when there are at most
//! `keep_rows` of them, so that `compare-queries` can check that two servers
//! returned the same answers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::load::{connect, db_error};
use crate::queries::{QuerySpec, QueryType};

#[derive(Debug, Clone)]
pub struct RunArgs {
    pub url: String,
    pub label: String,
    pub spec: QuerySpec,
    pub types: Vec<QueryType>,
    pub warmup: usize,
    pub count: usize,
    /// Statements run once before any query (untimed by the report's figures).
    pub setup: Vec<String>,
    pub timeout: Duration,
    pub keep_rows: usize,
    pub json_out: Option<PathBuf>,
    pub connect_timeout: Duration,
}

/// Settings the statements were generated with; two reports are comparable
/// only if these are equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    pub scale: u32,
    pub start: String,
    pub end: String,
    pub seed: u64,
    pub warmup: usize,
    pub count: usize,
}

/// One statement run before the queries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetupStep {
    pub sql: String,
    pub elapsed_ms: f64,
}

/// One execution of one statement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Execution {
    /// Position among the type's statements (warm-ups first).
    pub instance: usize,
    pub warmup: bool,
    pub sql: String,
    pub elapsed_ms: f64,
    pub rows: usize,
    /// FNV-1a 64 of the normalized rows, as 16 hex digits.
    pub digest: String,
    /// The normalized rows, if there were at most `keep_rows` of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Vec<Vec<String>>>,
}

/// How a statement of a type failed; the type's remaining statements are
/// not run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub instance: usize,
    pub sql: String,
    /// SQLSTATE, when the server sent an error.
    pub sqlstate: Option<String>,
    pub message: String,
    /// Whether the client gave up waiting (`--timeout-secs`).
    pub timed_out: bool,
}

/// Latency figures of the timed executions, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub n: usize,
    pub median_ms: f64,
    pub p95_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TypeReport {
    pub name: String,
    pub ordered: bool,
    pub latency: Option<Latency>,
    pub failure: Option<Failure>,
    pub executions: Vec<Execution>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryReport {
    pub label: String,
    pub server_version: Option<String>,
    pub started_at: String,
    pub workload: Workload,
    pub setup: Vec<SetupStep>,
    pub types: Vec<TypeReport>,
}

/// The text of one result value, normalized so that two servers' answers
/// compare equal when they agree to 6 significant digits.
pub fn normalize_value(v: Option<&str>) -> String {
    let Some(text) = v else {
        return "NULL".into();
    };
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && looks_numeric(text) => {
            let x = if x == 0.0 { 0.0 } else { x }; // -0 is 0
            format!("{x:.5e}")
        }
        _ => text.to_string(),
    }
}

/// Rust also parses "inf", "nan" and the like; only plain decimal numbers are
/// rounded.
fn looks_numeric(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
}

/// FNV-1a 64 of the rows: fields separated by 0x1f, rows ended by 0x1e.
pub fn digest(rows: &[Vec<String>]) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for row in rows {
        for (i, field) in row.iter().enumerate() {
            if i > 0 {
                eat(&[0x1f]);
            }
            eat(field.as_bytes());
        }
        eat(&[0x1e]);
    }
    format!("{h:016x}")
}

/// Median (mean of the middle two for an even count) and nearest-rank p95.
pub fn latency(mut ms: Vec<f64>) -> Option<Latency> {
    if ms.is_empty() {
        return None;
    }
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median = if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    };
    let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
    Some(Latency {
        n,
        median_ms: median,
        p95_ms: ms[rank - 1],
        min_ms: ms[0],
        max_ms: ms[n - 1],
        mean_ms: ms.iter().sum::<f64>() / n as f64,
    })
}

enum Outcome {
    Rows(Vec<Vec<String>>, f64),
    Failed(Failure),
}

/// Runs one statement, returning its rows (normalized, not yet sorted) and
/// the time to the last row.
async fn execute(client: &Client, sql: &str, instance: usize, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let result = tokio::time::timeout(timeout, client.simple_query(sql)).await;
    let elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    let failure = |sqlstate: Option<String>, message: String, timed_out: bool| {
        Outcome::Failed(Failure {
            instance,
            sql: sql.to_string(),
            sqlstate,
            message,
            timed_out,
        })
    };
    match result {
        Err(_) => {
            // Ask the server to stop; the caller reconnects either way.
            let _ = client.cancel_token().cancel_query(NoTls).await;
            failure(
                None,
                format!("no answer within {} s", timeout.as_secs_f64()),
                true,
            )
        }
        Ok(Err(e)) => match e.as_db_error() {
            Some(db) => failure(
                Some(db.code().code().to_string()),
                db.message().to_string(),
                false,
            ),
            None => failure(None, e.to_string(), false),
        },
        Ok(Ok(messages)) => {
            let rows = messages
                .iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => Some(
                        (0..r.len())
                            .map(|i| normalize_value(r.get(i)))
                            .collect::<Vec<_>>(),
                    ),
                    _ => None,
                })
                .collect();
            Outcome::Rows(rows, elapsed_ms)
        }
    }
}

async fn server_version(client: &Client) -> Option<String> {
    let messages = client.simple_query("SHOW server_version").await.ok()?;
    messages.into_iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    })
}

/// Opens a session with the settings every run uses: UTC, so that both
/// servers print timestamps alike.
async fn open(args: &RunArgs) -> Result<Client, String> {
    let client = connect(&args.url, args.connect_timeout).await?;
    client
        .batch_execute("SET TimeZone = 'UTC'")
        .await
        .map_err(|e| db_error(&format!("[{}] SET TimeZone", args.label), e))?;
    Ok(client)
}

async fn run_type(
    args: &RunArgs,
    client: &mut Client,
    t: &QueryType,
) -> Result<TypeReport, String> {
    let statements = args.spec.generate(t, args.warmup + args.count);
    let mut executions = Vec::with_capacity(statements.len());
    let mut failure = None;
    for (instance, sql) in statements.into_iter().enumerate() {
        match execute(client, &sql, instance, args.timeout).await {
            Outcome::Rows(mut rows, elapsed_ms) => {
                if !t.ordered() {
                    rows.sort();
                }
                executions.push(Execution {
                    instance,
                    warmup: instance < args.warmup,
                    digest: digest(&rows),
                    rows: rows.len(),
                    result: (rows.len() <= args.keep_rows).then_some(rows),
                    sql,
                    elapsed_ms,
                });
            }
            Outcome::Failed(f) => {
                if f.timed_out || client.is_closed() {
                    *client = open(args).await?;
                }
                failure = Some(f);
                break;
            }
        }
    }
    let timed: Vec<f64> = executions
        .iter()
        .filter(|e| !e.warmup)
        .map(|e| e.elapsed_ms)
        .collect();
    Ok(TypeReport {
        name: t.name.to_string(),
        ordered: t.ordered(),
        latency: if failure.is_none() {
            latency(timed)
        } else {
            None
        },
        failure,
        executions,
    })
}

pub async fn run(args: RunArgs) -> Result<QueryReport, String> {
    for w in args.spec.check(&args.types)? {
        eprintln!("[{}] warning: {w}", args.label);
    }
    let mut client = open(&args).await?;
    let version = server_version(&client).await;
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut setup = Vec::new();
    for sql in &args.setup {
        let start = Instant::now();
        client
            .batch_execute(sql)
            .await
            .map_err(|e| db_error(&format!("[{}] setup {sql:?}", args.label), e))?;
        let elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
        eprintln!(
            "[{}] setup {:>10.1} ms  {}",
            args.label,
            elapsed_ms,
            one_line(sql)
        );
        setup.push(SetupStep {
            sql: sql.clone(),
            elapsed_ms,
        });
    }
    let mut types = Vec::new();
    for t in &args.types {
        let report = run_type(&args, &mut client, t).await?;
        print_type(&args.label, &report);
        types.push(report);
    }
    let report = QueryReport {
        label: args.label.clone(),
        server_version: version,
        started_at,
        workload: Workload {
            scale: args.spec.scale,
            start: args.spec.start.to_rfc3339(),
            end: args.spec.end.to_rfc3339(),
            seed: args.spec.seed,
            warmup: args.warmup,
            count: args.count,
        },
        setup,
        types,
    };
    if let Some(path) = &args.json_out {
        let json = serde_json::to_string(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, format!("{json}\n"))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(report)
}

fn one_line(sql: &str) -> String {
    let s: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 100 {
        format!("{}...", s.chars().take(97).collect::<String>())
    } else {
        s
    }
}

fn print_type(label: &str, r: &TypeReport) {
    match (&r.latency, &r.failure) {
        (_, Some(f)) => eprintln!(
            "[{label}] {:<22} FAILED at statement {}: {}{}\n    {}",
            r.name,
            f.instance,
            f.sqlstate
                .as_deref()
                .map(|s| format!("{s}: "))
                .unwrap_or_default(),
            f.message,
            f.sql
        ),
        (Some(l), None) => eprintln!(
            "[{label}] {:<22} median {:>9.2} ms  p95 {:>9.2} ms  ({} timed, {} rows in the last)",
            r.name,
            l.median_ms,
            l.p95_ms,
            l.n,
            r.executions.last().map_or(0, |e| e.rows)
        ),
        (None, None) => eprintln!("[{label}] {:<22} nothing timed", r.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_normalized() {
        assert_eq!(normalize_value(None), "NULL");
        assert_eq!(normalize_value(Some("host_7")), "host_7");
        assert_eq!(
            normalize_value(Some("2016-01-01 00:00:00+00")),
            "2016-01-01 00:00:00+00"
        );
        assert_eq!(normalize_value(Some("90")), normalize_value(Some("90.0")));
        assert_eq!(
            normalize_value(Some("45.333333333333336")),
            normalize_value(Some("45.33333333333333"))
        );
        assert_ne!(
            normalize_value(Some("45.3333")),
            normalize_value(Some("45.3334"))
        );
        assert_eq!(normalize_value(Some("-0")), normalize_value(Some("0")));
        assert_eq!(normalize_value(Some("Infinity")), "Infinity");
        assert_eq!(normalize_value(Some("inf")), "inf");
    }

    #[test]
    fn digests_see_field_boundaries() {
        let a = vec![vec!["ab".to_string(), "c".to_string()]];
        let b = vec![vec!["a".to_string(), "bc".to_string()]];
        assert_ne!(digest(&a), digest(&b));
        assert_eq!(digest(&a), digest(&a.clone()));
        assert_ne!(digest(&[]), digest(&[vec![]]));
    }

    #[test]
    fn median_and_p95() {
        assert!(latency(vec![]).is_none());
        let l = latency(vec![3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            (l.median_ms, l.p95_ms, l.min_ms, l.max_ms),
            (2.0, 3.0, 1.0, 3.0)
        );
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        let l = latency(twenty).unwrap();
        assert_eq!(l.median_ms, 10.5);
        assert_eq!(l.p95_ms, 19.0);
        assert_eq!(l.mean_ms, 10.5);
    }
}
