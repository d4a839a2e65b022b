"""psycopg 3's ordinary workflow against Tempora: connect, create, insert
with parameters, executemany, COPY, typed results (timestamptz, numeric,
NULL, json, jsonb, uuid) in text and binary, prepared statement reuse, a transaction rolled
back and one committed, savepoints, and errors with their SQLSTATE.

Usage: python3 psycopg_workflow.py PORT
"""
import datetime
import decimal
import sys
import uuid

import psycopg
from psycopg.types.json import Json, Jsonb

UTC = datetime.timezone.utc


def main(port: int) -> None:
    conn = psycopg.connect(
        f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True
    )
    cur = conn.cursor()
    cur.execute(
        "CREATE TABLE m (time timestamptz NOT NULL, device text, v double precision, "
        "n numeric(10,2), k int)"
    )
    cur.execute("SELECT create_hypertable('m', 'time')")
    assert cur.fetchone() == ("(1,public,m,t)",)

    t0 = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    cur.execute(
        "INSERT INTO m VALUES (%s, %s, %s, %s, %s)",
        (t0, "a", 1.5, decimal.Decimal("2.25"), 7),
    )
    assert cur.rowcount == 1
    cur.executemany(
        "INSERT INTO m VALUES (%s, %s, %s, %s, %s)",
        [(t0 + datetime.timedelta(minutes=i), "b", float(i), None, i) for i in range(10)],
    )
    with cur.copy("COPY m (time, device, v) FROM STDIN") as copy:
        for i in range(5):
            copy.write_row((t0 + datetime.timedelta(hours=i), "c", i * 1.0))
    assert cur.rowcount == 5

    cur.execute("SELECT time, device, v, n, k FROM m WHERE device = %s", ("a",))
    assert cur.fetchall() == [(t0, "a", 1.5, decimal.Decimal("2.25"), 7)]
    cur.execute("SELECT count(*), sum(k), count(n) FROM m")
    assert cur.fetchone() == (16, 52, 1)

    # Binary results decode to the same values.
    binary = conn.cursor(binary=True)
    binary.execute("SELECT time, device, v, n, k FROM m WHERE k = %s ORDER BY device", (7,))
    assert binary.fetchall() == [
        (t0, "a", 1.5, decimal.Decimal("2.25"), 7),
        (t0 + datetime.timedelta(minutes=7), "b", 7.0, None, 7),
    ]

    # A server-side prepared statement, reused with new parameters.
    counts = []
    for i in range(3):
        cur.execute("SELECT count(*) FROM m WHERE k > %s", (i,), prepare=True)
        counts.append(cur.fetchone()[0])
    assert counts == [10, 9, 8], counts

    # time_bucket over the rows, typed.
    cur.execute(
        "SELECT time_bucket('1 hour', time) AS b, count(*) FROM m "
        "WHERE device = 'b' GROUP BY b ORDER BY b"
    )
    assert cur.fetchall() == [(t0, 10)]

    # The types psycopg declares for its parameters are theirs, as in
    # PostgreSQL, whatever the statement around them suggests: an aware
    # datetime is a timestamptz, a date stays a date in `%s + 1`, an int
    # compared with a float compares as a number.
    for sql, args, expected in [
        ("SELECT pg_typeof(%s)::text", (t0,), "timestamp with time zone"),
        ("SELECT pg_typeof(%s)::text", (t0.replace(tzinfo=None),), "timestamp without time zone"),
        ("SELECT %s + interval '1 day'", (t0,), t0 + datetime.timedelta(days=1)),
        ("SELECT %s + %s", (t0, datetime.timedelta(hours=1)), t0 + datetime.timedelta(hours=1)),
        ("SELECT %s + 1", (datetime.date(2024, 1, 31),), datetime.date(2024, 2, 1)),
        ("SELECT %s = %s", (1, 1.0), True),
        ("SELECT count(*) FROM m WHERE v > %s", (5,), 4),
        ("SELECT count(*) FROM m WHERE time >= %s - interval '1 minute'", (t0 + datetime.timedelta(hours=4),), 1),
        # An untyped NULL takes the type its context needs; it does not
        # shift the parameters after it.
        ("SELECT coalesce(%s, 0)", (None,), 0),
        ("SELECT %s::int IS NULL", (None,), True),
        ("SELECT concat(%s, %s, %s)", (None, "x", 2), "x2"),
    ]:
        cur.execute(sql, args)
        got = cur.fetchone()[0]
        assert got == expected, (sql, args, got)
    cur.execute("INSERT INTO m (time, device, n) VALUES (%s, %s, %s)", (t0, "int-numeric", 3))
    cur.execute("SELECT n FROM m WHERE device = %s", ("int-numeric",))
    assert cur.fetchall() == [(decimal.Decimal("3.00"),)]
    cur.execute("DELETE FROM m WHERE device = %s", ("int-numeric",))

    # json and jsonb columns: psycopg's Json/Jsonb parameters, COPY, and
    # results decoded as Python values, in text and in binary.
    cur.execute("CREATE TABLE ev (time timestamptz NOT NULL, meta jsonb, raw json)")
    cur.execute("SELECT create_hypertable('ev', 'time')")
    cur.execute(
        "INSERT INTO ev VALUES (%s, %s, %s)",
        (t0, Jsonb({"b": [1, 2], "a": None}), Json({"x": 1})),
    )
    with cur.copy("COPY ev (time, meta) FROM STDIN") as copy:
        copy.write_row((t0 + datetime.timedelta(hours=1), '{"temp": 20.5, "site": "north"}'))
    cur.execute("SELECT meta, raw, meta::text FROM ev WHERE time = %s", (t0,))
    assert cur.fetchone() == ({"a": None, "b": [1, 2]}, {"x": 1}, '{"a": null, "b": [1, 2]}')
    binary.execute("SELECT meta, meta -> 'temp', meta ->> 'site' FROM ev WHERE meta ? 'site'")
    assert binary.fetchall() == [({"site": "north", "temp": 20.5}, 20.5, "north")]
    cur.execute("SELECT count(*) FROM ev WHERE meta @> %s", (Jsonb({"site": "north"}),))
    assert cur.fetchone()[0] == 1
    try:
        cur.execute("INSERT INTO ev (time, meta) VALUES (%s, %s)", (t0, "{not json"))
    except psycopg.Error as e:
        assert e.sqlstate == "22P02", (e.sqlstate, str(e))
    else:
        raise AssertionError("invalid json accepted")

    # uuid columns: uuid.UUID parameters and results, text and binary.
    dev = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    cur.execute("CREATE TABLE dev (id uuid, name text)")
    cur.execute("INSERT INTO dev VALUES (%s, 'a'), (gen_random_uuid(), 'b')", (dev,))
    cur.execute("SELECT id, name FROM dev WHERE id = %s", (dev,))
    assert cur.fetchall() == [(dev, "a")]
    binary.execute("SELECT id FROM dev WHERE name = %s", ("a",))
    assert binary.fetchall() == [(dev,)]
    cur.execute("SELECT count(*) FROM dev WHERE id <> %s", (dev,))
    assert cur.fetchone()[0] == 1

    # A rolled-back transaction leaves nothing; a committed one stays;
    # a savepoint takes back only what followed it.
    conn.autocommit = False
    with conn.transaction(force_rollback=True):
        cur.execute("INSERT INTO m (time, device) VALUES (%s, 'gone')", (t0,))
    with conn.transaction():
        cur.execute("INSERT INTO m (time, device) VALUES (%s, 'kept')", (t0,))
        try:
            with conn.transaction():
                cur.execute("INSERT INTO m (time, device) VALUES (%s, 'inner')", (t0,))
                cur.execute("SELECT * FROM missing_table")
        except psycopg.errors.UndefinedTable:
            pass
    conn.autocommit = True
    cur.execute(
        "SELECT device, count(*) FROM m WHERE device IN ('gone', 'kept', 'inner') GROUP BY device"
    )
    assert cur.fetchall() == [("kept", 1)]

    # Errors carry PostgreSQL's SQLSTATE and the session goes on.
    for sql, state in [
        ("SELECT * FROM nope", "42P01"),
        ("SELECT 1/0", "22012"),
        ("INSERT INTO m (time) VALUES ('not a time')", "22007"),
        ("INSERT INTO m (device) VALUES ('x')", "23502"),
    ]:
        try:
            cur.execute(sql)
        except psycopg.Error as e:
            assert e.sqlstate == state, (sql, e.sqlstate, str(e))
        else:
            raise AssertionError(f"{sql} succeeded")
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    conn.close()
    print("psycopg workflow ok")


if __name__ == "__main__":
    main(int(sys.argv[1]))
