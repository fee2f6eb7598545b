//! The Nexmark event model: people, auctions and bids, as in the Nexmark papers and the
//! Beam/Flink implementations (field names in snake case, times in milliseconds since
//! the epoch, prices in cents).

use serde::{Deserialize, Serialize};
use strom_streams::prelude::JsonSerde;

/// A person who registers to sell or bid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Person {
    /// Unique person id.
    pub id: i64,
    /// First and last name.
    pub name: String,
    /// E-mail address.
    pub email_address: String,
    /// Credit card number, four groups of four digits.
    pub credit_card: String,
    /// City of residence.
    pub city: String,
    /// US state of residence (two letters).
    pub state: String,
    /// Event time: when the person registered (ms since the epoch).
    pub date_time: i64,
    /// Padding to the configured average event size.
    pub extra: String,
}

/// An item put up for auction by a seller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Auction {
    /// Unique auction id.
    pub id: i64,
    /// The item's name.
    pub item_name: String,
    /// The item's description.
    pub description: String,
    /// The opening price (cents).
    pub initial_bid: i64,
    /// The lowest price the seller accepts (cents).
    pub reserve: i64,
    /// Event time: when the auction opened (ms since the epoch).
    pub date_time: i64,
    /// When the auction closes (ms since the epoch); bids after it do not count.
    pub expires: i64,
    /// The seller's person id.
    pub seller: i64,
    /// The item's category id.
    pub category: i64,
    /// Padding to the configured average event size.
    pub extra: String,
}

/// A bid on an auction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bid {
    /// The auction bid on.
    pub auction: i64,
    /// The bidder's person id.
    pub bidder: i64,
    /// The bid (cents).
    pub price: i64,
    /// The channel the bid came through (e.g. `Google`, `Apple`).
    pub channel: String,
    /// The URL the bid came from.
    pub url: String,
    /// Event time: when the bid was made (ms since the epoch).
    pub date_time: i64,
    /// Padding to the configured average event size.
    pub extra: String,
}

/// One event of the Nexmark stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A new person.
    Person(Person),
    /// A new auction.
    Auction(Auction),
    /// A new bid.
    Bid(Bid),
}

impl Event {
    /// The event's time (ms since the epoch): what the queries window and join on.
    pub fn date_time(&self) -> i64 {
        match self {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(b) => b.date_time,
        }
    }

    /// The bid, if this event is one.
    pub fn as_bid(&self) -> Option<&Bid> {
        match self {
            Event::Bid(b) => Some(b),
            _ => None,
        }
    }

    /// The auction, if this event is one.
    pub fn as_auction(&self) -> Option<&Auction> {
        match self {
            Event::Auction(a) => Some(a),
            _ => None,
        }
    }

    /// The person, if this event is one.
    pub fn as_person(&self) -> Option<&Person> {
        match self {
            Event::Person(p) => Some(p),
            _ => None,
        }
    }
}

/// How events are written to a topic: JSON, one object per record, e.g.
/// `{"bid":{"auction":1000,"bidder":1001,...}}`.
pub type EventSerde = JsonSerde<Event>;

#[cfg(test)]
mod tests {
    use super::*;
    use strom_streams::prelude::Serde;

    #[test]
    fn events_round_trip_through_json_with_their_kind_as_the_key() {
        let bid = Event::Bid(Bid {
            auction: 1000,
            bidder: 1001,
            price: 4200,
            channel: "Google".into(),
            url: "https://www.nexmark.com/item.htm?query=1".into(),
            date_time: 1_704_067_200_000,
            extra: String::new(),
        });
        let serde = EventSerde::new();
        let bytes = serde.serialize(&bid).expect("serialize");
        assert!(bytes.starts_with(br#"{"bid":{"auction":1000,"#));
        assert_eq!(serde.deserialize(&bytes).expect("deserialize"), bid);
        assert_eq!(bid.date_time(), 1_704_067_200_000);
        assert!(bid.as_auction().is_none() && bid.as_bid().is_some());
    }
}
