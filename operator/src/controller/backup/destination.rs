//! Destinations, pure: a backup's destination with every default filled in (what
//! `status.destination` pins), the engine's URL for it (`s3://`, `gs://`, `az://`, `file://`),
//! and the credentials Secret it names. The credentials travel by reference: the URL carries
//! `credentials=<Secret name>` and the engine reads the keys from the files of the
//! `<instance>-storage-credentials` Secret mounted in its pod, so no credential is in any URL,
//! request body or log.

use instant_db_crds::backup::{
    AzureDestination, BackupDestination, GcsDestination, S3Destination, VolumeDestination,
};
use reqwest::Url;

pub use crate::builders::storage_credentials::Store;

/// Whether `name` is a name the engine takes in `credentials=NAME` (a Kubernetes Secret name:
/// `[a-z0-9]([-a-z0-9.]*[a-z0-9])?`, at most 253 characters).
pub fn is_credentials_name(name: &str) -> bool {
    let b = name.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 253
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter().all(|c| edge(c) || *c == b'-' || *c == b'.')
}

/// The directory inside a volume destination when `path` is unset.
pub const DEFAULT_VOLUME_PATH: &str = "instant-db-backups";

/// The one kind of store a destination names, or an error for the user when it names none
/// or several (the CRD's CEL rule refuses both; this guards objects it never checked).
enum Kind<'a> {
    Volume(&'a VolumeDestination),
    S3(&'a S3Destination),
    Gcs(&'a GcsDestination),
    Azure(&'a AzureDestination),
}

fn kind(d: &BackupDestination) -> Result<Kind<'_>, String> {
    match (&d.volume, &d.s3, &d.gcs, &d.azure) {
        (Some(v), None, None, None) => Ok(Kind::Volume(v)),
        (None, Some(s), None, None) => Ok(Kind::S3(s)),
        (None, None, Some(g), None) => Ok(Kind::Gcs(g)),
        (None, None, None, Some(a)) => Ok(Kind::Azure(a)),
        (None, None, None, None) => {
            Err("the destination names none of volume, s3, gcs or azure: set one".into())
        }
        _ => {
            Err("the destination names more than one of volume, s3, gcs and azure: keep one".into())
        }
    }
}

/// The destination with every default filled in, as recorded in `status.destination` when the
/// backup starts: for an object store the prefix `<namespace>/<instance>` (slashes trimmed),
/// for s3 the region `us-east-1`; for a volume the path `instant-db-backups`. Errors are for
/// the user (what to change).
pub fn resolve_destination(
    destination: &BackupDestination,
    namespace: &str,
    instance: &str,
) -> Result<BackupDestination, String> {
    let prefix = |given: Option<&String>, field: &str| {
        resolve_prefix(given.map(String::as_str), namespace, instance, field)
    };
    Ok(match kind(destination)? {
        Kind::Volume(v) => BackupDestination {
            volume: Some(resolve_volume(v)?),
            ..Default::default()
        },
        Kind::S3(s3) => {
            let bucket = s3
                .bucket
                .as_deref()
                .filter(|b| !b.is_empty())
                .ok_or("the s3 destination has no bucket")?;
            BackupDestination {
                s3: Some(S3Destination {
                    endpoint: s3.endpoint.clone().filter(|e| !e.is_empty()),
                    bucket: Some(bucket.to_string()),
                    prefix: Some(prefix(s3.prefix.as_ref(), "prefix")?),
                    region: Some(s3.region.clone().unwrap_or_else(|| "us-east-1".into())),
                    credentials_secret: resolve_credentials(s3.credentials_secret.as_deref())?,
                }),
                ..Default::default()
            }
        }
        Kind::Gcs(g) => {
            if g.bucket.is_empty() {
                return Err("the gcs destination has no bucket".into());
            }
            BackupDestination {
                gcs: Some(GcsDestination {
                    bucket: g.bucket.clone(),
                    path: Some(prefix(g.path.as_ref(), "gcs.path")?),
                    credentials_secret: resolve_credentials(g.credentials_secret.as_deref())?,
                }),
                ..Default::default()
            }
        }
        Kind::Azure(a) => {
            let account_ok = (3..=24).contains(&a.storage_account.len())
                && a.storage_account
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            if !account_ok {
                return Err(format!(
                    "azure.storageAccount {:?} is not a storage account name (3 to 24 lower-case letters and digits)",
                    a.storage_account
                ));
            }
            // Azure's container rule: 3 to 63 of lower-case letters, digits and single '-',
            // starting and ending with a letter or digit.
            let c = a.container.as_str();
            let container_ok = (3..=63).contains(&c.len())
                && is_credentials_name(c)
                && !c.contains('.')
                && !c.contains("--");
            if !container_ok {
                return Err(format!(
                    "azure.container {c:?} is not a container name (3 to 63 lower-case letters, digits and single '-')"
                ));
            }
            BackupDestination {
                azure: Some(AzureDestination {
                    storage_account: a.storage_account.clone(),
                    container: c.to_string(),
                    path: Some(prefix(a.path.as_ref(), "azure.path")?),
                    credentials_secret: resolve_credentials(a.credentials_secret.as_deref())?,
                }),
                ..Default::default()
            }
        }
    })
}

/// An object-store prefix defaulted to `<namespace>/<instance>`, slashes trimmed, with no
/// `.` or `..` segment (a store would keep them literally; a reader would not expect that).
fn resolve_prefix(
    given: Option<&str>,
    namespace: &str,
    instance: &str,
    field: &str,
) -> Result<String, String> {
    let prefix = given
        .map(str::to_string)
        .unwrap_or_else(|| format!("{namespace}/{instance}"));
    let prefix = prefix.trim_matches('/').to_string();
    if prefix.split('/').any(|s| s == "." || s == "..") {
        return Err(format!(
            "{field} {prefix:?} must not contain . or .. segments"
        ));
    }
    Ok(prefix)
}

/// The credentials Secret name, checked. Without one the engine uses its pod's own cloud
/// identity (IRSA / Pod Identity, GKE Workload Identity, Azure Workload Identity, the node's):
/// nothing to copy, no `credentials=` in the URL.
fn resolve_credentials(name: Option<&str>) -> Result<Option<String>, String> {
    let name = name.filter(|c| !c.is_empty());
    if let Some(name) = name
        && !is_credentials_name(name)
    {
        return Err(format!(
            "credentialsSecret {name:?} is not a Secret name (lower-case letters, digits, - and .)"
        ));
    }
    Ok(name.map(str::to_string))
}

/// A volume destination with its path defaulted and checked: a relative directory of plain
/// segments (letters, digits, `.`, `_`, `-`), since it becomes part of a path in the pod.
fn resolve_volume(volume: &VolumeDestination) -> Result<VolumeDestination, String> {
    let claim = volume.claim_name.as_str();
    if !is_credentials_name(claim) {
        return Err(format!(
            "volume.claimName {claim:?} is not a PersistentVolumeClaim name (lower-case letters, digits, - and .)"
        ));
    }
    let path = volume
        .path
        .as_deref()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_VOLUME_PATH);
    let plain = |seg: &str| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    if !path.split('/').all(plain) {
        return Err(format!(
            "volume.path {path:?} must be a directory inside the volume: segments of letters, digits, '.', '_' and '-', no '.' or '..'"
        ));
    }
    Ok(VolumeDestination {
        claim_name: claim.to_string(),
        path: Some(path.to_string()),
    })
}

/// The claim a destination writes to, if it is a volume.
pub fn claim_name(destination: &BackupDestination) -> Option<&str> {
    destination.volume.as_ref().map(|v| v.claim_name.as_str())
}

/// The credentials Secret a destination names, with the store it is for (which decides the
/// keys the Secret must hold), if any.
pub fn credentials_ref(destination: &BackupDestination) -> Option<(&str, Store)> {
    let (name, store) = match kind(destination).ok()? {
        Kind::Volume(_) => return None,
        Kind::S3(s) => (s.credentials_secret.as_deref(), Store::S3),
        Kind::Gcs(g) => (g.credentials_secret.as_deref(), Store::Gcs),
        Kind::Azure(a) => (a.credentials_secret.as_deref(), Store::Azure),
    };
    name.filter(|c| !c.is_empty()).map(|n| (n, store))
}

/// The name of the credentials Secret a destination uses, if any.
pub fn credentials_secret(destination: &BackupDestination) -> Option<&str> {
    credentials_ref(destination).map(|(name, _)| name)
}

/// The engine's URL of the folder of a resolved destination (see [`resolve_destination`]):
/// - s3: `s3://bucket/prefix?endpoint=…&region=…&credentials=<Secret name>`
/// - gcs: `gs://bucket/path?credentials=<Secret name>`
/// - azure: `az://container/path?account=<storage account>&credentials=<Secret name>`
/// - volume: `file:///backups/<claimName>/<path>`, where the engine pod mounts the claim.
pub fn destination_url(resolved: &BackupDestination) -> Result<String, String> {
    let (scheme, host, path, credentials) = match kind(resolved)? {
        Kind::Volume(v) => {
            let dir = format!(
                "{}/{}",
                crate::builders::backup_mount_path(&v.claim_name),
                v.path.as_deref().unwrap_or(DEFAULT_VOLUME_PATH)
            );
            let mut url = Url::parse("file:///").map_err(|e| format!("bad directory URL: {e}"))?;
            url.set_path(&dir);
            return Ok(url.to_string());
        }
        Kind::S3(s) => (
            "s3",
            s.bucket.as_deref().unwrap_or_default(),
            s.prefix.as_deref(),
            s.credentials_secret.as_deref(),
        ),
        Kind::Gcs(g) => (
            "gs",
            g.bucket.as_str(),
            g.path.as_deref(),
            g.credentials_secret.as_deref(),
        ),
        Kind::Azure(a) => (
            "az",
            a.container.as_str(),
            a.path.as_deref(),
            a.credentials_secret.as_deref(),
        ),
    };
    let mut url = Url::parse(&format!("{scheme}://{host}"))
        .map_err(|e| format!("{host:?} is not a valid bucket or container name: {e}"))?;
    url.set_path(path.unwrap_or_default());
    {
        let mut q = url.query_pairs_mut();
        match (&resolved.s3, &resolved.azure) {
            (Some(s3), _) => {
                if let Some(endpoint) = s3.endpoint.as_deref().filter(|e| !e.is_empty()) {
                    q.append_pair("endpoint", endpoint);
                    if endpoint.starts_with("http://") {
                        q.append_pair("allow_http", "true");
                    }
                }
                q.append_pair("region", s3.region.as_deref().unwrap_or("us-east-1"));
            }
            (None, Some(a)) => {
                q.append_pair("account", &a.storage_account);
            }
            (None, None) => {}
        }
        if let Some(name) = credentials {
            q.append_pair("credentials", name);
        }
    }
    // `gs://b/p?` with nothing after `?` would be a different string for the same folder.
    if url.query() == Some("") {
        url.set_query(None);
    }
    Ok(url.to_string())
}

/// The URL of one archive, `<id>.tar.gz`, in the folder `destination_url` names (same query).
pub fn archive_url(folder_url: &str, backup_id: &str) -> Result<String, String> {
    let mut url = Url::parse(folder_url).map_err(|e| format!("bad destination URL: {e}"))?;
    let path = format!("{}/{backup_id}.tar.gz", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url.to_string())
}

/// The folder URL of an archive URL (the archive's name taken off the path), for deletions.
pub fn folder_of(archive_url: &str) -> Result<String, String> {
    let mut url = Url::parse(archive_url).map_err(|e| format!("bad archive URL: {e}"))?;
    let path = url.path().to_string();
    let folder = path.rsplit_once('/').map_or("", |(f, _)| f).to_string();
    url.set_path(&folder);
    Ok(url.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn s3(endpoint: Option<&str>, prefix: Option<&str>) -> BackupDestination {
        BackupDestination {
            s3: Some(S3Destination {
                endpoint: endpoint.map(Into::into),
                bucket: Some("backups".into()),
                prefix: prefix.map(Into::into),
                region: None,
                credentials_secret: Some("s3-creds".into()),
            }),
            ..Default::default()
        }
    }

    fn url_of(d: &BackupDestination, ns: &str, db: &str) -> String {
        destination_url(&resolve_destination(d, ns, db).unwrap()).unwrap()
    }

    #[test]
    fn an_s3_destination_becomes_the_engines_url_naming_the_credentials_secret() {
        let url = url_of(&s3(Some("http://minio:9000"), None), "search", "docs");
        assert_eq!(
            url,
            "s3://backups/search/docs?endpoint=http%3A%2F%2Fminio%3A9000&allow_http=true\
             &region=us-east-1&credentials=s3-creds"
        );
        let url = url_of(
            &s3(Some("https://s3.example"), Some("/nightly/")),
            "ns",
            "db",
        );
        assert!(url.starts_with("s3://backups/nightly?endpoint=https%3A%2F%2Fs3.example&region="));
        assert!(!url.contains("allow_http"));
        for secret in ["access_key_id", "secret_access_key", "session_token"] {
            assert!(!url.contains(secret), "{url}");
        }
    }

    /// No credentials Secret: the engine uses its pod's own AWS identity (an IAM role of its
    /// service account), so the URL names no credentials and nothing is copied.
    #[test]
    fn an_s3_destination_without_a_credentials_secret_leaves_the_identity_to_the_engine_pod() {
        let mut d = s3(None, None);
        d.s3.as_mut().unwrap().credentials_secret = None;
        let resolved = resolve_destination(&d, "search", "docs").unwrap();
        assert_eq!(credentials_secret(&resolved), None);
        assert_eq!(
            destination_url(&resolved).unwrap(),
            "s3://backups/search/docs?region=us-east-1"
        );
    }

    #[test]
    fn the_resolved_destination_has_every_default_filled_in() {
        let r = resolve_destination(&s3(None, None), "search", "docs").unwrap();
        let s = r.s3.unwrap();
        assert_eq!(s.prefix.as_deref(), Some("search/docs"));
        assert_eq!(s.region.as_deref(), Some("us-east-1"));
        assert_eq!(s.bucket.as_deref(), Some("backups"));
        assert_eq!(s.credentials_secret.as_deref(), Some("s3-creds"));
        // resolving a resolved destination changes nothing (another instance, same place)
        let again = resolve_destination(
            &resolve_destination(&s3(None, None), "search", "docs").unwrap(),
            "x",
            "y",
        )
        .unwrap();
        assert_eq!(
            again,
            resolve_destination(&s3(None, None), "search", "docs").unwrap()
        );
    }

    fn volume(claim: &str, path: Option<&str>) -> BackupDestination {
        BackupDestination {
            volume: Some(VolumeDestination {
                claim_name: claim.into(),
                path: path.map(Into::into),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_volume_destination_is_a_directory_under_the_claims_mount_in_the_engine_pod() {
        let r = resolve_destination(&volume("nightly-pvc", None), "ns", "db").unwrap();
        assert_eq!(r, volume("nightly-pvc", Some("instant-db-backups")));
        assert_eq!(claim_name(&r), Some("nightly-pvc"));
        assert_eq!(credentials_secret(&r), None);
        let folder = destination_url(&r).unwrap();
        assert_eq!(folder, "file:///backups/nightly-pvc/instant-db-backups");
        let r = resolve_destination(&volume("b", Some("/team/docs/")), "ns", "db").unwrap();
        assert_eq!(r, volume("b", Some("team/docs")));
        assert_eq!(
            resolve_destination(&r, "x", "y").unwrap(),
            r,
            "resolving again changes nothing"
        );
        let archive = archive_url(&destination_url(&r).unwrap(), "nightly-0f3c2a9e").unwrap();
        assert_eq!(
            archive,
            "file:///backups/b/team/docs/nightly-0f3c2a9e.tar.gz"
        );
        assert_eq!(folder_of(&archive).unwrap(), "file:///backups/b/team/docs");
    }

    #[test]
    fn an_archive_url_is_the_folder_url_with_the_archive_name_in_the_path_and_back() {
        let folder = url_of(&s3(Some("http://minio:9000"), None), "search", "docs");
        let url = archive_url(&folder, "nightly-0f3c2a9e").unwrap();
        assert!(
            url.starts_with("s3://backups/search/docs/nightly-0f3c2a9e.tar.gz?endpoint="),
            "{url}"
        );
        assert!(url.ends_with("&credentials=s3-creds"), "{url}");
        assert_eq!(folder_of(&url).unwrap(), folder);
    }

    #[test]
    fn unusable_destinations_are_errors_that_say_what_to_change() {
        for (claim, path, what) in [
            ("Backups", None, "not a PersistentVolumeClaim name"),
            ("backups", Some("a/../b"), "no '.' or '..'"),
            ("backups", Some("x y"), "segments of letters"),
            ("backups", Some("a//b"), "segments of letters"),
        ] {
            let e = resolve_destination(&volume(claim, path), "ns", "db").unwrap_err();
            assert!(e.contains(what), "{claim} {path:?}: {e}");
        }
        let mut no_bucket = s3(None, None);
        no_bucket.s3.as_mut().unwrap().bucket = None;
        assert!(
            resolve_destination(&no_bucket, "ns", "db")
                .unwrap_err()
                .contains("bucket")
        );
        let e = resolve_destination(&s3(None, Some("a/../b")), "ns", "db").unwrap_err();
        assert!(e.contains(".."), "{e}");
        let mut bad_name = s3(None, None);
        bad_name.s3.as_mut().unwrap().credentials_secret = Some("S3_Creds".into());
        let e = resolve_destination(&bad_name, "ns", "db").unwrap_err();
        assert!(e.contains("not a Secret name"), "{e}");
        assert!(is_credentials_name("s3-creds.v2"));
        assert!(
            !is_credentials_name("-x") && !is_credentials_name("x-") && !is_credentials_name("")
        );
    }

    fn gcs(path: Option<&str>, secret: Option<&str>) -> BackupDestination {
        BackupDestination {
            gcs: Some(GcsDestination {
                bucket: "idb-backups".into(),
                path: path.map(Into::into),
                credentials_secret: secret.map(Into::into),
            }),
            ..Default::default()
        }
    }

    fn azure(account: &str, container: &str, secret: Option<&str>) -> BackupDestination {
        BackupDestination {
            azure: Some(AzureDestination {
                storage_account: account.into(),
                container: container.into(),
                path: None,
                credentials_secret: secret.map(Into::into),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_gcs_destination_becomes_a_gs_url_naming_the_credentials_secret() {
        let r = resolve_destination(&gcs(None, Some("gcs-key")), "search", "docs").unwrap();
        assert_eq!(r.gcs.as_ref().unwrap().path.as_deref(), Some("search/docs"));
        assert_eq!(credentials_ref(&r), Some(("gcs-key", Store::Gcs)));
        let folder = destination_url(&r).unwrap();
        assert_eq!(folder, "gs://idb-backups/search/docs?credentials=gcs-key");
        let archive = archive_url(&folder, "nightly-0f3c2a9e").unwrap();
        assert_eq!(
            archive,
            "gs://idb-backups/search/docs/nightly-0f3c2a9e.tar.gz?credentials=gcs-key"
        );
        assert_eq!(folder_of(&archive).unwrap(), folder);
        assert_eq!(
            resolve_destination(&r, "x", "y").unwrap(),
            r,
            "resolving again changes nothing"
        );
        // Workload Identity: no Secret, no credentials in the URL, nothing to copy
        let r = resolve_destination(&gcs(Some("/team/"), None), "search", "docs").unwrap();
        assert_eq!(credentials_ref(&r), None);
        assert_eq!(destination_url(&r).unwrap(), "gs://idb-backups/team");
    }

    #[test]
    fn an_azure_destination_becomes_an_az_url_with_the_account_and_the_credentials_secret() {
        let r = resolve_destination(
            &azure("idbprod", "backups", Some("az-key")),
            "search",
            "docs",
        )
        .unwrap();
        assert_eq!(credentials_ref(&r), Some(("az-key", Store::Azure)));
        assert_eq!(
            destination_url(&r).unwrap(),
            "az://backups/search/docs?account=idbprod&credentials=az-key"
        );
        assert_eq!(resolve_destination(&r, "x", "y").unwrap(), r);
        let r = resolve_destination(&azure("idbprod", "backups", None), "search", "docs").unwrap();
        assert_eq!(
            destination_url(&r).unwrap(),
            "az://backups/search/docs?account=idbprod"
        );
        for (account, container, what) in [
            ("IdbProd", "backups", "not a storage account name"),
            ("ab", "backups", "not a storage account name"),
            ("idbprod", "Backups", "not a container name"),
            ("idbprod", "a--b", "not a container name"),
            ("idbprod", "ab", "not a container name"),
        ] {
            let e = resolve_destination(&azure(account, container, None), "ns", "db").unwrap_err();
            assert!(e.contains(what), "{account}/{container}: {e}");
        }
    }

    #[test]
    fn a_destination_naming_no_store_or_several_is_an_error_that_says_to_keep_one() {
        let none = resolve_destination(&BackupDestination::default(), "ns", "db").unwrap_err();
        assert!(none.contains("none of volume, s3, gcs or azure"), "{none}");
        let mut two = gcs(None, None);
        two.s3 = s3(None, None).s3;
        let e = resolve_destination(&two, "ns", "db").unwrap_err();
        assert!(e.contains("more than one"), "{e}");
        assert!(destination_url(&two).is_err());
        assert_eq!(credentials_ref(&two), None);
        let e = resolve_destination(&gcs(Some("a/../b"), None), "ns", "db").unwrap_err();
        assert!(e.contains("gcs.path") && e.contains(".."), "{e}");
        let e = resolve_destination(&gcs(None, Some("Bad_Name")), "ns", "db").unwrap_err();
        assert!(e.contains("not a Secret name"), "{e}");
    }
}
