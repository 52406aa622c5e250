//! Admin pages: users, devices, restricted-template grants, templates and units, beside the
//! `diaban admin` subcommands, which call the same storage functions. Admins only; every form
//! carries the session's CSRF token; every action is audited.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use diaban_core::template::{Role, Template};
use maud::{Markup, html};
use serde::Deserialize;

use crate::http::AppState;
use crate::http::web::{WebUser, local_time, page};
use crate::store::Wipe;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(admin_page))
        .route("/admin/audit", get(crate::http::audit::audit_page))
        .route("/admin/users", post(create_user))
        .route("/admin/users/edit", post(edit_user))
        .route("/admin/grants/revoke", post(revoke_grant))
        .route("/admin/devices/{id}/revoke", post(revoke_device))
        .route("/admin/devices/{id}/deactivate", post(deactivate_device))
        .route("/admin/devices/{id}/stolen", post(report_stolen))
        .route("/admin/grants", post(grant))
        .route("/admin/templates", post(publish_template))
        .route("/admin/units", post(import_units))
}

/// The one check of every admin page and action: the response refusing anyone not an admin.
pub(crate) fn admin_only(web: &WebUser) -> Option<Response> {
    (web.user.role != Role::Admin).then(|| (StatusCode::FORBIDDEN, "Chỉ quản trị viên / Admins only").into_response())
}

/// The response refusing the request, unless the user is an admin with the session's CSRF token.
fn refusal(web: &WebUser, csrf: &str) -> Option<Response> {
    if let Some(refused) = admin_only(web) {
        return Some(refused);
    }
    if csrf != web.csrf {
        return Some((StatusCode::FORBIDDEN, "CSRF token mismatch").into_response());
    }
    None
}

fn csrf_field(web: &WebUser) -> Markup {
    html! { input type="hidden" name="csrf" value=(web.csrf); }
}

async fn admin_page(State(state): State<AppState>, web: WebUser) -> Response {
    admin_view(&state, &web, None).await
}

