//! COPY's options: PostgreSQL's defaults and its validation rules, with its
//! messages and SQLSTATEs.

use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption, Ident};
use tempora_common::{SqlState, TemporaError};

/// The data format of a COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    Binary,
}

/// The HEADER option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    No,
    Yes,
    /// COPY FROM only: the header line must name the columns, in order.
    Match,
}

/// The FORCE_QUOTE option (COPY TO, CSV).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForceQuote {
    None,
    /// `FORCE_QUOTE *`
    All,
    Columns(Vec<String>),
}

/// The options of one COPY, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub delimiter: u8,
    pub null: String,
    pub header: Header,
    pub quote: u8,
    pub escape: u8,
    pub force_not_null: Vec<String>,
    pub force_null: Vec<String>,
    pub force_quote: ForceQuote,
    /// The ENCODING given, if any (only UTF8 is accepted).
    pub encoding: Option<String>,
    pub freeze: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self::text()
    }
}

/// One option argument as PostgreSQL's grammar delivers it (a `DefElem`'s arg).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyOptionArg {
    /// The option without a value (`HEADER`, `FREEZE`).
    None,
    Str(String),
    Int(i64),
    /// `*` (FORCE_QUOTE *).
    Star,
    /// A parenthesized column list.
    Columns(Vec<String>),
}

fn err(code: SqlState, msg: impl Into<String>) -> TemporaError {
    TemporaError::new(code, msg)
}

fn conflicting() -> TemporaError {
    err(SqlState::SYNTAX_ERROR, "conflicting or redundant options")
}

/// PostgreSQL folds unquoted identifiers to lower case.
fn ident_name(id: &Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_lowercase()
    }
}

fn idents(ids: &[Ident]) -> Vec<String> {
    ids.iter().map(ident_name).collect()
}

fn bool_str(b: bool) -> CopyOptionArg {
    CopyOptionArg::Str(if b { "true" } else { "false" }.into())
}

/// The option's string value (PostgreSQL's defGetString).
fn arg_string(name: &str, arg: &CopyOptionArg) -> Result<String, TemporaError> {
    match arg {
        CopyOptionArg::Str(s) => Ok(s.clone()),
        CopyOptionArg::Int(i) => Ok(i.to_string()),
        CopyOptionArg::None => Err(err(
            SqlState::SYNTAX_ERROR,
            format!("{name} requires a parameter"),
        )),
        CopyOptionArg::Star => Ok("*".into()),
        CopyOptionArg::Columns(_) => Err(err(
            SqlState::SYNTAX_ERROR,
            format!("{name} requires a parameter"),
        )),
    }
}

