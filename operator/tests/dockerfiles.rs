//! No container engine runs in `make test`, so the two Dockerfiles are parsed and checked
//! against what they depend on: the workspace's packages and binaries, the toolchain it
//! needs, the flags the binaries read, the uid and ports the operator's pods and the Helm
//! chart use. Each check is a mistake that would otherwise only show when the image is
//! built or run (`../shared/tools/images.sh` builds and runs them for real, outside
//! `make test`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};
use synckairos_operator::build::{self, SERVER_PORT, app_pod_security};
use synckairos_operator::crd::SyncKairosCluster;
use synckairos_operator::validate::validate;

fn read(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One Dockerfile instruction: upper-cased keyword and its arguments, continuation lines
/// joined.
#[derive(Debug, Clone)]
struct Instr {
    op: String,
    args: String,
}

/// One build stage: `FROM base [AS name]` and its instructions.
#[derive(Debug, Clone)]
struct Stage {
    base: String,
    name: Option<String>,
    instrs: Vec<Instr>,
}

impl Stage {
    fn all(&self, op: &str) -> Vec<&str> {
        self.instrs
            .iter()
            .filter(|i| i.op == op)
            .map(|i| i.args.as_str())
            .collect()
    }

    fn one(&self, op: &str) -> &str {
        let all = self.all(op);
        assert_eq!(all.len(), 1, "expected one {op} in stage {:?}", self.name);
        all[0]
    }

    /// `LABEL` keys and values (`k="v" k2="v 2"` form, quotes removed).
    fn labels(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for args in self.all("LABEL") {
            let mut rest = args.trim();
            while let Some((k, v)) = rest.split_once('=') {
                let v = v.trim_start();
                let (value, tail) = match v.strip_prefix('"') {
                    Some(q) => q.split_once('"').expect("closing quote in LABEL"),
                    None => v.split_once(char::is_whitespace).unwrap_or((v, "")),
                };
                out.insert(k.trim().to_string(), value.to_string());
                rest = tail.trim_start();
            }
        }
        out
    }

    /// `ENV` keys and values (`K=V K2=V2` form).
    fn env(&self) -> BTreeMap<String, String> {
        self.all("ENV")
            .iter()
            .flat_map(|a| a.split_whitespace())
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("ENV in K=V form");
                (k.to_string(), v.to_string())
            })
            .collect()
    }
}

/// `key = value` lines of one `[profile.NAME]` section of the workspace manifest, the
/// profile it inherits from filling in what it leaves out (values unquoted).
fn cargo_profile(name: &str) -> BTreeMap<String, String> {
    let text = read("../Cargo.toml");
    let header = format!("[profile.{name}]");
    let mut own = BTreeMap::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == header;
        } else if inside && let Some((k, v)) = line.split_once('=') {
            own.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
        }
    }
    let mut all = match own.get("inherits") {
        Some(parent) => cargo_profile(parent),
        None => BTreeMap::new(),
    };
    all.extend(own);
    all
}

/// The workspace's `license` (what the images' licenses label must say).
fn workspace_license() -> String {
    read("../Cargo.toml")
        .lines()
        .find_map(|l| toml_str(l, "license"))
        .expect("workspace license")
}

/// Parses a Dockerfile into stages (comments and blank lines dropped, `\` continuations
/// joined, as the Dockerfile frontend does).
fn parse(text: &str) -> Vec<Stage> {
    let mut logical = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                logical.push(std::mem::take(&mut cur));
            }
        }
    }
    assert!(cur.is_empty(), "dangling continuation");
    let mut stages: Vec<Stage> = Vec::new();
    for l in logical {
        let (op, args) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
        let (op, args) = (op.to_ascii_uppercase(), args.trim().to_string());
        if op == "FROM" {
            let w: Vec<&str> = args.split_whitespace().collect();
            let name = match w.as_slice() {
                [_] => None,
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => panic!("FROM {args}"),
            };
            stages.push(Stage {
                base: w[0].to_string(),
                name,
                instrs: Vec::new(),
            });
        } else {
            let stage = stages.last_mut().expect("instruction before FROM");
            stage.instrs.push(Instr { op, args });
        }
    }
    stages
}

/// Exec form (`["a", "b"]`) of ENTRYPOINT/CMD; the shell form needs a shell distroless lacks.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not exec form {args}: {e}"))
}

