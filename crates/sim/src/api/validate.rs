//! vLLM's answers to malformed OpenAI requests, so a client sees the simulator refuse a request as
//! vLLM 0.32 does: the same status, error `type`, `param` and message.
//!
//! vLLM parses a body with CPython's `json` module (FastAPI) and validates it with pydantic, then
//! runs its own checks. The simulator reads a well-formed request with serde at once (the fast
//! path); only a body serde refuses, or one a vLLM check refuses, comes here (the slow path), where
//! it is parsed again as CPython would ([`python_json_error`]: the same message and character
//! position) and its fields checked as pydantic's lax mode does ([`check_fields`]: `"5"` is an
//! integer, `"yes"` a boolean, `3.0` an integer, `3.5` not). What pydantic accepts is coerced, so
//! the request then reads with serde.
//!
//! The error envelope is vLLM's `{"error": {"message", "type", "param", "code"}}`: pydantic's
//! errors have `type` "Bad Request" and a message `N validation error(s):` listing Python `repr`s of
//! each error; vLLM's own checks have `type` "BadRequestError" and, when they name a parameter, a
//! message ending ` (parameter=NAME, value=VALUE)`.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::SimError;

/// `type` of pydantic's (FastAPI's) validation errors: the HTTP reason phrase.
pub const PYDANTIC: &str = "Bad Request";

/// A vLLM `VLLMValidationError`: `message (parameter=P, value=V)`, `param` P.
pub fn vllm_error(message: &str, param: Option<&'static str>, value: Option<&str>) -> SimError {
    let mut extras = Vec::new();
    if let Some(p) = param {
        extras.push(format!("parameter={p}"));
    }
    if let Some(v) = value {
        extras.push(format!("value={v}"));
    }
    let message = if extras.is_empty() { message.to_owned() } else { format!("{message} ({})", extras.join(", ")) };
    SimError { status: 400, message, kind: "BadRequestError", param: param.map(Cow::Borrowed) }
}

/// A plain `ValueError` of vLLM's serving code: 400 "BadRequestError", no parameter.
pub fn value_error(message: impl Into<String>) -> SimError {
    SimError { status: 400, message: message.into(), kind: "BadRequestError", param: None }
}

/// One pydantic error (`exc.errors()` item) as vLLM renders it.
#[derive(Debug, Clone, PartialEq)]
pub struct PyError {
    /// `type`, e.g. `int_parsing`.
    pub kind: &'static str,
    /// `loc` joined with dots, pydantic's internal markers removed (`body.max_tokens`).
    pub loc: String,
    /// `msg`.
    pub msg: &'static str,
    /// `input`, already summarised as vLLM does (a Python `str`).
    pub input: String,
    /// `ctx`, already rendered as a Python dict literal.
    pub ctx: Option<String>,
}

impl PyError {
    fn new(kind: &'static str, loc: &str, msg: &'static str, input: &Value) -> Self {
        Self { kind, loc: loc.to_owned(), msg, input: summarize(input), ctx: None }
    }

    /// `str(dict)` of the error, at most 1 000 characters.
    fn render(&self) -> String {
        let mut s = format!(
            "{{'type': {}, 'loc': {}, 'msg': {}, 'input': {}",
            py_repr(self.kind),
            py_repr(&self.loc),
            py_repr(self.msg),
            py_repr(&self.input)
        );
        if let Some(ctx) = &self.ctx {
            s.push_str(", 'ctx': ");
            s.push_str(ctx);
        }
        s.push('}');
        if s.chars().count() > 1000 {
            s = s.chars().take(1000).collect::<String>() + "...[truncated]";
        }
        s
    }
}

/// The 400 vLLM answers for pydantic errors: `param` is the first error's `loc`.
pub fn pydantic_error(errors: &[PyError]) -> SimError {
    let count = errors.len();
    let label = if count == 1 { "error" } else { "errors" };
    let mut message = format!("{count} validation {label}:\n");
    for e in errors.iter().take(10) {
        message.push_str("  ");
        message.push_str(&e.render());
        message.push('\n');
    }
    if count > 10 {
        message.push_str(&format!("  ...and {} more {label}\n", count - 10));
    }
    let message = message.trim_end().to_owned();
    SimError { status: 400, message, kind: PYDANTIC, param: errors.first().map(|e| Cow::Owned(e.loc.clone())) }
}

