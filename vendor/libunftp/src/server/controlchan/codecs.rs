use super::{Reply, command::Command, error::ControlChanError, line_parser};

use bytes::BytesMut;
use std::io::Write;
use tokio_util::codec::{Decoder, Encoder};

// FTPCodec implements tokio's `Decoder` and `Encoder` traits for the control channel, that we'll
// use to decode FTP commands and encode their responses.
/// FERRY PATCH (line-limit): longest command line accepted, newline included (vsftpd's
/// VSFTP_MAX_COMMAND_LINE is 4096 too).
pub const MAX_COMMAND_LINE: usize = 4096;

pub struct FtpCodec {
    // Stored index of the next index to examine for a '\n' character. This is used to optimize
    // searching. For example, if `decode` was called with `abc`, it would hold `3`, because that
    // is the next index to examine. The next time `decode` is called with `abcde\n`, we will only
    // look at `de\n` before returning.
    next_index: usize,
    /// FERRY PATCH (command-log): where each command and reply is logged (debug), if anywhere.
    logger: Option<slog::Logger>,
}

impl FtpCodec {
    pub fn new() -> Self {
        FtpCodec { next_index: 0, logger: None }
    }

    /// FERRY PATCH (command-log): a codec that logs, at debug level, every command line it
    /// decodes and every reply it encodes: the conversation as the client sees it, which
    /// upstream's per-event logs (parsed structs, internal messages) do not show. PASS's
    /// argument is masked.
    pub fn logging_to(mut self, logger: slog::Logger) -> Self {
        self.logger = Some(logger);
        self
    }
}

/// FERRY PATCH (command-log): a command line as logged: without its line end, PASS's argument
/// masked.
fn loggable_command(line: &[u8]) -> String {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end_matches(['\r', '\n']);
    let verb = line.split(' ').next().unwrap_or_default();
    if verb.eq_ignore_ascii_case("PASS") { format!("{verb} ****") } else { line.to_owned() }
}

impl Decoder for FtpCodec {
    /// FERRY PATCH (parse-error-reply): a line that does not parse is an item, not a stream
    /// error. tokio-util's `Framed` ends the stream after a decoder error, so upstream closed the
    /// session after answering any malformed command (`REST abc`, `CWD` alone) with 501.
    type Item = Result<Command, ControlChanError>;
    type Error = ControlChanError;

    // Here we decode the incoming bytes into a meaningful command. We'll split on newlines, and
    // parse the resulting line using `Command::parse()`. This method will be called by tokio.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        if let Some(newline_offset) = buf[self.next_index..].iter().position(|b| *b == b'\n') {
            let newline_index = newline_offset + self.next_index;
            if newline_index >= MAX_COMMAND_LINE {
                // FERRY PATCH (line-limit): an over-long line that arrived in one read.
                buf.clear();
                self.next_index = 0;
                return Err(super::error::ControlChanErrorKind::LineTooLong.into());
            }
            let line = buf.split_to(newline_index + 1);
            self.next_index = 0;
            // FERRY PATCH (command-log)
            if let Some(logger) = &self.logger {
                slog::debug!(logger, "FTP command"; "command" => loggable_command(&line));
            }
            Ok(Some(line_parser::parse(line).map_err(ControlChanError::from)))
        } else if buf.len() > MAX_COMMAND_LINE {
            // FERRY PATCH (line-limit): upstream buffers until it sees `\n`, so a client that
            // never sends one grows server memory without bound. Refuse past vsftpd's limit.
            buf.clear();
            self.next_index = 0;
            Err(super::error::ControlChanErrorKind::LineTooLong.into())
        } else {
            self.next_index = buf.len();
            Ok(None)
        }
    }
}

impl Encoder<Reply> for FtpCodec {
    type Error = ControlChanError;

    // Here we encode the outgoing response
    fn encode(&mut self, reply: Reply, buf: &mut BytesMut) -> Result<(), Self::Error> {
        let mut buffer = vec![];
        match reply {
            Reply::None => {
                return Ok(());
            }
            Reply::CodeAndMsg { code, msg } => {
                if msg.is_empty() {
                    writeln!(buffer, "{}\r", code as u32)?;
                } else {
                    writeln!(buffer, "{} {}\r", code as u32, msg)?;
                }
            }
            Reply::MultiLine { code, mut lines } => {
                // Get the last line since it needs to be preceded by the response code.
                let last_line = lines.pop().unwrap_or_default();

                // Lines starting with a digit should be indented
                for it in lines.iter_mut() {
                    if it.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                        it.insert(0, ' ');
                    }
                }
                if lines.is_empty() {
                    writeln!(buffer, "{} {}\r", code as u32, last_line)?;
                } else {
                    write!(buffer, "{}-{}\r\n{} {}\r\n", code as u32, lines.join("\r\n"), code as u32, last_line)?;
                }
            }
        }
        // FERRY PATCH (command-log)
        if let Some(logger) = &self.logger {
            let text = String::from_utf8_lossy(&buffer);
            let code = text.get(..3).unwrap_or_default();
            slog::debug!(logger, "FTP reply"; "code" => code, "reply" => text.trim_end());
        }
        buf.extend(&buffer);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::ReplyCode;
    use super::*;

    #[test]
    fn encode_multiline_reply_with_blank_line_does_not_panic() {
        let mut codec = FtpCodec::new();
        let mut buf = BytesMut::new();
        let reply = Reply::new_multiline(ReplyCode::HelpMessage, vec!["Usage: foo", "", "Options:"]);

        codec.encode(reply, &mut buf).unwrap();

        assert_eq!(buf, "214-Usage: foo\r\n\r\n214 Options:\r\n".as_bytes());
    }

    /// FERRY PATCH (command-log)
    #[test]
    fn logged_command_lines_mask_the_password() {
        assert_eq!(loggable_command(b"PASS hunter2\r\n"), "PASS ****");
        assert_eq!(loggable_command(b"pass  two words\n"), "pass ****");
        assert_eq!(loggable_command(b"PASSIVE x\r\n"), "PASSIVE x");
        assert_eq!(loggable_command(b"USER alice\r\n"), "USER alice");
    }
}
