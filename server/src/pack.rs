//! The default template pack, compiled into the server and published at start-up.
//! Publishing is idempotent: an unchanged template version is not published twice.

use diaban_core::Template;

use crate::db::{Db, DbError};

pub const DEFAULT_PACK: &[(&str, &str)] = &[(
    "propaganda_session",
    include_str!("../pack/propaganda_session.json"),
)];

pub fn templates() -> Result<Vec<Template>, DbError> {
    DEFAULT_PACK
        .iter()
        .map(|(name, text)| {
            Template::from_json(text)
                .map_err(|e| DbError::Invalid(format!("pack template {name}: {e}")))
        })
        .collect()
}

pub async fn publish(db: &Db) -> Result<(), DbError> {
    for template in templates()? {
        db.publish_template(&template).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_pack_template_parses_and_checks() {
        let templates = super::templates().unwrap();
        assert_eq!(templates.len(), super::DEFAULT_PACK.len());
        for t in templates {
            assert!(!t.fields.is_empty(), "{} has fields", t.id);
            for f in &t.fields {
                assert!(
                    !f.label.vi.is_empty() && f.label.en.is_some(),
                    "{}.{} is labelled in vi and en",
                    t.id,
                    f.name
                );
            }
        }
    }
}
