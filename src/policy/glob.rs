//! Redis glob patterns, with the exact semantics of Redis's `stringmatchlen`
//! (`util.c`), which `KEYS`, `SCAN … MATCH` and `PSUBSCRIBE` use.
//!
//! - `*` any run of bytes, `?` any one byte, `\x` the byte `x`.
//! - `[abc]`, `[^abc]`, `[a-z]`: a class of one byte. Ranges may be reversed
//!   (`[z-a]`); their ends compare as C `char`s, which are signed on the platforms
//!   Redis ships for, so a range from `a` to byte 0xFF holds 0xFF and 0x00 to `a`.
//!   `\x` inside a class is the byte `x`. `-]` is a range ending at `]`, so `[a-]`
//!   does not close.
//! - Quirks kept on purpose: an unclosed `[` is a class running to the end of the
//!   pattern, a trailing lone `\` matches a backslash, `[]` matches nothing, `[^]`
//!   any byte; an empty key matches only the empty pattern (and `*`, which `KEYS` and
//!   `SCAN` treat as "everything" before matching).
//!
//! [`stringmatch`] interprets the pattern bytes directly (no allocation) and also
//! offers Redis's case-insensitive mode. [`Glob`] compiles a pattern once into tokens
//! with 256-bit byte classes, literal prefix and suffix and length bounds, for the hot
//! path. [`Glob::new`] refuses patterns that are surely mistakes (see [`GlobError`]);
//! [`Glob::redis`] accepts anything, exactly as Redis does.
//!
//! Both matchers backtrack only to the most recent `*`, which gives the same answers
//! as Redis's recursion (Redis prunes the same way, see `skipLongerMatches`) in
//! O(pattern × key) time and constant stack.

use crate::protocol::same;

#[cfg(test)]
mod redis_tests;
#[cfg(any(test, fuzzing))]
pub mod reference;
#[cfg(test)]
mod tests;

/// Why [`Glob::new`] refuses a pattern Redis would accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// Redis would treat everything after the `[` as one class.
    #[error(
        "unbalanced `[` in glob (at byte {at}): the class would run to the end of the pattern; write `\\[` for a literal `[`{}",
        if *.dash_bracket { ", and note that `-]` is a range ending at `]` (put `-` first or write `\\-`)" } else { "" }
    )]
    UnclosedClass { at: usize, dash_bracket: bool },
    /// `[]` closes at once and matches no byte, so the pattern matches no key.
    #[error(
        "empty class `[]` in glob (at byte {at}) matches nothing; write `\\[\\]` for the literal text"
    )]
    EmptyClass { at: usize },
    /// A `\` with nothing to escape (Redis would match a literal backslash).
    #[error("trailing `\\` in glob escapes nothing; write `\\\\` for a literal backslash")]
    TrailingBackslash,
}

/// Redis's `stringmatchlen(pattern, s, nocase)`, byte for byte.
///
/// `nocase` folds ASCII letters only, as C's `tolower` in the C locale does, and like
/// Redis does not fold bytes escaped inside a class. Unlike `KEYS`, the pattern `*`
/// does not match the empty string here (Redis short-cuts `*` before calling this).
pub fn stringmatch(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    if s.is_empty() {
        return pattern.is_empty();
    }
    let (mut p, mut i) = (0, 0);
    // Where to resume after the most recent `*`: (pattern after it, key position).
    let mut resume: Option<(usize, usize)> = None;
    loop {
        if pattern.get(p) == Some(&b'*') {
            while pattern.get(p) == Some(&b'*') {
                p += 1;
            }
            if p == pattern.len() {
                return true;
            }
            resume = Some((p, i));
        }
        if p < pattern.len()
            && i < s.len()
            && let Some(next) = step(pattern, p, s[i], nocase)
        {
            p = next;
            i += 1;
            if i < s.len() {
                continue;
            }
            // The key is used up: only `*`s may remain.
            if pattern[p..].iter().all(|&c| c == b'*') {
                return true;
            }
        }
        // Mismatch: let the last `*` swallow one more byte, if any remains.
        match resume {
            Some((rp, ri)) if ri + 1 < s.len() => {
                resume = Some((rp, ri + 1));
                p = rp;
                i = ri + 1;
            }
            _ => return false,
        }
    }
}

/// Matches the single pattern element at `pattern[at]` (not `*`) against byte `c`;
/// returns where the next element starts.
fn step(pattern: &[u8], at: usize, c: u8, nocase: bool) -> Option<usize> {
    match pattern[at] {
        b'?' => Some(at + 1),
        b'[' => {
            let class = class(pattern, at + 1, c, nocase);
            class.hit.then_some(class.end)
        }
        b'\\' if at + 1 < pattern.len() => eq(pattern[at + 1], c, nocase).then_some(at + 2),
        b => eq(b, c, nocase).then_some(at + 1),
    }
}

