//! Ground truth: which events a fraud pattern made.
//!
//! A scenario marks an event it made by a fraud pattern with the reserved field `_fraud` (the
//! pattern's name). The engine takes the field off before the event is checked or encoded, so the
//! payload keeps the scenario's schema, and carries the name as the Kafka header `fraud_pattern`
//! (absent for legitimate events). With `--labels`, every event also gets a `_label` field:
//! `{"fraud": true, "pattern": "velocity_burst"}` or `{"fraud": false, "pattern": null}`.

use rhai::{Dynamic, Map};

use crate::encode::EncodeError;

/// The reserved field a scenario sets on events a fraud pattern made.
pub const FRAUD_FIELD: &str = "_fraud";

/// The field `--labels` adds.
pub const LABEL_FIELD: &str = "_label";

/// Removes `_fraud` from `event` and returns the pattern name, if it names one.
pub fn take_fraud_pattern(event: &mut Map, seq: i64) -> Result<Option<String>, EncodeError> {
    take_fraud_pattern_as(event, seq, |value| value)
}

/// [`take_fraud_pattern`], a label of another type named as the value `plain` makes of it: a
/// layer above keeps native values that stand for plain maps (the scenario state's), and a
/// label that is one is refused as the map it stands for.
pub fn take_fraud_pattern_as(
    event: &mut Map,
    seq: i64,
    plain: impl FnOnce(Dynamic) -> Dynamic,
) -> Result<Option<String>, EncodeError> {
    match event.remove(FRAUD_FIELD) {
        None => Ok(None),
        Some(value) if value.is_unit() => Ok(None),
        Some(value) if value.is_string() => Ok(Some(value.to_string())),
        Some(value) => Err(EncodeError::BadLabel {
            seq,
            found: plain(value).type_name().to_string(),
        }),
    }
}

/// The field `--meta` adds.
pub const META_FIELD: &str = "_meta";

/// Adds `_meta: #{revision, seq, function}` to `event`: which revision of the script made it,
/// as which event of the stream, in which function (`event` or a follow-up's).
pub fn add_meta(event: &mut Map, revision: u64, seq: i64, function: &str) {
    let mut meta = Map::new();
    meta.insert("revision".into(), Dynamic::from_int(revision as i64));
    meta.insert("seq".into(), Dynamic::from_int(seq));
    meta.insert("function".into(), Dynamic::from(function.to_string()));
    event.insert(META_FIELD.into(), Dynamic::from_map(meta));
}

/// Adds `_label: #{fraud, pattern}` to `event`.
pub fn add_label(event: &mut Map, pattern: Option<&str>) {
    let mut label = Map::new();
    label.insert("fraud".into(), Dynamic::from_bool(pattern.is_some()));
    label.insert(
        "pattern".into(),
        pattern.map_or(Dynamic::UNIT, |p| Dynamic::from(p.to_string())),
    );
    event.insert(LABEL_FIELD.into(), Dynamic::from_map(label));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fraud_field_is_taken_off_and_named() {
        let mut event = Map::new();
        event.insert("amount".into(), Dynamic::from_int(5));
        event.insert(
            FRAUD_FIELD.into(),
            Dynamic::from("card_testing".to_string()),
        );
        assert_eq!(
            take_fraud_pattern(&mut event, 0).unwrap().as_deref(),
            Some("card_testing")
        );
        assert!(!event.contains_key(FRAUD_FIELD));
        let mut legit = Map::new();
        legit.insert(FRAUD_FIELD.into(), Dynamic::UNIT);
        assert_eq!(take_fraud_pattern(&mut legit, 0).unwrap(), None);
        let mut bad = Map::new();
        bad.insert(FRAUD_FIELD.into(), Dynamic::from_int(1));
        assert!(take_fraud_pattern(&mut bad, 3).is_err());
    }

    #[test]
    fn labels_say_fraud_and_pattern() {
        let mut event = Map::new();
        add_label(&mut event, None);
        let label = event[LABEL_FIELD].clone().cast::<Map>();
        assert!(!label["fraud"].as_bool().unwrap());
        assert!(label["pattern"].is_unit());
    }
}
