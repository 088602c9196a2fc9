//go:build tools

// Package tools pins build-time tools in their own module so that their
// dependencies never enter the relay's go.mod (see the Makefile's SQLC).
package tools

import _ "github.com/sqlc-dev/sqlc/cmd/sqlc"
