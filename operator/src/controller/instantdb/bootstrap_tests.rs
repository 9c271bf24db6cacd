use super::*;
use serde_json::json;

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn db(from: serde_json::Value) -> InstantDb {
    obj(
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
        "metadata": {"name": "clone", "namespace": "search", "uid": "u1"},
        "spec": {"storage": {"size": "1Gi"}, "bootstrap": {"fromBackup": from}}}),
    )
}

fn backup(name: &str, status: serde_json::Value) -> InstantDbBackup {
    obj(
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
        "metadata": {"name": name, "namespace": "search"},
        "spec": {"instance": "docs"}, "status": status}),
    )
}

const ARCHIVE: &str =
    "s3://b/search/docs/nightly-1-0f3c2a9e.tar.gz?region=us-east-1&credentials=creds";

fn completed() -> serde_json::Value {
    json!({"phase": "Completed", "backupId": "nightly-1-0f3c2a9e", "archiveUrl": ARCHIVE,
        "destination": {"s3": {"bucket": "b", "prefix": "search/docs", "region": "us-east-1",
            "credentialsSecret": "creds"}}})
}

#[test]
fn a_named_backup_is_used_with_its_recorded_archive_never_a_recomputed_one() {
    let d = db(json!({"backup": "nightly-1"}));
    let Plan::Ready(r) = plan(&d, &[backup("nightly-1", completed())]) else {
        panic!("not ready")
    };
    assert_eq!(r.archive_url.as_deref(), Some(ARCHIVE));
    assert_eq!(r.backup.as_deref(), Some("nightly-1"));
    assert_eq!(
        r.destination
            .unwrap()
            .s3
            .unwrap()
            .credentials_secret
            .as_deref(),
        Some("creds")
    );
}

#[test]
fn a_missing_failed_or_unpinned_backup_is_unusable_and_a_running_one_is_waited_for() {
    let d = db(json!({"backup": "nightly-1"}));
    let Plan::Unusable(m) = plan(&d, &[]) else {
        panic!()
    };
    assert!(
        m.contains("not found") && m.contains("fromBackup.source"),
        "{m}"
    );
    let failed = backup(
        "nightly-1",
        json!({"phase": "Failed", "error": "bucket gone"}),
    );
    let Plan::Unusable(m) = plan(&d, &[failed]) else {
        panic!()
    };
    assert!(
        m.contains("bucket gone") && m.contains("completed backup"),
        "{m}"
    );
    let unpinned = backup(
        "nightly-1",
        json!({"phase": "Completed", "backupId": "nightly-1-0f3c2a9e"}),
    );
    let Plan::Unusable(m) = plan(&d, &[unpinned]) else {
        panic!()
    };
    assert!(
        m.contains("no recorded archive") && m.contains("nightly-1-0f3c2a9e"),
        "{m}"
    );
    for running in [json!({"phase": "Running"}), json!({})] {
        let Plan::Wait(m) = plan(&d, &[backup("nightly-1", running)]) else {
            panic!()
        };
        assert!(m.contains("to complete"), "{m}");
    }
    assert!(holds(&plan(&d, &[]), None));
    assert!(holds(&Plan::Wait(String::new()), None));
    assert!(!holds(&Plan::None, None));
}

#[test]
fn a_source_resolves_to_the_archive_of_that_id_in_its_destination() {
    let d = db(json!({"source": {"backupId": "nightly-1-0f3c2a9e",
        "destination": {"s3": {"bucket": "b", "prefix": "prod/docs", "credentialsSecret": "prod-creds",
            "endpoint": "http://minio:9000"}}}}));
    let Plan::Ready(r) = plan(&d, &[]) else {
        panic!()
    };
    let url = r.archive_url.unwrap();
    assert!(
        url.starts_with("s3://b/prod/docs/nightly-1-0f3c2a9e.tar.gz?endpoint="),
        "{url}"
    );
    assert!(url.ends_with("&credentials=prod-creds"), "{url}");
    let on_volume = db(json!({"source": {"backupId": "x-1",
        "destination": {"volume": {"claimName": "shared-backups", "path": "docs"}}}}));
    let Plan::Ready(r) = plan(&on_volume, &[]) else {
        panic!()
    };
    assert_eq!(
        r.archive_url.as_deref(),
        Some("file:///backups/shared-backups/docs/x-1.tar.gz")
    );
    let bad = db(json!({"source": {"backupId": "x",
        "destination": {"volume": {"claimName": "c", "path": "../elsewhere"}}}}));
    let Plan::Unusable(m) = plan(&bad, &[]) else {
        panic!()
    };
    assert!(
        m.contains("spec.bootstrap.fromBackup.source.destination"),
        "{m}"
    );
}

