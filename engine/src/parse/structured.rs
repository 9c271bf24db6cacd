//! Flattening of structured values (JSON, YAML) into readable `key: value` text.

use serde_json::{Map, Value};

/// A JSON/YAML value that keeps object keys in document order (serde_json's `Map` sorts them).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OValue {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<OValue>),
    Object(Vec<(String, OValue)>),
}

impl OValue {
    fn is_container(&self) -> bool {
        matches!(self, OValue::Array(_) | OValue::Object(_))
    }

    /// Keys of an object (empty for other values).
    pub(crate) fn keys(&self) -> Vec<String> {
        match self {
            OValue::Object(fields) => fields.iter().map(|(k, _)| k.clone()).collect(),
            _ => Vec::new(),
        }
    }
}

struct OVisitor;

impl<'de> serde::de::Visitor<'de> for OVisitor {
    type Value = OValue;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<OValue, E> {
        Ok(OValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<OValue, E> {
        Ok(OValue::Number(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<OValue, E> {
        Ok(OValue::Number(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<OValue, E> {
        Ok(OValue::Number(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<OValue, E> {
        Ok(OValue::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<OValue, E> {
        Ok(OValue::String(v))
    }
    fn visit_unit<E>(self) -> Result<OValue, E> {
        Ok(OValue::Null)
    }
    fn visit_none<E>(self) -> Result<OValue, E> {
        Ok(OValue::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<OValue, D::Error> {
        serde::Deserialize::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<OValue, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(OValue::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<OValue, A::Error> {
        let mut out: Vec<(String, OValue)> = Vec::new();
        while let Some((k, v)) = map.next_entry::<OValue, OValue>()? {
            let key = match k {
                OValue::String(s) => s,
                other => scalar_text(&other),
            };
            // A repeated key replaces the earlier value, as in serde_json.
            if let Some(slot) = out.iter_mut().find(|(ek, _)| *ek == key) {
                slot.1 = v;
            } else {
                out.push((key, v));
            }
        }
        Ok(OValue::Object(out))
    }
}

impl<'de> serde::Deserialize<'de> for OValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OVisitor)
    }
}

/// Render a value as text (strings without quotes; containers compactly).
pub(crate) fn scalar_text(v: &OValue) -> String {
    match v {
        OValue::Null => "null".to_string(),
        OValue::Bool(b) => b.to_string(),
        OValue::Number(n) | OValue::String(n) => n.clone(),
        OValue::Array(items) => format!(
            "[{}]",
            items.iter().map(scalar_text).collect::<Vec<_>>().join(", ")
        ),
        OValue::Object(fields) => format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(k, v)| format!("{k}: {}", scalar_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Flatten a value into `key: value` lines, nested keys dotted, arrays of scalars joined by
/// `", "`, other arrays indexed (`key[0].field`).
pub(crate) fn flatten_lines(prefix: &str, v: &OValue, out: &mut Vec<String>) {
    match v {
        OValue::Object(fields) => {
            if fields.is_empty() && !prefix.is_empty() {
                out.push(format!("{prefix}: {{}}"));
            }
            for (k, val) in fields {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_lines(&key, val, out);
            }
        }
        OValue::Array(items) => {
            if items.iter().all(|i| !i.is_container()) {
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
pub(crate) fn flatten(v: &OValue) -> String {
    let mut lines = Vec::new();
    flatten_lines("", v, &mut lines);
    lines.join("\n")
}

/// The title-like field of an object (`title`, `name`, `subject`), if it is a string.
pub(crate) fn title_field(v: &OValue) -> Option<String> {
    let OValue::Object(fields) = v else {
        return None;
    };
    ["title", "name", "subject"].iter().find_map(|want| {
        fields.iter().find_map(|(k, v)| match v {
            OValue::String(s) if k == want => Some(s.clone()),
            _ => None,
        })
    })
}

/// Turn a structured value into blocks: a top-level array gives one Record per element; a
/// top-level object gives one Record per field, except that an array of objects (or a map of
/// objects) under a field gives one Record per element (with the field name as section path).
pub(crate) fn value_blocks(v: &OValue, b: &mut super::DocBuilder) {
    use super::BlockKind::Record;
    match v {
        OValue::Array(items) => {
            for item in items {
                b.push_with_path(Vec::new(), Record, &flatten(item));
            }
        }
        OValue::Object(fields) => {
            for (k, val) in fields {
                match val {
                    OValue::Array(items) if items.iter().any(OValue::is_container) => {
                        for item in items {
                            b.push_with_path(vec![k.clone()], Record, &flatten(item));
                        }
                    }
                    OValue::Object(inner)
                        if inner.iter().any(|(_, i)| matches!(i, OValue::Object(_))) =>
                    {
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

/// Convert a YAML value (which keeps key order) into an [`OValue`]; tags are dropped.
pub(crate) fn yaml_to_ovalue(v: serde_norway::Value) -> OValue {
    use serde_norway::Value as Y;
    match v {
        Y::Null => OValue::Null,
        Y::Bool(b) => OValue::Bool(b),
        Y::Number(n) => OValue::Number(n.to_string()),
        Y::String(s) => OValue::String(s),
        Y::Sequence(seq) => OValue::Array(seq.into_iter().map(yaml_to_ovalue).collect()),
        Y::Mapping(m) => OValue::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match yaml_to_ovalue(k) {
                        OValue::String(s) => s,
                        other => scalar_text(&other),
                    };
                    (key, yaml_to_ovalue(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => yaml_to_ovalue(t.value),
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
                    other => other.to_string(),
                };
                out.insert(key, yaml_to_json(val));
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}
