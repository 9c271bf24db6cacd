//! `instant-db-operator`: runs the controllers with leader election, metrics and probes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use instant_db_operator::controller::{Context, OperatorConfig};
use instant_db_operator::engine_client::HttpEngineClient;
use instant_db_operator::leader::{LeaderElector, LeaseConfig};
use instant_db_operator::metrics::Metrics;
use instant_db_operator::server::{Health, Role, ServerState, serve};
use instant_db_operator::{Error, controller};
use tokio::sync::watch;

/// Kubernetes operator for instant-db.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Engine image for InstantDb objects without spec.image (pinned per instance in
    /// status.image; see spec.imageUpdatePolicy). Default: the engine image of this
    /// operator's version.
    #[arg(
        long,
        env = "INSTANT_DB_ENGINE_IMAGE",
        default_value = controller::DEFAULT_ENGINE_IMAGE
    )]
    engine_image: String,
    /// Namespaces to watch, comma-separated; empty means all namespaces.
    #[arg(
        long,
        env = "WATCH_NAMESPACE",
        default_value = "",
        value_delimiter = ','
    )]
    watch_namespace: Vec<String>,
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Elect a leader with a Lease (disable only when a single replica runs).
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Namespace of the Lease (the operator's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "instant-db-operator")]
    lease_name: String,
    /// Identity in the Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Reconciles each controller runs at once; more wait in its queue. Bounds the memory of
    /// the start-up pass over many instances (see docs/operator.md, Benchmark).
    #[arg(
        long,
        env = "MAX_CONCURRENT_RECONCILES",
        default_value_t = controller::DEFAULT_MAX_CONCURRENT_RECONCILES,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    max_concurrent_reconciles: u16,
    /// Log format: json or text.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    log_format: String,
    /// Log filter (tracing directives), for example `info` or `instant_db_operator=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log_level: String,
}

fn init_logging(args: &Args) {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_format == "text" {
        builder.init();
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    instant_db_operator::tls::install_default_crypto_provider();
    let args = Args::parse();
    init_logging(&args);
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "operator stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Error> {
    let namespaces: Vec<String> = args
        .watch_namespace
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let metrics = Metrics::new()?;
    let health = Health::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = {
        let rx = stop_rx.clone();
        move || {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|v| *v).await;
            }
        }
    };
    {
        let tx = stop_tx.clone();
        let health = health.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested");
            health.set_role(Role::Stopping);
            let _ = tx.send(true);
        });
    }
    // The probe server starts first so the kubelet sees "starting" rather than a refused
    // connection while the client connects.
    let server = tokio::spawn(serve(
        args.metrics_addr,
        ServerState {
            metrics: metrics.clone(),
            health: health.clone(),
        },
        stopped(),
    ));
    // Works in-cluster (service account) and from KUBECONFIG / ~/.kube/config.
    let client = kube::Client::try_default().await?;

    let mut lost_leadership = None;
    let elector = if args.leader_election {
        let identity = args
            .identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("instant-db-operator-{}", std::process::id()));
        let elector = Arc::new(LeaderElector::new(
            client.clone(),
            LeaseConfig::new(
                args.lease_namespace.clone(),
                args.lease_name.clone(),
                identity.clone(),
            ),
        ));
        health.set_role(Role::Standby);
        tracing::info!(%identity, lease = %args.lease_name, "waiting for leadership");
        let acquired_at = tokio::select! {
            r = elector.acquire() => r?,
            () = stopped() => return Ok(()),
        };
        tracing::info!(%identity, "became leader");
        let e = elector.clone();
        lost_leadership = Some(tokio::spawn(async move {
            match e.keep_renewing(acquired_at).await {
                Ok(()) => Error::LeaderElection("renewal loop ended".into()),
                Err(err) => err,
            }
        }));
        Some(elector)
    } else {
        None
    };
    health.set_role(Role::Leader);
    metrics.leader.set(1);

    let engine = Arc::new(HttpEngineClient::new(8080, Duration::from_secs(3))?);
    let ctx = Arc::new(Context::new(
        client.clone(),
        OperatorConfig {
            default_image: args.engine_image.clone(),
            operator_namespace: args.lease_namespace.clone(),
            max_concurrent_reconciles: args.max_concurrent_reconciles,
            ..Default::default()
        },
        engine,
        metrics.clone(),
    ));
    tracing::info!(namespaces = ?namespaces, image = %args.engine_image, "starting controllers");
    let controllers = async {
        let all: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> = vec![
            Box::pin(controller::instantdb::run(
                ctx.clone(),
                namespaces.clone(),
                stop_rx.clone(),
                health.clone(),
            )),
            Box::pin(controller::backup::run(
                ctx.clone(),
                namespaces.clone(),
                stop_rx.clone(),
            )),
            Box::pin(controller::policy::run(
                ctx.clone(),
                namespaces.clone(),
                stop_rx.clone(),
            )),
            Box::pin(controller::restore::run(
                ctx.clone(),
                namespaces.clone(),
                stop_rx.clone(),
            )),
        ];
        // Any one ending is the end; on a shutdown request the others finish their
        // reconciles too.
        let ((), _, others) = futures::future::select_all(all).await;
        if *stop_rx.borrow() {
            futures::future::join_all(others).await;
        }
    };
    let lost = async {
        match lost_leadership {
            Some(handle) => match handle.await {
                Ok(e) => e,
                Err(e) => Error::LeaderElection(format!("renewal task failed: {e}")),
            },
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        () = controllers => {
            if *stop_rx.borrow() {
                Ok(())
            } else {
                // Report it on /healthz too, for the time until the process exits.
                health.set_failed();
                Err(Error::Stopped("the controllers ended without a shutdown request".into()))
            }
        }
        err = lost => {
            // Step down at once: dropping the controller future aborts its tasks, so no
            // reconcile writes after the renew deadline. The process exits non-zero and
            // comes back as a standby.
            tracing::error!(error = %err, "lost leadership; stopping the controllers");
            Err(err)
        }
    };
    metrics.leader.set(0);
    health.set_role(Role::Stopping);
    if let Some(e) = &elector
        // After losing the lease it is someone else's to release.
        && !matches!(result, Err(Error::LeaderElection(_)))
        && let Err(err) = e.release().await
    {
        tracing::warn!(error = %err, "cannot release the lease");
    }
    let _ = stop_tx.send(true);
    let served = match server.await {
        Ok(r) => r,
        Err(e) => Err(Error::Io(std::io::Error::other(e))),
    };
    result.and(served)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_default_engine_image_is_the_one_of_the_operator_version() {
        if std::env::var_os("INSTANT_DB_ENGINE_IMAGE").is_some() {
            return; // the environment overrides the default; nothing to check here
        }
        let args = Args::try_parse_from(["instant-db-operator"]).unwrap();
        assert_eq!(
            args.engine_image,
            format!(
                "ghcr.io/instant-db/instant-db:{}",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
