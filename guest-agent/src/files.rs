//! File transfer, the guest's side: writing a file atomically, reading a file or a directory (as a
//! tar archive) and listing a directory, all on paths the host's policy judged.
//!
//! **Paths.** A path must pass [`validate_guest_path`] (absolute, normalised, no `..`, not under
//! `/proc`, `/sys` or `/dev`). It is then walked from `/` one component at a time with
//! `openat(O_NOFOLLOW)`: a symlink in *any* component, the last included, is refused and named,
//! so a symlink swapped in after the policy judged the path cannot redirect the transfer. A
//! directory on a kernel filesystem (proc, sysfs, cgroup, …) is refused wherever it is mounted.
//! Devices, fifos and sockets are refused before they are opened (opening one can block or act).
//!
//! **Writes** are atomic: the bytes go to a temporary file in the target's directory (`O_EXCL`,
//! mode 0600), which is fsynced, given its owner and the requested mode, renamed over the target,
//! and the directory fsynced. The owner is the owner of the target's directory (so a file put in
//! a user's home belongs to that user, one put in `/root` or `/tmp` to root). If the transfer is
//! cancelled, the host goes away, more bytes than declared arrive or anything fails, the
//! temporary file is removed: nothing partial ever appears at the target.
//!
//! **Reads** stream within the host's credit. A directory becomes a tar archive built here from
//! the same `openat(O_NOFOLLOW)` walk: symlinks inside are stored as symlinks, never followed;
//! devices, fifos and sockets inside are skipped, and so are directories on kernel filesystems.

use std::collections::VecDeque;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use airlock_protocol::{
    validate_guest_path, validate_list_limit, Content, Digest, DirEntry, EntryKind, FileError, FileErrorKind,
    Flow, GuestMessage, Listing, PutFile, Reply, TransferMessage, MAX_FILE_ERROR, MAX_STREAM_CHUNK,
};
use sha2::{Digest as _, Sha256};

use crate::session::SendError;

/// Sends one message to the host under the transfer's request id.
pub type Send<'a> = &'a (dyn Fn(GuestMessage) -> Result<(), SendError> + Sync);

/// Deepest directory tree a tar archive descends into.
const MAX_TAR_DEPTH: usize = 128;

/// One transfer's traffic from the host: the session's reader queues it here (never blocking),
/// the request's thread takes it.
#[derive(Default)]
pub struct Inbox {
    state: Mutex<InboxState>,
    wake: Condvar,
}

#[derive(Default)]
struct InboxState {
    flow: Flow,
    data: VecDeque<Vec<u8>>,
    eof: bool,
    /// Why the transfer must stop (cancelled, the host went away, the host broke flow control).
    stopped: Option<String>,
}

/// Why a transfer stopped before its end: a sentence for the host.
#[derive(Debug)]
struct Stopped(String);

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stopped {}

impl Inbox {
    /// Takes the host's traffic for this transfer; a message that breaks the protocol or the
    /// credit window stops the transfer with the reason.
    pub fn on_host(&self, msg: TransferMessage) {
        let Ok(mut st) = self.state.lock() else { return };
        let broken = match msg.validate() {
            Err(e) => Some(e.to_string()),
            Ok(()) => match msg {
                TransferMessage::Data(_) if st.eof => Some("the host sent data after its end".into()),
                TransferMessage::Data(d) => match st.flow.received(d.len()) {
                    Ok(()) => {
                        st.data.push_back(d);
                        None
                    }
                    Err(e) => Some(e.to_string()),
                },
                TransferMessage::Credit(n) => st.flow.credited(n).err().map(|e| e.to_string()),
                TransferMessage::Eof => {
                    st.eof = true;
                    None
                }
            },
        };
        if let Some(reason) = broken {
            st.stopped.get_or_insert(reason);
        }
        self.wake.notify_all();
    }

    /// Stops the transfer: whatever waits on it returns `reason`.
    pub fn stop(&self, reason: &str) {
        if let Ok(mut st) = self.state.lock() {
            st.stopped.get_or_insert_with(|| reason.to_string());
        }
        self.wake.notify_all();
    }

