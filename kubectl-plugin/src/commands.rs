//! `status` and `logs`: reads of the instance and its children.

use futures::{AsyncBufReadExt, TryStreamExt};
use instant_db_crds::InstantDb;
use instant_db_crds::backup::{InstantDbBackup, InstantDbRestore};
use instant_db_operator::builders::names;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, LogParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result, is_not_found};
use crate::{Ctx, format};

/// A namespaced kind the plugin reads (every kind here has a static type).
pub trait Namespaced:
    Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Namespaced for K where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
{
}

/// The instance, or an error that says how to list the instances.
pub async fn instance(ctx: &Ctx<'_>, name: &str) -> Result<InstantDb> {
    optional(ctx, name).await?.ok_or_else(|| Error::NotFound {
        kind: "InstantDb",
        name: name.into(),
        namespace: ctx.namespace.clone(),
        hint: format!(
            "list the instances with `kubectl get instantdb -n {}`, or pass -n NAMESPACE",
            ctx.namespace
        ),
    })
}

/// An object that may be missing (the pod of a suspended instance...).
pub async fn optional<K: Namespaced>(ctx: &Ctx<'_>, name: &str) -> Result<Option<K>> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    match api.get(name).await {
        Ok(o) => Ok(Some(o)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(Error::kube(format!("reading {} {name}", K::kind(&())))(e)),
    }
}

async fn list<K: Namespaced>(ctx: &Ctx<'_>) -> Result<Vec<K>> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(Error::kube(format!(
            "listing {}s in {}",
            K::kind(&()),
            ctx.namespace
        )))
}

/// Newest first: by completion, else creation time.
fn newest_first<K: Resource>(items: &mut [&K], finished: impl Fn(&K) -> Option<Timestamp>) {
    items.sort_by_key(|o| {
        std::cmp::Reverse(finished(o).or_else(|| o.meta().creation_timestamp.as_ref().map(|t| t.0)))
    });
}

/// The backups of `instance`, newest first, at most `limit`.
pub fn backups_of<'a>(
    backups: &'a [InstantDbBackup],
    instance: &str,
    limit: usize,
) -> Vec<&'a InstantDbBackup> {
    let mut mine: Vec<&InstantDbBackup> = backups
        .iter()
        .filter(|b| b.spec.instance == instance)
        .collect();
    newest_first(&mut mine, |b| {
        b.status.as_ref()?.completed_at.as_ref().map(|t| t.0)
    });
    mine.truncate(limit);
    mine
}

/// The newest restore of `instance`.
pub fn latest_restore<'a>(
    restores: &'a [InstantDbRestore],
    instance: &str,
) -> Option<&'a InstantDbRestore> {
    let mut mine: Vec<&InstantDbRestore> = restores
        .iter()
        .filter(|r| r.spec.instance == instance)
        .collect();
    newest_first(&mut mine, |r| {
        r.status.as_ref()?.completed_at.as_ref().map(|t| t.0)
    });
    mine.first().copied()
}

/// Events about the instance or its engine pod.
pub fn events_of(events: Vec<Event>, instance: &str) -> Vec<Event> {
    let pod = names::pod(instance);
    events
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                let (kind, name) = (r.kind.as_deref(), r.name.as_deref());
                (kind == Some("InstantDb") && name == Some(instance))
                    || (kind == Some("Pod") && name == Some(pod.as_str()))
            })
        })
        .collect()
}

/// `kubectl instantdb status NAME`.
pub async fn status(ctx: &mut Ctx<'_>, name: &str) -> Result<()> {
    let db = instance(ctx, name).await?;
    let pod: Option<Pod> = optional(ctx, &names::pod(name)).await?;
    let pvc: Option<PersistentVolumeClaim> = optional(ctx, &names::data_pvc(name)).await?;
    let backups: Vec<InstantDbBackup> = list(ctx).await?;
    let restores: Vec<InstantDbRestore> = list(ctx).await?;
    let events: Vec<Event> = list(ctx).await?;
    let events = format::recent_events(events_of(events, name), 10);
    let view = format::StatusView {
        db: &db,
        pod: pod.as_ref(),
        pvc: pvc.as_ref(),
        backups: backups_of(&backups, name, 5),
        restore: latest_restore(&restores, name),
        events: &events,
    };
    let screen = format::status_screen(Timestamp::now(), &view);
    ctx.out.write_all(screen.as_bytes())?;
    Ok(())
}

/// `kubectl instantdb logs NAME`.
pub async fn logs(
    ctx: &mut Ctx<'_>,
    name: &str,
    tail: Option<i64>,
    previous: bool,
    follow: bool,
) -> Result<()> {
    instance(ctx, name).await?;
    let pod = names::pod(name);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let params = LogParams {
        container: Some(instant_db_operator::builders::ENGINE_CONTAINER.to_string()),
        tail_lines: tail,
        previous,
        follow,
        ..Default::default()
    };
    let what = format!("reading the logs of pod {pod}");
    let not_running = |e: kube::Error| match e {
        e if is_not_found(&e) => Error::NotFound {
            kind: "Pod",
            name: pod.clone(),
            namespace: ctx.namespace.clone(),
            hint: format!(
                "the engine pod does not exist (suspended, or not created yet): see `kubectl instantdb status {name} -n {}`",
                ctx.namespace
            ),
        },
        e => Error::kube(what.clone())(e),
    };
    if follow {
        let stream = api.log_stream(&pod, &params).await.map_err(not_running)?;
        let mut lines = stream.lines();
        while let Some(line) = lines.try_next().await? {
            writeln!(ctx.out, "{line}")?;
        }
    } else {
        let text = api.logs(&pod, &params).await.map_err(not_running)?;
        ctx.out.write_all(text.as_bytes())?;
    }
    Ok(())
}
