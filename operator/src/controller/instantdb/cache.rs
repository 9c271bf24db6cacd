//! Watch caches of what the InstantDb controller reads: its children and the instances'
//! backups and restores, one reflector store per kind and watched scope. A reconcile reads
//! these instead of the API, so a steady reconcile makes no GET and no LIST.
//!
//! Each watch is as narrow as the objects allow, so the operator does not hold the cluster:
//! - children the operator creates carry `app.kubernetes.io/managed-by=instant-db-operator`;
//!   Secrets in particular are watched only with that selector: the operator caches its own
//!   Secrets (admin token, API keys), never every Secret of the namespace. A metadata-only
//!   watch would not do: the reconcile reads the admin token and the API keys from them.
//! - pods and the data PVCs are made by the StatefulSet controller from the template, whose
//!   labels name the instance but not the manager: `app.kubernetes.io/name=instant-db,
//!   app.kubernetes.io/component=engine`.
//! - InstantDbBackups are the project's own kind; made by hand they carry no label, so all
//!   of the scope are watched.
//!
//! Cached objects lose their `managedFields` (a large part of a pod or StatefulSet, and never
//! read), pods also their spec; children are kept as JSON text beside their typed metadata
//! ([`Compact`]), which keeps the memory of 1,000 instances small.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, PoisonError, RwLock};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use instant_db_crds::backup::{InstantDbBackup, InstantDbBackupPolicy, InstantDbRestore};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::compact::{Compact, Trim};
use crate::controller::{Context, scoped_api};

/// Selector of the objects the operator creates itself.
pub const OWNED_SELECTOR: &str = "app.kubernetes.io/managed-by=instant-db-operator";
/// Selector of the engine pods and their PVCs (made by the StatefulSet controller).
pub const ENGINE_SELECTOR: &str =
    "app.kubernetes.io/name=instant-db,app.kubernetes.io/component=engine";

/// The stores of one watched scope (a namespace, or all namespaces).
#[derive(Clone)]
pub struct ScopeCaches {
    /// StatefulSets of the instances.
    pub statefulsets: Store<Compact<StatefulSet>>,
    /// Services (headless and primary).
    pub services: Store<Compact<Service>>,
    /// Engine ConfigMaps.
    pub config_maps: Store<Compact<ConfigMap>>,
    /// The operator's own Secrets.
    pub secrets: Store<Compact<Secret>>,
    /// PodDisruptionBudgets.
    pub pdbs: Store<Compact<PodDisruptionBudget>>,
    /// NetworkPolicies.
    pub network_policies: Store<Compact<NetworkPolicy>>,
    /// Engine pods.
    pub pods: Store<Compact<Pod>>,
    /// Engine data PVCs.
    pub pvcs: Store<Compact<PersistentVolumeClaim>>,
    /// Every InstantDbBackup of the scope.
    pub backups: Store<InstantDbBackup>,
    /// Automatic restores (owned by their instance).
    pub restores: Store<InstantDbRestore>,
    /// Every InstantDbBackupPolicy of the scope (their volume destinations are mounted).
    pub policies: Store<InstantDbBackupPolicy>,
    /// (list path, label selector) of each watch, for tests that compare with the API.
    watched: Vec<(String, Option<String>)>,
}

/// One child of `store` by namespace and name, typed again.
pub fn cached<K>(store: &Store<Compact<K>>, ns: &str, name: &str) -> crate::Result<Option<K>>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Trim,
{
    store
        .get(&ObjectRef::new(name).within(ns))
        .map(|o| o.object())
        .transpose()
        .map_err(Into::into)
}

/// Every object of `store` in namespace `ns`.
pub fn in_namespace<K>(store: &Store<K>, ns: &str) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone,
{
    store
        .state()
        .iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(ns))
        .map(|o| o.as_ref().clone())
        .collect()
}

impl ScopeCaches {
    /// Waits until every store has listed its objects once (at start, or after the watch
    /// was restarted); false when a watch ended for good.
    pub async fn ready(&self) -> bool {
        use crate::controller::store_ready;
        store_ready(&self.statefulsets).await
            && store_ready(&self.services).await
            && store_ready(&self.config_maps).await
            && store_ready(&self.secrets).await
            && store_ready(&self.pdbs).await
            && store_ready(&self.network_policies).await
            && store_ready(&self.pods).await
            && store_ready(&self.pvcs).await
            && store_ready(&self.backups).await
            && store_ready(&self.restores).await
            && store_ready(&self.policies).await
    }

