//! `search` and `check`: requests to the engine itself, with a key read from the instance's
//! Secret, sent over a port-forward to the engine pod.
//!
//! Why a port-forward and not the API server's service proxy
//! (`/api/v1/namespaces/NS/services/NAME:8080/proxy/...`): the engine authenticates with
//! `Authorization: Bearer <key>`, and that header cannot pass the proxy. The API server
//! authenticates the kubectl user with that same header (a token user's own bearer token) and
//! removes it once the user is authenticated, before it proxies (kubernetes/kubernetes#38775);
//! the key would have to travel in the URL instead, where proxies and API server audit logs
//! record it. Through a port-forward the HTTP request reaches the engine unchanged, the key in
//! its header, inside the API server's authenticated tunnel. The tunnel is served on a
//! loopback port for exactly one connection, the request's, and closed after it.

use std::time::Duration;

use instant_db_operator::builders::{ADMIN_TOKEN_KEY, ENGINE_PORT, READ_KEY, names};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use serde_json::{Value, json};

use crate::cli::Mode;
use crate::commands::{instance, optional};
use crate::error::{Error, Result, is_not_found};
use crate::{Ctx, format};

/// How long one engine request may take (an integrity check reads the whole database).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// `POST /api/search` with the read key in the Authorization header; the URL carries no key.
pub fn search_request(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    query: &str,
    top_k: usize,
    mode: Mode,
) -> reqwest::Result<reqwest::Request> {
    http.post(format!("{base}/api/search"))
        .bearer_auth(key)
        .json(&json!({"query": query, "top_k": top_k, "mode": mode.as_str()}))
        .build()
}

/// `POST /admin/integrity` with the admin token in the Authorization header.
pub fn integrity_request(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> reqwest::Result<reqwest::Request> {
    http.post(format!("{base}/admin/integrity"))
        .bearer_auth(token)
        .build()
}

/// Sends `req` and returns the engine's JSON answer, or its error.
pub async fn exchange(
    http: &reqwest::Client,
    req: reqwest::Request,
    instance: &str,
    what: &'static str,
) -> Result<Value> {
    let unreachable = |e: reqwest::Error| Error::Unreachable {
        instance: instance.into(),
        what,
        // Without the URL: it names only the loopback port of the tunnel.
        message: e.without_url().to_string(),
    };
    let resp = http.execute(req).await.map_err(unreachable)?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(unreachable)?;
    if !status.is_success() {
        return Err(Error::Engine {
            what,
            status: status.as_u16(),
            message: instant_db_operator::engine_client::engine_message(&body).to_string(),
        });
    }
    Ok(body)
}

/// `key` of Secret `secret` of `instance`.
async fn secret_value(
    ctx: &Ctx<'_>,
    instance: &str,
    secret: &str,
    key: &'static str,
) -> Result<String> {
    let s: Secret = optional(ctx, secret)
        .await?
        .ok_or_else(|| Error::NotFound {
            kind: "Secret",
            name: secret.into(),
            namespace: ctx.namespace.clone(),
            hint: format!(
                "the operator creates it with the instance: check `kubectl describe instantdb {instance} -n {}`",
                ctx.namespace
            ),
        })?;
    let missing = || Error::SecretKey {
        secret: secret.into(),
        key,
        instance: instance.into(),
    };
    let bytes = s
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .ok_or_else(missing)?;
    let value = String::from_utf8(bytes).map_err(|_| missing())?;
    let value = value.trim().to_string();
    if value.is_empty() {
        return Err(missing());
    }
    Ok(value)
}

/// Serves a port-forward to the engine pod of `instance` on a loopback port for one
/// connection; returns the base URL to send the request to.
async fn tunnel(ctx: &Ctx<'_>, instance: &str) -> Result<String> {
    let pod = names::pod(instance);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let port = u16::try_from(ENGINE_PORT).unwrap_or(8080);
    // Opened before anything listens: a missing pod or a missing permission is reported as
    // such, not as a connection reset.
    let mut forwarder = pods.portforward(&pod, &[port]).await.map_err(|e| {
        if is_not_found(&e) {
            Error::NotFound {
                kind: "Pod",
                name: pod.clone(),
                namespace: ctx.namespace.clone(),
                hint: format!(
                    "the engine is not running (suspended, or not created yet): see `kubectl instantdb status {instance} -n {}`",
                    ctx.namespace
                ),
            }
        } else {
            Error::kube(format!("opening a port-forward to pod {pod}"))(e)
        }
    })?;
    let stream = forwarder.take_stream(port);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        let Some(mut upstream) = stream else { return };
        if let Ok((mut conn, _)) = listener.accept().await {
            drop(listener);
            let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
        }
        drop(upstream);
        let _ = forwarder.join().await;
    });
    Ok(format!("http://{local}"))
}

fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        // One request per tunnel: no connection is kept for a second one.
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| Error::Usage(format!("cannot build the HTTP client: {e}")))
}

/// `kubectl instantdb search NAME QUERY`.
pub async fn search(
    ctx: &mut Ctx<'_>,
    name: &str,
    query: &str,
    top_k: usize,
    mode: Mode,
) -> Result<()> {
    if query.trim().is_empty() {
        return Err(Error::Usage(
            "the query is empty; pass the words to search for: kubectl instantdb search NAME \"what to find\"".into(),
        ));
    }
    instance(ctx, name).await?;
    let key = secret_value(ctx, name, &names::api_secret(name), READ_KEY).await?;
    let base = tunnel(ctx, name).await?;
    let http = http_client()?;
    let req = search_request(&http, &base, &key, query, top_k, mode)
        .map_err(|e| Error::Usage(format!("cannot build the search request: {e}")))?;
    let answer = exchange(&http, req, name, "the search").await?;
    ctx.out.write_all(format::search_hits(&answer).as_bytes())?;
    Ok(())
}

/// `kubectl instantdb check NAME`: exits with an error when the check finds problems.
pub async fn check(ctx: &mut Ctx<'_>, name: &str) -> Result<()> {
    instance(ctx, name).await?;
    let token = secret_value(ctx, name, &names::admin_secret(name), ADMIN_TOKEN_KEY).await?;
    let base = tunnel(ctx, name).await?;
    let http = http_client()?;
    let req = integrity_request(&http, &base, &token)
        .map_err(|e| Error::Usage(format!("cannot build the integrity request: {e}")))?;
    let report = exchange(&http, req, name, "the integrity check").await?;
    let (ok, text) = format::integrity_report(&report);
    ctx.out.write_all(text.as_bytes())?;
    if ok {
        Ok(())
    } else {
        Err(Error::IntegrityFailed {
            instance: name.into(),
            advice: report["advice"]
                .as_str()
                .unwrap_or("run `instant-db repair --server` if only derived data is damaged, else restore a backup (kubectl instantdb restore NAME)")
                .into(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_search_request_carries_the_key_in_its_header_and_nowhere_else() {
        let http = reqwest::Client::new();
        let key = "read-key-0123456789abcdef";
        let req = search_request(
            &http,
            "http://127.0.0.1:41234",
            key,
            "backup retention",
            3,
            Mode::Keyword,
        )
        .unwrap();
        assert_eq!(req.method(), reqwest::Method::POST);
        assert_eq!(req.url().as_str(), "http://127.0.0.1:41234/api/search");
        assert!(!req.url().as_str().contains(key));
        assert_eq!(
            req.headers()[reqwest::header::AUTHORIZATION],
            format!("Bearer {key}").as_str()
        );
        let body: Value = serde_json::from_slice(req.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"query": "backup retention", "top_k": 3, "mode": "keyword"})
        );
        assert!(!body.to_string().contains(key));
    }

    #[test]
    fn the_integrity_request_carries_the_admin_token_in_its_header() {
        let http = reqwest::Client::new();
        let req = integrity_request(&http, "http://127.0.0.1:1", "admin-token").unwrap();
        assert_eq!(req.url().path(), "/admin/integrity");
        assert_eq!(req.url().query(), None);
        assert_eq!(
            req.headers()[reqwest::header::AUTHORIZATION],
            "Bearer admin-token"
        );
    }
}
