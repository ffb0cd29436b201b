//! Which schemas a backend accepted recently, and the checks under way.
//!
//! A login that names a schema is checked once against a backend (`COM_INIT_DB`)
//! and the answer is trusted on this core for a minute. Logins that arrive
//! while a check of their schema runs wait for its answer instead of each
//! taking a backend connection: after a restart or a failover thousands of
//! clients reconnect at once, and one check per login would fill the backlog
//! with them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use funnel_protocol::response::ErrPacket;

use crate::oneshot;

/// How long a schema that a backend accepted is trusted for new logins
/// on this core without asking again.
const SCHEMA_TRUST: Duration = Duration::from_secs(60);

/// How long a schema stays trusted: [`SCHEMA_TRUST`], or in a test build
/// run with `FUNNEL_FAULT_INJECTION`, `FUNNEL_FAULT_SCHEMA_TRUST_MS`.
fn trust_for() -> Duration {
    #[cfg(feature = "fault-injection")]
    if std::env::var_os("FUNNEL_FAULT_INJECTION").is_some() {
        if let Some(ms) = std::env::var("FUNNEL_FAULT_SCHEMA_TRUST_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            return Duration::from_millis(ms);
        }
    }
    SCHEMA_TRUST
}

/// Above this many remembered schemas, expired ones are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// The answer of one schema check, shared with the logins that waited on it.
#[derive(Debug, Clone)]
pub enum SchemaVerdict {
    /// A backend accepted the schema.
    Accepted,
    /// The login is refused with this ERR. `engine` is true when Funnel
    /// made the error (no backend could answer), false when the backend
    /// refused the schema; the first kind is counted in the error stats.
    Refused { err: ErrPacket, engine: bool },
    /// The login running the check went away before it had an answer:
    /// whoever waited checks again.
    Abandoned,
}

/// What a login must do about its schema.
pub enum Next {
    /// Trusted: go on.
    Trusted,
    /// Run the check, then hand its verdict to [`CheckRun::finish`].
    Check(CheckRun),
    /// Another login is checking: await its verdict.
    Wait(oneshot::Receiver<SchemaVerdict>),
}

/// One core's trusted schemas and the checks running on it.
#[derive(Default)]
pub struct SchemaTrust {
    trusted: RefCell<HashMap<Vec<u8>, Instant>>,
    /// Per schema under check: the logins waiting for its verdict.
    running: RefCell<HashMap<Vec<u8>, Vec<oneshot::Sender<SchemaVerdict>>>>,
}

impl SchemaTrust {
    /// Says whether `schema` is trusted, is being checked, or needs a check
    /// by the caller (who then owns the check).
    pub fn next(self: &Rc<Self>, schema: &[u8]) -> Next {
        if self
            .trusted
            .borrow()
            .get(schema)
            .is_some_and(|t| t.elapsed() < trust_for())
        {
            return Next::Trusted;
        }
        let mut running = self.running.borrow_mut();
        if let Some(waiters) = running.get_mut(schema) {
            let (tx, rx) = oneshot::channel();
            waiters.push(tx);
            return Next::Wait(rx);
        }
        running.insert(schema.to_vec(), Vec::new());
        Next::Check(CheckRun {
            trust: self.clone(),
            schema: schema.to_vec(),
            done: false,
        })
    }

    /// True when a backend accepted `schema` for a login on this core
    /// before, however long ago (until it is pruned).
    pub fn accepted_before(&self, schema: &[u8]) -> bool {
        self.trusted.borrow().contains_key(schema)
    }

    fn finish(&self, schema: &[u8], verdict: &SchemaVerdict) {
        if matches!(verdict, SchemaVerdict::Accepted) {
            let mut trusted = self.trusted.borrow_mut();
            if trusted.len() > PRUNE_ABOVE {
                trusted.retain(|_, t| t.elapsed() < trust_for());
            }
            trusted.insert(schema.to_vec(), Instant::now());
        }
        let waiters = self.running.borrow_mut().remove(schema).unwrap_or_default();
        for tx in waiters {
            // A waiter whose client left has dropped its receiver: fine.
            let _ = tx.send(verdict.clone());
        }
    }
}

/// The check one login runs for everyone. Dropped without a verdict (its
/// client went away mid-check), it tells the waiters to check again.
pub struct CheckRun {
    trust: Rc<SchemaTrust>,
    schema: Vec<u8>,
    done: bool,
}

impl CheckRun {
    /// Records the verdict and hands it to every login that waited.
    pub fn finish(mut self, verdict: &SchemaVerdict) {
        self.done = true;
        self.trust.finish(&self.schema, verdict);
    }
}

impl Drop for CheckRun {
    fn drop(&mut self) {
        if !self.done {
            self.trust.finish(&self.schema, &SchemaVerdict::Abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err() -> ErrPacket {
        ErrPacket {
            code: 1049,
            sql_state: *b"42000",
            message: b"Unknown database 'x'".to_vec(),
        }
    }

    #[test]
    fn schema_trust_one_check_for_concurrent_logins_then_trusted() {
        let trust = Rc::new(SchemaTrust::default());
        let Next::Check(run) = trust.next(b"app") else {
            panic!("the first login checks")
        };
        let Next::Wait(a) = trust.next(b"app") else {
            panic!("the second waits")
        };
        let Next::Wait(b) = trust.next(b"app") else {
            panic!("the third waits")
        };
        // Another schema is checked on its own.
        assert!(matches!(trust.next(b"other"), Next::Check(_)));
        run.finish(&SchemaVerdict::Accepted);
        assert!(matches!(a.try_take(), Some(SchemaVerdict::Accepted)));
        assert!(matches!(b.try_take(), Some(SchemaVerdict::Accepted)));
        assert!(matches!(trust.next(b"app"), Next::Trusted));
    }

    #[test]
    fn schema_trust_refusal_reaches_waiters_and_is_not_trusted() {
        let trust = Rc::new(SchemaTrust::default());
        let Next::Check(run) = trust.next(b"x") else {
            panic!()
        };
        let Next::Wait(w) = trust.next(b"x") else { panic!() };
        run.finish(&SchemaVerdict::Refused {
            err: err(),
            engine: false,
        });
        match w.try_take() {
            Some(SchemaVerdict::Refused { err: e, engine }) => {
                assert_eq!(e.code, 1049);
                assert!(!engine);
            }
            other => panic!("{other:?}"),
        }
        // Refusals are not remembered: the next login checks again.
        assert!(matches!(trust.next(b"x"), Next::Check(_)));
    }

    #[test]
    fn schema_trust_abandoned_check_lets_a_waiter_take_over() {
        let trust = Rc::new(SchemaTrust::default());
        let Next::Check(run) = trust.next(b"app") else {
            panic!()
        };
        let Next::Wait(w) = trust.next(b"app") else {
            panic!()
        };
        drop(run);
        assert!(matches!(w.try_take(), Some(SchemaVerdict::Abandoned)));
        assert!(matches!(trust.next(b"app"), Next::Check(_)));
    }
}
