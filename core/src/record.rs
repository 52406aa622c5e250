//! A record is one Automerge document: one propaganda session, one person, one report.
//!
//! Layout of the document root:
//! - `meta`: record id, template id and version, unit code, who created it, when, on which device;
//! - `fields`: answers keyed by field name (scalars; multiple choice as a list of strings);
//! - `events`: the append-only workflow log (submit, return, approve, reopen, comment).
//!
//! The workflow state is derived from `events` ([`RecordDoc::state`]); it is never stored.

use std::collections::BTreeMap;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, Change, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::value::FieldValue;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the record document is damaged or not a record: {0}")]
    Corrupt(String),
    #[error("a change could not be decoded: {0}")]
    BadChange(String),
    #[error("no repeat row {0:?}")]
    UnknownRow(String),
    #[error("{0:?} is not a field path (name, or group/row_id/name)")]
    BadPath(String),
}

/// Where an answer lives: a field name, inside zero or more repeat rows.
/// Written `name`, or `group/row_id/name`, `group/row_id/sub/row_id/name` when nested.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPath {
    pub rows: Vec<(String, String)>,
    pub name: String,
}

impl FieldPath {
    pub fn top(name: &str) -> FieldPath {
        FieldPath { rows: Vec::new(), name: name.to_owned() }
    }

    pub fn parse(text: &str) -> Result<FieldPath, RecordError> {
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len().is_multiple_of(2) || parts.iter().any(|p| p.is_empty()) {
            return Err(RecordError::BadPath(text.to_owned()));
        }
        let rows = parts.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0].to_owned(), c[1].to_owned())).collect();
        Ok(FieldPath { rows, name: parts[parts.len() - 1].to_owned() })
    }

    /// The repeat groups enclosing the field, outermost first.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().map(|(g, _)| g.as_str())
    }
}

impl From<automerge::AutomergeError> for RecordError {
    fn from(e: automerge::AutomergeError) -> Self {
        RecordError::Corrupt(e.to_string())
    }
}

/// The text entries of a record's meta map.
const META_TEXTS: [&str; 6] = ["record_id", "template_id", "unit_code", "created_by", "device_id", "period"];

/// What a record is, fixed when it is created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordMeta {
    pub record_id: String,
    pub template_id: String,
    pub template_version: u32,
    pub unit_code: String,
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    pub device_id: String,
    /// For periodic reports: the period key, e.g. `2026-11` or `2026-Q4`.
    pub period: Option<String>,
}

/// Where a record is in review. Derived from the events log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowState {
    Draft,
    Submitted,
    /// The commune lead has signed it off; it waits for the province.
    SignedOff,
    Returned,
    Approved,
    Reopened,
}

impl WorkflowState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowState::Draft => "draft",
            WorkflowState::Submitted => "submitted",
            WorkflowState::SignedOff => "signed_off",
            WorkflowState::Returned => "returned",
            WorkflowState::Approved => "approved",
            WorkflowState::Reopened => "reopened",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Submit,
    /// The commune lead signs off a submission (first review level).
    SignOff,
    Return,
    Approve,
    Reopen,
    Comment,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Submit => "submit",
            EventKind::SignOff => "sign_off",
            EventKind::Return => "return",
            EventKind::Approve => "approve",
            EventKind::Reopen => "reopen",
            EventKind::Comment => "comment",
        }
    }

    fn parse(s: &str) -> Option<EventKind> {
        [
            EventKind::Submit,
            EventKind::SignOff,
            EventKind::Return,
            EventKind::Approve,
            EventKind::Reopen,
            EventKind::Comment,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One entry of the workflow log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub by: String,
    /// Unix seconds.
    pub at: i64,
    pub comment: Option<String>,
    /// The document heads (hex) the event refers to: what was submitted or reviewed.
    pub heads: Vec<String>,
}

/// Who writes: recorded in every change's message, so history and conflicts can say who,
/// from which device. (The change's actor is the device's Automerge actor.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Author {
    pub user: String,
    pub device: String,
}

/// Who made a change, from which device, when (Unix seconds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeInfo {
    pub by: Option<String>,
    pub device: Option<String>,
    pub at: i64,
}

impl ChangeInfo {
    fn of(change: &Change) -> ChangeInfo {
        let author = change.message().and_then(|m| serde_json::from_str::<Author>(m).ok());
        ChangeInfo {
            by: author.as_ref().map(|a| a.user.clone()),
            device: author.map(|a| a.device),
            at: change.timestamp(),
        }
    }
}

/// One of several values a field holds after concurrent edits.
#[derive(Clone, Debug, PartialEq)]
pub struct ConflictValue {
    pub value: Json,
    pub info: ChangeInfo,
}

/// One change of a field's value.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    pub info: ChangeInfo,
    pub old: Option<Json>,
    pub new: Option<Json>,
}

