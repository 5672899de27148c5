//! The value envelope `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`, the typed plaintext bytes
//! sops encrypts and hashes, and the data key.

use crate::tree::Value;
use aes_gcm::{AeadInPlace, AesGcm, KeyInit, aead::consts::U32, aes::Aes256};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use std::borrow::Cow;
use zeroize::Zeroizing;

/// sops uses 32-byte nonces, not GCM's usual 12, so GHASH derives the counter block.
type Aes256Gcm32 = AesGcm<Aes256, U32>;

/// The 32-byte key every value of a file is encrypted with.
pub(crate) struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    pub(crate) fn generate() -> Self {
        Self(Zeroizing::new(random()))
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        let key: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(Zeroizing::new(key)))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn cipher(&self) -> ValueCipher {
        let key: &[u8; 32] = &self.0;
        ValueCipher(Aes256Gcm32::new(key.into()))
    }
}

/// Random bytes from the operating system.
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    // Only fails where the OS offers no randomness at all; age's own key generation panics
    // there as well, so there is nothing a caller could do with an error.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

/// An initialised AES-256-GCM key, reused for every value of a file.
pub(crate) struct ValueCipher(Aes256Gcm32);

/// What went wrong when opening an envelope; the caller adds the file and path.
#[derive(Debug, PartialEq)]
pub(crate) enum OpenError {
    /// Not an `ENC[AES256_GCM,…]` string, or one with a field that does not decode.
    Malformed,
    /// The tag does not authenticate the ciphertext with this key and additional data.
    Forged,
}

/// An opened envelope.
pub(crate) struct Opened {
    pub(crate) plaintext: Zeroizing<Vec<u8>>,
    pub(crate) kind: String,
    pub(crate) iv: [u8; 32],
}

impl ValueCipher {
    /// Encrypts `plaintext` into an envelope of the given `type:`.
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8], kind: &str, iv: &[u8; 32]) -> String {
        let mut buffer = Zeroizing::new(plaintext.to_vec());
        let tag = self
            .0
            .encrypt_in_place_detached(iv.into(), aad, &mut buffer)
            // Only fails for plaintexts over 64 GiB, which no text file holds.
            .expect("AES-GCM refuses only inputs larger than 64 GiB");
        format!(
            "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{kind}]",
            STANDARD.encode(buffer.as_slice()),
            STANDARD.encode(iv),
            STANDARD.encode(tag),
        )
    }

    /// Decrypts an envelope; the IV is returned so unchanged values can keep it.
    pub(crate) fn open(&self, envelope: &str, aad: &[u8]) -> Result<Opened, OpenError> {
        let fields = parse_envelope(envelope).ok_or(OpenError::Malformed)?;
        let decode = |text: &str| STANDARD.decode(text).map_err(|_| OpenError::Malformed);
        let mut buffer = Zeroizing::new(decode(fields.data)?);
        let iv: [u8; 32] = decode(fields.iv)?
            .try_into()
            .map_err(|_| OpenError::Malformed)?;
        let tag = decode(fields.tag)?;
        if tag.len() != 16 {
            return Err(OpenError::Malformed);
        }
        self.0
            .decrypt_in_place_detached(
                iv.as_slice().into(),
                aad,
                &mut buffer,
                tag.as_slice().into(),
            )
            .map_err(|_| OpenError::Forged)?;
        Ok(Opened {
            plaintext: buffer,
            kind: fields.kind.to_owned(),
            iv,
        })
    }
}

struct Fields<'a> {
    data: &'a str,
    iv: &'a str,
    tag: &'a str,
    kind: &'a str,
}

/// The sops pattern `^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`.
fn parse_envelope(text: &str) -> Option<Fields<'_>> {
    let inner = text
        .strip_prefix("ENC[AES256_GCM,data:")?
        .strip_suffix(']')?;
    let (data, rest) = inner.split_once(",iv:")?;
    let (iv, rest) = rest.split_once(",tag:")?;
    let (tag, kind) = rest.split_once(",type:")?;
    [data, iv, tag, kind]
        .iter()
        .all(|field| !field.is_empty())
        .then_some(Fields {
            data,
            iv,
            tag,
            kind,
        })
}

/// Whether a string is an encrypted envelope (used for comments, which may be either).
pub(crate) fn is_envelope(text: &str) -> bool {
    parse_envelope(text).is_some()
}

