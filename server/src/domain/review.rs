//! Review actions on the web: sign off, return with a comment, approve, reopen with a comment;
//! each allowed by the workflow's state machine (`diaban_core::workflow`) for the user's role.
//! The action is an event appended to the record's document, so it reaches the phone by the
//! ordinary sync, and the workflow state follows from it.

use automerge::ActorId;
use diaban_core::record::{Author, EventKind, RecordDoc, WorkflowState};
use diaban_core::template::{Role, Roles};
use diaban_core::workflow;

use crate::domain::access::Access;

use crate::domain::sync::{project, write_record};
use crate::store::{Db, DbError, User};

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("record not found")]
    NotFound,
    #[error("your role does not review this template")]
    NotReviewer,
    #[error(transparent)]
    NotAllowed(#[from] diaban_core::workflow::WorkflowError),
    #[error("a returned or reopened record needs a comment saying what to fix")]
    CommentRequired,
    #[error(transparent)]
    TooLong(#[from] diaban_core::limits::LimitError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The events the web offers a user on a record in `state` (the phone submits).
pub fn web_actions(roles: &Roles, role: Role, state: WorkflowState) -> Vec<EventKind> {
    workflow::allowed(role, roles, state).into_iter().filter(|k| *k != EventKind::Submit).collect()
}

/// Appends the user's event (sign off, return, approve, reopen) if the workflow allows it for
/// their role, and commits it; returns the new state.
pub async fn review(
    db: &Db,
    user: &User,
    record_id: &str,
    kind: EventKind,
    comment: Option<&str>,
) -> Result<WorkflowState, ReviewError> {
    if let Some(comment) = comment {
        diaban_core::limits::check_chars("the comment", comment, diaban_core::limits::MAX_COMMENT_CHARS)?;
    }
    let access = Access::of(db, user).await?;
    let row = access.record(db, record_id).await?.ok_or(ReviewError::NotFound)?;
    let form = db.form(&row.template_id, row.template_version).await?.ok_or(ReviewError::NotFound)?;
    let roles = &form.template().roles;
    if kind == EventKind::Submit || (!roles.review.contains(&user.role) && !roles.sign_off.contains(&user.role)) {
        return Err(ReviewError::NotReviewer);
    }
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    if matches!(kind, EventKind::Return | EventKind::Reopen) && comment.is_none() {
        return Err(ReviewError::CommentRequired);
    }
    let state = db
        .write(async |tx| {
            let (bytes, stored) =
                Db::record_doc(tx, record_id).await?.ok_or_else(|| DbError::Invalid("record vanished".into()))?;
            let mut doc =
                RecordDoc::load(&bytes, Some(ActorId::random())).map_err(|e| DbError::Invalid(e.to_string()))?;
            if let Err(e) = workflow::check(kind, user.role, roles, doc.state()) {
                return Ok(Err(ReviewError::NotAllowed(e)));
            }
            doc.set_author(Author { user: user.username.clone(), device: "web".into() });
            doc.append_event(kind, &user.username, comment, db.clock.now())
                .map_err(|e| DbError::Invalid(e.to_string()))?;
            let projection = project(&mut doc, &form, db.clock.today()).map_err(|e| DbError::Invalid(e.to_string()))?;
            write_record(tx, &mut doc, &projection, Some(&stored), None, None, db.clock.now())
                .await?
                .ok_or_else(|| DbError::Invalid("record changed while written".into()))?;
            Ok(Ok(projection.state))
        })
        .await??;
    db.audit(Some(&user.username), kind.as_str(), record_id).await?;
    Ok(state)
}

/// Accepts (applies the device's edits to the approved record, with a comment event saying
/// so) or rejects a proposed amendment. Province reviewers of the template only.
pub async fn decide_amendment(
    db: &Db,
    user: &User,
    record_id: &str,
    amendment_id: i64,
    accept: bool,
) -> Result<(), ReviewError> {
    let access = Access::of(db, user).await?;
    let row = access.record(db, record_id).await?.ok_or(ReviewError::NotFound)?;
    let form = db.form(&row.template_id, row.template_version).await?.ok_or(ReviewError::NotFound)?;
    if !form.template().roles.review.contains(&user.role) {
        return Err(ReviewError::NotReviewer);
    }
    let amendment = db
        .amendments(record_id)
        .await?
        .into_iter()
        .find(|a| a.id == amendment_id && a.status == "proposed")
        .ok_or(ReviewError::NotFound)?;
    let status = if accept { "accepted" } else { "rejected" };
    db.write(async |tx| {
        if !Db::decide_amendment(tx, amendment_id, record_id, status, &user.username, db.clock.now()).await? {
            return Ok(Err(ReviewError::NotFound));
        }
        if accept {
            let (bytes, stored) =
                Db::record_doc(tx, record_id).await?.ok_or_else(|| DbError::Invalid("record vanished".into()))?;
            let mut doc =
                RecordDoc::load(&bytes, Some(ActorId::random())).map_err(|e| DbError::Invalid(e.to_string()))?;
            let changes = RecordDoc::decode_bundle(&amendment.changes).map_err(|e| DbError::Invalid(e.to_string()))?;
            doc.apply_changes(changes).map_err(|e| DbError::Invalid(e.to_string()))?;
            doc.set_author(Author { user: user.username.clone(), device: "web".into() });
            let note = format!("Chấp nhận đề nghị sửa đổi của {}", amendment.username);
            doc.append_event(EventKind::Comment, &user.username, Some(&note), db.clock.now())
                .map_err(|e| DbError::Invalid(e.to_string()))?;
            let projection = project(&mut doc, &form, db.clock.today()).map_err(|e| DbError::Invalid(e.to_string()))?;
            write_record(tx, &mut doc, &projection, Some(&stored), None, None, db.clock.now())
                .await?
                .ok_or_else(|| DbError::Invalid("record changed while written".into()))?;
        }
        Ok(Ok(()))
    })
    .await??;
    db.audit(Some(&user.username), &format!("amendment_{status}"), record_id).await?;
    Ok(())
}
