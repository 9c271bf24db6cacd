//! Circuit breaker per dependency: closed, open, half-open (see the module doc of `resilience`).

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// State of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls pass through.
    Closed,
    /// The cool-down has elapsed; one probe call is (or may be) in flight.
    HalfOpen,
    /// Calls are refused until the cool-down elapses.
    Open,
}

impl BreakerState {
    /// Value for the `instantdb_circuit_breaker_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }

    /// Lower-case name (`closed`, `half_open`, `open`).
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Configuration of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (default 5, at least 1).
    pub failure_threshold: u32,
    /// How long the breaker stays open before a probe is allowed (default 30 s).
    #[serde(with = "duration_secs")]
    pub cool_down: Duration,
    /// Consecutive successful probes in the half-open state that close the breaker (default 1,
    /// at least 1). More than one keeps a flapping dependency from being trusted after a single
    /// lucky call; probes still run one at a time.
    pub success_threshold: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
            success_threshold: 1,
        }
    }
}

mod duration_secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs: f64 = serde::Deserialize::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// Source of "now" for a breaker. The default is [`Instant::now`]; tests
/// inject a manual clock so no test ever sleeps.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Called with `(dependency name, new state)` on every state change (and once
/// at construction with the initial state).
pub type StateHook = Arc<dyn Fn(&str, BreakerState) + Send + Sync>;

/// Error returned by [`CircuitBreaker::call`].
#[derive(Debug, thiserror::Error)]
pub enum BreakerError<E> {
    /// The breaker is open (or a half-open probe is already in flight).
    #[error("circuit breaker for {name} is open; retry in {retry_in:?}")]
    Open {
        /// Dependency name.
        name: String,
        /// Time until a probe will be allowed (zero when a probe is in flight).
        retry_in: Duration,
    },
    /// The call ran and failed.
    #[error(transparent)]
    Inner(E),
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
    /// Successful probes since the breaker went half-open.
    half_open_successes: u32,
}

/// A thread-safe circuit breaker for one dependency. Cheap to clone (shared state).
#[derive(Clone)]
pub struct CircuitBreaker {
    name: Arc<str>,
    config: BreakerConfig,
    inner: Arc<Mutex<Inner>>,
    clock: Clock,
    hook: Option<StateHook>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("state", &self.state())
            .finish()
    }
}

impl CircuitBreaker {
    /// A closed breaker named `name` (the `dependency` label) using the real clock.
    pub fn new(name: impl Into<String>, config: BreakerConfig) -> Self {
        Self::with_clock(name, config, Arc::new(Instant::now))
    }

