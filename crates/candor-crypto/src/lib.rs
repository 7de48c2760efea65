//! Candor's cryptography: envelope encryption with per-subject data keys, a keyed blind index
//! for lookups, and hashing of API keys.
//!
//! Key hierarchy:
//! - the **master key** (a 0600 file beside the policy) wraps
//! - one random **tenant key** per store (stored wrapped in the database), which wraps
//! - one random **data key** per subject (stored wrapped; destroying it crypto-shreds the subject),
//!   which seals that subject's identifiers and PII with XChaCha20-Poly1305.
//!
//! The tenant key also derives the **blind-index key**: HMAC-SHA256 over a normalized identifier,
//! so "find the subject with this email" never needs the email in clear on disk.
//!
//! Plaintext and ciphertext are distinct types: a [`Sealed`] can only come from sealing or from
//! bytes read back from storage; storage APIs accept `Sealed`, never `&str`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use candor_types::{Scope, SubjectId, TenantId};

/// Format version byte at the start of every sealed blob.
const SEAL_V1: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// Wrong key, tampered bytes, or bytes sealed for another subject or tenant.
    #[error("ciphertext could not be opened (wrong key or tampered data)")]
    Open,
    #[error("malformed key material: {0}")]
    BadKey(&'static str),
    #[error("the operating system's random generator failed")]
    Random,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|_| CryptoError::Random)?;
    Ok(b)
}

/// A 256-bit symmetric key. Zeroed on drop; `Debug` never prints it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct Key32([u8; 32]);

impl Key32 {
    fn random() -> Result<Self, CryptoError> {
        Ok(Self(random_bytes()?))
    }

    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, CryptoError> {
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        let nonce_bytes: [u8; NONCE_LEN] = random_bytes()?;
        let nonce = XNonce::from(nonce_bytes);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Open)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(SEAL_V1);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        Ok(Sealed(out))
    }

    fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let b = &sealed.0;
        if b.len() < 1 + NONCE_LEN + TAG_LEN || b[0] != SEAL_V1 {
            return Err(CryptoError::Open);
        }
        let mut nonce_bytes = [0u8; NONCE_LEN];
        nonce_bytes.copy_from_slice(&b[1..1 + NONCE_LEN]);
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        cipher
            .decrypt(
                &XNonce::from(nonce_bytes),
                Payload {
                    msg: &b[1 + NONCE_LEN..],
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Open)
    }

    fn from_slice(b: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = b
            .try_into()
            .map_err(|_| CryptoError::BadKey("expected 32 bytes"))?;
        Ok(Self(arr))
    }
}

/// Ciphertext: version byte, 24-byte nonce, XChaCha20-Poly1305 output.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    /// Bytes as read back from storage. They are only trusted once opened.
    pub fn from_stored(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// The deployment's root key, read from the master key file.
pub struct MasterKey(Key32);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

const TENANT_KEY_AAD: &[u8] = b"candor/tenant-key/v1/";

impl MasterKey {
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(Key32::random()?))
    }

    /// The file format: base64 of 32 bytes, surrounding whitespace ignored.
    pub fn from_file_contents(text: &str) -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| CryptoError::BadKey("master key file is not base64"))?,
        );
        Ok(Self(Key32::from_slice(&bytes)?))
    }

    pub fn to_file_contents(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}\n", STANDARD.encode(self.0.0)))
    }

    /// A fresh tenant key, returned with its wrapped (storable) form.
    pub fn new_tenant_key(&self, tenant: TenantId) -> Result<(TenantKey, Sealed), CryptoError> {
        let key = Key32::random()?;
        let wrapped = self.0.seal(&key.0, &tenant_aad(tenant))?;
        Ok((TenantKey::from_key(key), wrapped))
    }

    pub fn unwrap_tenant_key(
        &self,
        tenant: TenantId,
        wrapped: &Sealed,
    ) -> Result<TenantKey, CryptoError> {
        let raw = self.0.open(wrapped, &tenant_aad(tenant))?;
        Ok(TenantKey::from_key(Key32::from_slice(&raw)?))
    }
}

fn tenant_aad(tenant: TenantId) -> Vec<u8> {
    let mut aad = TENANT_KEY_AAD.to_vec();
    aad.extend_from_slice(tenant.0.as_bytes());
    aad
}

/// One store's key: wraps its subjects' data keys and derives its blind-index key.
#[derive(Clone)]
pub struct TenantKey {
    wrap: Key32,
    blind: Key32,
}

