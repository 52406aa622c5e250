//! Indicators, classification and reminders of the default pack, against hand-counted
//! fixtures: the real templates of `server/pack/` over records written out by hand.
//!
//! The fixture commune is 03694 (Mường Giôn); 04231 (Sốp Cộp) is its neighbour. The monthly
//! period `2026-11` on 15th-to-14th periods runs from 15/10/2026 to 14/11/2026.

use std::collections::BTreeMap;
use std::path::PathBuf;

use diaban_core::Form;
use diaban_core::form::Env;
use diaban_core::indicators::{IndicatorValue, SourceRecord, Sources, compute};
use diaban_core::reminders::reminders;
use diaban_core::template::Template;
use serde_json::{Map, Value as Json, json};

const HERE: &str = "03694";
const NEIGHBOUR: &str = "04231";

fn pack_text(id: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../server/pack/{id}.json"));
    std::fs::read_to_string(path).expect("pack file")
}

fn form(id: &str) -> Form {
    Form::from_json(&pack_text(id)).expect("pack template publishes")
}

/// A record as the server projects it: answers plus calculated values.
fn record(form: &Form, id: &str, unit: &str, answers: Json) -> SourceRecord {
    let values: Map<String, Json> = answers.as_object().cloned().expect("object");
    let env = Env { today: "2026-11-20".into(), period: None, lang: "vi".into() };
    let evaluation = form.evaluate(&values, &env, &BTreeMap::new());
    let mut values = values;
    values.extend(evaluation.calculated);
    SourceRecord { id: id.into(), unit_code: unit.into(), values }
}

fn person(form: &Form, id: &str, unit: &str, sex: &str, born: &str, periods: Json, extra: Json) -> SourceRecord {
    let mut answers = json!({"full_name": id, "sex": sex, "birth_date": born, "residence_kind": "permanent",
                             "address": "Bản Nà Sản", "periods": periods});
    answers.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    record(form, id, unit, answers)
}

struct Fixture {
    forms: BTreeMap<&'static str, Form>,
    records: BTreeMap<&'static str, Vec<SourceRecord>>,
}

impl Fixture {
    fn sources(&self) -> Sources<'_> {
        self.forms
            .iter()
            .map(|(id, f)| (*id, (f.template(), self.records.get(id).map(Vec::as_slice).unwrap_or(&[]))))
            .collect()
    }
}

