//! The parenthesized option list of `COPY ... FROM STDIN | TO STDOUT (...)`,
//! read from the statement text with PostgreSQL's generic option grammar
//! (`name [argument]`, the argument a word, string, number, `*` or a
//! parenthesized list).
//!
//! The SQL parser knows a fixed set of COPY options and rejects the rest
//! with a bare syntax error, while PostgreSQL accepts any name here and
//! validates it afterwards with its own messages (`option "x" not
//! recognized`, `HEADER MATCH`, `COPY delimiter must be a single one-byte
//! character`, ...). So the list is taken out of the text here — replaced by
//! spaces, so positions in the rest of the query stay right — and handed to
//! [`tempora_copy::CopyOptions::from_pg_options`].

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};
use tempora_common::{Result, TemporaError};
use tempora_copy::CopyOptionArg;

/// Options of one COPY statement as (lowercased name, argument) pairs.
pub type OptionList = Vec<(String, CopyOptionArg)>;

/// A query text with the option lists of its COPY statements taken out.
#[derive(Debug)]
pub struct Extracted {
    /// The text with each option list (and the `WITH` before it) blanked.
    pub sql: String,
    /// One entry per COPY statement, in order: its option list, or None when
    /// it has none in parentheses (no options, or the legacy form).
    pub options: Vec<Option<OptionList>>,
}

/// None when the text holds no COPY statement to take options from (or does
/// not tokenize: the parser then reports it).
pub fn extract(sql: &str) -> Result<Option<Extracted>> {
    if !sql
        .as_bytes()
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"copy"))
    {
        return Ok(None);
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location() else {
        return Ok(None);
    };
    let tokens: Vec<TokenWithSpan> = tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let offsets = LineOffsets::new(sql);
    let mut blank: Vec<(usize, usize)> = Vec::new();
    let mut options = Vec::new();
    let mut start = 0;
    while start < tokens.len() {
        let mut depth = 0i32;
        let mut end = start;
        while end < tokens.len() {
            match tokens[end].token {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                Token::SemiColon if depth == 0 => break,
                _ => {}
            }
            end += 1;
        }
        let stmt = &tokens[start..end];
        if stmt.first().is_some_and(|t| is_word(&t.token, "copy")) {
            options.push(copy_options(sql, &offsets, stmt, &mut blank)?);
        }
        start = end + 1;
    }
    if options.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut out = sql.as_bytes().to_vec();
    for (from, to) in blank {
        for b in &mut out[from..to] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    }
    // Only whole tokens (ASCII-delimited) were blanked: still UTF-8.
    let sql = String::from_utf8(out).map_err(|e| TemporaError::internal(e.to_string()))?;
    Ok(Some(Extracted { sql, options }))
}

fn is_word(t: &Token, word: &str) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// The option list after `STDIN`/`STDOUT` of one COPY statement's tokens.
fn copy_options(
    sql: &str,
    offsets: &LineOffsets,
    stmt: &[TokenWithSpan],
    blank: &mut Vec<(usize, usize)>,
) -> Result<Option<OptionList>> {
    let mut depth = 0i32;
    let mut at = None;
    for (i, t) in stmt.iter().enumerate() {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ if depth == 0 && (is_word(&t.token, "stdin") || is_word(&t.token, "stdout")) => {
                at = Some(i + 1);
                break;
            }
            _ => {}
        }
    }
    let Some(mut i) = at else {
        return Ok(None);
    };
    let from = stmt.get(i).map(|t| offsets.byte(t.span.start));
    if stmt.get(i).is_some_and(|t| is_word(&t.token, "with")) {
        i += 1;
    }
    if !matches!(stmt.get(i).map(|t| &t.token), Some(Token::LParen)) {
        return Ok(None);
    }
    let mut p = OptionParser {
        sql,
        offsets,
        tokens: stmt,
        pos: i + 1,
    };
    let list = p.list()?;
    // p.pos is just past the closing parenthesis.
    let close = &stmt[p.pos - 1];
    let to = offsets.byte(close.span.start) + 1;
    if let Some(t) = stmt.get(p.pos) {
        return Err(p.syntax_error(t));
    }
    blank.push((from.unwrap_or(to), to));
    Ok(Some(list))
}

struct OptionParser<'a> {
    sql: &'a str,
    offsets: &'a LineOffsets<'a>,
    tokens: &'a [TokenWithSpan],
    pos: usize,
}

