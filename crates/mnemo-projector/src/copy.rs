//! PostgreSQL's binary `COPY` format, written into one buffer.
//!
//! A bulk write encodes its rows here, in memory, then sends the buffer as
//! the whole of a `COPY … FROM STDIN (FORMAT binary)`: PostgreSQL parses
//! it at its own pace without waiting on this process between rows.
//!
//! The format (PostgreSQL docs, "COPY", *Binary Format*): a signature and
//! two 32-bit header fields, then per row a 16-bit field count and per
//! field a 32-bit length followed by the value in its type's binary
//! (`send`) representation, all big-endian; a 16-bit -1 ends the data.
//! Only the types the projections copy are here.

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Rows in binary `COPY` format.
pub struct BinaryRows {
    buf: BytesMut,
    fields: i16,
    rows: usize,
}

impl BinaryRows {
    /// Rows of `fields` columns; `capacity`: bytes to reserve.
    pub fn new(fields: i16, capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(capacity + SIGNATURE.len() + 10);
        buf.put_slice(SIGNATURE);
        buf.put_i32(0); // flags: no OIDs
        buf.put_i32(0); // no header extension
        Self {
            buf,
            fields,
            rows: 0,
        }
    }

    /// Starts a row: write exactly `fields` values next, in column order.
    pub fn row(&mut self) -> &mut Self {
        self.buf.put_i16(self.fields);
        self.rows += 1;
        self
    }

    /// A `text` value (UTF-8 bytes).
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    /// A `bytea` value.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        // A field longer than i32::MAX cannot be stored by PostgreSQL
        // anyway (1 GB limit); vectors and chunk texts are kilobytes.
        self.buf.put_i32(value.len() as i32);
        self.buf.put_slice(value);
        self
    }

    /// A `bytea` value holding `values` as little-endian f32s (how vectors
    /// are stored), written straight from the floats.
    pub fn f32s_le(&mut self, values: &[f32]) -> &mut Self {
        self.buf.put_i32((values.len() * 4) as i32);
        self.buf.reserve(values.len() * 4);
        for v in values {
            self.buf.put_f32_le(*v);
        }
        self
    }

    /// An `integer` (int4) value.
    pub fn int4(&mut self, value: i32) -> &mut Self {
        self.buf.put_i32(4);
        self.buf.put_i32(value);
        self
    }

    /// A `uuid` value.
    pub fn uuid(&mut self, value: &Uuid) -> &mut Self {
        self.buf.put_i32(16);
        self.buf.put_slice(value.as_bytes());
        self
    }

    /// Rows written so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The whole `COPY` data, trailer included.
    pub fn finish(mut self) -> Bytes {
        self.buf.put_i16(-1);
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_laid_out_as_postgresql_reads_them() {
        let mut rows = BinaryRows::new(3, 0);
        let id = Uuid::from_bytes([7; 16]);
        rows.row().text("ab").int4(-2).uuid(&id);
        rows.row().f32s_le(&[1.0]).bytes(&[9]).text("");
        assert_eq!(rows.len(), 2);
        let b = rows.finish();
        let mut want = SIGNATURE.to_vec();
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[0, 3]);
        want.extend_from_slice(&[0, 0, 0, 2, b'a', b'b']);
        want.extend_from_slice(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xfe]);
        want.extend_from_slice(&[0, 0, 0, 16]);
        want.extend_from_slice(&[7; 16]);
        want.extend_from_slice(&[0, 3]);
        want.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0x80, 0x3f]);
        want.extend_from_slice(&[0, 0, 0, 1, 9]);
        want.extend_from_slice(&[0, 0, 0, 0]);
        want.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(&b[..], &want[..]);
    }
}
