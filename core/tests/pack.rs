//! The default template pack (`server/pack/*.json`): every file publishes (passes every
//! publication check), every indicator matches its source template, every label is in
//! Vietnamese and English, and every template notes its unverified facts.

use std::path::PathBuf;

use diaban_core::Form;
use diaban_core::indicators::check_sources;
use diaban_core::template::Template;

fn pack_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../server/pack")
}

fn pack() -> Vec<(String, Template)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(pack_dir()).expect("pack directory") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("readable");
            let form = Form::from_json(&text).unwrap_or_else(|e| panic!("{} does not publish: {e}", path.display()));
            out.push((path.file_name().unwrap().to_string_lossy().into_owned(), form.template().clone()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_pack_file_is_in_unicode_nfc() {
    // Vietnamese in NFC uses precomposed letters; a combining diacritic means NFD text, which
    // sorts and compares differently on phones.
    for entry in std::fs::read_dir(pack_dir()).expect("pack directory") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        let combining = text.chars().find(|c| ('\u{0300}'..='\u{036F}').contains(c));
        assert_eq!(combining, None, "{} has a combining diacritic (not NFC)", path.display());
    }
}

#[test]
fn every_pack_file_publishes_under_its_own_name() {
    let pack = pack();
    assert!(pack.len() >= 10, "the pack has every template of brief §8, got {}", pack.len());
    for (file, t) in &pack {
        assert_eq!(file, &format!("{}.json", t.id));
    }
}

#[test]
fn every_indicator_matches_its_source_template() {
    let pack = pack();
    let lookup = |id: &str| pack.iter().map(|(_, t)| t).find(|t| t.id == id).cloned();
    let mut with_indicators = 0;
    for (_, t) in &pack {
        check_sources(t, lookup).unwrap_or_else(|e| panic!("{}: {e}", t.id));
        with_indicators += usize::from(!t.indicators.is_empty());
    }
    assert!(with_indicators >= 3, "monthly, annual report and assessment compute indicators");
}

#[test]
fn labels_are_vietnamese_with_english_and_notes_flag_unverified_facts() {
    for (_, t) in pack() {
        assert!(t.label.en.is_some(), "{} has an English label", t.id);
        for (_, f) in t.walk() {
            assert!(
                !f.label.vi.trim().is_empty() && f.label.en.is_some(),
                "{}.{} is labelled in vi and en",
                t.id,
                f.name
            );
        }
        for list in t.choice_lists.values() {
            for c in list {
                assert!(c.label.en.is_some(), "{}: choice {} has an English label", t.id, c.value);
            }
        }
        let notes = t.notes.as_deref().unwrap_or_default();
        assert!(notes.contains("[U]"), "{} says in its notes which facts are unverified", t.id);
    }
}
