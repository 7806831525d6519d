//! Host folders shared into a sandbox: read-only unless the share says `rw`.
//!
//! A [`Share`] is parsed from `HOST:GUEST[:ro|:rw]` and must pass [`Shares::validate`] before a
//! backend sees it. Validation canonicalizes the host path (it must exist and be a directory) and
//! refuses folders that would hand the sandbox the user's identity or Airlock's own control:
//!
//! * `/` and the user's home directory itself (`$HOME`, the invoking user's home from the password
//!   database, and under sudo the home of `$SUDO_UID`);
//! * `~/.ssh` of each of those homes, anything inside it, and **every folder that contains it**
//!   (`/home`, `/`, the home itself): a share is recursive, so sharing any ancestor of `~/.ssh`,
//!   even read-only, hands the sandbox the user's private keys;
//! * Airlock's state directory, anything inside it (other sandboxes' sockets and overlays) and
//!   anything containing it (a sandbox could reach its own keeper's socket and records).
//!
//! Guest paths must be absolute, free of `..`, at most [`MAX_GUEST_PATH`] bytes of
//! `A-Z a-z 0-9 . _ - + @ /` (they travel on the microVM's kernel command line), and must not be `/`
//! or land on or under a path the sandbox itself needs ([`RESERVED_GUEST_PATHS`]). Two shares may
//! not use the same guest path, nor one inside another. At most [`MAX_SHARES`] shares.
//!
//! A **writable** share must belong to an ordinary user, never root, and only a microVM gets one:
//! whatever the sandbox writes there belongs to the folder's owner on the host. The microVM's
//! virtiofsd for a writable share runs as that owner, so the host kernel holds the sandbox to the
//! owner's rights (no `chown` to root, no set-user-ID root program left on the host). gVisor's
//! file server writes the sandbox's owners and mode bits straight onto the host (measured: a
//! `chown 0:0` and `chmod 6755` inside left a set-user-ID root shell in the host folder), so
//! gVisor sandboxes get read-only shares only ([`Shares::check_backend`]).
//!
//! Symlinks inside a share are never followed on the host: gVisor's gofer and virtiofsd open each
//! path component relative to the shared directory without following links, and the guest kernel
//! resolves a symlink's target inside the sandbox's own root. A link `x -> /etc/shadow` in a share
//! reads the *sandbox's* `/etc/shadow`. (A link the sandbox writes into a writable share is a plain
//! symlink on the host, which host programs that follow it will resolve on the host.)
//!
//! ```
//! use airlock_sandbox::Share;
//! let s: Share = "/srv/data:/data".parse().expect("parses");
//! assert!(!s.writable);
//! let s: Share = "/srv/out:/out:rw".parse().expect("parses");
//! assert!(s.writable);
//! ```

use std::ffi::CStr;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// At most this many shares per sandbox.
pub const MAX_SHARES: usize = 16;

/// Longest guest path, bytes (16 of them must fit on the kernel command line with the rest).
pub const MAX_GUEST_PATH: usize = 100;

/// Guest paths the sandbox needs: a share may not be one of them or lie inside one. `/` itself is
/// refused too.
pub const RESERVED_GUEST_PATHS: &[(&str, &str)] = &[
    ("/proc", "the kernel's process filesystem"),
    ("/sys", "the kernel's sysfs"),
    ("/dev", "the sandbox's device nodes"),
    ("/run", "the sandbox's runtime state"),
    (
        "/tmp",
        "the sandbox's scratch space: the framebuffer (/tmp/fb), the X server's socket and the logs",
    ),
    (
        "/etc",
        "the sandbox's configuration, including its resolver and CA bundle",
    ),
    ("/usr", "the sandbox's programs, its init and guest agent"),
    ("/bin", "the sandbox's programs"),
    ("/sbin", "the sandbox's programs"),
    ("/lib", "the sandbox's libraries"),
    ("/lib32", "the sandbox's libraries"),
    ("/lib64", "the sandbox's libraries"),
    ("/libx32", "the sandbox's libraries"),
    ("/boot", "the sandbox's boot files"),
];

/// One host folder shared into a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Share {
    /// The folder on the host (canonical once validated).
    #[ts(type = "string")]
    pub host: PathBuf,
    /// Where it appears in the sandbox (absolute).
    #[ts(type = "string")]
    pub guest: PathBuf,
    /// May the sandbox write to it? Read-only unless granted.
    #[serde(default)]
    pub writable: bool,
}