/// The admin page, with the outcome of the last action when there is one.
async fn admin_view(state: &AppState, web: &WebUser, message: Option<(bool, String)>) -> Response {
    if let Some(refused) = admin_only(web) {
        return refused;
    }
    let lang = web.lang;
    let (users, devices, templates, units) = match (
        state.db.users().await,
        state.db.devices().await,
        state.db.published_templates().await,
        state.db.unit_count().await,
    ) {
        (Ok(u), Ok(d), Ok(t), Ok(n)) => (u, d, t, n),
        _ => return (StatusCode::INTERNAL_SERVER_ERROR, "Lỗi máy chủ / Server error").into_response(),
    };
    let title = lang.t("Quản trị", "Administration");
    let roles = ["field_officer", "commune_lead", "reviewer", "admin"];
    let body = html! {
        h1 { (title) }
        p { a id="audit-link" href="/admin/audit" { (lang.t("Nhật ký hoạt động", "Audit log")) } }
        @if let Some((ok, text)) = &message {
            p id="outcome" class=(if *ok { "ok" } else { "error" }) role="status" { (text) }
        }
        h2 { (lang.t("Người dùng", "Users")) }
        table id="users" {
            thead { tr { th { (lang.t("Tên đăng nhập", "Username")) } th { (lang.t("Họ tên", "Name")) } th { (lang.t("Vai trò", "Role")) } th { (lang.t("Đơn vị", "Unit")) } } }
            tbody { @for u in &users { tr { td { (u.username) } td { (u.display_name) } td { (u.role.as_str()) } td { (u.unit_name) " (" (u.unit_code) ")" } } } }
        }
        form id="new-user" method="post" action="/admin/users" {
            (csrf_field(web))
            label for="u-username" { (lang.t("Tên đăng nhập", "Username")) } input id="u-username" name="username" required;
            label for="u-name" { (lang.t("Họ tên", "Name")) } input id="u-name" name="display_name" required;
            label for="u-password" { (lang.t("Mật khẩu (ít nhất 8 ký tự)", "Password (8+ characters)")) } input id="u-password" name="password" type="password" required;
            label for="u-role" { (lang.t("Vai trò", "Role")) }
            select id="u-role" name="role" { @for r in roles { option value=(r) { (r) } } }
            label for="u-unit" { (lang.t("Mã đơn vị", "Unit code")) } input id="u-unit" name="unit" required;
            div { button type="submit" { (lang.t("Tạo / cập nhật người dùng", "Create / update user")) } }
        }
        form id="edit-user" method="post" action="/admin/users/edit" {
            (csrf_field(web))
            label for="e-username" { (lang.t("Chuyển / sửa người dùng", "Move / edit user")) } input id="e-username" name="username" required;
            label for="e-unit" { (lang.t("Đơn vị mới (để trống: giữ nguyên)", "New unit (empty: unchanged)")) } input id="e-unit" name="unit";
            label for="e-role" { (lang.t("Vai trò", "Role")) }
            select id="e-role" name="role" {
                option value="" { (lang.t("(giữ nguyên)", "(unchanged)")) }
                @for r in roles { option value=(r) { (r) } }
            }
            label for="e-name" { (lang.t("Họ tên (để trống: giữ nguyên)", "Name (empty: unchanged)")) } input id="e-name" name="display_name";
            div { button type="submit" { (lang.t("Lưu thay đổi", "Save changes")) } }
        }
        h2 { (lang.t("Thiết bị", "Devices")) }
        table id="devices" {
            thead { tr { th { (lang.t("Người dùng", "User")) } th { (lang.t("Thiết bị", "Device")) } th { (lang.t("Đăng ký", "Registered")) } th { (lang.t("Trạng thái", "State")) } th {} } }
            tbody {
                @for d in &devices {
                    tr data-device=(d.id) {
                        td { (d.username) } td { (d.name) } td { (local_time(d.created_at)) }
                        td.device-state {
                            @match (d.wipe, d.wipe_confirmed_at, d.revoked_at) {
                                (Some(_), Some(at), _) => { (lang.t("Đã xóa dữ liệu lúc ", "Wiped at ")) (local_time(at)) }
                                (Some(Wipe::Deactivated), None, _) => (lang.t("Đã ngừng sử dụng: chờ máy gửi nốt và xóa dữ liệu", "Deactivated: waiting for it to send what is left and wipe")),
                                (Some(Wipe::Stolen), None, _) => (lang.t("Báo mất: chờ máy xóa dữ liệu", "Reported stolen: waiting for it to wipe")),
                                (None, _, Some(_)) => (lang.t("Đã thu hồi", "Revoked")),
                                (None, _, None) => (lang.t("Đang dùng", "Active")),
                            }
                        }
                        td { @if d.revoked_at.is_none() && d.wipe.is_none() {
                            form method="post" action={ "/admin/devices/" (d.id) "/deactivate" } {
                                (csrf_field(web)) button type="submit" { (lang.t("Ngừng sử dụng và xóa", "Deactivate and wipe")) }
                            }
                            form method="post" action={ "/admin/devices/" (d.id) "/stolen" } {
                                (csrf_field(web)) button type="submit" { (lang.t("Báo mất máy", "Report stolen")) }
                            }
                            form method="post" action={ "/admin/devices/" (d.id) "/revoke" } {
                                (csrf_field(web)) button type="submit" { (lang.t("Thu hồi", "Revoke")) }
                            }
                        } }
                    }
                }
            }
        }
        h2 { (lang.t("Biểu mẫu", "Templates")) }
        table id="templates" {
            thead { tr { th { "ID" } th { (lang.t("Phiên bản", "Version")) } th { (lang.t("Tên", "Name")) } th { (lang.t("Mức nhạy cảm", "Sensitivity")) } } }
            tbody { @for t in &templates { tr { td { (t.id) } td { (t.version) } td { (t.label.text(lang.code())) } td { (format!("{:?}", t.sensitivity)) } } } }
        }
        form id="publish" method="post" action="/admin/templates" {
            (csrf_field(web))
            label for="t-json" { (lang.t("Xuất bản biểu mẫu (JSON)", "Publish a template (JSON)")) }
            textarea id="t-json" name="json" rows="8" cols="80" required {}
            div { button type="submit" { (lang.t("Xuất bản", "Publish")) } }
        }
        form id="grant" method="post" action="/admin/grants" {
            (csrf_field(web))
            label for="g-user" { (lang.t("Cấp quyền xem biểu mẫu hạn chế cho", "Grant a restricted template to")) } input id="g-user" name="username" required;
            label for="g-template" { (lang.t("Biểu mẫu", "Template")) } input id="g-template" name="template" required;
            div { button type="submit" { (lang.t("Cấp quyền", "Grant")) } }
        }
        form id="revoke-grant" method="post" action="/admin/grants/revoke" {
            (csrf_field(web))
            label for="r-user" { (lang.t("Thu hồi quyền xem biểu mẫu hạn chế của", "Take a restricted template back from")) } input id="r-user" name="username" required;
            label for="r-template" { (lang.t("Biểu mẫu", "Template")) } input id="r-template" name="template" required;
            div { button type="submit" { (lang.t("Thu hồi quyền", "Revoke")) } }
        }
        h2 { (lang.t("Đơn vị hành chính", "Administrative units")) }
        p { (units) " " (lang.t("đơn vị", "units")) }
        form id="units" method="post" action="/admin/units" {
            (csrf_field(web))
            label for="units-csv" { (lang.t("Nhập danh mục (CSV: code,name,level,parent_code,valid_from,valid_to,predecessors)", "Import units (CSV)")) }
            textarea id="units-csv" name="csv" rows="6" cols="80" required {}
            div { button type="submit" { (lang.t("Nhập", "Import")) } }
        }
    };
    page(lang, title, Some(web), body).into_response()
}

