use crate::server::switchboard::SocketAddrPair;
use crate::{
    auth::{AuthenticationPipeline, UserDetail},
    metrics::MetricsMiddleware,
    notification::{DataListener, PresenceListener},
    options::ActivePassiveMode,
    server::{
        Event, Session, SessionState,
        chancomms::{ControlChanMsg, SwitchboardMessage, SwitchboardSender},
        controlchan::{
            Reply, ReplyCode,
            active_passive::ActivePassiveEnforcerMiddleware,
            auth::AuthMiddleware,
            codecs::FtpCodec,
            command::Command,
            commands,
            error::ControlChanError,
            error::ControlChanErrorKind,
            ftps::{FtpsControlChanEnforcerMiddleware, FtpsDataChanEnforcerMiddleware},
            handler::{CommandContext, CommandHandler},
            log::LoggingMiddleware,
            middleware::ControlChanMiddleware,
            notify::EventDispatcherMiddleware,
        },
        failed_logins::FailedLoginsCache,
        ftpserver::options::{FtpsRequired, PassiveHost, SiteCommandHandler, SiteMd5},
        session::SharedSession,
        shutdown,
        tls::FtpsConfig,
    },
    storage::{ErrorKind, Metadata, StorageBackend},
};
use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use rustls::ServerConnection;
use std::{collections::HashMap, net::SocketAddr, ops::RangeInclusive, sync::Arc, time::Duration};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::{
        Mutex,
        mpsc::{Receiver, Sender, channel},
    },
    task::JoinHandle,
};
use tokio_util::codec::{Decoder, Framed};

trait AsyncReadAsyncWriteSendUnpin: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncReadAsyncWriteSendUnpin for T {}

#[derive(Debug, Clone)]
pub struct Config<Storage, User>
where
    Storage: StorageBackend<User>,
    User: UserDetail,
{
    pub storage: Storage,
    pub greeting: &'static str,
    pub auth_pipeline: Arc<AuthenticationPipeline<User>>,
    pub passive_ports: RangeInclusive<u16>,
    pub passive_host: PassiveHost,
    pub ftps_config: FtpsConfig,
    pub collect_metrics: bool,
    pub idle_session_timeout: Duration,
    pub logger: slog::Logger,
    pub ftps_required_control_chan: FtpsRequired,
    pub ftps_required_data_chan: FtpsRequired,
    pub site_md5: SiteMd5,
    pub site_handlers: Arc<HashMap<String, Arc<dyn SiteCommandHandler<Storage, User>>>>,
    // FERRY PATCH (extension-commands)
    pub command_extensions: crate::options::CommandExtensions<Storage, User>,
    pub data_listener: Arc<dyn DataListener>,
    pub presence_listener: Arc<dyn PresenceListener>,
    pub active_passive_mode: ActivePassiveMode,
    pub binder: Arc<std::sync::Mutex<Option<Box<dyn crate::options::Binder>>>>,
    /// FERRY PATCH (implicit-tls): the connection speaks TLS from its first byte (implicit
    /// FTPS): the handshake comes before the greeting, and the session starts as after
    /// `AUTH TLS`, `PBSZ 0` and `PROT P`.
    pub implicit_tls: bool,
    /// FERRY PATCH (proxy-peer): the client's address when the connection came through a proxy
    /// (`Server::service_with_peer`), used wherever the peer address would be; None: the peer.
    pub client: Option<SocketAddr>,
    /// FERRY PATCH (proxy-peer): finds the client behind each passive data connection.
    pub data_peers: Option<Arc<dyn crate::options::DataPeerResolver>>,
}

