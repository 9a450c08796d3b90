//! Reading `NAME=value` assignments out of the places credentials hide:
//! `.env` files, shell exports (sh, fish, csh, PowerShell), YAML and JSON
//! `name: value` pairs, TOML `key = "value"` (with `[table]` prefixes), and
//! the process environment. Line-based on purpose: a linter must point at a
//! line, and must not fail on a file it only half understands.

use secrecy::SecretString;

/// One `name = value` found in a source.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// 1-based line in the file; `None` for the process environment.
    pub line: Option<usize>,
    /// The name as written (TOML keys prefixed with their table, `oauth.token_url`).
    pub name: String,
    /// The value, unquoted. May be a secret: never printed, only redacted.
    pub value: SecretString,
}

/// The name in a normal form for matching: upper case, `-` and `.` as `_`.
pub fn normal_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// Prefixes that introduce an assignment, and whether the name and value are
/// then separated by whitespace (fish `set -gx`, csh `setenv`) rather than `=`/`:`.
const LEADERS: &[(&str, bool)] = &[
    ("export ", false),
    ("declare -x ", false),
    ("typeset -x ", false),
    ("set -gx ", true),
    ("set -x ", true),
    ("setenv ", true),
    ("$env:", false),
    ("- ", false),
];

/// Every assignment in `text`, in order.
pub fn parse(text: &str) -> Vec<Assignment> {
    let mut out = Vec::new();
    let mut table = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            table = line
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned();
            continue;
        }
        if let Some((name, value)) = parse_line(line) {
            let name = if table.is_empty() || name.contains('.') {
                name
            } else {
                format!("{table}.{name}")
            };
            out.push(Assignment {
                line: Some(i + 1),
                name,
                value: SecretString::from(value),
            });
        }
    }
    out
}

fn parse_line(line: &str) -> Option<(String, String)> {
    let mut rest = line;
    let mut spaced = false;
    for (leader, by_space) in LEADERS {
        if let Some(after) = rest.strip_prefix(leader) {
            rest = after.trim_start();
            spaced = *by_space;
            break;
        }
    }
    let (name, after) = take_name(rest)?;
    let after = after.trim_start();
    let value = if spaced {
        after
    } else {
        after.strip_prefix(['=', ':'])?.trim_start()
    };
    let value = take_value(value)?;
    Some((name, value))
}

/// A name: optionally quoted, starting with a letter or `_`.
fn take_name(text: &str) -> Option<(String, &str)> {
    let (quote, body) = match text.chars().next()? {
        q @ ('"' | '\'') => (Some(q), &text[1..]),
        _ => (None, text),
    };
    let end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .unwrap_or(body.len());
    let name = &body[..end];
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return None;
    }
    let mut rest = &body[end..];
    if let Some(q) = quote {
        rest = rest.strip_prefix(q)?;
    }
    Some((name.to_owned(), rest))
}

/// A value: quoted (up to the closing quote) or bare (up to ` #` or the end,
/// without a trailing `,` or `;`). Empty values are not assignments.
fn take_value(text: &str) -> Option<String> {
    let value = match text.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let body = &text[1..];
            let end = body.find(q)?;
            body[..end].to_owned()
        }
        _ => {
            let bare = text.split(" #").next().unwrap_or_default();
            bare.trim().trim_end_matches([',', ';']).trim().to_owned()
        }
    };
    (!value.is_empty()).then_some(value)
}

/// The process environment as assignments (non-UTF-8 entries skipped).
pub fn environment(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Assignment> {
    vars.into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| Assignment {
            line: None,
            name,
            value: SecretString::from(value),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn every_dialect_yields_name_line_and_value() {
        let text = r#"
# a comment
TWILIO_ACCOUNT_SID=AC01
export TWILIO_AUTH_TOKEN="tok en" # quoted keeps spaces
declare -x NODE_ENV=production
set -gx FISH_VAR fishvalue
setenv CSH_VAR cshvalue
$env:PS_VAR = "psvalue"
  - COMPOSE_VAR=composevalue
yaml_key: yamlvalue # trailing comment
"json_key": "jsonvalue",
[oauth]
token_url = "https://example.test/token"
EMPTY=
not an assignment
"#;
        let got: Vec<(usize, String, String)> = parse(text)
            .into_iter()
            .map(|a| {
                (
                    a.line.unwrap_or(0),
                    a.name,
                    a.value.expose_secret().to_owned(),
                )
            })
            .collect();
        let want = [
            (3, "TWILIO_ACCOUNT_SID", "AC01"),
            (4, "TWILIO_AUTH_TOKEN", "tok en"),
            (5, "NODE_ENV", "production"),
            (6, "FISH_VAR", "fishvalue"),
            (7, "CSH_VAR", "cshvalue"),
            (8, "PS_VAR", "psvalue"),
            (9, "COMPOSE_VAR", "composevalue"),
            (10, "yaml_key", "yamlvalue"),
            (11, "json_key", "jsonvalue"),
            (13, "oauth.token_url", "https://example.test/token"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(l, n, v)| (*l, (*n).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(normal_name("oauth.client-secret"), "OAUTH_CLIENT_SECRET");
    }
}
