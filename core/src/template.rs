//! Templates: forms, checklists, registries and reports defined as data (JSON).
//!
//! A template is published by an admin on the server and reaches devices by sync. The same
//! checks run on both sides: [`Template::check`] when a template is published or received,
//! [`Template::check_value`] when an officer enters a value, and [`Template::validate`]
//! when a record is submitted.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::value::FieldValue;

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
    #[serde(default)]
    pub sensitivity: Sensitivity,
    #[serde(default)]
    pub roles: Roles,
    /// Named choice lists that single and multiple choice fields refer to.
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

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl Default for Roles {
    fn default() -> Self {
        Roles {
            fill: vec![Role::FieldOfficer, Role::CommuneLead],
            review: vec![Role::Reviewer],
        }
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
        [
            Role::FieldOfficer,
            Role::CommuneLead,
            Role::Reviewer,
            Role::Admin,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// Key of the answer in the record's `fields` map.
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    pub label: Label,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<Label>,
    #[serde(default)]
    pub required: bool,
    /// Name of the choice list, for single and multiple choice fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Maximum length of a text, in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Integer,
    Decimal,
    Date,
    Boolean,
    SingleChoice,
    MultipleChoice,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub value: String,
    pub label: Label,
}

/// What is wrong with a template or a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    #[error("template is not valid JSON for the template format: {0}")]
    Parse(String),
    #[error("template id must be lowercase letters, digits and '_' (got {0:?})")]
    BadId(String),
    #[error("template version must be at least 1")]
    BadVersion,
    #[error("field name {0:?} is used more than once")]
    DuplicateField(String),
    #[error("field name {0:?} must be lowercase letters, digits and '_'")]
    BadFieldName(String),
    #[error("field {field:?} refers to choice list {list:?}, which the template does not define")]
    MissingChoiceList { field: String, list: String },
    #[error("field {0:?} is a choice field without a choice list")]
    NoChoiceList(String),
    #[error("field {0:?} has min greater than max")]
    MinAboveMax(String),
    #[error("the template has no field {0:?}")]
    UnknownField(String),
    #[error("{field}: expected a {expected:?} value, got {got:?}")]
    WrongType {
        field: String,
        expected: FieldType,
        got: FieldType,
    },
    #[error("{field}: {reason}")]
    InvalidValue { field: String, reason: String },
}

/// A problem found when a record is validated for submission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    pub field: String,
    pub message: String,
}

impl Template {
    /// Parses and checks a template from its JSON text.
    pub fn from_json(text: &str) -> Result<Template, TemplateError> {
        let template: Template =
            serde_json::from_str(text).map_err(|e| TemplateError::Parse(e.to_string()))?;
        template.check()?;
        Ok(template)
    }

    /// Structural checks run at publication and on receipt.
    pub fn check(&self) -> Result<(), TemplateError> {
        if !is_identifier(&self.id) {
            return Err(TemplateError::BadId(self.id.clone()));
        }
        if self.version == 0 {
            return Err(TemplateError::BadVersion);
        }
        let mut seen = HashSet::new();
        for field in &self.fields {
            if !is_identifier(&field.name) {
                return Err(TemplateError::BadFieldName(field.name.clone()));
            }
            if !seen.insert(field.name.as_str()) {
                return Err(TemplateError::DuplicateField(field.name.clone()));
            }
            if matches!(
                field.field_type,
                FieldType::SingleChoice | FieldType::MultipleChoice
            ) {
                let list = field
                    .choices
                    .as_ref()
                    .ok_or_else(|| TemplateError::NoChoiceList(field.name.clone()))?;
                if !self.choice_lists.contains_key(list) {
                    return Err(TemplateError::MissingChoiceList {
                        field: field.name.clone(),
                        list: list.clone(),
                    });
                }
            }
            if let (Some(min), Some(max)) = (field.min, field.max)
                && min > max
            {
                return Err(TemplateError::MinAboveMax(field.name.clone()));
            }
        }
        Ok(())
    }

