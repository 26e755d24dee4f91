//! One consumed message as a transaction, or the reason it is poison.
//!
//! Only the fields the analyzer uses are decoded (the scan finds the others and skips them), so
//! a scenario may add fields freely. A message that is not JSON, or lacks one of the fields, or
//! carries one of the wrong type, is [`Poison`]: counted and reported with its partition and
//! offset, never a crash.

use serde::Deserialize;

use crate::script::json::scan::{object_fields, FieldSpan, Fields};

/// The `status` of an approved transaction.
pub const APPROVED: &str = "approved";
/// The `status` of a declined transaction.
pub const DECLINED: &str = "declined";

/// Where a message sits in the input topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Position {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// A transaction event, as far as the analyzer reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// `transaction_id`.
    pub transaction_id: String,
    /// `customer_id` (also the message key).
    pub customer_id: String,
    /// `merchant_id`.
    pub merchant_id: String,
    /// `merchant_category`.
    pub category: String,
    /// `payment_method`.
    pub method: String,
    /// `status`: approved or declined.
    pub status: String,
    /// `amount` in rials.
    pub amount: i64,
    /// Event time, milliseconds since the epoch: the Kafka timestamp, else the `timestamp` field.
    pub time_ms: i64,
    /// Ground truth: the `fraud_pattern` header, when the event was made by a fraud pattern.
    pub pattern: Option<String>,
    /// Where it was read.
    pub position: Position,
}

impl Transaction {
    /// Whether the payment went through.
    pub fn approved(&self) -> bool {
        self.status == APPROVED
    }

    /// Whether the payment was declined.
    pub fn declined(&self) -> bool {
        self.status == DECLINED
    }
}

/// A message that could not be read as a transaction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Poison {
    /// Partition of the message.
    pub partition: i32,
    /// Offset of the message.
    pub offset: i64,
    /// Why it was refused.
    pub reason: String,
}

/// The fields the analyzer reads.
#[derive(Deserialize)]
struct ReadFields {
    transaction_id: String,
    customer_id: String,
    merchant_id: String,
    merchant_category: String,
    payment_method: String,
    status: String,
    amount: i64,
    #[serde(default)]
    timestamp: Option<String>,
}

/// What the consumer hands over for one message.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The value.
    pub payload: Option<&'a [u8]>,
    /// The Kafka timestamp (CreateTime), if the message has one.
    pub timestamp_ms: Option<i64>,
    /// The `fraud_pattern` header.
    pub pattern: Option<&'a str>,
    /// Where it was read.
    pub position: Position,
}

/// Reads `incoming` as a transaction.
///
/// The value is scanned once ([`object_fields`]: the whole text checked as JSON, as serde_json
/// checks it, and where each top-level field lies found), then only the fields read here are
/// decoded: the whole read 10,200 instructions an event, against about 13,000 when serde_json
/// decoded into a struct (11,800 of them serde_json's; callgrind, darooghe's events). The places
/// found let a detection rule read another field alone later without a second scan (see
/// [`crate::analyze::detect::Payload`]). A text with an escaped key (`"customer\u005fid"`) is
/// decoded with serde_json, which reads such keys.
pub fn parse(incoming: Incoming<'_>) -> Result<Transaction, Poison> {
    parse_with_fields(incoming).map(|(tx, _)| tx)
}

/// Reads `incoming` as [`parse`] does, and gives where the value's top-level fields lie too
/// (`None` when the value was decoded with serde_json), for the detection rules.
pub fn parse_with_fields(
    incoming: Incoming<'_>,
) -> Result<(Transaction, Option<Vec<FieldSpan>>), Poison> {
    let poison = |reason: String| Poison {
        partition: incoming.position.partition,
        offset: incoming.position.offset,
        reason,
    };
    let payload = incoming
        .payload
        .ok_or_else(|| poison("empty message (no value)".into()))?;
    let (fields, spans) = match object_fields(payload) {
        Ok(Fields::Object(spans)) => (read_fields(payload, &spans), Some(spans)),
        Ok(Fields::EscapedKey) => (
            serde_json::from_slice(payload).map_err(|err| err.to_string()),
            None,
        ),
        Ok(Fields::NotAnObject) => (Err("the value is not a JSON object".into()), None),
        Err(err) => return Err(poison(format!("not JSON: {err}"))),
    };
    let fields = fields.map_err(|reason| poison(format!("not a transaction: {reason}")))?;
    let tx = assemble(fields, incoming).map_err(poison)?;
    Ok((tx, spans))
}

