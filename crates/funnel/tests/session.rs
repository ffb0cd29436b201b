//! Multiplexing correctness, table-driven: each case is a script of
//! statements from two or three clients, run once directly against MariaDB
//! (one server connection per client) and once through Funnel, where the
//! clients share a pool of one or two backend connections. Every statement
//! must give the same answer both ways.

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

/// What one statement returned: its result sets as debug-printed values, or an error code.
type Outcome = Result<Vec<Vec<Vec<String>>>, u16>;

struct Case {
    name: &'static str,
    /// Backend connections Funnel may use (pinned clients each hold one).
    pool: usize,
    /// Run in the case's schema before the script, on each side.
    setup: &'static [&'static str],
    /// (client, SQL) in order.
    steps: &'static [(usize, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        // Before a session's first CALL the connection is given the
        // client's insert id (`DO LAST_INSERT_ID(n)`), which sets the
        // server's ROW_COUNT() to 0; where the client's count for
        // FOUND_ROWS() is not given after it (its warnings are on the
        // connection), the procedure read that 0 after a statement that
        // warned or failed, where MariaDB reads -1: it is given back.
        name: "ROW_COUNT() in a session's first CALL after a statement that warned or failed",
        pool: 3,
        setup: &["CREATE PROCEDURE rcw() SELECT ROW_COUNT(), FOUND_ROWS()"],
        steps: &[
            (0, "SELECT CAST('x' AS SIGNED)"),
            (0, "CALL rcw()"),
            (0, "SHOW WARNINGS"),
            // FOUND_ROWS() at login is what the server thread's previous
            // connection left (session 27): made the session's first.
            (1, "SELECT 1"),
            (1, "SELECT * FROM nosuch"),
            (1, "CALL rcw()"),
            (1, "SHOW WARNINGS"),
            (2, "SET sql_auto_is_null = 1"),
            (2, "SELECT CAST('y' AS SIGNED)"),
            (2, "CALL rcw()"),
            (2, "SELECT ROW_COUNT()"),
        ],
    },
    Case {
        // A session a CALL pinned prepares a statement its connection
        // lacks under its own sql_mode, which the server saves and a `SET`
        // of Funnel's puts back after; the prepare refused (a read-only
        // session), that SET left ROW_COUNT() at 0 where the next CALL's
        // procedure reads the failed execute's -1: it is given back.
        name: "ROW_COUNT() in a CALL after a refused prepare in a session a CALL pinned",
        pool: 2,
        setup: &["CREATE TABLE urc (v INT)", "CREATE PROCEDURE rcp() SELECT ROW_COUNT()"],
        steps: &[
            // Client 1 holds one connection, client 0 prepares on the other.
            (1, "BEGIN"),
            (1, "INSERT INTO urc VALUES (0)"),
            (0, "PS:INSERT INTO urc VALUES (1)"),
            // Client 2 holds that one; client 0 is pinned to the first,
            // which lacks the statement.
            (2, "BEGIN"),
            (2, "INSERT INTO urc VALUES (2)"),
            (1, "COMMIT"),
            // Not right after the insert: a count above 0 is one no
            // statement gives back.
            (0, "SELECT 1"),
            (0, "CALL rcp()"),
            (2, "COMMIT"),
            (0, "SET SESSION TRANSACTION READ ONLY"),
            (0, "SET sql_mode = 'ANSI_QUOTES'"),
            (0, "PS:INSERT INTO urc VALUES (1)"),
            (0, "CALL rcp()"),
            (0, "SELECT ROW_COUNT()"),
        ],
    },
    Case {
        // As below, with the statement prepared under another sql_mode:
        // the connection keeps that one after the refusal, and the `SET`
        // back to the session's before the next command left the server's
        // ROW_COUNT() at 0, which dynamic SQL, a procedure or a prepared
        // `SELECT ROW_COUNT()` read there: Funnel gives the client's -1 (or
        // 0) back after such statements of its own.
        name: "ROW_COUNT() read by dynamic SQL after a refused prepare under another sql_mode",
        pool: 2,
        setup: &["CREATE TABLE ur (v INT)"],
        steps: &[
            (1, "BEGIN"),
            (1, "INSERT INTO ur VALUES (0)"),
            (0, "PS:INSERT INTO ur VALUES (1)"),
            (2, "BEGIN"),
            (2, "INSERT INTO ur VALUES (2)"),
            (1, "COMMIT"),
            (0, "SET sql_auto_is_null = 1"),
            (2, "COMMIT"),
            (0, "SET SESSION TRANSACTION READ ONLY"),
            (0, "SET sql_mode = 'ANSI_QUOTES'"),
            (0, "PS:INSERT INTO ur VALUES (1)"),
            (0, "EXECUTE IMMEDIATE 'SELECT ROW_COUNT(), @@warning_count'"),
            (0, "SHOW WARNINGS"),
            (0, "PS:INSERT INTO ur VALUES (1)"),
            (0, "SET sql_mode = DEFAULT"),
            (0, "PS:INSERT INTO ur VALUES (1)"),
            (0, "EXECUTE IMMEDIATE 'SELECT ROW_COUNT(), FOUND_ROWS()'"),
        ],
    },
    Case {
        // A pinned session's execute of a statement its connection lacks
        // prepares it there in the statement's schema; the server refuses
        // (a read-only session) and the connection stays in that schema.
        // A `USE` that fails next leaves it there too, so the next command
        // selects the session's schema first, a statement of Funnel's:
        // ROW_COUNT() is not the server's then, but -1, as after any failed
        // statement (soak seed 502105 at level 4: 0 before).
        name: "ROW_COUNT() after a failed USE that left a refused prepare's schema",
        pool: 2,
        setup: &["CREATE TABLE ur (v INT)"],
        steps: &[
            // Client 1 holds one connection, client 0 prepares on the other.
            (1, "BEGIN"),
            (1, "INSERT INTO ur VALUES (0)"),
            (0, "PS:INSERT INTO ur VALUES (1)"),
            // Client 2 holds that one; client 0 pins the first, which
            // lacks the statement.
            (2, "BEGIN"),
            (2, "INSERT INTO ur VALUES (2)"),
            (1, "COMMIT"),
            (0, "SET sql_auto_is_null = 1"),
            (2, "COMMIT"),
            (0, "SET SESSION TRANSACTION READ ONLY"),
            (0, "USE information_schema"),
            (0, "PS:INSERT INTO ur VALUES (1)"),
            (0, "USE nosuch_schema"),
            (0, "SELECT LAST_INSERT_ID(), ROW_COUNT(), DATABASE()"),
            (0, "SELECT ROW_COUNT()"),
        ],
    },
    Case {
        // A statement prepared under MSSQL, executed in a session a CALL
        // pinned (its variables are not tracked there) after a SET of
        // another sql_mode, on a connection that lacks it: it is
        // prepared there under its own modes, which the server saves and
        // puts back (soak seed 500569: 1064 before).
        name: "a statement prepared under MSSQL executed on a connection pinned by a CALL",
        pool: 2,
        setup: &[
            "CREATE TABLE msq (v INT)",
            "INSERT INTO msq VALUES (1)",
            "CREATE PROCEDURE msq_p() SELECT 1",
        ],
        steps: &[
            (0, "SET sql_mode = 'MSSQL'"),
            (0, "PS:SELECT [v] FROM msq"),
            (0, "SET sql_mode = ''"),
            (1, "BEGIN"),
            (1, "SELECT COUNT(*) FROM msq"),
            (0, "CALL msq_p()"),
            (0, "PS:SELECT [v] FROM msq"),
            (0, "SELECT @@sql_mode, @@old_mode, @funnel_sql_mode, ROW_COUNT()"),
            (0, "INSERT INTO msq VALUES (2)"),
            (0, "PS:SELECT [v] FROM msq"),
            (0, "SELECT ROW_COUNT()"),
            (1, "COMMIT"),
        ],
    },
    Case {
        // Funnel's reads of what a statement left (a count, computed
        // values) have a LIMIT of their own: under the session's
        // sql_select_limit = 0 they returned no row, and each pinned the
        // session for life (the other client got ERR 9001).
        name: "read-backs under sql_select_limit = 0",
        pool: 1,
        setup: &["CREATE TABLE sl0 (v INT)", "INSERT INTO sl0 VALUES (1), (2), (3)"],
        steps: &[
            (0, "SET sql_select_limit = 0"),
            (0, "SELECT SQL_CALC_FOUND_ROWS v FROM sl0 LIMIT 2"),
            (1, "SELECT COUNT(*) FROM sl0"),
            (0, "SELECT FOUND_ROWS()"),
            (0, "SET @a = 2 * 3"),
            (1, "SELECT 1"),
            (0, "SELECT @a"),
            (0, "SET sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')"),
            (1, "SELECT 2"),
            (0, "SELECT @@sql_mode"),
            (0, "SET sql_select_limit = DEFAULT, sql_mode = DEFAULT"),
            (1, "SELECT 3"),
        ],
    },
    Case {
        // A first CALL gets the client's insert id and count in one DO;
        // where the count's half fails (max_join_size), the id is given
        // again on its own.
        name: "a CALL's count refused under max_join_size, its insert id given all the same",
        pool: 3,
        setup: &[
            "CREATE TABLE mj (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
            "INSERT INTO mj (v) SELECT seq FROM seq_1_to_30",
            "CREATE PROCEDURE mj_read() SELECT LAST_INSERT_ID(), ROW_COUNT()",
        ],
        steps: &[
            (1, "INSERT INTO mj (v) VALUES (100)"),
            (0, "INSERT INTO mj (v) VALUES (0)"),
            (0, "SELECT v FROM mj"),
            (0, "SET max_join_size = 5"),
            (0, "CALL mj_read()"),
            (0, "SELECT LAST_INSERT_ID(), ROW_COUNT()"),
            (0, "SHOW WARNINGS"),
        ],
    },
    Case {
        // Rebuilt because another client's character_set_results differs,
        // the charset group replays the session's `SET NAMES utf8` too,
        // equal to the connection's or not: MariaDB reads the alias by
        // the old_mode the SET starts with, so the other client's goes
        // back to the default in a statement of its own first.
        name: "a utf8 alias replayed with its charset group beside another client's old_mode",
        pool: 1,
        setup: &[],
        steps: &[
            (1, "SET NAMES utf8"),
            (1, "SET old_mode = ''"),
            (0, "SET NAMES utf8, character_set_results = latin1"),
            (1, "SELECT @@character_set_client, @@character_set_results"),
            (0, "SELECT @@character_set_client, @@character_set_results"),
            (1, "SELECT @@character_set_client, @@character_set_results"),
        ],
    },
    Case {
        // SET CHARACTER SET takes collation_database as its statement
        // starts: another client's goes back to the schema's first.
        name: "SET CHARACTER SET replayed beside another client's collation_database",
        pool: 1,
        setup: &["CREATE DATABASE IF NOT EXISTS sess_cs_u4 CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"],
        steps: &[
            (0, "USE sess_cs_u4"),
            (1, "USE sess_cs_u4"),
            (1, "SET collation_database = latin1_bin"),
            (0, "SET CHARACTER SET latin1"),
            (0, "SELECT @@collation_connection, @@character_set_connection, @@collation_database"),
            (1, "SELECT @@collation_connection, @@character_set_connection, @@collation_database"),
            (0, "SELECT @@collation_connection, @@character_set_connection, @@collation_database"),
        ],
    },
    Case {
        // A session's first CALL gets the client's insert id first (`DO
        // LAST_INSERT_ID(n)`, which leaves ROW_COUNT() at 0), and a var
        // replay is a SET (0 too): the count given after them sets the
        // client's -1 back, as its SELECT leaves it, for the procedure to read.
        name: "ROW_COUNT() in a session's first CALL after a SELECT",
        pool: 3,
        setup: &[
            "CREATE TABLE frc (v INT)",
            "INSERT INTO frc VALUES (1), (2), (3)",
            "CREATE PROCEDURE frc_rc() SELECT ROW_COUNT(), FOUND_ROWS()",
        ],
        steps: &[
            (0, "SELECT v FROM frc"),
            (1, "SET sql_select_limit = 2"),
            (1, "SELECT v FROM frc"),
            (0, "CALL frc_rc()"),
            (1, "CALL frc_rc()"),
            (0, "SELECT ROW_COUNT(), FOUND_ROWS()"),
            (2, "SET @a = 1"),
            (2, "CALL frc_rc()"),
        ],
    },
    Case {
        // SET CHARACTER SET gives the connection the collation of the
        // schema it runs in: replayed before the client's own USE, it runs
        // in the session's schema, not in the one another client left.
        name: "SET CHARACTER SET replayed before a USE runs in the session's schema",
        pool: 1,
        setup: &[
            "CREATE DATABASE IF NOT EXISTS sess_cs_u4 CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
            "CREATE DATABASE IF NOT EXISTS sess_cs_l1 CHARACTER SET latin1",
        ],
        steps: &[
            (0, "USE sess_cs_u4"),
            (0, "SET CHARACTER SET latin1"),
            (0, "SELECT @@collation_connection"),
            (1, "USE sess_cs_l1"),
            (1, "SELECT @@collation_connection"),
            (0, "USE information_schema"),
            (0, "SELECT @@collation_connection, @@character_set_connection"),
        ],
    },
    Case {
        // ... where the session's schema is gone (another client dropped
        // it), the client's USE of another still runs.
        name: "SET CHARACTER SET replayed before a USE out of a dropped schema",
        pool: 1,
        setup: &["CREATE DATABASE IF NOT EXISTS sess_cs_gone"],
        steps: &[
            (0, "USE sess_cs_gone"),
            (0, "SET CHARACTER SET latin1"),
            (1, "SET NAMES utf8mb4"),
            (1, "DROP DATABASE sess_cs_gone"),
            (0, "USE information_schema"),
            (0, "SELECT DATABASE(), @@character_set_client"),
        ],
    },
    Case {
        // Under a small max_join_size the statement that gives the count
        // ends with an error condition (not an error) and a count of 1:
        // not the client's, and the condition must not be read as the
        // CALL's warning.
        name: "FOUND_ROWS() not given before a CALL under a small max_join_size",
        pool: 3,
        setup: &["CREATE PROCEDURE frj_none() SET @x = 1"],
        steps: &[
            (0, "SELECT seq FROM seq_1_to_50"),
            (1, "SELECT seq FROM seq_1_to_3"),
            (0, "SET max_join_size = 5"),
            (0, "CALL frj_none()"),
            (0, "SHOW WARNINGS"),
            (0, "SELECT FOUND_ROWS(), ROW_COUNT()"),
            (0, "SELECT @@warning_count"),
        ],
    },
    Case {
        name: "a procedure reads the pinned caller's previous statement",
        pool: 2,
        setup: &[
            "CREATE TABLE rc (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
            "INSERT INTO rc (v) VALUES (1), (2)",
            "CREATE PROCEDURE p_rc() SELECT ROW_COUNT()",
            "CREATE PROCEDURE p_fr() SELECT FOUND_ROWS()",
        ],
        steps: &[
            (0, "SELECT @u := 1"),
            (0, "INSERT INTO rc (v) VALUES (3)"),
            (0, "UPDATE rc SET v = v + 1"),
            (0, "CALL p_rc()"),
            (1, "SELECT @w := 1"),
            (1, "SELECT v FROM rc"),
            (1, "CALL p_fr()"),
        ],
    },
    Case {
        // A procedure that returns no rows may still set the count
        // (`SELECT ... INTO`), or leave it as it was, where another
        // client's may be on the shared connection: Funnel gives the
        // connection the caller's own count before the CALL, and the
        // server answers after it (soak seed 301217).
        name: "FOUND_ROWS() after a CALL that selects into variables or selects nothing",
        pool: 3,
        setup: &[
            "CREATE TABLE fr (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
            "INSERT INTO fr (v) VALUES (1), (2), (3), (4), (5)",
            "CREATE PROCEDURE fr_into() SELECT COUNT(*) INTO @n FROM fr",
            "CREATE PROCEDURE fr_none() SET @x = 1",
            "CREATE PROCEDURE fr_rows_into() BEGIN SELECT v FROM fr LIMIT 2; SELECT COUNT(*) INTO @n FROM fr; END",
            "CREATE PROCEDURE fr_fail() BEGIN SELECT v INTO @n FROM fr LIMIT 1; SELECT * FROM nosuch; END",
        ],
        steps: &[
            (0, "SELECT v FROM fr"),
            (1, "SELECT v FROM fr LIMIT 3"),
            (0, "CALL fr_into()"),
            (0, "SELECT FOUND_ROWS(), @n"),
            (1, "SELECT v FROM fr LIMIT 2"),
            (2, "SELECT v FROM fr LIMIT 4"),
            (1, "CALL fr_none()"),
            (1, "SELECT FOUND_ROWS()"),
            (0, "CALL fr_rows_into()"),
            (0, "SELECT FOUND_ROWS(), ROW_COUNT()"),
            (2, "SELECT v FROM fr LIMIT 3"),
            (2, "CALL fr_fail()"),
            (2, "SELECT FOUND_ROWS(), ROW_COUNT()"),
        ],
    },
    Case {
        // A binary CALL (JDBC's CallableStatement with server-side
        // prepares) gets what a text one gets: the client's last insert
        // id on the connection first, the server's answers after it.
        name: "a binary CALL reads the client's last insert id",
        pool: 3,
        setup: &[
            "CREATE TABLE bc (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
            "CREATE PROCEDURE bc_li() SELECT LAST_INSERT_ID() AS li",
            "CREATE PROCEDURE bc_ins() INSERT INTO bc (v) VALUES (9)",
        ],
        steps: &[
            (2, "INSERT INTO bc (v) VALUES (6)"),
            (1, "INSERT INTO bc (v) VALUES (7)"),
            (2, "PS:CALL bc_li()"),
            (2, "SELECT LAST_INSERT_ID()"),
            (2, "PS:CALL bc_ins()"),
            (2, "SELECT LAST_INSERT_ID(), ROW_COUNT()"),
            (2, "PS:CALL bc_li()"),
        ],
    },
    Case {
        // Pinned with its own insert id on the connection, after a SET
        // (ROW_COUNT() 0, which the procedure may read): the count is
        // given in a DO, which leaves ROW_COUNT() at 0 (soak seed 301217).
        name: "FOUND_ROWS() after a CALL in a pinned session, after a SET",
        pool: 3,
        setup: &[
            "CREATE TABLE fs (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
            "INSERT INTO fs (v) VALUES (1), (2), (3), (4), (5)",
            "CREATE PROCEDURE fs_into() BEGIN SELECT ROW_COUNT() INTO @rc; SELECT COUNT(*) INTO @n FROM fs; END",
        ],
        steps: &[
            (1, "CREATE TEMPORARY TABLE tmp (id INT AUTO_INCREMENT PRIMARY KEY)"),
            (1, "INSERT INTO tmp VALUES ()"),
            (1, "SELECT v FROM fs LIMIT 3"),
            (1, "SET @q = 1"),
            (1, "CALL fs_into()"),
            (1, "SELECT FOUND_ROWS(), @rc, @n"),
        ],
    },
    Case {
        // The same for a compound statement; a CALL as a binary prepared
        // statement.
        name: "FOUND_ROWS() after a block that selects into variables",
        pool: 3,
        setup: &[
            "CREATE TABLE fb (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
            "INSERT INTO fb (v) VALUES (1), (2), (3), (4), (5)",
            "CREATE PROCEDURE fb_into() SELECT COUNT(*) INTO @n FROM fb",
        ],
        steps: &[
            (0, "SELECT v FROM fb"),
            (1, "SELECT v FROM fb LIMIT 3"),
            (0, "BEGIN NOT ATOMIC SELECT COUNT(*) INTO @n FROM fb; END"),
            (0, "SELECT FOUND_ROWS(), @n"),
            (1, "SELECT v FROM fb LIMIT 2"),
            (2, "SELECT v FROM fb LIMIT 4"),
            (1, "BEGIN NOT ATOMIC SET @x = 1; END"),
            (1, "SELECT FOUND_ROWS()"),
            (2, "SELECT v FROM fb LIMIT 3"),
            (2, "PS:CALL fb_into()"),
            (2, "SELECT FOUND_ROWS()"),
        ],
    },
    Case {
        // A CALL as a later statement of a multi-statement query gets what
        // a first one does: the client's last insert id and count on the
        // connection first, the server's answers after it.
        name: "a CALL later in a multi-statement query",
        // Client 0 ran the setup (pinned by the CREATE PROCEDUREs): the
        // others share a second connection until the CALL pins client 2.
        pool: 3,
        setup: &[
            "CREATE TABLE mc (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
            "INSERT INTO mc (v) VALUES (1), (2), (3), (4), (5)",
            "CREATE PROCEDURE mc_li() SELECT LAST_INSERT_ID() AS li",
            "CREATE PROCEDURE mc_into() SELECT COUNT(*) INTO @n FROM mc",
        ],
        steps: &[
            (2, "INSERT INTO mc (v) VALUES (6)"),
            (1, "INSERT INTO mc (v) VALUES (7)"),
            (2, "DO 1; CALL mc_li()"),
            (2, "SELECT LAST_INSERT_ID()"),
            (2, "SELECT v FROM mc LIMIT 4"),
            (1, "SELECT v FROM mc LIMIT 3"),
            (1, "SELECT v FROM mc LIMIT 2; CALL mc_into()"),
            (1, "SELECT FOUND_ROWS(), @n"),
        ],
    },
    Case {
        name: "prepared statements see their own client's state",
        pool: 1,
        setup: &["CREATE TABLE p (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"],
        steps: &[
            (0, "SET time_zone = '+02:00'"),
            (0, "PS:SELECT @@time_zone"),
            (1, "PS:SELECT @@time_zone"),
            (0, "PS:INSERT INTO p (v) VALUES (10)"),
            (1, "PS:INSERT INTO p (v) VALUES (20)"),
            (0, "PS:SELECT v FROM p ORDER BY id"),
            (1, "PS:SELECT COUNT(*), SUM(v) FROM p"),
            (2, "PS:SELECT @@time_zone"),
            (0, "PS:SELECT @@time_zone"),
            (1, "SET sql_mode = 'ANSI_QUOTES'"),
            (1, "PS:SELECT \"v\" FROM p ORDER BY id LIMIT 1"),
            (0, "PS:SELECT \"v\" FROM p ORDER BY id LIMIT 1"),
        ],
    },
    Case {
        // The server calls a built-in after blanks and comments (IGNORE_SPACE
        // or not) and by a backquoted name.
        name: "calls spelled with comments, blanks or backquotes answer for their own client",
        pool: 1,
        setup: &["CREATE TABLE sp (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"],
        steps: &[
            (0, "INSERT INTO sp (v) VALUES (1)"),
            (1, "INSERT INTO sp (v) VALUES (2), (3)"),
            (1, "INSERT INTO sp (v) VALUES (4)"),
            (0, "SELECT LAST_INSERT_ID/**/()"),
            (0, "SELECT `LAST_INSERT_ID`()"),
            (0, "SELECT LAST_INSERT_ID\x0b()"),
            (0, "SELECT last_insert_id( /* x */ ), `ROW_COUNT` (), FOUND_ROWS -- x\n()"),
            (1, "SELECT `LAST_INSERT_ID`/**/(77)"),
            (1, "SELECT LAST_INSERT_ID()"),
        ],
    },
    Case {
        // `name ()` after INSERT INTO or CALL names a table or a procedure,
        // also when the name is a function's.
        name: "a table or procedure named like a function is not a call",
        pool: 1,
        setup: &[
            "CREATE TABLE `row_count` (a INT DEFAULT 1)",
            "CREATE PROCEDURE `found_rows`() SELECT 7 AS seven",
        ],
        steps: &[
            (0, "INSERT INTO `row_count` () VALUES ()"),
            (1, "INSERT INTO row_count () VALUES ()"),
            (0, "SELECT COUNT(*), ROW_COUNT() FROM `row_count`"),
            (1, "CALL `found_rows`()"),
        ],
    },
    Case {
        // An executable comment's content runs: not rewritten (the text is
        // unknown and pins), but the connection is given the client's id
        // first.
        name: "an executable comment reads its own client's insert id",
        pool: 1,
        setup: &["CREATE TABLE ec (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"],
        steps: &[
            (0, "INSERT INTO ec (v) VALUES (1)"),
            (1, "INSERT INTO ec (v) VALUES (2), (3)"),
            (1, "INSERT INTO ec (v) VALUES (4)"),
            (0, "SELECT /*! LAST_INSERT_ID() */"),
            (0, "SELECT /*M!100000 LAST_INSERT_ID() + 1 */"),
        ],
    },
    Case {
        // The server calls it by a `"` quoted name under ANSI_QUOTES, and by a
        // `[]` quoted one under MSSQL; in the default mode both are syntax
        // errors.
        name: "LAST_INSERT_ID() by a quoted name reads its own client's id",
        pool: 1,
        setup: &["CREATE TABLE qi (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"],
        steps: &[
            (0, "SET sql_mode = 'ANSI_QUOTES'"),
            (0, "INSERT INTO qi (v) VALUES (1)"),
            (1, "INSERT INTO qi (v) VALUES (2), (3)"),
            (1, "INSERT INTO qi (v) VALUES (4)"),
            (0, "SELECT \"LAST_INSERT_ID\"()"),
            (0, "SET sql_mode = 'MSSQL'"),
            (1, "INSERT INTO qi (v) VALUES (5)"),
            (0, "SELECT [LAST_INSERT_ID]() + 1"),
            (2, "SELECT \"LAST_INSERT_ID\"()"),
        ],
    },
    Case {
        // `FROM DUAL`, as sql_mode=ORACLE code writes it, reads no table:
        // a diagnostics read all the same, of the client's own statement.
        name: "SELECT @@warning_count FROM DUAL reads its own client's count",
        pool: 1,
        setup: &[],
        steps: &[
            (0, "SELECT 1"),
            (1, "SELECT 1/0"),
            (1, "SLEEP:300"),
            (0, "SELECT @@warning_count FROM DUAL"),
            (0, "SELECT 1/0"),
            (0, "SELECT @@warning_count AS w, @@error_count FROM dual"),
        ],
    },
    Case {
        // sql_mode=ORACLE's ROW_COUNT(), or FOUND_ROWS() after a result set;
        // outside that mode a syntax error, through Funnel too.
        name: "SQL%ROWCOUNT answers for its own client",
        pool: 1,
        setup: &["CREATE TABLE ro (a INT)"],
        steps: &[
            (0, "SET sql_mode = ORACLE"),
            (1, "SET sql_mode = ORACLE"),
            (0, "INSERT INTO ro VALUES (1), (2)"),
            (1, "INSERT INTO ro VALUES (1), (2), (3), (4), (5)"),
            (0, "SELECT SQL%ROWCOUNT"),
            (1, "SELECT a FROM ro"),
            (0, "SELECT SQL%ROWCOUNT FROM DUAL"),
            (1, "SELECT SQL % ROWCOUNT, ROW_COUNT()"),
            (0, "UPDATE ro SET a = a WHERE a = 1"),
            (1, "SELECT SQL%ROWCOUNT"),
            (0, "SELECT SQL%ROWCOUNT"),
            (2, "SELECT SQL%ROWCOUNT"),
        ],
    },
    Case {
        name: "time_zone and sql_mode stay with their client",
        pool: 1,
        setup: &[],
        steps: &[
            (0, "SET time_zone = '+05:00'"),
            (1, "SELECT @@time_zone"),
            (0, "SELECT @@time_zone"),
            (1, "SET SESSION sql_mode = 'ANSI_QUOTES'"),
            (0, "SELECT @@sql_mode = @@GLOBAL.sql_mode"),
            (1, "SELECT @@sql_mode"),
            (1, "SELECT \"a\" = 'a'"),
            (0, "SELECT \"a\" = 'a'"),
            (0, "SET time_zone = DEFAULT, @@session.wait_timeout = 77"),
            (0, "SELECT @@time_zone, @@wait_timeout"),
            (1, "SELECT @@time_zone, @@wait_timeout = @@GLOBAL.wait_timeout"),
        ],
    },
    Case {
        name: "charset and collation, 4-byte UTF-8",
        pool: 1,
        setup: &["CREATE TABLE e (s VARCHAR(20)) CHARACTER SET utf8mb4"],
        steps: &[
            (0, "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci"),
            (1, "SET NAMES latin1"),
            (
                0,
                "SELECT @@collation_connection, @@character_set_client, @@character_set_results",
            ),
            (1, "SELECT @@collation_connection, @@character_set_client"),
            (0, "INSERT INTO e VALUES ('emoji 😀 ✓')"),
            (1, "SELECT COUNT(*) FROM e"),
            (0, "SELECT s, HEX(s) FROM e"),
            (0, "SET character_set_results = latin1"),
            (1, "SET NAMES utf8mb4"),
            (0, "SELECT @@character_set_results, @@character_set_client"),
            (1, "SELECT @@character_set_results, @@collation_connection"),
        ],
    },
    // MariaDB reads the `utf8` alias by the old_mode the SET starts with,
    // and a later old_mode leaves the charset alone: the replay must keep
    // what each client's alias meant (soak seed 301261, and the opposite
    // order on a connection another client left with its old_mode).
    Case {
        name: "utf8 alias under each client's old_mode",
        pool: 1,
        setup: &[],
        steps: &[
            (0, "SET old_mode = ''"),
            (0, "SET NAMES utf8 COLLATE utf8_unicode_ci"),
            (1, "SELECT @@character_set_client, @@old_mode"),
            (0, "SELECT @@character_set_client, @@collation_connection, @@old_mode"),
            (1, "SET NAMES utf8"),
            (0, "SELECT @@character_set_client, @@collation_connection"),
            (1, "SELECT @@character_set_client, @@collation_connection, @@old_mode"),
            (1, "SET old_mode = 'NO_PROGRESS_INFO'"),
            (0, "SELECT @@character_set_results"),
            (1, "SELECT @@character_set_results, @@old_mode"),
            (0, "SET old_mode = DEFAULT, character_set_results = utf8"),
            (1, "SELECT @@character_set_results"),
            (0, "SELECT @@character_set_results, @@old_mode"),
            (2, "SET old_mode = 2"),
            (2, "SET collation_connection = utf8_bin"),
            (0, "SELECT @@collation_connection"),
            (2, "SELECT @@collation_connection, @@old_mode"),
            // Pins (the alias follows an old_mode of the same query): last.
            (2, "SET old_mode = ''; SET NAMES utf8"),
            (2, "SELECT @@character_set_client, @@old_mode"),
        ],
    },
    // The server sets some variables along with others: a charset and its
    // collation, `sql_big_selects` with `max_join_size`, the schema's
    // charsets on USE, the connection's charset on `SET CHARACTER SET`.
    // The replay must end where each client's own statements did.
    Case {
        name: "variables the server sets along with others",
        pool: 1,
        setup: &[],
        steps: &[
            (0, "SET collation_connection = latin1_german2_ci"),
            (0, "SET character_set_connection = cp1251"),
            (1, "SELECT @@collation_connection"),
            (0, "SELECT @@character_set_connection, @@collation_connection"),
            (0, "SET sql_big_selects = 1"),
            (0, "SET max_join_size = 1000"),
            (1, "SELECT @@sql_big_selects, @@max_join_size = @@GLOBAL.max_join_size"),
            (0, "SELECT @@sql_big_selects, @@max_join_size"),
            (2, "SET sql_big_selects = 0"),
            (0, "SELECT 1"),
            (2, "SELECT @@sql_big_selects, @@max_join_size = @@GLOBAL.max_join_size"),
            (0, "SET collation_database = cp1251_bin"),
            (0, "SET CHARACTER SET koi8r"),
            (1, "SELECT @@collation_database, @@character_set_connection"),
            (0, "SELECT @@character_set_connection, @@collation_connection, @@collation_database"),
            (0, "USE information_schema"),
            (1, "SELECT @@collation_database"),
            (0, "SELECT @@collation_database, @@character_set_connection, @@collation_connection"),
        ],
    },
    Case {
        name: "transaction isolation and read-only mode",
        pool: 1,
        setup: &[],
        steps: &[
            (0, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"),
            (1, "SELECT @@tx_isolation"),
            (0, "SELECT @@tx_isolation"),
            (1, "SET SESSION TRANSACTION READ ONLY"),
            (0, "SELECT @@tx_read_only"),
            (1, "SELECT @@tx_read_only"),
        ],
    },
    Case {
        name: "user variables",
        pool: 3,
        setup: &[],
        steps: &[
            (0, "SET @x = 5"),
            (1, "SET @x = 7"),
            (0, "SELECT @x"),
            (1, "SELECT @x"),
            (2, "SELECT @x"),
        ],
    },
    Case {
        // One backend connection for three clients: each statement may run
        // on a connection another client's variables were replayed on last.
        name: "user variables keep value and type on a shared connection",
        pool: 1,
        setup: &[],
        steps: &[
            (0, "SET @i = -7, @u = 18446744073709551615, @d = 1.50, @n = NULL, @f = 1e3, @t = TRUE"),
            (1, "SET NAMES latin1"),
            (1, "SET @s = 'caf\u{e9}', @b = 0x41, @c = CONCAT('tz:', @@time_zone), @e = ''"),
            (2, "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci"),
            (
                2,
                "SET @s2 = '\u{fc}\u{1f600}', @u2 = 18446744073709551615 - 10, @d2 = 5.000 + 0,                  @big = 12345678901234567890123 + 0, @neg = -9223372036854775807 - 1, @i2 = @@wait_timeout",
            ),
            (0, "SELECT @i, @u, @d, @n, @f, @t, @s, @s2, @never"),
            (0, "PS:SELECT @i, @u, @d, @n, @f, @t"),
            (0, "SELECT @i + 0, @u + 0, @d + 0, @d * 3, @f / 7, @t + 1, COERCIBILITY(@i), COLLATION(@d)"),
            (0, "SELECT @u + 1"),
            (1, "SET NAMES utf8mb4"),
            (
                1,
                "SELECT @s, HEX(@s), COLLATION(@s), CHARSET(@s), COERCIBILITY(@s), @b, @b + 0, COLLATION(@b),                  @c, @e, COLLATION(@e), @i",
            ),
            (1, "PS:SELECT @s, @b, @c, LENGTH(@e)"),
            (2, "SELECT @s2, HEX(@s2), COLLATION(@s2), @u2, @d2, @big, @neg, @i2 = @@wait_timeout, @s"),
            (2, "PS:SELECT @u2, @d2, @big, @neg, @i2"),
            (2, "SELECT @u2 - 18446744073709551606"),
            (2, "SELECT @neg - 1"),
            (0, "SET @I = 8, @`a b` := 'x'"),
            (0, "SELECT @i, @'A B', @\"a B\", COLLATION(@`a b`)"),
            (1, "SELECT @i, @`a b`"),
            (2, "SET @s2 = NULL"),
            (2, "SELECT @s2, COLLATION(@s2), @u2"),
        ],
    },
    Case {
        // Two backend connections: the clients that run CREATE TABLE pin
        // (a user variable in a CREATE), each after its values were
        // replayed onto whatever connection it got.
        name: "user variable types survive CREATE TABLE ... SELECT",
        pool: 2,
        setup: &[],
        steps: &[
            (0, "SET @i = 5, @u = CAST(5 AS UNSIGNED), @d = 1.50, @f = 1e3, @n = NULL"),
            (1, "SET NAMES latin1"),
            (1, "SET @s = 'abc', @b = 0x41, @d2 = 5.000 + 0"),
            (1, "SET NAMES utf8mb4"),
            (2, "SET @i = 'other', @s = 'other'"),
            (2, "SELECT 1"),
            (0, "CREATE TABLE ct0 AS SELECT @i AS i, @u AS u, @d AS d, @f AS f, @n AS n, @s AS s"),
            (0, "SHOW CREATE TABLE ct0"),
            (1, "CREATE TABLE ct1 AS SELECT @s AS s, @b AS b, @d2 AS d2, @i AS i"),
            (1, "SHOW CREATE TABLE ct1"),
        ],
    },
    Case {
        // The server keeps a variable's type when it is set to NULL: a bare
        // NULL replayed (or given to clear another client's value) would
        // show the type of whatever value the connection held.
        name: "user variables set to NULL keep their own type, never another client's",
        pool: 1,
        setup: &[],
        steps: &[
            (0, "SET @y = 5, @x = 5, @f = 1e3, @s = 'abc'"),
            (1, "SELECT COALESCE(@y, 1), COALESCE(@f, 1), COALESCE(@s, 1), @y + 0"),
            (1, "PS:SELECT COALESCE(@y, 1), COALESCE(@f, 1), COALESCE(@s, 1), @y + 0"),
            (0, "SET @x = NULL, @f = NULL, @s = NULL"),
            (1, "SET @x = 'str', @f = 'str', @s = 2"),
            (0, "SELECT COALESCE(@x, 1), COALESCE(@f, 1), COALESCE(@s, 1), COLLATION(@s), @x, @s"),
            (0, "PS:SELECT COALESCE(@x, 1), COALESCE(@f, 1), COALESCE(@s, 1)"),
            (2, "SET @z = NULL, @u = 18446744073709551615 - 1"),
            (2, "SET @u = NULL"),
            (1, "SET @z = 1, @u = 'x'"),
            (2, "PS:SELECT COALESCE(@z, 1), COALESCE(@u, 1), COALESCE(@x, 1)"),
            (1, "PS:SELECT COALESCE(@z, 1), COALESCE(@u, 1)"),
        ],
    },
    Case {
        name: "another client's user variables are never visible",
        pool: 1,
        setup: &[],
        steps: &[
            (0, "SET @y = 'secret'"),
            (1, "SELECT @y"),
            (0, "SELECT @y"),
            (1, "SET @y = 2, @z = 3"),
            (0, "SELECT @y, @z"),
            (2, "SELECT @y, @Y, @z"),
            (1, "SELECT @y, @z"),
            (0, "RESET"),
            (0, "SELECT @y"),
            (1, "SELECT @y"),
            (0, "SET @y = @z"),
            (0, "SELECT @y, COLLATION(@y)"),
        ],
    },
    Case {
        name: "last insert id and row count",
        pool: 1,
        setup: &["CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"],
        steps: &[
            (0, "INSERT INTO t (v) VALUES (1)"),
            (1, "INSERT INTO t (v) VALUES (2)"),
            (1, "INSERT INTO t (v) VALUES (3), (4)"),
            (0, "SELECT LAST_INSERT_ID()"),
            (1, "SELECT LAST_INSERT_ID();"),
            (0, "SELECT ROW_COUNT()"),
            (0, "UPDATE t SET v = v + 1 WHERE id <= 3"),
            (1, "SELECT v FROM t ORDER BY id"),
            (0, "SELECT ROW_COUNT(), last_insert_id( )"),
            (2, "SELECT LAST_INSERT_ID(), ROW_COUNT()"),
        ],
    },
    Case {
        name: "found rows",
        pool: 2,
        setup: &["CREATE TABLE f (v INT)", "INSERT INTO f VALUES (1), (2), (3)"],
        steps: &[
            (0, "SELECT v FROM f ORDER BY v LIMIT 2"),
            (1, "SELECT v FROM f WHERE v = 3"),
            (0, "SELECT FOUND_ROWS()"),
            (1, "SELECT FOUND_ROWS()"),
            (0, "SELECT SQL_CALC_FOUND_ROWS v FROM f ORDER BY v LIMIT 1"),
            (1, "SELECT 1"),
            (0, "SELECT FOUND_ROWS()"),
            (0, "SELECT FOUND_ROWS(), ROW_COUNT()"),
        ],
    },
    Case {
        name: "SQL_CALC_FOUND_ROWS pagination shares one connection",
        pool: 1,
        setup: &["CREATE TABLE pg (v INT)", "INSERT INTO pg VALUES (1), (2), (3), (4), (5)"],
        steps: &[
            (0, "SELECT SQL_CALC_FOUND_ROWS v FROM pg ORDER BY v LIMIT 2"),
            (1, "SELECT SQL_CALC_FOUND_ROWS v FROM pg WHERE v > 3 ORDER BY v LIMIT 1"),
            (2, "SELECT v FROM pg WHERE v = 1"),
            (0, "SELECT FOUND_ROWS()"),
            (1, "SELECT FOUND_ROWS()"),
            (2, "SELECT FOUND_ROWS()"),
            (0, "SELECT ROW_COUNT(), FOUND_ROWS()"),
            (1, "SHOW WARNINGS"),
            (1, "SELECT SQL_CALC_FOUND_ROWS v FROM pg WHERE v < 0 LIMIT 1"),
            (1, "SELECT FOUND_ROWS()"),
            (0, "PS:SELECT SQL_CALC_FOUND_ROWS v FROM pg ORDER BY v LIMIT 1"),
            (0, "PS:SELECT FOUND_ROWS()"),
        ],
    },
    Case {
        name: "warnings belong to the client's own last statement",
        pool: 2,
        setup: &[],
        steps: &[
            (0, "SELECT 1 / 0"),
            (1, "SELECT 2"),
            (0, "SHOW WARNINGS"),
            (1, "SHOW WARNINGS"),
            (1, "SELECT CAST('x' AS SIGNED)"),
            (1, "SELECT @@warning_count"),
            (0, "SELECT @@warning_count"),
        ],
    },
    Case {
        name: "another client's warnings are cleared before diagnostics",
        pool: 1,
        setup: &[],
        steps: &[
            (1, "SELECT 1 / 0"),
            (1, "SLEEP:300"),
            (0, "SHOW WARNINGS"),
            (1, "SELECT CAST('x' AS SIGNED)"),
            (1, "SLEEP:300"),
            (2, "SELECT @@warning_count AS w"),
            (1, "SELECT 1 / 0"),
            (1, "SLEEP:300"),
            (0, "SELECT @@session.warning_count"),
            (2, "SHOW COUNT(*) WARNINGS"),
        ],
    },
    Case {
        name: "a read of the counts with other columns, opening no table, reads no other client's warnings",
        pool: 1,
        setup: &[],
        steps: &[
            (1, "SELECT 1 / 0"),
            (1, "SLEEP:300"),
            (0, "SELECT @@warning_count, UPPER('a')"),
            (2, "SELECT nosuch"),
            (2, "SLEEP:300"),
            (0, "SELECT @@error_count, @@warning_count, TRIM(LEADING 'x' FROM 'xa')"),
            (0, "SELECT 1 / 0"),
            (0, "SELECT @@warning_count, UPPER('a')"),
        ],
    },
    Case {
        name: "temporary tables",
        pool: 2,
        setup: &[],
        steps: &[
            (0, "CREATE TEMPORARY TABLE tmp (x INT)"),
            (0, "INSERT INTO tmp VALUES (1)"),
            (1, "SELECT COUNT(*) FROM tmp"),
            (0, "SELECT COUNT(*) FROM tmp"),
            (0, "DROP TEMPORARY TABLE tmp"),
            (0, "SELECT COUNT(*) FROM tmp"),
        ],
    },
    Case {
        name: "temporary tables made with OR REPLACE, by a later statement, or by a prepared statement",
        pool: 3,
        setup: &[],
        steps: &[
            (0, "CREATE OR REPLACE TEMPORARY TABLE tmp2 (x INT)"),
            (0, "INSERT INTO tmp2 VALUES (1)"),
            (1, "SELECT COUNT(*) FROM tmp2"),
            (2, "SELECT COUNT(*) FROM tmp2"),
            (0, "SELECT COUNT(*) FROM tmp2"),
            (1, "PS:CREATE OR REPLACE TEMPORARY TABLE tmp3 (x INT)"),
            (2, "SELECT COUNT(*) FROM tmp3"),
            (1, "SELECT COUNT(*) FROM tmp3"),
        ],
    },
    Case {
        name: "named locks",
        pool: 2,
        setup: &[],
        steps: &[
            (0, "SELECT GET_LOCK(CONCAT(DATABASE(), '_lk'), 0)"),
            (1, "SELECT GET_LOCK(CONCAT(DATABASE(), '_lk'), 0)"),
            (0, "SELECT RELEASE_LOCK(CONCAT(DATABASE(), '_lk'))"),
            (1, "SELECT GET_LOCK(CONCAT(DATABASE(), '_lk'), 0)"),
            (1, "SELECT RELEASE_LOCK(CONCAT(DATABASE(), '_lk'))"),
        ],
    },
    Case {
        name: "sequence values belong to the session that drew them",
        pool: 3,
        setup: &["CREATE SEQUENCE s", "CREATE TABLE q (id INT, v INT)"],
        steps: &[
            (0, "SELECT NEXTVAL(s)"),
            (1, "SELECT NEXT VALUE FOR s"),
            (2, "INSERT INTO q VALUES (NEXTVAL(s), 3)"),
            (0, "SELECT LASTVAL(s)"),
            (1, "SELECT PREVIOUS VALUE FOR s"),
            (2, "SELECT LASTVAL(s), v FROM q"),
            (0, "PS:SELECT LASTVAL(s)"),
        ],
    },
    Case {
        name: "identity variables answer for the client's own insert",
        pool: 2,
        setup: &["CREATE TABLE ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"],
        steps: &[
            (0, "INSERT INTO ai (v) VALUES (1)"),
            (1, "INSERT INTO ai (v) VALUES (2), (3)"),
            (0, "SELECT @@identity, @@last_insert_id, @@session.last_insert_id"),
            (1, "SELECT @@identity + 0"),
            (0, "PS:SELECT @@identity"),
            (0, "SELECT 1--1, LAST_INSERT_ID()"),
            (1, "PS:SELECT LAST_INSERT_ID()"),
            (2, "INSERT INTO ai (v) VALUES (4)"),
            (2, "PS:SELECT LAST_INSERT_ID(), @@identity"),
            (0, "PS:INSERT INTO ai (v) VALUES (5)"),
            (0, "PS:SELECT LAST_INSERT_ID()"),
        ],
    },
    Case {
        name: "XA transactions and FLUSH TABLES FOR EXPORT keep their connection",
        pool: 2,
        setup: &["CREATE TABLE xt (v INT)", "CREATE TABLE other (v INT)"],
        steps: &[
            (0, "XA START 'fx1'"),
            (0, "INSERT INTO xt VALUES (1)"),
            (0, "XA END 'fx1'"),
            (0, "XA PREPARE 'fx1'"),
            (1, "INSERT INTO xt VALUES (2)"),
            (1, "SELECT COUNT(*) FROM xt"),
            (0, "XA COMMIT 'fx1'"),
            (1, "SELECT COUNT(*) FROM xt"),
            (0, "FLUSH TABLES xt FOR EXPORT"),
            (1, "SELECT COUNT(*) FROM other"),
            (2, "SELECT COUNT(*) FROM other"),
            (0, "UNLOCK TABLES"),
            (2, "SELECT COUNT(*) FROM xt"),
        ],
    },
    Case {
        name: "what prepared statements did, read back as text",
        pool: 2,
        setup: &["CREATE TABLE pr (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"],
        steps: &[
            (0, "PS:INSERT INTO pr (v) VALUES (1), (2), (3)"),
            (1, "PS:INSERT INTO pr (v) VALUES (4)"),
            (0, "SELECT LAST_INSERT_ID(), ROW_COUNT()"),
            (1, "SELECT LAST_INSERT_ID(), ROW_COUNT()"),
            (0, "PS:UPDATE pr SET v = v + 1 WHERE id <= 2"),
            (1, "PS:SELECT v FROM pr WHERE id > 1"),
            (0, "SELECT ROW_COUNT()"),
            (1, "SELECT FOUND_ROWS()"),
            (
                2,
                "SET STATEMENT max_statement_time = 10 FOR SELECT COUNT(*) FROM pr",
            ),
            (2, "SELECT @@max_statement_time"),
        ],
    },
    Case {
        name: "named locks released one by one, and who holds them",
        pool: 2,
        setup: &[],
        steps: &[
            (
                0,
                "SELECT GET_LOCK('sess_own_lk', 0), GET_LOCK('sess_own_lk2', 0)",
            ),
            (0, "SELECT IS_USED_LOCK('sess_own_lk') = CONNECTION_ID()"),
            (1, "SELECT IS_USED_LOCK('sess_own_lk') = CONNECTION_ID()"),
            (1, "SELECT GET_LOCK('sess_own_lk', 0)"),
            (0, "SELECT RELEASE_LOCK('sess_own_lk')"),
            (1, "SELECT GET_LOCK('sess_own_lk', 0)"),
            (
                0,
                "SELECT IS_FREE_LOCK('sess_own_lk2'), RELEASE_LOCK('sess_own_lk2')",
            ),
            (
                2,
                "SELECT GET_LOCK('sess_own_lk2', 0), RELEASE_LOCK('sess_own_lk2')",
            ),
            (1, "SELECT RELEASE_LOCK('sess_own_lk')"),
        ],
    },
    Case {
        name: "flag lists and second names",
        pool: 1,
        setup: &[],
        steps: &[
            // The server merges optimizer_switch flags into the current ones.
            (0, "SET SESSION optimizer_switch = 'index_merge=off'"),
            (0, "SET SESSION optimizer_switch = 'mrr=on'"),
            (1, "SELECT 1"),
            (0, "SELECT @@optimizer_switch LIKE '%index_merge=off%mrr=on%'"),
            (1, "SET SESSION optimizer_switch = 'derived_merge=off'"),
            (0, "SELECT @@optimizer_switch"),
            (1, "SELECT @@optimizer_switch"),
            (2, "SELECT @@optimizer_switch = @@GLOBAL.optimizer_switch"),
            // One variable under two names: the last assignment wins.
            (0, "SET SESSION tmp_table_size = 1048576"),
            (0, "SET SESSION tmp_memory_table_size = 2097152"),
            (1, "SET SESSION log_slow_query_time = 3"),
            (1, "SET SESSION long_query_time = 5"),
            (2, "SELECT @@tmp_table_size = @@GLOBAL.tmp_table_size"),
            (0, "SELECT @@tmp_table_size, @@tmp_memory_table_size"),
            (1, "SELECT @@long_query_time, @@log_slow_query_time"),
        ],
    },
    Case {
        // MariaDB reads a flag list against the session's value when the
        // SET starts: `SET optimizer_switch = DEFAULT, optimizer_switch =
        // 'mrr=on'` keeps the flags the connection had (soak seed 80448).
        name: "flag lists replayed over another client's",
        pool: 1,
        setup: &[],
        steps: &[
            (0, "SET SESSION optimizer_switch = 'index_merge=off,mrr=off'"),
            (1, "SET SESSION optimizer_switch = 'mrr=on'"),
            (0, "SELECT @@optimizer_switch"),
            (1, "SELECT @@optimizer_switch"),
            (0, "SELECT @@optimizer_switch"),
            (2, "SELECT @@optimizer_switch"),
            (1, "SELECT @@optimizer_switch"),
        ],
    },
    Case {
        name: "profiles and sql_auto_is_null",
        // Clients 1 and 2 end up pinned, each to a connection of its own.
        pool: 3,
        setup: &[
            "CREATE TABLE an (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
            "CREATE TABLE an2 (id INT AUTO_INCREMENT PRIMARY KEY, v INT) AUTO_INCREMENT = 100",
        ],
        steps: &[
            // Profiles are the connection's: no other client reads them.
            (1, "SET profiling = 1"),
            (1, "SELECT 'secret' AS c1q"),
            (2, "SELECT 2"),
            (0, "SHOW PROFILES"),
            (0, "SELECT COUNT(*) FROM information_schema.PROFILING"),
            (1, "SELECT COUNT(*) > 0 FROM information_schema.PROFILING"),
            // WHERE id IS NULL reads this client's own last insert id.
            (2, "SET SESSION sql_auto_is_null = 1"),
            (2, "INSERT INTO an (v) VALUES (7)"),
            (0, "INSERT INTO an2 (v) VALUES (8)"),
            (2, "SELECT id, v FROM an WHERE id IS NULL"),
            (0, "SET SESSION sql_auto_is_null = 0"),
            (0, "SELECT id, v FROM an2 WHERE id IS NULL"),
        ],
    },
    Case {
        name: "multi-statement queries answer about their own statements",
        pool: 1,
        setup: &["CREATE TABLE ms (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"],
        steps: &[
            (0, "INSERT INTO ms (v) VALUES (1)"),
            (1, "INSERT INTO ms (v) VALUES (2), (3)"),
            // A later statement reads the earlier statement's id and count.
            (
                0,
                "INSERT INTO ms (v) VALUES (4); SELECT v, LAST_INSERT_ID(), ROW_COUNT() \
                 FROM ms WHERE id = LAST_INSERT_ID()",
            ),
            (0, "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()"),
            // No earlier statement inserted: the client's own id.
            (1, "SELECT 1; SELECT LAST_INSERT_ID(), @@identity, ROW_COUNT()"),
            // After the query: the last statement's count, the last rows.
            (1, "SELECT v FROM ms ORDER BY id; UPDATE ms SET v = v WHERE id = 1; UPDATE ms SET v = 7 WHERE id < 3"),
            (1, "SELECT ROW_COUNT(), FOUND_ROWS(), LAST_INSERT_ID()"),
            (0, "SELECT v FROM ms WHERE id < 3; SELECT v FROM ms; SELECT FOUND_ROWS()"),
            (0, "SELECT FOUND_ROWS(), ROW_COUNT()"),
            (1, "SELECT id FROM ms LIMIT 2; DO 1; SELECT FOUND_ROWS()"),
            (0, "UPDATE ms SET v = 8 WHERE id = 4; SELECT FOUND_ROWS(), ROW_COUNT()"),
            (0, "INSERT INTO ms (v) VALUES (5); SELECT 1; SELECT LAST_INSERT_ID()"),
            (1, "SELECT LAST_INSERT_ID()"),
            (0, "SELECT LAST_INSERT_ID()"),
            // A reset forgets the session but not what FOUND_ROWS() says.
            (1, "SELECT id FROM ms LIMIT 3"),
            (1, "RESET"),
            (1, "SELECT FOUND_ROWS(), ROW_COUNT(), LAST_INSERT_ID()"),
        ],
    },
    Case {
        name: "definitions keep LAST_INSERT_ID() as written",
        pool: 3,
        setup: &["CREATE TABLE sd (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"],
        steps: &[
            (0, "INSERT INTO sd (v) VALUES (1)"),
            (
                0,
                "CREATE VIEW vsd AS SELECT LAST_INSERT_ID() AS x, ROW_COUNT() AS y",
            ),
            (
                0,
                "SELECT VIEW_DEFINITION LIKE '%last_insert_id()%' FROM information_schema.VIEWS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'vsd'",
            ),
            (
                0,
                "CREATE TABLE dsd (id INT, c BIGINT DEFAULT (LAST_INSERT_ID()))",
            ),
            (0, "CREATE PROCEDURE psd() SELECT LAST_INSERT_ID() + 0 AS x"),
            (0, "INSERT INTO sd (v) VALUES (2)"),
            (0, "CALL psd()"),
            // A CREATE that reads the value now, not later.
            (1, "INSERT INTO sd (v) VALUES (3), (4)"),
            (2, "INSERT INTO sd (v) VALUES (9)"),
            (1, "CREATE TABLE ctas AS SELECT LAST_INSERT_ID() AS x"),
            (2, "INSERT INTO sd (v) VALUES (9)"),
            (1, "CREATE TABLE ctas2 AS SELECT LAST_INSERT_ID() AS x"),
            (1, "SELECT x FROM ctas UNION ALL SELECT x FROM ctas2"),
            // A compound statement is sent as written.
            (
                2,
                "BEGIN NOT ATOMIC INSERT INTO sd (v) VALUES (5); \
                 INSERT INTO sd (v) VALUES (LAST_INSERT_ID()); END",
            ),
            (2, "SELECT v FROM sd ORDER BY id DESC LIMIT 1"),
            (1, "SET @@identity = 77"),
            (1, "SELECT LAST_INSERT_ID()"),
        ],
    },
    Case {
        // The CALL runs on a connection other than the insert's: client 1's
        // transaction holds that one.
        name: "a procedure reads its caller's LAST_INSERT_ID()",
        pool: 2,
        setup: &[
            "CREATE TABLE sp (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
            "CREATE PROCEDURE psp() SELECT LAST_INSERT_ID() + 0 AS x",
        ],
        steps: &[
            (0, "INSERT INTO sp (v) VALUES (1)"),
            (1, "BEGIN"),
            (1, "SELECT COUNT(*) FROM sp"),
            (0, "CALL psp()"),
            (0, "INSERT INTO sp (v) VALUES (2)"),
            (0, "CALL psp()"),
            (1, "COMMIT"),
            (1, "CALL psp()"),
        ],
    },
    Case {
        name: "NO_BACKSLASH_ESCAPES: a backslash ends no string",
        pool: 2,
        setup: &["CREATE TABLE sl (a VARCHAR(20), b VARCHAR(60))"],
        steps: &[
            (0, "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'"),
            (
                0,
                "INSERT INTO sl (a, b) VALUES ('C:\\', 'ROW_COUNT() and LAST_INSERT_ID()')",
            ),
            (0, "SELECT a, b FROM sl"),
            (0, "SELECT 'a\\', @nbx := 5, '\\'"),
            (1, "SELECT @nbx"),
            (0, "SELECT @nbx"),
        ],
    },
    Case {
        name: "variables without a DEFAULT stay with their client",
        pool: 2,
        setup: &[],
        steps: &[
            (0, "SET rand_seed1 = 1, rand_seed2 = 2"),
            (1, "SELECT 1"),
            (2, "SELECT 2"),
            (1, "SELECT 3"),
            (2, "SELECT 4"),
            (0, "SELECT RAND() = RAND()"),
        ],
    },
    Case {
        name: "compound statements, locks in later statements, GET DIAGNOSTICS into a variable",
        pool: 3,
        setup: &["CREATE TABLE fx (v INT)", "CREATE TABLE other (v INT)"],
        steps: &[
            (0, "BEGIN NOT ATOMIC SET time_zone = '+03:00'; END"),
            (1, "SELECT @@time_zone"),
            (2, "SELECT @@time_zone"),
            (0, "SELECT @@time_zone"),
            (1, "DO 0; FLUSH TABLES fx FOR EXPORT"),
            (2, "INSERT INTO other VALUES (1)"),
            (1, "UNLOCK TABLES"),
            (2, "INSERT INTO other VALUES (2)"),
            (2, "SELECT 1 / 0"),
            (2, "GET DIAGNOSTICS @gd = NUMBER"),
            (1, "SELECT @gd"),
            (2, "SELECT @gd"),
        ],
    },
    Case {
        name: "charset DEFAULT is the server's, not the handshake's",
        pool: 2,
        setup: &[],
        steps: &[
            (0, "SET NAMES DEFAULT"),
            (1, "SELECT @@character_set_client, @@collation_connection"),
            (2, "SELECT @@character_set_client, @@collation_connection"),
            (0, "SELECT @@character_set_client = @@GLOBAL.character_set_client"),
            (0, "SET character_set_results = DEFAULT"),
            (1, "SELECT @@character_set_results"),
            (2, "SELECT @@character_set_results"),
        ],
    },
    Case {
        name: "the client's own LAST_INSERT_ID(expr) and SET last_insert_id",
        pool: 3,
        setup: &["CREATE TABLE li (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"],
        steps: &[
            (0, "INSERT INTO li (v) VALUES (1)"),
            (0, "SELECT LAST_INSERT_ID(5)"),
            (1, "INSERT INTO li (v) VALUES (2)"),
            (0, "SELECT LAST_INSERT_ID(), @@identity"),
            (0, "PS:SELECT LAST_INSERT_ID()"),
            (0, "DO LAST_INSERT_ID(7)"),
            (0, "SELECT LAST_INSERT_ID()"),
            (2, "SET last_insert_id = 9"),
            (2, "SELECT LAST_INSERT_ID(), @@last_insert_id"),
            (1, "SELECT LAST_INSERT_ID()"),
        ],
    },
    Case {
        name: "dropping the current schema leaves none selected",
        pool: 2,
        setup: &["DROP DATABASE IF EXISTS sess_dropme"],
        steps: &[
            (0, "CREATE DATABASE sess_dropme"),
            (0, "USE sess_dropme"),
            (0, "DROP DATABASE sess_dropme"),
            (1, "BEGIN"),
            (0, "SELECT 1"),
            (1, "COMMIT"),
            (2, "BEGIN"),
            (0, "SELECT 2"),
            (1, "BEGIN"),
            (2, "COMMIT"),
            (0, "SELECT 3"),
            (1, "COMMIT"),
        ],
    },
    Case {
        name: "computed SET values are read back and stay with their client",
        pool: 1,
        setup: &["CREATE TABLE cs (v INT NOT NULL)"],
        steps: &[
            (0, "SET sql_mode=(SELECT REPLACE(@@sql_mode,'STRICT_TRANS_TABLES',''))"),
            (0, "SELECT ROW_COUNT()"),
            (0, "SHOW WARNINGS"),
            (1, "SELECT @@sql_mode"),
            (0, "SELECT @@sql_mode"),
            (0, "INSERT INTO cs VALUES ('x')"),
            (1, "INSERT INTO cs VALUES ('y')"),
            (2, "SET SESSION time_zone = CONCAT('+0', '3:00'), @@local.wait_timeout = 100 + 23"),
            (1, "SELECT @@time_zone, @@wait_timeout = @@GLOBAL.wait_timeout"),
            (2, "SELECT @@time_zone, @@wait_timeout, FOUND_ROWS(), ROW_COUNT()"),
            (0, "SET sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')"),
            (0, "SELECT \"v\" FROM cs ORDER BY v"),
            (1, "SELECT @@sql_mode = @@GLOBAL.sql_mode"),
            (0, "SET sql_select_limit = GREATEST(1, 2)"),
            (0, "SELECT v FROM cs ORDER BY v"),
            (1, "SELECT v FROM cs ORDER BY v"),
            (
                0,
                "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci, @@SESSION.sql_mode = \
                 CONCAT(CONCAT(@@sql_mode, ',STRICT_ALL_TABLES'), ',NO_AUTO_VALUE_ON_ZERO'), \
                 @@SESSION.sql_auto_is_null = 0, @@SESSION.wait_timeout = 2147483",
            ),
            (1, "SELECT @@collation_connection, @@sql_mode = @@GLOBAL.sql_mode, @@wait_timeout = @@GLOBAL.wait_timeout"),
            (0, "SELECT @@collation_connection, @@sql_mode, @@sql_auto_is_null, @@wait_timeout"),
            (1, "set autocommit=1, sql_mode = concat(@@sql_mode,',NO_ZERO_DATE')"),
            (1, "SELECT @@autocommit, @@sql_mode"),
            (2, "SELECT @@autocommit, @@sql_mode = @@GLOBAL.sql_mode"),
            (2, "SET time_zone = CONCAT('nowhere', '')"),
            (2, "SELECT @@time_zone"),
        ],
    },
    Case {
        name: "SETs in one multi-statement query are tracked",
        pool: 2,
        setup: &[],
        steps: &[
            (0, "SET time_zone = '+01:00'; SET SESSION sql_mode = 'ANSI_QUOTES', wait_timeout = 99"),
            (1, "SELECT @@time_zone, @@sql_mode = @@GLOBAL.sql_mode, @@wait_timeout = @@GLOBAL.wait_timeout"),
            (0, "SELECT @@time_zone, @@sql_mode, @@wait_timeout"),
            (2, "SET time_zone = '+02:00'; SET sql_mode = 'NO_SUCH_MODE'"),
            (2, "SELECT @@time_zone, @@sql_mode = @@GLOBAL.sql_mode"),
            (1, "SELECT @@time_zone"),
            (0, "SELECT @@time_zone, @@wait_timeout"),
            (2, "SELECT @@time_zone"),
        ],
    },
    Case {
        name: "SET TRANSACTION holds for the next transaction only",
        pool: 2,
        setup: &["CREATE TABLE nt (v INT)"],
        steps: &[
            (0, "SET TRANSACTION READ ONLY"),
            (1, "INSERT INTO nt VALUES (1)"),
            (0, "SELECT 1"),
            (0, "INSERT INTO nt VALUES (2)"),
            (0, "INSERT INTO nt VALUES (3)"),
            (0, "SET TRANSACTION READ ONLY"),
            (0, "SELECT COUNT(*) FROM nt"),
            (0, "INSERT INTO nt VALUES (4)"),
            (0, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY"),
            (2, "INSERT INTO nt VALUES (5)"),
            (0, "COMMIT"),
            (0, "INSERT INTO nt VALUES (6)"),
            (0, "SET TRANSACTION READ ONLY"),
            (0, "BEGIN"),
            (1, "INSERT INTO nt VALUES (7)"),
            (0, "INSERT INTO nt VALUES (8)"),
            (0, "SET TRANSACTION READ WRITE"),
            (0, "COMMIT"),
            (1, "INSERT INTO nt VALUES (9)"),
            (0, "INSERT INTO nt VALUES (10)"),
            (2, "SELECT v FROM nt ORDER BY v"),
        ],
    },
    Case {
        name: "autocommit off shares the connection between transactions",
        pool: 1,
        setup: &["CREATE TABLE ac (v INT)"],
        steps: &[
            (0, "SET autocommit = 0"),
            (1, "INSERT INTO ac VALUES (1)"),
            (0, "SELECT @@autocommit, @@in_transaction"),
            (1, "SELECT @@autocommit, @@in_transaction"),
            (0, "SELECT COUNT(*) FROM ac"),
            (0, "SELECT @@in_transaction"),
            (0, "COMMIT"),
            (1, "INSERT INTO ac VALUES (2)"),
            (0, "INSERT INTO ac VALUES (3)"),
            (0, "ROLLBACK"),
            (2, "SELECT COUNT(*) FROM ac"),
            (0, "SELECT COUNT(*) FROM ac"),
            (0, "COMMIT"),
            (2, "SELECT @@autocommit"),
            (0, "SET autocommit = 1"),
            (1, "SELECT @@autocommit"),
            (0, "SELECT @@autocommit"),
        ],
    },
    Case {
        name: "autocommit off: a failed first statement still opens a transaction",
        pool: 2,
        setup: &[
            "CREATE TABLE af (id INT PRIMARY KEY, v INT)",
            "INSERT INTO af VALUES (1, 1), (2, 2)",
        ],
        steps: &[
            (0, "SET autocommit = 0"),
            // Fails after reading the table: the transaction (and its
            // snapshot) stays open, though the ERR carries no status flags.
            (0, "SELECT v FROM af WHERE id = (SELECT id FROM af)"),
            (0, "SLEEP:300"),
            (1, "INSERT INTO af VALUES (3, 3)"),
            (0, "SELECT @@in_transaction"),
            (0, "SELECT COUNT(*) FROM af"),
            (0, "INSERT INTO af VALUES (1, 9)"),
            (0, "SLEEP:300"),
            (1, "SELECT COUNT(*) FROM af"),
            (0, "SELECT @@in_transaction"),
            (0, "ROLLBACK"),
            (0, "SELECT COUNT(*) FROM af"),
        ],
    },
    Case {
        name: "a pinned connection outlives a warning's linger",
        pool: 2,
        setup: &["CREATE TABLE lw (v INT)"],
        steps: &[
            (0, "BEGIN"),
            (0, "INSERT INTO lw VALUES (1)"),
            (0, "SELECT 1 / 0"),
            (0, "SLEEP:300"),
            (0, "SELECT @@in_transaction"),
            (0, "COMMIT"),
            (1, "SELECT COUNT(*) FROM lw"),
            (1, "CREATE TEMPORARY TABLE lwt (v INT)"),
            (1, "SELECT CAST('x' AS SIGNED)"),
            (1, "SLEEP:300"),
            (2, "SELECT COUNT(*) FROM lwt"),
            (1, "SELECT COUNT(*) FROM lwt"),
        ],
    },
    Case {
        name: "autocommit off: a savepoint before the first statement of a transaction",
        pool: 2,
        setup: &["CREATE TABLE sp (v INT)"],
        steps: &[
            (0, "SET autocommit = 0"),
            // No transaction yet (in_transaction 0), but the savepoint lives
            // on the connection until the transaction ends.
            (0, "SAVEPOINT sp1"),
            (1, "SELECT 1"),
            (0, "INSERT INTO sp VALUES (1)"),
            (0, "ROLLBACK TO SAVEPOINT sp1"),
            (0, "SELECT COUNT(*) FROM sp"),
            (0, "COMMIT"),
            (0, "SAVEPOINT sp2"),
            (2, "SET autocommit = 0"),
            (2, "RELEASE SAVEPOINT sp2"),
            (0, "RELEASE SAVEPOINT sp2"),
            (0, "SELECT COUNT(*) FROM sp"),
        ],
    },
    Case {
        name: "a statement that opens no table leaves another client's warnings stale",
        pool: 1,
        setup: &[],
        steps: &[
            (1, "SELECT 1 / 0"),
            (1, "SLEEP:300"),
            (0, "SET time_zone = '+01:00'"),
            (0, "SHOW WARNINGS"),
            (1, "SELECT CAST('x' AS SIGNED)"),
            (1, "SLEEP:300"),
            (0, "SET sql_mode = CONCAT(@@sql_mode, '')"),
            (0, "SELECT @@warning_count"),
            (2, "SELECT 1 / 0"),
            (2, "SLEEP:300"),
            (0, "SELECT 1"),
            (0, "SHOW WARNINGS"),
        ],
    },
    Case {
        name: "the client's own warnings outlive a statement that opens no table",
        pool: 2,
        setup: &[],
        steps: &[
            (0, "SELECT 1 / 0"),
            (0, "SELECT 1"),
            (0, "SHOW WARNINGS"),
            (0, "SELECT 1 / 0"),
            (0, "SET time_zone = '+01:00'"),
            (0, "SELECT @@warning_count"),
        ],
    },
    Case {
        // `TRIM`, `SUBSTRING` (`SUBSTR`) and `EXTRACT` take a `FROM` of
        // their own, which names no table; a `FROM` in a subquery does.
        name: "the client's own warnings outlive functions written with FROM",
        pool: 2,
        setup: &["CREATE TABLE fw (v VARCHAR(8))", "INSERT INTO fw VALUES ('xa')"],
        steps: &[
            (0, "SELECT 1 / 0"),
            (0, "SELECT TRIM(LEADING 'x' FROM 'xa'), SUBSTRING('abc' FROM 2 FOR 1)"),
            (0, "SHOW WARNINGS"),
            (0, "SELECT CAST('x' AS SIGNED)"),
            (0, "SELECT EXTRACT(YEAR FROM '2020-01-02'), MID('abc' FROM 2) AS s"),
            (0, "SELECT @@warning_count"),
            (0, "SELECT 1 / 0"),
            (0, "SELECT TRIM(BOTH FROM ' a '), SUBSTR('abc' FROM 2)"),
            (0, "SHOW WARNINGS"),
            (0, "SELECT 1 / 0"),
            (0, "SELECT TRIM(LEADING 'x' FROM (SELECT v FROM fw))"),
            (0, "SHOW WARNINGS"),
        ],
    },
    Case {
        name: "computed sql_mode that changes parsing, SQL_CALC_FOUND_ROWS forms, SET TRANSACTION with autocommit off and CHAIN",
        pool: 2,
        setup: &["CREATE TABLE ex (id INT AUTO_INCREMENT PRIMARY KEY, v INT)", "INSERT INTO ex (v) VALUES (1), (2), (3)"],
        steps: &[
            (0, "SET sql_mode = CONCAT(@@sql_mode, ',PIPES_AS_CONCAT')"),
            (0, "SELECT 'a' || 'b'"),
            (1, "SELECT 'a' || 'b'"),
            (0, "SET sql_mode = REPLACE(@@sql_mode, 'PIPES_AS_CONCAT', 'ANSI_QUOTES')"),
            (0, "SELECT \"v\" FROM ex ORDER BY id LIMIT 1"),
            (0, "SELECT SQL_CALC_FOUND_ROWS v FROM ex ORDER BY id LIMIT 1"),
            (1, "SELECT SQL_CALC_FOUND_ROWS v FROM ex UNION SELECT 9 LIMIT 0"),
            (0, "SELECT FOUND_ROWS(), ROW_COUNT(), @@warning_count"),
            (1, "SELECT FOUND_ROWS()"),
            (2, "SELECT SQL_CALC_FOUND_ROWS * FROM (SELECT v FROM ex) d WHERE v > 1 LIMIT 1"),
            (2, "SELECT FOUND_ROWS()"),
            (2, "SELECT SQL_CALC_FOUND_ROWS v FROM nosuch LIMIT 1"),
            (2, "SELECT FOUND_ROWS()"),
            (1, "SET autocommit = 0"),
            (1, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED"),
            (1, "SELECT COUNT(*) FROM ex"),
            (1, "SELECT @@tx_isolation, @@in_transaction"),
            (0, "INSERT INTO ex (v) VALUES (4)"),
            (1, "SELECT COUNT(*) FROM ex"),
            (1, "COMMIT AND CHAIN"),
            (0, "INSERT INTO ex (v) VALUES (5)"),
            (1, "SELECT COUNT(*) FROM ex"),
            (1, "COMMIT"),
            (1, "SELECT @@tx_isolation, @@in_transaction, @@autocommit"),
            (1, "CREATE TABLE ex2 (x INT)"),
            (1, "SELECT @@in_transaction"),
            (2, "SET time_zone = '+01:00'; SET sql_mode = CONCAT(@@sql_mode, ',NO_SUCH')"),
            (2, "SELECT @@time_zone"),
            (0, "SET time_zone = CONCAT('+0', '2:00'); SET wait_timeout = 1000 + 1"),
            (0, "SELECT @@time_zone, @@wait_timeout"),
            (1, "SELECT @@time_zone, @@wait_timeout = @@global.wait_timeout"),
            (1, "SET autocommit = 1"),
            (1, "RESET"),
            (1, "SELECT @@autocommit, @@in_transaction"),
        ],
    },
    Case {
        name: "autocommit off with prepared statements, prepared SET TRANSACTION and SQL_CALC_FOUND_ROWS, multi-statement SETs, reset",
        pool: 3,
        setup: &["CREATE TABLE ey (id INT PRIMARY KEY, v INT)", "INSERT INTO ey VALUES (1, 1), (2, 2)"],
        steps: &[
            (0, "SET autocommit = 0"),
            (0, "PS:SELECT v FROM ey WHERE id = 1"),
            (0, "PS:SELECT @@in_transaction"),
            (1, "UPDATE ey SET v = 10 WHERE id = 2"),
            (0, "PS:SELECT v FROM ey WHERE id = 2"),
            (0, "ROLLBACK"),
            (0, "PS:INSERT INTO ey VALUES (1, 5)"),
            (0, "SLEEP:300"),
            (1, "SELECT 1"),
            (0, "PS:SELECT @@in_transaction"),
            (0, "ROLLBACK"),
            (0, "PS:SET TRANSACTION READ ONLY"),
            (1, "SELECT 2"),
            (0, "PS:INSERT INTO ey VALUES (3, 3)"),
            (0, "SELECT COUNT(*) FROM ey"),
            (0, "PS:INSERT INTO ey VALUES (3, 3)"),
            (0, "COMMIT"),
            (0, "PS:SELECT SQL_CALC_FOUND_ROWS v FROM ey LIMIT 1"),
            (0, "SELECT FOUND_ROWS()"),
            (0, "PS:SET sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')"),
            (0, "SELECT \"v\" FROM ey WHERE id = 1"),
            (2, "SET autocommit = 0; SET time_zone = '+03:00'"),
            (2, "SELECT @@autocommit, @@time_zone"),
            (2, "SELECT COUNT(*) FROM ey"),
            (1, "INSERT INTO ey VALUES (7, 7)"),
            (2, "SELECT COUNT(*) FROM ey"),
            (2, "COMMIT"),
            (2, "SELECT COUNT(*) FROM ey"),
            (2, "RESET"),
            (2, "SELECT @@autocommit, @@time_zone = @@global.time_zone"),
        ],
    },
    Case {
        // Found by tests/differential.rs: a reset keeps FOUND_ROWS(), which
        // a pinned session left to the server after SQL_CALC_FOUND_ROWS.
        name: "found rows through a reset of a pinned session",
        pool: 1,
        setup: &["CREATE TABLE fr (v INT)", "INSERT INTO fr VALUES (1), (2), (3)"],
        steps: &[
            (0, "CREATE TEMPORARY TABLE fq (x INT)"),
            (0, "SELECT SQL_CALC_FOUND_ROWS v FROM fr ORDER BY v LIMIT 1"),
            (0, "DO 1"),
            (0, "RESET"),
            (1, "SELECT v FROM fr"),
            (0, "SELECT FOUND_ROWS()"),
        ],
    },
    Case {
        // Found by tests/differential.rs: an execute that fails because its
        // statement no longer prepares on the serving connection is a
        // failed statement (ROW_COUNT() -1, its error readable).
        name: "an execute refused at its prepare on another connection",
        pool: 2,
        setup: &["CREATE TABLE pr2 (v INT)", "INSERT INTO pr2 VALUES (0)"],
        steps: &[
            (0, "PS:UPDATE pr2 SET v = v + 1"),
            (2, "CREATE TEMPORARY TABLE tp2 (x INT)"),
            (0, "SET SESSION TRANSACTION READ ONLY"),
            (0, "PS:UPDATE pr2 SET v = v + 1"),
            (0, "SELECT ROW_COUNT()"),
            (0, "SHOW WARNINGS"),
            (2, "SELECT COUNT(*) FROM tp2"),
        ],
    },
    Case {
        // Found by tests/differential.rs: a pinned session's variables that
        // Funnel could not track (a computed SET while pinned) must survive
        // an execute that prepares its statement on that connection.
        name: "untracked variables survive a prepare on the pinned connection",
        pool: 2,
        setup: &[],
        steps: &[
            (0, "SET sql_mode = 'PIPES_AS_CONCAT'"),
            (0, "PS:SELECT @@sql_mode"),
            (0, "SET sql_mode = ''"),
            (1, "CREATE TEMPORARY TABLE t1x (x INT)"),
            (0, "CREATE TEMPORARY TABLE t0x (x INT)"),
            (0, "SET sql_mode = CONCAT(@@sql_mode, 'ANSI_QUOTES')"),
            (0, "PS:SELECT @@sql_mode"),
            (0, "SELECT @@sql_mode, \"x\" = 'x'"),
            (1, "SELECT COUNT(*) FROM t1x"),
        ],
    },
    Case {
        // Found by tests/differential.rs: a statement prepared again on
        // another connection was prepared under that connection's last
        // client's variables, and MariaDB refuses to prepare a write in a
        // read-only session (1792).
        name: "prepared again under the session's own variables",
        pool: 2,
        setup: &["CREATE TABLE pu (v INT)", "INSERT INTO pu VALUES (0)"],
        steps: &[
            (0, "PS:UPDATE pu SET v = v + 1"),
            (2, "CREATE TEMPORARY TABLE tp (x INT)"),
            (1, "SET SESSION TRANSACTION READ ONLY"),
            (1, "SELECT 1"),
            (0, "PS:UPDATE pu SET v = v + 1"),
            (2, "SELECT COUNT(*) FROM tp"),
            (0, "SELECT v FROM pu"),
        ],
    },
    Case {
        // Found by tests/differential.rs: a transaction begun on a
        // connection holding another client's error must not report it.
        name: "diagnostics of a connection taken for a transaction",
        pool: 1,
        setup: &[],
        steps: &[
            (1, "SELEC 1"),
            (0, "BEGIN"),
            (0, "SHOW WARNINGS"),
            (0, "SELECT @@warning_count, @@error_count"),
            (0, "COMMIT"),
            (1, "SELECT CAST('1x' AS SIGNED)"),
            (0, "START TRANSACTION READ ONLY"),
            (0, "SET time_zone = '+01:00'"),
            (0, "SHOW WARNINGS"),
            (0, "ROLLBACK"),
        ],
    },
    Case {
        // Found by tests/differential.rs: once pinned for previous-statement
        // info the server answers LAST_INSERT_ID(), but the connection the
        // pin began on never saw this client's inserts (here it has client
        // 1's id).
        name: "last insert id after a pin for previous-statement info",
        pool: 2,
        setup: &[
            "CREATE TABLE li (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
            "CREATE TABLE li2 (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
        ],
        steps: &[
            (0, "INSERT INTO li (v) VALUES (1)"),
            (1, "INSERT INTO li2 (v) VALUES (1)"),
            (1, "INSERT INTO li2 (v) VALUES (2), (3)"),
            (0, "SELECT SQL_CALC_FOUND_ROWS v FROM li LIMIT 1; DO 0"),
            (0, "SELECT LAST_INSERT_ID(), FOUND_ROWS()"),
            (0, "INSERT INTO li (v) VALUES (2)"),
            (0, "SELECT LAST_INSERT_ID()"),
            (0, "SELECT LAST_INSERT_ID(7)"),
            (0, "SELECT LAST_INSERT_ID(), @@identity"),
            (2, "INSERT INTO li (v) VALUES (3)"),
            (1, "INSERT INTO li2 (v) VALUES (4), (5)"),
            (2, "SET @u = 1"),
            (2, "SELECT SQL_CALC_FOUND_ROWS v FROM li LIMIT 1"),
            (2, "SELECT LAST_INSERT_ID(), FOUND_ROWS(); SELECT LAST_INSERT_ID()"),
            (2, "SELECT LAST_INSERT_ID()"),
        ],
    },
    Case {
        // A prepared statement that reads the last insert id beside
        // CONNECTION_ID() or ROW_COUNT() pins at prepare, on a connection
        // whose last insert id is another client's: the execute must still
        // answer with this client's own.
        name: "prepared last insert id beside other reads after another client's insert",
        pool: 2,
        setup: &[
            "CREATE TABLE li (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
            "CREATE TABLE li2 (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
            "INSERT INTO li2 (v) VALUES (0), (0), (0), (0)",
        ],
        steps: &[
            (0, "INSERT INTO li (v) VALUES (1)"),
            (1, "INSERT INTO li2 (v) VALUES (1)"),
            (0, "PS:SELECT LAST_INSERT_ID(), CONNECTION_ID() > 0"),
            (0, "SELECT LAST_INSERT_ID()"),
            (0, "UPDATE li SET v = v + 1"),
            // Giving the connection the id must not cost the UPDATE's count.
            (0, "PS:SELECT LAST_INSERT_ID(), ROW_COUNT()"),
            (1, "INSERT INTO li2 (v) VALUES (2)"),
            (0, "PS:SELECT LAST_INSERT_ID(), CONNECTION_ID() > 0"),
            // Pinned by a query first, on the connection client 1 used.
            (2, "SELECT SQL_CALC_FOUND_ROWS v FROM li LIMIT 1; DO 0"),
            (2, "PS:SELECT LAST_INSERT_ID(), CONNECTION_ID() > 0"),
            (2, "SET @x = LAST_INSERT_ID(5)"),
            (2, "SELECT LAST_INSERT_ID(), @x"),
            (2, "PS:SELECT LAST_INSERT_ID(), CONNECTION_ID() > 0"),
        ],
    },
    Case {
        // `LAST_INSERT_ID(expr)` in a user variable's SET pins for the
        // variable; the id it set is on that connection, not in Funnel's
        // record, so the server must answer the later reads.
        name: "user variable set to LAST_INSERT_ID(expr)",
        pool: 2,
        setup: &["CREATE TABLE li (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"],
        steps: &[
            (0, "INSERT INTO li (v) VALUES (1)"),
            (0, "SET @x = LAST_INSERT_ID(5)"),
            (0, "SELECT LAST_INSERT_ID(), @x"),
            (0, "PS:SELECT LAST_INSERT_ID()"),
            (1, "SELECT LAST_INSERT_ID()"),
            (0, "SET @x = 1"),
            (0, "SELECT LAST_INSERT_ID(), @x"),
            // A prepared LAST_INSERT_ID(expr) sets it on the connection too.
            (1, "INSERT INTO li (v) VALUES (2)"),
            (1, "PS:SELECT LAST_INSERT_ID(9)"),
            (1, "SELECT LAST_INSERT_ID()"),
            (1, "PS:SELECT LAST_INSERT_ID()"),
            (1, "PS:SELECT @@identity"),
        ],
    },
    Case {
        // Found by tests/differential.rs: these leave the diagnostics area
        // alone on the server, so the warnings stay the client's to read.
        name: "warnings survive transaction control and table-free executes",
        pool: 2,
        setup: &["CREATE TABLE wt (v INT)"],
        steps: &[
            (0, "SELECT CAST('1x' AS SIGNED)"),
            (0, "ROLLBACK"),
            (0, "SHOW WARNINGS"),
            (0, "SELECT CAST('2x' AS SIGNED)"),
            (0, "BEGIN"),
            (0, "COMMIT"),
            (0, "SAVEPOINT s"),
            (0, "SHOW WARNINGS"),
            (0, "SELECT CAST('3x' AS SIGNED)"),
            (0, "PS:SELECT @@time_zone"),
            (0, "SHOW WARNINGS"),
            (0, "PS:SELECT nosuch FROM wt"),
            (1, "SELECT COUNT(*) FROM wt"),
            (0, "SELECT @@error_count, @@warning_count"),
            (0, "SHOW ERRORS"),
        ],
    },
    Case {
        // Funnel cannot see these in the statement's text; the server's
        // state-change report pins the client instead of leaving the
        // state on a connection the next client takes.
        name: "state set by a trigger or a stored function stays with its client",
        pool: 3,
        setup: &[
            "CREATE TABLE log (id INT)",
            "CREATE TRIGGER trg BEFORE INSERT ON log FOR EACH ROW SET @trig = NEW.id",
            "CREATE FUNCTION f_mode() RETURNS INT DETERMINISTIC \
             BEGIN SET SESSION sql_mode = 'ANSI_QUOTES'; RETURN 1; END",
        ],
        steps: &[
            (1, "INSERT INTO log VALUES (5)"),
            (2, "SELECT @trig"),
            (1, "SELECT @trig"),
            (2, "SELECT f_mode()"),
            (2, "SELECT @@sql_mode"),
            (2, "SELECT \"id\" FROM log"),
            (1, "SELECT @@sql_mode = @@GLOBAL.sql_mode"),
            (0, "SELECT @trig, @@sql_mode = @@GLOBAL.sql_mode"),
            (1, "INSERT INTO log VALUES (6)"),
            (1, "SELECT @trig"),
            (2, "SELECT @trig"),
        ],
    },
    Case {
        // An ERR carries no status flags and the server drops the pending
        // state-change report: what a trigger or a function set before the
        // error was left on the connection for the next client (one
        // connection: client 1 surely gets client 0's). The pool resets it
        // first.
        name: "state stored code set in a failing statement stays with its client",
        pool: 2,
        setup: &[
            // The row before the trigger: the insert that makes it would pin.
            "CREATE TABLE t (id INT PRIMARY KEY)",
            "INSERT INTO t VALUES (1)",
            "CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW SET @pk = NEW.id",
            "CREATE TABLE u (id INT PRIMARY KEY)",
            "INSERT INTO u VALUES (1)",
            "CREATE FUNCTION f_tz() RETURNS INT DETERMINISTIC \
             BEGIN SET time_zone = '+03:00'; RETURN 1; END",
            "CREATE FUNCTION f_x() RETURNS INT DETERMINISTIC BEGIN SET @x = 9; RETURN 1; END",
            "CREATE FUNCTION f_err() RETURNS INT DETERMINISTIC \
             BEGIN SET @y = 5; SIGNAL SQLSTATE '45000'; RETURN 1; END",
        ],
        steps: &[
            // The trigger runs, then the duplicate key fails (1062).
            (1, "INSERT INTO t (id) VALUES (1)"),
            (2, "SELECT @pk"),
            // A function sets a session variable, then a later row fails.
            (1, "INSERT INTO u VALUES (f_tz()), (1)"),
            (2, "SELECT @@time_zone = @@GLOBAL.time_zone"),
            // ... a user variable, then the function itself fails.
            (2, "SELECT f_err()"),
            (1, "SELECT @y"),
            // The same through a binary prepared execute.
            (2, "PS:INSERT INTO u VALUES (f_x()), (1)"),
            (1, "SELECT @x"),
            (1, "PS:INSERT INTO t (id) VALUES (1)"),
            (2, "PS:SELECT @pk"),
            // Inside a transaction: the connection stays with its client
            // until the transaction ends, then is reset.
            (1, "BEGIN"),
            (1, "INSERT INTO u VALUES (f_tz()), (1)"),
            (1, "SELECT @@time_zone"),
            (1, "COMMIT"),
            (2, "SELECT @@time_zone = @@GLOBAL.time_zone"),
            // The connection still works, and reports state changes again.
            (2, "INSERT INTO t VALUES (2)"),
            (2, "SELECT @pk"),
            (2, "DELETE FROM t WHERE id = 2"),
        ],
    },
    Case {
        // Found by tests/differential.rs: SHOW WARNINGS is not a SELECT.
        name: "found rows after SHOW WARNINGS",
        pool: 1,
        setup: &[],
        steps: &[
            (0, "SELECT 1 UNION SELECT 2 UNION SELECT 3"),
            (0, "SHOW WARNINGS"),
            (1, "SELECT 1"),
            (0, "SELECT FOUND_ROWS()"),
            (0, "SELECT 1 UNION SELECT 2"),
            (0, "/* x */ show errors"),
            (0, "SELECT FOUND_ROWS()"),
            (0, "SELECT 1 UNION SELECT 2"),
            (0, "SHOW COUNT(*) WARNINGS"),
            (0, "SELECT FOUND_ROWS()"),
        ],
    },
    Case {
        // Found by tests/differential.rs. MariaDB keeps a transaction's READ
        // ONLY after `SET autocommit = 1` commits it, until a COMMIT: the
        // next client of that connection could not write.
        name: "SET autocommit = 1 ending a read-only transaction",
        pool: 2,
        setup: &["CREATE TABLE ro (v INT)"],
        steps: &[
            (0, "SET autocommit = 0"),
            (0, "START TRANSACTION READ ONLY"),
            (0, "SET autocommit = 1"),
            (1, "INSERT INTO ro VALUES (1)"),
            (0, "SELECT @@in_transaction, @@tx_read_only"),
            (0, "INSERT INTO ro VALUES (2)"),
            (1, "INSERT INTO ro VALUES (3)"),
            (0, "COMMIT"),
            (0, "INSERT INTO ro VALUES (4)"),
            (1, "SELECT v FROM ro ORDER BY v"),
        ],
    },
    Case {
        // As below, but the prepare there is refused (an UPDATE in a
        // read-only transaction): the connection stays in the statement's
        // schema, and the next command's switch back to the session's is
        // Funnel's statement, not the client's: ROW_COUNT() reads the
        // refusal's -1 (differential soak seed 50237).
        name: "a pinned session's statement refused when prepared anew in a schema it left",
        pool: 2,
        setup: &["CREATE TABLE ps (v INT)"],
        steps: &[
            (0, "PS:UPDATE ps SET v = v + 1"),
            (1, "BEGIN"),
            (1, "SELECT COUNT(*) FROM ps"),
            (0, "PS:SELECT CONNECTION_ID() > 0"),
            (1, "COMMIT"),
            (0, "START TRANSACTION READ ONLY"),
            (0, "USE information_schema"),
            (0, "PS:UPDATE ps SET v = v + 1"),
            (0, "SELECT ROW_COUNT(), DATABASE()"),
            (0, "ROLLBACK"),
        ],
    },
    Case {
        // The same under variables the session changed since the prepare
        // (the statement is prepared anew under its own, and the next
        // command's SET back is Funnel's statement: soak seed 50443).
        name: "a pinned session's statement refused when prepared anew under variables it changed",
        pool: 2,
        setup: &["CREATE TABLE ps (v INT)"],
        steps: &[
            (0, "PS:UPDATE ps SET v = v + 1"),
            (1, "BEGIN"),
            (1, "SELECT COUNT(*) FROM ps"),
            (0, "PS:SELECT CONNECTION_ID() > 0"),
            (1, "COMMIT"),
            (0, "START TRANSACTION READ ONLY"),
            (0, "SET sql_mode = 'NO_BACKSLASH_ESCAPES'"),
            (0, "PS:UPDATE ps SET v = v + 1"),
            (0, "SELECT ROW_COUNT()"),
            (0, "ROLLBACK"),
        ],
    },
    Case {
        // Client 0 pins (CONNECTION_ID() in a prepared statement) on the
        // connection client 1's transaction did not hold, where its first
        // statement was never prepared: the execute prepares it there, in
        // the schema it was prepared in, which the session left. The
        // server answers for ROW_COUNT() after the execute, so nothing may
        // select the session's schema between the two (differential
        // regression seed 2017, when load put the pin on another
        // connection).
        name: "a pinned session's statement prepared anew in a schema it left",
        pool: 2,
        setup: &["CREATE TABLE ps (v INT)"],
        steps: &[
            (0, "PS:SELECT @@time_zone"),
            (1, "BEGIN"),
            (1, "SELECT COUNT(*) FROM ps"),
            (0, "PS:SELECT CONNECTION_ID() > 0"),
            (1, "COMMIT"),
            (0, "USE information_schema"),
            (0, "PS:SELECT @@time_zone"),
            (0, "SELECT ROW_COUNT(), DATABASE()"),
            (0, "PS:SELECT @@time_zone"),
            (0, "SELECT ROW_COUNT(), DATABASE()"),
            (0, "SHOW WARNINGS"),
        ],
    },
    Case {
        name: "transactions and autocommit",
        pool: 2,
        setup: &["CREATE TABLE x (v INT)"],
        steps: &[
            (0, "BEGIN"),
            (0, "INSERT INTO x VALUES (1)"),
            (1, "SELECT COUNT(*) FROM x"),
            (0, "SELECT COUNT(*) FROM x"),
            (0, "ROLLBACK"),
            (1, "SET autocommit = 0"),
            (1, "INSERT INTO x VALUES (2)"),
            (2, "SELECT COUNT(*) FROM x"),
            (1, "SELECT COUNT(*) FROM x"),
            (1, "COMMIT"),
            (2, "SELECT COUNT(*) FROM x"),
            (1, "SET autocommit = 1"),
            (1, "SELECT @@autocommit"),
            (2, "SELECT @@autocommit"),
        ],
    },
];

/// Runs one step; `PS:` runs the rest as a binary-protocol prepared
/// statement (prepared once per connection by the driver's cache).
fn outcome(c: &mut Conn, sql: &str) -> Outcome {
    if let Some(ms) = sql.strip_prefix("SLEEP:") {
        // A pause in the script (past Funnel's 200 ms linger, say).
        std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap()));
        return Ok(Vec::new());
    }
    if sql == "RESET" {
        // COM_RESET_CONNECTION.
        return match c.reset() {
            Ok(()) => Ok(Vec::new()),
            Err(mysql::Error::MySqlError(e)) => Err(e.code),
            Err(e) => panic!("{sql}: {e}"),
        };
    }
    if let Some(ps) = sql.strip_prefix("PS:") {
        return match c.exec_iter(ps, ()) {
            Ok(mut result) => collect(&mut result, sql),
            Err(mysql::Error::MySqlError(e)) => Err(e.code),
            Err(e) => panic!("{sql}: {e}"),
        };
    }
    match c.query_iter(sql) {
        Ok(mut result) => collect(&mut result, sql),
        Err(mysql::Error::MySqlError(e)) => Err(e.code),
        Err(e) => panic!("{sql}: {e}"),
    }
}