    /// The next chunk of a write, `None` after the host's end.
    fn next_data(&self) -> Result<Option<Vec<u8>>, Stopped> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| Stopped("the transfer's state is poisoned".into()))?;
        loop {
            if let Some(r) = &st.stopped {
                return Err(Stopped(r.clone()));
            }
            if let Some(d) = st.data.pop_front() {
                return Ok(Some(d));
            }
            if st.eof {
                return Ok(None);
            }
            st = self
                .wake
                .wait(st)
                .map_err(|_| Stopped("the transfer's state is poisoned".into()))?;
        }
    }

    /// Records `n` bytes written; the credit to grant the host now, if any.
    fn consumed(&self, n: usize) -> Option<u32> {
        self.state.lock().ok().and_then(|mut st| st.flow.consumed(n))
    }

    /// Waits until the host's credit allows sending; how many bytes.
    fn wait_credit(&self) -> Result<usize, Stopped> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| Stopped("the transfer's state is poisoned".into()))?;
        loop {
            if let Some(r) = &st.stopped {
                return Err(Stopped(r.clone()));
            }
            let n = st.flow.sendable();
            if n > 0 {
                return Ok(n);
            }
            st = self
                .wake
                .wait(st)
                .map_err(|_| Stopped("the transfer's state is poisoned".into()))?;
        }
    }

    fn sent(&self, n: usize) {
        if let Ok(mut st) = self.state.lock() {
            st.flow.sent(n);
        }
    }
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_FILE_ERROR {
        let mut end = MAX_FILE_ERROR;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn fail(kind: FileErrorKind, message: String) -> FileError {
    FileError {
        kind,
        message: cut(message),
    }
}

/// An I/O failure on `path`, categorised by its errno.
fn io_fail(what: &str, path: &str, e: &io::Error) -> FileError {
    let kind = match e.raw_os_error() {
        Some(libc::ENOENT) => FileErrorKind::NotFound,
        Some(libc::EACCES | libc::EPERM | libc::EROFS) => FileErrorKind::PermissionDenied,
        Some(libc::ENOSPC | libc::EDQUOT) => FileErrorKind::NoSpace,
        Some(libc::ELOOP) => FileErrorKind::Symlink,
        Some(libc::ENOTDIR) => FileErrorKind::NotADirectory,
        Some(libc::EISDIR) => FileErrorKind::WrongKind,
        _ => FileErrorKind::Io,
    };
    fail(kind, format!("cannot {what} {path}: {e}"))
}

fn stopped(path: &str, why: &Stopped) -> FileError {
    fail(
        FileErrorKind::Cancelled,
        format!("the transfer of {path} stopped: {why}"),
    )
}

fn cstr(name: &str) -> Result<CString, FileError> {
    CString::new(name).map_err(|_| fail(FileErrorKind::InvalidPath, format!("{name:?} holds a NUL byte")))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated and outlives the call; `dir` is an open descriptor.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            libc::c_uint::from(mode),
        )
    })?;
    // SAFETY: openat just returned this descriptor, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated, `st` is a valid out-pointer for the call.
    check(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer for the call.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

fn is(st: &libc::stat, fmt: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == fmt
}

/// What a non-regular, non-directory file is, for messages.
fn special_name(st: &libc::stat) -> &'static str {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFLNK => "symlink",
        libc::S_IFIFO => "fifo",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        _ => "special file",
    }
}

/// Filesystems that hold kernel interfaces, not files (`statfs` magic numbers).
const KERNEL_FS: [i64; 10] = [
    0x9fa0,      // proc
    0x6265_6572, // sysfs
    0x1cd1,      // devpts
    0x0027_e0eb, // cgroup
    0x6367_7270, // cgroup2
    0x6462_6720, // debugfs
    0x7363_6673, // securityfs
    0x7472_6163, // tracefs
    0xcafe_4a11, // bpf
    0x4249_4e4d, // binfmt_misc
];

fn on_kernel_fs(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: an all-zero `statfs` is a valid value of this plain C struct.
    let mut sf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `sf` is a valid out-pointer for the call.
    let r = unsafe { libc::fstatfs(fd.as_raw_fd(), &mut sf) };
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let magic = i64::from(sf.f_type as i64);
    r == 0 && KERNEL_FS.contains(&magic)
}

