//! Schema formats: parsing (with references), identity, and compatibility.
//!
//! Every format answers the same question for compatibility: *can a reader using
//! schema R decode data written with schema W?* The registry maps the levels onto it:
//! BACKWARD asks it with R = new and W = old, FORWARD with R = old and W = new, FULL
//! both ways. Each check returns human-readable messages, one per problem; an empty
//! list means compatible.

pub(crate) mod avro;
pub(crate) mod json;
mod proto_text;
pub(crate) mod protobuf;

use crate::types::SchemaType;

/// A referenced schema, resolved: the name the referring schema uses and the text.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedReference {
    /// How the referring schema names it (Avro full name, import path, `$ref` URL).
    pub name: String,
    /// The referenced schema's text.
    pub schema: String,
}

/// A parsed schema of any format.
pub(crate) enum Parsed {
    Avro(avro::AvroSchema),
    Json(json::JsonSchema),
    Protobuf(protobuf::ProtoSchema),
}

impl Parsed {
    /// Parses `schema` of `schema_type`; `references` are its dependencies, transitively,
    /// dependencies before dependents. The error is the reason, for a 42201.
    pub fn parse(
        schema_type: SchemaType,
        schema: &str,
        references: &[ResolvedReference],
    ) -> Result<Parsed, String> {
        Ok(match schema_type {
            SchemaType::Avro => Parsed::Avro(avro::AvroSchema::parse(schema, references)?),
            SchemaType::Json => Parsed::Json(json::JsonSchema::parse(schema, references)?),
            SchemaType::Protobuf => {
                Parsed::Protobuf(protobuf::ProtoSchema::parse(schema, references)?)
            }
        })
    }

    /// The form that decides identity: two submissions with equal canonical forms (and
    /// equal references) are the same schema and get the same id.
    pub fn canonical(&self) -> String {
        match self {
            Parsed::Avro(s) => s.canonical(),
            Parsed::Json(s) => s.canonical(),
            Parsed::Protobuf(s) => s.canonical(),
        }
    }

    /// The text stored when a client asks for `normalize=true`.
    pub fn normalized(&self) -> String {
        match self {
            Parsed::Avro(s) => s.canonical(),
            Parsed::Json(s) => s.canonical(),
            Parsed::Protobuf(s) => s.normalized(),
        }
    }

    /// Problems a reader with `reader` has decoding data written with `writer`; empty
    /// when it can. Schemas of different formats are never compatible.
    pub fn read_problems(reader: &Parsed, writer: &Parsed) -> Vec<String> {
        match (reader, writer) {
            (Parsed::Avro(r), Parsed::Avro(w)) => avro::read_problems(r, w),
            (Parsed::Json(r), Parsed::Json(w)) => json::read_problems(r, w),
            (Parsed::Protobuf(r), Parsed::Protobuf(w)) => protobuf::read_problems(r, w),
            _ => vec!["the schema types differ".to_owned()],
        }
    }
}
