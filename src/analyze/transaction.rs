//! One consumed message as a transaction, or the reason it is poison.
//!
//! Only the fields the analyzer uses are decoded (serde skips the rest), so a scenario may add
//! fields freely. A message that is not JSON, or lacks one of the fields, or carries one of the
//! wrong type, is [`Poison`]: counted and reported with its partition and offset, never a crash.

use serde::Deserialize;

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

#[derive(Deserialize)]
struct Fields {
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
pub fn parse(incoming: Incoming<'_>) -> Result<Transaction, Poison> {
    let poison = |reason: String| Poison {
        partition: incoming.position.partition,
        offset: incoming.position.offset,
        reason,
    };
    let payload = incoming
        .payload
        .ok_or_else(|| poison("empty message (no value)".into()))?;
    let fields: Fields = serde_json::from_slice(payload).map_err(|err| {
        poison(match err.classify() {
            serde_json::error::Category::Data => format!("not a transaction: {err}"),
            _ => format!("not JSON: {err}"),
        })
    })?;
    let time_ms = match (incoming.timestamp_ms, &fields.timestamp) {
        (Some(ms), _) => ms,
        (None, Some(text)) => chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|e| poison(format!("timestamp {text:?} is not RFC 3339: {e}")))?
            .timestamp_millis(),
        (None, None) => {
            return Err(poison(
                "no event time: no Kafka timestamp and no `timestamp` field".into(),
            ))
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

#[cfg(test)]
pub(crate) mod tests {
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
