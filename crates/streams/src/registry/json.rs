//! JSON values of any `serde` type, validated against a JSON Schema, in Confluent's
//! wire format.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use strom_registry::client::serde::{JsonDeserializer, JsonSerializer, SerdeConfig};

use super::{config_error, invalid, SchemaRegistry};
use crate::error::{SerdeError, StreamsError};
use crate::serdes::Serde;

/// Values of `T` as JSON, validated against the serde's JSON Schema when serializing
/// and against the writer's schema (fetched by id) when deserializing; `T`'s own
/// `serde` attributes (`default`, optional fields) make it read older and newer shapes.
pub struct JsonSchemaSerde<T> {
    registry: SchemaRegistry,
    subject: String,
    serializer: JsonSerializer,
    deserializer: JsonDeserializer,
    _values: PhantomData<fn() -> T>,
}

impl<T> JsonSchemaSerde<T> {
    /// A serde for `subject` (see [`super::topic_subject`]) with `schema` (a JSON
    /// Schema document, draft 4 to 2020-12).
    pub fn new(
        registry: &SchemaRegistry,
        subject: &str,
        schema: &str,
        config: SerdeConfig,
    ) -> Result<Self, StreamsError> {
        let client = registry.client().clone();
        let serializer = registry
            .block_on(JsonSerializer::new(
                client.clone(),
                schema,
                Vec::new(),
                config,
            ))
            .map_err(|e| config_error("JSON Schema", subject, e))?;
        Ok(JsonSchemaSerde {
            registry: registry.clone(),
            subject: subject.to_owned(),
            serializer,
            deserializer: JsonDeserializer::new(client),
            _values: PhantomData,
        })
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for JsonSchemaSerde<T> {
    fn serialize(&self, value: &T) -> Result<Vec<u8>, SerdeError> {
        let value = serde_json::to_value(value).map_err(invalid)?;
        self.registry
            .run(self.serializer.serialize(&self.subject, &value))
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError> {
        let value = self.registry.run(self.deserializer.deserialize(bytes))?;
        serde_json::from_value(value).map_err(invalid)
    }
}
