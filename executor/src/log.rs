//! The append-only event log: [`LogWriter`] appends, [`read_log`] replays and recovers.
//!
//! ```text
//! file   = MAGIC header-record record*
//! record = len:u32le  seq:u64le  crc:u32le  payload[len]
//! crc    = crc32(prev_crc:u32le ++ seq:u64le ++ len:u32le ++ payload)
//! ```
//!
//! The header record (seq 0) holds the format version, run id and plan hash; each later record is
//! one [`Record`] as JSON. The checksum is chained from the previous record's, so a lost, reordered
//! or spliced record breaks the chain, not only a flipped bit. Every append is one `write` followed
//! by `fdatasync`, and the runner appends an event before starting the side effect it announces.
//!
//! Recovery (as etcd's WAL does): a damaged *last* record (a torn write: short frame, short payload,
//! or a checksum that fails with nothing after it) is cut off, and the cut bytes are kept beside the
//! log as `events.log.torn-<offset>`; damage *before* a valid record is refused with the offset and
//! sequence number, never skipped.

use crate::event::{Event, Record};
use crate::redact::Redactor;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// First bytes of every log file.
pub const MAGIC: &[u8; 8] = b"CUTLOG\x00\x01";
/// Version of the framing and header.
pub const FORMAT_VERSION: u32 = 1;
const FRAME: usize = 16;
/// Refuse records larger than this (a corrupted length must not make us allocate gigabytes).
const MAX_RECORD: u32 = 16 * 1024 * 1024;

/// The header record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Run id.
    pub run_id: String,
    /// Plan hash at creation.
    pub plan_hash: String,
    /// Describe-only run.
    pub dry_run: bool,
}

/// Why a log cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// I/O.
    #[error("{}: {source}", path.display())]
    Io {
        /// The log.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not a cutover log, or a version this build does not read.
    #[error("{}: not a cutover event log (format {found}); this cutover reads format {FORMAT_VERSION}", path.display())]
    Format {
        /// The log.
        path: PathBuf,
        /// What was found.
        found: String,
    },
    /// Damage before a valid record: refused.
    #[error("{}: the log is damaged at byte {offset} (record {seq}): {what}; later records exist, so this is not a torn write. Nothing was changed. Keep a copy of the file for investigation; the steps recorded before byte {offset} are listed by `cutover log` on a copy truncated there", path.display())]
    Corrupt {
        /// The log.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// Sequence number expected there.
        seq: u64,
        /// What is wrong.
        what: String,
    },
}

/// What [`read_log`] found.
#[derive(Debug)]
pub struct LogContents {
    /// The header.
    pub header: Header,
    /// Every valid record, in order.
    pub records: Vec<Record>,
    /// Length of the valid prefix of the file.
    pub valid_len: u64,
    /// Checksum of the last valid record (chain state for appending).
    pub last_crc: u32,
    /// Bytes after the valid prefix (a torn tail), if any.
    pub torn: Option<Vec<u8>>,
}

/// The chained checksum of a record.
pub(crate) fn crc(prev: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&prev.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn frame(prev: u32, seq: u64, payload: &[u8]) -> (Vec<u8>, u32) {
    let c = crc(prev, seq, payload);
    (encode(seq, c, payload), c)
}

/// A record's bytes, its checksum already computed.
fn encode(seq: u64, c: u32, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(FRAME + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&c.to_le_bytes());
    buf.extend_from_slice(payload);
    buf
}

fn frame_at(bytes: &[u8], pos: usize) -> (u32, u64, u32) {
    let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap());
    let seq = u64::from_le_bytes(bytes[pos + 4..pos + 12].try_into().unwrap());
    let c = u32::from_le_bytes(bytes[pos + 12..pos + 16].try_into().unwrap());
    (len, seq, c)
}

/// Whether a record with sequence number `seq`, chained from `prev`, starts anywhere at or after
/// `from`.
fn later_record_exists(bytes: &[u8], from: usize, prev: u32, seq: u64) -> bool {
    let total = bytes.len();
    (from..total.saturating_sub(FRAME - 1)).any(|q| {
        let (len, rseq, rcrc) = frame_at(bytes, q);
        let end = q + FRAME + len as usize;
        rseq == seq && len <= MAX_RECORD && end <= total && crc(prev, rseq, &bytes[q + FRAME..end]) == rcrc
    })
}

