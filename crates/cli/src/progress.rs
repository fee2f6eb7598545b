//! Progress bars on stderr for long operations; indicatif draws nothing when stderr
//! is not a terminal, so scripts and tests see only the final summary.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar towards `total` units (`bytes` formats them as sizes).
pub fn bar(total: u64, bytes: bool) -> ProgressBar {
    let template = if bytes {
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}"
    } else {
        "{bar:40} {human_pos}/{human_len} {per_sec} eta {eta} {msg}"
    };
    styled(ProgressBar::new(total), template)
}

/// A counter for operations of unknown length.
pub fn counter() -> ProgressBar {
    styled(
        ProgressBar::no_length(),
        "{spinner} {human_pos} {per_sec} {elapsed} {msg}",
    )
}

fn styled(bar: ProgressBar, template: &str) -> ProgressBar {
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
