//! cachette's own runtime: one worker thread (`cachette-io`), made on first
//! use and kept for the life of the process, where every connection and
//! every task cachette relies on runs (I13).
//!
//! - **What runs here:** connection attempts, and so the drivers of the
//!   connections they make (redis-rs spawns a multiplexed connection's
//!   driver on the runtime that connects it), with the invalidation
//!   messages of tracked connections applied in those drivers; the
//!   ordering round trips of the near-cache; the delivery of pending busts;
//!   the release of a lock whose holder was dropped; the slot map's
//!   refreshes; the REST backend's requests and their pooled connections.
//! - **Why:** a caller's runtime may be dropped (each `#[tokio::test]` has
//!   its own), or stay alive and never be driven again (a blocking
//!   facade's current-thread runtime between two `block_on`s). A
//!   connection whose driver lived there would queue every other
//!   runtime's commands to a task nobody polls, and a task spawned there
//!   would never run.
//! - **What does not:** the application's own code. The bodies of cached
//!   functions, background refreshes included (`swr`, `early`), run on the
//!   runtime of the call that started them, with the application's own
//!   resources; these threads only do cachette's I/O, so nothing an
//!   application does can block them.
//! - **Timers:** cachette's own waits (the backend's deadlines, redis-rs's
//!   response timeout, the ordering round trip's bound, lock and follower
//!   waits) are polled inside this runtime's context ([`entered`]), so
//!   their timers are on its timer: they fire even when the caller's
//!   runtime has no timer, or its thread is blocked in a nested executor
//!   (`futures::executor::block_on` inside a current-thread runtime).
//! - **Cost:** a command crosses from the caller's runtime to the driver's
//!   thread and its reply crosses back. Measured (BENCHMARKS.md, run 9): a
//!   near-cache hit at one caller got faster (the driver's thread stays
//!   warm), and at 64 callers it serves about a quarter fewer hits a
//!   second.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use crate::error::{Error, ErrorKind};

/// The runtime's handle, or why it could not be made (threads refused by
/// the system), once for the process.
pub(crate) fn handle() -> Result<&'static tokio::runtime::Handle, Error> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Handle, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            build().map_err(|e| {
                tracing::error!(error = %e, "cachette: could not start its I/O threads; Redis is not used");
                e.to_string()
            })
        })
        .as_ref()
        .map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("cachette could not start its I/O threads: {e}"),
            )
        })
}

/// One worker thread with the Redis backend: measured against two on this
/// two-core kind of machine, one gave a faster hit at one caller and as
/// many hits a second at 64 (BENCHMARKS.md, run 9). The runtime is never
/// dropped: it lives as long as the process.
#[cfg(feature = "redis")]
fn build() -> std::io::Result<tokio::runtime::Handle> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("cachette-io")
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    std::mem::forget(runtime);
    Ok(handle)
}

/// Without it (nothing but the embedded backend, which spawns next to
/// nothing), one thread that drives a current-thread runtime.
#[cfg(not(feature = "redis"))]
fn build() -> std::io::Result<tokio::runtime::Handle> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("cachette-io".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
    Ok(handle)
}

/// Runs `task` on cachette's runtime.
///
/// # Cancel safety
/// Dropping the handle does not stop the task. A guard the task must
/// release whatever happens is made before this call and moved in, so
/// that a task dropped before its first poll still releases it.
pub(crate) fn spawn<F>(task: F) -> Result<tokio::task::JoinHandle<F::Output>, Error>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    use tracing::instrument::WithSubscriber as _;
    // What the task logs goes where its caller's logs go (a subscriber set
    // for a scope or a thread included).
    Ok(handle()?.spawn(task.with_current_subscriber()))
}

/// Runs `task` on cachette's runtime and waits for its output, from any
/// runtime (or none).
///
/// # Cancel safety
/// A caller that stops waiting does not stop the task.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) async fn run<F>(task: F) -> Result<F::Output, Error>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn(task)?.await.map_err(|e| {
        Error::new(
            ErrorKind::Connection,
            format!("a task on cachette's I/O threads ended without its result: {e}"),
        )
    })
}

pin_project_lite::pin_project! {
    /// A future polled inside cachette's runtime context (see [`entered`]).
    pub(crate) struct Entered<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Entered<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Without the runtime, polled as it is (the backend is then not
        // used at all).
        let _context = handle().ok().map(|h| h.enter());
        self.project().future.poll(cx)
    }
}

/// Polls `future` inside cachette's runtime context, wherever it is awaited:
/// the timers it makes are on cachette's timer, and anything it spawns
/// runs on cachette's threads. Only for cachette's own work, never for an
/// application's code (which belongs with the caller's runtime).
pub(crate) fn entered<F: Future>(future: F) -> Entered<F> {
    Entered { future }
}

/// Sleeps on cachette's timer (see [`entered`]).
pub(crate) async fn sleep(duration: std::time::Duration) {
    entered(async move { tokio::time::sleep(duration).await }).await
}

pin_project_lite::pin_project! {
    /// A future with a deadline on cachette's timer (see [`timeout`]).
    pub(crate) struct Timeout<F> {
        #[pin]
        future: F,
        #[pin]
        limit: tokio::time::Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    /// `None`: the deadline passed first.
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.future.poll(cx) {
            return Poll::Ready(Some(out));
        }
        this.limit.poll(cx).map(|()| None)
    }
}

/// `future` within `duration` (`None` past it), timed by cachette's timer;
/// `future` itself is polled where it is awaited (it may be the
/// application's).
pub(crate) fn timeout<F: Future>(duration: std::time::Duration, future: F) -> Timeout<F> {
    let _context = handle().ok().map(|h| h.enter());
    Timeout {
        future,
        limit: tokio::time::sleep(duration),
    }
}
