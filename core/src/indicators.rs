//! Indicators: the figures of a periodic report computed from the records of other templates
//! (people by status, hotspots found, plants destroyed, sessions held, …).
//!
//! What is counted is data, in the report template's `indicators` (see `docs/templates.md`):
//! the source template, an optional repeat group whose rows are counted, a CEL filter, an
//! optional CEL group key, the date rule that puts an item in the period, and count or sum.
//! This module is the arithmetic only, over plain values, so the server (from its projections)
//! and the phone (from its documents) compute the same numbers.
//!
//! Rules, the same for every indicator:
//! - Dates are inclusive: an item dated on the period's first or last day is in the period; an
//!   end date is the last day in force, so a status ending on the period's last day is still in
//!   force at the period's end.
//! - A record counts only for its own unit, and only on days it belonged to that unit: when
//!   its template has a `unit_history` (moves between communes), the unit on a day is the one
//!   moved to by the last move on or before that day. A person who moves mid-period is counted
//!   at the period's end by the commune they moved to (its own record), not by the old one.
//! - An item whose date, filter or group key cannot be evaluated is not counted.

use std::collections::BTreeMap;

use cel_interpreter::{Program, Value};
use serde_json::{Map, Value as Json};

use crate::expr::{self, PERIOD_END, PERIOD_START};
use crate::period::PeriodError;
use crate::template::{FieldType, Indicator, IndicatorTarget, IndicatorWhen, Template, TemplateKind, UnitHistory};
use crate::value::FieldValue;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndicatorError {
    #[error("template {0} is not a periodic report")]
    NotPeriodic(String),
    #[error("period: {0}")]
    Period(#[from] PeriodError),
    #[error("indicator into {into}: the source template {template} is not available")]
    MissingSource { into: String, template: String },
    #[error("indicator into {into}: {message}")]
    Invalid { into: String, message: String },
}

/// A record an indicator reads: its unit and its values (answers and calculated values, as in
/// the server's projection).
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRecord {
    pub id: String,
    pub unit_code: String,
    pub values: Map<String, Json>,
}

/// The computed value of one report field.
#[derive(Clone, Debug, PartialEq)]
pub struct IndicatorValue {
    pub field: String,
    pub value: f64,
}

impl IndicatorValue {
    /// The value typed for its field in `report` (integers are whole counts or sums).
    pub fn typed(&self, report: &Template) -> Option<FieldValue> {
        match report.fields.iter().find(|f| f.name == self.field)?.field_type {
            FieldType::Integer => Some(FieldValue::Integer(self.value.round() as i64)),
            FieldType::Decimal => Some(FieldValue::Decimal(self.value)),
            _ => None,
        }
    }
}

/// The source templates and their records, by template id.
pub type Sources<'a> = BTreeMap<&'a str, (&'a Template, &'a [SourceRecord])>;

/// The report fields an indicator writes.
pub fn targets(indicator: &Indicator) -> Vec<&str> {
    match &indicator.into {
        IndicatorTarget::Field(f) => vec![f.as_str()],
        IndicatorTarget::Groups(map) => map.values().map(String::as_str).collect(),
    }
}

fn describe(indicator: &Indicator) -> String {
    targets(indicator).join(", ")
}

/// Computes every indicator of `report` for the period `period_key` of the unit `unit_code`,
/// from the records in `sources`. Every target field is in the result (zero when nothing
/// counts), in the report's field order.
pub fn compute(
    report: &Template,
    period_key: &str,
    unit_code: &str,
    sources: &Sources<'_>,
) -> Result<Vec<IndicatorValue>, IndicatorError> {
    let spec = report.period.as_ref().ok_or_else(|| IndicatorError::NotPeriodic(report.id.clone()))?;
    let bounds = spec.bounds(period_key)?;
    let (start, end) = (crate::clock::iso(bounds.start), crate::clock::iso(bounds.end));
    let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
    for indicator in &report.indicators {
        for t in targets(indicator) {
            totals.entry(t).or_insert(0.0);
        }
        let (source, records) = sources.get(indicator.source.as_str()).ok_or_else(|| {
            IndicatorError::MissingSource { into: describe(indicator), template: indicator.source.clone() }
        })?;
        let invalid = |message: String| IndicatorError::Invalid { into: describe(indicator), message };
        let filter = indicator.filter.as_deref().map(expr::compile).transpose().map_err(invalid)?;
        let group_by = indicator.group_by.as_deref().map(expr::compile).transpose().map_err(invalid)?;
        let root = expr::root_context();
        for record in records.iter().filter(|r| r.unit_code == unit_code) {
            for row in items(record, indicator.rows.as_deref()) {
                let get = |name: &str| row.get(name).or_else(|| record.values.get(name)).filter(|v| !v.is_null());
                let date = |name: &str| get(name).and_then(Json::as_str);
                // The days on which the record must belong to the unit for the item to count.
                let days: Vec<&str> = match &indicator.when {
                    IndicatorWhen::Date(f) => match date(f) {
                        Some(d) if d >= start.as_str() && d <= end.as_str() => vec![d],
                        _ => continue,
                    },
                    IndicatorWhen::InForce { from, to } => match (date(from), date(to)) {
                        (Some(f), to) if f <= end.as_str() && to.is_none_or(|t| t >= end.as_str()) => {
                            vec![end.as_str()]
                        }
                        _ => continue,
                    },
                    IndicatorWhen::Overlaps { from, to } => match (date(from), date(to)) {
                        (Some(f), to) if f <= end.as_str() && to.is_none_or(|t| t >= start.as_str()) => {
                            let first = f.max(start.as_str());
                            let last = to.map_or(end.as_str(), |t| t.min(end.as_str()));
                            vec![first, last]
                        }
                        _ => continue,
                    },
                };
                if !days.iter().any(|d| unit_on(record, source.unit_history.as_ref(), d) == unit_code) {
                    continue;
                }
                let mut scope = root.new_inner_scope();
                scope.add_variable_from_value(PERIOD_START, start.as_str());
                scope.add_variable_from_value(PERIOD_END, end.as_str());
                for f in &source.fields {
                    let v = record.values.get(&f.name).map(expr::to_cel).unwrap_or(Value::Null);
                    scope.add_variable_from_value(f.name.as_str(), v);
                }
                for (k, v) in row.iter().filter(|(k, _)| !k.starts_with('_')) {
                    scope.add_variable_from_value(k.as_str(), expr::to_cel(v));
                }
                if let Some(p) = &filter
                    && !matches!(crate::expr::execute(p, &scope), Ok(Value::Bool(true)))
                {
                    continue;
                }
                let target = match (&indicator.into, &group_by) {
                    (IndicatorTarget::Field(f), _) => f.as_str(),
                    (IndicatorTarget::Groups(map), Some(p)) => match group_key(p, &scope).and_then(|k| map.get(&k)) {
                        Some(f) => f.as_str(),
                        None => continue,
                    },
                    (IndicatorTarget::Groups(_), None) => continue,
                };
                let amount = match &indicator.sum {
                    Some(f) => get(f).and_then(Json::as_f64).unwrap_or(0.0),
                    None => 1.0,
                };
                if let Some(total) = totals.get_mut(target) {
                    *total += amount;
                }
            }
        }
    }
    Ok(report
        .fields
        .iter()
        .filter_map(|f| totals.get(f.name.as_str()).map(|v| IndicatorValue { field: f.name.clone(), value: *v }))
        .collect())
}

/// The items an indicator looks at in one record: its rows of `group`, or the record itself.
fn items(record: &SourceRecord, group: Option<&str>) -> Vec<Map<String, Json>> {
    match group {
        None => vec![Map::new()],
        Some(g) => record
            .values
            .get(g)
            .and_then(Json::as_array)
            .map(|rows| rows.iter().filter_map(|r| r.as_object().cloned()).collect())
            .unwrap_or_default(),
    }
}

fn group_key(program: &Program, scope: &cel_interpreter::Context<'_>) -> Option<String> {
    match crate::expr::execute(program, scope).ok()? {
        Value::String(s) => Some(s.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The unit a record belonged to on `day` (`YYYY-MM-DD`), following its moves.
pub fn unit_on<'a>(record: &'a SourceRecord, history: Option<&UnitHistory>, day: &str) -> &'a str {
    let Some(h) = history else { return &record.unit_code };
    let mut moves: Vec<(&str, &Map<String, Json>)> = record
        .values
        .get(&h.group)
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|row| {
            let row = row.as_object()?;
            Some((row.get(&h.date)?.as_str()?, row))
        })
        .collect();
    moves.sort_by(|a, b| a.0.cmp(b.0));
    let text = |row: &'a Map<String, Json>, field: &str| row.get(field).and_then(Json::as_str);
    if let Some((_, row)) = moves.iter().rev().find(|(d, _)| *d <= day) {
        return text(row, &h.unit).unwrap_or(&record.unit_code);
    }
    match (moves.first(), &h.from) {
        (Some((_, row)), Some(from)) => text(row, from).unwrap_or(&record.unit_code),
        _ => &record.unit_code,
    }
}

/// The checks a report's indicators pass on their own, at publication: only on periodic
/// reports; targets are number fields of the report; group keys go with target maps; the
/// expressions parse and call known functions.
pub(crate) fn check_local(t: &Template) -> Result<(), String> {
    if t.indicators.is_empty() {
        return Ok(());
    }
    if t.kind != TemplateKind::PeriodicReport {
        return Err("only a periodic report may have indicators".into());
    }
    for indicator in &t.indicators {
        let at = |m: String| format!("indicator into {}: {m}", describe(indicator));
        for target in targets(indicator) {
            match t.fields.iter().find(|f| f.name == target) {
                Some(f) if matches!(f.field_type, FieldType::Integer | FieldType::Decimal) => {}
                Some(_) => return Err(at(format!("{target:?} is not an integer or decimal field"))),
                None => return Err(at(format!("the report has no top-level field {target:?}"))),
            }
        }
        match (&indicator.into, &indicator.group_by) {
            (IndicatorTarget::Field(_), Some(_)) => {
                return Err(at("group_by needs `into` to map keys to fields".into()));
            }
            (IndicatorTarget::Groups(_), None) => {
                return Err(at("`into` maps keys to fields but there is no group_by".into()));
            }
            _ => {}
        }
        for source in indicator.filter.iter().chain(&indicator.group_by) {
            // Source field names are checked against the source template by `check_sources`.
            expr::compile_checked(source, &|_| true).map_err(at)?;
        }
    }
    Ok(())
}

/// Checks a report's indicators against their source templates (looked up by id): the
/// source exists, `rows` is one of its repeat groups, the date fields are dates, the summed
/// field is a number, and the expressions name only the source's fields.
pub fn check_sources(report: &Template, lookup: impl Fn(&str) -> Option<Template>) -> Result<(), IndicatorError> {
    for indicator in &report.indicators {
        let invalid = |message: String| IndicatorError::Invalid { into: describe(indicator), message };
        let source = lookup(&indicator.source).ok_or_else(|| IndicatorError::MissingSource {
            into: describe(indicator),
            template: indicator.source.clone(),
        })?;
        let row_fields = match &indicator.rows {
            None => Vec::new(),
            Some(g) => match source.fields.iter().find(|f| &f.name == g) {
                Some(f) if f.field_type == FieldType::Repeat => f.fields.clone(),
                _ => return Err(invalid(format!("{} has no repeat group {g:?}", source.id))),
            },
        };
        let field = |name: &str| row_fields.iter().chain(&source.fields).find(|f| f.name == name);
        let value_type = |name: &str| {
            field(name).map(|f| if f.field_type == FieldType::Calculated { f.result_type } else { Some(f.field_type) })
        };
        let dates: Vec<&String> = match &indicator.when {
            IndicatorWhen::Date(d) => vec![d],
            IndicatorWhen::InForce { from, to } | IndicatorWhen::Overlaps { from, to } => vec![from, to],
        };
        for d in dates {
            if value_type(d) != Some(Some(FieldType::Date)) {
                return Err(invalid(format!("{d:?} is not a date field of {}", source.id)));
            }
        }
        if let Some(s) = &indicator.sum
            && !matches!(value_type(s), Some(Some(FieldType::Integer | FieldType::Decimal | FieldType::Counter)))
        {
            return Err(invalid(format!("{s:?} is not a number field of {}", source.id)));
        }
        let visible = |n: &str| {
            n == PERIOD_START || n == PERIOD_END || source.fields.iter().chain(&row_fields).any(|f| f.name == n)
        };
        for e in indicator.filter.iter().chain(&indicator.group_by) {
            expr::compile_checked(e, &visible).map_err(invalid)?;
        }
    }
    Ok(())
}
