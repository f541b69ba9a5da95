//! TYPE A line-ending conversion (RFC 959 section 3.1.1.1: lines end in CRLF on the wire), as
//! ProFTPD does it: a download sends each LF that is not already preceded by CR as CRLF, an
//! upload stores each CRLF as LF. Nothing else changes: a lone CR stays a CR both ways, and a
//! file that already has CRLF line endings goes out unchanged.
//!
//! Both work on a stream of chunks: a CR at the end of one chunk and the LF that starts the
//! next are one line ending.

/// Downloads in TYPE A: LF → CRLF.
#[derive(Debug, Default)]
pub struct ToCrlf {
    /// The last byte converted was a CR (the previous chunk may have ended with it).
    after_cr: bool,
}

impl ToCrlf {
    /// Appends `chunk`, converted, to `out`.
    pub fn convert(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len() + chunk.len() / 16);
        for &byte in chunk {
            if byte == b'\n' && !self.after_cr {
                out.push(b'\r');
            }
            out.push(byte);
            self.after_cr = byte == b'\r';
        }
    }
}

/// Uploads in TYPE A: CRLF → LF.
#[derive(Debug, Default)]
pub struct FromCrlf {
    /// A CR ended the previous chunk: written only once the next byte shows it is not a CRLF.
    held_cr: bool,
}

impl FromCrlf {
    /// Appends `chunk`, converted, to `out`; a CR at its end is held for the next chunk.
    pub fn convert(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len() + 1);
        for &byte in chunk {
            if self.held_cr && byte != b'\n' {
                out.push(b'\r');
            }
            self.held_cr = byte == b'\r';
            if !self.held_cr {
                out.push(byte);
            }
        }
    }

    /// At the end of the upload: writes a CR still held (the upload ended with a lone CR).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.held_cr) {
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every interesting case: CRLF, a lone LF, a lone CR, CR CR LF, a CR at the very end.
    const FILE: &[u8] = b"a\nb\r\nc\rd\r\r\ne\n\n\r";

    fn send_in_two(input: &[u8], split: usize) -> Vec<u8> {
        let mut converter = ToCrlf::default();
        let mut out = Vec::new();
        converter.convert(&input[..split], &mut out);
        converter.convert(&input[split..], &mut out);
        out
    }

    fn receive_in_two(input: &[u8], split: usize) -> Vec<u8> {
        let mut converter = FromCrlf::default();
        let mut out = Vec::new();
        converter.convert(&input[..split], &mut out);
        converter.convert(&input[split..], &mut out);
        converter.finish(&mut out);
        out
    }

    #[test]
    fn sending_turns_each_bare_lf_into_crlf_at_every_split_point() {
        let expected: &[u8] = b"a\r\nb\r\nc\rd\r\r\ne\r\n\r\n\r";
        for split in 0..=FILE.len() {
            assert_eq!(send_in_two(FILE, split), expected, "split at {split}");
        }
    }

    #[test]
    fn receiving_turns_each_crlf_into_lf_at_every_split_point() {
        let expected: &[u8] = b"a\nb\nc\rd\r\ne\n\n\r";
        for split in 0..=FILE.len() {
            assert_eq!(receive_in_two(FILE, split), expected, "split at {split}");
        }
    }

    #[test]
    fn a_crlf_split_between_chunks_is_one_line_ending() {
        let wire = b"one\r\ntwo\r\n";
        for split in 0..=wire.len() {
            assert_eq!(
                receive_in_two(wire, split),
                b"one\ntwo\n",
                "split at {split}"
            );
        }
        let mut converter = FromCrlf::default();
        let mut out = Vec::new();
        for byte in wire {
            converter.convert(std::slice::from_ref(byte), &mut out);
        }
        converter.finish(&mut out);
        assert_eq!(out, b"one\ntwo\n", "one byte at a time");
    }

    #[test]
    fn a_download_converted_and_uploaded_again_is_the_file() {
        let file = b"line 1\nline 2\n\nlast";
        for split in 0..=file.len() {
            let wire = send_in_two(file, split);
            assert_eq!(receive_in_two(&wire, wire.len() / 2), file);
        }
    }
}
