//! The registry's state and rules, as Confluent's Schema Registry keeps them: schemas by id (one
//! id a distinct schema, shared across subjects), subjects as lists of versions, and a
//! compatibility level, global or a subject's own, checked when a new version is registered.
//!
//! Two schemas are the same when their Parsing Canonical Forms are; compatibility is
//! apache-avro's `schema_compatibility` (BACKWARD: the new schema reads what the old wrote).

use std::collections::BTreeMap;
use std::fmt;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema as Avro;

/// A compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    /// No check.
    None,
    /// The new schema reads data written with the latest version.
    Backward,
    /// ... with every version.
    BackwardTransitive,
    /// The latest version reads data written with the new schema.
    Forward,
    /// ... every version does.
    ForwardTransitive,
    /// Both ways, with the latest version.
    Full,
    /// Both ways, with every version.
    FullTransitive,
}

impl Compatibility {
    /// Parses the registry's name of a level (`BACKWARD`, `FULL_TRANSITIVE`, ...).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_uppercase().as_str() {
            "NONE" => Self::None,
            "BACKWARD" => Self::Backward,
            "BACKWARD_TRANSITIVE" => Self::BackwardTransitive,
            "FORWARD" => Self::Forward,
            "FORWARD_TRANSITIVE" => Self::ForwardTransitive,
            "FULL" => Self::Full,
            "FULL_TRANSITIVE" => Self::FullTransitive,
            _ => return None,
        })
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// Whether `new` may follow `old` at this level; the error says why not.
    fn allows(self, old: &Avro, new: &Avro) -> Result<(), String> {
        let backward = || SchemaCompatibility::can_read(old, new).map_err(|e| e.to_string());
        let forward = || SchemaCompatibility::can_read(new, old).map_err(|e| e.to_string());
        match self {
            Self::None => Ok(()),
            Self::Backward | Self::BackwardTransitive => backward(),
            Self::Forward | Self::ForwardTransitive => forward(),
            Self::Full | Self::FullTransitive => backward().and_then(|()| forward()),
        }
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        })
    }
}

/// A refusal, with the registry's error code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// 40401.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// 40402.
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    /// 40403.
    #[error("Schema {0} not found")]
    SchemaNotFound(u32),
    /// 40408.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    NoSubjectConfig(String),
    /// 409.
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\": {reason}")]
    Incompatible {
        /// The subject.
        subject: String,
        /// What apache-avro found.
        reason: String,
    },
    /// 42201.
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// 42202.
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    /// 42203.
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibility,
}

impl StoreError {
    /// The registry's error code.
    pub fn error_code(&self) -> u32 {
        match self {
            Self::SubjectNotFound(_) => 40401,
            Self::VersionNotFound(_) => 40402,
            Self::SchemaNotFound(_) => 40403,
            Self::NoSubjectConfig(_) => 40408,
            Self::Incompatible { .. } => 409,
            Self::InvalidSchema(_) => 42201,
            Self::InvalidVersion(_) => 42202,
            Self::InvalidCompatibility => 42203,
        }
    }

    /// The HTTP status that carries it.
    pub fn status(&self) -> u16 {
        match self.error_code() {
            409 => 409,
            code => (code / 100) as u16,
        }
    }
}

/// Which version of a subject: a number, or the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    /// Version `n`, from 1.
    Number(u32),
    /// The latest (also `-1`).
    Latest,
}

impl VersionRef {
    /// Parses a version of a request path.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "latest" | "-1" => Ok(Self::Latest),
            _ => match text.parse::<u32>() {
                Ok(n) if n >= 1 && n <= i32::MAX as u32 => Ok(Self::Number(n)),
                _ => Err(StoreError::InvalidVersion(text.to_string())),
            },
        }
    }
}

struct Stored {
    text: String,
    schema: Avro,
    canonical: String,
}

/// One version of a subject, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SubjectVersion {
    /// The subject.
    pub subject: String,
    /// The schema's id.
    pub id: u32,
    /// The version, from 1.
    pub version: u32,
    /// The schema's text.
    pub schema: String,
}

