//! Reconciles N InstantDb objects (default 1,000) until they converge and checks that the
//! steady state writes nothing. Prints throughput per round, API requests per reconcile by verb
//! (a steady reconcile reads only its watch caches: 0 GET, 0 LIST), reconciles per second of the
//! running controller while every engine's document count changes (a simulated ingest), time
//! to converge and peak memory of the operator side and of the fake API server separately;
//! exits non-zero when a reconcile fails, the steady-state round makes any write or any GET,
//! or the operator (the controller process) peaks at 100 MiB or more.
//!
//! The fake API server runs in a child process (this same binary with `--fake-api`) serving
//! HTTP on 127.0.0.1, so the operator's own memory is this process's peak RSS (its watch caches
//! included): the 10,000-odd stored objects live in the child. The rounds call reconcile
//! directly, 16 at a time, on objects read from the API as the controller's cache would hold
//! them; the children come from the watch caches as in the controller. The ingest phase runs
//! the controller itself (`controller::instantdb::run`, default configuration) in a third
//! process, as the operator runs it: its peak RSS is the operator's memory, checked against
//! the 100 MiB target (the run fails above it). It reconciles every instance once (its
//! start-up pass), then runs `BENCH_INGEST_SECS` (default 20) while every engine's document
//! count rises.
//!
//! Run: `cargo run --release -p instant-db-operator --example bench_reconcile [N]`. With
//! `BENCH_CHANGE_BEFORE_STEADY=1` one spec is changed before the last round, which must then
//! fail (checks that the zero-write check can fail).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use futures::StreamExt;
use futures::future::BoxFuture;
use instant_db_crds::InstantDb;
use instant_db_operator::Result;
use instant_db_operator::controller::instantdb::reconcile;
use instant_db_operator::controller::{Context, OperatorConfig};
use instant_db_operator::engine_client::{DetailedHealth, EngineApi, HealthStatus};
use instant_db_operator::fake_api::FakeApiServer;
use instant_db_operator::metrics::Metrics;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

const CONCURRENCY: usize = 16;
/// The operator's memory target at 1,000 instances (issue: keep < 100 MiB); checked at any N.
const MEMORY_TARGET_MIB: f64 = 100.0;
const NS: &str = "bench";

/// Healthy engines; while `ingesting`, each answer reports more documents than the last (an
/// ingest running on every instance).
#[derive(Default)]
struct Healthy {
    ingesting: std::sync::atomic::AtomicBool,
    documents: AtomicU64,
}
impl EngineApi for Healthy {
    fn detailed_health<'a>(
        &'a self,
        _: &'a instant_db_operator::engine_client::EngineTarget,
        _: &'a str,
    ) -> BoxFuture<'a, Result<DetailedHealth>> {
        let documents = if self.ingesting.load(Ordering::Relaxed) {
            self.documents.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            1
        };
        Box::pin(async move {
            Ok(DetailedHealth {
                status: HealthStatus::Healthy,
                document_count: Some(i64::try_from(documents).unwrap_or(i64::MAX)),
                ..Default::default()
            })
        })
    }
}

/// `VmHWM` (peak) and `VmRSS` (current) of this process, in MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn db_path(i: usize) -> String {
    format!("/apis/instantdb.io/v1alpha1/namespaces/{NS}/instantdbs/db-{i}")
}

