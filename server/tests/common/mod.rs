//! What the sync tests share: a real `diaban` server process on a loopback port (which can
//! be killed and restarted on the same port and file), and a sync link that records every
//! exchange and injects faults into chosen ones.
//!
//! The database is a SQLite file in a temp dir, or, with `DIABAN_TEST_BACKEND=postgres`, a
//! fresh database on the PostgreSQL cluster at `DIABAN_TEST_PG` (the test command starts one
//! and runs the sync tests on both).
#![allow(dead_code)]

pub mod sim;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use automerge::ActorId;
use diaban_core::Device;
use diaban_core::protocol::{self, LoginRequest, LoginResponse};
use diaban_core::transport::{Exchange, HttpTransport, SyncLink, TransportError};

pub const PASSWORD: &str = "mat-khau-dai";
pub const KEY: [u8; 32] = [7; 32];

pub struct Server {
    child: Option<Child>,
    pub url: String,
    /// The SQLite file's path or the PostgreSQL URL, as `--db` takes it.
    pub db: String,
    port: u16,
    pub dir: tempfile::TempDir,
    /// The server program [`Server::run`] starts: this build's, unless a benchmark compares
    /// another.
    pub program: std::path::PathBuf,
    /// Options of the `serve` command (`--clock`, `--min-client-version`…).
    pub options: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One sync exchange by hand, as a hostile or simulated client makes it: the request encoded,
/// posted with the device's bearer token, the answer (which must be 200) decoded.
pub async fn post_sync(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    request: &protocol::SyncRequest,
) -> protocol::SyncResponse {
    let body = diaban_core::wire::encode(request).expect("encode");
    let answer =
        http.post(format!("{url}{}", protocol::SYNC_PATH)).bearer_auth(token).body(body).send().await.expect("sync");
    assert_eq!(answer.status(), 200);
    diaban_core::wire::decode(&answer.bytes().await.expect("body")).expect("a sync answer")
}

/// An HTTP client builder for hand-made requests. The phone's library picks its TLS crypto
/// itself; a bare client needs a process-wide provider (ring, as the phone and server use).
#[allow(deprecated)] // ring's provider: no post-quantum key share, as on the phone.
pub fn http_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// An HTTP client for hand-made requests.
pub fn http() -> reqwest::Client {
    http_builder().build().expect("an HTTP client")
}

/// The admin URL of the test PostgreSQL cluster, if the test command started one.
pub fn postgres_cluster() -> Option<String> {
    std::env::var("DIABAN_TEST_PG").ok().filter(|u| !u.is_empty())
}

/// A new, empty database on the test cluster; its URL.
pub fn new_postgres_database(admin_url: &str) -> String {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let status = Command::new("psql")
        .args([admin_url, "-q", "-v", "ON_ERROR_STOP=1", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("run psql");
    assert!(status.success(), "CREATE DATABASE {name} failed");
    let base = admin_url.rsplit_once('/').map(|(base, _)| base).expect("a URL with a database name");
    format!("{base}/{name}")
}

/// Where a new test server keeps its data (see the module comment).
fn new_database(dir: &tempfile::TempDir) -> String {
    if std::env::var("DIABAN_TEST_BACKEND").as_deref() == Ok("postgres") {
        let cluster = postgres_cluster().expect("DIABAN_TEST_BACKEND=postgres needs DIABAN_TEST_PG");
        return new_postgres_database(&cluster);
    }
    dir.path().join("server.sqlite").to_string_lossy().into_owned()
}

/// Makes the next [`Server::start`]s of this test process use PostgreSQL (for tests that are
/// about PostgreSQL); false, with a note, when no test cluster runs.
pub fn use_postgres() -> bool {
    if postgres_cluster().is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the PostgreSQL tests: set DIABAN_TEST_PG (tests/run.sh does)"
        );
        eprintln!("skipped: no PostgreSQL test cluster (tests/run.sh starts one and sets DIABAN_TEST_PG)");
        return false;
    }
    // SAFETY: set before any server starts; every test in this binary wants the same value.
    unsafe { std::env::set_var("DIABAN_TEST_BACKEND", "postgres") };
    true
}

/// The date `n` days before today (`YYYY-MM-DD`) by the clock this test's servers and phones
/// read (`DIABAN_CLOCK` when the test command pins it).
pub fn days_ago(n: i64) -> String {
    let today = diaban_core::Clock::from_env().expect("DIABAN_CLOCK").today();
    diaban_core::clock::iso(today.checked_sub(time::Duration::days(n)).expect("a date"))
}

pub fn diaban(db: &str, args: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_diaban"))
        .arg("--db")
        .arg(db)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("run diaban");
    assert!(status.success(), "diaban {args:?} failed");
}

impl Server {
    /// A server with a province (14), two communes and users `a` (officer, 03694), `a2`
    /// (officer, 03694), `b` (officer, 04231) and `r` (reviewer, 14).
    pub fn start() -> Server {
        Server::with_users(&[
            ("a", "03694", "field_officer"),
            ("a2", "03694", "field_officer"),
            ("b", "04231", "field_officer"),
            ("r", "14", "reviewer"),
        ])
    }

