//! The client side's wire format, as Confluent's serializers write it:
//!
//! ```text
//! byte 0      magic, always 0
//! bytes 1..5  schema id, big-endian i32
//! Protobuf only: message indexes, zigzag varints: count, then one index per level
//!             (the path to the message type in the file; [0] is written as one 0)
//! rest        the encoded payload (Avro binary, JSON text, Protobuf message)
//! ```

/// The magic byte in front of every Confluent-framed payload.
pub const MAGIC_BYTE: u8 = 0;

/// How many message indexes a Protobuf header may carry (nesting depth).
const MESSAGE_INDEXES_MAX: usize = 100;

/// Why a payload's framing does not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the 5-byte header.
    #[error("payload of {len} bytes is shorter than the 5-byte schema header")]
    TooShort {
        /// The payload's length.
        len: usize,
    },
    /// The first byte is not 0.
    #[error("unknown magic byte {got} (expected 0)")]
    UnknownMagicByte {
        /// The byte found.
        got: u8,
    },
    /// A Protobuf message-index list that does not decode.
    #[error("invalid Protobuf message indexes: {0}")]
    InvalidMessageIndexes(&'static str),
}

/// Frames `payload` with the magic byte and `schema_id`.
pub fn encode(schema_id: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits a framed payload into its schema id and the rest.
pub fn decode(framed: &[u8]) -> Result<(i32, &[u8]), WireError> {
    if framed.len() < 5 {
        return Err(WireError::TooShort { len: framed.len() });
    }
    if framed[0] != MAGIC_BYTE {
        return Err(WireError::UnknownMagicByte { got: framed[0] });
    }
    let id = i32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]);
    Ok((id, &framed[5..]))
}

fn put_zigzag(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn get_zigzag(input: &mut &[u8]) -> Result<i64, WireError> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input
            .split_first()
            .ok_or(WireError::InvalidMessageIndexes("truncated varint"))?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(WireError::InvalidMessageIndexes("varint too long"))
}

/// Encodes Protobuf message indexes (`[0]`, the first message, is one 0 byte).
pub fn encode_message_indexes(indexes: &[i32]) -> Vec<u8> {
    let mut out = Vec::new();
    if indexes == [0] {
        out.push(0);
        return out;
    }
    put_zigzag(&mut out, indexes.len() as i64);
    for index in indexes {
        put_zigzag(&mut out, i64::from(*index));
    }
    out
}

/// Decodes Protobuf message indexes from the front of `input`; returns them and the
/// rest (the message bytes).
pub fn decode_message_indexes(mut input: &[u8]) -> Result<(Vec<i32>, &[u8]), WireError> {
    let count = get_zigzag(&mut input)?;
    if count == 0 {
        return Ok((vec![0], input));
    }
    let count = usize::try_from(count)
        .ok()
        .filter(|c| *c <= MESSAGE_INDEXES_MAX)
        .ok_or(WireError::InvalidMessageIndexes("bad count"))?;
    let mut indexes = Vec::with_capacity(count);
    for _ in 0..count {
        let index = i32::try_from(get_zigzag(&mut input)?)
            .ok()
            .filter(|i| *i >= 0)
            .ok_or(WireError::InvalidMessageIndexes("bad index"))?;
        indexes.push(index);
    }
    Ok((indexes, input))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let framed = encode(258, b"payload");
        assert_eq!(&framed[..5], &[0, 0, 0, 1, 2]);
        assert_eq!(decode(&framed), Ok((258, &b"payload"[..])));
        assert_eq!(decode(&[0, 0]), Err(WireError::TooShort { len: 2 }));
        assert_eq!(
            decode(&[1, 0, 0, 0, 0]),
            Err(WireError::UnknownMagicByte { got: 1 })
        );
    }

    #[test]
    fn message_indexes_round_trip() {
        assert_eq!(encode_message_indexes(&[0]), vec![0]);
        for indexes in [vec![0], vec![1], vec![0, 2, 1], vec![70, 0]] {
            let mut bytes = encode_message_indexes(&indexes);
            bytes.extend_from_slice(b"msg");
            let (decoded, rest) = decode_message_indexes(&bytes).expect("decodes");
            assert_eq!(decoded, indexes);
            assert_eq!(rest, b"msg");
        }
        assert!(decode_message_indexes(&[0x80]).is_err());
        assert!(
            decode_message_indexes(&[0x02, 0x01]).is_err(),
            "negative index"
        );
    }
}
