//! API keys and roles. Every request passes [`require_role`]: the route decides the role it
//! needs ([`required_role`]), the `Authorization: Bearer <key>` header decides the role the
//! caller has ([`Auth::role_of`]).
//!
//! Roles are ordered: `read` (search, list, get, stats, config) < `write` (also ingest, upload,
//! delete) < `admin` (also `/admin/*`). Keys come from files named after their role in
//! `auth.keys_dir` (one key per non-empty line); the admin token is the `admin` key.
//!
//! With no key at all the engine is "open": `/api/*` answers everyone, which [`check_exposure`]
//! allows only on a loopback address (the demo, a laptop) unless `auth.insecure_no_auth` says so.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::error::{Error, Result};

/// Environment variable that may hold the admin token itself (a token file wins over it).
pub const ADMIN_TOKEN_ENV: &str = "INSTANT_DB_ADMIN_TOKEN";

/// Shortest key accepted: anything shorter is guessable.
pub const MIN_KEY_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Probes, `/api/health`, the OpenAPI description and (by default) `/metrics`.
    Open,
    Needs(Role),
}

/// POST routes under `/api` that only read: the search (its query is a body) and the export
/// (its options are; a read key may already get every document one by one, so the export
/// reveals nothing more).
pub fn is_read_post(path: &str) -> bool {
    path == "/api/search" || path == "/api/export"
}

/// The role a request needs, from its method and path alone, so that a route added later is
/// covered without being listed here: `/admin/*` is admin; elsewhere reads (GET, HEAD and the
/// search POST) are `read` and every other method is `write`. Only the probes, `/api/health`,
/// the OpenAPI description and `/metrics` (unless configured otherwise) are open.
pub fn required_role(method: &Method, path: &str, metrics_requires_key: bool) -> Access {
    if path == "/health" || path.starts_with("/health/") {
        return Access::Open;
    }
    // `/api/health` is the small liveness answer older probes use; the description tells
    // clients how to authenticate, so it must be readable without a key.
    if path == "/api/health" || path == "/api/openapi.json" {
        return Access::Open;
    }
    if path == "/metrics" {
        return if metrics_requires_key {
            Access::Needs(Role::Read)
        } else {
            Access::Open
        };
    }
    if path == "/admin" || path.starts_with("/admin/") {
        return Access::Needs(Role::Admin);
    }
    if path == "/api" || path.starts_with("/api/") {
        let reads = method == Method::GET
            || method == Method::HEAD
            || method == Method::OPTIONS
            || (method == Method::POST && is_read_post(path));
        return Access::Needs(if reads { Role::Read } else { Role::Write });
    }
    // Anything else answers 404 today; should a route appear there it is not open by accident.
    Access::Needs(if method == Method::GET || method == Method::HEAD {
        Role::Read
    } else {
        Role::Write
    })
}

/// The keys of this process, kept as SHA-256 digests: comparing fixed-size digests in constant
/// time hides both where a guess differs and how long the real key is.
pub struct Auth {
    keys: Vec<(Role, [u8; 32])>,
    metrics_requires_key: bool,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Auth {
    /// Keys from `keys_dir` (files `read`, `write`) and the admin token.
    pub fn load(config: &crate::config::Config, admin_token: Option<Arc<str>>) -> Result<Auth> {
        let mut keys = vec![];
        if let Some(dir) = &config.auth.keys_dir {
            keys = load_keys_dir(dir)?;
        }
        if let Some(token) = admin_token {
            keys.push((Role::Admin, digest(&token)));
        }
        Ok(Auth {
            keys,
            metrics_requires_key: config.auth.metrics_requires_key,
        })
    }

    /// An engine with these keys (tests and embedders).
    pub fn from_keys(keys: &[(Role, &str)], metrics_requires_key: bool) -> Auth {
        Auth {
            keys: keys.iter().map(|(r, k)| (*r, digest(k))).collect(),
            metrics_requires_key,
        }
    }

    /// No key at all: `/api/*` is open (and `/admin/*` closed to everyone).
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.keys.iter().any(|(r, _)| *r == role)
    }

