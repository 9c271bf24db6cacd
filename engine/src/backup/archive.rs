//! The backup archive: a `.tar.gz` holding `manifest.json` (first entry) and
//! the files it lists, each with its size and sha256.
//!
//! Writing computes the archive's own sha256 while streaming it to disk.
//! Reading ([`extract_and_verify`]) accepts only regular files with plain
//! relative names that the manifest lists (no absolute paths, no `..`, no
//! links, no duplicates), and checks every file's size and sha256.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{BackupError, BackupProgress, Phase, io_err};

/// Archive format version written by this engine.
pub const FORMAT_VERSION: u32 = 1;
/// Name of the manifest entry.
pub const MANIFEST_NAME: &str = "manifest.json";

/// One file in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative name inside the archive (and inside the data directory).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex sha256.
    pub sha256: String,
}

/// Description of a backup, stored as `manifest.json` in the archive (and
/// beside it as `<id>.manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_VERSION`] for archives written by this version.
    pub format_version: u32,
    /// Backup id (also the archive's base name).
    pub backup_id: String,
    /// When the snapshot was taken.
    pub created_at: DateTime<Utc>,
    /// `CARGO_PKG_VERSION` of the engine that wrote it.
    pub engine_version: String,
    /// Documents in the snapshot.
    pub document_count: u64,
    /// Chunks in the snapshot.
    pub chunk_count: u64,
    /// Name of the SQLite database file among `files`.
    #[serde(default)]
    pub database: String,
    /// Every file in the archive except the manifest.
    pub files: Vec<FileEntry>,
    /// Free-form data from the caller (e.g. index parameters).
    #[serde(default)]
    pub extra: serde_json::Value,
}

