//! Protobuf messages in Confluent's wire format (with message indexes).

use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage};
use strom_registry::client::serde::{ProtobufDeserializer, ProtobufSerializer, SerdeConfig};

use super::SchemaRegistry;
use crate::error::SerdeError;
use crate::serdes::Serde;

/// Messages of one type, as dynamic messages. The serializer registers the message's
/// file (its imports as references, Google's well-known types left to the registry) and
/// writes Confluent's message indexes; the deserializer checks the writer's schema and
/// reads the payload as the serde's message type (evolution: fields it lacks take their
/// defaults, fields it does not know are kept as unknown fields). Generated `prost`
/// types convert with `transcode_to_dynamic` and `transcode_to`.
pub struct ProtobufSerde {
    registry: SchemaRegistry,
    subject: String,
    message: MessageDescriptor,
    serializer: ProtobufSerializer,
    deserializer: ProtobufDeserializer,
}

impl ProtobufSerde {
    /// A serde for `subject` (see [`super::topic_subject`]) and messages of `message`
    /// (e.g. from [`super::compile_proto`]).
    pub fn new(
        registry: &SchemaRegistry,
        subject: &str,
        message: MessageDescriptor,
        config: SerdeConfig,
    ) -> Self {
        let client = registry.client().clone();
        ProtobufSerde {
            registry: registry.clone(),
            subject: subject.to_owned(),
            serializer: ProtobufSerializer::new(client.clone(), message.parent_file(), config),
            deserializer: ProtobufDeserializer::with_reader(client, message.clone()),
            message,
        }
    }
}

impl Serde<DynamicMessage> for ProtobufSerde {
    fn serialize(&self, value: &DynamicMessage) -> Result<Vec<u8>, SerdeError> {
        if value.descriptor() != self.message {
            return Err(SerdeError::Invalid(format!(
                "a {} message where the serde writes {}",
                value.descriptor().full_name(),
                self.message.full_name()
            )));
        }
        self.registry
            .run(self.serializer.serialize(&self.subject, value))
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<DynamicMessage, SerdeError> {
        self.registry.run(self.deserializer.deserialize(bytes))
    }
}
