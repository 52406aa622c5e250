//! Signing in and out of the web, and the page language.

use super::{
    LANG_COOKIE, Lang, SESSION_COOKIE, SESSION_TTL_SECS, WebUser, cookie, lang_of, page, redirect_with_cookie,
    server_error,
};
use crate::domain::auth;
use crate::http::signin::{Channel, SignInError};
use crate::http::{AppState, ClientAddress};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::html;
use serde::Deserialize;

pub(super) async fn login_page(headers: HeaderMap) -> Html<String> {
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
pub(super) struct LoginForm {
    username: String,
    password: String,
}

pub(super) async fn login(
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
    redirect_with_cookie("/", &cookie)
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    csrf: String,
}

pub(super) async fn logout(
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

pub(super) async fn set_lang(Path(lang): Path<String>) -> Response {
    let lang = if lang == "en" { "en" } else { "vi" };
    redirect_with_cookie("/", &format!("{LANG_COOKIE}={lang}; Path=/; SameSite=Lax; Max-Age=31536000"))
}
