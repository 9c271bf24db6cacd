//! Object names, the segment format and replay planning: everything here is pure.
//!
//! Under `<destination>/archive/` an archive holds, per generation `G`:
//! - `G.generation.json`: when it began and at which change (`base_seq`);
//! - segments `G.<first seq>-<last seq>.<commit time of last, µs>.<sha256>.ndjson.gz`, one JSON
//!   line per change, gzip-compressed. Seqs are zero-padded to 20 digits so names sort in
//!   order; the sha256 of the object is in its name, so a download is checked without a
//!   second request, and the time lets a restore pick segments from a listing alone.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::store::changes::{ChangeRow, Op};

/// The folder (under the destination) holding the archive.
pub const ARCHIVE_DIR: &str = "archive";
const SEGMENT_SUFFIX: &str = "ndjson.gz";
const GENERATION_SUFFIX: &str = "generation.json";

/// A fresh generation id: `g<UTC time>-<8 hex>` (sorts by time, no dots).
pub fn new_generation(now: chrono::DateTime<chrono::Utc>) -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("g{}-{}", now.format("%Y%m%dT%H%M%SZ"), &u[..8])
}

fn valid_generation(g: &str) -> bool {
    (2..=64).contains(&g.len())
        && g.starts_with('g')
        && g.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// One segment, as its name describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentName {
    pub generation: String,
    pub first: i64,
    pub last: i64,
    /// Commit time of its last change, µs since the Unix epoch.
    pub last_micros: i64,
    pub sha256: String,
}

impl SegmentName {
    pub fn to_name(&self) -> String {
        format!(
            "{}.{:020}-{:020}.{}.{}.{SEGMENT_SUFFIX}",
            self.generation, self.first, self.last, self.last_micros, self.sha256
        )
    }

    /// `None` for names that are not segments (other objects may share the folder).
    pub fn parse(name: &str) -> Option<SegmentName> {
        let rest = name.strip_suffix(SEGMENT_SUFFIX)?.strip_suffix('.')?;
        let mut parts = rest.split('.');
        let (generation, range, micros, sha) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !valid_generation(generation) {
            return None;
        }
        let (first, last) = range.split_once('-')?;
        let (first, last): (i64, i64) = (first.parse().ok()?, last.parse().ok()?);
        if first < 1 || last < first {
            return None;
        }
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(SegmentName {
            generation: generation.to_string(),
            first,
            last,
            last_micros: micros.parse().ok()?,
            sha256: sha.to_ascii_lowercase(),
        })
    }
}

/// The name of a generation's marker object.
pub fn generation_object(generation: &str) -> String {
    format!("{generation}.{GENERATION_SUFFIX}")
}

/// The generation a marker object names, if `name` is one.
pub fn parse_generation_object(name: &str) -> Option<String> {
    let g = name.strip_suffix(GENERATION_SUFFIX)?.strip_suffix('.')?;
    valid_generation(g).then(|| g.to_string())
}

/// What a generation's marker object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationInfo {
    pub generation: String,
    /// RFC 3339.
    pub started_at: String,
    /// Changes up to this seq are in the base, not in the archive.
    pub base_seq: i64,
    /// The database held no documents when the generation began: replaying its segments
    /// onto an empty database needs no snapshot at all.
    pub started_empty: bool,
}

/// One change as a segment line holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeLine {
    pub seq: i64,
    pub at: String,
    pub op: Op,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

/// µs since the epoch of an RFC 3339 time.
pub fn micros_of(rfc3339: &str) -> Result<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.timestamp_micros())
        .map_err(|e| Error::Integrity(format!("bad change time {rfc3339:?}: {e}")))
}

/// Encodes rows (in seq order, no gap) as a segment: its name and its bytes.
pub fn encode(generation: &str, rows: &[ChangeRow]) -> Result<(SegmentName, Vec<u8>)> {
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Err(Error::Internal("an empty segment was requested".into()));
    };
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    let io = |e: std::io::Error| Error::io("compress an archive segment", e);
    for (i, r) in rows.iter().enumerate() {
        if r.seq != first.seq + i as i64 {
            return Err(Error::Internal(format!(
                "change log rows are not contiguous at seq {}",
                r.seq
            )));
        }
        // The payload is JSON written by the store: it goes in as it is, not re-encoded.
        let mut line = format!(
            "{{\"seq\":{},\"at\":{},\"op\":\"{}\",\"id\":{}",
            r.seq,
            json_str(&r.committed_at)?,
            match r.op {
                Op::Put => "put",
                Op::Delete => "delete",
            },
            json_str(&r.document_id)?
        );
        if let Some(p) = &r.payload {
            line.push_str(",\"payload\":");
            line.push_str(p);
        }
        line.push_str("}\n");
        gz.write_all(line.as_bytes()).map_err(io)?;
    }
    let bytes = gz.finish().map_err(io)?;
    let name = SegmentName {
        generation: generation.to_string(),
        first: first.seq,
        last: last.seq,
        last_micros: micros_of(&last.committed_at)?,
        sha256: hex::encode(Sha256::digest(&bytes)),
    };
    Ok((name, bytes))
}

