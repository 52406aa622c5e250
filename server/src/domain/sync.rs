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

use std::collections::{BTreeMap, HashSet};

use automerge::Change;
use automerge::ChangeHash;
use axum::http::StatusCode;
use diaban_core::form::{Form, Issue};
use diaban_core::limits;
use diaban_core::protocol::{
    Account, PulledRecord, PushRecord, Reach, Rejection, SyncRequest, SyncResponse, UnitInfo, codes,
};
use diaban_core::record::{
    Event, RecordDoc, RecordError, RecordMeta, WorkflowState, heads_from_hex, heads_to_hex, state_of,
};
use sqlx::{AnyConnection, Row};
use time::Date;

use diaban_core::store::AttachmentRef;

use crate::domain::authorize;
use crate::http::error::ApiError;
use crate::store::commit::Mark;
use crate::store::{
    AuthDevice, Db, DbError, DocBytes, FOLD_AFTER, Marks, RecordWrite, Rescan, ServedReach, StoredState,
};

/// How many records one response carries at most; the device asks again for more.
const PAGE_RECORDS: i64 = page_records!();
/// [`PAGE_RECORDS`] as a literal for SQL: SQLite 3.50 plans `LIMIT $n` worse than a constant
/// (the page statement took 160 µs instead of 28 µs).
macro_rules! page_records {
    () => {
        250
    };
}
use page_records;
/// A response stops adding documents once they pass this many bytes, about eight seconds of a
/// 2G link: a cut loses at most that much of a download, since the device commits every page
/// it receives; the device asks again for more.
const PAGE_BYTES: usize = 48 * 1024;

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
    let (accepted, rejected) = commit(db, device, &scope, &hidden, pushes.iter()).await?;
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
    let mut response = pull(db, &scope, &hidden, cursor, synced, rescan, &pushed_heads).await?;
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
async fn readable(db: &Db, device: &AuthDevice, marks: &Marks) -> Result<(Vec<String>, Vec<String>), DbError> {
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

async fn commit<'a>(
    db: &Db,
    device: &AuthDevice,
    scope: &[String],
    hidden: &[String],
    pushes: impl Iterator<Item = &'a Decoded>,
) -> Result<(Vec<String>, Vec<Rejection>), ApiError> {
    let pushes: Vec<&Decoded> = pushes.collect();
    if pushes.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // Outside the write lock, where pushes of many devices run side by side: check each push
    // against its record as last committed and prepare what to write. The lock then holds
    // only the writes (and a fresh check of a record changed in between).
    let mut prepared = Vec::new();
    {
        let mut conn = db.conn().await?;
        for push in &pushes {
            // The record as last committed: in memory after this process's last write of it
            // (trusted behind the write's sequence guard), or else read.
            let (mut stored, held) = match db.docs.take(&push.record_id) {
                Some((state, doc)) => (Some(state), Some(doc)),
                None => (Db::record_state(&mut conn, &push.record_id).await?, None),
            };
            let from_memory = held.is_some();
            let mut verdict = check(&mut conn, db, stored.as_ref(), held, device, scope, hidden, push).await?;
            // A refusal has no guard: it must not rest on a record written since (by a
            // reviewer, another node). Checked again if the stored sequence moved.
            if from_memory
                && matches!(verdict, Verdict::Refused(_))
                && Db::record_seq(&mut conn, &push.record_id).await? != stored.as_ref().map(|s| s.seq)
            {
                stored = Db::record_state(&mut conn, &push.record_id).await?;
                verdict = check(&mut conn, db, stored.as_ref(), None, device, scope, hidden, push).await?;
            }
            prepared.push((stored, verdict));
        }
    }
    let mut outcomes = Vec::new();
    let mut to_write = Vec::new();
    for (push, (stored, verdict)) in pushes.iter().zip(prepared) {
        match verdict {
            // Nothing to write: a refusal, or changes that are all stored already.
            Verdict::Refused(refusal) => outcomes.push((push.record_id.clone(), Err(refusal))),
            Verdict::Unchanged(doc) => {
                if let Some(state) = stored {
                    db.docs.put(push.record_id.clone(), state, doc);
                }
                outcomes.push((push.record_id.clone(), Ok(())));
            }
            verdict => to_write.push((*push, stored, verdict)),
        }
    }
    if !to_write.is_empty() {
        let now = db.clock.now();
        let written = db
            .write_marked(async |tx, mark| {
                let mut written = Vec::new();
                let count = to_write.len();
                for (i, (push, stored, verdict)) in to_write.into_iter().enumerate() {
                    // The last record's write may end the job: it may carry the job's mark.
                    let last = (i + 1 == count).then_some(&mut *mark);
                    // A write goes through only if the record is still as checked; an amendment
                    // is kept only then. Changed in between (another device, node or batch):
                    // check again, against the record as it is now.
                    let still = match &verdict {
                        Verdict::Amend => Db::record_seq(tx, &push.record_id).await? == stored.as_ref().map(|s| s.seq),
                        _ => true,
                    };
                    let mut outcome = if still {
                        settle(tx, device, push, stored.as_ref(), verdict, last, now).await?
                    } else {
                        Settled::ChangedMeanwhile
                    };
                    if let Settled::ChangedMeanwhile = outcome {
                        // More is written after a mark the write may have sent.
                        mark.unsent();
                        let stored = Db::record_state(tx, &push.record_id).await?;
                        let verdict = check(tx, db, stored.as_ref(), None, device, scope, hidden, push).await?;
                        outcome = settle(tx, device, push, stored.as_ref(), verdict, None, now).await?;
                    }
                    let outcome = match outcome {
                        Settled::Kept(state, doc) => Ok((state, doc)),
                        Settled::Refused(refusal) => Err(refusal),
                        // Checked and written under the lock: nobody else can write it now.
                        Settled::ChangedMeanwhile => {
                            return Err(DbError::Invalid(format!("record {} changed while written", push.record_id)));
                        }
                    };
                    written.push((push.record_id.clone(), outcome));
                }
                Ok(written)
            })
            .await?;
        for (id, outcome) in written {
            // Durable now: the document may serve the next commit to the same record.
            outcomes.push((id.clone(), outcome.map(|(state, doc)| db.docs.put(id, state, *doc))));
        }
    }
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for (record_id, outcome) in outcomes {
        match outcome {
            Ok(()) => accepted.push(record_id),
            Err(Refusal { code, message, issues }) => {
                rejected.push(Rejection { record_id, code: code.into(), message, issues })
            }
        }
    }
    Ok((accepted, rejected))
}

