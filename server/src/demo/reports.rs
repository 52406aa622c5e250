//! The demo communes' periodic reports: twelve monthly reports each in every review state,
//! the annual report, the yearly classification and the quarterly group reviews; and the
//! province's other communes' last six monthly reports.

use std::collections::BTreeMap;

use diaban_core::FieldValue;
use diaban_core::indicators::Sources;
use diaban_core::record::EventKind;
use time::Date;

use super::{Demo, Draft, REVIEWER, at, choice, days, invalid, text};
use crate::store::DbError;

/// The last six monthly reports of a commune without demo records: mostly approved, the
/// recent ones in every state, a few late.
pub(super) fn other_reports(demo: &mut Demo, i: usize, unit: &str) -> Result<(), DbError> {
    let monthly = demo.forms.get("commune_monthly_report").cloned().ok_or_else(|| invalid("no monthly report"))?;
    let spec = monthly.template().period.clone().ok_or_else(|| invalid("the monthly report has no period"))?;
    let (officer, lead) = (format!("canbo.{unit}"), format!("lanhdao.{unit}"));
    let mut start = spec.bounds(&spec.key_for(demo.today)).map_err(invalid)?.start;
    for offset in 0..6 {
        let key = spec.key_for(days(start, -1));
        let bounds = spec.bounds(&key).map_err(invalid)?;
        start = bounds.start;
        let state = match offset {
            0 => [
                None,
                Some("draft"),
                Some("submitted"),
                Some("signed_off"),
                Some("approved"),
                Some("approved"),
                Some("submitted"),
                Some("returned"),
            ][i % 8],
            1 if i.is_multiple_of(10) => Some("returned"),
            1 if i % 10 == 1 => None,
            3 if i % 17 == 3 => None,
            _ => Some("approved"),
        };
        let Some(state) = state else { continue };
        let mut d = demo.start("commune_monthly_report", unit, &officer, Some(key.clone()), bounds.end)?;
        fill_indicators(demo, &mut d, &key, unit)?;
        let cases = i64::from(demo.rng.chance(15));
        d.set("drug_cases", FieldValue::Integer(cases))?
            .set("offenders", FieldValue::Integer(cases))?
            .set("art256a_cases", FieldValue::Integer(0))?
            .set(
                "assessment",
                text(format!("Kỳ {key}: không phát sinh điểm, tụ điểm; tiếp tục rà soát người sử dụng.")),
            )?
            .set("next_tasks", text("Tuyên truyền tại khu dân cư; phối hợp rà soát người tạm trú."))?;
        review(&mut d, state, &officer, &lead, bounds.due)?;
        demo.finish(d)?;
    }
    Ok(())
}

/// Which state a monthly report is in: `None` when the commune has not started it (late).
pub(super) fn monthly_state(ci: usize, offset: usize) -> Option<&'static str> {
    match offset {
        0 => [Some("submitted"), Some("signed_off"), Some("draft"), Some("returned"), None][ci % 5],
        1 => ["approved", "signed_off", "returned", "approved"][ci % 4].into(),
        2 if ci == 3 => Some("signed_off"),
        4 if ci == 5 => None,
        7 if ci == 6 => None,
        _ => Some("approved"),
    }
}

/// Moves a report through the review workflow to `state`.
pub(super) fn review(d: &mut Draft, state: &str, officer: &str, lead: &str, due: Date) -> Result<(), DbError> {
    if state == "draft" {
        return Ok(());
    }
    d.event(EventKind::Submit, officer, None, days(due, -1))?;
    match state {
        "submitted" => {}
        "signed_off" => {
            d.event(EventKind::SignOff, lead, None, due)?;
        }
        "returned" => {
            d.event(EventKind::SignOff, lead, None, due)?.event(
                EventKind::Return,
                REVIEWER,
                Some("Đề nghị xã rà soát lại số người đang quản lý sau cai và bổ sung đánh giá nguyên nhân."),
                days(due, 2),
            )?;
        }
        _ => {
            d.event(EventKind::SignOff, lead, None, due)?.event(EventKind::Approve, REVIEWER, None, days(due, 3))?;
        }
    }
    Ok(())
}

/// Fills a report's indicators from the commune's demo records.
pub(super) fn fill_indicators(demo: &Demo, d: &mut Draft, period: &str, unit: &str) -> Result<(), DbError> {
    let templates: BTreeMap<&str, &diaban_core::Template> =
        demo.forms.iter().map(|(id, f)| (id.as_str(), f.template())).collect();
    let sources: Sources<'_> = demo
        .sources
        .iter()
        .filter_map(|(id, records)| Some((id.as_str(), (*templates.get(id.as_str())?, records.as_slice()))))
        .collect();
    let report = d.form.clone();
    for v in diaban_core::indicators::compute(report.template(), period, unit, &sources).map_err(invalid)? {
        if let Some(value) = v.typed(report.template()) {
            d.set(&v.field, value)?;
        }
    }
    Ok(())
}

