//! The file format: a versioned header, then XChaCha20-Poly1305 over the whole serialized
//! credential with the header and the profile as associated data (so a header swapped or
//! edited fails, and so does one profile's file copied over another's).
//!
//! ```text
//! "TSCR" | version 2 | key kind (1 keyring, 2 key file, 3 passphrase)
//!        | [passphrase only: Argon2id m_cost, t_cost, p_cost (u32 LE each), salt (16)]
//!        | nonce (24, random) | ciphertext + tag (16)
//! associated data: everything before the ciphertext | profile length (u32 LE) | profile
//! ```
//!
//! Version 1 is the same without the profile in the associated data. It is still read, and
//! the next save (every login and refresh saves) writes the file again as version 2.
//!
//! The Argon2id costs are read from the file, so a crafted file could ask for terabytes of
//! memory: costs outside [`KDF_BOUNDS`] are refused before any key is derived.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"TSCR";
/// The version written. Versions 1 and 2 are read.
const VERSION: u8 = 2;
/// The first version, whose associated data lacks the profile.
pub(super) const VERSION_UNBOUND: u8 = 1;
pub const NONCE_LEN: usize = 24;
pub const SALT_LEN: usize = 16;
pub const KEY_LEN: usize = 32;

pub type SecretKey = Zeroizing<[u8; KEY_LEN]>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Keyring = 1,
    KeyFile = 2,
    Passphrase = 3,
}

impl KeyKind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Keyring),
            2 => Some(Self::KeyFile),
            3 => Some(Self::Passphrase),
            _ => None,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Keyring => "a key in the OS keyring",
            Self::KeyFile => "a key file",
            Self::Passphrase => "a passphrase",
        }
    }
}

/// Argon2id parameters and salt of a passphrase-derived key, stored in the header so that a
/// later version can raise the costs and still read old files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    pub salt: [u8; SALT_LEN],
}

impl KdfParams {
    /// OWASP's Argon2id baseline (19 MiB, 2 passes, 1 lane), with a fresh salt.
    pub fn fresh() -> Self {
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt);
        Self {
            m_cost_kib: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
            salt,
        }
    }
}

/// The Argon2id costs a file may ask for, inclusive: from below Argon2's own minimums to well
/// above the baseline written today (19 MiB, 2 passes, 1 lane), so that a later version can
/// raise the costs, but never the gigabytes or hours a crafted header could demand.
pub struct KdfBounds {
    pub m_cost_kib: (u32, u32),
    pub t_cost: (u32, u32),
    pub p_cost: (u32, u32),
}

pub const KDF_BOUNDS: KdfBounds = KdfBounds {
    m_cost_kib: (8 * 1024, 1024 * 1024),
    t_cost: (1, 16),
    p_cost: (1, 16),
};

impl KdfParams {
    /// Whether these costs are within [`KDF_BOUNDS`].
    fn within_bounds(&self) -> bool {
        let b = &KDF_BOUNDS;
        (b.m_cost_kib.0..=b.m_cost_kib.1).contains(&self.m_cost_kib)
            && (b.t_cost.0..=b.t_cost.1).contains(&self.t_cost)
            && (b.p_cost.0..=b.p_cost.1).contains(&self.p_cost)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub kind: KeyKind,
    pub kdf: Option<KdfParams>,
}

impl Header {
    fn encode(&self, version: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + 28);
        out.extend_from_slice(MAGIC);
        out.push(version);
        out.push(self.kind as u8);
        if let Some(kdf) = &self.kdf {
            out.extend_from_slice(&kdf.m_cost_kib.to_le_bytes());
            out.extend_from_slice(&kdf.t_cost.to_le_bytes());
            out.extend_from_slice(&kdf.p_cost.to_le_bytes());
            out.extend_from_slice(&kdf.salt);
        }
        out
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum FormatError {
    NotOurs,
    Truncated,
    Version(u8),
    UnknownKeyKind(u8),
    /// Argon2id costs outside [`KDF_BOUNDS`].
    KdfOutOfBounds,
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotOurs => f.write_str("no Tessera header"),
            Self::Truncated => f.write_str("truncated"),
            Self::Version(v) => write!(f, "format version {v}"),
            Self::UnknownKeyKind(k) => write!(f, "unknown key kind {k}"),
            Self::KdfOutOfBounds => {
                let b = &KDF_BOUNDS;
                write!(
                    f,
                    "Argon2id costs outside the accepted bounds (memory {}-{} KiB, {}-{} passes, {}-{} lanes)",
                    b.m_cost_kib.0, b.m_cost_kib.1, b.t_cost.0, b.t_cost.1, b.p_cost.0, b.p_cost.1
                )
            }
        }
    }
}

