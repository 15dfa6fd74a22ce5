//! Two threads per layer: the caller's thread reads the compressed input, decompresses and
//! bounds it; a worker thread hashes it (diff_id), parses the tar and does the filesystem
//! work. Decompression, hashing and syscalls then overlap instead of adding up, and the
//! caller's reader needs no `Send` bound because it never leaves the caller's thread.
//!
//! Chunks travel in a bounded channel (at most `DEPTH` in flight, so a layer is never held
//! in memory) and come back empty to be reused. After the tar's end the worker keeps taking
//! chunks, only to hash them; the caller reads to EOF, because the caller's digest of the
//! compressed blob and diff_id must cover every byte. A refused layer stops the worker,
//! and the caller then reads on without it.

use super::apply::Unpacker;
use super::error::UnpackError;
use super::UnpackOptions;
use berth_distribution::digest::{Algorithm, Hasher};
use rustix::fd::OwnedFd;
use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SendError, Sender, SyncSender};

/// Uncompressed bytes per chunk.
const CHUNK: usize = 512 * 1024;
/// Chunks queued for the worker.
const DEPTH: usize = 4;

/// What the worker did.
pub(crate) struct Applied {
    pub(crate) result: Result<(), UnpackError>,
    /// sha256 of every chunk (meaningful when `result` is Ok).
    pub(crate) hasher: Hasher,
    pub(crate) entries: u64,
    /// The entry being applied when it stopped (for errors found by the reader).
    pub(crate) last_entry: Option<String>,
}

/// Feeds all of `input` to a worker that applies it beneath `root`. Returns what the
/// worker did and how reading `input` ended.
pub(crate) fn run<R: Read>(
    input: &mut R,
    root: OwnedFd,
    opts: &UnpackOptions,
) -> Result<(Applied, io::Result<()>), UnpackError> {
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(DEPTH);
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let span = tracing::Span::current();
        let worker = std::thread::Builder::new()
            .name("berth-unpack".into())
            .spawn_scoped(s, move || {
                let _span = span.enter();
                let mut unpacker = Unpacker::new(root, opts);
                let mut archive = tar::Archive::new(ChunkReader {
                    rx: full_rx,
                    free: free_tx,
                    cur: Vec::new(),
                    pos: 0,
                    hasher: Hasher::new(Algorithm::Sha256),
                });
                let result = unpacker.run(&mut archive);
                let mut reader = archive.into_inner();
                if result.is_ok() {
                    reader.hash_rest();
                }
                Applied {
                    result,
                    hasher: reader.hasher,
                    entries: unpacker.entries(),
                    last_entry: unpacker.current_entry(),
                }
            })
            .map_err(|source| UnpackError::Thread {
                layer: opts.layer.clone(),
                source,
            })?;
        let read = feed(input, &full_tx, &free_rx);
        // EOF for the worker (or, after a read error, an early end it may not notice:
        // the caller reports the read error first).
        drop(full_tx);
        let applied = match worker.join() {
            Ok(a) => a,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        Ok((applied, read))
    })
}

/// Reads `input` to EOF in chunks, sending them to the worker while it takes them.
fn feed<R: Read>(
    input: &mut R,
    tx: &SyncSender<Vec<u8>>,
    free: &Receiver<Vec<u8>>,
) -> io::Result<()> {
    let mut worker_listening = true;
    let mut spare: Option<Vec<u8>> = None;
    loop {
        let mut buf = spare
            .take()
            .or_else(|| free.try_recv().ok())
            .unwrap_or_default();
        buf.resize(CHUNK, 0);
        let n = loop {
            match input.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Ok(());
        }
        if worker_listening {
            buf.truncate(n);
            if let Err(SendError(b)) = tx.send(buf) {
                worker_listening = false;
                spare = Some(b);
            }
        } else {
            spare = Some(buf);
        }
    }
}

/// The worker's view of the stream: the chunks, in order, as one reader, each hashed as
/// it arrives.
struct ChunkReader {
    rx: Receiver<Vec<u8>>,
    free: Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    hasher: Hasher,
}

impl ChunkReader {
    /// Hashes what the tar reader did not need: bytes after the end-of-archive blocks.
    fn hash_rest(&mut self) {
        while let Ok(chunk) = self.rx.recv() {
            self.hasher.update(&chunk);
            let _ = self.free.send(chunk);
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(next) => {
                    self.hasher.update(&next);
                    let used = std::mem::replace(&mut self.cur, next);
                    self.pos = 0;
                    if used.capacity() > 0 {
                        // The reader may be gone already; the buffer is then dropped.
                        let _ = self.free.send(used);
                    }
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
