//! The batching of concurrent callers' commands into shared requests:
//! the queue of callers waiting, the grouping of a request's commands, and
//! the tasks that send requests and hand each caller its replies.
//!
//! A caller may ask for the server's origin with its commands: the request
//! then ends with one `INFO server replication`, whose reply each such
//! caller gets after its own. It comes after the reads it judges, in the
//! same request.
//!
//! Commands of concurrent callers are batched: a caller's commands join the
//! request being gathered (up to [`MAX_BATCH_BYTES`] and
//! [`MAX_BATCH_COMMANDS`]; a larger caller's go alone), and up to
//! [`MAX_IN_FLIGHT`] requests are sent at once. Each caller's commands stay
//! contiguous and in order. A request is sent by a task of its own, so a
//! caller that is dropped (a timeout, a cancelled call) never strands the
//! others of its batch; what such a caller queued and no one was waiting
//! for any more is not sent.
//!
//! Requests, and the connections they go on, run on cachette's own runtime
//! (`crate::background`): the caller's runtime may stop being driven (a blocking
//! facade's runtime between two calls) or be dropped, and a request or a
//! pooled connection tied to it would then hold up callers on other
//! runtimes. Callers only wait for their replies, on whatever runtime they
//! run.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use redis::Value;
use tokio::sync::oneshot;

use super::client::Client;
use super::protocol::{pipeline, reply_bound, to_json, INFO_REPLY, REPLY_ALLOWANCE};
use crate::error::{Error, ErrorKind};

/// The settings of the client, given to [`Http::new`].
pub(crate) use super::client::Options;

/// How many requests may be outstanding at once; callers arriving while
/// all are out join the next one.
pub(crate) const MAX_IN_FLIGHT: usize = 8;

/// The most bytes of commands gathered in one request: a tenth of the
/// smallest request limit Upstash documents (10 MB), so that other callers'
/// large values never make a request too large.
pub(crate) const MAX_BATCH_BYTES: usize = 1 << 20;

/// The most commands gathered in one request.
pub(crate) const MAX_BATCH_COMMANDS: usize = 1024;

/// The client of the REST endpoint, with the queue of callers in front of
/// it.
pub(crate) struct Http {
    client: Client,
    queue: Mutex<Queue>,
}

/// What is the client's (where requests go, its sync token) is the
/// `Http`'s.
impl std::ops::Deref for Http {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Group>,
    /// Sending tasks running.
    senders: usize,
}

/// One caller's commands, serialized, and where their replies go.
struct Group {
    commands: Vec<String>,
    /// The most bytes their replies may take (see [`reply_bound`]).
    bound: usize,
    /// The caller wants the `INFO` reply after its own.
    with_origin: bool,
    reply: oneshot::Sender<Result<Vec<Value>, Error>>,
}

impl Group {
    fn bytes(&self) -> usize {
        self.commands.iter().map(|c| c.len() + 1).sum()
    }
}

/// The groups of the next request, from the front of `waiting`: as many as
/// fit [`MAX_BATCH_BYTES`] and [`MAX_BATCH_COMMANDS`] (at least one);
/// groups whose caller is gone are dropped.
fn take_batch(waiting: &mut VecDeque<Group>) -> Vec<Group> {
    let (mut batch, mut bytes, mut commands) = (Vec::new(), 0, 0);
    while let Some(group) = waiting.pop_front() {
        if group.reply.is_closed() {
            continue;
        }
        let (size, n) = (group.bytes(), group.commands.len());
        if !batch.is_empty()
            && (bytes + size > MAX_BATCH_BYTES || commands + n > MAX_BATCH_COMMANDS)
        {
            waiting.push_front(group);
            break;
        }
        bytes += size;
        commands += n;
        batch.push(group);
    }
    batch
}

impl Http {
    pub(crate) fn new(url: &str, token: &str, options: &Options) -> Result<Http, Error> {
        Ok(Http {
            client: Client::new(url, token, options, MAX_IN_FLIGHT)?,
            queue: Mutex::new(Queue::default()),
        })
    }