/// Does TCP processing when an FTP client connects
#[tracing_attributes::instrument]
pub(crate) async fn spawn<Storage, User>(
    config: Config<Storage, User>,
    tcp_stream: TcpStream,
    control_connection: Option<SocketAddrPair>,
    switchboard_msg_tx: Option<SwitchboardSender<Storage, User>>,
    mut shutdown: shutdown::Listener,
    failed_logins: Option<Arc<FailedLoginsCache>>,
) -> Result<JoinHandle<()>, ControlChanError>
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    let Config {
        storage,
        auth_pipeline,
        passive_ports,
        passive_host,
        ftps_config,
        ftps_required_control_chan,
        ftps_required_data_chan,
        collect_metrics,
        idle_session_timeout,
        logger,
        site_md5: sitemd5,
        site_handlers,
        // FERRY PATCH (extension-commands)
        command_extensions,
        data_listener,
        presence_listener,
        active_passive_mode,
        binder,
        implicit_tls,
        // FERRY PATCH (proxy-peer)
        client,
        data_peers,
        ..
    } = config;

    let tls_configured = matches!(ftps_config, FtpsConfig::On { .. });
    let storage_features = storage.supported_features();
    let (control_msg_tx, mut control_msg_rx): (Sender<ControlChanMsg>, Receiver<ControlChanMsg>) = channel(1);
    let local_addr = tcp_stream.local_addr()?;
    // FERRY PATCH (proxy-peer): behind a proxy the client is not the TCP peer.
    let source = match client {
        Some(client) => client,
        None => tcp_stream.peer_addr()?,
    };
    let mut session: Session<Storage, User> = Session::new(Arc::new(storage), source)
        .ftps(ftps_config.clone())
        .metrics(collect_metrics)
        .control_msg_tx(control_msg_tx.clone())
        .control_connection(control_connection)
        .failed_logins(failed_logins);
    if let Some(b) = binder.lock().unwrap().take() {
        session = session.binder(b);
    }
    session.data_peers = data_peers; // FERRY PATCH (proxy-peer)
    // FERRY PATCH (implicit-tls): upstream's control loop always began in plaintext, so the
    // control connection could only be secured with AUTH TLS (explicit FTPS).
    let io: Box<dyn AsyncReadAsyncWriteSendUnpin> = if implicit_tls {
        let FtpsConfig::On { tls_config } = ftps_config.clone() else {
            return Err(std::io::Error::other("implicit TLS without a TLS configuration").into());
        };
        let acceptor: tokio_rustls::TlsAcceptor = tls_config.into();
        let stream = match tokio::time::timeout(CONTROL_TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp_stream)).await {
            Ok(accepted) => accepted?,
            Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake on the control connection timed out").into()),
        };
        if let Some(certs) = stream.get_ref().1.peer_certificates() {
            session.cert_chain = Some(certs.iter().map(|c| unftp_core::auth::ClientCert(c.as_ref().to_vec())).collect());
        }
        session.cmd_tls = true;
        session.data_tls = true;
        Box::new(stream)
    } else {
        Box::new(tcp_stream)
    };

    let mut logger = logger.new(
        slog::o!("trace-id" => format!("{}", session.trace_id), "source" => format!("{}", session.control_connection.map(|p| p.source).unwrap_or(session.source))),
    );

    let shared_session: SharedSession<Storage, User> = Arc::new(Mutex::new(session));

    let event_chain = PrimaryEventHandler {
        logger: logger.clone(),
        session: shared_session.clone(),
        auth_pipeline: auth_pipeline.clone(),
        tls_configured,
        passive_ports,
        passive_host,
        tx_control_chan: control_msg_tx,
        local_addr,
        storage_features,
        tx_proxy_loop: switchboard_msg_tx.clone(),
        sitemd5,
        site_handlers,
        // FERRY PATCH (extension-commands)
        command_extensions,
    };

    let event_chain = EventDispatcherMiddleware::new(data_listener, presence_listener, event_chain);

    let event_chain = ActivePassiveEnforcerMiddleware {
        mode: active_passive_mode,
        next: event_chain,
    };

    let event_chain = AuthMiddleware {
        session: shared_session.clone(),
        next: event_chain,
    };

    let event_chain = FtpsControlChanEnforcerMiddleware {
        session: shared_session.clone(),
        ftps_requirement: ftps_required_control_chan,
        next: event_chain,
    };

    let event_chain = FtpsDataChanEnforcerMiddleware {
        session: shared_session.clone(),
        ftps_requirement: ftps_required_data_chan,
        next: event_chain,
    };

    let event_chain = LoggingMiddleware {
        logger: logger.clone(),
        sequence_nr: 0,
        next: event_chain,
    };

    let mut event_chain = MetricsMiddleware {
        collect_metrics,
        next: event_chain,
    };

    // FERRY PATCH (command-log): logs each command and reply at debug level.
    let codec = FtpCodec::new().logging_to(logger.clone());
    let cmd_and_reply_stream: Framed<Box<dyn AsyncReadAsyncWriteSendUnpin>, FtpCodec> = codec.framed(io); // FERRY PATCH (implicit-tls)
    let (mut reply_sink, mut command_source) = cmd_and_reply_stream.split();

    reply_sink.send(Reply::new(ReplyCode::ServiceReady, config.greeting)).await?;
    reply_sink.flush().await?;

    // FERRY PATCH (data-channel-released): whatever way the loop below ends.
    let release_data_channel = ReleaseDataChannelOnExit(shared_session.clone());
    let jh = tokio::spawn(async move {
        let _release_data_channel = release_data_channel;
        // The control channel event loop
        slog::info!(logger, "Starting control loop");
        // FERRY PATCH (auth-tls-race): set between the 234 reply to AUTH TLS and the upgrade.
        let mut tls_upgrade_pending = false;
        // FERRY PATCH (reply-order): set while the last command's reply is still to come as an
        // internal message from the task doing its work (PASS, MKD, SIZE, RETR...). Upstream read
        // the next command meanwhile, so a client that pipelines `USER/PASS/PWD` got the reply to
        // PWD before the 230. The next command is read only once that reply has been sent.
        let mut reply_pending = false;
        // FERRY PATCH (service-shutdown): set when the loop ends because of a shutdown signal.
        let mut shutting_down = false;
        // FERRY PATCH (control-close-notify): the loop ends with `break` (upstream returned), so
        // that the connection is closed properly below, whatever ended it.
        loop {
            let incoming = {
                #[allow(unused_assignments)]
                let mut incoming = None;
                let mut timeout_delay = Box::pin(tokio::time::sleep(idle_session_timeout));
                tokio::select! {
                    // FERRY PATCH (auth-tls-race): the upgrade is signalled by an internal
                    // message sent from another task. Upstream went on reading commands until
                    // that message came, so a client quick to send its ClientHello after 234 had
                    // it read (and answered, or lost) as a command line. Until the upgrade, only
                    // internal messages are read; the socket is left to the TLS handshake.
                    cmd = command_source.next(), if !tls_upgrade_pending && !reply_pending => {
                        match cmd {
                            // FERRY PATCH (parse-error-reply): a line that did not parse comes as
                            // `Ok(Err(..))`; it is answered below and the session goes on.
                            Some(cmd_result) => incoming = Some(cmd_result.and_then(|parsed| parsed).map(Event::Command)),
                            None => {
                                slog::info!(logger, "Control connection was closed.");
                                incoming = Some(Ok(Event::InternalMsg(ControlChanMsg::ExitControlLoop)))
                            }
                        }
                    },
                    Some(msg) = control_msg_rx.recv() => {
                        incoming = Some(Ok(Event::InternalMsg(msg)));
                    },
                    _ = &mut timeout_delay => {
                        let session = shared_session.lock().await;
                        match session.data_busy {
                            true => incoming = None,
                            false => incoming = Some(Err(ControlChanError::new(ControlChanErrorKind::ControlChannelTimeout)))
                        };
                    },
                    _ = shutdown.listen() => {
                        slog::info!(logger, "Closing open control connection because of shutdown signal");
                        shutting_down = true; // FERRY PATCH (service-shutdown)
                        incoming = Some(Ok(Event::InternalMsg(ControlChanMsg::ExitControlLoop)))
                        // TODO: Do we want to wait a bit for a data transfer to complete i.e. session.data_busy is true?
                    }
                }
                incoming
            };
            match incoming {
                None => {} // Loop again
                Some(Ok(Event::InternalMsg(ControlChanMsg::ExitControlLoop))) => {
                    // FERRY PATCH (service-shutdown): upstream closed without a word. A close
                    // the server decides on is announced with 421 (RFC 959 section 4.2), and sent
                    // here, through the reply sink, so that a secured session gets it inside TLS.
                    if shutting_down {
                        let text = shutdown.reply().unwrap_or("Service shutting down. Closing control connection").to_owned();
                        let reply = Reply::new_with_string(ReplyCode::ServiceNotAvailable, text);
                        if tokio::time::timeout(CONTROL_CLOSE_TIMEOUT, reply_sink.send(reply)).await.is_err() {
                            slog::debug!(logger, "Timed out sending 421 at shutdown");
                        }
                    }
                    let _ = event_chain.handle(Event::InternalMsg(ControlChanMsg::ExitControlLoop)).await;
                    if let Some(tx) = switchboard_msg_tx
                        && let Err(err) = tx.send(SwitchboardMessage::CloseDataPortCommand(shared_session.clone())).await
                    {
                        slog::warn!(logger, "Could not send CloseDataPortCommand to channel: {}", err);
                        break; // FERRY PATCH (control-close-notify)
                    };
                    slog::debug!(logger, "Exiting control loop");
                    break; // FERRY PATCH (control-close-notify)
                }
                Some(Ok(event)) => {
                    if let Event::InternalMsg(ControlChanMsg::SecureControlChannel) = event {
                        slog::info!(logger, "Upgrading control channel to TLS");

                        // Get back the original TCP Stream
                        let codec_io = reply_sink.reunite(command_source).unwrap();
                        let io = codec_io.into_inner();

                        // Wrap in TLS Stream
                        let acceptor: tokio_rustls::TlsAcceptor = match ftps_config.clone() {
                            FtpsConfig::On { tls_config } => tls_config.into(),
                            _ => panic!("Could not create TLS acceptor. Illegal program state"),
                        };
                        // FERRY PATCH (auth-tls-race): commands are read again from the TLS stream.
                        tls_upgrade_pending = false;
                        // FERRY PATCH (control-tls-handshake): bounded, as on the data channel; upstream
                        // waited forever for a client that sent AUTH TLS and then nothing.
                        let accepted = match tokio::time::timeout(CONTROL_TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                            Ok(accepted) => accepted,
                            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake on the control connection timed out")),
                        };
                        let io: Box<dyn AsyncReadAsyncWriteSendUnpin> = match accepted {
                            Ok(stream) => {
                                let s: &ServerConnection = stream.get_ref().1;
                                if let Some(certs) = s.peer_certificates() {
                                    let mut session = shared_session.lock().await;
                                    session.cert_chain = Some(certs.iter().map(|c| unftp_core::auth::ClientCert(c.as_ref().to_vec())).collect());
                                }
                                Box::new(stream)
                            }
                            Err(err) => {
                                slog::warn!(logger, "Closing control channel. Could not upgrade to TLS: {}", err);
                                return;
                            }
                        };

                        // Wrap in codec again and get sink + source
                        // FERRY PATCH (command-log)
                        let codec = FtpCodec::new().logging_to(logger.clone());
                        let cmd_and_reply_stream = codec.framed(io);
                        let (sink, src) = cmd_and_reply_stream.split();
                        reply_sink = sink;
                        command_source = src;
                    }

                    if let Event::Command(Command::User { username }) = &event {
                        let s: String = String::from_utf8_lossy(username).into();
                        logger = logger.new(slog::o!("username" => s));
                    }

                    // TODO: Handle Event::InternalMsg(InternalMsg::PlaintextControlChannel)

                    let is_auth = matches!(event, Event::Command(Command::Auth { .. }));
                    let is_command = matches!(event, Event::Command(_));
                    let transfer_aborted = matches!(event, Event::InternalMsg(ControlChanMsg::TransferAborted));
                    let handle_result = match event_chain.handle(event).await {
                        Err(e) => Err(e),
                        Ok(reply) => {
                            // FERRY PATCH (reply-order): see `reply_pending`.
                            let is_reply = !matches!(reply, Reply::None);
                            if is_command {
                                reply_pending = !is_reply;
                            } else if is_reply {
                                reply_pending = false;
                            }
                            // FERRY PATCH (auth-tls-race): see `tls_upgrade_pending`.
                            if is_auth && matches!(reply, Reply::CodeAndMsg { code: ReplyCode::AuthOkayNoDataNeeded, .. }) {
                                tls_upgrade_pending = true;
                            }
                            match reply_sink.send(reply).await {
                                // FERRY PATCH (abor-426): RFC 959 section 4.1.3: the aborted
                                // transfer's 426 comes first, then the reply to ABOR itself.
                                Ok(()) if transfer_aborted => reply_sink.send(Reply::new(ReplyCode::ClosingDataConnection, "ABOR successful")).await,
                                result => result,
                            }
                        }
                    };

                    if let Err(chan_err) = handle_result {
                        slog::warn!(logger, "Event handler chain error: {:?}. Closing control connection", chan_err);
                        break; // FERRY PATCH (control-close-notify)
                    }
                }
                Some(Err(e)) => {
                    let (reply, close_connection) = handle_control_channel_error(logger.clone(), e);
                    let result = reply_sink.send(reply).await;
                    if result.is_err() {
                        slog::warn!(logger, "Could not send error reply to client");
                        break; // FERRY PATCH (control-close-notify)
                    }
                    if close_connection {
                        break; // FERRY PATCH (control-close-notify)
                    }
                }
            }
        }
        // FERRY PATCH (control-close-notify): upstream dropped the connection when the loop
        // ended (QUIT, idle timeout, shutdown), so a TLS session ended without close_notify and
        // clients reported a truncated connection (FileZilla: "GnuTLS error -110"). Closing the
        // sink flushes the last reply and shuts the stream down: close_notify, then FIN.
        // Bounded, since a client that reads nothing would hold the task.
        match tokio::time::timeout(CONTROL_CLOSE_TIMEOUT, reply_sink.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => slog::debug!(logger, "Could not close the control connection cleanly: {:?}", err),
            Err(_) => slog::debug!(logger, "Timed out closing the control connection"),
        }
    });

    Ok(jh)
}

