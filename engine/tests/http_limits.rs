//! Request heads past the HTTP library's own limits, over a raw socket to the real server: the
//! answer is the API's JSON error like every other one, never an empty body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use common::raw_http::{exchange, get, long_target_request, read_answer};
use tokio::io::AsyncWriteExt;

async fn server() -> (tempfile::TempDir, TestServer) {
    // Default limits (8 KiB target, 32 KiB headers); no model needed.
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path());
    let engine = common::open_without_model(cfg).await;
    (dir, TestServer::start(engine).await)
}

async fn connect(s: &TestServer) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_target_over_64_kib_gets_a_json_414() {
    let (_dir, s) = server().await;
    let a = exchange(connect(&s).await, long_target_request()).await;
    assert_eq!(a.error_code(414), "uri_too_long");
    assert!(a.message().contains("limits.max_uri_bytes"), "{a:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_and_fifty_headers_are_judged_by_the_engines_byte_limit() {
    let (_dir, s) = server().await;
    // 150 headers of 300 bytes: past 100 headers and over limits.max_header_bytes (32 KiB).
    let big: String = (0..150)
        .map(|i| format!("x-filler-{i}: {}\r\n", "b".repeat(300)))
        .collect();
    let a = exchange(connect(&s).await, get("/health/live", &big)).await;
    assert_eq!(a.error_code(431), "headers_too_large");
    assert!(a.message().contains("limits.max_header_bytes"), "{a:?}");
    // 150 small headers are within the engine's limits: answered as usual.
    let small: String = (0..150).map(|i| format!("x-small-{i}: v\r\n")).collect();
    let a = exchange(connect(&s).await, get("/health/live", &small)).await;
    assert_eq!(a.status, 200, "{a:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_headers_than_the_library_takes_get_a_json_431() {
    let (_dir, s) = server().await;
    // 5,000 tiny headers: 20 KiB, under limits.max_header_bytes, but past any header count the
    // HTTP library is set to take.
    let many: String = (0..5000).map(|i| format!("h{i}:\r\n")).collect();
    let a = exchange(connect(&s).await, get("/health/live", &many)).await;
    assert_eq!(a.error_code(431), "headers_too_large");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_bigger_than_the_librarys_buffer_gets_a_json_431() {
    let (_dir, s) = server().await;
    // 600 KiB of one header: past hyper's default read buffer (about 400 KiB).
    let huge = format!("x-filler: {}\r\n", "c".repeat(600 * 1024));
    let a = exchange(connect(&s).await, get("/health/live", &huge)).await;
    assert_eq!(a.error_code(431), "headers_too_large");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_head_gets_a_json_400() {
    let (_dir, s) = server().await;
    let a = exchange(
        connect(&s).await,
        b"GET /health/live HTTP/1.1\r\nhost: test\r\nno colon here\r\n\r\n".to_vec(),
    )
    .await;
    assert_eq!(a.error_code(400), "invalid_input");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_serves_several_requests_then_a_refused_head_ends_it() {
    let (_dir, s) = server().await;
    let mut conn = connect(&s).await;
    let mut raw = Vec::new();
    // Two requests sent at once (pipelined) and one after the other: each answered in order.
    let mut two = get("/health/live", "");
    two.extend(get("/nowhere", ""));
    conn.write_all(&two).await.unwrap();
    let a = read_answer(&mut conn, &mut raw).await.unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    let b = read_answer(&mut conn, &mut raw).await.unwrap();
    assert_eq!(b.error_code(404), "not_found");
    conn.write_all(&get("/health/live", "")).await.unwrap();
    let c = read_answer(&mut conn, &mut raw).await.unwrap();
    assert_eq!(c.status, 200, "{c:?}");
    // A head the library refuses, after answered requests on the same connection.
    let a = exchange(conn, long_target_request()).await;
    assert_eq!(a.error_code(414), "uri_too_long");
    s.stop().await;
}
