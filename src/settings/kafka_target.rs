//! The cluster, topic and schema registry of a command that reads the stream rather than makes it
//! (`sim analyze`), resolved with the precedence of every setting: flags, then environment
//! variables (`KAFKA_BROKER`, `TOPIC`, `SCHEMA_REGISTRY_URL`), then the config file, then the
//! command's default.
//!
//! Such a command has no scenario, so [`super::resolve`] (which layers a script's `config()` and
//! checks every engine setting) does not apply; this is the same layering for the two settings
//! it needs, each with its [`Origin`] for the errors that name it. Values are passed on as given:
//! the command checks them where it uses them (an empty broker list is "none configured").

use std::collections::BTreeMap;

use super::sources::{ConfigFile, UserInput};
use super::value::Origin;
use super::{env_name, SettingsError};

/// The keys of the settings, as flags, environment and config file name them.
const BROKERS: &str = "brokers";
const TOPIC: &str = "topic";
const SCHEMA_REGISTRY: &str = "schema_registry";

/// Where a reader of the stream connects, each value with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaTarget {
    /// Bootstrap servers; `None` when no source names any.
    pub brokers: Option<(String, Origin)>,
    /// The topic to read.
    pub topic: (String, Origin),
    /// The schema registry Avro messages' schemas are fetched from; `None` when none is named.
    pub schema_registry: Option<(String, Origin)>,
}

/// Resolves the brokers, topic and schema registry from `input` (flags keyed `brokers`, `topic`
/// and `schema_registry`), falling back to `default_topic`.
pub fn kafka_target(input: &UserInput, default_topic: &str) -> Result<KafkaTarget, SettingsError> {
    let file = match &input.config_file {
        Some(path) => ConfigFile::read(path)?,
        None => ConfigFile::default(),
    };
    Ok(KafkaTarget {
        brokers: layered(input, &file, BROKERS),
        topic: layered(input, &file, TOPIC)
            .unwrap_or_else(|| (default_topic.to_string(), Origin::Default)),
        schema_registry: layered(input, &file, SCHEMA_REGISTRY),
    })
}

/// The environment variables [`kafka_target`] reads, taken from the process. A value that is not
/// UTF-8 counts as unset, and other variables are not read, so an odd variable elsewhere in the
/// environment cannot stop the command.
pub fn kafka_target_env() -> BTreeMap<String, String> {
    [BROKERS, TOPIC, SCHEMA_REGISTRY]
        .map(env_name)
        .into_iter()
        .filter_map(|var| Some((var.clone(), std::env::var(&var).ok()?)))
        .collect()
}

/// The value of `key` from the highest source that has it; the last of repeated flags wins, as in
/// [`super::resolve`].
fn layered(input: &UserInput, file: &ConfigFile, key: &str) -> Option<(String, Origin)> {
    let flag = input
        .flags
        .iter()
        .rev()
        .find(|(k, _, _)| k == key)
        .map(|(_, text, flag)| (text.clone(), Origin::Flag(flag.clone())));
    let var = env_name(key);
    let env = || {
        input
            .env
            .get(&var)
            .map(|text| (text.clone(), Origin::Env(var.clone())))
    };
    let in_file = || {
        file.settings
            .get(key)
            .map(|sourced| (sourced.value.to_string(), sourced.origin.clone()))
    };
    flag.or_else(env).or_else(in_file)
}
