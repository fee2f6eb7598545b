//! JSON Schema: validated against its draft's meta-schema with `jsonschema` (drafts 4
//! to 2020-12, `$ref`s to referenced subjects resolved in memory, never over the
//! network); compatibility by our own rules.
//!
//! The rules answer "does every document the writer's schema accepts also pass the
//! reader's?", keyword by keyword, following Confluent's documented JSON Schema rules:
//! a reader may widen types (`integer` → `number`), relax bounds, drop `required`
//! entries, enum restrictions and patterns; it may not narrow them. Properties follow
//! the content model: adding a property is safe only when the writer's model is closed
//! (`additionalProperties: false`), removing one only when the reader's model is open.
//! Local `$ref`s (`#/definitions/…`, `#/$defs/…`) are followed; remote ones are compared
//! by name.

use serde_json::{Map, Value};

use super::ResolvedReference;

/// A parsed JSON Schema.
pub(crate) struct JsonSchema {
    root: Value,
    canonical: String,
    validator: jsonschema::Validator,
}

/// How deep the checker follows nested schemas and `$ref`s before giving up.
const DEPTH_MAX: usize = 64;

impl JsonSchema {
    /// Parses and validates the schema text with its references.
    pub fn parse(text: &str, references: &[ResolvedReference]) -> Result<Self, String> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| format!("the schema is not JSON: {e}"))?;
        if !root.is_object() && !root.is_boolean() {
            return Err("a JSON Schema is an object or a boolean".to_owned());
        }
        jsonschema::meta::validate(&root).map_err(|e| e.to_string())?;
        let mut registry = jsonschema::Registry::new();
        for reference in references {
            let value: Value = serde_json::from_str(&reference.schema)
                .map_err(|e| format!("reference {} is not JSON: {e}", reference.name))?;
            let uri = if reference.name.contains(':') {
                reference.name.clone()
            } else {
                format!("json-schema:///{}", reference.name.trim_start_matches('/'))
            };
            registry = registry
                .add(uri, value)
                .map_err(|e| format!("reference {}: {e}", reference.name))?;
        }
        let registry = registry.prepare().map_err(|e| e.to_string())?;
        let validator = jsonschema::options()
            .with_registry(&registry)
            .build(&root)
            .map_err(|e| e.to_string())?;
        let canonical = serde_json::to_string(&root).map_err(|e| e.to_string())?;
        Ok(JsonSchema {
            root,
            canonical,
            validator,
        })
    }

    /// The identity of the schema.
    pub fn canonical(&self) -> String {
        self.canonical.clone()
    }

    /// Why `instance` does not match the schema, or `None` if it does.
    pub fn invalid(&self, instance: &Value) -> Option<String> {
        self.validator
            .validate(instance)
            .err()
            .map(|e| e.to_string())
    }
}

/// Problems of `reader` accepting every document `writer` accepts.
pub(crate) fn read_problems(reader: &JsonSchema, writer: &JsonSchema) -> Vec<String> {
    let mut checker = Checker {
        reader_root: &reader.root,
        writer_root: &writer.root,
        problems: Vec::new(),
    };
    checker.check(&reader.root, &writer.root, "#", 0);
    checker.problems
}

struct Checker<'a> {
    reader_root: &'a Value,
    writer_root: &'a Value,
    problems: Vec<String>,
}

/// Follows a local `$ref` (`#/…`) to its target; other schemas unchanged.
fn deref<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let mut current = schema;
    for _ in 0..DEPTH_MAX {
        let Some(reference) = current.get("$ref").and_then(Value::as_str) else {
            return current;
        };
        let Some(pointer) = reference.strip_prefix('#') else {
            return current;
        };
        match root.pointer(pointer) {
            Some(target) => current = target,
            None => return current,
        }
    }
    current
}

/// The JSON types a schema allows; `None` when it does not restrict types.
fn types(schema: &Map<String, Value>) -> Option<Vec<String>> {
    match schema.get("type")? {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    }
}

fn number(schema: &Map<String, Value>, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

/// `additionalProperties` as the content model: `None` open, `Some(false)` closed,
/// `Some(schema)` constrained.
fn additional(schema: &Map<String, Value>) -> Option<&Value> {
    match schema.get("additionalProperties") {
        None | Some(Value::Bool(true)) => None,
        Some(v) => Some(v),
    }
}

fn is_empty_schema(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Object(o) => o.keys().all(|k| {
            matches!(
                k.as_str(),
                "title" | "description" | "$comment" | "default" | "examples"
            )
        }),
        _ => false,
    }
}

