//! Encoding a batch while the database stores it. Encoding (JSON, then the wire format) is
//! client CPU; storing is the database's. Done one after the other, each waits for the other
//! (one writer kept both cores barely half busy, docs/benchmarks.md "Session 7"). Here the
//! batch's chunks are encoded on the calling task while `write`, on the same task, hands the
//! previous chunk to the database: the database works on chunk k while chunk k + 1 is encoded.

use std::future::Future;

use tokio::sync::mpsc;

use crate::StoreError;

/// Encoded chunks waiting for the writer: a bound on what is held ahead of the database.
const AHEAD: usize = 2;

/// Runs `chunks` (an iterator that encodes each chunk as it is reached) and `write`, which
/// receives the chunks in order, concurrently on the current task. An encoding error stops
/// the feed and is returned even though `write` saw a clean end: the caller's transaction
/// must then roll back. If `write` fails, the feed stops and its error is returned.
pub(crate) async fn encode_while_writing<T, R, W>(
    chunks: impl Iterator<Item = Result<T, StoreError>>,
    write: impl FnOnce(mpsc::Receiver<T>) -> W,
) -> Result<R, StoreError>
where
    W: Future<Output = Result<R, StoreError>>,
{
    let (tx, rx) = mpsc::channel(AHEAD);
    let feed = async move {
        for chunk in chunks {
            if tx.send(chunk?).await.is_err() {
                // The writer stopped; its error is the one to report.
                break;
            }
            // Let the writer hand this chunk to the database before the next is encoded.
            tokio::task::yield_now().await;
        }
        Ok::<(), StoreError>(())
    };
    let (fed, written) = tokio::join!(feed, write(rx));
    fed?;
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_writer_gets_every_chunk_in_order() {
        let chunks = (0..10).map(Ok);
        let got = encode_while_writing(chunks, |mut rx| async move {
            let mut got = Vec::new();
            while let Some(chunk) = rx.recv().await {
                got.push(chunk);
            }
            Ok(got)
        })
        .await
        .unwrap();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn an_encoding_error_is_returned_after_a_clean_write() {
        let chunks = (0..5).map(|i| {
            if i == 3 {
                Err(StoreError::Unencodable {
                    what: "chunk 3".into(),
                })
            } else {
                Ok(i)
            }
        });
        let written = std::sync::Mutex::new(Vec::new());
        let sink = &written;
        let result = encode_while_writing(chunks, |mut rx| async move {
            while let Some(chunk) = rx.recv().await {
                sink.lock().unwrap().push(chunk);
            }
            Ok(())
        })
        .await;
        assert!(matches!(result, Err(StoreError::Unencodable { .. })));
        assert_eq!(
            *written.lock().unwrap(),
            vec![0, 1, 2],
            "nothing past the error"
        );
    }

    #[tokio::test]
    async fn a_writer_error_stops_the_feed() {
        let encoded = std::sync::atomic::AtomicUsize::new(0);
        let chunks = (0..1000).map(|i| {
            encoded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(i)
        });
        let result: Result<(), _> = encode_while_writing(chunks, |mut rx| async move {
            rx.recv().await;
            Err(StoreError::Unencodable {
                what: "the database refused".into(),
            })
        })
        .await;
        assert!(matches!(result, Err(StoreError::Unencodable { .. })));
        let encoded = encoded.load(std::sync::atomic::Ordering::Relaxed);
        assert!(encoded <= 1 + AHEAD + 1, "encoded {encoded} chunks");
    }
}
