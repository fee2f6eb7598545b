//! Query 22, URL directories: the first three directories of each bid's URL.
//! `SPLIT_INDEX`.
//!
//! ```sql
//! SELECT auction, bidder, price, channel,
//!        SPLIT_INDEX(url, '/', 3) AS dir1,
//!        SPLIT_INDEX(url, '/', 4) AS dir2,
//!        SPLIT_INDEX(url, '/', 5) AS dir3
//! FROM bid;
//! ```
//!
//! **Topology.** One stateless step: map each bid.
//!
//! **Output.** Null key, a JSON [`Q22Result`] per bid (append-only, in input order, each
//! at its bid's time); a missing directory is `null`.
//!
//! **`SPLIT_INDEX` semantics** (Flink's, on Apache Commons'
//! `splitByWholeSeparatorPreserveAllTokens`): the string is split at every `/`, keeping
//! empty pieces (`https://www.nexmark.com/a/b/c/item.htm` gives `https:`, ``,
//! `www.nexmark.com`, `a`, `b`, `c`, `item.htm`), and the piece at the 0-based index is
//! returned; an index past the last piece gives `null`, and so does every index of an
//! empty string (it has no pieces at all, not one empty one).

use serde::{Deserialize, Serialize};
use strom_streams::prelude::*;

use super::QueryTopics;
use super::{bids, events};
use crate::model::Bid;

/// A bid with its URL's first three directories.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q22Result {
    /// The auction.
    pub auction: i64,
    /// The bidder.
    pub bidder: i64,
    /// The bid (cents).
    pub price: i64,
    /// The channel.
    pub channel: String,
    /// `SPLIT_INDEX(url, '/', 3)`.
    pub dir1: Option<String>,
    /// `SPLIT_INDEX(url, '/', 4)`.
    pub dir2: Option<String>,
    /// `SPLIT_INDEX(url, '/', 5)`.
    pub dir3: Option<String>,
}

/// Flink's `SPLIT_INDEX(s, separator, index)` for a one-character separator.
pub fn split_index(s: &str, separator: char, index: usize) -> Option<&str> {
    if s.is_empty() {
        return None;
    }
    s.split(separator).nth(index)
}

/// The result row of a bid.
pub fn directories(bid: &Bid) -> Q22Result {
    let dir = |i| split_index(&bid.url, '/', i).map(str::to_string);
    Q22Result {
        auction: bid.auction,
        bidder: bid.bidder,
        price: bid.price,
        channel: bid.channel.clone(),
        dir1: dir(3),
        dir2: dir(4),
        dir3: dir(5),
    }
}

/// Adds q22 to `builder`: bids of `topics.input` → their directories → `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    bids(&events(builder, topics)).map_values(directories).to(
        &topics.output,
        UnitSerde,
        JsonSerde::<Q22Result>::new(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_index;

    #[test]
    fn split_index_keeps_empty_pieces_and_has_none_past_the_end() {
        let url = "https://www.nexmark.com/abc/def/ghi/item.htm?query=1";
        let pieces: Vec<_> = (0..8).map(|i| split_index(url, '/', i)).collect();
        assert_eq!(
            pieces,
            vec![
                Some("https:"),
                Some(""),
                Some("www.nexmark.com"),
                Some("abc"),
                Some("def"),
                Some("ghi"),
                Some("item.htm?query=1"),
                None
            ]
        );
        assert_eq!(split_index("a//", '/', 2), Some(""));
        assert_eq!(split_index("/a", '/', 0), Some(""));
        assert_eq!(split_index("", '/', 0), None);
        assert_eq!(split_index("no-slash", '/', 0), Some("no-slash"));
        assert_eq!(split_index("no-slash", '/', 1), None);
    }
}
