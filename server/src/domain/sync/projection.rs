//! A record's projection: identity, values, state and issues, stored beside its document so
//! that lists and reports need not read documents.

use diaban_core::form::{Form, Issue};
use diaban_core::record::{Event, RecordDoc, RecordError, RecordMeta, WorkflowState, heads_to_hex, state_of};
use diaban_core::store::AttachmentRef;
use std::collections::BTreeMap;
use time::Date;

/// What the server stores beside a record's document, computed from the document.
pub struct Projection {
    /// The record's identity (id, template, unit, period…).
    pub meta: RecordMeta,
    pub values_json: String,
    /// Attachments the values refer to.
    pub attachments: Vec<AttachmentRef>,
    pub state: WorkflowState,
    pub heads: Vec<String>,
    pub issues: Vec<Issue>,
}

/// Identity, values (with calculated ones), state, heads and validation issues of a record.
/// Calculations see `today` as the server's clock has it.
pub fn project(doc: &mut RecordDoc, form: &Form, today: Date) -> Result<Projection, RecordError> {
    let meta = doc.meta()?;
    let (values, events) = (doc.values(), doc.events());
    Ok(project_read(doc, form, meta, values, &events, today))
}

/// [`project`], given what was read of the document already: its meta, values and events
/// (reading a document's values walks all of it).
pub(super) fn project_read(
    doc: &mut RecordDoc,
    form: &Form,
    meta: RecordMeta,
    values: BTreeMap<String, serde_json::Value>,
    events: &[Event],
    today: Date,
) -> Projection {
    let mut values: serde_json::Map<String, serde_json::Value> = values.into_iter().collect();
    let evaluation = form.evaluate(&values, &form.env(meta.period.as_deref(), "vi", today), &doc.conflicts());
    values.extend(evaluation.calculated);
    let values = serde_json::Value::Object(values);
    Projection {
        meta,
        attachments: AttachmentRef::find_all(&values),
        values_json: values.to_string(),
        state: state_of(events),
        heads: heads_to_hex(&doc.heads()),
        issues: evaluation.issues,
    }
}
