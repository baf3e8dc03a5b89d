// The module name is fixed by the generated bindings: they import each
// other as wit_component/…
module wit_component

go 1.27.1

require go.bytecodealliance.org/pkg v0.4.0

// The bindings' runtime support, copied from the wit-bindgen-go 0.63
// crate (its own copy of github.com/bytecodealliance/go-pkg): the build
// needs no Go module proxy.
replace go.bytecodealliance.org/pkg => ./third_party/go-pkg