fn fixture() -> Fixture {
    let ids = ["person_record", "hotspot", "crop_eradication", "business_inspection", "propaganda_session"];
    let forms: BTreeMap<&'static str, Form> = ids.into_iter().map(|id| (id, form(id))).collect();
    let p = &forms["person_record"];
    let people = vec![
        // In force, synthetic drugs.
        person(
            p,
            "P1",
            HERE,
            "male",
            "1990-05-01",
            json!([{"_id": "a", "status": "user_managed", "start_date": "2026-03-01", "duration_months": 12}]),
            json!({"drug_types": ["methamphetamine"]}),
        ),
        // Starts on the period's last day; 17 on that day (18 the day after).
        person(
            p,
            "P2",
            HERE,
            "female",
            "2008-11-15",
            json!([{"_id": "a", "status": "user_managed", "start_date": "2026-11-14", "duration_months": 12}]),
            json!({}),
        ),
        // Starts on the period's first day and ends on its last day: new, ended, and in force at the end.
        person(
            p,
            "P3",
            HERE,
            "male",
            "2000-06-01",
            json!([{"_id": "a", "status": "user_managed", "start_date": "2026-10-15", "duration_months": 12,
                    "end_date": "2026-11-14", "end_reason": "expired_no_use"}]),
            json!({"drug_types": ["heroin"]}),
        ),
        // Ended the day before the period; a determination the day after it.
        person(
            p,
            "P4",
            HERE,
            "male",
            "1985-01-01",
            json!([{"_id": "a", "status": "user_managed", "start_date": "2025-11-15", "duration_months": 12,
                    "end_date": "2026-10-14", "end_reason": "expired_no_use"},
                   {"_id": "b", "status": "addicted", "start_date": "2026-11-15"}]),
            json!({}),
        ),
        // Post-rehab after home rehab; a temporary resident.
        person(
            p,
            "P5",
            HERE,
            "female",
            "1995-03-03",
            json!([{"_id": "a", "status": "rehab_home", "start_date": "2025-11-01", "duration_months": 6,
                    "end_date": "2026-04-30", "end_reason": "completed"},
                   {"_id": "b", "status": "post_rehab", "start_date": "2026-05-01", "duration_months": 12}]),
            json!({"residence_kind": "temporary"}),
        ),
        // A relapse in the period.
        person(
            p,
            "P6",
            HERE,
            "male",
            "1992-07-07",
            json!([{"_id": "a", "status": "addicted", "relapse": true, "start_date": "2026-11-01"}]),
            json!({}),
        ),
        // A new determination, then rehab at a facility, both in the period.
        person(
            p,
            "P7",
            HERE,
            "male",
            "1998-02-02",
            json!([{"_id": "a", "status": "addicted", "relapse": false, "start_date": "2026-10-20",
                    "end_date": "2026-10-31", "end_reason": "completed"},
                   {"_id": "b", "status": "rehab_facility", "start_date": "2026-11-01", "duration_months": 6}]),
            json!({}),
        ),
        // Moved to the neighbour mid-period; the open period was not closed: counted nowhere here.
        person(
            p,
            "P8",
            HERE,
            "male",
            "1980-01-01",
            json!([{"_id": "a", "status": "user_managed", "start_date": "2026-06-01", "duration_months": 12}]),
            json!({"moves": [{"_id": "m", "moved_on": "2026-11-01", "from_unit": HERE, "to_unit": NEIGHBOUR}]}),
        ),
        // Moved in mid-period with the remainder of a period that began elsewhere.
        person(
            p,
            "P9",
            HERE,
            "female",
            "1993-09-09",
            json!([{"_id": "a", "status": "user_managed", "start_date": "2026-05-10", "duration_months": 12}]),
            json!({"moves": [{"_id": "m", "moved_on": "2026-11-05", "from_unit": NEIGHBOUR, "to_unit": HERE}]}),
        ),
        // The neighbour's own person.
        person(
            p,
            "P10",
            NEIGHBOUR,
            "male",
            "1990-01-01",
            json!([{"_id": "a", "status": "user_managed", "start_date": "2026-11-01", "duration_months": 12}]),
            json!({}),
        ),
        // Determined in the neighbour on 18/10, moved here on 20/10: the new user is the neighbour's.
        person(
            p,
            "P11",
            HERE,
            "female",
            "2001-12-01",
            json!([{"_id": "a", "status": "user_managed", "start_date": "2026-10-18", "duration_months": 12}]),
            json!({"moves": [{"_id": "m", "moved_on": "2026-10-20", "from_unit": NEIGHBOUR, "to_unit": HERE}]}),
        ),
    ];
    let h = &forms["hotspot"];
    let spot = |id: &str, answers: Json| {
        let mut a = json!({"name": id, "kind": "use", "address": "Bản Co Muông", "found_source": "patrol"});
        a.as_object_mut().unwrap().extend(answers.as_object().cloned().unwrap());
        record(h, id, HERE, a)
    };
    let hotspots = vec![
        spot("H1", json!({"found_on": "2026-10-15"})),
        spot("H2", json!({"found_on": "2026-03-01", "eliminated_on": "2026-11-14", "elimination_basis": "Vụ án 12"})),
        spot(
            "H3",
            json!({"found_on": "2026-01-01", "eliminated_on": "2026-05-01", "elimination_basis": "Vụ án 3",
                          "rechecks": [{"_id": "r1", "recheck_date": "2026-06-01", "recheck_result": "holds"},
                                       {"_id": "r2", "recheck_date": "2026-11-02", "recheck_result": "re_emerged"}]}),
        ),
        spot("H4", json!({"found_on": "2026-10-14", "kind": "retail"})),
    ];
    let c = &forms["crop_eradication"];
    let crops = vec![
        record(
            c,
            "C1",
            HERE,
            json!({"found_on": "2026-11-10", "destroyed_on": "2026-11-14", "place": "Nương bản Huổi Lếch",
            "finds": [{"_id": "f1", "species": "poppy", "plants": 2500, "area_m2": 600.5},
                      {"_id": "f2", "species": "cannabis", "plants": 700}]}),
        ),
        record(
            c,
            "C2",
            HERE,
            json!({"found_on": "2026-10-10", "destroyed_on": "2026-10-14", "place": "Bản Pá Liềng",
            "finds": [{"_id": "f1", "species": "poppy", "plants": 100, "area_m2": 20.0}]}),
        ),
    ];
    let i = &forms["business_inspection"];
    let inspections = vec![
        record(
            i,
            "I1",
            HERE,
            json!({"inspected_on": "2026-11-01", "business_name": "Karaoke Hoa Ban", "business_kind": "karaoke",
            "address": "Trung tâm xã", "security_certificate": true, "drugs_found": false}),
        ),
        record(
            i,
            "I2",
            HERE,
            json!({"inspected_on": "2026-11-10", "business_name": "Nhà nghỉ Suối Mơ", "business_kind": "guesthouse",
            "address": "Quốc lộ 6", "security_certificate": false, "drugs_found": false,
            "violations": [{"_id": "v1", "violation": "Không thông báo lưu trú", "handling": "fine", "fine_vnd": 1500000}]}),
        ),
    ];
    let s = &forms["propaganda_session"];
    let session = |id: &str, date: &str, participants: i64| {
        record(
            s,
            id,
            HERE,
            json!({"session_date": date, "place": "Nhà văn hóa", "audience_group": "residents", "participants": participants}),
        )
    };
    let sessions =
        vec![session("S1", "2026-10-15", 85), session("S2", "2026-11-14", 120), session("S3", "2026-11-15", 50)];
    let records = BTreeMap::from([
        ("person_record", people),
        ("hotspot", hotspots),
        ("crop_eradication", crops),
        ("business_inspection", inspections),
        ("propaganda_session", sessions),
    ]);
    Fixture { forms, records }
}

