//! Sequential reads of a segment file: header scans for lookups, validating scans
//! for recovery. Both read in large chunks so that many small batches cost few
//! syscalls, and neither holds more than one chunk (or one batch) in memory.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use crate::batch::{BatchHeader, HEADER_BYTES};
use crate::error::BatchError;

/// Bytes read per syscall by recovery's validating scan.
pub(crate) const RECOVERY_CHUNK_BYTES: usize = 1024 * 1024;
/// Bytes read per syscall by lookups, which scan at most an index interval or so.
pub(crate) const LOOKUP_CHUNK_BYTES: usize = 16 * 1024;

/// Reads exactly `buf.len()` bytes at `position`, or fewer at end of file.
fn read_at_most(file: &File, buf: &mut [u8], position: u64) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], position + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// What a scan found at one position.
pub(crate) enum Scanned {
    /// A batch (validated if the scan validates) starting at `position`.
    Batch {
        /// Byte position in the file.
        position: u64,
        /// Its header.
        header: BatchHeader,
    },
    /// The data at `position` is not a whole valid batch; the scan stops.
    Invalid {
        /// Where the bad data starts.
        position: u64,
        /// Why it is invalid.
        reason: BatchError,
    },
}

/// Walks the batches of `file` in `[from, end)`, calling `visit` for each; stops when
/// `visit` returns false, at `end`, or at the first invalid batch (reported once).
/// With `validate`, every batch is read whole and its CRC checked.
/// `chunk_bytes` is the read size.
pub(crate) fn scan(
    file: &File,
    (from, end): (u64, u64),
    validate: bool,
    chunk_bytes: usize,
    mut visit: impl FnMut(Scanned) -> bool,
) -> std::io::Result<()> {
    let span = end.saturating_sub(from) as usize;
    let mut chunk = vec![0u8; chunk_bytes.min(span).max(HEADER_BYTES)];
    let mut large = Vec::new();
    let mut chunk_start = from;
    let mut chunk_len = 0usize;
    let mut position = from;
    while position < end {
        // Make sure the header (and, when validating, the whole batch) is in memory.
        let mut offset_in_chunk = (position - chunk_start) as usize;
        if position < chunk_start || offset_in_chunk + HEADER_BYTES > chunk_len {
            let want = chunk.len().min((end - position) as usize);
            chunk_len = read_at_most(file, &mut chunk[..want], position)?;
            chunk_start = position;
            offset_in_chunk = 0;
        }
        let available = &chunk[offset_in_chunk..chunk_len];
        let header = match BatchHeader::parse_unchecked(available) {
            Ok(header) => header,
            Err(reason) => {
                visit(Scanned::Invalid { position, reason });
                return Ok(());
            }
        };
        let size = header.size_bytes() as u64;
        if position + size > end {
            visit(Scanned::Invalid {
                position,
                reason: BatchError::Truncated {
                    needed: size as usize,
                    available: (end - position) as usize,
                },
            });
            return Ok(());
        }
        let keep_going = if validate {
            let bytes: &[u8] = if available.len() as u64 >= size {
                &available[..size as usize]
            } else if size as usize <= chunk.len() {
                chunk_len = read_at_most(file, &mut chunk, position)?;
                chunk_start = position;
                &chunk[..(size as usize).min(chunk_len)]
            } else {
                large.resize(size as usize, 0);
                let n = read_at_most(file, &mut large, position)?;
                &large[..n]
            };
            match BatchHeader::parse(bytes) {
                Ok(header) => visit(Scanned::Batch { position, header }),
                Err(reason) => {
                    visit(Scanned::Invalid { position, reason });
                    return Ok(());
                }
            }
        } else {
            visit(Scanned::Batch { position, header })
        };
        if !keep_going {
            return Ok(());
        }
        position += size;
    }
    Ok(())
}

/// Reads `len` bytes at `position` into a new buffer (short at end of file).
pub(crate) fn read_range(file: &File, position: u64, len: usize) -> std::io::Result<Vec<u8>> {
    // Read into uninitialized capacity: zero-filling a fetch-sized buffer first costs
    // as much as the read itself (it was 16% of a consuming broker's CPU).
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let filled = buf.len();
        let at = position + filled as u64;
        let spare = &mut buf.spare_capacity_mut()[..len - filled];
        let offset = libc::off_t::try_from(at).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        // SAFETY: pread writes at most `spare.len()` bytes into `spare`, which is
        // allocated, writable and not aliased; the file descriptor is open for the life
        // of `file`.
        let read = unsafe {
            libc::pread(
                file.as_raw_fd(),
                spare.as_mut_ptr().cast::<libc::c_void>(),
                spare.len(),
                offset,
            )
        };
        match read {
            0 => break,
            n if n > 0 => {
                // SAFETY: the kernel initialized the first `n` bytes of the spare
                // capacity, and `n <= spare.len()`.
                unsafe { buf.set_len(filled + n as usize) };
            }
            _ => {
                let error = std::io::Error::last_os_error();
                if error.kind() != std::io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
    Ok(buf)
}

/// Reads the batches of `file` in `[from, end)` whole and CRC-checked, in chunks of
/// `chunk_bytes`, calling `visit(position, header, bytes)` for each until it returns
/// `Ok(false)`. Data that is not a whole valid batch is an error: callers scan
/// sealed data that recovery already validated, so damage there is news.
pub(crate) fn for_each_batch<E>(
    file: &File,
    (from, end): (u64, u64),
    chunk_bytes: usize,
    mut visit: impl FnMut(u64, &BatchHeader, &[u8]) -> Result<bool, E>,
) -> Result<(), E>
where
    E: From<std::io::Error> + From<(u64, BatchError)>,
{
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = from;
    let mut position = from;
    while position < end {
        let mut at = (position - buf_start) as usize;
        if position < buf_start || at + HEADER_BYTES > buf.len() {
            buf = read_range(file, position, chunk_bytes.min((end - position) as usize))?;
            buf_start = position;
            at = 0;
        }
        let header =
            BatchHeader::parse_unchecked(&buf[at..]).map_err(|e| E::from((position, e)))?;
        let size = header.size_bytes();
        if position + size as u64 > end {
            return Err(E::from((
                position,
                BatchError::Truncated {
                    needed: size,
                    available: (end - position) as usize,
                },
            )));
        }
        if at + size > buf.len() {
            buf = read_range(
                file,
                position,
                chunk_bytes.max(size).min((end - position) as usize),
            )?;
            buf_start = position;
            at = 0;
        }
        let bytes = buf.get(at..at + size).ok_or_else(|| {
            E::from((
                position,
                BatchError::Truncated {
                    needed: size,
                    available: buf.len() - at,
                },
            ))
        })?;
        BatchHeader::parse(bytes).map_err(|e| E::from((position, e)))?;
        if !visit(position, &header, bytes)? {
            break;
        }
        position += size as u64;
    }
    Ok(())
}
