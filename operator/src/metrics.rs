//! Prometheus metrics of the operator.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Label values of one `instant_db_operator_instance_condition` series, after namespace and name.
type ConditionSeries = [String; 3];
/// The condition series set per (namespace, instance).
type InstanceSeries = Arc<Mutex<BTreeMap<(String, String), Vec<ConditionSeries>>>>;

/// The operator's metrics, registered in their own registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Registry served at `/metrics`.
    pub registry: Registry,
    /// `instant_db_operator_reconciles_total{controller,result}`.
    pub reconciles: IntCounterVec,
    /// `instant_db_operator_reconcile_duration_seconds{controller}`.
    pub duration: HistogramVec,
    /// `instant_db_operator_reconcile_errors_total{controller,kind,reason}`.
    pub errors: IntCounterVec,
    /// `instant_db_operator_writes_total{controller,kind,verb}`: API writes made by reconciles.
    pub writes: IntCounterVec,
    /// `instant_db_operator_leader`: 1 while this replica holds the Lease.
    pub leader: IntGauge,
    /// `instant_db_operator_instance_condition{namespace,instantdb,type,status,reason}`: 1 for each
    /// condition an InstantDb's status holds now (the kube-state-metrics shape, so alerts can
    /// select `type="Ready",status="False"`). It is the operator that reports instance health,
    /// because an engine that is not ready leaves its Service and is no longer scraped.
    pub instance_condition: IntGaugeVec,
    /// `instant_db_operator_instance_last_backup_timestamp_seconds{namespace,instantdb}`: Unix time
    /// of the instance's newest completed backup (`status.lastBackup`).
    pub instance_last_backup: IntGaugeVec,
    /// The condition series currently set per (namespace, instance), to remove them when a
    /// condition changes or the instance goes away.
    instance_series: InstanceSeries,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "instant_db_operator_reconciles_total",
                "Reconciliations by controller and result",
            ),
            &["controller", "result"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "instant_db_operator_reconcile_duration_seconds",
                "Duration of reconciliations",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["controller"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "instant_db_operator_reconcile_errors_total",
                "Failed reconciliations by error kind and reason",
            ),
            &["controller", "kind", "reason"],
        )?;
        let writes = IntCounterVec::new(
            Opts::new(
                "instant_db_operator_writes_total",
                "Writes to the Kubernetes API made by reconciliations",
            ),
            &["controller", "kind", "verb"],
        )?;
        let leader = IntGauge::new(
            "instant_db_operator_leader",
            "1 while this replica is the leader",
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(writes.clone()))?;
        let instance_condition = IntGaugeVec::new(
            Opts::new(
                "instant_db_operator_instance_condition",
                "1 for each condition an InstantDb's status holds (type, status, reason)",
            ),
            &["namespace", "instantdb", "type", "status", "reason"],
        )?;
        let instance_last_backup = IntGaugeVec::new(
            Opts::new(
                "instant_db_operator_instance_last_backup_timestamp_seconds",
                "Unix time of the newest completed backup of an InstantDb",
            ),
            &["namespace", "instantdb"],
        )?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(instance_condition.clone()))?;
        registry.register(Box::new(instance_last_backup.clone()))?;
        Ok(Self {
            registry,
            reconciles,
            duration,
            errors,
            writes,
            leader,
            instance_condition,
            instance_last_backup,
            instance_series: Arc::default(),
        })
    }

    /// Publishes an InstantDb's conditions and last backup time, replacing what was published
    /// for it before.
    pub fn observe_instance(
        &self,
        namespace: &str,
        name: &str,
        conditions: &[Condition],
        last_backup: Option<&Time>,
    ) {
        let series: Vec<ConditionSeries> = conditions
            .iter()
            .map(|c| [c.type_.clone(), c.status.clone(), c.reason.clone()])
            .collect();
        let key = (namespace.to_string(), name.to_string());
        let mut current = self
            .instance_series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for old in current.get(&key).into_iter().flatten() {
            if !series.contains(old) {
                // Absent already is fine: nothing to remove.
                let _ = self
                    .instance_condition
                    .remove_label_values(&[namespace, name, &old[0], &old[1], &old[2]]);
            }
        }
        for s in &series {
            self.instance_condition
                .with_label_values(&[namespace, name, &s[0], &s[1], &s[2]])
                .set(1);
        }
        current.insert(key, series);
        match last_backup {
            Some(t) => self
                .instance_last_backup
                .with_label_values(&[namespace, name])
                .set(t.0.as_second()),
            None => {
                let _ = self
                    .instance_last_backup
                    .remove_label_values(&[namespace, name]);
            }
        }
    }

    /// Removes every series of a deleted InstantDb.
    pub fn forget_instance(&self, namespace: &str, name: &str) {
        self.observe_instance(namespace, name, &[], None);
        self.instance_series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&(namespace.to_string(), name.to_string()));
    }

    /// Text exposition of every metric.
    pub fn render(&self) -> String {
        let encoder = prometheus::TextEncoder::new();
        encoder
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn condition(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
            observed_generation: Some(1),
        }
    }

    #[test]
    fn instance_series_follow_the_status_and_go_with_the_instance() {
        let m = Metrics::new().unwrap();
        m.observe_instance(
            "ns",
            "docs",
            &[condition("Ready", "False", "CrashLoopBackOff")],
            Some(&Time(Timestamp::from_second(1_700_000_000).unwrap())),
        );
        let text = m.render();
        assert!(text.contains(r#"instant_db_operator_instance_condition{instantdb="docs",namespace="ns",reason="CrashLoopBackOff",status="False",type="Ready"} 1"#), "{text}");
        assert!(text.contains(r#"instant_db_operator_instance_last_backup_timestamp_seconds{instantdb="docs",namespace="ns"} 1700000000"#), "{text}");

        m.observe_instance(
            "ns",
            "docs",
            &[condition("Ready", "True", "EngineReady")],
            None,
        );
        let text = m.render();
        assert!(
            !text.contains("CrashLoopBackOff"),
            "old series stays: {text}"
        );
        assert!(text.contains(r#"reason="EngineReady",status="True",type="Ready"} 1"#));
        assert!(!text.contains("last_backup_timestamp_seconds{"), "{text}");

        m.forget_instance("ns", "docs");
        assert!(!m.render().contains("instantdb=\"docs\""));
    }
}
