//! The device API: what a phone app calls. It ties the store, the templates, the record
//! documents and the sync engine together, and turns every failure into a [`DeviceError`].
//!
//! Only `login` and `sync` touch the network; everything else works offline.

use std::path::Path;
use std::sync::Arc;

use automerge::ActorId;

use crate::clock::Clock;
use crate::form::{ConflictView, Form, FormCache, Issue, RenderItem};
use crate::progress::{CancelToken, SyncPhase, SyncProgress};
use crate::protocol::{self, Account, LoginRequest, LoginResponse, SyncResponse, codes};
use crate::record::{
    Author, Event, EventKind, FieldPath, HistoryEntry, RecordDoc, RecordError, RecordMeta, WorkflowState,
};
use crate::store::{RecordIndex, Store, StoreError, StoredRecord};
use crate::sync::{self, SyncError};
use crate::template::{FieldType, Template};
use crate::transport::{HttpTransport, SyncLink, Traffic, TransportError};
use crate::value::FieldValue;
use crate::wire::{self, WireError};

const ACTOR_KEY: &str = "actor_id";
pub(crate) const TOKEN_KEY: &str = "token";
const TOKEN_EXPIRES_KEY: &str = "token_expires_at";
/// A token with less than this left is refreshed at the next sync.
const REFRESH_BEFORE_SECS: i64 = 7 * 24 * 3600;
const DEVICE_ID_KEY: &str = "device_id";
/// The signed-in account (JSON), kept so the device works offline after the first login.
pub const ACCOUNT_KEY: &str = "account";
/// Bounds one `sync()` call: pages of pulled records beyond this wait for the next call.
const MAX_EXCHANGES: u32 = 50;

/// Everything that can go wrong at the device API, in terms an app can act on.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("too many wrong passwords; wait a minute and try again")]
    TooManyAttempts,
    #[error("this device is no longer signed in; sign in again")]
    Unauthorized,
    #[error("this app is too old for the server; please update it")]
    UpgradeRequired,
    #[error("the server cannot be reached; your data is kept on the phone: {0}")]
    Unreachable(String),
    #[error("the server refused the request ({status} {code}): {message}")]
    Server { status: u16, code: String, message: String },
    #[error("sign in first")]
    NotLoggedIn,
    #[error("unknown template {0:?}")]
    UnknownTemplate(String),
    #[error("unknown record {0:?}")]
    UnknownRecord(String),
    #[error("unknown field or row: {0}")]
    UnknownField(String),
    #[error("invalid period: {0}")]
    InvalidPeriod(String),
    #[error("invalid value: {0}")]
    InvalidValue(String),
    #[error("the record is {0} and cannot be edited now")]
    NotEditable(String),
    #[error("the record cannot be submitted: {}", issues.iter().map(|i| i.message.as_str()).collect::<Vec<_>>().join("; "))]
    Incomplete { issues: Vec<Issue> },
    #[error("device storage: {0}")]
    Storage(String),
    #[error("the device store cannot be opened with this key")]
    WrongKey,
    #[error("the attachment is too large: {0}")]
    TooLarge(String),
    #[error("attachment {0} is not on this device")]
    UnknownAttachment(String),
    #[error("the store key is not available: {0}")]
    KeyUnavailable(String),
    #[error("the sync was cancelled")]
    Cancelled,
    #[error("the server address is not safe: {0}")]
    Insecure(String),
    #[error("the server's certificate is not accepted: {0:?}")]
    Certificate(crate::tls::CertificateProblem),
    #[error("the app is locked; enter the PIN")]
    Locked,
    #[error("wrong PIN; {left} tries left")]
    WrongPin { left: u32 },
    #[error("too many wrong PINs: the data on this phone was wiped")]
    Wiped,
    #[error("a PIN has 4 to 32 characters")]
    BadPin,
    /// An admin took this device out of service (deactivated, or reported stolen): the sync
    /// that learned it deleted the store and confirmed to the server.
    #[error("an administrator took this device out of service; its data was erased")]
    WipeOrdered,
}

impl From<StoreError> for DeviceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::WrongKey | StoreError::Key(_) => DeviceError::WrongKey,
            StoreError::Locked => DeviceError::Locked,
            other => DeviceError::Storage(other.to_string()),
        }
    }
}

impl From<RecordError> for DeviceError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::UnknownRow(_) | RecordError::BadPath(_) => DeviceError::UnknownField(e.to_string()),
            other => DeviceError::Storage(other.to_string()),
        }
    }
}

impl From<SyncError> for DeviceError {
    fn from(e: SyncError) -> Self {
        DeviceError::Storage(e.to_string())
    }
}

impl From<TransportError> for DeviceError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Unreachable(m) => DeviceError::Unreachable(m),
            TransportError::Tls(e) => DeviceError::Insecure(e.to_string()),
            TransportError::Certificate(problem) => DeviceError::Certificate(problem),
            TransportError::BadResponse(m) => {
                DeviceError::Server { status: 0, code: "bad_response".into(), message: m }
            }
            TransportError::Http { code, .. } if code == codes::INVALID_CREDENTIALS => DeviceError::InvalidCredentials,
            TransportError::Http { code, .. } if code == codes::UNAUTHORIZED => DeviceError::Unauthorized,
            TransportError::Http { code, .. } if code == codes::TOO_MANY_ATTEMPTS => DeviceError::TooManyAttempts,
            TransportError::Http { code, .. } if code == codes::UPGRADE_REQUIRED => DeviceError::UpgradeRequired,
            TransportError::Http { code, .. } if code == codes::WIPE => DeviceError::WipeOrdered,
            TransportError::Http { status, code, message } => DeviceError::Server { status, code, message },
        }
    }
}

