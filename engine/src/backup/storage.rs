//! The object operations behind backups, for a directory or an object store.
//! Object-store operations are retried with jittered backoff on transient errors.

use std::io;
use std::path::Path;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::location::ObjectLocation;
use super::{BackupError, BackupProgress, Location, Phase, ProgressSink, UPLOAD_CHUNK, io_err};
use crate::resilience::settings::{OBJECT_STORAGE, RetrySpec};
use crate::resilience::{BreakerError, retry_transient};

/// One S3 operation: retried on transient errors, inside the location's circuit breaker (when it
/// has one), so a failing store costs one breaker failure per operation, not per attempt, and an
/// open breaker refuses at once. Only transient errors count as failures: a missing object is an
/// answer from a working store.
async fn object_op<T, F, Fut>(s: &ObjectLocation, op: &str, f: F) -> Result<T, BackupError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BackupError>>,
{
    let policy = s
        .retry
        .unwrap_or_else(|| RetrySpec::default_for(OBJECT_STORAGE))
        .policy();
    let retried = retry_transient(op, policy, f, BackupError::is_transient);
    let Some(breaker) = &s.breaker else {
        return retried.await;
    };
    let res = breaker
        .call(|| async {
            match retried.await {
                Err(e) if e.is_transient() => Err(e),
                other => Ok(other),
            }
        })
        .await;
    match res {
        Ok(inner) => inner,
        Err(BreakerError::Inner(e)) => Err(e),
        Err(BreakerError::Open { retry_in, .. }) => Err(BackupError::CircuitOpen {
            retry_in_secs: retry_in.as_secs().max(1),
        }),
    }
}

/// Whether an object exists.
pub(crate) async fn exists(loc: &Location, name: &str) -> Result<bool, BackupError> {
    match loc {
        Location::Dir(dir) => Ok(dir.join(name).is_file()),
        Location::Object(s) => {
            let key = Location::object_key(s, name);
            object_op(s, "backup head", || async {
                match s.store.head(&key).await {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::NotFound { .. }) => Ok(false),
                    Err(e) => Err(BackupError::from(e)),
                }
            })
            .await
        }
    }
}

pub(super) async fn put_file(
    loc: &Location,
    name: &str,
    src: &Path,
    progress: &ProgressSink,
) -> Result<(), BackupError> {
    let total = tokio::fs::metadata(src)
        .await
        .map_err(|e| io_err(src, e))?
        .len();
    match loc {
        Location::Dir(dir) => {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| io_err(dir, e))?;
            let dst = dir.join(name);
            let partial = dir.join(format!("{name}.partial"));
            let mut r = tokio::fs::File::open(src)
                .await
                .map_err(|e| io_err(src, e))?;
            let mut w = tokio::fs::File::create(&partial)
                .await
                .map_err(|e| io_err(&partial, e))?;
            let mut buf = vec![0u8; 1 << 20];
            let mut done = 0u64;
            loop {
                let n = r.read(&mut buf).await.map_err(|e| io_err(src, e))?;
                if n == 0 {
                    break;
                }
                w.write_all(&buf[..n])
                    .await
                    .map_err(|e| io_err(&partial, e))?;
                done += n as u64;
                progress(BackupProgress::new(Phase::Upload, done, total));
            }
            w.sync_all().await.map_err(|e| io_err(&partial, e))?;
            drop(w);
            tokio::fs::rename(&partial, &dst)
                .await
                .map_err(|e| io_err(&dst, e))?;
            Ok(())
        }
        Location::Object(s) => {
            let key = Location::object_key(s, name);
            object_op(s, "backup upload", || {
                upload_s3(s.store.as_ref(), &key, src, total, progress)
            })
            .await
        }
    }
}

async fn upload_s3(
    store: &dyn ObjectStore,
    key: &object_store::path::Path,
    src: &Path,
    total: u64,
    progress: &ProgressSink,
) -> Result<(), BackupError> {
    let upload = store.put_multipart(key).await?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, UPLOAD_CHUNK);
    let res: Result<(), BackupError> = async {
        let mut r = tokio::fs::File::open(src)
            .await
            .map_err(|e| io_err(src, e))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut done = 0u64;
        loop {
            let n = r.read(&mut buf).await.map_err(|e| io_err(src, e))?;
            if n == 0 {
                break;
            }
            w.wait_for_capacity(4).await?;
            w.write(&buf[..n]);
            done += n as u64;
            progress(BackupProgress::new(Phase::Upload, done, total));
        }
        Ok(())
    }
    .await;
    match res {
        Ok(()) => {
            w.finish().await?;
            Ok(())
        }
        Err(e) => {
            if let Err(abort) = w.abort().await {
                tracing::warn!(error = %abort, "aborting multipart upload failed");
            }
            Err(e)
        }
    }
}

pub(crate) async fn put_bytes(
    loc: &Location,
    name: &str,
    data: Vec<u8>,
) -> Result<(), BackupError> {
    match loc {
        Location::Dir(dir) => {
            let dst = dir.join(name);
            let partial = dir.join(format!("{name}.partial"));
            tokio::fs::write(&partial, &data)
                .await
                .map_err(|e| io_err(&partial, e))?;
            tokio::fs::rename(&partial, &dst)
                .await
                .map_err(|e| io_err(&dst, e))
        }
        Location::Object(s) => {
            let key = Location::object_key(s, name);
            let payload = bytes::Bytes::from(data);
            object_op(s, "backup put", || async {
                s.store.put(&key, PutPayload::from(payload.clone())).await?;
                Ok(())
            })
            .await
        }
    }
}

