//! Compression on the uplink: `Content-Encoding: zstd` between a tower and the origin.
//!
//! A tower asks with `Accept-Encoding: zstd`; the origin compresses a chunk or a catalog
//! page when that saves at least an eighth of its bytes (text does; the random-looking
//! half of most media does not, and is sent as it is). Hashes stay over the content, not
//! the encoding: a tower decodes first and verifies what it decoded, so integrity is
//! checked exactly as before. Decoding is bounded: a body that would decode past the
//! limit is refused, never allocated (a small frame can claim gigabytes).
//!
//! Map: [`ZSTD`], [`accepts_zstd`], [`encode`], [`decode`].
//!
//! Not covered: other codings (gzip, br), compression of device traffic, dictionaries.

use hyper::http::HeaderMap;
use hyper::http::header::ACCEPT_ENCODING;
use std::io::Read;

/// The content coding's token.
pub const ZSTD: &str = "zstd";

/// zstd's level: fast enough to compress on every request (about 300 MB/s on one core
/// here), most of the ratio the higher levels reach on text.
const LEVEL: i32 = 3;

/// The largest decoding window accepted, as a power of two.
const WINDOW_LOG_MAX: u32 = 24;

/// Bodies shorter than this go as they are: a frame's header would eat the saving.
const SMALL: usize = 128;

/// Whether the request's `Accept-Encoding` lists zstd with a non-zero weight.
pub fn accepts_zstd(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            name.eq_ignore_ascii_case(ZSTD) && !zero
        })
}

/// `bytes` compressed, if that saves at least an eighth of them.
pub fn encode(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < SMALL {
        return None;
    }
    let packed = zstd::bulk::compress(bytes, LEVEL).ok()?;
    (packed.len() <= bytes.len() - bytes.len() / 8).then_some(packed)
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a zstd frame, or a broken one.
    #[error("not a valid zstd body: {0}")]
    Invalid(String),
    /// It decodes to more than the limit.
    #[error("the zstd body decodes to more than {0} bytes")]
    TooLarge(usize),
}

/// A zstd body decoded, refused once the output passes `limit` bytes or a frame asks for
/// a window larger than 16 MiB.
pub fn decode(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let invalid = |e: std::io::Error| DecodeError::Invalid(e.to_string());
    let mut decoder = zstd::stream::read::Decoder::new(body).map_err(invalid)?;
    // The window a frame may ask the decoder to keep: 16 MiB (the encoder at level 3 uses
    // at most 2 MiB), not zstd's default of 128 MiB.
    decoder.window_log_max(WINDOW_LOG_MAX).map_err(invalid)?;
    let mut out = Vec::new();
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Invalid(e.to_string()))?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::http::HeaderValue;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn zstd_is_accepted_only_when_listed_with_a_weight() {
        assert!(accepts_zstd(&accept("zstd")));
        assert!(accepts_zstd(&accept("gzip, ZSTD;q=0.5")));
        assert!(!accepts_zstd(&accept("gzip, br")));
        assert!(!accepts_zstd(&accept("zstd;q=0")));
        assert!(!accepts_zstd(&HeaderMap::new()));
    }

    #[test]
    fn text_is_compressed_and_decodes_to_itself_noise_is_left_alone() {
        let text: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("line {} of the schedule\n", i % 97).into_bytes())
            .collect();
        let packed = encode(&text).expect("text compresses");
        assert!(packed.len() * 4 < text.len());
        assert_eq!(decode(&packed, text.len()), Ok(text.clone()));
        // SHA-256 in counter mode: as incompressible as any media.
        let noise: Vec<u8> = (0u32..625)
            .flat_map(|i| sovereign_logic::content::ChunkHash::of(&i.to_le_bytes()).0)
            .collect();
        assert_eq!(encode(&noise), None);
        assert_eq!(encode(b"short"), None);
    }

    #[test]
    fn a_body_decoding_past_the_limit_or_broken_is_refused() {
        let zeros = vec![0u8; 1 << 20];
        let bomb = encode(&zeros).expect("zeros compress");
        assert!(bomb.len() < 1000);
        assert_eq!(
            decode(&bomb, 64 * 1024),
            Err(DecodeError::TooLarge(64 * 1024))
        );
        assert!(matches!(
            decode(b"not zstd at all", 100),
            Err(DecodeError::Invalid(_))
        ));
        let mut cut = bomb.clone();
        cut.truncate(bomb.len() / 2);
        assert!(decode(&cut, 1 << 21).is_err());
    }
}
