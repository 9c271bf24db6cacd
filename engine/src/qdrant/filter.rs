//! Search filters ([`crate::filter`]) as Qdrant payload filters.
//!
//! A condition becomes a payload condition only where Qdrant's semantics equal SQLite's exactly:
//! `eq`, `ne`, `in`, `not_in` on the document's text columns with text values and on its integer
//! columns with integer values, `gt`/`lt`/`ge`/`le` on the integer columns, and `exists` /
//! `not_exists` on any column or `section`. Everything else (substring, prefix, suffix and regex
//! operators, user and parser metadata, comparisons across types) stays *residual*: the engine
//! resolves it in SQLite and sends the matching chunk ids as a `has_id` condition, so every filter
//! gives the same hits with either vector store.

use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::{
    Condition as QCondition, FieldCondition, Filter, Match, Range, RepeatedIntegers,
    RepeatedStrings,
};
use serde_json::Value;

use super::payload::{INTEGER_FIELDS, SECTION, TEXT_FIELDS, payload_key};
use crate::filter::{Condition, Op, document_column};

/// A filter split into what Qdrant evaluates and what SQLite must.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Translated {
    /// The payload filter; `None` when no condition translates.
    pub filter: Option<Filter>,
    /// Conditions Qdrant cannot evaluate like SQLite does.
    pub residual: Vec<Condition>,
}

/// Splits `conds` (all must hold) into a payload filter and residual conditions.
pub fn translate(conds: &[Condition]) -> Translated {
    let mut filter = Filter::default();
    let mut residual = vec![];
    for c in conds {
        match translate_one(c) {
            Some(Clause::Must(q)) => filter.must.push(q),
            Some(Clause::MustNot(q)) => filter.must_not.push(q),
            None => residual.push(c.clone()),
        }
    }
    let empty = filter.must.is_empty() && filter.must_not.is_empty();
    Translated {
        filter: (!empty).then_some(filter),
        residual,
    }
}

/// Adds "the point is one of `ids`" to a filter (the residual conditions, resolved in SQLite).
pub fn with_ids(filter: Option<Filter>, ids: impl IntoIterator<Item = u64>) -> Filter {
    let mut f = filter.unwrap_or_default();
    f.must.push(QCondition::has_id(ids));
    f
}

enum Clause {
    Must(QCondition),
    MustNot(QCondition),
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Integer,
}

fn field_kind(field: &str) -> Option<(String, Kind)> {
    if field == SECTION {
        return Some((SECTION.to_string(), Kind::Text));
    }
    let column = document_column(field)?;
    let key = payload_key(column).to_string();
    if TEXT_FIELDS.contains(&key.as_str()) {
        Some((key, Kind::Text))
    } else if INTEGER_FIELDS.contains(&key.as_str()) {
        Some((key, Kind::Integer))
    } else {
        None
    }
}

/// The match a value gives on a field of `kind`, when the types agree exactly. Built by hand:
/// qdrant-client's `From<String>` turns a string with a space into a *full-text* match.
fn match_value(kind: Kind, v: &Value) -> Option<MatchValue> {
    match (kind, v) {
        (Kind::Text, Value::String(s)) => Some(MatchValue::Keyword(s.clone())),
        (Kind::Integer, Value::Number(n)) => n.as_i64().map(MatchValue::Integer),
        _ => None,
    }
}

fn match_any(kind: Kind, items: &[Value]) -> Option<MatchValue> {
    match kind {
        Kind::Text => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(|strings| MatchValue::Keywords(RepeatedStrings { strings })),
        Kind::Integer => items
            .iter()
            .map(Value::as_i64)
            .collect::<Option<Vec<_>>>()
            .map(|integers| MatchValue::Integers(RepeatedIntegers { integers })),
    }
}

fn field_match(key: String, m: MatchValue) -> QCondition {
    QCondition::from(FieldCondition {
        key,
        r#match: Some(Match {
            match_value: Some(m),
        }),
        ..Default::default()
    })
}