/// A record document with typed accessors.
pub struct RecordDoc {
    doc: AutoCommit,
    author: Option<Author>,
    /// Heads of the bytes last loaded or saved: an incremental save holds what came after.
    saved: Vec<ChangeHash>,
}

impl RecordDoc {
    /// Starts a new record. `actor` identifies the device that writes it.
    pub fn create(meta: &RecordMeta, actor: ActorId) -> Result<RecordDoc, RecordError> {
        let mut doc = AutoCommit::new().with_actor(actor);
        let m = doc.put_object(ROOT, "meta", ObjType::Map)?;
        doc.put(&m, "record_id", meta.record_id.as_str())?;
        doc.put(&m, "template_id", meta.template_id.as_str())?;
        doc.put(&m, "template_version", meta.template_version as i64)?;
        doc.put(&m, "unit_code", meta.unit_code.as_str())?;
        doc.put(&m, "created_by", meta.created_by.as_str())?;
        doc.put(&m, "created_at", ScalarValue::Timestamp(meta.created_at * 1000))?;
        doc.put(&m, "device_id", meta.device_id.as_str())?;
        if let Some(period) = &meta.period {
            doc.put(&m, "period", period.as_str())?;
        }
        doc.put_object(ROOT, "fields", ObjType::Map)?;
        doc.put_object(ROOT, "attachments", ObjType::Map)?;
        doc.put_object(ROOT, "events", ObjType::List)?;
        let author = Author { user: meta.created_by.clone(), device: meta.device_id.clone() };
        doc.commit_with(CommitOptions::default().with_time(meta.created_at).with_message(author_message(&author)));
        Ok(RecordDoc { doc, author: Some(author), saved: Vec::new() })
    }

    /// Loads a saved document. Pass the local actor to edit it, or `None` to only read and merge.
    pub fn load(bytes: &[u8], actor: Option<ActorId>) -> Result<RecordDoc, RecordError> {
        let mut doc = AutoCommit::load(bytes).map_err(|e| RecordError::Corrupt(e.to_string()))?;
        if let Some(actor) = actor {
            doc.set_actor(actor);
        }
        let saved = doc.get_heads();
        let record = RecordDoc { doc, author: None, saved };
        record.meta()?;
        Ok(record)
    }

    /// An empty document, to which a peer's changes (starting with its create change) are applied.
    pub fn empty() -> RecordDoc {
        RecordDoc { doc: AutoCommit::new(), author: None, saved: Vec::new() }
    }

    /// The whole document (compacted, with its full history).
    pub fn save(&mut self) -> Vec<u8> {
        let bytes = self.doc.save();
        self.saved = self.doc.get_heads();
        bytes
    }

    /// The changes since the last save or load, as a chunk to append after the saved bytes.
    pub fn save_incremental(&mut self) -> Vec<u8> {
        let bytes = self.doc.save_after(&self.saved);
        self.saved = self.doc.get_heads();
        bytes
    }

    pub fn meta(&self) -> Result<RecordMeta, RecordError> {
        use automerge::{ScalarValueRef, ValueRef};
        let m = self.map(&ROOT, "meta")?;
        // One pass over the map (a sync checks every pushed record's meta): a lookup per key
        // would seek through the document eight times.
        let mut texts: BTreeMap<&str, String> = BTreeMap::new();
        let (mut version, mut created_at) = (None, None);
        for item in self.doc.map_range(&m, ..) {
            match (item.key.as_ref(), item.value) {
                ("template_version", ValueRef::Scalar(ScalarValueRef::Int(v))) if v > 0 && v <= u32::MAX as i64 => {
                    version = Some(v as u32)
                }
                ("created_at", ValueRef::Scalar(ScalarValueRef::Timestamp(ms))) => created_at = Some(ms / 1000),
                (key, ValueRef::Scalar(ScalarValueRef::Str(s))) => {
                    if let Some(key) = META_TEXTS.iter().find(|k| **k == key) {
                        texts.insert(key, s.into_owned());
                    }
                }
                _ => {}
            }
        }
        let mut text =
            |key: &str| texts.remove(key).ok_or_else(|| RecordError::Corrupt(format!("meta.{key} is missing")));
        Ok(RecordMeta {
            record_id: text("record_id")?,
            template_id: text("template_id")?,
            template_version: version.ok_or_else(|| RecordError::Corrupt("meta.template_version is missing".into()))?,
            unit_code: text("unit_code")?,
            created_by: text("created_by")?,
            created_at: created_at.ok_or_else(|| RecordError::Corrupt("meta.created_at is missing".into()))?,
            device_id: text("device_id")?,
            period: text("period").ok(),
        })
    }

