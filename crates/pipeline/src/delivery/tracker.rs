//! The per-recipient tracking operators: `track_delivery_status`,
//! `handle_delivery_confirmations`, `forward_stored_messages` and `manage_retry_logic`
//! with `recipient`, sharing one store (see [`super`] for what each does, and
//! [`super::state`] for the store's layout and invariants).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{json, Value as Json};
use strom_streams::prelude::*;

use super::state::{self, keys, Confirmed, Delivery, DueKind, RetryStep};
use crate::compile::{field, ROUTE_FIELD};
use crate::op_metrics::OpMetrics;

/// Which of the four operations an operator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `track_delivery_status`.
    Track,
    /// `handle_delivery_confirmations`.
    Confirm,
    /// `forward_stored_messages`.
    Forward,
    /// `manage_retry_logic`.
    Retry,
}

/// Field names and settings of the tracking operations.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The message id field.
    pub id: String,
    /// The recipient field.
    pub recipient: String,
    /// The sender field.
    pub sender: String,
    /// The chat field.
    pub chat: String,
    /// The field naming a record's kind, and the kind of confirmations.
    pub type_field: String,
    /// See `type_field`.
    pub confirmation: String,
    /// How long an entry is kept after its last change (track).
    pub horizon_ms: i64,
    /// The route of receipts (confirm) or of forwarded messages (forward).
    pub route: String,
    /// The user and presence fields of presence changes (forward).
    pub user: String,
    /// See `user`.
    pub online: String,
    /// Sends to the app before the SMS fallback (retry).
    pub max_attempts: u64,
    /// The first wait for a confirmation (retry); each further one doubles.
    pub backoff_ms: i64,
}

/// One tracking operation over the shared store.
#[derive(Clone)]
pub struct Tracker {
    /// Which operation.
    pub role: Role,
    /// The shared store (layout in [`super::state::keys`]).
    pub store: StoreHandle<String, Json>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// The operation's metrics (errors).
    pub metrics: Arc<OpMetrics>,
}

type Ctx<'c, 'e> = ProcessorContext<'c, 'e, String, Json>;

fn text(v: &Json, name: &str) -> Option<String> {
    field(v, name).map(|f| f.as_str().map_or_else(|| f.to_string(), str::to_string))
}

impl Tracker {
    fn is_confirmation(&self, v: &Json) -> bool {
        text(v, &self.settings.type_field).as_deref() == Some(self.settings.confirmation.as_str())
    }

    /// Ids of a delivery or confirmation: (recipient, message); none for other records
    /// (presence changes).
    fn ids(&self, v: &Json) -> Result<Option<(String, String)>, String> {
        let Some(message) = text(v, &self.settings.id) else {
            return Ok(None);
        };
        match text(v, &self.settings.recipient) {
            Some(recipient) => Ok(Some((recipient, message))),
            None => Err(format!(
                "no {} for message {message}",
                self.settings.recipient
            )),
        }
    }

    fn get(
        &self,
        ctx: &mut Ctx<'_, '_>,
        recipient: &str,
        message: &str,
    ) -> Result<Option<Delivery>, ProcessError> {
        let stored = ctx
            .store(&self.store)?
            .get(&keys::delivery(recipient, message))?;
        Ok(stored.as_ref().and_then(Delivery::from_json))
    }

    fn put(&self, ctx: &mut Ctx<'_, '_>, d: &Delivery) -> Result<(), ProcessError> {
        ctx.store(&self.store)?.put(
            &keys::delivery(&d.recipient_id, &d.message_id),
            &d.to_json(),
        )
    }

    fn int(&self, ctx: &mut Ctx<'_, '_>, key: &str) -> Result<Option<i64>, ProcessError> {
        Ok(ctx
            .store(&self.store)?
            .get(&key.to_string())?
            .and_then(|v| v.as_i64()))
    }

    /// Replaces `d`'s due entry by one at `t` (never before the time already scanned,
    /// so that the next scan sees it), or removes it.
    fn schedule(
        &self,
        ctx: &mut Ctx<'_, '_>,
        d: &mut Delivery,
        due: Option<(i64, DueKind)>,
    ) -> Result<(), ProcessError> {
        let scanned = self.int(ctx, keys::SCANNED)?.unwrap_or(0);
        let mut store = ctx.store(&self.store)?;
        if let Some((t, _)) = d.due.take() {
            store.delete(&keys::due(t, &d.recipient_id, &d.message_id))?;
        }
        if let Some((t, kind)) = due {
            let t = t.max(scanned);
            store.put(&keys::due(t, &d.recipient_id, &d.message_id), &json!(t))?;
            d.due = Some((t, kind));
        }
        Ok(())
    }

    /// Sets whether `d` is in its recipient's stored index.
    fn index_stored(
        &self,
        ctx: &mut Ctx<'_, '_>,
        d: &Delivery,
        stored: bool,
    ) -> Result<(), ProcessError> {
        debug_assert_eq!(
            stored,
            d.status == "stored",
            "indexed exactly while stored: {d:?}"
        );
        let key = keys::stored(&d.recipient_id, &d.message_id);
        let mut store = ctx.store(&self.store)?;
        if stored {
            store.put(&key, &Json::Bool(true))
        } else {
            store.delete(&key)
        }
    }

