//! Built-in record operations that run (feature `runtime`), by name: each turns its
//! parameters into a function from a record to the record to pass on (or none), or an
//! error that sends the record to the dead-letter topic with the reason.
//!
//! | operation | parameters (defaults) | does |
//! | --- | --- | --- |
//! | `validate_coordinates` | `lat: latitude`, `lon: longitude` | a record whose coordinates are missing or out of range goes to the dead-letter topic |
//! | `filter_invalid_locations` | the same | such records are dropped silently |
//! | `calculate_geohash` | `precision: 6`, `lat`, `lon`, `field: geohash` | adds the coordinates' geohash |
//! | `group_by_region` | `precision: 4`, `lat`, `lon`, `field: region` | adds the region (a shorter geohash) and keys the record by it |
//! | `validate_sender_permissions` | `sender: sender_id`, `blocked: []`, `allowed` (any), `members` (none), `chat: chat_id` | a record without a sender, from a blocked one, from one not allowed, or — with `members`, the field holding the chat's member list (`chat.members` after a `join` of a chat-members table) — from one not in that list (or without the list: an unknown chat) goes to the dead-letter topic |
//! | `check_spam_filters` | `text: content`, `blocked_words: []`, `max_links: 5`, `max_repeated: 20` | a message with a blocked word, too many links or a character repeated too often goes to the dead-letter topic with the reason |
//! | `encrypt_content` | `field: content`, `keyring_file` or `keyring_env: STROM_PIPELINE_KEYS` | seals the field with AES-256-GCM (base64 of nonce ‖ ciphertext ‖ tag) and adds `encryption_key_id`; keyrings as strom-registry's envelope reads them (`id=base64(32 bytes)`, the first seals) |
//! | `determine_recipient_servers` | `recipient: recipient_id`, `servers: 16` | adds `recipient_server` (`server-N`, a stable hash of the recipient) |
//! | `route_to_appropriate_delivery_pipeline` | `online: online`, `failed: delivery_failed`, `push_within` (none), `last_seen: last_seen`, `time: timestamp` | routes to `delivery_failures` when `failed` is true, else `online_users` or `offline_users` by `online`; with `push_within` (`1 hour`), an offline recipient last seen longer than that before the message's `time` (or never) goes to `stored_messages` instead |
//! | `manage_retry_logic` | `max_attempts: 3`, `failed: delivery_failed`, `online: online` | a failed delivery counts an `attempt`; below the limit it is routed again by `online` (with `retry: true`), at the limit to `delivery_failures` (with `recipient`: retries with backoff and the SMS fallback per delivery, see `crate::delivery`) |
//! | `check_recipient_online_status` | `recipient: recipient_id`, `presence_topic: user-presence` | adds `online` from a global table of the presence topic (value `true`/`false` or `{"online": …}`; absent: offline) and `last_seen` (the row's `last_seen`, else its `timestamp`, else `null`) |
//! | `join` | `table` (a topic), `on` (the record key), `as` (the table's name with `_`) | adds the table's row for the record's `on` field (a global table of the topic, keyed by its record keys) under `as`, `null` when there is none: a left join |
//! | `enrich_with_user_profile` | `user: user_id`, `profiles_topic: user-profiles` | adds `profile`: the user's row of a global table of the profiles topic (`null` when unknown) |
//! | `calculate_affinity_scores` | `user: user_id`, `category: genre`, `counts` (none) | per user (records are repartitioned by it), counts views per category in a store (one per record, or the `{category: n}` map in the field `counts` names, e.g. a session's `count_each_genre`) and adds `affinity_scores`: each category's share of the user's views so far |
//! | `generate_recommendations` | `top: 3`, `fill_from: profile.preferred_genres` | adds `recommendations`: the categories of highest `affinity_scores`, best first (ties by name), topped up to `top` from the list at `fill_from` (a user with little history gets their profile's preferences) |
//! | `track_delivery_status` | `id: message_id` | per message (repartitioned by it), records `status` (the record's, else `sent`) and the time in a store, and adds `status` (with `recipient`: per delivery, see `crate::delivery`) |
//! | `handle_delivery_confirmations` | `id: message_id`, `type_field: type`, `confirmation: delivery_confirmation` | a confirmation marks its message `delivered` in the same store and is not passed on (with `recipient`: per delivery, a receipt to the sender, see `crate::delivery`) |
//! | `resolve_recipients`, `forward_stored_messages` | see `crate::delivery` | a message fans out to every chat member but the sender; stored deliveries go out over WebSocket when their recipient comes online |
//! | `update_driver_availability` | `id: driver_id`, `available: available`, `ttl: 5 minutes` | per record key (a region), like `update_spatial_index`: keeps each driver's latest report of the last `ttl` (event time) and adds `available` (the record's, default true) and `available_drivers` (how many of the region's drivers said they are available) |
//! | `calculate_eta_to_requests` | see `crate::rides` | adds `etas`: the nearest ride requests within 5 km made in the minute before, each with its ETA at 30 km/h slowed by traffic |
//! | `trigger_matching_algorithm` | see `crate::rides` | an available driver is matched to the nearest request of its region reachable within 5 minutes and not matched before: adds `match`, routed to `for: matches` |
//! | `update_spatial_index` | `id: driver_id`, `ttl: 5 minutes`, `lat`, `lon` | keeps, per record key (a region after `group_by_region`), the latest position of each id seen in the last `ttl` of event time, and adds `nearby` (how many ids the region holds) |
//! | `detect_anomalies` | `max_speed_kmh: 250`, `dead_letter: false`, `lat`, `lon` | per record key (a driver), compares each position with the last good one (event time): an implied speed above the limit, or time going backwards, marks the record `anomaly: true` with `anomaly_reason`, or with `dead_letter: true` sends it to the dead-letter topic (`anomaly: <reason>`) |
//! | `calculate_surge_multiplier` | see `crate::rides` | adds `surge_multiplier` from a window's request count |
//! | `process_payment` | `id: payment_id`, `account: account_id`, `amount: amount`, `currency: currency`, `currencies: [EUR]`, `horizon: 24 hours` | per account (repartitioned by it), exactly: amounts in integer cents; a payment without ids, with a bad amount or currency is `rejected`, an id already applied is a `duplicate`, any other is `completed` and added to the balance (money spent); emits the confirmation with `status` and `balance`, routed by status — see `crate::payments` |

