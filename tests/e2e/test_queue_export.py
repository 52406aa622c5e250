"""The reviewer's queue filters, and exports to XLSX and CSV with Vietnamese headers that open
in a spreadsheet reader with the right values."""

import csv
import io

import openpyxl

import diaban
from conftest import KEY, Server, days_ago, signed_in


def fill(phone, place, audience, participants, submit):
    record = phone.create_record("propaganda_session", None)
    phone.set_field(record, "session_date", diaban.FieldValue.DATE(days_ago(3)))
    phone.set_field(record, "place", diaban.FieldValue.TEXT(place))
    phone.set_field(record, "audience_group", diaban.FieldValue.CHOICE(audience))
    phone.set_field(record, "participants", diaban.FieldValue.INTEGER(participants))
    if submit:
        phone.submit(record)
    return record


def test_the_queue_filters_and_the_exports_hold_the_right_values(server: Server, tmp_path, browser):
    a = diaban.Device.open(str(tmp_path / "a.sqlite"), KEY, server.url, "A")
    b = diaban.Device.open(str(tmp_path / "b.sqlite"), KEY, server.url, "B")
    a.login("canbo.muonggion", "canbo-mat-khau")
    b.login("canbo.sopcop", "canbo-mat-khau")
    fill(a, "Nhà văn hóa bản Nà Sản", "youth", 57, submit=True)
    fill(a, "Trường tiểu học", "students", 210, submit=False)
    fill(b, "Chợ Sốp Cộp", "residents", 95, submit=True)
    a.sync()
    b.sync()

    page = signed_in(browser, server)
    assert page.locator("#records tbody tr").count() == 3
    page.select_option("#f-state", "submitted")
    page.click("#filter button[type=submit]")
    assert page.locator("#records tbody tr").count() == 2
    page.fill("#f-unit", "04231")
    page.click("#filter button[type=submit]")
    rows = page.locator("#records tbody tr").all_inner_texts()
    assert len(rows) == 1 and "Xã Sốp Cộp" in rows[0]

    page.goto(server.url + "/records?template=propaganda_session")
    with page.expect_download() as download:
        page.click("#export-xlsx")
    assert download.value.suggested_filename == "propaganda_session.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(open(download.value.path(), "rb").read()))
    sheet = book.active
    header = [c.value for c in sheet[1]]
    assert header[:5] == ["Mã đơn vị", "Đơn vị", "Trạng thái", "Người lập", "Ngày lập"]
    assert "Đối tượng tuyên truyền" in header and "Số người tham dự" in header
    by_place = {}
    for row in sheet.iter_rows(min_row=2, values_only=True):
        values = dict(zip(header, row))
        by_place[values["Địa điểm"]] = values
    assert set(by_place) == {"Nhà văn hóa bản Nà Sản", "Trường tiểu học", "Chợ Sốp Cộp"}
    assert by_place["Chợ Sốp Cộp"]["Đối tượng tuyên truyền"] == "Nhân dân"
    assert by_place["Chợ Sốp Cộp"]["Số người tham dự"] == 95
    assert by_place["Trường tiểu học"]["Trạng thái"] == "Nháp"
    assert by_place["Nhà văn hóa bản Nà Sản"]["Mã đơn vị"] == "03694"

    with page.expect_download() as download:
        page.click("#export-csv")
    text = open(download.value.path(), encoding="utf-8-sig").read()
    table = list(csv.DictReader(io.StringIO(text)))
    assert sorted(int(r["Số người tham dự"]) for r in table) == [57, 95, 210]
    a.close_store()
    b.close_store()
