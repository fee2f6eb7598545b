//! Nexmark q3–q9 through the test driver, each compared exactly with a brute-force
//! reference written independently from the query's SQL: plain loops over every event.
//!
//! The generated inputs (the standard Nexmark generator's, and a tie-rich one) are out of
//! order by less than the queries' grace ([`WATERMARK_DELAY_MS`]), so no event is late
//! and the SQL's answer is the exact expected output; [`support::tail`] then closes every
//! window and auction. Late events,
//! ties, window boundaries and bids outside an auction's lifetime also have small
//! hand-written cases with their expected rows spelled out.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use strom_nexmark::generator::{Generator, GeneratorConfig, NexmarkGenerator};
use strom_nexmark::model::{Auction, Bid, Event, Person};
use strom_nexmark::queries::QueryTopics;
use strom_nexmark::queries::{q3, q4, q5, q6, q7, q7w, q8, q9, query, WATERMARK_DELAY_MS};
use strom_nexmark::run::{driver_outputs, topology};
use strom_streams::inprocess::{InProcessConfig, InProcessRunner};
use strom_streams::prelude::{I64Serde, OutputRecord, Record, Serde};
use support::{generate, run, tail_start, GenConfig, BASE_TIME_MS};

/// The standard Nexmark generator at 50 events per second of event time (so a few
/// thousand events span several windows and auctions), out of order within groups of
/// 41 events (0.8 s).
fn nexmark_input() -> Vec<Event> {
    let generator = Generator::Standard(NexmarkGenerator::new(GeneratorConfig {
        seed: 18,
        events_per_second: 50,
        out_of_order_group_size: 41,
        ..GeneratorConfig::default()
    }));
    generator.events(0..4_000).collect()
}

/// The generated inputs every query runs on, each checked to be on time: the standard
/// generator's, and [`support::generate`]'s, whose bids are spread over few auctions
/// with coarse prices and bids at exactly each window end, so that ties, boundary bids
/// and auctions waiting for their sellers are common.
fn inputs() -> Vec<(&'static str, Vec<Event>)> {
    let inputs = vec![
        ("nexmark generator", nexmark_input()),
        ("tie-rich builder", generate(&GenConfig::default())),
    ];
    for (name, events) in &inputs {
        let lateness = support::max_lateness_ms(events);
        assert!(lateness < WATERMARK_DELAY_MS, "{name}: {lateness} ms late");
    }
    inputs
}

