//! The `instant-db-operator` binary as built, started against an API server: it must connect,
//! run its controllers and report ready. The fake API serves plain HTTP here; a real API server
//! speaks HTTPS, which goes through the same rustls client configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use instant_db_operator::fake_api::FakeApiServer;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn kubeconfig(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters: [{{name: fake, cluster: {{server: \"{server}\"}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: default}}}}]\n\
             users: [{{name: fake, user: {{token: test}}}}]\n"
        ),
    )
    .unwrap();
    path
}

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_binary_connects_to_the_api_server_and_becomes_ready() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(FakeApiServer::new().serve_http(listener, axum::Router::new()));
    let dir = tempfile::tempdir().unwrap();
    let probes = free_port();
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_instant-db-operator"))
            .env("KUBECONFIG", kubeconfig(dir.path(), &api))
            .args(["--leader-election", "false", "--log-format", "text"])
            .args(["--metrics-addr", &format!("127.0.0.1:{probes}")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut stderr = String::new();
            let _ = child.0.stderr.take().unwrap().read_to_string(&mut stderr);
            panic!("the operator exited with {status} before it was ready:\n{stderr}");
        }
        let ready = http
            .get(format!("http://127.0.0.1:{probes}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the operator was not ready within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