    /// `(path, resourceVersion)` of every cached object, sorted; with [`Self::watched`] a
    /// test can wait until the caches have caught up with the API.
    pub fn versions(&self) -> Vec<(String, String)> {
        let mut out = BTreeMap::new();
        versions_of(&self.statefulsets, &mut out);
        versions_of(&self.services, &mut out);
        versions_of(&self.config_maps, &mut out);
        versions_of(&self.secrets, &mut out);
        versions_of(&self.pdbs, &mut out);
        versions_of(&self.network_policies, &mut out);
        versions_of(&self.pods, &mut out);
        versions_of(&self.pvcs, &mut out);
        versions_of(&self.backups, &mut out);
        versions_of(&self.restores, &mut out);
        versions_of(&self.policies, &mut out);
        out.into_iter().collect()
    }

    /// (list path, label selector) of every watch.
    pub fn watched(&self) -> &[(String, Option<String>)] {
        &self.watched
    }
}

fn versions_of<K>(store: &Store<K>, out: &mut BTreeMap<String, String>)
where
    K: Resource<DynamicType = ()> + Clone,
{
    for o in store.state() {
        let meta = o.meta();
        let path = format!(
            "{}/{}",
            K::url_path(&(), meta.namespace.as_deref()),
            meta.name.clone().unwrap_or_default()
        );
        out.insert(path, meta.resource_version.clone().unwrap_or_default());
    }
}

/// A change stream of one watch (objects touched: applied or deleted).
pub type Changes<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// The watches of one scope: the stores, and the change streams that fill them. The streams
/// must be polled (by the Controller, which takes them as triggers, or by [`drive`]).
pub struct Watches {
    /// The stores the streams fill.
    pub caches: ScopeCaches,
    /// StatefulSet changes.
    pub statefulsets: Changes<Compact<StatefulSet>>,
    /// Service changes.
    pub services: Changes<Compact<Service>>,
    /// ConfigMap changes.
    pub config_maps: Changes<Compact<ConfigMap>>,
    /// Secret changes (the operator's own Secrets only).
    pub secrets: Changes<Compact<Secret>>,
    /// PodDisruptionBudget changes.
    pub pdbs: Changes<Compact<PodDisruptionBudget>>,
    /// NetworkPolicy changes.
    pub network_policies: Changes<Compact<NetworkPolicy>>,
    /// Engine pod changes.
    pub pods: Changes<Compact<Pod>>,
    /// Engine PVC changes.
    pub pvcs: Changes<Compact<PersistentVolumeClaim>>,
    /// InstantDbBackup changes.
    pub backups: Changes<InstantDbBackup>,
    /// Automatic restore changes.
    pub restores: Changes<InstantDbRestore>,
    /// InstantDbBackupPolicy changes.
    pub policies: Changes<InstantDbBackupPolicy>,
}

fn reflected<K>(
    client: &Client,
    scope: Option<&str>,
    selector: Option<&str>,
    watched: &mut Vec<(String, Option<String>)>,
) -> (Store<K>, Changes<K>)
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let config = match selector {
        Some(s) => watcher::Config::default().labels(s),
        None => watcher::Config::default(),
    };
    watched.push((K::url_path(&(), scope), selector.map(str::to_string)));
    let stream = watcher(scoped_api::<K>(client, scope), config)
        .default_backoff()
        .modify(|o: &mut K| o.meta_mut().managed_fields = None)
        .reflect(writer)
        .touched_objects()
        .boxed();
    (reader, stream)
}

