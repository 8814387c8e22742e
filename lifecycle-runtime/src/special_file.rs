//! Writing to a path that may be something other than a regular file (a
//! FIFO a supervisor reads, a character device such as the kubelet's
//! termination log in some runtimes) without ever blocking: the
//! termination message and the address file both go through here.
//!
//! On unix the file is opened with `O_NONBLOCK` (a FIFO nobody reads fails
//! at once instead of waiting for a reader) and `O_NOCTTY`. On Windows a
//! plain open cannot block; what std calls a file there is anything but a
//! directory or a link, devices (`NUL`) and named pipes included, which
//! then fail at the truncation, reported, never holding up the exit.

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

/// What an opened path is, as far as writing to it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Regular,
    #[cfg(unix)]
    Fifo,
    #[cfg(unix)]
    CharDevice,
    /// Anything else, named for an error that says why it was not written.
    Other(&'static str),
}

impl Kind {
    pub(crate) fn of(file_type: FileType) -> Kind {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if file_type.is_fifo() {
                return Kind::Fifo;
            }
            if file_type.is_char_device() {
                return Kind::CharDevice;
            }
            if file_type.is_socket() {
                return Kind::Other("a socket");
            }
            if file_type.is_block_device() {
                return Kind::Other("a block device");
            }
        }
        if file_type.is_file() {
            Kind::Regular
        } else if file_type.is_dir() {
            Kind::Other("a directory")
        } else {
            Kind::Other("a file of another kind")
        }
    }

    /// The kind as an error names it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Regular => "a regular file",
            #[cfg(unix)]
            Kind::Fifo => "a FIFO",
            #[cfg(unix)]
            Kind::CharDevice => "a character device",
            Kind::Other(name) => name,
        }
    }
}
