// Package archtest guards the module's architecture. Its tests (run by
// `go test ./...`, hence by `make test` and CI) parse every Go file of the
// module with go/parser and fail on:
//
//   - an import that points up or sideways in the layer table (leaves, then
//     transfer/wire, transfer/session, the services over a session,
//     transfer/send, transfer/cluster, the transfer façade, daemon, cmd and
//     the programs), or a package that the table does not name;
//   - package-level mutable state outside cmd/ and package main: a
//     package-level var must be an error sentinel, a `var _ T = v`
//     assertion, or an entry of a short allowlist that says why it is safe;
//   - JSON inside other messages' fields in transfer/...: encoding/json is
//     imported only by transfer/wire, no struct field is a json.RawMessage or
//     a []byte/string named like JSON, and no json.Marshal result is turned
//     into a string (nor a field's string into json.Unmarshal's input).
//
// Each rule also runs on a small synthetic module written to a temporary
// directory, so that a rule that stopped firing fails the test instead of
// passing silently. The package has no code of its own: this file only
// carries the documentation.
package archtest