use serde_json::Value as Json;

use crate::compile::field;
use crate::spec::Operation;

/// A record operation: the record to pass on, none, or why it fails.
pub type RecordFn =
    Box<dyn Fn(String, Json) -> Result<Option<(String, Json)>, String> + Send + Sync>;

/// The operations this module runs.
pub const NAMES: &[&str] = &[
    "validate_coordinates",
    "filter_invalid_locations",
    "calculate_geohash",
    "group_by_region",
    "detect_anomalies",
    "update_spatial_index",
    "validate_sender_permissions",
    "check_spam_filters",
    "encrypt_content",
    "determine_recipient_servers",
    "route_to_appropriate_delivery_pipeline",
    "manage_retry_logic",
    "check_recipient_online_status",
    "enrich_with_user_profile",
    "calculate_affinity_scores",
    "generate_recommendations",
    "track_delivery_status",
    "handle_delivery_confirmations",
    "update_driver_availability",
    "calculate_eta_to_requests",
    "trigger_matching_algorithm",
];

/// The store key of one member of a group (`region\u{1f}driver`): a group's members
/// sort together, after the group's own entry.
pub(crate) fn member_key(group: &str, member: &str) -> String {
    format!("{group}\u{1f}{member}")
}

/// A lookup in a global table (a left join: every record passes on).
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The table's topic (its records' keys are the table's keys).
    pub topic: String,
    /// The record field holding the table key (none: the record's key).
    pub key_field: Option<String>,
    /// What the row adds to the record.
    pub adds: LookupAdds,
}

/// What a [`Lookup`] adds.
#[derive(Debug, Clone)]
pub enum LookupAdds {
    /// `online`: the row's `true`/`false` or its `online` field (absent: false).
    Online,
    /// The whole row (or `null`) under this field.
    Row(String),
}

/// The lookup an operation makes, if it is one (`join`, `enrich_with_user_profile`,
/// `check_recipient_online_status`); `join` without `table` is an error.
pub fn lookup(op: &Operation) -> Option<Result<Lookup, String>> {
    let lookup = match op.name.as_str() {
        "check_recipient_online_status" => Lookup {
            topic: presence_topic(op),
            key_field: Some(recipient_field(op)),
            adds: LookupAdds::Online,
        },
        "enrich_with_user_profile" => Lookup {
            topic: text_param(op, "profiles_topic", "user-profiles"),
            key_field: Some(text_param(op, "user", "user_id")),
            adds: LookupAdds::Row("profile".into()),
        },
        "join" => {
            let Some(topic) = op
                .params
                .iter()
                .find(|(k, _)| k == "table")
                .and_then(|(_, v)| v.as_text())
            else {
                return Some(Err("`join` needs `table`: the topic of the table to look records up in (`- join: {table: content-metadata, on: content_id, as: content}`)".into()));
            };
            let on = text_param(op, "on", "");
            Lookup {
                topic: topic.to_string(),
                key_field: (!on.is_empty()).then_some(on),
                adds: LookupAdds::Row(text_param(op, "as", &topic.replace(['-', '.'], "_"))),
            }
        }
        _ => return None,
    };
    Some(Ok(lookup))
}

