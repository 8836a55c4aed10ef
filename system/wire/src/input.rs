//! Reading one input file with a size cap, before anything parses it: the one way every
//! file a person hands the `sovereign` binary is read (scenarios, failure files, game-day
//! plans, power telemetry, report data, content to publish, TLS certificates and keys).
//!
//! The cap holds for every kind of file: a regular file, a device such as `/dev/zero`, a
//! FIFO or a file that grows while it is read. The read asks for at most `cap + 1` bytes
//! ([`std::io::Read::take`]) and refuses the file when it gets more than `cap`, so no
//! input can make the reader allocate more than `cap + 1` bytes, whatever its metadata
//! claims. Errors name the file, the cap and what the file was for (the flag or field
//! that named it), and for text, the line and byte where it stops being UTF-8.
//!
//! Map: [`read_capped`] (bytes), [`read_capped_text`] (UTF-8 text), [`InputError`].
//!
//! Not covered: what a file means (each parser says so, with its own file/line/field
//! errors); files a program writes and reads back itself (the stores, the audit log).

use std::io::Read;
use std::path::Path;

/// Why an input file could not be read. Displayed as `file: detail`, or
/// `file:line: detail` when a line is known.
#[derive(Debug)]
pub enum InputError {
    /// The file could not be opened or read.
    Io {
        /// The file, as given.
        file: String,
        /// What the file was for (e.g. "scenario file", "--tls-cert file").
        what: String,
        /// The OS's error.
        source: std::io::Error,
    },
    /// The file holds more than the cap.
    TooLarge {
        /// The file, as given.
        file: String,
        /// What the file was for.
        what: String,
        /// The most bytes accepted.
        cap: u64,
    },
    /// The file is not UTF-8 text.
    NotUtf8 {
        /// The file, as given.
        file: String,
        /// What the file was for.
        what: String,
        /// 1-based line of the first bad byte.
        line: usize,
        /// 1-based byte column of it in its line.
        column: usize,
        /// 0-based offset of it in the file.
        offset: usize,
        /// The bad byte.
        byte: u8,
    },
}

impl InputError {
    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            InputError::Io { file, .. }
            | InputError::TooLarge { file, .. }
            | InputError::NotUtf8 { file, .. } => file,
        }
    }

    /// The 1-based line where the file went wrong, when there is one.
    pub fn line(&self) -> Option<usize> {
        match self {
            InputError::NotUtf8 { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// What went wrong and what was expected, without the file and line.
    pub fn detail(&self) -> String {
        match self {
            InputError::Io { what, source, .. } => format!("cannot read the {what}: {source}"),
            InputError::TooLarge { what, cap, .. } => format!(
                "the {what} is larger than {cap} bytes ({}), the most accepted; expected a smaller file",
                human(*cap)
            ),
            InputError::NotUtf8 {
                what,
                line,
                column,
                offset,
                byte,
                ..
            } => format!(
                "the {what} is not UTF-8 text: byte {offset} (0x{byte:02x}, column {column} of line {line}) starts no valid UTF-8 character; expected UTF-8 text"
            ),
        }
    }
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line() {
            Some(line) => write!(f, "{}:{line}: {}", self.file(), self.detail()),
            None => write!(f, "{}: {}", self.file(), self.detail()),
        }
    }
}

impl std::error::Error for InputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InputError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `n` bytes for a person: `1 MiB`, `16 KiB`, `1000 bytes`.
fn human(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if n >= size && n % size == 0 {
            return format!("{} {unit}", n / size);
        }
    }
    format!("{n} bytes")
}

/// Read the whole file at `path`, refusing it if it holds more than `cap` bytes; `what`
/// says what the file is for, naming the flag or field when there is one (`"scenario
/// file"`, `"--tls-key file"`), for errors.
pub fn read_capped(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>, InputError> {
    let file = path.display().to_string();
    let io = |source| InputError::Io {
        file: file.clone(),
        what: what.to_string(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    // The metadata's length is only a hint (0 for devices and FIFOs): allocate for at
    // most the cap, read at most one byte more than it.
    let hint = f
        .metadata()
        .map(|m| m.len())
        .unwrap_or(0)
        .min(cap.saturating_add(1));
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    f.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > cap {
        return Err(InputError::TooLarge {
            file,
            what: what.to_string(),
            cap,
        });
    }
    Ok(bytes)
}

/// [`read_capped`], then UTF-8: the error names the line, column and offset of the first
/// byte that is not.
pub fn read_capped_text(path: &Path, cap: u64, what: &str) -> Result<String, InputError> {
    let bytes = read_capped(path, cap, what)?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let before = &bytes[..offset];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1);
        InputError::NotUtf8 {
            file: path.display().to_string(),
            what: what.to_string(),
            line,
            column: offset - line_start + 1,
            offset,
            byte: bytes[offset],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sovereign-wire-input-{}-{name}",
            std::process::id()
        ));
        std::fs::write(&dir, bytes).unwrap();
        dir
    }

    #[test]
    fn a_file_up_to_the_cap_is_read_whole() {
        // Goal: exactly `cap` bytes pass, one more is refused naming the file and the cap.
        let p = temp("cap", &[b'a'; 100]);
        assert_eq!(read_capped(&p, 100, "test file").unwrap().len(), 100);
        let e = read_capped(&p, 99, "test file").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, InputError::TooLarge { cap: 99, .. }), "{msg}");
        assert!(
            msg.starts_with(&format!(
                "{}: the test file is larger than 99 bytes",
                p.display()
            )),
            "{msg}"
        );
        std::fs::remove_file(p).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn dev_zero_is_refused_after_the_cap() {
        // Goal: an endless device is read only up to cap + 1 bytes, then refused.
        let e = read_capped(Path::new("/dev/zero"), 1 << 20, "scenario file").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/zero: the scenario file is larger than 1048576 bytes (1 MiB), the most accepted; expected a smaller file"
        );
    }

    #[test]
    fn bad_utf8_names_line_column_and_byte() {
        // Goal: the first byte that is not UTF-8 is located by line, column and offset.
        let p = temp("utf8", b"a = 1\nb = \"x\xffy\"\n");
        let e = read_capped_text(&p, 1000, "scenario file").unwrap_err();
        assert!(
            matches!(
                e,
                InputError::NotUtf8 {
                    line: 2,
                    column: 7,
                    offset: 12,
                    byte: 0xff,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string().starts_with(&format!("{}:2: ", p.display())),
            "{e}"
        );
        assert_eq!(read_capped_text(&p, 1000, "x").unwrap_err().line(), Some(2));
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn a_missing_file_names_itself_and_its_purpose() {
        let e = read_capped(Path::new("/nonexistent/x.toml"), 10, "plan file").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/x.toml: cannot read the plan file: "),
            "{e}"
        );
    }
}
