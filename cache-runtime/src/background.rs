//! cachette's own runtime: two worker threads (`cachette-io`), made on first
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
//! - **Cost:** a command crosses from the caller's runtime to the driver's
//!   thread and its reply crosses back, where a connection made on a
//!   multi-thread caller's runtime may have had its driver on the caller's
//!   own worker (BENCHMARKS.md, run 9).

use std::future::Future;
use std::sync::OnceLock;

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

/// Two worker threads with the Redis backend. The runtime is never
/// dropped: it lives as long as the process.
#[cfg(feature = "redis")]
fn build() -> std::io::Result<tokio::runtime::Handle> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
    Ok(handle()?.spawn(task))
}

/// Runs `task` on cachette's runtime and waits for its output, from any
/// runtime (or none).
///
/// # Cancel safety
/// A caller that stops waiting does not stop the task.
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
