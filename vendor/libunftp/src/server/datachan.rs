//! Contains code pertaining to the FTP *data* channel

use super::{
    chancomms::{ControlChanMsg, DataChanMsg},
    tls::FtpsConfig,
};
use crate::server::session::SharedSession;
use crate::{
    auth::UserDetail,
    storage::{Error, ErrorKind, Metadata, StorageBackend},
};

use crate::server::chancomms::DataChanCmd;
use crate::storage::PLAINTEXT_DATA_SOCKET;
// FERRY PATCH (appe-append): APPE's `put` runs in this scope.
use crate::storage::APPEND_UPLOAD;
// FERRY PATCH (listings-by-backend)
use crate::storage::{LISTING_REQUEST, ListingFormat, ListingRequest};
use crate::storage::ASCII_TRANSFER; // FERRY PATCH (ascii-type)
use std::{path::PathBuf, sync::Arc};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{Receiver, Sender};
use tokio_rustls::TlsAcceptor;

use crate::metrics;

#[derive(Debug)]
struct DataCommandExecutor<Storage, User>
where
    Storage: StorageBackend<User>,
    Storage::Metadata: Metadata,
    User: UserDetail,
{
    pub user: Arc<Option<User>>,
    /// FERRY PATCH (data-tls-eager): with PROT P, its TLS handshake is under way already.
    pub socket: DataSocket,
    pub control_msg_tx: Sender<ControlChanMsg>,
    pub storage: Arc<Storage>,
    pub cwd: PathBuf,
    pub ftps_mode: FtpsConfig,
    pub logger: slog::Logger,
    pub data_cmd_rx: Option<Receiver<DataChanCmd>>,
    pub data_abort_rx: Option<Receiver<()>>,
    /// FERRY PATCH (opts-mlst): the facts MLSD sends, as chosen with OPTS MLST.
    pub mlst_facts: Vec<&'static str>,
}

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

struct MeasuringWriter<W> {
    writer: W,
    command: &'static str,
}

struct MeasuringReader<R> {
    reader: R,
    command: &'static str,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for MeasuringWriter<W> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> std::task::Poll<Result<usize, std::io::Error>> {
        let this = self.get_mut();

        let result = Pin::new(&mut this.writer).poll_write(cx, buf);
        if let Poll::Ready(Ok(bytes_written)) = &result {
            metrics::inc_sent_bytes(*bytes_written, this.command);
        }

        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        Pin::new(&mut this.writer).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        Pin::new(&mut this.writer).poll_shutdown(cx)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for MeasuringReader<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.reader).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &result {
            let bytes_read = buf.filled().len();
            metrics::inc_received_bytes(bytes_read, this.command);
        }
        result
    }
}

impl<W> MeasuringWriter<W> {
    fn new(writer: W, command: &'static str) -> MeasuringWriter<W> {
        Self { writer, command }
    }
}

impl<R> MeasuringReader<R> {
    fn new(reader: R, command: &'static str) -> MeasuringReader<R> {
        Self { reader, command }
    }
}

