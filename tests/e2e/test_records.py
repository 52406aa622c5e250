"""Records as CRDT documents across two phones: concurrent edits kept as a conflict with who,
when and which device; resolving it syncs; tallies add up; every field has its history."""

import json
import sqlite3

import pytest

import diaban
from conftest import KEY, Phones, Server

CHECKPOINT = {
    "id": "checkpoint_tally", "version": 1, "kind": "event",
    "label": {"vi": "Tuần tra, kiểm tra địa bàn", "en": "Patrol"},
    "fields": [
        {"name": "place", "type": "text", "label": {"vi": "Địa điểm", "en": "Place"}},
        {"name": "people_checked", "type": "counter", "label": {"vi": "Số người được kiểm tra", "en": "People checked"}},
    ],
}


@pytest.fixture
def phones(server: Server, tmp_path):
    pair = Phones(server, tmp_path, CHECKPOINT)
    yield pair.a, pair.b
    pair.close()


def shared_record(a, b):
    record = a.create_record("checkpoint_tally", None)
    a.set_field(record, "place", diaban.FieldValue.TEXT("Chợ phiên"))
    a.sync()
    b.sync()
    return record


def item(phone, record, name):
    return {i.name: i for i in phone.record(record).items}[name]


def test_concurrent_edits_are_kept_as_a_conflict_and_settled_by_a_person(phones):
    a, b = phones
    record = shared_record(a, b)
    a.set_field(record, "place", diaban.FieldValue.TEXT("Bến xe khách"))
    b.set_field(record, "place", diaban.FieldValue.TEXT("Trạm y tế"))
    a.sync()
    b.sync()
    a.sync()
    for phone in (a, b):
        conflicts = item(phone, record, "place").conflicts
        assert sorted((c.display, c.by, c.device is not None) for c in conflicts) == [
            ("Bến xe khách", "canbo.muonggion", True),
            ("Trạm y tế", "canbo2.muonggion", True),
        ]
        assert all(c.at > 1_700_000_000 for c in conflicts)

    # Settling it is itself a change that syncs.
    a.set_field(record, "place", diaban.FieldValue.TEXT("Trạm y tế"))
    a.sync()
    b.sync()
    for phone in (a, b):
        place = item(phone, record, "place")
        assert place.conflicts == [] and place.display == "Trạm y tế"


def test_tallies_from_two_phones_add_up(phones, server: Server):
    a, b = phones
    record = shared_record(a, b)
    a.increment(record, "people_checked", 3)
    b.increment(record, "people_checked", 4)
    b.increment(record, "people_checked", 1)
    with pytest.raises(diaban.DiabanError.InvalidValue):
        a.set_field(record, "people_checked", diaban.FieldValue.INTEGER(100))
    with pytest.raises(diaban.DiabanError.InvalidValue):
        a.increment(record, "place", 1)
    a.sync()
    b.sync()
    a.sync()
    assert item(a, record, "people_checked").display == "8"
    assert item(b, record, "people_checked").display == "8"
    with sqlite3.connect(server.db) as db:
        values = json.loads(db.execute("SELECT values_json FROM records WHERE id = ?", (record,)).fetchone()[0])
    assert values["people_checked"] == 8


def test_a_field_history_says_who_changed_what_from_which_device(phones):
    a, b = phones
    record = shared_record(a, b)
    b.set_field(record, "place", diaban.FieldValue.TEXT("Nhà văn hóa"))
    b.sync()
    a.sync()
    history = a.history(record, "place")
    assert [(h.by, h.old_value, h.new_value) for h in history] == [
        ("canbo.muonggion", None, json.dumps("Chợ phiên", ensure_ascii=False)),
        ("canbo2.muonggion", json.dumps("Chợ phiên", ensure_ascii=False), json.dumps("Nhà văn hóa", ensure_ascii=False)),
    ]
    assert history[0].device != history[1].device
    assert all(h.at > 1_700_000_000 for h in history)


def test_the_server_appends_commits_and_folds_them_without_losing_history(phones, server: Server):
    a, b = phones
    record = shared_record(a, b)

    def server_chunks():
        with sqlite3.connect(server.db) as db:
            return db.execute("SELECT COUNT(*) FROM record_chunks WHERE record_id = ?", (record,)).fetchone()[0]

    for n in range(1, 41):
        a.set_field(record, "place", diaban.FieldValue.TEXT(f"Điểm {n}"))
        a.sync()
    assert 0 < server_chunks() < 32, "commits append chunks, folded every 32"
    b.sync()
    history = b.history(record, "place")
    assert len(history) == 41 and history[-1].new_value == json.dumps("Điểm 40", ensure_ascii=False)
