//! `resolve_recipients`: a message fans out to one record per recipient.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::Value as Json;
use strom_streams::prelude::*;

use crate::compile::field;
use crate::op_metrics::OpMetrics;

/// Every member of the chat but the sender, in the order the list names them.
#[derive(Clone)]
pub struct ResolveRecipients {
    /// The field holding the member list (`chat.members` after a `join`).
    pub members: String,
    /// The sender field.
    pub sender: String,
    /// The field each record's recipient is written to.
    pub recipient: String,
    /// The operation's metrics (errors).
    pub metrics: Arc<OpMetrics>,
}

impl ResolveRecipients {
    /// The recipients of a message, or why there are none to name.
    pub fn recipients(&self, v: &Json) -> Result<Vec<String>, String> {
        let Some(list) = field(v, &self.members).and_then(Json::as_array) else {
            return Err(format!("no member list at {}", self.members));
        };
        let sender = field(v, &self.sender).and_then(Json::as_str);
        let mut out: Vec<String> = Vec::with_capacity(list.len());
        for m in list.iter().filter_map(Json::as_str) {
            if Some(m) != sender && !out.iter().any(|o| o == m) {
                out.push(m.to_string());
            }
        }
        Ok(out)
    }
}

impl Processor<String, Json, String, Json> for ResolveRecipients {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, Json>,
        r: Record<String, Json>,
    ) -> Result<(), ProcessError> {
        let recipients = self.recipients(&r.value).map_err(|e| {
            self.metrics.errors.fetch_add(1, Ordering::Relaxed);
            ProcessError::user(e)
        })?;
        for who in recipients {
            let mut value = r.value.clone();
            if let Some(o) = value.as_object_mut() {
                o.insert(self.recipient.clone(), Json::String(who.clone()));
            }
            ctx.forward(Record {
                key: who,
                value,
                timestamp_ms: r.timestamp_ms,
                headers: r.headers.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_member_but_the_sender_once() {
        let op = ResolveRecipients {
            members: "chat.members".into(),
            sender: "sender_id".into(),
            recipient: "recipient_id".into(),
            metrics: OpMetrics::new("s", "resolve_recipients"),
        };
        let msg = json!({"sender_id": "u2", "chat": {"members": ["u1", "u2", "u3", "u1", 7]}});
        assert_eq!(op.recipients(&msg).unwrap(), vec!["u1", "u3"]);
        let unknown = json!({"sender_id": "u2", "chat": null});
        assert_eq!(
            op.recipients(&unknown).unwrap_err(),
            "no member list at chat.members"
        );
    }
}