impl<Storage, User> DataCommandExecutor<Storage, User>
where
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
    User: UserDetail + 'static,
{
    async fn execute(mut self, session_arc: SharedSession<Storage, User>) {
        let mut data_cmd_rx = self.data_cmd_rx.take().unwrap();
        let mut data_abort_rx = self.data_abort_rx.take().unwrap();
        // FERRY PATCH (abor-426): this task answers the ABORs it receives (see `Abor`).
        let tx = self.control_msg_tx.clone();
        let logger = self.logger.clone();
        let mut abor_reply = None;
        let mut timeout_delay = Box::pin(tokio::time::sleep(std::time::Duration::from_secs(5 * 60)));
        // TODO: Use configured timeout
        tokio::select! {
            // FERRY PATCH (data-channel-released): the senders of both channels are dropped when
            // the next PASV/EPSV/PORT replaces this data connection, or when the session ends
            // (see `control_loop`). Upstream's `Some(..)` patterns then disabled both branches,
            // and an unused data connection stayed open for the whole 5-minute timeout.
            command = data_cmd_rx.recv() => match command {
            None => {
                slog::debug!(self.logger, "Data connection released unused: superseded, or the session ended");
            }
            Some(command) => {
                // FERRY PATCH (abort-cancels-transfer): read the restart offset and release the
                // session lock before the transfer runs, so that ABOR (and every other command
                // that locks the session) is answered while data flows; then race the transfer
                // against ABOR. Dropping the storage future is how the backend learns that the
                // transfer was abandoned (Ferry's upload discards its temporary file).
                // FERRY PATCH (rest-consumed): a REST offset applies to the next transfer
                // command only, whether it succeeds or fails. Upstream reset it only after a
                // success, so after a refused STOR or RETR the next download silently started
                // at the old offset and the client got a file without its head.
                let (start_pos, ascii) = {
                    let mut session = session_arc.lock().await;
                    (std::mem::take(&mut session.start_pos), session.ascii)
                };
                tokio::select! {
                    // FERRY PATCH (ascii-type): the type in force when the command runs.
                    _ = ASCII_TRANSFER.scope(ascii, self.handle_incoming(DataChanMsg::ExternalCommand(command), start_pos)) => {},
                    Some(_) = data_abort_rx.recv() => {
                        slog::info!(logger, "Transfer cancelled by ABOR");
                        session_arc.lock().await.start_pos = 0;
                        abor_reply = Some(ControlChanMsg::TransferAborted);
                    }
                }
            }},
            // FERRY PATCH (data-channel-released): see above; a dropped sender ends it too.
            abort = data_abort_rx.recv() => {
                self.handle_incoming(DataChanMsg::Abort, 0).await;
                // FERRY PATCH (abor-426): an ABOR, not a released sender, is answered.
                if abort.is_some() {
                    abor_reply = Some(no_transfer_to_abort());
                }
            },
            _ = &mut timeout_delay => {
                slog::warn!(logger, "Data channel connection timed out");
            }
        };
        {
            let mut session = session_arc.lock().await;
            session.data_busy = false;
            // FERRY PATCH (abor-426): an ABOR that came after the transfer ended is answered
            // too. Closing under the session lock (which `Abor` holds to send) leaves no ABOR
            // unanswered; the reply is sent after the lock is released (the control loop may be
            // waiting for it with the channel full).
            data_abort_rx.close();
            if abor_reply.is_none() && data_abort_rx.try_recv().is_ok() {
                abor_reply = Some(no_transfer_to_abort());
            }
        }
        if let Some(reply) = abor_reply
            && let Err(err) = tx.send(reply).await
        {
            // The session ended meanwhile (data-channel-released aborts its transfer then).
            slog::debug!(logger, "Could not answer ABOR: {}", err);
        }
    }

    #[tracing_attributes::instrument]
    async fn handle_incoming(self, incoming: DataChanMsg, start_pos: u64) {
        match incoming {
            DataChanMsg::Abort => {
                slog::info!(self.logger, "Data channel abort received");
            }
            DataChanMsg::ExternalCommand(command) => {
                let p = command.path().unwrap_or_default();
                slog::debug!(self.logger, "Data channel command received: {:?}", command; "path" => p);
                self.execute_command(command, start_pos).await;
            }
        }
    }

    #[tracing_attributes::instrument]
    async fn execute_command(self, cmd: DataChanCmd, start_pos: u64) {
        match cmd {
            DataChanCmd::Retr { path } => {
                self.exec_retr(path, start_pos).await;
            }
            DataChanCmd::Stor { path } => {
                self.exec_stor(path, start_pos).await;
            }
            DataChanCmd::Appe { path } => {
                self.exec_appe(path).await;
            }
            DataChanCmd::List { path, .. } => {
                self.exec_list_variant(path, ListCommand::List).await;
            }
            DataChanCmd::Nlst { path } => {
                self.exec_list_variant(path, ListCommand::Nlst).await;
            }
            DataChanCmd::Mlsd { path } => {
                // FERRY PATCH (listings-by-backend): MLSD is a listing like LIST and NLST.
                self.exec_list_variant(path, ListCommand::Mlsd).await;
            }
        }
    }

    #[tracing_attributes::instrument]
    async fn exec_retr(self, path: String, start_pos: u64) {
        let path = self.cwd.join(path);
        let tx: Sender<ControlChanMsg> = self.control_msg_tx.clone();
        // FERRY PATCH (check-before-150): upstream answered 150 before looking at the file, so a
        // missing one got `150` then `550`. The backend is asked first, with `cwd`: the one
        // lookup a backend makes without side effects (Ferry's `metadata` is a SIZE, audited and
        // counted, and needs the list permission). Success means a directory; a file-not-available
        // error, nothing there (or a name that cannot be): 550 alone. Any other answer (a file is
        // not a directory) is left to the transfer.
        let refusal = match self.storage.cwd((*self.user).as_ref().unwrap(), path.clone()).await {
            Ok(()) => Some(ControlChanMsg::CommandChannelReply(crate::server::controlchan::Reply::new(
                crate::server::controlchan::ReplyCode::FileError,
                "Not a regular file",
            ))),
            Err(err) if matches!(err.kind(), ErrorKind::PermanentFileNotAvailable | ErrorKind::FileNameNotAllowedError) => Some(ControlChanMsg::StorageError(err)),
            Err(_) => None,
        };
        if let Some(refusal) = refusal {
            if let Err(err) = tx.send(refusal).await {
                slog::warn!(self.logger, "Could not notify control channel of a refused RETR: {:?}", err);
            }
            return;
        }
        if !announce_transfer(&self.logger, &tx, "Sending data").await {
            return;
        }
        // FERRY PATCH (raw-data-socket): lend the socket to the storage call below.
        let raw_socket = plaintext_socket(&self.socket, &self.ftps_mode);
        let mut output = match Self::writer(self.socket, self.ftps_mode, "retr").await {
            Ok(io) => io,
            Err(err) => {
                report_data_channel_failure(&self.logger, &tx, err).await;
                return;
            }
        };

        let start_time = Instant::now();
        let result = PLAINTEXT_DATA_SOCKET
            .scope(
                raw_socket,
                self.storage.get_into((*self.user).as_ref().unwrap(), path.clone(), start_pos, &mut output),
            )
            .await;

        if let Err(err) = output.shutdown().await {
            match err.kind() {
                std::io::ErrorKind::BrokenPipe => {
                    slog::debug!(self.logger, "Output stream was already closed by peer after RETR: {:?}", err);
                }
                std::io::ErrorKind::NotConnected => {
                    slog::debug!(self.logger, "Output stream was already closed after RETR: {:?}", err);
                }
                _ => slog::warn!(self.logger, "Could not shutdown output stream after RETR: {:?}", err),
            }
        }

        let duration = start_time.elapsed();
        match result {
            Ok(bytes_copied) => {
                slog::info!(
                    self.logger,
                    "Successful RETR {:?}; Duration {}; Bytes copied {}; Transfer speed {}; start_pos={}",
                    &path,
                    HumanDuration(duration),
                    HumanBytes(bytes_copied),
                    TransferSpeed(bytes_copied as f64 / duration.as_secs_f64()),
                    start_pos,
                );

                // only register transfer of a single file transfer
                if start_pos == 0 {
                    metrics::inc_transferred("retr", "success");
                }

                if let Err(err) = tx
                    .send(ControlChanMsg::SentData {
                        bytes: bytes_copied,
                        path: path.to_string_lossy().to_string(),
                    })
                    .await
                {
                    slog::error!(self.logger, "Could not notify control channel of successful RETR: {:?}", err);
                }
            }
            Err(err) => {
                let io_error_kind = err.get_io_error().map(|e| e.kind());

                if io_error_kind == Some(std::io::ErrorKind::BrokenPipe) {
                    if start_pos == 0 {
                        slog::warn!(
                            self.logger,
                            "Client halted RETR transfer (BrokenPipe). Certain FTP clients may do this to download file sections separately, in which case RESTarts may occur and will be logged at DEBUG level. Refer to your FTP client's documentation if this causes issues. Path {:?}; Duration {} (number of bytes copied unknown).",
                            &path,
                            HumanDuration(duration)
                        );
                    } else {
                        slog::debug!(
                            self.logger,
                            "RETR transfer stopped by client (BrokenPipe). Remember, this could be standard for some FTP clients. Path {:?}; Duration {} (number of bytes copied unknown); start_pos {}",
                            &path,
                            HumanDuration(duration),
                            start_pos
                        );
                    }
                } else {
                    slog::warn!(
                        self.logger,
                        "Error during RETR {:?} transfer after {}: {:?}; start_pos={}",
                        &path,
                        HumanDuration(duration),
                        err,
                        start_pos
                    );
                }

                // only register transfer errors for a single file transfer once
                if start_pos == 0 {
                    categorize_and_register_error(&self.logger, &err, "retr");
                }

                if let Err(err) = tx.send(ControlChanMsg::StorageError(err)).await {
                    slog::warn!(self.logger, "Could not notify control channel of error with RETR: {:?}", err);
                }
            }
        }
    }

    #[tracing_attributes::instrument]
    async fn exec_stor(self, path: String, start_pos: u64) {
        let path = self.cwd.join(path);
        let tx = self.control_msg_tx.clone();
        // FERRY PATCH (raw-data-socket): lend the socket to the storage call below.
        let raw_socket = plaintext_socket(&self.socket, &self.ftps_mode);

        let (input, tls_closer) = match Self::reader(self.socket, self.ftps_mode, "stor").await {
            Ok(io) => io,
            Err(err) => {
                report_data_channel_failure(&self.logger, &tx, err).await;
                return;
            }
        };
        let start_time = Instant::now();
        let put_result = PLAINTEXT_DATA_SOCKET
            .scope(raw_socket, self.storage.put((*self.user).as_ref().unwrap(), input, path.clone(), start_pos))
            .await;
        close_tls_after_upload(&self.logger, tls_closer).await;
        let duration = start_time.elapsed();

        match put_result {
            Ok(bytes) => {
                slog::info!(
                    self.logger,
                    "Successful STOR {:?}; Duration {}; Bytes copied {}; Transfer speed {}; start_pos={}",
                    &path,
                    HumanDuration(duration),
                    HumanBytes(bytes),
                    TransferSpeed(bytes as f64 / duration.as_secs_f64()),
                    start_pos,
                );

                // only register transfer of a single file transfer
                if start_pos == 0 {
                    metrics::inc_transferred("stor", "success");
                }

                if let Err(err) = tx
                    .send(ControlChanMsg::WrittenData {
                        bytes,
                        path: path.to_string_lossy().to_string(),
                    })
                    .await
                {
                    slog::error!(self.logger, "Could not notify control channel of successful STOR: {:?}", err);
                }
            }
            Err(err) => {
                slog::warn!(self.logger, "Error during STOR transfer after {}: {:?}", HumanDuration(duration), err);

                // only register transfer errors for a single file transfer once
                if start_pos == 0 {
                    categorize_and_register_error(&self.logger, &err, "stor");
                }

                if let Err(err) = tx.send(ControlChanMsg::StorageError(err)).await {
                    slog::error!(self.logger, "Could not notify control channel of error with STOR: {:?}", err);
                }
            }
        }
    }

    #[tracing_attributes::instrument]
    async fn exec_appe(self, path: String) {
        let path = self.cwd.join(&path);
        let tx = self.control_msg_tx.clone();

        // FERRY PATCH (appe-append): no size lookup; the backend appends (see `APPEND_UPLOAD`).
        let start_pos = 0;

        // FERRY PATCH (raw-data-socket): lend the socket to the storage call below.
        let raw_socket = plaintext_socket(&self.socket, &self.ftps_mode);
        let (input, tls_closer) = match Self::reader(self.socket, self.ftps_mode, "appe").await {
            Ok(io) => io,
            Err(err) => {
                report_data_channel_failure(&self.logger, &tx, err).await;
                return;
            }
        };
        let start_time = Instant::now();
        let put_result = APPEND_UPLOAD
            .scope(
                true,
                PLAINTEXT_DATA_SOCKET.scope(raw_socket, self.storage.put((*self.user).as_ref().unwrap(), input, path.clone(), start_pos)),
            )
            .await;
        close_tls_after_upload(&self.logger, tls_closer).await;
        let duration = start_time.elapsed();

        match put_result {
            Ok(bytes) => {
                slog::info!(
                    self.logger,
                    "Successful APPE {:?}; Duration {}; Bytes copied {}; Transfer speed {}; start_pos={}",
                    &path,
                    HumanDuration(duration),
                    HumanBytes(bytes),
                    TransferSpeed(bytes as f64 / duration.as_secs_f64()),
                    start_pos,
                );

                metrics::inc_transferred("appe", "success");

                if let Err(err) = tx
                    .send(ControlChanMsg::WrittenData {
                        bytes,
                        path: path.to_string_lossy().to_string(),
                    })
                    .await
                {
                    slog::error!(self.logger, "Could not notify control channel of successful APPE: {:?}", err);
                }
            }
            Err(err) => {
                slog::warn!(self.logger, "Error during APPE transfer after {}: {:?}", HumanDuration(duration), err);

                categorize_and_register_error(&self.logger, &err, "appe");

                if let Err(err) = tx.send(ControlChanMsg::StorageError(err)).await {
                    slog::error!(self.logger, "Could not notify control channel of error with APPE: {:?}", err);
                }
            }
        }
    }

    #[tracing_attributes::instrument]
    async fn exec_list_variant(self, path: Option<String>, command: ListCommand) {
        let path = self.resolve_path(path);
        let tx = self.control_msg_tx.clone();
        let start_time = Instant::now();

        // FERRY PATCH (check-before-150): list first, then answer 150 and open the data stream;
        // upstream answered 150 first, so a missing directory got `150` then `550`.
        // FERRY PATCH (listings-by-backend): every listing is the backend's `list_fmt`, told the
        // format; a backend may hand over a stream instead of the whole text.
        let request = ListingRequest::new(command.format(), self.mlst_facts.clone());
        let (list_result, body) = LISTING_REQUEST
            .scope(request, async {
                let result = self.storage.list_fmt((*self.user).as_ref().unwrap(), path.clone()).await;
                (result, LISTING_REQUEST.with(|request| request.take_body()))
            })
            .await;

        match list_result {
            Ok(cursor) => {
                if !announce_transfer(&self.logger, &tx, "Sending directory list").await {
                    return;
                }
                let mut output = match Self::writer(self.socket, self.ftps_mode.clone(), command.as_lower_str()).await {
                    Ok(io) => io,
                    Err(err) => {
                        report_data_channel_failure(&self.logger, &tx, err).await;
                        return;
                    }
                };
                slog::debug!(self.logger, "Copying future for {}", command.as_str());
                let mut input: crate::storage::ListingBody = match body {
                    Some(body) => body,
                    None => Box::new(cursor),
                };
                let result = tokio::io::copy(&mut input, &mut output).await;

                if let Err(err) = output.shutdown().await {
                    match err.kind() {
                        std::io::ErrorKind::BrokenPipe => {
                            slog::debug!(self.logger, "Output stream was already closed by peer after {}: {:?}", command.as_str(), err);
                        }
                        std::io::ErrorKind::NotConnected => {
                            slog::debug!(self.logger, "Output stream was already closed after {}: {:?}", command.as_str(), err);
                        }
                        _ => slog::warn!(self.logger, "Could not shutdown output stream after {}: {:?}", command.as_str(), err),
                    }
                }
                let duration = start_time.elapsed();

                match result {
                    Ok(bytes) => {
                        slog::info!(
                            self.logger,
                            "Successful LIST {:?}; Duration {}; Bytes copied {}; Transfer speed {}",
                            path,
                            HumanDuration(duration),
                            HumanBytes(bytes),
                            TransferSpeed(bytes as f64 / duration.as_secs_f64()),
                        );
                        metrics::inc_transferred(command.as_lower_str(), "success");
                        if let Err(err) = tx.send(ControlChanMsg::DirectorySuccessfullyListed).await {
                            slog::error!(self.logger, "Could not notify control channel of error with {}: {:?}", command.as_str(), err);
                        }
                    }
                    Err(e) => {
                        let duration = start_time.elapsed();
                        slog::warn!(
                            self.logger,
                            "Failed to send directory list for path {:?} ({} command) after {}: {:?}",
                            path,
                            command.as_str(),
                            HumanDuration(duration),
                            e,
                        );

                        let err = Error::from(e);
                        categorize_and_register_error(&self.logger, &err, command.as_lower_str());
                    }
                }
            }
            Err(err) => {
                let duration = start_time.elapsed();

                slog::warn!(
                    self.logger,
                    "Failed to retrieve directory list for path {:?} ({} command) from storage backend after {}: {:?}",
                    path,
                    command.as_str(),
                    HumanDuration(duration),
                    err,
                );

                categorize_and_register_error(&self.logger, &err, command.as_lower_str());

                if let Err(err) = tx.send(ControlChanMsg::StorageError(err)).await {
                    slog::error!(self.logger, "Could not notify control channel of error with {}: {:?}", command.as_str(), err);
                }
            }
        }
    }

    #[tracing_attributes::instrument]
    async fn writer(socket: DataSocket, ftps_mode: FtpsConfig, command: &'static str) -> std::io::Result<Box<dyn AsyncWrite + Send + Unpin + Sync>> {
        // FERRY PATCH (data-tls-eager): the handshake started when the connection was accepted.
        let socket = match socket {
            DataSocket::Tls(handshake) => return Ok(Box::new(MeasuringWriter::new(handshake.finish().await?, command))),
            DataSocket::Plain(socket) => socket,
        };
        match ftps_mode {
            FtpsConfig::Off => Ok(Box::new(MeasuringWriter::new(socket, command)) as Box<dyn AsyncWrite + Send + Unpin + Sync>),
            FtpsConfig::Building { .. } => panic!("Illegal state"),
            FtpsConfig::On { tls_config } => {
                let tls_stream = accept_tls(tls_config, socket).await?;
                Ok(Box::new(MeasuringWriter::new(tls_stream, command)) as Box<dyn AsyncWrite + Send + Unpin + Sync>)
            }
        }
    }

    /// FERRY PATCH (tls-close-notify): also returns, for TLS, the write half of the stream, so
    /// that the upload can be answered with close_notify once the storage backend has read it.
    #[tracing_attributes::instrument]
    async fn reader(socket: DataSocket, ftps_mode: FtpsConfig, command: &'static str) -> std::io::Result<(Box<dyn AsyncRead + Send + Unpin + Sync>, Option<TlsCloser>)> {
        // FERRY PATCH (data-tls-eager): the handshake started when the connection was accepted.
        let socket = match socket {
            DataSocket::Tls(handshake) => {
                let (read_half, write_half) = tokio::io::split(handshake.finish().await?);
                return Ok((Box::new(MeasuringReader::new(read_half, command)), Some(write_half)));
            }
            DataSocket::Plain(socket) => socket,
        };
        match ftps_mode {
            FtpsConfig::Off => Ok((Box::new(MeasuringReader::new(socket, command)) as Box<dyn AsyncRead + Send + Unpin + Sync>, None)),
            FtpsConfig::Building { .. } => panic!("Illegal state"),
            FtpsConfig::On { tls_config } => {
                let tls_stream = accept_tls(tls_config, socket).await?;
                let (read_half, write_half) = tokio::io::split(tls_stream);
                Ok((Box::new(MeasuringReader::new(read_half, command)) as Box<dyn AsyncRead + Send + Unpin + Sync>, Some(write_half)))
            }
        }
    }

    fn resolve_path(&self, path: Option<String>) -> PathBuf {
        match path {
            Some(path) => {
                if path == "." {
                    self.cwd.clone()
                } else {
                    self.cwd.join(path)
                }
            }
            None => self.cwd.clone(),
        }
    }
}

