//! A small backtracking regular-expression matcher for HTTPRoute `RegularExpression` header
//! matches (the crate has no regex dependency of its own).
//!
//! It understands the subset of RE2 syntax that route matches use: literals and escapes,
//! `.`, `^`, `$`, classes (`[a-z]`, `[^;]`, `\d \w \s` and their negations), groups
//! (`( )`, `(?: )`), alternation `|`, and the quantifiers `* + ? {n} {n,} {n,m}` (lazy forms
//! accepted: they do not change whether a value matches). A match may start anywhere in the
//! value unless anchored, as with Rust's `Regex::is_match`, which Linkerd's proxy uses.
//! Anything else (backreferences, look-around, flags, Unicode classes) is refused with a
//! [`RegexError`] naming the pattern.

use thiserror::Error;

/// A pattern this matcher cannot compile.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("regular expression {pattern:?} is not supported by the mesh simulator: {problem}")]
pub struct RegexError {
    pub pattern: String,
    pub problem: String,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Regex {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    Char(char),
    Any,
    Class(Class),
    Start,
    End,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

#[derive(Debug, Clone)]
struct Class {
    negated: bool,
    items: Vec<ClassItem>,
}

#[derive(Debug, Clone)]
enum ClassItem {
    Range(char, char),
    Digit(bool),
    Word(bool),
    Space(bool),
}

impl ClassItem {
    fn matches(&self, c: char) -> bool {
        match *self {
            ClassItem::Range(lo, hi) => lo <= c && c <= hi,
            ClassItem::Digit(neg) => c.is_ascii_digit() != neg,
            ClassItem::Word(neg) => (c.is_ascii_alphanumeric() || c == '_') != neg,
            ClassItem::Space(neg) => c.is_whitespace() != neg,
        }
    }
}

impl Class {
    fn matches(&self, c: char) -> bool {
        self.items.iter().any(|i| i.matches(c)) != self.negated
    }
}

struct Parser<'a> {
    pattern: &'a str,
    chars: Vec<char>,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, problem: impl Into<String>) -> RegexError {
        RegexError {
            pattern: self.pattern.to_string(),
            problem: problem.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn alternation(&mut self) -> Result<Node, RegexError> {
        let mut branches = vec![self.concat()?];
        while self.eat('|') {
            branches.push(self.concat()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().unwrap_or(Node::Concat(Vec::new()))
        } else {
            Node::Alt(branches)
        })
    }

    fn concat(&mut self) -> Result<Node, RegexError> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Ok(Node::Concat(items))
    }

    fn atom(&mut self) -> Result<Node, RegexError> {
        let Some(c) = self.peek() else {
            return Err(self.err("unexpected end"));
        };
        self.pos += 1;
        Ok(match c {
            '.' => Node::Any,
            '^' => Node::Start,
            '$' => Node::End,
            '(' => {
                if self.eat('?') && !(self.eat(':')) {
                    return Err(self.err("only (?:...) groups are supported"));
                }
                let inner = self.alternation()?;
                if !self.eat(')') {
                    return Err(self.err("missing )"));
                }
                inner
            }
            '[' => Node::Class(self.class()?),
            '\\' => match self.escape()? {
                Escaped::Char(c) => Node::Char(c),
                Escaped::Item(item) => Node::Class(Class {
                    negated: false,
                    items: vec![item],
                }),
            },
            '*' | '+' | '?' | '{' => {
                return Err(self.err(format!("nothing to repeat before {c:?}")));
            }
            ')' => return Err(self.err("unmatched )")),
            c => Node::Char(c),
        })
    }

    fn escape(&mut self) -> Result<Escaped, RegexError> {
        let Some(c) = self.peek() else {
            return Err(self.err("trailing backslash"));
        };
        self.pos += 1;
        Ok(match c {
            'd' => Escaped::Item(ClassItem::Digit(false)),
            'D' => Escaped::Item(ClassItem::Digit(true)),
            'w' => Escaped::Item(ClassItem::Word(false)),
            'W' => Escaped::Item(ClassItem::Word(true)),
            's' => Escaped::Item(ClassItem::Space(false)),
            'S' => Escaped::Item(ClassItem::Space(true)),
            'n' => Escaped::Char('\n'),
            't' => Escaped::Char('\t'),
            c if c.is_ascii_alphanumeric() => {
                return Err(self.err(format!("escape \\{c} is not supported")));
            }
            c => Escaped::Char(c),
        })
    }

    fn class(&mut self) -> Result<Class, RegexError> {
        let negated = self.eat('^');
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("missing ]"));
            };
            self.pos += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = if c == '\\' {
                match self.escape()? {
                    Escaped::Char(c) => c,
                    Escaped::Item(item) => {
                        items.push(item);
                        continue;
                    }
                }
            } else {
                c
            };
            let is_range =
                self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|n| *n != ']');
            if is_range {
                self.pos += 1;
                let Some(mut hi) = self.peek() else {
                    return Err(self.err("missing ]"));
                };
                self.pos += 1;
                if hi == '\\' {
                    hi = match self.escape()? {
                        Escaped::Char(c) => c,
                        Escaped::Item(_) => return Err(self.err("a class cannot end a range")),
                    };
                }
                if hi < lo {
                    return Err(self.err(format!("range {lo}-{hi} is backwards")));
                }
                items.push(ClassItem::Range(lo, hi));
            } else {
                items.push(ClassItem::Range(lo, lo));
            }
        }
        Ok(Class { negated, items })
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, RegexError> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                self.pos += 1;
                let bounds = self.bounds()?;
                self.eat('?');
                return Ok(Node::Repeat {
                    node: Box::new(atom),
                    min: bounds.0,
                    max: bounds.1,
                });
            }
            _ => return Ok(atom),
        };
        self.pos += 1;
        self.eat('?');
        Ok(Node::Repeat {
            node: Box::new(atom),
            min,
            max,
        })
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.chars[start..self.pos]
            .iter()
            .collect::<String>()
            .parse()
            .ok()
    }

    fn bounds(&mut self) -> Result<(u32, Option<u32>), RegexError> {
        let min = self
            .number()
            .ok_or_else(|| self.err("bad {n,m} repetition"))?;
        let max = if self.eat(',') {
            if self.peek() == Some('}') {
                None
            } else {
                Some(
                    self.number()
                        .ok_or_else(|| self.err("bad {n,m} repetition"))?,
                )
            }
        } else {
            Some(min)
        };
        if !self.eat('}') || max.is_some_and(|m| m < min) {
            return Err(self.err("bad {n,m} repetition"));
        }
        Ok((min, max))
    }
}

