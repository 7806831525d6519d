//! Recipes: parsing, inheritance and the content hash.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const MINIMAL: &str = include_str!("../recipes/minimal.toml");
const DESKTOP: &str = include_str!("../recipes/desktop.toml");

/// Bumped whenever the builder's output for the same recipe changes.
pub(crate) const BUILDER_FORMAT: u32 = 1;

/// The image profiles shipped with Airlock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Xvfb, a window manager, xterm: for tests and scripted agents.
    Minimal,
    /// Minimal plus a browser and a text editor.
    #[default]
    Desktop,
}

impl Profile {
    /// All profiles.
    pub const ALL: [Profile; 2] = [Profile::Minimal, Profile::Desktop];

    /// The profile's name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Minimal => "minimal",
            Profile::Desktop => "desktop",
        }
    }

    fn source(self) -> &'static str {
        match self {
            Profile::Minimal => MINIMAL,
            Profile::Desktop => DESKTOP,
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = RecipeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| RecipeError::UnknownProfile(s.to_string()))
    }
}

/// Why a recipe could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// No such profile.
    #[error("there is no image profile {0:?} (known: minimal, desktop)")]
    UnknownProfile(String),
    /// The TOML did not parse.
    #[error("the {profile} recipe is not valid: {source}")]
    Parse {
        /// Which recipe.
        profile: String,
        /// Parser error.
        #[source]
        source: toml::de::Error,
    },
    /// A required field is missing after inheritance.
    #[error("the {profile} recipe does not set {field}")]
    Missing {
        /// Which recipe.
        profile: String,
        /// Which field.
        field: &'static str,
    },
    /// A package name is not a Debian package name.
    #[error("the {profile} recipe lists {name:?}, which is not a Debian package name")]
    BadPackage {
        /// Which recipe.
        profile: String,
        /// The name.
        name: String,
    },
}

/// Screen geometry of the guest's X server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Screen {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Colour depth (24).
    pub depth: u8,
}

/// A recipe file as written; fields may be inherited through `extends`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeFile {
    profile: String,
    extends: Option<String>,
    suite: Option<String>,
    mirror: Option<String>,
    variant: Option<String>,
    #[serde(default)]
    packages: Vec<String>,
    #[serde(default)]
    path_excludes: Vec<String>,
    #[serde(default)]
    path_includes: Vec<String>,
    #[serde(default)]
    initramfs_modules: Vec<String>,
    screen: Option<Screen>,
    free_mib: Option<u32>,
}

/// A fully resolved recipe: what the builder runs, and what the cache key hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipe {
    /// Profile name.
    pub profile: String,
    /// Debian suite.
    pub suite: String,
    /// Debian mirror URL.
    pub mirror: String,
    /// mmdebstrap variant.
    pub variant: String,
    /// Packages to install, sorted, without duplicates.
    pub packages: Vec<String>,
    /// dpkg path excludes.
    pub path_excludes: Vec<String>,
    /// dpkg path includes (exceptions to the excludes).
    pub path_includes: Vec<String>,
    /// Kernel modules the initramfs loads.
    pub initramfs_modules: Vec<String>,
    /// Guest screen.
    pub screen: Screen,
    /// Free space in the ext4 image, MiB.
    pub free_mib: u32,
}

impl Recipe {
    /// The recipe of a shipped profile, with inheritance resolved.
    pub fn for_profile(profile: Profile) -> Result<Recipe, RecipeError> {
        let file = parse(profile.name(), profile.source())?;
        let parent = match &file.extends {
            Some(name) => Some(Recipe::for_profile(name.parse()?)?),
            None => None,
        };
        resolve(file, parent)
    }

