//! [`Dynamic`]: a Terraform value of any type, and its two wire encodings
//! (msgpack, which Terraform uses for every value it sends, and JSON, which it
//! uses for stored state). Both need the value's [`Type`] to decode and encode.
//!
//! Unknown values ("known after apply") only exist in msgpack, as an
//! extension value: this crate writes extension type 0 and reads any
//! extension type as unknown (Terraform may send refined unknowns, type 12,
//! whose refinements this crate does not keep).

use std::collections::BTreeMap;
use std::fmt;

use rmp::Marker;
use serde_json::Value as Json;

use crate::path::AttributePath;
use crate::types::Type;

/// A Terraform number. Terraform numbers are arbitrary-precision decimals;
/// this keeps integers exact and falls back to `f64`, or to the decimal text
/// for values that fit neither.
#[derive(Debug, Clone)]
pub enum Number {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer above `i64::MAX`.
    UInt(u64),
    /// A binary floating-point value.
    Float(f64),
    /// A decimal that fits neither, as text.
    Big(String),
}

impl Number {
    /// The value as `i64`, if it is an integer in range.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(*i),
            Number::UInt(u) => i64::try_from(*u).ok(),
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            Number::Float(_) => None,
            Number::Big(s) => s.parse().ok(),
        }
    }

    /// The value as `f64` (possibly rounded).
    pub fn as_f64(&self) -> f64 {
        match self {
            Number::Int(i) => *i as f64,
            Number::UInt(u) => *u as f64,
            Number::Float(f) => *f,
            Number::Big(s) => s.parse().unwrap_or(f64::NAN),
        }
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        match (self.as_i64(), other.as_i64()) {
            (Some(a), Some(b)) => a == b,
            _ => match (self, other) {
                (Number::Big(a), Number::Big(b)) => a == b,
                (Number::UInt(a), Number::UInt(b)) => a == b,
                _ => self.as_f64() == other.as_f64(),
            },
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::UInt(u) => write!(f, "{u}"),
            Number::Float(x) => write!(f, "{x}"),
            Number::Big(s) => f.write_str(s),
        }
    }
}

impl From<i64> for Number {
    fn from(i: i64) -> Self {
        Number::Int(i)
    }
}

impl From<u64> for Number {
    fn from(u: u64) -> Self {
        i64::try_from(u).map_or(Number::UInt(u), Number::Int)
    }
}

impl From<f64> for Number {
    fn from(f: f64) -> Self {
        Number::Float(f)
    }
}

/// A Terraform value. The variant says which shape it has; the matching
/// [`Type`] (from the schema) is needed to encode or decode it.
///
/// Objects and maps share a representation (string-keyed maps); lists, sets
/// and tuples are all vectors. Sets compare equal regardless of order.
#[derive(Debug, Clone)]
pub enum Dynamic {
    /// An absent value.
    Null,
    /// A value that is not known until apply.
    Unknown,
    /// `bool`
    Bool(bool),
    /// `number`
    Number(Number),
    /// `string`
    String(String),
    /// `list(T)`
    List(Vec<Dynamic>),
    /// `set(T)`
    Set(Vec<Dynamic>),
    /// `map(T)`
    Map(BTreeMap<String, Dynamic>),
    /// `object({...})`
    Object(BTreeMap<String, Dynamic>),
    /// `tuple([...])`
    Tuple(Vec<Dynamic>),
}

impl PartialEq for Dynamic {
    fn eq(&self, other: &Self) -> bool {
        use Dynamic::*;
        match (self, other) {
            (Null, Null) | (Unknown, Unknown) => true,
            (Bool(a), Bool(b)) => a == b,
            (Number(a), Number(b)) => a == b,
            (String(a), String(b)) => a == b,
            (List(a), List(b)) | (Tuple(a), Tuple(b)) => a == b,
            (Set(a), Set(b)) => a.len() == b.len() && a.iter().all(|x| b.contains(x)),
            (Map(a), Map(b)) | (Object(a), Object(b)) => a == b,
            _ => false,
        }
    }
}