    /// Writes one answer. Writing the value a field already has creates no change.
    pub fn set_field(&mut self, path: &FieldPath, value: &FieldValue, now: i64) -> Result<(), RecordError> {
        let container = self.container(path)?;
        let json = value.to_json();
        // The same value again is no change, unless it settles a conflict.
        let settled = self.doc.get_all(&container, path.name.as_str())?.len() <= 1;
        if settled && self.json_at(&container, &path.name).as_ref() == Some(&json) {
            return Ok(());
        }
        match &json {
            Json::Array(_) | Json::Object(_) => {
                let obj_type = if json.is_array() { ObjType::List } else { ObjType::Map };
                let obj = self.doc.put_object(&container, path.name.as_str(), obj_type)?;
                self.write_json(&obj, &json)?;
            }
            _ => self.doc.put(&container, path.name.as_str(), json_scalar(&json))?,
        }
        self.commit(now, "edit");
        Ok(())
    }

    /// Removes an answer.
    pub fn clear_field(&mut self, path: &FieldPath, now: i64) -> Result<(), RecordError> {
        let container = self.container(path)?;
        if self.doc.get(&container, path.name.as_str())?.is_some() {
            self.doc.delete(&container, path.name.as_str())?;
            self.commit(now, "edit");
        }
        Ok(())
    }

    /// Appends a row to a repeat group and returns its stable id. `path.name` is the group;
    /// `path.rows` locate the enclosing row for nested groups.
    pub fn add_row(&mut self, path: &FieldPath, now: i64) -> Result<String, RecordError> {
        let container = self.container(path)?;
        let list = match self.doc.get(&container, path.name.as_str())? {
            Some((Value::Object(ObjType::List), id)) => id,
            _ => self.doc.put_object(&container, path.name.as_str(), ObjType::List)?,
        };
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let at = self.doc.length(&list);
        let row = self.doc.insert_object(&list, at, ObjType::Map)?;
        self.doc.put(&row, "_id", id.as_str())?;
        self.commit(now, "add row");
        Ok(id)
    }

    /// Removes the row `row_id` of the group `path.name`.
    pub fn remove_row(&mut self, path: &FieldPath, row_id: &str, now: i64) -> Result<(), RecordError> {
        let container = self.container(path)?;
        let list = self.list(&container, &path.name)?;
        let index = self.row_index(&list, row_id).ok_or_else(|| RecordError::UnknownRow(row_id.to_owned()))?;
        self.doc.delete(&list, index)?;
        self.commit(now, "remove row");
        Ok(())
    }

