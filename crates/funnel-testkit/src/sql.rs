//! Setup helpers on [`MariaDb`]: connections, statements as root, users and databases.

use std::sync::atomic::{AtomicU64, Ordering};

use mysql::{
    prelude::{FromRow, Queryable},
    Conn, OptsBuilder,
};

use crate::{connect, MariaDb, TestkitError};

impl MariaDb {
    /// Connection options for `user` over TCP to this server, with timeouts set (connect 10 s,
    /// read and write 60 s) and the driver's switch to the unix socket turned off. Adjust them
    /// (`.db_name(..)`, `.read_timeout(..)`) before connecting.
    pub fn opts(&self, user: &str, password: &str) -> OptsBuilder {
        connect::opts(self.port(), user, password)
    }

    /// [`opts`](Self::opts) for root, whose password is empty.
    pub fn root_opts(&self) -> OptsBuilder {
        connect::root_opts(self.port())
    }

    /// Connects as `user`; the error is returned so tests can check refusals (e.g. 1045).
    pub fn connect_as(&self, user: &str, password: &str) -> mysql::Result<Conn> {
        Conn::new(self.opts(user, password))
    }

    /// How many `Execute` lines of bulk executes the general log holds for
    /// connections that logged in to `schema` or selected it: a bulk shows
    /// its statement's text with the `?` still in it (one line per row for
    /// an `UPDATE` or `DELETE`), an execute its values. Needs
    /// `log_output = 'TABLE'` and `general_log = 1` while they run.
    pub fn bulk_executes_logged(&self, schema: &str) -> u64 {
        self.query_first(&format!(
            "SELECT COUNT(*) FROM mysql.general_log WHERE command_type = 'Execute' \
             AND argument LIKE '%?%' AND thread_id IN (SELECT thread_id FROM mysql.general_log \
             WHERE (command_type = 'Connect' AND argument LIKE '% on {schema} %') \
             OR (command_type = 'Init DB' AND argument = '{schema}'))"
        ))
        .unwrap_or(0)
    }

    /// A fresh root connection over TCP; panics if the server refuses it.
    #[track_caller]
    pub fn root(&self) -> Conn {
        Conn::new(self.root_opts())
            .unwrap_or_else(|e| panic!("root login to 127.0.0.1:{} failed: {e}", self.port()))
    }

    /// Runs `sql` as root, discarding any result; panics if it fails.
    #[track_caller]
    pub fn exec(&self, sql: &str) {
        self.try_exec(sql).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Fallible [`exec`](Self::exec).
    pub fn try_exec(&self, sql: &str) -> Result<(), TestkitError> {
        let sql_error = |source| TestkitError::Sql {
            port: self.port(),
            sql: sql.to_owned(),
            source,
        };
        Conn::new(self.root_opts())
            .and_then(|mut conn| conn.query_drop(sql))
            .map_err(sql_error)
    }

    /// The first row of `sql` run as root, converted to `T` (e.g. `i64`, `(String, u32)`), or
    /// `None` for an empty result; panics if the query fails or the row does not convert.
    #[track_caller]
    pub fn query_first<T: FromRow>(&self, sql: &str) -> Option<T> {
        self.root()
            .query_first(sql)
            .unwrap_or_else(|e| panic!("`{sql}` failed on 127.0.0.1:{}: {e}", self.port()))
    }

    /// Creates `name@'%'` with `password` (mysql_native_password) and all privileges on `*.*`.
    ///
    /// `'%'` matches TCP logins from 127.0.0.1 (the server runs with `--skip-name-resolve`, so the
    /// client host is the literal IP) and socket logins; the template has no anonymous users that
    /// would shadow it. The plugin is named explicitly because it is what the proxy must speak,
    /// whatever a future MariaDB makes the default.
    #[track_caller]
    pub fn create_user(&self, name: &str, password: &str) {
        let (name, password) = (quote(name), quote(password));
        self.exec(&format!(
            "CREATE USER {name}@'%' IDENTIFIED VIA mysql_native_password \
             USING PASSWORD({password})"
        ));
        self.exec(&format!("GRANT ALL ON *.* TO {name}@'%' WITH GRANT OPTION"));
    }

    /// Creates database `name`.
    #[track_caller]
    pub fn create_database(&self, name: &str) {
        self.exec(&format!("CREATE DATABASE {}", quote_ident(name)));
    }

    /// Creates a database named `<prefix>_<n>`, unique in this process, and returns its name.
    /// Tests that share a server (see [`MariaDb::shared`]) each use their own database.
    #[track_caller]
    pub fn fresh_database(&self, prefix: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let name = format!("{prefix}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.create_database(&name);
        name
    }
}

/// A single-quoted SQL string literal. Backslashes are doubled too, because MariaDB treats them as
/// escapes unless `NO_BACKSLASH_ESCAPES` is set.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// A backtick-quoted identifier.
fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::{quote, quote_ident};

    #[test]
    fn testkit_quote_escapes_quotes_and_backslashes() {
        assert_eq!(quote(r"a'b\c"), r"'a''b\\c'");
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
    }
}
