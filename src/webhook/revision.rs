//! Revisions: the identity of a pod template, stable across Sluice and Kubernetes versions.
//!
//! A revision is the first 16 hex characters of the sha256 of the template's canonical JSON:
//! object keys sorted recursively (by code point), no whitespace, strings escaped and numbers
//! printed as serde_json prints them. Unlike Kubernetes' `pod-template-hash` it does not depend
//! on Go's struct layout, so a revision recorded as failed today still matches the same template
//! after an upgrade of either side.
//!
//! The webhook sees templates as JSON text ([`Template`]), and decides on the hot path without
//! building a [`serde_json::Value`]:
//!
//! ```text
//! old, new template text ──byte-equal?──yes──► unchanged (no parse, no hash)
//!                              │ no
//!                              ▼
//!   old text ──► borrowed tree, objects sorted by key (serde_json's parser; strings without
//!                              │                     escapes are not copied)
//!   new text ──read against it─┤ (nothing built; what cannot match is only skipped)
//!                              ├──equal as Values are──► unchanged
//!                              ▼
//!   old tree ──► canonical JSON, the same bytes as canonical_json(&Value) ──► stable / sha256
//! ```

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// The template's canonical JSON: keys sorted recursively, no whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::with_capacity(2048);
    write_canonical(value, &mut out);
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&key.as_str(), out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        // Strings, null, booleans and numbers print the same compact way everywhere.
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &impl serde::Serialize, out: &mut Vec<u8>) {
    serde_json::to_writer(out, value).expect("a JSON scalar always serialises to memory");
}

/// The revision of a pod template: sha256 of [`canonical_json`], first 16 hex characters.
pub fn revision(template: &Value) -> String {
    revision_of_canonical(&canonical_json(template))
}

/// The revision named by a template's canonical JSON (as recorded in `sluice.dev/stable-template`).
pub fn revision_of_canonical(canonical: &str) -> String {
    let digest = Sha256::digest(canonical.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The canonical JSON of a JSON text, the same bytes as [`canonical_json`] of its `Value`.
///
/// Fails only where parsing it into a `Value` would: text that is not JSON, or nesting deeper
/// than serde_json's limit of 128.
pub fn canonical_json_of_text(json: &str) -> Result<String, serde_json::Error> {
    Ok(Node::parse(json)?.to_canonical(json.len()))
}

/// A pod template as the JSON text it arrived in, compared and hashed without a `Value`.
#[derive(Clone, Debug)]
pub struct Template(Box<RawValue>);

impl Template {
    /// A template from JSON text; an error if it is not JSON.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        RawValue::from_string(json.to_owned()).map(Self)
    }

    /// The JSON text as received.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The template as a `Value`.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.as_str())
    }

    /// [`canonical_json`] of the template.
    pub fn canonical_json(&self) -> Result<String, serde_json::Error> {
        canonical_json_of_text(self.as_str())
    }

    /// [`revision`] of the template.
    pub fn revision(&self) -> Result<String, serde_json::Error> {
        self.canonical_json().map(|c| revision_of_canonical(&c))
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(Self)
    }
}

/// What an update does to a Deployment's pod template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateChange {
    /// The same template: byte-equal, or equal as `Value`s.
    Unchanged,
    /// A different template; the old one's canonical JSON (`null` when it had none).
    Changed { old_canonical: String },
}

impl TemplateChange {
    /// Compares the old and the new template, parsing them only when their text differs.
    pub fn between(
        old: Option<&Template>,
        new: Option<&Template>,
    ) -> Result<Self, serde_json::Error> {
        let old_node = match (old, new) {
            (None, None) => return Ok(Self::Unchanged),
            (Some(o), Some(n)) if o.as_str() == n.as_str() => return Ok(Self::Unchanged),
            (Some(o), _) => Node::parse(o.as_str())?,
            (None, Some(_)) => Node::Null,
        };
        // An absent template differs from any present one, even `null`, as `Option<Value>`.
        if let (Some(_), Some(n)) = (old, new)
            && old_node.same_as_text(n.as_str())?
        {
            return Ok(Self::Unchanged);
        }
        let capacity = old.map_or(4, |o| o.as_str().len());
        Ok(Self::Changed {
            old_canonical: old_node.to_canonical(capacity),
        })
    }

