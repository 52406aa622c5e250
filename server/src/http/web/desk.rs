//! The province's desk: the reporting grid, exports and reminders.

use super::{Lang, WebUser, download, local_time, not_found, page, scope_of, server_error, state_label};
use crate::domain::access::Access;
use crate::domain::grid::{self, GridCell};
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use std::sync::Arc;

/// A grid cell's label.
fn cell_label(lang: Lang, cell: GridCell) -> &'static str {
    match cell {
        GridCell::Approved => lang.t("Đã phê duyệt", "Approved"),
        GridCell::Submitted => lang.t("Đã gửi", "Submitted"),
        GridCell::SignedOff => lang.t("Xã đã ký", "Signed off"),
        GridCell::Returned => lang.t("Bị trả lại", "Returned"),
        GridCell::LateDraft => lang.t("Quá hạn (nháp)", "Late (draft)"),
        GridCell::Draft => lang.t("Nháp", "Draft"),
        GridCell::Late => lang.t("Quá hạn", "Late"),
        GridCell::NotStarted => lang.t("Chưa lập", "Not started"),
    }
}

/// `/grid/{template}`: who has reported for which period — communes × the last six periods,
/// due dates from the template.
pub(super) async fn grid_page(
    State(state): State<AppState>,
    web: WebUser,
    Path(template_id): Path<String>,
) -> Response {
    let lang = web.lang;
    let form = match readable_form(&state, &web, &template_id).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let template = form.template();
    let Some(spec) = template.period.clone() else { return not_found(lang, &web) };
    let today = state.db.clock.today();
    let periods = grid::periods(&spec, today, grid::PERIODS);
    let keys: Vec<String> = periods.iter().map(|(key, _)| key.clone()).collect();
    let units = match scope_of(&state, &web.user).await {
        Ok(u) => u,
        Err(e) => return server_error(e),
    };
    let (communes, states) =
        match (state.db.communes_in(&units).await, state.db.period_states(&template_id, &keys, &units).await) {
            (Ok(c), Ok(s)) => (c, s),
            (Err(e), _) | (_, Err(e)) => return server_error(e),
        };
    let best = grid::most_advanced(states);
    let title = template.label.text(lang.code()).to_owned();
    page(
        lang,
        &title,
        Some(&web),
        html! {
            h1 { (lang.t("Tiến độ báo cáo: ", "Reporting: ")) (title) }
            table id="grid" {
                thead { tr {
                    th { (lang.t("Đơn vị", "Unit")) }
                    @for (key, b) in &periods { th title={ (b.start) " – " (b.end) } { (key) br; small { (lang.t("hạn ", "due ")) (b.due) } } }
                } }
                tbody {
                    @for c in &communes {
                        tr data-unit=(c.code) {
                            th scope="row" { (c.name) " (" (c.code) ")" }
                            @for (key, b) in &periods {
                                @let cell = GridCell::of(best.get(&(c.code.clone(), key.clone())).map(String::as_str), today > b.due);
                                td class=(cell.class()) data-period=(key) { (cell_label(lang, cell)) }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

/// `/export/{template}.xlsx` or `.csv`: every record of a template the user may see.
pub(super) async fn export_records(State(state): State<AppState>, web: WebUser, Path(file): Path<String>) -> Response {
    let lang = web.lang;
    let Some((template_id, kind)) = file.rsplit_once('.').filter(|(_, k)| *k == "xlsx" || *k == "csv") else {
        return not_found(lang, &web);
    };
    let form = match readable_form(&state, &web, template_id).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let rows = match scope_of(&state, &web.user).await {
        Ok(units) => match state.db.template_records(template_id, &units).await {
            Ok(rows) => rows,
            Err(e) => return server_error(e),
        },
        Err(e) => return server_error(e),
    };
    let table = crate::domain::export::table(&form, &rows, |s| state_label(Lang::Vi, s).to_owned(), local_time);
    let detail = format!("{file} ({} records)", rows.len());
    download(&state, &web, &table, kind, &form.template().label.vi, template_id, "export", &detail).await
}

/// The latest form of a template the user may read: restricted templates only when granted,
/// and the same "not found" whether the template is missing or withheld.
pub(super) async fn readable_form(
    state: &AppState,
    web: &WebUser,
    template_id: &str,
) -> Result<Arc<diaban_core::Form>, Response> {
    let access = Access::of(&state.db, &web.user).await.map_err(server_error)?;
    access.form(&state.db, template_id).await.map_err(server_error)?.ok_or_else(|| not_found(web.lang, web))
}

/// What falls due in the registries of the user's units: residence checks, periods ending.
pub(super) async fn reminders_page(State(state): State<AppState>, web: WebUser) -> Response {
    let lang = web.lang;
    let today = diaban_core::clock::iso(state.db.clock.today());
    let reminders = match crate::domain::reports::reminders_for(&state.db, &web.user, &today, lang.code()).await {
        Ok(r) => r,
        Err(e) => return server_error(e),
    };
    let units = match scope_of(&state, &web.user).await {
        Ok(units) => match state.db.units_in(&units).await {
            Ok(units) => units,
            Err(e) => return server_error(e),
        },
        Err(e) => return server_error(e),
    };
    let unit_name = |code: &str| units.iter().find(|u| u.code == code).map(|u| u.name.clone()).unwrap_or_default();
    let title = lang.t("Nhắc việc", "Reminders");
    page(
        lang,
        title,
        Some(&web),
        html! {
            h1 { (title) }
            p { (lang.t("Từ sổ quản lý: kiểm tra cư trú hằng tháng, thời hạn quản lý và quản lý sau cai sắp hết. Ngày", "From the registries: monthly residence checks, management and post-rehab periods ending. Today")) " " (today) "." }
            @if reminders.is_empty() {
                p { (lang.t("Không có việc đến hạn.", "Nothing is due.")) }
            } @else {
                table id="reminders" {
                    thead { tr {
                        th { (lang.t("Hạn", "Due")) } th { (lang.t("Còn (ngày)", "Days left")) } th { (lang.t("Việc", "What")) }
                        th { (lang.t("Đối tượng", "Subject")) } th { (lang.t("Đơn vị", "Unit")) }
                    } }
                    tbody {
                        @for r in &reminders {
                            tr data-rule=(r.rule) {
                                td class=[(r.days_left < 0).then_some("late")] { (r.due) }
                                td { (r.days_left) }
                                td { (r.label) }
                                td { a href={ "/records/" (r.record_id) } { (r.subject.clone().unwrap_or_else(|| r.record_id.clone())) } }
                                td { (unit_name(&r.unit_code)) " (" (r.unit_code) ")" }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}
