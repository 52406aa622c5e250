//! The app lock: opening the store's data needs both the host's key (Android Keystore, iOS
//! Keychain) and the officer's PIN.
//!
//! - Without a PIN the store is sealed with the host's key, as it always was.
//! - Setting a PIN seals the store once under a fresh random data key (every value re-sealed
//!   in one transaction) and keeps that key only wrapped: XChaCha20-Poly1305 under
//!   SHA-256(host key ‖ Argon2id(PIN, salt)). Changing the PIN rewraps the data key; no record
//!   is re-encrypted.
//! - A store with a PIN opens locked; `unlock(PIN)` opens it. Each wrong PIN is counted on
//!   disk; after [`MAX_WRONG_PINS`] the store is wiped.
//! - The app sets an idle timeout: the first use after it has passed finds the store locked
//!   again, and the data key gone from memory.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};

use crate::crypto::Sealer;
use crate::store::{Store, StoreError, attachment_aad, chunk_aad, record_aad, setting_aad};

/// Wrong PINs in a row before the store is wiped.
pub const MAX_WRONG_PINS: u32 = 10;
/// PIN length, in characters.
pub const PIN_CHARS: std::ops::RangeInclusive<usize> = 4..=32;

/// The key that opens the store's values, while it is open, and when it closes for being idle.
#[derive(Default)]
pub struct KeySlot {
    inner: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    sealer: Option<Arc<Sealer>>,
    idle: Option<Duration>,
    last_used: Option<Instant>,
}

impl KeySlot {
    /// The open store's sealer; the store closes first if it was idle too long.
    pub(crate) fn get(&self) -> Result<Arc<Sealer>, StoreError> {
        let mut slot = self.inner.lock().map_err(|_| StoreError::Locked)?;
        let now = Instant::now();
        if let (Some(idle), Some(last)) = (slot.idle, slot.last_used)
            && now.duration_since(last) >= idle
        {
            slot.sealer = None;
        }
        slot.last_used = Some(now);
        slot.sealer.clone().ok_or(StoreError::Locked)
    }

    pub(crate) fn set(&self, sealer: Option<Sealer>) {
        if let Ok(mut slot) = self.inner.lock() {
            slot.sealer = sealer.map(Arc::new);
            slot.last_used = Some(Instant::now());
        }
    }

    pub(crate) fn set_idle(&self, idle: Option<Duration>) {
        if let Ok(mut slot) = self.inner.lock() {
            slot.idle = idle;
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.get().is_ok()
    }
}

/// Why the lock refused.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("wrong PIN; {left} tries left before the phone's data is wiped")]
    WrongPin { left: u32 },
    #[error("too many wrong PINs: the phone's data was wiped")]
    Wiped,
    #[error("a PIN has {min} to {max} characters", min = PIN_CHARS.start(), max = PIN_CHARS.end())]
    BadPin,
    #[error("the store has no PIN")]
    NoPin,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for LockError {
    fn from(e: sqlx::Error) -> Self {
        LockError::Store(e.into())
    }
}

impl From<crate::crypto::CryptoError> for LockError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        LockError::Store(e.into())
    }
}

/// What is kept on disk of the lock (not secret: useless without the host's key and the PIN).
struct Envelope {
    salt: Vec<u8>,
    wrapped: Vec<u8>,
    wrong: u32,
}

fn kdf(pin: &str, salt: &[u8], host_key: &[u8]) -> Result<Sealer, LockError> {
    if !PIN_CHARS.contains(&pin.chars().count()) {
        return Err(LockError::BadPin);
    }
    let params = Params::new(19 * 1024, 2, 1, Some(32)).map_err(|_| LockError::BadPin)?;
    let mut stretched = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(pin.as_bytes(), salt, &mut stretched)
        .map_err(|_| LockError::BadPin)?;
    let wrap: [u8; 32] =
        Sha256::new().chain_update(b"diaban app lock").chain_update(host_key).chain_update(stretched).finalize().into();
    Ok(Sealer::new(&wrap).map_err(StoreError::from)?)
}

fn random<const N: usize>() -> Result<[u8; N], LockError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Damaged(format!("no randomness: {e}")))?;
    Ok(bytes)
}

const WRAP_AAD: &[u8] = b"app-lock/data-key";

