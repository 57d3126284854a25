//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the folders' files
//! but cargo only notices edits to files it already knows.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations/sqlite");
    println!("cargo:rerun-if-changed=../../migrations/postgres");
}