    /// The highest role whose key equals `given`. Every key is compared, so the time taken does
    /// not tell which one matched.
    pub fn role_of(&self, given: &str) -> Option<Role> {
        let given = digest(given);
        let mut best = None;
        for (role, key) in &self.keys {
            if bool::from(key.ct_eq(&given)) {
                best = best.max(Some(*role));
            }
        }
        best
    }

    /// `Ok` when the request may go on, else the 401 or 403 answer.
    pub fn check(&self, method: &Method, path: &str, bearer: Option<&str>) -> Result<(), Denied> {
        let needed = match required_role(method, path, self.metrics_requires_key) {
            Access::Open => return Ok(()),
            Access::Needs(role) => role,
        };
        if self.is_open() && needed < Role::Admin {
            return Ok(());
        }
        let Some(given) = bearer else {
            return Err(Denied::Unauthorized(
                if self.has_role(Role::Admin) || needed < Role::Admin {
                    format!(
                        "this endpoint needs an API key with the `{}` role: send `Authorization: Bearer <key>`",
                        needed.as_str()
                    )
                } else {
                    "no admin token is configured on this server, so /admin/* is closed: start it with --admin-token-file (INSTANT_DB_ADMIN_TOKEN_FILE)".to_string()
                },
            ));
        };
        match self.role_of(given) {
            // Says which setting of the client to check; never echoes the key.
            None if needed == Role::Admin => Err(Denied::Unauthorized(
                "the admin token is not valid: check the client's --admin-token-file, INSTANT_DB_ADMIN_TOKEN_FILE or INSTANT_DB_ADMIN_TOKEN".into(),
            )),
            None => Err(Denied::Unauthorized(format!(
                "the API key is not valid: send a `{}` key (the client's --api-key-file, INSTANT_DB_API_KEY_FILE or INSTANT_DB_API_KEY)",
                needed.as_str()
            ))),
            Some(role) if role < needed => Err(Denied::Forbidden(format!(
                "this endpoint needs the `{}` role; the key given has the `{}` role: use a `{}` key",
                needed.as_str(),
                role.as_str(),
                needed.as_str()
            ))),
            Some(_) => Ok(()),
        }
    }
}

/// A refused request.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    Unauthorized(String),
    Forbidden(String),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Denied::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m),
            Denied::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m),
        };
        let mut resp = super::extract::ErrorBody::new(code, message).with_status(status);
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// The key of an `Authorization: Bearer <key>` header (the scheme is case-insensitive).
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|k| !k.is_empty())
}

/// The middleware in front of every route.
pub async fn require_role(State(s): State<AppState>, req: Request, next: Next) -> Response {
    match s.auth.check(req.method(), req.uri().path(), bearer(&req)) {
        Ok(()) => next.run(req).await,
        Err(denied) => denied.into_response(),
    }
}

/// Keys from the files `read` and `write` in `dir`. At least one must exist: a configured
/// directory without keys is a mistake (a Secret not mounted), not a wish to run open.
fn load_keys_dir(dir: &Path) -> Result<Vec<(Role, [u8; 32])>> {
    let mut keys = vec![];
    let mut found = false;
    for role in [Role::Read, Role::Write] {
        let file: PathBuf = dir.join(role.as_str());
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::Config(format!(
                    "cannot read API key file {}: {e}",
                    file.display()
                )));
            }
        };
        found = true;
        for (n, line) in text.lines().enumerate() {
            let key = line.trim();
            if key.is_empty() {
                continue;
            }
            // The key itself is never echoed: the message names the file and the line.
            if key.len() < MIN_KEY_LEN || key.contains(char::is_whitespace) {
                return Err(Error::Config(format!(
                    "API key on line {} of {} is shorter than {MIN_KEY_LEN} characters or contains spaces: use one key of at least {MIN_KEY_LEN} characters per line",
                    n + 1,
                    file.display()
                )));
            }
            keys.push((role, digest(key)));
        }
    }
    if !found {
        return Err(Error::Config(format!(
            "auth.keys_dir {} holds no key file: put the keys in files named `read` and/or `write` there, or unset --api-keys-dir / INSTANT_DB_API_KEYS_DIR",
            dir.display()
        )));
    }
    if keys.is_empty() {
        return Err(Error::Config(format!(
            "the key files in {} are empty: put one key of at least {MIN_KEY_LEN} characters per line in `read` and/or `write`",
            dir.display()
        )));
    }
    Ok(keys)
}