    pub fn field(&self, name: &str) -> Result<&Field, TemplateError> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| TemplateError::UnknownField(name.to_owned()))
    }

    pub fn choices(&self, field: &Field) -> &[Choice] {
        field
            .choices
            .as_ref()
            .and_then(|list| self.choice_lists.get(list))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Checks one value for one field: its type, choices, bounds and length.
    pub fn check_value(&self, name: &str, value: &FieldValue) -> Result<(), TemplateError> {
        let field = self.field(name)?;
        if value.field_type() != field.field_type {
            return Err(TemplateError::WrongType {
                field: name.to_owned(),
                expected: field.field_type,
                got: value.field_type(),
            });
        }
        let invalid = |reason: String| TemplateError::InvalidValue {
            field: name.to_owned(),
            reason,
        };
        let in_list = |v: &str| self.choices(field).iter().any(|c| c.value == v);
        match value {
            FieldValue::Text(s) => {
                if let Some(max) = field.max_length
                    && s.chars().count() > max
                {
                    return Err(invalid(format!("longer than {max} characters")));
                }
            }
            FieldValue::Integer(i) => check_bounds(field, *i as f64).map_err(invalid)?,
            FieldValue::Decimal(d) => {
                if !d.is_finite() {
                    return Err(invalid("not a finite number".into()));
                }
                check_bounds(field, *d).map_err(invalid)?
            }
            FieldValue::Date(s) => {
                let format = time::macros::format_description!("[year]-[month]-[day]");
                time::Date::parse(s, format)
                    .map_err(|_| invalid(format!("{s:?} is not a date YYYY-MM-DD")))?;
            }
            FieldValue::Boolean(_) => {}
            FieldValue::Choice(c) => {
                if !in_list(c) {
                    return Err(invalid(format!("{c:?} is not one of the choices")));
                }
            }
            FieldValue::Choices(cs) => {
                if let Some(c) = cs.iter().find(|c| !in_list(c)) {
                    return Err(invalid(format!("{c:?} is not one of the choices")));
                }
            }
        }
        Ok(())
    }

    /// Validates a record's values for submission: required fields present, every value valid.
    /// Messages are in Vietnamese, the officer's language.
    pub fn validate(&self, values: &BTreeMap<String, serde_json::Value>) -> Vec<Issue> {
        let mut issues = Vec::new();
        for field in &self.fields {
            match values.get(&field.name).filter(|v| !is_blank(v)) {
                None if field.required => issues.push(Issue {
                    field: field.name.clone(),
                    message: format!("Chưa nhập «{}» (bắt buộc)", field.label.vi),
                }),
                None => {}
                Some(json) => {
                    let checked = FieldValue::from_json(field.field_type, json)
                        .ok_or_else(|| TemplateError::InvalidValue {
                            field: field.name.clone(),
                            reason: "stored value has the wrong type".into(),
                        })
                        .and_then(|v| self.check_value(&field.name, &v));
                    if let Err(e) = checked {
                        issues.push(Issue {
                            field: field.name.clone(),
                            message: e.to_string(),
                        });
                    }
                }
            }
        }
        issues
    }

    /// How a stored value reads to a person: choice labels instead of choice codes.
    pub fn display(&self, field: &Field, json: &serde_json::Value, lang: &str) -> String {
        let label_of = |v: &str| {
            self.choices(field)
                .iter()
                .find(|c| c.value == v)
                .map(|c| c.label.text(lang).to_owned())
                .unwrap_or_else(|| v.to_owned())
        };
        match FieldValue::from_json(field.field_type, json) {
            Some(FieldValue::Choice(c)) => label_of(&c),
            Some(FieldValue::Choices(cs)) => cs
                .iter()
                .map(|c| label_of(c))
                .collect::<Vec<_>>()
                .join(", "),
            Some(FieldValue::Boolean(b)) => match (b, lang) {
                (true, "en") => "Yes".into(),
                (false, "en") => "No".into(),
                (true, _) => "Có".into(),
                (false, _) => "Không".into(),
            },
            Some(FieldValue::Text(s) | FieldValue::Date(s)) => s,
            Some(FieldValue::Integer(i)) => i.to_string(),
            Some(FieldValue::Decimal(d)) => d.to_string(),
            None => json.to_string(),
        }
    }
}

fn check_bounds(field: &Field, x: f64) -> Result<(), String> {
    if let Some(min) = field.min.filter(|min| x < *min) {
        return Err(format!("must be at least {min}"));
    }
    if let Some(max) = field.max.filter(|max| x > *max) {
        return Err(format!("must be at most {max}"));
    }
    Ok(())
}

fn is_blank(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::String(s) => s.trim().is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}
