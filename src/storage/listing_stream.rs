//! A directory listing sent while it is read: one page of entries is read (on the blocking
//! pool), formatted and sent before the next is read, so a listing of any size holds one page
//! in memory and never keeps an async worker busy for long. libunftp copies it to the data
//! connection after the 150 (its `listings-by-backend` patch). A listing holds a blocking
//! thread only while it reads a page, so it does not count against `max_transfers`: stalled
//! transfers never stop anyone from listing.

use super::EntryPages;
use super::StoreError;
use super::listing::{ListingStyle, format_page};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// The next page and the pages to read after it, as the fetch hands them back.
type PageFetch = Pin<
    Box<
        dyn Future<
                Output = (
                    Box<dyn EntryPages>,
                    Result<Option<Vec<(String, super::Entry)>>, StoreError>,
                ),
            > + Send,
    >,
>;

/// Called once when the listing ends: the bytes it produced and whether it was complete.
pub type OnFinish = Box<dyn FnOnce(u64, Result<(), String>) + Send>;

/// A listing as an `AsyncRead`.
pub struct ListingStream {
    style: ListingStyle,
    /// The pages still to read; None while a page is being fetched and after the end.
    pages: Option<Box<dyn EntryPages>>,
    fetching: Option<PageFetch>,
    /// The formatted page being sent, and how much of it has gone.
    text: Vec<u8>,
    sent: usize,
    produced: u64,
    on_finish: Option<OnFinish>,
}

impl ListingStream {
    pub fn new(style: ListingStyle, pages: Box<dyn EntryPages>, on_finish: OnFinish) -> Self {
        ListingStream {
            style,
            pages: Some(pages),
            fetching: None,
            text: Vec::new(),
            sent: 0,
            produced: 0,
            on_finish: Some(on_finish),
        }
    }

    fn finish(&mut self, outcome: Result<(), String>) {
        if let Some(on_finish) = self.on_finish.take() {
            on_finish(self.produced, outcome);
        }
    }
}

impl AsyncRead for ListingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.sent < this.text.len() {
                let chunk = &this.text[this.sent..];
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                this.sent += n;
                return Poll::Ready(Ok(()));
            }
            if this.fetching.is_none() {
                let Some(mut pages) = this.pages.take() else {
                    this.finish(Ok(()));
                    return Poll::Ready(Ok(())); // end of the listing
                };
                this.fetching = Some(Box::pin(async move {
                    let page = pages.next_page().await;
                    (pages, page)
                }));
            }
            let Some(fetching) = this.fetching.as_mut() else {
                continue;
            };
            let (pages, page) = match fetching.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(fetched) => fetched,
            };
            this.fetching = None;
            match page {
                Ok(Some(entries)) => {
                    this.pages = Some(pages);
                    this.text = format_page(&this.style, &entries);
                    this.sent = 0;
                    this.produced += this.text.len() as u64;
                }
                Ok(None) => {} // `pages` dropped: the next turn ends the listing
                Err(error) => {
                    let message = error.to_string();
                    this.finish(Err(message.clone()));
                    return Poll::Ready(Err(io::Error::other(message)));
                }
            }
        }
    }
}

impl Drop for ListingStream {
    fn drop(&mut self) {
        // Dropped before its end: the client went away or aborted.
        self.finish(Err("listing abandoned before its end".into()));
    }
}
