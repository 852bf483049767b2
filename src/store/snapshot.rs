//! The snapshot cache on disk: what the store knew at exit, saved atomically and loaded at start.
//!
//! Format: one header line of JSON (`{"format":"vtriage-snapshot","version":5,...}`) with the
//! finding tags every record refers to and the byte length, record count and CRC-32 of each
//! chunk of the body; then the chunks, each a run of records in postcard (a compact binary
//! serde format). The header is read first, so a file from another version is recognised
//! without reading its records; chunks are encoded and decoded in parallel, and a damaged byte
//! anywhere fails its chunk's checksum. A record's evidence travels as its packed frame, so
//! neither saving nor loading touches observations. Snapshots hold no tokens.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{ChangeCause, FindingTag, Glance, Packed, StatusChange, VehicleRecord, Verdict};
use crate::health::Status;
use crate::smartcar::VehicleAttributes;

/// The version this build writes and the newest it reads.
pub const SNAPSHOT_VERSION: u32 = 5;
const FORMAT: &str = "vtriage-snapshot";

/// The store's records at one moment. On disk it is written as a header line plus binary
/// chunks of records (see the module documentation), not as this struct in one piece.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub version: u32,
    pub saved_at: Timestamp,
    pub records: Vec<VehicleRecord>,
    /// The cars watched (`w`), so a later run shows the mark and the recovery.
    pub watches: Vec<super::watch::Watch>,
}

impl Snapshot {
    pub fn new(saved_at: Timestamp, records: Vec<VehicleRecord>) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            saved_at,
            records,
            watches: Vec::new(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    saved_at: Timestamp,
    /// Records that follow.
    count: usize,
    /// The finding tags records refer to by index.
    #[serde(default)]
    tags: Vec<FindingTag>,
    #[serde(default)]
    chunks: Vec<Chunk>,
    /// [`super::packed::dictionary_id`] of the build that packed the evidence.
    #[serde(default)]
    dictionary: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    watches: Vec<super::watch::Watch>,
}

/// One run of records in the body.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Chunk {
    records: usize,
    bytes: usize,
    crc32: u32,
}

/// An instant as seconds and nanoseconds since the Unix epoch.
type Instant = (i64, i32);

fn instant(t: Timestamp) -> Instant {
    (t.as_second(), t.subsec_nanosecond())
}

fn timestamp((s, ns): Instant) -> Result<Timestamp, String> {
    Timestamp::new(s, ns).map_err(|e| format!("bad time: {e}"))
}

/// One record as stored. Field order is the format: postcard writes no names.
#[derive(Serialize, Deserialize)]
struct Saved<'a> {
    vehicle_id: Cow<'a, str>,
    user_id: Cow<'a, str>,
    other_users: Vec<Cow<'a, str>>,
    connected_at: Option<Cow<'a, str>>,
    has_token: bool,
    /// Make, model and year; the id is the vehicle id.
    attributes: Option<(Cow<'a, str>, Cow<'a, str>, u16)>,
    vin: Option<Cow<'a, str>>,
    status: Status,
    checked_at: Option<Instant>,
    /// Indexes into the header's tags.
    findings: Vec<u32>,
    glance: (Option<u16>, Option<bool>, Option<bool>),
    packed: Option<Cow<'a, Packed>>,
    history: Vec<(Instant, Status, Status, ChangeCause)>,
    failing_since: Option<Instant>,
    last_probe_at: Option<Instant>,
}

