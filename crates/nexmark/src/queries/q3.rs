//! Query 3, local item suggestion: who is selling in OR, ID or CA in category 10, and
//! for what auction ids?
//!
//! ```sql
//! SELECT P.name, P.city, P.state, A.id
//! FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
//! WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
//! ```
//!
//! **Output**: one [`Q3Result`] per matching (auction, seller) pair, whichever of the two
//! arrives first; key = auction id ([`I64Serde`]), value JSON, record timestamp the later
//! of the two event times (whatever the arrival order). Insert-only, as Flink's join of
//! two insert-only inputs.
//!
//! **How**: an incremental join with per-key state (what the Nexmark description asks
//! for). Local sellers and category-10 auctions are keyed by person id and repartitioned
//! so that a seller and their auctions meet in one task. The processor keeps
//! - `q3-local-sellers`: person id → name, city, state, for persons in OR, ID or CA;
//! - `q3-waiting-auctions`: `(seller, auction id)` → auction time, category-10 auctions
//!   whose seller is not (yet) a known local seller.
//!
//! A seller joins the auctions waiting for them (which then leave the store); an auction
//! joins its seller at once or waits. Nothing here depends on time: an auction may come
//! before its seller by any amount.
//!
//! **Differences from Flink**: Nexmark person ids are unique, so a seller's waiting
//! auctions are dropped once joined and a repeated person id is ignored (Flink would join
//! a second person with the same id to every auction again). Auctions of sellers who are
//! not local wait forever, as every row of both sides does in Flink's join state.

use serde::{Deserialize, Serialize};
use strom_streams::prelude::{
    I64Serde, JsonSerde, ProcessError, Processor, ProcessorContext, Record, StoreHandle,
    StreamsBuilder, StreamsError,
};

use super::shared::OrderedPairSerde;
use super::{events, QueryTopics};
use crate::model::Event;

/// The auction category q3 suggests items from.
pub const CATEGORY: i64 = 10;

/// The states whose sellers q3 reports.
pub const STATES: [&str; 3] = ["OR", "ID", "CA"];

/// A q3 result row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Q3Result {
    /// The seller's name.
    pub name: String,
    /// The seller's city.
    pub city: String,
    /// The seller's state.
    pub state: String,
    /// The auction id.
    pub id: i64,
}

/// A local seller's columns, and when they registered.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seller {
    name: String,
    city: String,
    state: String,
    date_time: i64,
}

/// A local seller or a category-10 auction (id and time), keyed by person id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SellerOrAuction {
    Seller(Seller),
    Auction { id: i64, date_time: i64 },
}

/// Adds q3 to `builder`: events from `topics.input`, [`Q3Result`]s to `topics.output`.
pub fn build(builder: &StreamsBuilder, topics: &QueryTopics) -> Result<(), StreamsError> {
    let sellers = StoreHandle::new("q3-local-sellers", I64Serde, JsonSerde::<Seller>::new());
    let waiting = StoreHandle::new("q3-waiting-auctions", OrderedPairSerde, I64Serde);
    builder.add_store(&sellers);
    builder.add_store(&waiting);
    let stores = [sellers.name().to_string(), waiting.name().to_string()];
    events(builder, topics)
        .flat_map(|_, e| match e {
            Event::Person(p) if STATES.contains(&p.state.as_str()) => {
                let seller = Seller {
                    name: p.name,
                    city: p.city,
                    state: p.state,
                    date_time: p.date_time,
                };
                Some((p.id, SellerOrAuction::Seller(seller)))
            }
            Event::Auction(a) if a.category == CATEGORY => {
                let auction = SellerOrAuction::Auction {
                    id: a.id,
                    date_time: a.date_time,
                };
                Some((a.seller, auction))
            }
            _ => None,
        })
        .repartition("q3-sellers", I64Serde, JsonSerde::<SellerOrAuction>::new())
        .process(
            move || LocalItems {
                sellers: sellers.clone(),
                waiting: waiting.clone(),
            },
            &[stores[0].as_str(), stores[1].as_str()],
        )
        .to(&topics.output, I64Serde, JsonSerde::<Q3Result>::new());
    Ok(())
}

/// The incremental join of local sellers and their category-10 auctions.
struct LocalItems {
    sellers: StoreHandle<i64, Seller>,
    waiting: StoreHandle<(i64, i64), i64>,
}

fn row(seller: &Seller, auction: i64) -> Q3Result {
    Q3Result {
        name: seller.name.clone(),
        city: seller.city.clone(),
        state: seller.state.clone(),
        id: auction,
    }
}

impl Processor<i64, SellerOrAuction, i64, Q3Result> for LocalItems {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, i64, Q3Result>,
        r: Record<i64, SellerOrAuction>,
    ) -> Result<(), ProcessError> {
        let person = r.key;
        match r.value {
            SellerOrAuction::Seller(seller) => {
                {
                    let mut sellers = ctx.store(&self.sellers)?;
                    if sellers.get(&person)?.is_some() {
                        return Ok(());
                    }
                    sellers.put(&person, &seller)?;
                }
                let auctions = {
                    let mut waiting = ctx.store(&self.waiting)?;
                    let auctions = waiting.range((person, i64::MIN)..=(person, i64::MAX))?;
                    for (key, _) in &auctions {
                        waiting.delete(key)?;
                    }
                    auctions
                };
                for ((_, auction), auction_time) in auctions {
                    let ts = auction_time.max(seller.date_time);
                    ctx.forward(Record::new(auction, row(&seller, auction), ts));
                }
            }
            SellerOrAuction::Auction { id, date_time } => {
                let seller = ctx.store(&self.sellers)?.get(&person)?;
                match seller {
                    Some(seller) => {
                        let ts = date_time.max(seller.date_time);
                        ctx.forward(Record::new(id, row(&seller, id), ts));
                    }
                    None => ctx.store(&self.waiting)?.put(&(person, id), &date_time)?,
                }
            }
        }
        Ok(())
    }
}
