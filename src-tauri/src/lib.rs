//! The Airlock desktop app: a thin Tauri shell. It starts the host (supervisor, ledger, server,
//! demo agent) in-process, exposes the supervisor to the console through commands
//! ([`commands`]) and forwards every supervisor event on the channel `airlock://{kind}`.
//!
//! Video comes over the viewer WebSocket of the app's own loopback server (WebKitGTK here has no
//! WebRTC; its WebCodecs decoder draws the stream), with the operator's token in the URL.

mod commands;

use std::net::SocketAddr;

use airlock_supervisor::api::EventMessage;
use airlock_supervisor::Supervisor;
use tauri::{Emitter as _, Runtime};
use tokio::sync::broadcast::error::RecvError;

/// What the commands reach: the supervisor, and who is at the console.
pub struct Console {
    sup: Supervisor,
    operator: String,
    operator_token: String,
    addr: SocketAddr,
}

impl Console {
    /// The console of `operator` (whose token opens the viewer socket at `addr`).
    pub fn new(sup: Supervisor, operator: String, operator_token: String, addr: SocketAddr) -> Console {
        Console {
            sup,
            operator,
            operator_token,
            addr,
        }
    }

    fn view_url(&self, sandbox: &str) -> String {
        format!(
            "ws://{}/api/sandboxes/{sandbox}/view?token={}",
            self.addr, self.operator_token
        )
    }
}

/// The channel an event is forwarded on.
pub fn channel(msg: &EventMessage) -> String {
    format!("airlock://{}", msg.event.kind())
}

/// Registers the commands and plugins on a builder (the real app and the tests share this).
pub fn with_commands<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder
        .plugin(tauri_plugin_notification::init())
        .invoke_handler(tauri::generate_handler![
            commands::me,
            commands::snapshot,
            commands::list_sandboxes,
            commands::create_sandbox,
            commands::destroy_sandbox,
            commands::lease,
            commands::resolve,
            commands::create_link,
            commands::list_links,
            commands::revoke_link,
            commands::list_files,
            commands::upload_file,
            commands::download_file,
            commands::pending,
            commands::pending_egress,
            commands::resolve_egress,
            commands::network,
            commands::ledger,
            commands::verify_ledger,
            commands::export_ledger,
            commands::blob,
            commands::policy,
            commands::set_mode,
            commands::view_url,
            commands::notify,
        ])
}

/// Forwards the supervisor's events to the windows until the supervisor stops publishing. A
/// window that fell behind gets `{"type":"lagged"}` on `airlock://lagged` and re-reads its snapshot.
pub fn forward_events<R: Runtime>(app: tauri::AppHandle<R>, sup: &Supervisor) {
    let mut rx = sup.events().subscribe();
    tauri::async_runtime::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(event) => {
                    let msg = EventMessage::from(event);
                    if let Err(e) = app.emit(&channel(&msg), &msg) {
                        tracing::warn!(error = %e, "cannot forward an event to the console");
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let _ = app.emit(
                        "airlock://lagged",
                        serde_json::json!({"type": "lagged", "missed": missed}),
                    );
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
}

#[cfg(test)]
mod tests;
