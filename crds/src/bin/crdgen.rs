//! Writes the CRD manifests into `crds/` (plain YAML) and `charts/instant-db-operator/templates/crds/`
//! (Helm templates, see `instant_db_crds::chart_crd_yaml`).
//!
//! `crdgen` writes them; `crdgen --check` writes nothing and exits 1 when a checked-in file
//! differs from what the types generate.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn repo_root() -> PathBuf {
    // crds/ is one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn main() -> ExitCode {
    let check = std::env::args().skip(1).any(|a| a == "--check");
    let root = repo_root();
    type Render = fn(
        &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    ) -> Result<String, instant_db_crds::Error>;
    let targets: [(PathBuf, Render); 2] = [
        (root.join("crds"), instant_db_crds::crd_yaml),
        (
            root.join("charts/instant-db-operator/templates/crds"),
            instant_db_crds::chart_crd_yaml,
        ),
    ];
    let mut stale = Vec::new();
    for (file, crd) in instant_db_crds::all_crds() {
        for (dir, render) in &targets {
            let yaml = match render(&crd) {
                Ok(y) => y,
                Err(e) => {
                    eprintln!("crdgen: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let path = dir.join(file);
            let current = std::fs::read_to_string(&path).ok();
            if current.as_deref() == Some(yaml.as_str()) {
                continue;
            }
            if check {
                stale.push(path);
            } else {
                if let Err(e) =
                    std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, &yaml))
                {
                    eprintln!("crdgen: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                println!("wrote {}", path.display());
            }
        }
    }
    if !stale.is_empty() {
        eprintln!("crdgen --check: these CRD files are missing or differ from the Rust types:");
        for p in &stale {
            eprintln!("  {}", p.display());
        }
        eprintln!("run `cargo run -p instant-db-crds --bin crdgen` and commit the result");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
