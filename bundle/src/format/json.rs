//! Canonical JSON: object keys sorted by byte order, no insignificant white
//! space, UTF-8, no trailing newline (spec section 3).
//!
//! Keys are sorted here explicitly, so the output never depends on whether
//! some other crate in the build turned on serde_json's `preserve_order`.
//! Never use this to re-encode bytes whose digest must be preserved (image
//! manifests are stored as the exact source bytes).

use serde::Serialize;
use serde_json::Value;

/// Serialize `value` as canonical JSON bytes.
pub fn to_canonical_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let value = serde_json::to_value(value)?;
    let mut out = Vec::with_capacity(256);
    write_value(&value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                write_value(val, out)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_recursively_and_is_compact() {
        let v = serde_json::json!({"b": 1, "a": {"z": [true, null, "x"], "B": 2.5}, "A": "é"});
        let out = to_canonical_vec(&v).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"A":"é","a":{"B":2.5,"z":[true,null,"x"]},"b":1}"#
        );
    }
}
