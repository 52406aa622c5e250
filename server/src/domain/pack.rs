//! The default template pack, compiled into the server and published at start-up.
//! Publishing is idempotent: an unchanged template version is not published twice.

use diaban_core::{Form, Template};

use crate::store::{Db, DbError};

/// In publication order: sources before the reports whose indicators read them.
pub const DEFAULT_PACK: &[(&str, &str)] = &[
    ("person_record", include_str!("../../pack/person_record.json")),
    ("hotspot", include_str!("../../pack/hotspot.json")),
    ("crop_eradication", include_str!("../../pack/crop_eradication.json")),
    ("business_inspection", include_str!("../../pack/business_inspection.json")),
    ("propaganda_session", include_str!("../../pack/propaganda_session.json")),
    ("public_tip", include_str!("../../pack/public_tip.json")),
    ("tip_informant", include_str!("../../pack/tip_informant.json")),
    ("group_review", include_str!("../../pack/group_review.json")),
    ("commune_monthly_report", include_str!("../../pack/commune_monthly_report.json")),
    ("commune_annual_report", include_str!("../../pack/commune_annual_report.json")),
    ("commune_assessment", include_str!("../../pack/commune_assessment.json")),
];

pub fn templates() -> Result<Vec<Template>, DbError> {
    DEFAULT_PACK
        .iter()
        .map(|(name, text)| {
            Form::from_json(text)
                .map(|f| f.template().clone())
                .map_err(|e| DbError::Invalid(format!("pack template {name}: {e}")))
        })
        .collect()
}

/// Publishes each pack template unless that version, or a later one an admin published,
/// is already there.
pub async fn publish(db: &Db) -> Result<(), DbError> {
    for template in templates()? {
        match db.template(&template.id, None).await? {
            Some(latest) if latest.version >= template.version => {}
            _ => {
                db.publish_template(template).await?;
            }
        }
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
                assert!(!f.label.vi.is_empty() && f.label.en.is_some(), "{}.{} is labelled in vi and en", t.id, f.name);
            }
        }
    }
}
