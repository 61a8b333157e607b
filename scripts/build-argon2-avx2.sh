#!/bin/sh
# Build argon2-cffi-bindings (the libargon2 that argon2-cffi calls) from its hash-pinned source
# with AVX2, in place of the published wheel, which is compiled for SSE2 only so that it runs on
# every x86-64 CPU. Argon2id at OWASP's baseline then takes about 45 % less CPU per hash
# (README "Password hashing"). The result runs only on CPUs with AVX2.
#
#   scripts/build-argon2-avx2.sh PYTHON REQUIREMENTS BUILD_REQUIREMENTS
#
# PYTHON is the virtualenv's interpreter; REQUIREMENTS the hash-pinned file that pins
# argon2-cffi-bindings (its sdist's hash included); BUILD_REQUIREMENTS the hash-pinned tools
# its build needs (requirements-build.txt). Needs cmake and a C compiler.
# ARGON2_AVX2: auto (default) builds when /proc/cpuinfo lists avx2 and cmake and a C compiler
# are installed (else it says so and keeps the wheel); 1 always builds; 0 never.
set -eu
python=$1
requirements=$2
build_requirements=$3
case "${ARGON2_AVX2:-auto}" in
  auto)
    grep -qw avx2 /proc/cpuinfo 2>/dev/null || exit 0
    if ! command -v cmake >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
      echo "argon2-cffi-bindings: the SSE2 wheel stays (the AVX2 build needs cmake and a C compiler; README \"System packages\")"
      exit 0
    fi
    ;;
  1) ;;
  *) exit 0 ;;
esac
pin=$(mktemp)
trap 'rm -f "$pin"' EXIT
# The argon2-cffi-bindings entry: its "name==version \" line and the hash lines after it.
awk '/^argon2-cffi-bindings==/ { found = 1 } found { print } found && !/\\$/ { exit }' "$requirements" >"$pin"
grep -q '^argon2-cffi-bindings==' "$pin" || { echo "no argon2-cffi-bindings pin in $requirements" >&2; exit 2; }
install="$python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps"
$install -r "$build_requirements"
CFLAGS=-mavx2 $install --no-cache-dir --no-build-isolation --no-binary argon2-cffi-bindings \
  --force-reinstall -r "$pin"
echo "argon2-cffi-bindings built with AVX2"
