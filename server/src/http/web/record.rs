//! A record's page: its answers, history and checks, the review actions, amendments and
//! attachment downloads.

use super::{Lang, WebUser, local_time, not_found, page, server_error, state_label};
use crate::domain::access::Access;
use crate::domain::review::{ReviewError, review};
use crate::http::AppState;
use crate::store::RecordRow;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Redirect, Response};
use diaban_core::form::RenderItem;
use diaban_core::record::{EventKind, FieldPath, HistoryEntry, RecordDoc};
use diaban_core::template::{Field, FieldType, Sensitivity};
use maud::{Markup, html};
use serde::Deserialize;

pub(super) async fn record_page(State(state): State<AppState>, web: WebUser, Path(id): Path<String>) -> Response {
    let lang = web.lang;
    let row: RecordRow = match Access::of(&state.db, &web.user).await {
        Ok(access) => match access.record(&state.db, &id).await {
            Ok(Some(row)) => row,
            Ok(None) => return not_found(lang, &web),
            Err(e) => return server_error(e),
        },
        Err(e) => return server_error(e),
    };
    let form = match state.db.form(&row.template_id, row.template_version).await {
        Ok(Some(form)) => form,
        Ok(None) => return not_found(lang, &web),
        Err(e) => return server_error(e),
    };
    // Restricted records (informant tips): every read is audited.
    if form.template().sensitivity == Sensitivity::Restricted
        && let Err(e) = state.db.audit(Some(&web.user.username), "read_restricted", &row.id).await
    {
        return server_error(e);
    }
    let doc = match state.db.record_document(&row.id).await {
        Ok(Some(bytes)) => match RecordDoc::load(&bytes, None) {
            Ok(doc) => doc,
            Err(e) => return server_error(e),
        },
        Ok(None) => return not_found(lang, &web),
        Err(e) => return server_error(e),
    };
    let mut doc = doc;
    let evaluation = form.evaluate_record(&mut doc, lang.code(), state.db.clock.today());
    let actions = crate::domain::review::web_actions(&form.template().roles, web.user.role, doc.state());
    // Per-field history, read from the document's change log (the audit trail).
    let history: Vec<(&Field, Vec<HistoryEntry>)> = form
        .template()
        .fields
        .iter()
        .filter(|f| f.field_type.holds_answer())
        .filter_map(|f| {
            let entries = doc.history(&FieldPath::top(&f.name)).ok()?;
            (!entries.is_empty()).then_some((f, entries))
        })
        .collect();
    let shown = |f: &Field, v: &Option<serde_json::Value>| {
        v.as_ref().map(|v| form.display(f, v, lang.code())).unwrap_or_default()
    };
    let (indicators, indicator_error) =
        match crate::domain::reports::indicators_for(&state.db, &form, &row, lang.code()).await {
            Ok(lines) => (lines, None),
            Err(crate::domain::reports::ReportError::Db(e)) => return server_error(e),
            // A source template withdrawn or changed: the page still shows the record.
            Err(e) => (None, Some(e.to_string())),
        };
    // Proposed amendments: what each would change, field by field.
    let amendments = match state.db.amendments(&row.id).await {
        Ok(list) => list,
        Err(e) => return server_error(e),
    };
    let reviews = form.template().roles.review.contains(&web.user.role);
    let amendment_diffs: Vec<(crate::store::Amendment, Vec<FieldDiff>)> = amendments
        .into_iter()
        .map(|a| {
            let mut after = doc.clone_doc();
            let changes = RecordDoc::decode_bundle(&a.changes).unwrap_or_default();
            let _ = after.apply_changes(changes);
            let (old, new) = (doc.values(), after.values());
            let diff = form
                .template()
                .fields
                .iter()
                .filter(|f| f.field_type.holds_answer() && old.get(&f.name) != new.get(&f.name))
                .map(|f| {
                    let label = f.label.text(lang.code()).to_owned();
                    (label, shown(f, &old.get(&f.name).cloned()), shown(f, &new.get(&f.name).cloned()))
                })
                .collect();
            (a, diff)
        })
        .collect();
    let title = form.template().label.text(lang.code()).to_owned();
    page(
        lang,
        &title,
        Some(&web),
        html! {
            h1 { (title) }
            p {
                @if let Some(p) = &row.period { (lang.t("Kỳ", "Period")) " " (p) " · " }
                (row.unit_name) " (" (row.unit_code) ") · "
                (lang.t("Người lập", "Created by")) ": " (row.created_by) " · "
                (local_time(row.created_at)) " · "
                span.state { (state_label(lang, &row.state)) }
            }
            (values_table(lang, "values", &evaluation.items))
            @if let Some(e) = &indicator_error {
                p.error { (lang.t("Không tính được chỉ số: ", "Indicators cannot be computed: ")) (e) }
            }
            @if let Some(lines) = &indicators {
                h2 { (lang.t("Chỉ số tính từ hồ sơ của xã", "Indicators computed from the commune's records")) }
                p { (lang.t("Cột “Tính lại” dùng các hồ sơ hiện có trên máy chủ cho kỳ này; khác với số đã báo cáo thì được tô màu.",
                            "“Recomputed” uses the records on the server now for this period; differences from the reported figure are highlighted.")) }
                table id="indicators" {
                    thead { tr {
                        th { (lang.t("Chỉ số", "Indicator")) } th { (lang.t("Đã báo cáo", "Reported")) } th { (lang.t("Tính lại", "Recomputed")) }
                    } }
                    tbody {
                        @for l in lines {
                            @let differs = l.reported.is_some_and(|r| (r - l.computed).abs() > 1e-9);
                            tr data-field=(l.field) {
                                td { (l.label) }
                                td { (l.reported.map(number).unwrap_or_default()) }
                                td class=[differs.then_some("late")] { (number(l.computed)) }
                            }
                        }
                    }
                }
            }
            h2 { (lang.t("Nhật ký xử lý", "Workflow")) }
            ul id="events" {
                @for e in doc.events() {
                    li {
                        (local_time(e.at)) " · " (e.by) " · " (event_label(lang, e.kind))
                        @if let Some(c) = &e.comment { ": " q.comment { (c) } }
                    }
                }
            }
            @if !amendment_diffs.is_empty() {
                h2 { (lang.t("Đề nghị sửa đổi", "Proposed amendments")) }
                p { (lang.t("Thay đổi trên máy sau khi hồ sơ đã phê duyệt: chỉ áp dụng khi cấp tỉnh chấp nhận.",
                            "Edits made on a phone after the record was approved: applied only if the province accepts them.")) }
                @for (a, diff) in &amendment_diffs {
                    section.amendment data-status=(a.status) id={ "amendment-" (a.id) } {
                        p { (a.username) " · " (local_time(a.proposed_at)) " · " (amendment_status(lang, &a.status)) }
                        table {
                            thead { tr { th { (lang.t("Trường", "Field")) } th { (lang.t("Hiện tại", "Now")) } th { (lang.t("Đề nghị", "Proposed")) } } }
                            tbody { @for (label, old, new) in diff { tr { td { (label) } td { (old) } td { (new) } } } }
                        }
                        @if reviews && a.status == "proposed" {
                            form method="post" action={ "/records/" (row.id) "/amendments/" (a.id) } {
                                input type="hidden" name="csrf" value=(web.csrf);
                                button type="submit" name="action" value="accept" { (lang.t("Chấp nhận", "Accept")) }
                                " "
                                button type="submit" name="action" value="reject" { (lang.t("Không chấp nhận", "Reject")) }
                            }
                        }
                    }
                }
            }
            @if !actions.is_empty() {
                form id="review" method="post" action={ "/records/" (row.id) "/review" } {
                    input type="hidden" name="csrf" value=(web.csrf);
                    label for="comment" { (lang.t("Ý kiến (bắt buộc khi trả lại, mở lại)", "Comment (required to return or reopen)")) }
                    textarea id="comment" name="comment" rows="3" cols="60" {}
                    div {
                        @for action in &actions {
                            button type="submit" name="action" value=(action.as_str()) { (action_label(lang, *action)) }
                            " "
                        }
                    }
                }
            }
            h2 { (lang.t("Lịch sử thay đổi", "Change history")) }
            table id="history" {
                thead { tr {
                    th { (lang.t("Trường", "Field")) } th { (lang.t("Người sửa", "By")) }
                    th { (lang.t("Thiết bị", "Device")) } th { (lang.t("Thời điểm", "When")) }
                    th { (lang.t("Cũ", "Old")) } th { (lang.t("Mới", "New")) }
                } }
                tbody {
                    @for (field, entries) in &history {
                        @for e in entries {
                            tr {
                                td { (field.label.text(lang.code())) }
                                td { (e.info.by.as_deref().unwrap_or("?")) }
                                td { (e.info.device.as_deref().unwrap_or("?")) }
                                td { (local_time(e.info.at)) }
                                td { (shown(field, &e.old)) }
                                td { (shown(field, &e.new)) }
                            }
                        }
                    }
                }
            }
            @if !evaluation.issues.is_empty() {
                h2 { (lang.t("Lỗi kiểm tra", "Validation issues")) }
                ul id="issues" { @for issue in &evaluation.issues { li { (issue.message) } } }
            }
            p { a href="/records" { "← " (lang.t("Danh sách hồ sơ", "All records")) } }
        },
    )
    .into_response()
}

