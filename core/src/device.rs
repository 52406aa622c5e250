//! The device API: what a phone app calls. It ties the store, the templates, the record
//! documents and the sync engine together, and turns every failure into a [`DeviceError`].
//!
//! Only `login` and `sync` touch the network; everything else works offline.

use std::path::Path;

use automerge::ActorId;

use crate::db::now;
use crate::protocol::{self, Account, LoginRequest, LoginResponse, SyncResponse, codes};
use crate::record::{Event, EventKind, RecordDoc, RecordError, RecordMeta, WorkflowState};
use crate::store::{Store, StoreError, StoredRecord};
use crate::sync::{self, SyncError};
use crate::template::{FieldType, Issue, Template, TemplateError};
use crate::transport::{HttpTransport, Traffic, TransportError};
use crate::value::FieldValue;

const ACTOR_KEY: &str = "actor_id";
const TOKEN_KEY: &str = "token";
const DEVICE_ID_KEY: &str = "device_id";
const ACCOUNT_KEY: &str = "account";
/// Bounds one `sync()` call: pages of pulled records beyond this wait for the next call.
const MAX_EXCHANGES: u32 = 50;

/// Everything that can go wrong at the device API, in terms an app can act on.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("this device is no longer signed in; sign in again")]
    Unauthorized,
    #[error("this app is too old for the server; please update it")]
    UpgradeRequired,
    #[error("the server cannot be reached; your data is kept on the phone: {0}")]
    Unreachable(String),
    #[error("the server refused the request ({status} {code}): {message}")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    #[error("sign in first")]
    NotLoggedIn,
    #[error("unknown template {0:?}")]
    UnknownTemplate(String),
    #[error("unknown record {0:?}")]
    UnknownRecord(String),
    #[error("invalid value: {0}")]
    InvalidValue(String),
    #[error("the record is {0} and cannot be edited now")]
    NotEditable(String),
    #[error("the record cannot be submitted: {}", issues.iter().map(|i| i.message.as_str()).collect::<Vec<_>>().join("; "))]
    Incomplete { issues: Vec<Issue> },
    #[error("device storage: {0}")]
    Storage(String),
}

impl From<StoreError> for DeviceError {
    fn from(e: StoreError) -> Self {
        DeviceError::Storage(e.to_string())
    }
}

impl From<RecordError> for DeviceError {
    fn from(e: RecordError) -> Self {
        DeviceError::Storage(e.to_string())
    }
}

impl From<SyncError> for DeviceError {
    fn from(e: SyncError) -> Self {
        DeviceError::Storage(e.to_string())
    }
}

impl From<TemplateError> for DeviceError {
    fn from(e: TemplateError) -> Self {
        DeviceError::InvalidValue(e.to_string())
    }
}

impl From<TransportError> for DeviceError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Unreachable(m) => DeviceError::Unreachable(m),
            TransportError::BadResponse(m) => DeviceError::Server {
                status: 0,
                code: "bad_response".into(),
                message: m,
            },
            TransportError::Http { code, .. } if code == codes::INVALID_CREDENTIALS => {
                DeviceError::InvalidCredentials
            }
            TransportError::Http { code, .. } if code == codes::UNAUTHORIZED => {
                DeviceError::Unauthorized
            }
            TransportError::Http { code, .. } if code == codes::UPGRADE_REQUIRED => {
                DeviceError::UpgradeRequired
            }
            TransportError::Http {
                status,
                code,
                message,
            } => DeviceError::Server {
                status,
                code,
                message,
            },
        }
    }
}

/// A short line per record, for lists.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordSummary {
    pub id: String,
    pub template_id: String,
    pub unit_code: String,
    pub state: String,
    pub updated_at: i64,
    /// Holds changes the server has not committed yet.
    pub unsent: bool,
}

/// One field as the form shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldView {
    pub name: String,
    pub label: String,
    pub field_type: FieldType,
    pub required: bool,
    pub value: Option<FieldValue>,
    /// The value as a person reads it (choice labels, not codes); empty when unanswered.
    pub display: String,
    /// (value, label) pairs for choice fields.
    pub choices: Vec<(String, String)>,
}

