//! Drift: fields the operator sets on a child that another writer changed since.
//!
//! The applied-hash annotation says whether the *desired* object changed; it cannot see an
//! edit of the live object (a `kubectl edit` of the replica count, a patched image). So a child
//! whose hash matches is also compared with what is wanted, field by field, over the fields
//! the operator sets, which are the fields its server-side apply owns. Everything else in the
//! live object is not ours and not compared: what the API server defaults (`clusterIP`, probe
//! timeouts, `imagePullPolicy`, `terminationMessagePath`...), what other managers add
//! (annotations of `kubectl rollout restart`, labels of other tools) and `status`.

use serde_json::Value;

/// The fields of `desired` (dotted paths; list items by their `name` where they have one)
/// whose value in `live` differs. Empty when nothing the operator sets was changed.
pub fn drifted_fields(desired: &Value, live: &Value) -> Vec<String> {
    let mut out = Vec::new();
    compare(desired, Some(live), "", &mut out);
    out
}

fn child_path(parent: &str, key: &str) -> String {
    let key = if key.contains(['.', '/']) {
        format!("[{key:?}]")
    } else if parent.is_empty() {
        key.to_string()
    } else {
        format!(".{key}")
    };
    format!("{parent}{key}")
}

fn item_path(parent: &str, i: usize, item: &Value) -> String {
    match item.get("name").and_then(Value::as_str) {
        Some(name) => format!("{parent}[name={name}]"),
        None => format!("{parent}[{i}]"),
    }
}

/// A value the API server leaves out of what it returns (Go's `omitempty`): an absent live
/// field equals it.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_zero),
    }
}

fn compare(desired: &Value, live: Option<&Value>, path: &str, out: &mut Vec<String>) {
    let Some(live) = live.filter(|l| !l.is_null()) else {
        if !is_zero(desired) {
            out.push(path.to_string());
        }
        return;
    };
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            for (k, dv) in d {
                compare(dv, l.get(k), &child_path(path, k), out);
            }
        }
        (Value::Array(d), Value::Array(l)) => {
            if d.len() != l.len() {
                out.push(path.to_string());
                return;
            }
            for (i, (dv, lv)) in d.iter().zip(l).enumerate() {
                compare(dv, Some(lv), &item_path(path, i, dv), out);
            }
        }
        (d, l) if scalar_equal(d, l) => {}
        _ => out.push(path.to_string()),
    }
}

/// Equal scalars, including quantities the API server writes in its canonical form
/// (`1000m` comes back as `1`, `0.5Gi` as `512Mi`).
fn scalar_equal(d: &Value, l: &Value) -> bool {
    if d == l {
        return true;
    }
    match (d, l) {
        (Value::String(a), Value::String(b)) => match (quantity(a), quantity(b)) {
            (Some(x), Some(y)) => (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()) * 4.0,
            _ => false,
        },
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => false,
    }
}

/// The value of a Kubernetes quantity (`500m`, `1Gi`, `2e3`, `1.5`), None for other strings.
fn quantity(s: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, f)| s.strip_suffix(suffix).map(|n| (n, *f)))
        .unwrap_or((s, 1.0));
    let plain = number
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '+' | '-' | 'e' | 'E'));
    let starts = number
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '.' || c == '+' || c == '-');
    if !plain || !starts {
        return None;
    }
    number.parse::<f64>().ok().map(|n| n * factor)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sts() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "docs", "labels": {"app.kubernetes.io/name": "instant-db", "tier": "a"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{
                "name": "engine", "image": "ghcr.io/instant-db/instant-db:0.1.0",
                "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                "readinessProbe": {"httpGet": {"path": "/health/ready", "port": "http"}},
                "ports": [{"name": "http", "containerPort": 8080}],
                "securityContext": {"readOnlyRootFilesystem": true, "privileged": false},
                "env": []
            }]}}}
        })
    }

    /// What an API server returns for [`sts`]: defaults, normalised quantities, other
    /// managers' fields and a status.
    fn served() -> Value {
        let mut live = sts();
        live["metadata"]["uid"] = json!("u");
        live["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "2"});
        live["spec"]["podManagementPolicy"] = json!("OrderedReady");
        let c = &mut live["spec"]["template"]["spec"]["containers"][0];
        c["imagePullPolicy"] = json!("IfNotPresent");
        c["terminationMessagePath"] = json!("/dev/termination-log");
        c["readinessProbe"]["timeoutSeconds"] = json!(1);
        c["readinessProbe"]["periodSeconds"] = json!(10);
        c["ports"][0]["protocol"] = json!("TCP");
        c["resources"]["requests"]["memory"] = json!("1024Mi");
        c["securityContext"]
            .as_object_mut()
            .unwrap()
            .remove("privileged");
        c.as_object_mut().unwrap().remove("env");
        live["status"] = json!({"replicas": 1, "readyReplicas": 1});
        live
    }

    #[test]
    fn defaults_other_managers_fields_and_status_are_not_drift() {
        assert_eq!(drifted_fields(&sts(), &served()), Vec::<String>::new());
        let svc = json!({"spec": {"ports": [{"name": "http", "port": 8080, "targetPort": "http"}],
                                  "selector": {"app": "a"}}});
        let live = json!({"spec": {"clusterIP": "10.96.0.12", "clusterIPs": ["10.96.0.12"],
            "type": "ClusterIP", "sessionAffinity": "None",
            "ports": [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}],
            "selector": {"app": "a"}}});
        assert_eq!(drifted_fields(&svc, &live), Vec::<String>::new());
    }

    #[test]
    fn an_edited_replica_count_is_drift() {
        let mut live = served();
        live["spec"]["replicas"] = json!(3);
        assert_eq!(drifted_fields(&sts(), &live), ["spec.replicas"]);
    }

    #[test]
    fn an_edited_container_image_is_drift() {
        let mut live = served();
        live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil:latest");
        assert_eq!(
            drifted_fields(&sts(), &live),
            ["spec.template.spec.containers[name=engine].image"]
        );
    }

    #[test]
    fn an_edited_service_port_is_drift() {
        let svc =
            json!({"spec": {"ports": [{"name": "http", "port": 8080, "targetPort": "http"}]}});
        let live = json!({"spec": {"clusterIP": "10.96.0.12",
            "ports": [{"name": "http", "port": 9090, "targetPort": "http", "protocol": "TCP"}]}});
        assert_eq!(drifted_fields(&svc, &live), ["spec.ports[name=http].port"]);
    }

    #[test]
    fn a_removed_label_or_container_is_drift() {
        let mut live = served();
        live["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app.kubernetes.io/name");
        assert_eq!(
            drifted_fields(&sts(), &live),
            ["metadata.labels[\"app.kubernetes.io/name\"]"]
        );
        let mut live = served();
        live["spec"]["template"]["spec"]["containers"] = json!([]);
        assert_eq!(
            drifted_fields(&sts(), &live),
            ["spec.template.spec.containers"]
        );
    }

    #[test]
    fn quantities_compare_by_value() {
        assert_eq!(quantity("500m"), Some(0.5));
        assert_eq!(quantity("1Gi"), quantity("1024Mi"));
        assert_eq!(quantity("2e3"), Some(2000.0));
        assert_eq!(quantity("http"), None);
        assert_eq!(quantity("engine"), None);
        assert_eq!(quantity("ghcr.io/x:1"), None);
        assert!(scalar_equal(&json!("1000m"), &json!("1")));
        assert!(!scalar_equal(&json!("500m"), &json!("1")));
    }
}
