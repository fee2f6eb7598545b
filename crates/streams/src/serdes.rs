//! Serializers and deserializers: bytes, strings, integers (big-endian, as Kafka's Java
//! serdes), JSON through serde, [`Nullable`] for Kafka's null keys and tombstones, and the
//! [`Serde`] trait for your own formats.

use std::marker::PhantomData;

use crate::error::SerdeError;
use crate::record::Headers;

/// Turns values of `T` into bytes and back. Implement it for your own formats.
///
/// A Kafka key or value may be null (absent). By default a null payload is a
/// [`SerdeError::Null`] and every value serializes to a non-null payload; [`Nullable`]
/// maps null to `None` and `None` to null.
///
/// Sources and sinks call the `_with_headers` methods, so a serde may read and write
/// record headers (the encryption envelope names its key in one); by default they
/// ignore the headers.
pub trait Serde<T>: Send + Sync + 'static {
    /// Encodes a value.
    fn serialize(&self, value: &T) -> Result<Vec<u8>, SerdeError>;
    /// Decodes a non-null payload.
    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError>;
    /// Encodes a value as a possibly-null payload.
    fn serialize_nullable(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        self.serialize(value).map(Some)
    }
    /// Decodes a possibly-null payload.
    fn deserialize_nullable(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        match bytes {
            Some(bytes) => self.deserialize(bytes),
            None => Err(SerdeError::Null),
        }
    }
    /// Encodes a value as a possibly-null payload of a record with `headers`, which the
    /// serde may extend.
    fn serialize_with_headers(
        &self,
        value: &T,
        headers: &mut Headers,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let _ = headers;
        self.serialize_nullable(value)
    }
    /// Decodes a possibly-null payload of a record with `headers`.
    fn deserialize_with_headers(
        &self,
        bytes: Option<&[u8]>,
        headers: &Headers,
    ) -> Result<T, SerdeError> {
        let _ = headers;
        self.deserialize_nullable(bytes)
    }
}

/// Raw bytes, unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;