fn event_label(lang: Lang, kind: EventKind) -> &'static str {
    match kind {
        EventKind::Submit => lang.t("gửi", "submitted"),
        EventKind::SignOff => lang.t("ký xác nhận", "signed off"),
        EventKind::Return => lang.t("trả lại", "returned"),
        EventKind::Approve => lang.t("phê duyệt", "approved"),
        EventKind::Reopen => lang.t("mở lại", "reopened"),
        EventKind::Comment => lang.t("ý kiến", "comment"),
    }
}

fn amendment_status(lang: Lang, status: &str) -> &'static str {
    match status {
        "accepted" => lang.t("đã chấp nhận", "accepted"),
        "rejected" => lang.t("không chấp nhận", "rejected"),
        _ => lang.t("chờ xem xét", "waiting"),
    }
}

#[derive(Deserialize)]
pub(super) struct AmendmentForm {
    csrf: String,
    action: String,
}

pub(super) async fn decide_amendment(
    State(state): State<AppState>,
    web: WebUser,
    Path((id, amendment)): Path<(String, i64)>,
    Form(f): Form<AmendmentForm>,
) -> Response {
    if f.csrf != web.csrf {
        return (StatusCode::FORBIDDEN, "CSRF token mismatch").into_response();
    }
    let accept = match f.action.as_str() {
        "accept" => true,
        "reject" => false,
        _ => return (StatusCode::BAD_REQUEST, "unknown action").into_response(),
    };
    match crate::domain::review::decide_amendment(&state.db, &web.user, &id, amendment, accept).await {
        Ok(()) => Redirect::to(&format!("/records/{id}")).into_response(),
        Err(ReviewError::NotFound) => not_found(web.lang, &web),
        Err(ReviewError::Db(e)) => server_error(e),
        Err(_) => (StatusCode::FORBIDDEN, "your role does not review this template").into_response(),
    }
}

