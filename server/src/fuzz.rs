//! Entry points for the fuzzers (`tests/fuzz`, cargo-fuzz): each takes arbitrary bytes as an
//! attacker would send them and must return without panicking, hanging or allocating without
//! bound. The test command replays the kept corpora through them (`server/tests/fuzz.rs`).
//!
//! The targets: sync frames (`wire::decode`), pushed Automerge bundles through the server's
//! check path (raw bytes, and edit programs that build real changes), template JSON through
//! `Form::compile`, CEL expressions, the units CSV, and attachment uploads through the real
//! route.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue};
use diaban_core::form::Env;
use diaban_core::protocol::{PushRecord, SyncRequest, SyncResponse};
use diaban_core::record::{EventKind, RecordDoc, RecordMeta};
use diaban_core::{FieldValue, Form, Role};

use crate::domain::sync::{self, Verdict};
use crate::store::{AuthDevice, Marks, StoredState, User};

/// libFuzzer's panic hook aborts on every panic, even one the code catches on purpose (the
/// CEL parser's, caught in `expr::compile`). This hook is quiet instead; a panic that is not
/// caught still fails the run (libFuzzer's harness aborts on it).
fn quiet_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // DIABAN_FUZZ_LOUD=1 keeps libFuzzer's hook, to see where a crash panicked.
    if std::env::var_os("DIABAN_FUZZ_LOUD").is_none() {
        ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    }
}

/// A sync frame, read as a request (the server's side) and as a response (the phone's).
pub fn sync_frame(data: &[u8]) {
    let _ = diaban_core::wire::decode::<SyncRequest>(data);
    let _ = diaban_core::wire::decode::<SyncResponse>(data);
}

/// A template: compiled with every publication check; if it compiles, evaluated on no
/// answers and on an answer of each kind in every field.
pub fn template_json(data: &[u8]) {
    quiet_caught_panics();
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(form) = Form::from_json(text) else { return };
    let env =
        Env { today: "2026-12-07".into(), period: Some(("2026-11-15".into(), "2026-12-14".into())), lang: "vi".into() };
    let _ = form.evaluate(&Default::default(), &env, &BTreeMap::new());
    let names: Vec<String> = form.template().walk().into_iter().map(|(_, f)| f.name.clone()).collect();
    for name in &names {
        for value in [
            FieldValue::Text("Bản Nà Sản".into()),
            FieldValue::Integer(-1),
            FieldValue::Decimal(1e308),
            FieldValue::Date("2026-02-29".into()),
            FieldValue::Choices(vec!["a".into(), "a".into()]),
        ] {
            let _ = form.check_answer(name, &value);
        }
    }
    let values: serde_json::Map<String, serde_json::Value> =
        names.iter().map(|n| (n.clone(), serde_json::json!("x"))).collect();
    let _ = form.evaluate(&values, &env, &BTreeMap::new());
}

/// A CEL expression: compiled, checked against a few names, and run with them bound through
/// `expr::execute`, as the forms run it.
pub fn cel_expression(data: &[u8]) {
    quiet_caught_panics();
    let Ok(source) = std::str::from_utf8(data) else { return };
    let names = ["value", "today", "start_date", "duration_months", "rows", "status"];
    let _ = diaban_core::expr::compile_checked(source, &|n| names.contains(&n));
    let Ok(program) = diaban_core::expr::compile(source) else { return };
    let mut scope = diaban_core::expr::root_context();
    scope.add_variable_from_value("value", 12);
    scope.add_variable_from_value("today", "2026-12-07");
    scope.add_variable_from_value("start_date", "2026-02-28");
    scope.add_variable_from_value("duration_months", 12);
    scope.add_variable_from_value("status", "user_managed");
    scope.add_variable_from_value("rows", diaban_core::expr::to_cel(&serde_json::json!([{"a": 1}, {"a": "x"}])));
    let _ = diaban_core::expr::execute(&program, &scope);
}

/// A units CSV, checked row by row against a database that knows province 14.
pub fn units_csv(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let known = ["14".to_owned()].into_iter().collect();
    let _ = crate::domain::units::parse(text, &known);
}

/// The pushing device and the records it may push to, for [`pushed_bundle`].
struct PushWorld {
    forms: BTreeMap<String, Arc<Form>>,
    device: AuthDevice,
    actor: ActorId,
    /// Stored records: a submitted session and an approved monthly report (not the device's).
    stored: Vec<(StoredState, Vec<u8>)>,
}

