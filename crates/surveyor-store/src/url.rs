//! Turns a database URL into a backend and its connection target.

use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::StoreError;

/// What a database URL names. Deliberately not `Debug`: `PgConnectOptions`' Debug shows the
/// password.
pub(crate) enum Target {
    Postgres(Box<PgConnectOptions>),
    Sqlite(SqliteLocation),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqliteLocation {
    File(PathBuf),
    Memory,
}

/// Classifies a URL by its scheme.
///
/// A scheme is two or more URL scheme characters before a `:`, so that a Windows drive letter
/// (`C:\data\surveyor.db`) still reads as a bare path. Anything with another scheme is refused
/// rather than guessed at: `mysql://…` must not silently become a file named `mysql:`.
pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
    let invalid = |url_scheme: &str, reason| StoreError::InvalidUrl {
        // Only the scheme is echoed: the rest of a URL may hold a password.
        url_scheme: url_scheme
            .chars()
            .take(32)
            .collect::<String>()
            .to_ascii_lowercase(),
        reason,
    };
    let url = url.trim();
    if url.is_empty() {
        return Err(invalid("", "the URL is empty"));
    }
    let Some(scheme) = scheme_of(url) else {
        return Ok(Target::Sqlite(SqliteLocation::File(PathBuf::from(url))));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => PgConnectOptions::from_str(url)
            .map(|options| Target::Postgres(Box::new(options)))
            .map_err(|_| invalid(scheme, "not a well-formed PostgreSQL URL")),
        "sqlite" => {
            let rest = &url[scheme.len() + 1..];
            let path = rest.strip_prefix("//").unwrap_or(rest);
            match path {
                "" => Err(invalid(scheme, "the SQLite URL names no file")),
                ":memory:" => Ok(Target::Sqlite(SqliteLocation::Memory)),
                path => Ok(Target::Sqlite(SqliteLocation::File(PathBuf::from(path)))),
            }
        }
        _ => Err(invalid(
            scheme,
            "unsupported scheme; use postgres://, postgresql://, sqlite: or a file path",
        )),
    }
}

/// The URL's scheme, if it has one.
fn scheme_of(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let starts_alpha = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (scheme.len() >= 2 && starts_alpha && rest_ok).then_some(scheme)
}

/// A database URL for messages and logs, never with its password: a PostgreSQL URL rebuilt
/// from its parsed form as user, host, port and database (so that a password in the query
/// string goes too), an SQLite one as given (a file path holds none), anything else as its
/// scheme alone.
pub fn redact_url(url: &str) -> String {
    match parse(url) {
        Ok(Target::Postgres(options)) => describe_pg(&options),
        Ok(Target::Sqlite(_)) => url.trim().to_string(),
        Err(StoreError::InvalidUrl { url_scheme, .. }) if url_scheme.is_empty() => String::new(),
        Err(StoreError::InvalidUrl { url_scheme, .. }) => format!("{url_scheme}:…"),
        Err(_) => "…".to_string(),
    }
}

/// A PostgreSQL target for messages and logs: user, host, port and database, never the
/// password.
pub(crate) fn describe_pg(options: &PgConnectOptions) -> String {
    let database = options.get_database().unwrap_or(options.get_username());
    match options.get_socket() {
        Some(socket) => format!(
            "postgres://{}@[{}]/{}",
            options.get_username(),
            socket.display(),
            database
        ),
        None => format!(
            "postgres://{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            database
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Ok(description)` of the target, or `Err(url_scheme)` of an InvalidUrl.
    fn check(url: &str, expected: Result<&str, &str>) {
        let got = match parse(url) {
            Ok(Target::Postgres(options)) => Ok(describe_pg(&options)),
            Ok(Target::Sqlite(SqliteLocation::File(path))) => {
                Ok(format!("sqlite file {}", path.display()))
            }
            Ok(Target::Sqlite(SqliteLocation::Memory)) => Ok("sqlite memory".to_string()),
            Err(StoreError::InvalidUrl { url_scheme, .. }) => Err(url_scheme),
            Err(other) => panic!("unexpected error for {url:?}: {other}"),
        };
        assert_eq!(
            got,
            expected.map(str::to_string).map_err(str::to_string),
            "url {url:?}"
        );
    }

    #[test]
    fn classifies_urls() {
        check(
            "postgres://postgres@127.0.0.1:5432/surveyor",
            Ok("postgres://postgres@127.0.0.1:5432/surveyor"),
        );
        check(
            "postgresql://scan:s3cret@127.0.0.1/census",
            Ok("postgres://scan@127.0.0.1:5432/census"),
        );
        check(
            "PostgreSQL://u@127.0.0.1/d",
            Ok("postgres://u@127.0.0.1:5432/d"),
        );
        check("sqlite:surveyor.db", Ok("sqlite file surveyor.db"));
        check("sqlite://surveyor.db", Ok("sqlite file surveyor.db"));
        check(
            "sqlite:///var/lib/surveyor.db",
            Ok("sqlite file /var/lib/surveyor.db"),
        );
        check("sqlite::memory:", Ok("sqlite memory"));
        check(
            "/var/lib/surveyor.db",
            Ok("sqlite file /var/lib/surveyor.db"),
        );
        check("./census.sqlite", Ok("sqlite file ./census.sqlite"));
        check(
            r"C:\data\surveyor.db",
            Ok(r"sqlite file C:\data\surveyor.db"),
        );
        check("mysql://root:hunter2@127.0.0.1/x", Err("mysql"));
        check("file:census.db", Err("file"));
        check("sqlite:", Err("sqlite"));
        check("", Err(""));
        check("postgres://u@127.0.0.1:notaport/d", Err("postgres"));
    }

    #[test]
    fn redacted_urls_keep_where_but_never_a_password() {
        for (url, redacted) in [
            (
                "postgres://scan:hunter2@127.0.0.1/census",
                "postgres://scan@127.0.0.1:5432/census",
            ),
            (
                "postgresql://scan@127.0.0.1/census?password=hunter2&sslmode=disable",
                "postgres://scan@127.0.0.1:5432/census",
            ),
            ("postgres://u:hunter2@127.0.0.1:x/d", "postgres:…"),
            ("mysql://root:hunter2@127.0.0.1/x", "mysql:…"),
            (
                "sqlite:///var/lib/surveyor.db",
                "sqlite:///var/lib/surveyor.db",
            ),
            (" census.db ", "census.db"),
            ("", ""),
        ] {
            assert_eq!(redact_url(url), redacted, "url {url:?}");
        }
    }

    #[test]
    fn invalid_url_messages_hide_passwords() {
        for url in [
            "mysql://root:hunter2@127.0.0.1/x",
            "postgres://u:hunter2@127.0.0.1:x/d",
        ] {
            let message = match parse(url) {
                Err(error) => error.to_string(),
                Ok(_) => panic!("{url:?} parsed"),
            };
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}
