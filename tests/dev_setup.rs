//! `scripts/prerequisites.sh`, which `./dev.sh` sources to check for libclang before anything is
//! compiled: on fake directory trees its `libclang_present ROOT` must say what clang-sys (the crate
//! RocksDB's bindgen loads libclang with) would find. ROOT is prepended to every directory searched,
//! LIBCLANG_PATH and LD_LIBRARY_PATH included.

mod common;

use std::path::Path;
use std::process::Command;

/// The start of an ELF shared library of this machine's word size: clang-sys checks the ELF class.
fn elf() -> Vec<u8> {
    let class = if cfg!(target_pointer_width = "64") { 2 } else { 1 };
    let mut header = vec![0x7f, b'E', b'L', b'F', class, 1, 1];
    header.resize(64, 0);
    header
}

fn put(root: &Path, path: &str, contents: &[u8]) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, contents).expect("write");
}

/// Runs `bash -c 'source scripts/prerequisites.sh; SCRIPT'` with ROOT set, none of the variables
/// clang-sys reads but those in `env`; true when it exits 0.
fn run(root: &Path, script: &str, env: &[(&str, &str)]) -> bool {
    let mut command = Command::new("bash");
    command
        .current_dir(common::repo_dir())
        .args(["-c", &format!("source scripts/prerequisites.sh; {script}")])
        .env("ROOT", root);
    for var in [
        "LIBCLANG_PATH",
        "LD_LIBRARY_PATH",
        "LIBRARY_PATH",
        "LLVM_CONFIG_PATH",
        "BINDGEN_EXTRA_CLANG_ARGS",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command.status().expect("run bash").success()
}

fn libclang_present(root: &Path, env: &[(&str, &str)]) -> bool {
    run(root, r#"libclang_present "$ROOT""#, env)
}

fn tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, contents) in files {
        put(dir.path(), path, contents);
    }
    dir
}

#[test]
fn libclang_cpp_alone_is_not_libclang() {
    // Debian 12 without libclang-dev: `ldconfig -p | grep libclang` matched this one.
    let root = tree(&[("usr/lib/x86_64-linux-gnu/libclang-cpp.so.14", &elf())]);
    assert!(!libclang_present(root.path(), &[]));
}

#[test]
fn debian_libclang_is_found() {
    let root = tree(&[("usr/lib/llvm-14/lib/libclang.so.1", &elf())]);
    assert!(libclang_present(root.path(), &[]));
    let root = tree(&[
        ("usr/lib/x86_64-linux-gnu/libclang-14.so.1", &elf()),
        ("usr/lib/x86_64-linux-gnu/libclang-cpp.so.14", &elf()),
    ]);
    assert!(libclang_present(root.path(), &[]));
}

#[test]
fn empty_tree_has_no_libclang() {
    let root = tree(&[]);
    assert!(!libclang_present(root.path(), &[]));
}

#[test]
fn only_the_searched_directories_count() {
    // /usr/local/lib*/*/* is the deepest pattern: one level more is not searched.
    let root = tree(&[("usr/local/lib/a/b/libclang.so", &elf())]);
    assert!(libclang_present(root.path(), &[]));
    let root = tree(&[("usr/lib/a/b/c/libclang.so", &elf())]);
    assert!(!libclang_present(root.path(), &[]));
    // Elsewhere only through LD_LIBRARY_PATH (or LIBRARY_PATH).
    let root = tree(&[("opt/llvm/lib/libclang.so", &elf())]);
    assert!(!libclang_present(root.path(), &[]));
    assert!(libclang_present(root.path(), &[("LD_LIBRARY_PATH", "/nowhere:/opt/llvm/lib")]));
    assert!(libclang_present(root.path(), &[("LIBRARY_PATH", "/opt/llvm/lib")]));
}

#[test]
fn only_shared_libraries_of_this_machine_count() {
    // clang-sys's validate_library reads the ELF header; a broken symlink cannot be opened.
    let root = tree(&[("usr/lib/llvm-14/lib/libclang.so.1", b"not a library")]);
    assert!(!libclang_present(root.path(), &[]));
    let root = tree(&[]);
    std::fs::create_dir_all(root.path().join("usr/lib")).expect("mkdir");
    std::os::unix::fs::symlink("libclang-14.so.1", root.path().join("usr/lib/libclang.so")).expect("symlink");
    assert!(!libclang_present(root.path(), &[]));
}

#[test]
fn libclang_path_is_the_only_place_searched() {
    let root = tree(&[("opt/llvm/lib/libclang.so", &elf())]);
    assert!(libclang_present(root.path(), &[("LIBCLANG_PATH", "/opt/llvm/lib")]));
    assert!(libclang_present(root.path(), &[("LIBCLANG_PATH", "/opt/llvm/lib/")]));
    // A file, too.
    assert!(libclang_present(root.path(), &[("LIBCLANG_PATH", "/opt/llvm/lib/libclang.so")]));
    // With LIBCLANG_PATH set, clang-sys looks nowhere else, not even at a libclang in /usr.
    let root = tree(&[
        ("opt/llvm/lib/libclang-cpp.so.14", &elf()),
        ("usr/lib/llvm-14/lib/libclang.so.1", &elf()),
    ]);
    assert!(!libclang_present(root.path(), &[("LIBCLANG_PATH", "/opt/llvm/lib")]));
    assert!(!libclang_present(
        root.path(),
        &[("LIBCLANG_PATH", "/opt/llvm/lib/libclang-cpp.so.14")]
    ));
    assert!(!libclang_present(root.path(), &[("LIBCLANG_PATH", "/opt/nothing")]));
    assert!(libclang_present(root.path(), &[]));
}

#[test]
fn clang_headers_next_to_libclang_or_in_the_system() {
    let headers = r#"libclang_present "$ROOT" && clang_headers_present "$ROOT""#;
    // Debian's libclang1-14 without libclang-common-14-dev: bindgen would not find stddef.h.
    let root = tree(&[("usr/lib/x86_64-linux-gnu/libclang-14.so.1", &elf())]);
    assert!(!run(root.path(), headers, &[]));
    put(root.path(), "usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h", b"");
    assert!(run(root.path(), headers, &[]));
    // An LLVM release tarball: lib/clang/N/include beside lib/libclang.so.
    let root = tree(&[("opt/llvm/lib/libclang.so", &elf())]);
    assert!(!run(root.path(), headers, &[("LIBCLANG_PATH", "/opt/llvm/lib")]));
    put(root.path(), "opt/llvm/lib/clang/17/include/stddef.h", b"");
    assert!(run(root.path(), headers, &[("LIBCLANG_PATH", "/opt/llvm/lib")]));
}

/// This test was built, so clang-sys found libclang for RocksDB's bindgen: the check must agree.
#[test]
fn this_machine_has_libclang() {
    let status = Command::new("bash")
        .current_dir(common::repo_dir())
        .args([
            "-c",
            r#"source scripts/prerequisites.sh; libclang_present "" && clang_headers_present """#,
        ])
        .status()
        .expect("run bash");
    assert!(
        status.success(),
        "scripts/prerequisites.sh finds no libclang (or no clang headers) on this machine"
    );
}
