//! The server checks every pushed change before committing it. These tests speak the sync
//! protocol to a real `diaban` process over loopback, with hand-made (forged) changes.

mod common;

use automerge::ActorId;
use diaban_core::protocol::{self, PushRecord, SyncRequest, SyncResponse};
use diaban_core::record::{EventKind, FieldPath, RecordDoc};
use diaban_core::wire;
use diaban_core::{Device, FieldValue};

use common::Server;

fn start() -> Server {
    Server::start()
}

struct Phone {
    token: String,
    actor: ActorId,
    http: reqwest::Client,
    url: String,
    me: common::Identity,
}

async fn login(server: &Server, username: &str) -> Phone {
    let actor = ActorId::random();
    let http = common::http();
    let me = common::register(&http, &server.url, username, "test", &actor).await;
    Phone { token: me.token.clone(), actor, http, url: server.url.clone(), me }
}

impl Phone {
    /// A session record of this phone's, with a first answer.
    fn session(&self, id: &str, unit: &str, template: &str) -> RecordDoc {
        let mut doc = self.me.new_record(id, unit, template);
        doc.set_field(&FieldPath::top("participants"), &FieldValue::Integer(12), 1_763_769_601).expect("edit");
        doc
    }

    /// `doc` as this phone holds it, to edit.
    fn edit(&self, doc: &mut RecordDoc) -> RecordDoc {
        self.me.load(&doc.save())
    }

    /// Pushes this phone's own changes of `doc` (the server has the others already).
    async fn push(&self, doc: &mut RecordDoc, id: &str) -> SyncResponse {
        self.push_changes(doc, id, true).await
    }

    /// Pushes every change of `doc`, whoever made it (a forgery, when others made some).
    async fn push_all(&self, doc: &mut RecordDoc, id: &str) -> SyncResponse {
        self.push_changes(doc, id, false).await
    }

    async fn push_changes(&self, doc: &mut RecordDoc, id: &str, only_mine: bool) -> SyncResponse {
        let mine: Vec<_> = doc
            .change_actors()
            .into_iter()
            .filter(|(_, actor)| !only_mine || actor == &self.actor)
            .map(|(hash, _)| hash)
            .collect();
        let push = PushRecord { record_id: id.into(), changes: doc.bundle(mine).expect("bundle"), heads: heads(doc) };
        self.send(&SyncRequest { cursor: 0, synced: 0, reach: 0, push: vec![push] }).await
    }

    /// One binary sync exchange.
    async fn send(&self, request: &SyncRequest) -> SyncResponse {
        let answer = self
            .http
            .post(format!("{}{}", self.url, protocol::SYNC_PATH))
            .bearer_auth(&self.token)
            .body(wire::encode(request).expect("encode"))
            .send()
            .await
            .expect("sync");
        assert_eq!(answer.status(), 200);
        wire::decode(&answer.bytes().await.expect("sync body")).expect("a sync answer")
    }
}

fn heads(doc: &mut RecordDoc) -> Vec<protocol::Hash> {
    doc.heads().into_iter().map(|h| h.0).collect()
}

/// Officer `a`'s session record `r1`, filled, submitted and committed.
async fn submitted_session(a: &Phone) -> RecordDoc {
    let mut doc = a.session("r1", "03694", "propaganda_session");
    for (name, value) in [
        ("session_date", FieldValue::Date(common::days_ago(3))),
        ("place", FieldValue::Text("Bản Nà Sản".into())),
        ("audience_group", FieldValue::Choice("youth".into())),
    ] {
        doc.set_field(&FieldPath::top(name), &value, 1_763_769_602).expect("edit");
    }
    doc.append_event(EventKind::Submit, "a", None, 1_763_769_603).expect("submit");
    assert_eq!(a.push(&mut doc, "r1").await.accepted, vec!["r1".to_string()]);
    doc
}

fn refusal(response: &SyncResponse) -> Vec<(&str, &str)> {
    response.rejected.iter().map(|r| (r.record_id.as_str(), r.code.as_str())).collect()
}

