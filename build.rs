//! Link-time settings for the `schat` binary.
//!
//! Hot code first (release builds): `link/hot-symbols.txt` lists the functions a pipe session
//! runs, and lld's `--symbol-ordering-file` puts them together at the start of the code. The
//! kernel maps code 64 KiB around every page a process touches; spread over iroh's 15 MB of
//! text, those windows made a pipe process's peak RSS 8.3 MB, grouped 5.3 MB. Used only when
//! rustc's linker takes the option (rust-lld does; GNU ld does not). The list is regenerated
//! by `benches/hot-symbols.sh`; names it has that the binary lacks are skipped.
//!
//! Packed relative relocations (DT_RELR): a position-independent binary carries one 24-byte
//! entry per pointer to relocate at startup — about 40,000 in schat since iroh came in, about
//! 1 MB read at every start and counted in every process's resident memory. RELR packs them
//! into about 10 KB. It needs binutils ≥ 2.38 and glibc ≥ 2.36 on the machine that runs the
//! binary, so it is used only when a test program linked that way runs here (native builds;
//! a cross build goes without).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    if target == host && target.ends_with("-linux-gnu") && relr_works() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let hot = std::path::Path::new("link/hot-symbols.txt");
    println!("cargo:rerun-if-changed={}", hot.display());
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    if let (true, Ok(hot)) = (release, hot.canonicalize()) {
        let flags = [
            format!("-Wl,--symbol-ordering-file={}", hot.display()),
            "-Wl,--no-warn-symbol-ordering".to_string(),
        ];
        if rustc_links_with(&flags) {
            for flag in flags {
                println!("cargo:rustc-link-arg-bins={flag}");
            }
        }
    }
}

/// Whether rustc, as this build runs it (target and flags), links a program with these
/// linker arguments.
fn rustc_links_with(flags: &[String]) -> bool {
    let Some(dir) = std::env::var_os("OUT_DIR").map(std::path::PathBuf::from) else {
        return false;
    };
    let (source, program) = (dir.join("probe.rs"), dir.join("probe"));
    if std::fs::write(&source, "fn main() {}\n").is_err() {
        return false;
    }
    let mut rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()));
    if let Ok(target) = std::env::var("TARGET") {
        rustc.args(["--target", &target]);
    }
    // The build's own RUSTFLAGS (a chosen linker, say), as cargo passes them.
    if let Ok(encoded) = std::env::var("CARGO_ENCODED_RUSTFLAGS") {
        rustc.args(encoded.split('\x1f').filter(|f| !f.is_empty()));
    }
    for flag in flags {
        rustc.arg("-C").arg(format!("link-arg={flag}"));
    }
    rustc
        .arg("-o")
        .arg(&program)
        .arg(&source)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether `cc` links a program with packed relative relocations, and it runs.
fn relr_works() -> bool {
    let Some(dir) = std::env::var_os("OUT_DIR").map(std::path::PathBuf::from) else {
        return false;
    };
    let (source, program) = (dir.join("relr.c"), dir.join("relr"));
    let code = "static int x; int *p = &x; int main(void) { return *p; }\n";
    if std::fs::write(&source, code).is_err() {
        return false;
    }
    let linked = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-pie", "-fPIE", "-Wl,-z,pack-relative-relocs", "-o"])
        .arg(&program)
        .arg(&source)
        .output()
        .is_ok_and(|o| o.status.success());
    linked && Command::new(&program).status().is_ok_and(|s| s.success())
}
