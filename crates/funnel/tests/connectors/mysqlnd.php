<?php
// PHP mysqlnd scenarios (PDO and mysqli) for crates/funnel/tests/connector_php.rs: run against
// MariaDB directly and through Funnel; each check prints one deterministic line, and the two
// outputs must be equal. PHP has no threads: "several clients at once" are several connections
// of this one process used in turn (their sessions share Funnel's two backend connections), and
// async queries (MYSQLI_ASYNC + mysqli_poll) on several connections at once. At most two of the
// process's sessions hold a backend connection at any moment (a transaction, an unbuffered
// result or cursor being read, a pinned session): a third would wait for one that this very
// process must free first.
// Arguments: port user password user2 password2 schema0 schema1 schema2 [scenario...].

declare(strict_types=1);

[$_, $PORT, $USER, $PASSWORD, $USER2, $PASSWORD2, $S0, $S1, $S2] = array_slice($argv, 0, 9);
$ONLY = array_slice($argv, 9);
$SCHEMAS = [$S0, $S1, $S2];
$HOST = '127.0.0.1';
$SCENARIO = '';

mysqli_report(MYSQLI_REPORT_OFF);

/** Schema names as S0..S2, ids masked: direct and Funnel runs use their own schemas and ids. */
function clean(string $s): string
{
    global $SCHEMAS;
    foreach ($SCHEMAS as $i => $name) {
        $s = str_replace($name, "S$i", $s);
    }
    return preg_replace(['/thread id: \d+/', '/connection id \d+/i', '/handler \(\d+\)/', '/funnel-php-\d+-[0-9a-f]+/'], ['thread id: N', 'connection id N', 'handler (N)', 'funnel-php-DIR'], $s);
}

function p(string $line): void
{
    global $SCENARIO;
    echo clean("$SCENARIO $line"), "\n";
}

// PHP warnings and notices are part of the output (masked like the rest).
set_error_handler(function (int $no, string $msg): bool {
    p("PHPWARN " . preg_replace('/\s+/', ' ', $msg));
    return true;
});

// ---------------------------------------------------------------- mysqli helpers

function my(?string $schema = null, int $flags = 0, ?string $host = null, array $opts = []): mysqli
{
    global $HOST, $PORT, $USER, $PASSWORD, $S0;
    $m = mysqli_init();
    foreach ($opts as $k => $v) {
        $m->options($k, $v);
    }
    $m->options(MYSQLI_OPT_CONNECT_TIMEOUT, 10);
    $m->options(MYSQLI_OPT_READ_TIMEOUT, 30);
    if (!@$m->real_connect($host ?? $HOST, $USER, $PASSWORD, $schema ?? $S0, (int)$PORT, null, $flags)) {
        p("CONNECT FAILED " . mysqli_connect_errno() . " " . mysqli_connect_error());
        exit(1);
    }
    return $m;
}

function merr(mysqli|mysqli_stmt $m): string
{
    return "ERR {$m->errno} {$m->sqlstate} {$m->error}";
}

function rows(mysqli_result $r): string
{
    $out = [];
    while ($row = $r->fetch_row()) {
        $out[] = implode(',', array_map(fn($v) => $v === null ? 'NULL' : (string)$v, $row));
    }
    return implode(';', $out);
}

/** A query's rows, or its OK counts, or its error. */
function q(mysqli $m, string $sql): string
{
    $r = $m->query($sql);
    if ($r === false) {
        return merr($m);
    }
    if ($r === true) {
        return "ok a={$m->affected_rows} id={$m->insert_id} w={$m->warning_count}";
    }
    $s = rows($r);
    $r->free();
    return $s;
}

// ---------------------------------------------------------------- PDO helpers

function pdo(array $opts = [], ?string $schema = null): PDO
{
    global $HOST, $PORT, $USER, $PASSWORD, $S0;
    $dsn = "mysql:host=$HOST;port=$PORT;dbname=" . ($schema ?? $S0) . ";charset=utf8mb4";
    return new PDO($dsn, $USER, $PASSWORD, $opts + [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION, PDO::ATTR_TIMEOUT => 10]);
}

function perr(PDOException|PDO|PDOStatement $e): string
{
    $info = $e instanceof PDOException ? $e->errorInfo : $e->errorInfo();
    return 'ERR ' . json_encode($info) . ($e instanceof PDOException ? ' ' . $e->getCode() : '');
}

/** All rows of `sql` with their PHP types (json), or the error. */
function pq(PDO $p, string $sql, ?array $params = null): string
{
    try {
        if ($params === null) {
            $s = $p->query($sql);
        } else {
            $s = $p->prepare($sql);
            $s->execute($params);
        }
        $out = $s->columnCount() > 0 ? json_encode($s->fetchAll(PDO::FETCH_NUM)) : 'n=' . $s->rowCount();
        $s->closeCursor();
        return $out;
    } catch (PDOException $e) {
        return perr($e);
    }
}

// ---------------------------------------------------------------- scenarios

function setup(): void
{
    global $SCHEMAS;
    $m = my();
    foreach ($SCHEMAS as $s) {
        q($m, "CREATE TABLE $s.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40), n INT, UNIQUE KEY (v))");
    }
    q($m, "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(100))");
    q($m, "INSERT INTO big SELECT seq, REPEAT(CHAR(65 + seq % 26), 50 + seq % 50) FROM seq_1_to_20000");
    q($m, "CREATE TABLE blobs (id INT AUTO_INCREMENT PRIMARY KEY, who INT, b LONGBLOB)");
    q($m, "CREATE TABLE li (id INT PRIMARY KEY, name VARCHAR(40), n INT)");
    q($m, "CREATE PROCEDURE sets(IN k INT) BEGIN SELECT k AS a; SELECT k + 1 AS b, 'x' AS c UNION ALL SELECT k + 2, 'y'; SELECT id FROM big WHERE id <= k; END");
    q($m, "CREATE PROCEDURE noresult(IN k INT) BEGIN SET @proc = k; END");
    $m->close();
}

/** PDO with emulated (text) or server-side (binary) prepares, three clients in turn. */
function pdoBasics(bool $emulate): void
{
    $ps = [];
    foreach ([0, 1, 2] as $i) {
        $ps[$i] = pdo([PDO::ATTR_EMULATE_PREPARES => $emulate]);
        $ps[$i]->exec("SET @me = $i, time_zone = '+0$i:00', sql_mode = '" . ($i == 1 ? 'ANSI_QUOTES' : 'STRICT_TRANS_TABLES') . "'");
    }
    $tag = $emulate ? 'e' : 'n';
    foreach ([0, 1] as $round) {
        foreach ($ps as $i => $p) {
            p("c$i r$round own " . pq($p, "SELECT @me, @@time_zone, @@sql_mode, ? + 1, ?, ? IS NULL", [$i, "s$i", null]));
            p("c$i r$round types " . pq($p, "SELECT 1, 2.5, CAST(3 AS DOUBLE), 'x', NULL, CAST('2024-01-02 03:04:05.5' AS DATETIME(1)), CAST(18446744073709551615 AS UNSIGNED), b'101'"));
            $st = $p->prepare("INSERT INTO t (v, n) VALUES (?, ?)");
            $st->execute(["$tag$i$round", $i]);
            p("c$i r$round insert rowCount " . $st->rowCount() . " lastInsertId ok " . json_encode($p->lastInsertId() === pq1($p, "SELECT id FROM t WHERE v = '$tag$i$round'")));
            $st = $p->prepare("UPDATE t SET n = n + 10 WHERE v LIKE ?");
            $st->execute(["$tag$i%"]);
            p("c$i r$round update rowCount " . $st->rowCount() . " exec " . $p->exec("UPDATE t SET n = n WHERE v LIKE '$tag$i%'"));
        }
    }
    $p = $ps[0];
    // Errors: duplicate key, syntax, unknown table, strict mode, at prepare and at execute.
    try {
        $p->prepare("INSERT INTO t (v, n) VALUES (?, ?)")->execute(["{$tag}00", 0]);
    } catch (PDOException $e) {
        p("dup " . perr($e));
    }
    p("syntax " . pq($p, "SELEC 1"));
    p("no table " . pq($p, "SELECT * FROM nosuch WHERE id = ?", [1]));
    p("no column " . pq($p, "SELECT nosuch FROM t WHERE id = ?", [1]));
    p("strict " . pq($p, "INSERT INTO t (v, n) VALUES (?, ?)", ['strict', 'abc']));
    p("loose " . pq($ps[1], "INSERT INTO t (v, n) VALUES (?, ?)", ["loose$tag", 'abc']) . ' ' . pq($ps[1], "SHOW WARNINGS"));
    p("after errors " . pq($p, "SELECT @me, COUNT(*) FROM t WHERE v LIKE ?", ["$tag%"]));
    $silent = pdo([PDO::ATTR_EMULATE_PREPARES => $emulate, PDO::ATTR_ERRMODE => PDO::ERRMODE_SILENT]);
    $r = $silent->query("SELECT * FROM nosuch");
    p("silent " . json_encode($r) . " " . json_encode($silent->errorInfo()) . " " . $silent->errorCode());
    $st = $silent->prepare("INSERT INTO t (v, n) VALUES (?, ?)");
    p("silent execute " . json_encode($st && $st->execute(["{$tag}00", 1])) . " " . ($st ? json_encode($st->errorInfo()) : json_encode($silent->errorInfo())));
    // A statement prepared once and run many times, with rows between other clients' work.
    $st = $ps[2]->prepare("SELECT id, v FROM big WHERE id BETWEEN ? AND ? ORDER BY id");
    $sum = 0;
    for ($k = 0; $k < 20; $k++) {
        $st->execute([$k * 10, $k * 10 + 4]);
        foreach ($st->fetchAll(PDO::FETCH_NUM) as $row) {
            $sum += $row[0] + strlen($row[1]);
        }
        pq($ps[$k % 2], "SELECT @me");
    }
    p("reused statement sum $sum");
    p("quote " . $ps[1]->quote("a'b\\c\"d") . " " . pq($ps[1], "SELECT " . $ps[1]->quote("a'b\\c\"d")));
    foreach ($ps as $i => $p) {
        p("c$i end " . pq($p, "SELECT @me, @@time_zone"));
    }
}

