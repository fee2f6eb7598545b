//! The operations a step can name: every operation the seeds use, and generic families
//! whose name carries a field (`count_by_<field>`, `sum_<field>`, …).

/// Operations built in by name.
pub const BUILT_IN: &[&str] = &[
    // Generic.
    "filter",
    "route",
    "join",
    "count",
    // user-engagement-analytics
    "calculate_completion_rate",
    "enrich_with_user_profile",
    "calculate_affinity_scores",
    "generate_recommendations",
    // driver-location-tracking
    "validate_coordinates",
    "filter_invalid_locations",
    "detect_anomalies",
    "calculate_geohash",
    "group_by_region",
    "update_spatial_index",
    "calculate_eta_to_requests",
    "update_driver_availability",
    "trigger_matching_algorithm",
    "calculate_surge_multiplier",
    // message-delivery-system
    "validate_sender_permissions",
    "check_spam_filters",
    "encrypt_content",
    "determine_recipient_servers",
    "check_recipient_online_status",
    "route_to_appropriate_delivery_pipeline",
    "track_delivery_status",
    "handle_delivery_confirmations",
    "manage_retry_logic",
    "resolve_recipients",
    "forward_stored_messages",
    // payments (the seeds' ExactlyOnceProcessor)
    "process_payment",
];

/// Families: the prefix, then a field name.
pub const FAMILIES: &[&str] = &[
    "count_by_",
    "count_each_",
    "sum_",
    "avg_",
    "min_",
    "max_",
    "group_by_",
    "dedupe_by_",
];

/// The expression of a `filter` or `route`: `- filter: "x > 1"` or
/// `- filter: {expression: "x > 1"}`.
pub fn expression(params: &[(String, crate::Value)]) -> Option<&str> {
    params
        .iter()
        .find(|(k, _)| k == "value" || k == "expression")
        .and_then(|(_, v)| v.as_text())
}

/// True when `name` is a built-in operation or a family with a field.
pub fn is_known(name: &str) -> bool {
    BUILT_IN.contains(&name)
        || FAMILIES
            .iter()
            .any(|p| name.strip_prefix(p).is_some_and(|field| !field.is_empty()))
}

/// The list shown when a name is unknown.
pub fn known_list() -> String {
    let families: Vec<String> = FAMILIES.iter().map(|p| format!("{p}<field>")).collect();
    format!("{}, {}", families.join(", "), BUILT_IN.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_need_a_field() {
        assert!(is_known("count_by_content_id"));
        assert!(is_known("sum_watch_duration"));
        assert!(is_known("calculate_geohash"));
        assert!(!is_known("count_by_"));
        assert!(!is_known("teleport"));
        assert!(known_list().contains("manage_retry_logic"));
    }
}
