//! The form engine, pinned down: every field type, every expression feature, every
//! publication error. Templates here are small and written inline.

use std::collections::BTreeMap;

use diaban_core::FieldValue;
use diaban_core::form::{Env, Evaluation, Form, PublishError, RenderItem};
use diaban_core::record::{ChangeInfo, ConflictValue};
use serde_json::{Value as Json, json};

fn template(fields: Json) -> Json {
    json!({
        "id": "kiem_tra", "version": 1, "kind": "event",
        "label": {"vi": "Kiểm tra", "en": "Check"},
        "choice_lists": {
            "species": [
                {"value": "poppy", "label": {"vi": "Cây thuốc phiện", "en": "Opium poppy"}},
                {"value": "cannabis", "label": {"vi": "Cây cần sa", "en": "Cannabis"}}
            ]
        },
        "fields": fields
    })
}

fn compile(t: Json) -> Result<Form, PublishError> {
    Form::from_json(&t.to_string())
}

fn env() -> Env {
    Env { today: "2026-11-22".into(), period: Some(("2026-10-15".into(), "2026-11-14".into())), lang: "vi".into() }
}

fn eval(form: &Form, values: Json) -> Evaluation {
    form.evaluate(values.as_object().expect("values object"), &env(), &BTreeMap::new())
}

fn item<'a>(e: &'a Evaluation, name: &str) -> Option<&'a RenderItem> {
    e.items.iter().find(|i| i.name == name)
}

/// A crop-eradication inspection using every field type.
fn inspection() -> Form {
    compile(template(json!([
        {"name": "intro", "type": "note", "label": {"vi": "Ghi nhận việc phát hiện, tiêu hủy cây có chứa chất ma túy"}},
        {"name": "place", "type": "text", "label": {"vi": "Địa điểm"}, "required": true, "min_length": 3, "max_length": 80},
        {"name": "plot_code", "type": "text", "label": {"vi": "Mã lô"}, "pattern": "[A-Z]{2}-[0-9]{3}"},
        {"name": "found_on", "type": "date", "label": {"vi": "Ngày phát hiện"}, "required": true,
         "constraint": "value <= today && value >= period_start", "constraint_message": {"vi": "Ngày phát hiện phải trong kỳ và không sau hôm nay"}},
        {"name": "destroyed_at", "type": "datetime", "label": {"vi": "Thời điểm tiêu hủy"}},
        {"name": "destroyed", "type": "boolean", "label": {"vi": "Đã tiêu hủy"}, "default": false},
        {"name": "area_m2", "type": "decimal", "label": {"vi": "Diện tích (m²)"}, "min": 0, "max": 1000000},
        {"name": "species", "type": "single_choice", "choices": "species", "label": {"vi": "Loài cây"}, "required": true},
        {"name": "methods", "type": "multiple_choice", "label": {"vi": "Cách tiêu hủy"},
         "choices": [{"value": "uproot", "label": {"vi": "Nhổ bỏ"}}, {"value": "burn", "label": {"vi": "Đốt"}}],
         "relevant": "destroyed"},
        {"name": "location", "type": "geopoint", "label": {"vi": "Tọa độ"}},
        {"name": "photo", "type": "photo", "label": {"vi": "Ảnh hiện trường"}},
        {"name": "minutes", "type": "file", "label": {"vi": "Biên bản"}},
        {"name": "finds", "type": "repeat", "label": {"vi": "Các điểm phát hiện"}, "min": 1, "fields": [
            {"name": "plants", "type": "integer", "label": {"vi": "Số cây"}, "required": true, "min": 1},
            {"name": "plot_area", "type": "decimal", "label": {"vi": "Diện tích điểm (m²)"}},
            {"name": "dense", "type": "calculated", "result_type": "boolean", "label": {"vi": "Mật độ cao"},
             "calculation": "plot_area != null && plot_area > 0.0 && double(plants) / plot_area > 10.0"},
            {"name": "witnesses", "type": "repeat", "label": {"vi": "Người chứng kiến"}, "fields": [
                {"name": "witness_name", "type": "text", "label": {"vi": "Họ tên"}, "required": true},
                {"name": "witness_note", "type": "text", "label": {"vi": "Ghi chú"}, "relevant": "plants > 100"}
            ]}
        ]},
        {"name": "total_plants", "type": "calculated", "result_type": "integer", "label": {"vi": "Tổng số cây"},
         "calculation": "sum(finds.map(f, f.plants))"},
        {"name": "find_count", "type": "calculated", "result_type": "integer", "label": {"vi": "Số điểm"},
         "calculation": "size(finds)"},
        {"name": "dense_count", "type": "calculated", "result_type": "integer", "label": {"vi": "Số điểm mật độ cao"},
         "calculation": "size(finds.filter(f, f.dense))"},
        {"name": "big_find", "type": "calculated", "result_type": "boolean", "label": {"vi": "Vụ lớn"},
         "calculation": "total_plants >= 3000 || (area_m2 != null && area_m2 >= 750.0)"},
        {"name": "days_to_destroy", "type": "calculated", "result_type": "integer", "label": {"vi": "Số ngày đến khi tiêu hủy"},
         "calculation": "days_between(found_on, today)"},
        {"name": "recheck_on", "type": "calculated", "result_type": "date", "label": {"vi": "Ngày kiểm tra lại"},
         "calculation": "add_months(found_on, 1)"},
        {"name": "report_note", "type": "text", "label": {"vi": "Ghi chú báo cáo"}, "relevant": "big_find"}
    ])))
    .expect("the inspection template compiles")
}

