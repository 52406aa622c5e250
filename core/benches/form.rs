//! Re-evaluating a 100-field form after one change: what the phone does on every keystroke
//! that commits a value. Target: < 2 ms. Run: `cargo bench -p diaban-core --bench form`.

use std::collections::BTreeMap;

use criterion::{Criterion, criterion_group, criterion_main};
use diaban_core::form::{Env, Form};
use serde_json::{Map, Value as Json, json};

/// 100 fields: 60 integers (every 5th with a constraint, every 7th relevant on another),
/// 20 texts, 10 choices, a repeat group of 5 fields with 20 rows, 5 calculations.
fn hundred_fields() -> (Form, Map<String, Json>) {
    let mut fields = Vec::new();
    let mut values = Map::new();
    for i in 0..60 {
        let mut f =
            json!({"name": format!("n{i}"), "type": "integer", "label": {"vi": format!("Chỉ tiêu {i}")}, "min": 0});
        if i % 5 == 0 && i > 0 {
            f["constraint"] = json!(format!("value <= n{} + 1000", i - 1));
        }
        if i % 7 == 0 && i > 0 {
            f["relevant"] = json!(format!("n{} >= 0", i - 1));
        }
        fields.push(f);
        values.insert(format!("n{i}"), json!(i * 3));
    }
    for i in 0..20 {
        fields.push(json!({"name": format!("t{i}"), "type": "text", "label": {"vi": format!("Ghi chú {i}")}, "max_length": 200}));
        values.insert(format!("t{i}"), json!("Nội dung tường thuật của xã"));
    }
    for i in 0..10 {
        fields.push(json!({"name": format!("c{i}"), "type": "single_choice", "choices": "yes_no", "label": {"vi": format!("Câu hỏi {i}")}, "required": true}));
        values.insert(format!("c{i}"), json!("yes"));
    }
    fields.push(json!({"name": "rows", "type": "repeat", "label": {"vi": "Danh sách"}, "fields": [
        {"name": "r_count", "type": "integer", "label": {"vi": "Số lượng"}, "min": 0},
        {"name": "r_area", "type": "decimal", "label": {"vi": "Diện tích"}},
        {"name": "r_note", "type": "text", "label": {"vi": "Ghi chú"}, "relevant": "r_count > 10"},
        {"name": "r_ok", "type": "boolean", "label": {"vi": "Đạt"}},
        {"name": "r_double", "type": "calculated", "result_type": "integer", "label": {"vi": "Gấp đôi"}, "calculation": "r_count * 2"}
    ]}));
    values.insert(
        "rows".into(),
        Json::Array(
            (0..20).map(|i| json!({"_id": format!("row{i}"), "r_count": i, "r_area": 1.5, "r_ok": true})).collect(),
        ),
    );
    for (i, expr) in [
        "n1 + n2 + n3",
        "sum(rows.map(r, r.r_count))",
        "size(rows.filter(r, r.r_ok))",
        "calc_0 + calc_1",
        "sum(rows.map(r, r.r_double))",
    ]
    .iter()
    .enumerate()
    {
        fields.push(json!({"name": format!("calc_{i}"), "type": "calculated", "result_type": "integer", "label": {"vi": format!("Tổng {i}")}, "calculation": expr}));
    }
    assert_eq!(fields.len(), 96, "95 top-level fields plus the group's 5 = 100");
    let template = json!({
        "id": "bao_cao_thang", "version": 1, "kind": "event", "label": {"vi": "Báo cáo"},
        "choice_lists": {"yes_no": [{"value": "yes", "label": {"vi": "Có"}}, {"value": "no", "label": {"vi": "Không"}}]},
        "fields": fields
    });
    (Form::from_json(&template.to_string()).expect("bench template compiles"), values)
}

fn bench(c: &mut Criterion) {
    let (form, mut values) = hundred_fields();
    let env = Env { today: "2026-11-22".into(), period: None, lang: "vi".into() };
    let conflicts = BTreeMap::new();
    let mut n = 0i64;
    c.bench_function("evaluate 100-field form after one change", |b| {
        b.iter(|| {
            n += 1;
            values.insert("n10".into(), json!(n % 500));
            let e = form.evaluate(&values, &env, &conflicts);
            assert!(e.items.len() > 90);
            e
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