/// Starts processing for the data connection. This will spawn a new async task that will wait for
/// a command from the control channel after which it will start to process the specified socket
/// that is connected to the client.
///
/// logger: logger set up with needed context for use by the data channel.
/// session_arc: the user session that is also shared with the control channel.
/// socket: the data socket we'll be working with.
#[tracing_attributes::instrument]
pub async fn spawn_processing<Storage, User>(logger: slog::Logger, session_arc: SharedSession<Storage, User>, socket: TcpStream)
where
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
    User: UserDetail + 'static,
{
    // FERRY PATCH (proxy-peer)
    let client = socket.peer_addr();
    spawn_processing_from(logger, session_arc, socket, client).await
}

/// FERRY PATCH (proxy-peer): [`spawn_processing`] for a data connection whose client is
/// `client` (found by a `DataPeerResolver` when it came through a proxy), which must be the
/// control connection's client.
pub(crate) async fn spawn_processing_from<Storage, User>(
    logger: slog::Logger,
    session_arc: SharedSession<Storage, User>,
    mut socket: TcpStream,
    client: std::io::Result<std::net::SocketAddr>,
) where
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
    User: UserDetail + 'static,
{
    // We introduce a block scope here to keep the lock on the session minimal. We basically copy the needed info
    // out and then unlock.

    let command_executor = {
        let mut session = session_arc.lock().await;

        match client {
            // FERRY PATCH (proxy-peer)
            Ok(datachan_addr) => {
                let controlchan_ip = session.source.ip();
                // FERRY PATCH (pasv-dual-stack): compare addresses, not their v4-mapped spellings.
                if controlchan_ip.to_canonical() != datachan_addr.ip().to_canonical() {
                    if let Err(err) = socket.shutdown().await {
                        slog::error!(
                            logger,
                            "Couldn't close datachannel for IP ({}) that does not match the IP({}) of the control channel: {:?}",
                            datachan_addr.ip(),
                            controlchan_ip,
                            err
                        )
                    } else {
                        slog::warn!(
                            logger,
                            "Closing datachannel for IP ({}) that does not match the IP({}) of the control channel.",
                            datachan_addr.ip(),
                            controlchan_ip
                        )
                    }
                    return;
                }
            }
            Err(err) => {
                slog::error!(logger, "Couldn't determine data channel address: {:?}", err);
                return;
            }
        }

        let username = session.username.as_ref().cloned().unwrap_or_else(|| String::from("unknown"));
        let logger = logger.new(slog::o!("username" => username));
        let control_msg_tx: Sender<ControlChanMsg> = match session.control_msg_tx {
            Some(ref tx) => tx.clone(),
            None => {
                slog::error!(logger, "Control loop message sender expected to be set up. Aborting data loop.");
                return;
            }
        };
        let data_cmd_rx = match session.data_cmd_rx.take() {
            Some(rx) => rx,
            None => {
                slog::error!(logger, "Data loop command receiver expected to be set up. Aborting data loop.");
                return;
            }
        };
        let data_abort_rx = match session.data_abort_rx.take() {
            Some(rx) => rx,
            None => {
                slog::error!(logger, "Data loop abort receiver expected to be set up. Aborting data loop.");
                return;
            }
        };
        let ftps_mode = if session.data_tls { session.ftps_config.clone() } else { FtpsConfig::Off };
        // FERRY PATCH (data-tls-eager): with PROT P, the TLS handshake starts now, whether the
        // client sends its transfer command first or handshakes first. Upstream began it only
        // when the command ran, so a client that handshakes first (aioftp) waited for a
        // ServerHello while Ferry waited for the command: both hung.
        let socket = match &ftps_mode {
            FtpsConfig::On { tls_config } => DataSocket::Tls(PendingHandshake::start(tls_config.clone(), socket)),
            _ => DataSocket::Plain(socket),
        };
        let command_executor = DataCommandExecutor {
            user: session.user.clone(),
            socket,
            control_msg_tx,
            storage: Arc::clone(&session.storage),
            cwd: session.cwd.clone(),
            ftps_mode,
            logger,
            data_abort_rx: Some(data_abort_rx),
            data_cmd_rx: Some(data_cmd_rx),
            mlst_facts: session.mlst_facts.clone(),
        };

        // The control channel need to know if the data channel is busy so that it doesn't time out
        // while the session is still in progress.
        session.data_busy = true;

        command_executor
    };

    tokio::spawn(command_executor.execute(session_arc));
}