/// Whether a writer that is only a list of types (`{"type": ["string", "null"]}`) is
/// accepted by union branches that are only types, one type at a time.
fn types_covered_by_branches(w: &Map<String, Value>, branches: &[Value]) -> bool {
    let plain = |m: &Map<String, Value>| {
        m.keys()
            .all(|k| matches!(k.as_str(), "type" | "title" | "description" | "$comment"))
    };
    let Some(writer_types) = types(w).filter(|_| plain(w)) else {
        return false;
    };
    writer_types.iter().all(|t| {
        branches.iter().any(|b| {
            b.as_object().is_some_and(|b| {
                plain(b)
                    && types(b).is_none_or(|bt| {
                        bt.contains(t) || (t == "integer" && bt.iter().any(|x| x == "number"))
                    })
            })
        })
    })
}

impl<'a> Checker<'a> {
    fn problem(&mut self, path: &str, what: impl Into<String>) {
        self.problems.push(format!("{path}: {}", what.into()));
    }

    fn check(&mut self, reader: &'a Value, writer: &'a Value, path: &str, depth: usize) {
        if depth > DEPTH_MAX {
            self.problem(path, "schemas nest too deeply to compare");
            return;
        }
        let reader = deref(self.reader_root, reader);
        let writer = deref(self.writer_root, writer);
        if is_empty_schema(reader) {
            return;
        }
        if writer == &Value::Bool(false) {
            return;
        }
        let (Some(r), Some(w)) = (reader.as_object(), writer.as_object()) else {
            if reader == &Value::Bool(false) {
                self.problem(path, "the reader accepts nothing");
            } else {
                self.problem(path, "the writer accepts any value, the reader does not");
            }
            return;
        };
        if is_empty_schema(writer) {
            self.problem(
                path,
                "the writer accepts any value, the reader restricts it",
            );
            return;
        }
        if let (Some(rr), Some(wr)) = (r.get("$ref"), w.get("$ref")) {
            if rr != wr {
                self.problem(path, format!("reference changed from {wr} to {rr}"));
            }
            return;
        }
        // A writer that is a union (and only that) and a reader that is not: every
        // branch of the writer must be accepted by the reader.
        let combinator_only = |m: &Map<String, Value>, key: &str| {
            m.contains_key(key)
                && m.keys().all(|k| {
                    k == key
                        || matches!(
                            k.as_str(),
                            "title" | "description" | "$comment" | "default" | "$schema" | "$id"
                        )
                })
        };
        for key in ["anyOf", "oneOf"] {
            if combinator_only(w, key) && !r.contains_key("anyOf") && !r.contains_key("oneOf") {
                if let Some(branches) = w.get(key).and_then(Value::as_array) {
                    for (i, branch) in branches.iter().enumerate() {
                        self.check(reader, branch, &format!("{path}/{key}/{i}"), depth + 1);
                    }
                }
                return;
            }
        }
        self.check_types(r, w, path);
        self.check_enum(r, w, path);
        self.check_bounds(r, w, path);
        self.check_strings(r, w, path);
        self.check_object(r, w, path, depth);
        self.check_array(r, w, path, depth);
        self.check_combinators(r, w, writer, path, depth);
    }

    fn check_types(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, path: &str) {
        let Some(reader_types) = types(r) else {
            return;
        };
        let Some(writer_types) = types(w) else {
            self.problem(path, format!("type narrowed to {reader_types:?}"));
            return;
        };
        for t in &writer_types {
            let accepted = reader_types.contains(t)
                || (t == "integer" && reader_types.iter().any(|r| r == "number"));
            if !accepted {
                self.problem(
                    path,
                    format!("type {t} no longer accepted (now {reader_types:?})"),
                );
            }
        }
    }

    fn check_enum(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, path: &str) {
        let writer_values: Option<Vec<&Value>> = match (w.get("enum"), w.get("const")) {
            (Some(Value::Array(values)), _) => Some(values.iter().collect()),
            (_, Some(value)) => Some(vec![value]),
            _ => None,
        };
        let reader_values: Option<Vec<&Value>> = match (r.get("enum"), r.get("const")) {
            (Some(Value::Array(values)), _) => Some(values.iter().collect()),
            (_, Some(value)) => Some(vec![value]),
            _ => None,
        };
        let Some(reader_values) = reader_values else {
            return;
        };
        match writer_values {
            None => self.problem(path, "enum or const added"),
            Some(writer_values) => {
                for value in writer_values {
                    if !reader_values.contains(&value) {
                        self.problem(path, format!("enum value {value} removed"));
                    }
                }
            }
        }
    }

