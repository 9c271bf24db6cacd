//! The InstantDb controller: observe → validate → desired state → server-side apply → status.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use instant_db_crds::backup::{InstantDbBackup, InstantDbRestore};
use instant_db_crds::conditions::{self as conds, is_true};
use instant_db_crds::{InstantDb, InstantDbStatus};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Context;
use crate::builders::{
    self, ADMIN_TOKEN_KEY, BuildInput, FIELD_MANAGER, applied_hash, hash_object, names, set_hash,
};
use crate::error::{Error, Result};
use status::Observed;

mod archive_io;
pub mod archiving;
mod backups;
pub mod bootstrap;
pub mod cache;
pub mod compact;
pub mod diagnose;
pub mod drift;
pub mod image;
pub(crate) mod recovery;
mod run;
pub mod status;
mod volume;

pub use run::{primary_predicate, run};
use volume::expand_volume;
pub use volume::{VolumeChange, volume_change};

pub(super) const CONTROLLER: &str = "instantdb";
/// Requeue delay of an object blocked by a conflict or a rejected apply.
pub const BLOCKED_RESYNC: Duration = Duration::from_secs(300);

/// Reconciles one InstantDb, recording metrics.
pub async fn reconcile(db: Arc<InstantDb>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    let res = reconcile_inner(&db, &ctx).await;
    ctx.record_reconcile(CONTROLLER, &object_key(&db), start, &res);
    res
}

fn object_key(db: &InstantDb) -> String {
    super::backoff_key(db)
}

fn kind_of<K: Serialize>(obj: &K) -> String {
    serde_json::to_value(obj)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
        .unwrap_or_else(|| "Object".into())
}

fn owned_by<K: Resource>(obj: &K, uid: &str) -> bool {
    obj.meta()
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.uid == uid))
}

/// What [`apply_if_changed`] did.
#[derive(Debug, Default)]
struct Changes {
    /// `Kind name` of every object written.
    applied: Vec<String>,
    /// `Kind name: fields` of every object put back after another writer changed it.
    drift: Vec<String>,
}

impl Changes {
    fn push(&mut self, note: String) {
        self.applied.push(note);
    }
}

/// Applies `obj` unless `observed` already carries the same applied-hash and none of the
/// fields the operator sets drifted (see `drift`); records what it wrote in `changes`.
/// `observed` comes from the watch cache; when the cache has no such object, the API is asked
/// (a fresh read before a create: the cache holds only objects with the operator's labels, and
/// a foreign object of that name must not be taken over).
async fn apply_if_changed<K>(
    api: &Api<K>,
    mut obj: K,
    observed: Option<&K>,
    uid: &str,
    ctx: &Context,
    changes: &mut Changes,
) -> Result<()>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let kind = kind_of(&obj);
    let name = obj.meta().name.clone().unwrap_or_default();
    let fetched;
    let observed = match observed {
        Some(o) => Some(o),
        None => {
            fetched = api.get_opt(&name).await?;
            fetched.as_ref()
        }
    };
    if let Some(o) = observed
        && !owned_by(o, uid)
    {
        return Err(Error::NameConflict { kind, name });
    }
    let hash = hash_object(&obj)?;
    let same_hash = observed.and_then(|o| applied_hash(o)) == Some(hash.as_str());
    set_hash(obj.meta_mut(), hash);
    let mut drifted = Vec::new();
    if let Some(live) = observed.filter(|_| same_hash) {
        drifted = drift::drifted_fields(&serde_json::to_value(&obj)?, &serde_json::to_value(live)?);
        if drifted.is_empty() {
            return Ok(());
        }
    }
    match api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&obj),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 422 => {
            return Err(Error::ApplyRejected {
                kind,
                name,
                message: s.message,
            });
        }
        Err(source) => return Err(Error::ApplyFailed { kind, name, source }),
    }
    ctx.metrics
        .writes
        .with_label_values(&[CONTROLLER, &kind, "apply"])
        .inc();
    if !drifted.is_empty() {
        changes
            .drift
            .push(format!("{kind} {name}: {}", drifted.join(", ")));
    }
    changes.applied.push(format!("{kind} {name}"));
    Ok(())
}

