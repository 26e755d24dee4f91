//! Conversions between settings and Rhai values: the script's `config()` map into setting
//! defaults, and resolved settings into `ctx.settings`.

use rhai::{Array, Dynamic, Map};

use crate::settings::{Limit, RawValue, Settings, TypedValue};

/// A value from `config()` as a raw setting value; `None` for shapes settings cannot take.
pub fn raw_value(value: &Dynamic) -> Option<RawValue> {
    if let Ok(i) = value.as_int() {
        return Some(RawValue::Int(i));
    }
    if let Ok(x) = value.as_float() {
        return Some(RawValue::Float(x));
    }
    if let Ok(b) = value.as_bool() {
        return Some(RawValue::Bool(b));
    }
    if value.is_string() {
        return Some(RawValue::Str(value.clone().into_string().ok()?));
    }
    if value.is_array() {
        let items = value.clone().into_typed_array::<Dynamic>().ok()?;
        return items
            .iter()
            .map(raw_value)
            .collect::<Option<Vec<_>>>()
            .map(RawValue::List);
    }
    None
}

/// `config().limits` (`#{ fraud_rate: [0.0, 1.0], customer_count: [1] }`) as the range of each
/// setting; `None` for any other shape.
pub fn limits(value: &Dynamic) -> Option<Vec<(String, Limit)>> {
    let map = value.read_lock::<Map>()?;
    map.iter()
        .map(|(key, range)| {
            let bounds: Vec<f64> = range
                .read_lock::<Array>()?
                .iter()
                .map(|b| {
                    b.as_float()
                        .ok()
                        .or_else(|| b.as_int().ok().map(|i| i as f64))
                })
                .collect::<Option<_>>()?;
            let limit = match bounds[..] {
                [min] => Limit {
                    min: Some(min),
                    max: None,
                },
                [min, max] if min <= max => Limit {
                    min: Some(min),
                    max: Some(max),
                },
                _ => return None,
            };
            Some((key.to_string(), limit))
        })
        .collect()
}

fn dynamic(value: &TypedValue) -> Dynamic {
    match value {
        TypedValue::Int(i) => Dynamic::from_int(*i),
        TypedValue::Float(x) => Dynamic::from_float(*x),
        TypedValue::Bool(b) => Dynamic::from_bool(*b),
        TypedValue::Str(s) => Dynamic::from(s.clone()),
        TypedValue::List(items) => {
            Dynamic::from_array(items.iter().map(dynamic).collect::<Array>())
        }
    }
}

/// Every setting as a Rhai map, for `ctx.settings`.
pub fn settings_map(settings: &Settings) -> Map {
    settings
        .values
        .iter()
        .map(|(key, value)| (key.as_str().into(), dynamic(value)))
        .collect()
}
