//! The batch parser and record iterator against batches encoded by `kafka-protocol`,
//! plus a randomized decode test: arbitrary and mutated input never panics.

mod support;

use proptest::prelude::*;
use strom_log::batch::records::Records;
use strom_log::batch::{self, BatchHeader};
use strom_log::{BatchError, Compression, TimestampType};
use support::{encode, TestRecord, CODECS};

fn rich_records() -> Vec<TestRecord> {
    vec![
        TestRecord {
            key: Some(b"user-1".to_vec()),
            value: Some(b"first".to_vec()),
            timestamp: 1_700_000_000_000,
            headers: vec![
                ("trace".into(), Some(b"abc".to_vec())),
                ("empty".into(), None),
            ],
        },
        TestRecord {
            key: None,
            value: None,
            timestamp: 1_700_000_000_500,
            headers: vec![],
        },
        TestRecord {
            key: Some(Vec::new()),
            value: Some(vec![42u8; 10_000]),
            timestamp: 1_699_999_999_000,
            headers: vec![("k".into(), Some(Vec::new()))],
        },
    ]
}

#[test]
fn every_codec_round_trips_keys_values_headers_and_timestamps() {
    let expected = rich_records();
    for codec in CODECS {
        let bytes = encode(&expected, codec);
        let header = BatchHeader::parse(&bytes).unwrap_or_else(|e| panic!("{codec:?}: {e}"));
        assert_eq!(header.size_bytes(), bytes.len());
        assert_eq!(header.record_count, 3);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.max_timestamp, 1_700_000_000_500);
        assert_eq!(header.timestamp_type(), TimestampType::CreateTime);
        assert_eq!(
            header.compression().name(),
            format!("{codec:?}").to_lowercase()
        );
        let records = Records::new(&bytes, 1 << 20).expect("records");
        let got: Vec<TestRecord> = records
            .iter()
            .map(|r| {
                let r = r.expect("record");
                TestRecord {
                    key: r.key.map(<[u8]>::to_vec),
                    value: r.value.map(<[u8]>::to_vec),
                    timestamp: r.timestamp,
                    headers: r
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                String::from_utf8(k.to_vec()).expect("utf8"),
                                v.map(<[u8]>::to_vec),
                            )
                        })
                        .collect(),
                }
            })
            .collect();
        assert_eq!(got, expected, "codec {codec:?}");
    }
}

#[test]
fn any_flipped_bit_in_the_crc_region_is_detected() {
    let bytes = encode(&rich_records(), kafka_protocol::records::Compression::None);
    for at in [21, 30, 61, bytes.len() - 1] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x10;
        assert!(
            matches!(
                BatchHeader::parse(&damaged),
                Err(BatchError::ChecksumMismatch { .. })
                    | Err(BatchError::InvalidRecordCount { .. })
                    | Err(BatchError::UnknownCompression { .. })
            ),
            "flip at {at} not detected"
        );
    }
}

#[test]
fn header_checks_name_the_failed_rule() {
    let bytes = encode(&rich_records(), kafka_protocol::records::Compression::None);
    assert!(matches!(
        BatchHeader::parse(&bytes[..bytes.len() - 1]),
        Err(BatchError::Truncated { .. })
    ));
    assert!(matches!(
        BatchHeader::parse(&bytes[..20]),
        Err(BatchError::Truncated { .. })
    ));
    let mut wrong_magic = bytes.clone();
    wrong_magic[16] = 1;
    assert!(matches!(
        BatchHeader::parse(&wrong_magic),
        Err(BatchError::UnsupportedMagic { magic: 1 })
    ));
    let mut negative_length = bytes.clone();
    negative_length[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(matches!(
        BatchHeader::parse(&negative_length),
        Err(BatchError::InvalidLength { length: -5 })
    ));
    let mut bad_codec = bytes;
    bad_codec[22] |= 0x07;
    assert!(matches!(
        BatchHeader::parse(&bad_codec),
        Err(BatchError::UnknownCompression { codec: 7 })
    ));
}

#[test]
fn patching_the_base_offset_keeps_the_batch_valid() {
    let mut bytes = encode(&rich_records(), kafka_protocol::records::Compression::Lz4);
    batch::set_base_offset(&mut bytes, 1_000);
    let header = BatchHeader::parse(&bytes).expect("still valid");
    assert_eq!(header.base_offset, 1_000);
    assert_eq!(header.last_offset(), 1_002);
    let offsets: Vec<i64> = Records::new(&bytes, 1 << 20)
        .expect("records")
        .iter()
        .map(|r| r.expect("record").offset)
        .collect();
    assert_eq!(offsets, vec![1_000, 1_001, 1_002]);
}

#[test]
fn log_append_time_restamps_and_reseals_the_batch() {
    let mut bytes = encode(&rich_records(), kafka_protocol::records::Compression::Zstd);
    let size = bytes.len();
    batch::set_log_append_time(&mut bytes, size, 42);
    let header = BatchHeader::parse(&bytes).expect("CRC recomputed");
    assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(header.max_timestamp, 42);
    assert_eq!(header.compression(), Compression::Zstd);
    for record in Records::new(&bytes, 1 << 20).expect("records").iter() {
        assert_eq!(record.expect("record").timestamp, 42);
    }
}

#[test]
fn a_decompression_bomb_is_refused() {
    let records = vec![TestRecord::value(&vec![0u8; 1 << 20], 0)];
    let bytes = encode(&records, kafka_protocol::records::Compression::Gzip);
    assert!(bytes.len() < 10_000, "compresses well");
    assert!(matches!(
        Records::new(&bytes, 64 * 1024),
        Err(BatchError::Decompression { .. })
    ));
}

#[test]
fn several_batches_validate_one_by_one_and_stop_at_damage() {
    let one = support::single(b"a", 1);
    let two = support::single(b"bb", 2);
    let mut set = [one.clone(), two.clone(), one.clone()].concat();
    let positions: Vec<usize> = batch::validate_all(&set)
        .map(|r| r.expect("valid").0)
        .collect();
    assert_eq!(positions, vec![0, one.len(), one.len() + two.len()]);
    let last = set.len() - 1;
    set[last] ^= 1;
    let results: Vec<_> = batch::validate_all(&set).collect();
    assert_eq!(results.len(), 3);
    assert!(
        matches!(results[2], Err((p, BatchError::ChecksumMismatch { .. })) if p == one.len() + two.len())
    );
}

fn decode_everything(bytes: &[u8]) {
    for item in batch::validate_all(bytes) {
        let Ok((position, _)) = item else { break };
        if let Ok(records) = Records::new(&bytes[position..], 1 << 20) {
            for record in records.iter() {
                if record.is_err() {
                    break;
                }
            }
        }
    }
    let _ = batch::read_prefix(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    /// Random bytes never panic the parser or the record iterator.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    /// Valid batches with random bytes overwritten, then re-sealed with a correct CRC
    /// so the damage reaches the record decoder, never panic.
    #[test]
    fn mutated_batches_never_panic(
        codec in 0usize..5,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        reseal in any::<bool>(),
    ) {
        let mut bytes = encode(&rich_records(), CODECS[codec]);
        for (at, value) in flips {
            let at = 12 + at % (bytes.len() - 12);
            bytes[at] = value;
        }
        if reseal && bytes.len() > 21 {
            let crc = crc32c::crc32c(&bytes[21..]);
            bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        }
        decode_everything(&bytes);
    }
}
