//! Moving one file. A download is written to a hidden temporary file next to its destination
//! and renamed over it only when complete and checked against SIZE, so an interrupted download
//! never leaves a truncated file under the destination's name; `--continue` resumes into the
//! destination itself with REST. An upload is STOR, or for `--continue` REST + STOR (servers
//! advertising REST STREAM) or APPE.

use super::error::ClientError;
use super::interrupt;
use super::progress::Progress;
use super::session::Session;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Copy buffer: large enough that a fast link is not throttled by system calls.
const BUFFER_SIZE: usize = 256 * 1024;

/// Names tried for a download's temporary file before giving up (each includes the process id,
/// so a collision means a leftover from a crashed run with the same id).
const TEMP_NAME_ATTEMPTS: u32 = 100;

/// Marks the temporary files of downloads in progress: `.NAME.PID-N.ferry-part`.
pub const PARTIAL_SUFFIX: &str = ".ferry-part";

/// What a transfer did.
#[derive(Debug, Clone, Copy)]
pub struct Transferred {
    /// Bytes moved by this transfer (not counting a resumed prefix).
    pub bytes: u64,
    /// Where it started: non-zero when it resumed.
    pub offset: u64,
    /// `--continue` found the transfer already complete, so nothing was sent.
    pub already_complete: bool,
    pub elapsed: Duration,
}