/// Runs an admin action and shows the page with its outcome.
async fn outcome(state: &AppState, web: &WebUser, result: Result<String, String>, action: &str) -> Response {
    let message = match &result {
        Ok(done) => {
            let _ = state.db.audit(Some(&web.user.username), action, done).await;
            (true, done.clone())
        }
        Err(e) => (false, e.clone()),
    };
    let status = if result.is_ok() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    (status, admin_view(state, web, Some(message)).await).into_response()
}

#[derive(Deserialize)]
struct UserForm {
    csrf: String,
    username: String,
    display_name: String,
    password: String,
    role: String,
    unit: String,
}

async fn create_user(State(state): State<AppState>, web: WebUser, Form(f): Form<UserForm>) -> Response {
    if let Some(r) = refusal(&web, &f.csrf) {
        return r;
    }
    let result = match Role::parse(&f.role) {
        Some(role) => state
            .db
            .create_user(f.username.trim(), f.display_name.trim(), &f.password, role, f.unit.trim())
            .await
            .map(|_| format!("{} ✓", f.username.trim()))
            .map_err(|e| e.to_string()),
        None => Err(format!("{:?} is not a role", f.role)),
    };
    outcome(&state, &web, result, "create_user").await
}

#[derive(Deserialize)]
struct EditUserForm {
    csrf: String,
    username: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    display_name: String,
}

async fn edit_user(State(state): State<AppState>, web: WebUser, Form(f): Form<EditUserForm>) -> Response {
    if let Some(r) = refusal(&web, &f.csrf) {
        return r;
    }
    let filled = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned);
    let (unit, name) = (filled(&f.unit), filled(&f.display_name));
    let result = match filled(&f.role).map(|r| Role::parse(&r).ok_or(r)).transpose() {
        Ok(role) => state
            .db
            .update_user(f.username.trim(), role, unit.as_deref(), name.as_deref())
            .await
            .map(|_| format!("{} ✓ unit={unit:?} role={role:?} name={name:?}", f.username.trim()))
            .map_err(|e| e.to_string()),
        Err(role) => Err(format!("{role:?} is not a role")),
    };
    outcome(&state, &web, result, "update_user").await
}