#[tokio::test]
async fn a_device_commits_its_own_record_in_its_own_commune() {
    let server = start();
    let a = login(&server, "a").await;
    let mut doc = a.session("r1", "03694", "propaganda_session");
    let response = a.push(&mut doc, "r1").await;
    assert_eq!(response.accepted, vec!["r1".to_string()]);
    assert!(response.rejected.is_empty());
    assert!(response.records.is_empty(), "the pushing device is not sent back what it just sent");
}

#[tokio::test]
async fn a_change_made_by_another_actor_is_refused() {
    let server = start();
    let a = login(&server, "a").await;
    let other = common::Identity { actor: ActorId::random(), ..a.me.clone() };
    let mut forged = other.new_record("r1", "03694", "propaganda_session");
    let response = a.push_all(&mut forged, "r1").await;
    assert!(response.accepted.is_empty());
    assert_eq!(refusal(&response), vec![("r1", "not_your_actor")]);
}

#[tokio::test]
async fn a_record_in_another_commune_is_refused_and_not_revealed() {
    let server = start();
    let a = login(&server, "a").await;
    let b = login(&server, "b").await;
    let mut doc = a.session("r1", "03694", "propaganda_session");
    assert_eq!(a.push(&mut doc, "r1").await.accepted, vec!["r1".to_string()]);

    // B writes into A's commune: refused.
    let mut intrusion = b.session("r2", "03694", "propaganda_session");
    assert_eq!(refusal(&b.push(&mut intrusion, "r2").await), vec![("r2", "out_of_scope")]);
    // B edits A's existing record: refused with the same answer, and B never pulls it.
    let mut edit = RecordDoc::empty();
    edit.apply_changes(RecordDoc::decode_changes(&doc.changes_since(&[])).expect("decode")).expect("apply");
    let mut edit = b.edit(&mut edit);
    edit.set_field(&FieldPath::top("participants"), &FieldValue::Integer(99), 1_763_769_700).expect("edit");
    let changes = edit.bundle_since(&doc.heads()).expect("bundle");
    let push = PushRecord { record_id: "r1".into(), changes, heads: heads(&mut edit) };
    let response = b.send(&SyncRequest { cursor: 0, synced: 0, reach: 0, push: vec![push] }).await;
    assert_eq!(refusal(&response), vec![("r1", "out_of_scope")]);
    assert!(response.records.is_empty());
}

#[tokio::test]
async fn an_unpublished_template_is_refused() {
    let server = start();
    let a = login(&server, "a").await;
    let mut doc = a.session("r1", "03694", "khong_co");
    assert_eq!(refusal(&a.push(&mut doc, "r1").await), vec![("r1", "unknown_template")]);
}

#[tokio::test]
async fn a_reviewer_may_not_fill_an_officers_template() {
    let server = start();
    let r = login(&server, "r").await;
    let mut doc = r.session("r1", "03694", "propaganda_session");
    assert_eq!(refusal(&r.push(&mut doc, "r1").await), vec![("r1", "out_of_scope")]);
}

#[tokio::test]
async fn a_revoked_or_unknown_token_is_unauthorized() {
    let server = start();
    let response = common::http()
        .post(format!("{}{}", server.url, protocol::SYNC_PATH))
        .bearer_auth("not-a-token")
        .body(wire::encode(&SyncRequest { cursor: 0, synced: 0, reach: 0, push: vec![] }).expect("encode"))
        .send()
        .await
        .expect("sync");
    assert_eq!(response.status(), 401);
    let body: protocol::ErrorBody = response.json().await.expect("json error body");
    assert_eq!(body.error.code, "unauthorized");
}