    fn check_bounds(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, path: &str) {
        // Lower bounds: the reader's must not exceed the writer's.
        for key in [
            "minimum",
            "exclusiveMinimum",
            "minLength",
            "minItems",
            "minProperties",
        ] {
            if let Some(reader_min) = number(r, key) {
                match number(w, key) {
                    Some(writer_min) if writer_min >= reader_min => {}
                    Some(writer_min) => self.problem(
                        path,
                        format!("{key} raised from {writer_min} to {reader_min}"),
                    ),
                    None => self.problem(path, format!("{key} {reader_min} added")),
                }
            }
        }
        // Upper bounds: the reader's must not be below the writer's.
        for key in [
            "maximum",
            "exclusiveMaximum",
            "maxLength",
            "maxItems",
            "maxProperties",
        ] {
            if let Some(reader_max) = number(r, key) {
                match number(w, key) {
                    Some(writer_max) if writer_max <= reader_max => {}
                    Some(writer_max) => self.problem(
                        path,
                        format!("{key} lowered from {writer_max} to {reader_max}"),
                    ),
                    None => self.problem(path, format!("{key} {reader_max} added")),
                }
            }
        }
        if let Some(reader_step) = number(r, "multipleOf") {
            let ok = number(w, "multipleOf").is_some_and(|writer_step| {
                let ratio = writer_step / reader_step;
                (ratio - ratio.round()).abs() < 1e-9
            });
            if !ok {
                self.problem(
                    path,
                    format!("multipleOf {reader_step} does not divide the writer's"),
                );
            }
        }
    }

    fn check_strings(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, path: &str) {
        for key in [
            "pattern",
            "format",
            "not",
            "dependencies",
            "dependentRequired",
            "dependentSchemas",
        ] {
            if let Some(reader_value) = r.get(key) {
                if w.get(key) != Some(reader_value) {
                    self.problem(path, format!("{key} added or changed"));
                }
            }
        }
        if r.get("uniqueItems") == Some(&Value::Bool(true))
            && w.get("uniqueItems") != Some(&Value::Bool(true))
        {
            self.problem(path, "uniqueItems added");
        }
    }

