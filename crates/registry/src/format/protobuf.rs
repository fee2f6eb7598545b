//! Protobuf: `.proto` text (what Java clients send) or a base64 `FileDescriptorProto`
//! (what the Python client sends), compiled with `protox` into a `prost-reflect`
//! descriptor pool. Imports resolve to the schema's references by import path, then to
//! the well-known files (`google/protobuf/timestamp.proto`, …) that `protox` carries.
//!
//! Compatibility is decided on the wire: field numbers and wire types matter, names do
//! not. For every message of the writer's file, by full name:
//! - a message missing from the reader is incompatible (Confluent: MESSAGE_REMOVED);
//! - a field missing from the reader is fine (unknown fields are skipped), unless it
//!   was `required` or a member of a oneof;
//! - a field the reader has and the writer lacks is fine, unless it is `required`;
//! - a field present in both keeps its wire type group (varint `int32 uint32 int64
//!   uint64 bool enum`; zigzag `sint32 sint64`; `fixed32 sfixed32`; `fixed64
//!   sfixed64`; `float`; `double`; `string bytes`), its message type's name within
//!   its package, and its cardinality (singular ↔ repeated only for length-delimited
//!   types);
//! - messages are matched by name within the package, so a package change alone is
//!   compatible (as in Confluent), and enum types may be renamed (numbers on the
//!   wire);
//! - fields may not move into a oneof that already had members, nor several into a
//!   new one.

use std::collections::{BTreeMap, HashMap, HashSet};

use base64::Engine;
use prost_reflect::prost::Message;
use prost_reflect::prost_types::FileDescriptorProto;
use prost_reflect::{
    Cardinality, DescriptorPool, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor,
};
use protox::file::{File, FileResolver, GoogleFileResolver};

use super::ResolvedReference;

/// The file name a `.proto` text schema gets when compiled (never an import path).
const ROOT_FILE: &str = "__strom_schema__.proto";

/// A parsed Protobuf schema.
pub(crate) struct ProtoSchema {
    pool: DescriptorPool,
    file_name: String,
    canonical: String,
}

struct Resolver {
    files: HashMap<String, File>,
    google: GoogleFileResolver,
}

impl FileResolver for Resolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.files.get(name) {
            Some(file) => Ok(file.clone()),
            None => self.google.open_file(name),
        }
    }
}

/// Decodes a base64 `FileDescriptorProto`, or `None` if `text` is not one.
fn decode_descriptor(text: &str) -> Option<FileDescriptorProto> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.contains(|c: char| c.is_whitespace() || c == ';') {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .ok()?;
    FileDescriptorProto::decode(bytes.as_slice()).ok()
}

fn to_file(name: &str, text: &str) -> Result<File, String> {
    match decode_descriptor(text) {
        Some(mut descriptor) => {
            descriptor.name = Some(name.to_owned());
            Ok(File::from_file_descriptor_proto(descriptor))
        }
        None => File::from_source(name, text).map_err(|e| e.to_string()),
    }
}

/// The descriptor with what does not change the schema removed: source positions,
/// JSON names the compiler derives, the file name.
fn normalize(mut file: FileDescriptorProto) -> FileDescriptorProto {
    fn clear_message(message: &mut prost_reflect::prost_types::DescriptorProto) {
        for field in &mut message.field {
            field.json_name = None;
        }
        for nested in &mut message.nested_type {
            clear_message(nested);
        }
    }
    file.source_code_info = None;
    file.name = None;
    for message in &mut file.message_type {
        clear_message(message);
    }
    file
}

/// Compiles `root` among `files` (Google's well-known imports resolved too).
fn compile(files: HashMap<String, File>, root: &str) -> Result<DescriptorPool, String> {
    let resolver = Resolver {
        files,
        google: GoogleFileResolver::new(),
    };
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_source_info(false);
    compiler.open_file(root).map_err(|e| e.to_string())?;
    Ok(compiler.descriptor_pool())
}

/// Compiles one `.proto` file's text under the file name `name`; it may import only
/// Google's well-known types.
pub(crate) fn compile_file(name: &str, text: &str) -> Result<FileDescriptor, String> {
    let file = File::from_source(name, text).map_err(|e| e.to_string())?;
    compile(HashMap::from([(name.to_owned(), file)]), name)?
        .get_file_by_name(name)
        .ok_or_else(|| format!("the compiled schema has no file {name}"))
}

