//! The review web UI: server-rendered HTML (maud escapes every value), cookie sessions.
//!
//! Vietnamese by default; `/lang/en` switches to English. Every query is scoped to the
//! signed-in user's unit subtree, so guessing a record id from another unit shows nothing.

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::domain::access::Access;
use crate::domain::auth;
use crate::domain::grid::{self, GridCell};
use crate::http::signin::{Channel, SignInError};
use crate::http::{AppState, ClientAddress};
use crate::store::{RecordRow, User};

use diaban_core::form::RenderItem;
use diaban_core::record::{EventKind, FieldPath, HistoryEntry, RecordDoc};
use std::sync::Arc;

use crate::domain::review::{ReviewError, review};
use diaban_core::template::{Field, FieldType, Sensitivity};

const SESSION_COOKIE: &str = "diaban_session";
const LANG_COOKIE: &str = "diaban_lang";
const SESSION_TTL_SECS: i64 = 8 * 3600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/records") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/lang/{lang}", get(set_lang))
        .route("/records", get(records_page))
        .route("/records/{id}", get(record_page))
        .route("/records/{id}/review", post(review_record))
        .route("/records/{id}/amendments/{amendment}", post(decide_amendment))
        .route("/export/{file}", get(export_records))
        .route("/grid/{template}", get(grid_page))
        .route("/rollup/{file}", get(rollup_page))
        .route("/reminders", get(reminders_page))
        .route(STYLESHEET, get(stylesheet))
}

/// The page language, from the language cookie.
#[derive(Clone, Copy, PartialEq)]
pub enum Lang {
    Vi,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    /// Picks the Vietnamese or the English text.
    pub fn t(self, vi: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn lang_of(headers: &HeaderMap) -> Lang {
    if cookie(headers, LANG_COOKIE) == Some("en") { Lang::En } else { Lang::Vi }
}

/// A signed-in reviewer (or any web user) and the page language.
pub struct WebUser {
    pub user: User,
    pub csrf: String,
    pub lang: Lang,
}

impl FromRequestParts<AppState> for WebUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let lang = lang_of(&parts.headers);
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(|| Redirect::to("/login").into_response())?;
        match state.db.session(&auth::token_hash(token)).await {
            Ok(Some((user, csrf))) => Ok(WebUser { user, csrf, lang }),
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                Err(StatusCode::INTERNAL_SERVER_ERROR.into_response())
            }
        }
    }
}

pub fn page(lang: Lang, title: &str, user: Option<&WebUser>, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang=(lang.code()) {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " — Địa bàn" }
                    link rel="stylesheet" href=(STYLESHEET);
                }
                body {
                    header {
                        a.brand href="/records" { "Địa bàn" }
                        nav {
                            @if let Some(u) = user {
                                a href="/reminders" { (lang.t("Nhắc việc", "Reminders")) }
                                @if u.user.role == diaban_core::Role::Admin { a href="/admin" { (lang.t("Quản trị", "Admin")) } }
                                span.who { (u.user.display_name) " · " (u.user.unit_name) }
                                form method="post" action="/logout" {
                                    input type="hidden" name="csrf" value=(u.csrf);
                                    button type="submit" { (lang.t("Đăng xuất", "Sign out")) }
                                }
                            }
                            a href="/lang/vi" { "Tiếng Việt" }
                            a href="/lang/en" { "English" }
                        }
                    }
                    main { (body) }
                }
            }
        }
        .into_string(),
    )
}

/// Where the pages' stylesheet is served: a file of the server's own, so that the pages'
/// Content-Security-Policy allows no inline style or script at all.
pub const STYLESHEET: &str = "/style.css";