/// Twelve monthly reports, the annual report, the yearly classification, two quarterly reviews.
pub(super) fn reports(
    demo: &mut Demo,
    ci: usize,
    (unit, officer, lead, population, _): &(&str, &str, &str, i64, bool),
) -> Result<(), DbError> {
    let today = demo.today;
    let monthly = demo.forms.get("commune_monthly_report").cloned().ok_or_else(|| invalid("no monthly report"))?;
    let spec = monthly.template().period.clone().ok_or_else(|| invalid("the monthly report has no period"))?;
    // The period in progress, then the twelve before it.
    let mut key = spec.key_for(today);
    let current = spec.bounds(&key).map_err(invalid)?;
    if ci.is_multiple_of(3) {
        let mut d = demo.start("commune_monthly_report", unit, officer, Some(key.clone()), current.start)?;
        fill_indicators(demo, &mut d, &key, unit)?;
        demo.finish(d)?;
    }
    let mut start = current.start;
    for offset in 0..12 {
        key = spec.key_for(days(start, -1));
        let bounds = spec.bounds(&key).map_err(invalid)?;
        start = bounds.start;
        let Some(state) = monthly_state(ci, offset) else { continue };
        let mut d = demo.start("commune_monthly_report", unit, officer, Some(key.clone()), bounds.end)?;
        d.ts = at(bounds.end);
        fill_indicators(demo, &mut d, &key, unit)?;
        let cases = demo.rng.range(0, 3);
        let offenders = cases + demo.rng.range(0, 2);
        d.set("drug_cases", FieldValue::Integer(cases))?
            .set("offenders", FieldValue::Integer(offenders))?
            .set("art256a_cases", FieldValue::Integer(demo.rng.range(0, offenders)))?
            .set(
                "assessment",
                text(format!(
                    "Kỳ {key}: tình hình tội phạm và tệ nạn ma túy trên địa bàn cơ bản được kiểm soát; \
                     còn đối tượng từ nơi khác đến sử dụng trái phép chất ma túy tại các lán nương."
                )),
            )?
            .set(
                "results",
                text("Duy trì kiểm tra cư trú hằng tháng; phối hợp Đồn Biên phòng tuần tra tuyến biên giới."),
            )?
            .set(
                "next_tasks",
                text("Rà soát danh sách người sử dụng; tuyên truyền tại các bản vùng cao; kiểm tra cơ sở lưu trú."),
            )?;
        review(&mut d, state, officer, lead, bounds.due)?;
        demo.finish(d)?;
    }
    // The annual report for the last reporting year that has ended.
    let annual = demo.forms.get("commune_annual_report").cloned().ok_or_else(|| invalid("no annual report"))?;
    let year_spec = annual.template().period.clone().ok_or_else(|| invalid("the annual report has no period"))?;
    let this_year = year_spec.bounds(&year_spec.key_for(today)).map_err(invalid)?;
    let year = year_spec.key_for(days(this_year.start, -1));
    let bounds = year_spec.bounds(&year).map_err(invalid)?;
    let mut d = demo.start("commune_annual_report", unit, officer, Some(year.clone()), bounds.end)?;
    fill_indicators(demo, &mut d, &year, unit)?;
    d.set("drug_cases", FieldValue::Integer(demo.rng.range(4, 15)))?
        .set("offenders", FieldValue::Integer(demo.rng.range(15, 25)))?
        .set("art256a_cases", FieldValue::Integer(demo.rng.range(0, 4)))?
        .set("assessment", text(format!("Năm {year}: kiềm chế được sự gia tăng người sử dụng trái phép chất ma túy.")))?
        .set("next_tasks", text("Xây dựng xã không ma túy theo lộ trình đến năm 2030."))?;
    review(&mut d, ["approved", "signed_off", "submitted", "draft"][ci % 4], officer, lead, bounds.due)?;
    demo.finish(d)?;
    // The yearly classification of this calendar year, prepared before the year closes.
    let this_year = today.year().to_string();
    let mut d = demo.start("commune_assessment", unit, officer, Some(this_year.clone()), days(today, -3))?;
    fill_indicators(demo, &mut d, &this_year, unit)?;
    d.set("population", FieldValue::Integer(*population))?
        .set("offenders", FieldValue::Integer(demo.rng.range(2, 14)))?
        .set("on_drug_route", FieldValue::Boolean(ci.is_multiple_of(2)))?;
    if ci.is_multiple_of(2) {
        d.set("route_note", text("Quốc lộ 4G, tuyến biên giới Việt – Lào"))?;
    }
    review(&mut d, ["draft", "submitted", "signed_off"][ci % 3], officer, lead, days(today, -1))?;
    demo.finish(d)?;
    // Two quarterly reviews of the self-managed groups.
    let quarterly = demo.forms.get("group_review").cloned().ok_or_else(|| invalid("no group review"))?;
    let q_spec = quarterly.template().period.clone().ok_or_else(|| invalid("the group review has no period"))?;
    let mut start = q_spec.bounds(&q_spec.key_for(today)).map_err(invalid)?.start;
    for (offset, state) in ["submitted", "approved"].iter().enumerate() {
        let key = q_spec.key_for(days(start, -1));
        let bounds = q_spec.bounds(&key).map_err(invalid)?;
        start = bounds.start;
        let state = if offset == 0 && ci % 2 == 1 { "signed_off" } else { state };
        let mut d = demo.start("group_review", unit, officer, Some(key.clone()), bounds.end)?;
        for (name, kind) in [("Tổ tự quản bản Nà Sản", "self_managed"), ("CLB Thanh niên không ma túy", "club")]
        {
            d.row(
                "groups",
                vec![
                    ("group_name", text(name)),
                    ("model_kind", choice(kind)),
                    ("members", FieldValue::Integer(demo.rng.range(8, 30))),
                    ("meetings", FieldValue::Integer(demo.rng.range(1, 6))),
                    ("rating", choice(demo.rng.word(&["good", "fair", "weak"]))),
                ],
            )?;
        }
        d.set("assessment", text("Các tổ duy trì sinh hoạt; một số tổ cần củng cố nhân sự."))?;
        review(&mut d, state, officer, lead, bounds.due)?;
        demo.finish(d)?;
    }
    Ok(())
}
