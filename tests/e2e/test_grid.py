"""The completeness grid: communes × periods of a periodic report, each cell not started,
draft, submitted, late, returned or approved, due dates from the template."""

import datetime

import diaban
from conftest import KEY, Server, signed_in, today

MONTHLY = {
    "id": "grid_test_report", "version": 1, "kind": "periodic_report",
    "label": {"vi": "Báo cáo tháng của xã", "en": "Commune monthly report"},
    "period": {"length": "month", "start_day": 1, "due_days_after_end": 2},
    "fields": [{"name": "sessions", "type": "integer", "min": 0, "required": True, "label": {"vi": "Số buổi tuyên truyền"}}],
}


def month_key(day: datetime.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def test_the_grid_shows_who_reported_for_which_period(server: Server, device_path, browser):
    assert server.publish(MONTHLY, server.token("quantri", "quantri-mat-khau"))[0] == 201
    # Vietnam's date, as the server computes it (pinned on the test command's spread of dates).
    day = today()
    current = month_key(day)
    last_month_end = day.replace(day=1) - datetime.timedelta(days=1)
    previous = month_key(last_month_end)
    previous_late = day > last_month_end + datetime.timedelta(days=2)

    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    report = phone.create_record("grid_test_report", current)
    phone.set_field(report, "sessions", diaban.FieldValue.INTEGER(4))
    phone.submit(report)
    draft = phone.create_record("grid_test_report", previous)
    phone.set_field(draft, "sessions", diaban.FieldValue.INTEGER(1))
    phone.sync()

    page = signed_in(browser, server)
    page.goto(server.url + "/grid/grid_test_report")
    cell = lambda unit, period: page.locator(f'#grid tr[data-unit="{unit}"] td[data-period="{period}"]')
    assert page.locator("#grid tbody tr").count() == 2
    assert page.locator("#grid thead th").count() == 7, "the unit column and six periods"
    assert cell("03694", current).get_attribute("class") == "submitted"
    assert cell("03694", current).inner_text() == "Đã gửi"
    assert cell("04231", current).get_attribute("class") == "not_started"
    assert cell("03694", previous).get_attribute("class") == ("late" if previous_late else "draft")
    assert cell("04231", previous).get_attribute("class") == ("late" if previous_late else "not_started")
    phone.close_store()


def test_the_rollup_sums_reported_answers_per_commune_and_up_to_the_province(server: Server, tmp_path, browser):
    import io

    import openpyxl

    assert server.publish(MONTHLY, server.token("quantri", "quantri-mat-khau"))[0] == 201
    current = month_key(today())
    phones = []
    for user, sessions, submit in [("canbo.muonggion", 4, True), ("canbo.sopcop", 2, True), ("canbo2.muonggion", 9, False)]:
        phone = diaban.Device.open(str(tmp_path / f"{user}.sqlite"), KEY, server.url, user)
        phone.login(user, "canbo-mat-khau")
        record = phone.create_record("grid_test_report", current)
        phone.set_field(record, "sessions", diaban.FieldValue.INTEGER(sessions))
        if submit:
            phone.submit(record)
        phone.sync()
        phones.append(phone)

    page = signed_in(browser, server)
    page.goto(server.url + "/rollup/grid_test_report")
    rows = {r.split("\t")[0]: r.split("\t") for r in page.locator("#rollup tbody tr").all_inner_texts()}
    assert rows["14"][3:] == ["2", "6"], "the province: two reports sent up, 6 sessions (the draft does not count)"
    assert rows["03694"][3:] == ["1", "4"]
    assert rows["04231"][3:] == ["1", "2"]
    assert page.input_value("#period") == current, "the roll-up opens on the latest period with reports"

    # One unit's rows: its own and those under it; a unit outside the reviewer's is not found.
    page.goto(server.url + f"/rollup/grid_test_report?unit=03694&period={current}")
    assert [r.split("\t")[0] for r in page.locator("#rollup tbody tr").all_inner_texts()] == ["03694"]
    assert page.goto(server.url + "/rollup/grid_test_report?unit=01").status == 404
    page.goto(server.url + "/rollup/grid_test_report")

    with page.expect_download() as download:
        page.click("#rollup-xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(open(download.value.path(), "rb").read())).active
    header = [c.value for c in sheet[1]]
    assert header == ["Mã đơn vị", "Đơn vị", "Cấp", "Số hồ sơ", "Số buổi tuyên truyền"]
    first = [c.value for c in sheet[2]]
    assert first == ["14", "Tỉnh Sơn La", "Tỉnh", 2, 6]
    for phone in phones:
        phone.close_store()