impl<'a> Saved<'a> {
    fn of(r: &'a VehicleRecord, tags: &HashMap<usize, u32>) -> Saved<'a> {
        let text = |s: &'a String| Cow::Borrowed(s.as_str());
        Saved {
            vehicle_id: text(&r.vehicle_id),
            user_id: text(&r.user_id),
            other_users: r.other_users.iter().map(text).collect(),
            connected_at: r.connected_at.as_ref().map(text),
            has_token: r.has_token,
            attributes: r
                .attributes
                .as_ref()
                .map(|a| (text(&a.make), text(&a.model), a.year)),
            vin: r.vin.as_ref().map(text),
            status: r.verdict.status,
            checked_at: r.verdict.checked_at.map(instant),
            findings: r
                .verdict
                .findings
                .iter()
                .filter_map(|f| tags.get(&(Arc::as_ptr(f) as usize)).copied())
                .collect(),
            glance: (
                r.glance.granted,
                r.glance.tesla_location,
                r.glance.virtual_key_paired,
            ),
            packed: r.packed.as_ref().map(Cow::Borrowed),
            history: r
                .history
                .iter()
                .map(|c| (instant(c.at), c.from, c.to, c.cause))
                .collect(),
            failing_since: r.failing_since.map(instant),
            last_probe_at: r.last_probe_at.map(instant),
        }
    }

    fn into_record(self, tags: &[Arc<FindingTag>]) -> Result<VehicleRecord, String> {
        let vehicle_id = self.vehicle_id.into_owned();
        let findings = self
            .findings
            .iter()
            .map(|&i| {
                tags.get(i as usize)
                    .cloned()
                    .ok_or_else(|| format!("finding tag {i} is not in the header"))
            })
            .collect::<Result<_, _>>()?;
        let history = self
            .history
            .into_iter()
            .map(|(at, from, to, cause)| {
                Ok(StatusChange {
                    at: timestamp(at)?,
                    from,
                    to,
                    cause,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(VehicleRecord {
            attributes: self
                .attributes
                .map(|(make, model, year)| VehicleAttributes {
                    id: vehicle_id.clone(),
                    make: make.into_owned(),
                    model: model.into_owned(),
                    year,
                }),
            vehicle_id,
            user_id: self.user_id.into_owned(),
            other_users: self.other_users.into_iter().map(Cow::into_owned).collect(),
            connected_at: self.connected_at.map(Cow::into_owned),
            has_token: self.has_token,
            vin: self.vin.map(Cow::into_owned),
            verdict: Verdict {
                status: self.status,
                checked_at: self.checked_at.map(timestamp).transpose()?,
                findings,
            },
            glance: Glance {
                granted: self.glance.0,
                tesla_location: self.glance.1,
                virtual_key_paired: self.glance.2,
            },
            packed: self.packed.map(Cow::into_owned),
            history,
            failing_since: self.failing_since.map(timestamp).transpose()?,
            last_probe_at: self.last_probe_at.map(timestamp).transpose()?,
            probing: false,
            stale: true,
            // A desk's verdict outlives its session only as the evidence a local run diagnoses.
            given_verdict: false,
        })
    }
}

/// What went wrong saving or loading a snapshot. Every case leaves the program running: the
/// caller shows the message as a warning.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot {action} snapshot {}: {source}; check that the folder exists, is writable and has free space", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("snapshot {} is unreadable ({reason}); {}", path.display(), moved(moved_to))]
    Corrupt {
        path: PathBuf,
        reason: String,
        moved_to: Option<PathBuf>,
    },
    #[error("snapshot {} was written by a newer vtriage (format version {found}, this one reads up to {SNAPSHOT_VERSION}); {}", path.display(), moved(moved_to))]
    NewerVersion {
        path: PathBuf,
        found: u32,
        moved_to: Option<PathBuf>,
    },
    #[error("snapshot {} was written by an older vtriage (format version {found}, this one reads {SNAPSHOT_VERSION}); {}", path.display(), moved(moved_to))]
    OlderVersion {
        path: PathBuf,
        found: u32,
        moved_to: Option<PathBuf>,
    },
    #[error("not writing an empty snapshot over {}: the fleet is empty (nothing listed yet?)", path.display())]
    Empty { path: PathBuf },
}

fn moved(to: &Option<PathBuf>) -> String {
    match to {
        Some(p) => format!("moved aside to {}, starting without it", p.display()),
        None => "it could not be moved aside; starting without it".to_string(),
    }
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `snapshot` to `path` atomically: a temporary file in the same folder, written and
/// synced, then renamed over `path`. An empty snapshot is refused (see [`save_forced`]).
pub fn save(path: &Path, snapshot: &Snapshot) -> Result<(), SnapshotError> {
    if snapshot.records.is_empty() {
        return Err(SnapshotError::Empty {
            path: path.to_path_buf(),
        });
    }
    save_forced(path, snapshot)
}

/// Like [`save`], but writes an empty snapshot too (the agent asked to clear the cache).
pub fn save_forced(path: &Path, snapshot: &Snapshot) -> Result<(), SnapshotError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    crate::private_files::create_dir(&dir).map_err(io_error("create the folder of", path))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snapshot".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = write_file(&tmp, snapshot)
        .and_then(|()| fs::rename(&tmp, path).map_err(io_error("replace", path)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // The rename is durable once the folder entry is; not every platform lets a folder be synced.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_file(tmp: &Path, snapshot: &Snapshot) -> Result<(), SnapshotError> {
    let file = crate::private_files::create_file(tmp).map_err(io_error("write", tmp))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut tags = Vec::new();
    let mut tag_index: HashMap<usize, u32> = HashMap::new();
    for f in snapshot
        .records
        .iter()
        .flat_map(|r| r.verdict.findings.iter())
    {
        tag_index.entry(Arc::as_ptr(f) as usize).or_insert_with(|| {
            tags.push(FindingTag::clone(f));
            tags.len() as u32 - 1
        });
    }
    let encode_error = |e: postcard::Error| SnapshotError::Io {
        action: "write",
        path: tmp.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let threads = chunk_count(snapshot.records.len());
    let per_chunk = snapshot.records.len().div_ceil(threads).max(1);
    let tag_index = &tag_index;
    let encoded: Vec<Result<(usize, Vec<u8>), postcard::Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = snapshot
            .records
            .chunks(per_chunk)
            .map(|chunk| {
                scope.spawn(move || {
                    let mut buf = Vec::with_capacity(chunk.len() * 640);
                    for record in chunk {
                        buf = postcard::to_extend(&Saved::of(record, tag_index), buf)?;
                    }
                    Ok((chunk.len(), buf))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or(Err(postcard::Error::SerializeBufferFull))
            })
            .collect()
    });
    let encoded = encoded
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(encode_error)?;
    let header = Header {
        format: FORMAT.to_string(),
        version: snapshot.version,
        saved_at: snapshot.saved_at,
        count: snapshot.records.len(),
        tags,
        dictionary: super::packed::dictionary_id(),
        watches: snapshot.watches.clone(),
        chunks: encoded
            .iter()
            .map(|(records, bytes)| Chunk {
                records: *records,
                bytes: bytes.len(),
                crc32: crc32fast::hash(bytes),
            })
            .collect(),
    };
    serde_json::to_writer(&mut out, &header).map_err(|e| SnapshotError::Io {
        action: "write",
        path: tmp.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    out.write_all(b"\n").map_err(io_error("write", tmp))?;
    for (_, bytes) in &encoded {
        out.write_all(bytes).map_err(io_error("write", tmp))?;
    }
    let file = out.into_inner().map_err(|e| SnapshotError::Io {
        action: "write",
        path: tmp.to_path_buf(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_error("sync", tmp))
}

/// A temporary snapshot file older than this was left by a process that died while saving
/// (a save takes well under a second); a younger one may belong to a save under way.
const LEFTOVER_AFTER: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Removes temporary files that an interrupted save of `path` left in its folder. Returns how many.
pub fn remove_leftovers(path: &Path) -> usize {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return 0;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let leftover = entry.file_name().to_string_lossy().starts_with(&prefix)
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= LEFTOVER_AFTER);
        if leftover && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Reads the snapshot at `path`: `Ok(None)` when there is none. A corrupt file, or one from a
/// newer version, is renamed to `<path>.corrupt-<time>` and reported as an error to show as a
/// warning. Loaded records are marked stale.
pub fn load(path: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    remove_leftovers(path);
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path)(e)),
    };
    match parse(&bytes) {
        Ok(snapshot) => Ok(Some(snapshot)),
        Err(Refusal::Newer(found)) => Err(SnapshotError::NewerVersion {
            path: path.to_path_buf(),
            found,
            moved_to: move_aside(path),
        }),
        Err(Refusal::Older(found)) => Err(SnapshotError::OlderVersion {
            path: path.to_path_buf(),
            found,
            moved_to: move_aside(path),
        }),
        Err(Refusal::Corrupt(reason)) => Err(SnapshotError::Corrupt {
            path: path.to_path_buf(),
            reason,
            moved_to: move_aside(path),
        }),
    }
}

enum Refusal {
    Newer(u32),
    Older(u32),
    Corrupt(String),
}

fn parse(bytes: &[u8]) -> Result<Snapshot, Refusal> {
    let split = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| Refusal::Corrupt("no header line".into()))?;
    let (head, body) = (&bytes[..split], bytes.get(split + 1..).unwrap_or(&[]));
    let header: Header =
        serde_json::from_slice(head).map_err(|e| Refusal::Corrupt(format!("header line: {e}")))?;
    if header.format != FORMAT {
        return Err(Refusal::Corrupt(format!(
            "not a vtriage snapshot (format `{}`)",
            header.format
        )));
    }
    if header.version > SNAPSHOT_VERSION {
        return Err(Refusal::Newer(header.version));
    }
    if header.version < SNAPSHOT_VERSION {
        return Err(Refusal::Older(header.version));
    }
    if header.dictionary != super::packed::dictionary_id() {
        return Err(Refusal::Corrupt(
            "its evidence was packed by another vtriage build (another dictionary)".into(),
        ));
    }
    let records = parse_records(&header, body)?;
    Ok(Snapshot {
        version: header.version,
        saved_at: header.saved_at,
        records,
        watches: header.watches,
    })
}

/// Threads for encoding `n` records: one per core, none for small snapshots.
fn chunk_count(n: usize) -> usize {
    if n < 10_000 {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .clamp(1, 8)
}

/// Checks and decodes the body's chunks, one thread per chunk.
/// More chunks than any build writes: a header announcing more is crafted or damaged, and
/// would otherwise start one thread per chunk.
const MAX_CHUNKS: usize = 64;

/// The fewest bytes one record takes in postcard (ids, flags and empty lists), so a header's
/// record count can be checked against the body before anything is allocated for it.
const MIN_RECORD_BYTES: usize = 8;

fn parse_records(header: &Header, body: &[u8]) -> Result<Vec<VehicleRecord>, Refusal> {
    if header.chunks.len() > MAX_CHUNKS {
        return Err(Refusal::Corrupt(format!(
            "the header announces {} chunks (at most {MAX_CHUNKS} are written)",
            header.chunks.len()
        )));
    }
    // Checked sums: a crafted header must not wrap around and pass the length test.
    let announced = header
        .chunks
        .iter()
        .try_fold(0usize, |sum, c| sum.checked_add(c.bytes));
    if announced != Some(body.len()) {
        return Err(Refusal::Corrupt(format!(
            "the header announces {} bytes of records but {} follow (file cut short?)",
            announced.map_or_else(|| "more".to_string(), |n| n.to_string()),
            body.len()
        )));
    }
    let in_chunks = header
        .chunks
        .iter()
        .try_fold(0usize, |sum, c| sum.checked_add(c.records));
    if in_chunks != Some(header.count) {
        return Err(Refusal::Corrupt(format!(
            "the header announces {} records but its chunks hold a different number",
            header.count
        )));
    }
    if let Some(chunk) = header
        .chunks
        .iter()
        .find(|c| c.records.saturating_mul(MIN_RECORD_BYTES) > c.bytes)
    {
        return Err(Refusal::Corrupt(format!(
            "a chunk announces {} records in {} bytes",
            chunk.records, chunk.bytes
        )));
    }
    let tags: Vec<Arc<FindingTag>> = header.tags.iter().cloned().map(Arc::new).collect();
    let tags = &tags;
    // Each chunk's bytes and the file-wide number of its first record.
    let mut parts = Vec::with_capacity(header.chunks.len());
    let (mut offset, mut first) = (0, 0);
    for chunk in &header.chunks {
        let end = offset + chunk.bytes;
        let bytes = body
            .get(offset..end)
            .ok_or_else(|| Refusal::Corrupt("a chunk reaches past the end of the file".into()))?;
        parts.push((chunk, bytes, first));
        offset = end;
        first += chunk.records;
    }
    let total = parts.len();
    let decoded: Vec<Result<Vec<VehicleRecord>, Refusal>> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .enumerate()
            .map(|(i, (chunk, bytes, first))| {
                scope.spawn(move || {
                    if crc32fast::hash(bytes) != chunk.crc32 {
                        return Err(Refusal::Corrupt(format!(
                            "chunk {} of {total} fails its checksum (damaged on disk?)",
                            i + 1
                        )));
                    }
                    decode_chunk(bytes, chunk.records, first, tags)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Refusal::Corrupt("decoder thread panicked".into())))
            })
            .collect()
    });
    let mut records = Vec::with_capacity(header.count);
    for chunk in decoded {
        records.append(&mut chunk?);
    }
    Ok(records)
}

/// `count` records from one chunk; `first` is the file-wide number of its first record.
fn decode_chunk(
    mut bytes: &[u8],
    count: usize,
    first: usize,
    tags: &[Arc<FindingTag>],
) -> Result<Vec<VehicleRecord>, Refusal> {
    let mut records = Vec::with_capacity(count);
    for n in first + 1..=first + count {
        let bad = |reason: String| Refusal::Corrupt(format!("record {n}: {reason}"));
        let (saved, rest) =
            postcard::take_from_bytes::<Saved>(bytes).map_err(|e| bad(e.to_string()))?;
        records.push(saved.into_record(tags).map_err(bad)?);
        bytes = rest;
    }
    if !bytes.is_empty() {
        return Err(Refusal::Corrupt(format!(
            "{} stray bytes after record {}",
            bytes.len(),
            first + count
        )));
    }
    Ok(records)
}

/// Renames a bad snapshot so the next save does not destroy what a person may want to inspect.
fn move_aside(path: &Path) -> Option<PathBuf> {
    let stamp = Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let mut name = path.file_name()?.to_os_string();
    name.push(format!(".corrupt-{stamp}"));
    let target = path.with_file_name(name);
    fs::rename(path, &target).ok().map(|()| target)
}