use std::time::Duration;

struct HumanDuration(Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total_secs = self.0.as_secs();

        let hours = total_secs / 3600;
        let minutes = (total_secs % 3600) / 60;
        let seconds = total_secs % 60;
        let millis = self.0.subsec_millis();

        if hours > 0 {
            write!(f, "{}h {}m {}s {}ms", hours, minutes, seconds, millis)
        } else if minutes > 0 {
            write!(f, "{}m {}s {}ms", minutes, seconds, millis)
        } else if seconds > 0 {
            write!(f, "{}s {}ms", seconds, millis)
        } else {
            write!(f, "{}ms", millis)
        }
    }
}

struct HumanBytes(u64);

impl fmt::Display for HumanBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KIB: u64 = 1024;
        const MIB: u64 = KIB * 1024;
        const GIB: u64 = MIB * 1024;
        const TIB: u64 = GIB * 1024;

        if self.0 >= TIB {
            write!(f, "{:.2} TiB", (self.0 as f64) / (TIB as f64))
        } else if self.0 >= GIB {
            write!(f, "{:.2} GiB", (self.0 as f64) / (GIB as f64))
        } else if self.0 >= MIB {
            write!(f, "{:.2} MiB", (self.0 as f64) / (MIB as f64))
        } else if self.0 >= KIB {
            write!(f, "{:.2} KiB", (self.0 as f64) / (KIB as f64))
        } else {
            write!(f, "{} B", self.0)
        }
    }
}