    /// The current answers as JSON, keyed by field name; repeat groups are arrays of row
    /// objects, each with its `_id`.
    pub fn values(&self) -> BTreeMap<String, Json> {
        let Ok(fields) = self.map(&ROOT, "fields") else {
            return BTreeMap::new();
        };
        match self.to_json(&fields, None) {
            Json::Object(map) => map.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    }

    /// Answers that concurrent edits left with several values, by field path
    /// (`name` or `group/row_id/name`), each with who wrote it, when, from which device.
    /// Automerge keeps them all; a person settles them by writing the field again.
    pub fn conflicts(&mut self) -> BTreeMap<String, Vec<ConflictValue>> {
        let mut raw = Vec::new();
        if let Ok(fields) = self.map(&ROOT, "fields") {
            self.collect_conflicts(&fields, "", &mut raw);
        }
        if raw.is_empty() {
            return BTreeMap::new();
        }
        let changes = self.doc.get_changes(&[]);
        let info_of = |op: &ObjId| -> ChangeInfo {
            let unknown = ChangeInfo { by: None, device: None, at: 0 };
            let ObjId::Id(counter, actor, _) = op else { return unknown };
            changes
                .iter()
                .find(|c| c.actor_id() == actor && c.start_op().get() <= *counter && *counter <= c.max_op())
                .map(ChangeInfo::of)
                .unwrap_or(unknown)
        };
        let mut out: BTreeMap<String, Vec<ConflictValue>> = BTreeMap::new();
        for (path, value, op) in raw {
            out.entry(path).or_default().push(ConflictValue { value, info: info_of(&op) });
        }
        out
    }

    fn collect_conflicts(&self, map: &ObjId, prefix: &str, out: &mut Vec<(String, Json, ObjId)>) {
        for key in self.doc.keys(map) {
            let path = format!("{prefix}{key}");
            let all = self.doc.get_all(map, key.as_str()).unwrap_or_default();
            if all.len() > 1 {
                for (v, id) in &all {
                    let value = match v {
                        Value::Scalar(s) => scalar_to_json(s).unwrap_or(Json::Null),
                        Value::Object(_) => self.to_json(id, None),
                    };
                    out.push((path.clone(), value, id.clone()));
                }
            }
            if let Ok(Some((Value::Object(ObjType::List), list))) = self.doc.get(map, key.as_str()) {
                for i in 0..self.doc.length(&list) {
                    if let Ok(Some((Value::Object(ObjType::Map), row))) = self.doc.get(&list, i) {
                        let id = match self.scalar(&row, "_id") {
                            Ok(Some(ScalarValue::Str(id))) => id.to_string(),
                            _ => continue,
                        };
                        self.collect_conflicts(&row, &format!("{path}/{id}/"), out);
                    }
                }
            }
        }
    }

    /// Every change of one field's value, oldest first: who, when, from which device, and
    /// the value before and after. Read from the document's own change history.
    pub fn history(&mut self, path: &FieldPath) -> Result<Vec<HistoryEntry>, RecordError> {
        let container = self.container(path)?;
        let mut entries = Vec::new();
        for change in self.doc.get_changes(&[]) {
            let old = self.value_at(&container, &path.name, change.deps());
            let new = self.value_at(&container, &path.name, &[change.hash()]);
            if old != new {
                entries.push(HistoryEntry { info: ChangeInfo::of(&change), old, new });
            }
        }
        Ok(entries)
    }

    fn value_at(&self, obj: &ObjId, key: &str, heads: &[ChangeHash]) -> Option<Json> {
        match self.doc.get_at(obj, key, heads).ok()?? {
            (Value::Scalar(s), _) => scalar_to_json(&s),
            (Value::Object(_), id) => Some(self.to_json(&id, Some(heads))),
        }
    }

    /// Adds to a tally (a `counter` field). Concurrent additions from several phones add up.
    pub fn increment(&mut self, path: &FieldPath, by: i64, now: i64) -> Result<(), RecordError> {
        let container = self.container(path)?;
        match self.doc.get(&container, path.name.as_str())? {
            Some((Value::Scalar(s), _)) if matches!(s.as_ref(), ScalarValue::Counter(_)) => {}
            _ => self.doc.put(&container, path.name.as_str(), ScalarValue::counter(0))?,
        }
        self.doc.increment(&container, path.name.as_str(), by)?;
        self.commit(now, "increment");
        Ok(())
    }

    /// Creates a record's (or a new row's) tallies at zero and repeat groups empty, once,
    /// where the record or row is created. Every phone then adds to the same counter and
    /// inserts into the same list; two phones creating them concurrently would each get their
    /// own, and one would hide the other.
    pub fn prepare(
        &mut self,
        path: &FieldPath,
        counters: &[&str],
        groups: &[&str],
        now: i64,
    ) -> Result<(), RecordError> {
        let container = self.container(path)?;
        for name in counters {
            self.doc.put(&container, *name, ScalarValue::counter(0))?;
        }
        for name in groups {
            self.doc.put_object(&container, *name, ObjType::List)?;
        }
        if !counters.is_empty() || !groups.is_empty() {
            self.commit(now, "prepare");
        }
        Ok(())
    }

    /// The map that holds `path.name`: the record's fields, or a repeat row.
    fn container(&self, path: &FieldPath) -> Result<ObjId, RecordError> {
        let mut map = self.map(&ROOT, "fields")?;
        for (group, row_id) in &path.rows {
            let list = self.list(&map, group).map_err(|_| RecordError::UnknownRow(row_id.clone()))?;
            let index = self.row_index(&list, row_id).ok_or_else(|| RecordError::UnknownRow(row_id.clone()))?;
            map = match self.doc.get(&list, index)? {
                Some((Value::Object(ObjType::Map), row)) => row,
                _ => return Err(RecordError::UnknownRow(row_id.clone())),
            };
        }
        Ok(map)
    }

    fn row_index(&self, list: &ObjId, row_id: &str) -> Option<usize> {
        (0..self.doc.length(list)).find(|i| {
            matches!(self.doc.get(list, *i), Ok(Some((Value::Object(ObjType::Map), row)))
                if matches!(self.scalar(&row, "_id"), Ok(Some(ScalarValue::Str(id))) if id == row_id))
        })
    }

    fn write_json(&mut self, obj: &ObjId, json: &Json) -> Result<(), RecordError> {
        match json {
            Json::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Json::Array(_) | Json::Object(_) => {
                            let t = if item.is_array() { ObjType::List } else { ObjType::Map };
                            let child = self.doc.insert_object(obj, i, t)?;
                            self.write_json(&child, item)?;
                        }
                        _ => self.doc.insert(obj, i, json_scalar(item))?,
                    }
                }
            }
            Json::Object(map) => {
                for (k, v) in map {
                    match v {
                        Json::Array(_) | Json::Object(_) => {
                            let t = if v.is_array() { ObjType::List } else { ObjType::Map };
                            let child = self.doc.put_object(obj, k.as_str(), t)?;
                            self.write_json(&child, v)?;
                        }
                        _ => self.doc.put(obj, k.as_str(), json_scalar(v))?,
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// An Automerge object as JSON (maps to objects, lists to arrays), now or at `heads`.
    fn to_json(&self, obj: &ObjId, heads: Option<&[ChangeHash]>) -> Json {
        // One pass over a map or list (a lookup per key or index would seek through it again
        // each time); an object's id is built only for objects.
        let is_object = |value: &automerge::ValueRef<'_>| matches!(value, automerge::ValueRef::Object(_));
        let value = |value: automerge::ValueRef<'_>, id: Option<ObjId>| match (Value::from(value), id) {
            (Value::Object(_), Some(id)) => Some(self.to_json(&id, heads)),
            (Value::Scalar(s), _) => scalar_to_json(&s),
            (Value::Object(_), None) => None,
        };
        match self.doc.object_type(obj) {
            Ok(ObjType::Map) => {
                let entry = |e: automerge::iter::MapRangeItem<'_>| {
                    let id = is_object(&e.value).then(|| e.id());
                    Some((e.key.to_string(), value(e.value, id)?))
                };
                Json::Object(match heads {
                    Some(h) => self.doc.map_range_at(obj, .., h).filter_map(entry).collect(),
                    None => self.doc.map_range(obj, ..).filter_map(entry).collect(),
                })
            }
            Ok(ObjType::List) => {
                let entry = |e: automerge::iter::ListRangeItem<'_>| {
                    let id = is_object(&e.value).then(|| e.id());
                    value(e.value, id)
                };
                Json::Array(match heads {
                    Some(h) => self.doc.list_range_at(obj, .., h).filter_map(entry).collect(),
                    None => self.doc.list_range(obj, ..).filter_map(entry).collect(),
                })
            }
            _ => Json::Null,
        }
    }

