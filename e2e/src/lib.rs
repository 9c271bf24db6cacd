//! Real-cluster tests: see e2e/tests/. This library holds what both of them need.

use std::io::Write;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// Prints straight to stderr: the test harness captures `println!`, and a skip must be seen.
pub fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// How long one wait may take: `E2E_TIMEOUT_SECS`, default 300 s.
pub fn timeout() -> Duration {
    Duration::from_secs(
        std::env::var("E2E_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300),
    )
}

/// Creates (or keeps) the namespace `ns` with server-side apply.
pub async fn apply_namespace(
    client: &kube::Client,
    ns: &str,
    pp: &PatchParams,
) -> Result<Namespace, kube::Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            ns,
            pp,
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            ),
        )
        .await
}
