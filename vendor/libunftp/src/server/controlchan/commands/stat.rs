//! The RFC 959 Status (`STAT`) command
//
// This command shall cause a status response to be sent over
// the control connection in the form of a reply.  The command
// may be sent during a file transfer (along with the Telnet IP
// and Synch signals--see the Section on FTP Commands) in which
// case the server will respond with the status of the
// operation in progress, or it may be sent between file
// transfers.  In the latter case, the command may have an
// argument field.  If the argument is a pathname, the command
// is analogous to the "list" command except that data shall be
// transferred over the control connection.  If a partial
// pathname is given, the server may respond with a list of
// file names or attributes associated with that specification.
// If no argument is given, the server should return general
// status information about the server FTP process.  This
// should include current values of all transfer parameters and
// the status of connections.

use crate::{
    auth::UserDetail,
    server::{
        chancomms::ControlChanMsg,
        controlchan::{
            Reply, ReplyCode,
            error::ControlChanError,
            handler::{CommandContext, CommandHandler},
        },
    },
    storage::{Metadata, StorageBackend},
};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::mpsc::Sender;

#[derive(Debug)]
pub struct Stat {
    path: Option<Bytes>,
}

impl Stat {
    pub fn new(path: Option<Bytes>) -> Self {
        Stat { path }
    }
}

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Stat
where
    User: UserDetail,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: 'static + Metadata,
{
    #[tracing_attributes::instrument]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        match self.path.clone() {
            None => {
                let session = args.session.lock().await;
                // FERRY PATCH (server-name): no library name or version; and every status line
                // starts with a space, as a multi-line reply's inner lines should.
                let text: Vec<String> = vec![
                    format!("{} status", super::help::SERVER_NAME),
                    format!(" sbe: {}", session.storage.name()),
                    format!(" authenticator: {}", args.auth_pipeline.name()),
                    format!(" user: {}", session.username.as_deref().unwrap_or("-")),
                    format!(" client addr: {}", session.source),
                    format!(" ftps configured: {}", args.tls_configured),
                    format!(" cmd channel in tls mode: {}", session.cmd_tls),
                    format!(" data channel in tls mode: {}", session.data_tls),
                    format!(" cwd: {}", session.cwd.to_string_lossy()),
                    format!(" rename from path: {:?}", session.rename_from),
                    format!(" offset for REST: {}", session.start_pos),
                    "End of status".to_string(),
                ];
                Ok(Reply::new_multiline(ReplyCode::SystemStatus, text))
            }
            Some(path) => {
                // FERRY PATCH (stat-path): RFC 959 STAT with a path is LIST over the control
                // connection. Upstream listed the path as given (ignoring the working directory)
                // with `list_vec`, which fails for a file (451), sent the entries as a 200 reply
                // whose last line was an entry, and turned every error into 451. Now: the LIST
                // lines of a directory or a file, each indented, between `213-Status of "path":`
                // and `213 End of status`; storage errors keep their reply (550 for a missing path).
                let path_str = String::from_utf8_lossy(&path).to_string();

                let session = args.session.lock().await;
                let user = session.user.clone();
                let storage = Arc::clone(&session.storage);
                let path = session.cwd.join(&path_str);

                let tx: Sender<ControlChanMsg> = args.tx_control_chan.clone();
                let logger = args.logger;

                tokio::spawn(async move {
                    let msg = match storage.list_fmt((*user).as_ref().unwrap(), path).await {
                        Ok(listing) => {
                            slog::info!(logger, "STAT: Successfully listed file or directory {:?}", path_str);
                            let listing = String::from_utf8_lossy(listing.get_ref());
                            let mut lines = vec![format!("Status of \"{}\":", path_str.replace('"', "\"\""))];
                            lines.extend(listing.lines().map(|line| format!(" {line}")));
                            lines.push("End of status".to_string());
                            ControlChanMsg::CommandChannelReply(Reply::new_multiline(ReplyCode::FileStatus, lines))
                        }
                        Err(e) => {
                            slog::info!(logger, "STAT: Failure listing file or directory {:?}: {}", path_str, e);
                            ControlChanMsg::StorageError(e)
                        }
                    };
                    if let Err(err) = tx.send(msg).await {
                        slog::warn!(logger, "STAT: Could not send internal message with the STAT reply: {}", err);
                    }
                });
                Ok(Reply::none())
            }
        }
    }
}
