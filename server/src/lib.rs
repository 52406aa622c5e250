//! diaban-server: the sync API for devices and the review web for the province.
//!
//! Three layers, each a folder:
//! - [`http`]: the axum application (router, middleware, serving, TLS, idle connections), the
//!   JSON API for devices, attachment transfer, and the web pages ([`http::web`] for the
//!   review desk, [`http::admin`] for administration). Handlers parse, ask the domain, render.
//! - [`domain`]: what the server does: sync and its per-change authorization, read access,
//!   review, reports and reminders, roll-ups, the grid, exports, unit import, the template pack.
//! - [`store`]: storage through sqlx (SQLite or PostgreSQL), one module per aggregate, with
//!   group commit and the cache of loaded record documents.
//!
//! Beside them: [`demo`] builds the demo province, [`fuzz`] holds the fuzz targets' entry points.

pub mod demo;
pub mod domain;
pub mod fuzz;
pub mod http;
pub mod store;
