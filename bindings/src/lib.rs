//! uniffi facade over `diaban-core` for Kotlin (`vn.diaban`), Swift (`Diaban`) and Python
//! (`diaban`). It holds no logic: it maps core's types and errors to uniffi's and runs
//! core's async API on one shared runtime. Every method is a plain blocking call an app makes
//! from a background thread, except `sync_async`, which is a Kotlin `suspend fun`, a Swift
//! `async func` and a Python coroutine, with progress callbacks and cancellation.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use diaban_core::device as core;
use diaban_core::progress;
use diaban_core::protocol;
use diaban_core::template::FieldType as CoreFieldType;

uniffi::setup_scaffolding!("diaban");

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("diaban")
        .build()
        .unwrap_or_else(|e| panic!("cannot start the diaban runtime: {e}"))
});

/// Errors an app shows or acts on. `reason` is a sentence for the user, in the device's
/// language (not `message`: Kotlin exceptions already have one).
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum DiabanError {
    #[error("{reason}")]
    InvalidCredentials { reason: String },
    #[error("{reason}")]
    TooManyAttempts { reason: String },
    #[error("{reason}")]
    Unauthorized { reason: String },
    #[error("{reason}")]
    UpgradeRequired { reason: String },
    #[error("{reason}")]
    Unreachable { reason: String },
    #[error("{reason}")]
    Server { status: u16, code: String, reason: String },
    #[error("{reason}")]
    NotLoggedIn { reason: String },
    #[error("{reason}")]
    UnknownTemplate { reason: String },
    #[error("{reason}")]
    UnknownRecord { reason: String },
    #[error("{reason}")]
    UnknownField { reason: String },
    #[error("{reason}")]
    InvalidPeriod { reason: String },
    #[error("{reason}")]
    InvalidValue { reason: String },
    #[error("{reason}")]
    NotEditable { reason: String },
    #[error("{reason}")]
    Incomplete { issues: Vec<Issue>, reason: String },
    #[error("{reason}")]
    Storage { reason: String },
    #[error("{reason}")]
    Closed { reason: String },
    #[error("{reason}")]
    WrongKey { reason: String },
    #[error("{reason}")]
    TooLarge { reason: String },
    #[error("{reason}")]
    UnknownAttachment { reason: String },
    #[error("{reason}")]
    KeyUnavailable { reason: String },
    #[error("{reason}")]
    Cancelled { reason: String },
    #[error("{reason}")]
    Insecure { reason: String },
    /// `problem`: unknown_issuer, expired, wrong_name, pin_mismatch or other.
    #[error("{reason}")]
    Certificate { problem: String, reason: String },
    #[error("{reason}")]
    Locked { reason: String },
    #[error("{reason}")]
    WrongPin { attempts_left: u32, reason: String },
    #[error("{reason}")]
    Wiped { reason: String },
    #[error("{reason}")]
    BadPin { reason: String },
}

impl DiabanError {
    /// Core's error with its message for the user in `lang`.
    fn of(e: core::DeviceError, lang: &str) -> Self {
        let reason = e.user_message(lang);
        use core::DeviceError as E;
        match e {
            E::InvalidCredentials => DiabanError::InvalidCredentials { reason },
            E::TooManyAttempts => DiabanError::TooManyAttempts { reason },
            E::Unauthorized => DiabanError::Unauthorized { reason },
            E::UpgradeRequired => DiabanError::UpgradeRequired { reason },
            E::Unreachable(_) => DiabanError::Unreachable { reason },
            E::Server { status, code, .. } => DiabanError::Server { status, code, reason },
            E::NotLoggedIn => DiabanError::NotLoggedIn { reason },
            E::UnknownTemplate(_) => DiabanError::UnknownTemplate { reason },
            E::UnknownRecord(_) => DiabanError::UnknownRecord { reason },
            E::UnknownField(_) => DiabanError::UnknownField { reason },
            E::InvalidPeriod(_) => DiabanError::InvalidPeriod { reason },
            E::InvalidValue(_) => DiabanError::InvalidValue { reason },
            E::NotEditable(_) => DiabanError::NotEditable { reason },
            E::Incomplete { issues } => DiabanError::Incomplete {
                issues: issues.into_iter().map(|i| Issue { field: i.field, message: i.message }).collect(),
                reason,
            },
            E::Storage(_) => DiabanError::Storage { reason },
            E::WrongKey => DiabanError::WrongKey { reason },
            E::TooLarge(_) => DiabanError::TooLarge { reason },
            E::UnknownAttachment(_) => DiabanError::UnknownAttachment { reason },
            E::KeyUnavailable(_) => DiabanError::KeyUnavailable { reason },
            E::Cancelled => DiabanError::Cancelled { reason },
            E::Insecure(_) => DiabanError::Insecure { reason },
            E::Locked => DiabanError::Locked { reason },
            E::WrongPin { left } => DiabanError::WrongPin { attempts_left: left, reason },
            E::Wiped | E::WipeOrdered => DiabanError::Wiped { reason },
            E::BadPin => DiabanError::BadPin { reason },
            E::Certificate(problem) => {
                use diaban_core::tls::CertificateProblem as P;
                let problem = match problem {
                    P::UnknownIssuer => "unknown_issuer",
                    P::Expired => "expired",
                    P::WrongName => "wrong_name",
                    P::PinMismatch => "pin_mismatch",
                    P::Other => "other",
                };
                DiabanError::Certificate { problem: problem.into(), reason }
            }
        }
    }
}