    /// A server with a province (14), communes 03694 and 04231, and these (user, unit, role),
    /// all with the password [`PASSWORD`].
    pub fn with_users(users: &[(&str, &str, &str)]) -> Server {
        Server::with_users_on(users, None)
    }

    /// [`Server::with_users`], its clock pinned to `clock` (e.g. `2026-11-20`) when given.
    pub fn with_users_on(users: &[(&str, &str, &str)], clock: Option<&str>) -> Server {
        let options: Vec<&str> = clock.map(|c| vec!["--clock", c]).unwrap_or_default();
        Server::with_options(users, &options)
    }

    /// [`Server::with_users`], `serve` run with these options.
    pub fn with_options(users: &[(&str, &str, &str)], options: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = new_database(&dir);
        diaban(&db, &["admin", "create-unit", "--code", "14", "--name", "Tỉnh Sơn La", "--level", "province"]);
        for (code, name) in [("03694", "Xã Mường Giôn"), ("04231", "Xã Sốp Cộp")] {
            diaban(
                &db,
                &["admin", "create-unit", "--code", code, "--name", name, "--level", "commune", "--parent", "14"],
            );
        }
        for &(user, unit, role) in users {
            diaban(
                &db,
                &["admin", "create-user", "--username", user, "--password", PASSWORD, "--role", role, "--unit", unit],
            );
        }
        Server::node(db, dir, options.iter().map(|o| (*o).to_owned()).collect())
    }

    /// Another server process on the same database (PostgreSQL: a second node).
    pub fn second_node(&self) -> Server {
        Server::node(self.db.clone(), tempfile::tempdir().expect("temp dir"), self.options.clone())
    }

    fn node(db: String, dir: tempfile::TempDir, options: Vec<String>) -> Server {
        let program = env!("CARGO_BIN_EXE_diaban").into();
        let mut server = Server { child: None, url: String::new(), db, port: 0, dir, program, options };
        server.run();
        server
    }

    /// Starts the process (again, on the same port once it has one).
    pub fn run(&mut self) {
        let mut child = Command::new(&self.program)
            .arg("--db")
            .arg(&self.db)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(&self.options)
            .stdout(Stdio::piped())
            // DIABAN_TEST_SERVER_LOG names a file for the server's log (with RUST_LOG), to debug.
            .stderr(match std::env::var_os("DIABAN_TEST_SERVER_LOG") {
                Some(path) => std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_or_else(|_| Stdio::null(), Stdio::from),
                None => Stdio::null(),
            })
            .spawn()
            .expect("start server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read address");
        let url = line.trim().rsplit(' ').next().expect("address").to_owned();
        assert!(url.starts_with("http://127.0.0.1:") || url.starts_with("https://127.0.0.1:"), "start line {line:?}");
        self.port = url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        self.url = url;
        self.child = Some(child);
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The server process's resident memory (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.pid().map_or(0, rss_kib)
    }

    /// CPU time the server process has used so far (user + system), in seconds.
    pub fn cpu_secs(&self) -> f64 {
        self.child.as_ref().map_or(0.0, |child| cpu_secs(child.id()))
    }

    /// SIGKILL: no graceful shutdown, whatever was in flight is cut.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A phone signed in as `user`, its store in the server's temp dir.
    pub async fn phone(&self, user: &str, name: &str) -> Device {
        let path = self.dir.path().join(format!("{name}.sqlite"));
        let device = Device::open(&path, &KEY, &self.url, name).await.expect("open store");
        device.login(user, PASSWORD).await.expect("login");
        device
    }

    /// Publishes a template (JSON) as `admin`, a user with the admin role.
    pub async fn publish(&self, admin: &str, template: &serde_json::Value) {
        let http = http();
        let me = register(&http, &self.url, admin, "admin", &ActorId::random()).await;
        let response = http
            .post(format!("{}/api/v1/admin/templates", self.url))
            .bearer_auth(&me.token)
            .json(template)
            .send()
            .await
            .expect("publish");
        assert_eq!(response.status(), 201, "publish");
    }

    /// The sum over every record on the server of its document saved whole (`save()`,
    /// Automerge's compressed format): what a first download cannot beat by much.
    pub async fn saved_documents(&self) -> i64 {
        let ids: Vec<String> = {
            let mut conn = self.read_only().await;
            sqlx::query_scalar("SELECT record_id FROM record_snapshots").fetch_all(&mut conn).await.expect("records")
        };
        let mut sum = 0;
        for id in ids {
            let bytes = self.stored_document(&id).await.expect("a stored record");
            let mut doc = diaban_core::RecordDoc::load(&bytes, None).expect("a stored document");
            sum += doc.save().len() as i64;
        }
        sum
    }

