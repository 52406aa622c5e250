//! A hostile officer with their own client, against a real `diaban` process: the forged
//! changes are made with the npm @automerge/automerge (`tests/attacks/attack.mjs`), an
//! implementation the server does not share, and pushed over the sync protocol by hand. Each
//! is refused with a reason for its record and changes nothing.

mod common;

use std::path::PathBuf;
use std::process::Command;

use automerge::ActorId;
use diaban_core::FieldValue;
use diaban_core::protocol::{self, PushRecord, SyncRequest, SyncResponse, codes};
use diaban_core::record::{EventKind, FieldPath, RecordDoc};

use common::{Identity, Server};

/// A phone's identity and a hand-made sync client.
struct Client {
    http: reqwest::Client,
    url: String,
    me: Identity,
}

impl Client {
    async fn new(server: &Server, username: &str) -> Client {
        let http = common::http();
        let me = common::register(&http, &server.url, username, "test", &ActorId::random()).await;
        Client { http, url: server.url.clone(), me }
    }

    async fn send(&self, push: PushRecord) -> SyncResponse {
        let request = SyncRequest { cursor: 0, synced: 0, reach: 0, push: vec![push] };
        common::post_sync(&self.http, &self.url, &self.me.token, &request).await
    }

    /// Pushes what this phone made of `doc` since `since` (its own, honest changes).
    async fn push(&self, id: &str, doc: &mut RecordDoc, since: &[automerge::ChangeHash]) -> SyncResponse {
        let push = PushRecord {
            record_id: id.into(),
            changes: doc.bundle_since(since).expect("bundle"),
            heads: doc.heads().into_iter().map(|h| h.0).collect(),
        };
        self.send(push).await
    }

    /// Makes `attack` on the document as stored on the server, with the npm Automerge, and
    /// pushes the forged changes.
    async fn attack(&self, server: &Server, id: &str, attack: &str, arg: &str) -> SyncResponse {
        let dir = tempfile::tempdir().expect("temp dir");
        let (input, output) = (dir.path().join("doc.bin"), dir.path().join("bundle.bin"));
        let stored = server.stored_document(id).await.unwrap_or_default();
        if !stored.is_empty() {
            let mut doc = RecordDoc::load(&stored, None).expect("stored");
            std::fs::write(&input, doc.save()).expect("write");
        }
        let author = serde_json::to_string(&self.me.author()).expect("json");
        let out = Command::new("node")
            .current_dir(attacks_dir())
            .arg("attack.mjs")
            .args([attack, &input.to_string_lossy(), &output.to_string_lossy(), &self.me.actor.to_hex_string()])
            .args([author.as_str(), arg])
            .output()
            .expect("node (tests/run.sh installs tests/attacks)");
        assert!(out.status.success(), "{attack}: {}", String::from_utf8_lossy(&out.stderr));
        let heads: Vec<String> = serde_json::from_slice(&out.stdout).expect("heads");
        let heads =
            heads.iter().map(|h| <[u8; 32]>::try_from(hex::decode(h).expect("hex")).expect("32 bytes")).collect();
        self.send(PushRecord { record_id: id.into(), changes: std::fs::read(&output).expect("bundle"), heads }).await
    }
}

fn attacks_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/attacks");
    assert!(
        dir.join("node_modules/@automerge/automerge").exists(),
        "run `npm ci` in tests/attacks (tests/run.sh does)"
    );
    dir
}

fn refusal(response: &SyncResponse, id: &str) -> String {
    assert!(response.accepted.is_empty(), "accepted: {response:?}");
    response.rejected.iter().find(|r| r.record_id == id).map(|r| r.code.clone()).expect("a refusal")
}

/// A propaganda session by `a`, filled, submitted and committed; its document.
async fn submitted(a: &Client, id: &str) -> RecordDoc {
    let mut doc = a.me.new_record(id, "03694", "propaganda_session");
    for (name, value) in [
        ("session_date", FieldValue::Date(common::days_ago(3))),
        ("place", FieldValue::Text("Bản Nà Sản".into())),
        ("audience_group", FieldValue::Choice("youth".into())),
        ("participants", FieldValue::Integer(12)),
    ] {
        doc.set_field(&FieldPath::top(name), &value, 1_764_000_001).expect("edit");
    }
    doc.append_event(EventKind::Submit, &a.me.username, None, 1_764_000_002).expect("submit");
    assert_eq!(a.push(id, &mut doc, &[]).await.accepted, vec![id.to_owned()]);
    doc
}

