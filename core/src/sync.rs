//! The device side of sync, without I/O: build a request from the store, apply a response
//! to the store. [`crate::device::Device::sync`] moves the bytes.
//!
//! Invariant: a record's `server_heads` only advance to heads the server has said it
//! committed, so a lost request or response is simply sent again, and the server ignores
//! changes it already has.

use automerge::ActorId;

use std::collections::HashSet;

use automerge::ChangeHash;

use crate::protocol::{self, PushRecord, Rejection, SyncRequest, SyncResponse};
use crate::record::{RecordDoc, RecordError, heads_from_hex, heads_to_hex};
use crate::store::{self, Store, StoreError, StoredRecord};

pub const CURSOR_KEY: &str = "sync_cursor";
/// The cursor of the last complete sync (see [`SyncRequest::synced`]).
pub const SYNCED_KEY: &str = "synced_cursor";
/// The token of the account and scope last received (see [`protocol::Reach`]).
pub const REACH_KEY: &str = "reach_token";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("the server sent something this device cannot use: {0}")]
    Protocol(String),
}

/// What one exchange did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepReport {
    pub accepted: Vec<String>,
    pub rejected: Vec<Rejection>,
    pub pulled_records: usize,
    pub pulled_templates: usize,
    pub more: bool,
    /// The server sent the account and scope anew (first sync, or an administrator changed them).
    pub reach_changed: bool,
    /// Records removed because they left the user's scope.
    pub forgotten_records: u64,
}

/// A request stops taking records once their changes pass this many bytes; the rest go in
/// the next exchange of the same sync.
pub const PUSH_BYTES: usize = 512 * 1024;

/// One request to send, and whether unsent records were left for another.
pub struct Outgoing {
    pub request: SyncRequest,
    pub more: bool,
}

/// Collects the changes the server has not acknowledged (up to [`PUSH_BYTES`], skipping the
/// records already sent in this sync), and the cursor.
pub async fn build_request(store: &Store, skip: &HashSet<String>) -> Result<Outgoing, SyncError> {
    let cursor = store.setting(CURSOR_KEY).await?.and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut push = Vec::new();
    let mut bytes = 0;
    let mut more = false;
    for record in store.unsent_records().await? {
        if skip.contains(&record.id) {
            continue;
        }
        if bytes >= PUSH_BYTES {
            more = true;
            break;
        }
        let mut doc = RecordDoc::load(&record.doc, None)?;
        let server_heads = heads_from_hex(&record.server_heads)?;
        let changes = doc.bundle_since(&server_heads)?;
        bytes += changes.len();
        push.push(PushRecord {
            record_id: record.id.clone(),
            changes,
            heads: heads_from_hex(&record.heads)?.into_iter().map(|h| h.0).collect(),
        });
    }
    let synced = store.setting(SYNCED_KEY).await?.and_then(|c| c.parse().ok()).unwrap_or(0);
    let reach = store.setting(REACH_KEY).await?.and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok(Outgoing { request: SyncRequest { cursor, synced, reach, push }, more })
}

