//! Fresh databases for tests: an SQLite file in a temp dir, or a new PostgreSQL database.
//!
//! Each [`TestDb`] is private to one test and removed when dropped, so tests can run in
//! parallel and leave nothing behind.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};

use crate::Backend;

/// The server tests create their databases on, unless `SURVEYOR_TEST_PG` names another.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long creating or dropping a test database may wait for the server.
const PG_TIMEOUT: Duration = Duration::from_secs(10);

/// A database that exists for one test; pass `url` to [`crate::open`].
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    guard: Guard,
}

#[derive(Debug)]
enum Guard {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    pub fn backend(&self) -> Backend {
        match self.guard {
            Guard::Sqlite { .. } => Backend::Sqlite,
            Guard::Postgres { .. } => Backend::Postgres,
        }
    }

    /// PostgreSQL only: makes the database refuse new connections and ends the open ones
    /// (`false`), as a server going away would, or lets connections in again (`true`).
    pub async fn set_reachable(&self, reachable: bool) {
        let Guard::Postgres { admin_url, name } = &self.guard else {
            panic!("only a PostgreSQL test database can be made unreachable");
        };
        let mut admin = pg_connect(admin_url).await.expect("admin connection");
        let alter = format!("ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS {reachable}");
        admin.execute(alter.as_str()).await.expect("ALTER DATABASE");
        if !reachable {
            let kill = format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            );
            admin
                .execute(kill.as_str())
                .await
                .expect("pg_terminate_backend");
        }
        let _ = admin.close().await;
    }

    /// One integer from a query in this database, read beside the store under test.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match self.guard {
            Guard::Postgres { .. } => {
                let mut conn = pg_connect(&self.url).await.expect("connection");
                let value: i64 = sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect("query");
                let _ = conn.close().await;
                value
            }
            Guard::Sqlite { .. } => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("connection");
                let value: i64 = sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect("query");
                let _ = conn.close().await;
                value
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // The temp dir removes itself; a PostgreSQL database has to be dropped on the server.
        let Guard::Postgres { admin_url, name } = &self.guard else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs inside the test's runtime, which must not be blocked on; a short-lived
        // thread with its own runtime does the async work and is joined.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = pg_connect(&admin_url).await?;
                // FORCE ends the store's pooled connections, which may still be open.
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let result = tokio::time::timeout(PG_TIMEOUT, admin.execute(sql.as_str())).await;
                let _ = admin.close().await;
                match result {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("timed out".to_string()),
                }
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("note: could not drop test database {}: {e}", self.url),
            Err(_) => eprintln!("note: dropping test database {} panicked", self.url),
        }
    }
}

/// A fresh SQLite file in a new temp dir (the file itself is created by [`crate::open`]).
pub fn sqlite() -> TestDb {
    let dir = tempfile::Builder::new()
        .prefix("surveyor-store-test-")
        .tempdir()
        .expect("create a temp dir for a test SQLite database");
    let url = format!("sqlite://{}", dir.path().join("surveyor.db").display());
    TestDb {
        url,
        guard: Guard::Sqlite { _dir: dir },
    }
}

/// A fresh, empty PostgreSQL database `surveyor_test_<pid>_<counter>_<random>`.
///
/// Created on the server `SURVEYOR_TEST_PG` names (default [`DEFAULT_PG_URL`]). When the
/// server cannot be reached this returns `None` after a note on stderr, except under `CI=true`,
/// where it panics: CI must run the PostgreSQL tests, never skip them.
pub async fn postgres() -> Option<TestDb> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let admin_url = std::env::var("SURVEYOR_TEST_PG").unwrap_or_else(|_| DEFAULT_PG_URL.into());
    let mut admin = match pg_connect(&admin_url).await {
        Ok(admin) => admin,
        Err(e) => {
            let message = format!(
                "PostgreSQL for tests is unreachable at {} ({e}); start it or set SURVEYOR_TEST_PG",
                crate::redact_url(&admin_url)
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{message} (CI=true: the PostgreSQL tests must run)");
            }
            eprintln!("note: skipping the PostgreSQL backend: {message}");
            return None;
        }
    };
    let name = format!(
        "surveyor_test_{}_{}_{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        // std's per-instance hasher keys are random: a cheap random suffix without a RNG crate.
        RandomState::new().build_hasher().finish() as u32
    );
    let create = format!("CREATE DATABASE \"{name}\"");
    match tokio::time::timeout(PG_TIMEOUT, admin.execute(create.as_str())).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("cannot create test database {name}: {e}"),
        Err(_) => panic!("creating test database {name} timed out"),
    }
    let _ = admin.close().await;
    let url = with_database(&admin_url, &name);
    Some(TestDb {
        url,
        guard: Guard::Postgres { admin_url, name },
    })
}

/// A fresh database on every backend this machine has: SQLite always, PostgreSQL when
/// [`postgres`] can reach a server.
pub async fn each_backend() -> Vec<(Backend, TestDb)> {
    let mut dbs = vec![(Backend::Sqlite, sqlite())];
    if let Some(pg) = postgres().await {
        dbs.push((Backend::Postgres, pg));
    }
    dbs
}

async fn pg_connect(url: &str) -> Result<PgConnection, String> {
    match tokio::time::timeout(PG_TIMEOUT, PgConnection::connect(url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connect timed out".to_string()),
    }
}

/// The same server URL with another database in its path, keeping any query string.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_the_database_of_a_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1?sslmode=disable", "t2"),
            "postgres://u:p@127.0.0.1/t2?sslmode=disable"
        );
    }
}