/// The reviewer acts on a record on the web page (return, approve, reopen, sign_off).
async fn on_the_web(server: &Server, username: &str, id: &str, action: &str) {
    let http = common::http_builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let cookie = common::web_login(&http, &server.url, username).await;
    let page = common::get(&http, &format!("{}/records/{id}", server.url), &cookie).await;
    let url = format!("{}/records/{id}/review", server.url);
    let fields = [("action", action), ("comment", "Bổ sung số liệu")];
    assert_eq!(common::post_form(&http, &url, &cookie, &page, &fields).await, 303, "{action}");
}

async fn state(server: &Server, id: &str) -> String {
    let bytes = server.stored_document(id).await.expect("stored");
    RecordDoc::load(&bytes, None).expect("doc").state().as_str().to_owned()
}

fn start() -> Server {
    Server::with_users(&[
        ("a", "03694", "field_officer"),
        ("lead", "03694", "commune_lead"),
        ("r", "14", "reviewer"),
        ("admin", "14", "admin"),
    ])
}

#[tokio::test]
async fn the_events_log_cannot_be_rewritten() {
    let server = start();
    let a = Client::new(&server, "a").await;
    submitted(&a, "s1").await;
    on_the_web(&server, "r", "s1", "return").await;
    // Deleting the reviewer's return, deleting the whole log, breaking an event, turning the
    // return into an approval: each refused; the record stays returned.
    for (attack, code) in [
        ("delete_last_event", codes::FORBIDDEN_EVENT),
        ("delete_events", codes::RECORD_IDENTITY),
        ("break_event", codes::BAD_EVENT),
        ("change_event_kind", codes::FORBIDDEN_EVENT),
        ("unknown_kind", codes::BAD_EVENT),
    ] {
        assert_eq!(refusal(&a.attack(&server, "s1", attack, "").await, "s1"), code, "{attack}");
        assert_eq!(state(&server, "s1").await, "returned", "{attack}");
    }
}

#[tokio::test]
async fn workflow_events_cannot_be_forged_by_copying_or_appended_without_the_role() {
    let server = start();
    let a = Client::new(&server, "a").await;
    submitted(&a, "s1").await;
    on_the_web(&server, "r", "s1", "approve").await;
    // The officer may not reopen an approved record; only a reviewer may.
    assert_eq!(refusal(&a.attack(&server, "s1", "append", "reopen").await, "s1"), codes::FORBIDDEN_EVENT);
    on_the_web(&server, "r", "s1", "reopen").await;
    // Reopened: an exact copy of the reviewer's approval (event 1), or the same in the
    // officer's name, is the officer's own approval: refused.
    assert_eq!(refusal(&a.attack(&server, "s1", "copy_event", "1").await, "s1"), codes::FORBIDDEN_EVENT);
    assert_eq!(refusal(&a.attack(&server, "s1", "copy_event_as_me", "1").await, "s1"), codes::FORBIDDEN_EVENT);
    assert_eq!(state(&server, "s1").await, "reopened");

    // Two levels: after the lead's sign-off and the province's return, the officer
    // resubmits and copies the lead's sign-off (event 1) to skip the lead.
    let lead = Client::new(&server, "lead").await;
    publish_two_levels(&server).await;
    let mut report = a.me.new_record("t1", "03694", "two_levels");
    report.set_field(&FieldPath::top("participants"), &FieldValue::Integer(3), 1_764_000_010).expect("edit");
    report.append_event(EventKind::Submit, "a", None, 1_764_000_011).expect("submit");
    assert_eq!(a.push("t1", &mut report, &[]).await.accepted, vec!["t1"]);
    let mut by_lead = lead.me.load(&report.save());
    let before = by_lead.heads();
    by_lead.append_event(EventKind::SignOff, "lead", None, 1_764_000_012).expect("sign off");
    assert_eq!(lead.push("t1", &mut by_lead, &before).await.accepted, vec!["t1"], "the lead signs off");
    on_the_web(&server, "r", "t1", "return").await;
    let mut again = a.me.load(&server.stored_document("t1").await.expect("stored"));
    let before = again.heads();
    again.append_event(EventKind::Submit, "a", None, 1_764_000_013).expect("resubmit");
    assert_eq!(a.push("t1", &mut again, &before).await.accepted, vec!["t1"]);
    for attack in ["copy_event", "copy_event_as_me"] {
        assert_eq!(refusal(&a.attack(&server, "t1", attack, "1").await, "t1"), codes::FORBIDDEN_EVENT, "{attack}");
    }
    assert_eq!(refusal(&a.attack(&server, "t1", "append", "sign_off").await, "t1"), codes::FORBIDDEN_EVENT);
    assert_eq!(state(&server, "t1").await, "submitted");
}

