// Package systemd holds the files that run roombox under systemd (roombox.service,
// roombox.sysusers, roombox.tmpfiles, 99-roombox.rules) and, in its tests, their checks
// with systemd's own tools: systemd-analyze verify and security, systemd-sysusers and
// systemd-tmpfiles against a scratch root. It has no code.
package systemd
