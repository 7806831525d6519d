//! Tauri's build step: embeds the config, capabilities and icon.

fn main() {
    tauri_build::build()
}