/// The tie-rich input alone (for checks that the edge cases occur).
fn tie_rich<'a>(inputs: &'a [(&'static str, Vec<Event>)]) -> &'a [Event] {
    &inputs[1].1
}

fn persons(events: &[Event]) -> BTreeMap<i64, Person> {
    let mut out = BTreeMap::new();
    for p in events.iter().filter_map(Event::as_person) {
        out.entry(p.id).or_insert_with(|| p.clone());
    }
    out
}

/// First occurrence of each auction, by id.
fn auctions(events: &[Event]) -> BTreeMap<i64, Auction> {
    let mut out = BTreeMap::new();
    for a in events.iter().filter_map(Event::as_auction) {
        out.entry(a.id).or_insert_with(|| a.clone());
    }
    out
}

fn bids(events: &[Event]) -> Vec<Bid> {
    events.iter().filter_map(Event::as_bid).cloned().collect()
}

/// SQL: `B.dateTime BETWEEN A.dateTime AND A.expires`.
fn in_lifetime(a: &Auction, b: &Bid) -> bool {
    a.date_time <= b.date_time && b.date_time <= a.expires
}

/// The winning bid of every auction with a bid in its lifetime: `ROW_NUMBER() OVER
/// (PARTITION BY A.id ORDER BY B.price DESC, B.dateTime ASC) = 1`, first arrival on a
/// full tie.
fn reference_winners(events: &[Event]) -> BTreeMap<i64, (Auction, Bid)> {
    let mut out: BTreeMap<i64, (Auction, Bid)> = BTreeMap::new();
    let all_bids = bids(events);
    for (id, a) in auctions(events) {
        let mut best: Option<&Bid> = None;
        for b in &all_bids {
            if b.auction != id || !in_lifetime(&a, b) {
                continue;
            }
            let better = match best {
                None => true,
                Some(o) => b.price > o.price || (b.price == o.price && b.date_time < o.date_time),
            };
            if better {
                best = Some(b);
            }
        }
        if let Some(b) = best {
            out.insert(id, (a, b.clone()));
        }
    }
    out
}

/// The values of a query's output grouped by key, in output order.
fn per_key<V: Clone>(out: &[(i64, V, i64)]) -> BTreeMap<i64, Vec<V>> {
    let mut m: BTreeMap<i64, Vec<V>> = BTreeMap::new();
    for (k, v, _) in out {
        m.entry(*k).or_default().push(v.clone());
    }
    m
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn t(offset_ms: i64) -> i64 {
    BASE_TIME_MS + offset_ms
}

fn person(id: i64, state: &str, at: i64) -> Event {
    Event::Person(Person {
        id,
        name: format!("person {id}"),
        email_address: String::new(),
        credit_card: String::new(),
        city: format!("city {id}"),
        state: state.into(),
        date_time: t(at),
        extra: String::new(),
    })
}

fn renamed(e: Event, name: &str) -> Event {
    match e {
        Event::Person(p) => Event::Person(Person {
            name: name.into(),
            ..p
        }),
        other => other,
    }
}

fn auction(id: i64, seller: i64, category: i64, at: i64, expires: i64) -> Event {
    Event::Auction(Auction {
        id,
        item_name: format!("item {id}"),
        description: String::new(),
        initial_bid: 100,
        reserve: 10_000,
        date_time: t(at),
        expires: t(expires),
        seller,
        category,
        extra: String::new(),
    })
}

fn bid(auction: i64, price: i64, at: i64, bidder: i64) -> Event {
    Event::Bid(Bid {
        auction,
        bidder,
        price,
        channel: "Google".into(),
        url: String::new(),
        date_time: t(at),
        extra: format!("bid {bidder}"),
    })
}

/// Bids of price 1 on auction 999 every second in `[from, to]`: they move stream time
/// along (closing windows) without a large jump.
fn ramp(from: i64, to: i64) -> Vec<Event> {
    (from / 1_000..=to / 1_000)
        .map(|s| bid(999, 1, s * 1_000, 0))
        .collect()
}

// ---------------------------------------------------------------------------------- q3

fn q3_reference(events: &[Event]) -> Vec<q3::Q3Result> {
    let people = persons(events);
    let mut rows = Vec::new();
    for a in auctions(events).values() {
        if a.category != 10 {
            continue;
        }
        if let Some(p) = people.get(&a.seller) {
            if ["OR", "ID", "CA"].contains(&p.state.as_str()) {
                rows.push(q3::Q3Result {
                    name: p.name.clone(),
                    city: p.city.clone(),
                    state: p.state.clone(),
                    id: a.id,
                });
            }
        }
    }
    sorted(rows)
}

#[test]
fn q3_joins_local_sellers_with_their_category_10_auctions_in_either_order() {
    let inputs = inputs();
    for (name, events) in &inputs {
        let out: Vec<(i64, q3::Q3Result, i64)> = run(q3::build, events, &I64Serde);
        assert!(out.iter().all(|(k, v, _)| *k == v.id));
        let got = sorted(out.into_iter().map(|(_, v, _)| v).collect());
        let expected = q3_reference(events);
        assert!(expected.len() >= 5, "{name}: rows: {}", expected.len());
        assert_eq!(got, expected, "{name}");
    }
    // Some auctions arrive before their (local) seller.
    let events = tie_rich(&inputs);
    let people = persons(events);
    let arrival: HashMap<i64, usize> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.as_person().map(|p| (p.id, i)))
        .collect();
    let early = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.as_auction().map(|a| (i, a)))
        .filter(|(i, a)| a.category == 10 && arrival.get(&a.seller).is_some_and(|p| p > i))
        .filter(|(_, a)| {
            people
                .get(&a.seller)
                .is_some_and(|p| ["OR", "ID", "CA"].contains(&p.state.as_str()))
        })
        .count();
    assert!(early > 0, "an auction that waits for its seller");
}

#[test]
fn q3_edge_cases_order_states_categories_and_repeated_persons() {
    let events = vec![
        auction(100, 1, 10, 0, 50_000), // before its seller
        person(1, "OR", 10),
        auction(101, 1, 11, 20, 50_000), // another category
        person(2, "WA", 30),
        auction(102, 2, 10, 40, 50_000), // a seller elsewhere
        person(1, "CA", 50),             // a repeated id: ignored
        auction(103, 1, 10, 60, 50_000),
        auction(104, 3, 10, 70, 50_000), // a seller who never registers
    ];
    let mut d = support::driver(q3::build);
    support::pipe(&mut d, &events);
    let out: Vec<(i64, q3::Q3Result, i64)> = support::output(&mut d, &I64Serde);
    let rows: Vec<(i64, String, i64)> = out
        .into_iter()
        .map(|(k, v, _)| (k, v.state, v.id))
        .collect();
    assert_eq!(rows, vec![(100, "OR".into(), 100), (103, "OR".into(), 103)]);
}

// ---------------------------------------------------------------------------------- q4

/// q4's updates per category, replayed in arrival order: an auction's maximum changes
/// when its first lifetime bid is seen (at the auction, for bids that came before it)
/// and when a higher one comes; each change updates the category's average.
fn q4_reference_updates(events: &[Event]) -> BTreeMap<i64, Vec<q4::Q4Result>> {
    let mut seen: HashMap<i64, Auction> = HashMap::new();
    let mut early: HashMap<i64, Vec<Bid>> = HashMap::new();
    let mut max: HashMap<i64, i64> = HashMap::new();
    let mut sums: HashMap<i64, (i64, i64)> = HashMap::new();
    let mut out: BTreeMap<i64, Vec<q4::Q4Result>> = BTreeMap::new();
    let mut change = |a: &Auction, new: i64, max: &mut HashMap<i64, i64>| {
        let old = max.insert(a.id, new);
        let (sum, n) = sums.entry(a.category).or_default();
        *sum += new - old.unwrap_or(0);
        *n += i64::from(old.is_none());
        out.entry(a.category).or_default().push(q4::Q4Result {
            category: a.category,
            avg_final: *sum / *n,
            auctions: *n,
        });
    };
    for e in events {
        match e {
            Event::Auction(a) if !seen.contains_key(&a.id) => {
                seen.insert(a.id, a.clone());
                let first = early
                    .remove(&a.id)
                    .unwrap_or_default()
                    .iter()
                    .filter(|b| in_lifetime(a, b))
                    .map(|b| b.price)
                    .max();
                if let Some(p) = first {
                    change(a, p, &mut max);
                }
            }
            Event::Bid(b) => match seen.get(&b.auction) {
                Some(a) if in_lifetime(a, b) => {
                    if max.get(&a.id).is_none_or(|m| b.price > *m) {
                        change(a, b.price, &mut max);
                    }
                }
                Some(_) => {}
                None => early.entry(b.auction).or_default().push(b.clone()),
            },
            _ => {}
        }
    }
    out
}

#[test]
fn q4_updates_each_categorys_average_winning_price_as_the_sql_does() {
    for (name, events) in &inputs() {
        let out: Vec<(i64, q4::Q4Result, i64)> = run(q4::build, events, &I64Serde);
        let got = per_key(&out);
        // The SQL's final answer, from the winners alone.
        let mut finals: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for (a, b) in reference_winners(events).values() {
            let e = finals.entry(a.category).or_default();
            e.0 += b.price;
            e.1 += 1;
        }
        let last: BTreeMap<i64, (i64, i64)> = got
            .iter()
            .map(|(c, rows)| {
                let r = rows.last().expect("a row");
                (*c, (r.avg_final, r.auctions))
            })
            .collect();
        let expected_last: BTreeMap<i64, (i64, i64)> =
            finals.iter().map(|(c, (s, n))| (*c, (s / n, *n))).collect();
        assert_eq!(finals.len(), 5, "{name}: all five categories");
        assert_eq!(last, expected_last, "{name}");
        // And every update on the way.
        let expected = q4_reference_updates(events);
        assert!(
            expected.values().map(Vec::len).sum::<usize>() > 100,
            "{name}"
        );
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn q4_edge_cases_rises_ties_early_and_late_bids() {
    let events = vec![
        bid(2, 300, 2_000, 1), // before its auction: counts when it comes
        auction(1, 7, 10, 1_000, 10_000),
        auction(2, 7, 10, 1_500, 12_000),
        bid(1, 500, 3_000, 1), // (500) / 1 then, with auction 2's 300 already in: ...
        bid(1, 700, 4_000, 2), // 1's maximum rises
        bid(1, 700, 3_500, 3), // an earlier bid at the same price: no change
        bid(1, 9_000, 10_001, 4), // after auction 1 expired
        bid(2, 200, 5_000, 5), // lower: no change
        bid(3, 100, 5_500, 6), // an auction never seen
    ];
    let mut closing = ramp(6_000, 20_000);
    closing.push(bid(2, 5_000, 11_000, 7)); // in 2's lifetime, but 2 closed at 16 000
    let mut d = support::driver(q4::build);
    support::pipe(&mut d, &events);
    support::pipe(&mut d, &closing);
    let out: Vec<(i64, q4::Q4Result, i64)> = support::output(&mut d, &I64Serde);
    let rows: Vec<(i64, i64)> = out
        .iter()
        .map(|(_, r, _)| (r.avg_final, r.auctions))
        .collect();
    // 2 arrives with its early 300: 300/1; 1's 500: 800/2; 1 rises to 700: 1000/2.
    assert_eq!(rows, vec![(300, 1), (400, 2), (500, 2)]);
    assert!(out.iter().all(|(k, r, _)| *k == 10 && r.category == 10));
}

// ---------------------------------------------------------------------------------- q5

fn q5_reference(events: &[Event], until: i64) -> BTreeSet<q5::Q5Result> {
    let mut counts: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for b in bids(events) {
        let last = b.date_time - b.date_time.rem_euclid(q5::SLIDE_MS);
        let mut start = last;
        while start > b.date_time - q5::WINDOW_MS {
            *counts.entry((start, b.auction)).or_default() += 1;
            start -= q5::SLIDE_MS;
        }
    }
    let mut max: BTreeMap<i64, i64> = BTreeMap::new();
    for ((start, _), n) in &counts {
        let m = max.entry(*start).or_default();
        *m = (*m).max(*n);
    }
    counts
        .iter()
        .filter(|((start, _), n)| **n == max[start] && start + q5::WINDOW_MS <= until)
        .map(|((start, auction), n)| q5::Q5Result {
            auction: *auction,
            num: *n,
            starttime: *start,
            endtime: start + q5::WINDOW_MS,
        })
        .collect()
}

#[test]
fn q5_reports_every_auction_with_the_most_bids_of_each_hopping_window() {
    let inputs = inputs();
    for (name, events) in &inputs {
        let until = tail_start(events);
        let out: Vec<(i64, q5::Q5Result, i64)> = run(q5::build, events, &I64Serde);
        let rows: Vec<q5::Q5Result> = out
            .into_iter()
            .map(|(_, r, _)| r)
            .filter(|r| r.endtime <= until)
            .collect();
        let got: BTreeSet<q5::Q5Result> = rows.iter().cloned().collect();
        assert_eq!(got.len(), rows.len(), "{name}: each row once");
        let expected = q5_reference(events, until);
        let windows: BTreeSet<i64> = expected.iter().map(|r| r.starttime).collect();
        assert!(windows.len() > 20, "{name}: windows: {}", windows.len());
        assert_eq!(got, expected, "{name}");
    }
    let expected = q5_reference(tie_rich(&inputs), tail_start(tie_rich(&inputs)));
    let windows: BTreeSet<i64> = expected.iter().map(|r| r.starttime).collect();
    assert!(expected.len() > windows.len(), "some windows have ties");
}

#[test]
fn q5_edge_cases_ties_and_windows_that_differ() {
    let mut events = vec![
        bid(1, 10, 100, 0),
        bid(2, 10, 200, 0),
        bid(1, 10, 300, 0),
        bid(2, 10, 400, 0),
        bid(3, 10, 500, 0),
        bid(3, 10, 2_100, 0),
        bid(3, 10, 2_200, 0),
    ];
    events.extend(ramp(12_000, 40_000));
    let mut d = support::driver(q5::build);
    support::pipe(&mut d, &events);
    let out: Vec<(i64, q5::Q5Result, i64)> = support::output(&mut d, &I64Serde);
    let got: BTreeSet<(i64, i64, i64)> = out
        .into_iter()
        .map(|(_, r, _)| (r.starttime - BASE_TIME_MS, r.auction, r.num))
        .filter(|(start, _, _)| *start <= 2_000)
        .collect();
    let mut expected: BTreeSet<(i64, i64, i64)> = [(-8_000, 1, 2), (-8_000, 2, 2)].into();
    for start in [-6_000, -4_000, -2_000, 0] {
        expected.insert((start, 3, 3));
    }
    expected.insert((2_000, 3, 2));
    assert_eq!(got, expected);
}

// ---------------------------------------------------------------------------------- q6

/// q6's updates per seller: auctions close in order of (expiry, id); each closed
/// auction with a winner adds its sale, and the seller's newest 10 sales by winning bid
/// time (then auction id) are averaged.
fn q6_reference_updates(events: &[Event]) -> BTreeMap<i64, Vec<q6::Q6Result>> {
    let mut closed: Vec<(Auction, Bid)> = reference_winners(events).into_values().collect();
    closed.sort_by_key(|(a, _)| (a.expires, a.id));
    let mut sales: BTreeMap<i64, Vec<(i64, i64, i64)>> = BTreeMap::new();
    let mut out: BTreeMap<i64, Vec<q6::Q6Result>> = BTreeMap::new();
    for (a, b) in closed {
        let s = sales.entry(a.seller).or_default();
        s.push((b.date_time, a.id, b.price));
        s.sort();
        let newest = &s[s.len().saturating_sub(10)..];
        let avg = newest.iter().map(|x| x.2).sum::<i64>() / newest.len() as i64;
        out.entry(a.seller).or_default().push(q6::Q6Result {
            seller: a.seller,
            avg_price: avg,
        });
    }
    out
}

#[test]
fn q6_averages_each_sellers_last_ten_winning_prices() {
    for (name, events) in &inputs() {
        let out: Vec<(i64, q6::Q6Result, i64)> = run(q6::build, events, &I64Serde);
        let got = per_key(&out);
        let expected = q6_reference_updates(events);
        assert!(
            expected.values().any(|rows| rows.len() > 10),
            "{name}: a seller with more than ten sales"
        );
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn q6_edge_cases_the_newest_ten_by_winning_bid_time() {
    // Seller 7 sells auctions 1..=12; auction k closes k-th but its winning bid is
    // placed at 12 - k seconds in: the newest sales by bid time close first.
    let mut events = Vec::new();
    for k in 1..=12i64 {
        events.push(auction(k, 7, 10, 0, 20_000 + k * 100));
    }
    for k in 1..=12i64 {
        events.push(bid(k, k * 100, (12 - k) * 1_000 + 500, k));
    }
    events.extend(ramp(13_000, 40_000));
    let mut d = support::driver(q6::build);
    support::pipe(&mut d, &events);
    let out: Vec<(i64, q6::Q6Result, i64)> = support::output(&mut d, &I64Serde);
    let avgs: Vec<i64> = out.iter().map(|(_, r, _)| r.avg_price).collect();
    // Closing order 1, 2, …: running averages of 100, 200, … until ten are held; then
    // auctions 11 and 12 have the oldest bids and leave the average as it was.
    let mut expected: Vec<i64> = (1..=10i64)
        .map(|n| (1..=n).sum::<i64>() * 100 / n)
        .collect();
    expected.extend([550, 550]);
    assert_eq!(avgs, expected);
}

// ------------------------------------------------------------------------------ q7, q7w

/// Every real window's maximum and the bids at it; `through_end` includes a bid at
/// exactly the window's end (q7's `BETWEEN`), which may then appear twice.
fn q7_reference(events: &[Event], through_end: bool) -> Vec<q7::Q7Result> {
    let all = bids(events);
    let mut max: BTreeMap<i64, i64> = BTreeMap::new();
    for b in &all {
        let start = b.date_time - b.date_time.rem_euclid(q7::WINDOW_MS);
        let m = max.entry(start).or_default();
        *m = (*m).max(b.price);
    }
    let mut rows = Vec::new();
    for (start, m) in max {
        let end = start + q7::WINDOW_MS;
        for b in &all {
            let inside =
                start <= b.date_time && (b.date_time < end || (through_end && b.date_time == end));
            if inside && b.price == m {
                rows.push(q7::Q7Result::from(b.clone()));
            }
        }
    }
    sorted(rows)
}

fn real_rows(out: Vec<(i64, q7::Q7Result, i64)>) -> Vec<q7::Q7Result> {
    assert!(out.iter().all(|(k, r, _)| *k == r.auction));
    // The tail's bids are priced 0 and never equal a real window's maximum.
    sorted(
        out.into_iter()
            .map(|(_, r, _)| r)
            .filter(|r| r.price > 0)
            .collect(),
    )
}

#[test]
fn q7_returns_the_highest_bids_of_each_window_including_its_end_as_between_does() {
    let inputs = inputs();
    for (name, events) in &inputs {
        let got = real_rows(run(q7::build, events, &I64Serde));
        let expected = q7_reference(events, true);
        assert!(expected.len() > 5, "{name}");
        assert_eq!(got, expected, "{name}");
    }
    let events = tie_rich(&inputs);
    let windowed = q7_reference(events, false);
    assert!(
        q7_reference(events, true).len() > windowed.len(),
        "bids at a window's end joined twice"
    );
    assert!(
        windowed.len()
            > windowed
                .iter()
                .map(|r| r.date_time / 10_000)
                .collect::<BTreeSet<_>>()
                .len(),
        "windows with tied maxima"
    );
}

#[test]
fn q7w_returns_the_highest_bids_of_each_window_once() {
    for (name, events) in &inputs() {
        let got = real_rows(run(q7w::build, events, &I64Serde));
        assert_eq!(got, q7_reference(events, false), "{name}");
    }
}

/// Window [0, 10 s): maximum 800 by two bids; a bid at exactly 10 s at 800 (below the
/// next window's maximum, 900, which arrived first); late bids; one far too late for q7.
fn q7_edge_input() -> Vec<Event> {
    let mut events = vec![
        bid(1, 500, 1_000, 1),
        bid(1, 800, 5_000, 2),
        bid(2, 800, 9_999, 3),
        bid(1, 900, 10_500, 9), // the next window's maximum, before the bid at its start
        bid(3, 800, 10_000, 4),
        bid(1, 300, 12_000, 5),
        bid(1, 100, 14_500, 0), // closes [0, 10 s) (stream time ≥ 14 s)
        bid(4, 800, 3_000, 6),  // too late for [0, 10 s)'s maximum
        bid(4, 700, 3_500, 8),  // too late, and below the maximum anyway
    ];
    events.extend(ramp(15_000, 30_000));
    events.push(bid(5, 800, 4_000, 7)); // 26 s behind: too late for the join as well
    events.extend(ramp(31_000, 60_000));
    events
}

fn bidders(out: Vec<(i64, q7::Q7Result, i64)>) -> Vec<i64> {
    let mut v: Vec<i64> = out
        .into_iter()
        .filter(|(_, r, _)| r.price >= 100)
        .map(|(_, r, _)| r.bidder)
        .collect();
    v.sort();
    v
}

#[test]
fn q7_edge_cases_boundary_bids_and_late_bids() {
    let mut d = support::driver(q7::build);
    support::pipe(&mut d, &q7_edge_input());
    let out = support::output(&mut d, &I64Serde);
    // Window 0: bidders 2, 3 and 4 (at its end); window 1: 9; the late bid 6 still joins
    // window 0's maximum, as Flink's regular join; 7 is past the join's grace.
    assert_eq!(bidders(out), vec![2, 3, 4, 6, 9]);
    assert!(
        support::dead_letters(&mut d) >= 2,
        "bids 6 (window) and 7 (join) are late"
    );
}

#[test]
fn q7w_edge_cases_boundary_bids_and_late_bids() {
    let mut d = support::driver(q7w::build);
    support::pipe(&mut d, &q7_edge_input());
    let out = support::output(&mut d, &I64Serde);
    assert_eq!(bidders(out), vec![2, 3, 9]);
    assert_eq!(support::dead_letters(&mut d), 3, "bids 6, 7 and 8 are late");
}

// ---------------------------------------------------------------------------------- q8

fn q8_reference(events: &[Event], until: i64) -> BTreeSet<q8::Q8Result> {
    let window = |t: i64| t - t.rem_euclid(q8::WINDOW_MS);
    let mut rows = BTreeSet::new();
    for p in events.iter().filter_map(Event::as_person) {
        for a in events.iter().filter_map(Event::as_auction) {
            let start = window(p.date_time);
            if a.seller == p.id && window(a.date_time) == start && start + q8::WINDOW_MS <= until {
                rows.insert(q8::Q8Result {
                    id: p.id,
                    name: p.name.clone(),
                    starttime: start,
                });
            }
        }
    }
    rows
}

#[test]
fn q8_finds_persons_who_opened_an_auction_in_the_window_they_registered() {
    for (name, events) in &inputs() {
        let until = tail_start(events);
        let out: Vec<(i64, q8::Q8Result, i64)> = run(q8::build, events, &I64Serde);
        let rows: Vec<q8::Q8Result> = out
            .into_iter()
            .map(|(_, r, _)| r)
            .filter(|r| r.id >= 0 && r.starttime + q8::WINDOW_MS <= until)
            .collect();
        let got: BTreeSet<q8::Q8Result> = rows.iter().cloned().collect();
        assert_eq!(
            got.len(),
            rows.len(),
            "{name}: one row per person and window"
        );
        let expected = q8_reference(events, until);
        assert!(expected.len() >= 3, "{name}: rows: {}", expected.len());
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn q8_edge_cases_adjacent_windows_repeats_and_late_events() {
    let mut events = vec![
        person(1, "OR", 1_000),
        auction(10, 1, 10, 9_999, 20_000), // same window as 1's registration
        person(2, "OR", 9_000),
        auction(11, 2, 10, 10_000, 20_000), // the next window
        person(3, "OR", 11_000),
        auction(12, 3, 10, 12_000, 20_000),
        auction(13, 3, 10, 13_000, 20_000), // two auctions, one row
        auction(14, 5, 10, 13_500, 20_000), // before its seller, same window
        person(5, "OR", 14_000),
        person(6, "OR", 14_500), // stream time 14.5 s closes [0, 10 s)
        person(6, "OR", 14_600), // the same person again: one row
        auction(16, 6, 10, 14_700, 20_000),
        person(7, "OR", 15_000),
        renamed(person(7, "OR", 15_100), "person seven"), // another name: another row
        auction(17, 7, 10, 15_200, 20_000),
        person(4, "OR", 2_000),            // late
        auction(15, 4, 10, 3_000, 20_000), // late
    ];
    events.extend((15..60).map(|s| person(-s, "XX", s * 1_000)));
    let mut d = support::driver(q8::build);
    support::pipe(&mut d, &events);
    let out: Vec<(i64, q8::Q8Result, i64)> = support::output(&mut d, &I64Serde);
    let rows: Vec<(i64, i64)> = out
        .into_iter()
        .map(|(_, r, _)| (r.id, r.starttime - BASE_TIME_MS))
        .collect();
    let expected = [
        (1, 0),
        (3, 10_000),
        (5, 10_000),
        (6, 10_000),
        (7, 10_000),
        (7, 10_000),
    ];
    assert_eq!(rows, expected);
    assert_eq!(support::dead_letters(&mut d), 2);
}

// ---------------------------------------------------------------------------------- q9

fn q9_row(a: &Auction, b: &Bid) -> q9::Q9Result {
    q9::Q9Result {
        id: a.id,
        item_name: a.item_name.clone(),
        description: a.description.clone(),
        initial_bid: a.initial_bid,
        reserve: a.reserve,
        date_time: a.date_time,
        expires: a.expires,
        seller: a.seller,
        category: a.category,
        extra: a.extra.clone(),
        auction: b.auction,
        bidder: b.bidder,
        price: b.price,
        bid_date_time: b.date_time,
        bid_extra: b.extra.clone(),
    }
}

#[test]
fn q9_emits_each_auctions_winning_bid_once_as_the_sql_ranks_them() {
    let inputs = inputs();
    for (name, events) in &inputs {
        let out: Vec<(i64, q9::Q9Result, i64)> = run(q9::build, events, &I64Serde);
        let got: BTreeMap<i64, q9::Q9Result> =
            out.iter().map(|(k, v, _)| (*k, v.clone())).collect();
        assert_eq!(got.len(), out.len(), "{name}: one row per auction");
        let expected: BTreeMap<i64, q9::Q9Result> = reference_winners(events)
            .iter()
            .map(|(id, (a, b))| (*id, q9_row(a, b)))
            .collect();
        assert!(expected.len() > 50, "{name}: winners: {}", expected.len());
        assert_eq!(got, expected, "{name}");
        // Each row is stamped with its auction's expiry.
        assert!(out.iter().all(|(_, v, ts)| *ts == v.expires), "{name}");
    }
    // The tie-breaks are exercised: a winner with a rival at the same price.
    let events = tie_rich(&inputs);
    let all = bids(events);
    let ties = reference_winners(events)
        .values()
        .filter(|(a, w)| {
            all.iter()
                .any(|b| b.auction == a.id && in_lifetime(a, b) && b.price == w.price && b != w)
        })
        .count();
    assert!(ties > 0, "a winner with a rival at the same price");
}

#[test]
fn q9_edge_cases_lifetime_bounds_ties_early_and_late_bids() {
    // Only auctions and bids reach the core, so they are its clock (persons are not).
    let events = vec![
        bid(2, 300, 12_000, 1), // at 2's start, before 2 arrives: waits, counts
        bid(1, 900, 9_999, 2),  // before auction 1 starts
        auction(2, 7, 10, 12_000, 13_000),
        auction(1, 7, 10, 10_000, 20_000),
        bid(1, 500, 10_000, 3),   // at the start: counts
        bid(1, 700, 20_000, 4),   // at expiry: counts (closes auction 2)
        bid(1, 700, 15_000, 11),  // same price, earlier: wins
        bid(1, 700, 15_000, 12),  // a full tie: the first to arrive stays
        bid(1, 9_999, 20_001, 5), // after expiry
        bid(3, 100, 21_000, 6),   // an auction that never comes
        auction(4, 7, 10, 21_000, 22_000),
        bid(4, 800, 25_000, 7),          // after expiry (closes auction 1)
        bid(4, 400, 22_000, 8),          // at expiry, 3 s behind, 4 still open: counts
        bid(999, 1, 26_500, 0),          // closes auction 4
        bid(4, 999, 21_600, 9),          // auction 4 has closed: too late
        auction(5, 7, 10, 1_000, 2_000), // arrives long closed: dropped
        bid(5, 999, 1_500, 10),          // as do its bids
        auction(6, 7, 10, 30_000, 30_500),
        bid(6, 100, 30_100, 20),
        bid(999, 1, 34_000, 0),
        bid(999, 1, 34_600, 0), // 6 closed at 34.5 s (whenever it leaves the store)
        bid(6, 900, 30_400, 21), // so this one is too late
        bid(7, 500, 40_100, 22), // before auction 7 arrives
        bid(999, 1, 44_050, 0),
        bid(999, 1, 44_150, 0), // the early bid is now more than the grace behind
        auction(7, 7, 10, 40_000, 50_000),
        bid(7, 200, 44_200, 23),
        bid(999, 1, 60_000, 0),
    ];
    let mut d = support::driver(q9::build);
    support::pipe(&mut d, &events);
    let out: Vec<(i64, q9::Q9Result, i64)> = support::output(&mut d, &I64Serde);
    let rows: Vec<(i64, i64, i64, i64)> = out
        .iter()
        .map(|(k, r, _)| (*k, r.price, r.bid_date_time - BASE_TIME_MS, r.bidder))
        .collect();
    assert_eq!(
        rows,
        vec![
            (2, 300, 12_000, 1),
            (1, 700, 15_000, 11),
            (4, 400, 22_000, 8),
            (6, 100, 30_100, 20),
            (7, 200, 44_200, 23),
        ]
    );
}

// ------------------------------------------------------------------- in-process runner

/// Output records as (key, value text, timestamp), in a canonical order (threads
/// interleave partitions arbitrarily).
fn canonical(out: Vec<OutputRecord>) -> Vec<(i64, String, i64)> {
    let mut rows: Vec<(i64, String, i64)> = out
        .into_iter()
        .map(|r| {
            let key = I64Serde
                .deserialize(r.key.as_deref().expect("a key"))
                .expect("key");
            let value = String::from_utf8(r.value.expect("a value")).expect("JSON");
            (key, value, r.timestamp_ms)
        })
        .collect();
    rows.sort();
    rows
}

/// The last value per key of an updating result, in the order the records came.
fn last_per_key(out: Vec<OutputRecord>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    out.into_iter()
        .map(|r| (r.key.expect("a key"), r.value.expect("a value")))
        .collect()
}

/// Asserts equal row multisets, showing a few of the differences rather than both.
fn assert_same_rows(got: &[(i64, String, i64)], want: &[(i64, String, i64)], what: &str) {
    if got == want {
        return;
    }
    let only = |a: &[(i64, String, i64)], b: &[(i64, String, i64)]| -> Vec<(i64, String, i64)> {
        a.iter()
            .filter(|r| !b.contains(r))
            .take(3)
            .cloned()
            .collect()
    };
    panic!(
        "{what}: {} rows, expected {}; only got {:?}; only expected {:?}",
        got.len(),
        want.len(),
        only(got, want),
        only(want, got)
    );
}

/// Runs a query in the in-process runner on the generator's first `n` events split
/// over `partitions` (as `run::in_process`), the tail after the last partition's.
fn in_process_with_tail(
    name: &str,
    generator: &Generator,
    n: u64,
    tail: &[Event],
    config: InProcessConfig,
) -> Vec<OutputRecord> {
    let q = query(name).expect("registered");
    let runner = InProcessRunner::new(&topology(q).expect("topology"), config).expect("runner");
    let partitions = runner.partitions();
    let report = runner
        .run(&QueryTopics::default().input, |p| {
            let last = if p + 1 == partitions {
                tail.to_vec()
            } else {
                Vec::new()
            };
            generator
                .partition(p as u64, partitions as u64, n)
                .chain(last)
                .map(|e| {
                    let ts = e.date_time();
                    Record::new((), e, ts)
                })
        })
        .expect("run");
    assert_eq!(report.input_records, n + tail.len() as u64, "{name}");
    report.outputs
}

#[test]
fn the_in_process_runner_gives_the_drivers_outputs_for_q3_to_q9() {
    let config = |threads: usize, partitions: usize| InProcessConfig {
        threads,
        partitions: Some(partitions),
        capture_outputs: true,
        // The tail moves a second of event time per three records: small batches keep
        // a batch's records (and the hand-offs delivered after it) within the grace.
        batch_records: 8,
        ..InProcessConfig::default()
    };
    // Partitions fed a few records at a time by one thread stay well within the grace of
    // each other.
    let generator = Generator::Standard(NexmarkGenerator::new(GeneratorConfig {
        seed: 5,
        events_per_second: 500,
        out_of_order_group_size: 41,
        num_in_flight_auctions: 20,
        ..GeneratorConfig::default()
    }));
    let n = 10_000u64;
    let events: Vec<Event> = generator.events(0..n).collect();
    let tail = support::tail(&events);
    let until = tail_start(&events);
    // Rows of real events: the tail's have negative keys, and windows (q5, q8) past its
    // start mix in its events.
    let real = |name: &str, out: Vec<OutputRecord>| -> Vec<OutputRecord> {
        let windowed = ["q5", "q8"].contains(&name);
        out.into_iter()
            .filter(|r| {
                let key = r
                    .key
                    .as_deref()
                    .map(|k| I64Serde.deserialize(k).expect("key"));
                key.is_some_and(|k| k >= 0) && (!windowed || r.timestamp_ms < until)
            })
            .collect()
    };
    let mut all = events.clone();
    all.extend(tail.iter().cloned());
    let run = |name: &str, threads: usize, partitions: usize| {
        let out = in_process_with_tail(name, &generator, n, &tail, config(threads, partitions));
        real(name, out)
    };
    for name in ["q3", "q4", "q5", "q6", "q7", "q7w", "q8", "q9"] {
        let driver = driver_outputs(query(name).expect("registered"), &all).expect("driver");
        let want_raw = real(name, driver);
        let want = canonical(want_raw.clone());
        assert!(!want.is_empty(), "{name}: rows");
        // One partition: the driver's records.
        let one = run(name, 1, 1);
        assert_same_rows(&canonical(one), &want, &format!("{name}, one partition"));
        // Two partitions in one thread: records repartitioned between tasks, and the
        // same results; updates of q4 and q6 may interleave differently across
        // partitions, their last row per key may not differ.
        let two = run(name, 1, 2);
        let what = format!("{name}, two partitions");
        if ["q4", "q6"].contains(&name) {
            assert_eq!(last_per_key(two), last_per_key(want_raw), "{what}");
        } else {
            assert_same_rows(&canonical(two), &want, &what);
        }
    }
    // Two threads run their partitions at their own pace, so event-time results depend
    // on how far apart they get (as with any two Kafka partitions); q3 does not.
    let driver = driver_outputs(query("q3").expect("q3"), &all).expect("driver");
    let want = canonical(real("q3", driver));
    assert_same_rows(&canonical(run("q3", 2, 2)), &want, "q3, two threads");
}
