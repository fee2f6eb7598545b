//! Renders a `FileDescriptorProto` as `.proto` text, for schemas registered as base64
//! descriptors (the Python client) and read back by clients that want text (Java,
//! JavaScript) — as Confluent answers them. Covers what schemas carry: syntax,
//! package, imports, the common file options, messages (nested, maps, oneofs,
//! proto3 `optional`, reserved ranges and names, proto2 defaults and `packed`),
//! enums and services. Custom options and extensions are left out.

use std::fmt::Write;

use prost_reflect::prost_types::field_descriptor_proto::{Label, Type};
use prost_reflect::prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    ServiceDescriptorProto,
};

/// The `.proto` text of `file`.
pub(crate) fn render(file: &FileDescriptorProto) -> String {
    let mut out = String::new();
    let syntax = match file.syntax() {
        "" => "proto2",
        other => other,
    };
    let _ = writeln!(out, "syntax = \"{syntax}\";");
    if !file.package().is_empty() {
        let _ = writeln!(out, "package {};", file.package());
    }
    if !file.dependency.is_empty() {
        out.push('\n');
    }
    for (i, dep) in file.dependency.iter().enumerate() {
        let public = file
            .public_dependency
            .contains(&i32::try_from(i).unwrap_or(-1));
        let _ = writeln!(
            out,
            "import {}\"{dep}\";",
            if public { "public " } else { "" }
        );
    }
    if let Some(options) = &file.options {
        let strings = [
            ("java_package", options.java_package.as_deref()),
            (
                "java_outer_classname",
                options.java_outer_classname.as_deref(),
            ),
            ("go_package", options.go_package.as_deref()),
            ("csharp_namespace", options.csharp_namespace.as_deref()),
        ];
        let mut any = false;
        for (name, value) in strings {
            if let Some(value) = value {
                if !any {
                    out.push('\n');
                    any = true;
                }
                let _ = writeln!(out, "option {name} = \"{}\";", escape(value));
            }
        }
        if let Some(multiple) = options.java_multiple_files {
            let _ = writeln!(out, "option java_multiple_files = {multiple};");
        }
    }
    let proto3 = syntax == "proto3";
    for message in &file.message_type {
        out.push('\n');
        render_message(&mut out, message, 0, proto3);
    }
    for enumeration in &file.enum_type {
        out.push('\n');
        render_enum(&mut out, enumeration, 0);
    }
    for service in &file.service {
        out.push('\n');
        render_service(&mut out, service);
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn type_name(field: &FieldDescriptorProto) -> String {
    match field.r#type() {
        Type::Message | Type::Enum | Type::Group => field.type_name().to_owned(),
        Type::Double => "double".into(),
        Type::Float => "float".into(),
        Type::Int64 => "int64".into(),
        Type::Uint64 => "uint64".into(),
        Type::Int32 => "int32".into(),
        Type::Fixed64 => "fixed64".into(),
        Type::Fixed32 => "fixed32".into(),
        Type::Bool => "bool".into(),
        Type::String => "string".into(),
        Type::Bytes => "bytes".into(),
        Type::Uint32 => "uint32".into(),
        Type::Sfixed32 => "sfixed32".into(),
        Type::Sfixed64 => "sfixed64".into(),
        Type::Sint32 => "sint32".into(),
        Type::Sint64 => "sint64".into(),
    }
}

/// The map entry a field's type names, if the field is a map.
fn map_entry<'a>(
    message: &'a DescriptorProto,
    field: &FieldDescriptorProto,
) -> Option<&'a DescriptorProto> {
    if field.label() != Label::Repeated || field.r#type() != Type::Message {
        return None;
    }
    let short = field.type_name().rsplit('.').next()?;
    message.nested_type.iter().find(|nested| {
        nested.name() == short
            && nested
                .options
                .as_ref()
                .is_some_and(|o| o.map_entry.unwrap_or(false))
    })
}

fn field_options(field: &FieldDescriptorProto, proto3: bool) -> String {
    let mut options = Vec::new();
    if !proto3 {
        if let Some(default) = &field.default_value {
            let value = match field.r#type() {
                Type::String => format!("\"{}\"", escape(default)),
                Type::Bytes => format!("\"{default}\""),
                _ => default.clone(),
            };
            options.push(format!("default = {value}"));
        }
    }
    if let Some(o) = &field.options {
        if let Some(packed) = o.packed {
            options.push(format!("packed = {packed}"));
        }
        if o.deprecated == Some(true) {
            options.push("deprecated = true".into());
        }
    }
    if options.is_empty() {
        String::new()
    } else {
        format!(" [{}]", options.join(", "))
    }
}

fn render_field(
    out: &mut String,
    message: &DescriptorProto,
    field: &FieldDescriptorProto,
    depth: usize,
    proto3: bool,
    in_oneof: bool,
) {
    indent(out, depth);
    if let Some(entry) = map_entry(message, field) {
        let key = entry.field.iter().find(|f| f.number() == 1);
        let value = entry.field.iter().find(|f| f.number() == 2);
        if let (Some(key), Some(value)) = (key, value) {
            let _ = writeln!(
                out,
                "map<{}, {}> {} = {}{};",
                type_name(key),
                type_name(value),
                field.name(),
                field.number(),
                field_options(field, proto3)
            );
            return;
        }
    }
    let label = match (field.label(), proto3, in_oneof) {
        (_, _, true) => "",
        (Label::Repeated, _, _) => "repeated ",
        (Label::Required, _, _) => "required ",
        (Label::Optional, false, _) => "optional ",
        (Label::Optional, true, _) if field.proto3_optional() => "optional ",
        (Label::Optional, true, _) => "",
    };
    let _ = writeln!(
        out,
        "{label}{} {} = {}{};",
        type_name(field),
        field.name(),
        field.number(),
        field_options(field, proto3)
    );
}

