//! The response tracker: fed a server's response one physical packet at a
//! time, it knows what the response is and exactly where it ends, without
//! keeping any row. The engine streams every byte straight to the client and
//! asks the tracker only "is the backend connection free again?".
//!
//! What a response looks like depends on the command that asked for it
//! ([`Expect`]), on `CLIENT_DEPRECATE_EOF` (OK packets replace EOF packets)
//! and on `SERVER_MORE_RESULTS_EXISTS` (multi-statements and stored procedures
//! send several results, each ending in a packet with that flag set except the
//! last).

use crate::error::{ProtocolError, Result};
use crate::flags::{Capabilities, StatusFlags};
use crate::framing::MAX_CHUNK;
use crate::response::{
    parse_terminator, ErrPacket, OkPacket, EOF_HEADER, ERR_HEADER, LOCAL_INFILE_HEADER, OK_HEADER,
};
use crate::wire::Reader;

/// The shape of response a command expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// One OK, EOF or ERR (`COM_INIT_DB`, `COM_PING`, `COM_RESET_CONNECTION`,
    /// `COM_SET_OPTION`, `COM_STMT_RESET`, `COM_PROCESS_KILL`, ...).
    Status,
    /// OK, ERR, LOCAL INFILE request or result sets, possibly several
    /// (`COM_QUERY`, `COM_STMT_EXECUTE`).
    Results,
    /// `COM_STMT_PREPARE`: prepare-OK with parameter and column definitions, or ERR.
    Prepare,
    /// `COM_STMT_FETCH`: rows then a terminator, or ERR.
    Fetch,
    /// `COM_FIELD_LIST`: column definitions then a terminator, or ERR.
    FieldList,
    /// `COM_STATISTICS`: one string packet.
    Statistics,
}

/// What a `COM_STMT_PREPARE` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrepareOk {
    /// The server's statement id.
    pub stmt_id: u32,
    /// Result columns.
    pub columns: u16,
    /// Parameters.
    pub params: u16,
    /// Warnings.
    pub warnings: u16,
}

impl PrepareOk {
    /// Parses the first packet of a prepare response.
    pub fn parse(payload: &[u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        if r.u8("prepare OK header")? != OK_HEADER {
            return Err(ProtocolError::Unexpected("not a prepare OK"));
        }
        let stmt_id = r.u32("statement id")?;
        let columns = r.u16("column count")?;
        let params = r.u16("parameter count")?;
        let warnings = if r.remaining() >= 3 {
            r.skip(1, "reserved")?;
            r.u16("warnings")?
        } else {
            0
        };
        Ok(PrepareOk {
            stmt_id,
            columns,
            params,
            warnings,
        })
    }
}

/// What the tracker learned about a whole response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseSummary {
    /// The last status flags the server sent (ERR packets carry none, so after
    /// an ERR this is what was known before it).
    pub status: StatusFlags,
    /// The error, when the response ended with ERR.
    pub error: Option<ErrPacket>,
    /// Rows sent, over all result sets.
    pub rows: u64,
    /// Rows of the last result set (what `FOUND_ROWS()` then answers).
    pub last_result_rows: u64,
    /// Result sets sent (a plain OK counts as none).
    pub result_sets: u32,
    /// The column count of the first result set (0 when none came).
    pub first_result_columns: u64,
    /// True when the last result was a result set rather than an OK (then
    /// `ROW_COUNT()` answers -1).
    pub ended_with_result_set: bool,
    /// From the last OK: affected rows.
    pub affected_rows: u64,
    /// The last non-zero insert id of any OK: `LAST_INSERT_ID()` keeps it
    /// through the later statements of a multi-statement query.
    pub last_insert_id: u64,
    /// Warnings from the last OK or terminator.
    pub warnings: u16,
    /// Session-state data from every OK that carried some, in order.
    pub session_state: Vec<Vec<u8>>,
    /// The prepare result (for [`Expect::Prepare`]).
    pub prepared: Option<PrepareOk>,
    /// Set when the server asked for a LOCAL INFILE during this response.
    pub local_infile: bool,
    /// Some status of the response had `SERVER_SESSION_STATE_CHANGED`
    /// (not only the last: each result of a multi-statement query has its own).
    pub state_changed: bool,
}