function pq1(PDO $p, string $sql): string
{
    return (string)$p->query($sql)->fetchColumn();
}

/** Unbuffered (streaming) results, read while others query and abandoned part-way. */
function pdoUnbuffered(): void
{
    foreach ([true, false] as $emulate) {
        $a = pdo([PDO::MYSQL_ATTR_USE_BUFFERED_QUERY => false, PDO::ATTR_EMULATE_PREPARES => $emulate]);
        $b = pdo();
        $c = pdo([PDO::MYSQL_ATTR_USE_BUFFERED_QUERY => false]);
        $a->exec("SET @me = 'a'");
        $tag = $emulate ? 'e' : 'n';
        // Read all of it, with another client's queries in between.
        $st = $a->prepare("SELECT id, v FROM big WHERE id > ? ORDER BY id");
        $st->execute([0]);
        $n = 0;
        $sum = 0;
        while ($row = $st->fetch(PDO::FETCH_NUM)) {
            $n++;
            $sum += $row[0];
            if ($n % 5000 == 0) {
                p("$tag other while streaming " . pq($b, "SELECT COUNT(*) FROM big WHERE id <= $n"));
            }
        }
        p("$tag streamed $n sum $sum");
        // Abandoned part-way: another query before the rest is read is refused by the client.
        $st = $a->query("SELECT id, v FROM big ORDER BY id");
        for ($k = 0; $k < 100; $k++) {
            $st->fetch(PDO::FETCH_NUM);
        }
        p("$tag while unread " . pq($a, "SELECT @me"));
        // closeCursor reads and drops the rest; then the session goes on.
        $st->closeCursor();
        p("$tag after closeCursor " . pq($a, "SELECT @me, COUNT(*) FROM big"));
        // Two streaming clients at once (both backend connections), read in turn.
        $s1 = $a->query("SELECT id FROM big ORDER BY id");
        $s2 = $c->query("SELECT id FROM big ORDER BY id DESC");
        $x = 0;
        for ($k = 0; $k < 3000; $k++) {
            $x += $s1->fetchColumn() - $s2->fetchColumn();
        }
        $s1 = null; // dropped without closeCursor: the rest is read and dropped
        $s2->closeCursor();
        p("$tag two streams $x " . pq($a, "SELECT @me") . " " . pq($c, "SELECT 2"));
        // A statement destroyed part-way, then a prepared one on the same connection.
        $st = $a->prepare("SELECT id FROM big WHERE id > ? ORDER BY id");
        $st->execute([10]);
        $first = $st->fetchColumn();
        $st = null;
        p("$tag after drop first $first then " . pq($a, "SELECT ? + 1", [41]) . " " . pq($b, "SELECT 1"));
        // An error in the middle of a stream (a division by zero under strict mode is a warning; use a bad cast).
        $a->exec("SET sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO'");
        try {
            $st = $a->query("SELECT id, IF(id = 500, (SELECT id FROM big), id) FROM big ORDER BY id");
            $n = 0;
            while ($st->fetch(PDO::FETCH_NUM)) {
                $n++;
            }
            p("$tag error stream ended $n");
        } catch (PDOException $e) {
            p("$tag error in stream after $n " . perr($e));
        }
        p("$tag after stream error " . pq($a, "SELECT @me"));
    }
}

/** INIT_COMMAND and MULTI_STATEMENTS. */
function pdoOptions(): void
{
    $ps = [];
    foreach ([0, 1, 2] as $i) {
        $ps[$i] = pdo([PDO::MYSQL_ATTR_INIT_COMMAND => "SET @init = $i, time_zone = '+0$i:30', SESSION group_concat_max_len = " . (100 + $i)]);
    }
    foreach ($ps as $i => $p) {
        p("init c$i " . pq($p, "SELECT @init, @@time_zone, @@group_concat_max_len"));
    }
    $bad = null;
    try {
        $bad = pdo([PDO::MYSQL_ATTR_INIT_COMMAND => "SET nosuch = 1"]);
        p("bad init connected");
    } catch (PDOException $e) {
        p("bad init " . perr($e));
    }
    foreach ([true, false] as $multi) {
        foreach ([true, false] as $emulate) {
            $p = pdo([PDO::MYSQL_ATTR_MULTI_STATEMENTS => $multi, PDO::ATTR_EMULATE_PREPARES => $emulate]);
            $tag = ($multi ? 'multi' : 'single') . ($emulate ? '-e' : '-n');
            try {
                $st = $p->query("SELECT 1 AS a; SELECT 2 AS b, 3 AS c; UPDATE t SET n = n WHERE id < 0; SELECT @init");
                $sets = [];
                do {
                    $sets[] = $st->columnCount() ? json_encode($st->fetchAll(PDO::FETCH_NUM)) : 'n=' . $st->rowCount();
                } while ($st->nextRowset());
                p("$tag sets " . implode(' ', $sets));
            } catch (PDOException $e) {
                p("$tag " . perr($e));
            }
            try {
                p("$tag exec " . $p->exec("SET @x = 1; SET @y = 2"));
                p("$tag after " . pq($p, "SELECT @x, @y"));
            } catch (PDOException $e) {
                p("$tag exec " . perr($e));
            }
            // An error in the second statement.
            try {
                $st = $p->query("SELECT 1; SELECT * FROM nosuch; SELECT 3");
                $sets = [json_encode($st->fetchAll(PDO::FETCH_NUM))];
                while ($st->nextRowset()) {
                    $sets[] = json_encode($st->fetchAll(PDO::FETCH_NUM));
                }
                p("$tag error sets " . implode(' ', $sets));
            } catch (PDOException $e) {
                p("$tag error second " . perr($e));
            }
            p("$tag then " . pq($p, "SELECT 'fine'"));
        }
    }
    foreach ($ps as $i => $p) {
        p("init again c$i " . pq($p, "SELECT @init, @@time_zone"));
    }
}