fn render_message(out: &mut String, message: &DescriptorProto, depth: usize, proto3: bool) {
    indent(out, depth);
    let _ = writeln!(out, "message {} {{", message.name());
    for range in &message.reserved_range {
        indent(out, depth + 1);
        // Descriptor ranges are end-exclusive; `.proto` ranges inclusive.
        let (start, end) = (range.start(), range.end() - 1);
        if start == end {
            let _ = writeln!(out, "reserved {start};");
        } else {
            let _ = writeln!(out, "reserved {start} to {end};");
        }
    }
    if !message.reserved_name.is_empty() {
        indent(out, depth + 1);
        let names: Vec<String> = message
            .reserved_name
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect();
        let _ = writeln!(out, "reserved {};", names.join(", "));
    }
    // A oneof is printed where its first field is; proto3 `optional` fields have a
    // synthetic oneof of their own that is not printed.
    let mut printed_oneofs = Vec::new();
    for field in &message.field {
        let real_oneof = field.oneof_index.filter(|_| !field.proto3_optional());
        match real_oneof {
            Some(index) => {
                if printed_oneofs.contains(&index) {
                    continue;
                }
                printed_oneofs.push(index);
                let name = usize::try_from(index)
                    .ok()
                    .and_then(|i| message.oneof_decl.get(i))
                    .map_or("unnamed", |o| o.name());
                indent(out, depth + 1);
                let _ = writeln!(out, "oneof {name} {{");
                for member in message
                    .field
                    .iter()
                    .filter(|f| f.oneof_index == Some(index) && !f.proto3_optional())
                {
                    render_field(out, message, member, depth + 2, proto3, true);
                }
                indent(out, depth + 1);
                out.push_str("}\n");
            }
            None => render_field(out, message, field, depth + 1, proto3, false),
        }
    }
    for nested in &message.nested_type {
        if nested
            .options
            .as_ref()
            .is_some_and(|o| o.map_entry.unwrap_or(false))
        {
            continue;
        }
        render_message(out, nested, depth + 1, proto3);
    }
    for enumeration in &message.enum_type {
        render_enum(out, enumeration, depth + 1);
    }
    indent(out, depth);
    out.push_str("}\n");
}

fn render_enum(out: &mut String, enumeration: &EnumDescriptorProto, depth: usize) {
    indent(out, depth);
    let _ = writeln!(out, "enum {} {{", enumeration.name());
    if enumeration
        .options
        .as_ref()
        .is_some_and(|o| o.allow_alias == Some(true))
    {
        indent(out, depth + 1);
        out.push_str("option allow_alias = true;\n");
    }
    for value in &enumeration.value {
        indent(out, depth + 1);
        let _ = writeln!(out, "{} = {};", value.name(), value.number());
    }
    indent(out, depth);
    out.push_str("}\n");
}

fn render_service(out: &mut String, service: &ServiceDescriptorProto) {
    let _ = writeln!(out, "service {} {{", service.name());
    for method in &service.method {
        let _ = writeln!(
            out,
            "  rpc {}({}{}) returns ({}{});",
            method.name(),
            if method.client_streaming() {
                "stream "
            } else {
                ""
            },
            method.input_type(),
            if method.server_streaming() {
                "stream "
            } else {
                ""
            },
            method.output_type()
        );
    }
    out.push_str("}\n");
}

#[cfg(test)]
mod tests {
    use super::super::protobuf::ProtoSchema;

    /// Text → descriptor → text → descriptor gives the same schema.
    #[test]
    fn rendered_text_compiles_to_the_same_schema() {
        let sources = [
            "syntax = \"proto3\";\npackage acme;\nimport \"google/protobuf/timestamp.proto\";\noption java_package = \"com.acme\";\n\
             message Ride {\n  string id = 1;\n  map<string, int64> counts = 2;\n  optional int32 maybe = 3;\n  oneof payment { string card = 4; string cash = 5; }\n\
             repeated Stop stops = 6;\n  google.protobuf.Timestamp at = 7;\n  Kind kind = 8;\n  reserved 10 to 12, 15;\n  reserved \"old\";\n\
             message Stop { string name = 1; }\n  enum Kind { KIND_UNSPECIFIED = 0; POOL = 1; }\n}\n\
             service Rides { rpc Book(Ride) returns (stream Ride); }\n",
            "syntax = \"proto2\";\npackage legacy;\nmessage M {\n  required int32 a = 1;\n  optional string b = 2 [default = \"x\"];\n  repeated int32 c = 3 [packed = true];\n}\n",
        ];
        for source in sources {
            let first = ProtoSchema::parse(source, &[]).expect("source compiles");
            let text = first.text();
            let second = ProtoSchema::parse(&text, &[])
                .unwrap_or_else(|e| panic!("rendered text does not compile: {e}\n{text}"));
            assert_eq!(first.canonical(), second.canonical(), "{text}");
        }
    }
}