/// What one packet meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Part of the response; more packets follow.
    More,
    /// The server asked for a LOCAL INFILE: the client now sends file packets
    /// ending with an empty one, then the server answers with OK or ERR (feed
    /// that to the tracker as usual).
    LocalInfile,
    /// The response is complete; the connection is free for the next command.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The first packet of a response (or of the next result set).
    First,
    /// Column definitions of a result set.
    Columns { left: u64 },
    /// The EOF after column definitions (without `CLIENT_DEPRECATE_EOF`).
    ColumnsEof,
    /// Rows until a terminator.
    Rows,
    /// The OK/ERR after the client's LOCAL INFILE data.
    InfileAnswer,
    /// Parameter definitions of a prepare response.
    PrepareParams { left: u16, columns: u16 },
    /// The EOF after parameter definitions.
    PrepareParamsEof { columns: u16 },
    /// Column definitions of a prepare response.
    PrepareColumns { left: u16 },
    /// The EOF after prepare column definitions.
    PrepareColumnsEof,
    /// Field-list column definitions until a terminator.
    FieldList,
    /// The response is over.
    Done,
}

/// Follows one command's response packet by packet.
#[derive(Debug, Clone)]
pub struct ResponseTracker {
    expect: Expect,
    caps: Capabilities,
    state: State,
    /// The previous physical packet was a full 16 MiB chunk, so this one
    /// continues it and has no header byte of its own.
    continuation: bool,
    /// The packet fed last carried status flags with `SERVER_SESSION_STATE_CHANGED`.
    flagged: bool,
    summary: ResponseSummary,
}

impl ResponseTracker {
    /// Starts tracking the response to a command. `caps` are the capabilities
    /// negotiated on the connection the response comes from; `status` the
    /// connection's status flags before the command.
    pub fn new(expect: Expect, caps: Capabilities, status: StatusFlags) -> Self {
        ResponseTracker {
            expect,
            caps,
            state: State::First,
            continuation: false,
            flagged: false,
            summary: ResponseSummary {
                status,
                ..Default::default()
            },
        }
    }

    /// True once the whole response was seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// What was learned so far.
    pub fn summary(&self) -> &ResponseSummary {
        &self.summary
    }

    /// True when the packet fed last had status flags saying the session
    /// state changed (an OK, or an EOF), so a proxy may have to rewrite it.
    pub fn fed_state_change(&self) -> bool {
        self.flagged
    }

    /// True when the next packet starts a result of `COM_QUERY` or an
    /// execute: an OK, an ERR, a LOCAL INFILE request, or a result set's
    /// column count. A proxy that changes column counts for its client
    /// (MariaDB's metadata cache) finds them here.
    pub fn expects_result_start(&self) -> bool {
        self.state == State::First && self.expect == Expect::Results && !self.continuation
    }

    /// Takes the summary out (call after [`Event::Done`]).
    pub fn into_summary(self) -> ResponseSummary {
        self.summary
    }

    /// Feeds one physical packet's payload. `payload_len_on_wire` equals
    /// `payload.len()` unless the caller only passes a prefix of a large packet
    /// (rows are never looked at past their first bytes), so pass the real
    /// length from the header.
    pub fn feed(&mut self, payload: &[u8], payload_len_on_wire: usize) -> Result<Event> {
        if self.state == State::Done {
            return Err(ProtocolError::Unexpected("packet after the end of a response"));
        }
        self.flagged = false;
        let continues = payload_len_on_wire == MAX_CHUNK;
        if std::mem::replace(&mut self.continuation, continues) {
            // The middle or end of a row over 16 MiB: nothing changes.
            return Ok(Event::More);
        }
        let header = *payload
            .first()
            .ok_or(ProtocolError::malformed("response", "empty packet"))?;
        // Only rows get 16 MiB long; anything else that size is hostile.
        let row_may_start =
            matches!(self.state, State::Rows) || (self.state == State::First && self.expect == Expect::Fetch);
        if continues && (!row_may_start || header == ERR_HEADER) {
            return Err(ProtocolError::malformed("response", "oversized non-row packet"));
        }
        self.process(header, payload, payload_len_on_wire)
    }

