# shellcheck shell=bash
# Prerequisite checks for ./dev.sh, to be sourced (tests/dev_setup.rs exercises them on fake trees).
#
# libclang_present ROOT
#   Whether RocksDB's bindgen will find libclang: a mirror of how clang-sys 1.9.1 (feature
#   "runtime", Linux) looks for it (build/common.rs search_libclang_directories, build/dynamic.rs
#   search_libclang_directories/validate_library). ROOT is prepended to every directory searched,
#   LIBCLANG_PATH, LD_LIBRARY_PATH and LIBRARY_PATH entries included; "" checks the real system.
#     - LIBCLANG_PATH set: only that is searched, as a file, else as a directory. An empty or
#       relative LIBCLANG_PATH counts as missing (clang-sys would resolve it from the build
#       script's working directory, librocksdb-sys's source); so do empty or relative entries of
#       LD_LIBRARY_PATH and LIBRARY_PATH.
#     - Otherwise: `llvm-config --prefix` (or $LLVM_CONFIG_PATH) bin, lib, lib64 (skipped when ROOT
#       is not empty), LD_LIBRARY_PATH, LIBRARY_PATH, then the directories matching
#       /usr/local/llvm*/lib* /usr/local/lib*/*/* /usr/local/lib*/* /usr/local/lib* /usr/lib*/*/*
#       /usr/lib*/* /usr/lib* (case-insensitively, hidden names included, as the glob crate does).
#     - In each directory the files libclang.so, libclang-*.so, libclang.so.*, libclang-*.so.*
#       count, except names containing "-cpp." (Debian's libclang-cpp.so.14 is another library),
#       and only if they are ELF files of this machine's word size (validate_library).
#   Sets LIBCLANG_FOUND to the files found. Returns 0 when there is at least one.
#   Not mirrored: clang-sys then dlopen()s the newest one; a library that cannot be loaded (missing
#   libLLVM) passes here and fails in the build.
#
# clang_headers_present ROOT
#   Whether clang's own headers (stddef.h, stdbool.h: RocksDB's c.h includes them) are next to the
#   libclang found by libclang_present (call it first) or in the usual system places. Without them
#   bindgen fails with "'stddef.h' file not found": Debian's libclang1-14 alone has the library but
#   not the headers (libclang-common-14-dev, pulled in by libclang-dev). A heuristic, unlike
#   libclang_present: it is skipped when BINDGEN_EXTRA_CLANG_ARGS is set or (ROOT "") clang is on PATH
#   (bindgen then asks clang for its include directories).

# clang-sys's validate_library on Linux: the file starts with an ELF header of this word size.
_weir_elf_of_this_machine() {
    local class=02
    [ "$(getconf LONG_BIT 2>/dev/null)" = 32 ] && class=01
    [ "$(head -c 5 -- "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = "7f454c46$class" ]
}

# clang-sys's search_directory: appends the valid libclang files in directory $1 to LIBCLANG_FOUND.
_weir_search_libclang_dir() {
    local dir=$1 file name
    for file in "$dir"/libclang*; do
        name=${file##*/}
        case $name in
            *-cpp.*) continue ;;
            libclang.so | libclang-*.so | libclang.so.* | libclang-*.so.*) ;;
            *) continue ;;
        esac
        _weir_elf_of_this_machine "$file" && LIBCLANG_FOUND+=("$file")
    done
    return 0
}