fn push_world() -> &'static PushWorld {
    static WORLD: OnceLock<PushWorld> = OnceLock::new();
    WORLD.get_or_init(|| {
        let forms: BTreeMap<String, Arc<Form>> = crate::domain::pack::DEFAULT_PACK
            .iter()
            .filter_map(|(id, text)| Some(((*id).to_owned(), Arc::new(Form::from_json(text).ok()?))))
            .collect();
        let actor = ActorId::from(&[7u8; 16][..]);
        let user = User {
            id: 1,
            username: "canbo".into(),
            display_name: "Lò Văn Sáng".into(),
            role: Role::FieldOfficer,
            unit_code: "03694".into(),
            unit_name: "Xã Mường Giôn".into(),
        };
        let device = AuthDevice {
            device_id: "d1".into(),
            token_hash: String::new(),
            actor_id: actor.to_hex_string(),
            token_expires_at: i64::MAX,
            user,
            marks: Marks { latest: 0, units: 0, templates: 0, grants: Vec::new() },
            wipe: None,
        };
        let other = ActorId::from(&[9u8; 16][..]);
        let mut stored = Vec::new();
        for (id, template, period, events) in [
            ("s1", "propaganda_session", None, vec![(EventKind::Submit, "canbo")]),
            (
                "m1",
                "commune_monthly_report",
                Some("2026-11".to_owned()),
                vec![(EventKind::Submit, "canbo"), (EventKind::SignOff, "lanhdao"), (EventKind::Approve, "kiemduyet")],
            ),
        ] {
            let Some(form) = forms.get(template) else { continue };
            let meta = RecordMeta {
                record_id: id.into(),
                template_id: template.into(),
                template_version: form.template().version,
                unit_code: "03694".into(),
                created_by: "canbo".into(),
                created_at: 1_764_000_000,
                device_id: "d0".into(),
                period,
            };
            let Ok(mut doc) = form.new_record(&meta, other.clone(), 1_764_000_000) else { continue };
            for (kind, by) in events {
                let _ = doc.append_event(kind, by, None, 1_764_000_100);
            }
            let bytes = doc.save();
            let state = StoredState {
                seq: 1,
                template_id: template.into(),
                template_version: form.template().version,
                unit_code: "03694".into(),
                chunks: 0,
                attachments: 0,
                bytes: bytes.len() as i64,
            };
            stored.push((state, bytes));
        }
        PushWorld { forms, device, actor, stored }
    })
}

/// A pushed record through the server's check path ([`sync::screen`], [`sync::admit`],
/// [`sync::decide`]). The first byte chooses the record (new, or one of the stored ones) and
/// whether the rest is a raw bundle or an edit program ([`edit_program`]) that makes real
/// changes as the device's actor.
pub fn pushed_bundle(data: &[u8]) {
    quiet_caught_panics();
    let world = push_world();
    let Some((&mode, rest)) = data.split_first() else { return };
    let existing = world.stored.get(usize::from(mode % 3)).filter(|_| mode % 3 < 2);
    let record_id = existing.map_or("n1", |(s, _)| if s.template_id == "propaganda_session" { "s1" } else { "m1" });
    let (bundle, heads) = if mode & 0x80 == 0 {
        (rest.to_vec(), Vec::new())
    } else {
        match edit_program(world, existing.map(|(_, b)| b.as_slice()), record_id, rest) {
            Some(pushed) => pushed,
            None => return,
        }
    };
    let Ok(mut decoded) = sync::decode(vec![PushRecord { record_id: record_id.into(), changes: bundle, heads }]) else {
        return;
    };
    let Some(push) = decoded.pop() else { return };
    let scope = ["03694".to_owned()];
    let state = existing.map(|(s, _)| s);
    if sync::screen(state, &world.device, &scope, &push).is_some() {
        return;
    }
    let doc = match existing {
        Some((_, bytes)) => match RecordDoc::load(bytes, None) {
            Ok(doc) => doc,
            Err(_) => return,
        },
        None => RecordDoc::empty(),
    };
    let Ok(admitted) = sync::admit(state, doc, &scope, &push) else { return };
    let form = world.forms.get(&admitted.meta.template_id).map(Arc::as_ref);
    let today = time::macros::date!(2026 - 12 - 07);
    if let Verdict::Write(mut doc, projection) = sync::decide(admitted, state, form, &[], &world.device, today) {
        let _ = (doc.save(), projection.values_json.len());
    }
}