/// A `HOST:GUEST[:ro|:rw]` string that is not a share.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseShareError {
    /// No `:` separates host and guest paths.
    #[error("share {0:?} is not HOST:GUEST[:ro|:rw]: there is no guest path")]
    NoGuest(String),
    /// The host part is empty.
    #[error("share {0:?} has an empty host path")]
    EmptyHost(String),
    /// The guest part is empty.
    #[error("share {0:?} has an empty guest path")]
    EmptyGuest(String),
}

impl std::str::FromStr for Share {
    type Err = ParseShareError;

    /// Parses `HOST:GUEST`, `HOST:GUEST:ro` or `HOST:GUEST:rw`. The host path may contain `:`;
    /// guest paths may not (validation refuses them).
    fn from_str(s: &str) -> Result<Share, ParseShareError> {
        let (rest, writable) = match s.rsplit_once(':') {
            Some((rest, "rw")) => (rest, true),
            Some((rest, "ro")) => (rest, false),
            Some(_) => (s, false),
            None => return Err(ParseShareError::NoGuest(s.to_string())),
        };
        let (host, guest) = rest
            .rsplit_once(':')
            .ok_or_else(|| ParseShareError::NoGuest(s.to_string()))?;
        if host.is_empty() {
            return Err(ParseShareError::EmptyHost(s.to_string()));
        }
        if guest.is_empty() {
            return Err(ParseShareError::EmptyGuest(s.to_string()));
        }
        Ok(Share {
            host: host.into(),
            guest: guest.into(),
            writable,
        })
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.writable { "rw" } else { "ro" };
        write!(f, "{}:{}:{mode}", self.host.display(), self.guest.display())
    }
}

/// Why a host folder may not be shared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostRefusal {
    /// `/`.
    #[error("it is the host's root directory")]
    Root,
    /// A home directory itself.
    #[error("it is the home directory {0}")]
    Home(PathBuf),
    /// `~/.ssh` or inside it.
    #[error("it is or is inside the SSH directory {0}")]
    InsideSsh(PathBuf),
    /// An ancestor of `~/.ssh`: the share would carry the private keys.
    #[error("it contains the SSH directory {0} (a share is recursive: the sandbox would read the keys)")]
    ContainsSsh(PathBuf),
    /// A credentials directory of a home (`.gnupg`, `.aws`, `.kube`, …) or inside it.
    #[error("it is or is inside the credentials directory {0}")]
    InsideSecrets(PathBuf),
    /// An ancestor of a home's credentials directory.
    #[error("it contains the credentials directory {0} (a share is recursive: the sandbox would read them)")]
    ContainsSecrets(PathBuf),
    /// A kernel or runtime tree (`/proc`, `/sys`, `/dev`, `/run`, or on such a filesystem):
    /// processes' environments, devices, service sockets.
    #[error("it is a kernel or runtime tree ({0}), not a folder of files")]
    System(String),
    /// Airlock's state directory or inside it.
    #[error("it is or is inside Airlock's state directory {0}")]
    InsideState(PathBuf),
    /// An ancestor of Airlock's state directory.
    #[error("it contains Airlock's state directory {0} (the sandbox could reach keepers and records)")]
    ContainsState(PathBuf),
}

/// Why a guest path may not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestRefusal {
    /// Relative.
    #[error("it is not absolute")]
    NotAbsolute,
    /// Has a `..` component.
    #[error("it contains `..`")]
    DotDot,
    /// A character outside `A-Z a-z 0-9 . _ - + @ /`.
    #[error("it contains {0:?}: only A-Z a-z 0-9 . _ - + @ / are allowed")]
    Character(char),
    /// Longer than [`MAX_GUEST_PATH`].
    #[error("it is longer than {MAX_GUEST_PATH} bytes")]
    TooLong,
    /// `/`.
    #[error("it is the sandbox's root directory")]
    Root,
    /// On or under a reserved path.
    #[error("it is or is inside {path}, {why}")]
    Reserved {
        /// The reserved path.
        path: &'static str,
        /// What the sandbox keeps there.
        why: &'static str,
    },
}

