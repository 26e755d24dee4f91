//! Where a JSON object's top-level fields lie, found in one pass that checks the whole text is
//! JSON, without decoding a value.
//!
//! `sim analyze` reads a handful of an event's fields (`customer_id`, `amount`, ...) and its
//! detection rules sometimes one or two more (`location`). The analyzer decoded the message with
//! serde_json into a struct (11,800 instructions an event of darooghe, callgrind), and a rule
//! asking for another field scanned the text again to find it (10,200). One scan now does both:
//! 7,400 instructions, the analyzer's fields decoded from where it found them 3,000, and a rule's
//! read of another field decodes that field alone from the same places. Strings, most of an
//! event's bytes, are skipped eight bytes at a time.
//!
//! The check is serde_json's, so that what the analyzer refuses as not JSON does not change: the
//! grammar of RFC 8259 (numbers without leading zeros, the escapes `\" \\ \/ \b \f \n \r \t
//! \uXXXX`, no control character inside a string, only whitespace after the value), and no limit
//! on nesting, as serde_json has none for a value it skips. One difference: the whole text must be
//! UTF-8, where serde_json does not look at the bytes of a string it skips. A test holds
//! the scan to serde_json on thousands of broken texts.

use std::fmt;
use std::ops::Range;

/// Why a text is not JSON: what was expected, and at which byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// What the scan found wrong.
    pub what: &'static str,
    /// The byte offset where it did.
    pub at: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

impl std::error::Error for JsonError {}

/// One top-level field: where its key's bytes (between the quotes) and its value's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpan {
    /// The key, without its quotes; as written (it holds no escape, see [`Fields`]).
    pub key: Span,
    /// The value, whole: a string with its quotes, an object with its braces.
    pub value: Span,
}

/// Bytes `start..end` of a text, held in 32 bits (a text the scan places fields in is at most
/// 4 GiB, see [`object_fields`]). The places of a message's fields are kept with it in `sim
/// analyze`'s customer histories, made on the consumer's thread and dropped on a detection
/// thread: half the size is half the memory crossing between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The bytes as a range, to index the text with.
    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

impl From<Range<usize>> for Span {
    /// Within the 4 GiB [`object_fields`] places fields in.
    fn from(range: Range<usize>) -> Self {
        Self {
            start: range.start as u32,
            end: range.end as u32,
        }
    }
}

/// Whether the fields of a text of `len` bytes can be placed: [`Span`]'s offsets hold 4 GiB.
/// (Kafka's messages stay far under it; a longer text is read whole instead.)
fn placeable(len: usize) -> bool {
    len <= u32::MAX as usize
}

/// What the scan of a JSON text found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    /// An object, its fields in the order written (a key written twice is there twice).
    Object(Vec<FieldSpan>),
    /// An object with a key holding an escape (`"a\"b"`), whose bytes are not the key, or one
    /// longer than 4 GiB, whose places [`Span`] does not hold: the caller decodes the object with
    /// serde_json instead.
    EscapedKey,
    /// JSON, but not an object.
    NotAnObject,
}

/// Scans `text`, one JSON value; the top-level fields when it is an object.
pub fn object_fields(text: &[u8]) -> Result<Fields, JsonError> {
    if let Err(err) = std::str::from_utf8(text) {
        return Err(JsonError {
            what: "not UTF-8",
            at: err.valid_up_to(),
        });
    }
    let mut scan = Scanner { text, at: 0 };
    scan.space();
    let fields = if scan.peek() == Some(b'{') {
        scan.object_fields()?
    } else {
        scan.value()?;
        Fields::NotAnObject
    };
    scan.space();
    if scan.at < text.len() {
        return Err(scan.error("trailing characters"));
    }
    Ok(fields)
}