fn as_map(values: Vec<IndicatorValue>) -> BTreeMap<String, f64> {
    values.into_iter().map(|v| (v.field, v.value)).collect()
}

fn expect(got: &BTreeMap<String, f64>, expected: &[(&str, f64)]) {
    for (field, value) in expected {
        assert_eq!(got.get(*field), Some(value), "{field}");
    }
}

#[test]
fn monthly_indicators_on_15th_to_14th_periods_match_the_hand_count() {
    let f = fixture();
    let report = form("commune_monthly_report");
    let got = as_map(compute(report.template(), "2026-11", HERE, &f.sources()).unwrap());
    expect(
        &got,
        &[
            // P1, P2 (starts on the last day), P3 (ends on the last day), P5, P6, P7, P9 (moved in), P11.
            ("people_total", 8.0),
            ("status_user_managed", 5.0),
            ("status_addicted", 1.0),
            ("status_rehab_home", 0.0),
            ("status_rehab_facility", 1.0),
            ("status_methadone", 0.0),
            ("status_compulsory_rehab", 0.0),
            ("status_post_rehab", 1.0),
            ("people_male", 4.0),
            ("people_female", 4.0),
            ("age_under_18", 1.0),
            ("age_18_29", 3.0),
            ("age_30_plus", 4.0),
            ("people_synthetic", 1.0),
            ("people_temporary", 1.0),
            // P2 on the last day, P3 on the first; not P11 (determined before moving in), not P10.
            ("new_users", 2.0),
            ("new_addicts", 1.0),
            ("relapses", 1.0),
            ("users_ended", 1.0),
            ("hotspots_found", 1.0),
            ("hotspots_eliminated", 1.0),
            // H1, H2 (eliminated on the last day, in force through it), H4 (found the day before).
            ("hotspots_active", 3.0),
            ("hotspots_reemerged", 1.0),
            ("crop_operations", 1.0),
            ("plants_destroyed", 3200.0),
            ("area_destroyed", 600.5),
            ("inspections", 2.0),
            ("inspections_violating", 1.0),
            ("sessions", 2.0),
            ("participants", 205.0),
        ],
    );
    // Every indicator field of the report is computed, none left out.
    let targets: usize = report.template().indicators.iter().map(|i| diaban_core::indicators::targets(i).len()).sum();
    assert_eq!(got.len(), targets);
}