/// What a record's push came to under the lock.
enum Settled {
    /// Committed, or held already: the record's state and document as stored now.
    Kept(StoredState, Box<RecordDoc>),
    /// Refused with a reason (an edit kept as a proposed amendment too: the record is unchanged).
    Refused(Refusal),
    /// The record is no longer as checked (another device, node or batch wrote it): nothing
    /// was written, it is checked again.
    ChangedMeanwhile,
}

/// Carries out a verdict reached against `stored`, inside the write transaction (its write
/// the job's last statement, with `mark`).
async fn settle(
    tx: &mut AnyConnection,
    device: &AuthDevice,
    push: &Decoded,
    stored: Option<&StoredState>,
    verdict: Verdict,
    mark: Option<&mut Mark>,
    now: i64,
) -> Result<Settled, DbError> {
    Ok(match verdict {
        Verdict::Refused(refusal) => Settled::Refused(refusal),
        Verdict::Unchanged(doc) => match stored {
            Some(state) => Settled::Kept(state.clone(), Box::new(doc)),
            // Unchanged means the record is stored; not found now, it is checked again.
            None => Settled::ChangedMeanwhile,
        },
        Verdict::Amend => Settled::Refused(propose_amendment(tx, device, push, now).await?),
        Verdict::Write(mut doc, projection) => {
            match write_record(tx, &mut doc, &projection, stored, Some(&device.device_id), mark, now).await? {
                Some(state) => Settled::Kept(state, Box::new(doc)),
                None => Settled::ChangedMeanwhile,
            }
        }
    })
}

