//! How the storage backend answers listings: LIST, NLST, MLSD and MLST (and STAT with a path),
//! in the format libunftp asks for, streamed page by page when they go to a data connection.

use super::listing::{self, ListingFormat, ListingStyle};
use super::listing_stream::ListingStream;
use super::paths::UserPath;
use super::{EntryPages, FerryStorage, Listing, Store, StoreError};
use crate::accounts::auth::FerryUser;
use crate::observe::record::{AuditRecord, Op, Outcome};
use std::path::Path;
use std::time::{Instant, SystemTime};
use unftp_core::storage as ftp;

impl<S: Store> FerryStorage<S> {
    /// Every listing: LIST, NLST, MLSD (streamed page by page, see `listing_stream`), MLST
    /// (the path's own facts) and STAT with a path (whole), told apart by libunftp's
    /// `listings-by-backend` patch.
    pub(super) async fn serve_listing(
        &self,
        user: &FerryUser,
        path: &Path,
    ) -> ftp::Result<std::io::Cursor<Vec<u8>>> {
        let started = Instant::now();
        let request = libunftp::storage::listing_request();
        let streamed = request.is_some();
        let (format, facts) = request.unwrap_or((ListingFormat::Long, Vec::new()));
        let style = ListingStyle {
            format,
            facts,
            permissions: self.permissions_now(user).unwrap_or(user.permissions),
            now: SystemTime::now(),
        };
        if format == ListingFormat::MlstEntry {
            return self.mlst_entry(user, path, &style).await;
        }
        let path = self.authorize(user, Op::Ls, path, |p| p.list)?;
        let pages = match self.store.listing(&path).await {
            Ok(Listing::Dir(pages)) => pages,
            Ok(Listing::File(name, entry)) => {
                let text = Ok(listing::format_page(&style, &[(name, entry)]));
                return self.finish_listing(user, &path, started, text);
            }
            Err(error) => return self.finish_listing(user, &path, started, Err(error)),
        };
        if !streamed {
            let text = read_whole_listing(pages, &style).await;
            return self.finish_listing(user, &path, started, text);
        }
        let (audit, name, ip, host, shown) = (
            self.audit.clone(),
            user.name.clone(),
            self.session.client_ip(),
            self.session.host(),
            path.to_string(),
        );
        let on_finish = Box::new(move |bytes: u64, result: Result<(), String>| {
            audit.record(AuditRecord {
                op: Op::Ls,
                user: &name,
                client_ip: ip,
                host: host.as_deref(),
                path: &shown,
                bytes: Some(bytes),
                duration: started.elapsed(),
                outcome: result.map_or_else(Outcome::Failed, |()| Outcome::Ok),
            });
        });
        let stream = ListingStream::new(style, pages, on_finish);
        libunftp::storage::stream_listing(Box::new(stream));
        Ok(std::io::Cursor::new(Vec::new()))
    }

    /// NLST answered whole, for libunftp's own `nlst` trait method.
    pub(super) async fn serve_names(
        &self,
        user: &FerryUser,
        path: &Path,
    ) -> ftp::Result<std::io::Cursor<Vec<u8>>> {
        let started = Instant::now();
        let path = self.authorize(user, Op::Ls, path, |p| p.list)?;
        let style = ListingStyle {
            format: ListingFormat::Names,
            facts: Vec::new(),
            permissions: self.permissions_now(user).unwrap_or(user.permissions),
            now: SystemTime::now(),
        };
        let text = match self.store.listing(&path).await {
            Ok(Listing::Dir(pages)) => read_whole_listing(pages, &style).await,
            Ok(Listing::File(name, entry)) => Ok(listing::format_page(&style, &[(name, entry)])),
            Err(error) => Err(error),
        };
        self.finish_listing(user, &path, started, text)
    }

    /// Audits a listing answered whole and hands it to libunftp.
    fn finish_listing(
        &self,
        user: &FerryUser,
        path: &UserPath,
        started: Instant,
        text: Result<Vec<u8>, StoreError>,
    ) -> ftp::Result<std::io::Cursor<Vec<u8>>> {
        self.finish(user, Op::Ls, path, started, text, |text| {
            Some(text.len() as u64)
        })
        .map(std::io::Cursor::new)
    }

    /// MLST: the facts of the path itself, audited as the size lookup it replaces.
    async fn mlst_entry(
        &self,
        user: &FerryUser,
        path: &Path,
        style: &ListingStyle,
    ) -> ftp::Result<std::io::Cursor<Vec<u8>>> {
        let started = Instant::now();
        let path = self.authorize(user, Op::Size, path, |p| p.list)?;
        let result = self.store.entry(&path).await;
        let entry = self.finish(user, Op::Size, &path, started, result, |entry| {
            Some(entry.len)
        })?;
        let text = listing::format_page(style, &[(path.file_name(), entry)]);
        Ok(std::io::Cursor::new(text))
    }
}

/// Every page of `pages` in `style`, for the listings that are not sent on a data connection.
async fn read_whole_listing(
    mut pages: Box<dyn EntryPages>,
    style: &ListingStyle,
) -> Result<Vec<u8>, StoreError> {
    let mut text = Vec::new();
    while let Some(page) = pages.next_page().await? {
        text.extend_from_slice(&listing::format_page(style, &page));
    }
    Ok(text)
}
