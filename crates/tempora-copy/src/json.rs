//! PostgreSQL's `json` and `jsonb` values, kept as text.
//!
//! A `json` value is its input text, checked to be JSON (`json_in`). A
//! `jsonb` value is stored as PostgreSQL prints it (`jsonb_out` of
//! `jsonb_in`): object keys ordered by length and then bytewise, a repeated
//! key's last value kept, `", "` and `": "` between items, strings with
//! their escapes decoded (and only PostgreSQL's escapes written back),
//! numbers as `numeric` prints them (`1e2` is `100`, `1.50` stays `1.50`).
//! Equal jsonb values therefore have equal text, so comparisons, grouping
//! and hashing of the stored text behave as PostgreSQL's jsonb does (except
//! that numbers equal in value but not in scale, `1.0` and `1`, differ).
//!
//! [`parse`] gives a tree whose nodes know where they are in the text, so
//! that `->` on a `json` value returns the member's text as written, as
//! PostgreSQL's does.

use std::cmp::Ordering;

use tempora_common::{SqlState, TemporaError};

/// Which of the two types a value has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonKind {
    Json,
    Jsonb,
}

impl JsonKind {
    pub fn name(self) -> &'static str {
        match self {
            JsonKind::Json => "json",
            JsonKind::Jsonb => "jsonb",
        }
    }

    /// PostgreSQL's input function for the type: the value as stored.
    pub fn input(self, text: &str) -> Result<String, TemporaError> {
        match self {
            JsonKind::Json => {
                parse_json(text)?;
                Ok(text.to_string())
            }
            JsonKind::Jsonb => jsonb_text(text),
        }
    }
}

/// One value of a parsed document, with where its text is in the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub start: usize,
    pub end: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number as written.
    Number(String),
    /// The string, escapes decoded.
    String(String),
    Array(Vec<Node>),
    /// Members in input order, repeated keys included.
    Object(Vec<(String, Node)>),
}

impl Node {
    /// The node's text in the document it was parsed from.
    pub fn text<'a>(&self, doc: &'a str) -> &'a str {
        &doc[self.start..self.end]
    }

    /// `jsonb_typeof` / `json_typeof`.
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// The member `key` of an object (the last, where it repeats).
    pub fn field(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|m| &m.1),
            _ => None,
        }
    }

    /// The element `index` of an array; a negative index counts from the end.
    pub fn element(&self, index: i64) -> Option<&Node> {
        let Value::Array(items) = &self.value else {
            return None;
        };
        let len = items.len() as i64;
        let i = if index < 0 { len + index } else { index };
        (0..len).contains(&i).then(|| &items[i as usize])
    }

    /// Follows `path` (`#>`): object keys, or array indexes as text.
    pub fn path<'a>(&'a self, path: &[Option<&str>]) -> Option<&'a Node> {
        let mut node = self;
        for step in path {
            let step = (*step)?;
            node = match &node.value {
                Value::Object(_) => node.field(step)?,
                Value::Array(_) => node.element(step.trim().parse().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// `->>`: a string's text, NULL for null, other values as JSON text.
    pub fn as_text(&self, doc: &str) -> Option<String> {
        match &self.value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => Some(self.text(doc).to_string()),
        }
    }

    /// jsonb's `?`: an object's key, or a string element of an array, or
    /// the string itself.
    pub fn has_key(&self, key: &str) -> bool {
        match &self.value {
            Value::Object(members) => members.iter().any(|(k, _)| k == key),
            Value::Array(items) => items
                .iter()
                .any(|i| matches!(&i.value, Value::String(s) if s == key)),
            Value::String(s) => s == key,
            _ => false,
        }
    }

    /// jsonb's `=`: the same value, numbers compared by value (`1.0` and
    /// `1` are equal), objects as sets of keys.
    pub fn equals(&self, other: &Node) -> bool {
        equals(&self.value, &other.value)
    }

    /// jsonb's `@>`: whether `other` is contained in this value.
    pub fn contains(&self, other: &Node) -> bool {
        match (&self.value, &other.value) {
            // A scalar on the right stands for an array of it.
            (Value::Array(items), o) if !o.is_container() => {
                items.iter().any(|i| scalar_eq(&i.value, o))
            }
            _ => contains(&self.value, &other.value),
        }
    }
}

impl Value {
    fn is_container(&self) -> bool {
        matches!(self, Value::Array(_) | Value::Object(_))
    }
}

fn contains(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(am), Value::Object(bm)) => bm.iter().all(|(k, bv)| {
            am.iter()
                .rev()
                .find(|(ak, _)| ak == k)
                .is_some_and(|(_, av)| match bv.value.is_container() {
                    true => contains(&av.value, &bv.value),
                    false => scalar_eq(&av.value, &bv.value),
                })
        }),
        (Value::Array(ai), Value::Array(bi)) => bi.iter().all(|b| {
            ai.iter().any(|a| match b.value.is_container() {
                true => contains(&a.value, &b.value),
                false => scalar_eq(&a.value, &b.value),
            })
        }),
        (a, b) if !a.is_container() && !b.is_container() => scalar_eq(a, b),
        _ => false,
    }
}

