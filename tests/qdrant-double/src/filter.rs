//! Filter evaluation with Qdrant's semantics, for the subset of conditions the double models.
//!
//! [`validate`] refuses what is not modelled (so a test notices the engine sent it), and
//! [`matches`] evaluates a validated filter against one point. The rules follow Qdrant's
//! condition checker:
//!
//! - `must`: every condition holds; `must_not`: none holds; `should`: at least one holds when
//!   the list is non-empty; `min_should`: at least `min_count` of its conditions hold.
//! - A field condition on a missing field (no value at the path) is false, `except` included.
//! - A list value matches a `match` or `range` when any element does.
//! - `IsEmpty`: every value at the path is null or `[]` (so a missing field is empty).
//! - `IsNull`: some value at the path is null.
//! - Keys are paths: `metadata.team` steps into nested objects, `tags[]` into every list
//!   element, `tags[0]` into one element.

use std::collections::HashMap;

use qdrant_client::qdrant::condition::ConditionOneOf;
use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::{Condition, FieldCondition, Filter, Match, Range, Value};

/// A point's payload, as the gRPC messages carry it.
pub type Payload = HashMap<String, Value>;

/// Why a filter was refused: something the double does not model, or a malformed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(pub String);

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FilterError {}

fn not_modelled(what: &str) -> FilterError {
    FilterError(format!("qdrant-double: {what} is not modelled"))
}

/// Checks that every condition of `filter` (nested filters included) is one the double models.
pub fn validate(filter: &Filter) -> Result<(), FilterError> {
    let conditions = filter
        .must
        .iter()
        .chain(&filter.should)
        .chain(&filter.must_not)
        .chain(filter.min_should.iter().flat_map(|m| &m.conditions));
    for condition in conditions {
        validate_condition(condition)?;
    }
    Ok(())
}

fn validate_condition(condition: &Condition) -> Result<(), FilterError> {
    match &condition.condition_one_of {
        None => Err(FilterError(
            "qdrant-double: a condition without a kind".into(),
        )),
        Some(ConditionOneOf::Field(field)) => validate_field(field),
        Some(ConditionOneOf::IsEmpty(c)) => parse_path(&c.key).map(drop),
        Some(ConditionOneOf::IsNull(c)) => parse_path(&c.key).map(drop),
        Some(ConditionOneOf::HasId(c)) => {
            for id in &c.has_id {
                match id.point_id_options {
                    Some(PointIdOptions::Num(_)) => {}
                    Some(PointIdOptions::Uuid(_)) => return Err(not_modelled("a UUID point id")),
                    None => return Err(FilterError("qdrant-double: an empty point id".into())),
                }
            }
            Ok(())
        }
        Some(ConditionOneOf::Filter(inner)) => validate(inner),
        Some(ConditionOneOf::Nested(_)) => Err(not_modelled("the nested condition")),
        Some(ConditionOneOf::HasVector(_)) => Err(not_modelled("the has_vector condition")),
        Some(ConditionOneOf::Slice(_)) => Err(not_modelled("the slice condition")),
    }
}

fn validate_field(field: &FieldCondition) -> Result<(), FilterError> {
    parse_path(&field.key)?;
    if field.geo_bounding_box.is_some() || field.geo_radius.is_some() || field.geo_polygon.is_some()
    {
        return Err(not_modelled("a geo condition"));
    }
    if field.values_count.is_some() {
        return Err(not_modelled("the values_count condition"));
    }
    if field.datetime_range.is_some() {
        return Err(not_modelled("the datetime_range condition"));
    }
    if let Some(m) = &field.r#match {
        match &m.match_value {
            None => return Err(FilterError("qdrant-double: a match without a value".into())),
            Some(MatchValue::Text(_)) => return Err(not_modelled("full-text match (text)")),
            Some(MatchValue::Phrase(_)) => return Err(not_modelled("phrase match")),
            Some(MatchValue::TextAny(_)) => return Err(not_modelled("full-text match (text_any)")),
            Some(MatchValue::Prefix(_)) => return Err(not_modelled("prefix match")),
            Some(MatchValue::Substring(_)) => return Err(not_modelled("substring match")),
            Some(_) => {}
        }
    }
    if field.r#match.is_none()
        && field.range.is_none()
        && field.is_empty.is_none()
        && field.is_null.is_none()
    {
        return Err(FilterError(format!(
            "qdrant-double: the field condition on `{}` sets none of match, range, is_empty, is_null",
            field.key
        )));
    }
    Ok(())
}

