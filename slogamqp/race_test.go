//go:build race

package slogamqp

const raceEnabled = true
