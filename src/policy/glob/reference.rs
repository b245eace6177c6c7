//! Redis's glob matcher as Redis 7.0 writes it (`util.c`, `stringmatchlen_impl`):
//! the recursive C code transliterated line by line, the reference [`super::Glob`]
//! and [`super::stringmatch`] are checked against (proptests in `tests.rs`, the
//! `glob` fuzz target through `crate::props`). `at` reads the C string, whose
//! terminator is 0; `pi`/`si` are the pointers, lengths are what remains. It is
//! slow and recursive on purpose: it is the specification, not a matcher to use.

/// Redis's `stringmatchlen(pattern, s, nocase)`.
pub fn stringmatchlen(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    rec(pattern, 0, s, 0, nocase, &mut false)
}

fn rec(pat: &[u8], mut pi: usize, s: &[u8], mut si: usize, nocase: bool, skip: &mut bool) -> bool {
    let at = |i: usize| pat.get(i).copied().unwrap_or(0);
    let chr = |b: u8| i32::from(b as i8);
    let lower = |v: i32| if (65..=90).contains(&v) { v + 32 } else { v };
    let same = |a: u8, b: u8| {
        if nocase {
            lower(chr(a)) == lower(chr(b))
        } else {
            a == b
        }
    };
    while pat.len() > pi && s.len() > si {
        match pat[pi] {
            b'*' => {
                while pat.len() > pi && at(pi + 1) == b'*' {
                    pi += 1;
                }
                if pat.len() - pi == 1 {
                    return true;
                }
                while s.len() > si {
                    if rec(pat, pi + 1, s, si, nocase, skip) {
                        return true;
                    }
                    if *skip {
                        return false;
                    }
                    si += 1;
                }
                *skip = true;
                return false;
            }
            b'?' => si += 1,
            b'[' => {
                pi += 1;
                let not = at(pi) == b'^';
                if not {
                    pi += 1;
                }
                let mut matched = false;
                loop {
                    let left = pat.len() - pi;
                    if at(pi) == b'\\' && left >= 2 {
                        pi += 1;
                        matched |= pat[pi] == s[si];
                    } else if at(pi) == b']' {
                        break;
                    } else if left == 0 {
                        pi -= 1;
                        break;
                    } else if left >= 3 && at(pi + 1) == b'-' {
                        let (mut start, mut end, mut c) =
                            (chr(pat[pi]), chr(pat[pi + 2]), chr(s[si]));
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        if nocase {
                            (start, end, c) = (lower(start), lower(end), lower(c));
                        }
                        pi += 2;
                        matched |= c >= start && c <= end;
                    } else {
                        matched |= same(pat[pi], s[si]);
                    }
                    pi += 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                si += 1;
            }
            b => {
                let b = if b == b'\\' && pat.len() - pi >= 2 {
                    pi += 1;
                    pat[pi]
                } else {
                    b
                };
                if !same(b, s[si]) {
                    return false;
                }
                si += 1;
            }
        }
        pi += 1;
        if s.len() == si {
            while at(pi) == b'*' {
                pi += 1;
            }
            break;
        }
    }
    pat.len() == pi && s.len() == si
}
