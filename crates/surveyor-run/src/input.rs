//! Targets read as a stream (`--targets-file FILE|-`): a reader thread parses the input line by
//! line as it arrives and hands this shard's targets, numbered in stream order
//! (`surveyor_scan::targets::StreamWalk`), through a bounded channel to the engine, which
//! starts probing at the first line. Memory holds one line, the channel and the window,
//! however long the input is.

use std::io::BufRead;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use surveyor_scan::targets::{
    read_entries, Entry, InputFormat, LineParser, StreamError, StreamWalk,
};
use surveyor_scan::{Exclusions, Frontier, Order, PortSpec, Target, TargetSource};
use tokio::sync::mpsc;

use crate::RunError;

/// Targets the reader may have ready ahead of the engine: enough that the engine never waits
/// on a fast input, few enough that a stop leaves little read and not probed.
const AHEAD: usize = 1024;

/// Where the stream comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    /// A file, or anything with a path (a named pipe, `/dev/fd/N`).
    Path(PathBuf),
}

/// A scan's targets as a stream: the arguments' entries first, then the input's lines.
#[derive(Debug, Clone)]
pub struct TargetStream {
    pub input: Input,
    /// How errors name the input (`NAME line N`).
    pub name: String,
    pub format: InputFormat,
    /// Entries from the command line, before the input's first line.
    pub first: Vec<Entry>,
    pub ports: Vec<PortSpec>,
    /// What a check of the whole input found, when it was checked before the scan (a regular
    /// file); a pipe is never read twice.
    pub checked: Option<Checked>,
}

/// What reading a whole input found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Entries of the input (lines with a target; a range may make several).
    pub entries: u64,
    /// Targets (positions) of the arguments and the input together, in every shard.
    pub targets: u128,
}

impl TargetStream {
    /// `file` (`-` for stdin) as a stream after the arguments' `first` entries; a regular file
    /// is checked whole here, before anything is stored or sent, and must hold a target if
    /// `first` holds none.
    pub fn open(
        file: &str,
        format: InputFormat,
        first: Vec<Entry>,
        ports: &[PortSpec],
        exclusions: &Exclusions,
    ) -> Result<TargetStream, RunError> {
        let (input, name) = match file {
            "-" => (Input::Stdin, "stdin".to_string()),
            path => (Input::Path(PathBuf::from(path)), path.to_string()),
        };
        let mut stream = TargetStream {
            input,
            name,
            format,
            first,
            ports: ports.to_vec(),
            checked: None,
        };
        stream.check(exclusions)?;
        if stream.checked.is_some_and(|c| c.targets == 0) {
            return Err(RunError::Refused(format!(
                "no targets: {file} holds none and no arguments were given"
            )));
        }
        Ok(stream)
    }

    /// Checks a regular file whole before anything is sent, as Surveyor always has: a bad line
    /// is an error naming it, and nothing is scanned. Counts its entries and targets, holding
    /// none. Other inputs (stdin, pipes) are read once, as they come.
    pub fn check(&mut self, exclusions: &Exclusions) -> Result<(), RunError> {
        let Input::Path(path) = &self.input else {
            return Ok(());
        };
        let is_file = std::fs::metadata(path)
            .map_err(RunError::file("read", path))?
            .is_file();
        if !is_file {
            return Ok(());
        }
        let walk = StreamWalk::new(&self.ports, Order::default(), 0, Default::default());
        let mut targets: u128 = self.first.iter().map(|e| walk.count(e)).sum();
        let mut entries = 0u64;
        let mut parser = LineParser::new(self.name.clone(), self.format);
        read_entries(open(&self.input)?, &mut parser, exclusions, |entry| {
            entries += 1;
            targets = targets.saturating_add(walk.count(&entry));
            ControlFlow::Continue(())
        })?;
        self.checked = Some(Checked { entries, targets });
        Ok(())
    }

