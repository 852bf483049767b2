//! Copying to the clipboard: the system's own where a clipboard program is found, tmux's buffer inside
//! tmux, and the terminal (OSC 52) otherwise, refusing anything that looks like a credential. Only the
//! first two can confirm that the text arrived.

use std::borrow::Cow;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

/// Terminals commonly cap an OSC 52 payload near 100 kB; a larger copy would be silently cut.
pub const MAX_COPY_BYTES: usize = 74_000;

/// Why a copy was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CopyRefused {
    #[error("not copied: the text looks like a credential ({why})")]
    LooksLikeSecret { why: &'static str },
    #[error(
        "not copied: {bytes} bytes is more than the terminal clipboard takes ({MAX_COPY_BYTES})"
    )]
    TooLong { bytes: usize },
    #[error("not copied: nothing to copy")]
    Empty,
}

/// The text as it may reach the clipboard: pasted into a terminal, an ESC or bidi control from the
/// server would act there, so only line breaks survive (see [`crate::untrusted::text::multi_line`]).
pub fn clean(text: &str) -> Cow<'_, str> {
    crate::untrusted::text::multi_line(text)
}

/// `ESC ] 52 ; c ; <base64> BEL`: asks the terminal to put `text` on the clipboard. With tmux,
/// `set-clipboard on` forwards it as is.
pub fn osc52(text: &str) -> String {
    format!(
        "\x1b]52;c;{}\x07",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

/// Refuses text that carries a credential. Callers only pass links, replies and evidence, so this
/// is a second line of defence against a token that slipped into one of them.
pub fn guard(text: &str, known_secrets: &[&str]) -> Result<(), CopyRefused> {
    if text.trim().is_empty() {
        return Err(CopyRefused::Empty);
    }
    if text.len() > MAX_COPY_BYTES {
        return Err(CopyRefused::TooLong { bytes: text.len() });
    }
    if known_secrets
        .iter()
        .any(|s| s.len() >= 8 && text.contains(s))
    {
        return Err(CopyRefused::LooksLikeSecret {
            why: "contains a configured token",
        });
    }
    let lower = text.to_ascii_lowercase();
    for (marker, why) in [
        ("bearer ", "an Authorization header"),
        ("authorization:", "an Authorization header"),
        ("access_token", "an access_token field"),
        ("refresh_token", "a refresh_token field"),
        ("client_secret", "a client secret"),
        ("amt=", "an application management token"),
    ] {
        if lower.contains(marker) {
            return Err(CopyRefused::LooksLikeSecret { why });
        }
    }
    if text
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .any(looks_like_jwt)
    {
        return Err(CopyRefused::LooksLikeSecret {
            why: "a JSON Web Token",
        });
    }
    Ok(())
}

/// Three base64url segments starting with an encoded JSON header (`eyJ`).
fn looks_like_jwt(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts.iter().all(|p| {
            p.len() >= 4
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
        })
}

/// Checks `text`, then writes its OSC 52 sequence to `out`.
pub fn copy_to(
    out: &mut impl Write,
    text: &str,
    known_secrets: &[&str],
) -> io::Result<Result<(), CopyRefused>> {
    let text = &*clean(text);
    if let Err(refused) = guard(text, known_secrets) {
        return Ok(Err(refused));
    }
    out.write_all(osc52(text).as_bytes())?;
    out.flush()?;
    Ok(Ok(()))
}

/// A clipboard program of the system and the arguments that make it read the text from stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemClipboard {
    pub program: PathBuf,
    pub args: &'static [&'static str],
}