fn refuse_kernel_fs(fd: BorrowedFd<'_>, path: &str) -> Result<(), FileError> {
    if on_kernel_fs(fd) {
        Err(fail(
            FileErrorKind::SystemPath,
            format!("the guest path {path} is on a kernel filesystem (proc, sysfs, …), which holds no files"),
        ))
    } else {
        Ok(())
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The directory holding `path`'s last component, opened without following any symlink, and
/// that component (`None` for `/`). Missing directories are made when `create` says so, owned
/// like their own parent.
fn walk(path: &str, create: bool) -> Result<(OwnedFd, Option<CString>), FileError> {
    validate_guest_path(path).map_err(|e| fail(e.kind(), e.to_string()))?;
    let root = File::open("/").map_err(|e| io_fail("open", "/", &e))?;
    let mut dir = OwnedFd::from(root);
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let Some((last, parents)) = comps.split_last() else {
        return Ok((dir, None));
    };
    let mut here = String::from("/");
    for c in parents {
        let name = cstr(c)?;
        let next = join(&here, c);
        let opened = match open_dir_at(dir.as_fd(), &name) {
            Err(e) if create && e.raw_os_error() == Some(libc::ENOENT) => {
                make_dir(dir.as_fd(), &name).map_err(|e| io_fail("create the directory", &next, &e))?;
                open_dir_at(dir.as_fd(), &name)
            }
            other => other,
        };
        dir = match opened {
            Ok(d) => d,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                return Err(match lstat_at(dir.as_fd(), &name) {
                    Ok(st) if is(&st, libc::S_IFLNK) => symlink(&next),
                    _ => fail(
                        FileErrorKind::NotADirectory,
                        format!("the guest path {next} is not a directory"),
                    ),
                })
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(fail(
                    FileErrorKind::NotFound,
                    format!("the guest directory {next} does not exist"),
                ))
            }
            Err(e) => return Err(io_fail("open the directory", &next, &e)),
        };
        refuse_kernel_fs(dir.as_fd(), &next)?;
        here = next;
    }
    Ok((dir, Some(cstr(last)?)))
}

fn symlink(path: &str) -> FileError {
    fail(
        FileErrorKind::Symlink,
        format!("the guest path {path} is a symlink; transfers never follow symlinks"),
    )
}

/// Makes a directory (mode 0755) owned like the directory it is made in.
fn make_dir(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let owner = fstat(parent)?;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    match check(unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) }) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Ok(()),
        Err(e) => return Err(e),
    }
    // SAFETY: as above; AT_SYMLINK_NOFOLLOW keeps a swapped-in symlink's target untouched.
    check(unsafe {
        libc::fchownat(
            parent.as_raw_fd(),
            name.as_ptr(),
            owner.st_uid,
            owner.st_gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

/// Opens what `path` names — a regular file or a directory, never a symlink, device, fifo or
/// socket — and its `stat`.
fn open_target(path: &str) -> Result<(OwnedFd, libc::stat), FileError> {
    let (parent, name) = walk(path, false)?;
    let Some(name) = name else {
        let st = fstat(parent.as_fd()).map_err(|e| io_fail("inspect", path, &e))?;
        return Ok((parent, st));
    };
    let before = lstat_at(parent.as_fd(), &name).map_err(|e| io_fail("inspect", path, &e))?;
    let dir = is(&before, libc::S_IFDIR);
    if is(&before, libc::S_IFLNK) {
        return Err(symlink(path));
    }
    if !dir && !is(&before, libc::S_IFREG) {
        return Err(fail(
            FileErrorKind::SpecialFile,
            format!("the guest path {path} is a {}, not a file", special_name(&before)),
        ));
    }
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | if dir { libc::O_DIRECTORY } else { 0 };
    let fd = openat(parent.as_fd(), &name, flags, 0).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => symlink(path),
        _ => io_fail("open", path, &e),
    })?;
    let st = fstat(fd.as_fd()).map_err(|e| io_fail("inspect", path, &e))?;
    if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino) {
        return Err(fail(
            FileErrorKind::Io,
            format!("the guest path {path} was replaced while it was being opened"),
        ));
    }
    refuse_kernel_fs(fd.as_fd(), path)?;
    Ok((fd, st))
}

