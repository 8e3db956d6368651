//! The one walk over the parsed document: a serde `Deserializer` over toml's spanned values that
//! knows the [`KeyPath`] of every value it hands out.
//!
//! It turns serde's error into a [`Refusal`] at the exact key, and [`span_of`] finds a value by
//! its key path, for the lines of later issues. serde stops at its first error, so the refused
//! struct field is left out and the document read again: one run reports every value serde
//! cannot take (unknown keys, wrong types), and validation still sees every value it can.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Unexpected,
    Visitor,
};
use toml::de::{DeString, DeTable, DeValue};
use toml::Spanned;

use super::issue::{closest, either};
use super::key::{KeyPath, Segment};

/// The span of the value at `path`, or of the nearest enclosing value there is: a key left at
/// its default is reported on its table's line. `None` when even the first key is absent.
pub(super) fn span_of(doc: &DeTable<'_>, path: &KeyPath) -> Option<Range<usize>> {
    let mut current: Option<&Spanned<DeValue<'_>>> = None;
    for segment in path.segments() {
        let next = match (current.map(Spanned::get_ref), segment) {
            (None, Segment::Key(k)) => doc.get(k.as_str()),
            (Some(DeValue::Table(t)), Segment::Key(k)) => t.get(k.as_str()),
            (Some(DeValue::Array(a)), Segment::Index(i)) => a.get(*i),
            _ => None,
        };
        match next {
            Some(value) => current = Some(value),
            None => break,
        }
    }
    current.map(Spanned::span)
}

/// A value serde could not take, and why.
#[derive(Debug)]
pub(super) struct Refusal {
    pub key: KeyPath,
    pub span: Option<Range<usize>>,
    pub message: String,
}

/// What serde made of the document.
pub(super) struct Parsed<T> {
    /// `None` only when a refusal could not be worked around (it is among `refusals`).
    pub value: Option<T>,
    pub refusals: Vec<Refusal>,
    /// The struct fields left out because their values were refused: they took their defaults,
    /// and nothing more should be said about them.
    pub left_out: BTreeSet<KeyPath>,
}

/// Deserializes `T` from the document, leaving out each refused struct field in turn.
pub(super) fn deserialize<T: DeserializeOwned>(doc: &Spanned<DeTable<'_>>) -> Parsed<T> {
    let root = DeValue::Table(doc.get_ref().clone());
    let mut left_out = BTreeSet::new();
    let mut refusals = Vec::new();
    loop {
        let result = T::deserialize(Node {
            value: &root,
            path: KeyPath::root(),
            left_out: &left_out,
        });
        let error = match result {
            Ok(value) => {
                return Parsed {
                    value: Some(value),
                    refusals,
                    left_out,
                }
            }
            Err(error) => error,
        };
        let skip = error.skip.clone();
        refusals.extend(error.into_refusal(&left_out));
        // Each attempt leaves out one more field, so this ends.
        if !skip.is_some_and(|field| left_out.insert(field)) {
            return Parsed {
                value: None,
                refusals,
                left_out,
            };
        }
    }
}

/// serde's error, with where it happened.
#[derive(Debug)]
struct DeError {
    what: What,
    /// The deepest key or element reached, with its span: where the message belongs.
    at: Option<(KeyPath, Range<usize>)>,
    /// The innermost struct field holding the error: what the next attempt leaves out.
    skip: Option<KeyPath>,
}

#[derive(Debug)]
enum What {
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    MissingField(&'static str),
    Message(String),
}

impl DeError {
    fn new(what: What) -> Self {
        DeError {
            what,
            at: None,
            skip: None,
        }
    }

    fn at(mut self, path: &KeyPath, span: Range<usize>) -> Self {
        self.at.get_or_insert_with(|| (path.clone(), span));
        self
    }

    fn skip(mut self, field: &KeyPath) -> Self {
        self.skip.get_or_insert_with(|| field.clone());
        self
    }

