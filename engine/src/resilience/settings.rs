//! The `resilience` section of the configuration: circuit breaker and retry settings per
//! dependency, each key optional (an unset key keeps the built-in default, so an empty section
//! behaves exactly as before).
//!
//! ```yaml
//! resilience:
//!   breakers:
//!     default: { failure_threshold: 5, open_secs: 30, success_threshold: 1 }
//!     object_storage: { failure_threshold: 3, success_threshold: 2 }
//!   retries:
//!     embedding: { strategy: linear, max_attempts: 4, delay_ms: 50, max_total_ms: 500 }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use backon::{BackoffBuilder, ConstantBuilder, ExponentialBuilder};
use serde::{Deserialize, Serialize};

use super::{BreakerConfig, RETRY_MAX_DELAY, RETRY_MIN_DELAY};
use crate::error::{Error, Result};

/// The embedding model's breaker and retries.
pub const EMBEDDING: &str = "embedding";
/// Backups, restores and archiving to object storage.
pub const OBJECT_STORAGE: &str = "object_storage";
/// Qdrant, when it is the vector store (`vector_store: qdrant`).
pub const QDRANT: &str = "qdrant";
/// The breaker settings every breaker starts from.
pub const DEFAULT: &str = "default";

const BREAKER_NAMES: &[&str] = &[DEFAULT, EMBEDDING, OBJECT_STORAGE, QDRANT];
/// Dependencies whose retries the configuration sets.
const RETRY_NAMES: &[&str] = &[EMBEDDING, OBJECT_STORAGE, QDRANT];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ResilienceConfig {
    /// Breaker settings by dependency (`default`, `embedding`, `object_storage`, `qdrant`); `default`
    /// applies to every breaker, a named entry on top of it.
    pub breakers: BTreeMap<String, BreakerSettings>,
    /// Retry settings by dependency (`embedding`, `object_storage`, `qdrant`).
    pub retries: BTreeMap<String, RetrySettings>,
}

/// Overrides of one breaker's [`BreakerConfig`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker (default 5).
    pub failure_threshold: Option<u32>,
    /// Seconds the breaker stays open before a probe is let through (default 30).
    pub open_secs: Option<f64>,
    /// Consecutive successful probes that close a half-open breaker (default 1).
    pub success_threshold: Option<u32>,
}

impl BreakerSettings {
    fn apply(&self, mut c: BreakerConfig) -> BreakerConfig {
        if let Some(n) = self.failure_threshold {
            c.failure_threshold = n;
        }
        if let Some(s) = self
            .open_secs
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
        {
            c.cool_down = s;
        }
        if let Some(n) = self.success_threshold {
            c.success_threshold = n;
        }
        c
    }
}

/// How the delay between two attempts grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryStrategy {
    /// The same delay every time (`delay_ms`), optionally jittered.
    Fixed,
    /// `delay_ms`, 2 × `delay_ms`, 3 × `delay_ms`... up to `max_delay_ms`.
    Linear,
    /// `delay_ms` doubling each time up to `max_delay_ms`, optionally jittered.
    Exponential,
}

/// Overrides of one dependency's retries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    pub strategy: Option<RetryStrategy>,
    /// Attempts in all, the first included (1: no retry).
    pub max_attempts: Option<usize>,
    /// First delay (and the step of `linear`, the delay of `fixed`).
    pub delay_ms: Option<u64>,
    /// Longest single delay.
    pub max_delay_ms: Option<u64>,
    /// Longest total of delays: no retry starts past it.
    pub max_total_ms: Option<u64>,
    /// Add up to one delay of randomness (fixed and exponential), so clients do not retry in step.
    pub jitter: Option<bool>,
}

/// Resolved retry settings of one dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySpec {
    pub strategy: RetryStrategy,
    pub max_attempts: usize,
    pub delay: Duration,
    pub max_delay: Duration,
    pub max_total: Duration,
    pub jitter: bool,
}

