//! Archive retention: deleting a backup also deletes the archived changes no kept base needs.
//!
//! A restore needs, per generation, a base (a complete backup taken in it, or the generation's
//! empty start) and every segment after the base's seq. So, when a backup is deleted:
//! - a generation with kept backups loses the segments wholly at or before the oldest kept
//!   backup's seq (the manifest's seq is a lower bound of what the snapshot holds, so the
//!   segment straddling it stays);
//! - a generation's empty start stops being a recovery point once a backup taken after it is
//!   deleted (retention deletes the oldest first: everything older than a deleted snapshot is
//!   outside the window kept); its marker is rewritten saying so *before* any segment goes;
//! - a generation with no base left is deleted whole, segments oldest first, marker last;
//! - the generation the running engine writes to is never deleted whole (it began on an empty
//!   database, or it awaits its first backup), and a marker that cannot be read keeps its
//!   generation (whether it is a base is unknown).
//!
//! Every step is idempotent and the state lives in the listing alone, so a prune cut short is
//! finished by the next one. [`plan_prune`] decides (pure); [`prune`] lists and deletes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::segment::{self, GenerationInfo, SegmentName, generation_object};
use super::{archive_folder, blocking, err};
use crate::backup::storage::{delete_object, get_bytes, list_objects, put_bytes};
use crate::backup::{Location, list_backups, read_manifest};
use crate::engine::Engine;
use crate::error::Result;

/// A complete backup of the folder, as a base of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBase {
    pub id: String,
    /// `None`: taken without archiving (a base of no generation).
    pub generation: Option<String>,
    /// The change seq its manifest records (a lower bound of what it holds).
    pub seq: i64,
    pub created_at: DateTime<Utc>,
}

/// The complete backups of a folder with their archive position, from their manifests. An
/// unreadable manifest is an error: what it is a base of is unknown, so nothing may be pruned.
pub async fn stored_bases(folder: &Location) -> Result<Vec<StoredBase>> {
    let mut out = vec![];
    for b in list_backups(folder)
        .await
        .map_err(err)?
        .into_iter()
        .filter(|b| b.complete)
    {
        let m = read_manifest(folder, &b.id).await.map_err(err)?;
        out.push(StoredBase {
            generation: m
                .extra
                .pointer("/archive/generation")
                .and_then(|g| g.as_str())
                .map(str::to_string),
            seq: m
                .extra
                .pointer("/archive/seq")
                .and_then(|s| s.as_i64())
                .unwrap_or(0),
            created_at: m.created_at,
            id: b.id,
        });
    }
    Ok(out)
}

/// What [`plan_prune`] looks at.
#[derive(Debug, Clone, Default)]
pub struct PruneInput {
    pub segments: Vec<SegmentName>,
    /// Each listed marker; `None`: present but unreadable.
    pub markers: BTreeMap<String, Option<GenerationInfo>>,
    /// Kept bases: (generation, seq) of each complete backup taken with archiving on.
    pub bases: Vec<(String, i64)>,
    /// The generation the running engine writes to.
    pub current: Option<String>,
    /// When the backup just deleted was taken, µs since the epoch.
    pub deleted_at_micros: Option<i64>,
}

/// One step of a prune, in the order they must run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PruneStep {
    /// Rewrite the marker with `started_empty: false`: its empty start is no recovery point now.
    DropEmptyStart(GenerationInfo),
    DeleteSegment(SegmentName),
    DeleteMarker(String),
}

