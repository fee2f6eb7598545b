//! OpenTelemetry spans exported over OTLP/HTTP (feature `otel`, off by default), for the
//! runtime and the test driver alike.
//!
//! With an endpoint configured (`StreamsConfig::otlp_endpoint`,
//! `DriverConfig::otlp_endpoint`: an OTLP/HTTP base URL such as `http://127.0.0.1:4318`;
//! spans go to `/v1/traces` as protobuf), every input record gets a span
//! `process <topic>` (kind consumer, messaging attributes, the task) whose parent is the
//! record's W3C `traceparent` header — the producer's span, or the span of the task that
//! wrote the record to a repartition or retry topic — and every record produced while
//! processing it (outputs, repartition and retry records, dead letters) carries a
//! `traceparent` naming that span, so consumers downstream continue the trace. A record
//! without a `traceparent` starts a trace. Commits and restores get spans of their own.
//! The service name is the application id.
//!
//! The runtime drives the SDK's tracer itself rather than going through `tracing`: the
//! export works whatever `tracing` subscriber the application installs, or none. The
//! sampler follows the parent's sampled flag (and samples new traces); spans go through
//! the SDK's batch processor — a thread with a bounded queue (2,048 spans) that drops
//! spans rather than slowing processing when the collector falls behind.
//!
//! Without the feature every call here is a no-op, and an endpoint in the configuration
//! is refused at start.

use std::time::SystemTime;

use crate::error::StreamsError;
use crate::record::{OutputRecord, RawRecord, TaskId};
use crate::task::Processed;

/// The span exporter of an instance or a test driver; cheap to clone (shared by the
/// stream threads).
#[derive(Clone, Default)]
pub(crate) struct Tracer {
    #[cfg(feature = "otel")]
    otel: Option<std::sync::Arc<otel::Otel>>,
}

impl Tracer {
    /// A tracer exporting to the OTLP/HTTP base URL `endpoint` (none: no spans).
    pub fn start(
        endpoint: Option<&str>,
        service_name: &str,
        instance_id: &str,
    ) -> Result<Self, StreamsError> {
        let Some(endpoint) = endpoint else {
            return Ok(Tracer::default());
        };
        #[cfg(feature = "otel")]
        {
            Ok(Tracer {
                otel: Some(std::sync::Arc::new(otel::Otel::start(
                    endpoint,
                    service_name,
                    instance_id,
                )?)),
            })
        }
        #[cfg(not(feature = "otel"))]
        {
            let _ = (service_name, instance_id);
            Err(StreamsError::Config(format!(
                "otlp_endpoint {endpoint:?} needs strom-streams' cargo feature `otel`"
            )))
        }
    }

    /// The span of one input record, a child of its `traceparent`.
    pub fn record_span(&self, task: TaskId, group: &str, raw: &RawRecord) -> RecordSpan {
        #[cfg(feature = "otel")]
        if let Some(o) = &self.otel {
            return RecordSpan {
                span: Some(o.record_span(task, group, raw)),
                otel: Some(o.clone()),
            };
        }
        let _ = (task, group, raw);
        RecordSpan::default()
    }

    /// A commit's span: `records` input records, `tasks` tasks; `error` when it failed.
    pub fn commit_span(
        &self,
        thread: usize,
        tasks: usize,
        records: usize,
        started: SystemTime,
        error: Option<&str>,
    ) {
        #[cfg(feature = "otel")]
        if let Some(o) = &self.otel {
            o.commit_span(thread, tasks, records, started, error);
        }
        let _ = (thread, tasks, records, started, error);
    }

    /// A finished restore's span: the task's stores replayed `records` changelog records
    /// since `started`.
    pub fn restore_span(&self, task: TaskId, records: u64, started: SystemTime) {
        #[cfg(feature = "otel")]
        if let Some(o) = &self.otel {
            o.restore_span(task, records, started);
        }
        let _ = (task, records, started);
    }

    /// Exports what is queued and stops the exporter (idempotent).
    pub fn shutdown(&self) {
        #[cfg(feature = "otel")]
        if let Some(o) = &self.otel {
            o.shutdown();
        }
    }
}

/// The span of one input record while it is processed.
#[derive(Default)]
pub(crate) struct RecordSpan {
    #[cfg(feature = "otel")]
    span: Option<opentelemetry_sdk::trace::Span>,
    #[cfg(feature = "otel")]
    otel: Option<std::sync::Arc<otel::Otel>>,
}

impl RecordSpan {
    /// Ends the span with the record's outcome and points the `traceparent` of what it
    /// produced at it.
    pub fn finish(self, outcome: &Result<Processed, StreamsError>, outputs: &mut [OutputRecord]) {
        #[cfg(feature = "otel")]
        if let (Some(span), Some(o)) = (self.span, self.otel) {
            o.finish(span, outcome, outputs);
        }
        let _ = (outcome, outputs);
    }
}