/// Opens the watches of one scope (`None`: all namespaces).
pub fn watch(client: &Client, scope: Option<&str>) -> Watches {
    let mut w = Vec::new();
    let owned = Some(OWNED_SELECTOR);
    let engine = Some(ENGINE_SELECTOR);
    let (statefulsets_s, statefulsets) = reflected(client, scope, owned, &mut w);
    let (services_s, services) = reflected(client, scope, owned, &mut w);
    let (config_maps_s, config_maps) = reflected(client, scope, owned, &mut w);
    let (secrets_s, secrets) = reflected(client, scope, owned, &mut w);
    let (pdbs_s, pdbs) = reflected(client, scope, owned, &mut w);
    let (network_policies_s, network_policies) = reflected(client, scope, owned, &mut w);
    let (pods_s, pods) = reflected(client, scope, engine, &mut w);
    let (pvcs_s, pvcs) = reflected(client, scope, engine, &mut w);
    let (backups_s, backups) = reflected(client, scope, None, &mut w);
    let (restores_s, restores) = reflected(client, scope, owned, &mut w);
    let (policies_s, policies) = reflected(client, scope, None, &mut w);
    Watches {
        caches: ScopeCaches {
            statefulsets: statefulsets_s,
            services: services_s,
            config_maps: config_maps_s,
            secrets: secrets_s,
            pdbs: pdbs_s,
            network_policies: network_policies_s,
            pods: pods_s,
            pvcs: pvcs_s,
            backups: backups_s,
            restores: restores_s,
            policies: policies_s,
            watched: w,
        },
        statefulsets,
        services,
        config_maps,
        secrets,
        pdbs,
        network_policies,
        pods,
        pvcs,
        backups,
        restores,
        policies,
    }
}

fn drained<K: Send + 'static>(s: Changes<K>) -> BoxStream<'static, ()> {
    s.map(|_| ()).boxed()
}

/// Polls every stream of `w` until they end (never, unless the client goes away): the caches
/// without a Controller (tests, the benchmark).
pub fn drive(w: Watches) -> impl Stream<Item = ()> + Send {
    futures::stream::select_all([
        drained(w.statefulsets),
        drained(w.services),
        drained(w.config_maps),
        drained(w.secrets),
        drained(w.pdbs),
        drained(w.network_policies),
        drained(w.pods),
        drained(w.pvcs),
        drained(w.backups),
        drained(w.restores),
        drained(w.policies),
    ])
}

/// The caches of every scope the controller watches, filled in by the controller loop (or a
/// test) and read by reconciles.
#[derive(Default)]
pub struct Registry {
    /// (scope, registration id, caches), newest last.
    scopes: RwLock<Vec<(Option<String>, u64, ScopeCaches)>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// Keeps caches registered while it lives: a controller holds it as long as it polls the
/// watches, so caches nobody updates any more (the controller ended, leadership was lost) are
/// never read.
pub struct Registration {
    ctx: Arc<Context>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.ctx.caches.unregister(self.id);
    }
}

impl Registry {
    /// Makes `caches` the caches of `scope` (in front of earlier ones: a controller that was
    /// restarted after a lost leadership opens new watches) until [`Self::unregister`].
    pub fn register(&self, scope: Option<&str>, caches: ScopeCaches) -> u64 {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut scopes = self.scopes.write().unwrap_or_else(PoisonError::into_inner);
        scopes.push((scope.map(str::to_string), id, caches));
        id
    }

    /// [`Self::register`], undone when the returned guard is dropped.
    pub fn register_while(
        ctx: &Arc<Context>,
        scope: Option<&str>,
        caches: ScopeCaches,
    ) -> Registration {
        Registration {
            ctx: ctx.clone(),
            id: ctx.caches.register(scope, caches),
        }
    }

    /// Forgets the caches registered as `id`.
    pub fn unregister(&self, id: u64) {
        let mut scopes = self.scopes.write().unwrap_or_else(PoisonError::into_inner);
        scopes.retain(|(_, i, _)| *i != id);
    }

    /// The caches that hold namespace `ns`: its own scope, else the all-namespaces one (the
    /// newest registration of each).
    pub fn get(&self, ns: &str) -> Option<ScopeCaches> {
        let scopes = self.scopes.read().unwrap_or_else(PoisonError::into_inner);
        scopes
            .iter()
            .rev()
            .find(|(s, _, _)| s.as_deref() == Some(ns))
            .or_else(|| scopes.iter().rev().find(|(s, _, _)| s.is_none()))
            .map(|(_, _, c)| c.clone())
    }

    /// Opens the watches of `scope`, registers their caches and polls them in a task until
    /// the runtime ends: caches without a Controller (tests, the benchmark).
    pub fn spawn(&self, client: &Client, scope: Option<&str>) -> ScopeCaches {
        let w = watch(client, scope);
        let caches = w.caches.clone();
        self.register(scope, caches.clone());
        tokio::spawn(drive(w).for_each(|_| std::future::ready(())));
        caches
    }
}
