//! Sink types and their settings: which are required, which are allowed.

/// A sink type: its name, required settings and optional ones.
pub struct SinkType {
    /// The `type` value.
    pub name: &'static str,
    /// Settings that must be present.
    pub required: &'static [&'static str],
    /// Settings that may be present.
    pub optional: &'static [&'static str],
}

/// Settings every sink accepts: routing (`for`, `from`), retries, the circuit breaker, batching.
pub const COMMON: &[&str] = &[
    "name",
    "for",
    "from",
    "retries",
    "retry_backoff",
    "circuit_breaker",
    "max_in_flight",
];

/// Every sink type.
pub const TYPES: &[SinkType] = &[
    SinkType {
        name: "kafka",
        required: &["topic"],
        optional: &["key"],
    },
    SinkType {
        name: "redis",
        required: &["key_pattern"],
        optional: &["url", "ttl", "mode"],
    },
    SinkType {
        name: "redis-geo",
        required: &["key_pattern"],
        optional: &["url", "ttl", "member", "longitude_field", "latitude_field"],
    },
    SinkType {
        name: "elasticsearch",
        required: &["index"],
        optional: &["url", "id", "headers"],
    },
    SinkType {
        name: "postgres",
        required: &["table"],
        optional: &["url", "key"],
    },
    SinkType {
        name: "websocket",
        required: &[],
        optional: &["endpoint"],
    },
    SinkType {
        name: "http",
        required: &["url"],
        optional: &["method", "headers", "batch_size"],
    },
    SinkType {
        name: "push_notification",
        required: &[],
        optional: &["url", "method", "headers", "batch_size"],
    },
    SinkType {
        name: "sms_fallback",
        required: &[],
        optional: &["url", "method", "headers", "batch_size"],
    },
];

/// The sink type named `name`.
pub fn find(name: &str) -> Option<&'static SinkType> {
    TYPES.iter().find(|t| t.name == name)
}

/// The known type names, for error messages.
pub fn names() -> String {
    TYPES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
}
