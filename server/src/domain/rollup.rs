//! Roll-ups: the numeric answers and indicators of a template's reported records, summed per
//! commune and up the unit tree (communes into their province), for one period.
//!
//! Only records sent up count (submitted, signed off, approved): drafts and returned records
//! are the commune's work in progress.

use std::collections::HashMap;

use diaban_core::Form;
use diaban_core::template::{Field, FieldType};

use crate::domain::export::{Cell, Table};
use crate::store::{RecordRow, SENT_UP, Unit};

/// The fields a roll-up sums: numbers, tallies and numeric calculations.
pub fn numeric_fields(form: &Form) -> Vec<&Field> {
    form.template()
        .fields
        .iter()
        .filter(|f| match f.field_type {
            FieldType::Integer | FieldType::Decimal | FieldType::Counter => true,
            FieldType::Calculated => matches!(f.result_type, Some(FieldType::Integer | FieldType::Decimal)),
            _ => false,
        })
        .collect()
}

/// One row per unit in scope, parents before their children: records counted and sums.
pub fn rollup(form: &Form, units: &[Unit], records: &[RecordRow], period: Option<&str>) -> Table {
    let fields = numeric_fields(form);
    let mut totals: HashMap<&str, (f64, Vec<f64>)> = HashMap::new();
    let by_code: HashMap<&str, &Unit> = units.iter().map(|u| (u.code.as_str(), u)).collect();
    for r in records
        .iter()
        .filter(|r| SENT_UP.contains(&r.state.as_str()) && (period.is_none() || r.period.as_deref() == period))
    {
        let sums: Vec<f64> =
            fields.iter().map(|f| r.values.get(&f.name).and_then(|v| v.as_f64()).unwrap_or(0.0)).collect();
        // Add to the record's unit and every ancestor in scope.
        let mut code = Some(r.unit_code.as_str());
        while let Some(c) = code.filter(|c| by_code.contains_key(c)) {
            let entry = totals.entry(c).or_insert_with(|| (0.0, vec![0.0; fields.len()]));
            entry.0 += 1.0;
            entry.1.iter_mut().zip(&sums).for_each(|(t, s)| *t += s);
            code = by_code.get(c).and_then(|u| u.parent_code.as_deref());
        }
    }
    let mut headers: Vec<String> = ["Mã đơn vị", "Đơn vị", "Cấp", "Số hồ sơ"].iter().map(|h| (*h).to_owned()).collect();
    headers.extend(fields.iter().map(|f| f.label.vi.clone()));
    let level_rank = |l: &str| ["province", "district", "commune", "village"].iter().position(|x| *x == l).unwrap_or(9);
    let mut ordered: Vec<&Unit> = units.iter().collect();
    ordered.sort_by(|a, b| level_rank(&a.level).cmp(&level_rank(&b.level)).then(a.code.cmp(&b.code)));
    let rows = ordered
        .into_iter()
        .map(|u| {
            let (count, sums) = totals.get(u.code.as_str()).cloned().unwrap_or((0.0, vec![0.0; fields.len()]));
            let mut row = vec![
                Cell::Text(u.code.clone()),
                Cell::Text(u.name.clone()),
                Cell::Text(level_vi(&u.level)),
                Cell::Number(count),
            ];
            row.extend(sums.into_iter().map(Cell::Number));
            row
        })
        .collect();
    Table { headers, rows }
}

fn level_vi(level: &str) -> String {
    match level {
        "province" => "Tỉnh",
        "district" => "Huyện",
        "commune" => "Xã",
        "village" => "Thôn",
        other => other,
    }
    .to_owned()
}
