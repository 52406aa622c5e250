//! uniffi facade over `diaban-core` for Kotlin (`vn.diaban`), Swift (`Diaban`) and Python
//! (`diaban`). It holds no logic: it maps core's types and errors to uniffi's and runs
//! core's async API on one shared runtime, so every call is a plain blocking call that an
//! app makes from a background thread.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use diaban_core::device as core;
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

/// Errors an app shows or acts on. `message` is a sentence for the user.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum DiabanError {
    #[error("{message}")]
    InvalidCredentials { message: String },
    #[error("{message}")]
    Unauthorized { message: String },
    #[error("{message}")]
    UpgradeRequired { message: String },
    #[error("{message}")]
    Unreachable { message: String },
    #[error("{message}")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    #[error("{message}")]
    NotLoggedIn { message: String },
    #[error("{message}")]
    UnknownTemplate { message: String },
    #[error("{message}")]
    UnknownRecord { message: String },
    #[error("{message}")]
    InvalidValue { message: String },
    #[error("{message}")]
    NotEditable { message: String },
    #[error("{message}")]
    Incomplete { issues: Vec<Issue>, message: String },
    #[error("{message}")]
    Storage { message: String },
    #[error("{message}")]
    Closed { message: String },
}

impl From<core::DeviceError> for DiabanError {
    fn from(e: core::DeviceError) -> Self {
        let message = e.to_string();
        use core::DeviceError as E;
        match e {
            E::InvalidCredentials => DiabanError::InvalidCredentials { message },
            E::Unauthorized => DiabanError::Unauthorized { message },
            E::UpgradeRequired => DiabanError::UpgradeRequired { message },
            E::Unreachable(_) => DiabanError::Unreachable { message },
            E::Server { status, code, .. } => DiabanError::Server {
                status,
                code,
                message,
            },
            E::NotLoggedIn => DiabanError::NotLoggedIn { message },
            E::UnknownTemplate(_) => DiabanError::UnknownTemplate { message },
            E::UnknownRecord(_) => DiabanError::UnknownRecord { message },
            E::InvalidValue(_) => DiabanError::InvalidValue { message },
            E::NotEditable(_) => DiabanError::NotEditable { message },
            E::Incomplete { issues } => DiabanError::Incomplete {
                issues: issues
                    .into_iter()
                    .map(|i| Issue {
                        field: i.field,
                        message: i.message,
                    })
                    .collect(),
                message,
            },
            E::Storage(_) => DiabanError::Storage { message },
        }
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
    Boolean {
        value: bool,
    },
    Choice {
        value: String,
    },
    Choices {
        values: Vec<String>,
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
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, uniffi::Enum)]
pub enum FieldType {
    Text,
    Integer,
    Decimal,
    Date,
    Boolean,
    SingleChoice,
    MultipleChoice,
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

#[derive(Debug, Clone, uniffi::Record)]
pub struct FieldView {
    pub name: String,
    pub label: String,
    pub field_type: FieldType,
    pub required: bool,
    pub value: Option<FieldValue>,
    pub display: String,
    pub choices: Vec<Choice>,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct Event {
    /// submit, return, approve, reopen or comment
    pub kind: String,
    pub by: String,
    pub at: i64,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct Rejection {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct RecordView {
    pub id: String,
    pub template_id: String,
    pub template_version: u32,
    pub title: String,
    pub unit_code: String,
    /// draft, submitted, returned, approved or reopened
    pub state: String,
    pub unsent: bool,
    pub rejection: Option<Rejection>,
    pub fields: Vec<FieldView>,
    pub events: Vec<Event>,
}

impl From<core::RecordView> for RecordView {
    fn from(r: core::RecordView) -> Self {
        RecordView {
            id: r.id,
            template_id: r.template_id,
            template_version: r.template_version,
            title: r.title,
            unit_code: r.unit_code,
            state: r.state.as_str().to_owned(),
            unsent: r.unsent,
            rejection: r
                .rejection
                .map(|(code, message)| Rejection { code, message }),
            fields: r
                .fields
                .into_iter()
                .map(|f| FieldView {
                    name: f.name,
                    label: f.label,
                    field_type: f.field_type.into(),
                    required: f.required,
                    value: f.value.map(Into::into),
                    display: f.display,
                    choices: f
                        .choices
                        .into_iter()
                        .map(|(value, label)| Choice { value, label })
                        .collect(),
                })
                .collect(),
            events: r
                .events
                .into_iter()
                .map(|e| Event {
                    kind: e.kind.as_str().to_owned(),
                    by: e.by,
                    at: e.at,
                    comment: e.comment,
                })
                .collect(),
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
                })
                .collect(),
            pulled_records: r.pulled_records as u64,
            pulled_templates: r.pulled_templates as u64,
            round_trips: r.round_trips,
            bytes_up: r.bytes_up,
            bytes_down: r.bytes_down,
        }
    }
}

/// A device store and its connection to the server.
#[derive(uniffi::Object)]
pub struct Device {
    inner: tokio::sync::RwLock<Option<core::Device>>,
}

impl Device {
    fn with<T>(
        &self,
        f: impl AsyncFnOnce(&core::Device) -> Result<T, core::DeviceError>,
    ) -> Result<T, DiabanError> {
        RUNTIME.block_on(async {
            let guard = self.inner.read().await;
            let device = guard.as_ref().ok_or_else(closed)?;
            Ok(f(device).await?)
        })
    }
}

fn closed() -> DiabanError {
    DiabanError::Closed {
        message: "the device store is closed".into(),
    }
}

#[uniffi::export]
impl Device {
    /// Opens (or creates) the store file at `path`; `server_url` is used only when online.
    #[uniffi::constructor]
    pub fn open(
        path: String,
        server_url: String,
        device_name: String,
    ) -> Result<Arc<Device>, DiabanError> {
        let device = RUNTIME.block_on(core::Device::open(
            &PathBuf::from(path),
            &server_url,
            &device_name,
        ))?;
        Ok(Arc::new(Device {
            inner: tokio::sync::RwLock::new(Some(device)),
        }))
    }

