//! The snapshot cache on disk: what the store knew at exit, saved atomically and loaded at start.
//!
//! Format: one header line of JSON (`{"format":"vtriage-snapshot","version":2,...}`), then one
//! record per line (JSON never has a raw newline inside a value). The header is read first, so a
//! file from another version is recognised without parsing its records; the lines are encoded
//! and parsed in parallel chunks. A record's evidence travels as its packed frame (base64), so
//! neither saving nor loading touches observations. Snapshots hold no tokens.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::VehicleRecord;

/// The version this build writes and the newest it reads.
pub const SNAPSHOT_VERSION: u32 = 2;
const FORMAT: &str = "vtriage-snapshot";

/// The store's records at one moment. On disk it is written as a header line plus one line per
/// record (see the module documentation), not as this struct in one piece.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub saved_at: Timestamp,
    pub records: Vec<VehicleRecord>,
}

impl Snapshot {
    pub fn new(saved_at: Timestamp, records: Vec<VehicleRecord>) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            saved_at,
            records,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    saved_at: Timestamp,
    /// Records that follow, to detect a file cut short at a line end.
    count: usize,
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
    fs::create_dir_all(&dir).map_err(io_error("create the folder of", path))?;
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
    let file = File::create(tmp).map_err(io_error("write", tmp))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let header = Header {
        format: FORMAT.to_string(),
        version: snapshot.version,
        saved_at: snapshot.saved_at,
        count: snapshot.records.len(),
    };
    let json = |e: serde_json::Error| SnapshotError::Io {
        action: "write",
        path: tmp.to_path_buf(),
        source: std::io::Error::other(e),
    };
    serde_json::to_writer(&mut out, &header).map_err(json)?;
    out.write_all(b"\n").map_err(io_error("write", tmp))?;
    let chunks = chunk_count(snapshot.records.len());
    let per_chunk = snapshot.records.len().div_ceil(chunks).max(1);
    let encoded: Vec<Result<Vec<u8>, serde_json::Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = snapshot
            .records
            .chunks(per_chunk)
            .map(|chunk| {
                scope.spawn(move || {
                    let mut buf = Vec::with_capacity(chunk.len() * 512);
                    for record in chunk {
                        serde_json::to_writer(&mut buf, record)?;
                        buf.push(b'\n');
                    }
                    Ok(buf)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(serde::ser::Error::custom("encoder thread panicked")))
            })
            .collect()
    });
    for chunk in encoded {
        out.write_all(&chunk.map_err(json)?)
            .map_err(io_error("write", tmp))?;
    }
    let file = out.into_inner().map_err(|e| SnapshotError::Io {
        action: "write",
        path: tmp.to_path_buf(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_error("sync", tmp))
}

/// Reads the snapshot at `path`: `Ok(None)` when there is none. A corrupt file, or one from a
/// newer version, is renamed to `<path>.corrupt-<time>` and reported as an error to show as a
/// warning. Loaded records are marked stale.
pub fn load(path: &Path) -> Result<Option<Snapshot>, SnapshotError> {
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
    let mut records = parse_records(body, 2)?;
    // A file cut short at a line end parses cleanly: the header's count catches it.
    if records.len() != header.count {
        return Err(Refusal::Corrupt(format!(
            "the header announces {} records but {} were found (file cut short?)",
            header.count,
            records.len()
        )));
    }
    for r in &mut records {
        r.stale = true;
        r.probing = false;
    }
    Ok(Snapshot {
        version: header.version,
        saved_at: header.saved_at,
        records,
    })
}

/// Threads for encoding or parsing `n` records: one per core, none for small snapshots.
fn chunk_count(n: usize) -> usize {
    if n < 10_000 {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .clamp(1, 8)
}

/// Parses one record per line, splitting the body at line ends into one chunk per thread.
/// `first_line` is the file line number of the body's first line, for error messages.
fn parse_records(body: &[u8], first_line: usize) -> Result<Vec<VehicleRecord>, Refusal> {
    let chunks = chunk_count(body.len() / 256);
    let mut bounds = vec![0];
    for i in 1..chunks {
        let target = (body.len() * i / chunks).max(*bounds.last().unwrap_or(&0));
        let end = body
            .get(target..)
            .unwrap_or(&[])
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |p| target + p + 1);
        bounds.push(end);
    }
    bounds.push(body.len());
    let parsed: Vec<Result<(usize, Vec<VehicleRecord>), Refusal>> = std::thread::scope(|scope| {
        let handles: Vec<_> = bounds
            .windows(2)
            .map(|w| {
                let chunk = body.get(w[0]..w[1]).unwrap_or(&[]);
                scope.spawn(move || {
                    // Sized up front: growing a vector of large records copies and frees tens of MB.
                    let mut records =
                        Vec::with_capacity(memchr::memchr_iter(b'\n', chunk).count() + 1);
                    let mut lines: usize = 0;
                    for line in chunk.split(|&b| b == b'\n') {
                        lines += 1;
                        let line = line.trim_ascii();
                        if line.is_empty() {
                            continue;
                        }
                        let record = serde_json::from_slice(line).map_err(|e| (lines, e))?;
                        records.push(record);
                    }
                    Ok::<_, (usize, serde_json::Error)>((lines.saturating_sub(1), records))
                })
            })
            .collect();
        let mut offset = first_line;
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(Ok((lines, records))) => {
                    offset += lines;
                    Ok((lines, records))
                }
                Ok(Err((line, e))) => {
                    Err(Refusal::Corrupt(format!("line {}: {e}", offset + line - 1)))
                }
                Err(_) => Err(Refusal::Corrupt("parser thread panicked".into())),
            })
            .collect()
    });
    let total = parsed
        .iter()
        .map(|c| c.as_ref().map_or(0, |c| c.1.len()))
        .sum::<usize>();
    let mut chunks = parsed.into_iter();
    let mut records = match chunks.next() {
        Some(first) => first?.1,
        None => Vec::new(),
    };
    records.reserve_exact(total.saturating_sub(records.len()));
    for chunk in chunks {
        records.append(&mut chunk?.1);
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
