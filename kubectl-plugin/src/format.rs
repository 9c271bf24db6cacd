//! Pure formatting of what the commands print: no API calls here, so every screen is
//! unit-tested from objects.

use instant_db_crds::backup::{InstantDbBackup, InstantDbRestore, OperationPhase};
use instant_db_crds::{InstantDb, conditions};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

/// How long ago `t` was, as kubectl prints ages (`45s`, `12m`, `3h`, `5d`).
pub fn age(now: Timestamp, t: Timestamp) -> String {
    let secs = now.as_second().saturating_sub(t.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn age_of(now: Timestamp, t: Option<&Time>) -> String {
    t.map_or_else(|| "-".to_string(), |t| age(now, t.0))
}

/// Bytes as `12.3 MiB`.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::from("  ");
        for (i, cell) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn conditions_table(now: Timestamp, conditions: &[Condition]) -> String {
    let rows: Vec<Vec<String>> = conditions
        .iter()
        .map(|c| {
            vec![
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                age(now, c.last_transition_time.0),
                c.message.clone(),
            ]
        })
        .collect();
    table(&["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"], &rows)
}

fn pod_line(pod_name: &str, pod: Option<&Pod>) -> String {
    let Some(pod) = pod else {
        return format!("Pod {pod_name}: not found (suspended, or not created yet)\n");
    };
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Unknown");
    let containers = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[]);
    let ready = containers.iter().filter(|c| c.ready).count();
    let restarts: i32 = containers.iter().map(|c| c.restart_count).sum();
    let waiting = containers
        .iter()
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .map(|r| format!(", waiting: {r}"))
        .unwrap_or_default();
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .map(|n| format!(", node {n}"))
        .unwrap_or_default();
    let image = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.as_deref())
        .map(|i| format!(", image {i}"))
        .unwrap_or_default();
    format!(
        "Pod {pod_name}: {phase}, ready {ready}/{}, restarts {restarts}{waiting}{node}{image}\n",
        containers.len().max(1)
    )
}

fn volume_line(pvc_name: &str, db: &InstantDb, pvc: Option<&PersistentVolumeClaim>) -> String {
    let requested = &db.spec.storage.size;
    let Some(pvc) = pvc else {
        return format!("Data: PVC {pvc_name} not found (spec.storage.size {requested})\n");
    };
    let status = pvc.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Unknown");
    let capacity = status
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .map(|q| q.0.clone())
        .unwrap_or_else(|| "-".into());
    let class = pvc
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or("(default)");
    format!(
        "Data: PVC {pvc_name} {phase}, capacity {capacity} (spec.storage.size {requested}), class {class}\n"
    )
}

fn phase_name(p: Option<OperationPhase>) -> &'static str {
    match p {
        None => "-",
        Some(OperationPhase::Pending) => "Pending",
        Some(OperationPhase::Running) => "Running",
        Some(OperationPhase::Completed) => "Completed",
        Some(OperationPhase::Failed) => "Failed",
    }
}

fn backups_table(now: Timestamp, backups: &[&InstantDbBackup]) -> String {
    if backups.is_empty() {
        return "  none; take one with `kubectl instantdb backup NAME`\n".into();
    }
    let rows: Vec<Vec<String>> = backups
        .iter()
        .map(|b| {
            let s = b.status.as_ref();
            let note = s
                .and_then(|s| s.error.clone().or_else(|| s.message.clone()))
                .unwrap_or_default();
            vec![
                b.metadata.name.clone().unwrap_or_default(),
                phase_name(s.and_then(|s| s.phase)).into(),
                s.and_then(|s| s.size_bytes)
                    .map_or_else(|| "-".into(), bytes),
                s.and_then(|s| s.document_count)
                    .map_or_else(|| "-".into(), |n| n.to_string()),
                age_of(now, s.and_then(|s| s.completed_at.as_ref())),
                note,
            ]
        })
        .collect();
    table(
        &["NAME", "PHASE", "SIZE", "DOCUMENTS", "FINISHED", "MESSAGE"],
        &rows,
    )
}

