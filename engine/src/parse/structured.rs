//! Flattening of structured values (JSON, YAML) into readable `key: value` text.

use serde_json::{Map, Value};

/// Render a scalar as text (strings without quotes).
pub(crate) fn scalar_text(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Object(_) => v.to_string(),
    }
}

/// Flatten a value into `key: value` lines, nested keys dotted, arrays of scalars joined by
/// `", "`, other arrays indexed (`key[0].field`).
pub(crate) fn flatten_lines(prefix: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if map.is_empty() && !prefix.is_empty() {
                out.push(format!("{prefix}: {{}}"));
            }
            for (k, val) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_lines(&key, val, out);
            }
        }
        Value::Array(items) => {
            if items.iter().all(|i| !i.is_array() && !i.is_object()) {
                let joined = items.iter().map(scalar_text).collect::<Vec<_>>().join(", ");
                if prefix.is_empty() {
                    out.push(joined);
                } else {
                    out.push(format!("{prefix}: {joined}"));
                }
            } else {
                for (i, item) in items.iter().enumerate() {
                    flatten_lines(&format!("{prefix}[{i}]"), item, out);
                }
            }
        }
        scalar => {
            if prefix.is_empty() {
                out.push(scalar_text(scalar));
            } else {
                out.push(format!("{prefix}: {}", scalar_text(scalar)));
            }
        }
    }
}

/// Flatten a value into one block of text (lines joined by `\n`).
pub(crate) fn flatten(v: &Value) -> String {
    let mut lines = Vec::new();
    flatten_lines("", v, &mut lines);
    lines.join("\n")
}

/// The title-like field of an object (`title`, `name`, `subject`), if it is a string.
pub(crate) fn title_field(map: &Map<String, Value>) -> Option<String> {
    ["title", "name", "subject"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_str).map(str::to_string))
}

/// Turn a structured value into blocks: a top-level array gives one Record per element; a
/// top-level object gives one Record per field, except that an array of objects under a field
/// gives one Record per element (with the field name as section path).
pub(crate) fn value_blocks(v: &Value, b: &mut super::DocBuilder) {
    use super::BlockKind::Record;
    match v {
        Value::Array(items) => {
            for item in items {
                b.push_with_path(Vec::new(), Record, &flatten(item));
            }
        }
        Value::Object(map) => {
            for (k, val) in map {
                match val {
                    Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
                        for item in items {
                            b.push_with_path(vec![k.clone()], Record, &flatten(item));
                        }
                    }
                    Value::Object(inner) if inner.values().any(|i| i.is_object()) => {
                        // A map of objects (e.g. `flags: {dark_mode: {...}}`): one record each.
                        for (ik, iv) in inner {
                            let mut lines = Vec::new();
                            flatten_lines(ik, iv, &mut lines);
                            b.push_with_path(vec![k.clone()], Record, &lines.join("\n"));
                        }
                    }
                    _ => {
                        let mut lines = Vec::new();
                        flatten_lines(k, val, &mut lines);
                        b.push_with_path(Vec::new(), Record, &lines.join("\n"));
                    }
                }
            }
        }
        scalar => b.push_with_path(Vec::new(), Record, &scalar_text(scalar)),
    }
}

/// Convert a YAML value into a JSON value (non-string keys are rendered as text; tags dropped).
pub(crate) fn yaml_to_json(v: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(|| Value::String(n.to_string()), Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                let key = match yaml_to_json(k) {
                    Value::String(s) => s,
                    other => scalar_text(&other),
                };
                out.insert(key, yaml_to_json(val));
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}
