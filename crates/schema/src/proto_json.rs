//! Proto3 JSON, read straight into the generated types of `proto/results.proto` (serde, derived
//! by `build.rs`): `summary.json` is read by every report and history import, and the generic
//! reader (prost-reflect's `DynamicMessage`, then a transcode) spent 2 ms on a 10-stage summary,
//! two thirds of an import. These accept what proto3 JSON allows for each field's type — numbers
//! or numeric strings for integers, `"NaN"`, `"Infinity"`, `"-Infinity"` for floats, `null` as the
//! default — and `build.rs` names one for every field. A test reads the same texts both ways.

use std::{collections::HashMap, fmt, marker::PhantomData};

use serde::{
    Deserialize, Deserializer,
    de::{self, Visitor},
};

/// Any field whose `null` means its default (strings, lists, maps, messages in maps).
pub fn or_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

struct Float;

impl Visitor<'_> for Float {
    type Value = Option<f64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match v {
            "NaN" => Ok(Some(f64::NAN)),
            "Infinity" => Ok(Some(f64::INFINITY)),
            "-Infinity" => Ok(Some(f64::NEG_INFINITY)),
            s => s.parse().map(Some).map_err(|_| E::invalid_value(de::Unexpected::Str(s), &self)),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A `double` or `float`.
pub fn float<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(Float).map(Option::unwrap_or_default)
}

/// An `optional double`: absent or `null` is `None`.
pub fn optional_float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_any(Float)
}

struct Integer<T>(PhantomData<T>);

impl<T: TryFrom<u64> + TryFrom<i64> + Default> Visitor<'_> for Integer<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer in range (a number or a string)")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        if v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15 {
            self.visit_i64(v as i64)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        match (v.parse::<u64>(), v.parse::<i64>()) {
            (Ok(n), _) => self.visit_u64(n),
            (_, Ok(n)) => self.visit_i64(n),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }
}

/// Any integer type (`uint64`, `int32`, …).
pub fn integer<'de, D: Deserializer<'de>, T: TryFrom<u64> + TryFrom<i64> + Default>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(Integer(PhantomData))
}

/// A `map<string, uint64>` (its values as integers are read).
pub fn integer_map<'de, D: Deserializer<'de>>(d: D) -> Result<HashMap<String, u64>, D::Error> {
    #[derive(Deserialize)]
    struct N(#[serde(deserialize_with = "integer")] u64);
    let m: Option<HashMap<String, N>> = Option::deserialize(d)?;
    Ok(m.unwrap_or_default().into_iter().map(|(k, N(v))| (k, v)).collect())
}
