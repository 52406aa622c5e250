//! API errors: every failure leaves as an HTTP status with `{"error": {"code", "message"}}`.

use axum::Json;
use axum::extract::Request;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use diaban_core::protocol::{ErrorBody, ErrorDetail, codes};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds to wait before trying again (`Retry-After`), for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, "missing, expired or revoked token")
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message: self.message } };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; nothing was changed")
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        let (status, code) = match e {
            JsonRejection::MissingJsonContentType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            JsonRejection::BytesRejection(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            _ => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        ApiError::new(status, code, e.body_text())
    }
}

impl From<FormRejection> for ApiError {
    fn from(e: FormRejection) -> Self {
        ApiError::bad_request(e.body_text())
    }
}

impl From<crate::store::DbError> for ApiError {
    fn from(e: crate::store::DbError) -> Self {
        match e {
            crate::store::DbError::Sql(e) => ApiError::from(e),
            crate::store::DbError::Invalid(m) => ApiError::bad_request(m),
            crate::store::DbError::Publish(e) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, codes::INVALID_TEMPLATE, e.to_string())
            }
            crate::store::DbError::Open { .. } => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database is unavailable")
            }
        }
    }
}

/// Errors the framework answers by itself (a body over its route's limit, no such route, a
/// method the route does not take, an unreadable path or query) come as plain text; this layer
/// turns them into the project's JSON error body on the API and into a page on the web, with
/// the same status.
pub async fn uniform_errors(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/") || request.uri().path() == "/health";
    let response = next.run(request).await;
    let status = response.status();
    let plain =
        response.headers().get(CONTENT_TYPE).is_none_or(|t| t.to_str().is_ok_and(|t| t.starts_with("text/plain")));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (code, vi, en) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("payload_too_large", "Dữ liệu gửi lên quá lớn.", "The request body is larger than this route accepts.")
        }
        StatusCode::NOT_FOUND => ("not_found", "Không tìm thấy trang.", "No such page."),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "Yêu cầu không hợp lệ.", "This route does not take that method.")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "Kiểu dữ liệu không hợp lệ.", "The request's content type is not accepted here.")
        }
        s if s.is_server_error() => {
            ("internal", "Lỗi máy chủ; không có gì bị thay đổi.", "Server error; nothing was changed.")
        }
        _ => ("bad_request", "Yêu cầu không hợp lệ.", "The request is malformed."),
    };
    if api {
        return ApiError::new(status, code, en).into_response();
    }
    let page = format!(
        "<!DOCTYPE html><html lang=\"vi\"><head><meta charset=\"utf-8\"><title>Địa bàn</title></head>\
         <body><h1>{vi}</h1><p lang=\"en\">{en}</p><p><a href=\"/records\">Địa bàn</a></p></body></html>"
    );
    (status, Html(page)).into_response()
}
