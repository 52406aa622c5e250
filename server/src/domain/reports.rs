//! Report indicators and registry reminders on the server, from the records' projections
//! (`values_json`, which holds answers and calculated values). The arithmetic is
//! `diaban_core::indicators` and `diaban_core::reminders`, the same as on the phone.

use diaban_core::Form;
use diaban_core::indicators::{self, IndicatorError, SourceRecord, Sources};
use diaban_core::reminders::{self, Reminder};
use diaban_core::template::Template;

use crate::store::{Db, DbError, RecordRow, User};

/// One indicator of a report: what the commune reported and what the records give now.
#[derive(Clone, Debug, PartialEq)]
pub struct IndicatorLine {
    pub field: String,
    pub label: String,
    /// Computed now from the commune's records for the report's period.
    pub computed: f64,
    /// The value in the report as sent (filled on the phone when it was made).
    pub reported: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Indicator(#[from] IndicatorError),
}

/// The records of a template in the given units, as indicator sources.
pub async fn source_records(db: &Db, template_id: &str, units: &[String]) -> Result<Vec<SourceRecord>, DbError> {
    Ok(db
        .records_of(template_id, units)
        .await?
        .into_iter()
        .map(|(id, unit_code, values)| SourceRecord { id, unit_code, values })
        .collect())
}

/// The indicators of a periodic report's record, computed from the records of its unit; `None`
/// for a template without indicators or a record without a period.
pub async fn indicators_for(
    db: &Db,
    form: &Form,
    row: &RecordRow,
    lang: &str,
) -> Result<Option<Vec<IndicatorLine>>, ReportError> {
    let report = form.template();
    let Some(period) = row.period.as_deref().filter(|_| !report.indicators.is_empty()) else { return Ok(None) };
    let values = compute(db, report, period, &row.unit_code).await?;
    Ok(Some(
        values
            .into_iter()
            .map(|v| IndicatorLine {
                label: report.find(&v.field).map(|f| f.label.text(lang).to_owned()).unwrap_or_default(),
                reported: row.values.get(&v.field).and_then(|x| x.as_f64()),
                computed: v.value,
                field: v.field,
            })
            .collect(),
    ))
}

/// A report's indicators for one unit and period, from the latest source templates and the
/// unit's records.
pub async fn compute(
    db: &Db,
    report: &Template,
    period: &str,
    unit_code: &str,
) -> Result<Vec<indicators::IndicatorValue>, ReportError> {
    let mut loaded: Vec<(Template, Vec<SourceRecord>)> = Vec::new();
    let unit = [unit_code.to_owned()];
    for indicator in &report.indicators {
        if loaded.iter().any(|(t, _)| t.id == indicator.source) {
            continue;
        }
        let Some(template) = db.template(&indicator.source, None).await? else {
            return Err(IndicatorError::MissingSource {
                into: indicators::targets(indicator).join(", "),
                template: indicator.source.clone(),
            }
            .into());
        };
        let records = source_records(db, &template.id, &unit).await?;
        loaded.push((template, records));
    }
    let sources: Sources<'_> = loaded.iter().map(|(t, r)| (t.id.as_str(), (t, r.as_slice()))).collect();
    Ok(indicators::compute(report, period, unit_code, &sources)?)
}

/// Reminders of every registry in the user's units (restricted templates only when granted),
/// listed on `today`, soonest first.
pub async fn reminders_for(db: &Db, user: &User, today: &str, lang: &str) -> Result<Vec<Reminder>, DbError> {
    let units = db.unit_scope(&user.unit_code).await?;
    let hidden = db.hidden_templates(user).await?;
    let mut out = Vec::new();
    for template in db.published_templates().await? {
        if template.reminders.is_empty() || hidden.contains(&template.id) {
            continue;
        }
        let records = source_records(db, &template.id, &units).await?;
        out.extend(reminders::reminders(&template, &records, today, lang));
    }
    out.sort_by(|a, b| a.due.cmp(&b.due).then(a.unit_code.cmp(&b.unit_code)).then(a.subject.cmp(&b.subject)));
    Ok(out)
}
