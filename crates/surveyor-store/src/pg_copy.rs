//! PostgreSQL's binary COPY format, written with sqlx's own binary encoders, so that each
//! value goes to the server exactly as a bound parameter of its type would.
//!
//! Format (PostgreSQL manual, "COPY", "Binary Format"): a signature, a flags word and an
//! empty header extension; per row the field count and per field its byte length (-1 for
//! NULL) and bytes; an end marker of -1.

use sqlx::encode::{Encode, IsNull};
use sqlx::postgres::PgArgumentBuffer;
use sqlx::Postgres;

use crate::StoreError;

/// What a binary COPY stream starts with: the signature, a flags word (no OIDs) and an empty
/// header extension.
pub(crate) const HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// What it ends with: a field count of -1.
pub(crate) const TRAILER: &[u8; 2] = &(-1_i16).to_be_bytes();

/// Rows in COPY's binary format: one piece of a `COPY … FROM STDIN (FORMAT binary)` stream,
/// which is [`HEADER`], any number of pieces, then [`TRAILER`].
pub(crate) struct BinaryRows {
    buf: PgArgumentBuffer,
    /// Fields per row: every row must have exactly this many.
    fields: i16,
    /// Fields written in the current row.
    written: i16,
}

impl BinaryRows {
    pub(crate) fn new(fields: i16) -> BinaryRows {
        BinaryRows {
            buf: PgArgumentBuffer::default(),
            fields,
            written: fields,
        }
    }

    /// Starts a row; the previous one must be complete.
    pub(crate) fn row(&mut self) {
        debug_assert_eq!(self.written, self.fields, "a row of the wrong width");
        self.buf.extend_from_slice(&self.fields.to_be_bytes());
        self.written = 0;
    }

    /// Appends one field. The value's Rust type must encode as the column's SQL type: binary
    /// COPY carries no type, the server reads the bytes with the column's receive function.
    pub(crate) fn field<'q, T>(&mut self, value: &T) -> Result<(), StoreError>
    where
        T: Encode<'q, Postgres>,
    {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        let is_null = value
            .encode_by_ref(&mut self.buf)
            .map_err(|e| StoreError::Unencodable {
                what: format!("a value for COPY: {e}").into(),
            })?;
        let len = match is_null {
            IsNull::Yes => {
                self.buf.truncate(at + 4);
                -1
            }
            IsNull::No => {
                i32::try_from(self.buf.len() - at - 4).map_err(|_| StoreError::Unencodable {
                    what: "a value for COPY of over 2 GiB".into(),
                })?
            }
        };
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        self.written += 1;
        Ok(())
    }

    /// The rows written, without header or trailer.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        debug_assert_eq!(self.written, self.fields, "a row of the wrong width");
        std::mem::take(&mut *self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_framed_as_the_manual_says() {
        let mut rows = BinaryRows::new(3);
        rows.row();
        rows.field(&7_i64).unwrap();
        rows.field(&None::<&str>).unwrap();
        rows.field(&"ab").unwrap();
        let mut bytes = HEADER.to_vec();
        bytes.extend(rows.finish());
        bytes.extend(TRAILER);
        let mut want = b"PGCOPY\n\xff\r\n\0".to_vec();
        want.extend([0, 0, 0, 0, 0, 0, 0, 0]); // flags, extension length
        want.extend([0, 3]); // three fields
        want.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]); // int8 7
        want.extend([0xff, 0xff, 0xff, 0xff]); // NULL
        want.extend([0, 0, 0, 2, b'a', b'b']); // text "ab"
        want.extend([0xff, 0xff]); // end
        assert_eq!(bytes, want);
    }

    #[test]
    fn an_address_is_encoded_as_inet_with_its_family() {
        let mut rows = BinaryRows::new(1);
        rows.row();
        rows.field(&"192.0.2.1".parse::<std::net::IpAddr>().unwrap())
            .unwrap();
        let bytes = rows.finish();
        // inet_recv: family (2 = IPv4), prefix bits, is_cidr, address length, address.
        assert_eq!(&bytes[2..], &[0, 0, 0, 8, 2, 32, 0, 4, 192, 0, 2, 1]);
    }
}
