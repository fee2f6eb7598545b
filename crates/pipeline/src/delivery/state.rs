//! One delivery — a message to one recipient — as the tracking operations keep it, and
//! the store keys they use. Pure: the operators (module `tracker`) read and write
//! the store; what a delivery becomes is decided here.
//!
//! Invariants:
//! - a delivery has at most one due entry, and its `due` names it: the entry for a
//!   retry while it waits for a confirmation on an app channel (`websocket`, `push`),
//!   else the entry for its expiry;
//! - a delivery has a stored-index entry exactly while its status is `stored`;
//! - `delivered` and `read` are final for sending: nothing is re-sent after them, and a
//!   status never goes back from `read` to `delivered`.

use serde_json::{json, Map, Value as Json};

/// The routes the delivery operations know and the channel each stands for.
pub const CHANNELS: [(&str, &str); 4] = [
    ("online_users", "websocket"),
    ("offline_users", "push"),
    ("stored_messages", "stored"),
    ("delivery_failures", "sms"),
];

/// The channel a route stands for (an unknown route is its own channel; none: `sent`).
pub fn channel_of(route: Option<&str>) -> String {
    match route {
        None => "sent".to_string(),
        Some(r) => CHANNELS
            .iter()
            .find(|(route, _)| *route == r)
            .map_or(r, |(_, c)| c)
            .to_string(),
    }
}

/// The route of a channel (the inverse of [`channel_of`]).
pub fn route_of(channel: &str) -> String {
    CHANNELS
        .iter()
        .find(|(_, c)| *c == channel)
        .map_or(channel, |(r, _)| r)
        .to_string()
}

/// True for the channels that wait for a confirmation and are retried.
pub fn retried(channel: &str) -> bool {
    matches!(channel, "websocket" | "push")
}

/// What a due entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueKind {
    /// Re-send, or fall back to SMS when the attempts are used up.
    Retry,
    /// Forget the delivery.
    Expire,
}

impl DueKind {
    fn name(self) -> &'static str {
        match self {
            DueKind::Retry => "retry",
            DueKind::Expire => "expire",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "retry" => Some(DueKind::Retry),
            "expire" => Some(DueKind::Expire),
            _ => None,
        }
    }
}

/// A message to one recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The message.
    pub message_id: String,
    /// The recipient.
    pub recipient_id: String,
    /// The sender (receipts go to them), when the record named one.
    pub sender_id: Option<String>,
    /// The chat, when the record named one.
    pub chat_id: Option<String>,
    /// How it was last sent: `websocket`, `push`, `stored`, `sms` (or a route's name).
    pub channel: String,
    /// The channel while unconfirmed, then `delivered` or `read`.
    pub status: String,
    /// Sends to the app (WebSocket or push) so far: 0 while stored.
    pub attempt: u64,
    /// Event time of the message: latencies count from here.
    pub sent_at: i64,
    /// Event time of the latest send.
    pub last_sent_at: i64,
    /// The due entry, if any.
    pub due: Option<(i64, DueKind)>,
    /// How long after its last change an entry is kept.
    pub horizon_ms: i64,
    /// True once forwarded from storage over WebSocket.
    pub forwarded: bool,
    /// The record as it was routed (what a re-send sends again).
    pub record: Json,
}

impl Delivery {
    /// True once the recipient's device confirmed it.
    pub fn confirmed(&self) -> bool {
        matches!(self.status.as_str(), "delivered" | "read")
    }

    /// The record to send now: the routed record with the delivery's fields, routed by
    /// its channel, stamped with `status`, `channel`, `attempt` and `sent_at`.
    pub fn send_record(&self, route_field: &str) -> Json {
        let mut v = self.record.clone();
        if let Some(o) = v.as_object_mut() {
            o.insert("status".into(), json!(self.status));
            o.insert("channel".into(), json!(self.channel));
            o.insert("attempt".into(), json!(self.attempt));
            o.insert("sent_at".into(), json!(self.sent_at));
            if self.attempt > 1 {
                o.insert("retry".into(), json!(true));
            }
            if self.forwarded {
                o.insert("forwarded".into(), json!(true));
            }
            o.insert(route_field.into(), json!(route_of(&self.channel)));
        }
        v
    }

    /// The receipt of a confirmation at `t` for the sender.
    pub fn receipt(&self, t: i64) -> Json {
        json!({
            "message_id": self.message_id,
            "chat_id": self.chat_id,
            "sender_id": self.sender_id,
            "recipient_id": self.recipient_id,
            "channel": self.channel,
            "attempt": self.attempt,
            "status": self.status,
            "sent_at": self.sent_at,
            "latency_ms": t - self.sent_at,
            "timestamp": t,
        })
    }