impl RetrySpec {
    /// The built-in retries of a dependency: embedding 3 attempts within 500 ms (an inference
    /// run that failed once usually works at once), Qdrant 4 within 2 s (a search waits on it),
    /// object storage 5 within 60 s; all exponential from 100 ms, jittered, no delay over 10 s.
    pub fn default_for(dependency: &str) -> RetrySpec {
        let (max_attempts, max_total) = match dependency {
            EMBEDDING => (3, Duration::from_millis(500)),
            QDRANT => (4, Duration::from_secs(2)),
            _ => (5, Duration::from_secs(60)),
        };
        RetrySpec {
            strategy: RetryStrategy::Exponential,
            max_attempts,
            delay: RETRY_MIN_DELAY,
            max_delay: RETRY_MAX_DELAY,
            max_total,
            jitter: true,
        }
    }

    fn with(mut self, s: &RetrySettings) -> RetrySpec {
        if let Some(v) = s.strategy {
            self.strategy = v;
        }
        if let Some(v) = s.max_attempts {
            self.max_attempts = v;
        }
        if let Some(v) = s.delay_ms {
            self.delay = Duration::from_millis(v);
        }
        if let Some(v) = s.max_delay_ms {
            self.max_delay = Duration::from_millis(v);
        }
        if let Some(v) = s.max_total_ms {
            self.max_total = Duration::from_millis(v);
        }
        if let Some(v) = s.jitter {
            self.jitter = v;
        }
        self
    }

    /// The backoff of these settings, built with `backon`'s builders (its constant and
    /// exponential ones; it has no linear one, so linear is its delays listed up front).
    pub fn policy(&self) -> RetryPolicy {
        let retries = self.max_attempts.saturating_sub(1);
        let max_delay = self.max_delay.min(self.max_total.max(self.delay));
        match self.strategy {
            RetryStrategy::Exponential => {
                let b = ExponentialBuilder::default()
                    .with_min_delay(self.delay)
                    .with_max_delay(max_delay)
                    .with_factor(2.0)
                    .with_max_times(retries)
                    .with_total_delay(Some(self.max_total));
                RetryPolicy::Exponential(if self.jitter { b.with_jitter() } else { b })
            }
            RetryStrategy::Fixed => {
                // ConstantBuilder has no total bound: fewer retries keep within it (a jittered
                // delay can be up to twice as long, so count those double).
                let per = if self.jitter {
                    self.delay.saturating_mul(2)
                } else {
                    self.delay
                };
                let fit = match per.as_nanos() {
                    0 => retries,
                    n => (self.max_total.as_nanos() / n).min(retries as u128) as usize,
                };
                let b = ConstantBuilder::default()
                    .with_delay(self.delay)
                    .with_max_times(fit);
                RetryPolicy::Fixed(if self.jitter { b.with_jitter() } else { b })
            }
            RetryStrategy::Linear => {
                let mut delays = Vec::with_capacity(retries);
                let mut total = Duration::ZERO;
                for i in 1..=retries as u32 {
                    let d = self.delay.saturating_mul(i).min(max_delay);
                    if total + d > self.max_total {
                        break;
                    }
                    total += d;
                    delays.push(d);
                }
                RetryPolicy::Linear(delays)
            }
        }
    }
}

/// A retry backoff of one of the [`RetryStrategy`]s, usable wherever `backon` takes a builder.
#[derive(Debug, Clone)]
pub enum RetryPolicy {
    Fixed(ConstantBuilder),
    Linear(Vec<Duration>),
    Exponential(ExponentialBuilder),
}

impl BackoffBuilder for RetryPolicy {
    type Backoff = Box<dyn backon::Backoff>;

    fn build(self) -> Self::Backoff {
        match self {
            RetryPolicy::Fixed(b) => Box::new(b.build()),
            RetryPolicy::Linear(d) => Box::new(d.into_iter()),
            RetryPolicy::Exponential(b) => Box::new(b.build()),
        }
    }
}

