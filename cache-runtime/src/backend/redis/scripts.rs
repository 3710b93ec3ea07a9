//! cachette's Lua scripts and how they are called: `EVALSHA` (loaded by
//! the application when the server does not know them) or `FCALL` of the
//! function library an administrator loaded. The `NOSCRIPT` fallback, for
//! every server kind, is [`with_script`].

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use redis::{Cmd, Script, Value};

use super::wire::millis;
use crate::error::Error;
use crate::version::Token;

/// One of cachette's Lua scripts: sent with `EVALSHA` (loaded by the
/// application when Redis does not know it), or called with `FCALL` as a
/// function of the library an administrator loaded (`SERVER_FUNCTIONS`).
pub(crate) struct Lua {
    source: &'static str,
    sha: OnceLock<String>,
    function: &'static str,
}

impl Lua {
    const fn new(source: &'static str, function: &'static str) -> Lua {
        Lua {
            source,
            sha: OnceLock::new(),
            function,
        }
    }

    fn sha(&self) -> &str {
        self.sha
            .get_or_init(|| Script::new(self.source).get_hash().to_string())
    }

    /// The command that runs this script with `keys` (counted) then the
    /// arguments the caller adds.
    pub(crate) fn call(&self, how: Scripting, keys: &[&[u8]]) -> Cmd {
        let mut cmd = match how {
            Scripting::Eval => {
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(self.sha());
                cmd
            }
            Scripting::Functions => {
                let mut cmd = redis::cmd("FCALL");
                cmd.arg(self.function);
                cmd
            }
        };
        cmd.arg(keys.len());
        for key in keys {
            cmd.arg(*key);
        }
        cmd
    }

    /// `SCRIPT LOAD` of this script, after a `NOSCRIPT`.
    pub(crate) fn load(&self) -> Cmd {
        let mut cmd = redis::cmd("SCRIPT");
        cmd.arg("LOAD").arg(self.source);
        cmd
    }
}

/// How cachette runs its scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scripting {
    /// `EVALSHA`, loading the script with `SCRIPT LOAD` when Redis does
    /// not know it (the application needs `+evalsha +script|load`).
    Eval,
    /// `FCALL` of the functions an administrator loaded
    /// (`SERVER_FUNCTIONS`; the application needs `+fcall` only).
    Functions,
}

/// `lua/bust.lua`: KEYS are the version names, ARGV the TTL then one new
/// value per name.
pub(crate) static BUST: Lua = Lua::new(include_str!("../../lua/bust.lua"), "cachette_v2_bust");

/// `lua/adopt.lua`: KEYS[1] a version, ARGV the value seen, the new value
/// and its TTL.
pub(crate) static ADOPT: Lua = Lua::new(include_str!("../../lua/adopt.lua"), "cachette_v2_adopt");

/// `lua/unlock.lua`: KEYS[1] the lock, ARGV[1] the owner's token.
pub(crate) static UNLOCK: Lua =
    Lua::new(include_str!("../../lua/unlock.lua"), "cachette_v2_unlock");

/// cachette's scripts as one Redis function library (Redis 7), for an
/// administrator to load once with `FUNCTION LOAD REPLACE`, so that the
/// application needs `+fcall` rather than `+evalsha +script|load`. See
/// `CacheBuilder::server_functions`.
pub const SERVER_FUNCTIONS: &str = concat!(
    "#!lua name=cachette_v2\n",
    "local function bust(KEYS, ARGV)\n",
    include_str!("../../lua/bust.lua"),
    "\nend\n",
    "local function adopt(KEYS, ARGV)\n",
    include_str!("../../lua/adopt.lua"),
    "\nend\n",
    "local function unlock(KEYS, ARGV)\n",
    include_str!("../../lua/unlock.lua"),
    "\nend\n",
    "redis.register_function('cachette_v2_bust', bust)\n",
    "redis.register_function('cachette_v2_adopt', adopt)\n",
    "redis.register_function('cachette_v2_unlock', unlock)\n",
);

/// Replaces the version `name`, seen as `seen` (empty: missing), with
/// `value`, unless it changed since.
pub(crate) fn adopt(how: Scripting, name: &str, seen: &[u8], value: &[u8], ttl: Duration) -> Cmd {
    let mut cmd = ADOPT.call(how, &[name.as_bytes()]);
    cmd.arg(seen).arg(value).arg(millis(ttl));
    cmd
}

/// Releases `key` if `token` still holds it.
pub(crate) fn unlock(how: Scripting, key: &str, token: Token) -> Cmd {
    let mut cmd = UNLOCK.call(how, &[key.as_bytes()]);
    cmd.arg(token.as_bytes().as_slice());
    cmd
}

/// Creates or replaces one version on a server whose origin is `run`, with
/// the adopt script: `seen` is what the lookup saw of it (`None`:
/// missing), and the reply, read by `wire::ensured`, is at most
/// `VERSION_READ` bytes of what is in place.
pub(crate) fn ensure_cmd(
    how: Scripting,
    name: &str,
    seen: Option<&[u8]>,
    run: &str,
    ours: &Token,
    ttl: Duration,
) -> redis::Cmd {
    let value = crate::version::stored(run, ours);
    adopt(how, name, seen.unwrap_or_default(), &value, ttl)
}

/// Runs `send` once; when scripts go by `EVALSHA` and the server did not
/// know `script` (`NOSCRIPT`: a server's script cache starts empty after a
/// restart or a `SCRIPT FLUSH`), loads it with `load` and runs `send`
/// again. Running again is safe: every script of cachette's writes what it
/// would have written the first time (fresh tokens, or the same release).
pub(crate) async fn with_script<T, S, SF, L, LF>(
    how: Scripting,
    script: &Lua,
    mut send: S,
    load: L,
) -> Result<T, Error>
where
    T: Replies,
    S: FnMut() -> SF,
    SF: Future<Output = Result<T, Error>>,
    L: FnOnce(Cmd) -> LF,
    LF: Future<Output = Result<Value, Error>>,
{
    let first = send().await;
    let unknown = match &first {
        Ok(replies) => replies.no_script(),
        Err(e) => e.is_no_script(),
    };
    if how != Scripting::Eval || !unknown {
        return first;
    }
    if let Value::ServerError(e) = load(script.load()).await? {
        return Err(Error::from(redis::RedisError::from(e)));
    }
    send().await
}

/// What a scripted call answered, asked whether the server did not know
/// the script.
pub(crate) trait Replies {
    fn no_script(&self) -> bool;
}

impl Replies for Value {
    fn no_script(&self) -> bool {
        matches!(self, Value::ServerError(e) if e.kind() == Some(redis::ServerErrorKind::NoScript))
    }
}

impl Replies for Vec<Value> {
    fn no_script(&self) -> bool {
        self.iter().any(Replies::no_script)
    }
}

/// Replies read in a server's origin, with that origin.
impl<T: Replies> Replies for (T, std::sync::Arc<str>) {
    fn no_script(&self) -> bool {
        self.0.no_script()
    }
}
