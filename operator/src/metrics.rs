//! Prometheus metrics of the operator.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

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
        registry.register(Box::new(leader.clone()))?;
        Ok(Self {
            registry,
            reconciles,
            duration,
            errors,
            writes,
            leader,
        })
    }

    /// Text exposition of every metric.
    pub fn render(&self) -> String {
        let encoder = prometheus::TextEncoder::new();
        encoder
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}
