//! `tempora-bench`: generates the TSBS "cpu-only" data set and bulk-loads it
//! into any PostgreSQL-protocol server (Tempora, PostgreSQL, TimescaleDB)
//! with parallel COPY, measuring throughput, server memory and disk usage;
//! generates TSBS's 15 cpu-only query types and times them, checking that two
//! servers return the same results. `bench/ingest.sh` and `bench/queries.sh`
//! drive it end to end.

mod compare;
mod gen;
mod load;
mod procfs;
mod queries;
mod query_compare;
mod query_run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tempora-bench",
    version,
    about = "TSBS cpu-only ingest and query benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate TSBS cpu-only rows as CSV (no header), time-major.
    Gen {
        #[command(flatten)]
        data: DataSetArgs,
        /// Time between two readings of a host (10s, 500ms, 1m, ...).
        #[arg(long, default_value = "10s")]
        interval: String,
        /// Output file (written as FILE.partial, renamed when complete); stdout if absent.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the number of rows these arguments produce and exit.
        #[arg(long)]
        rows: bool,
    },
    /// Print the DDL that `load` runs.
    Schema {
        /// Also print the create_hypertable call.
        #[arg(long)]
        hypertable: bool,
        /// Also print TSBS's index on (hostname, time DESC).
        #[arg(long)]
        index: bool,
    },
    /// Drop and create `cpu`, load a CSV file with parallel COPY, verify, report.
    Load {
        /// Server to load into.
        #[arg(long, default_value = "postgresql://postgres@127.0.0.1:5432/postgres")]
        url: String,
        /// CSV file made by `gen`.
        #[arg(long)]
        file: PathBuf,
        /// Parallel connections; each loads one contiguous slice of the file.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Make `cpu` a hypertable with 12-hour chunks (Tempora, TimescaleDB).
        #[arg(long)]
        hypertable: bool,
        /// Create TSBS's index on (hostname, time DESC) before the load, as
        /// TSBS's TimescaleDB loader does.
        #[arg(long)]
        index: bool,
        /// Server process to sample memory (every 100 ms) and CPU of, with its children.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Server data directory whose size to report after the load.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Name of this run in the output.
        #[arg(long, default_value = "server")]
        label: String,
        /// Also write the JSON report to this file.
        #[arg(long)]
        json_out: Option<PathBuf>,
        /// Seconds to wait after the load before measuring the data directory.
        #[arg(long, default_value_t = 0.0)]
        flush_wait_secs: f64,
        /// Issue CHECKPOINT after the load, before measuring the data directory (PostgreSQL).
        #[arg(long)]
        checkpoint: bool,
        /// Bytes per CopyData message (rounded down to whole lines).
        #[arg(long, default_value_t = 1 << 20)]
        block_bytes: usize,
        /// Keep retrying the first connection for this many seconds.
        #[arg(long, default_value_t = 30.0)]
        connect_timeout_secs: f64,
    },
    /// Measure a directory's size; optionally record it in a load report as
    /// `disk_after_stop`.
    Du {
        dir: PathBuf,
        /// Load report (JSON) to add the figure to.
        #[arg(long)]
        update_json: Option<PathBuf>,
    },
    /// Print load reports side by side; ratios are first / second.
    Compare {
        /// Load reports (JSON files written by `load --json-out`).
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Write all reports and the ratios to this JSON file.
        #[arg(long)]
        json_out: Option<PathBuf>,
    },
    /// Print TSBS cpu-only query statements, `type<TAB>sql` per line.
    GenQueries {
        #[command(flatten)]
        workload: WorkloadArgs,
        /// Statements per query type.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// Print the query type names and exit.
        #[arg(long)]
        list: bool,
    },
    /// Time the TSBS cpu-only query types against one server and record
    /// their results; exit with status 1 if a type failed (after writing the
    /// report).
    RunQueries {
        /// Server to query; `cpu` must hold the data `gen` wrote for the same
        /// scale, start and end.
        #[arg(long, default_value = "postgresql://postgres@127.0.0.1:5432/postgres")]
        url: String,
        /// Name of this server in the output.
        #[arg(long, default_value = "server")]
        label: String,
        #[command(flatten)]
        workload: WorkloadArgs,
        /// Untimed statements per query type, run before the timed ones.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Timed statements per query type.
        #[arg(long, default_value_t = 20)]
        count: usize,
        /// Statement to run before the queries (repeatable; e.g. CHECKPOINT).
        #[arg(long)]
        setup: Vec<String>,
        /// Give up on a statement after this many seconds (the type counts
        /// as failed and the next type runs).
        #[arg(long, default_value_t = 300.0)]
        timeout_secs: f64,
        /// Keep the normalized rows of results with at most this many rows in
        /// the report (a digest is kept for every result).
        #[arg(long, default_value_t = 2000)]
        keep_rows: usize,
        /// Write the JSON report to this file.
        #[arg(long)]
        json_out: Option<PathBuf>,
        /// Keep retrying the first connection for this many seconds.
        #[arg(long, default_value_t = 30.0)]
        connect_timeout_secs: f64,
    },
    /// Print two run-queries reports side by side (ratio first / second);
    /// exit with status 1 if a type failed or the results differ.
    CompareQueries {
        first: PathBuf,
        second: PathBuf,
        /// Write the comparison to this JSON file.
        #[arg(long)]
        json_out: Option<PathBuf>,
    },
    /// Print a TCP port on 127.0.0.1 that is free right now.
    FreePort,
}

