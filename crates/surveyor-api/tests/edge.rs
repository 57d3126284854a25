//! The HTTP edge of `surveyor_api::serve` on a loopback listener: the body limit, the cap on
//! connections, the request timeout, the store's statement timeout and the shutdown drain, as
//! a client on the wire meets them.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;
use surveyor_api::{ApiConfig, EdgeConfig};
use surveyor_store::{testing, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Far longer than anything here should take: only a hang trips it.
const GENEROUS: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(store: Store, edge: EdgeConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let config = ApiConfig {
            public_aggregates: true,
            ..ApiConfig::default()
        };
        let task = tokio::spawn(surveyor_api::serve(
            listener,
            store,
            config,
            edge,
            surveyor_api::Metrics::new(),
            async {
                let _ = stopped.await;
            },
        ));
        Server { addr, stop, task }
    }

    /// Begins the shutdown and waits for `serve` to return.
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(GENEROUS, self.task)
            .await
            .expect("serve returns after its drain deadline")
            .unwrap()
            .unwrap();
    }
}

/// An HTTP answer as read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    }

    fn error_code(&self) -> String {
        let body: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not the error body: {self:?}"));
        body["error"]["code"].as_str().unwrap().to_string()
    }
}

/// Reads one answer with a `Content-Length` body off a kept-alive connection.
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.unwrap();
        assert_eq!(n, 1, "the connection closed mid-head: {raw:?}");
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut answer = Answer {
        status,
        head,
        body: Vec::new(),
    };
    let length: usize = answer
        .header("content-length")
        .expect("a body with a length")
        .parse()
        .unwrap();
    answer.body = vec![0; length];
    stream.read_exact(&mut answer.body).await.unwrap();
    answer
}

/// Sends `request` on a new connection and reads the answer.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    tokio::time::timeout(GENEROUS, read_answer(&mut stream))
        .await
        .expect("an answer")
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: surveyor\r\n\r\n").into_bytes()
}

/// Whether the server has closed `stream`: a read ends (EOF, or a reset) instead of waiting.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut sink = Vec::new();
    matches!(
        tokio::time::timeout(GENEROUS, stream.read_to_end(&mut sink)).await,
        Ok(Ok(_) | Err(_))
    )
}

async fn sqlite() -> (testing::TestDb, Store) {
    let db = testing::sqlite();
    let store = surveyor_store::open(&db.url).await.unwrap();
    (db, store)
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let (_db, store) = sqlite().await;
    let edge = EdgeConfig {
        max_body_bytes: 1000,
        ..EdgeConfig::default()
    };
    let server = Server::start(store, edge).await;
    let request = |length: usize| {
        let mut request =
            format!("GET /healthz HTTP/1.1\r\nHost: surveyor\r\nContent-Length: {length}\r\n\r\n")
                .into_bytes();
        request.resize(request.len() + length, b'x');
        request
    };
    let answer = exchange(server.addr, &request(1000)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let answer = exchange(server.addr, &request(1001)).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.error_code(), "payload_too_large");
    server.stop().await;
}

#[tokio::test]
async fn past_the_connection_cap_a_client_waits_for_a_free_slot() {
    let (_db, store) = sqlite().await;
    let edge = EdgeConfig {
        max_connections: 2,
        ..EdgeConfig::default()
    };
    let server = Server::start(store, edge).await;
    // Two kept-alive connections that have been answered: both slots are taken.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(&get("/healthz")).await.unwrap();
        assert_eq!(read_answer(&mut stream).await.status, 200);
        held.push(stream);
    }
    // A third connects (the kernel's backlog takes it) but is not served while both are held.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third.write_all(&get("/healthz")).await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut byte)).await;
    assert!(early.is_err(), "served past the cap: {early:?}");
    // One slot frees: the third is served.
    drop(held.pop());
    let answer = tokio::time::timeout(GENEROUS, read_answer(&mut third))
        .await
        .expect("served once a slot is free");
    assert_eq!(answer.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_what_is_still_open_at_the_drain_deadline() {
    let (_db, store) = sqlite().await;
    let edge = EdgeConfig {
        // Longer than the test: only the drain deadline can close the slow connection.
        header_read_timeout: Duration::from_secs(3600),
        drain_timeout: Duration::from_millis(500),
        ..EdgeConfig::default()
    };
    let server = Server::start(store, edge).await;
    let addr = server.addr;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: surv")
        .await
        .unwrap();
    // Answered before the shutdown, so the server has accepted the slow one too.
    assert_eq!(exchange(addr, &get("/healthz")).await.status, 200);
    server.stop().await;
    assert!(
        closed(&mut slow).await,
        "the slow connection outlived the drain"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener still accepts after shutdown"
    );
}

/// A PostgreSQL connection that holds an exclusive lock on `scans` until dropped, so that
/// the API's reads of it wait.
async fn lock_scans(url: &str) -> sqlx::PgConnection {
    let mut holder = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE scans IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    holder
}

#[tokio::test]
async fn a_request_past_the_request_timeout_is_a_503_with_retry_after() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    let store = surveyor_store::open(&db.url).await.unwrap();
    let edge = EdgeConfig {
        request_timeout: Duration::from_millis(300),
        ..EdgeConfig::default()
    };
    let server = Server::start(store, edge).await;
    let lock = lock_scans(&db.url).await;
    let answer = exchange(server.addr, &get("/api/v1/scans")).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.error_code(), "service_unavailable");
    assert_eq!(answer.header("retry-after").as_deref(), Some("5"));
    // The process still lives.
    assert_eq!(exchange(server.addr, &get("/healthz")).await.status, 200);
    drop(lock);
    server.stop().await;
}

#[tokio::test]
async fn a_statement_past_the_statement_timeout_is_a_503_with_retry_after() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    let options = surveyor_store::OpenOptions {
        statement_timeout: Some(Duration::from_millis(200)),
    };
    let store = surveyor_store::open_with(&db.url, options).await.unwrap();
    // The request timeout stays far off: the database cancels the statement first.
    let server = Server::start(store, EdgeConfig::default()).await;
    let lock = lock_scans(&db.url).await;
    let answer = exchange(server.addr, &get("/api/v1/scans")).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.error_code(), "service_unavailable");
    assert_eq!(answer.header("retry-after").as_deref(), Some("5"));
    drop(lock);
    // The database is free again, and so is the answer.
    assert_eq!(
        exchange(server.addr, &get("/api/v1/scans")).await.status,
        200
    );
    server.stop().await;
}
