//! Rhai values written straight as JSON bytes, the event path's encoder.
//!
//! The bytes are serde_json's for the same value (a test holds them to it): keys in the map's
//! order, strings escaped as serde_json escapes them, numbers formatted by serde_json itself.
//! Writing directly skips serde's layers and scans strings sixteen bytes at a time: 2% fewer
//! instructions an event on the seed port, 1.5% on darooghe (valgrind).

use rhai::{Array, Dynamic, ImmutableString, Map};

use super::{Plain, ReadPlain};

/// Writes `map` as a JSON object into `out`. Fails, naming the field, on a value JSON cannot
/// hold: serde_json would write NaN and the infinities as `null`, and Rhai a function pointer
/// as its name, both silently.
/// `plain` reads the native values that stand for plain maps and arrays, written as those.
pub(super) fn write_object(
    out: &mut Vec<u8>,
    map: &Map,
    plain: Option<ReadPlain>,
) -> Result<(), String> {
    write_fields(out, map.iter(), plain)
}

/// Writes `fields`, a map's keys and values in its order, as a JSON object.
fn write_fields<'a>(
    out: &mut Vec<u8>,
    fields: impl Iterator<Item = (&'a rhai::Identifier, &'a Dynamic)>,
    plain: Option<ReadPlain>,
) -> Result<(), String> {
    out.push(b'{');
    for (i, (key, value)) in fields.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        write_value(out, value, key, plain)?;
    }
    out.push(b'}');
    Ok(())
}

/// Writes `items` as a JSON array; `key` is the field it is in, to name in an error.
fn write_items(
    out: &mut Vec<u8>,
    items: &[Dynamic],
    key: &str,
    plain: Option<ReadPlain>,
) -> Result<(), String> {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_value(out, item, key, plain)?;
    }
    out.push(b']');
    Ok(())
}

/// Writes one value; `key` is the field it is in, to name in an error.
fn write_value(
    out: &mut Vec<u8>,
    value: &Dynamic,
    key: &str,
    plain: Option<ReadPlain>,
) -> Result<(), String> {
    // Each kind asked by its tag, the commonest first: a failed `as_int` or `as_float` also
    // makes the type's name for its error, and a failed `read_lock` asks for a type id. The
    // strings and numbers of nearly every field are written here; the rest out of line, so
    // this stays small.
    if !value.is_shared() {
        if value.is_string() {
            if let Some(text) = value.read_lock::<ImmutableString>() {
                write_str(out, &text);
                return Ok(());
            }
        } else if value.is_int() {
            return write_number(out, value.as_int().unwrap_or_default());
        } else if value.is_float() {
            let x = value.as_float().unwrap_or_default();
            if x.is_finite() {
                return write_number(out, x);
            }
        }
    }
    write_other(out, value, key, plain)
}

/// Writes a value [`write_value`] does not: a shared one, a map, `()`, a boolean, an array, a
/// frozen value, the rare kinds, or one JSON cannot hold (an error naming `key`).
#[inline(never)]
fn write_other(
    out: &mut Vec<u8>,
    value: &Dynamic,
    key: &str,
    plain: Option<ReadPlain>,
) -> Result<(), String> {
    let refuse = |what: &str| format!("`{key}` is {what}, which JSON cannot hold");
    if value.is_shared() {
        // A value captured by a closure: write what it holds.
        let inner = value
            .read_lock::<Dynamic>()
            .ok_or_else(|| refuse("a value locked elsewhere"))?;
        return write_value(out, &inner, key, plain);
    }
    if value.is_float() {
        // Not finite: serde_json would write `null`.
        return Err(refuse(&value.as_float().unwrap_or_default().to_string()));
    }
    if let Some(map) = value.is_map().then(|| value.read_lock::<Map>()).flatten() {
        write_object(out, &map, plain)?;
    } else if value.is_unit() {
        out.extend_from_slice(b"null");
    } else if value.is_bool() {
        let x = value.as_bool().unwrap_or_default();
        out.extend_from_slice(if x { b"true" } else { b"false" });
    } else if let Some(items) = value
        .is_array()
        .then(|| value.read_lock::<Array>())
        .flatten()
    {
        write_items(out, &items, key, plain)?;
    } else if value.is_fnptr() {
        return Err(refuse("a function pointer"));
    } else if let Some(written) = plain.and_then(|read| {
        read(value, &mut |plain_value| {
            write_plain(out, plain_value, key, plain)
        })
    }) {
        written?;
    } else {
        // The rare kinds (a character, a BLOB, a native handle's type name): as Rhai's serde
        // support writes them.
        serde_json::to_writer(&mut *out, value).map_err(|err| err.to_string())?;
    }
    Ok(())
}

/// A native value written as the plain map or array it stands for.
fn write_plain(
    out: &mut Vec<u8>,
    value: Plain<'_>,
    key: &str,
    plain: Option<ReadPlain>,
) -> Result<(), String> {
    match value {
        Plain::Map(entries) => write_fields(out, entries.iter().map(|(k, v)| (k, v)), plain),
        Plain::Array(items) => write_items(out, items, key, plain),
    }
}

