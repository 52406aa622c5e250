//! A push: each record's changes checked against the record as stored (authorship, scope,
//! frame, workflow, form), then written, refused, or kept as a proposed amendment.

use super::Decoded;
use super::projection::{Projection, project_read};
use crate::domain::authorize;
use crate::http::error::ApiError;
use crate::store::commit::Mark;
use crate::store::{AuthDevice, Db, DbError, DocBytes, FOLD_AFTER, RecordWrite, StoredState};
use diaban_core::form::{Form, Issue};
use diaban_core::limits;
use diaban_core::protocol::{Rejection, codes};
use diaban_core::record::{RecordDoc, RecordMeta, WorkflowState, heads_from_hex, state_of};
use sqlx::AnyConnection;
use std::collections::BTreeMap;
use time::Date;

pub(super) async fn commit<'a>(
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
