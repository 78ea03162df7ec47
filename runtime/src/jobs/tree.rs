//! Walking and removing folders a plugin wrote, however it shaped them.
//!
//! A plugin controls everything under `/output`: thousands of nested
//! folders, names with control characters or backslashes, over-long names,
//! entries vanishing mid-walk. Everything here works relative to directory
//! handles (`openat`, `unlinkat`, `renameat`), never through full paths, so
//! no tree is too deep to walk or to remove (no `PATH_MAX`), and the open
//! descriptors stay bounded by the walk's depth limit.
//!
//! - [`collect`] lists and hashes the outputs, refusing a tree deeper than
//!   [`MAX_DEPTH`], with more entries or bytes than the job's quota, a name
//!   that is not a plain printable UTF-8 name, or anything but regular files
//!   and folders; the error names the entry (escaped).
//! - [`remove_all`] deletes any tree with at most two descriptors open at a
//!   time, by moving the children of a folder up before deleting it.

use std::path::Path;

use crate::jobs::sandbox::OutputFile;
use pictor_protocol::digest::Sha256Digest;

/// Deepest folder nesting accepted in `/output` (`a/b/c.txt` is depth 2).
pub const MAX_DEPTH: usize = 32;

/// Longest relative output path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;

/// Longest single file or folder name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// What an output walk may find before it refuses the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeLimits {
    /// Files and folders in all.
    pub entries: u64,
    /// Sum of apparent file sizes.
    pub bytes: u64,
}

