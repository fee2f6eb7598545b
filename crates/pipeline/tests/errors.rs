//! Every mistake reported at once, each with file, line and column.
#![allow(clippy::unwrap_used)]

use strom_pipeline::parse;

fn errors(yaml: &str) -> Vec<String> {
    parse("p.yaml", yaml, &|k| {
        (k == "TOPIC").then(|| "from-env".to_string())
    })
    .unwrap_err()
    .0
    .into_iter()
    .map(|d| d.to_string())
    .collect()
}

/// Each error starts with its expected text, and there are no others.
fn assert_starts(errors: &[String], want_prefixes: &[&str]) {
    assert_eq!(errors.len(), want_prefixes.len(), "{errors:#?}");
    for (got, want) in errors.iter().zip(want_prefixes) {
        assert!(got.starts_with(want), "{got}\n does not start with\n{want}");
    }
}

#[test]
fn all_mistakes_with_their_places() {
    let yaml = "\
pipeline:
  name: p
  input_topics: [a]
  colour: blue
  processors:
    - name: w
      type: tumbling-window
      window_size: five minutes
      operations:
        - count_by_user
        - teleport
    - name: h
      type: hopping-window
      window_size: 1 minute
      operations: [count]
  output_sinks:
    - type: kafka
    - type: redis
      key_pattern: \"k:{id}\"
      colour: red
    - type: carrier-pigeon
";
    let e = errors(yaml);
    let want_prefixes = [
        "p.yaml:4:3: unknown key \"colour\" in a pipeline",
        "p.yaml:8:20: window_size: cannot read duration \"five minutes\"",
        "p.yaml:11:11: unknown operation \"teleport\"; known: count_by_<field>",
        "p.yaml:12:7: a hopping-window needs `advance`",
        "p.yaml:17:7: a kafka output needs `topic`",
        "p.yaml:20:7: unknown setting \"colour\" for a redis output",
        "p.yaml:21:13: unknown output type \"carrier-pigeon\"",
    ];
    assert_starts(&e, &want_prefixes);
    // The window error (first one) is in a windowed step, so the seven above are all.
}

#[test]
fn env_substitution_and_its_errors() {
    let ok = "pipeline:\n  name: p\n  input_topics: [\"${TOPIC}\"]\n  output_sinks:\n    - {type: kafka, topic: out}\n";
    let p = parse("p.yaml", ok, &|k| {
        (k == "TOPIC").then(|| "from-env".to_string())
    })
    .unwrap();
    assert_eq!(p.inputs[0].topic, "from-env");
    let e = errors("pipeline:\n  name: p\n  input_topics: [\"${MISSING}\"]\n  output_sinks:\n    - {type: kafka, topic: out}\n");
    assert_eq!(
        e,
        vec!["p.yaml:3:18: environment variable MISSING is not set"]
    );
}

#[test]
fn shape_mistakes() {
    assert!(errors("not: [a pipeline]\n")[0].contains("unknown top-level key \"not\""));
    assert!(
        errors("pipeline:\n  name: [x]\n  input_topics: [a]\n  output_sinks: []\n")[0]
            .contains("name must be a single value")
    );
    let e = errors(
        "pipeline:\n  name: p\n  input_topics: [a]\n  input_sources: [b]\n  output_sinks: []\n",
    );
    assert!(
        e[0].starts_with("p.yaml:4:3: input_topics and input_sources say the same thing"),
        "{e:?}"
    );
    let e = errors("pipeline:\n  name: p\n  name: q\n");
    assert!(
        e[0].contains("not valid YAML: duplicate key \"name\""),
        "{e:?}"
    );
    let e = errors("pipeline: [\n");
    assert!(e[0].starts_with("p.yaml:"), "{e:?}");
    let e = errors("pipeline:\n  name: p\n  input_topics: [a]\n  processors:\n    - name: s\n      window_size: 1m\n      operations: [count]\n  output_sinks: []\n");
    assert!(
        e[0].contains("`window_size` belongs to a windowed step"),
        "{e:?}"
    );
}

#[test]
fn filter_and_route_expressions_are_checked() {
    let yaml = "pipeline:\n  name: p\n  input_topics: [a]\n  processors:\n    - name: s\n      operations:\n        - filter: \"amount >\"\n        - route\n        - filter: {expression: \"amount > 1\"}\n  output_sinks:\n    - {type: kafka, topic: out}\n";
    let e = errors(yaml);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("p.yaml:7:11: expression \"amount >\""),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("p.yaml:8:11: route needs an expression"),
        "{e:?}"
    );
}

#[test]
fn from_names_an_input_or_an_earlier_step() {
    let yaml = "\
pipeline:
  name: p
  input_topics: [views]
  processors:
    - name: a
      from: b
      operations: [count]
    - name: b
      from: [views, nowhere]
      operations: [count]
    - name: b
      operations: [count]
  output_sinks:
    - type: kafka
      topic: out
      from: missing
";
    let e = errors(yaml);
    let want_prefixes = [
        "p.yaml:6:13: step \"a\" reads from \"b\": a step reads only inputs and earlier steps; known: views",
        "p.yaml:9:13: step \"b\" reads from \"nowhere\": no step or input has that name; known: a, views",
        "p.yaml:11:7: a second step named \"b\": step names must be unique",
        "p.yaml:16:13: a kafka output reads from \"missing\": no step or input has that name; known: a, b, views",
    ];
    assert_starts(&e, &want_prefixes);
}
