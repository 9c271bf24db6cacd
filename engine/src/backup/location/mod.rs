//! Where backups live: a local directory or an object store (S3-compatible, Google Cloud
//! Storage, Azure Blob Storage), each through `object_store`.
//!
//! Accepted forms (see [`ACCEPTED_FORMS`]):
//! - a plain path (`/backups`, `./backups`) or `file:///absolute/dir` → a directory;
//! - `s3://bucket/optional/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&allow_http=true`
//!   → an S3-compatible store (path-style requests);
//! - `gs://bucket/prefix` → Google Cloud Storage;
//! - `az://container/prefix?account=ACCOUNT` → Azure Blob Storage.
//!
//! Credentials never travel in the URL. Either the URL names them, `credentials=NAME` (a
//! Kubernetes Secret name, not a secret), and they are read from files of the credentials
//! directory (the operator mounts them there): `NAME.AWS_ACCESS_KEY_ID` + `NAME.AWS_SECRET_ACCESS_KEY`
//! (+ optional `NAME.AWS_SESSION_TOKEN`) for S3, `NAME.GOOGLE_SERVICE_ACCOUNT_KEY` (the JSON key)
//! for GCS, `NAME.AZURE_STORAGE_ACCOUNT_KEY` for Azure. Or they come from the provider's own
//! chain, as `object_store` reads it from the environment: for S3 the `AWS_*` variables, web
//! identity (`AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`: EKS IAM roles for service accounts),
//! container credentials (EKS Pod Identity) or the instance metadata; for GCS
//! `GOOGLE_APPLICATION_CREDENTIALS` or the metadata server (GKE Workload Identity); for Azure
//! `AZURE_STORAGE_ACCOUNT_KEY`, workload identity (`AZURE_FEDERATED_TOKEN_FILE`) or managed
//! identity. Query parameters that would carry a secret are refused: a URL is logged, stored in
//! job records and sent in request bodies.

mod azure;
mod credentials;
mod gcs;
mod s3;

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use reqwest::Url;

use super::BackupError;
use crate::resilience::CircuitBreaker;
use crate::resilience::settings::RetrySpec;
#[cfg(test)]
use credentials::valid_credentials_name;

/// Human description of the accepted location forms (used in error messages).
pub const ACCEPTED_FORMS: &str = "accepted forms: a directory path (e.g. /backups), file:///absolute/dir, \
s3://bucket/prefix?endpoint=http://host:9000&region=us-east-1&allow_http=true, gs://bucket/prefix, \
or az://container/prefix?account=ACCOUNT (add credentials=NAME to read the credentials files of the \
credentials directory: NAME.AWS_ACCESS_KEY_ID and NAME.AWS_SECRET_ACCESS_KEY for s3, \
NAME.GOOGLE_SERVICE_ACCOUNT_KEY for gs, NAME.AZURE_STORAGE_ACCOUNT_KEY for az; without it, the \
provider's environment: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a web identity role, \
GOOGLE_APPLICATION_CREDENTIALS or workload identity, AZURE_STORAGE_ACCOUNT_KEY or workload identity)";

/// Where named credentials are read when the configuration does not say
/// (`backup.credentials_dir`); the operator mounts them there.
pub const DEFAULT_CREDENTIALS_DIR: &str = "/etc/instant-db-credentials";

/// Retries done inside the object-store client for one request.
pub const S3_CLIENT_MAX_RETRIES: usize = 2;
/// Time budget of the object-store client's own retries for one request.
pub const S3_CLIENT_RETRY_TIMEOUT: Duration = Duration::from_secs(30);
/// TCP connect timeout to the object store.
pub const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of one object-store request (one multipart part, at most 8 MiB).
pub const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A parsed backup destination (a "folder" holding `<id>.tar.gz` archives).
// A handful exist at a time, one per operation: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Location {
    /// A local (or mounted volume) directory.
    Dir(PathBuf),
    /// A bucket (or container) and key prefix in an object store.
    Object(ObjectLocation),
}

