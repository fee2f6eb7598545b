use super::*;
use crate::model::Event;

fn standard(config: GeneratorConfig) -> Generator {
    Generator::Standard(NexmarkGenerator::new(config))
}

#[test]
fn the_same_seed_gives_the_same_stream_and_another_seed_another() {
    let a: Vec<Event> = standard(GeneratorConfig::default())
        .events(0..2000)
        .collect();
    let b: Vec<Event> = standard(GeneratorConfig::default())
        .events(0..2000)
        .collect();
    assert_eq!(a, b);
    let c: Vec<Event> = standard(GeneratorConfig {
        seed: 1,
        ..GeneratorConfig::default()
    })
    .events(0..2000)
    .collect();
    assert_ne!(a, c);
    let flink = Generator::FlinkBids(FlinkBidGenerator::new(FlinkBidsConfig::default()));
    let f1: Vec<Event> = flink.events(0..500).collect();
    assert_eq!(f1, flink.events(0..500).collect::<Vec<_>>());
}

#[test]
fn partitions_together_are_the_whole_stream() {
    let g = standard(GeneratorConfig::default());
    let whole: Vec<Event> = g.events(0..1001).collect();
    let mut merged: Vec<Option<Event>> = vec![None; 1001];
    for p in 0..3 {
        let part = g.partition(p, 3, 1001);
        assert_eq!(part.len(), (1001 - p as usize).div_ceil(3));
        for (i, e) in part.enumerate() {
            merged[p as usize + 3 * i] = Some(e);
        }
    }
    let merged: Vec<Event> = merged
        .into_iter()
        .map(|e| e.expect("every number"))
        .collect();
    assert_eq!(merged, whole);
}

#[test]
fn people_auctions_and_bids_come_in_the_proportions_1_3_46() {
    let events: Vec<Event> = standard(GeneratorConfig::default())
        .events(0..50_000)
        .collect();
    let people = events.iter().filter(|e| e.as_person().is_some()).count();
    let auctions = events.iter().filter(|e| e.as_auction().is_some()).count();
    let bids = events.iter().filter(|e| e.as_bid().is_some()).count();
    assert_eq!((people, auctions, bids), (1000, 3000, 46_000));
    // Person and auction ids are consecutive from the first ids.
    let person_ids: Vec<i64> = events
        .iter()
        .filter_map(|e| e.as_person())
        .map(|p| p.id)
        .collect();
    assert_eq!(person_ids, (1000..2000).collect::<Vec<i64>>());
    let auction_ids: Vec<i64> = events
        .iter()
        .filter_map(|e| e.as_auction())
        .map(|a| a.id)
        .collect();
    assert_eq!(auction_ids, (1000..4000).collect::<Vec<i64>>());
}

#[test]
fn hot_auctions_and_bidders_get_their_share_of_bids() {
    let events: Vec<Event> = standard(GeneratorConfig::default())
        .events(0..100_000)
        .collect();
    let bids: Vec<_> = events.iter().filter_map(|e| e.as_bid()).collect();
    // Hot auction: the first of the last batch of 100 auctions (probability 1/2, plus
    // the random picks that land on it); hot bidder: the second of the last batch of
    // 100 people (probability 3/4).
    let hot_auction = bids
        .iter()
        .filter(|b| (b.auction - 1000) % 100 == 0)
        .count() as f64;
    let hot_bidder = bids.iter().filter(|b| (b.bidder - 1000) % 100 == 1).count() as f64;
    let n = bids.len() as f64;
    assert!(
        (0.48..0.56).contains(&(hot_auction / n)),
        "{}",
        hot_auction / n
    );
    assert!(
        (0.73..0.79).contains(&(hot_bidder / n)),
        "{}",
        hot_bidder / n
    );
    let auctions: Vec<_> = events.iter().filter_map(|e| e.as_auction()).collect();
    let hot_seller = auctions
        .iter()
        .filter(|a| (a.seller - 1000) % 100 == 0)
        .count() as f64;
    assert!((0.72..0.80).contains(&(hot_seller / auctions.len() as f64)));
}

#[test]
fn references_name_people_and_auctions_already_made_or_at_most_the_lead_ahead() {
    let events: Vec<Event> = standard(GeneratorConfig {
        seed: 9,
        ..GeneratorConfig::default()
    })
    .events(0..60_000)
    .collect();
    let (mut last_person, mut last_auction) = (999i64, 999i64);
    let lead = ID_LEAD as i64;
    let mut ahead = 0;
    for e in &events {
        match e {
            Event::Person(p) => last_person = p.id,
            Event::Auction(a) => {
                last_auction = a.id;
                assert!((1000..=last_person + lead).contains(&a.seller), "{a:?}");
                assert!(a.expires > a.date_time);
                assert!((10..15).contains(&a.category));
                assert!(a.reserve > a.initial_bid);
            }
            Event::Bid(b) => {
                assert!((1000..=last_auction + lead).contains(&b.auction), "{b:?}");
                assert!((1000..=last_person + lead).contains(&b.bidder), "{b:?}");
                assert!(
                    b.auction >= last_auction - 100 - lead,
                    "bids go to auctions in flight"
                );
                ahead += usize::from(b.auction > last_auction);
                assert!((100..=100_000_000).contains(&b.price));
            }
        }
    }
    // Some references do run ahead (as in Nexmark), but few.
    assert!(ahead > 0 && ahead < events.len() / 20, "{ahead}");
}

