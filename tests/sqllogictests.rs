//! Runs every `sql/**/*.slt` file against one Tempora server, twice: once
//! through the extended query protocol (prepare + bind/execute with binary
//! results, as drivers do) and once through the simple query protocol.
//!
//! Usage:
//!   cargo test -p tempora-server --test sqllogictests
//!   SLT_FILTER=time_bucket cargo test -p tempora-server --test sqllogictests
//!   cargo test -p tempora-server --test sqllogictests -- hypertable --label mylabel
//!   SLT_PROTOCOL=simple cargo test -p tempora-server --test sqllogictests
//!   TEMPORA_SLT_URL='host=127.0.0.1 port=5432 user=postgres dbname=postgres' \
//!       cargo test -p tempora-server --test sqllogictests   # e.g. real TimescaleDB
//!
//! Every record of a file runs even after a failure (SLT_FAIL_FAST=1 stops a
//! file at its first failure); at most SLT_MAX_ERRORS (20) failures are
//! printed per file; a record gets SLT_RECORD_TIMEOUT_SECS (60) seconds.
//!
//! Labels for `skipif` / `onlyif`: `tempora` (our server) or `timescaledb`
//! (external server via TEMPORA_SLT_URL), plus `extended` or `simple` for the
//! protocol of the current pass, plus any `--label NAME`.
//!
//! Error expectations: `statement error (42P01)` matches the SQLSTATE; an
//! inline regex matches the error text, which reads
//! `db error: ERROR: <message> (SQLSTATE <code>)` followed by optional
//! `DETAIL: ...` / `HINT: ...` lines.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Record, Runner};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use support::pgtext::{self, Raw};
use support::TestServer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Extended,
    Simple,
}

impl Protocol {
    fn label(self) -> &'static str {
        match self {
            Protocol::Extended => "extended",
            Protocol::Simple => "simple",
        }
    }
}

/// An error of the database (or of the connection), formatted for matching.
#[derive(Debug)]
struct EngineError {
    message: String,
    sqlstate: Option<String>,
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EngineError {}

impl From<tokio_postgres::Error> for EngineError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            let code = db.code().code().to_string();
            let mut message = format!(
                "db error: {}: {} (SQLSTATE {})",
                db.severity(),
                db.message(),
                code
            );
            if let Some(detail) = db.detail() {
                message.push_str("\nDETAIL: ");
                message.push_str(detail);
            }
            if let Some(hint) = db.hint() {
                message.push_str("\nHINT: ");
                message.push_str(hint);
            }
            EngineError {
                message,
                sqlstate: Some(code),
            }
        } else {
            EngineError {
                message: support::error_chain(&e),
                sqlstate: None,
            }
        }
    }
}

/// One connection, speaking either protocol.
struct Engine {
    client: Option<Client>,
    protocol: Protocol,
    connection: Option<tokio::task::JoinHandle<()>>,
}

impl Engine {
    async fn connect(url: &str, protocol: Protocol) -> Result<Engine, EngineError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Engine {
            client: Some(client),
            protocol,
            connection: Some(connection),
        })
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("engine already shut down")
    }

    async fn run_extended(
        &mut self,
        sql: &str,
    ) -> Result<DBOutput<DefaultColumnType>, EngineError> {
        let stmt = self.client().prepare(sql).await?;
        if stmt.columns().is_empty() {
            let n = self.client().execute(&stmt, &[]).await?;
            return Ok(DBOutput::StatementComplete(n));
        }
        let rows = self.client().query(&stmt, &[]).await?;
        let types = stmt
            .columns()
            .iter()
            .map(|c| column_type(c.type_()))
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut cells = Vec::with_capacity(row.len());
            for (i, col) in row.columns().iter().enumerate() {
                let raw: Raw = row.try_get(i)?;
                cells.push(cell(raw.0.map(|bytes| pgtext::to_text(col.type_(), bytes))));
            }
            out.push(cells);
        }
        Ok(DBOutput::Rows { types, rows: out })
    }

    async fn run_simple(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, EngineError> {
        let messages = self.client().simple_query(sql).await?;
        let mut columns: Option<usize> = None;
        let mut rows = Vec::new();
        let mut count = 0;
        for m in messages {
            match m {
                SimpleQueryMessage::RowDescription(cols) => columns = Some(cols.len()),
                SimpleQueryMessage::Row(row) => {
                    columns = Some(row.len());
                    rows.push(
                        (0..row.len())
                            .map(|i| cell(row.get(i).map(str::to_string)))
                            .collect(),
                    );
                }
                SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(count),
        })
    }
}