impl ProtoSchema {
    /// Compiles the schema with its references.
    pub fn parse(text: &str, references: &[ResolvedReference]) -> Result<Self, String> {
        let mut files = HashMap::new();
        for reference in references {
            files.insert(
                reference.name.clone(),
                to_file(&reference.name, &reference.schema)?,
            );
        }
        let file_name = match decode_descriptor(text) {
            Some(descriptor) => descriptor
                .name
                .filter(|n| !n.is_empty() && !files.contains_key(n))
                .unwrap_or_else(|| ROOT_FILE.to_owned()),
            None => ROOT_FILE.to_owned(),
        };
        files.insert(file_name.clone(), to_file(&file_name, text)?);
        let pool = compile(files, &file_name)?;
        let file = pool
            .get_file_by_name(&file_name)
            .ok_or_else(|| "the compiled schema has no file".to_owned())?;
        let canonical = base64::engine::general_purpose::STANDARD
            .encode(normalize(file.file_descriptor_proto().clone()).encode_to_vec());
        Ok(ProtoSchema {
            pool,
            file_name,
            canonical,
        })
    }

    /// The identity of the schema: the normalized descriptor, so the text and the
    /// descriptor form of one schema are the same schema.
    pub fn canonical(&self) -> String {
        self.canonical.clone()
    }

    /// The descriptor, base64: what `format=serialized` returns.
    pub fn serialized(&self) -> String {
        let proto = self
            .pool
            .get_file_by_name(&self.file_name)
            .map(|f| f.file_descriptor_proto().encode_to_vec())
            .unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(proto)
    }

    /// The schema as `.proto` text (rendered from the descriptor).
    pub fn text(&self) -> String {
        self.pool
            .get_file_by_name(&self.file_name)
            .map(|f| super::proto_text::render(f.file_descriptor_proto()))
            .unwrap_or_default()
    }

    /// Whether `text` is a base64 descriptor rather than `.proto` text.
    pub fn is_descriptor(text: &str) -> bool {
        decode_descriptor(text).is_some()
    }

    /// The normalized form stored for `normalize=true`.
    pub fn normalized(&self) -> String {
        self.canonical()
    }

    /// Every message of the schema's own file (nested ones too, map entries not), by
    /// name within the package (Confluent compares them so: a package change alone is
    /// compatible).
    fn messages(&self) -> BTreeMap<String, MessageDescriptor> {
        let mut out = BTreeMap::new();
        let Some(file) = self.pool.get_file_by_name(&self.file_name) else {
            return out;
        };
        let mut stack: Vec<MessageDescriptor> = file.messages().collect();
        while let Some(message) = stack.pop() {
            if message.is_map_entry() {
                continue;
            }
            stack.extend(message.child_messages());
            out.insert(
                local_name(message.full_name(), file.package_name()),
                message,
            );
        }
        out
    }

    /// The message type at `indexes` (Confluent's message-index path: top-level index,
    /// then nested indexes), for the wire format.
    pub fn message_at(&self, indexes: &[i32]) -> Option<MessageDescriptor> {
        let file = self.pool.get_file_by_name(&self.file_name)?;
        let (first, rest) = indexes.split_first()?;
        let mut message = file.messages().nth(usize::try_from(*first).ok()?)?;
        for index in rest {
            // Map entries count: indexes follow the descriptor's nested_type list, as
            // Confluent's Java and Python serializers number them.
            let next = message
                .child_messages()
                .nth(usize::try_from(*index).ok()?)?;
            message = next;
        }
        Some(message)
    }
}

/// A full name without the package: `acme.Ride.Stop` in package `acme` is `Ride.Stop`.
fn local_name(full_name: &str, package: &str) -> String {
    if package.is_empty() {
        return full_name.to_owned();
    }
    full_name
        .strip_prefix(package)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(full_name)
        .to_owned()
}

/// Wire type groups: fields may change type within a group.
fn wire_group(kind: &Kind) -> &'static str {
    match kind {
        Kind::Int32 | Kind::Uint32 | Kind::Int64 | Kind::Uint64 | Kind::Bool | Kind::Enum(_) => {
            "varint"
        }
        Kind::Sint32 | Kind::Sint64 => "zigzag",
        Kind::Fixed32 | Kind::Sfixed32 => "fixed32",
        Kind::Fixed64 | Kind::Sfixed64 => "fixed64",
        Kind::Float => "float",
        Kind::Double => "double",
        Kind::String | Kind::Bytes => "length-delimited",
        Kind::Message(_) => "message",
    }
}

fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Message(m) => m.full_name().to_owned(),
        Kind::Enum(e) => e.full_name().to_owned(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn real_oneof(field: &FieldDescriptor) -> Option<String> {
    field
        .containing_oneof()
        .filter(|o| !o.is_synthetic())
        .map(|o| o.name().to_owned())
}

/// Problems of `reader` decoding data of `writer`.
pub(crate) fn read_problems(reader: &ProtoSchema, writer: &ProtoSchema) -> Vec<String> {
    let mut problems = Vec::new();
    let reader_messages = reader.messages();
    for (name, writer_message) in writer.messages() {
        let Some(reader_message) = reader_messages.get(&name) else {
            problems.push(format!("message {name} removed"));
            continue;
        };
        check_message(reader_message, &writer_message, &mut problems);
    }
    problems
}

fn check_message(
    reader: &MessageDescriptor,
    writer: &MessageDescriptor,
    problems: &mut Vec<String>,
) {
    let name = writer.full_name();
    let reader_fields: BTreeMap<u32, FieldDescriptor> =
        reader.fields().map(|f| (f.number(), f)).collect();
    let writer_fields: BTreeMap<u32, FieldDescriptor> =
        writer.fields().map(|f| (f.number(), f)).collect();
    for (number, wf) in &writer_fields {
        let Some(rf) = reader_fields.get(number) else {
            if wf.cardinality() == Cardinality::Required {
                problems.push(format!(
                    "{name}: required field {number} ({}) removed",
                    wf.name()
                ));
            }
            if real_oneof(wf).is_some() {
                problems.push(format!(
                    "{name}: oneof field {number} ({}) removed",
                    wf.name()
                ));
            }
            continue;
        };
        let (rk, wk) = (rf.kind(), wf.kind());
        if wire_group(&rk) != wire_group(&wk) {
            problems.push(format!(
                "{name}: field {number} changed type from {} to {}",
                kind_name(&wk),
                kind_name(&rk)
            ));
        } else if let (Kind::Message(rm), Kind::Message(wm)) = (&rk, &wk) {
            if rf.is_map() != wf.is_map() {
                problems.push(format!(
                    "{name}: field {number} changed between map and message"
                ));
            } else if rf.is_map() {
                for (what, r, w) in [
                    ("key", rm.map_entry_key_field(), wm.map_entry_key_field()),
                    (
                        "value",
                        rm.map_entry_value_field(),
                        wm.map_entry_value_field(),
                    ),
                ] {
                    let (rk, wk) = (r.kind(), w.kind());
                    let renamed = match (&rk, &wk) {
                        (Kind::Message(a), Kind::Message(b)) => {
                            local_name(a.full_name(), a.package_name())
                                != local_name(b.full_name(), b.package_name())
                        }
                        _ => false,
                    };
                    if wire_group(&rk) != wire_group(&wk) || renamed {
                        problems.push(format!(
                            "{name}: map field {number} changed its {what} type from {} to {}",
                            kind_name(&wk),
                            kind_name(&rk)
                        ));
                    }
                }
            } else if !rf.is_map()
                && local_name(rm.full_name(), rm.package_name())
                    != local_name(wm.full_name(), wm.package_name())
            {
                problems.push(format!(
                    "{name}: field {number} changed message type from {} to {}",
                    wm.full_name(),
                    rm.full_name()
                ));
            }
        }
        // Enums are numbers on the wire (Confluent compares them as scalars): a
        // renamed enum type is compatible, as are added and removed values.
        if rf.is_list() != wf.is_list()
            && wire_group(&rk) != "length-delimited"
            && wire_group(&rk) != "message"
        {
            problems.push(format!(
                "{name}: field {number} changed between singular and repeated"
            ));
        }
        if rf.cardinality() == Cardinality::Required && wf.cardinality() != Cardinality::Required {
            problems.push(format!("{name}: field {number} became required"));
        }
    }
    for (number, rf) in &reader_fields {
        if !writer_fields.contains_key(number) && rf.cardinality() == Cardinality::Required {
            problems.push(format!(
                "{name}: required field {number} ({}) added",
                rf.name()
            ));
        }
    }
    // Oneofs: fields that were outside any oneof in the writer and share one in the reader.
    let mut moved: HashMap<String, Vec<u32>> = HashMap::new();
    let mut existing: HashSet<String> = HashSet::new();
    for (number, rf) in &reader_fields {
        let Some(oneof) = real_oneof(rf) else {
            continue;
        };
        match writer_fields.get(number) {
            Some(wf) if real_oneof(wf).is_none() => moved.entry(oneof).or_default().push(*number),
            Some(_) => {
                existing.insert(oneof);
            }
            None => {}
        }
    }
    for (oneof, numbers) in moved {
        if existing.contains(&oneof) {
            problems.push(format!(
                "{name}: fields {numbers:?} moved into existing oneof {oneof}"
            ));
        } else if numbers.len() > 1 {
            problems.push(format!(
                "{name}: several fields {numbers:?} moved into oneof {oneof}"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ProtoSchema {
        ProtoSchema::parse(text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn proto(body: &str) -> String {
        format!("syntax = \"proto3\";\npackage acme;\n{body}\n")
    }

    /// (old, new, backward: new reads old, forward: old reads new)
    const MATRIX: &[(&str, &str, bool, bool)] = &[
        (
            "message M { string a = 1; }",
            "message M { string a = 1; }",
            true,
            true,
        ),
        // Field added / removed: unknown fields are skipped both ways.
        (
            "message M { string a = 1; }",
            "message M { string a = 1; int32 b = 2; }",
            true,
            true,
        ),
        (
            "message M { string a = 1; int32 b = 2; }",
            "message M { string a = 1; }",
            true,
            true,
        ),
        // Renamed field: names are not on the wire.
        (
            "message M { string a = 1; }",
            "message M { string renamed = 1; }",
            true,
            true,
        ),
        // Type changes within a wire group.
        (
            "message M { int32 a = 1; }",
            "message M { int64 a = 1; }",
            true,
            true,
        ),
        (
            "message M { string a = 1; }",
            "message M { bytes a = 1; }",
            true,
            true,
        ),
        (
            "message M { fixed32 a = 1; }",
            "message M { sfixed32 a = 1; }",
            true,
            true,
        ),
        // Across wire groups.
        (
            "message M { int32 a = 1; }",
            "message M { string a = 1; }",
            false,
            false,
        ),
        (
            "message M { int32 a = 1; }",
            "message M { sint32 a = 1; }",
            false,
            false,
        ),
        (
            "message M { float a = 1; }",
            "message M { double a = 1; }",
            false,
            false,
        ),
        // Enum ↔ int32 share the varint group.
        (
            "enum E { A = 0; } message M { E a = 1; }",
            "enum E { A = 0; } message M { int32 a = 1; }",
            true,
            true,
        ),
        // Enum value added.
        (
            "enum E { A = 0; } message M { E a = 1; }",
            "enum E { A = 0; B = 1; } message M { E a = 1; }",
            true,
            true,
        ),
        // Message type of a field changed.
        (
            "message A { string x = 1; } message B { string x = 1; } message M { A a = 1; }",
            "message A { string x = 1; } message B { string x = 1; } message M { B a = 1; }",
            false,
            false,
        ),
        // Message added: the old reader lacks it (Confluent: not forward compatible).
        (
            "message M { string a = 1; }",
            "message M { string a = 1; } message N { string b = 1; }",
            true,
            false,
        ),
        // Message removed.
        (
            "message M { string a = 1; } message N { string b = 1; }",
            "message M { string a = 1; }",
            false,
            true,
        ),
        // Singular ↔ repeated: fine for strings, not for varints.
        (
            "message M { string a = 1; }",
            "message M { repeated string a = 1; }",
            true,
            true,
        ),
        (
            "message M { int32 a = 1; }",
            "message M { repeated int32 a = 1; }",
            false,
            false,
        ),
        // Oneof: one field into a new oneof is fine, two are not.
        (
            "message M { string a = 1; }",
            "message M { oneof o { string a = 1; } }",
            true,
            true,
        ),
        (
            "message M { string a = 1; string b = 2; }",
            "message M { oneof o { string a = 1; string b = 2; } }",
            false,
            true,
        ),
        // Oneof field removed.
        (
            "message M { oneof o { string a = 1; string b = 2; } }",
            "message M { oneof o { string a = 1; } }",
            false,
            true,
        ),
        // Nested message field changed.
        (
            "message M { message N { int32 x = 1; } N n = 1; }",
            "message M { message N { string x = 1; } N n = 1; }",
            false,
            false,
        ),
        // Package changed: every message renamed.
        (
            "message M { string a = 1; }",
            "message M { string a = 1; }",
            true,
            true,
        ),
    ];

    #[test]
    fn compatibility_matrix_both_directions() {
        for (old, new, backward, forward) in MATRIX {
            let old_s = parse(&proto(old));
            let new_s = parse(&proto(new));
            let b = read_problems(&new_s, &old_s);
            let f = read_problems(&old_s, &new_s);
            assert_eq!(b.is_empty(), *backward, "backward {old} -> {new}: {b:?}");
            assert_eq!(f.is_empty(), *forward, "forward {old} -> {new}: {f:?}");
        }
    }

    #[test]
    fn package_change_alone_is_compatible_as_in_confluent() {
        let a = parse(
            "syntax = \"proto3\"; package a; message M { string x = 1; N n = 2; } message N {}",
        );
        let b = parse(
            "syntax = \"proto3\"; package b; message M { string x = 1; N n = 2; } message N {}",
        );
        assert!(read_problems(&a, &b).is_empty());
        assert!(read_problems(&b, &a).is_empty());
        let c = parse("syntax = \"proto3\"; package b; message Renamed { string x = 1; }");
        assert!(!read_problems(&c, &a).is_empty(), "M is gone");
    }

    #[test]
    fn map_value_type_change_is_reported() {
        let old = parse(&proto("message M { map<string, int32> m = 1; }"));
        let new = parse(&proto("message M { map<string, string> m = 1; }"));
        let problems = read_problems(&new, &old);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("map field 1 changed its value type")),
            "{problems:?}"
        );
    }

    #[test]
    fn proto2_required_fields() {
        let old = parse("syntax = \"proto2\"; message M { optional string a = 1; }");
        let new = parse(
            "syntax = \"proto2\"; message M { optional string a = 1; required int32 b = 2; }",
        );
        assert!(
            !read_problems(&new, &old).is_empty(),
            "required added: backward breaks"
        );
        assert!(
            !read_problems(&old, &new).is_empty(),
            "required removed: forward breaks"
        );
    }

    #[test]
    fn text_and_descriptor_forms_are_one_schema() {
        let text = proto("import \"google/protobuf/timestamp.proto\";\nmessage M { string a = 1; google.protobuf.Timestamp at = 2; }");
        let from_text = parse(&text);
        let serialized = from_text.serialized();
        let from_descriptor = parse(&serialized);
        assert_eq!(from_text.canonical(), from_descriptor.canonical());
        assert!(read_problems(&from_text, &from_descriptor).is_empty());
    }

    #[test]
    fn references_resolve_by_import_path() {
        let dep = ResolvedReference {
            name: "acme/address.proto".into(),
            schema: "syntax = \"proto3\"; package acme; message Address { string street = 1; }"
                .into(),
        };
        let text = proto("import \"acme/address.proto\";\nmessage Person { Address home = 1; }");
        ProtoSchema::parse(&text, &[dep]).expect("compiles with the reference");
        assert!(ProtoSchema::parse(&text, &[]).is_err());
    }

    #[test]
    fn invalid_schemas_are_errors() {
        for text in [
            "message {",
            "syntax = \"proto3\"; message M { Missing a = 1; }",
            "bm90IGEgZGVzY3JpcHRvcg==",
        ] {
            assert!(ProtoSchema::parse(text, &[]).is_err(), "{text}");
        }
    }

    #[test]
    fn message_indexes_find_nested_messages() {
        let s = parse(&proto(
            "message A { message B { message C {} } } message D {}",
        ));
        assert_eq!(
            s.message_at(&[0])
                .map(|m| m.full_name().to_owned())
                .as_deref(),
            Some("acme.A")
        );
        assert_eq!(
            s.message_at(&[0, 0, 0])
                .map(|m| m.full_name().to_owned())
                .as_deref(),
            Some("acme.A.B.C")
        );
        assert_eq!(
            s.message_at(&[1])
                .map(|m| m.full_name().to_owned())
                .as_deref(),
            Some("acme.D")
        );
        assert!(s.message_at(&[2]).is_none());
    }
}
