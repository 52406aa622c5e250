//! The HTTP API's message types, shared by the device and the server.
//!
//! Sync (protocol version 4, `docs/sync-protocol.md`): one `POST /api/v2/sync` carries the
//! device's unacknowledged changes (one Automerge bundle per record) and its cursor; the
//! answer says, per record, what the server committed or refused, and brings everything new
//! in the device's scope. Both are binary ([`crate::wire`]: postcard, DEFLATE). Login, tokens,
//! templates and attachments stay JSON. Errors are `{"error": {"code", "message"}}` with a 4xx
//! or 5xx status.

use serde::{Deserialize, Serialize};

use crate::template::Role;

/// Bumped on any incompatible change; the server answers 426 to other versions.
pub const PROTOCOL_VERSION: u8 = 4;
/// The header every request of the phone's library carries: its version, so that a server
/// can turn away apps older than it accepts before any data moves.
pub const CLIENT_VERSION_HEADER: &str = "x-diaban-client";
/// This library's version, as the header carries it.
pub const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");

pub const LOGIN_PATH: &str = "/api/v1/login";
pub const SYNC_PATH: &str = "/api/v2/sync";
/// Where version 1 apps sync: answered with 426 and "please update".
pub const SYNC_V1_PATH: &str = "/api/v1/sync";
pub const SYNC_CONTENT_TYPE: &str = "application/x-diaban-sync";
/// `POST` with a valid token: a new token replaces it.
pub const REFRESH_PATH: &str = "/api/v1/token/refresh";
/// Where a device confirms it wiped itself as ordered.
pub const WIPED_PATH: &str = "/api/v1/device/wiped";

/// A refreshed token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// `GET ?cursor=&wait=` with a token: a long poll that answers as soon as something after
/// `cursor` in the device's scope is committed, on whichever server node (or after `wait`
/// seconds, at most [`MAX_WATCH_SECS`]). The device then syncs.
pub const WATCH_PATH: &str = "/api/v2/watch";
pub const MAX_WATCH_SECS: u64 = 30;

/// The answer to a watch.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WatchResponse {
    /// Something new waits: sync now.
    pub changed: bool,
}
/// `/api/v1/attachments/{sha256}`: `PUT ?offset=&size=&content_type=` a chunk, `GET
/// ?offset=&length=` a range; `/status` tells how many bytes the server holds.
pub const ATTACHMENTS_PATH: &str = "/api/v1/attachments";

/// Largest chunk of an attachment in one request.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Largest photo or file.
pub const MAX_ATTACHMENT_BYTES: u64 = 10 * 1024 * 1024;
/// Largest total of attachments in one record.
pub const MAX_RECORD_ATTACHMENT_BYTES: u64 = 40 * 1024 * 1024;

/// What the server holds of an attachment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttachmentStatus {
    pub size: u64,
    pub received: u64,
    pub complete: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// A name a person recognises in the device list, e.g. the phone model.
    pub device_name: String,
    /// The Automerge actor id (hex) this device writes with; the server binds it to the device.
    pub actor_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginResponse {
    /// Bearer token for this device; revocable on the server.
    pub token: String,
    /// When the token stops working (Unix seconds) unless refreshed.
    pub expires_at: i64,
    pub device_id: String,
    pub account: Account,
}

/// The logged-in user as the device knows them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub unit_code: String,
    pub unit_name: String,
}

/// A change hash (SHA-256), as bytes on the wire.
pub type Hash = [u8; 32];

/// Sync messages are postcard-encoded: no optional or skipped fields, field order matters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The last change-log sequence the device has received; 0 at first.
    pub cursor: i64,
    /// The cursor at the end of the device's last complete sync (an answer without `more`):
    /// it holds every record of its scope as of there, so the server may send a record's
    /// later changes alone. 0 if none.
    pub synced: i64,
    /// The [`Reach::token`] of the last reach the device stored; 0 if none.
    pub reach: u64,
    pub push: Vec<PushRecord>,
}

/// A device's changes to one record that the server has not acknowledged yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushRecord {
    pub record_id: String,
    /// The changes, as one Automerge bundle.
    pub changes: Vec<u8>,
    /// The device's heads after these changes.
    pub heads: Vec<Hash>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The cursor to send next time.
    pub cursor: i64,
    /// Records whose pushed changes are now durably committed on the server.
    pub accepted: Vec<String>,
    /// Records whose changes were refused; the device keeps those changes.
    pub rejected: Vec<Rejection>,
    /// Templates published since the cursor, as their JSON text (the template format).
    pub templates: Vec<String>,
    /// Records in the device's scope changed since the cursor (by others, or merged).
    pub records: Vec<PulledRecord>,
    /// More pulled records wait: sync again with the new cursor.
    pub more: bool,
    /// When the device's token expires (Unix seconds), so the device refreshes it in time.
    pub token_expires_at: i64,
    /// Units of the user's subtree added or changed since the cursor (all of them at first).
    pub units: Vec<UnitInfo>,
    /// The account and what it may read, when they differ from what the request's `reach`
    /// token stands for (at the first sync, after the account or its scope changed).
    pub reach: Option<Reach>,
}

