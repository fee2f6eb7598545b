//! A response on its way to the wire, as a list of byte chunks: the encoded message
//! with the record sets a fetch read left out of it and referenced instead, so the
//! bytes read from the log are written to the socket without being copied into the
//! response first (vectored writes send the chunks in one syscall).

use std::io::IoSlice;
use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Record sets smaller than this are copied: a separate chunk costs more than it saves.
const SHARE_MIN_BYTES: usize = 4096;

/// An encoded response: chunks written in order.
#[derive(Debug, Default)]
pub(crate) struct ResponseFrame {
    chunks: std::collections::VecDeque<Bytes>,
}

impl ResponseFrame {
    /// Total bytes left to write.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// The frame as one contiguous buffer (copies when it has several chunks).
    #[cfg(test)]
    pub fn to_bytes(&self) -> Bytes {
        let mut all = BytesMut::with_capacity(self.len());
        for chunk in &self.chunks {
            all.extend_from_slice(chunk);
        }
        all.freeze()
    }
}

impl From<BytesMut> for ResponseFrame {
    fn from(buf: BytesMut) -> Self {
        ResponseFrame {
            chunks: [buf.freeze()].into(),
        }
    }
}

impl Buf for ResponseFrame {
    fn remaining(&self) -> usize {
        self.len()
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| &c[..])
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, chunk) in dst
            .iter_mut()
            .zip(self.chunks.iter().filter(|c| !c.is_empty()))
        {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }

    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if cnt < front.len() {
                front.advance(cnt);
                return;
            }
            cnt -= front.len();
            self.chunks.pop_front();
        }
    }
}

/// The buffer a response is encoded into: bytes go to the current chunk, except a
/// slice that is one of `shared` (a record set the response holds), which becomes its
/// own chunk by reference.
pub(crate) struct FrameBuf<'a> {
    done: Vec<Bytes>,
    /// Bytes in `done`.
    done_len: usize,
    head: BytesMut,
    shared: &'a [Bytes],
}

impl<'a> FrameBuf<'a> {
    /// An empty buffer expecting about `capacity` bytes of its own.
    pub fn new(capacity: usize, shared: &'a [Bytes]) -> Self {
        FrameBuf {
            done: Vec::new(),
            done_len: 0,
            head: BytesMut::with_capacity(capacity),
            shared,
        }
    }

    /// The encoded frame.
    pub fn finish(mut self) -> ResponseFrame {
        self.done.push(self.head.freeze());
        ResponseFrame {
            chunks: self.done.into(),
        }
    }

    /// Moves every chunk back into `head` (only for a seek or range before it, which
    /// response encoders never do; kept correct rather than assumed).
    fn flatten(&mut self) {
        if self.done.is_empty() {
            return;
        }
        let mut all = BytesMut::with_capacity(self.done_len + self.head.len());
        for chunk in self.done.drain(..) {
            all.extend_from_slice(&chunk);
        }
        all.extend_from_slice(&self.head);
        self.head = all;
        self.done_len = 0;
    }
}

// SAFETY: every method delegates to `head`, a `BytesMut`, whose implementation upholds
// the trait's contract; `put_slice` only appends (to `head` or as a new chunk).
unsafe impl BufMut for FrameBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller guarantees `cnt` bytes of `chunk_mut` were initialized,
        // and `chunk_mut` is `head`'s.
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        let shared = (src.len() >= SHARE_MIN_BYTES)
            .then(|| {
                self.shared
                    .iter()
                    .find(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len())
            })
            .flatten();
        match shared {
            Some(records) => {
                let head = self.head.split().freeze();
                self.done_len += head.len() + records.len();
                self.done.push(head);
                self.done.push(records.clone());
            }
            None => self.head.extend_from_slice(src),
        }
    }
}

impl ByteBufMut for FrameBuf<'_> {
    fn offset(&self) -> usize {
        self.done_len + self.head.len()
    }

    fn seek(&mut self, offset: usize) {
        if offset < self.done_len {
            self.flatten();
        }
        self.head.resize(offset - self.done_len, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        if r.start < self.done_len {
            self.flatten();
        }
        let base = self.done_len;
        &mut self.head[r.start - base..r.end - base]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_slices_become_chunks_and_the_bytes_are_the_same() {
        let records = Bytes::from(vec![7u8; 10_000]);
        let small = Bytes::from_static(b"tiny");
        let shared = [records.clone(), small.clone()];
        let mut buf = FrameBuf::new(64, &shared);
        buf.put_i32(1);
        buf.put_slice(&records);
        buf.put_slice(&small);
        buf.put_slice(&vec![7u8; 10_000]);
        assert_eq!(buf.offset(), 4 + 10_000 + 4 + 10_000);
        let mut frame = buf.finish();
        assert_eq!(frame.chunks.len(), 3, "head, shared records, the rest");
        assert!(
            frame.chunks.iter().any(|c| c.as_ptr() == records.as_ptr()),
            "not copied"
        );
        let mut expected = vec![0, 0, 0, 1];
        expected.extend_from_slice(&records);
        expected.extend_from_slice(b"tiny");
        expected.extend_from_slice(&[7u8; 10_000]);
        assert_eq!(frame.to_bytes(), Bytes::from(expected.clone()));
        let mut slices = [IoSlice::new(&[]); 8];
        assert_eq!(frame.chunks_vectored(&mut slices), 3);
        frame.advance(4 + 5_000);
        assert_eq!(frame.remaining(), expected.len() - 5_004);
        assert_eq!(frame.chunk()[0], 7);
        frame.advance(frame.remaining());
        assert_eq!(frame.remaining(), 0);
    }

    #[test]
    fn seeking_back_into_an_earlier_chunk_flattens() {
        let records = Bytes::from(vec![1u8; 5_000]);
        let shared = [records.clone()];
        let mut buf = FrameBuf::new(8, &shared);
        buf.put_u8(9);
        buf.put_slice(&records);
        buf.range(0..1)[0] = 3;
        let frame = buf.finish();
        assert_eq!(frame.to_bytes()[0], 3);
        assert_eq!(frame.len(), 5_001);
    }
}