/// A record as the form shows it: the render model plus what the record is.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordView {
    pub id: String,
    pub template_id: String,
    pub template_version: u32,
    pub title: String,
    pub unit_code: String,
    pub period: Option<String>,
    pub state: WorkflowState,
    pub editable: bool,
    pub unsent: bool,
    /// The server's refusal of this record's changes, if any: (code, message).
    pub rejection: Option<(String, String)>,
    /// Visible fields in order, with values, choices, errors and conflicts.
    pub items: Vec<RenderItem>,
    /// Whether the record can be submitted now, and if not, why.
    pub can_submit: bool,
    pub issues: Vec<Issue>,
    pub events: Vec<Event>,
    /// While the record is returned: the reviewer's comment saying what to fix.
    pub review_comment: Option<String>,
}

/// A field whose concurrent edits left several values for a person to settle.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldConflict {
    pub path: String,
    pub label: String,
    pub values: Vec<ConflictView>,
}

/// Changes the server refused: kept on the phone, never dropped, shown until settled.
#[derive(Clone, Debug, PartialEq)]
pub struct Quarantined {
    pub record_id: String,
    pub template_id: String,
    pub state: String,
    pub code: String,
    pub message: String,
}

/// What one round of attachment transfers did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TransferReport {
    pub uploaded_chunks: u32,
    pub downloaded_chunks: u32,
    pub uploaded_files: u32,
    pub downloaded_files: u32,
    /// Nothing is left to transfer.
    pub done: bool,
}

/// What one `sync()` did, and what it cost on the wire.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncReport {
    pub accepted: Vec<String>,
    pub rejected: Vec<protocol::Rejection>,
    pub pulled_records: usize,
    pub pulled_templates: usize,
    pub round_trips: u32,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub attachments: TransferReport,
    /// The server sent the account and scope anew: at the first sync, or after an
    /// administrator changed the user's unit, role or restricted-template grants.
    pub account_updated: bool,
    /// Records removed from the phone because they left the user's scope.
    pub forgotten_records: u64,
}

impl SyncReport {
    /// Adds a later exchange's report to this one.
    fn absorb(&mut self, later: SyncReport) {
        self.accepted.extend(later.accepted);
        self.rejected.retain(|r| !self.accepted.contains(&r.record_id));
        self.rejected.extend(later.rejected);
        self.pulled_records += later.pulled_records;
        self.pulled_templates += later.pulled_templates;
        self.round_trips += later.round_trips;
        self.bytes_up += later.bytes_up;
        self.bytes_down += later.bytes_down;
        self.account_updated |= later.account_updated;
        self.forgotten_records += later.forgotten_records;
    }
}

pub struct Device {
    /// Compiled forms by (template id, version); templates never change once published.
    forms: FormCache,
    pub(crate) store: Store,
    pub(crate) transport: HttpTransport,
    /// What carries sync exchanges: the HTTP transport, unless replaced.
    link: Arc<dyn SyncLink>,
    actor: ActorId,
    device_name: String,
    pub(crate) lang: String,
    /// What "now" and "today" are on this device: the system clock unless pinned.
    pub(crate) clock: Clock,
    /// The host's key (Keystore, Keychain), kept to unlock the store with the PIN.
    pub(crate) host_key: Vec<u8>,
    /// The store's file (to wipe it).
    pub(crate) path: std::path::PathBuf,
}

impl Device {
    /// Opens (or creates) the store at `path`, sealed with `key` (32 bytes from the Android
    /// Keystore or the iOS Keychain), talking to the server at `server_url` when online.
    /// A store with a PIN (the app lock) gives [`DeviceError::Locked`]: open it with
    /// [`Device::open_with_pin`].
    pub async fn open(path: &Path, key: &[u8], server_url: &str, device_name: &str) -> Result<Device, DeviceError> {
        let store = Store::open_closed(path).await?;
        if store.has_pin().await? {
            store.close().await;
            return Err(DeviceError::Locked);
        }
        if let Err(e) = store.unseal(crate::crypto::Sealer::new(key).map_err(crate::store::StoreError::from)?).await {
            store.close().await;
            return Err(e.into());
        }
        Device::with_store(store, path, key, server_url, device_name).await
    }

