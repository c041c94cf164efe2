//! Encryption at rest for stored prompt and completion text.
//!
//! A [`Cipher`] holds one primary key, which seals every new value, and any
//! number of old keys, which still open what they sealed (key rotation).
//! Values are sealed with AES-256-GCM (`ring::aead`) under a random 96-bit
//! nonce, and stored as
//!
//! ```text
//! enc:v1:<kid>:<base64(nonce || ciphertext || tag)>
//! ```
//!
//! where `kid` is the key's id: the first 8 bytes, in hex, of SHA-256 over
//! a fixed label and the key, so the stored form names its key without
//! revealing it, and operators never have to assign ids by hand. The
//! associated data binds each value to its place (table, column, tenant and
//! row id), so a ciphertext copied into another row, column or tenant fails
//! to open instead of being read as that row's text.
//!
//! Plain text whose first characters are `enc:` is stored with an
//! `enc:raw:` prefix (see [`seal`]), so text a user submits can never be
//! mistaken for a sealed value, whether or not a key is configured.
//!
//! The store is the only place that seals and opens: callers hand it plain
//! text and get plain text back.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The prefix of every sealed value.
pub const SEALED_PREFIX: &str = "enc:v1:";
/// The prefix of plain text that would otherwise begin with `enc:`.
const RAW_PREFIX: &str = "enc:raw:";
/// What plain text is escaped for.
const RESERVED: &str = "enc:";
/// AES-256 keys are 32 bytes.
pub const KEY_LEN: usize = 32;
/// The GCM tag's length.
const TAG_LEN: usize = 16;

/// Why a value could not be sealed or opened, or a key not loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CipherError {
    /// The stored value names a key this process was not given.
    #[error(
        "{place}: stored text is encrypted with key id {kid}, which is not configured \
         (add it to storage.encryption.old_keys)"
    )]
    UnknownKey {
        /// The key id in the stored value.
        kid: String,
        /// Where the value was read (table.column).
        place: String,
    },
    /// The value failed authentication: tampered with, moved from another
    /// row, or sealed by a different key with the same id.
    #[error("{place}: stored text fails authentication (tampered with or moved from another row)")]
    Tampered {
        /// Where the value was read (table.column).
        place: String,
    },
    /// The stored value starts like a sealed one but is not well formed.
    #[error("{place}: malformed encrypted value: {why}")]
    Malformed {
        /// Where the value was read (table.column).
        place: String,
        /// What is wrong.
        why: String,
    },
    /// A key source could not be read or does not hold a 32-byte key.
    #[error("{source_name}: {why}")]
    Key {
        /// The key source (`storage.encryption.key_env (VAR)`, or the file).
        source_name: String,
        /// Why (never the key itself).
        why: String,
    },
    /// The system random generator failed.
    #[error("random number generator failed")]
    Random,
}

/// Where a value lives: the associated data it is sealed with.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// The table.
    pub table: &'a str,
    /// The column (or `column.json.path` for a field inside a JSON column).
    pub column: &'a str,
    /// The row's tenant.
    pub tenant: &'a str,
    /// The row's id within the tenant.
    pub id: &'a str,
}

impl Place<'_> {
    /// The associated data: a version label and the fields, each
    /// length-prefixed so no two places share an encoding.
    fn aad(&self) -> Vec<u8> {
        let mut out = b"llmsec-store/v1".to_vec();
        for part in [self.table, self.column, self.tenant, self.id] {
            out.extend_from_slice(&(part.len() as u64).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }

    fn name(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }
}

/// One AES-256-GCM key and its id.
struct Key {
    kid: String,
    key: LessSafeKey,
}

/// The keys that seal and open stored text: the primary (first) seals, all
/// open. Key bytes are zeroised once the AES key schedule is built; the
/// schedule itself lives inside `ring`, which does not zeroise it.
pub struct Cipher {
    keys: Vec<Key>,
    rng: SystemRandom,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ids only: they name keys without revealing them.
        f.debug_struct("Cipher").field("kids", &self.kids()).finish()
    }
}

/// A key's id: hex of the first 8 bytes of SHA-256 over a label and the key.
fn key_id(key: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"llmsec-store key id\0");
    h.update(key);
    hex::encode(&h.finalize()[..8])
}