async fn reconcile_inner(db: &InstantDb, ctx: &Context) -> Result<Action> {
    let ns = db
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let name = db.name_any();
    if db.metadata.deletion_timestamp.is_some() {
        // Owned objects go with owner references; the PVC follows the StatefulSet's
        // persistentVolumeClaimRetentionPolicy (storage.deletionPolicy). Nothing to do but
        // forget the object's failures.
        ctx.reset_backoff(&object_key(db));
        ctx.metrics.forget_instance(&ns, &name);
        return Ok(Action::await_change());
    }
    let uid = db.uid().ok_or(Error::MissingObjectKey("metadata.uid"))?;
    let client = ctx.client.clone();
    let dbs: Api<InstantDb> = Api::namespaced(client.clone(), &ns);
    let now = Timestamp::now();

    let resolved = match builders::resolve(db, &ctx.config.default_image) {
        Ok(r) => r,
        Err(problems) => {
            let observed = Observed {
                generation: db.metadata.generation,
                invalid: problems.clone(),
                ..Default::default()
            };
            let mut new = status::compute(db.status.as_ref(), &observed, now);
            if write_status(&dbs, db, &mut new, ctx).await? {
                ctx.event(
                    &db.object_ref(&()),
                    EventType::Warning,
                    "InvalidSpec",
                    "Validate",
                    format!("fix the spec: {}", problems.join("; ")),
                )
                .await;
            }
            // Not retried: a spec change triggers the next reconcile.
            return Ok(Action::await_change());
        }
    };

    // Observe, from the watch caches (see `cache`): no request to the API.
    let caches = ctx
        .caches
        .get(&ns)
        .ok_or_else(|| Error::CachesNotRunning(ns.clone()))?;
    if !caches.ready().await {
        return Err(Error::CachesNotRunning(ns.clone()));
    }
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let secret = cache::cached(&caches.secrets, &ns, &names::admin_secret(&name))?;
    let api_secret = cache::cached(&caches.secrets, &ns, &names::api_secret(&name))?;
    let sts = cache::cached(&caches.statefulsets, &ns, &names::primary(&name))?;
    let cm = cache::cached(&caches.config_maps, &ns, &names::config_map(&name))?;
    let headless = cache::cached(&caches.services, &ns, &names::headless_service(&name))?;
    let svc = cache::cached(&caches.services, &ns, &names::primary(&name))?;
    let pdb = cache::cached(&caches.pdbs, &ns, &names::primary(&name))?;
    // The user's (or cert-manager's) TLS Secret is not the operator's, so not in the cache:
    // one GET per reconcile of a TLS instance.
    let tls_secret = match builders::tls::secret_name(db) {
        Some(s) => {
            Api::<Secret>::namespaced(client.clone(), &ns)
                .get_opt(s)
                .await?
        }
        None => None,
    };
    // The pod and its claim tell why an engine is not ready (crash loop, image pull,
    // scheduling, volume); there are none before the StatefulSet.
    let (pod, pvc) = if sts.is_some() {
        (
            cache::cached(&caches.pods, &ns, &names::pod(&name))?,
            cache::cached(&caches.pvcs, &ns, &names::data_pvc(&name))?,
        )
    } else {
        (None, None)
    };
    let network_policy = cache::cached(&caches.network_policies, &ns, &names::primary(&name))?;
    // The ServiceMonitor kind may not exist (no Prometheus Operator): it is not watched, and
    // read from the API only where its CRD is installed.
    let sm_crd = ctx.service_monitor_crd_exists().await;
    let sm_api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &builders::service_monitor_resource());
    let sm = if sm_crd {
        sm_api.get_opt(&names::primary(&name)).await?
    } else {
        None
    };

    let all_backups = cache::in_namespace(&caches.backups, &ns);
    let policies = cache::in_namespace(&caches.policies, &ns);
    let bootstrap_plan = bootstrap::plan(db, &all_backups);
    let bootstrap_credentials =
        bootstrap_credentials(db, ctx, &ns, &bootstrap_plan, &all_backups).await?;
    let hold_engine = bootstrap::holds(&bootstrap_plan, bootstrap_credentials.as_deref());
    // The claims of volume destinations are the user's (not labelled, not cached): a GET
    // each, only for instances that back up to volumes.
    let backup_claims = existing_claims(
        &Api::namespaced(client.clone(), &ns),
        crate::controller::backup::credentials::claims(db, &all_backups, &policies),
    )
    .await?;
    let (bootstrap_from, bootstrap_to_time) = match &bootstrap_plan {
        bootstrap::Plan::Ready(r) => (r.archive_url.as_deref(), r.target_time.as_deref()),
        _ => (None, None),
    };
    let archive_plan = archiving::plan(db, &policies);
    let archive_settings = archive_io::settings(
        ctx,
        &ns,
        db,
        archive_plan.as_ref(),
        cm.as_ref(),
        &all_backups,
    )
    .await?;

    let token = secret
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(ADMIN_TOKEN_KEY))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(builders::generate_token);
    let default_image = image::default_image_for(
        db,
        &ctx.config.default_image,
        sts.as_ref().and_then(image::running),
    );
    // Kept from the Secret once generated: a reconcile never rotates the keys clients hold.
    let api_keys = builders::api_keys(api_secret.as_ref(), builders::generate_token);
    let desired = builders::desired(&BuildInput {
        db,
        default_image: &default_image,
        admin_token: &token,
        api_keys: &api_keys,
        operator_namespace: &ctx.config.operator_namespace,
        service_monitor_crd: sm_crd,
        existing_claim_templates: sts
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.volume_claim_templates.clone()),
        tls_secret: tls_secret.as_ref(),
        bootstrap_from,
        backup_claims: &backup_claims,
        bootstrap_to_time,
        archive: archive_settings.as_ref().ok().and_then(Option::as_ref),
    })?;

    // Apply.
    let observed_objects = ObservedObjects {
        secret: secret.as_ref(),
        api_secret: api_secret.as_ref(),
        sts: sts.as_ref(),
        cm: cm.as_ref(),
        headless: headless.as_ref(),
        svc: svc.as_ref(),
        pdb: pdb.as_ref(),
        network_policy: network_policy.as_ref(),
        sm: sm.as_ref(),
    };
    // A failure that may pass still leads to a status of what happened (naming the object);
    // the error is returned afterwards for the backoff.
    let (changed, apply_failure) = match apply_all(
        db,
        ctx,
        &ns,
        &uid,
        desired,
        observed_objects,
        pvc.as_ref(),
        hold_engine,
    )
    .await
    {
        Ok(c) => (c, None),
        Err(e) => match e.status_reason() {
            Some(reason) => return blocked(db, &dbs, ctx, reason, &e, now).await,
            None if matches!(e, Error::ApplyFailed { .. }) => (Changes::default(), Some(e)),
            None => return Err(e),
        },
    };
    for drifted in &changed.drift {
        tracing::warn!(instantdb = %object_key(db), %drifted, "put back fields another writer changed");
        ctx.event(
            &db.object_ref(&()),
            EventType::Warning,
            "DriftCorrected",
            "Apply",
            format!(
                "put back {drifted}: the operator owns these fields; change them through the InstantDb spec"
            ),
        )
        .await;
    }
    let changed = changed.applied;
    if !changed.is_empty() {
        tracing::info!(instantdb = %object_key(db), applied = ?changed, "applied");
        ctx.event(
            &db.object_ref(&()),
            EventType::Normal,
            "Applied",
            "Apply",
            format!("applied {}", changed.join(", ")),
        )
        .await;
    }

    // Status.
    // A fresh read: the StatefulSet was just applied and the cache may not hold the new
    // generation yet, which the rollout check below compares with.
    let sts_now = if changed.iter().any(|c| c.starts_with("StatefulSet")) {
        sts_api.get_opt(&names::primary(&name)).await?
    } else {
        sts
    };
    let sts_status = sts_now
        .as_ref()
        .and_then(|s| s.status.clone())
        .unwrap_or_default();
    let ready = sts_status.ready_replicas.unwrap_or(0);
    let sts_generation = sts_now.as_ref().and_then(|s| s.metadata.generation);
    let rolled_out = sts_status.observed_generation == sts_generation
        && sts_status.current_revision.is_some()
        && sts_status.current_revision == sts_status.update_revision;
    // Health is read from every running pod, ready or not: an engine whose integrity check
    // failed turns itself unready, and that is when its report is needed.
    // With spec.tls the engine is only asked over TLS verified against the Secret's CA: a
    // Secret that is missing or incomplete is a problem for the user, not a health failure.
    let tls_problem = builders::tls::secret_problem(db, tls_secret.as_ref());
    let target = match diagnose::pod_ip(pod.as_ref()) {
        Some(ip) if !resolved.suspend && tls_problem.is_none() => {
            Some(builders::tls::engine_target(db, ip, tls_secret.as_ref()))
        }
        _ => None,
    };
    let health = match &target {
        Some(Ok(target)) => Some(
            ctx.engine
                .detailed_health(target, &token)
                .await
                .map_err(|e| e.to_string()),
        ),
        Some(Err(e)) => Some(Err(e.clone())),
        None => None,
    };
    let engine = diagnose::with_tls_problem(
        diagnose::diagnose(
            &names::pod(&name),
            pod.as_ref(),
            pvc.as_ref(),
            health.as_ref(),
        ),
        tls_problem,
    );
    let auto_restore = db.spec.auto_restore();
    let key = object_key(db);
    let refresh_numbers = ctx.engine_numbers_due(&key);
    let observed = Observed {
        generation: db.metadata.generation,
        invalid: vec![],
        blocked: None,
        suspended: resolved.suspend,
        auto_restore,
        ready_replicas: ready,
        rolled_out: rolled_out || sts_status.current_revision.is_none(),
        engine,
        health,
        refresh_numbers,
        endpoint: Some(builders::endpoint(
            &name,
            &ns,
            builders::tls::secret_name(db).is_some(),
        )),
        image: Some(db.spec.image.clone().unwrap_or(default_image)),
        apply_failed: apply_failure.as_ref().map(ToString::to_string),
    };
    let mut new = status::compute(db.status.as_ref(), &observed, now);
    new.secrets = Some(instant_db_crds::InstanceSecrets {
        admin: Some(names::admin_secret(&name)),
        api: Some(names::api_secret(&name)),
    });
    let integrity = observed
        .health
        .as_ref()
        .and_then(|h| h.as_ref().ok())
        .and_then(|h| h.last_integrity_check.as_ref());
    // Recorded with or without autoRestore: a restore made later by hand or after enabling it
    // needs to know when the data was last known good.
    recovery::record_integrity_pass(&mut new, integrity);
    if auto_restore {
        recover(db, ctx, &caches, &ns, integrity, &mut new, now).await?;
    }
    if let Some(view) = bootstrap::condition(
        &bootstrap_plan,
        bootstrap_credentials.as_deref(),
        db.status
            .as_ref()
            .and_then(|s| conds::find_condition(&s.conditions, conds::BOOTSTRAPPED)),
        pod.as_ref(),
        observed.engine.ready,
        observed
            .health
            .as_ref()
            .and_then(|h| h.as_ref().ok())
            .and_then(|h| h.document_count),
    ) {
        bootstrap::apply_to_status(&mut new, &view, now);
    }
    if let bootstrap::Plan::Ready(recorded) = &bootstrap_plan {
        new.bootstrap = Some(recorded.as_ref().clone());
    }
    let of_instance: Vec<InstantDbBackup> = all_backups
        .into_iter()
        .filter(|b| b.spec.instance == name)
        .collect();
    backups::apply_to_status(&mut new, &of_instance, db.metadata.generation, now);
    let archive_report = match (&archive_plan, &archive_settings) {
        (Some(Ok(_)), Ok(Some(_))) => {
            let target = target.as_ref().and_then(|t| t.as_ref().ok());
            archive_io::report(ctx, &key, target, &token).await
        }
        _ => None,
    };
    let archive_state = match (&archive_plan, &archive_settings) {
        (_, Err((reason, message))) => archiving::State::Blocked {
            reason,
            message: message.clone(),
        },
        (Some(Ok(plan)), Ok(Some(_))) => archiving::State::On {
            plan,
            report: archive_report.as_ref(),
        },
        _ => archiving::State::Off,
    };
    archiving::apply_to_status(&mut new, &archive_state, now);
    let was_ready = db
        .status
        .as_ref()
        .is_some_and(|s| is_true(&s.conditions, conds::READY));
    let was_degraded = db
        .status
        .as_ref()
        .is_some_and(|s| is_true(&s.conditions, conds::DEGRADED));
    status::finish(&mut new, db.metadata.generation);
    if !refresh_numbers
        && db.status.as_ref() != Some(&new)
        && let Some(n) = observed
            .health
            .as_ref()
            .and_then(|h| h.as_ref().ok())
            .and_then(|h| h.document_count)
    {
        // Status is written anyway: the write may as well carry the current numbers.
        new.document_count = Some(n);
    }
    let numbers_moved = db.status.as_ref().and_then(|s| s.document_count) != new.document_count;
    if write_status(&dbs, db, &mut new, ctx).await? {
        if numbers_moved {
            ctx.engine_numbers_taken(&key);
        }
        let reference = db.object_ref(&());
        let ready_now = is_true(&new.conditions, conds::READY);
        let degraded_now = is_true(&new.conditions, conds::DEGRADED);
        if ready_now && !was_ready {
            ctx.event(
                &reference,
                EventType::Normal,
                "Ready",
                "Observe",
                "the engine is ready".into(),
            )
            .await;
        }
        if degraded_now && !was_degraded {
            let msg = conds::find_condition(&new.conditions, conds::DEGRADED)
                .map(|c| c.message.clone())
                .unwrap_or_default();
            ctx.event(&reference, EventType::Warning, "Degraded", "Observe", msg)
                .await;
        }
    }
    if let Some(e) = apply_failure {
        return Err(e);
    }
    Ok(if resolved.suspend {
        Action::requeue(Duration::from_secs(300))
    } else if is_true(&new.conditions, conds::READY) {
        Action::requeue(ctx.config.resync_ready)
    } else {
        Action::requeue(ctx.config.resync_progressing)
    })
}

