//! The server side of sync: check every pushed change, commit what may be committed,
//! and answer with everything new in the device's scope.
//!
//! Checks, per record, before anything is written:
//! - every change was made by the device's own Automerge actor (no impersonation);
//! - the record's unit lies in the user's unit subtree, and the template exists;
//! - the user's role may fill the template;
//! - a record's identity (id, template, unit) never changes.
//!
//! A record that fails is refused with a reason; the others are committed.

mod projection;
mod pull;
mod push;

pub use projection::{Projection, project};
pub use pull::has_changes;
pub use push::write_record;
pub(crate) use push::{Verdict, admit, decide, screen};

use crate::http::error::ApiError;
use crate::store::{AuthDevice, Db, DbError, Marks, Rescan, ServedReach};
use automerge::Change;
use automerge::ChangeHash;
use axum::http::StatusCode;
use diaban_core::limits;
use diaban_core::protocol::{Account, PushRecord, Reach, SyncRequest, SyncResponse, UnitInfo, codes};
use diaban_core::record::{RecordDoc, heads_to_hex};
use std::collections::HashSet;

pub(crate) struct Decoded {
    record_id: String,
    /// The bundle as pushed (kept whole for a proposed amendment).
    bundle: Vec<u8>,
    changes: Vec<Change>,
    heads: Vec<String>,
}

pub async fn sync(db: &Db, device: &AuthDevice, request: SyncRequest) -> Result<SyncResponse, ApiError> {
    limits::check_push(request.push.len())
        .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, codes::TOO_LARGE, e.to_string()))?;
    let pushes = decode(request.push)?;
    let marks = &device.marks;
    let (scope, hidden) = readable(db, device, marks).await?;
    let plan = reach(db, device, &scope, &hidden, request.reach, request.cursor, request.synced).await?;
    // The common idle check: nothing pushed, nothing committed anywhere since the cursor,
    // account and scope as the device knows them.
    if pushes.is_empty() && marks.latest <= request.cursor && plan.is_none() {
        return Ok(SyncResponse {
            cursor: request.cursor,
            token_expires_at: device.token_expires_at,
            ..SyncResponse::default()
        });
    }
    let (accepted, rejected) = push::commit(db, device, &scope, &hidden, pushes.iter()).await?;
    let pushed_heads: Vec<(&str, &[String])> =
        pushes.iter().map(|p| (p.record_id.as_str(), p.heads.as_slice())).collect();
    // Where the pull starts, and as of when the device holds its scope (after a complete sync
    // it holds every record as of `synced`; in the middle of a paged download it lacks records
    // changed after the page, hence not past `cursor`).
    let rescan = plan.as_ref().and_then(|p| p.served.rescan.as_ref());
    let (cursor, synced) = match (rescan, plan.as_ref().is_some_and(|p| p.restart)) {
        (Some(rescan), true) => (0, rescan.synced),
        // Under way: the device asks from where its last page stopped. At cursor 0 (it started
        // over) it holds nothing for sure.
        (Some(rescan), false) => (request.cursor, if request.cursor == 0 { 0 } else { rescan.synced }),
        (None, _) => (request.cursor, request.synced.min(request.cursor)),
    };
    let mut response = pull::pull(db, &scope, &hidden, cursor, synced, rescan, &pushed_heads).await?;
    response.accepted = accepted;
    response.rejected = rejected;
    response.token_expires_at = device.token_expires_at;
    if let Some(plan) = plan {
        // Units that came into scope go with it, whatever their sequence: one added after
        // the last sync's scope was read but before its pull was passed by that pull's cursor.
        if !plan.added_units.is_empty() {
            for unit in db.units_in(&plan.added_units).await? {
                if !response.units.iter().any(|u| u.code == unit.code) {
                    response.units.push(UnitInfo {
                        code: unit.code,
                        name: unit.name,
                        level: unit.level,
                        parent_code: unit.parent_code.unwrap_or_default(),
                    });
                }
            }
        }
        response.reach = Some(plan.serve(db, device, request.reach, response.more).await?);
    }
    tracing::debug!(
        device = %device.device_id,
        user = %device.user.username,
        accepted = response.accepted.len(),
        rejected = response.rejected.len(),
        pulled = response.records.len(),
        cursor = response.cursor,
        "sync"
    );
    Ok(response)
}

