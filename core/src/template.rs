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