/// One evaluation of a `[…]` class against a byte.
struct Class {
    hit: bool,
    /// Index just past the class (past `]`, or the pattern's end when unclosed).
    end: usize,
    closed: bool,
}

/// Evaluates the class whose body starts at `pattern[j]` (just after `[`) for byte
/// `c`, following Redis's loop step by step.
fn class(pattern: &[u8], mut j: usize, c: u8, nocase: bool) -> Class {
    let negated = pattern.get(j) == Some(&b'^');
    if negated {
        j += 1;
    }
    let mut hit = false;
    let closed = loop {
        let left = pattern.len() - j;
        if left >= 2 && pattern[j] == b'\\' {
            j += 1;
            hit |= pattern[j] == c; // Redis compares escaped bytes case-sensitively.
        } else if left >= 1 && pattern[j] == b']' {
            break true;
        } else if left == 0 {
            break false;
        } else if left >= 3 && pattern[j + 1] == b'-' {
            hit |= in_range(pattern[j], pattern[j + 2], c, nocase);
            j += 2;
        } else {
            hit |= eq(pattern[j], c, nocase);
        }
        j += 1;
    };
    Class {
        hit: hit != negated,
        end: if closed { j + 1 } else { j },
        closed,
    }
}

/// A range test as Redis does it: ends and byte as signed `char`, swapped when
/// reversed, then (when `nocase`) each lowered without swapping again.
fn in_range(start: u8, end: u8, c: u8, nocase: bool) -> bool {
    let signed = |b: u8| b as i8 as i32;
    let (mut lo, mut hi, mut c) = (signed(start), signed(end), signed(c));
    if lo > hi {
        std::mem::swap(&mut lo, &mut hi);
    }
    if nocase {
        let lower = |v: i32| if (65..=90).contains(&v) { v + 32 } else { v };
        (lo, hi, c) = (lower(lo), lower(hi), lower(c));
    }
    lo <= c && c <= hi
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    a == b || (nocase && a.eq_ignore_ascii_case(&b))
}

/// A compiled Redis glob (case-sensitive, as `KEYS` and `SCAN` match).
#[derive(Clone)]
pub struct Glob {
    pattern: Box<[u8]>,
    tokens: Box<[Token]>,
    /// The bytes every matching key starts with (escapes resolved).
    prefix: Box<[u8]>,
    /// Number of tokens that make up `prefix`.
    prefix_tokens: usize,
    /// The bytes every matching key ends with, after the last wildcard (empty for a
    /// literal pattern, whose bytes are all in `prefix`).
    suffix: Box<[u8]>,
    /// Fewest bytes a matching (non-empty) key has.
    min_len: usize,
    has_star: bool,
}

#[derive(Clone)]
enum Token {
    Byte(u8),
    Any,
    Set(Box<ByteSet>),
    Star,
}

/// A set of bytes, one bit each.
#[derive(Clone, PartialEq, Eq)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }
}

impl Token {
    fn matches(&self, b: u8) -> bool {
        match self {
            Token::Byte(x) => *x == b,
            Token::Any => true,
            Token::Set(set) => set.contains(b),
            Token::Star => false, // handled by `wildcard` before it asks
        }
    }
}

impl Glob {
    /// Compiles `pattern`, refusing what is surely a mistake: an unclosed `[`, an
    /// empty `[]`, a trailing lone `\`.
    pub fn new(pattern: &[u8]) -> Result<Glob, GlobError> {
        Self::compile(pattern, true)
    }

    /// Compiles any pattern, with exactly the meaning Redis gives it.
    pub fn redis(pattern: &[u8]) -> Glob {
        Self::compile(pattern, false).expect("lenient compilation never fails")
    }