impl fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TenantKey(<redacted>)")
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length; this cannot fail for a 32-byte key.
    let mut mac = match <HmacSha256 as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for p in parts {
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// What kind of identifier a blind index entry stands for. Part of the HMAC input, so the same
/// string as a `user_id` and as an `email` gives unrelated index values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdentifierKind {
    UserId,
    AnonymousId,
    Email,
    Phone,
}

impl IdentifierKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserId => "user_id",
            Self::AnonymousId => "anonymous_id",
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }

    /// Normal form before hashing: emails are case-insensitive, phones keep digits and `+`.
    pub fn normalize(self, value: &str) -> String {
        match self {
            Self::Email => value.trim().to_lowercase(),
            Self::Phone => value
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '+')
                .collect(),
            Self::UserId | Self::AnonymousId => value.to_owned(),
        }
    }
}

/// Keyed hash of an identifier: equal for equal (normalized) identifiers within one tenant,
/// useless without the tenant key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlindIndex(pub [u8; 32]);

impl fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlindIndex({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

const SUBJECT_KEY_AAD: &[u8] = b"candor/subject-key/v1/";

impl TenantKey {
    fn from_key(wrap: Key32) -> Self {
        let blind = Key32(hmac(&wrap.0, &[b"candor/blind-index/v1"]));
        Self { wrap, blind }
    }

    pub fn blind_index(&self, kind: IdentifierKind, value: &str) -> BlindIndex {
        let norm = kind.normalize(value);
        BlindIndex(hmac(
            &self.blind.0,
            &[kind.as_str().as_bytes(), norm.as_bytes()],
        ))
    }

    /// Keyed hash of a reference that is not a person's identifier (an order id): equal for
    /// equal values within one tenant, useless without the tenant key. `domain` separates
    /// uses of the same value.
    pub fn reference_hash(&self, domain: &str, value: &str) -> [u8; 32] {
        hmac(
            &self.blind.0,
            &[b"candor/reference/v1", domain.as_bytes(), value.as_bytes()],
        )
    }

    /// A fresh data key for a subject, with its wrapped (storable) form.
    pub fn new_data_key(&self, subject: SubjectId) -> Result<(DataKey, Sealed), CryptoError> {
        let key = Key32::random()?;
        let wrapped = self.wrap.seal(&key.0, &subject_aad(subject))?;
        Ok((DataKey { key, subject }, wrapped))
    }

    pub fn unwrap_data_key(
        &self,
        subject: SubjectId,
        wrapped: &Sealed,
    ) -> Result<DataKey, CryptoError> {
        let raw = self.wrap.open(wrapped, &subject_aad(subject))?;
        Ok(DataKey {
            key: Key32::from_slice(&raw)?,
            subject,
        })
    }
}

fn subject_aad(subject: SubjectId) -> Vec<u8> {
    let mut aad = SUBJECT_KEY_AAD.to_vec();
    aad.extend_from_slice(subject.0.as_bytes());
    aad
}

/// One subject's data key. Sealed values are bound to the subject and to a field label
/// (associated data), so a ciphertext moved to another subject or field does not open.
#[derive(Clone)]
pub struct DataKey {
    key: Key32,
    subject: SubjectId,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey(subject={}, <redacted>)", self.subject)
    }
}

impl DataKey {
    fn aad(&self, label: &str) -> Vec<u8> {
        let mut aad = self.subject.0.as_bytes().to_vec();
        aad.extend_from_slice(label.as_bytes());
        aad
    }

    pub fn subject(&self) -> SubjectId {
        self.subject
    }

    pub fn seal(&self, label: &str, plaintext: &[u8]) -> Result<Sealed, CryptoError> {
        self.key.seal(plaintext, &self.aad(label))
    }

    pub fn open(&self, label: &str, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.key.open(sealed, &self.aad(label))
    }
}

/// A newly created API key: the secret string (shown once) and the hash that is stored.
pub struct NewApiKey {
    pub secret: Zeroizing<String>,
    pub hash: [u8; 32],
}

impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewApiKey(<redacted>)")
    }
}

/// The key that turns API key secrets into their stored form. Derived from the master key,
/// so a copy of the database alone cannot even test a guessed key.
pub struct ApiKeyHasher(Key32);

impl fmt::Debug for ApiKeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeyHasher(<redacted>)")
    }
}

impl MasterKey {
    pub fn api_key_hasher(&self) -> ApiKeyHasher {
        ApiKeyHasher(Key32(hmac(&self.0.0, &[b"candor/api-key-hash/v1"])))
    }
}

