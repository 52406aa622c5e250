//! Every input is bounded and every error is the project's JSON body: hand-built requests to a
//! real `diaban` process over loopback, over each limit by one, and a check that nothing was
//! stored.

mod common;

use automerge::ActorId;
use diaban_core::FieldValue;
use diaban_core::limits;
use diaban_core::protocol::{self, PushRecord, SyncRequest, SyncResponse};
use diaban_core::record::{FieldPath, RecordDoc};
use diaban_core::wire;

use common::Server;

/// A client that speaks the protocol by hand.
struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
    actor: ActorId,
    identity: common::Identity,
}

impl Client {
    async fn new(server: &Server, username: &str) -> Client {
        let http = common::http();
        let actor = ActorId::random();
        let identity = common::register(&http, &server.url, username, "test", &actor).await;
        Client { http, url: server.url.clone(), token: identity.token.clone(), actor, identity }
    }

    /// A request's status and its JSON error code (`None` when the body is not the JSON error).
    async fn send(&self, method: reqwest::Method, path: &str, body: Vec<u8>, auth: bool) -> (u16, Option<String>) {
        let mut request = self.http.request(method, format!("{}{path}", self.url)).body(body);
        if auth {
            request = request.bearer_auth(&self.token);
        }
        let response = request.header("content-type", "application/json").send().await.expect("request");
        let status = response.status().as_u16();
        let json: Option<serde_json::Value> = response.json().await.ok();
        (status, json.and_then(|j| j["error"]["code"].as_str().map(str::to_owned)))
    }

    /// Pushes the changes of `doc` after `have`.
    async fn push_since(&self, doc: &mut RecordDoc, id: &str, have: &[automerge::ChangeHash]) -> SyncResponse {
        let push = PushRecord {
            record_id: id.into(),
            changes: doc.bundle_since(have).expect("bundle"),
            heads: doc.heads().into_iter().map(|h| h.0).collect(),
        };
        self.sync(SyncRequest { cursor: 0, synced: 0, reach: 0, push: vec![push] }).await
    }

    async fn push(&self, docs: Vec<(&str, &mut RecordDoc)>) -> SyncResponse {
        let push = docs
            .into_iter()
            .map(|(id, doc)| PushRecord {
                record_id: id.into(),
                changes: doc.bundle_since(&[]).expect("bundle"),
                heads: doc.heads().into_iter().map(|h| h.0).collect(),
            })
            .collect();
        self.sync(SyncRequest { cursor: 0, synced: 0, reach: 0, push }).await
    }

    async fn sync(&self, request: SyncRequest) -> SyncResponse {
        common::post_sync(&self.http, &self.url, &self.token, &request).await
    }

    fn session(&self, id: &str) -> RecordDoc {
        self.identity.new_record(id, "03694", "propaganda_session")
    }
}

fn refused(response: &SyncResponse, id: &str) -> String {
    assert!(response.accepted.is_empty(), "{response:?}");
    let r = response.rejected.iter().find(|r| r.record_id == id).expect("a refusal");
    r.code.clone()
}

/// A hand-made HTTP/1.1 request that declares `length` bytes of body and sends none of them:
/// the status line and body of the answer.
async fn declare(server: &Server, method: &str, path: &str, length: usize, token: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = server.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n{auth}content-length: {length}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    (status, answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default())
}

#[tokio::test]
async fn a_body_over_any_routes_limit_gets_413_with_the_json_error_before_it_is_read() {
    let server = Server::start();
    let a = Client::new(&server, "a").await;
    let upload = format!("{}/{}?offset=0&size=10", protocol::ATTACHMENTS_PATH, "0".repeat(64));
    let routes: [(&str, &str, usize, bool); 6] = [
        ("POST", protocol::LOGIN_PATH, 64 * 1024, false),
        ("POST", protocol::SYNC_PATH, 8 * 1024 * 1024, true),
        ("POST", protocol::REFRESH_PATH, 64 * 1024, true),
        ("POST", "/api/v1/admin/templates", 2 * 1024 * 1024, true),
        ("PUT", &upload, 256 * 1024, true),
        ("GET", "/health", 64 * 1024, false),
    ];
    for (method, path, limit, auth) in routes {
        let (status, body) = declare(&server, method, path, limit + 1, auth.then_some(a.token.as_str())).await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: {body:?}"));
        assert_eq!((status, json["error"]["code"].as_str()), (413, Some("payload_too_large")), "{path}");
    }
    // Under the limit, a body that fails to parse is an ordinary JSON 400.
    let (status, code) = a.send(reqwest::Method::POST, protocol::LOGIN_PATH, b"{".to_vec(), false).await;
    assert_eq!((status, code.as_deref()), (400, Some("bad_request")));
    // The web answers with a page, not the framework's plain text.
    let (status, body) = declare(&server, "POST", "/login", 64 * 1024 + 1, None).await;
    assert_eq!(status, 413);
    assert!(body.contains("Dữ liệu gửi lên quá lớn"), "{body}");
    assert_eq!(server.count("SELECT COUNT(*) FROM attachments").await, 0);
}