/// The steps that delete what no kept base needs (see the module documentation), generation
/// by generation: the marker rewrite first, segments oldest first, the marker last.
pub fn plan_prune(input: &PruneInput) -> Vec<PruneStep> {
    let generations: BTreeSet<&str> = input
        .segments
        .iter()
        .map(|s| s.generation.as_str())
        .chain(input.markers.keys().map(String::as_str))
        .collect();
    let mut steps = vec![];
    for g in generations {
        let marker = input.markers.get(g);
        if matches!(marker, Some(None)) {
            continue;
        }
        let info = marker.and_then(Option::as_ref);
        let oldest_base = input
            .bases
            .iter()
            .filter(|(bg, _)| bg == g)
            .map(|(_, s)| *s)
            .min();
        if oldest_base.is_none() && input.current.as_deref() == Some(g) {
            continue;
        }
        if let Some(i) = info.filter(|i| i.started_empty) {
            let Ok(started) = segment::micros_of(&i.started_at) else {
                continue;
            };
            if input.deleted_at_micros.is_none_or(|d| d < started) {
                continue; // the empty start is still a kept recovery point
            }
            steps.push(PruneStep::DropEmptyStart(GenerationInfo {
                started_empty: false,
                ..i.clone()
            }));
        }
        let mut doomed: Vec<&SegmentName> = input
            .segments
            .iter()
            .filter(|s| s.generation == g && oldest_base.is_none_or(|b| s.last <= b))
            .collect();
        doomed.sort_by_key(|s| (s.last, s.first));
        steps.extend(doomed.into_iter().cloned().map(PruneStep::DeleteSegment));
        if oldest_base.is_none() && marker.is_some() {
            steps.push(PruneStep::DeleteMarker(g.to_string()));
        }
    }
    steps
}

/// What a prune did, in the answer of `DELETE /admin/backups/{id}`.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct PruneReport {
    pub segments_deleted: u64,
    pub bytes_deleted: u64,
    /// Generations deleted whole (no base left).
    pub generations_deleted: Vec<String>,
    /// Generations whose empty start is no longer a recovery point.
    pub empty_starts_dropped: Vec<String>,
    pub segments_kept: u64,
    /// Why pruning failed (the backup was deleted all the same; the next deletion prunes).
    pub error: Option<String>,
}

/// Deletes from `<folder>/archive/` what no kept base of the folder needs. `deleted_at`: when
/// the backup just deleted was taken.
pub async fn prune(
    engine: &Arc<Engine>,
    folder: &Location,
    deleted_at: Option<DateTime<Utc>>,
) -> Result<PruneReport> {
    let archive = archive_folder(folder);
    let listed = list_objects(&archive).await.map_err(err)?;
    let sizes: BTreeMap<&str, u64> = listed.iter().map(|(n, s, _)| (n.as_str(), *s)).collect();
    let mut input = PruneInput {
        segments: listed
            .iter()
            .filter_map(|(n, _, _)| SegmentName::parse(n))
            .collect(),
        deleted_at_micros: deleted_at.map(|t| t.timestamp_micros()),
        ..Default::default()
    };
    if input.segments.is_empty() && !listed.iter().any(|(n, _, _)| is_marker(n)) {
        return Ok(PruneReport::default());
    }
    for (name, _, _) in &listed {
        if let Some(g) = segment::parse_generation_object(name) {
            let info = get_bytes(&archive, name)
                .await
                .map_err(err)?
                .and_then(|b| serde_json::from_slice::<GenerationInfo>(&b).ok());
            input.markers.insert(g, info);
        }
    }
    input.bases = stored_bases(folder)
        .await?
        .into_iter()
        .filter_map(|b| Some((b.generation?, b.seq)))
        .collect();
    let e = engine.clone();
    input.current = blocking(move || Ok(e.store.change_log_state()?.generation)).await?;
    let steps = plan_prune(&input);
    let mut report = PruneReport::default();
    for step in &steps {
        match step {
            PruneStep::DropEmptyStart(info) => {
                let bytes = serde_json::to_vec_pretty(info)
                    .map_err(|e| crate::error::Error::Internal(e.to_string()))?;
                put_bytes(&archive, &generation_object(&info.generation), bytes)
                    .await
                    .map_err(err)?;
                report.empty_starts_dropped.push(info.generation.clone());
            }
            PruneStep::DeleteSegment(s) => {
                let name = s.to_name();
                delete_object(&archive, &name).await.map_err(err)?;
                report.segments_deleted += 1;
                report.bytes_deleted += sizes.get(name.as_str()).copied().unwrap_or(0);
            }
            PruneStep::DeleteMarker(g) => {
                delete_object(&archive, &generation_object(g))
                    .await
                    .map_err(err)?;
                report.generations_deleted.push(g.clone());
            }
        }
        engine.metrics.archive_pruned_objects.inc();
    }
    report.segments_kept = input.segments.len() as u64 - report.segments_deleted;
    if !steps.is_empty() {
        tracing::info!(folder = %folder, segments_deleted = report.segments_deleted,
            generations_deleted = ?report.generations_deleted, segments_kept = report.segments_kept,
            "archive pruned: changes no kept backup needs were deleted");
    }
    Ok(report)
}