/// Why a list of shares was refused.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// Too many shares.
    #[error("a sandbox may have at most {MAX_SHARES} shares, not {0}")]
    TooMany(usize),
    /// The host folder cannot be resolved (missing, unreadable).
    #[error("cannot share {path}: it cannot be resolved")]
    HostMissing {
        /// As given.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The host path is not a directory.
    #[error("cannot share {0}: it is not a directory")]
    HostNotDirectory(PathBuf),
    /// The canonical host path is not UTF-8.
    #[error("cannot share {0}: its path is not UTF-8")]
    HostNotUtf8(PathBuf),
    /// The host folder is refused.
    #[error("refusing to share {path}: {reason}")]
    HostRefused {
        /// The canonical host path.
        path: PathBuf,
        /// Why.
        #[source]
        reason: HostRefusal,
    },
    /// The guest path is refused.
    #[error("refusing guest path {path}: {reason}")]
    GuestRefused {
        /// As given.
        path: PathBuf,
        /// Why.
        #[source]
        reason: GuestRefusal,
    },
    /// Two shares use one guest path.
    #[error("two shares use the guest path {0}")]
    DuplicateGuest(PathBuf),
    /// One share's guest path lies inside another's.
    #[error("the guest path {inner} lies inside the share at {outer}")]
    NestedGuest {
        /// The outer share's guest path.
        outer: PathBuf,
        /// The inner one.
        inner: PathBuf,
    },
    /// A writable share of a folder root owns.
    #[error(
        "refusing to share {0} writable: it belongs to root, and what a sandbox writes into a \
         writable share belongs to the folder's owner (a root program set-user-ID would be a way \
         onto the host); share a folder of an ordinary user, or share this one read-only"
    )]
    WritableOwnedByRoot(PathBuf),
    /// A writable share asked of a gVisor sandbox.
    #[error(
        "cannot share {0} writable with a gVisor sandbox: gVisor writes the sandbox's owners and \
         set-user-ID bits onto the host unchanged; share it read-only, or use a microVM (whose \
         file server runs as the folder's owner)"
    )]
    WritableOnGvisor(PathBuf),
    /// The owner of a shared folder cannot be read.
    #[error("cannot read who owns the shared folder {path}")]
    Owner {
        /// The folder.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// The owner and group of a shared host folder (what a writable share's writes belong to).
pub fn folder_owner(path: &Path) -> Result<(u32, u32), ShareError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|source| ShareError::Owner {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((meta.uid(), meta.gid()))
}

/// What a host folder is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRules {
    /// Home directories that may not be shared, nor their `.ssh` or its ancestors.
    pub homes: Vec<PathBuf>,
    /// Airlock's state directory.
    pub state_dir: PathBuf,
}

impl HostRules {
    /// The rules for the user running this process: `$HOME`, the password database's home of the
    /// real uid and, under sudo, of `$SUDO_UID`.
    pub fn for_this_user(state_dir: &Path) -> HostRules {
        let mut homes: Vec<PathBuf> = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute())
            .into_iter()
            .collect();
        // SAFETY: getuid cannot fail and has no preconditions.
        let uid = unsafe { libc::getuid() };
        homes.extend(home_of(uid));
        if let Some(sudo) = std::env::var("SUDO_UID").ok().and_then(|u| u.parse().ok()) {
            homes.extend(home_of(sudo));
        }
        // Every person's home on this host (Airlock may run as root): theirs are not ours to share.
        homes.extend(people_homes(
            &std::fs::read_to_string("/etc/passwd").unwrap_or_default(),
        ));
        homes.sort();
        homes.dedup();
        HostRules {
            homes,
            state_dir: state_dir.to_path_buf(),
        }
    }
}

/// The home directories of people in a password file's text: `/root` and those under `/home`.
fn people_homes(passwd: &str) -> Vec<PathBuf> {
    passwd
        .lines()
        .filter_map(|l| l.split(':').nth(5))
        .map(PathBuf::from)
        .filter(|h| h == Path::new("/root") || (h.starts_with("/home") && h != Path::new("/home")))
        .collect()
}

/// Directories of a home that hold credentials: neither shared nor inside a share, when present.
const SECRET_DIRS: [&str; 8] = [
    ".gnupg",
    ".aws",
    ".kube",
    ".docker",
    ".azure",
    ".config/gcloud",
    ".password-store",
    ".local/share/keyrings",
];

/// Trees of the host that are kernel interfaces, devices or runtime sockets, never folders to share.
const SYSTEM_TREES: [&str; 5] = ["/proc", "/sys", "/dev", "/run", "/var/run"];

