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
/// Version of the log's contents, in its header: 2 since step parameters are tagged with their
/// kind and each driver's undo data, saved state and progress are its own serde types. A log of
/// another version is refused (its run is finished or rolled back by the cutover that started it).
pub const FORMAT_VERSION: u32 = 2;
/// The version of a run that can wait at a gate (`hold`, or a plan with a manual pause): its
/// events are those of [`FORMAT_VERSION`], but a cutover older than gates would read past them
/// (it ignores `hold` and `paused.gate`, and its `resume` would run the steps behind a gate
/// without a promote), so such a run's log is one that cutover refuses.
pub const GATED_FORMAT_VERSION: u32 = 3;

/// Whether this cutover reads a log of format `version`.
pub fn readable_format(version: u32) -> bool {
    version == FORMAT_VERSION || version == GATED_FORMAT_VERSION
}
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

/// Why a log cannot be read or reopened. Every message names the file; [`LogError::hint`] says
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file system refused: `action` is what cutover was doing (e.g. "read the event log").
    #[error("{}: cannot {action}: {}", path.display(), crate::error::io_cause(source))]
    Io {
        /// The file the operation was on.
        path: PathBuf,
        /// What cutover was doing, as a verb phrase.
        action: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The file does not start with a cutover log's magic bytes (empty, zero-filled, another file).
    #[error("{}: not a cutover event log: {what}", path.display())]
    NotALog {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        what: String,
    },
    /// A cutover log in a framing or format version this build does not read.
    #[error("{}: the event log is in format {found}; this cutover reads format {FORMAT_VERSION} \
             (and {GATED_FORMAT_VERSION}, a run with gates) only", path.display())]
    Version {
        /// The log.
        path: PathBuf,
        /// The version found (a number, or the magic's version bytes).
        found: String,
    },
    /// The first record (the header: run id and plan hash) is missing, torn or unreadable.
    #[error("{}: the log's header record (byte {}) {what}", path.display(), MAGIC.len())]
    Header {
        /// The log.
        path: PathBuf,
        /// What is wrong, as a verb phrase ("is missing", ...).
        what: String,
    },
    /// Damage before a valid record: refused, never skipped.
    #[error("{}: the log is damaged at byte {offset} (record {seq}): {what}; a valid later record \
             starts at byte {later}, so this is not a torn write. Nothing was changed", path.display())]
    Corrupt {
        /// The log.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// Sequence number expected there.
        seq: u64,
        /// What is wrong.
        what: String,
        /// Where the first valid record after the damage starts.
        later: u64,
    },
    /// A record whose checksum holds but whose contents this build cannot read.
    #[error("{}: record {seq} at byte {offset} is intact (its checksum holds) but cannot be read: \
             {what}. Nothing was changed", path.display())]
    Unreadable {
        /// The log.
        path: PathBuf,
        /// Byte offset of the record.
        offset: u64,
        /// Its sequence number.
        seq: u64,
        /// The parse error.
        what: String,
    },
}

impl LogError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            LogError::Io { source, .. } => crate::error::io_hint(source),
            LogError::NotALog { .. } => {
                "cutover writes a log's first bytes before the file appears \
                                         (written, synced, then renamed into place), so something \
                                         else emptied or replaced this file: restore it from a \
                                         backup of the state directory; if you passed a path, pass \
                                         a run id (`cutover runs` lists them), a run directory or \
                                         its events.log"
                    .into()
            }
            LogError::Version { .. } => VERSION_HINT.into(),
            LogError::Header { .. } => {
                "cutover writes a log's header before the log file appears, \
                                        so something else damaged or truncated it: keep the file; \
                                        the run's steps are listed in `plan.json` beside it, check \
                                        them by hand"
                    .into()
            }
            LogError::Corrupt { offset, .. } => format!(
                "the log is the record of what was done: do not delete or edit it. To see the steps \
                 recorded before the damage, copy the run directory, cut the copy's log with \
                 `truncate -s {offset} COPY/events.log`, and run `cutover status COPY`"
            ),
            LogError::Unreadable { .. } => "a newer cutover may have written it (it knows more \
                                            kinds of events): use that version; otherwise keep the \
                                            file for investigation"
                .into(),
        }
    }
}

/// What to do about a run recorded in another format (a log, or a recorded plan).
pub const VERSION_HINT: &str = "finish or roll back this run with the cutover version that started \
                                it (`cutover resume RUN` or `cutover rollback RUN`); this version \
                                reads and continues only runs it started";

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