/// A temporary file that is removed unless it was renamed into place.
struct Temp<'a> {
    dir: BorrowedFd<'a>,
    name: CString,
    file: File,
    placed: bool,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl<'a> Temp<'a> {
    fn create(dir: BorrowedFd<'a>, path: &str) -> Result<Temp<'a>, FileError> {
        for _ in 0..16 {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = cstr(&format!(".airlock-put.{}.{n}", std::process::id()))?;
            let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
            match openat(dir, &name, flags, 0o600) {
                Ok(fd) => {
                    return Ok(Temp {
                        dir,
                        name,
                        file: File::from(fd),
                        placed: false,
                    })
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => return Err(io_fail("create a temporary file beside", path, &e)),
            }
        }
        Err(fail(
            FileErrorKind::Io,
            format!("cannot create a temporary file beside {path}: every name tried exists"),
        ))
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if !self.placed {
            // SAFETY: `name` is NUL-terminated and outlives the call.
            unsafe {
                libc::unlinkat(self.dir.as_raw_fd(), self.name.as_ptr(), 0);
            }
        }
    }
}

/// Writes a file atomically from the host's transfer traffic (see the module's doc).
pub fn put(req: &PutFile, inbox: &Inbox, send: Send<'_>) -> Result<Digest, FileError> {
    let path = req.path.as_str();
    req.validate().map_err(|e| fail(e.kind(), e.to_string()))?;
    let (dir, name) = walk(path, req.create_parents)?;
    let name = name.ok_or_else(|| {
        fail(
            FileErrorKind::InvalidPath,
            "a file cannot be written to '/'".into(),
        )
    })?;
    match lstat_at(dir.as_fd(), &name) {
        Ok(st) if is(&st, libc::S_IFREG) => {}
        Ok(st) if is(&st, libc::S_IFDIR) => {
            return Err(fail(
                FileErrorKind::WrongKind,
                format!("the guest path {path} is a directory"),
            ))
        }
        Ok(st) if is(&st, libc::S_IFLNK) => return Err(symlink(path)),
        Ok(st) => {
            return Err(fail(
                FileErrorKind::SpecialFile,
                format!("the guest path {path} is a {}, not a file", special_name(&st)),
            ))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(io_fail("inspect", path, &e)),
    }
    let owner = fstat(dir.as_fd()).map_err(|e| io_fail("inspect the directory of", path, &e))?;
    let mut temp = Temp::create(dir.as_fd(), path)?;
    let mut hasher = Sha256::new();
    let mut written: u64 = 0;
    loop {
        let chunk = match inbox.next_data() {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(why) => return Err(stopped(path, &why)),
        };
        written += chunk.len() as u64;
        if written > req.size {
            return Err(fail(
                FileErrorKind::TooLarge,
                format!(
                    "more than the {} declared bytes arrived for {path}; nothing was written",
                    req.size
                ),
            ));
        }
        temp.file
            .write_all(&chunk)
            .map_err(|e| io_fail("write", path, &e))?;
        hasher.update(&chunk);
        if let Some(n) = inbox.consumed(chunk.len()) {
            send(GuestMessage::Transfer(TransferMessage::Credit(n)))
                .map_err(|e| stopped(path, &Stopped(airlock_protocol::error_chain(&e))))?;
        }
    }
    if written != req.size {
        return Err(fail(
            FileErrorKind::SizeMismatch,
            format!(
                "only {written} of the {} declared bytes arrived for {path}; nothing was written",
                req.size
            ),
        ));
    }
    temp.file.sync_all().map_err(|e| io_fail("sync", path, &e))?;
    let fd = temp.file.as_raw_fd();
    // SAFETY: `fd` is the open temporary file. The owner goes first: chown clears set-id bits.
    check(unsafe { libc::fchown(fd, owner.st_uid, owner.st_gid) })
        .map_err(|e| io_fail("set the owner of", path, &e))?;
    // SAFETY: as above.
    check(unsafe { libc::fchmod(fd, req.mode as libc::mode_t) })
        .map_err(|e| io_fail("set the mode of", path, &e))?;
    let d = dir.as_raw_fd();
    // SAFETY: both names are NUL-terminated and outlive the call; `d` is the open directory.
    check(unsafe { libc::renameat(d, temp.name.as_ptr(), d, name.as_ptr()) })
        .map_err(|e| io_fail("move the new file into place at", path, &e))?;
    temp.placed = true;
    // SAFETY: `d` is the open directory.
    check(unsafe { libc::fsync(d) }).map_err(|e| io_fail("sync the directory of", path, &e))?;
    Ok(Digest {
        size: written,
        sha256: hasher.finalize().into(),
    })
}

/// Bytes towards the host within its credit, in chunks of at most [`MAX_STREAM_CHUNK`], hashed.
struct Outflow<'a> {
    inbox: &'a Inbox,
    send: Send<'a>,
    buf: Vec<u8>,
    hasher: Sha256,
    size: u64,
}

impl Outflow<'_> {
    fn push(&mut self) -> io::Result<()> {
        let n = self
            .inbox
            .wait_credit()
            .map_err(io::Error::other)?
            .min(self.buf.len());
        let chunk: Vec<u8> = self.buf.drain(..n).collect();
        self.hasher.update(&chunk);
        self.size += n as u64;
        self.inbox.sent(n);
        (self.send)(GuestMessage::Transfer(TransferMessage::Data(chunk))).map_err(io::Error::other)
    }

    fn finish(mut self) -> io::Result<Digest> {
        while !self.buf.is_empty() {
            self.push()?;
        }
        Ok(Digest {
            size: self.size,
            sha256: self.hasher.finalize().into(),
        })
    }
}

impl Write for Outflow<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let take = data.len().min(MAX_STREAM_CHUNK);
        self.buf.extend_from_slice(&data[..take]);
        while self.buf.len() >= MAX_STREAM_CHUNK {
            self.push()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An output failure: a stop the host asked for, or an I/O error on `path`.
fn out_fail(what: &str, path: &str, e: &io::Error) -> FileError {
    match e.get_ref().and_then(|i| i.downcast_ref::<Stopped>()) {
        Some(why) => stopped(path, why),
        None => io_fail(what, path, e),
    }
}

/// Reads a file or a directory (as a tar archive) to the host: [`Reply::Opened`], the bytes
/// within the host's credit, then the digest for the final [`Reply::Sent`].
pub fn get(path: &str, inbox: &Inbox, send: Send<'_>) -> Result<Digest, FileError> {
    let (fd, st) = open_target(path)?;
    let mode = st.st_mode & 0o7777;
    let mut out = Outflow {
        inbox,
        send,
        buf: Vec::with_capacity(MAX_STREAM_CHUNK),
        hasher: Sha256::new(),
        size: 0,
    };
    let opened =
        |c| send(GuestMessage::Reply(Reply::Opened(c))).map_err(|e| stopped(path, &Stopped(e.to_string())));
    if is(&st, libc::S_IFDIR) {
        if path == "/" {
            return Err(fail(
                FileErrorKind::SystemPath,
                "an archive of / would hold /proc, /sys and /dev; ask for a directory below it".into(),
            ));
        }
        opened(Content::DirectoryTar {
            mode,
            mtime: st.st_mtime,
        })?;
        let mut tar = tar::Builder::new(&mut out);
        tar.mode(tar::HeaderMode::Complete);
        let top = path.rsplit('/').next().unwrap_or(".");
        append_tree(&mut tar, fd, std::path::Path::new(top), path, 0)?;
        tar.finish().map_err(|e| out_fail("archive", path, &e))?;
        drop(tar);
    } else {
        let size = st.st_size.max(0) as u64;
        opened(Content::File {
            size,
            mode,
            mtime: st.st_mtime,
        })?;
        let mut file = File::from(fd);
        let copied =
            io::copy(&mut (&mut file).take(size), &mut out).map_err(|e| out_fail("read", path, &e))?;
        if copied != size {
            return Err(fail(
                FileErrorKind::SizeMismatch,
                format!("the guest file {path} shrank from {size} to {copied} bytes while it was read"),
            ));
        }
    }
    out.finish().map_err(|e| out_fail("send", path, &e))
}

fn header_for(st: &libc::stat, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(st.st_mtime.max(0) as u64);
    h
}

/// Names in a directory, read from its descriptor (no path lookup).
fn names(dir: BorrowedFd<'_>, path: &str, limit: usize) -> Result<(Vec<Vec<u8>>, bool), FileError> {
    // SAFETY: dup of an open descriptor; the copy is owned by the DIR stream below.
    let dup =
        check(unsafe { libc::dup(dir.as_raw_fd()) }).map_err(|e| io_fail("read the directory", path, &e))?;
    // SAFETY: `dup` is an open directory descriptor that fdopendir takes over.
    let stream = unsafe { libc::fdopendir(dup) };
    if stream.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `dup` is still ours to close.
        unsafe { libc::close(dup) };
        return Err(io_fail("read the directory", path, &e));
    }
    // SAFETY: `stream` is a fresh DIR stream; rewinding reads from the start whatever the
    // shared file offset says.
    unsafe { libc::rewinddir(stream) };
    let mut out = Vec::new();
    let mut truncated = false;
    loop {
        // SAFETY: `stream` is open; readdir returns NULL at the end or a valid entry.
        let ent = unsafe { libc::readdir(stream) };
        if ent.is_null() {
            break;
        }
        // SAFETY: `d_name` of a valid entry is a NUL-terminated string within it.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        if out.len() >= limit {
            truncated = true;
            break;
        }
        out.push(name.to_vec());
    }
    // SAFETY: `stream` is open and not used after this.
    unsafe { libc::closedir(stream) };
    out.sort();
    Ok((out, truncated))
}

