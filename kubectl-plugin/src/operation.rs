//! `backup` and `restore`: create the object the operator acts on, and with `--wait` follow its
//! phase and message to the end, printing each change.
//!
//! Following reads the object again every `Ctx::poll` instead of watching it: a backup takes
//! minutes, one GET every two seconds costs the API server nothing, and a read survives a
//! dropped connection that would end a watch.

use std::time::Duration;

use instant_db_crds::backup::{
    InstantDbBackup, InstantDbBackupSpec, InstantDbRestore, InstantDbRestoreSpec, OperationPhase,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use serde::Serialize;

use crate::commands::{Namespaced, instance, optional};
use crate::error::{Error, Result};
use crate::{Ctx, format};

/// `--wait` and `--timeout`.
#[derive(Clone, Copy, Debug)]
pub struct Follow {
    /// Follow to the end.
    pub wait: bool,
    /// Give up following after this long.
    pub timeout: Duration,
}

/// Default name of an on-demand object: `<instance>-<what>-<UTC YYYYMMDDHHMMSS>`.
pub fn default_name(instance: &str, what: &str, now: Timestamp) -> String {
    format!("{instance}-{what}-{}", now.strftime("%Y%m%d%H%M%S"))
}

/// The on-demand backup `name` of `instance`.
pub fn new_backup(
    namespace: &str,
    name: &str,
    instance: &str,
    policy: Option<String>,
) -> InstantDbBackup {
    InstantDbBackup {
        metadata: meta(namespace, name, instance),
        spec: InstantDbBackupSpec {
            instance: instance.into(),
            policy,
            ..Default::default()
        },
        status: None,
    }
}

/// The restore `name` of `instance` from `backup` (None: its latest completed backup).
pub fn new_restore(
    namespace: &str,
    name: &str,
    instance: &str,
    backup: Option<String>,
) -> InstantDbRestore {
    InstantDbRestore {
        metadata: meta(namespace, name, instance),
        spec: InstantDbRestoreSpec {
            instance: instance.into(),
            backup,
            target_time: None,
        },
        status: None,
    }
}

fn meta(namespace: &str, name: &str, instance: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        // The label the policies and `kubectl get idbb -l` select an instance's backups by.
        labels: Some(
            [("instantdb.io/instance".to_string(), instance.to_string())]
                .into_iter()
                .collect(),
        ),
        ..Default::default()
    }
}

/// What following needs to know of a kind.
trait Operation: Namespaced + Serialize {
    const KIND: &'static str;
    const SHORT: &'static str;
    const HINT: &'static str;
    fn phase(&self) -> Option<OperationPhase>;
    fn message(&self) -> Option<&str>;
    fn error(&self) -> Option<&str>;
    fn summary(&self) -> String;
}

impl Operation for InstantDbBackup {
    const KIND: &'static str = "InstantDbBackup";
    const SHORT: &'static str = "idbb";
    const HINT: &'static str = "fix the cause and take a new backup (a finished backup is never retried): kubectl instantdb backup NAME";
    fn phase(&self) -> Option<OperationPhase> {
        self.status.as_ref()?.phase
    }
    fn message(&self) -> Option<&str> {
        self.status.as_ref()?.message.as_deref()
    }
    fn error(&self) -> Option<&str> {
        self.status.as_ref()?.error.as_deref()
    }
    fn summary(&self) -> String {
        format::backup_summary(self)
    }
}

impl Operation for InstantDbRestore {
    const KIND: &'static str = "InstantDbRestore";
    const SHORT: &'static str = "idbr";
    const HINT: &'static str =
        "pick another backup and restore again: kubectl instantdb restore NAME --backup BACKUP";
    fn phase(&self) -> Option<OperationPhase> {
        self.status.as_ref()?.phase
    }
    fn message(&self) -> Option<&str> {
        self.status.as_ref()?.message.as_deref()
    }
    fn error(&self) -> Option<&str> {
        self.status.as_ref()?.error.as_deref()
    }
    fn summary(&self) -> String {
        let s = self.status.clone().unwrap_or_default();
        format!(
            "restore {} completed from {}{}",
            self.metadata.name.as_deref().unwrap_or_default(),
            s.restored_backup.as_deref().unwrap_or("the latest backup"),
            s.document_count
                .map(|n| format!(": {n} documents"))
                .unwrap_or_default()
        )
    }
}

async fn create<K: Operation>(ctx: &mut Ctx<'_>, obj: &K) -> Result<()> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let name = obj.meta().name.clone().unwrap_or_default();
    api.create(&PostParams::default(), obj)
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 409 => Error::Usage(format!(
                "{} {name} exists already in {}; choose another name (a finished one is never run again)",
                K::KIND,
                ctx.namespace
            )),
            e => Error::kube(format!("creating {} {name}", K::KIND))(e),
        })?;
    writeln!(
        ctx.out,
        "{}.instantdb.io/{name} created in {}",
        K::KIND.to_lowercase(),
        ctx.namespace
    )?;
    Ok(())
}

