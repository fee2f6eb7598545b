//! The topology of a pipeline as text and as a Mermaid graph.

use std::fmt::Write as _;

use crate::spec::{Emit, Guarantee, Pipeline, Sink, Step, StepKind, Upstream, Value};

/// `300000` → `5m`, `90000` → `1m30s`, `10` → `10ms`.
pub fn duration(ms: i64) -> String {
    if ms == 0 {
        return "0".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if rest >= size {
            let _ = write!(out, "{}{unit}", rest / size);
            rest %= size;
        }
    }
    out
}

fn step_kind(step: &Step) -> String {
    let Some(w) = step.window else {
        return "stream processor".into();
    };
    let emit = match w.emit {
        Emit::OnWindowClose => "on window close",
        Emit::OnUpdate => "on update",
    };
    let shape = match step.kind {
        StepKind::Tumbling => format!("tumbling window {}", duration(w.size_ms)),
        StepKind::Hopping => format!(
            "hopping window {} every {}",
            duration(w.size_ms),
            duration(w.advance_ms)
        ),
        StepKind::Sliding => format!("sliding window {}", duration(w.size_ms)),
        StepKind::Session => format!("session window, gap {}", duration(w.gap_ms)),
        StepKind::StreamProcessor => "stream processor".into(),
    };
    format!("{shape}, grace {}, emit {emit}", duration(w.grace_ms))
}

fn value(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::List(items) => format!(
            "[{}]",
            items.iter().map(value).collect::<Vec<_>>().join(", ")
        ),
        Value::Map(kv) => format!(
            "{{{}}}",
            kv.iter()
                .map(|(k, v)| format!("{k}: {}", value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn sink_label(s: &Sink) -> String {
    let mut parts = vec![s.kind.clone()];
    parts.extend(s.settings.iter().map(|(k, v)| format!("{k}={}", value(v))));
    if let Some(r) = &s.route {
        parts.push(format!("for {r}"));
    }
    if !s.from.is_empty() {
        parts.push(format!("from {}", s.from.join(", ")));
    }
    parts.join(" ")
}

/// A plain-text description: inputs, steps with their operations, outputs.
pub fn text(p: &Pipeline) -> String {
    let mut out = String::new();
    let guarantee = match p.guarantee {
        Guarantee::ExactlyOnce => "exactly-once",
        Guarantee::AtLeastOnce => "at-least-once",
    };
    let _ = writeln!(
        out,
        "pipeline {} ({}), {guarantee}, values {}",
        p.name, p.key, p.format
    );
    for i in &p.inputs {
        let mut line = format!("  input  {}", i.topic);
        if let Some(n) = i.partitions {
            let _ = write!(line, ", {n} partitions");
        }
        if let Some(r) = i.replication_factor {
            let _ = write!(line, ", replication {r}");
        }
        if let Some(s) = &i.partition_strategy {
            let _ = write!(line, ", {s}");
        }
        let _ = writeln!(out, "{line}");
    }
    for (n, s) in p.steps.iter().enumerate() {
        let from = if s.from.is_empty() {
            String::new()
        } else {
            format!(" (from {})", s.from.join(", "))
        };
        let _ = writeln!(out, "  step {} {}{from}: {}", n + 1, s.name, step_kind(s));
        for o in &s.operations {
            let params = if o.params.is_empty() {
                String::new()
            } else {
                format!(" {}", value(&Value::Map(o.params.clone())))
            };
            let _ = writeln!(out, "    - {}{params}", o.name);
        }
    }
    for s in &p.sinks {
        let _ = writeln!(out, "  output {}", sink_label(s));
    }
    let dlq = p
        .dead_letter_topic
        .clone()
        .unwrap_or_else(|| format!("{}-dlq", p.name));
    let _ = writeln!(out, "  dead letters {dlq}");
    out
}

fn escape(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// A Mermaid flowchart: inputs → steps (with their operations) → outputs.
pub fn mermaid(p: &Pipeline) -> String {
    let mut out = String::from("flowchart LR\n");
    for (i, input) in p.inputs.iter().enumerate() {
        let _ = writeln!(out, "  in{i}[(\"{}\")]", escape(&input.topic));
    }
    for (n, s) in p.steps.iter().enumerate() {
        let ops: Vec<String> = s.operations.iter().map(|o| escape(&o.name)).collect();
        let _ = writeln!(
            out,
            "  step{n}[\"{}<br/><i>{}</i><br/>{}\"]",
            escape(&s.name),
            escape(&step_kind(s)),
            ops.join("<br/>")
        );
    }
    for (i, s) in p.sinks.iter().enumerate() {
        let _ = writeln!(out, "  out{i}[/\"{}\"/]", escape(&sink_label(s)));
    }
    let node = |u: Upstream| match u {
        Upstream::Input(i) => format!("in{i}"),
        Upstream::Step(n) => format!("step{n}"),
    };
    for n in 0..p.steps.len() {
        for u in p.step_upstream(n) {
            let _ = writeln!(out, "  {} --> step{n}", node(u));
        }
    }
    for (o, s) in p.sinks.iter().enumerate() {
        for u in p.sink_upstream(o) {
            match &s.route {
                Some(r) => {
                    let _ = writeln!(out, "  {} -->|{}| out{o}", node(u), escape(r));
                }
                None => {
                    let _ = writeln!(out, "  {} --> out{o}", node(u));
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn branches_show_where_each_step_and_output_reads() {
        let yaml = "\
pipeline:
  name: p
  input_topics: [views, clicks]
  processors:
    - name: valid
      from: views
      operations: [count]
    - name: titled
      operations: [count]
    - name: long
      from: [valid, clicks]
      operations: [count]
  output_sinks:
    - type: kafka
      topic: t
      from: titled
    - type: kafka
      topic: l
";
        let p = crate::parse("p.yaml", yaml, &|_| None).unwrap();
        let m = mermaid(&p);
        let edges: Vec<&str> = m.lines().filter(|l| l.contains("-->")).collect();
        assert_eq!(
            edges,
            [
                "  in0 --> step0",
                "  step0 --> step1",
                "  step0 --> step2",
                "  in1 --> step2",
                "  step1 --> out0",
                "  step2 --> out1",
            ]
        );
        let t = text(&p);
        assert!(
            t.contains("step 3 long (from valid, clicks): stream processor"),
            "{t}"
        );
        assert!(t.contains("output kafka topic=t from titled"), "{t}");
    }
}