/// Refuses a file that does not start with [`MAGIC`], saying what it holds instead.
fn check_magic(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    if bytes.starts_with(MAGIC) {
        return Ok(());
    }
    let not = |what: String| {
        Err(LogError::NotALog {
            path: path.to_path_buf(),
            what,
        })
    };
    if bytes.is_empty() {
        return not("the file is empty (0 bytes)".into());
    }
    if bytes.iter().all(|&b| b == 0) {
        return not(format!(
            "the file holds {} zero bytes: its contents never reached the disk",
            bytes.len()
        ));
    }
    if bytes.len() >= MAGIC.len() && bytes.starts_with(b"CUTLOG") {
        let found = u16::from_be_bytes([bytes[6], bytes[7]]);
        return Err(LogError::Version {
            path: path.to_path_buf(),
            found: format!("{found} (from the file's first bytes)"),
        });
    }
    if MAGIC.starts_with(bytes) {
        return not(format!(
            "the file holds only {} bytes, the start of a log's magic",
            bytes.len()
        ));
    }
    not("it does not start with the magic bytes `CUTLOG`".into())
}

/// Where the first record after the damaged frame at `pos` (expected: record `seq`) starts, if
/// any: record `seq` itself displaced by garbage before it (it chains from `prev`, the last good
/// record's checksum), a frame that continues the chain from what record `seq` held (its stored
/// or its computed checksum, `prevs`), or any later frame whose payload is a record carrying its
/// own sequence number (records after a lost one no longer chain from anything we know).
fn later_record(bytes: &[u8], pos: usize, seq: u64, prev: u32, prevs: &[u32]) -> Option<usize> {
    #[derive(Deserialize)]
    struct SeqOnly {
        seq: u64,
    }
    let total = bytes.len();
    (pos..total.saturating_sub(FRAME - 1)).find(|&q| {
        let (len, rseq, rcrc) = frame_at(bytes, q);
        let end = q + FRAME + len as usize;
        if len > MAX_RECORD
            || end > total
            || rseq < seq
            || rseq - seq >= 1 << 32
            || (rseq == seq && q == pos)
        {
            return false;
        }
        let payload = &bytes[q + FRAME..end];
        (rseq == seq && crc(prev, rseq, payload) == rcrc)
            || (q > pos && rseq == seq + 1 && prevs.iter().any(|&p| crc(p, rseq, payload) == rcrc))
            || (rseq > seq
                && serde_json::from_slice::<SeqOnly>(payload).is_ok_and(|r| r.seq == rseq))
    })
}

/// Reads and verifies a whole log. A torn tail is reported in [`LogContents::torn`], not an error.
///
/// Torn (cut off by [`LogWriter::open`], kept aside): everything from the first bad frame on, when
/// no valid record follows it: a short frame, a length past the end, a bad checksum, or zeros (what
/// a crash leaves when the file's new size reached the disk before its bytes, of any length, or
/// after part of a frame header). Refused ([`LogError::Corrupt`]): a bad frame followed by a valid
/// later record.
pub fn read_log(path: &Path) -> Result<LogContents, LogError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|source| LogError::Io {
            path: path.to_path_buf(),
            action: "read the event log",
            source,
        })?;
    check_magic(path, &bytes)?;
    let frames = walk_frames(path, &bytes)?;
    let header = read_header(path, &bytes, &frames)?;
    let records = parse_records(path, &bytes, &frames.payloads[1..])?;
    Ok(LogContents {
        header,
        records,
        valid_len: frames.valid_len,
        last_crc: frames.last_crc,
        torn: frames.torn,
    })
}

/// The frames of a log whose checksum chain holds, found by [`walk_frames`].
struct Frames {
    /// Where each valid frame starts and ends, the header's first.
    payloads: Vec<(usize, usize)>,
    /// Where the valid records end.
    valid_len: u64,
    /// The last valid record's checksum.
    last_crc: u32,
    /// The bytes after them, when no valid record follows.
    torn: Option<Vec<u8>>,
}

