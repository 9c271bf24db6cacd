//! Failing well: circuit breakers per dependency and bounded retries with
//! exponential backoff and jitter (via the maintained `backon` crate).
//!
//! # Circuit breaker
//!
//! A [`CircuitBreaker`] protects one dependency (object storage, Qdrant, the
//! embedding model, ...). It starts **closed** (calls pass). After
//! `failure_threshold` *consecutive* failures it **opens**: calls are refused
//! immediately with [`BreakerError::Open`] for `cool_down`. After the cool-down
//! the next caller is let through as the single **half-open** probe; its
//! success closes the breaker, its failure re-opens it for another cool-down.
//! While the probe is in flight other callers are refused.
//!
//! The state can be exported through an optional hook ([`StateHook`]), e.g.
//! to the prometheus gauge `instantdb_circuit_breaker_state{dependency}` with
//! 0 = closed, 1 = half-open, 2 = open (see [`BreakerState::as_gauge`] and
//! `crate::metrics::Metrics::breaker_hook`).
//!
//! # Retries
//!
//! [`retry_policy`] builds a jittered exponential backoff bounded both in
//! attempts and in total delay; [`retry_transient`] runs an async operation
//! under such a policy, retrying only errors classified as transient and
//! logging each retry with `tracing`. [`RetrySpec::policy`] builds the fixed, linear or
//! exponential backoff the `resilience.retries` configuration selects.
//!
//! # Configuration
//!
//! [`ResilienceConfig`] (`resilience:` in the configuration file) sets breakers
//! (failure threshold, open duration, success threshold) and retries per dependency; see
//! `docs/resilience.md`.

mod breaker;
mod retry;
mod set;
pub mod settings;

pub use breaker::{
    BreakerConfig, BreakerError, BreakerState, BreakerStatus, CircuitBreaker, Clock, StateHook,
};
pub use retry::{
    RETRY_MAX_DELAY, RETRY_MIN_DELAY, retry_blocking, retry_policy, retry_transient,
    retry_with_sleeper,
};
pub use set::Breakers;
pub use settings::{
    BreakerSettings, ResilienceConfig, RetryPolicy, RetrySettings, RetrySpec, RetryStrategy,
};
