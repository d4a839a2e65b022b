//! CREATE DATABASE and friends: each database has its own tables and its
//! own hypertable and job ids, clients connect to one by name, roles are
//! the server's, and a database in use cannot be dropped.

use crate::support::{scalar_i64, text_rows, TestServer};

fn code(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

/// Runs `sql` (a DROP or RENAME of a database whose last session just
/// closed) until the server has noticed the closed connection: 55006 until then.
async fn once_unused(client: &tokio_postgres::Client, sql: &str) {
    for _ in 0..50 {
        match client.batch_execute(sql).await {
            Ok(()) => return,
            Err(e) if code(&e) == Some("55006") => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            Err(e) => panic!("{sql}: {e}"),
        }
    }
    panic!("{sql} kept failing with 55006");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_database_has_its_own_tables_and_ids_and_survives_a_restart() {
    let mut server = TestServer::start().await;
    let first = server.connect().await;
    first.batch_execute("CREATE DATABASE tsdb").await.unwrap();
    let err = first
        .batch_execute("CREATE DATABASE tsdb")
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some("42P04"), "{err}");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "database \"tsdb\" already exists"
    );

    let setup = "CREATE TABLE conditions (time timestamptz NOT NULL, device text, temp float8);
                 SELECT create_hypertable('conditions', 'time');";
    first.batch_execute(setup).await.unwrap();
    let tsdb = server.try_connect_to("tsdb").await.unwrap();
    tsdb.batch_execute(setup).await.unwrap();
    // Ids count from the start in each database, as in TimescaleDB.
    for client in [&first, &tsdb] {
        client
            .batch_execute("CREATE TABLE other (time timestamptz NOT NULL)")
            .await
            .unwrap();
        assert_eq!(
            text_rows(client, "SELECT create_hypertable('other', 'time')").await,
            vec!["(2,public,other,t)"]
        );
        let job = client
            .query_one(
                "SELECT add_retention_policy('conditions', drop_after => INTERVAL '30 days')",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(job.get::<_, i32>(0), 1000);
    }
    tsdb.batch_execute(
        "INSERT INTO conditions VALUES (now(), 'a', 20.5), (now(), 'b', 21.5);
         CREATE TABLE only_here (x int)",
    )
    .await
    .unwrap();
    assert_eq!(
        scalar_i64(&tsdb, "SELECT count(*) FROM conditions").await,
        2
    );
    assert_eq!(
        scalar_i64(&first, "SELECT count(*) FROM conditions").await,
        0
    );
    let err = first
        .query("SELECT * FROM only_here", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some("42P01"), "{err}");
    assert_eq!(
        text_rows(&tsdb, "SELECT current_database()").await,
        vec!["tsdb"]
    );
    assert_eq!(
        text_rows(
            &tsdb,
            "SELECT table_catalog || '.' || table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
        )
        .await,
        vec!["tsdb.conditions", "tsdb.only_here", "tsdb.other"]
    );
    let listed = "SELECT datname FROM pg_database ORDER BY oid";
    assert_eq!(text_rows(&first, listed).await, vec!["postgres", "tsdb"]);
    assert_eq!(text_rows(&tsdb, listed).await, vec!["postgres", "tsdb"]);
    drop(tsdb);

    // A clean shutdown flushes every database.
    assert!(server.stop().success());
    server.restart().await;
    let tsdb = server.try_connect_to("tsdb").await.unwrap();
    assert_eq!(
        scalar_i64(&tsdb, "SELECT count(*) FROM conditions").await,
        2
    );
    let first = server.connect().await;
    assert_eq!(text_rows(&first, listed).await, vec!["postgres", "tsdb"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_in_use_cannot_be_dropped_and_a_dropped_one_leaves_no_files() {
    let server = TestServer::start().await;
    let first = server.connect().await;
    let err = server.try_connect_to("nope").await.unwrap_err();
    assert_eq!(code(&err), Some("3D000"), "{err}");

    first
        .batch_execute("CREATE DATABASE scratch")
        .await
        .unwrap();
    let scratch = server.try_connect_to("scratch").await.unwrap();
    scratch
        .batch_execute(
            "CREATE TABLE m (time timestamptz NOT NULL, v float8);
             INSERT INTO m VALUES (now(), 1); CHECKPOINT",
        )
        .await
        .unwrap();
    let oid = scalar_i64(
        &first,
        "SELECT oid::bigint FROM pg_database WHERE datname = 'scratch'",
    )
    .await;
    let dir = server.data_dir().join("databases").join(oid.to_string());
    assert!(dir.is_dir(), "{} missing", dir.display());

    let err = first
        .batch_execute("DROP DATABASE scratch")
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some("55006"), "{err}");
    let db = err.as_db_error().unwrap();
    assert_eq!(
        db.message(),
        "database \"scratch\" is being accessed by other users"
    );
    assert_eq!(
        db.detail(),
        Some("There is 1 other session using the database.")
    );
    let err = scratch
        .batch_execute("DROP DATABASE scratch")
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some("55006"), "{err}");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "cannot drop the currently open database"
    );
    let err = scratch
        .batch_execute("DROP DATABASE postgres")
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some("0A000"), "{err}");
    let err = first
        .batch_execute("BEGIN; DROP DATABASE scratch")
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some("25001"), "{err}");
    first.batch_execute("ROLLBACK").await.unwrap();
    // The database and its rows are untouched by the refusals.
    assert_eq!(scalar_i64(&scratch, "SELECT count(*) FROM m").await, 1);

    drop(scratch);
    once_unused(&first, "DROP DATABASE scratch").await;
    assert!(!dir.exists(), "{} left behind", dir.display());
    let err = server.try_connect_to("scratch").await.unwrap_err();
    assert_eq!(code(&err), Some("3D000"), "{err}");
    let err = first
        .batch_execute("DROP DATABASE scratch")
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some("3D000"), "{err}");
    first
        .batch_execute("DROP DATABASE IF EXISTS scratch")
        .await
        .unwrap();
    // The name can be used again, for an empty database.
    first
        .batch_execute("CREATE DATABASE scratch")
        .await
        .unwrap();
    let scratch = server.try_connect_to("scratch").await.unwrap();
    let err = scratch.query("SELECT * FROM m", &[]).await.unwrap_err();
    assert_eq!(code(&err), Some("42P01"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_belong_to_the_server_and_databases_to_their_owners() {
    let server = TestServer::start().await;
    let first = server.connect().await;
    first.batch_execute("CREATE DATABASE app").await.unwrap();
    let app = server.try_connect_to("app").await.unwrap();
    // A role made in one database exists in every one.
    app.batch_execute("CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN CREATEDB")
        .await
        .unwrap();
    let roles = "SELECT rolname FROM pg_roles WHERE rolname IN ('alice', 'bob') ORDER BY 1";
    assert_eq!(text_rows(&first, roles).await, vec!["alice", "bob"]);

    let mut alice_config = server.config();
    alice_config.user("alice").dbname("app");
    let (alice, conn) = alice_config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let err = alice
        .batch_execute("CREATE DATABASE mine")
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some("42501"), "{err}");
    let err = alice.batch_execute("DROP DATABASE app").await.unwrap_err();
    assert_eq!(code(&err), Some("42501"), "{err}");

    let mut bob_config = server.config();
    bob_config.user("bob");
    let (bob, conn) = bob_config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    bob.batch_execute("CREATE DATABASE bobs").await.unwrap();
    assert_eq!(
        text_rows(
            &first,
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'bobs'"
        )
        .await,
        vec!["bob"]
    );
    let err = first.batch_execute("DROP ROLE bob").await.unwrap_err();
    assert_eq!(code(&err), Some("2BP01"), "{err}");
    let err = alice.batch_execute("DROP DATABASE bobs").await.unwrap_err();
    assert_eq!(code(&err), Some("42501"), "{err}");

    // Connection limits and ALLOW_CONNECTIONS are kept.
    first
        .batch_execute("ALTER DATABASE bobs WITH CONNECTION LIMIT 0")
        .await
        .unwrap();
    let err = server.try_connect_to("bobs").await.unwrap_err();
    assert_eq!(code(&err), Some("53300"), "{err}");
    first
        .batch_execute(
            "ALTER DATABASE bobs CONNECTION LIMIT -1; ALTER DATABASE bobs ALLOW_CONNECTIONS false",
        )
        .await
        .unwrap();
    let err = server.try_connect_to("bobs").await.unwrap_err();
    assert_eq!(code(&err), Some("55000"), "{err}");
    bob.batch_execute("DROP DATABASE bobs").await.unwrap();
    first.batch_execute("DROP ROLE bob").await.unwrap();
}

#[test]
fn psql_lists_and_switches_databases() {
    let server = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(TestServer::start());
    server.psql_sql("CREATE DATABASE tutorial").assert_success();
    let listed = server.psql(&["-c", "\\l"]);
    listed.assert_success();
    assert!(listed.stdout.contains(" tutorial "), "{}", listed.stdout);
    // With sizes and descriptions, and the databases' settings.
    let detailed = server.psql(&["-c", "\\l+"]);
    detailed.assert_success();
    assert!(
        detailed.stdout.contains(" tutorial "),
        "{}",
        detailed.stdout
    );
    server
        .psql_sql("ALTER DATABASE tutorial SET search_path = app, public")
        .assert_success();
    let settings = server.psql(&["-c", "\\drds"]);
    settings.assert_success();
    assert!(
        settings
            .stdout
            .contains("| tutorial | search_path=app, public"),
        "{}",
        settings.stdout
    );
    let switched = server.psql_script(
        "\\c tutorial\nCREATE TABLE t (x int);\nINSERT INTO t VALUES (7);\nSELECT current_database() || ':' || x FROM t;\n",
        true,
    );
    switched.assert_success();
    assert!(
        switched.stdout.contains("tutorial:7"),
        "{}",
        switched.stdout
    );
    let conninfo = server.psql_conninfo(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=tutorial",
            server.port()
        ),
        &["-c", "\\conninfo"],
    );
    conninfo.assert_success();
    assert!(
        conninfo.stdout.contains("database \"tutorial\""),
        "{}",
        conninfo.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn alter_database_set_gives_new_sessions_their_defaults() {
    let server = TestServer::start().await;
    let first = server.connect().await;
    first.batch_execute("CREATE DATABASE app").await.unwrap();
    first
        .batch_execute("ALTER DATABASE app SET timezone TO 'Europe/Berlin'")
        .await
        .unwrap();
    first
        .batch_execute("ALTER DATABASE app SET statement_timeout = '5s'")
        .await
        .unwrap();
    assert_eq!(
        text_rows(
            &first,
            "SELECT array_to_string(s.setconfig, ',') FROM pg_db_role_setting s \
             JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'app'"
        )
        .await,
        vec!["TimeZone=Europe/Berlin,statement_timeout=5s"]
    );
    let app = server.try_connect_to("app").await.unwrap();
    assert_eq!(
        text_rows(&app, "SHOW timezone").await,
        vec!["Europe/Berlin"]
    );
    assert_eq!(text_rows(&app, "SHOW statement_timeout").await, vec!["5s"]);
    // What the client asks for at connection wins.
    let mut config = server.config();
    config.dbname("app").options("-c TimeZone=UTC");
    let (utc, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    assert_eq!(text_rows(&utc, "SHOW timezone").await, vec!["UTC"]);

    for (sql, want) in [
        ("ALTER DATABASE app SET timezone TO 'Mars/Olympus'", "22023"),
        ("ALTER DATABASE app SET no_such_parameter = 1", "42704"),
        ("ALTER DATABASE nope SET timezone = 'UTC'", "3D000"),
    ] {
        let err = first.batch_execute(sql).await.unwrap_err();
        assert_eq!(code(&err), Some(want), "{sql}: {err}");
    }

    first
        .batch_execute("ALTER DATABASE app RESET timezone")
        .await
        .unwrap();
    let app = server.try_connect_to("app").await.unwrap();
    assert_eq!(text_rows(&app, "SHOW timezone").await, vec!["UTC"]);
    assert_eq!(text_rows(&app, "SHOW statement_timeout").await, vec!["5s"]);
    first
        .batch_execute("ALTER DATABASE app RESET ALL")
        .await
        .unwrap();
    let app = server.try_connect_to("app").await.unwrap();
    assert_eq!(text_rows(&app, "SHOW statement_timeout").await, vec!["0"]);

    // The first database takes defaults too, and is still listed once.
    first
        .batch_execute("ALTER DATABASE postgres SET DateStyle = 'ISO, DMY'")
        .await
        .unwrap();
    let again = server.connect().await;
    assert_eq!(text_rows(&again, "SHOW DateStyle").await, vec!["ISO, DMY"]);
    assert_eq!(
        text_rows(&again, "SELECT datname FROM pg_database ORDER BY oid").await,
        vec!["postgres", "app"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_database_keeps_its_rows_under_the_new_name() {
    let server = TestServer::start().await;
    let first = server.connect().await;
    first
        .batch_execute("CREATE DATABASE old_name")
        .await
        .unwrap();
    first.batch_execute("CREATE DATABASE taken").await.unwrap();
    let old = server.try_connect_to("old_name").await.unwrap();
    old.batch_execute("CREATE TABLE m (v int); INSERT INTO m VALUES (1), (2)")
        .await
        .unwrap();
    let err = first
        .batch_execute("ALTER DATABASE old_name RENAME TO new_name")
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some("55006"), "{err}");
    let err = old
        .batch_execute("ALTER DATABASE old_name RENAME TO new_name")
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some("0A000"), "{err}");
    drop(old);
    once_unused(&first, "ALTER DATABASE old_name RENAME TO new_name").await;
    let err = first
        .batch_execute("ALTER DATABASE new_name RENAME TO taken")
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some("42P04"), "{err}");
    let err = first
        .batch_execute("ALTER DATABASE postgres RENAME TO main")
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some("0A000"), "{err}");
    let err = server.try_connect_to("old_name").await.unwrap_err();
    assert_eq!(code(&err), Some("3D000"), "{err}");
    let new = server.try_connect_to("new_name").await.unwrap();
    assert_eq!(scalar_i64(&new, "SELECT count(*) FROM m").await, 2);
    assert_eq!(
        text_rows(&new, "SELECT current_database()").await,
        vec!["new_name"]
    );
}