/// A pydantic-style error with a free-form text instead of an error dict (what vLLM's
/// `validate_json_request` raises), `param` null.
pub fn pydantic_text(text: &str) -> SimError {
    SimError { status: 400, message: format!("1 validation error:\n  {text}"), kind: PYDANTIC, param: None }
}

/// vLLM's check of the request's `Content-Type`: its media type must be `application/json`.
pub fn check_content_type(content_type: Option<&[u8]>) -> Result<(), SimError> {
    let media_type = content_type.and_then(|c| c.split(|b| *b == b';').next()).unwrap_or_default();
    if media_type.eq_ignore_ascii_case(b"application/json") {
        Ok(())
    } else {
        Err(pydantic_text("Unsupported Media Type: Only 'application/json' is allowed"))
    }
}

/// vLLM's (pydantic's) summary of an error's input: a string as it is (cut at 200 characters),
/// a container by its size, anything else by Python's `str`.
fn summarize(v: &Value) -> String {
    match v {
        Value::String(s) if s.chars().count() > 200 => s.chars().take(200).collect::<String>() + "...[truncated]",
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("<list of {} items>", a.len()),
        Value::Object(o) => format!("<dict of {} items>", o.len()),
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !(n.is_i64() || n.is_u64()) => py_float(f),
            _ => n.to_string(),
        },
    }
}