/// `key = "value"` of a line in a TOML section.
fn toml_str(line: &str, key: &str) -> Option<String> {
    let (k, v) = line.split_once('=')?;
    (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
}

/// A workspace member's package name and `[[bin]]` names, from its Cargo.toml.
fn package(dir: &str) -> (String, Vec<String>) {
    let text = read(&format!("../{dir}/Cargo.toml"));
    let (mut section, mut name, mut bins) = (String::new(), None, Vec::new());
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
        } else if let Some(v) = toml_str(line, "name") {
            match section.as_str() {
                "[package]" => name = Some(v),
                "[[bin]]" => bins.push(v),
                _ => {}
            }
        }
    }
    (name.expect("[package] name"), bins)
}

/// The workspace's members and its `rust-version` (major, minor).
fn workspace() -> (Vec<String>, (u32, u32)) {
    let text = read("../Cargo.toml");
    let members_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("members");
    let members: Vec<String> = serde_json::from_str(members_line.split_once('=').unwrap().1.trim())
        .expect("members as a one-line array");
    let rv = text
        .lines()
        .find_map(|l| toml_str(l, "rust-version"))
        .expect("rust-version");
    (members, version(&rv))
}

fn version(s: &str) -> (u32, u32) {
    let mut it = s
        .split('.')
        .map(|p| p.parse::<u32>().expect("numeric version"));
    (it.next().unwrap(), it.next().unwrap_or(0))
}

/// The environment variables a binary reads (`env = "NAME"` of its clap flags).
fn flag_envs(source: &str) -> Vec<String> {
    read(source)
        .split("env = \"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

/// Subcommands of the server: the variants of `enum Command` in kebab-case, as clap names them.
fn server_subcommands() -> Vec<String> {
    let text = read("../server/src/config.rs");
    let body = text
        .split("pub enum Command {")
        .nth(1)
        .and_then(|s| s.split('}').next())
        .expect("enum Command");
    body.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && !l.is_empty())
        .map(|l| {
            let variant: String = l.chars().take_while(|c| c.is_alphanumeric()).collect();
            let mut kebab = String::new();
            for (i, c) in variant.chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    kebab.push('-');
                }
                kebab.push(c.to_ascii_lowercase());
            }
            kebab
        })
        .collect()
}

/// What one image must agree with.
struct Image {
    dockerfile: &'static str,
    /// Workspace member whose binary the image runs.
    member: &'static str,
    /// Source of that binary's flags.
    flags: &'static str,
    /// The environment variable that sets the port the image EXPOSEs.
    port_env: &'static str,
}