/// What the server stores beside a record's document, computed from the document.
pub struct Projection {
    /// The record's identity (id, template, unit, period…).
    pub meta: RecordMeta,
    pub values_json: String,
    /// Attachments the values refer to.
    pub attachments: Vec<AttachmentRef>,
    pub state: WorkflowState,
    pub heads: Vec<String>,
    pub issues: Vec<Issue>,
}

/// Identity, values (with calculated ones), state, heads and validation issues of a record.
/// Calculations see `today` as the server's clock has it.
pub fn project(doc: &mut RecordDoc, form: &Form, today: Date) -> Result<Projection, RecordError> {
    let meta = doc.meta()?;
    let (values, events) = (doc.values(), doc.events());
    Ok(project_read(doc, form, meta, values, &events, today))
}

/// [`project`], given what was read of the document already: its meta, values and events
/// (reading a document's values walks all of it).
fn project_read(
    doc: &mut RecordDoc,
    form: &Form,
    meta: RecordMeta,
    values: BTreeMap<String, serde_json::Value>,
    events: &[Event],
    today: Date,
) -> Projection {
    let mut values: serde_json::Map<String, serde_json::Value> = values.into_iter().collect();
    let evaluation = form.evaluate(&values, &form.env(meta.period.as_deref(), "vi", today), &doc.conflicts());
    values.extend(evaluation.calculated);
    let values = serde_json::Value::Object(values);
    Projection {
        meta,
        attachments: AttachmentRef::find_all(&values),
        values_json: values.to_string(),
        state: state_of(events),
        heads: heads_to_hex(&doc.heads()),
        issues: evaluation.issues,
    }
}

/// Why one record's changes are refused.
pub(crate) struct Refusal {
    code: &'static str,
    message: String,
    issues: Vec<Issue>,
}

fn refusal(code: &'static str, message: impl Into<String>) -> Verdict {
    Verdict::Refused(Refusal { code, message: message.into(), issues: Vec::new() })
}

/// What checking one pushed record against its stored state decided.
pub(crate) enum Verdict {
    Refused(Refusal),
    /// Every change is stored already (a retry, a duplicate): the record's document.
    Unchanged(RecordDoc),
    /// Edits to an approved record: kept as a proposed amendment, not written.
    Amend,
    /// The document with the changes applied, and its projection: to be written.
    Write(RecordDoc, Box<Projection>),
}

/// Checks one pushed record against the record as stored (`existing`, with its document if
/// the caller holds it; else it is read in `conn`), and prepares what to write; writes nothing.
/// The reads are here; the checks are [`screen`], [`admit`] and [`decide`], which read nothing.
#[allow(clippy::too_many_arguments)]
async fn check(
    conn: &mut AnyConnection,
    db: &Db,
    existing: Option<&StoredState>,
    held: Option<RecordDoc>,
    device: &AuthDevice,
    scope: &[String],
    hidden: &[String],
    push: &Decoded,
) -> Result<Verdict, DbError> {
    if let Some(verdict) = screen(existing, device, scope, push) {
        return Ok(verdict);
    }
    let doc = match (existing, held) {
        (Some(_), Some(doc)) => doc,
        (Some(_), None) => RecordDoc::load(&Db::stored_doc(conn, &push.record_id).await?, None)
            .map_err(|e| DbError::Invalid(format!("stored record {}: {e}", push.record_id)))?,
        (None, _) => RecordDoc::empty(),
    };
    let admitted = match admit(existing, doc, scope, push) {
        Ok(admitted) => admitted,
        Err(verdict) => return Ok(*verdict),
    };
    // Templates never change once published: the compiled form comes from memory.
    let form = db.form_in(conn, &admitted.meta.template_id, admitted.meta.template_version).await?;
    let verdict = decide(admitted, existing, form.as_deref(), hidden, device, db.clock.today());
    // A new reference to an attachment must be to one this user uploaded whole.
    if let Verdict::Write(_, projection) = &verdict
        && !projection.attachments.is_empty()
    {
        let before: Vec<String> = sqlx::query_scalar("SELECT sha256 FROM record_attachments WHERE record_id = $1")
            .bind(&push.record_id)
            .fetch_all(&mut *conn)
            .await?;
        let new: Vec<&str> = projection
            .attachments
            .iter()
            .map(|a| a.sha256.as_str())
            .filter(|s| !before.iter().any(|b| b == s))
            .collect();
        if !new.is_empty() && !crate::http::attachments::uploaded_all(conn, &device.user.username, &new).await? {
            return Ok(refusal(
                codes::ATTACHMENT_NOT_UPLOADED,
                "the record refers to an attachment this user has not uploaded; upload it first",
            ));
        }
    }
    Ok(verdict)
}