# Searches each entry of a colon-separated list (LD_LIBRARY_PATH, LIBRARY_PATH) under ROOT $1.
_weir_search_libclang_path_list() {
    local root=$1 dir entries=()
    IFS=: read -r -a entries <<<"$2"
    for dir in "${entries[@]}"; do
        # clang-sys resolves an empty or relative entry from the build script's working directory
        # (librocksdb-sys's source): nothing there.
        case $dir in /*) _weir_search_libclang_dir "$root$dir" ;; esac
    done
    return 0
}

libclang_present() {
    local root=${1-}
    LIBCLANG_FOUND=()
    local saved_opts
    saved_opts=$(shopt -p nullglob nocaseglob dotglob) || true # non-zero when one is off
    shopt -s nullglob
    shopt -u nocaseglob dotglob
    if [ -n "${LIBCLANG_PATH+set}" ]; then
        case $LIBCLANG_PATH in
            /*)
                local path=$LIBCLANG_PATH
                while [ "${#path}" -gt 1 ] && [ "${path%/}" != "$path" ]; do path=${path%/}; done
                local name=${path##*/} parent=${path%/*} file hit=""
                # A file: it counts if it is one of the matches in its directory.
                if [ "$path" != / ]; then
                    _weir_search_libclang_dir "$root${parent:-/}"
                    for file in "${LIBCLANG_FOUND[@]}"; do [ "${file##*/}" = "$name" ] && hit=$file; done
                fi
                LIBCLANG_FOUND=()
                if [ -n "$hit" ]; then
                    LIBCLANG_FOUND=("$hit")
                else
                    # A directory.
                    _weir_search_libclang_dir "$root$path"
                fi
                ;;
            *)
                echo "prerequisites: LIBCLANG_PATH='$LIBCLANG_PATH' is not an absolute path (clang-sys would resolve it from librocksdb-sys's build directory)" >&2
                ;;
        esac
    else
        if [ -z "$root" ]; then
            local prefix
            prefix=$("${LLVM_CONFIG_PATH:-llvm-config}" --prefix 2>/dev/null | head -n 1) || prefix=""
            if [ -n "$prefix" ]; then
                _weir_search_libclang_dir "$prefix/bin"
                _weir_search_libclang_dir "$prefix/lib"
                _weir_search_libclang_dir "$prefix/lib64"
            fi
        fi
        [ -n "${LD_LIBRARY_PATH-}" ] && _weir_search_libclang_path_list "$root" "$LD_LIBRARY_PATH"
        [ -n "${LIBRARY_PATH-}" ] && _weir_search_libclang_path_list "$root" "$LIBRARY_PATH"
        local pattern dir dirs
        for pattern in 'usr/local/llvm*/lib*' 'usr/local/lib*/*/*' 'usr/local/lib*/*' 'usr/local/lib*' \
            'usr/lib*/*/*' 'usr/lib*/*' 'usr/lib*'; do
            shopt -s nocaseglob dotglob
            # shellcheck disable=SC2206 # the pattern is meant to be expanded; ROOT is quoted
            dirs=("$root"/$pattern)
            shopt -u nocaseglob dotglob
            for dir in "${dirs[@]}"; do
                [ -d "$dir" ] && _weir_search_libclang_dir "$dir"
            done
        done
    fi
    eval "$saved_opts"
    [ "${#LIBCLANG_FOUND[@]}" -gt 0 ]
}

clang_headers_present() {
    local root=${1-}
    [ -n "${BINDGEN_EXTRA_CLANG_ARGS-}" ] && return 0
    [ -z "$root" ] && command -v clang >/dev/null 2>&1 && return 0
    local saved_opts
    saved_opts=$(shopt -p nullglob) || true
    shopt -s nullglob
    local dirs=() file dir real
    for file in "${LIBCLANG_FOUND[@]}"; do
        dirs+=("${file%/*}")
        real=$(readlink -f -- "$file" 2>/dev/null) && dirs+=("${real%/*}")
    done
    local headers=()
    for dir in "${dirs[@]}"; do
        headers+=("$dir"/clang/*/include/stddef.h "$dir"/../lib/clang/*/include/stddef.h "$dir"/../lib64/clang/*/include/stddef.h)
    done
    headers+=("$root"/usr/lib/clang/*/include/stddef.h "$root"/usr/lib/llvm-*/lib/clang/*/include/stddef.h
        "$root"/usr/lib64/clang/*/include/stddef.h "$root"/usr/local/lib/clang/*/include/stddef.h)
    eval "$saved_opts"
    [ "${#headers[@]}" -gt 0 ]
}
