//! Serializers and deserializers in Confluent's wire format, against any
//! Confluent-compatible registry: what strom-streams and the pipelines build their
//! Avro, Protobuf and JSON Schema serdes on.
//!
//! A serializer knows its schema. On first use for a subject it registers it
//! (`auto_register`), or looks it up, or (`use_latest_version`) takes the subject's
//! latest version; the id is cached per subject. A deserializer reads the id in front
//! of the payload, fetches that writer schema once (cached by id, references
//! resolved through the registry) and decodes; Avro evolves the data to the reader's
//! schema if one is given.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost_reflect::prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage};
use serde_json::Value;

use super::rest::{ClientError, RegistryClient};
use super::wire::{self, WireError};
use crate::format::avro::AvroSchema;
use crate::format::json::JsonSchema;
use crate::format::protobuf::ProtoSchema;
use crate::format::ResolvedReference;
use crate::types::{SchemaInput, SchemaReference, SchemaType};

/// How deep references of a fetched schema may nest.
const REFERENCE_DEPTH_MAX: usize = 32;

/// Why serializing or deserializing failed.
#[derive(Debug, thiserror::Error)]
pub enum SerdeError {
    /// The registry refused or could not be reached.
    #[error(transparent)]
    Registry(#[from] ClientError),
    /// The payload's framing is wrong.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A schema does not parse.
    #[error("schema: {0}")]
    Schema(String),
    /// The value does not match the schema (JSON Schema validation, Avro encoding).
    #[error("invalid value: {0}")]
    Invalid(String),
    /// The payload does not decode with its writer schema.
    #[error("cannot decode: {0}")]
    Decode(String),
}

/// How a serializer finds the id of its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerdeConfig {
    /// Register the schema under the subject on first use (else look it up).
    pub auto_register: bool,
    /// Use the subject's latest version instead of the serializer's own schema.
    pub use_latest_version: bool,
    /// Ask the registry to normalize the schema.
    pub normalize: bool,
}

impl Default for SerdeConfig {
    fn default() -> Self {
        SerdeConfig {
            auto_register: true,
            use_latest_version: false,
            normalize: false,
        }
    }
}

/// The subject of a topic's values (`{topic}-value`) or keys (`{topic}-key`):
/// Confluent's default `TopicNameStrategy`.
pub fn topic_subject(topic: &str, is_key: bool) -> String {
    format!("{topic}-{}", if is_key { "key" } else { "value" })
}

/// Fetches the references of a schema, transitively, dependencies first.
async fn resolve(
    client: &RegistryClient,
    references: &[SchemaReference],
) -> Result<Vec<ResolvedReference>, SerdeError> {
    let mut out: Vec<ResolvedReference> = Vec::new();
    // Iterative depth-first walk: (reference, children already pushed).
    let mut stack: Vec<(SchemaReference, Option<SchemaInput>, usize)> = references
        .iter()
        .rev()
        .map(|r| (r.clone(), None, 0))
        .collect();
    while let Some((reference, fetched, depth)) = stack.pop() {
        if out.iter().any(|r| r.name == reference.name) {
            continue;
        }
        if depth > REFERENCE_DEPTH_MAX {
            return Err(SerdeError::Schema("references nest too deeply".into()));
        }
        match fetched {
            Some(schema) => out.push(ResolvedReference {
                name: reference.name,
                schema: schema.schema,
            }),
            None => {
                let version = if reference.version == -1 {
                    "latest".to_owned()
                } else {
                    reference.version.to_string()
                };
                let (_, _, schema) = client.version(&reference.subject, &version).await?;
                let children = schema.references.clone();
                stack.push((reference, Some(schema), depth));
                for child in children.into_iter().rev() {
                    stack.push((child, None, depth + 1));
                }
            }
        }
    }
    Ok(out)
}

/// Finds (and caches per subject) the id a serializer writes with.
struct IdCache {
    client: RegistryClient,
    config: SerdeConfig,
    ids: Mutex<HashMap<String, (i32, Arc<SchemaInput>)>>,
}

impl IdCache {
    fn new(client: RegistryClient, config: SerdeConfig) -> Self {
        IdCache {
            client,
            config,
            ids: Mutex::new(HashMap::new()),
        }
    }

