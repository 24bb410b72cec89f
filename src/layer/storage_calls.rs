//! A request's storage calls, the read (if any) and then the save, in one allocation: a
//! storage's futures cannot be named, so they are boxed, and the save reuses the box.

use std::future::{Future, Pending, pending};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::{Error, Session, SessionStorage};

/// A request's storage calls, boxed.
pub(super) type StorageCalls = Pin<Box<dyn PollStorage>>;

/// What a save gives: the value to send, if any.
pub(super) type SaveResult = Result<Option<String>, Error>;

/// Polls a request's storage calls in turn.
pub(super) trait PollStorage: Send {
    /// Polls the read.
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Session, Error>>;
    /// Polls the save of `session`, which the first call starts.
    fn poll_save(self: Pin<&mut Self>, cx: &mut Context<'_>, session: &Session)
    -> Poll<SaveResult>;
}

pin_project! {
    /// The calls to one storage: a read, then a save that `start_save` begins.
    #[project = ReadThenSaveProj]
    enum ReadThenSave<Read, StartSave, Save> {
        Read { #[pin] read: Read, start_save: Option<StartSave> },
        Save { #[pin] save: Save },
    }
}

impl<Read, StartSave, Save> PollStorage for ReadThenSave<Read, StartSave, Save>
where
    Read: Future<Output = Result<Session, Error>> + Send,
    StartSave: FnOnce(Session) -> Save + Send,
    Save: Future<Output = SaveResult> + Send,
{
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Session, Error>> {
        match self.project() {
            ReadThenSaveProj::Read { read, .. } => read.poll(cx),
            ReadThenSaveProj::Save { .. } => unreachable!("the read comes before the save"),
        }
    }

    fn poll_save(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        session: &Session,
    ) -> Poll<SaveResult> {
        if let ReadThenSaveProj::Read { start_save, .. } = self.as_mut().project() {
            let start = start_save.take().expect("a save starts once");
            self.set(ReadThenSave::Save {
                save: start(session.clone()),
            });
        }
        match self.project() {
            ReadThenSaveProj::Save { save } => save.poll(cx),
            ReadThenSaveProj::Read { .. } => unreachable!("the save has started"),
        }
    }
}

/// The storage calls for a request: a read of the cookie `value` first, unless `None`.
pub(super) fn storage_calls<St: SessionStorage>(
    storage: &Arc<St>,
    value: Option<String>,
) -> StorageCalls {
    let saver = Arc::clone(storage);
    let save = move |session: Session| async move { saver.save(&session).await };
    match value {
        Some(value) => {
            let reader = Arc::clone(storage);
            let read = async move { reader.read(Some(&value)).await };
            Box::pin(ReadThenSave::Read {
                read,
                start_save: Some(save),
            })
        }
        None => Box::pin(ReadThenSave::<Pending<_>, _, _>::Read {
            read: pending(),
            start_save: Some(save),
        }),
    }
}