    /// Whether the template changed.
    pub fn changed(&self) -> bool {
        matches!(self, Self::Changed { .. })
    }
}

/// A JSON value borrowed from its text where it can be: the least needed to write it canonical.
///
/// Once [`parse`](Node::parse)d its objects are sorted by key with repeated keys dropped (the
/// last one stays, as in a `Value`), so `==` is `Value`'s equality.
#[derive(Debug, PartialEq)]
enum Node<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    /// Borrowed when the text had no escape, so it holds no character JSON must escape.
    Str(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl<'a> Node<'a> {
    /// Parses with serde_json (so what it accepts and how it reads numbers are `Value`'s).
    fn parse(json: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Whether `json` is equal to this node as `Value`s are. It is read without building
    /// anything: compared where the node has something to compare, skipped where it cannot be
    /// equal.
    fn same_as_text(&self, json: &str) -> Result<bool, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(json);
        let same = SameAs(self).deserialize(&mut de)?;
        de.end()?;
        Ok(same)
    }

    fn to_canonical(&self, capacity: usize) -> String {
        let mut out = Vec::with_capacity(capacity);
        self.write_canonical(&mut out);
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    fn write_canonical(&self, out: &mut Vec<u8>) {
        match self {
            Node::Object(entries) => {
                out.push(b'{');
                for (i, (key, item)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(key, out);
                    out.push(b':');
                    item.write_canonical(out);
                }
                out.push(b'}');
            }
            Node::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_canonical(out);
                }
                out.push(b']');
            }
            Node::Null => out.extend_from_slice(b"null"),
            Node::Bool(b) => write_scalar(b, out),
            Node::U64(n) => write_scalar(n, out),
            Node::I64(n) => write_scalar(n, out),
            // Finite: serde_json refuses numbers out of range. Printed as `Value` prints it.
            Node::F64(f) => write_scalar(f, out),
            Node::Str(s) => write_str(s, out),
        }
    }
}