impl OptionParser<'_> {
    fn next(&mut self) -> Result<&TokenWithSpan> {
        let t = self.tokens.get(self.pos).ok_or_else(|| {
            TemporaError::syntax("syntax error at end of input")
                .with_position(self.sql.chars().count() + 1)
        })?;
        self.pos += 1;
        Ok(t)
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|t| &t.token)
    }

    fn syntax_error(&self, t: &TokenWithSpan) -> TemporaError {
        TemporaError::syntax(format!("syntax error at or near \"{}\"", t.token))
            .with_position(self.offsets.char_position(t.span.start))
    }

    /// `name [arg] {, name [arg]} )`
    fn list(&mut self) -> Result<OptionList> {
        let mut out = Vec::new();
        loop {
            let t = self.next()?.clone();
            let name = match &t.token {
                Token::Word(w) if w.quote_style.is_none() => w.value.to_lowercase(),
                Token::Word(w) => w.value.clone(),
                _ => return Err(self.syntax_error(&t)),
            };
            let arg = match self.peek() {
                Some(Token::Comma | Token::RParen) => CopyOptionArg::None,
                _ => self.arg()?,
            };
            out.push((name, arg));
            let t = self.next()?.clone();
            match t.token {
                Token::Comma => continue,
                Token::RParen => return Ok(out),
                _ => return Err(self.syntax_error(&t)),
            }
        }
    }

    fn arg(&mut self) -> Result<CopyOptionArg> {
        let t = self.next()?.clone();
        Ok(match &t.token {
            Token::Word(w) if w.quote_style.is_none() => CopyOptionArg::Str(w.value.to_lowercase()),
            Token::Word(w) => CopyOptionArg::Str(w.value.clone()),
            Token::SingleQuotedString(s)
            | Token::EscapedStringLiteral(s)
            | Token::NationalStringLiteral(s) => CopyOptionArg::Str(s.clone()),
            Token::Number(n, _) => number(n),
            Token::Plus | Token::Minus => {
                let sign = if t.token == Token::Minus { "-" } else { "" };
                let n = self.next()?.clone();
                match &n.token {
                    Token::Number(v, _) => number(&format!("{sign}{v}")),
                    _ => return Err(self.syntax_error(&n)),
                }
            }
            Token::Mul => CopyOptionArg::Star,
            Token::LParen => {
                let mut cols = Vec::new();
                loop {
                    let c = self.next()?.clone();
                    match &c.token {
                        Token::Word(w) if w.quote_style.is_none() => {
                            cols.push(w.value.to_lowercase())
                        }
                        Token::Word(w) => cols.push(w.value.clone()),
                        Token::SingleQuotedString(s) => cols.push(s.clone()),
                        _ => return Err(self.syntax_error(&c)),
                    }
                    let sep = self.next()?.clone();
                    match sep.token {
                        Token::Comma => continue,
                        Token::RParen => break,
                        _ => return Err(self.syntax_error(&sep)),
                    }
                }
                CopyOptionArg::Columns(cols)
            }
            _ => return Err(self.syntax_error(&t)),
        })
    }
}

fn number(text: &str) -> CopyOptionArg {
    match text.parse::<i64>() {
        Ok(n) => CopyOptionArg::Int(n),
        Err(_) => CopyOptionArg::Str(text.to_string()),
    }
}

/// Turns the tokenizer's (line, column) locations into byte offsets and
/// PostgreSQL's 1-based character positions.
struct LineOffsets<'a> {
    sql: &'a str,
    /// Byte offset where each line starts.
    starts: Vec<usize>,
}

impl<'a> LineOffsets<'a> {
    fn new(sql: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        Self { sql, starts }
    }

    fn byte(&self, loc: Location) -> usize {
        let line = (loc.line as usize)
            .saturating_sub(1)
            .min(self.starts.len() - 1);
        let start = self.starts[line];
        self.sql[start..]
            .char_indices()
            .nth((loc.column as usize).saturating_sub(1))
            .map_or(self.sql.len(), |(i, _)| start + i)
    }

    fn char_position(&self, loc: Location) -> usize {
        self.sql[..self.byte(loc)].chars().count() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(sql: &str) -> (String, Vec<Option<OptionList>>) {
        let e = extract(sql).unwrap().expect("options found");
        (e.sql, e.options)
    }

    #[test]
    fn takes_out_the_option_list_and_keeps_positions() {
        let sql =
            "SELECT 1; COPY t FROM STDIN WITH (FORMAT csv, HEADER MATCH, DELIMITER '|'); SELECT 2";
        let (text, options) = opts(sql);
        assert_eq!(text.len(), sql.len());
        assert!(text.starts_with("SELECT 1; COPY t FROM STDIN "));
        assert!(text.ends_with("; SELECT 2"));
        assert!(!text.contains("FORMAT"));
        assert_eq!(
            options,
            vec![Some(vec![
                ("format".into(), CopyOptionArg::Str("csv".into())),
                ("header".into(), CopyOptionArg::Str("match".into())),
                ("delimiter".into(), CopyOptionArg::Str("|".into())),
            ])]
        );
    }

    #[test]
    fn reads_every_argument_form() {
        let (_, options) = opts(
            "COPY (SELECT 1) TO STDOUT (format CSV, force_quote *, force_not_null (a, \"B\"), \
             header, bogus -3, \"Odd\" 'x')",
        );
        assert_eq!(
            options,
            vec![Some(vec![
                ("format".into(), CopyOptionArg::Str("csv".into())),
                ("force_quote".into(), CopyOptionArg::Star),
                (
                    "force_not_null".into(),
                    CopyOptionArg::Columns(vec!["a".into(), "B".into()])
                ),
                ("header".into(), CopyOptionArg::None),
                ("bogus".into(), CopyOptionArg::Int(-3)),
                ("Odd".into(), CopyOptionArg::Str("x".into())),
            ])]
        );
    }

    #[test]
    fn leaves_other_statements_alone() {
        assert!(extract("SELECT copy FROM t").unwrap().is_none());
        assert!(extract("COPY t FROM STDIN").unwrap().is_none());
        assert!(extract("COPY t FROM STDIN CSV HEADER").unwrap().is_none());
        // Parentheses of a query or column list are not options.
        assert!(extract("COPY (SELECT 1) TO STDOUT").unwrap().is_none());
        assert!(extract("COPY t (a, b) FROM STDIN").unwrap().is_none());
    }

    #[test]
    fn malformed_lists_are_syntax_errors_with_positions() {
        let e = extract("COPY t FROM STDIN (FORMAT csv HEADER)").unwrap_err();
        assert_eq!(e.code.0, "42601");
        assert_eq!(e.message, "syntax error at or near \"HEADER\"");
        assert_eq!(e.position, Some(31));
        let e = extract("COPY t FROM STDIN (FORMAT").unwrap_err();
        assert_eq!(e.message, "syntax error at end of input");
        let e = extract("COPY t FROM STDIN (FORMAT csv) extra").unwrap_err();
        assert_eq!(e.message, "syntax error at or near \"extra\"");
    }
}