const CSS: &str = "p.ok{color:#185c18}textarea,input,select,button{font:inherit}td.approved{background:#d7f0d0}td.submitted{background:#dbe8fb}td.signed_off{background:#c9dcf7}td.returned{background:#fde7c8}td.late{background:#f8d0d0}td.draft{background:#f3f3f3}body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b}header{display:flex;justify-content:space-between;align-items:center;padding:.6rem 1.5rem;background:#8b1a1a;color:#fff}header a{color:#fff;margin-left:1rem}header .brand{font-weight:700;font-size:1.2rem;margin:0}nav{display:flex;align-items:center;gap:.5rem}nav form{display:inline}main{padding:1.5rem;max-width:70rem}table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.4rem .6rem;text-align:left;vertical-align:top}th{background:#f4f4f4}.state{padding:.1rem .5rem;border-radius:.8rem;background:#eee}.error{color:#a00}label{display:block;margin:.6rem 0 .2rem}input{padding:.4rem;min-width:16rem}button{padding:.4rem .9rem;margin-top:.8rem}";

fn state_label(lang: Lang, state: &str) -> &'static str {
    match state {
        "draft" => lang.t("Nháp", "Draft"),
        "submitted" => lang.t("Đã gửi", "Submitted"),
        "signed_off" => lang.t("Xã đã ký", "Signed off"),
        "returned" => lang.t("Bị trả lại", "Returned"),
        "approved" => lang.t("Đã phê duyệt", "Approved"),
        "reopened" => lang.t("Mở lại", "Reopened"),
        _ => lang.t("Không rõ", "Unknown"),
    }
}

/// Unix seconds as local time in Vietnam (UTC+7), `YYYY-MM-DD HH:MM`.
pub fn local_time(secs: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|t| t.to_offset(time::macros::offset!(+7)))
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_default()
}

async fn stylesheet() -> Response {
    ([(CONTENT_TYPE, "text/css; charset=utf-8"), (axum::http::header::CACHE_CONTROL, "max-age=3600")], CSS)
        .into_response()
}

async fn login_page(headers: HeaderMap) -> Html<String> {
    login_form(lang_of(&headers), false)
}

