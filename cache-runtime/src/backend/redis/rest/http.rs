//! Upstash's REST protocol: Redis commands as JSON arrays posted to
//! `/pipeline` with a bearer token, replies as `{"result": ...}` or
//! `{"error": ...}`, bulk strings base64-encoded (`Upstash-Encoding:
//! base64`) so that binary values come back whole.
//!
//! A caller may ask for the server's scope with its commands: the request
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
//! A reply is read no further than its commands may answer (see
//! [`reply_bound`]), and parsed as it is read into one value per command:
//! no command cachette sends over REST answers an array, so an array, an
//! object or a boolean in a result is refused where it starts, and a reply
//! is never held as a tree of JSON values.
//!
//! Requests, and the connections they go on, run on cachette's own runtime
//! (`crate::background`): the caller's runtime may stop being driven (a blocking
//! facade's runtime between two calls) or be dropped, and a request or a
//! pooled connection tied to it would then hold up callers on other
//! runtimes. Callers only wait for their replies, on whatever runtime they
//! run.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use redis::Value;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use tokio::sync::oneshot;

use crate::error::{Error, ErrorKind};

/// How many requests may be outstanding at once; callers arriving while
/// all are out join the next one.
pub(crate) const MAX_IN_FLIGHT: usize = 8;

/// The most bytes of commands gathered in one request: a tenth of the
/// smallest request limit Upstash documents (10 MB), so that other callers'
/// large values never make a request too large.
pub(crate) const MAX_BATCH_BYTES: usize = 1 << 20;

/// The most commands gathered in one request.
pub(crate) const MAX_BATCH_COMMANDS: usize = 1024;

/// The most bytes of a reply beyond what its commands may answer: the
/// brackets around the replies, and spaces.
const REPLY_ALLOWANCE: usize = 4 << 10;

/// The most bytes a reply to one command takes beyond its result: the JSON
/// object and comma around it, or an error message in its place.
const REPLY_ENVELOPE: usize = 1 << 10;

/// The most bytes of the reply to an `INFO`: a few KB of text, in base64.
const INFO_REPLY: usize = 64 << 10;

/// The most bytes of the reply to any other command cachette sends: an
/// integer, `OK` or nil, a script's SHA-1, the head of a version (33 bytes),
/// or an error message.
const SMALL_REPLY: usize = 4 << 10;

/// The most bytes of the body of a request refused for its token: an
/// object with an error message.
const REFUSAL_BODY: usize = 4 << 10;

/// The most bytes of a server's error message kept (cut at a character).
const MAX_SAID: usize = 512;

/// hyper's pooled client over rustls (with the *ring* provider), which
/// keeps connections alive between requests.
type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<HttpConnector>,
    Full<bytes::Bytes>,
>;

/// The header that carries the database's position after a write, sent
/// back so that later reads observe it (read-your-writes).
const SYNC_TOKEN: &str = "upstash-sync-token";

