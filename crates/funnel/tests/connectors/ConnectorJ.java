// MariaDB Connector/J scenarios for crates/funnel/tests/connector_java.rs: run against MariaDB
// directly and through Funnel; each check prints one deterministic line, and the two outputs
// must be equal. Arguments: port user password schema0 schema1 schema2 [scenario...].
import java.sql.*;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import org.mariadb.jdbc.MariaDbPoolDataSource;

public class ConnectorJ {
    static int port;
    static String user, password;
    static String[] schemas = new String[3];
    /** TLS options for every connection (CONNECTOR_TLS; none for a server without TLS). */
    static final String TLS = Optional.ofNullable(System.getenv("CONNECTOR_TLS")).orElse("");

    static String url(String schema, String opts) {
        return "jdbc:mariadb://127.0.0.1:" + port + "/" + schema + "?user=" + user + "&password=" + password
            + "&connectTimeout=10000&socketTimeout=30000" + (opts.isEmpty() ? "" : "&" + opts)
            + (TLS.isEmpty() ? "" : "&" + TLS);
    }

    static Connection connect(String schema, String opts) throws SQLException {
        return DriverManager.getConnection(url(schema, opts));
    }

    /** Schema names printed as S0..S2 so that direct and Funnel runs (own schemas) compare. */
    static void p(String line) {
        for (int i = 0; i < 3; i++) line = line.replace(schemas[i], "S" + i);
        System.out.println(line.replaceAll("conn=\\d+", "conn=N"));
    }

    static String name(String s) {
        if (s == null) return "null";
        for (int i = 0; i < 3; i++) if (s.equals(schemas[i])) return "S" + i;
        return s;
    }

    static String err(SQLException e) {
        return "ERR " + e.getErrorCode() + " " + e.getSQLState() + " "
            + e.getMessage().replaceAll("\\s+", " ").replaceAll("\\(conn=\\d+\\) ", "").replaceAll("conn=\\d+", "conn=N");
    }