struct TransferSpeed(f64);

impl fmt::Display for TransferSpeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kb_per_second = self.0 / 1024.0;
        if kb_per_second < 1.0 {
            return write!(f, "{:.2} B/s", self.0);
        }

        let mb_per_second = kb_per_second / 1024.0;
        if mb_per_second < 1.0 {
            return write!(f, "{:.2} KB/s", kb_per_second);
        }

        let gb_per_second = mb_per_second / 1024.0;
        if gb_per_second < 1.0 {
            return write!(f, "{:.2} MB/s", mb_per_second);
        }

        write!(f, "{:.2} GB/s", gb_per_second)
    }
}

// Collapse the StorageError kind into a client-error, server-error or unknown-error.
// The PermissionDenied is seperated because it depends on specifics whether it is a server or client error
// Unknown errors should not happen but need to be handled
fn categorize_and_register_error(logger: &slog::Logger, err: &Error, command: &'static str) {
    match err.kind() {
        ErrorKind::PermanentFileNotAvailable => metrics::inc_transferred(command, "client-error"),
        ErrorKind::TransientFileNotAvailable | ErrorKind::LocalError => metrics::inc_transferred(command, "server-error"),
        ErrorKind::PermissionDenied => metrics::inc_transferred(command, "permission-error"),
        ErrorKind::ConnectionClosed => {
            if let Some(io_error) = err.get_io_error() {
                match io_error.kind() {
                    std::io::ErrorKind::ConnectionReset => metrics::inc_transferred(command, "client-interrupted"),
                    std::io::ErrorKind::BrokenPipe => {
                        // Clients like Cyberduck appear to close the connection prematurely for chunked downloading, generating many "errors"
                        if command != "retr" {
                            metrics::inc_transferred(command, "client-interrupted");
                        }
                    }
                    std::io::ErrorKind::ConnectionAborted => metrics::inc_transferred(command, "network-error"), // Could be a network issue
                    _ => {
                        slog::debug!(logger, "Unmapped ConnectionClosed io error: {:?}", io_error);
                        metrics::inc_transferred(command, "server-error")
                    }
                }
            }
        }
        _ => {
            slog::debug!(logger, "Unmapped error: {:?}", err);
            metrics::inc_transferred(command, "unknown-error")
        }
    }
}