/// Whether `path` lies on a kernel filesystem (proc, sysfs, cgroup, debugfs, tracefs, securityfs,
/// bpf, configfs), wherever it is mounted.
fn on_kernel_fs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    const KERNEL_FS: [i64; 9] = [
        0x9fa0,      // proc
        0x6265_6572, // sysfs
        0x0027_e0eb, // cgroup
        0x6367_7270, // cgroup2
        0x6462_6720, // debugfs
        0x7472_6163, // tracefs
        0x7363_6673, // securityfs
        0xcafe_4a11, // bpf
        0x6265_6570, // configfs
    ];
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs reads the NUL-terminated path and fills the zeroed struct it is given.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && KERNEL_FS.contains(&(st.f_type as i64))
    }
}

/// The password database's home directory of `uid`.
fn home_of(uid: libc::uid_t) -> Option<PathBuf> {
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: passwd is plain data; getpwuid_r writes into `pwd` and `buf` (whose length it is
    // told) and sets `result` to `&pwd` or null. The strings it points at live in `buf`, which
    // outlives their use below.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
            return None;
        }
        let dir = CStr::from_ptr(pwd.pw_dir).to_str().ok()?;
        Some(PathBuf::from(dir)).filter(|d| d.is_absolute() && d != Path::new("/"))
    }
}

/// Shares that passed [`Shares::validate`]: canonical host folders, normalized guest paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Shares(Vec<Share>);

impl Shares {
    /// No shares.
    pub fn none() -> Shares {
        Shares(Vec::new())
    }

    /// The shares, in the order given.
    pub fn as_slice(&self) -> &[Share] {
        &self.0
    }

    /// Checks every share against `rules` (see the module docs) and returns them with canonical
    /// host paths and normalized guest paths.
    pub fn validate(shares: &[Share], rules: &HostRules) -> Result<Shares, ShareError> {
        if shares.len() > MAX_SHARES {
            return Err(ShareError::TooMany(shares.len()));
        }
        let mut out: Vec<Share> = Vec::with_capacity(shares.len());
        for s in shares {
            let host = check_host(&s.host, rules)?;
            let guest = check_guest(&s.guest)?;
            for earlier in &out {
                if earlier.guest == guest {
                    return Err(ShareError::DuplicateGuest(guest));
                }
                let (outer, inner) = if guest.starts_with(&earlier.guest) {
                    (&earlier.guest, &guest)
                } else {
                    (&guest, &earlier.guest)
                };
                if inner.starts_with(outer) {
                    return Err(ShareError::NestedGuest {
                        outer: outer.clone(),
                        inner: inner.clone(),
                    });
                }
            }
            if s.writable && folder_owner(&host)?.0 == 0 {
                return Err(ShareError::WritableOwnedByRoot(host));
            }
            out.push(Share {
                host,
                guest,
                writable: s.writable,
            });
        }
        Ok(Shares(out))
    }

    /// Refuses a writable share for a backend that cannot keep the sandbox to the folder owner's
    /// rights (gVisor; see the module docs).
    pub fn check_backend(&self, backend: crate::BackendKind) -> Result<(), ShareError> {
        match backend {
            crate::BackendKind::Microvm => Ok(()),
            crate::BackendKind::Gvisor => match self.0.iter().find(|s| s.writable) {
                Some(s) => Err(ShareError::WritableOnGvisor(s.host.clone())),
                None => Ok(()),
            },
        }
    }
}