    /// The id for `subject` and the schema it names.
    async fn id(
        &self,
        subject: &str,
        input: &SchemaInput,
    ) -> Result<(i32, Arc<SchemaInput>), SerdeError> {
        if let Some(hit) = self
            .ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(subject)
        {
            return Ok(hit.clone());
        }
        let found = if self.config.use_latest_version {
            let (id, _, schema) = self.client.version(subject, "latest").await?;
            (id, Arc::new(schema))
        } else if self.config.auto_register {
            let id = self
                .client
                .register(subject, input, self.config.normalize)
                .await?;
            (id, Arc::new(input.clone()))
        } else {
            let (id, _) = self
                .client
                .lookup(subject, input, self.config.normalize)
                .await?;
            (id, Arc::new(input.clone()))
        };
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(subject.to_owned(), found.clone());
        Ok(found)
    }
}

/// Writer schemas by id, parsed once.
struct SchemaCache<T> {
    client: RegistryClient,
    parsed: Mutex<HashMap<i32, Arc<T>>>,
}

impl<T> SchemaCache<T> {
    fn new(client: RegistryClient) -> Self {
        SchemaCache {
            client,
            parsed: Mutex::new(HashMap::new()),
        }
    }

    async fn get(
        &self,
        id: i32,
        parse: impl FnOnce(&SchemaInput, &[ResolvedReference]) -> Result<T, String>,
    ) -> Result<Arc<T>, SerdeError> {
        if let Some(hit) = self
            .parsed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(Arc::clone(hit));
        }
        let input = self.client.schema_by_id(id).await?;
        let references = resolve(&self.client, &input.references).await?;
        let parsed = Arc::new(parse(&input, &references).map_err(SerdeError::Schema)?);
        self.parsed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::clone(&parsed));
        Ok(parsed)
    }
}

// ---- Avro ---------------------------------------------------------------------------

/// Serializes Avro values with a fixed schema.
pub struct AvroSerializer {
    ids: IdCache,
    input: SchemaInput,
    schema: AvroSchema,
    latest: SchemaCache<AvroSchema>,
}

impl AvroSerializer {
    /// A serializer for `schema` (Avro JSON) with its `references` (fetched now).
    pub async fn new(
        client: RegistryClient,
        schema: &str,
        references: Vec<SchemaReference>,
        config: SerdeConfig,
    ) -> Result<Self, SerdeError> {
        let resolved = resolve(&client, &references).await?;
        let parsed = AvroSchema::parse(schema, &resolved).map_err(SerdeError::Schema)?;
        Ok(AvroSerializer {
            latest: SchemaCache::new(client.clone()),
            ids: IdCache::new(client, config),
            input: SchemaInput {
                schema: schema.to_owned(),
                schema_type: SchemaType::Avro,
                references,
            },
            schema: parsed,
        })
    }

    /// Encodes `value` for `subject`.
    pub async fn serialize(
        &self,
        subject: &str,
        value: apache_avro::types::Value,
    ) -> Result<Vec<u8>, SerdeError> {
        let (id, _) = self.ids.id(subject, &self.input).await?;
        let datum = if self.ids.config.use_latest_version {
            let latest = self
                .latest
                .get(id, |input, refs| AvroSchema::parse(&input.schema, refs))
                .await?;
            encode_avro(latest.schema(), value)
        } else {
            encode_avro(self.schema.schema(), value)
        }
        .map_err(|e| SerdeError::Invalid(e.to_string()))?;
        Ok(wire::encode(id, &datum))
    }
}

/// Resolves `value` against `schema` first (numeric promotions, plain values in
/// unions, as `apache_avro::to_value` builds them), then encodes it.
fn encode_avro(
    schema: &apache_avro::Schema,
    value: apache_avro::types::Value,
) -> Result<Vec<u8>, apache_avro::Error> {
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()?
        .write_value_to_vec(value.resolve(schema)?)
}

/// Deserializes Avro payloads with their writer schema, optionally evolving them to a
/// reader schema.
pub struct AvroDeserializer {
    writers: SchemaCache<AvroSchema>,
    reader: Option<AvroSchema>,
}

impl AvroDeserializer {
    /// A deserializer; `reader` (Avro JSON, no references) is the shape values take.
    pub fn new(client: RegistryClient, reader: Option<&str>) -> Result<Self, SerdeError> {
        let reader = reader
            .map(|r| AvroSchema::parse(r, &[]))
            .transpose()
            .map_err(SerdeError::Schema)?;
        Ok(AvroDeserializer {
            writers: SchemaCache::new(client),
            reader,
        })
    }