enum Escaped {
    Char(char),
    Item(ClassItem),
}

impl Regex {
    /// Compiles `pattern`, or says which part is not supported.
    pub fn new(pattern: &str) -> Result<Regex, RegexError> {
        let mut p = Parser {
            pattern,
            chars: pattern.chars().collect(),
            pos: 0,
        };
        let root = p.alternation()?;
        if p.pos != p.chars.len() {
            return Err(p.err("unmatched )"));
        }
        Ok(Regex { root })
    }

    /// Whether the pattern matches somewhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        let input: Vec<char> = text.chars().collect();
        (0..=input.len()).any(|start| matches(&self.root, &input, start, &mut |_| true))
    }
}

/// Continuation-passing backtracking: does `node` match at `pos` so that `k` accepts the end?
fn matches(node: &Node, input: &[char], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match node {
        Node::Char(c) => input.get(pos) == Some(c) && k(pos + 1),
        Node::Any => input.get(pos).is_some_and(|c| *c != '\n') && k(pos + 1),
        Node::Class(class) => input.get(pos).is_some_and(|c| class.matches(*c)) && k(pos + 1),
        Node::Start => pos == 0 && k(pos),
        Node::End => pos == input.len() && k(pos),
        Node::Concat(items) => sequence(items, input, pos, k),
        Node::Alt(branches) => branches.iter().any(|b| matches(b, input, pos, k)),
        Node::Repeat { node, min, max } => repeat(node, *min, *max, 0, input, pos, k),
    }
}

fn sequence(items: &[Node], input: &[char], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match items.split_first() {
        None => k(pos),
        Some((first, rest)) => matches(first, input, pos, &mut |next| {
            sequence(rest, input, next, k)
        }),
    }
}

fn repeat(
    node: &Node,
    min: u32,
    max: Option<u32>,
    done: u32,
    input: &[char],
    pos: usize,
    k: &mut dyn FnMut(usize) -> bool,
) -> bool {
    let may_stop = done >= min;
    let may_go = max.is_none_or(|m| done < m);
    // Greedy: one more iteration first; an iteration that consumes nothing ends the loop.
    if may_go
        && matches(node, input, pos, &mut |next| {
            next > pos && repeat(node, min, max, done + 1, input, next, k)
        })
    {
        return true;
    }
    if may_stop {
        return k(pos);
    }
    // Still short of `min`: empty iterations count toward it.
    may_go
        && matches(node, input, pos, &mut |next| {
            next == pos && repeat(node, min, max, min, input, next, k)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_match(pattern: &str, text: &str) -> bool {
        Regex::new(pattern)
            .expect("pattern compiles")
            .is_match(text)
    }

    #[test]
    fn matches_anywhere_unless_anchored() {
        assert!(is_match("canary", "x-canary-y"));
        assert!(!is_match("^canary$", "x-canary"));
        assert!(is_match("^canary$", "canary"));
    }

    #[test]
    fn matches_a_cookie_among_others_the_way_flagger_writes_it() {
        let re = "^(.*?;)?(canary=always)(;.*)?$";
        assert!(is_match(re, "canary=always"));
        assert!(is_match(re, "session=1;canary=always"));
        assert!(is_match(re, "canary=always;session=1"));
        assert!(!is_match(re, "canary=never"));
        assert!(!is_match(re, "xcanary=alwaysx"));
    }

    #[test]
    fn understands_classes_alternation_and_counted_repetition() {
        assert!(is_match(r"^v[0-9]+\.[0-9]+$", "v1.25"));
        assert!(!is_match(r"^v[0-9]+\.[0-9]+$", "v1x25"));
        assert!(is_match("^(chrome|firefox)$", "firefox"));
        assert!(!is_match("^(chrome|firefox)$", "safari"));
        assert!(is_match(r"^\d{3}-\w{2,}$", "123-ab_c"));
        assert!(!is_match(r"^\d{3}-\w{2,}$", "12-abc"));
        assert!(is_match("^[^;]*$", "no semicolons"));
        assert!(!is_match("^[^;]*$", "a;b"));
        assert!(is_match("^(a*)*b$", "aaab"));
    }

    #[test]
    fn refuses_what_it_does_not_support_with_the_pattern_named() {
        let err = Regex::new(r"(?i)abc").expect_err("flags are refused");
        assert!(err.to_string().contains("(?i)abc"), "{err}");
        assert!(Regex::new(r"\1").is_err());
        assert!(Regex::new("(abc").is_err());
        assert!(Regex::new("abc)").is_err());
        assert!(Regex::new("*a").is_err());
        assert!(Regex::new("[z-a]").is_err());
    }
}