impl Dynamic {
    /// A string value.
    pub fn string(s: impl Into<String>) -> Self {
        Dynamic::String(s.into())
    }

    /// An object value from `(name, value)` pairs.
    pub fn object<K: Into<String>>(attrs: impl IntoIterator<Item = (K, Dynamic)>) -> Self {
        Dynamic::Object(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// True for [`Dynamic::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Dynamic::Null)
    }

    /// True for [`Dynamic::Unknown`] (not looking inside).
    pub fn is_unknown(&self) -> bool {
        matches!(self, Dynamic::Unknown)
    }

    /// True if no unknown value appears anywhere inside.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Dynamic::Unknown => false,
            Dynamic::List(v) | Dynamic::Set(v) | Dynamic::Tuple(v) => {
                v.iter().all(Dynamic::is_wholly_known)
            }
            Dynamic::Map(m) | Dynamic::Object(m) => m.values().all(Dynamic::is_wholly_known),
            _ => true,
        }
    }

    /// The attribute `name` of an object (or element of a map).
    pub fn get(&self, name: &str) -> Option<&Dynamic> {
        match self {
            Dynamic::Object(m) | Dynamic::Map(m) => m.get(name),
            _ => None,
        }
    }

    /// Mutable access to attribute `name` of an object (or map element).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Dynamic> {
        match self {
            Dynamic::Object(m) | Dynamic::Map(m) => m.get_mut(name),
            _ => None,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Dynamic::String(s) => Some(s),
            _ => None,
        }
    }

    /// A best-effort type for this value, used only to tag values stored in
    /// `dynamic` attributes.
    pub fn infer_type(&self) -> Type {
        match self {
            Dynamic::Null | Dynamic::Unknown => Type::Dynamic,
            Dynamic::Bool(_) => Type::Bool,
            Dynamic::Number(_) => Type::Number,
            Dynamic::String(_) => Type::String,
            Dynamic::List(v) => Type::list(v.first().map_or(Type::Dynamic, Dynamic::infer_type)),
            Dynamic::Set(v) => Type::set(v.first().map_or(Type::Dynamic, Dynamic::infer_type)),
            Dynamic::Map(m) => {
                Type::map(m.values().next().map_or(Type::Dynamic, Dynamic::infer_type))
            }
            Dynamic::Object(m) => {
                Type::Object(m.iter().map(|(k, v)| (k.clone(), v.infer_type())).collect())
            }
            Dynamic::Tuple(v) => Type::Tuple(v.iter().map(Dynamic::infer_type).collect()),
        }
    }
}

impl From<bool> for Dynamic {
    fn from(b: bool) -> Self {
        Dynamic::Bool(b)
    }
}

impl From<&str> for Dynamic {
    fn from(s: &str) -> Self {
        Dynamic::String(s.to_owned())
    }
}

impl From<String> for Dynamic {
    fn from(s: String) -> Self {
        Dynamic::String(s)
    }
}

impl From<i64> for Dynamic {
    fn from(i: i64) -> Self {
        Dynamic::Number(Number::Int(i))
    }
}

impl From<Number> for Dynamic {
    fn from(n: Number) -> Self {
        Dynamic::Number(n)
    }
}

/// A value that does not fit its type, or bytes that are not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", if .path.is_root() { String::new() } else { format!(" (at {})", .path) })]
pub struct ValueError {
    /// Where in the value.
    pub path: AttributePath,
    /// What is wrong.
    pub message: String,
}

impl ValueError {
    fn new(path: &AttributePath, message: impl Into<String>) -> Self {
        Self {
            path: path.clone(),
            message: message.into(),
        }
    }
}

/// The msgpack bytes of an unknown value: fixext1, type 0, one zero byte.
const UNKNOWN_MSGPACK: [u8; 3] = [0xd4, 0, 0];

impl Dynamic {
    /// Encodes as msgpack, the way Terraform expects a value of type `ty`.
    pub fn to_msgpack(&self, ty: &Type) -> Result<Vec<u8>, ValueError> {
        let mut out = Vec::new();
        encode_msgpack(self, ty, &AttributePath::root(), &mut out)?;
        Ok(out)
    }