/// Everything the registry holds.
#[derive(Default)]
pub struct Store {
    /// Schemas by id - 1.
    schemas: Vec<Stored>,
    /// Each subject's versions: schema ids, version n at n - 1.
    subjects: BTreeMap<String, Vec<u32>>,
    global: Option<Compatibility>,
    per_subject: BTreeMap<String, Compatibility>,
}

impl Store {
    /// Registers `text` under `subject`, or finds it there: the schema's id.
    pub fn register(&mut self, subject: &str, text: &str) -> Result<u32, StoreError> {
        let (schema, canonical) = parse(text)?;
        if let Some(found) = self.lookup_parsed(subject, &canonical) {
            return Ok(found.id);
        }
        let level = self.compatibility(subject);
        let versions = self.subjects.get(subject).map(Vec::as_slice).unwrap_or(&[]);
        let against = if level.transitive() {
            versions
        } else {
            &versions[versions.len().saturating_sub(1)..]
        };
        for id in against {
            let old = &self.schemas[*id as usize - 1].schema;
            level
                .allows(old, &schema)
                .map_err(|reason| StoreError::Incompatible {
                    subject: subject.to_string(),
                    reason,
                })?;
        }
        let id = match self.schemas.iter().position(|s| s.canonical == canonical) {
            Some(index) => index as u32 + 1,
            None => {
                self.schemas.push(Stored {
                    text: text.to_string(),
                    schema,
                    canonical,
                });
                self.schemas.len() as u32
            }
        };
        self.subjects
            .entry(subject.to_string())
            .or_default()
            .push(id);
        Ok(id)
    }

    /// The version of `subject` that holds `text`, if one does.
    pub fn lookup(&self, subject: &str, text: &str) -> Result<SubjectVersion, StoreError> {
        let (_, canonical) = parse(text)?;
        if !self.subjects.contains_key(subject) {
            return Err(StoreError::SubjectNotFound(subject.to_string()));
        }
        self.lookup_parsed(subject, &canonical)
            .ok_or(StoreError::SchemaNotFound(0))
    }

    fn lookup_parsed(&self, subject: &str, canonical: &str) -> Option<SubjectVersion> {
        let versions = self.subjects.get(subject)?;
        versions.iter().enumerate().find_map(|(i, id)| {
            let stored = &self.schemas[*id as usize - 1];
            (stored.canonical == canonical).then(|| SubjectVersion {
                subject: subject.to_string(),
                id: *id,
                version: i as u32 + 1,
                schema: stored.text.clone(),
            })
        })
    }

    /// The schema with id `id`.
    pub fn schema(&self, id: u32) -> Result<&str, StoreError> {
        id.checked_sub(1)
            .and_then(|index| self.schemas.get(index as usize))
            .map(|s| s.text.as_str())
            .ok_or(StoreError::SchemaNotFound(id))
    }

    /// Every subject, in order.
    pub fn subjects(&self) -> Vec<String> {
        self.subjects.keys().cloned().collect()
    }

    /// The versions of `subject`.
    pub fn versions(&self, subject: &str) -> Result<Vec<u32>, StoreError> {
        let versions = self
            .subjects
            .get(subject)
            .ok_or_else(|| StoreError::SubjectNotFound(subject.to_string()))?;
        Ok((1..=versions.len() as u32).collect())
    }

    /// One version of `subject`.
    pub fn version(&self, subject: &str, which: VersionRef) -> Result<SubjectVersion, StoreError> {
        let versions = self
            .subjects
            .get(subject)
            .ok_or_else(|| StoreError::SubjectNotFound(subject.to_string()))?;
        let version = match which {
            VersionRef::Latest => versions.len() as u32,
            VersionRef::Number(n) => n,
        };
        let id = version
            .checked_sub(1)
            .and_then(|i| versions.get(i as usize))
            .ok_or_else(|| StoreError::VersionNotFound(version.to_string()))?;
        Ok(SubjectVersion {
            subject: subject.to_string(),
            id: *id,
            version,
            schema: self.schemas[*id as usize - 1].text.clone(),
        })
    }