/// Python's `repr` of a string.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr` of a float (`3.0`, `0.1`, `1e-05`, `1e+16`, `inf`, `nan`).
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Shortest round-trip digits and the decimal exponent, then Python's layout: positional for
    // exponents -4..16, else d.ddde±XX.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let s = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{s}")
    } else {
        let m = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits };
        format!("{sign}{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

/// Where CPython 3.12's `json.loads` fails on `text`, and its message: `None` if it parses.
pub fn python_json_error(text: &str) -> Option<(&'static str, usize)> {
    let s: Vec<char> = text.chars().collect();
    let p = PyJson { s: &s };
    let start = p.ws(0);
    match p.value(start) {
        Err(Fail::Stop(at)) => Some(("Expecting value", at)),
        Err(Fail::Error(msg, at)) => Some((msg, at)),
        Ok(end) => {
            let end = p.ws(end);
            (end != s.len()).then_some(("Extra data", end))
        }
    }
}

enum Fail {
    /// `StopIteration(at)`: no value starts there ("Expecting value" where it surfaces).
    Stop(usize),
    /// A `JSONDecodeError`.
    Error(&'static str, usize),
}

/// CPython's C scanner (`Modules/_json.c`), enough to know where and why a document fails.
struct PyJson<'a> {
    s: &'a [char],
}

impl PyJson<'_> {
    fn at(&self, i: usize) -> Option<char> {
        self.s.get(i).copied()
    }

    fn ws(&self, mut i: usize) -> usize {
        while matches!(self.at(i), Some(' ' | '\t' | '\n' | '\r')) {
            i += 1;
        }
        i
    }

    fn literal(&self, i: usize, word: &str) -> bool {
        word.chars().enumerate().all(|(k, c)| self.at(i + k) == Some(c))
    }

    fn value(&self, i: usize) -> Result<usize, Fail> {
        let Some(c) = self.at(i) else { return Err(Fail::Stop(i)) };
        match c {
            '"' => return self.string(i + 1),
            '{' => return self.object(i + 1),
            '[' => return self.array(i + 1),
            'n' if self.literal(i, "null") => return Ok(i + 4),
            't' if self.literal(i, "true") => return Ok(i + 4),
            'f' if self.literal(i, "false") => return Ok(i + 5),
            'N' if self.literal(i, "NaN") => return Ok(i + 3),
            'I' if self.literal(i, "Infinity") => return Ok(i + 8),
            '-' if self.literal(i, "-Infinity") => return Ok(i + 9),
            _ => {}
        }
        self.number(i)
    }

    fn number(&self, start: usize) -> Result<usize, Fail> {
        let digit = |i: usize| self.at(i).is_some_and(|c| c.is_ascii_digit());
        let mut i = start;
        if self.at(i) == Some('-') {
            i += 1;
        }
        match self.at(i) {
            Some('1'..='9') => {
                while digit(i) {
                    i += 1;
                }
            }
            Some('0') => i += 1,
            _ => return Err(Fail::Stop(start)),
        }
        if self.at(i) == Some('.') && digit(i + 1) {
            i += 2;
            while digit(i) {
                i += 1;
            }
        }
        if matches!(self.at(i), Some('e' | 'E')) {
            let mut j = i + 1;
            if matches!(self.at(j), Some('-' | '+')) {
                j += 1;
            }
            let digits = j;
            while digit(j) {
                j += 1;
            }
            if j > digits {
                i = j;
            }
        }
        Ok(i)
    }

    /// A string's end, `i` just past its opening quote.
    fn string(&self, mut i: usize) -> Result<usize, Fail> {
        let begin = i - 1;
        let len = self.s.len();
        loop {
            let mut next = i;
            while next < len {
                let d = self.s[next];
                if d == '"' || d == '\\' {
                    break;
                }
                if (d as u32) <= 0x1f {
                    return Err(Fail::Error("Invalid control character at", next));
                }
                next += 1;
            }
            if next == len {
                return Err(Fail::Error("Unterminated string starting at", begin));
            }
            if self.s[next] == '"' {
                return Ok(next + 1);
            }
            next += 1;
            let Some(c) = self.at(next) else { return Err(Fail::Error("Unterminated string starting at", begin)) };
            if c != 'u' {
                if !matches!(c, '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't') {
                    return Err(Fail::Error("Invalid \\escape", next - 1));
                }
                i = next + 1;
                continue;
            }
            next += 1;
            let end = next + 4;
            if end >= len {
                return Err(Fail::Error("Invalid \\uXXXX escape", next - 1));
            }
            let hex = |from: usize| (from..from + 4).all(|k| self.s[k].is_ascii_hexdigit());
            if !hex(next) {
                return Err(Fail::Error("Invalid \\uXXXX escape", end - 5));
            }
            let code = u32::from_str_radix(&self.s[next..end].iter().collect::<String>(), 16).unwrap_or(0);
            i = end;
            if (0xd800..0xdc00).contains(&code) && end + 6 < len && self.s[end] == '\\' && self.s[end + 1] == 'u' {
                if !hex(end + 2) {
                    return Err(Fail::Error("Invalid \\uXXXX escape", end + 1));
                }
                let low = u32::from_str_radix(&self.s[end + 2..end + 6].iter().collect::<String>(), 16).unwrap_or(0);
                if (0xdc00..0xe000).contains(&low) {
                    i = end + 6;
                }
            }
        }
    }

    fn object(&self, i: usize) -> Result<usize, Fail> {
        let mut i = self.ws(i);
        if self.at(i) == Some('}') {
            return Ok(i + 1);
        }
        loop {
            if self.at(i) != Some('"') {
                return Err(Fail::Error("Expecting property name enclosed in double quotes", i));
            }
            i = self.ws(self.string(i + 1)?);
            if self.at(i) != Some(':') {
                return Err(Fail::Error("Expecting ':' delimiter", i));
            }
            i = self.ws(i + 1);
            i = self.ws(self.value(i)?);
            match self.at(i) {
                Some('}') => return Ok(i + 1),
                Some(',') => i = self.ws(i + 1),
                _ => return Err(Fail::Error("Expecting ',' delimiter", i)),
            }
        }
    }

    fn array(&self, i: usize) -> Result<usize, Fail> {
        let mut i = self.ws(i);
        if self.at(i) == Some(']') {
            return Ok(i + 1);
        }
        loop {
            i = self.ws(self.value(i)?);
            match self.at(i) {
                Some(']') => return Ok(i + 1),
                Some(',') => i = self.ws(i + 1),
                _ => return Err(Fail::Error("Expecting ',' delimiter", i)),
            }
        }
    }
}

/// Why a request body is refused: a vLLM error, or FastAPI's own `{"detail": …}` answer.
#[derive(Debug)]
pub enum Refusal {
    /// The OpenAI error envelope.
    Error(SimError),
    /// FastAPI's (Starlette's) error body `{"detail": "…"}`: status and detail.
    Detail(u16, &'static str),
}

impl From<SimError> for Refusal {
    fn from(e: SimError) -> Self {
        Refusal::Error(e)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Error(e) => e.into_response(),
            Refusal::Detail(status, message) => detail(status, message),
        }
    }
}