/// Pass 1: walks the frames after the magic and verifies the checksum chain (sequential by
/// nature, and cheap); stops at a torn tail, refuses damage with a valid record after it.
fn walk_frames(path: &Path, bytes: &[u8]) -> Result<Frames, LogError> {
    let mut pos = MAGIC.len();
    let mut prev = 0u32;
    let mut payloads: Vec<(usize, usize)> = Vec::new();
    let mut seq = 0u64;
    let total = bytes.len();
    let torn = loop {
        if pos == total {
            break None;
        }
        if total - pos < FRAME || bytes[pos..].iter().all(|&b| b == 0) {
            // Too short to hold a frame, or zeros: no record can be in there.
            break Some(bytes[pos..].to_vec());
        }
        let (len, rseq, rcrc) = frame_at(bytes, pos);
        let end = pos + FRAME + len as usize;
        let whole = len <= MAX_RECORD && end <= total;
        let computed = whole.then(|| crc(prev, seq, &bytes[pos + FRAME..end]));
        if whole && rseq == seq && computed == Some(rcrc) {
            payloads.push((pos, end));
            prev = rcrc;
            seq += 1;
            pos = end;
            continue;
        }
        // What looks like a torn last record may be a damaged one in the middle (a flipped length
        // bit makes the rest of the file look like one long record): it is torn only if no valid
        // record follows it. A whole frame from later in the sequence is such a record: a torn
        // write never leaves one, so records in between were lost.
        let prevs: Vec<u32> = std::iter::once(rcrc).chain(computed).collect();
        if let Some(later) = later_record(bytes, pos, seq, prev, &prevs) {
            let what = damage(bytes, pos, later, seq, rseq, whole);
            return Err(LogError::Corrupt {
                path: path.to_path_buf(),
                offset: pos as u64,
                seq,
                what,
                later: later as u64,
            });
        }
        break Some(bytes[pos..].to_vec());
    };
    Ok(Frames {
        payloads,
        valid_len: pos as u64,
        last_crc: prev,
        torn,
    })
}

/// What is wrong with the frame at `pos` (expected: record `seq`; it says `rseq`, and `whole`
/// says whether its length fits the file), given the valid record found at `later`.
fn damage(bytes: &[u8], pos: usize, later: usize, seq: u64, rseq: u64, whole: bool) -> String {
    if frame_at(bytes, later).1 == seq {
        format!(
            "{} bytes that are no record stand before record {seq}, which is intact after them",
            later - pos
        )
    } else if later == pos {
        format!("record {rseq} is where record {seq} was expected: records in between are missing")
    } else if !whole {
        "a record length runs past the end of the file".to_string()
    } else if rseq != seq {
        format!("sequence number {rseq} where {seq} was expected")
    } else {
        "checksum mismatch".to_string()
    }
}

/// The log's header, its first record: there, readable, and of this build's format.
fn read_header(path: &Path, bytes: &[u8], frames: &Frames) -> Result<Header, LogError> {
    let Some(&(h_at, h_end)) = frames.payloads.first() else {
        let what = match &frames.torn {
            Some(t) if t.iter().all(|&b| b == 0) => format!(
                "never reached the disk: the file holds {} zero bytes after its magic",
                t.len()
            ),
            Some(t) => format!(
                "is torn or damaged ({} bytes after the magic, none of them a valid record)",
                t.len()
            ),
            None => "is missing: the file holds only the magic".to_string(),
        };
        return Err(LogError::Header {
            path: path.to_path_buf(),
            what,
        });
    };
    let header: Header =
        serde_json::from_slice(&bytes[h_at + FRAME..h_end]).map_err(|e| LogError::Header {
            path: path.to_path_buf(),
            what: format!("is intact but unreadable: {e}"),
        })?;
    if !readable_format(header.format_version) {
        return Err(LogError::Version {
            path: path.to_path_buf(),
            found: header.format_version.to_string(),
        });
    }
    Ok(header)
}

