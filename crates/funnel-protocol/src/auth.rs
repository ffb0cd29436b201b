//! Authentication plugins and the auth-switch exchange.
//!
//! * `mysql_native_password`: the client sends
//!   `SHA1(pw) XOR SHA1(scramble ++ SHA1(SHA1(pw)))`. A server that stores only
//!   `SHA1(SHA1(pw))` (the `*6BB4…` form `SELECT PASSWORD('x')` prints) can
//!   verify it without knowing the password, which is how Funnel checks its
//!   clients when the config holds a hash.
//! * `caching_sha2_password` (MySQL 8): the client sends
//!   `SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) ++ scramble)`; the server either
//!   accepts from its cache (fast path) or asks for the full exchange, in which
//!   the clear password goes over TLS, or RSA-encrypted with the server's key.

use bytes::{BufMut, BytesMut};
use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::error::{ProtocolError, Result};
use crate::wire::{put_nul_str, Reader};

/// Name of the `mysql_native_password` plugin.
pub const MYSQL_NATIVE_PASSWORD: &str = "mysql_native_password";
/// Name of the `caching_sha2_password` plugin.
pub const CACHING_SHA2_PASSWORD: &str = "caching_sha2_password";

/// Length of the scramble Funnel generates for its clients.
pub const SCRAMBLE_LEN: usize = 20;

/// A stored `mysql_native_password` credential: `SHA1(SHA1(password))`, or
/// the empty password (which MySQL stores as an empty string, not a hash).
#[derive(Clone, PartialEq, Eq)]
pub enum NativePasswordHash {
    /// The account has no password: only an empty auth response logs in.
    Empty,
    /// `SHA1(SHA1(password))`.
    Hash([u8; 20]),
}

impl std::fmt::Debug for NativePasswordHash {
    // Never print credential material, not even a hash.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NativePasswordHash::Empty => f.write_str("NativePasswordHash::Empty"),
            NativePasswordHash::Hash(_) => f.write_str("NativePasswordHash::Hash(<redacted>)"),
        }
    }
}

impl NativePasswordHash {
    /// The stored form of a clear-text password.
    pub fn from_password(password: &[u8]) -> Self {
        if password.is_empty() {
            return NativePasswordHash::Empty;
        }
        NativePasswordHash::Hash(sha1(&sha1(password)))
    }

    /// Parses the `*` + 40 hex digits form; an empty string is the empty password.
    pub fn parse(text: &str) -> Result<Self> {
        if text.is_empty() {
            return Ok(NativePasswordHash::Empty);
        }
        let hex = text
            .strip_prefix('*')
            .ok_or(ProtocolError::malformed("password hash", "must start with '*'"))?;
        if hex.len() != 40 {
            return Err(ProtocolError::malformed(
                "password hash",
                "must have 40 hex digits",
            ));
        }
        let mut out = [0u8; 20];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => out[i] = h << 4 | l,
                _ => return Err(ProtocolError::malformed("password hash", "not hexadecimal")),
            }
        }
        Ok(NativePasswordHash::Hash(out))
    }

    /// The `*HEX` text form (what `SELECT PASSWORD('x')` prints).
    pub fn to_text(&self) -> String {
        match self {
            NativePasswordHash::Empty => String::new(),
            NativePasswordHash::Hash(h) => {
                let mut s = String::with_capacity(41);
                s.push('*');
                for b in h {
                    s.push_str(&format!("{b:02X}"));
                }
                s
            }
        }
    }

    /// Checks a client's `mysql_native_password` answer to `scramble`.
    pub fn verify(&self, scramble: &[u8], response: &[u8]) -> bool {
        match self {
            NativePasswordHash::Empty => response.is_empty(),
            NativePasswordHash::Hash(stored) => {
                if response.len() != 20 {
                    return false;
                }
                // response = stage1 XOR SHA1(scramble ++ stored); recover stage1
                // and check SHA1(stage1) == stored.
                let mask = sha1_concat(scramble, stored);
                let mut stage1 = [0u8; 20];
                for i in 0..20 {
                    stage1[i] = response[i] ^ mask[i];
                }
                constant_time_eq(&sha1(&stage1), stored)
            }
        }
    }
}

/// The `mysql_native_password` answer to `scramble` (empty for an empty password).
pub fn native_password_scramble(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = sha1(password);
    let stage2 = sha1(&stage1);
    let mask = sha1_concat(scramble, &stage2);
    stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}

/// The `caching_sha2_password` fast-path answer to `scramble`.
pub fn caching_sha2_scramble(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let p1 = Sha256::digest(password);
    let p2 = Sha256::digest(p1);
    let mut h = Sha256::new();
    h.update(p2);
    h.update(scramble);
    let p3 = h.finalize();
    p1.iter().zip(p3.iter()).map(|(a, b)| a ^ b).collect()
}

/// A stored `caching_sha2_password` verifier: `SHA256(SHA256(password))`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sha2PasswordHash([u8; 32]);

impl std::fmt::Debug for Sha2PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sha2PasswordHash(<redacted>)")
    }
}

impl Sha2PasswordHash {
    /// The verifier of a clear-text password.
    pub fn from_password(password: &[u8]) -> Self {
        Sha2PasswordHash(Sha256::digest(Sha256::digest(password)).into())
    }

