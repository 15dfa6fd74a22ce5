//! berth's metadata store: named tables of JSON records in one redb file.
//!
//! redb gives ACID transactions with a crash-safe commit (a torn write leaves the previous
//! commit intact). berth is daemonless, so every invocation is its own process, and
//! several run at once (the CLI, a container's start and cleanup helpers, `ps`). The
//! file is opened once per process in redb's multi-writer mode: any number of processes
//! keep it open, and one write transaction at a time runs across all of them (redb
//! serialises them with a byte-range lock), which is the one writer lock berth needs.
//! Opening once matters: each open and close of a redb file costs several fsyncs, and
//! opening per transaction made a `berth run` spend most of its time in them.
//!
//! Records are JSON so that `inspect` output, schema additions and downgrades stay simple;
//! the tables are small (images, containers, volumes, networks), so encoding cost is noise.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata store {path}: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("metadata store {path}: still in use by another berth process after {waited:?}")]
    Busy { path: PathBuf, waited: Duration },
    #[error("metadata store {path}: {source}")]
    Db { path: PathBuf, source: redb::Error },
    #[error("metadata store {path}: table {table}, key {key:?}: record is not valid: {source}")]
    Decode {
        path: PathBuf,
        table: &'static str,
        key: String,
        source: serde_json::Error,
    },
    #[error("metadata store {path}: table {table}, key {key:?}: {source}")]
    Encode {
        path: PathBuf,
        table: &'static str,
        key: String,
        source: serde_json::Error,
    },
    #[error("creating {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A table of JSON records keyed by string.
#[derive(Clone, Copy)]
pub struct Table(&'static str);

impl Table {
    pub const fn new(name: &'static str) -> Table {
        Table(name)
    }

    fn def(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(self.0)
    }
}

/// A handle on the store file; clones share one open of it.
#[derive(Clone)]
pub struct Store {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    wait: Duration,
    /// Opened on first use, kept for the life of the process.
    db: std::sync::Mutex<Handle>,
}

/// A process that only reads opens the file read-only: a writable open and its close
/// cost five fsyncs (redb marks the file in use, then records its allocator state and
/// clears the mark on close) even when nothing is written, which was most of a `ps`.
#[derive(Clone)]
enum Handle {
    None,
    Read(std::sync::Arc<redb::ReadOnlyDatabase>),
    Write(std::sync::Arc<redb::Database>),
}

/// A write transaction: changes land together on [`Store::write`]'s successful return, or
/// not at all.
pub struct Tx<'a> {
    txn: redb::WriteTransaction,
    path: &'a Path,
}

/// A consistent read view.
pub struct View<'a> {
    txn: redb::ReadTransaction,
    path: &'a Path,
}

fn db_err(path: &Path) -> impl Fn(redb::Error) -> StoreError + '_ {
    move |source| StoreError::Db {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// The store at `path` (created on first write). Opening takes no lock yet.
    pub fn new(path: impl Into<PathBuf>) -> Store {
        Store {
            inner: std::sync::Arc::new(Inner {
                path: path.into(),
                wait: Duration::from_secs(60),
                db: std::sync::Mutex::new(Handle::None),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn handle(&self) -> std::sync::MutexGuard<'_, Handle> {
        self.inner.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn writable(&self) -> Result<std::sync::Arc<redb::Database>, StoreError> {
        let mut held = self.handle();
        if let Handle::Write(db) = &*held {
            return Ok(db.clone());
        }
        // The read-only handle goes first: one open per process.
        *held = Handle::None;
        let db = std::sync::Arc::new(self.open_file()?);
        *held = Handle::Write(db.clone());
        Ok(db)
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        let path = self.path();
        let err = |e: redb::TransactionError| db_err(path)(e.into());
        let held = self.handle().clone();
        match held {
            Handle::Write(db) => return db.begin_read().map_err(err),
            Handle::Read(db) => return db.begin_read().map_err(err),
            Handle::None => {}
        }
        // A file that is missing, or that a crashed writer left needing recovery (which
        // only a writable open performs), is opened for writing.
        let ro = redb::Builder::new()
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            .open_read_only(path);
        match ro {
            Ok(db) => {
                let db = std::sync::Arc::new(db);
                *self.handle() = Handle::Read(db.clone());
                db.begin_read().map_err(err)
            }
            Err(_) => self.writable()?.begin_read().map_err(err),
        }
    }

    fn open_file(&self) -> Result<redb::Database, StoreError> {
        let path = self.path();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let opened = redb::Builder::new()
                .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
                .create(path);
            match opened {
                Ok(db) => return Ok(db),
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    if start.elapsed() > self.inner.wait {
                        return Err(StoreError::Busy {
                            path: path.to_path_buf(),
                            waited: start.elapsed(),
                        });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        path: path.to_path_buf(),
                        source,
                    })
                }
            }
        }
    }

    /// Runs `f` in one write transaction and commits it; an error from `f` aborts it.
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let db = self.writable()?;
        let path = self.path();
        let txn = db.begin_write().map_err(|e| db_err(path)(e.into()))?;
        let mut tx = Tx { txn, path };
        let out = f(&mut tx)?;
        tx.txn.commit().map_err(|e| db_err(path)(e.into()))?;
        Ok(out)
    }

    /// Runs `f` on a consistent read view.
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&View<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let txn = self.begin_read()?;
        f(&View {
            txn,
            path: self.path(),
        })
    }
}