impl SystemClipboard {
    /// The program's file name, to tell the agent which way the text went.
    pub fn name(&self) -> String {
        self.program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// The clipboard program for this session, found on `path` (a `PATH` value): `pbcopy` on macOS,
/// `wl-copy` under Wayland, `xclip` or `xsel` under X11. `None` over SSH or on a console, where only
/// the terminal can reach the agent's clipboard. `var` reads the environment (a parameter for tests).
pub fn system_clipboard(
    var: impl Fn(&str) -> Option<OsString>,
    path: Option<OsString>,
) -> Option<SystemClipboard> {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    let mut candidates: Vec<(&str, &'static [&'static str])> = Vec::new();
    if cfg!(target_os = "macos") {
        candidates.push(("pbcopy", &[]));
    }
    if set("WAYLAND_DISPLAY") {
        candidates.push(("wl-copy", &[]));
    }
    if set("DISPLAY") {
        candidates.push(("xclip", &["-selection", "clipboard", "-in"]));
        candidates.push(("xsel", &["--clipboard", "--input"]));
    }
    let dirs: Vec<PathBuf> = path
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    candidates.into_iter().find_map(|(name, args)| {
        dirs.iter()
            .map(|d| d.join(name))
            .find(|p| is_executable(p))
            .map(|program| SystemClipboard { program, args })
    })
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// tmux's paste buffer when this runs inside tmux (`$TMUX` set) and `tmux` is on `path`: `tmux
/// load-buffer -` reads the text on stdin and fails when the server is not reachable, so a success
/// is a confirmation. `prefix ]` pastes it; tmux's `set-clipboard` decides whether it goes further.
pub fn tmux_buffer(
    var: impl Fn(&str) -> Option<OsString>,
    path: Option<OsString>,
) -> Option<SystemClipboard> {
    if var("TMUX").is_none_or(|v| v.is_empty()) {
        return None;
    }
    path.iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("tmux"))
        .find(|p| is_executable(p))
        .map(|program| SystemClipboard {
            program,
            args: &["load-buffer", "-"],
        })
}

/// Where copies can go in this session, best first: the system clipboard, then tmux's buffer.
/// OSC 52 to the terminal is always possible and comes after these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyRoutes {
    pub system: Option<SystemClipboard>,
    pub tmux: Option<SystemClipboard>,
}

impl CopyRoutes {
    /// The routes of this environment (`var` reads it; `path` is `PATH`).
    pub fn find(var: impl Fn(&str) -> Option<OsString>, path: Option<OsString>) -> CopyRoutes {
        CopyRoutes {
            system: system_clipboard(&var, path.clone()),
            tmux: tmux_buffer(&var, path),
        }
    }

    /// One short line for the help: which way a copy goes here, and whether it can be confirmed.
    pub fn describe(&self) -> String {
        match (&self.system, &self.tmux) {
            (Some(c), _) => format!(
                "Here: the system clipboard through {} (confirmed)",
                c.name()
            ),
            (None, Some(_)) => {
                "Here: tmux's buffer (confirmed; prefix ] pastes), and OSC 52".into()
            }
            (None, None) => "Here: sent to the terminal as OSC 52, which cannot confirm it".into(),
        }
    }
}

/// How long a clipboard program may take to take the text (they fork a server and return at once).
const SYSTEM_COPY_TIMEOUT: Duration = Duration::from_secs(2);

/// Hands `text` to the clipboard program on its stdin, never as an argument (which `ps` shows to every
/// user) and never through a shell. Fails when the program fails or does not finish in time.
pub fn copy_with(clipboard: &SystemClipboard, text: &str) -> io::Result<()> {
    let mut child = Command::new(&clipboard.program)
        .args(clipboard.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let written = match child.stdin.take() {
        Some(mut stdin) => stdin.write_all(text.as_bytes()),
        None => Err(io::Error::other("no stdin")),
    };
    // stdin is closed here: the program sees the end of the text.
    let deadline = Instant::now() + SYSTEM_COPY_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} did not finish", clipboard.name()),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    written?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{} failed ({status})",
            clipboard.name()
        )))
    }
}

/// Which way a copy went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopiedTo {
    /// The system clipboard, through this program.
    System(String),
    /// tmux's paste buffer (and OSC 52 too, for a tmux that passes it on).
    TmuxBuffer,
    /// An OSC 52 sequence to the terminal, which may ignore it (tmux by default does): sent, not
    /// known to be copied.
    Terminal,
}

impl CopiedTo {
    /// The confirmation for the footer: "copied" only when a clipboard is known to hold the text.
    pub fn confirmation(&self, what: &str) -> String {
        match self {
            CopiedTo::System(program) => format!("copied {what} ({program})"),
            CopiedTo::TmuxBuffer => format!("copied {what} to the tmux buffer (prefix ] pastes)"),
            CopiedTo::Terminal => format!("{what} sent to the terminal (OSC 52; ? for tmux)"),
        }
    }
}

