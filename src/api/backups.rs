//! Online backups over the API, the regulator's: `POST /v1/admin/backups` takes one into the
//! configured `backup.dir` and answers what it holds; `GET /v1/admin/backups` lists them.
//!
//! Worst callers: a token without [`Permission::Backup`](crate::roles::Permission::Backup)
//! gets 403 and an audit entry; a regulator's administrator cannot choose where a backup goes
//! (only `backup.dir`), cannot run two at once (409), and keeps at most `backup.keep` on disk.
//! A backup runs on a blocking thread with one disk permit: checks never wait for it.

use serde_json::{Value, json};

use super::reply::created;
use super::routes::Call;
use super::{ApiError, HttpResponse, json_value, off_worker_as};
use crate::registry::backups::{BackupBy, BackupSettings};
use crate::store::BackupInfo;
use crate::timefmt;

/// `POST /v1/admin/backups`.
pub async fn create(call: Call) -> Result<HttpResponse, ApiError> {
    off_worker_as(&call.state, call.who()?, move |state, who| {
        let info = state
            .registry
            .backup(BackupBy::Caller(who), &state.backup)?;
        Ok(created(
            &format!("/v1/admin/backups/{}", info.id),
            &backup_json(&info),
        ))
    })
    .await
}

/// `GET /v1/admin/backups`.
pub async fn list(call: Call) -> Result<HttpResponse, ApiError> {
    off_worker_as(&call.state, call.who()?, move |state, who| {
        let backups = state.registry.backups(who, &state.backup)?;
        Ok(json_value(&json!({
            "dir": dir_text(&state.backup),
            "keep": state.backup.keep,
            "every_hours": state.backup.every.map(|e| e.as_secs() / 3600),
            "backups": backups.iter().map(backup_json).collect::<Vec<_>>(),
        })))
    })
    .await
}

fn dir_text(settings: &BackupSettings) -> Option<String> {
    settings.dir.as_ref().map(|d| d.display().to_string())
}

/// A backup as the API shows it: its id, when, size and what it holds.
fn backup_json(info: &BackupInfo) -> Value {
    let mut value = json!({
        "id": info.id,
        "taken_at": timefmt::rfc3339(info.taken_at),
        "bytes": info.bytes,
        "files": info.files,
    });
    value["digests"] = serde_json::to_value(&info.digests).unwrap_or_default();
    value
}