/// Where the host keeps the store key: the Android Keystore or the iOS Keychain. Called once
/// when the store opens; the key is never written anywhere by the library.
#[uniffi::export(with_foreign)]
pub trait KeyProvider: Send + Sync {
    /// The store's 32-byte key (created and kept by the host on first use).
    fn store_key(&self) -> Result<Vec<u8>, KeyError>;
}

/// Why the host could not give the key (for example, the phone is locked).
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum KeyError {
    #[error("{reason}")]
    Unavailable { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for KeyError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        KeyError::Unavailable { reason: e.reason }
    }
}

/// Told how a running `sync_async` is going, on a thread of its own (never the caller's).
#[uniffi::export(with_foreign)]
pub trait SyncListener: Send + Sync {
    fn on_progress(&self, progress: SyncProgress);
}

#[derive(Debug, Clone, Copy, PartialEq, uniffi::Enum)]
pub enum SyncPhase {
    Records,
    Uploading,
    Downloading,
    Done,
}

/// A snapshot of a running sync, for a progress bar.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SyncProgress {
    pub phase: SyncPhase,
    pub round_trips: u32,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub records_accepted: u32,
    pub records_pulled: u32,
    pub chunks_uploaded: u32,
    pub chunks_downloaded: u32,
}

impl From<progress::SyncProgress> for SyncProgress {
    fn from(p: progress::SyncProgress) -> Self {
        SyncProgress {
            phase: match p.phase {
                progress::SyncPhase::Records => SyncPhase::Records,
                progress::SyncPhase::Uploading => SyncPhase::Uploading,
                progress::SyncPhase::Downloading => SyncPhase::Downloading,
                progress::SyncPhase::Done => SyncPhase::Done,
            },
            round_trips: p.round_trips,
            bytes_up: p.bytes_up,
            bytes_down: p.bytes_down,
            records_accepted: p.records_accepted,
            records_pulled: p.records_pulled,
            chunks_uploaded: p.chunks_uploaded,
            chunks_downloaded: p.chunks_downloaded,
        }
    }
}

/// Stops a running `sync_async` at its next safe point (it then fails with `Cancelled`);
/// callable from any thread. What was sent is kept; the next sync carries on.
#[derive(uniffi::Object, Default)]
pub struct SyncCancel {
    token: progress::CancelToken,
}

#[uniffi::export]
impl SyncCancel {
    #[uniffi::constructor]
    pub fn new() -> Arc<SyncCancel> {
        Arc::new(SyncCancel::default())
    }