/// Copies `text` the best way `routes` offer: the system clipboard; else tmux's buffer, with OSC 52
/// written too (`write_osc52`); else OSC 52 alone. Returns the line for the footer, or the error
/// when nothing took the text. Programs get the text on stdin, never through a shell.
pub fn copy_by(
    routes: &CopyRoutes,
    text: &str,
    what: &str,
    mut write_osc52: impl FnMut(&str) -> io::Result<()>,
) -> Result<String, String> {
    let text = &*clean(text);
    let mut passed_over = Vec::new();
    if let Some(c) = &routes.system {
        match copy_with(c, text) {
            Ok(()) => return Ok(CopiedTo::System(c.name()).confirmation(what)),
            Err(e) => passed_over.push(format!("{}: {e}", c.name())),
        }
    }
    let osc52_sent = write_osc52(&osc52(text));
    if let Some(t) = &routes.tmux {
        match copy_with(t, text) {
            Ok(()) => return Ok(CopiedTo::TmuxBuffer.confirmation(what)),
            Err(e) => passed_over.push(format!("{}: {e}", t.name())),
        }
    }
    match osc52_sent {
        Ok(()) => {
            let said = CopiedTo::Terminal.confirmation(what);
            // Said, so the agent knows why a clipboard that can confirm was passed over.
            Ok(if passed_over.is_empty() {
                said
            } else {
                format!("{said} ({})", passed_over.join("; "))
            })
        }
        Err(e) => Err(format!("could not copy {what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confirmation_says_copied_only_for_the_system_clipboard() {
        assert_eq!(
            CopiedTo::System("xclip".into()).confirmation("pairing link"),
            "copied pairing link (xclip)"
        );
        assert_eq!(
            CopiedTo::Terminal.confirmation("pairing link"),
            "pairing link sent to the terminal (OSC 52; ? for tmux)"
        );
        assert_eq!(
            CopiedTo::TmuxBuffer.confirmation("pairing link"),
            "copied pairing link to the tmux buffer (prefix ] pastes)"
        );
    }

    #[cfg(unix)]
    fn fake_program(dir: &Path, name: &str, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[cfg(unix)]
    #[test]
    fn a_clipboard_program_is_used_only_under_a_display_and_only_when_on_path() {
        let dir = std::env::temp_dir().join(format!("vtriage-clip-find-{}", std::process::id()));
        let xsel = fake_program(&dir, "xsel", "#!/bin/sh\ncat >/dev/null\n");
        let path = Some(dir.clone().into_os_string());
        let display = |name: &str| (name == "DISPLAY").then(|| OsString::from(":0"));
        let found = system_clipboard(display, path.clone());
        assert_eq!(found.map(|c| c.program), Some(xsel));
        // Over SSH (no display) the terminal is the only way to the agent's clipboard.
        assert_eq!(system_clipboard(|_| None, path), None);
        // Under a display without any program on PATH.
        assert_eq!(
            system_clipboard(display, Some(OsString::from("/nonexistent"))),
            None
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn the_text_goes_on_stdin_never_as_an_argument() {
        let dir = std::env::temp_dir().join(format!("vtriage-clip-copy-{}", std::process::id()));
        let out = dir.join("out");
        let args = dir.join("args");
        let program = fake_program(
            &dir,
            "xclip",
            &format!(
                "#!/bin/sh\necho \"$@\" > '{}'\ncat > '{}'\n",
                args.display(),
                out.display()
            ),
        );
        let clipboard = SystemClipboard {
            program,
            args: &["-selection", "clipboard", "-in"],
        };
        let text = "https://www.tesla.com/_ak/smartcar.com; rm -rf / $(id)";
        copy_with(&clipboard, text).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
        assert_eq!(
            std::fs::read_to_string(&args).unwrap().trim(),
            "-selection clipboard -in"
        );
        let failing = SystemClipboard {
            program: fake_program(&dir, "xsel", "#!/bin/sh\nexit 1\n"),
            args: &[],
        };
        assert!(copy_with(&failing, text).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn inside_tmux_the_text_goes_to_its_buffer_on_stdin_and_osc52_is_sent_too() {
        let dir = std::env::temp_dir().join(format!("vtriage-clip-tmux-{}", std::process::id()));
        let out = dir.join("out");
        let args = dir.join("args");
        let program = fake_program(
            &dir,
            "tmux",
            &format!(
                "#!/bin/sh\necho \"$@\" > '{}'\ncat > '{}'\n",
                args.display(),
                out.display()
            ),
        );
        let path = Some(dir.clone().into_os_string());
        let in_tmux =
            |name: &str| (name == "TMUX").then(|| OsString::from("/tmp/tmux-1000/default,1,0"));
        let routes = CopyRoutes::find(in_tmux, path.clone());
        assert_eq!(routes.system, None, "no display: no system clipboard");
        assert_eq!(routes.tmux.as_ref().map(|t| &t.program), Some(&program));
        assert_eq!(CopyRoutes::find(|_| None, path).tmux, None, "outside tmux");

        let text = "https://www.tesla.com/_ak/smartcar.com; $(id)\x1b]52;c;x\x07";
        let mut sent = Vec::new();
        let said = copy_by(&routes, text, "pairing link", |s| {
            sent.push(s.to_string());
            Ok(())
        });
        assert_eq!(
            said.as_deref(),
            Ok("copied pairing link to the tmux buffer (prefix ] pastes)")
        );
        let clean = "https://www.tesla.com/_ak/smartcar.com; $(id)\u{FFFD}]52;c;x\u{FFFD}";
        assert_eq!(std::fs::read_to_string(&out).unwrap(), clean);
        assert_eq!(
            std::fs::read_to_string(&args).unwrap().trim(),
            "load-buffer -"
        );
        assert_eq!(sent, [osc52(clean)]);

        // A tmux whose server is gone: the copy is only sent, and the footer says why.
        let broken = CopyRoutes {
            system: None,
            tmux: Some(SystemClipboard {
                program: fake_program(&dir, "tmux-gone", "#!/bin/sh\nexit 1\n"),
                args: &[],
            }),
        };
        let said = copy_by(&broken, "x", "evidence", |_| Ok(())).unwrap_or_default();
        assert!(
            said.starts_with("evidence sent to the terminal (OSC 52") && said.contains("tmux-gone"),
            "{said}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_a_clipboard_program_a_copy_is_said_sent_never_copied() {
        let said = copy_by(&CopyRoutes::default(), "x", "customer reply", |_| Ok(()));
        assert_eq!(
            said.as_deref(),
            Ok("customer reply sent to the terminal (OSC 52; ? for tmux)")
        );
        assert!(
            CopyRoutes::default()
                .describe()
                .contains("cannot confirm it")
        );
    }

    #[test]
    fn osc52_wraps_base64_between_esc_52_and_bel() {
        assert_eq!(osc52("hi"), "\x1b]52;c;aGk=\x07");
    }

    #[test]
    fn pairing_link_reply_and_evidence_are_copied() {
        let mut out = Vec::new();
        let link = "https://www.tesla.com/_ak/smartcar.com";
        assert_eq!(copy_to(&mut out, link, &[]).ok(), Some(Ok(())));
        assert_eq!(String::from_utf8_lossy(&out), osc52(link));
        let evidence = "GET /v2.0/vehicles/7c1e/odometer 400 CONNECTED_SERVICES_ACCOUNT:VIRTUAL_KEY_REQUIRED request 5f0c2a1e-4c2b-4d1e-9a8f-0b1c2d3e4f5a";
        assert_eq!(guard(evidence, &[]), Ok(()));
    }

    #[test]
    fn anything_token_shaped_is_refused_and_nothing_is_written() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXNpZw";
        for text in [
            "Authorization: Bearer abc",
            "{\"access_token\": \"x\"}",
            "refresh_token=abc",
            jwt,
            "token is 0f9e8d7c-secret-value here",
        ] {
            let mut out = Vec::new();
            let result = copy_to(&mut out, text, &["0f9e8d7c-secret-value"]).ok();
            assert!(
                matches!(result, Some(Err(CopyRefused::LooksLikeSecret { .. }))),
                "{text}"
            );
            assert!(out.is_empty(), "{text}");
        }
    }

    #[test]
    fn copied_text_carries_no_escape_or_bidi_control() {
        let mut out = Vec::new();
        let reply = "Open\x1b]8;;http://evil\x07 this \u{202E}link\nthen approve";
        assert_eq!(copy_to(&mut out, reply, &[]).ok(), Some(Ok(())));
        assert_eq!(
            String::from_utf8_lossy(&out),
            osc52("Open\u{FFFD}]8;;http://evil\u{FFFD} this \u{FFFD}link\nthen approve")
        );
    }

    #[test]
    fn empty_and_oversized_copies_are_refused() {
        assert_eq!(guard("  ", &[]), Err(CopyRefused::Empty));
        let big = "a".repeat(MAX_COPY_BYTES + 1);
        assert!(matches!(guard(&big, &[]), Err(CopyRefused::TooLong { .. })));
    }
}