    /// A record's document as the server stores it: its snapshot and chunks, in order.
    pub async fn stored_document(&self, id: &str) -> Option<Vec<u8>> {
        let mut conn = self.read_only().await;
        let mut bytes: Vec<u8> = sqlx::query_scalar("SELECT doc FROM record_snapshots WHERE record_id = $1")
            .bind(id)
            .fetch_optional(&mut conn)
            .await
            .expect("snapshot")?;
        let chunks: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT data FROM record_chunks WHERE record_id = $1 ORDER BY id")
                .bind(id)
                .fetch_all(&mut conn)
                .await
                .expect("chunks");
        chunks.into_iter().for_each(|c| bytes.extend(c));
        Some(bytes)
    }

    /// How many commits the change log holds for a record.
    pub async fn commits_of(&self, id: &str) -> i64 {
        let mut conn = self.read_only().await;
        sqlx::query_scalar("SELECT COUNT(*) FROM change_log WHERE kind = 'record' AND ref_id = $1")
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .expect("change log")
    }

    /// Runs one SQL query on the server's file (read-only) and returns its single integer.
    pub async fn count(&self, sql: &'static str) -> i64 {
        let mut conn = self.read_only().await;
        sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect("query")
    }

    /// A connection to the server's database, beside the running server (read-only on SQLite).
    async fn read_only(&self) -> sqlx::AnyConnection {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let url =
            if self.db.starts_with("postgres://") { self.db.clone() } else { format!("sqlite://{}?mode=ro", self.db) };
        sqlx::AnyConnection::connect(&url).await.expect("open server db")
    }
}

/// The meta of a record made by hand in a test (no device store).
/// The version of a pack template a fresh server publishes (1 for any other template).
pub fn pack_version(template: &str) -> u32 {
    let pack = diaban_server::domain::pack::templates().expect("the pack");
    pack.iter().find(|t| t.id == template).map_or(1, |t| t.version)
}

pub fn meta(id: &str, unit: &str, template: &str) -> diaban_core::record::RecordMeta {
    diaban_core::record::RecordMeta {
        record_id: id.into(),
        template_id: template.into(),
        template_version: pack_version(template),
        unit_code: unit.into(),
        created_by: "a".into(),
        created_at: 1_763_769_600,
        device_id: "d".into(),
        period: None,
    }
}

/// A device signed in over the JSON login API, with no store: what a hand-made client needs
/// to write as that device (its token, its id, its user, its Automerge actor).
#[derive(Clone, Debug)]
pub struct Identity {
    pub token: String,
    pub device_id: String,
    pub username: String,
    pub actor: ActorId,
}

impl Identity {
    /// Who this device's changes say made them.
    pub fn author(&self) -> diaban_core::record::Author {
        diaban_core::record::Author { user: self.username.clone(), device: self.device_id.clone() }
    }

    /// A new record of `template` in `unit`, made by this device.
    pub fn new_record(&self, id: &str, unit: &str, template: &str) -> diaban_core::RecordDoc {
        let meta = diaban_core::record::RecordMeta {
            created_by: self.username.clone(),
            device_id: self.device_id.clone(),
            ..meta(id, unit, template)
        };
        diaban_core::RecordDoc::create(&meta, self.actor.clone()).expect("create")
    }