/// The account and scope a device is to be sent, when its token stands for others.
struct ReachPlan {
    account: Account,
    /// The token of the account and scope now.
    token: u64,
    served: ServedReach,
    /// A download of what came into reach starts (from cursor 0), rather than goes on.
    restart: bool,
    /// Units in the scope now that were not in the one the device held.
    added_units: Vec<String>,
}

impl ReachPlan {
    /// The [`Reach`] for the answer, kept as served. While the download of what came into
    /// reach still has pages to go, the device gets a token of its own for it, so that its
    /// next request says the download is under way.
    async fn serve(self, db: &Db, device: &AuthDevice, known: u64, more: bool) -> Result<Reach, DbError> {
        let mut served = self.served;
        let rescan = served.rescan.is_some();
        let token = if rescan && more {
            Reach::rescan_token(self.token)
        } else {
            served.rescan = None;
            self.token
        };
        db.keep_reach(&device.device_id, known, token, &served).await?;
        Ok(Reach { token, account: self.account, units: served.units, hidden_templates: served.hidden, rescan })
    }
}

/// What the device is to be sent of its account and scope, if its token (`known`) stands for
/// others, and whether it must download what came into its reach: records it has passed
/// with its cursor that lie in units or templates added to its scope (or everything, when
/// what it held is not known). Such a download sends only those records, whole, and the
/// changes since the device's last complete sync; it goes on across pages under a token of
/// its own, and starts again if more comes into reach meanwhile.
async fn reach(
    db: &Db,
    device: &AuthDevice,
    scope: &[String],
    hidden: &[String],
    known: u64,
    cursor: i64,
    synced: i64,
) -> Result<Option<ReachPlan>, DbError> {
    let (account, units, token) = reach_now(device, scope, hidden);
    if token == known {
        return Ok(None);
    }
    let held = if known == 0 { None } else { db.served_reach(&device.device_id, known).await? };
    let added_units = match &held {
        Some(held) => units.iter().filter(|u| !held.units.contains(u)).cloned().collect(),
        None => Vec::new(),
    };
    let (rescan, restart) = match held {
        _ if cursor == 0 => (None, false),
        // What the device holds is not known: all of its scope, whole.
        None => (Some(Rescan::default()), true),
        Some(held) => {
            let added = added_units.clone();
            let unhidden: Vec<String> = held.hidden.iter().filter(|t| !hidden.contains(t)).cloned().collect();
            let came = (!added.is_empty() || !unhidden.is_empty())
                && db.records_came_into_reach(cursor, &units, hidden, &added, &unhidden).await?;
            match (held.rescan, came) {
                (None, false) => (None, false),
                (None, true) => (Some(Rescan { units: added, templates: unhidden, synced: synced.min(cursor) }), true),
                (Some(under_way), false) => (Some(under_way), false),
                // More came into reach during a download: it starts again with both.
                (Some(mut under_way), true) => {
                    for (list, more) in [(&mut under_way.units, added), (&mut under_way.templates, unhidden)] {
                        list.extend(more);
                        list.sort();
                        list.dedup();
                    }
                    (Some(under_way), true)
                }
            }
        }
    };
    let served = ServedReach { units, hidden: hidden.to_vec(), rescan };
    Ok(Some(ReachPlan { account, token, served, restart, added_units }))
}

/// The user's account, their units sorted, and the [`Reach::token`] for these with `hidden`.
fn reach_now(device: &AuthDevice, scope: &[String], hidden: &[String]) -> (Account, Vec<String>, u64) {
    let user = &device.user;
    let account = Account {
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        role: user.role,
        unit_code: user.unit_code.clone(),
        unit_name: user.unit_name.clone(),
    };
    let mut units = scope.to_vec();
    units.sort();
    let token = Reach::token_for(&account, &units, hidden);
    (account, units, token)
}

