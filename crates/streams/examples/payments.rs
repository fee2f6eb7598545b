//! Payments processed exactly once: payments from `payments` (JSON, keyed by account)
//! update the account's balance in a state store; each payment produces a confirmation
//! (or a rejection when it would overdraw the account) in the same transaction as the
//! balance's changelog record and the input offset. A payment id seen before is ignored,
//! so even a producer retry does not charge twice.
//!
//! ```text
//! cargo run -p strom-streams --example payments -- 127.0.0.1:9092
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use strom_streams::prelude::*;
use strom_streams::runtime::{KafkaStreams, ProcessingGuarantee, StreamsConfig};

/// An incoming payment (positive: deposit, negative: withdrawal), in cents.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Payment {
    id: String,
    amount: i64,
}

/// The outcome of a payment.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Outcome {
    id: String,
    account: String,
    amount: i64,
    accepted: bool,
    balance: i64,
}

struct Ledger {
    balances: StoreHandle<String, i64>,
    seen: StoreHandle<String, i64>,
}

impl Processor<String, Payment, String, Outcome> for Ledger {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, Outcome>,
        r: Record<String, Payment>,
    ) -> Result<(), ProcessError> {
        let seen_key = format!("{}/{}", r.key, r.value.id);
        {
            let mut seen = ctx.store(&self.seen)?;
            if seen.get(&seen_key)?.is_some() {
                return Ok(()); // a duplicate payment id: already applied
            }
            seen.put(&seen_key, &r.timestamp_ms)?;
        }
        let mut balances = ctx.store(&self.balances)?;
        let balance = balances.get(&r.key)?.unwrap_or(0);
        let accepted = balance + r.value.amount >= 0;
        let balance = if accepted {
            balance + r.value.amount
        } else {
            balance
        };
        balances.put(&r.key, &balance)?;
        let outcome = Outcome {
            id: r.value.id,
            account: r.key.clone(),
            amount: r.value.amount,
            accepted,
            balance,
        };
        ctx.forward(Record::new(r.key, outcome, r.timestamp_ms));
        Ok(())
    }
}

fn main() -> Result<(), StreamsError> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let builder = StreamsBuilder::new();
    let balances = StoreHandle::new("balances", StringSerde, I64Serde);
    let seen = StoreHandle::new("payment-ids", StringSerde, I64Serde);
    builder.add_store(&balances);
    builder.add_store(&seen);
    let (b, s) = (balances.clone(), seen.clone());
    let outcomes = builder
        .stream("payments", StringSerde, JsonSerde::<Payment>::new())
        .process(
            move || Ledger {
                balances: b.clone(),
                seen: s.clone(),
            },
            &[balances.name(), seen.name()],
        );
    let split = outcomes.branch(vec![
        Box::new(|_, o: &Outcome| o.accepted),
        Box::new(|_, _: &Outcome| true),
    ]);
    split[0].to("payment-confirmations", StringSerde, JsonSerde::new());
    split[1].to("payment-rejections", StringSerde, JsonSerde::new());

    let mut config = StreamsConfig::new("payments", &bootstrap);
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnce;
    config.processing_errors = ErrorHandler::DeadLetter {
        topic: "payments-dlq".into(),
    };
    config.deserialization_errors = ErrorHandler::DeadLetter {
        topic: "payments-dlq".into(),
    };
    let app = KafkaStreams::start(&builder.build()?, config)?;
    while app.is_running() {
        std::thread::sleep(Duration::from_secs(5));
        println!("{:?}", app.metrics());
    }
    app.close()
}
