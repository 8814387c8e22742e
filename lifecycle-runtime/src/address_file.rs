//! The address file (`LIFECYCLE_PROBE_ADDR_FILE`): where tools that start
//! the service on port 0 find its addresses without parsing logs. The
//! first line is the probe server's `IP:PORT`; then one
//! line `app IP:PORT` for each listener the application bound through
//! [`net::TcpListener`](crate::net::TcpListener), written as each binds.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::special_file::{self, Kind};

/// The addresses published so far, and where.
#[derive(Default)]
pub(crate) struct AddressFile {
    state: Mutex<Published>,
}

#[derive(Default)]
struct Published {
    path: Option<PathBuf>,
    probe: Option<SocketAddr>,
    app: Vec<SocketAddr>,
}

impl Published {
    fn text(&self) -> String {
        let mut text = String::new();
        if let Some(probe) = self.probe {
            text.push_str(&format!("{probe}\n"));
        }
        for app in &self.app {
            text.push_str(&format!("app {app}\n"));
        }
        text
    }
}

impl AddressFile {
    /// The probe server listens on `addr`: written to `path` (when set),
    /// with the application's addresses from then on.
    pub(crate) fn probe_listening(&self, path: Option<&Path>, addr: SocketAddr) -> io::Result<()> {
        let mut published = self.state.lock().unwrap_or_else(|p| p.into_inner());
        published.probe = Some(addr);
        published.path = path.map(Path::to_owned);
        match &published.path {
            Some(path) => {
                let text = published.text();
                publish(path, &text, &text)
            }
            None => Ok(()),
        }
    }

    /// The application bound a listener to `addr`. A failure to write it
    /// is logged, not fatal: the probe address was written there already.
    pub(crate) fn app_bound(&self, addr: SocketAddr) {
        let mut published = self.state.lock().unwrap_or_else(|p| p.into_inner());
        published.app.push(addr);
        if let Some(path) = &published.path {
            if let Err(error) = publish(path, &published.text(), &format!("app {addr}\n")) {
                tracing::warn!(
                    "cannot add the application's address {addr} to {}: {error}",
                    path.display()
                );
            }
        }
    }
}

/// Publishes `text`, the whole file, at `path`, where `added` is what
/// `text` has that the last publication had not (all of it the first
/// time). A regular file (or none yet) is written beside and renamed into
/// place, so that a reader polling for the file never sees half a line.
/// Anything else there is written in place, never replaced, and given only
/// `added`, so that a reader there never reads a line twice nor finds the
/// file empty: a FIFO a supervisor reads the address from, a character
/// device, a symbolic link (renaming over them would leave the reader
/// waiting forever, or swap a device node or a link for a file). It is
/// opened without blocking, so a FIFO nobody reads fails at once instead
/// of holding up start-up; a directory, a socket or a block device fails.
fn publish(path: &Path, text: &str, added: &str) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_file() => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Ok(_) => {
            let first = added.len() == text.len();
            return write_in_place(path, added.as_bytes(), first);
        }
        Err(error) => return Err(error),
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })
}

/// Writes `bytes` to what is at `path`, following links, without blocking:
/// a regular file (truncated first when `first`, else appended to), a FIFO
/// or a character device.
fn write_in_place(path: &Path, bytes: &[u8], first: bool) -> io::Result<()> {
    use std::io::Write;

    let mut file = special_file::open_for_writing(path, false, !first)?;
    match Kind::of(file.metadata()?.file_type()) {
        Kind::Regular if first => file.set_len(0)?,
        Kind::Regular => {}
        #[cfg(unix)]
        Kind::Fifo | Kind::CharDevice => {}
        other => {
            return Err(io::Error::other(format!(
                "it is {}, not a regular file, a FIFO or a character device",
                other.as_str()
            )))
        }
    }
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    const LINE: &str = "127.0.0.1:8081\n";

    #[cfg(unix)]
    #[test]
    fn a_fifo_reads_each_line_once() {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;

        let dir = std::env::temp_dir().join(format!("lifecycle-addrs-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let addresses = AddressFile::default();
        addresses
            .probe_listening(Some(&fifo), "127.0.0.1:8081".parse().unwrap())
            .unwrap();
        addresses.app_bound("127.0.0.1:1".parse().unwrap());
        let mut read = String::new();
        reader.read_to_string(&mut read).unwrap();
        assert_eq!(read, "127.0.0.1:8081\napp 127.0.0.1:1\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_probe_address_comes_first_then_each_application_address() {
        let dir = std::env::temp_dir().join(format!("lifecycle-addrs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("addr");
        let addresses = AddressFile::default();
        addresses.app_bound("127.0.0.1:1".parse().unwrap());
        addresses
            .probe_listening(Some(&file), "127.0.0.1:8081".parse().unwrap())
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "127.0.0.1:8081\napp 127.0.0.1:1\n"
        );
        addresses.app_bound("[::1]:2".parse().unwrap());
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "127.0.0.1:8081\napp 127.0.0.1:1\napp [::1]:2\n"
        );

        // Through a link: written in place, the new line appended.
        #[cfg(unix)]
        {
            let link = dir.join("link");
            std::os::unix::fs::symlink(&file, &link).unwrap();
            let linked = AddressFile::default();
            linked
                .probe_listening(Some(&link), "127.0.0.1:9".parse().unwrap())
                .unwrap();
            linked.app_bound("127.0.0.1:3".parse().unwrap());
            assert_eq!(
                std::fs::read_to_string(&file).unwrap(),
                "127.0.0.1:9\napp 127.0.0.1:3\n"
            );
            assert!(std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_address_file_is_renamed_into_place_or_written_in_place_never_replaced() {
        use std::io::Read;
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

        let dir = std::env::temp_dir().join(format!("lifecycle-addr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();

        // A regular file, new or old: renamed into place, nothing left beside.
        let file = dir.join("addr");
        publish(&file, LINE, LINE).unwrap();
        std::fs::write(&file, "an older and longer address\n").unwrap();
        publish(&file, LINE, LINE).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "127.0.0.1:8081\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

        // A FIFO nobody reads: fails at once; with a reader: written there.
        let fifo = dir.join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let error = publish(&fifo, LINE, LINE).unwrap_err();
        assert!(error.to_string().contains("a FIFO nobody reads"), "{error}");
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        publish(&fifo, LINE, LINE).unwrap();
        let mut read = String::new();
        reader.read_to_string(&mut read).unwrap();
        assert_eq!(read, "127.0.0.1:8081\n");
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());

        // A character device: written, not replaced.
        publish("/dev/null".as_ref(), LINE, LINE).unwrap();
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());

        // A directory, a missing one: errors, and nothing left behind.
        let sub = dir.join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(publish(&sub, LINE, LINE).is_err());
        assert!(publish(&dir.join("no").join("addr"), LINE, LINE).is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