/// Appends `dir` (named `rel` in the archive, `path` in messages) and everything under it.
fn append_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: OwnedFd,
    rel: &std::path::Path,
    path: &str,
    depth: usize,
) -> Result<(), FileError> {
    let st = fstat(dir.as_fd()).map_err(|e| io_fail("inspect", path, &e))?;
    let mut h = header_for(&st, tar::EntryType::Directory, 0);
    tar.append_data(&mut h, rel, io::empty())
        .map_err(|e| out_fail("archive", path, &e))?;
    if depth >= MAX_TAR_DEPTH {
        return Err(fail(
            FileErrorKind::Io,
            format!("the guest directory {path} is nested deeper than {MAX_TAR_DEPTH} levels"),
        ));
    }
    let (entries, _) = names(dir.as_fd(), path, usize::MAX)?;
    for raw in entries {
        let name = OsStr::from_bytes(&raw);
        let shown = join(path, &name.to_string_lossy());
        let relp = rel.join(name);
        let c =
            CString::new(raw).map_err(|_| fail(FileErrorKind::Io, format!("{shown} holds a NUL byte")))?;
        let Ok(est) = lstat_at(dir.as_fd(), &c) else {
            continue; // removed meanwhile
        };
        match est.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                let sub = match open_dir_at(dir.as_fd(), &c) {
                    Ok(s) => s,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                    Err(e) => return Err(io_fail("open the directory", &shown, &e)),
                };
                if on_kernel_fs(sub.as_fd()) {
                    continue;
                }
                append_tree(tar, sub, &relp, &shown, depth + 1)?;
            }
            libc::S_IFLNK => {
                let target =
                    read_link_at(dir.as_fd(), &c).map_err(|e| io_fail("read the symlink", &shown, &e))?;
                let mut h = header_for(&est, tar::EntryType::Symlink, 0);
                tar.append_link(&mut h, &relp, OsStr::from_bytes(&target))
                    .map_err(|e| out_fail("archive", &shown, &e))?;
            }
            libc::S_IFREG => {
                let fd = match openat(dir.as_fd(), &c, libc::O_RDONLY | libc::O_NONBLOCK, 0) {
                    Ok(f) => f,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                    Err(e) => return Err(io_fail("open", &shown, &e)),
                };
                let st = fstat(fd.as_fd()).map_err(|e| io_fail("inspect", &shown, &e))?;
                if !is(&st, libc::S_IFREG) || (st.st_dev, st.st_ino) != (est.st_dev, est.st_ino) {
                    continue; // replaced meanwhile: it is not what was listed
                }
                let size = st.st_size.max(0) as u64;
                let mut h = header_for(&st, tar::EntryType::Regular, size);
                // A file that shrinks meanwhile is padded with zeros to its header's size.
                let body = File::from(fd).take(size).chain(io::repeat(0)).take(size);
                tar.append_data(&mut h, &relp, body)
                    .map_err(|e| out_fail("archive", &shown, &e))?;
            }
            _ => {} // devices, fifos and sockets hold no file content
        }
    }
    Ok(())
}

