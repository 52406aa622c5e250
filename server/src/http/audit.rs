//! The audit page: who did what, newest first, a hundred lines a page, filtered by user or
//! action. Admins only.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::{Deserialize, Serialize};

use crate::http::AppState;
use crate::http::admin::admin_only;
use crate::http::web::{Lang, WebUser, invalid_filter, local_time, page, server_error};
use crate::store::AUDIT_PAGE;

/// The filters and where the page starts; also the query of the links that keep them.
#[derive(Deserialize, Serialize, Default, Clone)]
pub struct AuditQuery {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    action: String,
    /// Lines before this one (the previous page's last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<i64>,
}

impl AuditQuery {
    fn link(&self, before: Option<i64>) -> String {
        let query = AuditQuery { before, ..self.clone() };
        format!("/admin/audit?{}", serde_urlencoded::to_string(&query).unwrap_or_default())
    }
}

pub async fn audit_page(State(state): State<AppState>, web: WebUser, Query(q): Query<AuditQuery>) -> Response {
    let lang = web.lang;
    if let Some(refused) = admin_only(&web) {
        return refused;
    }
    if q.user.chars().count() > 100 || q.action.chars().count() > 100 {
        return invalid_filter(lang, &web);
    }
    let set = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let (user, action) = (set(&q.user), set(&q.action));
    let (entries, total) = match state.db.audit_page(user.as_deref(), action.as_deref(), q.before).await {
        Ok(found) => found,
        Err(e) => return server_error(e),
    };
    let next = (entries.len() as i64 == AUDIT_PAGE).then(|| entries.last().map(|e| e.id)).flatten();
    let title = lang.t("Nhật ký hoạt động", "Audit log");
    page(
        lang,
        title,
        Some(&web),
        html! {
            h1 { (title) }
            form id="audit-filter" method="get" action="/admin/audit" {
                label for="a-user" { (lang.t("Tài khoản", "Username")) }
                input id="a-user" name="user" value=(q.user);
                label for="a-action" { (lang.t("Việc (mã)", "Action (code)")) }
                input id="a-action" name="action" value=(q.action);
                div { button type="submit" { (lang.t("Lọc", "Filter")) } }
            }
            p id="count" { (lang.t("Số dòng: ", "Lines: ")) strong { (total) } }
            table id="audit" {
                thead { tr {
                    th { (lang.t("Thời điểm", "When")) } th { (lang.t("Tài khoản", "Username")) }
                    th { (lang.t("Việc", "Action")) } th { (lang.t("Chi tiết", "Detail")) }
                } }
                tbody {
                    @for e in &entries {
                        tr data-action=(e.action) {
                            td { (local_time(e.at)) }
                            td { (e.username.as_deref().unwrap_or(lang.t("(máy chủ)", "(server)"))) }
                            td { (action_label(lang, &e.action)) }
                            td { (e.detail) }
                        }
                    }
                }
            }
            nav id="pages" {
                @if q.before.is_some() {
                    a id="first-page" href=(q.link(None)) { (lang.t("« Mới nhất", "« Newest")) }
                }
                @if let Some(before) = next {
                    " " a id="next-page" href=(q.link(Some(before))) { (lang.t("Cũ hơn »", "Older »")) }
                }
            }
        },
    )
    .into_response()
}

/// What an audited action is called; an action not listed here shows as its code.
fn action_label(lang: Lang, action: &str) -> String {
    let label = match action {
        "web_login" => lang.t("Đăng nhập trang web", "Signed in to the web"),
        "device_login" => lang.t("Đăng nhập trên điện thoại", "Signed in on a phone"),
        "login_failed" => lang.t("Đăng nhập sai", "Failed sign-in"),
        "login_failed_unknown_users" => lang.t("Đăng nhập sai (tài khoản không có)", "Failed sign-ins (unknown users)"),
        "export" => lang.t("Xuất dữ liệu", "Export"),
        "export_rollup" => lang.t("Xuất bảng tổng hợp", "Roll-up export"),
        "approve" => lang.t("Phê duyệt", "Approved"),
        "return" => lang.t("Trả lại", "Returned"),
        "sign_off" => lang.t("Xã ký", "Signed off"),
        "reopen" => lang.t("Mở lại", "Reopened"),
        "submit" => lang.t("Gửi", "Submitted"),
        "comment" => lang.t("Ý kiến", "Comment"),
        "amendment_accepted" => lang.t("Chấp nhận đề nghị sửa", "Amendment accepted"),
        "amendment_rejected" => lang.t("Từ chối đề nghị sửa", "Amendment rejected"),
        "read_restricted" => lang.t("Xem hồ sơ mật", "Read a restricted record"),
        "attachment_uploaded" => lang.t("Tải lên tệp đính kèm", "Attachment uploaded"),
        "grant_template" => lang.t("Cấp quyền biểu mẫu mật", "Restricted template granted"),
        "revoke_template" => lang.t("Thu hồi quyền biểu mẫu mật", "Restricted template revoked"),
        "publish_template" => lang.t("Ban hành biểu mẫu", "Template published"),
        "publish_choice_list" => lang.t("Ban hành danh mục", "Choice list published"),
        "create_user" => lang.t("Tạo tài khoản", "User created"),
        "update_user" => lang.t("Sửa tài khoản", "User changed"),
        "import_units" => lang.t("Nhập danh mục đơn vị", "Units imported"),
        "revoke_device" => lang.t("Thu hồi thiết bị", "Device revoked"),
        "device_deactivated" => lang.t("Ngừng thiết bị, xóa dữ liệu trên máy", "Device deactivated and wiped"),
        "device_stolen" => lang.t("Báo mất thiết bị", "Device reported stolen"),
        "device_wiped" => lang.t("Thiết bị đã xóa dữ liệu", "Device wiped"),
        "seed_demo" => lang.t("Tạo dữ liệu mẫu", "Demo seeded"),
        _ => return action.to_owned(),
    };
    label.to_owned()
}
