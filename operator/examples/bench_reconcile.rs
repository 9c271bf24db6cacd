//! Creates 1,000 InstantDb objects in the fake API server and reconciles them until they
//! converge; prints throughput, time to converge, peak memory and writes after convergence.
//! Run: `cargo run --release -p instant-db-operator --example bench_reconcile [N]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::future::BoxFuture;
use instant_db_crds::InstantDb;
use instant_db_operator::Result;
use instant_db_operator::controller::instantdb::reconcile;
use instant_db_operator::controller::{Context, OperatorConfig};
use instant_db_operator::engine_client::{DetailedHealth, EngineApi, HealthStatus};
use instant_db_operator::fake_api::FakeApiServer;
use instant_db_operator::metrics::Metrics;
use serde_json::json;

struct Healthy;
impl EngineApi for Healthy {
    fn detailed_health<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<DetailedHealth>> {
        Box::pin(async {
            Ok(DetailedHealth {
                status: HealthStatus::Healthy,
                document_count: Some(1),
                ..Default::default()
            })
        })
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn path(i: usize) -> String {
    format!("/apis/instantdb.io/v1alpha1/namespaces/bench/instantdbs/db-{i}")
}

async fn round(fake: &FakeApiServer, ctx: &Arc<Context>, n: usize) -> (usize, f64) {
    fake.clear_log();
    let t = Instant::now();
    futures::stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let db: InstantDb = serde_json::from_value(fake.get(&path(i)).unwrap()).unwrap();
            let ctx = ctx.clone();
            async move {
                reconcile(Arc::new(db), ctx).await.unwrap();
            }
        })
        .await;
    (fake.writes(), t.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let fake = FakeApiServer::new();
    for i in 0..n {
        fake.put(&path(i), json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
            "metadata": {"name": format!("db-{i}"), "namespace": "bench"}, "spec": {"storage": {"size": "1Gi"}}}));
    }
    let ctx = Arc::new(Context::new(
        fake.client(),
        OperatorConfig {
            default_image: "ghcr.io/instant-db/instant-db:0.1.0".into(),
            ..Default::default()
        },
        Arc::new(Healthy),
        Metrics::new().unwrap(),
    ));
    let start = Instant::now();
    let (w1, t1) = round(&fake, &ctx, n).await;
    println!(
        "round 1 (create):        {n} reconciles in {t1:.2}s = {:.0}/s, {w1} writes",
        n as f64 / t1
    );
    // the StatefulSet controller and kubelet would now make the pods ready
    for i in 0..n {
        let sts = format!("/apis/apps/v1/namespaces/bench/statefulsets/db-{i}");
        let g = fake.get(&sts).unwrap()["metadata"]["generation"].clone();
        fake.merge(&sts, &json!({"status": {"replicas": 1, "readyReplicas": 1, "observedGeneration": g, "currentRevision": "r", "updateRevision": "r"}}));
        fake.put(&format!("/api/v1/namespaces/bench/pods/db-{i}-0"), json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("db-{i}-0"), "namespace": "bench"}, "status": {"podIP": "10.0.0.1"}}));
    }
    let (w2, t2) = round(&fake, &ctx, n).await;
    println!(
        "round 2 (pods ready):    {n} reconciles in {t2:.2}s = {:.0}/s, {w2} writes",
        n as f64 / t2
    );
    let converge = start.elapsed().as_secs_f64();
    let (w3, t3) = round(&fake, &ctx, n).await;
    println!(
        "round 3 (steady state):  {n} reconciles in {t3:.2}s = {:.0}/s, {w3} writes",
        n as f64 / t3
    );
    println!("time to converge:        {converge:.2}s (create + ready rounds)");
    println!("writes after convergence: {w3}");
    println!(
        "peak RSS:                {:.1} MiB (includes the fake API server holding {} objects)",
        peak_rss_mib(),
        fake.len()
    );
}