impl Lookup {
    /// Adds to the record what the table's row says.
    pub fn apply(&self, v: &mut Json, row: Option<&Json>) {
        let Some(obj) = v.as_object_mut() else {
            return;
        };
        match &self.adds {
            LookupAdds::Online => {
                let online = match row {
                    Some(Json::Bool(b)) => *b,
                    Some(r) => r.get("online").and_then(Json::as_bool).unwrap_or(false),
                    None => false,
                };
                obj.insert("online".into(), Json::Bool(online));
                // When the user was last seen: the row's `last_seen`, else its `timestamp`.
                let seen = row
                    .and_then(|r| r.get("last_seen").or_else(|| r.get("timestamp")))
                    .cloned()
                    .unwrap_or(Json::Null);
                obj.insert("last_seen".into(), seen);
            }
            LookupAdds::Row(name) => {
                obj.insert(name.clone(), row.cloned().unwrap_or(Json::Null));
            }
        }
    }
}

/// The field a stateful operation partitions by (records are repartitioned by it).
pub fn partition_field(op: &Operation) -> Option<String> {
    match op.name.as_str() {
        "calculate_affinity_scores" => Some(text_param(op, "user", "user_id")),
        "track_delivery_status" | "handle_delivery_confirmations" => {
            Some(text_param(op, "id", "message_id"))
        }
        _ => None,
    }
}

/// `calculate_affinity_scores`: per user, views per category.
#[derive(Clone)]
pub struct AffinityScores {
    /// `user → {category: views}`.
    pub store: strom_streams::prelude::StoreHandle<String, Json>,
    /// The category field.
    pub category: String,
    /// `counts`: a field holding `{category: n}` (a `count_each_<field>` result) to add
    /// instead of one view of the record's category.
    pub counts: Option<String>,
}

impl strom_streams::prelude::Processor<String, Json, String, Json> for AffinityScores {
    fn process(
        &mut self,
        ctx: &mut strom_streams::prelude::ProcessorContext<'_, '_, String, Json>,
        mut r: strom_streams::prelude::Record<String, Json>,
    ) -> Result<(), strom_streams::prelude::ProcessError> {
        // What this record adds: its `counts` map, else one view of its category.
        let seen: Vec<(String, u64)> = match self.counts.as_deref().and_then(|f| field(&r.value, f))
        {
            Some(Json::Object(m)) => m
                .iter()
                .filter_map(|(c, n)| Some((c.clone(), n.as_u64()?)))
                .collect(),
            _ => text_of(&r.value, &self.category)
                .map(|c| vec![(c, 1)])
                .unwrap_or_default(),
        };
        if seen.is_empty() {
            ctx.forward(r);
            return Ok(());
        }
        let mut counts = ctx
            .store(&self.store)?
            .get(&r.key)?
            .unwrap_or_else(|| serde_json::json!({}));
        if let Some(c) = counts.as_object_mut() {
            for (category, add) in seen {
                let n = c.get(&category).and_then(Json::as_u64).unwrap_or(0) + add;
                c.insert(category, Json::from(n));
            }
            let total: u64 = c.values().filter_map(Json::as_u64).sum();
            let scores: serde_json::Map<String, Json> = c
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Json::from(v.as_u64().unwrap_or(0) as f64 / total.max(1) as f64),
                    )
                })
                .collect();
            if let Some(obj) = r.value.as_object_mut() {
                obj.insert("affinity_scores".into(), Json::Object(scores));
            }
        }
        ctx.store(&self.store)?.put(&r.key, &counts)?;
        ctx.forward(r);
        Ok(())
    }
}

/// `track_delivery_status` and `handle_delivery_confirmations`, sharing one store.
#[derive(Clone)]
pub struct DeliveryStatus {
    /// `message id → {"status", "t"}`.
    pub store: strom_streams::prelude::StoreHandle<String, Json>,
    /// True for `handle_delivery_confirmations`.
    pub confirmations: bool,
    /// The field naming a record's kind, and the kind of confirmations.
    pub type_field: String,
    /// See `type_field`.
    pub confirmation: String,
}

impl DeliveryStatus {
    /// The operator for `op` with the shared store `store`.
    pub fn new(op: &Operation, store: &str) -> Self {
        DeliveryStatus {
            store: strom_streams::prelude::StoreHandle::new(
                store,
                strom_streams::prelude::StringSerde,
                strom_streams::prelude::JsonSerde::new(),
            ),
            confirmations: op.name == "handle_delivery_confirmations",
            type_field: text_param(op, "type_field", "type"),
            confirmation: text_param(op, "confirmation", "delivery_confirmation"),
        }
    }
}

impl strom_streams::prelude::Processor<String, Json, String, Json> for DeliveryStatus {
    fn process(
        &mut self,
        ctx: &mut strom_streams::prelude::ProcessorContext<'_, '_, String, Json>,
        mut r: strom_streams::prelude::Record<String, Json>,
    ) -> Result<(), strom_streams::prelude::ProcessError> {
        let is_confirmation =
            text_of(&r.value, &self.type_field).as_deref() == Some(self.confirmation.as_str());
        if self.confirmations {
            if is_confirmation {
                let entry = serde_json::json!({"status": "delivered", "t": r.timestamp_ms});
                ctx.store(&self.store)?.put(&r.key, &entry)?;
                return Ok(()); // consumed
            }
        } else if !is_confirmation {
            let status = text_of(&r.value, "status").unwrap_or_else(|| "sent".into());
            let entry = serde_json::json!({"status": status, "t": r.timestamp_ms});
            ctx.store(&self.store)?.put(&r.key, &entry)?;
            if let Some(obj) = r.value.as_object_mut() {
                obj.insert("status".into(), Json::String(status));
            }
        }
        ctx.forward(r);
        Ok(())
    }
}

