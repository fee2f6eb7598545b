//! The runtime (stream threads against a Kafka-protocol cluster).
