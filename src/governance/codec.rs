//! Serde adapters for the values of the state that serde cannot round-trip
//! exactly on its own. Used with `#[serde(with = "...")]`.
//!
//! The state must survive serialization bit for bit: `govledger rebuild`
//! proves a rebuilt state identical to the live one by comparing digests, and
//! the live one may have been reloaded from a serialized snapshot.

/// `f64` as the shortest decimal string that parses back to the same bits.
///
/// serde_json without its `float_roundtrip` feature may parse a float one ULP
/// off, which would make a reloaded state differ from a rebuilt one. Rust's
/// `Debug` for `f64` is the shortest round-trip form and `str::parse` is
/// correctly rounded, so a string is exact in every format.
pub(super) mod exact_f64 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{value:?}"))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|_| D::Error::custom(format!("invalid number {text:?}")))
    }
}

/// A prost enumeration as its `i32` wire value.
pub(super) mod proto_enum {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<E, S>(value: &E, serializer: S) -> Result<S::Ok, S::Error>
    where
        E: Copy + Into<i32>,
        S: Serializer,
    {
        serializer.serialize_i32((*value).into())
    }

    pub(crate) fn deserialize<'de, E, D>(deserializer: D) -> Result<E, D::Error>
    where
        E: TryFrom<i32>,
        D: Deserializer<'de>,
    {
        let raw = i32::deserialize(deserializer)?;
        E::try_from(raw).map_err(|_| D::Error::custom(format!("unknown enum value {raw}")))
    }
}

/// A prost message as the hex of its protobuf encoding: the stored event
/// schema is already a stable, exact encoding, so the state reuses it rather
/// than mirroring the message in serde types.
pub(super) mod proto_message {
    use prost::Message;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<M: Message, S: Serializer>(
        message: &M,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::hex(&message.encode_to_vec()))
    }

    pub(crate) fn deserialize<'de, M, D>(deserializer: D) -> Result<M, D::Error>
    where
        M: Message + Default,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(deserializer)?;
        let bytes = super::unhex(&text).ok_or_else(|| D::Error::custom("invalid hex"))?;
        M::decode(bytes.as_slice()).map_err(D::Error::custom)
    }
}

/// Lower-case hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Inverse of [`hex`]; `None` on odd length or a non-hex character.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| char::from(c).to_digit(16);
            u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