/// The topic `check_recipient_online_status` reads (created by `run` when missing).
pub fn presence_topic(op: &Operation) -> String {
    text_param(op, "presence_topic", "user-presence")
}

/// The field `check_recipient_online_status` looks up.
pub fn recipient_field(op: &Operation) -> String {
    text_param(op, "recipient", "recipient_id")
}

fn list_param(op: &Operation, name: &str) -> Option<Vec<String>> {
    op.params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| match v {
            crate::Value::List(items) => items
                .iter()
                .filter_map(|i| i.as_text().map(str::to_string))
                .collect(),
            crate::Value::Text(t) => vec![t.clone()],
            crate::Value::Map(_) => Vec::new(),
        })
}

pub(crate) fn number_param(op: &Operation, name: &str, default: u64) -> Result<u64, String> {
    match param(op, name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{name} {v:?}: a whole number")),
    }
}

pub(crate) fn text_of(v: &Json, name: &str) -> Option<String> {
    field(v, name).map(|f| f.as_str().map_or_else(|| f.to_string(), str::to_string))
}

/// Why a message looks like spam, if it does.
fn spam_reason(
    text: &str,
    blocked: &[String],
    max_links: usize,
    max_repeated: usize,
) -> Option<String> {
    let lower = text.to_lowercase();
    if let Some(w) = blocked.iter().find(|w| lower.contains(&w.to_lowercase())) {
        return Some(format!("blocked word {w:?}"));
    }
    let links = lower.matches("http://").count() + lower.matches("https://").count();
    if links > max_links {
        return Some(format!("{links} links (at most {max_links})"));
    }
    let mut run = 0;
    let mut last = None;
    for c in text.chars() {
        run = if Some(c) == last { run + 1 } else { 1 };
        last = Some(c);
        if run > max_repeated {
            return Some(format!("{c:?} repeated more than {max_repeated} times"));
        }
    }
    None
}

fn encrypt_content(op: &Operation) -> Result<RecordFn, String> {
    use base64::Engine as _;
    use strom_registry::client::encryption::{Envelope, Keyring};
    let keyring = match param(op, "keyring_file") {
        Some(path) => Keyring::from_file(std::path::Path::new(path)),
        None => Keyring::from_env(&text_param(op, "keyring_env", "STROM_PIPELINE_KEYS")),
    }
    .map_err(|e| format!("no encryption keys: {e}"))?;
    let envelope = Envelope::new(keyring);
    let name = text_param(op, "field", "content");
    Ok(Box::new(move |k, mut v| {
        let Some(plain) = field(&v, &name).cloned() else {
            return Err(format!("no {name} field to encrypt"));
        };
        let bytes = match &plain {
            Json::String(s) => s.as_bytes().to_vec(),
            other => other.to_string().into_bytes(),
        };
        let (key_id, sealed) = envelope.seal(&bytes).map_err(|e| e.to_string())?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                name.clone(),
                Json::String(base64::engine::general_purpose::STANDARD.encode(sealed)),
            );
            obj.insert("encryption_key_id".into(), Json::String(key_id));
        }
        Ok(Some((k, v)))
    }))
}

pub(crate) fn param<'o>(op: &'o Operation, name: &str) -> Option<&'o str> {
    op.params
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.as_text())
}

pub(crate) fn text_param(op: &Operation, name: &str, default: &str) -> String {
    param(op, name).unwrap_or(default).to_string()
}

/// A `true`/`false` parameter.
pub(crate) fn bool_param(op: &Operation, name: &str, default: bool) -> Result<bool, String> {
    match param(op, name) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(format!("{name} {v:?}: true or false")),
    }
}

pub(crate) fn precision(op: &Operation, default: usize) -> Result<usize, String> {
    match param(op, "precision") {
        None => Ok(default),
        Some(p) => match p.parse::<usize>() {
            Ok(n) if (1..=12).contains(&n) => Ok(n),
            _ => Err(format!("precision {p:?}: a whole number from 1 to 12")),
        },
    }
}

/// The coordinates of a record, or why they are unusable.
pub(crate) fn coordinates(v: &Json, lat: &str, lon: &str) -> Result<(f64, f64), String> {
    let get = |name: &str| field(v, name).and_then(Json::as_f64);
    match (get(lat), get(lon)) {
        (Some(a), Some(o)) if (-90.0..=90.0).contains(&a) && (-180.0..=180.0).contains(&o) => {
            Ok((a, o))
        }
        (Some(a), Some(o)) => Err(format!("coordinates out of range: {lat}={a}, {lon}={o}")),
        _ => Err(format!("missing or non-numeric coordinates {lat}/{lon}")),
    }
}

