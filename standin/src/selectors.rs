//! Label selectors (full apiserver syntax) and the supported field selectors.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

/// A parsed label selector: a conjunction of requirements.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector {
    reqs: Vec<(String, Op)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Comma,
    Open,
    Close,
}

fn lex(s: &str) -> Vec<Tok> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            ',' => (out.push(Tok::Comma), i += 1).1,
            '(' => (out.push(Tok::Open), i += 1).1,
            ')' => (out.push(Tok::Close), i += 1).1,
            '>' => (out.push(Tok::Gt), i += 1).1,
            '<' => (out.push(Tok::Lt), i += 1).1,
            '!' if next == Some('=') => (out.push(Tok::NotEq), i += 2).1,
            '!' => (out.push(Tok::Not), i += 1).1,
            '=' if next == Some('=') => (out.push(Tok::DoubleEq), i += 2).1,
            '=' => (out.push(Tok::Eq), i += 1).1,
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !",()<>!=".contains(chars[i]) {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
        }
    }
    out
}

fn valid_name(s: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(ok_char)
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

fn validate_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                valid_name(l)
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    if prefix_ok && valid_name(name) {
        Ok(())
    } else {
        Err(format!(
            "unable to parse requirement: key: Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

fn validate_value(v: &str) -> Result<(), String> {
    if v.is_empty() || valid_name(v) {
        Ok(())
    } else {
        Err(format!(
            "unable to parse requirement: values[0]: Invalid value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

impl LabelSelector {
    /// Parse a selector such as `app=web,tier in (a,b),!legacy`. The message of the error is
    /// what the apiserver would put in its 400 response.
    pub fn parse(s: &str) -> Result<Self, String> {
        let toks = lex(s);
        let mut reqs = Vec::new();
        let mut i = 0;
        let err = |m: &str| Err(format!("unable to parse requirement: {m} in selector \"{s}\""));
        while i < toks.len() {
            let negated = toks[i] == Tok::Not;
            if negated {
                i += 1;
            }
            let key = match toks.get(i) {
                Some(Tok::Ident(k)) => k.clone(),
                _ => return err("found unexpected token, expected: identifier"),
            };
            validate_key(&key)?;
            i += 1;
            let at_end = |t: Option<&Tok>| matches!(t, None | Some(Tok::Comma));
            if negated {
                if !at_end(toks.get(i)) {
                    return err("expected ',' or end after '!key'");
                }
                reqs.push((key, Op::DoesNotExist));
            } else if at_end(toks.get(i)) {
                reqs.push((key, Op::Exists));
            } else {
                let op_tok = toks[i].clone();
                i += 1;
                match op_tok {
                    Tok::Eq | Tok::DoubleEq | Tok::NotEq => {
                        let v = match toks.get(i) {
                            Some(Tok::Ident(v)) => {
                                i += 1;
                                v.clone()
                            }
                            t if at_end(t) => String::new(),
                            _ => return err("found unexpected token, expected: identifier"),
                        };
                        validate_value(&v)?;
                        reqs.push((key, if op_tok == Tok::NotEq { Op::NotEq(v) } else { Op::Eq(v) }));
                    }
                    Tok::Gt | Tok::Lt => {
                        let n = match toks.get(i) {
                            Some(Tok::Ident(v)) => v.parse::<i64>().ok(),
                            _ => None,
                        };
                        let Some(n) = n else {
                            return err("for 'Gt', 'Lt' operators, exactly one integer value is required");
                        };
                        i += 1;
                        reqs.push((key, if op_tok == Tok::Gt { Op::Gt(n) } else { Op::Lt(n) }));
                    }
                    Tok::Ident(ref w) if w == "in" || w == "notin" => {
                        if toks.get(i) != Some(&Tok::Open) {
                            return err("found unexpected token, expected: '('");
                        }
                        i += 1;
                        let mut vals = Vec::new();
                        loop {
                            match toks.get(i) {
                                Some(Tok::Ident(v)) => {
                                    validate_value(v)?;
                                    vals.push(v.clone());
                                    i += 1;
                                }
                                Some(Tok::Comma) | Some(Tok::Close) => vals.push(String::new()),
                                _ => return err("found unexpected token, expected: ',' or ')'"),
                            }
                            match toks.get(i) {
                                Some(Tok::Comma) => i += 1,
                                Some(Tok::Close) => {
                                    i += 1;
                                    break;
                                }
                                _ => return err("found unexpected token, expected: ',' or ')'"),
                            }
                        }
                        if vals.iter().all(|v| v.is_empty()) && vals.len() == 1 {
                            return err("for 'in', 'notin' operators, values set can't be empty");
                        }
                        reqs.push((key, if w == "in" { Op::In(vals) } else { Op::NotIn(vals) }));
                    }
                    _ => return err("found unexpected token, expected an operator"),
                }
            }
            match toks.get(i) {
                None => {}
                Some(Tok::Comma) => {
                    i += 1;
                    if i == toks.len() {
                        return err("found trailing ','");
                    }
                }
                _ => return err("found unexpected token, expected ','"),
            }
        }
        Ok(LabelSelector { reqs })
    }

    /// Whether the given `metadata.labels` map (or `None`) satisfies every requirement.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|(k, op)| {
            let v = get(k);
            match op {
                Op::Eq(x) => v == Some(x.as_str()),
                Op::NotEq(x) => v != Some(x.as_str()),
                Op::In(xs) => v.is_some_and(|v| xs.iter().any(|x| x == v)),
                Op::NotIn(xs) => v.is_none_or(|v| !xs.iter().any(|x| x == v)),
                Op::Exists => v.is_some(),
                Op::DoesNotExist => v.is_none(),
                Op::Gt(n) => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v > *n),
                Op::Lt(n) => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v < *n),
            }
        })
    }
}

/// A parsed field selector (`metadata.name=x,metadata.namespace!=y`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parse; `supported` lists the field paths this kind accepts besides
    /// `metadata.name` and `metadata.namespace`.
    pub fn parse(s: &str, supported: &[&str]) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, eq, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(format!("invalid selector: '{s}'; can't understand '{part}'"));
            };
            let k = k.trim();
            if k != "metadata.name" && k != "metadata.namespace" && !supported.contains(&k) {
                return Err(format!("field label not supported: {k}"));
            }
            reqs.push((k.to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector { reqs })
    }

    /// Whether the object satisfies every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(k, eq, v)| {
            let mut cur = Some(obj);
            for seg in k.split('.') {
                cur = cur.and_then(|c| c.get(seg));
            }
            let actual = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *v) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(sel: &str, labels: Value) -> bool {
        LabelSelector::parse(sel).unwrap().matches(labels.as_object())
    }

    #[test]
    fn label_selector_syntax() {
        let l = json!({"a": "b", "tier": "x", "n": "5"});
        assert!(m("a=b", l.clone()));
        assert!(m("a==b", l.clone()));
        assert!(!m("a!=b", l.clone()));
        assert!(m("a!=c", l.clone()));
        assert!(m("tier in (x, y)", l.clone()));
        assert!(!m("tier notin (x)", l.clone()));
        assert!(m("a,!missing", l.clone()));
        assert!(!m("!a", l.clone()));
        assert!(m("a=b,tier in (x),n>3,n<6", l.clone()));
        assert!(m("", l.clone()));
        assert!(m("missing!=x", l.clone()));
        assert!(m("example.com/key notin (q)", l));
        for bad in ["a=b,", "=b", "a in x", "a in (x", "a b", "!a=b", "a=b=c", "a>x", "-a=b"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn field_selector() {
        let o = json!({"metadata": {"name": "x", "namespace": "ns"}});
        assert!(FieldSelector::parse("metadata.name=x", &[]).unwrap().matches(&o));
        assert!(!FieldSelector::parse("metadata.name!=x", &[]).unwrap().matches(&o));
        assert!(FieldSelector::parse("metadata.namespace==ns,metadata.name=x", &[])
            .unwrap()
            .matches(&o));
        assert!(FieldSelector::parse("spec.foo=x", &[]).is_err());
    }
}
