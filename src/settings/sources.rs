//! Where settings come from: command-line flags, the environment, the TOML config file and the
//! scenario's `config()`. Each source is read into a list of keyed, sourced values; `resolve` in
//! the parent module layers them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::value::{Origin, RawValue, Sourced};
use super::SettingsError;

/// Everything the user said, before the script is known: flags, environment and config file.
#[derive(Debug, Clone, Default)]
pub struct UserInput {
    /// `(key, value, flag)` from flags such as `--topic` and `--set key=value`.
    pub flags: Vec<(String, String, String)>,
    /// librdkafka properties from `-X key=value`, in order.
    pub kafka_flags: Vec<(String, String)>,
    /// A snapshot of the environment.
    pub env: BTreeMap<String, String>,
    /// The `--config` file, if one was given.
    pub config_file: Option<PathBuf>,
}

impl UserInput {
    /// Input with the process's real environment.
    pub fn from_process_env() -> Self {
        Self {
            env: std::env::vars().collect(),
            ..Self::default()
        }
    }
}

/// The config-file key of the schema registry's credentials (env `SCHEMA_REGISTRY_AUTH`).
pub const REGISTRY_AUTH_KEY: &str = "schema_registry_auth";

/// The contents of the TOML config file: settings, the `[kafka]` table and the schema
/// registry's credentials.
#[derive(Debug, Default)]
pub struct ConfigFile {
    /// Top-level settings.
    pub settings: BTreeMap<String, Sourced>,
    /// librdkafka properties from `[kafka]`.
    pub kafka: BTreeMap<String, String>,
    /// `schema_registry_auth = "user:password"`: the schema registry's basic-auth credentials.
    /// Kept apart from the settings, which scripts read (`ctx.settings`) and `sim` lists.
    pub registry_auth: Option<String>,
}

impl ConfigFile {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        let table: toml::Table =
            text.parse()
                .map_err(|err: toml::de::Error| SettingsError::ConfigParse {
                    path: path.to_path_buf(),
                    message: err.message().to_string(),
                    line: err.span().map(|span| line_of_offset(&text, span.start)),
                })?;
        let mut file = ConfigFile::default();
        for (key, value) in table {
            let origin = Origin::File {
                path: path.to_path_buf(),
                line: line_of_key(&text, &key),
            };
            if key == "kafka" {
                let toml::Value::Table(properties) = value else {
                    return Err(SettingsError::Invalid {
                        key,
                        value: value.to_string(),
                        origin,
                        expected:
                            "a table of librdkafka properties, e.g. [kafka] \"linger.ms\" = 5"
                                .into(),
                    });
                };
                for (name, value) in properties {
                    let text = match value {
                        toml::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    file.kafka.insert(name, text);
                }
                continue;
            }
            if key == REGISTRY_AUTH_KEY {
                let toml::Value::String(auth) = value else {
                    return Err(SettingsError::Invalid {
                        key,
                        // A secret: not repeated, even when malformed.
                        value: "(hidden)".into(),
                        origin,
                        expected: "a string, user:password".into(),
                    });
                };
                file.registry_auth = Some(auth);
                continue;
            }
            let value = from_toml(&value).ok_or_else(|| SettingsError::Invalid {
                key: key.clone(),
                value: value.to_string(),
                origin: origin.clone(),
                expected: "a number, a string, a boolean or a list of them".into(),
            })?;
            file.settings.insert(key, Sourced { value, origin });
        }
        Ok(file)
    }
}

fn from_toml(value: &toml::Value) -> Option<RawValue> {
    Some(match value {
        toml::Value::String(s) => RawValue::Str(s.clone()),
        toml::Value::Integer(i) => RawValue::Int(*i),
        toml::Value::Float(x) => RawValue::Float(*x),
        toml::Value::Boolean(b) => RawValue::Bool(*b),
        toml::Value::Array(items) => {
            RawValue::List(items.iter().map(from_toml).collect::<Option<Vec<_>>>()?)
        }
        toml::Value::Datetime(d) => RawValue::Str(d.to_string()),
        toml::Value::Table(_) => return None,
    })
}

/// The 1-based line on which `key = ...` is written, for error messages.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            let rest = line
                .strip_prefix(key)
                .or_else(|| line.strip_prefix(&format!("\"{key}\"")))
                .or_else(|| line.strip_prefix(&format!("[{key}]")).map(|_| "="));
            rest.is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|index| index + 1)
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Splits `key=value` text from a flag.
pub fn split_assignment(text: &str, flag: &str) -> Result<(String, String), SettingsError> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(SettingsError::BadAssignment {
            flag: flag.to_string(),
            text: text.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_settings_carry_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.toml");
        std::fs::write(
            &path,
            "# comment\ntopic = \"t\"\nrate = 20\n\n[kafka]\n\"linger.ms\" = 5\n",
        )
        .unwrap();
        let file = ConfigFile::read(&path).unwrap();
        assert_eq!(file.settings["rate"].value, RawValue::Int(20));
        assert_eq!(
            file.settings["rate"].origin,
            Origin::File {
                path: path.clone(),
                line: Some(3)
            }
        );
        assert_eq!(file.kafka["linger.ms"], "5");
    }

    #[test]
    fn the_registry_credentials_stay_out_of_the_settings_and_are_never_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.toml");
        std::fs::write(
            &path,
            "topic = \"t\"\nschema_registry_auth = \"alice:pw\"\n",
        )
        .unwrap();
        let file = ConfigFile::read(&path).unwrap();
        assert_eq!(file.registry_auth.as_deref(), Some("alice:pw"));
        assert!(!file.settings.contains_key(REGISTRY_AUTH_KEY));
        std::fs::write(&path, "schema_registry_auth = 12345\n").unwrap();
        let message = ConfigFile::read(&path).unwrap_err().to_string();
        assert!(message.contains(REGISTRY_AUTH_KEY), "{message}");
        assert!(!message.contains("12345"), "{message}");
    }

    #[test]
    fn a_broken_config_file_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.toml");
        std::fs::write(&path, "topic = \"t\"\nrate = = 3\n").unwrap();
        match ConfigFile::read(&path) {
            Err(SettingsError::ConfigParse { line, .. }) => assert_eq!(line, Some(2)),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn assignments_need_an_equals_sign() {
        assert!(split_assignment("acks=all", "-X").is_ok());
        assert!(split_assignment("acks", "-X").is_err());
    }
}