/// FERRY PATCH (control-close-notify): how long the last reply and close_notify may take to
/// send when the control loop ends.
const CONTROL_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// FERRY PATCH (control-tls-handshake): how long a client has to complete the TLS handshake
/// after AUTH TLS (the data channel's bound, `DATA_TLS_HANDSHAKE_TIMEOUT`, is the same).
const CONTROL_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

// gets the reply to be sent to the client and tells if the connection should be closed.
fn handle_control_channel_error(logger: slog::Logger, error: ControlChanError) -> (Reply, bool) {
    slog::warn!(logger, "Control channel error: {:?}", error);
    match error.kind() {
        ControlChanErrorKind::UnknownCommand { .. } => (Reply::new(ReplyCode::CommandSyntaxError, "Command not implemented"), false),
        ControlChanErrorKind::Utf8Error => (Reply::new(ReplyCode::CommandSyntaxError, "Invalid UTF8 in command"), true),
        ControlChanErrorKind::InvalidCommand => (Reply::new(ReplyCode::ParameterSyntaxError, "Invalid Parameter"), false),
        // FERRY PATCH (line-limit): say why, then close: the rest of the line is unread.
        ControlChanErrorKind::LineTooLong => (Reply::new(ReplyCode::CommandSyntaxError, "Command line too long"), true),
        // FERRY PATCH (timeout-421): 221 is the reply to QUIT; a client that has just sent a
        // command (FileZilla, USER) takes it for that command's reply. A close the server
        // decides on is 421 (RFC 959 section 4.2).
        ControlChanErrorKind::ControlChannelTimeout => (Reply::new(ReplyCode::ServiceNotAvailable, "Session timed out. Closing control connection"), true),
        _ => (Reply::new(ReplyCode::LocalError, "Unknown internal server error, please try again later"), true),
    }
}

