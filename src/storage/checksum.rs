//! File digests for HASH and its older forms (XSHA1, XSHA256, XMD5, XCRC): the algorithms a
//! client may choose, by the names draft-bryan-ftp-hash gives them, and a digest computed over
//! a reader in bounded chunks (a file of any size costs one buffer, never its whole length).

// sha2's re-export of the digest 0.10 trait, which sha1 and md-5 implement too.
use sha2::Digest as _;
use std::fmt;
use std::io::{self, Read};

/// Bytes read at a time. The same size as a large transfer buffer: big enough that a digest of
/// a large file is not dominated by system calls, small enough to be nothing per session.
const CHUNK_BYTES: usize = 256 * 1024;

/// A hash algorithm a client can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Sha1,
    Sha256,
    Sha512,
    Md5,
    Crc32,
}

impl HashAlgorithm {
    /// Every algorithm, in the order FEAT lists them.
    pub const ALL: [HashAlgorithm; 5] = [
        HashAlgorithm::Sha1,
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha512,
        HashAlgorithm::Md5,
        HashAlgorithm::Crc32,
    ];

    /// The name draft-bryan-ftp-hash uses (from IANA's "Hash Function Textual Names").
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha1 => "SHA-1",
            HashAlgorithm::Sha256 => "SHA-256",
            HashAlgorithm::Sha512 => "SHA-512",
            HashAlgorithm::Md5 => "MD5",
            HashAlgorithm::Crc32 => "CRC32",
        }
    }

    /// The algorithm a name stands for, in any letter case.
    pub fn from_name(name: &str) -> Option<HashAlgorithm> {
        HashAlgorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.name().eq_ignore_ascii_case(name.trim()))
    }

    fn hasher(self) -> Hasher {
        match self {
            HashAlgorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
            HashAlgorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            HashAlgorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The digest of a whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    /// Lower-case hexadecimal; CRC32 as its 8 digits, most significant first.
    pub hex: String,
    /// How many bytes were hashed: the file's length when it was read.
    pub len: u64,
}

enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Md5(md5::Md5),
    Crc32(crc32fast::Hasher),
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha1(hasher) => hasher.update(bytes),
            Hasher::Sha256(hasher) => hasher.update(bytes),
            Hasher::Sha512(hasher) => hasher.update(bytes),
            Hasher::Md5(hasher) => hasher.update(bytes),
            Hasher::Crc32(hasher) => hasher.update(bytes),
        }
    }

    fn finish_hex(self) -> String {
        match self {
            Hasher::Sha1(hasher) => hex(&hasher.finalize()),
            Hasher::Sha256(hasher) => hex(&hasher.finalize()),
            Hasher::Sha512(hasher) => hex(&hasher.finalize()),
            Hasher::Md5(hasher) => hex(&hasher.finalize()),
            Hasher::Crc32(hasher) => format!("{:08x}", hasher.finalize()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Digests everything `reader` yields, a chunk at a time. Blocking: run it off the runtime.
pub fn digest_reader(mut reader: impl Read, algorithm: HashAlgorithm) -> io::Result<Checksum> {
    let mut digest = Digest::new(algorithm);
    let mut buffer = vec![0u8; CHUNK_BYTES];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => digest.update(&buffer[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(digest.finish())
}

/// A digest fed chunk by chunk, for files that arrive as a stream (object storage).
pub struct Digest {
    hasher: Hasher,
    len: u64,
}

impl Digest {
    pub fn new(algorithm: HashAlgorithm) -> Digest {
        Digest {
            hasher: algorithm.hasher(),
            len: 0,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    pub fn finish(self) -> Checksum {
        Checksum {
            hex: self.hasher.finish_hex(),
            len: self.len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(bytes: &[u8], algorithm: HashAlgorithm) -> String {
        digest_reader(bytes, algorithm).expect("digest").hex
    }

    #[test]
    fn known_digests_of_abc() {
        // FIPS 180-2 and RFC 1321 test vectors; CRC32 of "abc" is 0x352441c2.
        assert_eq!(
            digest(b"abc", HashAlgorithm::Sha1),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            digest(b"abc", HashAlgorithm::Sha256),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(digest(b"abc", HashAlgorithm::Sha512).starts_with("ddaf35a193617aba"));
        assert_eq!(
            digest(b"abc", HashAlgorithm::Md5),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(digest(b"abc", HashAlgorithm::Crc32), "352441c2");
    }

    #[test]
    fn a_reader_longer_than_one_chunk_is_hashed_whole() {
        let bytes = vec![7u8; CHUNK_BYTES * 2 + 5];
        let whole = digest_reader(&bytes[..], HashAlgorithm::Md5).expect("digest");
        assert_eq!(whole.len, bytes.len() as u64);
        assert_eq!(whole.hex, hex(&md5::Md5::digest(&bytes)));
    }

    #[test]
    fn names_are_matched_in_any_case() {
        assert_eq!(
            HashAlgorithm::from_name("sha-256"),
            Some(HashAlgorithm::Sha256)
        );
        assert_eq!(HashAlgorithm::from_name("SHA256"), None);
        assert_eq!(
            HashAlgorithm::from_name("crc32"),
            Some(HashAlgorithm::Crc32)
        );
    }
}
