//! Rate-limited per-update emission (`Emit::OnUpdateEvery`): a window's updates are
//! emitted at most once per interval of stream time; an update that comes sooner waits
//! and is emitted when the interval has passed (or when the window closes), carrying the
//! aggregate as it is then. Both facts live in the window store (through the overlay), so
//! the emissions replay identically.
//!
//! - family 2: pending windows, indexed by when they are due;
//! - family 3: when each window was last emitted (data only).

use super::state::{Cursor, Family, Slot};
use super::Window;
use crate::error::ProcessError;
use crate::task::TaskEnv;

const PENDING: u8 = 2;
const LAST: u8 = 3;

/// The rate limiter of one windowed aggregation.
pub(crate) struct RateLimit {
    pub store: String,
    pub interval_ms: i64,
}

impl RateLimit {
    fn pending(&self) -> Family<'_> {
        Family::new(&self.store, PENDING)
    }

    fn last_family(&self) -> Family<'_> {
        Family::new(&self.store, LAST)
    }

    fn last(&self, env: &TaskEnv, kb: &[u8], w: Window) -> Result<Option<i64>, ProcessError> {
        match self.last_family().get(env, kb, w.end_ms, w.start_ms)? {
            Some(b) => Ok(Some(i64::from_be_bytes(b.as_slice().try_into().map_err(
                |_| ProcessError::user(format!("corrupt emission time in store {}", self.store)),
            )?))),
            None => Ok(None),
        }
    }

    fn emitted(
        &self,
        env: &mut TaskEnv,
        kb: &[u8],
        w: Window,
        at: i64,
    ) -> Result<(), ProcessError> {
        self.last_family()
            .update(env, kb, w.end_ms, w.start_ms, at.to_be_bytes().to_vec())
    }

    fn pending_slot(w: Window, due: i64) -> Slot {
        Slot {
            end: w.end_ms,
            start: w.start_ms,
            close: due,
        }
    }

    /// Window `w` was updated at stream time `now`: true when the update is emitted now
    /// (and recorded), false when it waits for the interval.
    pub fn on_update(
        &self,
        env: &mut TaskEnv,
        kb: &[u8],
        w: Window,
        now: i64,
    ) -> Result<bool, ProcessError> {
        let due = self
            .last(env, kb, w)?
            .map(|l| l.saturating_add(self.interval_ms));
        match due {
            Some(d) if now < d => {
                self.pending()
                    .put(env, kb, Self::pending_slot(w, d), Vec::new())?;
                Ok(false)
            }
            _ => {
                if let Some(d) = due {
                    self.pending().remove(env, kb, Self::pending_slot(w, d))?;
                }
                self.emitted(env, kb, w, now)?;
                Ok(true)
            }
        }
    }

    /// Windows whose waiting update is due at stream time `now`: emit them now (they are
    /// recorded as emitted).
    pub fn due(&self, env: &mut TaskEnv, now: i64) -> Result<Vec<(Vec<u8>, Window)>, ProcessError> {
        let mut out = Vec::new();
        for (kb, slot) in self.pending().take_closed(env, Cursor::Expire, now)? {
            self.pending().remove(env, &kb, slot)?;
            let w = Window {
                start_ms: slot.start,
                end_ms: slot.end,
            };
            self.emitted(env, &kb, w, now)?;
            out.push((kb, w));
        }
        Ok(out)
    }

    /// Window `w` leaves the store (closed or merged away): forgets it; true when an
    /// update was still waiting (emit the final aggregate).
    pub fn finish(&self, env: &mut TaskEnv, kb: &[u8], w: Window) -> Result<bool, ProcessError> {
        let Some(last) = self.last(env, kb, w)? else {
            return Ok(false);
        };
        self.last_family().forget(env, kb, w.end_ms, w.start_ms)?;
        let slot = Self::pending_slot(w, last.saturating_add(self.interval_ms));
        let waiting = self.pending().get(env, kb, slot.end, slot.start)?.is_some();
        if waiting {
            self.pending().remove(env, kb, slot)?;
        }
        Ok(waiting)
    }
}