/// The child: a fake API server holding `n` InstantDb objects, with `/_bench/*` controls.
async fn serve_fake(n: usize) {
    let fake = FakeApiServer::new();
    for i in 0..n {
        fake.put(&db_path(i), json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
            "metadata": {"name": format!("db-{i}"), "namespace": NS}, "spec": {"storage": {"size": "1Gi"}}}));
    }
    let (f1, f2, f3, f4) = (fake.clone(), fake.clone(), fake.clone(), fake.clone());
    let extra = axum::Router::new()
        .route(
            "/_bench/stats",
            get(move || {
                let f = f1.clone();
                async move {
                    let (peak, now) = rss_mib();
                    axum::Json(json!({"writes": f.writes(), "objects": f.len(),
                                      "peak_rss_mib": peak, "rss_mib": now}))
                }
            }),
        )
        .route(
            "/_bench/requests",
            get(move || {
                let f = f4.clone();
                async move {
                    // RBAC verb of each request since the last clear: get, list, watch, patch...
                    let mut by_verb = std::collections::BTreeMap::<String, u64>::new();
                    for l in f.log() {
                        let verb = l.permission().map_or_else(|| "other".into(), |p| p.verb);
                        *by_verb.entry(verb).or_default() += 1;
                    }
                    axum::Json(json!(by_verb))
                }
            }),
        )
        .route(
            "/_bench/clear",
            post(move || {
                let f = f2.clone();
                async move { f.clear_log() }
            }),
        )
        .route(
            "/_bench/ready",
            post(move || {
                let f = f3.clone();
                async move {
                    // what the StatefulSet controller and kubelet would do: pods ready
                    for i in 0..n {
                        let sts = format!("/apis/apps/v1/namespaces/{NS}/statefulsets/db-{i}");
                        let Some(obj) = f.get(&sts) else { continue };
                        let g = obj["metadata"]["generation"].clone();
                        f.merge(&sts, &json!({"status": {"replicas": 1, "readyReplicas": 1,
                            "observedGeneration": g, "currentRevision": "r", "updateRevision": "r"}}));
                        f.put(&format!("/api/v1/namespaces/{NS}/pods/db-{i}-0"), json!({"apiVersion": "v1",
                            "kind": "Pod", "metadata": {"name": format!("db-{i}-0"), "namespace": NS,
                                "labels": {"app.kubernetes.io/name": "instant-db", "app.kubernetes.io/component": "engine",
                                           "app.kubernetes.io/instance": format!("db-{i}")}},
                            "status": {"phase": "Running", "podIP": "10.0.0.1",
                                "conditions": [{"type": "Ready", "status": "True"}]}}));
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening {}", listener.local_addr().unwrap().port());
    fake.serve_http(listener, extra).await.unwrap();
}

struct Bench {
    base: String,
    http: reqwest::Client,
    ctx: Arc<Context>,
    engine: Arc<Healthy>,
    dbs: Api<InstantDb>,
}

impl Bench {
    /// A client of the fake at `base`, with a fresh operator context (default configuration).
    fn connect(base: String) -> Bench {
        let config = kube::Config::new(base.parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let engine = Arc::new(Healthy::default());
        Bench {
            base,
            http: reqwest::Client::new(),
            ctx: Arc::new(Context::new(
                client.clone(),
                OperatorConfig {
                    default_image: "ghcr.io/instant-db/instant-db:0.1.0".into(),
                    ..Default::default()
                },
                engine.clone(),
                Metrics::new().unwrap(),
            )),
            engine,
            dbs: Api::namespaced(client, NS),
        }
    }

    /// Runs the InstantDb controller (`controller::instantdb::run`, with its own watch caches)
    /// until it has reconciled every instance once, then `BENCH_INGEST_SECS` (default 20) while
    /// every engine's document count rises; returns the figures as JSON.
    async fn controller_phase(&self, n: usize) -> Value {
        let secs: u64 = std::env::var("BENCH_INGEST_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20);
        let (_, start_rss) = rss_mib();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let controller = tokio::spawn(instant_db_operator::controller::instantdb::run(
            self.ctx.clone(),
            vec![NS.into()],
            stop_rx,
            instant_db_operator::server::Health::new(),
        ));
        // The controller first reconciles every object it lists; the ingest is measured after.
        while self.reconciles() < n as u64 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let first_pass = started.elapsed().as_secs_f64();
        let (_, after_first_pass) = rss_mib();
        self.control("clear").await;
        self.engine.ingesting.store(true, Ordering::Relaxed);
        let (r0, t0) = (self.reconciles(), Instant::now());
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let (r1, elapsed) = (self.reconciles(), t0.elapsed().as_secs_f64());
        let requests = self.requests().await;
        stop_tx.send(true).unwrap();
        let _ = controller.await;
        let (peak, _) = rss_mib();
        json!({
            "ingest_secs": secs,
            "reconciles_per_sec": (r1 - r0) as f64 / elapsed,
            "health_reads": self.engine.documents.load(Ordering::Relaxed),
            "requests": format!("{requests:?}"),
            "first_pass_secs": first_pass,
            "start_rss_mib": start_rss,
            "rss_after_first_pass_mib": after_first_pass,
            "peak_rss_mib": peak,
            "max_concurrent_reconciles": self.ctx.config.max_concurrent_reconciles,
        })
    }

    async fn stats(&self) -> Value {
        self.read("stats").await
    }

    /// `GET /_bench/{what}` of the fake.
    async fn read(&self, what: &str) -> Value {
        let url = format!("{}/_bench/{what}", self.base);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn control(&self, what: &str) {
        let url = format!("{}/_bench/{what}", self.base);
        self.http.post(url).send().await.unwrap();
    }

    /// Requests by RBAC verb since the last clear.
    async fn requests(&self) -> std::collections::BTreeMap<String, u64> {
        serde_json::from_value(self.read("requests").await).unwrap()
    }

    /// Waits until the watch caches stop changing (they have taken in the last round's writes).
    async fn settle(&self) {
        let caches = self.ctx.caches.get(NS).unwrap();
        let mut last = caches.versions();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = caches.versions();
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// Reconciles of the InstantDb controller counted so far.
    fn reconciles(&self) -> u64 {
        ["success", "error"]
            .iter()
            .map(|r| {
                self.ctx
                    .metrics
                    .reconciles
                    .with_label_values(&["instantdb", r])
                    .get()
            })
            .sum()
    }

    /// One reconcile of every object; returns (writes, seconds, failures).
    async fn round(&self, n: usize) -> (u64, f64, usize) {
        // The objects as the controller's primary store holds them, read before the request
        // log is cleared: the reconciles' own requests are what is counted.
        let dbs = self.dbs.list(&Default::default()).await.unwrap().items;
        assert_eq!(dbs.len(), n);
        self.control("clear").await;
        let t = Instant::now();
        let failures = futures::stream::iter(dbs)
            .map(|db| async move { reconcile(Arc::new(db), self.ctx.clone()).await.is_err() })
            .buffer_unordered(CONCURRENCY)
            .filter(|failed| std::future::ready(*failed))
            .count()
            .await;
        let secs = t.elapsed().as_secs_f64();
        let writes = self.stats().await["writes"].as_u64().unwrap();
        (writes, secs, failures)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    instant_db_operator::tls::install_default_crypto_provider();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--fake-api") {
        serve_fake(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000)).await;
        return ExitCode::SUCCESS;
    }
    if args.get(1).map(String::as_str) == Some("--controller") {
        let base = args[2].clone();
        let n: usize = args[3].parse().unwrap();
        let bench = Bench::connect(base);
        println!("{}", bench.controller_phase(n).await);
        return ExitCode::SUCCESS;
    }
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--fake-api", &n.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .trim_start_matches("listening ")
        .parse()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let (_, baseline) = rss_mib();
    let bench = Bench::connect(base.clone());
    let caches = bench.ctx.caches.spawn(&bench.ctx.client, Some(NS));
    assert!(caches.ready().await, "the watch caches did not sync");
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("{n} InstantDb objects, {CONCURRENCY} reconciles at a time, {build} build");
    let start = Instant::now();
    let (w1, t1, f1) = bench.round(n).await;
    println!(
        "round 1 (create):        {:>6.0} reconciles/s  {t1:>6.2}s  {w1:>6} writes",
        n as f64 / t1
    );
    bench.control("ready").await;
    bench.settle().await;
    let (w2, t2, f2) = bench.round(n).await;
    println!(
        "round 2 (pods ready):    {:>6.0} reconciles/s  {t2:>6.2}s  {w2:>6} writes",
        n as f64 / t2
    );
    let converge = start.elapsed().as_secs_f64();
    if std::env::var_os("BENCH_CHANGE_BEFORE_STEADY").is_some() {
        // Self-check of the zero-write assertion: a spec change makes the last round write.
        let patch = json!({"spec": {"logging": {"level": "debug"}}});
        bench
            .dbs
            .patch("db-0", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    bench.settle().await;
    let (w3, t3, f3) = bench.round(n).await;
    println!(
        "round 3 (steady state):  {:>6.0} reconciles/s  {t3:>6.2}s  {w3:>6} writes",
        n as f64 / t3
    );
    let requests = bench.requests().await;
    let per = |verb: &str| requests.get(verb).copied().unwrap_or(0) as f64 / n as f64;
    println!(
        "requests per steady reconcile: {:.2} GET, {:.2} LIST, {:.2} WATCH, {:.2} PATCH, {:.2} CREATE, {:.2} DELETE ({requests:?} for {n})",
        per("get"),
        per("list"),
        per("watch"),
        per("patch"),
        per("create"),
        per("delete")
    );
    let (peak_rounds, now_rounds) = rss_mib();
    println!(
        "operator after the rounds: peak RSS {peak_rounds:.1} MiB, now {now_rounds:.1} MiB (one set of watch caches)"
    );
    let steady_gets =
        requests.get("get").copied().unwrap_or(0) + requests.get("list").copied().unwrap_or(0);

    // The controller itself, as the operator runs it: in a process of its own, so its memory
    // is measured alone (one set of watch caches, its start-up pass over every instance).
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--controller", &base, &n.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let c: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "controller process: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    println!(
        "simulated ingest ({}s, controller running): {:.1} reconciles/s for {n} instances, {} health reads; requests {}",
        c["ingest_secs"],
        c["reconciles_per_sec"].as_f64().unwrap_or(0.0),
        c["health_reads"],
        c["requests"]
    );
    println!("time to converge:        {converge:.2}s (create + ready rounds)");
    let (peak, now) = rss_mib();
    println!(
        "rounds process:          peak RSS {peak:.1} MiB, now {now:.1} MiB (at start {baseline:.1} MiB; reconcile called directly, 16 at a time)"
    );
    let controller_peak = c["peak_rss_mib"].as_f64().unwrap_or(f64::MAX);
    println!(
        "operator (controller):   peak RSS {controller_peak:.1} MiB, {:.1} MiB after its start-up pass over {n} instances ({:.1} s, at most {} reconciles at once; at start {:.1} MiB)",
        c["rss_after_first_pass_mib"].as_f64().unwrap_or(0.0),
        c["first_pass_secs"].as_f64().unwrap_or(0.0),
        c["max_concurrent_reconciles"],
        c["start_rss_mib"].as_f64().unwrap_or(0.0),
    );
    let fake = bench.stats().await;
    println!(
        "fake API process:        peak RSS {:.1} MiB holding {} objects (not the operator's)",
        fake["peak_rss_mib"].as_f64().unwrap_or(0.0),
        fake["objects"]
    );
    let _ = child.kill();
    let _ = child.wait();
    let mut ok = true;
    if f1 + f2 + f3 > 0 {
        eprintln!("FAIL: {} reconciles failed", f1 + f2 + f3);
        ok = false;
    }
    if w3 > 0 {
        eprintln!("FAIL: the steady-state round made {w3} writes; it must make none");
        ok = false;
    }
    if steady_gets > 0 {
        eprintln!(
            "FAIL: the steady-state round made {steady_gets} GET/LIST requests; it must read only its caches"
        );
        ok = false;
    }
    if controller_peak >= MEMORY_TARGET_MIB {
        eprintln!(
            "FAIL: the operator's peak RSS {controller_peak:.1} MiB is not under {MEMORY_TARGET_MIB} MiB"
        );
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