impl Cipher {
    /// A cipher over raw 32-byte keys, primary first. Fails when there is
    /// no key or one is not 32 bytes.
    pub fn new(primary: &[u8], old: &[&[u8]]) -> Result<Cipher, CipherError> {
        let mut keys = Vec::with_capacity(1 + old.len());
        for (i, raw) in std::iter::once(primary).chain(old.iter().copied()).enumerate() {
            let source_name = if i == 0 { "primary key".to_owned() } else { format!("old key {i}") };
            if raw.len() != KEY_LEN {
                return Err(CipherError::Key {
                    source_name,
                    why: format!("must be {KEY_LEN} bytes, got {}", raw.len()),
                });
            }
            let kid = key_id(raw);
            if keys.iter().any(|k: &Key| k.kid == kid) {
                continue;
            }
            let unbound = UnboundKey::new(&AES_256_GCM, raw)
                .map_err(|_| CipherError::Key { source_name, why: "rejected by AES-256-GCM".into() })?;
            keys.push(Key { kid, key: LessSafeKey::new(unbound) });
        }
        Ok(Cipher { keys, rng: SystemRandom::new() })
    }

    /// The primary key's id (new values are sealed with it).
    pub fn primary_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// Every key's id, primary first.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    /// Seals `plain` for `place` with the primary key.
    pub fn seal(&self, plain: &str, place: &Place<'_>) -> Result<String, CipherError> {
        let primary = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| CipherError::Random)?;
        let mut body = Zeroizing::new(Vec::with_capacity(plain.len() + TAG_LEN));
        body.extend_from_slice(plain.as_bytes());
        primary
            .key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(place.aad()), &mut *body)
            .map_err(|_| CipherError::Malformed { place: place.name(), why: "too long to seal".into() })?;
        let mut out = Vec::with_capacity(NONCE_LEN + body.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(format!("{SEALED_PREFIX}{}:{}", primary.kid, STANDARD.encode(&out)))
    }

    /// Opens a sealed value (`enc:v1:…`) read from `place`.
    pub fn open(&self, stored: &str, place: &Place<'_>) -> Result<String, CipherError> {
        let sealed = parse_sealed(stored).map_err(|why| CipherError::Malformed { place: place.name(), why })?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == sealed.kid)
            .ok_or_else(|| CipherError::UnknownKey { kid: sealed.kid.to_owned(), place: place.name() })?;
        let (nonce, rest) = sealed.bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] =
            nonce.try_into().map_err(|_| CipherError::Malformed { place: place.name(), why: "nonce".into() })?;
        let mut rest = rest.to_vec();
        let plain = key
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(place.aad()), &mut rest)
            .map_err(|_| CipherError::Tampered { place: place.name() })?;
        String::from_utf8(plain.to_vec())
            .map_err(|_| CipherError::Malformed { place: place.name(), why: "not UTF-8".into() })
    }
}

/// A stored value taken apart (not yet authenticated).
#[derive(Debug, PartialEq, Eq)]
pub struct Sealed<'a> {
    /// The key id.
    pub kid: &'a str,
    /// Nonce, ciphertext and tag.
    pub bytes: Vec<u8>,
}

/// Parses `enc:v1:<kid>:<base64>`: the kid is 1–64 ASCII letters, digits,
/// `-` or `_`; the payload holds at least a nonce and a tag.
pub fn parse_sealed(stored: &str) -> Result<Sealed<'_>, String> {
    let rest = stored.strip_prefix(SEALED_PREFIX).ok_or("missing enc:v1: prefix")?;
    let (kid, payload) = rest.split_once(':').ok_or("missing key id")?;
    if kid.is_empty() || kid.len() > 64 || !kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err("bad key id".into());
    }
    let bytes = STANDARD.decode(payload).map_err(|e| format!("base64: {e}"))?;
    if bytes.len() < NONCE_LEN + TAG_LEN {
        return Err(format!("{} bytes is shorter than a nonce and a tag", bytes.len()));
    }
    Ok(Sealed { kid, bytes })
}