/// Pass 2: parses the records of `frames`, on every core for a long log (rayon's pool; its
/// collect keeps the order). Which error a failed parallel collect returns is not defined, so a
/// damaged log is read again in order, to report its earliest unreadable record as one thread
/// would.
fn parse_records(
    path: &Path,
    bytes: &[u8],
    frames: &[(usize, usize)],
) -> Result<Vec<Record>, LogError> {
    let parse = |k: usize, &(at, end): &(usize, usize)| -> Result<Record, LogError> {
        serde_json::from_slice(&bytes[at + FRAME..end]).map_err(|e| LogError::Unreadable {
            path: path.to_path_buf(),
            offset: at as u64,
            seq: 1 + k as u64,
            what: e.to_string(),
        })
    };
    let in_order = || frames.iter().enumerate().map(|(k, frame)| parse(k, frame));
    if frames.len() < 10_000 {
        return in_order().collect();
    }
    use rayon::prelude::*;
    let parallel: Result<Vec<Record>, LogError> = frames
        .par_iter()
        .enumerate()
        .map(|(k, frame)| parse(k, frame))
        .collect();
    parallel.map_err(|_| {
        in_order()
            .find_map(Result::err)
            .expect("a record that failed in parallel fails in order too")
    })
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
        Self {
            next_seq,
            prev_crc,
            redactor: Redactor::default(),
            crash_after: crash_after_events(),
        }
    }

    pub(crate) fn set_redactor(&mut self, redactor: Redactor) {
        self.redactor = redactor;
    }

    /// The next record (redacted: what is written is what the log will replay), its payload and
    /// its checksum.
    pub(crate) fn prepare(&self, event: Event) -> (Record, Vec<u8>, u32) {
        let record = Record {
            seq: self.next_seq,
            time: Utc::now(),
            event,
        };
        let text = serde_json::to_string(&record).expect("records serialize");
        let redacted = self.redactor.redact(&text);
        let record = if redacted == text {
            record
        } else {
            serde_json::from_str(&redacted).expect("redaction keeps records valid JSON")
        };
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
        Ok(Self {
            file,
            path: path.to_path_buf(),
            chain: Chain::new(1, c),
        })
    }

    /// Opens an existing log for appending after [`read_log`]. A torn tail is first kept aside in
    /// `<log>.torn-<offset>` (`.torn-<offset>.<n>` if that name is taken by other bytes), made
    /// durable, and only then cut off; the path it was kept in is returned with the writer.
    ///
    /// Errors: [`LogError::Io`] naming the file and the step that failed (keeping the tail, cutting
    /// it, opening the log); when keeping it fails, the log is left as it was.
    pub fn open(path: &Path, contents: &LogContents) -> Result<(Self, Option<PathBuf>), LogError> {
        fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> LogError {
            let path = path.to_path_buf();
            move |source| LogError::Io {
                path,
                action,
                source,
            }
        }
        let kept = match &contents.torn {
            Some(torn) => {
                let keep = keep_torn(path, contents.valid_len, torn)?;
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io(path, "open the event log to cut its torn tail off"))?;
                f.set_len(contents.valid_len)
                    .and_then(|()| f.sync_all())
                    .map_err(io(path, "cut the torn tail off the event log"))?;
                Some(keep)
            }
            None => None,
        };
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io(path, "open the event log for appending"))?;
        Ok((
            Self {
                file,
                path: path.to_path_buf(),
                chain: Chain::new(contents.records.len() as u64 + 1, contents.last_crc),
            },
            kept,
        ))
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

/// Writes `torn` (cut from `log` at `offset`) durably to a file of its own, never over other bytes.
fn keep_torn(log: &Path, offset: u64, torn: &[u8]) -> Result<PathBuf, LogError> {
    let dir = log
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    for n in 0..1000u32 {
        // OsString, not `display()`: a non-UTF-8 run directory must keep its exact name.
        let mut name = log.as_os_str().to_owned();
        name.push(format!(".torn-{offset}"));
        if n > 0 {
            name.push(format!(".{n}"));
        }
        let keep = PathBuf::from(name);
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&keep)
            .and_then(|mut f| {
                f.write_all(torn)?;
                f.sync_all()
            });
        match written {
            Ok(()) => {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|source| LogError::Io {
                        path: dir.to_path_buf(),
                        action: "make the kept torn tail durable",
                        source,
                    })?;
                return Ok(keep);
            }
            // Kept already by an earlier attempt that stopped before the cut.
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists
                    && std::fs::read(&keep).is_ok_and(|b| b == torn) =>
            {
                return Ok(keep);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => {
                let _ = std::fs::remove_file(&keep);
                return Err(LogError::Io {
                    path: keep,
                    action: "keep the torn tail aside (the log was not changed)",
                    source,
                });
            }
        }
    }
    Err(LogError::Io {
        path: log.to_path_buf(),
        action: "keep the torn tail aside (the log was not changed)",
        source: std::io::Error::other("1000 files of kept torn tails exist already"),
    })
}

