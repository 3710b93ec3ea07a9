//! A server of Upstash's REST protocol in front of a real redis-server, on
//! loopback, for tests and benchmarks: the service itself cannot be reached
//! from where cachette is tested.
//!
//! What it implements follows Upstash's REST API documentation
//! (<https://upstash.com/docs/redis/features/restapi>) and what the official
//! TypeScript SDK (`@upstash/redis`) sends and expects:
//! - `POST /` with a JSON array (one command), answered `{"result": ...}`,
//!   or `{"error": "..."}` with status 400 when Redis refuses it;
//! - `POST /pipeline` with an array of such arrays, answered with one
//!   `{"result"}` or `{"error"}` per command, in order, status 200; not
//!   atomic: other requests' commands may run between them;
//! - `POST /multi-exec`: the same, run in `MULTI`/`EXEC`;
//! - the token as `Authorization: Bearer ...` or `?_token=...`; anything
//!   else is answered 401 `{"error": "Unauthorized"}`;
//! - `Upstash-Encoding: base64`: every string of a result base64-encoded,
//!   except a top-level `OK`;
//! - an `upstash-sync-token` header on every reply, a number that grows
//!   with each request (what clients send back is recorded).
//!
//! Arguments may be JSON strings or numbers. A request's commands are sent
//! to Redis together, so they run in order. Bodies over 10 MB (the limit
//! Upstash documents for its Free and Pay-as-you-go plans) are refused with
//! `ERR max request size exceeded`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use redis::Value;
use serde_json::{json, Value as Json};

/// What the server saw, for tests to assert on.
#[derive(Default)]
pub struct Seen {
    /// Requests answered (any path, any outcome).
    pub requests: AtomicU64,
    /// Commands run.
    pub commands: AtomicU64,
    /// Requests refused for their token.
    pub refused: AtomicU64,
    /// The last `upstash-sync-token` a client sent back.
    pub sync_back: Mutex<Option<String>>,
    /// Every command's name and first argument, in order (kept only when
    /// `record` is on).
    pub log: Mutex<Vec<String>>,
    pub record: std::sync::atomic::AtomicBool,
}

struct Shared {
    redis: redis::Client,
    /// One connection, shared by requests (each sends its commands
    /// together, in order), made again after it fails.
    conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    token: String,
    seen: Arc<Seen>,
    sync: AtomicU64,
    /// Requests wait while this is `true`.
    paused: tokio::sync::watch::Receiver<bool>,
    /// Replies are delayed by this many milliseconds.
    delay_ms: AtomicU64,
    /// `INFO` replies lose their `run_id` line (a server that does not
    /// report one).
    hide_run_id: std::sync::atomic::AtomicBool,
    /// Longest body answered.
    max_body: AtomicU64,
    /// Replies to requests whose body contains this text are held, once
    /// computed, until released.
    hold: Mutex<Option<String>>,
    released: tokio::sync::watch::Sender<u64>,
    held: AtomicU64,
    /// Bytes of spaces after every reply's JSON (a broken or hostile
    /// server's huge reply).
    pad: AtomicU64,
    /// Nils appended to every pipeline's replies (a hostile server's reply
    /// with more values than commands sent).
    extra_replies: AtomicU64,
    /// Commands whose first argument is this name are answered with an
    /// array of this many zeros (a hostile server's reply outside what the
    /// command answers).
    arrays: Mutex<Option<(String, u64)>>,
}

