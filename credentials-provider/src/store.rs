//! The token store: a directory only its owner may enter (0700) holding files only the owner
//! may read (0600), each written atomically.
//!
//! A write goes to a new temporary file in the same directory (created 0600, never following
//! a link), is flushed to disk (`fsync`), then renamed over the target, and the directory is
//! flushed too. A reader sees the old file or the new one, never a half-written token, even if
//! the process or the machine stops in the middle.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Mode of the token directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file written here (tokens and the MCP configs that carry them).
pub const FILE_MODE: u32 = 0o600;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file or the directory could not be created, written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A stored file is not what this program writes.
    #[error("{} is not a valid token file ({reason}); remove it or run with --force", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },
    /// A path exists but is not a directory.
    #[error("{} exists and is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The token directory.
#[derive(Debug, Clone)]
pub struct TokenStore {
    dir: PathBuf,
}

impl TokenStore {
    /// Opens `dir`, creating it (and missing parents) with mode 0700. An existing directory
    /// that others may enter is restricted to 0700 (and [`TokenStore::open`] says so in the
    /// returned note).
    pub fn open(dir: &Path) -> Result<(TokenStore, Option<String>), StoreError> {
        let note = ensure_private_dir(dir)?;
        Ok((
            TokenStore {
                dir: dir.to_path_buf(),
            },
            note,
        ))
    }

    /// The path of `name` in the store.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `value` as pretty JSON to `name`, atomically, mode 0600.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<PathBuf, StoreError> {
        let path = self.path(name);
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|err| StoreError::Corrupt {
            path: path.clone(),
            reason: err.to_string(),
        })?;
        bytes.push(b'\n');
        write_atomic(&path, &bytes)?;
        Ok(path)
    }

    /// Reads `name` as JSON; `None` when the file does not exist.
    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        let path = self.path(name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io_error(&path)(err)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|err| StoreError::Corrupt {
                path,
                reason: err.to_string(),
            })
    }
}

/// Creates `dir` with mode 0700 if missing; restricts an existing one to 0700. Returns a note
/// when it had to restrict it.
pub fn ensure_private_dir(dir: &Path) -> Result<Option<String>, StoreError> {
    match fs::metadata(dir) {
        Ok(metadata) if !metadata.is_dir() => {
            return Err(StoreError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        Ok(metadata) => {
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
                    .map_err(io_error(dir))?;
                return Ok(Some(format!(
                    "{} was mode {mode:03o}; restricted it to {DIR_MODE:03o}",
                    dir.display()
                )));
            }
            return Ok(None);
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_error(dir)(err)),
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(io_error(dir))?;
    // The umask can only take bits away; set the mode exactly anyway.
    fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)).map_err(io_error(dir))?;
    Ok(None)
}