/// Reads and verifies a whole log. A torn tail is reported in [`LogContents::torn`], not an error.
pub fn read_log(path: &Path) -> Result<LogContents, LogError> {
    let io = |source| LogError::Io { path: path.to_path_buf(), source };
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io)?;
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        let found = if bytes.len() >= 6 && &bytes[..6] == b"CUTLOG" { format!("{:?}", &bytes[6..8.min(bytes.len())]) } else { "unknown".into() };
        return Err(LogError::Format { path: path.to_path_buf(), found });
    }
    // Pass 1: walk the frames and verify the checksum chain (sequential by nature, and cheap).
    let mut pos = MAGIC.len();
    let mut prev = 0u32;
    let mut payloads: Vec<(usize, usize)> = Vec::new();
    let mut seq = 0u64;
    let total = bytes.len();
    let torn = loop {
        if pos == total {
            break None;
        }
        if total - pos < FRAME {
            break Some(bytes[pos..].to_vec());
        }
        let (len, rseq, rcrc) = frame_at(&bytes, pos);
        let end = pos + FRAME + len as usize;
        // What looks like a torn last record may be a damaged one in the middle (a flipped length
        // bit makes the rest of the file look like one long record): it is torn only if no valid
        // record follows it.
        let torn_here = |what: &str| {
            if later_record_exists(&bytes, pos + 1, rcrc, seq + 1) {
                Err(LogError::Corrupt { path: path.to_path_buf(), offset: pos as u64, seq, what: what.to_string() })
            } else {
                Ok(Some(bytes[pos..].to_vec()))
            }
        };
        if len > MAX_RECORD || end > total {
            break torn_here("a record length runs past the end of the file")?;
        }
        let payload = &bytes[pos + FRAME..end];
        if crc(prev, rseq, payload) != rcrc || rseq != seq {
            // A torn write leaves a short or garbled last frame, never a whole frame from later
            // in the sequence: that means records in between were lost.
            if end == total && !(rseq > seq && rseq - seq < 1 << 32) {
                break torn_here("checksum mismatch")?;
            }
            let what = if rseq != seq { format!("sequence number {rseq} where {seq} was expected") } else { "checksum mismatch".to_string() };
            return Err(LogError::Corrupt { path: path.to_path_buf(), offset: pos as u64, seq, what });
        }
        payloads.push((pos, end));
        prev = rcrc;
        seq += 1;
        pos = end;
    };
    let corrupt = |at: usize, seq: u64, what: String| LogError::Corrupt { path: path.to_path_buf(), offset: at as u64, seq, what };
    let Some(&(h_at, h_end)) = payloads.first() else {
        return Err(corrupt(MAGIC.len(), 0, "the header record is missing or torn".into()));
    };
    let header: Header = serde_json::from_slice(&bytes[h_at + FRAME..h_end]).map_err(|e| corrupt(h_at, 0, format!("unreadable header: {e}")))?;
    if header.format_version != FORMAT_VERSION {
        return Err(LogError::Format { path: path.to_path_buf(), found: header.format_version.to_string() });
    }
    // Pass 2: parse the records, on every core (each chunk in order, chunks concatenated).
    let frames = &payloads[1..];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parse = |chunk: &[(usize, usize)], first_seq: u64| -> Result<Vec<Record>, LogError> {
        chunk
            .iter()
            .enumerate()
            .map(|(k, &(at, end))| serde_json::from_slice(&bytes[at + FRAME..end]).map_err(|e| corrupt(at, first_seq + k as u64, format!("unreadable record: {e}"))))
            .collect()
    };
    let records: Vec<Record> = if threads <= 1 || frames.len() < 10_000 {
        parse(frames, 1)?
    } else {
        let size = frames.len().div_ceil(threads);
        let parts: Vec<Result<Vec<Record>, LogError>> = std::thread::scope(|s| {
            let handles: Vec<_> = frames.chunks(size).enumerate().map(|(c, chunk)| s.spawn(move || parse(chunk, 1 + (c * size) as u64))).collect();
            handles.into_iter().map(|h| h.join().expect("a log parsing thread panicked")).collect()
        });
        // The first chunk becomes the result, so only the others are moved.
        let mut parts = parts.into_iter();
        let mut all = parts.next().expect("at least one chunk")?;
        all.reserve(frames.len() - all.len());
        for p in parts {
            all.extend(p?);
        }
        all
    };
    Ok(LogContents { header, records, valid_len: pos as u64, last_crc: prev, torn })
}

/// What both log backends keep to write the next record: its sequence number, the checksum it
/// chains from, the redactor every record passes through, and the crash hook.
#[derive(Debug)]
pub(crate) struct Chain {
    next_seq: u64,
    prev_crc: u32,
    redactor: Redactor,
    /// Abort the process right after this seq is durable (`CUTOVER_CRASH_AFTER_EVENTS`).
    crash_after: Option<u64>,
}