impl ApiKeyHasher {
    /// Generates an API key: `cnd_<scope>_<43 chars of base64url>` (256 random bits).
    ///
    /// Stored form: HMAC-SHA256 under a key derived from the master key. Keys are random
    /// 256-bit secrets, so a keyed fast hash is sound (as for GitHub or Stripe tokens): unlike
    /// passwords they cannot be guessed, and a slow hash such as argon2 on every request would
    /// only cost latency. The HMAC key adds that a stolen database cannot test candidates.
    pub fn new_key(&self, scope: Scope) -> Result<NewApiKey, CryptoError> {
        let raw: Zeroizing<[u8; 32]> = Zeroizing::new(random_bytes()?);
        let secret = Zeroizing::new(format!(
            "cnd_{}_{}",
            scope.as_str(),
            URL_SAFE_NO_PAD.encode(*raw)
        ));
        let hash = self.hash(&secret);
        Ok(NewApiKey { secret, hash })
    }

    /// A one-time token (`<prefix>_<43 chars of base64url>`, 256 random bits) with its stored
    /// form, e.g. the identity check of a data-subject request.
    pub fn new_token(&self, prefix: &str) -> Result<NewApiKey, CryptoError> {
        let raw: Zeroizing<[u8; 32]> = Zeroizing::new(random_bytes()?);
        let secret = Zeroizing::new(format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(*raw)));
        let hash = self.hash(&secret);
        Ok(NewApiKey { secret, hash })
    }

    /// The stored form of an API key.
    pub fn hash(&self, secret: &str) -> [u8; 32] {
        hmac(&self.0.0, &[secret.as_bytes()])
    }
}

/// Hex SHA-256, for content hashes (policy files, notice texts, audit entries).
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d: [u8; 32] = Sha256::digest(bytes).into();
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// SHA-256 of several length-prefixed parts (unambiguous concatenation).
pub fn sha256_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// PBKDF2-HMAC-SHA256 iterations for staff passwords (OWASP's 2023 figure).
pub const PASSWORD_ITERATIONS: u32 = 600_000;

/// PBKDF2-HMAC-SHA256 (RFC 8018), one 32-byte block.
fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mac = match <HmacSha256 as KeyInit>::new_from_slice(password) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    let mut m = mac.clone();
    m.update(salt);
    m.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = m.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        let mut m = mac.clone();
        m.update(&u);
        u = m.finalize().into_bytes().into();
        for (o, b) in out.iter_mut().zip(u) {
            *o ^= b;
        }
    }
    out
}

/// A password's stored form: `pbkdf2-sha256$<iterations>$<salt>$<hash>` (base64), with a
/// random 128-bit salt. Staff passwords are chosen by people, so unlike API keys they get a
/// slow hash.
pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    let salt: [u8; 16] = random_bytes()?;
    let hash = pbkdf2_sha256(password.as_bytes(), &salt, PASSWORD_ITERATIONS);
    Ok(format!(
        "pbkdf2-sha256${PASSWORD_ITERATIONS}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    ))
}

/// Whether `password` matches a stored form made by [`hash_password`] (constant-time compare).
pub fn verify_password(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(iter), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(iter), Ok(salt), Ok(hash)) = (
        iter.parse::<u32>(),
        STANDARD.decode(salt),
        STANDARD.decode(hash),
    ) else {
        return false;
    };
    if !(1..=10_000_000).contains(&iter) || hash.len() != 32 {
        return false;
    }
    constant_time_eq(&pbkdf2_sha256(password.as_bytes(), &salt, iter), &hash)
}