    pub fn cancel(&self) {
        self.token.cancel()
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct Issue {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum FieldValue {
    Text {
        value: String,
    },
    Integer {
        value: i64,
    },
    Decimal {
        value: f64,
    },
    /// `YYYY-MM-DD`
    Date {
        value: String,
    },
    /// RFC 3339 with offset
    Datetime {
        value: String,
    },
    Boolean {
        value: bool,
    },
    Choice {
        value: String,
    },
    Choices {
        values: Vec<String>,
    },
    Geopoint {
        lat: f64,
        lon: f64,
        accuracy: Option<f64>,
    },
    /// A photo or file by content hash
    Attachment {
        sha256: String,
        content_type: String,
        size: u64,
    },
}

impl From<FieldValue> for diaban_core::FieldValue {
    fn from(v: FieldValue) -> Self {
        use diaban_core::FieldValue as V;
        match v {
            FieldValue::Text { value } => V::Text(value),
            FieldValue::Integer { value } => V::Integer(value),
            FieldValue::Decimal { value } => V::Decimal(value),
            FieldValue::Date { value } => V::Date(value),
            FieldValue::Boolean { value } => V::Boolean(value),
            FieldValue::Choice { value } => V::Choice(value),
            FieldValue::Choices { values } => V::Choices(values),
            FieldValue::Datetime { value } => V::Datetime(value),
            FieldValue::Geopoint { lat, lon, accuracy } => V::Geopoint { lat, lon, accuracy },
            FieldValue::Attachment { sha256, content_type, size } => V::Attachment { sha256, content_type, size },
        }
    }
}

impl From<diaban_core::FieldValue> for FieldValue {
    fn from(v: diaban_core::FieldValue) -> Self {
        use diaban_core::FieldValue as V;
        match v {
            V::Text(value) => FieldValue::Text { value },
            V::Integer(value) => FieldValue::Integer { value },
            V::Decimal(value) => FieldValue::Decimal { value },
            V::Date(value) => FieldValue::Date { value },
            V::Boolean(value) => FieldValue::Boolean { value },
            V::Choice(value) => FieldValue::Choice { value },
            V::Choices(values) => FieldValue::Choices { values },
            V::Datetime(value) => FieldValue::Datetime { value },
            V::Geopoint { lat, lon, accuracy } => FieldValue::Geopoint { lat, lon, accuracy },
            V::Attachment { sha256, content_type, size } => FieldValue::Attachment { sha256, content_type, size },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, uniffi::Enum)]
pub enum FieldType {
    Text,
    Integer,
    Decimal,
    Date,
    Datetime,
    Boolean,
    SingleChoice,
    MultipleChoice,
    Geopoint,
    Photo,
    File,
    Note,
    Calculated,
    Repeat,
    Counter,
}

impl From<CoreFieldType> for FieldType {
    fn from(t: CoreFieldType) -> Self {
        match t {
            CoreFieldType::Text => FieldType::Text,
            CoreFieldType::Integer => FieldType::Integer,
            CoreFieldType::Decimal => FieldType::Decimal,
            CoreFieldType::Date => FieldType::Date,
            CoreFieldType::Boolean => FieldType::Boolean,
            CoreFieldType::SingleChoice => FieldType::SingleChoice,
            CoreFieldType::MultipleChoice => FieldType::MultipleChoice,
            CoreFieldType::Datetime => FieldType::Datetime,
            CoreFieldType::Geopoint => FieldType::Geopoint,
            CoreFieldType::Photo => FieldType::Photo,
            CoreFieldType::File => FieldType::File,
            CoreFieldType::Note => FieldType::Note,
            CoreFieldType::Calculated => FieldType::Calculated,
            CoreFieldType::Repeat => FieldType::Repeat,
            CoreFieldType::Counter => FieldType::Counter,
        }
    }
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct Account {
    pub username: String,
    pub display_name: String,
    /// field_officer, commune_lead, reviewer or admin
    pub role: String,
    pub unit_code: String,
    pub unit_name: String,
}

impl From<protocol::Account> for Account {
    fn from(a: protocol::Account) -> Self {
        Account {
            username: a.username,
            display_name: a.display_name,
            role: a.role.as_str().to_owned(),
            unit_code: a.unit_code,
            unit_name: a.unit_name,
        }
    }
}

/// An administrative unit of the user's subtree. (Not `Unit`: Kotlin has one.)
#[derive(Debug, Clone, uniffi::Record)]
pub struct UnitInfo {
    pub code: String,
    pub name: String,
    /// province, commune or village
    pub level: String,
    /// Empty for a province.
    pub parent_code: String,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct TemplateInfo {
    pub id: String,
    pub version: u32,
    pub label: String,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// One visible field of a record's form, in order; repeat groups hold their rows.
#[derive(Debug, Clone, uniffi::Record)]
pub struct FormItem {
    /// `name`, or `group/row_id/name` inside repeat rows: what `set_field` takes.
    pub path: String,
    pub name: String,
    pub label: String,
    pub hint: Option<String>,
    pub field_type: FieldType,
    pub value: Option<FieldValue>,
    pub display: String,
    pub required: bool,
    pub read_only: bool,
    pub choices: Vec<Choice>,
    pub errors: Vec<String>,
    /// Concurrent values to settle: `set_field` with the chosen (or a new) value resolves them.
    pub conflicts: Vec<Conflict>,
    pub rows: Vec<FormRow>,
}

/// One of several values concurrent edits left in a field.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Conflict {
    pub display: String,
    pub by: Option<String>,
    pub device: Option<String>,
    /// Unix seconds.
    pub at: i64,
}

/// One change of a field: who, from which device, when, and the value before and after (JSON).
#[derive(Debug, Clone, uniffi::Record)]
pub struct FieldChange {
    pub by: Option<String>,
    pub device: Option<String>,
    pub at: i64,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct FormRow {
    pub id: String,
    pub items: Vec<FormItem>,
}

impl From<diaban_core::form::RenderItem> for FormItem {
    fn from(i: diaban_core::form::RenderItem) -> Self {
        FormItem {
            path: i.path,
            name: i.name,
            label: i.label,
            hint: i.hint,
            field_type: i.field_type.into(),
            value: i.typed.map(Into::into),
            display: i.display,
            required: i.required,
            read_only: i.read_only,
            choices: i.choices.into_iter().map(|(value, label)| Choice { value, label }).collect(),
            errors: i.errors,
            conflicts: i
                .conflicts
                .into_iter()
                .map(|c| Conflict { display: c.display, by: c.by, device: c.device, at: c.at })
                .collect(),
            rows: i
                .rows
                .into_iter()
                .map(|r| FormRow { id: r.id, items: r.items.into_iter().map(Into::into).collect() })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct Event {
    /// submit, return, approve, reopen or comment
    pub kind: String,
    pub by: String,
    pub at: i64,
    pub comment: Option<String>,
}

/// A field concurrent edits left with several values; settle it with `resolve_conflict`.
#[derive(Debug, Clone, uniffi::Record)]
pub struct FieldConflict {
    pub path: String,
    pub label: String,
    /// The values, in the order `resolve_conflict` numbers them.
    pub values: Vec<Conflict>,
}

/// One figure of a periodic report, computed from the commune's records for its period.
#[derive(Debug, Clone, uniffi::Record)]
pub struct IndicatorRow {
    pub field: String,
    pub label: String,
    pub value: f64,
}

/// Something in the registry that falls due: a monthly residence check, a period ending.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Reminder {
    pub record_id: String,
    pub template_id: String,
    pub unit_code: String,
    /// The rule's id, e.g. `residence_check`.
    pub rule: String,
    /// The rule's label in the device language.
    pub label: String,
    /// Whom or what it is about, e.g. a person's name.
    pub subject: Option<String>,
    pub row_id: Option<String>,
    /// `YYYY-MM-DD`
    pub due: String,
    /// Negative when overdue.
    pub days_left: i64,
}

impl From<diaban_core::reminders::Reminder> for Reminder {
    fn from(r: diaban_core::reminders::Reminder) -> Self {
        Reminder {
            record_id: r.record_id,
            template_id: r.template_id,
            unit_code: r.unit_code,
            rule: r.rule,
            label: r.label,
            subject: r.subject,
            row_id: r.row_id,
            due: r.due,
            days_left: r.days_left,
        }
    }
}

fn indicator_rows(rows: Vec<diaban_core::device_reports::IndicatorRow>) -> Vec<IndicatorRow> {
    rows.into_iter().map(|r| IndicatorRow { field: r.field, label: r.label, value: r.value }).collect()
}

/// A record whose changes the server refused: kept on the phone and shown until settled.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Quarantined {
    pub record_id: String,
    pub template_id: String,
    pub state: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct Rejection {
    pub code: String,
    pub message: String,
}

/// A record as its form draws it (the render model), recomputed on every call.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RecordView {
    pub id: String,
    pub template_id: String,
    pub template_version: u32,
    pub title: String,
    pub unit_code: String,
    pub period: Option<String>,
    /// draft, submitted, returned, approved or reopened
    pub state: String,
    pub editable: bool,
    pub unsent: bool,
    pub rejection: Option<Rejection>,
    pub items: Vec<FormItem>,
    pub can_submit: bool,
    pub issues: Vec<Issue>,
    pub events: Vec<Event>,
    /// While returned: the reviewer's comment saying what to fix.
    pub review_comment: Option<String>,
}

impl From<core::RecordView> for RecordView {
    fn from(r: core::RecordView) -> Self {
        RecordView {
            id: r.id,
            template_id: r.template_id,
            template_version: r.template_version,
            title: r.title,
            unit_code: r.unit_code,
            period: r.period,
            state: r.state.as_str().to_owned(),
            editable: r.editable,
            unsent: r.unsent,
            rejection: r.rejection.map(|(code, message)| Rejection { code, message }),
            items: r.items.into_iter().map(Into::into).collect(),
            can_submit: r.can_submit,
            issues: r.issues.into_iter().map(|i| Issue { field: i.field, message: i.message }).collect(),
            events: r
                .events
                .into_iter()
                .map(|e| Event { kind: e.kind.as_str().to_owned(), by: e.by, at: e.at, comment: e.comment })
                .collect(),
            review_comment: r.review_comment,
        }
    }
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct RecordSummary {
    pub id: String,
    pub template_id: String,
    pub unit_code: String,
    pub state: String,
    pub updated_at: i64,
    pub unsent: bool,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct RecordRejection {
    pub record_id: String,
    pub code: String,
    pub message: String,
    pub issues: Vec<Issue>,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct TransferReport {
    pub uploaded_chunks: u32,
    pub downloaded_chunks: u32,
    pub uploaded_files: u32,
    pub downloaded_files: u32,
    pub done: bool,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct SyncReport {
    pub accepted: Vec<String>,
    pub rejected: Vec<RecordRejection>,
    pub pulled_records: u64,
    pub pulled_templates: u64,
    pub round_trips: u32,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub attachments: TransferReport,
    /// The account and scope came anew (first sync, or an administrator changed them):
    /// read `account()` again.
    pub account_updated: bool,
    /// Records removed because they left the user's scope.
    pub forgotten_records: u64,
}

impl From<core::SyncReport> for SyncReport {
    fn from(r: core::SyncReport) -> Self {
        SyncReport {
            accepted: r.accepted,
            rejected: r
                .rejected
                .into_iter()
                .map(|x| RecordRejection {
                    record_id: x.record_id,
                    code: x.code,
                    message: x.message,
                    issues: x.issues.into_iter().map(|i| Issue { field: i.field, message: i.message }).collect(),
                })
                .collect(),
            pulled_records: r.pulled_records as u64,
            pulled_templates: r.pulled_templates as u64,
            round_trips: r.round_trips,
            bytes_up: r.bytes_up,
            bytes_down: r.bytes_down,
            attachments: r.attachments.into(),
            account_updated: r.account_updated,
            forgotten_records: r.forgotten_records,
        }
    }
}

impl From<core::TransferReport> for TransferReport {
    fn from(r: core::TransferReport) -> Self {
        TransferReport {
            uploaded_chunks: r.uploaded_chunks,
            downloaded_chunks: r.downloaded_chunks,
            uploaded_files: r.uploaded_files,
            downloaded_files: r.downloaded_files,
            done: r.done,
        }
    }
}

/// A device store and its connection to the server.
#[derive(uniffi::Object)]
pub struct Device {
    inner: tokio::sync::RwLock<Option<core::Device>>,
}

impl Device {
    fn with<T>(&self, f: impl AsyncFnOnce(&core::Device) -> Result<T, core::DeviceError>) -> Result<T, DiabanError> {
        RUNTIME.block_on(async {
            let guard = self.inner.read().await;
            let device = guard.as_ref().ok_or_else(closed)?;
            f(device).await.map_err(|e| DiabanError::of(e, device.language()))
        })
    }
}

fn summary(r: diaban_core::store::RecordIndex) -> RecordSummary {
    RecordSummary {
        id: r.id,
        template_id: r.template_id,
        unit_code: r.unit_code,
        state: r.state,
        updated_at: r.updated_at,
        unsent: r.unsent,
    }
}

fn closed() -> DiabanError {
    DiabanError::Closed { reason: "the device store is closed".into() }
}

#[uniffi::export]
impl Device {
    /// Opens (or creates) the store file at `path`, sealed with the key `keys` gives (32 bytes
    /// the app keeps in the Android Keystore or iOS Keychain); `server_url` is used only when
    /// online.
    #[uniffi::constructor]
    pub fn open(
        path: String,
        keys: Arc<dyn KeyProvider>,
        server_url: String,
        device_name: String,
    ) -> Result<Arc<Device>, DiabanError> {
        let opened = match keys.store_key() {
            Ok(key) => RUNTIME.block_on(core::Device::open(&PathBuf::from(path), &key, &server_url, &device_name)),
            Err(KeyError::Unavailable { reason }) => Err(core::DeviceError::KeyUnavailable(reason)),
        };
        let device = opened.map_err(|e| DiabanError::of(e, "vi"))?;
        Ok(Arc::new(Device { inner: tokio::sync::RwLock::new(Some(device)) }))
    }

    /// Opens a store that has a PIN (the app lock): both the host's key and the officer's PIN
    /// are needed. `WrongPin` says how many tries are left; the last wipes the store (`Wiped`).
    #[uniffi::constructor]
    pub fn open_with_pin(
        path: String,
        keys: Arc<dyn KeyProvider>,
        pin: String,
        server_url: String,
        device_name: String,
    ) -> Result<Arc<Device>, DiabanError> {
        let opened = match keys.store_key() {
            Ok(key) => RUNTIME.block_on(core::Device::open_with_pin(
                &PathBuf::from(path),
                &key,
                &pin,
                &server_url,
                &device_name,
            )),
            Err(KeyError::Unavailable { reason }) => Err(core::DeviceError::KeyUnavailable(reason)),
        };
        let device = opened.map_err(|e| DiabanError::of(e, "vi"))?;
        Ok(Arc::new(Device { inner: tokio::sync::RwLock::new(Some(device)) }))
    }

    /// Sets the officer's PIN (a store without one): its data then opens only with both the
    /// host's key and the PIN.
    pub fn set_pin(&self, pin: String) -> Result<(), DiabanError> {
        self.with(async |d| d.set_pin(&pin).await)
    }

    /// Changes the PIN (no record is re-encrypted).
    pub fn change_pin(&self, old_pin: String, new_pin: String) -> Result<(), DiabanError> {
        self.with(async |d| d.change_pin(&old_pin, &new_pin).await)
    }

    /// Opens the store again after it locked (idle, or `lock`).
    pub fn unlock(&self, pin: String) -> Result<(), DiabanError> {
        self.with(async |d| d.unlock(&pin).await)
    }

    /// Locks the store now.
    pub fn lock(&self) -> Result<(), DiabanError> {
        self.with(async |d| d.lock())
    }

    /// Locks the store by itself after `seconds` without use (0: never).
    pub fn set_idle_lock(&self, seconds: u64) -> Result<(), DiabanError> {
        self.with(async |d| {
            d.set_idle_lock(seconds);
            Ok(())
        })
    }

    /// Whether the store is locked now.
    pub fn is_locked(&self) -> Result<bool, DiabanError> {
        self.with(async |d| Ok(d.is_locked()))
    }

    /// Closes the store, waiting for its files to be closed cleanly. Later calls fail with
    /// `Closed`. (Not `close`: uniffi objects are `AutoCloseable` in Kotlin, whose `close`
    /// frees the object itself.)
    pub fn close_store(&self) {
        RUNTIME.block_on(async {
            if let Some(device) = self.inner.write().await.take() {
                device.close().await;
            }
        })
    }

    /// How the server is checked beyond HTTPS and the platform's trust store: `pins`, the
    /// SHA-256 (hex) of the server's public key(s) the app accepts (empty: any the platform
    /// trusts); `extra_roots_pem`, a province's own root certificates (not on Android, which
    /// takes its roots from the system).
    pub fn set_tls(&self, pins: Vec<String>, extra_roots_pem: Option<String>) -> Result<(), DiabanError> {
        RUNTIME.block_on(async {
            let mut guard = self.inner.write().await;
            let device = guard.as_mut().ok_or_else(closed)?;
            device
                .set_tls(&diaban_core::tls::TlsSettings { pins, extra_roots_pem })
                .map_err(|e| DiabanError::of(e, "vi"))
        })
    }

    /// "vi" (default) or "en".
    pub fn set_language(&self, lang: String) -> Result<(), DiabanError> {
        RUNTIME.block_on(async {
            let mut guard = self.inner.write().await;
            guard.as_mut().ok_or_else(closed)?.set_language(&lang);
            Ok(())
        })
    }

    pub fn actor_id(&self) -> Result<String, DiabanError> {
        self.with(async |d| Ok(d.actor_id()))
    }

    /// Today's date in Vietnam (`YYYY-MM-DD`) as the device's clock has it: the system clock,
    /// or the moment `DIABAN_CLOCK` pins it to (tests, demos). A form's `today` is this day.
    pub fn today(&self) -> Result<String, DiabanError> {
        self.with(async |d| Ok(d.today()))
    }

    pub fn login(&self, username: String, password: String) -> Result<Account, DiabanError> {
        self.with(async |d| d.login(&username, &password).await).map(Into::into)
    }

    pub fn logout(&self) -> Result<(), DiabanError> {
        self.with(async |d| d.logout().await)
    }

    pub fn account(&self) -> Result<Option<Account>, DiabanError> {
        self.with(async |d| d.account().await).map(|a| a.map(Into::into))
    }

    /// The units of the user's subtree (their commune, or a province and its communes).
    pub fn units(&self) -> Result<Vec<UnitInfo>, DiabanError> {
        self.with(async |d| d.units().await).map(|us| {
            us.into_iter()
                .map(|u| UnitInfo { code: u.code, name: u.name, level: u.level, parent_code: u.parent_code })
                .collect()
        })
    }

    pub fn templates(&self) -> Result<Vec<TemplateInfo>, DiabanError> {
        self.with(async |d| {
            Ok(d.templates()
                .await?
                .into_iter()
                .map(|t| TemplateInfo { label: t.label.text(d.language()).to_owned(), id: t.id, version: t.version })
                .collect())
        })
    }

    /// Starts a record; periodic reports name their period (`2026-11`, `2026-Q4`, …).
    pub fn create_record(&self, template_id: String, period: Option<String>) -> Result<String, DiabanError> {
        self.with(async |d| d.create_record(&template_id, period.as_deref()).await)
    }

    /// Appends a row to the repeat group at `group_path`; returns the row id.
    pub fn add_row(&self, record_id: String, group_path: String) -> Result<String, DiabanError> {
        self.with(async |d| d.add_row(&record_id, &group_path).await)
    }

    /// Attaches a photo or file to the `photo`/`file` field at `path`; returns its SHA-256.
    /// It is kept sealed on the phone and uploaded, in resumable chunks, by `sync`.
    pub fn attach(
        &self,
        record_id: String,
        path: String,
        data: Vec<u8>,
        content_type: String,
    ) -> Result<String, DiabanError> {
        self.with(async |d| d.attach(&record_id, &path, data, &content_type).await)
    }

    /// The bytes of an attachment on the phone.
    pub fn attachment(&self, sha256: String) -> Result<Vec<u8>, DiabanError> {
        self.with(async |d| d.attachment(&sha256).await)
    }

    /// Moves at most `budget` attachment chunks (both ways); `sync` moves them all.
    pub fn transfer_attachments(&self, budget: u32) -> Result<TransferReport, DiabanError> {
        self.with(async |d| d.transfer_attachments(budget).await).map(Into::into)
    }

    /// Adds `by` to the tally at `path`; additions from several phones add up.
    pub fn increment(&self, record_id: String, path: String, by: i64) -> Result<(), DiabanError> {
        self.with(async |d| d.increment(&record_id, &path, by).await)
    }

    /// The changes of one field, oldest first.
    pub fn history(&self, record_id: String, path: String) -> Result<Vec<FieldChange>, DiabanError> {
        self.with(async |d| d.history(&record_id, &path).await).map(|entries| {
            entries
                .into_iter()
                .map(|e| FieldChange {
                    by: e.info.by,
                    device: e.info.device,
                    at: e.info.at,
                    old_value: e.old.map(|v| v.to_string()),
                    new_value: e.new.map(|v| v.to_string()),
                })
                .collect()
        })
    }

    pub fn remove_row(&self, record_id: String, group_path: String, row_id: String) -> Result<(), DiabanError> {
        self.with(async |d| d.remove_row(&record_id, &group_path, &row_id).await)
    }

    pub fn set_field(&self, record_id: String, field: String, value: FieldValue) -> Result<(), DiabanError> {
        self.with(async |d| d.set_field(&record_id, &field, value.into()).await)
    }

    pub fn clear_field(&self, record_id: String, field: String) -> Result<(), DiabanError> {
        self.with(async |d| d.clear_field(&record_id, &field).await)
    }

    pub fn submit(&self, record_id: String) -> Result<(), DiabanError> {
        self.with(async |d| d.submit(&record_id).await)
    }

    /// The commune lead's sign-off of a submitted record, when the template has two levels.
    pub fn sign_off(&self, record_id: String) -> Result<(), DiabanError> {
        self.with(async |d| d.sign_off(&record_id).await)
    }

    pub fn record(&self, record_id: String) -> Result<RecordView, DiabanError> {
        self.with(async |d| d.record(&record_id).await).map(Into::into)
    }

    /// Records on the phone, newest first, optionally of one template and/or in one state.
    pub fn records(
        &self,
        template_id: Option<String>,
        state: Option<String>,
    ) -> Result<Vec<RecordSummary>, DiabanError> {
        self.with(async |d| d.records(template_id.as_deref(), state.as_deref()).await)
            .map(|rs| rs.into_iter().map(summary).collect())
    }

    /// Records whose answers contain every word of `query`, ignoring case and diacritics.
    pub fn search(&self, query: String, template_id: Option<String>) -> Result<Vec<RecordSummary>, DiabanError> {
        self.with(async |d| d.search(&query, template_id.as_deref()).await)
            .map(|rs| rs.into_iter().map(summary).collect())
    }

    /// Fields of a record that concurrent edits left with several values.
    pub fn conflicts(&self, record_id: String) -> Result<Vec<FieldConflict>, DiabanError> {
        self.with(async |d| d.conflicts(&record_id).await).map(|cs| {
            cs.into_iter()
                .map(|c| FieldConflict {
                    path: c.path,
                    label: c.label,
                    values: c
                        .values
                        .into_iter()
                        .map(|v| Conflict { display: v.display, by: v.by, device: v.device, at: v.at })
                        .collect(),
                })
                .collect()
        })
    }

    /// Keeps value number `choice` of the field's conflicting values (or call `set_field`
    /// with a new value); the choice syncs to every phone.
    pub fn resolve_conflict(&self, record_id: String, path: String, choice: u32) -> Result<(), DiabanError> {
        self.with(async |d| d.resolve_conflict(&record_id, &path, choice).await)
    }

    /// A periodic report's figures computed from the records on the phone; writes nothing.
    pub fn indicators(&self, record_id: String) -> Result<Vec<IndicatorRow>, DiabanError> {
        self.with(async |d| d.indicators(&record_id).await).map(indicator_rows)
    }

    /// Computes a report's figures and writes them into it (the commune still writes the
    /// narrative fields).
    pub fn fill_indicators(&self, record_id: String) -> Result<Vec<IndicatorRow>, DiabanError> {
        self.with(async |d| d.fill_indicators(&record_id).await).map(indicator_rows)
    }

    /// What falls due in the registry on the phone, soonest first (today in Vietnam).
    pub fn reminders(&self) -> Result<Vec<Reminder>, DiabanError> {
        self.with(async |d| d.reminders().await).map(|rs| rs.into_iter().map(Into::into).collect())
    }

    /// The reminders as listed on `today` (`YYYY-MM-DD`).
    pub fn reminders_on(&self, today: String) -> Result<Vec<Reminder>, DiabanError> {
        self.with(async |d| d.reminders_on(&today).await).map(|rs| rs.into_iter().map(Into::into).collect())
    }

    /// Records whose changes the server refused; their changes stay on the phone.
    pub fn quarantined(&self) -> Result<Vec<Quarantined>, DiabanError> {
        self.with(async |d| d.quarantined().await).map(|qs| {
            qs.into_iter()
                .map(|q| Quarantined {
                    record_id: q.record_id,
                    template_id: q.template_id,
                    state: q.state,
                    code: q.code,
                    message: q.message,
                })
                .collect()
        })
    }

    /// Syncs the documents only; attachments wait for `transfer_attachments` (or `sync`).
    pub fn sync_records(&self) -> Result<SyncReport, DiabanError> {
        self.with(async |d| d.sync_records().await).map(Into::into)
    }

    /// Blocks until the server holds something new for this phone (committed through any
    /// server node) or `wait_secs` pass (at most 30): whether a sync would bring something.
    /// Call it from a background thread while the app is open, then `sync`.
    pub fn wait_for_changes(&self, wait_secs: u64) -> Result<bool, DiabanError> {
        self.with(async |d| d.wait_for_changes(wait_secs).await)
    }

    /// Syncs the documents, then every pending attachment.
    pub fn sync(&self) -> Result<SyncReport, DiabanError> {
        self.with(async |d| d.sync().await).map(Into::into)
    }

    /// `sync` without blocking the caller: a Kotlin `suspend fun`, a Swift `async func`, a
    /// Python coroutine. `listener` hears progress after every round trip and attachment
    /// chunk, on a thread of its own; `cancel` stops the sync at its next safe point. Other
    /// calls (edits included) may run meanwhile; their changes go at the next sync.
    #[uniffi::method(default(listener = None, cancel = None))]
    pub async fn sync_async(
        self: Arc<Self>,
        listener: Option<Arc<dyn SyncListener>>,
        cancel: Option<Arc<SyncCancel>>,
    ) -> Result<SyncReport, DiabanError> {
        let token = cancel.map(|c| c.token.clone()).unwrap_or_default();
        let task = RUNTIME.spawn(async move {
            // Progress goes through a channel to a plain thread, so a listener may call back
            // into the device (or block) without stalling the sync.
            let (tx, rx) = std::sync::mpsc::channel::<progress::SyncProgress>();
            let forwarder =
                listener.map(|l| std::thread::spawn(move || rx.into_iter().for_each(|p| l.on_progress(p.into()))));
            let result = {
                let guard = self.inner.read().await;
                let device = guard.as_ref().ok_or_else(closed)?;
                let notify = move |p: &progress::SyncProgress| {
                    let _ = tx.send(p.clone());
                };
                device.sync_with(&notify, &token).await.map_err(|e| DiabanError::of(e, device.language()))
            };
            if let Some(forwarder) = forwarder {
                // Every progress report is delivered before the sync returns.
                let _ = tokio::task::spawn_blocking(move || forwarder.join()).await;
            }
            result.map(Into::into)
        });
        task.await.unwrap_or_else(|e| Err(DiabanError::Storage { reason: format!("the sync task failed: {e}") }))
    }
}
