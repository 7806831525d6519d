//! Host folders shared into real sandboxes (`CreateRequest.shares` through `airlock serve`'s API):
//! read-only unless writable, writes to a writable share reach the host and belong to the
//! folder's owner there, symlinks never lead out of the sandbox onto the host, and folders that
//! would hand over the host are refused. gVisor binds them (read-only only); a QEMU microVM (TCG
//! here) mounts them over virtiofs.

use std::path::{Path, PathBuf};

use airlock_test_kit::e2e::serve::Serve;
use airlock_test_kit::e2e::Env;
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

/// A host folder for a test's shares, outside the state directory (removed on drop).
struct HostDir(PathBuf);

impl HostDir {
    fn new(name: &str) -> Result<HostDir> {
        let p = PathBuf::from(format!("/tmp/airlock-share-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p)?;
        Ok(HostDir(p))
    }

    /// A fresh subfolder.
    fn sub(&self, name: &str) -> Result<PathBuf> {
        let p = self.0.join(name);
        std::fs::create_dir_all(&p)?;
        Ok(p)
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `airlock serve` without a sandbox of its own, and host folders to share.
struct Fixture {
    // Dropped in order: the server, then the state dir (destroying the sandboxes), then the
    // host folders.
    serve: Serve,
    env: Env,
    host: HostDir,
}

impl Fixture {
    fn start(name: &str) -> Result<Fixture> {
        let env = Env::new(name);
        let serve = Serve::start(&env, &["--no-sandbox"])?;
        Ok(Fixture {
            serve,
            env,
            host: HostDir::new(name)?,
        })
    }

    /// `POST /api/sandboxes` for a minimal sandbox on `backend` with `shares`.
    async fn request(&self, backend: &str, shares: Value) -> Result<(u16, Value)> {
        self.serve
            .post(
                "/sandboxes",
                json!({"backend": backend, "profile": "minimal", "shares": shares}),
            )
            .await
    }

    /// Creates a sandbox with `shares`; its id.
    async fn create(&self, backend: &str, shares: Value) -> Result<String> {
        let (status, v) = self.request(backend, shares).await?;
        ensure!(status == 201, "create failed: {status} {v}");
        Ok(v["id"].as_str().context("no id")?.to_string())
    }
}

/// The ordinary user a writable share's folder belongs to in these tests (they run as root).
const OWNER: u32 = 1000;

/// A share's JSON.
fn share(host: &Path, guest: &str, writable: bool) -> Value {
    json!({"host": host, "guest": guest, "writable": writable})
}

/// `sh -c script` in sandbox `sb` through the operator's CLI: (exited 0, stdout, stderr).
fn run(env: &Env, sb: &str, script: &str) -> (bool, String, String) {
    let out = env.airlock(&["sandbox", "exec", sb, "--", "sh", "-c", script]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `script` must succeed in the sandbox; its stdout.
fn sh(env: &Env, sb: &str, script: &str) -> Result<String> {
    env.guest_sh(sb, script)
}

/// Names in a host folder, sorted.
fn names(dir: &Path) -> Result<Vec<String>> {
    let mut n: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    n.sort();
    Ok(n)
}

/// Fills a folder that will be shared read-only: a file `f`.
fn fill_read_only(dir: &Path) -> Result<()> {
    std::fs::write(dir.join("f"), "original\n")?;
    Ok(())
}

/// In a read-only share at `guest` of host folder `dir` (filled by [`fill_read_only`]): the file
/// reads, and no write works (appending, creating, making a folder or a link, removing, touching);
/// the host folder is unchanged. Truncating is [`check_no_truncate`].
fn check_read_only(env: &Env, sb: &str, dir: &Path, guest: &str) -> Result<()> {
    let read = sh(env, sb, &format!("cat {guest}/f"))?;
    assert_eq!(
        read,
        "original\n",
        "the shared file reads as on the host; inside: {}",
        sh(
            env,
            sb,
            &format!("ls -la {guest}; grep ' {guest} ' /proc/mounts; stat {guest}/f")
        )?
    );
    for script in [
        format!("echo x >> {guest}/f"),
        format!("echo x > {guest}/new"),
        format!("mkdir {guest}/d"),
        format!("rm {guest}/f"),
        format!("ln -s /etc/passwd {guest}/link"),
        format!("touch {guest}/f"),
    ] {
        let (ok, out, err) = run(env, sb, &script);
        assert!(!ok, "`{script}` worked in a read-only share: {out}{err}");
    }
    assert_eq!(std::fs::read_to_string(dir.join("f"))?, "original\n");
    assert_eq!(names(dir)?, ["f"], "nothing new in the host folder");
    Ok(())
}

/// In a read-only share at `guest` of host folder `dir` (filled by [`fill_read_only`]): opening
/// the file for writing with `O_TRUNC` (`echo x > f`) fails, and the host's file keeps its bytes.
fn check_no_truncate(env: &Env, sb: &str, dir: &Path, guest: &str) -> Result<()> {
    let (ok, out, err) = run(env, sb, &format!("echo x > {guest}/f"));
    assert!(!ok, "overwriting worked in a read-only share: {out}{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("f"))?,
        "original\n",
        "the host's file keeps its bytes after `echo x > {guest}/f` was refused inside ({})",
        err.trim()
    );
    Ok(())
}

/// In a writable share at `guest` of host folder `dir`: the sandbox's writes appear on the host,
/// and the host's on the inside.
fn check_writable(env: &Env, sb: &str, dir: &Path, guest: &str) -> Result<()> {
    sh(
        env,
        sb,
        &format!("echo hello > {guest}/new.txt && mkdir {guest}/d && printf deep > {guest}/d/x"),
    )?;
    assert_eq!(std::fs::read_to_string(dir.join("new.txt"))?, "hello\n");
    assert_eq!(std::fs::read_to_string(dir.join("d/x"))?, "deep");
    std::fs::write(dir.join("from-host"), "made on the host")?;
    assert_eq!(
        sh(env, sb, &format!("cat {guest}/from-host"))?,
        "made on the host"
    );
    Ok(())
}

/// In a writable share at `guest` of host folder `dir` (belonging to [`OWNER`]): what the sandbox
/// makes there belongs to the owner on the host, whatever it asks for — a `chown 0:0` and a
/// `chmod 6755` of a shell inside leave no set-user-ID root program on the host.
fn check_writes_belong_to_the_owner(env: &Env, sb: &str, dir: &Path, guest: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (_, out, err) = run(
        env,
        sb,
        &format!("cp /bin/sh {guest}/sh; chown 0:0 {guest}/sh; chmod 6755 {guest}/sh; ls -ln {guest}/sh"),
    );
    let meta = std::fs::metadata(dir.join("sh")).with_context(|| format!("the copy was made: {out}{err}"))?;
    assert_eq!(
        (meta.uid(), meta.gid()),
        (OWNER, OWNER),
        "the sandbox's file belongs to the folder's owner on the host (inside: {out}{err})"
    );
    assert!(
        !(meta.uid() == 0 && meta.mode() & 0o4000 != 0),
        "a set-user-ID root program reached the host"
    );
    for made in ["new.txt", "d", "d/x"] {
        let m = std::fs::symlink_metadata(dir.join(made))?;
        assert_eq!((m.uid(), m.gid()), (OWNER, OWNER), "{made} belongs to the owner");
    }
    Ok(())
}

/// A symlink to /etc/shadow made inside a writable share at `guest` (host folder `dir`) reads the
/// sandbox's own /etc/shadow (marked first, so it cannot be mistaken for the host's) or nothing;
/// on the host it is a plain link.
fn check_link_made_inside(env: &Env, sb: &str, dir: &Path, guest: &str) -> Result<()> {
    let marker = "airlock-sandbox-marker:*:1:0:99999:7:::";
    sh(env, sb, &format!("echo '{marker}' >> /etc/shadow"))?;
    let own = sh(env, sb, "cat /etc/shadow")?;
    assert!(own.contains(marker), "the sandbox's shadow is marked: {own}");
    sh(env, sb, &format!("ln -s /etc/shadow {guest}/shadow"))?;
    let host_shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
    let (ok, via_link, err) = run(env, sb, &format!("cat {guest}/shadow"));
    if ok {
        assert_eq!(via_link, own, "the link reads the sandbox's own /etc/shadow");
        assert_ne!(via_link, host_shadow, "the link does not read the host's");
    } else {
        eprintln!("reading the link failed inside (allowed): {err}");
    }
    let meta = std::fs::symlink_metadata(dir.join("shadow"))?;
    assert!(meta.file_type().is_symlink(), "on the host it is a link");
    assert_eq!(std::fs::read_link(dir.join("shadow"))?, Path::new("/etc/shadow"));
    assert!(
        !host_shadow.contains(marker),
        "the host's /etc/shadow is untouched"
    );
    Ok(())
}

/// Host-made links in a share (folder `dir`) pointing outside it, at `secret` (a folder beside
/// the share holding `token`): absolute, relative and to the folder.
fn plant_host_links(dir: &Path, secret: &Path) -> Result<String> {
    let token = format!("host-secret-{}", std::process::id());
    std::fs::write(secret.join("token"), &token)?;
    std::os::unix::fs::symlink(secret.join("token"), dir.join("abs"))?;
    let secret_name = secret.file_name().context("secret name")?;
    std::os::unix::fs::symlink(Path::new("..").join(secret_name).join("token"), dir.join("rel"))?;
    std::os::unix::fs::symlink(secret, dir.join("dir"))?;
    Ok(token)
}

/// None of the links [`plant_host_links`] made reaches the host file from inside the share at
/// `guest`.
fn check_host_links(env: &Env, sb: &str, guest: &str, token: &str) -> Result<()> {
    let listing = sh(env, sb, &format!("ls -l {guest}"))?;
    for link in ["abs", "rel", "dir/token"] {
        let (ok, out, err) = run(env, sb, &format!("cat {guest}/{link}"));
        assert!(
            !out.contains(token),
            "{guest}/{link} read the host's file from inside (exit ok: {ok}): {out}{err}\n{listing}"
        );
    }
    Ok(())
}

/// A read-only share cannot be written from inside a gVisor sandbox, and the host folder is
/// unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_share_cannot_be_written_from_a_gvisor_sandbox() -> Result<()> {
    let f = Fixture::start("share-ro")?;
    let dir = f.host.sub("in")?;
    fill_read_only(&dir)?;
    let sb = f.create("gvisor", json!([share(&dir, "/data", false)])).await?;
    check_read_only(&f.env, &sb, &dir, "/data")
}

/// Overwriting a file of a read-only share from inside a gVisor sandbox is refused, and the host's
/// file keeps its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_shares_file_cannot_be_truncated_from_a_gvisor_sandbox() -> Result<()> {
    let f = Fixture::start("share-trunc")?;
    let dir = f.host.sub("in")?;
    fill_read_only(&dir)?;
    let sb = f.create("gvisor", json!([share(&dir, "/data", false)])).await?;
    check_no_truncate(&f.env, &sb, &dir, "/data")
}

/// A share is read-only when `writable` is left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_without_writable_is_read_only() -> Result<()> {
    let f = Fixture::start("share-default")?;
    let dir = f.host.sub("in")?;
    fill_read_only(&dir)?;
    let sb = f
        .create("gvisor", json!([{"host": dir, "guest": "/data"}]))
        .await?;
    check_read_only(&f.env, &sb, &dir, "/data")
}

/// A gVisor sandbox gets no writable share (gVisor would write its owners and set-user-ID bits
/// onto the host): refused 400 naming why, and no sandbox is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writable_share_is_refused_for_a_gvisor_sandbox() -> Result<()> {
    let f = Fixture::start("share-rw-gvisor")?;
    let dir = f.host.sub("out")?;
    std::os::unix::fs::chown(&dir, Some(OWNER), Some(OWNER))?;
    let (status, v) = f.request("gvisor", json!([share(&dir, "/out", true)])).await?;
    assert_eq!(status, 400, "{v}");
    let message = v["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("writable with a gVisor sandbox") && message.contains("read-only"),
        "{message}"
    );
    assert!(f.env.store.list()?.is_empty(), "no sandbox was made");
    assert!(names(&dir)?.is_empty(), "nothing reached the folder");
    Ok(())
}

/// A folder root owns is never shared writable (what the sandbox writes would be root's), on
/// any backend; read-only it may be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writable_share_of_a_folder_root_owns_is_refused() -> Result<()> {
    let f = Fixture::start("share-rw-root")?;
    let dir = f.host.sub("out")?;
    std::os::unix::fs::chown(&dir, Some(0), Some(0))?;
    for backend in ["microvm", "gvisor"] {
        let (status, v) = f.request(backend, json!([share(&dir, "/out", true)])).await?;
        assert_eq!(status, 400, "{backend}: {v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(message.contains("it belongs to root"), "{backend}: {message}");
    }
    assert!(f.env.store.list()?.is_empty(), "no sandbox was made");
    Ok(())
}

/// A symlink the host put in a share, pointing outside it, does not reach the host file from
/// inside the sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_made_symlink_out_of_a_share_does_not_reach_the_host_file() -> Result<()> {
    let f = Fixture::start("share-link-out")?;
    let dir = f.host.sub("in")?;
    let secret = f.host.sub("secret")?;
    let token = plant_host_links(&dir, &secret)?;
    let sb = f.create("gvisor", json!([share(&dir, "/data", false)])).await?;
    check_host_links(&f.env, &sb, "/data", &token)
}

/// Sharing `/`, the home directory, the state directory or onto a reserved guest path is refused
/// with a clear error (through the API and the CLI), and no sandbox is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_root_home_or_the_state_dir_is_refused_with_a_clear_error() -> Result<()> {
    let f = Fixture::start("share-refused")?;
    let home = PathBuf::from(std::env::var("HOME").context("HOME")?);
    let home = home.canonicalize()?;
    let state = f.env.root.canonicalize()?;
    let ok_dir = f.host.sub("fine")?;
    let cases = [
        (
            share(Path::new("/"), "/data", false),
            "refusing to share /: it is the host's root directory".to_string(),
        ),
        (
            share(&home, "/data", false),
            format!(
                "refusing to share {}: it is the home directory {}",
                home.display(),
                home.display()
            ),
        ),
        (
            share(&state, "/data", true),
            format!(
                "refusing to share {}: it is or is inside Airlock's state directory",
                state.display()
            ),
        ),
        (
            share(&state.join("sandboxes"), "/data", false),
            "it is or is inside Airlock's state directory".to_string(),
        ),
        (
            share(&ok_dir, "/etc", false),
            "refusing guest path /etc: it is or is inside /etc".to_string(),
        ),
    ];
    for (s, want) in cases {
        let (status, v) = f.request("gvisor", json!([s])).await?;
        assert_eq!(status, 400, "{s}: {v}");
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(msg.contains(&want), "{s}: {msg:?} does not say {want:?}");
    }
    let out = f.env.airlock(&[
        "sandbox",
        "create",
        "--backend",
        "gvisor",
        "--profile",
        "minimal",
        "--share",
        "/:/data",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the CLI made a sandbox sharing /");
    assert!(err.contains("it is the host's root directory"), "{err}");
    let (_, list) = f.serve.get("/sandboxes").await?;
    assert_eq!(list, json!([]), "no sandbox was made");
    assert_eq!(
        names(&f.env.sandboxes_dir()).unwrap_or_default(),
        Vec::<String>::new()
    );
    Ok(())
}

/// In a QEMU microVM (TCG here; virtiofs): a read-only share cannot be written (nor its file
/// truncated) and the host folder is unchanged, a writable share's writes reach the host and
/// belong to the folder's owner (no set-user-ID root program), a link to /etc/shadow made inside
/// reads the guest's own, and host-made links out of a share do not reach the host. One sandbox
/// for all of it: booting under TCG is slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microvm_shares_are_read_only_unless_writable_and_links_stay_inside() -> Result<()> {
    let f = Fixture::start("share-vm")?;
    let ro = f.host.sub("in")?;
    fill_read_only(&ro)?;
    let linked = f.host.sub("linked")?;
    let secret = f.host.sub("secret")?;
    let token = plant_host_links(&linked, &secret)?;
    let rw = f.host.sub("out")?;
    std::os::unix::fs::chown(&rw, Some(OWNER), Some(OWNER))?;
    let sb = f
        .create(
            "microvm",
            json!([
                share(&ro, "/data", false),
                share(&linked, "/linked", false),
                share(&rw, "/out", true)
            ]),
        )
        .await?;
    check_read_only(&f.env, &sb, &ro, "/data")?;
    check_no_truncate(&f.env, &sb, &ro, "/data")?;
    check_writable(&f.env, &sb, &rw, "/out")?;
    check_writes_belong_to_the_owner(&f.env, &sb, &rw, "/out")?;
    check_link_made_inside(&f.env, &sb, &rw, "/out")?;
    check_host_links(&f.env, &sb, "/linked", &token)
}
