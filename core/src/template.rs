//! Templates: forms, checklists, registries and reports defined as data (JSON).
//!
//! This module is the format (see `docs/templates.md`). What a template means at run time —
//! expressions, visibility, validation, the render model — is [`crate::form`]; periods of
//! periodic reports are [`crate::period`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::period::PeriodSpec;

/// A versioned form definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Stable identifier, e.g. `propaganda_session`.
    pub id: String,
    /// Increases with every published change; a record pins the version it was started on.
    pub version: u32,
    pub kind: TemplateKind,
    pub label: Label,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Label>,
    /// For periodic reports: the period length, its cut-off day and when it is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<PeriodSpec>,
    #[serde(default)]
    pub sensitivity: Sensitivity,
    #[serde(default)]
    pub roles: Roles,
    /// Named choice lists that choice fields refer to by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub choice_lists: BTreeMap<String, Vec<Choice>>,
    pub fields: Vec<Field>,
    /// Periodic reports: figures computed from other templates' records for the period and
    /// written into this template's number fields (see [`crate::indicators`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indicators: Vec<Indicator>,
    /// Registries: reminders computed from each record (see [`crate::reminders`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reminders: Vec<ReminderRule>,
    /// Registries whose subject moves between communes: where the moves are kept, so that a
    /// record counts for the commune it belonged to on a given day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_history: Option<UnitHistory>,
    /// Free text for admins: sources, unverified facts to re-check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateKind {
    Registry,
    Event,
    Checklist,
    PeriodicReport,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    #[default]
    Normal,
    Personal,
    Restricted,
}

/// Who may fill a template's records and who reviews them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Roles {
    pub fill: Vec<Role>,
    pub review: Vec<Role>,
    /// Roles that sign a submission off in the commune before the province reviews it (two
    /// levels); empty for one level.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sign_off: Vec<Role>,
}

impl Default for Roles {
    fn default() -> Self {
        Roles { fill: vec![Role::FieldOfficer, Role::CommuneLead], review: vec![Role::Reviewer], sign_off: Vec::new() }
    }
}

/// A user's role. Scope (which units) is separate: it is the user's unit subtree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    FieldOfficer,
    CommuneLead,
    Reviewer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::FieldOfficer => "field_officer",
            Role::CommuneLead => "commune_lead",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::FieldOfficer, Role::CommuneLead, Role::Reviewer, Role::Admin].into_iter().find(|r| r.as_str() == s)
    }
}

/// One figure of a periodic report, computed from the records of another template.
///
/// Each record of `source` (or each row of its repeat group `rows`) that passes `filter` and
/// falls in the period is counted (or its `sum` field added) into the field `into`, or, with
/// `group_by`, into the field `into` maps the group's key to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Indicator {
    /// The report field written: a field name, or a map from group key to field name.
    pub into: IndicatorTarget,
    /// Template id of the records counted.
    pub source: String,
    /// A repeat group of the source whose rows are counted instead of the records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<String>,
    /// CEL over the source record's fields (and the row's), `period_start`, `period_end`:
    /// only items for which it is true count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// CEL giving a text key (e.g. `sex`); requires `into` to be a map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// Which date puts an item in the period.
    pub when: IndicatorWhen,
    /// A number field of the item to add up; counts items when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<String>,
}

/// Where an indicator's value goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IndicatorTarget {
    Field(String),
    Groups(BTreeMap<String, String>),
}

/// How the period selects items.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorWhen {
    /// A flow: the item's date field lies within the period (both ends included).
    Date(String),
    /// A stock: the item is in force on the period's last day: `from` on or before it, and
    /// `to` empty or on or after it (an end date is the last day in force).
    InForce { from: String, to: String },
    /// In force on at least one day of the period: `from` on or before its last day, and `to`
    /// empty or on or after its first day.
    Overlaps { from: String, to: String },
}

/// A reminder a registry raises for its records, e.g. a residence check falling due.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReminderRule {
    /// Stable identifier of the reminder kind.
    pub id: String,
    pub label: Label,
    /// A repeat group whose rows each may raise the reminder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<String>,
    /// CEL: the reminder applies only while true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// CEL giving the due date (`YYYY-MM-DD`).
    pub due: String,
    /// The reminder is listed from this many days before its due date (and while overdue).
    #[serde(default)]
    pub lead_days: i64,
    /// A field of the record naming its subject in the list (e.g. `full_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// Where a registry keeps the moves of its subject between units.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitHistory {
    /// The repeat group of moves.
    pub group: String,
    /// The row field holding the day of the move (the first day in the new unit).
    pub date: String,
    /// The row field holding the code of the unit moved to.
    pub unit: String,
    /// The row field holding the code of the unit moved from: before its first move a record
    /// belongs to that unit (a record opened by the receiving commune starts with the move in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// A user-facing text in Vietnamese, with an optional English translation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub vi: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub en: Option<String>,
}

impl Label {
    /// The text in `lang` ("vi" or "en"), falling back to Vietnamese.
    pub fn text(&self, lang: &str) -> &str {
        match (lang, &self.en) {
            ("en", Some(en)) => en,
            _ => &self.vi,
        }
    }
}

