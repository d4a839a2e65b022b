//! psql's describe commands (`\d` and friends) against Tempora: the tables
//! of PostgreSQL's catalog they read (pg_class, pg_attribute, pg_index,
//! pg_constraint, pg_description, pg_inherits, ...) describe Tempora's own
//! objects. Expected blocks are psql 15's output against PostgreSQL 15 for
//! the same schema, where the two agree; a hypertable additionally lists
//! its chunks as child tables, as under TimescaleDB.

use crate::support::TestServer;

const SCHEMA: &str = "\
CREATE TABLE conditions (time timestamptz NOT NULL, device text, temp double precision DEFAULT 1.5);
SELECT create_hypertable('conditions', 'time');
CREATE INDEX ON conditions (device, time);
INSERT INTO conditions VALUES ('2024-01-01 00:00:00+00', 'a', 1), ('2024-02-01 00:00:00+00', 'b', 2);
CREATE TABLE devices (id int PRIMARY KEY, name varchar(20) UNIQUE, price numeric(10,2));
COMMENT ON TABLE devices IS 'the devices';
COMMENT ON COLUMN devices.name IS 'display name';
CREATE VIEW v AS SELECT id, price FROM devices;
CREATE SCHEMA s2;
CREATE TABLE s2.t (a bigint);
";

