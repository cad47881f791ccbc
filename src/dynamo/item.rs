//! Reading a DynamoDB item attribute by attribute, each as its documented type, strictly: an
//! attribute of another type, a number that is not the kind of number documented, is an error
//! that names the attribute and what was found (`max_concurrent_namespaces: the string "ten"
//! (expected a non-negative integer, N)`). What the tables hold is hostile until read this way.
//!
//! One reader for every table: absent and present are told apart (`Ok(None)` is absent; a
//! `NULL` is present and of the wrong type), and what was found is shown short (long strings
//! are cut), so a message built from it stays small.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// An attribute that is missing or not of its documented type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAttribute {
    pub attribute: String,
    /// What was found and what was expected, e.g. `the number -1 (expected a non-negative
    /// integer, N)`, or `missing (expected a boolean, BOOL)`.
    pub found: String,
}

impl std::fmt::Display for BadAttribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.attribute, self.found)
    }
}

impl std::error::Error for BadAttribute {}

/// Longest part of a found value shown in a message.
const SHOWN: usize = 64;

/// `the string "ten"`, `the number 2.5`, `a list of 3 values`, … (values cut at 64 characters).
pub fn describe(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(s) => format!("the string {:?}", cut(s)),
        AttributeValue::N(n) => format!("the number {}", cut(n)),
        AttributeValue::Bool(b) => format!("the boolean {b}"),
        AttributeValue::Null(_) => "NULL".to_string(),
        AttributeValue::L(l) => format!("a list of {} value(s)", l.len()),
        AttributeValue::M(m) => format!("a map of {} attribute(s)", m.len()),
        AttributeValue::Ss(s) => format!("a string set of {} value(s)", s.len()),
        AttributeValue::Ns(n) => format!("a number set of {} value(s)", n.len()),
        AttributeValue::B(_) => "a binary value".to_string(),
        AttributeValue::Bs(b) => format!("a binary set of {} value(s)", b.len()),
        _ => "a value of an unknown type".to_string(),
    }
}

