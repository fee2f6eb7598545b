//! Avro values of any `serde` type, in Confluent's wire format.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use strom_registry::client::serde::{AvroDeserializer, AvroSerializer, SerdeConfig};

use super::{config_error, invalid, SchemaRegistry};
use crate::error::{SerdeError, StreamsError};
use crate::serdes::Serde;

/// Values of `T` as Avro with one schema: the writer's schema when serializing (per
/// the [`SerdeConfig`]: registered on first use, looked up, or the subject's latest
/// version) and the reader's schema when deserializing, so records written with an
/// older or newer compatible schema evolve into `T`'s shape (added fields take their
/// defaults). `T` maps to the schema as `apache_avro::to_value` and `from_value` do:
/// struct fields by name, `Option` to a union with `null`.
pub struct AvroSerde<T> {
    registry: SchemaRegistry,
    subject: String,
    serializer: AvroSerializer,
    deserializer: AvroDeserializer,
    _values: PhantomData<fn() -> T>,
}

impl<T> AvroSerde<T> {
    /// A serde for `subject` (see [`super::topic_subject`]) with `schema` (Avro JSON).
    pub fn new(
        registry: &SchemaRegistry,
        subject: &str,
        schema: &str,
        config: SerdeConfig,
    ) -> Result<Self, StreamsError> {
        let client = registry.client().clone();
        let serializer = registry
            .block_on(AvroSerializer::new(
                client.clone(),
                schema,
                Vec::new(),
                config,
            ))
            .map_err(|e| config_error("Avro", subject, e))?;
        let deserializer = AvroDeserializer::new(client, Some(schema))
            .map_err(|e| config_error("Avro", subject, e))?;
        Ok(AvroSerde {
            registry: registry.clone(),
            subject: subject.to_owned(),
            serializer,
            deserializer,
            _values: PhantomData,
        })
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for AvroSerde<T> {
    fn serialize(&self, value: &T) -> Result<Vec<u8>, SerdeError> {
        let value = apache_avro::to_value(value).map_err(invalid)?;
        self.registry
            .run(self.serializer.serialize(&self.subject, value))
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError> {
        let value = self.registry.run(self.deserializer.deserialize(bytes))?;
        apache_avro::from_value(&value).map_err(invalid)
    }
}