#[cfg(feature = "otel")]
mod otel {
    use std::time::{Duration, SystemTime};

    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, Span};
    use opentelemetry_sdk::Resource;

    use crate::error::StreamsError;
    use crate::record::{Headers, OutputRecord, RawRecord, TaskId};
    use crate::task::Processed;

    /// How long one export request may take.
    const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

    pub(super) struct Otel {
        provider: SdkTracerProvider,
        tracer: SdkTracer,
        propagator: TraceContextPropagator,
    }

    /// Reads the trace context from record headers (values that are not UTF-8 are
    /// ignored, as the W3C format is ASCII).
    struct HeaderExtractor<'a>(&'a Headers);

    impl Extractor for HeaderExtractor<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0
                .iter()
                .rev()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .and_then(|(_, v)| v.as_deref())
                .and_then(|v| std::str::from_utf8(v).ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(k, _)| k.as_str()).collect()
        }
    }

    /// Collects the headers a propagator writes.
    #[derive(Default)]
    struct HeaderInjector(Vec<(String, String)>);

    impl Injector for HeaderInjector {
        fn set(&mut self, key: &str, value: String) {
            self.0.push((key.to_string(), value));
        }
    }

    fn config_error(e: impl std::fmt::Display) -> StreamsError {
        StreamsError::Config(format!("OpenTelemetry exporter: {e}"))
    }

    impl Otel {
        pub fn start(
            endpoint: &str,
            service_name: &str,
            instance_id: &str,
        ) -> Result<Self, StreamsError> {
            // reqwest is built without a crypto provider of its own (https endpoints):
            // ring, as the rest of the workspace. Installing twice is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let base = endpoint.trim_end_matches('/');
            if !base.starts_with("http://") && !base.starts_with("https://") {
                return Err(config_error(format!(
                    "otlp_endpoint must be an http:// or https:// URL, not {endpoint:?}"
                )));
            }
            let url = if base.ends_with("/v1/traces") {
                base.to_string()
            } else {
                format!("{base}/v1/traces")
            };
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(url)
                .with_timeout(EXPORT_TIMEOUT)
                .build()
                .map_err(config_error)?;
            let mut resource = Resource::builder().with_service_name(service_name.to_string());
            if !instance_id.is_empty() {
                resource = resource.with_attribute(KeyValue::new(
                    "service.instance.id",
                    instance_id.to_string(),
                ));
            }
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource.build())
                .build();
            let tracer = provider.tracer("strom-streams");
            Ok(Otel {
                provider,
                tracer,
                propagator: TraceContextPropagator::new(),
            })
        }

        pub fn record_span(&self, task: TaskId, group: &str, raw: &RawRecord) -> Span {
            let parent = self.propagator.extract(&HeaderExtractor(&raw.headers));
            self.tracer
                .span_builder(format!("process {}", raw.topic))
                .with_kind(SpanKind::Consumer)
                .with_attributes([
                    KeyValue::new("messaging.system", "kafka"),
                    KeyValue::new("messaging.operation.type", "process"),
                    KeyValue::new("messaging.operation.name", "process"),
                    KeyValue::new("messaging.destination.name", raw.topic.clone()),
                    KeyValue::new(
                        "messaging.destination.partition.id",
                        raw.partition.to_string(),
                    ),
                    KeyValue::new("messaging.kafka.offset", raw.offset),
                    KeyValue::new("messaging.consumer.group.name", group.to_string()),
                    KeyValue::new("strom.task", task.to_string()),
                ])
                .start_with_context(&self.tracer, &parent)
        }

        pub fn finish(
            &self,
            mut span: Span,
            outcome: &Result<Processed, StreamsError>,
            outputs: &mut [OutputRecord],
        ) {
            match outcome {
                Ok(Processed::Ok) => {
                    span.set_attribute(KeyValue::new("strom.outcome", "processed"))
                }
                Ok(Processed::Skipped) => {
                    span.set_attribute(KeyValue::new("strom.outcome", "skipped"));
                    span.set_status(Status::error("skipped by the error handler"));
                }
                Ok(Processed::Retry(after_ms)) => {
                    span.set_attribute(KeyValue::new("strom.outcome", "retry"));
                    span.set_attribute(KeyValue::new("strom.retry.after.ms", *after_ms));
                }
                Err(e) => {
                    span.set_attribute(KeyValue::new("strom.outcome", "failed"));
                    span.set_status(Status::error(e.to_string()));
                }
            }
            if !outputs.is_empty() {
                let cx = Context::new().with_remote_span_context(span.span_context().clone());
                let mut injected = HeaderInjector::default();
                self.propagator.inject_context(&cx, &mut injected);
                for out in outputs.iter_mut() {
                    for (key, value) in &injected.0 {
                        out.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
                        out.headers
                            .push((key.clone(), Some(value.clone().into_bytes())));
                    }
                }
            }
            span.end();
        }

        pub fn commit_span(
            &self,
            thread: usize,
            tasks: usize,
            records: usize,
            started: SystemTime,
            error: Option<&str>,
        ) {
            let mut span = self
                .tracer
                .span_builder("commit")
                .with_kind(SpanKind::Internal)
                .with_start_time(started)
                .with_attributes([
                    KeyValue::new("strom.thread", thread as i64),
                    KeyValue::new("strom.tasks", tasks as i64),
                    KeyValue::new("strom.records", records as i64),
                ])
                .start(&self.tracer);
            if let Some(e) = error {
                span.set_status(Status::error(e.to_string()));
            }
            span.end();
        }

        pub fn restore_span(&self, task: TaskId, records: u64, started: SystemTime) {
            let mut span = self
                .tracer
                .span_builder("restore")
                .with_kind(SpanKind::Internal)
                .with_start_time(started)
                .with_attributes([
                    KeyValue::new("strom.task", task.to_string()),
                    KeyValue::new(
                        "strom.restored.records",
                        records.min(i64::MAX as u64) as i64,
                    ),
                ])
                .start(&self.tracer);
            span.end();
        }

        pub fn shutdown(&self) {
            if let Err(e) = self.provider.shutdown() {
                tracing::debug!(error = %e, "OpenTelemetry exporter shutdown");
            }
        }
    }
}
