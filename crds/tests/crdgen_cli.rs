//! The `crdgen` binary as CI and developers run it.
#![allow(clippy::expect_used)]

use std::process::Command;

#[test]
fn crdgen_check_passes_on_the_checked_in_manifests() {
    let out = Command::new(env!("CARGO_BIN_EXE_crdgen"))
        .arg("--check")
        .output()
        .expect("crdgen runs");
    assert!(
        out.status.success(),
        "crdgen --check failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "--check must not write anything, it printed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
