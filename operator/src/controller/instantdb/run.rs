//! The InstantDb controller loop: watches of InstantDb objects and of what they own, per
//! watched namespace, feeding `reconcile`.

use std::sync::Arc;

use instant_db_crds::InstantDb;
use instant_db_crds::backup::InstantDbRestore;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;

use super::{CONTROLLER, reconcile};
use crate::controller::{Context, error_policy, primary_watch, run_scoped, scoped_api};
use crate::server::Health;

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
    let owned =
        watcher::Config::default().labels("app.kubernetes.io/managed-by=instant-db-operator");
    run_scoped(
        ctx,
        namespaces,
        stop,
        CONTROLLER,
        move |client, scope| {
            Controller::new(scoped_api::<InstantDb>(client, scope), primary_watch())
                .owns(scoped_api::<StatefulSet>(client, scope), owned.clone())
                .owns(scoped_api::<Service>(client, scope), owned.clone())
                .owns(scoped_api::<ConfigMap>(client, scope), owned.clone())
                // The admin Secret is watched too, so a deleted Secret is recreated at once
                // (with a new token) rather than at the next resync.
                .owns(scoped_api::<Secret>(client, scope), owned.clone())
                .owns(
                    scoped_api::<PodDisruptionBudget>(client, scope),
                    owned.clone(),
                )
                // Automatic restores, so `Recovering` follows them at once.
                .owns(scoped_api::<InstantDbRestore>(client, scope), owned.clone())
        },
        reconcile,
        error_policy,
        Some(health),
    )
    .await;
}