#[derive(Debug)]
struct PrimaryEventHandler<Storage, User>
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    logger: slog::Logger,
    session: SharedSession<Storage, User>,
    auth_pipeline: Arc<AuthenticationPipeline<User>>,
    tls_configured: bool,
    passive_ports: RangeInclusive<u16>,
    passive_host: PassiveHost,
    tx_control_chan: Sender<ControlChanMsg>,
    local_addr: SocketAddr,
    storage_features: u32,
    tx_proxy_loop: Option<SwitchboardSender<Storage, User>>,
    sitemd5: SiteMd5,
    site_handlers: Arc<HashMap<String, Arc<dyn SiteCommandHandler<Storage, User>>>>,
    // FERRY PATCH (extension-commands)
    command_extensions: crate::options::CommandExtensions<Storage, User>,
}

impl<Storage, User> PrimaryEventHandler<Storage, User>
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    #[tracing_attributes::instrument]
    async fn handle_internal_msg(&self, msg: ControlChanMsg) -> Result<Reply, ControlChanError> {
        use self::ControlChanMsg::*;
        use SessionState::*;

        match msg {
            NotFound => Ok(Reply::new(ReplyCode::FileError, "File not found")),
            PermissionDenied => Ok(Reply::new(ReplyCode::FileError, "Permision denied")),
            SentData { .. } => {
                let mut session = self.session.lock().await;
                session.start_pos = 0;
                Ok(Reply::new(ReplyCode::ClosingDataConnection, "Successfully sent"))
            }
            WriteFailed => Ok(Reply::new(ReplyCode::TransientFileError, "Failed to write file")),
            ConnectionReset => Ok(Reply::new(ReplyCode::ConnectionClosed, "Datachannel unexpectedly closed")),
            WrittenData { .. } => {
                let mut session = self.session.lock().await;
                session.start_pos = 0;
                Ok(Reply::new(ReplyCode::ClosingDataConnection, "File successfully written"))
            }
            DataConnectionClosedAfterStor => Ok(Reply::new(ReplyCode::FileActionOkay, "unFTP holds your data for you")),
            DirectorySuccessfullyListed => Ok(Reply::new(ReplyCode::ClosingDataConnection, "Listed the directory")),
            DirectoryListFailure => Ok(Reply::new(ReplyCode::ClosingDataConnection, "Failed to list the directory")),
            CwdSuccess => Ok(Reply::new(ReplyCode::FileActionOkay, "Successfully changed working directory")),
            DelFileSuccess { .. } | RmDirSuccess { .. } => Ok(Reply::new(ReplyCode::FileActionOkay, "Successfully removed")),
            DelFail => Ok(Reply::new(ReplyCode::TransientFileError, "Failed to delete the file")),
            ExitControlLoop => Ok(Reply::none()),
            SecureControlChannel => {
                let mut session = self.session.lock().await;
                session.cmd_tls = true;
                Ok(Reply::none())
            }
            PlaintextControlChannel => {
                let mut session = self.session.lock().await;
                session.cmd_tls = false;
                Ok(Reply::none())
            }
            // FERRY PATCH (mkd-replies): RFC 959 (section 4.2 and appendix II) quotes the path
            // of a 257 reply and doubles a `"` inside it; upstream sent the bare path.
            MkDirSuccess { path } => Ok(Reply::new_with_string(ReplyCode::DirCreated, format!("\"{}\" created", path.replace('"', "\"\"")))),
            MkdirFail => Ok(Reply::new(ReplyCode::FileError, "Failed to create directory")),
            RenameSuccess { .. } => Ok(Reply::new(ReplyCode::FileActionOkay, "Renamed")),
            AuthSuccess { .. } => {
                let mut session = self.session.lock().await;
                session.state = WaitCmd;
                Ok(Reply::new(ReplyCode::UserLoggedIn, "User logged in, proceed"))
            }
            AuthFailed => {
                let mut session = self.session.lock().await;
                session.state = New; // According to RFC 959, a PASS command MUST precede a USER command
                Ok(Reply::new(ReplyCode::NotLoggedIn, "Authentication failed"))
            }
            // FERRY PATCH (invalid-rest-offset): a restart offset the file cannot honour is 554.
            StorageError(error_type) if crate::storage::is_invalid_rest_offset(&error_type) => {
                Ok(Reply::new(ReplyCode::InvalidRestParameter, "Invalid REST parameter"))
            }
            // FERRY PATCH (storage-reply-text): the backend's own text, with the kind's code.
            StorageError(error_type) if crate::storage::reply_text(&error_type).is_some() => {
                let text = crate::storage::reply_text(&error_type).unwrap_or_default();
                let code = match error_type.kind() {
                    ErrorKind::LocalError => ReplyCode::LocalError,
                    ErrorKind::TransientFileNotAvailable => ReplyCode::TransientFileError,
                    ErrorKind::InsufficientStorageSpaceError => ReplyCode::OutOfSpace,
                    // FERRY PATCH (quota-commands): a quota's refusal says which limit.
                    ErrorKind::ExceededStorageAllocationError => ReplyCode::ExceededStorageAllocation,
                    _ => ReplyCode::FileError,
                };
                Ok(Reply::new_with_string(code, text))
            }
            StorageError(error_type) => match error_type.kind() {
                ErrorKind::ExceededStorageAllocationError => Ok(Reply::new(ReplyCode::ExceededStorageAllocation, "Exceeded storage allocation")),
                ErrorKind::FileNameNotAllowedError => Ok(Reply::new(ReplyCode::BadFileName, "File name not allowed")),
                ErrorKind::InsufficientStorageSpaceError => Ok(Reply::new(ReplyCode::OutOfSpace, "Insufficient storage space")),
                ErrorKind::LocalError => Ok(Reply::new(ReplyCode::LocalError, "Local error")),
                ErrorKind::PageTypeUnknown => Ok(Reply::new(ReplyCode::PageTypeUnknown, "Page type unknown")),
                ErrorKind::TransientFileNotAvailable => Ok(Reply::new(ReplyCode::TransientFileError, "File not found")),
                ErrorKind::PermanentFileNotAvailable => Ok(Reply::new(ReplyCode::FileError, "File not found")),
                ErrorKind::PermanentDirectoryNotAvailable => Ok(Reply::new(ReplyCode::FileError, "Directory not found")),
                ErrorKind::PermanentDirectoryNotEmpty => Ok(Reply::new(ReplyCode::FileError, "Directory not empty")),
                ErrorKind::PermissionDenied => Ok(Reply::new(ReplyCode::FileError, "Permission denied")),
                ErrorKind::CommandNotImplemented => Ok(Reply::new(ReplyCode::CommandNotImplemented, "Command not implemented")),
                ErrorKind::ConnectionClosed => Ok(Reply::new(ReplyCode::ConnectionClosed, "Connection closed")),
            },
            CommandChannelReply(reply) => Ok(reply),
            // FERRY PATCH (abor-426): the control loop follows this with ABOR's own 226.
            TransferAborted => Ok(Reply::new(ReplyCode::ConnectionClosed, "Transfer aborted")),
        }
    }

    #[tracing_attributes::instrument]
    async fn handle_command(&self, cmd: Command) -> Result<Reply, ControlChanError> {
        let args = CommandContext {
            parsed_command: cmd.clone(),
            session: self.session.clone(),
            auth_pipeline: self.auth_pipeline.clone(),
            tls_configured: self.tls_configured,
            passive_ports: self.passive_ports.clone(),
            passive_host: self.passive_host.clone(),
            tx_control_chan: self.tx_control_chan.clone(),
            local_addr: self.local_addr,
            storage_features: self.storage_features,
            tx_prebound_loop: self.tx_proxy_loop.clone(),
            logger: self.logger.clone(),
            sitemd5: self.sitemd5,
            site_handlers: self.site_handlers.clone(),
            // FERRY PATCH (extension-commands)
            command_extensions: self.command_extensions.clone(),
        };

        let handler: Box<dyn CommandHandler<Storage, User>> = match cmd {
            Command::User { username } => Box::new(commands::User::new(username)),
            Command::Pass { password } => Box::new(commands::Pass::new(password)),
            Command::Syst => Box::new(commands::Syst),
            Command::Stat { path } => Box::new(commands::Stat::new(path)),
            Command::Acct { .. } => Box::new(commands::Acct),
            Command::Type { ascii } => Box::new(commands::Type::new(ascii)), // FERRY PATCH (ascii-type)
            Command::Stru { structure } => Box::new(commands::Stru::new(structure)),
            Command::Mode { mode } => Box::new(commands::Mode::new(mode)),
            Command::Help => Box::new(commands::Help),
            Command::Noop => Box::new(commands::Noop),
            Command::Pasv => Box::new(commands::Pasv::new()),
            Command::Epsv => Box::new(commands::Epsv::new()),
            Command::Port { addr } => Box::new(commands::Port::new(addr)),
            // FERRY PATCH (eprt)
            Command::Eprt { addr } => Box::new(commands::Eprt::new(addr)),
            Command::Retr { .. } => Box::new(commands::Retr),
            Command::Stor { .. } => Box::new(commands::Stor),
            Command::List { .. } => Box::new(commands::List),
            Command::Nlst { .. } => Box::new(commands::Nlst),
            Command::Feat => Box::new(commands::Feat),
            Command::Pwd => Box::new(commands::Pwd),
            Command::Cwd { path } => Box::new(commands::Cwd::new(path)),
            Command::Cdup => Box::new(commands::Cdup),
            Command::Opts { option } => Box::new(commands::Opts::new(option)),
            Command::Dele { path } => Box::new(commands::Dele::new(path)),
            Command::Rmd { path } => Box::new(commands::Rmd::new(path)),
            Command::Quit => Box::new(commands::Quit),
            Command::Mkd { path } => Box::new(commands::Mkd::new(path)),
            Command::Allo { .. } => Box::new(commands::Allo),
            Command::Abor => Box::new(commands::Abor),
            Command::Stou => Box::new(commands::Stou),
            Command::Rnfr { file } => Box::new(commands::Rnfr::new(file)),
            Command::Rnto { file } => Box::new(commands::Rnto::new(file)),
            Command::Auth { protocol } => Box::new(commands::Auth::new(protocol)),
            Command::Pbsz {} => Box::new(commands::Pbsz),
            Command::Ccc => Box::new(commands::Ccc),
            Command::Prot { param } => Box::new(commands::Prot::new(param)),
            Command::Size { file } => Box::new(commands::Size::new(file)),
            Command::Rest { offset } => Box::new(commands::Rest::new(offset)),
            Command::Mdtm { file } => Box::new(commands::Mdtm::new(file)),
            Command::Md5 { file } => Box::new(commands::Md5::new(file)),
            Command::Mlst { path } => Box::new(commands::Mlst::new(path)),
            Command::Mlsd { .. } => Box::new(commands::Mlsd),
            Command::Appe { .. } => Box::new(commands::Appe),
            Command::Site { command, arguments } => Box::new(commands::Site::new(command, arguments)),
            // FERRY PATCH (extension-commands): a command registered with
            // `ServerBuilder::command_extension`, or else `500` as before.
            Command::Other { command_name, arguments } => Box::new(commands::Extension::new(command_name, arguments)),
        };

        handler.handle(args).await
    }
}