#[test]
fn the_neighbour_counts_the_person_who_moved_there_only_in_its_own_record() {
    let f = fixture();
    let report = form("commune_monthly_report");
    let got = as_map(compute(report.template(), "2026-11", NEIGHBOUR, &f.sources()).unwrap());
    // P10 only: P8's and P9's records belong to 03694; the neighbour keeps its own records of them.
    expect(&got, &[("people_total", 1.0), ("new_users", 1.0), ("sessions", 0.0), ("hotspots_active", 0.0)]);
}

#[test]
fn the_previous_period_ends_on_the_14th() {
    let f = fixture();
    let report = form("commune_monthly_report");
    let got = as_map(compute(report.template(), "2026-10", HERE, &f.sources()).unwrap());
    // 15/9–14/10: P4's period ends on 14/10 (ended, and in force at the end); H4 found on 14/10;
    // C2 destroyed on 14/10; S1 on 15/10 is next month's.
    expect(
        &got,
        &[
            ("users_ended", 1.0),
            // P1, P4 (ends on 14/10), P8 (moves away only on 1/11); not P9, still the neighbour's until 5/11.
            ("status_user_managed", 3.0),
            ("hotspots_found", 1.0),
            ("plants_destroyed", 100.0),
            ("area_destroyed", 20.0),
            ("sessions", 0.0),
        ],
    );
}

#[test]
fn a_calendar_month_is_a_template_setting() {
    let f = fixture();
    let mut template: Template = serde_json::from_str(&pack_text("commune_monthly_report")).unwrap();
    template.version += 1;
    template.period.as_mut().unwrap().start_day = 1;
    let calendar = Form::compile(template).expect("republishes");
    let got = as_map(compute(calendar.template(), "2026-11", HERE, &f.sources()).unwrap());
    // 1/11–30/11: P2 starts 14/11 (P3's 15/10 is October's); S2 and S3; C1.
    expect(&got, &[("new_users", 1.0), ("sessions", 2.0), ("participants", 170.0), ("plants_destroyed", 3200.0)]);
}

/// The classification of an assessment with these answers (indicator fields included).
fn classify(form: &Form, answers: Json) -> Option<Json> {
    let env =
        Env { today: "2027-01-20".into(), period: Some(("2026-01-01".into(), "2026-12-31".into())), lang: "vi".into() };
    form.evaluate(answers.as_object().unwrap(), &env, &BTreeMap::new())
        .calculated
        .get("classification")
        .filter(|v| !v.is_null())
        .cloned()
}

fn assessment(people: i64, locations: i64, offenders: i64, plants: i64, area: f64, route: bool) -> Json {
    json!({"population": 10000, "people_with_records": people, "use_locations": locations, "offenders": offenders,
           "plants_destroyed": plants, "area_destroyed": area, "on_drug_route": route})
}

