//! Reading a statement token by token, for the statements the SQL parser
//! does not take as PostgreSQL writes them (CREATE SEQUENCE, CREATE DATABASE).

use datafusion::sql::sqlparser::ast::ObjectName;
use datafusion::sql::sqlparser::tokenizer::Token;
use tempora_common::{Result, SqlState, TemporaError};

/// The tokens of a statement without whitespace, each with its byte offset.
pub(crate) struct Cursor<'a> {
    sql: &'a str,
    tokens: Vec<(Token, usize)>,
    pub(crate) at: usize,
}

impl<'a> Cursor<'a> {
    /// The tokens of `sql`; None when it does not tokenize (the parser then
    /// reports it).
    pub(crate) fn new(sql: &'a str) -> Option<Self> {
        let tokens = crate::located_tokens(sql)?
            .into_iter()
            .filter(|(t, _)| !matches!(t, Token::Whitespace(_)))
            .collect();
        Some(Self { sql, tokens, at: 0 })
    }

    /// PostgreSQL's 1-based character position of token `at`.
    pub(crate) fn position_of(&self, at: usize) -> usize {
        let offset = self.tokens.get(at).map_or(self.sql.len(), |(_, o)| *o);
        self.sql[..offset].chars().count() + 1
    }

    /// Every token of the statement.
    pub(crate) fn tokens(&self) -> &[(Token, usize)] {
        &self.tokens
    }

    pub(crate) fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(t, _)| t)
    }

    pub(crate) fn word(&self) -> Option<String> {
        match self.peek()? {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
            _ => None,
        }
    }

    pub(crate) fn eat(&mut self, word: &str) -> bool {
        let ok = self.word().as_deref() == Some(word);
        if ok {
            self.at += 1;
        }
        ok
    }

    /// PostgreSQL's syntax error at the current token.
    pub(crate) fn error(&self) -> TemporaError {
        match self.tokens.get(self.at) {
            Some((t, offset)) => TemporaError::syntax(format!("syntax error at or near \"{t}\""))
                .with_position(self.sql[..*offset].chars().count() + 1),
            None => TemporaError::syntax("syntax error at end of input")
                .with_position(self.sql.trim_end().chars().count() + 1),
        }
    }

    pub(crate) fn expect(&mut self, word: &str) -> Result<()> {
        if self.eat(word) {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    /// A dotted name: `s`, `public.s`, `"S"`.
    pub(crate) fn name(&mut self) -> Result<ObjectName> {
        let mut parts = vec![];
        loop {
            match self.peek() {
                Some(Token::Word(w)) => {
                    parts.push(datafusion::sql::sqlparser::ast::Ident {
                        value: w.value.clone(),
                        quote_style: w.quote_style,
                        span: datafusion::sql::sqlparser::tokenizer::Span::empty(),
                    });
                    self.at += 1;
                }
                _ => return Err(self.error()),
            }
            if self.peek() == Some(&Token::Period) {
                self.at += 1;
            } else {
                return Ok(ObjectName::from(parts));
            }
        }
    }

    /// A signed integer.
    pub(crate) fn number(&mut self) -> Result<i64> {
        let negative = match self.peek() {
            Some(Token::Minus) => {
                self.at += 1;
                true
            }
            Some(Token::Plus) => {
                self.at += 1;
                false
            }
            _ => false,
        };
        let Some(Token::Number(digits, _)) = self.peek() else {
            return Err(self.error());
        };
        let text = if negative {
            format!("-{digits}")
        } else {
            digits.clone()
        };
        let value = text.parse::<i64>().map_err(|_| {
            TemporaError::new(
                SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                format!("value \"{text}\" is out of range for type bigint"),
            )
        })?;
        self.at += 1;
        Ok(value)
    }
}
