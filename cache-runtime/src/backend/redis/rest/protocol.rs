//! The JSON of Upstash's REST protocol: a Redis command is the JSON array
//! of its arguments, a request's body the array of its commands, and its
//! reply an array of `{"result": ...}` or `{"error": ...}`, one per
//! command, bulk strings in base64 (the client asks for `Upstash-Encoding:
//! base64`) so that binary values come back whole; a request refused whole
//! is answered with an object instead.
//!
//! A reply is read no further than its commands may answer (see
//! [`reply_bound`]), and parsed as it is read into one value per command:
//! no command cachette sends over REST answers an array, so an array, an
//! object or a boolean in a result is refused where it starts, and a reply
//! is never held as a tree of JSON values.

use base64::Engine as _;
use redis::Value;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{Error, ErrorKind};

/// The most bytes of a reply beyond what its commands may answer: the
/// brackets around the replies, and spaces.
pub(super) const REPLY_ALLOWANCE: usize = 4 << 10;

/// The most bytes a reply to one command takes beyond its result: the JSON
/// object and comma around it, or an error message in its place.
const REPLY_ENVELOPE: usize = 1 << 10;

/// The most bytes of the reply to an `INFO`: a few KB of text, in base64.
pub(super) const INFO_REPLY: usize = 64 << 10;

/// The most bytes of the reply to any other command cachette sends: an
/// integer, `OK` or nil, a script's SHA-1, the head of a version (33 bytes),
/// or an error message.
pub(super) const SMALL_REPLY: usize = 4 << 10;

/// The most bytes of a server's error message kept (cut at a character).
const MAX_SAID: usize = 512;

/// The question a request that asks for the origin ends with.
const INFO: &str = r#"["INFO","server","replication"]"#;

/// The body of one request: `commands` (each as [`to_json`] wrote it) in
/// one array, ended by [`INFO`] when `with_origin`.
pub(super) fn pipeline<'a>(
    commands: impl Iterator<Item = &'a str> + Clone,
    with_origin: bool,
) -> String {
    let total = commands.clone().count() + usize::from(with_origin);
    let mut body = String::with_capacity(2 + commands.clone().map(|c| c.len() + 1).sum::<usize>());
    body.push('[');
    for (i, command) in commands.enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(command);
    }
    if with_origin {
        body.push_str(if total > 1 { "," } else { "" });
        body.push_str(INFO);
    }
    body.push(']');
    body
}

/// A command as the JSON array of its arguments. Arguments travel as JSON
/// strings, which carry text only: an argument that is not UTF-8 cannot
/// be sent (cachette's entries are armored first, see `Rest::store`).
pub(super) fn to_json(cmd: &redis::Cmd) -> Result<String, Error> {
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

/// The most bytes the reply to `cmd` takes in a body. A `GETRANGE` whose
/// range ends at `end` answers at most `end + 1` bytes whatever its start
/// (entries and versions are read so), sent in base64; an `INFO` a few KB;
/// anything else cachette sends over REST a few bytes ([`SMALL_REPLY`]).
pub(super) fn reply_bound(cmd: &redis::Cmd) -> usize {
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
                    crate::backend::redis::wire::armored_len(answered)
                        .saturating_add(REPLY_ENVELOPE)
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
pub(super) enum Body {
    Replies(Vec<Value>),
    Refused(Option<String>),
}

/// Parses a body of `expected` replies as it reads it, shape checked: no
/// tree of JSON values is built, and anything outside the protocol fails
/// where it starts (see [`Replies`]).
pub(super) fn parse(bytes: &[u8], expected: usize) -> Result<Body, serde_json::Error> {
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
        use crate::backend::redis::wire::{entry_range, version_range};
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