/// Reads `name` every `ctx.poll`, prints each new progress line, and ends with the summary
/// (Completed), an error (Failed), or a timeout error.
async fn follow<K: Operation>(ctx: &mut Ctx<'_>, name: &str, timeout: Duration) -> Result<()> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let started = tokio::time::Instant::now();
    let mut last = String::new();
    loop {
        let obj = api
            .get(name)
            .await
            .map_err(Error::kube(format!("reading {} {name}", K::KIND)))?;
        let line = format::progress_line(obj.phase(), obj.message(), obj.error());
        if line != last {
            writeln!(ctx.out, "{line}")?;
            last = line;
        }
        match obj.phase() {
            Some(OperationPhase::Completed) => {
                writeln!(ctx.out, "{}", obj.summary())?;
                return Ok(());
            }
            Some(OperationPhase::Failed) => {
                return Err(Error::OperationFailed {
                    kind: K::KIND,
                    name: name.into(),
                    error: obj.error().unwrap_or("no error recorded").into(),
                    hint: K::HINT,
                });
            }
            _ => {}
        }
        if started.elapsed() >= timeout {
            return Err(Error::Timeout {
                kind: K::KIND,
                short: K::SHORT,
                name: name.into(),
                namespace: ctx.namespace.clone(),
                phase: obj
                    .phase()
                    .map_or("not started", |_| {
                        last.split(':').next().unwrap_or_default()
                    })
                    .to_string(),
                secs: timeout.as_secs(),
            });
        }
        tokio::time::sleep(ctx.poll).await;
    }
}

fn after_create(ctx: &mut Ctx<'_>, short: &str, name: &str) -> Result<()> {
    writeln!(
        ctx.out,
        "follow it with `kubectl get {short} {name} -n {} -w` (or pass --wait)",
        ctx.namespace
    )?;
    Ok(())
}

/// `kubectl instantdb backup NAME`.
pub async fn backup(
    ctx: &mut Ctx<'_>,
    instance_name: &str,
    backup_name: Option<String>,
    policy: Option<String>,
    opts: Follow,
) -> Result<()> {
    instance(ctx, instance_name).await?;
    let name =
        backup_name.unwrap_or_else(|| default_name(instance_name, "manual", Timestamp::now()));
    let obj = new_backup(&ctx.namespace, &name, instance_name, policy);
    create(ctx, &obj).await?;
    if opts.wait {
        follow::<InstantDbBackup>(ctx, &name, opts.timeout).await
    } else {
        after_create(ctx, InstantDbBackup::SHORT, &name)
    }
}

/// `kubectl instantdb restore NAME --backup B`.
pub async fn restore(
    ctx: &mut Ctx<'_>,
    instance_name: &str,
    backup: Option<String>,
    opts: Follow,
) -> Result<()> {
    instance(ctx, instance_name).await?;
    if let Some(b) = &backup {
        // Check the backup first: a restore naming a missing backup would only wait.
        let found: InstantDbBackup = optional(ctx, b).await?.ok_or_else(|| Error::NotFound {
            kind: "InstantDbBackup",
            name: b.clone(),
            namespace: ctx.namespace.clone(),
            hint: format!(
                "list the backups of {instance_name} with `kubectl get idbb -n {} -l instantdb.io/instance={instance_name}`",
                ctx.namespace
            ),
        })?;
        if found.spec.instance != instance_name {
            return Err(Error::Usage(format!(
                "InstantDbBackup {b} is a backup of {}, not of {instance_name}; name a backup of {instance_name} (kubectl get idbb -n {} -l instantdb.io/instance={instance_name})",
                found.spec.instance, ctx.namespace
            )));
        }
    }
    let name = default_name(instance_name, "restore", Timestamp::now());
    let obj = new_restore(&ctx.namespace, &name, instance_name, backup);
    create(ctx, &obj).await?;
    if opts.wait {
        follow::<InstantDbRestore>(ctx, &name, opts.timeout).await
    } else {
        after_create(ctx, InstantDbRestore::SHORT, &name)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_the_instance_what_and_utc_time() {
        let t: Timestamp = "2026-12-01T10:15:30Z".parse().unwrap();
        assert_eq!(
            default_name("docs", "manual", t),
            "docs-manual-20261201101530"
        );
    }

    #[test]
    fn a_new_backup_names_its_instance_in_spec_and_label() {
        let b = new_backup("search", "b1", "docs", Some("daily".into()));
        assert_eq!(b.spec.instance, "docs");
        assert_eq!(b.spec.policy.as_deref(), Some("daily"));
        assert_eq!(b.metadata.labels.unwrap()["instantdb.io/instance"], "docs");
        let r = new_restore("search", "r1", "docs", None);
        assert_eq!(r.spec.backup, None);
        assert_eq!(r.metadata.namespace.as_deref(), Some("search"));
    }
}