/// Puts the credentials of the bootstrap's destination into the storage-credentials Secret
/// before the pod that reads them exists. None when there is nothing to do (no bootstrap, no
/// credentials, already bootstrapped) or it is done; else what is missing and what to do.
async fn bootstrap_credentials(
    db: &InstantDb,
    ctx: &Context,
    ns: &str,
    plan: &bootstrap::Plan,
    backups: &[InstantDbBackup],
) -> Result<Option<String>> {
    let bootstrapped = db
        .status
        .as_ref()
        .is_some_and(|s| is_true(&s.conditions, conds::BOOTSTRAPPED));
    let bootstrap::Plan::Ready(recorded) = plan else {
        return Ok(None);
    };
    let Some((secret, store)) = recorded
        .destination
        .as_ref()
        .and_then(crate::controller::backup::plan::credentials_ref)
    else {
        return Ok(None);
    };
    if bootstrapped {
        return Ok(None);
    }
    use crate::controller::backup::NotReady;
    Ok(
        match crate::controller::backup::credentials::ensure(ctx, ns, db, (secret, store), backups)
            .await?
        {
            Ok(_) => None,
            Err(NotReady::Pending(why) | NotReady::Failed(why)) => Some(format!(
                "{why}: the bootstrap reads the backup with it; create Secret {secret} in this namespace with the key{} {}",
                if store.required_keys().len() > 1 {
                    "s"
                } else {
                    ""
                },
                store.required_keys().join(" and ")
            )),
        },
    )
}

