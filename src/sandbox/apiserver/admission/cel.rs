//! A small CEL evaluator for webhook `matchConditions`, over the variables kube-apiserver
//! binds: `object`, `oldObject` and `request` (the AdmissionRequest without its objects).
//!
//! The subset: literals (null, bool, int, double, string, list, map), field selection and
//! indexing, `has(x.f)`, `! - * / % + - < <= > >= == != in && || ?:`, `size`,
//! `startsWith`, `endsWith`, `contains`, and the macros `all`, `exists`, `exists_one`, `map`
//! and `filter`. `&&` and `||` absorb errors the CEL way (`false && error` is `false`).
//!
//! Differences from kube-apiserver (cel-go): anything outside the subset (`matches`, string
//! formatting, timestamps, `authorizer`, type conversions, optional values) is an evaluation
//! error saying the sandbox does not support it, where kube-apiserver would evaluate it; there
//! are no cost limits; ints and doubles compare by value.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

/// Why an expression could not be evaluated to a bool.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CelError {
    #[error("syntax error at column {at}: {detail}")]
    Syntax { at: usize, detail: String },
    #[error("{0}")]
    Eval(String),
    #[error(
        "the sandbox's CEL subset does not support {0}; simplify the matchCondition or test against a real cluster"
    )]
    Unsupported(String),
}