#[tokio::test]
async fn the_frameworks_own_refusals_are_json_errors_too() {
    let server = Server::start();
    let a = Client::new(&server, "a").await;
    let (status, code) = a.send(reqwest::Method::GET, "/api/v1/nothing-here", Vec::new(), true).await;
    assert_eq!((status, code.as_deref()), (404, Some("not_found")));
    let (status, code) = a.send(reqwest::Method::GET, protocol::LOGIN_PATH, Vec::new(), false).await;
    assert_eq!((status, code.as_deref()), (405, Some("method_not_allowed")));
    let (status, code) =
        a.send(reqwest::Method::GET, &format!("{}?cursor=x", protocol::WATCH_PATH), Vec::new(), true).await;
    assert_eq!((status, code.as_deref()), (400, Some("bad_request")));
}

#[tokio::test]
async fn an_overlong_username_or_password_is_refused_before_it_is_hashed_and_leaves_nothing() {
    let server = Server::start();
    let audit_before = server.count("SELECT COUNT(*) FROM audit_log").await;
    let http = common::http();
    let actor = ActorId::random().to_hex_string();
    for (username, password) in [
        ("u".repeat(limits::MAX_USERNAME_CHARS + 1), "p".to_owned()),
        ("a".to_owned(), "p".repeat(limits::MAX_PASSWORD_BYTES + 1)),
    ] {
        let body =
            serde_json::json!({"username": username, "password": password, "device_name": "x", "actor_id": actor});
        let response =
            http.post(format!("{}{}", server.url, protocol::LOGIN_PATH)).json(&body).send().await.expect("login");
        assert_eq!(response.status(), 400);
        let json: serde_json::Value = response.json().await.expect("json");
        assert_eq!(json["error"]["code"], "bad_request");
    }
    assert_eq!(server.count("SELECT COUNT(*) FROM audit_log").await, audit_before, "nothing audited or stored");
    assert_eq!(server.count("SELECT COUNT(*) FROM devices").await, 0);
}