/// Which object store, with what only that one has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Service {
    /// S3 or an S3-compatible store (`s3://`).
    S3 {
        /// Region.
        region: String,
    },
    /// Google Cloud Storage (`gs://`).
    Gcs,
    /// Azure Blob Storage (`az://`); the bucket is the container.
    Azure {
        /// Storage account.
        account: String,
    },
}

impl Service {
    fn scheme(&self) -> &'static str {
        match self {
            Service::S3 { .. } => "s3",
            Service::Gcs => "gs",
            Service::Azure { .. } => "az",
        }
    }
}

/// An object-store destination.
#[derive(Clone)]
pub struct ObjectLocation {
    /// Which store.
    pub service: Service,
    /// Bucket (Azure: container) name.
    pub bucket: String,
    /// Key prefix without leading/trailing slashes (may be empty).
    pub prefix: String,
    /// Custom endpoint, if any (an S3-compatible server, an emulator, a private endpoint).
    pub endpoint: Option<String>,
    /// Whether plain HTTP is allowed.
    pub allow_http: bool,
    /// Name of the credentials (`credentials=NAME`), kept in the URLs of this location so an
    /// archive's location still says which credentials read it back.
    pub credentials: Option<String>,
    pub(crate) store: Arc<dyn ObjectStore>,
    /// Guards every operation on the store (see [`Location::with_resilience`]).
    pub(crate) breaker: Option<CircuitBreaker>,
    /// How a transient failure of one operation is retried (`resilience.retries.object_storage`;
    /// unset: the built-in policy, [`RetrySpec::default_for`]).
    pub(crate) retry: Option<RetrySpec>,
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

/// What an object-store URL says besides bucket and prefix.
#[derive(Default)]
struct Query {
    endpoint: Option<String>,
    allow_http: bool,
    credentials: Option<String>,
    region: Option<String>,
    account: Option<String>,
}

/// Reads the query of `u`, accepting the parameters in `known` (of endpoint, allow_http,
/// credentials, region, account) and refusing any that would carry a secret.
fn parse_query(url: &str, u: &Url, known: &[&str]) -> Result<Query, BackupError> {
    let mut q = Query::default();
    for (k, v) in u.query_pairs() {
        let key = k.as_ref();
        if super::redact::is_secret_param(key) {
            return Err(invalid(
                url,
                format!(
                    "the query parameter {key} is refused: credentials never go in a URL (URLs are logged and stored); \
                     name them with credentials=NAME (files in the credentials directory, e.g. NAME.AWS_ACCESS_KEY_ID and \
                     NAME.AWS_SECRET_ACCESS_KEY for s3) or let the store's environment provide them (e.g. \
                     AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or a workload identity)"
                ),
            ));
        }
        if !known.contains(&key) {
            return Err(invalid(
                url,
                format!(
                    "unknown query parameter {key:?} (known for {}://: {})",
                    u.scheme(),
                    known.join(", ")
                ),
            ));
        }
        match key {
            "endpoint" => q.endpoint = Some(v.into_owned()),
            "region" => q.region = Some(v.into_owned()),
            "account" => q.account = Some(v.into_owned()),
            "allow_http" => q.allow_http = parse_bool(url, "allow_http", &v)?,
            "credentials" => {
                if !credentials::valid_credentials_name(&v) {
                    return Err(invalid(
                        url,
                        format!(
                            "credentials={v:?} is not a credentials name: use the name of the Secret holding them (lower-case letters, digits, '-' and '.')"
                        ),
                    ));
                }
                q.credentials = Some(v.into_owned());
            }
            _ => {}
        }
    }
    if let Some(ep) = &q.endpoint {
        let e = Url::parse(ep).map_err(|e| invalid(url, format!("bad endpoint {ep:?}: {e}")))?;
        if e.scheme() == "http" && !q.allow_http {
            return Err(invalid(
                url,
                "endpoint uses http:// but allow_http=true is not set",
            ));
        }
    }
    Ok(q)
}

/// An object-store client made from a URL, and what the URL said.
struct Built {
    service: Service,
    query: Query,
    store: Arc<dyn ObjectStore>,
}

/// `object_store`'s own retries stay short: the backup module retries whole operations with
/// jittered backoff (crate::resilience).
fn client_retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig::default(),
        max_retries: S3_CLIENT_MAX_RETRIES,
        retry_timeout: S3_CLIENT_RETRY_TIMEOUT,
    }
}

