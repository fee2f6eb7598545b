//! The registry's errors, each with the Confluent error code clients branch on.
//!
//! Confluent's REST API answers every failure with `{"error_code": N, "message": …}`.
//! Five-digit codes carry their HTTP status in the first three digits (40401 → 404);
//! the HTTP layer derives the status from the code, so this enum is the one place
//! where codes are chosen.

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The subject does not exist, or all of its versions are soft-deleted.
    #[error("Subject '{subject}' not found.")]
    SubjectNotFound {
        /// The subject asked for.
        subject: String,
    },
    /// The subject exists but not this version.
    #[error("Version {version} not found.")]
    VersionNotFound {
        /// The version asked for, as the client spelled it.
        version: String,
    },
    /// No schema with this id, or no such schema under the subject (lookup).
    #[error("Schema {what} not found")]
    SchemaNotFound {
        /// The id or a description of what was looked up.
        what: String,
    },
    /// The subject was already soft-deleted (40404).
    #[error("Subject '{subject}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted {
        /// The subject.
        subject: String,
    },
    /// A permanent delete of a subject that was not soft-deleted first (40405).
    #[error("Subject '{subject}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted {
        /// The subject.
        subject: String,
    },
    /// The version was already soft-deleted (40406).
    #[error("Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently")]
    VersionSoftDeleted {
        /// The subject.
        subject: String,
        /// The version.
        version: i32,
    },
    /// A permanent delete of a version that was not soft-deleted first (40407).
    #[error("Subject '{subject}' Version {version} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted {
        /// The subject.
        subject: String,
        /// The version.
        version: i32,
    },
    /// The subject has no compatibility level of its own (40408).
    #[error("Subject '{subject}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound {
        /// The subject.
        subject: String,
    },
    /// The subject has no mode of its own (40409).
    #[error("Subject '{subject}' does not have subject-level mode configured")]
    SubjectModeNotFound {
        /// The subject.
        subject: String,
    },
    /// The schema is incompatible with earlier versions under the subject's level.
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: {}", messages.join("; "))]
    Incompatible {
        /// The subject.
        subject: String,
        /// What is incompatible, one message per problem.
        messages: Vec<String>,
    },
    /// The schema does not parse, or a reference does not resolve (42201).
    #[error("Invalid schema: {reason}")]
    InvalidSchema {
        /// Why.
        reason: String,
    },
    /// A version that is neither a positive integer, -1 nor `latest` (42202).
    #[error("The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion {
        /// The version as the client spelled it.
        version: String,
    },
    /// An unknown compatibility level (42203).
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibilityLevel,
    /// An unknown mode (42204).
    #[error("Invalid mode. Valid values are READWRITE, READONLY, READONLY_OVERRIDE and IMPORT")]
    InvalidMode,
    /// The mode forbids the operation (42205).
    #[error("{0}")]
    OperationNotPermitted(String),
    /// The schema is referenced by others and cannot be deleted (42206).
    #[error("One or more references exist to the schema {{subject={subject},version={version}}}")]
    ReferenceExists {
        /// The subject.
        subject: String,
        /// The version.
        version: i32,
    },
    /// A request body that is not the JSON the endpoint takes (422).
    #[error("{0}")]
    UnprocessableEntity(String),
    /// The backing store failed (50001).
    #[error("Error while storing the schema: {0}")]
    Store(String),
    /// The registry is not serving yet or any more (50003).
    #[error("{0}")]
    Unavailable(String),
}

impl RegistryError {
    /// Confluent's `error_code` for this error.
    pub fn code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound { .. } => 40401,
            RegistryError::VersionNotFound { .. } => 40402,
            RegistryError::SchemaNotFound { .. } => 40403,
            RegistryError::SubjectSoftDeleted { .. } => 40404,
            RegistryError::SubjectNotSoftDeleted { .. } => 40405,
            RegistryError::VersionSoftDeleted { .. } => 40406,
            RegistryError::VersionNotSoftDeleted { .. } => 40407,
            RegistryError::SubjectConfigNotFound { .. } => 40408,
            RegistryError::SubjectModeNotFound { .. } => 40409,
            RegistryError::Incompatible { .. } => 409,
            RegistryError::InvalidSchema { .. } => 42201,
            RegistryError::InvalidVersion { .. } => 42202,
            RegistryError::InvalidCompatibilityLevel => 42203,
            RegistryError::InvalidMode => 42204,
            RegistryError::OperationNotPermitted(_) => 42205,
            RegistryError::ReferenceExists { .. } => 42206,
            RegistryError::UnprocessableEntity(_) => 422,
            RegistryError::Store(_) => 50001,
            RegistryError::Unavailable(_) => 50003,
        }
    }

    /// The HTTP status of this error: the first three digits of a five-digit code.
    pub fn http_status(&self) -> u16 {
        let code = self.code();
        let status = if code >= 10_000 { code / 100 } else { code };
        // Every code above is in range; a u16 always holds it.
        u16::try_from(status).unwrap_or(500)
    }
}

/// Shorthand for results of registry operations.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