#[derive(Deserialize)]
pub(super) struct ReviewForm {
    csrf: String,
    action: String,
    #[serde(default)]
    comment: String,
}

pub(super) async fn review_record(
    State(state): State<AppState>,
    web: WebUser,
    Path(id): Path<String>,
    Form(f): Form<ReviewForm>,
) -> Response {
    if f.csrf != web.csrf {
        return (StatusCode::FORBIDDEN, "CSRF token mismatch").into_response();
    }
    let action = match f.action.as_str() {
        "sign_off" => EventKind::SignOff,
        "return" => EventKind::Return,
        "approve" => EventKind::Approve,
        "reopen" => EventKind::Reopen,
        _ => return (StatusCode::BAD_REQUEST, "unknown action").into_response(),
    };
    match review(&state.db, &web.user, &id, action, Some(&f.comment)).await {
        Ok(_) => Redirect::to(&format!("/records/{id}")).into_response(),
        Err(ReviewError::NotFound) => not_found(web.lang, &web),
        Err(ReviewError::Db(e)) => server_error(e),
        Err(e) => {
            let lang = web.lang;
            let title = lang.t("Không thực hiện được", "Not done");
            let reason = match e {
                ReviewError::NotReviewer => {
                    lang.t("Vai trò của bạn không thẩm định biểu mẫu này.", "Your role does not review this template.")
                }
                ReviewError::NotAllowed(_) => lang.t(
                    "Hồ sơ đang ở trạng thái không cho phép thao tác này, hoặc vai trò của bạn không được làm.",
                    "The record's state does not allow this action, or your role may not take it.",
                ),
                ReviewError::TooLong(_) => lang
                    .t("Ý kiến quá dài (tối đa 4.000 ký tự).", "The comment is too long (at most 4,000 characters)."),
                _ => lang.t(
                    "Trả lại hoặc mở lại hồ sơ cần ý kiến nêu rõ cần sửa gì.",
                    "Returning or reopening a record needs a comment saying what to fix.",
                ),
            };
            let body =
                html! { h1 { (title) } p.error role="alert" { (reason) } p { a href={ "/records/" (id) } { "←" } } };
            (StatusCode::UNPROCESSABLE_ENTITY, page(web.lang, title, Some(&web), body)).into_response()
        }
    }
}

