//! The cold half of a vehicle record: its latest observations and full diagnosis, kept as one
//! zstd frame of JSON (compressed against a dictionary of typical reports) and unpacked on demand.
//!
//! A fleet list reads only the hot summary (`Verdict`, `Glance`); the evidence, remedies and
//! raw answers are read for one vehicle at a time (the open vehicle, an export), so they are kept
//! at about a fifth of their in-memory size and cost nothing to save or load in a snapshot: the
//! snapshot carries the frame as it is.

use std::cell::RefCell;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

use crate::health::Diagnosis;
use crate::smartcar::Observation;

/// Typical packed reports, one per line: shared text (keys, endpoints, Smartcar's error
/// descriptions, remedies) that every frame can refer to instead of repeating.
static DICTIONARY: &[u8] = include_bytes!("../../assets/pack-dictionary.jsonl");
/// The fastest level that still uses the dictionary well: slower ones gain a few bytes, the
/// negative (fast) ones lose most of the dictionary's gain.
const LEVEL: i32 = 1;
/// A frame announcing more than this is corrupt (a report is a few kilobytes).
const MAX_UNPACKED: usize = 16 << 20;

static ENCODER: LazyLock<EncoderDictionary<'static>> =
    LazyLock::new(|| EncoderDictionary::copy(DICTIONARY, LEVEL));
static DECODER: LazyLock<DecoderDictionary<'static>> =
    LazyLock::new(|| DecoderDictionary::copy(DICTIONARY));

thread_local! {
    static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// What a packed frame holds.
#[derive(Serialize)]
struct Contents<'a> {
    observations: &'a [Observation],
    diagnosis: &'a Diagnosis,
}

#[derive(Deserialize)]
struct OwnedContents {
    #[serde(default)]
    observations: Vec<Observation>,
    diagnosis: Diagnosis,
}

/// Why a packed frame could not be read back (a damaged snapshot).
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("evidence frame is damaged: {0}")]
    Frame(String),
    #[error("evidence frame holds unreadable JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Identifies the dictionary frames are packed against: frames from another one do not unpack.
pub fn dictionary_id() -> u32 {
    crc32fast::hash(DICTIONARY)
}

/// Observations and diagnosis of one vehicle, compressed.
#[derive(Clone, PartialEq, Eq)]
pub struct Packed(Box<[u8]>);

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Packed({} bytes)", self.0.len())
    }
}

impl Packed {
    pub fn pack(observations: &[Observation], diagnosis: &Diagnosis) -> Packed {
        let json = serde_json::to_vec(&Contents {
            observations,
            diagnosis,
        })
        // Serializing these types cannot fail: every map key is a string.
        .unwrap_or_default();
        let frame = COMPRESSOR.with_borrow_mut(|slot| {
            if slot.is_none() {
                *slot = Compressor::with_prepared_dictionary(&ENCODER)
                    .and_then(|mut c| c.include_checksum(true).map(|()| c))
                    .ok();
            }
            slot.as_mut().and_then(|c| c.compress(&json).ok())
        });
        // Without a compressor (out of memory in zstd) the frame is stored uncompressed.
        Packed(frame.unwrap_or(json).into_boxed_slice())
    }

    /// The observations and the diagnosis, as packed.
    pub fn unpack(&self) -> Result<(Vec<Observation>, Diagnosis), UnpackError> {
        let json = if self.0.first() == Some(&b'{') {
            std::borrow::Cow::Borrowed(&self.0[..])
        } else {
            std::borrow::Cow::Owned(decompress(&self.0)?)
        };
        let contents: OwnedContents = serde_json::from_slice(&json)?;
        Ok((contents.observations, contents.diagnosis))
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A frame that does not unpack, as a damaged file would give.
    #[cfg(test)]
    pub(super) fn damaged() -> Packed {
        Packed(Box::from(&b"\x28\xb5\x2f\xfd damaged"[..]))
    }
}

fn decompress(frame: &[u8]) -> Result<Vec<u8>, UnpackError> {
    let size = zstd::zstd_safe::get_frame_content_size(frame)
        .map_err(|_| UnpackError::Frame("not a zstd frame".into()))?
        .ok_or_else(|| UnpackError::Frame("no content size".into()))?;
    let size = usize::try_from(size)
        .ok()
        .filter(|&s| s <= MAX_UNPACKED)
        .ok_or_else(|| UnpackError::Frame(format!("announces {size} bytes")))?;
    DECOMPRESSOR.with_borrow_mut(|slot| {
        if slot.is_none() {
            *slot = Decompressor::with_prepared_dictionary(&DECODER).ok();
        }
        let d = slot
            .as_mut()
            .ok_or_else(|| UnpackError::Frame("no decompressor".into()))?;
        d.decompress(frame, size)
            .map_err(|e| UnpackError::Frame(e.to_string()))
    })
}

/// Raw bytes: the snapshot's binary body carries the frame as it is.
impl Serialize for Packed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Packed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Packed, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Packed;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("packed evidence bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Packed, E> {
                Ok(Packed(Box::from(v)))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Packed, E> {
                Ok(Packed(v.into_boxed_slice()))
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Status;
    use crate::smartcar::{Answer, Meta, Probe};

    fn observation() -> Observation {
        Observation {
            probe: Probe::VirtualKey,
            endpoint: "GET /v2.0/vehicles/v1/tesla/virtual_key".into(),
            at: jiff::Timestamp::UNIX_EPOCH,
            meta: Meta {
                status: 200,
                request_id: Some("r-1".into()),
                ..Meta::default()
            },
            outcome: Ok(Answer::VirtualKey { is_paired: false }),
        }
    }

    #[test]
    fn a_packed_report_unpacks_to_what_was_packed() {
        let diagnosis = Diagnosis {
            status: Status::Blocked,
            findings: Vec::new(),
            checked_at: Some(jiff::Timestamp::UNIX_EPOCH),
        };
        let packed = Packed::pack(&[observation()], &diagnosis);
        let (observations, back) = packed.unpack().expect("unpacks");
        assert_eq!(observations, vec![observation()]);
        assert_eq!(back, diagnosis);
    }

    #[test]
    fn a_packed_report_survives_its_binary_form() {
        let packed = Packed::pack(&[observation()], &Diagnosis::unknown());
        let bytes = postcard::to_allocvec(&packed).expect("serializes");
        assert!(bytes.len() <= packed.len() + 2, "raw bytes, not text");
        let back: Packed = postcard::from_bytes(&bytes).expect("parses");
        assert_eq!(back, packed);
    }

    #[test]
    fn a_damaged_frame_is_an_error_not_a_panic() {
        let mut bytes = Packed::pack(&[observation()], &Diagnosis::unknown())
            .0
            .into_vec();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x5a;
        assert!(Packed(bytes.into_boxed_slice()).unpack().is_err());
        assert!(Packed(Box::from(&b"garbage"[..])).unpack().is_err());
        assert!(Packed(Box::from(&b""[..])).unpack().is_err());
    }
}
