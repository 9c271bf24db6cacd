//! What the fake learns from a request: the log entry, the RBAC permission it needs, whether
//! it is a watch, and which stored objects a list returns.

use serde_json::Value;

/// One request seen by the fake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// HTTP method.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// A GET with `watch=true` (or `1`) in its query: a watch, not a list.
    pub watch: bool,
}

impl Logged {
    /// True for anything but GET.
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }

    /// What RBAC has to grant for this request to pass a real API server (the chart's
    /// ClusterRole and Roles are checked against these), or None for a path that is not a
    /// resource path (`/version`, discovery).
    pub fn permission(&self) -> Option<Permission> {
        let segments: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let (group, rest) = match segments.as_slice() {
            ["api", _version, rest @ ..] => ("", rest),
            ["apis", group, _version, rest @ ..] => (*group, rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            _ => (None, rest),
        };
        let (resource, name) = match rest {
            [resource] => (resource.to_string(), None),
            [resource, name] => (resource.to_string(), Some(name.to_string())),
            [resource, name, sub] => (format!("{resource}/{sub}"), Some(name.to_string())),
            _ => return None,
        };
        let verb = match (self.method.as_str(), name.is_some()) {
            ("GET", true) => "get",
            ("GET", false) if self.watch => "watch",
            ("GET", false) => "list",
            ("POST", _) => "create",
            ("PATCH", _) => "patch",
            ("PUT", _) => "update",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            _ => return None,
        };
        Some(Permission {
            group: group.to_string(),
            resource,
            verb: verb.to_string(),
            namespace,
            name,
        })
    }
}

/// One RBAC permission a request needs: `verb` on `resource` (`name/sub` resources as
/// `resource/sub`) of API `group` (`""` for the core group), in `namespace` (None: cluster-scoped
/// or all namespaces), on the object `name` when the request names one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    /// API group, `""` for the core group.
    pub group: String,
    /// Resource, with `/subresource` when there is one.
    pub resource: String,
    /// RBAC verb: get, list, watch, create, patch, update, delete, deletecollection.
    pub verb: String,
    /// Namespace of the request, None for cluster-scoped and all-namespace requests.
    pub namespace: Option<String>,
    /// Object name, None for collection requests.
    pub name: Option<String>,
}

/// Whether the object at `object` is an item of the list at `list`: stored directly below it
/// (`/api/v1/namespaces/ns/secrets` lists `.../secrets/a`), or, for a list of a namespaced resource
/// across all namespaces (`/api/v1/secrets`), stored below that resource in any namespace.
pub(super) fn in_list(list: &str, object: &str) -> bool {
    if let Some(name) = object.strip_prefix(list).and_then(|r| r.strip_prefix('/')) {
        return !name.is_empty() && !name.contains('/');
    }
    let Some((base, resource)) = list.rsplit_once('/') else {
        return false;
    };
    let is_group_version = matches!(
        base.trim_start_matches('/')
            .split('/')
            .collect::<Vec<_>>()
            .as_slice(),
        ["api", _] | ["apis", _, _]
    );
    let Some(rest) = object
        .strip_prefix(base)
        .and_then(|r| r.strip_prefix("/namespaces/"))
    else {
        return false;
    };
    is_group_version
        && matches!(rest.split('/').collect::<Vec<_>>().as_slice(),
                    [ns, r, name] if !ns.is_empty() && *r == resource && !name.is_empty())
}

/// Whether `obj` matches the request's `labelSelector` (equality, inequality and existence
/// terms, comma-separated: what the operator's watches and lists send). No selector matches all.
pub(super) fn selected(query: &str, obj: &Value) -> bool {
    let Some(selector) = reqwest::Url::parse(&format!("http://fake/?{query}"))
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "labelSelector")
                .map(|(_, v)| v.into_owned())
        })
    else {
        return true;
    };
    let label = |k: &str| {
        obj.pointer("/metadata/labels")
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
    };
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            label(k.trim()) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once('=') {
            label(k.trim()) == Some(v.trim_start_matches('=').trim())
        } else if let Some(k) = term.strip_prefix('!') {
            label(k.trim()).is_none()
        } else {
            label(term.trim()).is_some()
        }
    })
}

