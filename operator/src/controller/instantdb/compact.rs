//! A cached child kept as its JSON text, typed again when a reconcile reads it.
//!
//! A typed Kubernetes object is mostly empty `Option`s: k8s-openapi's `Container` is 2.1 KiB
//! and a `Volume` 3.2 KiB before they hold anything, so a cached StatefulSet with its pod
//! template cost tens of KiB, most of the operator's memory at 1,000 instances. Its JSON is a
//! few KiB. A [`Compact`] keeps the metadata typed (the watch, the store and the controller's
//! owner mapping read it) and the rest as JSON; a reconcile, which reads about ten children,
//! types them again with [`Compact::object`].

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// What the cache drops from a child before keeping it: never-read parts of large objects.
pub trait Trim {
    /// Removes what no reconcile reads. `managedFields` are removed from every object.
    fn trim(&mut self) {}
}

/// A child of kind `K` as the watch caches hold it: typed metadata, the rest as JSON text.
pub struct Compact<K> {
    metadata: ObjectMeta,
    /// The object without its metadata (`apiVersion`, `kind`, `spec`, `status`, ...).
    body: Box<str>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Compact<K> {
    fn clone(&self) -> Self {
        Compact {
            metadata: self.metadata.clone(),
            body: self.body.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for Compact<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compact")
            .field("metadata", &self.metadata)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl<K> Compact<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Trim,
{
    /// Keeps `object` (trimmed, without its managedFields) as metadata and JSON.
    pub fn new(mut object: K) -> Result<Self, serde_json::Error> {
        object.trim();
        let mut metadata = std::mem::take(object.meta_mut());
        metadata.managed_fields = None;
        let body = serde_json::to_string(&object)?;
        Ok(Compact {
            metadata,
            body: body.into_boxed_str(),
            kind: PhantomData,
        })
    }

    /// The object, typed again.
    pub fn object(&self) -> Result<K, serde_json::Error> {
        let mut object: K = serde_json::from_str(&self.body)?;
        *object.meta_mut() = self.metadata.clone();
        Ok(object)
    }
}

impl<'de, K> Deserialize<'de> for Compact<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Trim,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Typed first, so a malformed object fails here, in the watch, as it would uncompacted.
        let object = K::deserialize(deserializer)?;
        Compact::new(object).map_err(serde::de::Error::custom)
    }
}

impl<K> Resource for Compact<K>
where
    K: Resource<DynamicType = ()>,
{
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

mod trims {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;

    use super::Trim;

    impl Trim for StatefulSet {}
    impl Trim for Service {}
    impl Trim for ConfigMap {}
    impl Trim for Secret {}
    impl Trim for PodDisruptionBudget {}
    impl Trim for NetworkPolicy {}
    impl Trim for PersistentVolumeClaim {}

    /// A pod without its spec: status (phase, IP, container states, conditions) is all the
    /// reconcile reads, and the spec is most of a real pod.
    impl Trim for Pod {
        fn trim(&mut self) {
            self.spec = None;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::{Value, json};

    fn statefulset() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "docs", "namespace": "search", "generation": 3,
                "labels": {"app.kubernetes.io/managed-by": "instant-db-operator"},
                "annotations": {"instantdb.io/applied-hash": "abc"},
                "ownerReferences": [{"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
                    "name": "docs", "uid": "u1", "controller": true}],
                "managedFields": [{"manager": "instant-db-operator", "operation": "Apply",
                    "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
            "spec": {"replicas": 1, "serviceName": "docs-headless",
                "selector": {"matchLabels": {"app": "docs"}},
                "template": {"metadata": {"labels": {"app": "docs"}},
                    "spec": {"containers": [{"name": "engine", "image": "instant-db:1",
                        "ports": [{"containerPort": 8080}],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                        "volumes": [{"name": "config", "configMap": {"name": "docs-config"}}]}}},
            "status": {"replicas": 1, "readyReplicas": 1, "observedGeneration": 3}
        })
    }

    #[test]
    fn a_compacted_object_reads_back_as_the_object_without_its_managed_fields() {
        let compact: Compact<StatefulSet> = serde_json::from_value(statefulset()).unwrap();
        let mut want: StatefulSet = serde_json::from_value(statefulset()).unwrap();
        want.metadata.managed_fields = None;
        assert_eq!(compact.object().unwrap(), want);
        assert_eq!(compact.meta().name.as_deref(), Some("docs"));
        assert_eq!(compact.meta().owner_references.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn a_compacted_object_keeps_only_its_json_beside_the_metadata() {
        let compact: Compact<StatefulSet> = serde_json::from_value(statefulset()).unwrap();
        // The metadata lives typed beside the text, which keeps an empty one.
        let mut body = statefulset();
        body["metadata"] = json!({});
        let kept: Value = serde_json::from_str(&compact.body).unwrap();
        assert_eq!(kept, body);
    }

    #[test]
    fn a_cached_pod_loses_its_spec() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "docs-0", "namespace": "search"},
            "spec": {"containers": [{"name": "engine", "image": "instant-db:1"}]},
            "status": {"phase": "Running"}});
        let compact: Compact<Pod> = serde_json::from_value(pod).unwrap();
        let pod = compact.object().unwrap();
        assert!(pod.spec.is_none());
        assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Running"));
    }

    #[test]
    fn a_malformed_object_fails_in_the_watch_as_a_typed_one_would() {
        let mut bad = statefulset();
        bad["spec"]["replicas"] = json!("one");
        assert!(serde_json::from_value::<Compact<StatefulSet>>(bad).is_err());
    }
}