fn collect<P: mysql::prelude::Protocol>(
    result: &mut mysql::QueryResult<'_, '_, '_, P>,
    sql: &str,
) -> Outcome {
    let mut sets = Vec::new();
    while let Some(set) = result.iter() {
        let mut rows = Vec::new();
        for row in set {
            match row {
                Ok(row) => rows.push(row.unwrap().into_iter().map(shown).collect()),
                Err(mysql::Error::MySqlError(e)) => return Err(e.code),
                Err(e) => panic!("{sql}: {e}"),
            }
        }
        sets.push(rows);
    }
    Ok(sets)
}

/// A value as compared: whole (`Value`'s `Debug` cuts long strings short,
/// `"index_me.."` for any `@@optimizer_switch`).
fn shown(v: mysql::Value) -> String {
    match v {
        mysql::Value::Bytes(b) => format!("Bytes({:?})", String::from_utf8_lossy(&b)),
        other => format!("{other:?}"),
    }
}

fn opts(port: u16, user: &str, pw: &str, db: &str) -> OptsBuilder {
    funnel_testkit::client_opts(port, user, pw).db_name(Some(db))
}

/// Runs a case's script on fresh connections; the schema name is masked in the output.
fn run(case: &Case, make: impl Fn() -> Conn, schema: &str) -> Vec<Outcome> {
    let mut clients: Vec<Conn> = (0..3).map(|_| make()).collect();
    for sql in case.setup {
        clients[0].query_drop(sql).unwrap();
    }
    case.steps
        .iter()
        .map(|(i, sql)| {
            outcome(&mut clients[*i], sql).map(|sets| {
                sets.into_iter()
                    .map(|rows| {
                        rows.into_iter()
                            .map(|r| r.into_iter().map(|v| v.replace(schema, "<db>")).collect())
                            .collect()
                    })
                    .collect()
            })
        })
        .collect()
}