/// sqllogictest conventions: NULL is `NULL`, the empty string is `(empty)`.
fn cell(v: Option<String>) -> String {
    match v {
        None => "NULL".to_string(),
        Some(s) if s.is_empty() => "(empty)".to_string(),
        Some(s) => s,
    }
}

fn column_type(ty: &Type) -> DefaultColumnType {
    match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 => DefaultColumnType::Integer,
        Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => DefaultColumnType::FloatingPoint,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DefaultColumnType::Text,
        _ => DefaultColumnType::Any,
    }
}

#[async_trait]
impl AsyncDB for Engine {
    type Error = EngineError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        match self.protocol {
            Protocol::Extended => self.run_extended(sql).await,
            Protocol::Simple => self.run_simple(sql).await,
        }
    }

    async fn shutdown(&mut self) {
        // Dropping the client sends Terminate; then the connection task ends.
        drop(self.client.take());
        if let Some(task) = self.connection.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    fn engine_name(&self) -> &str {
        ""
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await
    }

    fn error_sql_state(err: &Self::Error) -> Option<String> {
        err.sqlstate.clone()
    }
}

struct Args {
    labels: Vec<String>,
    filters: Vec<String>,
    exact: bool,
    list: bool,
    ignored: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        labels: Vec::new(),
        filters: Vec::new(),
        exact: false,
        list: false,
        ignored: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--label" {
            if let Some(l) = it.next() {
                args.labels.push(l);
            }
        } else if let Some(l) = a.strip_prefix("--label=") {
            args.labels.push(l.to_string());
        } else if a == "--exact" {
            args.exact = true;
        } else if a == "--list" {
            args.list = true;
        } else if a == "--ignored" {
            args.ignored = true;
        } else if a == "--format" || a == "--test-threads" || a == "--skip" || a == "--color" {
            // libtest options with a value: accepted and ignored.
            let _ = it.next();
        } else if a.starts_with('-') {
            // Other libtest flags (--nocapture, --quiet, ...): ignored.
        } else {
            args.filters.push(a);
        }
    }
    args
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn collect_slt(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_slt(&p, out);
        } else if p.extension().is_some_and(|x| x == "slt") {
            out.push(p);
        }
    }
}

/// Runs every record of `file`, going on after a failing record (unless
/// `fail_fast`), and returns the failures as text. A record that does not
/// finish within `record_timeout` ends the file.
async fn run_records<M>(
    runner: &mut Runner<Engine, M>,
    file: &Path,
    record_timeout: Duration,
    fail_fast: bool,
) -> Vec<String>
where
    M: sqllogictest::MakeConnection<Conn = Engine>,
{
    let records = match sqllogictest::parse_file::<DefaultColumnType>(file) {
        Ok(r) => r,
        Err(e) => return vec![format!("cannot parse {}: {e}", file.display())],
    };
    let mut errors = Vec::new();
    for record in records {
        if let Record::Halt { .. } = record {
            break;
        }
        let loc = match &record {
            Record::Statement { loc, .. } | Record::Query { loc, .. } => Some(loc.to_string()),
            _ => None,
        };
        match tokio::time::timeout(record_timeout, runner.run_async(record)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                errors.push(e.display(false).to_string());
                if fail_fast {
                    break;
                }
            }
            Err(_) => {
                errors.push(format!(
                    "no answer within {record_timeout:?} (SLT_RECORD_TIMEOUT_SECS) at {}; \
                     skipping the rest of the file",
                    loc.unwrap_or_default()
                ));
                break;
            }
        }
    }
    errors
}

