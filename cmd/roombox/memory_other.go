//go:build !linux

package main

// noHugePages does nothing: transparent huge pages are Linux's.
func noHugePages() error { return nil }
