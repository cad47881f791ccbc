//! Kubernetes label selectors: validated at configuration time (so a typo in
//! `NAMESPACE_SELECTOR` is an exit 2 before any API call); the API server does the matching.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// Checks the syntax of a selector such as `env in (dev,qa),team!=core,!legacy`.
pub fn validate(selector: &str) -> Result<(), String> {
    parse(selector).map(|_| ())
}

pub fn parse(selector: &str) -> Result<Vec<Requirement>, String> {
    split_terms(selector)?.into_iter().map(parse_term).collect()
}

/// Splits on commas that are not inside a `( … )` value set.
fn split_terms(selector: &str) -> Result<Vec<&str>, String> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0i32, 0usize);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err("unbalanced parentheses".into());
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".into());
    }
    terms.push(&selector[start..]);
    Ok(terms)
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    let term = term.trim();
    if term.is_empty() {
        return Err("empty requirement".into());
    }
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key_of(key)?));
    }
    for (op, build) in [("!=", 1u8), ("==", 0), ("=", 0)] {
        if let Some((k, v)) = term.split_once(op) {
            let (k, v) = (key_of(k)?, value_of(v)?);
            return Ok(if build == 1 {
                Requirement::NotEquals(k, v)
            } else {
                Requirement::Equals(k, v)
            });
        }
    }
    let words: Vec<&str> = term.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let rest = words[1].trim();
        for (op, negate) in [("notin", true), ("in", false)] {
            if let Some(set) = rest.strip_prefix(op) {
                let set = set.trim();
                let inner = set
                    .strip_prefix('(')
                    .and_then(|s| s.strip_suffix(')'))
                    .ok_or_else(|| format!("expected ( … ) after {op} in {term:?}"))?;
                let values = inner.split(',').map(value_of).collect::<Result<Vec<_>, _>>()?;
                let key = key_of(words[0])?;
                return Ok(if negate {
                    Requirement::NotIn(key, values)
                } else {
                    Requirement::In(key, values)
                });
            }
        }
        return Err(format!("unknown operator in {term:?}"));
    }
    Ok(Requirement::Exists(key_of(term)?))
}

/// A label key: optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
fn key_of(raw: &str) -> Result<String, String> {
    let key = raw.trim();
    let name = key.rsplit_once('/').map_or(key, |(prefix, name)| {
        if prefix.is_empty() || prefix.len() > 253 {
            ""
        } else {
            name
        }
    });
    if name.is_empty() || name.len() > 63 || !is_label_text(name) {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(key.to_string())
}

fn value_of(raw: &str) -> Result<String, String> {
    let v = raw.trim();
    if v.len() > 63 || !(v.is_empty() || is_label_text(v)) {
        return Err(format!("invalid label value {v:?}"));
    }
    Ok(v.to_string())
}

fn is_label_text(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    s.starts_with(alnum) && s.ends_with(alnum) && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_operator() {
        let s = |v: &str| v.to_string();
        let sel = parse("env in (dev, qa),team!=core,tier,!legacy,app=web,x notin (a)").unwrap();
        assert_eq!(
            sel,
            vec![
                Requirement::In(s("env"), vec![s("dev"), s("qa")]),
                Requirement::NotEquals(s("team"), s("core")),
                Requirement::Exists(s("tier")),
                Requirement::DoesNotExist(s("legacy")),
                Requirement::Equals(s("app"), s("web")),
                Requirement::NotIn(s("x"), vec![s("a")]),
            ]
        );
    }

    #[test]
    fn prefixed_keys_are_fine() {
        assert!(validate("namespace-scheduler/cost-center=IT-DEVELOPMENT").is_ok());
    }

    #[test]
    fn rejects_malformed_selectors() {
        for bad in [
            "env in (dev",
            "env in dev",
            "=x",
            "a b c",
            "env=in valid!",
            "",
            "a,,b",
            "-bad=1",
        ] {
            assert!(validate(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