pub(super) fn is_watch(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn permission(method: &str, path: &str, watch: bool) -> Option<(String, String, String)> {
        let logged = Logged {
            method: method.into(),
            path: path.into(),
            watch,
        };
        logged.permission().map(|p| {
            let ns = p.namespace.unwrap_or_default();
            (format!("{}/{}", p.group, p.resource), p.verb, ns)
        })
    }

    fn expect(group_resource: &str, verb: &str, ns: &str) -> Option<(String, String, String)> {
        Some((group_resource.into(), verb.into(), ns.into()))
    }

    #[test]
    fn requests_map_to_the_rbac_verb_resource_and_namespace_they_need() {
        assert_eq!(
            permission("GET", "/api/v1/namespaces/search/secrets/docs-admin", false),
            expect("/secrets", "get", "search")
        );
        assert_eq!(
            permission("GET", "/apis/apps/v1/namespaces/search/statefulsets", false),
            expect("apps/statefulsets", "list", "search")
        );
        assert_eq!(
            permission("GET", "/apis/instantdb.io/v1alpha1/instantdbs", true),
            expect("instantdb.io/instantdbs", "watch", "")
        );
        assert_eq!(
            permission(
                "PATCH",
                "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbs/docs/status",
                false
            ),
            expect("instantdb.io/instantdbs/status", "patch", "search")
        );
        assert_eq!(
            permission(
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/ops/leases/l",
                false
            ),
            expect("coordination.k8s.io/leases", "update", "ops")
        );
        assert_eq!(
            permission(
                "DELETE",
                "/apis/policy/v1/namespaces/s/poddisruptionbudgets/d",
                false
            ),
            expect("policy/poddisruptionbudgets", "delete", "s")
        );
        assert_eq!(
            permission("POST", "/apis/events.k8s.io/v1/namespaces/s/events", false),
            expect("events.k8s.io/events", "create", "s")
        );
        // a Namespace object itself is cluster-scoped
        assert_eq!(
            permission("GET", "/api/v1/namespaces/search", false),
            expect("/namespaces", "get", "")
        );
        assert_eq!(permission("GET", "/version", false), None);
    }

    #[test]
    fn a_list_holds_the_objects_directly_below_it_or_of_its_resource_in_every_namespace() {
        let secret = "/api/v1/namespaces/search/secrets/docs-admin";
        assert!(in_list("/api/v1/namespaces/search/secrets", secret));
        assert!(in_list("/api/v1/secrets", secret));
        assert!(!in_list("/api/v1/namespaces/other/secrets", secret));
        assert!(!in_list("/api/v1/configmaps", secret));
        assert!(!in_list("/api/v1/namespaces/search", secret));
        let db = "/apis/instantdb.io/v1alpha1/namespaces/search/instantdbs/docs";
        assert!(in_list("/apis/instantdb.io/v1alpha1/instantdbs", db));
        assert!(!in_list(
            "/apis/instantdb.io/v1alpha1/instantdbs",
            &format!("{db}/status")
        ));
        assert!(!in_list("/apis/apps/v1/instantdbs", db));
        let crd = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x";
        assert!(in_list(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd
        ));
    }

    #[test]
    fn lists_filter_by_label_selector_terms() {
        let obj = json!({"metadata": {"labels": {"instantdb.io/policy": "daily", "tier": "a"}}});
        let q = |s: &str| {
            format!(
                "labelSelector={}",
                s.replace('/', "%2F").replace('=', "%3D")
            )
        };
        assert!(selected("", &obj));
        assert!(selected(&q("instantdb.io/policy=daily"), &obj));
        assert!(selected(&q("instantdb.io/policy==daily,tier"), &obj));
        assert!(!selected(&q("instantdb.io/policy=weekly"), &obj));
        assert!(!selected(&q("tier!=a"), &obj));
        assert!(selected(&q("!missing"), &obj));
        assert!(!selected(&q("missing"), &obj));
        assert!(!selected(&q("tier"), &json!({"metadata": {}})));
    }

    #[test]
    fn only_a_watch_query_makes_a_watch() {
        assert!(is_watch(Some(
            "labelSelector=a&watch=true&timeoutSeconds=290"
        )));
        assert!(is_watch(Some("watch=1")));
        assert!(!is_watch(Some("watch=false")));
        assert!(!is_watch(Some("resourceVersion=0")));
        assert!(!is_watch(None));
    }
}