/// Replaces `path` with `bytes` atomically: temporary file (0600, same directory), `fsync`,
/// rename, `fsync` of the directory. On failure the temporary file is removed and `path` is
/// left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        random_hex()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true) // never follows a link planted at the temporary name
            .mode(FILE_MODE)
            .open(&temp)
            .map_err(io_error(&temp))?;
        file.set_permissions(Permissions::from_mode(FILE_MODE))
            .map_err(io_error(&temp))?;
        file.write_all(bytes).map_err(io_error(&temp))?;
        file.sync_all().map_err(io_error(&temp))?;
        drop(file);
        fs::rename(&temp, path).map_err(io_error(path))?;
        // The rename itself is durable only once the directory is.
        fs::File::open(&dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(&dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    // Uniqueness, not secrecy: create_new refuses a clash anyway.
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_store_directory_is_created_0700_and_files_0600() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("nested/.oauth-tokens");
        let (store, note) = TokenStore::open(&dir).unwrap();
        assert!(note.is_none());
        assert_eq!(mode(&dir), 0o700);
        let path = store
            .write_json("ingress.json", &serde_json::json!({"access_token": "t"}))
            .unwrap();
        assert_eq!(mode(&path), 0o600);
        let back: serde_json::Value = store.read_json("ingress.json").unwrap().unwrap();
        assert_eq!(back["access_token"], "t");
        assert!(
            store
                .read_json::<serde_json::Value>("absent.json")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn an_open_directory_and_a_readable_file_are_tightened() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("tokens");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        let file = dir.join("ingress.json");
        fs::write(&file, b"{}").unwrap();
        fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();
        let (store, note) = TokenStore::open(&dir).unwrap();
        assert!(note.unwrap().contains("was mode 755"));
        assert_eq!(mode(&dir), 0o700);
        store.write_json("ingress.json", &1).unwrap();
        assert_eq!(mode(&file), 0o600);
    }

    #[test]
    fn a_write_replaces_the_file_by_rename_and_leaves_no_temporary_file() {
        use std::os::unix::fs::MetadataExt;
        let temp = tempfile::tempdir().unwrap();
        let (store, _) = TokenStore::open(temp.path()).unwrap();
        let path = store.write_json("a.json", &"first").unwrap();
        let first_inode = fs::metadata(&path).unwrap().ino();
        // A second name for the old file: an in-place rewrite would change it too.
        let old_link = temp.path().join("old-link");
        fs::hard_link(&path, &old_link).unwrap();
        store.write_json("a.json", &"second").unwrap();
        assert_ne!(fs::metadata(&path).unwrap().ino(), first_inode);
        assert_eq!(fs::read_to_string(&old_link).unwrap(), "\"first\"\n");
        assert_eq!(fs::read_to_string(&path).unwrap(), "\"second\"\n");
        let leftovers: Vec<_> = fs::read_dir(temp.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn readers_never_see_a_half_written_token() {
        let temp = tempfile::tempdir().unwrap();
        let (store, _) = TokenStore::open(temp.path()).unwrap();
        let big = |n: usize| serde_json::json!({"n": n, "access_token": "x".repeat(256 * 1024)});
        store.write_json("t.json", &big(0)).unwrap();
        let path = store.path("t.json");
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut reads = 0u32;
                while !done.load(Ordering::Relaxed) {
                    let bytes = fs::read(&path).unwrap();
                    let value: serde_json::Value =
                        serde_json::from_slice(&bytes).unwrap_or_else(|err| {
                            panic!("partial file seen ({} bytes): {err}", bytes.len())
                        });
                    assert_eq!(value["access_token"].as_str().unwrap().len(), 256 * 1024);
                    reads += 1;
                }
                reads
            })
        };
        for n in 1..=60 {
            store.write_json("t.json", &big(n)).unwrap();
        }
        done.store(true, Ordering::Relaxed);
        let reads = reader.join().unwrap();
        assert!(reads > 0);
        let last: serde_json::Value = store.read_json("t.json").unwrap().unwrap();
        assert_eq!(last["n"], 60);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let temp = tempfile::tempdir().unwrap();
        let (store, _) = TokenStore::open(temp.path()).unwrap();
        store.write_json("a.json", &"old").unwrap();
        // The target is a directory now: the rename fails after the temporary file is written.
        let blocked = temp.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), b"x").unwrap();
        assert!(write_atomic(&blocked, b"new").is_err());
        assert_eq!(
            fs::read_to_string(store.path("a.json")).unwrap(),
            "\"old\"\n"
        );
        let leftovers = fs::read_dir(temp.path())
            .unwrap()
            .filter(|entry| {
                entry
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn a_corrupt_file_is_reported_with_its_path() {
        let temp = tempfile::tempdir().unwrap();
        let (store, _) = TokenStore::open(temp.path()).unwrap();
        fs::write(store.path("ingress.json"), b"{half").unwrap();
        let error = store
            .read_json::<serde_json::Value>("ingress.json")
            .expect_err("corrupt");
        assert!(
            error
                .to_string()
                .contains("ingress.json is not a valid token file")
        );
    }
}
