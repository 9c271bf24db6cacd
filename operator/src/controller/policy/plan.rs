//! The pure part of the backup-policy controller: when the schedule is due, which
//! InstantDbBackup objects to create, which to delete under the retention, and the status.

use std::collections::BTreeMap;
use std::time::Duration;

use instant_db_crds::InstantDb;
use instant_db_crds::backup::{
    BackupOwnerReference, InstantDbBackup, InstantDbBackupPolicy, InstantDbBackupPolicyStatus,
    InstantDbBackupSpec, OperationPhase,
};
use instant_db_crds::conditions::{self, NewCondition, Status, find_condition, set_condition};
use instant_db_crds::schedule::{latest_run_at_or_before, next_run_after};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};

use crate::builders::parse_duration_secs;

/// Label on every backup a policy created: the policy's name.
pub const POLICY_LABEL: &str = "instantdb.io/policy";
/// Label on every backup a policy created: the instance it backs up.
pub const INSTANCE_LABEL: &str = "instantdb.io/instance";
/// Completed backups kept per instance when `retention.keepLast` is not set.
pub const DEFAULT_KEEP_LAST: usize = 7;
/// Condition type that says whether the schedule runs (`Ready`).
pub const READY: &str = conditions::READY;
/// Condition type that says whether the policy's newest finished backup completed.
pub const BACKUP_HEALTHY: &str = conditions::BACKUP_HEALTHY;
/// The condition `Ready` replaced (removed from the status when found).
const LEGACY_SCHEDULED: &str = "Scheduled";
/// Longest wait before a policy is looked at again (a yearly schedule still gets its status
/// refreshed and a clock jump noticed).
pub const MAX_REQUEUE: Duration = Duration::from_secs(3600);
/// What one reconcile of a policy should do.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyPlan {
    /// Backups to create (one per covered instance when a run is due).
    pub create: Vec<InstantDbBackup>,
    /// Names of backups the retention removes.
    pub delete: Vec<String>,
    /// The status to write.
    pub status: InstantDbBackupPolicyStatus,
    /// When to look again.
    pub requeue_after: Duration,
}

/// The latest run of `schedule` in `(after, now]`, if any: after downtime only that one is
/// taken, however many were missed.
fn latest_due(
    schedule: &str,
    after: Timestamp,
    now: Timestamp,
) -> Result<Option<Timestamp>, String> {
    let latest = latest_run_at_or_before(schedule, now).map_err(|e| e.to_string())?;
    Ok(latest.filter(|t| *t > after))
}

/// Name of the backup a run at `at` makes of `instance`: `<policy>-<instance>-<YYYYMMDDHHMM>`,
/// cut to fit the 253 characters of an object name.
pub fn backup_name(policy: &str, instance: &str, at: Timestamp) -> String {
    let stamp = at.strftime("%Y%m%d%H%M").to_string();
    let head: String = format!("{policy}-{instance}")
        .chars()
        .take(253 - 13)
        .collect();
    format!("{}-{stamp}", head.trim_end_matches(['-', '.']))
}

/// The owner reference of a backup the policy makes of `db` (`spec.backupOwnerReference`).
fn owner_reference(policy: &InstantDbBackupPolicy, db: &InstantDb) -> Option<OwnerReference> {
    match policy.spec.backup_owner_reference.unwrap_or_default() {
        BackupOwnerReference::Policy => policy.controller_owner_ref(&()),
        // Not the controller: the backup controller, not the InstantDb's, acts on it.
        BackupOwnerReference::Instance => db.owner_ref(&()),
        BackupOwnerReference::None => None,
    }
}

fn new_backup(policy: &InstantDbBackupPolicy, db: &InstantDb, at: Timestamp) -> InstantDbBackup {
    let instance = db.name_any();
    let instance = instance.as_str();
    let labels = BTreeMap::from([
        (POLICY_LABEL.to_string(), policy.name_any()),
        (INSTANCE_LABEL.to_string(), instance.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "instant-db-operator".to_string(),
        ),
    ]);
    InstantDbBackup {
        metadata: ObjectMeta {
            name: Some(backup_name(&policy.name_any(), instance, at)),
            namespace: policy.namespace(),
            labels: Some(labels),
            owner_references: owner_reference(policy, db).map(|o| vec![o]),
            // Retention deletes the archive with the object.
            finalizers: Some(vec![
                crate::controller::backup::ARCHIVE_FINALIZER.to_string(),
            ]),
            ..Default::default()
        },
        spec: InstantDbBackupSpec {
            instance: instance.to_string(),
            destination: None,
            policy: Some(policy.name_any()),
            // Retain: only retention (which marks the backup first) deletes the archive.
            deletion_policy: None,
        },
        status: None,
    }
}