#[test]
fn classification_type_i_needs_three_criteria_at_the_verified_thresholds() {
    let f = form("commune_assessment");
    // 0.5% of 10,000 = 50 people; 2 locations; 0.1% = 10 offenders: exactly at the type I thresholds.
    assert_eq!(classify(&f, assessment(50, 2, 10, 0, 0.0, false)), Some(json!("I")));
    // 3,000 plants alone is one criterion; with 2 locations and 10 offenders, three.
    assert_eq!(classify(&f, assessment(0, 2, 10, 3000, 0.0, false)), Some(json!("I")));
    assert_eq!(classify(&f, assessment(0, 2, 10, 0, 750.0, false)), Some(json!("I")));
    // Just under every type I threshold but one: type II (its [U] thresholds: 0.3%, 1, 0.05%, 500 plants).
    assert_eq!(classify(&f, assessment(49, 1, 10, 2999, 749.9, false)), Some(json!("II")));
    // Nothing at all: no type.
    assert_eq!(classify(&f, assessment(0, 0, 0, 0, 0.0, false)), Some(json!("none")));
    // A single location: type III.
    assert_eq!(classify(&f, assessment(0, 1, 0, 0, 0.0, false)), Some(json!("III")));
    // No population, no rate: no classification rather than a wrong one.
    let mut missing = assessment(50, 2, 10, 0, 0.0, false);
    missing.as_object_mut().unwrap().remove("population");
    assert_eq!(classify(&f, missing), None);
}

#[test]
fn the_route_criterion_counts_only_with_two_criteria_of_type_iii_or_above() {
    let f = form("commune_assessment");
    // 10 people (0.1%), 2 locations, 10 offenders: two type I criteria, three of type III.
    assert_eq!(classify(&f, assessment(10, 2, 10, 0, 0.0, false)), Some(json!("III")));
    assert_eq!(classify(&f, assessment(10, 2, 10, 0, 0.0, true)), Some(json!("I")));
    // On a route with a single type III criterion: the route does not count.
    assert_eq!(classify(&f, assessment(0, 1, 0, 0, 0.0, true)), Some(json!("III")));
}

#[test]
fn an_admin_changes_a_threshold_by_republishing_the_template() {
    let text = pack_text("commune_assessment");
    let mut template: Template = serde_json::from_str(&text).unwrap();
    let before = form("commune_assessment");
    assert_eq!(classify(&before, assessment(50, 2, 10, 0, 0.0, false)), Some(json!("I")));
    template.version += 1;
    let field = template.fields.iter_mut().find(|f| f.name == "criteria_type_i").unwrap();
    let calculation = field.calculation.take().unwrap();
    assert!(calculation.contains("use_locations >= 2"));
    field.calculation = Some(calculation.replace("use_locations >= 2", "use_locations >= 3"));
    let after = Form::compile(template).expect("republishes");
    assert_eq!(classify(&after, assessment(50, 2, 10, 0, 0.0, false)), Some(json!("II")));
}

#[test]
fn assessment_indicators_feed_the_classification() {
    let f = fixture();
    let report = form("commune_assessment");
    let got = as_map(compute(report.template(), "2026", HERE, &f.sources()).unwrap());
    // Year end (31/12/2026): every open row: P1, P2, P4 (determined 15/11), P5, P6, P7, P9, P11
    // (P3 ended on 14/11, P8 moved away).
    // Locations of use active on some day of 2026: H1, H2, H3 (H4 is retail).
    expect(
        &got,
        &[
            ("people_with_records", 8.0),
            ("use_locations", 3.0),
            ("plants_destroyed", 3300.0),
            ("area_destroyed", 620.5),
        ],
    );
    let mut answers = json!({"population": 1400, "offenders": 0, "on_drug_route": false});
    for (k, v) in &got {
        let value = if k == "area_destroyed" { json!(v) } else { json!(*v as i64) };
        answers.as_object_mut().unwrap().insert(k.clone(), value);
    }
    // 8 of 1,400 = 0.57%; 3 locations; 3,300 plants: three type I criteria.
    assert_eq!(classify(&report, answers), Some(json!("I")));
}

