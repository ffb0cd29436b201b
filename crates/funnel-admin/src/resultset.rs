//! Building the text result sets and OK/ERR packets the admin listener sends.

use bytes::BytesMut;
use funnel_protocol::flags::StatusFlags;
use funnel_protocol::framing::write_small_packet;
use funnel_protocol::response::{EofPacket, ErrPacket, OkPacket};
use funnel_protocol::resultset::{write_text_row, ColumnDefinition};
use funnel_protocol::wire::put_lenenc_int;
use funnel_protocol::Capabilities;

/// A table of text values (`None` is NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<Option<String>>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(columns: &[&str]) -> Self {
        Table {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row of values.
    pub fn row(&mut self, values: Vec<String>) {
        self.rows.push(values.into_iter().map(Some).collect());
    }
}

/// What an admin command answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A result set.
    Table(Table),
    /// OK with a message in its info field.
    Ok(String),
    /// An error.
    Err(ErrPacket),
}

/// Appends the packets of `reply` (sequence ids from 1) to `out`.
pub fn write_reply(out: &mut BytesMut, reply: &Reply, caps: Capabilities) {
    let status = StatusFlags::SERVER_STATUS_AUTOCOMMIT;
    match reply {
        Reply::Ok(info) => {
            let ok = OkPacket {
                status,
                info: info.clone().into_bytes(),
                ..Default::default()
            };
            write_small_packet(out, 1, |p| ok.write(p, caps));
        }
        Reply::Err(e) => {
            write_small_packet(out, 1, |p| e.write(p));
        }
        Reply::Table(t) => {
            let mut seq = write_small_packet(out, 1, |p| put_lenenc_int(p, t.columns.len() as u64));
            for c in &t.columns {
                seq = write_small_packet(out, seq, |p| ColumnDefinition::text(c).write(p));
            }
            let eof = EofPacket { warnings: 0, status };
            seq = write_small_packet(out, seq, |p| eof.write(p));
            for row in &t.rows {
                seq = write_small_packet(out, seq, |p| {
                    write_text_row(p, row.iter().map(|v| v.as_deref().map(str::as_bytes)))
                });
            }
            write_small_packet(out, seq, |p| eof.write(p));
        }
    }
}