async fn publish_two_levels(server: &Server) {
    server.publish("admin", &common::two_level_template()).await;
}

#[tokio::test]
async fn an_amendment_carries_answers_only() {
    let server = start();
    let a = Client::new(&server, "a").await;
    submitted(&a, "s1").await;
    on_the_web(&server, "r", "s1", "approve").await;
    let bundled = a.attack(&server, "s1", "edit_and_delete_last_event", "").await;
    assert_eq!(refusal(&bundled, "s1"), codes::FORBIDDEN_EVENT);
    assert_eq!(server.count("SELECT COUNT(*) FROM amendments").await, 0, "not kept as an amendment");
    // Answers alone are an amendment, as before.
    let answers = a.attack(&server, "s1", "edit_answer", "42").await;
    assert_eq!(refusal(&answers, "s1"), codes::AMENDMENT_PROPOSED);
    assert_eq!(state(&server, "s1").await, "approved");
}

#[tokio::test]
async fn authorship_comes_from_the_device_not_from_claims() {
    let server = start();
    let a = Client::new(&server, "a").await;
    submitted(&a, "s1").await;
    on_the_web(&server, "r", "s1", "return").await;
    // A change whose message names the reviewer.
    let mut liar = Client::new(&server, "a").await;
    liar.me.username = "r".into();
    assert_eq!(refusal(&liar.attack(&server, "s1", "edit_answer", "7").await, "s1"), codes::FORGED_AUTHOR);
    // A new record that names the reviewer as its creator.
    let forged = a.attack(&server, "n1", "new_record", "n1,propaganda_session,03694,r").await;
    assert_eq!(refusal(&forged, "n1"), codes::FORGED_AUTHOR, "{:?}", forged.rejected);
    // The same, honest, goes in.
    let honest = a.attack(&server, "n2", "new_record", "n2,propaganda_session,03694,a").await;
    assert_eq!(honest.accepted, vec!["n2"]);
    assert_eq!(server.count("SELECT COUNT(*) FROM records WHERE created_by = 'r'").await, 0);
}

#[tokio::test]
async fn a_records_identity_never_changes() {
    let server = start();
    let a = Client::new(&server, "a").await;
    let mut report = a.me.new_record("m1", "03694", "commune_monthly_report");
    assert_eq!(a.push("m1", &mut report, &[]).await.accepted, vec!["m1"]);
    for (attack, arg) in [("relabel_period", "2026-10"), ("move_unit", "04231")] {
        assert_eq!(refusal(&a.attack(&server, "m1", attack, arg).await, "m1"), codes::RECORD_IDENTITY, "{attack}");
    }
}

