#!/bin/sh
# Regenerates gen/ (the C bindings for wit/filter.wit's `mail-filter`
# world) after a change to the WIT. Needs wit-bindgen-cli 0.63:
#     cargo install --locked wit-bindgen-cli@0.63.0
# The output is committed, so building the filter needs only clang.
set -eu
cd "$(dirname "$0")"
rm -rf gen
wit-bindgen c ../../../wit --world mail-filter --out-dir gen
