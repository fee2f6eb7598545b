//! `process_payment`: the seeds' exactly-once payment processor (`ExactlyOnceProcessor`)
//! as a pipeline operation. Each payment is processed, the account's balance updated and
//! a confirmation emitted — and under `processing_guarantee: exactly_once` (the default)
//! the balance (the store's changelog), the confirmation and the input offsets commit in
//! one Kafka transaction, so a crash at any point neither loses nor repeats a payment.
//!
//! # Parameters (defaults)
//!
//! | parameter | default | meaning |
//! | --- | --- | --- |
//! | `id` | `payment_id` | the field naming the payment |
//! | `account` | `account_id` | the field naming the account; records are repartitioned by it |
//! | `amount` | `amount` | a decimal number or string (`123.45`, `"123.45"`, `1.2345e2`) |
//! | `currency` | `currency` | the payment's currency |
//! | `currencies` | `[EUR]` | the currencies accepted |
//! | `horizon` | `24 hours` | how long (event time) an applied payment id is remembered |
//!
//! # Semantics
//!
//! - **Per account.** Records are repartitioned by the account field, so one task sees
//!   every payment of an account, in order.
//! - **Exact money.** Amounts are parsed from their decimal text into integer cents — no
//!   binary floating point is ever added up. An amount with a fraction of a cent, or one
//!   that is not a number, is rejected. Amounts and balances are bounded by
//!   [`MAX_CENTS`] (9,999,999,999,999.99), below which every balance printed as a JSON
//!   number reads back as exactly the same decimal.
//! - **The balance is the money spent**: the sum of the account's completed payments, in
//!   the account's currency, starting at 0. The first completed payment fixes the
//!   account's currency.
//! - **Rejected** (`status: rejected`, with `reason`): no payment id or no account; an
//!   amount that is missing, not a number, not positive or has fractions of a cent; a
//!   currency not in `currencies`, or not the account's; a balance that would pass
//!   [`MAX_CENTS`]; a payment older than `horizon` before the account's latest completed
//!   payment (its id may already be forgotten). The balance is unchanged.
//! - **Completed** (`status: completed`): the amount is added to the balance.
//! - **Duplicate** (`status: duplicate`, with `reason`): the payment id was already
//!   applied to the account and is still remembered; the balance is unchanged. A rejected
//!   payment is not remembered: sent again, it is judged again.
//! - **Bounded memory.** An applied id is remembered while its event time is less than
//!   `horizon` before the account's latest completed payment; older ids are removed (an
//!   index by time is scanned from where the last removal stopped). A payment re-sent as
//!   it was (same event time) is therefore never applied twice: either its id is still
//!   remembered, or the payment itself is older than the horizon and rejected. A
//!   payment re-sent with a new event time more than `horizon` after the original counts
//!   as a new payment.
//!
//! Each record gives one confirmation, keyed by the account:
//! `{"payment_id", "account_id", "amount" (as received), "amount_cents" (when it parsed),
//! "currency", "status", "reason" (rejected and duplicate), "balance" (a decimal number),
//! "balance_cents", "completed_payments" (both after this payment; absent without an
//! account), "timestamp" (the payment's event time, ms)}`. The confirmation is routed by
//! its status: an output with `for: completed` receives only applied payments (a
//! balance table), outputs without `for` every confirmation.
//!
//! # Store layout (per account `A`)
//!
//! - `A` → `{"balance_cents", "currency", "completed", "clock_ms"}`: the account, and
//!   `clock_ms`, the event time of its latest completed payment;
//! - `A\u{1f}<payment id>` → the event time it was applied at;
//! - `A\u{1e}<event time, 20 digits>\u{1f}<payment id>` → `null`: the same ids by time,
//!   for removal.
//!
//! Invariants: an id entry exists exactly while its time entry does, and both only for
//! applied payments whose event time is above `clock_ms - horizon`; `balance_cents` is
//! the sum of the amounts of the account's completed payments and lies in
//! `0..=MAX_CENTS`; `completed` counts them. Ids and accounts hold no control
//! characters, so one account's keys never interleave with another's.

use serde_json::{json, Map, Value as Json};
use strom_streams::prelude::{
    JsonSerde, ProcessError, Processor, ProcessorContext, Record, StoreHandle, StringSerde,
};

use crate::compile::{field, ROUTE_FIELD};
use crate::spec::Operation;

/// The operation's name in pipeline files.
pub const NAME: &str = "process_payment";

