//! `gs://bucket/prefix?credentials=NAME` (optionally `endpoint=…&allow_http=…` for an emulator or a
//! private endpoint).

use std::path::Path;
use std::sync::Arc;

use object_store::gcp::GoogleCloudStorageBuilder;
use reqwest::Url;

use super::credentials::read_credentials;
use super::{Built, Service, client_options, client_retry, invalid, parse_query};
use crate::backup::BackupError;

const KNOWN: &[&str] = &["endpoint", "allow_http", "credentials"];

pub(super) fn build(
    url: &str,
    u: &Url,
    bucket: &str,
    credentials_dir: &Path,
) -> Result<Built, BackupError> {
    let query = parse_query(url, u, KNOWN)?;
    // `from_env`: without named credentials, GOOGLE_SERVICE_ACCOUNT(_KEY) or
    // GOOGLE_APPLICATION_CREDENTIALS, else the metadata server (GKE Workload Identity).
    let mut b = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_retry(client_retry())
        .with_client_options(client_options(query.allow_http));
    if let Some(ep) = &query.endpoint {
        b = b.with_base_url(ep);
    }
    if let Some(name) = &query.credentials {
        let (keys, _) =
            read_credentials(credentials_dir, name, &["GOOGLE_SERVICE_ACCOUNT_KEY"], &[])?;
        let key = keys
            .into_iter()
            .next()
            .ok_or_else(|| invalid(url, "credentials file could not be read"))?;
        b = b.with_service_account_key(key);
    }
    let store = b.build().map_err(|e| invalid(url, e.to_string()))?;
    Ok(Built {
        service: Service::Gcs,
        query,
        store: Arc::new(store),
    })
}
