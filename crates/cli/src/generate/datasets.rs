//! The datasets of `strom generate`: seeded, reproducible event streams shaped like the
//! seeds' systems. Pure: no I/O, so a seed gives the same events on every machine and
//! in every version (the generator is SplitMix64, written here, not a crate whose
//! algorithm may change).

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dataset {
    /// `user-views`: users watching titles (`watch_duration` of `content_duration`).
    Views,
    /// `user-interactions`: likes, shares, ratings, list additions.
    Interactions,
    /// `content-metadata`: one record per title (a table).
    ContentMetadata,
    /// `user-profiles`: one record per user (a table).
    UserProfiles,
    /// `driver-locations`: drivers moving along a city's street grid.
    DriverLocations,
    /// `ride-requests`: riders asking for a ride at a place in the city.
    RideRequests,
    /// `incoming-messages` (chats of 3–5 members, delivery and read confirmations) and
    /// `user-presence` (members going on- and offline).
    Messages,
    /// `chat-members`: each chat's members (a table, the chats of `messages`).
    ChatMembers,
    /// `payments`: card payments per account.
    Payments,
    /// `nexmark-events`: Nexmark's people, auctions and bids (`--mode standard`) or the
    /// Flink peer script's bid stream (`--mode flink-bids`), null keys, JSON values.
    Nexmark,
}

impl Dataset {
    /// The topic its (main) events go to.
    pub fn topic(self) -> &'static str {
        match self {
            Dataset::Views => "user-views",
            Dataset::Interactions => "user-interactions",
            Dataset::ContentMetadata => "content-metadata",
            Dataset::UserProfiles => "user-profiles",
            Dataset::DriverLocations => "driver-locations",
            Dataset::RideRequests => "ride-requests",
            Dataset::Messages => "incoming-messages",
            Dataset::ChatMembers => "chat-members",
            Dataset::Payments => "payments",
            Dataset::Nexmark => "nexmark-events",
        }
    }

    /// Default number of distinct keys (users, drivers, accounts, chats, titles).
    pub fn default_keys(self) -> usize {
        match self {
            Dataset::ContentMetadata => TITLES,
            Dataset::DriverLocations => 1_000,
            Dataset::Messages | Dataset::ChatMembers => 2_000,
            _ => 10_000,
        }
    }
}

/// The presence topic of [`Dataset::Messages`].
pub const PRESENCE_TOPIC: &str = "user-presence";

/// Titles in the catalogue (views and interactions pick among them).
const TITLES: usize = 500;
const GENRES: [&str; 6] = [
    "drama",
    "comedy",
    "documentary",
    "action",
    "kids",
    "thriller",
];
/// The city: a street grid over San Francisco's bounding box.
const CITY: (f64, f64, f64, f64) = (37.70, 37.82, -122.52, -122.38);
/// Streets every this many degrees.
const BLOCK_DEG: f64 = 0.002;

/// One generated record.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Topic.
    pub topic: &'static str,
    /// Record key.
    pub key: String,
    /// JSON value.
    pub value: Value,
    /// Event time, ms since the epoch (also the record timestamp).
    pub timestamp_ms: i64,
}

/// How to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed: equal seeds and options give equal events.
    pub seed: u64,
    /// Distinct keys.
    pub keys: usize,
    /// Event time of the first event.
    pub start_ms: i64,
    /// Event time between consecutive events.
    pub interval_ms: f64,
    /// Share of events whose timestamp lies 1–10 minutes before their place in the
    /// stream (late for windows closed by then).
    pub late_fraction: f64,
    /// Share of events that are invalid for their dataset (out-of-range coordinates,
    /// missing ids, negative amounts, unknown types).
    pub invalid_fraction: f64,
}

/// SplitMix64: small, fast, and the same sequence forever.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n.max(1) as f64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// A driver on the street grid: position, heading (one of four), speed.
#[derive(Debug, Clone)]
struct Driver {
    lat: f64,
    lon: f64,
    heading: usize,
    speed_mps: f64,
    last_ms: i64,
    available: bool,
}

/// The events of a dataset, in order.
#[derive(Debug, Clone)]
pub struct Generator {
    dataset: Dataset,
    options: Options,
    rng: Rng,
    index: u64,
    drivers: Vec<Driver>,
    /// Confirmations to send (messages), by the step they are due at and the order
    /// they were scheduled in.
    confirmations: BTreeMap<(u64, u64), Confirmation>,
    /// Confirmations scheduled so far (their order among equal due steps).
    scheduled: u64,
    /// Each user's presence as the generator last reported it (messages).
    online: HashMap<String, bool>,
    /// Events waiting to be returned (a message step may make two).
    pending: Vec<Event>,
}