#[tokio::test]
async fn concurrent_appends_from_two_devices_merge() {
    let server = start();
    let (a, lead) = (Client::new(&server, "a").await, Client::new(&server, "lead").await);
    publish_two_levels(&server).await;
    let mut report = a.me.new_record("m1", "03694", "two_levels");
    assert_eq!(a.push("m1", &mut report, &[]).await.accepted, vec!["m1"]);
    let base = report.heads();
    // Offline, both from the same draft: the officer fills and submits, the lead comments.
    let mut mine = a.me.load(&report.save());
    mine.set_field(&FieldPath::top("participants"), &FieldValue::Integer(30), 1_764_000_020).expect("edit");
    mine.append_event(EventKind::Submit, "a", None, 1_764_000_021).expect("submit");
    let mut theirs = lead.me.load(&report.save());
    theirs.append_event(EventKind::Comment, "lead", Some("Đã xem"), 1_764_000_022).expect("comment");
    assert_eq!(a.push("m1", &mut mine, &base).await.accepted, vec!["m1"]);
    let response = lead.push("m1", &mut theirs, &base).await;
    assert_eq!(response.accepted, vec!["m1"], "{:?}", response.rejected);
    let bytes = server.stored_document("m1").await.expect("stored");
    let kinds: Vec<EventKind> = RecordDoc::load(&bytes, None).expect("doc").events().iter().map(|e| e.kind).collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&EventKind::Submit) && kinds.contains(&EventKind::Comment));
    assert_eq!(state(&server, "m1").await, "submitted");
}

#[tokio::test]
async fn restricted_records_and_templates_stay_hidden_on_every_route() {
    let server = Server::with_users(&[
        ("a", "03694", "field_officer"),
        ("a2", "03694", "field_officer"),
        ("r", "14", "reviewer"),
    ]);
    common::diaban(&server.db, &["admin", "grant-template", "--user", "a", "--template", "public_tip"]);
    let (a, a2) = (Client::new(&server, "a").await, Client::new(&server, "a2").await);
    let mut tip = a.me.new_record("tip1", "03694", "public_tip");
    tip.set_field(&FieldPath::top("tip_ref"), &FieldValue::Text("TB-01".into()), 1_764_000_030).expect("edit");
    assert_eq!(a.push("tip1", &mut tip, &[]).await.accepted, vec!["tip1"]);

    // The template itself: granted, it reads; ungranted, it does not exist.
    let template = |c: &Client| {
        c.http.get(format!("{}/api/v1/templates/public_tip", server.url)).bearer_auth(c.me.token.clone()).send()
    };
    assert_eq!(template(&a).await.expect("get").status(), 200);
    let hidden = template(&a2).await.expect("get");
    assert_eq!(hidden.status(), 404);
    let body: protocol::ErrorBody = hidden.json().await.expect("json");
    assert_eq!(body.error.code, codes::UNKNOWN_TEMPLATE);

    // An ungranted reviewer can neither read the record nor act on it: every route answers as
    // for a record that does not exist.
    let http = common::http_builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let cookie = common::web_login(&http, &server.url, "r").await;
    let page = common::get(&http, &format!("{}/records", server.url), &cookie).await;
    assert!(!page.contains("tip1"));
    let record = http.get(format!("{}/records/tip1", server.url)).header("cookie", &cookie).send().await.expect("get");
    assert_eq!(record.status(), 404);
    for (url, fields) in [
        (format!("{}/records/tip1/review", server.url), vec![("action", "return"), ("comment", "x")]),
        (format!("{}/records/tip1/amendments/1", server.url), vec![("action", "accept")]),
    ] {
        assert_eq!(common::post_form(&http, &url, &cookie, &page, &fields).await, 404, "{url}");
    }
    let exported = http.get(format!("{}/export/public_tip.csv", server.url)).header("cookie", &cookie).send().await;
    assert_eq!(exported.expect("export").status(), 404);
}

/// Uploads `data` whole as `client`'s, chunk by chunk, by hand.
async fn upload(client: &Client, data: &[u8]) -> String {
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(data));
    for (i, chunk) in data.chunks(protocol::CHUNK_BYTES).enumerate() {
        let url = format!(
            "{}{}/{sha}?offset={}&size={}&content_type=image/jpeg",
            client.url,
            protocol::ATTACHMENTS_PATH,
            i * protocol::CHUNK_BYTES,
            data.len()
        );
        let answer = client.http.put(url).bearer_auth(&client.me.token).body(chunk.to_vec()).send().await.expect("put");
        assert_eq!(answer.status(), 200);
    }
    sha
}

