//! Brute-force references: each query's SQL evaluated over the whole input at once, in
//! plain Rust, sharing no code with the queries (not even the calendar): sort, group,
//! scan, nested loops.

use std::collections::{BTreeMap, BTreeSet};

use strom_nexmark::queries::q11::Q11Result;
use strom_nexmark::queries::q12::Q12Result;
use strom_nexmark::queries::q14::Q14Result;
use strom_nexmark::queries::q15::Q15Result;
use strom_nexmark::queries::q16::Q16Result;
use strom_nexmark::queries::q17::Q17Result;
use strom_nexmark::queries::q19::Q19Result;
use strom_nexmark::queries::q20::Q20Result;
use strom_nexmark::queries::q22::Q22Result;
use strom_nexmark::{Auction, Bid, Event};

const DAY_MS: i64 = 86_400_000;

/// `yyyy-MM-dd` of an instant, by counting days year by year and month by month.
pub fn date(ms: i64) -> String {
    assert!(ms >= 0, "the tests use times after 1970");
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut days = ms / DAY_MS;
    let mut year = 1970;
    loop {
        let len = if leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let lengths = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 0;
    while days >= lengths[month] {
        days -= lengths[month];
        month += 1;
    }
    format!("{year:04}-{:02}-{:02}", month + 1, days + 1)
}

/// `HH:mm` of an instant.
pub fn hh_mm(ms: i64) -> String {
    let minutes = (ms % DAY_MS) / 60_000;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// q11: sessions per bidder (bids at most `gap` apart), those closed by the end of the
/// input: stream time (the latest bid) ≥ last bid + 1 + gap + grace.
pub fn q11(bids: &[Bid], gap: i64, grace: i64) -> Vec<Q11Result> {
    let stream_time = bids.iter().map(|b| b.date_time).max().unwrap_or(0);
    let mut times: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for b in bids {
        times.entry(b.bidder).or_default().push(b.date_time);
    }
    let mut out = Vec::new();
    for (bidder, mut ts) in times {
        ts.sort_unstable();
        let mut sessions: Vec<Vec<i64>> = Vec::new();
        for t in ts {
            match sessions.last_mut() {
                Some(s) if t - s[s.len() - 1] <= gap => s.push(t),
                _ => sessions.push(vec![t]),
            }
        }
        for s in sessions {
            let (first, last) = (s[0], s[s.len() - 1]);
            if last + 1 + gap + grace <= stream_time {
                out.push(Q11Result {
                    bidder,
                    bid_count: s.len() as i64,
                    starttime: first,
                    endtime: last + gap,
                });
            }
        }
    }
    out.sort();
    out
}

/// q12: bids per bidder and `size`-wide window of their processing times
/// (`(bidder, processing time)` pairs); every window.
pub fn q12(bids: &[(i64, i64)], size: i64) -> Vec<Q12Result> {
    let mut counts: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for &(bidder, at) in bids {
        *counts.entry((bidder, at - at % size)).or_default() += 1;
    }
    let mut out: Vec<Q12Result> = counts
        .into_iter()
        .map(|((bidder, start), bid_count)| Q12Result {
            bidder,
            bid_count,
            starttime: start,
            endtime: start + size,
        })
        .collect();
    out.sort();
    out
}

/// q14, row by row in input order.
pub fn q14(bids: &[Bid]) -> Vec<Q14Result> {
    let mut out = Vec::new();
    for b in bids {
        // 0.908 · price as an exact decimal with three places: 908 · price thousandths.
        let thousandths = i128::from(b.price) * 908;
        if !(thousandths > 1_000_000 * 1000 && thousandths < 50_000_000 * 1000) {
            continue;
        }
        let hour = (b.date_time / 3_600_000) % 24;
        let kind = if (8..=18).contains(&hour) {
            "dayTime"
        } else if hour <= 6 || hour >= 20 {
            "nightTime"
        } else {
            "otherTime"
        };
        out.push(Q14Result {
            auction: b.auction,
            bidder: b.bidder,
            price: thousandths as f64 / 1000.0,
            bid_time_type: kind.into(),
            date_time: b.date_time,
            extra: b.extra.clone(),
            c_counts: b.extra.matches('c').count() as i64,
        });
    }
    out
}

/// The twelve counts of q15/q16 over one group's bids.
fn counts(bids: &[&Bid]) -> [i64; 12] {
    let rank = |p: i64| {
        if p < 10_000 {
            1
        } else if p < 1_000_000 {
            2
        } else {
            3
        }
    };
    let mut c = [0i64; 12];
    c[0] = bids.len() as i64;
    let bidders: BTreeSet<i64> = bids.iter().map(|b| b.bidder).collect();
    let auctions: BTreeSet<i64> = bids.iter().map(|b| b.auction).collect();
    c[4] = bidders.len() as i64;
    c[8] = auctions.len() as i64;
    for r in 1..=3 {
        let in_rank: Vec<&&Bid> = bids.iter().filter(|b| rank(b.price) == r).collect();
        c[r] = in_rank.len() as i64;
        c[4 + r] = in_rank
            .iter()
            .map(|b| b.bidder)
            .collect::<BTreeSet<_>>()
            .len() as i64;
        c[8 + r] = in_rank
            .iter()
            .map(|b| b.auction)
            .collect::<BTreeSet<_>>()
            .len() as i64;
    }
    c
}

/// A q15/q16 result's counts as the reference's array.
pub fn counts_of(c: &strom_nexmark::queries::bid_stats::BidCounts) -> [i64; 12] {
    [
        c.total_bids,
        c.rank1_bids,
        c.rank2_bids,
        c.rank3_bids,
        c.total_bidders,
        c.rank1_bidders,
        c.rank2_bidders,
        c.rank3_bidders,
        c.total_auctions,
        c.rank1_auctions,
        c.rank2_auctions,
        c.rank3_auctions,
    ]
}

/// q15: day → the day's row (as `(day, counts)`).
pub fn q15(bids: &[Bid]) -> BTreeMap<String, (String, [i64; 12])> {
    let mut days: BTreeMap<String, Vec<&Bid>> = BTreeMap::new();
    for b in bids {
        days.entry(date(b.date_time)).or_default().push(b);
    }
    days.into_iter()
        .map(|(day, bids)| (day.clone(), (day, counts(&bids))))
        .collect()
}

/// q15's row as the reference's tuple.
pub fn q15_row(r: &Q15Result) -> (String, [i64; 12]) {
    (r.day.clone(), counts_of(&r.counts))
}

/// A q16 row as the reference computes it: channel, day, latest minute, counts.
pub type Q16Row = (String, String, String, [i64; 12]);

/// q16: (channel, day) → row.
pub fn q16(bids: &[Bid]) -> BTreeMap<(String, String), Q16Row> {
    let mut groups: BTreeMap<(String, String), Vec<&Bid>> = BTreeMap::new();
    for b in bids {
        groups
            .entry((b.channel.clone(), date(b.date_time)))
            .or_default()
            .push(b);
    }
    groups
        .into_iter()
        .map(|((channel, day), bids)| {
            let minute = bids
                .iter()
                .map(|b| hh_mm(b.date_time))
                .max()
                .unwrap_or_default();
            let row = (channel.clone(), day.clone(), minute, counts(&bids));
            ((channel, day), row)
        })
        .collect()
}

/// q16's row as the reference's tuple.
pub fn q16_row(r: &Q16Result) -> Q16Row {
    (
        r.channel.clone(),
        r.day.clone(),
        r.minute.clone(),
        counts_of(&r.counts),
    )
}

/// q17: (auction, day) → row.
pub fn q17(bids: &[Bid]) -> BTreeMap<(i64, String), Q17Result> {
    let mut groups: BTreeMap<(i64, String), Vec<i64>> = BTreeMap::new();
    for b in bids {
        groups
            .entry((b.auction, date(b.date_time)))
            .or_default()
            .push(b.price);
    }
    groups
        .into_iter()
        .map(|((auction, day), prices)| {
            let n = prices.len() as i64;
            let sum: i64 = prices.iter().sum();
            let row = Q17Result {
                auction,
                day: day.clone(),
                total_bids: n,
                rank1_bids: prices.iter().filter(|&&p| p < 10_000).count() as i64,
                rank2_bids: prices
                    .iter()
                    .filter(|&&p| (10_000..1_000_000).contains(&p))
                    .count() as i64,
                rank3_bids: prices.iter().filter(|&&p| p >= 1_000_000).count() as i64,
                min_price: *prices.iter().min().unwrap_or(&0),
                max_price: *prices.iter().max().unwrap_or(&0),
                avg_price: sum / n,
                sum_price: sum,
            };
            ((auction, day), row)
        })
        .collect()
}

/// q18: (bidder, auction) → the bid ranked first by `dateTime DESC`, ties to the later
/// arrival (`bids` in arrival order).
pub fn q18(bids: &[Bid]) -> BTreeMap<(i64, i64), Bid> {
    let mut best: BTreeMap<(i64, i64), (i64, usize)> = BTreeMap::new();
    for (i, b) in bids.iter().enumerate() {
        let e = best
            .entry((b.bidder, b.auction))
            .or_insert((b.date_time, i));
        if (b.date_time, i) > *e {
            *e = (b.date_time, i);
        }
    }
    best.into_iter()
        .map(|(k, (_, i))| (k, bids[i].clone()))
        .collect()
}

/// q19: (auction, rank) → row: each auction's bids by price descending, ties by arrival,
/// the first ten.
pub fn q19(bids: &[Bid]) -> BTreeMap<(i64, i64), Q19Result> {
    let mut per_auction: BTreeMap<i64, Vec<(usize, &Bid)>> = BTreeMap::new();
    for (i, b) in bids.iter().enumerate() {
        per_auction.entry(b.auction).or_default().push((i, b));
    }
    let mut out = BTreeMap::new();
    for (auction, mut list) in per_auction {
        list.sort_by(|(i, a), (j, b)| b.price.cmp(&a.price).then(i.cmp(j)));
        for (rank, (_, b)) in list.into_iter().take(10).enumerate() {
            let rank_number = rank as i64 + 1;
            out.insert(
                (auction, rank_number),
                Q19Result {
                    bid: b.clone(),
                    rank_number,
                },
            );
        }
    }
    out
}

/// q20: every (bid, auction) pair with `bid.auction = auction.id` and category 10,
/// sorted.
pub fn q20(events: &[Event]) -> Vec<Q20Result> {
    let auctions: Vec<&Auction> = events.iter().filter_map(Event::as_auction).collect();
    let mut out = Vec::new();
    for b in events.iter().filter_map(Event::as_bid) {
        for a in &auctions {
            if b.auction == a.id && a.category == 10 {
                out.push(Q20Result {
                    auction: b.auction,
                    bidder: b.bidder,
                    price: b.price,
                    channel: b.channel.clone(),
                    url: b.url.clone(),
                    bid_date_time: b.date_time,
                    bid_extra: b.extra.clone(),
                    item_name: a.item_name.clone(),
                    description: a.description.clone(),
                    initial_bid: a.initial_bid,
                    reserve: a.reserve,
                    auction_date_time: a.date_time,
                    expires: a.expires,
                    seller: a.seller,
                    category: a.category,
                    auction_extra: a.extra.clone(),
                });
            }
        }
    }
    out.sort();
    out
}

/// Apache Commons' `splitByWholeSeparatorPreserveAllTokens(s, sep)`, transcribed: scan
/// for the separator from a start position, keep empty pieces; an empty string has no
/// pieces.
fn split_preserving_all_tokens(s: &str, sep: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    if s.is_empty() {
        return pieces;
    }
    let (len, mut beg, mut end) = (s.len(), 0usize, 0usize);
    while end < len {
        match s[beg..].find(sep) {
            Some(offset) => {
                end = beg + offset;
                pieces.push(s[beg..end].to_string());
                beg = end + sep.len();
            }
            None => {
                pieces.push(s[beg..].to_string());
                end = len;
            }
        }
    }
    pieces
}

/// q22, row by row in input order.
pub fn q22(bids: &[Bid]) -> Vec<Q22Result> {
    bids.iter()
        .map(|b| {
            let pieces = split_preserving_all_tokens(&b.url, "/");
            Q22Result {
                auction: b.auction,
                bidder: b.bidder,
                price: b.price,
                channel: b.channel.clone(),
                dir1: pieces.get(3).cloned(),
                dir2: pieces.get(4).cloned(),
                dir3: pieces.get(5).cloned(),
            }
        })
        .collect()
}