/// The claims of `wanted` that exist, sorted: a pod mounting a missing claim would not start,
/// so a backup to a claim not created yet waits instead of taking the engine down.
async fn existing_claims(
    pvcs: &Api<PersistentVolumeClaim>,
    wanted: std::collections::BTreeSet<String>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for claim in wanted {
        if pvcs.get_opt(&claim).await?.is_some() {
            out.push(claim);
        }
    }
    Ok(out)
}

/// Starts an automatic restore when the integrity check failed (see `recovery`) and sets
/// `Recovering` / `lastRecovery` in `status`.
async fn recover(
    db: &InstantDb,
    ctx: &Context,
    caches: &cache::ScopeCaches,
    ns: &str,
    integrity: Option<&crate::engine_client::IntegrityCheck>,
    status: &mut InstantDbStatus,
    now: Timestamp,
) -> Result<()> {
    let restores: Api<InstantDbRestore> = Api::namespaced(ctx.client.clone(), ns);
    // From the cache: a restore created by the last pass and not in it yet is created again
    // under the same name, which the API refuses (409, ignored below).
    let name = db.name_any();
    let existing: Vec<InstantDbRestore> = caches
        .restores
        .state()
        .iter()
        .filter(|r| {
            let labels = r.labels();
            r.namespace().as_deref() == Some(ns)
                && labels.get(recovery::AUTO_RESTORE_LABEL).map(String::as_str) == Some("true")
                && labels.get(recovery::INSTANCE_LABEL) == Some(&name)
        })
        .map(|r| r.as_ref().clone())
        .collect();
    let created = recovery::restore_to_create(db, integrity, &existing);
    if let Some(restore) = &created {
        match restores.create(&PostParams::default(), restore).await {
            Ok(_) => {
                ctx.metrics
                    .writes
                    .with_label_values(&[CONTROLLER, "InstantDbRestore", "create"])
                    .inc();
                ctx.event(
                    &db.object_ref(&()),
                    EventType::Warning,
                    "AutoRestoreStarted",
                    "Recover",
                    format!(
                        "the integrity check failed ({}); restoring the newest backup from before the last passing check with InstantDbRestore {}",
                        integrity.and_then(|i| i.message.clone()).unwrap_or_default(),
                        restore.name_any()
                    ),
                )
                .await;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    recovery::apply_to_status(
        status,
        &existing,
        created.as_ref(),
        db.metadata.generation,
        now,
    );
    Ok(())
}

/// What the reconcile read, for [`apply_all`].
struct ObservedObjects<'a> {
    secret: Option<&'a Secret>,
    api_secret: Option<&'a Secret>,
    sts: Option<&'a StatefulSet>,
    cm: Option<&'a ConfigMap>,
    headless: Option<&'a Service>,
    svc: Option<&'a Service>,
    pdb: Option<&'a PodDisruptionBudget>,
    network_policy: Option<&'a NetworkPolicy>,
    sm: Option<&'a DynamicObject>,
}

/// Applies every desired object that differs from what was observed (or drifted from it);
/// returns what changed. With `hold_engine` the StatefulSet is left as it is (not created): the
/// bootstrap backup is not usable yet, and an engine started now would start empty.
#[allow(clippy::too_many_arguments)]
async fn apply_all(
    db: &InstantDb,
    ctx: &Context,
    ns: &str,
    uid: &str,
    desired: builders::Desired,
    o: ObservedObjects<'_>,
    pvc: Option<&PersistentVolumeClaim>,
    hold_engine: bool,
) -> Result<Changes> {
    let name = db.name_any();
    let client = ctx.client.clone();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let svcs: Api<Service> = Api::namespaced(client.clone(), ns);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    let sm_api: Api<DynamicObject> =
        Api::namespaced_with(client, ns, &builders::service_monitor_resource());
    let mut changed = Changes::default();
    let c = &mut changed;
    apply_if_changed(&cms, desired.config_map, o.cm, uid, ctx, c).await?;
    apply_if_changed(&secrets, desired.secret, o.secret, uid, ctx, c).await?;
    apply_if_changed(&secrets, desired.api_secret, o.api_secret, uid, ctx, c).await?;
    apply_if_changed(&svcs, desired.headless_service, o.headless, uid, ctx, c).await?;
    apply_if_changed(&svcs, desired.service, o.svc, uid, ctx, c).await?;
    if !hold_engine {
        apply_if_changed(&sts_api, desired.statefulset, o.sts, uid, ctx, c).await?;
    }
    match (desired.pdb, o.pdb) {
        (Some(want), observed) => {
            apply_if_changed(&pdbs, want, observed, uid, ctx, c).await?;
        }
        (None, Some(observed)) if owned_by(observed, uid) => {
            pdbs.delete(&names::primary(&name), &DeleteParams::default())
                .await
                .map_err(|source| Error::ApplyFailed {
                    kind: "PodDisruptionBudget".into(),
                    name: names::primary(&name),
                    source,
                })?;
            ctx.metrics
                .writes
                .with_label_values(&[CONTROLLER, "PodDisruptionBudget", "delete"])
                .inc();
            c.push(format!(
                "deleted PodDisruptionBudget {}",
                names::primary(&name)
            ));
        }
        (None, _) => {}
    }
    apply_or_delete_network_policy(
        ctx,
        ns,
        uid,
        &name,
        desired.network_policy,
        o.network_policy,
        c,
    )
    .await?;
    if let Some(want) = desired.service_monitor {
        apply_if_changed(&sm_api, want, o.sm, uid, ctx, c).await?;
    }
    if let Some(note) = expand_volume(db, ctx, ns, &name, pvc).await? {
        c.push(note);
    }
    Ok(changed)
}

/// Like the PDB: applied when wanted, deleted when switched off (only if it is ours).
async fn apply_or_delete_network_policy(
    ctx: &Context,
    ns: &str,
    uid: &str,
    name: &str,
    want: Option<NetworkPolicy>,
    observed: Option<&NetworkPolicy>,
    changed: &mut Changes,
) -> Result<()> {
    let api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), ns);
    match (want, observed) {
        (Some(want), observed) => {
            apply_if_changed(&api, want, observed, uid, ctx, changed).await?;
        }
        (None, Some(observed)) if owned_by(observed, uid) => {
            api.delete(&names::primary(name), &DeleteParams::default())
                .await?;
            ctx.metrics
                .writes
                .with_label_values(&[CONTROLLER, "NetworkPolicy", "delete"])
                .inc();
            changed.push(format!("deleted NetworkPolicy {}", names::primary(name)));
        }
        (None, _) => {}
    }
    Ok(())
}

