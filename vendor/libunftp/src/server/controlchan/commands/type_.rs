//! The RFC 959 Representation Type (`TYPE`) command
//
// The argument specifies the representation type as described
// in the Section on Data Representation and Storage.  Several
// types take a second parameter.  The first parameter is
// denoted by a single Telnet character, as is the second
// Format parameter for ASCII and EBCDIC; the second parameter
// for local byte is a decimal integer to indicate Bytesize.
// The parameters are separated by a <SP> (Space, ASCII code
// 32).
//
// The following codes are assigned for type:
//
//           \    /
// A - ASCII |    | N - Non-print
//           |-><-| T - Telnet format effectors
// E - EBCDIC|    | C - Carriage Control (ASA)
//           /    \
// I - Image
//
// L <byte size> - Local byte Byte size
//
//
// The default representation type is ASCII Non-print.  If the
// Format parameter is changed, and later just the first
// argument is changed, Format then returns to the Non-print
// default.

use crate::{
    auth::UserDetail,
    server::controlchan::{
        Reply, ReplyCode,
        error::ControlChanError,
        handler::{CommandContext, CommandHandler},
    },
    storage::{Metadata, StorageBackend},
};
use async_trait::async_trait;

// FERRY PATCH (ascii-type): upstream answered every TYPE with "Always in binary mode" and
// transferred bytes unchanged, so a client in TYPE A (FileZilla for .txt files) got LF line
// endings where RFC 959 (section 3.1.1.1) puts CRLF on the wire. The type is now kept in the
// session; RETR, STOR and APPE in TYPE A run with `storage::ascii_transfer()` true, and the
// storage backend converts. Sessions still start in TYPE I (RFC 959's default is A): a client
// that never sends TYPE has always had byte-exact transfers here, and keeps them.
#[derive(Debug)]
pub struct Type {
    ascii: bool,
}

impl Type {
    pub fn new(ascii: bool) -> Self {
        Type { ascii }
    }
}

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Type
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    #[tracing_attributes::instrument]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        args.session.lock().await.ascii = self.ascii;
        match self.ascii {
            true => Ok(Reply::new(ReplyCode::CommandOkay, "Switching to ASCII mode")),
            false => Ok(Reply::new(ReplyCode::CommandOkay, "Switching to Binary mode")),
        }
    }
}