    /// Decodes a framed payload.
    pub async fn deserialize(
        &self,
        framed: &[u8],
    ) -> Result<apache_avro::types::Value, SerdeError> {
        let (id, mut payload) = wire::decode(framed)?;
        let writer = self
            .writers
            .get(id, |input, refs| AvroSchema::parse(&input.schema, refs))
            .await?;
        apache_avro::reader::datum::GenericDatumReader::builder(writer.schema())
            .maybe_reader_schema(self.reader.as_ref().map(AvroSchema::schema))
            .build()
            .and_then(|reader| reader.read_value(&mut payload))
            .map_err(|e| SerdeError::Decode(e.to_string()))
    }
}

// ---- JSON Schema --------------------------------------------------------------------

/// Serializes JSON values, validated against a JSON Schema.
pub struct JsonSerializer {
    ids: IdCache,
    input: SchemaInput,
    schema: JsonSchema,
}

impl JsonSerializer {
    /// A serializer for `schema` (a JSON Schema document).
    pub async fn new(
        client: RegistryClient,
        schema: &str,
        references: Vec<SchemaReference>,
        config: SerdeConfig,
    ) -> Result<Self, SerdeError> {
        let resolved = resolve(&client, &references).await?;
        let parsed = JsonSchema::parse(schema, &resolved).map_err(SerdeError::Schema)?;
        Ok(JsonSerializer {
            ids: IdCache::new(client, config),
            input: SchemaInput {
                schema: schema.to_owned(),
                schema_type: SchemaType::Json,
                references,
            },
            schema: parsed,
        })
    }

    /// Validates and encodes `value` for `subject`.
    pub async fn serialize(&self, subject: &str, value: &Value) -> Result<Vec<u8>, SerdeError> {
        if let Some(why) = self.schema.invalid(value) {
            return Err(SerdeError::Invalid(why));
        }
        let (id, _) = self.ids.id(subject, &self.input).await?;
        let text = serde_json::to_vec(value).map_err(|e| SerdeError::Invalid(e.to_string()))?;
        Ok(wire::encode(id, &text))
    }
}

/// Deserializes JSON payloads, validated against their writer schema.
pub struct JsonDeserializer {
    writers: SchemaCache<JsonSchema>,
}

impl JsonDeserializer {
    /// A deserializer.
    pub fn new(client: RegistryClient) -> Self {
        JsonDeserializer {
            writers: SchemaCache::new(client),
        }
    }

    /// Decodes and validates a framed payload.
    pub async fn deserialize(&self, framed: &[u8]) -> Result<Value, SerdeError> {
        let (id, payload) = wire::decode(framed)?;
        let writer = self
            .writers
            .get(id, |input, refs| JsonSchema::parse(&input.schema, refs))
            .await?;
        let value: Value =
            serde_json::from_slice(payload).map_err(|e| SerdeError::Decode(e.to_string()))?;
        if let Some(why) = writer.invalid(&value) {
            return Err(SerdeError::Invalid(why));
        }
        Ok(value)
    }
}

// ---- Protobuf -------------------------------------------------------------------------

/// Confluent's message indexes of a message type: its position among the file's
/// top-level messages, then among each parent's nested types.
pub fn message_indexes(message: &MessageDescriptor) -> Vec<i32> {
    // The descriptor's source path alternates field numbers and indexes:
    // [4, top, 3, nested, 3, nested, ...].
    message.path().iter().skip(1).step_by(2).copied().collect()
}

/// Compiles the text of one `.proto` file, named `name` (the name its descriptor is
/// registered with), into the descriptor a [`ProtobufSerializer`] takes. Its imports
/// may only be Google's well-known types.
pub fn compile_proto(name: &str, text: &str) -> Result<prost_reflect::FileDescriptor, SerdeError> {
    crate::format::protobuf::compile_file(name, text).map_err(SerdeError::Schema)
}

fn is_well_known(file: &str) -> bool {
    file.starts_with("google/protobuf/")
}

/// Serializes Protobuf messages of the types of one file.
pub struct ProtobufSerializer {
    ids: IdCache,
    client: RegistryClient,
    config: SerdeConfig,
    file: prost_reflect::FileDescriptor,
    /// The schema and references, once the dependencies are registered.
    input: tokio::sync::OnceCell<SchemaInput>,
}

impl ProtobufSerializer {
    /// A serializer for the messages of `file` (e.g. a message's `parent_file()`).
    pub fn new(
        client: RegistryClient,
        file: prost_reflect::FileDescriptor,
        config: SerdeConfig,
    ) -> Self {
        ProtobufSerializer {
            ids: IdCache::new(client.clone(), config),
            client,
            config,
            file,
            input: tokio::sync::OnceCell::new(),
        }
    }