    /// Interprets one packet that starts a logical packet.
    fn process(&mut self, header: u8, payload: &[u8], wire_len: usize) -> Result<Event> {
        if header == ERR_HEADER && !self.in_definitions() {
            return self.finish_err(payload);
        }
        match self.state {
            State::First => self.on_first(header, payload, wire_len),
            State::Columns { left } => {
                self.state = if left > 1 {
                    State::Columns { left: left - 1 }
                } else {
                    self.after_columns()
                };
                Ok(Event::More)
            }
            State::ColumnsEof => {
                let status = self.expect_eof(payload)?;
                if status.contains(StatusFlags::SERVER_STATUS_CURSOR_EXISTS) && self.expect == Expect::Results
                {
                    // COM_STMT_EXECUTE opened a cursor: rows come with COM_STMT_FETCH.
                    return Ok(self.end_result(status));
                }
                self.state = State::Rows;
                Ok(Event::More)
            }
            State::Rows => {
                if self.is_terminator(header, wire_len) {
                    let status = self.terminator(payload)?;
                    return Ok(self.end_result(status));
                }
                self.summary.rows += 1;
                self.summary.last_result_rows += 1;
                Ok(Event::More)
            }
            State::InfileAnswer => self.on_ok(payload),
            State::PrepareParams { left, columns } => {
                self.state = if left > 1 {
                    State::PrepareParams {
                        left: left - 1,
                        columns,
                    }
                } else if self.deprecate_eof() {
                    self.after_prepare_params(columns)
                } else {
                    State::PrepareParamsEof { columns }
                };
                Ok(self.event_for_state())
            }
            State::PrepareParamsEof { columns } => {
                self.expect_eof(payload)?;
                self.state = self.after_prepare_params(columns);
                Ok(self.event_for_state())
            }
            State::PrepareColumns { left } => {
                self.state = if left > 1 {
                    State::PrepareColumns { left: left - 1 }
                } else if self.deprecate_eof() {
                    State::Done
                } else {
                    State::PrepareColumnsEof
                };
                Ok(self.event_for_state())
            }
            State::PrepareColumnsEof => {
                self.expect_eof(payload)?;
                self.state = State::Done;
                Ok(Event::Done)
            }
            State::FieldList => {
                if self.is_terminator(header, wire_len) {
                    self.summary.status = self.terminator(payload)?;
                    self.state = State::Done;
                    return Ok(Event::Done);
                }
                Ok(Event::More)
            }
            State::Done => unreachable!("checked above"),
        }
    }

    fn deprecate_eof(&self) -> bool {
        self.caps.contains(Capabilities::CLIENT_DEPRECATE_EOF)
    }

    /// Inside column or parameter definitions the server never sends ERR; a
    /// definition starts with the length-encoded catalog "def".
    fn in_definitions(&self) -> bool {
        matches!(
            self.state,
            State::Columns { .. } | State::PrepareParams { .. } | State::PrepareColumns { .. }
        )
    }

    /// A terminator by its header and its length on the wire (a row whose
    /// first value is 16 MiB or more also starts with 0xfe).
    fn is_terminator(&self, header: u8, wire_len: usize) -> bool {
        header == EOF_HEADER && (wire_len < 9 || (self.deprecate_eof() && wire_len < MAX_CHUNK))
    }

    fn after_columns(&self) -> State {
        if self.deprecate_eof() {
            State::Rows
        } else {
            State::ColumnsEof
        }
    }

    /// Parses a terminator and remembers its warnings (and, in OK form, its
    /// OK fields and session-state data).
    fn terminator(&mut self, payload: &[u8]) -> Result<StatusFlags> {
        if self.deprecate_eof() {
            return self.note_ok(payload);
        }
        let (status, warnings) = parse_terminator(payload, self.caps)?;
        self.summary.warnings = warnings;
        self.note_status(status);
        Ok(status)
    }

    fn event_for_state(&self) -> Event {
        if self.state == State::Done {
            Event::Done
        } else {
            Event::More
        }
    }

    fn after_prepare_params(&self, columns: u16) -> State {
        if columns > 0 {
            State::PrepareColumns { left: columns }
        } else {
            State::Done
        }
    }

