//! From YAML text to a checked [`Pipeline`], collecting every mistake with its place.

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode, Node};
use marked_yaml::{LoadError, LoaderOptions, Marker, Span};

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::duration::parse_ms;
use crate::operations;
use crate::sinks;
use crate::spec::Dashboard;
use crate::spec::{
    Emit, Guarantee, Input, Location, Operation, Pipeline, Sink, Step, StepKind, Value, WindowSpec,
};

const PIPELINE_KEYS: &[&str] = &[
    "name",
    "input_topics",
    "input_sources",
    "ingestion",
    "processors",
    "stream_processors",
    "processing_stages",
    "output_sinks",
    "output_destinations",
    "delivery_channels",
    "processing_guarantee",
    "bootstrap_servers",
    "event_time",
    "format",
    "schema_registry",
    "dead_letter_topic",
    "dashboard",
];
const INPUT_KEYS: &[&str] = &[
    "type",
    "topic",
    "partitions",
    "replication_factor",
    "partition_strategy",
];
const STEP_KEYS: &[&str] = &[
    "name",
    "type",
    "window_size",
    "advance",
    "gap",
    "grace",
    "emit",
    "operations",
    "from",
];

/// Parses and checks a pipeline file. `env` resolves `${NAME}` in any value (pass
/// `&|k| std::env::var(k).ok()` for the process environment). Every mistake is reported,
/// each with its line and column.
pub fn parse(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Pipeline, Diagnostics> {
    parse_with(file, text, env, &[])
}

/// [`parse`], accepting also the operations named in `extra_operations` (the names of
/// operations registered by Rust code: `run::RunOptions::plugins`).
pub fn parse_with(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    extra_operations: &[String],
) -> Result<Pipeline, Diagnostics> {
    let mut p = Parser {
        file,
        env,
        extra_operations,
        errors: Vec::new(),
    };
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    let root = match marked_yaml::parse_yaml_with_options(0, text, options) {
        Ok(root) => root,
        Err(e) => {
            let at = load_error_place(&e);
            p.error(at, format!("not valid YAML: {}", load_error_message(&e)));
            return Err(Diagnostics(p.errors));
        }
    };
    let pipeline = p.pipeline(&root);
    if p.errors.is_empty() {
        if let Some(pipeline) = pipeline {
            return Ok(pipeline);
        }
    }
    p.errors.sort_by_key(|d| (d.line, d.column));
    Err(Diagnostics(p.errors))
}

fn place(m: Option<&Marker>) -> Location {
    m.map(|m| Location {
        line: m.line(),
        column: m.column(),
    })
    .unwrap_or_default()
}

fn at(span: &Span) -> Location {
    place(span.start())
}

/// Where a mapping starts: its first key (the node's own span starts at its first value).
fn map_at(m: &MarkedMappingNode, fallback: &Node) -> Location {
    m.keys()
        .next()
        .map_or_else(|| at(fallback.span()), |k| at(k.span()))
}

fn load_error_place(e: &LoadError) -> Location {
    match e {
        LoadError::TopLevelMustBeMapping(m)
        | LoadError::TopLevelMustBeSequence(m)
        | LoadError::UnexpectedAnchor(m)
        | LoadError::MappingKeyMustBeScalar(m)
        | LoadError::UnexpectedTag(m)
        | LoadError::ScanError(m, _) => place(Some(m)),
        LoadError::DuplicateKey(inner) => at(inner.key.span()),
    }
}

fn load_error_message(e: &LoadError) -> String {
    match e {
        LoadError::DuplicateKey(inner) => format!("duplicate key {:?}", inner.key.as_str()),
        LoadError::ScanError(_, se) => se.info().to_string(),
        other => {
            // The library's text starts with the position we already report.
            let text = other.to_string();
            text.split_once(": ")
                .map_or(text.clone(), |(_, m)| m.to_string())
        }
    }
}

struct Parser<'a> {
    file: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    extra_operations: &'a [String],
    errors: Vec<Diagnostic>,
}

