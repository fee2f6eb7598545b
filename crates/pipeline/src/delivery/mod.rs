//! Message delivery per recipient (feature `runtime`): the operations that make the
//! seed `message-delivery-system` a working system — a message fans out to every member
//! of its chat but the sender, and each delivery is tracked until the recipient's
//! device confirms it, re-sent with backoff, sent by SMS when the attempts are used up,
//! stored while the recipient is away and forwarded when they come online.
//!
//! | operation | parameters (defaults) | does |
//! | --- | --- | --- |
//! | `resolve_recipients` | `members: members`, `sender: sender_id`, `recipient: recipient_id` | one record per member of the list at `members` (e.g. `chat.members` after a `join` of a chat-members table) except the sender, each keyed by its recipient with `recipient` set to it; a record without the list goes to the dead-letter topic |
//! | `track_delivery_status` with `recipient` | `recipient`, `id: message_id`, `sender: sender_id`, `chat: chat_id`, `horizon: 7 days` | records the delivery (message × recipient) with its channel — from its route: `online_users` → `websocket`, `offline_users` → `push`, `stored_messages` → `stored`, `delivery_failures` → `sms` — and adds `status` (the channel), `channel`, `attempt` (sends to the app: 1 for `websocket`/`push`, else 0) and `sent_at`; a delivery already confirmed is not sent again (dropped) |
//! | `handle_delivery_confirmations` with `recipient` | `recipient`, `id`, `type_field: type`, `confirmation: delivery_confirmation`, `route: receipts` | a confirmation (`status: read`, else delivered) moves its delivery to `delivered` or `read` and becomes a receipt for the sender — keyed by `sender_id`, routed to `route`: `{message_id, chat_id, sender_id, recipient_id, channel, attempt, status, sent_at, latency_ms, timestamp}`, `latency_ms` = confirmation time − message time; a repeat (delivered twice, delivered after read) is dropped; a confirmation of no known delivery goes to the dead-letter topic |
//! | `forward_stored_messages` | `user: user_id`, `online: online`, `id: message_id`, `route: online_users` | a presence change (a record with a boolean `online` and no message id) is consumed; when the user came online, each delivery stored for them is sent over WebSocket (`status: websocket`, `attempt: 1`, `forwarded: true`, routed to `route`, at the presence change's time) |
//! | `manage_retry_logic` with `recipient` | `recipient`, `id`, `max_attempts: 3`, `backoff: 1 minute` | a first send to the app waits `backoff` for its confirmation, attempt n waits `backoff × 2^(n−1)`; when the wait ends unconfirmed the delivery is sent again on its channel (`attempt` + 1, `retry: true`), and after `max_attempts` sends by SMS (`status: sms`, routed to `delivery_failures`); entries are forgotten `horizon` after their last change (an unconfirmed one with `status: expired`) |
//!
//! The four tracking operations share the store `deliveries` (`store` names another) and keep state per
//! record key: put `group_by_<recipient field>` before them, so that a user's
//! deliveries, confirmations and presence changes meet in one task, in order.
//!
//! # Time
//!
//! Waits are event time: the **delivery clock** of a task is the latest event time of
//! the deliveries and confirmations that reached `manage_retry_logic` (presence changes
//! do not move it). After each such record, every retry and expiry due at or before the
//! clock is handled, oldest first — a confirmation at the very time its wait ends wins,
//! since it is handled before the clock moves. With no traffic, the clock stands still.
//!
//! Retries go out on the channel of the first send (presence is not looked up again);
//! a stored delivery is not retried until it is forwarded. Processed exactly once with
//! the pipeline's guarantee: the store, its changelog and the outputs commit together.

mod recipients;
pub mod state;
mod tracker;

use std::sync::Arc;

use serde_json::Value as Json;
use strom_streams::prelude::*;

use crate::op_metrics::OpMetrics;
use crate::spec::Operation;
pub use recipients::ResolveRecipients;
pub use tracker::{Role, Settings, Tracker};

/// The operations only this module runs.
pub const NAMES: &[&str] = &["resolve_recipients", "forward_stored_messages"];

/// True when this module runs `op`: its own operations, and the seed's tracking
/// operations when they name a `recipient` field.
pub fn runs(op: &Operation) -> bool {
    match op.name.as_str() {
        "resolve_recipients" | "forward_stored_messages" => true,
        "track_delivery_status" | "handle_delivery_confirmations" | "manage_retry_logic" => {
            param(op, "recipient").is_some()
        }
        _ => false,
    }
}

fn param<'o>(op: &'o Operation, name: &str) -> Option<&'o str> {
    op.params
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.as_text())
}

fn text_param(op: &Operation, name: &str, default: &str) -> String {
    param(op, name).unwrap_or(default).to_string()
}

fn duration_param(op: &Operation, name: &str, default_ms: i64) -> Result<i64, String> {
    match param(op, name) {
        None => Ok(default_ms),
        Some(t) => crate::duration::parse_ms(t).map_err(|e| format!("{name}: {e}")),
    }
}

/// The settings of a tracking operation.
fn settings(op: &Operation) -> Result<Settings, String> {
    let route_default = match op.name.as_str() {
        "forward_stored_messages" => "online_users",
        _ => "receipts",
    };
    let max_attempts = match param(op, "max_attempts") {
        None => 3,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n >= 1 => n,
            _ => return Err(format!("max_attempts {v:?}: a whole number from 1")),
        },
    };
    let backoff_ms = duration_param(op, "backoff", 60_000)?;
    if backoff_ms == 0 {
        return Err("backoff must be longer than 0".into());
    }
    Ok(Settings {
        id: text_param(op, "id", "message_id"),
        recipient: text_param(op, "recipient", "recipient_id"),
        sender: text_param(op, "sender", "sender_id"),
        chat: text_param(op, "chat", "chat_id"),
        type_field: text_param(op, "type_field", "type"),
        confirmation: text_param(op, "confirmation", "delivery_confirmation"),
        horizon_ms: duration_param(op, "horizon", 7 * 24 * 3_600_000)?,
        route: text_param(op, "route", route_default),
        user: text_param(op, "user", "user_id"),
        online: text_param(op, "online", "online"),
        max_attempts,
        backoff_ms,
    })
}

/// Adds operation `op` (one [`runs`] accepts) after `stream`.
pub fn add(
    builder: &StreamsBuilder,
    stream: &KStream<String, Json>,
    op: &Operation,
    metrics: &Arc<OpMetrics>,
) -> Result<KStream<String, Json>, String> {
    if op.name == "resolve_recipients" {
        let fan_out = ResolveRecipients {
            members: text_param(op, "members", "members"),
            sender: text_param(op, "sender", "sender_id"),
            recipient: text_param(op, "recipient", "recipient_id"),
            metrics: metrics.clone(),
        };
        return Ok(stream.process(move || fan_out.clone(), &[]));
    }
    let role = match op.name.as_str() {
        "track_delivery_status" => Role::Track,
        "handle_delivery_confirmations" => Role::Confirm,
        "forward_stored_messages" => Role::Forward,
        "manage_retry_logic" => Role::Retry,
        other => return Err(format!("{other} is not a delivery operation")),
    };
    let store = StoreHandle::new(
        &text_param(op, "store", "deliveries"),
        StringSerde,
        JsonSerde::new(),
    );
    builder.add_store(&store);
    let tracker = Tracker {
        role,
        store: store.clone(),
        settings: Arc::new(settings(op)?),
        metrics: metrics.clone(),
    };
    Ok(stream.process(move || tracker.clone(), &[store.name()]))
}