/// `s`, or its first 64 characters and `…`.
pub(crate) fn cut(s: &str) -> String {
    match s.char_indices().nth(SHOWN) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// One item, read attribute by attribute.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a>(pub &'a HashMap<String, AttributeValue>);

impl<'a> Item<'a> {
    fn bad(&self, key: &str, found: String, expected: &str) -> BadAttribute {
        BadAttribute {
            attribute: key.to_string(),
            found: format!("{found} (expected {expected})"),
        }
    }

    /// A present attribute as `T`, or the error naming what was found.
    fn read<T>(
        &self,
        key: &str,
        expected: &str,
        f: impl FnOnce(&'a AttributeValue) -> Option<T>,
    ) -> Result<Option<T>, BadAttribute> {
        match self.0.get(key) {
            None => Ok(None),
            Some(v) => f(v).map(Some).ok_or_else(|| self.bad(key, describe(v), expected)),
        }
    }

    /// `value`, or "missing" when a required attribute is absent.
    pub fn required<T>(
        &self,
        key: &str,
        value: Result<Option<T>, BadAttribute>,
        expected: &str,
    ) -> Result<T, BadAttribute> {
        value?.ok_or_else(|| self.bad(key, "missing".into(), expected))
    }

    /// `S`.
    pub fn string(&self, key: &str) -> Result<Option<&'a str>, BadAttribute> {
        self.read(key, STRING, |v| match v {
            AttributeValue::S(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// `BOOL`.
    pub(crate) fn boolean(&self, key: &str) -> Result<Option<bool>, BadAttribute> {
        self.read(key, BOOLEAN, |v| match v {
            AttributeValue::Bool(b) => Some(*b),
            _ => None,
        })
    }

    /// `N` holding a whole number ≥ 0 (saturating at `u64::MAX`).
    pub fn count(&self, key: &str) -> Result<Option<u64>, BadAttribute> {
        self.read(key, COUNT, |v| match v {
            AttributeValue::N(n) => parse_number(n)
                .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                .map(|f| f as u64),
            _ => None,
        })
    }

    /// `N` holding any finite number.
    pub fn number(&self, key: &str) -> Result<Option<f64>, BadAttribute> {
        self.read(key, NUMBER, |v| match v {
            AttributeValue::N(n) => parse_number(n),
            _ => None,
        })
    }

    /// `L` whose every element is an `S`.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<&'a str>>, BadAttribute> {
        self.list(key, STRINGS, |e| match e {
            AttributeValue::S(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// `L` whose every element `element` reads; the error names the first that does not.
    fn list<T>(
        &self,
        key: &str,
        expected: &str,
        element: impl Fn(&'a AttributeValue) -> Option<T>,
    ) -> Result<Option<Vec<T>>, BadAttribute> {
        let Some(v) = self.0.get(key) else { return Ok(None) };
        let AttributeValue::L(list) = v else {
            return Err(self.bad(key, describe(v), expected));
        };
        list.iter()
            .enumerate()
            .map(|(i, e)| {
                element(e).ok_or_else(|| self.bad(key, format!("element {} is {}", i + 1, describe(e)), expected))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

impl<'a> Item<'a> {
    /// `S`, required.
    pub(crate) fn required_string(&self, key: &str) -> Result<&'a str, BadAttribute> {
        self.required(key, self.string(key), STRING)
    }

    /// `N` holding any finite number, required.
    pub(crate) fn required_number(&self, key: &str) -> Result<f64, BadAttribute> {
        self.required(key, self.number(key), NUMBER)
    }

    /// Absent, or `NULL`: where a table documents `NULL` as "none".
    pub(crate) fn absent_or_null(&self, key: &str) -> bool {
        matches!(self.0.get(key), None | Some(AttributeValue::Null(_)))
    }

    /// The text of an `S` or an `N`, for attributes older writers stored either way; None for
    /// anything else.
    pub fn text(&self, key: &str) -> Option<&'a str> {
        match self.0.get(key)? {
            AttributeValue::S(v) | AttributeValue::N(v) => Some(v.as_str()),
            _ => None,
        }
    }

    /// `L` whose every element is an `M`, each read as an item.
    pub(crate) fn maps(&self, key: &str) -> Result<Option<Vec<Item<'a>>>, BadAttribute> {
        self.list(key, MAPS, |e| match e {
            AttributeValue::M(m) => Some(Item(m)),
            _ => None,
        })
    }
}

const STRING: &str = "a string, S";
const MAPS: &str = "a list of maps, L of M";
const BOOLEAN: &str = "a boolean, BOOL";
const COUNT: &str = "a non-negative integer, N";
const NUMBER: &str = "a number, N";
const STRINGS: &str = "a list of strings, L of S";

/// What `expected` says for each reader, for callers that require an attribute.
pub mod expected {
    pub(crate) const STRING: &str = super::STRING;
    pub(crate) const BOOLEAN: &str = super::BOOLEAN;
    pub(crate) const COUNT: &str = super::COUNT;
}

/// DynamoDB's decimal text as a finite number.
fn parse_number(n: &str) -> Option<f64> {
    n.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: Vec<(&str, AttributeValue)>) -> HashMap<String, AttributeValue> {
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn each_reader_takes_only_its_type() {
        use AttributeValue as A;
        let i = item(vec![
            ("s", A::S("x".into())),
            ("b", A::Bool(true)),
            ("n", A::N("3".into())),
            ("f", A::N("2.5".into())),
            ("neg", A::N("-1".into())),
            ("l", A::L(vec![A::S("a".into()), A::S("b".into())])),
            ("null", A::Null(true)),
            ("mixed", A::L(vec![A::S("a".into()), A::N("5".into())])),
            ("ss", A::Ss(vec!["a".into()])),
            ("bs", A::S("true".into())),
        ]);
        let r = Item(&i);
        let cases: Vec<(&str, Result<String, String>)> = vec![
            ("s", r.string("s").map(|v| format!("{v:?}")).map_err(|e| e.to_string())),
            (
                "absent",
                r.string("absent").map(|v| format!("{v:?}")).map_err(|e| e.to_string()),
            ),
            ("b", r.boolean("b").map(|v| format!("{v:?}")).map_err(|e| e.to_string())),
            (
                "bs",
                r.boolean("bs").map(|v| format!("{v:?}")).map_err(|e| e.to_string()),
            ),
            ("n", r.count("n").map(|v| format!("{v:?}")).map_err(|e| e.to_string())),
            ("f", r.count("f").map(|v| format!("{v:?}")).map_err(|e| e.to_string())),
            (
                "neg",
                r.count("neg").map(|v| format!("{v:?}")).map_err(|e| e.to_string()),
            ),
            (
                "f as number",
                r.number("f").map(|v| format!("{v:?}")).map_err(|e| e.to_string()),
            ),
            (
                "s as count",
                r.count("s").map(|v| format!("{v:?}")).map_err(|e| e.to_string()),
            ),
            ("l", r.strings("l").map(|v| format!("{v:?}")).map_err(|e| e.to_string())),
            (
                "mixed",
                r.strings("mixed").map(|v| format!("{v:?}")).map_err(|e| e.to_string()),
            ),
            (
                "ss",
                r.strings("ss").map(|v| format!("{v:?}")).map_err(|e| e.to_string()),
            ),
            (
                "null",
                r.string("null").map(|v| format!("{v:?}")).map_err(|e| e.to_string()),
            ),
        ];
        let want: Vec<(&str, Result<String, String>)> = vec![
            ("s", Ok("Some(\"x\")".into())),
            ("absent", Ok("None".into())),
            ("b", Ok("Some(true)".into())),
            ("bs", Err("bs: the string \"true\" (expected a boolean, BOOL)".into())),
            ("n", Ok("Some(3)".into())),
            (
                "f",
                Err("f: the number 2.5 (expected a non-negative integer, N)".into()),
            ),
            (
                "neg",
                Err("neg: the number -1 (expected a non-negative integer, N)".into()),
            ),
            ("f as number", Ok("Some(2.5)".into())),
            (
                "s as count",
                Err("s: the string \"x\" (expected a non-negative integer, N)".into()),
            ),
            ("l", Ok("Some([\"a\", \"b\"])".into())),
            (
                "mixed",
                Err("mixed: element 2 is the number 5 (expected a list of strings, L of S)".into()),
            ),
            (
                "ss",
                Err("ss: a string set of 1 value(s) (expected a list of strings, L of S)".into()),
            ),
            ("null", Err("null: NULL (expected a string, S)".into())),
        ];
        assert_eq!(cases, want);
        let missing = r.required("absent", r.boolean("absent"), expected::BOOLEAN);
        assert_eq!(
            missing.unwrap_err().to_string(),
            "absent: missing (expected a boolean, BOOL)"
        );
    }

    #[test]
    fn what_was_found_is_shown_short() {
        let long = "x".repeat(10_000);
        let i = item(vec![("k", AttributeValue::S(long))]);
        let e = Item(&i).count("k").unwrap_err();
        assert!(e.to_string().len() < 150, "{e}");
        assert!(e.found.contains('…'));
        assert_eq!(cut("é".repeat(70).as_str()).chars().count(), 65);
    }
}
