//! The regular expressions of CRD `pattern`s, matched as Go's `regexp.MatchString` does
//! (an unanchored search; patterns anchor themselves with `^`/`$`).
//!
//! A small backtracking matcher for the subset the bundled CRDs use: literals, `.`, escapes
//! (`\.`, `\-`, `\/`, `\*`, `\xHH`, `\d`, `\w`, `\s`), classes with ranges and negation,
//! groups (`(..)`, `(?:..)`), alternation, `^`, `$` and the quantifiers `*`, `+`, `?`,
//! `{n}`, `{n,}`, `{n,m}` (greedy). Differences from Go's RE2: no flags, no Unicode classes,
//! no lazy quantifiers; a pattern it cannot parse, or a match that exceeds its step budget,
//! is reported as `None` and the field is not checked.

/// A compiled pattern.
pub(super) struct Pattern {
    root: Alt,
}

struct Alt(Vec<Vec<Item>>);

struct Item {
    atom: Atom,
    min: u32,
    max: u32,
}

enum Atom {
    Char(char),
    Any,
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
    Start,
    End,
    Group(Alt),
}

const UNBOUNDED: u32 = u32::MAX;
const STEP_BUDGET: u32 = 200_000;

impl Pattern {
    /// Parses `pattern`; `None` if it uses syntax outside the supported subset.
    pub(super) fn parse(pattern: &str) -> Option<Pattern> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut pos = 0;
        let root = parse_alt(&chars, &mut pos)?;
        (pos == chars.len()).then_some(Pattern { root })
    }

    /// Whether `text` contains a match; `None` when the step budget runs out.
    pub(super) fn is_match(&self, text: &str) -> Option<bool> {
        let s: Vec<char> = text.chars().collect();
        let m = Matcher {
            s: &s,
            steps: std::cell::Cell::new(0),
        };
        for start in 0..=s.len() {
            if m.alt(&self.root, start, &mut |_| true) {
                return Some(true);
            }
            if m.exhausted() {
                return None;
            }
        }
        Some(false)
    }
}

fn parse_alt(c: &[char], pos: &mut usize) -> Option<Alt> {
    let mut branches = vec![Vec::new()];
    while *pos < c.len() {
        match c[*pos] {
            ')' => break,
            '|' => {
                *pos += 1;
                branches.push(Vec::new());
            }
            _ => {
                let atom = parse_atom(c, pos)?;
                let (min, max) = parse_quantifier(c, pos)?;
                branches.last_mut()?.push(Item { atom, min, max });
            }
        }
    }
    Some(Alt(branches))
}

fn parse_atom(c: &[char], pos: &mut usize) -> Option<Atom> {
    let ch = c[*pos];
    *pos += 1;
    Some(match ch {
        '^' => Atom::Start,
        '$' => Atom::End,
        '.' => Atom::Any,
        '(' => {
            if c.get(*pos) == Some(&'?') {
                if c.get(*pos + 1) != Some(&':') {
                    return None;
                }
                *pos += 2;
            }
            let inner = parse_alt(c, pos)?;
            if c.get(*pos) != Some(&')') {
                return None;
            }
            *pos += 1;
            Atom::Group(inner)
        }
        '[' => parse_class(c, pos)?,
        '\\' => match parse_escape(c, pos)? {
            Escaped::Char(x) => Atom::Char(x),
            Escaped::Class(ranges, negated) => Atom::Class { ranges, negated },
        },
        '*' | '+' | '?' | '{' | ')' => return None,
        other => Atom::Char(other),
    })
}

enum Escaped {
    Char(char),
    Class(Vec<(char, char)>, bool),
}

fn parse_escape(c: &[char], pos: &mut usize) -> Option<Escaped> {
    let ch = *c.get(*pos)?;
    *pos += 1;
    let digits = vec![('0', '9')];
    let word = vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
    let space = vec![('\t', '\n'), ('\x0c', '\r'), (' ', ' ')];
    Some(match ch {
        'd' => Escaped::Class(digits, false),
        'D' => Escaped::Class(digits, true),
        'w' => Escaped::Class(word, false),
        'W' => Escaped::Class(word, true),
        's' => Escaped::Class(space, false),
        'S' => Escaped::Class(space, true),
        'n' => Escaped::Char('\n'),
        't' => Escaped::Char('\t'),
        'x' => {
            let hex: String = c.get(*pos..*pos + 2)?.iter().collect();
            *pos += 2;
            Escaped::Char(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?)
        }
        x if x.is_ascii_alphanumeric() => return None,
        x => Escaped::Char(x),
    })
}

fn parse_class(c: &[char], pos: &mut usize) -> Option<Atom> {
    let negated = c.get(*pos) == Some(&'^');
    if negated {
        *pos += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let ch = *c.get(*pos)?;
        if ch == ']' && !first {
            *pos += 1;
            break;
        }
        first = false;
        *pos += 1;
        let lo = if ch == '\\' {
            match parse_escape(c, pos)? {
                Escaped::Char(x) => x,
                Escaped::Class(rs, false) => {
                    ranges.extend(rs);
                    continue;
                }
                Escaped::Class(_, true) => return None,
            }
        } else {
            ch
        };
        if c.get(*pos) == Some(&'-') && c.get(*pos + 1).is_some_and(|n| *n != ']') {
            *pos += 1;
            let mut hi = c[*pos];
            *pos += 1;
            if hi == '\\' {
                match parse_escape(c, pos)? {
                    Escaped::Char(x) => hi = x,
                    Escaped::Class(..) => return None,
                }
            }
            ranges.push((lo, hi));
        } else {
            ranges.push((lo, lo));
        }
    }
    Some(Atom::Class { ranges, negated })
}