    /// The delivery as stored.
    pub fn to_json(&self) -> Json {
        let mut o = Map::new();
        o.insert("message_id".into(), json!(self.message_id));
        o.insert("recipient_id".into(), json!(self.recipient_id));
        o.insert("sender_id".into(), json!(self.sender_id));
        o.insert("chat_id".into(), json!(self.chat_id));
        o.insert("channel".into(), json!(self.channel));
        o.insert("status".into(), json!(self.status));
        o.insert("attempt".into(), json!(self.attempt));
        o.insert("sent_at".into(), json!(self.sent_at));
        o.insert("last_sent_at".into(), json!(self.last_sent_at));
        if let Some((t, kind)) = self.due {
            o.insert("due".into(), json!(t));
            o.insert("due_kind".into(), json!(kind.name()));
        }
        o.insert("horizon_ms".into(), json!(self.horizon_ms));
        o.insert("forwarded".into(), json!(self.forwarded));
        o.insert("record".into(), self.record.clone());
        Json::Object(o)
    }

    /// A stored delivery, or none when `v` is not one.
    pub fn from_json(v: &Json) -> Option<Delivery> {
        let text = |f: &str| v.get(f).and_then(Json::as_str).map(str::to_string);
        let int = |f: &str| v.get(f).and_then(Json::as_i64);
        let due = match (int("due"), v.get("due_kind").and_then(Json::as_str)) {
            (Some(t), Some(kind)) => Some((t, DueKind::parse(kind)?)),
            _ => None,
        };
        Some(Delivery {
            message_id: text("message_id")?,
            recipient_id: text("recipient_id")?,
            sender_id: text("sender_id"),
            chat_id: text("chat_id"),
            channel: text("channel")?,
            status: text("status")?,
            attempt: v.get("attempt").and_then(Json::as_u64)?,
            sent_at: int("sent_at")?,
            last_sent_at: int("last_sent_at")?,
            due,
            horizon_ms: int("horizon_ms")?,
            forwarded: v.get("forwarded").and_then(Json::as_bool).unwrap_or(false),
            record: v.get("record").cloned().unwrap_or(Json::Null),
        })
    }
}

/// What a confirmation does to a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// The status moved on: send this receipt to the sender.
    Receipt,
    /// Nothing new (delivered twice, or delivered after read): nothing to send.
    Repeat,
}

/// Applies a confirmation (`read`, else `delivered`) to `d`.
pub fn confirm(d: &mut Delivery, status: &str) -> Confirmed {
    let status = if status == "read" {
        "read"
    } else {
        "delivered"
    };
    let rank = |s: &str| match s {
        "read" => 2,
        "delivered" => 1,
        _ => 0,
    };
    if rank(status) <= rank(&d.status) {
        return Confirmed::Repeat;
    }
    d.status = status.to_string();
    Confirmed::Receipt
}

/// What a due retry does to an unconfirmed delivery on an app channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryStep {
    /// Sent again (attempt counted).
    Resend {
        /// When the next retry is due.
        next_due: i64,
    },
    /// Attempts used up: sent by SMS instead.
    Sms,
}

/// The retry of `d` due at `now`: at most `max_attempts` sends to the app, each waiting
/// `backoff_ms × 2^(attempt − 1)` for a confirmation.
pub fn retry(d: &mut Delivery, now: i64, max_attempts: u64, backoff_ms: i64) -> RetryStep {
    if d.attempt >= max_attempts {
        d.channel = "sms".into();
        d.status = "sms".into();
        return RetryStep::Sms;
    }
    d.attempt += 1;
    d.last_sent_at = now;
    RetryStep::Resend {
        next_due: now + wait_ms(d.attempt, backoff_ms),
    }
}

/// How long attempt `attempt` (from 1) waits for its confirmation.
pub fn wait_ms(attempt: u64, backoff_ms: i64) -> i64 {
    let doublings = attempt.saturating_sub(1).min(30) as u32;
    backoff_ms.saturating_mul(1i64 << doublings)
}

/// Store keys. Ids must not contain U+001F (the separator).
pub mod keys {
    /// A delivery.
    pub fn delivery(recipient: &str, message: &str) -> String {
        format!("d\u{1f}{recipient}\u{1f}{message}")
    }

    /// A stored delivery of `recipient` (the store-and-forward index).
    pub fn stored(recipient: &str, message: &str) -> String {
        format!("s\u{1f}{recipient}\u{1f}{message}")
    }

    /// The range of `recipient`'s stored deliveries.
    pub fn stored_range(recipient: &str) -> std::ops::Range<String> {
        format!("s\u{1f}{recipient}\u{1f}")..format!("s\u{1f}{recipient}\u{20}")
    }

    /// A due entry: due entries sort by time.
    pub fn due(t: i64, recipient: &str, message: &str) -> String {
        format!("t\u{1f}{:020}\u{1f}{recipient}\u{1f}{message}", t.max(0))
    }