/// A review button's label.
fn action_label(lang: Lang, kind: EventKind) -> &'static str {
    match kind {
        EventKind::SignOff => lang.t("Ký xác nhận", "Sign off"),
        EventKind::Return => lang.t("Trả lại", "Return"),
        EventKind::Approve => lang.t("Phê duyệt", "Approve"),
        EventKind::Reopen => lang.t("Mở lại để sửa", "Reopen"),
        EventKind::Submit => lang.t("Gửi", "Submit"),
        EventKind::Comment => lang.t("Ý kiến", "Comment"),
    }
}

/// A table as a downloaded XLSX or CSV file (`kind`), written to the audit log first.
#[allow(clippy::too_many_arguments)]
pub(super) async fn download(
    state: &AppState,
    web: &WebUser,
    table: &crate::domain::export::Table,
    kind: &str,
    sheet: &str,
    file_stem: &str,
    action: &str,
    detail: &str,
) -> Response {
    let (bytes, content_type) = match kind {
        "xlsx" => (
            crate::domain::export::xlsx(table, sheet).map_err(|e| e.to_string()),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        _ => (crate::domain::export::csv(table).map_err(|e| e.to_string()), "text/csv; charset=utf-8"),
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => return server_error(e),
    };
    if let Err(e) = state.db.audit(Some(&web.user.username), action, detail).await {
        return server_error(e);
    }
    let disposition = format!("attachment; filename=\"{file_stem}.{kind}\"");
    ([(CONTENT_TYPE, content_type.to_owned()), (CONTENT_DISPOSITION, disposition)], bytes).into_response()
}

/// The visible fields of a record as a table; repeat groups nest a table per row.
fn values_table(lang: Lang, id: &str, items: &[RenderItem]) -> Markup {
    html! {
        table id=(id) {
            thead { tr { th { (lang.t("Trường", "Field")) } th { (lang.t("Giá trị", "Value")) } } }
            tbody {
                @for item in items {
                    tr data-field=(item.path) {
                        th scope="row" { (item.label) }
                        td {
                            @if item.field_type == FieldType::Repeat {
                                @for (i, row) in item.rows.iter().enumerate() {
                                    p { (lang.t("Dòng", "Row")) " " (i + 1) }
                                    (values_table(lang, &format!("{}-{}", item.name, row.id), &row.items))
                                }
                            } @else if item.display.is_empty() && item.field_type != FieldType::Note {
                                span.none { (lang.t("Chưa có giá trị", "No value")) }
                            } @else {
                                (item.display)
                            }
                            @if !item.conflicts.is_empty() {
                                div.conflict {
                                    (lang.t("Xung đột, các giá trị:", "Conflict, values:"))
                                    ul { @for c in &item.conflicts {
                                        li { (c.display) " — " (c.by.as_deref().unwrap_or("?")) ", " (local_time(c.at)) }
                                    } }
                                }
                            }
                            @for error in &item.errors { div.error { (error) } }
                        }
                    }
                }
            }
        }
    }
}

/// A number as a person reads it: whole numbers without decimals.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v:.2}") }
}

/// A field a proposed amendment would change: (label, now, proposed).
type FieldDiff = (String, String, String);