/// What a resume says after [`LogWriter::open`] cut a torn tail off and kept it in `kept`.
pub fn torn_notice(torn: &[u8], kept: &Path) -> String {
    let (n, kept) = (torn.len(), kept.display());
    if torn.iter().all(|&b| b == 0) {
        format!(
            "the log ended in a torn record of {n} zero bytes (a crash after the file's new size \
             reached the disk, before its data did); they were cut off and kept in {kept}"
        )
    } else {
        format!(
            "the log ended in a torn record ({n} bytes: a write that did not finish, from a crash \
             or a full disk); they were cut off and kept in {kept}"
        )
    }
}

/// `CUTOVER_CRASH_AFTER_EVENTS`, if set.
pub(crate) fn crash_after_events() -> Option<u64> {
    std::env::var("CUTOVER_CRASH_AFTER_EVENTS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn header() -> Header {
        Header {
            format_version: FORMAT_VERSION,
            run_id: "r1".into(),
            plan_hash: "h".into(),
            dry_run: false,
        }
    }

    fn sample(dir: &Path, n: u32) -> PathBuf {
        let path = dir.join("events.log");
        let mut w = LogWriter::create(&path, &header()).unwrap();
        for i in 0..n {
            w.append(Event::StepStarted {
                step: format!("command/s{i}"),
                attempt: 1,
            })
            .unwrap();
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
        assert_eq!(
            c.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
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
            let (mut w, kept) = LogWriter::open(&path, &c).unwrap();
            assert_eq!(kept.is_some(), cut > start, "cut at {cut}");
            w.append(Event::StepStarted {
                step: "after".into(),
                attempt: 1,
            })
            .unwrap();
            let again = read_log(&path).unwrap();
            assert_eq!(again.records.len(), 4);
            assert!(again.torn.is_none());
            if let Some(kept) = kept {
                // Tails cut at the same offset before are never overwritten: each has its file.
                let n = cut - start - 1;
                let want = if n == 0 {
                    format!("{}.torn-{start}", path.display())
                } else {
                    format!("{}.torn-{start}.{n}", path.display())
                };
                assert_eq!(kept, PathBuf::from(want));
                assert_eq!(std::fs::read(&kept).unwrap(), full[start..cut]);
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
                Ok(c) => panic!(
                    "byte {i}: accepted a damaged log with {} records, torn {:?}",
                    c.records.len(),
                    c.torn.as_ref().map(Vec::len)
                ),
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
        let mut w = LogWriter::create(
            &path2,
            &Header {
                run_id: "r2".into(),
                ..header()
            },
        )
        .unwrap();
        for i in 0..3 {
            w.append(Event::StepStarted {
                step: format!("command/s{i}"),
                attempt: 1,
            })
            .unwrap();
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

    /// A log long enough to be parsed on every core: its records come back in order, and of
    /// several records that are intact but unreadable, the earliest is the one reported.
    #[test]
    fn a_long_log_is_parsed_in_parallel_with_the_serial_results() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let n = 30_000u64;
        let mut w = LogWriter::create(&path, &header()).unwrap();
        for i in 0..n {
            w.append_unsynced(Event::StepStarted {
                step: format!("command/s{i}"),
                attempt: 1,
            })
            .unwrap();
        }
        drop(w);
        let c = read_log(&path).unwrap();
        assert_eq!(
            c.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (1..=n).collect::<Vec<_>>()
        );
        assert!(
            matches!(&c.records[29_999].event, Event::StepStarted { step, .. } if step == "command/s29999")
        );

        // Rebuild the chain with records 12,345 and 27,000 replaced by valid JSON that is no
        // record (as a newer cutover's unknown event would be): checksums hold, parsing fails.
        let bytes = std::fs::read(&path).unwrap();
        let all = frames(&bytes);
        let mut out = bytes[..all[0].1].to_vec();
        let mut prev = frame_at(&bytes, all[0].0).2;
        for (seq, &(at, end)) in all.iter().enumerate().skip(1) {
            let payload: &[u8] = if seq == 12_345 || seq == 27_000 {
                br#"{"unknown":"event"}"#
            } else {
                &bytes[at + FRAME..end]
            };
            let (framed, c) = frame(prev, seq as u64, payload);
            out.extend_from_slice(&framed);
            prev = c;
        }
        std::fs::write(&path, &out).unwrap();
        for _ in 0..5 {
            match read_log(&path) {
                Err(LogError::Unreadable { seq, .. }) => assert_eq!(seq, 12_345),
                other => panic!("an unreadable record accepted: {other:?}"),
            }
        }
    }

    /// A log of `n` records, and the bytes of the record that would come next.
    fn log_and_next(dir: &Path, n: u32) -> (PathBuf, Vec<u8>, Vec<u8>) {
        let path = sample(dir, n + 1);
        let full = std::fs::read(&path).unwrap();
        let last = *frames(&full).last().unwrap();
        let (head, next) = (full[..last.0].to_vec(), full[last.0..].to_vec());
        std::fs::write(&path, &head).unwrap();
        (path, head, next)
    }

    /// Reads `bytes` as a log: it must be `head` with a torn tail, which reopening keeps aside
    /// (the kept file holds exactly the tail) and cuts off, after which appending continues.
    fn assert_torn_tail(path: &Path, head: &[u8], bytes: &[u8], shape: &str) {
        std::fs::write(path, bytes).unwrap();
        let c = read_log(path).unwrap_or_else(|e| panic!("{shape}: {e}"));
        assert_eq!(c.valid_len as usize, head.len(), "{shape}");
        assert_eq!(c.torn.as_deref(), Some(&bytes[head.len()..]), "{shape}");
        let n = c.records.len();
        let (mut w, kept) = LogWriter::open(path, &c).unwrap();
        let kept = kept.unwrap_or_else(|| panic!("{shape}: nothing kept"));
        assert_eq!(
            std::fs::read(&kept).unwrap(),
            &bytes[head.len()..],
            "{shape}: the kept file holds the tail"
        );
        assert!(torn_notice(c.torn.as_ref().unwrap(), &kept).contains(&kept.display().to_string()));
        w.append(Event::StepStarted {
            step: "after".into(),
            attempt: 1,
        })
        .unwrap();
        let again = read_log(path).unwrap();
        assert_eq!(again.records.len(), n + 1, "{shape}");
        assert!(again.torn.is_none(), "{shape}");
        std::fs::remove_file(kept).unwrap();
    }

    #[test]
    fn a_tail_of_zeros_of_any_length_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (path, head, next) = log_and_next(dir.path(), 4);
        for zeros in [1, 15, 16, 17, 120, next.len(), 4096, 1 << 20] {
            let mut bytes = head.clone();
            bytes.resize(head.len() + zeros, 0);
            assert_torn_tail(&path, &head, &bytes, &format!("{zeros} zero bytes"));
            std::fs::write(&path, &head).unwrap();
        }
    }

    #[test]
    fn a_partly_written_frame_followed_by_zeros_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (path, head, next) = log_and_next(dir.path(), 4);
        // The first k bytes of the next record reached the disk, zeros after them: up to the
        // record's own end, or on into preallocated space.
        for k in 1..next.len() {
            for total in [next.len(), next.len() + 17, 4096] {
                let mut bytes = head.clone();
                bytes.extend_from_slice(&next[..k]);
                bytes.resize(head.len() + total, 0);
                assert_torn_tail(
                    &path,
                    &head,
                    &bytes,
                    &format!("{k} bytes written, {total} in all"),
                );
                std::fs::write(&path, &head).unwrap();
            }
        }
        // The frame header written, its payload all zeros (another page than the header's).
        let mut bytes = head.clone();
        bytes.extend_from_slice(&next[..FRAME]);
        bytes.resize(head.len() + next.len() + 4096, 0);
        assert_torn_tail(&path, &head, &bytes, "zero payload");
    }

    #[test]
    fn zeros_followed_by_a_valid_record_are_damage_not_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path(), 5);
        let full = std::fs::read(&path).unwrap();
        let f = frames(&full);
        // Record 3 zeroed in place (a lost block), records 4 and 5 intact after it.
        let mut bad = full.clone();
        bad[f[3].0..f[3].1].fill(0);
        std::fs::write(&path, &bad).unwrap();
        match read_log(&path) {
            Err(e @ LogError::Corrupt { .. }) => {
                let LogError::Corrupt {
                    offset, seq, later, ..
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!(
                    (*offset as usize, *seq, *later as usize),
                    (f[3].0, 3, f[4].0)
                );
                assert!(
                    e.to_string()
                        .contains(&format!("a valid later record starts at byte {}", f[4].0)),
                    "{e}"
                );
            }
            other => panic!("accepted: {other:?}"),
        }
        // A zero tail after a damaged middle record does not hide the damage either.
        let mut bad = full.clone();
        bad[f[2].0 + FRAME + 3] ^= 0x01;
        bad.resize(full.len() + 4096, 0);
        std::fs::write(&path, &bad).unwrap();
        assert!(
            matches!(read_log(&path), Err(LogError::Corrupt { seq: 2, .. })),
            "{:?}",
            read_log(&path).map(|c| c.records.len())
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bad,
            "reading changes nothing"
        );
        // Zeros (or other garbage) inserted before the last record, which is intact after them:
        // that record was written durably, so this is damage, never a torn tail to cut.
        for (garbage, what) in [
            (vec![0u8; 1], "1 zero"),
            (vec![0u8; 17], "17 zeros"),
            (vec![0u8; 4096], "4096 zeros"),
            (b"xyz".to_vec(), "text"),
        ] {
            let last = f[f.len() - 1].0;
            let mut bad = full[..last].to_vec();
            bad.extend_from_slice(&garbage);
            bad.extend_from_slice(&full[last..]);
            std::fs::write(&path, &bad).unwrap();
            match read_log(&path) {
                Err(e @ LogError::Corrupt { .. }) => {
                    let LogError::Corrupt { offset, later, .. } = &e else {
                        unreachable!()
                    };
                    assert_eq!(
                        (*offset as usize, *later as usize),
                        (last, last + garbage.len()),
                        "{what}: {e}"
                    );
                }
                other => panic!(
                    "{what}: a durable last record would be cut as torn: {:?}",
                    other.map(|c| c.records.len())
                ),
            }
        }
    }

    #[test]
    fn a_damaged_last_record_says_no_later_record_exists() {
        // Garbage after the last record that contains no record: torn, and the message of a
        // refusal never claims later records it did not find.
        let dir = tempfile::tempdir().unwrap();
        let (path, head, next) = log_and_next(dir.path(), 3);
        let mut bytes = head.clone();
        bytes.extend_from_slice(&next);
        let at = head.len() + FRAME + 2;
        bytes[at] ^= 0x40;
        bytes.extend_from_slice(&[0u8; 100]);
        assert_torn_tail(&path, &head, &bytes, "flipped last record then zeros");
    }

    #[test]
    fn files_that_are_not_logs_say_what_they_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let cases: [(&[u8], &str); 6] = [
            (b"", "the file is empty (0 bytes)"),
            (&[0; 4096], "holds 4096 zero bytes"),
            (
                b"CUTLOG\x00\x02rest",
                "format 2 (from the file's first bytes)",
            ),
            (
                b"{\"seq\": 1}",
                "does not start with the magic bytes `CUTLOG`",
            ),
            (MAGIC, "header record (byte 8) is missing"),
            (
                &[MAGIC as &[u8], &[0; 64]].concat(),
                "never reached the disk",
            ),
        ];
        for (bytes, needle) in cases {
            std::fs::write(&path, bytes).unwrap();
            let e = read_log(&path).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with(&path.display().to_string()) && msg.contains(needle),
                "{needle}: {msg}"
            );
            assert!(!msg.contains("later record"), "{msg}");
            assert!(!e.hint().is_empty());
        }
        // A header of another format version.
        let hdr = Header {
            format_version: 9,
            ..header()
        };
        LogWriter::create(&path, &hdr).unwrap();
        let msg = read_log(&path).unwrap_err().to_string();
        assert!(
            msg.contains("format 9; this cutover reads format 2"),
            "{msg}"
        );
    }

    #[test]
    fn a_log_of_the_format_before_typed_step_data_is_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let old = Header {
            format_version: 1,
            ..header()
        };
        LogWriter::create(&path, &old).unwrap();
        let e = read_log(&path).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&path.display().to_string())
                && msg.contains(
                    "the event log is in format 1; this cutover reads format 2 (and 3, a run \
                     with gates) only"
                ),
            "{msg}"
        );
        assert!(
            e.hint()
                .contains("finish or roll back this run with the cutover version that started it"),
            "{}",
            e.hint()
        );
        // Nothing was changed: the file is as it was written.
        let again = read_log(&path).unwrap_err().to_string();
        assert_eq!(again, msg);
    }
}
