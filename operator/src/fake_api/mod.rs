//! An in-memory fake of the Kubernetes API server, for tests and the benchmark.
//!
//! It keeps objects by URL path, answers GET (object or list), POST, PATCH (server-side apply
//! replaces the object's spec-side fields, status patches replace `status`, merge patches are
//! merged), PUT and DELETE (an object with finalizers is only marked with a deletionTimestamp
//! until a write removes the last one), assigns uid / resourceVersion / generation, logs every request and
//! can be told to fail the next matching request. Watches (`?watch=true`) stream the changes of
//! every write, direct ones (`put`, `merge`, `remove`) included; see `watch`. It also holds plain text (`put_text`: a pod's
//! log). It does not implement port-forward (a WebSocket upgrade).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

mod request;
mod watch;

pub use request::{Logged, Permission};
use request::{in_list, is_watch, selected};

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    log: Vec<Logged>,
    failures: Vec<Failure>,
    hang: Vec<String>,
    next_uid: u64,
    next_rv: u64,
    watches: watch::Watches,
}

impl State {
    /// Stores `new` at `path` (None: removes it) and tells the watches. A stored object has
    /// been stamped with a new resourceVersion already; a removal takes the next one.
    fn store(&mut self, path: &str, new: Option<Value>) {
        let old = match &new {
            Some(obj) => self.objects.insert(path.to_string(), obj.clone()),
            None => self.objects.remove(path),
        };
        if old.is_none() && new.is_none() {
            return;
        }
        let rv = match &new {
            Some(obj) => watch::version(obj),
            None => {
                self.next_rv += 1;
                self.next_rv
            }
        };
        self.watches.changed(rv, path, old.as_ref(), new.as_ref());
    }
}

/// A failure to inject into matching requests.
struct Failure {
    method: String,
    path_part: String,
    code: u16,
    reason: String,
    message: String,
    /// None: every matching request fails until `clear_failures`.
    remaining: Option<u32>,
}

/// The fake API server. Cloning shares the state.
#[derive(Clone, Default)]
pub struct FakeApiServer {
    state: Arc<Mutex<State>>,
}

