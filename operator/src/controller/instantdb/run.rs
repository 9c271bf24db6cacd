//! The InstantDb controller loop: watches of InstantDb objects and of what they own, per
//! watched namespace, feeding `reconcile`. The watches of the children fill the caches the
//! reconcile reads (see `cache`).

use std::sync::Arc;

use instant_db_crds::InstantDb;
use instant_db_crds::backup::{InstantDbBackup, InstantDbBackupPolicy};
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Resource, ResourceExt};

use super::{CONTROLLER, cache, reconcile};
use crate::controller::{Context, error_policy, primary_watch, run_scoped, scoped_api};
use crate::server::Health;

/// What of an InstantDb change wakes the controller: a new generation (spec), labels,
/// annotations, finalizers or the deletion mark. A status write changes none of these, so the
/// operator's own status writes (and the engine numbers they carry) do not trigger another
/// reconcile; the engine-derived numbers are refreshed on the resync timer instead.
pub fn primary_predicate(db: &InstantDb) -> Option<u64> {
    let deleting = |d: &InstantDb| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        d.meta().deletion_timestamp.is_some().hash(&mut h);
        Some(h.finish())
    };
    predicates::generation
        .combine(predicates::labels)
        .combine(predicates::annotations)
        .combine(predicates::finalizers)
        .combine(deleting)
        .hash_property(db)
}

/// The InstantDb a pod, PVC or backup belongs to: pods and PVCs by their instance label
/// (their owner is the StatefulSet), backups by `spec.instance`.
fn instance_of_labelled<K: Resource>(obj: K) -> Option<ObjectRef<InstantDb>> {
    let name = obj.labels().get("app.kubernetes.io/instance")?.clone();
    Some(ObjectRef::new(&name).within(&obj.namespace()?))
}

fn instance_of_backup(b: InstantDbBackup) -> Option<ObjectRef<InstantDb>> {
    Some(ObjectRef::new(&b.spec.instance).within(&b.namespace()?))
}

fn instance_of_policy(p: InstantDbBackupPolicy) -> Option<ObjectRef<InstantDb>> {
    Some(ObjectRef::new(p.spec.instance.as_deref()?).within(&p.namespace()?))
}

/// Runs the InstantDb controller until `stop` turns true. `namespaces` empty means all.
/// `health` is marked synced once the InstantDb watch of every namespace has listed its
/// objects. Dropping the returned future aborts the controllers at once (used on loss of
/// leadership); `stop` lets running reconciles finish first.
pub async fn run(
    ctx: Arc<Context>,
    namespaces: Vec<String>,
    stop: tokio::sync::watch::Receiver<bool>,
    health: Health,
) {
    // The caches stay registered while the controllers poll their watches: dropping this
    // future (or its end) unregisters them.
    let registrations = Arc::new(std::sync::Mutex::new(Vec::new()));
    let registry_ctx = ctx.clone();
    let held = registrations.clone();
    run_scoped(
        ctx,
        namespaces,
        stop,
        CONTROLLER,
        move |client, scope| {
            let (reader, writer) = reflector::store();
            let dbs = watcher(scoped_api::<InstantDb>(client, scope), primary_watch())
                .default_backoff()
                .reflect(writer)
                .applied_objects()
                .predicate_filter(primary_predicate, Default::default());
            let w = cache::watch(client, scope);
            let registration =
                cache::Registry::register_while(&registry_ctx, scope, w.caches.clone());
            held.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(registration);
            Controller::for_stream(dbs, reader)
                .owns_stream(w.statefulsets)
                .owns_stream(w.services)
                .owns_stream(w.config_maps)
                // The operator's own Secrets, so a deleted Secret is recreated at once (with
                // a new token) rather than at the next resync.
                .owns_stream(w.secrets)
                .owns_stream(w.pdbs)
                .owns_stream(w.network_policies)
                // Automatic restores, so `Recovering` follows them at once.
                .owns_stream(w.restores)
                // A pod that crash-loops or turns ready, a PVC that binds or grows, a backup
                // that completes: each shows in the instance's status at once.
                .watches_stream(w.pods, instance_of_labelled)
                .watches_stream(w.pvcs, instance_of_labelled)
                .watches_stream(w.backups, instance_of_backup)
                // A policy naming an instance may add a volume destination to mount.
                .watches_stream(w.policies, instance_of_policy)
        },
        reconcile,
        error_policy,
        Some(health),
    )
    .await;
    drop(registrations);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn db(generation: i64, labels: serde_json::Value, status_docs: u64) -> InstantDb {
        serde_json::from_value(json!({
            "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
            "metadata": {"name": "docs", "namespace": "search", "generation": generation,
                         "resourceVersion": status_docs.to_string(), "labels": labels},
            "spec": {"storage": {"size": "1Gi"}},
            "status": {"documentCount": status_docs}
        }))
        .unwrap()
    }

    #[test]
    fn status_writes_do_not_wake_the_controller_but_spec_labels_and_deletion_do() {
        let base = primary_predicate(&db(1, json!({}), 1));
        assert_eq!(
            primary_predicate(&db(1, json!({}), 999)),
            base,
            "a status write (new resourceVersion, same generation) is filtered"
        );
        assert_ne!(primary_predicate(&db(2, json!({}), 1)), base, "spec change");
        assert_ne!(
            primary_predicate(&db(1, json!({"team": "a"}), 1)),
            base,
            "label change"
        );
        let mut annotated = db(1, json!({}), 1);
        annotated
            .annotations_mut()
            .insert("instantdb.io/note".into(), "x".into());
        assert_ne!(primary_predicate(&annotated), base, "annotation change");
        let mut finalized = db(1, json!({}), 1);
        finalized.finalizers_mut().push("example.com/keep".into());
        assert_ne!(primary_predicate(&finalized), base, "finalizer change");
        let mut deleting = db(1, json!({}), 1);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-12-01T00:00:00Z".parse().unwrap(),
            ));
        assert_ne!(primary_predicate(&deleting), base, "deletion mark");
    }
}
