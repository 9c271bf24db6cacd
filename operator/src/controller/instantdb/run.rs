//! The InstantDb controller loop: watches of InstantDb objects and of what they own, per
//! watched namespace, feeding `reconcile`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use instant_db_crds::InstantDb;
use instant_db_crds::backup::InstantDbRestore;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;
use kube::{Api, Resource};

use super::{error_policy, reconcile};
use crate::controller::Context;
use crate::server::Health;

/// Waits until the controller's store has listed every object; false when the controller ended
/// first. The wait is re-armed every half second because kube-runtime 5.0's readiness signal
/// (a oneshot channel) keeps only the last waiter's waker, and the Controller itself also waits
/// on it: a second waiter that is not polled again may never be woken.
async fn store_ready(store: &kube::runtime::reflector::Store<InstantDb>) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_millis(500), store.wait_until_ready()).await {
            Ok(ready) => return ready.is_ok(),
            Err(_) => continue,
        }
    }
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
    let client = ctx.client.clone();
    let owned =
        watcher::Config::default().labels("app.kubernetes.io/managed-by=instant-db-operator");
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    health.set_synced(false);
    // A JoinSet aborts its tasks when dropped.
    let mut tasks = tokio::task::JoinSet::new();
    let mut stores = Vec::new();
    for scope in scopes {
        fn api<K: Resource<Scope = k8s_openapi::NamespaceResourceScope>>(
            c: &kube::Client,
            ns: &Option<String>,
        ) -> Api<K>
        where
            K::DynamicType: Default,
        {
            match ns {
                Some(ns) => Api::namespaced(c.clone(), ns),
                None => Api::all(c.clone()),
            }
        }
        let controller = Controller::new(
            api::<InstantDb>(&client, &scope),
            watcher::Config::default().any_semantic(),
        )
        .owns(api::<StatefulSet>(&client, &scope), owned.clone())
        .owns(api::<Service>(&client, &scope), owned.clone())
        .owns(api::<ConfigMap>(&client, &scope), owned.clone())
        // The admin Secret is watched too, so a deleted Secret is recreated at once (with a
        // new token) rather than at the next resync.
        .owns(api::<Secret>(&client, &scope), owned.clone())
        .owns(api::<PodDisruptionBudget>(&client, &scope), owned.clone())
        // Automatic restores, so `Recovering` follows them at once.
        .owns(api::<InstantDbRestore>(&client, &scope), owned.clone());
        stores.push(controller.store());
        let ctx_for_results = ctx.clone();
        let stream = controller
            .graceful_shutdown_on({
                let mut stop = stop.clone();
                async move {
                    let _ = stop.wait_for(|v| *v).await;
                }
            })
            .run(reconcile, error_policy, ctx.clone())
            .for_each(move |res| {
                let ctx = ctx_for_results.clone();
                async move {
                    match res {
                        Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                        // A requeued object that has been deleted meanwhile: its failures
                        // (if any) are no longer needed.
                        Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                            ctx.reset_backoff(&format!(
                                "{}/{}",
                                obj.namespace.as_deref().unwrap_or_default(),
                                obj.name
                            ));
                        }
                        Err(e) => tracing::debug!(error = %e, "controller event"),
                    }
                }
            });
        tasks.spawn(stream);
    }
    {
        let health = health.clone();
        tasks.spawn(async move {
            for store in stores {
                if !store_ready(&store).await {
                    return;
                }
            }
            tracing::info!("InstantDb watches synced");
            health.set_synced(true);
        });
    }
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            tracing::error!(error = %e, "controller task failed");
        }
    }
}