#[test]
fn event_time_follows_the_rate_and_is_out_of_order_only_within_a_group() {
    let in_order = NexmarkGenerator::new(GeneratorConfig {
        events_per_second: 1000,
        ..GeneratorConfig::default()
    });
    let times: Vec<i64> = (0..5000).map(|n| in_order.event(n).date_time()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(times[0], NEXMARK_EPOCH_MS);
    assert_eq!(times[4999], NEXMARK_EPOCH_MS + 4999);

    let group = 101;
    let shuffled = NexmarkGenerator::new(GeneratorConfig {
        events_per_second: 1000,
        out_of_order_group_size: group,
        ..GeneratorConfig::default()
    });
    // 50 whole groups (a last partial group is not a permutation of itself).
    let times: Vec<i64> = (0..5050).map(|n| shuffled.event(n).date_time()).collect();
    assert!(
        times.windows(2).any(|w| w[0] > w[1]),
        "some events out of order"
    );
    let mut max_so_far = i64::MIN;
    for (n, &t) in times.iter().enumerate() {
        let watermark = shuffled.watermark_ms(n as u64);
        // Never earlier than the watermark of its group (so never earlier than any
        // earlier event's watermark), never later than the group's end.
        assert!(t >= watermark, "event {n}");
        assert!(t < watermark + group as i64 + 1, "event {n}");
        max_so_far = max_so_far.max(t);
        assert!(
            max_so_far - t <= group as i64,
            "disorder bounded by the group"
        );
    }
    // Each group is a permutation of its ids: the same multiset of times.
    let mut sorted = times.clone();
    sorted.sort_unstable();
    assert!(sorted == (0..5050).map(|n| NEXMARK_EPOCH_MS + n).collect::<Vec<_>>());
}

#[test]
fn extra_pads_events_to_nexmarks_average_sizes() {
    let events: Vec<Event> = standard(GeneratorConfig::default())
        .events(0..100_000)
        .collect();
    let avg = |sizes: Vec<usize>| sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
    let bid = avg(events
        .iter()
        .filter_map(|e| e.as_bid())
        .map(|b| 32 + b.extra.len())
        .collect());
    let person = avg(events
        .iter()
        .filter_map(|e| e.as_person())
        .map(|p| {
            8 + p.name.len()
                + p.email_address.len()
                + p.credit_card.len()
                + p.city.len()
                + p.state.len()
                + p.extra.len()
        })
        .collect());
    let auction = avg(events
        .iter()
        .filter_map(|e| e.as_auction())
        .map(|a| 48 + a.item_name.len() + a.description.len() + a.extra.len())
        .collect());
    assert!((bid - 100.0).abs() < 2.0, "{bid}");
    assert!((person - 200.0).abs() < 4.0, "{person}");
    assert!((auction - 500.0).abs() < 8.0, "{auction}");
    let p = events.iter().find_map(|e| e.as_person()).expect("a person");
    assert_eq!(p.credit_card.len(), 19);
    assert!(p.email_address.ends_with(".com") && p.email_address.contains('@'));
    let b = events.iter().find_map(|e| e.as_bid()).expect("a bid");
    assert!(b.url.starts_with("https://www.nexmark.com/"));
    assert_eq!(
        b.url.split('/').count(),
        7,
        "three directory levels: {}",
        b.url
    );
}

#[test]
fn flink_bids_follow_the_scripts_formulas() {
    let g = FlinkBidGenerator::new(FlinkBidsConfig {
        seed: 5,
        events_per_second: 1000,
        ..FlinkBidsConfig::default()
    });
    let mut hot = 0;
    let mut channels = [0usize; 4];
    for seq in 0..20_000u64 {
        let b = g.bid(seq);
        let newest = 1000 + (seq as i64 * 3) / 46;
        assert!((newest - 99..=newest).contains(&b.auction), "{seq}: {b:?}");
        hot += usize::from(b.auction == newest);
        assert!((1000..101_000).contains(&b.bidder));
        assert!((100..=100_000_000).contains(&b.price));
        assert_eq!(b.date_time, NEXMARK_EPOCH_MS + (seq as i64 * 1000) / 1000);
        let c = ["Google", "Facebook", "Baidu", "Apple"]
            .iter()
            .position(|c| *c == b.channel)
            .expect("one of four channels");
        channels[c] += 1;
        assert_eq!(
            b.url,
            format!("https://www.nexmark.com/item.htm?query=1&channel_id={c}")
        );
        assert_eq!(b.extra.len(), 16);
        assert!(b
            .extra
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
    // Half the bids on the newest auction (plus the 1/200 of the rest that pick 100).
    let share = hot as f64 / 20_000.0;
    assert!((0.49..0.52).contains(&share), "{share}");
    assert!(
        channels.iter().all(|&c| (4500..5500).contains(&c)),
        "{channels:?}"
    );
    // Log-uniform prices: about a sixth below 10 $ (10^(6u)·100 < 1000 ⇔ u < 1/6).
    let cheap = (0..20_000).filter(|&s| g.bid(s).price < 1000).count() as f64 / 20_000.0;
    assert!((0.15..0.18).contains(&cheap), "{cheap}");
}