    /// Decodes msgpack bytes holding a value of type `ty`.
    pub fn from_msgpack(bytes: &[u8], ty: &Type) -> Result<Self, ValueError> {
        let mut rd = bytes;
        let root = AttributePath::root();
        let value = decode_msgpack(&mut rd, ty, &root)?;
        if !rd.is_empty() {
            return Err(ValueError::new(&root, "trailing bytes after msgpack value"));
        }
        Ok(value)
    }

    /// Encodes as JSON (Terraform's state format). Unknown values have no
    /// JSON form and are an error.
    pub fn to_json(&self, ty: &Type) -> Result<Json, ValueError> {
        encode_json(self, ty, &AttributePath::root())
    }

    /// Decodes JSON holding a value of type `ty`. Object attributes missing
    /// from the JSON read as null and extra ones are ignored, as stored state
    /// written by an older schema needs.
    pub fn from_json(json: &Json, ty: &Type) -> Result<Self, ValueError> {
        decode_json(json, ty, &AttributePath::root())
    }
}

fn wfail<E: fmt::Debug>(path: &AttributePath, e: E) -> ValueError {
    ValueError::new(path, format!("msgpack write failed: {e:?}"))
}

fn mismatch(path: &AttributePath, ty: &Type, value: &Dynamic) -> ValueError {
    ValueError::new(path, format!("value {value:?} does not fit type {ty}"))
}

fn encode_msgpack(
    value: &Dynamic,
    ty: &Type,
    path: &AttributePath,
    out: &mut Vec<u8>,
) -> Result<(), ValueError> {
    match value {
        Dynamic::Unknown => {
            out.extend_from_slice(&UNKNOWN_MSGPACK);
            return Ok(());
        }
        Dynamic::Null => {
            rmp::encode::write_nil(out).map_err(|e| wfail(path, e))?;
            return Ok(());
        }
        _ => {}
    }
    match (ty, value) {
        (Type::Dynamic, v) => {
            // Dynamic values travel as [type JSON, value].
            let concrete = v.infer_type();
            rmp::encode::write_array_len(out, 2).map_err(|e| wfail(path, e))?;
            rmp::encode::write_bin(out, &concrete.to_json_bytes()).map_err(|e| wfail(path, e))?;
            encode_msgpack(v, &concrete, path, out)?;
        }
        (Type::Bool, Dynamic::Bool(b)) => {
            rmp::encode::write_bool(out, *b).map_err(|e| wfail(path, e))?;
        }
        (Type::Number, Dynamic::Number(n)) => match n {
            Number::Int(i) => {
                rmp::encode::write_sint(out, *i).map_err(|e| wfail(path, e))?;
            }
            Number::UInt(u) => {
                rmp::encode::write_uint(out, *u).map_err(|e| wfail(path, e))?;
            }
            Number::Float(f) => rmp::encode::write_f64(out, *f).map_err(|e| wfail(path, e))?,
            Number::Big(s) => rmp::encode::write_str(out, s).map_err(|e| wfail(path, e))?,
        },
        (Type::String, Dynamic::String(s)) => {
            rmp::encode::write_str(out, s).map_err(|e| wfail(path, e))?
        }
        (Type::List(et), Dynamic::List(items)) | (Type::Set(et), Dynamic::Set(items)) => {
            rmp::encode::write_array_len(out, len_u32(items.len(), path)?)
                .map_err(|e| wfail(path, e))?;
            for (i, item) in items.iter().enumerate() {
                encode_msgpack(item, et, &path.clone().index(i as i64), out)?;
            }
        }
        (Type::Tuple(types), Dynamic::Tuple(items)) if types.len() == items.len() => {
            rmp::encode::write_array_len(out, len_u32(items.len(), path)?)
                .map_err(|e| wfail(path, e))?;
            for (i, (item, et)) in items.iter().zip(types).enumerate() {
                encode_msgpack(item, et, &path.clone().index(i as i64), out)?;
            }
        }
        (Type::Map(et), Dynamic::Map(items)) => {
            rmp::encode::write_map_len(out, len_u32(items.len(), path)?)
                .map_err(|e| wfail(path, e))?;
            for (k, item) in items {
                rmp::encode::write_str(out, k).map_err(|e| wfail(path, e))?;
                encode_msgpack(item, et, &path.clone().key(k.clone()), out)?;
            }
        }
        (Type::Object(types), Dynamic::Object(attrs)) => {
            if let Some(extra) = attrs.keys().find(|k| !types.contains_key(*k)) {
                return Err(ValueError::new(
                    path,
                    format!("attribute {extra:?} is not part of type {ty}"),
                ));
            }
            rmp::encode::write_map_len(out, len_u32(types.len(), path)?)
                .map_err(|e| wfail(path, e))?;
            for (k, at) in types {
                rmp::encode::write_str(out, k).map_err(|e| wfail(path, e))?;
                let attr = attrs.get(k).unwrap_or(&Dynamic::Null);
                encode_msgpack(attr, at, &path.clone().attr(k.clone()), out)?;
            }
        }
        _ => return Err(mismatch(path, ty, value)),
    }
    Ok(())
}