/** Transactions through PDO's API, other clients working in between. */
function pdoTransactions(): void
{
    $a = pdo();
    $b = pdo();
    $c = pdo([PDO::ATTR_EMULATE_PREPARES => false]);
    foreach ([0, 1, 2] as $round) {
        p("r$round begin " . json_encode($a->beginTransaction()) . " in " . json_encode($a->inTransaction()));
        $a->exec("INSERT INTO t (v, n) VALUES ('ptx$round', 1)");
        p("r$round own sees " . pq($a, "SELECT COUNT(*), @@in_transaction FROM t WHERE v = 'ptx$round'") . " other sees " . pq($b, "SELECT COUNT(*), @@in_transaction FROM t WHERE v = 'ptx$round'"));
        $st = $c->prepare("SELECT COUNT(*) FROM t WHERE v = ?");
        $st->execute(["ptx$round"]);
        p("r$round prepared other sees " . $st->fetchColumn());
        if ($round == 1) {
            p("r$round commit " . json_encode($a->commit()));
        } else {
            p("r$round rollBack " . json_encode($a->rollBack()));
        }
        p("r$round after in " . json_encode($a->inTransaction()) . " other sees " . pq($b, "SELECT COUNT(*) FROM t WHERE v = 'ptx$round'"));
    }
    // Two clients in transactions at once (both backend connections).
    $a->beginTransaction();
    $c->beginTransaction();
    $a->exec("INSERT INTO t (v, n) VALUES ('ptxa', 1)");
    $st = $c->prepare("INSERT INTO t (v, n) VALUES (?, ?)");
    $st->execute(['ptxc', 2]);
    p("both a " . pq($a, "SELECT GROUP_CONCAT(v ORDER BY v) FROM t WHERE v IN ('ptxa', 'ptxc')") . " c " . pq($c, "SELECT GROUP_CONCAT(v ORDER BY v) FROM t WHERE v IN ('ptxa', 'ptxc')"));
    $a->commit();
    $c->rollBack();
    p("both after " . pq($b, "SELECT GROUP_CONCAT(v ORDER BY v) FROM t WHERE v IN ('ptxa', 'ptxc')"));
    // Errors around transactions.
    try {
        $a->commit();
    } catch (PDOException $e) {
        p("commit without " . $e->getMessage());
    }
    $a->beginTransaction();
    try {
        $a->beginTransaction();
    } catch (PDOException $e) {
        p("begin twice " . $e->getMessage());
    }
    try {
        $a->exec("INSERT INTO t (v, n) VALUES ('ptxa', 1)");
    } catch (PDOException $e) {
        p("dup in tx " . perr($e) . " in " . json_encode($a->inTransaction()));
    }
    $a->exec("INSERT INTO t (v, n) VALUES ('ptxd', 1)");
    // An implicit commit by DDL: PDO still thinks it is in a transaction.
    $a->exec("CREATE TABLE IF NOT EXISTS ptx_ddl (x INT)");
    p("after ddl in " . json_encode($a->inTransaction()) . " " . pq($a, "SELECT @@in_transaction"));
    try {
        p("rollBack after ddl " . json_encode($a->rollBack()));
    } catch (PDOException $e) {
        p("rollBack after ddl " . $e->getMessage());
    }
    p("ddl kept " . pq($b, "SELECT COUNT(*) FROM t WHERE v = 'ptxd'"));
    // autocommit off through the attribute.
    $b->setAttribute(PDO::ATTR_AUTOCOMMIT, false);
    $b->exec("INSERT INTO t (v, n) VALUES ('ptxe', 1)");
    p("autocommit off " . pq($b, "SELECT @@autocommit, @@in_transaction") . " other " . pq($a, "SELECT COUNT(*) FROM t WHERE v = 'ptxe'"));
    $b->rollBack();
    $b->setAttribute(PDO::ATTR_AUTOCOMMIT, true);
    p("autocommit on " . pq($b, "SELECT @@autocommit, COUNT(*) FROM t WHERE v = 'ptxe'"));
}

/** mysqli text queries: MYSQLI_USE_RESULT, multi_query, CALL with several result sets. */
function mysqliQueries(): void
{
    $a = my();
    $b = my();
    q($a, "SET @me = 'a'");
    q($b, "SET @me = 'b'");
    // Unbuffered, read while the other client queries, then abandoned with free().
    $r = $a->query("SELECT id, v FROM big ORDER BY id", MYSQLI_USE_RESULT);
    $n = 0;
    while ($row = $r->fetch_row()) {
        if (++$n % 4000 == 0) {
            p("use_result other " . q($b, "SELECT @me, $n"));
        }
        if ($n == 15000) {
            break;
        }
    }
    p("use_result while open " . q($a, "SELECT @me"));
    $r->free();
    p("use_result freed at $n " . q($a, "SELECT @me, COUNT(*) FROM big"));
    $r = $a->query("SELECT id FROM big WHERE id <= 10", MYSQLI_USE_RESULT);
    p("use_result num_rows before " . $r->num_rows . " fields " . $r->field_count);
    $all = $r->fetch_all(MYSQLI_NUM);
    p("use_result all " . count($all) . " num_rows after " . $r->num_rows);
    $r->free();
    // multi_query with store_result and use_result.
    foreach (['store', 'use'] as $how) {
        $ok = $a->multi_query("SELECT 1 AS a, @me; INSERT INTO t (v, n) VALUES ('mq$how', 1); SELECT id, v FROM big WHERE id <= 3; UPDATE t SET n = 2 WHERE v = 'mq$how'; SELECT * FROM nosuch; SELECT 'never'");
        $sets = [];
        do {
            $r = $how == 'store' ? $a->store_result() : $a->use_result();
            if ($r) {
                $sets[] = "rs[" . rows($r) . "]";
                $r->free();
            } else {
                $sets[] = $a->errno ? merr($a) : "ok[a={$a->affected_rows} id=" . ($a->insert_id ? 'set' : 0) . " info={$a->info}]";
            }
            // The other client between results.
            q($b, "SELECT 1");
            if (!$a->more_results()) {
                break;
            }
            if (!$a->next_result()) {
                $sets[] = "next " . merr($a);
                break;
            }
        } while (true);
        p("multi_query $how ok " . json_encode($ok) . " " . implode(' ', $sets));
        p("multi_query $how then " . q($a, "SELECT @me, (SELECT n FROM t WHERE v = 'mq$how')"));
    }
    // multi_query whose results are not read: the next query is out of sync.
    $a->multi_query("SELECT 1; SELECT 2");
    p("unread multi " . q($a, "SELECT 3"));
    do {
        ($r = $a->store_result()) && $r->free();
    } while ($a->more_results() && $a->next_result());
    p("unread multi drained " . q($a, "SELECT 4"));
    $a->close();
    $b->close();
    // CALL: results of a procedure (pins its session, so on a connection of its own, closed after).
    $c = my();
    $b = my();
    foreach ([3, 5] as $k) {
        $ok = $c->multi_query("CALL sets($k)");
        $sets = [];
        do {
            if ($r = $c->store_result()) {
                $sets[] = "rs[" . rows($r) . "]";
                $r->free();
            } else {
                $sets[] = $c->errno ? merr($c) : "ok[a={$c->affected_rows}]";
            }
        } while ($c->more_results() && $c->next_result());
        p("call $k " . json_encode($ok) . " " . implode(' ', $sets) . " other " . q($b, "SELECT $k"));
    }
    // CALL through query(): the first result only, the rest must be read before the next query.
    $r = $c->query("CALL sets(2)");
    p("call query first " . rows($r));
    $r->free();
    p("call query next " . q($c, "SELECT 1"));
    while ($c->more_results() && $c->next_result()) {
        ($r = $c->store_result()) && $r->free();
    }
    p("call query drained " . q($c, "SELECT 1"));
    p("call noresult " . q($c, "CALL noresult(7)") . " " . q($c, "SELECT @proc"));
    // CALL as a prepared statement with several result sets.
    $st = $c->prepare("CALL sets(?)");
    $k = 4;
    $st->bind_param('i', $k);
    $st->execute();
    $sets = [];
    do {
        if ($r = $st->get_result()) {
            $sets[] = "rs[" . rows($r) . "]";
        } else {
            $sets[] = $st->errno ? merr($st) : "ok[a={$st->affected_rows}]";
        }
    } while ($st->more_results() && $st->next_result());
    p("call prepared " . implode(' ', $sets));
    $st->close();
    p("call prepared then " . q($c, "SELECT @proc") . " other " . q($b, "SELECT @proc"));
    $c->close();
    $b->close();
}