    fn into_refusal(self, left_out: &BTreeSet<KeyPath>) -> Option<Refusal> {
        let (at, span) = match self.at {
            Some((path, span)) => (path, Some(span)),
            None => (KeyPath::root(), None),
        };
        let (key, message) = match self.what {
            // Said already: the field's value was refused, which is why it is missing.
            What::MissingField(field) if left_out.contains(&at.key(field)) => return None,
            What::MissingField(field) => (at.key(field), "is required".to_string()),
            What::UnknownField { field, expected } => {
                let what = match at.parent() {
                    Some(p) if p.is_root() => "section",
                    _ => "field",
                };
                let message = match closest(&field, expected) {
                    Some(near) => format!("unknown {what} `{field}`; did you mean `{near}`?"),
                    None => format!(
                        "unknown {what} `{field}`; expected {}",
                        either(expected, |k| format!("`{k}`"))
                    ),
                };
                (at, message)
            }
            What::Message(message) => (at, message),
        };
        Some(Refusal { key, span, message })
    }
}

impl de::Error for DeError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        DeError::new(What::Message(msg.to_string()))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::new(What::UnknownField {
            field: field.to_string(),
            expected,
        })
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::new(What::MissingField(field))
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.what {
            What::UnknownField { field, .. } => write!(f, "unknown field `{field}`"),
            What::MissingField(field) => write!(f, "missing field `{field}`"),
            What::Message(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DeError {}

/// One value of the document, at its path.
struct Node<'a, 'i> {
    value: &'a DeValue<'i>,
    path: KeyPath,
    left_out: &'a BTreeSet<KeyPath>,
}

impl<'de> de::Deserializer<'de> for Node<'_, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            DeValue::String(s) => visitor.visit_str(s),
            DeValue::Integer(i) => {
                if let Ok(n) = i64::from_str_radix(i.as_str(), i.radix()) {
                    visitor.visit_i64(n)
                } else if let Ok(n) = u64::from_str_radix(i.as_str(), i.radix()) {
                    visitor.visit_u64(n)
                } else {
                    Err(de::Error::custom(format!("{i} is too large a number")))
                }
            }
            // `inf` and `nan` are TOML floats (the checks refuse them); `1e999` overflows.
            DeValue::Float(x) => match x.as_str().parse::<f64>() {
                Ok(v) if v.is_finite() || is_inf_or_nan(x.as_str()) => visitor.visit_f64(v),
                _ => Err(de::Error::custom(format!("{x} is too large a number"))),
            },
            DeValue::Boolean(b) => visitor.visit_bool(*b),
            DeValue::Datetime(_) => Err(de::Error::invalid_type(
                Unexpected::Other("a date-time"),
                &visitor,
            )),
            DeValue::Array(items) => visitor.visit_seq(Seq {
                items: items.iter().enumerate(),
                path: self.path,
                left_out: self.left_out,
            }),
            DeValue::Table(table) => {
                visitor.visit_map(Map::new(table, self.path, self.left_out, false))
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // TOML has no null: a key that is there is `Some`.
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.value {
            DeValue::Table(table) => {
                visitor.visit_map(Map::new(table, self.path, self.left_out, true))
            }
            other => Err(not_a("a table", other)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            DeValue::Table(_) => self.deserialize_any(visitor),
            other => Err(not_a("a table", other)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            DeValue::Array(_) => self.deserialize_any(visitor),
            other => Err(not_a("an array", other)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.value {
            DeValue::String(s) => visitor.visit_enum(s.as_ref().into_deserializer()),
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

fn is_inf_or_nan(literal: &str) -> bool {
    matches!(literal.trim_start_matches(['+', '-']), "inf" | "nan")
}

/// `must be a table, not an integer`: a value of the wrong shape.
fn not_a(wanted: &str, found: &DeValue<'_>) -> DeError {
    let found = match found {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    };
    de::Error::custom(format!("must be {wanted}, not {found}"))
}

/// The entries of a table. For a struct (`is_struct`) an error inside a field leaves that field
/// out of the next attempt; for a map the error travels up to the struct field holding it.
struct Map<'a, 'i> {
    entries: toml::map::Iter<'a, Spanned<DeString<'i>>, Spanned<DeValue<'i>>>,
    path: KeyPath,
    left_out: &'a BTreeSet<KeyPath>,
    is_struct: bool,
    value: Option<(&'a Spanned<DeValue<'i>>, KeyPath)>,
}

impl<'a, 'i> Map<'a, 'i> {
    fn new(
        table: &'a DeTable<'i>,
        path: KeyPath,
        left_out: &'a BTreeSet<KeyPath>,
        is_struct: bool,
    ) -> Self {
        Map {
            entries: table.iter(),
            path,
            left_out,
            is_struct,
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Map<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        for (key, value) in self.entries.by_ref() {
            let path = self.path.key(key.get_ref());
            if self.left_out.contains(&path) {
                continue;
            }
            // Only a struct refuses a key (an unknown field): leave that key out.
            let name: &str = key.get_ref();
            let k = seed
                .deserialize(name.into_deserializer())
                .map_err(|e: DeError| e.at(&path, key.span()).skip(&path))?;
            self.value = Some((value, path));
            return Ok(Some(k));
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (value, path) = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a value was asked for before its key"))?;
        let node = Node {
            value: value.get_ref(),
            path: path.clone(),
            left_out: self.left_out,
        };
        seed.deserialize(node).map_err(|e| {
            let e = e.at(&path, value.span());
            if self.is_struct {
                e.skip(&path)
            } else {
                e
            }
        })
    }
}

/// The elements of an array.
struct Seq<'a, 'i> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Spanned<DeValue<'i>>>>,
    path: KeyPath,
    left_out: &'a BTreeSet<KeyPath>,
}

impl<'de> SeqAccess<'de> for Seq<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((i, item)) = self.items.next() else {
            return Ok(None);
        };
        let path = self.path.index(i);
        let node = Node {
            value: item.get_ref(),
            path: path.clone(),
            left_out: self.left_out,
        };
        seed.deserialize(node)
            .map(Some)
            .map_err(|e| e.at(&path, item.span()))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}
