//! `airlock sandbox put` / `get`: files into and out of a sandbox through the running `airlock
//! serve` (its operator API), so every transfer is checked against the operator's role and lands on
//! the ledger like the console's.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use airlock_server::tokens::Tokens;
use airlock_supervisor::files::FileWritten;

/// Where the server is and who we are to it.
pub(crate) struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    /// The server at `server` with the operator token from this machine's token file.
    pub(crate) fn new(server: &str) -> Result<Api> {
        let path = airlock_host::token_path();
        let (tokens, _) = Tokens::load_or_create(&path, "operator")
            .with_context(|| format!("cannot read the operator token from {}", path.display()))?;
        Ok(Api {
            base: server.trim_end_matches('/').to_string(),
            token: tokens.operator_token,
            http: reqwest::Client::new(),
        })
    }

    fn url(&self, id: &str, tail: &str) -> String {
        format!("{}/api/sandboxes/{id}/{tail}", self.base)
    }

    async fn fail(&self, resp: reqwest::Response, what: &str) -> anyhow::Error {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<airlock_supervisor::api::ErrorBody>(&body)
            .map(|e| e.message)
            .unwrap_or(body);
        anyhow::anyhow!("{what} failed ({status}): {message}")
    }

    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "cannot reach airlock serve at {} ({e}); files move through it so they are on the record: start it, or pass --server",
            self.base
        )
    }

    /// Uploads `file` to `dest` in sandbox `id`.
    pub(crate) async fn put(&self, id: &str, file: &Path, dest: &str, mode: u32) -> Result<FileWritten> {
        let f = tokio::fs::File::open(file)
            .await
            .with_context(|| format!("cannot open {}", file.display()))?;
        let len = f.metadata().await?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f));
        let resp = self
            .http
            .post(self.url(id, "files"))
            .query(&[("path", dest), ("mode", &format!("{mode:o}"))])
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(self
                .fail(resp, &format!("uploading {} to {dest}", file.display()))
                .await);
        }
        Ok(resp.json().await?)
    }

    /// Downloads `path` (a folder comes as a tar archive) from sandbox `id` into `out`, written
    /// to a temporary name and renamed when complete.
    pub(crate) async fn get(&self, id: &str, path: &str, out: &Path) -> Result<u64> {
        let resp = self
            .http
            .get(self.url(id, "files"))
            .query(&[("path", path)])
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(self.fail(resp, &format!("downloading {path}")).await);
        }
        let dir = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".airlock-get.")
            .tempfile_in(dir)?;
        let mut w = tokio::fs::File::from_std(tmp.reopen()?);
        let mut body = resp.bytes_stream();
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.context("the download broke off")?;
            n += chunk.len() as u64;
            w.write_all(&chunk).await?;
        }
        w.flush().await?;
        w.sync_all().await?;
        tmp.persist(out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        Ok(n)
    }
}

/// Where `put` writes: DEST as given, DEST/NAME when DEST ends in `/`, /root/NAME without DEST.
pub(crate) fn put_dest(file: &Path, dest: Option<&str>) -> Result<String> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no file name in UTF-8", file.display()))?;
    Ok(match dest {
        None => format!("/root/{name}"),
        Some(d) if d.ends_with('/') => format!("{d}{name}"),
        Some(d) => d.to_string(),
    })
}

/// Where `get` writes: OUT, or the path's last component (`NAME.tar` for a folder is decided by
/// the caller) in the current directory.
pub(crate) fn get_out(path: &str, out: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(o) = out {
        return Ok(o);
    }
    match path.rsplit('/').find(|s| !s.is_empty()) {
        Some(name) => Ok(PathBuf::from(name)),
        None => bail!("say where to write {path:?} with -o"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_goes_to_the_agents_home_unless_told_otherwise() {
        let f = Path::new("/tmp/report.pdf");
        assert_eq!(put_dest(f, None).unwrap(), "/root/report.pdf");
        assert_eq!(
            put_dest(f, Some("/root/Downloads/")).unwrap(),
            "/root/Downloads/report.pdf"
        );
        assert_eq!(put_dest(f, Some("/root/in.pdf")).unwrap(), "/root/in.pdf");
    }

    #[test]
    fn get_writes_beside_the_caller_under_the_files_name() {
        assert_eq!(
            get_out("/root/out/result.csv", None).unwrap(),
            PathBuf::from("result.csv")
        );
        assert!(get_out("/", None).is_err());
    }
}
