// node-postgres (pg, pg-cursor, pg-copy-streams) against `weir serve`, as a Node.js user's first
// steps: connect, create a source, a table and a job, list the tables, describe columns and the
// primary key, query with parameters (sent as text, read by the types in RowDescription), a cursor,
// COPY out, error codes and a pool. Run by node_pg_check.py: `node node_pg_check.js PORT PAR_CSV`
// with NODE_PATH at the npm cache. Every check runs (a failure does not stop the rest); the failed
// ones go to stderr and the exit code is 1.
'use strict';
process.env.TZ = 'UTC'; // node-pg reads a timestamp (without time zone) as local time.
const assert = require('assert');
const pg = require('pg');
const Cursor = require('pg-cursor');
const { to: copyTo } = require('pg-copy-streams');

const [port, data] = process.argv.slice(2);
const CONFIG = { host: '127.0.0.1', port: Number(port), user: 'weir', database: 'weir' };
const DSN = `postgresql://weir@127.0.0.1:${port}/weir`;
const INT8 = 20, INT4 = 23, BOOL = 16, VARCHAR = 1043, TIMESTAMP = 1114;

const failures = [];
let passed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed += 1;
  } catch (e) {
    failures.push(`--- ${name}\n${e && e.stack ? e.stack : e}`);
  }
}
// The error a query fails with (an AssertionError when it does not fail).
async function errorOf(client, ...query) {
  try {
    await client.query(...query);
  } catch (e) {
    return e;
  }
  throw new assert.AssertionError({ message: `no error for ${JSON.stringify(query)}` });
}
const arrays = (result) => result.rows.map((r) => Object.values(r));
const copyOut = (client, sql) => new Promise((resolve, reject) => {
  const chunks = [];
  const stream = client.query(copyTo(sql));
  stream.on('data', (c) => chunks.push(c));
  stream.on('error', reject);
  stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
});

