//! The pipeline model: what a file says, checked and typed.

/// A place in the file (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// A parameter value as written (YAML scalars are kept as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A scalar.
    Text(String),
    /// A sequence.
    List(Vec<Value>),
    /// A mapping, in file order.
    Map(Vec<(String, Value)>),
}

impl Value {
    /// The scalar's text, if it is one.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// Kafka-to-Kafka processing guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Guarantee {
    /// Outputs, state and input offsets in one transaction (the default).
    #[default]
    ExactlyOnce,
    /// Outputs may repeat after a crash; nothing is lost.
    AtLeastOnce,
}

/// A whole pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The top-level key it was under (`stream_pipeline`, `pipeline`, …).
    pub key: String,
    /// `name`: also the consumer group, so the same file on more machines scales out.
    pub name: String,
    /// Input topics.
    pub inputs: Vec<Input>,
    /// Processing steps, in order.
    pub steps: Vec<Step>,
    /// Where results go.
    pub sinks: Vec<Sink>,
    /// `processing_guarantee`.
    pub guarantee: Guarantee,
    /// `bootstrap_servers` (default: the local broker).
    pub bootstrap_servers: Option<String>,
    /// `event_time`: the value field holding event time (default: a `timestamp` field,
    /// else the record timestamp).
    pub event_time: Option<String>,
    /// `format` of values: `json` (default), `avro` or `protobuf` (with the registry).
    pub format: String,
    /// `schema_registry`: the registry's URL for `avro`/`protobuf` values (default
    /// `http://127.0.0.1:8081`, strom serve's).
    pub schema_registry: Option<String>,
    /// `dead_letter_topic` (default `<name>-dlq`).
    pub dead_letter_topic: Option<String>,
    /// `dashboard`: the pipeline's own live page (see [`crate::dashboard`]).
    pub dashboard: Option<Dashboard>,
}

/// `dashboard: page.html`: an HTML file, relative to the pipeline file, that the
/// pipeline's HTTP server serves at `/` instead of the built-in live view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dashboard {
    /// The path as written.
    pub file: String,
    /// Where it is written.
    pub at: Location,
}

/// An input topic, created as described when missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Topic name.
    pub topic: String,
    /// Partitions to create it with.
    pub partitions: Option<i32>,
    /// Replication factor to create it with (a single node uses 1).
    pub replication_factor: Option<i16>,
    /// `partition_strategy`, e.g. `hash_by_chat_id`: the field records are keyed by.
    pub partition_strategy: Option<String>,
    /// Where it is written.
    pub at: Location,
}

/// What a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Record-at-a-time operations (the default).
    StreamProcessor,
    /// Fixed windows.
    Tumbling,
    /// Overlapping fixed windows.
    Hopping,
    /// Record-defined windows.
    Sliding,
    /// Activity sessions.
    Session,
}

impl StepKind {
    /// The name files use.
    pub fn name(self) -> &'static str {
        match self {
            StepKind::StreamProcessor => "stream-processor",
            StepKind::Tumbling => "tumbling-window",
            StepKind::Hopping => "hopping-window",
            StepKind::Sliding => "sliding-window",
            StepKind::Session => "session-window",
        }
    }
}

/// Windowed emission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Emit {
    /// Once per key and window, when it closes (the default).
    #[default]
    OnWindowClose,
    /// Every update.
    OnUpdate,
}

/// A windowed step's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// `window_size` (sliding: the time difference; session: unused).
    pub size_ms: i64,
    /// `advance` (hopping; others: the size).
    pub advance_ms: i64,
    /// `gap` (session).
    pub gap_ms: i64,
    /// `grace` (default 0).
    pub grace_ms: i64,
    /// `emit`.
    pub emit: Emit,
}

/// A processing step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// `name`.
    pub name: String,
    /// `type`.
    pub kind: StepKind,
    /// The window of a windowed step.
    pub window: Option<WindowSpec>,
    /// `operations`, in order.
    pub operations: Vec<Operation>,
    /// `from`: the inputs (topics) and earlier steps it reads, merged (empty: the
    /// previous step, or every input for the first step).
    pub from: Vec<String>,
    /// Where `from` is written.
    pub from_at: Location,
    /// Where it is written.
    pub at: Location,
}

/// One operation of a step: a name and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The operation's name (`count_by_content_id`, `calculate_geohash`, …).
    pub name: String,
    /// Parameters (`- calculate_geohash: {precision: 6}`), in file order.
    pub params: Vec<(String, Value)>,
    /// Where it is written.
    pub at: Location,
}

/// An output.
#[derive(Debug, Clone, PartialEq)]
pub struct Sink {
    /// `type` (see [`crate::sinks`]).
    pub kind: String,
    /// `for`: the subset of results routed here.
    pub route: Option<String>,
    /// `from`: the steps (or input topics) it writes, merged (empty: the last step,
    /// or every input when there are no steps).
    pub from: Vec<String>,
    /// Where `from` is written.
    pub from_at: Location,
    /// Its other settings, in file order.
    pub settings: Vec<(String, Value)>,
    /// Where it is written.
    pub at: Location,
}

impl Sink {
    /// A setting's text.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_text())
    }
}

/// What a step or an output reads: an input topic or a step's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// `inputs[i]`.
    Input(usize),
    /// `steps[n]`.
    Step(usize),
}

impl Pipeline {
    /// What step `n` reads: its `from`, else the previous step, else every input.
    /// Names that do not resolve (see [`Pipeline::resolve`]) are left out.
    pub fn step_upstream(&self, n: usize) -> Vec<Upstream> {
        match (self.steps[n].from.as_slice(), n) {
            ([], 0) => (0..self.inputs.len()).map(Upstream::Input).collect(),
            ([], n) => vec![Upstream::Step(n - 1)],
            (names, n) => names.iter().filter_map(|f| self.resolve(f, n)).collect(),
        }
    }

    /// What output `i` writes: its `from`, else the last step, else every input.
    pub fn sink_upstream(&self, i: usize) -> Vec<Upstream> {
        let n = self.steps.len();
        match (self.sinks[i].from.as_slice(), n) {
            ([], 0) => (0..self.inputs.len()).map(Upstream::Input).collect(),
            ([], n) => vec![Upstream::Step(n - 1)],
            (names, n) => names.iter().filter_map(|f| self.resolve(f, n)).collect(),
        }
    }

    /// The step among the first `before` named `name`, else the input topic `name`.
    pub fn resolve(&self, name: &str, before: usize) -> Option<Upstream> {
        self.steps[..before]
            .iter()
            .position(|s| s.name == name)
            .map(Upstream::Step)
            .or_else(|| {
                self.inputs
                    .iter()
                    .position(|i| i.topic == name)
                    .map(Upstream::Input)
            })
    }
}