impl Manifest {
    /// The entry named `name`.
    pub fn file(&self, name: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// A writer that hashes and counts what goes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    /// The inner writer, bytes written and hex sha256.
    pub fn finish(self) -> (W, u64, String) {
        (self.inner, self.count, hex::encode(self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what goes through it, reporting progress.
struct HashingReader<'a, R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    on_read: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        (self.on_read)(n as u64);
        Ok(n)
    }
}

/// sha256 (hex) and size of a file, streaming.
pub fn hash_file(path: &Path) -> Result<(u64, String), BackupError> {
    let f = File::open(path).map_err(|e| io_err(path, e))?;
    let mut r = BufReader::with_capacity(1 << 16, f);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n_total = 0u64;
    loop {
        let n = r.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        n_total += n as u64;
    }
    Ok((n_total, hex::encode(h.finalize())))
}

/// Check that `name` is a safe relative archive/data-dir name: non-empty,
/// relative, only normal components (no `..`, `.`, root or prefix).
pub fn validate_entry_name(name: &str) -> Result<(), BackupError> {
    let bad = |reason: &str| BackupError::UnsafeEntry {
        entry: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    if name.contains('\\') || name.contains('\0') {
        return Err(bad("backslash or NUL in name"));
    }
    let p = Path::new(name);
    if p.is_absolute() || name.starts_with('/') {
        return Err(bad("absolute path"));
    }
    for c in p.components() {
        match c {
            Component::Normal(_) => {}
            Component::ParentDir => return Err(bad("path traversal (..)")),
            _ => return Err(bad("only plain relative names are allowed")),
        }
    }
    Ok(())
}

/// Write `<out>` as a tar.gz of `manifest` followed by each manifest file
/// read from `src_dir/<name>`. Returns (archive size, archive sha256).
pub fn write_archive(
    src_dir: &Path,
    manifest: &Manifest,
    out: &Path,
    progress: &dyn Fn(BackupProgress),
) -> Result<(u64, String), BackupError> {
    let file = File::create(out).map_err(|e| io_err(out, e))?;
    let hw = HashingWriter::new(BufWriter::with_capacity(1 << 16, file));
    let gz = GzEncoder::new(hw, Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let mtime = u64::try_from(manifest.created_at.timestamp()).unwrap_or(0);

    let manifest_json = serde_json::to_vec_pretty(manifest)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest_json.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, MANIFEST_NAME, manifest_json.as_slice())
        .map_err(|e| io_err(out, e))?;

    let total: u64 = manifest.files.iter().map(|f| f.size).sum();
    let mut done = 0u64;
    progress(BackupProgress::new(Phase::Archive, 0, total));
    for entry in &manifest.files {
        validate_entry_name(&entry.name)?;
        let path = src_dir.join(&entry.name);
        let f = File::open(&path).map_err(|e| io_err(&path, e))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(entry.size);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        let mut last = done;
        let mut on_read = |n: u64| {
            done += n;
            if done - last >= (1 << 20) {
                last = done;
                progress(BackupProgress::new(Phase::Archive, done, total));
            }
        };
        let mut reader = HashingReader {
            inner: BufReader::with_capacity(1 << 16, f).take(entry.size),
            hasher: Sha256::new(),
            count: 0,
            on_read: &mut on_read,
        };
        tar.append_data(&mut header, &entry.name, &mut reader)
            .map_err(|e| io_err(&path, e))?;
        let actual = hex::encode(reader.hasher.finalize());
        if reader.count != entry.size || actual != entry.sha256 {
            // the file changed between hashing and archiving
            return Err(BackupError::Checksum {
                file: entry.name.clone(),
                expected: entry.sha256.clone(),
                actual,
            });
        }
    }
    let gz = tar.into_inner().map_err(|e| io_err(out, e))?;
    let hw = gz.finish().map_err(|e| io_err(out, e))?;
    let (buf, size, sha) = hw.finish();
    let file = buf.into_inner().map_err(|e| io_err(out, e.into_error()))?;
    file.sync_all().map_err(|e| io_err(out, e))?;
    progress(BackupProgress::new(Phase::Archive, total, total));
    Ok((size, sha))
}

/// Extract `archive` into `dest` (which must exist), verifying every entry
/// against the manifest (the first entry). Returns the manifest. On error
/// `dest` may hold partial files; the caller removes it.
pub fn extract_and_verify(
    archive: &Path,
    dest: &Path,
    progress: &dyn Fn(BackupProgress),
) -> Result<Manifest, BackupError> {
    let f = File::open(archive).map_err(|e| io_err(archive, e))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::with_capacity(1 << 16, f)));
    let invalid = |e: io::Error| BackupError::InvalidArchive(format!("{}: {e}", archive.display()));
    let mut manifest: Option<Manifest> = None;
    let mut seen: Vec<String> = Vec::new();
    let mut done = 0u64;
    let mut total = 0u64;
    for entry in tar.entries().map_err(invalid)? {
        let mut entry = entry.map_err(invalid)?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8(raw).map_err(|_| BackupError::UnsafeEntry {
            entry: "<non-utf8 name>".into(),
            reason: "names must be UTF-8".into(),
        })?;
        validate_entry_name(&name)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(BackupError::UnsafeEntry {
                entry: name,
                reason: format!(
                    "only regular files are allowed, found {:?}",
                    entry.header().entry_type()
                ),
            });
        }
        let Some(m) = &manifest else {
            if name != MANIFEST_NAME {
                return Err(BackupError::InvalidArchive(format!(
                    "the first entry must be {MANIFEST_NAME}, found {name:?}"
                )));
            }
            let mut buf = Vec::new();
            (&mut entry)
                .take(16 << 20)
                .read_to_end(&mut buf)
                .map_err(invalid)?;
            let m: Manifest = serde_json::from_slice(&buf)
                .map_err(|e| BackupError::InvalidArchive(format!("bad {MANIFEST_NAME}: {e}")))?;
            if m.format_version != FORMAT_VERSION {
                return Err(BackupError::UnsupportedVersion(m.format_version));
            }
            for fe in &m.files {
                validate_entry_name(&fe.name)?;
                if fe.name == MANIFEST_NAME {
                    return Err(BackupError::InvalidArchive(format!(
                        "{MANIFEST_NAME} listed as a file"
                    )));
                }
            }
            total = m.files.iter().map(|f| f.size).sum();
            progress(BackupProgress::new(Phase::Verify, 0, total));
            manifest = Some(m);
            continue;
        };
        let Some(expected) = m.file(&name).cloned() else {
            return Err(BackupError::UnsafeEntry {
                entry: name,
                reason: "not listed in the manifest".into(),
            });
        };
        if seen.contains(&name) {
            return Err(BackupError::UnsafeEntry {
                entry: name,
                reason: "duplicate entry".into(),
            });
        }
        let out_path: PathBuf = dest.join(&name);
        if let Some(parent) = out_path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        let out = File::create_new(&out_path).map_err(|e| io_err(&out_path, e))?;
        let mut w = HashingWriter::new(BufWriter::with_capacity(1 << 16, out));
        // read at most one byte more than announced to detect oversize entries
        let mut limited = (&mut entry).take(expected.size.saturating_add(1));
        let mut buf = vec![0u8; 1 << 16];
        let mut last = done;
        loop {
            let n = limited.read(&mut buf).map_err(invalid)?;
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n]).map_err(|e| io_err(&out_path, e))?;
            done += n as u64;
            if done - last >= (1 << 20) {
                last = done;
                progress(BackupProgress::new(Phase::Verify, done, total));
            }
        }
        let (bw, size, sha) = w.finish();
        let file = bw
            .into_inner()
            .map_err(|e| io_err(&out_path, e.into_error()))?;
        file.sync_all().map_err(|e| io_err(&out_path, e))?;
        if sha != expected.sha256 {
            return Err(BackupError::Checksum {
                file: name,
                expected: expected.sha256,
                actual: sha,
            });
        }
        if size != expected.size {
            return Err(BackupError::Checksum {
                file: name,
                expected: format!("{} bytes", expected.size),
                actual: format!("{size} bytes"),
            });
        }
        seen.push(name);
    }
    let Some(m) = manifest else {
        return Err(BackupError::InvalidArchive(format!(
            "no {MANIFEST_NAME} in archive"
        )));
    };
    for fe in &m.files {
        if !seen.contains(&fe.name) {
            return Err(BackupError::InvalidArchive(format!(
                "file {:?} listed in the manifest is missing",
                fe.name
            )));
        }
    }
    progress(BackupProgress::new(Phase::Verify, total, total));
    Ok(m)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn manifest(files: Vec<FileEntry>) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            backup_id: "b1".into(),
            created_at: Utc::now(),
            engine_version: "0".into(),
            document_count: 1,
            chunk_count: 2,
            database: "a.txt".into(),
            files,
            extra: serde_json::json!({"k": 1}),
        }
    }

    #[test]
    fn entry_names_are_validated() {
        for ok in ["a", "index/x.bin", "a.b"] {
            validate_entry_name(ok).unwrap();
        }
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./a", "a\\b"] {
            assert!(validate_entry_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roundtrip_and_hash_while_streaming() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("a.txt"), b"hello").unwrap();
        std::fs::create_dir(src.path().join("idx")).unwrap();
        std::fs::write(src.path().join("idx/v.bin"), vec![7u8; 300_000]).unwrap();
        let mut files = Vec::new();
        for n in ["a.txt", "idx/v.bin"] {
            let (size, sha256) = hash_file(&src.path().join(n)).unwrap();
            files.push(FileEntry {
                name: n.into(),
                size,
                sha256,
            });
        }
        let m = manifest(files);
        let out = src.path().join("b1.tar.gz");
        let (size, sha) = write_archive(src.path(), &m, &out, &|_| {}).unwrap();
        assert_eq!(hash_file(&out).unwrap(), (size, sha));
        let dest = tempfile::tempdir().unwrap();
        let got = extract_and_verify(&out, dest.path(), &|_| {}).unwrap();
        assert_eq!(got, m);
        assert_eq!(
            std::fs::read(dest.path().join("idx/v.bin")).unwrap().len(),
            300_000
        );
    }

    fn raw_tar(entries: &[(&str, &[u8])], out: &Path) {
        let f = File::create(out).unwrap();
        let mut b = tar::Builder::new(GzEncoder::new(f, Compression::fast()));
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // set the raw name so that unsafe names are written as-is
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn rejects_traversal_unknown_entries_and_bad_checksums() {
        let dir = tempfile::tempdir().unwrap();
        let sha = hex::encode(Sha256::digest(b"data"));
        let m = manifest(vec![FileEntry {
            name: "a.txt".into(),
            size: 4,
            sha256: sha.clone(),
        }]);
        let mj = serde_json::to_vec(&m).unwrap();
        type Case<'a> = (&'a str, Vec<(&'a str, &'a [u8])>);
        let cases: Vec<Case> = vec![
            (
                "traversal",
                vec![(MANIFEST_NAME, &mj), ("../evil", b"data")],
            ),
            (
                "absolute",
                vec![(MANIFEST_NAME, &mj), ("/tmp/evil", b"data")],
            ),
            (
                "unknown",
                vec![(MANIFEST_NAME, &mj), ("other.txt", b"data")],
            ),
            ("tampered", vec![(MANIFEST_NAME, &mj), ("a.txt", b"dava")]),
            ("missing", vec![(MANIFEST_NAME, &mj)]),
            (
                "no-manifest-first",
                vec![("a.txt", b"data"), (MANIFEST_NAME, &mj)],
            ),
        ];
        for (label, entries) in cases {
            let out = dir.path().join(format!("{label}.tar.gz"));
            raw_tar(&entries, &out);
            let dest = tempfile::tempdir().unwrap();
            let err = extract_and_verify(&out, dest.path(), &|_| {}).unwrap_err();
            match label {
                "traversal" | "absolute" | "unknown" => {
                    assert!(
                        matches!(err, BackupError::UnsafeEntry { .. }),
                        "{label}: {err}"
                    )
                }
                "tampered" => assert!(
                    matches!(&err, BackupError::Checksum { file, expected, .. } if file == "a.txt" && *expected == sha),
                    "{label}: {err}"
                ),
                _ => assert!(
                    matches!(err, BackupError::InvalidArchive(_)),
                    "{label}: {err}"
                ),
            }
            assert!(!dir.path().parent().unwrap().join("evil").exists());
        }
    }
}