    /// Appends a workflow event referring to the current heads.
    pub fn append_event(
        &mut self,
        kind: EventKind,
        by: &str,
        comment: Option<&str>,
        now: i64,
    ) -> Result<(), RecordError> {
        let heads = heads_to_hex(&self.heads());
        let events = self.list(&ROOT, "events")?;
        let at = self.doc.length(&events);
        let e = self.doc.insert_object(&events, at, ObjType::Map)?;
        self.doc.put(&e, "kind", kind.as_str())?;
        self.doc.put(&e, "by", by)?;
        self.doc.put(&e, "at", ScalarValue::Timestamp(now * 1000))?;
        if let Some(comment) = comment {
            self.doc.put(&e, "comment", comment)?;
        }
        let h = self.doc.put_object(&e, "heads", ObjType::List)?;
        for (i, head) in heads.iter().enumerate() {
            self.doc.insert(&h, i, head.as_str())?;
        }
        self.commit(now, kind.as_str());
        Ok(())
    }

    /// The workflow log in document order. Entries that cannot be read are skipped here (the
    /// server refuses any push that leaves one: [`RecordDoc::event_entries`]).
    pub fn events(&self) -> Vec<Event> {
        let Ok(events) = self.list(&ROOT, "events") else {
            return Vec::new();
        };
        (0..self.doc.length(&events))
            .filter_map(|i| {
                let (_, e) = self.doc.get(&events, i).ok()??;
                self.event_at(&e)
            })
            .collect()
    }