pub(crate) struct Http {
    client: Client,
    pipeline: http::Uri,
    request_timeout: Duration,
    headers: HeaderMap,
    /// The newest `upstash-sync-token` the server sent, and its number.
    sync: Mutex<Option<(HeaderValue, Option<u128>)>>,
    queue: Mutex<Queue>,
    /// Where requests go, for errors and logs (never the token).
    pub(crate) target: String,
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
    scoped: bool,
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

/// The question a scoped request ends with.
const INFO: &str = r#"["INFO","server","replication"]"#;

/// HTTP settings.
pub(crate) struct Options {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// PEM roots to trust instead of the platform's.
    pub root_ca: Option<Vec<u8>>,
}

/// How long an idle connection is kept for the next request: under the
/// minute most HTTPS front ends close idle connections after, so that a
/// request is never sent on a connection the server is closing.
const IDLE: Duration = Duration::from_secs(30);

impl Http {
    pub(crate) fn new(url: &str, token: &str, options: &Options) -> Result<Http, Error> {
        let base = check_url(url)?;
        let target = format!(
            "Upstash at {}",
            base.host_str().unwrap_or_default().to_ascii_lowercase()
        );
        let mut pipeline = base.clone();
        let path = format!("{}/pipeline", base.path().trim_end_matches('/'));
        pipeline.set_path(&path);
        if token.is_empty() || token.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(Error::new(
                ErrorKind::Config,
                "the Upstash token is empty or has spaces or control characters",
            ));
        }
        let mut auth = bearer(token)?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("upstash-encoding", HeaderValue::from_static("base64"));
        let mut tcp = HttpConnector::new();
        // The scheme is checked above (`https`, or `http` to loopback).
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(options.connect_timeout));
        tcp.set_keepalive(Some(IDLE));
        tcp.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls(options.root_ca.as_deref())?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .pool_idle_timeout(IDLE)
                .pool_max_idle_per_host(MAX_IN_FLIGHT)
                .build(connector);
        let pipeline = http::Uri::try_from(pipeline.as_str()).map_err(|e| {
            Error::new(ErrorKind::Config, "invalid Upstash REST URL").with_source(e)
        })?;
        Ok(Http {
            client,
            pipeline,
            request_timeout: options.request_timeout,
            headers,
            sync: Mutex::new(None),
            queue: Mutex::new(Queue::default()),
            target,
        })
    }

    /// Sends `commands` (in one request with whatever other callers send
    /// now) and returns their replies, in order; a command the server
    /// refused is a `Value::ServerError` in its place.
    /// With `scoped`, the reply of the request's `INFO server replication`
    /// follows.
    pub(crate) async fn run<'a>(
        self: &Arc<Self>,
        commands: impl IntoIterator<Item = &'a redis::Cmd>,
        scoped: bool,
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
            scoped,
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
                format!("{}: the request was dropped", self.target),
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

    /// Forgets the sync token: the server was restarted or replaced, and
    /// positions in its history before that mean nothing now.
    pub(crate) fn forget_sync(&self) {
        *crate::sync::lock(&self.sync) = None;
    }

    /// Posts one pipeline of the groups' commands and hands each group its
    /// replies.
    async fn send(&self, groups: Vec<Group>) {
        let scoped = groups.iter().any(|g| g.scoped);
        let total: usize =
            groups.iter().map(|g| g.commands.len()).sum::<usize>() + usize::from(scoped);
        let mut body = String::with_capacity(
            2 + groups
                .iter()
                .flat_map(|g| &g.commands)
                .map(|c| c.len() + 1)
                .sum::<usize>(),
        );
        body.push('[');
        for (i, command) in groups.iter().flat_map(|g| &g.commands).enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(command);
        }
        if scoped {
            body.push_str(if total > 1 { "," } else { "" });
            body.push_str(INFO);
        }
        body.push(']');
        // What the replies may take: each group's, the `INFO`'s, and the
        // brackets around them.
        let limit = groups
            .iter()
            .map(|g| g.bound)
            .chain(scoped.then_some(INFO_REPLY))
            .fold(REPLY_ALLOWANCE, usize::saturating_add);
        let mut replies = match self.post(body, total, limit).await {
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
            if group.scoped {
                mine.extend(info.clone());
            }
            let _ = group.reply.send(Ok(mine));
        }
    }

    /// Posts `body`, of `expected` commands whose replies may take `limit`
    /// bytes, and reads their replies.
    async fn post(&self, body: String, expected: usize, limit: usize) -> Result<Vec<Value>, Error> {
        let mut request = http::Request::post(self.pipeline.clone())
            .body(Full::new(bytes::Bytes::from(body)))
            .map_err(|e| {
                Error::new(ErrorKind::Backend, "could not build a request").with_source(e)
            })?;
        *request.headers_mut() = self.headers.clone();
        if let Some((sync, _)) = crate::sync::lock(&self.sync).clone() {
            request.headers_mut().insert(SYNC_TOKEN, sync);
        }
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| self.transport(&e, e.is_connect()))?;
            let (parts, body) = response.into_parts();
            // A refused token is answered with a small object, whatever
            // was asked.
            let limit = if refuses_token(parts.status) {
                REFUSAL_BODY
            } else {
                limit
            };
            let read = http_body_util::Limited::new(body, limit)
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .map_err(|e| self.oversized_or(&*e, limit));
            Ok::<_, Error>((parts, read))
        };
        let (parts, read) = tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| Error::new(ErrorKind::Timeout, format!("{} timed out", self.target)))??;
        let status = parts.status;
        if let Some(sync) = parts.headers.get(SYNC_TOKEN) {
            self.synced(sync);
        }
        if refuses_token(status) {
            let said = match read.as_deref().map(|b| parse(b, expected)) {
                Ok(Ok(Body::Refused(Some(said)))) => said,
                _ => format!("HTTP {status}"),
            };
            return Err(Error::new(
                ErrorKind::Auth,
                format!("{} refused the token: {said}", self.target),
            ));
        }
        // A pipeline whose commands failed is still answered one reply per
        // command, whatever the status.
        match parse(&read?, expected) {
            Ok(Body::Replies(replies)) => Ok(replies),
            Ok(Body::Refused(said)) if !status.is_success() => {
                let said = said.unwrap_or_else(|| format!("HTTP {status}"));
                Err(Error::new(
                    ErrorKind::Backend,
                    format!("{} refused the request: {said}", self.target),
                ))
            }
            Err(_) if !status.is_success() => Err(Error::new(
                ErrorKind::Backend,
                format!("{} refused the request: HTTP {status}", self.target),
            )),
            // What the parser said is left out: it may quote the server.
            _ => Err(self.malformed()),
        }
    }

    /// Keeps the newest sync token: replies to concurrent requests arrive in
    /// any order, and one older than a bust's must not replace it, or a
    /// replica could serve the next read from before the bust. Tokens that
    /// are numbers are compared; others are taken as they come.
    fn synced(&self, token: &HeaderValue) {
        let number = token
            .to_str()
            .ok()
            .and_then(|t| t.trim().parse::<u128>().ok());
        let mut kept = crate::sync::lock(&self.sync);
        if let (Some((_, Some(old))), Some(new)) = (&*kept, number) {
            if new <= *old {
                return;
            }
        }
        *kept = Some((token.clone(), number));
    }

    fn malformed(&self) -> Error {
        Error::new(
            ErrorKind::Backend,
            format!("{} sent a reply outside the REST protocol", self.target),
        )
    }

    /// A reply larger than any the commands may answer, or another
    /// failure while reading it.
    fn oversized_or(
        &self,
        e: &(dyn std::error::Error + Send + Sync + 'static),
        limit: usize,
    ) -> Error {
        if e.is::<http_body_util::LengthLimitError>() {
            return Error::new(
                ErrorKind::Backend,
                format!("{} sent a reply of more than {limit} bytes", self.target),
            );
        }
        let what = format!("{} the reply failed: {e}", self.target);
        Error::new(ErrorKind::Connection, what)
    }

    /// What failed on the way: a TLS handshake (said as such), making the
    /// connection (`connect`), or the exchange.
    fn transport<E>(&self, e: &E, connect: bool) -> Error
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        use crate::error::TlsTrouble;
        let cause = Error::new(ErrorKind::Connection, e.to_string());
        if let Some(trouble) = crate::error::tls_trouble_of(e) {
            let why = match trouble {
                TlsTrouble::Certificate => "its certificate is not trusted",
                TlsTrouble::NotTls => "it did not answer in TLS: does that port speak TLS?",
                TlsTrouble::Closed | TlsTrouble::Other => "see the cause",
            };
            return Error::new(
                ErrorKind::Tls,
                format!("TLS handshake with {} failed: {why}", self.target),
            )
            .with_source(cause);
        }
        let what = if connect {
            "could not connect"
        } else {
            "the request failed"
        };
        Error::new(ErrorKind::Connection, format!("{} {what}", self.target)).with_source(cause)
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

/// The REST URL, checked: `https://`, or `http://` to a loopback address
/// only (a local REST server in development and tests): the token must
/// never cross a network in clear text.
fn check_url(url: &str) -> Result<url::Url, Error> {
    let parsed = url::Url::parse(url)
        .map_err(|e| Error::new(ErrorKind::Config, "invalid Upstash REST URL").with_source(e))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(Error::new(
                ErrorKind::Config,
                "the Upstash REST URL must be https:// (http:// only to a loopback address): \
                 the token would cross the network in clear text",
            ))
        }
        _ => {
            return Err(Error::new(
                ErrorKind::Config,
                "the Upstash REST URL must start with https://",
            ))
        }
    }
    if parsed.host().is_none()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return Err(Error::new(
            ErrorKind::Config,
            "the Upstash REST URL must be the database's address alone \
             (no credentials, query or fragment: the token is given apart)",
        ));
    }
    Ok(parsed)
}

