// node-postgres's ordinary workflow against Tempora: parameters, typed
// results (timestamptz as Date, numeric as string, NULL), named prepared
// statements reused, COPY FROM STDIN through pg-copy-streams,
// transactions, and errors with their SQLSTATE.
//
// Usage: node node_pg_workflow.js PORT
const assert = require("node:assert/strict");
const { pipeline } = require("node:stream/promises");
const { Readable } = require("node:stream");
const { Client } = require("pg");
const { from: copyFrom } = require("pg-copy-streams");

async function main(port) {
  const c = new Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" });
  await c.connect();
  await c.query(
    "CREATE TABLE p (time timestamptz NOT NULL, device text, v double precision, n numeric(10,2), k int)"
  );
  const ht = await c.query("SELECT create_hypertable('p', 'time')");
  assert.equal(ht.rows[0].create_hypertable, "(1,public,p,t)");
  const t0 = new Date(Date.UTC(2024, 0, 1));
  for (let i = 0; i < 5; i++) {
    const r = await c.query("INSERT INTO p VALUES ($1, $2, $3, $4, $5)", [
      new Date(t0.getTime() + i * 60000), i % 2 ? "b" : "a", i * 0.5, i === 2 ? null : "1.25", i,
    ]);
    assert.equal(r.rowCount, 1);
  }
  const lines = [0, 1, 2].map((i) => `2024-01-02 0${i}:00:00+00\tc\t${i}\n`).join("");
  await pipeline(Readable.from([lines]), c.query(copyFrom("COPY p (time, device, v) FROM STDIN")));

  const one = await c.query("SELECT time, device, v, n, k FROM p WHERE k = $1", [2]);
  assert.deepEqual(one.rows, [{ time: new Date(t0.getTime() + 120000), device: "a", v: 1, n: null, k: 2 }]);
  const nums = await c.query("SELECT n FROM p WHERE k = 1");
  assert.equal(nums.rows[0].n, "1.25");
  for (let i = 0; i < 3; i++) {
    const r = await c.query({ name: "count_k", text: "SELECT count(*)::int AS n FROM p WHERE k >= $1", values: [i] });
    assert.equal(r.rows[0].n, 5 - i);
  }
  const total = await c.query("SELECT count(*)::int AS n FROM p");
  assert.equal(total.rows[0].n, 8);

  await c.query("BEGIN");
  await c.query("INSERT INTO p (time, device) VALUES (now(), 'gone')");
  await c.query("ROLLBACK");
  await c.query("BEGIN");
  await c.query("INSERT INTO p (time, device) VALUES (now(), 'kept')");
  await c.query("COMMIT");
  const tx = await c.query("SELECT device FROM p WHERE device IN ('gone', 'kept')");
  assert.deepEqual(tx.rows, [{ device: "kept" }]);

  await assert.rejects(c.query("SELECT * FROM nope"), (e) => e.code === "42P01");
  await assert.rejects(c.query("SELECT 1/0"), (e) => e.code === "22012");
  const after = await c.query("SELECT 1 AS one");
  assert.equal(after.rows[0].one, 1);
  await c.end();
  console.log("node-postgres workflow ok");
}

main(Number(process.argv[2])).catch((e) => {
  console.error(e);
  process.exit(1);
});