fn len_u32(len: usize, path: &AttributePath) -> Result<u32, ValueError> {
    u32::try_from(len).map_err(|_| ValueError::new(path, "collection too large"))
}

fn peek(rd: &[u8], path: &AttributePath) -> Result<Marker, ValueError> {
    rd.first()
        .map(|b| Marker::from_u8(*b))
        .ok_or_else(|| ValueError::new(path, "unexpected end of msgpack data"))
}

fn rfail<E: fmt::Debug>(path: &AttributePath, e: E) -> ValueError {
    ValueError::new(path, format!("invalid msgpack: {e:?}"))
}

fn take<'a>(rd: &mut &'a [u8], n: usize, path: &AttributePath) -> Result<&'a [u8], ValueError> {
    if rd.len() < n {
        return Err(ValueError::new(path, "unexpected end of msgpack data"));
    }
    let (head, tail) = rd.split_at(n);
    *rd = tail;
    Ok(head)
}

/// Skips an extension value (Terraform's unknown marker) of any type.
fn skip_ext(rd: &mut &[u8], marker: Marker, path: &AttributePath) -> Result<(), ValueError> {
    take(rd, 1, path)?;
    let data_len = match marker {
        Marker::FixExt1 => 1,
        Marker::FixExt2 => 2,
        Marker::FixExt4 => 4,
        Marker::FixExt8 => 8,
        Marker::FixExt16 => 16,
        Marker::Ext8 => take(rd, 1, path)?[0] as usize,
        Marker::Ext16 => {
            u16::from_be_bytes([take(rd, 1, path)?[0], take(rd, 1, path)?[0]]) as usize
        }
        Marker::Ext32 => {
            let b = take(rd, 4, path)?;
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        }
        _ => unreachable!("skip_ext called on a non-extension marker"),
    };
    take(rd, 1 + data_len, path)?; // type byte + payload
    Ok(())
}

fn is_ext(marker: Marker) -> bool {
    matches!(
        marker,
        Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32
    )
}

fn read_string(rd: &mut &[u8], path: &AttributePath) -> Result<String, ValueError> {
    let len = rmp::decode::read_str_len(rd).map_err(|e| rfail(path, e))? as usize;
    let bytes = take(rd, len, path)?;
    String::from_utf8(bytes.to_vec()).map_err(|e| rfail(path, e))
}

fn read_bytes_or_str(rd: &mut &[u8], path: &AttributePath) -> Result<Vec<u8>, ValueError> {
    let len = match peek(rd, path)? {
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
            rmp::decode::read_bin_len(rd).map_err(|e| rfail(path, e))?
        }
        _ => rmp::decode::read_str_len(rd).map_err(|e| rfail(path, e))?,
    };
    Ok(take(rd, len as usize, path)?.to_vec())
}