/** Prepared statements: bind_param, get_result, bind_result, send_long_data, reset, cursors. */
function mysqliStatements(): void
{
    $ms = [my(), my(), my()];
    foreach ($ms as $i => $m) {
        q($m, "SET @me = $i");
    }
    $sts = [];
    foreach ($ms as $i => $m) {
        $sts[$i] = $m->prepare("SELECT ? + 1 AS x, CONCAT(?, @me) AS s, ? AS d, ? IS NULL AS nul");
    }
    foreach ([0, 1] as $round) {
        foreach ($sts as $i => $st) {
            $x = $i * 10 + $round;
            $s = "s$i";
            $d = 1.5 * $i;
            $nul = null;
            $st->bind_param('isds', $x, $s, $d, $nul);
            $st->execute();
            $r = $st->get_result();
            $meta = implode(',', array_map(fn($f) => "$f->name:$f->type", $r->fetch_fields()));
            p("c$i r$round get_result " . json_encode($r->fetch_all(MYSQLI_NUM)) . " $meta");
        }
    }
    // bind_result, and a statement prepared on one client run between the others'.
    foreach ($ms as $i => $m) {
        $st = $m->prepare("SELECT id, v FROM big WHERE id BETWEEN ? AND ? ORDER BY id");
        $lo = 10 * $i + 1;
        $hi = $lo + 2;
        $st->bind_param('ii', $lo, $hi);
        $st->execute();
        $st->bind_result($id, $v);
        $got = [];
        while ($st->fetch()) {
            $got[] = "$id:" . strlen($v);
            q($ms[($i + 1) % 3], "SELECT 1");
        }
        p("c$i bind_result " . implode(',', $got));
        // store_result, data_seek and num_rows.
        $lo = 100;
        $hi = 109;
        $st->execute();
        $st->store_result();
        $st->data_seek(5);
        $st->fetch();
        p("c$i store_result num_rows {$st->num_rows} seek5 $id");
        $st->free_result();
        $st->close();
    }
    // insert_id, affected_rows through statements; errors.
    $m = $ms[1];
    $st = $m->prepare("INSERT INTO t (v, n) VALUES (?, ?)");
    foreach (['ps1', 'ps2', 'ps1'] as $k => $v) {
        $n = $k;
        $st->bind_param('si', $v, $n);
        $ok = $st->execute();
        p("insert $v " . json_encode($ok) . " a={$st->affected_rows} id_ok=" . json_encode($st->insert_id == q($m, "SELECT id FROM t WHERE v = '$v'")) . " " . ($ok ? '' : merr($st)));
    }
    $st->close();
    p("prepare error " . json_encode($m->prepare("SELECT nosuch FROM t")) . " " . merr($m));
    $st = $m->prepare("SELECT ?");
    p("param count " . $st->param_count . " execute without bind " . json_encode(@$st->execute()) . " " . merr($st));
    $st->close();
    // send_long_data: 300 KB in chunks, while another client queries.
    $st = $ms[2]->prepare("INSERT INTO blobs (who, b) VALUES (?, ?)");
    $who = 2;
    $null = null;
    $st->bind_param('ib', $who, $null);
    $expect = '';
    for ($k = 0; $k < 30; $k++) {
        $chunk = str_repeat(chr(65 + $k % 26), 10000);
        $expect .= $chunk;
        $st->send_long_data(1, $chunk);
        if ($k % 10 == 0) {
            q($ms[0], "SELECT 1");
        }
    }
    $st->execute();
    p("long data a={$st->affected_rows} " . q($ms[2], "SELECT LENGTH(b), MD5(b) = '" . md5($expect) . "' FROM blobs WHERE who = 2"));
    // reset() drops the long data sent so far.
    $st->send_long_data(1, 'dropped');
    $st->reset();
    $who = 3;
    $st->send_long_data(1, 'kept');
    $st->execute();
    p("reset " . q($ms[2], "SELECT b FROM blobs WHERE who = 3"));
    $st->close();
    // reset() of a statement with an unread result.
    $st = $ms[0]->prepare("SELECT id FROM big WHERE id < ? ORDER BY id");
    $lim = 1000;
    $st->bind_param('i', $lim);
    $st->execute();
    $st->bind_result($id);
    $st->fetch();
    $first = $id;
    $st->reset();
    $lim = 4;
    $st->execute();
    $st->store_result();
    p("reset unread first $first then num_rows {$st->num_rows} " . q($ms[0], "SELECT @me"));
    $st->close();
    // Cursor fetch (COM_STMT_FETCH), three rows at a time, with another client in between.
    foreach ([0, 1] as $i) {
        $st = $ms[$i]->stmt_init();
        $st->prepare("SELECT id, v, @me FROM big WHERE id <= ? ORDER BY id");
        $st->attr_set(MYSQLI_STMT_ATTR_CURSOR_TYPE, MYSQLI_CURSOR_TYPE_READ_ONLY);
        $st->attr_set(MYSQLI_STMT_ATTR_PREFETCH_ROWS, 3);
        $lim = 20 + $i;
        $st->bind_param('i', $lim);
        $st->execute();
        $st->bind_result($id, $v, $me);
        $got = [];
        $n = 0;
        while ($st->fetch()) {
            $got[] = $id;
            if (++$n % 4 == 0) {
                q($ms[2], "SELECT 1");
            }
        }
        p("cursor c$i " . implode(',', $got) . " me $me attr " . $st->attr_get(MYSQLI_STMT_ATTR_CURSOR_TYPE));
        // A cursor closed before its end, then another execute of it.
        $lim = 1000;
        $st->execute();
        $st->fetch();
        $st->fetch();
        p("cursor c$i partial $id then " . q($ms[$i], "SELECT @me"));
        $st->free_result();
        $lim = 2;
        $st->execute();
        $got = [];
        while ($st->fetch()) {
            $got[] = $id;
        }
        p("cursor c$i again " . implode(',', $got));
        $st->close();
    }
    foreach ($ms as $i => $m) {
        p("c$i end " . q($m, "SELECT @me"));
        $m->close();
    }
}

/** insert_id, affected_rows, info, warnings, select_db, set_charset, ping, escaping, stat. */
function mysqliSession(): void
{
    global $S1, $S2;
    $a = my();
    $b = my();
    q($b, "SET @me = 'b'");
    $line = q($a, "INSERT INTO t (v, n) VALUES ('i1', 1), ('i2', 2), ('i3', 3)");
    $id = $a->insert_id;
    p("insert " . preg_replace('/id=\d+/', 'id=set', $line) . " info '{$a->info}' id_ok " . json_encode($id == q($a, "SELECT MIN(id) FROM t WHERE v LIKE 'i_'")));
    q($b, "SELECT 1");
    p("last_insert_id " . json_encode(q($a, "SELECT LAST_INSERT_ID()") == $id) . " " . q($b, "SELECT LAST_INSERT_ID()"));
    p("update " . q($a, "UPDATE t SET n = n + 1 WHERE v LIKE 'i_' OR v = 'nomatch'") . " info '{$a->info}'");
    p("update none " . q($a, "UPDATE t SET n = n WHERE v LIKE 'i_'") . " info '{$a->info}'");
    p("insert select " . q($a, "INSERT INTO t (v, n) SELECT CONCAT(v, 'x'), n FROM t WHERE v LIKE 'i_'") . " info '{$a->info}'");
    p("alter " . q($a, "ALTER TABLE li ADD COLUMN extra INT") . " info '{$a->info}'");
    p("load data info " . q($a, "INSERT IGNORE INTO t (v, n) VALUES ('i1', 9), ('i9', 9)") . " info '{$a->info}'");
    // Warnings, read with get_warnings (SHOW WARNINGS) after the other client's query.
    p("warn " . q($a, "INSERT IGNORE INTO t (v, n) VALUES ('w1', 'abc'), ('w2', 99999999999)") . " count {$a->warning_count}");
    p("other between " . q($b, "SELECT @me, @@warning_count"));
    $w = $a->get_warnings();
    $ws = [];
    if ($w) {
        do {
            $ws[] = "$w->errno:$w->sqlstate:$w->message";
        } while ($w->next());
    }
    p("get_warnings " . implode(' | ', $ws));
    p("select warn " . q($a, "SELECT CAST('x' AS INT), 1/0") . " count {$a->warning_count} " . q($a, "SHOW WARNINGS"));
    // select_db, and the schema a prepared statement reads.
    p("select_db " . json_encode($a->select_db($S1)) . " " . q($a, "SELECT DATABASE()"));
    q($a, "INSERT INTO t (v, n) VALUES ('in-s1', 1)");
    q($b, "SELECT 1");
    p("select_db kept " . q($a, "SELECT DATABASE(), COUNT(*) FROM t"));
    p("select_db bad " . json_encode($a->select_db('nosuch_db')) . " " . merr($a) . " " . q($a, "SELECT DATABASE()"));
    $a->select_db($S2);
    p("select_db again " . q($a, "SELECT DATABASE()") . " other " . q($b, "SELECT DATABASE()"));
    // set_charset.
    foreach (['latin1', 'utf8mb4', 'utf8', 'binary', 'nosuch'] as $cs) {
        $ok = $a->set_charset($cs);
        q($b, "SELECT 1");
        p("set_charset $cs " . json_encode($ok) . " name " . $a->character_set_name() . " " . q($a, "SELECT @@character_set_client, @@character_set_results, @@collation_connection, HEX('é')"));
    }
    $a->set_charset('utf8mb4');
    $cs = $a->get_charset();
    p("get_charset $cs->charset $cs->collation $cs->max_length");
    // ping.
    p("ping " . json_encode($a->ping()) . " " . json_encode($b->ping()) . " " . q($a, "SELECT DATABASE()"));
    // real_escape_string, with and without NO_BACKSLASH_ESCAPES (the server's status flag).
    $raw = "a'b\\c\"d\0e\n";
    foreach (['', 'NO_BACKSLASH_ESCAPES', 'ANSI_QUOTES'] as $mode) {
        q($a, "SET sql_mode = '$mode'");
        q($b, "SELECT 1");
        $e = $a->real_escape_string($raw);
        p("escape '$mode' " . bin2hex($e) . " " . q($a, "SELECT HEX('$e') = HEX(" . "0x" . bin2hex($raw) . "), LENGTH('$e')"));
        p("escape '$mode' insert " . q($a, "INSERT INTO t (v, n) VALUES ('$e', 5)") . " " . q($a, "SELECT HEX(v) FROM t WHERE n = 5 AND v LIKE 'a%'"));
        q($a, "DELETE FROM t WHERE n = 5");
    }
    q($a, "SET sql_mode = DEFAULT");
    // stat (COM_STATISTICS): the text is the server's, so only whether it answered.
    $s = $a->stat();
    p("stat " . json_encode(is_string($s) && strlen($s) > 0) . " then " . q($a, "SELECT 1"));
    p("server " . json_encode($a->server_version > 100000) . " proto {$a->protocol_version} client " . json_encode(str_starts_with($a->client_info, 'mysqlnd')));
    p("thread_id " . json_encode($a->thread_id == q($a, "SELECT CONNECTION_ID()")) . " distinct " . json_encode($a->thread_id != $b->thread_id));
    $a->close();
    $b->close();
}

