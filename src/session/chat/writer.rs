//! The sending half's task: what the chat loop queues goes out in order, and how it failed
//! when it did.

use crate::error::{Error, Result};
use crate::message::Message;
use crate::transport::SendHalf;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

pub(super) async fn writer_failure(writer: &mut tokio::task::JoinHandle<Result<()>>) -> Error {
    match writer.await {
        Ok(Err(e)) => e,
        _ => Error::Internal("the sending task stopped".into()),
    }
}

/// Sends queued messages in order. Stops after a QUIT or when the queue closes, then closes our
/// direction of the stream.
///
/// Files' bytes (`bulk`: CHUNKs and DONEs, in their order) go only when nothing else waits, so
/// a line typed during a transfer overtakes everything but what is already on its way: the
/// receiver's CREDIT keeps that to a few MiB.
pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
    mut send: SendHalf<W>,
    mut outgoing: mpsc::Receiver<Message<'static>>,
    mut bulk: mpsc::Receiver<Message<'static>>,
) -> Result<()> {
    loop {
        let msg = tokio::select! {
            biased;
            msg = outgoing.recv() => match msg {
                Some(msg) => msg,
                None => break,
            },
            Some(msg) = bulk.recv() => msg,
        };
        send.send(&msg).await?;
        if send.quit_sent() {
            break;
        }
    }
    send.close().await
}