fn is_marker(name: &str) -> bool {
    segment::parse_generation_object(name).is_some()
}

/// The answer of `DELETE /admin/backups/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BackupDeletion {
    pub id: String,
    /// The archived changes this deletion made unneeded, deleted with it.
    pub archive: PruneReport,
}

/// Deletes a backup, then prunes the folder's archive. A prune that fails does not fail the
/// deletion: it is logged, counted (`instantdb_archive_prune_failures_total`) and reported.
pub async fn delete_backup(
    engine: &Arc<Engine>,
    folder: &Location,
    id: &str,
) -> std::result::Result<BackupDeletion, crate::backup::BackupError> {
    // read first: once deleted, when it was taken is gone
    let deleted_at = read_manifest(folder, id).await.ok().map(|m| m.created_at);
    crate::backup::delete_backup(folder, id).await?;
    let archive = match prune(engine, folder, deleted_at).await {
        Ok(r) => r,
        Err(e) => {
            let msg = crate::backup::redact_url(&e.to_string());
            tracing::warn!(id, error = %msg, "backup deleted, but pruning its archive failed; the next backup deletion prunes again");
            engine.metrics.archive_prune_failures.inc();
            PruneReport {
                error: Some(msg),
                ..Default::default()
            }
        }
    };
    Ok(BackupDeletion {
        id: id.to_string(),
        archive,
    })
}

