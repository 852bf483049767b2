//! The snapshot cache on disk: round trip, bad files moved aside, unwritable folders, empty stores.

use crate::store_fixture;

use std::fs;
use std::path::{Path, PathBuf};

use store_fixture::*;
use vtriage::health::Status;
use vtriage::store::{Snapshot, SnapshotError, Store, load, save, save_forced};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vtriage-store-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn moved_aside(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".corrupt-"))
        .collect()
}

#[test]
fn a_saved_snapshot_loads_back_as_stale_records_with_everything_but_probing() {
    let dir = temp_dir("roundtrip");
    let path = dir.join("fleet.snapshot");
    let store = fleet_store();
    let snapshot = store.to_snapshot();
    save(&path, &snapshot).unwrap();
    let loaded = load(&path).unwrap().expect("a snapshot");
    assert_eq!(loaded.version, snapshot.version);
    assert_eq!(loaded.saved_at, snapshot.saved_at);
    assert_eq!(loaded.records.len(), 6);
    for (a, b) in loaded.records.iter().zip(&snapshot.records) {
        assert!(a.stale);
        let mut b = b.clone();
        b.stale = true;
        assert_eq!(a, &b);
    }
    let mut restored = Store::new(diagnoser());
    restored.restore(loaded);
    assert_eq!(ids(&restored), ids(&store));
    assert_eq!(restored.counts(), store.counts());
    assert!(restored.vehicle("veh-a").unwrap().stale);
    // A fresh probe clears the stale mark.
    vtriage::feed::apply(
        &mut restored,
        &observed(report("veh-a", "user-1", None, None, Outcome::Ok, now())),
        now(),
    );
    assert!(!restored.vehicle("veh-a").unwrap().stale);
    assert!(moved_aside(&dir).is_empty());
    assert_eq!(
        fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary file left behind"
    );
}

#[test]
fn a_missing_snapshot_is_not_an_error() {
    let dir = temp_dir("missing");
    assert!(load(&dir.join("none.snapshot")).unwrap().is_none());
}

