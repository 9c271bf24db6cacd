//! Metadata filters, applied inside search (they restrict candidates before top-k).
//!
//! Two spellings of the same conditions (all must hold):
//! - JSON: a list of `{"field": "doc_type", "op": "eq", "value": "faq"}`, or an object shorthand
//!   `{"doc_type": "faq", "size_bytes": {"gt": 1000}}`;
//! - short: `field<op>value` with `:` or `=` (eq), `!=`, `~` (contains), `!~` (not contains),
//!   `^` (starts with), `$` (ends with), `>`, `<`, `>=`, `<=`; `field=[a,b]` (in),
//!   `field!=[a,b]` (not in), `field~/re/` (regex), `field` (exists), `!field` (not exists).
//!   Several conditions are separated by `;` or given as separate strings.
//!
//! Fields: document columns (`id`, `source`, `title`, `extension`, `mime`, `doc_type`/`type`,
//! `size_bytes`/`size`, `modified_at`, `ingested_at`, `char_count`, `word_count`, `line_count`,
//! `chunk_count`), `section` (the chunk's section path), `metadata.<key>` (user metadata;
//! `metadata.a.b` for nested objects), and any other name, looked up as a top-level key in user
//! metadata, then in parser metadata.
//!
//! In the short syntax a regex `~/…/` may contain `;`: it ends at the `/` that is followed by
//! `;` or the end; quotes protect `;` in other values (`title="a;b"`).

use rusqlite::types::Value as SqlValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    Gt,
    Lt,
    Ge,
    Le,
    In,
    NotIn,
    Regex,
    Exists,
    NotExists,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub value: Option<Value>,
}

/// A filter as clients send it: short-syntax strings, condition objects, or a shorthand object.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FilterInput {
    Short(String),
    List(Vec<FilterItem>),
    #[schema(value_type = Object)]
    Object(serde_json::Map<String, Value>),
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FilterItem {
    Short(String),
    Condition(Condition),
}

/// Operators of the short syntax, longest first so `>=` wins over `>`.
const SHORT_OPS: &[(&str, Op)] = &[
    (">=", Op::Ge),
    ("<=", Op::Le),
    ("!=", Op::Ne),
    ("!~", Op::NotContains),
    (":", Op::Eq),
    ("=", Op::Eq),
    ("~", Op::Contains),
    ("^", Op::StartsWith),
    ("$", Op::EndsWith),
    (">", Op::Gt),
    ("<", Op::Lt),
];

fn valid_field_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'
}

/// Parses one or more `;`-separated short-syntax conditions.
pub fn parse_short(input: &str) -> Result<Vec<Condition>> {
    split_outside_brackets(input)
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_one)
        .collect()
}

