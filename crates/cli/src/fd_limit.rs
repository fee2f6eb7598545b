//! The open-file limit of `strom serve`: segment files (through the log's open-file
//! budget, by default half of this limit) and client connections hold descriptors.
//! Distributions start processes with a soft limit (often 1,024) far below the hard
//! one, so the broker raises its soft `RLIMIT_NOFILE` to the hard limit at start and
//! logs the result; the budget is derived from the raised limit.

/// The soft and hard open-file limits, before and after raising the soft one to the
/// hard one: `(soft before, soft now, hard)`.
pub fn raise_to_hard_limit() -> std::io::Result<(libc::rlim_t, libc::rlim_t, libc::rlim_t)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit; raising the soft limit up to the hard
        // one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok((before, limit.rlim_cur, limit.rlim_max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let (before, now, hard) = raise_to_hard_limit().expect("rlimit");
        assert!(before <= now);
        assert_eq!(now, hard);
    }
}