fn equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equals(&p.value, &q.value))
        }
        (Value::Object(x), Value::Object(y)) => {
            let (x, y) = (jsonb_members(x), jsonb_members(y));
            x.len() == y.len()
                && x.iter()
                    .zip(&y)
                    .all(|(p, q)| p.0 == q.0 && equals(&p.1.value, &q.1.value))
        }
        _ => scalar_eq(a, b),
    }
}

fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            number_value(x).is_some_and(|x| Some(x) == number_value(y))
        }
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        _ => false,
    }
}

/// A number's value, independent of how it is written: its sign, its
/// digits without leading or trailing zeros, and the position of the
/// decimal point relative to them. None for text that is not a number.
fn number_value(raw: &str) -> Option<(bool, String, i64)> {
    let (neg, digits, point) = decompose(raw)?;
    let first = digits.bytes().position(|d| d != b'0');
    let Some(first) = first else {
        return Some((false, String::new(), 0));
    };
    let last = digits.bytes().rposition(|d| d != b'0').unwrap_or(first);
    Some((neg, digits[first..=last].to_string(), point - first as i64))
}

/// A JSON number's sign, all of its digits, and where the decimal point
/// falls among them (which the exponent moves); None if `raw` is not one.
fn decompose(raw: &str) -> Option<(bool, String, i64)> {
    let (neg, rest) = match raw.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, raw),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((neg, format!("{int}{frac}"), int.len() as i64 + exp))
}

/// A JSON number as PostgreSQL's `numeric` prints it: the exponent applied,
/// the scale of the input kept (`1.50`, `1e2` → `100`, `1.5e-3` →
/// `0.0015`), no sign on zero.
pub fn numeric_text(raw: &str) -> Result<String, TemporaError> {
    let bad = || {
        TemporaError::new(
            SqlState::INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type numeric: \"{raw}\""),
        )
    };
    let exponent = raw
        .find(['e', 'E'])
        .map(|i| raw[i + 1..].parse::<i64>().map_err(|_| bad()))
        .transpose()?
        .unwrap_or(0);
    // PostgreSQL's limit on a numeric's exponent.
    if !(-1000..=1000).contains(&exponent) {
        return Err(bad());
    }
    let (neg, digits, point) = decompose(raw).ok_or_else(bad)?;
    let mantissa = raw[..raw.find(['e', 'E']).unwrap_or(raw.len())].to_string();
    let frac_len = mantissa.split_once('.').map_or(0, |(_, f)| f.len()) as i64;
    let scale = (frac_len - exponent).max(0);
    let digit = |i: i64| -> u8 {
        if (0..digits.len() as i64).contains(&i) {
            digits.as_bytes()[i as usize]
        } else {
            b'0'
        }
    };
    let mut int: Vec<u8> = (0..point.max(0)).map(digit).collect();
    let lead = int.iter().take_while(|&&d| d == b'0').count();
    int.drain(..lead.min(int.len().saturating_sub(1)));
    if int.is_empty() {
        int.push(b'0');
    }
    let frac: Vec<u8> = (0..scale).map(|i| digit(point + i)).collect();
    let zero = int.iter().chain(&frac).all(|&d| d == b'0');
    let mut out = String::with_capacity(int.len() + frac.len() + 2);
    if neg && !zero {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(&int).unwrap_or("0"));
    if !frac.is_empty() {
        out.push('.');
        out.push_str(std::str::from_utf8(&frac).unwrap_or(""));
    }
    Ok(out)
}