/// Whether a string is an encrypted comment. sops writes a comment inside a YAML list as a
/// list item holding such an envelope, since YAML cannot attach it to an item.
pub(crate) fn is_comment_envelope(text: &str) -> bool {
    parse_envelope(text).is_some_and(|fields| fields.kind == "comment")
}

/// The plaintext bytes sops encrypts and hashes for a scalar, and its `type:` name.
///
/// `None` for values that are never encrypted: null and collections.
pub(crate) fn typed_bytes(
    value: &Value,
    bytes_as_str: bool,
) -> Option<(Cow<'_, [u8]>, &'static str)> {
    Some(match value {
        Value::Str(text) => (Cow::Borrowed(text.as_bytes()), "str"),
        Value::Int(number) => (Cow::Owned(number.to_string().into_bytes()), "int"),
        Value::Float(number) => (Cow::Owned(go_float(*number).into_bytes()), "float"),
        Value::Bool(true) => (Cow::Borrowed(b"True".as_slice()), "bool"),
        Value::Bool(false) => (Cow::Borrowed(b"False".as_slice()), "bool"),
        Value::Time(text) => (Cow::Borrowed(text.as_bytes()), "time"),
        Value::Bytes(bytes) if bytes_as_str => (Cow::Borrowed(bytes.as_slice()), "str"),
        Value::Bytes(bytes) => (Cow::Borrowed(bytes.as_slice()), "bytes"),
        Value::Null | Value::Map(_) | Value::Seq(_) => return None,
    })
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: shortest round-trip digits, never an exponent.
fn go_float(number: f64) -> String {
    if number.is_nan() {
        "NaN".to_owned()
    } else if number.is_infinite() {
        if number > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        // Rust's `Display` for f64 is the shortest round-trip form without an exponent.
        format!("{number}")
    }
}

/// Turns decrypted bytes back into a value of the envelope's `type:`.
///
/// Returns `None` when the bytes do not parse as that type.
pub(crate) fn typed_value(bytes: Zeroizing<Vec<u8>>, kind: &str) -> Option<Value> {
    let text = || std::str::from_utf8(&bytes).ok();
    Some(match kind {
        "str" => match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Value::Str(text),
            // The binary store encrypts raw file content as `str`.
            Err(error) => Value::Bytes(error.into_bytes()),
        },
        "int" => Value::Int(text()?.parse().ok()?),
        "float" => Value::Float(text()?.parse().ok()?),
        // Go's strconv.ParseBool.
        "bool" => Value::Bool(match text()? {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            _ => return None,
        }),
        "time" => Value::Time(text()?.to_owned()),
        "bytes" => Value::Bytes(bytes.to_vec()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_the_same_additional_data_only() {
        let cipher = DataKey::generate().cipher();
        let iv = random();
        let envelope = cipher.seal(b"hunter2", b"db:password:", "str", &iv);
        assert!(envelope.starts_with("ENC[AES256_GCM,data:"), "{envelope}");
        assert!(envelope.ends_with(",type:str]"));
        let opened = cipher.open(&envelope, b"db:password:").unwrap();
        assert_eq!(opened.plaintext.as_slice(), b"hunter2");
        assert_eq!((opened.kind.as_str(), opened.iv), ("str", iv));
        assert_eq!(
            cipher.open(&envelope, b"db:user:").err(),
            Some(OpenError::Forged)
        );
        assert_eq!(
            cipher
                .open("ENC[AES256_GCM,data:,iv:a,tag:b,type:str]", b"")
                .err(),
            Some(OpenError::Malformed)
        );
    }

    #[test]
    fn scalars_hash_as_go_formats_them() {
        let bytes = |value: Value| typed_bytes(&value, false).map(|(b, k)| (b.into_owned(), k));
        assert_eq!(bytes(Value::Bool(true)), Some((b"True".to_vec(), "bool")));
        assert_eq!(bytes(Value::Float(1.0)), Some((b"1".to_vec(), "float")));
        assert_eq!(
            bytes(Value::Float(1e21)),
            Some((b"1000000000000000000000".to_vec(), "float"))
        );
        assert_eq!(
            bytes(Value::Float(f64::NEG_INFINITY)),
            Some((b"-Inf".to_vec(), "float"))
        );
        assert_eq!(bytes(Value::Int(-12)), Some((b"-12".to_vec(), "int")));
        assert_eq!(bytes(Value::Null), None);
    }
}