fn translate_one(c: &Condition) -> Option<Clause> {
    let (key, kind) = field_kind(&c.field)?;
    let v = c.value.as_ref();
    let range = |r: Range| Some(Clause::Must(QCondition::range(key.clone(), r)));
    let bound = || match (kind, v) {
        (Kind::Integer, Some(Value::Number(n))) => n.as_f64(),
        _ => None,
    };
    match c.op {
        // SQLite's `x IS NULL OR x != v` is "not (x = v)", which is what must_not says: a point
        // without the field passes.
        Op::Eq => Some(Clause::Must(field_match(key, match_value(kind, v?)?))),
        Op::Ne => Some(Clause::MustNot(field_match(key, match_value(kind, v?)?))),
        Op::In => Some(Clause::Must(field_match(
            key,
            match_any(kind, v?.as_array()?)?,
        ))),
        Op::NotIn => Some(Clause::MustNot(field_match(
            key,
            match_any(kind, v?.as_array()?)?,
        ))),
        Op::Gt => range(Range {
            gt: Some(bound()?),
            ..Default::default()
        }),
        Op::Ge => range(Range {
            gte: Some(bound()?),
            ..Default::default()
        }),
        Op::Lt => range(Range {
            lt: Some(bound()?),
            ..Default::default()
        }),
        Op::Le => range(Range {
            lte: Some(bound()?),
            ..Default::default()
        }),
        // A NULL column is left out of the payload, so "missing" is "NULL".
        Op::Exists => Some(Clause::MustNot(QCondition::is_empty(key))),
        Op::NotExists => Some(Clause::Must(QCondition::is_empty(key))),
        Op::Contains | Op::NotContains | Op::StartsWith | Op::EndsWith | Op::Regex => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse_short;
    use qdrant_client::qdrant::condition::ConditionOneOf;

    fn field(c: &QCondition) -> &FieldCondition {
        match &c.condition_one_of {
            Some(ConditionOneOf::Field(f)) => f,
            other => panic!("not a field condition: {other:?}"),
        }
    }

    fn matched(c: &QCondition) -> (&str, MatchValue) {
        let f = field(c);
        let m = f.r#match.clone().and_then(|m| m.match_value).unwrap();
        (f.key.as_str(), m)
    }

    #[test]
    fn equality_on_a_text_column_is_a_keyword_match_even_with_spaces() {
        let t = translate(&parse_short("type=faq;title=\"Getting Started\"").unwrap());
        assert!(t.residual.is_empty());
        let f = t.filter.unwrap();
        assert_eq!(
            matched(&f.must[0]),
            ("doc_type", MatchValue::Keyword("faq".into()))
        );
        // qdrant-client's From<String> would make this a full-text match of either word.
        assert_eq!(
            matched(&f.must[1]),
            ("title", MatchValue::Keyword("Getting Started".into()))
        );
    }

    #[test]
    fn not_equal_and_not_in_are_must_not_so_points_without_the_field_pass() {
        let t = translate(&parse_short("ext!=md;type!=[faq,guide]").unwrap());
        let f = t.filter.unwrap();
        assert!(f.must.is_empty());
        assert_eq!(
            matched(&f.must_not[0]),
            ("extension", MatchValue::Keyword("md".into()))
        );
        assert_eq!(
            matched(&f.must_not[1]),
            (
                "doc_type",
                MatchValue::Keywords(RepeatedStrings {
                    strings: vec!["faq".into(), "guide".into()]
                })
            )
        );
    }

    #[test]
    fn integer_columns_take_integer_matches_and_ranges() {
        let t = translate(&parse_short("size>=1000;chunk_count<5;word_count=[1,2]").unwrap());
        assert!(t.residual.is_empty());
        let f = t.filter.unwrap();
        let r = field(&f.must[0]);
        assert_eq!(r.key, "size_bytes");
        assert_eq!(r.range.unwrap().gte, Some(1000.0));
        assert_eq!(field(&f.must[1]).range.unwrap().lt, Some(5.0));
        assert_eq!(
            matched(&f.must[2]),
            (
                "word_count",
                MatchValue::Integers(RepeatedIntegers {
                    integers: vec![1, 2]
                })
            )
        );
    }

    #[test]
    fn exists_and_not_exists_test_for_a_missing_field() {
        let f = translate(&parse_short("mime;!modified_at").unwrap())
            .filter
            .unwrap();
        assert!(matches!(
            f.must_not[0].condition_one_of,
            Some(ConditionOneOf::IsEmpty(ref e)) if e.key == "mime"
        ));
        assert!(matches!(
            f.must[0].condition_one_of,
            Some(ConditionOneOf::IsEmpty(ref e)) if e.key == "modified_at"
        ));
    }

    #[test]
    fn what_qdrant_cannot_evaluate_like_sqlite_stays_residual() {
        for short in [
            "title~guide",            // substring, case-insensitive in SQLite
            "title^Get",              // prefix
            "source$.md",             // suffix
            "title~/^G/",             // regex
            "team=search",            // user metadata, then parser metadata
            "metadata.team=search",   // user metadata (arrays compare differently)
            "size=1000.5",            // a float against an integer column
            "title=42",               // a number against a text column
            "modified_at>2024-01-01", // text ordering
            "size=[1,x]",             // mixed list
        ] {
            let conds = parse_short(short).unwrap();
            let t = translate(&conds);
            assert_eq!(t.filter, None, "{short} translated");
            assert_eq!(t.residual, conds, "{short}");
        }
    }

    #[test]
    fn a_mixed_filter_splits_and_the_residual_ids_join_the_payload_filter() {
        let t = translate(&parse_short("type=faq;title~guide").unwrap());
        assert_eq!(t.residual.len(), 1);
        let f = with_ids(t.filter, [3, 7]);
        assert_eq!(f.must.len(), 2);
        assert!(matches!(
            f.must[1].condition_one_of,
            Some(ConditionOneOf::HasId(ref h)) if h.has_id.len() == 2
        ));
    }

    #[test]
    fn no_conditions_mean_no_filter() {
        assert_eq!(translate(&[]), Translated::default());
    }
}