/// A body's JSON as vLLM reads it: its media type checked, then parsed as CPython would; a
/// missing body (empty, or `null`) and a non-object are pydantic errors. A body that is not UTF-8
/// gets FastAPI's own `{"detail": …}` answer, as from vLLM.
pub fn parse_body(content_type: Option<&[u8]>, body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    check_content_type(content_type)?;
    parse_json_body(body).map_err(|e| match e {
        Some(e) => Refusal::Error(e),
        None => Refusal::Detail(400, "There was an error parsing the body"),
    })
}

/// FastAPI's (Starlette's) error body `{"detail": "…"}`, which vLLM answers for unknown routes,
/// wrong methods and unreadable bodies.
pub fn detail(status: u16, message: &str) -> Response {
    super::json_response(status, super::to_json(&serde_json::json!({ "detail": message })))
}

/// The body's JSON object; `Err(None)` if it is not UTF-8.
fn parse_json_body(body: &[u8]) -> Result<Map<String, Value>, Option<SimError>> {
    let missing = || pydantic_error(&[PyError::new("missing", "body", "Field required", &Value::Null)]);
    if body.is_empty() {
        return Err(Some(missing()));
    }
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(None);
    };
    if let Some((msg, at)) = python_json_error(text) {
        let mut e =
            PyError::new("json_invalid", &format!("body.{at}"), "JSON decode error", &Value::Object(Map::new()));
        e.ctx = Some(format!("{{'error': {}}}", py_repr(msg)));
        return Err(Some(pydantic_error(&[e])));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        // CPython reads what serde does not (NaN, Infinity, numbers past f64): a simulator limit.
        Some(pydantic_text(&format!("the simulator cannot read this JSON: {e}")))
    })?;
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Err(Some(missing())),
        other => Err(Some(pydantic_error(&[PyError::new(
            "model_attributes_type",
            "body",
            "Input should be a valid dictionary or object to extract fields from",
            &other,
        )]))),
    }
}

/// A field's type as vLLM's request models declare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// `str`.
    Str,
    /// `int`.
    Int,
    /// `float`.
    Float,
    /// `bool`.
    Bool,
    /// `StreamOptions` (`include_usage`, `continuous_usage_stats`: `bool | None`).
    StreamOptions,
    /// Completions' `prompt`: `list[int >= 0] | list[list[int >= 0]] | str | list[str]`.
    Prompt,
    /// Chat's `messages`: a list (its items are read by the simulator, not checked here).
    Messages,
}

