//! The store's error type: our own stable messages, sqlx errors kept only as sources.

use std::borrow::Cow;

use crate::{Backend, ScanId};

/// Why a store operation failed.
///
/// `Display` never shows a dependency's message or `Debug` string, and never the password of a
/// database URL; the sqlx error, when there is one, is reachable through
/// [`std::error::Error::source`] for logs that want it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL names no backend we have, or is malformed.
    #[error("invalid database URL (scheme {url_scheme:?}): {reason}")]
    InvalidUrl {
        /// The URL's scheme, lower-cased; empty for an empty URL.
        url_scheme: String,
        reason: &'static str,
    },
    /// The database could not be reached or opened.
    #[error("cannot connect to the {backend} database {target}")]
    Connect {
        backend: Backend,
        /// Where we tried to connect, without any password.
        target: String,
        #[source]
        source: sqlx::Error,
    },
    /// The schema migrations could not be applied.
    #[error("cannot apply the {backend} schema migrations")]
    Migrate {
        backend: Backend,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A statement failed for a reason that is not about the data.
    #[error("the {backend} store failed to {action}")]
    Query {
        backend: Backend,
        /// What the store was doing, e.g. "record observations".
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// The statement ran longer than the store's statement timeout
    /// ([`crate::OpenOptions::statement_timeout`]) and the database cancelled it. Retryable:
    /// the same query may be quick once the database is less busy.
    #[error("the {backend} query to {action} took longer than the statement timeout")]
    Timeout {
        backend: Backend,
        /// What the store was doing, e.g. "count the census".
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A value has no stored form: a NUL character (PostgreSQL text cannot hold one), or a
    /// certificate date RFC 3339 cannot write. Nothing of the call was stored.
    #[error("cannot store {what}")]
    Unencodable { what: Cow<'static, str> },
    /// A stored row does not parse back into the model.
    #[error("stored {what} does not parse back into the model")]
    Corrupt { what: Cow<'static, str> },
    /// No scan has this id.
    #[error("no scan with id {0}")]
    UnknownScan(ScanId),
    /// The scan's observations were pruned: only its census aggregates remain.
    #[error("the observations of scan {0} were pruned; only its census counts remain")]
    ScanPruned(ScanId),
    /// A query the store cannot answer as asked (the reason says why and what works).
    #[error("{0}")]
    InvalidQuery(Cow<'static, str>),
}

impl StoreError {
    /// Whether trying the same operation again later may succeed: the database was unreachable,
    /// busy or asked us to retry. Errors about the data itself are never retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Connect { .. } | StoreError::Timeout { .. } => true,
            StoreError::Query {
                backend, source, ..
            } => sqlx_is_retryable(*backend, source),
            StoreError::InvalidUrl { .. }
            | StoreError::Migrate { .. }
            | StoreError::Unencodable { .. }
            | StoreError::Corrupt { .. }
            | StoreError::UnknownScan(_)
            | StoreError::ScanPruned(_)
            | StoreError::InvalidQuery(_) => false,
        }
    }

    pub(crate) fn query(
        backend: Backend,
        action: &'static str,
    ) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| {
            if is_cancelled(&source) {
                StoreError::Timeout {
                    backend,
                    action,
                    source,
                }
            } else {
                StoreError::Query {
                    backend,
                    action,
                    source,
                }
            }
        }
    }

    pub(crate) fn corrupt(what: impl Into<Cow<'static, str>>) -> Self {
        StoreError::Corrupt { what: what.into() }
    }
}

/// PostgreSQL's query_canceled (57014): the statement timeout, or an administrator's
/// pg_cancel_backend, which is as transient. SQLite has no such code.
fn is_cancelled(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("57014"))
}

fn sqlx_is_retryable(backend: Backend, error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else { return false };
            match backend {
                // SQLite reports numeric extended result codes: BUSY (5) and LOCKED (6) mean
                // another connection held the lock for longer than our busy timeout.
                Backend::Sqlite => code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)),
                // PostgreSQL SQLSTATEs: connection exceptions, serialization failure, deadlock,
                // too many connections, server shutting down, crashed or starting up, and
                // 55000 as a new connection meets it: the database refuses connections for
                // maintenance (ALLOW_CONNECTIONS false).
                Backend::Postgres => {
                    code.starts_with("08")
                        || matches!(
                            &*code,
                            "40001" | "40P01" | "53300" | "55000" | "57P01" | "57P02" | "57P03"
                        )
                }
            }
        }
        _ => false,
    }
}
