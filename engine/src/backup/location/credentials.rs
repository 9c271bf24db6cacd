//! Named credentials: files `<credentials dir>/NAME.KEY` that the operator mounts from Secrets.

use std::path::Path;

use crate::backup::BackupError;

/// `[a-z0-9]([-a-z0-9.]*[a-z0-9])?`, at most 253 characters: a Kubernetes Secret name, which
/// also keeps the name from leaving the credentials directory (no `/`, no `..` at the ends).
pub(super) fn valid_credentials_name(name: &str) -> bool {
    let b = name.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 253
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter().all(|c| edge(c) || *c == b'-' || *c == b'.')
}

/// One credential file's value (trimmed), `None` when the file is absent or empty.
fn read_key(dir: &Path, name: &str, key: &str) -> Result<Option<String>, BackupError> {
    let path = dir.join(format!("{name}.{key}"));
    match std::fs::read_to_string(&path) {
        Ok(v) => Ok(Some(v.trim().to_string()).filter(|v| !v.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::backup::io_err(&path, e)),
    }
}

/// The values of `required` keys (in order) and of the `optional` ones that are present, of the
/// credentials `name` in `dir`. A missing required file is [`BackupError::CredentialsNotFound`]
/// naming every required file (in Kubernetes: the kubelet has not synced a new Secret into the
/// pod yet, so worth a retry).
pub(super) fn read_credentials(
    dir: &Path,
    name: &str,
    required: &[&str],
    optional: &[&str],
) -> Result<(Vec<String>, Vec<Option<String>>), BackupError> {
    let mut values = Vec::with_capacity(required.len());
    for key in required {
        match read_key(dir, name, key)? {
            Some(v) => values.push(v),
            None => {
                let files: Vec<String> = required
                    .iter()
                    .map(|k| dir.join(format!("{name}.{k}")).display().to_string())
                    .collect();
                return Err(BackupError::CredentialsNotFound {
                    name: name.to_string(),
                    files: files.join(" and "),
                });
            }
        }
    }
    let extra = optional
        .iter()
        .map(|k| read_key(dir, name, k))
        .collect::<Result<_, _>>()?;
    Ok((values, extra))
}
