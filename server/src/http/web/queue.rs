//! The review queue: the records a reviewer may read, filtered.

use super::{WebUser, local_time, page, server_error, state_label};
use crate::domain::access::Access;
use crate::http::AppState;
use crate::store::{RecordRow, User};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

/// Filters of the submissions queue.
#[derive(Deserialize, Default)]
pub(super) struct QueueFilter {
    #[serde(default)]
    template: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    period: String,
}

impl QueueFilter {
    fn keeps(&self, r: &RecordRow) -> bool {
        (self.template.is_empty() || r.template_id == self.template)
            && (self.unit.is_empty() || r.unit_code == self.unit)
            && (self.state.is_empty() || r.state == self.state)
            && (self.period.is_empty() || r.period.as_deref() == Some(self.period.as_str()))
    }
}

/// The records the user may see, newest first.
pub(super) async fn visible_records(state: &AppState, user: &User) -> Result<Vec<RecordRow>, crate::store::DbError> {
    let access = Access::of(&state.db, user).await?;
    state.db.records_in_units(&access.units, &access.hidden, 5000).await
}

pub(super) async fn records_page(
    State(state): State<AppState>,
    web: WebUser,
    Query(filter): Query<QueueFilter>,
) -> Response {
    let lang = web.lang;
    let all = match visible_records(&state, &web.user).await {
        Ok(rows) => rows,
        Err(e) => return server_error(e),
    };
    let mut templates: Vec<(String, String)> = Vec::new();
    for id in all.iter().map(|r| r.template_id.clone()).collect::<std::collections::BTreeSet<_>>() {
        let label = match state.db.template(&id, None).await {
            Ok(Some(t)) => t.label.text(lang.code()).to_owned(),
            _ => id.clone(),
        };
        templates.push((id, label));
    }
    let rows: Vec<RecordRow> = all.into_iter().filter(|r| filter.keeps(r)).collect();
    let mut labelled = Vec::new();
    for row in &rows {
        let title = match state.db.template(&row.template_id, Some(row.template_version)).await {
            Ok(Some(t)) => t.label.text(lang.code()).to_owned(),
            _ => row.template_id.clone(),
        };
        labelled.push((row, title));
    }
    let title = lang.t("Hồ sơ đã nhận", "Received records");
    page(
        lang,
        title,
        Some(&web),
        html! {
            h1 { (title) }
            form id="filter" method="get" action="/records" {
                label for="f-template" { (lang.t("Biểu mẫu", "Template")) }
                select id="f-template" name="template" {
                    option value="" { (lang.t("Tất cả", "All")) }
                    @for (id, label) in &templates { option value=(id) selected[*id == filter.template] { (label) } }
                }
                label for="f-state" { (lang.t("Trạng thái", "State")) }
                select id="f-state" name="state" {
                    option value="" { (lang.t("Tất cả", "All")) }
                    @for s in ["draft", "submitted", "signed_off", "returned", "approved", "reopened"] {
                        option value=(s) selected[s == filter.state] { (state_label(lang, s)) }
                    }
                }
                label for="f-unit" { (lang.t("Mã đơn vị", "Unit code")) }
                input id="f-unit" name="unit" value=(filter.unit);
                label for="f-period" { (lang.t("Kỳ báo cáo (vd. 2026-11)", "Period (e.g. 2026-11)")) }
                input id="f-period" name="period" value=(filter.period);
                div { button type="submit" { (lang.t("Lọc", "Filter")) } }
            }
            @if !filter.template.is_empty() {
                p {
                    a id="grid-link" href={ "/grid/" (filter.template) } { (lang.t("Tiến độ báo cáo theo kỳ", "Reporting by period")) } " · "
                    a id="rollup-link" href={ "/rollup/" (filter.template) } { (lang.t("Tổng hợp số liệu", "Roll-up")) }
                }
                p id="exports" {
                    (lang.t("Xuất dữ liệu: ", "Export: "))
                    a id="export-xlsx" href={ "/export/" (filter.template) ".xlsx" } { "Excel (XLSX)" } " · "
                    a id="export-csv" href={ "/export/" (filter.template) ".csv" } { "CSV" }
                }
            }
            @if labelled.is_empty() {
                p { (lang.t("Chưa có hồ sơ nào.", "No records yet.")) }
            } @else {
                table id="records" {
                    thead { tr {
                        th { (lang.t("Biểu mẫu", "Template")) }
                        th { (lang.t("Đơn vị", "Unit")) }
                        th { (lang.t("Người lập", "Created by")) }
                        th { (lang.t("Cập nhật", "Updated")) }
                        th { (lang.t("Trạng thái", "State")) }
                    } }
                    tbody {
                        @for (row, title) in &labelled {
                            tr {
                                td { a href={ "/records/" (row.id) } { (title) } }
                                td { (row.unit_name) " (" (row.unit_code) ")" }
                                td { (row.created_by) }
                                td { (local_time(row.updated_at)) }
                                td { span.state { (state_label(lang, &row.state)) } }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}