fn has_finalizers(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

impl FakeApiServer {
    /// An empty fake.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A kube client talking to this fake (in process, no socket).
    pub fn client(&self) -> kube::Client {
        let this = self.clone();
        let svc = tower::service_fn(move |req: Request<Body>| {
            let this = this.clone();
            async move { Ok::<_, Infallible>(this.handle(req).await) }
        });
        kube::Client::new(svc, "default")
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Logged> {
        self.lock().log.clone()
    }

    /// Forgets the request log.
    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    /// Number of write requests (anything but GET) so far.
    pub fn writes(&self) -> usize {
        self.lock().log.iter().filter(|l| l.is_write()).count()
    }

    /// Number of stored objects.
    pub fn len(&self) -> usize {
        self.lock().objects.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.lock().objects.is_empty()
    }

    /// The object stored at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.lock().objects.get(path).cloned()
    }

    /// Every object stored directly below `prefix` (a list path such as
    /// `/api/v1/namespaces/ns/configmaps`).
    pub fn objects_under(&self, prefix: &str) -> Vec<Value> {
        let list = prefix.trim_end_matches('/');
        self.lock()
            .objects
            .iter()
            .filter(|(k, _)| in_list(list, k))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Stores (or replaces) an object at `path` directly, as another actor would.
    pub fn put(&self, path: &str, obj: Value) {
        let mut st = self.lock();
        let old = st.objects.get(path).cloned();
        let obj = Self::stamp(&mut st, old.as_ref(), obj);
        st.store(path, Some(obj));
    }

    /// Stores plain text at `path` (a pod's `.../log`), answered as `text/plain` as the API
    /// server answers a log request.
    pub fn put_text(&self, path: &str, text: &str) {
        self.lock()
            .objects
            .insert(path.to_string(), Value::String(text.to_string()));
    }

    /// Merges `patch` into the object at `path` directly (no log entry), with a new
    /// resourceVersion (and generation when the spec changed) as a real write would get.
    pub fn merge(&self, path: &str, patch: &Value) {
        let mut st = self.lock();
        if let Some(old) = st.objects.get(path).cloned() {
            let mut obj = old.clone();
            merge(&mut obj, patch);
            let obj = Self::stamp(&mut st, Some(&old), obj);
            st.store(path, Some(obj));
        }
    }

    /// Removes the object at `path` directly.
    pub fn remove(&self, path: &str) {
        self.lock().store(path, None);
    }

    /// `(path, resourceVersion)` of every stored object a watch of `list` with label selector
    /// `selector` sees: what a watch cache that has caught up holds (tests compare the two).
    pub fn versions_matching(&self, list: &str, selector: Option<&str>) -> Vec<(String, String)> {
        let query = selector
            .map(|s| {
                format!(
                    "labelSelector={}",
                    s.replace('/', "%2F")
                        .replace('=', "%3D")
                        .replace(',', "%2C")
                )
            })
            .unwrap_or_default();
        self.lock()
            .objects
            .iter()
            .filter(|(k, v)| in_list(list, k) && selected(&query, v))
            .map(|(k, v)| (k.clone(), watch::version(v).to_string()))
            .collect()
    }

    /// Makes the next request with this method whose path contains `path_part` fail with `code`.
    pub fn fail_next(&self, method: &str, path_part: &str, code: u16) {
        self.fail_next_with(method, path_part, code, "InternalError", "injected failure");
    }

    /// Like [`Self::fail_next`], with the Status `reason` and `message` the API server would
    /// send (for example 422 / `Invalid` / the validation message).
    pub fn fail_next_with(
        &self,
        method: &str,
        path_part: &str,
        code: u16,
        reason: &str,
        message: &str,
    ) {
        self.push_failure(method, path_part, code, reason, message, Some(1));
    }

    /// Makes every request with this method (`*`: any) whose path contains `path_part` fail with
    /// `code` until [`Self::clear_failures`].
    pub fn fail_always(&self, method: &str, path_part: &str, code: u16) {
        self.push_failure(
            method,
            path_part,
            code,
            "InternalError",
            "injected failure",
            None,
        );
    }

    /// Forgets every injected failure and hang.
    pub fn clear_failures(&self) {
        let mut st = self.lock();
        st.failures.clear();
        st.hang.clear();
    }

    /// Makes every request whose path contains `path_part` wait forever (an API server that
    /// accepted the connection but never answers), until [`Self::clear_failures`].
    pub fn hang_matching(&self, path_part: &str) {
        self.lock().hang.push(path_part.to_string());
    }

    fn push_failure(
        &self,
        method: &str,
        path_part: &str,
        code: u16,
        reason: &str,
        message: &str,
        remaining: Option<u32>,
    ) {
        self.lock().failures.push(Failure {
            method: method.to_string(),
            path_part: path_part.to_string(),
            code,
            reason: reason.to_string(),
            message: message.to_string(),
            remaining,
        });
    }

    fn stamp(st: &mut State, old: Option<&Value>, mut obj: Value) -> Value {
        st.next_rv += 1;
        let rv = st.next_rv.to_string();
        let old_meta = old
            .and_then(|o| o.get("metadata"))
            .cloned()
            .unwrap_or(json!({}));
        let uid = old_meta.get("uid").cloned().unwrap_or_else(|| {
            st.next_uid += 1;
            json!(format!("00000000-0000-0000-0000-{:012}", st.next_uid))
        });
        let spec_changed = old.is_none_or(|o| o.get("spec") != obj.get("spec"));
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + i64::from(spec_changed);
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("uid".into(), uid);
            meta.insert("resourceVersion".into(), json!(rv));
            meta.insert("generation".into(), json!(generation.max(1)));
            meta.entry("creationTimestamp").or_insert_with(|| {
                old_meta
                    .get("creationTimestamp")
                    .cloned()
                    .unwrap_or(json!("2026-01-01T00:00:00Z"))
            });
        }
        obj
    }

    /// Serves this fake over plain HTTP on `listener`, with `extra` routes in front (the
    /// benchmark runs the fake in its own process this way, so the operator's memory is
    /// measured without the fake's store).
    pub async fn serve_http(
        self,
        listener: tokio::net::TcpListener,
        extra: axum::Router,
    ) -> std::io::Result<()> {
        let app = extra.fallback(move |req: axum::extract::Request| {
            let this = self.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                this.answer(&parts, &body).await
            }
        });
        axum::serve(listener, app).await
    }

    async fn handle(&self, req: Request<Body>) -> Response<axum::body::Body> {
        let (parts, body) = req.into_parts();
        let body = body.collect_bytes().await.unwrap_or_default();
        self.answer(&parts, &body).await
    }

    /// The response to one request: a watch streams events (one JSON object a line, as the
    /// API server sends them) until the client goes away; anything else is one JSON body.
    async fn answer(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Response<axum::body::Body> {
        let method = parts.method.clone();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or("").to_string();
        let hangs = self.lock().hang.iter().any(|p| path.contains(p.as_str()));
        if hangs {
            std::future::pending::<()>().await;
        }
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let (code, content_type, body) =
            if method == Method::GET && is_watch(Some(&query)) && !looks_like_object(&path) {
                match self.watch(&path, &query) {
                    Ok(rx) => {
                        let lines = futures::stream::unfold(rx, |mut rx| async move {
                            let ev = rx.recv().await?;
                            Some((Ok::<_, Infallible>(format!("{ev}\n")), rx))
                        });
                        (
                            StatusCode::OK,
                            "application/json",
                            axum::body::Body::from_stream(lines),
                        )
                    }
                    Err((code, value)) => (
                        code,
                        "application/json",
                        axum::body::Body::from(value.to_string()),
                    ),
                }
            } else {
                let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let (code, value) = self.respond(&method, &path, &query, &content_type, body);
                let (content_type, text) = encode(value);
                (code, content_type, axum::body::Body::from(text))
            };
        Response::builder()
            .status(code)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body)
            .unwrap_or_else(|_| Response::new(axum::body::Body::empty()))
    }

    /// Opens a watch of the list at `path` (logged, and failing like any request when a
    /// failure was injected for it).
    fn watch(
        &self,
        path: &str,
        query: &str,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<Value>, (StatusCode, Value)> {
        let mut st = self.lock();
        st.log.push(Logged {
            method: "GET".into(),
            path: path.to_string(),
            watch: true,
        });
        if let Some(failed) = Self::injected_failure(&mut st, &Method::GET, path) {
            return Err(failed);
        }
        let st = &mut *st;
        Ok(st.watches.open(
            path,
            query,
            watch::resource_version(query),
            st.objects.iter(),
        ))
    }

    /// The answer of the first injected failure matching the request, if any (counted down).
    fn injected_failure(
        st: &mut State,
        method: &Method,
        path: &str,
    ) -> Option<(StatusCode, Value)> {
        let i = st.failures.iter().position(|f| {
            (f.method == "*" || f.method == method.as_str()) && path.contains(f.path_part.as_str())
        })?;
        let f = &mut st.failures[i];
        let (code, body) = (f.code, status_body(f.code, &f.reason, &f.message));
        match &mut f.remaining {
            Some(n) if *n <= 1 => {
                st.failures.remove(i);
            }
            Some(n) => *n -= 1,
            None => {}
        }
        let sc = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Some((sc, body))
    }

    fn respond(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        content_type: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut st = self.lock();
        st.log.push(Logged {
            method: method.to_string(),
            path: path.to_string(),
            watch: is_watch(Some(query)),
        });
        if let Some(failed) = Self::injected_failure(&mut st, method, path) {
            return failed;
        }
        let (key, is_status) = match path.strip_suffix("/status") {
            Some(k) => (k.to_string(), true),
            None => (path.to_string(), false),
        };
        match *method {
            Method::GET => {
                if let Some(obj) = st.objects.get(&key) {
                    return (StatusCode::OK, obj.clone());
                }
                if looks_like_object(&key) {
                    return (
                        StatusCode::NOT_FOUND,
                        status_body(404, "NotFound", &format!("{key} not found")),
                    );
                }
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|(k, v)| in_list(&key, k) && selected(query, v))
                    .map(|(_, v)| v.clone())
                    .collect();
                (
                    StatusCode::OK,
                    json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": st.next_rv.to_string()}, "items": items}),
                )
            }
            Method::POST => {
                let name = body
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let key = format!("{key}/{name}");
                if st.objects.contains_key(&key) {
                    return (
                        StatusCode::CONFLICT,
                        status_body(409, "AlreadyExists", &format!("{key} already exists")),
                    );
                }
                let obj = Self::stamp(&mut st, None, body);
                st.store(&key, Some(obj.clone()));
                (StatusCode::CREATED, obj)
            }
            Method::PATCH | Method::PUT => {
                let old = st.objects.get(&key).cloned();
                if is_status && old.is_none() {
                    return (
                        StatusCode::NOT_FOUND,
                        status_body(404, "NotFound", &format!("{key} not found")),
                    );
                }
                if *method == Method::PUT {
                    let want = body.pointer("/metadata/resourceVersion").cloned();
                    let have = old
                        .as_ref()
                        .and_then(|o| o.pointer("/metadata/resourceVersion"))
                        .cloned();
                    if old.is_none() {
                        return (
                            StatusCode::NOT_FOUND,
                            status_body(404, "NotFound", &format!("{key} not found")),
                        );
                    }
                    if want.is_some() && want != have {
                        return (
                            StatusCode::CONFLICT,
                            status_body(409, "Conflict", "resourceVersion mismatch"),
                        );
                    }
                }
                let new = if is_status {
                    let mut o = old.clone().unwrap_or(Value::Null);
                    if content_type.contains("merge-patch") {
                        merge(
                            &mut o,
                            &json!({"status": body.get("status").cloned().unwrap_or(Value::Null)}),
                        );
                    } else if let Some(obj) = o.as_object_mut() {
                        obj.insert(
                            "status".into(),
                            body.get("status").cloned().unwrap_or(json!({})),
                        );
                    }
                    o
                } else if content_type.contains("merge-patch") || content_type.contains("strategic")
                {
                    let mut o = old.clone().unwrap_or(json!({}));
                    merge(&mut o, &body);
                    o
                } else {
                    // apply or replace: the body is the new object; status is kept.
                    let mut o = body;
                    if let (Some(obj), Some(status)) = (
                        o.as_object_mut(),
                        old.as_ref().and_then(|x| x.get("status")),
                    ) {
                        obj.insert("status".into(), status.clone());
                    }
                    if let (Some(meta), Some(old_meta)) = (
                        o.get_mut("metadata").and_then(Value::as_object_mut),
                        old.as_ref().and_then(|x| x.get("metadata")),
                    ) {
                        for k in ["finalizers", "deletionTimestamp"] {
                            if let Some(v) = old_meta.get(k)
                                && !meta.contains_key(k)
                            {
                                meta.insert(k.into(), v.clone());
                            }
                        }
                    }
                    o
                };
                let obj = Self::stamp(&mut st, old.as_ref(), new);
                // A write that changes nothing is a no-op, as on a real API server: no new
                // resourceVersion, no watch event (else two controllers' idempotent writes
                // would wake each other forever through the fake's watches).
                if let Some(old) = old.as_ref().filter(|o| same_but_version(o, &obj)) {
                    st.next_rv -= 1;
                    return (StatusCode::OK, old.clone());
                }
                // A deleted object waits for its finalizers; the last one removed lets it go.
                let released =
                    obj.pointer("/metadata/deletionTimestamp").is_some() && !has_finalizers(&obj);
                if released {
                    st.store(&key, None);
                } else {
                    st.store(&key, Some(obj.clone()));
                }
                (StatusCode::OK, obj)
            }
            Method::DELETE => match st.objects.get(&key).cloned() {
                // As the API server does: an object with finalizers is only marked deleted.
                // Deleting an object marked deleted already changes nothing.
                Some(old)
                    if has_finalizers(&old)
                        && old.pointer("/metadata/deletionTimestamp").is_some() =>
                {
                    (StatusCode::OK, old)
                }
                Some(old) if has_finalizers(&old) => {
                    let mut obj = old.clone();
                    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.entry("deletionTimestamp")
                            .or_insert_with(|| json!("2026-01-01T00:00:00Z"));
                    }
                    let obj = Self::stamp(&mut st, Some(&old), obj);
                    st.store(&key, Some(obj.clone()));
                    (StatusCode::OK, obj)
                }
                Some(obj) => {
                    st.store(&key, None);
                    (StatusCode::OK, obj)
                }
                None => (
                    StatusCode::NOT_FOUND,
                    status_body(404, "NotFound", &format!("{key} not found")),
                ),
            },
            _ => (
                StatusCode::METHOD_NOT_ALLOWED,
                status_body(405, "MethodNotAllowed", "unsupported"),
            ),
        }
    }
}

/// The response body of a stored value: text stored with `put_text` as itself, anything else
/// as JSON.
fn encode(value: Value) -> (&'static str, String) {
    match value {
        Value::String(text) => ("text/plain", text),
        other => ("application/json", other.to_string()),
    }
}

/// Whether two versions of an object differ only in their resourceVersion.
fn same_but_version(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

/// `/api/v1/namespaces/ns/configmaps/name` or `/apis/g/v/namespaces/ns/plural/name` or a
/// cluster-scoped `/apis/g/v/plural/name`.
fn looks_like_object(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let rest: &[&str] = match parts.first() {
        Some(&"api") => parts.get(2..).unwrap_or(&[]),
        Some(&"apis") => parts.get(3..).unwrap_or(&[]),
        _ => &[],
    };
    match rest {
        ["namespaces", _] => true,
        ["namespaces", _, _plural] => false,
        ["namespaces", _, _plural, _name, ..] => true,
        [_plural] => false,
        [_plural, _name, ..] => true,
        _ => false,
    }
}