/// rustls with the *ring* provider, trusting the platform's roots or, when
/// given, the PEM roots alone.
fn tls(root_ca: Option<&[u8]>) -> Result<rustls::ClientConfig, Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let tls_error = |e: rustls::Error| {
        Error::new(ErrorKind::Tls, "could not set up TLS for Upstash").with_source(e)
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    let config = match root_ca {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| {
                    Error::new(ErrorKind::Config, "the root certificate is not PEM").with_source(e)
                })?;
                roots.add(cert).map_err(tls_error)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(tls_error)?
                .with_no_client_auth()
        }
    };
    // ALPN is set by the connector (HTTP/1.1).
    Ok(config)
}

/// A command as the JSON array of its arguments. Arguments travel as JSON
/// strings, which carry text only: an argument that is not UTF-8 cannot
/// be sent (cachette's entries are armored first, see `Rest::store`).
fn to_json(cmd: &redis::Cmd) -> Result<String, Error> {
    let mut args = Vec::with_capacity(cmd.args_iter().len());
    for arg in cmd.args_iter() {
        let redis::Arg::Simple(bytes) = arg else {
            return Err(Error::new(
                ErrorKind::Backend,
                "a cursor argument over REST",
            ));
        };
        let text = std::str::from_utf8(bytes).map_err(|_| {
            Error::new(
                ErrorKind::Backend,
                "a binary argument cannot be sent over the REST API",
            )
        })?;
        args.push(text);
    }
    serde_json::to_string(&args)
        .map_err(|e| Error::new(ErrorKind::Backend, "could not encode a command").with_source(e))
}

