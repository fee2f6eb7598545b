//! The registry's state: subjects, versions, schemas by global id, configs and modes.
//! Pure: it is the fold of the `_schemas` records ([`Model::apply`]), and every change
//! is computed as records first ([`Model::register`] and friends) that the caller makes
//! durable and then applies. Nothing here does I/O.
//!
//! Invariants:
//! - a global id names one schema (type, canonical text, references) forever: the same
//!   schema under several subjects, or registered again, gets the id it already has;
//! - ids are allocated above the highest id ever seen, so they are not reused;
//! - a version number under a subject is never reused while the version exists (soft
//!   deletes keep it); new versions are numbered above the highest one present;
//! - a schema stays readable by id while any version (deleted or not) refers to it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::error::{RegistryError, Result};
use crate::format::{Parsed, ResolvedReference};
use crate::record::{Record, SchemaValue};
use crate::types::{CompatibilityLevel, Mode, SchemaInput, SchemaReference, SchemaType};

/// How deep references may nest (a references b references c …).
const REFERENCE_DEPTH_MAX: usize = 32;

/// A schema as stored under its global id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchema {
    /// The global id.
    pub id: i32,
    /// The format.
    pub schema_type: SchemaType,
    /// The text as registered (or normalized, if the client asked).
    pub schema: String,
    /// Dependencies.
    pub references: Vec<SchemaReference>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Identity {
    schema_type: SchemaType,
    canonical: String,
    references: Vec<SchemaReference>,
}

/// One version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionEntry {
    /// The schema's global id.
    pub id: i32,
    /// Soft-deleted.
    pub deleted: bool,
}

/// A version as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    /// The highest version (`latest` or `-1`).
    Latest,
    /// A version number.
    Number(i32),
}

impl VersionSpec {
    /// Parses `latest`, `-1` or a version in 1..=2^31-1 (42202 otherwise).
    pub fn parse(text: &str) -> Result<Self> {
        if text.eq_ignore_ascii_case("latest") {
            return Ok(VersionSpec::Latest);
        }
        match text.parse::<i32>() {
            Ok(-1) => Ok(VersionSpec::Latest),
            Ok(n) if n >= 1 => Ok(VersionSpec::Number(n)),
            _ => Err(RegistryError::InvalidVersion {
                version: text.to_owned(),
            }),
        }
    }
}

/// A registration's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The global id.
    pub id: i32,
    /// The version under the subject.
    pub version: i32,
    /// The stored schema text.
    pub schema: String,
}

/// The result of a compatibility check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatibilityResult {
    /// Whether the schema passes.
    pub is_compatible: bool,
    /// What fails, one message per problem, naming the version checked against.
    pub messages: Vec<String>,
}

/// The registry's state. See the module documentation.
#[derive(Debug, Default)]
pub struct Model {
    schemas: BTreeMap<i32, StoredSchema>,
    identities: HashMap<Identity, i32>,
    subjects: BTreeMap<String, BTreeMap<i32, VersionEntry>>,
    configs: BTreeMap<Option<String>, CompatibilityLevel>,
    modes: BTreeMap<Option<String>, Mode>,
    id_max: i32,
    /// While replaying, identities are computed once at the end (when every
    /// referenced schema is known), not record by record.
    replaying: bool,
}

/// A changed state: the records to make durable, then apply, and the answer.
pub type Change<T> = (Vec<Record>, T);

impl Model {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    // ---- replay -------------------------------------------------------------------