/** Transactions through mysqli's API. */
function mysqliTransactions(): void
{
    $a = my();
    $b = my();
    p("read only begin " . json_encode($a->begin_transaction(MYSQLI_TRANS_START_READ_ONLY)) . " " . q($a, "SELECT @@in_transaction"));
    p("read only insert " . q($a, "INSERT INTO t (v, n) VALUES ('ro', 1)") . " other " . q($b, "SELECT @@in_transaction, @@tx_read_only"));
    p("read only commit " . json_encode($a->commit()) . " " . q($a, "SELECT @@in_transaction"));
    p("snapshot begin " . json_encode($a->begin_transaction(MYSQLI_TRANS_START_WITH_CONSISTENT_SNAPSHOT | MYSQLI_TRANS_START_READ_WRITE, 'named')) . " " . q($a, "SELECT @@in_transaction"));
    q($a, "INSERT INTO t (v, n) VALUES ('sp0', 1)");
    p("savepoint " . json_encode($a->savepoint('one')));
    q($a, "INSERT INTO t (v, n) VALUES ('sp1', 1)");
    p("savepoint two " . json_encode($a->savepoint('two')) . " release " . json_encode($a->release_savepoint('two')));
    p("rollback to " . q($a, "ROLLBACK TO SAVEPOINT one") . " other " . q($b, "SELECT COUNT(*) FROM t WHERE v LIKE 'sp_'"));
    p("release missing " . json_encode($a->release_savepoint('two')) . " " . merr($a));
    p("rollback named " . json_encode($a->rollback(0, 'named')) . " " . q($a, "SELECT @@in_transaction, COUNT(*) FROM t WHERE v LIKE 'sp_'"));
    p("autocommit false " . json_encode($a->autocommit(false)) . " " . q($a, "SELECT @@autocommit"));
    q($a, "INSERT INTO t (v, n) VALUES ('ac', 1)");
    p("uncommitted own " . q($a, "SELECT COUNT(*), @@in_transaction FROM t WHERE v = 'ac'") . " other " . q($b, "SELECT COUNT(*) FROM t WHERE v = 'ac'"));
    p("rollback " . json_encode($a->rollback()) . " " . q($a, "SELECT COUNT(*) FROM t WHERE v = 'ac'"));
    q($a, "INSERT INTO t (v, n) VALUES ('ac2', 1)");
    p("commit " . json_encode($a->commit()) . " other " . q($b, "SELECT COUNT(*) FROM t WHERE v = 'ac2'"));
    p("still off " . q($a, "SELECT @@autocommit, @@in_transaction"));
    q($a, "INSERT INTO t (v, n) VALUES ('ac3', 1)");
    p("autocommit true commits " . json_encode($a->autocommit(true)) . " other " . q($b, "SELECT COUNT(*) FROM t WHERE v = 'ac3'"));
    $a->close();
    // A client that closes with its transaction open: the server rolls it back.
    $a = my();
    $a->autocommit(false);
    q($a, "INSERT INTO t (v, n) VALUES ('ac4', 1)");
    $a->close();
    usleep(100000);
    p("closed in tx other " . q($b, "SELECT COUNT(*) FROM t WHERE v = 'ac4'"));
    $b->close();
}

/** change_user, kill, persistent connections. */
function mysqliConnections(): void
{
    global $USER, $USER2, $PASSWORD, $PASSWORD2, $S0, $S1, $HOST;
    $a = my();
    $b = my();
    q($a, "SET @me = 'a', time_zone = '+03:00'");
    q($a, "PREPARE s FROM 'SELECT 1'");
    $st = $a->prepare("SELECT ?");
    $one = 1;
    p("change_user " . json_encode($a->change_user($USER2, $PASSWORD2, $S1)) . " " . q($a, "SELECT @me, @@time_zone, DATABASE()"));
    p("change_user stmt gone " . q($a, "EXECUTE s") . " binary " . json_encode(@$st->bind_param('i', $one) && @$st->execute()) . " " . merr($st));
    q($b, "SELECT 1");
    p("change_user back " . json_encode($a->change_user($USER, $PASSWORD, $S0)) . " " . q($a, "SELECT @me, DATABASE()"));
    // change_user in a transaction rolls it back.
    $a->begin_transaction();
    q($a, "INSERT INTO t (v, n) VALUES ('cu-tx', 1)");
    p("change_user in tx " . json_encode($a->change_user($USER, $PASSWORD, $S0)) . " " . q($a, "SELECT @@in_transaction, COUNT(*) FROM t WHERE v = 'cu-tx'") . " other " . q($b, "SELECT COUNT(*) FROM t WHERE v = 'cu-tx'"));
    p("change_user bad " . json_encode(@$a->change_user($USER, 'wrong', $S0)) . " " . merr($a));
    p("after bad " . q($a, "SELECT 1") . " ping " . json_encode(@$a->ping()));
    @$a->close();
    // kill another connection by its thread_id.
    $a = my();
    $c = my();
    q($a, "SET @me = 'a'");
    p("kill " . json_encode($b->kill($a->thread_id)) . " " . ($b->errno ? merr($b) : ''));
    usleep(200000);
    p("killed query " . q($a, "SELECT @me") . " ping " . json_encode(@$a->ping()));
    p("killer " . q($b, "SELECT 'alive'") . " other " . q($c, "SELECT 'alive'"));
    p("kill unknown " . json_encode($b->kill(987654321)) . " " . merr($b));
    // KILL QUERY of a running async query.
    $a = my();
    $a->query("SELECT SLEEP(5), 'slept'", MYSQLI_ASYNC);
    usleep(300000);
    p("kill query " . q($b, "KILL QUERY {$a->thread_id}"));
    $r = $a->reap_async_query();
    p("killed sleep " . ($r ? rows($r) : merr($a)) . " then " . q($a, "SELECT 'next'"));
    $a->close();
    $b->close();
    $c->close();
    // Persistent connections: mysqlnd resets them (COM_CHANGE_USER) when taken again.
    $p1 = my(null, 0, "p:$HOST");
    $id = $p1->thread_id;
    q($p1, "SET @me = 'p1', time_zone = '+04:00'");
    q($p1, "CREATE TEMPORARY TABLE tmp (x INT)");
    p("persistent first " . q($p1, "SELECT @me, @@time_zone, COUNT(*) FROM tmp"));
    $p1->close();
    $other = my();
    q($other, "SELECT 1");
    $p2 = my(null, 0, "p:$HOST");
    p("persistent again same " . json_encode($p2->thread_id == $id) . " " . q($p2, "SELECT @me, @@time_zone, DATABASE()") . " tmp " . q($p2, "SELECT COUNT(*) FROM tmp"));
    $p2->select_db($S1);
    q($p2, "SET @me = 'p2'");
    $p3 = my(null, 0, "p:$HOST");
    p("persistent second open distinct " . json_encode($p3->thread_id != $p2->thread_id) . " " . q($p3, "SELECT @me") . " " . q($p2, "SELECT @me"));
    // A transaction left open on a persistent connection is rolled back when it is taken again.
    $p3->begin_transaction();
    q($p3, "INSERT INTO t (v, n) VALUES ('pers', 1)");
    $p3->close();
    $p2->close();
    // Both taken again at once (so that neither stays idle with the transaction open).
    $p4 = my(null, 0, "p:$HOST");
    $p5 = my(null, 0, "p:$HOST");
    p("persistent tx left " . q($p4, "SELECT @@in_transaction, @me, COUNT(*) FROM t WHERE v = 'pers'") . " " . q($p5, "SELECT @@in_transaction, @me, COUNT(*) FROM t WHERE v = 'pers'") . " other " . q($other, "SELECT COUNT(*) FROM t WHERE v = 'pers'"));
    $p4->close();
    $p5->close();
    $other->close();
    // PDO persistent connections: taken again as they are.
    $pp = pdo([PDO::ATTR_PERSISTENT => true]);
    $pp->exec("SET @pp = 'kept'");
    $pp = null;
    $pp = pdo([PDO::ATTR_PERSISTENT => true]);
    p("pdo persistent " . pq($pp, "SELECT @pp"));
    $pp = null;
}

