//! Records inside a v2 batch: varint decoding, headers, and decompression.
//!
//! ```text
//! record:  length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//!          keyLength varint | key | valueLength varint | value
//!          headerCount varint | { keyLength varint | key | valueLength varint | value }*
//! ```
//!
//! Decompressed sizes are bounded by the caller's `decompressed_bytes_max`, so a
//! small compressed batch cannot expand into unbounded memory.

use std::borrow::Cow;
use std::io::Read;

use super::{BatchHeader, Compression, TimestampType, HEADER_BYTES};
use crate::error::BatchError;

/// One record, borrowing its key, value and headers from the (decompressed) batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Absolute offset (batch base offset + delta).
    pub offset: i64,
    /// Timestamp: base + delta for CreateTime, the batch max timestamp for LogAppendTime.
    pub timestamp: i64,
    /// The key, or `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The value, or `None` for a null value (a tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers in order: `(key, value)`.
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// The records of one batch, decompressed if needed. Iterate with [`Records::iter`].
pub struct Records<'a> {
    header: BatchHeader,
    body: Cow<'a, [u8]>,
}

impl<'a> Records<'a> {
    /// Prepares the records of a validated batch (`batch` starts at its base offset
    /// field and holds at least the whole batch), decompressing at most
    /// `decompressed_bytes_max` bytes.
    pub fn new(batch: &'a [u8], decompressed_bytes_max: usize) -> Result<Self, BatchError> {
        let header = BatchHeader::parse_unchecked(batch)?;
        let size = header.size_bytes();
        if batch.len() < size {
            return Err(BatchError::Truncated {
                needed: size,
                available: batch.len(),
            });
        }
        let raw = &batch[HEADER_BYTES..size];
        let body = decompress(header.compression(), raw, decompressed_bytes_max)?;
        Ok(Records { header, body })
    }

    /// The batch header the records belong to.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Iterates the records; yields an error (and then stops) on a malformed record.
    pub fn iter(&self) -> impl Iterator<Item = Result<Record<'_>, BatchError>> + '_ {
        let mut reader = Reader {
            buf: &self.body,
            at: 0,
        };
        let mut index = 0usize;
        let count = self.header.record_count as usize;
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed || index >= count {
                if !failed && index == count && reader.at != reader.buf.len() {
                    failed = true;
                    return Some(Err(BatchError::MalformedRecord {
                        index,
                        reason: "trailing bytes after the last record",
                    }));
                }
                return None;
            }
            let result = parse_record(&mut reader, &self.header)
                .map_err(|reason| BatchError::MalformedRecord { index, reason });
            failed = result.is_err();
            index += 1;
            Some(result)
        })
    }
}

fn parse_record<'b>(
    reader: &mut Reader<'b>,
    header: &BatchHeader,
) -> Result<Record<'b>, &'static str> {
    let length = reader.varint()?;
    if length < 0 {
        return Err("negative record length");
    }
    let end = reader
        .at
        .checked_add(length as usize)
        .filter(|end| *end <= reader.buf.len())
        .ok_or("record length past the end of the batch")?;
    let mut body = Reader {
        buf: &reader.buf[..end],
        at: reader.at,
    };
    let _attributes = body.bytes(1)?;
    let timestamp_delta = body.varlong()?;
    let offset_delta = body.varint()?;
    let key = body.nullable_bytes()?;
    let value = body.nullable_bytes()?;
    let header_count = body.varint()?;
    if header_count < 0 {
        return Err("negative header count");
    }
    // Each header takes at least two bytes, which bounds the allocation.
    if header_count as usize > (end - body.at) / 2 {
        return Err("header count past the end of the record");
    }
    let mut headers = Vec::with_capacity(header_count as usize);
    for _ in 0..header_count {
        let key = body.nullable_bytes()?.ok_or("null header key")?;
        let value = body.nullable_bytes()?;
        headers.push((key, value));
    }
    if body.at != end {
        return Err("record length does not match its fields");
    }
    reader.at = end;
    let timestamp = match header.timestamp_type() {
        TimestampType::LogAppendTime => header.max_timestamp,
        TimestampType::CreateTime => header.base_timestamp.wrapping_add(timestamp_delta),
    };
    Ok(Record {
        offset: header.base_offset.wrapping_add(i64::from(offset_delta)),
        timestamp,
        key,
        value,
        headers,
    })
}

struct Reader<'b> {
    buf: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn bytes(&mut self, n: usize) -> Result<&'b [u8], &'static str> {
        let end = self.at.checked_add(n).ok_or("length overflow")?;
        let out = self
            .buf
            .get(self.at..end)
            .ok_or("field past the end of the record")?;
        self.at = end;
        Ok(out)
    }

    fn varlong(&mut self) -> Result<i64, &'static str> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self
                .buf
                .get(self.at)
                .ok_or("varint past the end of the record")?;
            self.at += 1;
            if shift == 63 && byte > 1 {
                return Err("varint too long");
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                // Zig-zag decoding.
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err("varint too long")
    }

    fn varint(&mut self) -> Result<i32, &'static str> {
        let value = self.varlong()?;
        i32::try_from(value).map_err(|_| "varint out of 32-bit range")
    }

    fn nullable_bytes(&mut self) -> Result<Option<&'b [u8]>, &'static str> {
        let length = self.varint()?;
        match length {
            -1 => Ok(None),
            n if n < 0 => Err("negative length"),
            n => self.bytes(n as usize).map(Some),
        }
    }
}

