//! Arbitrary bytes as a record set: the batch parser, the prefix reader and the
//! record iterator must never panic, and must agree with each other.
//!
//! Each input is tried twice: as it is (CRC checks reject almost everything random)
//! and with the CRC of every batch the prefix reader finds recomputed, so that the
//! record and decompression code behind the CRC check is reached too.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_log::batch::records::Records;
use strom_log::batch::{self, HEADER_BYTES};

/// Bound on decompressed bytes per batch.
const DECOMPRESSED_BYTES_MAX: usize = 1 << 20;
/// Position of the CRC and of the bytes it covers.
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut fixed = data.to_vec();
    if fix_crcs(&mut fixed) {
        check(&fixed);
    }
});

fn check(data: &[u8]) {
    let prefix = batch::read_prefix(data);
    let mut end = 0;
    for item in batch::validate_all(data) {
        let Ok((position, header)) = item else {
            break;
        };
        assert_eq!(position, end, "batches are back to back");
        let size = header.size_bytes();
        assert!(size >= HEADER_BYTES && position + size <= data.len());
        end = position + size;
        let bytes = &data[position..end];
        let (base, prefix_size, delta) =
            batch::read_prefix(bytes).expect("a valid batch has a valid prefix");
        assert_eq!(
            (base, prefix_size, delta),
            (header.base_offset, size, header.last_offset_delta)
        );
        if position == 0 {
            assert_eq!(prefix.as_ref().ok(), Some(&(base, prefix_size, delta)));
        }
        let Ok(records) = Records::new(bytes, DECOMPRESSED_BYTES_MAX) else {
            continue;
        };
        assert_eq!(records.header(), &header);
        let mut count = 0u64;
        for record in records.iter() {
            if record.is_err() {
                break;
            }
            count += 1;
        }
        assert!(count <= u64::from(header.record_count));
    }
}

/// Recomputes the CRC of every batch the prefix reader can walk; whether any was found.
fn fix_crcs(buf: &mut [u8]) -> bool {
    let mut position = 0;
    while let Ok((_, size, _)) = batch::read_prefix(&buf[position..]) {
        let Some(end) = position.checked_add(size).filter(|end| *end <= buf.len()) else {
            break;
        };
        let crc = crc32c::crc32c(&buf[position + CRC_FROM..end]);
        buf[position + CRC_AT..position + CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        position = end;
    }
    position > 0
}
