//! Review actions by the province: return a submitted record with a comment, or approve it.
//! The action is an event appended to the record's document, so it reaches the phone by the
//! ordinary sync, and the workflow state follows from it.

use automerge::ActorId;
use diaban_core::record::{Author, EventKind, RecordDoc, WorkflowState};

use crate::db::{Db, DbError, User};
use crate::sync::{project, write_record};

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("record not found")]
    NotFound,
    #[error("your role does not review this template")]
    NotReviewer,
    #[error("this record cannot take that action now (it is {0})")]
    NotSubmitted(&'static str),
    #[error("a returned record needs a comment saying what to fix")]
    CommentRequired,
    #[error(transparent)]
    TooLong(#[from] diaban_core::limits::LimitError),
    #[error(transparent)]
    Db(#[from] DbError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewAction {
    /// The commune lead's sign-off, first of two levels.
    SignOff,
    Return,
    Approve,
}

/// Which actions a user may take on a record of this template in this state.
pub fn allowed_actions(
    roles: &diaban_core::template::Roles,
    role: diaban_core::Role,
    state: WorkflowState,
) -> Vec<ReviewAction> {
    let two_levels = !roles.sign_off.is_empty();
    let signs_off = roles.sign_off.contains(&role);
    let reviews = roles.review.contains(&role);
    match state {
        WorkflowState::Submitted if two_levels && signs_off => vec![ReviewAction::SignOff, ReviewAction::Return],
        WorkflowState::Submitted if !two_levels && reviews => vec![ReviewAction::Approve, ReviewAction::Return],
        WorkflowState::SignedOff if reviews => vec![ReviewAction::Approve, ReviewAction::Return],
        _ => Vec::new(),
    }
}

/// Appends the reviewer's event and commits it; returns the new state.
pub async fn review(
    db: &Db,
    user: &User,
    record_id: &str,
    action: ReviewAction,
    comment: Option<&str>,
) -> Result<WorkflowState, ReviewError> {
    if let Some(comment) = comment {
        diaban_core::limits::check_chars("the comment", comment, diaban_core::limits::MAX_COMMENT_CHARS)?;
    }
    let units = db.unit_scope(&user.unit_code).await?;
    let row = db.record_in_units(record_id, &units).await?.ok_or(ReviewError::NotFound)?;
    let form = db.form(&row.template_id, row.template_version).await?.ok_or(ReviewError::NotFound)?;
    let roles = &form.template().roles;
    if !roles.review.contains(&user.role) && !roles.sign_off.contains(&user.role) {
        return Err(ReviewError::NotReviewer);
    }
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    if action == ReviewAction::Return && comment.is_none() {
        return Err(ReviewError::CommentRequired);
    }
    let kind = match action {
        ReviewAction::SignOff => EventKind::SignOff,
        ReviewAction::Return => EventKind::Return,
        ReviewAction::Approve => EventKind::Approve,
    };
    let state = db
        .write(async |tx| {
            let (bytes, stored) =
                Db::record_doc(tx, record_id).await?.ok_or_else(|| DbError::Invalid("record vanished".into()))?;
            let mut doc =
                RecordDoc::load(&bytes, Some(ActorId::random())).map_err(|e| DbError::Invalid(e.to_string()))?;
            let state = doc.state();
            if !allowed_actions(&form.template().roles, user.role, state).contains(&action) {
                return Ok(Err(ReviewError::NotSubmitted(state.as_str())));
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
    let units = db.unit_scope(&user.unit_code).await?;
    let row = db.record_in_units(record_id, &units).await?.ok_or(ReviewError::NotFound)?;
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
