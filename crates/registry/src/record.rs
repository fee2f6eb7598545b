//! The records of the `_schemas` topic, in Confluent's key/value format, so that a
//! registry can be exported to or imported from a Confluent deployment.
//!
//! Every change to the registry is one record; the state is the fold of all records in
//! order. Keys are JSON objects whose bytes are stable for one logical key (fixed field
//! order), so a compacted topic keeps exactly the latest value per key:
//!
//! | key | value | meaning |
//! | --- | --- | --- |
//! | `{"keytype":"SCHEMA","subject":S,"version":V,"magic":1}` | `{"subject","version","id","schemaType","references","schema","deleted"}` | version V of S (soft-deleted if `deleted`) |
//! | same | tombstone (no value) | version V of S permanently deleted |
//! | `{"keytype":"CONFIG","subject":S or null,"magic":0}` | `{"compatibilityLevel":L}` or tombstone | compatibility of S, or the global one |
//! | `{"keytype":"MODE","subject":S or null,"magic":0}` | `{"mode":M}` or tombstone | mode of S, or the global one |
//! | `{"keytype":"DELETE_SUBJECT","subject":S,"magic":0}` | `{"subject":S,"version":V}` | every version of S up to V soft-deleted |
//! | `{"keytype":"CLEAR_SUBJECT","subject":S,"magic":0}` | `{"subject":S}` | every soft-deleted version of S permanently deleted |
//! | `{"keytype":"NOOP","magic":0}` | anything | nothing (Confluent writes it to find the end of the topic) |
//!
//! Keys of other types (newer Confluent features) are skipped on replay.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::{CompatibilityLevel, Mode, SchemaReference, SchemaType};

/// The key of a `_schemas` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// A version of a subject.
    Schema {
        /// The subject.
        subject: String,
        /// The version.
        version: i32,
    },
    /// A compatibility level; `None` is the global one.
    Config(Option<String>),
    /// A mode; `None` is the global one.
    Mode(Option<String>),
    /// A soft delete of a whole subject.
    DeleteSubject(String),
    /// A permanent delete of a subject's soft-deleted versions.
    ClearSubject(String),
    /// Nothing.
    Noop,
}

/// The value of a SCHEMA record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaValue {
    /// The subject.
    pub subject: String,
    /// The version under the subject.
    pub version: i32,
    /// The global id.
    pub id: i32,
    /// The format; absent means Avro.
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "SchemaType::is_avro"
    )]
    pub schema_type: SchemaType,
    /// Dependencies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<SchemaReference>,
    /// The schema text as stored.
    pub schema: String,
    /// Soft-deleted.
    #[serde(default)]
    pub deleted: bool,
}

/// One `_schemas` record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A version registered, or its `deleted` flag changed.
    Schema(SchemaValue),
    /// A version permanently deleted.
    SchemaTombstone {
        /// The subject.
        subject: String,
        /// The version.
        version: i32,
    },
    /// A compatibility level set (`Some`) or removed (`None`).
    Config {
        /// The subject, or `None` for the global level.
        subject: Option<String>,
        /// The level.
        level: Option<CompatibilityLevel>,
    },
    /// A mode set (`Some`) or removed (`None`).
    Mode {
        /// The subject, or `None` for the global mode.
        subject: Option<String>,
        /// The mode.
        mode: Option<Mode>,
    },
    /// Every version of the subject up to `version` soft-deleted.
    DeleteSubject {
        /// The subject.
        subject: String,
        /// The highest version deleted.
        version: i32,
    },
    /// Every soft-deleted version of the subject permanently deleted.
    ClearSubject {
        /// The subject.
        subject: String,
    },
}

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("invalid _schemas record: {0}")]
pub struct RecordError(String);

#[derive(Serialize)]
struct SchemaKeyJson<'a> {
    keytype: &'a str,
    subject: &'a str,
    version: i32,
    magic: i32,
}

#[derive(Serialize)]
struct SubjectKeyJson<'a> {
    keytype: &'a str,
    subject: Option<&'a str>,
    magic: i32,
}

