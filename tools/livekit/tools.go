//go:build tools

// Package livekit pins the livekit-server version that tests and `make run` build, so the
// SFU under test is the real one, built from the module proxy with this module's go.sum.
package livekit

import _ "github.com/livekit/livekit-server/cmd/server"
