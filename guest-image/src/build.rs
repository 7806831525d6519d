//! Building and caching images (the I/O half of this crate).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cpio::CpioArchive;
use crate::modules::module_load_order;
use crate::recipe::{hex, BUILDER_FORMAT};
use crate::{Profile, Recipe, RecipeError, Screen, INIT_SCRIPT};

/// `$AIRLOCK_CACHE_DIR`, else `$XDG_CACHE_HOME/airlock`, else `~/.cache/airlock`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("AIRLOCK_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("airlock");
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join(".cache/airlock")
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildInputs {
    /// Which shipped recipe.
    pub profile: Profile,
    /// Root of the cache (e.g. `~/.cache/airlock`).
    pub cache_dir: PathBuf,
    /// The guest agent binary to put into the image.
    pub agent_binary: PathBuf,
}

/// Progress reports while building (it takes minutes).
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A step begins.
    Step(&'a str),
    /// A line of a tool's output.
    Log(&'a str),
}

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The recipe is bad.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// The guest agent binary is missing.
    #[error("cannot read the guest agent binary {path}: {source}")]
    Agent {
        /// Where it was looked for.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A file operation failed.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A tool could not be started.
    #[error("cannot run {tool} (is it installed? scripts/setup installs it): {source}")]
    Spawn {
        /// The tool.
        tool: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A tool failed.
    #[error("{tool} failed ({status}); its last output:\n{tail}")]
    Tool {
        /// The tool.
        tool: String,
        /// Exit status.
        status: String,
        /// Last lines of its output.
        tail: String,
    },
    /// The unpacked root filesystem lacks something the image needs.
    #[error("the built root filesystem is missing {0}")]
    Incomplete(String),
    /// Module resolution failed.
    #[error(transparent)]
    Modules(#[from] crate::ModulesError),
}

/// The manifest written last into a finished image directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageManifest {
    /// Profile name.
    pub profile: String,
    /// Recipe content hash (the base layer's key).
    pub recipe_hash: String,
    /// Image content hash (recipe, agent, init).
    pub image_hash: String,
    /// Kernel release, e.g. `6.1.0-28-cloud-amd64`.
    pub kernel_release: String,
    /// Guest screen.
    pub screen: Screen,
    /// Size of the ext4 file, bytes.
    pub ext4_bytes: u64,
    /// When it was built, Unix seconds.
    pub built_at: u64,
}

/// A built image on disk.
#[derive(Debug, Clone)]
pub struct Image {
    /// The image directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: ImageManifest,
}

impl Image {
    /// Root filesystem as a directory (gVisor).
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    /// Read-only ext4 base (microVM).
    pub fn ext4(&self) -> PathBuf {
        self.dir.join("root.ext4")
    }
    /// Kernel (bzImage).
    pub fn kernel(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }
    /// Initramfs (uncompressed newc cpio).
    pub fn initramfs(&self) -> PathBuf {
        self.dir.join("initramfs.cpio")
    }

    /// Opens a finished image directory (one whose manifest was written).
    pub fn open(dir: &Path) -> Result<Image, BuildError> {
        let manifest = read_json(&dir.join("manifest.json"))?;
        Ok(Image {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    fn load(dir: &Path) -> Option<Image> {
        Image::open(dir).ok()
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaseManifest {
    recipe_hash: String,
    kernel_release: String,
    modules: Vec<String>,
}

struct Keys {
    recipe: Recipe,
    recipe_hash: String,
    image_hash: String,
    init: String,
    agent: Vec<u8>,
}

fn keys(inputs: &BuildInputs) -> Result<Keys, BuildError> {
    let recipe = Recipe::for_profile(inputs.profile)?;
    let recipe_hash = recipe.hash();
    let agent = fs::read(&inputs.agent_binary).map_err(|source| BuildError::Agent {
        path: inputs.agent_binary.clone(),
        source,
    })?;
    let s = recipe.screen;
    let init = INIT_SCRIPT.replace("@SCREEN@", &format!("{}x{}x{}", s.width, s.height, s.depth));
    let mut h = Sha256::new();
    h.update(format!("airlock-image-v{BUILDER_FORMAT}\n{recipe_hash}\n").as_bytes());
    h.update(Sha256::digest(&agent));
    h.update(Sha256::digest(init.as_bytes()));
    for (path, data, mode) in crate::NETWORK_FILES {
        h.update(format!("{path} {mode:o} ").as_bytes());
        h.update(Sha256::digest(data.as_bytes()));
    }
    h.update(Sha256::digest(initramfs_init(&[]).as_bytes()));
    let image_hash = hex(&h.finalize());
    Ok(Keys {
        recipe,
        recipe_hash,
        image_hash,
        init,
        agent,
    })
}

fn image_dir(cache: &Path, profile: Profile, image_hash: &str) -> PathBuf {
    cache
        .join("images")
        .join(format!("{profile}-{}", &image_hash[..16]))
}

/// The image for these inputs if it is already in the cache.
pub fn cached_image(inputs: &BuildInputs) -> Result<Option<Image>, BuildError> {
    let k = keys(inputs)?;
    Ok(Image::load(&image_dir(
        &inputs.cache_dir,
        inputs.profile,
        &k.image_hash,
    )))
}

/// Builds the image (or returns it from the cache).
pub fn build(inputs: &BuildInputs, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Image, BuildError> {
    let k = keys(inputs)?;
    let dir = image_dir(&inputs.cache_dir, inputs.profile, &k.image_hash);
    if let Some(img) = Image::load(&dir) {
        return Ok(img);
    }
    mkdir(&inputs.cache_dir)?;
    let _lock = lock(&inputs.cache_dir.join(format!(".build-{}.lock", inputs.profile)))?;
    if let Some(img) = Image::load(&dir) {
        return Ok(img); // another process built it while we waited for the lock
    }
    let base = build_base(&inputs.cache_dir, &k, progress)?;
    progress(Progress::Step(
        "assembling the image (agent, init, ext4, initramfs)",
    ));
    let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
    remove_dir_if_exists(&tmp)?;
    mkdir(&tmp)?;
    let rootfs = tmp.join("rootfs");
    run(
        Command::new("cp")
            .arg("-al")
            .arg(base.join("rootfs"))
            .arg(&rootfs),
        "cp",
        progress,
    )?;
    let put = |rel: &str, data: &[u8], mode: u32| -> Result<(), BuildError> {
        let p = rootfs.join(rel);
        if let Some(parent) = p.parent() {
            mkdir(parent)?;
        }
        // Never write through a hard link into the base layer: replace the file.
        let _ = fs::remove_file(&p);
        fs::write(&p, data).map_err(|source| BuildError::Io {
            what: "write",
            path: p.clone(),
            source,
        })?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(|source| BuildError::Io {
            what: "chmod",
            path: p.clone(),
            source,
        })
    };
    put("usr/local/bin/airlock-guest-agent", &k.agent, 0o755)?;
    put("usr/sbin/airlock-init", k.init.as_bytes(), 0o755)?;
    put("etc/hostname", b"sandbox\n", 0o644)?;
    for (path, data, mode) in crate::NETWORK_FILES {
        put(path, data.as_bytes(), *mode)?;
    }
    put(
        "etc/hosts",
        b"127.0.0.1 localhost sandbox\n::1 localhost\n",
        0o644,
    )?;

    let base_manifest: BaseManifest = read_json(&base.join("base.json"))?;
    let ext4 = tmp.join("root.ext4");
    let used_mib = du_mib(&rootfs)?;
    let size = used_mib + used_mib / 10 + u64::from(k.recipe.free_mib);
    run(
        Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-L",
                "airlock-root",
                "-O",
                "^has_journal",
                "-E",
                "root_owner=0:0",
                "-d",
            ])
            .arg(&rootfs)
            .arg(&ext4)
            .arg(format!("{size}M")),
        "mkfs.ext4",
        progress,
    )?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&ext4, fs::Permissions::from_mode(0o444)).map_err(|source| BuildError::Io {
        what: "chmod",
        path: ext4.clone(),
        source,
    })?;
    let ext4_bytes = fs::metadata(&ext4)
        .map_err(|source| BuildError::Io {
            what: "stat",
            path: ext4.clone(),
            source,
        })?
        .len();

    let initramfs = initramfs(&base, &base_manifest.modules)?;
    write(&tmp.join("initramfs.cpio"), &initramfs)?;
    fs::hard_link(base.join("kernel/vmlinuz"), tmp.join("vmlinuz")).map_err(|source| BuildError::Io {
        what: "link",
        path: tmp.join("vmlinuz"),
        source,
    })?;
    let manifest = ImageManifest {
        profile: inputs.profile.name().to_string(),
        recipe_hash: k.recipe_hash.clone(),
        image_hash: k.image_hash.clone(),
        kernel_release: base_manifest.kernel_release,
        screen: k.recipe.screen,
        ext4_bytes,
        built_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    write(
        &tmp.join("manifest.json"),
        &serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
    )?;
    fs::rename(&tmp, &dir).map_err(|source| BuildError::Io {
        what: "move into place",
        path: dir.clone(),
        source,
    })?;
    Ok(Image { dir, manifest })
}

fn build_base(cache: &Path, k: &Keys, progress: &mut dyn FnMut(Progress<'_>)) -> Result<PathBuf, BuildError> {
    let dir = cache
        .join("base")
        .join(format!("{}-{}", k.recipe.profile, &k.recipe_hash[..16]));
    if dir.join("base.json").exists() {
        return Ok(dir);
    }
    let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
    remove_dir_if_exists(&tmp)?;
    mkdir(&tmp)?;
    let rootfs = tmp.join("rootfs");
    progress(Progress::Step(&format!(
        "installing {} Debian packages with mmdebstrap (a few minutes)",
        k.recipe.packages.len()
    )));
    let r = &k.recipe;
    let mut cmd = Command::new("mmdebstrap");
    cmd.arg(format!("--variant={}", r.variant))
        .arg(format!("--include={}", r.packages.join(",")))
        .arg("--aptopt=APT::Install-Recommends \"false\"")
        .arg("--customize-hook=rm -rf \"$1\"/var/cache/apt/* \"$1\"/var/lib/apt/lists/* \"$1\"/var/log/*");
    for p in &r.path_excludes {
        cmd.arg(format!("--dpkgopt=path-exclude={p}"));
    }
    for p in &r.path_includes {
        cmd.arg(format!("--dpkgopt=path-include={p}"));
    }
    cmd.arg(&r.suite).arg(&rootfs).arg(&r.mirror);
    run(&mut cmd, "mmdebstrap", progress)?;

    progress(Progress::Step(
        "moving the kernel and its initramfs modules out of the root filesystem",
    ));
    let boot = rootfs.join("boot");
    let vmlinuz = read_dir(&boot)?
        .into_iter()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or_else(|| BuildError::Incomplete("a kernel (/boot/vmlinuz-*)".into()))?;
    let release = vmlinuz
        .file_name()
        .map(|n| n.to_string_lossy().trim_start_matches("vmlinuz-").to_string())
        .unwrap_or_default();
    let kdir = tmp.join("kernel");
    mkdir(&kdir.join("modules"))?;
    fs::rename(&vmlinuz, kdir.join("vmlinuz")).map_err(|source| BuildError::Io {
        what: "move",
        path: vmlinuz.clone(),
        source,
    })?;
    let moddir = rootfs.join("usr/lib/modules").join(&release);
    let dep = fs::read_to_string(moddir.join("modules.dep")).map_err(|source| BuildError::Io {
        what: "read",
        path: moddir.join("modules.dep"),
        source,
    })?;
    let order = module_load_order(&dep, &r.initramfs_modules)?;
    let mut names = Vec::new();
    for rel in &order {
        if !rel.ends_with(".ko") {
            return Err(BuildError::Incomplete(format!(
                "an uncompressed module for {rel} (busybox insmod loads .ko only)"
            )));
        }
        let name = rel.rsplit('/').next().unwrap_or(rel).to_string();
        fs::copy(moddir.join(rel), kdir.join("modules").join(&name)).map_err(|source| BuildError::Io {
            what: "copy",
            path: moddir.join(rel),
            source,
        })?;
        names.push(name);
    }
    let busybox = rootfs.join("usr/bin/busybox");
    fs::copy(&busybox, kdir.join("busybox")).map_err(|source| BuildError::Io {
        what: "copy",
        path: busybox,
        source,
    })?;
    // The guest boots from the initramfs; the kernel tree and boot files are dead weight in the image.
    remove_dir_if_exists(&rootfs.join("usr/lib/modules"))?;
    for p in read_dir(&boot)? {
        let _ = fs::remove_file(p);
    }
    let m = BaseManifest {
        recipe_hash: k.recipe_hash.clone(),
        kernel_release: release,
        modules: names,
    };
    write(
        &tmp.join("base.json"),
        &serde_json::to_vec_pretty(&m).unwrap_or_default(),
    )?;
    remove_dir_if_exists(&dir)?;
    fs::rename(&tmp, &dir).map_err(|source| BuildError::Io {
        what: "move into place",
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// The initramfs `/init`: load modules, mount the root disk, switch to `/sbin/airlock-init`.
fn initramfs_init(modules: &[String]) -> String {
    format!(
        r#"#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in {mods}; do insmod /lib/modules/$m || echo "initramfs: cannot load $m"; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done
if ! mount -t ext4 -o rw,noatime /dev/vda /newroot; then
  echo "initramfs: cannot mount the root disk /dev/vda"
  poweroff -f
fi
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /usr/sbin/airlock-init
"#,
        mods = modules.join(" ")
    )
}

fn initramfs(base: &Path, modules: &[String]) -> Result<Vec<u8>, BuildError> {
    let busybox = fs::read(base.join("kernel/busybox")).map_err(|source| BuildError::Io {
        what: "read",
        path: base.join("kernel/busybox"),
        source,
    })?;
    let mut a = CpioArchive::default();
    for d in [
        "/bin",
        "/dev",
        "/proc",
        "/sys",
        "/newroot",
        "/lib",
        "/lib/modules",
    ] {
        a.dir(d, 0o755);
    }
    a.char_device("/dev/console", 0o600, 5, 1);
    a.file("/bin/busybox", 0o755, &busybox);
    for applet in [
        "sh",
        "mount",
        "umount",
        "insmod",
        "switch_root",
        "sleep",
        "echo",
        "poweroff",
        "cat",
    ] {
        a.symlink(&format!("/bin/{applet}"), "busybox");
    }
    for m in modules {
        let p = base.join("kernel/modules").join(m);
        let data = fs::read(&p).map_err(|source| BuildError::Io {
            what: "read",
            path: p,
            source,
        })?;
        a.file(&format!("/lib/modules/{m}"), 0o644, &data);
    }
    a.file("/init", 0o755, initramfs_init(modules).as_bytes());
    Ok(a.finish())
}

fn run(cmd: &mut Command, tool: &str, progress: &mut dyn FnMut(Progress<'_>)) -> Result<(), BuildError> {
    tracing::debug!(?cmd, "running");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BuildError::Spawn {
            tool: tool.to_string(),
            source,
        })?;
    // Merge stderr into the progress stream on a thread; read stdout here.
    let stderr = child.stderr.take();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let t = stderr.map(|e| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(e).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        })
    });
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    } else {
        drop(tx);
    }
    let mut tail: Vec<String> = Vec::new();
    for line in rx {
        progress(Progress::Log(&line));
        tail.push(line);
        if tail.len() > 30 {
            tail.remove(0);
        }
    }
    if let Some(t) = t {
        let _ = t.join();
    }
    let status = child.wait().map_err(|source| BuildError::Spawn {
        tool: tool.to_string(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Tool {
            tool: tool.to_string(),
            status: status.to_string(),
            tail: tail.join("\n"),
        })
    }
}

fn du_mib(dir: &Path) -> Result<u64, BuildError> {
    let out = Command::new("du")
        .arg("-sm")
        .arg(dir)
        .output()
        .map_err(|source| BuildError::Spawn {
            tool: "du".into(),
            source,
        })?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| BuildError::Tool {
            tool: "du".into(),
            status: out.status.to_string(),
            tail: String::new(),
        })
}

fn lock(path: &Path) -> Result<fs::File, BuildError> {
    let f = fs::File::create(path).map_err(|source| BuildError::Io {
        what: "create",
        path: path.into(),
        source,
    })?;
    f.lock().map_err(|source| BuildError::Io {
        what: "lock",
        path: path.into(),
        source,
    })?;
    Ok(f)
}

fn mkdir(p: &Path) -> Result<(), BuildError> {
    fs::create_dir_all(p).map_err(|source| BuildError::Io {
        what: "create directory",
        path: p.into(),
        source,
    })
}

fn write(p: &Path, data: &[u8]) -> Result<(), BuildError> {
    fs::write(p, data).map_err(|source| BuildError::Io {
        what: "write",
        path: p.into(),
        source,
    })
}

fn read_dir(p: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let rd = fs::read_dir(p).map_err(|source| BuildError::Io {
        what: "list",
        path: p.into(),
        source,
    })?;
    Ok(rd.filter_map(Result::ok).map(|e| e.path()).collect())
}

fn read_json<T: for<'de> Deserialize<'de>>(p: &Path) -> Result<T, BuildError> {
    let text = fs::read_to_string(p).map_err(|source| BuildError::Io {
        what: "read",
        path: p.into(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| BuildError::Incomplete(format!("a valid {}: {e}", p.display())))
}

fn remove_dir_if_exists(p: &Path) -> Result<(), BuildError> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(BuildError::Io {
            what: "remove",
            path: p.into(),
            source,
        }),
    }
}

/// Removes the cached images of `profile` other than those in `keep` (compared as directories),
/// and the base layers of `profile` no kept image is built on. Returns what it removed.
/// Directories still being built (`*.tmp*`) are left alone.
pub fn prune(cache_dir: &Path, profile: Profile, keep: &[PathBuf]) -> Result<Vec<PathBuf>, BuildError> {
    let prefix = format!("{profile}-");
    let ours = |dir: &Path| -> Result<Vec<PathBuf>, BuildError> {
        if !dir.exists() {
            return Ok(vec![]);
        }
        Ok(read_dir(dir)?
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && !n.contains(".tmp"))
            })
            .collect())
    };
    let same = |a: &Path, b: &Path| fs::canonicalize(a).ok() == fs::canonicalize(b).ok();
    let mut kept_recipes = Vec::new();
    let mut removed = Vec::new();
    for img in ours(&cache_dir.join("images"))? {
        if keep.iter().any(|k| same(k, &img)) {
            if let Some(i) = Image::load(&img) {
                kept_recipes.push(i.manifest.recipe_hash[..16].to_string());
            }
            continue;
        }
        remove_dir_if_exists(&img)?;
        removed.push(img);
    }
    for base in ours(&cache_dir.join("base"))? {
        let name = base
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if kept_recipes.iter().any(|h| name.ends_with(h.as_str())) {
            continue;
        }
        remove_dir_if_exists(&base)?;
        removed.push(base);
    }
    Ok(removed)
}