/// A number as serde_json formats it (`itoa` for integers, its shortest round trip for floats).
fn write_number(out: &mut Vec<u8>, x: impl serde::Serialize) -> Result<(), String> {
    serde_json::to_writer(&mut *out, &x).map_err(|err| err.to_string())
}

/// `text` as a JSON string, escaped as serde_json escapes it: `"`, `\` and the control
/// characters below 0x20 (`\b \t \n \f \r` by name, the rest as `\u00xx`); everything else,
/// non-ASCII included, as it is.
#[inline(always)]
fn write_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if may_need_escape(bytes) {
        write_escaped(out, bytes);
    } else {
        out.extend_from_slice(bytes);
    }
    out.push(b'"');
}

/// Copies `bytes` into `out`, escaping the bytes that need it, one by one.
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if let Some(escape) = escape(byte) {
            out.extend_from_slice(&bytes[start..i]);
            escape.write(out);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Whether any byte of `bytes` needs escaping. Because most text has nothing to escape, a
/// text of sixteen bytes or more is looked at sixteen bytes at a time, in a loop the compiler
/// makes a few vector instructions, and a shorter one as one or two eight-byte words read
/// from it (overlapping), each tested without a branch a byte. Darooghe's forty-odd keys and
/// strings an event took 1,400 instructions read as words only, a text under eight bytes byte by
/// byte (valgrind). A short text is not copied into a block to test: the block's read, wider
/// than the writes that built it, waited for them, 5% of darooghe's time (perf).
fn may_need_escape(bytes: &[u8]) -> bool {
    let len = bytes.len();
    if len < BLOCK {
        return short_may_need_escape(bytes);
    }
    let mut blocks = bytes.chunks_exact(BLOCK);
    let mut flagged = false;
    for block in &mut blocks {
        flagged |= block_needs_escape(block.try_into().expect("a whole block"));
    }
    if !blocks.remainder().is_empty() {
        // The last sixteen bytes, overlapping the blocks already read.
        flagged |= block_needs_escape(bytes[len - BLOCK..].try_into().expect("a whole block"));
    }
    flagged
}

/// How many bytes [`block_needs_escape`] looks at together.
const BLOCK: usize = 16;

/// Whether any of the bytes of `block` needs escaping.
fn block_needs_escape(block: &[u8; BLOCK]) -> bool {
    // Without a branch a byte, so that the loop becomes vector compares.
    let mut flagged = 0u8;
    for &byte in block {
        flagged |= u8::from(byte < 0x20) | u8::from(byte == b'"') | u8::from(byte == b'\\');
    }
    flagged != 0
}

/// [`may_need_escape`] for fewer than [`BLOCK`] bytes: each byte in one of two words read
/// from them (some in both), the rest of a word spaces, which need no escape.
fn short_may_need_escape(bytes: &[u8]) -> bool {
    let len = bytes.len();
    let word = |eight: &[u8]| u64::from_le_bytes(eight.try_into().expect("eight bytes"));
    let half = |four: &[u8]| u64::from(u32::from_le_bytes(four.try_into().expect("four bytes")));
    if len >= 8 {
        word_may_need_escape(word(&bytes[..8])) | word_may_need_escape(word(&bytes[len - 8..]))
    } else if len >= 4 {
        word_may_need_escape(half(&bytes[..4]) | half(&bytes[len - 4..]) << 32)
    } else if len > 0 {
        let spaces = (ONES * u64::from(b' ')) & !0xff_ffff;
        let three =
            u64::from(bytes[0]) | u64::from(bytes[len / 2]) << 8 | u64::from(bytes[len - 1]) << 16;
        word_may_need_escape(spaces | three)
    } else {
        false
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes in `word` needs escaping (the classic "has a byte less than
/// n" test, exact as a yes or no).
fn word_may_need_escape(word: u64) -> bool {
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGH_BITS;
    let control = below(word, 0x20);
    let quote = below(word ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
    control | quote | backslash != 0
}

/// How one byte is escaped.
enum Escape {
    /// A backslash and this letter (`"`, `\`, or the name of a control character).
    Short(u8),
    /// `\u00` and the byte in two lowercase hex digits.
    Unicode(u8),
}

impl Escape {
    fn write(self, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        match self {
            Escape::Short(letter) => out.extend_from_slice(&[b'\\', letter]),
            Escape::Unicode(byte) => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
        }
    }
}

/// The escape `byte` needs in a JSON string, if any.
fn escape(byte: u8) -> Option<Escape> {
    Some(match byte {
        b'"' => Escape::Short(b'"'),
        b'\\' => Escape::Short(b'\\'),
        0x08 => Escape::Short(b'b'),
        0x09 => Escape::Short(b't'),
        0x0a => Escape::Short(b'n'),
        0x0c => Escape::Short(b'f'),
        0x0d => Escape::Short(b'r'),
        0x00..=0x1f => Escape::Unicode(byte),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Rhai's serde support and serde_json write for `value`: the bytes before this
    /// writer, for the values both accept.
    fn serde_bytes(value: &Dynamic) -> Vec<u8> {
        serde_json::to_vec(value).unwrap()
    }

    fn written(map: Map) -> Vec<u8> {
        let mut out = Vec::new();
        write_object(&mut out, &map, None).unwrap();
        out
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        // Every ASCII byte at every place in texts of 1 to 18 bytes and of 31 to 35 (shorter
        // than a block, a block, blocks and a part), and text beyond ASCII.
        let mut texts: Vec<String> = (0u8..0x80)
            .flat_map(|b| {
                (0..18).chain(30..35).flat_map(move |len| {
                    (0..=len).map(move |at| {
                        let mut text = "abcdefghijklmnopqrstuvwxyz0123456789"[..len].to_string();
                        text.insert(at, char::from(b));
                        text
                    })
                })
            })
            .collect();
        texts.extend(
            [
                "",
                "x",
                "Tehran — تهران",
                "\u{7f}\u{80}\u{ffff}\u{10ffff}",
                "a \"quoted\" \\path\\ with\ttabs\nand lines\r\n",
                "twenty-four bytes plain!",
                "\u{1}\u{2}\u{1f}\u{1b}[0m",
            ]
            .map(String::from),
        );
        for text in texts {
            let mut map = Map::new();
            map.insert(text.as_str().into(), Dynamic::from(text.clone()));
            let value = Dynamic::from_map(map.clone());
            assert_eq!(
                String::from_utf8(written(map)).unwrap(),
                String::from_utf8(serde_bytes(&value)).unwrap(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn every_kind_of_value_is_written_as_rhai_s_serde_support_writes_it() {
        let mut nested = Map::new();
        nested.insert("lat".into(), Dynamic::from_float(35.6892));
        nested.insert("lng".into(), Dynamic::from_float(-51.389));
        nested.insert("none".into(), Dynamic::UNIT);
        let mut map = Map::new();
        for (i, x) in [
            0.0,
            -0.0,
            1.0,
            0.1,
            1e21,
            1e-7,
            5e-324,
            f64::MAX,
            123456.789,
        ]
        .into_iter()
        .enumerate()
        {
            map.insert(format!("float{i}").into(), Dynamic::from_float(x));
        }
        for (i, n) in [0, -1, 150_000, i64::MIN, i64::MAX].into_iter().enumerate() {
            map.insert(format!("int{i}").into(), Dynamic::from_int(n));
        }
        map.insert("yes".into(), Dynamic::TRUE);
        map.insert("no".into(), Dynamic::FALSE);
        map.insert("unit".into(), Dynamic::UNIT);
        map.insert("char".into(), Dynamic::from_char('"'));
        map.insert("blob".into(), Dynamic::from_blob(vec![0, 7, 255]));
        map.insert("place".into(), Dynamic::from_map(nested.clone()));
        map.insert(
            "list".into(),
            Dynamic::from_array(vec![
                Dynamic::from_int(1),
                "two".into(),
                Dynamic::from_map(nested.clone()),
                Dynamic::from_array(Vec::new()),
            ]),
        );
        map.insert("empty".into(), Dynamic::from_map(Map::new()));
        map.insert("shared".into(), Dynamic::from_map(nested).into_shared());
        map.insert("shared_text".into(), Dynamic::from("held").into_shared());
        let value = Dynamic::from_map(map.clone());
        assert_eq!(
            String::from_utf8(written(map)).unwrap(),
            String::from_utf8(serde_bytes(&value)).unwrap()
        );
    }

    #[test]
    fn values_json_cannot_hold_are_refused_naming_their_field() {
        for (value, said) in [
            (Dynamic::from_float(f64::NAN), "`x` is NaN"),
            (Dynamic::from_float(f64::INFINITY), "`x` is inf"),
            (
                Dynamic::from(rhai::FnPtr::new("f").unwrap()),
                "`x` is a function pointer",
            ),
        ] {
            let mut inner = Map::new();
            inner.insert("x".into(), Dynamic::from_array(vec![value]));
            let mut map = Map::new();
            map.insert("outer".into(), Dynamic::from_map(inner));
            let err = write_object(&mut Vec::new(), &map, None).unwrap_err();
            assert!(err.starts_with(said), "{err}");
        }
    }

    #[test]
    fn the_block_and_word_tests_flag_exactly_those_holding_a_byte_to_escape() {
        for b in 0u8..=255 {
            for at in 0..BLOCK {
                let mut block = *b"plain text block";
                block[at] = b;
                assert_eq!(
                    block_needs_escape(&block),
                    escape(b).is_some(),
                    "byte {b:#x} at {at}"
                );
                if at < 8 {
                    let word = u64::from_le_bytes(block[..8].try_into().unwrap());
                    assert_eq!(
                        word_may_need_escape(word),
                        escape(b).is_some(),
                        "byte {b:#x} at {at} of a word"
                    );
                }
            }
        }
    }
}