/// The geohash of a point (the standard base-32 interleaving of longitude and latitude).
pub fn geohash(lat: f64, lon: f64, precision: usize) -> String {
    const BASE32: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (mut lat_range, mut lon_range) = ((-90.0, 90.0), (-180.0, 180.0));
    let mut out = String::with_capacity(precision);
    let (mut bits, mut value, mut even) = (0, 0usize, true);
    while out.len() < precision {
        let (range, x): (&mut (f64, f64), f64) = if even {
            (&mut lon_range, lon)
        } else {
            (&mut lat_range, lat)
        };
        let mid = (range.0 + range.1) / 2.0;
        value <<= 1;
        if x >= mid {
            value |= 1;
            range.0 = mid;
        } else {
            range.1 = mid;
        }
        even = !even;
        bits += 1;
        if bits == 5 {
            out.push(BASE32[value] as char);
            bits = 0;
            value = 0;
        }
    }
    out
}

/// The operation `op` as a record function, `None` when it is not one of [`NAMES`], or
/// an error in its parameters.
pub fn build(op: &Operation) -> Option<Result<RecordFn, String>> {
    let (lat, lon) = (
        text_param(op, "lat", "latitude"),
        text_param(op, "lon", "longitude"),
    );
    let f: Result<RecordFn, String> = match op.name.as_str() {
        "validate_coordinates" => Ok(Box::new(move |k, v| {
            coordinates(&v, &lat, &lon)?;
            Ok(Some((k, v)))
        })),
        "filter_invalid_locations" => Ok(Box::new(move |k, v| {
            Ok(coordinates(&v, &lat, &lon).is_ok().then_some((k, v)))
        })),
        "calculate_geohash" | "group_by_region" => {
            let region = op.name == "group_by_region";
            let default_field = if region { "region" } else { "geohash" };
            let out_field = text_param(op, "field", default_field);
            precision(op, if region { 4 } else { 6 }).map(|p| -> RecordFn {
                Box::new(move |k, mut v| {
                    let (a, o) = coordinates(&v, &lat, &lon)?;
                    let hash = geohash(a, o, p);
                    if let Some(obj) = v.as_object_mut() {
                        obj.insert(out_field.clone(), Json::String(hash.clone()));
                    }
                    Ok(Some((if region { hash } else { k }, v)))
                })
            })
        }
        "validate_sender_permissions" => {
            let sender = text_param(op, "sender", "sender_id");
            let blocked = list_param(op, "blocked").unwrap_or_default();
            let allowed = list_param(op, "allowed");
            let members = param(op, "members").map(str::to_string);
            let chat = text_param(op, "chat", "chat_id");
            Ok(Box::new(move |k, v| {
                let Some(who) = text_of(&v, &sender) else {
                    return Err(format!("no {sender}: the sender is unknown"));
                };
                if blocked.contains(&who) {
                    return Err(format!("sender {who} is blocked"));
                }
                if allowed.as_ref().is_some_and(|a| !a.contains(&who)) {
                    return Err(format!("sender {who} is not allowed"));
                }
                if let Some(list) = &members {
                    let chat = text_of(&v, &chat).unwrap_or_default();
                    let Some(members) = field(&v, list).and_then(Json::as_array) else {
                        return Err(format!(
                            "chat {chat:?} has no members ({list} is not a list)"
                        ));
                    };
                    if !members.iter().any(|m| m.as_str() == Some(who.as_str())) {
                        return Err(format!("sender {who} is not a member of chat {chat:?}"));
                    }
                }
                Ok(Some((k, v)))
            }))
        }
        "check_spam_filters" => {
            let text = text_param(op, "text", "content");
            let blocked = list_param(op, "blocked_words").unwrap_or_default();
            match (
                number_param(op, "max_links", 5),
                number_param(op, "max_repeated", 20),
            ) {
                (Ok(links), Ok(repeated)) => Ok(Box::new(move |k, v| {
                    let body = text_of(&v, &text).unwrap_or_default();
                    match spam_reason(&body, &blocked, links as usize, repeated as usize) {
                        Some(why) => Err(format!("spam: {why}")),
                        None => Ok(Some((k, v))),
                    }
                }) as RecordFn),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        "encrypt_content" => encrypt_content(op),
        "determine_recipient_servers" => {
            let recipient = text_param(op, "recipient", "recipient_id");
            number_param(op, "servers", 16).and_then(|n| {
                if n == 0 {
                    return Err("servers must be at least 1".into());
                }
                Ok(Box::new(move |k, mut v| {
                    let Some(who) = text_of(&v, &recipient) else {
                        return Err(format!("no {recipient} to deliver to"));
                    };
                    // FNV-1a: stable across runs and machines.
                    let h = who.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                    });
                    if let Some(obj) = v.as_object_mut() {
                        obj.insert(
                            "recipient_server".into(),
                            Json::String(format!("server-{}", h % n)),
                        );
                    }
                    Ok(Some((k, v)))
                }) as RecordFn)
            })
        }
        "generate_recommendations" => number_param(op, "top", 3).map(|top| -> RecordFn {
            let fill_from = text_param(op, "fill_from", "profile.preferred_genres");
            Box::new(move |k, mut v| {
                let mut scores: Vec<(String, f64)> = field(&v, "affinity_scores")
                    .and_then(Json::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(c, s)| (c.clone(), s.as_f64().unwrap_or(0.0)))
                            .collect()
                    })
                    .unwrap_or_default();
                // Highest score first; ties by name so the order is stable.
                scores.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let mut picks: Vec<Json> = scores
                    .into_iter()
                    .take(top as usize)
                    .map(|(c, _)| Json::String(c))
                    .collect();
                let preferred = field(&v, &fill_from).and_then(Json::as_array);
                for p in preferred.into_iter().flatten() {
                    if picks.len() >= top as usize {
                        break;
                    }
                    if p.is_string() && !picks.contains(p) {
                        picks.push(p.clone());
                    }
                }
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("recommendations".into(), Json::Array(picks));
                }
                Ok(Some((k, v)))
            })
        }),
        "manage_retry_logic" => {
            let failed = text_param(op, "failed", "delivery_failed");
            let online = text_param(op, "online", "online");
            number_param(op, "max_attempts", 3).map(|max| -> RecordFn {
                Box::new(move |k, mut v| {
                    if !field(&v, &failed).and_then(Json::as_bool).unwrap_or(false) {
                        return Ok(Some((k, v)));
                    }
                    let attempt = field(&v, "attempt").and_then(Json::as_u64).unwrap_or(0) + 1;
                    let is_online = field(&v, &online).and_then(Json::as_bool).unwrap_or(false);
                    let route = if attempt >= max {
                        "delivery_failures"
                    } else if is_online {
                        "online_users"
                    } else {
                        "offline_users"
                    };
                    if let Some(obj) = v.as_object_mut() {
                        obj.insert("attempt".into(), Json::from(attempt));
                        obj.insert("retry".into(), Json::Bool(attempt < max));
                        obj.insert(
                            crate::compile::ROUTE_FIELD.into(),
                            Json::String(route.into()),
                        );
                    }
                    Ok(Some((k, v)))
                })
            })
        }
        "route_to_appropriate_delivery_pipeline" => {
            let online = text_param(op, "online", "online");
            let failed = text_param(op, "failed", "delivery_failed");
            let push_within_ms = match param(op, "push_within").map(crate::duration::parse_ms) {
                None => None,
                Some(Ok(ms)) => Some(ms),
                Some(Err(e)) => return Some(Err(format!("push_within: {e}"))),
            };
            let last_seen = text_param(op, "last_seen", "last_seen");
            let time = text_param(op, "time", "timestamp");
            Ok(Box::new(move |k, mut v| {
                let is = |f: &str| field(&v, f).and_then(Json::as_bool).unwrap_or(false);
                // Seen less than `push_within` before the message (or after it).
                let recently_seen = |within: i64| {
                    let seen = field(&v, &last_seen).and_then(crate::compile::event_time);
                    let sent = field(&v, &time).and_then(crate::compile::event_time);
                    matches!((seen, sent), (Some(seen), Some(sent)) if sent - seen < within)
                };
                let route = if is(&failed) {
                    "delivery_failures"
                } else if is(&online) {
                    "online_users"
                } else if push_within_ms.is_some_and(|w| !recently_seen(w)) {
                    "stored_messages"
                } else {
                    "offline_users"
                };
                if let Some(obj) = v.as_object_mut() {
                    obj.insert(
                        crate::compile::ROUTE_FIELD.into(),
                        Json::String(route.into()),
                    );
                }
                Ok(Some((k, v)))
            }))
        }
        _ => return None,
    };
    Some(f)
}