/// One question, note, calculation or repeat group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// Key of the answer; unique in the whole template (repeat rows included), so that an
    /// expression can name any field without qualification.
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    pub label: Label,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<Label>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// Choices of a choice field: a list name, or the choices inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<ChoicesRef>,
    /// Bounds of a number (integer, decimal) or of a repeat group's row count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Length bounds of a text, in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// A regular expression a text must match in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// A CEL expression that must be true for an answer to be valid (`.` is the answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint_message: Option<Label>,
    /// A CEL expression: the field is shown (and asked) only while it is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relevant: Option<String>,
    /// For `calculated` fields: the CEL expression computing the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calculation: Option<String>,
    /// For `calculated` fields: the type of the computed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_type: Option<FieldType>,
    /// The value a new record starts with (a JSON literal of the field's type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// Sensitivity above the template's, e.g. an informant's name in a tip record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<Sensitivity>,
    /// For `repeat` groups: the fields of each row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Integer,
    Decimal,
    /// `YYYY-MM-DD`
    Date,
    /// RFC 3339, e.g. `2026-11-20T08:30:00+07:00`
    Datetime,
    Boolean,
    SingleChoice,
    MultipleChoice,
    /// `{"lat": …, "lon": …, "accuracy": …}` (WGS 84 degrees, metres)
    Geopoint,
    /// `{"sha256": …, "content_type": …, "size": …}`; the bytes travel separately.
    Photo,
    File,
    /// Read-only text shown in the form; holds no value.
    Note,
    /// A value computed by `calculation`; never entered, never stored.
    Calculated,
    /// A list of rows, each with the group's `fields` and a stable row id.
    Repeat,
    /// A tally several officers add to: an integer changed only by increments, which add up
    /// when made concurrently on several phones.
    Counter,
}

impl FieldType {
    /// Does an officer enter a value for this type?
    pub fn holds_answer(self) -> bool {
        !matches!(self, FieldType::Note | FieldType::Calculated | FieldType::Repeat)
    }

    pub fn is_choice(self) -> bool {
        matches!(self, FieldType::SingleChoice | FieldType::MultipleChoice)
    }

    pub fn is_number(self) -> bool {
        matches!(self, FieldType::Integer | FieldType::Decimal | FieldType::Counter)
    }
}

/// Where a choice field's choices come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChoicesRef {
    /// A list of the template's `choice_lists`, or `shared:<name>` for a list published on
    /// its own and shared between templates (copied into the template when it is published).
    Named(String),
    Inline(Vec<Choice>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub value: String,
    pub label: Label,
}

/// A choice list published on its own, for several templates to share.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SharedChoiceList {
    pub name: String,
    pub choices: Vec<Choice>,
}

pub const SHARED_PREFIX: &str = "shared:";

impl Template {
    /// The choices of a choice field (empty when unresolved).
    pub fn choices<'a>(&'a self, field: &'a Field) -> &'a [Choice] {
        match &field.choices {
            Some(ChoicesRef::Inline(choices)) => choices,
            Some(ChoicesRef::Named(name)) => self.choice_lists.get(name).map(Vec::as_slice).unwrap_or(&[]),
            None => &[],
        }
    }

    /// Every field, depth first, with its repeat-group ancestors.
    pub fn walk(&self) -> Vec<(Vec<&Field>, &Field)> {
        fn go<'a>(fields: &'a [Field], parents: &mut Vec<&'a Field>, out: &mut Vec<(Vec<&'a Field>, &'a Field)>) {
            for f in fields {
                out.push((parents.clone(), f));
                if f.field_type == FieldType::Repeat {
                    parents.push(f);
                    go(&f.fields, parents, out);
                    parents.pop();
                }
            }
        }
        let mut out = Vec::new();
        go(&self.fields, &mut Vec::new(), &mut out);
        out
    }

    /// A field anywhere in the template, by name.
    pub fn find(&self, name: &str) -> Option<&Field> {
        self.walk().into_iter().map(|(_, f)| f).find(|f| f.name == name)
    }

    /// Copies shared choice lists into the template (`shared:x` becomes a local list named
    /// `shared:x`), so the published version carries the choices it was published with.
    pub fn embed_shared_lists(
        &mut self,
        lookup: impl Fn(&str) -> Option<Vec<Choice>>,
    ) -> Result<(), crate::form::PublishError> {
        let names: Vec<String> = self
            .walk()
            .into_iter()
            .filter_map(|(_, f)| match &f.choices {
                Some(ChoicesRef::Named(n)) if n.starts_with(SHARED_PREFIX) => Some(n.clone()),
                _ => None,
            })
            .collect();
        for name in names {
            let list = lookup(&name[SHARED_PREFIX.len()..]).ok_or_else(|| {
                crate::form::PublishError::MissingChoiceList { field: String::new(), list: name.clone() }
            })?;
            self.choice_lists.insert(name, list);
        }
        Ok(())
    }
}