fn read_link_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `buf` is writable for its length; `name` is NUL-terminated.
    let n = unsafe { libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Lists a directory: at most `limit` entries, sorted by name bytes; `truncated` when it holds
/// more (which ones are listed then follows the directory's own order).
pub fn list(path: &str, limit: u32) -> Result<Listing, FileError> {
    validate_list_limit(limit).map_err(|e| fail(e.kind(), e.to_string()))?;
    let (fd, st) = open_target(path)?;
    if !is(&st, libc::S_IFDIR) {
        return Err(fail(
            FileErrorKind::WrongKind,
            format!("the guest path {path} is a file, not a directory"),
        ));
    }
    let (raw, truncated) = names(fd.as_fd(), path, limit as usize)?;
    let mut entries = Vec::with_capacity(raw.len());
    for raw in raw {
        let Ok(c) = CString::new(raw.clone()) else {
            continue;
        };
        let Ok(est) = lstat_at(fd.as_fd(), &c) else {
            continue; // removed meanwhile
        };
        let kind = match est.st_mode & libc::S_IFMT {
            libc::S_IFREG => EntryKind::File,
            libc::S_IFDIR => EntryKind::Dir,
            libc::S_IFLNK => EntryKind::Symlink,
            _ => EntryKind::Other,
        };
        let (name, raw_name) = match String::from_utf8(raw) {
            Ok(n) => (n, None),
            Err(e) => (
                String::from_utf8_lossy(e.as_bytes()).into_owned(),
                Some(e.into_bytes()),
            ),
        };
        entries.push(DirEntry {
            name,
            raw_name,
            kind,
            size: est.st_size.max(0) as u64,
            mode: est.st_mode & 0o7777,
            mtime: est.st_mtime,
        });
    }
    Ok(Listing { entries, truncated })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::Path;
    use std::sync::Arc;

    use super::*;

    fn put_req(path: &Path, size: u64) -> PutFile {
        PutFile {
            path: path.to_str().expect("a UTF-8 temp path").to_string(),
            mode: 0o640,
            size,
            create_parents: false,
        }
    }

    fn ignore(_: GuestMessage) -> Result<(), SendError> {
        Ok(())
    }

    /// Runs a put on its own thread; the test feeds its inbox.
    fn spawn_put(req: PutFile) -> (Arc<Inbox>, std::thread::JoinHandle<Result<Digest, FileError>>) {
        let inbox = Arc::new(Inbox::default());
        let i = inbox.clone();
        (inbox, std::thread::spawn(move || put(&req, &i, &ignore)))
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("readable")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Reads `path` as the host would, granting credit for everything at once.
    fn get_all(path: &str) -> (Vec<GuestMessage>, Vec<u8>, Result<Digest, FileError>) {
        let inbox = Inbox::default();
        let got = Mutex::new((Vec::new(), Vec::new()));
        let send = |m: GuestMessage| {
            let mut g = got.lock().expect("not poisoned");
            match m {
                GuestMessage::Transfer(TransferMessage::Data(d)) => {
                    inbox.on_host(TransferMessage::Credit(d.len() as u32));
                    g.1.extend_from_slice(&d);
                }
                other => g.0.push(other),
            }
            Ok(())
        };
        let r = get(path, &inbox, &send);
        let (msgs, bytes) = got.into_inner().expect("not poisoned");
        (msgs, bytes, r)
    }

    #[test]
    fn a_put_appears_whole_with_its_mode_and_digest_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let target = dir.path().join("a.txt");
        std::fs::write(&target, b"old contents").expect("an old file");
        let (inbox, put) = spawn_put(put_req(&target, 11));
        inbox.on_host(TransferMessage::Data(b"hello ".to_vec()));
        inbox.on_host(TransferMessage::Data(b"world".to_vec()));
        assert_eq!(
            std::fs::read(&target).expect("readable"),
            b"old contents",
            "not replaced before the end"
        );
        inbox.on_host(TransferMessage::Eof);
        let d = put.join().expect("no panic").expect("written");
        assert_eq!(d.size, 11);
        assert_eq!(d.sha256, <[u8; 32]>::from(Sha256::digest(b"hello world")));
        assert_eq!(std::fs::read(&target).expect("readable"), b"hello world");
        let meta = std::fs::metadata(&target).expect("metadata");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        assert_eq!(names_in(dir.path()), ["a.txt"]);
    }

    #[test]
    fn a_cancelled_put_leaves_nothing_at_the_target_or_beside_it() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let target = dir.path().join("b.bin");
        let (inbox, put) = spawn_put(put_req(&target, 1000));
        inbox.on_host(TransferMessage::Data(vec![1; 500]));
        inbox.stop("the host cancelled it");
        let e = put.join().expect("no panic").expect_err("cancelled");
        assert_eq!(e.kind, FileErrorKind::Cancelled, "{e}");
        assert!(e.message.contains("the host cancelled it"), "{e}");
        assert!(names_in(dir.path()).is_empty(), "{:?}", names_in(dir.path()));
    }

    #[test]
    fn a_put_with_more_or_fewer_bytes_than_declared_writes_nothing() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let target = dir.path().join("c");
        let (inbox, put) = spawn_put(put_req(&target, 3));
        inbox.on_host(TransferMessage::Data(vec![1; 4]));
        let e = put.join().expect("no panic").expect_err("too large");
        assert_eq!(e.kind, FileErrorKind::TooLarge, "{e}");
        let (inbox, put) = spawn_put(put_req(&target, 3));
        inbox.on_host(TransferMessage::Data(vec![1; 2]));
        inbox.on_host(TransferMessage::Eof);
        let e = put.join().expect("no panic").expect_err("short");
        assert_eq!(e.kind, FileErrorKind::SizeMismatch, "{e}");
        assert!(names_in(dir.path()).is_empty());
    }

    #[test]
    fn a_put_past_its_credit_is_stopped_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let target = dir.path().join("d");
        let inbox = Inbox::default();
        let window = airlock_protocol::STREAM_WINDOW as usize;
        for _ in 0..window / MAX_STREAM_CHUNK {
            inbox.on_host(TransferMessage::Data(vec![0; MAX_STREAM_CHUNK]));
        }
        inbox.on_host(TransferMessage::Data(vec![0; 1]));
        let e = put(&put_req(&target, 2 * window as u64), &inbox, &ignore).expect_err("overrun");
        assert_eq!(e.kind, FileErrorKind::Cancelled, "{e}");
        assert!(e.message.contains("credit"), "{e}");
        assert!(names_in(dir.path()).is_empty());
    }

    #[test]
    fn missing_parents_are_made_only_when_asked() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let target = dir.path().join("x/y/z.txt");
        let e = put(&put_req(&target, 0), &Inbox::default(), &ignore).expect_err("no parent");
        assert_eq!(e.kind, FileErrorKind::NotFound, "{e}");
        let (inbox, p) = spawn_put(PutFile {
            create_parents: true,
            ..put_req(&target, 0)
        });
        inbox.on_host(TransferMessage::Eof);
        p.join().expect("no panic").expect("written");
        assert_eq!(std::fs::read(&target).expect("there"), b"");
    }

    #[test]
    fn dot_dot_nul_and_system_paths_are_refused_before_anything_is_opened() {
        for (path, kind) in [
            ("/tmp/../etc/passwd", FileErrorKind::InvalidPath),
            ("/tmp/a\0b", FileErrorKind::InvalidPath),
            ("tmp/a", FileErrorKind::InvalidPath),
            ("/tmp//a", FileErrorKind::InvalidPath),
            ("/proc/self/environ", FileErrorKind::SystemPath),
            ("/sys/kernel/notes", FileErrorKind::SystemPath),
            ("/dev/null", FileErrorKind::SystemPath),
        ] {
            let e = put(
                &PutFile {
                    path: path.into(),
                    mode: 0o644,
                    size: 0,
                    create_parents: true,
                },
                &Inbox::default(),
                &ignore,
            )
            .expect_err(path);
            assert_eq!(e.kind, kind, "{path}: {e}");
            let (_, _, r) = get_all(path);
            assert_eq!(r.expect_err(path).kind, kind, "{path}");
            assert_eq!(list(path, 10).expect_err(path).kind, kind, "{path}");
        }
        let e = list("/proc", 10).expect_err("refused");
        assert!(e.message.contains("/proc"), "{e}");
    }

    #[test]
    fn a_symlink_is_refused_at_the_last_component_and_in_between() {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("real"), b"secret").expect("a file");
        symlink(dir.path().join("real"), dir.path().join("link")).expect("a symlink");
        symlink(dir.path(), dir.path().join("dirlink")).expect("a dir symlink");
        let link = dir.path().join("link");
        let (msgs, bytes, r) = get_all(link.to_str().expect("UTF-8"));
        let e = r.expect_err("a symlink");
        assert_eq!(e.kind, FileErrorKind::Symlink, "{e}");
        assert!(e.message.contains("/link is a symlink"), "{e}");
        assert!(msgs.is_empty() && bytes.is_empty(), "nothing was sent");
        let through = dir.path().join("dirlink/real");
        let (_, _, r) = get_all(through.to_str().expect("UTF-8"));
        let e = r.expect_err("a symlink in between");
        assert_eq!(e.kind, FileErrorKind::Symlink, "{e}");
        assert!(e.message.contains("/dirlink is a symlink"), "{e}");
        let e = put(&put_req(&link, 0), &Inbox::default(), &ignore).expect_err("not replaced");
        assert_eq!(e.kind, FileErrorKind::Symlink, "{e}");
        assert_eq!(std::fs::read(dir.path().join("real")).expect("intact"), b"secret");
    }

    #[test]
    fn a_fifo_is_refused_without_being_opened() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let fifo = dir.path().join("pipe");
        let c = CString::new(fifo.to_str().expect("UTF-8")).expect("no NUL");
        // SAFETY: `c` is NUL-terminated.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (_, _, r) = get_all(fifo.to_str().expect("UTF-8"));
        let e = r.expect_err("a fifo");
        assert_eq!(e.kind, FileErrorKind::SpecialFile, "{e}");
        assert!(e.message.contains("is a fifo"), "{e}");
    }

    #[test]
    fn a_file_is_read_with_its_size_first_and_its_digest_last() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("big");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("a file");
        let (msgs, bytes, r) = get_all(path.to_str().expect("UTF-8"));
        let d = r.expect("read");
        assert!(matches!(
            msgs.as_slice(),
            [GuestMessage::Reply(Reply::Opened(Content::File {
                size: 300_000,
                ..
            }))]
        ));
        assert_eq!(bytes, data);
        assert_eq!(d.size, 300_000);
        assert_eq!(d.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
    }

    #[test]
    fn a_directory_comes_as_a_tar_that_keeps_its_symlinks_as_symlinks() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let root = dir.path().join("tree");
        std::fs::create_dir_all(root.join("sub")).expect("dirs");
        std::fs::write(root.join("sub/f.txt"), b"inside").expect("a file");
        symlink("/etc/passwd", root.join("escape")).expect("a symlink");
        let (msgs, bytes, r) = get_all(root.to_str().expect("UTF-8"));
        let d = r.expect("archived");
        assert!(matches!(
            msgs.as_slice(),
            [GuestMessage::Reply(Reply::Opened(Content::DirectoryTar { .. }))]
        ));
        assert_eq!(d.size, bytes.len() as u64);
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for e in archive.entries().expect("a tar") {
            let mut e = e.expect("an entry");
            let path = e.path().expect("a path").to_string_lossy().into_owned();
            let kind = e.header().entry_type();
            let mut body = Vec::new();
            e.read_to_end(&mut body).expect("readable");
            if kind == tar::EntryType::Symlink {
                let target = e.link_name().expect("a target").expect("present");
                assert_eq!(target.to_str(), Some("/etc/passwd"));
            }
            seen.push((path, kind, body));
        }
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        let summary: Vec<(&str, tar::EntryType)> = seen.iter().map(|(p, k, _)| (p.as_str(), *k)).collect();
        assert_eq!(
            summary,
            [
                ("tree", tar::EntryType::Directory),
                ("tree/escape", tar::EntryType::Symlink),
                ("tree/sub", tar::EntryType::Directory),
                ("tree/sub/f.txt", tar::EntryType::Regular),
            ]
        );
        assert_eq!(seen[3].2, b"inside");
    }

    #[test]
    fn a_listing_names_kinds_keeps_raw_names_and_says_when_it_is_cut() {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("a"), b"12345").expect("a file");
        std::fs::create_dir(dir.path().join("b")).expect("a dir");
        symlink("a", dir.path().join("c")).expect("a symlink");
        std::fs::write(dir.path().join(OsStr::from_bytes(b"d\xff")), b"").expect("a non-UTF-8 name");
        let path = dir.path().to_str().expect("UTF-8");
        let l = list(path, 10).expect("listed");
        assert!(!l.truncated);
        let kinds: Vec<(&str, EntryKind)> = l.entries.iter().map(|e| (e.name.as_str(), e.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("a", EntryKind::File),
                ("b", EntryKind::Dir),
                ("c", EntryKind::Symlink),
                ("d\u{fffd}", EntryKind::File)
            ]
        );
        assert_eq!(l.entries[0].size, 5);
        assert_eq!(l.entries[3].raw_name.as_deref(), Some(&b"d\xff"[..]));
        assert!(l.entries[..3].iter().all(|e| e.raw_name.is_none()));
        let cut = list(path, 2).expect("listed");
        assert!(cut.truncated);
        assert_eq!(cut.entries.len(), 2);
        let e = list(&format!("{path}/a"), 10).expect_err("not a directory");
        assert_eq!(e.kind, FileErrorKind::WrongKind);
    }
}
