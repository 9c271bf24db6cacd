//! The OpenAPI description against the real server (the binary): schemathesis (PyPI, installed
//! by scripts/test.sh) generates requests for every operation of `/api/openapi.json`, valid and
//! invalid ones, and checks that every answer's status, content type and body are ones the
//! description declares, and that none is a server error. Bounded: a fixed number of examples
//! per operation and role, a fixed seed (so a failure is reproduced by running the test again),
//! and a deadline. The test fails, never skips, when schemathesis is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::ADMIN_TOKEN;
use common::moto::{find_on_path, free_port};

/// The version scripts/test.sh installs (and the one the option names below are for).
const SCHEMATHESIS_VERSION: &str = "4.32.5";
const READ_KEY: &str = "conformance-read-key-0123456789";
const WRITE_KEY: &str = "conformance-write-key-0123456789";

/// The checks that compare answers with the description. Not the ones about what the server
/// accepts (`positive_data_acceptance`, ...): the schemas cannot say everything a handler
/// validates (a path under the allowed roots, a parsable backup URL).
const CHECKS: &str = "status_code_conformance,content_type_conformance,response_schema_conformance,not_a_server_error";

/// Each run's key and its examples per operation: the admin token reaches every handler; the
/// read key and no key exercise the 403 and 401 answers of the operations above them.
const RUNS: [(&str, Option<&str>, u32); 3] = [
    ("admin token", Some(ADMIN_TOKEN), 40),
    ("read key", Some(READ_KEY), 10),
    ("no key", None, 5),
];

/// For all runs together; they take about a minute on two shared cores.
const DEADLINE: Duration = Duration::from_secs(300);

/// Seed of the generated requests; `SCHEMATHESIS_SEED` sets another one.
const SEED: &str = "20261203";

/// The schemathesis command (`schemathesis` or its short name `st`) and its version line.
fn schemathesis() -> (PathBuf, String) {
    for name in ["schemathesis", "st"] {
        let Some(bin) = find_on_path(name) else {
            continue;
        };
        // `st` may be another program, and a pyenv shim exists for a package of another
        // Python: only an answer naming schemathesis counts.
        let Ok(out) = Command::new(&bin).arg("--version").output() else {
            continue;
        };
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && version.to_lowercase().contains("schemathesis") {
            return (bin, version);
        }
    }
    panic!(
        "schemathesis was not found on PATH. This test runs it against the server: run \
         scripts/test.sh, which installs it (CI does), or `python3 -m pip install \
         'schemathesis=={SCHEMATHESIS_VERSION}'`"
    );
}