    /// Due entries from `from` up to and including `to`.
    pub fn due_range(from: i64, to: i64) -> std::ops::Range<String> {
        format!("t\u{1f}{:020}", from.max(0))..format!("t\u{1f}{:020}", to.saturating_add(1).max(0))
    }

    /// The recipient and message of a due entry's key.
    pub fn parse_due(key: &str) -> Option<(i64, &str, &str)> {
        let mut parts = key.strip_prefix("t\u{1f}")?.splitn(3, '\u{1f}');
        let t = parts.next()?.parse().ok()?;
        Some((t, parts.next()?, parts.next()?))
    }

    /// The delivery clock: the latest event time of the deliveries and confirmations
    /// seen (presence changes do not move it).
    pub const CLOCK: &str = "clock";

    /// Due entries before this time have been handled.
    pub const SCANNED: &str = "scanned";
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn delivery(channel: &str) -> Delivery {
        Delivery {
            message_id: "m1".into(),
            recipient_id: "bob".into(),
            sender_id: Some("alice".into()),
            chat_id: Some("chat-1".into()),
            channel: channel.into(),
            status: channel.into(),
            attempt: u64::from(retried(channel)),
            sent_at: 1_000,
            last_sent_at: 1_000,
            due: Some((61_000, DueKind::Retry)),
            horizon_ms: 3_600_000,
            forwarded: false,
            record: json!({"message_id": "m1", "content": "sealed"}),
        }
    }

    #[test]
    fn a_delivery_reads_back_as_it_was_stored() {
        let d = delivery("push");
        assert_eq!(Delivery::from_json(&d.to_json()), Some(d));
        assert_eq!(Delivery::from_json(&json!({"message_id": "m1"})), None);
    }

    #[test]
    fn routes_and_channels_map_both_ways() {
        for (route, channel) in CHANNELS {
            assert_eq!(channel_of(Some(route)), channel);
            assert_eq!(route_of(channel), route);
        }
        assert_eq!(channel_of(Some("carrier_pigeon")), "carrier_pigeon");
        assert_eq!(channel_of(None), "sent");
    }

    #[test]
    fn retries_double_their_wait_then_fall_back_to_sms() {
        let mut d = delivery("websocket");
        assert_eq!(
            retry(&mut d, 61_000, 3, 60_000),
            RetryStep::Resend {
                next_due: 61_000 + 120_000
            }
        );
        assert_eq!((d.attempt, d.last_sent_at), (2, 61_000));
        assert_eq!(
            retry(&mut d, 181_000, 3, 60_000),
            RetryStep::Resend {
                next_due: 181_000 + 240_000
            }
        );
        assert_eq!(retry(&mut d, 421_000, 3, 60_000), RetryStep::Sms);
        assert_eq!(
            (d.channel.as_str(), d.status.as_str(), d.attempt),
            ("sms", "sms", 3)
        );
        assert_eq!(wait_ms(40, 1), 1 << 30, "the wait is bounded");
    }

    #[test]
    fn confirmations_only_move_forward() {
        let mut d = delivery("push");
        assert_eq!(confirm(&mut d, "delivered"), Confirmed::Receipt);
        assert_eq!(confirm(&mut d, "delivered"), Confirmed::Repeat);
        assert_eq!(confirm(&mut d, "read"), Confirmed::Receipt);
        assert_eq!(confirm(&mut d, "delivered"), Confirmed::Repeat);
        assert_eq!(d.status, "read");
        let mut unread = delivery("stored");
        assert_eq!(
            confirm(&mut unread, "read"),
            Confirmed::Receipt,
            "read implies delivered"
        );
        let r = d.receipt(5_000);
        assert_eq!(r["latency_ms"], json!(4_000));
        assert_eq!(r["sender_id"], json!("alice"));
    }

    #[test]
    fn a_send_record_is_routed_by_its_channel_and_due_keys_sort_by_time() {
        let mut d = delivery("push");
        d.attempt = 2;
        let v = d.send_record("_route");
        assert_eq!(v["_route"], json!("offline_users"));
        assert_eq!(
            (v["attempt"].clone(), v["retry"].clone()),
            (json!(2), json!(true))
        );
        assert!(keys::due(9, "b", "m") < keys::due(10, "a", "m"));
        assert_eq!(
            keys::parse_due(&keys::due(42, "bob", "m7")),
            Some((42, "bob", "m7"))
        );
        let r = keys::due_range(10, 20);
        assert!(r.contains(&keys::due(20, "zed", "m")) && !r.contains(&keys::due(21, "a", "m")));
        assert!(keys::stored_range("bob").contains(&keys::stored("bob", "m9")));
        assert!(!keys::stored_range("bob").contains(&keys::stored("bobby", "m9")));
    }
}