fn main() -> ExitCode {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let root = workspace_root();
    let mut files = Vec::new();
    collect_slt(&root.join("sql"), &mut files);
    files.sort();
    let rel = |p: &Path| {
        p.strip_prefix(&root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    if files.is_empty() {
        println!("no .slt files under {}", root.join("sql").display());
        println!("0 passed, 1 failed");
        return ExitCode::FAILURE;
    }

    let env_filter = std::env::var("SLT_FILTER").ok().filter(|f| !f.is_empty());
    let filtered = env_filter.is_some() || !args.filters.is_empty();
    files.retain(|f| {
        let name = rel(f);
        env_filter
            .as_ref()
            .is_none_or(|flt| name.contains(flt.as_str()))
            && (args.filters.is_empty()
                || args.filters.iter().any(|flt| {
                    if args.exact {
                        name == *flt
                    } else {
                        name.contains(flt.as_str())
                    }
                }))
    });

    if args.list {
        for f in &files {
            println!("{}: test", rel(f));
        }
        return ExitCode::SUCCESS;
    }
    if args.ignored || files.is_empty() {
        if filtered && !args.ignored {
            println!("warning: no .slt file matches the filter");
        }
        println!("0 passed, 0 failed");
        return ExitCode::SUCCESS;
    }

    let protocols = match std::env::var("SLT_PROTOCOL").as_deref() {
        Ok("extended") => vec![Protocol::Extended],
        Ok("simple") => vec![Protocol::Simple],
        _ => vec![Protocol::Extended, Protocol::Simple],
    };
    let env_num = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let record_timeout = Duration::from_secs(env_num("SLT_RECORD_TIMEOUT_SECS", 60));
    let max_errors = env_num("SLT_MAX_ERRORS", 20) as usize;
    let fail_fast = std::env::var_os("SLT_FAIL_FAST").is_some();

    let (mut server, url, target_label) = match std::env::var("TEMPORA_SLT_URL") {
        Ok(url) if !url.is_empty() => {
            println!("running against external server {url}");
            (None, url, "timescaledb")
        }
        _ => {
            // A server that does not come up fails every file (the panic
            // message, with the server log, is printed on stderr).
            let server = match tokio::spawn(TestServer::start()).await {
                Ok(server) => server,
                Err(_) => {
                    println!("FAIL: the tempora server did not start (see above)");
                    println!("0 passed, {} failed", files.len() * protocols.len());
                    return ExitCode::FAILURE;
                }
            };
            let url = server.connection_string();
            println!(
                "started tempora on port {} (log: {})",
                server.port(),
                server.log_path().display()
            );
            (Some(server), url, "tempora")
        }
    };

    let mut passed = 0usize;
    let mut failed = 0usize;
    for protocol in &protocols {
        for file in &files {
            let name = rel(file);
            let started = Instant::now();
            let url2 = url.clone();
            let protocol = *protocol;
            let mut runner = Runner::new(move || {
                let url = url2.clone();
                async move { Engine::connect(&url, protocol).await }
            });
            runner.add_label(target_label);
            runner.add_label(protocol.label());
            for l in &args.labels {
                runner.add_label(l);
            }
            let errors = run_records(&mut runner, file, record_timeout, fail_fast).await;
            runner.shutdown_async().await;
            drop(runner);
            let secs = started.elapsed().as_secs_f64();
            let mut failure = if errors.is_empty() {
                None
            } else {
                let mut text = format!("{} failing record(s)", errors.len());
                for e in errors.iter().take(max_errors) {
                    text.push('\n');
                    text.push_str(e);
                }
                if errors.len() > max_errors {
                    text.push_str(&format!(
                        "\n... and {} more (SLT_MAX_ERRORS)",
                        errors.len() - max_errors
                    ));
                }
                Some(text)
            };
            if let Some(s) = server.as_mut() {
                if !s.is_running() {
                    let msg = format!(
                        "the server died while running this file\n--- server log (tail) ---\n{}",
                        s.log_tail(100)
                    );
                    failure = Some(match failure {
                        Some(f) => format!("{f}\n{msg}"),
                        None => msg,
                    });
                    s.restart().await;
                }
            }
            match failure {
                None => {
                    passed += 1;
                    println!("PASS [{}] {name} ({secs:.2}s)", protocol.label());
                }
                Some(f) => {
                    failed += 1;
                    println!("FAIL [{}] {name} ({secs:.2}s)", protocol.label());
                    for line in f.lines() {
                        println!("    {line}");
                    }
                }
            }
        }
    }
    if failed > 0 {
        if let Some(s) = &server {
            println!("server log: {}", s.log_path().display());
        }
    }
    drop(server);
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