/// Whether the point (`id`, `payload`) passes `filter`. Expects a [`validate`]d filter:
/// conditions the double does not model evaluate to false.
pub fn matches(filter: &Filter, id: u64, payload: &Payload) -> bool {
    let check = |c: &Condition| condition_matches(c, id, payload);
    let should = filter.should.is_empty() || filter.should.iter().any(check);
    let min_should = filter.min_should.as_ref().is_none_or(|m| {
        let needed = usize::try_from(m.min_count).unwrap_or(usize::MAX);
        m.conditions.iter().filter(|c| check(c)).count() >= needed
    });
    should && min_should && filter.must.iter().all(check) && !filter.must_not.iter().any(check)
}

fn condition_matches(condition: &Condition, id: u64, payload: &Payload) -> bool {
    match &condition.condition_one_of {
        Some(ConditionOneOf::Field(field)) => field_matches(field, payload),
        Some(ConditionOneOf::IsEmpty(c)) => {
            values_at(payload, &c.key).iter().all(|v| match &v.kind {
                None | Some(Kind::NullValue(_)) => true,
                Some(Kind::ListValue(list)) => list.values.is_empty(),
                Some(_) => false,
            })
        }
        Some(ConditionOneOf::IsNull(c)) => values_at(payload, &c.key).iter().any(|v| is_null(v)),
        Some(ConditionOneOf::HasId(c)) => c
            .has_id
            .iter()
            .any(|p| p.point_id_options == Some(PointIdOptions::Num(id))),
        Some(ConditionOneOf::Filter(inner)) => matches(inner, id, payload),
        _ => false,
    }
}

fn field_matches(field: &FieldCondition, payload: &Payload) -> bool {
    let values = values_at(payload, &field.key);
    if values.is_empty() {
        // Qdrant's `check_empty`: only is_empty / is_null conditions hold on a missing field.
        return match (field.is_empty, field.is_null) {
            (Some(is_empty), _) => is_empty,
            (None, Some(is_null)) => !is_null,
            (None, None) => false,
        };
    }
    values.iter().any(|value| field_value_matches(field, value))
}

fn field_value_matches(field: &FieldCondition, value: &Value) -> bool {
    if let Some(is_empty) = field.is_empty {
        return match &value.kind {
            None | Some(Kind::NullValue(_)) => is_empty,
            Some(Kind::ListValue(list)) => list.values.is_empty() == is_empty,
            Some(_) => !is_empty,
        };
    }
    if let Some(want_null) = field.is_null {
        return match &value.kind {
            None | Some(Kind::NullValue(_)) => want_null,
            Some(Kind::ListValue(list)) => list.values.iter().any(is_null) == want_null,
            Some(_) => !want_null,
        };
    }
    let scalar = |v: &Value| {
        field.r#match.as_ref().is_some_and(|m| match_scalar(m, v))
            || field.range.as_ref().is_some_and(|r| range_scalar(r, v))
    };
    match &value.kind {
        // A list matches when any element does (lists inside lists are not flattened).
        Some(Kind::ListValue(list)) => list.values.iter().any(scalar),
        _ => scalar(value),
    }
}

fn is_null(value: &Value) -> bool {
    matches!(value.kind, None | Some(Kind::NullValue(_)))
}

