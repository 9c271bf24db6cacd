//! What is wrong with the engine, from what the kubelet reports (pod, PVC) and what the engine
//! itself reports (`/health/detailed`): a pure function, so every cause is unit-tested.
//!
//! The engine's health is read by pod IP whenever the pod runs, ready or not: an engine whose
//! integrity check failed turns itself unready, and that is exactly when its report matters.

use k8s_openapi::api::core::v1::{ContainerStatus, PersistentVolumeClaim, Pod, PodCondition};

use crate::engine_client::{DetailedHealth, HealthStatus};

/// Reasons of the causes (CamelCase, stable: documented in docs/operator.md).
pub mod causes {
    /// The engine container keeps exiting and the kubelet backs off restarting it.
    pub const CRASH_LOOP: &str = "CrashLoopBackOff";
    /// The kubelet cannot pull the engine image (ImagePullBackOff, ErrImagePull...).
    pub const IMAGE_PULL: &str = "ImagePullBackOff";
    /// The scheduler finds no node for the pod (PodScheduled=False).
    pub const UNSCHEDULABLE: &str = "Unschedulable";
    /// The data PersistentVolumeClaim is not bound.
    pub const VOLUME_PENDING: &str = "VolumePending";
    /// The pod runs but does not pass its readiness probe.
    pub const PROBE_FAILING: &str = "ProbeFailing";
    /// The engine's integrity check failed (the engine is unready until a restore or repair).
    pub const INTEGRITY_FAILED: &str = "IntegrityFailed";
    /// The embedding model did not load: keyword search only.
    pub const MODEL_NOT_LOADED: &str = "ModelNotLoaded";
    /// A Secret the pod needs does not exist (CreateContainerConfigError).
    pub const SECRET_MISSING: &str = "SecretMissing";
    /// The container cannot be created from its configuration (CreateContainerConfigError).
    pub const CONTAINER_CONFIG: &str = "ContainerConfigError";
    /// `/health/detailed` could not be read although the pod is ready.
    pub const HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";
    /// The engine reports itself unhealthy.
    pub const ENGINE_UNHEALTHY: &str = "EngineUnhealthy";
    /// The engine reports degraded components.
    pub const ENGINE_DEGRADED: &str = "EngineDegraded";
}

/// A problem of the engine: the reason, the message (from the pod or the engine, with what to
/// do), and whether only a user change can fix it (kstatus `Stalled`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// One of [`causes`].
    pub reason: &'static str,
    /// What the kubelet or the engine said, and what to do.
    pub message: String,
    /// True when waiting does not help (a missing Secret, failed integrity).
    pub needs_user: bool,
}

/// The engine as status sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineView {
    /// The pod is ready and the engine's own health was read and says it can serve.
    pub ready: bool,
    /// What is wrong; None when nothing is (ready, or still starting normally).
    pub problem: Option<Problem>,
}

fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn engine_container(pod: &Pod) -> Option<&ContainerStatus> {
    let all = pod.status.as_ref()?.container_statuses.as_ref()?;
    all.iter()
        .find(|c| c.name == crate::builders::ENGINE_CONTAINER)
        .or_else(|| all.first())
}

/// Whether the pod runs and has an IP: then its health endpoints can be asked, ready or not.
pub fn pod_ip(pod: Option<&Pod>) -> Option<String> {
    let status = pod?.status.as_ref()?;
    (status.phase.as_deref() == Some("Running"))
        .then(|| status.pod_ip.clone())
        .flatten()
        .filter(|ip| !ip.is_empty())
}

fn suffix(message: Option<&str>) -> String {
    message
        .filter(|m| !m.is_empty())
        .map(|m| format!(": {m}"))
        .unwrap_or_default()
}

fn problem(reason: &'static str, message: String, needs_user: bool) -> Option<Problem> {
    Some(Problem {
        reason,
        message,
        needs_user,
    })
}

