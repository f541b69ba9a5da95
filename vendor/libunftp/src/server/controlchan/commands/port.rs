//! The RFC 959 Data Port (`PORT`) command
//
// The argument is a HOST-PORT specification for the data port
// to be used in data connection.  There are defaults for both
// the user and server data ports, and under normal
// circumstances this command and its reply are not needed.  If
// this command is used, the argument is the concatenation of a
// 32-bit internet host address and a 16-bit TCP port address.
// This address information is broken into 8-bit fields and the
// value of each field is transmitted as a decimal number (in
// character string representation).  The fields are separated
// by commas.  A port command would be:
//
// PORT h1,h2,h3,h4,p1,p2
//
// where h1 is the high order 8 bits of the internet host
// address.

use crate::{
    auth::UserDetail,
    server::{
        ControlChanMsg,
        chancomms::DataChanCmd,
        controlchan::{
            Reply, ReplyCode,
            error::ControlChanError,
            handler::{CommandContext, CommandHandler},
        },
        datachan,
        session::SharedSession,
    },
    storage::{Metadata, StorageBackend},
};
use async_trait::async_trait;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{Receiver, Sender, channel};

#[derive(Debug)]
pub struct Port {
    addr: String,
}

impl Port {
    pub fn new(addr: String) -> Self {
        Port { addr }
    }

    // modifies the session by adding channels that are used to communicate with the data connection
    // processing loop.
    // FERRY PATCH (eprt): an associated function (no `self`), for `connect_active`.
    #[tracing_attributes::instrument]
    async fn setup_inter_loop_comms<S, U>(session: SharedSession<S, U>, control_loop_tx: Sender<ControlChanMsg>)
    where
        U: UserDetail + 'static,
        S: StorageBackend<U> + 'static,
        S::Metadata: Metadata,
    {
        let (cmd_tx, cmd_rx): (Sender<DataChanCmd>, Receiver<DataChanCmd>) = channel(1);
        let (data_abort_tx, data_abort_rx): (Sender<()>, Receiver<()>) = channel(1);

        let mut session = session.lock().await;
        session.data_cmd_tx = Some(cmd_tx);
        session.data_cmd_rx = Some(cmd_rx);
        session.data_abort_tx = Some(data_abort_tx);
        session.data_abort_rx = Some(data_abort_rx);
        session.control_msg_tx = Some(control_loop_tx);
    }
}

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Port
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    #[tracing_attributes::instrument]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        let CommandContext {
            logger,
            tx_control_chan: tx,
            session,
            ..
        } = args;

        let bytes: Vec<u8> = self.addr.split(',').map(|x| x.parse::<u8>()).filter_map(Result::ok).collect();
        if bytes.len() != 6 {
            return Ok(Reply::new(ReplyCode::ParameterSyntaxError, "Invalid address format"));
        }
        let port = ((bytes[4] as u16) << 8) | bytes[5] as u16;
        let addr = SocketAddrV4::new(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]), port);
        // FERRY PATCH (eprt): the connection is made by `connect_active`, shared with EPRT.
        Ok(Port::connect_active(SocketAddr::V4(addr), "PORT", session, tx, logger).await)
    }
}

impl Port {
    /// FERRY PATCH (eprt): opens the active-mode data connection that PORT or EPRT asked for and
    /// hands it to the data channel; the reply says whether that worked.
    pub(super) async fn connect_active<S, U>(addr: SocketAddr, command: &str, session: SharedSession<S, U>, tx: Sender<ControlChanMsg>, logger: slog::Logger) -> Reply
    where
        U: UserDetail + 'static,
        S: StorageBackend<U> + 'static,
        S::Metadata: Metadata,
    {
        let port = addr.port();
        // FERRY PATCH (port-bounce): refuse to connect anywhere but the client's own address, and
        // never to a privileged port (RFC 2577 section 3), *before* any connection is attempted:
        // upstream connects first and only then compares addresses, which still lets a client
        // use the server to probe third-party hosts.
        let client_ip = session.lock().await.source.ip().to_canonical();
        if addr.ip().to_canonical() != client_ip || port < 1024 {
            slog::warn!(logger, "Refusing {} to {} for a client at {}", command, addr, client_ip);
            let text = format!("{command} must name your own address and a port above 1023");
            return Reply::new_with_string(ReplyCode::CommandNotImplementedForParameter, text);
        }

        let stream: io::Result<TcpStream> = TcpStream::connect(addr).await;

        let stream = match stream {
            Err(e) => {
                slog::error!(logger, "Could not connect to client for active mode: {}", e);
                return Reply::new(ReplyCode::CantOpenDataConnection, "Could not establish data connection");
            }
            Ok(s) => s,
        };
        // FERRY PATCH (nodelay): the reply that follows a transfer must not wait on Nagle.
        let _ = stream.set_nodelay(true);

        Port::setup_inter_loop_comms(session.clone(), tx).await;
        datachan::spawn_processing(logger, session, stream).await;

        Reply::new_with_string(ReplyCode::CommandOkay, format!("{command} command successful"))
    }
}
