//! Answering a plain `SET` (see `Forward::is_plain_set`) from the reply a
//! backend gave to the same `SET` before (`crate::learned_sets`), without
//! taking a backend connection. The session records the variables as for
//! a forwarded `SET`, and its next connection gets them in the sync.

use funnel_protocol::tracker::ResponseSummary;
use funnel_protocol::Capabilities;

use super::command::Forward;
use super::variables;
use super::{End, Session};
use crate::digest::AnsweredBy;
use crate::learned_sets::{LearnedReply, SetKey, MAX_TEXT};
use crate::stats::Stats;

impl Session {
    /// The key under which this `SET` is learned or answered, when the
    /// session may do either: it holds no connection (none pinned, none
    /// lingering for `SHOW WARNINGS`), and knows its status as the server
    /// would report it. Not for a client that tracks session state when a
    /// value comes from outside the session (`DEFAULT`, `SET CHARACTER
    /// SET`): the OK shows it.
    pub(super) fn local_set_key(&self, total: usize, f: &Forward) -> Option<SetKey> {
        if !f.is_plain_set()
            || self.pinned.is_some()
            || self.sticky()
            || self.tx_lost
            || self.sql_mode_unknown
            || !self.long_data.is_empty()
        {
            return None;
        }
        // The OK's session-tracking data shows the values the `SET` gave:
        // one taken from outside the session may be another now.
        if self.caps.contains(Capabilities::CLIENT_SESSION_TRACK)
            && f.set_vars.iter().flatten().any(variables::takes_outside_value)
        {
            return None;
        }
        let text = self.buf.bytes().get(5..total).filter(|t| t.len() <= MAX_TEXT)?;
        let route = self.route(total, f);
        Some(SetKey::new(
            route.hostgroup,
            self.caps,
            self.key,
            self.client_status(),
            &self.vars,
            text,
        ))
    }

    /// Answers the buffered `SET` with `reply`, and records what it set
    /// as [`Session::settle`] does for the same OK from a backend.
    pub(super) async fn answer_set_locally(
        &mut self,
        total: usize,
        f: &Forward,
        reply: LearnedReply,
    ) -> Result<(), End> {
        self.note_digest(total);
        self.buf.consume(total);
        Stats::bump(&self.shard.stats.sets_answered_locally);
        if let Some(vars) = &f.set_vars {
            self.vars.apply(vars, self.shard.utf8_alias);
        }
        let summary = ResponseSummary {
            status: reply.status,
            ..Default::default()
        };
        self.last_status = reply.status;
        self.last_result_columns = 0;
        self.last_succeeded = true;
        self.note_results(&summary, f);
        self.note_diagnostics(f, 0, true);
        self.record_digest(0, false, AnsweredBy::Funnel);
        super::write_own(&mut self.stream, &reply.packet, &self.shard, &self.control)
            .await
            .map_err(|_| End::Closed)
    }
}