/// Checks one Dockerfile; returns its final stage for image-specific checks.
fn check(img: &Image) -> Stage {
    let d = img.dockerfile;
    let stages = parse(&read(d));
    assert!(stages.len() >= 2, "{d}: not multi-stage");
    let last = stages.last().unwrap().clone();

    // runtime: distroless non-root, the uid the operator's pods and the chart run as
    assert!(
        last.base.starts_with("gcr.io/distroless/") && last.base.ends_with(":nonroot"),
        "{d}: runtime {} is not distroless nonroot",
        last.base
    );
    assert!(
        last.all("RUN").is_empty(),
        "{d}: RUN in a stage without a shell"
    );
    let pod = app_pod_security();
    let want_user = format!("{}:{}", pod.run_as_user.unwrap(), pod.run_as_group.unwrap());
    assert_eq!(
        last.one("USER"),
        want_user,
        "{d}: USER differs from the pods' uid"
    );

    // the binary: built by an earlier stage from a real package and [[bin]]
    let copy = last.one("COPY");
    let w: Vec<&str> = copy.split_whitespace().collect();
    let [from, src, dest] = w.as_slice() else {
        panic!("{d}: COPY {copy}")
    };
    let from = from
        .strip_prefix("--from=")
        .expect("COPY --from in the final stage");
    let build_stage = stages[..stages.len() - 1]
        .iter()
        .find(|s| s.name.as_deref() == Some(from))
        .unwrap_or_else(|| panic!("{d}: COPY --from={from} names no earlier stage"));
    let (members, rust_version) = workspace();
    assert!(
        members.iter().any(|m| m == img.member),
        "{}: not a member",
        img.member
    );
    let (package, bins) = package(img.member);

    let run = build_stage
        .all("RUN")
        .into_iter()
        .find(|r| r.contains("cargo build"))
        .unwrap_or_else(|| panic!("{d}: no cargo build"));
    let cargo: Vec<&str> = run
        .split("cargo build")
        .nth(1)
        .unwrap()
        .split("&&")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let arg = |flag: &str| {
        cargo
            .windows(2)
            .find(|p| p[0] == flag)
            .map(|p| p[1].to_string())
    };
    assert!(cargo.contains(&"--locked"), "{d}: build without --locked");
    assert_eq!(arg("-p").as_deref(), Some(package.as_str()), "{d}: -p");
    let bin = arg("--bin").unwrap_or_else(|| panic!("{d}: no --bin"));
    assert!(
        bins.contains(&bin),
        "{d}: --bin {bin} is not a [[bin]] of {package}: {bins:?}"
    );
    let profile_dir = if cargo.contains(&"--release") {
        "release".to_string()
    } else {
        match arg("--profile").as_deref() {
            None | Some("dev") => "debug".to_string(),
            Some(p) => p.to_string(),
        }
    };
    // the shipped profile: no debug info, stripped (the image is pulled on every scale-out)
    let profile = cargo_profile(&profile_dir);
    assert!(
        matches!(
            profile.get("strip").map(String::as_str),
            Some("true" | "symbols")
        ),
        "{d}: profile {profile_dir} does not strip: {profile:?}"
    );
    assert!(
        matches!(
            profile.get("debug").map(String::as_str),
            Some("false" | "0" | "none")
        ),
        "{d}: profile {profile_dir} builds debug info: {profile:?}"
    );
    // version and revision reach the binary (build.rs) and the labels
    assert!(
        run.contains("SYNCKAIROS_REVISION=$REVISION"),
        "{d}: the build does not pass REVISION to build.rs"
    );
    let labels = last.labels();
    for key in ["source", "version", "revision", "licenses", "title"] {
        assert!(
            labels.contains_key(&format!("org.opencontainers.image.{key}")),
            "{d}: no org.opencontainers.image.{key} label: {labels:?}"
        );
    }
    assert_eq!(
        labels["org.opencontainers.image.licenses"],
        workspace_license(),
        "{d}: licenses label"
    );
    for (key, arg) in [("version", "VERSION"), ("revision", "REVISION")] {
        assert_eq!(
            labels[&format!("org.opencontainers.image.{key}")],
            format!("${arg}"),
            "{d}: the {key} label is not the {arg} build arg"
        );
        assert!(
            last.all("ARG")
                .iter()
                .any(|a| a.split('=').next() == Some(arg)),
            "{d}: no ARG {arg} in the final stage"
        );
    }
    // the binary leaves target/ in the same RUN: a cache mount on target/ is gone after it
    let install = run
        .split("&&")
        .map(str::trim)
        .find(|c| c.starts_with("install ") || c.starts_with("cp "))
        .unwrap_or_else(|| panic!("{d}: the binary is not copied out of target/ in the build RUN"));
    let iw: Vec<&str> = install.split_whitespace().collect();
    let (built, out) = (iw[iw.len() - 2], iw[iw.len() - 1]);
    assert_eq!(
        built,
        format!("target/{profile_dir}/{bin}"),
        "{d}: installs another file"
    );
    assert_eq!(
        out, *src,
        "{d}: COPY --from copies {src}, the build leaves {out}"
    );
    let workdir = build_stage.one("WORKDIR");
    for mount in run
        .split_whitespace()
        .filter(|t| t.starts_with("--mount=type=cache"))
    {
        if mount.ends_with("/target") {
            assert!(
                mount.ends_with(&format!("target={workdir}/target")),
                "{d}: cache mount {mount} is not WORKDIR/target, where cargo builds"
            );
        }
    }
    assert_eq!(
        labels["org.opencontainers.image.title"], bin,
        "{d}: title label"
    );
    assert!(
        dest.ends_with(&format!("/{bin}")),
        "{d}: {dest} is not named {bin}"
    );
    assert_eq!(
        exec_form(last.one("ENTRYPOINT")),
        [dest.to_string()],
        "{d}: ENTRYPOINT"
    );

    // toolchain new enough for the workspace; runtime glibc of the same Debian release
    let (tool, tag) = build_stage
        .base
        .split_once(':')
        .expect("tagged build image");
    assert_eq!(tool, "rust", "{d}: build image");
    let (tv, codename) = tag.split_once('-').expect("rust:X.Y-codename");
    assert!(
        version(tv) >= rust_version,
        "{d}: rust {tv} < rust-version {rust_version:?}"
    );
    let debian = match codename {
        "bullseye" => "debian11",
        "bookworm" => "debian12",
        "trixie" => "debian13",
        other => panic!("{d}: unknown Debian {other}"),
    };
    assert!(
        last.base.contains(&format!("-{debian}:")),
        "{d}: built on {codename}, runs on {} (glibc mismatch)",
        last.base
    );

    // configuration: every ENV is a flag the binary reads; EXPOSE is the port it is set to
    let env = last.env();
    let flags = flag_envs(img.flags);
    for k in env.keys() {
        assert!(
            flags.contains(k),
            "{d}: ENV {k} is no flag of {}",
            img.flags
        );
    }
    assert_eq!(
        Some(last.one("EXPOSE")),
        env.get(img.port_env).map(String::as_str),
        "{d}: EXPOSE is not {}",
        img.port_env
    );
    last
}

