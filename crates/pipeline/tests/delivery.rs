//! The message-delivery operations per recipient (`strom_pipeline::delivery`) and the
//! message seed's operations they build on, run through the strom-streams test driver:
//! membership checks, presence with last-seen, fan-out to every member but the sender,
//! delivery tracking, receipts with latency, retries with backoff, the SMS fallback,
//! store and forward, expiry, and a restart from the changelog.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use strom_streams::prelude::*;

mod support;
use support::{dlq_reasons, driver, out, send};

/// `(record key, message, recipient, status, attempt)` of each record.
fn sends(records: &[(String, Value)]) -> Vec<(String, String, String, String, u64)> {
    records
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v["message_id"].as_str().unwrap().to_string(),
                v["recipient_id"].as_str().unwrap().to_string(),
                v["status"].as_str().unwrap().to_string(),
                v["attempt"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn s(
    key: &str,
    m: &str,
    r: &str,
    status: &str,
    attempt: u64,
) -> (String, String, String, String, u64) {
    (key.into(), m.into(), r.into(), status.into(), attempt)
}

#[test]
fn senders_must_be_members_of_the_chat_they_write_to() {
    let mut d = driver(
        r#"
message_pipeline:
  name: members
  input_topics: [incoming-messages]
  processing_stages:
    - name: message-validation
      operations:
        - join: {table: chat-members, on: chat_id, as: chat}
        - validate_sender_permissions: {members: chat.members}
  delivery_channels:
    - {type: kafka, topic: valid}
"#,
    );
    send(
        &mut d,
        "chat-members",
        "c1",
        json!({"members": ["alice", "bob"]}),
        0,
    );
    let msg = |chat: &str, from: &str| json!({"chat_id": chat, "sender_id": from, "content": "hi"});
    send(&mut d, "incoming-messages", "c1", msg("c1", "alice"), 1);
    send(&mut d, "incoming-messages", "c1", msg("c1", "mallory"), 2);
    send(&mut d, "incoming-messages", "c2", msg("c2", "alice"), 3);
    let valid = out(&mut d, "valid");
    assert_eq!(valid.len(), 1);
    assert_eq!(valid[0].1["chat"], json!({"members": ["alice", "bob"]}));
    assert_eq!(
        dlq_reasons(&mut d),
        vec![
            "sender mallory is not a member of chat \"c1\"".to_string(),
            "chat \"c2\" has no members (chat.members is not a list)".to_string(),
        ]
    );
}

const T0: i64 = 10_000_000;
const MINUTE: i64 = 60_000;

#[test]
fn presence_and_last_seen_choose_websocket_push_or_storage() {
    let mut d = driver(
        r#"
message_pipeline:
  name: routing
  input_topics: [incoming-messages]
  processing_stages:
    - name: delivery-routing
      operations:
        - check_recipient_online_status
        - route_to_appropriate_delivery_pipeline: {push_within: 1 hour}
  delivery_channels:
    - {type: kafka, topic: online, for: online_users}
    - {type: kafka, topic: push, for: offline_users}
    - {type: kafka, topic: stored, for: stored_messages}
    - {type: kafka, topic: failures, for: delivery_failures}
"#,
    );
    let presence = [
        ("bob", json!({"online": true, "last_seen": T0 - 5 * MINUTE})),
        (
            "carol",
            json!({"online": false, "last_seen": T0 - 59 * MINUTE}),
        ),
        (
            "dave",
            json!({"online": false, "last_seen": T0 - 60 * MINUTE}),
        ),
        ("erin", json!({"online": false, "timestamp": T0 + MINUTE})),
        ("frank", json!(false)),
    ];
    for (user, p) in presence {
        send(&mut d, "user-presence", user, p, 0);
    }
    for (i, who) in ["bob", "carol", "dave", "erin", "frank", "gina"]
        .iter()
        .enumerate()
    {
        let m = json!({"message_id": format!("m{i}"), "recipient_id": who, "timestamp": T0});
        send(&mut d, "incoming-messages", "c1", m, T0);
    }
    let failed = json!({"message_id": "m9", "recipient_id": "bob", "delivery_failed": true, "timestamp": T0});
    send(&mut d, "incoming-messages", "c1", failed, T0);
    let ids = |d: &mut TopologyTestDriver, topic: &str| -> Vec<String> {
        out(d, topic)
            .iter()
            .map(|(_, v)| v["message_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&mut d, "online"), ["m0"]);
    // Seen 59 minutes before the message, or after it: a push notification.
    assert_eq!(ids(&mut d, "push"), ["m1", "m3"]);
    // Seen an hour or more before, never, or no last-seen time: stored.
    assert_eq!(ids(&mut d, "stored"), ["m2", "m4", "m5"]);
    assert_eq!(ids(&mut d, "failures"), ["m9"]);
}

#[test]
fn online_status_reports_when_the_user_was_last_seen() {
    let mut d = driver(
        r#"
message_pipeline:
  name: presence
  input_topics: [incoming-messages]
  processing_stages:
    - name: delivery-routing
      operations: [check_recipient_online_status]
  delivery_channels:
    - {type: kafka, topic: out}
"#,
    );
    send(
        &mut d,
        "user-presence",
        "bob",
        json!({"online": false, "last_seen": 42}),
        0,
    );
    send(
        &mut d,
        "user-presence",
        "carol",
        json!({"online": true, "timestamp": 7}),
        0,
    );
    send(&mut d, "user-presence", "dave", json!(true), 0);
    for who in ["bob", "carol", "dave", "erin"] {
        send(
            &mut d,
            "incoming-messages",
            "c1",
            json!({"recipient_id": who}),
            1,
        );
    }
    let got: Vec<(Value, Value)> = out(&mut d, "out")
        .into_iter()
        .map(|(_, v)| (v["online"].clone(), v["last_seen"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (json!(false), json!(42)),
            (json!(true), json!(7)),
            (json!(true), Value::Null),
            (json!(false), Value::Null),
        ]
    );
}

#[test]
fn a_message_fans_out_to_every_member_but_the_sender() {
    let mut d = driver(
        r#"
message_pipeline:
  name: fanout
  input_topics: [incoming-messages]
  processing_stages:
    - name: delivery-routing
      operations:
        - resolve_recipients: {members: chat.members}
  delivery_channels:
    - {type: kafka, topic: deliveries}
"#,
    );
    let m = json!({"message_id": "m1", "sender_id": "bob", "recipient_id": "x",
                   "chat": {"members": ["alice", "bob", "carol"]}});
    send(&mut d, "incoming-messages", "chat-1", m, 5);
    send(
        &mut d,
        "incoming-messages",
        "chat-2",
        json!({"message_id": "m2", "sender_id": "bob"}),
        6,
    );
    let got: Vec<(String, Value)> = out(&mut d, "deliveries")
        .into_iter()
        .map(|(k, v)| (k, v["recipient_id"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("alice".to_string(), json!("alice")),
            ("carol".to_string(), json!("carol"))
        ]
    );
    assert_eq!(dlq_reasons(&mut d), ["no member list at chat.members"]);
}

const TRACKING: &str = r#"
message_pipeline:
  name: delivery
  input_topics: [incoming-messages, user-presence]
  processing_stages:
    - name: delivery-routing
      from: incoming-messages
      operations:
        - filter: "type == 'message'"
        - resolve_recipients
        - check_recipient_online_status
        - route_to_appropriate_delivery_pipeline: {push_within: 1 hour}
    - name: confirmations
      from: incoming-messages
      operations:
        - filter: "type == 'delivery_confirmation'"
    - name: delivery-tracking
      from: [delivery-routing, confirmations, user-presence]
      operations:
        - group_by_recipient_id
        - track_delivery_status: {recipient: recipient_id, horizon: HORIZON}
        - handle_delivery_confirmations: {recipient: recipient_id}
        - forward_stored_messages
        - manage_retry_logic: {recipient: recipient_id, max_attempts: 3, backoff: 1 minute}
  delivery_channels:
    - {type: kafka, topic: ws, for: online_users, from: delivery-tracking}
    - {type: kafka, topic: push, for: offline_users, from: delivery-tracking}
    - {type: kafka, topic: sms, for: delivery_failures, from: delivery-tracking}
    - {type: kafka, topic: stored, for: stored_messages, from: delivery-tracking}
    - {type: kafka, topic: receipts, for: receipts, from: delivery-tracking}
    - {type: kafka, topic: status, from: delivery-tracking}
"#;

fn message(id: &str, from: &str, members: &[&str], t: i64) -> Value {
    json!({"type": "message", "message_id": id, "chat_id": "chat-1", "sender_id": from,
           "members": members, "timestamp": t})
}

fn confirmation(id: &str, by: &str, status: &str, t: i64) -> Value {
    json!({"type": "delivery_confirmation", "status": status, "message_id": id,
           "chat_id": "chat-1", "recipient_id": by, "timestamp": t})
}

fn presence(d: &mut TopologyTestDriver, user: &str, online: bool, t: i64) {
    let p = json!({"user_id": user, "online": online, "last_seen": t, "timestamp": t});
    send(d, "user-presence", user, p, t);
}

#[test]
fn deliveries_are_confirmed_retried_with_backoff_sent_by_sms_and_forwarded() {
    let mut d = driver(&TRACKING.replace("HORIZON", "7 days"));
    presence(&mut d, "bob", true, T0 - 1000);
    presence(&mut d, "carol", false, T0 - 30 * MINUTE);
    presence(&mut d, "dave", false, T0 - 120 * MINUTE);
    let everyone = ["alice", "bob", "carol", "dave", "erin"];
    let mut m2 = message("m2", "bob", &["bob", "alice"], T0 + 1000);
    m2["delivery_failed"] = json!(true);
    let records = [
        message("m1", "alice", &everyone, T0),
        m2,
        confirmation("m1", "bob", "delivered", T0 + 30_000),
        // Moves the clock past carol's first wait (T0 + 1 min): her push goes again.
        message("m3", "alice", &["alice", "bob"], T0 + 61_000),
        // At the very end of m3's wait: the confirmation wins, no retry.
        confirmation("m3", "bob", "delivered", T0 + 121_000),
    ];
    for r in records {
        let t = r["timestamp"].as_i64().unwrap();
        send(&mut d, "incoming-messages", "chat-1", r, t);
    }
    // Dave comes online: what was stored for him goes out over WebSocket, and the
    // forward moves the clock to T0 + 200 s: carol's second wait (T0 + 3 min) ends.
    presence(&mut d, "dave", true, T0 + 200_000);
    for r in [
        confirmation("m1", "bob", "read", T0 + 500_000),
        confirmation("m1", "bob", "delivered", T0 + 501_000), // a repeat: nothing
        confirmation("m9", "zed", "delivered", T0 + 502_000), // no such delivery
    ] {
        let t = r["timestamp"].as_i64().unwrap();
        send(&mut d, "incoming-messages", "chat-1", r, t);
    }

    assert_eq!(
        sends(&out(&mut d, "ws")),
        vec![
            s("bob", "m1", "bob", "websocket", 1),
            s("bob", "m3", "bob", "websocket", 1),
            s("dave", "m1", "dave", "websocket", 1),
            // The clock at T0 + 500 s: dave's waits of 1 and 2 minutes both ended.
            s("dave", "m1", "dave", "websocket", 2),
            s("dave", "m1", "dave", "websocket", 3),
        ]
    );
    assert_eq!(
        sends(&out(&mut d, "push")),
        vec![
            s("carol", "m1", "carol", "push", 1),
            s("carol", "m1", "carol", "push", 2),
            s("carol", "m1", "carol", "push", 3),
        ]
    );
    let sms = out(&mut d, "sms");
    assert_eq!(
        sends(&sms),
        vec![
            s("alice", "m2", "alice", "sms", 0), // failed at the source: SMS at once
            s("carol", "m1", "carol", "sms", 3), // three pushes unconfirmed
        ]
    );
    assert_eq!(sms[1].1["retry"], json!(false));
    assert_eq!(
        sends(&out(&mut d, "stored")),
        vec![
            s("dave", "m1", "dave", "stored", 0),
            s("erin", "m1", "erin", "stored", 0)
        ]
    );
    let receipts = out(&mut d, "receipts");
    let got: Vec<(String, Value)> = receipts
        .iter()
        .map(|(k, v)| {
            let mut v = v.clone();
            v.as_object_mut().unwrap().remove("sent_at");
            (k.clone(), v)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "alice".to_string(),
                json!({"message_id": "m1", "chat_id": "chat-1", "sender_id": "alice",
                "recipient_id": "bob", "channel": "websocket", "attempt": 1, "status": "delivered",
                "latency_ms": 30_000, "timestamp": T0 + 30_000})
            ),
            (
                "alice".to_string(),
                json!({"message_id": "m3", "chat_id": "chat-1", "sender_id": "alice",
                "recipient_id": "bob", "channel": "websocket", "attempt": 1, "status": "delivered",
                "latency_ms": 60_000, "timestamp": T0 + 121_000})
            ),
            (
                "alice".to_string(),
                json!({"message_id": "m1", "chat_id": "chat-1", "sender_id": "alice",
                "recipient_id": "bob", "channel": "websocket", "attempt": 1, "status": "read",
                "latency_ms": 500_000, "timestamp": T0 + 500_000})
            ),
        ]
    );
    assert_eq!(
        dlq_reasons(&mut d),
        ["no delivery of m9 to zed to confirm"],
        "presence changes are consumed, not dead-lettered"
    );
    // Every record on the status output is a delivery state (no presence change).
    let status = out(&mut d, "status");
    assert!(status
        .iter()
        .all(|(_, v)| v["status"].is_string() && v["message_id"].is_string()));
    assert_eq!(status.len(), 5 + 3 + 2 + 2 + 3, "{status:?}");
}

#[test]
fn unconfirmed_deliveries_expire_after_the_horizon_and_survive_a_restart() {
    let mut d = driver(&TRACKING.replace("HORIZON", "10 minutes"));
    presence(&mut d, "bob", false, T0 - MINUTE);
    let msg = |d: &mut TopologyTestDriver, m: Value| {
        let t = m["timestamp"].as_i64().unwrap();
        send(d, "incoming-messages", "chat-1", m, t);
    };
    msg(&mut d, message("m1", "alice", &["alice", "bob"], T0));
    msg(&mut d, message("m2", "bob", &["alice", "bob"], T0 + 1));
    // Bob, seen a minute ago, gets a push; alice was never seen: m2 is stored for her.
    assert_eq!(
        sends(&out(&mut d, "push")),
        vec![s("bob", "m1", "bob", "push", 1)]
    );
    assert_eq!(
        sends(&out(&mut d, "stored")),
        vec![s("alice", "m2", "alice", "stored", 0)]
    );
    // A restart from the changelog alone keeps the waits and what is stored.
    d.commit().unwrap();
    d.restart(true).unwrap();
    let mut failed = message("m0", "zoe", &["zoe", "yan"], T0 + 2 * MINUTE);
    failed["delivery_failed"] = json!(true);
    msg(&mut d, failed);
    assert_eq!(
        sends(&out(&mut d, "push")),
        vec![s("bob", "m1", "bob", "push", 2)]
    );
    assert_eq!(
        sends(&out(&mut d, "sms")),
        vec![s("yan", "m0", "yan", "sms", 0)]
    );
    // At T0 + 17 min: bob's third push (T0 + 3 min), his SMS (T0 + 7 min) and its
    // expiry ten minutes later; alice's m2 and yan's m0 expire ten minutes after they
    // were sent. Zoe's m3 is stored.
    msg(
        &mut d,
        message("m3", "carol", &["carol", "zoe"], T0 + 17 * MINUTE),
    );
    assert_eq!(
        sends(&out(&mut d, "push")),
        vec![s("bob", "m1", "bob", "push", 3)]
    );
    assert_eq!(
        sends(&out(&mut d, "sms")),
        vec![s("bob", "m1", "bob", "sms", 3)]
    );
    let expired: Vec<_> = sends(&out(&mut d, "status"))
        .into_iter()
        .filter(|x| x.3 == "expired")
        .collect();
    assert_eq!(
        expired,
        vec![
            s("alice", "m2", "alice", "expired", 0),
            s("yan", "m0", "yan", "expired", 0),
            s("bob", "m1", "bob", "expired", 3),
        ]
    );
    let store: Vec<(String, Value)> = d
        .store_all(&StoreHandle::new(
            "deliveries",
            StringSerde,
            JsonSerde::<Value>::new(),
        ))
        .unwrap();
    let deliveries: Vec<&str> = store
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("d\u{1f}"))
        .collect();
    assert_eq!(deliveries, ["d\u{1f}zoe\u{1f}m3"], "only zoe's m3 is left");
    // Alice's stored message expired: her coming online forwards nothing; zoe's does.
    presence(&mut d, "alice", true, T0 + 18 * MINUTE);
    presence(&mut d, "zoe", true, T0 + 18 * MINUTE);
    let ws = out(&mut d, "ws");
    assert_eq!(sends(&ws), vec![s("zoe", "m3", "zoe", "websocket", 1)]);
    assert_eq!(ws[0].1["forwarded"], json!(true));
}