/// The canonical path if it exists, else the path as given.
fn resolved(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn check_host(given: &Path, rules: &HostRules) -> Result<PathBuf, ShareError> {
    let path = std::fs::canonicalize(given).map_err(|source| ShareError::HostMissing {
        path: given.to_path_buf(),
        source,
    })?;
    if !path.is_dir() {
        return Err(ShareError::HostNotDirectory(path));
    }
    if path.to_str().is_none() {
        return Err(ShareError::HostNotUtf8(path));
    }
    let refuse = |reason| ShareError::HostRefused {
        path: path.clone(),
        reason,
    };
    if path == Path::new("/") {
        return Err(refuse(HostRefusal::Root));
    }
    if let Some(tree) = SYSTEM_TREES.iter().find(|t| path.starts_with(t)) {
        return Err(refuse(HostRefusal::System((*tree).to_string())));
    }
    if on_kernel_fs(&path) {
        return Err(refuse(HostRefusal::System("a kernel filesystem".into())));
    }
    for home in &rules.homes {
        for h in [home.clone(), resolved(home)] {
            if path == h {
                return Err(refuse(HostRefusal::Home(h)));
            }
        }
        for ssh in [home.join(".ssh"), resolved(&home.join(".ssh"))] {
            if path.starts_with(&ssh) {
                return Err(refuse(HostRefusal::InsideSsh(ssh)));
            }
            if ssh.starts_with(&path) {
                return Err(refuse(HostRefusal::ContainsSsh(ssh)));
            }
        }
        for secret in SECRET_DIRS
            .iter()
            .map(|d| resolved(&home.join(d)))
            .filter(|d| d.exists())
        {
            if path.starts_with(&secret) {
                return Err(refuse(HostRefusal::InsideSecrets(secret)));
            }
            if secret.starts_with(&path) {
                return Err(refuse(HostRefusal::ContainsSecrets(secret)));
            }
        }
    }
    for state in [rules.state_dir.clone(), resolved(&rules.state_dir)] {
        if path.starts_with(&state) {
            return Err(refuse(HostRefusal::InsideState(state)));
        }
        if state.starts_with(&path) {
            return Err(refuse(HostRefusal::ContainsState(state)));
        }
    }
    Ok(path)
}

fn check_guest(given: &Path) -> Result<PathBuf, ShareError> {
    let refuse = |reason| ShareError::GuestRefused {
        path: given.to_path_buf(),
        reason,
    };
    let text = given.to_string_lossy();
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '@' | '/')))
    {
        return Err(refuse(GuestRefusal::Character(c)));
    }
    if !given.is_absolute() {
        return Err(refuse(GuestRefusal::NotAbsolute));
    }
    let mut norm = PathBuf::from("/");
    for c in given.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(refuse(GuestRefusal::DotDot)),
            Component::Normal(n) => norm.push(n),
            Component::Prefix(_) => return Err(refuse(GuestRefusal::NotAbsolute)),
        }
    }
    if norm.as_os_str().len() > MAX_GUEST_PATH {
        return Err(refuse(GuestRefusal::TooLong));
    }
    if norm == Path::new("/") {
        return Err(refuse(GuestRefusal::Root));
    }
    if let Some((path, why)) = RESERVED_GUEST_PATHS.iter().find(|(r, _)| norm.starts_with(r)) {
        return Err(refuse(GuestRefusal::Reserved { path, why }));
    }
    Ok(norm)
}

/// The microVM's mount tag for the share at `index`.
pub fn mount_tag(index: usize) -> String {
    format!("airlock{index}")
}

