// Package faults holds the tests that change the whole broker: closing
// every connection, restarting the app, raising a memory alarm. They would
// break the other packages' tests, so they run only when
// LOGFAN_BROKER_FAULTS=1, one package alone, after the rest (.ci/run), and
// each restores the broker in t.Cleanup.
package faults