#[derive(Debug)]
enum ListCommand {
    List,
    Nlst,
    // FERRY PATCH (listings-by-backend)
    Mlsd,
}

impl ListCommand {
    fn as_str(&self) -> &'static str {
        match self {
            ListCommand::List => "LIST",
            ListCommand::Nlst => "NLST",
            ListCommand::Mlsd => "MLSD",
        }
    }
    fn as_lower_str(&self) -> &'static str {
        match self {
            ListCommand::List => "list",
            ListCommand::Nlst => "nlst",
            ListCommand::Mlsd => "mlsd",
        }
    }
    // FERRY PATCH (listings-by-backend): what the backend is asked for.
    fn format(&self) -> ListingFormat {
        match self {
            ListCommand::List => ListingFormat::Long,
            ListCommand::Nlst => ListingFormat::Names,
            ListCommand::Mlsd => ListingFormat::Mlsd,
        }
    }
}

/// FERRY PATCH (raw-data-socket): the descriptor storage backends may use for zero-copy
/// transfers (`crate::storage::plaintext_data_socket`); only for plaintext data connections.
fn plaintext_socket(socket: &DataSocket, ftps_mode: &FtpsConfig) -> Option<std::os::fd::RawFd> {
    match (socket, ftps_mode) {
        (DataSocket::Plain(socket), FtpsConfig::Off) => Some(std::os::fd::AsRawFd::as_raw_fd(socket)),
        _ => None,
    }
}

