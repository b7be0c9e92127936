//! Names the `peregrine` binary of this build's target directory and profile for the quinn
//! interop test (`tests/perf_quinn.rs`), which runs it as a process: Cargo gives
//! `CARGO_BIN_EXE_*` only to the tests of the binary's own crate, and the `peregrine` crate must
//! not depend on this one (quinn and tokio would enter its dependency tree).

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("Cargo sets OUT_DIR"));
    // OUT_DIR is <target>/<profile>/build/<package>-<hash>/out.
    let profile_dir = out.ancestors().nth(3).expect("OUT_DIR is 3 levels below the profile");
    let exe = format!("peregrine{}", std::env::consts::EXE_SUFFIX);
    println!("cargo:rustc-env=PEREGRINE_BIN={}", profile_dir.join(exe).display());
    println!("cargo:rerun-if-changed=build.rs");
}
