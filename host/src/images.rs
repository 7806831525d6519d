//! Guest images: reused from the cache, or built (minutes, the first time) with progress.

use std::path::PathBuf;

use airlock_guest_image::{BuildInputs, Image, Profile, Progress};
use airlock_sandbox::Store;

use crate::HostError;

/// The guest agent binary: `$AIRLOCK_GUEST_AGENT`, else `airlock-guest-agent` next to this executable.
pub fn agent_binary() -> Result<PathBuf, HostError> {
    if let Some(p) = std::env::var_os("AIRLOCK_GUEST_AGENT") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe().map_err(HostError::Exe)?;
    let p = exe.with_file_name("airlock-guest-agent");
    if !p.exists() {
        return Err(HostError::NoGuestAgent { exe, looked: p });
    }
    Ok(p)
}

/// What a build reports.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildEvent<'a> {
    /// A new step (a phrase).
    Step(&'a str),
    /// A log line of the current step.
    Log(&'a str),
    /// The image is ready after this many seconds.
    Done(f64),
    /// Superseded cached layers were removed.
    Pruned(usize),
    /// Pruning failed (the image is fine).
    PruneFailed(String),
}

/// The image for `profile`: the cached one, or a fresh build reporting to `report`.
pub fn build_image(profile: Profile, report: &mut dyn FnMut(BuildEvent<'_>)) -> Result<Image, HostError> {
    let inputs = BuildInputs {
        profile,
        cache_dir: airlock_guest_image::default_cache_dir(),
        agent_binary: agent_binary()?,
    };
    let image_err = HostError::Image;
    if let Some(img) = airlock_guest_image::cached_image(&inputs).map_err(image_err)? {
        return Ok(img);
    }
    let t = std::time::Instant::now();
    report(BuildEvent::Step(&format!(
        "building the {profile} guest image (Debian packages via mmdebstrap; cached afterwards)"
    )));
    let img = airlock_guest_image::build(&inputs, &mut |p| match p {
        Progress::Step(s) => report(BuildEvent::Step(s)),
        Progress::Log(l) => report(BuildEvent::Log(l)),
    })
    .map_err(image_err)?;
    report(BuildEvent::Done(t.elapsed().as_secs_f64()));
    // Superseded layers of this profile go, except those a sandbox still runs on.
    let mut keep = vec![img.dir.clone()];
    if let Ok((store, _)) = Store::open(Store::default_root()) {
        keep.extend(
            store
                .list()
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.record.image_dir),
        );
    }
    match airlock_guest_image::prune(&inputs.cache_dir, profile, &keep) {
        Ok(removed) if !removed.is_empty() => report(BuildEvent::Pruned(removed.len())),
        Ok(_) => {}
        Err(e) => report(BuildEvent::PruneFailed(e.to_string())),
    }
    Ok(img)
}

/// The supervisor's image source: cached or built images, build steps forwarded as progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostImages;

impl airlock_supervisor::ImageSource for HostImages {
    fn image(
        &self,
        profile: Profile,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Image, airlock_supervisor::ImageError> {
        build_image(profile, &mut |ev| match ev {
            BuildEvent::Step(s) => {
                tracing::info!(step = s, "image build");
                progress(s);
            }
            BuildEvent::Log(_) => {}
            BuildEvent::Done(s) => progress(&format!("image ready after {s:.0} s")),
            BuildEvent::Pruned(n) => tracing::info!(removed = n, "pruned superseded image layers"),
            BuildEvent::PruneFailed(e) => tracing::warn!(error = %e, "could not prune old images"),
        })
        .map_err(|e| airlock_supervisor::ImageError {
            profile: profile.name(),
            source: Box::new(e),
        })
    }
}