fn recovery_lines(now: Timestamp, db: &InstantDb, restore: Option<&InstantDbRestore>) -> String {
    let status = db.status.as_ref();
    let auto = db.spec.auto_restore();
    let c = status.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    let integrity = conditions::find_condition(c, conditions::INTEGRITY_OK)
        .map(|c| {
            format!(
                "{} ({})",
                if c.status == "True" {
                    "passed"
                } else {
                    "FAILED"
                },
                c.message
            )
        })
        .unwrap_or_else(|| "not reported yet".into());
    let mut out = format!(
        "Recovery: autoRestore {}; integrity check {integrity}, checked {} ago, last pass {} ago\n",
        if auto { "on" } else { "off" },
        age_of(now, status.and_then(|s| s.last_integrity_check.as_ref())),
        age_of(now, status.and_then(|s| s.last_integrity_pass.as_ref())),
    );
    if let Some(r) = conditions::find_condition(c, conditions::RECOVERING) {
        out.push_str(&format!(
            "  Recovering={} {}: {}\n",
            r.status, r.reason, r.message
        ));
    }
    if let Some(t) = status.and_then(|s| s.last_recovery.as_ref()) {
        out.push_str(&format!(
            "  last automatic recovery {} ago\n",
            age(now, t.0)
        ));
    }
    out.push_str(&archive_lines(now, status));
    if let Some(r) = restore {
        let s = r.status.as_ref();
        let to = s
            .and_then(|s| s.restored_to.as_deref())
            .or(r.spec.target_time.as_deref())
            .map(|t| format!(" to {t}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  latest restore {}: {}{to} from {}{}\n",
            r.metadata.name.as_deref().unwrap_or_default(),
            phase_name(s.and_then(|s| s.phase)),
            s.and_then(|s| s.restored_backup.as_deref())
                .or(r.spec.backup.as_deref())
                .unwrap_or(if r.spec.target_time.is_some() {
                    "(the archive)"
                } else {
                    "(latest completed backup)"
                }),
            s.and_then(|s| s.error.as_deref().or(s.message.as_deref()))
                .map(|m| format!(": {m}"))
                .unwrap_or_default(),
        ));
    }
    out
}

/// Continuous archiving: the recovery window (`firstRecoverabilityPoint` to
/// `lastArchivedTime`) and the `ContinuousArchiving` condition; nothing while no policy
/// archives the instance.
fn archive_lines(now: Timestamp, status: Option<&instant_db_crds::InstantDbStatus>) -> String {
    let Some(s) = status else {
        return String::new();
    };
    let Some(c) = conditions::find_condition(&s.conditions, conditions::CONTINUOUS_ARCHIVING)
    else {
        return String::new();
    };
    let fmt = |t: Option<&Time>| t.map_or_else(|| "-".to_string(), |t| t.0.to_string());
    let window = match (&s.first_recoverability_point, &s.last_archived_time) {
        (Some(first), last) => format!(
            "recovery window {} .. {} (last change archived {} ago)",
            fmt(Some(first)),
            fmt(last.as_ref()),
            age_of(now, last.as_ref())
        ),
        (None, _) => "no recovery window yet (take a backup to open it)".to_string(),
    };
    format!(
        "  continuous archiving {} ({}): {window}\n    {}\n",
        if c.status == "True" { "ok" } else { "NOT OK" },
        c.reason,
        c.message
    )
}