#[tokio::test]
async fn a_watch_needs_a_token_and_a_well_formed_query() {
    let server = start();
    let a = login(&server, "a").await;
    let watch = |query: &str, token: &str| {
        a.http.get(format!("{}{}?{query}", server.url, protocol::WATCH_PATH)).bearer_auth(token.to_owned()).send()
    };
    let refused = watch("cursor=0&wait=0", "not-a-token").await.expect("watch");
    assert_eq!(refused.status(), 401);
    let bad = watch("cursor=yesterday", &a.token).await.expect("watch");
    assert_eq!(bad.status(), 400);
    let body: protocol::ErrorBody = bad.json().await.expect("json error body");
    assert_eq!(body.error.code, "bad_request");
    // A new phone has everything to fetch: the watch answers at once.
    let fresh = watch("cursor=0&wait=30", &a.token).await.expect("watch");
    assert_eq!(fresh.status(), 200);
    assert_eq!(fresh.json::<protocol::WatchResponse>().await.expect("json"), protocol::WatchResponse { changed: true });
}

#[tokio::test]
async fn only_a_reviewer_approves_and_an_approved_record_is_locked() {
    let server = start();
    let a = login(&server, "a").await;
    let r = login(&server, "r").await;
    let mut doc = submitted_session(&a).await;

    // The officer approves their own submission: refused.
    let mut forged = a.edit(&mut doc);
    forged.append_event(EventKind::Approve, "a", None, 1_763_769_604).expect("approve");
    assert_eq!(refusal(&a.push(&mut forged, "r1").await), vec![("r1", "forbidden_event")]);
    // An event signed with someone else's name: refused.
    let mut spoofed = a.edit(&mut doc);
    spoofed.append_event(EventKind::Comment, "r", Some("giả mạo"), 1_763_769_604).expect("comment");
    assert_eq!(refusal(&a.push(&mut spoofed, "r1").await), vec![("r1", "forbidden_event")]);

    // The reviewer approves through sync: accepted.
    let mut approved = r.edit(&mut doc);
    approved.append_event(EventKind::Approve, "r", None, 1_763_769_605).expect("approve");
    let response = r.push(&mut approved, "r1").await;
    assert_eq!(refusal(&response), vec![]);
    assert_eq!(response.accepted, vec!["r1".to_string()]);

    // Now an answer edited offline by the officer is not applied: the record is locked, and
    // the edit waits for the province as a proposed amendment.
    let mut late = a.edit(&mut approved);
    late.set_field(&FieldPath::top("participants"), &FieldValue::Integer(99), 1_763_769_606).expect("edit");
    assert_eq!(refusal(&a.push(&mut late, "r1").await), vec![("r1", "amendment_proposed")]);
    assert_eq!(refusal(&a.push(&mut late, "r1").await), vec![("r1", "amendment_proposed")], "kept once");
    assert_eq!(server.count("SELECT COUNT(*) FROM amendments WHERE status = 'proposed'").await, 1);

    // The reviewer sees what it would change and accepts it; the phone's next push goes through.
    let http = common::http_builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let cookie = common::web_login(&http, &server.url, "r").await;
    let page = common::get(&http, &format!("{}/records/r1", server.url), &cookie).await;
    assert!(page.contains("Đề nghị sửa đổi") && page.contains(">99<"), "the page shows the proposed value");
    let id = page.split("id=\"amendment-").nth(1).and_then(|s| s.split('"').next()).expect("an amendment");
    let url = format!("{}/records/r1/amendments/{id}", server.url);
    assert_eq!(common::post_form(&http, &url, &cookie, &page, &[("action", "accept")]).await, 303);
    let response = a.push(&mut late, "r1").await;
    assert_eq!(response.accepted, vec!["r1".to_string()]);
    assert_eq!(server.count("SELECT COUNT(*) FROM records WHERE values_json LIKE '%\"participants\":99%'").await, 1);

    // A second late edit, rejected by the reviewer: refused with that reason, never applied.
    let mut again = a.edit(&mut late);
    again.set_field(&FieldPath::top("participants"), &FieldValue::Integer(5), 1_763_769_607).expect("edit");
    assert_eq!(refusal(&a.push(&mut again, "r1").await), vec![("r1", "amendment_proposed")]);
    let page = common::get(&http, &format!("{}/records/r1", server.url), &cookie).await;
    let id = page
        .split("data-status=\"proposed\" id=\"amendment-")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("proposed");
    let url = format!("{}/records/r1/amendments/{id}", server.url);
    assert_eq!(common::post_form(&http, &url, &cookie, &page, &[("action", "reject")]).await, 303);
    assert_eq!(refusal(&a.push(&mut again, "r1").await), vec![("r1", "amendment_rejected")]);
    assert_eq!(server.count("SELECT COUNT(*) FROM records WHERE values_json LIKE '%\"participants\":99%'").await, 1);
}