    /// The file's schema (a base64 descriptor, as Confluent's serializers send it),
    /// with its imports registered as references under their file names
    /// (well-known imports are resolved by the registry and skipped).
    async fn input(&self) -> Result<&SchemaInput, SerdeError> {
        self.input
            .get_or_try_init(|| async {
                let mut registered: HashMap<String, SchemaReference> = HashMap::new();
                // Dependencies first: a post-order walk of the import graph.
                let mut order: Vec<prost_reflect::FileDescriptor> = Vec::new();
                let mut stack = vec![(self.file.clone(), false)];
                while let Some((file, expanded)) = stack.pop() {
                    if order.iter().any(|f| f.name() == file.name()) {
                        continue;
                    }
                    if expanded {
                        order.push(file);
                        continue;
                    }
                    stack.push((file.clone(), true));
                    for dep in file.dependencies() {
                        if !is_well_known(dep.name()) {
                            stack.push((dep, false));
                        }
                    }
                }
                let mut main = None;
                for file in order {
                    let refs: Vec<SchemaReference> = file
                        .dependencies()
                        .filter_map(|d| registered.get(d.name()).cloned())
                        .collect();
                    let input = SchemaInput {
                        schema: base64_descriptor(&file),
                        schema_type: SchemaType::Protobuf,
                        references: refs,
                    };
                    if file.name() == self.file.name() {
                        main = Some(input);
                        continue;
                    }
                    let subject = file.name().to_owned();
                    if self.config.auto_register {
                        self.client
                            .register(&subject, &input, self.config.normalize)
                            .await?;
                    }
                    let (_, version) = self
                        .client
                        .lookup(&subject, &input, self.config.normalize)
                        .await?;
                    registered.insert(
                        file.name().to_owned(),
                        SchemaReference {
                            name: file.name().to_owned(),
                            subject,
                            version,
                        },
                    );
                }
                main.ok_or_else(|| SerdeError::Schema("the file is missing".into()))
            })
            .await
    }

    /// Encodes `message` (a message type of the serializer's file) for `subject`.
    pub async fn serialize(
        &self,
        subject: &str,
        message: &DynamicMessage,
    ) -> Result<Vec<u8>, SerdeError> {
        let descriptor = message.descriptor();
        if descriptor.parent_file().name() != self.file.name() {
            return Err(SerdeError::Invalid(format!(
                "{} is not a message of {}",
                descriptor.full_name(),
                self.file.name()
            )));
        }
        let input = self.input().await?;
        let (id, _) = self.ids.id(subject, input).await?;
        let mut out = wire::encode(
            id,
            &wire::encode_message_indexes(&message_indexes(&descriptor)),
        );
        message
            .encode(&mut out)
            .map_err(|e| SerdeError::Invalid(e.to_string()))?;
        Ok(out)
    }
}

fn base64_descriptor(file: &prost_reflect::FileDescriptor) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(file.file_descriptor_proto().encode_to_vec())
}

/// Deserializes Protobuf payloads into dynamic messages of their writer's type, or of
/// a reader's type (evolution: the payload is read with the reader's descriptor).
pub struct ProtobufDeserializer {
    writers: SchemaCache<ProtoSchema>,
    reader: Option<MessageDescriptor>,
}

impl ProtobufDeserializer {
    /// A deserializer into the writer's message types.
    pub fn new(client: RegistryClient) -> Self {
        ProtobufDeserializer {
            writers: SchemaCache::new(client),
            reader: None,
        }
    }

    /// A deserializer into messages of `reader`: fields the writer lacks take their
    /// defaults, fields the reader lacks are kept as unknown fields.
    pub fn with_reader(client: RegistryClient, reader: MessageDescriptor) -> Self {
        ProtobufDeserializer {
            writers: SchemaCache::new(client),
            reader: Some(reader),
        }
    }

    /// Decodes a framed payload.
    pub async fn deserialize(&self, framed: &[u8]) -> Result<DynamicMessage, SerdeError> {
        let (id, rest) = wire::decode(framed)?;
        let (indexes, payload) = wire::decode_message_indexes(rest)?;
        let writer = self
            .writers
            .get(id, |input, refs| ProtoSchema::parse(&input.schema, refs))
            .await?;
        let descriptor = writer.message_at(&indexes).ok_or_else(|| {
            SerdeError::Decode(format!("schema {id} has no message at indexes {indexes:?}"))
        })?;
        let descriptor = self.reader.clone().unwrap_or(descriptor);
        DynamicMessage::decode(descriptor, payload).map_err(|e| SerdeError::Decode(e.to_string()))
    }
}
