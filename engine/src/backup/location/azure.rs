//! `az://container/prefix?account=ACCOUNT&credentials=NAME` (optionally `endpoint=…&allow_http=…`
//! for Azurite or a private endpoint).

use std::path::Path;
use std::sync::Arc;

use object_store::azure::MicrosoftAzureBuilder;
use reqwest::Url;

use super::credentials::read_credentials;
use super::{Built, Service, client_options, client_retry, invalid, parse_query};
use crate::backup::BackupError;

const KNOWN: &[&str] = &["account", "endpoint", "allow_http", "credentials"];

pub(super) fn build(
    url: &str,
    u: &Url,
    container: &str,
    credentials_dir: &Path,
) -> Result<Built, BackupError> {
    let mut query = parse_query(url, u, KNOWN)?;
    let account = query
        .account
        .take()
        .or_else(|| std::env::var("AZURE_STORAGE_ACCOUNT_NAME").ok())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            invalid(
                url,
                "az:// needs the storage account: add account=ACCOUNT (or set AZURE_STORAGE_ACCOUNT_NAME)",
            )
        })?;
    // `from_env`: without named credentials, AZURE_STORAGE_ACCOUNT_KEY, a client secret,
    // workload identity (AZURE_FEDERATED_TOKEN_FILE, what AKS injects) or managed identity.
    let mut b = MicrosoftAzureBuilder::from_env()
        .with_account(&account)
        .with_container_name(container)
        .with_allow_http(query.allow_http)
        .with_retry(client_retry())
        .with_client_options(client_options(query.allow_http));
    if let Some(ep) = &query.endpoint {
        b = b.with_endpoint(ep.clone());
    }
    if let Some(name) = &query.credentials {
        let (keys, _) =
            read_credentials(credentials_dir, name, &["AZURE_STORAGE_ACCOUNT_KEY"], &[])?;
        let key = keys
            .into_iter()
            .next()
            .ok_or_else(|| invalid(url, "credentials file could not be read"))?;
        b = b.with_access_key(key);
    }
    let store = b.build().map_err(|e| invalid(url, e.to_string()))?;
    Ok(Built {
        service: Service::Azure { account },
        query,
        store: Arc::new(store),
    })
}