fn complete_values() -> Json {
    json!({
        "place": "Bản Huổi Lèng",
        "plot_code": "HL-042",
        "found_on": "2026-11-02",
        "destroyed_at": "2026-11-03T09:15:00+07:00",
        "destroyed": true,
        "area_m2": 820.5,
        "species": "poppy",
        "methods": ["uproot", "burn"],
        "location": {"lat": 21.987, "lon": 103.123, "accuracy": 6.5},
        "photo": {"sha256": "a".repeat(64), "content_type": "image/jpeg", "size": 240_000},
        "minutes": {"sha256": "b".repeat(64), "content_type": "application/pdf", "size": 51_000},
        "finds": [
            {"_id": "r1", "plants": 2500, "plot_area": 100.0, "witnesses": [{"_id": "w1", "witness_name": "Lò Văn Sáng"}]},
            {"_id": "r2", "plants": 600, "plot_area": 200.0}
        ]
    })
}

#[test]
fn a_complete_record_of_every_field_type_can_be_submitted() {
    let e = eval(&inspection(), complete_values());
    assert_eq!(e.issues, vec![], "no issues");
    assert!(e.can_submit());
    let shown = |name: &str| item(&e, name).map(|i| i.display.clone());
    assert_eq!(shown("species").as_deref(), Some("Cây thuốc phiện"));
    assert_eq!(shown("methods").as_deref(), Some("Nhổ bỏ, Đốt"));
    assert_eq!(shown("destroyed").as_deref(), Some("Có"));
    assert_eq!(shown("location").as_deref(), Some("21.987000, 103.123000"));
    assert_eq!(shown("photo").as_deref(), Some("image/jpeg, 240000 B"));
    assert_eq!(shown("destroyed_at").as_deref(), Some("2026-11-03T09:15:00+07:00"));
    assert_eq!(shown("area_m2").as_deref(), Some("820.5"));
    let intro = item(&e, "intro").expect("notes are shown");
    assert!(intro.read_only && intro.value.is_none());
    assert_eq!(
        item(&e, "photo").and_then(|i| i.typed.clone()),
        Some(FieldValue::Attachment { sha256: "a".repeat(64), content_type: "image/jpeg".into(), size: 240_000 })
    );
}