/// The server, on its own thread and runtime; stopped when dropped.
pub struct RestServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub token: String,
    pub seen: Arc<Seen>,
    shared: Arc<Shared>,
    pause: tokio::sync::watch::Sender<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RestServer {
    /// Serves Redis at `redis_url` with a random token.
    pub fn start(redis_url: &str) -> RestServer {
        let token = format!("t{:016x}{:016x}", seed(), seed().rotate_left(17));
        Self::start_with_token(redis_url, &token)
    }

    pub fn start_with_token(redis_url: &str, token: &str) -> RestServer {
        Self::start_inner(redis_url, token, None)
    }

    /// Serves over HTTPS, with the certificate chain and key in these PEM
    /// files; the URL is `https://127.0.0.1:<port>`.
    pub fn start_tls(redis_url: &str, cert: &std::path::Path, key: &std::path::Path) -> RestServer {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .expect("certificate file")
            .collect::<Result<_, _>>()
            .expect("certificates");
        let key = PrivateKeyDer::from_pem_file(key).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate and key");
        let token = format!("t{:016x}", seed());
        Self::start_inner(redis_url, &token, Some(Arc::new(config)))
    }

    fn start_inner(
        redis_url: &str,
        token: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> RestServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr: SocketAddr = listener.local_addr().expect("address");
        let (pause, paused) = tokio::sync::watch::channel(false);
        let seen = Arc::new(Seen::default());
        let shared = Arc::new(Shared {
            redis: redis::Client::open(redis_url).expect("redis url"),
            conn: tokio::sync::Mutex::new(None),
            token: token.to_string(),
            seen: seen.clone(),
            sync: AtomicU64::new(0),
            paused,
            delay_ms: AtomicU64::new(0),
            hide_run_id: Default::default(),
            max_body: AtomicU64::new(MAX_BODY),
            hold: Mutex::new(None),
            released: tokio::sync::watch::channel(0).0,
            held: AtomicU64::new(0),
            pad: AtomicU64::new(0),
            extra_replies: AtomicU64::new(0),
            arrays: Mutex::new(None),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let tls_on = tls.is_some();
        let app = Router::new()
            .route("/", post(|s, q, h, b| serve(s, q, h, b, Mode::One)))
            .route(
                "/pipeline",
                post(|s, q, h, b| serve(s, q, h, b, Mode::Pipeline)),
            )
            .route(
                "/multi-exec",
                post(|s, q, h, b| serve(s, q, h, b, Mode::MultiExec)),
            )
            .layer(axum::extract::DefaultBodyLimit::max(1 << 30))
            .with_state(shared.clone());
        let thread = std::thread::Builder::new()
            .name("rest-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    match tls {
                        None => {
                            let _ = axum::serve(listener, app)
                                .with_graceful_shutdown(async {
                                    let _ = stopped.await;
                                })
                                .await;
                        }
                        Some(tls) => serve_tls(listener, app, tls, stopped).await,
                    }
                });
            })
            .expect("thread");
        let scheme = if tls_on { "https" } else { "http" };
        RestServer {
            url: format!("{scheme}://{addr}"),
            token: token.to_string(),
            seen,
            shared,
            pause,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Holds every request until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.pause.send_replace(true);
    }

    pub fn resume(&self) {
        self.pause.send_replace(false);
    }

    /// Delays every reply by `ms` milliseconds (0: none).
    pub fn delay(&self, ms: u64) {
        self.shared.delay_ms.store(ms, SeqCst);
    }

    /// Makes `INFO` replies lose their `run_id` line.
    pub fn hide_run_id(&self, hide: bool) {
        self.shared.hide_run_id.store(hide, SeqCst);
    }

    /// Refuses bodies longer than `bytes` (default 10 MB).
    pub fn max_request_bytes(&self, bytes: u64) {
        self.shared.max_body.store(bytes, SeqCst);
    }

    /// Holds the replies to requests whose body contains `marker` (they
    /// are computed, and their sync token taken) until
    /// [`release_held`](Self::release_held).
    pub fn hold_replies_of(&self, marker: &str) {
        *self.shared.hold.lock().unwrap() = Some(marker.to_string());
    }

    pub fn release_held(&self) {
        *self.shared.hold.lock().unwrap() = None;
        self.shared.released.send_modify(|n| *n += 1);
    }

    /// Appends `bytes` spaces to every reply (0: none).
    pub fn pad_replies(&self, bytes: u64) {
        self.shared.pad.store(bytes, SeqCst);
    }

    /// Appends `n` nils to every pipeline's replies (0: none).
    pub fn extra_replies(&self, n: u64) {
        self.shared.extra_replies.store(n, SeqCst);
    }

    /// Answers every command whose first argument is `name` with an array
    /// of `items` zeros, in place of its result (0: as Redis answers).
    pub fn array_replies_to(&self, name: &str, items: u64) {
        *self.shared.arrays.lock().unwrap() = (items > 0).then(|| (name.to_string(), items));
    }

    /// Replies held now.
    pub fn held(&self) -> u64 {
        self.shared.held.load(SeqCst)
    }

    /// The last sync token handed out.
    pub fn last_sync(&self) -> u64 {
        self.shared.sync.load(SeqCst)
    }

    pub fn requests(&self) -> u64 {
        self.seen.requests.load(SeqCst)
    }

    pub fn commands(&self) -> u64 {
        self.seen.commands.load(SeqCst)
    }
}

