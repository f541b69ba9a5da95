//! FERRY PATCH (extension-commands): a command libunftp does not implement, handed to the
//! handler registered for it with `ServerBuilder::command_extension`.

use crate::{
    auth::UserDetail,
    options::ExtensionContext,
    server::{
        controlchan::{
            Reply, ReplyCode,
            error::ControlChanError,
            handler::{CommandContext, CommandHandler},
        },
        session::SessionState,
    },
    storage::{Metadata, StorageBackend},
};
use async_trait::async_trait;

#[derive(Debug)]
pub struct Extension {
    /// In upper case; `OPTS NAME` for an option of OPTS.
    command: String,
    arguments: String,
}

impl Extension {
    pub fn new(command: String, arguments: String) -> Self {
        Extension { command, arguments }
    }
}

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Extension
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    #[tracing_attributes::instrument]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        let (logged_in, cwd, storage, user) = {
            let session = args.session.lock().await;
            (session.state == SessionState::WaitCmd, session.cwd.clone(), session.storage.clone(), session.user.clone())
        };
        let extension = args.command_extensions.get(&self.command);
        // What upstream answered for a command or an option it does not know.
        let Some(extension) = extension else {
            // FERRY PATCH (quota-commands): upstream's answer to ALLO, now parsed as an extension.
            if self.command == "ALLO" && logged_in {
                return Ok(Reply::new(ReplyCode::CommandOkayNotImplemented, "Ignored"));
            }
            return Ok(if self.command.starts_with("OPTS ") {
                Reply::new(ReplyCode::ParameterSyntaxError, "Invalid Parameter")
            } else if !logged_in {
                Reply::new(ReplyCode::NotLoggedIn, "Please authenticate")
            } else {
                Reply::new(ReplyCode::CommandSyntaxError, "Command not implemented")
            });
        };
        if !logged_in && !extension.before_login() {
            return Ok(Reply::new(ReplyCode::NotLoggedIn, "Please authenticate"));
        }
        let context = ExtensionContext {
            command: self.command.clone(),
            arguments: self.arguments.clone(),
            logged_in,
            cwd,
            storage,
            user,
            logger: args.logger.clone(),
        };
        Ok(extension.handle(&context).await)
    }
}
