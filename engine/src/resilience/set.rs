//! The set of breakers of an engine, one per dependency (see the module doc of `resilience`).

use std::fmt;
use std::sync::{Arc, Mutex};

use super::breaker::{BreakerConfig, BreakerStatus, CircuitBreaker, StateHook};

/// One breaker per dependency, created on first use with a shared config and
/// hook (e.g. `Metrics::breaker_hook`). Cheap to clone.
#[derive(Clone, Default)]
pub struct Breakers {
    config: BreakerConfig,
    /// Configurations of named breakers that differ from `config`.
    per_name: Arc<std::collections::BTreeMap<String, BreakerConfig>>,
    hook: Option<StateHook>,
    map: Arc<Mutex<std::collections::BTreeMap<String, CircuitBreaker>>>,
}

impl fmt::Debug for Breakers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.statuses()).finish()
    }
}

impl Breakers {
    /// An empty set; breakers get `config` and `hook`.
    pub fn new(config: BreakerConfig, hook: Option<StateHook>) -> Self {
        Self {
            config,
            per_name: Arc::default(),
            hook,
            map: Arc::default(),
        }
    }

    /// Breakers named in `per_name` get that configuration, the others `config`.
    pub fn with_configs(
        config: BreakerConfig,
        per_name: std::collections::BTreeMap<String, BreakerConfig>,
        hook: Option<StateHook>,
    ) -> Self {
        Self {
            per_name: Arc::new(per_name),
            ..Self::new(config, hook)
        }
    }

    /// The configuration a breaker named `dependency` gets.
    pub fn config_for(&self, dependency: &str) -> BreakerConfig {
        self.per_name
            .get(dependency)
            .copied()
            .unwrap_or(self.config)
    }

    /// The breaker for `dependency` (created closed on first use).
    pub fn get(&self, dependency: &str) -> CircuitBreaker {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(dependency.to_string())
            .or_insert_with(|| {
                let b = CircuitBreaker::new(dependency, self.config_for(dependency));
                match &self.hook {
                    Some(h) => b.with_hook(h.clone()),
                    None => b,
                }
            })
            .clone()
    }

    /// Register an existing breaker (replacing one of the same name).
    pub fn insert(&self, breaker: CircuitBreaker) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(breaker.name().to_string(), breaker);
    }

    /// Status of every breaker, sorted by name (for `/health/detailed`).
    pub fn statuses(&self) -> Vec<BreakerStatus> {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.values().map(CircuitBreaker::status).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::resilience::BreakerState;

    #[test]
    fn breaker_set_reports_statuses() {
        let set = Breakers::new(BreakerConfig::default(), None);
        let s3 = set.get("s3");
        set.get("embedding");
        for _ in 0..5 {
            s3.record_failure();
        }
        // the same breaker is returned for the same name
        assert_eq!(set.get("s3").state(), BreakerState::Open);
        let st = set.statuses();
        assert_eq!(st.len(), 2);
        assert_eq!(st[0].dependency, "embedding");
        assert_eq!(st[0].state, BreakerState::Closed);
        assert_eq!(st[1].state, BreakerState::Open);
        assert_eq!(st[1].consecutive_failures, 5);
        assert!(st[1].retry_in_ms.unwrap() <= 30_000);
        let json = serde_json::to_value(&st[1]).unwrap();
        assert_eq!(json["state"], "open");
    }

    #[test]
    fn named_breakers_take_their_own_configuration() {
        let mut per_name = std::collections::BTreeMap::new();
        per_name.insert(
            "object_storage".to_string(),
            BreakerConfig {
                failure_threshold: 2,
                ..BreakerConfig::default()
            },
        );
        let set = Breakers::with_configs(BreakerConfig::default(), per_name, None);
        let s3 = set.get("object_storage");
        assert_eq!(s3.config().failure_threshold, 2);
        assert_eq!(set.get("embedding").config(), BreakerConfig::default());
        s3.record_failure();
        s3.record_failure();
        assert_eq!(s3.state(), BreakerState::Open);
    }
}
