//! The device API for reports and reminders: a report's indicators computed from the records
//! on the phone, written into the report, and the registry's reminders. Offline, like every
//! other `Device` call except login and sync.

use serde_json::{Map, Value as Json};

use crate::device::{Device, DeviceError, ensure_editable};
use crate::indicators::{self, IndicatorError, SourceRecord, Sources};
use crate::record::{FieldPath, RecordDoc};
use crate::reminders::{self, Reminder};
use crate::template::Template;

/// One computed figure of a report, as the phone shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct IndicatorRow {
    /// The report field it fills.
    pub field: String,
    /// The field's label in the device's language.
    pub label: String,
    pub value: f64,
}

impl From<IndicatorError> for DeviceError {
    fn from(e: IndicatorError) -> Self {
        match e {
            IndicatorError::Period(p) => DeviceError::InvalidPeriod(p.to_string()),
            IndicatorError::MissingSource { template, .. } => DeviceError::UnknownTemplate(template),
            other => DeviceError::InvalidValue(other.to_string()),
        }
    }
}

impl Device {
    /// The indicators of a periodic report, computed from the records on this device for the
    /// report's period and unit. Nothing is written.
    pub async fn indicators(&self, record_id: &str) -> Result<Vec<IndicatorRow>, DeviceError> {
        let (_, form, doc) = self.open_record(record_id).await?;
        self.compute_indicators(form.template(), &doc).await
    }

    /// Computes a report's indicators and writes them into its fields (an edit like any other,
    /// synced with the record). Only values that changed are written.
    pub async fn fill_indicators(&self, record_id: &str) -> Result<Vec<IndicatorRow>, DeviceError> {
        let (stored, form, mut doc) = self.open_record(record_id).await?;
        ensure_editable(&doc)?;
        let rows = self.compute_indicators(form.template(), &doc).await?;
        let current = doc.values();
        let mut changed = false;
        for row in &rows {
            let value = indicators::IndicatorValue { field: row.field.clone(), value: row.value };
            let Some(typed) = value.typed(form.template()) else { continue };
            if current.get(&row.field) != Some(&typed.to_json()) {
                doc.set_field(&FieldPath::top(&row.field), &typed, self.clock.now())?;
                changed = true;
            }
        }
        if changed {
            self.save(stored, doc).await?;
        }
        Ok(rows)
    }

    /// Reminders of every registry on this device listed today (in Vietnam), soonest first.
    pub async fn reminders(&self) -> Result<Vec<Reminder>, DeviceError> {
        self.reminders_on(&crate::clock::iso(self.clock.today())).await
    }

    /// Reminders listed on `today` (`YYYY-MM-DD`).
    pub async fn reminders_on(&self, today: &str) -> Result<Vec<Reminder>, DeviceError> {
        let mut out = Vec::new();
        for template in self.store.latest_templates().await?.into_iter().filter(|t| !t.reminders.is_empty()) {
            let records = self.source_records(&template.id).await?;
            out.extend(reminders::reminders(&template, &records, today, &self.lang));
        }
        out.sort_by(|a, b| a.due.cmp(&b.due).then(a.subject.cmp(&b.subject)));
        Ok(out)
    }

    async fn compute_indicators(&self, report: &Template, doc: &RecordDoc) -> Result<Vec<IndicatorRow>, DeviceError> {
        let meta = doc.meta()?;
        let period = meta.period.ok_or_else(|| DeviceError::InvalidPeriod("the record has no period".into()))?;
        let mut loaded: Vec<(Template, Vec<SourceRecord>)> = Vec::new();
        for indicator in &report.indicators {
            if loaded.iter().any(|(t, _)| t.id == indicator.source) {
                continue;
            }
            let Some(template) = self.store.template(&indicator.source, None).await? else {
                return Err(DeviceError::UnknownTemplate(indicator.source.clone()));
            };
            let records = self.source_records(&template.id).await?;
            loaded.push((template, records));
        }
        let sources: Sources<'_> = loaded.iter().map(|(t, r)| (t.id.as_str(), (t, r.as_slice()))).collect();
        let values = indicators::compute(report, &period, &meta.unit_code, &sources)?;
        Ok(values
            .into_iter()
            .map(|v| IndicatorRow {
                label: report.find(&v.field).map(|f| f.label.text(&self.lang).to_owned()).unwrap_or_default(),
                field: v.field,
                value: v.value,
            })
            .collect())
    }

    /// Every record of a template on this device, with its answers and calculated values.
    async fn source_records(&self, template_id: &str) -> Result<Vec<SourceRecord>, DeviceError> {
        let mut out = Vec::new();
        for index in self.store.list(Some(template_id), None).await? {
            let Some(stored) = self.store.record(&index.id).await? else { continue };
            let form = self.form(&stored.template_id, stored.template_version).await?;
            let mut doc = RecordDoc::load(&stored.doc, None)?;
            let evaluation = form.evaluate_record(&mut doc, &self.lang, self.clock.today());
            let mut values: Map<String, Json> = doc.values().into_iter().collect();
            values.extend(evaluation.calculated);
            out.push(SourceRecord { id: stored.id, unit_code: stored.unit_code, values });
        }
        Ok(out)
    }
}
