//! Avro: parsed with `apache-avro`; compatibility by its schema-resolution checker, where
//! a partial result (an enum or union that resolves only for some values) counts as
//! incompatible, as Confluent does.
//!
//! References are named types defined in other subjects. `apache-avro`'s checker needs a
//! self-contained schema, so the referenced definitions are inlined where the schema
//! first names them (later uses stay names, as the Avro specification requires).

use std::collections::{HashMap, HashSet};

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::Schema;
use serde_json::Value;

use super::ResolvedReference;

/// A parsed Avro schema.
pub(crate) struct AvroSchema {
    schema: Schema,
    /// The submitted JSON, compact: the identity of the schema.
    canonical: String,
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];
/// How deep inlining goes before giving up (references that include each other).
const INLINE_DEPTH_MAX: usize = 64;

impl AvroSchema {
    /// Parses the schema text with its references.
    pub fn parse(text: &str, references: &[ResolvedReference]) -> Result<Self, String> {
        let json: Value =
            serde_json::from_str(text).map_err(|e| format!("the schema is not JSON: {e}"))?;
        let mut named = HashMap::new();
        for reference in references {
            let value: Value = serde_json::from_str(&reference.schema)
                .map_err(|e| format!("reference {} is not JSON: {e}", reference.name))?;
            let full = value
                .as_object()
                .and_then(|o| full_name(o, None))
                .unwrap_or_else(|| reference.name.clone());
            named.insert(full, value);
        }
        let mut defined = HashSet::new();
        let inlined = inline(&json, None, &named, &mut defined, 0)?;
        let schema = Schema::parse(&inlined).map_err(|e| e.to_string())?;
        let canonical = serde_json::to_string(&json).map_err(|e| e.to_string())?;
        Ok(AvroSchema { schema, canonical })
    }

    /// The identity of the schema.
    pub fn canonical(&self) -> String {
        self.canonical.clone()
    }

    /// The parsed schema, references inlined.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }
}

/// Problems of `reader` decoding data of `writer`.
pub(crate) fn read_problems(reader: &AvroSchema, writer: &AvroSchema) -> Vec<String> {
    match SchemaCompatibility::can_read(&writer.schema, &reader.schema) {
        Ok(Compatibility::Full) => Vec::new(),
        Ok(Compatibility::Partial) => vec![
            "the reader resolves only some of the writer's values (an enum symbol or union branch is missing)".to_owned(),
        ],
        Err(e) => vec![e.to_string()],
    }
}

/// The full name of a named type's JSON object, given the enclosing namespace.
fn full_name(object: &serde_json::Map<String, Value>, namespace: Option<&str>) -> Option<String> {
    let name = object.get("name")?.as_str()?;
    if name.contains('.') {
        return Some(name.to_owned());
    }
    let namespace = object
        .get("namespace")
        .and_then(Value::as_str)
        .or(namespace)
        .filter(|ns| !ns.is_empty());
    Some(match namespace {
        Some(ns) => format!("{ns}.{name}"),
        None => name.to_owned(),
    })
}

fn namespace_of(full: &str) -> Option<String> {
    full.rsplit_once('.').map(|(ns, _)| ns.to_owned())
}