impl Chain {
    /// A chain whose next record is `next_seq`, chained from `prev_crc`.
    pub(crate) fn new(next_seq: u64, prev_crc: u32) -> Self {
        Self { next_seq, prev_crc, redactor: Redactor::default(), crash_after: crash_after_events() }
    }

    pub(crate) fn set_redactor(&mut self, redactor: Redactor) {
        self.redactor = redactor;
    }

    /// The next record (redacted: what is written is what the log will replay), its payload and
    /// its checksum.
    pub(crate) fn prepare(&self, event: Event) -> (Record, Vec<u8>, u32) {
        let record = Record { seq: self.next_seq, time: Utc::now(), event };
        let text = serde_json::to_string(&record).expect("records serialize");
        let redacted = self.redactor.redact(&text);
        let record = if redacted == text { record } else { serde_json::from_str(&redacted).expect("redaction keeps records valid JSON") };
        let c = crc(self.prev_crc, record.seq, redacted.as_bytes());
        (record, redacted.into_bytes(), c)
    }

    /// Records that the prepared record is durable; aborts here if the crash hook says so.
    pub(crate) fn committed(&mut self, seq: u64, c: u32) {
        self.prev_crc = c;
        self.next_seq = seq + 1;
        if self.crash_after == Some(seq) {
            // Fault injection for tests: die as a kill -9 would, right after the event is durable.
            eprintln!("cutover: CUTOVER_CRASH_AFTER_EVENTS={seq} reached; aborting");
            std::process::abort();
        }
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

/// Appends records with chained checksums, each made durable before `append` returns.
#[derive(Debug)]
pub struct LogWriter {
    file: File,
    path: PathBuf,
    chain: Chain,
}

impl LogWriter {
    /// Creates a new log atomically (written to a temporary file, fsync'ed, renamed, directory
    /// fsync'ed): a log that exists always has its header.
    pub fn create(path: &Path, header: &Header) -> std::io::Result<Self> {
        let tmp = path.with_extension("log.tmp");
        let payload = serde_json::to_vec(header).expect("header serializes");
        let (buf, c) = frame(0, 0, &payload);
        {
            let mut f = File::create(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Self { file, path: path.to_path_buf(), chain: Chain::new(1, c) })
    }

    /// Opens an existing log for appending after [`read_log`]; a torn tail is cut off first and
    /// its bytes kept in `<log>.torn-<offset>`.
    pub fn open(path: &Path, contents: &LogContents) -> std::io::Result<Self> {
        if let Some(torn) = &contents.torn {
            let keep = PathBuf::from(format!("{}.torn-{}", path.display(), contents.valid_len));
            std::fs::write(&keep, torn)?;
            File::open(keep.parent().unwrap_or(Path::new(".")))?.sync_all()?;
            let f = OpenOptions::new().write(true).open(path)?;
            f.set_len(contents.valid_len)?;
            f.sync_all()?;
        }
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Self { file, path: path.to_path_buf(), chain: Chain::new(contents.records.len() as u64 + 1, contents.last_crc) })
    }

    /// Redacts secrets from every record written from now on.
    pub fn set_redactor(&mut self, redactor: Redactor) {
        self.chain.set_redactor(redactor);
    }

    /// Appends `event` and returns its record once it is on disk.
    pub fn append(&mut self, event: Event) -> std::io::Result<Record> {
        let (record, payload, c) = self.chain.prepare(event);
        self.file.write_all(&encode(record.seq, c, &payload))?;
        self.file.sync_data()?;
        self.chain.committed(record.seq, c);
        Ok(record)
    }

    /// Appends without `fdatasync`: only for building large logs in benchmarks and tests (a real
    /// run never calls this; every event it writes is durable before its effect starts).
    #[doc(hidden)]
    pub fn append_unsynced(&mut self, event: Event) -> std::io::Result<()> {
        let (record, payload, c) = self.chain.prepare(event);
        self.file.write_all(&encode(record.seq, c, &payload))?;
        self.chain.committed(record.seq, c);
        Ok(())
    }

    /// Path of the log.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.chain.next_seq()
    }
}

/// `CUTOVER_CRASH_AFTER_EVENTS`, if set.
pub(crate) fn crash_after_events() -> Option<u64> {
    std::env::var("CUTOVER_CRASH_AFTER_EVENTS").ok().and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn header() -> Header {
        Header { format_version: FORMAT_VERSION, run_id: "r1".into(), plan_hash: "h".into(), dry_run: false }
    }

    fn sample(dir: &Path, n: u32) -> PathBuf {
        let path = dir.join("events.log");
        let mut w = LogWriter::create(&path, &header()).unwrap();
        for i in 0..n {
            w.append(Event::StepStarted { step: format!("command/s{i}"), attempt: 1 }).unwrap();
        }
        path
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path(), 5);
        let c = read_log(&path).unwrap();
        assert_eq!(c.header, header());
        assert_eq!(c.records.len(), 5);
        assert!(c.torn.is_none());
        assert_eq!(c.records.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn every_truncation_inside_the_last_record_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path(), 4);
        let full = std::fs::read(&path).unwrap();
        let four = read_log(&path).unwrap();
        // Where the last record starts: the valid length of the same log with three records.
        let dir3 = tempfile::tempdir().unwrap();
        let start = read_log(&sample(dir3.path(), 3)).unwrap().valid_len as usize;
        assert!(start < full.len());
        for cut in start..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let c = read_log(&path).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert_eq!(c.records, four.records[..3], "cut at {cut}");
            assert_eq!(c.torn.as_ref().map_or(0, Vec::len), cut - start);
            // Reopening cuts the tail, keeps it aside, and appending continues the chain.
            let mut w = LogWriter::open(&path, &c).unwrap();
            w.append(Event::StepStarted { step: "after".into(), attempt: 1 }).unwrap();
            let again = read_log(&path).unwrap();
            assert_eq!(again.records.len(), 4);
            assert!(again.torn.is_none());
            if cut > start {
                let kept = std::fs::read(format!("{}.torn-{start}", path.display())).unwrap();
                assert_eq!(kept, full[start..cut]);
            }
        }
    }

    #[test]
    fn a_flipped_byte_before_the_last_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path(), 4);
        let full = std::fs::read(&path).unwrap();
        let dir3 = tempfile::tempdir().unwrap();
        let last_start = read_log(&sample(dir3.path(), 3)).unwrap().valid_len as usize;
        for i in MAGIC.len()..last_start {
            let mut bad = full.clone();
            bad[i] ^= 0x20;
            std::fs::write(&path, &bad).unwrap();
            match read_log(&path) {
                Err(LogError::Corrupt { .. }) => {}
                // A damaged length can make the rest of the file look like one long torn record;
                // then the records after it are lost from view, which must never happen silently.
                Ok(c) => panic!("byte {i}: accepted a damaged log with {} records, torn {:?}", c.records.len(), c.torn.as_ref().map(Vec::len)),
                Err(e) => panic!("byte {i}: {e}"),
            }
        }
    }

    /// (start, end) of every frame after the magic, header included.
    fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut pos = MAGIC.len();
        while pos < bytes.len() {
            let (len, _, _) = frame_at(bytes, pos);
            let end = pos + FRAME + len as usize;
            out.push((pos, end));
            pos = end;
        }
        out
    }

    #[test]
    fn splicing_records_between_logs_breaks_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let a = sample(dir.path(), 3);
        let a_bytes = std::fs::read(&a).unwrap();
        let dir2 = tempfile::tempdir().unwrap();
        let path2 = dir2.path().join("events.log");
        let mut w = LogWriter::create(&path2, &Header { run_id: "r2".into(), ..header() }).unwrap();
        for i in 0..3 {
            w.append(Event::StepStarted { step: format!("command/s{i}"), attempt: 1 }).unwrap();
        }
        let b_bytes = std::fs::read(&path2).unwrap();
        // Record 2 of log b (same seq, same content, valid on its own) in place of record 2 of a.
        let (fa, fb) = (frames(&a_bytes), frames(&b_bytes));
        let mut spliced = a_bytes[..fa[2].0].to_vec();
        spliced.extend_from_slice(&b_bytes[fb[2].0..fb[2].1]);
        spliced.extend_from_slice(&a_bytes[fa[2].1..]);
        std::fs::write(&a, &spliced).unwrap();
        match read_log(&a) {
            Err(LogError::Corrupt { seq, .. }) => assert_eq!(seq, 2),
            other => panic!("spliced log accepted: {other:?}"),
        }
        // A record dropped from the middle is caught the same way.
        let mut dropped = a_bytes[..fa[2].0].to_vec();
        dropped.extend_from_slice(&a_bytes[fa[2].1..]);
        std::fs::write(&a, &dropped).unwrap();
        assert!(matches!(read_log(&a), Err(LogError::Corrupt { .. })));
    }
}
