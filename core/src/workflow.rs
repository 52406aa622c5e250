//! The review workflow's state machine, stated once: which event may follow which state, and
//! who may append it. The phone asks it before it submits or signs off; the server asks it for
//! every event a device appends and for every action a reviewer takes on the web.
//!
//! ```text
//!  draft ──submit──▶ submitted ──sign_off──▶ signed_off ──approve──▶ approved ──reopen──▶ reopened
//!    ▲                 │   │                     │                                       │
//!    │                 │   └──approve (one level)┼──────────────────▶ approved            │
//!    │                 └──return──▶ returned ◀──return                                    │
//!  returned, reopened ──submit──▶ submitted   ◀──────────────────────────────────────────┘
//! ```
//!
//! With sign-off roles (two levels) the province approves only what the commune lead signed
//! off; without them it approves a submission. Comments may be added in any state by anyone
//! who may review or sign off; they change no state.

use crate::record::{EventKind, WorkflowState};
use crate::template::{Role, Roles};

/// Why an event may not be appended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    #[error("a {state} record cannot be {kind}")]
    NotNow { kind: &'static str, state: &'static str },
    #[error("role {role} may not {kind} this template's records")]
    NotYourRole { kind: &'static str, role: &'static str },
}

/// The state after `kind` in `state`, if the workflow allows it at all.
pub fn next(state: WorkflowState, kind: EventKind, two_levels: bool) -> Option<WorkflowState> {
    use EventKind as E;
    use WorkflowState as S;
    match (kind, state) {
        (E::Submit, S::Draft | S::Returned | S::Reopened) => Some(S::Submitted),
        (E::SignOff, S::Submitted) if two_levels => Some(S::SignedOff),
        (E::Approve, S::SignedOff) if two_levels => Some(S::Approved),
        (E::Approve, S::Submitted) if !two_levels => Some(S::Approved),
        (E::Return, S::Submitted | S::SignedOff) => Some(S::Returned),
        (E::Reopen, S::Approved) => Some(S::Reopened),
        (E::Comment, state) => Some(state),
        _ => None,
    }
}

/// The state a logged event leaves a record in, whatever came before: how the state is read
/// from a log ([`crate::record::state_of`]); [`check`] decides what may be logged.
pub fn follow(state: WorkflowState, kind: EventKind) -> WorkflowState {
    match kind {
        EventKind::Submit => WorkflowState::Submitted,
        EventKind::SignOff => WorkflowState::SignedOff,
        EventKind::Return => WorkflowState::Returned,
        EventKind::Approve => WorkflowState::Approved,
        EventKind::Reopen => WorkflowState::Reopened,
        EventKind::Comment => state,
    }
}

/// Whether `role` may append `kind` to a record of a template with these `roles` in `state`;
/// the state it leads to.
pub fn check(kind: EventKind, role: Role, roles: &Roles, state: WorkflowState) -> Result<WorkflowState, WorkflowError> {
    let two_levels = !roles.sign_off.is_empty();
    let reviews = roles.review.contains(&role);
    let signs_off = roles.sign_off.contains(&role);
    let allowed = match kind {
        EventKind::Submit => roles.fill.contains(&role),
        EventKind::SignOff => signs_off,
        // A commune lead returns what they have not signed off yet; the province what reaches it.
        EventKind::Return => match state {
            WorkflowState::Submitted if two_levels => signs_off,
            _ => reviews,
        },
        EventKind::Approve | EventKind::Reopen => reviews,
        EventKind::Comment => reviews || signs_off,
    };
    if !allowed {
        return Err(WorkflowError::NotYourRole { kind: verb(kind), role: role.as_str() });
    }
    next(state, kind, two_levels).ok_or(WorkflowError::NotNow { kind: participle(kind), state: state.as_str() })
}

/// The events `role` may append now, in the order a page offers them.
pub fn allowed(role: Role, roles: &Roles, state: WorkflowState) -> Vec<EventKind> {
    [EventKind::Submit, EventKind::SignOff, EventKind::Approve, EventKind::Return, EventKind::Reopen]
        .into_iter()
        .filter(|k| check(*k, role, roles, state).is_ok())
        .collect()
}

fn verb(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Submit => "submit",
        EventKind::SignOff => "sign off",
        EventKind::Return => "return",
        EventKind::Approve => "approve",
        EventKind::Reopen => "reopen",
        EventKind::Comment => "comment on",
    }
}

fn participle(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Submit => "submitted",
        EventKind::SignOff => "signed off",
        EventKind::Return => "returned",
        EventKind::Approve => "approved",
        EventKind::Reopen => "reopened",
        EventKind::Comment => "commented on",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(sign_off: bool) -> Roles {
        Roles {
            fill: vec![Role::FieldOfficer, Role::CommuneLead],
            review: vec![Role::Reviewer],
            sign_off: if sign_off { vec![Role::CommuneLead] } else { Vec::new() },
        }
    }

    #[test]
    fn two_levels_go_through_the_commune_lead() {
        let r = roles(true);
        let s = check(EventKind::Submit, Role::FieldOfficer, &r, WorkflowState::Draft).unwrap();
        assert_eq!(
            check(EventKind::Approve, Role::Reviewer, &r, s),
            Err(WorkflowError::NotNow { kind: "approved", state: "submitted" })
        );
        let s = check(EventKind::SignOff, Role::CommuneLead, &r, s).unwrap();
        assert_eq!(check(EventKind::Approve, Role::Reviewer, &r, s), Ok(WorkflowState::Approved));
    }

    #[test]
    fn only_reviewers_approve_and_reopen() {
        let r = roles(false);
        for role in [Role::FieldOfficer, Role::CommuneLead, Role::Admin] {
            assert!(check(EventKind::Approve, role, &r, WorkflowState::Submitted).is_err());
            assert!(check(EventKind::Reopen, role, &r, WorkflowState::Approved).is_err());
        }
        assert_eq!(check(EventKind::Reopen, Role::Reviewer, &r, WorkflowState::Approved), Ok(WorkflowState::Reopened));
        assert_eq!(
            check(EventKind::Submit, Role::FieldOfficer, &r, WorkflowState::Reopened),
            Ok(WorkflowState::Submitted)
        );
    }

    #[test]
    fn an_approved_record_takes_no_second_submission_or_approval() {
        let r = roles(false);
        assert!(check(EventKind::Submit, Role::FieldOfficer, &r, WorkflowState::Approved).is_err());
        assert!(check(EventKind::Approve, Role::Reviewer, &r, WorkflowState::Approved).is_err());
        assert!(check(EventKind::Submit, Role::Reviewer, &r, WorkflowState::Draft).is_err(), "reviewers do not fill");
    }

    #[test]
    fn the_pages_offer_what_the_role_may_do() {
        assert_eq!(
            allowed(Role::Reviewer, &roles(true), WorkflowState::SignedOff),
            vec![EventKind::Approve, EventKind::Return]
        );
        assert_eq!(
            allowed(Role::CommuneLead, &roles(true), WorkflowState::Submitted),
            vec![EventKind::SignOff, EventKind::Return]
        );
        assert_eq!(allowed(Role::FieldOfficer, &roles(true), WorkflowState::Submitted), Vec::<EventKind>::new());
    }
}
