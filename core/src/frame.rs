//! What no change after a record's creation may rewrite, read with Automerge's object
//! identities, so that a copy is never taken for the original:
//!
//! - the record's **frame**: the root's keys and the objects they hold, and `meta` (id,
//!   template, unit, period, creator) with every value written to it, conflicts included;
//! - its **events log**, entry by entry: each entry's object id names the actor whose change
//!   inserted it, so an event is bound to who appended it, whatever its `by` says.
//!
//! The server compares these before and after a push (`diaban_server::authorize`); the device
//! never needs to.

use automerge::{ObjId, ObjType, ROOT, ReadDoc, Value};
use serde_json::{Value as Json, json};

use crate::record::{Event, RecordDoc, RecordError};

/// One entry of the events log as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct EventEntry {
    /// The entry's Automerge object id (`counter@actor`): the same entry, never a copy.
    pub id: String,
    /// The actor (hex) whose change inserted the entry.
    pub actor: String,
    /// Everything the entry holds, every value written to it included.
    pub content: Json,
    pub event: Event,
}

impl RecordDoc {
    /// The root's keys with what they hold (objects by identity), and `meta` whole.
    pub fn frame(&self) -> Json {
        let doc = self.automerge();
        let root = all_values(doc, &ROOT, |_, _| Json::Null);
        let meta = match doc.get(ROOT, "meta") {
            Ok(Some((Value::Object(_), id))) => deep(doc, &id),
            _ => Json::Null,
        };
        json!({ "root": root, "meta": meta })
    }

    /// The events log entry by entry. An entry that does not read as an event, or a log that
    /// is not one list, is an error: a log the server cannot read is refused, never skipped.
    pub fn event_entries(&self) -> Result<Vec<EventEntry>, RecordError> {
        let doc = self.automerge();
        let unreadable = |why: &str| RecordError::BadChange(format!("the workflow log cannot be read: {why}"));
        let events = match doc.get_all(ROOT, "events").map_err(|e| unreadable(&e.to_string()))?.as_slice() {
            [] => return Ok(Vec::new()),
            [(Value::Object(ObjType::List), id)] => id.clone(),
            _ => return Err(unreadable("it is not one list")),
        };
        let mut entries = Vec::new();
        for i in 0..doc.length(&events) {
            let id = match doc.get_all(&events, i).map_err(|e| unreadable(&e.to_string()))?.as_slice() {
                [(Value::Object(ObjType::Map), id)] => id.clone(),
                _ => return Err(unreadable(&format!("entry {i} is not one map"))),
            };
            let event = self.event_at(&id).ok_or_else(|| unreadable(&format!("entry {i} is not an event")))?;
            let name = id.to_string();
            let actor = name.split_once('@').map(|(_, a)| a.to_owned()).unwrap_or_default();
            entries.push(EventEntry { id: name, actor, content: deep(doc, &id), event });
        }
        Ok(entries)
    }
}

/// Everything an object holds: every key's (or index's) values, conflicts included, objects by
/// identity and content.
fn deep(doc: &automerge::AutoCommit, obj: &ObjId) -> Json {
    all_values(doc, obj, deep)
}

fn all_values(doc: &automerge::AutoCommit, obj: &ObjId, inner: fn(&automerge::AutoCommit, &ObjId) -> Json) -> Json {
    let item = |(value, id): (Value<'_>, ObjId)| match value {
        Value::Scalar(s) => json!({ "value": format!("{s:?}") }),
        Value::Object(t) => json!({ "object": id.to_string(), "type": format!("{t:?}"), "holds": inner(doc, &id) }),
    };
    match doc.object_type(obj) {
        Ok(ObjType::List | ObjType::Text) => Json::Array(
            (0..doc.length(obj))
                .map(|i| Json::Array(doc.get_all(obj, i).unwrap_or_default().into_iter().map(item).collect()))
                .collect(),
        ),
        _ => Json::Object(
            doc.keys(obj)
                .map(|k| {
                    let values = doc.get_all(obj, k.as_str()).unwrap_or_default().into_iter().map(item).collect();
                    (k, Json::Array(values))
                })
                .collect(),
        ),
    }
}