    /// The event an entry of the log reads as, if it reads as one.
    pub(crate) fn event_at(&self, e: &ObjId) -> Option<Event> {
        let str_at = |key: &str| match self.scalar(e, key) {
            Ok(Some(ScalarValue::Str(s))) => Some(s.to_string()),
            _ => None,
        };
        let at = match self.scalar(e, "at") {
            Ok(Some(ScalarValue::Timestamp(ms))) => ms / 1000,
            _ => return None,
        };
        let heads = match self.json_at(e, "heads") {
            Some(Json::Array(hs)) => hs.iter().filter_map(|h| h.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        };
        Some(Event {
            kind: EventKind::parse(&str_at("kind")?)?,
            by: str_at("by")?,
            at,
            comment: str_at("comment"),
            heads,
        })
    }

    /// The underlying Automerge document, to read.
    pub(crate) fn automerge(&self) -> &AutoCommit {
        &self.doc
    }

    /// The workflow state: the last state-changing event decides; comments do not.
    pub fn state(&self) -> WorkflowState {
        state_of(&self.events())
    }

    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The encoded changes that a peer which has `have` lacks.
    pub fn changes_since(&mut self, have: &[ChangeHash]) -> Vec<Vec<u8>> {
        self.doc.get_changes(have).into_iter().map(|c| c.raw_bytes().to_vec()).collect()
    }

    /// The changes a peer which has `have` lacks, as one bundle: Automerge's columnar
    /// encoding of a set of changes, far smaller than the changes one by one (no repeated
    /// actor ids, dependency hashes or messages). Empty when the peer lacks nothing.
    pub fn bundle_since(&mut self, have: &[ChangeHash]) -> Result<Vec<u8>, RecordError> {
        let hashes: Vec<ChangeHash> = self.doc.get_changes(have).iter().map(|c| c.hash()).collect();
        self.bundle(hashes)
    }

    /// An independent copy (to try changes on without touching this document).
    pub fn clone_doc(&self) -> RecordDoc {
        RecordDoc { doc: self.doc.clone(), author: self.author.clone(), saved: self.saved.clone() }
    }

    /// The changes with these hashes, as one bundle; empty for none.
    pub fn bundle(&mut self, hashes: Vec<ChangeHash>) -> Result<Vec<u8>, RecordError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.doc.document().bundle(hashes)?.bytes().to_vec())
    }

    /// Every change's hash and author (actor), in causal order.
    pub fn change_actors(&mut self) -> Vec<(ChangeHash, ActorId)> {
        self.doc.get_changes(&[]).iter().map(|c| (c.hash(), c.actor_id().clone())).collect()
    }

    /// The changes in a bundle made by [`RecordDoc::bundle_since`], without applying them.
    /// Bytes from outside: Automerge 0.12 panics on some malformed bundles (found by the
    /// fuzzer, `tests/fuzz`); that is caught and refused like any other bad change.
    pub fn decode_bundle(bytes: &[u8]) -> Result<Vec<Change>, RecordError> {
        if bytes.is_empty() {
            return Ok(Vec::new());
        }
        let decode = || {
            let bundle = automerge::Bundle::try_from(bytes).map_err(|e| RecordError::BadChange(e.to_string()))?;
            bundle.to_changes().map_err(|e| RecordError::BadChange(e.to_string()))
        };
        std::panic::catch_unwind(decode)
            .unwrap_or_else(|_| Err(RecordError::BadChange("the changes cannot be decoded".into())))
    }

    /// Every change (in causal order) with its direct dependencies.
    pub fn dependencies(&mut self) -> Vec<(ChangeHash, Vec<ChangeHash>)> {
        self.doc.get_changes(&[]).iter().map(|c| (c.hash(), c.deps().to_vec())).collect()
    }

    /// Decodes changes received from a peer, without applying them.
    pub fn decode_changes(encoded: &[Vec<u8>]) -> Result<Vec<Change>, RecordError> {
        encoded
            .iter()
            .map(|bytes| Change::from_bytes(bytes.clone()).map_err(|e| RecordError::BadChange(e.to_string())))
            .collect()
    }

    /// Applies decoded changes in one batch. Changes already present are ignored.
    /// A panic inside Automerge on a malformed change is caught and returned as an error;
    /// the document is then in no known state, and the caller discards it (every caller does:
    /// the server refuses the push, the device fails the sync step).
    pub fn apply_changes(&mut self, changes: Vec<Change>) -> Result<(), RecordError> {
        let doc = std::panic::AssertUnwindSafe(&mut self.doc);
        match std::panic::catch_unwind(move || { doc }.0.apply_changes_batch(changes)) {
            Ok(applied) => Ok(applied?),
            Err(_) => Err(RecordError::BadChange("the changes cannot be applied".into())),
        }
    }

    /// Of `heads`, those this document does not hold (with any changes still waiting for
    /// their dependencies).
    pub fn missing_deps(&mut self, heads: &[ChangeHash]) -> Vec<ChangeHash> {
        self.doc.get_missing_deps(heads)
    }

    /// Merges a peer's saved document into this one.
    pub fn merge_saved(&mut self, bytes: &[u8]) -> Result<(), RecordError> {
        self.doc.load_incremental(bytes)?;
        Ok(())
    }

    /// Names who writes the following changes.
    pub fn set_author(&mut self, author: Author) {
        self.author = Some(author);
    }

    fn commit(&mut self, now: i64, _what: &str) {
        let mut options = CommitOptions::default().with_time(now);
        if let Some(author) = &self.author {
            options = options.with_message(author_message(author));
        }
        self.doc.commit_with(options);
    }

    fn map(&self, parent: &ObjId, key: &str) -> Result<ObjId, RecordError> {
        match self.doc.get(parent, key)? {
            Some((Value::Object(ObjType::Map), id)) => Ok(id),
            other => Err(RecordError::Corrupt(format!("{key} is not a map: {other:?}"))),
        }
    }

    fn list(&self, parent: &ObjId, key: &str) -> Result<ObjId, RecordError> {
        match self.doc.get(parent, key)? {
            Some((Value::Object(ObjType::List), id)) => Ok(id),
            other => Err(RecordError::Corrupt(format!("{key} is not a list: {other:?}"))),
        }
    }

    fn scalar(&self, obj: &ObjId, key: &str) -> Result<Option<ScalarValue>, RecordError> {
        Ok(match self.doc.get(obj, key)? {
            Some((Value::Scalar(s), _)) => Some(s.into_owned()),
            _ => None,
        })
    }

    fn json_at(&self, obj: &ObjId, key: &str) -> Option<Json> {
        match self.doc.get(obj, key).ok()?? {
            (Value::Scalar(s), _) => scalar_to_json(&s),
            (Value::Object(_), id) => Some(self.to_json(&id, None)),
        }
    }
}

fn author_message(author: &Author) -> String {
    serde_json::to_string(author).unwrap_or_default()
}

