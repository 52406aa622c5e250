//! Reminders: what falls due in a registry (a monthly residence check, a management period or
//! a post-rehab period ending), computed from each record by the rules of its template.
//!
//! A rule (`reminders` in a registry template, see `docs/templates.md`) has a CEL `when` (the
//! rule applies), a CEL `due` (the due date) and `lead_days`; a reminder is listed from
//! `lead_days` before its due date, and stays listed while overdue. With `rows`, each row of a
//! repeat group (e.g. each management period) is checked on its own. Pure: the same on the
//! phone and on the server.

use cel_interpreter::Value;
use serde_json::Value as Json;

use crate::expr::{self, TODAY};
use crate::indicators::SourceRecord;
use crate::template::{FieldType, Template};

/// One reminder for one record (and row).
#[derive(Clone, Debug, PartialEq)]
pub struct Reminder {
    pub record_id: String,
    pub template_id: String,
    pub unit_code: String,
    /// The rule's id, e.g. `residence_check`.
    pub rule: String,
    /// The rule's label in the requested language.
    pub label: String,
    /// The record's subject (the rule's `subject` field), e.g. a person's name.
    pub subject: Option<String>,
    /// The row of the repeat group the reminder is about.
    pub row_id: Option<String>,
    /// `YYYY-MM-DD`
    pub due: String,
    /// Days from today to the due date; negative when overdue.
    pub days_left: i64,
}

/// Every reminder of `template`'s rules over `records` (values with calculated values) that is
/// listed on `today` (`YYYY-MM-DD`), soonest first.
pub fn reminders(template: &Template, records: &[SourceRecord], today: &str, lang: &str) -> Vec<Reminder> {
    let root = expr::root_context();
    let mut out = Vec::new();
    for rule in &template.reminders {
        let (Ok(due_program), Ok(when_program)) =
            (expr::compile(&rule.due), rule.when.as_deref().map(expr::compile).transpose())
        else {
            continue;
        };
        for record in records {
            let rows: Vec<Option<&serde_json::Map<String, Json>>> = match &rule.rows {
                None => vec![None],
                Some(g) => record
                    .values
                    .get(g)
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_object().map(Some))
                    .collect(),
            };
            for row in rows {
                let mut scope = root.new_inner_scope();
                scope.add_variable_from_value(TODAY, today);
                for f in template.walk().into_iter().map(|(_, f)| f) {
                    scope.add_variable_from_value(f.name.as_str(), Value::Null);
                }
                for (k, v) in &record.values {
                    scope.add_variable_from_value(k.as_str(), expr::to_cel(v));
                }
                for (k, v) in row.into_iter().flatten().filter(|(k, _)| !k.starts_with('_')) {
                    scope.add_variable_from_value(k.as_str(), expr::to_cel(v));
                }
                if let Some(p) = &when_program
                    && !matches!(crate::expr::execute(p, &scope), Ok(Value::Bool(true)))
                {
                    continue;
                }
                let Ok(Value::String(due)) = crate::expr::execute(&due_program, &scope) else { continue };
                let Some(days_left) = days_between(today, &due) else { continue };
                if days_left > rule.lead_days {
                    continue;
                }
                out.push(Reminder {
                    record_id: record.id.clone(),
                    template_id: template.id.clone(),
                    unit_code: record.unit_code.clone(),
                    rule: rule.id.clone(),
                    label: rule.label.text(lang).to_owned(),
                    subject: rule
                        .subject
                        .as_ref()
                        .and_then(|s| record.values.get(s))
                        .and_then(Json::as_str)
                        .map(str::to_owned),
                    row_id: row.and_then(|r| r.get("_id")).and_then(Json::as_str).map(str::to_owned),
                    due: due.to_string(),
                    days_left,
                });
            }
        }
    }
    out.sort_by(|a, b| a.due.cmp(&b.due).then(a.subject.cmp(&b.subject)).then(a.rule.cmp(&b.rule)));
    out
}

fn days_between(a: &str, b: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Some((time::Date::parse(b, format).ok()? - time::Date::parse(a, format).ok()?).whole_days())
}

/// Publication checks of a template's reminder rules: ids are identifiers and unique, `rows`
/// is a repeat group, `subject` a field, and the expressions name only visible fields.
pub(crate) fn check_local(t: &Template) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for rule in &t.reminders {
        let at = |m: String| format!("reminder {}: {m}", rule.id);
        let valid_id = rule.id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && rule.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_id || !seen.insert(rule.id.as_str()) {
            return Err(at("the id must be unique, lowercase letters, digits and '_'".into()));
        }
        let row_fields = match &rule.rows {
            None => Vec::new(),
            Some(g) => match t.fields.iter().find(|f| &f.name == g) {
                Some(f) if f.field_type == FieldType::Repeat => f.fields.iter().map(|f| f.name.as_str()).collect(),
                _ => return Err(at(format!("{g:?} is not a top-level repeat group"))),
            },
        };
        if let Some(s) = &rule.subject
            && !t.fields.iter().any(|f| &f.name == s)
        {
            return Err(at(format!("subject {s:?} is not a top-level field")));
        }
        let visible = |n: &str| n == TODAY || row_fields.contains(&n) || t.fields.iter().any(|f| f.name == n);
        for e in rule.when.iter().chain([&rule.due]) {
            expr::compile_checked(e, &visible).map_err(at)?;
        }
    }
    if let Some(h) = &t.unit_history {
        let group = t
            .fields
            .iter()
            .find(|f| f.name == h.group && f.field_type == FieldType::Repeat)
            .ok_or_else(|| format!("unit_history: {:?} is not a top-level repeat group", h.group))?;
        let typed = |name: &str, ty: FieldType| group.fields.iter().any(|f| f.name == name && f.field_type == ty);
        if !typed(&h.date, FieldType::Date) {
            return Err(format!("unit_history: {:?} is not a date field of {:?}", h.date, h.group));
        }
        for unit in std::iter::once(&h.unit).chain(&h.from) {
            if !typed(unit, FieldType::Text) {
                return Err(format!("unit_history: {unit:?} is not a text field of {:?}", h.group));
            }
        }
    }
    Ok(())
}
