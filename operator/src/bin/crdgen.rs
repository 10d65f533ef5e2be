//! Prints the SyncKairosCluster CRD as YAML (`make crds` writes it to `crds/`).
//! With `--write PATH` it writes the file itself, so the Makefile needs no shell redirection.

use std::process::ExitCode;

fn main() -> ExitCode {
    let yaml = match synckairos_operator::crd::crd_yaml() {
        Ok(y) => y,
        Err(e) => {
            eprintln!("crdgen: cannot render the CRD: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        [flag, path] if flag == "--write" => match std::fs::write(path, yaml) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("crdgen: cannot write {path}: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: crdgen [--write PATH]");
            ExitCode::from(2)
        }
    }
}