#[test]
fn calculations_count_and_sum_over_repeat_rows_and_use_dates() {
    let e = eval(&inspection(), complete_values());
    assert_eq!(e.calculated["total_plants"], json!(3100));
    assert_eq!(e.calculated["find_count"], json!(2));
    assert_eq!(e.calculated["dense_count"], json!(1), "row calculations feed top-level ones");
    assert_eq!(e.calculated["big_find"], json!(true));
    assert_eq!(e.calculated["days_to_destroy"], json!(20));
    assert_eq!(e.calculated["recheck_on"], json!("2026-12-02"));
    let finds = item(&e, "finds").expect("group");
    assert_eq!(finds.rows.len(), 2);
    let dense: Vec<_> =
        finds.rows.iter().map(|r| r.items.iter().find(|i| i.name == "dense").and_then(|i| i.value.clone())).collect();
    assert_eq!(dense, vec![Some(json!(true)), Some(json!(false))]);
    assert_eq!(finds.rows[0].items[0].path, "finds/r1/plants");
}

#[test]
fn relevance_hides_fields_and_hidden_fields_are_not_required_or_checked() {
    let mut values = complete_values();
    values["destroyed"] = json!(false);
    values["methods"] = json!(["nonsense"]);
    let e = eval(&inspection(), values);
    assert!(item(&e, "methods").is_none(), "methods only when destroyed");
    assert!(e.can_submit(), "a hidden field's bad value does not block: {:?}", e.issues);
    // report_note appears only for a big find.
    assert!(item(&eval(&inspection(), complete_values()), "report_note").is_some());
    let mut small = complete_values();
    small["finds"] = json!([{"_id": "r1", "plants": 5}]);
    small["area_m2"] = json!(10.0);
    assert!(item(&eval(&inspection(), small), "report_note").is_none());
}

#[test]
fn relevance_inside_a_row_sees_the_rows_own_fields() {
    let mut values = complete_values();
    values["finds"] = json!([
        {"_id": "r1", "plants": 500, "witnesses": [{"_id": "w1", "witness_name": "A"}]},
        {"_id": "r2", "plants": 50, "witnesses": [{"_id": "w2", "witness_name": "B"}]}
    ]);
    let e = eval(&inspection(), values);
    let finds = item(&e, "finds").expect("group");
    let note_shown = |row: usize| {
        let witnesses = finds.rows[row].items.iter().find(|i| i.name == "witnesses").expect("nested group");
        witnesses.rows[0].items.iter().any(|i| i.name == "witness_note")
    };
    assert!(note_shown(0), "more than 100 plants in row 1");
    assert!(!note_shown(1), "50 plants in row 2");
}

#[test]
fn constraints_use_other_fields_today_and_the_period_bounds() {
    let form = inspection();
    for (date, ok) in [("2026-11-22", true), ("2026-11-23", false), ("2026-10-15", true), ("2026-10-14", false)] {
        let mut values = complete_values();
        values["found_on"] = json!(date);
        let e = eval(&form, values);
        let errors = &item(&e, "found_on").expect("shown").errors;
        assert_eq!(errors.is_empty(), ok, "{date}: {errors:?}");
        if !ok {
            assert_eq!(errors, &vec!["Ngày phát hiện phải trong kỳ và không sau hôm nay".to_string()]);
        }
    }
}

#[test]
fn missing_and_invalid_answers_are_listed_with_their_paths() {
    let e = eval(
        &inspection(),
        json!({
            "place": "HL", "plot_code": "hl-42", "area_m2": -1.0, "species": "coca",
            "finds": [{"_id": "r1", "witnesses": [{"_id": "w1"}]}]
        }),
    );
    let mut fields: Vec<&str> = e.issues.iter().map(|i| i.field.as_str()).collect();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "area_m2",
            "finds/r1/plants",
            "finds/r1/witnesses/w1/witness_name",
            "found_on",
            "place",
            "plot_code",
            "species"
        ]
    );
    assert!(!e.can_submit());
    let empty = eval(&inspection(), json!({}));
    assert!(
        empty.issues.iter().any(|i| i.field == "finds" && i.message.contains("ít nhất 1 dòng")),
        "{:?}",
        empty.issues
    );
}