#[tokio::test]
async fn old_apps_and_garbage_get_clear_errors_and_change_nothing() {
    let server = start();
    let a = login(&server, "a").await;
    let post = |path: &'static str, body: Vec<u8>| {
        a.http.post(format!("{}{path}", a.url)).bearer_auth(&a.token).body(body).send()
    };
    // A version 1 app, speaking JSON to the old path: "please update".
    let old = post(protocol::SYNC_V1_PATH, br#"{"protocol":1,"cursor":0,"push":[]}"#.to_vec()).await.expect("sync");
    assert_eq!(old.status(), 426);
    let body: protocol::ErrorBody = old.json().await.expect("json error body");
    assert_eq!(body.error.code, "upgrade_required");
    assert!(body.error.message.contains("hãy cập nhật"), "{}", body.error.message);
    // A frame of another version on the new path: the same.
    let mut other = wire::encode(&SyncRequest { cursor: 0, synced: 0, reach: 0, push: vec![] }).expect("encode");
    other[2] = 9;
    assert_eq!(post(protocol::SYNC_PATH, other).await.expect("sync").status(), 426);
    // Garbage: 400 with a JSON body.
    let garbage = [&b"DB"[..], &[protocol::PROTOCOL_VERSION], b"not deflate"].concat();
    let garbage = post(protocol::SYNC_PATH, garbage).await.expect("sync");
    assert_eq!(garbage.status(), 400);
    let body: protocol::ErrorBody = garbage.json().await.expect("json error body");
    assert_eq!(body.error.code, "bad_request");
    // A bundle that is not one: refused as a whole, nothing committed.
    let bad = PushRecord { record_id: "r1".into(), changes: vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3], heads: vec![] };
    let refused = post(
        protocol::SYNC_PATH,
        wire::encode(&SyncRequest { cursor: 0, synced: 0, reach: 0, push: vec![bad] }).expect("encode"),
    )
    .await
    .expect("sync");
    assert_eq!(refused.status(), 400);
    assert!(a.send(&SyncRequest { cursor: 0, synced: 0, reach: 0, push: vec![] }).await.records.is_empty());
}

#[tokio::test]
async fn a_device_receives_its_unit_subtree_and_later_only_what_changed_in_it() {
    let server = start();
    let officer = server.phone("a", "officer").await;
    let reviewer = server.phone("r", "reviewer").await;
    let codes = |units: Vec<protocol::UnitInfo>| units.into_iter().map(|u| u.code).collect::<Vec<_>>();
    let mine = officer.units().await.expect("units");
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (mine[0].code.as_str(), mine[0].name.as_str(), mine[0].parent_code.as_str()),
        ("03694", "Xã Mường Giôn", "14")
    );
    assert_eq!(codes(reviewer.units().await.expect("units")), ["03694", "04231", "14"]);

    // A commune added under the province while the server runs reaches the province's
    // devices at their next sync, alone; the commune officer never sees it.
    common::diaban(
        &server.db,
        &["admin", "create-unit", "--code", "04232", "--name", "Xã Mường Lèo", "--level", "commune", "--parent", "14"],
    );
    let link = common::FaultyLink::new(&server.url);
    let mut reviewer = reviewer;
    reviewer.set_sync_link(link.clone());
    reviewer.sync_records().await.expect("sync");
    assert_eq!(codes(reviewer.units().await.expect("units")), ["03694", "04231", "04232", "14"]);
    let [(_, down)] = link.exchanges()[..] else { panic!("one exchange") };
    // The new unit, and the scope token and unit codes that say the scope changed.
    assert!(down < 200, "only the new unit and scope travel: {down} bytes");
    officer.sync_records().await.expect("sync");
    assert_eq!(codes(officer.units().await.expect("units")), ["03694"]);
}

