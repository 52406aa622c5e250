//! Finding records by what was written in them. Officers type on cheap keyboards, often
//! without diacritics, so matching ignores case and Vietnamese tone and vowel marks:
//! "nguyen van" finds "Nguyễn Văn", "dien bien" finds "Điện Biên".

use std::collections::BTreeMap;

use serde_json::Value as Json;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lower case, without diacritics (`đ` becomes `d`).
pub fn fold(text: &str) -> String {
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .map(|c| match c {
            'đ' | 'Đ' => 'd',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether every word (already folded) appears in some text or number of `values`.
pub fn matches(values: &BTreeMap<String, Json>, words: &[String]) -> bool {
    let mut haystack = String::new();
    for value in values.values() {
        collect(value, &mut haystack);
    }
    let haystack = fold(&haystack);
    words.iter().all(|w| haystack.contains(w.as_str()))
}

fn collect(value: &Json, out: &mut String) {
    match value {
        Json::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Json::Number(n) => {
            out.push_str(&n.to_string());
            out.push('\n');
        }
        Json::Array(items) => items.iter().for_each(|v| collect(v, out)),
        Json::Object(map) => map.iter().filter(|(k, _)| !k.starts_with('_')).for_each(|(_, v)| collect(v, out)),
        Json::Bool(_) | Json::Null => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_drops_case_and_vietnamese_marks() {
        assert_eq!(fold("Nguyễn Văn Đức"), "nguyen van duc");
        assert_eq!(fold("ĐIỆN BIÊN"), "dien bien");
    }

    #[test]
    fn every_word_must_appear_somewhere_in_the_answers() {
        let values = BTreeMap::from([
            ("name".to_string(), Json::from("Lò Văn Thắng")),
            ("rows".to_string(), serde_json::json!([{"_id": "r1", "place": "Bản Púng"}])),
        ]);
        let words = |q: &str| fold(q).split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert!(matches(&values, &words("lo van thang")));
        assert!(matches(&values, &words("thắng pung")));
        assert!(!matches(&values, &words("thang hoa")));
        assert!(!matches(&values, &words("r1")), "row ids are not answers");
    }
}