    /// Like [`CircuitBreaker::new`] with an injected clock (for tests).
    pub fn with_clock(name: impl Into<String>, config: BreakerConfig, clock: Clock) -> Self {
        let config = BreakerConfig {
            failure_threshold: config.failure_threshold.max(1),
            success_threshold: config.success_threshold.max(1),
            ..config
        };
        Self {
            name: Arc::from(name.into()),
            config,
            inner: Arc::new(Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened_at: None,
                probe_in_flight: false,
                half_open_successes: 0,
            })),
            clock,
            hook: None,
        }
    }

    /// Install a hook called on every state change; it is called once now with the current state.
    pub fn with_hook(mut self, hook: StateHook) -> Self {
        hook(&self.name, self.state());
        self.hook = Some(hook);
        self
    }

    /// Dependency name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Configuration in effect.
    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic happened while holding it; the
        // state is still a valid value, so keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self, old: BreakerState, new: BreakerState) {
        if old != new {
            tracing::info!(dependency = %self.name, from = %old, to = %new, "circuit breaker state change");
            if let Some(hook) = &self.hook {
                hook(&self.name, new);
            }
        }
    }

    /// Current state. An open breaker whose cool-down has elapsed reports `HalfOpen`.
    pub fn state(&self) -> BreakerState {
        let g = self.lock();
        match (g.state, g.opened_at) {
            (BreakerState::Open, Some(at))
                if (self.clock)().saturating_duration_since(at) >= self.config.cool_down =>
            {
                BreakerState::HalfOpen
            }
            (s, _) => s,
        }
    }

    /// Consecutive failures counted so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.lock().consecutive_failures
    }

    /// Ask permission for one call. `Ok(())` means go ahead (and report the
    /// outcome with [`record_success`](Self::record_success) /
    /// [`record_failure`](Self::record_failure)); `Err(retry_in)` means refused.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        let (old, new, res) = {
            let mut g = self.lock();
            let old = g.state;
            let res = match g.state {
                BreakerState::Closed => Ok(()),
                BreakerState::Open => {
                    let now = (self.clock)();
                    let elapsed = g
                        .opened_at
                        .map(|at| now.saturating_duration_since(at))
                        .unwrap_or_default();
                    if elapsed >= self.config.cool_down {
                        g.state = BreakerState::HalfOpen;
                        g.probe_in_flight = true;
                        g.half_open_successes = 0;
                        Ok(())
                    } else {
                        Err(self.config.cool_down - elapsed)
                    }
                }
                BreakerState::HalfOpen => {
                    if g.probe_in_flight {
                        Err(Duration::ZERO)
                    } else {
                        g.probe_in_flight = true;
                        Ok(())
                    }
                }
            };
            (old, g.state, res)
        };
        self.notify(old, new);
        res
    }

    /// `true` when a call may proceed now (the caller then must record its outcome).
    pub fn allow(&self) -> bool {
        self.try_acquire().is_ok()
    }

    /// Record a successful call: resets the failure count; in the half-open state the breaker
    /// closes after `success_threshold` successful probes in a row (the next caller is the next
    /// probe until then).
    pub fn record_success(&self) {
        let (old, new) = {
            let mut g = self.lock();
            let old = g.state;
            g.consecutive_failures = 0;
            g.probe_in_flight = false;
            if g.state == BreakerState::HalfOpen {
                g.half_open_successes = g.half_open_successes.saturating_add(1);
                if g.half_open_successes < self.config.success_threshold {
                    return;
                }
            }
            g.state = BreakerState::Closed;
            g.opened_at = None;
            g.half_open_successes = 0;
            (old, g.state)
        };
        self.notify(old, new);
    }

    /// Record a failed call: a failed probe re-opens the breaker; in the closed
    /// state the breaker opens after `failure_threshold` consecutive failures.
    pub fn record_failure(&self) {
        let (old, new) = {
            let mut g = self.lock();
            let old = g.state;
            g.consecutive_failures = g.consecutive_failures.saturating_add(1);
            let open = match g.state {
                BreakerState::HalfOpen => true,
                BreakerState::Closed => g.consecutive_failures >= self.config.failure_threshold,
                BreakerState::Open => false,
            };
            if open {
                g.state = BreakerState::Open;
                g.opened_at = Some((self.clock)());
                g.half_open_successes = 0;
            }
            g.probe_in_flight = false;
            (old, g.state)
        };
        if new == BreakerState::Open && old != BreakerState::Open {
            tracing::warn!(dependency = %self.name, failures = self.consecutive_failures(), "circuit breaker opened");
        }
        self.notify(old, new);
    }

    /// Run `f()` under the breaker: refused with [`BreakerError::Open`] when
    /// open, otherwise the outcome is recorded and returned.
    pub async fn call<F, Fut, T, E>(&self, f: F) -> Result<T, BreakerError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Err(retry_in) = self.try_acquire() {
            return Err(BreakerError::Open {
                name: self.name.to_string(),
                retry_in,
            });
        }
        // If the future is dropped mid-flight we must not leave a probe stuck.
        let mut guard = ProbeGuard {
            breaker: self,
            done: false,
        };
        let res = f().await;
        guard.done = true;
        match res {
            Ok(v) => {
                self.record_success();
                Ok(v)
            }
            Err(e) => {
                self.record_failure();
                Err(BreakerError::Inner(e))
            }
        }
    }
}

struct ProbeGuard<'a> {
    breaker: &'a CircuitBreaker,
    done: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Cancelled call: free the probe slot without counting an outcome.
            self.breaker.lock().probe_in_flight = false;
        }
    }
}

/// Health view of one breaker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BreakerStatus {
    /// Dependency name.
    pub dependency: String,
    /// Current state.
    pub state: BreakerState,
    /// Consecutive failures counted.
    pub consecutive_failures: u32,
    /// Time until a probe is allowed (open breakers only).
    pub retry_in_ms: Option<u64>,
}

impl CircuitBreaker {
    /// Health view of this breaker.
    pub fn status(&self) -> BreakerStatus {
        let state = self.state();
        let g = self.lock();
        let retry_in_ms = match (state, g.opened_at) {
            (BreakerState::Open, Some(at)) => {
                let elapsed = (self.clock)().saturating_duration_since(at);
                Some(self.config.cool_down.saturating_sub(elapsed).as_millis() as u64)
            }
            _ => None,
        };
        BreakerStatus {
            dependency: self.name.to_string(),
            state,
            consecutive_failures: g.consecutive_failures,
            retry_in_ms,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Clone)]
    struct ManualClock {
        base: Instant,
        offset: Arc<Mutex<Duration>>,
    }

    impl ManualClock {
        fn new() -> Self {
            Self {
                base: Instant::now(),
                offset: Arc::new(Mutex::new(Duration::ZERO)),
            }
        }
        fn advance(&self, d: Duration) {
            *self.offset.lock().unwrap() += d;
        }
        fn clock(&self) -> Clock {
            let me = self.clone();
            Arc::new(move || me.base + *me.offset.lock().unwrap())
        }
    }