fn match_scalar(m: &Match, value: &Value) -> bool {
    let kind = value.kind.as_ref();
    match &m.match_value {
        Some(MatchValue::Keyword(want)) => {
            matches!(kind, Some(Kind::StringValue(s)) if s == want)
        }
        Some(MatchValue::Integer(want)) => matches!(kind, Some(Kind::IntegerValue(i)) if i == want),
        Some(MatchValue::Boolean(want)) => matches!(kind, Some(Kind::BoolValue(b)) if b == want),
        Some(MatchValue::Keywords(any)) => {
            matches!(kind, Some(Kind::StringValue(s)) if any.strings.contains(s))
        }
        Some(MatchValue::Integers(any)) => {
            matches!(kind, Some(Kind::IntegerValue(i)) if any.integers.contains(i))
        }
        Some(MatchValue::ExceptKeywords(except)) => match kind {
            Some(Kind::StringValue(s)) => !except.strings.contains(s),
            None | Some(Kind::NullValue(_)) => false,
            Some(_) => true,
        },
        Some(MatchValue::ExceptIntegers(except)) => match kind {
            Some(Kind::IntegerValue(i)) => !except.integers.contains(i),
            None | Some(Kind::NullValue(_)) => false,
            Some(_) => true,
        },
        _ => false,
    }
}

fn range_scalar(range: &Range, value: &Value) -> bool {
    #[allow(clippy::cast_precision_loss)] // Qdrant compares integers as f64 too
    let number = match value.kind {
        Some(Kind::IntegerValue(i)) => i as f64,
        Some(Kind::DoubleValue(d)) => d,
        _ => return false,
    };
    range.lt.is_none_or(|x| number < x)
        && range.gt.is_none_or(|x| number > x)
        && range.lte.is_none_or(|x| number <= x)
        && range.gte.is_none_or(|x| number >= x)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
    Each,
}

fn parse_path(key: &str) -> Result<Vec<Step<'_>>, FilterError> {
    let bad = || {
        FilterError(format!(
            "qdrant-double: `{key}` is not a payload path it models"
        ))
    };
    let mut steps = Vec::new();
    for segment in key.split('.') {
        let (name, mut brackets) = segment.split_at(segment.find('[').unwrap_or(segment.len()));
        if name.is_empty() || name.contains(['"', ']']) {
            return Err(bad());
        }
        steps.push(Step::Key(name));
        while !brackets.is_empty() {
            let inner_end = brackets.find(']').ok_or_else(bad)?;
            let inner = brackets.get(1..inner_end).ok_or_else(bad)?;
            steps.push(if inner.is_empty() {
                Step::Each
            } else {
                Step::Index(inner.parse().map_err(|_| bad())?)
            });
            brackets = brackets.get(inner_end + 1..).ok_or_else(bad)?;
            if !brackets.is_empty() && !brackets.starts_with('[') {
                return Err(bad());
            }
        }
    }
    Ok(steps)
}

/// The values at `key` in `payload`: intermediate lists are entered only through `[]` or
/// `[n]` steps, a list at the end of the path is one value (as in Qdrant).
pub fn values_at<'a>(payload: &'a Payload, key: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    if let Ok(steps) = parse_path(key)
        && let Some((Step::Key(first), rest)) = steps.split_first()
        && let Some(value) = payload.get(*first)
    {
        collect(rest, value, &mut out);
    }
    out
}

