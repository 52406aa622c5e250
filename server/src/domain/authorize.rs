//! Who may push what to a record: the rules every pushed record passes before it is committed
//! (`sync::screen` and `sync::decide` call them). Authority comes from the document itself —
//! the actor of each change (bound to one registered device and its user at sign-in) and the
//! object ids of the events log, which name the actor that inserted each entry — never from
//! what a message, a `by` or a `meta` field says. A claim that disagrees is refused.
//!
//! - Every change's message (what history shows as its author) names this device's user and
//!   this device.
//! - A new record names this user and device as its creator.
//! - After its creation a record's frame never changes: the root's objects and `meta` (id,
//!   template, unit, period, creator).
//! - The events log is append-only: every entry it held stays, unchanged and in order (other
//!   devices' concurrent appends may fall between); an entry the server cannot read is refused.
//! - Every new entry was inserted by this device's actor and is signed with its user's name;
//!   the workflow's state machine (`diaban_core::workflow`) must allow it for the user's role
//!   in the state the log is in at that point. A copy of an earlier event is a new entry
//!   inserted by the copier: judged as the copier's own action.

use automerge::Change;
use diaban_core::frame::EventEntry;
use diaban_core::protocol::codes;
use diaban_core::record::{Author, RecordDoc, RecordMeta, WorkflowState};
use diaban_core::template::{Role, Roles};
use diaban_core::workflow;
use serde_json::Value as Json;

/// Who pushes: the signed-in device and its user.
#[derive(Clone, Copy, Debug)]
pub struct Pusher<'a> {
    pub username: &'a str,
    pub device_id: &'a str,
    /// The device's Automerge actor (hex).
    pub actor: &'a str,
    pub role: Role,
}

/// A refused push: the code the device gets and the reason it shows.
#[derive(Debug, PartialEq)]
pub struct Denied {
    pub code: &'static str,
    pub message: String,
}

fn denied(code: &'static str, message: impl Into<String>) -> Denied {
    Denied { code, message: message.into() }
}

/// Every change names this device's user and this device as its author.
pub fn claims(changes: &[Change], pusher: Pusher<'_>) -> Result<(), Denied> {
    for change in changes {
        let author = change.message().and_then(|m| serde_json::from_str::<Author>(m).ok());
        match author {
            Some(a) if a.user == pusher.username && a.device == pusher.device_id => {}
            _ => {
                return Err(denied(
                    codes::FORGED_AUTHOR,
                    format!("change {} does not name this device and its user as its author", change.hash()),
                ));
            }
        }
    }
    Ok(())
}

/// What a record was before a push: its frame and its log (nothing, for a new record).
pub struct Stored {
    pub frame: Option<Json>,
    pub entries: Vec<EventEntry>,
}

impl Stored {
    pub fn of(doc: &RecordDoc, exists: bool) -> Result<Stored, Denied> {
        let entries = doc.event_entries().map_err(|e| denied(codes::BAD_EVENT, e.to_string()))?;
        Ok(Stored { frame: exists.then(|| doc.frame()), entries })
    }
}

/// The frame and the log after a push, against `stored`: whether it may stand, and how many
/// events it appends. `roles` are the template's.
pub fn frame_and_log(
    stored: &Stored,
    after: &RecordDoc,
    meta: &RecordMeta,
    pusher: Pusher<'_>,
    roles: &Roles,
) -> Result<usize, Denied> {
    match &stored.frame {
        Some(frame) if *frame != after.frame() => {
            return Err(denied(
                codes::RECORD_IDENTITY,
                "a record's identity (id, template, unit, period, creator) never changes after it is created",
            ));
        }
        Some(_) => {}
        None if meta.created_by != pusher.username || meta.device_id != pusher.device_id => {
            return Err(denied(codes::FORGED_AUTHOR, "a new record must name this device and its user as its creator"));
        }
        None => {}
    }
    let entries = after.event_entries().map_err(|e| denied(codes::BAD_EVENT, e.to_string()))?;
    // Append-only: the stored entries, in order and unchanged, within the new log.
    let mut kept = stored.entries.iter().peekable();
    let mut state = WorkflowState::Draft;
    let mut appended = 0;
    for entry in &entries {
        match kept.peek() {
            Some(old) if old.id == entry.id => {
                if old.content != entry.content {
                    return Err(denied(codes::FORBIDDEN_EVENT, "an event of the workflow log was changed"));
                }
                kept.next();
                state = workflow::follow(state, entry.event.kind);
                continue;
            }
            _ => {}
        }
        if stored.entries.iter().any(|old| old.id == entry.id) {
            return Err(denied(codes::FORBIDDEN_EVENT, "the events of the workflow log were reordered"));
        }
        // A new entry: the pushing device's own, in its user's name, allowed here.
        if entry.actor != pusher.actor {
            return Err(denied(codes::FORBIDDEN_EVENT, "an event was added by another device"));
        }
        if entry.event.by != pusher.username {
            return Err(denied(codes::FORBIDDEN_EVENT, "an event must be signed by the user who adds it"));
        }
        state = workflow::check(entry.event.kind, pusher.role, roles, state)
            .map_err(|e| denied(codes::FORBIDDEN_EVENT, e.to_string()))?;
        appended += 1;
    }
    if kept.next().is_some() {
        return Err(denied(codes::FORBIDDEN_EVENT, "an event of the workflow log was removed"));
    }
    Ok(appended)
}
