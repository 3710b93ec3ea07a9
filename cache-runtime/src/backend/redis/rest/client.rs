//! The HTTPS client of the REST API: hyper's pooled connections over
//! rustls, the URL and token it is allowed to use (`https://`, or `http://`
//! to a loopback address only; a bearer token held once), the posting of
//! one request body to `/pipeline` and the reading of its reply within a
//! bound, what a failure on the way is said to be (a TLS handshake, a
//! connection, a refused token), and the sync token sent back for
//! read-your-writes.
//!
//! What goes in a body and how a reply is parsed is the protocol's
//! (`protocol.rs`); which callers share a request is the batcher's
//! (`batch.rs`), whose sending tasks run the requests, and so the pooled
//! connections, on cachette's own runtime.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use redis::Value;

use super::protocol::{parse, Body};
use crate::error::{Error, ErrorKind};

/// The most bytes of the body of a request refused for its token: an
/// object with an error message.
const REFUSAL_BODY: usize = 4 << 10;

/// hyper's pooled client over rustls (with the *ring* provider), which
/// keeps connections alive between requests.
type Pool = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<HttpConnector>,
    Full<bytes::Bytes>,
>;

/// The header that carries the database's position after a write, sent
/// back so that later reads observe it (read-your-writes).
const SYNC_TOKEN: &str = "upstash-sync-token";

/// The client of one REST endpoint: where requests go, with which token.
pub(crate) struct Client {
    pool: Pool,
    pipeline: http::Uri,
    request_timeout: Duration,
    headers: HeaderMap,
    /// The newest `upstash-sync-token` the server sent, and its number.
    sync: Mutex<Option<(HeaderValue, Option<u128>)>>,
    /// Where requests go, for errors and logs (never the token).
    pub(crate) target: String,
}

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

impl Client {
    /// The client of the REST endpoint at `url`, keeping up to `idle`
    /// connections alive (as many as requests may be outstanding).
    pub(super) fn new(
        url: &str,
        token: &str,
        options: &Options,
        idle: usize,
    ) -> Result<Client, Error> {
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
        let pool =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .pool_idle_timeout(IDLE)
                .pool_max_idle_per_host(idle)
                .build(connector);
        let pipeline = http::Uri::try_from(pipeline.as_str()).map_err(|e| {
            Error::new(ErrorKind::Config, "invalid Upstash REST URL").with_source(e)
        })?;
        Ok(Client {
            pool,
            pipeline,
            request_timeout: options.request_timeout,
            headers,
            sync: Mutex::new(None),
            target,
        })
    }

    /// Forgets the sync token: the server was restarted or replaced, and
    /// positions in its history before that mean nothing now.
    pub(crate) fn forget_sync(&self) {
        *crate::sync::lock(&self.sync) = None;
    }

    /// Posts `body`, of `expected` commands whose replies may take `limit`
    /// bytes, and reads their replies.
    pub(super) async fn post(
        &self,
        body: String,
        expected: usize,
        limit: usize,
    ) -> Result<Vec<Value>, Error> {
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
                .pool
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
        let cause = Error::new(ErrorKind::Connection, e.to_string());
        if let Some(trouble) = crate::error::tls_trouble_of(e) {
            return crate::error::tls_failed(&self.target, trouble).with_source(cause);
        }
        let what = if connect {
            "could not connect"
        } else {
            "the request failed"
        };
        Error::new(ErrorKind::Connection, format!("{} {what}", self.target)).with_source(cause)
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
}