/// Splits at `;` except inside `[…]` lists, `"…"` quotes and `~/…/` regular expressions, so a
/// pattern like `code~/^a;b$/` stays whole. A regex ends at a `/` followed by optional spaces
/// and then `;` or the end of the input; `\/` inside it is an escaped slash.
fn split_outside_brackets(s: &str) -> Vec<&str> {
    let (mut depth, mut quoted, mut regex, mut start, mut parts) = (0i32, false, false, 0, vec![]);
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if regex {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '/' {
                let after = s[i + 1..].trim_start();
                regex = !(after.is_empty() || after.starts_with(';'));
            }
            continue;
        }
        match c {
            '"' => quoted = !quoted,
            '/' if !quoted && depth == 0 && s[start..i].trim_end().ends_with('~') => regex = true,
            '[' if !quoted => depth += 1,
            ']' if !quoted => depth -= 1,
            ';' if !quoted && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_one(term: &str) -> Result<Condition> {
    let bad = |msg: String| Error::InvalidInput(format!("invalid filter `{term}`: {msg}"));
    if let Some(field) = term.strip_prefix('!')
        && !field.is_empty()
        && field.chars().all(valid_field_char)
    {
        return Ok(Condition {
            field: field.into(),
            op: Op::NotExists,
            value: None,
        });
    }
    let field_end = term
        .find(|c: char| !valid_field_char(c))
        .unwrap_or(term.len());
    let field = &term[..field_end];
    if field.is_empty() {
        return Err(bad(
            "it must start with a field name (letters, digits, `_`, `.`, `-`)".into(),
        ));
    }
    let rest = &term[field_end..];
    if rest.is_empty() {
        return Ok(Condition {
            field: field.into(),
            op: Op::Exists,
            value: None,
        });
    }
    let (sym, mut op) = SHORT_OPS
        .iter()
        .find(|(sym, _)| rest.starts_with(sym))
        .copied()
        .ok_or_else(|| {
            bad(format!(
                "unknown operator at `{rest}`; use one of : = != ~ !~ ^ $ > < >= <="
            ))
        })?;
    let raw = rest[sym.len()..].trim();
    if raw.is_empty() {
        return Err(bad(format!("no value after `{sym}`")));
    }
    let value = if raw.starts_with('[') {
        if !raw.ends_with(']') {
            return Err(bad("a list value must end with `]`".into()));
        }
        op = match op {
            Op::Eq => Op::In,
            Op::Ne => Op::NotIn,
            _ => return Err(bad(format!("a list value needs `=` or `!=`, not `{sym}`"))),
        };
        Value::Array(
            split_list(&raw[1..raw.len() - 1])
                .into_iter()
                .map(|s| typed_value(s.trim()))
                .collect(),
        )
    } else if op == Op::Contains && raw.len() >= 2 && raw.starts_with('/') && raw.ends_with('/') {
        op = Op::Regex;
        Value::String(raw[1..raw.len() - 1].to_string())
    } else {
        typed_value(raw)
    };
    let cond = Condition {
        field: field.into(),
        op,
        value: Some(value),
    };
    validate(&cond)?;
    Ok(cond)
}

fn split_list(s: &str) -> Vec<&str> {
    let (mut quoted, mut start, mut parts) = (false, 0, vec![]);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// `42` → number, `true` → bool, `"quoted"` → string, anything else → string.
fn typed_value(raw: &str) -> Value {
    if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
        return Value::String(raw[1..raw.len() - 1].to_string());
    }
    if let Ok(i) = raw.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = raw.parse::<f64>()
        && f.is_finite()
    {
        return Value::from(f);
    }
    match raw {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(raw.to_string()),
    }
}

impl FilterInput {
    pub fn conditions(&self) -> Result<Vec<Condition>> {
        let conds = match self {
            FilterInput::Short(s) => parse_short(s)?,
            FilterInput::List(items) => {
                let mut out = vec![];
                for item in items {
                    match item {
                        FilterItem::Short(s) => out.extend(parse_short(s)?),
                        FilterItem::Condition(c) => out.push(c.clone()),
                    }
                }
                out
            }
            FilterInput::Object(map) => {
                let mut out = vec![];
                for (field, v) in map {
                    match v {
                        Value::Object(ops) => {
                            for (op, value) in ops {
                                let op: Op = serde_json::from_value(Value::String(op.clone()))
                                    .map_err(|_| {
                                        Error::InvalidInput(format!(
                                            "invalid filter on `{field}`: unknown operator `{op}`"
                                        ))
                                    })?;
                                out.push(Condition {
                                    field: field.clone(),
                                    op,
                                    value: Some(value.clone()),
                                });
                            }
                        }
                        other => out.push(Condition {
                            field: field.clone(),
                            op: Op::Eq,
                            value: Some(other.clone()),
                        }),
                    }
                }
                out
            }
        };
        for c in &conds {
            validate(c)?;
        }
        Ok(conds)
    }
}

fn validate(c: &Condition) -> Result<()> {
    let bad = |msg: &str| {
        Err(Error::InvalidInput(format!(
            "invalid filter on `{}`: {msg}",
            c.field
        )))
    };
    if c.field.is_empty() || !c.field.chars().all(valid_field_char) {
        return bad("field names may only contain letters, digits, `_`, `.` and `-`");
    }
    match (c.op, &c.value) {
        (Op::Exists | Op::NotExists, _) => Ok(()),
        (_, None | Some(Value::Null)) => bad("this operator needs a value"),
        (Op::In | Op::NotIn, Some(Value::Array(a))) if !a.is_empty() => {
            if a.iter()
                .all(|v| v.is_string() || v.is_number() || v.is_boolean())
            {
                Ok(())
            } else {
                bad("list items must be strings, numbers or booleans")
            }
        }
        (Op::In | Op::NotIn, _) => bad("`in` and `not_in` need a non-empty list"),
        (Op::Regex, Some(Value::String(p))) => regex::Regex::new(p)
            .map(|_| ())
            .or_else(|e| bad(&format!("invalid regular expression: {e}"))),
        (Op::Regex, _) => bad("`regex` needs a string pattern"),
        (Op::Gt | Op::Lt | Op::Ge | Op::Le, Some(v)) if !(v.is_number() || v.is_string()) => {
            bad("comparisons need a number or a string")
        }
        (Op::Contains | Op::NotContains | Op::StartsWith | Op::EndsWith, Some(v))
            if !(v.is_string() || v.is_number() || v.is_boolean()) =>
        {
            bad("this operator needs a string")
        }
        (_, Some(Value::Object(_) | Value::Array(_))) => {
            bad("the value must be a string, number or boolean")
        }
        _ => Ok(()),
    }
}

const DOC_COLUMNS: &[(&str, &str)] = &[
    ("id", "d.id"),
    ("document_id", "d.id"),
    ("source", "d.source"),
    ("path", "d.source"),
    ("title", "d.title"),
    ("extension", "d.extension"),
    ("ext", "d.extension"),
    ("mime", "d.mime"),
    ("doc_type", "d.doc_type"),
    ("type", "d.doc_type"),
    ("size_bytes", "d.size_bytes"),
    ("size", "d.size_bytes"),
    ("modified_at", "d.modified_at"),
    ("ingested_at", "d.ingested_at"),
    ("char_count", "d.char_count"),
    ("word_count", "d.word_count"),
    ("line_count", "d.line_count"),
    ("chunk_count", "d.chunk_count"),
];

/// The `documents` column a field name (or its alias) stands for, e.g. `type` → `doc_type`.
pub fn document_column(field: &str) -> Option<&'static str> {
    DOC_COLUMNS
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, col)| col.trim_start_matches("d."))
}

