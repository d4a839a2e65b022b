//! Shared harness of the end-to-end tests: runs the real `tempora` binary
//! on a free loopback port with a fresh data directory, and talks to it
//! through tokio-postgres and the real `psql`.
//!
//! Include it from a test target with
//! `#[path = "../support/mod.rs"] mod support;` (adjust the relative path).
//!
//! Environment knobs:
//! - `TEMPORA_TEST_LOG_LEVEL`: `--log-level` passed to the server (default `info`).
//! - `TEMPORA_TEST_KEEP_DATA=1`: keep the temporary directory (data + log)
//!   after the test and print where it is.

#![allow(dead_code)]

pub mod pgtext;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio_postgres::{Client, Config, NoTls};

/// How long the server gets to accept a real PostgreSQL connection.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server gets to exit after SIGTERM.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one `psql` invocation may take.
pub const PSQL_TIMEOUT: Duration = Duration::from_secs(60);

/// Path of the binary under test (built by cargo for this package's tests).
pub fn tempora_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tempora")
}

/// Asks the OS for a free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// How the server is told its settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// `--host 127.0.0.1 --port P --data-dir D --log-level L`
    Args,
    /// `TEMPORA_HOST`, `TEMPORA_PORT`, `TEMPORA_DATA_DIR`, `TEMPORA_LOG_LEVEL`
    Env,
}

/// A running (or stopped) `tempora` process with its own data directory.
pub struct TestServer {
    dir: Option<TempDir>,
    root: PathBuf,
    port: u16,
    child: Option<Child>,
    starts: u32,
    launch: Launch,
    /// Arguments after the usual ones (see [`TestServer::start_args`]).
    extra_args: Vec<String>,
    /// Set when a panic message already carries the log (Drop won't repeat it).
    log_in_panic: bool,
}

/// What a `psql` run printed.
#[derive(Debug)]
pub struct PsqlOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl PsqlOutput {
    /// Panics with both streams unless psql exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "psql failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

impl TestServer {
    /// Spawns the server on a free port with a fresh data directory and
    /// waits until it accepts a PostgreSQL connection.
    pub async fn start() -> TestServer {
        Self::start_with(Launch::Args).await
    }

    /// Like [`start`](Self::start), passing the settings as given by `launch`
    /// (restarts use the same way).
    pub async fn start_with(launch: Launch) -> TestServer {
        Self::start_prepared(launch, |_| {}).await
    }

    /// Like [`start_with`](Self::start_with), running `prepare` on the (empty)
    /// data directory before the server first starts, e.g. to mount a file
    /// system there.
    pub async fn start_prepared(launch: Launch, prepare: impl FnOnce(&Path)) -> TestServer {
        Self::start_full(launch, prepare, vec![]).await
    }

    /// Starts the server with `args` instead of `--trust-loopback` (which
    /// lets the other tests' clients in without a password): for tests of
    /// passwords and TLS. Waits for the port to accept connections only.
    pub async fn start_args(args: &[&str]) -> TestServer {
        let args = args.iter().map(|a| a.to_string()).collect();
        Self::start_full(Launch::Args, |_| {}, args).await
    }