impl ResilienceConfig {
    /// The breaker configuration of `dependency`: built-in defaults, then `default`, then its
    /// own entry.
    pub fn breaker(&self, dependency: &str) -> BreakerConfig {
        let base = self
            .breakers
            .get(DEFAULT)
            .map_or_else(BreakerConfig::default, |s| {
                s.apply(BreakerConfig::default())
            });
        match self.breakers.get(dependency) {
            Some(s) if dependency != DEFAULT => s.apply(base),
            _ => base,
        }
    }

    /// The configurations of the named breakers (for [`super::Breakers::with_configs`]).
    pub fn named_breakers(&self) -> BTreeMap<String, BreakerConfig> {
        self.breakers
            .keys()
            .filter(|k| k.as_str() != DEFAULT)
            .map(|k| (k.clone(), self.breaker(k)))
            .collect()
    }

    /// The retry settings of `dependency`: its built-in defaults with its entry on top.
    pub fn retry(&self, dependency: &str) -> RetrySpec {
        let base = RetrySpec::default_for(dependency);
        match self.retries.get(dependency) {
            Some(s) => base.with(s),
            None => base,
        }
    }

    /// Refuses unknown dependency names (a typo would silently keep the default) and values
    /// that cannot work.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: String, msg: &str| Err(Error::Config(format!("key `{key}`: {msg}")));
        for (name, s) in &self.breakers {
            let key = format!("resilience.breakers.{name}");
            if !BREAKER_NAMES.contains(&name.as_str()) {
                return bad(key, &format!("unknown breaker; one of {BREAKER_NAMES:?}"));
            }
            if s.failure_threshold == Some(0) || s.success_threshold == Some(0) {
                return bad(key, "thresholds must be at least 1");
            }
            if s.open_secs
                .is_some_and(|v| Duration::try_from_secs_f64(v).is_err() || v <= 0.0)
            {
                return bad(key, "open_secs must be a positive number of seconds");
            }
        }
        for (name, s) in &self.retries {
            let key = format!("resilience.retries.{name}");
            if !RETRY_NAMES.contains(&name.as_str()) {
                return bad(key, &format!("unknown dependency; one of {RETRY_NAMES:?}"));
            }
            if s.max_attempts == Some(0) {
                return bad(key, "max_attempts must be at least 1 (1: no retry)");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn delays(policy: RetryPolicy) -> Vec<Duration> {
        policy.build().collect()
    }

    fn spec(strategy: RetryStrategy) -> RetrySpec {
        RetrySpec {
            strategy,
            max_attempts: 5,
            delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            max_total: Duration::from_secs(60),
            jitter: false,
        }
    }

    #[test]
    fn fixed_linear_and_exponential_delays_follow_their_strategy() {
        let ms = Duration::from_millis;
        assert_eq!(
            delays(spec(RetryStrategy::Fixed).policy()),
            vec![ms(100); 4]
        );
        assert_eq!(
            delays(spec(RetryStrategy::Linear).policy()),
            vec![ms(100), ms(200), ms(300), ms(400)]
        );
        // backon multiplies in f32: compare whole milliseconds
        let exp: Vec<u128> = delays(spec(RetryStrategy::Exponential).policy())
            .iter()
            .map(Duration::as_millis)
            .collect();
        assert_eq!(exp, vec![100, 200, 400, 800]);
    }

    #[test]
    fn every_strategy_keeps_within_attempts_max_delay_and_total() {
        let ms = Duration::from_millis;
        for strategy in [
            RetryStrategy::Fixed,
            RetryStrategy::Linear,
            RetryStrategy::Exponential,
        ] {
            for jitter in [false, true] {
                let s = RetrySpec {
                    max_attempts: 50,
                    max_delay: ms(250),
                    max_total: ms(1000),
                    jitter,
                    ..spec(strategy)
                };
                let d = delays(s.policy());
                assert!(!d.is_empty(), "{strategy:?}");
                assert!(d.len() <= 49, "{strategy:?}: {d:?}");
                let total: Duration = d.iter().sum();
                assert!(total <= ms(1000), "{strategy:?} jitter {jitter}: {d:?}");
                if !jitter {
                    assert!(d.iter().all(|x| *x <= ms(250)), "{strategy:?}: {d:?}");
                }
            }
            let one = RetrySpec {
                max_attempts: 1,
                ..spec(strategy)
            };
            assert!(delays(one.policy()).is_empty(), "1 attempt: no retry");
        }
    }

    #[test]
    fn defaults_are_the_built_in_policies() {
        let cfg = ResilienceConfig::default();
        assert_eq!(cfg.breaker(EMBEDDING), BreakerConfig::default());
        assert_eq!(cfg.breaker(OBJECT_STORAGE), BreakerConfig::default());
        let e = cfg.retry(EMBEDDING);
        assert_eq!(e.strategy, RetryStrategy::Exponential);
        assert_eq!(
            (e.max_attempts, e.max_total),
            (3, Duration::from_millis(500))
        );
        let o = cfg.retry(OBJECT_STORAGE);
        assert_eq!((o.max_attempts, o.max_total), (5, Duration::from_secs(60)));
        // The same bounds as `retry_policy`, the builder used before these settings existed.
        let d = delays(e.policy());
        assert!(d.len() <= 2 && d.iter().sum::<Duration>() <= Duration::from_millis(500));
        cfg.validate().unwrap();
    }

    #[test]
    fn yaml_settings_override_defaults_per_dependency() {
        let cfg: ResilienceConfig = serde_norway::from_str(
            "breakers:\n  default: {failure_threshold: 7}\n  object_storage: {open_secs: 2.5, success_threshold: 3}\n\
             retries:\n  embedding: {strategy: linear, max_attempts: 4, delay_ms: 10, max_total_ms: 1000}\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        let e = cfg.breaker(EMBEDDING);
        assert_eq!(e.failure_threshold, 7);
        assert_eq!(e.success_threshold, 1);
        let o = cfg.breaker(OBJECT_STORAGE);
        assert_eq!(o.failure_threshold, 7, "on top of default");
        assert_eq!(o.cool_down, Duration::from_millis(2500));
        assert_eq!(o.success_threshold, 3);
        assert_eq!(cfg.named_breakers().len(), 1);
        let ms = Duration::from_millis;
        assert_eq!(
            delays(cfg.retry(EMBEDDING).policy()),
            vec![ms(10), ms(20), ms(30)]
        );
        assert_eq!(
            cfg.retry(OBJECT_STORAGE),
            RetrySpec::default_for(OBJECT_STORAGE)
        );
    }

    #[test]
    fn unknown_names_and_impossible_values_are_refused_with_their_key() {
        for (yaml, key) in [
            (
                "breakers: {embeding: {failure_threshold: 2}}",
                "resilience.breakers.embeding",
            ),
            (
                "breakers: {embedding: {success_threshold: 0}}",
                "resilience.breakers.embedding",
            ),
            (
                "breakers: {embedding: {open_secs: -1}}",
                "resilience.breakers.embedding",
            ),
            (
                "retries: {qdrant: {max_attempts: 0}}",
                "resilience.retries.qdrant",
            ),
            (
                "retries: {object_storage: {max_attempts: 0}}",
                "resilience.retries.object_storage",
            ),
            (
                "retries: {embedding: {max_attempts: 0}}",
                "resilience.retries.embedding",
            ),
        ] {
            let cfg: ResilienceConfig = serde_norway::from_str(yaml).unwrap();
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{yaml}: {e}");
        }
        let typo: std::result::Result<ResilienceConfig, _> =
            serde_norway::from_str("retries: {embedding: {strategy: quadratic}}");
        assert!(typo.is_err());
    }
}