/// A parsed file: its header and where the authenticated parts are.
#[derive(Debug)]
pub struct Sealed<'a> {
    pub header: Header,
    /// The format version the file was written in.
    pub version: u8,
    aad: &'a [u8],
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

pub fn parse(bytes: &[u8]) -> Result<Sealed<'_>, FormatError> {
    // Patterns and `get` instead of indexing: the bytes come from a file anyone may have
    // written, and a short one must be an error, never a panic.
    let (version, kind) = match bytes {
        [m0, m1, m2, m3, version, kind, ..] if [*m0, *m1, *m2, *m3] == *MAGIC => (*version, *kind),
        _ if bytes.len() < 6 && MAGIC.starts_with(bytes) => return Err(FormatError::Truncated),
        _ => return Err(FormatError::NotOurs),
    };
    if version != VERSION && version != VERSION_UNBOUND {
        return Err(FormatError::Version(version));
    }
    let kind = KeyKind::from_byte(kind).ok_or(FormatError::UnknownKeyKind(kind))?;
    let mut at = 6;
    let kdf = if kind == KeyKind::Passphrase {
        let raw = bytes
            .get(at..at + 12 + SALT_LEN)
            .ok_or(FormatError::Truncated)?;
        let (costs, salt) = raw
            .split_first_chunk::<12>()
            .ok_or(FormatError::Truncated)?;
        let [m0, m1, m2, m3, t0, t1, t2, t3, p0, p1, p2, p3] = *costs;
        let salt: [u8; SALT_LEN] = salt.try_into().map_err(|_| FormatError::Truncated)?;
        at += 12 + SALT_LEN;
        let kdf = KdfParams {
            m_cost_kib: u32::from_le_bytes([m0, m1, m2, m3]),
            t_cost: u32::from_le_bytes([t0, t1, t2, t3]),
            p_cost: u32::from_le_bytes([p0, p1, p2, p3]),
            salt,
        };
        if !kdf.within_bounds() {
            return Err(FormatError::KdfOutOfBounds);
        }
        Some(kdf)
    } else {
        None
    };
    let nonce = bytes
        .get(at..at + NONCE_LEN)
        .ok_or(FormatError::Truncated)?;
    let (aad, ciphertext) = bytes
        .split_at_checked(at + NONCE_LEN)
        .ok_or(FormatError::Truncated)?;
    if ciphertext.len() < 16 {
        return Err(FormatError::Truncated);
    }
    Ok(Sealed {
        header: Header { kind, kdf },
        version,
        aad,
        nonce,
        ciphertext,
    })
}

/// The associated data: the header and nonce, then the profile the file belongs to.
fn associated_data(header_and_nonce: &[u8], profile: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header_and_nonce.len() + 4 + profile.len());
    aad.extend_from_slice(header_and_nonce);
    let len = u32::try_from(profile.len()).unwrap_or(u32::MAX);
    aad.extend_from_slice(&len.to_le_bytes());
    aad.extend_from_slice(profile.as_bytes());
    aad
}