/// Great-circle distance in kilometres.
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (
        a.0.to_radians(),
        a.1.to_radians(),
        b.0.to_radians(),
        b.1.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6_371.0 * h.sqrt().asin()
}

/// `detect_anomalies`: the last position per key in a store.
pub struct DetectAnomalies {
    /// `key → {"lat", "lon", "t"}` of the last position.
    pub store: strom_streams::prelude::StoreHandle<String, Json>,
    /// The speed limit.
    pub max_speed_kmh: f64,
    /// Field names.
    pub lat: String,
    /// Field names.
    pub lon: String,
    /// `dead_letter`: an anomalous position goes to the dead-letter topic instead of
    /// passing on marked.
    pub dead_letter: bool,
}

impl DetectAnomalies {
    /// The operator for `op`, keeping its state in the store `store`.
    pub fn new(op: &Operation, store: &str) -> Result<Self, String> {
        let max_speed_kmh = match param(op, "max_speed_kmh") {
            None => 250.0,
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|v| *v > 0.0)
                .ok_or_else(|| format!("max_speed_kmh {v:?}: a positive number"))?,
        };
        Ok(DetectAnomalies {
            store: strom_streams::prelude::StoreHandle::new(
                store,
                strom_streams::prelude::StringSerde,
                strom_streams::prelude::JsonSerde::new(),
            ),
            max_speed_kmh,
            lat: text_param(op, "lat", "latitude"),
            lon: text_param(op, "lon", "longitude"),
            dead_letter: bool_param(op, "dead_letter", false)?,
        })
    }

    fn verdict(&self, previous: Option<&Json>, now: (f64, f64), t: i64) -> Option<String> {
        let p = previous?;
        let (pa, po, pt) = (p["lat"].as_f64()?, p["lon"].as_f64()?, p["t"].as_i64()?);
        if t < pt {
            return Some(format!(
                "position at {t} is older than the previous one at {pt}"
            ));
        }
        let km = haversine_km((pa, po), now);
        let hours = (t - pt) as f64 / 3_600_000.0;
        let speed = if hours > 0.0 {
            km / hours
        } else if km > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        (speed > self.max_speed_kmh).then(|| {
            format!(
                "implied speed {speed:.0} km/h above {:.0} km/h",
                self.max_speed_kmh
            )
        })
    }
}

