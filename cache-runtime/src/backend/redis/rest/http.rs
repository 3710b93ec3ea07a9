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
//! request being gathered, and up to [`MAX_IN_FLIGHT`] requests are sent at
//! once. A request is sent by a task of its own, so a caller that is
//! dropped (a timeout, a cancelled call) never strands the others of its
//! batch. Each caller's commands stay contiguous and in order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use redis::Value;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use tokio::sync::oneshot;

use crate::error::{Error, ErrorKind};

/// How many requests may be outstanding at once; callers arriving while
/// all are out join the next one.
pub(crate) const MAX_IN_FLIGHT: usize = 8;

/// The header that carries the database's position after a write, sent
/// back so that later reads observe it (read-your-writes).
const SYNC_TOKEN: &str = "upstash-sync-token";

pub(crate) struct Http {
    client: reqwest::Client,
    pipeline: reqwest::Url,
    headers: HeaderMap,
    /// The last `upstash-sync-token` the server sent.
    sync: Mutex<Option<HeaderValue>>,
    queue: Mutex<Queue>,
    /// Where requests go, for errors and logs (never the token).
    pub(crate) target: String,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Group>,
    /// Sending tasks running.
    senders: usize,
}

/// One caller's commands, serialized, and where their replies go.
struct Group {
    commands: Vec<String>,
    /// The caller wants the `INFO` reply after its own.
    scoped: bool,
    reply: oneshot::Sender<Result<Vec<Value>, Error>>,
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
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            Error::new(ErrorKind::Config, "the Upstash token is not a header value")
        })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("upstash-encoding", HeaderValue::from_static("base64"));
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls(options.root_ca.as_deref())?)
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .pool_idle_timeout(IDLE)
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .tcp_keepalive(IDLE)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Config, "could not build the HTTP client").with_source(e)
            })?;
        Ok(Http {
            client,
            pipeline,
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
    pub(crate) async fn run(
        self: &Arc<Self>,
        commands: &[redis::Cmd],
        scoped: bool,
    ) -> Result<Vec<Value>, Error> {
        let commands = commands
            .iter()
            .map(to_json)
            .collect::<Result<Vec<_>, _>>()?;
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut queue = crate::sync::lock(&self.queue);
            queue.waiting.push(Group {
                commands,
                scoped,
                reply: tx,
            });
            let start = queue.senders < MAX_IN_FLIGHT;
            if start {
                queue.senders += 1;
            }
            start
        };
        if start {
            tokio::spawn(Sender(self.clone()).run());
        }
        rx.await.unwrap_or_else(|_| {
            Err(Error::new(
                ErrorKind::Connection,
                "the request was dropped with its runtime",
            ))
        })
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
        let mut replies = match self.post(body, total).await {
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

    async fn post(&self, body: String, expected: usize) -> Result<Vec<Value>, Error> {
        let mut request = self
            .client
            .post(self.pipeline.clone())
            .headers(self.headers.clone())
            .body(body);
        if let Some(sync) = crate::sync::lock(&self.sync).clone() {
            request = request.header(SYNC_TOKEN, sync);
        }
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if let Some(sync) = response.headers().get(SYNC_TOKEN) {
            *crate::sync::lock(&self.sync) = Some(sync.clone());
        }
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        let parsed = serde_json::from_slice::<serde_json::Value>(&bytes);
        if matches!(status.as_u16(), 401 | 403) {
            let said = parsed
                .ok()
                .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(Error::new(
                ErrorKind::Auth,
                format!("{} refused the token: {said}", self.target),
            ));
        }
        // A pipeline whose commands failed is still answered one reply per
        // command, whatever the status.
        let replies = match parsed {
            Ok(serde_json::Value::Array(replies)) if replies.len() == expected => replies,
            Ok(other) if !status.is_success() => {
                let said = other
                    .get("error")
                    .and_then(|e| e.as_str())
                    .map_or_else(|| format!("HTTP {status}"), str::to_owned);
                return Err(Error::new(
                    ErrorKind::Backend,
                    format!("{} refused the request: {said}", self.target),
                ));
            }
            Err(_) if !status.is_success() => {
                return Err(Error::new(
                    ErrorKind::Backend,
                    format!("{} refused the request: HTTP {status}", self.target),
                ))
            }
            _ => return Err(self.malformed()),
        };
        replies.into_iter().map(|r| self.reply(r)).collect()
    }

    /// One `{"result": ...}` or `{"error": ...}`.
    fn reply(&self, reply: serde_json::Value) -> Result<Value, Error> {
        let serde_json::Value::Object(mut fields) = reply else {
            return Err(self.malformed());
        };
        if let Some(error) = fields.remove("error").filter(|e| !e.is_null()) {
            let said = error.as_str().unwrap_or("(not a string)");
            return Ok(server_error(said));
        }
        match fields.remove("result") {
            Some(serde_json::Value::String(s)) if s == "OK" => Ok(Value::Okay),
            Some(result) => decode(result).ok_or_else(|| self.malformed()),
            None => Err(self.malformed()),
        }
    }

    fn malformed(&self) -> Error {
        Error::new(
            ErrorKind::Backend,
            format!("{} sent a reply outside the REST protocol", self.target),
        )
    }

    fn transport(&self, e: reqwest::Error) -> Error {
        use crate::error::TlsTrouble;
        let e = e.without_url();
        if let Some(trouble) = crate::error::tls_trouble_of(&e) {
            let why = match trouble {
                TlsTrouble::Certificate => "its certificate is not trusted",
                TlsTrouble::NotTls => "it did not answer in TLS: does that port speak TLS?",
                TlsTrouble::Closed | TlsTrouble::Other => "see the cause",
            };
            return Error::new(
                ErrorKind::Tls,
                format!("TLS handshake with {} failed: {why}", self.target),
            )
            .with_source(e);
        }
        let (kind, what) = if e.is_timeout() {
            (ErrorKind::Timeout, "timed out")
        } else if e.is_connect() {
            (ErrorKind::Connection, "could not connect")
        } else {
            (ErrorKind::Connection, "the request failed")
        };
        // Without the URL: it is ours, and said in the target.
        Error::new(kind, format!("{} {what}", self.target)).with_source(e)
    }
}

/// The task that sends batches while callers wait, then ends.
struct Sender(Arc<Http>);

impl Sender {
    async fn run(self) {
        loop {
            // Callers of this same moment join the request.
            tokio::task::yield_now().await;
            let groups = std::mem::take(&mut crate::sync::lock(&self.0.queue).waiting);
            if groups.is_empty() {
                return;
            }
            self.0.send(groups).await;
        }
    }
}

impl Drop for Sender {
    /// Counts this sender out, under the lock it checked the queue under:
    /// a caller queued since starts a sender of its own, or finds one
    /// running that will take it.
    fn drop(&mut self) {
        let mut queue = crate::sync::lock(&self.0.queue);
        queue.senders -= 1;
        if queue.senders == 0 && !std::thread::panicking() {
            // Dropped with its runtime while callers still wait: they fail
            // now rather than at their deadline.
            queue.waiting.clear();
        }
    }
}

/// The REST URL, checked: `https://`, or `http://` to a loopback address
/// only (a local REST server in development and tests): the token must
/// never cross a network in clear text.
fn check_url(url: &str) -> Result<reqwest::Url, Error> {
    let parsed = reqwest::Url::parse(url)
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
    let mut config = match root_ca {
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
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
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

/// A `result`, base64-encoded: strings are bulk strings (status replies
/// but `OK` too), numbers integers, `null` nil, arrays arrays.
fn decode(result: serde_json::Value) -> Option<Value> {
    Some(match result {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Double(n.as_f64()?),
        },
        serde_json::Value::String(s) => Value::BulkString(
            base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .ok()?,
        ),
        serde_json::Value::Array(items) => {
            Value::Array(items.into_iter().map(decode).collect::<Option<_>>()?)
        }
        serde_json::Value::Bool(_) | serde_json::Value::Object(_) => return None,
    })
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

    #[test]
    fn replies_decode_as_redis_values() {
        let json = serde_json::json!([null, 3, "aGk=", ["", null, "AAE="]]);
        assert_eq!(
            decode(json),
            Some(Value::Array(vec![
                Value::Nil,
                Value::Int(3),
                Value::BulkString(b"hi".to_vec()),
                Value::Array(vec![
                    Value::BulkString(Vec::new()),
                    Value::Nil,
                    Value::BulkString(vec![0, 1]),
                ]),
            ]))
        );
        assert_eq!(decode(serde_json::json!("not base64!")), None);
        assert_eq!(decode(serde_json::json!({"a": 1})), None);
        let Value::ServerError(e) = server_error("NOSCRIPT No matching script.\r\nx") else {
            panic!("not an error");
        };
        assert_eq!(e.kind(), Some(redis::ServerErrorKind::NoScript));
        assert!(matches!(server_error(""), Value::ServerError(_)));
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