fn decode_msgpack(rd: &mut &[u8], ty: &Type, path: &AttributePath) -> Result<Dynamic, ValueError> {
    let marker = peek(rd, path)?;
    if marker == Marker::Null {
        take(rd, 1, path)?;
        return Ok(Dynamic::Null);
    }
    if is_ext(marker) {
        skip_ext(rd, marker, path)?;
        return Ok(Dynamic::Unknown);
    }
    Ok(match ty {
        Type::Dynamic => {
            let len = rmp::decode::read_array_len(rd).map_err(|e| rfail(path, e))?;
            if len != 2 {
                return Err(ValueError::new(path, "dynamic value must be [type, value]"));
            }
            let ty_json = read_bytes_or_str(rd, path)?;
            let concrete = Type::from_json_bytes(&ty_json)
                .map_err(|e| ValueError::new(path, e.to_string()))?;
            decode_msgpack(rd, &concrete, path)?
        }
        Type::Bool => Dynamic::Bool(rmp::decode::read_bool(rd).map_err(|e| rfail(path, e))?),
        Type::Number => Dynamic::Number(match marker {
            Marker::F32 => {
                Number::Float(rmp::decode::read_f32(rd).map_err(|e| rfail(path, e))? as f64)
            }
            Marker::F64 => Number::Float(rmp::decode::read_f64(rd).map_err(|e| rfail(path, e))?),
            Marker::U64 => Number::from(rmp::decode::read_u64(rd).map_err(|e| rfail(path, e))?),
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                let text = read_string(rd, path)?;
                parse_number_text(&text)
                    .ok_or_else(|| ValueError::new(path, format!("invalid number {text:?}")))?
            }
            _ => Number::Int(rmp::decode::read_int(rd).map_err(|e| rfail(path, e))?),
        }),
        Type::String => Dynamic::String(read_string(rd, path)?),
        Type::List(et) | Type::Set(et) => {
            let len = rmp::decode::read_array_len(rd).map_err(|e| rfail(path, e))?;
            let items = (0..len)
                .map(|i| decode_msgpack(rd, et, &path.clone().index(i as i64)))
                .collect::<Result<Vec<_>, _>>()?;
            if matches!(ty, Type::Set(_)) {
                Dynamic::Set(items)
            } else {
                Dynamic::List(items)
            }
        }
        Type::Tuple(types) => {
            let len = rmp::decode::read_array_len(rd).map_err(|e| rfail(path, e))? as usize;
            if len != types.len() {
                return Err(ValueError::new(
                    path,
                    "tuple length does not match its type",
                ));
            }
            Dynamic::Tuple(
                types
                    .iter()
                    .enumerate()
                    .map(|(i, et)| decode_msgpack(rd, et, &path.clone().index(i as i64)))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Map(et) => {
            let len = rmp::decode::read_map_len(rd).map_err(|e| rfail(path, e))?;
            let mut items = BTreeMap::new();
            for _ in 0..len {
                let k = read_string(rd, path)?;
                let v = decode_msgpack(rd, et, &path.clone().key(k.clone()))?;
                items.insert(k, v);
            }
            Dynamic::Map(items)
        }
        Type::Object(types) => {
            let len = rmp::decode::read_map_len(rd).map_err(|e| rfail(path, e))?;
            let mut attrs = BTreeMap::new();
            for _ in 0..len {
                let k = read_string(rd, path)?;
                let at = types.get(&k).ok_or_else(|| {
                    ValueError::new(path, format!("unexpected attribute {k:?} for type {ty}"))
                })?;
                let v = decode_msgpack(rd, at, &path.clone().attr(k.clone()))?;
                attrs.insert(k, v);
            }
            for k in types.keys() {
                attrs.entry(k.clone()).or_insert(Dynamic::Null);
            }
            Dynamic::Object(attrs)
        }
    })
}

fn parse_number_text(text: &str) -> Option<Number> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(Number::Int(i));
    }
    if let Ok(u) = text.parse::<u64>() {
        return Some(Number::UInt(u));
    }
    let f: f64 = text.parse().ok()?;
    if f.is_finite() && f.to_string() == text {
        Some(Number::Float(f))
    } else {
        Some(Number::Big(text.to_owned()))
    }
}

