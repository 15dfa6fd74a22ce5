//! The CRI container log format, which the monitor writes and `berth logs` (and the CRI
//! server) read: one line per line of output,
//!
//! ```text
//! 2026-11-23T10:04:05.123456789Z stdout F hello
//! 2026-11-23T10:04:05.123456790Z stderr P the first 16 KiB of a long line ...
//! 2026-11-23T10:04:05.123456791Z stderr F ... and its end
//! ```
//!
//! `F` ends a line, `P` is a piece of one (a line longer than [`MAX_LINE`], or output
//! that ended without a newline). Rotation keeps `max_files` files in all: `log`,
//! `log.1` (newest old one), ... `log.N-1`, as kubelet and docker name them.

use crate::time;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Longer lines are split into `P` pieces so one runaway line cannot hold the monitor's
/// memory (containerd splits at the same size).
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Nanoseconds since the epoch.
    pub time: i128,
    pub stream: Stream,
    /// A piece of a line (`P`): the next record of the same stream continues it.
    pub partial: bool,
    /// Without the newline.
    pub msg: Vec<u8>,
}

impl LogLine {
    /// Parses one record (without its trailing newline). Returns None for a malformed one.
    pub fn parse(line: &[u8]) -> Option<LogLine> {
        let mut parts = line.splitn(4, |&b| b == b' ');
        let t = std::str::from_utf8(parts.next()?).ok()?;
        let stream = match parts.next()? {
            b"stdout" => Stream::Stdout,
            b"stderr" => Stream::Stderr,
            _ => return None,
        };
        let partial = match parts.next()? {
            b"P" => true,
            b"F" => false,
            _ => return None,
        };
        Some(LogLine {
            time: time::parse_rfc3339(t)?,
            stream,
            partial,
            msg: parts.next().unwrap_or_default().to_vec(),
        })
    }
}

/// Rotation settings (`--log-opt max-size=10m,max-file=3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Bytes; 0 means never rotate.
    pub max_size: u64,
    /// Files kept in all, the current one included (at least 1: rotation then truncates).
    pub max_files: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_size: 0,
            max_files: 1,
        }
    }
}

