"""asyncpg's ordinary workflow against Tempora: its type introspection,
parameters, executemany, binary COPY (copy_records_to_table), typed results
(json, jsonb and uuid included),
prepared statements, transactions and errors.

Usage: python3 asyncpg_workflow.py PORT
"""
import asyncio
import datetime
import decimal
import sys
import uuid

import asyncpg

UTC = datetime.timezone.utc


async def main(port: int) -> None:
    c = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
    await c.execute(
        "CREATE TABLE a (time timestamptz NOT NULL, device text, v double precision, "
        "n numeric(10,2), k int)"
    )
    assert await c.fetchval("SELECT create_hypertable('a', 'time')") == "(1,public,a,t)"
    t0 = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    await c.execute(
        "INSERT INTO a VALUES ($1, $2, $3, $4, $5)", t0, "x", 1.5, decimal.Decimal("3.10"), 4
    )
    await c.executemany(
        "INSERT INTO a (time, device, v, k) VALUES ($1, $2, $3, $4)",
        [(t0 + datetime.timedelta(minutes=i), "y", float(i), i) for i in range(5)],
    )
    # asyncpg's bulk path: COPY ... FROM STDIN in binary format.
    status = await c.copy_records_to_table(
        "a",
        records=[(t0 + datetime.timedelta(hours=i), "z", 2.0, None, i) for i in range(3)],
        columns=["time", "device", "v", "n", "k"],
    )
    assert status == "COPY 3", status

    row = await c.fetchrow("SELECT time, device, v, n, k FROM a WHERE device = $1", "x")
    assert tuple(row) == (t0, "x", 1.5, decimal.Decimal("3.10"), 4), row
    assert await c.fetchval("SELECT count(*) FROM a") == 9
    assert await c.fetchval("SELECT n FROM a WHERE device = 'z' LIMIT 1") is None

    stmt = await c.prepare("SELECT count(*) FROM a WHERE k >= $1")
    assert [await stmt.fetchval(i) for i in range(3)] == [9, 7, 5]

    try:
        async with c.transaction():
            await c.execute("INSERT INTO a (time, device) VALUES ($1, 'gone')", t0)
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    async with c.transaction():
        await c.execute("INSERT INTO a (time, device) VALUES ($1, 'kept')", t0)
    assert await c.fetch(
        "SELECT device FROM a WHERE device IN ('gone', 'kept')"
    ) == [("kept",)]

    # json and jsonb in asyncpg's binary format (jsonb with its version
    # byte), as parameters, in binary COPY and in results.
    await c.execute("CREATE TABLE ev (time timestamptz NOT NULL, meta jsonb, raw json)")
    await c.execute(
        "INSERT INTO ev VALUES ($1, $2, $3)", t0, '{"b": [1, 2], "a": null}', '{"x" : 1}'
    )
    await c.copy_records_to_table(
        "ev", records=[(t0 + datetime.timedelta(hours=1), '{"site":"n"}', None)]
    )
    rows = await c.fetch("SELECT meta, raw, meta ->> 'site' FROM ev ORDER BY time")
    assert [tuple(r) for r in rows] == [
        ('{"a": null, "b": [1, 2]}', '{"x" : 1}', None),
        ('{"site": "n"}', None, "n"),
    ], rows
    assert await c.fetchval("SELECT count(*) FROM ev WHERE meta @> $1", '{"site": "n"}') == 1
    try:
        await c.execute("INSERT INTO ev (time, meta) VALUES ($1, $2)", t0, "{bad")
    except asyncpg.PostgresError as e:
        assert e.sqlstate == "22P02", e.sqlstate
    else:
        raise AssertionError("invalid jsonb accepted")

    # uuid results in asyncpg's binary format (16 bytes). Tempora describes
    # a parameter compared with or stored in a uuid column as text, so
    # asyncpg takes it as a str (docs/architecture.md, "Known gaps").
    dev = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    await c.execute("CREATE TABLE dev (id uuid, name text)")
    await c.execute("INSERT INTO dev VALUES ($1, 'a')", str(dev))
    assert await c.fetchval("SELECT id FROM dev WHERE id = $1", str(dev)) == dev
    assert await c.fetchval("SELECT name FROM dev WHERE id = $1", str(dev).upper()) == "a"

    try:
        await c.fetch("SELECT 1/0")
    except asyncpg.PostgresError as e:
        assert e.sqlstate == "22012", e.sqlstate
    else:
        raise AssertionError("division by zero succeeded")
    assert await c.fetchval("SELECT $1::int + 1", 41) == 42
    await c.close()
    print("asyncpg workflow ok")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