/// `jsonb_in` then `jsonb_out`: `text` as a stored jsonb value.
pub fn jsonb_text(text: &str) -> Result<String, TemporaError> {
    let node = parse(text)?;
    let mut out = String::with_capacity(text.len());
    write_jsonb(&mut out, &node.value, None)?;
    Ok(out)
}

/// `jsonb_pretty`: the value with each member on a line of its own,
/// indented by four spaces per level.
pub fn jsonb_pretty(text: &str) -> Result<String, TemporaError> {
    let node = parse(text)?;
    let mut out = String::with_capacity(text.len() * 2);
    write_jsonb(&mut out, &node.value, Some(0))?;
    Ok(out)
}

/// A jsonb value's members as stored: ordered, a repeated key's last value.
fn jsonb_members(members: &[(String, Node)]) -> Vec<&(String, Node)> {
    let mut sorted: Vec<(usize, &(String, Node))> = members.iter().enumerate().collect();
    sorted.sort_by(|(i, a), (j, b)| key_order(&a.0, &b.0).then(j.cmp(i)));
    sorted.dedup_by(|later, earlier| later.1 .0 == earlier.1 .0);
    sorted.into_iter().map(|(_, m)| m).collect()
}

/// jsonb's order of object keys: shorter first, then bytewise.
fn key_order(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

fn write_jsonb(out: &mut String, value: &Value, indent: Option<usize>) -> Result<(), TemporaError> {
    let newline = |out: &mut String, level: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("    ", level));
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&numeric_text(n)?),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    if indent.is_none() {
                        out.push(' ');
                    }
                }
                if let Some(level) = indent {
                    newline(out, level + 1);
                }
                write_jsonb(out, &item.value, indent.map(|l| l + 1))?;
            }
            if let (Some(level), false) = (indent, items.is_empty()) {
                newline(out, level);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            let members = jsonb_members(members);
            for (i, (key, item)) in members.iter().map(|m| (&m.0, &m.1)).enumerate() {
                if i > 0 {
                    out.push(',');
                    if indent.is_none() {
                        out.push(' ');
                    }
                }
                if let Some(level) = indent {
                    newline(out, level + 1);
                }
                write_string(out, key);
                out.push_str(": ");
                write_jsonb(out, &item.value, indent.map(|l| l + 1))?;
            }
            if let (Some(level), false) = (indent, members.is_empty()) {
                newline(out, level);
            }
            out.push('}');
        }
    }
    Ok(())
}

/// A string as PostgreSQL's `escape_json` writes it.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A jsonb value of a string, a number's text or another scalar's: what
/// `to_jsonb` makes of a SQL value.
pub fn string_jsonb(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(&mut out, s);
    out
}

/// Parses `text` as a jsonb document, with PostgreSQL's errors.
pub fn parse(text: &str) -> Result<Node, TemporaError> {
    parse_with(text, false)
}

/// Parses `text` as a json document: as [`parse`], but `\u0000`, which
/// jsonb cannot hold, is accepted.
pub fn parse_json(text: &str) -> Result<Node, TemporaError> {
    parse_with(text, true)
}

