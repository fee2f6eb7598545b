//! The registry's vocabulary: schema types, references, compatibility levels, modes.
//! These are also the JSON shapes of the REST API and of the `_schemas` records.

use serde::{Deserialize, Serialize};

use crate::error::RegistryError;

/// A schema format. `AVRO` is the default when a request names none.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    /// Apache Avro (JSON schema text).
    #[default]
    Avro,
    /// JSON Schema, drafts 4 to 2020-12.
    Json,
    /// Protocol Buffers: `.proto` text or a base64 `FileDescriptorProto`.
    Protobuf,
}

impl SchemaType {
    /// The name the REST API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    /// Parses a request's `schemaType`, case-insensitively as Confluent does.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        match text.to_ascii_uppercase().as_str() {
            "AVRO" => Ok(SchemaType::Avro),
            "JSON" => Ok(SchemaType::Json),
            "PROTOBUF" => Ok(SchemaType::Protobuf),
            _ => Err(RegistryError::UnprocessableEntity(format!(
                "Invalid schema type {text}"
            ))),
        }
    }

    /// Whether this is the default type (omitted from responses, as Confluent does).
    pub fn is_avro(&self) -> bool {
        *self == SchemaType::Avro
    }
}

/// A named dependency of a schema: another subject's version. `name` is how the schema
/// refers to it (an Avro full name, a `.proto` import path, a JSON Schema `$ref` URL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SchemaReference {
    /// How the referring schema names the dependency.
    pub name: String,
    /// The subject holding the dependency.
    pub subject: String,
    /// Its version (`-1` means the latest at registration time).
    pub version: i32,
}

/// A schema as a client submits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaInput {
    /// The schema text.
    pub schema: String,
    /// Its format.
    pub schema_type: SchemaType,
    /// Its dependencies.
    pub references: Vec<SchemaReference>,
}

/// A compatibility level: which earlier versions a new schema is checked against and
/// in which direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatibilityLevel {
    /// No check.
    None,
    /// The new schema reads data written with the latest version (the default).
    #[default]
    Backward,
    /// The new schema reads data written with every earlier version.
    BackwardTransitive,
    /// The latest version reads data written with the new schema.
    Forward,
    /// Every earlier version reads data written with the new schema.
    ForwardTransitive,
    /// Backward and forward against the latest version.
    Full,
    /// Backward and forward against every earlier version.
    FullTransitive,
}

impl CompatibilityLevel {
    /// Parses a level, case-insensitively (Confluent accepts `backward` and `BACKWARD`).
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        Ok(match text.to_ascii_uppercase().as_str() {
            "NONE" => CompatibilityLevel::None,
            "BACKWARD" => CompatibilityLevel::Backward,
            "BACKWARD_TRANSITIVE" => CompatibilityLevel::BackwardTransitive,
            "FORWARD" => CompatibilityLevel::Forward,
            "FORWARD_TRANSITIVE" => CompatibilityLevel::ForwardTransitive,
            "FULL" => CompatibilityLevel::Full,
            "FULL_TRANSITIVE" => CompatibilityLevel::FullTransitive,
            _ => return Err(RegistryError::InvalidCompatibilityLevel),
        })
    }

    /// The level's name in the REST API.
    pub fn as_str(self) -> &'static str {
        match self {
            CompatibilityLevel::None => "NONE",
            CompatibilityLevel::Backward => "BACKWARD",
            CompatibilityLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityLevel::Forward => "FORWARD",
            CompatibilityLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityLevel::Full => "FULL",
            CompatibilityLevel::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether the new schema must read data of the old ones.
    pub fn backward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Backward
                | CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    /// Whether the old schemas must read data of the new one.
    pub fn forward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Forward
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    /// Whether every earlier version is checked, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::FullTransitive
        )
    }
}

/// What the registry (or a subject) accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mode {
    /// Reads and writes (the default).
    #[default]
    Readwrite,
    /// Reads only; registrations and deletes are refused.
    Readonly,
    /// Reads only, but the config may still change.
    ReadonlyOverride,
    /// Registrations may carry their own id and version (migrations from another registry).
    Import,
}

impl Mode {
    /// Parses a mode, case-insensitively.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        Ok(match text.to_ascii_uppercase().as_str() {
            "READWRITE" => Mode::Readwrite,
            "READONLY" => Mode::Readonly,
            "READONLY_OVERRIDE" => Mode::ReadonlyOverride,
            "IMPORT" => Mode::Import,
            _ => return Err(RegistryError::InvalidMode),
        })
    }

    /// The mode's name in the REST API.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Readwrite => "READWRITE",
            Mode::Readonly => "READONLY",
            Mode::ReadonlyOverride => "READONLY_OVERRIDE",
            Mode::Import => "IMPORT",
        }
    }

    /// Whether schemas may be registered or deleted.
    pub fn writable(self) -> bool {
        matches!(self, Mode::Readwrite | Mode::Import)
    }
}
