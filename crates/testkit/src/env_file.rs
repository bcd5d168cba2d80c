//! The `KEY=VALUE` environment files in `deploy/env/`, parsed.
//!
//! docker compose reads the same files with `env_file:`, so the format is the part
//! both readers agree on: one `KEY=VALUE` per line, whole-line `#` comments, blank
//! lines, and values optionally wrapped in matching single or double quotes (which
//! are removed). Nothing is expanded and there are no inline comments.
//!
//! A line that does not fit is an error naming the file and the line, never skipped:
//! a setting silently ignored here but honoured by compose would make the two ways of
//! running Microcosm differ without anyone noticing.

use anyhow::{anyhow, bail};

/// The variables of one environment file, in file order, each name once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvFile {
    variables: Vec<(String, String)>,
}

impl EnvFile {
    /// Parses the text of a file; `origin` names it in errors (usually its path).
    pub fn parse(origin: &str, text: &str) -> anyhow::Result<Self> {
        let mut file = Self::default();
        for (index, line) in text.lines().enumerate() {
            let line_number = index + 1;
            let parsed = parse_line(line)
                .map_err(|problem| anyhow!("{origin}, line {line_number}: {problem}"))?;
            let Some((name, value)) = parsed else {
                continue;
            };
            if file.get(&name).is_some() {
                bail!(
                    "{origin}, line {line_number}: {name} is set a second time; \
                     keep one line per variable so every reader sees the same value"
                );
            }
            file.variables.push((name, value));
        }
        Ok(file)
    }

    /// The value of `name`, if the file sets it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.variables
            .iter()
            .find(|(existing, _)| existing == name)
            .map(|(_, value)| value.as_str())
    }

    /// Sets `name` to `value`: replaces the file's value in place, or adds it.
    pub fn set(&mut self, name: &str, value: String) {
        match self
            .variables
            .iter_mut()
            .find(|(existing, _)| existing == name)
        {
            Some((_, existing_value)) => *existing_value = value,
            None => self.variables.push((name.to_owned(), value)),
        }
    }

    /// The variables as `(name, value)` pairs, in file order.
    pub fn into_variables(self) -> Vec<(String, String)> {
        self.variables
    }
}

/// One line: `Ok(None)` for a blank line or a comment, `Err` saying what is wrong.
fn parse_line(line: &str) -> Result<Option<(String, String)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let Some((name, value)) = line.split_once('=') else {
        return Err(format!("expected NAME=VALUE, found {line:?}"));
    };
    let name = name.trim();
    if !is_variable_name(name) {
        return Err(format!(
            "{name:?} is not a variable name (letters, digits and _, not starting with a digit)"
        ));
    }
    Ok(Some((name.to_owned(), unquote(value.trim())?)))
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The value without its surrounding quotes, if it has a matching pair.
fn unquote(value: &str) -> Result<String, String> {
    for quote in ['"', '\''] {
        if let Some(rest) = value.strip_prefix(quote) {
            return match rest.strip_suffix(quote) {
                Some(inner) => Ok(inner.to_owned()),
                None => Err(format!(
                    "the value {value:?} opens a {quote} it never closes"
                )),
            };
        }
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Vec<(String, String)>> {
        EnvFile::parse("test.env", text).map(EnvFile::into_variables)
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn error(text: &str) -> String {
        format!("{:#}", parse(text).expect_err("a malformed file"))
    }

    #[test]
    fn reads_variables_in_order_skipping_comments_and_blank_lines() {
        let text = "# a comment\n\nRUST_LOG=info,sqlx=warn\n   # indented comment\nSEED_DEMO_DATA=true\r\n";
        assert_eq!(
            parse(text).unwrap(),
            pairs(&[("RUST_LOG", "info,sqlx=warn"), ("SEED_DEMO_DATA", "true")])
        );
    }

    #[test]
    fn trims_spaces_around_names_and_values() {
        assert_eq!(
            parse("  NAME = value  ").unwrap(),
            pairs(&[("NAME", "value")])
        );
    }

    #[test]
    fn keeps_equals_signs_and_hashes_inside_values() {
        assert_eq!(
            parse("DATABASE_URL=postgres://u:p@h/db?sslmode=disable#x").unwrap(),
            pairs(&[("DATABASE_URL", "postgres://u:p@h/db?sslmode=disable#x")])
        );
    }

    #[test]
    fn removes_one_matching_pair_of_single_or_double_quotes() {
        let text = "A=\"double quoted\"\nB='single quoted'\nC=\"it's\"\nD=\"\"";
        assert_eq!(
            parse(text).unwrap(),
            pairs(&[
                ("A", "double quoted"),
                ("B", "single quoted"),
                ("C", "it's"),
                ("D", "")
            ])
        );
    }

    #[test]
    fn an_empty_value_is_an_empty_string() {
        assert_eq!(parse("EMPTY=").unwrap(), pairs(&[("EMPTY", "")]));
    }

    #[test]
    fn a_line_without_equals_sign_is_an_error_naming_file_and_line() {
        let message = error("A=1\n\nnot a setting\n");
        assert!(message.contains("test.env, line 3"), "{message}");
        assert!(message.contains("not a setting"), "{message}");
    }

    #[test]
    fn an_unclosed_quote_is_an_error() {
        let message = error("A=\"open");
        assert!(message.contains("test.env, line 1"), "{message}");
        assert!(message.contains("never closes"), "{message}");
    }

    #[test]
    fn a_name_that_is_not_a_variable_name_is_an_error() {
        for line in ["=value", "1ABC=x", "MY-VAR=x", "export A=1"] {
            let message = error(line);
            assert!(
                message.contains("is not a variable name"),
                "{line}: {message}"
            );
        }
    }

    #[test]
    fn a_variable_set_twice_is_an_error_naming_the_second_line() {
        let message = error("A=1\nB=2\nA=3");
        assert!(message.contains("test.env, line 3"), "{message}");
        assert!(message.contains("A is set a second time"), "{message}");
    }

    #[test]
    fn set_replaces_a_value_in_place_and_appends_a_new_one() {
        let mut file = EnvFile::parse("test.env", "A=1\nB=2").unwrap();
        file.set("A", "one".to_owned());
        file.set("C", "3".to_owned());
        assert_eq!(file.get("A"), Some("one"));
        assert_eq!(
            file.into_variables(),
            pairs(&[("A", "one"), ("B", "2"), ("C", "3")])
        );
    }
}