/// Edits the record (`stored`, or a new one) as the device would never: every byte pair is
/// an operation on the document's maps and lists (meta, fields, events, rows), with keys
/// and values drawn from the program. The changes made, as a bundle, and the new heads.
fn edit_program(
    world: &PushWorld,
    stored: Option<&[u8]>,
    record_id: &str,
    program: &[u8],
) -> Option<(Vec<u8>, Vec<diaban_core::protocol::Hash>)> {
    let mut doc = match stored {
        Some(bytes) => AutoCommit::load(bytes).ok()?,
        None => {
            let form =
                world.forms.get(if program.first()? % 2 == 0 { "propaganda_session" } else { "person_record" })?;
            let meta = RecordMeta {
                record_id: record_id.into(),
                template_id: form.template().id.clone(),
                template_version: form.template().version,
                unit_code: "03694".into(),
                created_by: "canbo".into(),
                created_at: 1_764_000_000,
                device_id: "d1".into(),
                period: None,
            };
            AutoCommit::load(&form.new_record(&meta, world.actor.clone(), 1_764_000_000).ok()?.save()).ok()?
        }
    };
    doc.set_actor(world.actor.clone());
    let before = if stored.is_some() { doc.get_heads() } else { Vec::new() };
    const KEYS: [&str; 12] = [
        "meta",
        "fields",
        "events",
        "record_id",
        "template_id",
        "unit_code",
        "period",
        "kind",
        "by",
        "at",
        "place",
        "participants",
    ];
    let (meta, fields, events) = {
        let get = |doc: &AutoCommit, key: &str| doc.get(ROOT, key).ok().flatten().map(|(_, id)| id);
        (get(&doc, "meta"), get(&doc, "fields"), get(&doc, "events"))
    };
    for (i, pair) in program.chunks(2).skip(1).enumerate() {
        let (op, arg) = (pair[0], *pair.get(1).unwrap_or(&0));
        let key = KEYS[usize::from(arg) % KEYS.len()];
        let value = match arg % 5 {
            0 => ScalarValue::Str(format!("v{arg}").into()),
            1 => ScalarValue::Int(i64::from(arg) - 128),
            2 => ScalarValue::Boolean(arg % 2 == 0),
            3 => ScalarValue::Str(["submit", "approve", "return", "reopen", "sign_off"][usize::from(arg) % 5].into()),
            _ => ScalarValue::Null,
        };
        let target = match op % 3 {
            0 => meta.clone(),
            1 => fields.clone(),
            _ => events.clone(),
        };
        let _ = match (op / 3) % 6 {
            0 => target.map(|t| doc.put(&t, key, value).map(|_| ())),
            1 => target.map(|t| doc.delete(&t, key)),
            2 => events.clone().map(|e| {
                let at = doc.length(&e).min(usize::from(arg));
                doc.insert_object(&e, at, ObjType::Map).and_then(|m| {
                    doc.put(
                        &m,
                        "kind",
                        ["submit", "approve", "sign_off", "return", "reopen", "comment"][usize::from(arg) % 6],
                    )?;
                    doc.put(&m, "by", if arg % 2 == 0 { "canbo" } else { "kiemduyet" })?;
                    doc.put(&m, "at", ScalarValue::Timestamp(1_764_000_000_000))
                })
            }),
            3 => events.clone().map(|e| {
                let len = doc.length(&e);
                if len == 0 { Ok(()) } else { doc.delete(&e, usize::from(arg) % len) }
            }),
            4 => target.map(|t| doc.put_object(&t, key, ObjType::List).map(|_| ())),
            _ => Some(doc.put(ROOT, key, value).map(|_| ())),
        };
        if i % 4 == 3 {
            doc.commit();
        }
    }
    doc.commit();
    let hashes: Vec<_> = doc.get_changes(&before).iter().map(|c| c.hash()).collect();
    if hashes.is_empty() {
        return None;
    }
    let bundle = doc.document().bundle(hashes).ok()?.bytes().to_vec();
    Some((bundle, doc.get_heads().into_iter().map(|h| h.0).collect()))
}

/// The attachment upload route with a body and query from the fuzzer, through the router of a
/// real server on a SQLite file (signed in as a field officer): `data` is the query string, a
/// newline, then the chunk.
pub fn attachment_upload(data: &[u8]) {
    use tower::ServiceExt;
    let (runtime, router, token) = upload_world();
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (query, body) = (String::from_utf8_lossy(&data[..split]), data.get(split + 1..).unwrap_or(&[]));
    let sha = if query.starts_with('!') {
        "0".repeat(64)
    } else {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(body))
    };
    let uri = format!("/api/v1/attachments/{sha}?{}", query.trim_start_matches('!'));
    let Ok(request) = axum::http::Request::put(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::from(body.to_vec()))
    else {
        return;
    };
    runtime.block_on(async {
        let Ok(response) = router.clone().oneshot(request).await;
        assert!(response.status().as_u16() < 500, "upload answered {}", response.status());
    });
}

fn upload_world() -> &'static (tokio::runtime::Runtime, axum::Router, String) {
    static WORLD: OnceLock<(tokio::runtime::Runtime, axum::Router, String)> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let path = std::env::temp_dir().join(format!("diaban-fuzz-upload-{}.sqlite", std::process::id()));
        let (router, token) = runtime.block_on(async {
            let db = crate::store::Db::open(&path.to_string_lossy()).await.expect("a fuzz database");
            db.create_unit(&crate::store::Unit {
                code: "14".into(),
                name: "Tỉnh".into(),
                level: "province".into(),
                parent_code: None,
            })
            .await
            .expect("unit");
            db.create_user("canbo", "Cán bộ", "mat-khau-dai", Role::FieldOfficer, "14").await.expect("user");
            let (user, _) = db.user_for_login("canbo").await.expect("read").expect("the user");
            let token = crate::domain::auth::new_token().expect("randomness");
            db.register_device(
                &user,
                "fuzz",
                &ActorId::random().to_hex_string(),
                &crate::domain::auth::token_hash(&token),
            )
            .await
            .expect("device");
            (crate::http::router(crate::http::AppState::new(db, false)), token)
        });
        (runtime, router, token)
    })
}
