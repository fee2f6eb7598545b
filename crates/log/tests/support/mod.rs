//! Test batches, encoded by the `kafka-protocol` crate — an encoder we did not write —
//! so that our parser is checked against someone else's reading of the format.

#![allow(dead_code, missing_docs)]

use std::io::Write;

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A record as a test describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl TestRecord {
    pub fn value(value: &[u8], timestamp: i64) -> Self {
        TestRecord {
            key: None,
            value: Some(value.to_vec()),
            timestamp,
            headers: Vec::new(),
        }
    }
}

/// Every codec Kafka defines.
pub const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// Encodes `records` as one v2 batch with base offset 0.
pub fn encode(records: &[TestRecord], compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // offset - sequence must be constant for one batch; this keeps base sequence -1.
            sequence: i as i32 - 1,
            timestamp: r.timestamp,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone().map(Bytes::from)))
                .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode_with_custom_compression(
        &mut buf,
        records.iter(),
        &options,
        Some(
            |input: &mut BytesMut, out: &mut BytesMut, codec: Compression| {
                out.extend_from_slice(&compress(codec, input));
                Ok(())
            },
        ),
    )
    .expect("kafka-protocol encodes the batch");
    buf.to_vec()
}

/// Compresses as the Java client does (snappy in xerial framing, lz4 frames).
pub fn compress(codec: Compression, input: &[u8]) -> Vec<u8> {
    match codec {
        Compression::None => input.to_vec(),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(input).expect("gzip");
            encoder.finish().expect("gzip")
        }
        Compression::Snappy => {
            let block = snap::raw::Encoder::new()
                .compress_vec(input)
                .expect("snappy");
            let mut out = b"\x82SNAPPY\x00".to_vec();
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(&block);
            out
        }
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(input).expect("lz4");
            encoder.finish().expect("lz4")
        }
        Compression::Zstd => zstd::bulk::compress(input, 1).expect("zstd"),
    }
}

/// A batch of `count` uncompressed records of `value_bytes` each, all at `timestamp`.
pub fn batch_of(count: usize, value_bytes: usize, timestamp: i64) -> Vec<u8> {
    let records: Vec<TestRecord> = (0..count)
        .map(|i| TestRecord::value(&vec![(i % 251) as u8; value_bytes], timestamp))
        .collect();
    encode(&records, Compression::None)
}

/// A single-record batch whose value is `value`.
pub fn single(value: &[u8], timestamp: i64) -> Vec<u8> {
    encode(&[TestRecord::value(value, timestamp)], Compression::None)
}

/// Splits a record set into its batches' byte ranges.
pub fn split_batches(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let header = strom_log::BatchHeader::parse(&bytes[at..]).expect("valid batch");
        out.push(&bytes[at..at + header.size_bytes()]);
        at += header.size_bytes();
    }
    out
}

/// The values of all records in a record set, with their offsets.
pub fn values(bytes: &[u8]) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    for batch in split_batches(bytes) {
        let records = strom_log::batch::records::Records::new(batch, 1 << 26).expect("records");
        for record in records.iter() {
            let record = record.expect("record");
            out.push((record.offset, record.value.unwrap_or_default().to_vec()));
        }
    }
    out
}

/// Decompresses a batch payload (snappy raw or in xerial framing), for decoders that
/// take a decompression function.
pub fn decompress(codec: Compression, input: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match codec {
        Compression::None => out.extend_from_slice(input),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(input)
                .read_to_end(&mut out)
                .expect("gzip");
        }
        Compression::Snappy => {
            let mut decoder = snap::raw::Decoder::new();
            match input.strip_prefix(b"\x82SNAPPY\x00") {
                Some(framed) => {
                    let mut blocks = &framed[8..];
                    while let [a, b, c, d, rest @ ..] = blocks {
                        let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
                        out.extend(decoder.decompress_vec(&rest[..len]).expect("snappy"));
                        blocks = &rest[len..];
                    }
                }
                None => out = decoder.decompress_vec(input).expect("snappy"),
            }
        }
        Compression::Lz4 => {
            lz4_flex::frame::FrameDecoder::new(input)
                .read_to_end(&mut out)
                .expect("lz4");
        }
        Compression::Zstd => out = zstd::decode_all(input).expect("zstd"),
    }
    out
}
