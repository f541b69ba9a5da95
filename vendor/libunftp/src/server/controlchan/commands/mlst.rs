//! The RFC 3659 Machine List Single (`MLST`) command
//
// This command causes a listing to be sent from the server to the user. If the pathname
// specifies a file or directory, the server will return information about the file or
// directory. The information is returned in a machine-readable format.

use crate::{
    auth::UserDetail,
    server::controlchan::{
        Reply, ReplyCode,
        error::ControlChanError,
        handler::{CommandContext, CommandHandler},
    },
    storage::{LISTING_REQUEST, ListingFormat, ListingRequest, Metadata, StorageBackend},
};
use async_trait::async_trait;
use std::sync::Arc;

#[derive(Debug)]
pub struct Mlst {
    path: Option<String>,
}

impl Mlst {
    pub fn new(path: Option<String>) -> Self {
        Mlst { path }
    }
}

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Mlst
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    #[tracing_attributes::instrument]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        let (user, storage, cwd, facts) = {
            let session = args.session.lock().await;
            (session.user.clone(), Arc::clone(&session.storage), session.cwd.clone(), session.mlst_facts.clone())
        };
        // FERRY PATCH (listings-by-backend): a relative path is relative to the working
        // directory (upstream used it as given and answered for another file), and the facts
        // are the backend's, as for MLSD, so that they can say what this user may do (`perm`).
        let path = match &self.path {
            Some(given) => cwd.join(given),
            None => cwd,
        };
        let Some(user) = (*user).as_ref() else {
            return Ok(Reply::new(ReplyCode::NotLoggedIn, "Please authenticate"));
        };
        let request = ListingRequest::new(ListingFormat::MlstEntry, facts);
        let facts = match LISTING_REQUEST.scope(request, storage.list_fmt(user, path.clone())).await {
            Ok(cursor) => String::from_utf8_lossy(&cursor.into_inner()).into_owned(),
            Err(e) => {
                return Ok(Reply::CodeAndMsg {
                    code: ReplyCode::FileError,
                    msg: e.to_string(),
                });
            }
        };
        let response = format!(" {} {}", facts, path.display());
        Ok(Reply::new_multiline(ReplyCode::FileActionOkay, vec![" Listing", &response, "End"]))
    }
}

/// FERRY PATCH (opts-mlst): the facts `format_facts` can write, as FEAT names them. All are
/// sent by default; OPTS MLST selects a subset (RFC 3659 section 7.9).
// FERRY PATCH (listings-by-backend): the backend writes the facts now (`format_facts` is gone),
// perm and UNIX.mode among them.
pub const MLST_FACTS: [&str; 5] = ["type", "size", "modify", "perm", "UNIX.mode"];