    /// SHA-256 of the canonical (JSON) encoding of the resolved recipe and the builder format.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(format!("airlock-recipe-v{BUILDER_FORMAT}\n").as_bytes());
        h.update(serde_json::to_vec(self).unwrap_or_default());
        hex(&h.finalize())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse(name: &str, text: &str) -> Result<RecipeFile, RecipeError> {
    toml::from_str(text).map_err(|source| RecipeError::Parse {
        profile: name.to_string(),
        source,
    })
}

fn resolve(file: RecipeFile, parent: Option<Recipe>) -> Result<Recipe, RecipeError> {
    let p = file.profile.clone();
    let missing = |field| RecipeError::Missing {
        profile: p.clone(),
        field,
    };
    let merge = |mine: Vec<String>, theirs: Option<&Vec<String>>| {
        let mut v: Vec<String> = theirs.cloned().unwrap_or_default();
        v.extend(mine);
        v.sort();
        v.dedup();
        v
    };
    let pr = parent.as_ref();
    let recipe = Recipe {
        profile: file.profile.clone(),
        suite: file
            .suite
            .or_else(|| pr.map(|r| r.suite.clone()))
            .ok_or_else(|| missing("suite"))?,
        mirror: file
            .mirror
            .or_else(|| pr.map(|r| r.mirror.clone()))
            .ok_or_else(|| missing("mirror"))?,
        variant: file
            .variant
            .or_else(|| pr.map(|r| r.variant.clone()))
            .ok_or_else(|| missing("variant"))?,
        packages: merge(file.packages, pr.map(|r| &r.packages)),
        path_excludes: merge(file.path_excludes, pr.map(|r| &r.path_excludes)),
        path_includes: merge(file.path_includes, pr.map(|r| &r.path_includes)),
        initramfs_modules: merge(file.initramfs_modules, pr.map(|r| &r.initramfs_modules)),
        screen: file
            .screen
            .or_else(|| pr.map(|r| r.screen))
            .ok_or_else(|| missing("screen"))?,
        free_mib: file
            .free_mib
            .or_else(|| pr.map(|r| r.free_mib))
            .ok_or_else(|| missing("free_mib"))?,
    };
    if let Some(bad) = recipe.packages.iter().find(|n| !is_package_name(n)) {
        return Err(RecipeError::BadPackage {
            profile: p,
            name: bad.clone(),
        });
    }
    Ok(recipe)
}

/// Debian policy: lowercase letters, digits, `+ - .`, at least two characters, starting alphanumeric.
fn is_package_name(n: &str) -> bool {
    n.len() >= 2
        && n.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_recipes_resolve() {
        let min = Recipe::for_profile(Profile::Minimal).expect("minimal");
        assert_eq!(
            min.screen,
            Screen {
                width: 1280,
                height: 800,
                depth: 24
            }
        );
        assert!(min.packages.iter().any(|p| p == "xvfb"));
        let desk = Recipe::for_profile(Profile::Desktop).expect("desktop");
        assert!(
            desk.packages.iter().any(|p| p == "xvfb"),
            "inherits minimal's packages"
        );
        assert!(desk.packages.iter().any(|p| p == "firefox-esr"));
        assert_eq!(desk.suite, min.suite);
        assert_ne!(desk.free_mib, min.free_mib);
    }

    #[test]
    fn hash_is_stable_and_order_insensitive() {
        let a = resolve(
            parse("t", "profile='t'\nsuite='s'\nmirror='m'\nvariant='v'\npackages=['bb','aa','aa']\nscreen={width=1,height=2,depth=24}\nfree_mib=1").expect("parse"),
            None,
        )
        .expect("resolve");
        let b = resolve(
            parse("t", "profile='t'\nsuite='s'\nmirror='m'\nvariant='v'\npackages=['aa','bb']\nscreen={width=1,height=2,depth=24}\nfree_mib=1").expect("parse"),
            None,
        )
        .expect("resolve");
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.hash().len(), 64);
        let c = Recipe {
            free_mib: 2,
            ..a.clone()
        };
        assert_ne!(a.hash(), c.hash());
        assert_eq!(a.hash(), a.clone().hash());
    }

    #[test]
    fn bad_recipes_are_explained() {
        let e = parse("t", "profile='t'\nbogus=1").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let f = parse(
            "t",
            "profile='t'\nsuite='s'\nmirror='m'\nvariant='v'\nscreen={width=1,height=2,depth=24}",
        )
        .expect("parse");
        let e = resolve(f, None).unwrap_err();
        assert_eq!(e.to_string(), "the t recipe does not set free_mib");
        let f = parse("t", "profile='t'\nsuite='s'\nmirror='m'\nvariant='v'\npackages=['X;rm']\nscreen={width=1,height=2,depth=24}\nfree_mib=1").expect("parse");
        assert!(matches!(resolve(f, None), Err(RecipeError::BadPackage { .. })));
        assert!("nope".parse::<Profile>().is_err());
    }
}