fn encode_json(value: &Dynamic, ty: &Type, path: &AttributePath) -> Result<Json, ValueError> {
    Ok(match (ty, value) {
        (_, Dynamic::Null) => Json::Null,
        (_, Dynamic::Unknown) => {
            return Err(ValueError::new(
                path,
                "unknown values cannot be encoded as JSON",
            ));
        }
        (Type::Dynamic, v) => {
            let concrete = v.infer_type();
            serde_json::json!({
                "value": encode_json(v, &concrete, path)?,
                "type": concrete.to_json(),
            })
        }
        (Type::Bool, Dynamic::Bool(b)) => Json::Bool(*b),
        (Type::Number, Dynamic::Number(n)) => match n {
            Number::Int(i) => Json::from(*i),
            Number::UInt(u) => Json::from(*u),
            Number::Float(f) => serde_json::Number::from_f64(*f)
                .map(Json::Number)
                .ok_or_else(|| ValueError::new(path, "number is not finite"))?,
            Number::Big(s) => serde_json::from_str(s)
                .map_err(|_| ValueError::new(path, format!("invalid number {s:?}")))?,
        },
        (Type::String, Dynamic::String(s)) => Json::String(s.clone()),
        (Type::List(et), Dynamic::List(items)) | (Type::Set(et), Dynamic::Set(items)) => {
            Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| encode_json(v, et, &path.clone().index(i as i64)))
                    .collect::<Result<_, _>>()?,
            )
        }
        (Type::Tuple(types), Dynamic::Tuple(items)) if types.len() == items.len() => Json::Array(
            items
                .iter()
                .zip(types)
                .enumerate()
                .map(|(i, (v, et))| encode_json(v, et, &path.clone().index(i as i64)))
                .collect::<Result<_, _>>()?,
        ),
        (Type::Map(et), Dynamic::Map(items)) => Json::Object(
            items
                .iter()
                .map(|(k, v)| Ok((k.clone(), encode_json(v, et, &path.clone().key(k.clone()))?)))
                .collect::<Result<_, ValueError>>()?,
        ),
        (Type::Object(types), Dynamic::Object(attrs)) => Json::Object(
            types
                .iter()
                .map(|(k, at)| {
                    let v = attrs.get(k).unwrap_or(&Dynamic::Null);
                    Ok((
                        k.clone(),
                        encode_json(v, at, &path.clone().attr(k.clone()))?,
                    ))
                })
                .collect::<Result<_, ValueError>>()?,
        ),
        _ => return Err(mismatch(path, ty, value)),
    })
}

