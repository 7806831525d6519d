//! The Airlock desktop app (Tauri shell). Placeholder until the operator console lands: the
//! supervisor and `airlock` CLI are the way in today.

fn main() {
    eprintln!("The Airlock desktop app is not built yet; use the `airlock` CLI (see README.md).");
    std::process::exit(2);
}