/// The checks that need nothing but the push: the changes are the device's own, within the
/// size limits, and an existing record lies in the user's units.
/// The pushing device as the authorization rules see it.
fn pusher(device: &AuthDevice) -> authorize::Pusher<'_> {
    authorize::Pusher {
        username: &device.user.username,
        device_id: &device.device_id,
        actor: &device.actor_id,
        role: device.user.role,
    }
}

pub(crate) fn screen(
    existing: Option<&StoredState>,
    device: &AuthDevice,
    scope: &[String],
    push: &Decoded,
) -> Option<Verdict> {
    if let Some(c) = push.changes.iter().find(|c| c.actor_id().to_hex_string() != device.actor_id) {
        return Some(refusal(codes::NOT_YOUR_ACTOR, format!("change {} was not made by this device", c.hash())));
    }
    // Bounded before anything is applied: operations per change, the document's size.
    let stored_bytes = existing.map_or(0, |s| s.bytes.max(0) as usize);
    if let Err(e) = limits::check_changes(&push.changes).and_then(|()| {
        limits::check_bytes("the record's document", stored_bytes + push.bundle.len(), limits::MAX_DOCUMENT_BYTES)
    }) {
        return Some(refusal(codes::TOO_LARGE, e.to_string()));
    }
    if let Err(d) = authorize::claims(&push.changes, pusher(device)) {
        return Some(refusal(d.code, d.message));
    }
    // The same answer whether the record exists elsewhere or not: nothing leaks.
    match existing {
        Some(stored) if !scope.contains(&stored.unit_code) => Some(refusal(codes::OUT_OF_SCOPE, OUT_OF_SCOPE)),
        _ => None,
    }
}

/// A push applied to the record as it was, and what it was.
pub(crate) struct Admitted {
    doc: RecordDoc,
    before: Before,
    pub(crate) meta: RecordMeta,
}

/// Applies the push to the stored document (empty for a new record): the changes apply, no
/// history is missing, the record's identity is unchanged and in scope. A retry of changes
/// held already is [`Verdict::Unchanged`].
pub(crate) fn admit(
    existing: Option<&StoredState>,
    mut doc: RecordDoc,
    scope: &[String],
    push: &Decoded,
) -> Result<Admitted, Box<Verdict>> {
    let refuse = |code, message: String| Box::new(refusal(code, message));
    // What the record was before these changes: its state, values, frame and log.
    let stored = authorize::Stored::of(&doc, existing.is_some()).map_err(|d| Box::new(refusal(d.code, d.message)))?;
    let before = Before { state: state_of(&doc.events()), values: doc.values(), stored };
    let heads_before = doc.heads();
    if let Err(e) = doc.apply_changes(push.changes.clone()) {
        return Err(refuse(codes::BAD_CHANGE, e.to_string()));
    }
    let pushed_heads = heads_from_hex(&push.heads).unwrap_or_default();
    if !doc.missing_deps(&pushed_heads).is_empty() {
        return Err(refuse(
            codes::MISSING_HISTORY,
            "the server lacks earlier changes of this record; send its whole history".into(),
        ));
    }
    // A retry or a duplicate delivery: every change is here already, nothing to write.
    if existing.is_some() && doc.heads() == heads_before {
        return Err(Box::new(Verdict::Unchanged(doc)));
    }
    let meta = doc.meta().map_err(|e| refuse(codes::BAD_CHANGE, e.to_string()))?;
    if meta.record_id != push.record_id {
        return Err(refuse(codes::RECORD_IDENTITY, "the document belongs to another record id".into()));
    }
    if let Some(stored) = existing
        && (meta.template_id != stored.template_id
            || meta.template_version != stored.template_version
            || meta.unit_code != stored.unit_code)
    {
        return Err(refuse(codes::RECORD_IDENTITY, "a record's template and unit cannot change".into()));
    }
    if !scope.contains(&meta.unit_code) {
        return Err(refuse(codes::OUT_OF_SCOPE, OUT_OF_SCOPE.into()));
    }
    Ok(Admitted { doc, before, meta })
}