    fn breaker(clock: &ManualClock) -> CircuitBreaker {
        CircuitBreaker::with_clock(
            "s3",
            BreakerConfig {
                failure_threshold: 3,
                cool_down: Duration::from_secs(10),
                success_threshold: 1,
            },
            clock.clock(),
        )
    }

    #[test]
    fn half_open_needs_success_threshold_probes_in_a_row_to_close() {
        let clock = ManualClock::new();
        let b = CircuitBreaker::with_clock(
            "embedding",
            BreakerConfig {
                failure_threshold: 2,
                cool_down: Duration::from_secs(10),
                success_threshold: 3,
            },
            clock.clock(),
        );
        b.record_failure();
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance(Duration::from_secs(10));
        // Two good probes are not enough; the state stays half-open, one probe at a time.
        for _ in 0..2 {
            assert!(b.allow());
            assert!(!b.allow(), "one probe at a time");
            b.record_success();
            assert_eq!(b.state(), BreakerState::HalfOpen);
        }
        // A failed probe re-opens it and the count starts over after the next cool-down.
        assert!(b.allow());
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance(Duration::from_secs(10));
        for i in 0..3 {
            assert!(b.allow());
            b.record_success();
            let want = if i < 2 {
                BreakerState::HalfOpen
            } else {
                BreakerState::Closed
            };
            assert_eq!(b.state(), want, "after {} good probes", i + 1);
        }
        // Closed again: failures count from zero.
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_success_threshold_of_zero_means_one() {
        let clock = ManualClock::new();
        let b = CircuitBreaker::with_clock(
            "x",
            BreakerConfig {
                failure_threshold: 1,
                cool_down: Duration::from_secs(1),
                success_threshold: 0,
            },
            clock.clock(),
        );
        assert_eq!(b.config().success_threshold, 1);
        b.record_failure();
        clock.advance(Duration::from_secs(1));
        assert!(b.allow());
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn opens_after_consecutive_failures_and_half_opens_after_cool_down() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
        b.record_failure();
        assert!(b.allow());
        b.record_failure();
        // a success in between resets the count
        b.record_success();
        for _ in 0..2 {
            assert!(b.allow());
            b.record_failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.try_acquire(), Err(Duration::from_secs(10)));
        clock.advance(Duration::from_secs(4));
        assert_eq!(b.try_acquire(), Err(Duration::from_secs(6)));
        clock.advance(Duration::from_secs(6));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // exactly one probe
        assert!(b.allow());
        assert!(!b.allow());
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance(Duration::from_secs(10));
        assert!(b.allow());
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.consecutive_failures(), 0);
    }

    #[tokio::test]
    async fn call_helper_refuses_when_open_and_reports_to_hook() {
        let clock = ManualClock::new();
        let seen: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
        let seen2 = seen.clone();
        let b = breaker(&clock).with_hook(Arc::new(move |n: &str, s: BreakerState| {
            seen2.lock().unwrap().push((n.to_string(), s.as_gauge()));
        }));
        for _ in 0..3 {
            let r: Result<(), BreakerError<&str>> = b.call(|| async { Err("boom") }).await;
            assert!(matches!(r, Err(BreakerError::Inner("boom"))));
        }
        let calls = AtomicUsize::new(0);
        let r: Result<(), BreakerError<&str>> = b
            .call(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .await;
        match r {
            Err(BreakerError::Open { name, retry_in }) => {
                assert_eq!(name, "s3");
                assert_eq!(retry_in, Duration::from_secs(10));
            }
            other => panic!("expected open, got {other:?}"),
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "open breaker must not run the call"
        );
        clock.advance(Duration::from_secs(10));
        let r: Result<u8, BreakerError<&str>> = b.call(|| async { Ok(7) }).await;
        assert_eq!(r.unwrap(), 7);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![
                ("s3".to_string(), 0),
                ("s3".to_string(), 2),
                ("s3".to_string(), 1),
                ("s3".to_string(), 0)
            ]
        );
    }

    #[tokio::test]
    async fn cancelled_probe_frees_the_slot() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        for _ in 0..3 {
            b.record_failure();
        }
        clock.advance(Duration::from_secs(10));
        {
            let fut = b.call(std::future::pending::<Result<(), ()>>);
            let _ = tokio::time::timeout(Duration::ZERO, fut).await;
        }
        assert!(b.allow(), "probe slot must be released after cancellation");
    }

    #[test]
    fn breaker_is_send_sync_and_shared_across_threads() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    if b.allow() {
                        b.record_failure();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(b.state(), BreakerState::Open);
    }
}
