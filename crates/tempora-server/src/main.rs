//! `tempora`: the server binary. Opens the data directory, replays the WAL,
//! listens for PostgreSQL clients and shuts down cleanly on SIGINT/SIGTERM.
// Errors carry PostgreSQL's fields (detail, hint, position, context): a
// large Err is the price of one error type across layers, paid only on failure.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use tempora_storage::{Engine, EngineOptions};
use tracing_subscriber::EnvFilter;

/// Tempora: a time-series SQL database that speaks PostgreSQL and TimescaleDB's SQL.
#[derive(Debug, Parser)]
#[command(name = "tempora", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "TEMPORA_HOST", default_value = "127.0.0.1")]
    host: String,
    /// TCP port to listen on.
    #[arg(long, env = "TEMPORA_PORT", default_value_t = 5432)]
    port: u16,
    /// Directory holding the catalog, WAL and chunk files.
    #[arg(long, env = "TEMPORA_DATA_DIR", default_value = "./tempora-data")]
    data_dir: PathBuf,
    /// Log filter: error, warn, info, debug, trace (or a tracing directive).
    #[arg(long, env = "TEMPORA_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Acknowledge commits before the WAL is synced (like synchronous_commit = off).
    #[arg(long, env = "TEMPORA_ASYNC_COMMIT", default_value_t = false)]
    async_commit: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tempora: could not start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run(args: Args) -> Result<(), String> {
    let mut options = EngineOptions::new(&args.data_dir);
    options.sync_commit = !args.async_commit;
    let engine: Arc<Engine> = Engine::open(options).await.map_err(|e| {
        format!(
            "could not open data directory {}: {e}",
            args.data_dir.display()
        )
    })?;
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("could not listen on {addr}: {e}"))?;
    tracing::info!(
        %addr,
        data_dir = %args.data_dir.display(),
        "tempora {} listening",
        env!("CARGO_PKG_VERSION")
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let flusher = tokio::spawn(engine.clone().run_flusher(stop_rx.clone()));
    let compactor = tokio::spawn(engine.clone().run_compactor(stop_rx.clone()));
    engine.set_job_runner(Arc::new(tempora_sql::Refresher::new(engine.clone())));
    let scheduler = tokio::spawn(engine.clone().run_scheduler(stop_rx.clone()));
    let server = tokio::spawn(tempora_pgwire::serve(listener, engine.clone(), stop_rx));
    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = flusher.await;
    let _ = scheduler.await;
    // A merge cut short leaves only an unlisted file, removed at the next start.
    compactor.abort();
    engine
        .close()
        .await
        .map_err(|e| format!("flush at shutdown failed: {e}"))?;
    tracing::info!("shutdown complete");
    Ok(())
}
