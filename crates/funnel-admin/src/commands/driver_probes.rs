//! The `SELECT @@...` probes that clients and drivers send right after
//! connecting (`@@version_comment`, `@@max_allowed_packet`, ...), answered
//! so ordinary tools can use the admin port.

use funnel_protocol::response::ErrPacket;

use crate::resultset::{Reply, Table};

/// Answers a `SELECT` of system variables or literals.
pub fn select(text: &str) -> Reply {
    let body = text[6..].trim();
    let body = match body.to_ascii_lowercase().find(" limit ") {
        Some(i) => &body[..i],
        None => body,
    };
    let items: Vec<&str> = body.split(',').map(str::trim).collect();
    let mut t = Table::new(&items);
    let mut row = Vec::new();
    for item in &items {
        let value = match item
            .to_ascii_lowercase()
            .trim_start_matches("@@session.")
            .trim_start_matches("@@")
        {
            "version_comment" => Some("Funnel admin".to_string()),
            "version" => Some(format!("5.5.5-funnel-admin-{}", env!("CARGO_PKG_VERSION"))),
            "max_allowed_packet" => Some(crate::server::MAX_PACKET.to_string()),
            "wait_timeout" | "interactive_timeout" => Some("28800".to_string()),
            "autocommit" => Some("1".to_string()),
            other if other.chars().all(|c| c.is_ascii_digit()) && !other.is_empty() => {
                Some(other.to_string())
            }
            other if item.starts_with("@@") => {
                let _ = other;
                None
            }
            _ => {
                return Reply::Err(ErrPacket::new(
                    1064,
                    "42000",
                    format!("The admin interface answers only system-variable probes, not '{text}'"),
                ))
            }
        };
        row.push(value);
    }
    t.rows.push(row);
    Reply::Table(t)
}
