use super::*;
use instant_db_crds::conditions::find_condition;
use serde_json::json;

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn db() -> InstantDb {
    obj(
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
        "metadata": {"name": "docs", "namespace": "search", "labels": {"tier": "gold"}},
        "spec": {"storage": {"size": "1Gi"}}}),
    )
}

fn policy(name: &str, created: &str, archiving: serde_json::Value) -> InstantDbBackupPolicy {
    obj(
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackupPolicy",
        "metadata": {"name": name, "namespace": "search", "creationTimestamp": created},
        "spec": {"selector": {"matchLabels": {"tier": "gold"}}, "schedule": "@daily",
            "destination": {"s3": {"bucket": "backups", "credentialsSecret": "s3-creds"}},
            "continuousArchiving": archiving}}),
    )
}

fn now() -> Timestamp {
    "2026-12-02T06:00:00Z".parse().unwrap()
}

#[test]
fn the_policy_folder_and_its_bounds_become_the_engines_archive_settings() {
    let p = policy(
        "gold",
        "2026-11-01T00:00:00Z",
        json!({"enabled": true, "maxLagSeconds": 10, "maxBufferBytes": 2097152}),
    );
    let got = plan(&db(), &[p]).unwrap().unwrap();
    assert_eq!(got.policy, "gold");
    assert_eq!(
        got.settings,
        ArchiveSettings {
            // the folder the policy's backups go to, credentials by Secret name
            destination: "s3://backups/search/docs?region=us-east-1&credentials=s3-creds".into(),
            max_lag_secs: 10,
            max_buffer_bytes: Some(2097152),
        }
    );
    assert_eq!(got.credentials(), Some(("s3-creds", Store::S3)));
    // defaults: 5 s, the engine's buffer
    let p = policy("gold", "2026-11-01T00:00:00Z", json!({"enabled": true}));
    let got = plan(&db(), &[p]).unwrap().unwrap();
    assert_eq!(
        (got.settings.max_lag_secs, got.settings.max_buffer_bytes),
        (5, None)
    );
}

#[test]
fn only_an_enabled_covering_policy_archives_and_the_oldest_wins() {
    let off = policy("off", "2026-10-01T00:00:00Z", json!({"enabled": false}));
    let unset = policy("unset", "2026-10-01T00:00:00Z", json!({}));
    assert_eq!(plan(&db(), &[off.clone(), unset]), None);
    let mut elsewhere = policy("silver", "2026-10-01T00:00:00Z", json!({"enabled": true}));
    elsewhere.spec.selector = Some(obj(json!({"matchLabels": {"tier": "silver"}})));
    assert_eq!(plan(&db(), &[elsewhere.clone()]), None);
    let newer = policy("a-newer", "2026-11-02T00:00:00Z", json!({"enabled": true}));
    let older = policy("z-older", "2026-11-01T00:00:00Z", json!({"enabled": true}));
    let got = plan(&db(), &[newer, off, elsewhere, older])
        .unwrap()
        .unwrap();
    assert_eq!(got.policy, "z-older");
    assert_eq!(got.ignored, ["a-newer"]);
}

#[test]
fn a_destination_that_cannot_be_used_is_an_error_naming_the_policy() {
    let mut p = policy("gold", "2026-11-01T00:00:00Z", json!({"enabled": true}));
    p.spec.destination = obj(json!({"s3": {"bucket": "b", "prefix": "x/../y"}}));
    let e = plan(&db(), &[p]).unwrap().unwrap_err();
    assert!(
        e.contains("InstantDbBackupPolicy gold") && e.contains(".."),
        "{e}"
    );
}

fn healthy_report() -> ArchiveReport {
    ArchiveReport {
        enabled: true,
        destination: Some("s3://backups/search/docs?region=us-east-1".into()),
        last_archived_time: Some("2026-12-02T05:59:58.123456Z".into()),
        within_max_lag: true,
        first_recoverable_time: Some("2026-12-02T00:00:03.500000Z".into()),
        last_recoverable_time: Some("2026-12-02T05:59:58.123456Z".into()),
        ..Default::default()
    }
}