#[tokio::test]
async fn a_record_over_a_size_limit_is_refused_with_a_reason_and_nothing_is_stored() {
    let server = Server::start();
    let a = Client::new(&server, "a").await;
    let now = 1_763_769_700;

    let mut long_text = a.session("text");
    let text = FieldValue::Text("ạ".repeat(limits::MAX_TEXT_CHARS + 1));
    long_text.set_field(&FieldPath::top("place"), &text, now).expect("edit");
    assert_eq!(refused(&a.push(vec![("text", &mut long_text)]).await, "text"), protocol::codes::TOO_LARGE);

    let mut rows = a.identity.new_record("rows", "03694", "hotspot");
    for _ in 0..=limits::MAX_ROWS {
        rows.add_row(&FieldPath::top("rechecks"), now).expect("row");
    }
    assert_eq!(refused(&a.push(vec![("rows", &mut rows)]).await, "rows"), protocol::codes::TOO_LARGE);

    // One change of more than MAX_CHANGE_OPS operations (a list written in one go).
    let mut ops = {
        use automerge::transaction::Transactable;
        use automerge::{ObjType, ReadDoc};
        let mut doc = automerge::AutoCommit::load(&a.session("ops").save()).expect("load").with_actor(a.actor.clone());
        let (_, fields) = doc.get(automerge::ROOT, "fields").expect("read").expect("fields");
        let list = doc.put_object(&fields, "methods", ObjType::List).expect("list");
        let many = (0..=limits::MAX_CHANGE_OPS).map(|i| automerge::ScalarValue::from(i.to_string()));
        doc.splice(&list, 0, 0, many).expect("splice");
        let author = serde_json::to_string(&a.identity.author()).expect("json");
        doc.commit_with(automerge::transaction::CommitOptions::default().with_message(author));
        RecordDoc::load(&doc.save(), None).expect("a record")
    };
    assert_eq!(refused(&a.push(vec![("ops", &mut ops)]).await, "ops"), protocol::codes::TOO_LARGE);

    assert_eq!(server.count("SELECT COUNT(*) FROM records").await, 0, "nothing of them is stored");

    // A history over MAX_DOCUMENT_BYTES though every answer fits: one field rewritten with
    // noise, pushed in parts, until the stored document and the next part pass the limit.
    let mut history = a.session("history");
    let mut seed = 0x2026_u64;
    let mut sent = Vec::new();
    let mut refusal = None;
    for round in 0..12 {
        for i in 0..100 {
            let noise: String = (0..8_000)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    char::from(b'!' + (seed >> 57) as u8 % 94)
                })
                .collect();
            history.set_field(&FieldPath::top("notes"), &FieldValue::Text(noise), now + round * 100 + i).expect("edit");
        }
        let response = a.push_since(&mut history, "history", &sent).await;
        if let Some(r) = response.rejected.first() {
            refusal = Some(r.code.clone());
            break;
        }
        sent = history.heads();
    }
    assert_eq!(refusal.as_deref(), Some(protocol::codes::TOO_LARGE));
    let stored = server
        .count(
            "SELECT (SELECT SUM(LENGTH(doc)) FROM record_snapshots) + COALESCE((SELECT SUM(LENGTH(data)) FROM record_chunks), 0)",
        )
        .await;
    assert!(stored > 3 * 1024 * 1024 && stored <= limits::MAX_DOCUMENT_BYTES as i64, "{stored} bytes stored");

    // More records in one request than a phone ever sends: the whole request is refused.
    let mut docs: Vec<(String, RecordDoc)> =
        (0..=limits::MAX_PUSH_RECORDS).map(|i| (format!("bulk{i}"), a.session(&format!("bulk{i}")))).collect();
    let push = docs
        .iter_mut()
        .map(|(id, doc)| PushRecord {
            record_id: id.clone(),
            changes: doc.bundle_since(&[]).expect("bundle"),
            heads: doc.heads().into_iter().map(|h| h.0).collect(),
        })
        .collect();
    let body = wire::encode(&SyncRequest { cursor: 0, synced: 0, reach: 0, push }).expect("encode");
    let (status, code) = a.send(reqwest::Method::POST, protocol::SYNC_PATH, body, true).await;
    assert_eq!((status, code.as_deref()), (413, Some(protocol::codes::TOO_LARGE)));
    assert_eq!(server.count("SELECT COUNT(*) FROM records WHERE id LIKE 'bulk%'").await, 0);
}

#[tokio::test]
async fn a_template_over_the_size_limit_is_not_published() {
    let server = Server::with_users(&[("admin", "14", "admin")]);
    let admin = Client::new(&server, "admin").await;
    let fields: Vec<serde_json::Value> = (0..2_000)
        .map(|i| {
            serde_json::json!({"name": format!("f{i}"), "type": "text",
                "label": {"vi": "Một câu hỏi rất dài ".repeat(20), "en": "A long question ".repeat(20)}})
        })
        .collect();
    let template = serde_json::json!({"id": "huge", "version": 1, "kind": "checklist",
        "label": {"vi": "Lớn", "en": "Huge"}, "fields": fields});
    let body = serde_json::to_vec(&template).expect("json");
    assert!(body.len() > limits::MAX_TEMPLATE_BYTES && body.len() < 2 * 1024 * 1024);
    let (status, code) = admin.send(reqwest::Method::POST, "/api/v1/admin/templates", body, true).await;
    assert_eq!((status, code.as_deref()), (400, Some("bad_request")));
    assert_eq!(server.count("SELECT COUNT(*) FROM templates WHERE id = 'huge'").await, 0);
}

#[tokio::test]
async fn a_connection_that_goes_quiet_is_closed_and_a_busy_one_is_not() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::with_options(&[], &["--idle-timeout", "3"]);
    let host = server.url.trim_start_matches("http://").to_owned();
    // Half a request, then silence (slowloris): the server hangs up.
    let mut slow = tokio::net::TcpStream::connect(&host).await.expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n").await.expect("write");
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(15), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the server kept a silent connection open for 15 s");
    assert!(started.elapsed() >= std::time::Duration::from_millis(2500), "closed before the idle timeout");
    // A connection that keeps asking, each time within the timeout, stays open.
    let mut busy = tokio::net::TcpStream::connect(&host).await.expect("connect");
    for _ in 0..4 {
        busy.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write on the same connection");
        let mut answer = [0u8; 512];
        let n = busy.read(&mut answer).await.expect("read");
        assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"), "answered on the same connection");
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    }
}