fn parse_quantifier(c: &[char], pos: &mut usize) -> Option<(u32, u32)> {
    let q = match c.get(*pos) {
        Some('*') => (0, UNBOUNDED),
        Some('+') => (1, UNBOUNDED),
        Some('?') => (0, 1),
        Some('{') => {
            let close = c[*pos..].iter().position(|x| *x == '}')? + *pos;
            let body: String = c[*pos + 1..close].iter().collect();
            let bounds = match body.split_once(',') {
                None => {
                    let n = body.parse().ok()?;
                    (n, n)
                }
                Some((lo, "")) => (lo.parse().ok()?, UNBOUNDED),
                Some((lo, hi)) => (lo.parse().ok()?, hi.parse().ok()?),
            };
            *pos = close;
            bounds
        }
        _ => return Some((1, 1)),
    };
    *pos += 1;
    if matches!(c.get(*pos), Some('?' | '+')) {
        // Lazy and possessive quantifiers are outside the subset.
        return None;
    }
    Some(q)
}

struct Matcher<'a> {
    s: &'a [char],
    steps: std::cell::Cell<u32>,
}

impl Matcher<'_> {
    fn exhausted(&self) -> bool {
        self.steps.get() > STEP_BUDGET
    }

    fn alt(&self, alt: &Alt, pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        alt.0.iter().any(|seq| self.seq(seq, pos, k))
    }

    fn seq(&self, items: &[Item], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        match items.split_first() {
            None => k(pos),
            Some((item, rest)) => self.repeat(item, 0, rest, pos, k),
        }
    }

    fn repeat(
        &self,
        item: &Item,
        count: u32,
        rest: &[Item],
        pos: usize,
        k: &mut dyn FnMut(usize) -> bool,
    ) -> bool {
        self.steps.set(self.steps.get() + 1);
        if self.exhausted() {
            return false;
        }
        // Greedy: one more repetition first. An empty repetition beyond the minimum would
        // loop forever, so it is not taken.
        if count < item.max
            && self.atom(&item.atom, pos, &mut |next| {
                (next != pos || count < item.min) && self.repeat(item, count + 1, rest, next, k)
            })
        {
            return true;
        }
        count >= item.min && self.seq(rest, pos, k)
    }

    fn atom(&self, atom: &Atom, pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        let ch = self.s.get(pos).copied();
        match atom {
            Atom::Char(c) => ch == Some(*c) && k(pos + 1),
            Atom::Any => ch.is_some_and(|c| c != '\n') && k(pos + 1),
            Atom::Class { ranges, negated } => {
                ch.is_some_and(|c| {
                    ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
                }) && k(pos + 1)
            }
            Atom::Start => pos == 0 && k(pos),
            Atom::End => pos == self.s.len() && k(pos),
            Atom::Group(alt) => self.alt(alt, pos, k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        Pattern::parse(pattern)
            .unwrap_or_else(|| panic!("{pattern} should parse"))
            .is_match(text)
            .unwrap()
    }

    const HOSTNAME: &str =
        r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
    const GROUP: &str = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
    const HEADER: &str = r"^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$";
    const DURATION: &str = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$";
    const ORIGIN: &str =
        r"(^\*$)|(^(http(s)?):\/\/(((\*\.)?([a-zA-Z0-9\-]+\.)*[a-zA-Z0-9-]+|\*)(:([0-9]{1,5}))?)$)";

    #[test]
    fn matches_gateway_api_hostnames() {
        assert!(matches(HOSTNAME, "shop.example.com"));
        assert!(matches(HOSTNAME, "*.example.com"));
        assert!(!matches(HOSTNAME, "Shop.example.com"));
        assert!(!matches(HOSTNAME, "shop..example.com"));
        assert!(!matches(HOSTNAME, "-shop.example.com"));
    }

    #[test]
    fn matches_the_empty_core_group_and_dotted_groups() {
        assert!(matches(GROUP, ""));
        assert!(matches(GROUP, "gateway.networking.k8s.io"));
        assert!(!matches(GROUP, "Gateway"));
    }

    #[test]
    fn matches_header_names_durations_and_origins() {
        assert!(matches(HEADER, "X-Canary"));
        assert!(matches(HEADER, "a`b"));
        assert!(!matches(HEADER, "bad header"));
        assert!(matches(DURATION, "1h30m"));
        assert!(matches(DURATION, "500ms"));
        assert!(!matches(DURATION, "1.5s"));
        assert!(!matches(DURATION, "1s1s1s1s1s"));
        assert!(matches(ORIGIN, "*"));
        assert!(matches(ORIGIN, "https://*.example.com:8443"));
        assert!(!matches(ORIGIN, "ftp://example.com"));
    }

    #[test]
    fn searches_unanchored_like_go() {
        assert!(matches("b+", "abbbc"));
        assert!(!matches("^b+", "abbbc"));
        assert!(matches("(?:ab|cd){2}", "xxcdabyy"));
    }

    #[test]
    fn declines_syntax_outside_the_subset() {
        assert!(Pattern::parse("a+?").is_none());
        assert!(Pattern::parse(r"\p{L}").is_none());
        assert!(Pattern::parse("(a").is_none());
        assert!(Pattern::parse("+").is_none());
    }

    #[test]
    fn gives_up_rather_than_hanging_on_pathological_input() {
        let p = Pattern::parse("^(a*)*b$").unwrap();
        let text = "a".repeat(40);
        assert_eq!(p.is_match(&text), None);
    }
}
