//! Reading a secret (a password, a token, an unseal key) from the terminal without echoing it.
//!
//! The CLI forbids `unsafe`, so the terminal is switched with `stty` (POSIX, on every Unix)
//! rather than with `termios` calls. Echo, canonical mode and signal keys are all turned off
//! while the secret is typed, and the line is read byte by byte: Enter ends it, Backspace and
//! Ctrl-U edit it, Ctrl-C aborts and Ctrl-D on an empty line is end of input. With signal keys
//! off, Ctrl-C cannot kill the process mid-read, so the terminal's settings are always put
//! back (a guard restores the exact settings `stty -g` saved).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::process::{Command, Stdio};

use zeroize::Zeroizing;

/// The terminal's settings as `stty -g` printed them; restored when dropped.
struct Saved<'a> {
    tty: &'a File,
    settings: String,
}

fn stty(tty: &File, args: &[&str]) -> io::Result<String> {
    let out = Command::new("stty")
        .args(args)
        .stdin(Stdio::from(tty.try_clone()?))
        .stderr(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("stty {} failed", args.join(" "))));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Drop for Saved<'_> {
    fn drop(&mut self) {
        let _ = stty(self.tty, &[&self.settings]);
    }
}

/// What one typed byte does to the line.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    Done,
    Abort,
    EndOfInput,
    Erase,
    Kill,
    Char(u8),
}

fn key(b: u8) -> Key {
    match b {
        b'\r' | b'\n' => Key::Done,
        0x03 => Key::Abort,
        0x04 => Key::EndOfInput,
        0x7f | 0x08 => Key::Erase,
        0x15 => Key::Kill,
        b => Key::Char(b),
    }
}

/// Applies typed bytes to a line; `Ok(Some(line))` once Enter is typed, `Ok(None)` at end of
/// input on an empty line, `Err` on Ctrl-C. The caller feeds one byte at a time.
fn edit(line: &mut Zeroizing<Vec<u8>>, b: u8) -> Option<io::Result<bool>> {
    match key(b) {
        Key::Done => Some(Ok(true)),
        Key::Abort => Some(Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "interrupted",
        ))),
        Key::EndOfInput if line.is_empty() => Some(Ok(false)),
        Key::EndOfInput => None,
        Key::Erase => {
            // Remove one whole UTF-8 character: its continuation bytes, then its first byte.
            while line.last().is_some_and(|b| b & 0xc0 == 0x80) {
                line.pop();
            }
            line.pop();
            None
        }
        Key::Kill => {
            line.clear();
            None
        }
        Key::Char(c) => {
            line.push(c);
            None
        }
    }
}

/// Prints `prompt` to `stderr` and reads one line from the controlling terminal with echo
/// off. `Ok(None)` at end of input.
pub fn read_hidden(prompt: &str, stderr: &mut dyn Write) -> io::Result<Option<Zeroizing<String>>> {
    let tty = OpenOptions::new().read(true).write(true).open("/dev/tty")?;
    let saved = Saved {
        tty: &tty,
        settings: stty(&tty, &["-g"])?,
    };
    stty(
        &tty,
        &["-echo", "-icanon", "-isig", "min", "1", "time", "0"],
    )?;
    // The prompt comes after echo is off, so whatever is typed once it shows is never echoed.
    let _ = write!(stderr, "{prompt}");
    let _ = stderr.flush();
    let mut line = Zeroizing::new(Vec::new());
    let mut byte = [0u8; 1];
    let mut reader = &tty;
    let outcome = loop {
        match reader.read(&mut byte) {
            Ok(0) => break Ok(!line.is_empty()),
            Ok(_) => {
                if let Some(done) = edit(&mut line, byte[0]) {
                    break done;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        }
    };
    drop(saved);
    let _ = writeln!(stderr);
    if !outcome? {
        return Ok(None);
    }
    let text = String::from_utf8(line.to_vec())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "input is not UTF-8"))?;
    Ok(Some(Zeroizing::new(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(bytes: &[u8]) -> (Option<io::Result<bool>>, String) {
        let mut line = Zeroizing::new(Vec::new());
        let mut last = None;
        for b in bytes {
            last = edit(&mut line, *b);
            if last.is_some() {
                break;
            }
        }
        (last, String::from_utf8_lossy(&line).into_owned())
    }

    #[test]
    fn line_editing_table() {
        let cases: &[(&[u8], Option<bool>, &str)] = &[
            (b"secret\r", Some(true), "secret"),
            (b"secret\n", Some(true), "secret"),
            (b"secx\x7fret\r", Some(true), "secret"),
            ("pé\x7f\x7fa\r".as_bytes(), Some(true), "a"),
            (b"junk\x15pw\r", Some(true), "pw"),
            (b"\x04", Some(false), ""),
            (b"ab\x04c\r", Some(true), "abc"),
            (b"half", None, "half"),
        ];
        for (input, want, text) in cases {
            let (got, line) = typed(input);
            let got = got.map(|r| r.unwrap());
            assert_eq!((got, line.as_str()), (*want, *text), "{input:?}");
        }
        let (got, _) = typed(b"pw\x03");
        assert_eq!(got.unwrap().unwrap_err().kind(), io::ErrorKind::Interrupted);
    }
}
