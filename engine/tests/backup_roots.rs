//! Directory backup destinations are confined to `backup.allowed_roots` (default: `backups/`
//! beside the data directory): a path elsewhere, or relative to the working directory, is
//! refused with what to do, and nothing is written there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use instant_db::engine::{Engine, ModelLoading};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_directory_outside_the_allowed_roots_is_refused_and_one_inside_works() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cfg = common::config(&data);
    cfg.backup.allowed_roots = vec![]; // the default
    let engine = Arc::new(Engine::open(cfg, ModelLoading::Skip).unwrap());
    let elsewhere = dir.path().join("elsewhere");
    for dest in [
        elsewhere.display().to_string(),
        format!("file://{}", elsewhere.display()),
        format!("{}/backups/../elsewhere", dir.path().display()),
    ] {
        let err = instant_db::maintenance::backup(
            engine.clone(),
            &dest,
            None,
            instant_db::backup::no_progress(),
        )
        .await
        .expect_err(&dest)
        .to_string();
        assert!(err.contains("backup.allowed_roots"), "{err}");
        assert!(!elsewhere.exists(), "{dest} wrote {}", elsewhere.display());
    }
    // the default root, beside the data directory
    let inside = dir.path().join("backups/nightly");
    let report = instant_db::maintenance::backup(
        engine.clone(),
        &inside.display().to_string(),
        None,
        instant_db::backup::no_progress(),
    )
    .await
    .unwrap();
    assert!(report.location.contains("backups/nightly"), "{report:?}");

    // a configured root replaces the default
    let mut cfg = common::config(&data);
    cfg.backup.allowed_roots = vec![elsewhere.clone()];
    drop(engine);
    let engine = Arc::new(Engine::open(cfg, ModelLoading::Skip).unwrap());
    instant_db::maintenance::backup(
        engine.clone(),
        &elsewhere.join("x").display().to_string(),
        None,
        instant_db::backup::no_progress(),
    )
    .await
    .unwrap();
    let err = instant_db::maintenance::backup(
        engine,
        &inside.display().to_string(),
        None,
        instant_db::backup::no_progress(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("outside the allowed backup roots"),
        "{err}"
    );
}
