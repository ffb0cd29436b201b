// Funnel's connector conformance script for Node.js: runs the same
// scenarios with the `mariadb` and `mysql2` npm packages and prints one
// deterministic line per check. crates/funnel/tests/node_connectors.rs
// runs it against MariaDB directly and through Funnel and compares.
//
//   node node.js PORT USER PASSWORD SCHEMA USER2 PASSWORD2 [SCENARIO...]
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const mariadb = require('mariadb');
const mysql2 = require('mysql2/promise');

const [port, user, password, schema, user2, password2, ...only] = process.argv.slice(2);
const base = { host: '127.0.0.1', port: Number(port), user, password, database: schema };

const lines = [];
function out(name, ...values) {
  lines.push((name + ' ' + values.map(show).join(' ')).split(schema).join('SCHEMA'));
}
function show(v) {
  return JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? x.toString() + 'n' : x instanceof Buffer ? 'buf:' + x.toString('hex') : x));
}
function err(e) {
  // Statement ids are the server's (or Funnel's) numbering.
  const msg = (e.sqlMessage || e.message).replace(/handler \(\d+\)/, 'handler (N)');
  return { errno: e.errno, code: e.code, sqlState: e.sqlState, msg };
}
async function attempt(fn) {
  try {
    return await fn();
  } catch (e) {
    return { error: err(e) };
  }
}
// The OK-packet fields of a result, for either connector.
function ok(r) {
  if (Array.isArray(r)) return r.map(ok);
  if (r && typeof r === 'object' && 'affectedRows' in r) {
    return { affected: r.affectedRows, insertId: r.insertId, warnings: r.warningStatus ?? r.warningCount, changed: r.changedRows };
  }
  return r;
}
function rows(r) {
  return Array.isArray(r) ? r.map((x) => (Array.isArray(x) || (x && typeof x === 'object' && !('affectedRows' in x)) ? x : ok(x))) : ok(r);
}
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

