//! The app lock: with a PIN set, the store's data opens only with both the host's key and the
//! PIN; the PIN changes without re-encrypting anything; an idle store locks itself; too many
//! wrong PINs wipe the store.

mod common;

use diaban_core::{Device, DeviceError};

use common::Server;

const HOST_KEY: [u8; 32] = common::KEY;

async fn sealed_docs(path: &std::path::Path) -> Vec<Vec<u8>> {
    use sqlx::Connection;
    let mut conn =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", path.display())).await.expect("open");
    let docs: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT doc FROM records ORDER BY id").fetch_all(&mut conn).await.expect("docs");
    docs
}

#[tokio::test]
async fn the_data_opens_only_with_the_host_key_and_the_pin() {
    let server = Server::start();
    let url = server.url.clone();
    let url = url.as_str();
    let path = server.dir.path().join("phone.sqlite");
    let device = server.phone("a", "phone").await;
    let record = device.create_record("propaganda_session", None).await.expect("create");
    device.set_pin("2468").await.expect("set the PIN");
    assert!(matches!(device.set_pin("1357").await, Err(DeviceError::BadPin)), "a PIN is set once, then changed");
    device.close().await;

    // The host's key alone opens nothing.
    assert!(matches!(Device::open(&path, &HOST_KEY, url, "phone").await, Err(DeviceError::Locked)));
    let wrong = Device::open_with_pin(&path, &HOST_KEY, "0000", url, "phone").await;
    assert!(matches!(wrong, Err(DeviceError::WrongPin { left: 9 })), "{:?}", wrong.err());
    let other_host = Device::open_with_pin(&path, &[1; 32], "2468", url, "phone").await;
    assert!(matches!(other_host, Err(DeviceError::WrongPin { .. })), "another host key with the right PIN");
    let device = Device::open_with_pin(&path, &HOST_KEY, "2468", url, "phone").await.expect("the right PIN");
    assert!(device.record(&record).await.is_ok(), "the record reads");

    // A new PIN rewraps the key: no record is sealed anew.
    let before = sealed_docs(&path).await;
    device.change_pin("2468", "97531").await.expect("change");
    assert_eq!(sealed_docs(&path).await, before);
    device.close().await;
    assert!(matches!(
        Device::open_with_pin(&path, &HOST_KEY, "2468", url, "p").await,
        Err(DeviceError::WrongPin { .. })
    ));
    let device = Device::open_with_pin(&path, &HOST_KEY, "97531", url, "phone").await.expect("the new PIN");

    // Idle too long: locked until the PIN is entered again.
    device.set_idle_lock(1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(matches!(device.record(&record).await, Err(DeviceError::Locked)));
    assert!(device.is_locked());
    device.unlock("97531").await.expect("unlock");
    assert!(device.record(&record).await.is_ok());
    device.lock().expect("lock");
    assert!(device.is_locked());
    assert!(matches!(device.record(&record).await, Err(DeviceError::Locked)));
    device.close().await;
}

#[tokio::test]
async fn too_many_wrong_pins_wipe_the_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("phone.sqlite");
    let url = "http://127.0.0.1:9";
    let device = Device::open(&path, &HOST_KEY, url, "phone").await.expect("open");
    device.set_pin("2468").await.expect("set the PIN");
    device.close().await;
    for left in (1..diaban_core::lock::MAX_WRONG_PINS).rev() {
        let wrong = Device::open_with_pin(&path, &HOST_KEY, "1111", url, "phone").await;
        assert!(matches!(wrong, Err(DeviceError::WrongPin { left: l }) if l == left), "{:?}", wrong.err());
    }
    let last = Device::open_with_pin(&path, &HOST_KEY, "1111", url, "phone").await;
    assert!(matches!(last, Err(DeviceError::Wiped)), "{:?}", last.err());
    assert!(!path.exists(), "the store's file is gone");
    assert!(!DeviceError::Wiped.user_message("vi").is_empty());
}
