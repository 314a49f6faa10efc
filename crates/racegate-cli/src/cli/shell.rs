//! Split a `--a 'CMD…'` command line into words the way a POSIX shell would, without running
//! a shell: the build is started directly, so its exit status and signals are its own (a shell
//! in between would turn a SIGSEGV into exit code 139 and keep the pipes open).
//!
//! Supported: blanks between words, `'single quotes'`, `"double quotes"` (where `\` escapes
//! `"`, `\`, `$` and `` ` ``), and `\` outside quotes. Not supported, and refused with an error
//! instead of being silently mangled: variables, globs, pipes, redirections, `;`, `&`.

/// Why a command line cannot be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// Nothing but blanks.
    #[error("the command is empty")]
    Empty,
    /// A quote is never closed.
    #[error("the {0} quote opened at character {1} is never closed")]
    Unclosed(&'static str, usize),
    /// A trailing backslash escapes nothing.
    #[error("the command ends with a lone `\\`")]
    TrailingBackslash,
    /// A shell operator that would need a shell.
    #[error(
        "`{0}` at character {1} needs a shell; wrap the command in a script, or use `sh -c '…'`"
    )]
    ShellSyntax(char, usize),
}

/// Split `line` into words.
pub fn split(line: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().enumerate().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, c)) => word.push(c),
                        None => return Err(SplitError::Unclosed("single", i + 1)),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.peek() {
                            Some(&(_, e @ ('"' | '\\' | '$' | '`'))) => {
                                word.push(e);
                                chars.next();
                            }
                            Some(_) => word.push('\\'),
                            None => return Err(SplitError::Unclosed("double", i + 1)),
                        },
                        Some((j, '$' | '`')) => {
                            let c = line.chars().nth(j).unwrap_or('$');
                            return Err(SplitError::ShellSyntax(c, j + 1));
                        }
                        Some((_, c)) => word.push(c),
                        None => return Err(SplitError::Unclosed("double", i + 1)),
                    }
                }
            }
            '\\' => match chars.next() {
                Some((_, c)) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err(SplitError::TrailingBackslash),
            },
            '|' | '&' | ';' | '<' | '>' | '$' | '`' | '*' | '?' | '(' | ')' => {
                return Err(SplitError::ShellSyntax(c, i + 1))
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err(SplitError::Empty);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split("./server --port {port} --name 'my build' \"x \\\"y\\\"\" a\\ b").unwrap(),
            ["./server", "--port", "{port}", "--name", "my build", "x \"y\"", "a b"]
        );
        assert_eq!(split("  a   ''  b ").unwrap(), ["a", "", "b"]);
        assert_eq!(split("a'b'\"c\"").unwrap(), ["abc"]);
    }

    #[test]
    fn refuses_what_needs_a_shell() {
        assert_eq!(split("   "), Err(SplitError::Empty));
        assert_eq!(split("a 'b"), Err(SplitError::Unclosed("single", 3)));
        assert_eq!(split("a \"b"), Err(SplitError::Unclosed("double", 3)));
        assert_eq!(split("a \\"), Err(SplitError::TrailingBackslash));
        assert_eq!(split("a | b"), Err(SplitError::ShellSyntax('|', 3)));
        assert_eq!(split("a $HOME"), Err(SplitError::ShellSyntax('$', 3)));
        assert_eq!(split("a \"$HOME\""), Err(SplitError::ShellSyntax('$', 4)));
        assert!(split("a > out")
            .unwrap_err()
            .to_string()
            .contains("needs a shell"));
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = split(&s);
        }

        #[test]
        fn single_quoting_round_trips(words in proptest::collection::vec("[^']{0,12}", 1..6)) {
            let line = words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" ");
            prop_assert_eq!(split(&line).unwrap(), words);
        }
    }
}
