//! Stamps the build version (`<version>+<git revision>`) into the operator binary
//! for `--version`, the same way the server's build.rs does.

#[path = "../build-support/revision.rs"]
mod revision;

fn main() {
    revision::emit();
}