/** Compression, LOAD DATA LOCAL INFILE, async queries. */
function mysqliMore(): void
{
    global $S0;
    // Compression.
    $z = my(null, MYSQLI_CLIENT_COMPRESS);
    $o = my();
    // (Not SHOW STATUS LIKE 'Compression': through Funnel that is the backend connection's.)
    p("compress " . q($z, "SELECT COUNT(*), SUM(LENGTH(v)) FROM big"));
    $r = $z->query("SELECT id, v FROM big ORDER BY id");
    $n = 0;
    while ($row = $r->fetch_row()) {
        $n += strlen($row[1]);
    }
    p("compress rows $n " . q($o, "SELECT 1"));
    p("compress big " . q($z, "SELECT LENGTH(REPEAT('z', 3000000)), MD5(REPEAT('z', 3000000))"));
    $r = $z->query("SELECT REPEAT('y', 3000000)");
    p("compress big value " . md5($r->fetch_row()[0]));
    $st = $z->prepare("SELECT ?, LENGTH(?)");
    $small = 'p';
    $large = str_repeat('q', 200000);
    $st->bind_param('ss', $small, $large);
    $st->execute();
    p("compress prepared " . json_encode($st->get_result()->fetch_all(MYSQLI_NUM)));
    $z->multi_query("SELECT 1; SELECT REPEAT('m', 70000); SELECT 3");
    $lens = [];
    do {
        $r = $z->store_result();
        $lens[] = strlen($r->fetch_row()[0]);
        $r->free();
    } while ($z->more_results() && $z->next_result());
    p("compress multi " . implode(',', $lens));
    $z->close();
    // LOAD DATA LOCAL INFILE.
    // Allowed per connection from one directory (mysqli.allow_local_infile is off).
    $dir = sys_get_temp_dir() . '/funnel-php-' . getmypid() . '-' . bin2hex(random_bytes(4));
    mkdir($dir);
    $file = "$dir/li.tsv";
    $lines = '';
    for ($k = 1; $k <= 3000; $k++) {
        $lines .= "$k\tname$k\t" . ($k * 2) . "\n";
    }
    file_put_contents($file, $lines);
    $l = my(null, 0, null, [MYSQLI_OPT_LOAD_DATA_LOCAL_DIR => $dir]);
    p("infile " . q($l, "LOAD DATA LOCAL INFILE '$file' INTO TABLE li (id, name, n)") . " info '{$l->info}' other " . q($o, "SELECT COUNT(*), SUM(n) FROM li"));
    p("infile dup " . q($l, "LOAD DATA LOCAL INFILE '$file' IGNORE INTO TABLE li (id, name, n)") . " info '{$l->info}'");
    q($o, "SELECT 1");
    $w = $l->get_warnings();
    $n = 0;
    $last = '';
    while ($w) {
        $n++;
        $last = "$w->errno:$w->message";
        if (!$w->next()) {
            break;
        }
    }
    p("infile dup warnings $n last $last " . q($l, "SELECT @@warning_count"));
    p("infile missing " . q($l, "LOAD DATA LOCAL INFILE '$dir/missing.tsv' INTO TABLE li") . " then " . q($l, "SELECT COUNT(*) FROM li"));
    p("infile outside " . q($l, "LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE li") . " then " . q($l, "SELECT COUNT(*) FROM li"));
    $nl = my();
    p("infile refused " . q($nl, "LOAD DATA LOCAL INFILE '$file' REPLACE INTO TABLE li (id, name, n)") . " then " . q($nl, "SELECT 'fine'"));
    $nl->close();
    $pd = pdo([PDO::MYSQL_ATTR_LOCAL_INFILE => true]);
    $pd->exec("DELETE FROM li WHERE id > 1000");
    try {
        p("pdo infile " . $pd->exec("LOAD DATA LOCAL INFILE '$file' IGNORE INTO TABLE li (id, name, n)") . " " . pq($pd, "SELECT COUNT(*) FROM li"));
    } catch (PDOException $e) {
        p("pdo infile " . perr($e));
    }
    $pd = null;
    unlink($file);
    rmdir($dir);
    $l->close();
    // Async queries on four connections at once (Funnel has two backend connections).
    $as = [my(), my(), my(), my()];
    foreach ($as as $i => $m) {
        q($m, "SET @me = $i");
    }
    foreach ([0, 1] as $round) {
        foreach ($as as $i => $m) {
            $sql = match ($i) {
                0 => "SELECT SLEEP(0.2), @me, $round",
                1 => "INSERT INTO t (v, n) VALUES ('async$round', 1)",
                2 => "SELECT * FROM nosuch",
                3 => "SELECT COUNT(*), @me FROM big",
            };
            $m->query($sql, MYSQLI_ASYNC);
        }
        $pending = $as;
        $got = [];
        $loops = 0;
        while ($pending && $loops++ < 1000) {
            $read = $error = $reject = $pending;
            $n = mysqli_poll($read, $error, $reject, 5);
            if ($n === false) {
                p("poll failed");
                break;
            }
            foreach ($read as $m) {
                $i = array_search($m, $as, true);
                $r = $m->reap_async_query();
                if ($r instanceof mysqli_result) {
                    $got[$i] = "rs[" . rows($r) . "]";
                    $r->free();
                } else {
                    $got[$i] = $r ? "ok a={$m->affected_rows} id_set=" . json_encode($m->insert_id > 0) : merr($m);
                }
                unset($pending[$i]);
            }
            foreach ($error as $m) {
                $i = array_search($m, $as, true);
                $got[$i] = "poll error";
                unset($pending[$i]);
            }
        }
        ksort($got);
        p("async r$round " . implode(' ', $got));
    }
    // A transaction holds one of Funnel's two connections meanwhile: the four wait in turn for the other.
    $o->begin_transaction();
    q($o, "INSERT INTO t (v, n) VALUES ('async-tx', 1)");
    foreach ($as as $i => $m) {
        $m->query("SELECT SLEEP(0.05), @me, (SELECT COUNT(*) FROM t WHERE v = 'async-tx')", MYSQLI_ASYNC);
    }
    $got = [];
    $pending = $as;
    $loops = 0;
    while ($pending && $loops++ < 1000) {
        $read = $error = $reject = $pending;
        if (mysqli_poll($read, $error, $reject, 5) === false) {
            break;
        }
        foreach ($read as $m) {
            $i = array_search($m, $as, true);
            $r = $m->reap_async_query();
            $got[$i] = $r ? rows($r) : merr($m);
            unset($pending[$i]);
        }
    }
    ksort($got);
    $o->rollback();
    p("async beside a transaction " . implode(' ', $got) . " pending " . count($pending));
    foreach ($as as $i => $m) {
        p("async c$i then " . q($m, "SELECT @me"));
        $m->close();
    }
    $o->close();
}