fn decode_json(json: &Json, ty: &Type, path: &AttributePath) -> Result<Dynamic, ValueError> {
    let wrong = || ValueError::new(path, format!("JSON {json} does not fit type {ty}"));
    Ok(match (ty, json) {
        (_, Json::Null) => Dynamic::Null,
        (Type::Dynamic, Json::Object(o)) => {
            let concrete = o.get("type").ok_or_else(wrong).and_then(|t| {
                Type::from_json(t).map_err(|e| ValueError::new(path, e.to_string()))
            })?;
            decode_json(o.get("value").unwrap_or(&Json::Null), &concrete, path)?
        }
        (Type::Bool, Json::Bool(b)) => Dynamic::Bool(*b),
        (Type::Number, Json::Number(n)) => Dynamic::Number(if let Some(i) = n.as_i64() {
            Number::Int(i)
        } else if let Some(u) = n.as_u64() {
            Number::UInt(u)
        } else {
            Number::Float(n.as_f64().ok_or_else(wrong)?)
        }),
        (Type::String, Json::String(s)) => Dynamic::String(s.clone()),
        (Type::List(et) | Type::Set(et), Json::Array(items)) => {
            let items = items
                .iter()
                .enumerate()
                .map(|(i, v)| decode_json(v, et, &path.clone().index(i as i64)))
                .collect::<Result<Vec<_>, _>>()?;
            if matches!(ty, Type::Set(_)) {
                Dynamic::Set(items)
            } else {
                Dynamic::List(items)
            }
        }
        (Type::Tuple(types), Json::Array(items)) if types.len() == items.len() => Dynamic::Tuple(
            items
                .iter()
                .zip(types)
                .enumerate()
                .map(|(i, (v, et))| decode_json(v, et, &path.clone().index(i as i64)))
                .collect::<Result<_, _>>()?,
        ),
        (Type::Map(et), Json::Object(items)) => Dynamic::Map(
            items
                .iter()
                .map(|(k, v)| Ok((k.clone(), decode_json(v, et, &path.clone().key(k.clone()))?)))
                .collect::<Result<_, ValueError>>()?,
        ),
        (Type::Object(types), Json::Object(attrs)) => Dynamic::Object(
            types
                .iter()
                .map(|(k, at)| {
                    let v = attrs.get(k).unwrap_or(&Json::Null);
                    Ok((
                        k.clone(),
                        decode_json(v, at, &path.clone().attr(k.clone()))?,
                    ))
                })
                .collect::<Result<_, ValueError>>()?,
        ),
        _ => return Err(wrong()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(value: &Dynamic, ty: &Type) -> Dynamic {
        let bytes = value.to_msgpack(ty).expect("encode");
        Dynamic::from_msgpack(&bytes, ty).expect("decode")
    }

    fn nested_type() -> Type {
        Type::object([
            ("name", Type::String),
            ("count", Type::Number),
            ("enabled", Type::Bool),
            ("tags", Type::map(Type::String)),
            ("scopes", Type::set(Type::String)),
            (
                "rules",
                Type::list(Type::object([
                    ("id", Type::String),
                    ("weight", Type::Number),
                ])),
            ),
            ("pair", Type::Tuple(vec![Type::String, Type::Number])),
        ])
    }

    fn nested_value() -> Dynamic {
        Dynamic::object([
            ("name", Dynamic::from("tok")),
            ("count", Dynamic::from(3)),
            ("enabled", Dynamic::Unknown),
            (
                "tags",
                Dynamic::Map(
                    [
                        ("team".to_owned(), Dynamic::Unknown),
                        ("env".to_owned(), "prod".into()),
                    ]
                    .into(),
                ),
            ),
            (
                "scopes",
                Dynamic::Set(vec!["a:read".into(), Dynamic::Unknown]),
            ),
            (
                "rules",
                Dynamic::List(vec![
                    Dynamic::object([
                        ("id", Dynamic::from("r1")),
                        ("weight", Dynamic::Number(Number::Float(0.5))),
                    ]),
                    Dynamic::object([("id", Dynamic::Unknown), ("weight", Dynamic::Null)]),
                ]),
            ),
            ("pair", Dynamic::Tuple(vec!["x".into(), Dynamic::from(-7)])),
        ])
    }

    #[test]
    fn unknown_is_msgpack_extension_zero() {
        let bytes = Dynamic::Unknown.to_msgpack(&Type::String).unwrap();
        assert_eq!(bytes, vec![0xd4, 0x00, 0x00]);
        assert_eq!(
            Dynamic::from_msgpack(&bytes, &Type::String).unwrap(),
            Dynamic::Unknown
        );
    }

    #[test]
    fn refined_unknowns_from_terraform_read_as_unknown() {
        // ext 12 carrying a one-entry refinement map, as newer Terraform sends.
        let bytes = [0xc7, 0x03, 0x0c, 0x81, 0x01, 0xc3];
        assert_eq!(
            Dynamic::from_msgpack(&bytes, &Type::String).unwrap(),
            Dynamic::Unknown
        );
    }

    #[test]
    fn nested_values_with_unknowns_survive_msgpack() {
        let value = nested_value();
        assert_eq!(round_trip(&value, &nested_type()), value);
        assert!(!value.is_wholly_known());
    }

    #[test]
    fn null_and_unknown_whole_objects_survive_msgpack() {
        assert_eq!(round_trip(&Dynamic::Null, &nested_type()), Dynamic::Null);
        assert_eq!(
            round_trip(&Dynamic::Unknown, &nested_type()),
            Dynamic::Unknown
        );
    }

    #[test]
    fn missing_object_attributes_encode_as_null() {
        let ty = Type::object([("a", Type::String), ("b", Type::Bool)]);
        let value = Dynamic::object([("a", Dynamic::from("x"))]);
        let back = round_trip(&value, &ty);
        assert_eq!(back.get("b"), Some(&Dynamic::Null));
    }

    #[test]
    fn numbers_keep_integers_exact_and_accept_big_decimals() {
        for n in [
            Number::Int(i64::MIN),
            Number::Int(0),
            Number::UInt(u64::MAX),
            Number::Float(1.25),
        ] {
            let v = Dynamic::Number(n);
            assert_eq!(round_trip(&v, &Type::Number), v);
        }
        let mut bytes = Vec::new();
        rmp::encode::write_str(&mut bytes, "123456789012345678901234567890").unwrap();
        let big = Dynamic::from_msgpack(&bytes, &Type::Number).unwrap();
        assert_eq!(
            big,
            Dynamic::Number(Number::Big("123456789012345678901234567890".into()))
        );
    }

    #[test]
    fn sets_compare_without_order() {
        assert_eq!(
            Dynamic::Set(vec!["a".into(), "b".into()]),
            Dynamic::Set(vec!["b".into(), "a".into()])
        );
        assert_ne!(
            Dynamic::List(vec!["a".into(), "b".into()]),
            Dynamic::List(vec!["b".into(), "a".into()])
        );
    }

    #[test]
    fn dynamic_typed_values_carry_their_type() {
        let ty = Type::object([("any", Type::Dynamic)]);
        let value = Dynamic::object([(
            "any",
            Dynamic::List(vec![Dynamic::from(1), Dynamic::from(2)]),
        )]);
        assert_eq!(round_trip(&value, &ty), value);
        let json = value.to_json(&ty).unwrap();
        assert_eq!(
            json,
            json!({"any": {"value": [1, 2], "type": ["list", "number"]}})
        );
        assert_eq!(Dynamic::from_json(&json, &ty).unwrap(), value);
    }

    #[test]
    fn type_mismatch_names_the_path() {
        let ty = Type::object([("rules", Type::list(Type::String))]);
        let value = Dynamic::object([("rules", Dynamic::List(vec![Dynamic::Bool(true)]))]);
        let err = value.to_msgpack(&ty).unwrap_err();
        assert_eq!(err.path, AttributePath::new("rules").index(0));
    }

    #[test]
    fn json_round_trips_known_values_and_rejects_unknowns() {
        let ty = Type::object([("name", Type::String), ("tags", Type::map(Type::Number))]);
        let value = Dynamic::object([
            ("name", Dynamic::from("x")),
            (
                "tags",
                Dynamic::Map([("a".to_owned(), Dynamic::from(1))].into()),
            ),
        ]);
        let json = value.to_json(&ty).unwrap();
        assert_eq!(json, json!({"name": "x", "tags": {"a": 1}}));
        assert_eq!(Dynamic::from_json(&json, &ty).unwrap(), value);
        assert!(
            Dynamic::object([("name", Dynamic::Unknown)])
                .to_json(&ty)
                .is_err()
        );
    }

    #[test]
    fn json_state_decoding_tolerates_schema_drift() {
        let ty = Type::object([("name", Type::String), ("added", Type::Bool)]);
        let decoded = Dynamic::from_json(&json!({"name": "x", "removed": 1}), &ty).unwrap();
        assert_eq!(
            decoded,
            Dynamic::object([("name", Dynamic::from("x")), ("added", Dynamic::Null)])
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &[0xc1][..],
            &[0x92, 0x01][..],
            &[0xd4][..],
            &[0xa5, b'a'][..],
            &[][..],
        ] {
            assert!(
                Dynamic::from_msgpack(bytes, &nested_type()).is_err(),
                "{bytes:?}"
            );
        }
    }
}