#[async_trait]
impl<Storage, User> ControlChanMiddleware for PrimaryEventHandler<Storage, User>
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    async fn handle(&mut self, event: Event) -> Result<Reply, ControlChanError> {
        match event {
            Event::Command(cmd) => self.handle_command(cmd).await,
            Event::InternalMsg(msg) => self.handle_internal_msg(msg).await,
        }
    }
}

// FERRY PATCH (data-channel-released): when the control loop ends (QUIT, timeout, disconnect,
// shutdown), release what the session opened for data. Upstream left it to the data task,
// which holds the session (and so the channel senders it waits on) itself: an unused data
// connection stayed open for 5 minutes, a pending passive listener (kept in the session's
// binder) for its whole accept wait, and a stalled transfer outlived its session. Dropping
// the binder stops a pending listener; dropping the command sender ends an idle data task;
// an abort ends a running transfer (an upload is then discarded, as on ABOR).
struct ReleaseDataChannelOnExit<Storage, User>(SharedSession<Storage, User>)
where
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
    User: UserDetail + 'static;

impl<Storage, User> Drop for ReleaseDataChannelOnExit<Storage, User>
where
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
    User: UserDetail + 'static,
{
    fn drop(&mut self) {
        let session = self.0.clone();
        let release = async move {
            let mut session = session.lock().await;
            session.binder = None;
            session.data_cmd_tx = None;
            if let Some(abort) = session.data_abort_tx.take() {
                let _ = abort.try_send(());
            }
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(release);
        }
    }
}