impl Clone for DetectAnomalies {
    fn clone(&self) -> Self {
        DetectAnomalies {
            store: self.store.clone(),
            max_speed_kmh: self.max_speed_kmh,
            lat: self.lat.clone(),
            lon: self.lon.clone(),
            dead_letter: self.dead_letter,
        }
    }
}

impl strom_streams::prelude::Processor<String, Json, String, Json> for DetectAnomalies {
    fn process(
        &mut self,
        ctx: &mut strom_streams::prelude::ProcessorContext<'_, '_, String, Json>,
        mut r: strom_streams::prelude::Record<String, Json>,
    ) -> Result<(), strom_streams::prelude::ProcessError> {
        let now = coordinates(&r.value, &self.lat, &self.lon)
            .map_err(strom_streams::prelude::ProcessError::user)?;
        let previous = ctx.store(&self.store)?.get(&r.key)?;
        if let Some(reason) = self.verdict(previous.as_ref(), now, r.timestamp_ms) {
            if self.dead_letter {
                // Like a marked one, it never becomes the reference for the next position.
                return Err(strom_streams::prelude::ProcessError::user(format!(
                    "anomaly: {reason}"
                )));
            }
            if let Some(obj) = r.value.as_object_mut() {
                obj.insert("anomaly".into(), Json::Bool(true));
                obj.insert("anomaly_reason".into(), Json::String(reason));
            }
        } else {
            let last = serde_json::json!({"lat": now.0, "lon": now.1, "t": r.timestamp_ms});
            ctx.store(&self.store)?.put(&r.key, &last)?;
        }
        ctx.forward(r);
        Ok(())
    }
}

/// `update_spatial_index`: per key (a region), the latest position of each id; also
/// `update_driver_availability`, which counts only the ids whose latest position there
/// said they are available.
#[derive(Clone)]
pub struct SpatialIndex {
    /// Per key (a region): `region` → how many ids it counts; `region\u{1f}id` → the id's
    /// last `{"lat", "lon", "t", "available"}`; `region\u{1e}<t, 20 digits>\u{1f}id` → an
    /// expiry entry; `region\u{1d}` → the time up to which expiry entries were removed.
    /// An update touches a few entries and removes the expired ones (each once), however
    /// many ids the region holds.
    pub store: strom_streams::prelude::StoreHandle<String, Json>,
    /// The field naming an entity (a driver).
    pub id: String,
    /// How long a position stays in the index (event time).
    pub ttl_ms: i64,
    /// Field names.
    pub lat: String,
    /// Field names.
    pub lon: String,
    /// The field of a driver's availability (true when absent): only available ids are
    /// counted, and the record gets `available` (`update_driver_availability`). None:
    /// every id is counted.
    pub available: Option<String>,
    /// The field the count is added as (`nearby`, `available_drivers`).
    pub count_field: String,
}

impl SpatialIndex {
    /// `update_driver_availability` for `op`: available drivers per region, as the
    /// index counts them, in the store `store`.
    pub fn availability(op: &Operation, store: &str) -> Result<Self, String> {
        Ok(SpatialIndex {
            available: Some(text_param(op, "available", "available")),
            count_field: "available_drivers".into(),
            ..SpatialIndex::new(op, store)?
        })
    }

