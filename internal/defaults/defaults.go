// Package defaults fills the unset fields of configuration structs, so that
// a constructor names each field and its default once instead of spelling
// an if statement per field.
package defaults

import "log/slog"

// number is what Positive compares with zero.
type number interface {
	~int | ~int32 | ~int64 | ~uint32 | ~uint64 | ~float64
}

// Positive sets *v to d when *v is zero or negative (unset, or a value that
// means "the default").
func Positive[T number](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Zero sets *v to d when *v is its type's zero value.
func Zero[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Log sets *l, when it is nil, to a logger that discards everything, so
// that code can log without asking whether anyone listens.
func Log(l **slog.Logger) {
	if *l == nil {
		*l = slog.New(slog.DiscardHandler)
	}
}