/// PostgreSQL's defGetBoolean.
fn arg_bool(name: &str, arg: &CopyOptionArg) -> Result<bool, TemporaError> {
    let bad = || {
        err(
            SqlState::SYNTAX_ERROR,
            format!("{name} requires a Boolean value"),
        )
    };
    match arg {
        CopyOptionArg::None => Ok(true),
        CopyOptionArg::Int(0) => Ok(false),
        CopyOptionArg::Int(1) => Ok(true),
        CopyOptionArg::Str(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "on" => Ok(true),
            "false" | "off" => Ok(false),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// PostgreSQL's defGetCopyHeaderChoice.
fn arg_header(name: &str, arg: &CopyOptionArg, is_from: bool) -> Result<Header, TemporaError> {
    let bad = || {
        err(
            SqlState::SYNTAX_ERROR,
            format!("{name} requires a Boolean value or \"match\""),
        )
    };
    match arg {
        CopyOptionArg::None => Ok(Header::Yes),
        CopyOptionArg::Int(0) => Ok(Header::No),
        CopyOptionArg::Int(1) => Ok(Header::Yes),
        CopyOptionArg::Str(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "on" => Ok(Header::Yes),
            "false" | "off" => Ok(Header::No),
            "match" if is_from => Ok(Header::Match),
            "match" => Err(err(
                SqlState::FEATURE_NOT_SUPPORTED,
                format!("cannot use \"{s}\" with HEADER in COPY TO"),
            )),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

fn arg_columns(name: &str, arg: &CopyOptionArg) -> Result<Vec<String>, TemporaError> {
    match arg {
        CopyOptionArg::Columns(c) => Ok(c.clone()),
        _ => Err(err(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("argument to option \"{name}\" must be a list of column names"),
        )),
    }
}

/// PostgreSQL's encoding names, normalized as its clean_encoding_name does
/// (lower case, letters and digits only).
const PG_ENCODINGS: &[&str] = &[
    "abc",
    "alt",
    "big5",
    "euccn",
    "eucjis2004",
    "eucjp",
    "euckr",
    "euctw",
    "gb18030",
    "gbk",
    "iso88591",
    "iso885910",
    "iso885913",
    "iso885914",
    "iso885915",
    "iso885916",
    "iso88592",
    "iso88593",
    "iso88594",
    "iso88595",
    "iso88596",
    "iso88597",
    "iso88598",
    "iso88599",
    "johab",
    "koi8",
    "koi8r",
    "koi8u",
    "latin1",
    "latin10",
    "latin2",
    "latin3",
    "latin4",
    "latin5",
    "latin6",
    "latin7",
    "latin8",
    "latin9",
    "mskanji",
    "muleinternal",
    "shiftjis",
    "shiftjis2004",
    "sjis",
    "sqlascii",
    "tcvn",
    "tcvn5712",
    "uhc",
    "unicode",
    "utf8",
    "vscii",
    "win",
    "win1250",
    "win1251",
    "win1252",
    "win1253",
    "win1254",
    "win1255",
    "win1256",
    "win1257",
    "win1258",
    "win866",
    "win874",
    "win932",
    "win936",
    "win949",
    "win950",
    "windows1250",
    "windows1251",
    "windows1252",
    "windows1253",
    "windows1254",
    "windows1255",
    "windows1256",
    "windows1257",
    "windows1258",
    "windows866",
    "windows874",
    "windows932",
    "windows936",
    "windows949",
    "windows950",
];

fn check_encoding(name: &str) -> Result<(), TemporaError> {
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if !PG_ENCODINGS.contains(&clean.as_str()) {
        return Err(err(
            SqlState::INVALID_PARAMETER_VALUE,
            "argument to option \"encoding\" must be a valid encoding name",
        ));
    }
    if clean == "utf8" || clean == "unicode" {
        return Ok(());
    }
    Err(err(
        SqlState::FEATURE_NOT_SUPPORTED,
        format!("COPY with ENCODING \"{name}\" is not supported"),
    )
    .with_hint("COPY data must be UTF8."))
}

impl CopyOptions {
    /// Text format defaults: TAB delimiter, `\N` for NULL.
    pub fn text() -> Self {
        Self {
            format: CopyFormat::Text,
            delimiter: b'\t',
            null: "\\N".into(),
            header: Header::No,
            quote: b'"',
            escape: b'"',
            force_not_null: vec![],
            force_null: vec![],
            force_quote: ForceQuote::None,
            encoding: None,
            freeze: false,
        }
    }

    /// CSV defaults: `,` delimiter, empty NULL string, `"` as quote and escape.
    pub fn csv() -> Self {
        Self {
            format: CopyFormat::Csv,
            delimiter: b',',
            null: String::new(),
            ..Self::text()
        }
    }

    /// Binary format.
    pub fn binary() -> Self {
        Self {
            format: CopyFormat::Binary,
            ..Self::text()
        }
    }

    /// Options of a parsed `COPY` statement (both the parenthesized list and
    /// the pre-9.0 forms such as `WITH CSV HEADER`, `DELIMITER AS ','`,
    /// `NULL AS ''`, `BINARY`), validated as PostgreSQL validates them.
    pub fn from_sql(
        options: &[CopyOption],
        legacy: &[CopyLegacyOption],
        is_from: bool,
    ) -> Result<CopyOptions, TemporaError> {
        let mut list: Vec<(String, CopyOptionArg)> = Vec::new();
        for o in options {
            let (name, arg) = match o {
                CopyOption::Format(id) => ("format", CopyOptionArg::Str(ident_name(id))),
                CopyOption::Freeze(b) => ("freeze", bool_str(*b)),
                CopyOption::Delimiter(c) => ("delimiter", CopyOptionArg::Str(c.to_string())),
                CopyOption::Null(s) => ("null", CopyOptionArg::Str(s.clone())),
                CopyOption::Header(b) => ("header", bool_str(*b)),
                CopyOption::Quote(c) => ("quote", CopyOptionArg::Str(c.to_string())),
                CopyOption::Escape(c) => ("escape", CopyOptionArg::Str(c.to_string())),
                CopyOption::ForceQuote(c) => ("force_quote", CopyOptionArg::Columns(idents(c))),
                CopyOption::ForceNotNull(c) => {
                    ("force_not_null", CopyOptionArg::Columns(idents(c)))
                }
                CopyOption::ForceNull(c) => ("force_null", CopyOptionArg::Columns(idents(c))),
                CopyOption::Encoding(s) => ("encoding", CopyOptionArg::Str(s.clone())),
            };
            list.push((name.to_string(), arg));
        }
        for o in legacy {
            match o {
                CopyLegacyOption::Binary => {
                    list.push(("format".into(), CopyOptionArg::Str("binary".into())))
                }
                CopyLegacyOption::Delimiter(c) => {
                    list.push(("delimiter".into(), CopyOptionArg::Str(c.to_string())))
                }
                CopyLegacyOption::Null(s) => {
                    list.push(("null".into(), CopyOptionArg::Str(s.clone())))
                }
                CopyLegacyOption::Header => list.push(("header".into(), CopyOptionArg::None)),
                CopyLegacyOption::Csv(csv) => {
                    list.push(("format".into(), CopyOptionArg::Str("csv".into())));
                    for c in csv {
                        let item = match c {
                            CopyLegacyCsvOption::Header => ("header", CopyOptionArg::None),
                            CopyLegacyCsvOption::Quote(q) => {
                                ("quote", CopyOptionArg::Str(q.to_string()))
                            }
                            CopyLegacyCsvOption::Escape(e) => {
                                ("escape", CopyOptionArg::Str(e.to_string()))
                            }
                            CopyLegacyCsvOption::ForceQuote(cols) => {
                                ("force_quote", CopyOptionArg::Columns(idents(cols)))
                            }
                            CopyLegacyCsvOption::ForceNotNull(cols) => {
                                ("force_not_null", CopyOptionArg::Columns(idents(cols)))
                            }
                        };
                        list.push((item.0.to_string(), item.1));
                    }
                }
                other => {
                    // Not part of PostgreSQL's COPY grammar.
                    let text = other.to_string();
                    let word = text.split_whitespace().next().unwrap_or("").to_string();
                    return Err(err(
                        SqlState::SYNTAX_ERROR,
                        format!("syntax error at or near \"{word}\""),
                    ));
                }
            }
        }
        Self::from_pg_options(&list, is_from)
    }

    /// Validates a list of (option name, argument) pairs exactly as
    /// PostgreSQL's ProcessCopyOptions does. Useful for forms the SQL parser
    /// cannot express (`HEADER MATCH`, `FORCE_QUOTE *`, multi-character
    /// delimiters that must be refused with PostgreSQL's message).
    pub fn from_pg_options(
        options: &[(String, CopyOptionArg)],
        is_from: bool,
    ) -> Result<CopyOptions, TemporaError> {
        let mut format: Option<CopyFormat> = None;
        let mut freeze: Option<bool> = None;
        let mut delim: Option<String> = None;
        let mut null: Option<String> = None;
        let mut header: Option<Header> = None;
        let mut quote: Option<String> = None;
        let mut escape: Option<String> = None;
        let mut force_quote: Option<ForceQuote> = None;
        let mut force_not_null: Option<Vec<String>> = None;
        let mut force_null: Option<Vec<String>> = None;
        let mut encoding: Option<String> = None;

        for (name, arg) in options {
            let name = name.to_ascii_lowercase();
            match name.as_str() {
                "format" => {
                    if format.is_some() {
                        return Err(conflicting());
                    }
                    let f = arg_string(&name, arg)?;
                    format = Some(match f.as_str() {
                        "text" => CopyFormat::Text,
                        "csv" => CopyFormat::Csv,
                        "binary" => CopyFormat::Binary,
                        _ => {
                            return Err(err(
                                SqlState::INVALID_PARAMETER_VALUE,
                                format!("COPY format \"{f}\" not recognized"),
                            ))
                        }
                    });
                }
                "freeze" => {
                    if freeze.is_some() {
                        return Err(conflicting());
                    }
                    freeze = Some(arg_bool(&name, arg)?);
                }
                "delimiter" => {
                    if delim.is_some() {
                        return Err(conflicting());
                    }
                    delim = Some(arg_string(&name, arg)?);
                }
                "null" => {
                    if null.is_some() {
                        return Err(conflicting());
                    }
                    null = Some(arg_string(&name, arg)?);
                }
                "header" => {
                    if header.is_some() {
                        return Err(conflicting());
                    }
                    header = Some(arg_header(&name, arg, is_from)?);
                }
                "quote" => {
                    if quote.is_some() {
                        return Err(conflicting());
                    }
                    quote = Some(arg_string(&name, arg)?);
                }
                "escape" => {
                    if escape.is_some() {
                        return Err(conflicting());
                    }
                    escape = Some(arg_string(&name, arg)?);
                }
                "force_quote" => {
                    if force_quote.is_some() {
                        return Err(conflicting());
                    }
                    force_quote = Some(match arg {
                        CopyOptionArg::Star => ForceQuote::All,
                        other => ForceQuote::Columns(arg_columns(&name, other)?),
                    });
                }
                "force_not_null" => {
                    if force_not_null.is_some() {
                        return Err(conflicting());
                    }
                    force_not_null = Some(arg_columns(&name, arg)?);
                }
                "force_null" => {
                    if force_null.is_some() {
                        return Err(conflicting());
                    }
                    force_null = Some(arg_columns(&name, arg)?);
                }
                "encoding" => {
                    if encoding.is_some() {
                        return Err(conflicting());
                    }
                    let e = arg_string(&name, arg)?;
                    check_encoding(&e)?;
                    encoding = Some(e);
                }
                _ => {
                    return Err(err(
                        SqlState::SYNTAX_ERROR,
                        format!("option \"{name}\" not recognized"),
                    ))
                }
            }
        }

        let format = format.unwrap_or(CopyFormat::Text);
        let csv = format == CopyFormat::Csv;
        let binary = format == CopyFormat::Binary;
        if binary && delim.is_some() {
            return Err(err(
                SqlState::SYNTAX_ERROR,
                "cannot specify DELIMITER in BINARY mode",
            ));
        }
        if binary && null.is_some() {
            return Err(err(
                SqlState::SYNTAX_ERROR,
                "cannot specify NULL in BINARY mode",
            ));
        }
        let delim = delim.unwrap_or_else(|| if csv { "," } else { "\t" }.into());
        let null = null.unwrap_or_else(|| if csv { "" } else { "\\N" }.into());
        let quote_given = quote.is_some();
        let escape_given = escape.is_some();
        let quote = quote.unwrap_or_else(|| "\"".into());
        let escape = escape.unwrap_or_else(|| quote.clone());

        if delim.len() != 1 {
            return Err(err(
                SqlState::FEATURE_NOT_SUPPORTED,
                "COPY delimiter must be a single one-byte character",
            ));
        }
        if delim.contains(['\r', '\n']) {
            return Err(err(
                SqlState::INVALID_PARAMETER_VALUE,
                "COPY delimiter cannot be newline or carriage return",
            ));
        }
        if null.contains(['\r', '\n']) {
            return Err(err(
                SqlState::INVALID_PARAMETER_VALUE,
                "COPY null representation cannot use newline or carriage return",
            ));
        }
        let d = delim.as_bytes()[0];
        if !csv && b"\\.abcdefghijklmnopqrstuvwxyz0123456789".contains(&d) {
            return Err(err(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("COPY delimiter cannot be \"{delim}\""),
            ));
        }
        let header = header.unwrap_or(Header::No);
        if binary && header != Header::No {
            return Err(err(
                SqlState::FEATURE_NOT_SUPPORTED,
                "cannot specify HEADER in BINARY mode",
            ));
        }
        if !csv && quote_given {
            return Err(err(
                SqlState::FEATURE_NOT_SUPPORTED,
                "COPY quote available only in CSV mode",
            ));
        }
        if csv && quote.len() != 1 {
            return Err(err(
                SqlState::FEATURE_NOT_SUPPORTED,
                "COPY quote must be a single one-byte character",
            ));
        }
        if csv && d == quote.as_bytes()[0] {
            return Err(err(
                SqlState::INVALID_PARAMETER_VALUE,
                "COPY delimiter and quote must be different",
            ));
        }
        if !csv && escape_given {
            return Err(err(
                SqlState::FEATURE_NOT_SUPPORTED,
                "COPY escape available only in CSV mode",
            ));
        }
        if csv && escape.len() != 1 {
            return Err(err(
                SqlState::FEATURE_NOT_SUPPORTED,
                "COPY escape must be a single one-byte character",
            ));
        }
        if force_quote.is_some() {
            if !csv {
                return Err(err(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "COPY force quote available only in CSV mode",
                ));
            }
            if is_from {
                return Err(err(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "COPY force quote only available using COPY TO",
                ));
            }
        }
        if force_not_null.is_some() {
            if !csv {
                return Err(err(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "COPY force not null available only in CSV mode",
                ));
            }
            if !is_from {
                return Err(err(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "COPY force not null only available using COPY FROM",
                ));
            }
        }
        if force_null.is_some() {
            if !csv {
                return Err(err(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "COPY force null available only in CSV mode",
                ));
            }
            if !is_from {
                return Err(err(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "COPY force null only available using COPY FROM",
                ));
            }
        }
        if null.as_bytes().contains(&d) {
            return Err(err(
                SqlState::FEATURE_NOT_SUPPORTED,
                "COPY delimiter must not appear in the NULL specification",
            ));
        }
        if csv && null.as_bytes().contains(&quote.as_bytes()[0]) {
            return Err(err(
                SqlState::FEATURE_NOT_SUPPORTED,
                "CSV quote character must not appear in the NULL specification",
            ));
        }
        Ok(CopyOptions {
            format,
            delimiter: d,
            null,
            header,
            // In text and binary mode these are never used; keep a valid byte.
            quote: if csv { quote.as_bytes()[0] } else { b'"' },
            escape: if csv { escape.as_bytes()[0] } else { b'"' },
            force_not_null: force_not_null.unwrap_or_default(),
            force_null: force_null.unwrap_or_default(),
            force_quote: force_quote.unwrap_or(ForceQuote::None),
            encoding,
            freeze: freeze.unwrap_or(false),
        })
    }
}
