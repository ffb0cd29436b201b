//! Where a command runs: its route (the hostgroup the read/write split,
//! query rules and causal reads choose, and the one to fall back to), the
//! checks that the connection a session holds still fits it, and the
//! lease of a connection for it (the session's own, a causal read's, or
//! one checked out of the pools, within `users[].max_connections`).

use std::rc::Rc;

use funnel_protocol::framing::MAX_CHUNK;
use funnel_protocol::response::ErrPacket;

use super::command::Forward;
use super::pinning::PinReason;
use super::{End, Session};
use crate::caps::{CapKey, CapSlot};
use crate::error::EngineError;
use crate::kill::ClientState;
use crate::pool::conn::BackendConn;
use crate::router::Access;

/// Where a command goes.
pub(super) struct Route {
    pub(super) hostgroup: Rc<str>,
    pub(super) access: Access,
    /// Tried when no backend of `hostgroup` can take it.
    pub(super) fallback: Option<Rc<str>>,
}

impl Session {
    /// True when the command would be routed to `conn`'s backend: its
    /// hostgroup, and for a write not a server that takes none (read-only,
    /// or one its hostgroup's `max_writers` leaves out).
    pub(super) fn routes_to(&self, conn: &BackendConn, total: usize, f: &Forward) -> bool {
        let route = self.route(total, f);
        self.shard.backends.by_id(conn.pool_id).is_some_and(|pool| {
            *pool.placement().hostgroup == *route.hostgroup
                && !(matches!(route.access, Access::Write | Access::PreferWrite)
                    && self.shard.backends.refuses_writes(&pool))
        })
    }

    /// True when `f` is a prepare of a read that opens no table
    /// ([`Forward::prepares_read`]) that `conn`, lingering for the
    /// client's warnings, may describe
    /// though the prepare would go to a writer: `conn` is a server of its
    /// hostgroup, or of the user's read hostgroup where it routes to the
    /// default one (no rule sends it to another cluster). Its executes
    /// are split to such servers too.
    pub(super) fn describes_there(&self, conn: &BackendConn, total: usize, f: &Forward) -> bool {
        if !f.prepares_read {
            return false;
        }
        let route = self.route(total, f);
        let Some(pool) = self.shard.backends.by_id(conn.pool_id) else {
            return false;
        };
        let at = &*pool.placement().hostgroup;
        *at == *route.hostgroup
            || (*route.hostgroup == *self.user.default_hostgroup
                && self
                    .user
                    .read_hostgroup
                    .as_deref()
                    .is_some_and(|read| *read == *at))
    }

    /// True when `f` opens no table, so it keeps the diagnostics area
    /// `conn` holds for the client, and `conn` may serve it though the
    /// read/write split sends it elsewhere: a read on a writable server of
    /// the default hostgroup (which has every write a replica would wait
    /// for), or a `SET` of tracked state only on a server of the read
    /// hostgroup (where it may run when the writers are away, see
    /// `route`). Else a read after a write's warnings went to a replica, a
    /// `SET` after a read's to the writer, and the client's `SHOW WARNINGS`
    /// after either read another connection's area.
    pub(super) fn keeps_diagnostics_there(&self, conn: &BackendConn, total: usize, f: &Forward) -> bool {
        if !f.opens_no_table {
            return false;
        }
        let route = self.route(total, f);
        let Some(pool) = self.shard.backends.by_id(conn.pool_id) else {
            return false;
        };
        let at = &*pool.placement().hostgroup;
        let read_hostgroup = self.user.read_hostgroup.as_deref();
        match route.access {
            Access::Read => {
                read_hostgroup == Some(&*route.hostgroup)
                    && *at == *self.user.default_hostgroup
                    && !pool.is_read_only()
            }
            Access::Session => read_hostgroup.is_some_and(|read| *read == *at),
            _ => false,
        }
    }