/// FERRY PATCH (data-tls-eager): a data connection as accepted: plaintext, or with its TLS
/// handshake running since the accept.
#[derive(Debug)]
enum DataSocket {
    Plain(TcpStream),
    Tls(PendingHandshake),
}

/// FERRY PATCH (data-tls-eager): a data connection's TLS handshake, run by its own task from
/// the accept on, so it completes whether the client handshakes before or after sending its
/// transfer command. Dropping it (ABOR, the data connection released unused) stops it.
#[derive(Debug)]
struct PendingHandshake(tokio::task::JoinHandle<std::io::Result<tokio_rustls::server::TlsStream<TcpStream>>>);

impl PendingHandshake {
    fn start(tls_config: Arc<rustls::ServerConfig>, socket: TcpStream) -> Self {
        PendingHandshake(tokio::spawn(async move {
            // The handshake's bound (DATA_TLS_HANDSHAKE_TIMEOUT) counts from the client's first
            // byte: a client may connect and send its command well later. Until then the data
            // connection's own idle timeout bounds the wait.
            socket.readable().await?;
            accept_tls(tls_config, socket).await
        }))
    }

    /// The secured stream, once the handshake is done; bounded like the handshake itself, for a
    /// client that sent the transfer command but never a ClientHello.
    async fn finish(mut self) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        match tokio::time::timeout(DATA_TLS_HANDSHAKE_TIMEOUT, &mut self.0).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) => Err(std::io::Error::other(join_error)),
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake on the data connection timed out")),
        }
    }
}