fn login_form(lang: Lang, failed: bool) -> Html<String> {
    page(
        lang,
        lang.t("Đăng nhập", "Sign in"),
        None,
        html! {
            h1 { (lang.t("Đăng nhập", "Sign in")) }
            @if failed { p.error role="alert" { (lang.t("Sai tên đăng nhập hoặc mật khẩu.", "Wrong username or password.")) } }
            form method="post" action="/login" {
                label for="username" { (lang.t("Tên đăng nhập", "Username")) }
                input id="username" name="username" autocomplete="username" required;
                label for="password" { (lang.t("Mật khẩu", "Password")) }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                div { button type="submit" { (lang.t("Đăng nhập", "Sign in")) } }
            }
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let lang = lang_of(&headers);
    let refused = |status: StatusCode, message: String| {
        let body = html! { p.error role="alert" { (message) } };
        (status, page(lang, lang.t("Đăng nhập", "Sign in"), None, body)).into_response()
    };
    let signed_in =
        crate::http::signin::sign_in(&state.db, &state.signin, &form.username, &form.password, address, Channel::Web)
            .await;
    let user = match signed_in {
        Ok(user) => user,
        Err(SignInError::InvalidCredentials) => {
            return (StatusCode::UNAUTHORIZED, login_form(lang, true)).into_response();
        }
        Err(SignInError::Wait { seconds }) => {
            let message = match lang {
                Lang::Vi => format!("Sai mật khẩu nhiều lần; hãy thử lại sau {seconds} giây."),
                Lang::En => format!("Too many wrong passwords; try again in {seconds} seconds."),
            };
            return refused(StatusCode::TOO_MANY_REQUESTS, message);
        }
        Err(SignInError::TooLong(_)) => return (StatusCode::BAD_REQUEST, login_form(lang, true)).into_response(),
        Err(SignInError::Busy) => {
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                lang.t("Máy chủ đang bận; hãy thử lại sau ít phút.", "The server is busy; try again shortly.").into(),
            );
        }
        Err(SignInError::Db(e)) => return server_error(e),
    };
    let (Ok(token), Ok(csrf)) = (auth::new_token(), auth::new_token()) else {
        return server_error("no randomness");
    };
    if let Err(e) = state.db.create_session(&auth::token_hash(&token), user.id, &csrf, SESSION_TTL_SECS).await {
        return server_error(e);
    }
    let _ = state.db.audit(Some(&user.username), "web_login", "").await;
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let cookie =
        format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_TTL_SECS}{secure}");
    redirect_with_cookie("/records", &cookie)
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: WebUser,
    Form(form): Form<CsrfForm>,
) -> Response {
    if form.csrf != user.csrf {
        return (StatusCode::FORBIDDEN, "CSRF token mismatch").into_response();
    }
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = state.db.delete_session(&auth::token_hash(token)).await
    {
        return server_error(e);
    }
    redirect_with_cookie("/login", &format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"))
}

async fn set_lang(Path(lang): Path<String>) -> Response {
    let lang = if lang == "en" { "en" } else { "vi" };
    redirect_with_cookie("/records", &format!("{LANG_COOKIE}={lang}; Path=/; SameSite=Lax; Max-Age=31536000"))
}

/// Filters of the submissions queue.
#[derive(Deserialize, Default)]
struct QueueFilter {
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
async fn visible_records(state: &AppState, user: &User) -> Result<Vec<RecordRow>, crate::store::DbError> {
    let access = Access::of(&state.db, user).await?;
    state.db.records_in_units(&access.units, &access.hidden, 5000).await
}

async fn records_page(State(state): State<AppState>, web: WebUser, Query(filter): Query<QueueFilter>) -> Response {
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

async fn record_page(State(state): State<AppState>, web: WebUser, Path(id): Path<String>) -> Response {
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

/// A field a proposed amendment would change: (label, now, proposed).
type FieldDiff = (String, String, String);

fn amendment_status(lang: Lang, status: &str) -> &'static str {
    match status {
        "accepted" => lang.t("đã chấp nhận", "accepted"),
        "rejected" => lang.t("không chấp nhận", "rejected"),
        _ => lang.t("chờ xem xét", "waiting"),
    }
}

#[derive(Deserialize)]
struct AmendmentForm {
    csrf: String,
    action: String,
}

async fn decide_amendment(
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
struct ReviewForm {
    csrf: String,
    action: String,
    #[serde(default)]
    comment: String,
}

async fn review_record(
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
async fn grid_page(State(state): State<AppState>, web: WebUser, Path(template_id): Path<String>) -> Response {
    let lang = web.lang;
    let form = match readable_form(&state, &web, &template_id).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let template = form.template();
    let Some(spec) = template.period.clone() else { return not_found(lang, &web) };
    let today = state.db.clock.today();
    let periods = grid::periods(&spec, today, grid::PERIODS);
    let units = match scope_of(&state, &web.user).await {
        Ok(u) => u,
        Err(e) => return server_error(e),
    };
    let (communes, states) =
        match (state.db.communes_in(&units).await, state.db.period_states(&template_id, &units).await) {
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

#[derive(Deserialize, Default)]
struct PeriodQuery {
    #[serde(default)]
    period: String,
}

/// `/rollup/{template}` (a page), `.xlsx` or `.csv`: sums per commune and up the tree for a
/// period (periodic templates; default the current one) or for all records.
async fn rollup_page(
    State(state): State<AppState>,
    web: WebUser,
    Path(file): Path<String>,
    Query(q): Query<PeriodQuery>,
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
    let period = match (&form.template().period, q.period.as_str()) {
        (Some(spec), "") => Some(spec.key_for(state.db.clock.today())),
        (Some(_), p) => Some(p.to_owned()),
        (None, _) => None,
    };
    let units = match scope_of(&state, &web.user).await {
        Ok(u) => u,
        Err(e) => return server_error(e),
    };
    let (unit_rows, records) = match (state.db.units_in(&units).await, visible_records(&state, &web.user).await) {
        (Ok(u), Ok(r)) => (u, r.into_iter().filter(|r| r.template_id == template_id).collect::<Vec<_>>()),
        (Err(e), _) | (_, Err(e)) => return server_error(e),
    };
    let table = crate::domain::rollup::rollup(&form, &unit_rows, &records, period.as_deref());
    if kind != "html" {
        let detail = format!("{file} {}", period.as_deref().unwrap_or("*"));
        return download(
            &state,
            &web,
            &table,
            kind,
            "Tổng hợp",
            &format!("{template_id}-tong-hop"),
            "export_rollup",
            &detail,
        )
        .await;
    }
    let title = form.template().label.text(lang.code()).to_owned();
    let query = period.as_deref().map(|p| format!("?period={p}")).unwrap_or_default();
    page(
        lang,
        &title,
        Some(&web),
        html! {
            h1 { (lang.t("Tổng hợp: ", "Roll-up: ")) (title) }
            @if let Some(p) = &period { p { (lang.t("Kỳ: ", "Period: ")) strong { (p) } } }
            p {
                a id="rollup-xlsx" href={ "/rollup/" (template_id) ".xlsx" (query) } { "Excel (XLSX)" } " · "
                a id="rollup-csv" href={ "/rollup/" (template_id) ".csv" (query) } { "CSV" }
            }
            table id="rollup" {
                thead { tr { @for h in &table.headers { th { (h) } } } }
                tbody {
                    @for row in &table.rows {
                        tr {
                            @for cell in row {
                                @match cell {
                                    crate::domain::export::Cell::Text(t) => td { (t) },
                                    crate::domain::export::Cell::Number(n) => td.num { (n) },
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

/// `/export/{template}.xlsx` or `.csv`: every record of a template the user may see.
async fn export_records(State(state): State<AppState>, web: WebUser, Path(file): Path<String>) -> Response {
    let lang = web.lang;
    let Some((template_id, kind)) = file.rsplit_once('.').filter(|(_, k)| *k == "xlsx" || *k == "csv") else {
        return not_found(lang, &web);
    };
    let rows: Vec<RecordRow> = match visible_records(&state, &web.user).await {
        Ok(rows) => rows.into_iter().filter(|r| r.template_id == template_id).collect(),
        Err(e) => return server_error(e),
    };
    let form = match readable_form(&state, &web, template_id).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let table = crate::domain::export::table(&form, &rows, |s| state_label(Lang::Vi, s).to_owned(), local_time);
    let detail = format!("{file} ({} records)", rows.len());
    download(&state, &web, &table, kind, &form.template().label.vi, template_id, "export", &detail).await
}

/// The latest form of a template the user may read: restricted templates only when granted,
/// and the same "not found" whether the template is missing or withheld.
async fn readable_form(state: &AppState, web: &WebUser, template_id: &str) -> Result<Arc<diaban_core::Form>, Response> {
    let access = Access::of(&state.db, &web.user).await.map_err(server_error)?;
    access.form(&state.db, template_id).await.map_err(server_error)?.ok_or_else(|| not_found(web.lang, web))
}

/// A table as a downloaded XLSX or CSV file (`kind`), written to the audit log first.
#[allow(clippy::too_many_arguments)]
async fn download(
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

/// What falls due in the registries of the user's units: residence checks, periods ending.
async fn reminders_page(State(state): State<AppState>, web: WebUser) -> Response {
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

async fn scope_of(state: &AppState, user: &User) -> Result<Vec<String>, crate::store::DbError> {
    state.db.unit_scope(&user.unit_code).await
}

fn not_found(lang: Lang, web: &WebUser) -> Response {
    let title = lang.t("Không tìm thấy hồ sơ", "Record not found");
    (StatusCode::NOT_FOUND, page(lang, title, Some(web), html! { h1 { (title) } })).into_response()
}

fn server_error(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "web page failed");
    (StatusCode::INTERNAL_SERVER_ERROR, "Lỗi máy chủ / Server error").into_response()
}

fn redirect_with_cookie(to: &str, cookie: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let (Ok(location), Ok(cookie)) = (HeaderValue::from_str(to), HeaderValue::from_str(cookie)) {
        response.headers_mut().insert(LOCATION, location);
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}