    /// Where a command goes: with autocommit off, or for a session pinned
    /// before it holds a connection, the user's default hostgroup; else
    /// the first matching query rule, else the read hostgroup for a
    /// read-only statement of a user with read/write split (falling back
    /// to the default hostgroup when configured), else the user's default
    /// hostgroup.
    pub(super) fn route(&self, total: usize, f: &Forward) -> Route {
        let user = &self.user;
        if self.vars.sets_autocommit_off() || self.sticky() {
            // Any statement that reads a table opens a transaction, and the
            // session's next statements follow it there: so every one goes
            // where transactions go, as a write. So do those of a session
            // pinned by a prepare answered from the registry (it reads the
            // previous statement's results), which keeps the connection
            // its next statement gets, a read's too.
            return Route {
                hostgroup: user.default_hostgroup.clone(),
                access: if f.read_only || f.session_only || f.changes_no_data {
                    Access::PreferWrite
                } else {
                    Access::Write
                },
                fallback: None,
            };
        }
        let access = if f.read_only {
            Access::Read
        } else if self.leaves_only_tracked_state(f) {
            Access::Session
        } else if f.session_only || f.changes_no_data {
            Access::PreferWrite
        } else {
            Access::Write
        };
        let default = Route {
            hostgroup: user.default_hostgroup.clone(),
            access,
            // With the writer away (a failover), a `SET NAMES` at connect
            // or a `USE` may still be checked on a replica, so the
            // session's reads go on.
            fallback: (access == Access::Session)
                .then(|| user.read_hostgroup.clone())
                .flatten(),
        };
        if let Some(hostgroup) = &f.rule_hostgroup {
            return Route {
                hostgroup: hostgroup.clone(),
                access,
                fallback: None,
            };
        }
        let sql = (f.name == "COM_QUERY")
            .then(|| self.buf.bytes().get(5..total.min(MAX_CHUNK)))
            .flatten();
        if let Some(sql) = sql {
            let rules = self.shard.rules();
            let hostgroup = match self.query_rules_seen {
                // Matched when the client sent it (before a rewrite).
                seen if seen == rules.id() => self.query_rule.as_ref().and_then(|r| r.hostgroup.clone()),
                // A reload changed the rules while the command waited:
                // what they make of the text the client sent.
                _ if !rules.is_empty() => {
                    let sent = self.query_text_sent.as_deref().unwrap_or(sql);
                    rules.route(sent, &user.name, self.schema.as_deref(), &self.peer)
                }
                _ => None,
            };
            if let Some(hostgroup) = hostgroup {
                return Route {
                    hostgroup,
                    access,
                    fallback: None,
                };
            }
        }
        match &user.read_hostgroup {
            Some(read) if f.read_only => Route {
                hostgroup: read.clone(),
                access: Access::Read,
                fallback: user.read_fallback.then(|| user.default_hostgroup.clone()),
            },
            _ => default,
        }
    }

    /// `f` leaves only state Funnel tracks here, so it may run on any
    /// server (see [`Forward::leaves_only_tracked_state`]), and so do the
    /// user variables it sets: past the session's cap they cannot be
    /// recorded and pin instead, where the `SET` ran (a replica would then
    /// take the session's writes).
    pub(super) fn leaves_only_tracked_state(&self, f: &Forward) -> bool {
        f.leaves_only_tracked_state()
            && f.set_user_vars
                .as_ref()
                .is_none_or(|values| self.user_vars.fits(values))
    }

