//! Rewrites a batch: with fewer records, for the log cleaner, or in another codec,
//! for a topic whose `compression.type` differs from the producer's codec.
//!
//! Kafka's rules for a cleaned v2 batch: it keeps its base offset, its last offset
//! (so the offsets of the records it lost become gaps, never reused), its producer
//! id, epoch and base sequence, its attributes and its codec; only the records, the
//! count, the max timestamp and — when the cleaner sets a delete horizon (KIP-534) —
//! the base timestamp change. Record timestamps are re-expressed relative to the new
//! base, so every client reads the same timestamps as before.

use std::io::Write;

use super::builder::{put_bytes, put_varlong};
use super::records::{Record, Records};
use super::{
    BatchHeader, Compression, TimestampType, ATTR_COMPRESSION_MASK, ATTR_DELETE_HORIZON,
    HEADER_BYTES, MAGIC_V2, OFFSET_ATTRIBUTES, OFFSET_CRC, OFFSET_RECORD_COUNT,
};
use crate::error::BatchError;

/// Snappy blocks written in the xerial framing (what the Java client writes and every
/// client reads).
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
const XERIAL_HEADER: &[u8] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// The batch `original` with only `records` (a subset of its records, in order),
/// and `delete_horizon_ms` stamped when given. An empty `records` makes Kafka's empty
/// batch: a header that keeps the producer's sequence state alive.
pub(crate) fn rebuild(
    original: &BatchHeader,
    records: &[Record<'_>],
    delete_horizon_ms: Option<i64>,
) -> Result<Vec<u8>, BatchError> {
    let codec = original.compression();
    encode(
        original,
        records,
        delete_horizon_ms,
        codec,
        default_level(codec),
    )
}

/// The whole batch at the start of `batch` (validated) re-encoded with `codec` at
/// `level`: the same base and last offset, timestamps, headers, producer id, epoch,
/// base sequence and transactional flag, with a new CRC. Decompression is bounded by
/// `decompressed_bytes_max`.
pub fn recompress(
    batch: &[u8],
    codec: Compression,
    level: i32,
    decompressed_bytes_max: usize,
) -> Result<Vec<u8>, BatchError> {
    let records = Records::new(batch, decompressed_bytes_max)?;
    let all = records.iter().collect::<Result<Vec<_>, _>>()?;
    // `iter` yields exactly `record_count` records or an error.
    let header = records.header();
    let header = BatchHeader {
        attributes: (header.attributes & !ATTR_COMPRESSION_MASK) | codec.id(),
        ..*header
    };
    encode(&header, &all, None, codec, level)
}

/// The level a codec compresses at when none is configured (Kafka's defaults:
/// gzip's own default, zstd 3; lz4 has one level here).
pub fn default_level(codec: Compression) -> i32 {
    match codec {
        Compression::Zstd => 3,
        Compression::Lz4 => 9,
        _ => -1,
    }
}

/// Encodes `records` under `original`'s header fields (its codec bits must name `codec`).
fn encode(
    original: &BatchHeader,
    records: &[Record<'_>],
    delete_horizon_ms: Option<i64>,
    codec: Compression,
    level: i32,
) -> Result<Vec<u8>, BatchError> {
    let log_append_time = original.timestamp_type() == TimestampType::LogAppendTime;
    let base_timestamp = delete_horizon_ms.unwrap_or(original.base_timestamp);
    let max_timestamp = if log_append_time || records.is_empty() {
        original.max_timestamp
    } else {
        records.iter().map(|r| r.timestamp).max().unwrap_or(-1)
    };
    let mut body = Vec::new();
    let mut record = Vec::new();
    for r in records {
        record.clear();
        record.push(0); // record attributes (unused by Kafka)
        let delta = if log_append_time {
            0
        } else {
            r.timestamp.wrapping_sub(base_timestamp)
        };
        put_varlong(&mut record, delta);
        put_varlong(&mut record, r.offset.wrapping_sub(original.base_offset));
        put_bytes(&mut record, r.key);
        put_bytes(&mut record, r.value);
        put_varlong(&mut record, r.headers.len() as i64);
        for (key, value) in &r.headers {
            put_bytes(&mut record, Some(key));
            put_bytes(&mut record, *value);
        }
        put_varlong(&mut body, record.len() as i64);
        body.extend_from_slice(&record);
    }
    let payload = compress(codec, level, &body)?;
    let mut attributes = original.attributes;
    if delete_horizon_ms.is_some() {
        attributes |= ATTR_DELETE_HORIZON;
    }
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(&original.base_offset.to_be_bytes());
    out.extend_from_slice(&((HEADER_BYTES - 12 + payload.len()) as i32).to_be_bytes());
    out.extend_from_slice(&original.partition_leader_epoch.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&[0; 4]); // CRC, below
    debug_assert_eq!(out.len(), OFFSET_ATTRIBUTES);
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&(original.last_offset_delta as i32).to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&original.producer_id.to_be_bytes());
    out.extend_from_slice(&original.producer_epoch.to_be_bytes());
    out.extend_from_slice(&original.base_sequence.to_be_bytes());
    debug_assert_eq!(out.len(), OFFSET_RECORD_COUNT);
    out.extend_from_slice(&(records.len() as i32).to_be_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32c::crc32c(&out[OFFSET_ATTRIBUTES..]);
    out[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Compresses a batch body with `codec` at `level` (negative: the codec's default;
/// lz4_flex has a single level), in the framing clients expect.
fn compress(codec: Compression, level: i32, raw: &[u8]) -> Result<Vec<u8>, BatchError> {
    let fail = |reason: String| BatchError::Decompression {
        codec: codec.name(),
        reason: format!("recompressing: {reason}"),
    };
    match codec {
        Compression::None => Ok(raw.to_vec()),
        Compression::Gzip => {
            let level = u32::try_from(level)
                .map_or_else(|_| flate2::Compression::default(), flate2::Compression::new);
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            encoder.write_all(raw).map_err(|e| fail(e.to_string()))?;
            encoder.finish().map_err(|e| fail(e.to_string()))
        }
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(raw).map_err(|e| fail(e.to_string()))?;
            encoder.finish().map_err(|e| fail(e.to_string()))
        }
        Compression::Zstd => zstd::stream::encode_all(raw, level).map_err(|e| fail(e.to_string())),
        Compression::Snappy => {
            let mut out = XERIAL_HEADER.to_vec();
            let mut encoder = snap::raw::Encoder::new();
            for block in raw.chunks(XERIAL_BLOCK_BYTES) {
                let compressed = encoder
                    .compress_vec(block)
                    .map_err(|e| fail(e.to_string()))?;
                out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::builder::BatchBuilder;

    fn with_codec(batch: &mut [u8], codec: Compression) -> Vec<u8> {
        recompress(batch, codec, default_level(codec), 1 << 20).expect("recompress")
    }

    #[test]
    fn a_rebuilt_batch_keeps_its_offsets_producer_and_record_contents_in_every_codec() {
        let mut builder = BatchBuilder::producer(1_000, 7, 2, 40, true);
        builder.push(Some(b"a"), Some(b"1"), 1_000);
        builder.push(Some(b"b"), None, 1_010);
        builder.push(Some(b"c"), Some(b"3"), 990);
        let mut batch = builder.finish();
        batch[..8].copy_from_slice(&100i64.to_be_bytes());
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let compressed = with_codec(&mut batch, codec);
            let header = BatchHeader::parse(&compressed).expect("valid");
            assert_eq!(header.compression(), codec);
            let records = Records::new(&compressed, 1 << 20).expect("records");
            let all: Vec<_> = records.iter().collect::<Result<_, _>>().expect("decode");
            // Keep the first and last record, with a delete horizon.
            let kept = [all[0].clone(), all[2].clone()];
            let cleaned = rebuild(&header, &kept, Some(5_000)).expect("rebuild");
            let cleaned_header = BatchHeader::parse(&cleaned).expect("valid");
            assert_eq!(cleaned_header.base_offset, 100);
            assert_eq!(cleaned_header.last_offset(), 102);
            assert_eq!(cleaned_header.record_count, 2);
            assert_eq!(cleaned_header.compression(), codec);
            assert_eq!(
                (cleaned_header.producer_id, cleaned_header.producer_epoch),
                (7, 2)
            );
            assert_eq!(cleaned_header.base_sequence, 40);
            assert!(cleaned_header.is_transactional());
            assert_eq!(cleaned_header.delete_horizon_ms(), Some(5_000));
            assert_eq!(cleaned_header.max_timestamp, 1_000);
            let decoded = Records::new(&cleaned, 1 << 20).expect("records");
            let got: Vec<_> = decoded.iter().collect::<Result<_, _>>().expect("decode");
            assert_eq!(got, kept, "{codec:?}");
        }
    }

    #[test]
    fn an_emptied_batch_keeps_its_header_fields() {
        let mut builder = BatchBuilder::producer(1_000, 9, 0, 5, false);
        builder.push(Some(b"a"), Some(b"1"), 1_000);
        builder.push(Some(b"a"), Some(b"2"), 1_001);
        let batch = builder.finish();
        let header = BatchHeader::parse(&batch).expect("valid");
        let empty = rebuild(&header, &[], None).expect("rebuild");
        let parsed = BatchHeader::parse(&empty).expect("valid");
        assert_eq!(parsed.record_count, 0);
        assert_eq!(parsed.last_offset_delta, 1);
        assert_eq!(parsed.base_sequence, 5);
        assert_eq!(parsed.max_timestamp, 1_001);
        assert_eq!(empty.len(), HEADER_BYTES);
    }
}

#[cfg(test)]
mod recompress_tests {
    use super::*;
    use crate::batch::builder::BatchBuilder;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Offset, timestamp, key and value of a record.
    type Plain = (i64, i64, Option<Vec<u8>>, Option<Vec<u8>>);

    fn records_of(batch: &[u8]) -> Vec<Plain> {
        let records = Records::new(batch, 1 << 20).expect("records");
        records
            .iter()
            .map(|r| {
                let r = r.expect("record");
                (
                    r.offset,
                    r.timestamp,
                    r.key.map(<[u8]>::to_vec),
                    r.value.map(<[u8]>::to_vec),
                )
            })
            .collect()
    }

    #[test]
    fn recompressing_between_any_two_codecs_keeps_every_field_but_the_codec_and_crc() {
        let mut builder = BatchBuilder::producer(5_000, 42, 3, 17, true);
        builder.push(
            Some(b"k1"),
            Some(b"a value that compresses a value that compresses"),
            5_000,
        );
        builder.push(None, Some(b"v2"), 5_003);
        builder.push(Some(b"k3"), None, 4_990);
        let mut original = builder.finish();
        original[..8].copy_from_slice(&700i64.to_be_bytes());
        for from in CODECS {
            let source =
                recompress(&original, from, default_level(from), 1 << 20).expect("to source");
            let source_header = BatchHeader::parse(&source).expect("valid");
            for to in CODECS {
                for level in [default_level(to), 1] {
                    let target = recompress(&source, to, level, 1 << 20).expect("to target");
                    let header = BatchHeader::parse(&target).expect("valid CRC");
                    assert_eq!(header.compression(), to);
                    let normalised = BatchHeader {
                        attributes: source_header.attributes,
                        batch_length: source_header.batch_length,
                        ..header
                    };
                    assert_eq!(normalised, source_header, "{from:?} -> {to:?}");
                    assert_eq!(
                        records_of(&target),
                        records_of(&original),
                        "{from:?} -> {to:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_batch_whose_records_do_not_decode_is_refused() {
        let mut builder = BatchBuilder::producer(5_000, -1, -1, -1, false);
        builder.push(Some(b"k"), Some(b"v"), 5_000);
        let mut batch = builder.finish();
        // Claim two records where there is one; fix the CRC so only the count is wrong.
        batch[OFFSET_RECORD_COUNT..OFFSET_RECORD_COUNT + 4].copy_from_slice(&2i32.to_be_bytes());
        batch[23..27].copy_from_slice(&1i32.to_be_bytes());
        let crc = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..]);
        batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(BatchHeader::parse(&batch).is_ok());
        assert!(recompress(&batch, Compression::Gzip, -1, 1 << 20).is_err());
    }
}