    fn compile(pattern: &[u8], strict: bool) -> Result<Glob, GlobError> {
        let mut tokens = Vec::new();
        let mut at = 0;
        while at < pattern.len() {
            let (token, next) = match pattern[at] {
                b'*' => (Token::Star, at + 1),
                b'?' => (Token::Any, at + 1),
                b'[' => {
                    let shape = class(pattern, at + 1, 0, false);
                    if strict && !shape.closed {
                        let dash_bracket = pattern[at..].windows(2).any(|w| w == b"-]");
                        return Err(GlobError::UnclosedClass { at, dash_bracket });
                    }
                    if strict && pattern.get(at + 1) == Some(&b']') {
                        return Err(GlobError::EmptyClass { at });
                    }
                    let mut set = ByteSet([0; 4]);
                    for b in 0..=255u8 {
                        if class(pattern, at + 1, b, false).hit {
                            set.0[usize::from(b >> 6)] |= 1 << (b & 63);
                        }
                    }
                    (Token::Set(Box::new(set)), shape.end)
                }
                b'\\' if at + 1 < pattern.len() => (Token::Byte(pattern[at + 1]), at + 2),
                b'\\' if strict => return Err(GlobError::TrailingBackslash),
                b => (Token::Byte(b), at + 1),
            };
            if !(matches!(token, Token::Star) && matches!(tokens.last(), Some(Token::Star))) {
                tokens.push(token);
            }
            at = next;
        }
        let prefix: Box<[u8]> = tokens
            .iter()
            .map_while(|t| match t {
                Token::Byte(b) => Some(*b),
                _ => None,
            })
            .collect();
        let has_star = tokens.iter().any(|t| matches!(t, Token::Star));
        let mut suffix: Vec<u8> = Vec::new();
        if prefix.len() < tokens.len() {
            for t in tokens.iter().rev() {
                let Token::Byte(b) = t else { break };
                suffix.insert(0, *b);
            }
        }
        Ok(Glob {
            pattern: pattern.into(),
            prefix_tokens: prefix.len(),
            prefix,
            suffix: suffix.into(),
            min_len: tokens.iter().filter(|t| !matches!(t, Token::Star)).count(),
            has_star,
            tokens: tokens.into(),
        })
    }

    /// Whether `key` matches, as `KEYS pattern` would list it.
    pub fn matches(&self, key: &[u8]) -> bool {
        if key.is_empty() {
            return self.pattern.is_empty() || *self.pattern == *b"*";
        }
        if key.len() < self.min_len
            || (!self.has_star && key.len() != self.min_len)
            || !starts_with(key, &self.prefix)
            || !same(&key[key.len() - self.suffix.len()..], &self.suffix)
        {
            return false;
        }
        // `min_len` counts prefix and suffix, so the two cannot overlap in `key`.
        let tokens = &self.tokens[self.prefix_tokens..self.tokens.len() - self.suffix.len()];
        wildcard(
            tokens,
            &key[self.prefix.len()..key.len() - self.suffix.len()],
        )
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &[u8] {
        &self.pattern
    }

    /// The bytes every matching key starts with, escapes resolved: empty when the
    /// pattern starts with `*`, `?` or `[`.
    pub fn literal_prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The bytes every matching key ends with: those after the last wildcard (empty
    /// for a literal pattern, which is all prefix).
    pub fn literal_suffix(&self) -> &[u8] {
        &self.suffix
    }

    /// True when the pattern has no wildcard: it matches exactly `literal_prefix()`.
    pub fn is_literal(&self) -> bool {
        self.prefix_tokens == self.tokens.len()
    }

    /// True when the pattern is a literal prefix followed by `*` (`session:*`), so it
    /// matches exactly the keys starting with `literal_prefix()`. `*` alone counts;
    /// `**` does not, as Redis does not match it against the empty key.
    pub fn is_prefix(&self) -> bool {
        self.prefix_tokens + 1 == self.tokens.len()
            && matches!(self.tokens.last(), Some(Token::Star))
            && (!self.prefix.is_empty() || *self.pattern == *b"*")
    }
}

impl std::fmt::Debug for Glob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Glob({:?})", String::from_utf8_lossy(&self.pattern))
    }
}

/// `key.starts_with(prefix)`, see [`crate::protocol::same`].
#[inline]
pub(super) fn starts_with(key: &[u8], prefix: &[u8]) -> bool {
    key.len() >= prefix.len() && same(&key[..prefix.len()], prefix)
}

/// Full match of `tokens` against `s`, where `*` may match the empty string.
fn wildcard(tokens: &[Token], s: &[u8]) -> bool {
    let (mut t, mut i) = (0, 0);
    let mut resume: Option<(usize, usize)> = None;
    loop {
        match tokens.get(t) {
            Some(Token::Star) => {
                t += 1;
                if t == tokens.len() {
                    return true;
                }
                resume = Some((t, i));
                continue;
            }
            Some(token) if i < s.len() && token.matches(s[i]) => {
                t += 1;
                i += 1;
                continue;
            }
            None if i == s.len() => return true,
            _ => {}
        }
        match resume {
            Some((rt, ri)) if ri < s.len() => {
                resume = Some((rt, ri + 1));
                t = rt;
                i = ri + 1;
            }
            _ => return false,
        }
    }
}