async function main() {
  const client = new pg.Client({ connectionString: DSN });
  await client.connect();
  // Setup: as asyncpg_check.py. A failure here stops the check (nothing after it can run).
  await client.query(`CREATE SOURCE ev (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) `
                     + `WITH (connector = 'file', path = '${data}', format = 'csv')`);
  await client.query('CREATE TABLE t (k VARCHAR, window_start TIMESTAMP, cnt BIGINT, total BIGINT, PRIMARY KEY (k, window_start))');
  await client.query('CREATE JOB j AS INSERT INTO t SELECT k, window_start, COUNT(*), SUM(v) '
                     + 'FROM TUMBLE(ev, ts, INTERVAL \'20\' SECOND) GROUP BY k, window_start');
  await client.query('WAIT JOB j');
  const literal = async (sql) => arrays(await client.query(sql));

  await check('rows by a text parameter; int8 comes as a string', async () => {
    // sql/parallelism.slt, worked out by hand: p1 has (1, 2), (2, 16), (4, 120).
    const r = await client.query('SELECT cnt, total FROM t WHERE k = $1 ORDER BY window_start', ['p1']);
    assert.deepStrictEqual(r.rows, [{ cnt: '1', total: '2' }, { cnt: '2', total: '16' }, { cnt: '4', total: '120' }]);
    assert.deepStrictEqual(r.fields.map((f) => [f.name, f.dataTypeID]), [['cnt', INT8], ['total', INT8]]);
    assert.strictEqual(r.rowCount, 3);
    assert.strictEqual(r.command, 'SELECT');
  });

  await check('JS types from RowDescription: varchar, timestamp, int8, int4, bool', async () => {
    const r = await client.query('SELECT k, window_start, cnt, CAST(cnt AS INTEGER) AS c4, cnt > $2 AS big '
                                 + 'FROM t WHERE k = $1 ORDER BY window_start', ['p1', 1]);
    assert.deepStrictEqual(r.fields.map((f) => f.dataTypeID), [VARCHAR, TIMESTAMP, INT8, INT4, BOOL]);
    assert.deepStrictEqual(r.rows, [
      { k: 'p1', window_start: new Date('2024-01-01T00:00:00Z'), cnt: '1', c4: 1, big: false },
      { k: 'p1', window_start: new Date('2024-01-01T00:00:20Z'), cnt: '2', c4: 2, big: true },
      { k: 'p1', window_start: new Date('2024-01-01T00:00:40Z'), cnt: '4', c4: 4, big: true },
    ]);
  });

  await check('an integer literal is int4 (a number), count(*) int8 (a string)', async () => {
    const r = await client.query('SELECT 1 AS one, count(*) AS n FROM t');
    assert.deepStrictEqual(r.fields.map((f) => f.dataTypeID), [INT4, INT8]);
    assert.deepStrictEqual(r.rows, [{ one: 1, n: '20' }]);
    // integer + integer literal stays integer.
    assert.deepStrictEqual((await client.query('SELECT $1::integer AS x', [41])).rows, [{ x: 41 }]);
  });

  await check('typed parameters answer as the same query with literals', async () => {
    assert.deepStrictEqual(arrays(await client.query('SELECT count(*) FROM t WHERE cnt = $1::bigint', [2])),
                           await literal('SELECT count(*) FROM t WHERE cnt = 2'));
    assert.deepStrictEqual(arrays(await client.query('SELECT k, cnt FROM t ORDER BY k, window_start LIMIT $1', [3])),
                           await literal('SELECT k, cnt FROM t ORDER BY k, window_start LIMIT 3'));
    assert.strictEqual((await client.query('SELECT k FROM t ORDER BY k, window_start LIMIT $1 OFFSET $2', [3, 18])).rowCount, 2);
    assert.deepStrictEqual(arrays(await client.query('SELECT count(*) FROM t WHERE k = ANY($1::varchar[])', [['p1', 'p2']])),
                           await literal("SELECT count(*) FROM t WHERE k IN ('p1', 'p2')"));
    // Untyped parameters take the type of what they are compared with; a number may come as a string.
    assert.deepStrictEqual(arrays(await client.query('SELECT total FROM t WHERE k = $1 AND cnt = $2', ['p1', 4])), [['120']]);
    assert.deepStrictEqual(arrays(await client.query('SELECT total FROM t WHERE k = $1 AND cnt = $2', ['p1', '4'])), [['120']]);
    assert.deepStrictEqual(arrays(await client.query('SELECT count(*) FROM t WHERE k = $1', [null])), [['0']]);
    assert.deepStrictEqual((await client.query('SELECT $1::bigint + 1 AS x', [41])).rows, [{ x: '42' }]);
    assert.deepStrictEqual((await client.query('SELECT $1::integer AS x', [41])).rows, [{ x: 41 }]);
    // A timestamp parameter: node-pg sends a Date as local time with its offset.
    assert.deepStrictEqual(arrays(await client.query('SELECT count(*) FROM t WHERE window_start >= $1::timestamp', [new Date('2024-01-01T00:00:40Z')])),
                           await literal("SELECT count(*) FROM t WHERE window_start >= TIMESTAMP '2024-01-01 00:00:40'"));
  });

  await check('a named prepared statement, run twice; rowMode array', async () => {
    const q = { name: 'total-by-key', text: 'SELECT total FROM t WHERE k = $1 AND cnt = $2' };
    assert.deepStrictEqual((await client.query({ ...q, values: ['p1', 4] })).rows, [{ total: '120' }]);
    assert.deepStrictEqual((await client.query({ ...q, values: ['p1', 2] })).rows, [{ total: '16' }]);
    const r = await client.query({ text: 'SELECT k, cnt FROM t WHERE k = $1 ORDER BY window_start', values: ['p1'], rowMode: 'array' });
    assert.deepStrictEqual(r.rows, [['p1', '1'], ['p1', '2'], ['p1', '4']]);
  });

  await check('list tables: information_schema.tables', async () => {
    const r = await client.query("SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name");
    // A source is a foreign table in the catalogs (NOTES.md); Weir's system tables are views.
    assert.deepStrictEqual(r.rows, [{ table_name: 'ev', table_type: 'FOREIGN' }, { table_name: 't', table_type: 'BASE TABLE' },
                                    { table_name: 'weir_jobs', table_type: 'VIEW' }, { table_name: 'weir_savepoints', table_type: 'VIEW' }]);
  });

  await check('information_schema names the database: table_catalog = current_database()', async () => {
    assert.deepStrictEqual((await client.query('SELECT current_database() AS db, current_schema() AS s')).rows, [{ db: 'weir', s: 'public' }]);
    const tables = await client.query("SELECT table_catalog FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 't'");
    assert.deepStrictEqual(tables.rows, [{ table_catalog: 'weir' }]);
    // knex's columnInfo() filters so: it finds nothing when the catalog is not the database.
    const columns = await client.query('SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database() '
                                       + 'AND table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position', ['t']);
    assert.deepStrictEqual(columns.rows.map((c) => c.column_name), ['k', 'window_start', 'cnt', 'total']);
  });

  await check('list tables: pg_tables and pg_class', async () => {
    assert.deepStrictEqual((await client.query("SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = 'public'")).rows,
                           [{ tablename: 't' }]);
    const r = await client.query('SELECT c.relname, c.relkind FROM pg_catalog.pg_class c '
                                 + 'JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace '
                                 + "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'f') ORDER BY c.relname");
    assert.deepStrictEqual(r.rows, [{ relname: 'ev', relkind: 'f' }, { relname: 't', relkind: 'r' }]);
  });

  await check('describe columns: information_schema.columns', async () => {
    const r = await client.query('SELECT column_name, data_type, is_nullable, ordinal_position FROM information_schema.columns '
                                 + "WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position", ['t']);
    // ordinal_position is information_schema.cardinal_number, a domain node-pg does not parse: compare as numbers.
    assert.deepStrictEqual(r.rows.map((c) => [c.column_name, c.data_type, c.is_nullable, Number(c.ordinal_position)]), [
      ['k', 'character varying', 'NO', 1],
      ['window_start', 'timestamp without time zone', 'NO', 2],
      ['cnt', 'bigint', 'YES', 3],
      ['total', 'bigint', 'YES', 4],
    ]);
  });

  await check('primary key: pg_index + pg_attribute', async () => {
    const r = await client.query('SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS data_type '
                                 + 'FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) '
                                 + "WHERE i.indrelid = 't'::regclass AND i.indisprimary ORDER BY a.attnum");
    assert.deepStrictEqual(r.rows, [{ attname: 'k', data_type: 'character varying' },
                                    { attname: 'window_start', data_type: 'timestamp without time zone' }]);
  });

  await check('primary key: information_schema.table_constraints + key_column_usage', async () => {
    const r = await client.query('SELECT tc.constraint_name, kcu.column_name FROM information_schema.table_constraints tc '
                                 + 'JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name '
                                 + 'AND kcu.table_schema = tc.table_schema AND kcu.table_name = tc.table_name '
                                 + "WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = 'public' AND tc.table_name = $1 "
                                 + 'ORDER BY kcu.ordinal_position', ['t']);
    assert.deepStrictEqual(r.rows, [{ constraint_name: 't_pkey', column_name: 'k' }, { constraint_name: 't_pkey', column_name: 'window_start' }]);
  });

  await check('pg-cursor: read in chunks of 3', async () => {
    const every = arrays(await client.query('SELECT k, cnt FROM t ORDER BY k, window_start'));
    assert.strictEqual(every.length, 20);
    const cursor = client.query(new Cursor('SELECT k, cnt FROM t ORDER BY k, window_start'));
    const chunks = [];
    for (;;) {
      const rows = await cursor.read(3);
      if (rows.length === 0) break;
      chunks.push(rows);
    }
    await cursor.close();
    assert.deepStrictEqual(chunks.map((c) => c.length), [3, 3, 3, 3, 3, 3, 2]);
    assert.deepStrictEqual(chunks.flat().map((r) => Object.values(r)), every);
    // With a parameter, in a transaction, closed before the end.
    await client.query('BEGIN');
    const some = client.query(new Cursor('SELECT k, cnt FROM t WHERE cnt > $1 ORDER BY k, window_start', [1]));
    const first = await some.read(3);
    await some.close();
    await client.query('COMMIT');
    assert.deepStrictEqual(first.map((r) => Object.values(r)), every.filter(([, cnt]) => Number(cnt) > 1).slice(0, 3));
    // The connection is usable afterwards.
    assert.deepStrictEqual((await client.query('SELECT count(*) AS n FROM t')).rows, [{ n: '20' }]);
  });

  await check('pg-copy-streams: COPY ... TO STDOUT', async () => {
    assert.strictEqual(await copyOut(client, "COPY (SELECT k, cnt FROM t WHERE k = 'p1' ORDER BY window_start) TO STDOUT WITH (FORMAT csv, HEADER)"),
                       'k,cnt\np1,1\np1,2\np1,4\n');
    const query = "SELECT k, cnt, CASE WHEN cnt = 2 THEN 'a,b' END AS note FROM t WHERE k = 'p1' ORDER BY window_start";
    assert.strictEqual(await copyOut(client, `COPY (${query}) TO STDOUT WITH (FORMAT csv, HEADER)`), 'k,cnt,note\np1,1,\np1,2,"a,b"\np1,4,\n');
    assert.strictEqual(await copyOut(client, `COPY (${query}) TO STDOUT`), 'p1\t1\t\\N\np1\t2\ta,b\np1\t4\t\\N\n');
    const table = await copyOut(client, 'COPY t (k, cnt) TO STDOUT');
    assert.strictEqual(table.split('\n').length, 21);
    assert.deepStrictEqual((await client.query('SELECT count(*) AS n FROM t')).rows, [{ n: '20' }]);
  });

  await check('error codes (simple and extended protocol)', async () => {
    for (const [query, code, message] of [
      [['SELECT * FROM nosuch'], '42P01', 'relation "nosuch" does not exist'],
      [['SELECT * FROM nosuch WHERE k = $1', ['p1']], '42P01', 'relation "nosuch" does not exist'],
      [['SELECT nosuch FROM t'], '42703', null],
      [['SELECT nosuch FROM t WHERE k = $1', ['p1']], '42703', null],
      [['SELECT cnt / 0 FROM t'], '22012', 'division by zero'],
      [['SELECT cnt / $1::bigint FROM t', [0]], '22012', 'division by zero'],
    ]) {
      const e = await errorOf(client, ...query);
      assert.strictEqual(e.code, code, `${JSON.stringify(query)}: ${e.code} ${e.message}`);
      if (message !== null) assert.strictEqual(e.message, message);
    }
    assert.deepStrictEqual((await client.query('SELECT count(*) AS n FROM t WHERE k = $1', ['p1'])).rows, [{ n: '3' }]);
  });

  await check('an error in a transaction aborts it until ROLLBACK (25P02)', async () => {
    await client.query('BEGIN');
    assert.strictEqual((await errorOf(client, 'SELECT * FROM nosuch')).code, '42P01');
    assert.strictEqual((await errorOf(client, 'SELECT 1')).code, '25P02');
    await client.query('ROLLBACK');
    assert.deepStrictEqual((await client.query('SELECT count(*) AS n FROM t')).rows, [{ n: '20' }]);
  });
  await client.end();

  await check('pg.Pool: concurrent clients, query, release', async () => {
    const pool = new pg.Pool({ ...CONFIG, max: 3 });
    try {
      const keys = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p1', 'p3'];
      const expected = new Map();
      for (const k of new Set(keys)) {
        expected.set(k, arrays(await pool.query(`SELECT cnt, total FROM t WHERE k = '${k}' ORDER BY window_start`)));
      }
      assert.deepStrictEqual(expected.get('p1'), [['1', '2'], ['2', '16'], ['4', '120']]);
      const got = await Promise.all(keys.map(async (k) => {
        const c = await pool.connect();
        try {
          return arrays(await c.query('SELECT cnt, total FROM t WHERE k = $1 ORDER BY window_start', [k]));
        } finally {
          c.release();
        }
      }));
      assert.deepStrictEqual(got, keys.map((k) => expected.get(k)));
      assert.ok(pool.totalCount <= 3, `pool.totalCount ${pool.totalCount}`);
      assert.strictEqual(pool.idleCount, pool.totalCount);
      assert.deepStrictEqual((await pool.query('SELECT count(*) AS n FROM t')).rows, [{ n: '20' }]);
    } finally {
      await pool.end();
    }
  });

  const total = passed + failures.length;
  if (failures.length) {
    console.error(failures.join('\n'));
    console.log(`node-postgres: ${failures.length} of ${total} checks FAILED`);
    process.exit(1);
  }
  console.log(`node-postgres: ok (${total} checks)`);
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  console.log('node-postgres: FAILED before the checks ran');
  process.exit(1);
});