/// Judges an admitted push against its template's form (`None`: not published): the size of
/// its answers, the role, the workflow's events and lock, and a submission's validation on
/// `today`. What to write, or why not.
pub(crate) fn decide(
    admitted: Admitted,
    existing: Option<&StoredState>,
    form: Option<&Form>,
    hidden: &[String],
    device: &AuthDevice,
    today: Date,
) -> Verdict {
    let Admitted { mut doc, before, meta } = admitted;
    // A restricted template not granted to the user is as good as unknown.
    let Some(form) = form.filter(|f| !hidden.contains(&f.template().id)) else {
        return refusal(
            codes::UNKNOWN_TEMPLATE,
            format!("template {} version {} is not published", meta.template_id, meta.template_version),
        );
    };
    // Read once, used by every check below and the projection.
    let (values, events) = (doc.values(), doc.events());
    if let Err(e) = limits::check_values(&values) {
        return refusal(codes::TOO_LARGE, e.to_string());
    }
    // Creating a record or changing its answers needs the fill role; a reviewer's return or
    // approve changes only the events (checked below).
    let fills = existing.is_none() || values != before.values;
    if fills && !form.template().roles.fill.contains(&device.user.role) {
        return refusal(
            codes::OUT_OF_SCOPE,
            format!("role {} may not fill {}", device.user.role.as_str(), form.template().id),
        );
    }
    let appended = match authorize::frame_and_log(&before.stored, &doc, &meta, pusher(device), &form.template().roles) {
        Ok(appended) => appended,
        Err(d) => return refusal(d.code, d.message),
    };
    if before.state == WorkflowState::Approved && values != before.values {
        // Not overwritten, not lost: edits to an approved record wait for a reviewer, as a
        // proposed amendment of answers only.
        return if appended == 0 {
            Verdict::Amend
        } else {
            refusal(
                codes::RECORD_LOCKED,
                "the record is approved: its answers change only after it is reopened, and alone",
            )
        };
    }
    let projection = project_read(&mut doc, form, meta, values, &events, today);
    // The same validation as on the phone: a submitted record must pass it.
    if projection.state == WorkflowState::Submitted && !projection.issues.is_empty() {
        let message = projection.issues.iter().map(|i| i.message.as_str()).collect::<Vec<_>>().join("; ");
        return Verdict::Refused(Refusal {
            code: codes::INVALID_SUBMISSION,
            message: format!("Hồ sơ chưa hợp lệ: {message}"),
            issues: projection.issues,
        });
    }
    Verdict::Write(doc, Box::new(projection))
}

/// Keeps a device's edits to an approved record as a proposed amendment; the refusal that
/// tells the device so.
async fn propose_amendment(
    tx: &mut AnyConnection,
    device: &AuthDevice,
    push: &Decoded,
    now: i64,
) -> Result<Refusal, DbError> {
    let status = Db::propose_amendment(
        tx,
        &push.record_id,
        &device.device_id,
        &device.user.username,
        &push.bundle,
        &push.heads,
        now,
    )
    .await?;
    Ok(if status == "rejected" {
        Refusal {
            code: codes::AMENDMENT_REJECTED,
            message: "Cấp tỉnh không chấp nhận đề nghị sửa đổi hồ sơ đã phê duyệt này.".into(),
            issues: Vec::new(),
        }
    } else {
        Refusal {
            code: codes::AMENDMENT_PROPOSED,
            message: "Hồ sơ đã được phê duyệt: thay đổi được gửi thành đề nghị sửa đổi, chờ cấp tỉnh xem xét.".into(),
            issues: Vec::new(),
        }
    })
}