impl Drop for PendingHandshake {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// FERRY PATCH (data-tls-handshake): upstream unwraps the data-channel TLS handshake, so a
/// client that sends anything but a handshake panics the task and leaves its control channel
/// waiting for a reply that never comes. The handshake is now bounded in time and its failure
/// is an error the caller reports (425) on the control channel.
const DATA_TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn accept_tls(tls_config: Arc<rustls::ServerConfig>, socket: TcpStream) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    // FERRY PATCH (data-tls-no-tickets): a TLS 1.3 server sends its session tickets after the
    // handshake. On an upload the client only writes, closes with the tickets still unread, and
    // its kernel answers with a reset that can destroy the upload's last bytes before Ferry reads
    // them (the "lftp PUT bug with TLS 1.3" that made upstream leave TLS 1.3 off). Data
    // connections therefore send no tickets; they still resume with the tickets the control
    // connection handed out (same ticketer, session cache, certificate and verifier).
    let mut data_config = (*tls_config).clone();
    data_config.send_tls13_tickets = 0;
    let acceptor: TlsAcceptor = Arc::new(data_config).into();
    match tokio::time::timeout(DATA_TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake on the data connection timed out")),
    }
}

/// FERRY PATCH (tls-close-notify): the write half of a TLS upload's data connection.
type TlsCloser = tokio::io::WriteHalf<tokio_rustls::server::TlsStream<TcpStream>>;

/// FERRY PATCH (tls-close-notify): how long the close_notify after an upload may take to send.
const DATA_TLS_CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// FERRY PATCH (tls-close-notify): upstream drops the TLS stream after an upload without
/// answering the client's close_notify. Clients that wait for the answer, as RFC 4217 (section
/// 12.1) and TLS say they may (Python's `ftplib` does: `conn.unwrap()`), then report an
/// error although the file is whole. Sends close_notify (and FIN) before the transfer's reply.
async fn close_tls_after_upload(logger: &slog::Logger, closer: Option<TlsCloser>) {
    let Some(mut closer) = closer else {
        return;
    };
    match tokio::time::timeout(DATA_TLS_CLOSE_TIMEOUT, closer.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => slog::debug!(logger, "Could not send close_notify after upload: {}", err),
        Err(_) => slog::debug!(logger, "Timed out sending close_notify after upload"),
    }
}

/// FERRY PATCH (abor-426): the reply to an ABOR that found no transfer running.
fn no_transfer_to_abort() -> ControlChanMsg {
    ControlChanMsg::CommandChannelReply(crate::server::controlchan::Reply::new(
        crate::server::controlchan::ReplyCode::ClosingDataConnection,
        "Closed data channel",
    ))
}

/// FERRY PATCH (check-before-150): the 150 that tells the client its transfer starts, sent once
/// the file or directory is known to be there. False when the control channel is gone.
async fn announce_transfer(logger: &slog::Logger, tx: &Sender<ControlChanMsg>, text: &str) -> bool {
    let reply = crate::server::controlchan::Reply::new(crate::server::controlchan::ReplyCode::FileStatusOkay, text);
    match tx.send(ControlChanMsg::CommandChannelReply(reply)).await {
        Ok(()) => true,
        Err(err) => {
            slog::warn!(logger, "Could not announce the transfer: {}", err);
            false
        }
    }
}

/// FERRY PATCH (data-tls-handshake): tells the client why its transfer did not start.
async fn report_data_channel_failure(logger: &slog::Logger, tx: &Sender<ControlChanMsg>, err: std::io::Error) {
    slog::warn!(logger, "Data connection failed before the transfer: {}", err);
    let reply = crate::server::controlchan::Reply::new(
        crate::server::controlchan::ReplyCode::CantOpenDataConnection,
        "TLS handshake on the data connection failed",
    );
    if let Err(send_err) = tx.send(ControlChanMsg::CommandChannelReply(reply)).await {
        slog::warn!(logger, "Could not report the data connection failure: {}", send_err);
    }
}
