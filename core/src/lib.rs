//! diaban-core: the engine shared by the phone and the server.
//!
//! - [`template`]: the template format (forms as data: fields, labels, choice lists).
//! - [`form`]: the form engine: publication checks, expressions, render model, validation.
//! - [`frame`]: what no change after a record's creation may rewrite (its frame, its events log), read with object identities and inserting actors.
//! - [`expr`]: CEL glue (values, extra functions).
//! - [`period`]: reporting periods (calendar or 15th-to-14th), bounds and due dates.
//! - [`value`]: typed field values and their JSON form.
//! - [`clock`]: the domain's clock (system or pinned): now, and today's date in Vietnam.
//! - [`crypto`]: encryption at rest (XChaCha20-Poly1305) for the device store.
//! - [`record`]: one record = one Automerge document (meta, fields, events).
//! - [`protocol`]: the HTTP API and sync message types both sides speak.
//! - [`store`]: the device's SQLite store.
//! - [`sync`]: the device side of sync, sans-IO (request in, response out).
//! - [`transport`]: HTTP transport for the device.
//! - [`wire`]: the sync protocol's framing, encoding and compression.
//! - [`workflow`]: the review state machine: which event may follow which state, and who may append it.
//! - [`device`]: the device API the bindings expose to phone apps.
//! - [`progress`]: sync progress reports and cancellation.
//! - [`messages`]: device errors as sentences in Vietnamese and English.
//! - [`search`]: diacritic-insensitive matching of record answers.
//! - [`indicators`]: report figures computed from other templates' records for a period.
//! - [`limits`]: size limits on answers, records, changes, pushes, templates and sign-in input.
//! - [`reminders`]: what falls due in a registry (checks, periods ending).
//! - [`device`]: the device API the bindings expose to phone apps.
//! - [`device_reports`]: the device API for report indicators and registry reminders.
//! - [`glossary`]: Vietnamese domain terms and their English names in code.

pub mod clock;
pub mod crypto;
pub mod db;
pub mod device;
pub mod device_lock;
pub mod device_reports;
pub mod expr;
pub mod form;
pub mod frame;
pub mod glossary;
pub mod indicators;
pub mod limits;
pub mod lock;
pub mod messages;
pub mod period;
pub mod progress;
pub mod protocol;
pub mod record;
pub mod reminders;
pub mod search;
pub mod store;
pub mod sync;
pub mod template;
pub mod tls;
pub mod transport;
pub mod value;
pub mod wire;
pub mod workflow;

pub use clock::Clock;
pub use device::{Device, DeviceError};
pub use form::{Form, PublishError};
pub use record::{RecordDoc, RecordError, WorkflowState};
pub use template::{Role, Template};
pub use value::FieldValue;
