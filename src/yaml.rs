//! YAML as this project reads it (the CloudFormation template, seed files, manifests): YAML 1.2
//! scalars, so only `true`/`false` are booleans (`yes`, `on`, `N` stay strings) and numbers
//! spelled with leading zeros or underscores stay strings.

use serde::de::DeserializeOwned;

/// The parser's options for the rules above.
pub fn options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.strict_booleans = true;
    o.leading_zero_numbers_as_strings = true;
    o.underscored_numbers_as_strings = true;
    o
}

/// One YAML (or JSON) document.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(text, options())
}

/// Every document of a multi-document stream.
pub fn from_multiple<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, serde_saphyr::Error> {
    serde_saphyr::from_multiple_with_options(text, options())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    #[test]
    fn scalars_read_as_yaml_1_2() {
        let cases = [
            ("a: yes", json!({"a": "yes"})),
            ("a: on", json!({"a": "on"})),
            ("a: N", json!({"a": "N"})),
            ("a: true", json!({"a": true})),
            ("a: 0755", json!({"a": "0755"})),
            ("a: 1_000", json!({"a": "1_000"})),
            ("a: 12", json!({"a": 12})),
            ("{\"a\": [1, \"x\"]}", json!({"a": [1, "x"]})),
        ];
        for (text, want) in cases {
            assert_eq!(super::from_str::<Value>(text).unwrap(), want, "{text}");
        }
        let docs: Vec<Value> = super::from_multiple("a: 1\n---\nb: S\n").unwrap();
        assert_eq!(docs, vec![json!({"a": 1}), json!({"b": "S"})]);
    }
}
