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
