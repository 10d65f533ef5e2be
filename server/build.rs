//! Recompile when a migration changes: `sqlx::migrate!` embeds `migrations/`
//! at build time, and cargo does not track that directory on its own.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
