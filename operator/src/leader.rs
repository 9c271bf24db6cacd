//! Leader election with a `coordination.k8s.io/v1` Lease, with client-go's timing.
//!
//! A candidate takes the Lease when it is absent, released or expired; writes carry the
//! Lease's resourceVersion, so two candidates racing for it cannot both win. Expired means, as
//! in client-go, that the lease record has not changed for `leaseDurationSeconds` **as
//! observed on this candidate's own monotonic clock**: the holder's `renewTime` is never
//! compared with the local clock, so a holder whose clock runs behind (or ahead) keeps its
//! lease while it renews, and no clock skew between nodes can make two leaders. The leader renews every `retry_period` and steps
//! down when no renewal has succeeded for `renew_deadline`, which is shorter than the lease
//! duration: the old leader has stopped before a standby may take the expired lease. With the
//! defaults (15 s / 10 s / 2 s, as client-go) that leaves 5 s for stopping and clock skew.
//!
//! kube-lease-manager 0.13 (kube 5) was considered: it keeps reporting leadership while
//! renewals fail with API errors (no renew deadline), which is the overlap this module avoids.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::time::Instant;

use crate::error::{Error, Result};

/// Leader election settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (pod name).
    pub identity: String,
    /// How long a lease is valid without renewal (written into the Lease).
    pub lease_duration: Duration,
    /// The leader steps down when no renewal succeeded for this long. Shorter than
    /// `lease_duration`.
    pub renew_deadline: Duration,
    /// Pause between attempts (renewals by the leader, acquisitions by a standby).
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// client-go's defaults: lease 15 s, renew deadline 10 s, retry every 2 s.
    pub fn new(namespace: String, name: String, identity: String) -> Self {
        Self {
            namespace,
            name,
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Checks `retry_period < renew_deadline < lease_duration`; otherwise two leaders could
    /// overlap or the leader would step down before it ever renewed.
    pub fn validate(&self) -> Result<()> {
        if self.retry_period.is_zero()
            || self.retry_period >= self.renew_deadline
            || self.renew_deadline >= self.lease_duration
        {
            return Err(Error::LeaderElection(format!(
                "need 0 < retry period ({:?}) < renew deadline ({:?}) < lease duration ({:?})",
                self.retry_period, self.renew_deadline, self.lease_duration
            )));
        }
        Ok(())
    }
}

/// A leader election candidate.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The last lease record read and when (local monotonic clock) it was first seen.
    observed: Mutex<Option<(LeaseSpec, Instant)>>,
}

/// Outcome of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// We hold the lease.
    Leader,
    /// Someone else holds a valid lease.
    Follower,
}

/// What a candidate does with the Lease it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease yet: create it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Released or expired: take it over.
    TakeOver,
    /// Someone else holds a valid lease: wait.
    Wait,
}