fn eval_err<T>(msg: impl Into<String>) -> Result<T, CelError> {
    Err(CelError::Eval(msg.into()))
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Int(i64),
    Double(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
}

const OPS: [&str; 24] = [
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "?", ":", ".", ",",
    "(", ")", "[", "]", "{", "}",
];

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, CelError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let syntax = |at: usize, detail: &str| CelError::Syntax {
        at,
        detail: detail.to_string(),
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let tok = if text.contains('.') {
                Tok::Double(text.parse().map_err(|_| syntax(start, "bad number"))?)
            } else {
                Tok::Int(text.parse().map_err(|_| syntax(start, "bad number"))?)
            };
            if i < chars.len() && (chars[i] == 'u' || chars[i] == 'U') {
                i += 1; // unsigned literals are read as ints
            }
            out.push((start, tok));
        } else if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((start, Tok::Ident(chars[start..i].iter().collect())));
        } else if c == '"' || c == '\'' {
            i += 1;
            let mut s = String::new();
            loop {
                let Some(&ch) = chars.get(i) else {
                    return Err(syntax(start, "unterminated string"));
                };
                i += 1;
                match ch {
                    '\\' => {
                        let esc = chars
                            .get(i)
                            .copied()
                            .ok_or_else(|| syntax(start, "unterminated string"))?;
                        i += 1;
                        s.push(match esc {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                    }
                    ch if ch == c => break,
                    ch => s.push(ch),
                }
            }
            out.push((start, Tok::Str(s)));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) else {
                return Err(syntax(start, &format!("unexpected character {c:?}")));
            };
            i += op.chars().count();
            out.push((start, Tok::Op(op)));
        }
    }
    Ok(out)
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Lit(Value),
    List(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    Ident(String),
    Select(Box<Expr>, String),
    Has(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    /// `receiver.name(args)` or `name(args)`.
    Call(Option<Box<Expr>>, String, Vec<Expr>),
    /// `range.macro(var, body)`.
    Macro(String, Box<Expr>, String, Box<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(&'static str, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map(|(a, _)| *a).unwrap_or(self.len)
    }

    fn err<T>(&self, detail: &str) -> Result<T, CelError> {
        Err(CelError::Syntax {
            at: self.at(),
            detail: detail.to_string(),
        })
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: &str) -> Result<(), CelError> {
        if self.eat(op) {
            Ok(())
        } else {
            self.err(&format!("expected {op:?}"))
        }
    }

    fn expr(&mut self) -> Result<Expr, CelError> {
        let cond = self.binary(0)?;
        if self.eat("?") {
            let a = self.expr()?;
            self.expect(":")?;
            let b = self.expr()?;
            return Ok(Expr::Cond(Box::new(cond), Box::new(a), Box::new(b)));
        }
        Ok(cond)
    }

    fn binary(&mut self, level: usize) -> Result<Expr, CelError> {
        const LEVELS: [&[&str]; 5] = [
            &["||"],
            &["&&"],
            &["==", "!=", "<", "<=", ">", ">=", "in"],
            &["+", "-"],
            &["*", "/", "%"],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op(op)) if LEVELS[level].contains(op) => *op,
                Some(Tok::Ident(id)) if id == "in" && level == 2 => "in",
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.binary(level + 1)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr, CelError> {
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat("-") {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.member()
    }

    fn args(&mut self, close: &str) -> Result<Vec<Expr>, CelError> {
        let mut args = Vec::new();
        if self.eat(close) {
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            if self.eat(close) {
                return Ok(args);
            }
            self.expect(",")?;
            if self.eat(close) {
                return Ok(args);
            }
        }
    }

    fn member(&mut self) -> Result<Expr, CelError> {
        let mut e = self.primary()?;
        loop {
            if self.eat(".") {
                let Some(Tok::Ident(name)) = self.peek().cloned() else {
                    return self.err("expected a field name");
                };
                self.pos += 1;
                if self.eat("(") {
                    let args = self.args(")")?;
                    e = match (name.as_str(), args.as_slice()) {
                        (
                            "all" | "exists" | "exists_one" | "map" | "filter",
                            [Expr::Ident(v), body],
                        ) => Expr::Macro(name, Box::new(e), v.clone(), Box::new(body.clone())),
                        _ => Expr::Call(Some(Box::new(e)), name, args),
                    };
                } else {
                    e = Expr::Select(Box::new(e), name);
                }
            } else if self.eat("[") {
                let index = self.expr()?;
                self.expect("]")?;
                e = Expr::Index(Box::new(e), Box::new(index));
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, CelError> {
        let Some(tok) = self.peek().cloned() else {
            return self.err("unexpected end of expression");
        };
        self.pos += 1;
        Ok(match tok {
            Tok::Int(i) => Expr::Lit(Value::from(i)),
            Tok::Double(d) => Expr::Lit(
                Number::from_f64(d)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
            ),
            Tok::Str(s) => Expr::Lit(Value::String(s)),
            Tok::Ident(id) => match id.as_str() {
                "true" => Expr::Lit(Value::Bool(true)),
                "false" => Expr::Lit(Value::Bool(false)),
                "null" => Expr::Lit(Value::Null),
                _ if self.eat("(") => {
                    let args = self.args(")")?;
                    if id == "has" {
                        return match args.as_slice() {
                            [Expr::Select(target, field)] => {
                                Ok(Expr::Has(target.clone(), field.clone()))
                            }
                            _ => self.err("has() needs a field selection, as in has(a.b)"),
                        };
                    }
                    Expr::Call(None, id, args)
                }
                _ => Expr::Ident(id),
            },
            Tok::Op("(") => {
                let e = self.expr()?;
                self.expect(")")?;
                e
            }
            Tok::Op("[") => Expr::List(self.args("]")?),
            Tok::Op("{") => {
                let mut entries = Vec::new();
                if !self.eat("}") {
                    loop {
                        let k = self.expr()?;
                        self.expect(":")?;
                        let v = self.expr()?;
                        entries.push((k, v));
                        if self.eat("}") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                Expr::Map(entries)
            }
            _ => {
                self.pos -= 1;
                return self.err("unexpected token");
            }
        })
    }
}

fn parse(src: &str) -> Result<Expr, CelError> {
    let mut p = Parser {
        toks: lex(src)?,
        pos: 0,
        len: src.chars().count(),
    };
    let e = p.expr()?;
    if p.pos != p.toks.len() {
        return p.err("unexpected token after the expression");
    }
    Ok(e)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null_type",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "double",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

fn no_overload<T>(op: &str, args: &[&Value]) -> Result<T, CelError> {
    let types: Vec<_> = args.iter().map(|v| type_name(v)).collect();
    eval_err(format!("no such overload: {op}({})", types.join(", ")))
}

/// CEL equality: numbers by value, lists and maps element by element.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

fn as_bool(v: Value, what: &str) -> Result<bool, CelError> {
    match v {
        Value::Bool(b) => Ok(b),
        other => no_overload(what, &[&other]),
    }
}

fn num(v: f64, int: bool) -> Value {
    if int {
        Value::from(v as i64)
    } else {
        Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

type Scope = Vec<(String, Value)>;

fn lookup(scope: &Scope, name: &str) -> Result<Value, CelError> {
    match scope.iter().rev().find(|(n, _)| n == name) {
        Some((_, v)) => Ok(v.clone()),
        None if name == "authorizer" || name == "params" => {
            Err(CelError::Unsupported(format!("the variable {name:?}")))
        }
        None => eval_err(format!("undeclared reference to '{name}'")),
    }
}

fn eval(e: &Expr, scope: &mut Scope) -> Result<Value, CelError> {
    match e {
        Expr::Lit(v) => Ok(v.clone()),
        Expr::List(items) => items
            .iter()
            .map(|i| eval(i, scope))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Expr::Map(entries) => {
            let mut m = Map::new();
            for (k, v) in entries {
                let Value::String(k) = eval(k, scope)? else {
                    return Err(CelError::Unsupported("map keys other than strings".into()));
                };
                m.insert(k, eval(v, scope)?);
            }
            Ok(Value::Object(m))
        }
        Expr::Ident(name) => lookup(scope, name),
        Expr::Select(target, field) => match eval(target, scope)? {
            Value::Object(m) => match m.get(field) {
                Some(v) => Ok(v.clone()),
                None => eval_err(format!("no such key: {field}")),
            },
            other => no_overload(&format!("_.{field}"), &[&other]),
        },
        Expr::Has(target, field) => match eval(target, scope)? {
            Value::Object(m) => Ok(Value::Bool(m.contains_key(field))),
            other => no_overload("has", &[&other]),
        },
        Expr::Index(target, index) => {
            let (t, i) = (eval(target, scope)?, eval(index, scope)?);
            match (&t, &i) {
                (Value::Object(m), Value::String(k)) => match m.get(k) {
                    Some(v) => Ok(v.clone()),
                    None => eval_err(format!("no such key: {k}")),
                },
                (Value::Array(items), Value::Number(n)) => match n
                    .as_i64()
                    .and_then(|n| usize::try_from(n).ok())
                    .and_then(|n| items.get(n))
                {
                    Some(v) => Ok(v.clone()),
                    None => eval_err(format!("index out of bounds: {n}")),
                },
                _ => no_overload("_[_]", &[&t, &i]),
            }
        }
        Expr::Not(inner) => Ok(Value::Bool(!as_bool(eval(inner, scope)?, "!_")?)),
        Expr::Neg(inner) => match eval(inner, scope)? {
            Value::Number(n) => Ok(num(-n.as_f64().unwrap_or(0.0), !n.is_f64())),
            other => no_overload("-_", &[&other]),
        },
        Expr::Cond(c, a, b) => {
            if as_bool(eval(c, scope)?, "_?_:_")? {
                eval(a, scope)
            } else {
                eval(b, scope)
            }
        }
        Expr::Binary(op @ ("&&" | "||"), l, r) => {
            let decisive = *op == "||";
            let left = eval(l, scope).and_then(|v| as_bool(v, op));
            if left == Ok(decisive) {
                return Ok(Value::Bool(decisive));
            }
            let right = eval(r, scope).and_then(|v| as_bool(v, op));
            if right == Ok(decisive) {
                return Ok(Value::Bool(decisive));
            }
            left?;
            right?;
            Ok(Value::Bool(!decisive))
        }
        Expr::Binary(op, l, r) => {
            let (a, b) = (eval(l, scope)?, eval(r, scope)?);
            binary(op, &a, &b)
        }
        Expr::Call(receiver, name, args) => {
            let recv = receiver.as_ref().map(|r| eval(r, scope)).transpose()?;
            let args = args
                .iter()
                .map(|a| eval(a, scope))
                .collect::<Result<Vec<_>, _>>()?;
            call(name, recv, &args)
        }
        Expr::Macro(name, range, var, body) => {
            let items: Vec<Value> = match eval(range, scope)? {
                Value::Array(items) => items,
                Value::Object(m) => m.keys().cloned().map(Value::String).collect(),
                other => return no_overload(name, &[&other]),
            };
            let mut results = Vec::with_capacity(items.len());
            for item in &items {
                scope.push((var.clone(), item.clone()));
                let r = eval(body, scope);
                scope.pop();
                results.push(r);
            }
            let bools = || -> Result<Vec<bool>, CelError> {
                results
                    .iter()
                    .cloned()
                    .map(|r| r.and_then(|v| as_bool(v, name)))
                    .collect()
            };
            match name.as_str() {
                // Like && and ||, a decisive element wins over an error.
                "all" => {
                    if results.iter().any(|r| r == &Ok(Value::Bool(false))) {
                        return Ok(Value::Bool(false));
                    }
                    bools().map(|_| Value::Bool(true))
                }
                "exists" => {
                    if results.iter().any(|r| r == &Ok(Value::Bool(true))) {
                        return Ok(Value::Bool(true));
                    }
                    bools().map(|_| Value::Bool(false))
                }
                "exists_one" => Ok(Value::Bool(
                    bools()?.into_iter().filter(|b| *b).count() == 1,
                )),
                "map" => results
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array),
                _ => {
                    let keep = bools()?;
                    Ok(Value::Array(
                        items
                            .into_iter()
                            .zip(keep)
                            .filter_map(|(v, k)| k.then_some(v))
                            .collect(),
                    ))
                }
            }
        }
    }
}

fn binary(op: &str, a: &Value, b: &Value) -> Result<Value, CelError> {
    use Value::{Array, Number as N, Object, String as S};
    match op {
        "==" => return Ok(Value::Bool(equal(a, b))),
        "!=" => return Ok(Value::Bool(!equal(a, b))),
        "in" => {
            return match b {
                Array(items) => Ok(Value::Bool(items.iter().any(|i| equal(i, a)))),
                Object(m) => match a {
                    S(k) => Ok(Value::Bool(m.contains_key(k))),
                    _ => no_overload("@in", &[a, b]),
                },
                _ => no_overload("@in", &[a, b]),
            };
        }
        _ => {}
    }
    match (a, b) {
        (N(x), N(y)) => {
            let int = !x.is_f64() && !y.is_f64();
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            match op {
                "<" => Ok(Value::Bool(x < y)),
                "<=" => Ok(Value::Bool(x <= y)),
                ">" => Ok(Value::Bool(x > y)),
                ">=" => Ok(Value::Bool(x >= y)),
                "+" => Ok(num(x + y, int)),
                "-" => Ok(num(x - y, int)),
                "*" => Ok(num(x * y, int)),
                "/" | "%" if int && y == 0.0 => eval_err(if op == "/" {
                    "division by zero"
                } else {
                    "modulus by zero"
                }),
                "/" => Ok(num(x / y, int)),
                "%" if int => Ok(num(x % y, true)),
                _ => no_overload(op, &[a, b]),
            }
        }
        (S(x), S(y)) => match op {
            "<" => Ok(Value::Bool(x < y)),
            "<=" => Ok(Value::Bool(x <= y)),
            ">" => Ok(Value::Bool(x > y)),
            ">=" => Ok(Value::Bool(x >= y)),
            "+" => Ok(Value::String(format!("{x}{y}"))),
            _ => no_overload(op, &[a, b]),
        },
        (Array(x), Array(y)) if op == "+" => Ok(Array(x.iter().chain(y).cloned().collect())),
        _ => no_overload(op, &[a, b]),
    }
}

fn call(name: &str, recv: Option<Value>, args: &[Value]) -> Result<Value, CelError> {
    match (name, recv.as_ref(), args) {
        ("size", None, [v]) | ("size", Some(v), []) => match v {
            Value::String(s) => Ok(Value::from(s.chars().count())),
            Value::Array(a) => Ok(Value::from(a.len())),
            Value::Object(m) => Ok(Value::from(m.len())),
            other => no_overload("size", &[other]),
        },
        ("startsWith" | "endsWith" | "contains", Some(Value::String(s)), [Value::String(x)]) => {
            Ok(Value::Bool(match name {
                "startsWith" => s.starts_with(x.as_str()),
                "endsWith" => s.ends_with(x.as_str()),
                _ => s.contains(x.as_str()),
            }))
        }
        ("startsWith" | "endsWith" | "contains", Some(r), [x]) => no_overload(name, &[r, x]),
        _ => Err(CelError::Unsupported(format!("the function {name}()"))),
    }
}

/// Evaluates `expression` with `variables` bound; the result must be a bool.
pub fn evaluate(expression: &str, variables: &BTreeMap<&str, Value>) -> Result<bool, CelError> {
    let expr = parse(expression)?;
    let mut scope: Scope = variables
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    match eval(&expr, &mut scope)? {
        Value::Bool(b) => Ok(b),
        other => eval_err(format!(
            "expression must evaluate to a bool, got {}",
            type_name(&other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> BTreeMap<&'static str, Value> {
        BTreeMap::from([
            (
                "object",
                json!({
                    "metadata": { "name": "podinfo", "labels": { "app": "podinfo" } },
                    "spec": { "replicas": 2, "template": { "spec": { "containers": [
                        { "name": "app", "image": "ghcr.io/stefanprodan/podinfo:6.0.1" },
                        { "name": "proxy", "image": "cr.l5d.io/linkerd/proxy:stable" }
                    ] } } }
                }),
            ),
            ("oldObject", Value::Null),
            (
                "request",
                json!({
                    "operation": "UPDATE",
                    "userInfo": { "username": "system:serviceaccount:sluice-system:sluice",
                                  "groups": ["system:serviceaccounts"] },
                    "dryRun": false,
                }),
            ),
        ])
    }

    fn eval_str(e: &str) -> Result<bool, CelError> {
        evaluate(e, &vars())
    }

    #[test]
    fn evaluates_the_conditions_webhooks_commonly_use() {
        let yes = [
            "request.userInfo.username != 'system:serviceaccount:kube-system:x'",
            "request.userInfo.username.startsWith('system:serviceaccount:sluice-system:')",
            "'system:serviceaccounts' in request.userInfo.groups",
            "has(object.metadata.labels) && 'app' in object.metadata.labels",
            "object.metadata.labels['app'] == 'podinfo'",
            "!has(object.metadata.annotations)",
            "request.operation in ['CREATE', 'UPDATE']",
            "object.spec.replicas >= 2 && object.spec.replicas * 2 == 4",
            "object.spec.template.spec.containers.exists(c, c.image.contains('podinfo'))",
            "object.spec.template.spec.containers.all(c, size(c.name) > 0)",
            "object.spec.template.spec.containers.filter(c, c.name == 'app').size() == 1",
            "object.spec.template.spec.containers.map(c, c.name) == ['app', 'proxy']",
            "oldObject == null ? true : false",
            "{'a': 1}.a == 1.0",
            "-object.spec.replicas < 0 && 7 % 4 == 3 && 'a' + 'b' == 'ab'",
        ];
        for e in yes {
            assert_eq!(eval_str(e), Ok(true), "{e}");
        }
        assert_eq!(eval_str("request.dryRun"), Ok(false));
    }

    #[test]
    fn a_missing_key_is_an_error_that_a_decisive_side_absorbs() {
        assert_eq!(
            eval_str("object.metadata.annotations.x == 'y'"),
            Err(CelError::Eval("no such key: annotations".into()))
        );
        assert_eq!(
            eval_str("false && object.metadata.annotations.x == 'y'"),
            Ok(false)
        );
        assert_eq!(
            eval_str("object.metadata.annotations.x == 'y' || true"),
            Ok(true)
        );
        assert!(eval_str("true && object.nope").is_err());
    }

    #[test]
    fn selecting_from_null_is_an_error() {
        assert!(matches!(
            eval_str("oldObject.metadata.name == 'x'"),
            Err(CelError::Eval(_))
        ));
    }

    #[test]
    fn a_non_bool_result_is_an_error() {
        assert_eq!(
            eval_str("object.spec.replicas"),
            Err(CelError::Eval(
                "expression must evaluate to a bool, got int".into()
            ))
        );
    }

    #[test]
    fn unsupported_constructs_say_so() {
        assert!(matches!(
            eval_str("object.metadata.name.matches('^pod')"),
            Err(CelError::Unsupported(_))
        ));
        assert!(matches!(
            eval_str("authorizer.group('').resource('x').check('get').allowed()"),
            Err(CelError::Unsupported(_))
        ));
    }

    #[test]
    fn syntax_errors_give_the_column() {
        assert!(matches!(
            eval_str("object.metadata.name == "),
            Err(CelError::Syntax { .. })
        ));
        assert!(matches!(
            eval_str("a # b"),
            Err(CelError::Syntax { at: 2, .. })
        ));
    }

    #[test]
    fn strings_accept_both_quotes_and_escapes() {
        assert_eq!(eval_str(r#""it's" == 'it\'s'"#), Ok(true));
    }
}