/// A field of a request model: name, type, whether `null` is allowed, whether it is required.
pub type Field = (&'static str, Ty, bool, bool);

/// `CompletionRequest`'s fields the simulator reads or checks, in the model's order.
pub const COMPLETION_FIELDS: &[Field] = &[
    ("model", Ty::Str, true, false),
    ("prompt", Ty::Prompt, true, false),
    ("frequency_penalty", Ty::Float, true, false),
    ("max_tokens", Ty::Int, true, false),
    ("n", Ty::Int, false, false),
    ("presence_penalty", Ty::Float, true, false),
    ("seed", Ty::Int, true, false),
    ("stream", Ty::Bool, true, false),
    ("stream_options", Ty::StreamOptions, true, false),
    ("temperature", Ty::Float, true, false),
    ("top_p", Ty::Float, true, false),
    ("user", Ty::Str, true, false),
    ("top_k", Ty::Int, true, false),
    ("min_p", Ty::Float, true, false),
    ("repetition_penalty", Ty::Float, true, false),
    ("ignore_eos", Ty::Bool, false, false),
    ("min_tokens", Ty::Int, false, false),
];

/// `ChatCompletionRequest`'s fields the simulator reads or checks, in the model's order.
pub const CHAT_FIELDS: &[Field] = &[
    ("messages", Ty::Messages, false, true),
    ("model", Ty::Str, true, false),
    ("frequency_penalty", Ty::Float, true, false),
    ("max_tokens", Ty::Int, true, false),
    ("max_completion_tokens", Ty::Int, true, false),
    ("n", Ty::Int, true, false),
    ("presence_penalty", Ty::Float, true, false),
    ("seed", Ty::Int, true, false),
    ("stream", Ty::Bool, true, false),
    ("stream_options", Ty::StreamOptions, true, false),
    ("temperature", Ty::Float, true, false),
    ("top_p", Ty::Float, true, false),
    ("user", Ty::Str, true, false),
    ("top_k", Ty::Int, true, false),
    ("min_p", Ty::Float, true, false),
    ("repetition_penalty", Ty::Float, true, false),
    ("ignore_eos", Ty::Bool, false, false),
    ("min_tokens", Ty::Int, false, false),
];

/// Python's truthiness of a JSON value.
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// Checks (and coerces in place) each field of `body` as pydantic's lax mode does: the errors in
/// the model's field order, none if the body is valid.
pub fn check_fields(body: &mut Map<String, Value>, fields: &[Field]) -> Vec<PyError> {
    let mut errors = Vec::new();
    let n = body.len();
    for &(name, ty, nullable, required) in fields {
        let loc = format!("body.{name}");
        match body.get_mut(name) {
            None if required => errors.push(PyError {
                kind: "missing",
                loc,
                msg: "Field required",
                input: format!("<dict of {n} items>"),
                ctx: None,
            }),
            None => {}
            Some(Value::Null) if nullable => {}
            Some(v) => {
                if let Some(fixed) = check(v, ty, &loc, &mut errors) {
                    *v = fixed;
                }
            }
        }
    }
    // A null where it is allowed is the default: dropped, so serde reads the rest.
    body.retain(|k, v| !(v.is_null() && fields.iter().any(|&(name, _, nullable, _)| name == k && nullable)));
    errors
}

/// Checks `v` against `ty`; `Some` with the coerced value when it is not already of the type.
fn check(v: &Value, ty: Ty, loc: &str, errors: &mut Vec<PyError>) -> Option<Value> {
    match ty {
        Ty::Str => {
            if !v.is_string() {
                errors.push(PyError::new("string_type", loc, "Input should be a valid string", v));
            }
            None
        }
        Ty::Int => lax_int(v, loc, errors),
        Ty::Float => lax_float(v, loc, errors),
        Ty::Bool => lax_bool(v, loc, errors),
        Ty::StreamOptions => {
            let Value::Object(o) = v else {
                errors.push(PyError::new(
                    "model_attributes_type",
                    loc,
                    "Input should be a valid dictionary or object to extract fields from",
                    v,
                ));
                return None;
            };
            let mut o = o.clone();
            let mut changed = false;
            for key in ["include_usage", "continuous_usage_stats"] {
                if let Some(x) = o.get_mut(key)
                    && !x.is_null()
                    && let Some(fixed) = lax_bool(x, &format!("{loc}.{key}"), errors)
                {
                    *x = fixed;
                    changed = true;
                }
            }
            changed.then_some(Value::Object(o))
        }
        Ty::Messages => {
            if !v.is_array() {
                errors.push(PyError::new("list_type", loc, "Input should be a valid list", v));
            }
            None
        }
        Ty::Prompt => prompt(v, loc, errors),
    }
}

fn is_strict_id(v: &Value) -> bool {
    v.as_u64().is_some()
}

/// The prompt union: strict matches first (as pydantic's smart union), then each branch in lax mode
/// in order; all the branches' errors when none fits.
fn prompt(v: &Value, loc: &str, errors: &mut Vec<PyError>) -> Option<Value> {
    let strict = match v {
        Value::String(_) => true,
        Value::Array(a) => {
            a.iter().all(is_strict_id)
                || a.iter().all(|x| x.as_array().is_some_and(|ids| ids.iter().all(is_strict_id)))
                || a.iter().all(Value::is_string)
        }
        _ => false,
    };
    if strict {
        return None;
    }
    let id = |x: &Value, loc: &str, errs: &mut Vec<PyError>| -> Value {
        let before = errs.len();
        let fixed = lax_int(x, loc, errs);
        let value = fixed.unwrap_or_else(|| x.clone());
        if errs.len() == before
            && let Some(i) = value.as_i64()
            && i < 0
        {
            let mut e = PyError::new("greater_than_equal", loc, "Input should be greater than or equal to 0", &value);
            e.ctx = Some("{'ge': 0}".into());
            errs.push(e);
        }
        value
    };
    let list_of =
        |x: &Value, loc: &str, errs: &mut Vec<PyError>, item: &dyn Fn(&Value, &str, &mut Vec<PyError>) -> Value| {
            let Value::Array(a) = x else {
                errs.push(PyError::new("list_type", loc, "Input should be a valid list", x));
                return x.clone();
            };
            Value::Array(a.iter().enumerate().map(|(i, y)| item(y, &format!("{loc}.{i}"), errs)).collect())
        };
    let mut all = Vec::new();
    // list[int]
    let mut errs = Vec::new();
    let ids = list_of(v, loc, &mut errs, &id);
    if errs.is_empty() {
        return Some(ids);
    }
    all.append(&mut errs);
    // list[list[int]]
    let lists = list_of(v, loc, &mut errs, &|y, l, e| list_of(y, l, e, &id));
    if errs.is_empty() {
        return Some(lists);
    }
    all.append(&mut errs);
    // str
    all.push(PyError::new("string_type", loc, "Input should be a valid string", v));
    // list[str]
    list_of(v, loc, &mut errs, &|y, l, e| {
        if !y.is_string() {
            e.push(PyError::new("string_type", l, "Input should be a valid string", y));
        }
        y.clone()
    });
    all.append(&mut errs);
    errors.append(&mut all);
    None
}

fn lax_int(v: &Value, loc: &str, errors: &mut Vec<PyError>) -> Option<Value> {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => None,
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if !f.is_finite() {
                errors.push(PyError::new("finite_number", loc, "Input should be a finite number", v));
                None
            } else if f.fract() != 0.0 {
                errors.push(PyError::new(
                    "int_from_float",
                    loc,
                    "Input should be a valid integer, got a number with a fractional part",
                    v,
                ));
                None
            } else {
                Some(Value::from(f as i64))
            }
        }
        Value::Bool(b) => Some(Value::from(i64::from(*b))),
        Value::String(s) => {
            let t = s.trim();
            // pydantic strips a decimal point followed only by zeros ("5.0" is 5).
            let t = match t.split_once('.') {
                Some((int, zeros)) if !int.is_empty() && zeros.chars().all(|c| c == '0') => int,
                _ => t,
            };
            match t.strip_prefix('+').unwrap_or(t).parse::<i64>() {
                Ok(i) if !t.is_empty() => Some(Value::from(i)),
                _ => {
                    errors.push(PyError::new(
                        "int_parsing",
                        loc,
                        "Input should be a valid integer, unable to parse string as an integer",
                        v,
                    ));
                    None
                }
            }
        }
        _ => {
            errors.push(PyError::new("int_type", loc, "Input should be a valid integer", v));
            None
        }
    }
}