#[test]
fn session_state_cases_match_direct_mariadb() {
    let db = MariaDb::shared();
    db.create_user("sess_direct", "dpw");
    db.create_user("sess_backend", "bpw");
    let mut failures = Vec::new();
    // SESSION_CASE=<part of a name> runs only the matching cases.
    let only = std::env::var("SESSION_CASE").ok();
    for case in CASES
        .iter()
        .filter(|c| only.as_deref().is_none_or(|o| c.name.contains(o)))
    {
        let direct_schema = db.fresh_database("sess_d");
        let direct = run(
            case,
            || Conn::new(opts(db.port(), "sess_direct", "dpw", &direct_schema)).unwrap(),
            &direct_schema,
        );

        let funnel_schema = db.fresh_database("sess_f");
        let yaml = format!(
            "listen: 127.0.0.1:0\ncores: 1\n\
             users:\n  - name: app\n    password: apppw\n    default_schema: {funnel_schema}\n\
             backends:\n  - name: primary\n    address: {}\n    user: sess_backend\n    password: bpw\n\
             pool:\n  max_per_core: {}\n  min_idle_per_core: 1\nbacklog:\n  wait_timeout: 5s\n",
            db.addr(),
            case.pool
        );
        let proxy = Proxy::start(Config::from_yaml_str(&yaml).unwrap()).unwrap();
        let port = proxy.local_addr().port();
        let through = run(
            case,
            || Conn::new(opts(port, "app", "apppw", &funnel_schema)).unwrap(),
            &funnel_schema,
        );
        for (i, (d, f)) in direct.iter().zip(&through).enumerate() {
            if d != f {
                let (client, sql) = case.steps[i];
                let cut = |o: &Outcome| {
                    let t = format!("{o:?}");
                    if t.len() > 400 {
                        format!("{}...", &t[..400])
                    } else {
                        t
                    }
                };
                failures.push(format!(
                    "[{}] step {i} client {client} `{sql}`:\n  direct: {}\n  funnel: {}",
                    case.name,
                    cut(d),
                    cut(f)
                ));
            }
        }
        drop(proxy);
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
