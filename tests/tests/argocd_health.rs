//! The Argo CD health checks (`charts/instant-db-operator/argocd/*.lua`) run in a real Lua 5.1
//! interpreter (the language of Argo CD's gopher-lua) against objects whose status comes from
//! the operator's own status code (`status::compute`, the backup and policy planners,
//! `operation::set_conditions`), serialized to JSON and handed to Lua as `obj` the way Argo CD
//! hands it the live object. Plus: the `argocd-cm` snippet in docs/operator.md is these files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use instant_db_crds::backup::{
    BackupDestination, InstantDbBackup, InstantDbBackupPolicy, InstantDbBackupPolicySpec,
    InstantDbBackupSpec, InstantDbBackupStatus, InstantDbRestore, InstantDbRestoreSpec,
    InstantDbRestoreStatus, OperationPhase, S3Destination,
};
use instant_db_crds::conditions::{self, NewCondition, Status, set_condition};
use instant_db_crds::{InstantDb, InstantDbSpec, InstantDbStatus, StorageSpec};
use instant_db_operator::controller::backup::{operation, plan as backup_plan};
use instant_db_operator::controller::instantdb::diagnose::{EngineView, Problem, causes};
use instant_db_operator::controller::instantdb::status::{self, Observed};
use instant_db_operator::controller::policy::plan as policy_plan;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use mlua::serde::SerializeOptions;
use mlua::{Lua, LuaSerdeExt, Table};
use serde::Serialize;

const GROUP: &str = "instantdb.io";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn checks_dir() -> PathBuf {
    root().join("charts/instant-db-operator/argocd")
}

/// The health checks by their `argocd-cm` key suffix (`instantdb.io_InstantDb`: the file stem).
fn checks() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(checks_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "lua") {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            out.insert(stem, std::fs::read_to_string(&path).unwrap());
        }
    }
    out
}

/// Runs the health check of `kind` on `obj` as Argo CD does (global `obj`, the script returns
/// `hs`); returns `hs.status` and `hs.message`.
fn health(kind: &str, obj: &impl Serialize) -> (String, String) {
    let src = checks()
        .remove(&format!("{GROUP}_{kind}"))
        .unwrap_or_else(|| panic!("no health check for {kind}"));
    let lua = Lua::new();
    // Argo CD converts the live object's JSON to a Lua table: absent and null fields are nil.
    let json = serde_json::to_value(obj).unwrap();
    let options = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    let value = lua.to_value_with(&json, options).unwrap();
    lua.globals().set("obj", value).unwrap();
    let hs: Table = lua
        .load(&src)
        .set_name(kind)
        .eval()
        .unwrap_or_else(|e| panic!("health check of {kind} failed to run: {e}"));
    let status: String = hs.get("status").unwrap();
    let message: String = hs.get("message").unwrap();
    assert!(
        ["Healthy", "Progressing", "Degraded", "Suspended", "Missing"].contains(&status.as_str()),
        "{kind}: {status} is not an Argo CD health status"
    );
    assert!(!message.is_empty(), "{kind}: {status} without a message");
    (status, message)
}

fn now() -> Timestamp {
    "2026-12-01T10:00:00Z".parse().unwrap()
}

fn meta(name: &str, generation: i64) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("search".into()),
        uid: Some("11111111-2222-3333-4444-555555555555".into()),
        generation: Some(generation),
        creation_timestamp: Some(Time("2026-11-01T00:00:00Z".parse().unwrap())),
        ..Default::default()
    }
}

// ---------------------------------------------------------------- InstantDb

fn instance(status: Option<InstantDbStatus>) -> InstantDb {
    InstantDb {
        metadata: meta("docs", 2),
        spec: InstantDbSpec {
            storage: StorageSpec {
                size: "1Gi".into(),
                ..Default::default()
            },
            ..Default::default()
        },
        status,
    }
}