/// A confirmation a recipient's device will send: the message arrived (`delivered`)
/// or was read (`read`).
#[derive(Debug, Clone)]
struct Confirmation {
    chat_id: String,
    message_id: String,
    recipient_id: String,
    status: &'static str,
}

/// Confirmations waiting at most (more are not scheduled: their messages stay
/// unconfirmed).
const CONFIRMATIONS_MAX: usize = 10_000;

impl Generator {
    /// A generator of `dataset` with `options`.
    pub fn new(dataset: Dataset, options: Options) -> Self {
        let mut rng = Rng(options.seed ^ (dataset as u64).wrapping_mul(0x1000_0000_01B3));
        let drivers = if dataset == Dataset::DriverLocations {
            (0..options.keys.max(1))
                .map(|_| {
                    let (la0, la1, lo0, lo1) = CITY;
                    // On a street: one coordinate on the grid.
                    let lat = snap(la0 + rng.unit() * (la1 - la0));
                    let lon = lo0 + rng.unit() * (lo1 - lo0);
                    Driver {
                        lat,
                        lon,
                        heading: rng.below(2) * 2 + 1, // east or west along the street
                        speed_mps: 6.0 + rng.unit() * 9.0,
                        last_ms: options.start_ms,
                        available: rng.chance(0.7),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        Generator {
            dataset,
            options,
            rng,
            index: 0,
            drivers,
            confirmations: BTreeMap::new(),
            scheduled: 0,
            online: HashMap::new(),
            pending: Vec::new(),
        }
    }

    /// The event time of the next event, maybe late.
    fn event_time(&mut self) -> i64 {
        let on_time = self.options.start_ms + (self.index as f64 * self.options.interval_ms) as i64;
        if self.options.late_fraction > 0.0 && self.rng.chance(self.options.late_fraction) {
            on_time - 60_000 - self.rng.below(540_000) as i64
        } else {
            on_time
        }
    }

    fn invalid(&mut self) -> bool {
        self.options.invalid_fraction > 0.0 && self.rng.chance(self.options.invalid_fraction)
    }

    fn step(&mut self) -> Vec<Event> {
        let t = self.event_time();
        let keys = self.options.keys.max(1);
        let topic = self.dataset.topic();
        let one = |key: String, value: Value| {
            vec![Event {
                topic,
                key,
                value,
                timestamp_ms: t,
            }]
        };
        match self.dataset {
            // Made by `super::nexmark` (strom-nexmark's generator), never here.
            Dataset::Nexmark => Vec::new(),
            Dataset::Views => {
                let user = format!("u{}", self.rng.below(keys));
                let title = popular_title(&mut self.rng);
                let (genre, duration) = title_facts(title);
                let mut watched = (self.rng.unit() * duration as f64) as i64;
                let mut content = json!(format!("c{title}"));
                if self.invalid() {
                    if self.rng.chance(0.5) {
                        watched = -watched - 1;
                    } else {
                        content = Value::Null;
                    }
                }
                one(
                    user.clone(),
                    json!({"user_id": user, "content_id": content, "genre": genre,
                           "watch_duration": watched, "content_duration": duration,
                           "device": self.rng.pick(&["tv", "phone", "tablet", "web"]), "timestamp": t}),
                )
            }
            Dataset::Interactions => {
                let user = format!("u{}", self.rng.below(keys));
                let title = popular_title(&mut self.rng);
                let kind = if self.invalid() {
                    "teleport"
                } else {
                    self.rng.pick(&["like", "share", "rate", "add_to_list"])
                };
                let mut v = json!({"user_id": user, "content_id": format!("c{title}"), "type": kind, "timestamp": t});
                if kind == "rate" {
                    v["rating"] = json!(1 + self.rng.below(5));
                }
                one(user, v)
            }
            Dataset::ContentMetadata => {
                let title = (self.index as usize) % keys;
                let (genre, duration) = title_facts(title);
                let mut v = json!({"content_id": format!("c{title}"), "title": format!("Title {title}"),
                                   "genre": genre, "content_duration": duration,
                                   "release_year": 1990 + (title * 7) % 35});
                if self.invalid() {
                    v["content_duration"] = Value::Null;
                }
                one(format!("c{title}"), v)
            }
            Dataset::UserProfiles => {
                let user = (self.index as usize) % keys;
                let mut v = json!({"user_id": format!("u{user}"),
                    "country": self.rng.pick(&["NL", "DE", "US", "BR", "IN", "JP"]),
                    "plan": self.rng.pick(&["basic", "standard", "premium"]),
                    "age_group": self.rng.pick(&["18-24", "25-34", "35-49", "50+"]),
                    "preferred_genres": [self.rng.pick(&GENRES), self.rng.pick(&GENRES)]});
                if self.invalid() {
                    v["plan"] = json!(42);
                }
                one(format!("u{user}"), v)
            }
            Dataset::DriverLocations => {
                let n = self.rng.below(self.drivers.len());
                let invalid = self.invalid();
                let jump = invalid && self.rng.chance(0.5);
                let d = &mut self.drivers[n];
                drive(d, t, &mut self.rng);
                let (mut lat, mut lon) = (d.lat, d.lon);
                if invalid && !jump {
                    lat = 123.0; // out of range
                } else if jump {
                    lat += 0.05; // a GPS jump of about 5.5 km
                    lon -= 0.05;
                }
                if self.rng.chance(0.02) {
                    d.available = !d.available;
                }
                let id = format!("d{n}");
                one(
                    id.clone(),
                    json!({"driver_id": id, "latitude": lat, "longitude": lon,
                           "speed_kmh": (d.speed_mps * 3.6 * 10.0).round() / 10.0,
                           "available": d.available, "timestamp": t}),
                )
            }
            Dataset::RideRequests => {
                let id = format!("r{}", self.index);
                let (la0, la1, lo0, lo1) = CITY;
                let lat = if self.invalid() {
                    -200.0
                } else {
                    la0 + self.rng.unit() * (la1 - la0)
                };
                let lon = lo0 + self.rng.unit() * (lo1 - lo0);
                one(
                    id.clone(),
                    json!({"request_id": id, "rider_id": format!("u{}", self.rng.below(keys)),
                           "latitude": lat, "longitude": lon, "timestamp": t}),
                )
            }
            Dataset::Messages => self.message(t),
            Dataset::ChatMembers => {
                let chat = (self.index as usize) % keys;
                let id = format!("chat-{chat}");
                one(
                    id.clone(),
                    json!({"chat_id": id, "members": chat_members(chat, keys)}),
                )
            }
            Dataset::Payments => {
                let account = format!("a{}", self.rng.below(keys));
                let mut cents = 100 + self.rng.below(50_000) as i64;
                if self.invalid() {
                    cents = -cents;
                }
                one(
                    account.clone(),
                    json!({"payment_id": format!("p{}", self.index), "account_id": account,
                           "amount": cents as f64 / 100.0, "currency": "EUR",
                           "merchant": self.rng.pick(&["grocer", "cinema", "rail", "cafe", "books"]),
                           "timestamp": t}),
                )
            }
        }
    }

    /// A chat message (keyed by chat), a presence change of a member, or a
    /// confirmation from a recipient's device that is due.
    ///
    /// Each valid message is confirmed by most of its recipients (every member but
    /// the sender): `delivered` a few steps later when the generator last reported the
    /// recipient online, many steps later otherwise, and then, often, `read`. Invalid
    /// messages (no sender, a sender who is not a member, spam) are never confirmed.
    fn message(&mut self, t: i64) -> Vec<Event> {
        let chats = self.options.keys.max(1);
        let chat = self.rng.below(chats);
        let members = chat_members(chat, chats);
        if self.rng.chance(0.1) {
            let user = members[self.rng.below(members.len())].clone();
            let online = self.rng.chance(0.6);
            self.online.insert(user.clone(), online);
            return vec![Event {
                topic: PRESENCE_TOPIC,
                key: user.clone(),
                value: json!({"user_id": user, "online": online, "last_seen": t, "timestamp": t}),
                timestamp_ms: t,
            }];
        }
        if let Some(entry) = self.confirmations.first_entry() {
            if entry.key().0 <= self.index {
                let c = entry.remove();
                if c.status == "delivered" && self.rng.chance(0.5) {
                    let due = self.index + 1 + self.rng.below(40) as u64;
                    self.schedule(
                        due,
                        Confirmation {
                            status: "read",
                            ..c.clone()
                        },
                    );
                }
                return vec![Event {
                    topic: Dataset::Messages.topic(),
                    key: c.chat_id.clone(),
                    value: json!({"type": "delivery_confirmation", "status": c.status,
                                  "message_id": c.message_id, "chat_id": c.chat_id,
                                  "recipient_id": c.recipient_id, "timestamp": t}),
                    timestamp_ms: t,
                }];
            }
        }
        let sender = self.rng.below(members.len());
        let recipient = (sender + 1 + self.rng.below(members.len() - 1)) % members.len();
        let chat_id = format!("chat-{chat}");
        let message_id = format!("m{}", self.index);
        let mut v = json!({"message_id": message_id, "chat_id": chat_id,
            "sender_id": members[sender], "recipient_id": members[recipient],
            "content": self.rng.pick(&["on my way", "see you at eight", "did you see it?",
                                       "running late", "thanks!", "call me"]),
            "type": "message", "timestamp": t});
        if self.rng.chance(0.02) {
            v["delivery_failed"] = json!(true);
        }
        if self.invalid() {
            match self.rng.below(3) {
                0 => {
                    v.as_object_mut().map(|o| o.remove("sender_id"));
                }
                // Members are below u<2 × chats>: this sender is in no chat.
                1 => v["sender_id"] = json!(format!("u{}", chats * 2 + self.rng.below(chats))),
                _ => {
                    v["content"] = json!("WIN A FREE PHONE http://spam.example/a http://spam.example/b http://spam.example/c")
                }
            }
        } else {
            for (i, who) in members.iter().enumerate() {
                if i == sender || self.rng.chance(0.1) {
                    continue; // the sender, or a device that never confirms
                }
                let online = self.online.get(who).copied().unwrap_or(false);
                let delay = if online {
                    1 + self.rng.below(4)
                } else {
                    5 + self.rng.below(80)
                };
                self.schedule(
                    self.index + delay as u64,
                    Confirmation {
                        chat_id: chat_id.clone(),
                        message_id: message_id.clone(),
                        recipient_id: who.clone(),
                        status: "delivered",
                    },
                );
            }
        }
        vec![Event {
            topic: Dataset::Messages.topic(),
            key: chat_id,
            value: v,
            timestamp_ms: t,
        }]
    }

    /// Schedules a confirmation at step `due` (none beyond [`CONFIRMATIONS_MAX`]).
    fn schedule(&mut self, due: u64, c: Confirmation) {
        if self.confirmations.len() < CONFIRMATIONS_MAX {
            self.scheduled += 1;
            self.confirmations.insert((due, self.scheduled), c);
        }
    }
}

impl Iterator for Generator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.pending.is_empty() {
            let mut events = self.step();
            self.index += 1;
            events.reverse();
            self.pending = events;
        }
        self.pending.pop()
    }
}

/// Titles by popularity: a few are watched far more than the rest.
fn popular_title(rng: &mut Rng) -> usize {
    let u = rng.unit();
    ((u * u * u) * TITLES as f64) as usize
}

/// A title's genre and duration in seconds (fixed per title).
fn title_facts(title: usize) -> (&'static str, i64) {
    let genre = GENRES[title % GENRES.len()];
    let duration = if genre == "kids" {
        1_200
    } else {
        1_800 + (title as i64 * 97) % 5_400
    };
    (genre, duration)
}

/// The members of a chat: 3–5 users (fewer when few chats make some coincide), fixed
/// per chat, all below `u<2 × chats>`.
fn chat_members(chat: usize, chats: usize) -> Vec<String> {
    let size = 3 + chat % 3;
    let mut members: Vec<String> = Vec::with_capacity(size);
    for i in 0..size {
        let user = format!("u{}", (chat * 7 + i * 13) % (chats * 2));
        if !members.contains(&user) {
            members.push(user);
        }
    }
    members
}

/// The nearest street coordinate.
fn snap(deg: f64) -> f64 {
    (deg / BLOCK_DEG).round() * BLOCK_DEG
}

/// Moves a driver along its street for the time since its last report, turning at
/// crossings now and then and turning back at the city's edge.
fn drive(d: &mut Driver, now_ms: i64, rng: &mut Rng) {
    let seconds = ((now_ms - d.last_ms).max(0) as f64 / 1000.0).min(600.0);
    d.last_ms = d.last_ms.max(now_ms);
    // Metres per degree: 111 km of latitude, 88 km of longitude here.
    let mut metres = seconds * d.speed_mps;
    while metres > 0.0 {
        let block_m = if d.heading.is_multiple_of(2) {
            222.0
        } else {
            176.0
        };
        let step = metres.min(block_m);
        metres -= step;
        match d.heading {
            0 => d.lat += step / 111_000.0,
            1 => d.lon += step / 88_000.0,
            2 => d.lat -= step / 111_000.0,
            _ => d.lon -= step / 88_000.0,
        }
        let (la0, la1, lo0, lo1) = CITY;
        if d.lat < la0 || d.lat > la1 || d.lon < lo0 || d.lon > lo1 {
            d.lat = d.lat.clamp(la0, la1);
            d.lon = d.lon.clamp(lo0, lo1);
            d.heading = (d.heading + 2) % 4;
        } else if step == block_m && rng.chance(0.3) {
            // A crossing, a block further on: turn onto the cross street.
            d.heading = (d.heading + if rng.chance(0.5) { 1 } else { 3 }) % 4;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn options(seed: u64) -> Options {
        Options {
            seed,
            keys: 50,
            start_ms: 1_800_000_000_000,
            interval_ms: 100.0,
            late_fraction: 0.0,
            invalid_fraction: 0.0,
        }
    }

    fn all(dataset: Dataset, o: Options, n: usize) -> Vec<Event> {
        Generator::new(dataset, o).take(n).collect()
    }

    #[test]
    fn a_seed_gives_the_same_events_and_another_seed_others() {
        for d in [
            Dataset::Views,
            Dataset::DriverLocations,
            Dataset::Messages,
            Dataset::Payments,
        ] {
            assert_eq!(all(d, options(7), 500), all(d, options(7), 500), "{d:?}");
            assert_ne!(all(d, options(7), 500), all(d, options(8), 500), "{d:?}");
        }
    }

    #[test]
    fn valid_events_have_their_fields_and_time_moves_on() {
        let views = all(Dataset::Views, options(1), 1000);
        assert!(views
            .windows(2)
            .all(|w| w[1].timestamp_ms == w[0].timestamp_ms + 100));
        for e in &views {
            let v = &e.value;
            assert_eq!(e.topic, "user-views");
            assert_eq!(v["user_id"].as_str(), Some(e.key.as_str()));
            let (watched, duration) = (
                v["watch_duration"].as_i64().unwrap(),
                v["content_duration"].as_i64().unwrap(),
            );
            assert!((0..=duration).contains(&watched), "{v}");
            assert!(v["content_id"].is_string());
        }
        for e in all(Dataset::DriverLocations, options(1), 2000) {
            let (lat, lon) = (
                e.value["latitude"].as_f64().unwrap(),
                e.value["longitude"].as_f64().unwrap(),
            );
            assert!(
                (CITY.0..=CITY.1).contains(&lat) && (CITY.2..=CITY.3).contains(&lon),
                "{}",
                e.value
            );
            assert_eq!(e.value["driver_id"].as_str(), Some(e.key.as_str()));
        }
    }

    #[test]
    fn drivers_move_at_road_speed_between_reports() {
        let mut last: std::collections::HashMap<String, (f64, f64, i64)> = Default::default();
        for e in all(Dataset::DriverLocations, options(3), 5000) {
            let (lat, lon) = (
                e.value["latitude"].as_f64().unwrap(),
                e.value["longitude"].as_f64().unwrap(),
            );
            if let Some((plat, plon, pt)) = last.get(&e.key) {
                let metres = ((lat - plat) * 111_000.0).abs() + ((lon - plon) * 88_000.0).abs();
                let seconds = (e.timestamp_ms - pt) as f64 / 1000.0;
                assert!(
                    metres <= seconds * 15.0 + 1.0,
                    "{} m in {seconds} s",
                    metres
                );
            }
            last.insert(e.key.clone(), (lat, lon, e.timestamp_ms));
        }
    }

    #[test]
    fn invalid_and_late_fractions_are_about_what_was_asked() {
        let o = Options {
            late_fraction: 0.1,
            invalid_fraction: 0.2,
            ..options(5)
        };
        let events = all(Dataset::DriverLocations, o.clone(), 10_000);
        // Half the invalid ones have impossible coordinates, half jump 5 km.
        let impossible = events
            .iter()
            .filter(|e| e.value["latitude"].as_f64().unwrap() > 90.0)
            .count();
        assert!((800..1_200).contains(&impossible), "{impossible}");
        let late = events
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                e.timestamp_ms < o.start_ms + (*i as f64 * o.interval_ms) as i64 - 59_000
            })
            .count();
        assert!((800..1_200).contains(&late), "{late}");
    }

    #[test]
    fn messages_come_with_presence_and_confirmations_of_earlier_messages() {
        let events = all(Dataset::Messages, options(2), 5000);
        let presence = events.iter().filter(|e| e.topic == PRESENCE_TOPIC).count();
        assert!((300..700).contains(&presence), "{presence}");
        let mut sent = std::collections::HashSet::new();
        let mut confirmed = 0;
        for e in events.iter().filter(|e| e.topic == "incoming-messages") {
            let id = e.value["message_id"].as_str().unwrap().to_string();
            if e.value["type"] == "delivery_confirmation" {
                assert!(
                    sent.contains(&id),
                    "a confirmation of a message not sent: {id}"
                );
                confirmed += 1;
            } else {
                assert_ne!(e.value["sender_id"], e.value["recipient_id"]);
                assert_eq!(e.value["chat_id"].as_str(), Some(e.key.as_str()));
                sent.insert(id);
            }
        }
        assert!(confirmed > 500, "{confirmed}");
    }

    #[test]
    fn confirmations_come_from_members_after_their_message_and_reads_after_deliveries() {
        let o = Options {
            invalid_fraction: 0.1,
            ..options(4)
        };
        let members: HashMap<String, Vec<String>> = all(Dataset::ChatMembers, o.clone(), 50)
            .into_iter()
            .map(|e| {
                let list = e.value["members"].as_array().unwrap().iter();
                (
                    e.key,
                    list.map(|m| m.as_str().unwrap().to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(members.len(), 50);
        let (mut valid, mut invalid) = (HashMap::new(), std::collections::HashSet::new());
        let mut kinds = [0; 3];
        let mut states: HashMap<(String, String), &str> = HashMap::new();
        for e in all(Dataset::Messages, o, 5000) {
            let v = &e.value;
            if e.topic == PRESENCE_TOPIC {
                assert_eq!(v["last_seen"], v["timestamp"]);
                continue;
            }
            let id = v["message_id"].as_str().unwrap().to_string();
            let chat = &members[v["chat_id"].as_str().unwrap()];
            if v["type"] == "message" {
                assert!(chat.iter().any(|m| v["recipient_id"] == *m.as_str()));
                match v["sender_id"].as_str() {
                    None => kinds[0] += 1,
                    Some(s) if !chat.iter().any(|m| m == s) => kinds[1] += 1,
                    Some(_) if v["content"].as_str().unwrap().contains("http://") => kinds[2] += 1,
                    Some(s) => {
                        valid.insert(id, s.to_string());
                        continue;
                    }
                }
                invalid.insert(id);
                continue;
            }
            assert_eq!(v["type"], "delivery_confirmation");
            assert!(!invalid.contains(&id), "an invalid message confirmed: {v}");
            let sender = valid.get(&id).expect("a confirmation after its message");
            let by = v["recipient_id"].as_str().unwrap().to_string();
            assert!(chat.contains(&by) && &by != sender, "{v}");
            let state = states.entry((id, by)).or_insert("sent");
            match (*state, v["status"].as_str().unwrap()) {
                ("sent", "delivered") => *state = "delivered",
                ("delivered", "read") => *state = "read",
                other => panic!("{other:?} for {v}"),
            }
        }
        assert!(kinds.iter().all(|&n| n > 10), "{kinds:?}");
        let reads = states.values().filter(|s| **s == "read").count();
        assert!(
            reads > 300 && states.len() > 1000,
            "{reads} of {}",
            states.len()
        );
    }

    #[test]
    fn tables_have_one_record_per_key() {
        let o = Options {
            keys: 40,
            ..options(1)
        };
        let titles = all(Dataset::ContentMetadata, o.clone(), 40);
        let keys: std::collections::HashSet<_> = titles.iter().map(|e| e.key.clone()).collect();
        assert_eq!(keys.len(), 40);
        let users = all(Dataset::UserProfiles, o, 40);
        assert!(users.iter().all(|e| e.value["plan"].is_string()));
    }
}
