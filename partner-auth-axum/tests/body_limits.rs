//! Request bodies over a real connection: a `Content-Length` above the
//! route's limit is refused before any of the body is sent, and a body that
//! stops arriving is answered with a JSON 408 instead of holding the
//! connection open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use partner_auth_axum::serve::with_body_timeout;
use partner_auth_axum::{AuthState, CookieSettings, app, routes, serve};
use partner_auth_core::{
    Directory, KeyRing, MemorySessionStore, MockProvider, RunMode, SessionConfig, SessionManager,
    SystemClock, TokenConfig, TokenIssuer, TracingEvents,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// How long the client waits for any answer; far above the body timeout
/// used here, so that only a server that never answers fails the test.
const CLIENT_PATIENCE: Duration = Duration::from_secs(30);

fn router() -> Router {
    let clock = Arc::new(SystemClock);
    let directory = Arc::new(Directory::launch().unwrap());
    let issuer = TokenIssuer::new(
        KeyRing::generate().unwrap(),
        TokenConfig::default(),
        clock.clone(),
    )
    .unwrap();
    let sessions = SessionManager::new(
        Arc::new(MemorySessionStore::new()),
        Arc::new(issuer),
        directory.clone(),
        clock,
        Arc::new(TracingEvents),
        SessionConfig::default(),
    )
    .unwrap();
    let state = AuthState {
        sessions: Arc::new(sessions),
        mock: Some(Arc::new(
            MockProvider::new(directory, RunMode::Development).unwrap(),
        )),
        cookies: CookieSettings { secure: false },
    };
    app([routes::router(state)])
}

async fn start(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, app, std::future::pending()));
    addr
}

/// Sends `head` and `body` as they are, then reads one response: its status
/// and its body as JSON.
async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let read = async {
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before a whole response");
            buf.extend_from_slice(&chunk[..n]);
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                let json =
                    serde_json::from_slice(&buf[end + 4..end + 4 + length]).unwrap_or(Value::Null);
                return (status, json);
            }
        }
    };
    tokio::time::timeout(CLIENT_PATIENCE, read)
        .await
        .expect("the server never answered")
}

#[tokio::test]
async fn an_announced_body_above_the_limit_is_refused_before_it_is_sent() {
    let addr = start(router()).await;
    let head = "POST /api/login/mock HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n";
    let (status, body) = exchange(addr, head, b"").await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "payload_too_large");

    // Within the limit the same route reads the body as usual.
    let json = br#"{"user": "nikhil", "delivery": "body"}"#;
    let head = format!(
        "POST /api/login/mock HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        json.len()
    );
    let (status, body) = exchange(addr, &head, json).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_a_json_408() {
    let addr = start(with_body_timeout(router(), Duration::from_secs(1))).await;
    for uri in ["/api/login/mock", "/api/token/refresh"] {
        let head = format!(
            "POST {uri} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/json\r\nContent-Length: 50\r\n\r\n"
        );
        let (status, body) = exchange(addr, &head, br#"{"user"#).await;
        assert_eq!(status, 408, "{uri}: {body}");
        assert_eq!(body["error"], "request_timeout", "{uri}");
    }
}