    /// `track_delivery_status`: a new delivery.
    fn track(
        &self,
        ctx: &mut Ctx<'_, '_>,
        mut r: Record<String, Json>,
    ) -> Result<(), ProcessError> {
        if self.is_confirmation(&r.value) {
            ctx.forward(r);
            return Ok(());
        }
        let Some((recipient, message)) = self.ids(&r.value).map_err(ProcessError::user)? else {
            ctx.forward(r);
            return Ok(());
        };
        let previous = self.get(ctx, &recipient, &message)?;
        if previous.as_ref().is_some_and(Delivery::confirmed) {
            return Ok(()); // already on the device: not delivered again
        }
        let route = r
            .value
            .get(ROUTE_FIELD)
            .and_then(Json::as_str)
            .map(str::to_string);
        let channel = state::channel_of(route.as_deref());
        let mut record = r.value.clone();
        if let Some(o) = record.as_object_mut() {
            o.remove(ROUTE_FIELD);
        }
        let mut d = Delivery {
            message_id: message,
            recipient_id: recipient,
            sender_id: text(&r.value, &self.settings.sender),
            chat_id: text(&r.value, &self.settings.chat),
            attempt: u64::from(state::retried(&channel)),
            status: channel.clone(),
            channel,
            sent_at: r.timestamp_ms,
            last_sent_at: r.timestamp_ms,
            due: previous.and_then(|p| p.due),
            horizon_ms: self.settings.horizon_ms,
            forwarded: false,
            record,
        };
        let expiry = r.timestamp_ms.saturating_add(d.horizon_ms);
        self.schedule(ctx, &mut d, Some((expiry, DueKind::Expire)))?;
        self.index_stored(ctx, &d, d.channel == "stored")?;
        self.put(ctx, &d)?;
        if let Some(o) = r.value.as_object_mut() {
            o.insert("status".into(), json!(d.status));
            o.insert("channel".into(), json!(d.channel));
            o.insert("attempt".into(), json!(d.attempt));
            o.insert("sent_at".into(), json!(d.sent_at));
        }
        ctx.forward(r);
        Ok(())
    }

    /// `handle_delivery_confirmations`: a confirmation becomes a receipt to the sender.
    fn confirm(&self, ctx: &mut Ctx<'_, '_>, r: Record<String, Json>) -> Result<(), ProcessError> {
        if !self.is_confirmation(&r.value) {
            ctx.forward(r);
            return Ok(());
        }
        let Some((recipient, message)) = self.ids(&r.value).map_err(ProcessError::user)? else {
            return Err(ProcessError::user(format!(
                "a confirmation without {}",
                self.settings.id
            )));
        };
        let Some(mut d) = self.get(ctx, &recipient, &message)? else {
            return Err(ProcessError::user(format!(
                "no delivery of {message} to {recipient} to confirm"
            )));
        };
        let status = text(&r.value, "status").unwrap_or_default();
        if state::confirm(&mut d, &status) == Confirmed::Repeat {
            return Ok(());
        }
        let t = r.timestamp_ms;
        self.index_stored(ctx, &d, false)?;
        let expiry = t.saturating_add(d.horizon_ms);
        self.schedule(ctx, &mut d, Some((expiry, DueKind::Expire)))?;
        self.put(ctx, &d)?;
        let mut receipt = d.receipt(t);
        if let Some(o) = receipt.as_object_mut() {
            o.insert(ROUTE_FIELD.into(), json!(self.settings.route));
        }
        let key = d.sender_id.clone().unwrap_or_default();
        ctx.forward(Record {
            key,
            value: receipt,
            timestamp_ms: t,
            headers: r.headers,
        });
        Ok(())
    }

    /// `forward_stored_messages`: a user coming online gets what was stored for them.
    fn forward(&self, ctx: &mut Ctx<'_, '_>, r: Record<String, Json>) -> Result<(), ProcessError> {
        let presence = field(&r.value, &self.settings.online).and_then(Json::as_bool);
        let (Some(online), None) = (presence, field(&r.value, &self.settings.id)) else {
            ctx.forward(r);
            return Ok(());
        };
        if !online {
            return Ok(()); // a presence change: consumed
        }
        let user = text(&r.value, &self.settings.user).unwrap_or_else(|| r.key.clone());
        let stored = ctx.store(&self.store)?.range(keys::stored_range(&user))?;
        for (key, _) in stored {
            ctx.store(&self.store)?.delete(&key)?;
            let Some(message) = key.rsplit('\u{1f}').next() else {
                continue;
            };
            let Some(mut d) = self.get(ctx, &user, message)? else {
                continue;
            };
            d.channel = "websocket".into();
            d.status = "websocket".into();
            d.attempt = 1;
            d.last_sent_at = r.timestamp_ms;
            d.forwarded = true;
            let expiry = r.timestamp_ms.saturating_add(d.horizon_ms);
            self.schedule(ctx, &mut d, Some((expiry, DueKind::Expire)))?;
            self.put(ctx, &d)?;
            let mut v = d.send_record(ROUTE_FIELD);
            if let Some(o) = v.as_object_mut() {
                o.insert(ROUTE_FIELD.into(), json!(self.settings.route));
            }
            ctx.forward(Record {
                key: user.clone(),
                value: v,
                timestamp_ms: r.timestamp_ms,
                headers: r.headers.clone(),
            });
        }
        Ok(())
    }

