//! Where backups live: a local directory or an S3-compatible bucket.
//!
//! Accepted forms (see [`ACCEPTED_FORMS`]):
//! - a plain path (`/backups`, `./backups`) or `file:///absolute/dir` → a directory;
//! - `s3://bucket/optional/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&allow_http=true`
//!   → an S3-compatible store (path-style requests).
//!
//! S3 credentials never travel in the URL. Either the URL names them, `credentials=NAME` (a
//! Kubernetes Secret name, not a secret), and they are read from the files
//! `<credentials dir>/NAME.AWS_ACCESS_KEY_ID`, `NAME.AWS_SECRET_ACCESS_KEY` and optionally
//! `NAME.AWS_SESSION_TOKEN` (the operator mounts them there); or they come from the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`; the CLI's way).
//! `AWS_REGION` / `AWS_ENDPOINT_URL` are fallbacks for the region and endpoint. The old query
//! parameters `access_key_id` / `secret_access_key` / `session_token` are refused: a URL is
//! logged, stored in job records and sent in request bodies.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use reqwest::Url;

use super::BackupError;
use crate::resilience::CircuitBreaker;

/// Human description of the accepted location forms (used in error messages).
pub const ACCEPTED_FORMS: &str = "accepted forms: a directory path (e.g. /backups), file:///absolute/dir, \
or s3://bucket/prefix?endpoint=http://host:9000&region=us-east-1&allow_http=true \
(add credentials=NAME to use the credentials files NAME.AWS_ACCESS_KEY_ID and \
NAME.AWS_SECRET_ACCESS_KEY of the credentials directory; without it, from AWS_ACCESS_KEY_ID / \
AWS_SECRET_ACCESS_KEY)";

/// Where named credentials are read when the configuration does not say
/// (`backup.credentials_dir`); the operator mounts them there.
pub const DEFAULT_CREDENTIALS_DIR: &str = "/etc/instant-db-credentials";

/// Query parameters that once carried credentials in the URL; refused now.
const CREDENTIAL_PARAMS: &[&str] = &["access_key_id", "secret_access_key", "session_token"];

/// Retries done inside the S3 client for one request.
pub const S3_CLIENT_MAX_RETRIES: usize = 2;
/// Time budget of the S3 client's own retries for one request.
pub const S3_CLIENT_RETRY_TIMEOUT: Duration = Duration::from_secs(30);
/// TCP connect timeout to the S3 endpoint.
pub const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of one S3 request (one multipart part, at most 8 MiB).
pub const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A parsed backup destination (a "folder" holding `<id>.tar.gz` archives).
#[derive(Clone)]
pub enum Location {
    /// A local (or mounted volume) directory.
    Dir(PathBuf),
    /// An S3-compatible bucket and key prefix.
    S3(S3Location),
}

/// An S3-compatible destination.
#[derive(Clone)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix without leading/trailing slashes (may be empty).
    pub prefix: String,
    /// Custom endpoint, if any.
    pub endpoint: Option<String>,
    /// Region.
    pub region: String,
    /// Whether plain HTTP is allowed.
    pub allow_http: bool,
    /// Name of the credentials (`credentials=NAME`), kept in the URLs of this location so an
    /// archive's location still says which credentials read it back.
    pub credentials: Option<String>,
    pub(crate) store: Arc<AmazonS3>,
    /// Guards every operation on the store (see [`Location::with_breaker`]).
    pub(crate) breaker: Option<CircuitBreaker>,
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // never prints credentials
        write!(f, "Location({})", self.url())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

fn invalid(url: &str, reason: impl Into<String>) -> BackupError {
    BackupError::InvalidLocation {
        url: super::redact_url(url),
        reason: reason.into(),
    }
}

fn parse_bool(url: &str, key: &str, v: &str) -> Result<bool, BackupError> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(invalid(
            url,
            format!("query parameter {key} must be true or false, got {v:?}"),
        )),
    }
}

/// The keys of one S3 credentials set.
struct S3Credentials {
    key_id: String,
    secret: String,
    token: Option<String>,
}

