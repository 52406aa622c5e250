//! A user's account and scope change on the server while their phone is away: an
//! administrator moves them to another commune, renames them, grants or takes back a
//! restricted template. The next sync brings the account, the records that came into scope
//! (however old), and takes off the phone what left it, except changes not yet committed.

mod common;

use common::Server;
use diaban_core::{Device, FieldValue};

const TIP: &str = "tip_informant";

async fn ids(phone: &Device) -> Vec<String> {
    let mut ids: Vec<String> = phone.records(None, None).await.expect("records").into_iter().map(|r| r.id).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_moved_to_another_commune_gets_its_older_records_and_keeps_only_unsent_work_of_the_old_one() {
    let server = Server::start();
    let b = server.phone("b", "b").await;
    let theirs = b.create_record("propaganda_session", None).await.expect("create");
    assert_eq!(b.sync_records().await.expect("sync").accepted, vec![theirs.clone()]);

    let a = server.phone("a", "a").await;
    let synced = a.create_record("propaganda_session", None).await.expect("create");
    a.sync_records().await.expect("sync");
    // Made on the phone, not yet sent, when the move happens.
    let unsent = a.create_record("propaganda_session", None).await.expect("create");
    a.set_field(&unsent, "place", FieldValue::Text("Bản Mòn".into())).await.expect("edit");
    assert_eq!(a.sync_records().await.expect("idle").round_trips, 1);
    a.set_field(&unsent, "participants", FieldValue::Integer(12)).await.expect("edit");
    assert_eq!(ids(&a).await.len(), 2, "commune 04231's record is not on a's phone: {:?}", ids(&a).await);

    common::diaban(&server.db, &["admin", "update-user", "--username", "a", "--unit", "04231"]);
    // Nothing was committed, yet a phone waiting for changes is told to sync.
    assert!(a.wait_for_changes(5).await.expect("watch"), "the move is news for the phone");
    let moved = a.sync_records().await.expect("sync after the move");

    assert!(moved.account_updated);
    let account = a.account().await.expect("account").expect("signed in");
    assert_eq!((account.unit_code.as_str(), account.unit_name.as_str()), ("04231", "Xã Sốp Cộp"));
    assert_eq!(moved.forgotten_records, 1, "the old commune's committed record leaves the phone");
    let mut expected = vec![theirs.clone(), unsent.clone()];
    expected.sort();
    assert_eq!(ids(&a).await, expected, "the new commune's older record arrived; unsent work stayed");
    // The old commune's record the server no longer lets this user write is kept and shown.
    assert_eq!(moved.rejected.iter().map(|r| r.record_id.as_str()).collect::<Vec<_>>(), vec![unsent.as_str()]);
    assert_eq!(moved.rejected[0].code, "out_of_scope");
    let quarantined = a.quarantined().await.expect("quarantined");
    assert_eq!(quarantined.iter().map(|q| q.record_id.as_str()).collect::<Vec<_>>(), vec![unsent.as_str()]);
    assert!(a.record(&synced).await.is_err(), "gone from the phone");
    assert_eq!(a.units().await.expect("units").iter().map(|u| u.code.as_str()).collect::<Vec<_>>(), vec!["04231"]);

    // Once known, the new scope costs nothing more: the next check is idle again.
    let again = a.sync_records().await.expect("sync");
    assert!(!again.account_updated);
    assert_eq!((again.round_trips, again.pulled_records, again.forgotten_records), (1, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_user_learns_the_new_name_and_role_without_downloading_the_records_again() {
    let server = Server::start();
    let a = server.phone("a", "a").await;
    for _ in 0..3 {
        a.create_record("propaganda_session", None).await.expect("create");
    }
    a.sync_records().await.expect("sync");
    let a2 = server.phone("a2", "a2").await;
    assert_eq!(ids(&a2).await.len(), 3, "signing in synced them");

    common::diaban(
        &server.db,
        &["admin", "update-user", "--username", "a2", "--name", "Lò Thị Hương", "--role", "commune_lead"],
    );
    let renamed = a2.sync_records().await.expect("sync");

    assert!(renamed.account_updated);
    assert_eq!((renamed.pulled_records, renamed.forgotten_records), (0, 0), "the scope is the same");
    let account = a2.account().await.expect("account").expect("signed in");
    assert_eq!(account.display_name, "Lò Thị Hương");
    assert_eq!(account.role.as_str(), "commune_lead");
    assert!(renamed.bytes_down < 400, "only the account came down: {} bytes", renamed.bytes_down);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_restricted_template_brings_its_older_records_and_a_revoked_one_takes_them_away() {
    let server = Server::start();
    common::diaban(&server.db, &["admin", "grant-template", "--user", "a", "--template", TIP]);
    let a = server.phone("a", "a").await;
    a.sync_records().await.expect("sync");
    let tip = a.create_record(TIP, None).await.expect("create");
    a.set_field(&tip, "informant_name", FieldValue::Text("Giàng A Páo".into())).await.expect("edit");
    assert_eq!(a.sync_records().await.expect("sync").accepted, vec![tip.clone()]);
    let open = a.create_record("propaganda_session", None).await.expect("create");
    a.sync_records().await.expect("sync");

    let a2 = server.phone("a2", "a2").await;
    a2.sync_records().await.expect("sync");
    assert_eq!(ids(&a2).await, vec![open.clone()], "not granted: the tip is not sent");
    assert!(a2.templates().await.expect("templates").iter().all(|t| t.id != TIP));

    common::diaban(&server.db, &["admin", "grant-template", "--user", "a2", "--template", TIP]);
    let granted = a2.sync_records().await.expect("sync");
    assert!(granted.account_updated);
    let mut both = vec![tip.clone(), open.clone()];
    both.sort();
    assert_eq!(ids(&a2).await, both, "the tip made before the grant arrives");
    assert_eq!(granted.pulled_records, 1, "only the record that came into reach, not the one held");
    assert!(a2.templates().await.expect("templates").iter().any(|t| t.id == TIP));

    common::diaban(&server.db, &["admin", "revoke-template", "--user", "a2", "--template", TIP]);
    let revoked = a2.sync_records().await.expect("sync");
    assert_eq!(revoked.forgotten_records, 1);
    assert_eq!(ids(&a2).await, vec![open], "the tip and its template leave the phone");
    assert!(a2.templates().await.expect("templates").iter().all(|t| t.id != TIP));
    assert!(a2.record(&tip).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_commune_under_the_province_does_not_make_the_provinces_phones_download_again() {
    let server = Server::start();
    let a = server.phone("a", "a").await;
    for _ in 0..5 {
        a.create_record("propaganda_session", None).await.expect("create");
    }
    a.sync_records().await.expect("sync");
    let r = server.phone("r", "r").await;
    assert_eq!(ids(&r).await.len(), 5);

    common::diaban(
        &server.db,
        &["admin", "create-unit", "--code", "04232", "--name", "Xã Mường Lèo", "--level", "commune", "--parent", "14"],
    );
    let grown = r.sync_records().await.expect("sync");

    assert!(grown.account_updated, "the scope changed");
    assert_eq!((grown.pulled_records, grown.forgotten_records), (0, 0), "nothing older lies in the new commune");
    assert!(grown.bytes_down < 250, "the new unit and scope alone: {} bytes", grown.bytes_down);
    assert!(r.units().await.expect("units").iter().any(|u| u.code == "04232"));
    assert_eq!(ids(&r).await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_into_a_commune_bigger_than_a_page_downloads_it_across_pages_then_pulls_only_edits() {
    let server = Server::start();
    let b = server.phone("b", "b").await;
    let mut theirs = Vec::new();
    for _ in 0..1100 {
        theirs.push(b.create_record("propaganda_session", None).await.expect("create"));
    }
    b.sync_records().await.expect("sync");
    let a = server.phone("a", "a").await;
    a.create_record("propaganda_session", None).await.expect("create");
    a.sync_records().await.expect("sync");

    common::diaban(&server.db, &["admin", "update-user", "--username", "a", "--unit", "04231"]);
    let moved = a.sync_records().await.expect("sync after the move");

    assert!(moved.round_trips >= 2, "more than a page (1,000 records): {} round trips", moved.round_trips);
    assert_eq!((moved.pulled_records, moved.forgotten_records), (1100, 1));
    theirs.sort();
    assert_eq!(ids(&a).await, theirs, "the whole new commune, nothing of the old one");

    // Once that download is complete the phone holds its scope again: a colleague's edit
    // comes down as that change alone, not as the whole record.
    b.set_field(&theirs[0], "participants", FieldValue::Integer(7)).await.expect("edit");
    b.sync_records().await.expect("sync");
    let pulled = a.sync_records().await.expect("sync");
    assert_eq!((pulled.round_trips, pulled.pulled_records), (1, 1));
    assert!(pulled.bytes_down < 400, "only the change: {} bytes", pulled.bytes_down);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_brings_only_what_came_into_reach_across_pages_and_what_the_phone_held_only_as_changes() {
    let server = Server::start();
    common::diaban(&server.db, &["admin", "grant-template", "--user", "a", "--template", TIP]);
    let a = server.phone("a", "a").await;
    let mut expected = Vec::new();
    for _ in 0..1100 {
        expected.push(a.create_record(TIP, None).await.expect("create"));
    }
    a.sync_records().await.expect("sync");
    // Committed after every tip: the download's second page passes them.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(a.create_record("propaganda_session", None).await.expect("create"));
    }
    a.sync_records().await.expect("sync");
    let a2 = server.phone("a2", "a2").await;
    assert_eq!(ids(&a2).await.len(), 3, "not granted: only the sessions");
    // A colleague's edit to a record the phone holds, while it is away.
    a.set_field(&held[0], "participants", FieldValue::Integer(9)).await.expect("edit");
    a.sync_records().await.expect("sync");

    common::diaban(&server.db, &["admin", "grant-template", "--user", "a2", "--template", TIP]);
    let granted = a2.sync_records().await.expect("sync after the grant");

    assert!(granted.round_trips >= 2, "more than a page (1,000 records): {} round trips", granted.round_trips);
    assert_eq!(granted.pulled_records, 1101, "the 1,100 tips whole and the edited session, not the two others");
    expected.extend(held.iter().cloned());
    expected.sort();
    assert_eq!(ids(&a2).await, expected);
    let edited = a2.record(&held[0]).await.expect("record");
    let participants = edited.items.iter().find(|i| i.name == "participants").map(|i| i.display.as_str());
    assert_eq!(participants, Some("9"), "the colleague's edit to a held record came as a change");
    // The download complete, the phone holds its scope again: the next edit comes as a change.
    a.set_field(&expected[0], "informant_name", FieldValue::Text("Vừ A Dính".into())).await.expect("edit");
    a.sync_records().await.expect("sync");
    let pulled = a2.sync_records().await.expect("sync");
    assert_eq!((pulled.round_trips, pulled.pulled_records), (1, 1));
    assert!(pulled.bytes_down < 400, "only the change: {} bytes", pulled.bytes_down);
    let idle = a2.sync_records().await.expect("sync");
    assert_eq!((idle.round_trips, idle.pulled_records, idle.account_updated), (1, 0, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_waiting_for_changes_learns_of_a_move_made_during_the_wait() {
    let server = Server::start();
    let a = server.phone("a", "a").await;
    a.sync_records().await.expect("sync");
    let db = server.db.clone();
    let (woken, moved) = tokio::join!(a.wait_for_changes(25), async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        // No record changes: only the account does, by another process.
        tokio::task::spawn_blocking(move || {
            common::diaban(&db, &["admin", "update-user", "--username", "a", "--unit", "04231"])
        })
        .await
    });
    moved.expect("moved");
    assert!(woken.expect("watch"), "the move ends the wait: the phone syncs now, not at its next watch");
    let synced = a.sync_records().await.expect("sync");
    assert!(synced.account_updated);
}