#[test]
fn reminders_list_checks_due_and_periods_ending() {
    let p = form("person_record");
    let people = vec![
        // Residence check due 25/11 (5 days: listed); period ends 9/1/2027 (50 days: not yet).
        person(
            &p,
            "R1",
            HERE,
            "male",
            "1990-01-01",
            json!([{"_id": "a", "status": "user_managed", "start_date": "2026-01-10", "duration_months": 12}]),
            json!({"checks": [{"_id": "c1", "check_date": "2026-09-25", "found_at_home": true},
                              {"_id": "c2", "check_date": "2026-10-25", "found_at_home": true}]}),
        ),
        // Post-rehab ending 30/11; never checked: overdue since 1/1.
        person(
            &p,
            "R2",
            HERE,
            "female",
            "1990-01-01",
            json!([{"_id": "a", "status": "post_rehab", "start_date": "2025-12-01", "duration_months": 12}]),
            json!({}),
        ),
        // Home rehab ending 14/12 (24 days); rehab needs no residence check.
        person(
            &p,
            "R3",
            HERE,
            "male",
            "1990-01-01",
            json!([{"_id": "a", "status": "rehab_home", "start_date": "2026-06-15", "duration_months": 6}]),
            json!({}),
        ),
        // Ended: nothing.
        person(
            &p,
            "R4",
            HERE,
            "male",
            "1990-01-01",
            json!([{"_id": "a", "status": "user_managed", "start_date": "2025-01-10", "duration_months": 12,
                    "end_date": "2026-01-09", "end_reason": "expired_no_use"}]),
            json!({}),
        ),
        // Period ends 24/11 (4 days); checked on 18/11, next check 18/12 (28 days: not yet).
        person(
            &p,
            "R5",
            HERE,
            "female",
            "1990-01-01",
            json!([{"_id": "a", "status": "user_managed", "start_date": "2025-11-25", "duration_months": 12}]),
            json!({"checks": [{"_id": "c1", "check_date": "2026-11-18", "found_at_home": true}]}),
        ),
    ];
    let got: Vec<(String, String, String, i64)> = reminders(p.template(), &people, "2026-11-20", "vi")
        .into_iter()
        .map(|r| (r.subject.unwrap_or_default(), r.rule, r.due, r.days_left))
        .collect();
    let expected = [
        ("R2", "residence_check", "2026-01-01", -323),
        ("R5", "period_ending", "2026-11-24", 4),
        ("R1", "residence_check", "2026-11-25", 5),
        ("R2", "post_rehab_ending", "2026-11-30", 10),
        ("R3", "period_ending", "2026-12-14", 24),
    ]
    .map(|(s, r, d, n)| (s.to_owned(), r.to_owned(), d.to_owned(), n));
    assert_eq!(got, expected);
}

