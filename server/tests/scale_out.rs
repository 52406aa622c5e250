//! Scale-out: several server processes on one PostgreSQL database. A change synced through
//! one node reaches a phone that syncs, or waits for changes, through another; phones
//! writing the same record through both nodes at once lose nothing. Runs against the real
//! cluster the test command starts (tests/pg.sh).

mod common;

use std::time::{Duration, Instant};

use common::Server;
use diaban_core::{Device, FieldValue};

/// Two server processes on one new PostgreSQL database; none without a test cluster.
fn two_nodes() -> Option<(Server, Server)> {
    if !common::use_postgres() {
        return None;
    }
    let node_a = Server::start();
    let node_b = node_a.second_node();
    Some((node_a, node_b))
}

fn display(view: &diaban_core::device::RecordView, name: &str) -> String {
    view.items.iter().find(|i| i.name == name).map(|i| i.display.clone()).unwrap_or_default()
}

async fn value(phone: &Device, id: &str, field: &str) -> String {
    display(&phone.record(id).await.expect("record"), field)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_node_a_wakes_and_reaches_a_phone_on_node_b() {
    let Some((node_a, node_b)) = two_nodes() else { return };
    let writer = node_a.phone("a", "writer").await;
    let reader = node_b.phone("a2", "reader").await;
    let elsewhere = node_b.phone("b", "elsewhere").await;
    reader.sync_records().await.expect("first sync through B");
    elsewhere.sync_records().await.expect("first sync through B");

    // Nothing new: the watch runs out and says so.
    assert!(!reader.wait_for_changes(1).await.expect("watch"), "nothing was committed");

    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let changed = reader.wait_for_changes(25).await.expect("watch through B");
        (reader, changed, started.elapsed())
    });
    let other_commune = tokio::spawn(async move {
        let changed = elsewhere.wait_for_changes(3).await.expect("watch through B");
        (elsewhere, changed)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = writer.create_record("propaganda_session", None).await.expect("create");
    writer.set_field(&id, "place", FieldValue::Text("Bản Huổi Một".into())).await.expect("edit");
    let report = writer.sync_records().await.expect("sync through A");
    assert_eq!(report.accepted, vec![id.clone()]);

    let (reader, changed, waited) = waiting.await.expect("join");
    assert!(changed, "the phone waiting on B hears of the commit on A");
    // Woken by NOTIFY, not by the 5-second recheck.
    assert!(waited < Duration::from_secs(4), "woken after {waited:?}");
    let pulled = reader.sync_records().await.expect("sync through B");
    assert_eq!(pulled.pulled_records, 1);
    assert_eq!(value(&reader, &id, "place").await, "Bản Huổi Một");

    // A record of commune 03694 is not news for a phone of commune 04231.
    let (elsewhere, changed) = other_commune.await.expect("join");
    assert!(!changed, "a change outside the phone's units does not wake it");
    assert_eq!(elsewhere.sync_records().await.expect("sync").pulled_records, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_editing_one_record_through_two_nodes_at_once_lose_nothing() {
    let Some((node_a, node_b)) = two_nodes() else { return };
    let a = node_a.phone("a", "on-a").await;
    let b = node_b.phone("a2", "on-b").await;
    let id = a.create_record("propaganda_session", None).await.expect("create");
    a.sync_records().await.expect("sync");
    b.sync_records().await.expect("sync");

    // Each phone edits its own field and syncs, twenty times, both at once through their
    // own nodes: every read-modify-write of the record on the server races with the other's.
    const ROUNDS: i64 = 20;
    let (id_a, id_b) = (id.clone(), id.clone());
    let on_a = tokio::spawn(async move {
        for i in 1..=ROUNDS {
            a.set_field(&id_a, "participants", FieldValue::Integer(i)).await.expect("edit");
            a.sync_records().await.expect("sync through A");
        }
        a
    });
    let on_b = tokio::spawn(async move {
        for i in 1..=ROUNDS {
            b.set_field(&id_b, "notes", FieldValue::Text(format!("lần {i}"))).await.expect("edit");
            b.sync_records().await.expect("sync through B");
        }
        b
    });
    let (a, b) = (on_a.await.expect("join"), on_b.await.expect("join"));
    for phone in [&a, &b] {
        phone.sync_records().await.expect("settling sync");
        assert_eq!(value(phone, &id, "participants").await, ROUNDS.to_string());
        assert_eq!(value(phone, &id, "notes").await, format!("lần {ROUNDS}"));
    }
    // A third phone downloading from scratch through either node sees both last edits, and
    // the server's projection (what lists and reports read) agrees.
    for (n, node) in [&node_a, &node_b].into_iter().enumerate() {
        let fresh = node.phone("a2", &format!("fresh-{n}")).await;
        fresh.sync_records().await.expect("download");
        assert_eq!(value(&fresh, &id, "participants").await, ROUNDS.to_string());
        assert_eq!(value(&fresh, &id, "notes").await, format!("lần {ROUNDS}"));
    }
    let projected = node_a
        .count(
            "SELECT COUNT(*) FROM records WHERE values_json LIKE '%\"participants\":20%' AND values_json LIKE '%lần 20%'",
        )
        .await;
    assert_eq!(projected, 1, "the projection holds both phones' last edits");
}