    /// Sends `commands` (in one request with whatever other callers send
    /// now) and returns their replies, in order; a command the server
    /// refused is a `Value::ServerError` in its place.
    /// With `with_origin`, the reply of the request's `INFO server replication`
    /// follows.
    pub(crate) async fn run<'a>(
        self: &Arc<Self>,
        commands: impl IntoIterator<Item = &'a redis::Cmd>,
        with_origin: bool,
    ) -> Result<Vec<Value>, Error> {
        let (mut sent, mut bound) = (Vec::new(), 0_usize);
        for cmd in commands {
            sent.push(to_json(cmd)?);
            bound = bound.saturating_add(reply_bound(cmd));
        }
        let (tx, rx) = oneshot::channel();
        if self.enqueue(Group {
            commands: sent,
            bound,
            with_origin,
            reply: tx,
        }) {
            let sender = Sender(self.clone(), std::cell::Cell::new(true));
            // If it cannot run, it is dropped: counted out, and the groups
            // waiting fail.
            drop(crate::background::spawn(sender.run()));
        }
        rx.await.unwrap_or_else(|_| {
            Err(Error::new(
                ErrorKind::Connection,
                format!("{}: the request was dropped", self.client.target),
            ))
        })
    }

    /// Queues a caller's group; `true` when a sending task must be started
    /// for it (fewer than [`MAX_IN_FLIGHT`] run), which is counted now.
    fn enqueue(&self, group: Group) -> bool {
        let mut queue = crate::sync::lock(&self.queue);
        queue.waiting.push_back(group);
        let start = queue.senders < MAX_IN_FLIGHT;
        if start {
            queue.senders += 1;
        }
        start
    }

    /// Posts one pipeline of the groups' commands and hands each group its
    /// replies.
    async fn send(&self, groups: Vec<Group>) {
        let with_origin = groups.iter().any(|g| g.with_origin);
        let total: usize =
            groups.iter().map(|g| g.commands.len()).sum::<usize>() + usize::from(with_origin);
        let commands = groups.iter().flat_map(|g| &g.commands).map(String::as_str);
        let body = pipeline(commands, with_origin);
        // What the replies may take: each group's, the `INFO`'s, and the
        // brackets around them.
        let limit = groups
            .iter()
            .map(|g| g.bound)
            .chain(with_origin.then_some(INFO_REPLY))
            .fold(REPLY_ALLOWANCE, usize::saturating_add);
        let mut replies = match self.client.post(body, total, limit).await {
            Ok(replies) => replies.into_iter(),
            Err(e) => {
                for group in groups {
                    let _ = group.reply.send(Err(e.clone()));
                }
                return;
            }
        };
        let mine: Vec<Vec<Value>> = groups
            .iter()
            .map(|g| replies.by_ref().take(g.commands.len()).collect())
            .collect();
        let info = replies.next();
        for (group, mut mine) in groups.into_iter().zip(mine) {
            if group.with_origin {
                mine.extend(info.clone());
            }
            let _ = group.reply.send(Ok(mine));
        }
    }
}

/// The task that sends batches while callers wait, then ends. It is
/// counted among the running ones until it finds nothing to send.
struct Sender(Arc<Http>, std::cell::Cell<bool>);

impl Sender {
    async fn run(self) {
        loop {
            // Callers of this same moment join the request.
            tokio::task::yield_now().await;
            let groups = self.next();
            if groups.is_empty() {
                return;
            }
            self.0.send(groups).await;
        }
    }

    /// The next batch; empty when there is nothing to send, and the task
    /// ends: it is counted out under the same lock, so a caller queued after
    /// that starts a task of its own.
    fn next(&self) -> Vec<Group> {
        let mut queue = crate::sync::lock(&self.0.queue);
        let groups = take_batch(&mut queue.waiting);
        if groups.is_empty() && self.1.replace(false) {
            queue.senders -= 1;
        }
        groups
    }
}

