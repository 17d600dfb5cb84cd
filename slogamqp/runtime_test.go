package slogamqp

import "runtime"

func runtimeCallers(pcs []uintptr) { runtime.Callers(2, pcs) }