/// The data set `gen` writes and the queries ask about.
#[derive(Debug, clap::Args)]
struct DataSetArgs {
    /// Number of hosts.
    #[arg(long, default_value_t = 100)]
    scale: u32,
    /// First timestamp (RFC 3339).
    #[arg(long, default_value = "2016-01-01T00:00:00Z")]
    start: String,
    /// End of the range, exclusive (RFC 3339).
    #[arg(long, default_value = "2016-01-02T00:00:00Z")]
    end: String,
    /// Seed of the random numbers (rows; query windows and hosts): the same
    /// arguments give the same output.
    #[arg(long, default_value_t = 123)]
    seed: u64,
}

/// The queries to generate.
#[derive(Debug, clap::Args)]
struct WorkloadArgs {
    #[command(flatten)]
    data: DataSetArgs,
    /// Comma-separated query types (default: all 15).
    #[arg(long, default_value = "")]
    types: String,
}

impl WorkloadArgs {
    fn spec(&self) -> Result<(queries::QuerySpec, Vec<queries::QueryType>), String> {
        let spec = queries::QuerySpec {
            scale: self.data.scale,
            start: gen::parse_instant(&self.data.start)?,
            end: gen::parse_instant(&self.data.end)?,
            seed: self.data.seed,
        };
        let names: Vec<&str> = self
            .types
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        let types = if names.is_empty() {
            queries::QUERY_TYPES.to_vec()
        } else {
            names
                .into_iter()
                .map(queries::QueryType::by_name)
                .collect::<Result<_, _>>()?
        };
        Ok((spec, types))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tempora-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Gen {
            data,
            interval,
            out,
            rows,
        } => {
            let spec = gen::Spec {
                scale: data.scale,
                start: gen::parse_instant(&data.start)?,
                end: gen::parse_instant(&data.end)?,
                interval_us: gen::parse_interval(&interval)?,
                seed: data.seed,
            };
            if rows {
                println!("{}", spec.rows());
                return Ok(());
            }
            gen::run(&spec, out)
        }
        Command::Schema { hypertable, index } => {
            println!("{};", gen::create_table_sql());
            if hypertable {
                println!("{};", gen::CREATE_HYPERTABLE_SQL);
            }
            if index {
                println!("{};", gen::CREATE_INDEX_SQL);
            }
            Ok(())
        }
        Command::Load {
            url,
            file,
            workers,
            hypertable,
            index,
            server_pid,
            data_dir,
            label,
            json_out,
            flush_wait_secs,
            checkpoint,
            block_bytes,
            connect_timeout_secs,
        } => {
            if block_bytes < 4096 {
                return Err("--block-bytes must be at least 4096".into());
            }
            let args = load::LoadArgs {
                url,
                file,
                workers,
                hypertable,
                index,
                server_pid,
                data_dir,
                label,
                json_out,
                flush_wait_secs,
                checkpoint,
                block_bytes,
                connect_timeout_secs,
            };
            runtime()?.block_on(load::run(args)).map(|_| ())
        }
        Command::Du { dir, update_json } => {
            let usage = procfs::disk_usage(&dir)
                .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
            println!(
                "{}",
                serde_json::to_string(&usage).map_err(|e| e.to_string())?
            );
            if let Some(path) = update_json {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let mut report: serde_json::Value = serde_json::from_str(text.trim())
                    .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
                report["disk_after_stop"] =
                    serde_json::to_value(&usage).map_err(|e| e.to_string())?;
                std::fs::write(&path, format!("{report}\n"))
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            Ok(())
        }
        Command::Compare { reports, json_out } => compare::run(&reports, json_out),
        Command::GenQueries {
            workload,
            count,
            list,
        } => {
            let (spec, types) = workload.spec()?;
            if list {
                for t in &types {
                    println!("{}", t.name);
                }
                return Ok(());
            }
            for w in spec.check(&types)? {
                eprintln!("tempora-bench: warning: {w}");
            }
            for t in &types {
                for sql in spec.generate(t, count) {
                    println!("{}\t{sql}", t.name);
                }
            }
            Ok(())
        }
        Command::RunQueries {
            url,
            label,
            workload,
            warmup,
            count,
            setup,
            timeout_secs,
            keep_rows,
            json_out,
            connect_timeout_secs,
        } => {
            let (spec, types) = workload.spec()?;
            if timeout_secs.is_nan() || timeout_secs <= 0.0 {
                return Err("--timeout-secs must be positive".into());
            }
            let args = query_run::RunArgs {
                url,
                label,
                spec,
                types,
                warmup,
                count,
                setup,
                timeout: std::time::Duration::from_secs_f64(timeout_secs),
                keep_rows,
                json_out,
                connect_timeout: std::time::Duration::from_secs_f64(connect_timeout_secs.max(0.0)),
            };
            let report = runtime()?.block_on(query_run::run(args))?;
            let failed: Vec<&str> = report
                .types
                .iter()
                .filter(|t| t.failure.is_some())
                .map(|t| t.name.as_str())
                .collect();
            if failed.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "[{}] {} query type(s) failed: {} (the report has them)",
                    report.label,
                    failed.len(),
                    failed.join(", ")
                ))
            }
        }
        Command::CompareQueries {
            first,
            second,
            json_out,
        } => {
            if query_compare::run(&first, &second, json_out)? {
                Ok(())
            } else {
                Err("a query type failed or returned different results (see above)".into())
            }
        }
        Command::FreePort => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")
                .map_err(|e| format!("cannot bind a port: {e}"))?;
            let port = listener.local_addr().map_err(|e| e.to_string())?.port();
            println!("{port}");
            Ok(())
        }
    }
}