#[tokio::test]
async fn an_attachment_is_reached_only_through_a_readable_record_its_pusher_uploaded() {
    let server = Server::with_users(&[
        ("a", "03694", "field_officer"),
        ("a2", "03694", "field_officer"),
        ("b", "04231", "field_officer"),
        ("admin", "14", "admin"),
    ]);
    let admin = Client::new(&server, "admin").await;
    let template = serde_json::json!({
        "id": "site_photo", "version": 1, "kind": "event", "label": {"vi": "Ảnh", "en": "Photo"},
        "fields": [{"name": "photo", "type": "photo", "label": {"vi": "Ảnh", "en": "Photo"}}]
    });
    let published = admin
        .http
        .post(format!("{}/api/v1/admin/templates", server.url))
        .bearer_auth(&admin.me.token)
        .json(&template)
        .send()
        .await
        .expect("publish");
    assert_eq!(published.status(), 201);
    let (a, a2, b) =
        (Client::new(&server, "a").await, Client::new(&server, "a2").await, Client::new(&server, "b").await);
    let photo: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let refer = |client: &Client, id: &str, sha: &str| {
        let mut doc = client.me.new_record(id, if client.me.username == "b" { "04231" } else { "03694" }, "site_photo");
        let value =
            FieldValue::Attachment { sha256: sha.into(), content_type: "image/jpeg".into(), size: photo.len() as u64 };
        doc.set_field(&FieldPath::top("photo"), &value, 1_764_000_040).expect("photo");
        doc
    };
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(&photo));

    // A reference before the upload is refused; after it, accepted.
    let mut early = refer(&a, "p1", &sha);
    assert_eq!(refusal(&a.push("p1", &mut early, &[]).await, "p1"), codes::ATTACHMENT_NOT_UPLOADED);
    assert_eq!(upload(&a, &photo).await, sha);
    assert_eq!(a.push("p1", &mut early, &[]).await.accepted, vec!["p1"]);

    // Another commune's officer who knows the hash: the status says nothing, a reference is
    // refused, the download is not found.
    let status: protocol::AttachmentStatus = b
        .http
        .get(format!("{}{}/{sha}/status", server.url, protocol::ATTACHMENTS_PATH))
        .bearer_auth(&b.me.token)
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!((status.size, status.received, status.complete), (0, 0, false));
    let mut stolen = refer(&b, "p2", &sha);
    assert_eq!(refusal(&b.push("p2", &mut stolen, &[]).await, "p2"), codes::ATTACHMENT_NOT_UPLOADED);
    let download = |c: &Client| {
        c.http
            .get(format!("{}{}/{sha}?offset=0&length=100", server.url, protocol::ATTACHMENTS_PATH))
            .bearer_auth(c.me.token.clone())
            .send()
    };
    assert_eq!(download(&b).await.expect("get").status(), 404);
    // A colleague in the commune reads it through the record.
    let colleague = download(&a2).await.expect("get");
    assert_eq!(colleague.status(), 200);
    assert_eq!(colleague.bytes().await.expect("bytes").as_ref(), &photo[..100]);
}

#[tokio::test]
async fn exports_are_inert() {
    let server = start();
    let a = Client::new(&server, "a").await;
    let mut doc = a.me.new_record("x1", "03694", "propaganda_session");
    let formula = FieldValue::Text("=HYPERLINK(\"http://attacker.example\",\"Bấm vào\")".into());
    doc.set_field(&FieldPath::top("place"), &formula, 1_764_000_050).expect("edit");
    assert_eq!(a.push("x1", &mut doc, &[]).await.accepted, vec!["x1"]);
    let http = common::http_builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let cookie = common::web_login(&http, &server.url, "r").await;
    let csv = http
        .get(format!("{}/export/propaganda_session.csv", server.url))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("csv");
    assert!(csv.contains("'=HYPERLINK("), "{csv}");
    assert!(!csv.contains(",=HYPERLINK(") && !csv.contains(",\"=HYPERLINK("), "{csv}");
}
