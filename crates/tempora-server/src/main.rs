//! `tempora`: the server binary. Opens the data directory, replays the WAL,
//! listens for PostgreSQL clients and shuts down cleanly on SIGINT/SIGTERM.
// Errors carry PostgreSQL's fields (detail, hint, position, context): a
// large Err is the price of one error type across layers, paid only on failure.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use tempora_storage::{Cluster, Engine, EngineOptions};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator. A query allocates and frees
/// many short-lived buffers (decoded pages, Arrow arrays, a ZSTD context per
/// column chunk read); glibc's malloc spent about a sixth of a one-host
/// query's CPU on them (consolidating free lists, returning large blocks to
/// the kernel and faulting them in again). See docs/performance.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Name of the superuser made when the data directory is created.
    #[arg(long, env = "TEMPORA_SUPERUSER", default_value = "postgres")]
    superuser: String,
    /// Password of that superuser, set when it has none (the first start).
    #[arg(long, env = "TEMPORA_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// How clients prove their password: scram-sha-256 or md5 (which uses
    /// SCRAM for roles whose password is kept as a SCRAM verifier).
    #[arg(long, env = "TEMPORA_AUTH_METHOD", default_value = "scram-sha-256")]
    auth_method: tempora_pgwire::AuthMethod,
    /// Let clients connecting over loopback (127.0.0.1, ::1) in without a password.
    #[arg(long, env = "TEMPORA_TRUST_LOOPBACK", default_value_t = false)]
    trust_loopback: bool,
    /// PEM certificate chain for TLS (with --tls-key); clients may then use sslmode=require.
    #[arg(long, env = "TEMPORA_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS (with --tls-cert).
    #[arg(long, env = "TEMPORA_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Memory (MiB) for decoded rows of single series kept between
    /// statements, shared by every database; 0 turns the cache off.
    #[arg(long, env = "TEMPORA_SERIES_CACHE_MB", default_value_t = 256)]
    series_cache_mb: usize,
}

/// Stack of each runtime thread.
const STACK_BYTES: usize = 64 << 20;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // Planning and evaluating a statement recurses over its expression tree;
    // a long `a + b + ...` or `UNION ALL` chain overflowed tokio's default
    // 2 MiB worker stacks and aborted the whole server. The stack is
    // reserved address space, touched only as deep as a statement goes.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(STACK_BYTES)
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

/// The login settings: the superuser made or given its password, TLS
/// loaded. Refuses a server nobody could log in to.
async fn security(args: &Args, engine: &Engine) -> Result<Arc<tempora_pgwire::Security>, String> {
    let any_password =
        tempora_sql::bootstrap_superuser(engine, &args.superuser, args.password.as_deref())
            .await
            .map_err(|e| format!("could not set up the superuser: {e}"))?;
    if !any_password && !args.trust_loopback {
        return Err(
            "no role has a password, so no client could log in: give the superuser one with \
             TEMPORA_PASSWORD (or --password), or start with --trust-loopback to let clients \
             on this machine in without one"
                .into(),
        );
    }
    let mut security = tempora_pgwire::Security::new(args.auth_method, args.trust_loopback);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        security = security.with_tls(cert, key)?;
    }
    tracing::info!(
        method = ?args.auth_method,
        trust_loopback = args.trust_loopback,
        tls = security.tls.is_some(),
        "client authentication"
    );
    Ok(Arc::new(security))
}

async fn run(args: Args) -> Result<(), String> {
    let mut options = EngineOptions::new(&args.data_dir);
    options.sync_commit = !args.async_commit;
    options.series_cache = Arc::new(tempora_storage::series_cache::SeriesCache::new(
        args.series_cache_mb.saturating_mul(1 << 20),
    ));
    let cluster = Cluster::open(
        options,
        Box::new(|engine: &Arc<Engine>| {
            engine.set_job_runner(Arc::new(tempora_sql::Refresher::new(engine)));
        }),
    )
    .await
    .map_err(|e| {
        format!(
            "could not open data directory {}: {e}",
            args.data_dir.display()
        )
    })?;
    let security = security(&args, cluster.main()).await?;
    cluster
        .sync_shared()
        .await
        .map_err(|e| format!("could not copy the roles to every database: {e}"))?;
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
    let server = tokio::spawn(tempora_pgwire::serve(
        listener,
        cluster.clone(),
        security,
        stop_rx,
    ));
    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = server.await;
    cluster
        .close()
        .await
        .map_err(|e| format!("flush at shutdown failed: {e}"))?;
    tracing::info!("shutdown complete");
    Ok(())
}