/// Xerial snappy framing (written by the Java client): magic, version, compat version,
/// then blocks of `u32 length | raw snappy`.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";

/// Decompresses `raw` with `codec`, producing at most `limit` bytes.
pub fn decompress(
    codec: Compression,
    raw: &[u8],
    limit: usize,
) -> Result<Cow<'_, [u8]>, BatchError> {
    let fail = |reason: String| BatchError::Decompression {
        codec: codec.name(),
        reason,
    };
    match codec {
        Compression::None => Ok(Cow::Borrowed(raw)),
        Compression::Gzip => {
            read_bounded(flate2::read::MultiGzDecoder::new(raw), limit).map_err(fail)
        }
        Compression::Lz4 => {
            read_bounded(lz4_flex::frame::FrameDecoder::new(raw), limit).map_err(fail)
        }
        Compression::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::with_buffer(raw).map_err(|e| fail(e.to_string()))?;
            read_bounded(decoder, limit).map_err(fail)
        }
        Compression::Snappy => snappy(raw, limit).map(Cow::Owned).map_err(fail),
    }
}

fn read_bounded(reader: impl Read, limit: usize) -> Result<Cow<'static, [u8]>, String> {
    let mut out = Vec::new();
    let read = reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if read > limit {
        return Err(format!("decompressed size exceeds {limit} bytes"));
    }
    Ok(Cow::Owned(out))
}

fn snappy(raw: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let block = |input: &[u8], out: &mut Vec<u8>| -> Result<(), String> {
        let size = snap::raw::decompress_len(input).map_err(|e| e.to_string())?;
        if out.len() + size > limit {
            return Err(format!("decompressed size exceeds {limit} bytes"));
        }
        let start = out.len();
        out.resize(start + size, 0);
        snap::raw::Decoder::new()
            .decompress(input, &mut out[start..])
            .map_err(|e| e.to_string())?;
        Ok(())
    };
    let mut out = Vec::new();
    if raw.len() >= 16 && raw.starts_with(XERIAL_MAGIC) {
        let mut at = 16; // magic (8) + version (4) + compatible version (4)
        while at < raw.len() {
            let length_bytes = raw.get(at..at + 4).ok_or("truncated xerial block length")?;
            let length = u32::from_be_bytes([
                length_bytes[0],
                length_bytes[1],
                length_bytes[2],
                length_bytes[3],
            ]) as usize;
            at += 4;
            let chunk = at
                .checked_add(length)
                .and_then(|end| raw.get(at..end))
                .ok_or("truncated xerial block")?;
            block(chunk, &mut out)?;
            at += length;
        }
    } else {
        block(raw, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zigzag(mut out: Vec<u8>, value: i64) -> Vec<u8> {
        let mut v = ((value << 1) ^ (value >> 63)) as u64;
        loop {
            if v < 0x80 {
                out.push(v as u8);
                return out;
            }
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
    }

    #[test]
    fn varlong_round_trips_extremes() {
        for value in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let buf = zigzag(Vec::new(), value);
            let mut reader = Reader { buf: &buf, at: 0 };
            assert_eq!(reader.varlong(), Ok(value), "value {value}");
            assert_eq!(reader.at, buf.len());
        }
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let buf = [0xffu8; 11];
        let mut reader = Reader { buf: &buf, at: 0 };
        assert!(reader.varlong().is_err());
    }

    #[test]
    fn decompression_is_bounded() {
        let big = vec![7u8; 100_000];
        let compressed = lz4_flex::frame::FrameEncoder::new(Vec::new());
        let mut encoder = compressed;
        std::io::Write::write_all(&mut encoder, &big).expect("in-memory write");
        let frame = encoder.finish().expect("in-memory lz4");
        assert!(decompress(Compression::Lz4, &frame, 1000).is_err());
        assert_eq!(
            decompress(Compression::Lz4, &frame, 100_000)
                .expect("fits")
                .len(),
            100_000
        );
    }

    #[test]
    fn snappy_accepts_raw_and_xerial_framing() {
        let data = b"hello hello hello hello snappy".to_vec();
        let raw = snap::raw::Encoder::new()
            .compress_vec(&data)
            .expect("compress");
        assert_eq!(snappy(&raw, 1 << 20).expect("raw"), data);
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&1u32.to_be_bytes());
        framed.extend_from_slice(&1u32.to_be_bytes());
        for chunk in [&raw, &raw] {
            framed.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
            framed.extend_from_slice(chunk);
        }
        let mut twice = data.clone();
        twice.extend_from_slice(&data);
        assert_eq!(snappy(&framed, 1 << 20).expect("xerial"), twice);
    }
}
