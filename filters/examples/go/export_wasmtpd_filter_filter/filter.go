// Package export_wasmtpd_filter_filter is a wasmtpd mail filter written
// in Go: it adds the header "X-Go-Filter: seen" on top of every message
// and lets it through unchanged otherwise.
//
// smtpd.conf:
//
//	filter "go" wasm "/etc/mail/filters/go-filter.wasm"
//	listen on 0.0.0.0 filter "go"
//
// The package name and the four functions below are what the generated
// glue (../wit_exports.go, from `wit-bindgen go`, see ../regen.sh)
// calls for the world's `filter` export. An instance serves one SMTP
// session at a time (a session may carry several messages), and may
// serve the next one after it: Init runs once per instance, and a new
// session shows as a new host-session serial.
package export_wasmtpd_filter_filter

import (
	"wit_component/wasmtpd_filter_host_log"
	"wit_component/wasmtpd_filter_host_session"
	"wit_component/wasmtpd_filter_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// header is the line this filter adds, CRLF included: a batch of lines
// is one buffer, every line ending with CRLF.
var header = []byte("X-Go-Filter: seen\r\n")

// inMessage is set once the header went out for the current message, so
// the next batches of the same message pass through untouched.
var inMessage bool

// session is the host's serial of the session inMessage belongs to.
var session uint64

// Init declares what the filter wants: the message's lines, nothing else.
// It is called once per instance; the instance may serve session after
// session (Reusable), each starting afresh (see OnDataLines).
func Init() wasmtpd_filter_types.Subscriptions {
	return wasmtpd_filter_types.Subscriptions{
		Phases:    nil,
		DataLines: true,
		Reports:   false,
		Reusable:  true,
	}
}

// OnPhase is never called (no phases subscribed); it would let
// everything through.
func OnPhase(_ wasmtpd_filter_types.Phase, _ string) wasmtpd_filter_types.Decision {
	return wasmtpd_filter_types.MakeDecisionProceed()
}

// OnDataLines gets the message in batches, header first, each batch one
// buffer of CRLF-terminated lines. The first batch of each message is
// replaced by our header followed by the batch; the others pass on as
// they came (nothing is copied back). `last` closes the message. No
// commit decision comes with the last batch (the filter does not decide).
func OnDataLines(lines []uint8, last bool) wasmtpd_filter_types.LinesAnswer {
	// A new session on this instance: a message the last one left half
	// way through is none of its business.
	if s := wasmtpd_filter_host_session.Serial(); s != session {
		session = s
		inMessage = false
	}
	first := !inMessage
	inMessage = !last
	if !first {
		return answer(wasmtpd_filter_types.MakeLinesOutPass())
	}
	wasmtpd_filter_host_log.Log(wasmtpd_filter_host_log.Level_Debug,
		"Go filter: header added in session "+wasmtpd_filter_host_session.Current().Id)
	// The generated glue may reuse `lines`' memory: build a new slice.
	out := make([]uint8, 0, len(header)+len(lines))
	out = append(out, header...)
	out = append(out, lines...)
	return answer(wasmtpd_filter_types.MakeLinesOutReplace(out))
}

func answer(lines wasmtpd_filter_types.LinesOut) wasmtpd_filter_types.LinesAnswer {
	return wasmtpd_filter_types.LinesAnswer{
		Lines:   lines,
		Commit:  witTypes.None[wasmtpd_filter_types.Decision](),
		Prepend: nil,
	}
}

// OnReport is never called (no reports subscribed).
func OnReport(_ wasmtpd_filter_types.Report) {}