/// The largest amount and balance, in cents: 15 decimal digits, so that `cents / 100` as
/// a JSON number (a double) always prints as exactly that decimal.
pub const MAX_CENTS: i64 = 999_999_999_999_999;

/// The longest payment id or account id, in bytes.
pub const ID_BYTES_MAX: usize = 256;

/// The longest amount text, in bytes (longer ones are not money).
const AMOUNT_BYTES_MAX: usize = 64;

/// The default `horizon`: 24 hours.
const HORIZON_MS_DEFAULT: i64 = 24 * 3_600_000;

/// What `process_payment` reads and accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentSettings {
    /// The payment id field.
    pub id: String,
    /// The account field.
    pub account: String,
    /// The amount field.
    pub amount: String,
    /// The currency field.
    pub currency: String,
    /// Accepted currencies.
    pub currencies: Vec<String>,
    /// How long an applied id is remembered (event time).
    pub horizon_ms: i64,
}

impl PaymentSettings {
    /// The settings of `op`, or what is wrong with its parameters.
    pub fn new(op: &Operation) -> Result<Self, String> {
        let text = |name: &str, default: &str| -> String {
            param(op, name)
                .and_then(crate::Value::as_text)
                .unwrap_or(default)
                .to_string()
        };
        let currencies = match param(op, "currencies") {
            None => vec!["EUR".to_string()],
            Some(crate::Value::Text(t)) => vec![t.clone()],
            Some(crate::Value::List(items)) => items
                .iter()
                .map(|i| {
                    i.as_text()
                        .map(str::to_string)
                        .ok_or_else(|| "currencies: a list of currency codes".to_string())
                })
                .collect::<Result<_, _>>()?,
            Some(crate::Value::Map(_)) => return Err("currencies: a list of currency codes".into()),
        };
        if currencies.is_empty() {
            return Err("currencies: at least one currency".into());
        }
        let horizon_ms = match param(op, "horizon").and_then(crate::Value::as_text) {
            None => HORIZON_MS_DEFAULT,
            Some(t) => match crate::duration::parse_ms(t)? {
                0 => return Err("horizon: longer than 0".into()),
                ms => ms,
            },
        };
        Ok(PaymentSettings {
            id: text("id", "payment_id"),
            account: text("account", "account_id"),
            amount: text("amount", "amount"),
            currency: text("currency", "currency"),
            currencies,
            horizon_ms,
        })
    }

    /// The account of a record as key text (the record key when it has none): what the
    /// records are repartitioned by.
    pub fn account_key(&self, key: String, v: &Json) -> String {
        text_of(v, &self.account).unwrap_or(key)
    }
}

fn param<'o>(op: &'o Operation, name: &str) -> Option<&'o crate::Value> {
    op.params.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// A field as text: strings as they are, other scalars as JSON; `null` is no value.