/// Replaces the first use of each referenced name by its definition.
fn inline(
    value: &Value,
    namespace: Option<&str>,
    named: &HashMap<String, Value>,
    defined: &mut HashSet<String>,
    depth: usize,
) -> Result<Value, String> {
    if depth > INLINE_DEPTH_MAX {
        return Err("references nest too deeply".to_owned());
    }
    Ok(match value {
        Value::String(name) if !PRIMITIVES.contains(&name.as_str()) => {
            let qualified = match namespace {
                Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
                _ => name.clone(),
            };
            for candidate in [&qualified, name] {
                if defined.contains(candidate) {
                    return Ok(value.clone());
                }
                if let Some(definition) = named.get(candidate) {
                    defined.insert(candidate.clone());
                    return inline(definition, None, named, defined, depth + 1);
                }
            }
            value.clone()
        }
        Value::Array(branches) => Value::Array(
            branches
                .iter()
                .map(|b| inline(b, namespace, named, defined, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(object) => {
            let mut out = object.clone();
            let kind = object.get("type").and_then(Value::as_str);
            match kind {
                Some("record" | "error" | "enum" | "fixed") => {
                    let full = full_name(object, namespace);
                    let inner_ns = full.as_deref().and_then(namespace_of);
                    if let Some(full) = full {
                        defined.insert(full);
                    }
                    if let Some(Value::Array(fields)) = object.get("fields") {
                        let mut new_fields = Vec::with_capacity(fields.len());
                        for field in fields {
                            let mut field = field.clone();
                            if let Some(t) = field.get("type").cloned() {
                                let t = inline(&t, inner_ns.as_deref(), named, defined, depth + 1)?;
                                if let Some(f) = field.as_object_mut() {
                                    f.insert("type".to_owned(), t);
                                }
                            }
                            new_fields.push(field);
                        }
                        out.insert("fields".to_owned(), Value::Array(new_fields));
                    }
                }
                Some("array") => {
                    if let Some(items) = object.get("items") {
                        out.insert(
                            "items".to_owned(),
                            inline(items, namespace, named, defined, depth + 1)?,
                        );
                    }
                }
                Some("map") => {
                    if let Some(values) = object.get("values") {
                        out.insert(
                            "values".to_owned(),
                            inline(values, namespace, named, defined, depth + 1)?,
                        );
                    }
                }
                _ => {
                    if let Some(inner) = object.get("type") {
                        out.insert(
                            "type".to_owned(),
                            inline(inner, namespace, named, defined, depth + 1)?,
                        );
                    }
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> AvroSchema {
        AvroSchema::parse(text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn record(fields: &str) -> String {
        format!(r#"{{"type":"record","name":"R","namespace":"ns","fields":[{fields}]}}"#)
    }

    /// (old, new, backward: new reads old, forward: old reads new)
    const MATRIX: &[(&str, &str, bool, bool)] = &[
        // Adding a field with a default: both directions.
        (
            r#"{"name":"a","type":"int"}"#,
            r#"{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}"#,
            true,
            true,
        ),
        // Adding a field without a default: forward only.
        (
            r#"{"name":"a","type":"int"}"#,
            r#"{"name":"a","type":"int"},{"name":"b","type":"string"}"#,
            false,
            true,
        ),
        // Removing a field with a default: both.
        (
            r#"{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}"#,
            r#"{"name":"a","type":"int"}"#,
            true,
            true,
        ),
        // Removing a field without a default: backward only.
        (
            r#"{"name":"a","type":"int"},{"name":"b","type":"string"}"#,
            r#"{"name":"a","type":"int"}"#,
            true,
            false,
        ),
        // int → long promotion: backward only.
        (
            r#"{"name":"a","type":"int"}"#,
            r#"{"name":"a","type":"long"}"#,
            true,
            false,
        ),
        // long → int: forward only.
        (
            r#"{"name":"a","type":"long"}"#,
            r#"{"name":"a","type":"int"}"#,
            false,
            true,
        ),
        // float → double.
        (
            r#"{"name":"a","type":"float"}"#,
            r#"{"name":"a","type":"double"}"#,
            true,
            false,
        ),
        // string ↔ bytes: both.
        (
            r#"{"name":"a","type":"string"}"#,
            r#"{"name":"a","type":"bytes"}"#,
            true,
            true,
        ),
        // string → int: neither.
        (
            r#"{"name":"a","type":"string"}"#,
            r#"{"name":"a","type":"int"}"#,
            false,
            false,
        ),
        // Renaming a field without alias: neither (no defaults).
        (
            r#"{"name":"a","type":"int"}"#,
            r#"{"name":"b","type":"int"}"#,
            false,
            false,
        ),
        // Widening to a union containing the old type: backward only.
        (
            r#"{"name":"a","type":"int"}"#,
            r#"{"name":"a","type":["null","int"]}"#,
            true,
            false,
        ),
        // Union gains a branch: backward only (the old reader lacks the branch: partial).
        (
            r#"{"name":"a","type":["null","int"]}"#,
            r#"{"name":"a","type":["null","int","string"]}"#,
            true,
            false,
        ),
        // Enum gains a symbol: backward only (partial the other way).
        (
            r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}}"#,
            r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}}"#,
            true,
            false,
        ),
        // Enum loses a symbol: forward only.
        (
            r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}}"#,
            r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}}"#,
            false,
            true,
        ),
        // Array items promoted.
        (
            r#"{"name":"a","type":{"type":"array","items":"int"}}"#,
            r#"{"name":"a","type":{"type":"array","items":"long"}}"#,
            true,
            false,
        ),
        // Map values changed incompatibly.
        (
            r#"{"name":"a","type":{"type":"map","values":"int"}}"#,
            r#"{"name":"a","type":{"type":"map","values":"string"}}"#,
            false,
            false,
        ),
        // Fixed size changed.
        (
            r#"{"name":"f","type":{"type":"fixed","name":"F","size":4}}"#,
            r#"{"name":"f","type":{"type":"fixed","name":"F","size":8}}"#,
            false,
            false,
        ),
        // Identical.
        (
            r#"{"name":"a","type":"int"}"#,
            r#"{"name":"a","type":"int"}"#,
            true,
            true,
        ),
    ];

    #[test]
    fn compatibility_matrix_both_directions() {
        for (old, new, backward, forward) in MATRIX {
            let old_s = parse(&record(old));
            let new_s = parse(&record(new));
            let b = read_problems(&new_s, &old_s);
            let f = read_problems(&old_s, &new_s);
            assert_eq!(b.is_empty(), *backward, "backward {old} -> {new}: {b:?}");
            assert_eq!(f.is_empty(), *forward, "forward {old} -> {new}: {f:?}");
        }
    }

    #[test]
    fn record_renamed_is_incompatible() {
        let a = parse(r#"{"type":"record","name":"A","fields":[]}"#);
        let b = parse(r#"{"type":"record","name":"B","fields":[]}"#);
        assert!(!read_problems(&a, &b).is_empty());
    }

    #[test]
    fn invalid_schemas_are_errors() {
        for text in [
            "not json",
            r#"{"type":"record","name":"R"}"#,
            r#"{"type":"nope"}"#,
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"Missing"}]}"#,
        ] {
            assert!(AvroSchema::parse(text, &[]).is_err(), "{text}");
        }
    }

    #[test]
    fn references_are_inlined() {
        let address = ResolvedReference {
            name: "com.acme.Address".into(),
            schema: r#"{"type":"record","name":"Address","namespace":"com.acme","fields":[{"name":"street","type":"string"}]}"#.into(),
        };
        let person = r#"{"type":"record","name":"Person","namespace":"com.acme","fields":[{"name":"home","type":"Address"},{"name":"work","type":"com.acme.Address"}]}"#;
        let parsed = AvroSchema::parse(person, &[address]).expect("parses with the reference");
        assert!(read_problems(&parsed, &parsed).is_empty());
        assert!(AvroSchema::parse(person, &[]).is_err());
    }
}
