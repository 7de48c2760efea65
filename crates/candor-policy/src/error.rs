//! Policy file errors, each located at `file:line:column`.

use std::fmt;

/// One problem in a policy file. `line` and `column` are 1-based; the column counts characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl PolicyError {
    /// Locates byte offset `offset` of `text` (clamped to the text) as line and column.
    pub(crate) fn at(file: &str, text: &str, offset: usize, message: String) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Self {
            file: file.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            message,
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for PolicyError {}

/// Every problem found in a policy file, in the order they appear in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            e.fmt(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters() {
        let text = "a = 1\né = \"x\" # ü\nb";
        let e = PolicyError::at("p.toml", text, text.find('b').expect("b"), "m".into());
        assert_eq!((e.line, e.column), (3, 1));
        let e = PolicyError::at("p.toml", text, text.find('#').expect("#"), "m".into());
        assert_eq!((e.line, e.column), (2, 9));
        assert_eq!(e.to_string(), "p.toml:2:9: m");
        let e = PolicyError::at("p.toml", text, 10_000, "m".into());
        assert_eq!((e.line, e.column), (3, 2));
    }
}