async fn revoke_grant(State(state): State<AppState>, web: WebUser, Form(f): Form<GrantForm>) -> Response {
    if let Some(r) = refusal(&web, &f.csrf) {
        return r;
    }
    let (username, template) = (f.username.trim(), f.template.trim());
    let result = match state.db.revoke_template(username, template).await {
        Ok(true) => Ok(format!("{username} ✗ {template}")),
        Ok(false) => Err(format!("{username} does not hold {template}")),
        Err(e) => Err(e.to_string()),
    };
    outcome(&state, &web, result, "revoke_template").await
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn revoke_device(
    State(state): State<AppState>,
    web: WebUser,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if let Some(r) = refusal(&web, &f.csrf) {
        return r;
    }
    let result = state
        .db
        .revoke_devices(Some(&id), None)
        .await
        .map(|n| format!("{n} thiết bị đã thu hồi / revoked: {id}"))
        .map_err(|e| e.to_string());
    outcome(&state, &web, result, "revoke_device").await
}

async fn deactivate_device(state: State<AppState>, web: WebUser, id: Path<String>, f: Form<CsrfOnly>) -> Response {
    order_wipe(state, web, id, f, Wipe::Deactivated).await
}

async fn report_stolen(state: State<AppState>, web: WebUser, id: Path<String>, f: Form<CsrfOnly>) -> Response {
    order_wipe(state, web, id, f, Wipe::Stolen).await
}

/// Orders a device wiped at its next contact.
async fn order_wipe(
    State(state): State<AppState>,
    web: WebUser,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
    wipe: Wipe,
) -> Response {
    if let Some(r) = refusal(&web, &f.csrf) {
        return r;
    }
    let result = match state.db.order_wipe(&id, wipe).await {
        Ok(true) => Ok(format!("Đã ra lệnh xóa dữ liệu thiết bị / wipe ordered: {id}")),
        Ok(false) => Err(format!("Không có thiết bị đang dùng {id} / no device in use {id}")),
        Err(e) => Err(e.to_string()),
    };
    outcome(&state, &web, result, &format!("device_{}", wipe.as_str())).await
}

#[derive(Deserialize)]
struct GrantForm {
    csrf: String,
    username: String,
    template: String,
}

async fn grant(State(state): State<AppState>, web: WebUser, Form(f): Form<GrantForm>) -> Response {
    if let Some(r) = refusal(&web, &f.csrf) {
        return r;
    }
    let result = state
        .db
        .grant_template(f.username.trim(), f.template.trim())
        .await
        .map(|_| format!("{} → {}", f.username.trim(), f.template.trim()))
        .map_err(|e| e.to_string());
    outcome(&state, &web, result, "grant_template").await
}

#[derive(Deserialize)]
struct JsonForm {
    csrf: String,
    json: String,
}

async fn publish_template(State(state): State<AppState>, web: WebUser, Form(f): Form<JsonForm>) -> Response {
    if let Some(r) = refusal(&web, &f.csrf) {
        return r;
    }
    let result = match serde_json::from_str::<Template>(&f.json) {
        Ok(t) => state
            .db
            .publish_template(t)
            .await
            .map(|(new, t)| format!("{} v{} {}", t.id, t.version, if new { "✓" } else { "(đã có / unchanged)" }))
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("JSON: {e}")),
    };
    outcome(&state, &web, result, "publish_template").await
}

#[derive(Deserialize)]
struct CsvForm {
    csrf: String,
    csv: String,
}

async fn import_units(State(state): State<AppState>, web: WebUser, Form(f): Form<CsvForm>) -> Response {
    if let Some(r) = refusal(&web, &f.csrf) {
        return r;
    }
    let result =
        crate::domain::units::import(&state.db, &f.csv).await.map(|n| format!("{n} ✓")).map_err(|e| e.to_string());
    outcome(&state, &web, result, "import_units").await
}
