//! Files and folders that hold customer data (VINs, user ids, positions) or secrets: created
//! readable by the owner only (files 0600, folders 0700), and a warning for secret files others can read.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Creates `dir` and its missing parents; the folders it creates are owner-only (0700).
/// An existing leaf folder is tightened to 0700 too: it is ours and holds customer data.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    restrict(dir, 0o700)
}

/// Creates (or truncates) a file readable and writable by the owner only.
pub fn create_file(path: &Path) -> io::Result<File> {
    let file = options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    restrict(path, 0o600)?;
    Ok(file)
}

/// Opens a file for appending, creating it owner-only; an existing file is tightened to 0600.
pub fn append_file(path: &Path) -> io::Result<File> {
    let file = options().append(true).create(true).open(path)?;
    restrict(path, 0o600)?;
    Ok(file)
}

/// Opens a file for reading and writing without truncating it, creating it owner-only.
pub fn open_rw(path: &Path) -> io::Result<File> {
    let file = options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    restrict(path, 0o600)?;
    Ok(file)
}

fn options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current == mode {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// A warning when a file holding a secret (tokens, the management token) can be read by others.
#[cfg(unix)]
pub fn loose_permissions_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{}: readable by group or others (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )
    })
}

#[cfg(not(unix))]
pub fn loose_permissions_warning(_path: &Path) -> Option<String> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[test]
    fn new_folders_and_files_are_owner_only_whatever_the_umask() {
        let base = std::env::temp_dir().join(format!("vtriage-private-{}", std::process::id()));
        let dir = base.join("a").join("b");
        create_dir(&dir).expect("create");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&base.join("a")), 0o700);
        let file = dir.join("snapshot");
        drop(create_file(&file).expect("file"));
        assert_eq!(mode(&file), 0o600);
        let log = dir.join("log");
        std::fs::write(&log, "old").expect("write");
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        drop(append_file(&log).expect("append"));
        assert_eq!(mode(&log), 0o600, "an existing log is tightened");
        assert!(loose_permissions_warning(&log).is_none());
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let warning = loose_permissions_warning(&log).unwrap_or_default();
        assert!(warning.contains("chmod 600"), "{warning}");
        let _ = std::fs::remove_dir_all(&base);
    }
}