/// Why an output tree was refused.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// More than [`MAX_DEPTH`] nested folders.
    #[error("`{path}` is nested {depth} folders deep in /output; the limit is {MAX_DEPTH}")]
    TooDeep {
        /// The entry, escaped.
        path: String,
        /// Its depth.
        depth: usize,
    },
    /// A name the network could not carry safely.
    #[error("output name `{path}` is refused: {why}")]
    BadName {
        /// The entry, escaped.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A symlink, device, socket or FIFO (removed).
    #[error("the plugin created `{0}` in /output, which is not a regular file or folder (removed)")]
    NotRegular(String),
    /// More entries or bytes than the quota.
    #[error("output quota exceeded: {0}")]
    Quota(String),
    /// The walk itself failed.
    #[error("cannot read /output at `{path}`: {source}")]
    Io {
        /// Where, escaped.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// `name` as it may appear in a message: control characters, quotes and
/// backslashes escaped, invalid UTF-8 shown as `\x..`, at most 200 bytes.
pub fn escape_name(name: &[u8]) -> String {
    let text = String::from_utf8_lossy(name);
    let mut out = String::new();
    for c in text.chars() {
        if out.len() >= 200 {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}

/// Checks one name: UTF-8, printable, no backslash, not too long.
fn check_name(name: &[u8]) -> Result<&str, &'static str> {
    if name.len() > MAX_NAME_BYTES {
        return Err("longer than 255 bytes");
    }
    let text = std::str::from_utf8(name).map_err(|_| "not valid UTF-8")?;
    if text.chars().any(char::is_control) {
        return Err("it contains control characters");
    }
    if text.contains('\\') {
        return Err("it contains a backslash");
    }
    Ok(text)
}

#[cfg(unix)]
mod imp {
    use std::ffi::{CStr, CString};
    use std::os::fd::OwnedFd;
    use std::path::Path;
    use std::sync::Arc;

    use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags};

    use super::*;

    fn open_dir(dir: impl rustix::fd::AsFd, name: &CStr) -> rustix::io::Result<OwnedFd> {
        rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    }

    /// Names in `dir`, without `.` and `..`.
    fn names(dir: &OwnedFd) -> rustix::io::Result<Vec<(CString, FileType)>> {
        let mut names = Vec::new();
        for entry in Dir::read_from(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_bytes() != b"." && name.to_bytes() != b".." {
                names.push((name.to_owned(), entry.file_type()));
            }
        }
        Ok(names)
    }

    pub fn collect(root: &Path, limits: TreeLimits) -> Result<Vec<OutputFile>, TreeError> {
        let io = |path: &str| {
            let path = path.to_string();
            move |e: rustix::io::Errno| TreeError::Io {
                path,
                source: e.into(),
            }
        };
        let root_fd = rustix::fs::openat(
            CWD,
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io("."))?;
        let (mut entries, mut bytes) = (0u64, 0u64);
        let mut files = Vec::new();
        // Folders still to read: their handle (shared by their pending
        // children), relative path and depth.
        let mut pending: Vec<(Arc<OwnedFd>, String, usize)> =
            vec![(Arc::new(root_fd), String::new(), 0)];
        while let Some((dir, prefix, depth)) = pending.pop() {
            let shown = if prefix.is_empty() {
                "."
            } else {
                prefix.as_str()
            };
            for (name, kind) in names(&dir).map_err(io(shown))? {
                let raw = name.to_bytes();
                let escaped = || {
                    if prefix.is_empty() {
                        escape_name(raw)
                    } else {
                        format!("{}/{}", prefix, escape_name(raw))
                    }
                };
                let text = check_name(raw).map_err(|why| TreeError::BadName {
                    path: escaped(),
                    why,
                })?;
                let relative = if prefix.is_empty() {
                    text.to_string()
                } else {
                    format!("{prefix}/{text}")
                };
                if relative.len() > MAX_PATH_BYTES {
                    return Err(TreeError::BadName {
                        path: escape_name(relative.as_bytes()),
                        why: "the path is longer than 1024 bytes",
                    });
                }
                entries += 1;
                if entries > limits.entries {
                    return Err(TreeError::Quota(format!(
                        "more than {} files and folders created, the limit is {}",
                        limits.entries, limits.entries
                    )));
                }
                let stat = rustix::fs::statat(&*dir, &name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io(&relative))?;
                let kind = if kind == FileType::Unknown {
                    FileType::from_raw_mode(stat.st_mode)
                } else {
                    kind
                };
                match kind {
                    FileType::Directory => {
                        if depth + 1 > MAX_DEPTH {
                            return Err(TreeError::TooDeep {
                                path: relative,
                                depth: depth + 1,
                            });
                        }
                        let child = open_dir(&*dir, &name).map_err(io(&relative))?;
                        pending.push((Arc::new(child), relative, depth + 1));
                    }
                    FileType::RegularFile => {
                        let size = u64::try_from(stat.st_size).unwrap_or(u64::MAX);
                        bytes = bytes.saturating_add(size);
                        if bytes > limits.bytes {
                            return Err(TreeError::Quota(format!(
                                "{bytes} bytes written, the limit is {} bytes",
                                limits.bytes
                            )));
                        }
                        let fd = rustix::fs::openat(
                            &*dir,
                            &name,
                            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                        )
                        .map_err(io(&relative))?;
                        let file = std::fs::File::from(fd);
                        let (sha256, size) =
                            Sha256Digest::of_reader(&file).map_err(|source| TreeError::Io {
                                path: relative.clone(),
                                source,
                            })?;
                        // On disk before its digest is recorded anywhere.
                        file.sync_all().map_err(|source| TreeError::Io {
                            path: relative.clone(),
                            source,
                        })?;
                        files.push(OutputFile {
                            path: relative,
                            size,
                            sha256,
                        });
                    }
                    _ => {
                        let _ = rustix::fs::unlinkat(&*dir, &name, AtFlags::empty());
                        return Err(TreeError::NotRegular(relative));
                    }
                }
            }
            rustix::fs::fsync(&*dir).map_err(io(shown))?;
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    pub fn disk_usage(root: &Path) -> u64 {
        let Ok(root_fd) = rustix::fs::openat(
            CWD,
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return 0;
        };
        let mut total = 0u64;
        let mut pending: Vec<(Arc<OwnedFd>, usize)> = vec![(Arc::new(root_fd), 0)];
        while let Some((dir, depth)) = pending.pop() {
            let Ok(listed) = names(&dir) else { continue };
            for (name, _) in listed {
                let Ok(stat) = rustix::fs::statat(&*dir, &name, AtFlags::SYMLINK_NOFOLLOW) else {
                    continue;
                };
                total = total.saturating_add(
                    u64::try_from(stat.st_blocks)
                        .unwrap_or(0)
                        .saturating_mul(512),
                );
                if FileType::from_raw_mode(stat.st_mode) == FileType::Directory
                    && depth < USAGE_DEPTH
                    && let Ok(child) = open_dir(&*dir, &name)
                {
                    pending.push((Arc::new(child), depth + 1));
                }
            }
        }
        total
    }

    pub fn remove_all(path: &Path) -> std::io::Result<()> {
        let meta = match path.symlink_metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if !meta.is_dir() {
            return std::fs::remove_file(path);
        }
        let root = rustix::fs::openat(
            CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        empty(&root)?;
        drop(root);
        std::fs::remove_dir(path)
    }

    /// Deletes everything in `root`: files at once, folders once empty; the
    /// children of a non-empty folder are first moved up into `root` under
    /// fresh names, so every entry is moved at most once and no deeper
    /// handle than one child is ever open.
    fn empty(root: &OwnedFd) -> std::io::Result<()> {
        let mut fresh = 0u64;
        loop {
            let listed = names(root)?;
            if listed.is_empty() {
                return Ok(());
            }
            for (name, kind) in listed {
                if kind != FileType::Directory && kind != FileType::Unknown {
                    rustix::fs::unlinkat(root, &name, AtFlags::empty())?;
                    continue;
                }
                match rustix::fs::unlinkat(root, &name, AtFlags::REMOVEDIR) {
                    Ok(()) => continue,
                    Err(rustix::io::Errno::NOTDIR) => {
                        rustix::fs::unlinkat(root, &name, AtFlags::empty())?;
                        continue;
                    }
                    Err(rustix::io::Errno::NOTEMPTY | rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                let child = open_dir(root, &name)?;
                for (grandchild, _) in names(&child)? {
                    loop {
                        fresh += 1;
                        let target = CString::new(format!(".pictor-rm-{fresh}"))
                            .map_err(std::io::Error::other)?;
                        match rustix::fs::renameat(&child, &grandchild, root, &target) {
                            Ok(()) => break,
                            Err(rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY) => continue,
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                drop(child);
                rustix::fs::unlinkat(root, &name, AtFlags::REMOVEDIR)?;
            }
        }
    }
}

#[cfg(not(unix))]
mod imp {
    use super::*;

    pub fn collect(_root: &Path, _limits: TreeLimits) -> Result<Vec<OutputFile>, TreeError> {
        Err(TreeError::Io {
            path: ".".into(),
            source: std::io::Error::other("output collection needs a Unix host"),
        })
    }

    pub fn remove_all(path: &Path) -> std::io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    pub fn disk_usage(_root: &Path) -> u64 {
        0
    }
}

/// Deepest folder [`disk_usage`] descends into (a spool holds no deeper
/// tree for long: refused outputs are removed).
const USAGE_DEPTH: usize = 128;

/// Bytes `root` takes on disk (allocated blocks of every entry, links not
/// followed), best effort: entries that vanish or cannot be read count 0.
pub fn disk_usage(root: &Path) -> u64 {
    imp::disk_usage(root)
}

/// Lists and hashes every regular file under `root`, sorted by path.
/// Refuses (and names) the first entry that is too deep, badly named, not
/// a regular file or folder (which is removed), or over `limits`.
pub fn collect(root: &Path, limits: TreeLimits) -> Result<Vec<OutputFile>, TreeError> {
    imp::collect(root, limits)
}

/// Removes `path` and everything below it, however deep, without following
/// links; a missing `path` is fine.
pub fn remove_all(path: &Path) -> std::io::Result<()> {
    imp::remove_all(path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    const LIMITS: TreeLimits = TreeLimits {
        entries: 100_000,
        bytes: 1 << 30,
    };

    /// Makes `depth` nested folders under `root` through handles (a path
    /// this deep cannot be named from the root) and a file at the bottom.
    fn deep_tree(root: &Path, depth: usize, name: &str) -> std::io::Result<()> {
        deep_file(root, depth, name, b"deep")
    }

    /// [`deep_tree`] with `content` in the file at the bottom.
    fn deep_file(root: &Path, depth: usize, name: &str, content: &[u8]) -> std::io::Result<()> {
        use rustix::fs::{Mode, OFlags};
        let mut dir = rustix::fs::openat(
            rustix::fs::CWD,
            root,
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )?;
        for _ in 0..depth {
            rustix::fs::mkdirat(&dir, name, Mode::RWXU)?;
            dir = rustix::fs::openat(
                &dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty(),
            )?;
        }
        let file = rustix::fs::openat(
            &dir,
            "bottom",
            OFlags::WRONLY | OFlags::CREATE,
            Mode::RUSR | Mode::WUSR,
        )?;
        let mut rest = content;
        while !rest.is_empty() {
            let n = rustix::io::write(&file, rest)?;
            rest = &rest[n..];
        }
        Ok(())
    }

    #[test]
    fn a_name_of_256_bytes_is_refused_and_255_is_fine() {
        assert_eq!(check_name(&[b'n'; MAX_NAME_BYTES]), Ok(&*"n".repeat(255)));
        assert_eq!(
            check_name(&[b'n'; MAX_NAME_BYTES + 1]),
            Err("longer than 255 bytes")
        );
        // Multi-byte UTF-8 counts bytes, not characters: 128 × 2 bytes.
        assert_eq!(
            check_name("é".repeat(128).as_bytes()),
            Err("longer than 255 bytes")
        );
    }

    #[test]
    fn disk_usage_counts_down_to_its_depth_bound_and_no_further()
    -> Result<(), Box<dyn std::error::Error>> {
        let megabyte = vec![7u8; 1 << 20];
        let shallow = tempfile::tempdir()?;
        deep_file(shallow.path(), USAGE_DEPTH, "d", &megabyte)?;
        let counted = disk_usage(shallow.path());
        assert!(
            counted >= 1 << 20,
            "a file at depth {USAGE_DEPTH} counts: {counted}"
        );

        let deep = tempfile::tempdir()?;
        deep_file(deep.path(), USAGE_DEPTH + 1, "d", &megabyte)?;
        let counted = disk_usage(deep.path());
        assert!(
            counted < 1 << 20,
            "a file below depth {USAGE_DEPTH} is not counted: {counted}"
        );
        assert!(counted > 0, "the folders above it still count");
        Ok(())
    }

    #[test]
    fn a_tree_deeper_than_path_max_is_refused_by_name_and_removed()
    -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let out = root.path().join("output");
        std::fs::create_dir(&out)?;
        deep_tree(&out, 5000, "d")?;
        let err = collect(&out, LIMITS).unwrap_err();
        assert!(matches!(err, TreeError::TooDeep { depth: 33, .. }), "{err}");
        assert!(err.to_string().contains("the limit is 32"), "{err}");
        remove_all(&out)?;
        assert!(!out.exists());

        // Long names reach the path limit before the depth limit.
        std::fs::create_dir(&out)?;
        deep_tree(&out, 30, &"n".repeat(200))?;
        let err = collect(&out, LIMITS).unwrap_err();
        assert!(err.to_string().contains("longer than 1024 bytes"), "{err}");
        remove_all(&out)?;
        Ok(())
    }

    #[test]
    fn strange_names_are_refused_escaped() -> Result<(), Box<dyn std::error::Error>> {
        for (name, why) in [
            ("a\u{1b}[2Jb", "control"),
            ("back\\slash", "backslash"),
            ("bell\u{7}", "control"),
        ] {
            let out = tempfile::tempdir()?;
            std::fs::write(out.path().join(name), "x")?;
            let err = collect(out.path(), LIMITS).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(why), "{text}");
            assert!(
                !text.contains('\u{1b}') && !text.contains('\u{7}'),
                "unescaped: {text:?}"
            );
        }
        let out = tempfile::tempdir()?;
        std::fs::write(
            out.path()
                .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"bad\xff")),
            "x",
        )?;
        let err = collect(out.path(), LIMITS).unwrap_err();
        assert!(err.to_string().contains("not valid UTF-8"), "{err}");
        Ok(())
    }

    #[test]
    fn outputs_are_listed_sorted_with_digests_and_quotas_hold()
    -> Result<(), Box<dyn std::error::Error>> {
        let out = tempfile::tempdir()?;
        std::fs::create_dir_all(out.path().join("b/c"))?;
        std::fs::write(out.path().join("b/c/z"), "zz")?;
        std::fs::write(out.path().join("a"), "abc")?;
        let files = collect(out.path(), LIMITS)?;
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a", "b/c/z"]);
        assert_eq!(files[0].sha256, Sha256Digest::of(b"abc"));
        let err = collect(
            out.path(),
            TreeLimits {
                entries: 3,
                bytes: 1 << 20,
            },
        )
        .unwrap_err();
        assert!(matches!(err, TreeError::Quota(_)), "{err}");
        let err = collect(
            out.path(),
            TreeLimits {
                entries: 10,
                bytes: 4,
            },
        )
        .unwrap_err();
        assert!(matches!(err, TreeError::Quota(_)), "{err}");
        Ok(())
    }

    #[test]
    fn sparse_files_count_at_full_length_and_links_are_removed_not_followed()
    -> Result<(), Box<dyn std::error::Error>> {
        let out = tempfile::tempdir()?;
        std::fs::File::create(out.path().join("sparse"))?.set_len(10 << 30)?;
        let err = collect(out.path(), LIMITS).unwrap_err();
        assert!(matches!(err, TreeError::Quota(_)), "{err}");

        let out = tempfile::tempdir()?;
        std::fs::create_dir(out.path().join("d"))?;
        std::os::unix::fs::symlink("/etc/passwd", out.path().join("d/leak"))?;
        let err = collect(out.path(), LIMITS).unwrap_err();
        assert!(
            matches!(err, TreeError::NotRegular(ref p) if p == "d/leak"),
            "{err}"
        );
        assert!(
            out.path().join("d/leak").symlink_metadata().is_err(),
            "the link must be removed"
        );
        Ok(())
    }

    #[test]
    fn remove_all_takes_wide_and_deep_trees_and_never_follows_links()
    -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let victim = root.path().join("victim");
        std::fs::create_dir(&victim)?;
        std::fs::write(victim.join("keep"), "owner's")?;
        let tree = root.path().join("tree");
        std::fs::create_dir(&tree)?;
        for i in 0..50 {
            std::fs::create_dir_all(tree.join(format!("w{i}/x/y")))?;
            std::fs::write(tree.join(format!("w{i}/x/y/f")), "f")?;
        }
        std::os::unix::fs::symlink(&victim, tree.join("link"))?;
        deep_tree(&tree, 3000, &"d".repeat(200))?;
        remove_all(&tree)?;
        assert!(!tree.exists());
        assert!(victim.join("keep").exists(), "a link's target must survive");
        remove_all(&tree)?;
        Ok(())
    }
}