/// Where a field's value lives: a SQL expression, and for JSON fields the document and path.
struct FieldRef {
    expr: String,
    json: Option<(String, String)>,
}

fn field_ref(field: &str) -> FieldRef {
    if let Some((_, col)) = DOC_COLUMNS.iter().find(|(name, _)| *name == field) {
        return FieldRef {
            expr: (*col).to_string(),
            json: None,
        };
    }
    if field == "section" {
        return FieldRef {
            expr: "(SELECT group_concat(value, ' / ') FROM json_each(c.section_path))".into(),
            json: None,
        };
    }
    let json_path = |key: &str| format!("$.\"{key}\"");
    if let Some(key) = field.strip_prefix("metadata.") {
        // `metadata.a.b` reaches into nested objects. Field names were validated (no quotes),
        // so each segment can be quoted into the JSON path as it is.
        let p = format!(
            "${}",
            key.split('.')
                .map(|k| format!(".\"{k}\""))
                .collect::<String>()
        );
        return FieldRef {
            expr: format!("json_extract(d.metadata, '{p}')"),
            json: Some(("d.metadata".into(), p)),
        };
    }
    let p = json_path(field);
    FieldRef {
        expr: format!(
            "coalesce(json_extract(d.metadata, '{p}'), json_extract(d.format_metadata, '{p}'))"
        ),
        json: Some(("d.metadata".into(), p)),
    }
}

fn sql_value(v: &Value) -> SqlValue {
    match v {
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(SqlValue::Integer)
            .or_else(|| n.as_f64().map(SqlValue::Real))
            .unwrap_or(SqlValue::Null),
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Compiles conditions into a SQL boolean expression over `documents d` and `chunks c`, with
/// positional parameters. Field names were validated, so interpolating them is safe.
pub fn to_sql(conds: &[Condition]) -> (String, Vec<SqlValue>) {
    if conds.is_empty() {
        return ("1".into(), vec![]);
    }
    let mut params = vec![];
    let parts: Vec<String> = conds
        .iter()
        .map(|c| {
            let f = field_ref(&c.field);
            let x = &f.expr;
            let v = c.value.as_ref().unwrap_or(&Value::Null);
            let mut p = |val: SqlValue| {
                params.push(val);
                "?".to_string()
            };
            match c.op {
                Op::Eq => format!("{x} = {}", p(sql_value(v))),
                Op::Ne => format!("({x} IS NULL OR {x} != {})", p(sql_value(v))),
                Op::Gt => format!("{x} > {}", p(sql_value(v))),
                Op::Lt => format!("{x} < {}", p(sql_value(v))),
                Op::Ge => format!("{x} >= {}", p(sql_value(v))),
                Op::Le => format!("{x} <= {}", p(sql_value(v))),
                Op::Contains | Op::NotContains => {
                    let text = text_of(v);
                    let scalar = format!("instr(lower({x}), lower({})) > 0", p(SqlValue::Text(text.clone())));
                    let expr = match &f.json {
                        Some((doc, path)) => format!(
                            "(CASE WHEN json_type({doc}, '{path}') = 'array' THEN EXISTS (SELECT 1 FROM json_each({doc}, '{path}') WHERE value = {}) ELSE {scalar} END)",
                            p(sql_value(v))
                        ),
                        None => scalar,
                    };
                    if c.op == Op::Contains {
                        format!("coalesce({expr}, 0)")
                    } else {
                        format!("NOT coalesce({expr}, 0)")
                    }
                }
                Op::StartsWith => format!("{x} LIKE {} ESCAPE '\\'", p(SqlValue::Text(format!("{}%", like_escape(&text_of(v)))))),
                Op::EndsWith => format!("{x} LIKE {} ESCAPE '\\'", p(SqlValue::Text(format!("%{}", like_escape(&text_of(v)))))),
                Op::In | Op::NotIn => {
                    let items = v.as_array().map(|a| a.as_slice()).unwrap_or_default();
                    let marks: Vec<String> = items.iter().map(|i| p(sql_value(i))).collect();
                    if c.op == Op::In {
                        format!("{x} IN ({})", marks.join(", "))
                    } else {
                        format!("({x} IS NULL OR {x} NOT IN ({}))", marks.join(", "))
                    }
                }
                Op::Regex => format!("{x} REGEXP {}", p(SqlValue::Text(text_of(v)))),
                Op::Exists => format!("{x} IS NOT NULL"),
                Op::NotExists => format!("{x} IS NULL"),
            }
        })
        .collect();
    (
        parts
            .iter()
            .map(|s| format!("({s})"))
            .collect::<Vec<_>>()
            .join(" AND "),
        params,
    )
}

#[cfg(test)]
mod tests;