/// A string as serde_json prints it; one that had no escape in its JSON text needs none.
#[expect(
    clippy::ptr_arg,
    reason = "Borrowed or Owned tells whether the text had escapes"
)]
fn write_str(s: &Cow<'_, str>, out: &mut Vec<u8>) {
    match s {
        Cow::Borrowed(s) => {
            out.push(b'"');
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        }
        Cow::Owned(s) => write_scalar(&s.as_str(), out),
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Node::Bool(b))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Node::U64(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        // serde_json hands non-negative integers to `visit_u64`; keep `Value`'s view anyway.
        Ok(u64::try_from(n).map_or(Node::I64(n), Node::U64))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Self::Value, E> {
        Ok(if f.is_finite() {
            Node::F64(f)
        } else {
            Node::Null
        })
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Node::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Node::Str(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Node::Str(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key_seed(KeySeed)? {
            entries.push((key, map.next_value()?));
        }
        // Stable, so that of repeated keys the last one is last.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        if entries.windows(2).any(|w| w[0].0 == w[1].0) {
            entries.reverse();
            entries.dedup_by(|later, kept| later.0 == kept.0);
            entries.reverse();
        }
        Ok(Node::Object(entries))
    }
}

/// Reads JSON text against a sorted [`Node`]: whether the two are equal as `Value`s are.
///
/// It reads on past a difference (skipping what cannot match) rather than stopping there,
/// because a key repeated later in the same object replaces the value that differed.
struct SameAs<'n, 'a>(&'n Node<'a>);

impl<'de> DeserializeSeed<'de> for SameAs<'_, '_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SameAs<'_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(*self.0 == Node::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<bool, E> {
        Ok(*self.0 == Node::Bool(b))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<bool, E> {
        Ok(*self.0 == Node::U64(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<bool, E> {
        Ok(*self.0 == NodeVisitor.visit_i64::<E>(n)?)
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<bool, E> {
        Ok(*self.0 == NodeVisitor.visit_f64::<E>(f)?)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<bool, E> {
        Ok(matches!(self.0, Node::Str(old) if old == s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let Node::Array(items) = self.0 else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(false);
        };
        let mut same = true;
        for item in items {
            match seq.next_element_seed(SameAs(item))? {
                Some(s) => same &= s,
                // The new array is shorter.
                None => return Ok(false),
            }
        }
        // The new array is longer.
        while seq.next_element::<IgnoredAny>()?.is_some() {
            same = false;
        }
        Ok(same)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let Node::Object(entries) = self.0 else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(false);
        };
        // Per key of the node: not seen yet, or whether its last value was equal.
        let mut seen: Vec<Option<bool>> = vec![None; entries.len()];
        let mut same = true;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match entries.binary_search_by(|(k, _)| k.as_ref().cmp(key.as_ref())) {
                Ok(i) => seen[i] = Some(map.next_value_seed(SameAs(&entries[i].1))?),
                Err(_) => {
                    map.next_value::<IgnoredAny>()?;
                    same = false;
                }
            }
        }
        Ok(same && seen.iter().all(|s| *s == Some(true)))
    }
}

/// An object key, borrowed when it has no escapes (serde's own `Cow` always copies).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn template() -> Value {
        json!({
            "spec": {
                "terminationGracePeriodSeconds": 30,
                "containers": [{
                    "resources": {"limits": {"cpu": "500m"}},
                    "ports": [{"protocol": "TCP", "containerPort": 9898}],
                    "name": "podinfo",
                    "image": "ghcr.io/stefanprodan/podinfo:6.0.1"
                }]
            },
            "metadata": {"labels": {"app": "podinfo"}}
        })
    }

    #[test]
    fn canonical_json_sorts_keys_recursively_without_whitespace() {
        assert_eq!(
            canonical_json(&template()),
            r#"{"metadata":{"labels":{"app":"podinfo"}},"spec":{"containers":[{"image":"ghcr.io/stefanprodan/podinfo:6.0.1","name":"podinfo","ports":[{"containerPort":9898,"protocol":"TCP"}],"resources":{"limits":{"cpu":"500m"}}}],"terminationGracePeriodSeconds":30}}"#
        );
    }

    #[test]
    fn the_revision_of_a_fixed_template_is_pinned() {
        // Computed independently:
        // python3 -c 'import json,hashlib; t={"metadata":{"labels":{"app":"podinfo"}},"spec":{"containers":[{"name":"podinfo","image":"ghcr.io/stefanprodan/podinfo:6.0.1","ports":[{"containerPort":9898,"protocol":"TCP"}],"resources":{"limits":{"cpu":"500m"}}}],"terminationGracePeriodSeconds":30}}; print(hashlib.sha256(json.dumps(t,sort_keys=True,separators=(",",":"),ensure_ascii=False).encode()).hexdigest()[:16])'
        assert_eq!(revision(&template()), "5688b659b266855b");
    }

    #[test]
    fn key_order_does_not_change_the_revision_but_a_value_does() {
        let reordered: Value = serde_json::from_str(
            r#"{"metadata":{"labels":{"app":"podinfo"}},"spec":{"terminationGracePeriodSeconds":30,"containers":[{"name":"podinfo","image":"ghcr.io/stefanprodan/podinfo:6.0.1","ports":[{"containerPort":9898,"protocol":"TCP"}],"resources":{"limits":{"cpu":"500m"}}}]}}"#,
        )
        .unwrap();
        assert_eq!(revision(&reordered), revision(&template()));
        let mut changed = template();
        changed["spec"]["containers"][0]["image"] = json!("ghcr.io/stefanprodan/podinfo:6.0.2");
        assert_ne!(revision(&changed), revision(&template()));
    }

    #[test]
    fn strings_are_escaped_as_json() {
        assert_eq!(
            canonical_json(&json!({"b": "quote \" and é", "a": [null, true, 1.5]})),
            r#"{"a":[null,true,1.5],"b":"quote \" and é"}"#
        );
    }

    /// Every template in the captured reviews, as the text that arrived.
    fn captured_templates() -> Vec<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/admission");
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                for o in ["object", "oldObject"] {
                    let t = &v["request"][o]["spec"]["template"];
                    if !t.is_null() {
                        found.push(serde_json::to_string_pretty(t).unwrap());
                    }
                }
            }
        }
        assert!(found.len() >= 10, "{found:?}");
        found
    }

    #[test]
    fn canonical_json_of_text_is_byte_identical_to_that_of_the_value() {
        let tricky = [
            r#"{"b": "quote \" back\\slash \/ \u00e9 \u003c\u0026 \ud83d\ude00 \n\t\u0001", "a": "é 😀"}"#,
            r#"{"\u0062": 1, "a": 2, "B": 3, "é": 4, "z\"": 5, "": 6}"#,
            r#"{"a": 1, "b": 2, "a": {"y": 1, "x": 2}}"#,
            r#"[0, -1, 1.5, 1e3, 1E-7, -0, -0.0, 0.1, 12345678901234567890, 18446744073709551615,
                18446744073709551616, -9223372036854775808, -9223372036854775809, 2.5e300]"#,
            r#"[[], {}, [{}], {"a": []}, null, true, false, "", [null]]"#,
            "  {\n \"spaced\" :\t[ 1 ,2 ] }  ",
            r#""just a string""#,
            "42",
        ];
        let captured = captured_templates();
        for text in tricky
            .iter()
            .copied()
            .chain(captured.iter().map(String::as_str))
        {
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                canonical_json_of_text(text).unwrap(),
                canonical_json(&value),
                "{text}"
            );
            let template = Template::from_json(text).unwrap();
            assert_eq!(template.revision().unwrap(), revision(&value), "{text}");
        }
    }

    #[test]
    fn a_template_from_text_has_the_pinned_revision() {
        let text = serde_json::to_string_pretty(&template()).unwrap();
        let t = Template::from_json(&text).unwrap();
        assert_eq!(t.as_str(), text);
        assert_eq!(t.to_value().unwrap(), template());
        assert_eq!(t.revision().unwrap(), "5688b659b266855b");
    }

    #[test]
    fn text_that_is_not_json_is_no_template() {
        assert!(Template::from_json("{\"a\":").is_err());
        assert!(canonical_json_of_text("[1,]").is_err());
    }

    #[test]
    fn a_template_nested_beyond_serde_jsons_limit_is_an_error_not_a_panic() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let t = Template::from_json(&deep).unwrap();
        assert!(t.canonical_json().is_err());
        let other = Template::from_json("[]").unwrap();
        assert!(TemplateChange::between(Some(&t), Some(&other)).is_err());
    }

    #[test]
    fn a_byte_equal_template_is_unchanged() {
        let t = Template::from_json(&serde_json::to_string(&template()).unwrap()).unwrap();
        assert_eq!(
            TemplateChange::between(Some(&t), Some(&t.clone())).unwrap(),
            TemplateChange::Unchanged
        );
        assert_eq!(
            TemplateChange::between(None, None).unwrap(),
            TemplateChange::Unchanged
        );
    }

    #[test]
    fn reordered_or_reindented_keys_are_the_same_template() {
        let compact = Template::from_json(&serde_json::to_string(&template()).unwrap()).unwrap();
        let reordered = Template::from_json(
            r#"{ "spec": {"containers": [{"name": "podinfo", "image": "ghcr.io/stefanprodan/podinfo:6.0.1",
                "resources": {"limits": {"cpu": "500m"}}, "ports": [{"protocol": "TCP", "containerPort": 9898}]}],
                "terminationGracePeriodSeconds": 30}, "metadata": {"labels": {"app": "podinfo"}} }"#,
        )
        .unwrap();
        assert_eq!(
            TemplateChange::between(Some(&compact), Some(&reordered)).unwrap(),
            TemplateChange::Unchanged
        );
    }

    #[test]
    fn a_changed_template_carries_the_old_ones_canonical_json() {
        let old = Template::from_json(&serde_json::to_string(&template()).unwrap()).unwrap();
        let mut changed = template();
        changed["spec"]["containers"][0]["image"] = json!("ghcr.io/stefanprodan/podinfo:6.0.2");
        let new = Template::from_json(&serde_json::to_string(&changed).unwrap()).unwrap();
        assert_eq!(
            TemplateChange::between(Some(&old), Some(&new)).unwrap(),
            TemplateChange::Changed {
                old_canonical: canonical_json(&template())
            }
        );
    }

    #[test]
    fn a_template_that_appears_or_goes_is_a_change() {
        let null = Template::from_json("null").unwrap();
        assert_eq!(
            TemplateChange::between(None, Some(&null)).unwrap(),
            TemplateChange::Changed {
                old_canonical: "null".into()
            }
        );
        let t = Template::from_json(&serde_json::to_string(&template()).unwrap()).unwrap();
        assert_eq!(
            TemplateChange::between(Some(&t), None).unwrap(),
            TemplateChange::Changed {
                old_canonical: canonical_json(&template())
            }
        );
    }

    #[test]
    fn templates_are_the_same_exactly_when_their_values_are_equal() {
        let pairs = [
            (r#"{"a":1,"a":2}"#, r#"{"a":2}"#),
            (r#"{"a":1,"a":2}"#, r#"{"a":1}"#),
            (r#"[0.0]"#, r#"[-0.0]"#),
            (r#"[1]"#, r#"[1.0]"#),
            (r#"{"s":"\u00e9"}"#, r#"{"s":"é"}"#),
            (
                r#"{"b":[1,{"y":2,"x":1}],"a":null}"#,
                r#"{"a":null,"b":[1,{"x":1,"y":2}]}"#,
            ),
            (r#"{"b":[1,2]}"#, r#"{"b":[2,1]}"#),
            (r#"{"b":[1,2]}"#, r#"{"b":[1,2,3]}"#),
            (r#"{"b":[1,2,3]}"#, r#"{"b":[1,2]}"#),
            (r#"{"a":1,"b":2}"#, r#"{"a":1}"#),
            (r#"{"a":1}"#, r#"{"a":1,"b":2}"#),
            (r#"{"a":2}"#, r#"{"a":1,"a":2}"#),
            (r#"{"a":1}"#, r#"{"a":1,"a":2}"#),
            (
                r#"{"a":{"x":[true,null,-1,2.5,"s"]}}"#,
                r#"{"a":{"x":[true,null,-1,2.5,"s"]}}"#,
            ),
            (
                r#"{"a":{"x":[true,null,-1,2.5,"s"]}}"#,
                r#"{"a":{"x":[true,null,-1,2.5,"t"]}}"#,
            ),
            (
                r#"{"a":{"x":[true,null,-1,2.5,"s"]}}"#,
                r#"{"a":{"x":[false,null,-1,2.5,"s"]}}"#,
            ),
            (
                r#"{"a":{"x":[true,null,-1,2.5,"s"]}}"#,
                r#"{"a":{"x":[true,0,-1,2.5,"s"]}}"#,
            ),
            (
                r#"{"a":{"x":[true,null,-1,2.5,"s"]}}"#,
                r#"{"a":{"x":[true,null,-2,2.5,"s"]}}"#,
            ),
            (
                r#"{"a":{"x":[true,null,-1,2.5,"s"]}}"#,
                r#"{"a":{"x":[true,null,-1,2.6,"s"]}}"#,
            ),
            (r#"{"a":{}}"#, r#"{"a":[]}"#),
            (r#"{"a":[]}"#, r#"{"a":{}}"#),
            (r#"{"a":"1"}"#, r#"{"a":1}"#),
        ];
        for (a, b) in pairs {
            let equal = serde_json::from_str::<Value>(a).unwrap()
                == serde_json::from_str::<Value>(b).unwrap();
            let (ta, tb) = (
                Template::from_json(a).unwrap(),
                Template::from_json(b).unwrap(),
            );
            let change = TemplateChange::between(Some(&ta), Some(&tb)).unwrap();
            assert_eq!(!change.changed(), equal, "{a} vs {b}");
        }
    }
}
