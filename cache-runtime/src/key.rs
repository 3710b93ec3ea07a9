//! Building keys and tags from templates.
//!
//! A template such as `"pair:<a>:<b>"` is literal text with placeholders. Each
//! value is written with its `Display` text, percent-escaped: every byte
//! outside `A-Z a-z 0-9 _ . -` becomes `%XX`. Templates must separate two
//! placeholders by at least one character that escaping never emits (such as
//! `:`), so the map from values to keys is injective: `("1:x", "y")` renders
//! `pair:1%3Ax:y` and `("1", "x:y")` renders `pair:1:x%3Ay`. A value can
//! therefore never widen a tag: `"*"` renders `%2A`.
//!
//! Rendering never shortens: a key or tag longer than
//! [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes is shortened where it enters
//! the backend, whichever way it was named (see `names/mod.rs`), so a template
//! rendered here, a name written with [`escape`], and the attributes all
//! reach the same entry.

use std::fmt::{self, Display, Write};

use crate::error::{Error, ErrorKind};

/// A tag declared once with `cachette::names!`, whose value (a struct
/// literal naming each placeholder) renders it: the form that both a
/// reader's `tags = [...]` and a writer's can use, so that a misspelled tag
/// is a compile error instead of two tags that never meet.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a declared tag",
    label = "not a tag declared with `cachette::names!`",
    note = "declare it once, `cachette::names! {{ pub tag OrgTag = \"org:<org>\"; }}`, and write \
            `tags = [OrgTag {{ org }}]`; a key's name is not a tag"
)]
pub trait TagName: Display {}

/// A key declared once with `cachette::names!` (see [`TagName`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a declared key",
    label = "not a key declared with `cachette::names!`",
    note = "declare it once, `cachette::names! {{ pub key UserKey = \"user:<id>\"; }}`, and write \
            `key = UserKey {{ id }}`; a tag's name is not a key"
)]
pub trait KeyName: Display {}

/// A tag as `tags_from` gives it: a rendered name (a string, from
/// `cachette::tag!` or [`escape`]), or a declared tag. A declared key is
/// not one: it would bust nothing.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tag",
    label = "not a rendered tag (a string) nor a declared tag",
    note = "`tags_from` returns tags: strings from `cachette::tag!`, or values of tags declared with `cachette::names!`; a declared key is busted through `keys_from`"
)]
pub trait IntoTag {
    /// The tag, rendered.
    fn into_tag(self) -> String;
}

/// A key as `keys_from` gives it (see [`IntoTag`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a key",
    label = "not a rendered key (a string) nor a declared key",
    note = "`keys_from` returns keys: strings from `cachette::tag!`, or values of keys declared with `cachette::names!`; a declared tag is busted through `tags_from`"
)]
pub trait IntoKey {
    /// The key, rendered.
    fn into_key(self) -> String;
}

macro_rules! rendered_names {
    ($($t:ty),*) => {$(
        impl IntoTag for $t {
            fn into_tag(self) -> String {
                AsRef::<str>::as_ref(&self).to_string()
            }
        }
        impl IntoKey for $t {
            fn into_key(self) -> String {
                AsRef::<str>::as_ref(&self).to_string()
            }
        }
    )*};
}

rendered_names!(
    String,
    &str,
    &String,
    std::borrow::Cow<'_, str>,
    Box<str>,
    std::sync::Arc<str>
);

impl<T: TagName> IntoTag for T {
    fn into_tag(self) -> String {
        self.to_string()
    }
}

impl<T: KeyName> IntoKey for T {
    fn into_key(self) -> String {
        self.to_string()
    }
}

/// A placeholder's value, checked not to be a declared name: rendered into
/// a template it would be escaped (`org:7` becomes `org%3A7`), so that the
/// entry would carry another tag than the one its declared name busts.
/// `(&&Hole(&value)).__cachette_hole() as &dyn Display` is the value, or,
/// for a declared name, a cast of [`ADeclaredNameIsNotAPlaceholderValue`],
/// which the compiler refuses.
pub struct Hole<'a, T>(pub &'a T);

/// What a placeholder given a declared name renders to: nothing, since the
/// template expects `&dyn Display` (write the declared name itself in
/// `tags = [...]` or `keys = [...]` instead).
pub struct ADeclaredNameIsNotAPlaceholderValue;

/// See [`Hole`]: a declared tag.
pub trait HoleTag {
    /// Refused.
    fn __cachette_hole(&self) -> ADeclaredNameIsNotAPlaceholderValue {
        ADeclaredNameIsNotAPlaceholderValue
    }
}

impl<T: TagName> HoleTag for &Hole<'_, T> {}

/// See [`Hole`]: a declared key.
pub trait HoleKey {
    /// Refused.
    fn __cachette_hole(&self) -> ADeclaredNameIsNotAPlaceholderValue {
        ADeclaredNameIsNotAPlaceholderValue
    }
}