/// Refuses to serve an open API on an address other hosts can reach.
pub fn check_exposure(listen: &str, auth_is_open: bool, insecure_no_auth: bool) -> Result<()> {
    if !auth_is_open {
        return Ok(());
    }
    let loopback = listen
        .parse::<SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(false);
    if loopback {
        return Ok(());
    }
    if insecure_no_auth {
        tracing::warn!(address = %listen, "serving WITHOUT authentication on a non-loopback address (--insecure-no-auth): anyone who can reach it can read, write and delete");
        return Ok(());
    }
    Err(Error::Config(format!(
        "refusing to serve {listen} without authentication: anyone who can reach it could read, write and delete documents. Configure keys (--api-keys-dir / INSTANT_DB_API_KEYS_DIR with files `read` and `write`, and/or --admin-token-file), listen on 127.0.0.1, or pass --insecure-no-auth / INSTANT_DB_INSECURE_NO_AUTH=true"
    )))
}

/// The admin bearer token: from `admin_token_file` when configured, else from
/// `INSTANT_DB_ADMIN_TOKEN`; `None` when neither is set. The file wins so that a mounted secret
/// is not silently replaced by a stray variable. The token itself is never logged.
pub fn admin_token(file: Option<&Path>, env: Option<String>) -> Result<Option<Arc<str>>> {
    let (token, origin) = match (file, env.filter(|t| !t.trim().is_empty())) {
        (Some(path), _) => {
            let token = std::fs::read_to_string(path).map_err(|e| {
                Error::Config(format!(
                    "cannot read admin token file {}: {e}",
                    path.display()
                ))
            })?;
            (token, format!("file {}", path.display()))
        }
        (None, Some(token)) => (token, ADMIN_TOKEN_ENV.to_string()),
        (None, None) => return Ok(None),
    };
    let token = token.trim();
    if token.len() < MIN_KEY_LEN {
        return Err(Error::Config(format!(
            "the admin token from {origin} is shorter than {MIN_KEY_LEN} characters"
        )));
    }
    tracing::info!(token_from = %origin, "admin API enabled");
    Ok(Some(Arc::from(token)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const READ: &str = "read-key-0123456789";
    const WRITE: &str = "write-key-0123456789";
    const ADMIN: &str = "admin-key-0123456789";

    fn auth() -> Auth {
        Auth::from_keys(
            &[
                (Role::Read, READ),
                (Role::Write, WRITE),
                (Role::Admin, ADMIN),
            ],
            false,
        )
    }

    #[test]
    fn routes_need_the_role_of_what_they_do() {
        let get = Method::GET;
        let post = Method::POST;
        let del = Method::DELETE;
        let r = |m: &Method, p: &str| required_role(m, p, false);
        assert_eq!(r(&get, "/health/ready"), Access::Open);
        assert_eq!(r(&get, "/health"), Access::Open);
        assert_eq!(r(&get, "/metrics"), Access::Open);
        assert_eq!(
            required_role(&get, "/metrics", true),
            Access::Needs(Role::Read)
        );
        assert_eq!(r(&post, "/api/search"), Access::Needs(Role::Read));
        assert_eq!(r(&post, "/api/export"), Access::Needs(Role::Read));
        assert_eq!(r(&get, "/api/documents"), Access::Needs(Role::Read));
        assert_eq!(r(&get, "/api/config"), Access::Needs(Role::Read));
        assert_eq!(r(&post, "/api/documents"), Access::Needs(Role::Write));
        assert_eq!(r(&post, "/api/process/file"), Access::Needs(Role::Write));
        assert_eq!(r(&del, "/api/documents/x"), Access::Needs(Role::Write));
        assert_eq!(r(&get, "/admin/backups"), Access::Needs(Role::Admin));
        assert_eq!(r(&post, "/admin/restores"), Access::Needs(Role::Admin));
        // a look-alike prefix is not the admin API, and not open either
        assert_eq!(r(&get, "/administrator"), Access::Needs(Role::Read));
        assert_eq!(r(&post, "/%61dmin/integrity"), Access::Needs(Role::Write));
    }

    #[test]
    fn each_key_opens_its_role_and_the_roles_below() {
        let a = auth();
        let search = (Method::POST, "/api/search");
        let ingest = (Method::POST, "/api/documents");
        let admin = (Method::GET, "/admin/backups");
        assert!(a.check(&search.0, search.1, Some(READ)).is_ok());
        assert!(matches!(
            a.check(&ingest.0, ingest.1, Some(READ)),
            Err(Denied::Forbidden(m)) if m.contains("`write`")
        ));
        assert!(a.check(&ingest.0, ingest.1, Some(WRITE)).is_ok());
        assert!(matches!(
            a.check(&admin.0, admin.1, Some(WRITE)),
            Err(Denied::Forbidden(m)) if m.contains("`admin`")
        ));
        for (m, p) in [search, ingest, admin] {
            assert!(a.check(&m, p, Some(ADMIN)).is_ok(), "{p}");
            assert!(matches!(a.check(&m, p, None), Err(Denied::Unauthorized(_))));
        }
    }

    #[test]
    fn a_wrong_key_of_the_same_length_is_unauthorized_and_not_echoed() {
        let a = auth();
        let wrong = "read-key-0123456780";
        assert_eq!(wrong.len(), READ.len());
        let Err(Denied::Unauthorized(m)) = a.check(&Method::POST, "/api/search", Some(wrong))
        else {
            panic!("a wrong key must be refused");
        };
        assert!(!m.contains(wrong), "{m}");
    }

    #[test]
    fn without_keys_the_api_is_open_and_admin_closed() {
        let a = Auth::from_keys(&[], false);
        assert!(a.is_open());
        assert!(a.check(&Method::POST, "/api/documents", None).is_ok());
        assert!(matches!(
            a.check(&Method::POST, "/admin/integrity", Some(ADMIN)),
            Err(Denied::Unauthorized(_))
        ));
    }

    #[test]
    fn keys_come_from_role_files_one_per_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("read"),
            format!("{READ}\n\nsecond-read-key-012345\n"),
        )
        .unwrap();
        let keys = load_keys_dir(dir.path()).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.iter().all(|(r, _)| *r == Role::Read));
    }

    #[test]
    fn a_short_key_or_an_empty_keys_dir_is_refused_without_echoing_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_keys_dir(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("`read`") && e.contains("INSTANT_DB_API_KEYS_DIR"),
            "{e}"
        );
        std::fs::write(dir.path().join("write"), "short-secret\n").unwrap();
        let e = load_keys_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("write"), "{e}");
        assert!(!e.contains("short-secret"), "{e}");
    }

    #[test]
    fn an_open_api_is_refused_on_a_network_address_unless_insecure() {
        assert!(check_exposure("127.0.0.1:8080", true, false).is_ok());
        assert!(check_exposure("[::1]:8080", true, false).is_ok());
        assert!(check_exposure("0.0.0.0:8080", false, false).is_ok());
        assert!(check_exposure("0.0.0.0:8080", true, true).is_ok());
        let e = check_exposure("0.0.0.0:8080", true, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--insecure-no-auth") && e.contains("INSTANT_DB_API_KEYS_DIR"),
            "{e}"
        );
    }

    #[test]
    fn the_admin_token_file_wins_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "file-token-0123456789\n").unwrap();
        let env = Some("env-token-0123456789".to_string());
        assert_eq!(
            admin_token(Some(&file), env.clone()).unwrap().as_deref(),
            Some("file-token-0123456789")
        );
        assert_eq!(
            admin_token(None, env).unwrap().as_deref(),
            Some("env-token-0123456789")
        );
        assert!(admin_token(None, Some("  ".into())).unwrap().is_none());
        assert!(admin_token(None, None).unwrap().is_none());
    }

    #[test]
    fn a_short_admin_token_is_refused_without_echoing_it() {
        let e = admin_token(None, Some("short-secret".into()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("INSTANT_DB_ADMIN_TOKEN") && e.contains("16"),
            "{e}"
        );
        assert!(!e.contains("short-secret"), "{e}");
    }
}
