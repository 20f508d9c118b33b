//! Erasure by crypto-shredding, for store implementers. A personal field (`#[personal(subject
//! = other_field)]`) leaves the repository wrapped for sealing, `{"$es_seal": {"subject": s,
//! "value": v}}`; the store seals it with the subject's key (made on first use) as
//! `{"$es_sealed": {"subject": s, "nonce": .., "data": ..}}` (AES-256-GCM, a random nonce per
//! field, the subject and field name as associated data), and opens it on every read: the
//! value again, or `null` once the key was deleted by `forget`. The typed decode turns that
//! `null` into the field type's `Default`. Keys never leave the store and are never logged.
//! A subject named again after `forget` gets a new key; a store keeps when each key was made
//! and opens with [`open_recorded`], so the fields sealed under the deleted key, recorded
//! before the new one was made, still read as `null`.
//!
//! Only top-level fields of a payload are personal (fields of the event struct).

use std::borrow::Cow;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// The key of a field the repository asks the store to seal.
pub const SEAL: &str = "$es_seal";

/// The key of a field the store sealed.
pub const SEALED: &str = "$es_sealed";

/// One data subject's key: 256 bits. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectKey([u8; 32]);

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKey(..)")
    }
}

impl SubjectKey {
    /// A new random key, from the operating system's generator.
    #[must_use]
    pub fn generate() -> Self {
        Self(Aes256Gcm::generate_key(OsRng).into())
    }

    /// A key from its 32 bytes (as a store keeps it); `None` for another length.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    /// Its 32 bytes, for the store to keep.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The marker object of a top-level field (`{"$es_seal": {..}}`), if it is one.
fn marker<'a>(value: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    let object = value.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object.get(key)?.as_object()
}

fn subjects(payload: &Value, key: &str) -> Vec<String> {
    let mut subjects: Vec<String> = payload
        .as_object()
        .into_iter()
        .flat_map(|fields| fields.values())
        .filter_map(|v| marker(v, key)?.get("subject")?.as_str().map(str::to_owned))
        .collect();
    subjects.sort_unstable();
    subjects.dedup();
    subjects
}

/// The subjects whose fields an append must seal (sorted, once each).
#[must_use]
pub fn subjects_to_seal(payload: &Value) -> Vec<String> {
    subjects(payload, SEAL)
}

/// The subjects of the sealed fields of a stored payload (sorted, once each).
#[must_use]
pub fn sealed_subjects(payload: &Value) -> Vec<String> {
    subjects(payload, SEALED)
}

/// Whether a stored payload holds a sealed field.
#[must_use]
pub fn is_sealed(payload: &Value) -> bool {
    payload
        .as_object()
        .is_some_and(|fields| fields.values().any(|v| marker(v, SEALED).is_some()))
}

fn aad(subject: &str, field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(subject.len() + field.len() + 1);
    aad.extend_from_slice(subject.as_bytes());
    aad.push(0);
    aad.extend_from_slice(field.as_bytes());
    aad
}

/// Seals every field marked for sealing with its subject's key.
///
/// # Errors
///
/// A subject without a key (the store must have made one), or a value that does not
/// serialize.
pub fn seal<'k>(
    payload: &mut Value,
    key: impl Fn(&str) -> Option<&'k SubjectKey>,
) -> Result<(), String> {
    let Some(fields) = payload.as_object_mut() else {
        return Ok(());
    };
    for (field, value) in fields.iter_mut() {
        let Some(request) = marker(value, SEAL) else {
            continue;
        };
        let subject = request
            .get("subject")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("field `{field}` is marked for sealing without a subject"))?
            .to_owned();
        let plain = serde_json::to_vec(request.get("value").unwrap_or(&Value::Null))
            .map_err(|e| e.to_string())?;
        let subject_key =
            key(&subject).ok_or_else(|| format!("no key for a subject of `{field}`"))?;
        let cipher = Aes256Gcm::new(&subject_key.0.into());
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let data = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: &aad(&subject, field),
                },
            )
            .map_err(|_| format!("field `{field}` does not encrypt"))?;
        *value = json!({ SEALED: {
            "subject": subject,
            "nonce": BASE64.encode(nonce),
            "data": BASE64.encode(data),
        }});
    }
    Ok(())
}

/// Opens every sealed field: its value with the subject's key, `null` when the key is gone
/// (forgotten).
///
/// # Errors
///
/// A sealed field that does not decrypt with its subject's key (altered or corrupt); the
/// fields before it are opened.
pub fn open<'k>(
    payload: &mut Value,
    key: impl Fn(&str) -> Option<&'k SubjectKey>,
) -> Result<(), String> {
    open_with(payload, key, |_| false)
}

/// Keys by subject as a store keeps them, each with when it was made (a subject named
/// again after `forget` has a new key): what [`open_recorded`] opens with.
pub type DatedKeys = std::collections::HashMap<String, (SubjectKey, DateTime<Utc>)>;

/// A subject's key in `keys`, for [`seal`].
#[must_use]
pub fn key_of<'k>(keys: &'k DatedKeys, subject: &str) -> Option<&'k SubjectKey> {
    keys.get(subject).map(|(key, _)| key)
}

/// A subject's key in `keys` and when it was made, for [`open_recorded`].
#[must_use]
pub fn dated_key_of<'k>(
    keys: &'k DatedKeys,
    subject: &str,
) -> Option<(&'k SubjectKey, DateTime<Utc>)> {
    keys.get(subject).map(|(key, made)| (key, *made))
}