/// Applies the server's answer in one store transaction.
pub async fn apply_response(
    store: &Store,
    sent: &SyncRequest,
    response: SyncResponse,
    actor: &ActorId,
    now: i64,
) -> Result<StepReport, SyncError> {
    let mut report =
        StepReport { more: response.more, reach_changed: response.reach.is_some(), ..StepReport::default() };
    // Read what is needed first, then write everything in one transaction.
    let mut writes: Vec<StoredRecord> = Vec::new();
    for pushed in &sent.push {
        let Some(mut record) = store.record(&pushed.record_id).await? else {
            continue;
        };
        if response.accepted.contains(&pushed.record_id) {
            record.server_heads = heads_to_hex(&pushed.heads.iter().map(|h| ChangeHash(*h)).collect::<Vec<_>>());
            record.rejection = None;
            report.accepted.push(pushed.record_id.clone());
        } else if let Some(r) = response.rejected.iter().find(|r| r.record_id == pushed.record_id) {
            record.rejection = Some((r.code.clone(), r.message.clone()));
            if r.code == protocol::codes::MISSING_HISTORY {
                record.server_heads = Vec::new();
            }
            report.rejected.push(r.clone());
        } else {
            continue;
        }
        writes.push(record);
    }
    // A device missing what an incremental pull builds on (it cannot happen unless its store
    // and cursor disagree) starts over from cursor 0: whole documents, nothing lost.
    let mut start_over = false;
    for pulled in &response.records {
        let bytes = &pulled.doc;
        let local = match writes.iter().position(|w| w.id == pulled.record_id) {
            Some(i) => Some(writes.swap_remove(i)),
            None => store.record(&pulled.record_id).await?,
        };
        let merged = if pulled.heads.is_empty() {
            let mut server_doc = RecordDoc::load(bytes, None)?;
            let server_heads = heads_to_hex(&server_doc.heads());
            match local {
                Some(local) => {
                    let mut doc = RecordDoc::load(&local.doc, Some(actor.clone()))?;
                    doc.merge_saved(bytes)?;
                    index(doc, local.rejection, server_heads, now)?
                }
                None => index(server_doc, None, server_heads, now)?,
            }
        } else {
            let heads: Vec<ChangeHash> = pulled.heads.iter().map(|h| ChangeHash(*h)).collect();
            let Some(local) = local else {
                tracing::warn!(record = %pulled.record_id, "changes pulled for a record this device lacks; syncing again from the start");
                start_over = true;
                continue;
            };
            let mut doc = RecordDoc::load(&local.doc, Some(actor.clone()))?;
            doc.merge_saved(bytes)?;
            if !doc.missing_deps(&heads).is_empty() {
                tracing::warn!(record = %pulled.record_id, "pulled changes miss earlier ones; syncing again from the start");
                start_over = true;
                writes.push(local);
                continue;
            }
            index(doc, local.rejection, heads_to_hex(&heads), now)?
        };
        if merged.id != pulled.record_id {
            return Err(SyncError::Protocol(format!("record {} holds another record", pulled.record_id)));
        }
        writes.push(merged);
        report.pulled_records += 1;
    }
    let mut tx = store.begin().await?;
    // A new scope first: what left it goes before what the pull brings is stored.
    let rescan = response.reach.as_ref().is_some_and(|r| r.rescan);
    if let Some(reach) = &response.reach {
        report.forgotten_records = store::forget_outside(&mut tx, &reach.units, &reach.hidden_templates).await?;
        let account = serde_json::to_string(&reach.account).map_err(|e| SyncError::Protocol(e.to_string()))?;
        store.set_setting_in(&mut tx, crate::device::ACCOUNT_KEY, &account).await?;
        store.set_setting_in(&mut tx, REACH_KEY, &reach.token.to_string()).await?;
    }
    for text in &response.templates {
        // The same publication checks as on the server: a template the engine cannot run is
        // refused here rather than failing in front of an officer.
        let form = crate::form::Form::from_json(text).map_err(|e| SyncError::Protocol(format!("template: {e}")))?;
        store::put_template(&mut tx, form.template()).await?;
        report.pulled_templates += 1;
    }
    for record in &writes {
        store.put_record_in(&mut tx, record).await?;
    }
    for unit in &response.units {
        store::put_unit(&mut tx, unit).await?;
    }
    let cursor = if start_over { 0 } else { response.cursor };
    store.set_setting_in(&mut tx, CURSOR_KEY, &cursor.to_string()).await?;
    if start_over || !response.more {
        store.set_setting_in(&mut tx, SYNCED_KEY, &cursor.to_string()).await?;
    } else if rescan {
        // Until the new download is complete the device does not hold its whole scope.
        store.set_setting_in(&mut tx, SYNCED_KEY, "0").await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(report)
}

/// The index columns of a document, ready to store.
pub fn index(
    mut doc: RecordDoc,
    rejection: Option<(String, String)>,
    server_heads: Vec<String>,
    now: i64,
) -> Result<StoredRecord, SyncError> {
    let mut record = index_columns(&mut doc, rejection, server_heads, now)?;
    record.doc = doc.save();
    Ok(record)
}

/// The index columns of a document, with no document bytes (`doc` is empty).
pub fn index_columns(
    doc: &mut RecordDoc,
    rejection: Option<(String, String)>,
    server_heads: Vec<String>,
    now: i64,
) -> Result<StoredRecord, SyncError> {
    let meta = doc.meta()?;
    let attachments =
        crate::store::AttachmentRef::find_all(&serde_json::Value::Object(doc.values().into_iter().collect()));
    Ok(StoredRecord {
        attachments,
        id: meta.record_id,
        template_id: meta.template_id,
        template_version: meta.template_version,
        unit_code: meta.unit_code,
        state: doc.state().as_str().to_owned(),
        updated_at: now,
        heads: heads_to_hex(&doc.heads()),
        doc: Vec::new(),
        server_heads,
        rejection,
    })
}
