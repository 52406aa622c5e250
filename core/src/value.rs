//! Typed field values, and their JSON form (which is also how they sit in Automerge).
//!
//! A value's stored form does not always say its type (a date and a text are both strings);
//! the template's field type does. So reading goes through [`FieldValue::from_json`] with
//! the field type.

use serde_json::{Value as Json, json};

use crate::template::FieldType;

/// One answer in a record.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    Text(String),
    Integer(i64),
    Decimal(f64),
    /// A calendar date `YYYY-MM-DD`, without a time zone: a session happened on a day.
    Date(String),
    /// An instant, RFC 3339 with its offset, e.g. `2026-11-20T08:30:00+07:00`.
    Datetime(String),
    Boolean(bool),
    /// The `value` of one choice.
    Choice(String),
    /// The `value`s of several choices.
    Choices(Vec<String>),
    /// WGS 84 degrees; accuracy in metres as the phone reports it.
    Geopoint {
        lat: f64,
        lon: f64,
        accuracy: Option<f64>,
    },
    /// A photo or file, by content hash; its bytes travel separately.
    Attachment {
        sha256: String,
        content_type: String,
        size: u64,
    },
}

impl FieldValue {
    /// Whether this value can be the answer of a field of type `t`.
    pub fn fits(&self, t: FieldType) -> bool {
        matches!(
            (self, t),
            (FieldValue::Text(_), FieldType::Text)
                | (FieldValue::Integer(_), FieldType::Integer)
                | (FieldValue::Decimal(_), FieldType::Decimal)
                | (FieldValue::Date(_), FieldType::Date)
                | (FieldValue::Datetime(_), FieldType::Datetime)
                | (FieldValue::Boolean(_), FieldType::Boolean)
                | (FieldValue::Choice(_), FieldType::SingleChoice)
                | (FieldValue::Choices(_), FieldType::MultipleChoice)
                | (FieldValue::Geopoint { .. }, FieldType::Geopoint)
                | (FieldValue::Attachment { .. }, FieldType::Photo | FieldType::File)
        )
    }

    pub fn to_json(&self) -> Json {
        match self {
            FieldValue::Text(s) | FieldValue::Date(s) | FieldValue::Datetime(s) | FieldValue::Choice(s) => {
                Json::from(s.as_str())
            }
            FieldValue::Integer(i) => Json::from(*i),
            FieldValue::Decimal(d) => Json::from(*d),
            FieldValue::Boolean(b) => Json::from(*b),
            FieldValue::Choices(v) => Json::from(v.clone()),
            FieldValue::Geopoint { lat, lon, accuracy } => match accuracy {
                Some(a) => json!({"lat": lat, "lon": lon, "accuracy": a}),
                None => json!({"lat": lat, "lon": lon}),
            },
            FieldValue::Attachment { sha256, content_type, size } => {
                json!({"sha256": sha256, "content_type": content_type, "size": size})
            }
        }
    }

    /// Reads a stored JSON value as the given field type; `None` when the shapes disagree.
    pub fn from_json(field_type: FieldType, json: &Json) -> Option<FieldValue> {
        Some(match field_type {
            FieldType::Text | FieldType::Note => FieldValue::Text(json.as_str()?.to_owned()),
            FieldType::Date => FieldValue::Date(json.as_str()?.to_owned()),
            FieldType::Datetime => FieldValue::Datetime(json.as_str()?.to_owned()),
            FieldType::SingleChoice => FieldValue::Choice(json.as_str()?.to_owned()),
            FieldType::Integer | FieldType::Counter => FieldValue::Integer(json.as_i64()?),
            FieldType::Decimal => FieldValue::Decimal(json.as_f64()?),
            FieldType::Boolean => FieldValue::Boolean(json.as_bool()?),
            FieldType::MultipleChoice => FieldValue::Choices(
                json.as_array()?.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>()?,
            ),
            FieldType::Geopoint => FieldValue::Geopoint {
                lat: json.get("lat")?.as_f64()?,
                lon: json.get("lon")?.as_f64()?,
                accuracy: match json.get("accuracy") {
                    None | Some(Json::Null) => None,
                    Some(a) => Some(a.as_f64()?),
                },
            },
            FieldType::Photo | FieldType::File => FieldValue::Attachment {
                sha256: json.get("sha256")?.as_str()?.to_owned(),
                content_type: json.get("content_type")?.as_str()?.to_owned(),
                size: json.get("size")?.as_u64()?,
            },
            FieldType::Calculated | FieldType::Repeat => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_type_round_trips_through_json() {
        let cases = [
            (FieldType::Text, FieldValue::Text("Bản Nà Sản".into())),
            (FieldType::Integer, FieldValue::Integer(-4)),
            (FieldType::Decimal, FieldValue::Decimal(12.5)),
            (FieldType::Date, FieldValue::Date("2026-11-20".into())),
            (FieldType::Datetime, FieldValue::Datetime("2026-11-20T08:30:00+07:00".into())),
            (FieldType::Boolean, FieldValue::Boolean(true)),
            (FieldType::SingleChoice, FieldValue::Choice("youth".into())),
            (FieldType::MultipleChoice, FieldValue::Choices(vec!["a".into(), "b".into()])),
            (FieldType::Geopoint, FieldValue::Geopoint { lat: 21.3, lon: 103.9, accuracy: Some(8.0) }),
            (
                FieldType::Photo,
                FieldValue::Attachment { sha256: "a".repeat(64), content_type: "image/jpeg".into(), size: 90_000 },
            ),
            (
                FieldType::File,
                FieldValue::Attachment { sha256: "b".repeat(64), content_type: "application/pdf".into(), size: 1 },
            ),
        ];
        for (t, v) in cases {
            assert!(v.fits(t), "{v:?} fits {t:?}");
            assert_eq!(FieldValue::from_json(t, &v.to_json()), Some(v.clone()), "{t:?}");
        }
        assert_eq!(FieldValue::from_json(FieldType::Integer, &Json::from("7")), None);
        assert!(!FieldValue::Text("x".into()).fits(FieldType::Date));
    }
}
