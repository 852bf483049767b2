//! The HTTP face `serve` and the simulator share, under clients that hold connections: a trickled
//! header and an idle keep-alive connection are cut at the header-read timeout, and one peer cannot
//! take every connection.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vtriage::http_serve::{Limits, serve};

async fn start(limits: Limits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, router, limits, async {
        let _ = rx.await;
    }));
    (addr, tx)
}

fn limits(header_read_timeout_ms: u64, max_connections: usize, max_per_peer: usize) -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(header_read_timeout_ms),
        max_connections,
        max_per_peer,
        drain: Duration::from_millis(200),
    }
}

/// Reads until the server closes the connection (or `within` passes): whether it closed, and what came.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> (bool, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (true, String::from_utf8_lossy(&got).into()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (false, String::from_utf8_lossy(&got).into()),
        }
    }
}

async fn get_ok(addr: std::net::SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return false;
    };
    let _ = s
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await;
    let (_, answer) = closed_within(&mut s, Duration::from_secs(5)).await;
    answer.starts_with("HTTP/1.1 200")
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off_at_the_header_read_timeout() {
    let (addr, _stop) = start(limits(800, 64, 64)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n").await.unwrap();
    let started = Instant::now();
    let trickle = async {
        for i in 0..40 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if s.write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(8), trickle).await;
    let (closed, _) = closed_within(&mut s, Duration::from_secs(2)).await;
    assert!(closed, "still open after {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(get_ok(addr).await, "the server still answers others");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let (addr, _stop) = start(limits(600, 64, 64)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let (closed, _) = closed_within(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "an idle connection was kept open");
}

#[tokio::test]
async fn one_peer_holding_its_share_of_connections_gets_no_more_while_they_are_open() {
    let (addr, _stop) = start(limits(10_000, 64, 3)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Let the server accept the three before the fourth arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    let _ = fourth.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let (closed, answer) = closed_within(&mut fourth, Duration::from_secs(3)).await;
    assert!(
        closed && answer.is_empty(),
        "the fourth was served: {answer:?}"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(get_ok(addr).await, "a slot given back is taken again");
}

#[tokio::test]
async fn past_the_connection_cap_a_client_waits_until_a_slot_is_free() {
    let (addr, _stop) = start(limits(10_000, 2, 64)).await;
    let first = TcpStream::connect(addr).await.unwrap();
    let second = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = tokio::spawn(get_ok(addr));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "served past the cap");
    drop(first);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("served once a slot is free")
            .unwrap()
    );
    drop(second);
}