    fn on_first(&mut self, header: u8, payload: &[u8], wire_len: usize) -> Result<Event> {
        match self.expect {
            Expect::Statistics => {
                self.state = State::Done;
                Ok(Event::Done)
            }
            Expect::Status => match header {
                OK_HEADER => self.on_ok(payload),
                EOF_HEADER => {
                    let status = self.terminator(payload)?;
                    Ok(self.end_result(status))
                }
                _ => Err(ProtocolError::Unexpected("expected OK or ERR")),
            },
            Expect::Prepare => {
                let p = PrepareOk::parse(payload)?;
                self.summary.prepared = Some(p);
                self.summary.warnings = p.warnings;
                self.state = if p.params > 0 {
                    State::PrepareParams {
                        left: p.params,
                        columns: p.columns,
                    }
                } else {
                    self.after_prepare_params(p.columns)
                };
                Ok(self.event_for_state())
            }
            Expect::Fetch => {
                self.state = State::Rows;
                self.process(header, payload, wire_len)
            }
            Expect::FieldList => {
                self.state = State::FieldList;
                self.process(header, payload, wire_len)
            }
            Expect::Results => match header {
                OK_HEADER => self.on_ok(payload),
                LOCAL_INFILE_HEADER => {
                    self.summary.local_infile = true;
                    self.state = State::InfileAnswer;
                    Ok(Event::LocalInfile)
                }
                _ => {
                    let mut r = Reader::new(payload);
                    let columns = r.lenenc_int("column count")?;
                    // MariaDB's metadata cache: a flag says whether definitions follow.
                    let metadata_follows = !self.caps.contains(Capabilities::MARIADB_CLIENT_CACHE_METADATA)
                        || r.u8("metadata follows")? != 0;
                    if columns == 0 || !r.is_empty() {
                        return Err(ProtocolError::malformed("result set", "bad column count packet"));
                    }
                    if self.summary.result_sets == 0 {
                        self.summary.first_result_columns = columns;
                    }
                    self.summary.result_sets += 1;
                    self.summary.last_result_rows = 0;
                    self.summary.ended_with_result_set = true;
                    self.state = if metadata_follows {
                        State::Columns { left: columns }
                    } else {
                        self.after_columns()
                    };
                    Ok(Event::More)
                }
            },
        }
    }

    fn on_ok(&mut self, payload: &[u8]) -> Result<Event> {
        if payload.first() == Some(&ERR_HEADER) {
            return self.finish_err(payload);
        }
        let status = self.note_ok(payload)?;
        self.summary.ended_with_result_set = false;
        Ok(self.end_result(status))
    }

    fn note_ok(&mut self, payload: &[u8]) -> Result<StatusFlags> {
        let ok = OkPacket::parse(payload, self.caps)?;
        self.summary.affected_rows = ok.affected_rows;
        if ok.last_insert_id != 0 {
            self.summary.last_insert_id = ok.last_insert_id;
        }
        self.summary.warnings = ok.warnings;
        if let Some(state) = ok.session_state {
            self.summary.session_state.push(state);
        }
        self.note_status(ok.status);
        Ok(ok.status)
    }

    fn note_status(&mut self, status: StatusFlags) {
        if status.contains(StatusFlags::SERVER_SESSION_STATE_CHANGED) {
            self.flagged = true;
            self.summary.state_changed = true;
        }
    }

    /// Ends one result (or OK); the response goes on when more results exist.
    fn end_result(&mut self, status: StatusFlags) -> Event {
        self.summary.status = status;
        if status.more_results() && matches!(self.expect, Expect::Results) {
            self.state = State::First;
            Event::More
        } else {
            self.state = State::Done;
            Event::Done
        }
    }

    fn expect_eof(&mut self, payload: &[u8]) -> Result<StatusFlags> {
        if payload.first() != Some(&EOF_HEADER) || payload.len() >= 9 {
            return Err(ProtocolError::Unexpected("expected EOF after definitions"));
        }
        let (status, _) = parse_terminator(payload, self.caps)?;
        self.summary.status = status;
        self.note_status(status);
        Ok(status)
    }

    fn finish_err(&mut self, payload: &[u8]) -> Result<Event> {
        self.summary.error = Some(ErrPacket::parse(payload)?);
        self.state = State::Done;
        Ok(Event::Done)
    }
}

#[cfg(test)]
mod tests;