/// Kills the server when dropped (also when the test panics).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `serve` of the real binary on a free port, with keys of both roles and the admin token,
/// started in `dir`; waits until it is ready.
fn start_server(dir: &Path) -> (Server, u16) {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("read"), format!("{READ_KEY}\n")).unwrap();
    std::fs::write(keys.join("write"), format!("{WRITE_KEY}\n")).unwrap();
    std::fs::write(dir.join("admin-token"), ADMIN_TOKEN).unwrap();
    std::fs::write(dir.join("config.yaml"), common::HOST_INDEPENDENT_CONFIG).unwrap();
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_instant-db"));
    // The server must not inherit keys, roots or an "insecure" switch from whoever runs it.
    for (k, _) in std::env::vars() {
        if k.starts_with("INSTANT_DB_") {
            cmd.env_remove(k);
        }
    }
    // Generated backup destinations and restore sources are refused outside this (empty)
    // directory; `ingest.allowed_roots` is empty, so no generated path is ever ingested.
    cmd.env("INSTANT_DB_BACKUP_ALLOWED_ROOTS", dir.join("backups"));
    let mut child = cmd
        .args(["--log-level", "warn"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(dir.join("config.yaml"))
        .arg("--api-keys-dir")
        .arg(&keys)
        .arg("--admin-token-file")
        .arg(dir.join("admin-token"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
        .spawn()
        .unwrap();
    common::wait_listening(&mut child, port);
    let server = Server(child);
    let until = Instant::now() + Duration::from_secs(60);
    while request(port, "GET", "/health/ready", None, None).0 != 200 {
        assert!(
            Instant::now() < until,
            "the server was not ready within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, port)
}

/// One HTTP/1.0 request (the server closes the connection after the answer): status and body.
fn request(
    port: u16,
    method: &str,
    path: &str,
    key: Option<&str>,
    json: Option<&str>,
) -> (u16, String) {
    let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    if let Some(k) = key {
        head.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    let body = json.unwrap_or("");
    if json.is_some() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

/// Runs schemathesis once, killed at `deadline`: (exit status, output).
fn run_schemathesis(
    bin: &Path,
    dir: &Path,
    port: u16,
    key: Option<&str>,
    examples: u32,
    seed: &str,
    deadline: Instant,
) -> (Option<i32>, String) {
    let out_file = dir.join("schemathesis.out");
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg(format!("http://127.0.0.1:{port}/api/openapi.json"))
        .args(["--checks", CHECKS])
        .args(["--max-examples", &examples.to_string()])
        .args(["--seed", seed])
        // every failure of the run, not the first of each operation
        .arg("--continue-on-failure")
        .args(["--workers", "2"])
        .args(["--request-timeout", "60"])
        // no example database in the working directory: each run stands alone
        .args(["--generation-database", "none"])
        .arg("--no-color")
        // its `.hypothesis`/`.schemathesis` caches go to the temporary directory
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&out_file)
                .unwrap(),
        ));
    if let Some(k) = key {
        cmd.args(["--header", &format!("Authorization: Bearer {k}")]);
    }
    let mut child = cmd.spawn().unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    (
        status,
        std::fs::read_to_string(&out_file).unwrap_or_default(),
    )
}

/// From schemathesis' "SUMMARY" line on.
fn summary(output: &str) -> &str {
    output
        .find("SUMMARY")
        .and_then(|i| output[..i].rfind('\n').map(|j| &output[j + 1..]))
        .unwrap_or(output)
}

#[test]
fn every_answer_of_the_server_is_one_its_openapi_description_declares() {
    let (bin, version) = schemathesis();
    if !version.contains(SCHEMATHESIS_VERSION) {
        eprintln!(
            "note: {version}; scripts/test.sh installs {SCHEMATHESIS_VERSION}, the version this \
             test's options are for"
        );
    }
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| SEED.to_string());
    let dir = tempfile::tempdir().unwrap();
    let (server, port) = start_server(dir.path());
    // Stored documents, so that lists, documents and search hits are checked with content.
    let (status, body) = request(
        port,
        "POST",
        "/api/documents",
        Some(WRITE_KEY),
        Some(
            r#"{"documents": [
                {"name": "backups", "text": "Backups are written to S3 and verified after each run.", "metadata": {"team": "ops"}},
                {"name": "search", "text": "Hybrid search combines keyword and vector scores.", "format": "md"}
            ]}"#,
        ),
    );
    assert_eq!(status, 200, "{body}");
    let started = Instant::now();
    let deadline = started + DEADLINE;
    let mut failed = vec![];
    for (role, key, examples) in RUNS {
        let (status, output) =
            run_schemathesis(&bin, dir.path(), port, key, examples, &seed, deadline);
        eprintln!(
            "==> schemathesis ({version}), {role}, {examples} examples per operation, seed \
             {seed}:\n{}",
            summary(&output)
        );
        match status {
            Some(0) => {}
            Some(code) => {
                eprintln!("{output}");
                failed.push(format!("{role}: exit status {code}"));
            }
            None => {
                eprintln!("{output}");
                failed.push(format!(
                    "{role}: not done within {} s (killed)",
                    DEADLINE.as_secs()
                ));
                break;
            }
        }
    }
    eprintln!("schemathesis took {:.0} s", started.elapsed().as_secs_f64());
    drop(server);
    if !failed.is_empty() {
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        panic!(
            "schemathesis found answers the OpenAPI description does not declare ({}); the \
             output above names each operation, answer and a curl line to reproduce it. Server \
             log:\n{log}",
            failed.join("; ")
        );
    }
}