async fn describe(server: &TestServer, command: &str) -> String {
    let out = server.psql_async(&["-c", command]).await;
    out.assert_success();
    assert!(out.stderr.is_empty(), "{command}: {}", out.stderr);
    out.stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_commands_answer_as_postgresql() {
    let server = TestServer::start().await;
    server
        .psql_script_async(SCHEMA, true)
        .await
        .assert_success();

    // Relations on the search path only: no catalog views, no chunks, no s2.t.
    assert_eq!(
        describe(&server, "\\d").await,
        "           List of relations
 Schema |    Name    | Type  |  Owner   
--------+------------+-------+----------
 public | conditions | table | postgres
 public | devices    | table | postgres
 public | v          | view  | postgres
(3 rows)

"
    );
    assert_eq!(
        describe(&server, "\\d conditions").await,
        "                     Table \"public.conditions\"
 Column |           Type           | Collation | Nullable | Default 
--------+--------------------------+-----------+----------+---------
 time   | timestamp with time zone |           | not null | 
 device | text                     |           |          | 
 temp   | double precision         |           |          | 1.5
Indexes:
    \"conditions_device_time_idx\" btree (device, \"time\")
    \"conditions_time_idx\" btree (\"time\" DESC)
Number of child tables: 2 (Use \\d+ to list them.)

"
    );
    let plus = describe(&server, "\\d+ conditions").await;
    assert!(
        plus.contains(
            "Child tables: _timescaledb_internal._hyper_1_1_chunk,\n              _timescaledb_internal._hyper_1_2_chunk\n"
        ),
        "{plus}"
    );
    assert_eq!(
        describe(&server, "\\d devices").await,
        "                     Table \"public.devices\"
 Column |         Type          | Collation | Nullable | Default 
--------+-----------------------+-----------+----------+---------
 id     | integer               |           | not null | 
 name   | character varying(20) |           |          | 
 price  | numeric(10,2)         |           |          | 
Indexes:
    \"devices_pkey\" PRIMARY KEY, btree (id)
    \"devices_name_key\" UNIQUE CONSTRAINT, btree (name)

"
    );
    assert_eq!(
        describe(&server, "\\d+ devices").await,
        "                                                 Table \"public.devices\"
 Column |         Type          | Collation | Nullable | Default | Storage  | Compression | Stats target | Description  
--------+-----------------------+-----------+----------+---------+----------+-------------+--------------+--------------
 id     | integer               |           | not null |         | plain    |             |              | 
 name   | character varying(20) |           |          |         | extended |             |              | display name
 price  | numeric(10,2)         |           |          |         | main     |             |              | 
Indexes:
    \"devices_pkey\" PRIMARY KEY, btree (id)
    \"devices_name_key\" UNIQUE CONSTRAINT, btree (name)
Access method: heap

"
    );
    assert_eq!(
        describe(&server, "\\dt+ devices").await,
        "                                     List of relations
 Schema |  Name   | Type  |  Owner   | Persistence | Access method |  Size   | Description 
--------+---------+-------+----------+-------------+---------------+---------+-------------
 public | devices | table | postgres | permanent   | heap          | 0 bytes | the devices
(1 row)

"
    );
    assert_eq!(
        describe(&server, "\\di").await,
        "                          List of relations
 Schema |            Name            | Type  |  Owner   |   Table    
--------+----------------------------+-------+----------+------------
 public | conditions_device_time_idx | index | postgres | conditions
 public | conditions_time_idx        | index | postgres | conditions
 public | devices_name_key           | index | postgres | devices
 public | devices_pkey               | index | postgres | devices
(4 rows)

"
    );
    assert_eq!(
        describe(&server, "\\d v").await,
        "                  View \"public.v\"
 Column |  Type   | Collation | Nullable | Default 
--------+---------+-----------+----------+---------
 id     | integer |           |          | 
 price  | numeric |           |          | 

"
    );
    assert_eq!(
        describe(&server, "\\d s2.t").await,
        "                   Table \"s2.t\"
 Column |  Type  | Collation | Nullable | Default 
--------+--------+-----------+----------+---------
 a      | bigint |           |          | 

"
    );
    let roles = describe(&server, "\\du").await;
    assert!(
        roles.contains(
            " postgres  | Superuser, Create role, Create DB, Replication, Bypass RLS | {}\n"
        ),
        "{roles}"
    );
    let schemas = describe(&server, "\\dn").await;
    assert!(schemas.contains("\n s2 "), "{schemas}");
    assert!(schemas.contains("\n public "), "{schemas}");
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_oids_are_stable_across_sessions_and_restarts() {
    let mut server = TestServer::start().await;
    server
        .psql_script_async(SCHEMA, true)
        .await
        .assert_success();
    let oids = "SELECT c.relname, c.oid, c.oid::regclass, c.oid = 'public.devices'::regclass
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname IN ('public', '_timescaledb_internal') ORDER BY 1";
    let before = server.psql_async(&["-At", "-c", oids]).await;
    before.assert_success();
    // Index and chunk oids resolve back to their names.
    assert!(
        before.stdout.contains("|devices_pkey|f\n"),
        "{}",
        before.stdout
    );
    assert!(
        before
            .stdout
            .contains("|_timescaledb_internal._hyper_1_1_chunk|f\n"),
        "{}",
        before.stdout
    );
    assert!(before.stdout.contains("|devices|t\n"), "{}", before.stdout);
    let again = server.psql_async(&["-At", "-c", oids]).await;
    assert_eq!(before.stdout, again.stdout);
    server.stop();
    server.restart().await;
    let after = server.psql_async(&["-At", "-c", oids]).await;
    assert_eq!(before.stdout, after.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn comment_on_errors() {
    let server = TestServer::start().await;
    server
        .psql_script_async(
            "CREATE TABLE t (a int); CREATE VIEW w AS SELECT 1 AS x;",
            true,
        )
        .await
        .assert_success();
    for (sql, error) in [
        (
            "COMMENT ON COLUMN t.nope IS 'x'",
            "ERROR:  column \"nope\" of relation \"t\" does not exist",
        ),
        (
            "COMMENT ON TABLE nope IS 'x'",
            "ERROR:  relation \"nope\" does not exist",
        ),
        ("COMMENT ON TABLE w IS 'x'", "ERROR:  \"w\" is not a table"),
        (
            "COMMENT ON INDEX t_idx IS 'x'",
            "ERROR:  COMMENT ON INDEX is not supported",
        ),
    ] {
        let out = server.psql_async(&["-c", sql]).await;
        assert!(!out.status.success(), "{sql}");
        assert!(out.stderr.contains(error), "{sql}: {}", out.stderr);
    }
    // `IS NULL` removes a comment.
    let out = server
        .psql_async(&[
            "-At",
            "-c",
            "COMMENT ON TABLE t IS 'kept'",
            "-c",
            "COMMENT ON TABLE t IS NULL",
            "-c",
            "SELECT count(*) FROM pg_description WHERE objoid = 't'::regclass",
        ])
        .await;
    out.assert_success();
    assert_eq!(out.stdout, "COMMENT\nCOMMENT\n0\n");
}

/// A table with an index, comments and foreign keys, and the table it
/// references: `\\d+` and `\\d` as PostgreSQL 15 shows them, the same after
/// kill -9, and the keys still enforced.
#[tokio::test(flavor = "multi_thread")]
async fn foreign_keys_in_describe_and_after_restart() {
    let mut server = TestServer::start().await;
    server
        .psql_script_async(
            "CREATE TABLE sensors (id int PRIMARY KEY, serial text UNIQUE, site text);
CREATE TABLE readings (time timestamptz NOT NULL, sensor_id int NOT NULL REFERENCES sensors (id), serial text, value double precision, CONSTRAINT readings_serial_fk FOREIGN KEY (serial) REFERENCES sensors (serial) ON DELETE RESTRICT);
CREATE INDEX readings_sensor_time ON readings (sensor_id, time DESC);
COMMENT ON TABLE readings IS 'raw readings';
COMMENT ON COLUMN readings.value IS 'calibrated value';
INSERT INTO sensors VALUES (1, 'A1', 'north');
INSERT INTO readings VALUES ('2024-01-01 00:00:00+00', 1, 'A1', 0.5);
",
            true,
        )
        .await
        .assert_success();
    let readings = "                                                     Table \"public.readings\"
  Column   |           Type           | Collation | Nullable | Default | Storage  | Compression | Stats target |   Description    
-----------+--------------------------+-----------+----------+---------+----------+-------------+--------------+------------------
 time      | timestamp with time zone |           | not null |         | plain    |             |              | 
 sensor_id | integer                  |           | not null |         | plain    |             |              | 
 serial    | text                     |           |          |         | extended |             |              | 
 value     | double precision         |           |          |         | plain    |             |              | calibrated value
Indexes:
    \"readings_sensor_time\" btree (sensor_id, \"time\" DESC)
Foreign-key constraints:
    \"readings_sensor_id_fkey\" FOREIGN KEY (sensor_id) REFERENCES sensors(id)
    \"readings_serial_fk\" FOREIGN KEY (serial) REFERENCES sensors(serial) ON DELETE RESTRICT
Access method: heap

";
    let sensors = "              Table \"public.sensors\"
 Column |  Type   | Collation | Nullable | Default 
--------+---------+-----------+----------+---------
 id     | integer |           | not null | 
 serial | text    |           |          | 
 site   | text    |           |          | 
Indexes:
    \"sensors_pkey\" PRIMARY KEY, btree (id)
    \"sensors_serial_key\" UNIQUE CONSTRAINT, btree (serial)
Referenced by:
    TABLE \"readings\" CONSTRAINT \"readings_sensor_id_fkey\" FOREIGN KEY (sensor_id) REFERENCES sensors(id)
    TABLE \"readings\" CONSTRAINT \"readings_serial_fk\" FOREIGN KEY (serial) REFERENCES sensors(serial) ON DELETE RESTRICT

";
    assert_eq!(describe(&server, "\\d+ readings").await, readings);
    assert_eq!(describe(&server, "\\d sensors").await, sensors);
    server.kill9();
    server.restart().await;
    assert_eq!(describe(&server, "\\d+ readings").await, readings);
    assert_eq!(describe(&server, "\\d sensors").await, sensors);
    let client = server.connect().await;
    let err = client
        .execute(
            "INSERT INTO readings VALUES ('2024-01-02 00:00:00+00', 2, NULL, 1.0)",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "23503", "{err:?}");
    let err = client
        .execute("DELETE FROM sensors WHERE id = 1", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "23503", "{err:?}");
}

/// `\\df` lists functions with their result and argument types as
/// PostgreSQL 15 prints them.
#[tokio::test(flavor = "multi_thread")]
async fn describe_functions() {
    let server = TestServer::start().await;
    assert_eq!(
        describe(&server, "\\df abs").await,
        "                         List of functions
   Schema   | Name | Result data type | Argument data types | Type 
------------+------+------------------+---------------------+------
 pg_catalog | abs  | bigint           | bigint              | func
 pg_catalog | abs  | double precision | double precision    | func
 pg_catalog | abs  | integer          | integer             | func
 pg_catalog | abs  | numeric          | numeric             | func
 pg_catalog | abs  | real             | real                | func
 pg_catalog | abs  | smallint         | smallint            | func
(6 rows)

"
    );
    assert_eq!(
        describe(&server, "\\df pg_get_keywords").await,
        "                                                                   List of functions
   Schema   |      Name       | Result data type |                                      Argument data types                                      | Type 
------------+-----------------+------------------+-----------------------------------------------------------------------------------------------+------
 pg_catalog | pg_get_keywords | SETOF record     | OUT word text, OUT catcode \"char\", OUT barelabel boolean, OUT catdesc text, OUT baredesc text | func
(1 row)

"
    );
    // \df+ reads proacl, which the emulation keeps as text.
    let plus = server.psql(&["-c", "\\df+ abs"]);
    plus.assert_success();
    assert!(plus.stdout.contains("| int8abs "), "{}", plus.stdout);
}

/// Once `CREATE EXTENSION timescaledb` has run, `\\df` lists TimescaleDB's
/// functions that Tempora implements in `public`, with TimescaleDB's
/// argument names, types and defaults.
#[tokio::test(flavor = "multi_thread")]
async fn describe_timescaledb_functions() {
    let server = TestServer::start().await;
    let none = describe(&server, "\\df").await;
    assert!(none.contains("(0 rows)"), "{none}");
    server
        .psql_async(&["-c", "CREATE EXTENSION timescaledb"])
        .await
        .assert_success();
    assert_eq!(
        describe(&server, "\\df (first|last|histogram)").await,
        "                                              List of functions
 Schema |   Name    | Result data type |                      Argument data types                      | Type 
--------+-----------+------------------+---------------------------------------------------------------+------
 public | first     | anyelement       | anyelement, \"any\"                                             | agg
 public | histogram | integer[]        | double precision, double precision, double precision, integer | agg
 public | last      | anyelement       | anyelement, \"any\"                                             | agg
(3 rows)

"
    );
    assert_eq!(
        describe(&server, "\\df run_job").await,
        "                        List of functions
 Schema |  Name   | Result data type | Argument data types | Type 
--------+---------+------------------+---------------------+------
 public | run_job |                  | IN job_id integer   | proc
(1 row)

"
    );
    let show = describe(&server, "\\df show_chunks").await;
    assert!(
        show.contains(
            " public | show_chunks | SETOF regclass   | relation regclass, older_than \"any\" DEFAULT NULL::unknown, newer_than \"any\" DEFAULT NULL::unknown, created_before \"any\" DEFAULT NULL::unknown, created_after \"any\" DEFAULT NULL::unknown | func"
        ),
        "{show}"
    );
    // Every overload of time_bucket but the UUID ones.
    let buckets = describe(&server, "\\df time_bucket").await;
    assert!(buckets.contains("(16 rows)"), "{buckets}");
    assert!(
        buckets.contains("| timestamp with time zone    | bucket_width interval, ts timestamp with time zone, timezone text, origin timestamp with time zone DEFAULT NULL::timestamp with time zone, \"offset\" interval DEFAULT NULL::interval | func"),
        "{buckets}"
    );
    // The rows are ordinary pg_proc rows: joins and filters see them.
    let client = server.connect().await;
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE p.prokind = 'a'), count(*) FILTER (WHERE p.proretset), \
                    count(DISTINCT p.oid) = count(*) \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = 'public'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 3);
    assert!(row.get::<_, i64>(1) > 5);
    assert!(row.get::<_, bool>(2));
}

/// A SQL function as `\df` lists it and `\sf` prints it: psql 15's output
/// against PostgreSQL 15 for the same function.
#[tokio::test(flavor = "multi_thread")]
async fn describe_sql_functions() {
    let server = TestServer::start().await;
    server
        .psql_script_async(
            "CREATE FUNCTION c2f(c double precision, k int DEFAULT 0) RETURNS double precision \
             LANGUAGE sql IMMUTABLE AS 'SELECT c * 9 / 5 + 32 + k';",
            true,
        )
        .await
        .assert_success();
    assert_eq!(
        describe(&server, "\\df c2f").await,
        "                                 List of functions
 Schema | Name | Result data type |           Argument data types           | Type 
--------+------+------------------+-----------------------------------------+------
 public | c2f  | double precision | c double precision, k integer DEFAULT 0 | func
(1 row)

"
    );
    assert_eq!(
        describe(&server, "\\sf c2f").await,
        "CREATE OR REPLACE FUNCTION public.c2f(c double precision, k integer DEFAULT 0)
 RETURNS double precision
 LANGUAGE sql
 IMMUTABLE
AS $function$SELECT c * 9 / 5 + 32 + k$function$
"
    );
}