/// Downloads `remote` to `local` (a file path; the caller has resolved directories).
pub fn download(
    session: &mut Session,
    remote: &str,
    local: &Path,
    resume: bool,
) -> Result<Transferred, ClientError> {
    let started = Instant::now();
    let expected = optional_size(session, remote)?;
    if !resume {
        let mut partial = PartialFile::create(local)?;
        let received = receive(session, remote, &mut partial.file, local, expected)?;
        check_complete(received, expected)?;
        partial.commit(local)?;
        return Ok(done(received, 0, started));
    }
    let offset = match fs::metadata(local) {
        Ok(metadata) if metadata.is_file() => metadata.len(),
        Ok(_) => {
            return Err(ClientError::Usage(format!(
                "{}: not a file",
                local.display()
            )));
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => 0,
        Err(error) => return Err(ClientError::local(local, error)),
    };
    if let Some(expected) = expected {
        if offset == expected {
            return Ok(already_complete(offset, started));
        }
        if offset > expected {
            return Err(ClientError::Usage(format!(
                "{} has {offset} bytes, more than the {expected} of {remote}: not resuming",
                local.display()
            )));
        }
    }
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(local)
        .map_err(|error| ClientError::local(local, error))?;
    if offset > 0 {
        session.rest(offset)?;
    }
    let remaining = expected.map(|expected| expected - offset);
    let received = receive(session, remote, &mut file, local, remaining)?;
    check_complete(offset + received, expected)?;
    file.sync_all()
        .map_err(|error| ClientError::local(local, error))?;
    Ok(done(received, offset, started))
}

/// Uploads the file `local` to `remote`.
pub fn upload(
    session: &mut Session,
    local: &Path,
    remote: &str,
    resume: bool,
) -> Result<Transferred, ClientError> {
    let started = Instant::now();
    let mut file = File::open(local).map_err(|error| ClientError::local(local, error))?;
    let metadata = file
        .metadata()
        .map_err(|error| ClientError::local(local, error))?;
    if !metadata.is_file() {
        return Err(ClientError::Usage(format!(
            "{}: not a file (upload -r sends a directory)",
            local.display()
        )));
    }
    let length = metadata.len();
    let offset = if resume {
        remote_offset(session, remote, length)?
    } else {
        0
    };
    if resume && offset == length {
        return Ok(already_complete(offset, started));
    }
    let command = if offset == 0 {
        format!("STOR {remote}")
    } else if session.features.rest_stream {
        session.rest(offset)?;
        format!("STOR {remote}")
    } else {
        format!("APPE {remote}")
    };
    file.seek(SeekFrom::Start(offset))
        .map_err(|error| ClientError::local(local, error))?;
    let mut data = session.open_data(&command)?;
    let progress = Progress::start(remote, Some(length - offset));
    let copied = pump(&mut file, &mut data, &progress).and_then(|sent| {
        data.finish_writing()
            .map(|()| sent)
            .map_err(|error| cancelled_or(error, PumpError::Write))
    });
    drop(progress);
    let sent = settle(session, copied, Direction::Upload, local)?;
    // The server's SIZE is the last word on what arrived; servers without it are trusted.
    match session.size(remote) {
        Ok(size) if size != length => Err(ClientError::Incomplete {
            received: size,
            expected: length,
        }),
        Ok(_) | Err(ClientError::Reply { .. }) => Ok(done(sent, offset, started)),
        Err(error) => Err(error),
    }
}

/// Where `upload --continue` starts: the remote file's size, or 0 when there is none.
fn remote_offset(session: &mut Session, remote: &str, length: u64) -> Result<u64, ClientError> {
    let size = match session.size(remote) {
        Ok(size) => size,
        Err(ClientError::Reply { code: 550, .. }) => 0,
        Err(ClientError::Reply { code, text }) if (500..=504).contains(&code) => {
            return Err(ClientError::Usage(format!(
                "cannot resume: the server does not report sizes ({code} {text})"
            )));
        }
        Err(error) => return Err(error),
    };
    if size > length {
        return Err(ClientError::Usage(format!(
            "{remote} has {size} bytes on the server, more than the {length} here: not resuming"
        )));
    }
    Ok(size)
}

/// SIZE of `remote`, or `None` when the server has no SIZE command. Any other refusal (550 no
/// such file) is the error the download would end with anyway, so it is returned.
fn optional_size(session: &mut Session, remote: &str) -> Result<Option<u64>, ClientError> {
    match session.size(remote) {
        Ok(size) => Ok(Some(size)),
        Err(ClientError::Reply { code, .. }) if (500..=504).contains(&code) => Ok(None),
        Err(error) => Err(error),
    }
}

fn receive(
    session: &mut Session,
    remote: &str,
    file: &mut File,
    local: &Path,
    remaining: Option<u64>,
) -> Result<u64, ClientError> {
    let mut data = session.open_data(&format!("RETR {remote}"))?;
    let progress = Progress::start(remote, remaining);
    let copied = pump(&mut data, file, &progress);
    drop(progress);
    drop(data);
    settle(session, copied, Direction::Download, local)
}

fn check_complete(received: u64, expected: Option<u64>) -> Result<(), ClientError> {
    match expected {
        Some(expected) if received != expected => {
            Err(ClientError::Incomplete { received, expected })
        }
        _ => Ok(()),
    }
}

fn done(bytes: u64, offset: u64, started: Instant) -> Transferred {
    Transferred {
        bytes,
        offset,
        already_complete: false,
        elapsed: started.elapsed(),
    }
}

/// `--continue` found nothing left to send.
fn already_complete(length: u64, started: Instant) -> Transferred {
    Transferred {
        already_complete: true,
        ..done(0, length, started)
    }
}

enum PumpError {
    Read(io::Error),
    Write(io::Error),
    Cancelled,
}

fn cancelled_or(error: io::Error, side: fn(io::Error) -> PumpError) -> PumpError {
    if interrupt::requested() {
        PumpError::Cancelled
    } else {
        side(error)
    }
}

/// Copies until the end of `from`, stopping early on Ctrl-C.
fn pump(from: &mut dyn Read, to: &mut dyn Write, progress: &Progress) -> Result<u64, PumpError> {
    let mut buffer = vec![0u8; BUFFER_SIZE];
    let mut total = 0u64;
    loop {
        if interrupt::requested() {
            return Err(PumpError::Cancelled);
        }
        let read = match from.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(read) => read,
            // A signal; the top of the loop decides whether it was Ctrl-C.
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(cancelled_or(error, PumpError::Read)),
        };
        to.write_all(&buffer[..read])
            .map_err(|error| cancelled_or(error, PumpError::Write))?;
        total += read as u64;
        progress.advance(read as u64);
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Upload,
    Download,
}

/// Ends a transfer whose data connection is closed: reads the server's final reply and turns
/// the outcome into one error, preferring the server's own words.
fn settle(
    session: &mut Session,
    copied: Result<u64, PumpError>,
    direction: Direction,
    local: &Path,
) -> Result<u64, ClientError> {
    let (error, local_failed) = match (copied, direction) {
        (Ok(bytes), _) => return session.finish_data().map(|()| bytes),
        // The server may still be busy with the transfer; its reply is not waited for, and the
        // caller drops the session.
        (Err(PumpError::Cancelled), _) => return Err(ClientError::Interrupted),
        (Err(PumpError::Read(error)), Direction::Upload)
        | (Err(PumpError::Write(error)), Direction::Download) => (error, true),
        (Err(PumpError::Read(error)), Direction::Download)
        | (Err(PumpError::Write(error)), Direction::Upload) => (error, false),
    };
    // Closing our end broke the transfer; the server answers that (426, 451) on the control
    // connection, and reading the answer keeps the session in step.
    match session.finish_data() {
        Err(lost) if lost.ends_session() => Err(lost),
        Err(reply) if !local_failed => Err(reply),
        _ if local_failed => Err(ClientError::local(local, error)),
        _ => Err(ClientError::Data(error)),
    }
}

/// A download in progress: a hidden file next to its destination, removed unless committed.
struct PartialFile {
    path: PathBuf,
    file: File,
    committed: bool,
}

impl PartialFile {
    fn create(destination: &Path) -> Result<PartialFile, ClientError> {
        let name = destination.file_name().ok_or_else(|| {
            ClientError::Usage(format!("{}: not a file name", destination.display()))
        })?;
        let dir = match destination.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
        for attempt in 0..TEMP_NAME_ATTEMPTS {
            let path = dir.join(format!(
                ".{}.{}-{attempt}{PARTIAL_SUFFIX}",
                name.to_string_lossy(),
                std::process::id()
            ));
            // create_new: never reuse (or follow a symlink planted at) an existing name.
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(PartialFile {
                        path,
                        file,
                        committed: false,
                    });
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => last = error,
                Err(error) => return Err(ClientError::local(path, error)),
            }
        }
        Err(ClientError::local(dir, last))
    }

    /// Flushes the file to disk and renames it to `destination`, replacing any file there.
    fn commit(mut self, destination: &Path) -> Result<(), ClientError> {
        self.file
            .sync_all()
            .map_err(|error| ClientError::local(&self.path, error))?;
        fs::rename(&self.path, destination)
            .map_err(|error| ClientError::local(destination, error))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the error being reported matters more than a leftover temporary.
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_abandoned_partial_download_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("temp dir");
        let destination = dir.path().join("report.pdf");
        let mut partial = PartialFile::create(&destination).expect("create");
        partial.file.write_all(b"half a file").expect("write");
        let name = partial
            .path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with(".report.pdf.") && name.ends_with(PARTIAL_SUFFIX),
            "{name}"
        );
        drop(partial);
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 0);
    }

    #[test]
    fn a_committed_download_replaces_the_destination_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let destination = dir.path().join("data.bin");
        fs::write(&destination, b"old version").expect("write old");
        let mut partial = PartialFile::create(&destination).expect("create");
        partial.file.write_all(b"new").expect("write");
        partial.commit(&destination).expect("commit");
        assert_eq!(fs::read(&destination).expect("read"), b"new");
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn pump_copies_everything_and_counts_it() {
        let data: Vec<u8> = (0..BUFFER_SIZE * 2 + 7).map(|i| i as u8).collect();
        let mut out = Vec::new();
        let copied = pump(&mut data.as_slice(), &mut out, &Progress::start("t", None));
        assert!(matches!(copied, Ok(n) if n == data.len() as u64));
        assert_eq!(out, data);
    }
}