impl Serde<Vec<u8>> for BytesSerde {
    fn serialize(&self, value: &Vec<u8>) -> Result<Vec<u8>, SerdeError> {
        Ok(value.clone())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Vec<u8>, SerdeError> {
        Ok(bytes.to_vec())
    }
}

/// UTF-8 strings.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;

impl Serde<String> for StringSerde {
    fn serialize(&self, value: &String) -> Result<Vec<u8>, SerdeError> {
        Ok(value.as_bytes().to_vec())
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<String, SerdeError> {
        String::from_utf8(bytes.to_vec()).map_err(|e| SerdeError::Invalid(e.to_string()))
    }
}

macro_rules! int_serde {
    ($name:ident, $ty:ty, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl Serde<$ty> for $name {
            fn serialize(&self, value: &$ty) -> Result<Vec<u8>, SerdeError> {
                Ok(value.to_be_bytes().to_vec())
            }
            fn deserialize(&self, bytes: &[u8]) -> Result<$ty, SerdeError> {
                let array: [u8; std::mem::size_of::<$ty>()] =
                    bytes.try_into().map_err(|_| SerdeError::Length {
                        expected: std::mem::size_of::<$ty>(),
                        got: bytes.len(),
                    })?;
                Ok(<$ty>::from_be_bytes(array))
            }
        }
    };
}

int_serde!(I32Serde, i32, "Big-endian `i32` (Kafka's `IntegerSerde`).");
int_serde!(I64Serde, i64, "Big-endian `i64` (Kafka's `LongSerde`).");
int_serde!(U32Serde, u32, "Big-endian `u32`.");
int_serde!(U64Serde, u64, "Big-endian `u64`.");

/// JSON through `serde`.
pub struct JsonSerde<T>(PhantomData<fn() -> T>);

impl<T> JsonSerde<T> {
    /// A JSON serde for `T`.
    pub fn new() -> Self {
        JsonSerde(PhantomData)
    }
}

impl<T> Default for JsonSerde<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for JsonSerde<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T> Serde<T> for JsonSerde<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn serialize(&self, value: &T) -> Result<Vec<u8>, SerdeError> {
        serde_json::to_vec(value).map_err(|e| SerdeError::Invalid(e.to_string()))
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError> {
        serde_json::from_slice(bytes).map_err(|e| SerdeError::Invalid(e.to_string()))
    }
}

/// Wraps a serde so that a null payload is `None` and `None` is a null payload (Kafka
/// tombstones, null keys).
#[derive(Debug, Clone, Copy, Default)]
pub struct Nullable<S>(pub S);

impl<T, S: Serde<T>> Serde<Option<T>> for Nullable<S> {
    fn serialize(&self, value: &Option<T>) -> Result<Vec<u8>, SerdeError> {
        match value {
            Some(v) => self.0.serialize(v),
            None => Err(SerdeError::Null),
        }
    }
    fn deserialize(&self, bytes: &[u8]) -> Result<Option<T>, SerdeError> {
        self.0.deserialize(bytes).map(Some)
    }
    fn serialize_nullable(&self, value: &Option<T>) -> Result<Option<Vec<u8>>, SerdeError> {
        match value {
            Some(v) => self.0.serialize(v).map(Some),
            None => Ok(None),
        }
    }
    fn deserialize_nullable(&self, bytes: Option<&[u8]>) -> Result<Option<T>, SerdeError> {
        match bytes {
            Some(bytes) => self.0.deserialize(bytes).map(Some),
            None => Ok(None),
        }
    }
    fn serialize_with_headers(
        &self,
        value: &Option<T>,
        headers: &mut Headers,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        match value {
            Some(v) => self.0.serialize_with_headers(v, headers),
            None => Ok(None),
        }
    }
    fn deserialize_with_headers(
        &self,
        bytes: Option<&[u8]>,
        headers: &Headers,
    ) -> Result<Option<T>, SerdeError> {
        match bytes {
            Some(bytes) => self
                .0
                .deserialize_with_headers(Some(bytes), headers)
                .map(Some),
            None => Ok(None),
        }
    }
}

/// The unit type: any payload (or null) is `()`; `()` is written as null. For keyless topics.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitSerde;

impl Serde<()> for UnitSerde {
    fn serialize(&self, _value: &()) -> Result<Vec<u8>, SerdeError> {
        Ok(Vec::new())
    }
    fn deserialize(&self, _bytes: &[u8]) -> Result<(), SerdeError> {
        Ok(())
    }
    fn serialize_nullable(&self, _value: &()) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(None)
    }
    fn deserialize_nullable(&self, _bytes: Option<&[u8]>) -> Result<(), SerdeError> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian_like_kafka() {
        assert_eq!(
            I64Serde.serialize(&1).unwrap(),
            vec![0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(I32Serde.deserialize(&[0, 0, 1, 0]).unwrap(), 256);
        assert_eq!(
            I64Serde.deserialize(&[1, 2]),
            Err(SerdeError::Length {
                expected: 8,
                got: 2
            })
        );
    }

    #[test]
    fn nullable_maps_tombstones() {
        let s = Nullable(StringSerde);
        assert_eq!(s.deserialize_nullable(None).unwrap(), None);
        assert_eq!(s.serialize_nullable(&None).unwrap(), None);
        assert_eq!(
            s.serialize_nullable(&Some("a".to_string())).unwrap(),
            Some(b"a".to_vec())
        );
        assert_eq!(
            StringSerde.deserialize_nullable(None),
            Err(SerdeError::Null)
        );
    }

    #[test]
    fn json_round_trips() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct P {
            id: String,
            amount: i64,
        }
        let s = JsonSerde::<P>::new();
        let p = P {
            id: "x".into(),
            amount: 5,
        };
        assert_eq!(s.deserialize(&s.serialize(&p).unwrap()).unwrap(), p);
        assert!(s.deserialize(b"{").is_err());
    }
}