/// Appends records to a log file, splitting output into lines per stream and rotating.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
    pending: [Vec<u8>; 2],
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl LogWriter {
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<LogWriter> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Output from a stream: whole lines are written at once; the rest waits for its
    /// newline (or [`MAX_LINE`]).
    pub fn write(&mut self, stream: Stream, mut data: &[u8]) -> io::Result<()> {
        let i = stream as usize;
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(n) => {
                    let mut line = std::mem::take(&mut self.pending[i]);
                    line.extend_from_slice(&data[..n]);
                    data = &data[n + 1..];
                    for chunk in split_long(&line) {
                        self.record(stream, chunk.0, chunk.1)?;
                    }
                }
                None => {
                    self.pending[i].extend_from_slice(data);
                    data = &[];
                    while self.pending[i].len() >= MAX_LINE {
                        let rest = self.pending[i].split_off(MAX_LINE);
                        let piece = std::mem::replace(&mut self.pending[i], rest);
                        self.record(stream, &piece, true)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes what is left of unfinished lines (the container has exited) as pieces,
    /// so a reader sees output that did not end in a newline exactly as it was.
    pub fn flush_partial(&mut self) -> io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let p = std::mem::take(&mut self.pending[stream as usize]);
            if !p.is_empty() {
                self.record(stream, &p, true)?;
            }
        }
        Ok(())
    }

    fn record(&mut self, stream: Stream, msg: &[u8], partial: bool) -> io::Result<()> {
        let mut rec = Vec::with_capacity(msg.len() + 48);
        rec.extend_from_slice(time::format_rfc3339_nanos(time::now_nanos()).as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(stream.as_str().as_bytes());
        rec.extend_from_slice(if partial { b" P " } else { b" F " });
        rec.extend_from_slice(msg);
        rec.push(b'\n');
        if self.rotation.max_size > 0
            && self.size > 0
            && self.size + rec.len() as u64 > self.rotation.max_size
        {
            self.rotate()?;
        }
        self.file.write_all(&rec)?;
        self.size += rec.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.rotation.max_files.max(1);
        if keep == 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(rotated(&self.path, keep - 1));
        for n in (1..keep - 1).rev() {
            let _ = std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// A line of any length as records: `MAX_LINE` pieces then the end.
fn split_long(line: &[u8]) -> impl Iterator<Item = (&[u8], bool)> {
    let n = line.len().div_ceil(MAX_LINE).max(1);
    (0..n).map(move |i| {
        let end = ((i + 1) * MAX_LINE).min(line.len());
        (&line[i * MAX_LINE..end], i + 1 < n)
    })
}

/// Every record in the log and its rotated files, oldest first. Malformed records (a
/// torn write after a crash) are skipped.
pub fn read_all(path: &Path) -> io::Result<Vec<LogLine>> {
    let mut out = read_rotated(path)?;
    let mut f = Follower::from_start(path);
    out.extend(f.poll()?);
    Ok(out)
}

/// The records in the rotated files only (`log.N` … `log.1`), oldest first: with a
/// [`Follower::from_start`] opened first, the whole log without gaps or repeats.
pub fn read_rotated(path: &Path) -> io::Result<Vec<LogLine>> {
    let mut files = vec![];
    for n in (1..1000).rev() {
        let p = rotated(path, n);
        if p.exists() {
            files.push(p);
        }
    }
    let mut out = vec![];
    for f in files {
        match File::open(&f) {
            Ok(file) => read_records(&mut BufReader::new(file), &mut out)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn read_records(r: &mut impl BufRead, out: &mut Vec<LogLine>) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if let Some(l) = LogLine::parse(&buf) {
            out.push(l);
        }
    }
}

/// Follows a log file as it grows, across rotation (the file is renamed away and a new
/// one created) and truncation.
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    ino: u64,
    pos: u64,
    partial: Vec<u8>,
}

impl Follower {
    /// Starts at the current end of the file.
    pub fn at_end(path: &Path) -> Follower {
        Follower::open(path, true)
    }

    /// Starts at the beginning of the current file: the first poll returns all of it.
    pub fn from_start(path: &Path) -> Follower {
        Follower::open(path, false)
    }

    fn open(path: &Path, at_end: bool) -> Follower {
        let mut f = Follower {
            path: path.to_path_buf(),
            file: None,
            ino: 0,
            pos: 0,
            partial: vec![],
        };
        if let Ok(file) = File::open(path) {
            use std::os::unix::fs::MetadataExt;
            if let Ok(m) = file.metadata() {
                f.ino = m.ino();
                f.pos = if at_end { m.len() } else { 0 };
            }
            f.file = Some(file);
        }
        f
    }

    /// Records written since the last call.
    pub fn poll(&mut self) -> io::Result<Vec<LogLine>> {
        use std::os::unix::fs::MetadataExt;
        let mut out = vec![];
        // Finish the old file first if it was rotated away, then switch.
        let current = std::fs::metadata(&self.path).ok();
        let switched = current
            .as_ref()
            .is_some_and(|m| m.ino() != self.ino || self.file.is_none());
        self.read_new(&mut out)?;
        if switched {
            self.file = File::open(&self.path).ok();
            self.ino = current.as_ref().map_or(0, |m| m.ino());
            self.pos = 0;
            self.partial.clear();
            self.read_new(&mut out)?;
        } else if current.as_ref().is_some_and(|m| m.len() < self.pos) {
            self.pos = 0;
            self.partial.clear();
            self.read_new(&mut out)?;
        }
        Ok(out)
    }

    fn read_new(&mut self, out: &mut Vec<LogLine>) -> io::Result<()> {
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        f.seek(SeekFrom::Start(self.pos))?;
        let mut data = std::mem::take(&mut self.partial);
        let n = f.read_to_end(&mut data)?;
        self.pos += n as u64;
        let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.partial = data.split_off(complete);
        read_records(&mut &data[..], out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_pieces_and_parse() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("log");
        let mut w = LogWriter::open(&p, Rotation::default()).expect("open");
        w.write(Stream::Stdout, b"hel").expect("w");
        w.write(Stream::Stderr, b"oops\n").expect("w");
        w.write(Stream::Stdout, b"lo\nworld\nend").expect("w");
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        w.write(Stream::Stderr, &long).expect("w");
        w.write(Stream::Stderr, b"\n").expect("w");
        w.flush_partial().expect("flush");
        let all = read_all(&p).expect("read");
        let got: Vec<(Stream, bool, usize)> = all
            .iter()
            .map(|l| (l.stream, l.partial, l.msg.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Stream::Stderr, false, 4),
                (Stream::Stdout, false, 5),
                (Stream::Stdout, false, 5),
                (Stream::Stderr, true, MAX_LINE),
                (Stream::Stderr, true, MAX_LINE),
                (Stream::Stderr, false, 5),
                (Stream::Stdout, true, 3),
            ]
        );
        assert_eq!(all[1].msg, b"hello");
        assert!(all.windows(2).all(|w| w[0].time <= w[1].time));
        assert_eq!(LogLine::parse(b"garbage"), None);
        assert_eq!(LogLine::parse(b"2026-01-01T00:00:00Z stdin F x"), None);
    }

    #[test]
    fn rotation_keeps_max_files_and_follower_crosses_it() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("log");
        let rot = Rotation {
            max_size: 200,
            max_files: 3,
        };
        let mut w = LogWriter::open(&p, rot).expect("open");
        let mut f = Follower::at_end(&p);
        let mut followed = vec![];
        for i in 0..40 {
            w.write(Stream::Stdout, format!("line {i:02}\n").as_bytes())
                .expect("w");
            followed.extend(f.poll().expect("poll"));
        }
        assert!(rotated(&p, 1).exists() && rotated(&p, 2).exists());
        assert!(!rotated(&p, 3).exists());
        for n in [&p, &rotated(&p, 1), &rotated(&p, 2)] {
            assert!(std::fs::metadata(n).expect("meta").len() <= 200);
        }
        let all = read_all(&p).expect("read");
        assert_eq!(all.last().map(|l| l.msg.clone()), Some(b"line 39".to_vec()));
        let nums: Vec<String> = all
            .iter()
            .map(|l| String::from_utf8_lossy(&l.msg).into_owned())
            .collect();
        let mut sorted = nums.clone();
        sorted.sort();
        assert_eq!(nums, sorted, "oldest first");
        assert_eq!(followed.len(), 40, "every line followed across rotations");

        let mut w = LogWriter::open(
            &p,
            Rotation {
                max_size: 100,
                max_files: 1,
            },
        )
        .expect("open");
        for _ in 0..10 {
            w.write(Stream::Stdout, b"0123456789\n").expect("w");
        }
        assert!(std::fs::metadata(&p).expect("meta").len() <= 100);
    }
}