impl Store {
    async fn envelope(&self) -> Result<Option<Envelope>, StoreError> {
        let row: Option<(Vec<u8>, Vec<u8>, i64)> =
            sqlx::query_as("SELECT salt, wrapped, wrong_pins FROM app_lock WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(salt, wrapped, wrong)| Envelope { salt, wrapped, wrong: wrong.max(0) as u32 }))
    }

    /// Whether the store has a PIN.
    pub async fn has_pin(&self) -> Result<bool, StoreError> {
        Ok(self.envelope().await?.is_some())
    }

    /// Opens a store that has a PIN. A wrong PIN is counted; the last allowed one wipes the
    /// store (the caller then deletes its files: [`LockError::Wiped`]).
    pub async fn unlock(&self, host_key: &[u8], pin: &str) -> Result<(), LockError> {
        let envelope = self.envelope().await?.ok_or(LockError::NoPin)?;
        let data_key = kdf(pin, &envelope.salt, host_key)?.open(WRAP_AAD, &envelope.wrapped);
        match data_key {
            Ok(key) => {
                sqlx::query("UPDATE app_lock SET wrong_pins = 0 WHERE id = 1").execute(&self.pool).await?;
                self.unseal(Sealer::new(&key)?).await?;
                Ok(())
            }
            Err(_) => {
                let wrong = envelope.wrong + 1;
                sqlx::query("UPDATE app_lock SET wrong_pins = ? WHERE id = 1")
                    .bind(i64::from(wrong))
                    .execute(&self.pool)
                    .await?;
                if wrong >= MAX_WRONG_PINS {
                    Err(LockError::Wiped)
                } else {
                    Err(LockError::WrongPin { left: MAX_WRONG_PINS - wrong })
                }
            }
        }
    }

    /// Sets the first PIN of an open store: its values are sealed anew under a random data key
    /// (one transaction), kept only wrapped by the host's key and the PIN.
    pub async fn set_pin(&self, host_key: &[u8], pin: &str) -> Result<(), LockError> {
        let old = self.sealer.get()?;
        let (salt, key) = (random::<16>()?, random::<32>()?);
        let wrapped = kdf(pin, &salt, host_key)?.seal(WRAP_AAD, &key);
        let new = Sealer::new(&key).map_err(StoreError::from)?;
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        reseal(&mut tx, &old, &new).await?;
        sqlx::query("INSERT INTO app_lock (id, salt, wrapped, wrong_pins) VALUES (1, ?, ?, 0)")
            .bind(salt.to_vec())
            .bind(wrapped)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        self.sealer.set(Some(new));
        Ok(())
    }

    /// Changes the PIN: the data key is unwrapped with the old PIN and wrapped with the new one;
    /// nothing else is rewritten.
    pub async fn change_pin(&self, host_key: &[u8], old_pin: &str, new_pin: &str) -> Result<(), LockError> {
        let envelope = self.envelope().await?.ok_or(LockError::NoPin)?;
        kdf(new_pin, &envelope.salt, host_key)?;
        self.unlock(host_key, old_pin).await?;
        let key = kdf(old_pin, &envelope.salt, host_key)?
            .open(WRAP_AAD, &envelope.wrapped)
            .map_err(|_| LockError::WrongPin { left: MAX_WRONG_PINS })?;
        let salt = random::<16>()?;
        let wrapped = kdf(new_pin, &salt, host_key)?.seal(WRAP_AAD, &key);
        sqlx::query("UPDATE app_lock SET salt = ?, wrapped = ?, wrong_pins = 0 WHERE id = 1")
            .bind(salt.to_vec())
            .bind(wrapped)
            .execute(&self.pool)
            .await
            .map_err(StoreError::from)?;
        Ok(())
    }

    /// Closes the store's values until the next unlock.
    pub fn lock(&self) {
        self.sealer.set(None);
    }

    /// Locks the store by itself once it has not been used for `idle` (`None`: never).
    pub fn set_idle_lock(&self, idle: Option<Duration>) {
        self.sealer.set_idle(idle);
    }

    pub fn is_unlocked(&self) -> bool {
        self.sealer.is_open()
    }
}

/// Every sealed value of the store, opened with `old` and sealed again with `new`.
async fn reseal(tx: &mut sqlx::SqliteConnection, old: &Sealer, new: &Sealer) -> Result<(), StoreError> {
    // (table, key column(s), value column, where the value belongs)
    type Place = fn(&[String]) -> String;
    let tables: [(&str, &str, &str, Place); 5] = [
        ("settings", "key", "value", |k| setting_aad(&k[0])),
        ("records", "id", "doc", |k| record_aad(&k[0])),
        ("record_chunks", "id, record_id", "data", |k| chunk_aad(&k[1])),
        ("attachments", "sha256", "data", |k| attachment_aad(&k[0])),
        ("download_chunks", "sha256, \"offset\"", "data", |k| format!("chunk/{}/{}", k[0], k[1])),
    ];
    for (table, keys, value, place) in tables {
        let key_columns: Vec<&str> = keys.split(", ").collect();
        let select = format!("SELECT {keys}, {value} FROM {table}");
        let rows = sqlx::query(sqlx::AssertSqlSafe(select)).fetch_all(&mut *tx).await?;
        for row in rows {
            use sqlx::Row;
            let ids: Vec<String> = (0..key_columns.len())
                .map(|i| row.try_get::<String, _>(i).or_else(|_| row.try_get::<i64, _>(i).map(|n| n.to_string())))
                .collect::<Result<_, _>>()?;
            let sealed: Vec<u8> = row.try_get(key_columns.len())?;
            let aad = place(&ids);
            let plain = old.open(aad.as_bytes(), &sealed)?;
            let condition: Vec<String> = key_columns.iter().map(|c| format!("{c} = ?")).collect();
            let update = format!("UPDATE {table} SET {value} = ? WHERE {}", condition.join(" AND "));
            let mut query = sqlx::query(sqlx::AssertSqlSafe(update)).bind(new.seal(aad.as_bytes(), &plain));
            for (i, id) in ids.iter().enumerate() {
                query = match row.try_get::<i64, _>(i) {
                    Ok(n) => query.bind(n),
                    Err(_) => query.bind(id.clone()),
                };
            }
            query.execute(&mut *tx).await?;
        }
    }
    Ok(())
}
