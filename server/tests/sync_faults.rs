//! Sync over a link that loses, repeats and reorders messages, against a server that dies
//! mid-sync, from a phone that dies mid-sync: no change is lost, none is duplicated, and the
//! next sync completes. A real server process and real device stores throughout.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{Fault, FaultyLink, KEY, PASSWORD, Server};
use diaban_core::{Device, FieldValue};

/// A signed-in phone whose later syncs go through `link`.
async fn phone(server: &Server, user: &str, name: &str, link: &Arc<FaultyLink>) -> Device {
    let mut device = server.phone(user, name).await;
    device.set_sync_link(link.clone());
    device
}

fn display(view: &diaban_core::device::RecordView, name: &str) -> String {
    view.items.iter().find(|i| i.name == name).map(|i| i.display.clone()).unwrap_or_default()
}

/// The server holds, for `id`, exactly what `phone` holds: same answers, same events.
async fn server_agrees(server: &Server, phone: &Device, id: &str) {
    let other = server.phone("a2", &format!("probe-{id}")).await;
    let mine = phone.record(id).await.expect("record");
    let theirs = other.record(id).await.expect("the server sent the record");
    for field in ["place", "participants", "notes"] {
        assert_eq!(display(&mine, field), display(&theirs, field), "{field} of {id}");
    }
    assert_eq!(mine.events.len(), theirs.events.len(), "events of {id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_repeated_and_reordered_messages_lose_and_duplicate_nothing() {
    let server = Server::start();
    let link = FaultyLink::new(&server.url);
    let a = phone(&server, "a", "a", &link).await;
    let id = a.create_record("propaganda_session", None).await.expect("create");
    a.set_field(&id, "place", FieldValue::Text("Bản Nà Sản".into())).await.expect("edit");

    for (step, fault) in
        [Fault::DropRequest, Fault::DropResponse, Fault::Duplicate, Fault::Reorder].into_iter().enumerate()
    {
        a.set_field(&id, "participants", FieldValue::Integer(10 + step as i64)).await.expect("edit");
        link.plan([Some(fault)]);
        let faulty = a.sync_records().await;
        match fault {
            Fault::Duplicate => assert_eq!(faulty.expect("a duplicate is answered").accepted, vec![id.clone()]),
            _ => assert!(faulty.is_err(), "{fault:?} reaches the phone as a failed sync"),
        }
        // The next sync completes and leaves nothing unsent.
        let next = a.sync_records().await.expect("the next sync completes");
        assert!(next.rejected.is_empty(), "{fault:?}: {:?}", next.rejected);
        assert!(!a.record(&id).await.expect("record").unsent, "{fault:?}");
        server_agrees(&server, &a, &id).await;
    }
    // Every delivery of changes the server already had wrote nothing. The record arrived
    // whole in the first sync that got through (a snapshot, with the first edit); each of
    // the three later edits is one appended chunk and one change-log entry.
    let chunks = server.count("SELECT COUNT(*) FROM record_chunks").await;
    assert_eq!(chunks, 3, "one chunk per edit, whatever the faults");
    let log = server.count("SELECT COUNT(*) FROM change_log WHERE kind = 'record'").await;
    assert_eq!(log, 4, "one change-log entry per committed state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_sync_loses_nothing_and_the_next_sync_completes() {
    let mut server = Server::start();
    let link = FaultyLink::new(&server.url);
    let a = phone(&server, "a", "a", &link).await;
    let mut ids = Vec::new();
    for i in 0..300 {
        let id = a.create_record("propaganda_session", None).await.expect("create");
        a.set_field(&id, "place", FieldValue::Text(format!("Bản {i}"))).await.expect("edit");
        a.set_field(&id, "notes", FieldValue::Text("ghi chú ".repeat(100 + i % 100))).await.expect("edit");
        ids.push(id);
    }
    for delay_ms in [5u64, 40, 150] {
        let a_ref = &a;
        let sync = async move { a_ref.sync_records().await };
        let kill = async {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            server.kill();
        };
        let (result, ()) = tokio::join!(sync, kill);
        server.run();
        let _ = result; // cut at some point, or done before the kill
        for id in ids.iter().take(3) {
            a.set_field(id, "participants", FieldValue::Integer(delay_ms as i64)).await.expect("edit");
        }
    }
    let last = a.sync_records().await.expect("the sync after the restarts completes");
    assert!(last.rejected.is_empty());
    assert!(a.records(None, None).await.expect("records").iter().all(|r| !r.unsent));
    assert_eq!(server.count("SELECT COUNT(*) FROM records").await, 300);
    for id in [&ids[0], &ids[150], &ids[299]] {
        server_agrees(&server, &a, id).await;
    }
}

/// The phone's side of the next test, run in a child process: sync in a loop until killed.
async fn sync_until_killed(spec: &str) {
    let (path, url) = spec.split_once('|').expect("path|url");
    let device = Device::open(std::path::Path::new(path), &KEY, url, "child").await.expect("open");
    loop {
        let _ = device.sync_records().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_killed_mid_sync_loses_nothing_and_the_next_sync_completes() {
    if let Ok(spec) = std::env::var("DIABAN_CHILD_SYNC") {
        return sync_until_killed(&spec).await;
    }
    let server = Server::start();
    let path = server.dir.path().join("phone.sqlite");
    let mut ids = Vec::new();
    {
        let a = Device::open(&path, &KEY, &server.url, "phone").await.expect("open");
        a.login("a", PASSWORD).await.expect("login");
        for i in 0..200 {
            let id = a.create_record("propaganda_session", None).await.expect("create");
            a.set_field(&id, "notes", FieldValue::Text("sổ theo dõi ".repeat(50 + i % 100))).await.expect("edit");
            ids.push(id);
        }
        a.close().await;
    }
    for round in 0..6u64 {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "a_phone_killed_mid_sync_loses_nothing_and_the_next_sync_completes", "--nocapture"])
            .env("DIABAN_CHILD_SYNC", format!("{}|{}", path.display(), server.url))
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("child");
        tokio::time::sleep(Duration::from_millis(150 + round * 97)).await;
        child.kill().expect("SIGKILL the phone");
        child.wait().expect("reaped");
        // Between kills, the officer keeps working.
        let a = Device::open(&path, &KEY, &server.url, "phone").await.expect("the store opens after a kill");
        a.set_field(&ids[round as usize], "participants", FieldValue::Integer(round as i64)).await.expect("edit");
        a.close().await;
    }
    let a = Device::open(&path, &KEY, &server.url, "phone").await.expect("open");
    let last = a.sync_records().await.expect("the sync after the kills completes");
    assert!(last.rejected.is_empty());
    assert!(a.records(None, None).await.expect("records").iter().all(|r| !r.unsent));
    assert_eq!(server.count("SELECT COUNT(*) FROM records").await, 200);
    for id in ids.iter().take(6).chain([&ids[199]]) {
        server_agrees(&server, &a, id).await;
    }
}
