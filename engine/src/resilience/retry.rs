//! Bounded retries under any `backon` backoff (see the module doc of `resilience`); the
//! built-in policy is exponential with jitter, others come from [`super::RetrySpec::policy`].

use std::fmt;
use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, BlockingRetryable, ExponentialBuilder, Retryable};

/// Default minimum delay between retries.
pub const RETRY_MIN_DELAY: Duration = Duration::from_millis(100);
/// Default maximum delay between two retries.
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(10);

/// Exponential backoff (factor 2, from 100 ms, each delay capped at 10 s) with
/// jitter, bounded to `max_attempts` attempts in total (so `max_attempts - 1`
/// retries; 0 or 1 means no retry) and `max_total` of cumulated delay.
pub fn retry_policy(max_attempts: usize, max_total: Duration) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(RETRY_MIN_DELAY)
        .with_max_delay(RETRY_MAX_DELAY.min(max_total.max(RETRY_MIN_DELAY)))
        .with_factor(2.0)
        .with_jitter()
        .with_max_times(max_attempts.saturating_sub(1))
        .with_total_delay(Some(max_total))
}

/// Run `fut_factory()` and retry it under `policy` while `is_transient(&err)`
/// holds; every retry is logged (`warn`) with the operation name, the attempt,
/// the delay and the error. Non-transient errors are returned at once.
pub async fn retry_transient<T, E, F, Fut, P, B>(
    op_name: &str,
    policy: B,
    fut_factory: F,
    is_transient: P,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    P: FnMut(&E) -> bool,
    E: fmt::Display,
    B: BackoffBuilder,
{
    retry_with_sleeper(
        op_name,
        policy,
        fut_factory,
        is_transient,
        tokio::time::sleep,
    )
    .await
}

/// [`retry_transient`] with a custom sleeper (tests use one that records the
/// delays and returns at once).
pub async fn retry_with_sleeper<T, E, F, Fut, P, S, SF, B>(
    op_name: &str,
    policy: B,
    fut_factory: F,
    is_transient: P,
    sleeper: S,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    P: FnMut(&E) -> bool,
    E: fmt::Display,
    S: Fn(Duration) -> SF + 'static,
    SF: Future,
    B: BackoffBuilder,
{
    let mut log = retry_logger(op_name);
    fut_factory
        .retry(policy)
        .sleep(sleeper)
        .when(is_transient)
        .notify(|err: &E, delay: Duration| log(err, delay))
        .await
}

/// Logs each retry (`warn`) with the operation, the attempt number, the delay and the error.
fn retry_logger<E: fmt::Display>(op_name: &str) -> impl FnMut(&E, Duration) + '_ {
    let mut attempt: usize = 1;
    move |err, delay| {
        tracing::warn!(
            operation = op_name,
            attempt,
            retry_in_ms = delay.as_millis() as u64,
            error = %err,
            "transient failure; retrying"
        );
        attempt += 1;
    }
}

/// [`retry_transient`] for blocking code (embedding runs on worker threads, not the runtime):
/// the same policy and logging, sleeping with `sleeper` between attempts.
pub fn retry_blocking<T, E, F, P, S, B>(
    op_name: &str,
    policy: B,
    f: F,
    is_transient: P,
    sleeper: S,
) -> Result<T, E>
where
    F: FnMut() -> Result<T, E>,
    P: FnMut(&E) -> bool,
    E: fmt::Display,
    S: Fn(Duration) + 'static,
    B: BackoffBuilder,
{
    let mut log = retry_logger(op_name);
    f.retry(policy)
        .sleep(sleeper)
        .when(is_transient)
        .notify(|err: &E, delay: Duration| log(err, delay))
        .call()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    fn recording_sleeper(
        log: Arc<Mutex<Vec<Duration>>>,
    ) -> impl Fn(Duration) -> std::future::Ready<()> + 'static {
        move |d| {
            log.lock().unwrap().push(d);
            std::future::ready(())
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_with_bounded_jittered_backoff() {
        let delays: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let attempts = AtomicUsize::new(0);
        let r: Result<u32, String> = retry_with_sleeper(
            "op",
            retry_policy(4, Duration::from_secs(60)),
            || async {
                let n = attempts.fetch_add(1, Ordering::SeqCst);
                if n < 2 {
                    Err(format!("transient {n}"))
                } else {
                    Ok(42)
                }
            },
            |e: &String| e.starts_with("transient"),
            recording_sleeper(delays.clone()),
        )
        .await;
        assert_eq!(r.unwrap(), 42);
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        let delays = delays.lock().unwrap().clone();
        assert_eq!(delays.len(), 2);
        // jitter adds up to one extra base delay: 100..200ms then 200..400ms
        assert!(
            delays[0] >= Duration::from_millis(100) && delays[0] <= Duration::from_millis(200),
            "{delays:?}"
        );
        assert!(
            delays[1] >= Duration::from_millis(200) && delays[1] <= Duration::from_millis(400),
            "{delays:?}"
        );
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_and_on_permanent_errors() {
        let delays: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let attempts = AtomicUsize::new(0);
        let r: Result<(), String> = retry_with_sleeper(
            "op",
            retry_policy(3, Duration::from_secs(60)),
            || async {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err("transient".to_string())
            },
            |_: &String| true,
            recording_sleeper(delays.clone()),
        )
        .await;
        assert!(r.is_err());
        assert_eq!(attempts.load(Ordering::SeqCst), 3);

        let attempts = AtomicUsize::new(0);
        let r: Result<(), String> = retry_with_sleeper(
            "op",
            retry_policy(5, Duration::from_secs(60)),
            || async {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err("permanent".to_string())
            },
            |e: &String| e == "transient",
            recording_sleeper(delays.clone()),
        )
        .await;
        assert!(r.is_err());
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn total_delay_bound_stops_retries() {
        let delays: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let attempts = AtomicUsize::new(0);
        let r: Result<(), String> = retry_with_sleeper(
            "op",
            retry_policy(100, Duration::from_millis(500)),
            || async {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err("t".to_string())
            },
            |_: &String| true,
            recording_sleeper(delays.clone()),
        )
        .await;
        assert!(r.is_err());
        let total: Duration = delays.lock().unwrap().iter().sum();
        assert!(total <= Duration::from_millis(500), "total {total:?}");
        assert!(attempts.load(Ordering::SeqCst) < 10);
    }

    #[test]
    fn blocking_retry_retries_transient_errors_within_its_bounds() {
        let calls = AtomicUsize::new(0);
        let slept = Arc::new(Mutex::new(vec![]));
        let record = slept.clone();
        let ok: Result<u32, String> = retry_blocking(
            "op",
            retry_policy(3, Duration::from_secs(1)),
            || {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err("flaky".to_string())
                } else {
                    Ok(7)
                }
            },
            |_| true,
            move |d| record.lock().unwrap().push(d),
        );
        assert_eq!(ok, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(slept.lock().unwrap().len(), 2);

        let calls = AtomicUsize::new(0);
        let failed: Result<u32, String> = retry_blocking(
            "op",
            retry_policy(3, Duration::from_secs(1)),
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("still flaky".to_string())
            },
            |_| true,
            |_| {},
        );
        assert_eq!(failed, Err("still flaky".to_string()));
        assert_eq!(calls.load(Ordering::SeqCst), 3, "bounded to 3 attempts");

        let calls = AtomicUsize::new(0);
        let permanent: Result<u32, String> = retry_blocking(
            "op",
            retry_policy(3, Duration::from_secs(1)),
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("bad input".to_string())
            },
            |_| false,
            |_| {},
        );
        assert!(permanent.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a permanent error is not retried"
        );
    }
}