/// The position of the first byte from `at` on that ends a string's plain run: its closing
/// quote, an escape, or a control character (refused inside a string); `text.len()` if none.
///
/// Eight bytes at a time (most of an event's bytes are in its strings): a byte is flagged by
/// the classic zero-byte test on the word XORed with `"` and with `\`, and by the less-than
/// test for the control characters. Either test can also flag a byte after a true one (a
/// borrow), never one before it, so the lowest flagged byte is the first stop.
#[inline]
fn plain_run_end(text: &[u8], mut at: usize) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    while let Some(chunk) = text.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let stops = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word);
        let stops = stops & HIGH;
        if stops != 0 {
            return at + (stops.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&byte) = text.get(at) {
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            return at;
        }
        at += 1;
    }
    at
}

/// The closing bytes of the arrays and objects open, innermost last: the first 64 as bits of a
/// word (an event nests two or three deep, and a `Vec` would cost an allocation a value), the
/// rest, if any, in a `Vec`.
#[derive(Default)]
struct Open {
    /// How many are open.
    depth: usize,
    /// Bit `i` set: the `i`th open is an object.
    objects: u64,
    /// Beyond the 64th.
    deeper: Vec<u8>,
}

impl Open {
    fn push(&mut self, close: u8) {
        if self.depth < 64 {
            let bit = 1u64 << self.depth;
            if close == b'}' {
                self.objects |= bit;
            } else {
                self.objects &= !bit;
            }
        } else {
            self.deeper.push(close);
        }
        self.depth += 1;
    }

    fn last(&self) -> Option<u8> {
        match self.depth {
            0 => None,
            1..=64 => Some(if self.objects >> (self.depth - 1) & 1 == 1 {
                b'}'
            } else {
                b']'
            }),
            _ => self.deeper.last().copied(),
        }
    }

    fn pop(&mut self) {
        self.depth -= 1;
        if self.depth >= 64 {
            self.deeper.pop();
        }
    }
}