fn decode<T: DeserializeOwned>(
    path: &Path,
    table: Table,
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
        path: path.to_path_buf(),
        table: table.0,
        key: key.into(),
        source,
    })
}

impl Tx<'_> {
    pub fn get<T: DeserializeOwned>(
        &self,
        table: Table,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let t = self
            .txn
            .open_table(table.def())
            .map_err(|e| db_err(self.path)(e.into()))?;
        let v = t.get(key).map_err(|e| db_err(self.path)(e.into()))?;
        v.map(|v| decode(self.path, table, key, v.value()))
            .transpose()
    }

    pub fn put<T: Serialize>(
        &mut self,
        table: Table,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Encode {
            path: self.path.to_path_buf(),
            table: table.0,
            key: key.into(),
            source,
        })?;
        let mut t = self
            .txn
            .open_table(table.def())
            .map_err(|e| db_err(self.path)(e.into()))?;
        t.insert(key, bytes.as_slice())
            .map_err(|e| db_err(self.path)(e.into()))?;
        Ok(())
    }

    /// Removes `key`; says whether it was there.
    pub fn remove(&mut self, table: Table, key: &str) -> Result<bool, StoreError> {
        let mut t = self
            .txn
            .open_table(table.def())
            .map_err(|e| db_err(self.path)(e.into()))?;
        let old = t.remove(key).map_err(|e| db_err(self.path)(e.into()))?;
        Ok(old.is_some())
    }

    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, StoreError> {
        let t = self
            .txn
            .open_table(table.def())
            .map_err(|e| db_err(self.path)(e.into()))?;
        list(self.path, table, &t)
    }
}

fn list<T: DeserializeOwned>(
    path: &Path,
    table: Table,
    t: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<(String, T)>, StoreError> {
    let mut out = Vec::new();
    for row in t.iter().map_err(|e| db_err(path)(e.into()))? {
        let (k, v) = row.map_err(|e| db_err(path)(e.into()))?;
        let key = k.value().to_string();
        let value = decode(path, table, &key, v.value())?;
        out.push((key, value));
    }
    Ok(out)
}

impl View<'_> {
    pub fn get<T: DeserializeOwned>(
        &self,
        table: Table,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let t = match self.txn.open_table(table.def()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_err(self.path)(e.into())),
        };
        let v = t.get(key).map_err(|e| db_err(self.path)(e.into()))?;
        v.map(|v| decode(self.path, table, key, v.value()))
            .transpose()
    }

    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, StoreError> {
        let t = match self.txn.open_table(table.def()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db_err(self.path)(e.into())),
        };
        list(self.path, table, &t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Table = Table::new("things");

    #[test]
    fn write_read_remove_and_abort() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::new(dir.path().join("meta.redb"));
        assert_eq!(s.read(|v| v.get::<u32>(T, "a")).expect("read"), None);
        s.write(|tx| tx.put(T, "a", &1u32)).expect("write");
        s.write(|tx| tx.put(T, "b", &2u32)).expect("write");
        // An error inside the closure aborts the whole transaction.
        let r: Result<(), StoreError> = s.write(|tx| {
            tx.put(T, "c", &3u32)?;
            Err(StoreError::Busy {
                path: "x".into(),
                waited: Duration::ZERO,
            })
        });
        assert!(r.is_err());
        let all: Vec<(String, u32)> = s.read(|v| v.list(T)).expect("list");
        assert_eq!(all, vec![("a".into(), 1), ("b".into(), 2)]);
        assert!(s.write(|tx| tx.remove(T, "a")).expect("remove"));
        assert_eq!(s.read(|v| v.get::<u32>(T, "a")).expect("read"), None);
    }

    #[test]
    fn concurrent_writers_wait_for_each_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("meta.redb");
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let s = Store::new(path);
                    for j in 0..25 {
                        s.write(|tx| {
                            let n: u32 = tx.get(T, "n")?.unwrap_or(0);
                            tx.put(T, "n", &(n + 1))?;
                            tx.put(T, &format!("{i}-{j}"), &j)
                        })
                        .expect("write");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let s = Store::new(path);
        assert_eq!(s.read(|v| v.get::<u32>(T, "n")).expect("read"), Some(100));
    }
}
