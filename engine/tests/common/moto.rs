//! A real S3-compatible server for tests: `moto_server` (PyPI `moto[server]`). Tests that use it
//! fail, never skip, when it is missing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the server when dropped (also when the test panics).
pub struct MotoServer {
    child: Child,
    pub port: u16,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first file named `bin` in a directory of PATH.
pub fn find_on_path(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn start_moto() -> MotoServer {
    start_moto_with(&[]).await
}

/// moto_server over HTTPS with the given certificate and key files (PEM).
pub async fn start_moto_tls(cert: &std::path::Path, key: &std::path::Path) -> MotoServer {
    start_moto_with(&[
        "-c".as_ref(),
        cert.as_os_str(),
        "-k".as_ref(),
        key.as_os_str(),
    ])
    .await
}

async fn start_moto_with(extra: &[&std::ffi::OsStr]) -> MotoServer {
    start_moto_at(free_port(), extra).await
}

/// moto_server on a given port (to restart one where its clients expect it).
pub async fn start_moto_at(port: u16, extra: &[&std::ffi::OsStr]) -> MotoServer {
    let Some(bin) = find_on_path("moto_server") else {
        panic!(
            "moto_server was not found on PATH. This test needs a real S3-compatible server: \
             install it with `pip install 'moto[server]'`"
        );
    };
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn moto_server");
    let server = MotoServer { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // A TCP connection, so the HTTPS server counts as up too.
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not answer on port {port} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server
}