impl Sealed<'_> {
    /// The plaintext, or `None` when authentication fails (wrong key, altered bytes, or
    /// another profile's file). Version 1 files carry no profile and open for any.
    pub fn open(&self, key: &SecretKey, profile: &str) -> Option<Zeroizing<Vec<u8>>> {
        let cipher = XChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
        let aad = if self.version == VERSION_UNBOUND {
            self.aad.to_vec()
        } else {
            associated_data(self.aad, profile)
        };
        cipher
            .decrypt(
                XNonce::from_slice(self.nonce),
                Payload {
                    msg: self.ciphertext,
                    aad: &aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

/// Encrypts `plaintext` under `key` with a fresh random nonce, for `profile`, in the current
/// version.
pub fn seal(header: &Header, key: &SecretKey, plaintext: &[u8], profile: &str) -> Vec<u8> {
    seal_version(VERSION, header, key, plaintext, profile)
}

pub(super) fn seal_version(
    version: u8,
    header: &Header,
    key: &SecretKey,
    plaintext: &[u8],
    profile: &str,
) -> Vec<u8> {
    let mut out = header.encode(version);
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    out.extend_from_slice(&nonce);
    let aad = if version == VERSION_UNBOUND {
        out.clone()
    } else {
        associated_data(&out, profile)
    };
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        // Only fails for plaintexts beyond 256 GiB.
        .unwrap_or_default();
    out.extend_from_slice(&ciphertext);
    out
}

/// Keys, nonces and salts come from the OS CSPRNG, never from an injected source: a
/// predictable nonce would break the cipher, and tests check properties, not bytes.
pub fn fill_random(buf: &mut [u8]) {
    rand::rngs::OsRng.fill_bytes(buf);
}

pub fn random_key() -> SecretKey {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    fill_random(key.as_mut());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SecretKey {
        Zeroizing::new([b; KEY_LEN])
    }

    fn key_file_header() -> Header {
        Header {
            kind: KeyKind::KeyFile,
            kdf: None,
        }
    }

    fn passphrase_header() -> Header {
        Header {
            kind: KeyKind::Passphrase,
            kdf: Some(KdfParams::fresh()),
        }
    }

    #[test]
    fn round_trips_and_uses_a_new_nonce_each_time() {
        let header = key_file_header();
        let a = seal(&header, &key(1), b"secret payload", "default");
        let b = seal(&header, &key(1), b"secret payload", "default");
        assert_ne!(a, b);
        let parsed = parse(&a).unwrap();
        assert_eq!(parsed.header, header);
        assert_eq!(parsed.version, VERSION);
        assert_eq!(
            &parsed.open(&key(1), "default").unwrap()[..],
            b"secret payload"
        );
        assert!(parsed.open(&key(2), "default").is_none());
    }

    #[test]
    fn a_tampered_header_or_body_fails_authentication() {
        let header = passphrase_header();
        let sealed = seal(&header, &key(7), b"payload", "default");
        for i in [6, 10, 30, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            let opened = parse(&bad).ok().and_then(|p| p.open(&key(7), "default"));
            assert!(opened.is_none(), "byte {i}");
        }
    }

    #[test]
    fn foreign_and_future_files_are_recognised() {
        assert_eq!(
            parse(b"{\"access_token\":1}").unwrap_err(),
            FormatError::NotOurs
        );
        assert_eq!(parse(b"TSC").unwrap_err(), FormatError::Truncated);
        assert_eq!(parse(b"TSCR\x09\x02").unwrap_err(), FormatError::Version(9));
        assert_eq!(
            parse(b"TSCR\x01\x02short").unwrap_err(),
            FormatError::Truncated
        );
    }

    #[test]
    fn a_file_of_one_profile_does_not_open_as_another_profile() {
        let header = key_file_header();
        let sealed = seal(&header, &key(3), b"work's tokens", "work");
        let parsed = parse(&sealed).unwrap();
        assert!(parsed.open(&key(3), "work").is_some());
        assert!(parsed.open(&key(3), "personal").is_none());
        assert!(parsed.open(&key(3), "").is_none());
    }

    #[test]
    fn a_version_1_file_without_the_profile_is_still_read() {
        let header = passphrase_header();
        let old = seal_version(VERSION_UNBOUND, &header, &key(4), b"old", "ignored");
        assert_eq!(old.get(4), Some(&1));
        let parsed = parse(&old).unwrap();
        assert_eq!(parsed.version, VERSION_UNBOUND);
        assert_eq!(parsed.header, header);
        assert_eq!(&parsed.open(&key(4), "default").unwrap()[..], b"old");
        // Relabelled as version 2 it fails: the version byte is authenticated too.
        let mut relabelled = old.clone();
        relabelled[4] = VERSION;
        assert!(parse(&relabelled)
            .unwrap()
            .open(&key(4), "default")
            .is_none());
    }

    fn passphrase_header_with(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Vec<u8> {
        let mut bytes = Header {
            kind: KeyKind::Passphrase,
            kdf: Some(KdfParams {
                m_cost_kib,
                t_cost,
                p_cost,
                salt: [0; SALT_LEN],
            }),
        }
        .encode(VERSION);
        bytes.extend_from_slice(&[0; NONCE_LEN + 16]);
        bytes
    }

    #[test]
    fn a_header_asking_for_unbounded_argon2_costs_is_refused_before_any_derivation() {
        let fresh = KdfParams::fresh();
        assert!(fresh.within_bounds());
        assert!(parse(&passphrase_header_with(
            fresh.m_cost_kib,
            fresh.t_cost,
            fresh.p_cost
        ))
        .is_ok());
        let b = &KDF_BOUNDS;
        assert!(parse(&passphrase_header_with(
            b.m_cost_kib.1,
            b.t_cost.1,
            b.p_cost.1
        ))
        .is_ok());
        for (m, t, p) in [
            (u32::MAX, 2, 1),
            (b.m_cost_kib.1 + 1, 2, 1),
            (19 * 1024, u32::MAX, 1),
            (19 * 1024, b.t_cost.1 + 1, 1),
            (19 * 1024, 2, u32::MAX),
            (19 * 1024, 2, b.p_cost.1 + 1),
            (0, 2, 1),
            (19 * 1024, 0, 1),
            (19 * 1024, 2, 0),
        ] {
            assert_eq!(
                parse(&passphrase_header_with(m, t, p)).unwrap_err(),
                FormatError::KdfOutOfBounds,
                "m={m} t={t} p={p}"
            );
        }
    }
}