    async fn start_full(
        launch: Launch,
        prepare: impl FnOnce(&Path),
        extra_args: Vec<String>,
    ) -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("tempora-test-")
            .tempdir()
            .expect("create temp dir");
        let root = dir.path().to_path_buf();
        fs::create_dir_all(root.join("data")).expect("create data dir");
        prepare(&root.join("data"));
        let mut server = TestServer {
            dir: Some(dir),
            root,
            port: free_port(),
            child: None,
            starts: 0,
            launch,
            extra_args,
            log_in_panic: false,
        };
        server.spawn();
        server.wait_ready().await;
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory given to `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The file receiving the server's stderr and stdout (all incarnations).
    pub fn log_path(&self) -> PathBuf {
        self.root.join("tempora.log")
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("<no log: {e}>"))
    }

    /// The last `n` lines of the server log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is not running").id()
    }

    /// A libpq-style connection string for this server.
    pub fn connection_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=10",
            self.port
        )
    }

    pub fn config(&self) -> Config {
        let mut c = Config::new();
        c.host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(10));
        c
    }

    /// Connects with tokio-postgres; the connection task is spawned.
    pub async fn try_connect(&self) -> Result<Client, tokio_postgres::Error> {
        self.try_connect_to("postgres").await
    }

    /// Connects to database `dbname` with tokio-postgres.
    pub async fn try_connect_to(&self, dbname: &str) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = self.config().dbname(dbname).connect(NoTls).await?;
        tokio::spawn(async move {
            // Errors here surface on the client side as closed-connection errors.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Connects with tokio-postgres, panicking (with the server log) on failure.
    pub async fn connect(&self) -> Client {
        match self.try_connect().await {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot connect to tempora on port {}: {}\n--- server log (tail) ---\n{}",
                self.port,
                error_chain(&e),
                self.log_tail(200)
            ),
        }
    }

    /// True while the server process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// Kills the server with SIGKILL (`kill -9`) and reaps it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("kill9: server is not running");
        let _ = child.kill();
        let _ = child.wait();
        self.note("killed with SIGKILL");
    }

    /// Sends SIGTERM and waits for the process to exit; returns its status.
    /// Panics (after a SIGKILL) if it does not exit within SHUTDOWN_TIMEOUT.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_with("TERM")
    }

    /// Like [`stop`](Self::stop) with SIGINT (what Ctrl-C sends).
    pub fn interrupt(&mut self) -> ExitStatus {
        self.stop_with("INT")
    }

    fn stop_with(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("stop: server is not running");
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {pid} failed");
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for server") {
                self.note(&format!("exited after SIG{signal}: {status}"));
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tempora did not exit within {:?} of SIG{signal}\n--- server log (tail) ---\n{}",
                    SHUTDOWN_TIMEOUT,
                    self.log_tail(200)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again on the same port and data directory (after
    /// `kill9()` or `stop()`) and waits until it accepts connections.
    pub async fn restart(&mut self) {
        if self.is_running() {
            panic!("restart(): the server is still running; call kill9() or stop() first");
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        self.spawn();
        self.wait_ready().await;
    }

    /// Like [`restart`](Self::restart) with `args` in place of the ones
    /// the server was started with (see [`start_args`](Self::start_args)).
    pub async fn restart_with_args(&mut self, args: &[&str]) {
        self.extra_args = args.iter().map(|a| a.to_string()).collect();
        self.restart().await;
    }

    fn note(&self, what: &str) {
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
        {
            let _ = writeln!(f, "===== [test harness] tempora {what} =====");
        }
    }

    fn spawn(&mut self) {
        self.starts += 1;
        self.note(&format!(
            "start #{} on 127.0.0.1:{} (data dir {})",
            self.starts,
            self.port,
            self.data_dir().display()
        ));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open server log");
        let level = std::env::var("TEMPORA_TEST_LOG_LEVEL").unwrap_or_else(|_| "info".to_string());
        let mut cmd = Command::new(tempora_bin());
        cmd.env_remove("TEMPORA_HOST")
            .env_remove("TEMPORA_PORT")
            .env_remove("TEMPORA_DATA_DIR")
            .env_remove("TEMPORA_LOG_LEVEL")
            .env_remove("TEMPORA_PASSWORD")
            .env_remove("TEMPORA_TRUST_LOOPBACK")
            .env_remove("TEMPORA_AUTH_METHOD");
        match self.launch {
            Launch::Args => {
                if !self.extra_args.iter().any(|a| a == "--host") {
                    cmd.arg("--host").arg("127.0.0.1");
                }
                cmd.arg("--port")
                    .arg(self.port.to_string())
                    .arg("--data-dir")
                    .arg(self.data_dir());
                if !self.extra_args.iter().any(|a| a == "--log-level") {
                    cmd.arg("--log-level").arg(level);
                }
                if self.extra_args.is_empty() {
                    cmd.arg("--trust-loopback");
                }
                cmd.args(&self.extra_args);
            }
            Launch::Env => {
                cmd.env("TEMPORA_HOST", "127.0.0.1")
                    .env("TEMPORA_PORT", self.port.to_string())
                    .env("TEMPORA_DATA_DIR", self.data_dir())
                    .env("TEMPORA_LOG_LEVEL", level)
                    .env("TEMPORA_TRUST_LOOPBACK", "true");
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", tempora_bin()));
        self.child = Some(child);
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut last_error: String;
        let mut port_retries = 0;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .expect("server process")
                .try_wait()
                .expect("try_wait")
            {
                let log = self.log();
                // free_port() released the port before the server bound it,
                // and another test's server took it meanwhile: pick another.
                let this_start = log.rsplit("[test harness] tempora start").next();
                if this_start.is_some_and(|l| l.contains("Address already in use"))
                    && port_retries < 5
                {
                    port_retries += 1;
                    self.port = free_port();
                    self.spawn();
                    continue;
                }
                self.child = None;
                self.log_in_panic = true;
                panic!("tempora exited during startup ({status})\n--- server log ---\n{log}");
            }
            let addr = ("127.0.0.1", self.port);
            match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
                .await
            {
                // Without trust, a login needs what the test knows.
                Ok(Ok(_)) if !self.extra_args.is_empty() => return,
                Ok(Ok(_)) => {
                    match tokio::time::timeout(Duration::from_secs(5), self.try_connect()).await {
                        Ok(Ok(_client)) => return,
                        Ok(Err(e)) => last_error = format!("postgres connect: {}", error_chain(&e)),
                        Err(_) => last_error = "postgres connect: timed out".into(),
                    }
                }
                Ok(Err(e)) => last_error = format!("tcp connect: {e}"),
                Err(_) => last_error = "tcp connect: timed out".into(),
            }
            if Instant::now() > deadline {
                let log = self.log();
                if let Some(mut c) = self.child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                self.log_in_panic = true;
                panic!(
                    "tempora did not accept a PostgreSQL connection on port {} within {:?} \
                     (last error: {last_error})\n--- server log ---\n{log}",
                    self.port, STARTUP_TIMEOUT
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn psql_command(&self) -> Command {
        let mut cmd = Self::psql_clean();
        cmd.args(["-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1"]);
        cmd
    }

    /// Runs psql against `conninfo` (a libpq connection string naming host,
    /// port, user, password, sslmode...) with `args`.
    pub fn psql_conninfo(&self, conninfo: &str, args: &[&str]) -> PsqlOutput {
        let mut cmd = Self::psql_clean();
        cmd.args(["-v", "ON_ERROR_STOP=1", "-d", conninfo])
            .args(args);
        run_with_timeout(cmd, None, PSQL_TIMEOUT)
    }

    /// psql without the caller's environment or psqlrc.
    fn psql_clean() -> Command {
        let mut cmd = Command::new("psql");
        cmd.arg("-X");
        for var in [
            "PGHOST",
            "PGHOSTADDR",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
            "PGPASSWORD",
            "PGPASSFILE",
            "PGSERVICE",
            "PGOPTIONS",
            "PGTZ",
            "PGDATESTYLE",
            "PSQLRC",
            "PGCLIENTENCODING",
        ] {
            cmd.env_remove(var);
        }
        // "prefer" makes psql send an SSLRequest first, which must be answered 'N'.
        cmd.env("PGSSLMODE", "prefer")
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PAGER", "")
            .env("LC_ALL", "C.UTF-8");
        cmd
    }

    /// Runs `psql -X -h 127.0.0.1 -p PORT -U postgres -d postgres -v ON_ERROR_STOP=1 <args>`.
    pub fn psql(&self, args: &[&str]) -> PsqlOutput {
        let mut cmd = self.psql_command();
        cmd.args(args);
        run_with_timeout(cmd, None, PSQL_TIMEOUT)
    }

    /// Runs one or more `;`-separated statements with `psql -c`.
    pub fn psql_sql(&self, sql: &str) -> PsqlOutput {
        self.psql(&["-c", sql])
    }

    /// Pipes `script` into psql's standard input. With `on_error_stop ==
    /// false` psql carries on after a failing statement (exit status 0).
    pub fn psql_script(&self, script: &str, on_error_stop: bool) -> PsqlOutput {
        let mut cmd = self.psql_command();
        cmd.args([
            "-v",
            if on_error_stop {
                "ON_ERROR_STOP=1"
            } else {
                "ON_ERROR_STOP=0"
            },
        ]);
        run_with_timeout(cmd, Some(script.to_string()), PSQL_TIMEOUT)
    }