/// The transaction of `fields` read from `incoming`, or why it has no event time.
fn assemble(fields: ReadFields, incoming: Incoming<'_>) -> Result<Transaction, String> {
    let time_ms = match (incoming.timestamp_ms, &fields.timestamp) {
        (Some(ms), _) => ms,
        (None, Some(text)) => chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|e| format!("timestamp {text:?} is not RFC 3339: {e}"))?
            .timestamp_millis(),
        (None, None) => {
            return Err("no event time: no Kafka timestamp and no `timestamp` field".into())
        }
    };
    Ok(Transaction {
        transaction_id: fields.transaction_id,
        customer_id: fields.customer_id,
        merchant_id: fields.merchant_id,
        category: fields.merchant_category,
        method: fields.payment_method,
        status: fields.status,
        amount: fields.amount,
        time_ms,
        pattern: incoming.pattern.map(str::to_string),
        position: incoming.position,
    })
}

/// The names of the fields read, in the order of [`ReadFields`]' members.
const READ: [&str; 8] = [
    "transaction_id",
    "customer_id",
    "merchant_id",
    "merchant_category",
    "payment_method",
    "status",
    "amount",
    "timestamp",
];

/// The fields read, decoded from where the scan found them; what is wrong otherwise, worded as
/// serde_json words it for the struct (a field missing, written twice, or of another type).
fn read_fields(text: &[u8], spans: &[FieldSpan]) -> Result<ReadFields, String> {
    let mut found: [Option<&[u8]>; READ.len()] = [None; READ.len()];
    for span in spans {
        let key = &text[span.key.range()];
        let Some(index) = READ.iter().position(|name| name.as_bytes() == key) else {
            continue;
        };
        if found[index].replace(&text[span.value.range()]).is_some() {
            return Err(format!("duplicate field `{}`", READ[index]));
        }
    }
    let value =
        |index: usize| found[index].ok_or_else(|| format!("missing field `{}`", READ[index]));
    let string = |index: usize| decode_string(value(index)?, READ[index]);
    Ok(ReadFields {
        transaction_id: string(0)?,
        customer_id: string(1)?,
        merchant_id: string(2)?,
        merchant_category: string(3)?,
        payment_method: string(4)?,
        status: string(5)?,
        amount: decode_integer(value(6)?, READ[6])?,
        timestamp: match found[7] {
            None | Some(b"null") => None,
            Some(raw) => Some(decode_string(raw, READ[7])?),
        },
    })
}

/// A JSON string's text (`raw` with its quotes, checked by the scan).
fn decode_string(raw: &[u8], name: &str) -> Result<String, String> {
    let Some(inner) = raw.strip_prefix(b"\"").and_then(|r| r.strip_suffix(b"\"")) else {
        return Err(format!(
            "invalid type: {}, expected a string in `{name}`",
            kind(raw)
        ));
    };
    if inner.contains(&b'\\') {
        return serde_json::from_slice(raw).map_err(|err| format!("`{name}`: {err}"));
    }
    std::str::from_utf8(inner)
        .map(str::to_owned)
        .map_err(|err| format!("`{name}`: {err}"))
}

/// A JSON number that is an integer in `i64`'s range.
fn decode_integer(raw: &[u8], name: &str) -> Result<i64, String> {
    let found = kind(raw);
    if found != "integer" {
        return Err(format!("invalid type: {found}, expected i64 in `{name}`"));
    }
    let digits = std::str::from_utf8(raw).map_err(|err| format!("`{name}`: {err}"))?;
    digits
        .parse()
        .map_err(|_| format!("invalid value: {digits}, out of i64's range in `{name}`"))
}

