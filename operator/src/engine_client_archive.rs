//! The engine's `GET /admin/archive` as the operator reads it: continuous archiving's state and
//! the recovery window (engine `archive::ArchiveReport`, `docs/archiving.md`). Unknown fields
//! are ignored and every field has a default, so a newer engine does not break an older
//! operator; a body of another shape is an error.

use serde::Deserialize;
use serde_json::Value;

/// The parts of `GET /admin/archive` the operator uses.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct ArchiveReport {
    /// The engine runs with `archive.destination` set.
    pub enabled: bool,
    /// The destination folder, credentials redacted.
    pub destination: Option<String>,
    /// Commit time of the newest archived change (RFC 3339).
    pub last_archived_time: Option<String>,
    /// Seconds the oldest change not yet archived has waited.
    pub lag_seconds: f64,
    /// Bytes of changes waiting on the volume.
    pub lag_bytes: i64,
    /// The waiting changes passed `archive.max_buffer_bytes`.
    pub buffer_full: bool,
    /// `lag_seconds` is within `archive.max_lag_secs`.
    pub within_max_lag: bool,
    /// The latest shipping error, cleared by the next success.
    pub last_error: Option<String>,
    /// Earliest time a restore reaches in the current generation (None: no base snapshot yet).
    pub first_recoverable_time: Option<String>,
    /// Latest time a restore reaches.
    pub last_recoverable_time: Option<String>,
    /// Why the window is missing or short, and what to do.
    pub note: Option<String>,
}

/// Decodes a `GET /admin/archive` body; the error says what in it was wrong.
pub(super) fn decode(body: &Value) -> Result<ArchiveReport, String> {
    if !body.is_object() {
        return Err("the body is not the engine's archive report (not a JSON object)".into());
    }
    ArchiveReport::deserialize(body)
        .map_err(|e| format!("the body is not the engine's archive report: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_engines_archive_report_decodes_and_tolerates_new_fields() {
        // the shape of docs/archiving.md's example, plus a field a newer engine might add
        let body = json!({"enabled": true, "destination": "s3://backups/prod/docs?region=eu-west-1",
            "generation": "g20261202T051659Z-d25952f2", "shipped_seq": 1042, "last_seq": 1042,
            "last_archived_time": "2026-12-02T05:20:01.123456Z", "lag_seconds": 0.0, "lag_bytes": 0,
            "pending_changes": 0, "buffer_full": false, "within_max_lag": true, "segments_shipped": 311,
            "requests": 313, "last_success_at": "2026-12-02T05:20:01Z", "last_error": null,
            "last_error_at": null, "first_recoverable_time": "2026-12-02T00:00:03.000000Z",
            "last_recoverable_time": "2026-12-02T05:20:01.123456Z", "note": null, "replicas": 2});
        let r = decode(&body).unwrap();
        assert!(r.enabled && r.within_max_lag && !r.buffer_full);
        assert_eq!(
            r.first_recoverable_time.as_deref(),
            Some("2026-12-02T00:00:03.000000Z")
        );
        assert_eq!(r.last_error, None);
        assert!(decode(&json!("archiving")).is_err());
        let e = decode(&json!({"buffer_full": "no"})).unwrap_err();
        assert!(e.contains("invalid type"), "{e}");
    }
}