#[test]
fn the_recorded_archive_wins_over_the_spec_once_written() {
    let mut d = db(json!({"backup": "nightly-1"}));
    d.status = Some(obj(
        json!({"bootstrap": {"backup": "nightly-1", "archiveUrl": ARCHIVE}}),
    ));
    // the backup was pruned since: the instance keeps what it recorded
    assert!(matches!(plan(&d, &[]), Plan::Ready(r) if r.archive_url.as_deref() == Some(ARCHIVE)));
    assert_eq!(
        plan(
            &obj(
                json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
        "metadata": {"name": "x"}, "spec": {"storage": {"size": "1Gi"}}})
            ),
            &[]
        ),
        Plan::None
    );
}

fn pod(init: serde_json::Value) -> Pod {
    obj(
        json!({"metadata": {"name": "clone-0"}, "status": {"phase": "Pending",
        "initContainerStatuses": [init]}}),
    )
}

fn ready_plan() -> Plan {
    Plan::Ready(Box::new(BootstrapStatus {
        backup: Some("nightly-1".into()),
        archive_url: Some(ARCHIVE.into()),
        target_time: None,
        destination: None,
    }))
}

#[test]
fn the_condition_follows_the_init_container_and_turns_true_with_the_document_count() {
    let running = pod(
        json!({"name": "bootstrap", "image": "i", "imageID": "", "ready": false,
        "restartCount": 0, "state": {"running": {}}}),
    );
    let v = condition(&ready_plan(), None, None, Some(&running), false, None).unwrap();
    assert_eq!((v.status, v.reason), (Status::False, reasons::RESTORING));
    assert!(!v.hold && !v.needs_user);
    let crashing = pod(
        json!({"name": "bootstrap", "image": "i", "imageID": "", "ready": false,
        "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 2, "message":
            "restoring\nbackup archive s3://b/x.tar.gz not found: restore a backup that exists"}}}),
    );
    let v = condition(&ready_plan(), None, None, Some(&crashing), false, None).unwrap();
    assert_eq!(v.reason, reasons::RESTORE_FAILED);
    assert!(v.needs_user && !v.hold);
    assert!(
        v.message
            .contains("exit code 2: backup archive s3://b/x.tar.gz not found")
            && v.message.contains("kubectl logs"),
        "{}",
        v.message
    );
    let v = condition(&ready_plan(), None, None, None, true, Some(13)).unwrap();
    assert_eq!((v.status, v.reason), (Status::True, reasons::RESTORED));
    assert_eq!(v.message, "restored backup nightly-1: 13 documents");
    // once True it stays True, whatever the pod does later
    let previous = Condition {
        type_: conditions::BOOTSTRAPPED.into(),
        status: "True".into(),
        reason: reasons::RESTORED.into(),
        message: v.message.clone(),
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ),
        observed_generation: None,
    };
    let later = condition(
        &ready_plan(),
        Some("gone"),
        Some(&previous),
        Some(&crashing),
        false,
        None,
    )
    .unwrap();
    assert_eq!((later.status, later.message), (Status::True, v.message));
    let v = condition(
        &ready_plan(),
        Some("credentials Secret creds not found"),
        None,
        None,
        false,
        None,
    )
    .unwrap();
    assert_eq!(v.reason, reasons::CREDENTIALS_MISSING);
    assert!(v.hold && v.needs_user);
    assert!(condition(&Plan::None, None, None, None, true, Some(1)).is_none());
}

#[test]
fn a_held_or_failed_bootstrap_makes_the_instance_not_ready_and_says_why() {
    let now = k8s_openapi::jiff::Timestamp::UNIX_EPOCH;
    let mut s = instant_db_crds::InstantDbStatus::default();
    let v = condition(
        &Plan::Unusable("InstantDbBackup x not found".into()),
        None,
        None,
        None,
        false,
        None,
    )
    .unwrap();
    apply_to_status(&mut s, &v, now);
    let get = |s: &instant_db_crds::InstantDbStatus, t: &str| {
        let c = conditions::find_condition(&s.conditions, t).unwrap();
        (c.status.clone(), c.reason.clone())
    };
    assert_eq!(
        get(&s, conditions::BOOTSTRAPPED),
        ("False".into(), reasons::BACKUP_UNUSABLE.into())
    );
    assert_eq!(
        get(&s, conditions::STALLED),
        ("True".into(), reasons::BACKUP_UNUSABLE.into())
    );
    assert_eq!(get(&s, conditions::READY).0, "False");
    assert_eq!(s.phase, Some(instant_db_crds::Phase::Failed));
    let mut s = instant_db_crds::InstantDbStatus::default();
    let v = condition(&Plan::Wait("waiting".into()), None, None, None, false, None).unwrap();
    apply_to_status(&mut s, &v, now);
    assert_eq!(get(&s, conditions::STALLED).0, "False");
    assert_eq!(
        get(&s, conditions::RECONCILING),
        ("True".into(), reasons::WAITING_FOR_BACKUP.into())
    );
    assert_eq!(s.phase, Some(instant_db_crds::Phase::Provisioning));
}

