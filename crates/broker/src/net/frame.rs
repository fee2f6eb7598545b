//! Kafka framing: every request is a 4-byte big-endian size followed by that many bytes.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadFrameError {
    /// The size prefix is negative or above the connection's bound.
    #[error("frame size {size} is outside [0, {max}] (request_bytes_max)")]
    BadSize {
        /// The declared size.
        size: i64,
        /// The bound.
        max: usize,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed after {read} of {size} bytes of a frame")]
    Truncated {
        /// Bytes received.
        read: usize,
        /// Bytes declared.
        size: usize,
    },
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// First allocation for a frame body; the buffer grows as bytes actually arrive, so a
/// peer that announces a large frame and sends nothing does not cost its size.
const INITIAL_BUFFER: usize = 64 * 1024;

/// Reads one frame's body. `Ok(None)` when the peer closed cleanly between frames.
#[cfg(test)]
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Bytes>, ReadFrameError> {
    match read_size(reader, max).await? {
        Some(size) => read_body(reader, size).await.map(Some),
        None => Ok(None),
    }
}

/// Reads a frame's size prefix and checks it against `max`. `Ok(None)` when the peer
/// closed cleanly between frames.
pub(crate) async fn read_size<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<usize>, ReadFrameError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = reader.read(&mut prefix[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(ReadFrameError::Truncated { read: got, size: 4 })
            };
        }
        got += n;
    }
    let size = i32::from_be_bytes(prefix);
    if size < 0 || size as usize > max {
        return Err(ReadFrameError::BadSize {
            size: size.into(),
            max,
        });
    }
    Ok(Some(size as usize))
}

/// Reads a frame body of `size` bytes (its prefix already read).
pub(crate) async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    size: usize,
) -> Result<Bytes, ReadFrameError> {
    let mut body = BytesMut::with_capacity(size.min(INITIAL_BUFFER));
    while body.len() < size {
        if body.len() == body.capacity() {
            body.reserve((size - body.len()).min(body.capacity().max(INITIAL_BUFFER)));
        }
        let want = (size - body.len()) as u64;
        let n = (&mut *reader).take(want).read_buf(&mut body).await?;
        if n == 0 {
            return Err(ReadFrameError::Truncated {
                read: body.len(),
                size,
            });
        }
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(input: &[u8], max: usize) -> Vec<Result<Option<Bytes>, String>> {
        let mut reader = input;
        let mut out = Vec::new();
        loop {
            let r = read_frame(&mut reader, max)
                .await
                .map_err(|e| e.to_string());
            let done = !matches!(r, Ok(Some(_)));
            out.push(r);
            if done {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn frames_are_split_by_their_size_prefix() {
        let input = [&[0, 0, 0, 2, 7, 8][..], &[0, 0, 0, 0], &[0, 0, 0, 1, 9]].concat();
        let frames = read_all(&input, 100).await;
        assert_eq!(
            frames,
            vec![
                Ok(Some(Bytes::from_static(&[7, 8]))),
                Ok(Some(Bytes::new())),
                Ok(Some(Bytes::from_static(&[9]))),
                Ok(None)
            ]
        );
    }

    #[tokio::test]
    async fn bad_sizes_and_truncation_are_errors() {
        let negative = read_all(&[0xff, 0xff, 0xff, 0xff], 100).await;
        assert!(matches!(&negative[0], Err(e) if e.contains("outside")));
        let too_big = read_all(&[0, 0, 0, 101], 100).await;
        assert!(matches!(&too_big[0], Err(e) if e.contains("outside")));
        let short_body = read_all(&[0, 0, 0, 5, 1, 2], 100).await;
        assert!(matches!(&short_body[0], Err(e) if e.contains("2 of 5")));
        let short_prefix = read_all(&[0, 0], 100).await;
        assert!(matches!(&short_prefix[0], Err(e) if e.contains("closed")));
    }

    #[tokio::test]
    async fn large_frames_grow_the_buffer_as_bytes_arrive() {
        let size = 3 * INITIAL_BUFFER + 17;
        let mut input = (size as u32).to_be_bytes().to_vec();
        input.extend((0..size).map(|i| i as u8));
        let frames = read_all(&input, size).await;
        let Ok(Some(body)) = &frames[0] else {
            panic!("{:?}", frames[0].as_ref().map(|_| ()))
        };
        assert_eq!(body.len(), size);
        assert_eq!(body[size - 1], (size - 1) as u8);
    }
}