    /// Whether `text` may follow the given version of `subject` at the subject's level: `Ok`
    /// with the reasons it may not (empty when it may).
    pub fn check(
        &self,
        subject: &str,
        which: VersionRef,
        text: &str,
    ) -> Result<Vec<String>, StoreError> {
        let (schema, _) = parse(text)?;
        let version = self.version(subject, which)?;
        let old = &self.schemas[version.id as usize - 1].schema;
        Ok(self
            .compatibility(subject)
            .allows(old, &schema)
            .err()
            .into_iter()
            .collect())
    }

    /// The level that applies to `subject`: its own, else the global one.
    pub fn compatibility(&self, subject: &str) -> Compatibility {
        self.per_subject
            .get(subject)
            .copied()
            .unwrap_or_else(|| self.global())
    }

    /// The global level (BACKWARD unless set).
    pub fn global(&self) -> Compatibility {
        self.global.unwrap_or(Compatibility::Backward)
    }

    /// The subject's own level, if it has one.
    pub fn subject_level(&self, subject: &str) -> Result<Compatibility, StoreError> {
        self.per_subject
            .get(subject)
            .copied()
            .ok_or_else(|| StoreError::NoSubjectConfig(subject.to_string()))
    }

    /// Sets the level of `subject`, or the global one.
    pub fn set_level(&mut self, subject: Option<&str>, level: Compatibility) {
        match subject {
            Some(subject) => {
                self.per_subject.insert(subject.to_string(), level);
            }
            None => self.global = Some(level),
        }
    }
}

fn parse(text: &str) -> Result<(Avro, String), StoreError> {
    let schema = Avro::parse_str(text).map_err(|e| StoreError::InvalidSchema(e.to_string()))?;
    let canonical = schema.canonical_form();
    Ok((schema, canonical))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"long"}]}"#;
    /// V1 with an optional field: BACKWARD compatible.
    const V2: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"long"},{"name":"b","type":["null","string"],"default":null}]}"#;
    /// A required field without a default: not BACKWARD compatible with V1.
    const V3: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"long"},{"name":"c","type":"string"}]}"#;

    #[test]
    fn registering_gives_ids_and_versions_and_finds_what_is_there() {
        let mut store = Store::default();
        assert_eq!(store.register("t-value", V1).unwrap(), 1);
        assert_eq!(
            store.register("t-value", V1).unwrap(),
            1,
            "found, not added"
        );
        assert_eq!(store.register("t-value", V2).unwrap(), 2);
        assert_eq!(store.register("u-value", V1).unwrap(), 1, "ids are shared");
        assert_eq!(store.versions("t-value").unwrap(), [1, 2]);
        assert_eq!(store.version("t-value", VersionRef::Latest).unwrap().id, 2);
        assert_eq!(store.schema(2).unwrap(), V2);
        assert_eq!(store.subjects(), ["t-value", "u-value"]);
        assert_eq!(store.lookup("u-value", V1).unwrap().version, 1);
    }

    #[test]
    fn an_incompatible_schema_is_refused_unless_the_level_allows_it() {
        let mut store = Store::default();
        store.register("t-value", V1).unwrap();
        let err = store.register("t-value", V3).unwrap_err();
        assert_eq!((err.error_code(), err.status()), (409, 409));
        assert!(!store
            .check("t-value", VersionRef::Latest, V3)
            .unwrap()
            .is_empty());
        assert!(store
            .check("t-value", VersionRef::Number(1), V2)
            .unwrap()
            .is_empty());
        store.set_level(Some("t-value"), Compatibility::None);
        assert_eq!(store.register("t-value", V3).unwrap(), 2);
    }

    #[test]
    fn refusals_carry_the_registry_codes() {
        let mut store = Store::default();
        let code = |err: StoreError| (err.error_code(), err.status());
        assert_eq!(code(store.versions("x").unwrap_err()), (40401, 404));
        store.register("t", V1).unwrap();
        assert_eq!(
            code(store.version("t", VersionRef::Number(5)).unwrap_err()),
            (40402, 404)
        );
        assert_eq!(code(store.schema(9).unwrap_err()), (40403, 404));
        assert_eq!(code(store.register("t", "{").unwrap_err()), (42201, 422));
        assert_eq!(code(VersionRef::parse("0").unwrap_err()), (42202, 422));
    }
}
