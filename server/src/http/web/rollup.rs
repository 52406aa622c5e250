//! The roll-up page: a template's reported numbers summed per unit for a period, opening on
//! the latest period that has reports, with a period picker; a unit and the units under it
//! as rows, each a link one level down. Also as XLSX or CSV (every unit in scope).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::{WebUser, download, page, readable_form, refused, server_error};
use crate::domain::access::Access;
use crate::domain::export::Cell;
use crate::http::AppState;

/// How many periods with reports the picker offers.
const PICKER_PERIODS: i64 = 36;

#[derive(Deserialize, Default)]
pub(super) struct RollupQuery {
    #[serde(default)]
    period: String,
    /// The unit whose rows are shown (its own and its children's); default the user's.
    #[serde(default)]
    unit: String,
}

/// `/rollup/{template}` (a page), `.xlsx` or `.csv`.
pub(super) async fn rollup_page(
    State(state): State<AppState>,
    web: WebUser,
    Path(file): Path<String>,
    Query(q): Query<RollupQuery>,
) -> Response {
    let lang = web.lang;
    let (template_id, kind) = match file.rsplit_once('.') {
        Some((t, k)) if k == "xlsx" || k == "csv" => (t.to_owned(), k),
        _ => (file.clone(), "html"),
    };
    let form = match readable_form(&state, &web, &template_id).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let access = match Access::of(&state.db, &web.user).await {
        Ok(access) => access,
        Err(e) => return server_error(e),
    };
    let scope = &access.units;
    let unit = if q.unit.is_empty() { web.user.unit_code.clone() } else { q.unit.clone() };
    if !access.unit(&unit) || q.period.chars().count() > 32 {
        let title = lang.t("Không có đơn vị hoặc kỳ này", "No such unit or period");
        return refused(lang, &web, StatusCode::NOT_FOUND, title);
    }
    // Periodic templates open on the latest period with reports (else the current one).
    let periods = match &form.template().period {
        Some(_) => match state.db.reported_periods(&template_id, scope, PICKER_PERIODS).await {
            Ok(p) => p,
            Err(e) => return server_error(e),
        },
        None => Vec::new(),
    };
    let period = match (&form.template().period, q.period.as_str()) {
        (Some(spec), "") => Some(periods.first().cloned().unwrap_or_else(|| spec.key_for(state.db.clock.today()))),
        (Some(_), p) => Some(p.to_owned()),
        (None, _) => None,
    };
    let (units, records) =
        match (state.db.units_in(scope).await, state.db.reported_records(&template_id, period.as_deref(), scope).await)
        {
            (Ok(u), Ok(r)) => (u, r),
            (Err(e), _) | (_, Err(e)) => return server_error(e),
        };
    let table = crate::domain::rollup::rollup(&form, &units, &records, period.as_deref());
    if kind != "html" {
        let detail = format!("{file} {}", period.as_deref().unwrap_or("*"));
        let name = format!("{template_id}-tong-hop");
        return download(&state, &web, &table, kind, "Tổng hợp", &name, "export_rollup", &detail).await;
    }
    // The unit's own row, then its children's.
    let parent: HashMap<&str, Option<&str>> =
        units.iter().map(|u| (u.code.as_str(), u.parent_code.as_deref())).collect();
    let shown: Vec<&Vec<Cell>> = table
        .rows
        .iter()
        .filter(|row| {
            let code = row_code(row);
            code == unit || parent.get(code).copied().flatten() == Some(unit.as_str())
        })
        .collect();
    let has_children = |code: &str| units.iter().any(|u| u.parent_code.as_deref() == Some(code));
    let title = form.template().label.text(lang.code()).to_owned();
    let here = |unit: &str| {
        let period = period.as_deref().map(|p| format!("&period={p}")).unwrap_or_default();
        format!("/rollup/{template_id}?unit={unit}{period}")
    };
    let query = period.as_deref().map(|p| format!("?period={p}")).unwrap_or_default();
    page(
        lang,
        &title,
        Some(&web),
        html! {
            h1 { (lang.t("Tổng hợp: ", "Roll-up: ")) (title) }
            @if let Some(p) = &period {
                form id="period-picker" method="get" action={ "/rollup/" (template_id) } {
                    input type="hidden" name="unit" value=(unit);
                    label for="period" { (lang.t("Kỳ báo cáo", "Period")) }
                    select id="period" name="period" {
                        @if !periods.contains(p) { option value=(p) selected { (p) } }
                        @for key in &periods { option value=(key) selected[key == p] { (key) } }
                    }
                    " " button type="submit" { (lang.t("Xem", "Show")) }
                }
            }
            p {
                a id="rollup-xlsx" href={ "/rollup/" (template_id) ".xlsx" (query) } { "Excel (XLSX)" } " · "
                a id="rollup-csv" href={ "/rollup/" (template_id) ".csv" (query) } { "CSV" }
                @if unit != web.user.unit_code {
                    " · " a id="rollup-up" href=(here(&web.user.unit_code)) { (lang.t("↑ Về đơn vị của tôi", "↑ Back to my unit")) }
                }
            }
            table id="rollup" {
                thead { tr { @for h in &table.headers { th { (h) } } } }
                tbody {
                    @for row in shown {
                        tr {
                            @for (i, cell) in row.iter().enumerate() {
                                @match cell {
                                    Cell::Text(t) if i == 1 && has_children(row_code(row)) && row_code(row) != unit => {
                                        td { a.drill href=(here(row_code(row))) { (t) } }
                                    }
                                    Cell::Text(t) => td { (t) },
                                    Cell::Number(n) => td.num { (n) },
                                }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

/// The unit code in a roll-up row's first cell.
fn row_code(row: &[Cell]) -> &str {
    match row.first() {
        Some(Cell::Text(code)) => code,
        _ => "",
    }
}