fn parse_with(text: &str, allow_nul: bool) -> Result<Node, TemporaError> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
        depth: 0,
        allow_nul,
    };
    p.skip_space();
    let node = p.value()?;
    p.skip_space();
    if p.pos < p.s.len() {
        return Err(p.expected("end of input"));
    }
    Ok(node)
}

/// How deeply arrays and objects may nest: deeper input is refused
/// (PostgreSQL's "stack depth limit exceeded") instead of exhausting a
/// server thread's stack, which parsing, printing and containment walk.
const MAX_DEPTH: usize = 256;

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    depth: usize,
    allow_nul: bool,
}

fn syntax(detail: String) -> TemporaError {
    TemporaError::new(
        SqlState::INVALID_TEXT_REPRESENTATION,
        "invalid input syntax for type json",
    )
    .with_detail(detail)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn ended() -> TemporaError {
        syntax("The input string ended unexpectedly.".into())
    }

    /// The token at the current position, as PostgreSQL's messages quote it.
    fn token(&self) -> &str {
        let start = self.pos;
        let s = self.s;
        let end = match s.get(start) {
            None => start,
            Some(b'"') => {
                let mut i = start + 1;
                while i < s.len() && s[i] != b'"' {
                    i += if s[i] == b'\\' { 2 } else { 1 };
                }
                (i + 1).min(s.len())
            }
            Some(&b) if is_word_byte(b) || b == b'-' => {
                let mut i = start + 1;
                while i < s.len() && is_word_byte(s[i]) {
                    i += 1;
                }
                i
            }
            Some(_) => start + self.text[start..].chars().next().map_or(1, char::len_utf8),
        };
        self.text.get(start..end).unwrap_or("")
    }

    /// The error for something else than `what` at the current position;
    /// a token that is no JSON token at all is reported as such, as
    /// PostgreSQL's lexer does before its parser looks.
    fn expected(&self, what: &str) -> TemporaError {
        if self.pos >= self.s.len() {
            return Self::ended();
        }
        let token = self.token();
        let word = token
            .bytes()
            .next()
            .is_some_and(|b| is_word_byte(b) || b == b'-');
        if word && !matches!(token, "true" | "false" | "null") && decompose(token).is_none() {
            return syntax(format!("Token \"{token}\" is invalid."));
        }
        syntax(format!("Expected {what}, but found \"{token}\"."))
    }

    fn value(&mut self) -> Result<Node, TemporaError> {
        let start = self.pos;
        let value = match self.s.get(self.pos) {
            None => return Err(Self::ended()),
            Some(b'{') => self.object()?,
            Some(b'[') => self.array()?,
            Some(b'"') => Value::String(self.string()?),
            Some(b'-' | b'0'..=b'9') => Value::Number(self.number()?),
            Some(_) => self.word()?,
        };
        Ok(Node {
            start,
            end: self.pos,
            value,
        })
    }

    fn nest(&mut self) -> Result<(), TemporaError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(TemporaError::new(
                SqlState::STATEMENT_TOO_COMPLEX,
                "stack depth limit exceeded",
            ));
        }
        Ok(())
    }

    fn object(&mut self) -> Result<Value, TemporaError> {
        self.nest()?;
        self.pos += 1;
        let mut members = Vec::new();
        self.skip_space();
        if self.s.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_space();
            if self.s.get(self.pos) != Some(&b'"') {
                return Err(self.expected("string"));
            }
            let key = self.string()?;
            self.skip_space();
            if self.s.get(self.pos) != Some(&b':') {
                return Err(self.expected("\":\""));
            }
            self.pos += 1;
            self.skip_space();
            let value = self.member_value()?;
            members.push((key, value));
            self.skip_space();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.expected("\",\" or \"}\"")),
            }
        }
        self.depth -= 1;
        Ok(Value::Object(members))
    }

    fn array(&mut self) -> Result<Value, TemporaError> {
        self.nest()?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_space();
        if self.s.get(self.pos) == Some(&b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_space();
            items.push(self.member_value()?);
            self.skip_space();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.expected("\",\" or \"]\"")),
            }
        }
        self.depth -= 1;
        Ok(Value::Array(items))
    }

    /// A value inside an array or object, where a closing bracket or a
    /// comma is "Expected JSON value".
    fn member_value(&mut self) -> Result<Node, TemporaError> {
        match self.s.get(self.pos) {
            Some(b']' | b'}' | b',' | b':') => Err(self.expected("JSON value")),
            _ => self.value(),
        }
    }

    fn word(&mut self) -> Result<Value, TemporaError> {
        let token = self.token();
        let value = match token {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            _ => return Err(syntax(format!("Token \"{token}\" is invalid."))),
        };
        self.pos += token.len();
        Ok(value)
    }

    fn number(&mut self) -> Result<String, TemporaError> {
        let s = self.s;
        let start = self.pos;
        let mut i = start;
        if s.get(i) == Some(&b'-') {
            i += 1;
        }
        let digits = |i: &mut usize| {
            let from = *i;
            while *i < s.len() && s[*i].is_ascii_digit() {
                *i += 1;
            }
            *i - from
        };
        let mut ok = match s.get(i) {
            Some(b'0') => {
                i += 1;
                true
            }
            Some(b'1'..=b'9') => digits(&mut i) > 0,
            _ => false,
        };
        if ok && s.get(i) == Some(&b'.') {
            i += 1;
            ok = digits(&mut i) > 0;
        }
        if ok && matches!(s.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(s.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            ok = digits(&mut i) > 0;
        }
        // A number runs into letters or digits ("01", "1x"): one bad token.
        if !ok || s.get(i).is_some_and(|&b| is_word_byte(b)) {
            while i < s.len() && (is_word_byte(s[i]) || s[i] == b'.') {
                i += 1;
            }
            if !ok && i >= s.len() && !self.text[start..i].bytes().any(is_word_byte) {
                return Err(Self::ended());
            }
            return Err(syntax(format!(
                "Token \"{}\" is invalid.",
                &self.text[start..i]
            )));
        }
        self.pos = i;
        Ok(self.text[start..i].to_string())
    }

    fn hex4(&self, at: usize) -> Result<u32, TemporaError> {
        let digits = self
            .s
            .get(at..at + 4)
            .filter(|d| d.iter().all(u8::is_ascii_hexdigit));
        match digits {
            Some(d) => {
                Ok(u32::from_str_radix(std::str::from_utf8(d).unwrap_or("0"), 16).unwrap_or(0))
            }
            None if self.s.len() < at + 4 && self.s[at..].iter().all(u8::is_ascii_hexdigit) => {
                Err(Self::ended())
            }
            None => Err(syntax(
                "\"\\u\" must be followed by four hexadecimal digits.".into(),
            )),
        }
    }

    fn string(&mut self) -> Result<String, TemporaError> {
        let s = self.s;
        self.pos += 1;
        let mut out = String::new();
        let mut run = self.pos;
        loop {
            let Some(&b) = s.get(self.pos) else {
                return Err(Self::ended());
            };
            match b {
                b'"' => {
                    out.push_str(&self.text[run..self.pos]);
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(&self.text[run..self.pos]);
                    let Some(&e) = s.get(self.pos + 1) else {
                        return Err(Self::ended());
                    };
                    self.pos += 2;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut code = self.hex4(self.pos)?;
                            self.pos += 4;
                            if (0xd800..0xdc00).contains(&code) {
                                if s.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return Err(syntax(
                                        "Unicode low surrogate must follow a high surrogate."
                                            .into(),
                                    ));
                                }
                                let low = self.hex4(self.pos + 2)?;
                                if !(0xdc00..0xe000).contains(&low) {
                                    return Err(syntax(
                                        "Unicode low surrogate must follow a high surrogate."
                                            .into(),
                                    ));
                                }
                                self.pos += 6;
                                code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
                            } else if (0xdc00..0xe000).contains(&code) {
                                return Err(syntax(
                                    "Unicode low surrogate must follow a high surrogate.".into(),
                                ));
                            }
                            if code == 0 && !self.allow_nul {
                                return Err(TemporaError::new(
                                    SqlState::UNTRANSLATABLE_CHARACTER,
                                    "unsupported Unicode escape sequence",
                                )
                                .with_detail("\\u0000 cannot be converted to text."));
                            }
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        }
                        _ => {
                            let c = self.text[self.pos - 1..].chars().next().unwrap_or('?');
                            return Err(syntax(format!("Escape sequence \"\\{c}\" is invalid.")));
                        }
                    }
                    run = self.pos;
                }
                b if b < 0x20 => {
                    return Err(syntax(format!(
                        "Character with value 0x{b:02x} must be escaped."
                    )));
                }
                _ => self.pos += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jb(s: &str) -> String {
        jsonb_text(s).unwrap()
    }

    fn detail(s: &str) -> String {
        let e = parse(s).unwrap_err();
        assert_eq!(e.code, SqlState::INVALID_TEXT_REPRESENTATION, "{s}");
        e.detail.clone().unwrap_or_default()
    }

    #[test]
    fn jsonb_orders_keys_by_length_then_bytes_and_keeps_the_last_repeat() {
        assert_eq!(
            jb(r#"{"bb":1,"a":2,"c":[1,  2,{}],"a":3}"#),
            r#"{"a": 3, "c": [1, 2, {}], "bb": 1}"#
        );
        assert_eq!(jb(" [ ] "), "[]");
        assert_eq!(jb("\"x\""), "\"x\"");
        assert_eq!(jb("null"), "null");
    }

    #[test]
    fn jsonb_numbers_print_as_numeric() {
        for (input, out) in [
            ("1.50", "1.50"),
            ("1e2", "100"),
            ("1.5e-3", "0.0015"),
            ("-0", "0"),
            ("-0.0", "0.0"),
            ("0.1", "0.1"),
            ("12345678901234567890", "12345678901234567890"),
            ("1E+2", "100"),
            ("2.50E1", "25.0"),
            ("-12.5", "-12.5"),
        ] {
            assert_eq!(jb(input), out, "{input}");
        }
        assert!(jsonb_text("1e5000").is_err());
    }

    #[test]
    fn strings_decode_escapes_and_write_only_postgres_escapes() {
        assert_eq!(jb(r#""a\u00e9\n\/\"""#), r#""aé\n/\"""#);
        assert_eq!(jb(r#""\ud83d\ude00""#), "\"😀\"");
        assert_eq!(jb("\"\\u0001\""), "\"\\u0001\"");
        let e = jsonb_text(r#""\u0000""#).unwrap_err();
        assert_eq!(e.code, SqlState::UNTRANSLATABLE_CHARACTER);
        assert_eq!(JsonKind::Json.input(r#""\u0000""#).unwrap(), r#""\u0000""#);
    }

    #[test]
    fn errors_name_what_was_expected() {
        assert_eq!(detail(""), "The input string ended unexpectedly.");
        assert_eq!(detail(r#"{"a":"#), "The input string ended unexpectedly.");
        assert_eq!(detail("{a:1}"), "Token \"a\" is invalid.");
        assert_eq!(detail(r#"{"a" 1}"#), "Expected \":\", but found \"1\".");
        assert_eq!(detail("[1,]"), "Expected JSON value, but found \"]\".");
        assert_eq!(detail(r#"{"a":1,}"#), "Expected string, but found \"}\".");
        assert_eq!(detail("{} x"), "Token \"x\" is invalid.");
        assert_eq!(detail("{} }"), "Expected end of input, but found \"}\".");
        assert_eq!(detail("[1 2]"), "Expected \",\" or \"]\", but found \"2\".");
        assert_eq!(detail("tru"), "Token \"tru\" is invalid.");
        assert_eq!(detail("01"), "Token \"01\" is invalid.");
        assert_eq!(
            detail("\"a\nb\""),
            "Character with value 0x0a must be escaped."
        );
        assert_eq!(detail(r#""\x""#), "Escape sequence \"\\x\" is invalid.");
        let deep = "[".repeat(5000);
        assert_eq!(
            parse(&deep).unwrap_err().code,
            SqlState::STATEMENT_TOO_COMPLEX
        );
        let nested = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(jb(&nested), nested);
        assert!(parse(&nested).unwrap().contains(&parse(&nested).unwrap()));
    }

    #[test]
    fn navigation_and_containment() {
        let doc = r#"{"a": {"b": [10, 20, "x"]}, "n": null, "s": "t"}"#;
        let n = parse(doc).unwrap();
        assert_eq!(n.field("a").unwrap().text(doc), r#"{"b": [10, 20, "x"]}"#);
        let arr = n.path(&[Some("a"), Some("b")]).unwrap();
        assert_eq!(arr.element(-1).unwrap().as_text(doc).as_deref(), Some("x"));
        assert_eq!(arr.element(0).unwrap().as_text(doc).as_deref(), Some("10"));
        assert!(arr.element(3).is_none());
        assert_eq!(n.field("n").unwrap().as_text(doc), None);
        assert!(n.has_key("s") && !n.has_key("t"));
        assert!(arr.has_key("x"));
        let c = |a: &str, b: &str| parse(a).unwrap().contains(&parse(b).unwrap());
        assert!(c(doc, r#"{"a": {"b": [20]}}"#));
        assert!(!c(doc, r#"{"a": {"b": [30]}}"#));
        assert!(c("[1, 2, [3]]", "2"));
        assert!(c("[1, 2, [3]]", "[[3], 1]"));
        assert!(!c("[1, 2]", "[[1]]"));
        assert!(c(r#"{"v": 1.0}"#, r#"{"v": 1}"#));
        assert!(!c("1", "[1]"));
    }

    /// Every cut and every insertion of a troublesome character into some
    /// documents: input never panics, and stored jsonb text reads back as
    /// itself (normalizing is idempotent).
    #[test]
    fn damaged_documents_error_cleanly_and_normal_forms_are_stable() {
        let seeds = [
            r#"{"a": [1, 2.50, -0.1e-3, {"b": null}], "é": "x\u00e9\n", "c": true}"#,
            r#"[[[]], {}, "\ud83d\ude00", 1E+5, false]"#,
            r#""\"\\\/\b\f\n\r\t""#,
        ];
        let inserts = [
            "", "\"", "\\", "{", "}", "[", "]", ",", ":", "-", "e", "é", "\u{1}", " ", "0",
        ];
        for seed in seeds {
            for cut in (0..=seed.len()).filter(|&i| seed.is_char_boundary(i)) {
                for ins in inserts {
                    let doc = format!("{}{}{}", &seed[..cut], ins, &seed[cut..]);
                    for text in [doc.clone(), doc[..cut].to_string()] {
                        let _ = parse_json(&text);
                        if let Ok(stored) = jsonb_text(&text) {
                            assert_eq!(jsonb_text(&stored).unwrap(), stored, "{text}");
                            let _ = jsonb_pretty(&stored).unwrap();
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pretty_indents_by_four() {
        assert_eq!(
            jsonb_pretty(r#"{"a":[1,{}],"b":{}}"#).unwrap(),
            "{\n    \"a\": [\n        1,\n        {}\n    ],\n    \"b\": {}\n}"
        );
    }
}