    fn check_object(
        &mut self,
        r: &'a Map<String, Value>,
        w: &'a Map<String, Value>,
        path: &str,
        depth: usize,
    ) {
        let reader_props = r.get("properties").and_then(Value::as_object);
        let writer_props = w.get("properties").and_then(Value::as_object);
        let writer_required: Vec<&str> = w
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(required) = r.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !writer_required.contains(&name) {
                    self.problem(path, format!("property {name} became required"));
                }
            }
        }
        for (name, reader_prop) in reader_props.into_iter().flatten() {
            let child = format!("{path}/properties/{name}");
            match writer_props.and_then(|w| w.get(name)) {
                Some(writer_prop) => self.check(reader_prop, writer_prop, &child, depth + 1),
                None => match additional(w) {
                    // Old documents may hold anything under this name.
                    None => {
                        if !is_empty_schema(reader_prop) {
                            self.problem(&child, "property added to an open content model");
                        }
                    }
                    Some(Value::Bool(false)) => {}
                    Some(writer_extra) => self.check(reader_prop, writer_extra, &child, depth + 1),
                },
            }
        }
        for (name, writer_prop) in writer_props.into_iter().flatten() {
            if reader_props.is_some_and(|r| r.contains_key(name)) {
                continue;
            }
            let child = format!("{path}/properties/{name}");
            match additional(r) {
                None => {}
                Some(Value::Bool(false)) => {
                    self.problem(&child, "property removed from a closed content model")
                }
                Some(reader_extra) => self.check(reader_extra, writer_prop, &child, depth + 1),
            }
        }
        match (additional(r), additional(w)) {
            (None, _) => {}
            (Some(Value::Bool(false)), Some(Value::Bool(false))) => {}
            (Some(_), None) => self.problem(path, "additionalProperties restricted"),
            (Some(Value::Bool(false)), Some(_)) => {
                self.problem(path, "additionalProperties restricted")
            }
            (Some(reader_extra), Some(writer_extra)) => {
                let child = format!("{path}/additionalProperties");
                self.check(reader_extra, writer_extra, &child, depth + 1);
            }
        }
    }

    fn check_array(
        &mut self,
        r: &'a Map<String, Value>,
        w: &'a Map<String, Value>,
        path: &str,
        depth: usize,
    ) {
        let child = format!("{path}/items");
        match (r.get("items"), w.get("items")) {
            (
                Some(ri @ (Value::Object(_) | Value::Bool(_))),
                Some(wi @ (Value::Object(_) | Value::Bool(_))),
            ) => self.check(ri, wi, &child, depth + 1),
            (Some(ri @ (Value::Object(_) | Value::Bool(_))), None) if !is_empty_schema(ri) => {
                self.problem(&child, "items restricted")
            }
            (Some(Value::Array(ris)), Some(Value::Array(wis))) => {
                for (i, (ri, wi)) in ris.iter().zip(wis).enumerate() {
                    self.check(ri, wi, &format!("{child}/{i}"), depth + 1);
                }
            }
            _ => {}
        }
        if let (Some(Value::Array(ris)), Some(Value::Array(wis))) =
            (r.get("prefixItems"), w.get("prefixItems"))
        {
            for (i, (ri, wi)) in ris.iter().zip(wis).enumerate() {
                self.check(ri, wi, &format!("{path}/prefixItems/{i}"), depth + 1);
            }
        }
    }

    fn check_combinators(
        &mut self,
        r: &'a Map<String, Value>,
        w: &'a Map<String, Value>,
        writer: &'a Value,
        path: &str,
        depth: usize,
    ) {
        for key in ["anyOf", "oneOf"] {
            let reader_branches = r.get(key).and_then(Value::as_array);
            let writer_branches = w
                .get(key)
                .or_else(|| w.get(if key == "anyOf" { "oneOf" } else { "anyOf" }))
                .and_then(Value::as_array);
            match (reader_branches, writer_branches) {
                (Some(rb), Some(wb)) => {
                    for (i, writer_branch) in wb.iter().enumerate() {
                        if !rb
                            .iter()
                            .any(|reader_branch| self.accepts(reader_branch, writer_branch, depth))
                        {
                            self.problem(
                                path,
                                format!("{key} branch {i} of the writer is not accepted"),
                            );
                        }
                    }
                }
                (Some(rb), None)
                    if !rb
                        .iter()
                        .any(|reader_branch| self.accepts(reader_branch, writer, depth))
                        && !types_covered_by_branches(w, rb) =>
                {
                    self.problem(
                        path,
                        format!("{key} added that the writer's schema does not satisfy"),
                    );
                }
                _ => {}
            }
        }
        if let Some(Value::Array(reader_all)) = r.get("allOf") {
            for (i, branch) in reader_all.iter().enumerate() {
                let already = w
                    .get("allOf")
                    .and_then(Value::as_array)
                    .is_some_and(|wa| wa.iter().any(|wb| self.accepts(branch, wb, depth)));
                if !already && !self.accepts(branch, writer, depth) {
                    self.problem(
                        path,
                        format!("allOf branch {i} of the reader is not satisfied"),
                    );
                }
            }
        }
    }

    /// Whether `reader` accepts everything `writer` does, without recording problems.
    fn accepts(&mut self, reader: &'a Value, writer: &'a Value, depth: usize) -> bool {
        let saved = std::mem::take(&mut self.problems);
        self.check(reader, writer, "", depth + 1);
        let ok = self.problems.is_empty();
        self.problems = saved;
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> JsonSchema {
        JsonSchema::parse(text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// (old, new, backward: new accepts old, forward: old accepts new)
    const MATRIX: &[(&str, &str, bool, bool)] = &[
        // Identical.
        (r#"{"type":"string"}"#, r#"{"type":"string"}"#, true, true),
        // integer → number widens.
        (r#"{"type":"integer"}"#, r#"{"type":"number"}"#, true, false),
        // string → integer.
        (
            r#"{"type":"string"}"#,
            r#"{"type":"integer"}"#,
            false,
            false,
        ),
        // Type added to a list.
        (
            r#"{"type":"string"}"#,
            r#"{"type":["string","null"]}"#,
            true,
            false,
        ),
        // Type removed from a list.
        (
            r#"{"type":["string","null"]}"#,
            r#"{"type":"string"}"#,
            false,
            true,
        ),
        // Optional property added to a closed model.
        (
            r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#,
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"additionalProperties":false}"#,
            true,
            false,
        ),
        // Optional property added to an open model: old data may hold anything as b.
        (
            r#"{"type":"object","properties":{"a":{"type":"string"}}}"#,
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}}}"#,
            false,
            true,
        ),
        // Property removed from an open model.
        (
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}}}"#,
            r#"{"type":"object","properties":{"a":{"type":"string"}}}"#,
            true,
            false,
        ),
        // Property removed from a closed model.
        (
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"additionalProperties":false}"#,
            r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#,
            false,
            true,
        ),
        // Required property added.
        (
            r#"{"type":"object","properties":{"a":{"type":"string"}}}"#,
            r#"{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}"#,
            false,
            true,
        ),
        // Model closed.
        (
            r#"{"type":"object","properties":{"a":{"type":"string"}}}"#,
            r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#,
            false,
            true,
        ),
        // Enum value added.
        (
            r#"{"enum":["a","b"]}"#,
            r#"{"enum":["a","b","c"]}"#,
            true,
            false,
        ),
        // Enum added.
        (
            r#"{"type":"string"}"#,
            r#"{"type":"string","enum":["a"]}"#,
            false,
            true,
        ),
        // maxLength raised.
        (
            r#"{"type":"string","maxLength":5}"#,
            r#"{"type":"string","maxLength":10}"#,
            true,
            false,
        ),
        // minimum raised.
        (
            r#"{"type":"number","minimum":0}"#,
            r#"{"type":"number","minimum":10}"#,
            false,
            true,
        ),
        // maximum added.
        (
            r#"{"type":"number"}"#,
            r#"{"type":"number","maximum":10}"#,
            false,
            true,
        ),
        // Pattern added.
        (
            r#"{"type":"string"}"#,
            r#"{"type":"string","pattern":"^a"}"#,
            false,
            true,
        ),
        // Array items widened.
        (
            r#"{"type":"array","items":{"type":"integer"}}"#,
            r#"{"type":"array","items":{"type":"number"}}"#,
            true,
            false,
        ),
        // uniqueItems added.
        (
            r#"{"type":"array"}"#,
            r#"{"type":"array","uniqueItems":true}"#,
            false,
            true,
        ),
        // oneOf gains a branch.
        (
            r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
            r#"{"oneOf":[{"type":"string"},{"type":"integer"},{"type":"boolean"}]}"#,
            true,
            false,
        ),
        // A type becomes one branch of a union.
        (
            r#"{"type":"string"}"#,
            r#"{"anyOf":[{"type":"string"},{"type":"null"}]}"#,
            true,
            false,
        ),
        // Nested property type changed.
        (
            r#"{"type":"object","properties":{"o":{"type":"object","properties":{"x":{"type":"string"}}}}}"#,
            r#"{"type":"object","properties":{"o":{"type":"object","properties":{"x":{"type":"integer"}}}}}"#,
            false,
            false,
        ),
        // Local $ref followed.
        (
            r##"{"definitions":{"n":{"type":"integer"}},"type":"object","properties":{"a":{"$ref":"#/definitions/n"}},"additionalProperties":false}"##,
            r##"{"$defs":{"n":{"type":"number"}},"type":"object","properties":{"a":{"$ref":"#/$defs/n"}},"additionalProperties":false}"##,
            true,
            false,
        ),
        // From anything to a type.
        (r#"{}"#, r#"{"type":"string"}"#, false, true),
        // A union written as anyOf and as a type list are the same set.
        (
            r#"{"anyOf":[{"type":"string"},{"type":"null"}]}"#,
            r#"{"type":["string","null"]}"#,
            true,
            true,
        ),
        // A union narrowed to one of its branches.
        (
            r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
            r#"{"type":"string"}"#,
            false,
            true,
        ),
    ];

    #[test]
    fn compatibility_matrix_both_directions() {
        for (old, new, backward, forward) in MATRIX {
            let old_s = parse(old);
            let new_s = parse(new);
            let b = read_problems(&new_s, &old_s);
            let f = read_problems(&old_s, &new_s);
            assert_eq!(b.is_empty(), *backward, "backward {old} -> {new}: {b:?}");
            assert_eq!(f.is_empty(), *forward, "forward {old} -> {new}: {f:?}");
        }
    }

    #[test]
    fn invalid_schemas_are_errors() {
        for text in ["not json", "3", r#"{"type":"nope"}"#, r#"{"minimum":"x"}"#] {
            assert!(JsonSchema::parse(text, &[]).is_err(), "{text}");
        }
    }

    #[test]
    fn references_resolve_in_memory() {
        let address = ResolvedReference {
            name: "address.json".into(),
            schema: r#"{"type":"object","properties":{"street":{"type":"string"}}}"#.into(),
        };
        let person = r#"{"type":"object","properties":{"home":{"$ref":"address.json"}}}"#;
        JsonSchema::parse(person, &[address]).expect("parses with the reference");
        assert!(JsonSchema::parse(person, &[]).is_err());
    }
}
