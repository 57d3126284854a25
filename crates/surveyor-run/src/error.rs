//! The one error type of running scans, census workers and re-judgements: what failed, with
//! the dependency's error as its source, and whether trying again later may help.

use std::path::PathBuf;

use surveyor_store::StoreError;

/// Why a scan, a census command, a worker or a re-judgement stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed or refused; `what` says what was being done.
    #[error("could not {what}")]
    Store {
        what: String,
        #[source]
        source: StoreError,
    },
    /// A file could not be read or written.
    #[error("could not {what} {}", path.display())]
    File {
        /// `read`, `write`, `replace`, `open the spill file`, …
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The scan's output (JSON lines or CSV) could not be written.
    #[error("could not write output")]
    Output(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A file that is not what it should be (a checkpoint, a spill file), naming it.
    #[error("{what}")]
    Malformed {
        what: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The request does not fit the state it meets (a checkpoint of another scan, a finished
    /// scan, another knowledge base, a census that cannot be read, …); the message says what
    /// to do.
    #[error("{0}")]
    Refused(String),
    /// The scan specification is not valid.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    /// A target list does not parse or names excluded space.
    #[error(transparent)]
    Targets(#[from] surveyor_scan::targets::TargetError),
    /// A stream of targets has a bad line or could not be read.
    #[error(transparent)]
    Stream(#[from] surveyor_scan::targets::StreamError),
    /// A SYN sweep cannot start (privileges, IPv6, explicit targets).
    #[error(transparent)]
    Syn(#[from] surveyor_scan::syn::SynError),
    /// The organisations registry in the store does not validate.
    #[error("the stored registry does not validate")]
    Registry(#[source] surveyor_attrib::RegistryError),
    /// A task of the run panicked or was aborted.
    #[error("{0} failed")]
    Task(&'static str, #[source] tokio::task::JoinError),
}

impl RunError {
    /// Whether the same request may succeed later (the store came back); every other error
    /// fails the same way until something is changed.
    pub fn is_retryable(&self) -> bool {
        match self {
            RunError::Store { source, .. } => source.is_retryable(),
            _ => false,
        }
    }

    pub(crate) fn store(what: impl Into<String>) -> impl FnOnce(StoreError) -> RunError {
        let what = what.into();
        move |source| RunError::Store { what, source }
    }

    pub(crate) fn file(
        what: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> RunError {
        let path = path.to_path_buf();
        move |source| RunError::File { what, path, source }
    }

    pub(crate) fn output(source: impl std::error::Error + Send + Sync + 'static) -> RunError {
        RunError::Output(Box::new(source))
    }
}