#[tokio::test]
async fn a_refusal_is_checked_against_the_record_as_stored_not_as_the_server_last_wrote_it() {
    // The server keeps the document it last committed in memory and trusts it behind the
    // write's sequence guard; a refusal has no guard, so it must not rest on that memory when
    // a reviewer has written the record since.
    let server = start();
    let a = login(&server, "a").await;
    let mut doc = submitted_session(&a).await;

    // The province returns it on the web page.
    let http = common::http_builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let cookie = common::web_login(&http, &server.url, "r").await;
    let page = common::get(&http, &format!("{}/records/r1", server.url), &cookie).await;
    let url = format!("{}/records/r1/review", server.url);
    let fields = [("action", "return"), ("comment", "Thiếu địa điểm cụ thể")];
    assert_eq!(common::post_form(&http, &url, &cookie, &page, &fields).await, 303);

    // Offline, not yet knowing, the officer clears the place to write it again later. Against
    // the record as submitted that would be an invalid submission; the record is returned,
    // so it is a draft's edit and goes in.
    doc.clear_field(&FieldPath::top("place"), 1_763_769_700).expect("clear");
    let response = a.push(&mut doc, "r1").await;
    assert_eq!(refusal(&response), vec![]);
    assert_eq!(response.accepted, vec!["r1".to_string()]);
    assert_eq!(server.count("SELECT COUNT(*) FROM records WHERE state = 'returned'").await, 1);
}

#[tokio::test]
async fn the_commune_lead_signs_off_on_the_phone_and_an_officer_cannot() {
    let server = Server::with_users(&[
        ("a", "03694", "field_officer"),
        ("lead", "03694", "commune_lead"),
        ("admin", "14", "admin"),
    ]);
    server.publish("admin", &common::two_level_template()).await;
    let officer = server.phone("a", "officer").await;
    officer.sync().await.expect("templates");
    let record = officer.create_record("two_levels", None).await.expect("create");
    officer.set_field(&record, "participants", FieldValue::Integer(4)).await.expect("answer");
    officer.submit(&record).await.expect("submit");
    assert!(matches!(officer.sign_off(&record).await, Err(diaban_core::DeviceError::InvalidValue(_))));
    assert_eq!(officer.sync().await.expect("sync").accepted, vec![record.clone()]);

    let lead = server.phone("lead", "lead").await;
    lead.sync().await.expect("pull");
    lead.sign_off(&record).await.expect("sign off");
    assert!(matches!(lead.sign_off(&record).await, Err(diaban_core::DeviceError::NotEditable(_))), "once");
    assert_eq!(lead.sync().await.expect("sync").accepted, vec![record.clone()]);
    assert_eq!(server.count("SELECT COUNT(*) FROM records WHERE state = 'signed_off'").await, 1);
    officer.close().await;
    lead.close().await;
}

#[tokio::test]
async fn an_app_older_than_the_server_accepts_is_told_to_update_before_any_data_moves() {
    let server = Server::with_options(&[("a", "03694", "field_officer")], &["--min-client-version", "99.0.0"]);
    let phone =
        Device::open(&server.dir.path().join("old.sqlite"), &common::KEY, &server.url, "old").await.expect("open");
    assert!(matches!(phone.login("a", common::PASSWORD).await, Err(diaban_core::DeviceError::UpgradeRequired)));
    assert_eq!(server.count("SELECT COUNT(*) FROM devices").await, 0, "nothing moved");
    assert_eq!(server.count("SELECT COUNT(*) FROM audit_log").await, 0);
    // The same build against a server that accepts it signs in.
    let current = Server::with_options(&[("a", "03694", "field_officer")], &["--min-client-version", "0.1.0"]);
    current.phone("a", "new").await;
    phone.close().await;
}