impl Drop for Sender {
    /// Counts out a task dropped before it ended (no runtime to run it, or
    /// a panic): the last one to go fails the callers still waiting, which
    /// no task would send.
    fn drop(&mut self) {
        if !self.1.get() {
            return;
        }
        let failed = {
            let mut queue = crate::sync::lock(&self.0.queue);
            queue.senders -= 1;
            if queue.senders == 0 {
                std::mem::take(&mut queue.waiting)
            } else {
                VecDeque::new()
            }
        };
        drop(failed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::protocol::SMALL_REPLY;
    use super::*;

    fn group(
        bytes: usize,
        commands: usize,
    ) -> (Group, oneshot::Receiver<Result<Vec<Value>, Error>>) {
        let (reply, rx) = oneshot::channel();
        let each = "x".repeat(bytes / commands - 1);
        let group = Group {
            commands: vec![each; commands],
            bound: SMALL_REPLY * commands,
            with_origin: false,
            reply,
        };
        (group, rx)
    }

    #[test]
    fn a_batch_is_bounded_and_skips_callers_that_left() {
        let mut waiting = VecDeque::new();
        let mut kept = Vec::new();
        // Nine of 900 KB: one per request.
        for _ in 0..9 {
            let (g, rx) = group(900_000, 1);
            waiting.push_back(g);
            kept.push(rx);
        }
        let (small, rx) = group(100, 1);
        waiting.push_back(small);
        kept.push(rx);
        let mut sizes = Vec::new();
        loop {
            let batch = take_batch(&mut waiting);
            if batch.is_empty() {
                break;
            }
            assert!(
                batch.len() == 1
                    || batch.iter().map(Group::bytes).sum::<usize>() <= MAX_BATCH_BYTES
            );
            sizes.push(batch.len());
        }
        assert_eq!(sizes, [1, 1, 1, 1, 1, 1, 1, 1, 2]);
        // A larger group goes alone; many small ones stop at the count.
        let (huge, _rx) = group(3 * MAX_BATCH_BYTES, 2);
        waiting.push_back(huge);
        let mut rxs = Vec::new();
        for _ in 0..2000 {
            let (g, rx) = group(10, 1);
            waiting.push_back(g);
            rxs.push(rx);
        }
        assert_eq!(take_batch(&mut waiting).len(), 1);
        assert_eq!(take_batch(&mut waiting).len(), MAX_BATCH_COMMANDS);
        // Callers gone: their commands are not sent.
        rxs.clear();
        assert!(take_batch(&mut waiting).is_empty());
        assert!(waiting.is_empty());
    }

    /// A client (to a port nothing answers) whose every sending place is
    /// taken, with the senders that hold them.
    fn every_place_taken() -> (Arc<Http>, Vec<Sender>) {
        let options = Options {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            root_ca: None,
        };
        let http = Arc::new(Http::new("http://127.0.0.1:9", "token", &options).unwrap());
        let senders: Vec<Sender> = (0..MAX_IN_FLIGHT)
            .map(|_| {
                crate::sync::lock(&http.queue).senders += 1;
                Sender(http.clone(), std::cell::Cell::new(true))
            })
            .collect();
        (http, senders)
    }

    /// Every sending task has found nothing more to send when a caller
    /// queues: all places are still taken, so the caller starts none. The
    /// tasks then end: the caller's group must still be sent, not dropped.
    #[test]
    fn a_caller_queued_while_every_sender_ends_is_still_sent() {
        let (http, senders) = every_place_taken();
        for sender in &senders {
            assert!(sender.next().is_empty());
        }
        let (group, mut rx) = group(10, 1);
        let started = http.enqueue(group);
        drop(senders);
        let queue = crate::sync::lock(&http.queue);
        assert!(
            !matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed)),
            "the caller's group was dropped"
        );
        assert!(started, "nobody will send the group: no task runs");
        assert_eq!((queue.waiting.len(), queue.senders), (1, 1));
    }

    /// Every sending task is dropped while a caller waits for a place, in
    /// the middle of a panic: the caller is failed, not left waiting with
    /// no task to send its group.
    #[test]
    fn a_caller_left_by_panicking_senders_is_failed() {
        let (http, senders) = every_place_taken();
        let (group, mut rx) = group(10, 1);
        assert!(!http.enqueue(group), "every place is taken");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _senders = senders;
            panic!("a sending task panics");
        }));
        assert!(panicked.is_err());
        assert!(
            matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed)),
            "the caller was left waiting"
        );
        assert_eq!(crate::sync::lock(&http.queue).senders, 0);
    }
}