struct Scanner<'t> {
    text: &'t [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn error(&self, what: &'static str) -> JsonError {
        JsonError { what, at: self.at }
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    /// Expects `byte` (after whitespace) and steps over it.
    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), JsonError> {
        self.space();
        if self.peek() != Some(byte) {
            return Err(self.error(what));
        }
        self.at += 1;
        Ok(())
    }

    /// The top-level object, at its `{`: its fields, each value scanned whole.
    fn object_fields(&mut self) -> Result<Fields, JsonError> {
        self.at += 1;
        let mut fields = Vec::with_capacity(24);
        let mut escaped_key = false;
        self.space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Fields::Object(fields));
        }
        loop {
            self.space();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a key"));
            }
            let start = self.at + 1;
            escaped_key |= self.string()?;
            let key = start..self.at - 1;
            self.expect(b':', "expected `:`")?;
            self.space();
            let start = self.at;
            // Most values are strings and numbers: scanned here, without the nesting's stack.
            match self.peek() {
                Some(b'"') => {
                    self.string()?;
                }
                Some(b'{' | b'[') => self.value()?,
                _ => self.scalar()?,
            }
            fields.push(FieldSpan {
                key: key.into(),
                value: (start..self.at).into(),
            });
            self.space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    break;
                }
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
        Ok(if escaped_key || !placeable(self.text.len()) {
            Fields::EscapedKey
        } else {
            Fields::Object(fields)
        })
    }

    /// One value at the current byte, nested ones included. Iterative, so a deep text cannot
    /// overflow the stack.
    fn value(&mut self) -> Result<(), JsonError> {
        // The closing byte of each array or object open inside this value.
        let mut open = Open::default();
        'value: loop {
            self.space();
            match self.peek() {
                Some(open_byte @ (b'{' | b'[')) => {
                    self.at += 1;
                    self.space();
                    let close = if open_byte == b'{' { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.at += 1;
                    } else {
                        open.push(close);
                        if close == b'}' {
                            self.key()?;
                        }
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    self.string()?;
                }
                _ => self.scalar()?,
            }
            // A value ended: close what it ends, or go on to the next item.
            loop {
                let Some(close) = open.last() else {
                    return Ok(());
                };
                self.space();
                match self.peek() {
                    Some(b',') => {
                        self.at += 1;
                        if close == b'}' {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    Some(byte) if byte == close => {
                        self.at += 1;
                        open.pop();
                    }
                    _ if close == b'}' => return Err(self.error("expected `,` or `}`")),
                    _ => return Err(self.error("expected `,` or `]`")),
                }
            }
        }
    }

    /// A key of a nested object and its `:`.
    fn key(&mut self) -> Result<(), JsonError> {
        self.space();
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a key"));
        }
        self.string()?;
        self.expect(b':', "expected `:`")
    }

    /// A string at its opening quote; steps past the closing one. Whether it holds an escape.
    fn string(&mut self) -> Result<bool, JsonError> {
        let text = self.text;
        let mut at = self.at + 1;
        let mut escaped = false;
        loop {
            at = plain_run_end(text, at);
            match text.get(at) {
                Some(b'"') => {
                    self.at = at + 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    at += 1;
                    match text.get(at) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => at += 1,
                        Some(b'u') => {
                            let hex = text.get(at + 1..at + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                self.at = at;
                                return Err(self.error("invalid \\u escape"));
                            }
                            at += 5;
                        }
                        _ => {
                            self.at = at;
                            return Err(self.error("invalid escape"));
                        }
                    }
                }
                Some(_) => {
                    self.at = at;
                    return Err(self.error("control character in a string"));
                }
                None => {
                    self.at = at;
                    return Err(self.error("unterminated string"));
                }
            }
        }
    }

    /// A value that is neither a string, an array nor an object: a number or a literal.
    fn scalar(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => Err(self.error("expected a value")),
        }
    }

    /// A number: `-`, digits without a leading zero, a fraction, an exponent.
    fn number(&mut self) -> Result<(), JsonError> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.at += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.error("invalid number"));
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Result<(), JsonError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.error("invalid number"));
        }
        self.digits();
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), JsonError> {
        if !self.text[self.at..].starts_with(word) {
            return Err(self.error("expected a value"));
        }
        self.at += word.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rhai::{Dynamic, Map};
    use serde::de::IgnoredAny;

    use super::super::{json_map, json_value};
    use super::*;

    /// Texts the scan must accept, and the seeds the broken ones are made from.
    const DOCUMENTS: [&str; 9] = [
        r#"{"amount":474000,"commission_type":"flat","customer_id":"cust_231","device_info":{"app_version":"3.1.0","os":"iOS"},"failure_reason":null,"location":{"lat":36.2148,"lng":59.5993},"risk_level":1,"ok":true,"no":false,"timestamp":"2024-01-15T10:00:00.104Z"}"#,
        r#"{"b": 1, "a": "x", "c": {"z": null, "y": [1, -2, 3.5, "s}", true, {"k": []}]}}"#,
        r#" { "big" :18446744073709551615,"neg":-9223372036854775808 , "f": 1e300, "e": 0.1, "g": -0.5E-7 } "#,
        r#"{"twice": 1, "other": 2, "twice": "last"}"#,
        r#"{"s": "quote \" brace } bracket ] comma ,", "t": "\\ \/ \b \f \n \r \t", "after": [[], {}]}"#,
        r#"{"": "", "u": "\u00e9\ud83d\ude00 ü 🙂", "n": null, "yes": true, "no": false}"#,
        "{\n\t\"tabbed\"\r\n:\n[1,\n2]\n}",
        r#"[1, {"a": [2, [3]]}, "x"]"#,
        r#"{}"#,
    ];

    /// serde_json's verdict, on UTF-8 text: what the scan must agree with.
    fn serde_accepts(text: &[u8]) -> bool {
        std::str::from_utf8(text).is_ok() && serde_json::from_slice::<IgnoredAny>(text).is_ok()
    }

    #[test]
    fn a_span_gives_back_its_range_and_texts_past_4_gib_are_not_placed() {
        let span = Span::from(7..4_000_000_000);
        assert_eq!(span.range(), 7..4_000_000_000);
        assert!(placeable(u32::MAX as usize));
        assert!(!placeable(u32::MAX as usize + 1));
    }

    #[test]
    fn the_scan_accepts_and_refuses_what_serde_json_does() {
        let tricky = [
            "",
            " ",
            "{",
            "}",
            "{}x",
            "{} {}",
            "{,}",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{\"a\":1 \"b\":2}",
            "{\"a\" 1}",
            "{1:2}",
            "[1,]",
            "[,1]",
            "[1 2]",
            "[",
            "]",
            "[]]",
            "01",
            "-",
            "-0",
            "-01",
            "1.",
            ".5",
            "1.e5",
            "1e",
            "1e+",
            "1E-0",
            "+1",
            "0x10",
            "tru",
            "truee",
            "nul",
            "null",
            "NaN",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12G4\"",
            "\"\\uD800\"",
            "\"a\tb\"",
            "\"a\nb\"",
            "\"a\u{7f}b\"",
            "\"unterminated",
            "\"\\\"",
            "{\"a\":[}",
            "{\"a\":{]}",
            "[{\"a\":1]}",
            "\u{feff}{}",
            "{\"a\":1}\n",
        ];
        for text in tricky {
            assert_eq!(
                object_fields(text.as_bytes()).is_ok(),
                serde_accepts(text.as_bytes()),
                "{text:?}"
            );
        }
        for document in DOCUMENTS {
            assert!(object_fields(document.as_bytes()).is_ok(), "{document}");
        }
        // Not UTF-8: refused (serde_json would let it pass inside a string it skips).
        assert_eq!(
            object_fields(b"{\"a\": \"\xff\"}").unwrap_err().what,
            "not UTF-8"
        );

        // Each document broken a few thousand ways: a byte changed, dropped, doubled, or the
        // text cut short.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let interesting = b"{}[]\":,\\ -+.0123456789eEtrufalsn\t\n\x01x";
        let mut refused = 0;
        for document in DOCUMENTS {
            for _ in 0..3000 {
                let mut text = document.as_bytes().to_vec();
                for _ in 0..rng.random_range(1..=2) {
                    let at = rng.random_range(0..text.len());
                    match rng.random_range(0..4) {
                        0 => text[at] = interesting[rng.random_range(0..interesting.len())],
                        1 => drop(text.remove(at)),
                        2 => text.insert(at, text[at]),
                        _ => text.truncate(at),
                    }
                    if text.is_empty() {
                        break;
                    }
                }
                let ours = object_fields(&text);
                refused += usize::from(ours.is_err());
                assert_eq!(
                    ours.is_ok(),
                    serde_accepts(&text),
                    "{:?}: {ours:?}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
        // The mutations did break most texts: the comparison was not only of valid ones.
        assert!(refused > 15_000, "{refused}");
    }

    #[test]
    fn a_plain_run_ends_at_the_first_quote_backslash_or_control_character() {
        let naive = |text: &[u8], at: usize| {
            (at..text.len())
                .find(|&i| matches!(text[i], b'"' | b'\\' | 0..=0x1f))
                .unwrap_or(text.len())
        };
        // Every byte at every place of texts up to 20 bytes, from every start.
        for len in 0..=20 {
            for place in 0..len {
                for byte in 0..=255u8 {
                    let mut text = vec![b'a'; len];
                    text[place] = byte;
                    for start in 0..=len {
                        assert_eq!(
                            plain_run_end(&text, start),
                            naive(&text, start),
                            "{text:?} from {start}"
                        );
                    }
                }
            }
        }
        // Two bytes that matter in one word: the first wins, whatever the second.
        let bytes = [
            0, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff,
        ];
        for first in 0..16 {
            for second in first + 1..16 {
                for a in bytes {
                    for b in bytes {
                        let mut text = vec![b'x'; 16];
                        text[first] = a;
                        text[second] = b;
                        assert_eq!(plain_run_end(&text, 0), naive(&text, 0), "{text:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn nesting_has_no_limit_as_serde_json_skips_it() {
        // serde_json skips a value it does not decode without a depth limit; so does the scan,
        // and without recursion: 100,000 levels do not overflow the stack.
        for depth in [1, 127, 128, 129, 100_000] {
            for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
                let text = format!("{{\"a\":{}1{}}}", open.repeat(depth), close.repeat(depth));
                assert!(serde_accepts(text.as_bytes()), "{depth} {open}");
                assert!(object_fields(text.as_bytes()).is_ok(), "{depth} {open}");
                let unclosed = &text[..text.len() - 2];
                assert!(
                    object_fields(unclosed.as_bytes()).is_err(),
                    "{depth} {open}"
                );
            }
        }
    }

    #[test]
    fn arrays_and_objects_close_in_order_at_any_depth() {
        // Alternating arrays and objects 200 deep: the closers must come back in order, below the
        // 64 levels kept as bits and beyond them.
        let levels = 200;
        let mut open = String::new();
        let mut closers = Vec::new();
        for level in 0..levels {
            if level % 3 == 0 {
                open.push_str("{\"k\":");
                closers.push('}');
            } else {
                open.push('[');
                closers.push(']');
            }
        }
        let close: String = closers.iter().rev().collect();
        let text = format!("{{\"a\":{open}1{close}}}");
        assert!(serde_accepts(text.as_bytes()));
        assert!(object_fields(text.as_bytes()).is_ok());
        for level in [5, 63, 64, 65, 150] {
            let mut swapped = closers.clone();
            swapped[level] = if swapped[level] == '}' { ']' } else { '}' };
            let close: String = swapped.iter().rev().collect();
            let text = format!("{{\"a\":{open}1{close}}}");
            assert!(!serde_accepts(text.as_bytes()), "{level}");
            assert!(object_fields(text.as_bytes()).is_err(), "{level}");
        }
    }

    #[test]
    fn each_field_read_alone_is_the_entry_of_the_whole_map() {
        for document in DOCUMENTS {
            let text = document.as_bytes();
            let Fields::Object(fields) = object_fields(text).expect(document) else {
                assert!(document.starts_with('['), "{document}");
                continue;
            };
            let map = json_map(text).expect(document);
            let mut read = Map::new();
            for span in fields {
                let name = std::str::from_utf8(&text[span.key.range()]).unwrap();
                let value = json_value(&text[span.value.range()]).expect(document);
                read.insert(name.into(), value);
            }
            assert_eq!(
                format!("{:?}", Dynamic::from_map(read)),
                format!("{:?}", Dynamic::from_map(map)),
                "{document}"
            );
        }
        // A key with an escape is not its bytes; JSON that is not an object has no fields.
        assert_eq!(object_fields(br#"{"a\"b": 1}"#), Ok(Fields::EscapedKey));
        assert_eq!(
            object_fields(br#"{"a": {"b\"c": 1}}"#),
            Ok(Fields::Object(vec![FieldSpan {
                key: (2..3).into(),
                value: (6..17).into()
            }]))
        );
        for not_an_object in ["[1]", "3", "\"s\"", "null"] {
            assert_eq!(
                object_fields(not_an_object.as_bytes()),
                Ok(Fields::NotAnObject),
                "{not_an_object}"
            );
        }
    }

    #[test]
    fn an_error_names_what_and_where() {
        let err = object_fields(br#"{"a": 1 "b": 2}"#).unwrap_err();
        assert_eq!(err.to_string(), "expected `,` or `}` at byte 8");
        let err = object_fields(br#"{"a": [1, tru]}"#).unwrap_err();
        assert_eq!(err.to_string(), "expected a value at byte 10");
    }
}