/// Who the device's user is now and what they may read. An administrator may move a user
/// to another unit, change their role or grant and revoke restricted templates while the
/// phone is offline; the next sync brings the change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reach {
    /// Identifies this account and scope; the device sends it back as [`SyncRequest::reach`].
    /// The high 32 bits stand for the scope (units and hidden templates), the low 32 bits for
    /// the account.
    pub token: u64,
    pub account: Account,
    /// Codes of the units whose records the user may read (the user's unit and all below).
    pub units: Vec<String>,
    /// Restricted templates the user may not read: their records and the templates
    /// themselves are not for this device.
    pub hidden_templates: Vec<String>,
    /// Records older than the device's cursor came into its scope: this answer is a page of
    /// their download, from cursor 0 (those records whole, the rest of the scope only as
    /// changed since the device's last complete sync). Either way the device removes what has
    /// left its scope.
    pub rescan: bool,
}

impl Reach {
    /// The token for an account and its scope (`units` and `hidden_templates` sorted).
    pub fn token_for(account: &Account, units: &[String], hidden_templates: &[String]) -> u64 {
        let scope = digest32(&(units, hidden_templates));
        let account = digest32(account);
        (u64::from(scope) << 32) | u64::from(account)
    }

    /// The token a device holds while the download of what came into its reach (`rescan`)
    /// has pages to go: the account-and-scope token with its lowest bit flipped, a token of
    /// its own, so that the device's next request tells the server the download is under way.
    pub fn rescan_token(token: u64) -> u64 {
        token ^ 1
    }
}

/// The first 32 bits of the SHA-256 of a value's postcard encoding: stable across builds
/// and platforms, unlike `std`'s hasher.
fn digest32(value: &impl Serialize) -> u32 {
    use sha2::Digest;
    let bytes = postcard::to_allocvec(value).unwrap_or_default();
    let hash = sha2::Sha256::digest(&bytes);
    u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]])
}

/// An administrative unit as a device knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitInfo {
    pub code: String,
    pub name: String,
    /// `province`, `commune`, `village`.
    pub level: String,
    /// Empty for a province.
    pub parent_code: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub record_id: String,
    pub code: String,
    pub message: String,
    /// For a refused submission: what the validation found.
    pub issues: Vec<crate::form::Issue>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PulledRecord {
    pub record_id: String,
    /// With `heads` empty: the server's whole saved document (Automerge's compressed format),
    /// for a record new to the device. Otherwise only the changes committed after the
    /// request's cursor, which the device applies to its own copy.
    pub doc: Vec<u8>,
    /// The server's heads after `doc`'s changes (empty for a whole document, which carries them).
    pub heads: Vec<[u8; 32]>,
}

/// Body of every error answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_credentials`.
    pub code: String,
    pub message: String,
}

/// Error codes the device reacts to.
pub mod codes {
    pub const INVALID_CREDENTIALS: &str = "invalid_credentials";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const UPGRADE_REQUIRED: &str = "upgrade_required";
    pub const UNKNOWN_TEMPLATE: &str = "unknown_template";
    pub const OUT_OF_SCOPE: &str = "out_of_scope";
    pub const NOT_YOUR_ACTOR: &str = "not_your_actor";
    pub const BAD_CHANGE: &str = "bad_change";
    pub const RECORD_IDENTITY: &str = "record_identity";
    /// The server lacks changes the pushed ones depend on: the device resends from scratch.
    pub const MISSING_HISTORY: &str = "missing_history";
    /// A submitted record does not pass its template's validation.
    pub const INVALID_SUBMISSION: &str = "invalid_submission";
    pub const INVALID_TEMPLATE: &str = "invalid_template";
    pub const FORBIDDEN: &str = "forbidden";
    /// Over a size limit (`diaban_core::limits`): a record, a change, a push.
    pub const TOO_LARGE: &str = "too_large";
    pub const TOO_MANY_ATTEMPTS: &str = "too_many_attempts";
    /// A change appends a workflow event its author may not append.
    pub const FORBIDDEN_EVENT: &str = "forbidden_event";
    /// A change or a new record names someone other than the pushing device and its user.
    pub const FORGED_AUTHOR: &str = "forged_author";
    /// The workflow log cannot be read (an entry of the wrong shape, an unknown kind).
    pub const BAD_EVENT: &str = "bad_event";
    /// An admin ordered this device wiped: it deletes its store and confirms at
    /// [`super::WIPED_PATH`].
    pub const WIPE: &str = "wipe";
    /// A record refers to an attachment this user has not uploaded.
    pub const ATTACHMENT_NOT_UPLOADED: &str = "attachment_not_uploaded";
    /// A change edits an approved record.
    pub const RECORD_LOCKED: &str = "record_locked";
    /// Edits of an approved record kept as a proposed amendment for a reviewer.
    pub const AMENDMENT_PROPOSED: &str = "amendment_proposed";
    /// A reviewer rejected the proposed amendment; the edits stay on the phone.
    pub const AMENDMENT_REJECTED: &str = "amendment_rejected";
}