/// Whether a stored value is sealed (with any key).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// Whether a stored value is sealed with the key `kid`.
pub fn is_sealed_with(stored: &str, kid: &str) -> bool {
    stored.strip_prefix(SEALED_PREFIX).and_then(|r| r.strip_prefix(kid)).is_some_and(|r| r.starts_with(':'))
}

/// The stored form of `plain` at `place`: sealed when there is a cipher,
/// else the text itself (escaped with `enc:raw:` when it begins `enc:`).
pub fn seal(cipher: Option<&Cipher>, plain: &str, place: &Place<'_>) -> Result<String, CipherError> {
    match cipher {
        Some(c) => c.seal(plain, place),
        None if plain.starts_with(RESERVED) => Ok(format!("{RAW_PREFIX}{plain}")),
        None => Ok(plain.to_owned()),
    }
}

/// The plain text of a stored value read from `place`: opened when sealed
/// (an error when no configured key opens it), unescaped when escaped,
/// else the value itself (text stored before encryption was turned on).
pub fn open(cipher: Option<&Cipher>, stored: &str, place: &Place<'_>) -> Result<String, CipherError> {
    if let Some(raw) = stored.strip_prefix(RAW_PREFIX) {
        return Ok(raw.to_owned());
    }
    if !is_sealed(stored) {
        return Ok(stored.to_owned());
    }
    match cipher {
        Some(c) => c.open(stored, place),
        None => {
            let kid =
                parse_sealed(stored).map_err(|why| CipherError::Malformed { place: place.name(), why })?.kid.to_owned();
            Err(CipherError::UnknownKey { kid, place: place.name() })
        }
    }
}

/// Where a key comes from: an environment variable or a file holding 32
/// bytes as base64 or hex (surrounding whitespace ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySource {
    /// The environment variable that holds the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_env: Option<String>,
    /// The file that holds the key (owner-only, like any secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<std::path::PathBuf>,
}

/// `[storage.encryption]`: the primary key's source, and the old keys
/// still accepted for reading (rotation: see docs/CONFIGURATION.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    /// The environment variable holding the primary key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_env: Option<String>,
    /// The file holding the primary key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<std::path::PathBuf>,
    /// Keys that only open values sealed before a rotation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub old_keys: Vec<KeySource>,
}

impl EncryptionConfig {
    /// Loads every key (`env` reads environment variables) and builds the
    /// cipher. Errors name the key source, never the key.
    pub fn build(&self, env: impl Fn(&str) -> Option<String>) -> Result<Cipher, CipherError> {
        let primary = KeySource { key_env: self.key_env.clone(), key_file: self.key_file.clone() };
        let primary = load_key(&primary, "storage.encryption", &env)?;
        let mut old = Vec::with_capacity(self.old_keys.len());
        for (i, s) in self.old_keys.iter().enumerate() {
            old.push(load_key(s, &format!("storage.encryption.old_keys[{i}]"), &env)?);
        }
        let old_refs: Vec<&[u8]> = old.iter().map(|k| k.as_slice()).collect();
        Cipher::new(&primary, &old_refs)
    }
}