/// `[a-z0-9]([-a-z0-9.]*[a-z0-9])?`, at most 253 characters: a Kubernetes Secret name, which
/// also keeps the name from leaving the credentials directory (no `/`, no `..` at the ends).
fn valid_credentials_name(name: &str) -> bool {
    let b = name.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 253
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter().all(|c| edge(c) || *c == b'-' || *c == b'.')
}

/// Reads the credentials named `name` from `dir`. Missing files are [`BackupError::CredentialsNotFound`]
/// (in Kubernetes: the kubelet has not synced a new Secret into the pod yet, so worth a retry).
fn read_credentials(dir: &Path, name: &str) -> Result<S3Credentials, BackupError> {
    let file = |key: &str| dir.join(format!("{name}.{key}"));
    let read = |key: &str| -> Result<Option<String>, BackupError> {
        let path = file(key);
        match std::fs::read_to_string(&path) {
            Ok(v) => Ok(Some(v.trim().to_string()).filter(|v| !v.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(super::io_err(&path, e)),
        }
    };
    let key_id = read("AWS_ACCESS_KEY_ID")?;
    let secret = read("AWS_SECRET_ACCESS_KEY")?;
    match (key_id, secret) {
        (Some(key_id), Some(secret)) => Ok(S3Credentials {
            key_id,
            secret,
            token: read("AWS_SESSION_TOKEN")?,
        }),
        _ => Err(BackupError::CredentialsNotFound {
            name: name.to_string(),
            files: format!(
                "{} and {}",
                file("AWS_ACCESS_KEY_ID").display(),
                file("AWS_SECRET_ACCESS_KEY").display()
            ),
        }),
    }
}

impl Location {
    /// Parse a destination URL (a folder of backups), named credentials from
    /// [`DEFAULT_CREDENTIALS_DIR`]. See the module docs.
    pub fn parse(url: &str) -> Result<Self, BackupError> {
        Self::parse_with(url, Path::new(DEFAULT_CREDENTIALS_DIR))
    }

    /// [`Location::parse`] with named credentials (`credentials=NAME`) read from `credentials_dir`.
    pub fn parse_with(url: &str, credentials_dir: &Path) -> Result<Self, BackupError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(invalid(url, "empty location"));
        }
        if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(invalid(
                    url,
                    "file:// URLs need an absolute path (file:///abs/dir)",
                ));
            }
            let u = Url::parse(url).map_err(|e| invalid(url, e.to_string()))?;
            let p = u
                .to_file_path()
                .map_err(|()| invalid(url, "not a local file path"))?;
            return Ok(Location::Dir(p));
        }
        if url.starts_with("s3://") {
            return Self::parse_s3(url, credentials_dir);
        }
        if url.contains("://") {
            return Err(invalid(url, "unsupported scheme"));
        }
        Ok(Location::Dir(PathBuf::from(url)))
    }

    fn parse_s3(url: &str, credentials_dir: &Path) -> Result<Self, BackupError> {
        let u = Url::parse(url).map_err(|e| invalid(url, e.to_string()))?;
        let bucket = u.host_str().unwrap_or_default().to_string();
        if bucket.is_empty() {
            return Err(invalid(url, "missing bucket name (s3://bucket/prefix)"));
        }
        let prefix = u.path().trim_matches('/').to_string();
        if prefix.split('/').any(|s| s == ".." || s == ".") {
            return Err(invalid(url, "prefix must not contain . or .. segments"));
        }
        let mut endpoint = std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|s| !s.is_empty());
        let mut region = std::env::var("AWS_REGION")
            .ok()
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "us-east-1".to_string());
        let mut allow_http = false;
        let mut credentials = None;
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "endpoint" => endpoint = Some(v.into_owned()),
                "region" => region = v.into_owned(),
                "allow_http" => allow_http = parse_bool(url, "allow_http", &v)?,
                "credentials" => {
                    if !valid_credentials_name(&v) {
                        return Err(invalid(
                            url,
                            format!(
                                "credentials={v:?} is not a credentials name: use the name of the Secret holding them (lower-case letters, digits, '-' and '.')"
                            ),
                        ));
                    }
                    credentials = Some(v.into_owned());
                }
                k if CREDENTIAL_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(k)) => {
                    return Err(invalid(
                        url,
                        format!(
                            "the query parameter {k} is refused: credentials never go in a URL (URLs are logged and stored); \
                             name them with credentials=NAME (files NAME.AWS_ACCESS_KEY_ID and NAME.AWS_SECRET_ACCESS_KEY in the \
                             credentials directory) or set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment"
                        ),
                    ));
                }
                other => {
                    return Err(invalid(
                        url,
                        format!(
                            "unknown query parameter {other:?} (known: endpoint, region, allow_http, credentials)"
                        ),
                    ));
                }
            }
        }
        // Named credentials win over the environment: the URL said which ones to use.
        let creds = match &credentials {
            Some(name) => Some(read_credentials(credentials_dir, name)?),
            None => match (
                std::env::var("AWS_ACCESS_KEY_ID").ok(),
                std::env::var("AWS_SECRET_ACCESS_KEY").ok(),
            ) {
                (Some(key_id), Some(secret)) => Some(S3Credentials {
                    key_id,
                    secret,
                    token: std::env::var("AWS_SESSION_TOKEN").ok(),
                }),
                _ => None,
            },
        };
        if let Some(ep) = &endpoint {
            let e =
                Url::parse(ep).map_err(|e| invalid(url, format!("bad endpoint {ep:?}: {e}")))?;
            if e.scheme() == "http" && !allow_http {
                return Err(invalid(
                    url,
                    "endpoint uses http:// but allow_http=true is not set",
                ));
            }
        }
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_region(&region)
            .with_allow_http(allow_http)
            .with_virtual_hosted_style_request(false)
            // object_store's own retries stay short: the backup module retries
            // whole operations with jittered backoff (crate::resilience)
            .with_retry(object_store::RetryConfig {
                backoff: object_store::BackoffConfig::default(),
                max_retries: S3_CLIENT_MAX_RETRIES,
                retry_timeout: S3_CLIENT_RETRY_TIMEOUT,
            })
            .with_client_options(
                // (client options also carry allow_http: set it here too)
                object_store::ClientOptions::new()
                    .with_allow_http(allow_http)
                    .with_connect_timeout(S3_CONNECT_TIMEOUT)
                    .with_timeout(S3_REQUEST_TIMEOUT),
            );
        if let Some(ep) = &endpoint {
            b = b.with_endpoint(ep);
        }
        if let Some(c) = creds {
            b = b
                .with_access_key_id(c.key_id)
                .with_secret_access_key(c.secret);
            if let Some(t) = c.token {
                b = b.with_token(t);
            }
        }
        let store = b.build().map_err(|e| invalid(url, e.to_string()))?;
        Ok(Location::S3(S3Location {
            bucket,
            prefix,
            endpoint,
            region,
            allow_http,
            credentials,
            store: Arc::new(store),
            breaker: None,
        }))
    }

    /// Parse the URL of one archive (`.../<id>.tar.gz`) into its folder and file name, named
    /// credentials from [`DEFAULT_CREDENTIALS_DIR`].
    pub fn parse_object(url: &str) -> Result<(Self, String), BackupError> {
        Self::parse_object_with(url, Path::new(DEFAULT_CREDENTIALS_DIR))
    }

    /// [`Location::parse_object`] with named credentials read from `credentials_dir`.
    pub fn parse_object_with(
        url: &str,
        credentials_dir: &Path,
    ) -> Result<(Self, String), BackupError> {
        let trimmed = url.trim();
        let (base, query) = match trimmed.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (trimmed, None),
        };
        let (parent, name) = match base.rsplit_once('/') {
            Some((p, n)) => (p.to_string(), n.to_string()),
            None => (".".to_string(), base.to_string()),
        };
        if name.is_empty() || !name.ends_with(super::ARCHIVE_SUFFIX) {
            return Err(invalid(
                url,
                format!(
                    "expected the URL of a backup archive ending in {}",
                    super::ARCHIVE_SUFFIX
                ),
            ));
        }
        let mut parent = if parent.is_empty() {
            "/".to_string()
        } else {
            parent
        };
        if parent.ends_with("s3:/") || parent == "file:" {
            return Err(invalid(url, "missing bucket or directory"));
        }
        if parent.starts_with("s3://") && !parent["s3://".len()..].contains('/') {
            parent.push('/');
        }
        let folder = match query {
            Some(q) => format!("{parent}?{q}"),
            None => parent,
        };
        Ok((Self::parse_with(&folder, credentials_dir)?, name))
    }

    /// Run every operation on an S3 store through `breaker` (typically the engine's
    /// `object_storage` breaker, shared by all locations so its state is the store's health).
    /// Directories have no breaker: a local file system failing is not a remote outage.
    pub fn with_breaker(self, breaker: CircuitBreaker) -> Self {
        match self {
            Location::S3(s) => Location::S3(S3Location {
                breaker: Some(breaker),
                ..s
            }),
            dir => dir,
        }
    }

    /// URL of this folder, without credentials (`file:///…` or `s3://bucket/prefix?…`).
    pub fn url(&self) -> String {
        self.url_for("")
    }

    /// Full URL of an object `name` inside this folder, without credentials.
    pub fn url_for(&self, name: &str) -> String {
        match self {
            Location::Dir(p) => {
                let abs = absolute(p);
                let joined = if name.is_empty() { abs } else { abs.join(name) };
                match Url::from_file_path(&joined) {
                    Ok(u) => u.to_string(),
                    Err(()) => joined.display().to_string(),
                }
            }
            Location::S3(s) => {
                let mut key = s.prefix.clone();
                if !name.is_empty() {
                    if !key.is_empty() {
                        key.push('/');
                    }
                    key.push_str(name);
                }
                let mut out = format!("s3://{}/{}", s.bucket, key);
                let mut q = Vec::new();
                if let Some(ep) = &s.endpoint {
                    q.push(format!("endpoint={ep}"));
                }
                q.push(format!("region={}", s.region));
                if s.allow_http {
                    q.push("allow_http=true".to_string());
                }
                if let Some(name) = &s.credentials {
                    q.push(format!("credentials={name}"));
                }
                out.push('?');
                out.push_str(&q.join("&"));
                out
            }
        }
    }

    /// Object-store key (or directory-relative name) for `name`.
    pub(crate) fn s3_key(s: &S3Location, name: &str) -> object_store::path::Path {
        if s.prefix.is_empty() {
            object_store::path::Path::from(name)
        } else {
            object_store::path::Path::from(format!("{}/{}", s.prefix, name))
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    // normalise "." components away for nicer URLs
    abs.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_directories() {
        assert!(
            matches!(Location::parse("/tmp/b").unwrap(), Location::Dir(p) if p == Path::new("/tmp/b"))
        );
        assert!(
            matches!(Location::parse("file:///tmp/b").unwrap(), Location::Dir(p) if p == Path::new("/tmp/b"))
        );
        assert!(matches!(
            Location::parse("rel/dir").unwrap(),
            Location::Dir(_)
        ));
        assert_eq!(
            Location::parse("/tmp/b").unwrap().url_for("x.tar.gz"),
            "file:///tmp/b/x.tar.gz"
        );
    }

    /// A credentials directory holding `name`'s keys, as the operator mounts it.
    fn creds(name: &str, token: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(format!("{name}.AWS_ACCESS_KEY_ID")),
            "AKID\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(format!("{name}.AWS_SECRET_ACCESS_KEY")),
            "SECRET\n",
        )
        .unwrap();
        if token {
            std::fs::write(dir.path().join(format!("{name}.AWS_SESSION_TOKEN")), "TOK").unwrap();
        }
        dir
    }

    #[test]
    fn parses_s3_with_named_credentials_and_keeps_the_name_in_its_urls() {
        let dir = creds("store-creds", true);
        let l = Location::parse_with(
            "s3://bkt/a/b/?endpoint=http://127.0.0.1:9000&region=eu-west-1&allow_http=true&credentials=store-creds",
            dir.path(),
        )
        .unwrap();
        let Location::S3(s) = &l else {
            panic!("not s3")
        };
        assert_eq!(s.bucket, "bkt");
        assert_eq!(s.prefix, "a/b");
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.credentials.as_deref(), Some("store-creds"));
        let url = l.url_for("id.tar.gz");
        assert_eq!(
            url,
            "s3://bkt/a/b/id.tar.gz?endpoint=http://127.0.0.1:9000&region=eu-west-1&allow_http=true&credentials=store-creds"
        );
        assert!(!format!("{l:?}").contains("SECRET"));
        // the object URL parses back to the same credentials
        let (back, name) = Location::parse_object_with(&url, dir.path()).unwrap();
        assert_eq!(name, "id.tar.gz");
        assert_eq!(back.url_for(&name), url);
    }

    #[test]
    fn missing_credentials_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        // only one of the two files: still missing
        std::fs::write(dir.path().join("half.AWS_ACCESS_KEY_ID"), "AKID").unwrap();
        for name in ["absent", "half"] {
            let e = Location::parse_with(
                &format!("s3://b/p?endpoint=http://h:1&allow_http=true&credentials={name}"),
                dir.path(),
            )
            .unwrap_err();
            assert!(matches!(e, BackupError::CredentialsNotFound { .. }), "{e}");
            let e = e.to_string();
            assert!(e.contains(&format!("credentials {name} not found")), "{e}");
            assert!(
                e.contains(&format!("{name}.AWS_ACCESS_KEY_ID"))
                    && e.contains(&format!("{name}.AWS_SECRET_ACCESS_KEY")),
                "{e}"
            );
        }
    }

    #[test]
    fn a_credentials_name_must_be_a_secret_name() {
        let dir = creds("ok", false);
        for bad in ["../ok", "Ok", "-ok", "ok-", "a/b", ""] {
            let e = Location::parse_with(
                &format!("s3://b/p?endpoint=http://h:1&allow_http=true&credentials={bad}"),
                dir.path(),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("not a credentials name"), "{bad}: {e}");
        }
        for good in ["ok", "a.b-c", "x1"] {
            assert!(valid_credentials_name(good), "{good}");
        }
    }

    #[test]
    fn credentials_in_the_query_are_refused_without_echoing_them() {
        for param in [
            "access_key_id",
            "secret_access_key",
            "session_token",
            "Secret_Access_Key",
        ] {
            let e = Location::parse(&format!(
                "s3://b/p?endpoint=http://h:1&allow_http=true&{param}=SECRETVALUE"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("credentials=NAME") && e.contains("AWS_ACCESS_KEY_ID"),
                "{param}: {e}"
            );
            assert!(!e.contains("SECRETVALUE"), "{e}");
        }
    }

    #[test]
    fn bad_urls_say_what_is_accepted() {
        for bad in [
            "",
            "ftp://x/y",
            "s3:///nobucket",
            "file://relative",
            "s3://b/p?bogus=1",
        ] {
            let e = Location::parse(bad).unwrap_err().to_string();
            assert!(e.contains("accepted forms"), "{bad}: {e}");
        }
        let e = Location::parse("s3://b/p?endpoint=http://h:1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow_http"), "{e}");
    }

    #[test]
    fn parses_object_urls() {
        let (l, n) = Location::parse_object("/tmp/b/x.tar.gz").unwrap();
        assert_eq!(n, "x.tar.gz");
        assert!(matches!(l, Location::Dir(p) if p == Path::new("/tmp/b")));
        let (l, n) = Location::parse_object(
            "s3://bkt/pre/x.tar.gz?endpoint=http://127.0.0.1:1&allow_http=true",
        )
        .unwrap();
        assert_eq!(n, "x.tar.gz");
        assert_eq!(
            l.url_for(&n),
            "s3://bkt/pre/x.tar.gz?endpoint=http://127.0.0.1:1&region=us-east-1&allow_http=true"
        );
        let (l, _) =
            Location::parse_object("s3://bkt/x.tar.gz?endpoint=http://127.0.0.1:1&allow_http=true")
                .unwrap();
        let Location::S3(s) = l else { panic!() };
        assert_eq!(s.prefix, "");
        assert!(Location::parse_object("/tmp/b/x.zip").is_err());
    }
}
