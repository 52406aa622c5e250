//! Deactivation and remote wipe, against a real server: a deactivated phone sends its unsent
//! work one last time and then erases its store; a stolen one sends nothing more and erases
//! its store at its next contact; both confirm, and the server shows when.

mod common;

use diaban_core::{DeviceError, FieldValue};

use common::Server;

fn device_id(server: &Server) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_diaban"))
        .args(["--db", &server.db, "admin", "list-devices"])
        .output()
        .expect("list devices");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("a device").to_owned()
}

async fn unsent_session(server: &Server, name: &str) -> (diaban_core::Device, String) {
    let phone = server.phone("a", name).await;
    let record = phone.create_record("propaganda_session", None).await.expect("create");
    phone.set_field(&record, "place", FieldValue::Text("Bản Nà Sản".into())).await.expect("answer");
    (phone, record)
}

#[tokio::test]
async fn a_deactivated_phone_sends_what_is_left_then_wipes_and_confirms() {
    let server = Server::start();
    let (phone, _) = unsent_session(&server, "deactivated").await;
    let id = device_id(&server);
    common::diaban(&server.db, &["admin", "deactivate-device", "--id", &id]);
    assert!(matches!(phone.sync().await, Err(DeviceError::WipeOrdered)));
    assert!(!server.dir.path().join("deactivated.sqlite").exists(), "the store is gone");
    assert_eq!(server.count("SELECT COUNT(*) FROM records").await, 1, "its unsent record was taken first");
    assert_eq!(
        server
            .count("SELECT COUNT(*) FROM devices WHERE wipe_confirmed_at IS NOT NULL AND revoked_at IS NOT NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn a_stolen_phone_sends_nothing_more_and_wipes_at_its_next_contact() {
    let server = Server::start();
    let (phone, _) = unsent_session(&server, "stolen").await;
    let id = device_id(&server);
    common::diaban(&server.db, &["admin", "report-stolen", "--id", &id]);
    assert!(matches!(phone.wait_for_changes(0).await, Err(DeviceError::WipeOrdered)));
    assert!(!server.dir.path().join("stolen.sqlite").exists());
    assert_eq!(server.count("SELECT COUNT(*) FROM records").await, 0, "nothing was taken from it");
    assert_eq!(
        server.count("SELECT COUNT(*) FROM devices WHERE wipe = 'stolen' AND wipe_confirmed_at IS NOT NULL").await,
        1
    );
    assert!(DeviceError::WipeOrdered.user_message("vi").contains("thu hồi"));
}