fn text_of(v: &Json, name: &str) -> Option<String> {
    match field(v, name)? {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The exact number of cents in a decimal amount: a JSON number (read back as the
/// shortest decimal that denotes it, which is the text it was written as for up to 15
/// significant digits) or a string holding one.
pub fn parse_cents(amount: &Json) -> Result<i64, String> {
    let text = match amount {
        Json::Number(n) => n.to_string(),
        Json::String(s) => s.clone(),
        Json::Null => return Err("no amount".into()),
        other => return Err(format!("amount {other} is not a number")),
    };
    decimal_cents(&text).ok_or_else(|| format!("amount {text:?} is not a decimal number"))?
}

/// `[-+]digits[.digits][e[-+]digits]` as cents; `None` when it is not such a number,
/// `Some(Err)` when it is one that is not a whole number of cents or too large.
fn decimal_cents(text: &str) -> Option<Result<i64, String>> {
    if text.len() > AMOUNT_BYTES_MAX {
        return None;
    }
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    if mantissa.contains('.') && fraction.is_empty() {
        return None;
    }
    // digits × 10^shift cents.
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    let shift = i64::from(exponent) + 2 - fraction.len() as i64;
    let (kept, dropped) = if shift >= 0 {
        (digits, "")
    } else {
        let cut = digits.len().saturating_sub(shift.unsigned_abs() as usize);
        digits.split_at(cut)
    };
    if dropped.bytes().any(|b| b != b'0') {
        return Some(Err(format!("amount {text} has a fraction of a cent")));
    }
    let too_large = || Err(format!("amount {text} is above the largest amount"));
    if kept.is_empty() {
        return Some(Ok(0));
    }
    // Leading zeros are gone: more than 15 digits is above MAX_CENTS.
    let zeros = shift.max(0) as usize;
    if kept.len() + zeros > 15 {
        return Some(too_large());
    }
    let cents = kept.parse::<i64>().ok()? * 10i64.pow(zeros as u32);
    if cents > MAX_CENTS {
        return Some(too_large());
    }
    Some(Ok(if negative { -cents } else { cents }))
}

/// Cents as a decimal JSON number (`12345` → `123.45`): exact below [`MAX_CENTS`].
pub fn cents_number(cents: i64) -> Json {
    Json::from(cents as f64 / 100.0)
}

/// An account's state in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// The sum of its completed payments, in cents.
    pub balance_cents: i64,
    /// Its currency: that of its first completed payment.
    pub currency: Option<String>,
    /// How many payments completed.
    pub completed: u64,
    /// The event time of its latest completed payment.
    pub clock_ms: Option<i64>,
}

impl Account {
    fn from_json(v: Option<Json>) -> Self {
        let Some(v) = v else {
            return Account::default();
        };
        Account {
            balance_cents: v["balance_cents"].as_i64().unwrap_or(0),
            currency: v["currency"].as_str().map(str::to_string),
            completed: v["completed"].as_u64().unwrap_or(0),
            clock_ms: v["clock_ms"].as_i64(),
        }
    }

    fn to_json(&self) -> Json {
        json!({"balance_cents": self.balance_cents, "currency": self.currency,
               "completed": self.completed, "clock_ms": self.clock_ms})
    }
}

/// What became of a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied: this many cents were added to the balance.
    Completed {
        /// The amount.
        cents: i64,
    },
    /// Not applied, and why.
    Rejected(String),
    /// Already applied at this event time; not applied again.
    Duplicate {
        /// When the first one was applied (event time, ms).
        applied_at_ms: i64,
    },
}

impl Outcome {
    /// The confirmation's `status`.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Completed { .. } => "completed",
            Outcome::Rejected(_) => "rejected",
            Outcome::Duplicate { .. } => "duplicate",
        }
    }
}

/// A payment as read from a record.
#[derive(Debug, Clone)]
pub struct Payment {
    /// The payment id, if any.
    pub id: Option<String>,
    /// The account, if any.
    pub account: Option<String>,
    /// The amount as received.
    pub amount: Json,
    /// The amount in cents, or why it is unusable.
    pub cents: Result<i64, String>,
    /// The currency as received.
    pub currency: Json,
    /// Event time, ms (never negative).
    pub time_ms: i64,
}

impl Payment {
    /// Reads the fields `settings` names from `v`.
    pub fn read(settings: &PaymentSettings, v: &Json, time_ms: i64) -> Self {
        let amount = field(v, &settings.amount).cloned().unwrap_or(Json::Null);
        Payment {
            id: text_of(v, &settings.id),
            account: text_of(v, &settings.account),
            cents: parse_cents(&amount),
            amount,
            currency: field(v, &settings.currency).cloned().unwrap_or(Json::Null),
            time_ms: time_ms.max(0),
        }
    }

    /// The account, or why the payment has none usable.
    pub fn account(&self, settings: &PaymentSettings) -> Result<&str, String> {
        usable_id(&settings.account, self.account.as_deref())
    }

    /// The payment id, or why the payment has none usable.
    pub fn id(&self, settings: &PaymentSettings) -> Result<&str, String> {
        usable_id(&settings.id, self.id.as_deref())
    }
}

/// An id that can be part of a store key: present, bounded, without control characters.
fn usable_id<'v>(name: &str, v: Option<&'v str>) -> Result<&'v str, String> {
    match v {
        None | Some("") => Err(format!("no {name}")),
        Some(s) if s.len() > ID_BYTES_MAX => {
            Err(format!("{name} longer than {ID_BYTES_MAX} bytes"))
        }
        Some(s) if s.chars().any(char::is_control) => {
            Err(format!("{name} {s:?} holds control characters"))
        }
        Some(s) => Ok(s),
    }
}