/** Login flags that change answers (FOUND_ROWS, IGNORE_SPACE), on clients that share connections. */
function loginFlags(): void
{
    $plain = my();
    $found = my(null, MYSQLI_CLIENT_FOUND_ROWS);
    $pf = pdo([PDO::MYSQL_ATTR_FOUND_ROWS => true, PDO::ATTR_EMULATE_PREPARES => false]);
    $pp = pdo();
    q($plain, "INSERT INTO t (v, n) VALUES ('fr1', 1), ('fr2', 1)");
    foreach ([0, 1] as $round) {
        p("r$round plain " . q($plain, "UPDATE t SET n = 1 WHERE v LIKE 'fr_'") . " info '{$plain->info}'");
        p("r$round found " . q($found, "UPDATE t SET n = 1 WHERE v LIKE 'fr_'") . " info '{$found->info}' " . q($found, "SELECT ROW_COUNT()"));
        p("r$round pdo found " . pq($pf, "UPDATE t SET n = ? WHERE v LIKE ?", [1, 'fr_']) . " " . $pf->exec("UPDATE t SET n = 1 WHERE v LIKE 'fr_'"));
        p("r$round pdo plain " . pq($pp, "UPDATE t SET n = ? WHERE v LIKE ?", [1, 'fr_']) . " " . $pp->exec("UPDATE t SET n = 1 WHERE v LIKE 'fr_'"));
        $st = $found->prepare("UPDATE t SET n = ? WHERE v LIKE 'fr_'");
        $one = 1;
        $st->bind_param('i', $one);
        $st->execute();
        p("r$round found prepared a={$st->affected_rows}");
        $st->close();
    }
    $sp = my(null, MYSQLI_CLIENT_IGNORE_SPACE);
    $ps = pdo([PDO::MYSQL_ATTR_IGNORE_SPACE => true]);
    foreach ([0, 1] as $round) {
        p("r$round ignore space " . q($sp, "SELECT FIND_IN_SET('IGNORE_SPACE', @@sql_mode) > 0, COUNT (*) FROM t WHERE v LIKE 'fr_'") . " pdo " . pq($ps, "SELECT FIND_IN_SET('IGNORE_SPACE', @@sql_mode) > 0, COUNT (*) FROM t WHERE v LIKE 'fr_'") . " plain " . q($plain, "SELECT FIND_IN_SET('IGNORE_SPACE', @@sql_mode) > 0"));
    }
    // PDO with compression, and column metadata of both kinds of prepare.
    $pz = pdo([PDO::MYSQL_ATTR_COMPRESS => true]);
    p("pdo compress " . pq($pz, "SELECT COUNT(*), SUM(LENGTH(v)), LENGTH(REPEAT('z', 1000000)) FROM big"));
    foreach ([true, false] as $emulate) {
        $p = pdo([PDO::ATTR_EMULATE_PREPARES => $emulate]);
        $st = $p->prepare("SELECT id, v, n, ? AS x, NOW() AS d FROM t WHERE id > ? LIMIT 1");
        $st->execute(['a', 0]);
        $meta = [];
        for ($k = 0; $k < $st->columnCount(); $k++) {
            $m = $st->getColumnMeta($k);
            $meta[] = "{$m['name']}:{$m['native_type']}:{$m['len']}:{$m['precision']}:" . implode('|', $m['flags']) . ":" . ($m['table'] ?? '');
        }
        p("meta " . ($emulate ? 'e' : 'n') . " " . implode(' ', $meta));
    }
    // COMMIT AND CHAIN keeps a transaction going; ROLLBACK RELEASE ends the session.
    $a = my();
    $a->begin_transaction();
    q($a, "INSERT INTO t (v, n) VALUES ('chain1', 1)");
    p("commit and chain " . json_encode($a->commit(MYSQLI_TRANS_COR_AND_CHAIN)) . " " . q($a, "SELECT @@in_transaction") . " other " . q($plain, "SELECT COUNT(*) FROM t WHERE v = 'chain1'"));
    q($a, "INSERT INTO t (v, n) VALUES ('chain2', 1)");
    p("rollback release " . json_encode($a->rollback(MYSQLI_TRANS_COR_RELEASE)) . " then " . q($a, "SELECT 'still here'") . " other " . q($plain, "SELECT COUNT(*) FROM t WHERE v = 'chain2'"));
    @$a->close();
    $a = my();
    q($a, "SET @me = 'a'");
    p("commit release " . q($a, "COMMIT RELEASE") . " then " . q($a, "SELECT @me") . " other " . q($plain, "SELECT 'fine'"));
    @$a->close();
    // completion_type = RELEASE: every COMMIT ends the session.
    $a = my();
    q($a, "SET completion_type = 'RELEASE'");
    $a->begin_transaction();
    q($a, "INSERT INTO t (v, n) VALUES ('ctrel', 1)");
    p("completion_type release commit " . json_encode($a->commit()) . " then " . q($a, "SELECT 1") . " " . q($a, "SELECT 2") . " other " . q($plain, "SELECT COUNT(*) FROM t WHERE v = 'ctrel'"));
    @$a->close();
    // Statement warnings and metadata.
    $st = $plain->prepare("SELECT CAST(? AS INT) AS c, ? / 0 AS d");
    $x = 'x1';
    $z = 5;
    $st->bind_param('si', $x, $z);
    $st->execute();
    $st->store_result();
    q($found, "SELECT 1");
    $w = $plain->get_warnings();
    $ws = [];
    if ($w) {
        do {
            $ws[] = "$w->errno:$w->message";
        } while ($w->next());
    }
    $md = $st->result_metadata();
    p("stmt warnings {$plain->warning_count} " . implode(' | ', $ws) . " meta " . implode(',', array_map(fn($f) => "$f->name:$f->type:$f->length", $md->fetch_fields())));
    $st->close();
    foreach ([$plain, $found, $sp] as $m) {
        $m->close();
    }
}

/** Logins: refused ones, login character sets, mysqli's init command, self-kill, COM_REFRESH, COM_DEBUG. */
function logins(): void
{
    global $HOST, $PORT, $USER, $PASSWORD, $S0;
    $try = function (string $user, string $password, ?string $db) use ($HOST, $PORT): string {
        $m = mysqli_init();
        $ok = @$m->real_connect($HOST, $user, $password, $db, (int)$PORT);
        return $ok ? 'connected' : mysqli_connect_errno() . ' ' . mysqli_connect_error();
    };
    p("bad password " . $try($USER, 'wrong', $S0));
    p("no password " . $try($USER, '', $S0));
    p("unknown user " . $try('nosuchuser', 'x', $S0));
    p("unknown db " . $try($USER, $PASSWORD, 'nosuch_db'));
    p("no db " . $try($USER, $PASSWORD, null));
    try {
        pdo([], 'nosuch_db');
    } catch (PDOException $e) {
        p("pdo unknown db " . $e->getCode() . " " . $e->getMessage());
    }
    // Login character sets (the handshake's collation), several at once.
    $ms = [];
    foreach (['latin1', 'utf8mb4', 'utf8', 'latin1', 'binary'] as $i => $cs) {
        $ms[$i] = my(null, 0, null, [MYSQLI_SET_CHARSET_NAME => $cs]);
    }
    foreach ([0, 1] as $round) {
        foreach ($ms as $i => $m) {
            p("r$round charset c$i {$m->character_set_name()} " . q($m, "SELECT @@character_set_client, @@character_set_connection, @@character_set_results, @@collation_connection, HEX('é'), LENGTH('é')"));
        }
    }
    $pl = pdo([], null);
    $p1 = new PDO("mysql:host=$HOST;port=$PORT;dbname=$S0;charset=latin1", $USER, $PASSWORD);
    p("pdo charsets " . pq($p1, "SELECT @@character_set_client, HEX('é')") . " " . pq($pl, "SELECT @@character_set_client, HEX('é')"));
    foreach ($ms as $m) {
        $m->close();
    }
    // mysqli's init command.
    $a = my(null, 0, null, [MYSQLI_INIT_COMMAND => "SET @init = 'mysqli', time_zone = '+07:00'"]);
    $b = my();
    p("init command " . q($a, "SELECT @init, @@time_zone") . " other " . q($b, "SELECT @init, @@time_zone"));
    // The server's identity as mysqlnd reads it from the greeting.
    // (Funnel's greeting appends "-funnel" to the server's version: left out.)
    $info = preg_replace('/-funnel$/', '', $a->server_info);
    p("server_info same as VERSION() " . json_encode($info === q($a, "SELECT VERSION()")) . " " . $a->server_version . " host_info {$a->host_info}");
    // COM_REFRESH and COM_DEBUG.
    p("refresh " . json_encode(@$a->refresh(MYSQLI_REFRESH_STATUS)) . " " . ($a->errno ? merr($a) : '') . " then " . q($a, "SELECT @init"));
    p("debug info " . json_encode(@$a->dump_debug_info()) . " " . ($a->errno ? merr($a) : '') . " then " . q($a, "SELECT @init"));
    // A client killing its own connection.
    $k = my();
    p("kill self " . json_encode(@$k->kill($k->thread_id)) . " " . ($k->errno ? merr($k) : '') . " then " . q($k, "SELECT 1") . " other " . q($b, "SELECT 'fine'"));
    @$k->close();
    $a->close();
    $b->close();
}

/** Clients that go away mid-result (closed or dropped): the others are served on. */
function abandon(): void
{
    $o = my();
    q($o, "SET @me = 'o'");
    foreach ([0, 1] as $round) {
        // An unbuffered result, closed after 100 rows.
        $a = my();
        $r = $a->query("SELECT id, v FROM big ORDER BY id", MYSQLI_USE_RESULT);
        for ($k = 0; $k < 100; $k++) {
            $r->fetch_row();
        }
        $a->close();
        p("r$round after closed stream " . q($o, "SELECT @me, COUNT(*) FROM big"));
        // An async query never reaped.
        $a = my();
        $a->query("SELECT SLEEP(0.2), 'unreaped'", MYSQLI_ASYNC);
        $a->close();
        p("r$round after unreaped async " . q($o, "SELECT @me"));
        // An open cursor.
        $a = my();
        $st = $a->prepare("SELECT id FROM big WHERE id > ? ORDER BY id");
        $st->attr_set(MYSQLI_STMT_ATTR_CURSOR_TYPE, MYSQLI_CURSOR_TYPE_READ_ONLY);
        $z = 0;
        $st->bind_param('i', $z);
        $st->execute();
        $st->bind_result($id);
        $st->fetch();
        $a->close();
        p("r$round after open cursor $id " . q($o, "SELECT @me"));
        // A PDO unbuffered statement and its connection dropped mid-stream.
        $p = pdo([PDO::MYSQL_ATTR_USE_BUFFERED_QUERY => false, PDO::ATTR_EMULATE_PREPARES => false]);
        $st = $p->prepare("SELECT id, v FROM big WHERE id > ?");
        $st->execute([0]);
        $st->fetch();
        $st = null;
        $p = null;
        // A multi_query whose results were never read.
        $a = my();
        $a->multi_query("SELECT * FROM big; SELECT 2");
        $a->close();
        // Four fresh clients and the old one, all served.
        $ms = [my(), my(), my(), my()];
        $got = [];
        foreach ($ms as $i => $m) {
            $got[] = q($m, "SELECT $i, COUNT(*) FROM big WHERE id <= 10");
        }
        p("r$round fresh " . implode(' ', $got) . " old " . q($o, "SELECT @me"));
        foreach ($ms as $m) {
            $m->close();
        }
    }
    // A client killed (by another) while it reads an unbuffered result.
    $a = my();
    $r = $a->query("SELECT b.id, b.v FROM big b, seq_1_to_50 s", MYSQLI_USE_RESULT);
    $r->fetch_row();
    p("kill while streaming " . json_encode($o->kill($a->thread_id)));
    $n = 1;
    while (@$r->fetch_row()) {
        $n++;
    }
    p("killed stream read " . ($n < 1000000 ? 'fewer' : "all $n") . " then " . q($a, "SELECT 1") . " other " . q($o, "SELECT @me"));
    @$a->close();
    $o->close();
}