/// Decides from the Lease's spec (None: no Lease) whether `identity` may hold it.
/// `unchanged_for` is how long this candidate has seen the same record, on its own clock;
/// the lease has expired when that exceeds its duration (`default_duration` when the Lease
/// does not say). The holder's timestamps are not compared with the local clock.
pub fn decide(
    lease: Option<&LeaseSpec>,
    identity: &str,
    unchanged_for: Duration,
    default_duration: Duration,
) -> Decision {
    let Some(spec) = lease else {
        return Decision::Create;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder == identity {
        return Decision::Renew;
    }
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(default_duration, Duration::from_secs);
    if holder.is_empty() || unchanged_for > duration {
        Decision::TakeOver
    } else {
        Decision::Wait
    }
}

impl LeaderElector {
    /// A candidate.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: Mutex::new(None),
        }
    }

    fn secs(d: Duration) -> i32 {
        i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
    }

    /// How long the record `spec` has been seen unchanged by this candidate; a different
    /// record restarts the count (as client-go's `observedTime`).
    fn unchanged_for(&self, spec: Option<&LeaseSpec>) -> Duration {
        let mut observed = self.observed.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(spec) = spec else {
            *observed = None;
            return Duration::ZERO;
        };
        match observed.as_ref() {
            Some((seen, at)) if seen == spec => at.elapsed(),
            _ => {
                *observed = Some((spec.clone(), Instant::now()));
                Duration::ZERO
            }
        }
    }

    /// Tries once to acquire or renew the lease.
    pub async fn try_acquire_or_renew(&self) -> Result<Attempt> {
        // Written into the Lease for humans and other tools; never used to judge expiry.
        let now = Timestamp::now();
        let id = &self.config.identity;
        let existing = self.api.get_opt(&self.config.name).await?;
        let spec = existing.as_ref().and_then(|l| l.spec.as_ref());
        let unchanged_for = self.unchanged_for(spec);
        let decision = decide(spec, id, unchanged_for, self.config.lease_duration);
        let result = match (decision, existing) {
            (Decision::Wait, _) => return Ok(Attempt::Follower),
            (Decision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(id.clone()),
                        lease_duration_seconds: Some(Self::secs(self.config.lease_duration)),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (decision, Some(mut lease)) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let mut new = spec.clone();
                if decision == Decision::TakeOver {
                    new.acquire_time = Some(MicroTime(now));
                    new.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    new.holder_identity = Some(id.clone());
                }
                new.renew_time = Some(MicroTime(now));
                new.lease_duration_seconds = Some(Self::secs(self.config.lease_duration));
                lease.spec = Some(new);
                // The resourceVersion read above makes this fail with 409 if anyone wrote
                // the Lease in between.
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(Attempt::Leader),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Follower),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until this candidate is the leader; returns when the winning attempt started
    /// (the renewTime it wrote), which [`Self::keep_renewing`] counts the deadline from.
    pub async fn acquire(&self) -> Result<Instant> {
        self.config.validate()?;
        loop {
            let started = Instant::now();
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leader) => return Ok(started),
                Ok(Attempt::Follower) => {}
                Err(e) => tracing::warn!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews the lease every retry period. Returns an error (the caller must stop its
    /// controllers at once) when another replica holds the lease or when no renewal has
    /// succeeded within the renew deadline since `last_renewed`, the start of the last
    /// successful attempt. A renewal request that hangs is cut off at the deadline.
    pub async fn keep_renewing(&self, mut last_renewed: Instant) -> Result<()> {
        self.config.validate()?;
        loop {
            let deadline = last_renewed + self.config.renew_deadline;
            let next = (Instant::now() + self.config.retry_period).min(deadline);
            tokio::time::sleep_until(next).await;
            if Instant::now() >= deadline {
                return Err(self.deadline_missed("the last attempt failed"));
            }
            let started = Instant::now();
            match tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await {
                Err(_) => return Err(self.deadline_missed("the renewal request hung")),
                Ok(Ok(Attempt::Leader)) => last_renewed = started,
                Ok(Ok(Attempt::Follower)) => {
                    return Err(Error::LeaderElection(
                        "another replica holds the lease".into(),
                    ));
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "lease renewal failed; retrying"),
            }
        }
    }

    fn deadline_missed(&self, why: &str) -> Error {
        Error::LeaderElection(format!(
            "the lease was not renewed within the renew deadline ({}s): {why}",
            self.config.renew_deadline.as_secs()
        ))
    }

    /// Gives the lease up (on shutdown) so another replica takes over at once.
    pub async fn release(&self) -> Result<()> {
        if let Some(mut lease) = self.api.get_opt(&self.config.name).await?
            && lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                == Some(self.config.identity.as_str())
        {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.renew_time = None;
            }
            self.api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::fake_api::FakeApiServer;
    use serde_json::json;

    const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/instant-db-operator";

    fn cfg(id: &str) -> LeaseConfig {
        LeaseConfig::new("ops".into(), "instant-db-operator".into(), id.into())
    }

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn held_by(holder: &str, renewed_at: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(ts(renewed_at))),
            ..Default::default()
        }
    }

    fn lease_puts(fake: &FakeApiServer) -> usize {
        fake.log()
            .iter()
            .filter(|l| l.method == "PUT" && l.path == LEASE)
            .count()
    }

    #[test]
    fn decide_creates_renews_waits_and_takes_over() {
        let d = Duration::from_secs(15);
        let secs = Duration::from_secs;
        assert_eq!(decide(None, "a", secs(0), d), Decision::Create);
        assert_eq!(
            decide(Some(&held_by("a", 900)), "a", secs(100), d),
            Decision::Renew,
            "our own lease is renewed even when expired"
        );
        assert_eq!(
            decide(Some(&held_by("b", 990)), "a", secs(10), d),
            Decision::Wait
        );
        assert_eq!(
            decide(Some(&held_by("b", 985)), "a", secs(15), d),
            Decision::Wait,
            "exactly at expiry it is still held"
        );
        assert_eq!(
            decide(Some(&held_by("b", 984)), "a", secs(16), d),
            Decision::TakeOver
        );
        // the holder's renewTime does not matter: one long past, seen changing just now
        assert_eq!(
            decide(Some(&held_by("b", 0)), "a", secs(0), d),
            Decision::Wait
        );
        let released = LeaseSpec {
            holder_identity: None,
            ..held_by("", 999)
        };
        assert_eq!(decide(Some(&released), "a", secs(0), d), Decision::TakeOver);
    }

    #[test]
    fn timing_must_leave_the_renew_deadline_inside_the_lease() {
        assert!(cfg("a").validate().is_ok());
        let mut c = cfg("a");
        c.renew_deadline = c.lease_duration;
        assert!(c.validate().is_err());
        let mut c = cfg("a");
        c.retry_period = c.renew_deadline;
        assert!(c.validate().is_err());
    }

    #[tokio::test]
    async fn first_candidate_acquires_and_a_second_is_refused_while_it_is_held() {
        let fake = FakeApiServer::new();
        let a = LeaderElector::new(fake.client(), cfg("a"));
        let b = LeaderElector::new(fake.client(), cfg("b"));
        assert_eq!(a.try_acquire_or_renew().await.unwrap(), Attempt::Leader);
        assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Follower);
        assert_eq!(fake.get(LEASE).unwrap()["spec"]["holderIdentity"], "a");
        // renewal by the holder succeeds and does not count as a transition
        assert_eq!(a.try_acquire_or_renew().await.unwrap(), Attempt::Leader);
        let lease = fake.get(LEASE).unwrap();
        assert_eq!(lease["spec"]["leaseTransitions"], 0);
        assert_eq!(lease["spec"]["leaseDurationSeconds"], 15);
    }

    #[tokio::test]
    async fn release_hands_the_lease_over_at_once() {
        let fake = FakeApiServer::new();
        let a = LeaderElector::new(fake.client(), cfg("a"));
        let b = LeaderElector::new(fake.client(), cfg("b"));
        assert_eq!(a.try_acquire_or_renew().await.unwrap(), Attempt::Leader);
        a.release().await.unwrap();
        assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Leader);
        assert_eq!(a.try_acquire_or_renew().await.unwrap(), Attempt::Follower);
        let lease = fake.get(LEASE).unwrap();
        assert_eq!(lease["spec"]["holderIdentity"], "b");
        assert_eq!(lease["spec"]["leaseTransitions"], 1);
    }

    // A stale lease is taken only after it has been seen unchanged for its duration.
    #[tokio::test(start_paused = true)]
    async fn expired_lease_is_taken_over() {
        let fake = FakeApiServer::new();
        fake.put(
            LEASE,
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "instant-db-operator", "namespace": "ops"},
                "spec": {"holderIdentity": "dead", "leaseDurationSeconds": 15, "leaseTransitions": 3,
                         "renewTime": "2020-01-01T00:00:00.000000Z"}}),
        );
        let b = LeaderElector::new(fake.client(), cfg("b"));
        assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Follower);
        tokio::time::advance(Duration::from_secs(16)).await;
        assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Leader);
        let lease = fake.get(LEASE).unwrap();
        assert_eq!(lease["spec"]["holderIdentity"], "b");
        assert_eq!(lease["spec"]["leaseTransitions"], 4);
    }

    #[tokio::test]
    async fn a_write_racing_with_ours_makes_us_a_follower() {
        let fake = FakeApiServer::new();
        let a = LeaderElector::new(fake.client(), cfg("a"));
        assert_eq!(a.try_acquire_or_renew().await.unwrap(), Attempt::Leader);
        fake.fail_next("PUT", "leases", 409);
        assert_eq!(a.try_acquire_or_renew().await.unwrap(), Attempt::Follower);
    }

    // The clock is paused: tokio advances it instantly when every task waits, so these tests
    // check the timing exactly without waiting in real time.
    #[tokio::test(start_paused = true)]
    async fn leader_renews_every_retry_period_while_the_api_answers() {
        let fake = FakeApiServer::new();
        let a = LeaderElector::new(fake.client(), cfg("a"));
        let acquired = a.acquire().await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(61), a.keep_renewing(acquired)).await;
        assert!(r.is_err(), "stepped down although renewals succeed: {r:?}");
        assert_eq!(lease_puts(&fake), 30, "one renewal every 2 s for 61 s");
    }

    #[tokio::test(start_paused = true)]
    async fn leader_steps_down_at_the_renew_deadline_when_renewals_fail() {
        let fake = FakeApiServer::new();
        let a = LeaderElector::new(fake.client(), cfg("a"));
        let acquired = a.acquire().await.unwrap();
        fake.fail_always("*", "leases", 500);
        let err = a.keep_renewing(acquired).await.unwrap_err();
        let stepped_down_after = acquired.elapsed();
        assert!(err.to_string().contains("renew deadline"), "{err}");
        assert_eq!(stepped_down_after, Duration::from_secs(10));
        assert!(
            stepped_down_after < Duration::from_secs(15),
            "before a standby may take over"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_renewal_is_cut_off_at_the_deadline() {
        let fake = FakeApiServer::new();
        let a = LeaderElector::new(fake.client(), cfg("a"));
        let acquired = a.acquire().await.unwrap();
        fake.hang_matching("leases");
        let err = a.keep_renewing(acquired).await.unwrap_err();
        assert!(err.to_string().contains("hung"), "{err}");
        assert_eq!(acquired.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn leader_steps_down_when_another_replica_holds_the_lease() {
        let fake = FakeApiServer::new();
        let a = LeaderElector::new(fake.client(), cfg("a"));
        let acquired = a.acquire().await.unwrap();
        fake.merge(LEASE, &json!({"spec": {"holderIdentity": "b"}}));
        let err = a.keep_renewing(acquired).await.unwrap_err();
        assert!(err.to_string().contains("another replica"), "{err}");
        assert_eq!(acquired.elapsed(), Duration::from_secs(2));
    }

    // The holder's clock is 60 s behind ours: its renewTime looks expired to us although it
    // renews every 2 s. Like client-go, a standby judges expiry by when it saw the record
    // change on its own clock, never by the holder's timestamps.
    #[tokio::test(start_paused = true)]
    async fn a_holder_with_a_skewed_clock_keeps_the_lease_while_it_renews() {
        let fake = FakeApiServer::new();
        use k8s_openapi::jiff::SignedDuration;
        let base = Timestamp::now() - SignedDuration::from_secs(60);
        let skewed = |fake: &FakeApiServer, renewal: i64| {
            let behind = base + SignedDuration::from_secs(2 * renewal);
            fake.put(
                LEASE,
                json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": "instant-db-operator", "namespace": "ops"},
                    "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                             "leaseTransitions": 0,
                             "renewTime": MicroTime(behind)}}),
            );
        };
        skewed(&fake, 0);
        let b = LeaderElector::new(fake.client(), cfg("b"));
        assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Follower);
        // the holder keeps renewing (a new record every 2 s, still 60 s behind)
        for renewal in 1..=20 {
            tokio::time::advance(Duration::from_secs(2)).await;
            skewed(&fake, renewal);
            assert_eq!(
                b.try_acquire_or_renew().await.unwrap(),
                Attempt::Follower,
                "took a lease that is being renewed"
            );
        }
        // the holder died: once the record has not changed for the lease duration, as seen
        // on our clock, the standby takes over
        tokio::time::advance(Duration::from_secs(14)).await;
        assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Follower);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Leader);
        assert_eq!(fake.get(LEASE).unwrap()["spec"]["holderIdentity"], "b");
    }

    #[tokio::test(start_paused = true)]
    async fn standby_retries_until_the_lease_is_released() {
        let fake = FakeApiServer::new();
        let a = LeaderElector::new(fake.client(), cfg("a"));
        let b = LeaderElector::new(fake.client(), cfg("b"));
        a.acquire().await.unwrap();
        let standby = tokio::spawn(async move { b.acquire().await.map(|_| ()) });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!standby.is_finished());
        a.release().await.unwrap();
        standby.await.unwrap().unwrap();
        assert_eq!(fake.get(LEASE).unwrap()["spec"]["holderIdentity"], "b");
    }
}