    /// The device over a store whose values are open.
    pub(crate) async fn with_store(
        store: Store,
        path: &Path,
        key: &[u8],
        server_url: &str,
        device_name: &str,
    ) -> Result<Device, DeviceError> {
        let actor = match store.setting(ACTOR_KEY).await? {
            Some(hex) => ActorId::try_from(hex.as_str())
                .map_err(|_| DeviceError::Storage("the device's actor id is damaged".into()))?,
            None => {
                let actor = ActorId::random();
                store.set_setting(ACTOR_KEY, &actor.to_hex_string()).await?;
                actor
            }
        };
        let transport = HttpTransport::new(server_url)?;
        Ok(Device {
            forms: FormCache::default(),
            store,
            link: Arc::new(transport.clone()),
            transport,
            actor,
            device_name: device_name.to_owned(),
            lang: "vi".into(),
            clock: Clock::from_env().map_err(|e| DeviceError::InvalidValue(e.to_string()))?,
            host_key: key.to_vec(),
            path: path.to_owned(),
        })
    }

    /// Today's date in Vietnam (`YYYY-MM-DD`) by the device's clock.
    pub fn today(&self) -> String {
        crate::clock::iso(self.clock.today())
    }

    /// Replaces the device's clock (`DIABAN_CLOCK`, or the system clock, at open).
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// Closes the store; every acknowledged write is already on disk.
    pub async fn close(self) {
        self.store.close().await;
    }

    /// Carries sync exchanges over `link` instead of HTTP (another transport, or a test's
    /// fault injector wrapping [`HttpTransport`]).
    pub fn set_sync_link(&mut self, link: Arc<dyn SyncLink>) {
        self.link = link;
    }

    /// Checks the server as `tls` says from now on: the app's pin of the server's public key,
    /// a province's own root certificate. (HTTPS and the platform's trust store always.)
    pub fn set_tls(&mut self, tls: &crate::tls::TlsSettings) -> Result<(), DeviceError> {
        let transport = HttpTransport::with_tls(self.transport.base_url(), tls)?;
        self.link = Arc::new(transport.clone());
        self.transport = transport;
        Ok(())
    }

    /// "vi" (default) or "en": the language of labels in views.
    pub fn set_language(&mut self, lang: &str) {
        self.lang = if lang == "en" { "en".into() } else { "vi".into() };
    }

    /// The language of labels in views: "vi" or "en".
    pub fn language(&self) -> &str {
        &self.lang
    }

    /// The Automerge actor id this device writes with (hex).
    pub fn actor_id(&self) -> String {
        self.actor.to_hex_string()
    }