/// The names a step or output at position `before` may read, for error messages.
fn known_upstreams(p: &Pipeline, before: usize) -> String {
    let mut names: Vec<&str> = Vec::new();
    let steps = p.steps[..before].iter().map(|s| s.name.as_str());
    for name in steps.chain(p.inputs.iter().map(|i| i.topic.as_str())) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.join(", ")
}

impl Parser<'_> {
    fn error(&mut self, at: Location, message: String) {
        self.errors.push(Diagnostic {
            file: self.file.to_string(),
            line: at.line,
            column: at.column,
            message,
        });
    }

    /// A scalar's text with `${NAME}` replaced from the environment.
    fn text(&mut self, s: &MarkedScalarNode) -> String {
        let raw = s.as_str();
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let Some(end) = rest[i..].find('}') else {
                self.error(at(s.span()), format!("unclosed ${{ in {raw:?}"));
                return raw.to_string();
            };
            let name = &rest[i + 2..i + end];
            match (self.env)(name) {
                Some(v) => out.push_str(&v),
                None => self.error(
                    at(s.span()),
                    format!("environment variable {name} is not set"),
                ),
            }
            rest = &rest[i + end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn scalar(&mut self, node: &Node, what: &str) -> Option<String> {
        match node {
            Node::Scalar(s) => Some(self.text(s)),
            other => {
                self.error(at(other.span()), format!("{what} must be a single value"));
                None
            }
        }
    }

    fn number<T: std::str::FromStr>(&mut self, node: &Node, what: &str) -> Option<T> {
        let text = self.scalar(node, what)?;
        match text.trim().parse() {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(
                    at(node.span()),
                    format!("{what} must be a whole number, not {text:?}"),
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<i64> {
        let text = self.scalar(node, what)?;
        match parse_ms(&text) {
            Ok(ms) => Some(ms),
            Err(e) => {
                self.error(at(node.span()), format!("{what}: {e}"));
                None
            }
        }
    }

    fn value(&mut self, node: &Node) -> Value {
        match node {
            Node::Scalar(s) => Value::Text(self.text(s)),
            Node::Sequence(items) => Value::List(items.iter().map(|n| self.value(n)).collect()),
            Node::Mapping(m) => Value::Map(
                m.iter()
                    .map(|(k, v)| (k.as_str().to_string(), self.value(v)))
                    .collect(),
            ),
        }
    }

    fn mapping<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n MarkedMappingNode> {
        match node {
            Node::Mapping(m) => Some(m),
            other => {
                self.error(
                    at(other.span()),
                    format!("{what} must be a mapping of settings"),
                );
                None
            }
        }
    }

    fn list<'n>(&mut self, node: &'n Node, what: &str) -> &'n [Node] {
        match node {
            Node::Sequence(items) => items,
            other => {
                self.error(at(other.span()), format!("{what} must be a list"));
                &[]
            }
        }
    }

    fn unknown_keys(&mut self, m: &MarkedMappingNode, allowed: &[&str], what: &str) {
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) {
                self.error(
                    at(k.span()),
                    format!(
                        "unknown key {:?} in {what}; expected one of: {}",
                        k.as_str(),
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    /// The first of several spellings present (the seeds use different names for the
    /// same section); more than one is a mistake.
    fn one_of<'n>(&mut self, m: &'n MarkedMappingNode, names: &[&str]) -> Option<&'n Node> {
        let present: Vec<(&MarkedScalarNode, &Node)> = m
            .iter()
            .filter(|(k, _)| names.contains(&k.as_str()))
            .collect();
        if present.len() > 1 {
            self.error(
                at(present[1].0.span()),
                format!(
                    "{} and {} say the same thing: keep one",
                    present[0].0.as_str(),
                    present[1].0.as_str()
                ),
            );
        }
        present.first().map(|(_, v)| *v)
    }

    fn pipeline(&mut self, root: &Node) -> Option<Pipeline> {
        let top = self.mapping(root, "the file")?;
        let mut found = None;
        for (k, v) in top.iter() {
            let key = k.as_str();
            if key == "pipeline" || key.ends_with("_pipeline") {
                if found.is_some() {
                    self.error(
                        at(k.span()),
                        format!("second pipeline {key:?}: one pipeline per file"),
                    );
                } else {
                    found = Some((key.to_string(), v));
                }
            } else {
                self.error(
                    at(k.span()),
                    format!(
                        "unknown top-level key {key:?}; expected `pipeline` or `<name>_pipeline`"
                    ),
                );
            }
        }
        let Some((key, body)) = found else {
            self.error(
                at(root.span()),
                "no pipeline: write `pipeline:` or `<name>_pipeline:` at the top".into(),
            );
            return None;
        };
        let m = self.mapping(body, "a pipeline")?;
        self.unknown_keys(m, PIPELINE_KEYS, "a pipeline");
        let name = match m.get_node("name") {
            Some(n) => self.scalar(n, "name").unwrap_or_default(),
            None => {
                self.error(
                    at(body.span()),
                    "the pipeline has no `name` (it is also the consumer group)".into(),
                );
                String::new()
            }
        };
        let inputs = match self.one_of(m, &["input_topics", "input_sources", "ingestion"]) {
            Some(n) => self.inputs(n),
            None => {
                self.error(
                    at(body.span()),
                    "no inputs: add `input_topics`, `input_sources` or `ingestion`".into(),
                );
                Vec::new()
            }
        };
        let steps = match self.one_of(m, &["processors", "stream_processors", "processing_stages"])
        {
            Some(n) => {
                let items = self.list(n, "the steps");
                items.iter().filter_map(|s| self.step(s)).collect()
            }
            None => Vec::new(),
        };
        let sinks = match self.one_of(
            m,
            &["output_sinks", "output_destinations", "delivery_channels"],
        ) {
            Some(n) => {
                let items = self.list(n, "the outputs");
                items.iter().filter_map(|s| self.sink(s)).collect()
            }
            None => {
                self.error(
                    at(body.span()),
                    "no outputs: add `output_sinks`, `output_destinations` or `delivery_channels`"
                        .into(),
                );
                Vec::new()
            }
        };
        let guarantee = match m.get_node("processing_guarantee") {
            None => Guarantee::ExactlyOnce,
            Some(n) => match self.scalar(n, "processing_guarantee").as_deref() {
                Some("exactly_once") => Guarantee::ExactlyOnce,
                Some("at_least_once") => Guarantee::AtLeastOnce,
                Some(other) => {
                    self.error(
                        at(n.span()),
                        format!(
                            "processing_guarantee {other:?}: use exactly_once or at_least_once"
                        ),
                    );
                    Guarantee::ExactlyOnce
                }
                None => Guarantee::ExactlyOnce,
            },
        };
        let mut opt = |key: &str| m.get_node(key).and_then(|n| self.scalar(n, key));
        let bootstrap_servers = opt("bootstrap_servers");
        let event_time = opt("event_time");
        let dead_letter_topic = opt("dead_letter_topic");
        let schema_registry = opt("schema_registry");
        let format = opt("format").unwrap_or_else(|| "json".into());
        if !["json", "avro", "protobuf"].contains(&format.as_str()) {
            let n = m
                .get_node("format")
                .map(|n| at(n.span()))
                .unwrap_or_default();
            self.error(n, format!("format {format:?}: use json, avro or protobuf"));
        }
        let dashboard = self.dashboard(m);
        let pipeline = Pipeline {
            key,
            name,
            inputs,
            steps,
            sinks,
            guarantee,
            bootstrap_servers,
            event_time,
            format,
            schema_registry,
            dead_letter_topic,
            dashboard,
        };
        self.check_graph(&pipeline);
        Some(pipeline)
    }

    fn inputs(&mut self, node: &Node) -> Vec<Input> {
        let items = self.list(node, "the inputs");
        let mut out = Vec::new();
        for item in items {
            match item {
                Node::Scalar(s) => out.push(Input {
                    topic: self.text(s),
                    partitions: None,
                    replication_factor: None,
                    partition_strategy: None,
                    at: at(s.span()),
                }),
                Node::Mapping(m) => {
                    self.unknown_keys(m, INPUT_KEYS, "an input");
                    if let Some(t) = m.get_node("type").and_then(|n| self.scalar(n, "type")) {
                        if t != "kafka" {
                            self.error(
                                at(item.span()),
                                format!("input type {t:?}: only kafka inputs exist"),
                            );
                        }
                    }
                    let Some(topic) = m.get_node("topic").and_then(|n| self.scalar(n, "topic"))
                    else {
                        self.error(at(item.span()), "an input needs a `topic`".into());
                        continue;
                    };
                    let partitions = m
                        .get_node("partitions")
                        .and_then(|n| self.number(n, "partitions"));
                    let replication_factor = m
                        .get_node("replication_factor")
                        .and_then(|n| self.number(n, "replication_factor"));
                    let partition_strategy = m
                        .get_node("partition_strategy")
                        .and_then(|n| self.scalar(n, "partition_strategy"));
                    if let Some(s) = &partition_strategy {
                        if s.strip_prefix("hash_by_").is_none_or(str::is_empty) {
                            let n = m
                                .get_node("partition_strategy")
                                .map(|n| at(n.span()))
                                .unwrap_or_default();
                            self.error(
                                n,
                                format!("partition_strategy {s:?}: write hash_by_<field>"),
                            );
                        }
                    }
                    out.push(Input {
                        topic,
                        partitions,
                        replication_factor,
                        partition_strategy,
                        at: at(item.span()),
                    });
                }
                Node::Sequence(_) => self.error(
                    at(item.span()),
                    "an input is a topic name or a mapping".into(),
                ),
            }
        }
        out
    }

    fn step(&mut self, node: &Node) -> Option<Step> {
        let m = self.mapping(node, "a step")?;
        self.unknown_keys(m, STEP_KEYS, "a step");
        let name = match m.get_node("name") {
            Some(n) => self.scalar(n, "name")?,
            None => {
                self.error(at(node.span()), "a step needs a `name`".into());
                String::new()
            }
        };
        let kind = match m.get_node("type") {
            None => StepKind::StreamProcessor,
            Some(n) => match self.scalar(n, "type").as_deref() {
                Some("stream-processor") => StepKind::StreamProcessor,
                Some("tumbling-window") => StepKind::Tumbling,
                Some("hopping-window") => StepKind::Hopping,
                Some("sliding-window") => StepKind::Sliding,
                Some("session-window") => StepKind::Session,
                Some(other) => {
                    self.error(at(n.span()), format!("step type {other:?}: use stream-processor, tumbling-window, hopping-window, sliding-window or session-window"));
                    StepKind::StreamProcessor
                }
                None => StepKind::StreamProcessor,
            },
        };
        let window = self.window(m, kind, node);
        let operations = match m.get_node("operations") {
            Some(n) => {
                let items = self.list(n, "operations");
                items.iter().filter_map(|o| self.operation(o)).collect()
            }
            None => {
                self.error(
                    map_at(m, node),
                    format!("step {name:?} has no `operations`"),
                );
                Vec::new()
            }
        };
        let (from, from_at) = self.from(m);
        Some(Step {
            name,
            kind,
            window,
            operations,
            from,
            from_at,
            at: map_at(m, node),
        })
    }

    fn window(&mut self, m: &MarkedMappingNode, kind: StepKind, node: &Node) -> Option<WindowSpec> {
        let mut get = |key: &str| m.get_node(key).and_then(|n| self.duration(n, key));
        let (size, advance, gap, grace) =
            (get("window_size"), get("advance"), get("gap"), get("grace"));
        let emit = match m.get_node("emit") {
            None => Emit::OnWindowClose,
            Some(n) => match self.scalar(n, "emit").as_deref() {
                Some("on_window_close") => Emit::OnWindowClose,
                Some("on_update") => Emit::OnUpdate,
                Some(other) => {
                    self.error(
                        at(n.span()),
                        format!("emit {other:?}: use on_window_close or on_update"),
                    );
                    Emit::OnWindowClose
                }
                None => Emit::OnWindowClose,
            },
        };
        let here = map_at(m, node);
        let need = |p: &mut Self, v: Option<i64>, key: &str| -> i64 {
            match v {
                Some(v) if v > 0 => v,
                Some(_) => {
                    p.error(here, format!("{key} must be longer than zero"));
                    1
                }
                // Present but unreadable: already reported.
                None if m.get_node(key).is_some() => 1,
                None => {
                    p.error(here, format!("a {} needs `{key}`", kind.name()));
                    1
                }
            }
        };
        let spec = |size_ms, advance_ms, gap_ms| WindowSpec {
            size_ms,
            advance_ms,
            gap_ms,
            grace_ms: grace.unwrap_or(0),
            emit,
        };
        match kind {
            StepKind::StreamProcessor => {
                for (key, v) in [
                    ("window_size", size),
                    ("advance", advance),
                    ("gap", gap),
                    ("grace", grace),
                ] {
                    if v.is_some() {
                        self.error(
                            here,
                            format!(
                                "`{key}` belongs to a windowed step: set `type` to a window type"
                            ),
                        );
                    }
                }
                None
            }
            StepKind::Tumbling | StepKind::Sliding => {
                let s = need(self, size, "window_size");
                Some(spec(s, s, 0))
            }
            StepKind::Hopping => {
                let s = need(self, size, "window_size");
                let a = need(self, advance, "advance");
                if a > s {
                    self.error(here, "advance must not exceed window_size".into());
                }
                Some(spec(s, a, 0))
            }
            StepKind::Session => {
                let g = need(self, gap, "gap");
                Some(spec(0, 0, g))
            }
        }
    }

    fn operation(&mut self, node: &Node) -> Option<Operation> {
        let (name_node, params) = match node {
            Node::Scalar(s) => (s, Vec::new()),
            Node::Mapping(m) if m.len() == 1 => {
                let (k, v) = m.iter().next()?;
                let params = match v {
                    Node::Mapping(pm) => pm
                        .iter()
                        .map(|(pk, pv)| (pk.as_str().to_string(), self.value(pv)))
                        .collect(),
                    other => vec![("value".to_string(), self.value(other))],
                };
                (k, params)
            }
            other => {
                self.error(
                    at(other.span()),
                    "an operation is a name, or `name: {parameters}`".into(),
                );
                return None;
            }
        };
        let name = self.text(name_node);
        if matches!(name.as_str(), "filter" | "route") {
            match operations::expression(&params) {
                Some(text) => {
                    if let Err(e) = crate::expr::Expr::compile(text) {
                        self.error(at(name_node.span()), e);
                    }
                }
                None => self.error(
                    at(name_node.span()),
                    format!("{name} needs an expression: `- {name}: \"amount > 100\"`"),
                ),
            }
        }
        if !operations::is_known(&name) && !self.extra_operations.contains(&name) {
            let mut known = operations::known_list();
            for extra in self.extra_operations {
                known.push_str(", ");
                known.push_str(extra);
            }
            self.error(
                at(name_node.span()),
                format!("unknown operation {name:?}; known: {known}"),
            );
        }
        Some(Operation {
            name,
            params,
            at: at(name_node.span()),
        })
    }

    /// `from: name` or `from: [a, b]` of a step or an output, and where it is written.
    fn from(&mut self, m: &MarkedMappingNode) -> (Vec<String>, Location) {
        let Some(n) = m.get_node("from") else {
            return (Vec::new(), Location::default());
        };
        let names: Vec<String> = match n {
            Node::Scalar(_) => self.scalar(n, "from").into_iter().collect(),
            _ => self
                .list(n, "from")
                .iter()
                .filter_map(|item| self.scalar(item, "from"))
                .collect(),
        };
        (names, at(n.span()))
    }

    /// Every `from` names an earlier step or an input; step names are unique.
    fn check_graph(&mut self, p: &Pipeline) {
        for (n, step) in p.steps.iter().enumerate() {
            if p.steps[..n].iter().any(|s| s.name == step.name) {
                self.error(step.at, format!("a second step named {:?}: step names must be unique (outputs and steps name them in `from`)", step.name));
            }
            for name in &step.from {
                if p.resolve(name, n).is_none() {
                    let why = if p.steps.iter().any(|s| &s.name == name) {
                        "a step reads only inputs and earlier steps"
                    } else {
                        "no step or input has that name"
                    };
                    self.error(
                        step.from_at,
                        format!(
                            "step {:?} reads from {name:?}: {why}; known: {}",
                            step.name,
                            known_upstreams(p, n)
                        ),
                    );
                }
            }
        }
        for sink in &p.sinks {
            for name in &sink.from {
                if p.resolve(name, p.steps.len()).is_none() {
                    self.error(sink.from_at, format!("a {} output reads from {name:?}: no step or input has that name; known: {}", sink.kind, known_upstreams(p, p.steps.len())));
                }
            }
        }
    }

    fn sink(&mut self, node: &Node) -> Option<Sink> {
        let m = self.mapping(node, "an output")?;
        let Some(kind) = m.get_node("type").and_then(|n| self.scalar(n, "type")) else {
            self.error(
                at(node.span()),
                format!("an output needs a `type`: {}", sinks::names()),
            );
            return None;
        };
        let Some(t) = sinks::find(&kind) else {
            let n = m.get_node("type").map(|n| at(n.span())).unwrap_or_default();
            self.error(
                n,
                format!("unknown output type {kind:?}; known: {}", sinks::names()),
            );
            return None;
        };
        for k in m.keys() {
            let key = k.as_str();
            if key != "type"
                && !t.required.contains(&key)
                && !t.optional.contains(&key)
                && !sinks::COMMON.contains(&key)
            {
                let mut allowed: Vec<&str> = t.required.iter().chain(t.optional).copied().collect();
                allowed.extend(sinks::COMMON);
                self.error(
                    at(k.span()),
                    format!(
                        "unknown setting {key:?} for a {kind} output; expected one of: {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
        for req in t.required {
            if m.get_node(req).is_none() {
                self.error(map_at(m, node), format!("a {kind} output needs `{req}`"));
            }
        }
        let route = m.get_node("for").and_then(|n| self.scalar(n, "for"));
        let (from, from_at) = self.from(m);
        let settings = m
            .iter()
            .filter(|(k, _)| !["type", "for", "from"].contains(&k.as_str()))
            .map(|(k, v)| (k.as_str().to_string(), self.value(v)))
            .collect();
        Some(Sink {
            kind,
            route,
            from,
            from_at,
            settings,
            at: at(node.span()),
        })
    }

    /// `dashboard`: a file name (whether it can be read is checked by
    /// [`crate::dashboard::locate`], which knows where the pipeline file is).
    fn dashboard(&mut self, m: &MarkedMappingNode) -> Option<Dashboard> {
        let node = m.get_node("dashboard")?;
        let file = self.scalar(node, "dashboard")?;
        if file.trim().is_empty() {
            self.error(
                at(node.span()),
                "dashboard must name an HTML file (relative to the pipeline file)".into(),
            );
            return None;
        }
        Some(Dashboard {
            file,
            at: at(node.span()),
        })
    }
}
