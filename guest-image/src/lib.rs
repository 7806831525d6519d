//! Guest images for Airlock sandboxes.
//!
//! An image is described by a declarative [`Recipe`] (TOML, in `guest-image/recipes/`), built from
//! Debian packages with `mmdebstrap`, and cached under the user's cache directory keyed by content
//! hashes, in two layers:
//!
//! * the **base** layer — the unpacked root filesystem and the kernel — keyed by the recipe's hash;
//!   it takes minutes to build and changes only when the recipe does;
//! * the **image** layer — base plus the guest agent binary and init script, as a directory (for
//!   gVisor) and a read-only ext4 file (for microVMs), with the kernel and a busybox initramfs —
//!   keyed by the base hash and the agent's and init's bytes; it takes seconds.
//!
//! Recipe resolution, hashing, the initramfs archive and module ordering are pure and unit-tested;
//! [`build`] does the I/O.

mod build;
mod cpio;
mod modules;
mod recipe;

pub use build::{
    build, cached_image, default_cache_dir, prune, BuildError, BuildInputs, Image, ImageManifest, Progress,
};
pub use cpio::CpioArchive;
pub use modules::{module_load_order, ModulesError};
pub use recipe::{Profile, Recipe, RecipeError, Screen};

/// The init script put into every image as `/sbin/airlock-init` (with `@SCREEN@` filled in).
pub const INIT_SCRIPT: &str = include_str!("../files/airlock-init");

/// Files every image gets for egress (path in the image, contents, mode): the resolver is the
/// guest agent's stub, which answers every lookup REFUSED; every program finds the proxy in its
/// environment; the browser is told by managed policy to use it, with DNS-over-HTTPS, QUIC and
/// prefetching off. Part of the image's cache key.
pub const NETWORK_FILES: &[(&str, &str, u32)] = &[
    ("etc/resolv.conf", "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n", 0o644),
    (
        "etc/environment",
        "http_proxy=http://127.0.0.1:3128\nhttps_proxy=http://127.0.0.1:3128\nall_proxy=socks5h://127.0.0.1:1080\n\
         HTTP_PROXY=http://127.0.0.1:3128\nHTTPS_PROXY=http://127.0.0.1:3128\nALL_PROXY=socks5h://127.0.0.1:1080\n\
         no_proxy=localhost,127.0.0.1,::1\nNO_PROXY=localhost,127.0.0.1,::1\n",
        0o644,
    ),
    (
        "usr/lib/firefox-esr/distribution/policies.json",
        include_str!("../files/firefox-policies.json"),
        0o644,
    ),
    ("etc/firefox/policies/policies.json", include_str!("../files/firefox-policies.json"), 0o644),
];
