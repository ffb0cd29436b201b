//! Result-set pieces a client needs to read rows: `ColumnDefinition41` and
//! text-protocol rows. The proxy's data path never decodes rows; this is for
//! Funnel's own locally answered queries, the admin interface and tests.

use bytes::{BufMut, BytesMut};

use crate::error::Result;
use crate::flags::Capabilities;
use crate::wire::{put_lenenc_int, put_lenenc_str, Reader};

/// Column type byte for `VARCHAR`/`VAR_STRING` (what Funnel uses for its own result sets).
pub const MYSQL_TYPE_VAR_STRING: u8 = 0xfd;
/// Column type byte for `LONGLONG`.
pub const MYSQL_TYPE_LONGLONG: u8 = 0x08;

/// One column's metadata (`ColumnDefinition41`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ColumnDefinition {
    /// Schema of the table.
    pub schema: Vec<u8>,
    /// Table alias.
    pub table: Vec<u8>,
    /// Table name.
    pub org_table: Vec<u8>,
    /// Column alias.
    pub name: Vec<u8>,
    /// Column name.
    pub org_name: Vec<u8>,
    /// Collation id of the column.
    pub charset: u16,
    /// Maximum display length.
    pub column_length: u32,
    /// Type byte.
    pub column_type: u8,
    /// Column flags.
    pub flags: u16,
    /// Decimals.
    pub decimals: u8,
}

impl ColumnDefinition {
    /// Parses a `ColumnDefinition41` payload. With MariaDB's
    /// `MARIADB_CLIENT_EXTENDED_METADATA` a length-encoded block of extended
    /// type information sits before the fixed-length fields.
    pub fn parse(payload: &[u8], caps: Capabilities) -> Result<Self> {
        let mut r = Reader::new(payload);
        let _catalog = r.lenenc_str("catalog")?;
        let schema = r.lenenc_str("schema")?.to_vec();
        let table = r.lenenc_str("table")?.to_vec();
        let org_table = r.lenenc_str("org_table")?.to_vec();
        let name = r.lenenc_str("name")?.to_vec();
        let org_name = r.lenenc_str("org_name")?.to_vec();
        if caps.contains(Capabilities::MARIADB_CLIENT_EXTENDED_METADATA) {
            let _extended_type_info = r.lenenc_str("extended metadata")?;
        }
        let _fixed_len = r.lenenc_int("fixed length")?;
        Ok(ColumnDefinition {
            schema,
            table,
            org_table,
            name,
            org_name,
            charset: r.u16("character set")?,
            column_length: r.u32("column length")?,
            column_type: r.u8("column type")?,
            flags: r.u16("flags")?,
            decimals: r.u8("decimals")?,
        })
    }

    /// A text column Funnel describes itself (admin and local answers).
    pub fn text(name: &str) -> Self {
        ColumnDefinition {
            name: name.as_bytes().to_vec(),
            org_name: name.as_bytes().to_vec(),
            charset: crate::charset::UTF8MB4_GENERAL_CI,
            column_length: 1024,
            column_type: MYSQL_TYPE_VAR_STRING,
            ..Default::default()
        }
    }

    /// An integer column Funnel describes itself.
    pub fn integer(name: &str) -> Self {
        ColumnDefinition {
            name: name.as_bytes().to_vec(),
            org_name: name.as_bytes().to_vec(),
            charset: crate::charset::BINARY,
            column_length: 21,
            column_type: MYSQL_TYPE_LONGLONG,
            flags: 0x80 | 0x01, // BINARY_FLAG | NOT_NULL_FLAG
            ..Default::default()
        }
    }

    /// Appends the payload.
    pub fn write(&self, buf: &mut BytesMut) {
        put_lenenc_str(buf, b"def");
        put_lenenc_str(buf, &self.schema);
        put_lenenc_str(buf, &self.table);
        put_lenenc_str(buf, &self.org_table);
        put_lenenc_str(buf, &self.name);
        put_lenenc_str(buf, &self.org_name);
        put_lenenc_int(buf, 0x0c);
        buf.put_u16_le(self.charset);
        buf.put_u32_le(self.column_length);
        buf.put_u8(self.column_type);
        buf.put_u16_le(self.flags);
        buf.put_u8(self.decimals);
        buf.put_u16_le(0);
    }
}

/// Decodes a text-protocol row of `columns` values (`None` is SQL NULL).
pub fn parse_text_row(payload: &[u8], columns: usize) -> Result<Vec<Option<Vec<u8>>>> {
    let mut r = Reader::new(payload);
    let mut out = Vec::with_capacity(columns.min(4096));
    for _ in 0..columns {
        out.push(r.lenenc_str_or_null("row value")?.map(<[u8]>::to_vec));
    }
    Ok(out)
}

/// Appends a text-protocol row.
pub fn write_text_row<'a>(buf: &mut BytesMut, values: impl IntoIterator<Item = Option<&'a [u8]>>) {
    for v in values {
        match v {
            Some(v) => put_lenenc_str(buf, v),
            None => buf.put_u8(0xfb),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_column_definition_golden() {
        // The `name` column of `SELECT id, name, n FROM t` (login_and_queries.txt).
        let p = crate::testdata::hex(
            "0364656605636170646201740174046e616d65046e616d65000c21003c000000fd0000000000",
        );
        let c = ColumnDefinition::parse(&p, Capabilities::MARIADB_CLIENT_EXTENDED_METADATA).unwrap();
        assert_eq!(c.schema, b"capdb");
        assert_eq!(c.name, b"name");
        assert_eq!(c.charset, 33);
        assert_eq!(c.column_length, 60);
        assert_eq!(c.column_type, MYSQL_TYPE_VAR_STRING);
        let mut out = BytesMut::new();
        c.write(&mut out);
        // Catalog is always "def"; fixed part round-trips byte for byte.
        assert_eq!(ColumnDefinition::parse(&out, Capabilities::EMPTY).unwrap(), c);
    }

    #[test]
    fn protocol_text_row_golden_with_null() {
        let row = parse_text_row(&[0x01, b'2', 0x04, b'b', b'e', b't', b'a', 0xfb], 3).unwrap();
        assert_eq!(row, vec![Some(b"2".to_vec()), Some(b"beta".to_vec()), None]);
        assert!(parse_text_row(&[0x01], 1).is_err());
        let mut b = BytesMut::new();
        write_text_row(&mut b, [Some(&b"2"[..]), Some(&b"beta"[..]), None]);
        assert_eq!(&b[..], &[0x01, b'2', 0x04, b'b', b'e', b't', b'a', 0xfb]);
    }
}