    /// Starts the reader thread at `frontier` (a checkpoint's, or the start) and returns the
    /// engine's source. The thread ends at the input's end, at a bad line, or when the engine
    /// drops the source; one blocked reading a pipe that never ends goes with the process.
    pub fn start(
        &self,
        order: Order,
        frontier: &Frontier,
        exclusions: Exclusions,
    ) -> Result<StreamSource, RunError> {
        let input = open(&self.input)?;
        let (tx, rx) = mpsc::channel(AHEAD);
        let error = Arc::new(Mutex::new(None));
        let mut walk = StreamWalk::new(&self.ports, order, frontier.next, frontier.pending.clone());
        let (first, mut parser) = (
            self.first.clone(),
            LineParser::new(self.name.clone(), self.format),
        );
        let failed = error.clone();
        std::thread::Builder::new()
            .name("targets-reader".into())
            .spawn(move || {
                let mut send = |entry: Entry| {
                    for target in walk.walk(entry) {
                        if tx.blocking_send(target).is_err() {
                            // The engine stopped: nothing more is wanted.
                            return ControlFlow::Break(());
                        }
                    }
                    ControlFlow::Continue(())
                };
                for entry in first {
                    if send(entry).is_break() {
                        return;
                    }
                }
                if let Err(e) = read_entries(input, &mut parser, &exclusions, send) {
                    // Set before the channel closes: the source stops taking targets as
                    // soon as it sees it, and says why once the channel is empty.
                    *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                }
            })
            .map_err(RunError::file(
                "start the thread that reads",
                &self.input.path(),
            ))?;
        Ok(StreamSource { rx, error })
    }
}

impl Input {
    fn path(&self) -> PathBuf {
        match self {
            Input::Stdin => PathBuf::from("stdin"),
            Input::Path(path) => path.clone(),
        }
    }
}

fn open(input: &Input) -> Result<Box<dyn BufRead + Send>, RunError> {
    const BUFFER: usize = 64 * 1024;
    Ok(match input {
        Input::Stdin => Box::new(std::io::BufReader::with_capacity(BUFFER, std::io::stdin())),
        Input::Path(path) => Box::new(std::io::BufReader::with_capacity(
            BUFFER,
            std::fs::File::open(path).map_err(RunError::file("read", path))?,
        )),
    })
}

/// The engine's end of a stream: targets as the reader numbers them. After a bad line it
/// yields nothing more, even what the reader had ready (lines before the bad one, which a
/// resume probes), and reports that it failed.
#[derive(Debug)]
pub struct StreamSource {
    rx: mpsc::Receiver<(u128, Target)>,
    error: Arc<Mutex<Option<StreamError>>>,
}

impl StreamSource {
    /// Why the stream stopped early, if it did.
    pub fn error(&self) -> Option<String> {
        self.lock().as_ref().map(ToString::to_string)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<StreamError>> {
        self.error.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TargetSource for StreamSource {
    async fn next_target(&mut self) -> Option<(u128, Target)> {
        if self.lock().is_some() {
            return None;
        }
        self.rx.recv().await
    }

    fn failed(&self) -> bool {
        self.lock().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(path: PathBuf) -> TargetStream {
        TargetStream {
            input: Input::Path(path),
            name: "list".into(),
            format: InputFormat::Auto,
            first: Vec::new(),
            ports: vec![PortSpec::from(443)],
            checked: None,
        }
    }

    async fn drain(source: &mut StreamSource) -> Vec<u128> {
        let mut positions = Vec::new();
        while let Some((p, _)) = source.next_target().await {
            positions.push(p);
        }
        positions
    }

    #[tokio::test]
    async fn a_file_is_checked_whole_and_streamed_from_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list");
        std::fs::write(&path, "127.0.0.1\n127.0.1.0/30\n127.0.0.9\n").unwrap();
        let mut stream = stream_of(path);
        stream.check(&Exclusions::builtin(true)).unwrap();
        assert_eq!(
            stream.checked,
            Some(Checked {
                entries: 3,
                targets: 6
            })
        );
        let frontier = Frontier {
            next: 4,
            pending: [1].into(),
        };
        let mut source = stream
            .start(Order::default(), &frontier, Exclusions::builtin(true))
            .unwrap();
        assert_eq!(drain(&mut source).await, [1, 4, 5]);
        assert!(!source.failed());
    }

    #[tokio::test]
    async fn a_bad_line_stops_the_source_and_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list");
        std::fs::write(&path, "127.0.0.1\nnot-an-address\n127.0.0.2\n").unwrap();
        let mut stream = stream_of(path);
        let err = stream.check(&Exclusions::builtin(true)).unwrap_err();
        assert!(err.to_string().starts_with("list line 2"), "{err}");
        // Read as it comes (as a pipe is), the good line goes through, then the source stops.
        let mut source = stream
            .start(
                Order::default(),
                &Frontier::default(),
                Exclusions::builtin(true),
            )
            .unwrap();
        let positions = drain(&mut source).await;
        assert!(positions.len() <= 1, "{positions:?}");
        assert!(source.failed());
        assert!(
            source.error().unwrap().starts_with("list line 2"),
            "{:?}",
            source.error()
        );
    }
}
