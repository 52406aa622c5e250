"""The completeness grid: communes × periods of a periodic report, each cell not started,
draft, submitted, late, returned or approved, due dates from the template."""

import datetime

import diaban
from conftest import KEY, Server, signed_in

MONTHLY = {
    "id": "commune_monthly_report", "version": 1, "kind": "periodic_report",
    "label": {"vi": "Báo cáo tháng của xã", "en": "Commune monthly report"},
    "period": {"length": "month", "start_day": 1, "due_days_after_end": 2},
    "fields": [{"name": "sessions", "type": "integer", "min": 0, "required": True, "label": {"vi": "Số buổi tuyên truyền"}}],
}


def month_key(day: datetime.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def test_the_grid_shows_who_reported_for_which_period(server: Server, device_path, browser):
    assert server.publish(MONTHLY, server.token("quantri", "quantri-mat-khau"))[0] == 201
    # Vietnam's date, as the server computes it.
    today = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=7)).date()
    current = month_key(today)
    last_month_end = today.replace(day=1) - datetime.timedelta(days=1)
    previous = month_key(last_month_end)
    previous_late = today > last_month_end + datetime.timedelta(days=2)

    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    report = phone.create_record("commune_monthly_report", current)
    phone.set_field(report, "sessions", diaban.FieldValue.INTEGER(4))
    phone.submit(report)
    draft = phone.create_record("commune_monthly_report", previous)
    phone.set_field(draft, "sessions", diaban.FieldValue.INTEGER(1))
    phone.sync()

    page = signed_in(browser, server)
    page.goto(server.url + "/grid/commune_monthly_report")
    cell = lambda unit, period: page.locator(f'#grid tr[data-unit="{unit}"] td[data-period="{period}"]')
    assert page.locator("#grid tbody tr").count() == 2
    assert page.locator("#grid thead th").count() == 7, "the unit column and six periods"
    assert cell("03694", current).get_attribute("class") == "submitted"
    assert cell("03694", current).inner_text() == "Đã gửi"
    assert cell("04231", current).get_attribute("class") == "not_started"
    assert cell("03694", previous).get_attribute("class") == ("late" if previous_late else "draft")
    assert cell("04231", previous).get_attribute("class") == ("late" if previous_late else "not_started")
    phone.close()