impl PaymentSettings {
    /// Judges a payment whose ids are valid, given its account and, if its id is
    /// remembered, when it was applied. Pure: the processor reads and writes the store.
    pub fn decide(&self, p: &Payment, account: &Account, applied_at_ms: Option<i64>) -> Outcome {
        if let Some(applied_at_ms) = applied_at_ms {
            return Outcome::Duplicate { applied_at_ms };
        }
        if let Some(clock) = account.clock_ms {
            if p.time_ms <= clock.saturating_sub(self.horizon_ms) {
                return Outcome::Rejected(format!(
                    "event time {} is {} ms or more before the account's latest payment \
                     ({clock}): beyond the deduplication horizon",
                    p.time_ms, self.horizon_ms
                ));
            }
        }
        let cents = match &p.cents {
            Ok(c) if *c > 0 => *c,
            Ok(_) => return Outcome::Rejected(format!("amount {} is not positive", p.amount)),
            Err(e) => return Outcome::Rejected(e.clone()),
        };
        let currency = match &p.currency {
            Json::String(c) if self.currencies.contains(c) => c,
            Json::Null => return Outcome::Rejected("no currency".into()),
            other => return Outcome::Rejected(format!("unknown currency {other}")),
        };
        if let Some(held) = account.currency.as_ref().filter(|h| *h != currency) {
            return Outcome::Rejected(format!("the account holds {held}, not {currency}"));
        }
        match account.balance_cents.checked_add(cents) {
            Some(b) if b <= MAX_CENTS => Outcome::Completed { cents },
            _ => Outcome::Rejected("the balance would pass the largest balance".into()),
        }
    }
}

/// The id entry of a payment applied to an account.
fn id_key(account: &str, id: &str) -> String {
    format!("{account}\u{1f}{id}")
}

/// The time entry of a payment applied at `t`: an account's time entries sort by time.
fn time_key(account: &str, t: i64, id: &str) -> String {
    format!("{account}\u{1e}{:020}\u{1f}{id}", t.max(0))
}

/// `process_payment`: see the module documentation.
#[derive(Clone)]
pub struct ProcessPayment {
    /// The accounts and the ids applied (see the module's store layout).
    pub store: StoreHandle<String, Json>,
    /// What it reads and accepts.
    pub settings: std::sync::Arc<PaymentSettings>,
}

impl ProcessPayment {
    /// The operator for `op`, keeping its state in the store `store`.
    pub fn new(op: &Operation, store: &str) -> Result<Self, String> {
        Ok(ProcessPayment {
            store: StoreHandle::new(store, StringSerde, JsonSerde::new()),
            settings: std::sync::Arc::new(PaymentSettings::new(op)?),
        })
    }

    /// Applies a completed payment: the balance, the id (by id and by time), and the
    /// removal of ids the account's new clock puts beyond the horizon.
    fn apply(
        &self,
        ctx: &mut ProcessorContext<'_, '_, String, Json>,
        account: &str,
        id: &str,
        before: &Account,
        p: &Payment,
        cents: i64,
    ) -> Result<Account, ProcessError> {
        let mut store = ctx.store(&self.store)?;
        let clock = before.clock_ms.map_or(p.time_ms, |c| c.max(p.time_ms));
        let after = Account {
            balance_cents: before.balance_cents + cents,
            currency: before
                .currency
                .clone()
                .or_else(|| p.currency.as_str().map(str::to_string)),
            completed: before.completed + 1,
            clock_ms: Some(clock),
        };
        debug_assert!((0..=MAX_CENTS).contains(&after.balance_cents));
        // Remembered: ids applied after `clock - horizon`. Everything at or below the
        // previous clock's limit went before, so the scan starts there.
        let horizon = self.settings.horizon_ms;
        let limit_after = clock.saturating_sub(horizon).saturating_add(1);
        if let Some(previous) = before.clock_ms {
            let limit_before = previous.saturating_sub(horizon).saturating_add(1);
            if limit_after > limit_before && limit_after > 0 {
                let from = time_key(account, limit_before, "");
                let to = time_key(account, limit_after, "");
                for (key, _) in store.range(from..to)? {
                    store.delete(&key)?;
                    if let Some((_, old)) = key.split_once('\u{1f}') {
                        store.delete(&id_key(account, old))?;
                    }
                }
            }
        }
        debug_assert!(p.time_ms >= limit_after, "an applied payment is remembered");
        store.put(&id_key(account, id), &Json::from(p.time_ms))?;
        store.put(&time_key(account, p.time_ms, id), &Json::Null)?;
        store.put(&account.to_string(), &after.to_json())?;
        Ok(after)
    }
}

