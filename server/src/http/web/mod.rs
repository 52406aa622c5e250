//! The review web UI: server-rendered HTML (maud escapes every value), cookie sessions.
//!
//! Vietnamese by default; `/lang/en` switches to English. Every query is scoped to the
//! signed-in user's unit subtree, so guessing a record id from another unit shows nothing.

mod desk;
mod home;
mod queue;
mod record;
mod rollup;
mod session;

use desk::{export_records, grid_page, readable_form, reminders_page};
use home::home_page;
use queue::records_page;
use record::{decide_amendment, download, record_page, review_record};
use rollup::rollup_page;
use session::{login, login_page, logout, set_lang};

use crate::domain::auth;
use crate::http::AppState;
use crate::store::User;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};

const SESSION_COOKIE: &str = "diaban_session";

const LANG_COOKIE: &str = "diaban_lang";

const SESSION_TTL_SECS: i64 = 8 * 3600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home_page))
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
                        a.brand href="/" { "Địa bàn" }
                        nav {
                            @if let Some(u) = user {
                                a href="/" { (lang.t("Việc cần làm", "What to do")) }
                                a href="/records" { (lang.t("Hồ sơ", "Records")) }
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

const CSS: &str = "p.ok{color:#185c18}textarea,input,select,button{font:inherit}td.approved{background:#d7f0d0}td.submitted{background:#dbe8fb}td.signed_off{background:#c9dcf7}td.returned{background:#fde7c8}td.late{background:#f8d0d0}td.draft{background:#f3f3f3}body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b}header{display:flex;justify-content:space-between;align-items:center;padding:.6rem 1.5rem;background:#8b1a1a;color:#fff}header a{color:#fff;margin-left:1rem}header .brand{font-weight:700;font-size:1.2rem;margin:0}nav{display:flex;align-items:center;gap:.5rem}nav form{display:inline}main{padding:1.5rem;max-width:70rem}table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.4rem .6rem;text-align:left;vertical-align:top}th{background:#f4f4f4}.state{padding:.1rem .5rem;border-radius:.8rem;background:#eee}.error{color:#a00}.none{color:#777;font-style:italic}label{display:block;margin:.6rem 0 .2rem}input{padding:.4rem;min-width:16rem}button{padding:.4rem .9rem;margin-top:.8rem}";

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

async fn scope_of(state: &AppState, user: &User) -> Result<Vec<String>, crate::store::DbError> {
    state.db.unit_scope(&user.unit_code).await
}

fn not_found(lang: Lang, web: &WebUser) -> Response {
    refused(lang, web, StatusCode::NOT_FOUND, lang.t("Không tìm thấy hồ sơ", "Record not found"))
}

/// A page that says, under its status, why the request was refused.
pub(crate) fn refused(lang: Lang, web: &WebUser, status: StatusCode, title: &str) -> Response {
    (status, page(lang, title, Some(web), html! { h1 { (title) } })).into_response()
}

/// The page for a filter too long or a cursor not read back.
pub(crate) fn invalid_filter(lang: Lang, web: &WebUser) -> Response {
    refused(lang, web, StatusCode::BAD_REQUEST, lang.t("Bộ lọc không hợp lệ", "Invalid filter"))
}

pub(crate) fn server_error(e: impl std::fmt::Display) -> Response {
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
