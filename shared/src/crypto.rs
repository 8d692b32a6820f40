//! Encrypted flag payloads (flag-management-rules.md §5.7): Fernet tokens, keys from configuration.
//!
//! `FLAG_PAYLOAD_ENCRYPTION_KEY` holds one or more comma-separated Fernet keys (URL-safe base64
//! of 32 bytes). The first encrypts; any decrypts, so keys can be rotated.

use fernet::{Fernet, MultiFernet};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::flag::ENCRYPTED_SENTINEL;
use crate::flag::filters::{Filters, payloads_mut};

pub struct PayloadCipher {
    fernet: Option<MultiFernet>,
}

impl std::fmt::Debug for PayloadCipher {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadCipher")
            .field("configured", &self.fernet.is_some())
            .finish()
    }
}

impl PayloadCipher {
    pub fn from_env() -> Self {
        Self::from_keys(&std::env::var("FLAG_PAYLOAD_ENCRYPTION_KEY").unwrap_or_default())
    }

    /// Unparseable keys are skipped (and logged), never echoed.
    pub fn from_keys(keys: &str) -> Self {
        let parsed: Vec<Fernet> = keys
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .filter_map(|k| {
                let f = Fernet::new(k);
                if f.is_none() {
                    tracing::warn!("ignoring a malformed FLAG_PAYLOAD_ENCRYPTION_KEY entry");
                }
                f
            })
            .collect();
        PayloadCipher {
            fernet: (!parsed.is_empty()).then(|| MultiFernet::new(parsed)),
        }
    }

    /// Encrypts every payload value (JSON text) in place. An echoed sentinel keeps the value
    /// already stored under that key, so clients can send back what they read.
    pub fn encrypt_payloads(&self, filters: &mut Value, stored: Option<&Value>) -> ApiResult<()> {
        let Some(payloads) = payloads_mut(filters) else {
            return Ok(());
        };
        if payloads.is_empty() {
            return Ok(());
        }
        let fernet = self.fernet.as_ref().ok_or_else(|| {
            ApiError::invalid(
                "has_encrypted_payloads",
                "Encrypted payloads are not available: this server has no payload encryption key configured.",
            )
        })?;
        for (variant, value) in payloads.iter_mut() {
            let text = value.as_str().unwrap_or_default().to_string();
            let kept = stored
                .and_then(|s| Filters::of(s).payloads())
                .and_then(|p| p.get(variant))
                .filter(|_| text == ENCRYPTED_SENTINEL);
            *value = match kept {
                Some(previous) => previous.clone(),
                None => Value::String(fernet.encrypt(text.as_bytes())),
            };
        }
        Ok(())
    }

    /// Filters as a reader may see them: decrypted payload texts, or the sentinel for each.
    pub fn reveal(&self, filters: &Value, decrypt: bool) -> Value {
        let mut shown = filters.clone();
        if let Some(payloads) = payloads_mut(&mut shown) {
            for value in payloads.values_mut() {
                let clear = decrypt.then(|| self.decrypt(value.as_str()?)).flatten();
                *value = Value::String(clear.unwrap_or_else(|| ENCRYPTED_SENTINEL.to_string()));
            }
        }
        shown
    }

    fn decrypt(&self, token: &str) -> Option<String> {
        let bytes = self.fernet.as_ref()?.decrypt(token).ok()?;
        String::from_utf8(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cipher() -> PayloadCipher {
        PayloadCipher::from_keys(&Fernet::generate_key())
    }

    #[test]
    fn round_trip_and_sentinel() {
        let c = cipher();
        let mut filters = json!({"groups": [], "payloads": {"true": "{\"a\": 1}"}});
        c.encrypt_payloads(&mut filters, None).unwrap();
        let token = filters["payloads"]["true"].as_str().unwrap().to_string();
        assert_ne!(token, "{\"a\": 1}");
        assert_eq!(c.reveal(&filters, true)["payloads"]["true"], "{\"a\": 1}");
        assert_eq!(
            c.reveal(&filters, false)["payloads"]["true"],
            ENCRYPTED_SENTINEL
        );
        // The sentinel is itself valid JSON, so clients can echo it back.
        assert!(serde_json::from_str::<Value>(ENCRYPTED_SENTINEL).is_ok());
    }

    #[test]
    fn echoed_sentinel_keeps_stored_ciphertext() {
        let c = cipher();
        let mut stored = json!({"payloads": {"true": "\"x\""}});
        c.encrypt_payloads(&mut stored, None).unwrap();
        let mut echoed = json!({"payloads": {"true": ENCRYPTED_SENTINEL}});
        c.encrypt_payloads(&mut echoed, Some(&stored)).unwrap();
        assert_eq!(echoed, stored);
    }

    #[test]
    fn rotation_decrypts_with_old_key() {
        let old = Fernet::generate_key();
        let mut filters = json!({"payloads": {"true": "1"}});
        PayloadCipher::from_keys(&old)
            .encrypt_payloads(&mut filters, None)
            .unwrap();
        let rotated = PayloadCipher::from_keys(&format!("{},{}", Fernet::generate_key(), old));
        assert_eq!(rotated.reveal(&filters, true)["payloads"]["true"], "1");
    }

    #[test]
    fn unconfigured_server_refuses_to_store_plaintext_as_encrypted() {
        let c = PayloadCipher::from_keys("not-a-key");
        let mut filters = json!({"payloads": {"true": "1"}});
        let err = c.encrypt_payloads(&mut filters, None).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(!format!("{c:?}").contains("not-a-key"));
    }
}
