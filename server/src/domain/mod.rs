//! The domain actions: what the server decides and computes, between HTTP and storage.

pub mod access;
pub mod auth;
pub mod authorize;
pub mod export;
pub mod grid;
pub mod home;
pub mod pack;
pub mod reports;
pub mod review;
pub mod rollup;
pub mod sync;
pub mod units;
