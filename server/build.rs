//! Recompile when a migration changes: `sqlx::migrate!` embeds `migrations/`
//! at build time, and cargo does not track that directory on its own. Also
//! stamps the build version (`<version>+<git revision>`) into the binary.

#[path = "../build-support/revision.rs"]
mod revision;

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    revision::emit();
}
