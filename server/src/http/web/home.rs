//! The home page a reviewer lands on: what to do, for their units and today, each line a link
//! to the list that holds it.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use time::Date;

use super::{Lang, WebUser, page, server_error, state_label};
use crate::domain::home::{StateCount, home};
use crate::http::AppState;

pub(super) async fn home_page(State(state): State<AppState>, web: WebUser) -> Response {
    let lang = web.lang;
    let today = state.db.clock.today();
    let summary = match home(&state.db, &web.user, today, lang.code()).await {
        Ok(summary) => summary,
        Err(e) => return server_error(e),
    };
    let title = lang.t("Việc cần làm", "What to do");
    page(
        lang,
        title,
        Some(&web),
        html! {
            h1 { (title) }
            p { (lang.t("Hôm nay: ", "Today: ")) (date_label(lang, today)) " · " (web.user.unit_name) }

            h2 { (lang.t("Báo cáo định kỳ của kỳ vừa kết thúc", "Periodic reports for the period just ended")) }
            @if summary.reports.is_empty() {
                p { (lang.t("Không có biểu mẫu báo cáo định kỳ.", "No periodic report templates.")) }
            } @else {
                table id="reports" {
                    thead { tr {
                        th { (lang.t("Báo cáo", "Report")) } th { (lang.t("Kỳ", "Period")) } th { (lang.t("Hạn nộp", "Due")) }
                        th { (lang.t("Đã gửi", "Sent")) } th { (lang.t("Đang làm", "In progress")) }
                        th { (lang.t("Chưa có", "Missing")) } th {}
                    } }
                    tbody {
                        @for r in &summary.reports {
                            tr data-template=(r.template_id) {
                                td { (r.label) }
                                td { (r.period) }
                                td class=[r.late.then_some("late")] {
                                    (date_label(lang, r.due))
                                    @if r.late { " · " (lang.t("đã quá hạn", "overdue")) }
                                }
                                td.sent { (r.sent) " / " (r.communes) " " (lang.t("xã", "communes")) }
                                td.started { (r.started) }
                                td.missing class=[(r.late && r.missing > 0).then_some("late")] { (r.missing) }
                                td {
                                    a href={ "/grid/" (r.template_id) } { (lang.t("Tiến độ", "Progress")) } " · "
                                    a href={ "/records?template=" (r.template_id) "&period=" (r.period) } { (lang.t("Hồ sơ", "Records")) } " · "
                                    a href={ "/rollup/" (r.template_id) "?period=" (r.period) } { (lang.t("Tổng hợp", "Roll-up")) }
                                }
                            }
                        }
                    }
                }
            }

            h2 { (lang.t("Chờ duyệt", "Waiting for review")) }
            (counts(lang, "waiting", &summary.waiting, lang.t("Không có hồ sơ nào chờ duyệt.", "Nothing is waiting for review.")))

            h2 { (lang.t("Đã trả lại, xã chưa gửi lại", "Returned, not yet sent again")) }
            (counts(lang, "returned", &summary.returned, lang.t("Không có hồ sơ nào đang bị trả lại.", "No record is waiting to be sent again.")))

            h2 { (lang.t("Nhắc việc từ sổ quản lý", "Reminders from the registries")) }
            p id="reminders-due" {
                @if summary.reminders == 0 {
                    (lang.t("Không có việc đến hạn.", "Nothing is due."))
                } @else {
                    a href="/reminders" {
                        (summary.reminders) (lang.t(" việc đến hạn", " due"))
                        @if summary.overdue_reminders > 0 {
                            ", " (summary.overdue_reminders) (lang.t(" việc đã quá hạn", " overdue"))
                        }
                    }
                }
            }

            h2 { (lang.t("Đề nghị sửa hồ sơ đã duyệt", "Proposed amendments to approved records")) }
            p id="amendments" {
                @if summary.amendments == 0 {
                    (lang.t("Không có đề nghị nào chờ quyết định.", "No proposed amendment is waiting."))
                } @else {
                    a href="/records?amendments=1" {
                        (summary.amendments) (lang.t(" đề nghị chờ quyết định", " waiting for a decision"))
                    }
                }
            }
        },
    )
    .into_response()
}

/// A list of (template, state) counts, each a link to the queue filtered to it.
fn counts(lang: Lang, id: &str, lines: &[StateCount], none: &str) -> Markup {
    html! {
        @if lines.is_empty() {
            p id=(id) { (none) }
        } @else {
            ul id=(id) {
                @for line in lines {
                    li {
                        a href={ "/records?template=" (line.template_id) "&state=" (line.state) } {
                            (line.label) ": " strong { (line.count) } " " (state_label(lang, &line.state).to_lowercase())
                        }
                    }
                }
            }
        }
    }
}

/// A date as the page's language writes it (07/12/2026, or 2026-12-07 in English).
fn date_label(lang: Lang, date: Date) -> String {
    match lang {
        Lang::Vi => format!("{:02}/{:02}/{}", date.day(), u8::from(date.month()), date.year()),
        Lang::En => diaban_core::clock::iso(date),
    }
}
