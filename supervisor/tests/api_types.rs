//! The console's TypeScript API types (`ui/src/lib/api/types.ts`) are generated from the Rust
//! types with ts-rs. This test fails when the file is out of date; `AIRLOCK_WRITE_TYPES=1 cargo
//! test -p airlock-supervisor --test api_types` rewrites it.
//!
//! 64-bit integers are typed `number`: the console reads them with `JSON.parse`, which yields
//! numbers (sequence numbers, ids and Unix milliseconds stay far below 2^53).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_supervisor::api::{
    CreateRequest, CreatedLink, ErrorBody, EventMessage, LeaseRequest, LedgerQuery, LinkRequest, Me,
    ModeRequest, PolicyView, ResolveRequest, Snapshot,
};
use ts_rs::{Config, TS};

fn export<T: TS + 'static>(cfg: &Config) {
    if let Err(e) = T::export_all(cfg) {
        panic!("cannot export {}: {e}", T::name(cfg));
    }
}

/// Every exported declaration, by type name, from the files ts-rs wrote into `dir`.
fn declarations(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read the export dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read an exported file");
            let body: String = text
                .lines()
                .filter(|l| !l.starts_with("import ") && !l.starts_with("// This file was generated"))
                .collect::<Vec<_>>()
                .join("\n");
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("file name")
                .to_string();
            if let Some(previous) = out.insert(name.clone(), body.trim().to_string()) {
                assert_eq!(previous, body.trim(), "two different types are both named {name}");
            }
        }
    }
    out
}

fn generate() -> String {
    let dir = tempfile::tempdir().expect("scratch dir");
    let cfg = Config::new().with_large_int("number").with_out_dir(dir.path());
    export::<Me>(&cfg);
    export::<Snapshot>(&cfg);
    export::<EventMessage>(&cfg);
    export::<CreateRequest>(&cfg);
    export::<LeaseRequest>(&cfg);
    export::<ResolveRequest>(&cfg);
    export::<LedgerQuery>(&cfg);
    export::<PolicyView>(&cfg);
    export::<ModeRequest>(&cfg);
    export::<ErrorBody>(&cfg);
    export::<CreatedLink>(&cfg);
    export::<LinkRequest>(&cfg);
    export::<airlock_supervisor::files::FileListing>(&cfg);
    export::<airlock_supervisor::files::FileWritten>(&cfg);
    export::<airlock_ledger::Entry>(&cfg);
    export::<airlock_records::Record>(&cfg);
    export::<airlock_ledger::VerifyReport>(&cfg);
    export::<airlock_domain::LeaseChange>(&cfg);
    export::<airlock_domain::NetworkView>(&cfg);
    export::<airlock_domain::EgressResolution>(&cfg);
    export::<airlock_domain::EgressRecord>(&cfg);
    export::<airlock_streaming::wire::ClientMessage>(&cfg);
    export::<airlock_streaming::wire::ServerMessage>(&cfg);
    let mut out = String::from(
        "// Generated from the Rust API types by supervisor/tests/api_types.rs (ts-rs). Do not edit:\n\
         // AIRLOCK_WRITE_TYPES=1 cargo test -p airlock-supervisor --test api_types\n\n",
    );
    for decl in declarations(dir.path()).values() {
        out.push_str(decl);
        out.push_str("\n\n");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

fn target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib/api/types.ts")
}

#[test]
fn typescript_api_types_are_current() {
    let generated = generate();
    assert!(generated.contains("export type Approval = "), "{generated}");
    assert!(!generated.contains("bigint"), "64-bit integers must be numbers");
    let path = target();
    if std::env::var_os("AIRLOCK_WRITE_TYPES").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create ui/src/lib/api");
        std::fs::write(&path, &generated).expect("write types.ts");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "{} is out of date with the Rust API types; regenerate it with \
         AIRLOCK_WRITE_TYPES=1 cargo test -p airlock-supervisor --test api_types",
        path.display()
    );
}