    /// Async-friendly wrappers: run psql on the blocking pool.
    pub async fn psql_async(&self, args: &[&str]) -> PsqlOutput {
        let mut cmd = self.psql_command();
        cmd.args(args);
        tokio::task::spawn_blocking(move || run_with_timeout(cmd, None, PSQL_TIMEOUT))
            .await
            .expect("psql task")
    }

    /// As [`TestServer::psql_async`], with environment variables libpq reads
    /// (`PGTZ`, `PGDATESTYLE`).
    pub async fn psql_env_async(&self, env: &[(&str, &str)], args: &[&str]) -> PsqlOutput {
        let mut cmd = self.psql_command();
        cmd.envs(env.iter().copied()).args(args);
        tokio::task::spawn_blocking(move || run_with_timeout(cmd, None, PSQL_TIMEOUT))
            .await
            .expect("psql task")
    }

    pub async fn psql_script_async(&self, script: &str, on_error_stop: bool) -> PsqlOutput {
        let mut cmd = self.psql_command();
        cmd.args([
            "-v",
            if on_error_stop {
                "ON_ERROR_STOP=1"
            } else {
                "ON_ERROR_STOP=0"
            },
        ]);
        let script = script.to_string();
        tokio::task::spawn_blocking(move || run_with_timeout(cmd, Some(script), PSQL_TIMEOUT))
            .await
            .expect("psql task")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() && !self.log_in_panic {
            eprintln!(
                "--- tempora server log (tail, {}) ---\n{}\n--- end of server log ---",
                self.log_path().display(),
                self.log_tail(150)
            );
        }
        if std::env::var_os("TEMPORA_TEST_KEEP_DATA").is_some() {
            if let Some(dir) = self.dir.take() {
                let path = dir.keep();
                eprintln!("kept tempora test directory {}", path.display());
            }
        }
    }
}

/// How many Parquet files lie under `dir`, at any depth.
pub fn parquet_files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                parquet_files_under(&p)
            } else {
                usize::from(p.extension().is_some_and(|x| x == "parquet"))
            }
        })
        .sum()
}

