//! Builds the guest filters (../filters, a separate cargo workspace) so
//! the daemon can embed them and the tests can load them: `cargo build`
//! at the root is all it takes.
//!
//! The guests are built for wasm32-unknown-unknown, not wasm32-wasip2,
//! and made into components here with wit-component: a wasip2 build
//! imports some 25 WASI interfaces for std's sake, which every session
//! would pay for at instantiation; this way a bundled filter imports
//! exactly the `mail-filter` world and nothing else.
//!
//! The components land in `<target>/wasm-filters/components`,
//! shared by every host profile (debug, release, check, clippy), and the
//! host sees that directory as `env!("WASMTPD_FILTERS_DIR")`. The nested
//! cargo gets a clean environment: what cargo tells this script about the
//! host build (flags, wrappers such as clippy-driver, target, profile)
//! must not leak into the guests' build.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const WASI_TARGET: &str = "wasm32-wasip2";

/// The guest crates' cdylib names: one component each.
const FILTERS: &[&str] = &["dnsbl", "regex", "spamscore", "hostile"];

/// Host-build variables the nested cargo would read as its own
/// configuration (or hand to rustc) if inherited.
const CLEARED: &[&str] = &[
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_LINKER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_INCREMENTAL",
    "CARGO_CRATE_NAME",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "NUM_JOBS",
    "OPT_LEVEL",
    "DEBUG",
    "PROFILE",
];

/// Prefixes of the same kind: per-profile and per-target configuration,
/// and what cargo describes of this package and its target.
const CLEARED_PREFIXES: &[&str] = &[
    "CARGO_PROFILE_",
    "CARGO_BUILD_",
    "CARGO_TARGET_",
    "CARGO_CFG_",
    "CARGO_FEATURE_",
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
];

fn main() -> ExitCode {
    let host_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = host_dir.parent().unwrap_or(&host_dir).to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let target_dir = wasm_target_dir(&out_dir);

    watch(&root.join("filters"));
    watch(&root.join("filters-sdk"));
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed=build.rs");

    if let Err(code) = cargo_build(&root, &target_dir, WASM_TARGET, &[]) {
        return code;
    }
    // The test filter once more, built against WASI the way a user's
    // Rust/C/Go filter would be: the sandbox tests need to see what the
    // empty WASI gives such a component (nothing).
    if let Err(code) = cargo_build(&root, &target_dir, WASI_TARGET, &["wasmtpd-filter-hostile"]) {
        return code;
    }

    let modules = target_dir.join(WASM_TARGET).join("release");
    let components = target_dir.join("components");
    if let Err(e) = std::fs::create_dir_all(&components) {
        eprintln!("error: cannot create {}: {e}", components.display());
        return ExitCode::FAILURE;
    }
    for name in FILTERS {
        let module = modules.join(format!("{name}.wasm"));
        let component = components.join(format!("{name}.wasm"));
        if let Err(e) = componentize(&module, &component) {
            eprintln!("error: cannot make {} a component: {e:#}", module.display());
            return ExitCode::FAILURE;
        }
    }
    let wasi_hostile = target_dir
        .join(WASI_TARGET)
        .join("release")
        .join("hostile.wasm");
    if let Err(e) = std::fs::copy(&wasi_hostile, components.join("hostile-wasip2.wasm")) {
        eprintln!("error: cannot copy {}: {e}", wasi_hostile.display());
        return ExitCode::FAILURE;
    }
    println!(
        "cargo:rustc-env=WASMTPD_FILTERS_DIR={}",
        components.display()
    );
    ExitCode::SUCCESS
}

/// `cargo build --release --target TARGET` of the guest workspace (or of
/// `packages`), in a clean environment.
fn cargo_build(
    root: &Path,
    target_dir: &Path,
    target: &str,
    packages: &[&str],
) -> Result<(), ExitCode> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(&cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg(target)
        .arg("--manifest-path")
        .arg(root.join("filters").join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    for p in packages {
        cmd.arg("-p").arg(p);
    }
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if CLEARED.contains(&key) || CLEARED_PREFIXES.iter().any(|p| key.starts_with(p)) {
            cmd.env_remove(key);
        }
    }
    // CARGO_MAKEFLAGS stays: the nested build takes its jobs from this
    // build's jobserver instead of starting as many again.
    let output = match cmd.output() {
        Ok(output) => output,
        Err(e) => {
            eprintln!("error: cannot run {cargo:?} to build the wasm filters: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    if !output.status.success() {
        let log = String::from_utf8_lossy(&output.stderr);
        eprintln!("{}{log}", String::from_utf8_lossy(&output.stdout));
        eprintln!(
            "error: building the wasm filters (filters/) for {target} failed: {}",
            output.status
        );
        if log.contains(target)
            && (log.contains("target may not be installed") || log.contains("can't find crate"))
        {
            eprintln!("hint: the {target} target is missing; run: rustup target add {target}");
        }
        return Err(ExitCode::FAILURE);
    }
    Ok(())
}

/// A core module whose bindings carry the component type (wit-bindgen
/// embeds it) into a component, rewritten only when it changes.
fn componentize(module: &Path, out: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(module)?;
    let component = wit_component::ComponentEncoder::default()
        .module(&bytes)?
        .validate(true)
        .encode()?;
    if std::fs::read(out).ok().as_deref() != Some(component.as_slice()) {
        let tmp = out.with_extension("wasm.tmp");
        std::fs::write(&tmp, &component)?;
        std::fs::rename(&tmp, out)?;
    }
    Ok(())
}

/// `<target>/wasm-filters`, from OUT_DIR = `<target>[/<triple>]/<profile>/
/// build/wasmtpd-HASH/out` (the triple level exists when `--target` was
/// given).
fn wasm_target_dir(out_dir: &Path) -> PathBuf {
    let profile_dir = out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(Path::parent);
    let Some(mut target) = profile_dir.and_then(Path::parent) else {
        return out_dir.join("wasm-filters");
    };
    let triple = env::var_os("TARGET").unwrap_or_default();
    if target.file_name() == Some(triple.as_os_str()) {
        target = target.parent().unwrap_or(target);
    }
    target.join("wasm-filters")
}

/// Asks cargo to rerun this script when anything in `dir` changes, except
/// a `target` directory a stray build may have left there.
fn watch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        println!("cargo:rerun-if-changed={}", dir.display());
        return;
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != "target")
        .map(|e| e.path())
        .collect();
    paths.sort();
    for path in paths {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
