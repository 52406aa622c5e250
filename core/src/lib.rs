//! diaban-core: the engine shared by the phone and the server.
//!
//! - [`template`]: forms as data (fields, labels, choice lists) and value checks.
//! - [`value`]: typed field values and their mapping to Automerge and JSON.
//! - [`record`]: one record = one Automerge document (meta, fields, events).
//! - [`protocol`]: the HTTP API and sync message types both sides speak.
//! - [`store`]: the device's SQLite store.
//! - [`sync`]: the device side of sync, sans-IO (request in, response out).
//! - [`transport`]: HTTP transport for the device.
//! - [`device`]: the device API the bindings expose to phone apps.
//! - [`glossary`]: Vietnamese domain terms and their English names in code.

pub mod db;
pub mod device;
pub mod glossary;
pub mod protocol;
pub mod record;
pub mod store;
pub mod sync;
pub mod template;
pub mod transport;
pub mod value;

pub use device::{Device, DeviceError};
pub use record::{RecordDoc, RecordError, WorkflowState};
pub use template::{Role, Template, TemplateError};
pub use value::FieldValue;
