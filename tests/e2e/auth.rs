//! Logins: passwords (SCRAM-SHA-256 and MD5), roles and their attributes,
//! trust for loopback only, and TLS with psql's sslmode=require and verify-full.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokio_postgres::{Client, Config, NoTls};

use crate::support::TestServer;

/// A login as `user` with `password` on 127.0.0.1 (or `host`).
async fn login_at(
    server: &TestServer,
    host: &str,
    user: &str,
    password: Option<&str>,
) -> Result<Client, tokio_postgres::Error> {
    let mut config = Config::new();
    config
        .host(host)
        .port(server.port())
        .user(user)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(10));
    if let Some(p) = password {
        config.password(p);
    }
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn login(
    server: &TestServer,
    user: &str,
    password: &str,
) -> Result<Client, tokio_postgres::Error> {
    login_at(server, "127.0.0.1", user, Some(password)).await
}

/// The SQLSTATE and message a failed login or statement got.
fn refusal<T: std::fmt::Debug>(result: Result<T, tokio_postgres::Error>) -> (String, String) {
    let e = result.expect_err("expected an error");
    let db = e
        .as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {e:?}"));
    (db.code().code().to_string(), db.message().to_string())
}

async fn one_text(client: &Client, sql: &str) -> String {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_and_roles() {
    let mut server = TestServer::start_args(&["--password", "s3cret"]).await;

    // The superuser, by SCRAM-SHA-256.
    let admin = login(&server, "postgres", "s3cret").await.unwrap();
    assert_eq!(one_text(&admin, "SELECT current_user").await, "postgres");
    assert_eq!(one_text(&admin, "SHOW is_superuser").await, "on");

    // Wrong passwords and unknown roles fail alike, as in PostgreSQL.
    assert_eq!(
        refusal(login(&server, "postgres", "wrong").await),
        (
            "28P01".into(),
            "password authentication failed for user \"postgres\"".into()
        )
    );
    assert_eq!(
        refusal(login(&server, "nobody", "s3cret").await),
        (
            "28P01".into(),
            "password authentication failed for user \"nobody\"".into()
        )
    );
    // No password at all is no way in.
    assert!(login_at(&server, "127.0.0.1", "postgres", None)
        .await
        .is_err());

    admin
        .batch_execute(
            "CREATE USER alice WITH ENCRYPTED PASSWORD 'a1';
             CREATE ROLE nologin PASSWORD 'n1';
             CREATE ROLE limited LOGIN PASSWORD 'l1' CONNECTION LIMIT 1;
             CREATE ROLE expired LOGIN PASSWORD 'e1' VALID UNTIL '2001-01-01';
             CREATE TABLE readings (time timestamptz NOT NULL, v int);
             INSERT INTO readings VALUES ('2024-01-01', 1)",
        )
        .await
        .unwrap();
    let (code, message) = refusal(admin.batch_execute("CREATE ROLE alice").await);
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("42710", "role \"alice\" already exists")
    );

    // CREATE USER logs in; CREATE ROLE does not by default.
    let alice = login(&server, "alice", "a1").await.unwrap();
    assert_eq!(one_text(&alice, "SELECT current_user").await, "alice");
    assert_eq!(one_text(&alice, "SELECT session_user").await, "alice");
    assert_eq!(one_text(&alice, "SHOW is_superuser").await, "off");
    let n: i32 = alice
        .query_one("SELECT v FROM readings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    assert_eq!(
        refusal(login(&server, "nologin", "n1").await),
        (
            "28000".into(),
            "role \"nologin\" is not permitted to log in".into()
        )
    );
    assert_eq!(refusal(login(&server, "expired", "e1").await).0, "28P01");

    // A connection limit counts open sessions.
    let first = login(&server, "limited", "l1").await.unwrap();
    assert_eq!(
        refusal(login(&server, "limited", "l1").await),
        (
            "53300".into(),
            "too many connections for role \"limited\"".into()
        )
    );
    drop(first);
    let mut again = None;
    for _ in 0..50 {
        match login(&server, "limited", "l1").await {
            Ok(c) => {
                again = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(again.is_some(), "the slot came back when the session ended");

    // What a role without CREATEROLE may do: change its own password only.
    for (sql, message) in [
        ("CREATE ROLE bob", "permission denied to create role"),
        (
            "ALTER ROLE alice SUPERUSER",
            "must be superuser to alter superuser roles or change superuser attribute",
        ),
        ("ALTER ROLE alice CREATEDB", "permission denied"),
        (
            "ALTER ROLE postgres PASSWORD 'x'",
            "must be superuser to alter superuser roles or change superuser attribute",
        ),
        ("DROP ROLE nologin", "permission denied to drop role"),
    ] {
        assert_eq!(
            refusal(alice.batch_execute(sql).await),
            ("42501".into(), message.into()),
            "{sql}"
        );
    }
    alice
        .batch_execute("ALTER USER CURRENT_USER PASSWORD 'a2'")
        .await
        .unwrap();
    assert_eq!(refusal(login(&server, "alice", "a1").await).0, "28P01");
    login(&server, "alice", "a2").await.unwrap();

    // A password hashed by the client (as psql's \password sends it).
    let verifier = postgres_protocol::password::scram_sha_256(b"hashed-by-client");
    admin
        .batch_execute(&format!("ALTER ROLE alice PASSWORD '{verifier}'"))
        .await
        .unwrap();
    login(&server, "alice", "hashed-by-client").await.unwrap();

    // An MD5 secret needs the md5 method; SCRAM secrets work under both.
    admin
        .batch_execute(
            "SET password_encryption = 'md5';
             CREATE ROLE carol LOGIN PASSWORD 'c1';
             RESET password_encryption",
        )
        .await
        .unwrap();
    assert_eq!(refusal(login(&server, "carol", "c1").await).0, "28P01");
    let (code, _) = refusal(
        admin
            .batch_execute("SET password_encryption = 'plain'")
            .await,
    );
    assert_eq!(code, "22023");

    // Dropping roles.
    assert_eq!(
        refusal(admin.batch_execute("DROP ROLE postgres").await),
        ("55006".into(), "current user cannot be dropped".into())
    );
    assert_eq!(
        refusal(admin.batch_execute("DROP ROLE ghost").await),
        ("42704".into(), "role \"ghost\" does not exist".into())
    );
    admin
        .batch_execute("DROP ROLE IF EXISTS ghost; DROP USER nologin")
        .await
        .unwrap();
    let roles: Vec<String> = admin
        .query("SELECT rolname::text FROM pg_roles ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(roles, ["alice", "carol", "expired", "limited", "postgres"]);
    drop((admin, alice, again));

    // Roles and passwords are in the catalog: they survive a restart, and
    // the md5 method lets carol in.
    server.stop();
    server.restart_with_args(&["--auth-method", "md5"]).await;
    let carol = login(&server, "carol", "c1").await.unwrap();
    assert_eq!(one_text(&carol, "SELECT current_user").await, "carol");
    login(&server, "alice", "hashed-by-client").await.unwrap();
    login(&server, "postgres", "s3cret").await.unwrap();
    assert_eq!(refusal(login(&server, "carol", "wrong").await).0, "28P01");
}

/// An address of this machine that is not loopback, if it has one.
fn outside_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // No packet is sent: connecting a UDP socket only picks the route.
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test(flavor = "multi_thread")]
async fn trust_is_for_loopback_only() {
    let server = TestServer::start_args(&[
        "--host",
        "0.0.0.0",
        "--trust-loopback",
        "--password",
        "s3cret",
    ])
    .await;
    let local = login_at(&server, "127.0.0.1", "postgres", None)
        .await
        .unwrap();
    assert_eq!(one_text(&local, "SELECT current_user").await, "postgres");
    // Trusted, but only as a role that exists and may log in.
    let (code, message) = refusal(login_at(&server, "127.0.0.1", "ghost", None).await);
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("28000", "role \"ghost\" does not exist")
    );

    let Some(ip) = outside_address() else {
        eprintln!("no non-loopback address on this machine: the remote half is skipped");
        return;
    };
    let host = ip.to_string();
    assert_eq!(
        refusal(login_at(&server, &host, "postgres", Some("wrong")).await).0,
        "28P01"
    );
    let remote = login_at(&server, &host, "postgres", Some("s3cret"))
        .await
        .unwrap();
    assert_eq!(one_text(&remote, "SELECT current_user").await, "postgres");
}

#[test]
fn refuses_to_start_without_any_way_in() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(crate::support::tempora_bin())
        .args(["--port", "0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("TEMPORA_PASSWORD")
        .env_remove("TEMPORA_TRUST_LOOPBACK")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no role has a password"), "{stderr}");
}

/// A CA and a server certificate for localhost / 127.0.0.1 it signed.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A self-signed CA: subject, key file, certificate file.
    let ca = |subject: &str, key: &str, cert: &str| {
        run(&[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject,
            "-keyout", key, "-out", cert,
        ])
    };
    ca("/CN=Tempora test CA", "ca.key", "ca.crt");
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
        "-out",
        "server.crt",
    ]);
    // A second CA that signed nothing here.
    ca("/CN=Other CA", "other.key", "other.crt");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_psql() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let cert = certs.path().join("server.crt");
    let key = certs.path().join("server.key");
    let server = TestServer::start_args(&[
        "--password",
        "s3cret",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .await;
    let ca = certs.path().join("ca.crt");
    let conninfo = |host: &str, mode: &str, root: &Path| {
        format!(
            "host={host} port={} user=postgres password=s3cret dbname=postgres sslmode={mode} sslrootcert={}",
            server.port(),
            root.display()
        )
    };

    let out = server.psql_conninfo(
        &conninfo("127.0.0.1", "require", &ca),
        &["-c", "\\conninfo"],
    );
    out.assert_success();
    assert!(
        out.stdout.contains("SSL connection (protocol: TLSv1."),
        "{}",
        out.stdout
    );

    // verify-full: the chain and the host name are checked.
    let out = server.psql_conninfo(
        &conninfo("localhost", "verify-full", &ca),
        &["-At", "-c", "SELECT current_user"],
    );
    out.assert_success();
    assert_eq!(out.stdout.trim(), "postgres");
    let out = server.psql_conninfo(
        &conninfo("localhost", "verify-full", &certs.path().join("other.crt")),
        &["-c", "SELECT 1"],
    );
    assert!(
        !out.status.success(),
        "a certificate from another CA was accepted"
    );
    assert!(
        out.stderr.contains("certificate verify failed"),
        "{}",
        out.stderr
    );

    // asyncpg's own protocol code over Python's TLS, verifying the chain
    // and the host name.
    let script = format!(
        r#"
import asyncio, ssl, sys
import asyncpg
async def main():
    ctx = ssl.create_default_context(cafile={ca:?})
    c = await asyncpg.connect(host="localhost", port={port}, user="postgres",
                              password="s3cret", database="postgres", ssl=ctx)
    print(await c.fetchval("SELECT current_user"))
    await c.close()
asyncio.run(main())
"#,
        ca = ca.to_str().unwrap(),
        port = server.port()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "asyncpg over TLS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "postgres");

    // Without TLS it still answers, and still wants the password.
    let out = server.psql_conninfo(
        &conninfo("127.0.0.1", "disable", &ca),
        &["-At", "-c", "SELECT 1"],
    );
    out.assert_success();
    let wrong = format!(
        "host=127.0.0.1 port={} user=postgres password=wrong dbname=postgres sslmode=require",
        server.port()
    );
    let out = server.psql_conninfo(&wrong, &["-c", "SELECT 1"]);
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("password authentication failed for user \"postgres\""),
        "{}",
        out.stderr
    );
}

/// A client that fails its login gets no further: statements it sends
/// after the FATAL error are not run.
#[tokio::test(flavor = "multi_thread")]
async fn nothing_runs_after_a_failed_login() {
    use crate::support::wire;
    use tokio::io::AsyncWriteExt;

    let server = TestServer::start_args(&["--password", "s3cret"]).await;
    for attempt in ["bad mechanism", "query before the password"] {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port()))
            .await
            .unwrap();
        stream.write_all(&wire::startup_message()).await.unwrap();
        let (tag, _) = wire::read_message(&mut stream).await.unwrap();
        assert_eq!(tag, b'R', "{attempt}: the server asks for a password");
        if attempt == "bad mechanism" {
            // SASLInitialResponse naming a mechanism the server did not offer.
            let mut body = b"FOO\0".to_vec();
            body.extend_from_slice(&3i32.to_be_bytes());
            body.extend_from_slice(b"abc");
            let mut msg = vec![b'p'];
            msg.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
            msg.extend_from_slice(&body);
            stream.write_all(&msg).await.unwrap();
        }
        let table = format!("intruder_{}", attempt.replace(' ', "_"));
        let _ = stream
            .write_all(&wire::query_message(&format!(
                "CREATE TABLE {table} (a int)"
            )))
            .await;
        // Whatever the server answered, it must not have run the statement.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while wire::read_message(&mut stream).await.is_ok() {}
        })
        .await;
    }
    let admin = login(&server, "postgres", "s3cret").await.unwrap();
    let n: i64 = admin
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'intruder%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "a statement ran without a login");
}