impl Drop for RestServer {
    fn drop(&mut self) {
        self.resume();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts TLS connections until `stopped`, serving `app` on each.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let tcp = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => continue,
            },
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            // A client that refuses the certificate ends here.
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(
                    hyper_util::rt::TokioIo::new(stream),
                    hyper_util::service::TowerToHyperService::new(app),
                )
                .await;
        });
    }
}

/// The longest body answered by default: Upstash's documented request
/// limit on its Free and Pay-as-you-go plans.
const MAX_BODY: u64 = 10 << 20;

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    One,
    Pipeline,
    MultiExec,
}

async fn serve(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: String,
    mode: Mode,
) -> Response {
    shared.seen.requests.fetch_add(1, SeqCst);
    let mut paused = shared.paused.clone();
    let _ = paused.wait_for(|p| !p).await;
    let delay = shared.delay_ms.load(SeqCst);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let sync = shared.sync.fetch_add(1, SeqCst) + 1;
    let mut response = if body.len() as u64 > shared.max_body.load(SeqCst) {
        error(StatusCode::BAD_REQUEST, "ERR max request size exceeded").into_response()
    } else {
        let (status, reply) = answer(&shared, &query, &headers, &body, mode).await;
        let mut text = reply.0.to_string();
        if let Some((_, items)) = &*shared.arrays.lock().unwrap() {
            // Written out as text: a tree of millions of JSON values
            // would cost the test's process hundreds of MB of its own.
            let mut array = "0,".repeat(*items as usize);
            array.pop();
            text = text.replace(&format!("\"{ARRAY}\""), &format!("[{array}]"));
        }
        text.push_str(&" ".repeat(shared.pad.load(SeqCst) as usize));
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            text,
        )
            .into_response()
    };
    let hold = shared
        .hold
        .lock()
        .unwrap()
        .as_ref()
        .is_some_and(|marker| body.contains(marker.as_str()));
    if hold {
        let mut released = shared.released.subscribe();
        released.borrow_and_update();
        shared.held.fetch_add(1, SeqCst);
        let _ = released.changed().await;
        shared.held.fetch_sub(1, SeqCst);
    }
    if let Ok(value) = sync.to_string().parse() {
        response.headers_mut().insert("upstash-sync-token", value);
    }
    response
}

/// What stands for an array of zeros in a reply until it is written out
/// (see [`RestServer::array_replies_to`]): never a base64 string.
const ARRAY: &str = "@@array@@";

fn error(status: StatusCode, message: &str) -> (StatusCode, axum::Json<Json>) {
    (status, axum::Json(json!({ "error": message })))
}

async fn answer(
    shared: &Shared,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &str,
    mode: Mode,
) -> (StatusCode, axum::Json<Json>) {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let by_query = query
        .iter()
        .find(|(k, _)| k == "_token")
        .map(|(_, v)| v.as_str());
    if bearer.or(by_query) != Some(shared.token.as_str()) {
        shared.seen.refused.fetch_add(1, SeqCst);
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    if let Some(back) = headers
        .get("upstash-sync-token")
        .and_then(|v| v.to_str().ok())
    {
        if !back.is_empty() {
            *shared.seen.sync_back.lock().unwrap() = Some(back.to_string());
        }
    }
    let base64 = headers
        .get("upstash-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("base64"));
    let Ok(parsed) = serde_json::from_str::<Json>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ERR failed to parse the request body",
        );
    };
    let commands: Vec<Json> = match (mode, parsed) {
        (Mode::One, command @ Json::Array(_)) => vec![command],
        (_, Json::Array(commands)) if mode != Mode::One => commands,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "ERR the body is not a command array",
            )
        }
    };
    let mut pipe = redis::pipe();
    for command in &commands {
        let Some(args) = command.as_array().filter(|a| !a.is_empty()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "ERR a command is not a non-empty array",
            );
        };
        let cmd = pipe.cmd(&arg(&args[0]).unwrap_or_default());
        for a in &args[1..] {
            match arg(a) {
                Some(a) => cmd.arg(a),
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "ERR an argument is not a string or a number",
                    )
                }
            };
        }
        if shared.seen.record.load(SeqCst) {
            let first = args.get(1).and_then(arg).unwrap_or_default();
            shared.seen.log.lock().unwrap().push(format!(
                "{} {first}",
                arg(&args[0]).unwrap_or_default().to_ascii_uppercase()
            ));
        }
    }
    shared
        .seen
        .commands
        .fetch_add(commands.len() as u64, SeqCst);
    if mode == Mode::MultiExec {
        pipe.atomic();
    }
    pipe.ignore_errors();
    let replies: Vec<Value> = match run(shared, &pipe).await {
        Ok(replies) => replies,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("ERR {e}")),
    };
    let hide = shared.hide_run_id.load(SeqCst);
    let extra = match mode {
        Mode::Pipeline => shared.extra_replies.load(SeqCst) as usize,
        _ => 0,
    };
    let arrayed = shared
        .arrays
        .lock()
        .unwrap()
        .as_ref()
        .map(|(n, _)| n.clone());
    let items: Vec<Json> = replies
        .into_iter()
        .zip(&commands)
        .map(|(reply, command)| {
            let info = command[0]
                .as_str()
                .is_some_and(|c| c.eq_ignore_ascii_case("info"));
            // `None`: answered with the array of zeros instead.
            let first = command.get(1).and_then(arg);
            match reply {
                _ if arrayed.is_some() && first == arrayed => None,
                reply if hide && info => Some(without_run_id(reply)),
                reply => Some(reply),
            }
        })
        .chain(std::iter::repeat_n(Some(Value::Nil), extra))
        .map(|reply| match reply {
            None => json!({ "result": ARRAY }),
            Some(Value::ServerError(e)) => json!({ "error": server_error(&e) }),
            Some(other) => json!({ "result": to_json(other, base64, true) }),
        })
        .collect();
    match mode {
        Mode::One => {
            let item = items.into_iter().next().unwrap_or(Json::Null);
            let status = if item.get("error").is_some() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            (status, axum::Json(item))
        }
        _ => (StatusCode::OK, axum::Json(Json::Array(items))),
    }
}