fn lax_float(v: &Value, loc: &str, errors: &mut Vec<PyError>) -> Option<Value> {
    match v {
        Value::Number(_) => None,
        Value::Bool(b) => Some(Value::from(f64::from(u8::from(*b)))),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Some(Value::from(f)),
            _ => {
                errors.push(PyError::new(
                    "float_parsing",
                    loc,
                    "Input should be a valid number, unable to parse string as a number",
                    v,
                ));
                None
            }
        },
        _ => {
            errors.push(PyError::new("float_type", loc, "Input should be a valid number", v));
            None
        }
    }
}

fn lax_bool(v: &Value, loc: &str, errors: &mut Vec<PyError>) -> Option<Value> {
    let parsing = |errors: &mut Vec<PyError>| {
        errors.push(PyError::new("bool_parsing", loc, "Input should be a valid boolean, unable to interpret input", v));
        None
    };
    match v {
        Value::Bool(_) => None,
        Value::Number(n) => match n.as_f64() {
            Some(f) if f == 0.0 || f == 1.0 => Some(Value::Bool(f == 1.0)),
            _ => parsing(errors),
        },
        Value::String(s) => match s.to_lowercase().as_str() {
            "0" | "off" | "f" | "false" | "n" | "no" => Some(Value::Bool(false)),
            "1" | "on" | "t" | "true" | "y" | "yes" => Some(Value::Bool(true)),
            _ => parsing(errors),
        },
        _ => {
            errors.push(PyError::new("bool_type", loc, "Input should be a valid boolean", v));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_are_cpythons() {
        // Each checked against python3.12 -c 'import json; json.loads(...)'.
        let cases: &[(&str, &str, usize)] = &[
            (r#"{"model":"tiny-llama","prompt":"Hello world","max_tokens":3"#, "Expecting ',' delimiter", 59),
            (r#"{"a":1 "b":2}"#, "Expecting ',' delimiter", 7),
            ("", "Expecting value", 0),
            ("  ", "Expecting value", 2),
            ("not json", "Expecting value", 0),
            (r#"{"a":}"#, "Expecting value", 5),
            (r#"{"a":1,}"#, "Expecting property name enclosed in double quotes", 7),
            (r#"{a:1}"#, "Expecting property name enclosed in double quotes", 1),
            (r#"{"a" 1}"#, "Expecting ':' delimiter", 5),
            (r#"[1,]"#, "Expecting value", 3),
            (r#"{"a":1}x"#, "Extra data", 7),
            (r#"{"a":"x"#, "Unterminated string starting at", 5),
            ("{\"a\":\"x\ny\"}", "Invalid control character at", 7),
            (r#"{"a":"\q"}"#, "Invalid \\escape", 6),
            (r#"{"a":"\u12"}"#, "Invalid \\uXXXX escape", 7),
            (r#"{"é":01}"#, "Expecting ',' delimiter", 6),
            ("{", "Expecting property name enclosed in double quotes", 1),
            ("[", "Expecting value", 1),
            (r#"{"a""#, "Expecting ':' delimiter", 4),
            (r#"{"a":1"#, "Expecting ',' delimiter", 6),
            ("1.", "Extra data", 1),
            ("-", "Expecting value", 0),
            ("1e", "Extra data", 1),
            ("[1e5,]", "Expecting value", 5),
            (r#"{"a":tru}"#, "Expecting value", 5),
        ];
        for &(doc, msg, pos) in cases {
            assert_eq!(python_json_error(doc), Some((msg, pos)), "{doc}");
        }
        for ok in [
            r#"{"a":[1,2.5e3,-0,true,false,null,"\u00e9\ud83d\ude00"]}"#,
            " [] ",
            "NaN",
            r#""x""#,
            r#"{"a":"\u12345"}"#,
        ] {
            assert_eq!(python_json_error(ok), None, "{ok}");
        }
    }

    #[test]
    fn python_reprs() {
        assert_eq!(py_repr("x"), "'x'");
        assert_eq!(py_repr("Expecting ',' delimiter"), "\"Expecting ',' delimiter\"");
        assert_eq!(py_repr("a\nb\\"), "'a\\nb\\\\'");
        for (f, s) in [
            (3.0, "3.0"),
            (-1.0, "-1.0"),
            (0.1, "0.1"),
            (3.5, "3.5"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (123.456, "123.456"),
            (1.5e300, "1.5e+300"),
        ] {
            assert_eq!(py_float(f), s);
        }
    }

    #[test]
    fn fields_are_checked_and_coerced_as_pydantic_lax_mode() {
        let mut body: Map<String, Value> = serde_json::from_str(
            r#"{"prompt":"x","max_tokens":"5","stream":"yes","temperature":1,"n":3.0,"ignore_eos":1}"#,
        )
        .unwrap();
        assert_eq!(check_fields(&mut body, COMPLETION_FIELDS), []);
        assert_eq!(body["max_tokens"], 5);
        assert_eq!(body["stream"], true);
        assert_eq!(body["n"], 3);
        assert_eq!(body["ignore_eos"], true);
        let mut body: Map<String, Value> = serde_json::from_str(r#"{"prompt":42,"max_tokens":"x"}"#).unwrap();
        let errors = check_fields(&mut body, COMPLETION_FIELDS);
        let kinds: Vec<_> = errors.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["list_type", "list_type", "string_type", "list_type", "int_parsing"]);
        let e = pydantic_error(&errors[4..]);
        assert_eq!(
            e.message,
            "1 validation error:\n  {'type': 'int_parsing', 'loc': 'body.max_tokens', 'msg': 'Input should be a valid integer, unable to parse string as an integer', 'input': 'x'}"
        );
        assert_eq!(e.param_name(), Some("body.max_tokens"));
        let mut body: Map<String, Value> = serde_json::from_str(r#"{"prompt":[1,-1]}"#).unwrap();
        let errors = check_fields(&mut body, COMPLETION_FIELDS);
        assert_eq!(errors[0].kind, "greater_than_equal");
        assert_eq!(errors[0].loc, "body.prompt.1");
        let mut body: Map<String, Value> = serde_json::from_str(r#"{"max_tokens":3,"model":"m"}"#).unwrap();
        let errors = check_fields(&mut body, CHAT_FIELDS);
        assert_eq!(
            errors[0].render(),
            "{'type': 'missing', 'loc': 'body.messages', 'msg': 'Field required', 'input': '<dict of 2 items>'}"
        );
    }
}