/// Equality of two byte strings in time independent of where they differ (tokens, hashes).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pbkdf2_matches_the_published_vectors() {
        // RFC 7914 section 11 (PBKDF2-HMAC-SHA256, first 32 bytes).
        assert_eq!(
            hex::encode(pbkdf2_sha256(b"passwd", b"salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
        assert_eq!(
            hex::encode(pbkdf2_sha256(b"Password", b"NaCl", 80000)),
            "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
        );
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let stored = hash_password("correct horse").expect("hash");
        assert!(verify_password("correct horse", &stored));
        assert!(!verify_password("correct hors", &stored));
        assert!(!verify_password(
            "correct horse",
            "pbkdf2-sha256$1$AAAA$AAAA"
        ));
        assert!(!verify_password("x", "garbage"));
        assert_ne!(
            stored,
            hash_password("correct horse").expect("hash"),
            "salted"
        );
    }

    fn keys() -> (MasterKey, TenantId, TenantKey, SubjectId, DataKey) {
        let mk = MasterKey::generate().expect("rng");
        let t = TenantId::new();
        let (tk, _) = mk.new_tenant_key(t).expect("rng");
        let s = SubjectId::new();
        let (dk, _) = tk.new_data_key(s).expect("rng");
        (mk, t, tk, s, dk)
    }

    proptest! {
        #[test]
        fn seal_then_open_is_identity(data in proptest::collection::vec(any::<u8>(), 0..512), label in "[a-z.]{1,20}") {
            let (_, _, _, _, dk) = keys();
            let sealed = dk.seal(&label, &data).expect("seal");
            prop_assert_eq!(&dk.open(&label, &sealed).expect("open")[..], &data[..]);
            // the ciphertext never contains a long plaintext run
            if data.len() >= 16 {
                prop_assert!(!sealed.as_bytes().windows(data.len()).any(|w| w == &data[..]));
            }
        }
    }

    #[test]
    fn keys_round_trip_through_their_wrapped_forms() {
        let mk = MasterKey::generate().expect("rng");
        let mk2 = MasterKey::from_file_contents(&mk.to_file_contents()).expect("parse");
        let t = TenantId::new();
        let (tk, wrapped_tk) = mk.new_tenant_key(t).expect("rng");
        let tk2 = mk2.unwrap_tenant_key(t, &wrapped_tk).expect("unwrap");
        let s = SubjectId::new();
        let (dk, wrapped_dk) = tk.new_data_key(s).expect("rng");
        let sealed = dk.seal("traits.email", b"ada@example.com").expect("seal");
        let dk2 = tk2.unwrap_data_key(s, &wrapped_dk).expect("unwrap");
        assert_eq!(
            &dk2.open("traits.email", &sealed).expect("open")[..],
            b"ada@example.com"
        );
        // the same blind index under the re-loaded key
        assert_eq!(
            tk.blind_index(IdentifierKind::Email, " Ada@Example.com"),
            tk2.blind_index(IdentifierKind::Email, "ada@example.com")
        );
    }

    #[test]
    fn ciphertext_is_bound_to_subject_field_and_tenant() {
        let (mk, t, tk, s, dk) = keys();
        let sealed = dk.seal("traits.email", b"x@y.z").expect("seal");
        assert_eq!(
            dk.open("traits.phone", &sealed).err(),
            Some(CryptoError::Open)
        );
        let (other, _) = tk.new_data_key(SubjectId::new()).expect("rng");
        assert_eq!(
            other.open("traits.email", &sealed).err(),
            Some(CryptoError::Open)
        );
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            dk.open("traits.email", &Sealed::from_stored(tampered))
                .err(),
            Some(CryptoError::Open)
        );
        // a wrapped data key cannot be unwrapped for another subject or by another tenant
        let (_, wrapped) = tk.new_data_key(s).expect("rng");
        assert!(tk.unwrap_data_key(SubjectId::new(), &wrapped).is_err());
        let (tk_b, _) = mk.new_tenant_key(TenantId::new()).expect("rng");
        assert!(tk_b.unwrap_data_key(s, &wrapped).is_err());
        let _ = t;
    }

    #[test]
    fn blind_index_separates_kinds_and_tenants() {
        let (mk, _, tk, _, _) = keys();
        let (tk_b, _) = mk.new_tenant_key(TenantId::new()).expect("rng");
        let a = tk.blind_index(IdentifierKind::Email, "a@b.c");
        assert_ne!(a, tk.blind_index(IdentifierKind::UserId, "a@b.c"));
        assert_ne!(a, tk_b.blind_index(IdentifierKind::Email, "a@b.c"));
        assert_eq!(
            tk.blind_index(IdentifierKind::Phone, "+44 (0)20 7946-0000"),
            tk.blind_index(IdentifierKind::Phone, "+440207946 0000")
        );
    }

    #[test]
    fn api_keys_are_unique_and_hash_stably() {
        let master = MasterKey::generate().expect("rng");
        let hasher = master.api_key_hasher();
        let k1 = hasher.new_key(Scope::Write).expect("rng");
        let k2 = hasher.new_key(Scope::Write).expect("rng");
        assert!(k1.secret.starts_with("cnd_write_"));
        assert_ne!(*k1.secret, *k2.secret);
        assert_eq!(k1.hash, hasher.hash(&k1.secret));
        assert_ne!(k1.hash, k2.hash);
        // another deployment's master key gives another stored form
        let other = MasterKey::generate().expect("rng").api_key_hasher();
        assert_ne!(other.hash(&k1.secret), k1.hash);
        assert_ne!(k1.hash[..], Sha256::digest(k1.secret.as_bytes())[..]);
        assert!(!format!("{k1:?}").contains(&k1.secret[10..]));
    }
}