/// Runs the pipeline: its commands are sent together, so they run in
/// order. A connection found broken (Redis restarted) is made again and
/// the pipeline sent on the new one, as a service would rather than hand
/// its own connection's failure to the client.
async fn run(shared: &Shared, pipe: &redis::Pipeline) -> redis::RedisResult<Vec<Value>> {
    let mut retried = false;
    loop {
        let mut conn = {
            let mut slot = shared.conn.lock().await;
            match &*slot {
                Some(conn) => conn.clone(),
                None => {
                    let conn = shared.redis.get_multiplexed_async_connection().await?;
                    *slot = Some(conn.clone());
                    conn
                }
            }
        };
        match pipe.query_async(&mut conn).await {
            Ok(replies) => return Ok(replies),
            Err(e) => {
                *shared.conn.lock().await = None;
                let broken = e.is_connection_dropped() || e.is_io_error();
                if retried || !broken {
                    return Err(e);
                }
                retried = true;
            }
        }
    }
}

fn without_run_id(reply: Value) -> Value {
    let strip = |text: &str| -> String {
        text.split("\r\n")
            .filter(|line| !line.starts_with("run_id:"))
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    match reply {
        Value::BulkString(b) => Value::BulkString(strip(&String::from_utf8_lossy(&b)).into_bytes()),
        Value::VerbatimString { format, text } => Value::VerbatimString {
            format,
            text: strip(&text),
        },
        other => other,
    }
}

fn arg(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn server_error(e: &redis::ServerError) -> String {
    match e.details() {
        Some(details) => format!("{} {details}", e.code()),
        None => e.code().to_string(),
    }
}

/// A reply as JSON: strings base64-encoded when asked (but a top-level
/// `OK`), arrays and maps as arrays.
fn to_json(value: Value, base64: bool, top: bool) -> Json {
    let text = |bytes: &[u8]| -> Json {
        if base64 {
            Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            Json::String(String::from_utf8_lossy(bytes).into_owned())
        }
    };
    match value {
        Value::Nil => Json::Null,
        Value::Int(i) => json!(i),
        Value::Double(d) => json!(d),
        Value::Boolean(b) => json!(i64::from(b)),
        Value::Okay if top => Json::String("OK".into()),
        Value::Okay => text(b"OK"),
        Value::SimpleString(s) => text(s.as_bytes()),
        Value::BulkString(b) => text(&b),
        Value::VerbatimString { text: t, .. } => text(t.as_bytes()),
        Value::Array(items) | Value::Set(items) => Json::Array(
            items
                .into_iter()
                .map(|v| to_json(v, base64, false))
                .collect(),
        ),
        Value::Map(pairs) => Json::Array(
            pairs
                .into_iter()
                .flat_map(|(k, v)| [to_json(k, base64, false), to_json(v, base64, false)])
                .collect(),
        ),
        Value::ServerError(e) => json!({ "error": server_error(&e) }),
        other => Json::String(format!("{other:?}")),
    }
}
