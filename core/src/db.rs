//! SQL migrations embedded in the binary and run with sqlx's migrator.
//!
//! The files live beside each crate (`migrations/`) and are compiled in with `include_str!`,
//! so a phone app or a server binary carries its schema and needs no files at run time.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// One embedded migration: version, description, SQL text.
pub type EmbeddedMigration = (i64, &'static str, &'static str);

pub fn migrator(migrations: &[EmbeddedMigration]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, sql.into_sql_str(), false)
            })
            .collect(),
    )
}