impl RecordKey {
    /// The key's bytes, identical for the same logical key (compaction depends on it).
    pub fn encode(&self) -> Vec<u8> {
        let (keytype, subject) = match self {
            RecordKey::Schema { subject, version } => {
                return to_vec(&SchemaKeyJson {
                    keytype: "SCHEMA",
                    subject,
                    version: *version,
                    magic: 1,
                })
            }
            RecordKey::Noop => return br#"{"keytype":"NOOP","magic":0}"#.to_vec(),
            RecordKey::Config(subject) => ("CONFIG", subject.as_deref()),
            RecordKey::Mode(subject) => ("MODE", subject.as_deref()),
            RecordKey::DeleteSubject(subject) => ("DELETE_SUBJECT", Some(subject.as_str())),
            RecordKey::ClearSubject(subject) => ("CLEAR_SUBJECT", Some(subject.as_str())),
        };
        to_vec(&SubjectKeyJson {
            keytype,
            subject,
            magic: 0,
        })
    }

    /// Decodes a key; `Ok(None)` for key types this registry does not know (skipped).
    pub fn decode(bytes: &[u8]) -> Result<Option<RecordKey>, RecordError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| RecordError(format!("key is not JSON: {e}")))?;
        let keytype = value
            .get("keytype")
            .and_then(Value::as_str)
            .ok_or_else(|| RecordError("key without keytype".into()))?;
        let subject = value
            .get("subject")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let need_subject = || {
            subject
                .clone()
                .ok_or_else(|| RecordError(format!("{keytype} key without subject")))
        };
        Ok(Some(match keytype {
            "SCHEMA" => {
                let version = value
                    .get("version")
                    .and_then(Value::as_i64)
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(|| RecordError("SCHEMA key without version".into()))?;
                RecordKey::Schema {
                    subject: need_subject()?,
                    version,
                }
            }
            "CONFIG" => RecordKey::Config(subject),
            "MODE" => RecordKey::Mode(subject),
            "DELETE_SUBJECT" => RecordKey::DeleteSubject(need_subject()?),
            "CLEAR_SUBJECT" => RecordKey::ClearSubject(need_subject()?),
            "NOOP" => RecordKey::Noop,
            _ => return Ok(None),
        }))
    }
}

impl Record {
    /// The record's key.
    pub fn key(&self) -> RecordKey {
        match self {
            Record::Schema(value) => RecordKey::Schema {
                subject: value.subject.clone(),
                version: value.version,
            },
            Record::SchemaTombstone { subject, version } => RecordKey::Schema {
                subject: subject.clone(),
                version: *version,
            },
            Record::Config { subject, .. } => RecordKey::Config(subject.clone()),
            Record::Mode { subject, .. } => RecordKey::Mode(subject.clone()),
            Record::DeleteSubject { subject, .. } => RecordKey::DeleteSubject(subject.clone()),
            Record::ClearSubject { subject } => RecordKey::ClearSubject(subject.clone()),
        }
    }

    /// The record as key and value bytes (`None` is a tombstone).
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let value = match self {
            Record::Schema(value) => Some(to_vec(value)),
            Record::SchemaTombstone { .. } => None,
            Record::Config { level, .. } => {
                level.map(|l| to_vec(&serde_json::json!({ "compatibilityLevel": l.as_str() })))
            }
            Record::Mode { mode, .. } => {
                mode.map(|m| to_vec(&serde_json::json!({ "mode": m.as_str() })))
            }
            Record::DeleteSubject { subject, version } => Some(to_vec(
                &serde_json::json!({ "subject": subject, "version": version }),
            )),
            Record::ClearSubject { subject } => {
                Some(to_vec(&serde_json::json!({ "subject": subject })))
            }
        };
        (self.key().encode(), value)
    }

    /// Decodes a record; `Ok(None)` for records that change nothing (NOOP, unknown key
    /// types, tombstones of keys that have no tombstone meaning).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<Record>, RecordError> {
        let Some(key) = RecordKey::decode(key)? else {
            return Ok(None);
        };
        let json = |bytes: &[u8]| -> Result<Value, RecordError> {
            serde_json::from_slice(bytes)
                .map_err(|e| RecordError(format!("value is not JSON: {e}")))
        };
        Ok(match (key, value) {
            (RecordKey::Noop, _) => None,
            (RecordKey::Schema { subject, version }, None) => {
                Some(Record::SchemaTombstone { subject, version })
            }
            (RecordKey::Schema { .. }, Some(bytes)) => Some(Record::Schema(
                serde_json::from_slice(bytes)
                    .map_err(|e| RecordError(format!("SCHEMA value: {e}")))?,
            )),
            (RecordKey::Config(subject), None) => Some(Record::Config {
                subject,
                level: None,
            }),
            (RecordKey::Config(subject), Some(bytes)) => {
                let value = json(bytes)?;
                let level = value
                    .get("compatibilityLevel")
                    .or_else(|| value.get("compatibility"))
                    .and_then(Value::as_str)
                    .map(CompatibilityLevel::parse)
                    .transpose()
                    .map_err(|e| RecordError(format!("CONFIG value: {e}")))?;
                Some(Record::Config { subject, level })
            }
            (RecordKey::Mode(subject), None) => Some(Record::Mode {
                subject,
                mode: None,
            }),
            (RecordKey::Mode(subject), Some(bytes)) => {
                let value = json(bytes)?;
                let mode = value
                    .get("mode")
                    .and_then(Value::as_str)
                    .map(Mode::parse)
                    .transpose()
                    .map_err(|e| RecordError(format!("MODE value: {e}")))?;
                Some(Record::Mode { subject, mode })
            }
            (RecordKey::DeleteSubject(_), None) | (RecordKey::ClearSubject(_), None) => None,
            (RecordKey::DeleteSubject(subject), Some(bytes)) => {
                let version = json(bytes)?
                    .get("version")
                    .and_then(Value::as_i64)
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(|| RecordError("DELETE_SUBJECT value without version".into()))?;
                Some(Record::DeleteSubject { subject, version })
            }
            (RecordKey::ClearSubject(subject), Some(_)) => Some(Record::ClearSubject { subject }),
        })
    }
}

fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs and JSON values cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_use_confluents_bytes() {
        let key = RecordKey::Schema {
            subject: "orders-value".into(),
            version: 3,
        };
        assert_eq!(
            key.encode(),
            br#"{"keytype":"SCHEMA","subject":"orders-value","version":3,"magic":1}"#
        );
        assert_eq!(
            RecordKey::Config(None).encode(),
            br#"{"keytype":"CONFIG","subject":null,"magic":0}"#
        );
        assert_eq!(
            RecordKey::DeleteSubject("s".into()).encode(),
            br#"{"keytype":"DELETE_SUBJECT","subject":"s","magic":0}"#
        );
    }

    #[test]
    fn records_round_trip() {
        let records = [
            Record::Schema(SchemaValue {
                subject: "s".into(),
                version: 1,
                id: 7,
                schema_type: SchemaType::Protobuf,
                references: vec![SchemaReference {
                    name: "dep.proto".into(),
                    subject: "dep".into(),
                    version: 1,
                }],
                schema: "syntax = \"proto3\";".into(),
                deleted: true,
            }),
            Record::SchemaTombstone {
                subject: "s".into(),
                version: 1,
            },
            Record::Config {
                subject: None,
                level: Some(CompatibilityLevel::FullTransitive),
            },
            Record::Config {
                subject: Some("s".into()),
                level: None,
            },
            Record::Mode {
                subject: Some("s".into()),
                mode: Some(Mode::Readonly),
            },
            Record::DeleteSubject {
                subject: "s".into(),
                version: 4,
            },
            Record::ClearSubject {
                subject: "s".into(),
            },
        ];
        for record in records {
            let (key, value) = record.encode();
            let decoded = Record::decode(&key, value.as_deref()).expect("decodes");
            assert_eq!(decoded, Some(record));
        }
    }

    #[test]
    fn confluent_records_decode() {
        // As Confluent Schema Registry writes them.
        let record = Record::decode(
            br#"{"keytype":"SCHEMA","subject":"t-value","version":1,"magic":1}"#,
            Some(br#"{"subject":"t-value","version":1,"id":1,"schema":"\"string\"","deleted":false}"#),
        )
        .expect("decodes");
        let Some(Record::Schema(value)) = record else {
            panic!("not a schema record: {record:?}");
        };
        assert_eq!(value.schema_type, SchemaType::Avro);
        assert_eq!(value.schema, "\"string\"");
        assert_eq!(
            Record::decode(br#"{"keytype":"NOOP","magic":0}"#, Some(b"{}")).expect("noop"),
            None
        );
        assert_eq!(
            Record::decode(br#"{"keytype":"KEK","magic":0}"#, Some(b"{}")).expect("unknown"),
            None
        );
        assert!(Record::decode(b"not json", None).is_err());
    }
}