/// The Display of an error and of all its sources.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

fn run_with_timeout(mut cmd: Command, stdin: Option<String>, timeout: Duration) -> PsqlOutput {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let writer = stdin.map(|input| {
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        })
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned();
            let stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
            panic!(
                "{cmd:?} did not finish within {timeout:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    PsqlOutput {
        status,
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned(),
    }
}

/// Helpers that speak the PostgreSQL wire protocol by hand, for tests of
/// malformed or abandoned connections.
pub mod wire {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A StartupMessage (protocol 3.0) for user postgres / database postgres.
    pub fn startup_message() -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&196608i32.to_be_bytes());
        for (k, v) in [("user", "postgres"), ("database", "postgres")] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        msg
    }

    /// An SSLRequest packet.
    pub fn ssl_request() -> Vec<u8> {
        let mut msg = 8i32.to_be_bytes().to_vec();
        msg.extend_from_slice(&80877103i32.to_be_bytes());
        msg
    }

    /// A simple-protocol Query message.
    pub fn query_message(sql: &str) -> Vec<u8> {
        let mut msg = vec![b'Q'];
        msg.extend_from_slice(&((sql.len() + 5) as i32).to_be_bytes());
        msg.extend_from_slice(sql.as_bytes());
        msg.push(0);
        msg
    }

    /// Reads one backend message: (tag, body).
    pub async fn read_message(stream: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
        let tag = stream.read_u8().await?;
        let len = stream.read_i32().await?;
        if !(4..=(64 << 20)).contains(&len) {
            return Err(std::io::Error::other(format!("bad message length {len}")));
        }
        let mut body = vec![0; len as usize - 4];
        stream.read_exact(&mut body).await?;
        Ok((tag, body))
    }

    /// Connects and completes the startup handshake (no password), reading
    /// up to and including the first ReadyForQuery.
    pub async fn connect_ready(port: u16) -> std::io::Result<TcpStream> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(&startup_message()).await?;
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let (tag, body) = read_message(&mut s).await?;
                match tag {
                    b'Z' => return Ok(()),
                    b'E' => {
                        return Err(std::io::Error::other(format!(
                            "startup error: {}",
                            String::from_utf8_lossy(&body)
                        )))
                    }
                    b'R' if body.len() >= 4 && body[..4] != [0, 0, 0, 0] => {
                        return Err(std::io::Error::other("server asked for a password"))
                    }
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| std::io::Error::other("timed out waiting for ReadyForQuery"))??;
        Ok(s)
    }
}

/// Reads a whole file as text (for diagnostics in assertions).
pub fn read_to_string_lossy(path: &Path) -> String {
    let mut v = Vec::new();
    let _ = File::open(path).and_then(|mut f| f.read_to_end(&mut v));
    String::from_utf8_lossy(&v).into_owned()
}

/// The rows `sql` returns over the simple protocol, each as its text
/// values joined by `|` (NULL for null).
pub async fn text_rows(client: &Client, sql: &str) -> Vec<String> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", error_chain(&e)))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

/// The one bigint `sql` returns.
pub async fn scalar_i64(client: &Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", error_chain(&e)))
        .get(0)
}

/// Polls `sql` (one bigint) until it equals `want`, for at most 30 s: for
/// what the server does in the background (jobs, compaction, file removal).
pub async fn wait_for(client: &Client, sql: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = scalar_i64(client, sql).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: still {got}, want {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every row of `sql` (run through the simple protocol) as text.
pub async fn rows_text(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    messages
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}
