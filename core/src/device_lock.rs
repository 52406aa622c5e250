//! The app lock on the device API ([`crate::lock`]): open a store that has a PIN, unlock it
//! after an idle timeout, set and change the PIN, lock now. After too many wrong PINs the
//! store's files are deleted; so they are when an admin orders the device wiped (a
//! deactivated or stolen phone), which the device then confirms to the server.

use std::path::Path;
use std::time::Duration;

use crate::device::{Device, DeviceError};
use crate::lock::LockError;
use crate::store::Store;

impl From<LockError> for DeviceError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::WrongPin { left } => DeviceError::WrongPin { left },
            LockError::Wiped => DeviceError::Wiped,
            LockError::BadPin | LockError::NoPin => DeviceError::BadPin,
            LockError::Store(e) => e.into(),
        }
    }
}

/// Deletes a store's files: the database and its write-ahead log.
async fn wipe(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = tokio::fs::remove_file(Path::new(&file)).await;
    }
}

impl Device {
    /// Opens a store that has a PIN with the host's `key` and the officer's `pin`. A wrong PIN
    /// gives [`DeviceError::WrongPin`] with the tries left; the last one wipes the store
    /// ([`DeviceError::Wiped`]).
    pub async fn open_with_pin(
        path: &Path,
        key: &[u8],
        pin: &str,
        server_url: &str,
        device_name: &str,
    ) -> Result<Device, DeviceError> {
        let store = Store::open_closed(path).await?;
        match store.unlock(key, pin).await {
            Ok(()) => Device::with_store(store, path, key, server_url, device_name).await,
            Err(LockError::Wiped) => {
                store.close().await;
                wipe(path).await;
                Err(DeviceError::Wiped)
            }
            Err(e) => {
                store.close().await;
                Err(e.into())
            }
        }
    }

    /// Opens the store again after it locked itself (idle) or was locked.
    pub async fn unlock(&self, pin: &str) -> Result<(), DeviceError> {
        match self.store.unlock(&self.host_key, pin).await {
            Err(LockError::Wiped) => {
                self.store.lock();
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.store.pool).await.ok();
                self.store.pool.close().await;
                wipe(&self.path).await;
                Err(DeviceError::Wiped)
            }
            other => Ok(other?),
        }
    }

    /// Sets the officer's PIN on a store that has none: from now on its data opens only with
    /// both the host's key and the PIN. (Its values are sealed anew once.)
    pub async fn set_pin(&self, pin: &str) -> Result<(), DeviceError> {
        if self.store.has_pin().await? {
            return Err(DeviceError::BadPin);
        }
        Ok(self.store.set_pin(&self.host_key, pin).await?)
    }

    /// Changes the PIN; no record is re-encrypted.
    pub async fn change_pin(&self, old_pin: &str, new_pin: &str) -> Result<(), DeviceError> {
        Ok(self.store.change_pin(&self.host_key, old_pin, new_pin).await?)
    }

    /// Locks the store now (the data key leaves memory); [`Device::unlock`] opens it.
    pub fn lock(&self) -> Result<(), DeviceError> {
        self.store.lock();
        Ok(())
    }

    /// Locks the store by itself once it has not been used for `seconds` (0: never).
    pub fn set_idle_lock(&self, seconds: u64) {
        self.store.set_idle_lock((seconds > 0).then(|| Duration::from_secs(seconds)));
    }

    /// Whether the store is locked now (a PIN must be entered).
    pub fn is_locked(&self) -> bool {
        !self.store.is_unlocked()
    }

    /// Whether the store has a PIN.
    pub async fn has_pin(&self) -> Result<bool, DeviceError> {
        Ok(self.store.has_pin().await?)
    }
}

impl Device {
    /// Carries out an admin's order to wipe this device, met in `result`: the store's files
    /// (records, attachments, settings, the sealed key material) are deleted, then the wipe is
    /// confirmed to the server. Any other result passes through.
    pub(crate) async fn obey<T>(&self, result: Result<T, DeviceError>) -> Result<T, DeviceError> {
        let Err(DeviceError::WipeOrdered) = result else { return result };
        let token = self.store.setting(crate::device::TOKEN_KEY).await.ok().flatten();
        self.store.lock();
        self.store.pool.close().await;
        wipe(&self.path).await;
        if let Some(token) = token {
            // Best effort: a wiped phone that cannot confirm leaves the order shown as waiting.
            let _ = self.transport.post_no_answer(crate::protocol::WIPED_PATH, &token).await;
        }
        tracing::warn!("the store was wiped as an administrator ordered");
        Err(DeviceError::WipeOrdered)
    }
}