    /// The state the records describe, applied in order.
    pub fn rebuild<'a>(records: impl IntoIterator<Item = &'a Record>) -> Model {
        let mut model = Model {
            replaying: true,
            ..Model::default()
        };
        for record in records {
            model.apply(record);
        }
        model.replaying = false;
        model.reindex();
        model.debug_check();
        model
    }

    /// Asserts the module's invariants (debug builds only): every version names a
    /// stored schema, every identity a stored schema, and no id above `id_max`.
    pub fn debug_check(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        for (subject, versions) in &self.subjects {
            debug_assert!(!versions.is_empty(), "subject {subject} without versions");
            for (version, entry) in versions {
                debug_assert!(
                    self.schemas.contains_key(&entry.id),
                    "{subject} v{version} names missing schema {}",
                    entry.id
                );
            }
        }
        for id in self.identities.values() {
            debug_assert!(
                self.schemas.contains_key(id),
                "identity of missing schema {id}"
            );
        }
        if let Some(highest) = self.schemas.keys().next_back() {
            debug_assert!(*highest <= self.id_max, "schema id {highest} above id_max");
        }
    }

    /// Recomputes every schema's identity, with every reference resolvable.
    fn reindex(&mut self) {
        let identities: Vec<(Identity, i32)> = self
            .schemas
            .values()
            .map(|s| {
                (
                    self.identity_of(s.schema_type, &s.schema, &s.references),
                    s.id,
                )
            })
            .collect();
        self.identities.clear();
        for (identity, id) in identities {
            self.identities.entry(identity).or_insert(id);
        }
    }

    /// Applies one record. Records are applied in the order they were written.
    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::Schema(value) => self.apply_schema(value),
            Record::SchemaTombstone { subject, version } => {
                if let Some(versions) = self.subjects.get_mut(subject) {
                    if let Some(entry) = versions.remove(version) {
                        if versions.is_empty() {
                            self.subjects.remove(subject);
                        }
                        self.collect(entry.id);
                    }
                }
            }
            Record::Config { subject, level } => match level {
                Some(level) => {
                    self.configs.insert(subject.clone(), *level);
                }
                None => {
                    self.configs.remove(subject);
                }
            },
            Record::Mode { subject, mode } => match mode {
                Some(mode) => {
                    self.modes.insert(subject.clone(), *mode);
                }
                None => {
                    self.modes.remove(subject);
                }
            },
            Record::DeleteSubject { subject, version } => {
                if let Some(versions) = self.subjects.get_mut(subject) {
                    for (_, entry) in versions.range_mut(..=*version) {
                        entry.deleted = true;
                    }
                }
            }
            Record::ClearSubject { subject } => {
                let mut removed = Vec::new();
                if let Some(versions) = self.subjects.get_mut(subject) {
                    versions.retain(|_, entry| {
                        if entry.deleted {
                            removed.push(entry.id);
                        }
                        !entry.deleted
                    });
                    if versions.is_empty() {
                        self.subjects.remove(subject);
                    }
                }
                for id in removed {
                    self.collect(id);
                }
            }
        }
    }

    fn apply_schema(&mut self, value: &SchemaValue) {
        self.id_max = self.id_max.max(value.id);
        if !self.schemas.contains_key(&value.id) {
            if !self.replaying {
                let identity =
                    self.identity_of(value.schema_type, &value.schema, &value.references);
                self.identities.entry(identity).or_insert(value.id);
            }
            self.schemas.insert(
                value.id,
                StoredSchema {
                    id: value.id,
                    schema_type: value.schema_type,
                    schema: value.schema.clone(),
                    references: value.references.clone(),
                },
            );
        }
        self.subjects
            .entry(value.subject.clone())
            .or_default()
            .insert(
                value.version,
                VersionEntry {
                    id: value.id,
                    deleted: value.deleted,
                },
            );
    }

    /// Drops a schema no version refers to any more (a permanent delete).
    fn collect(&mut self, id: i32) {
        let used = self
            .subjects
            .values()
            .any(|versions| versions.values().any(|e| e.id == id));
        if used {
            return;
        }
        if self.schemas.remove(&id).is_some() {
            self.identities.retain(|_, v| *v != id);
        }
    }

    /// The identity of a stored or submitted schema. A schema that no longer parses
    /// (its references were deleted, say) is identified by its text.
    fn identity_of(
        &self,
        schema_type: SchemaType,
        schema: &str,
        references: &[SchemaReference],
    ) -> Identity {
        let canonical = self
            .resolve(references)
            .ok()
            .and_then(|resolved| Parsed::parse(schema_type, schema, &resolved).ok())
            .map(|parsed| parsed.canonical())
            .unwrap_or_else(|| schema.to_owned());
        Identity {
            schema_type,
            canonical,
            references: references.to_vec(),
        }
    }

    // ---- queries ------------------------------------------------------------------

    /// The schema with this id (soft-deleted ones included), or 40403.
    pub fn schema_by_id(&self, id: i32) -> Result<&StoredSchema> {
        self.schemas
            .get(&id)
            .ok_or_else(|| RegistryError::SchemaNotFound {
                what: id.to_string(),
            })
    }

    /// Every schema (for `GET /schemas`), with the subject versions that use it.
    pub fn schemas(
        &self,
        prefix: &str,
        deleted: bool,
        latest_only: bool,
    ) -> Vec<(String, i32, &StoredSchema)> {
        let mut out = Vec::new();
        for (subject, versions) in self.subjects.range(prefix.to_owned()..) {
            if !subject.starts_with(prefix) {
                break;
            }
            let visible: Vec<_> = versions
                .iter()
                .filter(|(_, e)| deleted || !e.deleted)
                .collect();
            let chosen: Vec<_> = if latest_only {
                visible.last().copied().into_iter().collect()
            } else {
                visible
            };
            for (version, entry) in chosen {
                if let Some(schema) = self.schemas.get(&entry.id) {
                    out.push((subject.clone(), *version, schema));
                }
            }
        }
        out
    }

    /// Subjects with at least one version (`deleted`: soft-deleted ones count;
    /// `deleted_only`: only subjects with a soft-deleted version).
    pub fn subjects(&self, prefix: &str, deleted: bool, deleted_only: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(subject, _)| subject.starts_with(prefix))
            .filter(|(_, versions)| {
                if deleted_only {
                    versions.values().any(|e| e.deleted)
                } else {
                    deleted || versions.values().any(|e| !e.deleted)
                }
            })
            .map(|(subject, _)| subject.clone())
            .collect()
    }

    fn visible_versions(&self, subject: &str, deleted: bool) -> Result<Vec<(i32, VersionEntry)>> {
        let versions: Vec<_> = self
            .subjects
            .get(subject)
            .into_iter()
            .flatten()
            .filter(|(_, e)| deleted || !e.deleted)
            .map(|(v, e)| (*v, *e))
            .collect();
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound {
                subject: subject.to_owned(),
            });
        }
        Ok(versions)
    }

    /// A subject's version numbers.
    pub fn versions(&self, subject: &str, deleted: bool, deleted_only: bool) -> Result<Vec<i32>> {
        let versions = self.visible_versions(subject, deleted || deleted_only)?;
        Ok(versions
            .into_iter()
            .filter(|(_, e)| !deleted_only || e.deleted)
            .map(|(v, _)| v)
            .collect())
    }

    /// One version of a subject: its number and entry. 40401 if the subject has no
    /// visible version, 40402 if this one is missing.
    pub fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<(i32, VersionEntry)> {
        let versions = self.visible_versions(subject, deleted)?;
        let found = match spec {
            VersionSpec::Latest => versions.last().copied(),
            VersionSpec::Number(n) => versions.iter().find(|(v, _)| *v == n).copied(),
        };
        found.ok_or_else(|| RegistryError::VersionNotFound {
            version: match spec {
                VersionSpec::Latest => "latest".to_owned(),
                VersionSpec::Number(n) => n.to_string(),
            },
        })
    }

    /// The version under `subject` holding this schema, if registered there (schemas
    /// are compared in canonical form, so `normalize` needs no flag here).
    pub fn lookup(
        &self,
        subject: &str,
        input: &SchemaInput,
        deleted: bool,
    ) -> Result<(i32, &StoredSchema)> {
        let versions = self.visible_versions(subject, deleted)?;
        let (identity, _) = self.parse_input(input)?;
        let found = self.identities.get(&identity).and_then(|id| {
            versions
                .iter()
                .rev()
                .find(|(_, e)| e.id == *id)
                .map(|(v, e)| (*v, e.id))
        });
        match found {
            Some((version, id)) => Ok((version, self.schema_by_id(id)?)),
            None => Err(RegistryError::SchemaNotFound {
                what: format!("under subject '{subject}'"),
            }),
        }
    }

    /// Ids of schemas whose references name this subject version.
    pub fn referenced_by(&self, subject: &str, spec: VersionSpec) -> Result<Vec<i32>> {
        let (version, _) = self.version(subject, spec, false)?;
        Ok(self.referrers(subject, version))
    }

    fn referrers(&self, subject: &str, version: i32) -> Vec<i32> {
        let live: BTreeSet<i32> = self
            .subjects
            .values()
            .flat_map(|versions| versions.values())
            .filter(|e| !e.deleted)
            .map(|e| e.id)
            .collect();
        self.schemas
            .values()
            .filter(|s| live.contains(&s.id))
            .filter(|s| {
                s.references
                    .iter()
                    .any(|r| r.subject == subject && r.version == version)
            })
            .map(|s| s.id)
            .collect()
    }

    /// The subject versions that use schema `id`.
    pub fn id_versions(&self, id: i32, deleted: bool) -> Result<Vec<(String, i32)>> {
        self.schema_by_id(id)?;
        Ok(self
            .subjects
            .iter()
            .flat_map(|(subject, versions)| {
                versions
                    .iter()
                    .filter(move |(_, e)| e.id == id && (deleted || !e.deleted))
                    .map(move |(v, _)| (subject.clone(), *v))
            })
            .collect())
    }

    /// The compatibility level of `subject` (its own, else the global one, else
    /// BACKWARD), or the global one for `None`.
    pub fn compatibility(&self, subject: Option<&str>) -> CompatibilityLevel {
        subject
            .and_then(|s| self.configs.get(&Some(s.to_owned())))
            .or_else(|| self.configs.get(&None))
            .copied()
            .unwrap_or_default()
    }

    /// The level set on the subject itself, if any.
    pub fn subject_compatibility(&self, subject: &str) -> Option<CompatibilityLevel> {
        self.configs.get(&Some(subject.to_owned())).copied()
    }

    /// The mode of `subject` (its own, else the global one), or the global one.
    pub fn mode(&self, subject: Option<&str>) -> Mode {
        subject
            .and_then(|s| self.modes.get(&Some(s.to_owned())))
            .or_else(|| self.modes.get(&None))
            .copied()
            .unwrap_or_default()
    }

    /// The mode set on the subject itself, if any.
    pub fn subject_mode(&self, subject: &str) -> Option<Mode> {
        self.modes.get(&Some(subject.to_owned())).copied()
    }

    /// Contexts in use: the default context `.` and every `:.name:` subject prefix.
    pub fn contexts(&self) -> Vec<String> {
        let mut contexts = BTreeSet::from([".".to_owned()]);
        for subject in self.subjects.keys() {
            if let Some(rest) = subject.strip_prefix(":.") {
                if let Some((context, _)) = rest.split_once(':') {
                    contexts.insert(format!(".{context}"));
                }
            }
        }
        contexts.into_iter().collect()
    }

    /// The highest id ever allocated.
    pub fn id_max(&self) -> i32 {
        self.id_max
    }

    // ---- parsing ------------------------------------------------------------------

    /// A schema's references, transitively, dependencies first; each named once.
    pub(crate) fn resolve(&self, references: &[SchemaReference]) -> Result<Vec<ResolvedReference>> {
        let mut out: Vec<ResolvedReference> = Vec::new();
        self.resolve_into(references, &mut out, 0)?;
        Ok(out)
    }

    fn resolve_into(
        &self,
        references: &[SchemaReference],
        out: &mut Vec<ResolvedReference>,
        depth: usize,
    ) -> Result<()> {
        if depth > REFERENCE_DEPTH_MAX {
            return Err(RegistryError::InvalidSchema {
                reason: "references nest too deeply (or form a cycle)".to_owned(),
            });
        }
        for reference in references {
            if out.iter().any(|r| r.name == reference.name) {
                continue;
            }
            let spec = if reference.version == -1 {
                VersionSpec::Latest
            } else {
                VersionSpec::Number(reference.version)
            };
            let not_found = || RegistryError::InvalidSchema {
                reason: format!(
                    "reference {} (subject {}, version {}) not found",
                    reference.name, reference.subject, reference.version
                ),
            };
            let (_, entry) = self
                .version(&reference.subject, spec, true)
                .map_err(|_| not_found())?;
            let schema = self.schema_by_id(entry.id).map_err(|_| not_found())?;
            self.resolve_into(&schema.references, out, depth + 1)?;
            out.push(ResolvedReference {
                name: reference.name.clone(),
                schema: schema.schema.clone(),
            });
        }
        Ok(())
    }

    /// Parses a submitted schema. Identity is always the canonical form, so
    /// `normalize` only changes what is stored (see [`Model::register`]).
    fn parse_input(&self, input: &SchemaInput) -> Result<(Identity, Parsed)> {
        let resolved = self.resolve(&input.references)?;
        let parsed = Parsed::parse(input.schema_type, &input.schema, &resolved)
            .map_err(|reason| RegistryError::InvalidSchema { reason })?;
        let identity = Identity {
            schema_type: input.schema_type,
            canonical: parsed.canonical(),
            references: input.references.clone(),
        };
        Ok((identity, parsed))
    }

    /// Parses a stored schema.
    pub(crate) fn parse_stored(&self, id: i32) -> Result<Parsed> {
        let schema = self.schema_by_id(id)?;
        let resolved = self.resolve(&schema.references)?;
        Parsed::parse(schema.schema_type, &schema.schema, &resolved).map_err(|reason| {
            RegistryError::InvalidSchema {
                reason: format!("stored schema {id} does not parse: {reason}"),
            }
        })
    }

    /// Checks a parsed schema against versions of a subject (given newest first).
    fn check_against(
        &self,
        parsed: &Parsed,
        level: CompatibilityLevel,
        against: &[(i32, VersionEntry)],
    ) -> Result<Vec<String>> {
        let mut messages = Vec::new();
        if level == CompatibilityLevel::None {
            return Ok(messages);
        }
        for (version, entry) in against {
            let old = self.parse_stored(entry.id)?;
            if level.backward() {
                for problem in Parsed::read_problems(parsed, &old) {
                    messages.push(format!(
                        "{{oldSchemaVersion: {version}, oldSchema: id {}, compatibility: '{}', direction: BACKWARD}} {problem}",
                        entry.id,
                        level.as_str()
                    ));
                }
            }
            if level.forward() {
                for problem in Parsed::read_problems(&old, parsed) {
                    messages.push(format!(
                        "{{oldSchemaVersion: {version}, oldSchema: id {}, compatibility: '{}', direction: FORWARD}} {problem}",
                        entry.id,
                        level.as_str()
                    ));
                }
            }
        }
        Ok(messages)
    }

    /// The versions a new schema under `subject` is checked against, newest first.
    fn compatibility_targets(
        &self,
        subject: &str,
        level: CompatibilityLevel,
    ) -> Vec<(i32, VersionEntry)> {
        let mut live: Vec<(i32, VersionEntry)> = self
            .subjects
            .get(subject)
            .into_iter()
            .flatten()
            .filter(|(_, e)| !e.deleted)
            .map(|(v, e)| (*v, *e))
            .collect();
        live.reverse();
        if !level.transitive() {
            live.truncate(1);
        }
        live
    }

    /// `POST /compatibility/subjects/{s}/versions[/{v}]`: checks `input` against one
    /// version, or (with `None`) against what a registration would be checked against.
    pub fn check_compatibility(
        &self,
        subject: &str,
        spec: Option<VersionSpec>,
        input: &SchemaInput,
    ) -> Result<CompatibilityResult> {
        let level = self.compatibility(Some(subject));
        let targets = match spec {
            Some(spec) => vec![self.version(subject, spec, false)?],
            None => self.compatibility_targets(subject, level),
        };
        let (_, parsed) = self.parse_input(input)?;
        let messages = self.check_against(&parsed, level, &targets)?;
        Ok(CompatibilityResult {
            is_compatible: messages.is_empty(),
            messages,
        })
    }

    // ---- changes ------------------------------------------------------------------

    fn require_writable(&self, subject: Option<&str>) -> Result<()> {
        let mode = self.mode(subject);
        if mode.writable() {
            Ok(())
        } else {
            Err(RegistryError::OperationNotPermitted(format!(
                "Subject {} is in read-only mode",
                subject.unwrap_or("")
            )))
        }
    }

    /// Registers `input` under `subject`. The same schema already there returns its
    /// id and version without a record; otherwise it is checked against the subject's
    /// compatibility level (409) and gets the id it already has under another subject
    /// or a new one. In IMPORT mode `import` may fix the id and version.
    pub fn register(
        &self,
        subject: &str,
        input: &SchemaInput,
        normalize: bool,
        import: (Option<i32>, Option<i32>),
    ) -> Result<Change<Registered>> {
        self.require_writable(Some(subject))?;
        let (identity, parsed) = self.parse_input(input)?;
        let versions = self.subjects.get(subject);
        let existing_id = self.identities.get(&identity).copied();
        if let (Some(id), Some(versions)) = (existing_id, versions) {
            if let Some((version, _)) = versions
                .iter()
                .rev()
                .find(|(_, e)| e.id == id && !e.deleted)
            {
                let schema = self.schema_by_id(id)?.schema.clone();
                return Ok((
                    Vec::new(),
                    Registered {
                        id,
                        version: *version,
                        schema,
                    },
                ));
            }
        }
        let importing = self.mode(Some(subject)) == Mode::Import;
        if !importing {
            let level = self.compatibility(Some(subject));
            let targets = self.compatibility_targets(subject, level);
            let messages = self.check_against(&parsed, level, &targets)?;
            if !messages.is_empty() {
                return Err(RegistryError::Incompatible {
                    subject: subject.to_owned(),
                    messages,
                });
            }
        }
        let (import_id, import_version) = if importing { import } else { (None, None) };
        let id = match (import_id, existing_id) {
            (Some(id), _) => {
                if let Ok(other) = self.schema_by_id(id) {
                    let other_identity =
                        self.identity_of(other.schema_type, &other.schema, &other.references);
                    if other_identity != identity {
                        return Err(RegistryError::OperationNotPermitted(format!(
                            "Overwrite new schema with id {id} is not permitted."
                        )));
                    }
                }
                id
            }
            (None, Some(id)) => id,
            (None, None) => self.id_max.checked_add(1).ok_or_else(|| {
                RegistryError::Store("the schema id space is exhausted".to_owned())
            })?,
        };
        let version_max = versions
            .and_then(|v| v.keys().next_back().copied())
            .unwrap_or(0);
        let version = match import_version {
            Some(v) if v >= 1 => v,
            _ => version_max + 1,
        };
        let schema = match (existing_id.and_then(|id| self.schemas.get(&id)), normalize) {
            (Some(stored), _) => stored.schema.clone(),
            (None, true) => parsed.normalized(),
            (None, false) => input.schema.clone(),
        };
        let record = Record::Schema(SchemaValue {
            subject: subject.to_owned(),
            version,
            id,
            schema_type: input.schema_type,
            references: input.references.clone(),
            schema: schema.clone(),
            deleted: false,
        });
        Ok((
            vec![record],
            Registered {
                id,
                version,
                schema,
            },
        ))
    }

    /// Deletes one version: soft (marks it deleted) or permanent (must be soft-deleted
    /// first). Returns the version number.
    pub fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<Change<i32>> {
        self.require_writable(Some(subject))?;
        // A numbered version is found even when soft-deleted (to answer 40406); `latest`
        // means the latest live one, unless the delete is permanent.
        let include_deleted = permanent || matches!(spec, VersionSpec::Number(_));
        let (version, entry) = self.version(subject, spec, include_deleted)?;
        if !self.referrers(subject, version).is_empty() {
            return Err(RegistryError::ReferenceExists {
                subject: subject.to_owned(),
                version,
            });
        }
        if permanent {
            if !entry.deleted {
                return Err(RegistryError::VersionNotSoftDeleted {
                    subject: subject.to_owned(),
                    version,
                });
            }
            return Ok((
                vec![Record::SchemaTombstone {
                    subject: subject.to_owned(),
                    version,
                }],
                version,
            ));
        }
        if entry.deleted {
            return Err(RegistryError::VersionSoftDeleted {
                subject: subject.to_owned(),
                version,
            });
        }
        let schema = self.schema_by_id(entry.id)?;
        Ok((
            vec![Record::Schema(SchemaValue {
                subject: subject.to_owned(),
                version,
                id: entry.id,
                schema_type: schema.schema_type,
                references: schema.references.clone(),
                schema: schema.schema.clone(),
                deleted: true,
            })],
            version,
        ))
    }

    /// Deletes a subject: soft (every version marked deleted) or permanent (every
    /// version removed; must be soft-deleted first). Returns the versions deleted.
    pub fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Change<Vec<i32>>> {
        self.require_writable(Some(subject))?;
        let all = self.visible_versions(subject, true)?;
        for (version, _) in &all {
            if !self.referrers(subject, *version).is_empty() {
                return Err(RegistryError::ReferenceExists {
                    subject: subject.to_owned(),
                    version: *version,
                });
            }
        }
        let live: Vec<i32> = all
            .iter()
            .filter(|(_, e)| !e.deleted)
            .map(|(v, _)| *v)
            .collect();
        if permanent {
            if !live.is_empty() {
                return Err(RegistryError::SubjectNotSoftDeleted {
                    subject: subject.to_owned(),
                });
            }
            let versions: Vec<i32> = all.iter().map(|(v, _)| *v).collect();
            let mut records: Vec<Record> = versions
                .iter()
                .map(|v| Record::SchemaTombstone {
                    subject: subject.to_owned(),
                    version: *v,
                })
                .collect();
            if self.configs.contains_key(&Some(subject.to_owned())) {
                records.push(Record::Config {
                    subject: Some(subject.to_owned()),
                    level: None,
                });
            }
            if self.modes.contains_key(&Some(subject.to_owned())) {
                records.push(Record::Mode {
                    subject: Some(subject.to_owned()),
                    mode: None,
                });
            }
            return Ok((records, versions));
        }
        let Some(highest) = live.last().copied() else {
            return Err(RegistryError::SubjectSoftDeleted {
                subject: subject.to_owned(),
            });
        };
        Ok((
            vec![Record::DeleteSubject {
                subject: subject.to_owned(),
                version: highest,
            }],
            live,
        ))
    }

    /// Sets the compatibility level of a subject or (`None`) the global one.
    pub fn set_config(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<Change<CompatibilityLevel>> {
        if self.mode(subject) == Mode::Readonly {
            self.require_writable(subject)?;
        }
        Ok((
            vec![Record::Config {
                subject: subject.map(str::to_owned),
                level: Some(level),
            }],
            level,
        ))
    }

    /// Removes a subject's level (40408 if it has none) or resets the global one;
    /// returns the level that applied before.
    pub fn delete_config(&self, subject: Option<&str>) -> Result<Change<CompatibilityLevel>> {
        let previous = match subject {
            Some(s) => self.subject_compatibility(s).ok_or_else(|| {
                RegistryError::SubjectConfigNotFound {
                    subject: s.to_owned(),
                }
            })?,
            None => self.compatibility(None),
        };
        Ok((
            vec![Record::Config {
                subject: subject.map(str::to_owned),
                level: None,
            }],
            previous,
        ))
    }

    /// Sets the mode of a subject or (`None`) the global one.
    pub fn set_mode(&self, subject: Option<&str>, mode: Mode) -> Result<Change<Mode>> {
        Ok((
            vec![Record::Mode {
                subject: subject.map(str::to_owned),
                mode: Some(mode),
            }],
            mode,
        ))
    }

    /// Removes a subject's mode (40409 if it has none) or resets the global one;
    /// returns the mode that applied before.
    pub fn delete_mode(&self, subject: Option<&str>) -> Result<Change<Mode>> {
        let previous = match subject {
            Some(s) => self
                .subject_mode(s)
                .ok_or_else(|| RegistryError::SubjectModeNotFound {
                    subject: s.to_owned(),
                })?,
            None => self.mode(None),
        };
        Ok((
            vec![Record::Mode {
                subject: subject.map(str::to_owned),
                mode: None,
            }],
            previous,
        ))
    }
}
