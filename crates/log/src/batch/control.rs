//! Transaction markers: the one-record control batches that end a producer's
//! transaction in a partition. The record's key is `(version: i16 = 0, type: i16)`
//! with type 0 = abort and 1 = commit; its value is `(version: i16 = 0,
//! coordinator epoch: i32)`, as Kafka writes them.

use super::builder::BatchBuilder;
use super::records::Records;
use super::BatchHeader;

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlMarker {
    /// Commit (true) or abort (false).
    pub commit: bool,
    /// The coordinator epoch that wrote it.
    pub coordinator_epoch: i32,
}

/// The control batch that ends `producer_id`'s transaction (base offset 0).
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    marker: ControlMarker,
    timestamp: i64,
) -> Vec<u8> {
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&i16::from(marker.commit).to_be_bytes());
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let mut builder = BatchBuilder::control(timestamp, producer_id, producer_epoch);
    builder.push(Some(&key), Some(&value), timestamp);
    builder.finish()
}

/// The marker a control batch carries; `None` if `batch` is not a well-formed
/// commit or abort marker (other control types are not transaction ends).
pub fn parse_marker(header: &BatchHeader, batch: &[u8]) -> Option<ControlMarker> {
    if !header.is_control() {
        return None;
    }
    let records = Records::new(batch, 1 << 16).ok()?;
    let record = records.iter().next()?.ok()?;
    let key = record.key?;
    let kind = i16::from_be_bytes(key.get(2..4)?.try_into().ok()?);
    let coordinator_epoch = record
        .value
        .and_then(|v| v.get(2..6))
        .and_then(|v| v.try_into().ok())
        .map_or(-1, i32::from_be_bytes);
    match kind {
        0 | 1 => Some(ControlMarker {
            commit: kind == 1,
            coordinator_epoch,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_as_valid_control_batches() {
        for commit in [true, false] {
            let marker = ControlMarker {
                commit,
                coordinator_epoch: 3,
            };
            let batch = marker_batch(42, 7, marker, 1_000);
            let header = BatchHeader::parse(&batch).expect("valid batch");
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch), (42, 7));
            assert_eq!(header.base_sequence, -1);
            assert_eq!(parse_marker(&header, &batch), Some(marker));
        }
    }
}