fn phase(b: &InstantDbBackup) -> Option<OperationPhase> {
    b.status.as_ref().and_then(|s| s.phase)
}

fn finished_at(b: &InstantDbBackup) -> Option<Timestamp> {
    b.status
        .as_ref()
        .and_then(|s| s.completed_at.as_ref())
        .map(|t| t.0)
        .or_else(|| b.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// Backups of one instance the retention removes: completed ones beyond `keep_last` or older
/// than `max_age` (the newest completed one always stays, whatever its age, and so does the
/// newest that passed verification: newer ones that failed it must not leave the instance
/// without a backup known to restore), and failed ones beyond `keep_last`. Pending and running
/// backups are never removed.
pub fn expired(
    backups: &[&InstantDbBackup],
    keep_last: usize,
    max_age: Option<Duration>,
    now: Timestamp,
) -> Vec<String> {
    let newest_verified = backups
        .iter()
        .filter(|b| phase(b) == Some(OperationPhase::Completed))
        .filter(|b| {
            b.status
                .as_ref()
                .and_then(|s| s.verified.as_ref())
                .is_some_and(|v| v.result == instant_db_crds::backup::VerificationResult::Passed)
        })
        .max_by_key(|b| finished_at(b))
        .map(|b| b.name_any());
    let mut out = vec![];
    for wanted in [OperationPhase::Completed, OperationPhase::Failed] {
        let mut of_phase: Vec<&&InstantDbBackup> = backups
            .iter()
            .filter(|b| phase(b) == Some(wanted))
            .collect();
        // newest first
        of_phase.sort_by_key(|b| std::cmp::Reverse(finished_at(b)));
        for (i, b) in of_phase.iter().enumerate() {
            let too_many = i >= keep_last.max(1);
            let too_old = wanted == OperationPhase::Completed
                && i > 0
                && max_age.is_some_and(|age| {
                    finished_at(b).is_some_and(|t| {
                        now.duration_since(t).as_secs()
                            > i64::try_from(age.as_secs()).unwrap_or(i64::MAX)
                    })
                });
            if (too_many || too_old) && Some(b.name_any()) != newest_verified {
                out.push(b.name_any());
            }
        }
    }
    out
}

/// A covered, running instance without a backup completed since the schedule's run before
/// the latest one (by now that run's backup should have finished), in words: the schedule runs
/// but its backups stopped completing. None for a policy younger than that run.
fn stalled(
    policy: &InstantDbBackupPolicy,
    active: &[&InstantDb],
    backups: &[InstantDbBackup],
    now: Timestamp,
) -> Option<String> {
    let schedule = &policy.spec.schedule;
    let latest = latest_run_at_or_before(schedule, now).ok()??;
    let before = latest
        .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(1))
        .ok()?;
    let prev = latest_run_at_or_before(schedule, before).ok()??;
    let created = policy.metadata.creation_timestamp.as_ref()?.0;
    if created > prev {
        return None;
    }
    active.iter().find_map(|db| {
        let name = db.name_any();
        let newest = backups
            .iter()
            .filter(|b| b.spec.instance == name && phase(b) == Some(OperationPhase::Completed))
            .filter_map(|b| b.status.as_ref()?.completed_at.as_ref().map(|t| t.0))
            .max();
        (newest.is_none_or(|t| t < prev)).then(|| {
            format!(
                "no backup of {name} completed since the scheduled run at {prev}{}; see `kubectl get idbb -l instantdb.io/policy={}`",
                newest.map(|t| format!(" (the last one finished at {t})")).unwrap_or_default(),
                policy.name_any()
            )
        })
    })
}

/// Plans one reconcile of `policy` at `now`, given the instances it covers and the backups it
/// made before (those labelled with its name). Errors are spec problems for the user.
pub fn plan(
    policy: &InstantDbBackupPolicy,
    instances: &[InstantDb],
    backups: &[InstantDbBackup],
    now: Timestamp,
) -> Result<PolicyPlan, String> {
    let spec = &policy.spec;
    let current = policy.status.clone().unwrap_or_default();
    let generation = policy.metadata.generation;
    let retention = spec.retention.clone().unwrap_or_default();
    let keep_last = retention
        .keep_last
        .and_then(|k| usize::try_from(k).ok())
        .unwrap_or(DEFAULT_KEEP_LAST);
    let max_age = match retention.max_age.as_deref() {
        None => None,
        Some(a) => Some(Duration::from_secs(parse_duration_secs(a).ok_or_else(
            || format!("retention.maxAge {a:?} is not a duration such as 720h or 30m"),
        )?)),
    };
    let since = current
        .last_schedule_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| policy.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    let suspended = spec.suspend.unwrap_or(false);
    // `immediate`: a policy that never ran takes its first backup now.
    let first_now = spec.immediate.unwrap_or(false) && current.last_schedule_time.is_none();
    let due = if first_now {
        Some(now)
    } else {
        latest_due(&spec.schedule, since, now)?
    };
    let active: Vec<&InstantDb> = instances
        .iter()
        .filter(|db| !db.spec.suspend.unwrap_or(false))
        .collect();
    let existing: Vec<String> = backups.iter().map(ResourceExt::name_any).collect();
    let mut create = vec![];
    let mut status = current.clone();
    status.observed_generation = generation;
    // Conditions before this operator version: `Scheduled` held what `Ready` holds now.
    let was_suspended = [READY, LEGACY_SCHEDULED]
        .iter()
        .any(|t| find_condition(&current.conditions, t).is_some_and(|c| c.reason == "Suspended"));
    status.conditions.retain(|c| c.type_ != LEGACY_SCHEDULED);
    match due {
        // Suspended: nothing moves, so a suspended policy makes no status write per tick.
        _ if suspended => {}
        // Just resumed: the runs missed while suspended are skipped, not taken now.
        Some(at) if was_suspended => status.last_schedule_time = Some(Time(at)),
        Some(at) => {
            for db in &active {
                let b = new_backup(policy, db, at);
                if !existing.contains(&b.name_any()) {
                    create.push(b);
                }
            }
            status.last_schedule_time = Some(Time(at));
        }
        None => {}
    }
    let next = next_run_after(&spec.schedule, now).map_err(|e| e.to_string())?;
    status.next_schedule_time = (!suspended).then_some(Time(next));

    let mut delete = vec![];
    let mut by_instance: BTreeMap<String, Vec<&InstantDbBackup>> = BTreeMap::new();
    for b in backups {
        by_instance
            .entry(b.spec.instance.clone())
            .or_default()
            .push(b);
    }
    for list in by_instance.values() {
        delete.extend(expired(list, keep_last, max_age, now));
    }
    status.last_successful_backup = backups
        .iter()
        .filter(|b| phase(b) == Some(OperationPhase::Completed) && !delete.contains(&b.name_any()))
        .max_by_key(|b| finished_at(b))
        .map(ResourceExt::name_any)
        .or(current.last_successful_backup);

    let (cond_status, reason, message) = if suspended {
        (
            Status::False,
            "Suspended",
            "spec.suspend is true; no backups are taken".to_string(),
        )
    } else if instances.is_empty() {
        (
            Status::False,
            "NoInstances",
            match &spec.instance {
                Some(name) => format!("InstantDb {name} not found"),
                None => "no InstantDb matches spec.selector".to_string(),
            },
        )
    } else {
        (
            Status::True,
            "Scheduled",
            format!(
                "{} instance(s) ({} suspended), next run {next}",
                instances.len(),
                instances.len() - active.len()
            ),
        )
    };
    set_condition(
        &mut status.conditions,
        NewCondition {
            type_: READY,
            status: cond_status,
            reason,
            message,
            observed_generation: generation,
        },
        now,
    );
    let (mut health, mut reason, mut message) =
        crate::controller::backup::plan::backup_health(backups);
    if health == Status::True
        && !suspended
        && let Some(gap) = stalled(policy, &active, backups, now)
    {
        (health, reason, message) = (Status::False, "NoRecentBackup", gap);
    }
    set_condition(
        &mut status.conditions,
        NewCondition {
            type_: BACKUP_HEALTHY,
            status: health,
            reason,
            message,
            observed_generation: generation,
        },
        now,
    );
    let wait = u64::try_from(next.duration_since(now).as_secs()).unwrap_or(0);
    let requeue_after = Duration::from_secs(wait.max(1)).min(MAX_REQUEUE);
    Ok(PolicyPlan {
        create,
        delete,
        status,
        requeue_after,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use instant_db_crds::backup::{
        BackupDestination, InstantDbBackupPolicySpec, InstantDbBackupStatus, Retention,
    };
    use instant_db_crds::conditions::find_condition;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn policy(schedule: &str, created: &str) -> InstantDbBackupPolicy {
        let mut p = InstantDbBackupPolicy::new(
            "daily",
            InstantDbBackupPolicySpec {
                instance: Some("docs".into()),
                selector: None,
                schedule: schedule.into(),
                retention: None,
                destination: BackupDestination::default(),
                suspend: None,
                immediate: None,
                backup_owner_reference: None,
                continuous_archiving: None,
            },
        );
        p.metadata.namespace = Some("search".into());
        p.metadata.uid = Some("uid-policy".into());
        p.metadata.generation = Some(1);
        p.metadata.creation_timestamp = Some(Time(ts(created)));
        p
    }

    fn instance(name: &str, suspended: bool) -> InstantDb {
        let mut db: InstantDb = serde_json::from_value(serde_json::json!({
            "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
            "metadata": {"name": name, "namespace": "search"},
            "spec": {"storage": {"size": "1Gi"}}
        }))
        .unwrap();
        db.spec.suspend = Some(suspended);
        db
    }

    fn backup(name: &str, phase: OperationPhase, completed: &str) -> InstantDbBackup {
        let mut b = InstantDbBackup::new(
            name,
            InstantDbBackupSpec {
                instance: "docs".into(),
                destination: None,
                policy: Some("daily".into()),
                deletion_policy: None,
            },
        );
        b.status = Some(InstantDbBackupStatus {
            phase: Some(phase),
            completed_at: Some(Time(ts(completed))),
            ..Default::default()
        });
        b
    }

    #[test]
    fn a_due_run_creates_one_owned_labelled_backup_per_running_instance() {
        let p = policy("0 3 * * *", "2026-12-01T00:00:00Z");
        let now = ts("2026-12-01T03:00:30Z");
        let dbs = [instance("docs", false), instance("paused", true)];
        let plan = plan(&p, &dbs, &[], now).unwrap();
        assert_eq!(plan.create.len(), 1, "the suspended instance is skipped");
        let b = &plan.create[0];
        assert_eq!(b.name_any(), "daily-docs-202612010300");
        assert_eq!(b.spec.instance, "docs");
        assert_eq!(b.spec.policy.as_deref(), Some("daily"));
        assert_eq!(b.labels()[POLICY_LABEL], "daily");
        assert_eq!(b.labels()[INSTANCE_LABEL], "docs");
        let owner = &b.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("InstantDbBackupPolicy", Some(true))
        );
        assert_eq!(
            plan.status.last_schedule_time,
            Some(Time(ts("2026-12-01T03:00:00Z")))
        );
        assert_eq!(
            plan.status.next_schedule_time,
            Some(Time(ts("2026-12-02T03:00:00Z")))
        );
        let c = find_condition(&plan.status.conditions, READY).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "Scheduled")
        );
        assert!(c.message.contains("1 suspended"), "{}", c.message);
        // the run is recorded: the next reconcile before 03:00 tomorrow creates nothing
        let mut p2 = p.clone();
        p2.status = Some(plan.status.clone());
        let again = super::plan(&p2, &dbs, &plan.create, ts("2026-12-01T12:00:00Z")).unwrap();
        assert!(again.create.is_empty());
        assert_eq!(again.requeue_after, MAX_REQUEUE);
    }

    #[test]
    fn before_the_first_run_nothing_is_created_and_the_wait_is_until_it() {
        let p = policy("@hourly", "2026-12-01T00:10:00Z");
        let plan = plan(
            &p,
            &[instance("docs", false)],
            &[],
            ts("2026-12-01T00:40:00Z"),
        )
        .unwrap();
        assert!(plan.create.is_empty());
        assert_eq!(plan.status.last_schedule_time, None);
        assert_eq!(plan.requeue_after, Duration::from_secs(20 * 60));
    }

    #[test]
    fn after_downtime_only_the_latest_missed_run_is_taken() {
        let p = policy("@hourly", "2026-12-01T00:00:00Z");
        let plan = plan(
            &p,
            &[instance("docs", false)],
            &[],
            ts("2026-12-01T05:30:00Z"),
        )
        .unwrap();
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0].name_any(), "daily-docs-202612010500");
    }

    #[test]
    fn after_a_long_downtime_the_run_taken_is_the_latest_not_an_old_one() {
        // more than 10,000 minutely runs missed
        let p = policy("* * * * *", "2025-12-01T00:00:00Z");
        let plan = plan(
            &p,
            &[instance("docs", false)],
            &[],
            ts("2026-12-01T05:30:20Z"),
        )
        .unwrap();
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0].name_any(), "daily-docs-202612010530");
        assert_eq!(
            plan.status.last_schedule_time,
            Some(Time(ts("2026-12-01T05:30:00Z")))
        );
    }

    #[test]
    fn a_suspended_policy_skips_its_runs_and_says_so() {
        let mut p = policy("@hourly", "2026-12-01T00:00:00Z");
        p.spec.suspend = Some(true);
        let plan = plan(
            &p,
            &[instance("docs", false)],
            &[],
            ts("2026-12-01T05:30:00Z"),
        )
        .unwrap();
        assert!(plan.create.is_empty());
        // nothing moves while suspended (no status write per tick)
        assert_eq!(plan.status.last_schedule_time, None);
        assert_eq!(plan.status.next_schedule_time, None);
        let c = find_condition(&plan.status.conditions, READY).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "Suspended")
        );
    }

    #[test]
    fn a_suspended_policy_keeps_its_status_over_its_ticks_and_skips_them_on_resume() {
        let mut p = policy("* * * * *", "2026-12-01T00:00:00Z");
        p.spec.suspend = Some(true);
        let dbs = [instance("docs", false)];
        let first = plan(&p, &dbs, &[], ts("2026-12-01T05:30:10Z")).unwrap();
        p.status = Some(first.status.clone());
        for now in [
            "2026-12-01T05:31:10Z",
            "2026-12-01T05:45:00Z",
            "2026-12-02T00:00:00Z",
        ] {
            let again = plan(&p, &dbs, &[], ts(now)).unwrap();
            assert_eq!(again.status, first.status, "no status change at {now}");
            assert!(again.create.is_empty());
        }
        // resumed: the runs missed while suspended are not taken, the next one is
        p.spec.suspend = None;
        let resumed = plan(&p, &dbs, &[], ts("2026-12-02T00:00:30Z")).unwrap();
        assert!(resumed.create.is_empty(), "{:?}", resumed.create);
        assert_eq!(
            resumed.status.last_schedule_time,
            Some(Time(ts("2026-12-02T00:00:00Z")))
        );
        p.status = Some(resumed.status);
        let next = plan(&p, &dbs, &[], ts("2026-12-02T00:01:05Z")).unwrap();
        assert_eq!(next.create.len(), 1);
    }

    #[test]
    fn backup_healthy_follows_the_policys_newest_finished_backup() {
        let p = policy("@daily", "2026-11-01T00:00:00Z");
        let now = ts("2026-12-01T12:00:00Z");
        let dbs = [instance("docs", false)];
        let health = |backups: &[InstantDbBackup]| {
            let plan = plan(&p, &dbs, backups, now).unwrap();
            let c = find_condition(&plan.status.conditions, BACKUP_HEALTHY)
                .unwrap()
                .clone();
            (c.status, c.reason)
        };
        assert_eq!(health(&[]), ("Unknown".into(), "NoBackups".into()));
        let ok = backup("d1", OperationPhase::Completed, "2026-11-30T00:00:00Z");
        let bad = backup("d2", OperationPhase::Failed, "2026-12-01T00:00:00Z");
        assert_eq!(
            health(std::slice::from_ref(&ok)),
            ("True".into(), "LastBackupCompleted".into())
        );
        assert_eq!(
            health(&[ok, bad]),
            ("False".into(), "LastBackupFailed".into())
        );
    }

    #[test]
    fn an_immediate_policy_takes_its_first_backup_at_once_and_then_follows_the_schedule() {
        let mut p = policy("0 3 * * *", "2026-12-01T10:00:00Z");
        p.spec.immediate = Some(true);
        let dbs = [instance("docs", false)];
        let first = plan(&p, &dbs, &[], ts("2026-12-01T10:00:05Z")).unwrap();
        assert_eq!(first.create.len(), 1);
        assert_eq!(first.create[0].name_any(), "daily-docs-202612011000");
        p.status = Some(first.status);
        let later = plan(&p, &dbs, &first.create, ts("2026-12-01T12:00:00Z")).unwrap();
        assert!(later.create.is_empty(), "next run is tomorrow at 03:00");
        // without immediate, nothing before the first run
        p.spec.immediate = None;
        p.status = None;
        assert!(
            plan(&p, &dbs, &[], ts("2026-12-01T10:00:05Z"))
                .unwrap()
                .create
                .is_empty()
        );
    }

    #[test]
    fn the_owner_of_policy_made_backups_is_chosen_by_backup_owner_reference() {
        let mut p = policy("@hourly", "2026-12-01T00:00:00Z");
        let mut db = instance("docs", false);
        db.metadata.uid = Some("uid-docs".into());
        let owner = |p: &InstantDbBackupPolicy| {
            let plan = plan(
                p,
                std::slice::from_ref(&db),
                &[],
                ts("2026-12-01T01:00:10Z"),
            )
            .unwrap();
            plan.create[0]
                .metadata
                .owner_references
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|o| (o.kind, o.controller))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            owner(&p),
            [("InstantDbBackupPolicy".to_string(), Some(true))]
        );
        p.spec.backup_owner_reference = Some(BackupOwnerReference::Instance);
        assert_eq!(owner(&p), [("InstantDb".to_string(), None)]);
        p.spec.backup_owner_reference = Some(BackupOwnerReference::None);
        assert!(owner(&p).is_empty());
    }

    #[test]
    fn backup_healthy_turns_false_when_the_schedule_stopped_producing_backups() {
        let p = policy("@hourly", "2026-11-01T00:00:00Z");
        let dbs = [instance("docs", false)];
        let health = |backups: &[InstantDbBackup], now: &str| {
            let plan = plan(&p, &dbs, backups, ts(now)).unwrap();
            let c = find_condition(&plan.status.conditions, BACKUP_HEALTHY)
                .unwrap()
                .clone();
            (c.status, c.reason, c.message)
        };
        let at_three = [backup(
            "d3",
            OperationPhase::Completed,
            "2026-12-01T03:05:00Z",
        )];
        // at 04:30 the 03:00 run's backup is the one expected: healthy
        assert_eq!(
            health(&at_three, "2026-12-01T04:30:00Z").1,
            "LastBackupCompleted"
        );
        // at 05:30 the 04:00 run's backup should have completed: none did
        let (status, reason, message) = health(&at_three, "2026-12-01T05:30:00Z");
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "NoRecentBackup")
        );
        assert!(
            message.contains("since the scheduled run at 2026-12-01T04:00:00Z"),
            "{message}"
        );
        // a policy younger than its previous run is not judged yet
        let young = policy("@hourly", "2026-12-01T04:50:00Z");
        let plan = plan(&young, &dbs, &[], ts("2026-12-01T05:30:00Z")).unwrap();
        let c = find_condition(&plan.status.conditions, BACKUP_HEALTHY).unwrap();
        assert_eq!(c.reason, "NoBackups");
    }

    #[test]
    fn a_missing_instance_is_reported_in_the_condition() {
        let p = policy("@hourly", "2026-12-01T00:00:00Z");
        let plan = plan(&p, &[], &[], ts("2026-12-01T01:00:00Z")).unwrap();
        assert!(plan.create.is_empty());
        let c = find_condition(&plan.status.conditions, READY).unwrap();
        assert_eq!(c.reason, "NoInstances");
        assert_eq!(c.message, "InstantDb docs not found");
    }

    #[test]
    fn retention_keeps_the_newest_completed_and_never_touches_unfinished_backups() {
        let mut p = policy("@daily", "2026-11-01T00:00:00Z");
        p.spec.retention = Some(Retention {
            keep_last: Some(2),
            max_age: Some("72h".into()),
        });
        let backups = [
            backup("d1", OperationPhase::Completed, "2026-11-20T00:00:00Z"),
            backup("d2", OperationPhase::Completed, "2026-11-28T00:00:00Z"),
            backup("d3", OperationPhase::Completed, "2026-11-30T00:00:00Z"),
            backup("d4", OperationPhase::Completed, "2026-11-25T00:00:00Z"),
            backup("f1", OperationPhase::Failed, "2026-11-29T00:00:00Z"),
            backup("f2", OperationPhase::Failed, "2026-11-30T00:00:00Z"),
            backup("f3", OperationPhase::Failed, "2026-11-10T00:00:00Z"),
            backup("r1", OperationPhase::Running, "2026-10-01T00:00:00Z"),
        ];
        let now = ts("2026-12-01T12:00:00Z");
        let plan = plan(&p, &[instance("docs", false)], &backups, now).unwrap();
        let mut deleted = plan.delete.clone();
        deleted.sort();
        // d3 newest; d2 second but older than 72h; d4, d1 beyond keepLast; f3 beyond keepLast
        assert_eq!(deleted, ["d1", "d2", "d4", "f3"]);
        assert_eq!(plan.status.last_successful_backup.as_deref(), Some("d3"));
        // with no age limit the newest two completed stay
        p.spec.retention = Some(Retention {
            keep_last: Some(2),
            max_age: None,
        });
        let plan = super::plan(&p, &[instance("docs", false)], &backups, now).unwrap();
        let mut deleted = plan.delete.clone();
        deleted.sort();
        assert_eq!(deleted, ["d1", "d4", "f3"]);
        // the newest completed backup stays even when it is older than maxAge
        p.spec.retention = Some(Retention {
            keep_last: None,
            max_age: Some("1h".into()),
        });
        let plan = super::plan(&p, &[instance("docs", false)], &backups, now).unwrap();
        assert!(!plan.delete.contains(&"d3".to_string()));
        assert!(plan.delete.contains(&"d2".to_string()));
    }

    #[test]
    fn retention_keeps_the_newest_verified_backup_when_newer_ones_failed_verification() {
        use instant_db_crds::backup::{BackupVerification, VerificationResult};
        let mut p = policy("@daily", "2026-11-01T00:00:00Z");
        p.spec.retention = Some(Retention {
            keep_last: Some(2),
            max_age: None,
        });
        let verified = |name: &str, at: &str, result: VerificationResult| {
            let mut b = backup(name, OperationPhase::Completed, at);
            b.status.as_mut().unwrap().verified = Some(BackupVerification {
                result,
                time: None,
                message: None,
            });
            b
        };
        let backups = [
            verified("d1", "2026-11-27T00:00:00Z", VerificationResult::Passed),
            verified("d2", "2026-11-28T00:00:00Z", VerificationResult::Passed),
            verified("d3", "2026-11-29T00:00:00Z", VerificationResult::Failed),
            verified("d4", "2026-11-30T00:00:00Z", VerificationResult::Failed),
        ];
        let now = ts("2026-12-01T12:00:00Z");
        let plan = plan(&p, &[instance("docs", false)], &backups, now).unwrap();
        // d2 is beyond keepLast 2 but the newest that passed verification: it stays
        assert_eq!(plan.delete, ["d1"]);
    }

    #[test]
    fn backup_names_fit_and_are_fixed_per_run() {
        let at = ts("2026-12-01T03:00:00Z");
        assert_eq!(backup_name("p", "db", at), "p-db-202612010300");
        let long = backup_name(&"p".repeat(200), &"i".repeat(200), at);
        assert!(long.len() <= 253, "{}", long.len());
        assert!(long.ends_with("-202612010300"));
    }

    #[test]
    fn a_bad_max_age_is_an_error_naming_the_field() {
        let mut p = policy("@daily", "2026-11-01T00:00:00Z");
        p.spec.retention = Some(Retention {
            keep_last: None,
            max_age: Some("a week".into()),
        });
        let e = plan(&p, &[], &[], ts("2026-12-01T00:00:00Z")).unwrap_err();
        assert!(e.contains("retention.maxAge"), "{e}");
    }
}
