//! Link-time settings for the `schat` binary.
//!
//! Packed relative relocations (DT_RELR): a position-independent binary carries one 24-byte
//! entry per pointer to relocate at startup — about 40,000 in schat since iroh came in, about
//! 1 MB read at every start and counted in every process's resident memory. RELR packs them
//! into about 10 KB. It needs binutils ≥ 2.38 and glibc ≥ 2.36 on the machine that runs the
//! binary, so it is used only when a test program linked that way runs here (native builds;
//! a cross build goes without). It needs no list to keep up to date: nothing to regenerate.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    if target == host && target.ends_with("-linux-gnu") && relr_works() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
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
