//! The review queue: the records a reviewer may read, filtered.

use super::{WebUser, invalid_filter, local_time, page, server_error, state_label};
use crate::domain::access::Access;
use crate::http::AppState;
use crate::store::{QUEUE_PAGE, QueueCursor, QueueQuery};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::{Deserialize, Serialize};

/// Filters of the submissions queue, and where its page starts; also the query string of the
/// links that keep them.
#[derive(Deserialize, Serialize, Default, Clone)]
pub(super) struct QueueFilter {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    template: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    unit: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    period: String,
    /// `1`: only records with a proposed amendment waiting.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    amendments: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    after: String,
}

/// The longest filter value the queue reads.
const MAX_FILTER_CHARS: usize = 100;

impl QueueFilter {
    fn set(value: &str) -> Option<&str> {
        Some(value.trim()).filter(|v| !v.is_empty())
    }

    /// The link to this list starting after `cursor` (`None`: the first page).
    fn link(&self, cursor: Option<&QueueCursor>) -> String {
        let mut query = self.clone();
        query.after = cursor.map(QueueCursor::encode).unwrap_or_default();
        format!("/records?{}", serde_urlencoded::to_string(&query).unwrap_or_default())
    }
}

/// The records the user may see, newest first.
pub(super) async fn records_page(
    State(state): State<AppState>,
    web: WebUser,
    Query(filter): Query<QueueFilter>,
) -> Response {
    let lang = web.lang;
    let fields = [&filter.template, &filter.unit, &filter.state, &filter.period, &filter.amendments, &filter.after];
    let after = QueueCursor::decode(&filter.after);
    if fields.iter().any(|f| f.chars().count() > MAX_FILTER_CHARS) || (!filter.after.is_empty() && after.is_none()) {
        return invalid_filter(lang, &web);
    }
    let access = match Access::of(&state.db, &web.user).await {
        Ok(access) => access,
        Err(e) => return server_error(e),
    };
    let templates: Vec<(String, String)> = match state.db.published_templates().await {
        Ok(all) => all
            .into_iter()
            .filter(|t| !access.hidden.contains(&t.id))
            .map(|t| (t.id.clone(), t.label.text(lang.code()).to_owned()))
            .collect(),
        Err(e) => return server_error(e),
    };
    let query = QueueQuery {
        units: &access.units,
        hidden: &access.hidden,
        template: QueueFilter::set(&filter.template),
        unit: QueueFilter::set(&filter.unit),
        state: QueueFilter::set(&filter.state),
        period: QueueFilter::set(&filter.period),
        amendments: filter.amendments == "1",
        after: after.clone(),
    };
    let found = match state.db.queue_page(&query).await {
        Ok(found) => found,
        Err(e) => return server_error(e),
    };
    let template_label =
        |id: &str| templates.iter().find(|(t, _)| t == id).map_or_else(|| id.to_owned(), |(_, label)| label.clone());
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
                @if filter.amendments == "1" {
                    label { input type="checkbox" name="amendments" value="1" checked; " " (lang.t("Chỉ hồ sơ có đề nghị sửa chờ duyệt", "Only records with a proposed amendment")) }
                }
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
            p id="count" {
                @if found.total == 0 {
                    (lang.t("Không có hồ sơ nào.", "No records."))
                } @else {
                    (lang.t("Số hồ sơ: ", "Records: ")) strong { (thousands(found.total)) }
                    @if found.total > QUEUE_PAGE {
                        (lang.t(" (mỗi trang ", " (")) (QUEUE_PAGE) (lang.t(" hồ sơ, mới nhất trước)", " a page, newest first)"))
                    }
                }
            }
            @if !found.rows.is_empty() {
                table id="records" {
                    thead { tr {
                        th { (lang.t("Biểu mẫu", "Template")) }
                        th { (lang.t("Đơn vị", "Unit")) }
                        th { (lang.t("Người lập", "Created by")) }
                        th { (lang.t("Cập nhật", "Updated")) }
                        th { (lang.t("Trạng thái", "State")) }
                    } }
                    tbody {
                        @for row in &found.rows {
                            tr {
                                td { a href={ "/records/" (row.id) } { (template_label(&row.template_id)) } }
                                td { (row.unit_name) " (" (row.unit_code) ")" }
                                td { (row.created_by) }
                                td { (local_time(row.updated_at)) }
                                td { span.state { (state_label(lang, &row.state)) } }
                            }
                        }
                    }
                }
            }
            nav id="pages" {
                @if after.is_some() {
                    a id="first-page" href=(filter.link(None)) { (lang.t("« Trang đầu", "« First page")) }
                }
                @if let Some(next) = &found.next {
                    " " a id="next-page" href=(filter.link(Some(next))) { (lang.t("Trang sau »", "Next page »")) }
                }
            }
        },
    )
    .into_response()
}

/// A count with thousands separated as Vietnamese writes them (1.234.567).
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}