    /// A stored document, to edit as this device.
    pub fn load(&self, bytes: &[u8]) -> diaban_core::RecordDoc {
        let mut doc = diaban_core::RecordDoc::load(bytes, Some(self.actor.clone())).expect("load");
        doc.set_author(self.author());
        doc
    }
}

/// A template that the commune lead signs off before the province reviews it, with one field.
pub fn two_level_template() -> serde_json::Value {
    serde_json::json!({
        "id": "two_levels", "version": 1, "kind": "event",
        "label": {"vi": "Hai cấp", "en": "Two levels"},
        "roles": {"fill": ["field_officer", "commune_lead"], "review": ["reviewer"], "sign_off": ["commune_lead"]},
        "fields": [{"name": "participants", "type": "integer", "label": {"vi": "Số người", "en": "People"}}]
    })
}

/// Registers a device for `username` over the JSON login API, bound to `actor`.
pub async fn register(
    http: &reqwest::Client,
    url: &str,
    username: &str,
    device_name: &str,
    actor: &ActorId,
) -> Identity {
    let response: LoginResponse = http
        .post(format!("{url}{}", protocol::LOGIN_PATH))
        .json(&LoginRequest {
            username: username.into(),
            password: PASSWORD.into(),
            device_name: device_name.into(),
            actor_id: actor.to_hex_string(),
        })
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login body");
    Identity { token: response.token, device_id: response.device_id, username: username.into(), actor: actor.clone() }
}

/// Signs `username` in to the review web UI; returns the session cookie (`name=value`).
/// `http` must not follow redirects.
pub async fn web_login(http: &reqwest::Client, url: &str, username: &str) -> String {
    let response = http
        .post(format!("{url}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("username={username}&password={PASSWORD}"))
        .send()
        .await
        .expect("web login");
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("diaban_session="))
        .expect("session cookie")
        .split(';')
        .next()
        .expect("cookie pair")
        .to_owned()
}

/// A page of the web UI, which must answer 200.
pub async fn get(http: &reqwest::Client, url: &str, cookie: &str) -> String {
    let response = http.get(url).header("cookie", cookie).send().await.expect("page");
    assert_eq!(response.status(), 200, "{url}");
    response.text().await.expect("page body")
}

/// Posts a form of the web UI with the page's CSRF token; returns the status.
pub async fn post_form(http: &reqwest::Client, url: &str, cookie: &str, page: &str, fields: &[(&str, &str)]) -> u16 {
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("csrf token");
    let mut body = format!("csrf={csrf}");
    for (k, v) in fields {
        body.push_str(&format!("&{k}={v}"));
    }
    let response = http
        .post(url)
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("form");
    response.status().as_u16()
}

/// What a fault does to one exchange.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// The request never reaches the server.
    DropRequest,
    /// The server commits, but the answer is lost.
    DropResponse,
    /// The request arrives twice; the device reads the second answer.
    Duplicate,
    /// The request is held back and lost to the device; it reaches the server after the next
    /// request (a stale request arriving out of order).
    Reorder,
}

/// A sync link over HTTP that logs each exchange's body sizes and applies planned faults.
pub struct FaultyLink {
    http: HttpTransport,
    plan: Mutex<VecDeque<Option<Fault>>>,
    held: Mutex<Option<Vec<u8>>>,
    /// (request bytes, answer bytes) of every exchange the device saw answered.
    pub log: Mutex<Vec<(usize, usize)>>,
}

impl FaultyLink {
    pub fn new(url: &str) -> Arc<FaultyLink> {
        Arc::new(FaultyLink {
            http: HttpTransport::new(url).expect("transport"),
            plan: Mutex::new(VecDeque::new()),
            held: Mutex::new(None),
            log: Mutex::new(Vec::new()),
        })
    }

    /// The next exchanges' faults, in order (`None` passes an exchange through).
    pub fn plan(&self, faults: impl IntoIterator<Item = Option<Fault>>) {
        self.plan.lock().expect("plan").extend(faults);
    }

    pub fn exchanges(&self) -> Vec<(usize, usize)> {
        self.log.lock().expect("log").clone()
    }

    pub fn clear(&self) {
        self.log.lock().expect("log").clear();
    }

    async fn run(
        &self,
        token: &str,
        body: Vec<u8>,
    ) -> Result<(Vec<u8>, diaban_core::transport::Traffic), TransportError> {
        let fault = self.plan.lock().expect("plan").pop_front().flatten();
        let lost = |what: &str| Err(TransportError::Unreachable(format!("fault injected: {what}")));
        let held = self.held.lock().expect("held").take();
        let answer = match fault {
            Some(Fault::DropRequest) => return lost("request dropped"),
            Some(Fault::DropResponse) => {
                self.http.post_sync(token, body).await?;
                return lost("response dropped");
            }
            Some(Fault::Duplicate) => {
                self.http.post_sync(token, body.clone()).await?;
                self.http.post_sync(token, body).await?
            }
            Some(Fault::Reorder) => {
                *self.held.lock().expect("held") = Some(body);
                return lost("request held back");
            }
            None => self.http.post_sync(token, body).await?,
        };
        if let Some(stale) = held {
            self.http.post_sync(token, stale).await?;
        }
        self.log.lock().expect("log").push((answer.1.bytes_up as usize, answer.1.bytes_down as usize));
        Ok(answer)
    }
}

impl SyncLink for FaultyLink {
    fn exchange<'a>(&'a self, token: &'a str, body: Vec<u8>) -> Exchange<'a> {
        Box::pin(self.run(token, body))
    }
}

/// CPU time process `pid` has used so far (user + system), in seconds.
/// A process's resident memory (VmRSS), in KiB; 0 if it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    rss_kib_of(pid, "VmRSS")
}

/// One memory line of `/proc/<pid>/status` (VmRSS, RssAnon, RssFile…), in KiB; 0 if it is gone.
pub fn rss_kib_of(pid: u32, line: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(&format!("{line}:"))).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11..13).map(|f| f.iter().filter_map(|t| t.parse::<f64>().ok()).sum()).unwrap_or(0.0);
    ticks / 100.0
}
