//! The console's commands: each parses nothing and decides nothing — it calls the supervisor and
//! returns its answer, or its error as `{code, message}` (the same body the HTTP API sends).

use airlock_domain::{Approval, EgressAsk, EgressResolution, LeaseChange, NetworkView};
use airlock_ledger::{Actor, Entry, VerifyReport};
use airlock_policy::Mode;
use airlock_supervisor::api::{
    CreateRequest, CreatedLink, ErrorBody, LeaseRequest, LedgerQuery, LinkRequest, Me, ModeRequest,
    PolicyView, ResolveRequest, Snapshot,
};
use airlock_supervisor::SandboxInfo;
use tauri::State;

use crate::Console;

type Reply<T> = Result<T, ErrorBody>;

#[tauri::command]
pub(crate) fn me(console: State<'_, Console>) -> Me {
    // The desktop app's user owns this machine and Airlock's state: an admin.
    Me {
        operator: console.operator.clone(),
        role: airlock_domain::Role::Admin,
        scope: airlock_domain::Scope::All,
    }
}

#[tauri::command]
pub(crate) async fn snapshot(console: State<'_, Console>) -> Reply<Snapshot> {
    Ok(console.sup.snapshot().await)
}

#[tauri::command]
pub(crate) async fn list_sandboxes(console: State<'_, Console>) -> Reply<Vec<SandboxInfo>> {
    Ok(console.sup.list().await)
}

#[tauri::command]
pub(crate) async fn create_sandbox(
    console: State<'_, Console>,
    request: CreateRequest,
) -> Reply<SandboxInfo> {
    Ok(console.sup.create_requested(&request, &console.operator).await?)
}

#[tauri::command]
pub(crate) async fn destroy_sandbox(console: State<'_, Console>, id: String) -> Reply<()> {
    let by = Actor::operator(console.operator.clone());
    Ok(console.sup.destroy_sandbox(&id, &by).await?)
}

#[tauri::command]
pub(crate) async fn lease(
    console: State<'_, Console>,
    id: String,
    request: LeaseRequest,
) -> Reply<LeaseChange> {
    Ok(console
        .sup
        .lease_requested(&id, &console.operator, request)
        .await?)
}

#[tauri::command]
pub(crate) async fn resolve(
    console: State<'_, Console>,
    id: String,
    approval: u64,
    request: ResolveRequest,
) -> Reply<Approval> {
    Ok(console
        .sup
        .resolve_requested(&id, approval, &console.operator, request)
        .await?)
}

#[tauri::command]
pub(crate) async fn create_link(
    console: State<'_, Console>,
    id: String,
    request: LinkRequest,
) -> Reply<CreatedLink> {
    let mut made = console
        .sup
        .access()
        .create(&id, &console.operator, request.ttl_s)
        .await?;
    // The link opens the console the app's server serves, not the app's own window.
    made.path = format!("http://{}{}", console.addr, made.path);
    Ok(made)
}

#[tauri::command]
pub(crate) fn list_links(console: State<'_, Console>) -> Vec<airlock_domain::ViewLink> {
    console.sup.access().live()
}

#[tauri::command]
pub(crate) async fn revoke_link(
    console: State<'_, Console>,
    link: String,
) -> Reply<airlock_domain::ViewLink> {
    Ok(console.sup.access().revoke(&link, &console.operator).await?)
}

/// Largest file the desktop app moves through its window (bytes travel in the IPC message);
/// larger ones go through `airlock sandbox put/get` or the browser console.
const APP_FILE_LIMIT: usize = 256 << 20;

fn file_error(e: airlock_supervisor::files::FileError) -> ErrorBody {
    ErrorBody {
        code: if e.is_callers() {
            "invalid_file_request"
        } else {
            "files"
        }
        .into(),
        message: airlock_supervisor::chain(&e),
    }
}

#[tauri::command]
pub(crate) async fn list_files(
    console: State<'_, Console>,
    id: String,
    path: String,
) -> Reply<airlock_supervisor::files::FileListing> {
    console.sup.list_files(&id, &path).await.map_err(file_error)
}

