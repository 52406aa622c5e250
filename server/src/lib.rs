//! diaban-server: the sync API for devices and the review web UI for the province.
//!
//! - [`app`]: router, middleware, serving.
//! - [`api`]: JSON API (login, sync, templates, health).
//! - [`attachments`]: chunked, resumable attachment upload and ranged download.
//! - [`sync`]: server side of the sync protocol, with per-record authorization.
//! - [`admin`]: admin pages (users, devices, grants, templates, units).
//! - [`web`]: review web UI (server-rendered HTML, cookie sessions).
//! - [`units`]: administrative units from CSV (the national list ships with the server).
//! - [`conns`]: connections for the sync path, kept beside sqlx's pool (no ping on release).
//! - [`commit`]: group commit (concurrent writers share one transaction and one fsync).
//! - [`db`]: SQLite storage through sqlx.
//! - [`auth`]: Argon2 passwords and hashed bearer tokens.
//! - [`pack`]: the default template pack.
//! - [`review`]: return and approve, as events appended to the record.
//! - [`reports`]: report indicators and registry reminders from the records' projections.
//! - [`rollup`]: sums of numeric answers per commune and up the unit tree.
//! - [`export`]: XLSX and CSV export of a template's records.
//! - [`demo`]: demo province, users and records.

pub mod access;
pub mod admin;
pub mod api;
pub mod app;
pub mod attachments;
pub mod auth;
pub mod authorize;
pub mod commit;
pub mod conns;
pub mod db;
pub mod demo;
pub mod docs;
pub mod error;
pub mod export;
pub mod fuzz;
pub mod grid;
pub mod idle;
pub mod pack;
pub mod reports;
pub mod review;
pub mod rollup;
pub mod signin;
pub mod sync;
pub mod tls;
pub mod units;
pub mod web;
