//! The app-wide bucket's state on disk: tokens left and when, so the budget survives a restart and the
//! vtriage processes of one machine spend one budget. Every change is a read-modify-write under an
//! exclusive lock on the file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What is stored: tokens left at a wall-clock moment, and the bucket they belong to. A moment
/// in the future means the server asked for a pause: nothing refills before it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BucketState {
    pub tokens: f64,
    pub at_unix_ms: i64,
    pub capacity: f64,
    pub refill_per_min: f64,
}

impl BucketState {
    /// Tokens at `now`, refilled since the stored moment (none before it).
    pub fn tokens_at(&self, now: SystemTime) -> f64 {
        let elapsed_s = (unix_ms(now) - self.at_unix_ms).max(0) as f64 / 1000.0;
        (self.tokens + elapsed_s * self.refill_per_min / 60.0).min(self.capacity)
    }

    /// How long after `now` the stored moment lies (zero when it is past).
    pub fn paused_for(&self, now: SystemTime) -> Duration {
        Duration::from_millis(u64::try_from(self.at_unix_ms - unix_ms(now)).unwrap_or(0))
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Converts a wall-clock moment to store.
pub fn to_unix_ms(t: SystemTime) -> i64 {
    unix_ms(t)
}

/// The state file. Opening never fails the program: without a usable file the bucket lives in
/// memory only, as before, and the reason is logged once.
#[derive(Debug)]
pub struct BucketFile {
    path: PathBuf,
    file: File,
}

impl BucketFile {
    pub fn open(path: &Path) -> std::io::Result<BucketFile> {
        if let Some(dir) = path.parent() {
            crate::private_files::create_dir(dir)?;
        }
        let file = crate::private_files::open_rw(path)?;
        Ok(BucketFile {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Locks the file and reads the stored state (`None` when there is none yet, it is unreadable,
    /// or it belongs to another bucket). The lock is held until [`BucketFile::commit`].
    pub fn begin(&mut self) -> std::io::Result<Option<BucketState>> {
        self.file.lock()?;
        let stored = self.read();
        if stored.is_err() {
            let _ = self.file.unlock();
        }
        stored
    }

    /// The stored state as it is now, read under the lock and changing nothing.
    pub fn peek(&mut self) -> std::io::Result<Option<BucketState>> {
        self.file.lock_shared()?;
        let stored = self.read();
        let _ = self.file.unlock();
        stored
    }

    /// Stores `state` and releases the lock taken by [`BucketFile::begin`].
    pub fn commit(&mut self, state: &BucketState) -> std::io::Result<()> {
        let written = self.write(state);
        let _ = self.file.unlock();
        written
    }

    /// [`BucketFile::begin`], `change`, [`BucketFile::commit`].
    pub fn update<R>(
        &mut self,
        change: impl FnOnce(Option<BucketState>) -> (BucketState, R),
    ) -> std::io::Result<R> {
        let stored = self.begin()?;
        let (next, out) = change(stored);
        self.commit(&next).map(|()| out)
    }

    fn read(&mut self) -> std::io::Result<Option<BucketState>> {
        let mut text = String::new();
        self.file.seek(SeekFrom::Start(0))?;
        // A stray huge file is not ours to read whole.
        (&self.file).take(4096).read_to_string(&mut text)?;
        Ok(serde_json::from_str(text.trim()).ok())
    }

    fn write(&mut self, state: &BucketState) -> std::io::Result<()> {
        let text = serde_json::to_string(state).map_err(std::io::Error::other)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.set_len(0)?;
        self.file.write_all(text.as_bytes())?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!("vtriage-bucket-{name}-{}", std::process::id()))
            .join("budget.json")
    }

    #[test]
    fn tokens_refill_from_the_stored_moment_and_not_before_a_pause() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let s = BucketState {
            tokens: 3.0,
            at_unix_ms: to_unix_ms(t0),
            capacity: 119.0,
            refill_per_min: 2.0,
        };
        assert_eq!(s.tokens_at(t0 + Duration::from_secs(60)), 5.0);
        assert_eq!(s.tokens_at(t0 - Duration::from_secs(60)), 3.0);
        assert_eq!(s.tokens_at(t0 + Duration::from_secs(360_000)), 119.0);
        assert_eq!(
            s.paused_for(t0 - Duration::from_secs(2)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn an_update_sees_the_last_one_and_garbage_reads_as_none() {
        let path = temp("update");
        let _ = std::fs::remove_file(&path);
        let mut file = BucketFile::open(&path).expect("open");
        let state = BucketState {
            tokens: 7.0,
            at_unix_ms: 42,
            capacity: 119.0,
            refill_per_min: 2.0,
        };
        let seen = file.update(|stored| (state, stored)).expect("update");
        assert_eq!(seen, None);
        let mut other = BucketFile::open(&path).expect("second handle");
        let seen = other.update(|stored| (state, stored)).expect("update");
        assert_eq!(seen, Some(state));
        std::fs::write(&path, "not json").expect("write");
        let seen = other.update(|stored| (state, stored)).expect("update");
        assert_eq!(seen, None);
    }
}
