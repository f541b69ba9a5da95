//! The RFC 2389 Options (`OPTS`) command
//
// The OPTS (options) command allows a user-PI to specify the desired
// behavior of a server-FTP process when another FTP command (the target
// command) is later issued.  The exact behavior, and syntax, will vary
// with the target command indicated, and will be specified with the
// definition of that command.  Where no OPTS behavior is defined for a
// particular command there are no options available for that command.

use super::mlst::MLST_FACTS;
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

/// The parameters that can be given to the `OPTS` command, specifying the option the client wants
/// to set.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum Opt {
    /// The client wants us to enable UTF-8 encoding for file paths and such.
    Utf8 { on: bool },
    /// FERRY PATCH (opts-mlst): the facts MLST and MLSD should send, as `fact;fact;`.
    Mlst { facts: String },
}

#[derive(Debug)]
pub struct Opts {
    option: Opt,
}

impl Opts {
    pub fn new(option: Opt) -> Self {
        Opts { option }
    }
}

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Opts
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    #[tracing_attributes::instrument]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        match &self.option {
            Opt::Utf8 { on: true } => Ok(Reply::new(ReplyCode::CommandOkay, "Always in UTF-8 mode.")),
            Opt::Utf8 { on: false } => Ok(Reply::new(ReplyCode::CommandNotImplementedForParameter, "Non UTF-8 mode not supported")),
            // FERRY PATCH (opts-mlst): select the facts we know among those asked for (unknown
            // ones are ignored, RFC 3659 section 7.9) and say which ones will be sent.
            Opt::Mlst { facts } => {
                let asked: Vec<&str> = facts.split(';').map(str::trim).collect();
                let selected: Vec<&'static str> = MLST_FACTS.into_iter().filter(|fact| asked.iter().any(|a| a.eq_ignore_ascii_case(fact))).collect();
                let echo: String = selected.iter().map(|fact| format!("{fact};")).collect();
                args.session.lock().await.mlst_facts = selected;
                Ok(Reply::new_with_string(ReplyCode::CommandOkay, format!("MLST OPTS {echo}").trim_end().to_string()))
            }
        }
    }
}