fn observed(ready: bool, problem: Option<(&'static str, bool)>) -> Observed {
    Observed {
        generation: Some(2),
        ready_replicas: i32::from(ready),
        rolled_out: true,
        engine: EngineView {
            ready,
            problem: problem.map(|(reason, needs_user)| Problem {
                reason,
                message: format!("{reason} seen by the operator"),
                needs_user,
            }),
        },
        ..Default::default()
    }
}

/// Health of an instance whose status the operator computed from `o`.
fn instance_health(o: &Observed) -> (String, String) {
    health(
        "InstantDb",
        &instance(Some(status::compute(None, o, now()))),
    )
}

#[test]
fn instantdb_without_status_or_with_an_older_generation_is_progressing() {
    assert_eq!(health("InstantDb", &instance(None)).0, "Progressing");
    // Healthy for generation 1, but the spec is at 2: the operator has not seen the change.
    let mut o = observed(true, None);
    o.generation = Some(1);
    let (h, m) = health(
        "InstantDb",
        &instance(Some(status::compute(None, &o, now()))),
    );
    assert_eq!(h, "Progressing");
    assert!(m.contains("generation 2"), "{m}");
}

#[test]
fn instantdb_ready_is_healthy_and_rolling_out_or_starting_is_progressing() {
    assert_eq!(instance_health(&observed(true, None)).0, "Healthy");
    let mut rolling = observed(true, None);
    rolling.rolled_out = false;
    let (h, m) = instance_health(&rolling);
    assert_eq!(
        (h.as_str(), m.starts_with("RollingOut")),
        ("Progressing", true)
    );
    let (h, m) = instance_health(&observed(false, None));
    assert_eq!(h, "Progressing");
    assert!(m.starts_with("EngineStarting"), "{m}");
}

#[test]
fn instantdb_that_cannot_progress_without_the_user_is_degraded() {
    let invalid = Observed {
        invalid: vec!["storage.size \"x\" is not a quantity".into()],
        ..observed(false, None)
    };
    let (h, m) = instance_health(&invalid);
    assert_eq!(h, "Degraded");
    assert!(m.contains("storage.size"), "{m}");
    for reason in ["NameConflict", "ApplyRejected"] {
        let blocked = Observed {
            blocked: Some((reason.into(), format!("{reason} message"))),
            ..observed(false, None)
        };
        let (h, m) = instance_health(&blocked);
        assert_eq!(h, "Degraded", "{reason}");
        assert!(m.starts_with(reason), "{m}");
    }
    for reason in [
        causes::SECRET_MISSING,
        causes::CONTAINER_CONFIG,
        causes::INTEGRITY_FAILED,
    ] {
        let (h, m) = instance_health(&observed(false, Some((reason, true))));
        assert_eq!(h, "Degraded", "{reason}");
        assert!(m.contains("seen by the operator"), "{m}");
    }
}

#[test]
fn instantdb_suspended_is_suspended() {
    let o = Observed {
        suspended: true,
        ..observed(false, None)
    };
    let (h, m) = instance_health(&o);
    assert_eq!(h, "Suspended");
    assert!(m.contains("spec.suspend"), "{m}");
}

#[test]
fn instantdb_engine_failures_are_degraded_and_causes_of_a_normal_start_progressing() {
    // What the kubelet or the scheduler works through on a first start stays Progressing.
    for reason in [
        causes::VOLUME_PENDING,
        causes::UNSCHEDULABLE,
        causes::PROBE_FAILING,
    ] {
        let (h, m) = instance_health(&observed(false, Some((reason, false))));
        assert_eq!(h, "Progressing", "{reason}");
        assert!(m.starts_with(reason), "{m}");
    }
    for reason in [
        causes::CRASH_LOOP,
        causes::IMAGE_PULL,
        causes::HEALTH_CHECK_FAILED,
        causes::ENGINE_UNHEALTHY,
    ] {
        let (h, m) = instance_health(&observed(false, Some((reason, false))));
        assert_eq!(h, "Degraded", "{reason}");
        assert!(m.starts_with(reason), "{m}");
    }
    // Serving, but with a degradation (keyword search only, a degraded component).
    for reason in [causes::MODEL_NOT_LOADED, causes::ENGINE_DEGRADED] {
        let (h, m) = instance_health(&observed(true, Some((reason, false))));
        assert_eq!(h, "Degraded", "{reason}");
        assert!(m.starts_with(reason), "{m}");
    }
}

#[test]
fn instantdb_under_automatic_restore_is_progressing() {
    let o = Observed {
        auto_restore: true,
        ..observed(false, Some((causes::INTEGRITY_FAILED, true)))
    };
    assert_eq!(instance_health(&o).0, "Progressing");
    // With the Recovering condition the recovery code sets beside it, its message is shown.
    let mut s = status::compute(None, &o, now());
    set_condition(
        &mut s.conditions,
        NewCondition {
            type_: conditions::RECOVERING,
            status: Status::True,
            reason: "AutoRestoreRunning",
            message: "InstantDbRestore docs-auto-20261201095900 restores daily-docs-202612010300"
                .into(),
            observed_generation: Some(2),
        },
        now(),
    );
    let (h, m) = health("InstantDb", &instance(Some(s)));
    assert_eq!(h, "Progressing");
    assert!(m.starts_with("AutoRestoreRunning"), "{m}");
}

#[test]
fn instantdb_with_failing_backups_stays_healthy_and_says_so() {
    let mut s = status::compute(None, &observed(true, None), now());
    set_condition(
        &mut s.conditions,
        NewCondition {
            type_: conditions::BACKUP_HEALTHY,
            status: Status::False,
            reason: "LastBackupFailed",
            message: "InstantDbBackup b1 failed: bucket missing".into(),
            observed_generation: Some(2),
        },
        now(),
    );
    let (h, m) = health("InstantDb", &instance(Some(s)));
    assert_eq!(h, "Healthy");
    assert!(m.contains("bucket missing"), "{m}");
}

#[test]
fn instantdb_whose_archive_falls_behind_stays_healthy_and_says_so() {
    let mut s = status::compute(None, &observed(true, None), now());
    set_condition(
        &mut s.conditions,
        NewCondition {
            type_: conditions::CONTINUOUS_ARCHIVING,
            status: Status::False,
            reason: "ArchiveFailing",
            message: "archiving to the destination fails: HTTP 503".into(),
            observed_generation: Some(2),
        },
        now(),
    );
    let (h, m) = health("InstantDb", &instance(Some(s)));
    assert_eq!(h, "Healthy");
    assert!(
        m.contains("ContinuousArchiving=False ArchiveFailing"),
        "{m}"
    );
}

// ---------------------------------------------------------------- InstantDbBackup

fn backup(name: &str, status: Option<InstantDbBackupStatus>) -> InstantDbBackup {
    InstantDbBackup {
        metadata: meta(name, 1),
        spec: InstantDbBackupSpec {
            instance: "docs".into(),
            ..Default::default()
        },
        status,
    }
}

/// A backup status as the controller writes it: the planner's fields plus the conditions.
fn with_conditions(mut s: InstantDbBackupStatus) -> InstantDbBackupStatus {
    let message = s.error.clone().or(s.message.clone()).unwrap_or_default();
    operation::set_conditions(&mut s.conditions, s.phase, None, &message, Some(1), now());
    s
}

fn completed_backup(name: &str) -> InstantDbBackup {
    let mut s = backup_plan::started(None, Some(1), format!("{name}-11111111"), now());
    s.phase = Some(OperationPhase::Completed);
    s.completed_at = Some(Time(now()));
    s.location = Some(format!("s3://backups/search/docs/{name}-11111111.tar.gz"));
    backup(name, Some(with_conditions(s)))
}

fn failed_backup(name: &str, error: &str) -> InstantDbBackup {
    let s = backup_plan::failed(None, Some(1), error.into(), now());
    backup(name, Some(with_conditions(s)))
}

#[test]
fn backup_phases_map_to_argo_health() {
    assert_eq!(
        health("InstantDbBackup", &backup("b", None)).0,
        "Progressing"
    );
    let pending = backup_plan::pending(None, Some(1), "InstantDb docs not found".into());
    let (h, m) = health(
        "InstantDbBackup",
        &backup("b", Some(with_conditions(pending))),
    );
    assert_eq!(h, "Progressing");
    assert!(m.contains("InstantDb docs not found"), "{m}");
    let running = backup_plan::started(None, Some(1), "b-11111111".into(), now());
    let (h, m) = health(
        "InstantDbBackup",
        &backup("b", Some(with_conditions(running))),
    );
    assert_eq!((h.as_str(), m.as_str()), ("Progressing", "Running"));
    let (h, m) = health("InstantDbBackup", &completed_backup("b"));
    assert_eq!(h, "Healthy");
    assert!(m.contains("s3://backups/"), "{m}");
    let (h, m) = health(
        "InstantDbBackup",
        &failed_backup("b", "bucket backups does not exist"),
    );
    assert_eq!(h, "Degraded");
    assert!(m.contains("bucket backups does not exist"), "{m}");
    assert!(m.contains("create a new InstantDbBackup"), "{m}");
}

// ---------------------------------------------------------------- InstantDbRestore

fn restore(status: Option<InstantDbRestoreStatus>) -> InstantDbRestore {
    InstantDbRestore {
        metadata: meta("undo", 1),
        spec: InstantDbRestoreSpec {
            instance: "docs".into(),
            backup: Some("b1".into()),
            target_time: None,
        },
        status,
    }
}

/// A restore status in `phase` with the conditions the restore controller writes.
fn restore_status(
    phase: OperationPhase,
    reason: Option<&str>,
    message: Option<&str>,
    error: Option<&str>,
) -> InstantDbRestoreStatus {
    let mut s = InstantDbRestoreStatus {
        observed_generation: Some(1),
        phase: Some(phase),
        restored_backup: Some("b1".into()),
        message: message.map(Into::into),
        error: error.map(Into::into),
        ..Default::default()
    };
    let text = error.or(message).unwrap_or_default();
    operation::set_conditions(&mut s.conditions, s.phase, reason, text, Some(1), now());
    s
}

#[test]
fn restore_phases_map_to_argo_health() {
    assert_eq!(health("InstantDbRestore", &restore(None)).0, "Progressing");
    let pending = restore_status(
        OperationPhase::Pending,
        None,
        Some("InstantDbBackup b1 is not completed yet"),
        None,
    );
    let (h, m) = health("InstantDbRestore", &restore(Some(pending)));
    assert_eq!(h, "Progressing");
    assert!(m.contains("not completed yet"), "{m}");
    let running = restore_status(OperationPhase::Running, None, Some("verifying"), None);
    let (h, m) = health("InstantDbRestore", &restore(Some(running)));
    assert_eq!(
        (h.as_str(), m.as_str()),
        ("Progressing", "Running: verifying")
    );
    let done = restore_status(OperationPhase::Completed, None, None, None);
    let (h, m) = health("InstantDbRestore", &restore(Some(done)));
    assert_eq!(
        (h.as_str(), m.as_str()),
        ("Healthy", "restore completed from b1")
    );
    let rolled_back = restore_status(
        OperationPhase::Failed,
        Some("RolledBack"),
        None,
        Some(
            "the restored data failed its integrity check and the instance kept its previous data",
        ),
    );
    let (h, m) = health("InstantDbRestore", &restore(Some(rolled_back)));
    assert_eq!(h, "Degraded");
    assert!(m.contains("(RolledBack)"), "{m}");
    assert!(m.contains("kept its previous data"), "{m}");
}

// ---------------------------------------------------------------- InstantDbBackupPolicy

fn policy(suspend: bool, generation: i64) -> InstantDbBackupPolicy {
    InstantDbBackupPolicy {
        metadata: meta("daily", generation),
        spec: InstantDbBackupPolicySpec {
            instance: Some("docs".into()),
            schedule: "0 3 * * *".into(),
            destination: BackupDestination {
                s3: Some(S3Destination {
                    bucket: Some("backups".into()),
                    credentials_secret: Some("s3-creds".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            suspend: Some(suspend),
            ..Default::default()
        },
        status: None,
    }
}

/// The policy with the status its planner computes from `instances` and `backups`.
fn planned(
    mut p: InstantDbBackupPolicy,
    instances: &[InstantDb],
    backups: &[InstantDbBackup],
) -> InstantDbBackupPolicy {
    let plan = policy_plan::plan(&p, instances, backups, now()).unwrap();
    p.status = Some(plan.status);
    p
}

fn policy_health(p: &InstantDbBackupPolicy) -> (String, String) {
    health("InstantDbBackupPolicy", p)
}

#[test]
fn policy_states_map_to_argo_health() {
    let db = instance(None);
    assert_eq!(policy_health(&policy(false, 1)).0, "Progressing");

    let (h, m) = policy_health(&planned(policy(false, 1), std::slice::from_ref(&db), &[]));
    assert_eq!(h, "Healthy", "{m}");
    assert!(m.starts_with("Scheduled"), "{m}");

    let (h, m) = policy_health(&planned(
        policy(false, 1),
        std::slice::from_ref(&db),
        &[completed_backup("daily-docs-202612010300")],
    ));
    assert_eq!(h, "Healthy", "{m}");

    let (h, m) = policy_health(&planned(
        policy(false, 1),
        std::slice::from_ref(&db),
        &[failed_backup("daily-docs-202612010300", "access denied")],
    ));
    assert_eq!(h, "Degraded");
    assert!(m.contains("access denied"), "{m}");

    let (h, m) = policy_health(&planned(policy(false, 1), &[], &[]));
    assert_eq!(h, "Degraded");
    assert!(m.contains("InstantDb docs not found"), "{m}");

    let (h, m) = policy_health(&planned(policy(true, 1), std::slice::from_ref(&db), &[]));
    assert_eq!(h, "Suspended");
    assert!(m.contains("spec.suspend"), "{m}");

    // Status written for generation 1; the spec is at 2 now.
    let mut behind = planned(policy(false, 1), std::slice::from_ref(&db), &[]);
    behind.metadata.generation = Some(2);
    assert_eq!(policy_health(&behind).0, "Progressing");

    // What the policy controller writes for a spec its planner refuses.
    let mut invalid = policy(false, 1);
    let mut s = invalid.status.clone().unwrap_or_default();
    s.observed_generation = Some(1);
    set_condition(
        &mut s.conditions,
        NewCondition {
            type_: conditions::READY,
            status: Status::False,
            reason: "InvalidSpec",
            message: "retention.maxAge \"99999999999h\" is too large".into(),
            observed_generation: Some(1),
        },
        now(),
    );
    invalid.status = Some(s);
    let (h, m) = policy_health(&invalid);
    assert_eq!(h, "Degraded");
    assert!(m.starts_with("InvalidSpec"), "{m}");
}

// ---------------------------------------------------------------- docs

const SNIPPET_START: &str = "<!-- argocd-cm: begin (tests/tests/argocd_health.rs writes it from charts/instant-db-operator/argocd/*.lua with UPDATE_DOCS=1) -->";
const SNIPPET_END: &str = "<!-- argocd-cm: end -->";

/// The `argocd-cm` ConfigMap holding every health check, as docs/operator.md shows it.
fn snippet() -> String {
    let mut out = String::from(
        "```yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\n  labels: {app.kubernetes.io/part-of: argocd}\ndata:\n",
    );
    for (key, lua) in checks() {
        out.push_str(&format!("  resource.customizations.health.{key}: |\n"));
        for line in lua.lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out.push_str("```\n");
    out
}

#[test]
fn there_is_a_health_check_for_every_kind() {
    let keys: Vec<String> = checks().into_keys().collect();
    let kinds: Vec<String> = instant_db_crds::all_crds()
        .into_iter()
        .map(|(_, crd)| format!("{GROUP}_{}", crd.spec.names.kind))
        .collect();
    let mut kinds_sorted = kinds.clone();
    kinds_sorted.sort();
    assert_eq!(keys, kinds_sorted);
}

#[test]
fn the_argocd_cm_snippet_in_the_docs_is_the_health_check_files() {
    let path = root().join("docs/operator.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc
        .find(SNIPPET_START)
        .expect("snippet start marker in docs/operator.md")
        + SNIPPET_START.len()
        + 1;
    let end = doc
        .find(SNIPPET_END)
        .expect("snippet end marker in docs/operator.md");
    let want = snippet();
    if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
        let updated = format!("{}{want}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    let got = &doc[start..end];
    assert_eq!(
        got, want,
        "docs/operator.md's argocd-cm snippet differs from charts/instant-db-operator/argocd/*.lua; rerun this test with UPDATE_DOCS=1"
    );
    // And the block is YAML whose values are the files, byte for byte.
    let yaml = want
        .trim_start_matches("```yaml\n")
        .trim_end_matches("```\n");
    let cm: serde_json::Value = serde_norway::from_str(yaml).unwrap();
    for (key, lua) in checks() {
        let value = cm["data"][format!("resource.customizations.health.{key}")]
            .as_str()
            .unwrap();
        assert_eq!(value, lua, "{key}");
    }
}