/// What kind of JSON value `raw` is, for a message.
fn kind(raw: &[u8]) -> &'static str {
    match raw.first() {
        Some(b'"') => "string",
        Some(b'{') => "map",
        Some(b'[') => "sequence",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ if raw.iter().all(|b| *b == b'-' || b.is_ascii_digit()) => "integer",
        _ => "floating point",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// A transaction for tests: customer, amount, event time in seconds, offset.
    pub fn tx(customer: &str, amount: i64, seconds: i64, offset: i64) -> Transaction {
        Transaction {
            transaction_id: format!("tx-{offset}"),
            customer_id: customer.into(),
            merchant_id: "merch_1".into(),
            category: "retail".into(),
            method: "pos".into(),
            status: APPROVED.into(),
            amount,
            time_ms: seconds * 1000,
            pattern: None,
            position: Position {
                partition: 0,
                offset,
            },
        }
    }

    fn incoming(payload: &[u8]) -> Incoming<'_> {
        Incoming {
            payload: Some(payload),
            timestamp_ms: None,
            pattern: Some("card_testing"),
            position: Position {
                partition: 2,
                offset: 7,
            },
        }
    }

    const EVENT: &str = r#"{"transaction_id":"t1","timestamp":"2026-01-01T00:00:01Z","customer_id":"cust_1","merchant_id":"merch_2","merchant_category":"retail","payment_method":"pos","amount":150000,"status":"approved","extra":[1,2]}"#;

    #[test]
    fn a_transaction_is_read_with_its_label_and_event_time() {
        let tx = parse(incoming(EVENT.as_bytes())).unwrap();
        assert_eq!(tx.customer_id, "cust_1");
        assert_eq!(tx.amount, 150_000);
        assert_eq!(tx.time_ms, 1_767_225_601_000);
        assert_eq!(tx.pattern.as_deref(), Some("card_testing"));
        assert!(tx.approved() && !tx.declined());
        // The Kafka timestamp wins: it is the event time by contract and needs no parsing.
        let mut with_ts = incoming(EVENT.as_bytes());
        with_ts.timestamp_ms = Some(5);
        assert_eq!(parse(with_ts).unwrap().time_ms, 5);
    }

    /// What `parse` gave when it decoded the value with serde_json into the struct: the yardstick
    /// for the scan (same transactions, same texts refused).
    fn parse_with_serde(incoming: Incoming<'_>) -> Option<Transaction> {
        let fields: ReadFields = serde_json::from_slice(incoming.payload?).ok()?;
        assemble(fields, incoming).ok()
    }

    #[test]
    fn the_scan_reads_what_serde_json_read() {
        let documents = [
            EVENT.to_string(),
            EVENT.replace("\"retail\"", "\"re\\u0074ail \\\" \\n\""),
            EVENT.replace("\"customer_id\"", "\"customer\\u005fid\""),
            EVENT.replace("150000", "-9223372036854775808"),
            EVENT.replace("150000", "9223372036854775808"),
            EVENT.replace("150000", "150000.0"),
            EVENT.replace("150000", "1e5"),
            EVENT.replace("150000", "\"150000\""),
            EVENT.replace("\"pos\"", "7"),
            EVENT.replace("\"pos\"", "null"),
            EVENT.replace("\"2026-01-01T00:00:01Z\"", "null"),
            EVENT.replace("\"2026-01-01T00:00:01Z\"", "5"),
            EVENT.replace(
                "\"status\":\"approved\"",
                "\"status\":\"approved\",\"status\":\"x\"",
            ),
            EVENT.replace("\"extra\":[1,2]", "\"extra\":[1,2],\"extra\":{\"a\":[{}]}"),
            EVENT.replace("\"merchant_id\":\"merch_2\",", ""),
            format!(" \n{EVENT}\t "),
            "[1,2]".to_string(),
            "{}".to_string(),
        ];
        let check = |text: &[u8]| {
            let ours = parse(incoming(text));
            let serde = parse_with_serde(incoming(text));
            assert_eq!(
                ours.as_ref().ok(),
                serde.as_ref(),
                "{}: {ours:?}",
                String::from_utf8_lossy(text)
            );
            ours.is_ok()
        };
        let read = documents.iter().filter(|d| check(d.as_bytes())).count();
        assert_eq!(read, 6, "the valid documents above");
        // And EVENT broken a few thousand ways.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let interesting = b"{}[]\":,\\ -.019eEtrufalsn";
        for _ in 0..5000 {
            let mut text = EVENT.as_bytes().to_vec();
            let at = rng.random_range(0..text.len());
            match rng.random_range(0..3) {
                0 => text[at] = interesting[rng.random_range(0..interesting.len())],
                1 => drop(text.remove(at)),
                _ => text.insert(at, interesting[rng.random_range(0..interesting.len())]),
            }
            check(&text);
        }
    }

    #[test]
    fn poison_names_its_place_and_reason() {
        let not_json = parse(incoming(b"hello")).unwrap_err();
        assert_eq!((not_json.partition, not_json.offset), (2, 7));
        assert!(
            not_json.reason.starts_with("not JSON"),
            "{}",
            not_json.reason
        );
        let lacking = parse(incoming(br#"{"transaction_id":"t1"}"#)).unwrap_err();
        assert!(
            lacking.reason.contains("missing field"),
            "{}",
            lacking.reason
        );
        let wrong = EVENT.replace("150000", "\"lots\"");
        assert!(parse(incoming(wrong.as_bytes()))
            .unwrap_err()
            .reason
            .contains("invalid type"));
        let mut empty = incoming(b"");
        empty.payload = None;
        assert!(parse(empty).unwrap_err().reason.contains("empty"));
        let untimed = EVENT.replace("\"timestamp\":\"2026-01-01T00:00:01Z\",", "");
        assert!(parse(incoming(untimed.as_bytes()))
            .unwrap_err()
            .reason
            .contains("no event time"));
    }
}