    /// The operator for `op`, keeping its index in the store `store`.
    pub fn new(op: &Operation, store: &str) -> Result<Self, String> {
        let ttl_ms = match param(op, "ttl") {
            None => 300_000,
            Some(t) => crate::duration::parse_ms(t)?,
        };
        Ok(SpatialIndex {
            store: strom_streams::prelude::StoreHandle::new(
                store,
                strom_streams::prelude::StringSerde,
                strom_streams::prelude::JsonSerde::new(),
            ),
            id: text_param(op, "id", "driver_id"),
            ttl_ms,
            lat: text_param(op, "lat", "latitude"),
            lon: text_param(op, "lon", "longitude"),
            available: None,
            count_field: "nearby".into(),
        })
    }

    /// Whether a stored position counts: every one, or only an available driver's.
    fn counts(&self, position: &Json) -> bool {
        self.available.is_none() || position["available"].as_bool() == Some(true)
    }
}

/// The expiry entry of `id`'s position at `t` in `region`: expiry entries of a region
/// sort by time.
fn expiry_key(region: &str, t: i64, id: &str) -> String {
    format!("{region}\u{1e}{:020}\u{1f}{id}", t.max(0))
}

impl strom_streams::prelude::Processor<String, Json, String, Json> for SpatialIndex {
    fn process(
        &mut self,
        ctx: &mut strom_streams::prelude::ProcessorContext<'_, '_, String, Json>,
        mut r: strom_streams::prelude::Record<String, Json>,
    ) -> Result<(), strom_streams::prelude::ProcessError> {
        use strom_streams::prelude::ProcessError;
        let (lat, lon) = coordinates(&r.value, &self.lat, &self.lon).map_err(ProcessError::user)?;
        let id = field(&r.value, &self.id)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .ok_or_else(|| ProcessError::user(format!("no {} field to index", self.id)))?;
        let available = self
            .available
            .as_deref()
            .map(|f| field(&r.value, f).and_then(Json::as_bool).unwrap_or(true));
        if let (Some(a), Some(obj)) = (available, r.value.as_object_mut()) {
            obj.insert("available".into(), Json::Bool(a));
        }
        let t = r.timestamp_ms;
        let region = r.key.clone();
        let mut store = ctx.store(&self.store)?;
        let mut count = store.get(&region)?.and_then(|v| v.as_i64()).unwrap_or(0);
        // Positions older than the ttl leave the index: an expiry entry whose id has
        // not been seen since removes the id.
        // Scanned from where the last scan stopped: below it are only the deleted
        // entries an LSM store would otherwise step over on every scan.
        let scanned_key = format!("{region}\u{1d}");
        let scanned = store
            .get(&scanned_key)?
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let horizon_ms = t - self.ttl_ms + 1;
        let horizon = expiry_key(&region, horizon_ms, "");
        let from = expiry_key(&region, scanned, "");
        let expired = if horizon_ms > scanned {
            store.put(&scanned_key, &Json::from(horizon_ms))?;
            store.range(from..horizon)?
        } else {
            Vec::new()
        };
        for (key, seen_at) in expired {
            store.delete(&key)?;
            let Some((_, expired_id)) = key.split_once('\u{1f}') else {
                continue;
            };
            let member = member_key(&region, expired_id);
            // Only if the id was not seen since (its position would be newer).
            let last = store.get(&member)?.filter(|p| {
                let last_t = p["t"].as_i64();
                last_t.is_some() && last_t == seen_at.as_i64()
            });
            if let Some(last) = last {
                store.delete(&member)?;
                count -= i64::from(self.counts(&last));
            }
        }
        let member = member_key(&region, &id);
        // A position older than those already expired would expire at once: not indexed.
        if t >= scanned {
            if let Some(previous) = store.get(&member)? {
                if let Some(previous_t) = previous["t"].as_i64() {
                    store.delete(&expiry_key(&region, previous_t, &id))?;
                }
                count -= i64::from(self.counts(&previous));
            }
            let position =
                serde_json::json!({"lat": lat, "lon": lon, "t": t, "available": available});
            count += i64::from(self.counts(&position));
            store.put(&member, &position)?;
            store.put(&expiry_key(&region, t, &id), &Json::from(t))?;
        }
        store.put(&region, &Json::from(count))?;
        if let Some(obj) = r.value.as_object_mut() {
            obj.insert(self.count_field.clone(), Json::from(count));
        }
        ctx.forward(r);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn haversine_distances() {
        // Paris to London, about 344 km.
        let d = haversine_km((48.8566, 2.3522), (51.5074, -0.1278));
        assert!((d - 343.5).abs() < 2.0, "{d}");
        assert_eq!(haversine_km((1.0, 1.0), (1.0, 1.0)), 0.0);
    }

    #[test]
    fn geohashes_match_the_reference_values() {
        // Wikipedia's example and well-known cells.
        assert_eq!(geohash(42.605, -5.603, 5), "ezs42");
        assert_eq!(geohash(57.64911, 10.40744, 11), "u4pruydqqvj");
        assert_eq!(geohash(37.7749, -122.4194, 6), "9q8yyk");
    }
}
