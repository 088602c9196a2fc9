//go:build tools

// Package tools pins golangci-lint in its own module so that its
// dependencies never enter the relay's go.mod. `make lint` builds it into
// ../../bin/golangci-lint once (see the Makefile).
package tools

import _ "github.com/golangci/golangci-lint/v2/cmd/golangci-lint"