#[test]
fn an_answer_is_checked_on_its_own_when_entered() {
    let form = inspection();
    assert!(form.check_answer("place", &FieldValue::Text("Bản Mới".into())).is_ok());
    assert!(form.check_answer("place", &FieldValue::Integer(3)).is_err(), "wrong type");
    assert!(form.check_answer("species", &FieldValue::Choice("coca".into())).is_err(), "not a choice");
    assert!(form.check_answer("area_m2", &FieldValue::Decimal(-2.0)).is_err(), "below min");
    assert!(form.check_answer("plot_code", &FieldValue::Text("HL-42".into())).is_err(), "pattern");
    assert!(form.check_answer("found_on", &FieldValue::Date("22/11/2026".into())).is_err(), "date format");
    assert!(form.check_answer("location", &FieldValue::Geopoint { lat: 95.0, lon: 0.0, accuracy: None }).is_err());
    assert!(form.check_answer("total_plants", &FieldValue::Integer(3)).is_err(), "calculated fields are not entered");
    assert!(form.check_answer("plants", &FieldValue::Integer(3)).is_ok(), "row fields are found by name");
    assert!(form.check_answer("nope", &FieldValue::Integer(3)).is_err());
}

#[test]
fn a_failing_calculation_gives_no_value_instead_of_an_error() {
    let e = eval(&inspection(), json!({"finds": []}));
    assert_eq!(e.calculated["days_to_destroy"], Json::Null, "found_on unanswered");
    assert_eq!(e.calculated["total_plants"], json!(0));
}

#[test]
fn labels_follow_the_language() {
    let form = inspection();
    let mut english = env();
    english.lang = "en".into();
    let e = form.evaluate(complete_values().as_object().expect("object"), &english, &BTreeMap::new());
    assert_eq!(item(&e, "species").map(|i| i.display.as_str()), Some("Opium poppy"));
    assert_eq!(item(&e, "destroyed").map(|i| i.display.as_str()), Some("Yes"));
}

#[test]
fn conflicts_are_shown_on_their_field_with_who_and_when() {
    let form = inspection();
    let by = |value: &str, user: &str, at: i64| ConflictValue {
        value: json!(value),
        info: ChangeInfo { by: Some(user.into()), device: Some(format!("{user}-phone")), at },
    };
    let conflicts = BTreeMap::from([("species".to_string(), vec![by("poppy", "a", 10), by("cannabis", "b", 11)])]);
    let e = form.evaluate(complete_values().as_object().expect("object"), &env(), &conflicts);
    let shown: Vec<(String, Option<String>, i64)> = item(&e, "species")
        .expect("species")
        .conflicts
        .iter()
        .map(|c| (c.display.clone(), c.by.clone(), c.at))
        .collect();
    assert_eq!(
        shown,
        vec![("Cây thuốc phiện".into(), Some("a".into()), 10), ("Cây cần sa".into(), Some("b".into()), 11)]
    );
}

// --- publication errors --------------------------------------------------------------

fn error_of(fields: Json) -> PublishError {
    match compile(template(fields)) {
        Ok(_) => panic!("the template should be refused"),
        Err(e) => e,
    }
}

fn text(name: &str) -> Json {
    json!({"name": name, "type": "text", "label": {"vi": name}})
}

#[test]
fn an_unknown_field_in_an_expression_is_refused() {
    let mut f = text("a");
    f["relevant"] = json!("b == 'x'");
    assert_eq!(
        error_of(json!([f])),
        PublishError::UnknownReference { field: "a".into(), which: "relevant", name: "b".into() }
    );
}

#[test]
fn a_row_field_is_not_visible_outside_its_group() {
    let group = json!({"name": "g", "type": "repeat", "label": {"vi": "g"}, "fields": [{"name": "n", "type": "integer", "label": {"vi": "n"}}]});
    let calc = json!({"name": "c", "type": "calculated", "result_type": "integer", "label": {"vi": "c"}, "calculation": "n + 1"});
    assert!(matches!(error_of(json!([group, calc])), PublishError::UnknownReference { name, .. } if name == "n"));
}