#[test]
fn a_corrupt_snapshot_is_moved_aside_with_a_warning() {
    let dir = temp_dir("corrupt");
    let path = dir.join("fleet.snapshot");
    let store = fleet_store();
    save(&path, &store.to_snapshot()).unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes.truncate(bytes.len() / 2);
    fs::write(&path, &bytes).unwrap();
    let err = load(&path).expect_err("truncated file");
    assert!(
        matches!(
            err,
            SnapshotError::Corrupt {
                moved_to: Some(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("moved aside"), "{err}");
    assert!(!path.exists());
    assert_eq!(moved_aside(&dir).len(), 1);
    // The next start finds nothing and starts empty.
    assert!(load(&path).unwrap().is_none());

    // Cut right after the header: the header parses, the records it announces are missing.
    save(&path, &store.to_snapshot()).unwrap();
    let bytes = fs::read(&path).unwrap();
    let header_end = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    fs::write(&path, &bytes[..header_end]).unwrap();
    let err = load(&path).expect_err("cut after the header");
    assert!(err.to_string().contains("cut short"), "{err}");

    fs::write(&path, b"garbage without a header").unwrap();
    assert!(matches!(load(&path), Err(SnapshotError::Corrupt { .. })));
}

#[test]
fn a_snapshot_from_a_newer_version_is_moved_aside() {
    let dir = temp_dir("newer");
    let path = dir.join("fleet.snapshot");
    let mut snapshot = fleet_store().to_snapshot();
    snapshot.version = 99;
    save(&path, &snapshot).unwrap();
    let err = load(&path).expect_err("newer version");
    assert!(
        matches!(
            err,
            SnapshotError::NewerVersion {
                found: 99,
                moved_to: Some(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("newer vtriage"), "{err}");
    assert_eq!(moved_aside(&dir).len(), 1);
}

#[test]
fn a_snapshot_from_an_older_version_is_moved_aside_with_its_own_message() {
    let dir = temp_dir("older");
    let path = dir.join("fleet.snapshot");
    fs::write(
        &path,
        "{\"format\":\"vtriage-snapshot\",\"version\":1,\"saved_at\":\"2026-11-01T00:00:00Z\",\"count\":1}\n\
         {\"vehicle_id\":\"v1\",\"user_id\":\"u1\",\"has_token\":true,\"diagnosis\":{}}\n",
    )
    .unwrap();
    let err = load(&path).expect_err("older version");
    assert!(
        matches!(
            err,
            SnapshotError::OlderVersion {
                found: 1,
                moved_to: Some(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("older vtriage"), "{err}");
    assert_eq!(moved_aside(&dir).len(), 1);
}

#[test]
fn a_snapshot_packed_with_another_dictionary_is_moved_aside() {
    let dir = temp_dir("dictionary");
    let path = dir.join("fleet.snapshot");
    save(&path, &fleet_store().to_snapshot()).unwrap();
    let bytes = fs::read(&path).unwrap();
    let header_end = bytes.iter().position(|&b| b == b'\n').unwrap();
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[..header_end]).unwrap();
    header["dictionary"] = serde_json::json!(12345);
    let mut changed = serde_json::to_vec(&header).unwrap();
    changed.extend_from_slice(&bytes[header_end..]);
    fs::write(&path, changed).unwrap();
    let err = load(&path).expect_err("another dictionary");
    assert!(err.to_string().contains("another dictionary"), "{err}");
    assert_eq!(moved_aside(&dir).len(), 1);
}

#[test]
fn an_unwritable_folder_gives_an_error_not_a_panic() {
    let dir = temp_dir("readonly");
    let snapshot = fleet_store().to_snapshot();
    // A file where the folder should be: fails for every user, root included.
    let blocker = dir.join("not-a-folder");
    fs::write(&blocker, b"x").unwrap();
    let err = save(&blocker.join("fleet.snapshot"), &snapshot).expect_err("parent is a file");
    assert!(matches!(err, SnapshotError::Io { .. }), "{err}");
    assert!(err.to_string().contains("writable"), "{err}");

    // A read-only folder, where permissions apply to this user (not to root).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = dir.join("ro");
        fs::create_dir(&ro).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        let enforced = fs::write(ro.join("probe"), b"x").is_err();
        if enforced {
            let err = save(&ro.join("fleet.snapshot"), &snapshot).expect_err("read-only folder");
            assert!(matches!(err, SnapshotError::Io { .. }), "{err}");
        }
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn an_empty_store_is_not_written_over_a_good_snapshot() {
    let dir = temp_dir("empty");
    let path = dir.join("fleet.snapshot");
    save(&path, &fleet_store().to_snapshot()).unwrap();
    let empty = Store::new(diagnoser()).to_snapshot();
    assert!(matches!(
        save(&path, &empty),
        Err(SnapshotError::Empty { .. })
    ));
    assert_eq!(load(&path).unwrap().map(|s| s.records.len()), Some(6));
    // Unless forced.
    save_forced(&path, &empty).unwrap();
    assert_eq!(load(&path).unwrap().map(|s| s.records.len()), Some(0));
}

#[test]
fn restoring_into_a_listed_fleet_fills_unprobed_vehicles_only() {
    let saved: Snapshot = fleet_store().to_snapshot();
    let mut store = Store::new(diagnoser());
    vtriage::feed::apply(
        &mut store,
        &listed(vec![
            connection("veh-a", "user-1", true),
            connection("veh-b", "user-1", true),
        ]),
        now(),
    );
    probe(&mut store, "veh-b", "user-1", Outcome::Asleep, now());
    store.restore(saved);
    assert_eq!(store.len(), 2, "the listing decides which vehicles exist");
    let a = store.vehicle("veh-a").unwrap();
    assert_eq!(a.verdict.status, Status::Blocked);
    assert!(a.stale);
    let b = store.vehicle("veh-b").unwrap();
    assert_eq!(
        b.verdict.status,
        Status::Degraded,
        "live probe wins over the snapshot"
    );
    assert!(!b.stale);
    assert_eq!(store.counts().status(Status::Blocked), 1);
}

#[test]
fn a_large_snapshot_round_trips_through_parallel_chunks_and_a_damaged_byte_is_caught() {
    let dir = temp_dir("large");
    let path = dir.join("fleet.snapshot");
    let mut store = Store::new(diagnoser());
    let n = 25_000;
    vtriage::feed::apply(
        &mut store,
        &listed(
            (0..n)
                .map(|i| connection(&format!("v{i:05}"), &format!("u{i}"), i % 5 != 0))
                .collect(),
        ),
        now(),
    );
    probe(
        &mut store,
        "v24999",
        "u24999",
        Outcome::VirtualKeyRequired,
        now(),
    );
    let snapshot = store.to_snapshot();
    save(&path, &snapshot).unwrap();
    let loaded = load(&path).unwrap().expect("a snapshot");
    assert_eq!(loaded.records.len(), n);
    assert_eq!(
        loaded
            .records
            .iter()
            .map(|r| &r.vehicle_id)
            .collect::<Vec<_>>(),
        snapshot
            .records
            .iter()
            .map(|r| &r.vehicle_id)
            .collect::<Vec<_>>(),
        "order kept across chunks"
    );
    assert_eq!(loaded.records[n - 1].verdict.status, Status::Blocked);

    // One flipped byte in the second chunk's records: its checksum names it.
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x20;
    fs::write(&path, &bytes).unwrap();
    let err = load(&path).expect_err("damaged byte");
    assert!(err.to_string().contains("fails its checksum"), "{err}");
}

/// A snapshot whose header line is replaced by `header`, body kept.
fn with_header(dir: &Path, header: serde_json::Value) -> PathBuf {
    let path = dir.join("fleet.snapshot");
    save(&path, &fleet_store().to_snapshot()).unwrap();
    let bytes = fs::read(&path).unwrap();
    let split = bytes.iter().position(|&b| b == b'\n').unwrap();
    let mut original: serde_json::Value = serde_json::from_slice(&bytes[..split]).unwrap();
    if let (Some(o), Some(h)) = (original.as_object_mut(), header.as_object()) {
        for (k, v) in h {
            o.insert(k.clone(), v.clone());
        }
    }
    let mut crafted = serde_json::to_vec(&original).unwrap();
    crafted.extend_from_slice(&bytes[split..]);
    fs::write(&path, crafted).unwrap();
    path
}

#[test]
fn crafted_snapshot_headers_are_moved_aside_without_a_panic_or_a_huge_allocation() {
    let body_len = {
        let dir = temp_dir("crafted-len");
        let path = dir.join("fleet.snapshot");
        save(&path, &fleet_store().to_snapshot()).unwrap();
        let bytes = fs::read(&path).unwrap();
        bytes.len() - bytes.iter().position(|&b| b == b'\n').unwrap() - 1
    };
    let huge = usize::MAX;
    let cases = [
        (
            "count beyond memory",
            serde_json::json!({"count": huge, "chunks": [{"records": huge, "bytes": body_len, "crc32": 0}]}),
        ),
        (
            "byte lengths that wrap around",
            serde_json::json!({"chunks": [{"records": 1, "bytes": huge, "crc32": 0}, {"records": 1, "bytes": body_len + 1, "crc32": 0}], "count": 2}),
        ),
        (
            "record counts that wrap around",
            serde_json::json!({"chunks": [{"records": huge, "bytes": body_len, "crc32": 0}, {"records": 3, "bytes": 0, "crc32": 0}], "count": 2}),
        ),
        (
            "a thread per chunk",
            serde_json::json!({"chunks": vec![serde_json::json!({"records": 0, "bytes": 0, "crc32": 0}); 100_000], "count": 0}),
        ),
        (
            "a header that is not an object",
            serde_json::json!({"chunks": "many"}),
        ),
        ("a negative count", serde_json::json!({"count": -1})),
        (
            "a tag table of the wrong shape",
            serde_json::json!({"tags": [1, 2, 3]}),
        ),
    ];
    for (what, header) in cases {
        let dir = temp_dir("crafted");
        let path = with_header(&dir, header);
        let err = load(&path).expect_err(what);
        assert!(
            matches!(
                err,
                SnapshotError::Corrupt {
                    moved_to: Some(_),
                    ..
                }
            ),
            "{what}: {err}"
        );
        assert!(!err.to_string().contains('\n'), "{what}: one line: {err}");
        assert_eq!(moved_aside(&dir).len(), 1, "{what}");
    }
}

#[test]
fn leftover_temporary_snapshot_files_are_removed_at_start_but_not_a_save_under_way() {
    let dir = temp_dir("leftovers");
    let path = dir.join("fleet.snapshot");
    let old = dir.join(".fleet.snapshot.tmp-4242");
    let fresh = dir.join(".fleet.snapshot.tmp-4343");
    fs::write(&old, b"half a snapshot").unwrap();
    fs::write(&fresh, b"being written").unwrap();
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    assert!(load(&path).unwrap().is_none());
    assert!(!old.exists(), "a leftover from a dead save is removed");
    assert!(fresh.exists(), "a save under way is left alone");
}

#[cfg(unix)]
#[test]
fn snapshots_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("private");
    let path = dir.join("state").join("fleet.snapshot");
    save(&path, &fleet_store().to_snapshot()).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
}