/// The `Authorization` header of `token`. Its bytes are this cache's one
/// copy of the token, shared by every request (never copied into a
/// request's headers), and wiped when the last request holding them and
/// the cache are gone, as the signing key is.
fn bearer(token: &str) -> Result<HeaderValue, Error> {
    let mut value = zeroize::Zeroizing::new(Vec::with_capacity(7 + token.len()));
    value.extend_from_slice(b"Bearer ");
    value.extend_from_slice(token.as_bytes());
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(value))
        .map_err(|_| Error::new(ErrorKind::Config, "the Upstash token is not a header value"))
}

/// Whether `status` refuses the request's token.
fn refuses_token(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 401 | 403)
}

/// The most bytes the reply to `cmd` takes in a body. A `GETRANGE` whose
/// range ends at `end` answers at most `end + 1` bytes whatever its start
/// (entries and versions are read so), sent in base64; an `INFO` a few KB;
/// anything else cachette sends over REST a few bytes ([`SMALL_REPLY`]).
fn reply_bound(cmd: &redis::Cmd) -> usize {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .take(5)
        .map(|arg| match arg {
            redis::Arg::Simple(bytes) => bytes,
            _ => &[][..],
        })
        .collect();
    match args[..] {
        [name, _, _, end] if name.eq_ignore_ascii_case(b"GETRANGE") => {
            // A negative end counts from the end of the value, which the
            // command does not bound; cachette sends none.
            match std::str::from_utf8(end).map(str::parse::<u64>) {
                Ok(Ok(end)) => {
                    let answered = usize::try_from(end).unwrap_or(usize::MAX).saturating_add(1);
                    crate::backend::redis::armored_len(answered).saturating_add(REPLY_ENVELOPE)
                }
                _ => SMALL_REPLY,
            }
        }
        [name, ..] if name.eq_ignore_ascii_case(b"INFO") => INFO_REPLY,
        _ => SMALL_REPLY,
    }
}

