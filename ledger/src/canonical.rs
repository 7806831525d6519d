//! The canonical JSON encoding that entry hashes are computed over. Pure: no I/O.
//!
//! Rules, applied recursively to a [`serde_json::Value`]:
//! - object keys are sorted by their UTF-8 bytes (Rust's `str` order), each key once;
//! - no whitespace anywhere;
//! - strings are escaped exactly as `serde_json` escapes them: `"` `\` and the control characters
//!   below U+0020 (as `\b \f \n \r \t` or `\u00xx`); everything else, non-ASCII included, is written as is;
//! - numbers are written as `serde_json` displays them: integers exactly, other numbers in the
//!   shortest form that parses back to the same `f64` (so `1.0` stays `1.0`).
//!
//! The result does not depend on serde_json's `preserve_order` feature. It is not RFC 8785 (JCS):
//! JCS sorts keys by UTF-16 code units and formats numbers differently. Nesting is limited to
//! [`MAX_DEPTH`] so that every encoded body parses back with serde_json's default recursion limit.

use serde_json::Value;

/// The deepest nesting of arrays and objects accepted (serde_json parses up to 128).
pub const MAX_DEPTH: usize = 100;

/// Why a value has no canonical encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// Arrays and objects nest deeper than [`MAX_DEPTH`].
    #[error("the value nests arrays and objects deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The value could not be turned into JSON at all.
    #[error("the value cannot be represented as JSON: {0}")]
    NotJson(String),
}

/// The canonical bytes of `value` (always valid UTF-8 JSON).
pub fn canonical_json(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(384);
    write_value(value, &mut out, 0)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            if depth >= MAX_DEPTH {
                return Err(CanonicalError::TooDeep);
            }
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out, depth + 1)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            if depth >= MAX_DEPTH {
                return Err(CanonicalError::TooDeep);
            }
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(key, out);
                out.push(b':');
                write_value(item, out, depth + 1)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Writes `s` as a JSON string with serde_json's escaping.
fn write_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn canon(v: &Value) -> String {
        String::from_utf8(canonical_json(v).unwrap()).unwrap()
    }

    #[test]
    fn keys_sorted_recursively_without_whitespace() {
        let v = json!({"b": 1, "a": {"z": [3, {"y": null, "x": true}], "c": "s"}});
        assert_eq!(canon(&v), r#"{"a":{"c":"s","z":[3,{"x":true,"y":null}]},"b":1}"#);
    }

    #[test]
    fn key_order_independent() {
        let a: Value = serde_json::from_str(r#"{"k1": 1, "k2": {"p": 2, "q": [1, 2]}, "k0": "x"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"k0":"x","k2":{"q":[1,2],"p":2},"k1":1}"#).unwrap();
        assert_eq!(canonical_json(&a).unwrap(), canonical_json(&b).unwrap());
    }

    #[test]
    fn strings_escape_like_serde_json() {
        let mut s = String::new();
        for c in (0u32..0x80).chain([0xe9, 0x2028, 0x1f600]) {
            s.push(char::from_u32(c).unwrap());
        }
        let v = Value::String(s.clone());
        assert_eq!(canon(&v), serde_json::to_string(&s).unwrap());
        let key_map = json!({ s.clone(): 1 });
        assert_eq!(
            canon(&key_map),
            format!("{{{}:1}}", serde_json::to_string(&s).unwrap())
        );
    }

    #[test]
    fn numbers_as_serde_json_prints_them_and_round_trip() {
        let v = json!([0, -1, u64::MAX, i64::MIN, 1.0, 0.1, 1e300, -2.5e-7]);
        let text = canon(&v);
        assert_eq!(text, serde_json::to_string(&v).unwrap());
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        assert_eq!(canon(&back), text);
    }

    #[test]
    fn canonical_output_is_a_fixed_point() {
        let v = json!({"z": {"b": [1, "two", {"d": 4, "c": 3}]}, "a": "\u{0}\n"});
        let once = canon(&v);
        let reparsed: Value = serde_json::from_str(&once).unwrap();
        assert_eq!(canon(&reparsed), once);
    }

    #[test]
    fn depth_is_limited_and_the_limit_parses_back() {
        let mut v = json!(1);
        for _ in 0..MAX_DEPTH {
            v = json!([v]);
        }
        let bytes = canonical_json(&v).unwrap();
        assert!(serde_json::from_slice::<Value>(&bytes).is_ok());
        let deeper = json!({ "x": v });
        assert_eq!(canonical_json(&deeper), Err(CanonicalError::TooDeep));
    }
}