/// `view` with a problem of the TLS Secret (`spec.tls.secretName` missing or incomplete) put
/// first: until it is fixed the pod cannot start (the kubelet waits for the Secret volume) or
/// the operator cannot verify the engine, and only the user can fix it (`Stalled`). A later
/// reconcile (the regular resync) sees the Secret once it exists, e.g. once cert-manager has
/// issued the certificate.
pub fn with_tls_problem(view: EngineView, tls_problem: Option<String>) -> EngineView {
    match tls_problem {
        Some(message) => EngineView {
            ready: false,
            problem: problem(causes::SECRET_MISSING, message, true),
        },
        None => view,
    }
}

/// Reduces pod, PVC and engine health to readiness and the first cause found, in the order a
/// pod goes through them: volume, scheduling, image, start, integrity, probes, health.
pub fn diagnose(
    pod_name: &str,
    pod: Option<&Pod>,
    pvc: Option<&PersistentVolumeClaim>,
    health: Option<&Result<DetailedHealth, String>>,
) -> EngineView {
    let pod_ready = pod
        .and_then(|p| condition(p, "Ready"))
        .is_some_and(|c| c.status == "True");
    let engine = match health {
        Some(Ok(h)) => Some(h),
        _ => None,
    };
    let engine_ready =
        engine.is_some_and(|h| h.ready != Some(false) && h.status != HealthStatus::Unhealthy);
    EngineView {
        ready: pod_ready && engine_ready,
        problem: find_problem(pod_name, pod, pvc, health, pod_ready, engine_ready),
    }
}