/// Puts an error only the user can fix (foreign object in the way, object rejected by the API
/// server) into status instead of retrying it with backoff, and looks again in five minutes:
/// deleting a foreign object triggers no watch of ours, and a spec fix triggers a reconcile.
async fn blocked(
    db: &InstantDb,
    dbs: &Api<InstantDb>,
    ctx: &Context,
    reason: &'static str,
    err: &Error,
    now: Timestamp,
) -> Result<Action> {
    ctx.metrics
        .errors
        .with_label_values(&[CONTROLLER, err.kind(), reason])
        .inc();
    tracing::warn!(instantdb = %object_key(db), error = %err, "reconcile blocked; see status");
    let observed = Observed {
        generation: db.metadata.generation,
        blocked: Some((reason.to_string(), err.to_string())),
        ..Default::default()
    };
    let mut new = status::compute(db.status.as_ref(), &observed, now);
    // The event goes out when the status changes, so a blocked object does not repeat it.
    if write_status(dbs, db, &mut new, ctx).await? {
        ctx.event(
            &db.object_ref(&()),
            EventType::Warning,
            reason,
            "Apply",
            err.to_string(),
        )
        .await;
    }
    Ok(Action::requeue(BLOCKED_RESYNC))
}

/// Writes the status when it changed (see `controller::write_status`), every condition with
/// the generation of this write (also those set after `status::compute`).
async fn write_status(
    api: &Api<InstantDb>,
    db: &InstantDb,
    new: &mut InstantDbStatus,
    ctx: &Context,
) -> Result<bool> {
    status::finish(new, db.metadata.generation);
    // The alerts read instance health from these gauges (an unready engine is not scraped).
    ctx.metrics.observe_instance(
        &db.namespace().unwrap_or_default(),
        &db.name_any(),
        &new.conditions,
        new.last_backup.as_ref(),
    );
    super::write_status(api, db, db.status.as_ref(), new, ctx, CONTROLLER).await
}