impl Processor<String, Json, String, Json> for ProcessPayment {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, '_, String, Json>,
        r: Record<String, Json>,
    ) -> Result<(), ProcessError> {
        let p = Payment::read(&self.settings, &r.value, r.timestamp_ms);
        let (outcome, account) = match p.account(&self.settings) {
            Err(why) => (Outcome::Rejected(why), None),
            Ok(account) => {
                let store = ctx.store(&self.store)?;
                let before = Account::from_json(store.get(&account.to_string())?);
                match p.id(&self.settings) {
                    Err(why) => (Outcome::Rejected(why), Some(before)),
                    Ok(id) => {
                        let applied_at = store.get(&id_key(account, id))?.and_then(|t| t.as_i64());
                        let outcome = self.settings.decide(&p, &before, applied_at);
                        let after = match outcome {
                            Outcome::Completed { cents } => {
                                self.apply(ctx, account, id, &before, &p, cents)?
                            }
                            _ => before,
                        };
                        (outcome, Some(after))
                    }
                }
            }
        };
        let key = p.account.clone().unwrap_or(r.key);
        ctx.forward(Record {
            key,
            value: confirmation(&p, &outcome, account.as_ref()),
            timestamp_ms: r.timestamp_ms,
            headers: r.headers,
        });
        Ok(())
    }
}