    /// Checks a client's fast-path answer to `scramble`. An empty password
    /// answers with nothing, or with one zero byte (libmysqlclient and
    /// Connector/J), as MySQL accepts.
    pub fn verify_scramble(&self, scramble: &[u8], response: &[u8], empty_password: bool) -> bool {
        if empty_password {
            return response.is_empty() || response == [0];
        }
        if response.len() != 32 {
            return false;
        }
        // response = SHA256(pw) XOR SHA256(stored ++ scramble); recover
        // SHA256(pw) and check it hashes to the stored value.
        let mut h = Sha256::new();
        h.update(self.0);
        h.update(scramble);
        let mask = h.finalize();
        let stage1: Vec<u8> = response.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect();
        constant_time_eq(&Sha256::digest(&stage1), &self.0)
    }
}

/// The clear password XORed with the scramble (repeated), which is what the
/// client RSA-encrypts in the full `caching_sha2_password` exchange without TLS.
pub fn xor_password_with_scramble(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    let mut data = password.to_vec();
    data.push(0);
    if scramble.is_empty() {
        return data;
    }
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= scramble[i % scramble.len()];
    }
    data
}

/// Encrypts the password for the full `caching_sha2_password` (and
/// `sha256_password`) exchange without TLS: RSA with OAEP padding (SHA-1,
/// as MySQL 8.0.5+ expects) over [`xor_password_with_scramble`], with the
/// public key the server sent in PEM form (SPKI or PKCS#1).
pub fn rsa_encrypt_password(
    pem: &[u8],
    password: &[u8],
    scramble: &[u8],
    rng: &mut impl rsa::rand_core::CryptoRngCore,
) -> Result<Vec<u8>> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    let text = std::str::from_utf8(pem)
        .map_err(|_| ProtocolError::malformed("RSA public key", "not UTF-8"))?
        .trim_end_matches('\0');
    let key = rsa::RsaPublicKey::from_public_key_pem(text)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(text))
        .map_err(|_| ProtocolError::malformed("RSA public key", "not a PEM public key"))?;
    let data = xor_password_with_scramble(password, scramble);
    key.encrypt(rng, rsa::Oaep::new::<Sha1>(), &data)
        .map_err(|_| ProtocolError::malformed("RSA public key", "password too long for this key"))
}

fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

fn sha1_concat(a: &[u8], b: &[u8]) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(a);
    h.update(b);
    h.finalize().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `AuthSwitchRequest` (0xfe): the server asks the client to answer with
/// another plugin and a fresh scramble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSwitchRequest {
    /// Plugin the client must use.
    pub plugin_name: Vec<u8>,
    /// Its data, normally a 20-byte scramble (trailing NUL removed).
    pub plugin_data: Vec<u8>,
}

impl AuthSwitchRequest {
    /// Parses an auth-switch request payload.
    pub fn parse(payload: &[u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        if r.u8("auth switch header")? != 0xfe {
            return Err(ProtocolError::Unexpected("not an auth switch request"));
        }
        let plugin_name = r.nul_str_or_eof().to_vec();
        let data = r.rest();
        let data = data.strip_suffix(&[0]).unwrap_or(data);
        Ok(AuthSwitchRequest {
            plugin_name,
            plugin_data: data.to_vec(),
        })
    }

    /// Appends the payload (as a server sends it).
    pub fn write(&self, buf: &mut BytesMut) {
        buf.put_u8(0xfe);
        put_nul_str(buf, &self.plugin_name);
        put_nul_str(buf, &self.plugin_data);
    }
}

/// `AuthMoreData` (0x01): extra plugin data during authentication.
pub const AUTH_MORE_DATA: u8 = 0x01;

/// `caching_sha2_password` signals inside `AuthMoreData`.
pub mod caching_sha2 {
    /// The scramble matched the server's cache; an OK follows.
    pub const FAST_AUTH_SUCCESS: u8 = 0x03;
    /// The server needs the clear password (over TLS, or RSA-encrypted).
    pub const PERFORM_FULL_AUTHENTICATION: u8 = 0x04;
    /// Client byte asking the server for its RSA public key.
    pub const REQUEST_PUBLIC_KEY: u8 = 0x02;
}

/// What a client must do next in a `caching_sha2_password` exchange after the
/// server answered with `AuthMoreData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachingSha2Step {
    /// Fast auth succeeded: wait for the OK packet.
    AwaitOk,
    /// Send this payload (clear password over TLS, or a public-key request).
    Send(Vec<u8>),
    /// The server sent its PEM public key: RSA-OAEP-encrypt
    /// [`xor_password_with_scramble`] with it and send the result.
    EncryptWith(Vec<u8>),
}

/// Decides the client's next `caching_sha2_password` step from an
/// `AuthMoreData` payload. `secure` says the transport is TLS (or a Unix
/// socket), where the clear password may be sent.
pub fn caching_sha2_next(more_data: &[u8], password: &[u8], secure: bool) -> Result<CachingSha2Step> {
    let mut r = Reader::new(more_data);
    if r.u8("auth more data")? != AUTH_MORE_DATA {
        return Err(ProtocolError::Unexpected("not an AuthMoreData packet"));
    }
    let body = r.rest();
    match body {
        [caching_sha2::FAST_AUTH_SUCCESS] => Ok(CachingSha2Step::AwaitOk),
        [caching_sha2::PERFORM_FULL_AUTHENTICATION] if secure => {
            let mut clear = password.to_vec();
            clear.push(0);
            Ok(CachingSha2Step::Send(clear))
        }
        [caching_sha2::PERFORM_FULL_AUTHENTICATION] => {
            Ok(CachingSha2Step::Send(vec![caching_sha2::REQUEST_PUBLIC_KEY]))
        }
        pem if pem.starts_with(b"-----BEGIN") => Ok(CachingSha2Step::EncryptWith(pem.to_vec())),
        _ => Err(ProtocolError::malformed(
            "caching_sha2_password",
            "unknown AuthMoreData",
        )),
    }
}

#[cfg(test)]
mod tests;