fn collect<'a>(steps: &[Step<'_>], value: &'a Value, out: &mut Vec<&'a Value>) {
    let Some((step, rest)) = steps.split_first() else {
        out.push(value);
        return;
    };
    match (step, &value.kind) {
        (Step::Key(key), Some(Kind::StructValue(s))) => {
            if let Some(v) = s.fields.get(*key) {
                collect(rest, v, out);
            }
        }
        (Step::Index(i), Some(Kind::ListValue(list))) => {
            if let Some(v) = list.values.get(*i) {
                collect(rest, v, out);
            }
        }
        (Step::Each, Some(Kind::ListValue(list))) => {
            for v in &list.values {
                collect(rest, v, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use qdrant_client::Payload as ClientPayload;
    use qdrant_client::qdrant::{
        FieldCondition, HasIdCondition, IsEmptyCondition, MinShould, NestedCondition,
        RepeatedIntegers, RepeatedStrings,
    };

    use super::*;

    fn null() -> Value {
        Value {
            kind: Some(Kind::NullValue(0)),
        }
    }

    fn payload<const N: usize>(entries: [(&str, Value); N]) -> Payload {
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    fn object<const N: usize>(entries: [(&str, Value); N]) -> Value {
        Value::from(ClientPayload::from(payload(entries)))
    }

    fn keyword(key: &str, value: &str) -> Condition {
        Condition::matches(key, value.to_owned())
    }

    fn check(filter: &Filter, payload: &Payload) -> bool {
        validate(filter).expect("a modelled filter");
        matches(filter, 1, payload)
    }

    #[test]
    fn must_needs_every_condition() {
        let p = payload([("team", "blue".into()), ("year", 2024.into())]);
        assert!(check(
            &Filter::must([keyword("team", "blue"), Condition::matches("year", 2024)]),
            &p
        ));
        assert!(!check(
            &Filter::must([keyword("team", "blue"), Condition::matches("year", 2023)]),
            &p
        ));
        assert!(check(&Filter::default(), &p), "an empty filter passes");
    }

    #[test]
    fn should_needs_one_condition_when_present() {
        let p = payload([("team", "blue".into())]);
        assert!(check(
            &Filter::should([keyword("team", "red"), keyword("team", "blue")]),
            &p
        ));
        assert!(!check(
            &Filter::should([keyword("team", "red"), keyword("team", "green")]),
            &p
        ));
    }

    #[test]
    fn must_not_refuses_any_matching_condition() {
        let p = payload([("team", "blue".into())]);
        assert!(!check(&Filter::must_not([keyword("team", "blue")]), &p));
        assert!(check(&Filter::must_not([keyword("team", "red")]), &p));
        let mut both = Filter::must([keyword("team", "blue")]);
        both.must_not.push(keyword("team", "blue"));
        assert!(!check(&both, &p));
    }

    #[test]
    fn min_should_counts_matching_conditions() {
        let p = payload([("a", 1.into()), ("b", 2.into())]);
        let filter = |min_count| Filter {
            min_should: Some(MinShould {
                conditions: vec![
                    Condition::matches("a", 1),
                    Condition::matches("b", 2),
                    Condition::matches("c", 3),
                ],
                min_count,
            }),
            ..Filter::default()
        };
        assert!(check(&filter(2), &p));
        assert!(!check(&filter(3), &p));
    }

    #[test]
    fn keyword_integer_and_boolean_match_their_own_types_only() {
        let p = payload([
            ("s", "7".into()),
            ("i", 7.into()),
            ("d", 7.0_f64.into()),
            ("b", true.into()),
        ]);
        assert!(check(&Filter::must([keyword("s", "7")]), &p));
        assert!(!check(&Filter::must([Condition::matches("s", 7)]), &p));
        assert!(check(&Filter::must([Condition::matches("i", 7)]), &p));
        assert!(
            !check(&Filter::must([Condition::matches("d", 7)]), &p),
            "integer match ignores doubles, as in Qdrant"
        );
        assert!(check(&Filter::must([Condition::matches("b", true)]), &p));
        assert!(!check(&Filter::must([Condition::matches("b", false)]), &p));
    }

    #[test]
    fn keywords_and_integers_match_any_of_the_values() {
        let p = payload([("team", "blue".into()), ("year", 2024.into())]);
        let any_team = |teams: Vec<String>| Filter::must([Condition::matches("team", teams)]);
        assert!(check(&any_team(vec!["red".into(), "blue".into()]), &p));
        assert!(!check(&any_team(vec!["red".into(), "green".into()]), &p));
        assert!(check(
            &Filter::must([Condition::matches("year", vec![2023_i64, 2024])]),
            &p
        ));
        assert!(!check(
            &Filter::must([Condition::matches("year", vec![2022_i64])]),
            &p
        ));
    }

    #[test]
    fn except_matches_other_values_but_not_missing_or_null_fields() {
        let except_kw = |key: &str| {
            Condition::matches(
                key,
                MatchValue::ExceptKeywords(RepeatedStrings {
                    strings: vec!["red".into()],
                }),
            )
        };
        let p = payload([
            ("blue", "blue".into()),
            ("red", "red".into()),
            ("null", null()),
            ("number", 3.into()),
        ]);
        assert!(check(&Filter::must([except_kw("blue")]), &p));
        assert!(!check(&Filter::must([except_kw("red")]), &p));
        assert!(!check(&Filter::must([except_kw("missing")]), &p));
        assert!(!check(&Filter::must([except_kw("null")]), &p));
        assert!(check(&Filter::must([except_kw("number")]), &p));

        let except_int = Condition::matches(
            "number",
            MatchValue::ExceptIntegers(RepeatedIntegers { integers: vec![3] }),
        );
        assert!(!check(&Filter::must([except_int]), &p));
        let except_other = Condition::matches(
            "number",
            MatchValue::ExceptIntegers(RepeatedIntegers { integers: vec![4] }),
        );
        assert!(check(&Filter::must([except_other]), &p));
    }

    #[test]
    fn range_bounds_integers_and_doubles() {
        let p = payload([("i", 5.into()), ("d", 2.5_f64.into()), ("s", "5".into())]);
        let range = |key: &str, r: Range| Filter::must([Condition::range(key, r)]);
        let gte5 = Range {
            gte: Some(5.0),
            ..Range::default()
        };
        let gt5 = Range {
            gt: Some(5.0),
            ..Range::default()
        };
        let between = Range {
            gt: Some(2.0),
            lt: Some(3.0),
            ..Range::default()
        };
        let lte2 = Range {
            lte: Some(2.0),
            ..Range::default()
        };
        assert!(check(&range("i", gte5), &p));
        assert!(!check(&range("i", gt5), &p));
        assert!(check(&range("d", between), &p));
        assert!(!check(&range("d", lte2), &p));
        assert!(!check(&range("s", gte5), &p), "strings are not numbers");
        assert!(!check(&range("missing", gte5), &p));
    }

    #[test]
    fn is_empty_holds_for_missing_null_and_empty_lists() {
        let p = payload([
            ("null", null()),
            ("empty", Value::from(Vec::<Value>::new())),
            ("full", Value::from(vec!["a"])),
            ("text", "".into()),
        ]);
        let empty = |key: &str| check(&Filter::must([Condition::is_empty(key)]), &p);
        assert!(empty("missing"));
        assert!(empty("null"));
        assert!(empty("empty"));
        assert!(!empty("full"));
        assert!(!empty("text"), "an empty string is a value");
    }

    #[test]
    fn is_null_holds_only_for_an_explicit_null() {
        let p = payload([("null", null()), ("zero", 0.into())]);
        let is_null = |key: &str| check(&Filter::must([Condition::is_null(key)]), &p);
        assert!(is_null("null"));
        assert!(!is_null("zero"));
        assert!(!is_null("missing"));
    }

    #[test]
    fn field_is_empty_and_is_null_flags_follow_qdrant() {
        let p = payload([("null", null()), ("list", Value::from(vec![null()]))]);
        let field = |key: &str, is_empty, is_null| {
            Filter::must([Condition::from(FieldCondition {
                key: key.into(),
                is_empty,
                is_null,
                ..FieldCondition::default()
            })])
        };
        assert!(check(&field("missing", Some(true), None), &p));
        assert!(!check(&field("missing", Some(false), None), &p));
        assert!(check(&field("null", None, Some(true)), &p));
        assert!(check(&field("list", None, Some(true)), &p));
        assert!(!check(&field("list", Some(true), None), &p));
    }

    #[test]
    fn has_id_matches_listed_ids() {
        let p = Payload::new();
        let filter = Filter::must([Condition::has_id([1_u64, 9])]);
        validate(&filter).unwrap();
        assert!(matches(&filter, 1, &p));
        assert!(matches(&filter, 9, &p));
        assert!(!matches(&filter, 2, &p));
    }

    #[test]
    fn dotted_keys_reach_into_nested_objects() {
        let p = payload([(
            "metadata",
            object([
                ("team", "blue".into()),
                ("owner", object([("name", "ada".into())])),
            ]),
        )]);
        assert!(check(&Filter::must([keyword("metadata.team", "blue")]), &p));
        assert!(check(
            &Filter::must([keyword("metadata.owner.name", "ada")]),
            &p
        ));
        assert!(!check(&Filter::must([keyword("metadata.team", "red")]), &p));
        assert!(!check(&Filter::must([keyword("team", "blue")]), &p));
        assert!(check(
            &Filter::must([Condition::is_empty("metadata.nope")]),
            &p
        ));
    }

    #[test]
    fn list_values_match_when_any_element_matches() {
        let p = payload([
            ("tags", Value::from(vec!["rust", "search"])),
            ("years", Value::from(vec![2020_i64, 2024])),
            (
                "owners",
                Value::from(vec![
                    object([("team", "red".into())]),
                    object([("team", "blue".into())]),
                ]),
            ),
        ]);
        assert!(check(&Filter::must([keyword("tags", "search")]), &p));
        assert!(!check(&Filter::must([keyword("tags", "go")]), &p));
        assert!(check(
            &Filter::must([Condition::matches("years", 2024)]),
            &p
        ));
        let after_2022 = Range {
            gt: Some(2022.0),
            ..Range::default()
        };
        assert!(check(
            &Filter::must([Condition::range("years", after_2022)]),
            &p
        ));
        let except_rust = Condition::matches(
            "tags",
            MatchValue::ExceptKeywords(RepeatedStrings {
                strings: vec!["rust".into()],
            }),
        );
        assert!(
            check(&Filter::must([except_rust]), &p),
            "one element outside the except list is enough"
        );
        assert!(check(&Filter::must([keyword("owners[].team", "blue")]), &p));
        assert!(!check(
            &Filter::must([keyword("owners[0].team", "blue")]),
            &p
        ));
    }

    #[test]
    fn nested_filters_are_evaluated() {
        let p = payload([("team", "blue".into()), ("year", 2024.into())]);
        let inner = Filter::should([keyword("team", "red"), keyword("team", "blue")]);
        let filter = Filter::must([Condition::from(inner), Condition::matches("year", 2024)]);
        assert!(check(&filter, &p));
        let not_inner =
            Filter::must_not([Condition::from(Filter::must([keyword("team", "blue")]))]);
        assert!(!check(&not_inner, &p));
    }

    #[test]
    fn unmodelled_conditions_are_refused() {
        let refused = [
            Condition::matches_text("body", "two words"),
            Condition::has_vector("image"),
            Condition::from(NestedCondition {
                key: "owners".into(),
                filter: Some(Filter::must([keyword("team", "x")])),
            }),
            Condition::from(HasIdCondition {
                has_id: vec!["5d3b5bd4-4ea6-4d2e-bfe7-8a5ba4e0a0a1".to_owned().into()],
            }),
            Condition::from(FieldCondition {
                key: "team".into(),
                ..FieldCondition::default()
            }),
            Condition::from(IsEmptyCondition {
                key: "bad]path".into(),
            }),
        ];
        for condition in refused {
            let deep = Filter::must([Condition::from(Filter::should([condition.clone()]))]);
            let err = validate(&deep).expect_err("refused");
            assert!(
                err.0.starts_with("qdrant-double:"),
                "{err} for {condition:?}"
            );
        }
    }
}