/// A body as parsed: one value per command, a command the server refused
/// as a `Value::ServerError`; or the error object of a request refused
/// whole, with its message if it gave one.
enum Body {
    Replies(Vec<Value>),
    Refused(Option<String>),
}

/// Parses a body of `expected` replies as it reads it, shape checked: no
/// tree of JSON values is built, and anything outside the protocol fails
/// where it starts (see [`Replies`]).
fn parse(bytes: &[u8], expected: usize) -> Result<Body, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let body = Replies { expected }.deserialize(&mut de)?;
    de.end()?;
    Ok(body)
}

/// A body: an array of exactly `expected` replies, refused as soon as it
/// has one more; or an object, the error of a refused request.
struct Replies {
    expected: usize,
}

impl<'de> DeserializeSeed<'de> for Replies {
    type Value = Body;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Body, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Replies {
    type Value = Body;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an array of {} replies", self.expected)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body, A::Error> {
        let mut replies = Vec::with_capacity(self.expected);
        while replies.len() < self.expected {
            match seq.next_element_seed(Reply)? {
                Some(reply) => replies.push(reply),
                None => return Err(de::Error::custom("fewer replies than commands")),
            }
        }
        // Fails on a reply more, before reading it.
        seq.next_element_seed(Excess)?;
        Ok(Body::Replies(replies))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
        let mut said = None;
        while let Some(field) = map.next_key_seed(FieldName)? {
            match field {
                Field::Error => said = said.or(map.next_value_seed(Said)?),
                // Skipped as read, never kept.
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(Body::Refused(said))
    }
}

/// A reply past the last one expected: refused without reading it.
struct Excess;

impl<'de> DeserializeSeed<'de> for Excess {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        Err(de::Error::custom("more replies than commands"))
    }
}

/// One reply: `{"result": ...}`, or `{"error": "..."}` for a command the
/// server refused (an error wins over a result).
struct Reply;

impl<'de> DeserializeSeed<'de> for Reply {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Reply {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object with a result or an error")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let (mut result, mut error) = (None, None);
        while let Some(field) = map.next_key_seed(FieldName)? {
            match field {
                Field::Result if result.is_none() => result = Some(map.next_value_seed(Outcome)?),
                Field::Error if error.is_none() => error = Some(map.next_value_seed(Said)?),
                _ => {
                    return Err(de::Error::custom(
                        "a reply with another field, or one twice",
                    ))
                }
            }
        }
        match (error.flatten(), result) {
            (Some(said), _) => Ok(server_error(&said)),
            (None, Some(result)) => Ok(result),
            (None, None) => Err(de::Error::custom("a reply with neither result nor error")),
        }
    }
}

/// A field of a reply, or of a refused request's object.
enum Field {
    Result,
    Error,
    Other,
}

/// Reads a field's name.
struct FieldName;

impl<'de> DeserializeSeed<'de> for FieldName {
    type Value = Field;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Field, D::Error> {
        de.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for FieldName {
    type Value = Field;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Field, E> {
        Ok(match name {
            "result" => Field::Result,
            "error" => Field::Error,
            _ => Field::Other,
        })
    }
}

/// A `result`: `null` is nil, a number an integer (or a double), `OK` a
/// status, any other string bytes in base64. No command cachette sends
/// over REST answers anything else: an array, an object or a boolean is
/// refused where it starts, unread.
struct Outcome;

impl<'de> DeserializeSeed<'de> for Outcome {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Outcome {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("null, a number or a string")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Int(n))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        Ok(i64::try_from(n).map_or(Value::Double(n as f64), Value::Int))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        Ok(Value::Double(n))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Value, E> {
        if text == "OK" {
            return Ok(Value::Okay);
        }
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Value::BulkString)
            .map_err(|_| E::custom("a result that is not base64"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Value, E> {
        Err(E::custom("a boolean in a result"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(de::Error::custom("an array in a result"))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(de::Error::custom("an object in a result"))
    }
}

/// An `error`: a message, kept to its first [`MAX_SAID`] bytes; `null` is
/// none.
struct Said;

impl<'de> DeserializeSeed<'de> for Said {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Option<String>, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Said {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an error message")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Option<String>, E> {
        let mut end = text.len().min(MAX_SAID);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Ok(Some(text[..end].to_owned()))
    }
}

/// A server error as the `redis` crate reports one, so that its kind
/// (`NOSCRIPT`, `READONLY`, ...) is read the same way over both protocols.
fn server_error(said: &str) -> Value {
    let line: String = said
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    let line = if line.is_empty() {
        "ERR".to_string()
    } else {
        line
    };
    match redis::parse_redis_value(format!("-{line}\r\n").as_bytes()) {
        Ok(value @ Value::ServerError(_)) => value,
        _ => redis::parse_redis_value(b"-ERR unreadable error\r\n").unwrap_or(Value::Nil),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_or_loopback_and_carry_no_secret() {
        assert!(check_url("https://eu1-x.upstash.io").is_ok());
        assert!(check_url("http://127.0.0.1:8079").is_ok());
        assert!(check_url("http://localhost:8079/").is_ok());
        assert!(check_url("http://[::1]:8079").is_ok());
        for bad in [
            "http://eu1-x.upstash.io",
            "redis://127.0.0.1",
            "https://user:pw@eu1-x.upstash.io",
            "https://eu1-x.upstash.io?_token=secret",
            "https://eu1-x.upstash.io#insecure",
            "not a url",
        ] {
            let e = check_url(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{bad}");
            assert!(!e.to_string().contains("secret"), "{e}");
        }
    }

    fn replies(body: &str, expected: usize) -> Vec<Value> {
        match parse(body.as_bytes(), expected) {
            Ok(Body::Replies(replies)) => replies,
            Ok(Body::Refused(said)) => panic!("refused: {said:?}"),
            Err(e) => panic!("{body:.200}: {e}"),
        }
    }

    #[test]
    fn replies_parse_into_redis_values() {
        let body = r#"[{"result":null},{"result":3},{"result":"aGk="},{"result":"OK"},
            {"result":""},{"result":18446744073709551615},{"result":-1.5},
            {"error":"NOSCRIPT No matching script.\r\nx"},{"error":null,"result":"AAE="}] "#;
        let got = replies(body, 9);
        assert_eq!(
            got[..7],
            [
                Value::Nil,
                Value::Int(3),
                Value::BulkString(b"hi".to_vec()),
                Value::Okay,
                Value::BulkString(Vec::new()),
                Value::Double(u64::MAX as f64),
                Value::Double(-1.5),
            ]
        );
        // A server error keeps its kind, read as the `redis` crate reads it.
        let Value::ServerError(e) = &got[7] else {
            panic!("not an error: {:?}", got[7]);
        };
        assert_eq!(e.kind(), Some(redis::ServerErrorKind::NoScript));
        assert_eq!(got[8], Value::BulkString(vec![0, 1]));
        assert!(matches!(server_error(""), Value::ServerError(_)));
        // The error object of a request refused whole, its message cut.
        let long = format!(r#"{{"error":"{}","other":[[1]]}}"#, "é".repeat(MAX_SAID));
        for (body, said) in [
            (
                r#"{"error":"Unauthorized"}"#,
                Some("Unauthorized".to_string()),
            ),
            (&long, Some("é".repeat(MAX_SAID / 2))),
            ("{}", None),
        ] {
            match parse(body.as_bytes(), 1) {
                Ok(Body::Refused(got)) => assert_eq!(got, said),
                _ => panic!("{body:.100}: not a refusal"),
            }
        }
    }

    /// Nothing outside the protocol is read further than where it starts:
    /// an array of a million zeros in a result, or a million replies past
    /// the one expected, fail within the first few bytes of the body, where
    /// a parser into trees read them all first.
    #[test]
    fn replies_outside_the_protocol_are_refused_where_they_start() {
        let zeros = format!("[{}0]", "0,".repeat(1_000_000));
        let nested = format!(r#"[{{"result":{zeros}}}]"#);
        let more = format!(
            r#"[{{"result":null}}{}]"#,
            r#",{"result":null}"#.repeat(1_000_000)
        );
        let object = format!(r#"[{{"result":{{"a":{zeros}}}}}]"#);
        for (body, at) in [(&nested, 12), (&more, 18), (&object, 12)] {
            let e = parse(body.as_bytes(), 1).err().expect("refused");
            assert!(
                e.line() == 1 && e.column() <= at,
                "{body:.40}: refused at column {}: {e}",
                e.column()
            );
        }
        for body in [
            r#"[{"result":true}]"#,
            r#"[{"result":[]}]"#,
            r#"[{"result":"not base64!"}]"#,
            r#"[{"value":"aGk="}]"#,
            r#"[{"result":null,"result":null}]"#,
            r#"[{"error":["NOSCRIPT"]}]"#,
            r#"[{}]"#,
            r#"["aGk="]"#,
            r#"[null]"#,
            r#"[[]]"#,
            r#"[]"#,
            r#"[{"result":null},{"result":null}]"#,
            r#"[{"result":null}] []"#,
            r#"[{"result":null}"#,
            r#""aGk=""#,
            "3",
            "",
        ] {
            assert!(parse(body.as_bytes(), 1).is_err(), "{body} was read");
        }
    }

    /// A reply is read no further than its commands may answer: a lookup
    /// with the default 1 MiB entries and three versions reads at most
    /// 1,938,000 bytes.
    #[test]
    fn a_reply_is_bounded_by_what_its_commands_answer() {
        use crate::backend::redis::{entry_range, version_range};
        let entry = reply_bound(&entry_range("e", 1 << 20));
        // Stored in base64 (1,398,104 bytes and one more), sent in base64.
        assert_eq!(entry, 1_864_140 + REPLY_ENVELOPE);
        let version = reply_bound(&version_range("v"));
        assert_eq!(version, 44 + REPLY_ENVELOPE);
        assert_eq!(reply_bound(redis::cmd("INFO").arg("server")), INFO_REPLY);
        let mut set = redis::cmd("SET");
        set.arg("e").arg("x".repeat(1 << 20));
        assert_eq!(reply_bound(&set), SMALL_REPLY);
        // A range counted from the end is not bounded by the command.
        assert_eq!(
            reply_bound(redis::cmd("GETRANGE").arg("e").arg(0).arg(-1)),
            SMALL_REPLY
        );
        let lookup = REPLY_ALLOWANCE + entry + 3 * version + INFO_REPLY;
        assert_eq!(lookup, 1_938_000);
        // The largest entry bound, saturated rather than wrapped.
        assert!(reply_bound(&entry_range("e", usize::MAX)) >= usize::MAX / 2);
    }

    fn group(
        bytes: usize,
        commands: usize,
    ) -> (Group, oneshot::Receiver<Result<Vec<Value>, Error>>) {
        let (reply, rx) = oneshot::channel();
        let each = "x".repeat(bytes / commands - 1);
        let group = Group {
            commands: vec![each; commands],
            bound: SMALL_REPLY * commands,
            scoped: false,
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

    /// Every sending task has found nothing more to send when a caller
    /// queues: all places are still taken, so the caller starts none. The
    /// tasks then end: the caller's group must still be sent, not dropped.
    #[test]
    fn a_caller_queued_while_every_sender_ends_is_still_sent() {
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

    #[test]
    fn binary_arguments_are_refused_and_text_is_json() {
        let mut cmd = redis::cmd("SET");
        cmd.arg("k\"ey").arg("v");
        assert_eq!(to_json(&cmd).unwrap(), r#"["SET","k\"ey","v"]"#);
        let mut cmd = redis::cmd("SET");
        cmd.arg("k").arg(&[0xff_u8, 0xfe][..]);
        assert_eq!(to_json(&cmd).unwrap_err().kind(), ErrorKind::Backend);
    }
}