    /// `manage_retry_logic`: schedules the wait of each send to the app, then handles
    /// every due entry up to the delivery clock.
    fn retry(&self, ctx: &mut Ctx<'_, '_>, r: Record<String, Json>) -> Result<(), ProcessError> {
        let ids = self.ids(&r.value).ok().flatten();
        let t = r.timestamp_ms;
        if let Some((recipient, message)) = &ids {
            // A first send to the app (tracked or forwarded) waits for its confirmation.
            if let Some(mut d) = self.get(ctx, recipient, message)? {
                let waiting = matches!(d.due, Some((_, DueKind::Retry)));
                if d.attempt == 1 && state::retried(&d.status) && !waiting {
                    let due = d.last_sent_at + state::wait_ms(d.attempt, self.settings.backoff_ms);
                    self.schedule(ctx, &mut d, Some((due, DueKind::Retry)))?;
                    self.put(ctx, &d)?;
                }
            }
        }
        ctx.forward(r);
        if ids.is_none() {
            return Ok(()); // presence changes do not move the delivery clock
        }
        let clock = self.int(ctx, keys::CLOCK)?.unwrap_or(i64::MIN).max(t);
        ctx.store(&self.store)?
            .put(&keys::CLOCK.to_string(), &json!(clock))?;
        self.release(ctx, clock)
    }

    /// Handles every due entry up to `clock`, oldest first, and those they schedule in
    /// turn (each retry is due later than the one before, so this ends).
    fn release(&self, ctx: &mut Ctx<'_, '_>, clock: i64) -> Result<(), ProcessError> {
        let scanned = self.int(ctx, keys::SCANNED)?.unwrap_or(0);
        if clock < scanned {
            return Ok(());
        }
        loop {
            let due = ctx
                .store(&self.store)?
                .range(keys::due_range(scanned, clock))?;
            if due.is_empty() {
                break;
            }
            for (key, _) in due {
                ctx.store(&self.store)?.delete(&key)?;
                let Some((t, recipient, message)) = keys::parse_due(&key) else {
                    continue;
                };
                let Some(mut d) = self.get(ctx, recipient, message)? else {
                    continue;
                };
                match d.due {
                    Some((at, kind)) if at == t => {
                        d.due = None;
                        self.fire(ctx, d, t, kind)?;
                    }
                    _ => {} // replaced since: a stale entry
                }
            }
        }
        ctx.store(&self.store)?
            .put(&keys::SCANNED.to_string(), &json!(clock.saturating_add(1)))
    }

    /// A due entry at `t`: re-send, SMS, or expiry.
    fn fire(
        &self,
        ctx: &mut Ctx<'_, '_>,
        mut d: Delivery,
        t: i64,
        kind: DueKind,
    ) -> Result<(), ProcessError> {
        let key = d.recipient_id.clone();
        if kind == DueKind::Expire {
            ctx.store(&self.store)?
                .delete(&keys::delivery(&d.recipient_id, &d.message_id))?;
            let unconfirmed = !d.confirmed();
            if unconfirmed {
                d.status = "expired".into();
            }
            self.index_stored(ctx, &d, false)?;
            if unconfirmed {
                let mut v = d.send_record(ROUTE_FIELD);
                if let Some(o) = v.as_object_mut() {
                    o.remove(ROUTE_FIELD);
                }
                ctx.forward(Record::new(key, v, t));
            }
            return Ok(());
        }
        debug_assert!(
            state::retried(&d.status),
            "a retry is due only for an unconfirmed send to the app: {d:?}"
        );
        let next = match state::retry(
            &mut d,
            t,
            self.settings.max_attempts,
            self.settings.backoff_ms,
        ) {
            RetryStep::Resend { next_due } => (next_due, DueKind::Retry),
            RetryStep::Sms => (t.saturating_add(d.horizon_ms), DueKind::Expire),
        };
        self.schedule(ctx, &mut d, Some(next))?;
        self.put(ctx, &d)?;
        let mut v = d.send_record(ROUTE_FIELD);
        if let Some(o) = v.as_object_mut() {
            o.insert("retry".into(), json!(d.channel != "sms"));
        }
        ctx.forward(Record::new(key, v, t));
        Ok(())
    }
}

impl Processor<String, Json, String, Json> for Tracker {
    fn process(
        &mut self,
        ctx: &mut Ctx<'_, '_>,
        r: Record<String, Json>,
    ) -> Result<(), ProcessError> {
        let result = match self.role {
            Role::Track => self.track(ctx, r),
            Role::Confirm => self.confirm(ctx, r),
            Role::Forward => self.forward(ctx, r),
            Role::Retry => self.retry(ctx, r),
        };
        if result.is_err() {
            self.metrics.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}