fn json_str(s: &str) -> Result<String> {
    serde_json::to_string(s).map_err(|e| Error::Internal(e.to_string()))
}

/// Decodes a downloaded segment, checking its sha256 and that it holds exactly the changes its
/// name says.
pub fn decode(name: &SegmentName, bytes: &[u8]) -> Result<Vec<ChangeLine>> {
    let actual = hex::encode(Sha256::digest(bytes));
    if actual != name.sha256 {
        return Err(Error::Integrity(format!(
            "archive segment {} has sha256 {actual}, its name says {}: the object was changed or \
             damaged; restore to a time before seq {} or from another archive copy",
            name.to_name(),
            name.sha256,
            name.first
        )));
    }
    let mut text = String::new();
    GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .map_err(|e| Error::Integrity(format!("archive segment {}: {e}", name.to_name())))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let c: ChangeLine = serde_json::from_str(line).map_err(|e| {
            Error::Integrity(format!(
                "archive segment {} line {}: {e}",
                name.to_name(),
                i + 1
            ))
        })?;
        if c.seq != name.first + i as i64 {
            return Err(Error::Integrity(format!(
                "archive segment {} holds seq {} at line {}",
                name.to_name(),
                c.seq,
                i + 1
            )));
        }
        out.push(c);
    }
    if out.last().map(|c| c.seq) != Some(name.last) {
        return Err(Error::Integrity(format!(
            "archive segment {} is truncated",
            name.to_name()
        )));
    }
    Ok(out)
}

/// The largest seq of `generation` the listed segments hold.
pub fn archived_through<'a>(
    segments: &'a [SegmentName],
    generation: &str,
) -> Option<&'a SegmentName> {
    segments
        .iter()
        .filter(|s| s.generation == generation)
        .max_by_key(|s| s.last)
}

