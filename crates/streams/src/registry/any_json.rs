//! Values of any schema, read as JSON: for programs that do not know the writer's
//! types in advance (declarative pipelines, tools).

use prost_reflect::SerializeOptions;
use strom_registry::client::serde::{AvroDeserializer, JsonDeserializer, ProtobufDeserializer};

use super::{invalid, SchemaRegistry};
use crate::error::SerdeError;
use crate::serdes::Serde;

/// The wire format a [`RegistryJsonSerde`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryFormat {
    /// Avro: records as objects, unions as their branch's value, enums as their symbol,
    /// bytes and fixed as arrays of numbers, logical types as their numbers.
    Avro,
    /// Protobuf: the canonical JSON mapping with the `.proto` field names and 64-bit
    /// integers as numbers.
    Protobuf,
    /// JSON Schema: the JSON value as written.
    JsonSchema,
}

/// Reads values written with any schema of the registry in `format` (Confluent's wire
/// format), each with its writer's schema, as `serde_json::Value`. It only reads:
/// serializing is an error (write JSON, or a typed serde, instead).
pub struct RegistryJsonSerde {
    registry: SchemaRegistry,
    format: RegistryFormat,
    avro: AvroDeserializer,
    protobuf: ProtobufDeserializer,
    json: JsonDeserializer,
}

impl RegistryJsonSerde {
    /// A reader of `format` values through `registry`.
    pub fn new(registry: &SchemaRegistry, format: RegistryFormat) -> Result<Self, SerdeError> {
        let client = registry.client().clone();
        Ok(RegistryJsonSerde {
            registry: registry.clone(),
            format,
            avro: AvroDeserializer::new(client.clone(), None).map_err(invalid)?,
            protobuf: ProtobufDeserializer::new(client.clone()),
            json: JsonDeserializer::new(client),
        })
    }
}

impl Serde<serde_json::Value> for RegistryJsonSerde {
    fn serialize(&self, _: &serde_json::Value) -> Result<Vec<u8>, SerdeError> {
        Err(SerdeError::Invalid(format!(
            "{:?} values are read here, not written",
            self.format
        )))
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<serde_json::Value, SerdeError> {
        match self.format {
            RegistryFormat::Avro => {
                let value = self.registry.run(self.avro.deserialize(bytes))?;
                serde_json::Value::try_from(value).map_err(invalid)
            }
            RegistryFormat::Protobuf => {
                let message = self.registry.run(self.protobuf.deserialize(bytes))?;
                let options = SerializeOptions::new()
                    .stringify_64_bit_integers(false)
                    .use_proto_field_name(true);
                message
                    .serialize_with_options(serde_json::value::Serializer, &options)
                    .map_err(invalid)
            }
            RegistryFormat::JsonSchema => self.registry.run(self.json.deserialize(bytes)),
        }
    }
}