/// Reads and decodes one key.
fn load_key(
    source: &KeySource,
    field: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Zeroizing<Vec<u8>>, CipherError> {
    let (source_name, text) = match (&source.key_env, &source.key_file) {
        (Some(var), None) => {
            let name = format!("{field}.key_env ({var})");
            let text = env(var)
                .map(Zeroizing::new)
                .ok_or_else(|| CipherError::Key { source_name: name.clone(), why: "is not set".into() })?;
            (name, text)
        }
        (None, Some(path)) => {
            let name = format!("{field}.key_file ({})", path.display());
            let text = std::fs::read_to_string(path)
                .map(Zeroizing::new)
                .map_err(|e| CipherError::Key { source_name: name.clone(), why: e.to_string() })?;
            (name, text)
        }
        (Some(_), Some(_)) => {
            return Err(CipherError::Key {
                source_name: field.to_owned(),
                why: "set key_env or key_file, not both".into(),
            });
        }
        (None, None) => {
            return Err(CipherError::Key { source_name: field.to_owned(), why: "set key_env or key_file".into() });
        }
    };
    decode_key(&text).map_err(|why| CipherError::Key { source_name, why })
}

/// A 32-byte key from 64 hex digits or base64 (padded or not).
pub fn decode_key(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let t = text.trim();
    let bytes = if t.len() == 2 * KEY_LEN && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Zeroizing::new(hex::decode(t).map_err(|_| "not valid hex".to_owned())?)
    } else {
        Zeroizing::new(
            STANDARD
                .decode(t)
                .or_else(|_| STANDARD_NO_PAD.decode(t))
                .map_err(|_| "must be 32 bytes as base64 or 64 hex digits".to_owned())?,
        )
    };
    if bytes.len() != KEY_LEN {
        return Err(format!("must be 32 bytes as base64 or 64 hex digits (decodes to {} bytes)", bytes.len()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const K1: [u8; 32] = [7; 32];
    const K2: [u8; 32] = [9; 32];

    fn place<'a>(tenant: &'a str, id: &'a str) -> Place<'a> {
        Place { table: "security_events", column: "input", tenant, id }
    }

    #[test]
    fn round_trip_with_a_fresh_nonce_each_time() {
        let c = Cipher::new(&K1, &[]).unwrap();
        let p = place("t1", "e1");
        let a = c.seal("ignore previous instructions", &p).unwrap();
        let b = c.seal("ignore previous instructions", &p).unwrap();
        assert_ne!(a, b, "random nonces");
        assert!(a.starts_with(&format!("enc:v1:{}:", c.primary_kid())));
        assert!(!a.contains("ignore"));
        assert_eq!(c.open(&a, &p).unwrap(), "ignore previous instructions");
        assert_eq!(c.open(&b, &p).unwrap(), "ignore previous instructions");
    }

    #[test]
    fn a_value_moved_to_another_row_tenant_or_column_fails() {
        let c = Cipher::new(&K1, &[]).unwrap();
        let sealed = c.seal("secret prompt", &place("t1", "e1")).unwrap();
        for other in [
            place("t1", "e2"),
            place("t2", "e1"),
            Place { table: "security_events", column: "other", tenant: "t1", id: "e1" },
            Place { table: "telemetry_events", column: "input", tenant: "t1", id: "e1" },
        ] {
            assert!(matches!(c.open(&sealed, &other), Err(CipherError::Tampered { .. })), "{other:?}");
        }
    }

    #[test]
    fn tampered_ciphertext_fails() {
        let c = Cipher::new(&K1, &[]).unwrap();
        let p = place("t", "e");
        let sealed = c.seal("hello", &p).unwrap();
        let parsed = parse_sealed(&sealed).unwrap();
        for i in 0..parsed.bytes.len() {
            let mut bytes = parsed.bytes.clone();
            bytes[i] ^= 1;
            let forged = format!("enc:v1:{}:{}", parsed.kid, STANDARD.encode(&bytes));
            assert!(matches!(c.open(&forged, &p), Err(CipherError::Tampered { .. })), "byte {i}");
        }
    }

    #[test]
    fn unknown_key_id_is_a_typed_error_naming_it() {
        let old = Cipher::new(&K1, &[]).unwrap();
        let new = Cipher::new(&K2, &[]).unwrap();
        let p = place("t", "e");
        let sealed = old.seal("x", &p).unwrap();
        match new.open(&sealed, &p) {
            Err(CipherError::UnknownKey { kid, place }) => {
                assert_eq!(kid, old.primary_kid());
                assert_eq!(place, "security_events.input");
            }
            other => panic!("{other:?}"),
        }
        match open(None, &sealed, &p) {
            Err(CipherError::UnknownKey { kid, .. }) => assert_eq!(kid, old.primary_kid()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rotation_seals_with_the_new_key_and_opens_with_both() {
        let old = Cipher::new(&K1, &[]).unwrap();
        let rotated = Cipher::new(&K2, &[&K1]).unwrap();
        let p = place("t", "e");
        let before = old.seal("before", &p).unwrap();
        let after = rotated.seal("after", &p).unwrap();
        assert!(is_sealed_with(&after, rotated.primary_kid()));
        assert!(!is_sealed_with(&before, rotated.primary_kid()));
        assert_eq!(rotated.open(&before, &p).unwrap(), "before");
        assert_eq!(rotated.open(&after, &p).unwrap(), "after");
        assert_eq!(rotated.kids(), vec![rotated.primary_kid(), old.primary_kid()]);
    }

    #[test]
    fn plain_text_that_looks_sealed_is_escaped_not_misread() {
        let p = place("t", "e");
        let looks = "enc:v1:abc:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let stored = seal(None, looks, &p).unwrap();
        assert_eq!(stored, format!("enc:raw:{looks}"));
        assert_eq!(open(None, &stored, &p).unwrap(), looks);
        let c = Cipher::new(&K1, &[]).unwrap();
        assert_eq!(open(Some(&c), &stored, &p).unwrap(), looks);
        assert_eq!(open(None, "plain text", &p).unwrap(), "plain text");
        assert_eq!(seal(None, "plain text", &p).unwrap(), "plain text");
    }

    #[test]
    fn keys_must_be_32_bytes_and_errors_name_the_source_not_the_key() {
        let hex_key = "11".repeat(32);
        assert_eq!(decode_key(&format!(" {hex_key}\n")).unwrap().as_slice(), &[0x11; 32]);
        assert_eq!(decode_key(&STANDARD.encode([3u8; 32])).unwrap().as_slice(), &[3; 32]);
        assert_eq!(decode_key(&STANDARD_NO_PAD.encode([3u8; 32])).unwrap().as_slice(), &[3; 32]);
        let short = STANDARD.encode([3u8; 16]);
        let cfg = EncryptionConfig { key_env: Some("K".into()), ..Default::default() };
        let err = cfg.build(|_| Some(short.clone())).unwrap_err().to_string();
        assert!(err.contains("storage.encryption.key_env (K)"), "{err}");
        assert!(err.contains("decodes to 16 bytes"), "{err}");
        assert!(!err.contains(&short), "{err}");
        let err = cfg.build(|_| None).unwrap_err().to_string();
        assert!(err.contains("is not set"), "{err}");
        let cfg = EncryptionConfig {
            key_env: Some("K".into()),
            old_keys: vec![KeySource { key_env: Some("OLD".into()), key_file: None }],
            ..Default::default()
        };
        let err = cfg.build(|v| (v == "K").then(|| hex_key.clone())).unwrap_err().to_string();
        assert!(err.starts_with("storage.encryption.old_keys[0].key_env (OLD)"), "{err}");
        let c = cfg.build(|v| Some(if v == "K" { hex_key.clone() } else { STANDARD.encode(K1) })).unwrap();
        assert_eq!(c.kids().len(), 2);
        assert!(!format!("{c:?}").contains(&hex_key));
    }

    proptest! {
        #[test]
        fn parser_never_panics_and_accepts_only_well_formed(s in ".{0,120}") {
            if let Ok(p) = parse_sealed(&s) {
                prop_assert!(s.starts_with(SEALED_PREFIX));
                prop_assert!(p.bytes.len() >= NONCE_LEN + TAG_LEN);
            }
            let _ = open(None, &s, &place("t", "e"));
        }

        #[test]
        fn parser_reads_back_what_it_is_given(kid in "[A-Za-z0-9_-]{1,64}", bytes in proptest::collection::vec(any::<u8>(), 28..200)) {
            let s = format!("enc:v1:{kid}:{}", STANDARD.encode(&bytes));
            let p = parse_sealed(&s).unwrap();
            prop_assert_eq!(p.kid, kid.as_str());
            prop_assert_eq!(p.bytes, bytes);
        }

        #[test]
        fn any_text_round_trips_through_both_forms(text in any::<String>(), tenant in "[a-z]{1,8}", id in "[a-z0-9]{1,12}") {
            let p = place(&tenant, &id);
            let c = Cipher::new(&K1, &[]).unwrap();
            prop_assert_eq!(open(Some(&c), &seal(Some(&c), &text, &p).unwrap(), &p).unwrap(), text.clone());
            prop_assert_eq!(open(None, &seal(None, &text, &p).unwrap(), &p).unwrap(), text);
        }
    }
}