impl<T: KeyName> HoleKey for &Hole<'_, T> {}

/// See [`Hole`]: any other value (cast to `&dyn Display` where it is
/// used, so that a value that is not `Display` is reported as such).
pub trait HoleValue<'a, T> {
    /// The value, to render.
    fn __cachette_hole(&self) -> &'a T;
}

impl<'a, T> HoleValue<'a, T> for Hole<'a, T> {
    fn __cachette_hole(&self) -> &'a T {
        self.0
    }
}

/// Whether `b` passes through escaping unchanged.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Whether a character of literal template text can separate two
/// placeholders: escaped output never contains it.
pub(crate) fn is_separator(c: char) -> bool {
    !(c.is_ascii() && (is_unreserved(c as u8) || c == '%'))
}

/// A `fmt::Write` that percent-escapes what is written through it.
struct Escaper<'a>(&'a mut String);

impl Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        for &b in s.as_bytes() {
            if is_unreserved(b) {
                self.0.push(b as char);
            } else {
                self.0.push('%');
                self.0.push(HEX[usize::from(b >> 4)] as char);
                self.0.push(HEX[usize::from(b & 15)] as char);
            }
        }
        Ok(())
    }
}

/// Escapes one value the way templates do.
///
/// ```
/// assert_eq!(cachette::escape("1:x"), "1%3Ax");
/// assert_eq!(cachette::escape(&42), "42");
/// ```
pub fn escape(value: &(impl Display + ?Sized)) -> String {
    let mut out = String::new();
    write_escaped(&mut out, value);
    out
}

fn write_escaped(out: &mut String, value: &(impl Display + ?Sized)) {
    // Writing into a String cannot fail; a Display impl that reports an error
    // leaves what it wrote so far, which is still deterministic.
    let _ = write!(Escaper(out), "{value}");
}

/// Renders a template split into its literal pieces and values, as the
/// macros emit it: `pieces.len() == values.len() + 1`.
#[doc(hidden)]
pub fn render(pieces: &[&str], values: &[&dyn Display]) -> String {
    debug_assert_eq!(pieces.len(), values.len() + 1);
    let mut out = String::with_capacity(pieces.iter().map(|p| p.len()).sum::<usize>() + 16);
    for (piece, value) in pieces.iter().zip(values) {
        out.push_str(piece);
        write_escaped(&mut out, *value);
    }
    if let Some(last) = pieces.last() {
        out.push_str(last);
    }
    out
}

/// One part of a parsed template.
#[derive(Debug, PartialEq, Eq)]
enum Part<'t> {
    Lit(&'t str),
    Hole(&'t str),
}

/// Splits a template into literal text and placeholder names, checking the
/// rules the macros check at compile time.
fn parse(template: &str) -> Result<Vec<Part<'_>>, Error> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['<', '>']) {
        if rest.as_bytes()[open] == b'>' {
            return Err(template_error(template, "`>` without a matching `<`"));
        }
        if open > 0 {
            parts.push(Part::Lit(&rest[..open]));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('>')
            .ok_or_else(|| template_error(template, "`<` without a matching `>`"))?;
        let name = &after[..close];
        if !is_placeholder_name(name) {
            return Err(template_error(
                template,
                &format!("`<{name}>` is not a placeholder name"),
            ));
        }
        if let Some(Part::Hole(prev)) = parts.last() {
            return Err(template_error(
                template,
                &format!("`<{prev}>` and `<{name}>` must be separated by a character such as `:`"),
            ));
        }
        if let (Some(Part::Lit(lit)), Some(Part::Hole(prev))) =
            (parts.last(), parts.len().checked_sub(2).map(|i| &parts[i]))
        {
            if !lit.chars().any(is_separator) {
                return Err(template_error(
                    template,
                    &format!(
                        "`<{prev}>` and `<{name}>` must be separated by a character such as `:` \
                         (letters, digits, `_`, `.`, `-` and `%` can appear inside values)"
                    ),
                ));
            }
        }
        parts.push(Part::Hole(name));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest));
    }
    Ok(parts)
}

/// Whether `name` names a placeholder: a name (letters, digits and `_`,
/// starting with a letter or `_`), then any number of `.field`s, each a
/// name or a tuple index (ASCII digits). The macros apply the same rule.
fn is_placeholder_name(name: &str) -> bool {
    let is_ident = |s: &str| {
        s.starts_with(|c: char| c.is_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_alphanumeric() || c == '_')
    };
    let mut segments = name.split('.');
    segments.next().is_some_and(is_ident)
        && segments.all(|s| is_ident(s) || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())))
}

fn template_error(template: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::Template,
        format!("bad template {template:?}: {what}"),
    )
}