    static String one(Connection c, String sql) {
        try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(sql)) {
            return rows(r);
        } catch (SQLException e) {
            return err(e);
        }
    }

    static String upd(Connection c, String sql) {
        try (Statement s = c.createStatement()) {
            return "n=" + s.executeUpdate(sql) + warnings(s.getWarnings());
        } catch (SQLException e) {
            return err(e);
        }
    }

    static String warnings(SQLWarning w) {
        StringBuilder b = new StringBuilder();
        for (; w != null; w = w.getNextWarning()) b.append(" W").append(w.getErrorCode()).append(":").append(w.getMessage());
        return b.toString();
    }

    static String rows(ResultSet r) throws SQLException {
        StringBuilder b = new StringBuilder();
        ResultSetMetaData m = r.getMetaData();
        int n = m.getColumnCount();
        while (r.next()) {
            if (b.length() > 0) b.append(";");
            for (int i = 1; i <= n; i++) {
                if (i > 1) b.append(",");
                b.append(r.getString(i));
            }
        }
        return b.toString();
    }

    /** Runs `n` clients as threads; their lines are printed in client order after all end. */
    interface Client { void run(int i, List<String> out, CyclicBarrier step) throws Exception; }

    static void clients(String scenario, int n, Client body) throws Exception {
        List<List<String>> outs = new ArrayList<>();
        CyclicBarrier step = new CyclicBarrier(n);
        List<Thread> ts = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            List<String> out = Collections.synchronizedList(new ArrayList<>());
            outs.add(out);
            final int id = i;
            Thread t = new Thread(() -> {
                try {
                    body.run(id, out, step);
                } catch (Throwable e) {
                    out.add("EXCEPTION " + e);
                    step.reset();
                }
            });
            ts.add(t);
            t.start();
        }
        for (Thread t : ts) t.join(60000);
        for (int i = 0; i < n; i++)
            for (String l : outs.get(i)) p(scenario + " c" + i + " " + l);
    }

    static void await(CyclicBarrier b) throws Exception { b.await(20, TimeUnit.SECONDS); }

    static final int[] LEVELS = {Connection.TRANSACTION_READ_UNCOMMITTED, Connection.TRANSACTION_READ_COMMITTED,
        Connection.TRANSACTION_REPEATABLE_READ, Connection.TRANSACTION_SERIALIZABLE};

    // ---- scenarios ----

    static void setup() throws Exception {
        try (Connection c = connect(schemas[0], "")) {
            for (int i = 0; i < 3; i++) {
                upd(c, "CREATE TABLE " + schemas[i] + ".t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20), n INT)");
            }
            upd(c, "CREATE TABLE k (id BIGINT AUTO_INCREMENT PRIMARY KEY, who INT, v VARCHAR(40))");
            upd(c, "CREATE TABLE z (d DATETIME, ts TIMESTAMP NULL, dt DATE, tm TIME)");
            upd(c, "INSERT INTO z VALUES ('2024-03-10 12:34:56', '2024-03-10 12:34:56', '2024-03-10', '12:34:56')");
        }
    }

    static void connectInfo() throws Exception {
        try (Connection c = connect(schemas[0], "")) {
            DatabaseMetaData m = c.getMetaData();
            p("connect product " + m.getDatabaseProductName() + " major " + m.getDatabaseMajorVersion());
            p("connect autocommit " + c.getAutoCommit() + " catalog " + name(c.getCatalog())
                + " isolation " + c.getTransactionIsolation() + " readonly " + c.isReadOnly() + " valid " + c.isValid(5));
            p("connect vars " + one(c, "SELECT @@autocommit, @@tx_isolation, @@tx_read_only, @@sql_mode, @@character_set_client, @@character_set_results, @@collation_connection, @@time_zone, DATABASE() = '" + schemas[0] + "'"));
            p("connect max_allowed_packet " + one(c, "SELECT @@max_allowed_packet = @@global.max_allowed_packet, @@wait_timeout"));
        }
    }

    /** Each client sets its own session state through the connector's API, then all check. */
    static void sessionState() throws Exception {
        clients("state", 5, (i, out, step) -> {
            try (Connection c = connect(schemas[0], "assureReadOnly=true")) {
                await(step);
                c.setCatalog(schemas[i % 3]);
                c.setTransactionIsolation(LEVELS[i % 4]);
                c.setReadOnly(i % 2 == 0);
                c.setAutoCommit(i % 3 != 0);
                try (Statement s = c.createStatement()) {
                    s.execute("SET @me = " + i + ", time_zone = '+0" + i + ":00', sql_mode = '" + (i % 2 == 0 ? "ANSI_QUOTES" : "NO_ZERO_DATE") + "'");
                }
                await(step);
                for (int round = 0; round < 3; round++) {
                    out.add("r" + round + " db " + name(one(c, "SELECT DATABASE()")) + " catalog " + name(c.getCatalog())
                        + " " + one(c, "SELECT @me, @@time_zone, @@sql_mode, @@tx_isolation, @@tx_read_only, @@autocommit")
                        + " api " + c.getTransactionIsolation() + "," + c.isReadOnly() + "," + c.getAutoCommit()
                        + " valid " + c.isValid(5));
                    await(step);
                }
                // A write: refused in a read-only session, else it goes into the client's own schema.
                out.add("insert " + upd(c, "INSERT INTO t (v, n) VALUES ('c" + i + "', " + i + ")"));
                if (!c.getAutoCommit()) {
                    out.add("rows before rollback " + one(c, "SELECT COUNT(*) FROM t WHERE n = " + i));
                    c.rollback();
                    out.add("rows after rollback " + one(c, "SELECT COUNT(*) FROM t WHERE n = " + i));
                    out.add("insert again " + upd(c, "INSERT INTO t (v, n) VALUES ('c" + i + "', " + i + ")"));
                    c.commit();
                }
                await(step);
                out.add("committed " + one(c, "SELECT COUNT(*) FROM t WHERE n = " + i));
                c.setReadOnly(false);
                c.setAutoCommit(true);
                out.add("after reset api " + one(c, "SELECT @@tx_read_only, @@autocommit"));
            }
        });
    }

    /** Transactions: commit and rollback with other clients working in between. */
    static void transactions() throws Exception {
        clients("tx", 3, (i, out, step) -> {
            try (Connection c = connect(schemas[1], "")) {
                for (int round = 0; round < 4; round++) {
                    c.setAutoCommit(false);
                    String tag = "tx" + i + "_" + round;
                    out.add("ins " + upd(c, "INSERT INTO t (v, n) VALUES ('" + tag + "', " + (100 + i) + ")"));
                    out.add("in-tx sees " + one(c, "SELECT COUNT(*) FROM t WHERE v = '" + tag + "'") + " flag " + one(c, "SELECT @@in_transaction"));
                    if (round % 2 == 0) c.rollback(); else c.commit();
                    c.setAutoCommit(true);
                    out.add("after " + (round % 2 == 0 ? "rollback" : "commit") + " " + one(c, "SELECT COUNT(*) FROM t WHERE v = '" + tag + "'") + " flag " + one(c, "SELECT @@in_transaction"));
                }
                // A savepoint.
                c.setAutoCommit(false);
                upd(c, "INSERT INTO t (v, n) VALUES ('sp" + i + "a', 0)");
                Savepoint sp = c.setSavepoint("p" + i);
                upd(c, "INSERT INTO t (v, n) VALUES ('sp" + i + "b', 0)");
                c.rollback(sp);
                c.commit();
                c.setAutoCommit(true);
                out.add("savepoint " + one(c, "SELECT GROUP_CONCAT(v ORDER BY v) FROM t WHERE v LIKE 'sp" + i + "%'"));
            }
        });
    }

    /** Prepared statements, server-side or client-side, many distinct texts, several clients. */
    static void prepared(String tag, String opts) throws Exception {
        clients("prep-" + tag, 4, (i, out, step) -> {
            try (Connection c = connect(schemas[0], opts)) {
                List<PreparedStatement> ps = new ArrayList<>();
                for (int k = 0; k < 30; k++) {
                    ps.add(c.prepareStatement("SELECT ? + " + k + " AS s" + k + ", CONCAT(?, '-" + k + "') AS c, ? IS NULL"));
                }
                await(step);
                StringBuilder b = new StringBuilder();
                for (int round = 0; round < 3; round++) {
                    for (int k = 0; k < ps.size(); k++) {
                        PreparedStatement p = ps.get(k);
                        p.setInt(1, i * 1000 + round);
                        p.setString(2, "c" + i);
                        if (k % 2 == 0) p.setNull(3, Types.INTEGER); else p.setLong(3, k);
                        try (ResultSet r = p.executeQuery()) {
                            ResultSetMetaData m = r.getMetaData();
                            if (round == 0 && k < 2) out.add("meta " + m.getColumnLabel(1) + ":" + m.getColumnTypeName(1) + " " + m.getColumnLabel(2) + ":" + m.getColumnTypeName(2) + ":" + m.getColumnDisplaySize(2) + " " + m.getColumnTypeName(3));
                            b.append(rows(r)).append("|");
                        }
                    }
                    out.add("round " + round + " " + b.toString().hashCode() + " " + b.substring(0, 40));
                    b.setLength(0);
                    await(step);
                }
                // Inserts with generated keys in the client's own rows.
                try (PreparedStatement p = c.prepareStatement("INSERT INTO k (who, v) VALUES (?, ?)", Statement.RETURN_GENERATED_KEYS)) {
                    long first = -1;
                    for (int k = 0; k < 3; k++) {
                        p.setInt(1, i);
                        p.setString(2, tag + k);
                        int n = p.executeUpdate();
                        try (ResultSet r = p.getGeneratedKeys()) {
                            r.next();
                            long id = r.getLong(1);
                            if (first < 0) first = id;
                            long check = Long.parseLong(one(c, "SELECT id FROM k WHERE who = " + i + " AND v = '" + tag + k + "'"));
                            out.add("genkey n=" + n + " matches " + (id == check) + " last_insert_id " + (Long.parseLong(one(c, "SELECT LAST_INSERT_ID()")) == id));
                        }
                    }
                }
                // Errors at prepare and at execute.
                try (PreparedStatement p = c.prepareStatement("SELECT nosuch FROM k WHERE id = ?")) {
                    p.setInt(1, 1);
                    p.executeQuery();
                    out.add("bad prepare ran");
                } catch (SQLException e) {
                    out.add("bad prepare " + err(e));
                }
                try (PreparedStatement p = c.prepareStatement("INSERT INTO k (id, who, v) VALUES (?, ?, ?)")) {
                    p.setInt(1, 1);
                    p.setInt(2, i);
                    p.setString(3, "dup");
                    try { p.executeUpdate(); } catch (SQLException e) { /* the first client may win */ }
                    p.executeUpdate();
                    out.add("dup ran");
                } catch (SQLException e) {
                    out.add("dup " + err(e));
                }
            }
        });
    }

    /** executeBatch with the connector's batch options. */
    static void batches() throws Exception {
        String[][] variants = {
            {"plain", "useBulkStmts=false"},
            {"rewrite", "rewriteBatchedStatements=true&useBulkStmts=false"},
            {"bulk", "useBulkStmts=true"},
            {"bulk-server", "useBulkStmts=true&useServerPrepStmts=true"},
            {"server", "useServerPrepStmts=true&useBulkStmts=false"},
        };
        for (String[] v : variants) {
            clients("batch-" + v[0], 2, (i, out, step) -> {
                try (Connection c = connect(schemas[0], v[1])) {
                    String tbl = "b_" + v[0].replace('-', '_') + "_" + i;
                    upd(c, "CREATE TABLE " + tbl + " (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20) UNIQUE, n INT)");
                    await(step);
                    try (PreparedStatement p = c.prepareStatement("INSERT INTO " + tbl + " (v, n) VALUES (?, ?)", Statement.RETURN_GENERATED_KEYS)) {
                        for (int k = 0; k < 20; k++) {
                            p.setString(1, "v" + k);
                            p.setInt(2, k);
                            p.addBatch();
                        }
                        int[] counts = p.executeBatch();
                        out.add("counts " + Arrays.toString(counts));
                        try (ResultSet r = p.getGeneratedKeys()) {
                            out.add("keys " + rows(r));
                        }
                    }
                    await(step);
                    try (PreparedStatement p = c.prepareStatement("UPDATE " + tbl + " SET n = n + ? WHERE n < ?")) {
                        for (int k = 0; k < 3; k++) {
                            p.setInt(1, 100);
                            p.setInt(2, 5 * (k + 1));
                            p.addBatch();
                        }
                        out.add("update counts " + Arrays.toString(p.executeBatch()));
                    }
                    // A batch with a duplicate in the middle.
                    try (PreparedStatement p = c.prepareStatement("INSERT INTO " + tbl + " (v, n) VALUES (?, ?)")) {
                        for (String s : new String[] {"x1", "v3", "x2"}) {
                            p.setString(1, s);
                            p.setInt(2, 0);
                            p.addBatch();
                        }
                        p.executeBatch();
                        out.add("dup batch ran");
                    } catch (BatchUpdateException e) {
                        out.add("dup batch " + err(e) + " counts " + Arrays.toString(e.getUpdateCounts()));
                    }
                    out.add("rows " + one(c, "SELECT COUNT(*), SUM(n), GROUP_CONCAT(v ORDER BY id) FROM " + tbl));
                    // A statement batch.
                    try (Statement s = c.createStatement()) {
                        s.addBatch("INSERT INTO " + tbl + " (v, n) VALUES ('s1', 1)");
                        s.addBatch("UPDATE " + tbl + " SET n = 0 WHERE v LIKE 's%'");
                        s.addBatch("DELETE FROM " + tbl + " WHERE v = 'x1'");
                        out.add("stmt batch " + Arrays.toString(s.executeBatch()));
                    }
                }
            });
        }
    }

    /**
     * useBulkStmts batches (COM_STMT_BULK_EXECUTE when the server offers bulk operations) by four
     * clients in step, two with server-side prepares, on Funnel's two backend connections: one
     * statement text for all four, each binding its own types (a NULL among them), and each
     * client's own table for what must be its own (LAST_INSERT_ID(), ROW_COUNT()).
     */
    static void bulk() throws Exception {
        try (Connection c = connect(schemas[0], "")) {
            upd(c, "CREATE TABLE bk (id INT AUTO_INCREMENT PRIMARY KEY, who INT, v VARCHAR(20), n BIGINT, d DATETIME, UNIQUE (who, v))");
        }
        clients("bulk", 4, (i, out, step) -> {
            String opts = "useBulkStmts=true" + (i % 2 == 1 ? "&useServerPrepStmts=true" : "");
            try (Connection c = connect(schemas[0], opts)) {
                String own = "bk_" + i;
                upd(c, "CREATE TABLE " + own + " (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20) UNIQUE, n INT)");
                String ins = "INSERT INTO " + own + " (v, n) VALUES (?, ?)";
                String ids = "SELECT LAST_INSERT_ID(), ROW_COUNT()";
                for (int round = 0; round < 3; round++) {
                    await(step);
                    try (PreparedStatement p = c.prepareStatement("INSERT INTO bk (who, v, n, d) VALUES (?, ?, ?, ?)")) {
                        for (int k = 0; k < 4; k++) {
                            p.setInt(1, i);
                            p.setString(2, "r" + round + "k" + k);
                            switch (i) {
                                case 0: p.setInt(3, k); break;
                                case 1: p.setString(3, Integer.toString(k)); break;
                                case 2: p.setLong(3, k * 1000000000000L); break;
                                default:
                                    if (k == 1) p.setNull(3, Types.BIGINT);
                                    else p.setBigDecimal(3, new java.math.BigDecimal(k));
                            }
                            p.setTimestamp(4, Timestamp.valueOf("2024-01-0" + (k + 1) + " 10:00:0" + i));
                            p.addBatch();
                        }
                        out.add("r" + round + " shared " + Arrays.toString(p.executeBatch()) + " "
                            + one(c, "SELECT LAST_INSERT_ID() = (SELECT MIN(id) FROM bk WHERE who = " + i
                                + " AND v LIKE 'r" + round + "%'), ROW_COUNT()"));
                    }
                    try (PreparedStatement p = c.prepareStatement(ins)) {
                        for (int k = 0; k < 3; k++) {
                            p.setString(1, "o" + round + k);
                            p.setInt(2, round * 10 + k);
                            p.addBatch();
                        }
                        out.add("r" + round + " own " + Arrays.toString(p.executeBatch()) + " " + one(c, ids));
                    }
                    await(step);
                    // A duplicate in the middle: one statement, which applies no row.
                    try (PreparedStatement p = c.prepareStatement(ins)) {
                        for (String v : new String[] {"d" + round, "o" + round + "1", "e" + round}) {
                            p.setString(1, v);
                            p.setInt(2, 1);
                            p.addBatch();
                        }
                        p.executeBatch();
                        out.add("r" + round + " dup ran");
                    } catch (BatchUpdateException e) {
                        // Not LAST_INSERT_ID(): after a failed insert the server's is the
                        // first id the rolled-back rows took, Funnel's the client's last OK's.
                        out.add("r" + round + " dup " + err(e) + " counts " + Arrays.toString(e.getUpdateCounts()) + " " + one(c, "SELECT ROW_COUNT()"));
                    }
                    try (PreparedStatement p = c.prepareStatement("UPDATE " + own + " SET n = n + ? WHERE v = ?")) {
                        for (int k = 0; k < 3; k++) {
                            p.setInt(1, 100);
                            p.setString(2, "o" + round + k);
                            p.addBatch();
                        }
                        p.setInt(1, 1);
                        p.setString(2, "none");
                        p.addBatch();
                        // ROW_COUNT(): after a bulk UPDATE the server's is the last row's
                        // count (0), not the OK's sum over all rows.
                        out.add("r" + round + " update " + Arrays.toString(p.executeBatch()) + " " + one(c, "SELECT ROW_COUNT()") + " " + one(c, "SELECT n FROM " + own + " WHERE v LIKE 'o" + round + "%' ORDER BY id"));
                    }
                }
                // In a transaction: a failing bulk undoes its own rows only.
                await(step);
                c.setAutoCommit(false);
                try (PreparedStatement p = c.prepareStatement(ins)) {
                    for (String v : new String[] {"t1", "t2"}) {
                        p.setString(1, v);
                        p.setInt(2, 5);
                        p.addBatch();
                    }
                    out.add("tx ok " + Arrays.toString(p.executeBatch()));
                    for (String v : new String[] {"t3", "t1", "t4"}) {
                        p.setString(1, v);
                        p.setInt(2, 6);
                        p.addBatch();
                    }
                    p.executeBatch();
                    out.add("tx dup ran");
                } catch (BatchUpdateException e) {
                    out.add("tx dup " + err(e) + " counts " + Arrays.toString(e.getUpdateCounts()));
                }
                c.commit();
                c.setAutoCommit(true);
                await(step);
                out.add("rows shared " + one(c, "SELECT COUNT(*), SUM(n), COUNT(n), MIN(d), MAX(d), GROUP_CONCAT(v ORDER BY id) FROM bk WHERE who = " + i));
                out.add("rows own " + one(c, "SELECT COUNT(*), SUM(n), GROUP_CONCAT(v, ':', n ORDER BY id) FROM " + own));
            }
        });
    }

    static void timeouts() throws Exception {
        clients("timeout", 2, (i, out, step) -> {
            try (Connection c = connect(schemas[0], "")) {
                if (i == 0) {
                    try (Statement s = c.createStatement()) {
                        s.setQueryTimeout(1);
                        long t0 = System.nanoTime();
                        try (ResultSet r = s.executeQuery("SELECT SLEEP(4)")) {
                            out.add("query timeout result " + rows(r));
                        } catch (SQLException e) {
                            out.add("query timeout " + err(e));
                        }
                        out.add("query timeout took<3s " + ((System.nanoTime() - t0) < 3_000_000_000L));
                        out.add("after timeout " + one(c, "SELECT 1, @@max_statement_time"));
                    }
                    try (PreparedStatement p = c.prepareStatement("SELECT SLEEP(?)")) {
                        p.setQueryTimeout(1);
                        p.setInt(1, 4);
                        try (ResultSet r = p.executeQuery()) {
                            out.add("prepared timeout result " + rows(r));
                        } catch (SQLException e) {
                            out.add("prepared timeout " + err(e));
                        }
                    }
                } else {
                    // Cancel from another thread: the connector sends KILL QUERY on a new connection.
                    try (Statement s = c.createStatement()) {
                        Thread killer = new Thread(() -> {
                            try {
                                Thread.sleep(700);
                                s.cancel();
                            } catch (Exception e) {
                                out.add("cancel failed " + e);
                            }
                        });
                        long t0 = System.nanoTime();
                        killer.start();
                        try (ResultSet r = s.executeQuery("SELECT SLEEP(5)")) {
                            out.add("cancel result " + rows(r));
                        } catch (SQLException e) {
                            out.add("cancel " + err(e));
                        }
                        killer.join();
                        out.add("cancel took<4s " + ((System.nanoTime() - t0) < 4_000_000_000L));
                        out.add("after cancel " + one(c, "SELECT 2"));
                    }
                }
                await(step);
            }
        });
    }

    /** A streamed result read slowly while other clients query. */
    static void streaming() throws Exception {
        clients("stream", 3, (i, out, step) -> {
            try (Connection c = connect(schemas[0], "")) {
                if (i == 0) {
                    try (Statement s = c.createStatement()) {
                        s.setFetchSize(50);
                        try (ResultSet r = s.executeQuery("SELECT seq, REPEAT('r', 100) FROM seq_1_to_20000")) {
                            long sum = 0, n = 0;
                            while (r.next()) {
                                sum += r.getLong(1);
                                n++;
                                if (n == 100) await(step);
                                if (n == 5000) await(step);
                            }
                            out.add("streamed " + n + " sum " + sum);
                        }
                    }
                    out.add("after stream " + one(c, "SELECT 3"));
                } else {
                    await(step);
                    StringBuilder b = new StringBuilder();
                    for (int k = 0; k < 20; k++) b.append(one(c, "SELECT " + k + " + " + i)).append(",");
                    out.add("meanwhile " + b);
                    await(step);
                }
            }
        });
    }

    static void multiQueries() throws Exception {
        try (Connection c = connect(schemas[0], "allowMultiQueries=true")) {
            try (Statement s = c.createStatement()) {
                boolean isRs = s.execute("SELECT 1 AS a; UPDATE z SET dt = dt; SELECT 'x' AS b, 2; DO 1; SELECT 3");
                StringBuilder b = new StringBuilder();
                try {
                    while (true) {
                        if (isRs) {
                            try (ResultSet r = s.getResultSet()) { b.append("rs[").append(rows(r)).append("] "); }
                        } else {
                            int n = s.getUpdateCount();
                            if (n == -1) break;
                            b.append("upd[").append(n).append("] ");
                        }
                        isRs = s.getMoreResults();
                    }
                } catch (SQLException e) {
                    b.append(err(e));
                }
                p("multi " + b);
            }
            p("multi error " + one(c, "SELECT 5; SELECT nosuch; SELECT 6"));
            p("multi after " + one(c, "SELECT 5; SELECT 6"));
        }
    }

    static void compression() throws Exception {
        try (Connection c = connect(schemas[0], "useCompression=true")) {
            p("compress " + one(c, "SELECT LENGTH(REPEAT('abc', 100000)), MD5(REPEAT('abc', 100000))"));
            try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT REPEAT('q', 70000) FROM seq_1_to_30")) {
                long n = 0;
                while (r.next()) n += r.getString(1).length();
                p("compress rows " + n);
            }
            try (PreparedStatement p = c.prepareStatement("SELECT ? , LENGTH(?)")) {
                p.setInt(1, 9);
                p.setString(2, "y".repeat(300000));
                try (ResultSet r = p.executeQuery()) { p("compress prepared " + rows(r)); }
            }
        }
    }

    static void warningsAndTimezones() throws Exception {
        try (Connection c = connect(schemas[0], "")) {
            try (Statement s = c.createStatement()) {
                try (ResultSet r = s.executeQuery("SELECT 1/0, CAST('12abc' AS INT)")) {
                    p("warn select " + rows(r) + warnings(s.getWarnings()));
                }
                s.clearWarnings();
                s.executeUpdate("SET sql_mode = ''");
                int n = s.executeUpdate("INSERT INTO t (v, n) VALUES (REPEAT('w', 30), 'nan')");
                p("warn insert n=" + n + warnings(s.getWarnings()));
                p("warn show " + one(c, "SHOW WARNINGS"));
                p("warn count " + one(c, "SELECT @@warning_count"));
            }
        }
        for (String tz : new String[] {"", "serverTimezone=UTC", "serverTimezone=Asia/Tokyo&useLegacyDatetimeCode=false", "sessionVariables=time_zone='-04:00'"}) {
            try (Connection c = connect(schemas[0], tz); Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT d, ts, dt, tm, @@time_zone FROM z")) {
                r.next();
                p("tz [" + tz + "] " + r.getTimestamp(1).getTime() + " " + r.getTimestamp(2).getTime() + " " + r.getString(2) + " " + r.getDate(3) + " " + r.getTime(4) + " " + r.getString(5));
                try (PreparedStatement p = c.prepareStatement("SELECT ?, CAST(? AS DATETIME)")) {
                    java.sql.Timestamp ts = new java.sql.Timestamp(1700000000000L);
                    p.setTimestamp(1, ts);
                    p.setTimestamp(2, ts);
                    try (ResultSet q = p.executeQuery()) {
                        q.next();
                        p("tz param [" + tz + "] " + q.getString(1) + " " + q.getTimestamp(2).getTime());
                    }
                }
            }
        }
    }

    /** setMaxRows, callable statements with OUT parameters, LOCAL INFILE, prepare cache eviction. */
    static void more(String tag, String opts) throws Exception {
        try (Connection c = connect(schemas[0], "")) {
            upd(c, "CREATE PROCEDURE IF NOT EXISTS p2(IN a INT, OUT b INT, INOUT c VARCHAR(20)) BEGIN SET b = a * 2; SET c = CONCAT(c, '!'); SELECT a AS rs_a; END");
            upd(c, "CREATE FUNCTION IF NOT EXISTS f2(a INT) RETURNS INT DETERMINISTIC RETURN a + 100");
            upd(c, "CREATE TABLE IF NOT EXISTS li (who INT, v VARCHAR(20), n INT)");
        }
        clients("more-" + tag, 3, (i, out, step) -> {
            try (Connection c = connect(schemas[0], opts)) {
                try (Statement s = c.createStatement()) {
                    s.setMaxRows(2 + i);
                    await(step);
                    try (ResultSet r = s.executeQuery("SELECT seq FROM seq_1_to_10")) { out.add("maxrows " + rows(r)); }
                    s.setMaxRows(0);
                    try (ResultSet r = s.executeQuery("SELECT COUNT(*) FROM (SELECT seq FROM seq_1_to_10) x")) { out.add("maxrows off " + rows(r)); }
                    out.add("select_limit " + one(c, "SELECT @@sql_select_limit"));
                }
                await(step);
                try (PreparedStatement p = c.prepareStatement("SELECT seq FROM seq_1_to_10 WHERE seq > ?")) {
                    p.setMaxRows(3);
                    p.setInt(1, i);
                    try (ResultSet r = p.executeQuery()) { out.add("prepared maxrows " + rows(r)); }
                }
                // A CALL pins its session to its connection in Funnel (it may leave any
                // state): one caller at a time, or two would hold both connections.
                if (i == 0) try (CallableStatement cs = c.prepareCall("{call p2(?, ?, ?)}")) {
                    cs.setInt(1, 20 + i);
                    cs.registerOutParameter(2, Types.INTEGER);
                    cs.setString(3, "c" + i);
                    cs.registerOutParameter(3, Types.VARCHAR);
                    boolean rs = cs.execute();
                    StringBuilder b = new StringBuilder();
                    while (true) {
                        if (rs) { try (ResultSet r = cs.getResultSet()) { b.append("rs[").append(rows(r)).append("]"); } }
                        else if (cs.getUpdateCount() == -1) break;
                        rs = cs.getMoreResults();
                    }
                    out.add("call " + b + " out " + cs.getInt(2) + " " + cs.getString(3));
                }
                try (CallableStatement cs = c.prepareCall("{? = call f2(?)}")) {
                    cs.registerOutParameter(1, Types.INTEGER);
                    cs.setInt(2, i);
                    cs.execute();
                    out.add("function " + cs.getInt(1));
                }
                await(step);
                try (Statement s = c.createStatement()) {
                    String data = "";
                    for (int k = 0; k < 100; k++) data += i + "\tv" + k + "\t" + k + "\n";
                    ((org.mariadb.jdbc.MariaDbStatement) s.unwrap(org.mariadb.jdbc.MariaDbStatement.class))
                        .setLocalInfileInputStream(new java.io.ByteArrayInputStream(data.getBytes()));
                    out.add("load " + s.executeUpdate("LOAD DATA LOCAL INFILE 'x.tsv' INTO TABLE li") + warnings(s.getWarnings()));
                    out.add("loaded " + one(c, "SELECT COUNT(*), SUM(n) FROM li WHERE who = " + i));
                } catch (SQLException e) {
                    out.add("load " + err(e));
                }
                // More distinct prepared statements than the connector's cache holds.
                long sum = 0;
                for (int k = 0; k < 120; k++) {
                    try (PreparedStatement p = c.prepareStatement("SELECT ? * " + k + " + " + i)) {
                        p.setInt(1, 2);
                        try (ResultSet r = p.executeQuery()) { r.next(); sum += r.getLong(1); }
                    }
                }
                out.add("evicted sum " + sum);
            }
        });
    }

    /**
     * Callable statements from four clients, interleaved, for a Funnel with two backend connections
     * and `stateless_procedures` listing the cp_ procedures: OUT parameters, a result set, an insert
     * read back by LAST_INSERT_ID(), warnings; client 3 then calls cp_setvar,
     * which sets a user variable (its session keeps its connection and sees its variable).
     * Run only when named: through a Funnel without that list the third caller waits for a connection.
     */
    static void callable(String tag, String opts) throws Exception {
        try (Connection c = connect(schemas[0], "")) {
            upd(c, "CREATE TABLE IF NOT EXISTS ck (id BIGINT AUTO_INCREMENT PRIMARY KEY, who INT, v VARCHAR(40))");
            upd(c, "CREATE PROCEDURE IF NOT EXISTS cp_add(IN a INT, OUT b INT) SET b = a * 2");
            upd(c, "CREATE PROCEDURE IF NOT EXISTS cp_inout(INOUT s VARCHAR(40), IN n INT) SET s = CONCAT(s, '+', n)");
            upd(c, "CREATE PROCEDURE IF NOT EXISTS cp_rows(IN a INT) SELECT seq, seq * a FROM seq_1_to_3");
            upd(c, "CREATE PROCEDURE IF NOT EXISTS cp_insert(IN w INT, IN x VARCHAR(40)) INSERT INTO ck (who, v) VALUES (w, x)");
            upd(c, "CREATE PROCEDURE IF NOT EXISTS cp_warn(IN x VARCHAR(10)) DO CAST(x AS INT)");
            upd(c, "CREATE PROCEDURE IF NOT EXISTS cp_setvar(IN x INT) SET @cp_mine = x");
            upd(c, "CREATE PROCEDURE IF NOT EXISTS cp_count(IN w INT, OUT n INT) SELECT COUNT(*) INTO n FROM ck WHERE who = w");
        }
        clients("callable-" + tag, 4, (i, out, step) -> {
            try (Connection c = connect(schemas[0], opts);
                 CallableStatement add = c.prepareCall("{call cp_add(?, ?)}")) {
                add.registerOutParameter(2, Types.INTEGER);
                for (int round = 0; round < 8; round++) {
                    await(step);
                    StringBuilder b = new StringBuilder("r" + round);
                    // The same callable statement, executed again each round.
                    add.setInt(1, i * 100 + round);
                    add.execute();
                    b.append(" add ").append(add.getInt(2)).append(" counts ").append(one(c, "SELECT ROW_COUNT(), FOUND_ROWS()"));
                    // The other ways to write the call: all a prepared `call ...` the
                    // stateless list covers; by name, the connector first reads
                    // information_schema.PARAMETERS.
                    String[] forms = {"{call " + schemas[0] + ".cp_add(?, ?)}", "call cp_add(?, ?)", "{call cp_add(7, ?)}", "{call cp_add(?, ?)}"};
                    try (CallableStatement cs = c.prepareCall(forms[round % 4])) {
                        if (round % 4 == 3) {
                            cs.setInt("a", round);
                            cs.registerOutParameter("b", Types.INTEGER);
                            cs.execute();
                            b.append(" named ").append(cs.getInt("b"));
                        } else {
                            int k = 1;
                            if (round % 4 != 2) cs.setInt(k++, round);
                            cs.registerOutParameter(k, Types.INTEGER);
                            cs.execute();
                            b.append(" form ").append(cs.getInt(k));
                        }
                    }
                    try (CallableStatement cs = c.prepareCall("{call cp_inout(?, ?)}")) {
                        cs.setString(1, "c" + i);
                        cs.registerOutParameter(1, Types.VARCHAR);
                        cs.setInt(2, round);
                        cs.execute();
                        b.append(" inout ").append(cs.getString(1));
                    }
                    try (CallableStatement cs = c.prepareCall("{call cp_rows(?)}")) {
                        cs.setInt(1, i + round);
                        try (ResultSet r = cs.executeQuery()) { b.append(" rows ").append(rows(r)); }
                    }
                    String v = tag + i + "r" + round;
                    try (CallableStatement cs = c.prepareCall("{call cp_insert(?, ?)}")) {
                        cs.setInt(1, i);
                        cs.setString(2, v);
                        int n = cs.executeUpdate();
                        // No getGeneratedKeys: prepareCall takes no RETURN_GENERATED_KEYS, and the
                        // connector refuses it ("query was not set with ...") directly too.
                        String[] read = one(c, "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()").split(",", 2);
                        String id = one(c, "SELECT id FROM ck WHERE v = '" + v + "'");
                        b.append(" insert n=").append(n).append(" read ").append(read[0].equals(id) ? "own-id," : read[0] + ",").append(read[1]);
                    } catch (SQLException e) {
                        b.append(" insert ").append(err(e));
                    }
                    try (CallableStatement cs = c.prepareCall("{call cp_warn(?)}")) {
                        cs.setString(1, "x" + i);
                        cs.execute();
                        b.append(" warn").append(warnings(cs.getWarnings()));
                    }
                    // An OUT parameter set by SELECT ... INTO (a local, not a user variable).
                    try (CallableStatement cs = c.prepareCall("{call cp_count(?, ?)}")) {
                        cs.setInt(1, i);
                        cs.registerOutParameter(2, Types.INTEGER);
                        cs.execute();
                        b.append(" count ").append(cs.getInt(2));
                    }
                    // The insert's id is still the client's after the CALLs that made none.
                    b.append(" id kept ").append(one(c, "SELECT LAST_INSERT_ID() = (SELECT id FROM ck WHERE v = '" + v + "')"));
                    if (i == 1 && round >= 5) {
                        // A CALL in the client's transaction: the connection is the
                        // session's until the commit, and no longer (client 3 holds
                        // the other one from round 4 on).
                        c.setAutoCommit(false);
                        try (CallableStatement cs = c.prepareCall("{call cp_insert(?, ?)}")) {
                            cs.setInt(1, i);
                            cs.setString(2, v + "tx");
                            cs.execute();
                        }
                        b.append(" in tx ").append(one(c, "SELECT @@in_transaction, ROW_COUNT()"));
                        c.commit();
                        c.setAutoCommit(true);
                    }
                    if (i == 3 && round == 4) {
                        try (CallableStatement cs = c.prepareCall("{call cp_setvar(?)}")) {
                            cs.setInt(1, 1000 + i);
                            cs.execute();
                        }
                    }
                    b.append(" var ").append(one(c, "SELECT @cp_mine"));
                    out.add(b.toString());
                }
            }
        });
    }

    /** Metadata: DatabaseMetaData, and a server-side prepare's columns after ALTER TABLE. */
    static void metadata() throws Exception {
        try (Connection a = connect(schemas[0], "useServerPrepStmts=true");
             Connection b = connect(schemas[0], "useServerPrepStmts=true")) {
            upd(a, "CREATE TABLE md (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, s VARCHAR(30) NOT NULL DEFAULT 'x', d DECIMAL(10,3), j JSON)");
            upd(a, "INSERT INTO md (s, d, j) VALUES ('a', 1.5, '{\"k\": 1}')");
            DatabaseMetaData m = a.getMetaData();
            try (ResultSet r = m.getColumns(schemas[0], null, "md", null)) {
                StringBuilder sb = new StringBuilder();
                while (r.next()) sb.append(r.getString("COLUMN_NAME")).append(":").append(r.getString("TYPE_NAME")).append(":").append(r.getInt("COLUMN_SIZE")).append(":").append(r.getString("IS_NULLABLE")).append(":").append(r.getString("IS_AUTOINCREMENT")).append(" ");
                p("meta columns " + sb);
            }
            try (ResultSet r = m.getPrimaryKeys(schemas[0], null, "md")) { p("meta pk " + rows(r)); }
            try (ResultSet r = m.getTables(schemas[0], null, "m%", new String[] {"TABLE"})) {
                StringBuilder sb = new StringBuilder();
                while (r.next()) sb.append(r.getString("TABLE_NAME")).append(" ");
                p("meta tables " + sb);
            }
            String sql = "SELECT * FROM md WHERE id = ?";
            for (Connection c : new Connection[] {a, b}) {
                try (PreparedStatement ps = c.prepareStatement(sql)) {
                    ResultSetMetaData md = ps.getMetaData();
                    StringBuilder sb = new StringBuilder();
                    for (int k = 1; k <= md.getColumnCount(); k++) sb.append(md.getColumnName(k)).append(":").append(md.getColumnTypeName(k)).append(":").append(md.isSigned(k)).append(":").append(md.isNullable(k)).append(":").append(md.isAutoIncrement(k)).append(" ");
                    ps.setInt(1, 1);
                    try (ResultSet r = ps.executeQuery()) { p("meta prepared " + sb + "| " + rows(r)); }
                }
            }
            upd(a, "ALTER TABLE md ADD COLUMN extra INT DEFAULT 7, MODIFY s VARCHAR(40)");
            // b and a answer from the connector's own cache of prepares; a fresh connection asks.
            for (Connection c : new Connection[] {b, a, connect(schemas[0], "useServerPrepStmts=true")}) {
                try (PreparedStatement ps = c.prepareStatement(sql)) {
                    ResultSetMetaData md = ps.getMetaData();
                    StringBuilder sb = new StringBuilder();
                    for (int k = 1; k <= md.getColumnCount(); k++) sb.append(md.getColumnName(k)).append(":").append(md.getColumnDisplaySize(k)).append(" ");
                    ps.setInt(1, 1);
                    try (ResultSet r = ps.executeQuery()) {
                        ResultSetMetaData rmd = r.getMetaData();
                        p("meta after alter " + sb + "| " + rmd.getColumnCount() + " | " + rows(r));
                    }
                }
            }
        }
    }

    /** Everyday work, run with TLS options in CONNECTOR_TLS. */
    static void tls() throws Exception {
        clients("tls", 2, (i, out, step) -> {
            try (Connection c = connect(schemas[0], "useCompression=" + (i == 1))) {
                out.add("valid " + c.isValid(5) + " " + name(one(c, "SELECT DATABASE()")));
                try (PreparedStatement p = c.prepareStatement("SELECT ?, LENGTH(REPEAT('t', ?))")) {
                    p.setInt(1, i);
                    p.setInt(2, 1_000_000);
                    try (ResultSet r = p.executeQuery()) { out.add("prepared " + rows(r)); }
                }
                try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT REPEAT('u', 50000) FROM seq_1_to_40")) {
                    long n = 0;
                    while (r.next()) n += r.getString(1).length();
                    out.add("rows " + n);
                }
                await(step);
                c.setAutoCommit(false);
                out.add("insert " + upd(c, "INSERT INTO t (v, n) VALUES ('tls', " + i + ")"));
                c.rollback();
                out.add("after rollback " + one(c, "SELECT COUNT(*) FROM t WHERE v = 'tls'"));
            }
        });
    }

    /** The connector's own pool, with more pooled connections than Funnel has backend ones. */
    static void pool() throws Exception {
        try (MariaDbPoolDataSource ds = new MariaDbPoolDataSource(url(schemas[0], "maxPoolSize=6&minPoolSize=6&useResetConnection=true&poolValidMinDelay=0"))) {
            clients("pool", 6, (i, out, step) -> {
                for (int round = 0; round < 4; round++) {
                    try (Connection c = ds.getConnection()) {
                        String seen = one(c, "SELECT @mine IS NULL, DATABASE() = '" + schemas[0] + "', @@time_zone, @@autocommit, @@tx_isolation, @@sql_mode, @@collation_connection");
                        out.add("r" + round + " fresh " + seen + " api " + c.getAutoCommit() + "," + c.getTransactionIsolation() + "," + name(c.getCatalog()));
                        try (Statement s = c.createStatement()) {
                            s.execute("SET @mine = " + i + ", time_zone = '+0" + i + ":00'");
                        }
                        c.setCatalog(schemas[1 + i % 2]);
                        c.setTransactionIsolation(LEVELS[i % 4]);
                        c.setAutoCommit(i % 2 == 0);
                        await(step);
                        out.add("r" + round + " own " + one(c, "SELECT @mine, @@time_zone, @@autocommit, @@tx_isolation") + " db " + name(one(c, "SELECT DATABASE()")));
                        if (!c.getAutoCommit()) c.rollback();
                    }
                    await(step);
                }
            });
        }
    }

    /** Scenarios that run only when named (they need a Funnel configured for them). */
    static final Set<String> NAMED_ONLY = Set.of("callable", "bulk");

    public static void main(String[] a) throws Exception {
        port = Integer.parseInt(a[0]);
        user = a[1];
        password = a[2];
        for (int i = 0; i < 3; i++) schemas[i] = a[3 + i];
        Set<String> only = new HashSet<>(Arrays.asList(a).subList(6, a.length));
        setup();
        Map<String, Callable<Void>> all = new LinkedHashMap<>();
        all.put("connect", () -> { connectInfo(); return null; });
        all.put("state", () -> { sessionState(); return null; });
        all.put("tx", () -> { transactions(); return null; });
        all.put("prep-server", () -> { prepared("server", "useServerPrepStmts=true"); return null; });
        all.put("prep-client", () -> { prepared("client", "useServerPrepStmts=false"); return null; });
        all.put("batch", () -> { batches(); return null; });
        all.put("bulk", () -> { bulk(); return null; });
        all.put("timeout", () -> { timeouts(); return null; });
        all.put("stream", () -> { streaming(); return null; });
        all.put("multi", () -> { multiQueries(); return null; });
        all.put("compress", () -> { compression(); return null; });
        all.put("warn", () -> { warningsAndTimezones(); return null; });
        all.put("pool", () -> { pool(); return null; });
        all.put("tls", () -> { tls(); return null; });
        all.put("metadata", () -> { metadata(); return null; });
        all.put("callable", () -> {
            callable("text", "");
            callable("server", "useServerPrepStmts=true");
            return null;
        });
        all.put("more", () -> {
            more("text", "allowLocalInfile=true");
            more("server", "allowLocalInfile=true&useServerPrepStmts=true&prepStmtCacheSize=25");
            return null;
        });
        for (Map.Entry<String, Callable<Void>> e : all.entrySet()) {
            if (only.isEmpty() ? NAMED_ONLY.contains(e.getKey()) : !only.contains(e.getKey())) continue;
            try {
                e.getValue().call();
            } catch (Exception ex) {
                p(e.getKey() + " EXCEPTION " + ex);
            }
        }
        p("done");
    }
}