    /// Leases a connection from the backend the command routes to (with
    /// `to_writer`, a writer of the default hostgroup: a writable server,
    /// else, except for `causal_reads: universal`, a read-only one), after a slot under
    /// the user's and the schema's caps, if any. The route is taken once
    /// the shard is not paused: a reload during a pause (new hostgroups or
    /// rules) applies to the commands that waited.
    /// A `KILL` of this client, or a `KILL QUERY` of its command, stops
    /// the wait (and the command never runs).
    pub(super) async fn checkout_routed(
        &mut self,
        total: usize,
        f: &Forward,
        to_writer: Option<&[u32]>,
    ) -> Result<BackendConn, EngineError> {
        self.control.take_wait_interrupted();
        self.control.set_state(ClientState::Waiting);
        let stopped = self.control.wait_stopped();
        let checkout = async {
            self.shard
                .wait_unpaused(self.shard.config().backlog.wait_timeout.as_duration())
                .await?;
            // A reload while the shard was paused may have moved the user.
            self.follow_user_changes();
            let slot = self.cap_slot().await?;
            let (route, skip) = match to_writer {
                Some(skip) => (
                    Route {
                        hostgroup: self.user.default_hostgroup.clone(),
                        // `causal_reads: universal`: a writable server
                        // only. With none (a failover turned the writer
                        // `read_only`) a read-only one may be a replica
                        // that lacks writes others were told committed,
                        // and no position says which: the read fails as
                        // a write does.
                        access: if self.user.causal_universal {
                            Access::Write
                        } else {
                            Access::PreferWrite
                        },
                        fallback: None,
                    },
                    skip,
                ),
                None => (self.route(total, f), &[][..]),
            };
            let mut conn = self.checkout_on(&route, skip).await?;
            conn.cap_slot = slot;
            Ok(Some(conn))
        };
        let got = futures_lite::future::or(checkout, async {
            stopped.await;
            Ok(None)
        })
        .await;
        // Tests widen the gap between the connection's arrival and the
        // look at what stopped the wait (a `KILL` in the same turn).
        #[cfg(feature = "fault-injection")]
        crate::shard::fault_pause("FUNNEL_FAULT_CHECKOUT_DELAY_MS").await;
        match got? {
            // A `KILL QUERY` that came in the same turn as the connection
            // is left noted: the command stops unsent at the last look
            // (`stop_requested`). Cleared here, it was lost: the command
            // ran to its end while the killer had its OK.
            Some(conn) => Ok(conn),
            None if self.control.take_wait_interrupted() && !self.control.is_killed() => {
                Err(EngineError::Interrupted)
            }
            None => Err(EngineError::ConnectionKilled),
        }
    }

    /// A slot under this client's caps, or `None` when none applies.
    pub(super) async fn cap_slot(&self) -> Result<Option<CapSlot>, EngineError> {
        let mut limits = Vec::new();
        if self.user.max_backend_per_core > 0 {
            limits.push((
                CapKey::User(Rc::from(self.user.name.as_str())),
                self.user.max_backend_per_core,
            ));
        }
        if let Some(schema) = &self.schema {
            if let Some(limit) = self.shard.schema_limit(schema) {
                limits.push((CapKey::Schema(schema.clone()), limit));
            }
        }
        if limits.is_empty() {
            return Ok(None);
        }
        let wait = self.shard.config().backlog.wait_timeout.as_duration();
        self.shard.caps.acquire(&limits, wait).await.map(Some)
    }

    /// A connection from `route`'s hostgroup (never from the pools in
    /// `skip`), else from its fallback.
    pub(super) async fn checkout_on(&self, route: &Route, skip: &[u32]) -> Result<BackendConn, EngineError> {
        match self
            .shard
            .backends
            .checkout(
                &route.hostgroup,
                self.key,
                route.access,
                route.fallback.is_some(),
                skip,
            )
            .await
        {
            Ok((c, _)) => Ok(c),
            // No reader, or none could give a connection (refused,
            // marked down while the command waited): nothing was sent, so
            // the default hostgroup may serve the read.
            Err(
                EngineError::NoBackend { .. }
                | EngineError::BackendUnavailable { .. }
                | EngineError::KeyRefused { .. },
            ) if route.fallback.is_some() => {
                let fallback = route.fallback.as_ref().expect("checked");
                let (c, _) = self
                    .shard
                    .backends
                    .checkout(fallback, self.key, route.access, false, &[])
                    .await?;
                Ok(c)
            }
            Err(e) => Err(e),
        }
    }

