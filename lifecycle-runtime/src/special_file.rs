//! Writing to a path that may be something other than a regular file (a
//! FIFO a supervisor reads, a character device such as the kubelet's
//! termination log in some runtimes) without ever blocking: the
//! termination message and the address file both go through here.
//!
//! On unix the file is opened with `O_NONBLOCK` (a FIFO nobody reads fails
//! at once instead of waiting for a reader) and `O_NOCTTY`. Windows has
//! neither FIFOs in its file system nor terminals among its files: a plain
//! open there cannot block, and every path is a regular file or a
//! directory.

use std::fs::{File, FileType, OpenOptions};
use std::io;
use std::path::Path;

/// Opens `path` for writing, created when `create`, appended to when
/// `append`, without blocking. A FIFO nobody reads is an error that says
/// so.
pub(crate) fn open_for_writing(path: &Path, create: bool, append: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(create).append(append);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let opened = options.open(path);
    #[cfg(unix)]
    let opened = opened.map_err(|error| match error.raw_os_error() {
        Some(libc::ENXIO) => io::Error::new(
            error.kind(),
            format!("{error}: a FIFO nobody reads, or a device that is not there"),
        ),
        _ => error,
    });
    opened
}

/// Whether `kind` is a FIFO (never on Windows).
pub(crate) fn is_fifo(kind: FileType) -> bool {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileTypeExt::is_fifo(&kind)
    }
    #[cfg(not(unix))]
    {
        let _ = kind;
        false
    }
}

/// Whether `kind` is a character device (never on Windows).
pub(crate) fn is_char_device(kind: FileType) -> bool {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileTypeExt::is_char_device(&kind)
    }
    #[cfg(not(unix))]
    {
        let _ = kind;
        false
    }
}

/// What `kind` is, for an error that says why it was not written.
pub(crate) fn describe(kind: FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_block_device() {
            return "a block device";
        }
    }
    if is_fifo(kind) {
        "a FIFO"
    } else if kind.is_dir() {
        "a directory"
    } else if is_char_device(kind) {
        "a character device"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "a file of another kind"
    }
}
