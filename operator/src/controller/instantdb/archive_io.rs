//! The requests continuous archiving needs in a reconcile (the decisions are in `archiving`):
//! the credentials of the policy's destination put into the storage-credentials Secret before
//! the engine is configured to use them, and the engine's `GET /admin/archive` on the
//! engine-numbers timer.

use instant_db_crds::InstantDb;
use instant_db_crds::backup::InstantDbBackup;
use k8s_openapi::api::core::v1::ConfigMap;

use super::archiving::{ArchivePlan, reasons};
use crate::builders::{ArchiveSettings, CONFIG_KEY, archive_config};
use crate::controller::Context;
use crate::controller::backup::NotReady;
use crate::engine_client::{ArchiveReport, EngineTarget};
use crate::error::Result;

/// Whether the engine's ConfigMap already holds exactly these `archive.*` settings.
fn configured(cm: Option<&ConfigMap>, settings: &ArchiveSettings) -> bool {
    cm.and_then(|c| c.data.as_ref())
        .and_then(|d| d.get(CONFIG_KEY))
        .and_then(|yaml| serde_norway::from_str::<serde_json::Value>(yaml).ok())
        .is_some_and(|cfg| cfg.get("archive") == Some(&archive_config(settings)))
}

/// The `archive.*` to render, or why none is (a reason of `archiving::reasons` and a
/// message). The credentials Secret is copied before the settings are first rendered: the
/// engine opens the destination once at start, and one without its credentials files would
/// run the pod without archiving. Once the settings are in the ConfigMap nothing is asked
/// (a steady reconcile makes no request).
pub(super) async fn settings(
    ctx: &Context,
    ns: &str,
    db: &InstantDb,
    plan: Option<&std::result::Result<ArchivePlan, String>>,
    cm: Option<&ConfigMap>,
    backups: &[InstantDbBackup],
) -> Result<std::result::Result<Option<ArchiveSettings>, (&'static str, String)>> {
    let plan = match plan {
        None => return Ok(Ok(None)),
        Some(Err(e)) => return Ok(Err((reasons::DESTINATION_INVALID, e.clone()))),
        Some(Ok(p)) => p,
    };
    if configured(cm, &plan.settings) {
        return Ok(Ok(Some(plan.settings.clone())));
    }
    if let Some((secret, store)) = plan.credentials() {
        use crate::controller::backup::credentials;
        if let Err(NotReady::Pending(why) | NotReady::Failed(why)) =
            credentials::ensure(ctx, ns, db, (secret, store), backups).await?
        {
            return Ok(Err((
                reasons::CREDENTIALS_MISSING,
                format!(
                    "{why}: InstantDbBackupPolicy {} archives this instance with it; archiving is configured once Secret {secret} holds {}",
                    plan.policy,
                    store.required_keys().join(" and ")
                ),
            )));
        }
    }
    Ok(Ok(Some(plan.settings.clone())))
}

/// The engine's archive report when it is due (at most every `engine_numbers_refresh`, as
/// the document count: the engine lists its destination to answer). An engine that does not
/// archive yet (restarting onto the configuration) is asked again at the next reconcile.
pub(super) async fn report(
    ctx: &Context,
    key: &str,
    target: Option<&EngineTarget>,
    token: &str,
) -> Option<ArchiveReport> {
    let key = format!("{key}#archive");
    let target = target?;
    if !ctx.engine_numbers_due(&key) {
        return None;
    }
    match ctx.engine.archive_report(target, token).await {
        Ok(r) => {
            if r.enabled {
                ctx.engine_numbers_taken(&key);
            }
            Some(r)
        }
        Err(e) => {
            tracing::debug!(instantdb = %key, error = %e, "archive report not read; asked again at the next reconcile");
            None
        }
    }
}
