//! A process-wide hook told how long each flush of appended data took, so that the
//! broker can export an fdatasync latency histogram without the storage engine
//! knowing about metrics.

use std::sync::OnceLock;
use std::time::Duration;

type Observer = Box<dyn Fn(Duration) + Send + Sync>;

static OBSERVER: OnceLock<Observer> = OnceLock::new();

/// Installs the function called with the duration of every flush of appended data
/// (one group commit: the fdatasync of every segment it covers). Only the first call
/// takes effect; later ones are ignored.
pub fn set_sync_observer(observer: impl Fn(Duration) + Send + Sync + 'static) {
    let _ = OBSERVER.set(Box::new(observer));
}

/// Reports one flush to the observer, if any.
pub(crate) fn observe(elapsed: Duration) {
    if let Some(observer) = OBSERVER.get() {
        observer(elapsed);
    }
}