/// Read a small object; `Ok(None)` when it does not exist.
pub(crate) async fn get_bytes(loc: &Location, name: &str) -> Result<Option<Vec<u8>>, BackupError> {
    match loc {
        Location::Dir(dir) => {
            let p = dir.join(name);
            match tokio::fs::read(&p).await {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err(&p, e)),
            }
        }
        Location::Object(s) => {
            let key = Location::object_key(s, name);
            object_op(s, "backup get", || async {
                match s.store.get(&key).await {
                    Ok(r) => Ok(Some(r.bytes().await?.to_vec())),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(BackupError::from(e)),
                }
            })
            .await
        }
    }
}

pub(super) async fn get_to_file(
    loc: &Location,
    name: &str,
    dst: &Path,
    progress: &ProgressSink,
) -> Result<(), BackupError> {
    match loc {
        Location::Dir(dir) => {
            let src = dir.join(name);
            let mut r = match tokio::fs::File::open(&src).await {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(BackupError::NotFound(loc.url_for(name)));
                }
                Err(e) => return Err(io_err(&src, e)),
            };
            let total = r.metadata().await.map_err(|e| io_err(&src, e))?.len();
            let mut w = tokio::fs::File::create(dst)
                .await
                .map_err(|e| io_err(dst, e))?;
            let mut buf = vec![0u8; 1 << 20];
            let mut done = 0u64;
            loop {
                let n = r.read(&mut buf).await.map_err(|e| io_err(&src, e))?;
                if n == 0 {
                    break;
                }
                w.write_all(&buf[..n]).await.map_err(|e| io_err(dst, e))?;
                done += n as u64;
                progress(BackupProgress::new(Phase::Download, done, total));
            }
            w.sync_all().await.map_err(|e| io_err(dst, e))?;
            Ok(())
        }
        Location::Object(s) => {
            let key = Location::object_key(s, name);
            object_op(s, "backup download", || async {
                let r = match s.store.get(&key).await {
                    Ok(r) => r,
                    Err(object_store::Error::NotFound { .. }) => {
                        return Err(BackupError::NotFound(loc.url_for(name)));
                    }
                    Err(e) => return Err(e.into()),
                };
                let total = r.meta.size;
                let mut stream = r.into_stream();
                let mut w = tokio::fs::File::create(dst)
                    .await
                    .map_err(|e| io_err(dst, e))?;
                let mut done = 0u64;
                while let Some(chunk) = stream.try_next().await? {
                    w.write_all(&chunk).await.map_err(|e| io_err(dst, e))?;
                    done += chunk.len() as u64;
                    progress(BackupProgress::new(Phase::Download, done, total));
                }
                w.sync_all().await.map_err(|e| io_err(dst, e))?;
                Ok(())
            })
            .await
        }
    }
}

pub(crate) async fn delete_object(loc: &Location, name: &str) -> Result<bool, BackupError> {
    match loc {
        Location::Dir(dir) => {
            let p = dir.join(name);
            match tokio::fs::remove_file(&p).await {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(io_err(&p, e)),
            }
        }
        Location::Object(s) => {
            let key = Location::object_key(s, name);
            object_op(s, "backup delete", || async {
                // S3 DELETE is idempotent; check existence first to report it.
                match s.store.head(&key).await {
                    Ok(_) => {}
                    Err(object_store::Error::NotFound { .. }) => return Ok(false),
                    Err(e) => return Err(BackupError::from(e)),
                }
                s.store.delete(&key).await?;
                Ok(true)
            })
            .await
        }
    }
}

/// (name, size, last_modified) of the objects directly in the folder.
pub(crate) async fn list_objects(
    loc: &Location,
) -> Result<Vec<(String, u64, Option<DateTime<Utc>>)>, BackupError> {
    match loc {
        Location::Dir(dir) => {
            let mut out = Vec::new();
            let mut rd = match tokio::fs::read_dir(dir).await {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(io_err(dir, e)),
            };
            while let Some(ent) = rd.next_entry().await.map_err(|e| io_err(dir, e))? {
                let md = ent.metadata().await.map_err(|e| io_err(&ent.path(), e))?;
                if !md.is_file() {
                    continue;
                }
                let modified = md.modified().ok().map(DateTime::<Utc>::from);
                out.push((
                    ent.file_name().to_string_lossy().into_owned(),
                    md.len(),
                    modified,
                ));
            }
            Ok(out)
        }
        Location::Object(s) => {
            let prefix =
                (!s.prefix.is_empty()).then(|| object_store::path::Path::from(s.prefix.as_str()));
            let res = object_op(s, "backup list", || async {
                Ok::<_, BackupError>(s.store.list_with_delimiter(prefix.as_ref()).await?)
            })
            .await?;
            Ok(res
                .objects
                .into_iter()
                .filter_map(|m| {
                    let name = m.location.filename()?.to_string();
                    Some((name, m.size, Some(m.last_modified)))
                })
                .collect())
        }
    }
}