/// Renders a key or tag template with values, exactly as `#[cached]` and
/// `#[invalidates]` render it, for programmatic busts.
///
/// ```
/// use cachette::KeyBuilder;
///
/// let key = KeyBuilder::new("pair:<a>:<b>").arg("a", "1:x").arg("b", "y").build()?;
/// assert_eq!(key, "pair:1%3Ax:y");
/// let tag = KeyBuilder::new("org:<org>").arg("org", 7).build()?;
/// assert_eq!(tag, "org:7");
/// # Ok::<(), cachette::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct KeyBuilder {
    template: String,
    args: Vec<(String, String)>,
}

impl KeyBuilder {
    /// Starts rendering `template`; placeholders are `<name>` or
    /// `<name.field>` (or `<name.0>`), with the attributes' rule for names:
    /// letters, digits and `_`, starting with a letter or `_` (`<0>` is
    /// refused by [`build`](Self::build), as the attributes refuse it).
    pub fn new(template: impl Into<String>) -> Self {
        KeyBuilder {
            template: template.into(),
            args: Vec::new(),
        }
    }

    /// Sets the value of placeholder `name` (the text between `<` and `>`).
    pub fn arg(mut self, name: impl Into<String>, value: impl Display) -> Self {
        self.args.push((name.into(), value.to_string()));
        self
    }

    /// Renders the template.
    ///
    /// # Errors
    /// A malformed template, a placeholder without a value, or a value for a
    /// name the template does not have ([`ErrorKind::Template`]).
    pub fn build(&self) -> Result<String, Error> {
        let parts = parse(&self.template)?;
        let mut pieces: Vec<&str> = vec![""];
        let mut values: Vec<&dyn Display> = Vec::new();
        for part in &parts {
            match part {
                Part::Lit(lit) => {
                    if let Some(last) = pieces.last_mut() {
                        *last = lit;
                    }
                }
                Part::Hole(name) => {
                    let value = self
                        .args
                        .iter()
                        .rev()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v)
                        .ok_or_else(|| {
                            template_error(&self.template, &format!("no value for `<{name}>`"))
                        })?;
                    values.push(value);
                    pieces.push("");
                }
            }
        }
        if let Some((name, _)) = self
            .args
            .iter()
            .find(|(n, _)| !parts.contains(&Part::Hole(n)))
        {
            return Err(template_error(
                &self.template,
                &format!("it has no placeholder `<{name}>`"),
            ));
        }
        Ok(render(&pieces, &values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_arguments_render_distinct_keys() {
        let a = render(&["pair:", ":", ""], &[&"1:x", &"y"]);
        let b = render(&["pair:", ":", ""], &[&"1", &"x:y"]);
        assert_ne!(a, b);
        assert_eq!(a, "pair:1%3Ax:y");
        assert_eq!(b, "pair:1:x%3Ay");
    }

    #[test]
    fn a_value_cannot_forge_another_tag() {
        assert_eq!(render(&["org:", ""], &[&"*"]), "org:%2A");
        assert_ne!(render(&["", ""], &[&"org:1"]), "org:1");
        assert_eq!(escape("%3A"), "%253A");
    }

    #[test]
    fn rendering_never_shortens() {
        let long = "x".repeat(500);
        assert_eq!(render(&["k:", ""], &[&long]), format!("k:{long}"));
        assert_eq!(escape(&long), long);
    }

    #[test]
    fn builder_matches_the_macro_rendering() {
        let k = KeyBuilder::new("u:<user.id>:<org>")
            .arg("user.id", 5)
            .arg("org", "a b")
            .build()
            .unwrap();
        assert_eq!(k, render(&["u:", ":", ""], &[&5, &"a b"]));
        assert_eq!(KeyBuilder::new("plain").build().unwrap(), "plain");
    }

    /// The grammar's shared table (the macros run it too).
    #[test]
    fn the_shared_grammar_cases() {
        for line in include_str!("template_cases.txt").lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (expected, template) = line
                .split_once('\t')
                .expect("`ok` or `err`, a tab, the template");
            let parsed = parse(template);
            assert_eq!(
                parsed.is_ok(),
                expected == "ok",
                "{template:?}: {:?}",
                parsed.err()
            );
        }
    }

    #[test]
    fn builder_rejects_bad_templates() {
        for t in ["a:<x><y>", "a:<x>-<y>", "a:<x", "a>", "a:<>", "a:<x y>"] {
            let err = KeyBuilder::new(t).arg("x", 1).arg("y", 2).build();
            assert!(err.unwrap_err().is_template(), "{t}");
        }
        assert!(KeyBuilder::new("a:<x>").build().is_err());
        assert!(KeyBuilder::new("a:<x>")
            .arg("x", 1)
            .arg("z", 2)
            .build()
            .is_err());
    }
}
