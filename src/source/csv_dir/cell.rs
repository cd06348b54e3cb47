//! One cell of a CSV row as serde sees it, so that a row deserializes through the same
//! lenient field parsers as a JSON record, and a failure can name its column.

use serde::de::value::Error as CellError;
use serde::de::{self, IntoDeserializer, Visitor};

/// One cell of a row as serde reads it: its text, or nothing when it is empty (the
/// contract's "an empty cell is null"). Every value is text here; the model's lenient
/// parsers read numbers, booleans and timestamps from it, exactly as they read them from a
/// JSON string.
#[derive(Clone, Copy)]
pub(super) struct Cell<'a>(pub(super) &'a str);

impl<'de> de::Deserializer<'de> for Cell<'de> {
    type Error = CellError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CellError> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CellError> {
        if self.0.is_empty() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, CellError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, CellError> {
        visitor.visit_enum(IntoDeserializer::<CellError>::into_deserializer(self.0))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, CellError> for Cell<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}