#[tauri::command]
pub(crate) async fn upload_file(
    console: State<'_, Console>,
    id: String,
    path: String,
    mode: u32,
    data: Vec<u8>,
) -> Reply<airlock_supervisor::files::FileWritten> {
    let by = Actor::operator(console.operator.clone());
    let len = data.len() as u64;
    console
        .sup
        .upload(
            &id,
            &path,
            mode,
            std::io::Cursor::new(data),
            Some(len),
            airlock_supervisor::files::Mover {
                by: &by,
                via: "console",
            },
        )
        .await
        .map_err(file_error)
}

#[tauri::command]
pub(crate) async fn download_file(console: State<'_, Console>, id: String, path: String) -> Reply<Vec<u8>> {
    use tokio::io::AsyncReadExt as _;
    let by = Actor::operator(console.operator.clone());
    let out = console
        .sup
        .download(
            &id,
            &path,
            airlock_supervisor::files::Mover {
                by: &by,
                via: "console",
            },
        )
        .await
        .map_err(file_error)?;
    let mut bytes = Vec::new();
    let mut body = out.body.take(APP_FILE_LIMIT as u64 + 1);
    body.read_to_end(&mut bytes).await.map_err(|e| ErrorBody {
        code: "files".into(),
        message: format!("the download broke off: {e}"),
    })?;
    if bytes.len() > APP_FILE_LIMIT {
        return Err(ErrorBody {
            code: "too_large".into(),
            message: format!(
                "{path} is over {} MiB: download it with `airlock sandbox get` or the browser console",
                APP_FILE_LIMIT >> 20
            ),
        });
    }
    Ok(bytes)
}

#[tauri::command]
pub(crate) async fn pending(console: State<'_, Console>) -> Reply<Vec<Approval>> {
    Ok(console.sup.pending().await)
}

#[tauri::command]
pub(crate) fn pending_egress(console: State<'_, Console>) -> Vec<EgressAsk> {
    console.sup.pending_egress()
}

#[tauri::command]
pub(crate) async fn resolve_egress(
    console: State<'_, Console>,
    id: String,
    ask: u64,
    resolution: EgressResolution,
) -> Reply<EgressAsk> {
    Ok(console
        .sup
        .resolve_egress(&id, ask, &console.operator, resolution)
        .await?)
}

#[tauri::command]
pub(crate) fn network(console: State<'_, Console>, id: String) -> Reply<NetworkView> {
    Ok(console.sup.network(&id)?)
}

#[tauri::command]
pub(crate) async fn ledger(console: State<'_, Console>, query: LedgerQuery) -> Reply<Vec<Entry>> {
    Ok(console.sup.ledger_page(&query).await?)
}

#[tauri::command]
pub(crate) async fn verify_ledger(console: State<'_, Console>) -> Reply<VerifyReport> {
    Ok(console.sup.verify_ledger().await?)
}

#[tauri::command]
pub(crate) async fn export_ledger(console: State<'_, Console>) -> Reply<String> {
    let bytes = console.sup.export_ledger().await?;
    // JSON Lines written by serde_json: always UTF-8, so nothing is replaced.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[tauri::command]
pub(crate) async fn blob(console: State<'_, Console>, hash: String) -> Reply<tauri::ipc::Response> {
    Ok(tauri::ipc::Response::new(console.sup.blob(&hash).await?))
}

#[tauri::command]
pub(crate) fn policy(console: State<'_, Console>) -> PolicyView {
    console.sup.policy_view()
}

#[tauri::command]
pub(crate) async fn set_mode(console: State<'_, Console>, mode: Mode) -> Reply<ModeRequest> {
    console.sup.set_mode(mode, &console.operator).await?;
    Ok(ModeRequest { mode })
}

#[tauri::command]
pub(crate) async fn view_url(console: State<'_, Console>, id: String) -> Reply<String> {
    console.sup.session(&id).await?;
    Ok(console.view_url(&id))
}

#[tauri::command]
pub(crate) fn notify<R: tauri::Runtime>(app: tauri::AppHandle<R>, title: String, body: String) -> Reply<()> {
    use tauri_plugin_notification::NotificationExt as _;
    app.notification()
        .builder()
        .title(title)
        .body(body)
        .show()
        .map_err(|e| ErrorBody {
            code: "notification".into(),
            message: format!("the desktop notification could not be shown: {e}"),
        })
}