/// The earliest time a point-in-time restore from the folder can reach: its oldest complete
/// backup taken with archiving on, or the start of a generation that began empty.
pub async fn earliest_recoverable(folder: &Location) -> Result<Option<String>> {
    let mut times: Vec<String> = stored_bases(folder)
        .await?
        .into_iter()
        .filter(|b| b.generation.is_some())
        .map(|b| crate::store::changes::format_time(b.created_at))
        .collect();
    let archive = archive_folder(folder);
    for (name, _, _) in list_objects(&archive).await.map_err(err)? {
        if !is_marker(&name) {
            continue;
        }
        if let Some(info) = get_bytes(&archive, &name)
            .await
            .map_err(err)?
            .and_then(|b| serde_json::from_slice::<GenerationInfo>(&b).ok())
            && info.started_empty
        {
            times.push(info.started_at);
        }
    }
    Ok(times.into_iter().min())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const T0: &str = "2026-12-02T05:00:00.000000Z";

    fn seg(g: &str, first: i64, last: i64) -> SegmentName {
        SegmentName {
            generation: g.into(),
            first,
            last,
            last_micros: last,
            sha256: "ab".repeat(32),
        }
    }

    fn marker(g: &str, started_empty: bool) -> (String, Option<GenerationInfo>) {
        (
            g.to_string(),
            Some(GenerationInfo {
                generation: g.into(),
                started_at: T0.into(),
                base_seq: 0,
                started_empty,
            }),
        )
    }

    fn t0() -> i64 {
        segment::micros_of(T0).unwrap()
    }

    fn deleted_segments(steps: &[PruneStep]) -> Vec<(String, i64, i64)> {
        steps
            .iter()
            .filter_map(|s| match s {
                PruneStep::DeleteSegment(s) => Some((s.generation.clone(), s.first, s.last)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn segments_wholly_before_the_oldest_kept_base_go_and_the_one_straddling_it_stays() {
        let input = PruneInput {
            segments: vec![seg("ga", 11, 20), seg("ga", 1, 10), seg("ga", 21, 30)],
            markers: [marker("ga", false)].into(),
            bases: vec![("ga", 25), ("ga", 10)]
                .into_iter()
                .map(|(g, s)| (g.to_string(), s))
                .collect(),
            current: Some("ga".into()),
            deleted_at_micros: Some(t0() + 1),
        };
        let steps = plan_prune(&input);
        // base at seq 10 holds 1..=10: the segment 1-10 is not needed, 11-20 is
        assert_eq!(steps, [PruneStep::DeleteSegment(seg("ga", 1, 10))]);
        let input = PruneInput {
            bases: vec![("ga".into(), 15)],
            ..input
        };
        assert_eq!(
            deleted_segments(&plan_prune(&input)),
            [("ga".into(), 1, 10)]
        );
    }

    #[test]
    fn a_generation_without_a_base_goes_whole_oldest_first_and_its_marker_last() {
        let input = PruneInput {
            segments: vec![seg("gold", 6, 9), seg("gold", 1, 5), seg("gnew", 1, 3)],
            markers: [marker("gold", false), marker("gnew", false)].into(),
            bases: vec![("gnew".into(), 3)],
            current: Some("gnew".into()),
            deleted_at_micros: None,
        };
        assert_eq!(
            plan_prune(&input),
            [
                PruneStep::DeleteSegment(seg("gnew", 1, 3)),
                PruneStep::DeleteSegment(seg("gold", 1, 5)),
                PruneStep::DeleteSegment(seg("gold", 6, 9)),
                PruneStep::DeleteMarker("gold".into()),
            ]
        );
    }

    #[test]
    fn the_current_generation_without_a_base_and_an_unreadable_marker_are_kept() {
        let input = PruneInput {
            segments: vec![seg("gcur", 1, 5), seg("gbad", 1, 5)],
            markers: [marker("gcur", false), ("gbad".to_string(), None)].into(),
            bases: vec![],
            current: Some("gcur".into()),
            deleted_at_micros: Some(t0() + 1),
        };
        assert!(plan_prune(&input).is_empty());
        // the same generations, no longer written to and with a readable marker: deleted whole
        let input = PruneInput {
            current: None,
            markers: [marker("gcur", false), marker("gbad", false)].into(),
            ..input
        };
        assert_eq!(deleted_segments(&plan_prune(&input)).len(), 2);
    }

    #[test]
    fn an_empty_start_stays_a_recovery_point_until_a_backup_taken_after_it_is_deleted() {
        let input = PruneInput {
            segments: vec![seg("ge", 1, 5), seg("ge", 6, 9)],
            markers: [marker("ge", true)].into(),
            bases: vec![("ge".into(), 7)],
            current: None,
            deleted_at_micros: Some(t0() - 1),
        };
        assert!(plan_prune(&input).is_empty());
        assert!(
            plan_prune(&PruneInput {
                deleted_at_micros: None,
                ..input.clone()
            })
            .is_empty()
        );
        let steps = plan_prune(&PruneInput {
            deleted_at_micros: Some(t0() + 1),
            ..input.clone()
        });
        let PruneStep::DropEmptyStart(info) = &steps[0] else {
            panic!("{steps:?}")
        };
        assert!(!info.started_empty && info.generation == "ge");
        assert_eq!(deleted_segments(&steps), [("ge".into(), 1, 5)]);
        // with no base left either, the generation goes whole after the rewrite
        let steps = plan_prune(&PruneInput {
            bases: vec![],
            deleted_at_micros: Some(t0() + 1),
            ..input
        });
        assert!(matches!(steps.first(), Some(PruneStep::DropEmptyStart(_))));
        assert_eq!(steps.last(), Some(&PruneStep::DeleteMarker("ge".into())));
    }

    /// Applies steps to a listing the way the destination would.
    fn apply(input: &PruneInput, steps: &[PruneStep]) -> PruneInput {
        let mut out = input.clone();
        for s in steps {
            match s {
                PruneStep::DropEmptyStart(i) => {
                    out.markers.insert(i.generation.clone(), Some(i.clone()));
                }
                PruneStep::DeleteSegment(d) => out.segments.retain(|s| s != d),
                PruneStep::DeleteMarker(g) => {
                    out.markers.remove(g);
                }
            }
        }
        out
    }

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Over many random archives: no kept base loses a segment it replays, the current
    /// generation is never deleted whole, a marker outlives its segments, a prune cut short at
    /// any step and run again ends where one uncut run ends, and a second prune does nothing.
    #[test]
    fn random_archives_keep_what_a_restore_needs_and_a_prune_cut_short_converges() {
        let mut rng = Rng(0x2545f4914f6cdd1d);
        for case in 0..2000 {
            let mut input = PruneInput::default();
            for gi in 0..(1 + rng.below(3)) {
                let g = format!("g{gi}");
                let mut next = 1;
                for _ in 0..rng.below(6) {
                    let len = 1 + rng.below(4) as i64;
                    // sometimes an overlapping retry
                    let first = if next > 1 && rng.below(5) == 0 {
                        next - 1
                    } else {
                        next
                    };
                    input.segments.push(seg(&g, first, next + len - 1));
                    next += len;
                }
                if rng.below(6) != 0 {
                    let (name, info) = marker(&g, rng.below(2) == 0);
                    input
                        .markers
                        .insert(name, if rng.below(10) == 0 { None } else { info });
                }
                for _ in 0..rng.below(3) {
                    input.bases.push((g.clone(), rng.below(next as u64) as i64));
                }
            }
            if rng.below(2) == 0 {
                input.current = Some(format!("g{}", rng.below(3)));
            }
            input.deleted_at_micros = match rng.below(3) {
                0 => None,
                1 => Some(t0() - 1),
                _ => Some(t0() + 1),
            };
            let steps = plan_prune(&input);
            let after = apply(&input, &steps);
            for (g, b) in &input.bases {
                let kept: Vec<_> = after
                    .segments
                    .iter()
                    .filter(|s| s.generation == *g)
                    .collect();
                for s in input
                    .segments
                    .iter()
                    .filter(|s| s.generation == *g && s.last > *b)
                {
                    assert!(kept.contains(&s), "case {case}: base {g}@{b} lost {s:?}");
                }
            }
            if let Some(cur) = &input.current {
                let had = input
                    .segments
                    .iter()
                    .filter(|s| &s.generation == cur)
                    .count();
                let bases = input.bases.iter().any(|(g, _)| g == cur);
                if !bases {
                    assert_eq!(
                        after
                            .segments
                            .iter()
                            .filter(|s| &s.generation == cur)
                            .count(),
                        had,
                        "case {case}"
                    );
                }
            }
            for s in &after.segments {
                assert!(
                    !input.markers.contains_key(&s.generation)
                        || after.markers.contains_key(&s.generation),
                    "case {case}: {s:?} outlived its marker"
                );
            }
            assert!(plan_prune(&after).is_empty(), "case {case}: not idempotent");
            let cut = rng.below(steps.len() as u64 + 1) as usize;
            let partial = apply(&input, &steps[..cut]);
            let resumed = apply(&partial, &plan_prune(&partial));
            assert_eq!(resumed.segments, after.segments, "case {case} cut at {cut}");
            assert_eq!(resumed.markers, after.markers, "case {case} cut at {cut}");
        }
    }
}