    /// Closes the store. Later calls fail with `Closed`.
    pub fn close(&self) {
        RUNTIME.block_on(async {
            if let Some(device) = self.inner.write().await.take() {
                device.close().await;
            }
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

    pub fn login(&self, username: String, password: String) -> Result<Account, DiabanError> {
        self.with(async |d| d.login(&username, &password).await)
            .map(Into::into)
    }

    pub fn logout(&self) -> Result<(), DiabanError> {
        self.with(async |d| d.logout().await)
    }

    pub fn account(&self) -> Result<Option<Account>, DiabanError> {
        self.with(async |d| d.account().await)
            .map(|a| a.map(Into::into))
    }

    pub fn templates(&self) -> Result<Vec<TemplateInfo>, DiabanError> {
        self.with(async |d| {
            Ok(d.templates()
                .await?
                .into_iter()
                .map(|t| TemplateInfo {
                    label: t.label.text(d.language()).to_owned(),
                    id: t.id,
                    version: t.version,
                })
                .collect())
        })
    }

    pub fn create_record(&self, template_id: String) -> Result<String, DiabanError> {
        self.with(async |d| d.create_record(&template_id).await)
    }

    pub fn set_field(
        &self,
        record_id: String,
        field: String,
        value: FieldValue,
    ) -> Result<(), DiabanError> {
        self.with(async |d| d.set_field(&record_id, &field, value.into()).await)
    }

    pub fn clear_field(&self, record_id: String, field: String) -> Result<(), DiabanError> {
        self.with(async |d| d.clear_field(&record_id, &field).await)
    }

    pub fn submit(&self, record_id: String) -> Result<(), DiabanError> {
        self.with(async |d| d.submit(&record_id).await)
    }

    pub fn record(&self, record_id: String) -> Result<RecordView, DiabanError> {
        self.with(async |d| d.record(&record_id).await)
            .map(Into::into)
    }

    pub fn records(&self) -> Result<Vec<RecordSummary>, DiabanError> {
        self.with(async |d| d.records().await).map(|rs| {
            rs.into_iter()
                .map(|r| RecordSummary {
                    id: r.id,
                    template_id: r.template_id,
                    unit_code: r.unit_code,
                    state: r.state,
                    updated_at: r.updated_at,
                    unsent: r.unsent,
                })
                .collect()
        })
    }

    pub fn sync(&self) -> Result<SyncReport, DiabanError> {
        self.with(async |d| d.sync().await).map(Into::into)
    }
}