/// The kernel command-line parameter that tells the guest's init what to mount:
/// `airlock.shares=ro:/data,rw:/out`, the n-th entry on tag [`mount_tag`]`(n)`. `None` without
/// shares. Validated guest paths contain no `,`, `:` or whitespace.
pub fn kernel_param(shares: &[Share]) -> Option<String> {
    if shares.is_empty() {
        return None;
    }
    let list: Vec<String> = shares
        .iter()
        .map(|s| {
            let mode = if s.writable { "rw" } else { "ro" };
            format!("{mode}:{}", s.guest.display())
        })
        .collect();
    Some(format!("airlock.shares={}", list.join(",")))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn kernel_and_runtime_trees_are_refused_wherever_they_are() {
        let rules = HostRules {
            homes: vec![],
            state_dir: PathBuf::from("/nonexistent-airlock-state"),
        };
        for p in ["/proc", "/proc/self", "/sys/kernel", "/dev", "/run"] {
            let e = check_host(Path::new(p), &rules).unwrap_err();
            assert!(
                matches!(
                    e,
                    ShareError::HostRefused {
                        reason: HostRefusal::System(_),
                        ..
                    }
                ),
                "{p}: {e}"
            );
        }
    }

    #[test]
    fn a_homes_credentials_are_refused_and_so_are_folders_holding_them() {
        let root = std::env::temp_dir().join(format!("airlock-share-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let home = root.join("ana");
        std::fs::create_dir_all(home.join(".aws")).unwrap();
        std::fs::create_dir_all(home.join("work")).unwrap();
        let rules = HostRules {
            homes: vec![home.clone()],
            state_dir: root.join("state"),
        };
        let refused = |p: &Path| match check_host(p, &rules) {
            Err(ShareError::HostRefused { reason, .. }) => Some(reason),
            _ => None,
        };
        assert!(matches!(
            refused(&home.join(".aws")),
            Some(HostRefusal::InsideSecrets(_))
        ));
        assert!(matches!(
            refused(&root),
            Some(HostRefusal::ContainsSecrets(_) | HostRefusal::ContainsSsh(_))
        ));
        assert_eq!(
            refused(&home.join("work")),
            None,
            "an ordinary folder of a home may be shared"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn every_persons_home_in_the_password_file_counts() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nbin:x:2:2:bin:/bin:/usr/sbin/nologin\n\
                      bob:x:1000:1000::/home/bob:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(
            people_homes(passwd),
            [PathBuf::from("/root"), PathBuf::from("/home/bob")]
        );
    }

    /// A scratch tree: `home` (with `.ssh/keys`), `state` (with `sandboxes/x`), `work/project`.
    struct Tree {
        root: PathBuf,
    }

    impl Tree {
        fn new(name: &str) -> Tree {
            let root = std::env::temp_dir().join(format!("airlock-share-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            for d in ["home/.ssh/keys", "home/code", "state/sandboxes/x", "work/project"] {
                fs::create_dir_all(root.join(d)).expect("mkdir");
            }
            fs::write(root.join("work/file"), b"x").expect("write");
            Tree { root }
        }

        fn rules(&self) -> HostRules {
            HostRules {
                homes: vec![self.root.join("home")],
                state_dir: self.root.join("state"),
            }
        }

        fn p(&self, rel: &str) -> PathBuf {
            self.root.join(rel)
        }

        fn check(&self, host: &str, guest: &str) -> Result<Shares, ShareError> {
            let host = if host.starts_with('/') {
                PathBuf::from(host)
            } else {
                self.p(host)
            };
            Shares::validate(
                &[Share {
                    host,
                    guest: guest.into(),
                    writable: false,
                }],
                &self.rules(),
            )
        }

        fn host_refusal(&self, host: &str) -> HostRefusal {
            match self.check(host, "/data") {
                Err(ShareError::HostRefused { reason, .. }) => reason,
                other => panic!("{host} was not refused as a host folder: {other:?}"),
            }
        }

        fn guest_refusal(&self, guest: &str) -> GuestRefusal {
            match self.check("work/project", guest) {
                Err(ShareError::GuestRefused { reason, .. }) => reason,
                other => panic!("{guest} was not refused as a guest path: {other:?}"),
            }
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }

    #[test]
    fn host_guest_and_mode_parse_read_only_by_default() {
        let s: Share = "/a/b:/data".parse().expect("parses");
        assert_eq!(
            (s.host.as_path(), s.guest.as_path(), s.writable),
            (Path::new("/a/b"), Path::new("/data"), false)
        );
        assert!(!"/a:/data:ro".parse::<Share>().expect("ro").writable);
        assert!("/a:/data:rw".parse::<Share>().expect("rw").writable);
        let s: Share = "/odd:name:/data:rw".parse().expect("colon in host");
        assert_eq!(s.host, Path::new("/odd:name"));
        assert_eq!(s.to_string(), "/odd:name:/data:rw");
    }

    #[test]
    fn strings_without_a_guest_path_or_with_empty_parts_do_not_parse() {
        assert_eq!("/a".parse::<Share>(), Err(ParseShareError::NoGuest("/a".into())));
        assert_eq!(
            "/a:rw".parse::<Share>(),
            Err(ParseShareError::NoGuest("/a:rw".into()))
        );
        assert_eq!(
            ":/data".parse::<Share>(),
            Err(ParseShareError::EmptyHost(":/data".into()))
        );
        assert_eq!(
            "/a::ro".parse::<Share>(),
            Err(ParseShareError::EmptyGuest("/a::ro".into()))
        );
    }

    #[test]
    fn shares_deserialize_read_only_unless_writable_is_given() {
        let s: Share = serde_json::from_str(r#"{"host":"/a","guest":"/b"}"#).expect("json");
        assert!(!s.writable);
        assert!(serde_json::from_str::<Share>(r#"{"host":"/a","guest":"/b","x":1}"#).is_err());
    }

    #[test]
    fn an_ordinary_folder_is_accepted_with_its_canonical_path() {
        let t = Tree::new("ok");
        std::os::unix::fs::symlink(t.p("work/project"), t.p("link")).expect("symlink");
        let s = t.check("link", "/data/./x/").expect("accepted");
        let s = &s.as_slice()[0];
        assert_eq!(s.host, fs::canonicalize(t.p("work/project")).expect("canon"));
        assert_eq!(s.guest, Path::new("/data/x"));
        // A folder inside the home (but not .ssh) is fine.
        t.check("home/code", "/code").expect("home subfolder");
    }

    #[test]
    fn a_missing_path_or_a_file_is_refused_naming_it() {
        let t = Tree::new("missing");
        let e = t.check("nope", "/data").expect_err("missing");
        assert!(matches!(e, ShareError::HostMissing { .. }));
        assert!(e.to_string().contains("nope"), "{e}");
        let e = t.check("work/file", "/data").expect_err("file");
        assert!(matches!(e, ShareError::HostNotDirectory(_)));
        assert!(e.to_string().contains("work/file"), "{e}");
    }

    #[test]
    fn the_root_the_home_and_anything_holding_or_inside_ssh_are_refused() {
        let t = Tree::new("home");
        assert_eq!(t.host_refusal("/"), HostRefusal::Root);
        assert!(matches!(t.host_refusal("home"), HostRefusal::Home(_)));
        assert!(matches!(t.host_refusal("home/.ssh"), HostRefusal::InsideSsh(_)));
        assert!(matches!(
            t.host_refusal("home/.ssh/keys"),
            HostRefusal::InsideSsh(_)
        ));
        // The folder holding the home (like /home) contains ~/.ssh.
        assert!(matches!(
            t.host_refusal(&t.root.display().to_string()),
            HostRefusal::ContainsSsh(_)
        ));
        // A symlink to the home is resolved first.
        std::os::unix::fs::symlink(t.p("home"), t.p("work/h")).expect("symlink");
        assert!(matches!(t.host_refusal("work/h"), HostRefusal::Home(_)));
        let e = t.check("home/.ssh", "/data").expect_err("ssh");
        assert!(e.to_string().contains(".ssh"), "{e}");
    }

    #[test]
    fn the_state_directory_and_anything_inside_or_holding_it_are_refused() {
        let t = Tree::new("state");
        let rules = HostRules {
            homes: vec![],
            state_dir: t.p("state"),
        };
        let check = |rel: &str| {
            let e = Shares::validate(
                &[Share {
                    host: t.p(rel),
                    guest: "/data".into(),
                    writable: true,
                }],
                &rules,
            )
            .expect_err("refused");
            match e {
                ShareError::HostRefused { reason, .. } => reason,
                other => panic!("{other:?}"),
            }
        };
        assert!(matches!(check("state"), HostRefusal::InsideState(_)));
        assert!(matches!(check("state/sandboxes/x"), HostRefusal::InsideState(_)));
        assert!(matches!(check(""), HostRefusal::ContainsState(_)));
    }

    #[test]
    fn the_users_own_home_and_ssh_are_refused_without_being_named() {
        let t = Tree::new("real");
        let rules = HostRules::for_this_user(&t.p("state"));
        let Some(home) = rules.homes.first().filter(|h| h.is_dir()) else {
            return; // no home directory on this machine to protect
        };
        let e = Shares::validate(
            &[Share {
                host: home.clone(),
                guest: "/data".into(),
                writable: false,
            }],
            &rules,
        )
        .expect_err("home refused");
        assert!(matches!(e, ShareError::HostRefused { .. }), "{e}");
    }

    #[test]
    fn guest_paths_that_are_relative_escape_or_land_on_what_the_sandbox_needs_are_refused() {
        let t = Tree::new("guest");
        assert_eq!(t.guest_refusal("data"), GuestRefusal::NotAbsolute);
        assert_eq!(t.guest_refusal("/data/../etc"), GuestRefusal::DotDot);
        assert_eq!(t.guest_refusal("/"), GuestRefusal::Root);
        assert_eq!(t.guest_refusal("//./"), GuestRefusal::Root);
        assert_eq!(t.guest_refusal("/da ta"), GuestRefusal::Character(' '));
        assert_eq!(t.guest_refusal("/a,b"), GuestRefusal::Character(','));
        assert_eq!(t.guest_refusal("/a:b"), GuestRefusal::Character(':'));
        assert_eq!(
            t.guest_refusal(&format!("/{}", "a".repeat(MAX_GUEST_PATH))),
            GuestRefusal::TooLong
        );
        for p in [
            "/proc",
            "/sys/fs",
            "/dev",
            "/dev/shm",
            "/tmp",
            "/tmp/fb",
            "/etc",
            "/usr/local/bin",
            "/run",
            "/bin",
            "/lib64",
        ] {
            assert!(matches!(t.guest_refusal(p), GuestRefusal::Reserved { .. }), "{p}");
        }
        let e = t.check("work/project", "/tmp/fb").expect_err("fb");
        assert_eq!(
            e.to_string(),
            "refusing guest path /tmp/fb: it is or is inside /tmp, the sandbox's scratch space: the framebuffer (/tmp/fb), the X server's socket and the logs"
        );
        // Paths that merely start with the same letters are fine.
        t.check("work/project", "/procedures").expect("not /proc");
        t.check("work/project", "/root/work").expect("under root's home");
    }

    #[test]
    fn two_shares_on_one_guest_path_or_one_inside_another_are_refused() {
        let t = Tree::new("dup");
        let share = |guest: &str| Share {
            host: t.p("work/project"),
            guest: guest.into(),
            writable: false,
        };
        let e = Shares::validate(&[share("/data"), share("/data/")], &t.rules()).expect_err("dup");
        assert!(
            matches!(e, ShareError::DuplicateGuest(ref p) if p == Path::new("/data")),
            "{e}"
        );
        let e = Shares::validate(&[share("/data/in"), share("/data")], &t.rules()).expect_err("nested");
        assert!(
            matches!(e, ShareError::NestedGuest { ref outer, .. } if outer == Path::new("/data")),
            "{e}"
        );
        Shares::validate(&[share("/data"), share("/data2")], &t.rules()).expect("siblings");
    }

    #[test]
    fn more_than_the_limit_is_refused() {
        let t = Tree::new("many");
        let many: Vec<Share> = (0..=MAX_SHARES)
            .map(|i| Share {
                host: t.p("work/project"),
                guest: format!("/d{i}").into(),
                writable: false,
            })
            .collect();
        assert!(matches!(
            Shares::validate(&many, &t.rules()),
            Err(ShareError::TooMany(17))
        ));
        Shares::validate(&many[..MAX_SHARES], &t.rules()).expect("sixteen");
    }

    #[test]
    fn sixteen_longest_shares_fit_the_kernel_command_line() {
        let shares: Vec<Share> = (0..MAX_SHARES)
            .map(|i| Share {
                host: "/h".into(),
                guest: format!("/{i:02}{}", "x".repeat(MAX_GUEST_PATH - 3)).into(),
                writable: true,
            })
            .collect();
        let p = kernel_param(&shares).expect("param");
        // Linux x86's COMMAND_LINE_SIZE is 2048, and the rest of Airlock's line is ~100 bytes.
        assert!(p.len() < 1800, "{}", p.len());
        assert_eq!(
            kernel_param(&shares[..1]).map(|p| p[..18].to_string()),
            Some("airlock.shares=rw:".into())
        );
        assert_eq!(kernel_param(&[]), None);
    }

    #[test]
    fn a_writable_share_must_belong_to_an_ordinary_user() {
        let t = Tree::new("owner");
        let writable = |rel: &str| {
            Shares::validate(
                &[Share {
                    host: t.p(rel),
                    guest: "/out".into(),
                    writable: true,
                }],
                &t.rules(),
            )
        };
        std::os::unix::fs::chown(t.p("work/project"), Some(0), Some(0)).expect("chown (tests run as root)");
        let e = writable("work/project").expect_err("root's folder");
        assert!(matches!(e, ShareError::WritableOwnedByRoot(_)), "{e}");
        assert!(e.to_string().contains("belongs to root"), "{e}");
        t.check("work/project", "/data").expect("read-only is fine");
        std::os::unix::fs::chown(t.p("work/project"), Some(1000), Some(1000)).expect("chown");
        writable("work/project").expect("an ordinary user's folder");
    }

    #[test]
    fn only_a_microvm_gets_a_writable_share() {
        let t = Tree::new("backend");
        std::os::unix::fs::chown(t.p("work/project"), Some(1000), Some(1000))
            .expect("chown (tests run as root)");
        let shares = Shares::validate(
            &[Share {
                host: t.p("work/project"),
                guest: "/out".into(),
                writable: true,
            }],
            &t.rules(),
        )
        .expect("valid");
        shares
            .check_backend(crate::BackendKind::Microvm)
            .expect("microvm");
        let e = shares
            .check_backend(crate::BackendKind::Gvisor)
            .expect_err("gvisor");
        assert!(e.to_string().contains("writable with a gVisor sandbox"), "{e}");
        t.check("work/project", "/data")
            .expect("read-only")
            .check_backend(crate::BackendKind::Gvisor)
            .expect("gVisor may read");
    }
}