/// A record as the form shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordView {
    pub id: String,
    pub template_id: String,
    pub template_version: u32,
    pub title: String,
    pub unit_code: String,
    pub state: WorkflowState,
    pub unsent: bool,
    /// The server's refusal of this record's changes, if any: (code, message).
    pub rejection: Option<(String, String)>,
    pub fields: Vec<FieldView>,
    pub events: Vec<Event>,
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
}

pub struct Device {
    store: Store,
    transport: HttpTransport,
    actor: ActorId,
    device_name: String,
    lang: String,
}

impl Device {
    /// Opens (or creates) the store at `path`, talking to the server at `server_url` when online.
    pub async fn open(
        path: &Path,
        server_url: &str,
        device_name: &str,
    ) -> Result<Device, DeviceError> {
        let store = Store::open(path).await?;
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
            store,
            transport,
            actor,
            device_name: device_name.to_owned(),
            lang: "vi".into(),
        })
    }

    /// Closes the store; every acknowledged write is already on disk.
    pub async fn close(self) {
        self.store.close().await;
    }

    /// "vi" (default) or "en": the language of labels in views.
    pub fn set_language(&mut self, lang: &str) {
        self.lang = if lang == "en" {
            "en".into()
        } else {
            "vi".into()
        };
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
        let (response, _): (LoginResponse, Traffic) = self
            .transport
            .post(protocol::LOGIN_PATH, None, &request)
            .await?;
        let account = serde_json::to_string(&response.account)
            .map_err(|e| DeviceError::Storage(e.to_string()))?;
        self.store.set_setting(TOKEN_KEY, &response.token).await?;
        self.store
            .set_setting(DEVICE_ID_KEY, &response.device_id)
            .await?;
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
            Some(json) => Ok(Some(
                serde_json::from_str(&json).map_err(|e| DeviceError::Storage(e.to_string()))?,
            )),
            None => Ok(None),
        }
    }

    /// The newest version of every template on the device.
    pub async fn templates(&self) -> Result<Vec<Template>, DeviceError> {
        Ok(self.store.latest_templates().await?)
    }

    /// Starts a record of `template_id` in the signed-in user's unit, on the latest version.
    pub async fn create_record(&self, template_id: &str) -> Result<String, DeviceError> {
        let account = self.account().await?.ok_or(DeviceError::NotLoggedIn)?;
        let template = self
            .store
            .template(template_id, None)
            .await?
            .ok_or_else(|| DeviceError::UnknownTemplate(template_id.to_owned()))?;
        let device_id = self.store.setting(DEVICE_ID_KEY).await?.unwrap_or_default();
        let meta = RecordMeta {
            record_id: uuid::Uuid::new_v4().to_string(),
            template_id: template.id.clone(),
            template_version: template.version,
            unit_code: account.unit_code,
            created_by: account.username,
            created_at: now(),
            device_id,
        };
        let doc = RecordDoc::create(&meta, self.actor.clone())?;
        self.store
            .put_record(&sync::index(doc, None, Vec::new(), now())?)
            .await?;
        Ok(meta.record_id)
    }

    /// Sets one answer, after checking it against the record's template version.
    pub async fn set_field(
        &self,
        record_id: &str,
        field: &str,
        value: FieldValue,
    ) -> Result<(), DeviceError> {
        let (stored, template, mut doc) = self.open_record(record_id).await?;
        ensure_editable(&doc)?;
        template.check_value(field, &value)?;
        doc.set_field(field, &value, now())?;
        self.save(stored, doc).await
    }

    /// Removes one answer.
    pub async fn clear_field(&self, record_id: &str, field: &str) -> Result<(), DeviceError> {
        let (stored, template, mut doc) = self.open_record(record_id).await?;
        ensure_editable(&doc)?;
        template.field(field)?;
        doc.clear_field(field, now())?;
        self.save(stored, doc).await
    }

    /// Sends the record up for review, if it passes its template's validation.
    pub async fn submit(&self, record_id: &str) -> Result<(), DeviceError> {
        let (stored, template, mut doc) = self.open_record(record_id).await?;
        ensure_editable(&doc)?;
        let issues = template.validate(&doc.values());
        if !issues.is_empty() {
            return Err(DeviceError::Incomplete { issues });
        }
        let account = self.account().await?.ok_or(DeviceError::NotLoggedIn)?;
        doc.append_event(EventKind::Submit, &account.username, None, now())?;
        self.save(stored, doc).await
    }

    /// All records on the device, newest first.
    pub async fn records(&self) -> Result<Vec<RecordSummary>, DeviceError> {
        Ok(self
            .store
            .records()
            .await?
            .into_iter()
            .map(|r| RecordSummary {
                unsent: r.has_unsent_changes(),
                id: r.id,
                template_id: r.template_id,
                unit_code: r.unit_code,
                state: r.state,
                updated_at: r.updated_at,
            })
            .collect())
    }

    /// One record with its fields in template order, labelled in the device's language.
    pub async fn record(&self, record_id: &str) -> Result<RecordView, DeviceError> {
        let (stored, template, doc) = self.open_record(record_id).await?;
        let values = doc.values();
        let lang = self.lang.as_str();
        let fields = template
            .fields
            .iter()
            .map(|f| {
                let json = values.get(&f.name);
                FieldView {
                    name: f.name.clone(),
                    label: f.label.text(lang).to_owned(),
                    field_type: f.field_type,
                    required: f.required,
                    value: json.and_then(|j| FieldValue::from_json(f.field_type, j)),
                    display: json
                        .map(|j| template.display(f, j, lang))
                        .unwrap_or_default(),
                    choices: template
                        .choices(f)
                        .iter()
                        .map(|c| (c.value.clone(), c.label.text(lang).to_owned()))
                        .collect(),
                }
            })
            .collect();
        Ok(RecordView {
            unsent: stored.has_unsent_changes(),
            id: stored.id,
            template_id: template.id.clone(),
            template_version: template.version,
            title: template.label.text(lang).to_owned(),
            unit_code: stored.unit_code,
            state: doc.state(),
            rejection: stored.rejection,
            fields,
            events: doc.events(),
        })
    }

    /// Sends unsent changes and fetches what is new, in as few round trips as the server allows.
    pub async fn sync(&self) -> Result<SyncReport, DeviceError> {
        let token = self
            .store
            .setting(TOKEN_KEY)
            .await?
            .ok_or(DeviceError::NotLoggedIn)?;
        let mut report = SyncReport::default();
        for _ in 0..MAX_EXCHANGES {
            let outgoing = sync::build_request(&self.store).await?;
            let (response, traffic): (SyncResponse, Traffic) = self
                .transport
                .post(protocol::SYNC_PATH, Some(&token), &outgoing.request)
                .await?;
            report.round_trips += 1;
            report.bytes_up += traffic.bytes_up;
            report.bytes_down += traffic.bytes_down;
            let step =
                sync::apply_response(&self.store, &outgoing, response, &self.actor, now()).await?;
            report.accepted.extend(step.accepted);
            report.rejected.extend(step.rejected);
            report.pulled_records += step.pulled_records;
            report.pulled_templates += step.pulled_templates;
            if !step.more {
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

    async fn open_record(
        &self,
        record_id: &str,
    ) -> Result<(StoredRecord, Template, RecordDoc), DeviceError> {
        let stored = self
            .store
            .record(record_id)
            .await?
            .ok_or_else(|| DeviceError::UnknownRecord(record_id.to_owned()))?;
        let template = self
            .store
            .template(&stored.template_id, Some(stored.template_version))
            .await?
            .ok_or_else(|| DeviceError::UnknownTemplate(stored.template_id.clone()))?;
        let doc = RecordDoc::load(&stored.doc, Some(self.actor.clone()))?;
        Ok((stored, template, doc))
    }

    async fn save(&self, stored: StoredRecord, doc: RecordDoc) -> Result<(), DeviceError> {
        let record = sync::index(doc, stored.rejection, stored.server_heads, now())?;
        self.store.put_record(&record).await?;
        Ok(())
    }
}

fn ensure_editable(doc: &RecordDoc) -> Result<(), DeviceError> {
    match doc.state() {
        WorkflowState::Draft | WorkflowState::Returned | WorkflowState::Reopened => Ok(()),
        state => Err(DeviceError::NotEditable(state.as_str().to_owned())),
    }
}