/// A checked cluster for the builders.
fn cluster() -> synckairos_operator::validate::Checked {
    let mut s = SyncKairosCluster::new("demo", serde_json::from_value(json!({})).unwrap());
    s.metadata.namespace = Some("ns".into());
    s.metadata.uid = Some("1b4e28ba-2fa1-11d2-883f-0016d3cca427".into());
    validate(&s).unwrap()
}

#[test]
fn the_server_image_runs_what_the_operator_asks_of_it() {
    let last = check(&Image {
        dockerfile: "../Dockerfile",
        member: "server",
        flags: "../server/src/config.rs",
        port_env: "PORT",
    });
    assert_eq!(
        last.one("EXPOSE"),
        SERVER_PORT.to_string(),
        "the operator's SERVER_PORT"
    );
    // the default command and the operator's Deployment and migration Job are subcommands
    let subcommands = server_subcommands();
    assert!(
        subcommands.contains(&"migrate".to_string()),
        "{subcommands:?}"
    );
    let cmd = exec_form(last.one("CMD"));
    assert!(
        subcommands.contains(&cmd[0]),
        "CMD {cmd:?}: {subcommands:?}"
    );
    let c = cluster();
    let desired = build::desired(&c);
    let job = desired.migration.unwrap();
    let pods = [
        desired.server.deployment.spec.template.spec.unwrap(),
        job.spec.unwrap().template.spec.unwrap(),
    ];
    for pod in pods {
        let args = pod.containers[0].args.clone().unwrap();
        assert!(subcommands.contains(&args[0]), "{args:?}: {subcommands:?}");
    }
}

#[test]
fn the_operator_image_matches_the_chart() {
    let last = check(&Image {
        dockerfile: "Dockerfile",
        member: "operator",
        flags: "src/main.rs",
        port_env: "METRICS_PORT",
    });
    assert!(
        last.all("CMD").is_empty(),
        "the chart passes no args; flags come from env"
    );
    let values: Value = yaml_serde::from_str(&read("../charts/synckairos-operator/values.yaml"))
        .expect("values.yaml");
    let ctx = &values["operator"]["podSecurityContext"];
    assert_eq!(
        last.one("USER"),
        format!("{}:{}", ctx["runAsUser"], ctx["runAsGroup"]),
        "the chart's podSecurityContext"
    );
    assert_eq!(last.one("EXPOSE"), values["metrics"]["port"].to_string());
}

#[test]
fn the_parser_sees_what_docker_sees() {
    let stages = parse(
        "# c\nFROM rust:1.95-bookworm AS build\nRUN a \\\n  # inside\n  && b\n\nfrom x\nUSER 1:1\n",
    );
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0].name.as_deref(), Some("build"));
    let run: Vec<&str> = stages[0].one("RUN").split_whitespace().collect();
    assert_eq!(run, ["a", "&&", "b"]);
    assert_eq!(stages[1].base, "x");
    assert_eq!(stages[1].one("USER"), "1:1");
    assert_eq!(
        server_subcommands().first().map(String::as_str),
        Some("serve")
    );
    assert_eq!(version("1.90"), (1, 90));
    let labels = parse("FROM x\nLABEL a=\"b c\" d=e \\\n  f=\"$G\"\n")[0].labels();
    assert_eq!(
        labels.into_iter().collect::<Vec<_>>(),
        [("a", "b c"), ("d", "e"), ("f", "$G")].map(|(k, v)| (k.to_string(), v.to_string()))
    );
    // release keeps line tables for profiling; the shipped profile drops them
    assert_eq!(
        cargo_profile("release").get("debug").map(String::as_str),
        Some("1")
    );
}