fn client_options(allow_http: bool) -> object_store::ClientOptions {
    object_store::ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(S3_CONNECT_TIMEOUT)
        .with_timeout(S3_REQUEST_TIMEOUT)
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
        if ["s3://", "gs://", "az://"]
            .iter()
            .any(|s| url.starts_with(s))
        {
            return Self::parse_object_store(url, credentials_dir);
        }
        if url.contains("://") {
            return Err(invalid(url, "unsupported scheme"));
        }
        Ok(Location::Dir(PathBuf::from(url)))
    }

    fn parse_object_store(url: &str, credentials_dir: &Path) -> Result<Self, BackupError> {
        let u = Url::parse(url).map_err(|e| invalid(url, e.to_string()))?;
        let bucket = u.host_str().unwrap_or_default().to_string();
        if bucket.is_empty() {
            return Err(invalid(
                url,
                format!("missing bucket name ({}://bucket/prefix)", u.scheme()),
            ));
        }
        let prefix = u.path().trim_matches('/').to_string();
        if prefix.split('/').any(|s| s == ".." || s == ".") {
            return Err(invalid(url, "prefix must not contain . or .. segments"));
        }
        let built = match u.scheme() {
            "s3" => s3::build(url, &u, &bucket, credentials_dir)?,
            "gs" => gcs::build(url, &u, &bucket, credentials_dir)?,
            _ => azure::build(url, &u, &bucket, credentials_dir)?,
        };
        Ok(Location::Object(ObjectLocation {
            service: built.service,
            bucket,
            prefix,
            endpoint: built.query.endpoint,
            allow_http: built.query.allow_http,
            credentials: built.query.credentials,
            store: built.store,
            breaker: None,
            retry: None,
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
        if ["s3:/", "gs:/", "az:/"].iter().any(|s| parent.ends_with(s)) || parent == "file:" {
            return Err(invalid(url, "missing bucket or directory"));
        }
        // `s3://bucket` (an archive at the bucket's root) parses as a host without a path.
        if let Some(scheme) = ["s3://", "gs://", "az://"]
            .iter()
            .find(|s| parent.starts_with(**s))
            && !parent[scheme.len()..].contains('/')
        {
            parent.push('/');
        }
        let folder = match query {
            Some(q) => format!("{parent}?{q}"),
            None => parent,
        };
        Ok((Self::parse_with(&folder, credentials_dir)?, name))
    }

    /// Run every operation on an object store through `breaker` (typically the engine's
    /// `object_storage` breaker, shared by all locations so its state is the store's health),
    /// retrying transient failures as `retry` says. Directories have neither: a local file
    /// system failing is not a remote outage.
    pub fn with_resilience(self, breaker: CircuitBreaker, retry: RetrySpec) -> Self {
        match self {
            Location::Object(s) => Location::Object(ObjectLocation {
                breaker: Some(breaker),
                retry: Some(retry),
                ..s
            }),
            dir => dir,
        }
    }

    /// URL of this folder, without credentials (`file:///…`, `s3://bucket/prefix?…`, …).
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
            Location::Object(s) => {
                let mut key = s.prefix.clone();
                if !name.is_empty() {
                    if !key.is_empty() {
                        key.push('/');
                    }
                    key.push_str(name);
                }
                let mut out = format!("{}://{}/{}", s.service.scheme(), s.bucket, key);
                let mut q = Vec::new();
                if let Service::Azure { account } = &s.service {
                    q.push(format!("account={account}"));
                }
                if let Some(ep) = &s.endpoint {
                    q.push(format!("endpoint={ep}"));
                }
                if let Service::S3 { region } = &s.service {
                    q.push(format!("region={region}"));
                }
                if s.allow_http {
                    q.push("allow_http=true".to_string());
                }
                if let Some(name) = &s.credentials {
                    q.push(format!("credentials={name}"));
                }
                if !q.is_empty() {
                    out.push('?');
                    out.push_str(&q.join("&"));
                }
                out
            }
        }
    }

    /// Object-store key of `name` in the folder `s`.
    pub(crate) fn object_key(s: &ObjectLocation, name: &str) -> object_store::path::Path {
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
        let Location::Object(s) = &l else {
            panic!("not an object store")
        };
        assert_eq!(s.bucket, "bkt");
        assert_eq!(s.prefix, "a/b");
        assert_eq!(
            s.service,
            Service::S3 {
                region: "eu-west-1".into()
            }
        );
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
        let Location::Object(s) = l else { panic!() };
        assert_eq!(s.prefix, "");
        assert!(Location::parse_object("/tmp/b/x.zip").is_err());
    }
    #[test]
    fn parses_gcs_and_azure_with_named_credentials_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("gcp.GOOGLE_SERVICE_ACCOUNT_KEY"),
            r#"{"disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("az.AZURE_STORAGE_ACCOUNT_KEY"),
            "a2V5a2V5a2V5a2V5\n",
        )
        .unwrap();
        let gs = Location::parse_with("gs://bkt/a/b?credentials=gcp", dir.path()).unwrap();
        let Location::Object(g) = &gs else { panic!() };
        assert_eq!(
            (g.service.clone(), g.bucket.as_str(), g.prefix.as_str()),
            (Service::Gcs, "bkt", "a/b")
        );
        assert_eq!(
            gs.url_for("x.tar.gz"),
            "gs://bkt/a/b/x.tar.gz?credentials=gcp"
        );
        let az = Location::parse_with(
            "az://ctr/p?account=acct&endpoint=http://127.0.0.1:10000/acct&allow_http=true&credentials=az",
            dir.path(),
        )
        .unwrap();
        let url = az.url_for("x.tar.gz");
        assert_eq!(
            url,
            "az://ctr/p/x.tar.gz?account=acct&endpoint=http://127.0.0.1:10000/acct&allow_http=true&credentials=az"
        );
        assert!(!format!("{az:?}").contains("a2V5"));
        let (back, name) = Location::parse_object_with(&url, dir.path()).unwrap();
        assert_eq!(back.url_for(&name), url);
        // each provider's own files are named when missing
        let e = Location::parse_with("gs://bkt?credentials=none", dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.GOOGLE_SERVICE_ACCOUNT_KEY"), "{e}");
        let e = Location::parse_with("az://c?account=a&credentials=none", dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.AZURE_STORAGE_ACCOUNT_KEY"), "{e}");
    }

    #[test]
    fn azure_needs_an_account_and_provider_parameters_stay_with_their_provider() {
        let e = Location::parse("az://ctr/p").unwrap_err().to_string();
        assert!(e.contains("account=ACCOUNT"), "{e}");
        for (bad, param) in [
            ("gs://b/p?region=eu", "region"),
            ("s3://b/p?account=a", "account"),
        ] {
            let e = Location::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!("unknown query parameter \"{param}\"")),
                "{bad}: {e}"
            );
        }
        for secret in [
            "az://c/p?account=a&account_key=SECRETVALUE",
            "gs://b/p?token=SECRETVALUE",
        ] {
            let e = Location::parse(secret).unwrap_err().to_string();
            assert!(
                e.contains("credentials=NAME") && !e.contains("SECRETVALUE"),
                "{e}"
            );
        }
    }
}
