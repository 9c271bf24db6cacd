//! Leader election with a `coordination.k8s.io/v1` Lease.
//!
//! A candidate takes the Lease when it is absent or expired (`renewTime + leaseDurationSeconds`
//! in the past) and renews it every `renew_every`; writes use the Lease's resourceVersion, so
//! two candidates racing for it cannot both win. A leader that fails to renew before the lease
//! would expire steps down.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};

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
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews.
    pub renew_every: Duration,
}

/// A leader election candidate.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
}

/// Outcome of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// We hold the lease.
    Leader,
    /// Someone else holds a valid lease.
    Follower,
}

impl LeaderElector {
    /// A candidate.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    fn secs(d: Duration) -> i32 {
        i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
    }

    /// Tries once to acquire or renew the lease.
    pub async fn try_acquire_or_renew(&self) -> Result<Attempt> {
        let now = Timestamp::now();
        let id = &self.config.identity;
        match self.api.get_opt(&self.config.name).await? {
            None => {
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
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(Attempt::Leader),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Follower),
                    Err(e) => Err(e.into()),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let holder = spec.holder_identity.clone().unwrap_or_default();
                let duration = SignedDuration::from_secs(i64::from(
                    spec.lease_duration_seconds
                        .unwrap_or(Self::secs(self.config.lease_duration)),
                ));
                let expired = spec
                    .renew_time
                    .as_ref()
                    .is_none_or(|t| t.0 + duration < now);
                if holder != *id && !holder.is_empty() && !expired {
                    return Ok(Attempt::Follower);
                }
                let mut new = spec.clone();
                if holder != *id {
                    new.acquire_time = Some(MicroTime(now));
                    new.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    new.holder_identity = Some(id.clone());
                }
                new.renew_time = Some(MicroTime(now));
                new.lease_duration_seconds = Some(Self::secs(self.config.lease_duration));
                lease.spec = Some(new);
                match self
                    .api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(Attempt::Leader),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Follower),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Waits until this candidate is the leader.
    pub async fn acquire(&self) -> Result<()> {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leader) => return Ok(()),
                Ok(Attempt::Follower) => {}
                Err(e) => tracing::warn!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(self.config.renew_every).await;
        }
    }

    /// Renews the lease until renewal fails for longer than the lease duration; then returns an
    /// error (the caller must stop reconciling).
    pub async fn keep_renewing(&self) -> Result<()> {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.config.renew_every).await;
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leader) => last_ok = tokio::time::Instant::now(),
                Ok(Attempt::Follower) => {
                    return Err(Error::LeaderElection(
                        "another replica took the lease".into(),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lease renewal failed");
                    if last_ok.elapsed() >= self.config.lease_duration {
                        return Err(Error::LeaderElection(format!(
                            "could not renew the lease: {e}"
                        )));
                    }
                }
            }
        }
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

    fn cfg(id: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: "ops".into(),
            name: "instant-db-operator".into(),
            identity: id.into(),
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn one_leader_at_a_time_and_release_hands_over() {
        let fake = FakeApiServer::new();
        let a = LeaderElector::new(fake.client(), cfg("a"));
        let b = LeaderElector::new(fake.client(), cfg("b"));
        assert_eq!(a.try_acquire_or_renew().await.unwrap(), Attempt::Leader);
        assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Follower);
        assert_eq!(a.try_acquire_or_renew().await.unwrap(), Attempt::Leader);
        a.release().await.unwrap();
        assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Leader);
        assert_eq!(a.try_acquire_or_renew().await.unwrap(), Attempt::Follower);
        let lease = fake
            .get("/apis/coordination.k8s.io/v1/namespaces/ops/leases/instant-db-operator")
            .unwrap();
        assert_eq!(lease["spec"]["holderIdentity"], "b");
        assert_eq!(lease["spec"]["leaseTransitions"], 1);
    }

    #[tokio::test]
    async fn expired_lease_is_taken_over() {
        let fake = FakeApiServer::new();
        fake.put(
            "/apis/coordination.k8s.io/v1/namespaces/ops/leases/instant-db-operator",
            serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "instant-db-operator", "namespace": "ops"},
                "spec": {"holderIdentity": "dead", "leaseDurationSeconds": 15, "renewTime": "2020-01-01T00:00:00.000000Z"}}),
        );
        let b = LeaderElector::new(fake.client(), cfg("b"));
        assert_eq!(b.try_acquire_or_renew().await.unwrap(), Attempt::Leader);
    }
}
