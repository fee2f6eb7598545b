//! Builds uncompressed v2 batches for records the broker writes itself: its internal
//! logs' events and transaction markers (control batches). Clients' batches are never
//! rebuilt: they are stored as sent.

use super::{
    ATTR_CONTROL, ATTR_TRANSACTIONAL, HEADER_BYTES, MAGIC_V2, OFFSET_ATTRIBUTES,
    OFFSET_BATCH_LENGTH, OFFSET_CRC, OFFSET_MAGIC, OFFSET_RECORD_COUNT,
};

/// Accumulates records into one batch with base offset 0 (the log assigns the real one).
#[derive(Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    base_timestamp: i64,
    max_timestamp: i64,
    count: i32,
    attributes: i16,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
}

impl BatchBuilder {
    /// An empty batch whose records are stamped relative to `base_timestamp` (ms).
    pub fn new(base_timestamp: i64) -> Self {
        BatchBuilder {
            buf: vec![0; HEADER_BYTES],
            base_timestamp,
            max_timestamp: base_timestamp,
            count: 0,
            attributes: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }

    /// A data batch of an idempotent (or, with `transactional`, transactional)
    /// producer whose first record has sequence `base_sequence`.
    pub fn producer(
        base_timestamp: i64,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
        transactional: bool,
    ) -> Self {
        BatchBuilder {
            attributes: if transactional { ATTR_TRANSACTIONAL } else { 0 },
            producer_id,
            producer_epoch,
            base_sequence,
            ..Self::new(base_timestamp)
        }
    }

    /// A control batch of producer `producer_id` (transactional, no sequence), for the
    /// commit or abort marker the transaction coordinator writes.
    pub fn control(base_timestamp: i64, producer_id: i64, producer_epoch: i16) -> Self {
        BatchBuilder {
            attributes: ATTR_TRANSACTIONAL | ATTR_CONTROL,
            producer_id,
            producer_epoch,
            ..Self::new(base_timestamp)
        }
    }

    /// Appends a record with this key, value and timestamp, and no headers.
    pub fn push(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, timestamp: i64) {
        let mut body =
            Vec::with_capacity(16 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len));
        body.push(0); // record attributes
        put_varlong(&mut body, timestamp - self.base_timestamp);
        put_varlong(&mut body, i64::from(self.count));
        put_bytes(&mut body, key);
        put_bytes(&mut body, value);
        put_varlong(&mut body, 0); // header count
        put_varlong(&mut self.buf, body.len() as i64);
        self.buf.extend_from_slice(&body);
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.count += 1;
    }

    /// Number of records pushed so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The finished batch: header filled in, CRC computed.
    pub fn finish(mut self) -> Vec<u8> {
        let count = self.count;
        let (base_timestamp, max_timestamp) = (self.base_timestamp, self.max_timestamp);
        let (attributes, producer_id, producer_epoch, base_sequence) = (
            self.attributes,
            self.producer_id,
            self.producer_epoch,
            self.base_sequence,
        );
        let buf = &mut self.buf;
        let batch_length = (buf.len() - 12) as i32;
        buf[OFFSET_BATCH_LENGTH..OFFSET_BATCH_LENGTH + 4]
            .copy_from_slice(&batch_length.to_be_bytes());
        buf[12..16].copy_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        buf[OFFSET_MAGIC] = MAGIC_V2 as u8;
        let mut at = OFFSET_ATTRIBUTES;
        let mut put = |bytes: &[u8]| {
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&attributes.to_be_bytes()); // no codec, CreateTime
        put(&(count - 1).max(0).to_be_bytes()); // last offset delta
        put(&base_timestamp.to_be_bytes());
        put(&max_timestamp.to_be_bytes());
        put(&producer_id.to_be_bytes());
        put(&producer_epoch.to_be_bytes());
        put(&base_sequence.to_be_bytes());
        put(&count.to_be_bytes());
        debug_assert_eq!(at, OFFSET_RECORD_COUNT + 4);
        let crc = crc32c::crc32c(&buf[OFFSET_ATTRIBUTES..]);
        buf[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        self.buf
    }
}

/// Writes a zigzag varint, as Kafka encodes record fields.
pub(super) fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Writes a length-prefixed byte string, length -1 for null.
pub(super) fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        None => put_varlong(out, -1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::records::Records;
    use crate::batch::BatchHeader;

    #[test]
    fn built_batch_validates_and_iterates() {
        let mut builder = BatchBuilder::new(1_000);
        builder.push(Some(b"k1"), Some(b"v1"), 1_000);
        builder.push(None, Some(&[7u8; 300]), 1_005);
        builder.push(Some(b"k3"), None, 999);
        let batch = builder.finish();
        let header = BatchHeader::parse(&batch).expect("valid batch");
        assert_eq!(header.record_count, 3);
        assert_eq!(header.last_offset(), 2);
        assert_eq!(header.max_timestamp, 1_005);
        let decoded = Records::new(&batch, 1 << 20).expect("records");
        let records: Vec<_> = decoded.iter().collect::<Result<_, _>>().expect("decode");
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].key, Some(&b"k1"[..]));
        assert_eq!(records[1].value, Some(&[7u8; 300][..]));
        assert_eq!(records[1].timestamp, 1_005);
        assert_eq!(records[2].value, None);
        assert_eq!(records[2].timestamp, 999);
        assert_eq!(records[2].offset, 2);
    }
}