fn find_problem(
    pod_name: &str,
    pod: Option<&Pod>,
    pvc: Option<&PersistentVolumeClaim>,
    health: Option<&Result<DetailedHealth, String>>,
    pod_ready: bool,
    engine_ready: bool,
) -> Option<Problem> {
    if let Some(pvc) = pvc
        && pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending")
    {
        let name = pvc.metadata.name.as_deref().unwrap_or_default();
        let scheduling = pod
            .and_then(|p| condition(p, "PodScheduled"))
            .and_then(|c| c.message.as_deref());
        return problem(
            causes::VOLUME_PENDING,
            format!(
                "PersistentVolumeClaim {name} is Pending{}; check that spec.storage.storageClassName names a class that can provision it (kubectl describe pvc {name})",
                suffix(scheduling)
            ),
            false,
        );
    }
    let pod = pod?;
    if let Some(c) = condition(pod, "PodScheduled")
        && c.status == "False"
    {
        return problem(
            causes::UNSCHEDULABLE,
            format!(
                "the engine pod cannot be scheduled{}; free or add nodes that fit its resources, nodeSelector, tolerations and affinity",
                suffix(c.message.as_deref())
            ),
            false,
        );
    }
    let container = engine_container(pod);
    let waiting = container
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref());
    let waiting_reason = waiting
        .and_then(|w| w.reason.as_deref())
        .unwrap_or_default();
    let waiting_message = waiting.and_then(|w| w.message.as_deref());
    match waiting_reason {
        "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" | "ErrImageNeverPull" => {
            let image = container.map(|c| c.image.as_str()).unwrap_or_default();
            return problem(
                causes::IMAGE_PULL,
                format!(
                    "the kubelet cannot pull the engine image {image} ({waiting_reason}){}; check spec.image, the registry and its pull secret",
                    suffix(waiting_message)
                ),
                false,
            );
        }
        "CrashLoopBackOff" => {
            let c = container;
            let restarts = c.map_or(0, |c| c.restart_count);
            let last = c
                .and_then(|c| c.last_state.as_ref())
                .and_then(|s| s.terminated.as_ref())
                .map(|t| {
                    format!(
                        ", last exit code {}{}{}",
                        t.exit_code,
                        t.reason
                            .as_deref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default(),
                        suffix(t.message.as_deref())
                    )
                })
                .unwrap_or_default();
            return problem(
                causes::CRASH_LOOP,
                format!(
                    "the engine keeps exiting ({restarts} restarts{last}){}; read why with kubectl logs {pod_name} --previous",
                    suffix(waiting_message)
                ),
                false,
            );
        }
        "CreateContainerConfigError" => {
            let msg = waiting_message.unwrap_or_default();
            let secret = msg.to_ascii_lowercase().contains("secret");
            return problem(
                if secret {
                    causes::SECRET_MISSING
                } else {
                    causes::CONTAINER_CONFIG
                },
                format!(
                    "the engine container cannot be created: {msg}; create the missing object or fix the reference in the spec"
                ),
                true,
            );
        }
        _ => {}
    }
    if let Some(Ok(h)) = health
        && let Some(i) = &h.last_integrity_check
        && i.ok == Some(false)
    {
        return problem(
            causes::INTEGRITY_FAILED,
            format!(
                "the engine's integrity check failed{}; restore a backup (an InstantDbRestore with spec.instance, or spec.recovery.autoRestore: true)",
                suffix(i.message.as_deref())
            ),
            true,
        );
    }
    let engine_reasons = match health {
        Some(Ok(h)) if !h.reasons.is_empty() => h.reasons.join("; "),
        _ => String::new(),
    };
    if !engine_ready && let Some(Ok(_)) = health {
        return problem(
            causes::PROBE_FAILING,
            format!(
                "the engine reports itself not ready{}; see kubectl logs {pod_name}",
                suffix(Some(&engine_reasons))
            ),
            false,
        );
    }
    if !pod_ready {
        // Started (startup probe passed) but not ready: the readiness probe fails. Not started:
        // still within the startup probe's allowance, not a problem yet.
        let started = container.and_then(|c| c.started).unwrap_or(false);
        if !started {
            return None;
        }
        let why = condition(pod, "Ready").and_then(|c| c.message.clone());
        let engine = match health {
            Some(Err(e)) => format!("; /health/detailed: {e}"),
            _ => String::new(),
        };
        return problem(
            causes::PROBE_FAILING,
            format!(
                "the engine's readiness probe fails{}{engine}; see kubectl describe pod {pod_name}",
                suffix(why.as_deref())
            ),
            false,
        );
    }
    let h = match health {
        Some(Ok(h)) => h,
        Some(Err(e)) => {
            return problem(
                causes::HEALTH_CHECK_FAILED,
                format!(
                    "cannot read the engine's /health/detailed: {e}; allow operator → pod traffic on port 8080 and check the <name>-admin Secret"
                ),
                false,
            );
        }
        None => return None,
    };
    let model_down = h
        .components
        .get("embedding_model")
        .is_some_and(|s| matches!(s, HealthStatus::Degraded | HealthStatus::Unhealthy));
    if model_down {
        let why = h
            .reasons
            .iter()
            .find(|r| r.contains("embedding model"))
            .cloned()
            .unwrap_or_else(|| "embedding model unavailable, keyword search only".into());
        return problem(
            causes::MODEL_NOT_LOADED,
            format!("{why}; check spec.embedding.modelSource and the engine logs"),
            false,
        );
    }
    let bad = h.unhealthy_components();
    match h.status {
        HealthStatus::Healthy | HealthStatus::Unknown if bad.is_empty() => None,
        HealthStatus::Unhealthy => problem(
            causes::ENGINE_UNHEALTHY,
            format!("the engine reports itself unhealthy: {}", bad.join(", ")),
            false,
        ),
        // Component names only: the engine's reasons carry counts that move with ingest, and a
        // serving instance must not rewrite status on every resync (they are in
        // /health/detailed).
        _ => problem(
            causes::ENGINE_DEGRADED,
            format!(
                "the engine reports degraded components: {}; see /health/detailed",
                bad.join(", ")
            ),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::engine_client::IntegrityCheck;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "docs-0"}, "status": status})).unwrap()
    }

    fn running(ready: bool, started: bool) -> Pod {
        pod(json!({"phase": "Running", "podIP": "10.0.0.7",
            "conditions": [{"type": "PodScheduled", "status": "True"},
                           {"type": "Ready", "status": if ready {"True"} else {"False"},
                            "message": "containers with unready status: [engine]"}],
            "containerStatuses": [{"name": "engine", "ready": ready, "started": started,
                "restartCount": 0, "image": "img:1", "imageID": "",
                "state": {"running": {}}}]}))
    }

    fn waiting(reason: &str, message: &str) -> Pod {
        pod(json!({"phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"},
                           {"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "engine", "ready": false, "restartCount": 4,
                "image": "img:1", "imageID": "",
                "state": {"waiting": {"reason": reason, "message": message}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}))
    }

    fn healthy() -> DetailedHealth {
        DetailedHealth {
            status: HealthStatus::Healthy,
            ready: Some(true),
            ..Default::default()
        }
    }

    fn cause(v: &EngineView) -> (&'static str, String) {
        let p = v.problem.as_ref().unwrap();
        (p.reason, p.message.clone())
    }

    #[test]
    fn ready_only_when_the_pod_is_ready_and_the_engine_health_is_read_and_ready() {
        let ok = Ok(healthy());
        let v = diagnose("docs-0", Some(&running(true, true)), None, Some(&ok));
        assert_eq!(
            v,
            EngineView {
                ready: true,
                problem: None
            }
        );
        let v = diagnose("docs-0", Some(&running(true, true)), None, None);
        assert!(!v.ready, "health not read");
        let err = Err("connection refused".to_string());
        let v = diagnose("docs-0", Some(&running(true, true)), None, Some(&err));
        assert!(!v.ready);
        let (reason, message) = cause(&v);
        assert_eq!(reason, causes::HEALTH_CHECK_FAILED);
        assert!(message.contains("connection refused"), "{message}");
    }

    #[test]
    fn a_starting_pod_is_not_ready_and_not_a_problem() {
        let v = diagnose("docs-0", Some(&running(false, false)), None, None);
        assert_eq!(v, EngineView::default());
        assert_eq!(diagnose("docs-0", None, None, None), EngineView::default());
    }

    #[test]
    fn crash_loop_names_the_restarts_and_the_last_exit() {
        let p = waiting(
            "CrashLoopBackOff",
            "back-off 40s restarting failed container",
        );
        let v = diagnose("docs-0", Some(&p), None, None);
        let (reason, m) = cause(&v);
        assert_eq!(reason, causes::CRASH_LOOP);
        assert!(
            m.contains("4 restarts, last exit code 137 (OOMKilled)"),
            "{m}"
        );
        assert!(m.contains("back-off 40s"), "{m}");
        assert!(m.contains("kubectl logs docs-0 --previous"), "{m}");
    }

    #[test]
    fn image_pull_failures_are_image_pull_back_off() {
        for r in ["ImagePullBackOff", "ErrImagePull"] {
            let p = waiting(r, "manifest unknown");
            let (reason, m) = cause(&diagnose("docs-0", Some(&p), None, None));
            assert_eq!(reason, causes::IMAGE_PULL);
            assert!(m.contains("img:1") && m.contains("manifest unknown"), "{m}");
        }
    }

    #[test]
    fn an_unscheduled_pod_is_unschedulable_with_the_scheduler_message() {
        let p = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient memory."}]}),
        );
        let (reason, m) = cause(&diagnose("docs-0", Some(&p), None, None));
        assert_eq!(reason, causes::UNSCHEDULABLE);
        assert!(m.contains("3 Insufficient memory"), "{m}");
    }

    #[test]
    fn a_pending_claim_is_volume_pending_before_anything_else() {
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "data-docs-0"}, "status": {"phase": "Pending"}}))
        .unwrap();
        let p = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "message": "pod has unbound immediate PersistentVolumeClaims"}]}),
        );
        let (reason, m) = cause(&diagnose("docs-0", Some(&p), Some(&pvc), None));
        assert_eq!(reason, causes::VOLUME_PENDING);
        assert!(m.contains("data-docs-0 is Pending: pod has unbound"), "{m}");
        let (reason, _) = cause(&diagnose("docs-0", None, Some(&pvc), None));
        assert_eq!(reason, causes::VOLUME_PENDING);
    }

    #[test]
    fn a_missing_secret_needs_the_user() {
        let p = waiting(
            "CreateContainerConfigError",
            "secret \"qdrant-key\" not found",
        );
        let v = diagnose("docs-0", Some(&p), None, None);
        let pr = v.problem.unwrap();
        assert_eq!(pr.reason, causes::SECRET_MISSING);
        assert!(pr.needs_user);
        assert!(pr.message.contains("qdrant-key"));
    }

    #[test]
    fn a_failed_integrity_check_is_seen_on_an_unready_pod() {
        let h = Ok(DetailedHealth {
            status: HealthStatus::Unhealthy,
            ready: Some(false),
            last_integrity_check: Some(IntegrityCheck {
                at: None,
                ok: Some(false),
                message: Some("fts: 20 rows missing".into()),
            }),
            ..Default::default()
        });
        let v = diagnose("docs-0", Some(&running(false, true)), None, Some(&h));
        assert!(!v.ready);
        let (reason, m) = cause(&v);
        assert_eq!(reason, causes::INTEGRITY_FAILED);
        assert!(m.contains("fts: 20 rows missing"), "{m}");
    }

    #[test]
    fn a_started_pod_that_is_not_ready_has_a_failing_probe_with_the_engine_reasons() {
        let h = Ok(DetailedHealth {
            status: HealthStatus::Unhealthy,
            ready: Some(false),
            reasons: vec!["database: disk I/O error".into()],
            ..Default::default()
        });
        let (reason, m) = cause(&diagnose(
            "docs-0",
            Some(&running(false, true)),
            None,
            Some(&h),
        ));
        assert_eq!(reason, causes::PROBE_FAILING);
        assert!(m.contains("disk I/O error"), "{m}");
        // health unreadable: the pod's own message
        let e = Err("timeout".to_string());
        let (reason, m) = cause(&diagnose(
            "docs-0",
            Some(&running(false, true)),
            None,
            Some(&e),
        ));
        assert_eq!(reason, causes::PROBE_FAILING);
        assert!(
            m.contains("unready status: [engine]") && m.contains("timeout"),
            "{m}"
        );
    }

    #[test]
    fn a_missing_model_is_model_not_loaded_while_keyword_search_serves() {
        let mut h = healthy();
        h.status = HealthStatus::Degraded;
        h.components
            .insert("embedding_model".into(), HealthStatus::Degraded);
        h.reasons = vec!["embedding model unavailable, keyword search only: no model.onnx".into()];
        let v = diagnose("docs-0", Some(&running(true, true)), None, Some(&Ok(h)));
        assert!(v.ready, "keyword search still serves");
        let (reason, m) = cause(&v);
        assert_eq!(reason, causes::MODEL_NOT_LOADED);
        assert!(m.contains("no model.onnx"), "{m}");
    }

    #[test]
    fn a_degraded_engine_message_does_not_move_with_its_counts() {
        let degraded = |n: usize| {
            let mut h = healthy();
            h.status = HealthStatus::Degraded;
            h.components
                .insert("vector_index".into(), HealthStatus::Degraded);
            h.reasons = vec![format!("vector index: the index holds {n} vectors")];
            Ok(h)
        };
        let a = diagnose(
            "docs-0",
            Some(&running(true, true)),
            None,
            Some(&degraded(5)),
        );
        let b = diagnose(
            "docs-0",
            Some(&running(true, true)),
            None,
            Some(&degraded(9)),
        );
        assert_eq!(cause(&a).0, causes::ENGINE_DEGRADED);
        assert!(cause(&a).1.contains("vector_index=degraded"));
        assert_eq!(a, b, "no status write while ingest moves the counts");
    }

    #[test]
    fn health_is_asked_of_a_running_pod_with_an_ip_ready_or_not() {
        assert_eq!(pod_ip(Some(&running(false, true))), Some("10.0.0.7".into()));
        assert_eq!(pod_ip(Some(&waiting("CrashLoopBackOff", ""))), None);
        assert_eq!(pod_ip(None), None);
    }
}