/// The confirmation of a payment (see the module documentation).
pub fn confirmation(p: &Payment, outcome: &Outcome, account: Option<&Account>) -> Json {
    let mut c = Map::new();
    let text = |s: &Option<String>| s.clone().map_or(Json::Null, Json::String);
    c.insert("payment_id".into(), text(&p.id));
    c.insert("account_id".into(), text(&p.account));
    c.insert("amount".into(), p.amount.clone());
    if let Ok(cents) = p.cents {
        c.insert("amount_cents".into(), Json::from(cents));
    }
    c.insert("currency".into(), p.currency.clone());
    c.insert("status".into(), Json::from(outcome.status()));
    match outcome {
        Outcome::Completed { .. } => {}
        Outcome::Rejected(why) => {
            c.insert("reason".into(), Json::from(why.as_str()));
        }
        Outcome::Duplicate { applied_at_ms } => {
            let why = format!("already applied (payment at {applied_at_ms})");
            c.insert("reason".into(), Json::from(why));
        }
    }
    if let Some(a) = account {
        c.insert("balance".into(), cents_number(a.balance_cents));
        c.insert("balance_cents".into(), Json::from(a.balance_cents));
        c.insert("completed_payments".into(), Json::from(a.completed));
    }
    c.insert("timestamp".into(), Json::from(p.time_ms));
    c.insert(ROUTE_FIELD.into(), Json::from(outcome.status()));
    Json::Object(c)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::compile::{compile, TextKey};
    use strom_streams::prelude::{CrashPoint, DriverConfig, ErrorHandler, TopologyTestDriver};

    fn pipeline(params: &str) -> String {
        format!(
            r#"
pipeline:
  name: payments
  input_topics: [payments]
  processors:
    - name: process
      operations:
        - process_payment{params}
  output_sinks:
    - type: kafka
      topic: payment-confirmations
"#
        )
    }

    fn driver(yaml: &str) -> TopologyTestDriver {
        driver_with(yaml, true)
    }

    fn driver_with(yaml: &str, auto_commit: bool) -> TopologyTestDriver {
        let p = crate::parse("p.yaml", yaml, &|_| None).unwrap();
        let topology = compile("p.yaml", &p).unwrap_or_else(|e| panic!("{e}"));
        let config = DriverConfig {
            processing_errors: ErrorHandler::DeadLetter {
                topic: "dlq".into(),
            },
            deserialization_errors: ErrorHandler::DeadLetter {
                topic: "dlq".into(),
            },
            auto_commit,
            ..DriverConfig::default()
        };
        TopologyTestDriver::with_config(&topology, config).unwrap()
    }

    /// Sends a payment keyed by `key`; its event time is its `timestamp` field.
    fn send(d: &mut TopologyTestDriver, key: &str, v: Json) {
        let ts = v["timestamp"].as_i64().unwrap_or(0);
        d.pipe(
            "payments",
            &TextKey,
            &JsonSerde::<Json>::new(),
            &key.to_string(),
            &v,
            ts,
        )
        .unwrap();
    }

    fn pay(id: &str, account: &str, amount: Json, t: i64) -> Json {
        json!({"payment_id": id, "account_id": account, "amount": amount,
               "currency": "EUR", "merchant": "cafe", "timestamp": t})
    }

    fn confirmations(d: &mut TopologyTestDriver) -> Vec<(String, Json)> {
        d.read_output(
            "payment-confirmations",
            &StringSerde,
            &JsonSerde::<Json>::new(),
        )
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect()
    }

    fn statuses(d: &mut TopologyTestDriver) -> Vec<(String, String)> {
        confirmations(d)
            .into_iter()
            .map(|(_, c)| {
                let id = c["payment_id"].as_str().unwrap_or("-").to_string();
                (id, c["status"].as_str().unwrap().to_string())
            })
            .collect()
    }

    fn store(d: &TopologyTestDriver) -> Vec<(String, Json)> {
        d.store_all(&StoreHandle::new(
            "process-payments",
            StringSerde,
            JsonSerde::<Json>::new(),
        ))
        .unwrap()
    }

    #[test]
    fn amounts_parse_to_exact_cents() {
        let ok = |v: Json| parse_cents(&v).unwrap();
        assert_eq!(ok(json!(123.45)), 12_345);
        assert_eq!(ok(json!(0.1)), 10);
        assert_eq!(ok(json!(7)), 700);
        assert_eq!(ok(json!("12.50")), 1_250);
        assert_eq!(ok(json!("12.500")), 1_250);
        assert_eq!(ok(json!("+0.07")), 7);
        assert_eq!(ok(json!("1.5e1")), 1_500);
        assert_eq!(ok(json!("12345e-2")), 12_345);
        assert_eq!(ok(json!(-4.2)), -420);
        assert_eq!(ok(json!("0.00")), 0);
        assert_eq!(ok(json!(9_999_999_999_999.99)), MAX_CENTS);
        let bad = |v: Json| parse_cents(&v).unwrap_err();
        assert!(bad(json!(1.005)).contains("fraction of a cent"));
        assert!(bad(json!(0.1 + 0.2)).contains("fraction of a cent"));
        assert!(bad(json!("1e-3")).contains("fraction of a cent"));
        assert!(bad(json!(10_000_000_000_000.0)).contains("largest"));
        assert!(bad(json!("1e300")).contains("largest"));
        for text in [
            "", "abc", "1.", ".5", "1,5", "1.2.3", "--1", "1e", "0x10", " 1",
        ] {
            assert!(bad(json!(text)).contains("not a decimal"), "{text:?}");
        }
        assert_eq!(bad(Json::Null), "no amount");
        assert!(bad(json!(true)).contains("not a number"));
    }

    #[test]
    fn cents_print_as_the_same_decimal() {
        for cents in [
            1,
            10,
            12_345,
            30,
            100_000,
            MAX_CENTS,
            MAX_CENTS - 1,
            123_456_789_012_345,
        ] {
            let printed = cents_number(cents).to_string();
            assert_eq!(parse_cents(&json!(printed)).unwrap(), cents, "{printed}");
        }
    }

    #[test]
    fn completed_payments_add_up_exactly_per_account() {
        let mut d = driver(&pipeline(""));
        // 0.1 + 0.2 in binary floating point is 0.30000000000000004.
        send(&mut d, "a1", pay("p1", "a1", json!(0.1), 1_000));
        send(&mut d, "a1", pay("p2", "a1", json!(0.2), 2_000));
        send(&mut d, "a2", pay("p3", "a2", json!("19.99"), 3_000));
        let out = confirmations(&mut d);
        assert_eq!(out.len(), 3);
        let (key, last_a1) = &out[1];
        assert_eq!(key, "a1");
        assert_eq!(
            *last_a1,
            json!({"payment_id": "p2", "account_id": "a1", "amount": 0.2, "amount_cents": 20,
                   "currency": "EUR", "status": "completed", "balance": 0.3,
                   "balance_cents": 30, "completed_payments": 2, "timestamp": 2_000})
        );
        assert_eq!(out[2].1["balance_cents"], json!(1_999));
        assert_eq!(out[2].1["balance"], json!(19.99));
    }

    #[test]
    fn invalid_payments_are_rejected_with_the_reason_and_change_nothing() {
        let mut d = driver(&pipeline(":\n            currencies: [EUR, USD]"));
        send(&mut d, "a1", pay("p0", "a1", json!(10), 1));
        let cases = [
            (
                json!({"account_id": "a1", "amount": 5, "currency": "EUR"}),
                "no payment_id",
            ),
            (
                json!({"payment_id": "p9", "amount": 5, "currency": "EUR"}),
                "no account_id",
            ),
            (pay("p1", "a1", json!(-12.5), 2), "not positive"),
            (pay("p2", "a1", json!(0), 3), "not positive"),
            (pay("p3", "a1", json!("ten"), 4), "not a decimal"),
            (pay("p4", "a1", json!(1.234), 5), "fraction of a cent"),
            (pay("p5", "a1", Json::Null, 6), "no amount"),
            (
                json!({"payment_id": "p6", "account_id": "a1", "amount": 5, "currency": "XYZ"}),
                "unknown currency",
            ),
            (
                json!({"payment_id": "p7", "account_id": "a1", "amount": 5}),
                "no currency",
            ),
            (
                json!({"payment_id": "p8", "account_id": "a1", "amount": 5, "currency": "USD"}),
                "holds EUR",
            ),
            (
                json!({"payment_id": "p\u{1f}x", "account_id": "a1", "amount": 5, "currency": "EUR"}),
                "control characters",
            ),
        ];
        for (v, _) in &cases {
            send(&mut d, "a1", v.clone());
        }
        let out = confirmations(&mut d);
        assert_eq!(out.len(), cases.len() + 1);
        for ((_, c), (v, reason)) in out[1..].iter().zip(&cases) {
            assert_eq!(c["status"], json!("rejected"), "{v}");
            let got = c["reason"].as_str().unwrap();
            assert!(got.contains(reason), "{v}: {got}");
            if v.get("account_id").is_some() {
                assert_eq!(c["balance_cents"], json!(1_000), "{v}");
                assert_eq!(c["completed_payments"], json!(1), "{v}");
            } else {
                assert!(c.get("balance_cents").is_none(), "{v}");
            }
        }
        // A rejected payment is not remembered: sent again, valid, it completes.
        send(&mut d, "a1", pay("p1", "a1", json!(12.5), 7));
        assert_eq!(statuses(&mut d), vec![("p1".into(), "completed".into())]);
        // A USD account takes USD.
        send(
            &mut d,
            "b1",
            json!({"payment_id": "q1", "account_id": "b1", "amount": 5, "currency": "USD"}),
        );
        assert_eq!(statuses(&mut d), vec![("q1".into(), "completed".into())]);
    }

    #[test]
    fn a_payment_id_is_applied_once_per_account() {
        let mut d = driver(&pipeline(""));
        send(&mut d, "a1", pay("p1", "a1", json!(10), 1_000));
        send(&mut d, "a1", pay("p1", "a1", json!(10), 1_000));
        // Another amount or time does not make it another payment.
        send(&mut d, "a1", pay("p1", "a1", json!(99), 5_000));
        // The same id on another account is that account's payment.
        send(&mut d, "a2", pay("p1", "a2", json!(10), 1_000));
        let out = confirmations(&mut d);
        let got: Vec<(&str, &str, i64)> = out
            .iter()
            .map(|(k, c)| {
                (
                    k.as_str(),
                    c["status"].as_str().unwrap(),
                    c["balance_cents"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a1", "completed", 1_000),
                ("a1", "duplicate", 1_000),
                ("a1", "duplicate", 1_000),
                ("a2", "completed", 1_000)
            ]
        );
        assert!(out[1].1["reason"]
            .as_str()
            .unwrap()
            .contains("already applied"));
    }

    #[test]
    fn records_keyed_otherwise_are_repartitioned_by_account() {
        let mut d = driver(&pipeline(""));
        send(&mut d, "merchant-1", pay("p1", "a1", json!(1), 1));
        send(&mut d, "merchant-2", pay("p1", "a1", json!(1), 2));
        let out = confirmations(&mut d);
        assert_eq!(out[0].0, "a1");
        assert_eq!(out[1].1["status"], json!("duplicate"));
    }

    #[test]
    fn ids_are_forgotten_beyond_the_horizon_and_old_payments_rejected() {
        let mut d = driver(&pipeline(":\n            horizon: 1 minute"));
        send(&mut d, "a1", pay("p1", "a1", json!(1), 0));
        send(&mut d, "a1", pay("p2", "a1", json!(1), 30_000));
        // Within the minute: remembered.
        send(&mut d, "a1", pay("p1", "a1", json!(1), 0));
        assert_eq!(
            statuses(&mut d),
            vec![
                ("p1".into(), "completed".into()),
                ("p2".into(), "completed".into()),
                ("p1".into(), "duplicate".into())
            ]
        );
        let ids = |d: &TopologyTestDriver| -> Vec<String> {
            store(d)
                .into_iter()
                .filter_map(|(k, _)| {
                    let (account, id) = k.split_once('\u{1f}')?;
                    (!account.contains('\u{1e}')).then(|| id.to_string())
                })
                .collect()
        };
        // p1's time (0) is now a minute before the account's latest payment: p1 goes
        // (by id and by time), p2 (30 s) and p3 stay.
        send(&mut d, "a1", pay("p3", "a1", json!(1), 60_000));
        let mut remembered = ids(&d);
        remembered.sort();
        assert_eq!(remembered, vec!["p2", "p3"]);
        assert_eq!(
            store(&d).len(),
            1 + 2 * 2,
            "the account, and two entries per id"
        );
        // p1 as it was sent (time 0) is too old to judge; p4 at 0 too.
        send(&mut d, "a1", pay("p1", "a1", json!(1), 0));
        send(&mut d, "a1", pay("p4", "a1", json!(1), 0));
        // Late, but within the horizon: judged.
        send(&mut d, "a1", pay("p5", "a1", json!(1), 1));
        send(&mut d, "a1", pay("p2", "a1", json!(1), 30_000));
        let out = confirmations(&mut d);
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|(_, c)| {
                (
                    c["payment_id"].as_str().unwrap(),
                    c["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("p3", "completed"),
                ("p1", "rejected"),
                ("p4", "rejected"),
                ("p5", "completed"),
                ("p2", "duplicate")
            ]
        );
        assert!(out[1].1["reason"].as_str().unwrap().contains("horizon"));
        assert_eq!(out[4].1["balance_cents"], json!(400));
    }

    #[test]
    fn balances_and_ids_survive_crashes() {
        let mut d = driver_with(&pipeline(""), false);
        send(&mut d, "a1", pay("p1", "a1", json!("0.10"), 1));
        send(&mut d, "a1", pay("p2", "a1", json!("0.20"), 2));
        d.commit().unwrap(); // through the repartition topic, processed, not committed
                             // The transaction commits, the local store does not apply it: the restart
                             // restores the account and its ids from the changelog.
        let report = d.crash(CrashPoint::AfterCommitBeforeApply).unwrap();
        assert!(
            report.records_restored["process-payments"] > 0,
            "{report:?}"
        );
        assert_eq!(statuses(&mut d).len(), 2);
        send(&mut d, "a1", pay("p2", "a1", json!("0.20"), 2));
        send(&mut d, "a1", pay("p3", "a1", json!("0.30"), 3));
        d.commit().unwrap();
        // Processed, then lost before the commit: processed again, once.
        d.crash(CrashPoint::BeforeCommit).unwrap();
        d.commit().unwrap();
        let out = confirmations(&mut d);
        let got: Vec<(&str, i64)> = out
            .iter()
            .map(|(_, c)| {
                (
                    c["status"].as_str().unwrap(),
                    c["balance_cents"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, vec![("duplicate", 30), ("completed", 60)]);
    }

    #[test]
    fn parameters_are_checked() {
        let op = |params: Vec<(&str, crate::Value)>| Operation {
            name: NAME.into(),
            params: params
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            at: crate::Location::default(),
        };
        let text = |s: &str| crate::Value::Text(s.into());
        let s = PaymentSettings::new(&op(vec![])).unwrap();
        assert_eq!(s.currencies, vec!["EUR"]);
        assert_eq!(s.horizon_ms, 86_400_000);
        assert_eq!(
            (s.id.as_str(), s.account.as_str()),
            ("payment_id", "account_id")
        );
        let s = PaymentSettings::new(&op(vec![("currencies", text("USD")), ("id", text("txn"))]))
            .unwrap();
        assert_eq!((s.currencies[0].as_str(), s.id.as_str()), ("USD", "txn"));
        assert!(PaymentSettings::new(&op(vec![("horizon", text("0s"))])).is_err());
        assert!(PaymentSettings::new(&op(vec![("horizon", text("soon"))])).is_err());
        assert!(
            PaymentSettings::new(&op(vec![("currencies", crate::Value::List(vec![]))])).is_err()
        );
    }
}