fn json_scalar(json: &Json) -> ScalarValue {
    match json {
        Json::Bool(b) => ScalarValue::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => ScalarValue::Int(i),
            None => ScalarValue::F64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => ScalarValue::Str(s.as_str().into()),
        _ => ScalarValue::Null,
    }
}

fn scalar_to_json(s: &ScalarValue) -> Option<Json> {
    Some(match s {
        ScalarValue::Str(s) => Json::from(s.as_str()),
        ScalarValue::Int(i) => Json::from(*i),
        ScalarValue::Uint(u) => Json::from(*u),
        ScalarValue::F64(f) => Json::from(*f),
        ScalarValue::Boolean(b) => Json::from(*b),
        ScalarValue::Counter(c) => Json::from(i64::from(c)),
        ScalarValue::Timestamp(ms) => Json::from(*ms),
        ScalarValue::Null => Json::Null,
        ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } => return None,
    })
}

pub fn heads_to_hex(heads: &[ChangeHash]) -> Vec<String> {
    heads.iter().map(ToString::to_string).collect()
}

pub fn heads_from_hex(hex: &[String]) -> Result<Vec<ChangeHash>, RecordError> {
    hex.iter().map(|h| h.parse().map_err(|_| RecordError::Corrupt(format!("bad change hash {h:?}")))).collect()
}