/// The segments to download to go from a base holding changes up to `base_seq` of
/// `generation` to `target_micros`: in order, each starting at or before the change after the
/// previous one (overlaps, from an upload retried after it had landed, are skipped at apply
/// time), ending with the first whose last change is after the target. An error names a gap.
pub fn plan_replay(
    segments: &[SegmentName],
    generation: &str,
    base_seq: i64,
    target_micros: i64,
) -> Result<Vec<SegmentName>> {
    let mut own: Vec<&SegmentName> = segments
        .iter()
        .filter(|s| s.generation == generation && s.last > base_seq)
        .collect();
    own.sort_by_key(|s| (s.first, std::cmp::Reverse(s.last)));
    let mut out: Vec<SegmentName> = Vec::new();
    let mut next = base_seq + 1;
    let mut reached_micros = i64::MIN;
    loop {
        if reached_micros > target_micros {
            return Ok(out);
        }
        // the segment covering `next` that reaches furthest
        let Some(best) = own
            .iter()
            .filter(|s| s.first <= next && s.last >= next)
            .max_by_key(|s| s.last)
        else {
            if let Some(after) = own.iter().find(|s| s.first > next) {
                return Err(Error::Integrity(format!(
                    "the archive of generation {generation} has a gap: changes {next} to {} are \
                     missing, so it cannot restore past the change before them; restore to an \
                     earlier time, or to a snapshot taken after the gap",
                    after.first - 1
                )));
            }
            return Ok(out);
        };
        next = best.last + 1;
        reached_micros = best.last_micros;
        out.push((*best).clone());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn seg(g: &str, first: i64, last: i64, micros: i64) -> SegmentName {
        SegmentName {
            generation: g.into(),
            first,
            last,
            last_micros: micros,
            sha256: "ab".repeat(32),
        }
    }

    fn row(seq: i64, at: &str) -> ChangeRow {
        ChangeRow {
            seq,
            committed_at: at.into(),
            op: Op::Delete,
            document_id: format!("d{seq}"),
            payload: None,
            bytes: 2,
        }
    }

    #[test]
    fn a_segment_name_round_trips_and_sorts_by_seq() {
        let g = new_generation(chrono::Utc::now());
        let a = seg(&g, 1, 9, 1_700_000_000_000_000);
        let b = seg(&g, 10, 200, 1_700_000_000_000_001);
        assert_eq!(SegmentName::parse(&a.to_name()), Some(a.clone()));
        assert!(a.to_name() < b.to_name(), "{} {}", a.to_name(), b.to_name());
    }

    #[test]
    fn names_that_are_not_segments_are_ignored() {
        let g = "g20261202T000000Z-0123abcd";
        for bad in [
            "x.tar.gz".to_string(),
            format!("{g}.generation.json"),
            format!(
                "{g}.00000000000000000005-00000000000000000004.1.{}.ndjson.gz",
                "a".repeat(64)
            ),
            format!("{g}.00000000000000000001-00000000000000000004.1.short.ndjson.gz"),
            format!(
                "bad.gen.00000000000000000001-00000000000000000004.1.{}.ndjson.gz",
                "a".repeat(64)
            ),
        ] {
            assert_eq!(SegmentName::parse(&bad), None, "{bad}");
        }
        assert_eq!(
            parse_generation_object(&generation_object(g)).as_deref(),
            Some(g)
        );
    }

    #[test]
    fn encoding_then_decoding_gives_the_rows_back_and_a_changed_byte_is_refused() {
        let rows = vec![
            row(3, "2026-12-02T05:00:00.000001Z"),
            row(4, "2026-12-02T05:00:01.000000Z"),
        ];
        let (name, bytes) = encode("g1", &rows).unwrap();
        assert_eq!((name.first, name.last), (3, 4));
        assert_eq!(name.last_micros, micros_of("2026-12-02T05:00:01Z").unwrap());
        let lines = decode(&name, &bytes).unwrap();
        assert_eq!(lines.iter().map(|l| l.seq).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(lines[1].id, "d4");
        let mut bad = bytes.clone();
        let n = bad.len() / 2;
        bad[n] ^= 1;
        let e = decode(&name, &bad).unwrap_err().to_string();
        assert!(e.contains("sha256"), "{e}");
    }

    #[test]
    fn rows_with_a_hole_are_not_encoded() {
        let rows = vec![
            row(1, "2026-12-02T05:00:00Z"),
            row(3, "2026-12-02T05:00:00Z"),
        ];
        assert!(encode("g1", &rows).is_err());
    }

    #[test]
    fn a_replay_plan_starts_after_the_base_and_stops_at_the_first_segment_past_the_target() {
        let segs = vec![
            seg("g1", 1, 10, 100),
            seg("g1", 11, 20, 200),
            seg("g1", 21, 30, 300),
            seg("g2", 1, 5, 150),
        ];
        let plan = plan_replay(&segs, "g1", 12, 250).unwrap();
        assert_eq!(
            plan.iter().map(|s| (s.first, s.last)).collect::<Vec<_>>(),
            [(11, 20), (21, 30)]
        );
        // the base holds everything: nothing to fetch
        assert!(plan_replay(&segs, "g1", 30, i64::MAX).unwrap().is_empty());
        // a target before the first change after the base still fetches that segment
        assert_eq!(plan_replay(&segs, "g1", 0, 50).unwrap().len(), 1);
    }

    #[test]
    fn an_overlapping_retry_is_tolerated_and_a_gap_is_an_error_only_when_it_is_needed() {
        let segs = vec![
            seg("g", 1, 10, 100),
            seg("g", 1, 15, 150),
            seg("g", 16, 20, 200),
        ];
        let plan = plan_replay(&segs, "g", 0, i64::MAX).unwrap();
        assert_eq!(
            plan.iter().map(|s| (s.first, s.last)).collect::<Vec<_>>(),
            [(1, 15), (16, 20)]
        );
        let gap = vec![seg("g", 1, 10, 100), seg("g", 15, 20, 200)];
        let e = plan_replay(&gap, "g", 0, i64::MAX).unwrap_err().to_string();
        assert!(e.contains("changes 11 to 14 are missing"), "{e}");
        // restoring to a time before the gap does not need what is after it
        assert_eq!(plan_replay(&gap, "g", 0, 50).unwrap().len(), 1);
    }

    #[test]
    fn the_archived_position_is_the_largest_last_seq_of_the_generation() {
        let segs = vec![seg("g", 1, 10, 1), seg("g", 11, 12, 2), seg("h", 1, 99, 3)];
        assert_eq!(archived_through(&segs, "g").map(|s| s.last), Some(12));
        assert_eq!(archived_through(&segs, "x"), None);
    }
}