    /// The connection for a command: the pinned one, or one from the pool.
    /// `None` when the client was already told why there is none (the
    /// command's `total` bytes are then consumed).
    pub(super) async fn lease(&mut self, total: usize, f: &Forward) -> Result<Option<BackendConn>, End> {
        if f.diagnostics && f.pin.is_some() {
            // `GET DIAGNOSTICS @n = ...` pins (its variable lives on the
            // connection): on a replica lingering after a read's warnings,
            // the session's writes would follow it there. It goes to the
            // writers instead, as a prepare that pins does.
            self.let_go_of_a_lingering_reader();
        }
        if self.linger && !f.diagnostics && self.pin_reason.is_none() && !self.sticky() {
            // Kept only so the client could read its warnings (also in
            // statements Funnel does not class as diagnostics, such as
            // `SELECT @@warning_count, NOW()`): it serves the command only
            // where the command would be routed anyway. (It may be a
            // replica that served a read, and this command a write.) Nor
            // does a command that clears the diagnostics area anyway (it
            // opens a table) take it ahead of commands already waiting for
            // a connection of its pool: a client whose every such
            // statement warns or fails, in a loop, kept it from them for
            // ever (they got ERR 9001). Statements that keep the area
            // (`SET`, `SELECT` without a table) still keep the connection.
            // Nor, for `causal_reads: universal`, a read of data
            // (`Session::reads_data`) where reads wait (a replica, a
            // Galera node: `kept_where_reads_wait`): there it would not
            // wait for the writes committed since. Nor, for `true`, where
            // the read that left it there waited for nothing (it read no
            // table's data): the session's writes may not be there yet.
            let clears_diagnostics = f.name == "COM_QUERY" && !(f.opens_no_table || f.may_keep_diagnostics);
            let reads_data = (self.user.causal_universal || self.causal_unwaited)
                && self.reads_data(total, f)
                && self
                    .pinned
                    .as_ref()
                    .is_some_and(|c| self.kept_where_reads_wait(c));
            let fits = self.pinned.as_ref().is_some_and(|c| {
                (self.routes_to(c, total, f)
                    || self.describes_there(c, total, f)
                    || self.keeps_diagnostics_there(c, total, f))
                    && !(clears_diagnostics && self.shard.backends.others_wait_for(c))
                    && !reads_data
            });
            if !fits {
                self.linger = false;
                if let Some(conn) = self.pinned.take() {
                    self.shard.backends.release(conn);
                }
            }
        }
        // `causal_reads: universal`: a read that may land on a replica
        // first learns the writer's position, read after it arrived, and
        // before it takes a connection. Boxed: only for those users.
        let universal = match self.user.causal_universal && self.pinned.is_none() && !f.needs_pinned {
            true => match Box::pin(self.universal_position(total, f)).await {
                Ok(u) => u,
                Err(e) => {
                    self.buf.consume(total);
                    return self.reply_error(1, e).await.map(|_| None);
                }
            },
            false => None,
        };
        match self.pinned.take() {
            Some(c) => {
                // Until the command is on the connection's backend thread,
                // a `KILL QUERY` has no thread to name: it is noted as for
                // a command waiting for a connection, and stops this one
                // before or just after it is sent (`stop_requested`,
                // `kill_own_statement`).
                self.control.take_wait_interrupted();
                self.control.set_state(ClientState::Waiting);
                self.last_backend = c.backend.clone();
                Ok(Some(c))
            }
            None if f.needs_pinned => {
                // A statement id without the connection that prepared it.
                self.buf.consume(total);
                let err = ErrPacket::new(
                    1243,
                    "HY000",
                    format!("Unknown prepared statement handler given to {}", f.name),
                );
                self.send_own_err(1, &err).await.map(|_| None)
            }
            None => match self.checkout_routed(total, f, None).await {
                Ok(c) => {
                    let c = if self.user.causal_reads.is_some() {
                        // Boxed: only for users with causal reads.
                        match Box::pin(self.causal_read_conn(c, f, universal)).await {
                            Ok(c) => c,
                            Err(e) => {
                                self.buf.consume(total);
                                return self.reply_error(1, e).await.map(|_| None);
                            }
                        }
                    } else {
                        c
                    };
                    self.last_backend = c.backend.clone();
                    self.foreign_diagnostics = c.stale_diagnostics;
                    if !self.pins.contains(PinReason::PreviousStatementInfo) {
                        return Ok(Some(c));
                    }
                    // Pinned at a prepare that held no connection: the
                    // server will answer LAST_INSERT_ID() from this one,
                    // whose id is another client's. Nothing of the client's
                    // is on it yet, so setting it changes no other answer.
                    // Boxed: rare, and inline it would grow every command's
                    // future.
                    let Some(c) = Box::pin(self.sync_last_insert_id(c, total)).await? else {
                        return Ok(None);
                    };
                    self.insert_id_on_server = true;
                    Ok(Some(c))
                }
                Err(e) => {
                    self.buf.consume(total);
                    self.reply_error(1, e).await.map(|_| None)
                }
            },
        }
    }
}