#[test]
fn a_cycle_between_calculations_is_refused() {
    let calc = |name: &str, expr: &str| json!({"name": name, "type": "calculated", "result_type": "integer", "label": {"vi": name}, "calculation": expr});
    let e = error_of(json!([calc("a", "b + 1"), calc("b", "c + 1"), calc("c", "a + 1")]));
    assert_eq!(e, PublishError::CalculationCycle(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
}

#[test]
fn invalid_cel_is_refused() {
    let mut f = text("a");
    f["constraint"] = json!("size(value > ");
    assert!(matches!(error_of(json!([f])), PublishError::InvalidExpression { which: "constraint", .. }));
}

#[test]
fn an_unknown_function_is_refused() {
    let mut f = text("a");
    f["constraint"] = json!("shout(value)");
    assert!(matches!(error_of(json!([f])), PublishError::UnknownFunction { name, .. } if name == "shout"));
}

#[test]
fn duplicate_names_are_refused_even_across_groups() {
    assert_eq!(error_of(json!([text("a"), text("a")])), PublishError::DuplicateField("a".into()));
    let group = json!({"name": "g", "type": "repeat", "label": {"vi": "g"}, "fields": [text("a")]});
    assert_eq!(error_of(json!([text("a"), group])), PublishError::DuplicateField("a".into()));
}

#[test]
fn a_missing_choice_list_is_refused() {
    let f = json!({"name": "a", "type": "single_choice", "choices": "nowhere", "label": {"vi": "a"}});
    assert_eq!(error_of(json!([f])), PublishError::MissingChoiceList { field: "a".into(), list: "nowhere".into() });
    let g = json!({"name": "b", "type": "multiple_choice", "label": {"vi": "b"}});
    assert_eq!(error_of(json!([g])), PublishError::NoChoices("b".into()));
    let dup = json!({"name": "c", "type": "single_choice", "label": {"vi": "c"},
        "choices": [{"value": "x", "label": {"vi": "x"}}, {"value": "x", "label": {"vi": "y"}}]});
    assert!(matches!(error_of(json!([dup])), PublishError::DuplicateChoice { .. }));
}

#[test]
fn type_mismatches_are_refused() {
    let n = json!({"name": "n", "type": "integer", "label": {"vi": "n"}});
    let mut adds_text = text("t");
    adds_text["relevant"] = json!("n + 'x' > 0");
    assert!(matches!(error_of(json!([n.clone(), adds_text])), PublishError::TypeMismatch { which: "relevant", .. }));
    let mut not_bool = text("u");
    not_bool["relevant"] = json!("n + 1");
    assert!(matches!(error_of(json!([n.clone(), not_bool])), PublishError::TypeMismatch { which: "relevant", .. }));
    let calc = json!({"name": "c", "type": "calculated", "result_type": "integer", "label": {"vi": "c"}, "calculation": "'văn bản'"});
    assert!(matches!(error_of(json!([calc])), PublishError::TypeMismatch { which: "calculation", .. }));
    let date_math = json!({"name": "d", "type": "calculated", "result_type": "date", "label": {"vi": "d"}, "calculation": "add_days(n, 1)"});
    assert!(matches!(error_of(json!([n, date_math])), PublishError::TypeMismatch { .. }));
}

#[test]
fn structural_mistakes_are_refused_with_the_field_named() {
    assert_eq!(error_of(json!([])), PublishError::NoFields);
    assert_eq!(error_of(json!([text("Tên")])), PublishError::BadFieldName("Tên".into()));
    assert_eq!(error_of(json!([text("today")])), PublishError::ReservedName("today".into()));
    let bounds = json!({"name": "n", "type": "integer", "label": {"vi": "n"}, "min": 5, "max": 1});
    assert_eq!(error_of(json!([bounds])), PublishError::MinAboveMax("n".into()));
    let mut bad_pattern = text("p");
    bad_pattern["pattern"] = json!("([a-z");
    assert!(matches!(error_of(json!([bad_pattern])), PublishError::BadPattern { .. }));
    let bad_default = json!({"name": "n", "type": "integer", "label": {"vi": "n"}, "default": "ba"});
    assert!(matches!(error_of(json!([bad_default])), PublishError::BadDefault { .. }));
    let no_calc = json!({"name": "c", "type": "calculated", "label": {"vi": "c"}});
    assert_eq!(error_of(json!([no_calc])), PublishError::IncompleteCalculation("c".into()));
    let empty_group = json!({"name": "g", "type": "repeat", "label": {"vi": "g"}, "fields": []});
    assert_eq!(error_of(json!([empty_group])), PublishError::EmptyRepeat("g".into()));
    let misplaced = json!({"name": "d", "type": "date", "label": {"vi": "d"}, "max_length": 3});
    assert!(matches!(error_of(json!([misplaced])), PublishError::MisplacedAttribute { .. }));
}

#[test]
fn periods_belong_to_periodic_reports_only() {
    let mut t = template(json!([text("a")]));
    t["period"] = json!({"length": "month", "start_day": 15, "due_days_after_end": 2});
    assert_eq!(compile(t.clone()).err(), Some(PublishError::PeriodMismatch));
    t["kind"] = json!("periodic_report");
    assert!(compile(t.clone()).is_ok());
    t["period"]["start_day"] = json!(31);
    assert!(matches!(compile(t).err(), Some(PublishError::BadPeriod(_))));
}

#[test]
fn a_shared_choice_list_is_copied_into_the_template_at_publication() {
    let t = template(
        json!([{"name": "a", "type": "single_choice", "choices": "shared:gender", "label": {"vi": "Giới tính"}}]),
    );
    let mut t: diaban_core::Template = serde_json::from_value(t).expect("template");
    let missing = t.clone().embed_shared_lists(|_| None);
    assert!(matches!(missing, Err(PublishError::MissingChoiceList { .. })));
    t.embed_shared_lists(|name| {
        (name == "gender").then(|| {
            serde_json::from_value(
                json!([{"value": "f", "label": {"vi": "Nữ"}}, {"value": "m", "label": {"vi": "Nam"}}]),
            )
            .expect("choices")
        })
    })
    .expect("embedded");
    let form = Form::compile(t).expect("compiles once the list is embedded");
    assert!(form.check_answer("a", &FieldValue::Choice("f".into())).is_ok());
}

#[test]
fn the_worked_examples_in_the_template_docs_compile() {
    let docs = include_str!("../../docs/templates.md");
    let mut compiled = 0;
    for block in docs.split("```json").skip(1).filter_map(|b| b.split("```").next()) {
        // Fragments elide parts with "…"; complete templates must compile.
        if block.contains('…') || !block.contains("\"fields\"") {
            continue;
        }
        let form = Form::from_json(block).unwrap_or_else(|e| panic!("worked example does not compile: {e}\n{block}"));
        assert!(!form.template().fields.is_empty());
        compiled += 1;
    }
    assert_eq!(compiled, 2, "both worked examples were checked");
}

#[test]
fn a_calculated_choice_shows_its_label_and_nothing_when_it_gives_no_value() {
    let kind = json!({"name": "kind", "type": "single_choice", "choices": "species", "label": {"vi": "Loài"}});
    let main = json!({"name": "main", "type": "calculated", "result_type": "single_choice", "choices": "species",
        "label": {"vi": "Loài chính"}, "calculation": "kind == 'poppy' ? 'poppy' : null"});
    let form = compile(template(json!([kind, main]))).expect("a calculated choice publishes");
    let poppy = eval(&form, json!({"kind": "poppy"}));
    assert_eq!(item(&poppy, "main").expect("main").display, "Cây thuốc phiện");
    let other = eval(&form, json!({"kind": "cannabis"}));
    assert_eq!(item(&other, "main").expect("main").display, "");

    let unlisted = json!({"name": "c", "type": "calculated", "result_type": "single_choice", "label": {"vi": "c"}, "calculation": "'x'"});
    assert_eq!(error_of(json!([unlisted])), PublishError::NoChoices("c".into()));
    let several = json!({"name": "d", "type": "calculated", "result_type": "multiple_choice", "choices": "species",
        "label": {"vi": "d"}, "calculation": "['poppy']"});
    assert!(matches!(error_of(json!([several])), PublishError::MisplacedAttribute { .. }));
    let listed_text = json!({"name": "e", "type": "calculated", "result_type": "text", "choices": "species",
        "label": {"vi": "e"}, "calculation": "'x'"});
    assert!(matches!(error_of(json!([listed_text])), PublishError::MisplacedAttribute { .. }));
}