#[test]
fn the_init_containers_report_gives_the_count_and_tells_a_kept_database_from_a_restore() {
    let finished = |message: &str| {
        pod(
            json!({"name": "bootstrap", "image": "i", "imageID": "", "ready": true,
            "restartCount": 0, "state": {"terminated": {"exitCode": 0, "message": message}}}),
        )
    };
    let restored = finished(r#"{"restored":true,"documents":600,"chunks":1200}"#);
    let v = condition(&ready_plan(), None, None, Some(&restored), true, Some(12)).unwrap();
    assert_eq!(v.message, "restored backup nightly-1: 600 documents");
    let kept = finished(
        r#"{"restored":false,"skipped":"/data/instant-db.sqlite already holds a database"}"#,
    );
    let v = condition(&ready_plan(), None, None, Some(&kept), true, Some(12)).unwrap();
    assert_eq!(
        (v.status, v.reason),
        (Status::False, reasons::EXISTING_DATA_KEPT)
    );
    assert!(
        v.message.contains("already holds a database") && v.message.contains("data-<name>-0"),
        "{}",
        v.message
    );
    assert!(!v.hold && !v.needs_user);
    let mut s = instant_db_crds::InstantDbStatus::default();
    apply_to_status(&mut s, &v, k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    assert!(
        conditions::find_condition(&s.conditions, conditions::READY).is_none(),
        "Ready is left to the engine"
    );
}

#[test]
fn a_target_time_bootstraps_from_the_folder_of_the_named_backup_or_of_the_source() {
    let d = db(json!({"backup": "nightly-1", "targetTime": "2026-12-02T07:00:00+02:00"}));
    let Plan::Ready(r) = plan(&d, &[backup("nightly-1", completed())]) else {
        panic!("not ready")
    };
    // the folder, not the archive: the engine picks the base before the time
    assert_eq!(
        r.archive_url.as_deref(),
        Some("s3://b/search/docs?region=us-east-1&credentials=creds")
    );
    // written back in UTC, as the engine reads it
    assert_eq!(r.target_time.as_deref(), Some("2026-12-02T05:00:00Z"));
    // a source needs no backupId with a target time
    let d = db(json!({"targetTime": "latest", "source": {
        "destination": {"volume": {"claimName": "shared-backups", "path": "docs"}}}}));
    let Plan::Ready(r) = plan(&d, &[]) else {
        panic!()
    };
    assert_eq!(
        (r.archive_url.as_deref(), r.target_time.as_deref(), r.backup),
        (
            Some("file:///backups/shared-backups/docs"),
            Some("latest"),
            None
        )
    );
    // without one it does (the CRD's rule says so too)
    let d = db(json!({"source": {"destination": {"volume": {"claimName": "c"}}}}));
    let Plan::Unusable(m) = plan(&d, &[]) else {
        panic!()
    };
    assert!(m.contains("backupId is required"), "{m}");
}

#[test]
fn a_target_time_that_is_no_time_is_unusable_with_what_to_write() {
    let d = db(json!({"backup": "nightly-1", "targetTime": "2026-13-02T05:00:00Z"}));
    let Plan::Unusable(m) = plan(&d, &[backup("nightly-1", completed())]) else {
        panic!()
    };
    assert!(
        m.contains("spec.bootstrap.fromBackup.targetTime") && m.contains("RFC 3339"),
        "{m}"
    );
    assert_eq!(check_target_time(" LATEST ").unwrap(), "latest");
    assert_eq!(
        check_target_time("2026-12-02T05:00:00.250Z").unwrap(),
        "2026-12-02T05:00:00.25Z"
    );
    assert!(check_target_time("2026-12-02 05:00").is_err());
}
