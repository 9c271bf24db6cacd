use super::*;
use serde_json::json;

fn one(s: &str) -> Condition {
    let mut v = parse_short(s).unwrap();
    assert_eq!(v.len(), 1);
    v.remove(0)
}

#[test]
fn two_character_operators_are_not_split() {
    assert_eq!(
        one("size>=100"),
        Condition {
            field: "size".into(),
            op: Op::Ge,
            value: Some(json!(100))
        }
    );
    assert_eq!(one("size<=2.5").op, Op::Le);
    assert_eq!(
        one("type!=faq"),
        Condition {
            field: "type".into(),
            op: Op::Ne,
            value: Some(json!("faq"))
        }
    );
    assert_eq!(one("title!~draft").op, Op::NotContains);
    assert_eq!(one("size>7").op, Op::Gt);
    assert_eq!(one("size<7").op, Op::Lt);
}

#[test]
fn every_short_operator_maps_to_its_op() {
    let cases = [
        ("a:b", Op::Eq),
        ("a=b", Op::Eq),
        ("a~b", Op::Contains),
        ("a^b", Op::StartsWith),
        ("a$b", Op::EndsWith),
        ("a=[x,y]", Op::In),
        ("a!=[x,y]", Op::NotIn),
        ("a~/^x.*$/", Op::Regex),
        ("a", Op::Exists),
        ("!a", Op::NotExists),
    ];
    for (s, op) in cases {
        assert_eq!(one(s).op, op, "{s}");
    }
}

#[test]
fn values_are_typed() {
    assert_eq!(one("n=3").value, Some(json!(3)));
    assert_eq!(one("n=3.5").value, Some(json!(3.5)));
    assert_eq!(one("b=true").value, Some(json!(true)));
    assert_eq!(one("s=\"3\"").value, Some(json!("3")));
    assert_eq!(one("tags=[a, 2]").value, Some(json!(["a", 2])));
    assert_eq!(
        one("modified_at>=2026-01-01").value,
        Some(json!("2026-01-01"))
    );
}

#[test]
fn several_conditions_split_on_semicolons_outside_lists() {
    let v = parse_short("type=faq; tags=[a;b,c]").unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[1].value, Some(json!(["a;b", "c"])));
}

#[test]
fn malformed_filters_name_the_problem() {
    for (s, needle) in [
        ("=x", "field name"),
        ("a>", "no value"),
        ("a?b", "unknown operator"),
        ("a~/(/", "regular expression"),
        ("a>=[1,2]", "list value"),
    ] {
        let err = parse_short(s).unwrap_err().to_string();
        assert!(err.contains(needle), "{s}: {err}");
    }
}

#[test]
fn json_forms_are_equivalent_to_short_syntax() {
    let list: FilterInput =
        serde_json::from_value(json!([{"field": "size", "op": "ge", "value": 100}, "type=faq"]))
            .unwrap();
    let obj: FilterInput =
        serde_json::from_value(json!({"size": {"ge": 100}, "type": "faq"})).unwrap();
    let short: FilterInput = serde_json::from_value(json!("size>=100; type=faq")).unwrap();
    let mut a = list.conditions().unwrap();
    let mut b = obj.conditions().unwrap();
    let mut c = short.conditions().unwrap();
    for v in [&mut a, &mut b, &mut c] {
        v.sort_by(|x, y| x.field.cmp(&y.field));
    }
    assert_eq!(a, b);
    assert_eq!(b, c);
}

#[test]
fn json_with_unknown_operator_or_missing_value_is_rejected() {
    let bad: FilterInput = serde_json::from_value(json!({"size": {"bigger": 1}})).unwrap();
    assert!(bad.conditions().unwrap_err().to_string().contains("bigger"));
    let bad: FilterInput = serde_json::from_value(json!([{"field": "size", "op": "gt"}])).unwrap();
    assert!(
        bad.conditions()
            .unwrap_err()
            .to_string()
            .contains("needs a value")
    );
    let bad: FilterInput =
        serde_json::from_value(json!([{"field": "x'; drop", "op": "exists"}])).unwrap();
    assert!(bad.conditions().is_err());
}

#[test]
fn sql_uses_parameters_for_every_value() {
    let (sql, params) = to_sql(&parse_short("title~it's; metadata.team=core; size>=10").unwrap());
    assert!(!sql.contains("it's") && !sql.contains("core"), "{sql}");
    assert_eq!(params.len(), 3);
}

#[test]
fn a_semicolon_inside_a_regex_or_quotes_does_not_split_conditions() {
    let v = parse_short("code~/^AB-\\d+;x$/; team=core").unwrap();
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(
        (v[0].op, v[0].value.clone()),
        (Op::Regex, Some(json!("^AB-\\d+;x$")))
    );
    assert_eq!(v[1].field, "team");
    // A `/` inside the pattern only closes it when `;` or the end follows.
    let v = parse_short("path~/a/b;c/ ; title=\"x;y\"").unwrap();
    assert_eq!(v[0].value, Some(json!("a/b;c")));
    assert_eq!(v[1].value, Some(json!("x;y")));
    // An escaped slash followed by `;` stays inside the pattern.
    let v = parse_short("p~/a\\/;b/").unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].value, Some(json!("a\\/;b")));
    // Outside a regex, `/` is an ordinary character.
    let v = parse_short("source$/docs/a.md; type=faq").unwrap();
    assert_eq!(v.len(), 2);
}

#[test]
fn nested_metadata_paths_reach_into_objects() {
    let (sql, _) = to_sql(&parse_short("metadata.owner.name=Ann").unwrap());
    assert!(sql.contains(r#"'$."owner"."name"'"#), "{sql}");
    let (sql, _) = to_sql(&parse_short("metadata.team=core").unwrap());
    assert!(sql.contains(r#"'$."team"'"#), "{sql}");
}
