//! POSIX shell quoting for the pod's `sh -c` command line.
//!
//! Invariant: for any argument without NUL, `sh -c "printf '%s\0' <quoted>"`
//! prints the argument byte for byte and runs nothing — single quotes stop
//! every expansion, and a quote inside is written `'\''`. NUL cannot be in an
//! argv at all, so it is refused rather than silently cut.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("argument {index} contains a NUL byte, which a command line cannot carry")]
pub struct NulInArgument {
    pub index: usize,
}

/// `'…'` with each `'` written as `'\''`.
pub fn quote(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Quotes and joins every argument with spaces.
pub fn quote_all(args: &[String]) -> Result<String, NulInArgument> {
    if let Some(index) = args.iter().position(|a| a.contains('\0')) {
        return Err(NulInArgument { index });
    }
    Ok(args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn quotes_single_quotes() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote_all(&["a b".into(), "$x".into()]).unwrap(), "'a b' '$x'");
        assert_eq!(quote_all(&["ok".into(), "a\0b".into()]), Err(NulInArgument { index: 1 }));
    }

    /// Runs `sh -c` with the quoted args and returns what each arrived as.
    fn through_sh(args: &[String]) -> Vec<Vec<u8>> {
        let dir = std::env::temp_dir().join(format!("ck8s-quote-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let canary = dir.join("canary");
        let _ = std::fs::remove_file(&canary);
        let script = format!("printf '%s\\0' {}", quote_all(args).unwrap());
        let out = Command::new("sh").arg("-c").arg(script).env("CANARY", &canary).current_dir(&dir).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!canary.exists(), "an argument executed a command");
        let mut parts: Vec<Vec<u8>> = out.stdout.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
        parts.pop(); // after the last NUL
        parts
    }

    #[test]
    fn hostile_arguments_arrive_byte_identical_and_nothing_runs() {
        let hostile: Vec<String> = [
            "$(touch \"$CANARY\")",
            "`touch \"$CANARY\"`",
            "'; touch \"$CANARY\"; echo '",
            "\"$(touch $CANARY)\"",
            "a\nb\r\nc",
            "${CANARY:?}",
            "\\'\\\\'",
            "*",
            "~",
            "-n",
            "日本語 ünïcödé \u{1F600}",
            "",
            "'",
            "''''",
            "!event",
            "\t\x1b[31mred",
        ]
        .map(str::to_owned)
        .to_vec();
        let got = through_sh(&hostile);
        let want: Vec<Vec<u8>> = hostile.iter().map(|s| s.as_bytes().to_vec()).collect();
        assert_eq!(got, want);
    }

    /// Property: random strings (any char but NUL) survive the round trip.
    #[test]
    fn random_strings_round_trip() {
        // A small xorshift keeps the test deterministic and dependency-free.
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet: Vec<char> = "ab '\"`$(){}[]|&;<>*?~!#\\\n\t\r%=é漢\u{1F600}\u{7f}\u{1}".chars().collect();
        for _ in 0..40 {
            let args: Vec<String> = (0..(next() % 6 + 1))
                .map(|_| (0..(next() % 24)).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect())
                .collect();
            let got = through_sh(&args);
            let want: Vec<Vec<u8>> = args.iter().map(|s| s.as_bytes().to_vec()).collect();
            assert_eq!(got, want, "{args:?}");
        }
    }
}