    /// Signs in online, registers this device, then syncs to fetch templates and records.
    pub async fn login(&self, username: &str, password: &str) -> Result<Account, DeviceError> {
        let request = LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            device_name: self.device_name.clone(),
            actor_id: self.actor.to_hex_string(),
        };
        let (response, _): (LoginResponse, Traffic) = self.transport.post(protocol::LOGIN_PATH, None, &request).await?;
        let account = serde_json::to_string(&response.account).map_err(|e| DeviceError::Storage(e.to_string()))?;
        self.store.set_setting(TOKEN_KEY, &response.token).await?;
        self.store.set_setting(TOKEN_EXPIRES_KEY, &response.expires_at.to_string()).await?;
        self.store.set_setting(DEVICE_ID_KEY, &response.device_id).await?;
        self.store.set_setting(ACCOUNT_KEY, &account).await?;
        self.sync().await?;
        Ok(response.account)
    }

    /// Forgets the token. Records stay on the device (unsent ones sync after the next login).
    pub async fn logout(&self) -> Result<(), DeviceError> {
        self.store.delete_setting(TOKEN_KEY).await?;
        Ok(())
    }

    /// The signed-in account, known offline after the first login.
    pub async fn account(&self) -> Result<Option<Account>, DeviceError> {
        match self.store.setting(ACCOUNT_KEY).await? {
            Some(json) => Ok(Some(serde_json::from_str(&json).map_err(|e| DeviceError::Storage(e.to_string()))?)),
            None => Ok(None),
        }
    }

    /// The administrative units of the user's subtree (their commune, or a province and its
    /// communes), as received with sync; known offline.
    pub async fn units(&self) -> Result<Vec<protocol::UnitInfo>, DeviceError> {
        Ok(self.store.units().await?)
    }

    /// The newest version of every template on the device.
    pub async fn templates(&self) -> Result<Vec<Template>, DeviceError> {
        Ok(self.store.latest_templates().await?)
    }

    /// Starts a record of `template_id` in the signed-in user's unit, on the latest version,
    /// with the template's defaults filled in. Periodic reports name their period
    /// (`2026-11`, `2026-Q4`, …); other records pass `None`.
    pub async fn create_record(&self, template_id: &str, period: Option<&str>) -> Result<String, DeviceError> {
        let account = self.account().await?.ok_or(DeviceError::NotLoggedIn)?;
        let template = self
            .store
            .template(template_id, None)
            .await?
            .ok_or_else(|| DeviceError::UnknownTemplate(template_id.to_owned()))?;
        let period = match (&template.period, period) {
            (Some(spec), Some(key)) => {
                spec.bounds(key).map_err(|e| DeviceError::InvalidPeriod(e.to_string()))?;
                Some(key.to_owned())
            }
            (Some(_), None) => return Err(DeviceError::InvalidPeriod("this report needs a period".into())),
            (None, Some(_)) => return Err(DeviceError::InvalidPeriod("this template has no periods".into())),
            (None, None) => None,
        };
        let device_id = self.store.setting(DEVICE_ID_KEY).await?.unwrap_or_default();
        let meta = RecordMeta {
            record_id: uuid::Uuid::new_v4().to_string(),
            template_id: template.id.clone(),
            template_version: template.version,
            unit_code: account.unit_code,
            created_by: account.username,
            created_at: self.clock.now(),
            device_id,
            period,
        };
        let form = self.form(&template.id, template.version).await?;
        let doc = form.new_record(&meta, self.actor.clone(), self.clock.now())?;
        self.store.put_record(&sync::index(doc, None, Vec::new(), self.clock.now())?).await?;
        Ok(meta.record_id)
    }

    /// Sets one answer at `path` (`name`, or `group/row_id/name` in a repeat row), after
    /// checking it against the field: type, choices, bounds, length, pattern.
    pub async fn set_field(&self, record_id: &str, path: &str, value: FieldValue) -> Result<(), DeviceError> {
        let (stored, form, mut doc) = self.open_record(record_id).await?;
        ensure_editable(&doc)?;
        let path = field_path(&form, path, false)?;
        form.check_answer(&path.name, &value).map_err(DeviceError::InvalidValue)?;
        doc.set_field(&path, &value, self.clock.now())?;
        self.save(stored, doc).await
    }

    /// Removes one answer.
    pub async fn clear_field(&self, record_id: &str, path: &str) -> Result<(), DeviceError> {
        let (stored, form, mut doc) = self.open_record(record_id).await?;
        ensure_editable(&doc)?;
        let path = field_path(&form, path, false)?;
        doc.clear_field(&path, self.clock.now())?;
        self.save(stored, doc).await
    }

    /// Appends a row to the repeat group at `group_path`; returns the row's id.
    pub async fn add_row(&self, record_id: &str, group_path: &str) -> Result<String, DeviceError> {
        let (stored, form, mut doc) = self.open_record(record_id).await?;
        ensure_editable(&doc)?;
        let path = field_path(&form, group_path, true)?;
        let row = form.add_row(&mut doc, &path, self.clock.now())?;
        self.save(stored, doc).await?;
        Ok(row)
    }

    /// Adds `by` (may be negative) to the tally at `path`. Additions made on several phones
    /// at once all count.
    pub async fn increment(&self, record_id: &str, path: &str, by: i64) -> Result<(), DeviceError> {
        let (stored, form, mut doc) = self.open_record(record_id).await?;
        ensure_editable(&doc)?;
        let path = field_path(&form, path, false)?;
        if form.template().find(&path.name).map(|f| f.field_type) != Some(FieldType::Counter) {
            return Err(DeviceError::InvalidValue(format!("{:?} is not a tally", path.name)));
        }
        doc.increment(&path, by, self.clock.now())?;
        self.save(stored, doc).await
    }

    /// The changes of one field (who, when, from which device, old → new), oldest first.
    pub async fn history(&self, record_id: &str, path: &str) -> Result<Vec<HistoryEntry>, DeviceError> {
        let (_, form, mut doc) = self.open_record(record_id).await?;
        let path = field_path(&form, path, false)?;
        Ok(doc.history(&path)?)
    }

    /// Removes a row of the repeat group at `group_path`.
    pub async fn remove_row(&self, record_id: &str, group_path: &str, row_id: &str) -> Result<(), DeviceError> {
        let (stored, form, mut doc) = self.open_record(record_id).await?;
        ensure_editable(&doc)?;
        let path = field_path(&form, group_path, true)?;
        doc.remove_row(&path, row_id, self.clock.now())?;
        self.save(stored, doc).await
    }

    /// Sends the record up for review, if it passes its template's validation and the
    /// workflow lets the user's role submit it now.
    pub async fn submit(&self, record_id: &str) -> Result<(), DeviceError> {
        let (stored, form, mut doc) = self.open_record(record_id).await?;
        ensure_editable(&doc)?;
        let evaluation = form.evaluate_record(&mut doc, &self.lang, self.clock.today());
        if !evaluation.can_submit() {
            return Err(DeviceError::Incomplete { issues: evaluation.issues });
        }
        self.append_event(stored, &form, doc, EventKind::Submit).await
    }

    /// The commune lead's sign-off of a submitted record (the first of two review levels),
    /// if the template names the user's role to sign off.
    pub async fn sign_off(&self, record_id: &str) -> Result<(), DeviceError> {
        let (stored, form, doc) = self.open_record(record_id).await?;
        self.append_event(stored, &form, doc, EventKind::SignOff).await
    }

    /// Appends the user's workflow event, as the server will check it
    /// ([`crate::workflow::check`]).
    async fn append_event(
        &self,
        stored: StoredRecord,
        form: &Form,
        mut doc: RecordDoc,
        kind: EventKind,
    ) -> Result<(), DeviceError> {
        let account = self.account().await?.ok_or(DeviceError::NotLoggedIn)?;
        crate::workflow::check(kind, account.role, &form.template().roles, doc.state()).map_err(|e| match e {
            crate::workflow::WorkflowError::NotNow { .. } => DeviceError::NotEditable(doc.state().as_str().to_owned()),
            other => DeviceError::InvalidValue(other.to_string()),
        })?;
        doc.append_event(kind, &account.username, None, self.clock.now())?;
        self.save(stored, doc).await
    }

    /// Records on the device, newest first, optionally of one template and/or in one state
    /// (`draft`, `submitted`, …). Read from the store's index; no document is opened.
    pub async fn records(
        &self,
        template_id: Option<&str>,
        state: Option<&str>,
    ) -> Result<Vec<RecordIndex>, DeviceError> {
        Ok(self.store.list(template_id, state).await?)
    }

    /// One record as the form draws it, in the device's language; recomputed on every call.
    pub async fn record(&self, record_id: &str) -> Result<RecordView, DeviceError> {
        let (stored, form, mut doc) = self.open_record(record_id).await?;
        let meta = doc.meta()?;
        let evaluation = form.evaluate_record(&mut doc, &self.lang, self.clock.today());
        let state = doc.state();
        let events = doc.events();
        Ok(RecordView {
            unsent: stored.has_unsent_changes(),
            id: stored.id,
            template_id: form.template().id.clone(),
            template_version: form.template().version,
            title: form.template().label.text(&self.lang).to_owned(),
            unit_code: stored.unit_code,
            period: meta.period,
            editable: ensure_editable(&doc).is_ok(),
            state,
            rejection: stored.rejection,
            can_submit: evaluation.can_submit(),
            items: evaluation.items,
            issues: evaluation.issues,
            review_comment: review_comment(state, &events),
            events,
        })
    }

    /// Every field of a record that concurrent edits left with several values, with who wrote
    /// each, when and from which device; repeat rows included.
    pub async fn conflicts(&self, record_id: &str) -> Result<Vec<FieldConflict>, DeviceError> {
        fn walk(items: Vec<RenderItem>, out: &mut Vec<FieldConflict>) {
            for item in items {
                if !item.conflicts.is_empty() {
                    out.push(FieldConflict { path: item.path, label: item.label, values: item.conflicts });
                }
                for row in item.rows {
                    walk(row.items, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.record(record_id).await?.items, &mut out);
        Ok(out)
    }

    /// Settles a conflict by keeping the value at `choice` (an index into the field's
    /// conflicting values); the choice is a change like any other and syncs to every phone.
    pub async fn resolve_conflict(&self, record_id: &str, path: &str, choice: u32) -> Result<(), DeviceError> {
        let (stored, form, mut doc) = self.open_record(record_id).await?;
        ensure_editable(&doc)?;
        let parsed = field_path(&form, path, false)?;
        // The same values, in the same order, as the render model lists them.
        let values = doc
            .conflicts()
            .remove(path)
            .ok_or_else(|| DeviceError::InvalidValue(format!("{path} has no conflict to settle")))?;
        let chosen = values
            .get(choice as usize)
            .ok_or_else(|| DeviceError::InvalidValue(format!("{path} has no value number {choice}")))?;
        let field_type = form
            .template()
            .find(&parsed.name)
            .map(|f| f.field_type)
            .ok_or_else(|| DeviceError::UnknownField(path.to_owned()))?;
        let value = FieldValue::from_json(field_type, &chosen.value)
            .ok_or_else(|| DeviceError::InvalidValue(format!("{path}: the kept value does not fit the field")))?;
        doc.set_field(&parsed, &value, self.clock.now())?;
        self.save(stored, doc).await
    }

    /// Records whose answers contain every word of `query`, ignoring case and Vietnamese
    /// diacritics ("nguyen van" finds "Nguyễn Văn"), newest first; optionally of one template.
    /// Documents are opened one by one on the phone: nothing readable is kept in an index.
    pub async fn search(&self, query: &str, template_id: Option<&str>) -> Result<Vec<RecordIndex>, DeviceError> {
        let words: Vec<String> = crate::search::fold(query).split_whitespace().map(str::to_owned).collect();
        let mut found = Vec::new();
        for index in self.store.list(template_id, None).await? {
            let Some(stored) = self.store.record(&index.id).await? else { continue };
            let doc = RecordDoc::load(&stored.doc, None)?;
            if crate::search::matches(&doc.values(), &words) {
                found.push(index);
            }
        }
        Ok(found)
    }

    /// Records whose changes the server refused, with its reason. Their changes stay on the
    /// phone (quarantined), are sent again at every sync, and leave this list once accepted.
    pub async fn quarantined(&self) -> Result<Vec<Quarantined>, DeviceError> {
        Ok(self
            .store
            .rejected()
            .await?
            .into_iter()
            .map(|(index, (code, message))| Quarantined {
                record_id: index.id,
                template_id: index.template_id,
                state: index.state,
                code,
                message,
            })
            .collect())
    }

    /// Syncs the documents, then moves every pending attachment.
    pub async fn sync(&self) -> Result<SyncReport, DeviceError> {
        self.sync_with(&ignore_progress, &CancelToken::new()).await
    }

    /// [`Device::sync`], telling `progress` after every round trip and attachment chunk, and
    /// stopping with [`DeviceError::Cancelled`] at the next safe point once `cancel` fires.
    pub async fn sync_with(
        &self,
        progress: &(dyn Fn(&SyncProgress) + Send + Sync),
        cancel: &CancelToken,
    ) -> Result<SyncReport, DeviceError> {
        let mut run = Run::new(progress, cancel.clone());
        let synced = async {
            let mut report = self.exchange_records(&mut run).await?;
            report.attachments = self.move_attachments(u32::MAX, &mut run).await?;
            // Records that waited for their attachments go now.
            if report.attachments.uploaded_files > 0 {
                let then = self.exchange_records(&mut run).await?;
                report.absorb(then);
            }
            Ok(report)
        };
        let report = self.obey(synced.await).await?;
        run.step(|p| p.phase = SyncPhase::Done);
        Ok(report)
    }

    /// Waits until the server holds something new for this phone (a change synced by another
    /// phone, through any server node; a change to the user's account or scope made before
    /// the wait began) or `wait_secs` pass (at most
    /// [`protocol::MAX_WATCH_SECS`]): whether a sync would bring something. One idle request
    /// on the wire instead of syncing on a timer.
    pub async fn wait_for_changes(&self, wait_secs: u64) -> Result<bool, DeviceError> {
        let token = self.fresh_token().await?;
        let cursor = self.store.setting(sync::CURSOR_KEY).await?.and_then(|c| c.parse().ok()).unwrap_or(0);
        let reach = self.store.setting(sync::REACH_KEY).await?.and_then(|c| c.parse().ok()).unwrap_or(0);
        let watched = self.transport.watch(&token, cursor, reach, wait_secs.min(protocol::MAX_WATCH_SECS)).await;
        self.obey(watched.map_err(DeviceError::from)).await
    }

    /// Sends unsent changes and fetches what is new, in as few round trips as the server
    /// allows; attachments are left for [`Device::transfer_attachments`].
    pub async fn sync_records(&self) -> Result<SyncReport, DeviceError> {
        let exchanged = self.exchange_records(&mut Run::new(&ignore_progress, CancelToken::new())).await;
        self.obey(exchanged).await
    }

    async fn exchange_records(&self, run: &mut Run<'_>) -> Result<SyncReport, DeviceError> {
        let token = run.wire(self.fresh_token()).await?;
        let mut report = SyncReport::default();
        // Records pushed in this sync, accepted or not: not sent again until the next one.
        // Records waiting for their attachments' upload are held back like them.
        let mut pushed = self.store.awaiting_uploads().await?;
        for _ in 0..MAX_EXCHANGES {
            let sync::Outgoing { request: outgoing, more: more_to_push } =
                sync::build_request(&self.store, &pushed).await?;
            pushed.extend(outgoing.push.iter().map(|p| p.record_id.clone()));
            let body = wire::encode(&outgoing).map_err(|e| DeviceError::Storage(e.to_string()))?;
            let (answer, traffic) = run.wire(self.link.exchange(&token, body)).await?;
            let response: SyncResponse = wire::decode(&answer).map_err(|e| match e {
                WireError::Version(_) => DeviceError::UpgradeRequired,
                other => DeviceError::Server { status: 200, code: "bad_response".into(), message: other.to_string() },
            })?;
            report.round_trips += 1;
            if response.token_expires_at > 0 {
                self.store.set_setting(TOKEN_EXPIRES_KEY, &response.token_expires_at.to_string()).await?;
            }
            report.bytes_up += traffic.bytes_up;
            report.bytes_down += traffic.bytes_down;
            let step = sync::apply_response(&self.store, &outgoing, response, &self.actor, self.clock.now()).await?;
            run.step(|p| {
                p.round_trips += 1;
                p.bytes_up += traffic.bytes_up;
                p.bytes_down += traffic.bytes_down;
                p.records_accepted += step.accepted.len() as u32;
                p.records_pulled += step.pulled_records as u32;
            });
            report.accepted.extend(step.accepted);
            report.rejected.extend(step.rejected);
            report.pulled_records += step.pulled_records;
            report.pulled_templates += step.pulled_templates;
            report.account_updated |= step.reach_changed;
            report.forgotten_records += step.forgotten_records;
            if !step.more && !more_to_push {
                break;
            }
        }
        tracing::info!(
            round_trips = report.round_trips,
            bytes_up = report.bytes_up,
            bytes_down = report.bytes_down,
            accepted = report.accepted.len(),
            rejected = report.rejected.len(),
            "sync finished"
        );
        Ok(report)
    }

    /// The device token, refreshed first when it nears its expiry (the old one then stops
    /// working). An expired or revoked token gives `Unauthorized`: sign in again; nothing on
    /// the phone is lost.
    async fn fresh_token(&self) -> Result<String, DeviceError> {
        let token = self.store.setting(TOKEN_KEY).await?.ok_or(DeviceError::NotLoggedIn)?;
        let expires: i64 = self.store.setting(TOKEN_EXPIRES_KEY).await?.and_then(|e| e.parse().ok()).unwrap_or(0);
        if expires - self.clock.now() > REFRESH_BEFORE_SECS {
            return Ok(token);
        }
        let (fresh, _): (protocol::TokenResponse, Traffic) =
            self.transport.post(protocol::REFRESH_PATH, Some(&token), &()).await?;
        self.store.set_setting(TOKEN_KEY, &fresh.token).await?;
        self.store.set_setting(TOKEN_EXPIRES_KEY, &fresh.expires_at.to_string()).await?;
        Ok(fresh.token)
    }

    /// Attaches a photo or file to the `photo`/`file` field at `path`: kept sealed on the
    /// phone under its SHA-256, referenced from the record, uploaded at the next sync.
    pub async fn attach(
        &self,
        record_id: &str,
        path: &str,
        data: Vec<u8>,
        content_type: &str,
    ) -> Result<String, DeviceError> {
        use sha2::Digest;
        let (stored, form, mut doc) = self.open_record(record_id).await?;
        ensure_editable(&doc)?;
        let path = field_path(&form, path, false)?;
        let size = data.len() as u64;
        if size > protocol::MAX_ATTACHMENT_BYTES {
            return Err(DeviceError::TooLarge(format!(
                "{size} bytes; at most {} per file",
                protocol::MAX_ATTACHMENT_BYTES
            )));
        }
        let total = self.store.record_attachment_bytes(record_id).await? + size;
        if total > protocol::MAX_RECORD_ATTACHMENT_BYTES {
            return Err(DeviceError::TooLarge(format!(
                "{total} bytes; at most {} per record",
                protocol::MAX_RECORD_ATTACHMENT_BYTES
            )));
        }
        let sha256 = hex::encode(sha2::Sha256::digest(&data));
        let value = FieldValue::Attachment { sha256: sha256.clone(), content_type: content_type.to_owned(), size };
        form.check_answer(&path.name, &value).map_err(DeviceError::InvalidValue)?;
        let reference =
            crate::store::AttachmentRef { sha256: sha256.clone(), content_type: content_type.to_owned(), size };
        self.store.put_attachment(&reference, record_id, &data, false).await?;
        doc.set_field(&path, &value, self.clock.now())?;
        self.save(stored, doc).await?;
        Ok(sha256)
    }

    /// The bytes of an attachment, if they are on the phone.
    pub async fn attachment(&self, sha256: &str) -> Result<Vec<u8>, DeviceError> {
        self.store.attachment(sha256).await?.ok_or_else(|| DeviceError::UnknownAttachment(sha256.to_owned()))
    }

    /// Uploads attachments made here and downloads those records refer to, chunk by chunk,
    /// at most `budget` chunks. An interrupted transfer resumes after the last chunk the
    /// receiving side committed: the server's count for uploads, the kept chunks for downloads.
    pub async fn transfer_attachments(&self, budget: u32) -> Result<TransferReport, DeviceError> {
        let moved = self.move_attachments(budget, &mut Run::new(&ignore_progress, CancelToken::new())).await;
        self.obey(moved).await
    }

    async fn move_attachments(&self, budget: u32, run: &mut Run<'_>) -> Result<TransferReport, DeviceError> {
        use sha2::Digest;
        let token = self.store.setting(TOKEN_KEY).await?.ok_or(DeviceError::NotLoggedIn)?;
        let mut report = TransferReport::default();
        let mut left = budget;
        for up in self.store.pending_uploads().await? {
            let base = format!("{}/{}", protocol::ATTACHMENTS_PATH, up.sha256);
            run.step(|p| p.phase = SyncPhase::Uploading);
            let status: protocol::AttachmentStatus =
                run.wire(self.transport.get_json(&format!("{base}/status"), &token)).await?;
            let data = self.attachment(&up.sha256).await?;
            let mut offset = status.received.min(up.size);
            while !status.complete && offset < up.size {
                if left == 0 {
                    return Ok(report);
                }
                let end = (offset + protocol::CHUNK_BYTES as u64).min(up.size);
                let query = [
                    ("offset", offset.to_string()),
                    ("size", up.size.to_string()),
                    ("content_type", up.content_type.clone()),
                ];
                let chunk = data[offset as usize..end as usize].to_vec();
                run.wire(self.transport.put_bytes(&base, &query, &token, chunk)).await?;
                run.step(|p| {
                    p.chunks_uploaded += 1;
                    p.bytes_up += end - offset;
                });
                offset = end;
                left -= 1;
                report.uploaded_chunks += 1;
            }
            self.store.mark_uploaded(&up.sha256).await?;
            report.uploaded_files += 1;
        }
        for (down, record_id) in self.store.missing_attachments().await? {
            let base = format!("{}/{}", protocol::ATTACHMENTS_PATH, down.sha256);
            run.step(|p| p.phase = SyncPhase::Downloading);
            let mut offset = self.store.downloaded_bytes(&down.sha256).await?;
            while offset < down.size {
                if left == 0 {
                    return Ok(report);
                }
                let query = [("offset", offset.to_string()), ("length", protocol::CHUNK_BYTES.to_string())];
                let chunk = run.wire(self.transport.get_bytes(&base, &query, &token)).await?;
                if chunk.is_empty() {
                    return Err(DeviceError::Server {
                        status: 0,
                        code: "bad_response".into(),
                        message: "empty chunk".into(),
                    });
                }
                self.store.put_download_chunk(&down.sha256, offset, &chunk).await?;
                run.step(|p| {
                    p.chunks_downloaded += 1;
                    p.bytes_down += chunk.len() as u64;
                });
                offset += chunk.len() as u64;
                left -= 1;
                report.downloaded_chunks += 1;
            }
            let data = self.store.take_download(&down.sha256).await?;
            if hex::encode(sha2::Sha256::digest(&data)) != down.sha256 {
                return Err(DeviceError::Server {
                    status: 0,
                    code: "bad_attachment".into(),
                    message: format!("{} does not match its hash", down.sha256),
                });
            }
            self.store.put_attachment(&down, &record_id, &data, true).await?;
            report.downloaded_files += 1;
        }
        report.done = true;
        Ok(report)
    }

    pub(crate) async fn open_record(
        &self,
        record_id: &str,
    ) -> Result<(StoredRecord, Arc<Form>, RecordDoc), DeviceError> {
        let stored =
            self.store.record(record_id).await?.ok_or_else(|| DeviceError::UnknownRecord(record_id.to_owned()))?;
        let form = self.form(&stored.template_id, stored.template_version).await?;
        let mut doc = RecordDoc::load(&stored.doc, Some(self.actor.clone()))?;
        if let Some(account) = self.account().await? {
            let device = self.store.setting(DEVICE_ID_KEY).await?.unwrap_or_default();
            doc.set_author(Author { user: account.username, device });
        }
        Ok((stored, form, doc))
    }

    /// The compiled form of a template version the device holds.
    pub(crate) async fn form(&self, id: &str, version: u32) -> Result<Arc<Form>, DeviceError> {
        if let Some(form) = self.forms.get(id, version) {
            return Ok(form);
        }
        let template =
            self.store.template(id, Some(version)).await?.ok_or_else(|| DeviceError::UnknownTemplate(id.to_owned()))?;
        Ok(self.forms.insert(Form::compile(template).map_err(|e| DeviceError::Storage(e.to_string()))?))
    }

    pub(crate) async fn save(&self, stored: StoredRecord, doc: RecordDoc) -> Result<(), DeviceError> {
        // Nothing over a size limit is kept: the server would refuse it.
        let mut doc = doc;
        crate::limits::check_values(&doc.values()).map_err(|e| DeviceError::InvalidValue(e.to_string()))?;
        // Append only this edit's changes; fold into a fresh snapshot now and then.
        let chunk = doc.save_incremental();
        let mut record = sync::index_columns(&mut doc, stored.rejection, stored.server_heads, self.clock.now())?;
        record.doc = chunk;
        if self.store.append_record(&record).await? >= crate::store::FOLD_AFTER {
            record.doc = doc.save();
            self.store.put_record(&record).await?;
        }
        Ok(())
    }
}

/// One sync's progress reporting and cancellation.
struct Run<'a> {
    progress: &'a (dyn Fn(&SyncProgress) + Send + Sync),
    cancel: CancelToken,
    state: SyncProgress,
}

impl<'a> Run<'a> {
    fn new(progress: &'a (dyn Fn(&SyncProgress) + Send + Sync), cancel: CancelToken) -> Run<'a> {
        let state = SyncProgress {
            phase: SyncPhase::Records,
            round_trips: 0,
            bytes_up: 0,
            bytes_down: 0,
            records_accepted: 0,
            records_pulled: 0,
            chunks_uploaded: 0,
            chunks_downloaded: 0,
        };
        Run { progress, cancel, state }
    }

    /// Runs one network call unless the sync is cancelled before or while it runs. A call cut
    /// short is safe: whatever the server committed is acknowledged again next time.
    async fn wire<T, E: Into<DeviceError>>(&self, call: impl Future<Output = Result<T, E>>) -> Result<T, DeviceError> {
        if self.cancel.is_cancelled() {
            return Err(DeviceError::Cancelled);
        }
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(DeviceError::Cancelled),
            result = call => result.map_err(Into::into),
        }
    }

    /// Updates the progress and tells the app.
    fn step(&mut self, update: impl FnOnce(&mut SyncProgress)) {
        update(&mut self.state);
        (self.progress)(&self.state);
    }
}

fn ignore_progress(_: &SyncProgress) {}

/// The reviewer's comment a returned record carries: the latest `return` event's.
fn review_comment(state: WorkflowState, events: &[Event]) -> Option<String> {
    if state != WorkflowState::Returned {
        return None;
    }
    events.iter().rev().find(|e| e.kind == EventKind::Return).and_then(|e| e.comment.clone())
}

pub(crate) fn ensure_editable(doc: &RecordDoc) -> Result<(), DeviceError> {
    match doc.state() {
        WorkflowState::Draft | WorkflowState::Returned | WorkflowState::Reopened => Ok(()),
        state => Err(DeviceError::NotEditable(state.as_str().to_owned())),
    }
}

/// Parses `path` and checks it against the template: the field exists, and the path's row
/// groups are exactly its enclosing repeat groups. `group` asks for a repeat group itself.
fn field_path(form: &Form, path: &str, group: bool) -> Result<FieldPath, DeviceError> {
    let parsed = FieldPath::parse(path)?;
    let unknown = || DeviceError::UnknownField(path.to_owned());
    let (parents, field) =
        form.template().walk().into_iter().find(|(_, f)| f.name == parsed.name).ok_or_else(unknown)?;
    let groups_match = parents.iter().map(|p| p.name.as_str()).eq(parsed.groups());
    if !groups_match || (field.field_type == FieldType::Repeat) != group {
        return Err(unknown());
    }
    Ok(parsed)
}