fn archiving(s: &InstantDbStatus) -> (String, String, String) {
    let c = find_condition(&s.conditions, conds::CONTINUOUS_ARCHIVING).unwrap();
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[test]
fn the_condition_and_the_window_follow_the_engines_report() {
    let p = plan(
        &db(),
        &[policy(
            "gold",
            "2026-11-01T00:00:00Z",
            json!({"enabled": true}),
        )],
    )
    .unwrap()
    .unwrap();
    let mut s = InstantDbStatus::default();
    // configured, the engine not asked yet
    apply_to_status(
        &mut s,
        &State::On {
            plan: &p,
            report: None,
        },
        now(),
    );
    assert_eq!(archiving(&s).0, "Unknown");
    let ok = healthy_report();
    apply_to_status(
        &mut s,
        &State::On {
            plan: &p,
            report: Some(&ok),
        },
        now(),
    );
    let (status, reason, message) = archiving(&s);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Archiving"));
    assert!(
        message.contains("within 5s") && message.contains("gold"),
        "{message}"
    );
    // whole seconds, as the API server keeps them
    assert_eq!(
        s.first_recoverability_point,
        Some(Time("2026-12-02T00:00:03Z".parse().unwrap()))
    );
    assert_eq!(
        s.last_archived_time,
        Some(Time("2026-12-02T05:59:58Z".parse().unwrap()))
    );
    // not asked this time: everything stays as it was
    let before = s.clone();
    apply_to_status(
        &mut s,
        &State::On {
            plan: &p,
            report: None,
        },
        now(),
    );
    assert_eq!(s, before);
    // the same report again changes nothing (no write)
    apply_to_status(
        &mut s,
        &State::On {
            plan: &p,
            report: Some(&ok),
        },
        now(),
    );
    assert_eq!(s, before);

    for (report, reason, says) in [
        (
            ArchiveReport {
                within_max_lag: false,
                lag_seconds: 40.0,
                ..healthy_report()
            },
            "ArchiveLagging",
            "longer than maxLagSeconds (5s)",
        ),
        (
            ArchiveReport {
                last_error: Some("HTTP 503 from s3".into()),
                ..healthy_report()
            },
            "ArchiveFailing",
            "HTTP 503 from s3",
        ),
        (
            ArchiveReport {
                buffer_full: true,
                last_error: Some("HTTP 503 from s3".into()),
                ..healthy_report()
            },
            "ArchiveBufferFull",
            "maxBufferBytes",
        ),
    ] {
        apply_to_status(
            &mut s,
            &State::On {
                plan: &p,
                report: Some(&report),
            },
            now(),
        );
        let (status, got, message) = archiving(&s);
        assert_eq!((status.as_str(), got.as_str()), ("False", reason));
        assert!(message.contains(says), "{message}");
    }

    // no base snapshot yet: True (changes are archived) and the engine's note says what to do
    let no_base = ArchiveReport {
        first_recoverable_time: None,
        last_recoverable_time: None,
        note: Some("no base snapshot in the current archive generation yet: take a backup".into()),
        ..healthy_report()
    };
    apply_to_status(
        &mut s,
        &State::On {
            plan: &p,
            report: Some(&no_base),
        },
        now(),
    );
    let (status, _, message) = archiving(&s);
    assert_eq!(status, "True");
    assert!(message.contains("take a backup"), "{message}");
    assert_eq!(s.first_recoverability_point, None);

    // the engine still runs the old configuration
    let off = ArchiveReport::default();
    apply_to_status(
        &mut s,
        &State::On {
            plan: &p,
            report: Some(&off),
        },
        now(),
    );
    let (status, reason, message) = archiving(&s);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("Unknown", "WaitingForEngine")
    );
    assert!(message.contains("restarts"), "{message}");

    // archiving switched off: no condition and no window
    apply_to_status(
        &mut s,
        &State::On {
            plan: &p,
            report: Some(&ok),
        },
        now(),
    );
    apply_to_status(&mut s, &State::Off, now());
    assert!(find_condition(&s.conditions, conds::CONTINUOUS_ARCHIVING).is_none());
    assert_eq!(
        (s.first_recoverability_point, s.last_archived_time),
        (None, None)
    );
}

#[test]
fn a_blocked_archive_is_false_with_its_reason_and_ignored_policies_are_named() {
    let mut s = InstantDbStatus::default();
    apply_to_status(
        &mut s,
        &State::Blocked {
            reason: reasons::CREDENTIALS_MISSING,
            message: "credentials Secret s3-creds not found".into(),
        },
        now(),
    );
    assert_eq!(
        archiving(&s),
        (
            "False".into(),
            "ArchiveCredentialsMissing".into(),
            "credentials Secret s3-creds not found".into()
        )
    );
    let two = [
        policy("gold", "2026-11-01T00:00:00Z", json!({"enabled": true})),
        policy("platinum", "2026-11-05T00:00:00Z", json!({"enabled": true})),
    ];
    let p = plan(&db(), &two).unwrap().unwrap();
    apply_to_status(
        &mut s,
        &State::On {
            plan: &p,
            report: Some(&healthy_report()),
        },
        now(),
    );
    let (status, _, message) = archiving(&s);
    assert_eq!(status, "True");
    assert!(
        message.contains("ignored") && message.contains("platinum"),
        "{message}"
    );
}
