//! Encryption at rest on the device: XChaCha20-Poly1305 (RustCrypto) under a 256-bit key the
//! host app keeps in the Android Keystore or the iOS Keychain.
//!
//! A sealed value is `nonce (24 bytes) ‖ ciphertext ‖ tag`. The associated data names where the
//! value belongs (e.g. `record/<id>`), so a sealed blob moved to another row does not open.

use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const NONCE_LEN: usize = 24;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CryptoError {
    #[error("the encryption key must be 32 bytes (got {0})")]
    BadKey(usize),
    #[error("the data cannot be decrypted with this key, or it was altered")]
    Unreadable,
}

pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    pub fn new(key: &[u8]) -> Result<Sealer, CryptoError> {
        let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| CryptoError::BadKey(key.len()))?;
        Ok(Sealer { cipher })
    }

    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce = XNonce::generate();
        // Encryption with a valid key and a fresh nonce cannot fail for in-memory buffers.
        let ciphertext = self.cipher.encrypt(&nonce, Payload { msg: plaintext, aad }).unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&ciphertext);
        out
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Unreadable);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| CryptoError::Unreadable)?;
        self.cipher.decrypt(&nonce, Payload { msg: ciphertext, aad }).map_err(|_| CryptoError::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_place() {
        let sealer = Sealer::new(&[7u8; 32]).unwrap();
        let sealed = sealer.seal(b"record/1", "Lò Văn Sáng".as_bytes());
        assert_eq!(sealer.open(b"record/1", &sealed).unwrap(), "Lò Văn Sáng".as_bytes());
        assert_eq!(sealer.open(b"record/2", &sealed), Err(CryptoError::Unreadable));
        assert_eq!(Sealer::new(&[8u8; 32]).unwrap().open(b"record/1", &sealed), Err(CryptoError::Unreadable));
        assert_ne!(sealer.seal(b"record/1", b"x"), sealer.seal(b"record/1", b"x"), "fresh nonce each time");
        assert!(matches!(Sealer::new(&[1u8; 16]), Err(CryptoError::BadKey(16))));
        assert_eq!(sealer.open(b"record/1", b"short"), Err(CryptoError::Unreadable));
    }
}
