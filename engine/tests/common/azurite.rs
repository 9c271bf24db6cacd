//! A real Azure Blob Storage-compatible server for tests: Azurite (npm `azurite`, installed by
//! `scripts/install-azurite.sh`, found through `AZURITE_BLOB` or PATH). Tests that use it fail,
//! never skip, when it is missing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};

/// Azurite's well-known development account and key (public, in Microsoft's docs).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Kills the server when dropped (also when the test panics).
pub struct Azurite {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Azurite {
    /// The account endpoint (path-style, as Azurite serves it).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// Creates a container (object_store has no call for it), signed with the account key.
    pub async fn create_container(&self, name: &str) {
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(ACCOUNT_KEY)
            .unwrap();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(to_sign.as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let resp = reqwest::Client::new()
            .put(format!("{}/{name}?restype=container", self.endpoint()))
            .header("x-ms-date", date)
            .header("x-ms-version", version)
            .header("Content-Length", "0")
            .header("Authorization", format!("SharedKey {ACCOUNT}:{signature}"))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert!(
            status.is_success(),
            "create container {name}: {status} {}",
            resp.text().await.unwrap_or_default()
        );
    }
}

fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AZURITE_BLOB").map(PathBuf::from) {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("azurite-blob"))
            .find(|p| p.is_file())
    })
}

pub async fn start_azurite() -> Azurite {
    let Some(bin) = binary() else {
        panic!(
            "azurite-blob was not found (AZURITE_BLOB or PATH). This test needs a real \
             Azure Blob Storage-compatible server: run scripts/install-azurite.sh and set \
             AZURITE_BLOB to the path it prints (scripts/test.sh does both)"
        );
    };
    let port = super::moto::free_port();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(bin)
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        .args(["--skipApiVersionCheck", "--silent", "--location"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn azurite-blob");
    let server = Azurite {
        child,
        port,
        _dir: dir,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "azurite-blob did not answer on port {port} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server
}