/// Stores a record after a change (`stored`: as it was, `None` for a new record): a new
/// record, and every FOLD_AFTER chunks, as a fresh snapshot; otherwise this change's bytes
/// appended as a chunk. Its new stored state; `None`, with nothing written, if the record is
/// no longer as `stored` says. With `mark`, this is the job's last write (see [`Mark`]).
pub async fn write_record(
    tx: &mut AnyConnection,
    doc: &mut RecordDoc,
    projection: &Projection,
    stored: Option<&StoredState>,
    device_id: Option<&str>,
    mark: Option<&mut Mark>,
    now: i64,
) -> Result<Option<StoredState>, DbError> {
    let meta = &projection.meta;
    let fold = stored.is_none_or(|s| s.chunks + 1 >= FOLD_AFTER);
    let bytes = if fold { doc.save() } else { doc.save_incremental() };
    let seq = Db::put_record(
        tx,
        &RecordWrite {
            id: &meta.record_id,
            template_id: &meta.template_id,
            template_version: meta.template_version,
            unit_code: &meta.unit_code,
            state: projection.state.as_str(),
            created_by: &meta.created_by,
            created_at: meta.created_at,
            doc: if fold { DocBytes::Snapshot(&bytes) } else { DocBytes::Chunk(&bytes) },
            heads: &projection.heads,
            values_json: &projection.values_json,
            device_id,
            period: meta.period.as_deref(),
            attachments: &projection.attachments,
            attachments_before: stored.map_or(0, |s| s.attachments),
            expect_seq: stored.map(|s| s.seq),
            at: now,
        },
        mark,
    )
    .await?;
    Ok(seq.map(|seq| StoredState {
        seq,
        template_id: meta.template_id.clone(),
        template_version: meta.template_version,
        unit_code: meta.unit_code.clone(),
        chunks: if fold { 0 } else { stored.map_or(0, |s| s.chunks) + 1 },
        attachments: projection.attachments.len() as i64,
        bytes: bytes.len() as i64 + if fold { 0 } else { stored.map_or(0, |s| s.bytes) },
    }))
}

const OUT_OF_SCOPE: &str = "this record is outside your units";

struct Before {
    state: WorkflowState,
    values: BTreeMap<String, serde_json::Value>,
    /// Its frame and log, which no push may rewrite.
    stored: authorize::Stored,
}
/// A record on a pull's page: id, snapshot (when the device needs the whole document),
/// heads (JSON), sequence, whether the whole document goes (1) or only chunks after `synced`.
type PageRow = (String, Option<Vec<u8>>, String, i64, i64);

/// The database's newest sequences (change log, units, templates) beside a page row (`None`
/// when the page is empty).
type MarkedRow = (i64, i64, i64, Option<String>, Option<Vec<u8>>, Option<String>, Option<i64>, Option<i64>);

/// The statement reading a pull's page with the newest sequences: records of the scope ($2)
/// outside hidden templates ($3) after the cursor ($1). `$whole` says whether a record goes
/// whole to a device holding its scope as of `synced` ($4): a new record, or one refolded
/// since. `$among` narrows the page further. (The lists are joined, not `IN (SELECT …)`:
/// SQLite builds a temporary table for each such list on every run. Rows come unordered.)
macro_rules! page_statement {
    ($whole:literal, $among:literal) => {
        concat!(
            "WITH marks (latest, units, templates) AS (SELECT ",
            crate::store::sequences!(),
            ")
             SELECT m.latest, m.units, m.templates, p.id, p.snapshot, p.heads, p.seq, p.whole
             FROM marks m LEFT JOIN (
               SELECT records.id, CASE WHEN ",
            $whole,
            " THEN (SELECT doc FROM record_snapshots s WHERE s.record_id = records.id) END AS snapshot,
                      heads, seq, CASE WHEN ",
            $whole,
            " THEN 1 ELSE 0 END AS whole
               FROM json_each($2) u JOIN records ON records.unit_code = u.value
               WHERE seq > $1 AND seq <= (SELECT latest FROM marks)
                 AND NOT EXISTS (SELECT 1 FROM json_each($3) h WHERE h.value = records.template_id)",
            $among,
            " ORDER BY seq LIMIT ",
            page_records!(),
            " + 1
             ) p ON TRUE"
        )
    };
}

