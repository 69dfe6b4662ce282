//! An update listener that ends when the bot is told to stop.
//!
//! teloxide's `ShutdownToken` wakes the dispatcher with `Notify::notify_waiters`,
//! which is lost when the dispatcher is not parked in its select at that instant
//! (right after start, or while it hands an update to a worker): the dispatcher then
//! runs on forever. Ending the update stream instead cannot be missed: the stream is
//! polled by the dispatcher itself, and a `None` from it is how the dispatcher stops.

use std::future::Future;
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::stream::{StreamExt, TakeUntil};
use teloxide::stop::StopToken;
use teloxide::types::AllowedUpdate;
use teloxide::update_listeners::{AsUpdateStream, UpdateListener};

/// How long the inner listener gets to stop on its own (polling confirms the last
/// updates with a final `getUpdates`) before its stream is dropped.
const GRACE: Duration = Duration::from_secs(5);

/// Wraps a listener so that its stream ends once `signal` resolves.
pub struct UntilShutdown<L> {
    inner: L,
    signal: Shared<BoxFuture<'static, ()>>,
}

impl<L> UntilShutdown<L> {
    pub fn new(inner: L, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        Self {
            inner,
            signal: signal.boxed().shared(),
        }
    }
}

impl<'a, L> AsUpdateStream<'a> for UntilShutdown<L>
where
    L: UpdateListener + 'a,
{
    type StreamErr = L::Err;
    type Stream = TakeUntil<<L as AsUpdateStream<'a>>::Stream, BoxFuture<'static, ()>>;

    fn as_stream(&'a mut self) -> Self::Stream {
        // The token taken before `as_stream` is the one that stops this stream.
        let stop = self.inner.stop_token();
        let signal = self.signal.clone();
        let ends = async move {
            signal.await;
            // Ask the listener to finish cleanly; cut it off if it takes too long.
            stop.stop();
            tokio::time::sleep(GRACE).await;
        }
        .boxed();
        self.inner.as_stream().take_until(ends)
    }
}

impl<L: UpdateListener + 'static> UpdateListener for UntilShutdown<L> {
    type Err = L::Err;

    fn stop_token(&mut self) -> StopToken {
        self.inner.stop_token()
    }

    fn hint_allowed_updates(&mut self, hint: &mut dyn Iterator<Item = AllowedUpdate>) {
        self.inner.hint_allowed_updates(hint);
    }
}
