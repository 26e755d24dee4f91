//! One raw setting value and where it came from, before it is checked against its type.

use std::fmt;
use std::path::PathBuf;

/// Where a setting's value came from, named in every error about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// A command-line flag, e.g. `--topic` or `--set fraud_rate=0.1`.
    Flag(String),
    /// An environment variable.
    Env(String),
    /// A line of the TOML config file.
    File {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the key, when it could be found.
        line: Option<usize>,
    },
    /// The scenario script's `config()`.
    Script(PathBuf),
    /// The engine's built-in default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::File {
                path,
                line: Some(line),
            } => write!(f, "{}:{line}", path.display()),
            Origin::File { path, line: None } => write!(f, "{}", path.display()),
            Origin::Script(path) => write!(f, "{} config()", path.display()),
            Origin::Default => write!(f, "built-in default"),
        }
    }
}

/// A setting's value as a source gave it.
///
/// Flags and environment variables give text, parsed by the type the setting expects; the config
/// file and the script give typed values.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// Text from a flag or an environment variable.
    Text(String),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string from a typed source.
    Str(String),
    /// A list of values.
    List(Vec<RawValue>),
}

impl fmt::Display for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawValue::Text(text) | RawValue::Str(text) => write!(f, "{text}"),
            RawValue::Int(i) => write!(f, "{i}"),
            RawValue::Float(x) => write!(f, "{x}"),
            RawValue::Bool(b) => write!(f, "{b}"),
            RawValue::List(items) => {
                let items: Vec<String> = items.iter().map(ToString::to_string).collect();
                write!(f, "[{}]", items.join(", "))
            }
        }
    }
}

impl RawValue {
    /// The value as a number, if it is one or is text that parses as one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            RawValue::Int(i) => Some(*i as f64),
            RawValue::Float(x) => Some(*x),
            RawValue::Text(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as an integer, if it is one or is text that parses as one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            RawValue::Int(i) => Some(*i),
            RawValue::Float(x) if x.fract() == 0.0 => Some(*x as i64),
            RawValue::Text(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as a boolean, if it is one or is text that says one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            RawValue::Bool(b) => Some(*b),
            RawValue::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Some(true),
                "false" | "0" | "no" | "off" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// The value as text, if it is text or a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            RawValue::Text(text) | RawValue::Str(text) => Some(text),
            _ => None,
        }
    }

    /// The value as a list: a typed list, or text of items separated by `,` or `-`.
    pub fn as_list(&self) -> Option<Vec<RawValue>> {
        match self {
            RawValue::List(items) => Some(items.clone()),
            RawValue::Text(text) => Some(
                text.split([',', '-'])
                    .map(|item| RawValue::Text(item.trim().to_string()))
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// A raw value with its origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced {
    /// The value.
    pub value: RawValue,
    /// Where it came from.
    pub origin: Origin,
}
