//go:build !race

package slogamqp

const raceEnabled = false