#[test]
fn publication_refuses_indicators_and_reminders_that_cannot_work() {
    let refused = |edit: &dyn Fn(&mut Json)| {
        let mut t: Json = serde_json::from_str(&pack_text("commune_monthly_report")).unwrap();
        edit(&mut t);
        Form::from_json(&t.to_string()).err().map(|e| e.to_string())
    };
    assert_eq!(refused(&|_| {}), None);
    let no_field = refused(&|t| t["indicators"][0]["into"] = json!("no_such_field")).unwrap();
    assert!(no_field.contains("no_such_field"), "{no_field}");
    let text_target = refused(&|t| t["indicators"][0]["into"] = json!("assessment")).unwrap();
    assert!(text_target.contains("not an integer or decimal"), "{text_target}");
    let no_group =
        refused(&|t| t["indicators"][1].as_object_mut().unwrap().remove("group_by").map(|_| ()).unwrap()).unwrap();
    assert!(no_group.contains("group_by"), "{no_group}");
    let bad_cel = refused(&|t| t["indicators"][0]["filter"] = json!("status in [")).unwrap();
    assert!(bad_cel.contains("people_total"), "{bad_cel}");
    let unknown_fn = refused(&|t| t["indicators"][0]["filter"] = json!("shout(status)")).unwrap();
    assert!(unknown_fn.contains("shout"), "{unknown_fn}");
    let not_periodic = refused(&|t| {
        t["kind"] = json!("event");
        t.as_object_mut().unwrap().remove("period");
    })
    .unwrap();
    assert!(not_periodic.contains("periodic"), "{not_periodic}");

    let person = |edit: &dyn Fn(&mut Json)| {
        let mut t: Json = serde_json::from_str(&pack_text("person_record")).unwrap();
        edit(&mut t);
        Form::from_json(&t.to_string()).err().map(|e| e.to_string())
    };
    let unknown = person(&|t| t["reminders"][0]["due"] = json!("add_months(last_visit, 1)")).unwrap();
    assert!(unknown.contains("last_visit"), "{unknown}");
    let rows = person(&|t| t["reminders"][0]["rows"] = json!("full_name")).unwrap();
    assert!(rows.contains("repeat group"), "{rows}");
    let history = person(&|t| t["unit_history"]["date"] = json!("to_unit")).unwrap();
    assert!(history.contains("unit_history"), "{history}");
}

#[test]
fn sources_are_checked_against_the_source_template() {
    let report: Template = serde_json::from_str(&pack_text("commune_monthly_report")).unwrap();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../server/pack");
    let lookup = |id: &str| {
        let text = std::fs::read_to_string(dir.join(format!("{id}.json"))).ok()?;
        serde_json::from_str::<Template>(&text).ok()
    };
    assert_eq!(diaban_core::indicators::check_sources(&report, lookup), Ok(()));
    let mut wrong = report.clone();
    wrong.indicators[0].filter = Some("stattus == 'addicted'".into());
    let e = diaban_core::indicators::check_sources(&wrong, lookup).unwrap_err().to_string();
    assert!(e.contains("stattus"), "{e}");
    let mut wrong = report.clone();
    wrong.indicators[0].when = diaban_core::template::IndicatorWhen::Date("status".into());
    let e = diaban_core::indicators::check_sources(&wrong, lookup).unwrap_err().to_string();
    assert!(e.contains("not a date"), "{e}");
    let mut wrong = report;
    wrong.indicators[0].source = "census".into();
    assert!(diaban_core::indicators::check_sources(&wrong, lookup).is_err());
}

#[test]
fn the_annual_report_year_runs_from_the_15th_of_october_to_the_14th() {
    let f = fixture();
    let report = form("commune_annual_report");
    let got = as_map(compute(report.template(), "2026", HERE, &f.sources()).unwrap());
    // 15/10/2025–14/10/2026.
    expect(
        &got,
        &[
            // P1 (1/3), P4 (15/11/2025), P8 (1/6, still here then); not P9 (the neighbour's on 10/5), not P11 (18/10).
            ("new_users", 3.0),
            // P4's period, ending on 14/10/2026.
            ("users_ended", 1.0),
            ("hotspots_found", 3.0),
            ("hotspots_eliminated", 1.0),
            ("plants_destroyed", 100.0),
            // S1 on 15/10/2026 is next year's.
            ("sessions", 0.0),
        ],
    );
    let next = as_map(compute(report.template(), "2027", HERE, &f.sources()).unwrap());
    expect(&next, &[("new_users", 2.0), ("users_ended", 1.0), ("sessions", 3.0), ("participants", 255.0)]);
}

fn evaluate(form: &Form, answers: Json) -> diaban_core::form::Evaluation {
    let env = Env { today: "2026-11-20".into(), period: None, lang: "vi".into() };
    form.evaluate(answers.as_object().unwrap(), &env, &BTreeMap::new())
}