fn event_time(e: &Event) -> Option<Timestamp> {
    e.series
        .as_ref()
        .map(|s| s.last_observed_time.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.deprecated_last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The newest `limit` Events, oldest first (as `kubectl describe` lists them).
pub fn recent_events(mut events: Vec<Event>, limit: usize) -> Vec<Event> {
    events.sort_by_key(event_time);
    let skip = events.len().saturating_sub(limit);
    events.into_iter().skip(skip).collect()
}

fn events_table(now: Timestamp, events: &[Event]) -> String {
    if events.is_empty() {
        return "  none\n".into();
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let object = e
                .regarding
                .as_ref()
                .map(|r| {
                    format!(
                        "{}/{}",
                        r.kind.as_deref().unwrap_or_default(),
                        r.name.as_deref().unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            let count = e
                .series
                .as_ref()
                .map(|s| format!(" (x{})", s.count))
                .unwrap_or_default();
            vec![
                event_time(e).map_or_else(|| "-".into(), |t| age(now, t)),
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                object,
                format!("{}{count}", e.note.clone().unwrap_or_default()),
            ]
        })
        .collect();
    table(&["AGE", "TYPE", "REASON", "OBJECT", "MESSAGE"], &rows)
}

/// Everything `status` shows, gathered by the command.
pub struct StatusView<'a> {
    /// The instance.
    pub db: &'a InstantDb,
    /// Its engine pod, when it exists.
    pub pod: Option<&'a Pod>,
    /// Its data claim, when it exists.
    pub pvc: Option<&'a PersistentVolumeClaim>,
    /// Its backups, newest first.
    pub backups: Vec<&'a InstantDbBackup>,
    /// Its newest restore.
    pub restore: Option<&'a InstantDbRestore>,
    /// Recent Events of the instance and its pod, oldest first.
    pub events: &'a [Event],
}

/// The `status` screen.
pub fn status_screen(now: Timestamp, v: &StatusView<'_>) -> String {
    let db = v.db;
    let name = db.metadata.name.as_deref().unwrap_or_default();
    let ns = db.metadata.namespace.as_deref().unwrap_or_default();
    let status = db.status.as_ref();
    let phase = status
        .and_then(|s| s.phase)
        .map_or("(no status yet)", |p| p.as_str());
    let generation = db.metadata.generation.unwrap_or_default();
    let observed = status.and_then(|s| s.observed_generation);
    let seen = match observed {
        Some(g) if g == generation => String::new(),
        Some(g) => format!(" — the operator has seen generation {g} of {generation} so far"),
        None => " — the operator has not written status yet (is it running?)".into(),
    };
    let mut out = format!("InstantDb {ns}/{name}: {phase}{seen}\n");
    if let Some(s) = status {
        if let Some(e) = &s.endpoint {
            out.push_str(&format!("Endpoint: {e}\n"));
        }
        if let Some(i) = &s.image {
            out.push_str(&format!("Image: {i}\n"));
        }
    }
    out.push_str("\nConditions:\n");
    match status {
        Some(s) if !s.conditions.is_empty() => {
            out.push_str(&conditions_table(now, &s.conditions));
        }
        _ => out.push_str("  none yet\n"),
    }
    out.push('\n');
    let pod_name = instant_db_operator::builders::names::pod(name);
    out.push_str(&pod_line(&pod_name, v.pod));
    let pvc_name = instant_db_operator::builders::names::data_pvc(name);
    out.push_str(&volume_line(&pvc_name, db, v.pvc));
    out.push_str(&format!(
        "Documents: {}\n",
        status
            .and_then(|s| s.document_count)
            .map_or_else(|| "-".into(), |n| n.to_string())
    ));
    out.push_str("\nBackups (newest first):\n");
    out.push_str(&backups_table(now, &v.backups));
    if let Some(t) = status.and_then(|s| s.last_backup.as_ref()) {
        out.push_str(&format!("  last completed backup {} ago\n", age(now, t.0)));
    }
    out.push('\n');
    out.push_str(&recovery_lines(now, db, v.restore));
    out.push_str("\nEvents:\n");
    out.push_str(&events_table(now, v.events));
    out
}

/// One progress line of a backup or restore being followed: phase, then what the status says
/// (`message` while it waits or runs, `error` when it failed).
pub fn progress_line(
    phase: Option<OperationPhase>,
    message: Option<&str>,
    error: Option<&str>,
) -> String {
    let detail = error.or(message).filter(|m| !m.is_empty());
    match (phase, detail) {
        (None, _) => "waiting for the operator to pick it up".into(),
        (Some(p), Some(d)) => format!("{}: {d}", phase_name(Some(p))),
        (Some(p), None) => phase_name(Some(p)).into(),
    }
}

/// What a completed backup stored.
pub fn backup_summary(b: &InstantDbBackup) -> String {
    let s = b.status.clone().unwrap_or_default();
    let mut parts = vec![];
    if let Some(l) = s.location {
        parts.push(l);
    }
    if let Some(n) = s.size_bytes {
        parts.push(bytes(n));
    }
    if let Some(n) = s.document_count {
        parts.push(format!("{n} documents"));
    }
    if let Some(sha) = s.sha256 {
        parts.push(format!("sha256 {sha}"));
    }
    format!(
        "backup {} completed: {}",
        b.metadata.name.as_deref().unwrap_or_default(),
        parts.join(", ")
    )
}

/// The engine's search answer (`POST /api/search`), one block per hit.
pub fn search_hits(answer: &Value) -> String {
    let hits = answer
        .get("hits")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = String::new();
    if let Some(d) = answer.get("degraded").and_then(Value::as_str) {
        out.push_str(&format!("note: {d}\n"));
    }
    if hits.is_empty() {
        out.push_str("no hits\n");
        return out;
    }
    for h in &hits {
        let doc = &h["document"];
        let title = doc["title"]
            .as_str()
            .or_else(|| doc["source"].as_str())
            .unwrap_or("(untitled)");
        let source = doc["source"].as_str().unwrap_or_default();
        let text = h["highlights"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .or_else(|| h["chunk"]["text"].as_str())
            .unwrap_or_default();
        let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let short: String = text.chars().take(200).collect();
        let ellipsis = if text.chars().count() > 200 {
            "…"
        } else {
            ""
        };
        out.push_str(&format!(
            "{}. {title}  [{source}]  score {:.3}\n   {short}{ellipsis}\n",
            h["rank"].as_u64().unwrap_or_default(),
            h["score"].as_f64().unwrap_or_default(),
        ));
    }
    if let Some(ms) = answer.get("took_ms").and_then(Value::as_f64) {
        out.push_str(&format!("{} hit(s) in {ms:.1} ms\n", hits.len()));
    }
    out
}

/// The engine's integrity report (`POST /admin/integrity`) and whether it passed.
pub fn integrity_report(report: &Value) -> (bool, String) {
    let ok = report["ok"].as_bool().unwrap_or(false);
    let n = |k: &str| report[k].as_i64().unwrap_or_default();
    let mut out = format!(
        "integrity check {}: {} documents, {} chunks, {} keyword rows, {} embeddings\n",
        if ok { "passed" } else { "FAILED" },
        n("documents"),
        n("chunks"),
        n("fts_rows"),
        n("embeddings"),
    );
    for p in report["problems"].as_array().into_iter().flatten() {
        out.push_str(&format!("  problem: {}\n", p.as_str().unwrap_or_default()));
    }
    if let Some(a) = report["advice"].as_str() {
        out.push_str(&format!("  advice: {a}\n"));
    }
    (ok, out)
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
