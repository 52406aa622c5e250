//! Typed field values, and how they are written to Automerge and shown as JSON.
//!
//! A value's Automerge form does not say its type (a date and a text are both strings);
//! the template's field type does. So reading goes through [`FieldValue::from_json`] with
//! the field type, and writing goes through [`FieldValue::to_json`].

use serde_json::Value as Json;

use crate::template::FieldType;

/// One answer in a record.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    Text(String),
    Integer(i64),
    Decimal(f64),
    /// A calendar date as `YYYY-MM-DD`, without a time zone: a session happened on a day.
    Date(String),
    Boolean(bool),
    /// The `value` of one choice of the field's choice list.
    Choice(String),
    /// The `value`s of several choices.
    Choices(Vec<String>),
}

impl FieldValue {
    /// The field type this value belongs to.
    pub fn field_type(&self) -> FieldType {
        match self {
            FieldValue::Text(_) => FieldType::Text,
            FieldValue::Integer(_) => FieldType::Integer,
            FieldValue::Decimal(_) => FieldType::Decimal,
            FieldValue::Date(_) => FieldType::Date,
            FieldValue::Boolean(_) => FieldType::Boolean,
            FieldValue::Choice(_) => FieldType::SingleChoice,
            FieldValue::Choices(_) => FieldType::MultipleChoice,
        }
    }

    pub fn to_json(&self) -> Json {
        match self {
            FieldValue::Text(s) | FieldValue::Date(s) | FieldValue::Choice(s) => {
                Json::from(s.as_str())
            }
            FieldValue::Integer(i) => Json::from(*i),
            FieldValue::Decimal(d) => Json::from(*d),
            FieldValue::Boolean(b) => Json::from(*b),
            FieldValue::Choices(v) => Json::from(v.clone()),
        }
    }

    /// Reads a stored JSON value as the given field type; `None` when the shapes disagree.
    pub fn from_json(field_type: FieldType, json: &Json) -> Option<FieldValue> {
        Some(match field_type {
            FieldType::Text => FieldValue::Text(json.as_str()?.to_owned()),
            FieldType::Date => FieldValue::Date(json.as_str()?.to_owned()),
            FieldType::SingleChoice => FieldValue::Choice(json.as_str()?.to_owned()),
            FieldType::Integer => FieldValue::Integer(json.as_i64()?),
            FieldType::Decimal => FieldValue::Decimal(json.as_f64()?),
            FieldType::Boolean => FieldValue::Boolean(json.as_bool()?),
            FieldType::MultipleChoice => FieldValue::Choices(
                json.as_array()?
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()?,
            ),
        })
    }
}