#[test]
fn a_management_period_takes_the_duration_its_status_allows() {
    let p = form("person_record");
    let with = |status: &str, months: i64, born: &str| {
        let answers = json!({"full_name": "A", "sex": "male", "birth_date": born, "residence_kind": "permanent",
            "address": "Bản Nà Sản",
            "periods": [{"_id": "a", "status": status, "start_date": "2026-01-10", "duration_months": months}]});
        evaluate(&p, answers).issues.into_iter().map(|i| i.field).collect::<Vec<_>>()
    };
    assert_eq!(with("user_managed", 12, "1990-01-01"), Vec::<String>::new());
    assert_eq!(with("user_managed", 6, "1990-01-01"), ["periods/a/duration_months"]);
    assert_eq!(with("rehab_home", 6, "1990-01-01"), Vec::<String>::new());
    assert_eq!(with("rehab_home", 13, "1990-01-01"), ["periods/a/duration_months"]);
    assert_eq!(with("post_rehab", 24, "1990-01-01"), Vec::<String>::new());
    assert_eq!(with("post_rehab", 18, "1990-01-01"), ["periods/a/duration_months"]);
    // Compulsory rehab of a 15-year-old: 6–12 months (Art. 33); adults up to 24 ([U]).
    assert_eq!(with("compulsory_rehab", 18, "2011-01-01"), ["periods/a/duration_months"]);
    assert_eq!(with("compulsory_rehab", 18, "1990-01-01"), Vec::<String>::new());

    // An ended period needs its reason; the scheduled end and the Art. 256a watch are computed.
    let answers = json!({"full_name": "A", "sex": "male", "birth_date": "1990-01-01", "residence_kind": "permanent",
        "address": "Bản Nà Sản",
        "periods": [{"_id": "a", "status": "rehab_home", "start_date": "2025-01-10", "duration_months": 6, "end_date": "2025-07-09"},
                    {"_id": "b", "status": "post_rehab", "start_date": "2025-07-10", "duration_months": 12}],
        "checks": [{"_id": "c", "check_date": "2025-08-10", "found_at_home": true}]});
    let e = evaluate(&p, answers);
    assert_eq!(e.issues.iter().map(|i| i.field.as_str()).collect::<Vec<_>>(), ["periods/a/end_reason"]);
    assert_eq!(e.calculated.get("current_status"), Some(&json!("post_rehab")));
    assert_eq!(e.calculated.get("art256a_until"), Some(&json!("2027-07-09")));
    assert_eq!(e.calculated.get("last_check"), Some(&json!("2025-08-10")));
    let rows = e.items.iter().find(|i| i.name == "periods").map(|i| i.rows.clone()).unwrap_or_default();
    let planned = rows[1].items.iter().find(|i| i.name == "planned_end").and_then(|i| i.value.clone());
    assert_eq!(planned, Some(json!("2026-07-09")));
}

#[test]
fn a_hotspot_goes_from_found_to_active_to_eliminated_and_may_re_emerge() {
    let h = form("hotspot");
    let status = |extra: Json| {
        let mut answers =
            json!({"name": "H", "kind": "use", "address": "Bản", "found_on": "2026-01-01", "found_source": "tip"});
        answers.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap());
        evaluate(&h, answers).calculated.get("status").cloned()
    };
    assert_eq!(status(json!({})), Some(json!("found")));
    assert_eq!(status(json!({"confirmed_on": "2026-01-05"})), Some(json!("active")));
    let eliminated = json!({"confirmed_on": "2026-01-05", "eliminated_on": "2026-03-01", "elimination_basis": "Vụ án 1",
        "rechecks": [{"_id": "r", "recheck_date": "2026-04-01", "recheck_result": "holds"}]});
    assert_eq!(status(eliminated), Some(json!("eliminated")));
    let again = json!({"confirmed_on": "2026-01-05", "eliminated_on": "2026-03-01", "elimination_basis": "Vụ án 1",
        "rechecks": [{"_id": "r", "recheck_date": "2026-09-01", "recheck_result": "re_emerged"}]});
    assert_eq!(status(again), Some(json!("re_emerged")));
}
