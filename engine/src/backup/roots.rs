//! Directory locations confined to configured roots (`backup.allowed_roots`): a backup writes
//! (and prunes) files where it is told, so it is told only places meant for backups, never any
//! path the process can write, and never one relative to whatever its working directory is.

use std::path::{Component, Path, PathBuf};

use super::{BackupError, Location};

/// `loc` itself when it is not a directory; otherwise, when the directory resolved (absolute,
/// `..` and the symlinks of its existing part resolved) lies under one of `roots`, the
/// directory as named, made absolute with `..` removed; else an error naming the roots and
/// what to do. The place named is kept (not the resolved one) because it is what the client
/// records and will name again: a claim mounted at `/backups/<claim>` reports archives under
/// that path, whatever the mount resolves to. Moving a symlink after the check needs write
/// access inside the root, which already allows writing there.
pub fn confine(loc: Location, roots: &[PathBuf]) -> Result<Location, BackupError> {
    let Location::Dir(path) = loc else {
        return Ok(loc);
    };
    let named = absolute(&path);
    let resolved = resolve(&named);
    let roots: Vec<PathBuf> = roots.iter().map(|r| resolve(&absolute(r))).collect();
    if roots.iter().any(|r| resolved.starts_with(r)) {
        return Ok(Location::Dir(named));
    }
    Err(BackupError::OutsideRoots {
        path: path.display().to_string(),
        resolved: resolved.display().to_string(),
        roots: if roots.is_empty() {
            "none".into()
        } else {
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
    })
}

/// Absolute (against the working directory) and lexically normalised: no `.` or `..`.
fn absolute(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut lexical = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    lexical
}

/// `lexical` (absolute, normalised) with its longest existing prefix canonicalised.
fn resolve(lexical: &Path) -> PathBuf {
    let mut existing = lexical;
    let mut rest = Vec::new();
    loop {
        if let Ok(canon) = existing.canonicalize() {
            let mut out = canon;
            out.extend(rest.iter().rev());
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return lexical.to_path_buf(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn directories_under_a_root_pass_as_named_and_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("backups");
        std::fs::create_dir_all(&root).unwrap();
        let roots = vec![root.clone()];
        let inside = Location::Dir(root.join("nightly/../weekly"));
        match confine(inside, &roots).unwrap() {
            Location::Dir(p) => assert_eq!(p, root.join("weekly")),
            other => panic!("{other:?}"),
        }
        for outside in [
            dir.path().join("elsewhere"),
            root.join("../escaped"),
            PathBuf::from("relative/backups"),
            PathBuf::from("/etc"),
        ] {
            let e = confine(Location::Dir(outside.clone()), &roots).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("backup.allowed_roots"), "{msg}");
            assert!(
                msg.contains(&root.canonicalize().unwrap().display().to_string()),
                "{msg}"
            );
        }
    }

    #[test]
    fn a_symlink_under_a_root_that_points_outside_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("backups");
        std::fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("out")).unwrap();
        let e = confine(Location::Dir(root.join("out/x")), &[root]).unwrap_err();
        assert!(matches!(e, BackupError::OutsideRoots { .. }), "{e}");
    }

    #[test]
    fn object_store_locations_are_not_confined() {
        let loc = Location::parse("s3://bucket/prefix").unwrap();
        assert!(matches!(confine(loc, &[]).unwrap(), Location::Object(_)));
    }
}