/** Packets past 16 MB (split in the protocol), plain and compressed, while another client queries. */
function bigPackets(): void
{
    $o = my();
    foreach ([0, MYSQLI_CLIENT_COMPRESS] as $flags) {
        $tag = $flags ? 'z' : 'p';
        $m = my(null, $flags);
        $big = str_repeat('abcdefghij', 1700000) . 'end';
        $r = $m->query("SELECT LENGTH('$big'), MD5('$big')");
        p("$tag text query in " . ($r ? rows($r) === strlen($big) . ',' . md5($big) : merr($m)) . " other " . q($o, "SELECT 1"));
        $st = $m->prepare("SELECT LENGTH(?), MD5(?), ?");
        $small = 's';
        $st->bind_param('sss', $big, $big, $small);
        $st->execute();
        $res = $st->get_result();
        p("$tag execute in " . ($res ? json_encode($res->fetch_row() === [strlen($big), md5($big), 's']) : merr($st)));
        $st->close();
        $r = $m->query("SELECT REPEAT('xyz', 6000000), 'after'");
        $row = $r ? $r->fetch_row() : null;
        p("$tag row out " . ($row ? strlen($row[0]) . ' ' . md5($row[0]) . ' ' . $row[1] : merr($m)) . " other " . q($o, "SELECT 2"));
        $st = $m->prepare("SELECT REPEAT(?, 6000000), ?");
        $x = 'qrs';
        $st->bind_param('ss', $x, $small);
        $st->execute();
        $res = $st->get_result();
        $row = $res ? $res->fetch_row() : null;
        p("$tag binary row out " . ($row ? strlen($row[0]) . ' ' . $row[1] : merr($st)));
        $st->close();
        $m->close();
    }
    // COM_STMT_RESET of a statement whose session moved between connections meanwhile.
    $a = my();
    $b = my();
    $c = my();
    $st = $a->prepare("SELECT ? + 1");
    $k = 1;
    $st->bind_param('i', $k);
    $st->execute();
    $st->get_result();
    foreach ([$b, $c, $b] as $m) {
        q($m, "SELECT SLEEP(0)");
    }
    p("reset elsewhere " . json_encode($st->reset()) . " " . ($st->errno ? merr($st) : ''));
    $k = 41;
    $st->execute();
    p("execute after reset " . json_encode($st->get_result()->fetch_all()));
    $o->close();
    $a->close();
    $b->close();
    $c->close();
}

/** Column metadata as mysqlnd reads it, status flags it reports (MYSQLI_REPORT_INDEX), multi-statement SETs. */
function metadata(): void
{
    $a = my();
    $b = my();
    q($a, "INSERT INTO t (v, n) VALUES ('meta1', 1)");
    $field = fn($f) => "$f->name/$f->orgname/" . ($f->table === '' ? '' : 'T') . "/$f->type/$f->length/$f->flags/$f->charsetnr/$f->decimals";
    $sql = "SELECT id AS i, v, n, LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS(), CONNECTION_ID() > 0, LAST_INSERT_ID() + 0 AS l2, 1.5 AS d, NOW(3) AS t3 FROM t WHERE v = 'meta1'";
    $r = $a->query($sql);
    q($b, "SELECT 1");
    p("text fields " . implode(' ', array_map($field, $r->fetch_fields())));
    $r->free();
    $st = $a->prepare($sql);
    $md = $st->result_metadata();
    p("prepared fields " . implode(' ', array_map($field, $md->fetch_fields())));
    $st->execute();
    $res = $st->get_result();
    p("executed fields " . implode(' ', array_map($field, $res->fetch_fields())));
    $st->close();
    // mysqlnd raises "No index used" from the server's status flags.
    mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT | MYSQLI_REPORT_INDEX);
    // (Each on a connection of its own: the exception leaves the result unread.)
    foreach (["SELECT * FROM t WHERE n = 1", "SELECT * FROM t WHERE id = 1", "SELECT COUNT(*) FROM big WHERE v LIKE 'A%'"] as $k => $sql) {
        $x = my();
        try {
            $r = $x->query($sql);
            $r->free();
            p("index $k none");
        } catch (mysqli_sql_exception $e) {
            p("index $k " . $e->getMessage());
        }
        @$x->close();
        q($b, "SELECT 1");
        $x = my();
        try {
            $st = $x->prepare($sql);
            $st->execute();
            $st->get_result();
            p("index prepared $k none");
        } catch (mysqli_sql_exception $e) {
            p("index prepared $k " . $e->getMessage());
        }
        @$x->close();
    }
    mysqli_report(MYSQLI_REPORT_OFF);
    // Multi-statement SETs (tracked) and a SET beside a SELECT.
    $a->multi_query("SET @mq = 5; SET time_zone = '+05:00'");
    do {
        ($r = $a->store_result()) && $r->free();
    } while ($a->more_results() && $a->next_result());
    q($b, "SELECT 1");
    p("multi sets " . q($a, "SELECT @mq, @@time_zone") . " other " . q($b, "SELECT @mq, @@time_zone"));
    $a->multi_query("SET @mq = 6; SELECT @mq, 'x'");
    $got = [];
    do {
        if ($r = $a->store_result()) {
            $got[] = rows($r);
            $r->free();
        }
    } while ($a->more_results() && $a->next_result());
    q($b, "SELECT 1");
    p("multi set select " . implode(' ', $got) . " then " . q($a, "SELECT @mq") . " other " . q($b, "SELECT @mq"));
    // Two cursors open on one session, read in turn, with a plain execute, a query and another client between.
    $cur = function (string $sql) use ($a) {
        $st = $a->stmt_init();
        $st->prepare($sql);
        $st->attr_set(MYSQLI_STMT_ATTR_CURSOR_TYPE, MYSQLI_CURSOR_TYPE_READ_ONLY);
        $st->attr_set(MYSQLI_STMT_ATTR_PREFETCH_ROWS, 2);
        $st->execute();
        return $st;
    };
    $s1 = $cur("SELECT id FROM big WHERE id <= 7 ORDER BY id");
    $s2 = $cur("SELECT id * 100 FROM big WHERE id <= 5 ORDER BY id DESC");
    $s1->bind_result($x1);
    $s2->bind_result($x2);
    $plain = $a->prepare("SELECT ? * 2");
    $got = [];
    for ($k = 0; $k < 8; $k++) {
        $got[] = ($s1->fetch() ? $x1 : '-') . ':' . ($s2->fetch() ? $x2 : '-');
        if ($k == 2) {
            $plain->bind_param('i', $k);
            $plain->execute();
            $got[] = 'p' . $plain->get_result()->fetch_row()[0];
            $got[] = 'q' . q($a, "SELECT @mq");
            q($b, "SELECT 1");
        }
    }
    p("two cursors " . implode(' ', $got));
    $s1->close();
    $s2->close();
    $plain->close();
    p("after cursors " . q($a, "SELECT @mq") . " other " . q($b, "SELECT 'fine'"));
    $a->close();
    $b->close();
}

$all = [
    'pdo-emulated' => fn() => pdoBasics(true),
    'pdo-native' => fn() => pdoBasics(false),
    'pdo-unbuffered' => 'pdoUnbuffered',
    'pdo-options' => 'pdoOptions',
    'pdo-tx' => 'pdoTransactions',
    'queries' => 'mysqliQueries',
    'stmt' => 'mysqliStatements',
    'session' => 'mysqliSession',
    'tx' => 'mysqliTransactions',
    'connections' => 'mysqliConnections',
    'more' => 'mysqliMore',
    'flags' => 'loginFlags',
    'logins' => 'logins',
    'abandon' => 'abandon',
    'big' => 'bigPackets',
    'metadata' => 'metadata',
];
$SCENARIO = 'setup';
setup();
foreach ($all as $name => $f) {
    if ($ONLY && !in_array($name, $ONLY, true)) {
        continue;
    }
    $SCENARIO = $name;
    try {
        $f();
    } catch (Throwable $e) {
        p("EXCEPTION " . get_class($e) . " " . $e->getMessage() . " line " . $e->getLine());
    }
}
$SCENARIO = '';
p("done");
