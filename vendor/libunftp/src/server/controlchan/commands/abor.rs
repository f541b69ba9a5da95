//! The RFC 959 Abort (`ABOR`) command
//
// This command tells the server to abort the previous FTP
// service command and any associated transfer of data. The
// abort command may require "special action", as discussed in
// the Section on FTP Commands, to force recognition by the
// server.  No action is to be taken if the previous command
// has been completed (including data transfer).  The control
// connection is not to be closed by the server, but the data
// connection must be closed.

use crate::server::controlchan::{
    Reply, ReplyCode,
    error::ControlChanError,
    handler::{CommandContext, CommandHandler},
};
use async_trait::async_trait;
use unftp_core::auth::UserDetail;
use unftp_core::storage::{Metadata, StorageBackend};

#[derive(Debug)]
pub struct Abor;

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Abor
where
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
    User: UserDetail + 'static,
{
    #[tracing_attributes::instrument]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        let mut session = args.session.lock().await;
        let logger = args.logger;
        // FERRY PATCH (abor-426): a running data channel answers the ABOR itself (426 then 226
        // when it cancelled a transfer, 226 otherwise), so that the 426 comes first; upstream
        // answered 226 alone. The data channel task holds its receiver once it runs; before that
        // (no connection yet) the abort waits for it and the ABOR is answered here.
        let data_channel_running = session.data_abort_rx.is_none();
        match session.data_abort_tx.take() {
            Some(tx) => match tx.try_send(()) {
                Ok(()) if data_channel_running => Ok(Reply::none()),
                Ok(()) => Ok(Reply::new(ReplyCode::ClosingDataConnection, "Closed data channel")),
                Err(err) => {
                    slog::debug!(logger, "ABOR: no transfer to abort: {}", err);
                    Ok(Reply::new(ReplyCode::ClosingDataConnection, "Data channel already closed"))
                }
            },
            None => Ok(Reply::new(ReplyCode::ClosingDataConnection, "Data channel already closed")),
        }
    }
}