/// The workflow state a list of events (oldest first) leaves a record in.
pub fn state_of(events: &[Event]) -> WorkflowState {
    events.iter().fold(WorkflowState::Draft, |state, e| crate::workflow::follow(state, e.kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> RecordMeta {
        RecordMeta {
            record_id: "r1".into(),
            template_id: "propaganda_session".into(),
            template_version: 1,
            unit_code: "00004".into(),
            created_by: "canbo".into(),
            created_at: 1_763_769_600,
            device_id: "d1".into(),
            period: None,
        }
    }

    #[test]
    fn a_bundle_carries_exactly_the_missing_changes_far_smaller_than_one_by_one() {
        let mut doc = RecordDoc::create(&meta(), ActorId::random()).unwrap();
        doc.set_author(Author {
            user: "canbo.muonggion".into(),
            device: "3f2a9c4e-1b7d-4e8a-9c61-0d5b2e7f8a13".into(),
        });
        let have = doc.heads();
        for i in 0..10 {
            doc.set_field(&FieldPath::top("participants"), &FieldValue::Integer(40 + i), 100 + i).unwrap();
        }
        let bundle = doc.bundle_since(&have).unwrap();
        let one_by_one: usize = doc.changes_since(&have).iter().map(Vec::len).sum();
        let changes = RecordDoc::decode_bundle(&bundle).unwrap();
        let expected: Vec<ChangeHash> = doc.doc.get_changes(&have).iter().map(|c| c.hash()).collect();
        assert_eq!(changes.iter().map(|c| c.hash()).collect::<Vec<_>>(), expected);
        eprintln!("bundle of 10 changes: {} bytes; one by one: {one_by_one}", bundle.len());
        assert!(bundle.len() * 3 < one_by_one, "bundle {} bytes vs {one_by_one} one by one", bundle.len());
        let now = doc.heads();
        assert!(doc.bundle_since(&now).unwrap().is_empty());
    }

    #[test]
    fn a_saved_record_loads_with_its_meta_values_and_events() {
        let mut doc = RecordDoc::create(&meta(), ActorId::random()).unwrap();
        doc.set_field(&FieldPath::top("place"), &FieldValue::Text("Nhà văn hoá thôn Bản Phủ".into()), 10).unwrap();
        doc.set_field(&FieldPath::top("participants"), &FieldValue::Integer(42), 11).unwrap();
        doc.set_field(&FieldPath::top("audience"), &FieldValue::Choices(vec!["youth".into(), "students".into()]), 12)
            .unwrap();
        doc.append_event(EventKind::Submit, "canbo", None, 13).unwrap();
        let bytes = doc.save();

        let loaded = RecordDoc::load(&bytes, None).unwrap();
        assert_eq!(loaded.meta().unwrap(), meta());
        let values = loaded.values();
        assert_eq!(values["place"], Json::from("Nhà văn hoá thôn Bản Phủ"));
        assert_eq!(values["participants"], Json::from(42));
        assert_eq!(values["audience"], serde_json::json!(["youth", "students"]));
        assert_eq!(loaded.state(), WorkflowState::Submitted);
        assert_eq!(loaded.events()[0].at, 13);
    }

    #[test]
    fn changes_since_the_peers_heads_bring_the_peer_up_to_date() {
        let mut a = RecordDoc::create(&meta(), ActorId::random()).unwrap();
        let mut b = RecordDoc::empty();
        b.apply_changes(RecordDoc::decode_changes(&a.changes_since(&[])).unwrap()).unwrap();
        let synced = b.heads();
        a.set_field(&FieldPath::top("participants"), &FieldValue::Integer(7), 20).unwrap();
        let delta = a.changes_since(&synced);
        assert_eq!(delta.len(), 1, "only the new edit travels");
        b.apply_changes(RecordDoc::decode_changes(&delta).unwrap()).unwrap();
        assert_eq!(b.values()["participants"], Json::from(7));
        assert_eq!(a.heads(), b.heads());
    }

    #[test]
    fn the_state_follows_the_last_workflow_event_and_ignores_comments() {
        let mut doc = RecordDoc::create(&meta(), ActorId::random()).unwrap();
        assert_eq!(doc.state(), WorkflowState::Draft);
        doc.append_event(EventKind::Submit, "canbo", None, 1).unwrap();
        doc.append_event(EventKind::Return, "tinh", Some("Thiếu số người"), 2).unwrap();
        doc.append_event(EventKind::Comment, "canbo", Some("Đã sửa"), 3).unwrap();
        assert_eq!(doc.state(), WorkflowState::Returned);
        assert_eq!(doc.events()[1].comment.as_deref(), Some("Thiếu số người"));
    }

    #[test]
    fn garbage_bytes_are_a_corrupt_error_not_a_panic() {
        assert!(matches!(RecordDoc::load(b"not automerge", None), Err(RecordError::Corrupt(_))));
        assert!(matches!(RecordDoc::decode_changes(&[vec![1, 2, 3]]), Err(RecordError::BadChange(_))));
    }

    #[test]
    fn repeat_rows_have_stable_ids_and_nest() {
        let mut doc = RecordDoc::create(&meta(), ActorId::random()).unwrap();
        let group = FieldPath::top("finds");
        let first = doc.add_row(&group, 1).unwrap();
        let second = doc.add_row(&group, 2).unwrap();
        let at = |row: &str, name: &str| FieldPath { rows: vec![("finds".into(), row.into())], name: name.into() };
        doc.set_field(&at(&first, "plants"), &FieldValue::Integer(120), 3).unwrap();
        doc.set_field(&at(&second, "plants"), &FieldValue::Integer(30), 4).unwrap();
        let witnesses = at(&second, "witnesses");
        let w = doc.add_row(&witnesses, 5).unwrap();
        let name = FieldPath {
            rows: vec![("finds".into(), second.clone()), ("witnesses".into(), w.clone())],
            name: "name".into(),
        };
        doc.set_field(&name, &FieldValue::Text("Lò Văn A".into()), 6).unwrap();
        doc.remove_row(&group, &first, 7).unwrap();
        let values = doc.values();
        assert_eq!(
            values["finds"],
            serde_json::json!([{"_id": second, "plants": 30, "witnesses": [{"_id": w, "name": "Lò Văn A"}]}])
        );
        assert!(matches!(
            doc.set_field(&at(&first, "plants"), &FieldValue::Integer(1), 8),
            Err(RecordError::UnknownRow(_))
        ));
        assert_eq!(FieldPath::parse(&format!("finds/{second}/witnesses/{w}/name")).unwrap(), name);
        assert!(FieldPath::parse("finds/abc").is_err());
    }

    #[test]
    fn concurrent_edits_of_one_field_are_kept_as_a_conflict() {
        let mut a = RecordDoc::create(&meta(), ActorId::random()).unwrap();
        let mut b = RecordDoc::load(&a.save(), Some(ActorId::random())).unwrap();
        a.set_field(&FieldPath::top("participants"), &FieldValue::Integer(40), 1).unwrap();
        b.set_field(&FieldPath::top("participants"), &FieldValue::Integer(45), 1).unwrap();
        a.merge_saved(&b.save()).unwrap();
        let mut kept: Vec<Json> = a.conflicts().remove("participants").unwrap().into_iter().map(|c| c.value).collect();
        kept.sort_by_key(|v| v.as_i64());
        assert_eq!(kept, vec![Json::from(40), Json::from(45)]);
    }

    #[test]
    fn after_a_load_an_incremental_save_holds_only_the_new_changes() {
        let mut doc = RecordDoc::create(&meta(), ActorId::random()).unwrap();
        for i in 0..50 {
            doc.set_field(&FieldPath::top("participants"), &FieldValue::Integer(i), i).unwrap();
        }
        let snapshot = doc.save();
        let mut loaded = RecordDoc::load(&snapshot, Some(ActorId::random())).unwrap();
        loaded.set_field(&FieldPath::top("place"), &FieldValue::Text("Bản Nà Sản".into()), 99).unwrap();
        let chunk = loaded.save_incremental();
        assert!(
            chunk.len() < 200 && chunk.len() * 3 < snapshot.len(),
            "chunk {} vs snapshot {}",
            chunk.len(),
            snapshot.len()
        );
        let mut whole = snapshot.clone();
        whole.extend(&chunk);
        let reloaded = RecordDoc::load(&whole, None).unwrap();
        assert_eq!(reloaded.values()["place"], Json::from("Bản Nà Sản"));
        assert_eq!(reloaded.values()["participants"], Json::from(49));
    }
}
