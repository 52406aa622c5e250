//! Size limits on what a phone, a client or a browser may send. The phone refuses an answer
//! over a limit as it is entered; the server refuses a pushed record over any limit with a
//! per-record reason and stores nothing of it. Generous for the work (a monthly report, a
//! registry entry with years of checks), far below what could exhaust a server.

use std::collections::BTreeMap;

use serde_json::Value as Json;

/// Characters in one text answer (a template's `max_length` may say less).
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Rows of one repeat group.
pub const MAX_ROWS: usize = 1_000;
/// Selections in one multiple-choice answer.
pub const MAX_CHOICES: usize = 500;
/// A record's answers, as JSON bytes.
pub const MAX_VALUES_BYTES: usize = 512 * 1024;
/// A record's document as the server stores it (snapshot and chunks), history included.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;
/// Operations in one pushed change.
pub const MAX_CHANGE_OPS: usize = 50_000;
/// Records in one sync request (a phone sends at most 512 KiB of changes at a time).
pub const MAX_PUSH_RECORDS: usize = 2_000;
/// A template's JSON text.
pub const MAX_TEMPLATE_BYTES: usize = 1024 * 1024;
/// A username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;
/// A password, in bytes (checked before it is hashed).
pub const MAX_PASSWORD_BYTES: usize = 256;
/// A device's name, in characters.
pub const MAX_DEVICE_NAME_CHARS: usize = 100;
/// A reviewer's comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 4_000;

/// What is over a limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("{what} has {chars} characters; at most {max} are allowed")]
    TooLong { what: String, chars: usize, max: usize },
    #[error("{what} has {count} items; at most {max} are allowed")]
    TooMany { what: String, count: usize, max: usize },
    #[error("{what} is {bytes} bytes; at most {max} are allowed")]
    TooLarge { what: String, bytes: usize, max: usize },
}

/// A text of `what`, at most `max` characters.
pub fn check_chars(what: &str, text: &str, max: usize) -> Result<(), LimitError> {
    // Bytes bound characters from above: most texts need no count.
    if text.len() > max {
        let chars = text.chars().count();
        if chars > max {
            return Err(LimitError::TooLong { what: what.to_owned(), chars, max });
        }
    }
    Ok(())
}

fn check_count(what: &str, count: usize, max: usize) -> Result<(), LimitError> {
    if count > max {
        return Err(LimitError::TooMany { what: what.to_owned(), count, max });
    }
    Ok(())
}

/// `bytes` of `what`, at most `max`.
pub fn check_bytes(what: &str, bytes: usize, max: usize) -> Result<(), LimitError> {
    if bytes > max {
        return Err(LimitError::TooLarge { what: what.to_owned(), bytes, max });
    }
    Ok(())
}

/// One answer's JSON (a field's value, or a repeat group's rows) under the limits: every text
/// in it, every list, and the rows' own answers.
pub fn check_value(field: &str, value: &Json) -> Result<(), LimitError> {
    match value {
        Json::String(s) => check_chars(field, s, MAX_TEXT_CHARS),
        Json::Array(items) => {
            let max = if items.iter().all(Json::is_object) { MAX_ROWS } else { MAX_CHOICES };
            check_count(field, items.len(), max)?;
            items.iter().try_for_each(|item| check_value(field, item))
        }
        Json::Object(map) => map.iter().try_for_each(|(k, v)| check_value(&format!("{field}/{k}"), v)),
        _ => Ok(()),
    }
}

/// A record's answers under the limits: each answer, and all of them together.
pub fn check_values(values: &BTreeMap<String, Json>) -> Result<(), LimitError> {
    let mut bytes = 0;
    for (name, value) in values {
        check_value(name, value)?;
        bytes += name.len() + value.to_string().len();
    }
    check_bytes("the record's answers", bytes, MAX_VALUES_BYTES)
}

/// Pushed changes under the limits: operations per change.
pub fn check_changes(changes: &[automerge::Change]) -> Result<(), LimitError> {
    changes.iter().try_for_each(|c| check_count("a change's operations", c.len(), MAX_CHANGE_OPS))
}

/// A push of `count` records.
pub fn check_push(count: usize) -> Result<(), LimitError> {
    check_count("the sync request's records", count, MAX_PUSH_RECORDS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn texts_are_counted_in_characters_not_bytes() {
        let vietnamese = "ệ".repeat(MAX_TEXT_CHARS);
        assert!(vietnamese.len() > MAX_TEXT_CHARS);
        assert_eq!(check_value("note", &json!(vietnamese)), Ok(()));
        let long = "a".repeat(MAX_TEXT_CHARS + 1);
        assert!(matches!(check_value("note", &json!(long)), Err(LimitError::TooLong { chars: 10_001, .. })));
    }

    #[test]
    fn rows_choices_and_the_texts_inside_rows_are_bounded() {
        let rows: Vec<Json> = (0..=MAX_ROWS).map(|i| json!({"_id": i.to_string()})).collect();
        assert!(matches!(check_value("checks", &Json::Array(rows)), Err(LimitError::TooMany { .. })));
        let choices: Vec<Json> = (0..=MAX_CHOICES).map(|i| json!(i.to_string())).collect();
        assert!(check_value("drugs", &Json::Array(choices)).is_err());
        let row = json!([{"_id": "a", "note": "x".repeat(MAX_TEXT_CHARS + 1)}]);
        assert!(matches!(check_value("checks", &row), Err(LimitError::TooLong { what, .. }) if what == "checks/note"));
    }

    #[test]
    fn a_record_too_large_in_all_is_refused_though_each_answer_fits() {
        let values: BTreeMap<String, Json> =
            (0..60).map(|i| (format!("f{i}"), json!("a".repeat(MAX_TEXT_CHARS)))).collect();
        assert!(matches!(check_values(&values), Err(LimitError::TooLarge { .. })));
    }
}