/// [`open`] for a record stored at `recorded_at`, with each subject's key and the time it
/// was made. A subject forgotten and then named again has a new key: its fields recorded
/// before that key was made were sealed under the deleted one, so one that does not
/// decrypt under the new key reads as `null` (forgotten), not as an error.
///
/// # Errors
///
/// A sealed field that does not decrypt with a key made at or before `recorded_at`.
pub fn open_recorded<'k>(
    payload: &mut Value,
    recorded_at: DateTime<Utc>,
    key: impl Fn(&str) -> Option<(&'k SubjectKey, DateTime<Utc>)>,
) -> Result<(), String> {
    open_with(
        payload,
        |s| key(s).map(|(k, _)| k),
        |s| key(s).is_some_and(|(_, made)| made > recorded_at),
    )
}

/// [`open`], with `newer(subject)`: whether the subject's key was made after the record
/// (a field that does not decrypt under it then reads as forgotten).
fn open_with<'k>(
    payload: &mut Value,
    key: impl Fn(&str) -> Option<&'k SubjectKey>,
    newer: impl Fn(&str) -> bool,
) -> Result<(), String> {
    let Some(fields) = payload.as_object_mut() else {
        return Ok(());
    };
    for (field, value) in fields.iter_mut() {
        let Some(sealed) = marker(value, SEALED) else {
            continue;
        };
        let part = |name: &str| sealed.get(name).and_then(Value::as_str);
        let (Some(subject), Some(nonce), Some(data)) =
            (part("subject"), part("nonce"), part("data"))
        else {
            return Err(format!(
                "sealed field `{field}` lacks its subject, nonce or data"
            ));
        };
        let Some(subject_key) = key(subject) else {
            *value = Value::Null;
            continue;
        };
        let opened = (|| {
            let nonce: [u8; 12] = BASE64.decode(nonce).ok()?.try_into().ok()?;
            let data = BASE64.decode(data).ok()?;
            let cipher = Aes256Gcm::new(&subject_key.0.into());
            let plain = cipher
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: &data,
                        aad: &aad(subject, field),
                    },
                )
                .ok()?;
            serde_json::from_slice::<Value>(&plain).ok()
        })();
        match opened {
            Some(plain) => *value = plain,
            None if newer(subject) => *value = Value::Null,
            None => return Err(format!("sealed field `{field}` does not decrypt")),
        }
    }
    Ok(())
}

/// A payload as the repository wrote it with its sealing requests replaced by their
/// values: what the store gives back once opened (for recognising a retried append).
#[must_use]
pub fn plain(payload: &Value) -> Cow<'_, Value> {
    let Some(fields) = payload.as_object() else {
        return Cow::Borrowed(payload);
    };
    if !fields.values().any(|v| marker(v, SEAL).is_some()) {
        return Cow::Borrowed(payload);
    }
    let mut copy = fields.clone();
    for value in copy.values_mut() {
        if let Some(request) = marker(value, SEAL) {
            *value = request.get("value").cloned().unwrap_or(Value::Null);
        }
    }
    Cow::Owned(Value::Object(copy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_fields_open_with_their_key_and_read_null_without_it() {
        let key = SubjectKey::generate();
        let mut payload = json!({
            "customer": "c-1",
            "owner": { SEAL: { "subject": "c-1", "value": "Ada Lovelace" } },
        });
        assert_eq!(subjects_to_seal(&payload), ["c-1"]);
        seal(&mut payload, |_| Some(&key)).expect("seals");
        let text = payload.to_string();
        assert!(!text.contains("Ada"), "{text}");
        assert!(is_sealed(&payload));
        assert_eq!(sealed_subjects(&payload), ["c-1"]);

        let mut opened = payload.clone();
        open(&mut opened, |_| Some(&key)).expect("opens");
        assert_eq!(
            opened,
            json!({ "customer": "c-1", "owner": "Ada Lovelace" })
        );

        let mut forgotten = payload.clone();
        open(&mut forgotten, |_| None).expect("opens to null");
        assert_eq!(forgotten, json!({ "customer": "c-1", "owner": null }));

        // Another key, or the ciphertext moved to another field, does not open.
        let other = SubjectKey::generate();
        assert!(open(&mut payload.clone(), |_| Some(&other)).is_err());
        let mut moved = payload.clone();
        let sealed = moved["owner"].take();
        moved["name"] = sealed;
        assert!(open(&mut moved, |_| Some(&key)).is_err());
        assert_eq!(format!("{key:?}"), "SubjectKey(..)");
    }

    #[test]
    fn a_field_sealed_before_its_subjects_key_was_made_reads_as_forgotten() {
        let (old, new) = (SubjectKey::generate(), SubjectKey::generate());
        let mut sealed = json!({ "owner": { SEAL: { "subject": "c-1", "value": "Ada" } } });
        seal(&mut sealed, |_| Some(&old)).expect("seals");
        let recorded = DateTime::from_timestamp(1_000, 0).expect("a time");
        let later = DateTime::from_timestamp(2_000, 0).expect("a time");

        let mut opened = sealed.clone();
        open_recorded(&mut opened, recorded, |_| Some((&old, recorded))).expect("opens");
        assert_eq!(opened, json!({ "owner": "Ada" }));
        // Forgotten, then named again: the new key was made after the record.
        let mut renamed = sealed.clone();
        open_recorded(&mut renamed, recorded, |_| Some((&new, later))).expect("forgotten");
        assert_eq!(renamed, json!({ "owner": null }));
        // A key made at or before the record that does not open it: altered, an error.
        assert!(open_recorded(&mut sealed.clone(), later, |_| Some((&new, recorded))).is_err());
        assert!(open_recorded(&mut sealed.clone(), recorded, |_| Some((&new, recorded))).is_err());
    }
}
