//! Fields read leniently: whatever JSON a team (or a schema-less custom resource) put there,
//! the item still decodes, and the value is judged later with a message naming it. A strict
//! field of the wrong type would fail the whole cluster-wide list, i.e. every team's run.
//! Text is cut short while it is read, so a 1 MB value is never held.

use std::borrow::Cow;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Characters of a text value kept; anything longer is judged by its length alone.
pub const KEPT: usize = 256;

/// A value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    /// A JSON string: its first [`KEPT`] characters, and how many it had.
    String { value: String, chars: usize },
    /// Not a string: what it was (`a number`, `an object`, …).
    Other(&'static str),
}

impl Text {
    pub fn of(s: &str) -> Text {
        let chars = s.chars().count();
        let value = if chars > KEPT {
            s.chars().take(KEPT).collect()
        } else {
            s.to_string()
        };
        Text::String { value, chars }
    }

    /// The whole string, when it is one and was not cut.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Text::String { value, chars } if *chars <= KEPT => Some(value),
            _ => None,
        }
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Option<Text>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Text::of(v)))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Text::of(v)))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Text::of(&v)))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some(Text::Other("a number")))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some(Text::Other("a number")))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some(Text::Other("a number")))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some(Text::Other("a boolean")))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Some(Text::Other("a list")))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Some(Text::Other("an object")))
    }
}

/// Any JSON value as [`Text`] (`null` and absent: None).
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Text>, D::Error> {
    d.deserialize_any(TextVisitor)
}

/// A string (cut at [`KEPT`] characters); anything else reads as absent.
pub fn text_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match text(d)? {
        Some(Text::String { value, .. }) => Some(value),
        _ => None,
    })
}

/// A whole number; anything else (a string, a fraction, an object) reads as absent.
pub fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct Integer;
    impl<'de> Visitor<'de> for Integer {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(i64::try_from(v).ok())
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
            while s.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            while m.next_entry::<Cow<'de, str>, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    d.deserialize_any(Integer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "text")]
        t: Option<Text>,
        #[serde(default, deserialize_with = "integer")]
        n: Option<i64>,
        #[serde(default, deserialize_with = "text_string")]
        s: Option<String>,
    }

    #[test]
    fn any_json_decodes_and_long_text_is_cut() {
        let cases = [
            (
                r#"{"t": "2026-11-25T23:00:00Z", "n": 3, "s": "Pending"}"#,
                Some(Text::of("2026-11-25T23:00:00Z")),
                Some(3),
                Some("Pending"),
            ),
            (
                r#"{"t": 5, "n": "3", "s": 7}"#,
                Some(Text::Other("a number")),
                None,
                None,
            ),
            (
                r#"{"t": {"a": [1, 2]}, "n": 2.5, "s": ["x"]}"#,
                Some(Text::Other("an object")),
                None,
                None,
            ),
            (
                r#"{"t": [1], "n": {"x": 1}, "s": null}"#,
                Some(Text::Other("a list")),
                None,
                None,
            ),
            (r#"{"t": null}"#, None, None, None),
            ("{}", None, None, None),
        ];
        for (json, t, n, s) in cases {
            let p: Probe = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!((p.t, p.n, p.s.as_deref()), (t, n, s), "{json}");
        }
        let long = format!(r#"{{"t": "{}"}}"#, "x".repeat(100_000));
        let p: Probe = serde_json::from_str(&long).unwrap();
        let t = p.t.unwrap();
        assert_eq!(t.as_str(), None, "cut: not the whole value");
        match t {
            Text::String { value, chars } => assert_eq!((value.len(), chars), (KEPT, 100_000)),
            other => panic!("{other:?}"),
        }
    }
}