/// Whether the device's reach token (`known`) still stands for its user's account and scope.
pub async fn reach_is_current(db: &Db, device: &AuthDevice, known: u64) -> Result<bool, DbError> {
    let (scope, hidden) = readable(db, device, &device.marks).await?;
    Ok(reach_now(device, &scope, &hidden).2 == known)
}

/// What the device's user may read as of `marks`: their unit subtree, and the restricted
/// templates hidden from them.
pub(super) async fn readable(
    db: &Db,
    device: &AuthDevice,
    marks: &Marks,
) -> Result<(Vec<String>, Vec<String>), DbError> {
    Ok((db.unit_scope_at(&device.user.unit_code, marks.units).await?, db.hidden_at(marks).await?))
}

/// Malformed input refuses the whole request before anything is written.
pub(crate) fn decode(push: Vec<PushRecord>) -> Result<Vec<Decoded>, ApiError> {
    let mut seen = HashSet::new();
    push.into_iter()
        .map(|p| {
            if !seen.insert(p.record_id.clone()) {
                return Err(ApiError::bad_request(format!("record {} is pushed twice", p.record_id)));
            }
            let changes = RecordDoc::decode_bundle(&p.changes)
                .map_err(|e| ApiError::bad_request(format!("record {}: {e}", p.record_id)))?;
            let heads = heads_to_hex(&p.heads.iter().map(|h| ChangeHash(*h)).collect::<Vec<_>>());
            Ok(Decoded { record_id: p.record_id, bundle: p.changes, changes, heads })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use diaban_core::template::Role;

    use super::*;
    use crate::store::Unit;

    fn unit(code: &str, name: &str, parent: Option<&str>) -> Unit {
        let level = if parent.is_some() { "commune" } else { "province" };
        Unit { code: code.into(), name: name.into(), level: level.into(), parent_code: parent.map(Into::into) }
    }

    fn request(cursor: i64, reach: u64) -> SyncRequest {
        SyncRequest { cursor, synced: cursor, reach, push: Vec::new() }
    }

    /// A sync authenticated before a unit was added, whose pull passed the unit's sequence
    /// with the scope read before it: the next sync brings the unit with the scope.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_unit_added_while_a_sync_ran_comes_with_the_next_sync() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.sqlite").to_string_lossy()).await.unwrap();
        db.create_unit(&unit("14", "Tỉnh Sơn La", None)).await.unwrap();
        db.create_unit(&unit("04229", "Xã Mường Bú", Some("14"))).await.unwrap();
        db.create_user("r", "Cầm Văn Hùng", "mật khẩu dài", Role::Reviewer, "14").await.unwrap();
        let (user, _) = db.user_for_login("r").await.unwrap().unwrap();
        db.register_device(&user, "phone", "aa", "hash").await.unwrap();
        let signed_in = async || db.device_by_token("hash").await.unwrap().unwrap();

        let first = sync(&db, &signed_in().await, request(0, 0)).await.unwrap();
        assert_eq!(first.units.len(), 2);
        db.create_unit(&unit("04230", "Xã Chiềng Sơ", Some("14"))).await.unwrap();
        // Authenticated now; the next unit is added before its pull.
        let authenticated = signed_in().await;
        // The unit subtree as of then, read (and cached) by this or another request.
        db.unit_scope_at("14", authenticated.marks.units).await.unwrap();
        db.create_unit(&unit("04231", "Xã Sốp Cộp", Some("14"))).await.unwrap();
        let raced = sync(&db, &authenticated, request(first.cursor, first.reach.unwrap().token)).await.unwrap();
        let codes = |r: &SyncResponse| r.units.iter().map(|u| u.code.clone()).collect::<Vec<_>>();
        assert_eq!(codes(&raced), vec!["04230"], "the scope as authenticated");
        assert!(raced.cursor >= db.latest_seq().await.unwrap(), "the cursor passed the unit added meanwhile");

        let next = sync(&db, &signed_in().await, request(raced.cursor, raced.reach.unwrap().token)).await.unwrap();
        assert!(next.reach.as_ref().unwrap().units.contains(&"04231".to_owned()));
        assert_eq!(codes(&next), vec!["04231"], "the unit that came into scope, with its name");
        assert_eq!(next.units[0].name, "Xã Sốp Cộp");
    }
}