/// Everything in scope after `cursor` a device holding its scope as of `synced` lacks, as of
/// one point of the change log. During the download of what came into its reach
/// (`rescan`), records of the units and templates that came go whole, and of the others only
/// what changed after `synced`.
///
/// The newest sequences and the page are read in one statement, so they agree. On SQLite that
/// is all the snapshot needed (one writer: whatever has a sequence up to the newest is
/// committed), and chunks are read after it, only up to each record's sequence on the page (a
/// record refolded meanwhile goes whole). PostgreSQL reads everything in one repeatable-read
/// transaction.
async fn pull(
    db: &Db,
    scope: &[String],
    hidden: &[String],
    cursor: i64,
    synced: i64,
    rescan: Option<&Rescan>,
    pushed_heads: &[(&str, &[String])],
) -> Result<SyncResponse, ApiError> {
    let mut pg_tx: Option<sqlx::Transaction<'_, sqlx::Any>> = None;
    let mut kept: Option<crate::store::conns::Conn<'_>> = None;
    let tx: &mut AnyConnection = if db.backend == crate::store::Backend::Postgres {
        let tx = pg_tx.insert(db.pool.begin().await?);
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut **tx).await?;
        tx
    } else {
        kept.insert(db.conn().await?)
    };
    let json = |list: &[String]| serde_json::Value::from(list.to_vec()).to_string();
    let query = match rescan {
        None => sqlx::query_as(page_statement!("$4 = 0 OR snapshot_seq > $4", "")),
        Some(_) => sqlx::query_as(page_statement!(
            "$4 = 0 OR snapshot_seq > $4 OR unit_code IN (SELECT value FROM json_each($5))
               OR template_id IN (SELECT value FROM json_each($6))",
            " AND (seq > $4 OR unit_code IN (SELECT value FROM json_each($5))
               OR template_id IN (SELECT value FROM json_each($6)))"
        )),
    };
    let mut query = query.bind(cursor).bind(json(scope)).bind(json(hidden)).bind(synced);
    if let Some(rescan) = rescan {
        query = query.bind(json(&rescan.units)).bind(json(&rescan.templates));
    }
    let marked: Vec<MarkedRow> = query.fetch_all(&mut *tx).await?;
    let (max_seq, units_seq, templates_seq) = marked.first().map_or((0, 0, 0), |m| (m.0, m.1, m.2));
    let mut rows: Vec<PageRow> = marked
        .into_iter()
        .filter_map(|(_, _, _, id, snapshot, heads, seq, whole)| Some((id?, snapshot, heads?, seq?, whole?)))
        .collect();
    rows.sort_unstable_by_key(|row| row.3);
    let mut more = rows.len() as i64 > PAGE_RECORDS;
    let page = &rows[..rows.len().min(PAGE_RECORDS as usize)];
    // The device that just pushed exactly a record's state has it already (after an edit,
    // often the whole page): its chunks are not read.
    let held = |id: &str, heads: &[String]| pushed_heads.iter().any(|(rid, h)| *rid == id && same_set(h, heads));
    let page: Vec<(&PageRow, Vec<String>)> =
        page.iter().map(|row| (row, serde_json::from_str(&row.2).unwrap_or_default())).collect();
    let ids: Vec<&str> =
        page.iter().filter(|(row, heads)| !held(&row.0, heads)).map(|(row, _)| row.0.as_str()).collect();
    // A device holding a record as of `synced` needs its chunks after that. A whole record's
    // chunks all follow its snapshot, newer than `synced`, except for one that came into reach
    // during a download: it needs every chunk.
    let mut chunks = Db::chunks_of(tx, &ids, synced).await?;
    if rescan.is_some() {
        let came: Vec<&str> = page
            .iter()
            .filter(|(row, heads)| row.4 == 1 && !held(&row.0, heads))
            .map(|(row, _)| row.0.as_str())
            .collect();
        chunks.extend(Db::chunks_of(tx, &came, 0).await?);
    }

    let mut records = Vec::new();
    let mut bytes = 0;
    let mut last_seq = cursor;
    for ((id, snapshot, _, seq, whole), heads) in page {
        if bytes >= PAGE_BYTES {
            more = true;
            break;
        }
        last_seq = *seq;
        if held(id, &heads) {
            continue;
        }
        // Only what the page row stands for (a chunk committed after the page waits for the
        // next sync).
        let mut chunks = chunks.remove(id).unwrap_or_default();
        chunks.retain(|(s, _)| s <= seq);
        let pulled = if *whole == 1 || chunks.is_empty() {
            let mut doc = match snapshot {
                Some(snapshot) => snapshot.clone(),
                None => {
                    // Not expected (a record changed after `synced` has a chunk after it), but
                    // then the whole document goes, with every chunk.
                    let mut all = Db::chunks_of(tx, &[id.as_str()], 0).await?;
                    chunks = all.remove(id).unwrap_or_default();
                    chunks.retain(|(s, _)| s <= seq);
                    sqlx::query_scalar("SELECT doc FROM record_snapshots WHERE record_id = $1")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?
                }
            };
            chunks.iter().for_each(|(_, data)| doc.extend_from_slice(data));
            PulledRecord { record_id: id.clone(), doc, heads: Vec::new() }
        } else {
            let heads = heads_from_hex(&heads).map_err(|e| DbError::Invalid(format!("stored heads of {id}: {e}")))?;
            let changes = chunks.into_iter().flat_map(|(_, data)| data).collect();
            PulledRecord { record_id: id.clone(), doc: changes, heads: heads.into_iter().map(|h| h.0).collect() }
        };
        bytes += pulled.doc.len();
        records.push(pulled);
    }
    let next_cursor = if more { last_seq } else { max_seq.max(cursor) };
    // Reference data up to the same point: templates published and units changed (read only
    // when there are any).
    let mut templates = Vec::new();
    if templates_seq > cursor {
        templates = sqlx::query("SELECT id, body FROM templates WHERE seq > $1 AND seq <= $2 ORDER BY seq")
            .bind(cursor)
            .bind(next_cursor)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .filter(|r| !hidden.contains(&r.get::<String, _>("id")))
            .map(|r| r.get::<String, _>("body"))
            .collect();
    }
    let mut units = Vec::new();
    if units_seq > cursor {
        units = sqlx::query(
            "SELECT code, name, level, COALESCE(parent_code, '') AS parent_code FROM units
             WHERE seq > $1 AND seq <= $2 AND code IN (SELECT value FROM json_each($3)) ORDER BY code",
        )
        .bind(cursor)
        .bind(next_cursor)
        .bind(serde_json::Value::from(scope.to_vec()).to_string())
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| UnitInfo {
            code: r.get("code"),
            name: r.get("name"),
            level: r.get("level"),
            parent_code: r.get("parent_code"),
        })
        .collect();
    }
    if let Some(tx) = pg_tx {
        tx.commit().await?;
    }
    Ok(SyncResponse {
        token_expires_at: 0,
        cursor: next_cursor,
        accepted: Vec::new(),
        rejected: Vec::new(),
        templates,
        records,
        more,
        units,
        reach: None,
    })
}

/// Whether anything after `cursor` would reach the device at its next sync: records in its
/// scope, templates it may read, units of its subtree.
pub async fn has_changes(db: &Db, device: &AuthDevice, cursor: i64) -> Result<bool, ApiError> {
    let marks = db.marks(&device.user.username).await?;
    let (scope, hidden) = readable(db, device, &marks).await?;
    let (scope, hidden) = (serde_json::Value::from(scope).to_string(), serde_json::Value::from(hidden).to_string());
    let found: i64 = sqlx::query_scalar(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM records WHERE seq > $1
                   AND unit_code IN (SELECT value FROM json_each($2)) AND template_id NOT IN (SELECT value FROM json_each($3)))
              OR EXISTS (SELECT 1 FROM templates WHERE seq > $1 AND id NOT IN (SELECT value FROM json_each($3)))
              OR EXISTS (SELECT 1 FROM units WHERE seq > $1 AND code IN (SELECT value FROM json_each($2)))
         THEN 1 ELSE 0 END",
    )
    .bind(cursor)
    .bind(scope)
    .bind(hidden)
    .fetch_one(&db.pool)
    .await?;
    Ok(found == 1)
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
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
