use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_are_valid() {
    Config::default().validate().unwrap();
}

#[test]
fn flags_override_environment_which_overrides_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(
        &file,
        "listen: 127.0.0.1:1000\nembedding:\n  batch_size: 4\n",
    )
    .unwrap();
    let env = map(&[
        ("INSTANT_DB_LISTEN", "127.0.0.1:2000"),
        ("INSTANT_DB_EMBEDDING_BATCH_SIZE", "8"),
    ]);
    let flags = map(&[("listen", "127.0.0.1:3000")]);
    let c = Config::load_from(Some(&file), &env, &flags).unwrap();
    assert_eq!(c.listen, "127.0.0.1:3000");
    assert_eq!(c.embedding.batch_size, 8);
}

#[test]
fn unknown_key_in_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, "embedding:\n  batchsize: 4\n").unwrap();
    let err = Config::load_from(Some(&file), &BTreeMap::new(), &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("embedding"), "{err}");
    assert!(err.contains("batchsize"), "{err}");
}

#[test]
fn wrongly_typed_environment_value_names_the_key() {
    let env = map(&[("INSTANT_DB_EMBEDDING_BATCH_SIZE", "lots")]);
    let err = Config::load_from(None, &env, &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("embedding.batch_size"), "{err}");
}

#[test]
fn out_of_range_value_is_rejected_with_its_key() {
    let flags = map(&[("chunking.overlap_tokens", "150")]);
    let err = Config::load_from(None, &BTreeMap::new(), &flags)
        .unwrap_err()
        .to_string();
    assert!(err.contains("chunking.overlap_tokens"), "{err}");
}

#[test]
fn allowed_roots_from_environment_is_a_list() {
    let env = map(&[("INSTANT_DB_ALLOWED_ROOTS", "/srv/a, /srv/b")]);
    let c = Config::load_from(None, &env, &BTreeMap::new()).unwrap();
    assert_eq!(
        c.ingest.allowed_roots,
        vec![PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]
    );
}

#[test]
fn every_key_can_be_set_from_the_environment() {
    // Each leaf of the default configuration, spelled as its `INSTANT_DB_…__…` variable with
    // its default value as text, must be accepted and read back as the same value.
    fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&key, child, out);
                }
            }
            other => out.push((prefix.to_string(), other.clone())),
        }
    }
    let defaults = serde_json::to_value(Config::default()).unwrap();
    let mut all = vec![];
    leaves("", &defaults, &mut all);
    let mut env = BTreeMap::new();
    let mut nested = 0;
    for (key, value) in &all {
        if !key.contains('.') {
            continue; // top-level keys have their short names (INSTANT_DB_DATA_DIR, …)
        }
        nested += 1;
        let raw = match value {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Array(a) if a.is_empty() => continue,
            Value::Array(a) => a
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        env.insert(env_var_of_key(key), raw);
    }
    assert!(nested >= 30, "only {nested} nested keys");
    let loaded = Config::load_from(None, &env, &BTreeMap::new()).unwrap();
    assert_eq!(serde_json::to_value(loaded).unwrap(), defaults);
}

#[test]
fn environment_values_are_typed_by_their_key() {
    let env = map(&[
        ("INSTANT_DB_SEARCH__MAX_TOP_K", "50"),
        ("INSTANT_DB_SEARCH__RRF_K", "12.5"),
        ("INSTANT_DB_INGEST__FOLLOW_SYMLINKS", "false"),
        ("INSTANT_DB_INGEST__EXCLUDE", "**/a/**, **/b/**"),
        ("INSTANT_DB_INGEST__ALLOWED_ROOTS", "[/srv/x]"),
        ("INSTANT_DB_EMBEDDING__MODEL", "1.0"),
        ("INSTANT_DB_LOGGING__FILE", "/var/log/x.log"),
        ("INSTANT_DB_HEALTH__THRESHOLDS__DISK_FREE_BYTES_MIN", "1024"),
        // Both spellings of one key: the `__` form wins.
        ("INSTANT_DB_EMBEDDING_BATCH_SIZE", "8"),
        ("INSTANT_DB_EMBEDDING__BATCH_SIZE", "16"),
    ]);
    let c = Config::load_from(None, &env, &BTreeMap::new()).unwrap();
    assert_eq!(c.search.max_top_k, 50);
    assert_eq!(c.search.rrf_k, 12.5);
    assert!(!c.ingest.follow_symlinks);
    assert_eq!(c.ingest.exclude, ["**/a/**", "**/b/**"]);
    assert_eq!(c.ingest.allowed_roots, [PathBuf::from("/srv/x")]);
    assert_eq!(c.embedding.model, "1.0");
    assert_eq!(c.logging.file, Some(PathBuf::from("/var/log/x.log")));
    assert_eq!(c.health.thresholds.disk_free_bytes_min, 1024);
    assert_eq!(c.embedding.batch_size, 16);
}

#[test]
fn an_unknown_or_badly_typed_environment_key_is_an_error_naming_it() {
    for (var, needle) in [
        (
            "INSTANT_DB_SEARCH__MAX_TOPK",
            "unknown configuration key `search.max_topk`",
        ),
        (
            "INSTANT_DB_SERCH__MAX_TOP_K",
            "unknown configuration key `serch.max_top_k`",
        ),
        (
            "INSTANT_DB_SEARCH__MAX_TOP_K__X",
            "unknown configuration key `search.max_top_k.x`",
        ),
    ] {
        let err = Config::load_from(None, &map(&[(var, "5")]), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains(var) && err.contains(needle), "{err}");
    }
    let env = map(&[("INSTANT_DB_SEARCH__MAX_TOP_K", "many")]);
    let err = Config::load_from(None, &env, &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("search.max_top_k"), "{err}");
}