const scenarios = {
  // --- mariadb (MariaDB Connector/Node.js) ---
  async mariadb_basics() {
    const c = await mariadb.createConnection({ ...base });
    await c.query('CREATE TABLE IF NOT EXISTS m_basic (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(5), n INT)');
    out('insert', ok(await c.query("INSERT INTO m_basic (v, n) VALUES ('a', 1), ('b', 2)")));
    out('insert-warn', ok(await attempt(() => c.query("INSERT IGNORE INTO m_basic (v, n) VALUES ('toolongvalue', 300)"))));
    out('warnings', await c.query('SHOW WARNINGS'));
    out('update', ok(await c.query('UPDATE m_basic SET n = n + 1 WHERE id > 1')));
    out('select', await c.query('SELECT id, v, n FROM m_basic ORDER BY id'));
    out('types', await c.query("SELECT 1 AS i, 2.5 AS d, 'x' AS s, NULL AS z, CAST('2024-01-02 03:04:05' AS DATETIME) AS dt, 12345678901234 AS big, X'00ff' AS b"));
    out('error', await attempt(() => c.query('SELECT nosuch FROM m_basic')));
    out('syntax', await attempt(() => c.query('SELEC 1')));
    out('dup', await attempt(() => c.query("INSERT INTO m_basic (id, v) VALUES (1, 'dup')")));
    out('after-error', await c.query('SELECT 42 AS v'));
    out('meta', (await c.query('SELECT id, v FROM m_basic LIMIT 1')).meta.map((m) => [m.name(), m.type, m.columnLength]));
    await c.end();
  },

  async mariadb_pipelining() {
    // Pipelining is on by default: these are written before their results are read.
    const c = await mariadb.createConnection({ ...base, pipelining: true });
    const r = await Promise.allSettled([
      c.query("SET @p = 'pipe', time_zone = '+03:00'"),
      c.query('SELECT @p AS p, @@time_zone AS tz'),
      c.query('SELECT nosuch'),
      c.query('SELECT 1 + 1 AS two'),
      c.execute('SELECT ? * 2 AS x', [21]),
      c.query('DO SLEEP(0.05)'),
      c.execute('SELECT ? AS y', ['z']),
      c.query("SELECT @p AS p"),
    ]);
    out('pipelined', r.map((x) => (x.status === 'fulfilled' ? rows(x.value) : { error: err(x.reason) })));
    // Many pipelined statements in one go.
    const many = await Promise.all(Array.from({ length: 200 }, (_, i) => c.query('SELECT ? AS n', [i])));
    out('pipelined-200', many.map((x) => x[0].n).reduce((a, b) => a + b, 0));
    await c.end();
  },

  async mariadb_batch() {
    // Without bulk (the connector's fallback where the server does not
    // offer MariaDB's COM_STMT_BULK_EXECUTE): pipelined COM_STMT_EXECUTEs,
    // one result each.
    const c = await mariadb.createConnection({ ...base, bulk: false });
    await c.query('CREATE TABLE IF NOT EXISTS m_batch (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10), n INT)');
    const vals = Array.from({ length: 2500 }, (_, i) => ['v' + i, i]);
    const all = ok(await c.batch('INSERT INTO m_batch (v, n) VALUES (?, ?)', vals));
    // One result per row: their count, sums and ends.
    out('batch', all.length, all.reduce((a, r) => a + r.affected, 0), all[0], all[all.length - 1], all.every((r, i) => r.insertId === BigInt(i + 1) && r.warnings === 0));
    out('batch-full', ok(await c.batch({ sql: 'INSERT INTO m_batch (v, n) VALUES (?, ?)', fullResult: true }, [['x', 1], ['y', 2]])));
    out('batch-update', ok(await c.batch('UPDATE m_batch SET n = n + ? WHERE id = ?', [[1, 1], [2, 2], [3, 999999]])));
    out('batch-error', await attempt(() => c.batch('INSERT INTO m_batch (id, v) VALUES (?, ?)', [[5000, 'a'], [1, 'dup'], [5001, 'b']])));
    out('batch-count', await c.query('SELECT COUNT(*) AS c, SUM(n) AS s FROM m_batch'));
    await c.end();
  },

  async mariadb_json_types() {
    // The connector reads a column's declared type (json, uuid, a
    // geometry's) from MariaDB's extended metadata: a JSON column comes
    // back as an object, by query and by execute, also from a pool of
    // clients sharing Funnel's connections with a client without it.
    const c = await mariadb.createConnection({ ...base });
    await c.query('CREATE TABLE IF NOT EXISTS m_json (id INT PRIMARY KEY, doc JSON, u UUID, p POINT)');
    await c.query("REPLACE INTO m_json VALUES (1, '{\"a\": [1, 2], \"b\": null}', '123e4567-e89b-12d3-a456-426614174000', POINT(1, 2))");
    out('json-query', await c.query('SELECT doc, u, p FROM m_json'));
    out('json-execute', await c.execute('SELECT doc, u, p FROM m_json WHERE id = ?', [1]));
    out('json-meta', (await c.query('SELECT doc, u, p FROM m_json')).meta.map((m) => [m.name(), m.type, m.dataTypeFormat ?? null]));
    out('json-expr', await c.query("SELECT JSON_OBJECT('k', id) AS j, JSON_ARRAY(1, 'x') AS a FROM m_json"));
    const plain = await mysql2.createConnection({ host: '127.0.0.1', port: Number(port), user, password, database: schema });
    const others = await Promise.all([0, 1, 2].map(() => mariadb.createConnection({ ...base })));
    const got = await Promise.all([
      ...others.map((o, i) => o.execute('SELECT doc, ? AS i FROM m_json', [i])),
      plain.execute('SELECT doc FROM m_json WHERE id = ?', [1]).then(([r]) => r),
    ]);
    out('json-shared', got);
    await plain.end();
    for (const o of others) await o.end();
    await c.end();
  },

  async mariadb_stream() {
    const c = await mariadb.createConnection({ ...base });
    const others = await Promise.all([0, 1, 2].map(() => mariadb.createConnection({ ...base })));
    let stop = false;
    const busy = others.map(async (o, i) => {
      let n = 0;
      while (!stop) {
        const r = await o.query('SELECT ? AS i, @@session.sql_mode AS m', [i]);
        if (r[0].i !== i) throw new Error('crossed');
        n++;
      }
      return n > 0;
    });
    const s = c.queryStream('SELECT seq, REPEAT(CHAR(65 + seq % 26), 100) AS s FROM seq_1_to_30000');
    let count = 0, sum = 0, len = 0;
    for await (const row of s) {
      count++;
      sum += Number(row.seq);
      len += row.s.length;
      if (count % 5000 === 0) await sleep(10);
    }
    stop = true;
    out('stream', count, sum, len, await Promise.all(busy));
    out('after-stream', await c.query('SELECT 7 AS v'));
    for (const o of others) await o.end();
    await c.end();
  },

  async mariadb_prepare() {
    const c = await mariadb.createConnection({ ...base, prepareCacheLength: 2 });
    const p = await c.prepare('SELECT ? + 1 AS v, ? AS s');
    out('prepare', p.parameterCount, p.columns.map((m) => m.name()));
    out('exec1', await p.execute([1, 'a']));
    out('exec2', await p.execute([41, null]));
    p.close();
    // The prepare cache: three statements through a cache of two.
    for (let round = 0; round < 3; round++) {
      for (const sql of ['SELECT ? AS a', 'SELECT ? AS b', 'SELECT ? AS c']) {
        out('cached', sql, await c.execute(sql, [round]));
      }
    }
    out('exec-error', await attempt(() => c.execute('SELECT nosuch + ?', [1])));
    out('exec-dml', ok(await c.execute('CREATE TEMPORARY TABLE m_tmp (id INT AUTO_INCREMENT PRIMARY KEY, v INT)')));
    out('exec-insert', ok(await c.execute('INSERT INTO m_tmp (v) VALUES (?), (?)', [1, 2])));
    out('exec-types', await c.execute('SELECT ? AS i, ? AS d, ? AS s, ? AS b, ? AS dt', [7, 1.5, 'str', Buffer.from([1, 2]), new Date(Date.UTC(2024, 0, 2, 3, 4, 5))]));
    out('exec-rows', await c.execute('SELECT id, v FROM m_tmp ORDER BY id'));
    await c.end();
  },

  // MariaDB's metadata cache, which this connector asks for: a procedure's
  // result sets (a CALL in an executable comment too) carry their column
  // definitions at every execute, and definitions over several reads
  // (300 columns of long names) are left out where the server does.
  async mariadb_metadata_cache() {
    const c = await mariadb.createConnection({ ...base });
    await c.query("CREATE PROCEDURE nmc_p() BEGIN SELECT 1 AS a; SELECT 'x' AS b, 2 AS n; END");
    for (const sql of ['CALL nmc_p()', '/*!CALL nmc_p() */']) {
      for (let round = 0; round < 2; round++) {
        out('mcache-call', sql, round, await attempt(() => c.execute(sql)));
      }
    }
    const cols = Array.from({ length: 300 }, (_, i) => `${'c'.repeat(56)}_${String(i).padStart(3, '0')}`);
    await c.query(`CREATE TABLE nmc_w (${cols.map((x) => `${x} INT`).join(', ')})`);
    await c.query(`INSERT INTO nmc_w (${cols[0]}, ${cols[299]}) VALUES (1, 299)`);
    for (let round = 0; round < 3; round++) {
      const r = await c.execute('SELECT * FROM nmc_w WHERE ? > 0', [1]);
      out('mcache-wide', round, Object.keys(r[0]).length, r[0][cols[0]], r[0][cols[299]]);
    }
    await c.end();
  },

  async mariadb_reset() {
    const c = await mariadb.createConnection({ ...base });
    await c.query("SET @r = 'set', autocommit = 0, time_zone = '+02:00'");
    const p = await c.prepare('SELECT ? AS v');
    await c.query('CREATE TEMPORARY TABLE m_reset_tmp (id INT)');
    out('before-reset', await c.query('SELECT @r AS r, @@autocommit AS ac, @@time_zone AS tz'));
    out('reset', await attempt(() => c.reset()));
    out('after-reset', await c.query('SELECT @r AS r, @@autocommit AS ac, @@time_zone AS tz'));
    out('tmp-after-reset', await attempt(() => c.query('SELECT * FROM m_reset_tmp')));
    out('stmt-after-reset', await attempt(() => p.execute([1])));
    await c.end();
  },

  async mariadb_change_user() {
    const c = await mariadb.createConnection({ ...base });
    await c.query("SET @cu = 'before'");
    out('whoami', await c.query('SELECT DATABASE() = ? AS d', [schema]));
    out('change', await attempt(() => c.changeUser({ user: user2, password: password2, database: schema })));
    out('whoami2', await c.query('SELECT DATABASE() = ? AS d, @cu AS v', [schema]));
    out('change-bad', await attempt(() => c.changeUser({ user: user2, password: 'wrong' })));
    await c.end().catch(() => {});
  },

  async mariadb_timeout() {
    const c = await mariadb.createConnection({ ...base });
    out('timeout', await attempt(() => c.query({ sql: 'SELECT SLEEP(2) AS s', timeout: 200 })));
    out('timeout-fast', await c.query({ sql: 'SELECT 1 AS v', timeout: 1000 }));
    out('after-timeout', await c.query('SELECT @@max_statement_time AS m'));
    await c.end();
    const t = await mariadb.createConnection({ ...base, queryTimeout: 300 });
    out('session-timeout', await attempt(() => t.query('SELECT SLEEP(2) AS s')));
    out('session-timeout-var', await t.query('SELECT @@max_statement_time AS m'));
    await t.end();
  },

  async mariadb_infile() {
    const file = path.join(os.tmpdir(), `funnel-node-infile-${schema}.csv`);
    fs.writeFileSync(file, Array.from({ length: 1000 }, (_, i) => `${i},name${i}`).join('\n') + '\n');
    const c = await mariadb.createConnection({ ...base, permitLocalInfile: true });
    await c.query('CREATE TABLE IF NOT EXISTS m_infile (id INT PRIMARY KEY, name VARCHAR(20))');
    out('infile', ok(await attempt(() => c.query(`LOAD DATA LOCAL INFILE '${file}' INTO TABLE m_infile FIELDS TERMINATED BY ','`))));
    out('infile-rows', await c.query('SELECT COUNT(*) AS c, MAX(name) AS m FROM m_infile'));
    out('infile-dup', ok(await attempt(() => c.query(`LOAD DATA LOCAL INFILE '${file}' IGNORE INTO TABLE m_infile FIELDS TERMINATED BY ','`))));
    out('infile-missing', await attempt(() => c.query(`LOAD DATA LOCAL INFILE '/nonexistent/funnel.csv' INTO TABLE m_infile`)));
    out('after-infile', await c.query('SELECT 3 AS v'));
    await c.end();
    const d = await mariadb.createConnection({ ...base });
    out('infile-denied', await attempt(() => d.query(`LOAD DATA LOCAL INFILE '${file}' INTO TABLE m_infile`)));
    out('after-denied', await attempt(() => d.query('SELECT 4 AS v')));
    await d.end().catch(() => {});
    fs.unlinkSync(file);
  },

  async mariadb_multi() {
    const c = await mariadb.createConnection({ ...base, multipleStatements: true });
    out('multi', rows(await c.query("SELECT 1 AS a; SET @m = 5; SELECT @m AS m, 'x' AS s; DO 1")));
    out('multi-error', await attempt(() => c.query('SELECT 1 AS a; SELECT nosuch; SELECT 3 AS c')));
    out('after-multi-error', await c.query('SELECT @m AS m'));
    await c.end();
  },

  async mariadb_transactions() {
    const c = await mariadb.createConnection({ ...base });
    const o = await mariadb.createConnection({ ...base });
    await c.query('CREATE TABLE IF NOT EXISTS m_tx (id INT PRIMARY KEY, v INT) ENGINE=InnoDB');
    await c.beginTransaction();
    await c.query('INSERT INTO m_tx VALUES (1, 1)');
    out('in-tx', await c.query('SELECT COUNT(*) AS c FROM m_tx'), await o.query('SELECT COUNT(*) AS c FROM m_tx'));
    await c.rollback();
    out('rolled-back', await c.query('SELECT COUNT(*) AS c FROM m_tx'));
    await c.beginTransaction();
    await c.query('INSERT INTO m_tx VALUES (2, 2)');
    await c.commit();
    out('committed', await o.query('SELECT id FROM m_tx'));
    await c.query('SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE');
    await c.query('SET autocommit = 0');
    await c.query('INSERT INTO m_tx VALUES (3, 3)');
    out('autocommit0', await c.query('SELECT @@autocommit AS a, @@tx_isolation AS i'), await o.query('SELECT COUNT(*) AS c FROM m_tx'));
    await c.rollback();
    out('autocommit0-rolled', await o.query('SELECT COUNT(*) AS c FROM m_tx'));
    await c.end();
    await o.end();
  },

  async mariadb_pool() {
    // More pool connections than Funnel has backend connections.
    const pool = mariadb.createPool({ ...base, connectionLimit: 8, resetAfterUse: true, minimumIdle: 8 });
    const results = await Promise.all(
      Array.from({ length: 24 }, async (_, i) => {
        const c = await pool.getConnection();
        try {
          const before = await c.query('SELECT @who AS who, @@time_zone AS tz, @@sql_mode AS m');
          await c.query(`SET @who = ${i}, time_zone = '+0${i % 10}:00', sql_mode = '${i % 2 ? 'ANSI_QUOTES' : 'NO_ZERO_DATE'}'`);
          await sleep(5 * (i % 3));
          const p = await c.prepare('SELECT ? AS echo, @who AS who');
          const mid = await p.execute([i]);
          p.close();
          const after = await c.query('SELECT @who AS who, @@time_zone AS tz, @@sql_mode AS m');
          return [i, before[0].who, mid[0], after[0]];
        } finally {
          await c.release();
        }
      })
    );
    for (const r of results) out('pool', ...r);
    out('pool-query', await Promise.all(Array.from({ length: 16 }, (_, i) => pool.query('SELECT ? AS n, @who AS w', [i]))));
    await pool.end();
  },

  async mariadb_server_info() {
    const c = await mariadb.createConnection({ ...base, initSql: "SET @init = 'yes'", sessionVariables: { sql_mode: 'ANSI_QUOTES', wait_timeout: 1234 } });
    out('is-mariadb', c.info.isMariaDB(), c.info.hasMinVersion(10, 6, 0), /^\d+\.\d+\.\d+/.test(c.serverVersion()));
    out('init', await c.query('SELECT @init AS i, @@sql_mode AS m, @@wait_timeout AS w'));
    out('info-db', c.info.database);
    await c.query('CREATE DATABASE IF NOT EXISTS ' + schema + '_other');
    await c.query('USE ' + schema + '_other');
    out('info-db-after-use', c.info.database, await c.query('SELECT DATABASE() AS d'));
    await c.query('USE ' + schema);
    out('info-db-back', c.info.database);
    await c.query('SET NAMES latin1');
    out('charset-tracked', c.info.collation.charset, await c.query("SELECT 'h\u00e9' AS s, HEX('\u00e9') AS h, @@character_set_client AS cs"));
    await c.query('SET NAMES utf8mb4');
    out('charset-back', c.info.collation.charset, await c.query("SELECT 'h\u00e9' AS s, HEX('\u00e9') AS h"));
    await c.end();
  },

  async mariadb_charsets() {
    // Clients with different login character sets sharing backend connections.
    const opts = [{ charset: 'latin1' }, { collation: 'UTF8MB4_UNICODE_CI' }, { charset: 'utf8mb4' }, { collation: 'UTF8MB3_GENERAL_CI' }];
    const cs = await Promise.all(opts.map((o) => mariadb.createConnection({ ...base, ...o })));
    const got = await Promise.all(
      cs.map(async (c, i) => {
        const r = [];
        for (let k = 0; k < 4; k++) {
          r.push((await c.query("SELECT @@character_set_client AS c, @@collation_connection AS cc, 'caf\u00e9 \u00fc' AS s, HEX('\u00e9') AS h, ? AS p", ['\u00e4' + k]))[0]);
          await sleep(i);
        }
        return r;
      })
    );
    got.forEach((g, i) => out('charset', opts[i], g));
    for (const c of cs) await c.end();
  },

  async mariadb_concurrent() {
    // Six pipelining clients, each with its own session state, interleaved.
    const cs = await Promise.all(Array.from({ length: 6 }, () => mariadb.createConnection({ ...base })));
    await cs[0].query('CREATE TABLE IF NOT EXISTS m_conc (id INT PRIMARY KEY, who INT) ENGINE=InnoDB');
    const got = await Promise.all(
      cs.map(async (c, i) => {
        const r = await Promise.all([
          c.query(`SET @me = ${i}, time_zone = '+0${i}:30', sql_mode = '${['ANSI', 'TRADITIONAL', 'NO_BACKSLASH_ESCAPES', 'PAD_CHAR_TO_FULL_LENGTH', '', 'ORACLE'][i]}'`),
          c.query(`SET SESSION TRANSACTION ISOLATION LEVEL ${i % 2 ? 'READ COMMITTED' : 'REPEATABLE READ'}`),
          c.query(i % 2 ? 'SET autocommit = 0' : 'START TRANSACTION'),
          c.execute('INSERT INTO m_conc VALUES (?, ?)', [i, i]),
          c.query('SELECT @me AS me, @@time_zone AS tz, @@sql_mode AS m, @@tx_isolation AS iso, @@autocommit AS ac'),
          c.execute('SELECT who FROM m_conc WHERE id = ?', [i]),
          c.query('SELECT LAST_INSERT_ID() AS li, ROW_COUNT() AS rc'),
        ]);
        await sleep(10 * (i % 3));
        r.push(await c.query(i % 3 === 0 ? 'ROLLBACK' : 'COMMIT'));
        r.push(await c.execute('SELECT @me AS me, @@autocommit AS ac, ? AS k', [i]));
        return rows(r);
      })
    );
    got.forEach((g, i) => out('conc', i, g));
    out('conc-table', await cs[0].query('SELECT id FROM m_conc ORDER BY id'));
    for (const c of cs) await c.end();
  },

  async mariadb_long_data() {
    // Buffers of 16 KB and more go by COM_STMT_SEND_LONG_DATA.
    const c = await mariadb.createConnection({ ...base });
    const o = await mariadb.createConnection({ ...base });
    await c.query('CREATE TABLE IF NOT EXISTS m_long (id INT PRIMARY KEY, b LONGBLOB, t LONGTEXT)');
    const p = await c.prepare('INSERT INTO m_long VALUES (?, ?, ?)');
    const big = Buffer.alloc(300000, 7);
    const [r1, mid] = await Promise.all([p.execute([1, big, 'x'.repeat(20000)]), o.query('SELECT 5 AS v')]);
    out('long', ok(r1), mid);
    out('long-stream', ok(await attempt(() => p.execute([2, Buffer.alloc(20000, 1), 'y'.repeat(70000)]))));
    p.close();
    out('long-rows', await c.query('SELECT id, LENGTH(b) AS lb, MD5(b) AS mb, LENGTH(t) AS lt FROM m_long ORDER BY id'));
    await c.end();
    await o.end();
  },

  async mariadb_destroy() {
    // destroy() during a running query: the connector KILLs it through a new connection.
    const c = await mariadb.createConnection({ ...base });
    const o = await mariadb.createConnection({ ...base });
    await c.query("SET @d = 'x'");
    const start = Date.now();
    const running = c.query('SELECT SLEEP(4) AS s').then((r) => r, (e) => ({ error: err(e) }));
    await sleep(300);
    c.destroy();
    const res = await running;
    out('destroyed', res.error ? res.error.code : res);
    out('others', await o.query('SELECT 1 AS v'), Date.now() - start < 2500);
    await o.end();
  },

  async mariadb_big_infile() {
    const file = path.join(os.tmpdir(), `funnel-node-big-${schema}.csv`);
    fs.writeFileSync(file, Array.from({ length: 60000 }, (_, i) => `${i},${'n'.repeat(80)}${i}`).join('\n') + '\n');
    const c = await mariadb.createConnection({ ...base, permitLocalInfile: true });
    const o = await mariadb.createConnection({ ...base });
    await c.query('CREATE TABLE IF NOT EXISTS m_big_infile (id INT PRIMARY KEY, name VARCHAR(100))');
    const [r, q] = await Promise.all([
      c.query(`LOAD DATA LOCAL INFILE '${file}' INTO TABLE m_big_infile FIELDS TERMINATED BY ','`),
      Promise.all(Array.from({ length: 20 }, (_, i) => o.query('SELECT ? AS i', [i]))),
    ]);
    out('big-infile', ok(r), q.length);
    out('big-infile-rows', await c.query('SELECT COUNT(*) AS c, SUM(LENGTH(name)) AS l FROM m_big_infile'));
    await c.end();
    await o.end();
    fs.unlinkSync(file);
  },

  async mariadb_batch_default() {
    // The connector's default: COM_STMT_BULK_EXECUTE where the server offers
    // bulk operations (one aggregated OK: all rows' count, the first id). Four
    // clients at once on Funnel's two connections, the same INSERT text for
    // all, each binding its own types; their own tables for their ids.
    const cs = await Promise.all([0, 1, 2, 3].map(() => mariadb.createConnection({ ...base })));
    await cs[0].query('CREATE TABLE IF NOT EXISTS m_bulk (id INT AUTO_INCREMENT PRIMARY KEY, who INT, v VARCHAR(20), n BIGINT, UNIQUE (who, v))');
    await Promise.all(cs.map((c, i) => c.query(`CREATE TABLE IF NOT EXISTS m_bulk_${i} (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20) UNIQUE, n INT DEFAULT 7)`)));
    const value = (i, k) => [k, String(k), BigInt(k) * 1000000000000n, k % 2 ? null : k][i];
    const res = await Promise.all(cs.map(async (c, i) => {
      const r = [];
      for (let round = 0; round < 3; round++) {
        const shared = await c.batch('INSERT INTO m_bulk (who, v, n) VALUES (?, ?, ?)',
          Array.from({ length: 25 }, (_, k) => [i, `r${round}k${k}`, value(i, k)]));
        r.push(['shared', Array.isArray(shared) ? 'per-row' : 'aggregate', ok(shared).affected]);
        const own = await c.batch(`INSERT INTO m_bulk_${i} (v, n) VALUES (?, ?)`,
          Array.from({ length: 10 }, (_, k) => [`o${round}_${k}`, round * 100 + k]));
        r.push(['own', ok(own), await c.query('SELECT LAST_INSERT_ID() AS li, ROW_COUNT() AS rc')]);
        // A duplicate in the middle: one statement, which applies no row.
        r.push(['dup', await attempt(() => c.batch(`INSERT INTO m_bulk_${i} (v, n) VALUES (?, ?)`,
          [[`d${round}`, 1], [`o${round}_3`, 1], [`e${round}`, 1]]))]);
        r.push(['update', ok(await c.batch(`UPDATE m_bulk_${i} SET n = n + ? WHERE v = ?`,
          [[1000, `o${round}_1`], [1000, `o${round}_2`], [1, 'none']]))]);
        r.push(['delete', ok(await c.batch(`DELETE FROM m_bulk_${i} WHERE v = ?`, [[`o${round}_9`], ['none']]))]);
      }
      // In a transaction: the failing bulk undoes its own rows only.
      await c.beginTransaction();
      r.push(['tx', ok(await c.batch(`INSERT INTO m_bulk_${i} (v) VALUES (?)`, [['t1'], ['t2']]))]);
      r.push(['tx-dup', await attempt(() => c.batch(`INSERT INTO m_bulk_${i} (v) VALUES (?)`, [['t3'], ['t1']]))]);
      await c.commit();
      // RETURNING: a result set of every row's.
      r.push(['returning', await attempt(() => c.batch(`INSERT INTO m_bulk_${i} (v) VALUES (?) RETURNING id, v, n`, [['q1'], ['q2']]))]);
      r.push(['rows', await c.query(`SELECT COUNT(*) AS c, SUM(n) AS s, GROUP_CONCAT(v ORDER BY id) AS v FROM m_bulk_${i}`)]);
      r.push(['shared-rows', await c.query(`SELECT COUNT(*) AS c, COUNT(n) AS nn, SUM(n) AS s FROM m_bulk WHERE who = ${i}`)]);
      return r;
    }));
    res.forEach((r, i) => r.forEach((x) => out(`batch-default ${i} ${x[0]}`, ...x.slice(1))));
    await Promise.all(cs.map((c) => c.end()));
  },

  async mariadb_batch_big() {
    // A bulk past 16 MB: the connector splits it at max_allowed_packet, and
    // the pieces span several protocol packets. Another client queries meanwhile.
    const [c, o] = await Promise.all([0, 1].map(() => mariadb.createConnection({ ...base })));
    await c.query('CREATE TABLE IF NOT EXISTS m_bulk_big (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(200), n INT)');
    const pad = 'x'.repeat(150);
    const vals = Array.from({ length: 120000 }, (_, i) => [pad + i, i]);
    const [r, q] = await Promise.all([
      c.batch('INSERT INTO m_bulk_big (v, n) VALUES (?, ?)', vals),
      Promise.all(Array.from({ length: 20 }, (_, i) => o.query('SELECT ? AS i', [i]))),
    ]);
    out('batch-big', ok(r), q.length, await c.query('SELECT COUNT(*) AS c, SUM(n) AS s, SUM(LENGTH(v)) AS l FROM m_bulk_big'));
    await Promise.all([c.end(), o.end()]);
  },

  async mariadb_escapes() {
    // The connector escapes text parameters by the NO_BACKSLASH_ESCAPES status flag of the
    // last reply. Three clients, two of them in that mode, share two connections: such a
    // plain query must not pin.
    const tricky = "a'b\\c\"d\\'";
    const cs = await Promise.all([0, 1, 2].map(() => mariadb.createConnection({ ...base })));
    await cs[1].query("SET sql_mode = 'NO_BACKSLASH_ESCAPES'");
    await cs[2].query("SET sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')");
    try {
      const got = await Promise.all(
        cs.map(async (c, i) => {
          const r = [];
          for (let k = 0; k < 4; k++) {
            r.push((await c.query('SELECT ? AS v, LENGTH(?) AS l, @@sql_mode LIKE ? AS nbe', [tricky + k, tricky, '%NO_BACKSLASH%']))[0]);
            if (k === 1 && i === 2) await c.query("SET sql_mode = ''");
          }
          return r;
        })
      );
      got.forEach((g, i) => out('escape', i, g));
    } finally {
      for (const c of cs) await c.end().catch(() => {});
    }
  },

  async mariadb_compress() {
    const c = await mariadb.createConnection({ ...base, compress: true });
    const o = await mariadb.createConnection({ ...base });
    const [r, q] = await Promise.all([
      c.query('SELECT seq, REPEAT(CHAR(65 + seq % 26), 1000) AS s FROM seq_1_to_3000'),
      o.query('SELECT 1 AS v'),
    ]);
    out('compress', r.length, r.reduce((a, x) => a + x.s.length, 0), q);
    out('compress-exec', await c.execute('SELECT ? AS v, LENGTH(?) AS l', ['z', 'q'.repeat(100000)]));
    out('compress-big', (await c.query("SELECT REPEAT('w', 5000000) AS w"))[0].w.length);
    await c.end();
    await o.end();
  },

  async mariadb_no_prepare_cache() {
    // Without a cache each execute is prepare, execute and close, pipelined.
    const c = await mariadb.createConnection({ ...base, prepareCacheLength: 0 });
    const r = await Promise.all(Array.from({ length: 20 }, (_, i) => c.execute('SELECT ? AS v, ? * 2 AS w', [i, i])));
    out('no-cache', r.map((x) => x[0].w));
    out('no-cache-error', await attempt(() => c.execute('SELECT nosuch, ? AS v', [1])));
    out('no-cache-after', await c.execute('SELECT ? AS ok', ['yes']));
    await c.end();
  },

  async mariadb_pipelined_session() {
    // Session commands written behind and ahead of queries, before any reply is read.
    // (A pipelined changeUser never settles in this connector, directly too; nor does
    // a query after leaving a queryStream's loop early.)
    const c = await mariadb.createConnection({ ...base });
    const r1 = await Promise.allSettled([
      c.query("SET @x = 1, time_zone = '+04:00'"),
      c.reset(),
      c.query('SELECT @x AS x, @@time_zone AS tz'),
      c.query("SET @y = 'after'"),
      c.query('SELECT @y AS y'),
    ]);
    out('pipelined-session', r1.map((x) => (x.status === 'fulfilled' ? rows(x.value) ?? null : { error: err(x.reason) })));
    await c.end().catch(() => {});
    const d = await mariadb.createConnection({ ...base, permitLocalInfile: true });
    const file = path.join(os.tmpdir(), `funnel-node-pipe-${schema}.csv`);
    fs.writeFileSync(file, '1,a\n2,b\n');
    await d.query('CREATE TABLE IF NOT EXISTS m_pipe_infile (id INT PRIMARY KEY, v VARCHAR(5))');
    const p = await d.prepare('SELECT ? AS v');
    const r2 = await Promise.allSettled([
      d.query(`LOAD DATA LOCAL INFILE '${file}' INTO TABLE m_pipe_infile FIELDS TERMINATED BY ','`),
      d.query('SELECT COUNT(*) AS c FROM m_pipe_infile'),
      p.execute([1]),
      d.query('BEGIN'),
      d.query("INSERT INTO m_pipe_infile VALUES (3, 'c')"),
      d.query('ROLLBACK'),
      p.execute([2]),
      d.query('SELECT COUNT(*) AS c FROM m_pipe_infile'),
    ]);
    p.close();
    out('pipelined-infile', r2.map((x) => (x.status === 'fulfilled' ? rows(x.value) : { error: err(x.reason) })));
    fs.unlinkSync(file);
    await d.end();
  },

  async mariadb_prepare_schema() {
    // A prepared statement keeps the schema and sql_mode of its prepare, wherever it runs next.
    const c = await mariadb.createConnection({ ...base });
    const others = await Promise.all([0, 1, 2].map(() => mariadb.createConnection({ ...base })));
    const z = schema + '_z';
    await c.query(`CREATE DATABASE IF NOT EXISTS ${z}`);
    await c.query(`CREATE TABLE ${schema}.w (v VARCHAR(10))`);
    await c.query(`CREATE TABLE ${z}.w (v VARCHAR(10))`);
    await c.query(`INSERT INTO ${schema}.w VALUES ('main')`);
    await c.query(`INSERT INTO ${z}.w VALUES ('other')`);
    const p = await c.prepare('SELECT v FROM w');
    const res = [(await p.execute())[0].v];
    await c.query(`USE ${z}`);
    const busy = () => others.map((o) => o.query('SELECT SLEEP(0.02)'));
    for (let k = 0; k < 5; k++) await Promise.all([p.execute().then((r) => res.push(r[0].v)), ...busy()]);
    const p2 = await c.prepare('SELECT v FROM w');
    res.push('p2:' + (await p2.execute())[0].v);
    await c.query("SET sql_mode = 'ANSI_QUOTES'");
    const p3 = await c.prepare('SELECT "v" FROM w');
    await c.query("SET sql_mode = ''");
    for (let k = 0; k < 3; k++) await Promise.all([p3.execute().then((r) => res.push('p3:' + r[0].v)), ...busy()]);
    out('prepare-schema', res);
    for (const o of [c, ...others]) await o.end();
  },

  // --- mysql2 ---
  async mysql2_basics() {
    const c = await mysql2.createConnection({ ...base });
    await c.query('CREATE TABLE IF NOT EXISTS y_basic (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(5), n INT)');
    out('insert', ok((await c.query("INSERT INTO y_basic (v, n) VALUES ('a', 1), ('b', 2)"))[0]));
    out('insert-warn', ok((await c.query("INSERT IGNORE INTO y_basic (v, n) VALUES ('toolongvalue', 300)"))[0]));
    out('update', ok((await c.query('UPDATE y_basic SET n = n + 1 WHERE id > 1'))[0]));
    const [r, f] = await c.query("SELECT id, v, n, 2.5 AS d, NULL AS z, CAST('2024-01-02 03:04:05' AS DATETIME) AS dt FROM y_basic ORDER BY id");
    out('select', r, f.map((x) => [x.name, x.columnType, x.flags]));
    out('execute', (await c.execute('SELECT ? + 1 AS v, ? AS s', [41, 'x']))[0]);
    out('execute-rows', (await c.execute('SELECT id, v FROM y_basic WHERE id > ? ORDER BY id', [1]))[0]);
    out('error', await attempt(() => c.query('SELECT nosuch')));
    out('exec-error', await attempt(() => c.execute('SELECT nosuch + ?', [1])));
    out('ping', await attempt(() => c.ping()));
    await c.end();
  },

  async mysql2_named() {
    const c = await mysql2.createConnection({ ...base, namedPlaceholders: true });
    out('named-query', (await c.query('SELECT :a AS a, :b AS b, :a + 1 AS c', { a: 1, b: 'two' }))[0]);
    out('named-execute', (await c.execute('SELECT :a AS a, :b AS b, :a * 3 AS c', { a: 5, b: null }))[0]);
    await c.end();
  },

  async mysql2_lru() {
    // Prepared statements cached per connection; the least recently used are closed.
    const c = await mysql2.createConnection({ ...base, maxPreparedStatements: 3 });
    const got = [];
    for (let round = 0; round < 3; round++) {
      for (let k = 0; k < 6; k++) {
        got.push((await c.execute(`SELECT ? AS k${k}`, [round * 10 + k]))[0][0]);
      }
    }
    out('lru', got);
    await c.end();
  },

  async mysql2_multi() {
    const c = await mysql2.createConnection({ ...base, multipleStatements: true });
    const [r] = await c.query("SELECT 1 AS a; SET @m = 5; SELECT @m AS m; DO 1");
    out('multi', rows(r));
    out('multi-error', await attempt(() => c.query('SELECT 1 AS a; SELECT nosuch; SELECT 3 AS c')));
    out('after', (await c.query('SELECT @m AS m'))[0]);
    await c.end();
  },

  async mysql2_stream() {
    const c = await mysql2.createConnection({ ...base });
    const o = await mysql2.createConnection({ ...base });
    const raw = c.connection.query('SELECT seq, REPEAT(CHAR(65 + seq % 26), 100) AS s FROM seq_1_to_20000').stream();
    let count = 0, sum = 0, q = 0;
    for await (const row of raw) {
      count++;
      sum += Number(row.seq);
      if (count % 4000 === 0) {
        q += (await o.query('SELECT ? AS i', [count]))[0][0].i;
      }
    }
    out('stream', count, sum, q);
    out('after-stream', (await c.query('SELECT 8 AS v'))[0]);
    await c.end();
    await o.end();
  },

  async mysql2_change_user() {
    const c = await mysql2.createConnection({ ...base });
    await c.query("SET @cu = 'before'");
    await c.execute('SELECT ? AS v', [1]);
    out('change', await attempt(() => c.changeUser({ user: user2, password: password2, database: schema })));
    out('whoami', (await c.query('SELECT DATABASE() = ? AS d, @cu AS v', [schema]))[0]);
    out('exec-after-change', await attempt(async () => (await c.execute('SELECT ? AS v', [2]))[0]));
    out('change-back', await attempt(() => c.changeUser({ user, password, database: schema })));
    out('whoami2', (await c.query('SELECT DATABASE() = ? AS d', [schema]))[0]);
    await c.end();
  },

  async mysql2_transactions() {
    const c = await mysql2.createConnection({ ...base });
    const o = await mysql2.createConnection({ ...base });
    await c.query('CREATE TABLE IF NOT EXISTS y_tx (id INT PRIMARY KEY) ENGINE=InnoDB');
    await c.beginTransaction();
    await c.execute('INSERT INTO y_tx VALUES (?)', [1]);
    out('in-tx', (await c.query('SELECT COUNT(*) AS c FROM y_tx'))[0], (await o.query('SELECT COUNT(*) AS c FROM y_tx'))[0]);
    await c.rollback();
    await c.beginTransaction();
    await c.execute('INSERT INTO y_tx VALUES (?)', [2]);
    await c.commit();
    out('committed', (await o.query('SELECT id FROM y_tx'))[0]);
    await c.end();
    await o.end();
  },

  async mysql2_timezone() {
    const c = await mysql2.createConnection({ ...base, timezone: '+05:00', dateStrings: false });
    await c.query("SET time_zone = '+05:00'");
    const [r] = await c.query("SELECT CAST('2024-01-02 03:04:05' AS DATETIME) AS dt, @@time_zone AS tz");
    out('tz', r[0].dt.toISOString(), r[0].tz);
    const [e] = await c.execute('SELECT ? AS d', [new Date(Date.UTC(2024, 5, 6, 7, 8, 9))]);
    out('tz-exec', e[0].d);
    await c.end();
  },

  async mysql2_timeout() {
    // A client-side timeout ends the connection; the query it left must not hold others up.
    const c = await mysql2.createConnection({ ...base });
    const o = await mysql2.createConnection({ ...base });
    const start = Date.now();
    out('timeout', await attempt(() => c.query({ sql: 'SELECT SLEEP(3) AS s', timeout: 300 })));
    const [r] = await o.query('SELECT 2 AS v');
    out('others', r, Date.now() - start < 2000);
    c.destroy();
    await o.end();
  },

  async mysql2_charsets() {
    const opts = ['LATIN1_SWEDISH_CI', 'UTF8MB4_UNICODE_CI', 'UTF8_GENERAL_CI', 'CP1251_GENERAL_CI'];
    const cs = await Promise.all(opts.map((o) => mysql2.createConnection({ ...base, charset: o })));
    const got = await Promise.all(
      cs.map(async (c, i) => {
        const r = [];
        for (let k = 0; k < 3; k++) {
          r.push((await c.query("SELECT @@character_set_client AS c, @@collation_connection AS cc, 'caf\u00e9' AS s, ? AS p", ['x' + k]))[0][0]);
          r.push((await c.execute('SELECT ? AS e', ['\u00e9' + k]))[0][0]);
          await sleep(i);
        }
        return r;
      })
    );
    got.forEach((g, i) => out('charset', opts[i], g));
    for (const c of cs) await c.end();
  },

  async mysql2_compress() {
    const c = await mysql2.createConnection({ ...base, compress: true, multipleStatements: true });
    // (mysql2 warns of packets out of order on larger compressed results, directly too.)
    const [r] = await c.query('SELECT seq, REPEAT(CHAR(65 + seq % 26), 100) AS s FROM seq_1_to_300');
    out('compress', r.length, r.reduce((a, x) => a + x.s.length, 0));
    const [m] = await c.query("SELECT 1 AS a; SELECT REPEAT('m', 70000) AS b; DO 1");
    out('compress-multi', m.length, m[1][0].b.length);
    out('compress-exec', (await c.execute('SELECT ? AS v, LENGTH(?) AS l', ['z', 'q'.repeat(100000)]))[0]);
    await c.end();
  },

  async mysql2_infile() {
    const { Readable } = require('stream');
    const c = await mysql2.createConnection({
      ...base,
      flags: ['+LOCAL_FILES'],
      infileStreamFactory: (name) => Readable.from([Buffer.from(Array.from({ length: 500 }, (_, i) => `${i}\t${name.length}`).join('\n') + '\n')]),
    });
    await c.query('CREATE TABLE IF NOT EXISTS y_infile (id INT PRIMARY KEY, v INT)');
    out('infile', ok((await c.query("LOAD DATA LOCAL INFILE 'virtual.tsv' INTO TABLE y_infile"))[0]));
    out('infile-rows', (await c.query('SELECT COUNT(*) AS c, SUM(v) AS s FROM y_infile'))[0]);
    await c.end();
  },

  async mysql2_prepare() {
    const c = await mysql2.createConnection({ ...base });
    const st = await c.prepare('SELECT ? AS a, ? + 0 AS b, NOW() IS NOT NULL AS n');
    out('prepare-exec', (await st.execute([1, 2]))[0], (await st.execute(['x', 3.5]))[0]);
    st.close();
    c.unprepare('SELECT ? AS a, ? + 0 AS b, NOW() IS NOT NULL AS n');
    out('after-close', (await c.execute('SELECT ? AS a', [9]))[0]);
    await c.end();
  },

  async mysql2_interleaved_info() {
    // What the server keeps per session from the last statement, under interleaving.
    const cs = await Promise.all([0, 1, 2].map(() => mysql2.createConnection({ ...base })));
    await cs[0].query('CREATE TABLE IF NOT EXISTS y_ids (id INT AUTO_INCREMENT PRIMARY KEY, n TINYINT)');
    const got = await Promise.all(
      cs.map(async (c, i) => {
        const r = [];
        for (let k = 0; k < 3; k++) {
          const [ins] = await c.execute('INSERT IGNORE INTO y_ids (n) VALUES (?), (?)', [i * 100 + k, 1000 + i]);
          await sleep(3 * i);
          r.push([
            ins.insertId > 0,
            (await c.execute('SELECT LAST_INSERT_ID() = ? AS li', [ins.insertId]))[0][0].li,
            (await c.query('SELECT LAST_INSERT_ID() = ? AS li, ROW_COUNT() AS rc', [ins.insertId]))[0][0],
            (await c.query('SHOW WARNINGS'))[0].map((w) => [w.Code, w.Level]),
            (await c.query('SELECT @@warning_count AS w'))[0][0].w,
          ]);
          await c.query('SELECT SQL_CALC_FOUND_ROWS * FROM y_ids LIMIT 1');
          await sleep(2 * i);
          // (As a prepared statement FOUND_ROWS() pins its client: docs/multiplexing.md.)
          r.push((await c.query('SELECT FOUND_ROWS() > 1 AS f'))[0][0].f);
        }
        r.push((await c.query('SELECT CONNECTION_ID() = ? AS me', [c.threadId]))[0][0].me);
        return r;
      })
    );
    got.forEach((g, i) => out('info', i, g));
    // KILL QUERY by the id the connector was given.
    const start = Date.now();
    const running = cs[1].query('SELECT SLEEP(3) AS s').then((r) => r[0], (e) => ({ error: err(e) }));
    await sleep(300);
    await cs[2].query(`KILL QUERY ${cs[1].threadId}`);
    out('killed', await running, Date.now() - start < 2500, (await cs[1].query('SELECT 1 AS alive'))[0]);
    for (const c of cs) await c.end();
  },

  async mysql2_pool() {
    const pool = mysql2.createPool({ ...base, connectionLimit: 10 });
    // Each pool connection gets its own state once, then is checked under interleaving.
    const conns = await Promise.all(Array.from({ length: 10 }, () => pool.getConnection()));
    // The same statement text names a different table in each of two schemas.
    const other = schema + '_y';
    await conns[0].query(`CREATE DATABASE IF NOT EXISTS ${other}`);
    await conns[0].query(`CREATE TABLE IF NOT EXISTS ${schema}.y_where (v VARCHAR(10))`);
    await conns[0].query(`CREATE TABLE IF NOT EXISTS ${other}.y_where (v VARCHAR(10))`);
    await conns[0].query(`INSERT INTO ${schema}.y_where VALUES ('main')`);
    await conns[0].query(`INSERT INTO ${other}.y_where VALUES ('other')`);
    await Promise.all(conns.map((c, i) => c.query(`USE ${i % 3 ? schema : other}`)));
    await Promise.all(
      conns.map((c, i) =>
        c.query(`SET @who = ${i}, time_zone = '+0${i % 10}:00', sql_mode = '${i % 2 ? 'ANSI_QUOTES' : 'NO_ZERO_DATE'}', SESSION tx_isolation = '${i % 2 ? 'READ-COMMITTED' : 'REPEATABLE-READ'}'`)
      )
    );
    const seen = await Promise.all(
      conns.map(async (c, i) => {
        const got = [];
        for (let k = 0; k < 5; k++) {
          const [r] = await c.execute('SELECT @who AS who, @@time_zone AS tz, @@sql_mode AS m, @@tx_isolation AS iso, ? AS k', [k]);
          const [w] = await c.execute('SELECT v FROM y_where');
          const [q] = await c.query('SELECT v FROM y_where');
          got.push({ ...r[0], where: w[0].v, whereText: q[0].v });
          await sleep(i % 3);
        }
        return got;
      })
    );
    seen.forEach((s, i) => out('pool-conn', i, s));
    conns.forEach((c) => c.release());
    const many = await Promise.all(Array.from({ length: 30 }, (_, i) => pool.query('SELECT ? AS n', [i])));
    out('pool-many', many.map((m) => m[0][0].n));
    await pool.end();
  },

  // Callable use of both connectors for a Funnel with `stateless_procedures`
  // listing np_* (node_connectors.rs): four clients of each interleave
  // `CALL p(?)` by query (the connector fills the text) and by execute
  // (binary protocol); client 3 of each then calls np_setvar, which sets a
  // user variable, and must still read it.
  async callable() {
    const setup = await mariadb.createConnection({ ...base });
    await setup.query('CREATE TABLE IF NOT EXISTS np_items (id INT AUTO_INCREMENT PRIMARY KEY, who VARCHAR(20), v INT)');
    await setup.query('CREATE PROCEDURE IF NOT EXISTS np_rows(a INT) SELECT seq, seq * a AS x FROM seq_1_to_3');
    await setup.query('CREATE PROCEDURE IF NOT EXISTS np_insert(w VARCHAR(20), a INT) INSERT INTO np_items (who, v) VALUES (w, a)');
    await setup.query('CREATE PROCEDURE IF NOT EXISTS np_warn(x VARCHAR(10)) DO CAST(x AS INT)');
    await setup.query('CREATE PROCEDURE IF NOT EXISTS np_setvar(a INT) SET @np_mine = a');
    await setup.end();
    const kinds = [
      ['mariadb', () => mariadb.createConnection({ ...base }), (r) => r],
      ['mysql2', () => mysql2.createConnection({ ...base }), (r) => r[0]],
    ];
    for (const [kind, connect, result] of kinds) {
      const cs = await Promise.all([0, 1, 2, 3].map(() => connect()));
      const got = await Promise.all(
        cs.map(async (c, i) => {
          const r = [];
          for (let round = 0; round < 6; round++) {
            const line = [round];
            for (const how of ['query', 'execute']) {
              const call = (sql, args) => c[how](sql, args).then(result);
              line.push(rows(await call('CALL np_rows(?)', [i + round])));
              const who = `${kind}${i}${how}${round}`;
              const ins = ok(await call('CALL np_insert(?, ?)', [who, round]));
              const [read] = result(await c.query('SELECT LAST_INSERT_ID() AS li, ROW_COUNT() AS rc, FOUND_ROWS() AS fr'));
              const [own] = result(await c.query('SELECT id FROM np_items WHERE who = ?', [who]));
              line.push(ins.affected, ins.warnings, Number(read.li) === Number(own.id), read.rc, read.fr);
              const warn = ok(await call('CALL np_warn(?)', ['x' + i]));
              line.push(warn.warnings, result(await c.query('SHOW WARNINGS')).map((w) => [w.Code, w.Message]));
            }
            if (i === 3 && round === 2) await c.query('CALL np_setvar(?)', [1000 + i]);
            line.push(result(await c.query('SELECT @np_mine AS v'))[0].v);
            r.push(line);
          }
          return r;
        })
      );
      got.forEach((g, i) => g.forEach((l) => out('callable', kind, i, l)));
      for (const c of cs) await c.end();
    }
  },
};

// A promise the connector never settles would end the process silently.
process.on('beforeExit', () => {
  out('STALLED');
  process.stdout.write(lines.join('\n') + '\n', () => process.exit(3));
});

(async () => {
  for (const [name, fn] of Object.entries(scenarios)) {
    if (only.length && !only.includes(name)) continue;
    out('==', name);
    try {
      await fn();
    } catch (e) {
      out('FAILED', name, err(e));
      process.stderr.write(name + ': ' + e.stack + '\n');
    }
  }
  // Through a pipe the write completes later: exit once it has.
  process.stdout.write(lines.join('\n') + '\n', () => process.exit(0));
})();
