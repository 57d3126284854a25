//! `surveyor serve` against slow-header clients, end to end: the real binary on a loopback
//! port, 200 connections that send half a request and then nothing, and `/healthz` asked
//! all the while. The server must close every slow connection and keep answering.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SLOW_CLIENTS: usize = 200;

/// Far longer than the one-second header timeout under test: only a server that never
/// closes a slow connection trips it.
const GENEROUS: Duration = Duration::from_secs(30);

/// Kills the server when the test ends, however it ends.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `surveyor serve` on 127.0.0.1:0 and returns it with the address it printed.
fn serve(db: &str, flags: &[&str]) -> (Serve, std::net::SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_surveyor"))
        .args(["serve", "--db", db, "--listen", "127.0.0.1:0"])
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Serve(child);
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads stderr to its end, so that the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let Ok(line) = line else { break };
            // "surveyor: API on http://127.0.0.1:PORT/api/v1/census (Ctrl-C stops)"
            if let Some(rest) = line.split("http://").nth(1) {
                let _ = tx.send(rest.split('/').next().unwrap().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(GENEROUS)
        .expect("surveyor serve says where it listens")
        .parse()
        .unwrap();
    (server, addr)
}

/// `GET /healthz` on a connection of its own: the status code.
async fn healthz(addr: std::net::SocketAddr) -> u16 {
    let answer = tokio::time::timeout(GENEROUS, async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: surveyor\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        answer
    })
    .await
    .expect("/healthz answers");
    let answer = String::from_utf8_lossy(&answer);
    answer.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_closed_while_healthz_answers() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("surveyor.db").display());
    let (_server, addr) = serve(&db, &["--header-timeout", "1"]);

    let mut slow = Vec::new();
    for i in 0..SLOW_CLIENTS {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        // Half a request line, or a whole line and half a header, and then nothing.
        let half: &[u8] = if i % 2 == 0 {
            b"GET /api/v1/cen"
        } else {
            b"GET /api/v1/census HTTP/1.1\r\nHost: surv"
        };
        stream.write_all(half).await.unwrap();
        slow.push(stream);
    }
    let closures: Vec<_> = slow
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                // Closed: the read ends, with EOF or a reset.
                let mut sink = Vec::new();
                tokio::time::timeout(GENEROUS, stream.read_to_end(&mut sink))
                    .await
                    .is_ok()
            })
        })
        .collect();

    // The server answers throughout the attack.
    let mut answered = 0;
    while closures.iter().any(|c| !c.is_finished()) {
        assert_eq!(healthz(addr).await, 200, "/healthz during the attack");
        answered += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered > 0);
    let mut still_open = 0;
    for closure in closures {
        if !closure.await.unwrap() {
            still_open += 1;
        }
    }
    assert_eq!(
        still_open, 0,
        "slow-header connections the server left open"
    );
    assert_eq!(healthz(addr).await, 200, "/healthz after the attack");
}
