//! `s3://bucket/prefix?endpoint=…&region=…&allow_http=…&credentials=NAME`.

use std::path::Path;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use reqwest::Url;

use super::credentials::read_credentials;
use super::{Built, Service, client_options, client_retry, invalid, parse_query};
use crate::backup::BackupError;

const KNOWN: &[&str] = &["endpoint", "region", "allow_http", "credentials"];

pub(super) fn build(
    url: &str,
    u: &Url,
    bucket: &str,
    credentials_dir: &Path,
) -> Result<Built, BackupError> {
    let mut query = parse_query(url, u, KNOWN)?;
    // `AWS_ENDPOINT_URL` is the AWS CLI's name for it; object_store's `from_env` reads `AWS_ENDPOINT`.
    if query.endpoint.is_none() {
        query.endpoint = std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|s| !s.is_empty());
    }
    let region = query
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "us-east-1".to_string());
    // `from_env`: without named credentials, the AWS chain decides: AWS_ACCESS_KEY_ID /
    // AWS_SECRET_ACCESS_KEY, a web identity (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, what
    // EKS injects for an IAM role of the pod's service account), container credentials (EKS Pod
    // Identity), else the instance metadata.
    let mut options = client_options(query.allow_http);
    // `AWS_CA_BUNDLE`: the AWS CLI's and SDKs' variable for a private CA (an in-house
    // S3-compatible store, or STS behind a TLS-inspecting proxy).
    if let Some(path) = std::env::var_os("AWS_CA_BUNDLE").filter(|p| !p.is_empty()) {
        let path = std::path::PathBuf::from(path);
        let pem = std::fs::read(&path).map_err(|e| crate::backup::io_err(&path, e))?;
        let certs = object_store::Certificate::from_pem_bundle(&pem).map_err(|e| {
            invalid(
                url,
                format!("AWS_CA_BUNDLE {} is not a PEM bundle: {e}", path.display()),
            )
        })?;
        for cert in certs {
            options = options.with_root_certificate(cert);
        }
    }
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_region(&region)
        .with_allow_http(query.allow_http)
        .with_virtual_hosted_style_request(false)
        .with_retry(client_retry())
        // (client options also carry allow_http: set it there too)
        .with_client_options(options);
    if let Some(ep) = &query.endpoint {
        b = b.with_endpoint(ep);
    }
    // Named credentials win over the environment: the URL said which ones to use.
    if let Some(name) = &query.credentials {
        let (keys, extra) = read_credentials(
            credentials_dir,
            name,
            &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
            &["AWS_SESSION_TOKEN"],
        )?;
        let [key_id, secret] = <[String; 2]>::try_from(keys)
            .map_err(|_| invalid(url, "credentials files could not be read"))?;
        b = b.with_access_key_id(key_id).with_secret_access_key(secret);
        if let Some(Some(token)) = extra.into_iter().next() {
            b = b.with_token(token);
        }
    }
    let store = b.build().map_err(|e| invalid(url, e.to_string()))?;
    Ok(Built {
        service: Service::S3 { region },
        query,
        store: Arc::new(store),
    })
}
